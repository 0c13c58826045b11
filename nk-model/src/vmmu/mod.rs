//! The vMMU: the rules the nested kernel enforces on page tables
//! (docs/vmmu.md), as pure code over a frame table and an abstract physical
//! memory. The NK runs it inside its gate; host tests run it over a
//! simulated machine, with the invariant checker after every step.

mod alias;
mod batch;
mod boot;
mod check;
mod counters;
mod cr3;
mod declare;
mod encoding;
mod entry;
mod error;
mod frame;
mod level;
mod map_code;
mod mediate;
mod phys_mem;
mod raw;
mod release_code;
mod remove;
mod report;
mod rights;
mod state;
mod wire;
mod write;

#[cfg(test)]
mod tests;

pub use batch::{BatchError, Entry, Op};
pub use check::check;
pub use counters::{Counters, OpCounter};
pub use encoding::{RESERVED_BITS, TABLE_FLAGS};
pub use entry::ENTRIES;
pub use error::VmmuError;
pub use frame::{FrameDesc, FrameKind};
pub use level::Level;
pub use phys_mem::PhysMem;
pub use raw::{RawLevel, RawPfn, RawPte, index_from_word};
pub use report::{Invariant, REPORTED, Report, Violation};
pub use state::{MAX_CPUS, Vmmu};
pub use wire::Wire;
