//! System calls programs asked for that the kernel lacks: each is said on
//! the console once per process and number, with Linux's name, and
//! counted for `sys stat`, so a program that fails on a gap says which.

use core::sync::atomic::{AtomicU32, Ordering};
use klib::linux_nr::{self, Seen};

/// Calls per number below `Seen::BITS`; the last slot counts every number
/// above.
static COUNTS: [AtomicU32; Seen::BITS as usize + 1] = [const { AtomicU32::new(0) }; Seen::BITS as usize + 1];

/// Call `nr` has no handler: counted, and said if the process has not
/// asked for it before.
pub fn note(nr: u64) {
    let slot = nr.min(Seen::BITS) as usize;
    // Saturating: a program looping on one number must not wrap it to 0.
    let _ = COUNTS[slot].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_add(1));
    if super::with_current(|p| p.missing.first(nr)) == Some(true) {
        crate::println!(
            "pid {} ({}): unimplemented system call {} ({})",
            crate::sched::current(),
            crate::sched::current_name(),
            nr,
            linux_nr::name(nr).unwrap_or("not a Linux call")
        );
    }
}

/// `sys stat`: every unimplemented number asked for since boot.
pub fn print() {
    let asked: u64 = COUNTS.iter().map(|c| u64::from(c.load(Ordering::Relaxed))).sum();
    crate::println!("sys: {asked} calls to unimplemented system calls since boot");
    for (nr, c) in COUNTS.iter().enumerate() {
        let c = c.load(Ordering::Relaxed);
        if c == 0 {
            continue;
        }
        match nr as u64 {
            Seen::BITS => crate::println!("  >={:<5} {:<24} {c}", Seen::BITS, "(numbers past Linux's)"),
            n => crate::println!("  {n:<7} {:<24} {c}", linux_nr::name(n).unwrap_or("(not a Linux call)")),
        }
    }
}
