//! Pinning: `boot_pin`, entries frozen because their table is pinned or
//! because they point at NK memory or at a pinned table, and pinned tables
//! that are never removed.

use super::machine::*;
use super::{Sim, sim};
use crate::layout::{DIRECT_MAP_BASE, KERNEL_BASE, PAGE_SIZE, table_index};
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

/// The direct map's tables: (l3, l2, l1 of frames 0..512, l1 of 512..).
fn direct_map_tables(s: &Sim<'_>) -> (u64, u64, u64, u64) {
    let l3 = s.entry(s.root, 256) >> 12;
    let l2 = s.entry(l3, 0) >> 12;
    (l3, l2, s.entry(l2, 0) >> 12, s.entry(l2, 1) >> 12)
}

/// Where a frame's image mapping is: (image l1, index).
fn image_slot(s: &Sim<'_>, pfn: u64) -> (u64, usize) {
    (image_tables(s).2, table_index(KERNEL_BASE + pfn * PAGE_SIZE, 1))
}

fn alias(s: &Sim<'_>, pfn: u64) -> (u64, usize) {
    alias_slot(&s.mem, s.root, pfn).unwrap()
}

fn pinned(s: &Sim<'_>, pfn: u64) -> bool {
    s.v.frame(pfn).unwrap().pinned()
}

/// Every way of changing a present entry the tests try: repointing it at
/// `other`, clearing it, writing it back unchanged, toggling A.
fn changes(s: &Sim<'_>, table: u64, index: usize, other: u64) -> [u64; 4] {
    let old = s.entry(table, index);
    [other, 0, old, old ^ A]
}

#[track_caller]
fn frozen(s: &mut Sim<'_>, table: u64, index: usize, other: u64) {
    for value in changes(s, table, index, other) {
        s.refuses_write(table, index, value, VmmuError::PinnedEntry { table, index });
    }
}

#[test]
fn boot_pins_every_table_but_the_root() {
    let mut frames = Vec::new();
    let s = sim(&mut frames);
    let (dm_l3, dm_l2, low_l1, high_l1) = direct_map_tables(&s);
    let (img_l3, img_l2, img_l1) = image_tables(&s);
    let expected = BTreeSet::from([dm_l3, dm_l2, low_l1, high_l1, img_l3, img_l2, img_l1]);
    let found: BTreeSet<u64> = (0..FRAMES as u64).filter(|&pfn| pinned(&s, pfn)).collect();
    assert_eq!(found, expected);
    let tables = (0..FRAMES as u64).filter(|&pfn| matches!(s.v.frame(pfn).unwrap().kind(), FrameKind::Ptp(_)));
    assert_eq!(tables.collect::<BTreeSet<u64>>(), &expected | &BTreeSet::from([s.root]));
    assert!(!pinned(&s, s.root));
    // Frozen at boot: every present entry of a pinned table (every RAM
    // frame's alias among them), and the root's two links to pinned tables.
    let present = |t: u64| (0..512).filter(|&i| s.entry(t, i) & P != 0).count();
    assert_eq!(s.frozen.len(), expected.iter().map(|&t| present(t)).sum::<usize>() + 2);
    let roots: Vec<usize> = s.frozen.iter().filter(|f| f.table == s.root).map(|f| f.index).collect();
    assert_eq!(roots, [256, 511]);
    let aliases = s.frozen.iter().filter(|f| f.alias_of.is_some()).count();
    assert_eq!(aliases, FRAMES);
    let high = s.frozen.iter().find(|f| f.alias_of == Some(DATA + 300)).unwrap();
    assert_eq!((high.table, high.value), (high_l1, (DATA + 300) << 12 | P | W | NX | G));
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
fn direct_map_leaves_of_data_are_frozen() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    // Repointing a data frame's alias at another frame, writable: were it
    // a table's alias, the NK would read and write the wrong frame. Nor can
    // it be cleared, rewritten unchanged, or given other rights.
    for pfn in [DATA, DATA + 300, FRAMES as u64 - 1] {
        let (table, index) = alias(&s, pfn);
        frozen(&mut s, table, index, X << 12 | P | W | NX);
        let old = s.entry(table, index);
        for value in [old & !W, old | U, old & !NX & !W, pfn << 12 | P | W | NX] {
            s.refuses_write(table, index, value, VmmuError::PinnedEntry { table, index });
        }
    }
    // The aliases of code, read-only data and the hole, and the uncached
    // device page above RAM.
    for pfn in [CODE.start, READ_ONLY.start, HOLE.start] {
        let (table, index) = alias(&s, pfn);
        frozen(&mut s, table, index, DATA << 12 | P | W | NX);
    }
    let (_, dm_l2, ..) = direct_map_tables(&s);
    let device = table_index(DIRECT_MAP_BASE + (4 << 20), 2);
    assert_ne!(s.entry(dm_l2, device), 0);
    frozen(&mut s, dm_l2, device, 0x60_0000 | P | W | NX | PS);
    // The image page of code.
    let (table, index) = image_slot(&s, CODE.start);
    frozen(&mut s, table, index, DATA << 12 | P | NX);
}

#[test]
fn direct_map_leaves_of_page_tables_are_frozen() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let [l4, _, l2, l1] = s.user_tables(X);
    let (dm_l3, ..) = direct_map_tables(&s);
    // Tables the outer kernel declared, a boot table, the kernel root.
    for pfn in [l4, l2, l1, dm_l3, s.root] {
        let (table, index) = alias(&s, pfn);
        frozen(&mut s, table, index, DATA << 12 | P | W | NX);
        s.refuses_write(table, index, pfn << 12 | P | W | NX, VmmuError::PinnedEntry { table, index });
    }
    // declare_ptp and remove_ptp still change the alias (directly, not
    // through write_pte): the table goes, and a new one comes.
    s.write(l2, 0, 0);
    s.remove(l1);
    assert_eq!(s.alias(l1), l1 << 12 | P | W | NX | G);
    s.declare(l1, Level::L2);
    assert_eq!(s.alias(l1), l1 << 12 | P | NX | G);
    s.remove(l1);
    s.declare(DATA, Level::L1);
    assert_eq!(s.alias(DATA), DATA << 12 | P | NX | G);
}

#[test]
fn entries_pointing_at_nk_memory_are_frozen() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    // The image page of NK data (where the IDT could live) and the alias of
    // an NK frame.
    let (table, index) = image_slot(&s, NK_DATA.start);
    frozen(&mut s, table, index, DATA << 12 | P | W | NX);
    let (table, index) = alias(&s, NK_LOW.start);
    frozen(&mut s, table, index, DATA << 12 | P | W | NX);
    // The rule holds in an unpinned table too: an entry there pointing at
    // NK memory (which only the boot can write) is frozen all the same.
    let [.., l1] = s.user_tables(X);
    s.boot_map(l1, 3, NK_DATA.start << 12 | P | NX);
    s.assert_clean();
    frozen(&mut s, l1, 3, DATA << 12 | P | W | NX);
    s.write(l1, 4, DATA << 12 | P | W | NX);
    s.write(l1, 4, 0);
}

#[test]
fn entries_pointing_at_pinned_tables_are_frozen() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let root = s.root;
    s.declare(X, Level::L1);
    s.declare(X + 1, Level::L3);
    s.declare(X + 2, Level::L2);
    // The root is not pinned, but its links to the direct map and the image
    // lead to pinned tables: not swapped for the outer kernel's own tables.
    frozen(&mut s, root, 256, (X + 1) << 12 | T);
    frozen(&mut s, root, 511, (X + 1) << 12 | T);
    // Nor the links below them (pinned tables, pointing at pinned tables).
    let (dm_l3, dm_l2, low_l1, high_l1) = direct_map_tables(&s);
    frozen(&mut s, dm_l3, 0, (X + 2) << 12 | T);
    frozen(&mut s, dm_l2, 0, X << 12 | T);
    frozen(&mut s, dm_l2, 1, X << 12 | T);
    assert_eq!((s.entry(dm_l2, 0) >> 12, s.entry(dm_l2, 1) >> 12), (low_l1, high_l1));
}

#[test]
fn empty_entries_of_a_pinned_table_are_checked_then_frozen() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    // The first slot past the end of RAM in the direct map's last table.
    let (_, _, _, high_l1) = direct_map_tables(&s);
    let spare = table_index(DIRECT_MAP_BASE + FRAMES as u64 * PAGE_SIZE, 1);
    assert_eq!(s.entry(high_l1, spare), 0);
    // The new entry is checked like any other.
    s.declare(X, Level::L1);
    let kind = FrameKind::Ptp(Level::L1);
    s.refuses_write(high_l1, spare, X << 12 | P | W | NX, VmmuError::WritableMapping { pfn: X, kind });
    let nk = NK_DATA.start;
    s.refuses_write(high_l1, spare, nk << 12 | P | NX, VmmuError::MapsNkMemory { pfn: nk });
    // Accepted, it is frozen from then on.
    s.write(high_l1, spare, DATA << 12 | P | W | NX);
    assert_eq!(s.refs(DATA), 2);
    frozen(&mut s, high_l1, spare, (DATA + 1) << 12 | P | W | NX);
    // An absent entry with the outer kernel's own bits is still absent.
    s.write(high_l1, spare + 1, 0x0000_0123_4567_8ffe);
    s.write(high_l1, spare + 1, 0);
}

#[test]
fn the_kernel_root_takes_empty_and_outer_entries() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let root = s.root;
    s.declare(X, Level::L3);
    s.declare(X + 1, Level::L3);
    for index in [5, 300] {
        s.write(root, index, X << 12 | T);
        s.write(root, index, X << 12 | T | A);
        s.write(root, index, (X + 1) << 12 | T);
        s.write(root, index, 0);
    }
    // An entry written to point at a pinned table is frozen from then on.
    let (img_l3, ..) = image_tables(&s);
    s.write(root, 300, img_l3 << 12 | T);
    frozen(&mut s, root, 300, X << 12 | T);
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
        frozen(&mut s, l4, index, own);
    }
    // Empty kernel-half slots and the user half stay the outer kernel's.
    s.write(l4, 300, own);
    s.write(l4, 300, 0);
    s.write(l4, 0, own);
    s.write(l4, 0, l3 << 12 | T);
    // Frozen entries do not stop a teardown: the root still goes, and its
    // copies of the kernel half with it.
    let (img_l3, ..) = image_tables(&s);
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
    let (dm_l3, dm_l2, low_l1, high_l1) = direct_map_tables(&s);
    let boot = [img_l3, img_l2, img_l1, dm_l3, dm_l2, low_l1, high_l1];
    for pfn in boot {
        s.refuses_remove(pfn, VmmuError::Pinned { pfn });
    }
    // The kernel root is not pinned, and says why it stays.
    let root = s.root;
    s.refuses_remove(root, VmmuError::KernelRoot);
    assert_eq!(s.v.counters().remove.rejections, 2 + boot.len() as u64);
}
