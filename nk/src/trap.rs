//! Interrupt and exception entry: the IDT, the 256 entry stubs and the
//! dispatch to the outer kernel's handler.
//!
//! The outer kernel never writes the IDT: it registers one handler with
//! [`set_handler`], and every vector enters the NK's stubs first. The stubs
//! decide what was interrupted from CR0.WP, this CPU's own protection state,
//! which only the gate's lift clears: never from the interrupted RIP.
//!
//! - **WP clear: the NK was interrupted** (its gate window included). An NMI
//!   is latched on this CPU's flag and the NK resumes; the gate delivers it
//!   after the re-arm (`int 2`). Any other trap is an NK bug, or an
//!   attacker's jump into the window with interrupts or single-step on: the
//!   machine stops with a report. No outer handler ever gets a frame the NK
//!   would resume, and the exit never lifts protection.
//! - **WP set: outer code was interrupted.** A trap between one of the NK's
//!   privileged writes and its check (`.text.nk_priv`) stops the machine.
//!   Otherwise the outer handler runs, as before, with protection on.
//!
//! Every vector has an IST stack, so the CPU never pushes a frame on the
//! interrupted stack: a jump to the gate's lift with the stack pointer on a
//! page table cannot make the CPU write a frame there with protection off.
//! For everything but NMI, #DF and #MC, the stub then moves the frame to
//! the stack the CPU would have used without IST (the interrupted kernel
//! stack, or TSS.RSP0 from user mode), so the outer kernel can nest traps
//! and switch threads inside a handler as before.

use crate::cpu::{self, TablePointer};
use crate::gdt;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub const VECTOR_DIVIDE: u8 = 0;
pub const VECTOR_DEBUG: u8 = 1;
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
    match crate::gate::call(crate::api::Op::SetTrapHandler as u64, handler as usize as u64, 0, 0).status {
        0 => Ok(()),
        _ => Err(NotKernelCode(handler as usize as u64)),
    }
}

/// `syscall` enters the outer kernel at `entry`: LSTAR, with kernel CS/SS
/// from STAR and user CS/SS for `sysret` (GDT order: user data, then user
/// code), and IF, TF, DF, AC cleared by SFMASK, so the entry runs with
/// interrupts off and SMAP in force. EFER.SCE turns the instruction on.
pub(crate) fn set_syscall_entry(entry: u64) -> bool {
    let image = crate::layout::image();
    if !image.text.contains(entry) || image.nk_text.contains(entry) {
        return false;
    }
    use crate::sites::{self, EFER_SCE, MSR_EFER, MSR_LSTAR, MSR_SFMASK, MSR_STAR, SFMASK_VALUE, STAR_VALUE};
    // SAFETY: the selectors name this NK's GDT entries, the entry lies in
    // outer code (checked above), and SCE only enables `syscall`; each
    // write is checked against the same rules after it.
    unsafe {
        sites::wrmsr(MSR_STAR, STAR_VALUE);
        sites::wrmsr(MSR_LSTAR, entry);
        sites::wrmsr(MSR_SFMASK, SFMASK_VALUE);
        sites::wrmsr(MSR_EFER, crate::cpu::rdmsr(MSR_EFER) | EFER_SCE);
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
    push 0
    .endif
    push trap_n
    jmp nk_trap_common
    .set trap_n, trap_n + 1
    .endr

    /* On this vector's IST stack: [rsp] vector, +8 error code, +16 RIP,
       +24 CS, +32 RFLAGS, +40 RSP, +48 SS. */
nk_trap_common:
    push rax
    mov rax, cr0
    test eax, {wp}
    jz 7f                       /* protection lifted: the NK was interrupted */
    /* Outer code was interrupted. Between a privileged write and its
       check is no place for an outer handler to run: stop. */
    push rcx
    .if {protect}
    mov rax, qword ptr [rsp + 32]
    lea rcx, [rip + __nk_priv_start]
    cmp rax, rcx
    jb 1f
    lea rcx, [rip + __nk_priv_end]
    cmp rax, rcx
    jb 9f
    .endif
1:  mov rax, qword ptr [rsp + 16]
    cmp rax, 2
    je 4f
    cmp rax, 8
    je 4f
    cmp rax, 18
    je 4f
    /* Move the frame to the stack the CPU would have pushed it on without
       IST: the interrupted kernel stack, or TSS.RSP0 from user mode. */
    test byte ptr [rsp + 40], 3
    jnz 2f
    mov rax, qword ptr [rsp + 56]
    and rax, -16
    jmp 3f
2:  str eax
    sub eax, {first_tss}
    shr eax, 4
    and eax, {cpu_mask}
    imul eax, eax, {tss_size}
    lea rcx, [rip + {tables}]
    mov rax, qword ptr [rcx + rax + {rsp0}]
3:  sub rax, 72                 /* 9 words: rcx, rax, vector, error, rip, cs, rflags, rsp, ss */
    .set word, 0
    .rept 9
    mov rcx, qword ptr [rsp + word]
    mov qword ptr [rax + word], rcx
    .set word, word + 8
    .endr
    mov rsp, rax
4:  pop rcx
    pop rax
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    cld
    mov rdi, rsp
    call nk_trap_dispatch
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq

    /* Protection is lifted: this CPU is inside the NK. */
7:  cmp qword ptr [rsp + 8], 2
    jne 8f
    /* An NMI: latch it for the gate's exit, and resume the NK. */
    str eax
    sub eax, {first_tss}
    shr eax, 4
    cmp eax, {max_cpus}
    jae 8f
    push rcx
    lea rcx, [rip + {latched}]
    mov byte ptr [rcx + rax], 1
    lock inc qword ptr [rip + {nmi_count}]
    pop rcx
    pop rax
    add rsp, 16
    iretq
    /* Any other trap inside the NK: an NK bug, or a jump into the gate's
       window with interrupts or single-step on. Stop. */
8:  lea rdi, [rip + nk_msg_trap_inside]
    mov rsi, qword ptr [rsp + 8]
    mov rdx, qword ptr [rsp + 24]
    mov rcx, cr2
    jmp nk_fail_stop
9:  lea rdi, [rip + nk_msg_trap_window]
    mov rsi, qword ptr [rsp + 16]
    mov rdx, rax
    xor ecx, ecx
    jmp nk_fail_stop

    .section .rodata.nk_trap, "a", @progbits
nk_msg_trap_inside: .asciz "trap inside the nested kernel (vector, rip, cr2):"
nk_msg_trap_window: .asciz "trap between a privileged write and its check (vector, rip):"
"#,
    wp = const crate::cpu::cr0::WP,
    // The `native` build calls its unchecked sites with interrupts on.
    protect = const cfg!(not(feature = "native")) as u32,
    first_tss = const gdt::FIRST_TSS as u32,
    max_cpus = const crate::percpu::MAX_CPUS,
    cpu_mask = const crate::percpu::MAX_CPUS - 1,
    tss_size = const gdt::TSS_SIZE,
    rsp0 = const gdt::TSS_RSP0_OFFSET,
    tables = sym gdt::TABLES,
    latched = sym crate::gate::NMI_LATCHED,
    nmi_count = sym NMIS_LATCHED,
);

unsafe extern "C" {
    static nk_trap_stubs: u8;
}

/// NMIs that arrived inside the NK and were delivered after its re-arm.
static NMIS_LATCHED: AtomicU64 = AtomicU64::new(0);

/// How many NMIs arrived while this CPU was inside the NK (each was held
/// until the gate re-armed protection, then delivered to the handler).
pub fn nmis_latched() -> u64 {
    NMIS_LATCHED.load(Ordering::Relaxed)
}

/// Called by `nk_trap_common` with the saved frame, only when outer code
/// was interrupted (protection on), with interrupts off: all IDT entries
/// are interrupt gates.
#[unsafe(no_mangle)]
extern "C" fn nk_trap_dispatch(frame: &mut TrapFrame) {
    let fault_addr = if frame.vector == u64::from(VECTOR_PAGE_FAULT) { cpu::read_cr2() } else { 0 };
    let raw = HANDLER.load(Ordering::Acquire);
    if raw == 0 {
        crate::sites::fail_stop(
            c"trap before the outer kernel set a handler (vector, rip):",
            frame.vector,
            frame.rip,
            0,
        );
    }
    // SAFETY: `raw` was stored by `set_handler` from a value of type `Handler`.
    let handler = unsafe { core::mem::transmute::<usize, Handler>(raw) };
    handler(frame, TrapInfo { fault_addr });
}

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
pub(crate) struct Idt([IdtEntry; 256]);

/// What LIDT loads as the limit, and what the check after it expects.
pub(crate) const IDT_LIMIT: u16 = (size_of::<Idt>() - 1) as u16;

pub(crate) struct IdtCell(UnsafeCell<Idt>);

// SAFETY: written once by the bootstrap CPU before interrupts are enabled;
// afterwards only the CPU reads it.
unsafe impl Sync for IdtCell {}

pub(crate) static IDT: IdtCell = IdtCell(UnsafeCell::new(Idt([IdtEntry::MISSING; 256])));

/// Fills and loads the IDT on the bootstrap CPU.
pub fn init_bsp() {
    // Only the symbol's address is taken.
    let stubs = &raw const nk_trap_stubs as u64;
    // SAFETY: boot, one CPU, interrupts off; nothing else references the IDT.
    let idt = unsafe { &mut *IDT.0.get() };
    for (n, entry) in idt.0.iter_mut().enumerate() {
        // Every vector on an IST stack: the CPU never pushes a frame on
        // the interrupted stack, which may be anywhere (see the module docs).
        let ist = match n as u8 {
            VECTOR_DOUBLE_FAULT => gdt::IST_DOUBLE_FAULT,
            VECTOR_NMI => gdt::IST_NMI,
            VECTOR_MACHINE_CHECK => gdt::IST_MACHINE_CHECK,
            VECTOR_DEBUG => gdt::IST_DEBUG,
            _ => gdt::IST_OTHER,
        };
        *entry = IdtEntry::interrupt_gate(stubs + 16 * n as u64, ist);
    }
    let ptr = TablePointer { limit: IDT_LIMIT, base: idt.0.as_ptr() as u64 };
    // SAFETY: the IDT is a static that lives forever and every entry points
    // at a stub in NK code.
    unsafe { crate::sites::load_idt(&ptr) };
}
