//! The NK's last-resort output: a few bytes to COM1 for fatal boot errors,
//! written without the outer kernel's driver (which may not exist yet).

use core::arch::asm;

const COM1: u16 = 0x3f8;
const LINE_STATUS: u16 = COM1 + 5;
const TRANSMIT_EMPTY: u8 = 1 << 5;
/// isa-debug-exit: QEMU exits with status (value << 1) | 1; 0x11 → 35.
const DEBUG_EXIT: u16 = 0xf4;
const DEBUG_EXIT_FAILURE: u8 = 0x11;

fn outb(port: u16, value: u8) {
    // SAFETY: COM1 and isa-debug-exit ports; writing them has no effect on memory.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) };
}

fn inb(port: u16) -> u8 {
    let v;
    // SAFETY: reading the COM1 line-status register has no side effects.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags)) };
    v
}

fn write_byte(b: u8) {
    let mut spins = 0u32;
    while inb(LINE_STATUS) & TRANSMIT_EMPTY == 0 && spins < 100_000 {
        spins += 1;
    }
    outb(COM1, b);
}

pub(crate) fn write_str(s: &str) {
    for b in s.bytes() {
        if b == b'\n' {
            write_byte(b'\r');
        }
        write_byte(b);
    }
}

/// Reports an unrecoverable NK error, asks QEMU to exit with a failure
/// status, and halts.
pub fn fatal(msg: &str) -> ! {
    write_str(msg);
    write_str("\n");
    halt_with_failure()
}

fn halt_with_failure() -> ! {
    outb(DEBUG_EXIT, DEBUG_EXIT_FAILURE);
    loop {
        // SAFETY: stops this CPU with interrupts off; nothing to preserve.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
