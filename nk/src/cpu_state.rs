//! Control registers and MSRs on the outer kernel's behalf, with the bits
//! that enforce protection pinned: a request to clear one is refused with
//! an error, never merely printed (PerspicuOS only printed).

use crate::boot_info::CpuFeatures;
use crate::cpu::{self, cr0, cr4};
use nk_model::layout::is_canonical;

/// Why a control-register or MSR write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuStateError {
    /// The write would clear (or set) a bit the NK pins: `reg` and bit number.
    PinnedBit { reg: Register, bit: u8 },
    /// The write sets a bit the NK does not let the outer kernel control.
    ForbiddenBit { reg: Register, bit: u8 },
    /// The MSR is not on the allow-list.
    MsrNotAllowed { msr: u32 },
    /// A base-address MSR must hold a canonical address.
    NonCanonical { msr: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Register {
    Cr0 = 0,
    Cr4 = 4,
    Efer = 8,
}

impl core::fmt::Display for CpuStateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::PinnedBit { reg, bit } => write!(f, "{:?} bit {} is pinned by the nested kernel", reg, bit),
            Self::ForbiddenBit { reg, bit } => write!(f, "{:?} bit {} is not the outer kernel's to change", reg, bit),
            Self::MsrNotAllowed { msr } => write!(f, "MSR {:#x} is not on the NK's allow-list", msr),
            Self::NonCanonical { msr } => write!(f, "MSR {:#x} needs a canonical address", msr),
        }
    }
}

use crate::sites::{
    self, CR0_FREE, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE, MSR_EFER as EFER, MSR_FS_BASE, MSR_GS_BASE,
    MSR_KERNEL_GS_BASE, MSR_TSC_DEADLINE,
};

// MSRs the outer kernel may write: user TLS bases and the TSC deadline, and
// EFER with LME, LMA and NXE pinned. SYSCALL entry points, PAT, PKRS and
// APIC base are the NK's.

/// CR0 bits that must stay set: PE, WP (when protecting), PG.
fn cr0_pinned() -> u64 {
    let wp = if cfg!(feature = "native") { 0 } else { cr0::WP };
    1 | wp | (1 << 31)
}

/// CR4 bits the outer kernel may flip: TSD, DE, PCE, OSFXSR, OSXMMEXCPT.
const CR4_FREE: u64 = (1 << 2) | (1 << 3) | (1 << 8) | cr4::OSFXSR | cr4::OSXMMEXCPT;

fn check_bits(reg: Register, current: u64, new: u64, pinned: u64, free: u64) -> Result<(), CpuStateError> {
    let changed = current ^ new;
    if let Some(bit) = first_bit(changed & pinned) {
        return Err(CpuStateError::PinnedBit { reg, bit });
    }
    if let Some(bit) = first_bit(changed & !free) {
        return Err(CpuStateError::ForbiddenBit { reg, bit });
    }
    Ok(())
}

fn first_bit(v: u64) -> Option<u8> {
    (v != 0).then(|| v.trailing_zeros() as u8)
}

/// Checks a CR0 request and leaves its free bits for the gate's exit to
/// write together with WP: no CR0 write in the NK but the gate's lift ever
/// clears WP, so none happens here.
#[cfg(not(feature = "native"))]
pub(crate) fn set_cr0(value: u64) -> Result<(), CpuStateError> {
    // Inside the gate WP is lifted; the pinned value is the one outer
    // code runs with, so compare against WP set.
    check_bits(Register::Cr0, cpu::read_cr0() | cr0::WP, value, cr0_pinned(), CR0_FREE)?;
    crate::gate::CR0_FREE_BITS[crate::percpu::current()].store(value & CR0_FREE, core::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The unprotected baseline writes whatever it is asked to.
#[cfg(feature = "native")]
pub(crate) fn set_cr0(value: u64) -> Result<(), CpuStateError> {
    // SAFETY: none: the native backend trusts the outer kernel, which is
    // what makes it the unprotected baseline.
    unsafe { crate::gate::native_write_cr0(value) };
    Ok(())
}

pub(crate) fn set_cr4(value: u64, features: &CpuFeatures) -> Result<(), CpuStateError> {
    let current = cpu::read_cr4();
    let mut pinned = (1 << 5) | cr4::PGE; // PAE, global pages
    if features.smep {
        pinned |= cr4::SMEP;
    }
    if features.smap {
        pinned |= cr4::SMAP;
    }
    if !cfg!(feature = "native") {
        check_bits(Register::Cr4, current, value, pinned, CR4_FREE)?;
    }
    // SAFETY: only free bits changed (checked); PAE stays set, and the
    // write is checked again after it.
    unsafe { sites::write_cr4(value) };
    Ok(())
}

pub(crate) fn write_msr(msr: u32, value: u64) -> Result<(), CpuStateError> {
    let native = cfg!(feature = "native");
    match msr {
        MSR_FS_BASE | MSR_GS_BASE | MSR_KERNEL_GS_BASE if !is_canonical(value) => {
            return Err(CpuStateError::NonCanonical { msr });
        }
        MSR_FS_BASE | MSR_GS_BASE | MSR_KERNEL_GS_BASE | MSR_TSC_DEADLINE => {}
        EFER => {
            let current = cpu::rdmsr(EFER);
            let pinned = EFER_LME | EFER_LMA | EFER_NXE;
            if !native {
                check_bits(Register::Efer, current, value, pinned, EFER_SCE)?;
            }
        }
        _ if native => {}
        _ => return Err(CpuStateError::MsrNotAllowed { msr }),
    }
    // SAFETY: an allow-listed MSR with a checked value (or, on `native`,
    // whatever the outer kernel asked for: the unprotected baseline).
    unsafe { sites::wrmsr(msr, value) };
    Ok(())
}
