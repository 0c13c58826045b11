//! Attacks on pinned CPU state: ask the NK to turn protection off.

use super::Outcome::{self, Blocked, NotRun, Succeeded};
use alloc::format;
use alloc::string::String;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

const EFER: u32 = 0xc000_0080;
const LSTAR: u32 = 0xc000_0082;

/// Ask the NK to clear CR0.WP, the switch the whole design rests on.
pub fn clear_wp() -> Outcome {
    let cr0 = Cr0::read_raw();
    // Interrupts stay off while WP may be clear: a tick taken then looks
    // like a trap inside the NK, which fail-stops.
    let tried = crate::arch::without_interrupts(|| {
        nk::api::set_cr0(cr0 & !Cr0Flags::WRITE_PROTECT.bits()).map(|()| {
            let off = !Cr0::read().contains(Cr0Flags::WRITE_PROTECT);
            let _ = nk::api::set_cr0(cr0);
            off
        })
    });
    match tried {
        Err(e) => Blocked(format!("NK refused: {}", e)),
        Ok(off) => Succeeded(format!("CR0.WP cleared (read back {})", if off { "clear" } else { "set" })),
    }
}

/// Ask the NK to clear CR4.SMEP.
pub fn clear_smep() -> Outcome {
    let cr4 = Cr4::read_raw();
    if cr4 & Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION.bits() == 0 {
        return NotRun(String::from("SMEP is not on (CPU lacks it)"));
    }
    match nk::api::set_cr4(cr4 & !Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION.bits()) {
        Err(e) => Blocked(format!("NK refused: {}", e)),
        Ok(()) => {
            let _ = nk::api::set_cr4(cr4);
            Succeeded(String::from("CR4.SMEP cleared"))
        }
    }
}

/// Ask the NK to clear EFER.NXE, which would make every page executable.
pub fn clear_nxe() -> Outcome {
    if nk::BACKEND == "native" {
        // Clearing NXE while NX bits are in the tables makes every access
        // fault (reserved bit): the native kernel would accept and die.
        return NotRun(String::from("native has no pinning; clearing NXE would stop the machine"));
    }
    // SAFETY: reading EFER has no side effects.
    #[allow(unsafe_code)]
    let efer = unsafe { x86_64::registers::model_specific::Msr::new(EFER).read() };
    match nk::api::write_msr(EFER, efer & !(1 << 11)) {
        Err(e) => Blocked(format!("NK refused: {}", e)),
        Ok(()) => Succeeded(String::from("EFER.NXE cleared")),
    }
}

/// Write an MSR that is not on the allow-list (the SYSCALL entry point),
/// with its current value so that success changes nothing.
pub fn msr_not_allowed() -> Outcome {
    // SAFETY: reading IA32_LSTAR has no side effects.
    #[allow(unsafe_code)]
    let lstar = unsafe { x86_64::registers::model_specific::Msr::new(LSTAR).read() };
    match nk::api::write_msr(LSTAR, lstar) {
        Err(e) => Blocked(format!("NK refused: {}", e)),
        Ok(()) => Succeeded(String::from("IA32_LSTAR written: the SYSCALL entry point is the outer kernel's")),
    }
}
