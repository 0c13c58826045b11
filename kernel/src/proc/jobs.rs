//! Job control: process groups and sessions (`setpgid`, `setsid` and
//! their getters), signals to a group (`kill(0)`, `kill(-pgid)`,
//! `kill(-1)`), stopping and continuing (the reports `wait4` gives with
//! WUNTRACED and WCONTINUED), and the console's foreground group, which
//! Ctrl-C, Ctrl-Z and Ctrl-\ signal.

use super::syscall::errno;
use super::{ORPHAN, PROCS, Pid, signal, with_current};
use crate::sched;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// A process's place in job control.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Job {
    pub pgid: Pid,
    pub sid: Pid,
    /// It ran `execve` since `fork`: its parent may no longer move it to
    /// another group (EACCES).
    pub execed: bool,
    /// Stopped by this signal, until SIGCONT.
    pub stopped: Option<u32>,
    /// A stop or continue its parent's `wait4` has not seen yet.
    pub report: Option<Report>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    Stopped(u32),
    Continued,
}

impl Report {
    /// The wait status Linux encodes it as.
    pub fn status(self) -> i32 {
        match self {
            Report::Stopped(sig) => 0x7f | ((sig as i32) << 8),
            Report::Continued => 0xffff,
        }
    }
}

impl Job {
    /// A process the kernel starts: it leads a new session and group.
    pub fn leader(pid: Pid) -> Job {
        Job { pgid: pid, sid: pid, ..Job::default() }
    }

    /// A forked child's: the parent's group and session, nothing else.
    pub fn for_child(&self) -> Job {
        Job { pgid: self.pgid, sid: self.sid, ..Job::default() }
    }

    /// SIGCONT came: true if it was stopped (its parent is then told).
    pub fn cont(&mut self) -> bool {
        let was = self.stopped.take().is_some();
        if was {
            self.report = Some(Report::Continued);
        }
        was
    }
}

/// What a stopped process sleeps on.
fn stop_channel(pid: Pid) -> u64 {
    (1 << 58) | pid
}

/// Tells `parent` that `child` stopped or continued: its `wait4` wakes,
/// and SIGCHLD comes unless its action has SA_NOCLDSTOP.
pub fn tell_parent(parent: Pid, child: Pid, code: i32, status: i32) {
    if parent == ORPHAN || parent == 0 {
        return;
    }
    sched::wake(super::child_exit_channel(parent));
    if !signal::no_child_stop(parent) {
        let _ = signal::send(parent, signal::SIGCHLD, signal::Info { code, pid: child, addr: 0, status });
    }
}

/// Whether group `pgid` is orphaned: no member has a parent in another
/// group of the same session, so no shell could continue it.
fn orphaned(pgid: Pid) -> bool {
    crate::arch::without_interrupts(|| {
        let procs = PROCS.lock();
        !procs
            .values()
            .filter(|p| p.job.pgid == pgid)
            .any(|p| procs.get(&p.parent).is_some_and(|q| q.job.pgid != pgid && q.job.sid == p.job.sid))
    })
}

/// A stop signal's default action on the calling process: it stops until
/// SIGCONT or SIGKILL. SIGTSTP, SIGTTIN and SIGTTOU are dropped for an
/// orphaned group, as on Linux; SIGSTOP never is.
pub fn stop_current(sig: u32) {
    let me = sched::current();
    let Some((parent, pgid)) = with_current(|p| (p.parent, p.job.pgid)) else { return };
    if sig != signal::SIGSTOP && orphaned(pgid) {
        return;
    }
    with_current(|p| {
        p.job.stopped = Some(sig);
        p.job.report = Some(Report::Stopped(sig));
    });
    tell_parent(parent, me, signal::CLD_STOPPED, sig as i32);
    sched::wait_until(stop_channel(me), || {
        with_current(|p| p.job.stopped.is_none() || p.sig.kill_pending()).unwrap_or(true)
    });
    // The way back to user mode runs with interrupts off, as it came.
    crate::arch::disable_interrupts();
}

/// The processes `kill(pid)` reaches, as Linux picks them: `pid` > 0 that
/// one, 0 the caller's group, -1 every process but the caller and pid 1,
/// < -1 the group -pid.
pub fn targets(pid: i32) -> Result<Vec<Pid>, i64> {
    let me = sched::current();
    if pid > 0 {
        return Ok(alloc::vec![pid as Pid]);
    }
    let group = match pid {
        0 => with_current(|p| p.job.pgid).ok_or(errno::ESRCH)?,
        -1 => 0,
        p => Pid::from(p.unsigned_abs()),
    };
    let out = pids(|p| if pid == -1 { p.pid != me && p.pid != 1 } else { p.job.pgid == group });
    if out.is_empty() { Err(errno::ESRCH) } else { Ok(out) }
}

/// The processes `which` picks (at most MAX_PROCESSES).
fn pids(which: impl Fn(&super::Process) -> bool) -> Vec<Pid> {
    crate::arch::without_interrupts(|| PROCS.lock().values().filter(|p| which(p)).map(|p| p.pid).collect())
}

/// `setpgid`: moves `pid` (0: the caller) into group `pgid` (0: its own
/// pid), with Linux's rules: only the caller or a child of it that has
/// not exec'd (ESRCH, EACCES), in the caller's session, not a session
/// leader, into a group of that session or a new one (EPERM).
pub fn setpgid(pid: i32, pgid: i32) -> Result<u64, i64> {
    let me = sched::current();
    if pgid < 0 {
        return Err(errno::EINVAL);
    }
    let target = match pid {
        0 => me,
        p if p > 0 => p as Pid,
        _ => return Err(errno::ESRCH),
    };
    let pgid = if pgid == 0 { target } else { pgid as Pid };
    crate::arch::without_interrupts(|| {
        let mut procs = PROCS.lock();
        let my_sid = procs.get(&me).ok_or(errno::ESRCH)?.job.sid;
        let p = procs.get(&target).ok_or(errno::ESRCH)?;
        if target != me {
            if p.parent != me {
                return Err(errno::ESRCH);
            }
            if p.job.sid != my_sid {
                return Err(errno::EPERM);
            }
            if p.job.execed {
                return Err(errno::EACCES);
            }
        }
        if p.job.sid == target {
            return Err(errno::EPERM);
        }
        if pgid != target && !super::group_exists(&procs, pgid, my_sid) {
            return Err(errno::EPERM);
        }
        if let Some(p) = procs.get_mut(&target) {
            p.job.pgid = pgid;
        }
        Ok(0)
    })
}

/// The job of `pid` (0: the caller), for getpgid and getsid.
fn job_of(pid: i32) -> Result<Job, i64> {
    let pid = match pid {
        0 => sched::current(),
        p if p > 0 => p as Pid,
        _ => return Err(errno::ESRCH),
    };
    super::with_process(pid, |p| p.job).ok_or(errno::ESRCH)
}

pub fn getpgid(pid: i32) -> Result<u64, i64> {
    job_of(pid).map(|j| j.pgid)
}

pub fn getsid(pid: i32) -> Result<u64, i64> {
    job_of(pid).map(|j| j.sid)
}

/// `setsid`: the caller leads a new session and group, with no
/// controlling terminal; EPERM if it already leads a group.
pub fn setsid() -> Result<u64, i64> {
    let me = sched::current();
    crate::arch::without_interrupts(|| {
        let mut procs = PROCS.lock();
        if procs.values().any(|p| p.job.pgid == me) {
            return Err(errno::EPERM);
        }
        let p = procs.get_mut(&me).ok_or(errno::ESRCH)?;
        p.job.pgid = me;
        p.job.sid = me;
        Ok(me)
    })
}

/// The console's session and foreground group (0: none yet).
static CONSOLE_SESSION: AtomicU64 = AtomicU64::new(0);
static FOREGROUND: AtomicU64 = AtomicU64::new(0);

/// The kernel shell starts `pid` on the console: its session owns the
/// console and its group is in the foreground.
pub fn give_console(pid: Pid) {
    if let Some(j) = super::with_process(pid, |p| p.job) {
        CONSOLE_SESSION.store(j.sid, Ordering::Relaxed);
        FOREGROUND.store(j.pgid, Ordering::Relaxed);
    }
}

/// The kernel shell has the console back once its program has ended.
pub fn release_console() {
    CONSOLE_SESSION.store(0, Ordering::Relaxed);
    FOREGROUND.store(0, Ordering::Relaxed);
}

/// Whether a program's group has the console (the kernel shell does not).
pub fn console_in_use() -> bool {
    FOREGROUND.load(Ordering::Relaxed) != 0
}

/// A signal character typed on the console: its foreground group gets
/// the signal. Nothing if no group is in the foreground.
pub fn signal_foreground(sig: u32) {
    let fg = FOREGROUND.load(Ordering::Relaxed);
    if fg != 0 {
        signal_group(fg, sig);
    }
}

/// A signal from the terminal (SI_KERNEL) to every member of group `pgid`.
fn signal_group(pgid: Pid, sig: u32) {
    let info = signal::Info { code: 0x80, pid: 0, addr: 0, status: 0 };
    for pid in pids(|p| p.job.pgid == pgid) {
        let _ = signal::send(pid, sig, info);
    }
}

/// How a process in a background group may use the console, as Linux's
/// `__tty_check_change`: a read (`SIGTTIN`), or a write under TOSTOP or a
/// change of its settings (`SIGTTOU`). Allowed if the console is not the
/// caller's terminal or its group is in the foreground. Otherwise the
/// caller's group gets the signal and the call is made again once it is
/// continued (ERESTARTSYS); but a read with SIGTTIN ignored or blocked,
/// or from an orphaned group, fails with EIO, and a write with SIGTTOU
/// ignored or blocked goes ahead.
pub fn console_check(sig: u32) -> Result<(), i64> {
    let Some((job, held)) = with_current(|p| (p.job, p.sig.ignores_or_blocks(sig))) else { return Ok(()) };
    let fg = FOREGROUND.load(Ordering::Relaxed);
    if job.sid != CONSOLE_SESSION.load(Ordering::Relaxed) || fg == 0 || job.pgid == fg {
        return Ok(());
    }
    if held {
        return if sig == signal::SIGTTIN { Err(errno::EIO) } else { Ok(()) };
    }
    if orphaned(job.pgid) {
        return Err(errno::EIO);
    }
    signal_group(job.pgid, sig);
    Err(errno::ERESTARTSYS)
}

/// The caller's session, if the console is its controlling terminal.
fn console_is_mine() -> Result<Job, i64> {
    let j = with_current(|p| p.job).ok_or(errno::ENOTTY)?;
    if j.sid != CONSOLE_SESSION.load(Ordering::Relaxed) {
        return Err(errno::ENOTTY);
    }
    Ok(j)
}

/// TIOCGPGRP: the console's foreground group.
pub fn foreground() -> Result<u64, i64> {
    console_is_mine().map(|_| FOREGROUND.load(Ordering::Relaxed))
}

/// TIOCSPGRP: puts group `pgrp` of the caller's session in the foreground.
pub fn set_foreground(pgrp: i32) -> Result<u64, i64> {
    let j = console_is_mine()?;
    let Ok(pgrp) = Pid::try_from(pgrp) else { return Err(errno::EINVAL) };
    let exists = crate::arch::without_interrupts(|| super::group_exists(&PROCS.lock(), pgrp, j.sid));
    if !exists {
        return Err(errno::EPERM);
    }
    FOREGROUND.store(pgrp, Ordering::Relaxed);
    Ok(0)
}

/// TIOCGSID: the console's session.
pub fn console_session() -> Result<u64, i64> {
    console_is_mine().map(|j| j.sid)
}

/// TIOCSCTTY: a session leader makes the console its controlling
/// terminal (one user, root, may take it from another session).
pub fn take_console() -> Result<u64, i64> {
    let me = sched::current();
    let j = with_current(|p| p.job).ok_or(errno::EPERM)?;
    if j.sid != me {
        return Err(errno::EPERM);
    }
    CONSOLE_SESSION.store(j.sid, Ordering::Relaxed);
    FOREGROUND.store(j.pgid, Ordering::Relaxed);
    Ok(0)
}
