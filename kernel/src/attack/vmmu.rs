//! Attacks on the vMMU's rules: a compromised outer kernel asks the NK for
//! page-table changes that would give it a writable view of a page table or
//! of NK memory. The protected NK refuses each call; the `native` backend
//! applies it, and the attack then uses what it gained (and undoes it).
#![allow(unsafe_code)] // the attacks write through the mappings they obtain

use super::Outcome::{self, Blocked, NotRun, Succeeded};
use crate::mm::frames::{self, Frame};
use crate::mm::vm::{AddressSpace, VmError, with_space};
use crate::mm::walk;
use alloc::format;
use nk::api::{self, NkError};
use nk_model::layout::{PAGE_SIZE, table_index};
use nk_model::pte::{Pte, PteFlags};
use nk_model::vmmu::TABLE_FLAGS;

/// Where the attacks map things in their own address space: indices 0, 1,
/// 0, 0 at levels 4 to 1.
const VA: u64 = 0x4000_0000;
/// An empty slot of the kernel root, used as the target of page-table writes.
const ROOT_SLOT: u64 = 100;
const RW: PteFlags = PteFlags::WRITABLE.union(PteFlags::NO_EXECUTE);

fn refused(e: NkError) -> Outcome {
    Blocked(format!("NK refused: {e}"))
}

fn vm(e: VmError) -> Outcome {
    match e {
        VmError::Nk(e) => refused(e),
        other => NotRun(format!("setup failed: {other}")),
    }
}

/// A frame for the attack, freed when dropped.
struct Scratch(Frame);

impl Scratch {
    fn new() -> Option<Self> {
        frames::alloc().map(Self)
    }
    fn pfn(&self) -> u64 {
        self.0.number()
    }
    fn slot(&self, index: u64) -> *mut u64 {
        (self.0.virt() as *mut u64).wrapping_add(index as usize)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = frames::free(self.0);
    }
}

/// Writes `value` at `va` (in the loaded address space), reads it back and
/// restores the old value.
///
/// # Safety
/// `va` must be mapped writable and the temporary value harmless.
unsafe fn poke(va: u64, value: u64) -> u64 {
    let p = va as *mut u64;
    // SAFETY: the caller upholds the contract above.
    unsafe {
        let old = p.read_volatile();
        p.write_volatile(value);
        let seen = p.read_volatile();
        p.write_volatile(old);
        seen
    }
}

/// A space with one data page mapped at `VA`, so its level-3, level-2 and
/// level-1 tables exist. Returns the tables (l3, l2, l1) too.
fn space_with_page(data: &Scratch) -> Result<(AddressSpace, [u64; 3]), Outcome> {
    let mut space = AddressSpace::new().map_err(vm)?;
    space.map(&[(VA, data.0.addr())], RW).map_err(vm)?;
    let mut tables = [0; 3];
    let mut table = space.root();
    for (i, level) in [4u8, 3, 2].into_iter().enumerate() {
        table = walk::entry(table * PAGE_SIZE, table_index(VA, level)).addr() / PAGE_SIZE;
        tables[i] = table;
    }
    Ok((space, tables))
}

/// Writes into slot `ROOT_SLOT` of the kernel root through `va`, which the
/// attack made map the root, inside `space`.
fn write_root_through(space: &AddressSpace, va: u64) -> Result<u64, Outcome> {
    // SAFETY: on the kernel that let the mapping through, `va` maps the
    // kernel root writable; the slot is unused and restored at once.
    with_space(space, || unsafe { poke(va + ROOT_SLOT * 8, 0xdead_b000 | 0x7) }).map_err(vm)
}

/// `write_pte` of a leaf that maps the kernel root writable.
pub fn map_ptp_writable() -> Outcome {
    let mut space = match AddressSpace::new() {
        Ok(s) => s,
        Err(e) => return vm(e),
    };
    let root = api::kernel_root();
    if let Err(e) = space.map(&[(VA, root * PAGE_SIZE)], RW) {
        return vm(e);
    }
    match write_root_through(&space, VA) {
        Ok(seen) => Succeeded(format!("mapped root table {root:#x} writable and wrote {seen:#x} into it")),
        Err(o) => o,
    }
}

/// `write_pte` of a leaf that maps NK memory (the IDT's page) writable.
pub fn map_nk_memory() -> Outcome {
    let idt = x86_64::instructions::tables::sidt().base.as_u64();
    let Some(phys) = nk::layout::virt_to_phys(idt) else { return NotRun(format!("IDT at {idt:#x}")) };
    let mut space = match AddressSpace::new() {
        Ok(s) => s,
        Err(e) => return vm(e),
    };
    if let Err(e) = space.map(&[(VA, phys & !(PAGE_SIZE - 1))], RW) {
        return vm(e);
    }
    // Vector 0xc8 is never raised; its entry is restored at once.
    let entry = VA + (phys & (PAGE_SIZE - 1)) + 0xc8 * 16;
    // SAFETY: on the kernel that let the mapping through, `entry` is the
    // IDT entry of an unused vector, mapped writable.
    match with_space(&space, || unsafe { poke(entry, 0x4141_4141_4141_4141) }) {
        Ok(seen) => Succeeded(format!("mapped the IDT's frame writable and rewrote vector 0xc8 to {seen:#x}")),
        Err(e) => vm(e),
    }
}

/// A table entry pointing at an undeclared frame the attacker filled with
/// a level-1 table that maps the kernel root writable.
pub fn undeclared_table() -> Outcome {
    let (Some(data), Some(fake)) = (Scratch::new(), Scratch::new()) else { return NotRun("no frames".into()) };
    let (space, [_, l2, _]) = match space_with_page(&data) {
        Ok(s) => s,
        Err(o) => return o,
    };
    fake.0.fill(0);
    let root = api::kernel_root();
    // SAFETY: `fake` is ours and ordinary data.
    unsafe { fake.slot(0).write_volatile(Pte::new(root * PAGE_SIZE, RW | PteFlags::PRESENT).bits()) };
    let va = VA + (1 << 21); // level-2 index 1: the fake table's range
    let link = Pte::new(fake.pfn() * PAGE_SIZE, TABLE_FLAGS).bits();
    if let Err(e) = api::write_pte(l2, table_index(va, 2), link) {
        return refused(e);
    }
    let r = write_root_through(&space, va);
    // Unlink before the frame goes back to the allocator.
    let _ = api::write_pte(l2, table_index(va, 2), 0);
    match r {
        Ok(seen) => {
            Succeeded(format!("linked undeclared frame {:#x} as a table; wrote {seen:#x} into the root", fake.pfn()))
        }
        Err(o) => o,
    }
}

/// A level-1 table linked where a level-2 table belongs: its leaf for the
/// attacker's data frame is read as a table pointer, so the data frame,
/// filled by the attacker, is walked as a level-1 table.
pub fn level_confusion() -> Outcome {
    let Some(data) = Scratch::new() else { return NotRun("no frames".into()) };
    let (space, [l3, _, l1]) = match space_with_page(&data) {
        Ok(s) => s,
        Err(o) => return o,
    };
    // The data frame becomes the level-1 table for VA once l1 is read as a
    // level-2 table; its entry 0 maps the kernel root writable.
    let root = api::kernel_root();
    // SAFETY: `data` is ours and ordinary data.
    unsafe { data.slot(0).write_volatile(Pte::new(root * PAGE_SIZE, RW | PteFlags::PRESENT).bits()) };
    let old = walk::entry(l3 * PAGE_SIZE, table_index(VA, 3)).bits();
    if let Err(e) = api::write_pte(l3, table_index(VA, 3), Pte::new(l1 * PAGE_SIZE, TABLE_FLAGS).bits()) {
        return refused(e);
    }
    let r = write_root_through(&space, VA);
    let _ = api::write_pte(l3, table_index(VA, 3), old);
    match r {
        Ok(seen) => Succeeded(format!("linked level-1 table {l1:#x} as level 2; wrote {seen:#x} into the root")),
        Err(o) => o,
    }
}

/// Declares a frame that is still mapped writable at `VA`, then writes a
/// page-table entry into it through that mapping.
pub fn declare_mapped_frame() -> Outcome {
    let Some(data) = Scratch::new() else { return NotRun("no frames".into()) };
    let (space, _) = match space_with_page(&data) {
        Ok(s) => s,
        Err(o) => return o,
    };
    if let Err(e) = api::declare_ptp(data.pfn(), 1) {
        return refused(e);
    }
    // SAFETY: `VA` maps `data` writable in `space`; entry 7 of the new
    // (unlinked) table is restored at once.
    let r = with_space(&space, || unsafe { poke(VA + 7 * 8, 0xdead_b000 | 0x7) });
    let _ = api::remove_ptp(data.pfn());
    match r {
        Ok(seen) => Succeeded(format!("declared frame {:#x} while mapped writable; wrote entry {seen:#x}", data.pfn())),
        Err(e) => vm(e),
    }
}

/// Removes a level-1 table that its level-2 entry still points at, then
/// writes into the live table through the direct map.
pub fn remove_referenced_ptp() -> Outcome {
    let Some(data) = Scratch::new() else { return NotRun("no frames".into()) };
    let (_space, [_, _, l1]) = match space_with_page(&data) {
        Ok(s) => s,
        Err(o) => return o,
    };
    if let Err(e) = api::remove_ptp(l1) {
        return refused(e);
    }
    let entry = nk::layout::phys_to_virt(l1 * PAGE_SIZE) + 9 * 8;
    // SAFETY: the removed table's alias is writable on the kernel that let
    // the removal through; entry 9 is unused and restored at once.
    let seen = unsafe { poke(entry, 0xdead_b000 | 0x7) };
    Succeeded(format!("removed live table {l1:#x} and wrote {seen:#x} into it through the direct map"))
}

/// Loads a root the NK never saw: a copy of the kernel root in a data frame
/// the attacker can still write.
pub fn cr3_undeclared_root() -> Outcome {
    undeclared_root(api::load_cr3)
}

/// The same through `switch`, the context switch's one crossing: its CR3
/// part must be refused exactly as `load_cr3` is.
pub fn switch_undeclared_root() -> Outcome {
    undeclared_root(|root| api::switch(None, None, Some(root)))
}

/// The same through a batch's switch entry, the one that carries a fork's
/// or an exit's switch: checked as `load_cr3` is, inside `write_ptes`.
pub fn batch_switch_undeclared_root() -> Outcome {
    undeclared_root(|root| {
        let op = api::BatchOp { kind: api::BatchOp::SWITCH, a: api::KEEP, b: api::KEEP, c: root };
        api::write_ptes(&[op])
    })
}

fn undeclared_root(load: fn(u64) -> Result<(), NkError>) -> Outcome {
    let Some(fake) = Scratch::new() else { return NotRun("no frames".into()) };
    let root = api::kernel_root();
    for i in 0..512 {
        let e = walk::entry(root * PAGE_SIZE, i).bits();
        // SAFETY: `fake` is ours and ordinary data.
        unsafe { fake.slot(i as u64).write_volatile(e) };
    }
    let r = crate::arch::without_interrupts(|| {
        load(fake.pfn())?;
        let live = walk::current_root() / PAGE_SIZE;
        // SAFETY: `fake` is ordinary data, writable in the direct map, and
        // slot `ROOT_SLOT` is unused; restored at once.
        let seen = unsafe { poke(fake.slot(ROOT_SLOT) as u64, 0xdead_b000 | 0x7) };
        api::load_cr3(root)?;
        Ok::<_, NkError>((live, seen))
    });
    match r {
        Ok((live, seen)) if live == fake.pfn() => {
            Succeeded(format!("ran on undeclared root {live:#x} and wrote {seen:#x} into it"))
        }
        Ok((live, _)) => Blocked(format!("CR3 stayed at {live:#x}")),
        Err(e) => refused(e),
    }
}

/// Declares a live level-1 table again: the declaration would zero it.
pub fn declare_twice() -> Outcome {
    let Some(data) = Scratch::new() else { return NotRun("no frames".into()) };
    let (space, [_, _, l1]) = match space_with_page(&data) {
        Ok(s) => s,
        Err(o) => return o,
    };
    if let Err(e) = api::declare_ptp(l1, 1) {
        return refused(e);
    }
    match space.translate(VA) {
        None => Succeeded(format!("declared live table {l1:#x} again and wiped its mapping of {VA:#x}")),
        Some(_) => Succeeded(format!("declared live table {l1:#x} twice")),
    }
}

/// Declares a frame beyond the end of RAM, which has no frame descriptor.
pub fn frames_out_of_range() -> Outcome {
    let pfn = api::frame_count() + 16;
    // Past 4 GiB the direct map may end, and `native` would fault.
    if pfn * PAGE_SIZE >= 4 << 30 {
        return NotRun(format!("RAM ends too high to pick a harmless frame past it ({pfn:#x})"));
    }
    match api::declare_ptp(pfn, 1) {
        Ok(()) => Succeeded(format!("declared frame {pfn:#x}, beyond RAM, as a page table")),
        Err(e) => refused(e),
    }
}

/// Repoints the kernel-image page that holds the IDT at a frame the attacker
/// owns: the NK's own mapping, through the NK interface.
pub fn rewrite_nk_mapping() -> Outcome {
    let Some(data) = Scratch::new() else { return NotRun("no frames".into()) };
    data.0.fill(0x5a);
    let idt = x86_64::instructions::tables::sidt().base.as_u64() & !(PAGE_SIZE - 1);
    let mut table = api::kernel_root();
    for level in [4u8, 3, 2] {
        table = walk::entry(table * PAGE_SIZE, table_index(idt, level)).addr() / PAGE_SIZE;
    }
    let index = table_index(idt, 1);
    let old = walk::entry(table * PAGE_SIZE, index).bits();
    let new = Pte::new(data.0.addr(), PteFlags::PRESENT | PteFlags::NO_EXECUTE).bits();
    // No interrupt may find the IDT replaced while the attack looks.
    let r = crate::arch::without_interrupts(|| {
        api::write_pte(table, index, new)?;
        // SAFETY: the page is mapped (by the attacker's frame, or still the IDT).
        let seen = unsafe { (idt as *const u64).read_volatile() };
        api::write_pte(table, index, old)?;
        Ok::<_, NkError>(seen)
    });
    match r {
        Ok(0x5a5a_5a5a_5a5a_5a5a) => Succeeded(format!("repointed the IDT's page {idt:#x} at frame {:#x}", data.pfn())),
        Ok(seen) => Blocked(format!("the IDT's page still reads {seen:#x}")),
        Err(e) => refused(e),
    }
}

/// A store into a level-1 table declared at run time, through its direct-map alias.
pub fn ptp_direct_write_leaf() -> Outcome {
    let Some(data) = Scratch::new() else { return NotRun("no frames".into()) };
    let (_space, [_, _, l1]) = match space_with_page(&data) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let entry = nk::layout::phys_to_virt(l1 * PAGE_SIZE) + 9 * 8;
    // SAFETY: deliberately a store into a page table; entry 9 is unused and
    // restored at once.
    let seen = unsafe { poke(entry, 0xdead_b000 | 0x7) };
    Succeeded(format!("wrote {seen:#x} into level-1 table {l1:#x} through the direct map"))
}

/// Repoints the direct-map alias of a live page table at a frame the
/// attacker owns: the NK reaches page tables through the direct map, so its
/// next write to the table would land in the attacker's frame instead.
pub fn redirect_ptp_alias() -> Outcome {
    let (Some(data), Some(decoy)) = (Scratch::new(), Scratch::new()) else { return NotRun("no frames".into()) };
    let (_space, [_, _, l1]) = match space_with_page(&data) {
        Ok(s) => s,
        Err(o) => return o,
    };
    decoy.0.fill(0);
    let alias = nk::layout::phys_to_virt(l1 * PAGE_SIZE);
    let mut table = api::kernel_root();
    for level in [4u8, 3, 2] {
        table = walk::entry(table * PAGE_SIZE, table_index(alias, level)).addr() / PAGE_SIZE;
    }
    let index = table_index(alias, 1);
    let old = walk::entry(table * PAGE_SIZE, index).bits();
    let redirect = Pte::new(decoy.0.addr(), RW | PteFlags::PRESENT | PteFlags::GLOBAL).bits();
    if let Err(e) = api::write_pte(table, index, redirect) {
        return refused(e);
    }
    // The NK now believes it writes entry 9 of `l1`.
    let marker = Pte::new(data.0.addr(), RW | PteFlags::PRESENT).bits();
    let wrote = api::write_pte(l1, 9, marker);
    // SAFETY: `decoy` is ours; reading it shows where the NK's write went.
    let landed = unsafe { decoy.slot(9).read_volatile() };
    let _ = api::write_pte(l1, 9, 0);
    let _ = api::write_pte(table, index, old);
    match wrote {
        Ok(()) if landed == marker => Succeeded(format!(
            "repointed the alias of table {l1:#x} at frame {:#x}; the NK's write landed there",
            decoy.pfn()
        )),
        Ok(()) => Succeeded(format!("repointed the direct-map alias of table {l1:#x}")),
        Err(e) => refused(e),
    }
}

/// The bytes `mov eax, 0xc3c0220f; ret`: read at offset 1 they are
/// `mov cr0, rax; ret`. Kept in read-only data and copied with volatile
/// loads, so the attack's own code never holds the sequence (the image
/// scanner would rightly refuse it).
static HIDDEN_MOV_CR0: [u8; 6] = [0xb8, 0x0f, 0x22, 0xc0, 0xc3, 0xc3];

/// `map_code` of a page whose innocent first instruction hides `mov cr0`
/// at an unaligned offset; then a jump to that offset to clear CR0.WP.
pub fn map_code_hidden_mov_cr0() -> Outcome {
    let Some(frame) = frames::alloc() else { return NotRun("no frames".into()) };
    frame.fill(0xcc);
    let bytes: alloc::vec::Vec<u8> = (0..HIDDEN_MOV_CR0.len()).map(|i| unsafe_read(&HIDDEN_MOV_CR0[i])).collect();
    frame.write_at(0, &bytes);
    let mut space = match AddressSpace::new() {
        Ok(s) => s,
        Err(e) => return vm(e),
    };
    if let Err(e) = space.map_code(VA, frame) {
        drop(space);
        let _ = frames::free(frame);
        return vm(e);
    }
    // Accepted: the frame may now be code for good; it is never freed.
    let cr0 = x86_64::registers::control::Cr0::read_raw();
    let wp = x86_64::registers::control::Cr0Flags::WRITE_PROTECT.bits();
    let after = with_space(&space, || {
        // SAFETY: deliberately unsound: jumps into the middle of an
        // instruction, where `mov cr0, rax; ret` waits, with WP cleared in rax.
        unsafe {
            core::arch::asm!("call {target}", target = in(reg) VA + 1, in("rax") cr0 & !wp, clobber_abi("C"));
        }
        let after = x86_64::registers::control::Cr0::read_raw();
        // Restored before interrupts come back on: a tick taken with WP
        // clear looks like a trap inside the NK, which fail-stops.
        let _ = api::set_cr0(cr0);
        after
    });
    match after {
        Ok(after) if after & wp == 0 => {
            Succeeded(format!("vetting let a hidden mov cr0 through; running it at {:#x} cleared CR0.WP", VA + 1))
        }
        Ok(after) => Succeeded(format!("a hidden mov cr0 was mapped executable (CR0 now {after:#x})")),
        Err(e) => vm(e),
    }
}

/// `mov eax, 1; ret`: the module's code as vetted.
const RET_1: [u8; 6] = [0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3];
/// `mov eax, 2; ret`: what the attacker writes once the frame is data.
const RET_2: [u8; 6] = [0xb8, 0x02, 0x00, 0x00, 0x00, 0xc3];

/// A module unload that skips the unmapping: `release_code` of a vetted
/// frame still mapped kernel-executable, then new bytes written through
/// its direct-map alias (writable once the frame is data) and run at the
/// old mapping. Unvetted code would run: the bytes written could be any
/// protected instruction. The NK refuses the release while any mapping
/// but the alias is left (`StillMapped`), and the frame stays code.
pub fn release_mapped_code() -> Outcome {
    let Some(frame) = frames::alloc() else { return NotRun("no frames".into()) };
    frame.fill(0xcc);
    frame.write_at(0, &RET_1);
    let mut space = match AddressSpace::new() {
        Ok(s) => s,
        Err(e) => return vm(e),
    };
    if let Err(e) = space.map_code(VA, frame) {
        drop(space);
        let _ = frames::free(frame);
        return NotRun(format!("map_code of the module's page: {e}"));
    }
    if let Err(e) = api::release_code(frame.number()) {
        // Still code, mapped at `VA` until `space` goes: never freed.
        return refused(e);
    }
    frame.write_at(0, &RET_2);
    let ran = with_space(&space, || crate::ktest::call_code(VA));
    drop(space);
    let _ = frames::free(frame);
    match ran {
        Ok(2) => Succeeded(format!(
            "released frame {:#x} while mapped executable at {VA:#x}, rewrote it through its alias, ran the new code",
            frame.number()
        )),
        Ok(r) => Succeeded(format!("released frame {:#x} while mapped executable (it returned {r})", frame.number())),
        Err(e) => vm(e),
    }
}

fn unsafe_read(b: &u8) -> u8 {
    // SAFETY: a reference is valid to read; volatile keeps the compiler
    // from folding the static's bytes into immediates in this code.
    unsafe { core::ptr::read_volatile(b) }
}

/// A small function of the outer kernel's image code: position-independent
/// (no call, no RIP-relative load), so it runs the same at any address.
#[inline(never)]
extern "C" fn image_code_marker() -> u64 {
    0x1dea_c0de
}

/// A `write_pte` batch that maps a frame of the kernel image's code
/// kernel-executable a second time, at an address the attacker chose, and a
/// call to the function there. The build-time scan vouches for image code
/// only as one contiguous run at its boot mapping; elsewhere the attacker
/// chooses the neighbour frames, and a frame ending in `0f` before one
/// starting `22 c0` would form `mov cr0, rax`. So the NK refuses any
/// executable leaf of image code but the boot's (`ImageCodeRemapped`).
pub fn image_code_remap() -> Outcome {
    let func = image_code_marker as extern "C" fn() -> u64 as usize as u64;
    let Some(phys) = nk::layout::virt_to_phys(func) else { return NotRun(format!("marker at {func:#x}")) };
    let offset = phys & (PAGE_SIZE - 1);
    if offset + 16 > PAGE_SIZE {
        return NotRun(format!("the marker at {func:#x} is too close to its page's end"));
    }
    let mut space = match AddressSpace::new() {
        Ok(s) => s,
        Err(e) => return vm(e),
    };
    // Present, read-only, supervisor, executable: what a kernel-code
    // mapping looks like.
    if let Err(e) = space.map(&[(VA, phys - offset)], PteFlags::empty()) {
        return vm(e);
    }
    // SAFETY: on the kernel that let the mapping through, `VA + offset`
    // holds the marker's bytes, which run anywhere and touch nothing.
    let ran = with_space(&space, || unsafe {
        let alias: extern "C" fn() -> u64 = core::mem::transmute((VA + offset) as usize);
        alias()
    });
    match ran {
        Ok(value) => Succeeded(format!(
            "mapped image code frame {:#x} executable at {VA:#x} and ran a function there ({value:#x})",
            phys / PAGE_SIZE
        )),
        Err(e) => vm(e),
    }
}
