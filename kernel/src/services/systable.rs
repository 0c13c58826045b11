//! The system-call table: handlers by number, in two frames that the NK
//! seals write-once at the end of boot (`nk_declare`), so a compromised
//! outer kernel cannot redirect a system call.

use super::protected;
use crate::arch::user::SyscallFrame;
use crate::mm::frames;
use alloc::vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub type Handler = fn(&mut SyscallFrame) -> Result<u64, i64>;

/// Entries: numbers up to 1023 (Linux's and ours at 1000 and up).
pub const LEN: usize = 1024;
const BYTES: usize = LEN * 8;

/// The table's direct-map address (0 before `install`).
static BASE: AtomicU64 = AtomicU64::new(0);
static SEALED: AtomicBool = AtomicBool::new(false);

/// Builds the table from `(number, handler)` pairs and, unless switched
/// off, seals it. Once; later calls are ignored.
pub fn install(entries: &[(u64, Handler)]) {
    if BASE.load(Ordering::Relaxed) != 0 {
        return;
    }
    let mut words = vec![0u64; LEN];
    for &(nr, h) in entries {
        if let Some(w) = words.get_mut(nr as usize) {
            *w = h as usize as u64;
        }
    }
    let frame =
        frames::alloc_contiguous((BYTES / 4096) as u64, 1).expect("two frames for the system-call table at boot");
    let bytes: vec::Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    for (i, page) in bytes.chunks(4096).enumerate() {
        frame.nth(i as u64).write_at(0, page);
    }
    let base = frame.virt() as u64;
    BASE.store(base, Ordering::Relaxed);
    if super::systable_on() {
        match nk::api::nk_declare(base, BYTES, nk_model::mediate::Policy::WriteOnce) {
            Ok(()) => SEALED.store(true, Ordering::Relaxed),
            Err(e) => crate::println!("boot: the NK refused to seal the system-call table: {}", e),
        }
    }
}

pub fn sealed() -> bool {
    SEALED.load(Ordering::Relaxed)
}

/// Where entry `nr` lives (for the attack catalog, and `nk_write` tests).
pub fn entry_address(nr: u64) -> Option<u64> {
    let base = BASE.load(Ordering::Relaxed);
    (base != 0 && (nr as usize) < LEN).then(|| base + nr * 8)
}

/// The handler of call `nr`, if any.
pub fn lookup(nr: u64) -> Option<Handler> {
    protected::handler_at(entry_address(nr)?)
}
