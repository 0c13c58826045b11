//! The GDT and the per-CPU TSSs: flat 64-bit segments for kernel and user,
//! and the interrupt stacks (IST) for faults that must not run on a suspect
//! stack. One GDT holds a TSS descriptor per CPU, so the task register names
//! the CPU (see `percpu::current`).

use crate::cpu::{self, TablePointer};
use crate::percpu::MAX_CPUS;
use core::cell::UnsafeCell;

pub const KERNEL_CODE: u16 = 0x08;
pub const KERNEL_DATA: u16 = 0x10;
/// User selectors are laid out for SYSRET: data at STAR base + 8, code at +16.
pub const USER_DATA: u16 = 0x18 | 3;
pub const USER_CODE: u16 = 0x20 | 3;
/// Selector of CPU 0's TSS; CPU n's is `FIRST_TSS + 16 * n`.
pub const FIRST_TSS: u16 = 0x28;
const FIXED_ENTRIES: usize = 5;
const GDT_ENTRIES: usize = FIXED_ENTRIES + 2 * MAX_CPUS;
/// What LGDT loads as the limit, and what the check after it expects.
pub(crate) const GDT_LIMIT: u16 = (GDT_ENTRIES * 8 - 1) as u16;

/// IST slots (1-based, as the IDT encodes them). Every vector has one
/// (`trap.rs` says why); #DB has its own so a single-step trap taken in a
/// handler's entry cannot reuse the stack of the trap it interrupted.
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;
pub const IST_DEBUG: u8 = 4;
pub const IST_OTHER: u8 = 5;
const IST_STACKS: usize = 5;
const IST_STACK_SIZE: usize = 16 * 1024;

#[derive(Clone, Copy)]
#[repr(C, packed)]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

impl Tss {
    const EMPTY: Self = Self {
        reserved0: 0,
        rsp: [0; 3],
        reserved1: 0,
        ist: [0; 7],
        reserved2: 0,
        reserved3: 0,
        // No I/O permission bitmap: the base points past the segment limit.
        iomap_base: size_of::<Tss>() as u16,
    };
}

/// Where the trap stubs find a CPU's RSP0: its TSS's offset in `Tables`
/// is `TSS_OFFSET + TSS_SIZE * cpu`, RSP0 four bytes in.
pub(crate) const TSS_SIZE: usize = size_of::<Tss>();
pub(crate) const TSS_RSP0_OFFSET: usize = core::mem::offset_of!(Tables, tss) + 4;

/// The GDT comes first: `sites::nk_load_gdt` checks SGDT against the
/// address of `TABLES` itself.
#[repr(C, align(4096))]
pub(crate) struct Tables {
    gdt: [u64; GDT_ENTRIES],
    tss: [Tss; MAX_CPUS],
}

pub(crate) struct TablesCell(UnsafeCell<Tables>);

// SAFETY: each CPU writes only its own TSS and TSS descriptor: once in
// `init_cpu`, before it loads them, and its RSP0 in `set_kernel_stack`,
// inside the NK with interrupts off; the fixed entries are never written.
unsafe impl Sync for TablesCell {}

pub(crate) static TABLES: TablesCell = TablesCell(UnsafeCell::new(Tables {
    // Accessed bits are preset so the CPU never writes to the GDT.
    gdt: {
        let mut g = [0; GDT_ENTRIES];
        g[1] = 0x00af_9b00_0000_ffff; // kernel code, 64-bit
        g[2] = 0x00cf_9300_0000_ffff; // kernel data
        g[3] = 0x00cf_f300_0000_ffff; // user data
        g[4] = 0x00af_fb00_0000_ffff; // user code, 64-bit
        g
    },
    tss: [Tss::EMPTY; MAX_CPUS],
}));

/// The interrupt stacks of every CPU. The CPU writes interrupt frames here
/// when it delivers NMI, #DF or #MC to the outer kernel's handler, with
/// protection on, so they cannot be read-only NK data: `entry_point!`
/// places them in the outer kernel's data. They only ever hold frames of
/// outer handlers.
#[repr(C, align(16))]
pub struct IstStacks(UnsafeCell<[[[u8; IST_STACK_SIZE]; IST_STACKS]; MAX_CPUS]>);

// SAFETY: only the CPU owning a set of stacks runs on them, through its TSS;
// Rust code never forms references into them.
unsafe impl Sync for IstStacks {}

impl IstStacks {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(UnsafeCell::new([[[0; IST_STACK_SIZE]; IST_STACKS]; MAX_CPUS]))
    }
}

unsafe extern "C" {
    /// Defined by the outer kernel through [`crate::entry_point!`].
    static NK_IST_STACKS: IstStacks;
}

/// Fills CPU `cpu`'s TSS and descriptor, and loads the GDT and task register.
pub fn init_cpu(cpu: usize) {
    assert!(cpu < MAX_CPUS);
    // SAFETY: this CPU is the only writer of its own TSS slot and descriptor
    // (see `TablesCell`), and nothing holds a reference into them.
    let t = unsafe { &mut *TABLES.0.get() };
    // SAFETY: only the address of the outer kernel's stack array is taken.
    let base = unsafe { NK_IST_STACKS.0.get() } as u64;
    let stacks = base + (cpu * IST_STACKS * IST_STACK_SIZE) as u64;
    for i in 0..IST_STACKS {
        t.tss[cpu].ist[i] = stacks + ((i + 1) * IST_STACK_SIZE) as u64;
    }
    let base = &raw const t.tss[cpu] as u64;
    let limit = (size_of::<Tss>() - 1) as u64;
    let slot = FIXED_ENTRIES + 2 * cpu;
    t.gdt[slot] = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, 64-bit TSS (available)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    t.gdt[slot + 1] = base >> 32;
    let ptr = TablePointer { limit: GDT_LIMIT, base: t.gdt.as_ptr() as u64 };
    // SAFETY: the GDT is a static that lives forever; the selectors name its
    // kernel code/data entries and this CPU's TSS descriptor just written.
    unsafe {
        crate::sites::load_gdt(&ptr);
        cpu::reload_segments(KERNEL_CODE, KERNEL_DATA);
        crate::sites::load_tr(FIRST_TSS + 16 * cpu as u16);
    }
}

/// Sets the stack this CPU switches to on an interrupt or exception from
/// user mode (TSS.RSP0). Any value is safe for the NK: the CPU's pushes are
/// ordinary supervisor writes, which protection still governs; the outer
/// kernel is only asked for a kernel-half, 16-byte-aligned address.
pub fn set_kernel_stack(rsp0: u64) -> bool {
    if rsp0 < crate::layout::DIRECT_MAP_BASE || !rsp0.is_multiple_of(16) {
        return false;
    }
    let cpu = crate::percpu::current();
    // SAFETY: this CPU's own TSS (see `TablesCell`); a packed field is
    // written by value, never through a reference.
    unsafe { (*TABLES.0.get()).tss[cpu].rsp[0] = rsp0 };
    true
}
