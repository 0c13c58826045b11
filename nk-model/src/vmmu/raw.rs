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

impl RawLevel {
    /// A level as it crosses the gate, in a word: one that does not fit a
    /// byte is no level at all (0, which every operation refuses).
    pub fn from_word(level: u64) -> Self {
        RawLevel(u8::try_from(level).unwrap_or(0))
    }
}

/// An entry index as it crosses the gate: one that does not fit is out of
/// range (refused), not wrapped into it.
pub fn index_from_word(index: u64) -> usize {
    usize::try_from(index).unwrap_or(usize::MAX)
}

/// A page-table entry as the outer kernel proposes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RawPte(pub u64);
