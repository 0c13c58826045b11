//! `declare_ptp`: one test per rule, plus what an accepted declaration does.

use super::machine::*;
use super::sim;
use super::sim::Change;
use crate::vmmu::{FrameKind, Level, RawLevel, RawPfn, VmmuError};
use std::vec::Vec;

const X: u64 = FIRST_DATA + 100;
const Y: u64 = FIRST_DATA + 101;

#[test]
fn declares_free_data_zeroed_with_a_read_only_alias() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    // The outer kernel left data in the frame through its writable alias.
    s.mem.poke(X, 7, 0xdead_beef);
    s.declare(X, Level::L1);
    assert_eq!(s.v.frame(X).unwrap().kind(), FrameKind::Ptp(Level::L1));
    assert!(s.mem.tables[X as usize].iter().all(|&e| e == 0));
    assert_eq!(s.alias(X), X << 12 | P | NX | G);
    assert_eq!(s.refs(X), 1);
    assert_eq!((s.v.counters().declare.calls, s.v.counters().declare.rejections), (1, 0));
}

#[test]
fn the_tlb_is_flushed_between_write_protecting_and_zeroing() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    s.mem.poke(X, 7, 0xdead_beef);
    let (table, index) = alias_slot(&s.mem, s.root, X).unwrap();
    s.declare(X, Level::L1);
    let old = X << 12 | P | W | NX | G;
    let new = X << 12 | P | NX | G;
    let journal = [
        Change::Write { table, index, old, new },
        Change::Flush,
        Change::Cleared { table: X, index: 7, old: 0xdead_beef },
        Change::Zero { pfn: X },
    ];
    assert_eq!(s.mem.journal, journal);
    // Nothing is stale after the flush: `finish` has nothing to do.
    assert!(!s.v.tlb_stale());
    s.v.finish(&mut s.mem);
    assert_eq!(s.mem.flushes(), 1);
}

#[test]
fn a_level_4_table_gets_the_kernel_half() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let kernel_l3s: Vec<u64> = (256..512).map(|i| s.entry(s.root, i)).filter(|&e| e != 0).map(|e| e >> 12).collect();
    assert_eq!(kernel_l3s.len(), 2);
    let before: Vec<u32> = kernel_l3s.iter().map(|&p| s.refs(p)).collect();
    s.declare(X, Level::L4);
    for i in 0..512 {
        let expected = if i >= 256 { s.entry(s.root, i) } else { 0 };
        assert_eq!(s.entry(X, i), expected);
    }
    for (&p, &r) in kernel_l3s.iter().zip(&before) {
        assert_eq!(s.refs(p), r + 1);
    }
}

#[test]
fn frame_out_of_range() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    s.refuses_declare(FRAMES as u64, 1, VmmuError::FrameOutOfRange { pfn: FRAMES as u64 });
    s.refuses_declare(u64::MAX, 1, VmmuError::FrameOutOfRange { pfn: u64::MAX });
}

#[test]
fn bad_level() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    for level in [0, 5, 255] {
        s.refuses_declare(X, level, VmmuError::BadLevel { level });
    }
}

#[test]
fn only_data_becomes_a_page_table() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    for pfn in [CODE.start, READ_ONLY.start, NK_DATA.start, NK_LOW.start, HOLE.start, BOOT_TABLES.end - 1] {
        let found = s.v.frame(pfn).unwrap().kind();
        s.refuses_declare(pfn, 1, VmmuError::WrongKind { pfn, found });
    }
    // Declaring twice.
    s.declare(X, Level::L2);
    s.refuses_declare(X, 2, VmmuError::WrongKind { pfn: X, found: FrameKind::Ptp(Level::L2) });
    s.refuses_declare(s.root, 4, VmmuError::WrongKind { pfn: s.root, found: FrameKind::Ptp(Level::L4) });
}

#[test]
fn a_frame_mapped_elsewhere_stays_data() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let [_, _, l2, l1] = s.user_tables(X);
    let target = FIRST_DATA + 200;
    // Even a read-only user mapping would let the outer kernel read the
    // table; a writable one would let it write it.
    s.write(l1, 5, target << 12 | P | U | NX);
    s.refuses_declare(target, 1, VmmuError::StillMapped { pfn: target, refs: 2 });
    // Through a 2 MiB page, too.
    s.write(l2, 1, 512 << 12 | P | W | NX | PS);
    s.refuses_declare(600, 3, VmmuError::StillMapped { pfn: 600, refs: 2 });
}

#[test]
fn no_direct_map_alias() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let (table, index) = alias_slot(&s.mem, s.root, X).unwrap();
    // The outer kernel can neither unmap nor repoint an alias: the direct
    // map's tables are pinned.
    s.refuses_write(table, index, 0, VmmuError::PinnedEntry { table, index });
    s.refuses_write(table, index, Y << 12 | P | W | NX, VmmuError::PinnedEntry { table, index });
    // The rule does not rely on that. A frame the boot left without an
    // alias has no reference left.
    s.boot_map(table, index, 0);
    s.assert_clean();
    s.refuses_declare(X, 1, VmmuError::NoDirectMapAlias { pfn: X });
    // The alias slot maps another frame, while one other mapping of X
    // remains: one reference, but not the alias, so X is still exposed.
    s.boot_map(table, index, Y << 12 | P | W | NX);
    let [.., l1] = s.user_tables(FIRST_DATA + 300);
    s.write(l1, 0, X << 12 | P | W | U | NX);
    assert_eq!(s.refs(X), 1);
    s.refuses_declare(X, 1, VmmuError::NoDirectMapAlias { pfn: X });
    // And Y, mapped by two direct-map slots, is still mapped elsewhere.
    s.refuses_declare(Y, 1, VmmuError::StillMapped { pfn: Y, refs: 2 });
}

#[test]
fn the_alias_becomes_supervisor_no_execute() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let (table, index) = alias_slot(&s.mem, s.root, X).unwrap();
    // Whatever rights the alias had (the outer kernel cannot change them;
    // a boot could have made it user-executable, legal for data).
    s.boot_map(table, index, X << 12 | P | U);
    s.declare(X, Level::L1);
    assert_eq!(s.alias(X), X << 12 | P | NX);
    s.remove(X);
    assert_eq!(s.alias(X), X << 12 | P | W | NX);
}

#[test]
fn kernel_half_references_never_overflow() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let l3 = s.entry(s.root, 511) >> 12;
    s.v.frames[l3 as usize].set_refs(u32::MAX);
    s.refuses_unchecked(VmmuError::RefOverflow { pfn: l3 }, |v, mem| v.declare_ptp(mem, RawPfn(X), RawLevel(4)));
    // One below the limit leaves room for the one copy.
    s.v.frames[l3 as usize].set_refs(u32::MAX - 1);
    s.v.declare_ptp(&mut s.mem, RawPfn(X), RawLevel(4)).unwrap();
    assert_eq!(s.refs(l3), u32::MAX);
}

#[test]
fn kernel_half_copies_are_counted_exactly_near_the_limit() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    // Two kernel-half slots share one level-3 table: two copies per root.
    let l3 = s.entry(s.root, 511) >> 12;
    s.write(s.root, 300, l3 << 12 | T);
    s.v.frames[l3 as usize].set_refs(u32::MAX - 1);
    s.refuses_unchecked(VmmuError::RefOverflow { pfn: l3 }, |v, mem| v.declare_ptp(mem, RawPfn(X), RawLevel(4)));
    s.v.frames[l3 as usize].set_refs(u32::MAX - 2);
    s.v.declare_ptp(&mut s.mem, RawPfn(X), RawLevel(4)).unwrap();
    assert_eq!(s.refs(l3), u32::MAX);
}
