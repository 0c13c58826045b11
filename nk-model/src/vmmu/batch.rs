//! `write_ptes`: many operations in one gate crossing, applied in order.

use super::error::VmmuError;
use super::phys_mem::PhysMem;
use super::raw::{RawLevel, RawPfn, RawPte};
use super::state::Vmmu;

/// One operation of a batch, as the outer kernel alleges it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Declare(RawPfn, RawLevel),
    Remove(RawPfn),
    Write(RawPfn, usize, RawPte),
}

/// The operation of a batch that was refused; those before it stay done.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BatchError {
    pub index: usize,
    pub error: VmmuError,
}

impl core::fmt::Display for BatchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "operation {} of the batch: {}", self.index, self.error)
    }
}

impl Vmmu<'_> {
    /// Applies `ops` in order; stops at the first refusal, which changed
    /// nothing. The caller still calls `finish` before leaving the gate.
    pub fn apply_batch(&mut self, mem: &mut impl PhysMem, ops: &[Op]) -> Result<(), BatchError> {
        self.apply_ops(mem, ops.iter().copied())
    }

    /// `apply_batch` over operations the NK fetches one at a time: each is
    /// taken from `ops` only after the one before it was applied, and none
    /// after a refusal, so the NK can copy each out of outer-kernel memory
    /// just before checking it (no slice of it to race with).
    pub fn apply_ops<I: IntoIterator<Item = Op>>(&mut self, mem: &mut impl PhysMem, ops: I) -> Result<(), BatchError> {
        let result = ops.into_iter().enumerate().try_for_each(|(index, op)| {
            match op {
                Op::Declare(pfn, level) => self.declare_ptp(mem, pfn, level),
                Op::Remove(pfn) => self.remove_ptp(mem, pfn),
                Op::Write(ptp, i, pte) => self.write_pte(mem, ptp, i, pte),
            }
            .map_err(|error| BatchError { index, error })
        });
        self.counters.batches.record(&result);
        result
    }
}
