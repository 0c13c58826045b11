//! Allegations: values as the untrusted outer kernel passes them. Nothing is
//! known about them until a `Vmmu` operation has checked them against the
//! frame table; only those checks turn them into frame numbers, levels and
//! entries the NK acts on.

/// A frame number as the outer kernel alleges it (may be outside RAM).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RawPfn(pub u64);

/// A page-table level as the outer kernel alleges it (may not exist).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RawLevel(pub u8);

/// A page-table entry as the outer kernel proposes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RawPte(pub u64);
