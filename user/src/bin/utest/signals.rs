//! Signals: installing actions, delivery to handlers (with siginfo), masks
//! and pending signals, what cannot be caught, kill's checks, default
//! actions that end a child, SIGCHLD, a SIGSEGV handler that repairs the
//! fault, and registers and FPU state that survive a handler.

use crate::support::*;
use std::hint::black_box;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

pub const TESTS: &[Test] = tests![
    rt_sigaction_reads_back_the_old_action,
    rt_sigaction_refuses_bad_arguments,
    a_handler_runs_before_kill_returns,
    sigaltstack_runs_handlers_on_the_alternate_stack,
    a_siginfo_handler_gets_the_signal_and_the_sender,
    a_blocked_signal_stays_pending_until_unblocked,
    sigpending_shows_a_blocked_signal,
    sigkill_and_sigstop_cannot_be_caught_or_blocked,
    kill_of_a_missing_pid_is_esrch,
    kill_with_signal_0_checks_existence,
    sigkill_and_sigterm_end_a_child,
    a_sigchld_handler_runs_when_a_child_exits,
    a_sigsegv_handler_can_repair_the_fault,
    a_bad_pointer_kills_only_the_child_with_sigsegv,
    registers_and_fpu_survive_asynchronous_handlers,
];

/// What handlers saw. Each test runs in its own process, so these start
/// at zero for every test.
static HITS: AtomicU32 = AtomicU32::new(0);
static LAST_SIG: AtomicI32 = AtomicI32::new(0);
static SI_SIGNO: AtomicI32 = AtomicI32::new(0);
static SI_CODE: AtomicI32 = AtomicI32::new(-1);
static SI_PID: AtomicI32 = AtomicI32::new(0);
static SI_STATUS: AtomicI32 = AtomicI32::new(-1);
static SI_ADDR: AtomicUsize = AtomicUsize::new(0);
/// The page the SIGSEGV handler makes writable again.
static FIX_PAGE: AtomicUsize = AtomicUsize::new(0);
/// Where the handler leaves its floating-point result (so it is computed).
static HANDLER_FLOAT: AtomicU64 = AtomicU64::new(0);

/// Linux's si_code for a fault on a page mapped without the access.
const SEGV_ACCERR: i32 = 2;

extern "C" fn count(sig: libc::c_int) {
    HITS.fetch_add(1, SeqCst);
    LAST_SIG.store(sig, SeqCst);
}

extern "C" fn record(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo; the union
    // fields read are the ones every signal here fills (pid and status for
    // SIGCHLD and kill, the address for SIGSEGV), and they are only stored.
    unsafe {
        let info = &*info;
        SI_SIGNO.store(info.si_signo, SeqCst);
        SI_CODE.store(info.si_code, SeqCst);
        SI_PID.store(info.si_pid(), SeqCst);
        SI_STATUS.store(info.si_status(), SeqCst);
        SI_ADDR.store(info.si_addr() as usize, SeqCst);
    }
    count(sig);
}

fn handler_address(h: extern "C" fn(libc::c_int)) -> usize {
    h as usize
}

fn info_handler_address() -> usize {
    record as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize
}

fn kill_self(sig: libc::c_int) -> TestResult {
    // SAFETY: signals this process; the test has set what happens.
    equals(&format!("kill(getpid(), {sig})"), unsafe { libc::kill(libc::getpid(), sig) }.into(), 0)
}

fn rt_sigaction_reads_back_the_old_action() -> TestResult {
    let h = handler_address(count);
    let old = set_action(libc::SIGUSR1, h, libc::SA_RESTART, &[libc::SIGUSR2])?;
    check(old.sa_sigaction == libc::SIG_DFL, || {
        format!("SIGUSR1's first action is {:#x}, not SIG_DFL", old.sa_sigaction)
    })?;
    let old = set_action(libc::SIGUSR1, libc::SIG_IGN, 0, &[])?;
    check(old.sa_sigaction == h, || format!("the old handler is {:#x}, wanted {h:#x}", old.sa_sigaction))?;
    check(old.sa_flags & libc::SA_RESTART != 0, || format!("the old flags {:#x} lost SA_RESTART", old.sa_flags))?;
    check(has(&old.sa_mask, libc::SIGUSR2), || "the old mask lost SIGUSR2".into())?;
    check(!has(&old.sa_mask, libc::SIGUSR1), || "the old mask gained SIGUSR1".into())?;
    // SAFETY: a zeroed sigaction is a valid value; a query changes nothing.
    let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `cur` is writable.
    equals("sigaction query", unsafe { libc::sigaction(libc::SIGUSR1, std::ptr::null(), &mut cur) }.into(), 0)?;
    check(cur.sa_sigaction == libc::SIG_IGN, || format!("the query gave {:#x}, not SIG_IGN", cur.sa_sigaction))
}

/// The kernel's struct sigaction: handler, flags, restorer, mask.
type KernelSigaction = [u64; 4];

fn raw_sigaction(sig: i64, act: Option<&KernelSigaction>, size: usize) -> i64 {
    let mut old: KernelSigaction = [0; 4];
    let act = act.map_or(std::ptr::null(), |a| a as *const KernelSigaction);
    // SAFETY: `act` is null or a valid kernel sigaction, `old` is writable.
    unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, act, &mut old, size) }
}

fn rt_sigaction_refuses_bad_arguments() -> TestResult {
    fails_with("rt_sigaction with sigsetsize 4", raw_sigaction(libc::SIGUSR1.into(), None, 4), libc::EINVAL)?;
    fails_with("rt_sigaction of signal 0", raw_sigaction(0, None, 8), libc::EINVAL)?;
    fails_with("rt_sigaction of signal 65", raw_sigaction(65, None, 8), libc::EINVAL)?;
    equals("rt_sigaction query of signal 64", raw_sigaction(64, None, 8), 0)?;
    // SAFETY: the kernel must refuse the pointer.
    let r = unsafe { libc::syscall(libc::SYS_rt_sigaction, libc::SIGUSR1, 0x10usize, 0usize, 8) };
    fails_with("rt_sigaction from a bad pointer", r, libc::EFAULT)
}

fn a_handler_runs_before_kill_returns() -> TestResult {
    set_action(libc::SIGUSR1, handler_address(count), 0, &[])?;
    kill_self(libc::SIGUSR1)?;
    let hits = HITS.load(SeqCst);
    check(hits == 1, || format!("the handler ran {hits} times by the time kill returned, wanted 1"))?;
    check(LAST_SIG.load(SeqCst) == libc::SIGUSR1, || format!("the handler got signal {}", LAST_SIG.load(SeqCst)))?;
    kill_self(libc::SIGUSR1)?;
    check(HITS.load(SeqCst) == 2, || "the handler did not run for a second signal".into())
}

fn a_siginfo_handler_gets_the_signal_and_the_sender() -> TestResult {
    set_action(libc::SIGUSR2, info_handler_address(), libc::SA_SIGINFO, &[])?;
    kill_self(libc::SIGUSR2)?;
    // SAFETY: no preconditions.
    let me = unsafe { libc::getpid() };
    check(HITS.load(SeqCst) == 1, || "the SA_SIGINFO handler did not run".into())?;
    check(LAST_SIG.load(SeqCst) == libc::SIGUSR2, || {
        format!("the handler's signal argument is {}", LAST_SIG.load(SeqCst))
    })?;
    check(SI_SIGNO.load(SeqCst) == libc::SIGUSR2, || format!("si_signo is {}", SI_SIGNO.load(SeqCst)))?;
    check(SI_CODE.load(SeqCst) == libc::SI_USER, || {
        format!("si_code is {}, wanted SI_USER (0)", SI_CODE.load(SeqCst))
    })?;
    check(SI_PID.load(SeqCst) == me, || format!("si_pid is {}, wanted {me}", SI_PID.load(SeqCst)))
}

fn sigprocmask(how: libc::c_int, sigs: &[libc::c_int]) -> Result<libc::sigset_t, String> {
    let set = sigset(sigs);
    let mut old = sigset(&[]);
    // SAFETY: both sets are valid (the raw call: libc may filter signals).
    let r = unsafe { libc::syscall(libc::SYS_rt_sigprocmask, how, &set, &mut old, 8) };
    ok("rt_sigprocmask", r)?;
    Ok(old)
}

fn current_mask() -> Result<libc::sigset_t, String> {
    let mut cur = sigset(&[]);
    // SAFETY: a query into a valid set.
    ok("rt_sigprocmask query", unsafe {
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_BLOCK, 0usize, &mut cur, 8)
    })?;
    Ok(cur)
}

fn a_blocked_signal_stays_pending_until_unblocked() -> TestResult {
    set_action(libc::SIGUSR1, handler_address(count), 0, &[])?;
    let old = sigprocmask(libc::SIG_BLOCK, &[libc::SIGUSR1])?;
    check(!has(&old, libc::SIGUSR1), || "SIGUSR1 was blocked before the test blocked it".into())?;
    check(has(&current_mask()?, libc::SIGUSR1), || "the mask does not show SIGUSR1 blocked".into())?;
    kill_self(libc::SIGUSR1)?;
    kill_self(libc::SIGUSR1)?;
    check(HITS.load(SeqCst) == 0, || "the handler ran for a blocked signal".into())?;
    sigprocmask(libc::SIG_UNBLOCK, &[libc::SIGUSR1])?;
    // Delivered on the way out of the unblocking call, and once: a standard
    // signal sent twice while blocked is pending once.
    let hits = HITS.load(SeqCst);
    check(hits == 1, || format!("after unblocking the handler ran {hits} times, wanted 1"))?;
    check(!has(&current_mask()?, libc::SIGUSR1), || "SIGUSR1 is still blocked".into())
}

fn sigpending_shows_a_blocked_signal() -> TestResult {
    set_action(libc::SIGUSR2, handler_address(count), 0, &[])?;
    sigprocmask(libc::SIG_BLOCK, &[libc::SIGUSR2])?;
    kill_self(libc::SIGUSR2)?;
    let mut pending = sigset(&[]);
    // SAFETY: `pending` is writable.
    ok("rt_sigpending", unsafe { libc::syscall(libc::SYS_rt_sigpending, &mut pending, 8) })?;
    check(has(&pending, libc::SIGUSR2), || "SIGUSR2 is not pending while blocked".into())?;
    check(!has(&pending, libc::SIGUSR1), || "SIGUSR1 is pending, never sent".into())?;
    sigprocmask(libc::SIG_UNBLOCK, &[libc::SIGUSR2])?;
    // SAFETY: as above.
    ok("rt_sigpending", unsafe { libc::syscall(libc::SYS_rt_sigpending, &mut pending, 8) })?;
    check(!has(&pending, libc::SIGUSR2), || "SIGUSR2 is still pending after delivery".into())
}

fn sigkill_and_sigstop_cannot_be_caught_or_blocked() -> TestResult {
    let catch: KernelSigaction = [handler_address(count) as u64, 0, 0, 0];
    let ignore: KernelSigaction = [libc::SIG_IGN as u64, 0, 0, 0];
    fails_with("catching SIGKILL", raw_sigaction(libc::SIGKILL.into(), Some(&catch), 8), libc::EINVAL)?;
    fails_with("ignoring SIGKILL", raw_sigaction(libc::SIGKILL.into(), Some(&ignore), 8), libc::EINVAL)?;
    fails_with("catching SIGSTOP", raw_sigaction(libc::SIGSTOP.into(), Some(&catch), 8), libc::EINVAL)?;
    fails_with("ignoring SIGSTOP", raw_sigaction(libc::SIGSTOP.into(), Some(&ignore), 8), libc::EINVAL)?;
    equals("querying SIGKILL's action", raw_sigaction(libc::SIGKILL.into(), None, 8), 0)?;
    // Blocking them is silently not done; the rest of the set is.
    sigprocmask(libc::SIG_BLOCK, &[libc::SIGKILL, libc::SIGSTOP, libc::SIGUSR1])?;
    let mask = current_mask()?;
    check(has(&mask, libc::SIGUSR1), || "SIGUSR1 was not blocked".into())?;
    check(!has(&mask, libc::SIGKILL) && !has(&mask, libc::SIGSTOP), || "SIGKILL or SIGSTOP shows as blocked".into())
}

/// A pid that is certainly free: a child that has exited and been reaped.
fn reaped_pid() -> Result<libc::pid_t, String> {
    let pid = fork_child(|| 0)?;
    exited(wait_for(pid)?, 0)?;
    Ok(pid)
}

fn kill_of_a_missing_pid_is_esrch() -> TestResult {
    let gone = reaped_pid()?;
    // SAFETY: signals a pid no process holds (or this process, with 0).
    unsafe {
        fails_with("kill of a reaped pid", libc::kill(gone, libc::SIGUSR1).into(), libc::ESRCH)?;
        fails_with("kill of pid 0x3fffffff", libc::kill(0x3fff_ffff, libc::SIGUSR1).into(), libc::ESRCH)?;
        fails_with("kill with signal 65", libc::kill(libc::getpid(), 65).into(), libc::EINVAL)
    }
}

/// A child that blocks reading `r` until every write end closes.
fn blocked_child(r: libc::c_int, w: libc::c_int) -> Result<libc::pid_t, String> {
    fork_child(|| {
        // SAFETY: the child's copy of the write end, so only the parent's
        // keeps it blocked; then a read into a valid buffer.
        unsafe {
            libc::close(w);
            libc::read(r, [0u8; 1].as_mut_ptr().cast(), 1);
        }
        0
    })
}

fn kill_with_signal_0_checks_existence() -> TestResult {
    let (r, w) = pipe2(0)?;
    let child = blocked_child(r.as_raw_fd(), w.as_raw_fd())?;
    // SAFETY: signal 0 sends nothing.
    unsafe {
        equals("kill(self, 0)", libc::kill(libc::getpid(), 0).into(), 0)?;
        equals("kill(child, 0)", libc::kill(child, 0).into(), 0)?;
    }
    drop(w);
    exited(wait_for(child)?, 0)?;
    // SAFETY: as above.
    fails_with("kill(reaped child, 0)", unsafe { libc::kill(child, 0) }.into(), libc::ESRCH)
}

fn sigkill_and_sigterm_end_a_child() -> TestResult {
    let (r, w) = pipe2(0)?;
    for sig in [libc::SIGKILL, libc::SIGTERM] {
        let child = blocked_child(r.as_raw_fd(), w.as_raw_fd())?;
        // SAFETY: our child, blocked in read.
        equals(&format!("kill(child, {sig})"), unsafe { libc::kill(child, sig) }.into(), 0)?;
        killed_by(wait_for(child)?, sig)?;
    }
    Ok(())
}

fn a_sigchld_handler_runs_when_a_child_exits() -> TestResult {
    set_action(libc::SIGCHLD, info_handler_address(), libc::SA_SIGINFO | libc::SA_RESTART, &[])?;
    let child = fork_child(|| 3)?;
    exited(wait_for(child)?, 3)?;
    check(HITS.load(SeqCst) == 1, || format!("the SIGCHLD handler ran {} times, wanted 1", HITS.load(SeqCst)))?;
    check(SI_SIGNO.load(SeqCst) == libc::SIGCHLD, || format!("si_signo is {}", SI_SIGNO.load(SeqCst)))?;
    check(SI_CODE.load(SeqCst) == libc::CLD_EXITED, || {
        format!("si_code is {}, wanted CLD_EXITED", SI_CODE.load(SeqCst))
    })?;
    check(SI_PID.load(SeqCst) == child, || format!("si_pid is {}, wanted {child}", SI_PID.load(SeqCst)))?;
    check(SI_STATUS.load(SeqCst) == 3, || format!("si_status is {}, wanted 3", SI_STATUS.load(SeqCst)))
}

extern "C" fn make_writable(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    record(sig, info, ctx);
    // SAFETY: FIX_PAGE is a page this test mapped; making it writable is
    // what lets the faulting write succeed when it is retried.
    unsafe { libc::mprotect(FIX_PAGE.load(SeqCst) as *mut libc::c_void, 4096, libc::PROT_READ | libc::PROT_WRITE) };
}

fn map_page() -> Result<*mut u8, String> {
    // SAFETY: a fresh anonymous mapping; nothing else uses the address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    check(p != libc::MAP_FAILED, || format!("mmap failed: {}", errno_name(errno())))?;
    Ok(p.cast())
}

fn a_sigsegv_handler_can_repair_the_fault() -> TestResult {
    let page = map_page()?;
    FIX_PAGE.store(page as usize, SeqCst);
    set_action(libc::SIGSEGV, make_writable as extern "C" fn(_, _, _) as usize, libc::SA_SIGINFO, &[])?;
    // SAFETY: `page` is this test's mapping; the second write faults, the
    // handler makes the page writable and the write is retried.
    unsafe {
        page.write_volatile(1);
        equals("mprotect PROT_READ", libc::mprotect(page.cast(), 4096, libc::PROT_READ).into(), 0)?;
        page.add(8).write_volatile(42);
        check(page.add(8).read_volatile() == 42, || "the retried write did not land".into())?;
    }
    check(HITS.load(SeqCst) == 1, || format!("the SIGSEGV handler ran {} times, wanted 1", HITS.load(SeqCst)))?;
    check(SI_SIGNO.load(SeqCst) == libc::SIGSEGV, || format!("si_signo is {}", SI_SIGNO.load(SeqCst)))?;
    let addr = SI_ADDR.load(SeqCst);
    check(addr == page as usize + 8, || format!("si_addr is {addr:#x}, wanted {:#x}", page as usize + 8))?;
    check(SI_CODE.load(SeqCst) == SEGV_ACCERR, || {
        format!("si_code is {}, wanted SEGV_ACCERR (2)", SI_CODE.load(SeqCst))
    })
}

fn a_bad_pointer_kills_only_the_child_with_sigsegv() -> TestResult {
    // A low address, and a kernel one: both are the child's fault alone.
    for addr in [0x10usize, 0xffff_8000_0000_0000] {
        let status = in_child(|| {
            // The default action (Rust's runtime installs its own handler).
            if set_action(libc::SIGSEGV, libc::SIG_DFL, 0, &[]).is_err() {
                return 3;
            }
            // SAFETY: not sound, on purpose: the access must fault and the
            // kernel must end this child with SIGSEGV.
            unsafe { black_box((addr as *const u8).read_volatile()) };
            4
        })?;
        killed_by(status, libc::SIGSEGV).map_err(|e| format!("a read of {addr:#x}: {e}"))?;
    }
    Ok(())
}

extern "C" fn clobber_fpu(sig: libc::c_int) {
    // Real floating-point and integer work in the handler, so the SSE and
    // general registers the interrupted code used hold other values now.
    let mut f = black_box(sig as f64) * 1.5;
    let mut x = black_box(0x9e37_79b9_7f4a_7c15u64);
    for i in 0..64 {
        f = (f * 1.000_001 + i as f64).sqrt() + 0.25;
        x = x.rotate_left(7) ^ (i * 31);
    }
    HANDLER_FLOAT.store(f.to_bits() ^ x, SeqCst);
    HITS.fetch_add(1, SeqCst);
}

/// Integer and floating-point work kept in registers for its whole run:
/// the same seed must always give the same bits.
#[inline(never)]
fn mix(seed: u64, rounds: u64) -> (u64, u64) {
    let mut x = seed;
    let mut f = seed as f64 * 1e-3 + 0.5;
    let mut g = 1.0f64;
    for i in 0..rounds {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407 ^ i);
        f = f * 1.000_000_1 + (x >> 40) as f64 * 1e-9;
        g = (g + f).sqrt();
    }
    (x, (f + g).to_bits())
}

fn registers_and_fpu_survive_asynchronous_handlers() -> TestResult {
    const ROUNDS: u64 = 20_000;
    set_action(libc::SIGUSR1, handler_address(clobber_fpu), libc::SA_RESTART, &[])?;
    let seed = black_box(12_345u64);
    let want = mix(seed, ROUNDS);
    // SAFETY: no preconditions.
    let parent = unsafe { libc::getpid() };
    // Another process sends the signals, so they arrive at any instruction
    // (on a return from an interrupt), not only at a system call's end.
    let sender = fork_child(|| {
        loop {
            // SAFETY: signals our parent, whose handler is installed.
            if unsafe { libc::kill(parent, libc::SIGUSR1) } != 0 {
                return 0;
            }
            sleep_ms(1);
        }
    })?;
    let start = now();
    let mut runs = 0u64;
    let result = loop {
        let got = mix(black_box(seed), ROUNDS);
        runs += 1;
        if got != want {
            break Err(format!("run {runs}: {got:x?}, wanted {want:x?}, after {} handler runs", HITS.load(SeqCst)));
        }
        if HITS.load(SeqCst) >= 20 || now() - start > Duration::from_millis(1500) {
            break Ok(());
        }
    };
    // SAFETY: our own child.
    unsafe { libc::kill(sender, libc::SIGKILL) };
    wait_for(sender)?;
    result?;
    let hits = HITS.load(SeqCst);
    check(hits > 0, || format!("no signal from the sender arrived in {runs} runs"))
}

static ON_ALT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn where_am_i(_: libc::c_int) {
    let local = 0u8;
    ON_ALT.store(std::ptr::addr_of!(local) as usize, SeqCst);
}

/// With SA_ONSTACK, the handler runs on the stack `sigaltstack` gave;
/// without it, on the thread's own. The stack is reported, and refused
/// when too small.
fn sigaltstack_runs_handlers_on_the_alternate_stack() -> TestResult {
    const SIZE: usize = 64 * 1024;
    // SAFETY: a fresh anonymous mapping for the stack.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    check(base != libc::MAP_FAILED, || "mmap for the stack failed".into())?;
    let ss = libc::stack_t { ss_sp: base, ss_flags: 0, ss_size: SIZE };
    // SAFETY: a valid stack_t; no old one asked for.
    equals("sigaltstack", unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) }.into(), 0)?;
    let mut old = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: 0, ss_size: 0 };
    // SAFETY: a query into a writable stack_t.
    equals("sigaltstack query", unsafe { libc::sigaltstack(std::ptr::null(), &mut old) }.into(), 0)?;
    check(old.ss_sp == base && old.ss_size == SIZE && old.ss_flags == 0, || {
        format!("query gave {:p} size {} flags {}", old.ss_sp, old.ss_size, old.ss_flags)
    })?;
    let inside = |a: usize| (base as usize..base as usize + SIZE).contains(&a);
    set_action(libc::SIGUSR1, where_am_i as extern "C" fn(libc::c_int) as usize, libc::SA_ONSTACK, &[])?;
    // SAFETY: a signal to ourselves, handled.
    unsafe { libc::raise(libc::SIGUSR1) };
    let at = ON_ALT.load(SeqCst);
    check(inside(at), || format!("an SA_ONSTACK handler ran at {at:#x}, not on the stack at {base:p}"))?;
    set_action(libc::SIGUSR1, where_am_i as extern "C" fn(libc::c_int) as usize, 0, &[])?;
    // SAFETY: as above.
    unsafe { libc::raise(libc::SIGUSR1) };
    let at = ON_ALT.load(SeqCst);
    check(!inside(at), || format!("a handler without SA_ONSTACK ran on the alternate stack ({at:#x})"))?;
    let small = libc::stack_t { ss_sp: base, ss_flags: 0, ss_size: 1024 };
    // SAFETY: a valid stack_t, too small.
    fails_with(
        "sigaltstack of 1 KiB",
        unsafe { libc::sigaltstack(&small, std::ptr::null_mut()) }.into(),
        libc::ENOMEM,
    )?;
    let off = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
    // SAFETY: disables it.
    equals("sigaltstack SS_DISABLE", unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) }.into(), 0)?;
    // SAFETY: a query.
    unsafe { libc::sigaltstack(std::ptr::null(), &mut old) };
    check(old.ss_flags == libc::SS_DISABLE, || format!("flags {} after SS_DISABLE", old.ss_flags))
}
