//! The clocks a process reads and the time it is charged: the wall clock
//! (`time`, `gettimeofday`, setting it), CPU time counted per timer tick
//! (`getrusage`, `times`), and the real-time interval timer (`setitimer`,
//! `getitimer`, `alarm`) that sends SIGALRM.

use super::syscall::errno;
use super::{PROCS, Pid, signal, with_current};
use crate::mm::usercopy::{copy_from_user, copy_to_user};
use core::sync::atomic::{AtomicU64, Ordering};

/// CPU time in timer ticks, of the process and of the children it
/// waited for (theirs including their own waited-for children).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Times {
    pub user: u64,
    pub system: u64,
    pub children_user: u64,
    pub children_system: u64,
}

impl Times {
    /// What a parent adds when it reaps a child with these times.
    pub fn reaped(&mut self, child: &Times) {
        self.children_user += child.user + child.children_user;
        self.children_system += child.system + child.children_system;
    }
}

/// ITIMER_REAL: when it fires next (µs of uptime) and its period (0: once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Alarm {
    pub at_us: u64,
    pub interval_us: u64,
}

/// The earliest armed alarm of any process (µs of uptime; MAX: none), so
/// a tick looks at the processes only when one is due.
static NEXT_ALARM: AtomicU64 = AtomicU64::new(u64::MAX);

const US_PER_TICK: u64 = 1_000_000 / crate::time::TICK_HZ;

/// Called from the timer interrupt (interrupts off): charges the tick to
/// the process that was running, in user or kernel mode, and fires the
/// alarms that are due.
pub fn tick(user_mode: bool) {
    let me = crate::sched::current();
    let now = crate::time::uptime_us();
    let due = NEXT_ALARM.load(Ordering::Relaxed) <= now;
    let mut fired: [Pid; 8] = [0; 8];
    let mut n = 0;
    {
        // A holder may be the code this tick interrupted (on another path
        // than `with_current`): then this tick is not charged.
        let Some(mut procs) = PROCS.try_lock() else { return };
        if let Some(p) = procs.get_mut(&me) {
            if user_mode { p.cpu.user += 1 } else { p.cpu.system += 1 }
        }
        if !due {
            return;
        }
        let mut next = u64::MAX;
        for p in procs.values_mut() {
            let Some(a) = p.alarm.as_mut() else { continue };
            if a.at_us <= now && n < fired.len() {
                fired[n] = p.pid;
                n += 1;
                if a.interval_us == 0 {
                    p.alarm = None;
                    continue;
                }
                // Periods missed while late are skipped, not queued.
                a.at_us = now + a.interval_us - (now - a.at_us) % a.interval_us;
            }
            next = next.min(a.at_us);
        }
        NEXT_ALARM.store(next, Ordering::Relaxed);
    }
    let info = signal::Info { code: SI_KERNEL, pid: 0, addr: 0, status: 0 };
    for &pid in &fired[..n] {
        let _ = signal::send(pid, SIGALRM, info);
    }
}

const SIGALRM: u32 = 14;
/// `si_code` of a signal the kernel itself sends.
const SI_KERNEL: i32 = 0x80;

/// Arms (or with `value_us` 0 disarms) the caller's ITIMER_REAL; returns
/// what was left of the old one.
fn set_alarm(value_us: u64, interval_us: u64) -> Result<Alarm, i64> {
    let now = crate::time::uptime_us();
    let old = with_current(|p| {
        let new = (value_us != 0).then(|| Alarm { at_us: now.saturating_add(value_us), interval_us });
        core::mem::replace(&mut p.alarm, new)
    })
    .ok_or(errno::EPERM)?;
    if value_us != 0 {
        NEXT_ALARM.fetch_min(now.saturating_add(value_us), Ordering::Relaxed);
    }
    Ok(left(old, now))
}

fn left(a: Option<Alarm>, now: u64) -> Alarm {
    a.map_or(Alarm::default(), |a| Alarm { at_us: a.at_us.saturating_sub(now).max(1), interval_us: a.interval_us })
}

/// `struct timeval` for `us` microseconds.
pub fn timeval(us: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(us / 1_000_000).to_le_bytes());
    b[8..].copy_from_slice(&(us % 1_000_000).to_le_bytes());
    b
}

/// A `struct timeval` at `at` as µs: EINVAL unless 0 <= tv_usec < 10^6,
/// as setitimer and settimeofday check (select carries seconds over).
fn read_timeval(root: u64, at: u64) -> Result<u64, i64> {
    let mut b = [0u8; 16];
    copy_from_user(root, &mut b, at).map_err(|_| errno::EFAULT)?;
    let sec = i64::from_le_bytes(b[..8].try_into().unwrap_or_default());
    let usec = i64::from_le_bytes(b[8..].try_into().unwrap_or_default());
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return Err(errno::EINVAL);
    }
    Ok((sec as u64).saturating_mul(1_000_000).saturating_add(usec as u64))
}

const ITIMER_REAL: i32 = 0;
const ITIMER_PROF: i32 = 2;

/// `setitimer`: ITIMER_REAL only; the virtual and profiling timers,
/// which count CPU time, are refused with EINVAL.
pub fn setitimer(root: u64, which: i32, new: u64, old: u64) -> Result<u64, i64> {
    if which != ITIMER_REAL {
        return Err(if (0..=ITIMER_PROF).contains(&which) { errno::ENOSYS } else { errno::EINVAL });
    }
    let (interval, value) = if new == 0 { (0, 0) } else { (read_timeval(root, new)?, read_timeval(root, new + 16)?) };
    let prev = set_alarm(value, interval)?;
    if old != 0 {
        copy_to_user(root, old, &[timeval(prev.interval_us), timeval(prev.at_us)].concat())
            .map_err(|_| errno::EFAULT)?;
    }
    Ok(0)
}

pub fn getitimer(root: u64, which: i32, out: u64) -> Result<u64, i64> {
    if which != ITIMER_REAL {
        return Err(if (0..=ITIMER_PROF).contains(&which) { errno::ENOSYS } else { errno::EINVAL });
    }
    let now = crate::time::uptime_us();
    let a = left(with_current(|p| p.alarm).ok_or(errno::EPERM)?, now);
    copy_to_user(root, out, &[timeval(a.interval_us), timeval(a.at_us)].concat()).map_err(|_| errno::EFAULT)?;
    Ok(0)
}

/// `alarm`: SIGALRM in `seconds` (0 cancels); the whole seconds that were
/// left of the previous one, rounded to nearest as Linux does.
pub fn alarm(seconds: u32) -> Result<u64, i64> {
    let prev = set_alarm(u64::from(seconds) * 1_000_000, 0)?;
    Ok(if prev.at_us == 0 { 0 } else { ((prev.at_us + 500_000) / 1_000_000).max(1) })
}

/// `time`: seconds of the wall clock, also stored at `tloc` if given.
pub fn time(root: u64, tloc: u64) -> Result<u64, i64> {
    let s = crate::time::realtime_us() / 1_000_000;
    if tloc != 0 {
        copy_to_user(root, tloc, &s.to_le_bytes()).map_err(|_| errno::EFAULT)?;
    }
    Ok(s)
}

/// `gettimeofday`: the wall clock; the time zone, if asked, is UTC.
pub fn gettimeofday(root: u64, tv: u64, tz: u64) -> Result<u64, i64> {
    if tv != 0 {
        copy_to_user(root, tv, &timeval(crate::time::realtime_us())).map_err(|_| errno::EFAULT)?;
    }
    if tz != 0 {
        copy_to_user(root, tz, &[0u8; 8]).map_err(|_| errno::EFAULT)?;
    }
    Ok(0)
}

/// `settimeofday`: sets the wall clock (one user, root, may).
pub fn settimeofday(root: u64, tv: u64) -> Result<u64, i64> {
    if tv != 0 {
        crate::time::set_realtime_us(read_timeval(root, tv)?);
    }
    Ok(0)
}

const RUSAGE_SELF: i32 = 0;
const RUSAGE_CHILDREN: i32 = -1;
const RUSAGE_THREAD: i32 = 1;

/// `getrusage`: user and system time, and the largest resident set in
/// KiB (for the caller, its peak is not kept: its present size). The
/// other fields count nothing this kernel tracks and are 0.
pub fn getrusage(root: u64, who: i32, out: u64) -> Result<u64, i64> {
    let (t, rss_pages) = with_current(|p| (p.cpu, p.mem.resident() as u64)).ok_or(errno::EPERM)?;
    let (user, system, rss) = match who {
        RUSAGE_SELF | RUSAGE_THREAD => (t.user, t.system, rss_pages * 4),
        RUSAGE_CHILDREN => (t.children_user, t.children_system, 0),
        _ => return Err(errno::EINVAL),
    };
    let mut b = [0u8; 144];
    b[..16].copy_from_slice(&timeval(user * US_PER_TICK));
    b[16..32].copy_from_slice(&timeval(system * US_PER_TICK));
    b[32..40].copy_from_slice(&rss.to_le_bytes());
    copy_to_user(root, out, &b).map_err(|_| errno::EFAULT)?;
    Ok(0)
}

/// `times`: the four CPU times in clock ticks (USER_HZ 100, this
/// kernel's tick rate); returns the ticks since boot.
pub fn times(root: u64, out: u64) -> Result<u64, i64> {
    let t = with_current(|p| p.cpu).ok_or(errno::EPERM)?;
    if out != 0 {
        let words = [t.user, t.system, t.children_user, t.children_system];
        let b: alloc::vec::Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        copy_to_user(root, out, &b).map_err(|_| errno::EFAULT)?;
    }
    Ok(crate::time::ticks())
}
