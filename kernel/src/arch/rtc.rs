//! The CMOS real-time clock, read once at boot for the wall clock
//! (`CLOCK_REALTIME`); the TSC carries it forward from there.

use super::{inb, outb};
use klib::civil::{DateTime, from_bcd};

const INDEX: u16 = 0x70;
const DATA: u16 = 0x71;
/// Status A bit 7: an update is in progress, the registers may be torn.
const UPDATING: u8 = 0x80;
/// Status B: bit 1 set for 24-hour mode, bit 2 for binary (else BCD).
const STATUS_B_24H: u8 = 0x02;
const STATUS_B_BINARY: u8 = 0x04;
/// The century register QEMU's and most PCs' CMOS have (ACPI FADT's default).
const CENTURY: u8 = 0x32;

fn read(reg: u8) -> u8 {
    // Bit 7 of the index keeps NMIs enabled as they were (0: enabled).
    outb(INDEX, reg & 0x7f);
    inb(DATA)
}

fn raw() -> [u8; 7] {
    // Bounded: a clock stuck updating is read anyway (and then checked).
    for _ in 0..1_000_000 {
        if read(0x0a) & UPDATING == 0 {
            break;
        }
    }
    [0x00, 0x02, 0x04, 0x07, 0x08, 0x09, CENTURY].map(read)
}

/// Seconds since the epoch by the RTC, or `None` if it reads as no date
/// (no RTC, or one never set).
pub fn unix_seconds() -> Option<u64> {
    // Read until two reads agree, so no update tears the value.
    let mut r = raw();
    for _ in 0..8 {
        let again = raw();
        if again == r {
            break;
        }
        r = again;
    }
    let b = read(0x0b);
    let num = |v: u8| if b & STATUS_B_BINARY != 0 { Some(u32::from(v)) } else { from_bcd(v) };
    // In 12-hour mode bit 7 of the hour says PM.
    let pm = b & STATUS_B_24H == 0 && r[2] & 0x80 != 0;
    let mut hour = num(r[2] & 0x7f)?;
    if b & STATUS_B_24H == 0 {
        hour = hour % 12 + if pm { 12 } else { 0 };
    }
    let century = num(r[6]).filter(|c| (19..=30).contains(c)).unwrap_or(20);
    DateTime {
        year: century * 100 + num(r[5])?,
        month: num(r[4])?,
        day: num(r[3])?,
        hour,
        minute: num(r[1])?,
        second: num(r[0])?,
    }
    .unix_seconds()
}
