//! Pinning: `boot_pin`, entries frozen because they point at NK memory or
//! at a pinned table, and pinned tables that are never removed.

use super::machine::*;
use super::{Sim, sim};
use crate::layout::{KERNEL_BASE, PAGE_SIZE, table_index};
use crate::vmmu::{FrameKind, Level, VmmuError};
use std::collections::BTreeSet;
use std::vec::Vec;

const X: u64 = FIRST_DATA + 100;
const DATA: u64 = FIRST_DATA + 200;

/// The image's tables on the way to `KERNEL_BASE`: (l3, l2, l1).
fn image_tables(s: &Sim<'_>) -> (u64, u64, u64) {
    let next = |table: u64, level: u8| s.entry(table, table_index(KERNEL_BASE, level)) >> 12;
    let l3 = next(s.root, 4);
    let l2 = next(l3, 3);
    (l3, l2, next(l2, 2))
}

/// Where a frame's image mapping is: (image l1, index).
fn image_slot(s: &Sim<'_>, pfn: u64) -> (u64, usize) {
    (image_tables(s).2, table_index(KERNEL_BASE + pfn * PAGE_SIZE, 1))
}

fn pinned(s: &Sim<'_>, pfn: u64) -> bool {
    s.v.frame(pfn).unwrap().pinned()
}

#[test]
fn boot_pins_every_table_on_a_path_to_nk_memory() {
    let mut frames = Vec::new();
    let s = sim(&mut frames);
    let (low_l1, _) = alias_slot(&s.mem, s.root, 0).unwrap();
    let (high_l1, _) = alias_slot(&s.mem, s.root, 512).unwrap();
    let dm_l3 = s.entry(s.root, 256) >> 12;
    let dm_l2 = s.entry(dm_l3, 0) >> 12;
    let (img_l3, img_l2, img_l1) = image_tables(&s);
    let expected = BTreeSet::from([s.root, dm_l3, dm_l2, low_l1, img_l3, img_l2, img_l1]);
    let found: BTreeSet<u64> = (0..FRAMES as u64).filter(|&pfn| pinned(&s, pfn)).collect();
    assert_eq!(found, expected);
    // The direct map's second level-1 table maps no NK frame.
    assert!(!pinned(&s, high_l1));
    // NK aliases, NK image pages, aliases of pinned tables, links to them.
    assert!(s.frozen.contains(&(low_l1, 0, s.entry(low_l1, 0))));
    assert!(s.frozen.contains(&(s.root, 511, s.entry(s.root, 511))));
    assert!(!s.frozen.iter().any(|&(table, index, _)| (table, index) == (dm_l2, 1)));
}

#[test]
fn boot_pin_takes_only_declared_tables() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let out = FRAMES as u64;
    assert_eq!(s.v.boot_pin(out), Err(VmmuError::FrameOutOfRange { pfn: out }));
    for pfn in [X, CODE.start, NK_DATA.start, HOLE.start] {
        assert_eq!(s.v.boot_pin(pfn), Err(VmmuError::NotDeclared { pfn }));
        assert!(!pinned(&s, pfn));
    }
    s.declare(X, Level::L2);
    assert_eq!(s.v.boot_pin(X), Ok(()));
    assert_eq!(s.v.boot_pin(X), Ok(()));
    assert!(pinned(&s, X));
    assert_eq!(s.v.frame(X).unwrap().kind(), FrameKind::Ptp(Level::L2));
}

#[test]
fn entries_pointing_at_nk_memory_are_frozen() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    // The image page of NK data (where the IDT could live): not repointed
    // at writable data, not cleared, not even rewritten unchanged.
    let (table, index) = image_slot(&s, NK_DATA.start);
    let frozen = VmmuError::PinnedEntry { table, index };
    for value in [DATA << 12 | P | W | NX, 0, s.entry(table, index), s.entry(table, index) | A] {
        s.refuses_write(table, index, value, frozen);
    }
    // The direct-map alias of an NK frame.
    let (table, index) = alias_slot(&s.mem, s.root, NK_LOW.start).unwrap();
    s.refuses_write(table, index, DATA << 12 | P | W | NX, VmmuError::PinnedEntry { table, index });
    // In the same pinned table, entries for other frames stay the outer
    // kernel's: the image page of code, the alias of data.
    let (table, index) = image_slot(&s, CODE.start);
    s.write(table, index, s.entry(table, index));
    let (table, index) = alias_slot(&s.mem, s.root, DATA).unwrap();
    s.write(table, index, 0);
}

#[test]
fn entries_pointing_at_pinned_tables_are_frozen() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let root = s.root;
    s.declare(X, Level::L1);
    s.declare(X + 1, Level::L3);
    // The level-2 entry leading to the table that maps NK pages cannot be
    // swapped for the outer kernel's own table.
    let (low_l1, _) = alias_slot(&s.mem, root, 0).unwrap();
    let dm_l2 = s.entry(s.entry(root, 256) >> 12, 0) >> 12;
    s.refuses_write(dm_l2, 0, X << 12 | T, VmmuError::PinnedEntry { table: dm_l2, index: 0 });
    assert_eq!(s.entry(dm_l2, 0) >> 12, low_l1);
    // Nor the root's link to the image.
    s.refuses_write(root, 511, (X + 1) << 12 | T, VmmuError::PinnedEntry { table: root, index: 511 });
    // A leaf mapping a pinned table (its alias) is frozen too.
    let (table, index) = alias_slot(&s.mem, root, root).unwrap();
    s.refuses_write(table, index, 0, VmmuError::PinnedEntry { table, index });
    // A link to an unpinned boot table is not.
    s.write(dm_l2, 1, s.entry(dm_l2, 1));
}

#[test]
fn a_pinned_root_takes_empty_and_unpinned_entries() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let root = s.root;
    assert!(pinned(&s, root));
    s.declare(X, Level::L3);
    for index in [5, 300] {
        s.write(root, index, X << 12 | T);
        s.write(root, index, X << 12 | T | A);
        s.write(root, index, 0);
    }
    // An entry written to point at a pinned table is frozen from then on.
    let img_l3 = s.entry(root, 511) >> 12;
    s.write(root, 300, img_l3 << 12 | T);
    s.refuses_write(root, 300, 0, VmmuError::PinnedEntry { table: root, index: 300 });
}

#[test]
fn a_declared_roots_kernel_half_is_frozen() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let [l4, l3, ..] = s.user_tables(X);
    s.declare(X + 10, Level::L3);
    let own = (X + 10) << 12 | T;
    for index in [256, 511] {
        assert_ne!(s.entry(l4, index), 0);
        s.refuses_write(l4, index, own, VmmuError::PinnedEntry { table: l4, index });
        s.refuses_write(l4, index, 0, VmmuError::PinnedEntry { table: l4, index });
    }
    // Empty kernel-half slots and the user half stay the outer kernel's.
    s.write(l4, 300, own);
    s.write(l4, 300, 0);
    s.write(l4, 0, own);
    s.write(l4, 0, l3 << 12 | T);
    // Frozen entries do not stop a teardown: the root still goes, and its
    // copies of the kernel half with it.
    let img_l3 = s.entry(s.root, 511) >> 12;
    let refs = s.refs(img_l3);
    s.write(l4, 0, 0);
    s.remove(l4);
    assert_eq!(s.refs(img_l3), refs - 1);
}

#[test]
fn pinned_tables_are_never_removed() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    // A pinned table nothing points at (but its alias): removable but for
    // the pin.
    s.declare(X, Level::L1);
    s.v.boot_pin(X).unwrap();
    s.refuses_remove(X, VmmuError::Pinned { pfn: X });
    let (img_l3, img_l2, img_l1) = image_tables(&s);
    for pfn in [img_l3, img_l2, img_l1] {
        s.refuses_remove(pfn, VmmuError::Pinned { pfn });
    }
    // The kernel root says why it is special.
    let root = s.root;
    s.refuses_remove(root, VmmuError::KernelRoot);
    assert_eq!(s.v.counters().remove.rejections, 5);
}
