//! The serial console (COM1, a 16550 UART): all output, and the shell's input.
//!
//! Why not the `uart_16550` crate: its initialisation drains the receiver and
//! enabling the FIFO flushes it, so input that a pipe delivered before boot
//! (`printf 'help\n' | cargo xtask run`) would lose its first bytes. This
//! driver keeps the UART in its FIFO-less mode, where QEMU hands over one
//! byte at a time only when the last one was read: nothing is lost.
#![allow(unsafe_code)]

use core::fmt::{self, Write};
use spin::Mutex;
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;
const DATA: u16 = COM1;
const INTERRUPT_ENABLE: u16 = COM1 + 1;
const FIFO_CONTROL: u16 = COM1 + 2;
const LINE_CONTROL: u16 = COM1 + 3;
const MODEM_CONTROL: u16 = COM1 + 4;
const LINE_STATUS: u16 = COM1 + 5;

const LSR_DATA_READY: u8 = 1 << 0;
const LSR_THR_EMPTY: u8 = 1 << 5;
const LCR_DLAB: u8 = 1 << 7;
const LCR_8N1: u8 = 0b011;
const MCR_DTR_RTS: u8 = 0b11;

struct Uart;

impl Uart {
    fn write_reg(&mut self, port: u16, value: u8) {
        // SAFETY: COM1's registers; the console lock makes this the only user.
        unsafe { Port::<u8>::new(port).write(value) };
    }

    fn read_reg(&mut self, port: u16) -> u8 {
        // SAFETY: as for `write_reg`; reading DATA consumes one received byte,
        // which only `receive` does.
        unsafe { Port::<u8>::new(port).read() }
    }

    fn init(&mut self) {
        self.write_reg(INTERRUPT_ENABLE, 0);
        self.write_reg(LINE_CONTROL, LCR_DLAB);
        self.write_reg(DATA, 1); // divisor 1: 115200 baud
        self.write_reg(INTERRUPT_ENABLE, 0);
        self.write_reg(LINE_CONTROL, LCR_8N1);
        self.write_reg(FIFO_CONTROL, 0);
        self.write_reg(MODEM_CONTROL, MCR_DTR_RTS);
    }

    fn send(&mut self, b: u8) {
        while self.read_reg(LINE_STATUS) & LSR_THR_EMPTY == 0 {
            core::hint::spin_loop();
        }
        self.write_reg(DATA, b);
    }

    fn receive(&mut self) -> Option<u8> {
        (self.read_reg(LINE_STATUS) & LSR_DATA_READY != 0).then(|| self.read_reg(DATA))
    }
}

static SERIAL: Mutex<Option<Uart>> = Mutex::new(None);

pub fn init() {
    let mut uart = Uart;
    uart.init();
    *SERIAL.lock() = Some(uart);
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.send(b'\r');
            }
            self.send(b);
        }
        Ok(())
    }
}

pub fn print(args: fmt::Arguments) {
    crate::arch::without_interrupts(|| {
        if let Some(uart) = SERIAL.lock().as_mut() {
            let _ = uart.write_fmt(args);
        }
    });
}

pub fn write_bytes(bytes: &[u8]) {
    crate::arch::without_interrupts(|| {
        if let Some(uart) = SERIAL.lock().as_mut() {
            bytes.iter().for_each(|&b| uart.send(b));
        }
    });
}

/// A byte from the console, if one has arrived.
pub fn try_read() -> Option<u8> {
    crate::arch::without_interrupts(|| SERIAL.lock().as_mut().and_then(Uart::receive))
}

/// Breaks the lock after a panic on this CPU, so the report gets out.
pub fn force_unlock() {
    if SERIAL.is_locked() {
        // SAFETY: called only on the way to stopping the machine, with
        // interrupts off; the holder will never run again.
        unsafe { SERIAL.force_unlock() };
    }
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
