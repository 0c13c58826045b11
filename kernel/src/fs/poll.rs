//! poll(2), ppoll, select(2) and pselect6: which descriptors are ready,
//! waiting for one until a deadline or a signal. Each descriptor is looked
//! up once, before any wait, so no description's lock is taken while the
//! caller sleeps; the wait looks again at each timer tick and whenever a
//! pipe changes (`notify`).

use super::files::{FdTable, Object};
use crate::mm::usercopy::{copy_from_user, copy_to_user};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

pub type SysResult = Result<u64, i64>;

// Event bits (x86-64 values).
pub const POLLIN: u16 = 0x1;
pub const POLLPRI: u16 = 0x2;
pub const POLLOUT: u16 = 0x4;
pub const POLLERR: u16 = 0x8;
pub const POLLHUP: u16 = 0x10;
pub const POLLNVAL: u16 = 0x20;
pub const POLLRDNORM: u16 = 0x40;
pub const POLLRDBAND: u16 = 0x80;
pub const POLLWRNORM: u16 = 0x100;
pub const POLLWRBAND: u16 = 0x200;

/// What a regular file or a directory always is: ready both ways.
const ALWAYS: u16 = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;
// What select counts as readable, writable and exceptional (Linux's sets).
const SELECT_IN: u16 = POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR;
const SELECT_OUT: u16 = POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR;
const SELECT_EX: u16 = POLLPRI;

/// Descriptors one call may watch: the descriptor limit (EINVAL past it).
const MAX_WATCHED: u64 = super::files::MAX_FDS as u64;

/// The channel waiting callers sleep on, and how many do.
const CHANNEL: u64 = 1 << 59;
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// Something a caller may be waiting for changed (a pipe, a tick): wake
/// the waiting callers to look again. Costs nothing when none waits.
pub fn notify() {
    if WAITING.load(Ordering::Relaxed) > 0 {
        crate::sched::wake(CHANNEL);
    }
}

/// One watched descriptor, resolved before the wait.
enum Watch {
    /// A negative descriptor: skipped (poll), never ready.
    Skipped,
    /// Not open: POLLNVAL.
    Closed,
    Always,
    Console,
    Pipe(Arc<super::pipe::End>),
}

impl Watch {
    fn of(files: &FdTable, fd: i32) -> Watch {
        if fd < 0 {
            return Watch::Skipped;
        }
        match files.watched(fd as u64) {
            None => Watch::Closed,
            Some(Object::Console) => Watch::Console,
            Some(Object::Pipe(end)) => Watch::Pipe(end),
            Some(Object::File(_) | Object::Dir(_) | Object::Device(..)) => Watch::Always,
        }
    }

    /// The events true now. Console input is looked for only when `input`
    /// is asked for: a poll for errors alone (Rust's start-up check of
    /// fds 0 to 2) must not take typed-ahead input off the UART. Runs with
    /// interrupts off (inside a wait's check): it takes only locks that
    /// are never held across a switch.
    fn ready(&self, input: bool) -> u16 {
        match self {
            Watch::Skipped => 0,
            Watch::Closed => POLLNVAL,
            Watch::Always => ALWAYS,
            Watch::Console => {
                POLLOUT | POLLWRNORM | if input && crate::tty::readable() { POLLIN | POLLRDNORM } else { 0 }
            }
            Watch::Pipe(end) => super::pipe::poll(end),
        }
    }
}

/// Until when a call waits: `None` for ever, else an uptime in µs.
pub type Deadline = Option<u64>;

/// Runs `scan` until it finds something ready, the deadline passes or a
/// signal comes (EINTR when nothing was ready).
fn wait(deadline: Deadline, mut scan: impl FnMut() -> u64) -> SysResult {
    let n = scan();
    if n > 0 || deadline.is_some_and(|d| crate::time::uptime_us() >= d) {
        return Ok(n);
    }
    let (mut found, mut interrupted) = (0, false);
    WAITING.fetch_add(1, Ordering::Relaxed);
    crate::sched::wait_until(CHANNEL, || {
        found = scan();
        interrupted = found == 0 && crate::proc::signal::pending_current();
        found > 0 || interrupted || deadline.is_some_and(|d| crate::time::uptime_us() >= d)
    });
    WAITING.fetch_sub(1, Ordering::Relaxed);
    if interrupted { Err(super::files::errno::EINTR) } else { Ok(found) }
}

/// poll(2) and ppoll: `nfds` entries of `struct pollfd` at `fds`, their
/// `revents` written back; the number of entries with any.
pub fn poll(root: u64, files: &FdTable, fds: u64, nfds: u32, deadline: Deadline) -> SysResult {
    use super::files::errno::{EFAULT, EINVAL, ENOMEM};
    if u64::from(nfds) > MAX_WATCHED {
        return Err(EINVAL);
    }
    let mut raw = Vec::new();
    if raw.try_reserve_exact(nfds as usize * 8).is_err() {
        return Err(ENOMEM);
    }
    raw.resize(nfds as usize * 8, 0);
    copy_from_user(root, &mut raw, fds).map_err(|_| EFAULT)?;
    let entries: Vec<(Watch, u16)> = raw
        .chunks_exact(8)
        .map(|e| {
            let fd = i32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            (Watch::of(files, fd), u16::from_le_bytes([e[4], e[5]]))
        })
        .collect();
    let mut revents = vec![0u16; entries.len()];
    let n = wait(deadline, || {
        let mut n = 0;
        for ((w, events), r) in entries.iter().zip(revents.iter_mut()) {
            // Errors and hang-ups are told whether asked for or not.
            let input = events & (POLLIN | POLLRDNORM | POLLRDBAND | POLLPRI) != 0;
            *r = w.ready(input) & (events | POLLERR | POLLHUP | POLLNVAL);
            n += u64::from(*r != 0);
        }
        n
    })?;
    for (e, r) in raw.chunks_exact_mut(8).zip(&revents) {
        e[6..8].copy_from_slice(&r.to_le_bytes());
    }
    copy_to_user(root, fds, &raw).map_err(|_| EFAULT)?;
    Ok(n)
}

/// select(2) and pselect6: three bitmaps of `n` descriptors, read and
/// rewritten to the ready ones; the number of bits set. A set bit for a
/// descriptor that is not open is EBADF.
pub fn select(root: u64, files: &FdTable, n: i32, sets: [u64; 3], deadline: Deadline) -> SysResult {
    use super::files::errno::{EBADF, EFAULT, EINVAL};
    let Ok(n) = u64::try_from(n) else { return Err(EINVAL) };
    // As Linux: descriptors past the table's size cannot be open.
    let n = n.min(MAX_WATCHED);
    let bytes = n.div_ceil(64) as usize * 8;
    let mut wanted = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
    for (set, &at) in wanted.iter_mut().zip(&sets) {
        if at != 0 {
            copy_from_user(root, set, at).map_err(|_| EFAULT)?;
        }
    }
    let bit = |set: &[u8], fd: usize| set[fd / 8] & (1 << (fd % 8)) != 0;
    let mut watched = Vec::new();
    for fd in 0..n as usize {
        let asks = [0, 1, 2].map(|i| bit(&wanted[i], fd));
        if asks.iter().any(|&a| a) {
            let w = Watch::of(files, fd as i32);
            if matches!(w, Watch::Closed) {
                return Err(EBADF);
            }
            watched.push((fd, asks, w));
        }
    }
    let mut got = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
    let count = wait(deadline, || {
        got.iter_mut().for_each(|g| g.fill(0));
        let mut count = 0;
        for (fd, asks, w) in &watched {
            let ready = w.ready(asks[0] || asks[2]);
            for (i, class) in [SELECT_IN, SELECT_OUT, SELECT_EX].iter().enumerate() {
                if asks[i] && ready & class != 0 {
                    got[i][fd / 8] |= 1 << (fd % 8);
                    count += 1;
                }
            }
        }
        count
    })?;
    for (set, &at) in got.iter().zip(&sets) {
        if at != 0 {
            copy_to_user(root, at, set).map_err(|_| EFAULT)?;
        }
    }
    Ok(count)
}
