//! The NK's operations as the gate dispatches them, and the typed wrappers
//! the outer kernel calls. Arguments arrive as raw integers: allegations
//! until the operation has checked them.

use crate::gate::{self, GateResult};

/// Operation numbers (the gate's first argument).
pub mod op {
    /// Does nothing: measures a gate round trip.
    pub const NOP: u64 = 0;
}

pub(crate) fn dispatch(op: u64, _a0: u64, _a1: u64, _a2: u64) -> GateResult {
    match op {
        op::NOP => GateResult::OK,
        _ => GateResult { status: gate::STATUS_BAD_OP, detail: op },
    }
}

/// An empty NK call: one gate round trip, nothing else.
#[inline(never)]
pub fn nop() -> GateResult {
    gate::call(op::NOP, 0, 0, 0)
}

/// Gate crossings so far, all CPUs.
pub fn gate_crossings() -> u64 {
    gate::crossings()
}
