//! The NK's operations as the gate dispatches them, and the typed wrappers
//! the outer kernel calls. Arguments cross the gate as raw integers: they are
//! allegations until the operation has checked them.

use crate::cpu_state::{self, CpuStateError, Register};
use crate::gate::{self, GateResult};

pub(crate) const SET_TRAP_HANDLER: u64 = op::SET_TRAP_HANDLER;

/// Operation numbers (the gate's first argument).
mod op {
    pub const SET_TRAP_HANDLER: u64 = 7;
    /// Times `a0` bare protection toggles inside the NK (for benchmarks).
    pub const MEASURE_TOGGLE: u64 = 11;
    /// Does nothing: measures a gate round trip.
    pub const NOP: u64 = 0;
    pub const SET_CR0: u64 = 8;
    pub const SET_CR4: u64 = 9;
    pub const WRITE_MSR: u64 = 10;
}

/// A refusal, as it comes back through the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NkError {
    /// Another call of this CPU is inside the NK (an NMI re-entered it).
    Busy,
    /// The gate's protection-lifting step was skipped (a jump into the gate).
    NotEntered,
    /// Unknown operation number.
    BadOperation,
    /// A control-register or MSR write the NK refused.
    CpuState(CpuStateError),
}

impl core::fmt::Display for NkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Busy => f.write_str("the NK is busy on this CPU"),
            Self::NotEntered => f.write_str("the NK was not entered through its gate"),
            Self::BadOperation => f.write_str("unknown NK operation"),
            Self::CpuState(e) => write!(f, "{}", e),
        }
    }
}

// Refusals cross the gate as a status code and one detail word.
const STATUS_PINNED: u64 = 0x200;
const STATUS_FORBIDDEN: u64 = 0x201;
const STATUS_MSR: u64 = 0x202;
const STATUS_CANONICAL: u64 = 0x203;

fn encode_cpu(e: CpuStateError) -> GateResult {
    let (status, detail) = match e {
        CpuStateError::PinnedBit { reg, bit } => (STATUS_PINNED, (reg as u64) << 8 | u64::from(bit)),
        CpuStateError::ForbiddenBit { reg, bit } => (STATUS_FORBIDDEN, (reg as u64) << 8 | u64::from(bit)),
        CpuStateError::MsrNotAllowed { msr } => (STATUS_MSR, u64::from(msr)),
        CpuStateError::NonCanonical { msr } => (STATUS_CANONICAL, u64::from(msr)),
    };
    GateResult { status, detail }
}

fn decode(r: GateResult) -> Result<u64, NkError> {
    let reg = match r.detail >> 8 {
        0 => Register::Cr0,
        4 => Register::Cr4,
        _ => Register::Efer,
    };
    let bit = r.detail as u8;
    Err(match r.status {
        0 => return Ok(r.detail),
        gate::STATUS_BUSY => NkError::Busy,
        gate::STATUS_NOT_ENTERED => NkError::NotEntered,
        STATUS_PINNED => NkError::CpuState(CpuStateError::PinnedBit { reg, bit }),
        STATUS_FORBIDDEN => NkError::CpuState(CpuStateError::ForbiddenBit { reg, bit }),
        STATUS_MSR => NkError::CpuState(CpuStateError::MsrNotAllowed { msr: r.detail as u32 }),
        STATUS_CANONICAL => NkError::CpuState(CpuStateError::NonCanonical { msr: r.detail as u32 }),
        _ => NkError::BadOperation,
    })
}

/// The gate body's dispatch. Runs inside the NK with protection lifted.
pub(crate) fn dispatch(op: u64, a0: u64, a1: u64, _a2: u64) -> GateResult {
    let done = |r: Result<(), CpuStateError>| r.map_or_else(encode_cpu, |()| GateResult::OK);
    match op {
        op::NOP => GateResult::OK,
        op::SET_TRAP_HANDLER => match crate::trap::install_handler(a0) {
            true => GateResult::OK,
            false => GateResult { status: gate::STATUS_BAD_OP, detail: a0 },
        },
        op::SET_CR0 => done(cpu_state::set_cr0(a0)),
        op::SET_CR4 => done(cpu_state::set_cr4(a0, &crate::boot_info::published().cpu)),
        op::WRITE_MSR => done(cpu_state::write_msr(a0 as u32, a1)),
        op::MEASURE_TOGGLE => GateResult { status: 0, detail: gate::measure_toggle(a0.min(1_000_000)) },
        _ => GateResult { status: gate::STATUS_BAD_OP, detail: op },
    }
}

/// An empty NK call: one gate round trip, nothing else.
#[inline(never)]
pub fn nop() -> Result<(), NkError> {
    decode(gate::call(op::NOP, 0, 0, 0)).map(|_| ())
}

/// Writes CR0; refused if it would change a pinned bit (PE, PG, WP).
#[inline(never)]
pub fn set_cr0(value: u64) -> Result<(), NkError> {
    decode(gate::call(op::SET_CR0, value, 0, 0)).map(|_| ())
}

/// Writes CR4; refused if it would change a pinned bit (PAE, PGE, SMEP, SMAP).
#[inline(never)]
pub fn set_cr4(value: u64) -> Result<(), NkError> {
    decode(gate::call(op::SET_CR4, value, 0, 0)).map(|_| ())
}

/// Writes an allow-listed MSR (FS/GS bases, TSC deadline; EFER with LME,
/// LMA and NXE pinned).
#[inline(never)]
pub fn write_msr(msr: u32, value: u64) -> Result<(), NkError> {
    decode(gate::call(op::WRITE_MSR, u64::from(msr), value, 0)).map(|_| ())
}

/// TSC ticks for `n` raw protection toggles (lift and re-arm, with the
/// check after the write) measured inside the NK: the physical floor of a
/// gate crossing. Zero work on `native`, which has nothing to toggle.
#[inline(never)]
pub fn measure_toggle(n: u64) -> Result<u64, NkError> {
    decode(gate::call(op::MEASURE_TOGGLE, n, 0, 0))
}

/// Gate crossings so far, all CPUs.
pub fn gate_crossings() -> u64 {
    gate::crossings()
}
