//! The GDT and TSS: flat 64-bit segments for kernel and user, and the
//! interrupt stacks (IST) for faults that must not run on a suspect stack.

use crate::cpu::{self, TablePointer};
use core::cell::UnsafeCell;

pub const KERNEL_CODE: u16 = 0x08;
pub const KERNEL_DATA: u16 = 0x10;
/// User selectors are laid out for SYSRET: data at STAR base + 8, code at +16.
pub const USER_DATA: u16 = 0x18 | 3;
pub const USER_CODE: u16 = 0x20 | 3;
pub const TSS: u16 = 0x28;

/// IST slots (1-based, as the IDT encodes them).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;
const IST_STACKS: usize = 3;
const IST_STACK_SIZE: usize = 16 * 1024;

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

#[repr(C, align(16))]
struct Stack([u8; IST_STACK_SIZE]);

/// One CPU's descriptor tables.
#[repr(C, align(4096))]
struct CpuTables {
    gdt: [u64; 7],
    tss: Tss,
}

struct CpuTablesCell(UnsafeCell<CpuTables>);

// SAFETY: each CPU initialises and uses only its own entry; the bootstrap CPU
// fills entry 0 before any other CPU starts.
unsafe impl Sync for CpuTablesCell {}

static BSP_TABLES: CpuTablesCell = CpuTablesCell(UnsafeCell::new(CpuTables {
    // Accessed bits are preset so the CPU never writes to the GDT.
    gdt: [
        0,
        0x00af_9b00_0000_ffff, // kernel code, 64-bit
        0x00cf_9300_0000_ffff, // kernel data
        0x00cf_f300_0000_ffff, // user data
        0x00af_fb00_0000_ffff, // user code, 64-bit
        0,                     // TSS, low half (filled at init)
        0,                     // TSS, high half
    ],
    tss: Tss {
        reserved0: 0,
        rsp: [0; 3],
        reserved1: 0,
        ist: [0; 7],
        reserved2: 0,
        reserved3: 0,
        iomap_base: size_of::<Tss>() as u16,
    },
}));

struct IstStacks(UnsafeCell<[Stack; IST_STACKS]>);

// SAFETY: only the CPU owning these stacks runs on them, through the TSS.
unsafe impl Sync for IstStacks {}

static BSP_IST: IstStacks = IstStacks(UnsafeCell::new([const { Stack([0; IST_STACK_SIZE]) }; IST_STACKS]));

/// Loads the GDT and TSS on the bootstrap CPU.
pub fn init_bsp() {
    let t = BSP_TABLES.0.get();
    // SAFETY: boot, one CPU, nothing else references the tables yet.
    let t = unsafe { &mut *t };
    let stacks = BSP_IST.0.get() as u64;
    for i in 0..IST_STACKS {
        t.tss.ist[i] = stacks + ((i + 1) * IST_STACK_SIZE) as u64;
    }
    let base = &raw const t.tss as u64;
    let limit = (size_of::<Tss>() - 1) as u64;
    t.gdt[5] = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, 64-bit TSS (available)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    t.gdt[6] = base >> 32;
    let ptr = TablePointer { limit: (size_of::<[u64; 7]>() - 1) as u16, base: t.gdt.as_ptr() as u64 };
    // SAFETY: the GDT is a static that lives forever; the selectors name its
    // kernel code/data entries and the TSS descriptor just written.
    unsafe {
        cpu::lgdt(&ptr);
        cpu::reload_segments(KERNEL_CODE, KERNEL_DATA);
        cpu::ltr(TSS);
    }
}
