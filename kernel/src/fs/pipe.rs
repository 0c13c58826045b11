//! Pipes: a bounded byte queue between the descriptions of its read end
//! and its write end. A reader sleeps while the pipe is empty and has
//! writers; a writer sleeps while it is full and has readers; a write with
//! no reader left gets EPIPE and SIGPIPE. Writes of at most `PIPE_BUF`
//! bytes are never split.
//!
//! Pipe buffers live on the kernel heap, so the bytes all pipes may hold
//! together are bounded (`budget`, a quarter of the heap, at most
//! `MAX_BUDGET`): each pipe reserves its capacity from the budget when it
//! is made and gives it back when its last end goes. As Linux does past
//! `pipe-user-pages-soft`, a pipe made when less than `CAPACITY` is left
//! gets one page (`PIPE_BUF`, so small writes stay atomic); with less
//! than that left, `pipe` fails with ENFILE. The buffer itself is
//! allocated on the first write, fallibly (ENOMEM).

use crate::mm::usercopy::{copy_from_user, copy_to_user};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;

/// What a pipe holds at most (Linux's default, 16 pages).
pub const CAPACITY: usize = 64 * 1024;
/// Writes up to this size are atomic.
pub const PIPE_BUF: usize = 4096;
/// Bytes all pipes together may hold at most, whatever the heap's size.
pub const MAX_BUDGET: usize = 16 << 20;

/// Bytes of the budget that live pipes hold.
static RESERVED: AtomicUsize = AtomicUsize::new(0);

/// Bytes all pipes together may hold: a quarter of the heap, at most
/// `MAX_BUDGET`.
pub fn budget() -> usize {
    ((crate::mm::heap::stats().1 / 4) as usize).min(MAX_BUDGET)
}

/// Takes `n` bytes of the budget, if they are left.
fn reserve(n: usize) -> bool {
    let limit = budget();
    RESERVED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| (r + n <= limit).then_some(r + n)).is_ok()
}

/// Why a pipe could not be made.
#[derive(Debug, PartialEq, Eq)]
pub enum PipeError {
    /// The pipe budget is spent (ENFILE, as Linux past its hard limit).
    Budget,
}

impl PipeError {
    pub fn errno(&self) -> i64 {
        match self {
            Self::Budget => super::files::errno::ENFILE,
        }
    }
}

#[derive(Default)]
struct State {
    bytes: VecDeque<u8>,
    readers: usize,
    writers: usize,
}

pub struct Pipe {
    state: Mutex<State>,
    /// What it may hold: its share of the budget.
    capacity: usize,
}

impl Drop for Pipe {
    fn drop(&mut self) {
        RESERVED.fetch_sub(self.capacity, Ordering::Relaxed);
    }
}

/// One end of a pipe, as an open file description holds it. Creating an
/// end counts it; dropping it (with the description) uncounts it and wakes
/// the other side, which may now see EOF or EPIPE.
pub struct End {
    pipe: Arc<Pipe>,
    write: bool,
}

impl End {
    /// A new pipe's read end and write end, its capacity taken from the
    /// budget.
    pub fn pair() -> Result<(End, End), PipeError> {
        let capacity = if reserve(CAPACITY) {
            CAPACITY
        } else if reserve(PIPE_BUF) {
            PIPE_BUF
        } else {
            return Err(PipeError::Budget);
        };
        let state = State { bytes: VecDeque::new(), readers: 1, writers: 1 };
        let pipe = Arc::new(Pipe { state: Mutex::new(state), capacity });
        Ok((End { pipe: pipe.clone(), write: false }, End { pipe, write: true }))
    }
}

impl Drop for End {
    fn drop(&mut self) {
        self.pipe.with(|s| if self.write { s.writers -= 1 } else { s.readers -= 1 });
        changed(&self.pipe);
    }
}

impl core::fmt::Debug for End {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "pipe {:#x} ({} end)", self.pipe.channel(), if self.write { "write" } else { "read" })
    }
}

impl PartialEq for End {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.pipe, &other.pipe) && self.write == other.write
    }
}

impl Eq for End {}

impl Pipe {
    /// The lock is taken with interrupts off: never held across a switch.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        crate::arch::without_interrupts(|| f(&mut self.state.lock()))
    }

    /// What both sides sleep on.
    fn channel(&self) -> u64 {
        self as *const Pipe as u64
    }
}

/// Wakes whoever waits on the pipe: its readers and writers, and callers
/// of poll and select.
fn changed(pipe: &Pipe) {
    crate::sched::wake(pipe.channel());
    super::poll::notify();
}

/// The poll events of `end` now: readable while bytes are held, hung up
/// once no writer is left; writable while a `PIPE_BUF` write fits, in
/// error once no reader is left.
pub fn poll(end: &End) -> u16 {
    use super::poll::*;
    let pipe = &end.pipe;
    pipe.with(|s| {
        let mut events = 0;
        if end.write {
            if pipe.capacity - s.bytes.len() >= PIPE_BUF.min(pipe.capacity) {
                events |= POLLOUT | POLLWRNORM;
            }
            if s.readers == 0 {
                events |= POLLERR;
            }
        } else {
            if !s.bytes.is_empty() {
                events |= POLLIN | POLLRDNORM;
            }
            if s.writers == 0 {
                events |= POLLHUP;
            }
        }
        events
    })
}

/// How a pipe call ends when it cannot go on.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// Nothing to read or no room, and the description is non-blocking.
    WouldBlock,
    /// A signal came while it slept.
    Interrupted,
    /// The heap refused the buffer (ENOMEM).
    NoMemory,
    /// No reader left (the caller also gets SIGPIPE).
    Broken,
    Fault,
}

/// Sleeps until `ready` holds for the pipe's state, or a signal comes.
fn sleep(pipe: &Pipe, mut ready: impl FnMut(&State) -> bool) -> Result<(), Stop> {
    let mut interrupted = false;
    crate::sched::wait_until(pipe.channel(), || {
        interrupted = crate::proc::signal::pending_current();
        interrupted || ready(&pipe.state.lock())
    });
    if interrupted { Err(Stop::Interrupted) } else { Ok(()) }
}

/// read(2) on the read end: at least one byte, or 0 at end of file.
pub fn read(end: &End, root: u64, buf: u64, len: u64, nonblock: bool) -> Result<u64, Stop> {
    if len == 0 {
        return Ok(0);
    }
    let pipe = &end.pipe;
    loop {
        let taken = pipe.with(|s| {
            if s.bytes.is_empty() {
                return if s.writers == 0 { Some(Ok(vec![])) } else { None };
            }
            let n = s.bytes.len().min(len.min(pipe.capacity as u64) as usize);
            let mut out = alloc::vec::Vec::new();
            if out.try_reserve_exact(n).is_err() {
                return Some(Err(Stop::NoMemory));
            }
            out.extend(s.bytes.drain(..n));
            Some(Ok(out))
        });
        let taken = match taken {
            Some(Err(stop)) => return Err(stop),
            Some(Ok(bytes)) => Some(bytes),
            None => None,
        };
        match taken {
            Some(bytes) if bytes.is_empty() => return Ok(0),
            Some(bytes) => {
                if copy_to_user(root, buf, &bytes).is_err() {
                    // Put them back where they were, in front.
                    pipe.with(|s| bytes.iter().rev().for_each(|&b| s.bytes.push_front(b)));
                    return Err(Stop::Fault);
                }
                changed(pipe);
                return Ok(bytes.len() as u64);
            }
            None if nonblock => return Err(Stop::WouldBlock),
            None => sleep(pipe, |s| !s.bytes.is_empty() || s.writers == 0)?,
        }
    }
}

/// write(2) on the write end: every byte unless a signal or a closed read
/// end stops it (then the count so far, if any).
pub fn write(end: &End, root: u64, buf: u64, len: u64, nonblock: bool) -> Result<u64, Stop> {
    if len == 0 {
        return Ok(0);
    }
    let pipe = &end.pipe;
    let capacity = pipe.capacity;
    let len = len as usize;
    // A small write goes in whole or waits; a large one in pieces.
    let atomic = len <= PIPE_BUF;
    let mut chunk = vec![0u8; len.min(PIPE_BUF)];
    let mut done = 0;
    loop {
        // Bytes a previous round could not put are copied again: simpler
        // than keeping them, and a round trip costs little.
        let want = (len - done).min(PIPE_BUF);
        if copy_from_user(root, &mut chunk[..want], buf + done as u64).is_err() {
            return partial(done, Stop::Fault);
        }
        let need = if atomic { want } else { 1 };
        let put = pipe.with(|s| {
            if s.readers == 0 {
                return Err(Stop::Broken);
            }
            let room = capacity - s.bytes.len();
            if room < need {
                return Ok(None);
            }
            // The whole buffer at once, the first time: its budget is ours.
            if s.bytes.capacity() < capacity
                && (!crate::mm::heap::can_grow(capacity as u64)
                    || s.bytes.try_reserve_exact(capacity - s.bytes.len()).is_err())
            {
                return Err(Stop::NoMemory);
            }
            let n = room.min(want);
            s.bytes.extend(&chunk[..n]);
            Ok(Some(n))
        });
        match put {
            Err(stop) => return partial(done, stop),
            Ok(Some(n)) => {
                changed(pipe);
                done += n;
                if done >= len {
                    return Ok(done as u64);
                }
            }
            Ok(None) if nonblock => return partial(done, Stop::WouldBlock),
            Ok(None) => {
                if let Err(stop) = sleep(pipe, |s| s.readers == 0 || capacity - s.bytes.len() >= need) {
                    return partial(done, stop);
                }
            }
        }
    }
}

/// What a write that stopped returns: the bytes it wrote, if any.
fn partial(done: usize, stop: Stop) -> Result<u64, Stop> {
    if done > 0 { Ok(done as u64) } else { Err(stop) }
}
