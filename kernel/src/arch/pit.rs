//! The 8254 PIT, used once at boot as a known clock to calibrate the TSC
//! and the local APIC timer.

use super::{inb, outb};

const FREQUENCY_HZ: u64 = 1_193_182;
const CHANNEL2: u16 = 0x42;
const COMMAND: u16 = 0x43;
/// Port B of the PC's keyboard controller: bit 0 gates channel 2, bit 5 is
/// its output.
const PORT_B: u16 = 0x61;

/// Runs `during` around a PIT one-shot of `ms` milliseconds and returns
/// what it measured at the start and at the end. Returns `None` if the PIT
/// never fires (no PIT on this machine).
pub fn measure<T>(ms: u64, mut sample: impl FnMut() -> T) -> Option<(T, T)> {
    let count = FREQUENCY_HZ * ms / 1000;
    debug_assert!(count <= 0xffff);
    let b = inb(PORT_B);
    outb(PORT_B, (b & !0x02) & !0x01); // gate low, speaker off
    outb(COMMAND, 0b1011_0000); // channel 2, lo/hi byte, mode 0, binary
    outb(CHANNEL2, count as u8);
    outb(CHANNEL2, (count >> 8) as u8);
    let start = sample();
    outb(PORT_B, (b & !0x02) | 0x01); // gate high: count down
    let mut spins = 0u64;
    while inb(PORT_B) & 0x20 == 0 {
        spins += 1;
        if spins > 100_000_000 {
            return None;
        }
    }
    Some((start, sample()))
}
