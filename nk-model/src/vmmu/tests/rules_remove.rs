//! `remove_ptp`: one test per rule, plus what an accepted removal does.

use super::machine::*;
use super::sim;
use super::sim::Change;
use crate::vmmu::{FrameKind, Level, Op, RawPfn, RawPte, VmmuError};
use std::vec::Vec;

const X: u64 = FIRST_DATA + 100;

#[test]
fn removes_an_unreferenced_table() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    s.declare(X, Level::L1);
    let data = FIRST_DATA + 200;
    s.write(X, 3, data << 12 | P | W | U | NX);
    s.write(X, 4, 512 << 12 | P | NX);
    assert_eq!(s.refs(data), 2);
    s.v.finish(&mut s.mem);
    s.remove(X);
    assert_eq!(s.v.frame(X).unwrap().kind(), FrameKind::Data);
    assert_eq!(s.refs(data), 1);
    assert_eq!(s.refs(512), 1);
    assert_eq!(s.refs(X), 1);
    assert_eq!(s.alias(X), X << 12 | P | W | NX | G);
    assert!(s.v.tlb_stale());
    // Data again: it can be declared again, at another level.
    s.declare(X, Level::L3);
}

#[test]
fn the_tlb_is_flushed_before_the_table_becomes_writable() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let [.., l2, l1] = s.user_tables(X);
    s.v.finish(&mut s.mem);
    let mark = s.mem.mark();
    let (table, index) = alias_slot(&s.mem, s.root, l1).unwrap();
    let teardown = [Op::Write(RawPfn(l2), 0, RawPte(0)), Op::Remove(RawPfn(l1))];
    s.v.apply_batch(&mut s.mem, &teardown).unwrap();
    let journal = [
        Change::Write { table: l2, index: 0, old: l1 << 12 | T, new: 0 },
        Change::Flush,
        Change::Write { table, index, old: l1 << 12 | P | NX | G, new: l1 << 12 | P | W | NX | G },
    ];
    assert_eq!(s.mem.since(mark), journal);
    // Nothing was stale: no flush inside the removal.
    s.declare(X + 10, Level::L1);
    s.v.finish(&mut s.mem);
    let mark = s.mem.mark();
    s.remove(X + 10);
    assert_eq!(s.mem.since(mark).len(), 1);
}

#[test]
fn removing_a_root_drops_its_kernel_half() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let l3 = s.entry(s.root, 511) >> 12;
    let refs = s.refs(l3);
    s.declare(X, Level::L4);
    assert_eq!(s.refs(l3), refs + 1);
    s.remove(X);
    assert_eq!(s.refs(l3), refs);
}

#[test]
fn frame_out_of_range() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    s.refuses_remove(FRAMES as u64 + 3, VmmuError::FrameOutOfRange { pfn: FRAMES as u64 + 3 });
}

#[test]
fn not_declared() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    for pfn in [X, CODE.start, NK_DATA.start, HOLE.start] {
        s.refuses_remove(pfn, VmmuError::NotDeclared { pfn });
    }
}

#[test]
fn kernel_root() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let root = s.root;
    s.refuses_remove(root, VmmuError::KernelRoot);
}

#[test]
fn live_root() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    s.declare(X, Level::L4);
    s.v.load_cr3(5, RawPfn(X)).unwrap();
    s.refuses_remove(X, VmmuError::LiveRoot { pfn: X });
    // Once the CPU runs on another root, the table can go.
    s.v.load_cr3(5, RawPfn(s.root)).unwrap();
    s.remove(X);
}

#[test]
fn in_use_by_a_parent_or_a_leaf() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let [l4, l3, l2, l1] = s.user_tables(X);
    s.refuses_remove(l1, VmmuError::InUse { pfn: l1, refs: 2 });
    s.refuses_remove(l3, VmmuError::InUse { pfn: l3, refs: 2 });
    // A read-only mapping of the table counts as much as a parent.
    s.write(l2, 0, 0);
    s.write(l1, 9, l1 << 12 | P | NX);
    s.refuses_remove(l1, VmmuError::InUse { pfn: l1, refs: 2 });
    s.write(l1, 9, 0);
    s.remove(l1);
    s.refuses_remove(l2, VmmuError::InUse { pfn: l2, refs: 2 });
    s.write(l3, 0, 0);
    s.remove(l2);
    s.write(l4, 0, 0);
    s.remove(l3);
    s.remove(l4);
}

#[test]
fn no_direct_map_alias() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    s.declare(X, Level::L1);
    let (table, index) = alias_slot(&s.mem, s.root, X).unwrap();
    // The outer kernel cannot unmap the alias of the table (the direct map
    // is pinned), but the rule does not rely on that: a table whose alias
    // is gone (the boot interface stands in) has no reference left.
    s.refuses_write(table, index, 0, VmmuError::PinnedEntry { table, index });
    s.boot_map(table, index, 0);
    s.assert_clean();
    s.refuses_remove(X, VmmuError::NoDirectMapAlias { pfn: X });
    // One reference again, but from a parent, not the alias: removing it
    // would leave the parent pointing at writable data.
    let parent = FIRST_DATA + 300;
    s.declare(parent, Level::L2);
    s.write(parent, 0, X << 12 | T);
    assert_eq!(s.refs(X), 1);
    s.refuses_remove(X, VmmuError::NoDirectMapAlias { pfn: X });
}
