//! A periodic timer: counts its ticks (every 10 ms) and shows the count in
//! `/proc/ticker`; says how many it saw when it unloads.
#![no_std]

use core::fmt::Write as _;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use nkmod::{Errno, println};

nkmod::module! { name: "ticker", version: "1.0", license: "MIT OR Apache-2.0", init: init, exit: exit }

static TICKS: AtomicU64 = AtomicU64::new(0);
static TIMER: AtomicI32 = AtomicI32::new(-1);

extern "C" fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

extern "C" fn show(buf: *mut u8, cap: usize) -> usize {
    // SAFETY: the kernel passes `cap` writable bytes of its own at `buf`.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf, cap) };
    let mut out = Out { buf, len: 0 };
    let _ = writeln!(out, "ticks: {}", TICKS.load(Ordering::Relaxed));
    out.len
}

fn init() -> Result<(), Errno> {
    TICKS.store(0, Ordering::Relaxed);
    nkmod::register_proc("ticker", show)?;
    match nkmod::start_timer(10, tick) {
        Ok(id) => TIMER.store(id, Ordering::Relaxed),
        Err(e) => {
            let _ = nkmod::unregister_proc("ticker");
            return Err(e);
        }
    }
    println!("ticker: counting every 10 ms");
    Ok(())
}

fn exit() {
    let _ = nkmod::stop_timer(TIMER.swap(-1, Ordering::Relaxed));
    let _ = nkmod::unregister_proc("ticker");
    println!("ticker: unloaded after {} ticks", TICKS.load(Ordering::Relaxed));
}
