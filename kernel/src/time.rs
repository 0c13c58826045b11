//! Time: the TSC for reading the clock, the local APIC timer for ticks.
//! Both are calibrated once against the PIT.

use crate::arch::{self, lapic, pit};
use core::sync::atomic::{AtomicU64, Ordering};

pub const TICK_HZ: u64 = 100;
const CALIBRATION_MS: u64 = 10;

static TICKS: AtomicU64 = AtomicU64::new(0);
static TSC_PER_MS: AtomicU64 = AtomicU64::new(1);
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
/// The wall clock at uptime 0, in µs since the epoch: the RTC's reading
/// at boot, moved by `set_realtime_us`.
static REALTIME_AT_BOOT_US: AtomicU64 = AtomicU64::new(0);

pub fn init(boot_tsc: u64) {
    lapic::enable();
    lapic::start_free_count();
    let measured = pit::measure(CALIBRATION_MS, || (arch::rdtsc(), lapic::current_count()));
    let ((tsc0, apic0), (tsc1, apic1)) = match measured {
        Some(m) => m,
        None => panic!("time: the PIT never fired; cannot calibrate the clocks"),
    };
    let tsc_per_ms = ((tsc1 - tsc0) / CALIBRATION_MS).max(1);
    let apic_per_ms = u64::from(apic0.wrapping_sub(apic1)) / CALIBRATION_MS;
    TSC_PER_MS.store(tsc_per_ms, Ordering::Relaxed);
    BOOT_TSC.store(boot_tsc, Ordering::Relaxed);
    let per_tick = (apic_per_ms * 1000 / TICK_HZ).clamp(1, u64::from(u32::MAX)) as u32;
    lapic::start_periodic(per_tick);
    crate::println!("time: TSC {} MHz, APIC timer {} kHz, {} Hz ticks", tsc_per_ms / 1000, apic_per_ms, TICK_HZ);
    match arch::rtc::unix_seconds() {
        Some(s) => set_realtime_us(s * 1_000_000),
        None => crate::println!("time: the RTC reads as no date; the wall clock starts at 1970"),
    }
}

/// The wall clock (`CLOCK_REALTIME`), in µs since the epoch.
pub fn realtime_us() -> u64 {
    REALTIME_AT_BOOT_US.load(Ordering::Relaxed).saturating_add(uptime_us())
}

/// Sets the wall clock (`clock_settime`, `settimeofday`): later reads
/// count on from `us`.
pub fn set_realtime_us(us: u64) {
    REALTIME_AT_BOOT_US.store(us.saturating_sub(uptime_us()), Ordering::Relaxed);
}

/// Called from the timer interrupt.
pub fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

pub fn tsc_per_ms() -> u64 {
    TSC_PER_MS.load(Ordering::Relaxed)
}

/// Milliseconds since the TSC read `tsc`.
pub fn since_tsc_ms(tsc: u64) -> u64 {
    arch::rdtsc().saturating_sub(tsc) / tsc_per_ms()
}

/// Time since the NK started, in microseconds (TSC based).
pub fn uptime_us() -> u64 {
    arch::rdtsc().saturating_sub(BOOT_TSC.load(Ordering::Relaxed)) * 1000 / tsc_per_ms()
}

/// Busy-waits (with interrupts on, halting between ticks) for `ms`.
pub fn sleep_ms(ms: u64) {
    let end = arch::rdtsc() + ms * tsc_per_ms();
    while arch::rdtsc() < end {
        arch::wait_for_interrupt();
    }
}

crate::ktest!(
    fn timer_ticks_while_sleeping() {
        let t0 = ticks();
        let us0 = uptime_us();
        sleep_ms(100);
        let (t1, us1) = (ticks(), uptime_us());
        crate::kassert!(us1 >= us0 + 100_000, "uptime moved {} us over a 100 ms sleep", us1 - us0);
        // 100 Hz over 100 ms is 10 ticks; allow a wide margin for a loaded host.
        crate::kassert!(t1 > t0 + 2, "only {} ticks in 100 ms", t1 - t0);
        Ok(())
    }
);

crate::ktest!(
    fn local_apic_is_enabled_and_counting() {
        crate::kassert!((0x10..=0x15).contains(&lapic::version()), "APIC version {:#x}", lapic::version());
        let a = lapic::current_count();
        sleep_ms(1);
        crate::kassert!(lapic::current_count() != a, "APIC timer count stuck at {}", a);
        Ok(())
    }
);
