//! The local APIC (xAPIC, memory-mapped): timer and end-of-interrupt.

use core::ptr::{read_volatile, write_volatile};

/// The architectural default base; the direct map covers it (uncached,
/// because no RAM lies in its 2 MiB chunk).
const BASE_PHYS: u64 = 0xfee0_0000;

const ID: usize = 0x20;
const VERSION: usize = 0x30;
const TPR: usize = 0x80;
const EOI: usize = 0xb0;
const SVR: usize = 0xf0;
const LVT_TIMER: usize = 0x320;
const TIMER_INITIAL: usize = 0x380;
const TIMER_CURRENT: usize = 0x390;
const TIMER_DIVIDE: usize = 0x3e0;

const SVR_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
/// LVT delivery mode NMI (bits 8..11 = 0b100): the vector is ignored.
const LVT_DELIVER_NMI: u32 = 0b100 << 8;
const DIVIDE_BY_16: u32 = 0b0011;

pub const TIMER_VECTOR: u8 = 0x20;
pub const SPURIOUS_VECTOR: u8 = 0xff;

fn reg(offset: usize) -> *mut u32 {
    (nk::layout::phys_to_virt(BASE_PHYS) as usize + offset) as *mut u32
}

fn read(offset: usize) -> u32 {
    // SAFETY: an xAPIC register inside the APIC page, mapped by the direct map.
    unsafe { read_volatile(reg(offset)) }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as for `read`; APIC registers accept 32-bit writes.
    unsafe { write_volatile(reg(offset), value) }
}

pub fn id() -> u32 {
    read(ID) >> 24
}

pub fn version() -> u32 {
    read(VERSION) & 0xff
}

/// Software-enables the APIC, accepting all priorities, with the timer masked.
pub fn enable() {
    write(TPR, 0);
    write(SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
}

/// Starts a masked one-shot count from the maximum, for calibration.
pub fn start_free_count() {
    write(LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(TIMER_INITIAL, u32::MAX);
}

pub fn current_count() -> u32 {
    read(TIMER_CURRENT)
}

/// Fires `TIMER_VECTOR` every `count` timer ticks (bus clock / 16).
pub fn start_periodic(count: u32) {
    write(LVT_TIMER, LVT_PERIODIC | u32::from(TIMER_VECTOR));
    write(TIMER_INITIAL, count.max(1));
}

pub fn end_of_interrupt() {
    write(EOI, 0);
}

/// What the timer was doing, to put back after borrowing it.
#[derive(Clone, Copy)]
pub struct TimerState {
    lvt: u32,
    initial: u32,
}

pub fn timer_state() -> TimerState {
    TimerState { lvt: read(LVT_TIMER), initial: read(TIMER_INITIAL) }
}

/// Puts the timer back as `timer_state` found it (the count restarts).
pub fn restore_timer(state: TimerState) {
    write(LVT_TIMER, state.lvt);
    write(TIMER_INITIAL, state.initial);
}

/// Counts timer ticks (bus clock / 16) while `f` runs, with the timer's
/// interrupt masked; call with interrupts off and restore the timer after.
pub fn ticks_of<R>(f: impl FnOnce() -> R) -> (R, u32) {
    start_free_count();
    let r = f();
    (r, u32::MAX - current_count())
}

/// Arms a one-shot timer that delivers an NMI to this CPU after `count`
/// ticks: the outer kernel owns the local APIC, so it can always send
/// itself an NMI (the attack catalog does, at a chosen moment).
pub fn one_shot_nmi(count: u32) {
    write(LVT_TIMER, LVT_DELIVER_NMI);
    write(TIMER_INITIAL, count.max(1));
}
