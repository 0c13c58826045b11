//! `load_cr3`: one test per rule.

use super::machine::*;
use super::sim;
use crate::vmmu::{FrameKind, Level, MAX_CPUS, RawPfn, VmmuError};
use std::vec::Vec;

const X: u64 = FIRST_DATA + 100;

#[test]
fn loads_a_declared_root_and_records_it() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    s.declare(X, Level::L4);
    assert_eq!(s.v.load_cr3(MAX_CPUS - 1, RawPfn(X)), Ok(X));
    assert_eq!(s.v.live_roots()[MAX_CPUS - 1], Some(X));
    assert_eq!(s.v.load_cr3(0, RawPfn(s.root)), Ok(s.root));
    s.assert_clean();
    let c = s.v.counters().load_cr3;
    assert_eq!((c.calls, c.rejections), (2, 0));
}

#[test]
fn bad_cpu() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let root = s.root;
    for cpu in [MAX_CPUS, usize::MAX] {
        s.refuses(VmmuError::BadCpu { cpu }, |v, _| v.load_cr3(cpu, RawPfn(root)));
    }
}

#[test]
fn frame_out_of_range() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    s.refuses(VmmuError::FrameOutOfRange { pfn: 1 << 40 }, |v, _| v.load_cr3(0, RawPfn(1 << 40)));
}

#[test]
fn only_a_declared_level_4_table() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    for pfn in [X, CODE.start, NK_DATA.start] {
        s.refuses(VmmuError::NotDeclared { pfn }, |v, _| v.load_cr3(1, RawPfn(pfn)));
    }
    s.declare(X, Level::L3);
    let wrong = VmmuError::WrongLevel { pfn: X, expected: Level::L4, found: FrameKind::Ptp(Level::L3) };
    s.refuses(wrong, |v, _| v.load_cr3(1, RawPfn(X)));
    assert_eq!(s.v.counters().load_cr3.rejections, 4);
}
