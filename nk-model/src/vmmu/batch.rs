//! `write_ptes`: many operations in one gate crossing, applied in order.

use super::error::VmmuError;
use super::phys_mem::PhysMem;
use super::raw::{RawLevel, RawPfn, RawPte, index_from_word};
use super::state::Vmmu;

/// One operation of a batch, as the outer kernel alleges it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Declare(RawPfn, RawLevel),
    Remove(RawPfn),
    Write(RawPfn, usize, RawPte),
}

/// One operation of a batch as the outer kernel lays it out (`kind`, then
/// three words), decoded: the vMMU's own, or one of the two another part
/// of the NK applies between them, so one crossing carries a whole event
/// (a fork; an exit with the switch away from it). Each is checked as its
/// own operation is; this only says which operation it is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Entry {
    Vmmu(Op),
    /// As the `switch` operation: kernel stack, FS base, root (`u64::MAX`
    /// leaves a part as it is).
    Switch {
        rsp0: u64,
        fs_base: u64,
        root: u64,
    },
    /// As `nk_write`: `len` bytes from `src` to the protected `dst`.
    NkWrite {
        dst: u64,
        src: u64,
        len: u64,
    },
}

impl Entry {
    pub const DECLARE: u64 = 1;
    pub const REMOVE: u64 = 2;
    pub const WRITE: u64 = 3;
    pub const SWITCH: u64 = 4;
    pub const NK_WRITE: u64 = 5;

    /// The operation `kind` names with its words, or `None` for a kind
    /// that does not exist.
    pub fn decode(kind: u64, a: u64, b: u64, c: u64) -> Option<Entry> {
        Some(match kind {
            Self::DECLARE => Entry::Vmmu(Op::Declare(RawPfn(a), RawLevel::from_word(b))),
            Self::REMOVE => Entry::Vmmu(Op::Remove(RawPfn(a))),
            Self::WRITE => Entry::Vmmu(Op::Write(RawPfn(a), index_from_word(b), RawPte(c))),
            Self::SWITCH => Entry::Switch { rsp0: a, fs_base: b, root: c },
            Self::NK_WRITE => Entry::NkWrite { dst: a, src: b, len: c },
            _ => return None,
        })
    }
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
