//! The outer kernel's trap handler: timer ticks, spurious interrupts, and
//! exception reports. The NK's entry stubs call it for every vector.

use crate::arch::{self, ExitCode, PIC_SPURIOUS_BASE, lapic};
use crate::{console, println};
use core::sync::atomic::{AtomicU64, Ordering};
use nk::trap::{TrapFrame, TrapInfo, VECTOR_BREAKPOINT, VECTOR_PAGE_FAULT};

/// Page-fault error code bits: a write, an instruction fetch.
const PF_WRITE: u64 = 1 << 1;
const PF_FETCH: u64 = 1 << 4;

static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);

pub fn init() {
    arch::disable_legacy_pic();
    nk::trap::set_handler(handle).expect("the trap handler is outer-kernel code");
}

/// How many INT3 traps were taken (tests use it to see the handler ran).
pub fn breakpoints() -> u64 {
    BREAKPOINTS.load(Ordering::Relaxed)
}

fn handle(frame: &mut TrapFrame, info: TrapInfo) {
    let vector = frame.vector as u8;
    match vector {
        lapic::TIMER_VECTOR => {
            crate::time::tick();
            crate::proc::clock::tick(frame.from_user());
            lapic::end_of_interrupt();
            crate::tty::tick();
            crate::module::tick();
            crate::sched::wake(crate::sched::TICK);
            crate::fs::poll::notify();
            crate::sched::preempt();
        }
        lapic::SPURIOUS_VECTOR => {}
        v @ 0..32 if frame.from_user() && !matches!(v, 2 | 8 | 18) => user_exception(frame, info),
        v if (PIC_SPURIOUS_BASE..PIC_SPURIOUS_BASE + 16).contains(&v) => {}
        1 if crate::attack::gate::on_debug_trap(frame) || crate::attack::traps::on_debug_trap(frame) => {}
        2 if crate::attack::traps::on_nmi(frame) => {}
        VECTOR_BREAKPOINT => {
            BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
            println!("EXCEPTION: breakpoint (#BP, vector 3) at rip={:#x}; resuming", frame.rip);
        }
        0..32 => fatal_exception(frame, info),
        v => {
            println!("trap: unexpected interrupt vector {:#x}", v);
            lapic::end_of_interrupt();
        }
    }
    if frame.from_user() {
        crate::proc::signal::deliver_trap(frame);
    }
}

/// An exception in user mode: a page fault the process's memory resolves,
/// else the signal Linux would send (the process's handler runs, or the
/// process ends; the kernel goes on either way).
fn user_exception(frame: &TrapFrame, info: TrapInfo) {
    use crate::proc::signal::{self, Info};
    let vector = frame.vector as u8;
    let write = frame.error_code & PF_WRITE != 0;
    let fetch = frame.error_code & PF_FETCH != 0;
    let (sig, code, addr) = match vector {
        VECTOR_PAGE_FAULT => match crate::proc::user_page_fault(info.fault_addr, write, fetch) {
            Ok(()) => return,
            Err(crate::proc::mem::Fault::Bus) => (SIGBUS, BUS_ADRERR, info.fault_addr),
            Err(crate::proc::mem::Fault::Access) if frame.error_code & 1 != 0 => {
                (signal::SIGSEGV, signal::SEGV_ACCERR, info.fault_addr)
            }
            Err(_) => (signal::SIGSEGV, signal::SEGV_MAPERR, info.fault_addr),
        },
        0 | 16 | 19 => (SIGFPE, 0, frame.rip),
        6 => (SIGILL, 0, frame.rip),
        1 | VECTOR_BREAKPOINT => (SIGTRAP, 0, frame.rip),
        _ => (signal::SIGSEGV, SI_KERNEL, 0),
    };
    if !signal::force(sig, Info { code, addr, ..Info::default() }) {
        let (name, mnemonic) = exception_name(vector);
        let at = if vector == VECTOR_PAGE_FAULT {
            alloc::format!(" at {:#x}", info.fault_addr)
        } else {
            alloc::string::String::new()
        };
        println!(
            "process '{}' (pid {}): {} ({}){} rip={:#x}: signal {}",
            crate::sched::current_name(),
            crate::sched::current(),
            name,
            mnemonic,
            at,
            frame.rip,
            sig
        );
    }
}

const SIGILL: u32 = 4;
const SIGTRAP: u32 = 5;
const SIGBUS: u32 = 7;
const SIGFPE: u32 = 8;
/// `si_code` of SIGBUS for an address with nothing behind it.
const BUS_ADRERR: i32 = 2;
/// `si_code` of a signal the kernel raised for no particular address.
const SI_KERNEL: i32 = 0x80;

/// What protected thing an address is, for fault reports: the invariant a
/// blocked write would have broken.
/// What the faulting address maps, by the NK's frame table, and the
/// invariant that makes it read-only to the outer kernel.
fn protected_what(addr: u64) -> &'static str {
    use nk::FrameKind;
    let Some(t) = crate::mm::walk::translate(crate::mm::walk::current_root(), addr) else { return "" };
    if t.user {
        return ", a user page: SMEP/SMAP (I6)";
    }
    match nk::api::frame_kind(t.phys / 4096) {
        Some(FrameKind::Ptp(_)) => ", a page-table page (I2)",
        Some(FrameKind::Nk) => ", NK memory (I8, I9)",
        Some(FrameKind::Code) => ", kernel code (I6)",
        Some(FrameKind::ReadOnly) => ", kernel read-only data (I6)",
        _ => "",
    }
}

fn exception_name(vector: u8) -> (&'static str, &'static str) {
    match vector {
        0 => ("divide error", "#DE"),
        1 => ("debug", "#DB"),
        2 => ("non-maskable interrupt", "NMI"),
        4 => ("overflow", "#OF"),
        5 => ("bound range exceeded", "#BR"),
        6 => ("invalid opcode", "#UD"),
        7 => ("device not available", "#NM"),
        8 => ("double fault", "#DF"),
        10 => ("invalid TSS", "#TS"),
        11 => ("segment not present", "#NP"),
        12 => ("stack-segment fault", "#SS"),
        13 => ("general protection fault", "#GP"),
        14 => ("page fault", "#PF"),
        16 => ("x87 floating-point error", "#MF"),
        17 => ("alignment check", "#AC"),
        18 => ("machine check", "#MC"),
        19 => ("SIMD floating-point error", "#XM"),
        20 => ("virtualization exception", "#VE"),
        21 => ("control protection", "#CP"),
        _ => ("reserved exception", "#??"),
    }
}

/// Describes a page-fault error code (Intel SDM vol. 3, 4.7).
fn page_fault_cause(code: u64) -> (&'static str, &'static str, &'static str, &'static str) {
    let access = if code & (1 << 4) != 0 {
        "instruction fetch"
    } else if code & (1 << 1) != 0 {
        "write"
    } else {
        "read"
    };
    let presence = if code & 1 != 0 { "protection violation" } else { "not present" };
    let mode = if code & (1 << 2) != 0 { "user" } else { "supervisor" };
    let extra = if code & (1 << 5) != 0 {
        ", protection key"
    } else if code & (1 << 3) != 0 {
        ", reserved bit set"
    } else {
        ""
    };
    (access, presence, mode, extra)
}

fn fatal_exception(f: &TrapFrame, info: TrapInfo) -> ! {
    let vector = f.vector as u8;
    let (name, mnemonic) = exception_name(vector);
    let mode = if f.from_user() { "user" } else { "kernel" };
    let in_nk = nk::layout::image().nk_text.contains(f.rip);
    let thread = crate::sched::current_name();
    println!(
        "EXCEPTION: {} ({}, vector {}) in {} mode, thread '{}'{}",
        name,
        mnemonic,
        vector,
        mode,
        thread,
        if in_nk { ", inside the nested kernel" } else { "" }
    );
    if vector == VECTOR_PAGE_FAULT {
        let (access, presence, who, extra) = page_fault_cause(f.error_code);
        println!("  cr2={:#018x} (faulting address): {} {}, {}{}", info.fault_addr, who, access, presence, extra);
    }
    println!("  rip={:#018x} cs={:#06x} rflags={:#010x} error={:#x}", f.rip, f.cs, f.rflags, f.error_code);
    println!("  rsp={:#018x} ss={:#06x}", f.rsp, f.ss);
    println!("  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}", f.rax, f.rbx, f.rcx, f.rdx);
    println!("  rsi={:#018x} rdi={:#018x} rbp={:#018x} r8 ={:#018x}", f.rsi, f.rdi, f.rbp, f.r8);
    println!("  r9 ={:#018x} r10={:#018x} r11={:#018x} r12={:#018x}", f.r9, f.r10, f.r11, f.r12);
    println!("  r13={:#018x} r14={:#018x} r15={:#018x}", f.r13, f.r14, f.r15);
    // A fault in an ordinary kernel thread ends that thread only. A fault in
    // the boot thread (the shell), or inside the NK, stops the machine.
    // On the protected kernel a fault the NK takes never gets here (its
    // trap stubs stop the machine themselves), so a fault at an NK-text
    // RIP is outer code that jumped into NK text with protection on (or
    // the NK's entry stub failing to move such a thread's frame onto a
    // stack it pointed at protected memory): that thread ends, as any
    // other. On `native` the NK runs unprotected and may have been
    // interrupted halfway through a change: stop.
    let nk_ran_it = in_nk && nk::BACKEND == "native";
    if !nk_ran_it {
        let why = if vector == VECTOR_PAGE_FAULT {
            alloc::format!("{} at {:#x}{} (rip {:#x})", name, info.fault_addr, protected_what(info.fault_addr), f.rip)
        } else {
            alloc::format!("{} (rip {:#x})", name, f.rip)
        };
        println!("thread '{}' terminated: {}", thread, why);
        crate::sched::kill_current(why);
    }
    console::force_unlock();
    crate::ktest::report_panic();
    println!("kernel halted: unrecoverable exception in kernel mode");
    arch::exit_qemu(ExitCode::Failure)
}

crate::ktest!(
    fn breakpoint_is_reported_and_resumed() {
        let before = breakpoints();
        arch::breakpoint();
        arch::breakpoint();
        crate::kassert_eq!(breakpoints(), before + 2);
        Ok(())
    }
);

crate::ktest!(
    fn exception_names_and_page_fault_causes() {
        crate::kassert_eq!(exception_name(14), ("page fault", "#PF"));
        crate::kassert_eq!(exception_name(13).1, "#GP");
        crate::kassert_eq!(page_fault_cause(0b00010), ("write", "not present", "supervisor", ""));
        crate::kassert_eq!(page_fault_cause(0b10101), ("instruction fetch", "protection violation", "user", ""));
        Ok(())
    }
);
