//! Per-operation counts of calls and refusals, published for `nk stat`.

/// Calls of one operation and how many of them were refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct OpCounter {
    pub calls: u64,
    pub rejections: u64,
}

impl OpCounter {
    pub(super) fn record<T, E>(&mut self, result: &Result<T, E>) {
        // Saturating: a counter must never be the reason the NK panics.
        self.calls = self.calls.saturating_add(1);
        if result.is_err() {
            self.rejections = self.rejections.saturating_add(1);
        }
    }
}

/// The vMMU's counters. Operations inside a batch count under their own
/// kind too; `batches` counts `apply_batch` calls and refused batches.
/// `map_code` counts under its own name only (never under `write_pte`), as
/// does `release_code`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Counters {
    pub declare: OpCounter,
    pub remove: OpCounter,
    pub write_pte: OpCounter,
    pub load_cr3: OpCounter,
    pub batches: OpCounter,
    pub map_code: OpCounter,
    pub release_code: OpCounter,
}
