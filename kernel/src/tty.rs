//! The console as a terminal for processes: canonical input (a line at a
//! time, echoed, with backspace and Ctrl-D), read by `read(0, ...)`.

use alloc::collections::VecDeque;
use spin::Mutex;

/// Bytes of completed lines not yet read.
static PENDING: Mutex<VecDeque<u8>> = Mutex::new(VecDeque::new());

const MAX_LINE: usize = 4096;

/// Reads up to `buf.len()` bytes of input, waiting for a whole line when
/// none is pending. Returns 0 at end of input (Ctrl-D on an empty line).
pub fn read(buf: &mut [u8]) -> usize {
    if buf.is_empty() {
        return 0;
    }
    if crate::arch::without_interrupts(|| PENDING.lock().is_empty()) {
        let line = read_line();
        crate::arch::without_interrupts(|| PENDING.lock().extend(line));
    }
    crate::arch::without_interrupts(|| {
        let mut pending = PENDING.lock();
        let n = buf.len().min(pending.len());
        for (slot, b) in buf.iter_mut().zip(pending.drain(..n)) {
            *slot = b;
        }
        n
    })
}

/// One edited line from the console, with its newline; empty on Ctrl-D at
/// the start of a line.
fn read_line() -> alloc::vec::Vec<u8> {
    let mut line = alloc::vec::Vec::new();
    loop {
        let Some(b) = crate::console::try_read() else {
            crate::sched::yield_now();
            crate::arch::wait_for_interrupt();
            continue;
        };
        match b {
            b'\r' | b'\n' => {
                crate::console::write_bytes(b"\n");
                line.push(b'\n');
                return line;
            }
            0x04 if line.is_empty() => return line,
            0x7f | 0x08 if line.pop().is_some() => crate::console::write_bytes(b"\x08 \x08"),
            0x20..=0x7e if line.len() < MAX_LINE => {
                crate::console::write_bytes(&[b]);
                line.push(b);
            }
            _ => {}
        }
    }
}
