//! Signals: actions, the blocked mask and pending set of each process,
//! `kill`, and delivery on the way back to user mode (after a system call
//! or an interrupt or fault taken in user mode). A handler gets a Linux
//! `rt_sigframe` on the user stack (siginfo, ucontext with the registers
//! and the FXSAVE image) and returns through `rt_sigreturn`.

use super::{PROCS, Pid, with_current};
use crate::mm::usercopy::{copy_from_user, copy_to_user};
use crate::sched;
use nk_model::layout::USER_END;

pub const SIGKILL: u32 = 9;
pub const SIGSEGV: u32 = 11;
pub const SIGPIPE: u32 = 13;
pub const SIGCHLD: u32 = 17;
pub const SIGINT: u32 = 2;
pub const SIGQUIT: u32 = 3;
pub const SIGCONT: u32 = 18;
pub const SIGSTOP: u32 = 19;
pub const SIGTSTP: u32 = 20;
pub const SIGTTIN: u32 = 21;
pub const SIGTTOU: u32 = 22;
const SIGURG: u32 = 23;
const SIGWINCH: u32 = 28;
pub const NSIG: u32 = 64;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;
const SA_SIGINFO: u64 = 4;
const SA_RESTART: u64 = 0x1000_0000;

/// RAX on the way out of a call that asked to be made again.
const RESTART: u64 = (-super::syscall::errno::ERESTARTSYS) as u64;
/// The length of `syscall` (0f 05), which a restart steps back over.
const SYSCALL_LEN: u64 = 2;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;

/// `si_code` values.
pub const SI_USER: i32 = 0;
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;
/// SIGCHLD's flag: no SIGCHLD when a child stops or continues.
const SA_NOCLDSTOP: u64 = 1;

/// Signals that can be neither caught, blocked nor ignored.
const UNBLOCKABLE: u64 = bit(SIGKILL) | bit(SIGSTOP);

const fn bit(sig: u32) -> u64 {
    1 << (sig - 1)
}

/// `struct kernel_sigaction` on x86-64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Action {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// What a pending signal carries into `siginfo_t`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Info {
    pub code: i32,
    /// The sender (SI_USER, SIGCHLD) or 0.
    pub pid: u64,
    /// The faulting address (SIGSEGV).
    pub addr: u64,
    /// The child's exit status or signal (SIGCHLD).
    pub status: i32,
}

#[derive(Clone)]
pub struct Signals {
    actions: [Action; NSIG as usize],
    pub mask: u64,
    pending: u64,
    info: [Info; NSIG as usize],
    /// The mask to go back to after a call that waits under another
    /// (`rt_sigsuspend`, `ppoll`, `pselect6`): a handler the wait let in
    /// runs with the call's mask and returns to this one (Linux's
    /// `saved_sigmask`); with no handler it comes back on the way out.
    saved_mask: Option<u64>,
}

impl Default for Signals {
    fn default() -> Self {
        Signals { actions: [Action::default(); 64], mask: 0, pending: 0, info: [Info::default(); 64], saved_mask: None }
    }
}

impl Signals {
    /// A forked child's: the same actions and mask, nothing pending.
    pub fn for_child(&self) -> Signals {
        Signals { pending: 0, info: [Info::default(); 64], saved_mask: None, ..self.clone() }
    }

    /// After `execve`: handlers are gone (the code they pointed at is);
    /// ignored signals stay ignored; mask and pending signals stay.
    pub fn exec(&mut self) {
        for a in self.actions.iter_mut() {
            if a.handler != SIG_IGN {
                *a = Action::default();
            }
        }
    }

    /// Whether `sig` would be ignored or held back now (for SIGTTIN and
    /// SIGTTOU, which then are not sent: Linux's `is_ignored`).
    pub fn ignores_or_blocks(&self, sig: u32) -> bool {
        self.action(sig).handler == SIG_IGN || self.mask & bit(sig) != 0
    }

    pub fn action(&self, sig: u32) -> Action {
        self.actions[(sig - 1) as usize]
    }

    /// Sets `sig`'s action; a pending signal now ignored is dropped.
    pub fn set_action(&mut self, sig: u32, a: Action) {
        self.actions[(sig - 1) as usize] = a;
        if ignored(sig, a) {
            self.pending &= !bit(sig);
        }
    }

    pub fn set_mask(&mut self, mask: u64) {
        self.mask = mask & !UNBLOCKABLE;
    }

    /// Waits under `mask` for one call: the present mask comes back when
    /// the call returns to user mode (`deliver`).
    pub fn mask_for_call(&mut self, mask: u64) {
        self.saved_mask.get_or_insert(self.mask);
        self.set_mask(mask);
    }

    /// Marks `sig` pending (a second one before delivery merges, as for
    /// Linux's standard signals). An ignored signal is dropped at once.
    /// SIGCONT drops pending stop signals, and a stop signal a pending
    /// SIGCONT, as on Linux.
    pub fn post(&mut self, sig: u32, info: Info) {
        if sig == SIGCONT {
            self.pending &= !STOPS;
        } else if STOPS & bit(sig) != 0 {
            self.pending &= !bit(SIGCONT);
        }
        if ignored(sig, self.action(sig)) {
            return;
        }
        self.pending |= bit(sig);
        self.info[(sig - 1) as usize] = info;
    }

    /// Whether SIGKILL is pending: a stopped process wakes to die.
    pub fn kill_pending(&self) -> bool {
        self.pending & bit(SIGKILL) != 0
    }

    /// Pending signals held back by the mask (`sigpending`).
    pub fn pending_blocked(&self) -> u64 {
        self.pending & self.mask
    }

    /// Whether a signal is pending and not blocked: a sleeping system call
    /// stops and returns EINTR.
    pub fn deliverable(&self) -> bool {
        self.pending & !self.mask != 0
    }

    /// Takes the next signal to deliver: SIGKILL first, then the lowest.
    fn take(&mut self) -> Option<(u32, Info)> {
        let ready = self.pending & !self.mask;
        if ready == 0 {
            return None;
        }
        let sig = if ready & bit(SIGKILL) != 0 { SIGKILL } else { ready.trailing_zeros() + 1 };
        self.pending &= !bit(sig);
        Some((sig, self.info[(sig - 1) as usize]))
    }
}

/// The signals that stop a process by default.
const STOPS: u64 = bit(SIGSTOP) | bit(SIGTSTP) | bit(SIGTTIN) | bit(SIGTTOU);

/// What a signal does by default: nothing for these, a stop for `STOPS`,
/// else the end of the process.
fn ignored_by_default(sig: u32) -> bool {
    matches!(sig, SIGCHLD | SIGCONT | SIGURG | SIGWINCH)
}

/// Whether `parent` asked not to hear of its children stopping.
pub fn no_child_stop(parent: Pid) -> bool {
    super::with_process(parent, |p| p.sig.action(SIGCHLD).flags & SA_NOCLDSTOP != 0).unwrap_or(true)
}

fn ignored(sig: u32, a: Action) -> bool {
    sig != SIGKILL && (a.handler == SIG_IGN || (a.handler == SIG_DFL && ignored_by_default(sig)))
}

/// Sends `sig` to process `pid` (its thread), waking it if it sleeps.
/// `Err(())` if there is no such process. Signal 0 only checks. SIGCONT
/// also resumes a stopped process, whether it is blocked, caught or not;
/// SIGKILL wakes a stopped one to die.
pub fn send(pid: Pid, sig: u32, info: Info) -> Result<(), ()> {
    let (wake, continued) = crate::arch::without_interrupts(|| {
        let mut procs = PROCS.lock();
        let p = procs.get_mut(&pid).ok_or(())?;
        if sig != 0 {
            p.sig.post(sig, info);
        }
        let continued = sig == SIGCONT && p.job.cont();
        Ok::<_, ()>((p.sig.deliverable() || continued || (sig == SIGKILL), continued.then_some(p.parent)))
    })?;
    if wake {
        sched::interrupt(pid);
    }
    if let Some(parent) = continued {
        super::jobs::tell_parent(parent, pid, CLD_CONTINUED, SIGCONT as i32);
    }
    Ok(())
}

/// A synchronous signal for a fault in user mode (SIGSEGV, SIGILL, ...):
/// blocked or ignored, it is not held back, as on Linux: the default
/// action (the end of the process) applies. True when a handler will run.
pub fn force(sig: u32, info: Info) -> bool {
    with_current(|p| {
        let a = p.sig.action(sig);
        let handled = a.handler > SIG_IGN && p.sig.mask & bit(sig) == 0;
        if !handled {
            p.sig.set_action(sig, Action::default());
            p.sig.set_mask(p.sig.mask & !bit(sig));
        }
        p.sig.pending |= bit(sig);
        p.sig.info[(sig - 1) as usize] = info;
        handled
    })
    .unwrap_or(false)
}

/// Delivers pending signals on the way out of system call `nr`. A call
/// that asked to be restarted (ERESTARTSYS) is made again, by pointing
/// RIP back at the `syscall` instruction with its number in RAX, unless a
/// handler without SA_RESTART runs: then it returns EINTR, as on Linux.
pub fn deliver_syscall(f: &mut crate::arch::user::SyscallFrame, nr: u64) {
    let restart = f.rax == RESTART;
    let mut r = UserRegs {
        r8: f.r8,
        r9: f.r9,
        r10: f.r10,
        r11: f.rflags,
        r12: f.r12,
        r13: f.r13,
        r14: f.r14,
        r15: f.r15,
        rdi: f.rdi,
        rsi: f.rsi,
        rbp: f.rbp,
        rbx: f.rbx,
        rdx: f.rdx,
        rax: f.rax,
        rcx: f.rip,
        rsp: f.rsp,
        rip: f.rip,
        rflags: f.rflags,
    };
    let mut changed = deliver(&mut r, restart.then_some(nr));
    if restart && r.rax == RESTART {
        // No handler ran (the signal stopped the process, or was ignored).
        make_again(&mut r, nr);
        changed = true;
    }
    if changed {
        // `sysretq` puts RIP in RCX and RFLAGS in R11 whatever we do.
        *f = crate::arch::user::SyscallFrame {
            r15: r.r15,
            r14: r.r14,
            r13: r.r13,
            r12: r.r12,
            rbp: r.rbp,
            rbx: r.rbx,
            r9: r.r9,
            r8: r.r8,
            r10: r.r10,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rax: r.rax,
            rip: r.rip,
            rflags: r.rflags,
            rsp: r.rsp,
        };
    }
}

/// Delivers pending signals on the way out of an interrupt or exception
/// taken in user mode.
pub fn deliver_trap(f: &mut nk::trap::TrapFrame) {
    let mut r = UserRegs {
        r8: f.r8,
        r9: f.r9,
        r10: f.r10,
        r11: f.r11,
        r12: f.r12,
        r13: f.r13,
        r14: f.r14,
        r15: f.r15,
        rdi: f.rdi,
        rsi: f.rsi,
        rbp: f.rbp,
        rbx: f.rbx,
        rdx: f.rdx,
        rax: f.rax,
        rcx: f.rcx,
        rsp: f.rsp,
        rip: f.rip,
        rflags: f.rflags,
    };
    if deliver(&mut r, None) {
        (f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15) = (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15);
        (f.rdi, f.rsi, f.rbp, f.rbx, f.rdx, f.rax, f.rcx) = (r.rdi, r.rsi, r.rbp, r.rbx, r.rdx, r.rax, r.rcx);
        (f.rsp, f.rip) = (r.rsp, r.rip);
        f.rflags = (r.rflags & crate::arch::user::USER_FLAGS) | (1 << 9);
    }
}

/// Whether the calling process has a signal to take now (a sleeping call
/// gives up with EINTR).
pub fn pending_current() -> bool {
    with_current(|p| p.sig.deliverable()).unwrap_or(false)
}

/// The user registers at the return to user mode, whichever way it goes
/// (the field order is `arch::user::return_to_user`'s).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UserRegs {
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rdx: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rsp: u64,
    pub rip: u64,
    pub rflags: u64,
}

/// `stack_t.ss_flags`.
pub const SS_ONSTACK: u64 = 1;
pub const SS_DISABLE: u64 = 2;
/// The smallest alternate stack Linux takes on x86-64 (`MINSIGSTKSZ`).
pub const MINSIGSTKSZ: u64 = 2048;

// Offsets in the Linux x86-64 signal frame.
const UC_MCONTEXT: u64 = 40;
const UC_SIGMASK: u64 = UC_MCONTEXT + 256;
const UCONTEXT_SIZE: u64 = UC_SIGMASK + 8;
const SIGINFO_SIZE: u64 = 128;
/// pretcode, ucontext, siginfo.
const FRAME_SIZE: u64 = 8 + UCONTEXT_SIZE + SIGINFO_SIZE;
const FPSTATE_SIZE: u64 = 512;
const RED_ZONE: u64 = 128;

/// Runs the pending signals' actions before the calling thread returns to
/// user mode with `regs`: default actions end the process here; a handler
/// rewrites `regs` to enter it. Returns whether `regs` changed.
///
/// `restart` is the number of the system call being left when it asked
/// to be restarted: a handler with SA_RESTART returns into the call made
/// again, one without it sees EINTR.
pub fn deliver(regs: &mut UserRegs, restart: Option<u64>) -> bool {
    loop {
        let Some((sig, info, action, (old_mask, alt), root)) = with_current(|p| {
            let Some((sig, info)) = p.sig.take() else {
                if let Some(m) = p.sig.saved_mask.take() {
                    p.sig.set_mask(m);
                }
                return None;
            };
            let action = p.sig.action(sig);
            let mut old = p.sig.mask;
            if action.handler > SIG_IGN {
                // The handler's return (sigreturn) restores the saved mask.
                old = p.sig.saved_mask.take().unwrap_or(old);
                let mut mask = p.sig.mask | action.mask;
                if action.flags & SA_NODEFER == 0 {
                    mask |= bit(sig);
                }
                p.sig.set_mask(mask);
                if action.flags & SA_RESETHAND != 0 {
                    p.sig.set_action(sig, Action::default());
                }
            }
            // SA_ONSTACK: the frame goes on the alternate stack, unless the
            // thread already runs on it (a nested signal stays there).
            let alt = p
                .alt_stack
                .filter(|&(sp, size)| action.flags & SA_ONSTACK != 0 && !(sp..sp + size).contains(&regs.rsp));
            Some((sig, info, action, (old, alt), p.root()))
        })
        .flatten() else {
            return false;
        };
        match action.handler {
            SIG_IGN => continue,
            SIG_DFL if ignored_by_default(sig) => continue,
            SIG_DFL if STOPS & bit(sig) != 0 => super::jobs::stop_current(sig),
            SIG_DFL => super::terminate_current(sig),
            _ => {
                if let Some(nr) = restart
                    && regs.rax == RESTART
                {
                    if action.flags & SA_RESTART != 0 {
                        make_again(regs, nr);
                    } else {
                        regs.rax = (-super::syscall::errno::EINTR) as u64;
                    }
                }
                if push_frame(root, regs, sig, info, action, old_mask, alt).is_err() {
                    // No room for the frame: as Linux does, SIGSEGV by force.
                    super::terminate_current(SIGSEGV);
                }
                return true;
            }
        }
    }
}

/// Points `regs` back at the `syscall` instruction with call `nr` in RAX.
fn make_again(regs: &mut UserRegs, nr: u64) {
    regs.rax = nr;
    regs.rip = regs.rip.wrapping_sub(SYSCALL_LEN);
}

/// Lays the signal frame out below the user stack and points `regs` at
/// the handler.
fn push_frame(
    root: u64,
    regs: &mut UserRegs,
    sig: u32,
    info: Info,
    action: Action,
    old_mask: u64,
    alt: Option<(u64, u64)>,
) -> Result<(), ()> {
    let mut fpu = sched::fpu_state();
    // On the alternate stack: from its top, no red zone to skip.
    let below = match alt {
        Some((sp, size)) => sp.checked_add(size).ok_or(())?,
        None => regs.rsp.checked_sub(RED_ZONE).ok_or(())?,
    };
    let fp = (below.checked_sub(FPSTATE_SIZE).ok_or(())?) & !63;
    // At the handler's entry RSP + 8 is 16-aligned, as after a call.
    let frame = ((fp - FRAME_SIZE) & !15) - 8;
    copy_to_user(root, fp, &fpu.0).map_err(|_| ())?;
    let mut f = [0u8; FRAME_SIZE as usize];
    let put = |f: &mut [u8], at: u64, v: u64| f[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut f, 0, action.restorer);
    // uc_stack: the alternate stack as sigaltstack would report it.
    let (ss_sp, ss_flags, ss_size) = match alt {
        Some((sp, size)) => (sp, SS_ONSTACK, size),
        None => (0, SS_DISABLE, 0),
    };
    put(&mut f, 8 + 16, ss_sp);
    put(&mut f, 8 + 24, ss_flags);
    put(&mut f, 8 + 32, ss_size);
    let mc = 8 + UC_MCONTEXT;
    let gregs = [
        regs.r8,
        regs.r9,
        regs.r10,
        regs.r11,
        regs.r12,
        regs.r13,
        regs.r14,
        regs.r15,
        regs.rdi,
        regs.rsi,
        regs.rbp,
        regs.rbx,
        regs.rdx,
        regs.rax,
        regs.rcx,
        regs.rsp,
        regs.rip,
        regs.rflags,
    ];
    for (i, v) in gregs.iter().enumerate() {
        put(&mut f, mc + i as u64 * 8, *v);
    }
    // cs, gs, fs, ss as four 16-bit fields.
    put(&mut f, mc + 18 * 8, u64::from(nk::USER_CODE) | (u64::from(nk::USER_DATA) << 48));
    put(&mut f, mc + 22 * 8, info.addr); // cr2
    put(&mut f, mc + 23 * 8, fp); // fpstate
    put(&mut f, 8 + UC_SIGMASK, old_mask);
    let si = 8 + UCONTEXT_SIZE;
    f[si as usize..si as usize + 4].copy_from_slice(&(sig as i32).to_le_bytes());
    f[si as usize + 8..si as usize + 12].copy_from_slice(&info.code.to_le_bytes());
    if sig == SIGSEGV {
        put(&mut f, si + 16, info.addr);
    } else {
        f[si as usize + 16..si as usize + 20].copy_from_slice(&(info.pid as i32).to_le_bytes());
        f[si as usize + 24..si as usize + 28].copy_from_slice(&info.status.to_le_bytes());
    }
    copy_to_user(root, frame, &f).map_err(|_| ())?;
    *regs = UserRegs {
        rip: action.handler,
        rsp: frame,
        rdi: u64::from(sig),
        rsi: if action.flags & SA_SIGINFO != 0 { frame + si } else { 0 },
        rdx: if action.flags & SA_SIGINFO != 0 { frame + 8 } else { 0 },
        rflags: regs.rflags & !(1 << 10 | 1 << 8), // DF and TF clear, as Linux
        ..UserRegs::default()
    };
    // The handler starts with a clean x87/SSE state, as after FNINIT.
    fpu = crate::arch::fpu::FpuState::default();
    sched::set_fpu_state(fpu);
    Ok(())
}

/// `rt_sigreturn`: the registers, mask and FPU state the frame at `sp`
/// (the user stack pointer at the call: the ucontext) saved.
pub fn sigreturn(sp: u64) -> Result<UserRegs, ()> {
    let root = with_current(|p| p.root()).ok_or(())?;
    let mut uc = [0u8; UCONTEXT_SIZE as usize];
    copy_from_user(root, &mut uc, sp).map_err(|_| ())?;
    let get = |at: u64| u64::from_le_bytes(uc[at as usize..at as usize + 8].try_into().unwrap_or_default());
    let g = |i: u64| get(UC_MCONTEXT + i * 8);
    let regs = UserRegs {
        r8: g(0),
        r9: g(1),
        r10: g(2),
        r11: g(3),
        r12: g(4),
        r13: g(5),
        r14: g(6),
        r15: g(7),
        rdi: g(8),
        rsi: g(9),
        rbp: g(10),
        rbx: g(11),
        rdx: g(12),
        rax: g(13),
        rcx: g(14),
        rsp: g(15),
        rip: g(16),
        rflags: g(17),
    };
    let fp = g(23);
    if fp != 0 {
        let mut fpu = crate::arch::fpu::FpuState::default();
        copy_from_user(root, &mut fpu.0, fp).map_err(|_| ())?;
        sched::set_fpu_state(fpu);
    }
    let mask = get(UC_SIGMASK);
    with_current(|p| p.sig.set_mask(mask));
    if regs.rip >= USER_END || !nk_model::layout::is_canonical(regs.rip) {
        return Err(());
    }
    Ok(regs)
}
