//! Attacks that write protected memory directly, with an ordinary store:
//! page tables, kernel code, descriptor tables. On the protected kernel the
//! hardware refuses the store (the pages are read-only and CR0.WP is on),
//! the attacking thread is terminated, and the system goes on. On `native`
//! each write lands; the attack reads it back and undoes it.
#![allow(unsafe_code)] // these attacks write through raw pointers on purpose

use super::Outcome::{self, Succeeded};
use crate::mm::walk;
use alloc::format;
use nk_model::layout::table_index;

/// Writes `value` at `addr`, reads it back, restores the old value.
///
/// # Safety
/// `addr` must be a mapped, aligned u64 whose temporary change the running
/// kernel survives (an unused slot, or a value restored at once).
unsafe fn poke(addr: u64, value: u64) -> (u64, u64) {
    let p = addr as *mut u64;
    // SAFETY: the caller upholds the contract above.
    unsafe {
        let old = p.read_volatile();
        p.write_volatile(value);
        let seen = p.read_volatile();
        p.write_volatile(old);
        (old, seen)
    }
}

fn dm(phys: u64) -> u64 {
    nk::layout::phys_to_virt(phys)
}

/// A store into the live root page table through its direct-map alias.
pub fn ptp_direct_write() -> Outcome {
    let root = walk::current_root();
    let slot = dm(root) + 100 * 8; // a lower-half slot the kernel leaves empty
    // SAFETY: slot 100 of the root is unused (no user space yet) and is
    // restored before anything could walk through it.
    let (_, seen) = unsafe { poke(slot, 0xdead_b000 | 0x7) };
    Succeeded(format!("wrote {:#x} into root page table {:#x} through the direct map", seen, root))
}

/// Make a page of kernel code writable by editing its PTE, then patch it.
pub fn kernel_code_write() -> Outcome {
    let text = nk::layout::image().text;
    // The last page of the outer kernel's code: mostly alignment padding.
    let page = text.end - 4096;
    let mut table = walk::current_root();
    for level in (2..=4u8).rev() {
        table = walk::entry(table, table_index(page, level)).addr();
    }
    let pte_addr = dm(table) + table_index(page, 1) as u64 * 8;
    let pte = walk::entry(table, table_index(page, 1)).bits();
    let target = text.end - 8;
    // SAFETY: deliberately unsound: makes kernel code writable. The PTE is
    // restored and the code word put back before anything executes it (it
    // is padding at the end of the text section).
    unsafe {
        (pte_addr as *mut u64).write_volatile(pte | 0x2);
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(target));
        let (old, seen) = poke(target, 0x9090_9090_9090_9090);
        (pte_addr as *mut u64).write_volatile(pte);
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(target));
        Succeeded(format!("made code page {:#x} writable and patched {:#x} -> {:#x}", page, old, seen))
    }
}

fn descriptor_table(sidt: bool) -> u64 {
    let ptr = if sidt { x86_64::instructions::tables::sidt() } else { x86_64::instructions::tables::sgdt() };
    ptr.base.as_u64()
}

/// Overwrite an IDT entry (an unused vector) with an ordinary store.
pub fn idt_overwrite() -> Outcome {
    let entry = descriptor_table(true) + 0xc8 * 16;
    // SAFETY: vector 0xc8 is never raised; the entry is restored at once.
    let (old, seen) = unsafe { poke(entry, 0x4141_4141_4141_4141) };
    Succeeded(format!("IDT vector 0xc8 rewritten: {:#x} -> {:#x}", old, seen))
}

/// Overwrite a GDT descriptor (the last CPU's TSS slot, unused).
pub fn gdt_overwrite() -> Outcome {
    let gdt = x86_64::instructions::tables::sgdt();
    let last = descriptor_table(false) + u64::from(gdt.limit) + 1 - 16;
    // SAFETY: the last TSS slot belongs to a CPU that is not running; it is
    // restored at once.
    let (old, seen) = unsafe { poke(last, 0x00af_9b00_0000_ffff) };
    Succeeded(format!("GDT descriptor rewritten: {:#x} -> {:#x}", old, seen))
}

/// Overwrite this CPU's TSS (the ring-0 stack pointer field).
pub fn tss_overwrite() -> Outcome {
    let gdt = descriptor_table(false);
    let selector = 0x28 + 16 * nk::current_cpu() as u64; // this CPU's TSS descriptor
    // SAFETY: reads this CPU's TSS descriptor out of the live GDT.
    let (lo, hi) = unsafe { (((gdt + selector) as *const u64).read(), ((gdt + selector + 8) as *const u64).read()) };
    let base = ((lo >> 16) & 0xff_ffff) | (((lo >> 56) & 0xff) << 24) | (hi << 32);
    // SAFETY: RSP0 (offset 4) is only used on a privilege change, which no
    // user space can cause yet; it is restored at once.
    let (old, seen) = unsafe { poke(base + 4, 0x4242_4242_4242_4240) };
    Succeeded(format!("TSS at {:#x}: RSP0 {:#x} -> {:#x}", base, old, seen))
}

/// Run code from a data page: first as it is (NX must stop it), then after
/// clearing NX in its PTE (the write to the page table must be refused).
pub fn execute_data() -> Outcome {
    // `mov eax, 0x1234; ret` in a heap page-aligned buffer.
    let code: [u8; 6] = [0xb8, 0x34, 0x12, 0x00, 0x00, 0xc3];
    let mut buf = alloc::vec![0u8; 8192];
    let start = (buf.as_ptr() as u64 + 4095) & !4095;
    let offset = (start - buf.as_ptr() as u64) as usize;
    buf[offset..offset + code.len()].copy_from_slice(&code);
    // The leaf that maps the page: a 4 KiB PTE, or the 2 MiB entry above it.
    let mut table = walk::current_root();
    let mut level = 4u8;
    while level > 1 {
        let e = walk::entry(table, table_index(start, level));
        if e.is_huge() {
            break;
        }
        table = e.addr();
        level -= 1;
    }
    let pte_addr = dm(table) + table_index(start, level) as u64 * 8;
    let pte = walk::entry(table, table_index(start, level)).bits();
    // SAFETY: deliberately unsound: clears NX on a heap page and calls the
    // bytes written there; the PTE is restored right after the call.
    let r = unsafe {
        (pte_addr as *mut u64).write_volatile(pte & !(1 << 63));
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(start));
        let f: extern "C" fn() -> u32 = core::mem::transmute(start as usize);
        let r = f();
        (pte_addr as *mut u64).write_volatile(pte);
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(start));
        r
    };
    drop(buf);
    Succeeded(format!("cleared NX on data page {:#x} and ran code there (returned {:#x})", start, r))
}
