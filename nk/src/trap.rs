//! Interrupt and exception entry: the IDT, the 256 entry stubs and the
//! dispatch to the outer kernel's handler.
//!
//! The outer kernel never writes the IDT: it registers one handler with
//! [`set_handler`], and every vector enters the NK's stubs first. That keeps
//! the entry path (where protection will be re-asserted) inside the NK.

use crate::cpu::{self, TablePointer};
use crate::gdt;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

pub const VECTOR_DIVIDE: u8 = 0;
pub const VECTOR_NMI: u8 = 2;
pub const VECTOR_BREAKPOINT: u8 = 3;
pub const VECTOR_DOUBLE_FAULT: u8 = 8;
pub const VECTOR_GENERAL_PROTECTION: u8 = 13;
pub const VECTOR_PAGE_FAULT: u8 = 14;
pub const VECTOR_MACHINE_CHECK: u8 = 18;

/// The registers of an interrupted context, as the entry stub saved them.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    pub const fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

/// What the NK tells the handler beyond the saved registers.
#[derive(Clone, Copy, Debug)]
pub struct TrapInfo {
    /// CR2 for a page fault (the faulting address), 0 otherwise.
    pub fault_addr: u64,
}

/// The outer kernel's handler for every vector.
pub type Handler = fn(&mut TrapFrame, TrapInfo);

static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Why `set_handler` refused a handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotKernelCode(pub u64);

/// Installs the outer kernel's trap handler (replacing any earlier one),
/// through the gate: the handler table is NK data. The handler must lie in
/// the outer kernel's code (I9), not in data and not inside the NK.
pub fn set_handler(handler: Handler) -> Result<(), NotKernelCode> {
    match crate::gate::call(crate::api::SET_TRAP_HANDLER, handler as usize as u64, 0, 0).status {
        0 => Ok(()),
        _ => Err(NotKernelCode(handler as usize as u64)),
    }
}

/// The gate body of `set_handler`.
/// `syscall` enters the outer kernel at `entry`: LSTAR, with kernel CS/SS
/// from STAR and user CS/SS for `sysret` (GDT order: user data, then user
/// code), and IF, TF, DF, AC cleared by SFMASK, so the entry runs with
/// interrupts off and SMAP in force. EFER.SCE turns the instruction on.
pub(crate) fn set_syscall_entry(entry: u64) -> bool {
    let image = crate::layout::image();
    if !image.text.contains(entry) || image.nk_text.contains(entry) {
        return false;
    }
    const STAR: u32 = 0xc000_0081;
    const LSTAR: u32 = 0xc000_0082;
    const SFMASK: u32 = 0xc000_0084;
    const EFER: u32 = 0xc000_0080;
    const SCE: u64 = 1;
    let star = u64::from(crate::gdt::KERNEL_CODE) << 32 | u64::from(crate::gdt::USER_DATA & !3).wrapping_sub(8) << 48;
    let mask = (1 << 9) | (1 << 8) | (1 << 10) | (1 << 18);
    // SAFETY: the selectors name this NK's GDT entries, the entry lies in
    // outer code (checked above), and SCE only enables `syscall`.
    unsafe {
        crate::cpu::wrmsr(STAR, star);
        crate::cpu::wrmsr(LSTAR, entry);
        crate::cpu::wrmsr(SFMASK, mask);
        crate::cpu::wrmsr(EFER, crate::cpu::rdmsr(EFER) | SCE);
    }
    true
}

pub(crate) fn install_handler(addr: u64) -> bool {
    let image = crate::layout::image();
    if !image.text.contains(addr) || image.nk_text.contains(addr) {
        return false;
    }
    HANDLER.store(addr as usize, Ordering::Release);
    true
}

// Stub n sits at nk_trap_stubs + 16 * n. Vectors where the CPU pushes an
// error code skip the dummy push so every frame has the same layout.
core::arch::global_asm!(
    r#"
    .section .text.nk_trap_stubs, "ax", @progbits
    .balign 16
    .global nk_trap_stubs
nk_trap_stubs:
    .set trap_n, 0
    .rept 256
    .balign 16
    .if (trap_n == 8) || ((trap_n >= 10) && (trap_n <= 14)) || (trap_n == 17) || (trap_n == 21) || (trap_n == 29) || (trap_n == 30)
    .else
    pushq $0
    .endif
    pushq $trap_n
    jmp nk_trap_common
    .set trap_n, trap_n + 1
    .endr

nk_trap_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld
    movq %rsp, %rdi
    call nk_trap_dispatch
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static nk_trap_stubs: u8;
}

/// Called by `nk_trap_common` with the saved frame (interrupts are off: all
/// IDT entries are interrupt gates).
#[unsafe(no_mangle)]
extern "C" fn nk_trap_dispatch(frame: &mut TrapFrame) {
    let fault_addr = if frame.vector == u64::from(VECTOR_PAGE_FAULT) { cpu::read_cr2() } else { 0 };
    let lifted = protection::reassert_on_entry(frame.rip);
    let raw = HANDLER.load(Ordering::Acquire);
    if raw == 0 {
        crate::console::fatal_trap("nk: trap before the outer kernel set a handler", frame);
    }
    // SAFETY: `raw` was stored by `set_handler` from a value of type `Handler`.
    let handler = unsafe { core::mem::transmute::<usize, Handler>(raw) };
    handler(frame, TrapInfo { fault_addr });
    protection::restore_on_exit(lifted);
}

/// Re-asserting write protection on every entry (invariant I3): outer code
/// must never run with protection lifted, even when an interrupt or NMI
/// lands inside the gate.
mod protection {
    use crate::cpu::{self, cr0};
    use core::sync::atomic::{AtomicU64, Ordering};

    /// Entries that found protection lifted outside NK code: never expected.
    static FOUND_OFF_OUTSIDE_NK: AtomicU64 = AtomicU64::new(0);

    pub fn found_off_outside_nk() -> u64 {
        FOUND_OFF_OUTSIDE_NK.load(Ordering::Relaxed)
    }

    /// Turns protection back on if it was off; returns whether the
    /// interrupted context was the NK with protection lifted (then the exit
    /// restores it, so the NK finishes its work).
    pub fn reassert_on_entry(rip: u64) -> bool {
        if cfg!(feature = "native") {
            return false;
        }
        let value = cpu::read_cr0();
        if value & cr0::WP != 0 {
            return false;
        }
        let in_nk = crate::layout::image().nk_text.contains(rip);
        if !in_nk {
            // Counted while protection is still off: the counter is NK data.
            FOUND_OFF_OUTSIDE_NK.fetch_add(1, Ordering::Relaxed);
        }
        crate::gate::rearm();
        in_nk
    }

    pub fn restore_on_exit(lifted: bool) {
        if lifted {
            crate::gate::lift();
        }
    }
}

pub use protection::found_off_outside_nk;

#[derive(Clone, Copy)]
#[repr(C)]
struct IdtEntry {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl IdtEntry {
    const MISSING: Self =
        Self { offset_low: 0, selector: 0, ist: 0, type_attr: 0, offset_mid: 0, offset_high: 0, reserved: 0 };

    fn interrupt_gate(handler: u64, ist: u8) -> Self {
        Self {
            offset_low: handler as u16,
            selector: gdt::KERNEL_CODE,
            ist,
            type_attr: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(4096))]
struct Idt([IdtEntry; 256]);

struct IdtCell(UnsafeCell<Idt>);

// SAFETY: written once by the bootstrap CPU before interrupts are enabled;
// afterwards only the CPU reads it.
unsafe impl Sync for IdtCell {}

static IDT: IdtCell = IdtCell(UnsafeCell::new(Idt([IdtEntry::MISSING; 256])));

/// Fills and loads the IDT on the bootstrap CPU.
pub fn init_bsp() {
    // Only the symbol's address is taken.
    let stubs = &raw const nk_trap_stubs as u64;
    // SAFETY: boot, one CPU, interrupts off; nothing else references the IDT.
    let idt = unsafe { &mut *IDT.0.get() };
    for (n, entry) in idt.0.iter_mut().enumerate() {
        let ist = match n as u8 {
            VECTOR_DOUBLE_FAULT => gdt::IST_DOUBLE_FAULT,
            VECTOR_NMI => gdt::IST_NMI,
            VECTOR_MACHINE_CHECK => gdt::IST_MACHINE_CHECK,
            _ => 0,
        };
        *entry = IdtEntry::interrupt_gate(stubs + 16 * n as u64, ist);
    }
    let ptr = TablePointer { limit: (size_of::<Idt>() - 1) as u16, base: idt.0.as_ptr() as u64 };
    // SAFETY: the IDT is a static that lives forever and every entry points
    // at a stub in NK code.
    unsafe { cpu::lidt(&ptr) };
}
