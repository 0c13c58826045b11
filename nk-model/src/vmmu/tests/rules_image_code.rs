//! Image code is executable only at its boot mapping: `write_pte`, its
//! batches and `map_code` refuse every other kernel-executable leaf of it
//! (`ImageCodeRemapped`), while frames `map_code` vetted map executable
//! anywhere. This is what lets the build-time scan read the image's code as
//! one contiguous run, with no rule for its frame ends (docs/vmmu.md,
//! *Image code*; docs/scanner.md).

use super::machine::*;
use super::{Sim, sim};
use crate::pte::Pte;
use crate::vmmu::{BatchError, FrameDesc, FrameKind, Invariant, Op, RawPfn, RawPte, VmmuError};
use std::vec::Vec;

/// The frame `map_code` vets.
const X: u64 = FIRST_DATA + 100;
/// The user address space's tables.
const BASE: u64 = FIRST_DATA + 300;

fn setup(frames: &mut Vec<FrameDesc>) -> (Sim<'_>, [u64; 4]) {
    let mut s = sim(frames);
    let t = s.user_tables(BASE);
    // push rbp; pop rbp; ret: benign, and no cut opcode at the frame's end.
    s.mem.put(X, 0, &[0x55, 0x5d, 0xc3]);
    s.v.finish(&mut s.mem);
    (s, t)
}

#[test]
fn the_boot_marks_image_code_and_only_it() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    for pfn in CODE {
        let d = s.v.frame(pfn).unwrap();
        assert_eq!((d.kind(), d.image_code()), (FrameKind::Code, true), "{pfn:#x}");
    }
    for pfn in [NK_LOW.start, READ_ONLY.start, NK_DATA.start, FIRST_DATA, HOLE.start] {
        assert!(!s.v.frame(pfn).unwrap().image_code(), "{pfn:#x}");
    }
    s.map_code(l1, 1, X << 12 | P | G);
    let d = s.v.frame(X).unwrap();
    assert_eq!((d.kind(), d.image_code()), (FrameKind::Code, false), "a vetted frame is not image code");
}

#[test]
fn write_pte_refuses_image_code_executable_anywhere_else() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    for pfn in CODE {
        // Every flag combination that is kernel-executable and passes the
        // kind's other rules: global or not, accessed, dirty, cached or not.
        for extra in [0, G, A | D, PCD | PWT] {
            s.refuses_write(l1, 7, pfn << 12 | P | extra, VmmuError::ImageCodeRemapped { pfn });
        }
        // Read-only and no-execute stays allowed: reading code is harmless.
        s.write(l1, 8, pfn << 12 | P | NX);
    }
    // Writable or user refusals keep their own rule.
    let (pfn, kind) = (CODE.start, FrameKind::Code);
    s.refuses_write(l1, 7, pfn << 12 | P | W | NX, VmmuError::WritableMapping { pfn, kind });
    s.refuses_write(l1, 7, pfn << 12 | P | U, VmmuError::UserMapping { pfn, kind });
}

#[test]
fn a_batch_stops_at_image_code_mapped_executable() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    let pfn = CODE.start + 3;
    let ops = [
        Op::Write(RawPfn(l1), 1, RawPte(pfn << 12 | P | NX)),
        Op::Write(RawPfn(l1), 2, RawPte(pfn << 12 | P | G)),
        Op::Write(RawPfn(l1), 3, RawPte(FIRST_DATA << 12 | P | W | NX)),
    ];
    let result = s.v.apply_batch(&mut s.mem, &ops);
    assert_eq!(result, Err(BatchError { index: 1, error: VmmuError::ImageCodeRemapped { pfn } }));
    assert_eq!((s.entry(l1, 1), s.entry(l1, 2), s.entry(l1, 3)), (pfn << 12 | P | NX, 0, 0));
    s.v.finish(&mut s.mem);
    s.assert_clean();
}

#[test]
fn map_code_refuses_image_code() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    for pfn in CODE {
        s.refuses_map_code(l1, 5, pfn << 12 | P | G, VmmuError::ImageCodeRemapped { pfn });
    }
    // The boot mapping stays what it was, and frozen: the one executable
    // mapping image code has.
    let (table, index) = image_slot(&s, CODE.start);
    s.refuses_map_code(table, index, CODE.start << 12 | P | G, VmmuError::PinnedEntry { table, index });
}

#[test]
fn vetted_code_maps_executable_anywhere() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    s.map_code(l1, 1, X << 12 | P | G);
    s.map_code(l1, 2, X << 12 | P);
    s.write(l1, 3, X << 12 | P | G);
    assert_eq!(s.refs(X), 4);
    s.v.finish(&mut s.mem);
    s.assert_clean();
}

#[test]
fn image_code_executable_outside_a_pinned_table_is_i7() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    let pfn = CODE.start + 1;
    // A state only the trusted boot interface can reach.
    s.v.boot_map(&mut s.mem, l1, 4, Pte::from_bits(pfn << 12 | P | G)).unwrap();
    let r = s.report();
    assert_eq!(r.violations, 1);
    let v = r.first[0].unwrap();
    assert_eq!((v.invariant, v.pfn), (Invariant::I7, pfn), "{v}");
    // Read-only and no-execute there is fine.
    s.v.boot_map(&mut s.mem, l1, 4, Pte::from_bits(pfn << 12 | P | NX)).unwrap();
    assert!(s.report().is_clean());
}

/// Where the image maps `pfn`: (image l1, index).
fn image_slot(s: &Sim<'_>, pfn: u64) -> (u64, usize) {
    use crate::layout::{KERNEL_BASE, PAGE_SIZE, table_index};
    let va = KERNEL_BASE + pfn * PAGE_SIZE;
    let mut table = s.root;
    for level in [4, 3, 2] {
        table = s.entry(table, table_index(va, level)) >> 12 & 0xff_ffff_ffff;
    }
    (table, table_index(va, 1))
}
