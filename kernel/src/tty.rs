//! The console as a terminal for processes: its input goes through the
//! line discipline (`klib::ldisc`: canonical lines or raw bytes, echo, the
//! termios that TCGETS and TCSETS move), is read by `read(0, ...)` and is
//! watched by `poll`. The UART raises no interrupt here: input moves into
//! the discipline whenever a reader or a poller looks, and at each timer
//! tick while a program has the console, so that Ctrl-C reaches one that
//! never reads.

use klib::ldisc::{Ldisc, Read, Termios};
use spin::Mutex;

static TTY: Mutex<Option<Ldisc>> = Mutex::new(None);

/// The lock is taken with interrupts off: never held across a switch.
fn with<R>(f: impl FnOnce(&mut Ldisc) -> R) -> R {
    crate::arch::without_interrupts(|| f(TTY.lock().get_or_insert_with(Ldisc::default)))
}

/// Moves what has arrived on the console through the discipline, echoing
/// as it says, until a read would return. Input typed ahead stays behind
/// (in the UART, which holds back the sender, or in the discipline's
/// typeahead) until a reader wants it, so scripted input echoes in the
/// order it is read, and the kernel shell gets what a program left.
fn pump() {
    move_input(|l| {
        if l.readable() {
            return None;
        }
        let b = l.next_typed().or_else(crate::console::try_read)?;
        Some(l.feed(b, &mut echo))
    });
}

/// At each timer tick, while a program has the console: input that has
/// arrived is kept unedited, and a signal character (ISIG) among it flushes
/// the input and signals the console's foreground group now, whether or
/// not anyone reads. Runs in the timer interrupt; every lock it takes is
/// only ever held with interrupts off, on this one CPU.
pub fn tick() {
    if !crate::proc::jobs::console_in_use() {
        return;
    }
    move_input(|l| {
        let b = l.can_receive().then(crate::console::try_read).flatten()?;
        Some(l.receive(b, &mut echo))
    });
}

fn echo(bytes: &[u8]) {
    crate::console::write_bytes(bytes);
}

/// Runs `step` on the discipline until it has no more input to move; then,
/// with the discipline's lock free, signals the foreground group for each
/// signal character a step saw.
fn move_input(mut step: impl FnMut(&mut Ldisc) -> Option<Option<klib::ldisc::Signal>>) {
    use crate::proc::signal::{SIGINT, SIGQUIT, SIGTSTP};
    use klib::ldisc::Signal;
    let mut signals = [None; 4];
    with(|l| {
        let mut n = 0;
        while let Some(s) = step(l) {
            if s.is_some() && n < signals.len() {
                signals[n] = s;
                n += 1;
            }
        }
    });
    for s in signals.into_iter().flatten() {
        crate::proc::jobs::signal_foreground(match s {
            Signal::Interrupt => SIGINT,
            Signal::Quit => SIGQUIT,
            Signal::Suspend => SIGTSTP,
        });
    }
}

/// Why a console read returned without input.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// Nothing to read, and the description is non-blocking (EAGAIN).
    WouldBlock,
    /// A signal came while it waited (EINTR).
    Interrupted,
}

/// Reads input into `buf` as the termios says: a line at most in
/// canonical mode, what has arrived in raw mode; `Ok(0)` at end of input
/// (^D on an empty line).
pub fn read(buf: &mut [u8], nonblock: bool) -> Result<usize, Stop> {
    loop {
        pump();
        match with(|l| l.read(buf)) {
            Read::Bytes(n) => return Ok(n),
            Read::End => return Ok(0),
            Read::Empty if nonblock => return Err(Stop::WouldBlock),
            Read::Empty => {}
        }
        let mut interrupted = false;
        crate::sched::wait_until(crate::sched::TICK, || {
            interrupted = crate::proc::signal::pending_current();
            interrupted || readable()
        });
        if interrupted {
            return Err(Stop::Interrupted);
        }
    }
}

/// Whether a read would return now (POLLIN).
pub fn readable() -> bool {
    pump();
    with(|l| l.readable())
}

pub fn termios() -> Termios {
    with(|l| l.termios)
}

/// TCSETS; with `flush` (TCSETSF) the input not yet read is dropped first.
pub fn set_termios(t: Termios, flush: bool) {
    with(|l| {
        if flush {
            l.flush();
        }
        l.set_termios(t);
    });
}

/// A byte for the kernel's own shell: input a program left unread comes
/// first, so nothing typed ahead of the shell's prompt is lost.
pub fn kernel_byte() -> Option<u8> {
    with(|l| l.take_byte().or_else(|| l.next_typed())).or_else(crate::console::try_read)
}
