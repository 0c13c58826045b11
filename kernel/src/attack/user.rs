//! Attacks that use user pages from the kernel: execute one (SMEP must stop
//! it) or read one outside a user-access window (SMAP must stop it). Each
//! first asks the NK to turn the protection off, as a compromised kernel
//! would; the protected NK refuses and the hardware then faults.
#![allow(unsafe_code)] // the attacks call and read user pages on purpose

use super::Outcome::{self, NotRun, Succeeded};
use crate::mm::frames;
use crate::mm::vm::{AddressSpace, VmError, with_space};
use alloc::format;
use nk_model::pte::PteFlags;
use x86_64::registers::control::{Cr4, Cr4Flags};

/// A lower-half address for the user page.
const VA: u64 = 0x5000_0000;

/// Maps a fresh frame filled by `fill` at `VA` with user rights `flags`,
/// asks the NK to clear `bit` in CR4, runs `f` in that space, and puts CR4
/// back. The frame and the space are freed after.
fn with_user_page(
    flags: PteFlags,
    fill: impl FnOnce(*mut u8),
    bit: Cr4Flags,
    f: impl FnOnce() -> u64,
) -> Result<u64, Outcome> {
    let cr4 = Cr4::read_raw();
    if cr4 & bit.bits() == 0 {
        return Err(NotRun(format!("{bit:?} is not on (the CPU lacks it)")));
    }
    let frame = frames::alloc().ok_or_else(|| NotRun("no frames".into()))?;
    fill(frame.virt());
    let result = (|| {
        let mut space = AddressSpace::new().map_err(setup)?;
        space.map(&[(VA, frame.addr())], flags | PteFlags::USER).map_err(setup)?;
        // Refused on the protected kernel: the attack goes on regardless.
        let _ = nk::api::set_cr4(cr4 & !bit.bits());
        let r = with_space(&space, f).map_err(setup);
        let _ = nk::api::set_cr4(cr4);
        r
    })();
    let _ = frames::free(frame);
    result
}

fn setup(e: VmError) -> Outcome {
    NotRun(format!("setup failed: {e}"))
}

/// Calls code in a user page from kernel mode.
pub fn smep_execute_user() -> Outcome {
    // mov eax, 0x5a5a; ret
    let code = [0xb8, 0x5a, 0x5a, 0x00, 0x00, 0xc3];
    let fill = |p: *mut u8| {
        // SAFETY: a fresh frame of ours, written through the direct map.
        unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), p, code.len()) }
    };
    let run = || {
        // SAFETY: deliberately unsound: kernel mode calls a user page; SMEP
        // faults the fetch unless the attack got SMEP turned off.
        let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(VA as usize) };
        u64::from(f())
    };
    match with_user_page(PteFlags::empty(), fill, Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION, run) {
        Ok(r) => Succeeded(format!("kernel mode ran code in user page {VA:#x} (returned {r:#x})")),
        Err(o) => o,
    }
}

/// Reads a user page from kernel mode without opening a user-access window.
pub fn smap_read_user() -> Outcome {
    let fill = |p: *mut u8| {
        // SAFETY: a fresh frame of ours, written through the direct map.
        unsafe { core::ptr::write_bytes(p, 0x77, 4096) }
    };
    // SAFETY: deliberately unsound: kernel mode reads a user page with
    // RFLAGS.AC clear; SMAP faults it unless the attack got SMAP turned off.
    let run = || unsafe { (VA as *const u64).read_volatile() };
    let flags = PteFlags::WRITABLE | PteFlags::NO_EXECUTE;
    match with_user_page(flags, fill, Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION, run) {
        Ok(v) => Succeeded(format!("kernel mode read {v:#x} from user page {VA:#x}")),
        Err(o) => o,
    }
}
