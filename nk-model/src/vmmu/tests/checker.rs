//! The checker passes the booted machine and catches every kind of broken
//! state (states made with the trusted boot interface, which checks nothing).

use super::machine::*;
use super::{Sim, sim};
use crate::layout::{DIRECT_MAP_BASE, KERNEL_BASE, table_index};
use crate::pte::Pte;
use crate::vmmu::{FrameKind, Invariant, Level, REPORTED, check};
use std::vec;
use std::vec::Vec;

#[test]
fn booted_machine_is_clean() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let r = s.report();
    assert!(r.is_clean(), "{:?}", r.first);
    assert_eq!(r.frames, FRAMES);
    assert_eq!(r.address_spaces, 1);
    // Root; direct map L3, L2 and two L1s; image L3, L2, L1.
    assert_eq!(r.ptps, 8);
    // Every RAM frame has its alias; image frames are mapped twice.
    assert_eq!(s.refs(FIRST_DATA), 1);
    assert_eq!(s.refs(CODE.start), 2);
    assert_eq!(s.refs(HOLE.start), 1);
    // The root: its alias only (no level 5).
    assert_eq!(s.refs(s.root), 1);
    assert_eq!(s.alias(CODE.start), CODE.start << 12 | P | NX | G);
}

/// Breaks the booted machine with `boot_map` and expects `invariant` at `pfn`.
fn broken_by(table_of: impl Fn(&Sim<'_>) -> (u64, usize), value: u64, invariant: Invariant, pfn: u64) {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let (table, index) = table_of(&s);
    s.v.boot_map(&mut s.mem, table, index, Pte::from_bits(value)).unwrap();
    let r = s.report();
    assert!(r.violations >= 1, "not caught: {value:#x}");
    let v = r.first[0].unwrap();
    assert_eq!((v.invariant, v.pfn), (invariant, pfn), "{v}");
}

/// A free slot of a direct-map level-1 table (the one after the end of RAM).
fn spare_l1_slot(s: &Sim<'_>) -> (u64, usize) {
    let (table, _) = alias_slot(&s.mem, s.root, FRAMES as u64 - 1).unwrap();
    (table, table_index(DIRECT_MAP_BASE + FRAMES as u64 * 4096, 1))
}

#[test]
fn writable_or_user_page_table_is_i2() {
    let table = BOOT_TABLES.start + 1;
    broken_by(spare_l1_slot, table << 12 | P | W | NX, Invariant::I2, table);
    broken_by(spare_l1_slot, table << 12 | P | U | NX, Invariant::I2, table);
    // Through its own alias, too.
    broken_by(|s| alias_slot(&s.mem, s.root, table).unwrap(), table << 12 | P | W | NX, Invariant::I2, table);
}

#[test]
fn writable_or_user_nk_memory_is_i8() {
    broken_by(spare_l1_slot, NK_DATA.start << 12 | P | W | NX, Invariant::I8, NK_DATA.start);
    broken_by(spare_l1_slot, NK_LOW.start << 12 | P | U | NX, Invariant::I8, NK_LOW.start);
}

#[test]
fn w_xor_x_and_kernel_execution_are_i6() {
    let data = FIRST_DATA + 5;
    broken_by(spare_l1_slot, data << 12 | P | W | U, Invariant::I6, data);
    broken_by(spare_l1_slot, data << 12 | P, Invariant::I6, data);
    broken_by(spare_l1_slot, READ_ONLY.start << 12 | P, Invariant::I6, READ_ONLY.start);
    broken_by(spare_l1_slot, CODE.start << 12 | P | W | NX, Invariant::I6, CODE.start);
    broken_by(spare_l1_slot, HOLE.start << 12 | P | U, Invariant::I6, HOLE.start);
    broken_by(spare_l1_slot, 5000 << 12 | P, Invariant::I6, 5000);
}

#[test]
fn table_entries_to_anything_but_the_next_level_are_i1() {
    let root_slot = |_: &Sim<'_>| (BOOT_TABLES.start, 3);
    let data = FIRST_DATA + 7;
    broken_by(root_slot, data << 12 | T, Invariant::I1, data);
    broken_by(root_slot, 5000 << 12 | T, Invariant::I1, 5000);
    // The direct-map level-1 table is at the wrong level for a root entry.
    let l1 = |s: &Sim<'_>| alias_slot(&s.mem, s.root, 0).unwrap().0;
    let mut frames = Vec::new();
    let s = sim(&mut frames);
    let wrong = l1(&s);
    drop(s);
    broken_by(root_slot, wrong << 12 | T, Invariant::I1, wrong);
}

#[test]
fn roots_must_be_level_4_tables() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    s.v.live_roots[3] = Some(FIRST_DATA);
    let r = s.report();
    assert_eq!(r.violations, 1);
    assert_eq!(r.first[0].map(|v| (v.invariant, v.pfn)), Some((Invariant::I5, FIRST_DATA)));
    s.v.live_roots[3] = None;
    s.v.boot_set_kind(s.root, FrameKind::Ptp(Level::L3)).unwrap();
    let r = s.report();
    assert!(r.kept().any(|v| v.invariant == Invariant::I5 && v.pfn == s.root));
}

#[test]
fn wrong_reference_counts_are_caught() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    s.v.frames[100].set_refs(2);
    let r = s.report();
    assert_eq!(r.violations, 1);
    assert_eq!(r.first[0].map(|v| (v.invariant, v.pfn)), Some((Invariant::RefCount, 100)));
    // An entry written behind the vMMU's back (the refs stay unchanged).
    s.v.frames[100].set_refs(1);
    let (table, index) = spare_l1_slot(&s);
    s.mem.poke(table, index, 100 << 12 | P | NX);
    let r = s.report();
    assert_eq!(r.first[0].map(|v| (v.invariant, v.pfn)), Some((Invariant::RefCount, 100)));
}

#[test]
fn a_short_scratch_area_is_a_violation_not_a_pass() {
    let mut frames = Vec::new();
    let s = sim(&mut frames);
    let mut scratch = vec![0; FRAMES - 1];
    let r = check(&s.v, &s.mem, &mut scratch);
    assert_eq!(r.violations, 1);
    assert_eq!(r.first[0].unwrap().invariant, Invariant::RefCount);
}

#[test]
fn many_violations_are_counted_and_the_first_kept() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    // Make the image's code writable: one I6 per code frame, plus W^X.
    let image_l1 = {
        let mut table = s.root;
        for level in [4u8, 3, 2] {
            table = Pte::from_bits(s.entry(table, table_index(KERNEL_BASE, level))).addr() >> 12;
        }
        table
    };
    for pfn in CODE {
        let index = table_index(KERNEL_BASE + pfn * 4096, 1);
        s.v.boot_map(&mut s.mem, image_l1, index, Pte::from_bits(pfn << 12 | P | W | NX)).unwrap();
    }
    let r = s.report();
    assert_eq!(r.violations, CODE.count() as u64);
    assert!(r.first.iter().all(Option::is_some));
    assert_eq!(r.kept().count(), REPORTED);
}
