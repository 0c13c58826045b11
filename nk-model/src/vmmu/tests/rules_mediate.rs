//! `protect` and `unprotect` (the frame side of `nk_declare` and `nk_free`):
//! one test per rule, plus what an accepted call does.

use super::machine::*;
use super::sim;
use crate::vmmu::{FrameKind, Invariant, Level, VmmuError};
use std::vec::Vec;

const X: u64 = FIRST_DATA + 100;

#[test]
fn protect_write_protects_the_alias_and_keeps_the_contents() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    s.mem.tables[X as usize][7] = 0x1234;
    s.v.protect(&mut s.mem, X).unwrap();
    s.assert_clean();
    assert_eq!(s.v.frame(X).unwrap().kind(), FrameKind::Mediated);
    assert_eq!(s.alias(X), X << 12 | P | NX | G);
    assert_eq!(s.mem.tables[X as usize][7], 0x1234);
    assert!(s.v.tlb_stale());
    s.v.unprotect(&mut s.mem, X).unwrap();
    s.assert_clean();
    assert_eq!(s.v.frame(X).unwrap().kind(), FrameKind::Data);
    assert_eq!(s.alias(X), X << 12 | P | W | NX | G);
}

#[test]
fn a_mediated_frame_is_never_mapped_writable_or_user() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let [.., l1] = s.user_tables(X);
    let m = X + 20;
    s.v.protect(&mut s.mem, m).unwrap();
    let kind = FrameKind::Mediated;
    s.refuses_write(l1, 0, m << 12 | P | W | NX, VmmuError::WritableMapping { pfn: m, kind });
    s.refuses_write(l1, 0, m << 12 | P | U | NX, VmmuError::UserMapping { pfn: m, kind });
    s.refuses_write(l1, 0, m << 12 | P, VmmuError::ExecutableMapping { pfn: m, kind });
    // Read-only for the kernel is fine, and then it cannot be unprotected
    // into a writable frame behind that mapping's back: protect refuses.
    s.write(l1, 0, m << 12 | P | NX);
    assert_eq!(s.refs(m), 2);
}

#[test]
fn only_unmapped_data_is_protected() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let [.., l1] = s.user_tables(X);
    let d = X + 30;
    s.write(l1, 1, d << 12 | P | W | U | NX);
    s.refuses(VmmuError::StillMapped { pfn: d, refs: 2 }, |v, mem| v.protect(mem, d));
    s.refuses(VmmuError::WrongKind { pfn: l1, found: FrameKind::Ptp(Level::L1) }, |v, mem| v.protect(mem, l1));
    let beyond = s.v.frames_len() as u64;
    s.refuses(VmmuError::FrameOutOfRange { pfn: beyond }, |v, mem| v.protect(mem, beyond));
    assert_eq!(s.v.check_protect(&s.mem, d), Err(VmmuError::StillMapped { pfn: d, refs: 2 }));
    assert_eq!(s.v.check_protect(&s.mem, d + 1), Ok(()));
}

#[test]
fn only_mediated_frames_are_unprotected() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    s.refuses(VmmuError::WrongKind { pfn: X, found: FrameKind::Data }, |v, mem| v.unprotect(mem, X));
    s.declare(X, Level::L2);
    s.refuses(VmmuError::WrongKind { pfn: X, found: FrameKind::Ptp(Level::L2) }, |v, mem| v.unprotect(mem, X));
}

#[test]
fn the_checker_sees_a_writable_mapping_of_a_mediated_frame() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let [.., l1] = s.user_tables(X);
    let m = X + 20;
    s.v.protect(&mut s.mem, m).unwrap();
    s.boot_map(l1, 0, m << 12 | P | W | NX);
    let r = s.report();
    assert_eq!(r.first[0].map(|v| (v.invariant, v.pfn)), Some((Invariant::I11, m)));
}
