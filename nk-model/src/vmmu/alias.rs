//! Finding a frame's direct-map alias: the 4 KiB leaf for
//! `DIRECT_MAP_BASE + pfn * 4096` under the kernel root, whose rights
//! `declare_ptp` and `remove_ptp` change.

use super::entry::target;
use super::frame::FrameKind;
use super::level::Level;
use super::phys_mem::PhysMem;
use super::state::Vmmu;
use crate::layout::{DIRECT_MAP_BASE, PAGE_SIZE, table_index};

/// Where a frame's alias leaf is, and its current value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Alias {
    pub table: u64,
    pub index: usize,
    pub value: u64,
}

/// The direct map's span: one level-4 slot.
const DIRECT_MAP_SPAN: u64 = 512 << 30;

impl Vmmu<'_> {
    /// The alias of `pfn`, if the walk from the kernel root reaches a
    /// present 4 KiB leaf that points at `pfn` itself. The outer kernel can
    /// rewrite direct-map entries, so anything else (no entry, a large page,
    /// a leaf pointing at another frame) is "no alias", never a guess.
    pub(super) fn direct_map_alias(&self, mem: &impl PhysMem, pfn: u64) -> Option<Alias> {
        let offset = pfn.checked_mul(PAGE_SIZE).filter(|&o| o < DIRECT_MAP_SPAN)?;
        let va = DIRECT_MAP_BASE + offset;
        let mut table = self.kernel_root?;
        let mut level = Level::L4;
        // Only declared tables are read as tables, even if I1 were broken.
        if self.kind_of(table) != Some(FrameKind::Ptp(level)) {
            return None;
        }
        loop {
            let index = table_index(va, level.as_u8());
            let value = mem.read_entry(table, index);
            let t = target(level, value)?;
            if t.leaf {
                let is_alias = level == Level::L1 && t.first == pfn;
                return is_alias.then_some(Alias { table, index, value });
            }
            let next = level.next_lower()?;
            if self.kind_of(t.first) != Some(FrameKind::Ptp(next)) {
                return None;
            }
            table = t.first;
            level = next;
        }
    }
}
