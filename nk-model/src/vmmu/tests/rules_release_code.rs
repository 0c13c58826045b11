//! `release_code`: one test per rule (each refusal leaves memory, the frame
//! table and every counter but its own as they were), and what an accepted
//! call does: the TLB flushed, the frame zeroed, typed `Data`, its alias
//! writable again, in that order; the frame is then free data like any.

use super::machine::*;
use super::sim::Change;
use super::{Sim, sim};
use crate::vmmu::{FrameDesc, FrameKind, Level, RawPfn, VmmuError};
use std::vec::Vec;

/// The frame that becomes code and is released.
const X: u64 = FIRST_DATA + 100;
/// The user address space's tables.
const BASE: u64 = FIRST_DATA + 300;

/// `mov eax, 1; ret`.
const RET_1: &[u8] = &[0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3];

fn code(pfn: u64) -> u64 {
    pfn << 12 | P | G
}

/// A machine with a user address space whose level-1 table mapped `X` as
/// code (vetted by `map_code`) and no longer does: `X` is `Code`, mapped by
/// its read-only alias alone, ready to be released.
fn setup(frames: &mut Vec<FrameDesc>) -> (Sim<'_>, u64) {
    let mut s = sim(frames);
    let [.., l1] = s.user_tables(BASE);
    s.mem.put(X, 0, RET_1);
    s.map_code(l1, 3, code(X));
    s.write(l1, 3, 0);
    s.v.finish(&mut s.mem);
    assert_eq!((s.v.frame(X).unwrap().kind(), s.refs(X)), (FrameKind::Code, 1));
    (s, l1)
}

impl Sim<'_> {
    /// `release_code(pfn)` must be refused with `expected`, changing
    /// nothing but its own counter.
    #[track_caller]
    fn refuses_release(&mut self, pfn: u64, expected: VmmuError) {
        let mut counters = *self.v.counters();
        counters.release_code.calls += 1;
        counters.release_code.rejections += 1;
        self.refuses(expected, |v, mem| v.release_code(mem, RawPfn(pfn)));
        assert_eq!(*self.v.counters(), counters, "a refused release_code counted elsewhere");
    }

    #[track_caller]
    fn release(&mut self, pfn: u64) {
        self.v.release_code(&mut self.mem, RawPfn(pfn)).unwrap();
        self.assert_clean();
    }
}

#[test]
fn the_frame_is_in_the_frame_table() {
    let mut frames = Vec::new();
    let (mut s, _) = setup(&mut frames);
    for pfn in [FRAMES as u64, FRAMES as u64 + 3, u64::MAX] {
        s.refuses_release(pfn, VmmuError::FrameOutOfRange { pfn });
    }
}

#[test]
fn only_code_is_released() {
    let mut frames = Vec::new();
    let (mut s, l1) = setup(&mut frames);
    let root = s.root;
    let cases = [
        (FIRST_DATA, FrameKind::Data),
        (READ_ONLY.start, FrameKind::ReadOnly),
        (l1, FrameKind::Ptp(Level::L1)),
        (root, FrameKind::Ptp(Level::L4)),
        (NK_DATA.start, FrameKind::Nk),
        (BOOT_TABLES.end - 1, FrameKind::Nk),
        (HOLE.start, FrameKind::Device),
    ];
    for (pfn, kind) in cases {
        s.refuses_release(pfn, VmmuError::NotCode { pfn, kind });
    }
    // Released once, it is data: a second release is refused.
    s.release(X);
    s.refuses_release(X, VmmuError::NotCode { pfn: X, kind: FrameKind::Data });
}

#[test]
fn image_code_is_never_released() {
    let mut frames = Vec::new();
    let (mut s, _) = setup(&mut frames);
    // Mapped twice (its alias and the image), but the image rule comes
    // first: the frame would be refused however few mappings it had.
    for pfn in CODE {
        assert!(s.v.frame(pfn).unwrap().image_code());
        s.refuses_release(pfn, VmmuError::ImageCodeReleased { pfn });
    }
}

#[test]
fn a_frame_still_mapped_anywhere_is_refused() {
    let mut frames = Vec::new();
    let (mut s, l1) = setup(&mut frames);
    // By a code leaf in some table: the module is still loaded.
    s.map_code(l1, 7, code(X));
    s.refuses_release(X, VmmuError::StillMapped { pfn: X, refs: 2 });
    // In another address space too.
    let [.., other] = s.user_tables(BASE + 10);
    s.map_code(other, 0, code(X));
    s.refuses_release(X, VmmuError::StillMapped { pfn: X, refs: 3 });
    // By a read-only, no-execute leaf: once data, the frame would be
    // writable to the outer kernel while a CPU could still read it as a
    // module's page; every mapping counts.
    s.write(other, 0, X << 12 | P | NX);
    s.refuses_release(X, VmmuError::StillMapped { pfn: X, refs: 3 });
    // Each mapping cleared by write_pte: accepted.
    s.write(l1, 7, 0);
    s.refuses_release(X, VmmuError::StillMapped { pfn: X, refs: 2 });
    s.write(other, 0, 0);
    s.release(X);
    assert_eq!(s.v.frame(X).unwrap().kind(), FrameKind::Data);
}

#[test]
fn no_direct_map_alias() {
    let mut frames = Vec::new();
    let (mut s, _) = setup(&mut frames);
    let (table, index) = alias_slot(&s.mem, s.root, X).unwrap();
    // The outer kernel cannot take an alias away (the direct map is
    // pinned); the boot interface stands in for a machine where it is gone.
    s.boot_map(table, index, 0);
    s.assert_clean();
    s.refuses_release(X, VmmuError::NoDirectMapAlias { pfn: X });
    // One reference, but not the alias: the other mapping would stay.
    s.boot_map(table, index, (FIRST_DATA + 1) << 12 | P | W | NX);
    let [.., other] = s.user_tables(BASE + 10);
    s.write(other, 0, X << 12 | P | NX);
    assert_eq!(s.refs(X), 1);
    s.refuses_release(X, VmmuError::NoDirectMapAlias { pfn: X });
}

#[test]
fn a_released_frame_is_zeroed_data_with_a_writable_alias() {
    let mut frames = Vec::new();
    let (mut s, _) = setup(&mut frames);
    let (at, slot) = alias_slot(&s.mem, s.root, X).unwrap();
    let (counters, mark) = (*s.v.counters(), s.mem.mark());
    assert_eq!(s.alias(X), X << 12 | P | NX | G, "vetted code has a read-only alias");
    s.release(X);
    let desc = s.v.frame(X).unwrap();
    assert_eq!((desc.kind(), desc.image_code(), desc.refs()), (FrameKind::Data, false, 1));
    assert!(s.mem.bytes(X).iter().all(|&b| b == 0), "the code is left in the frame");
    assert_eq!(s.alias(X), X << 12 | P | W | NX | G, "the alias is a data frame's again");
    // Flushed before anything else, so no CPU keeps an executable
    // translation once the frame can be written; zeroed before the alias
    // becomes writable; the TLB left stale for `finish` (rights grew).
    let mut first = [0u8; 8];
    first[..RET_1.len()].copy_from_slice(RET_1);
    let mut expected = std::vec![Change::Flush];
    expected.push(Change::Cleared { table: X, index: 0, old: u64::from_le_bytes(first) });
    expected.push(Change::Zero { pfn: X });
    expected.push(Change::Write { table: at, index: slot, old: X << 12 | P | NX | G, new: X << 12 | P | W | NX | G });
    assert_eq!(s.mem.since(mark), expected);
    assert!(s.v.tlb_stale());
    let mut after = counters;
    after.release_code.calls += 1;
    assert_eq!(*s.v.counters(), after, "release_code counts under its own name only");
}

#[test]
fn a_stale_executable_translation_is_flushed_first() {
    let mut frames = Vec::new();
    let (mut s, l1) = setup(&mut frames);
    // The code leaf cleared in the same gate crossing, no flush yet: some
    // CPU may still hold the executable translation.
    s.map_code(l1, 3, code(X));
    s.v.finish(&mut s.mem);
    s.write(l1, 3, 0);
    assert!(s.v.tlb_stale());
    let mark = s.mem.mark();
    s.release(X);
    let changes = s.mem.since(mark);
    let alias_write = changes.iter().position(|c| matches!(c, Change::Write { .. })).unwrap();
    assert_eq!(changes[0], Change::Flush, "the frame was written before the flush: {changes:?}");
    assert_eq!(alias_write, changes.len() - 1, "the alias changed before the frame was zeroed");
}

#[test]
fn a_released_frame_is_free_data_again() {
    let mut frames = Vec::new();
    let (mut s, l1) = setup(&mut frames);
    s.release(X);
    // Mapped writable, by the outer kernel.
    s.write(l1, 5, X << 12 | P | W | NX);
    s.write(l1, 5, 0);
    // Declared as a page table, and given back.
    s.declare(X, Level::L1);
    s.remove(X);
    // Vetted again by map_code: new code runs from the same frame.
    s.mem.put(X, 0, &[0xb8, 0x02, 0x00, 0x00, 0x00, 0xc3]);
    s.map_code(l1, 6, code(X));
    assert_eq!(s.v.frame(X).unwrap().kind(), FrameKind::Code);
    // And a planted opcode is still caught the second time round.
    s.write(l1, 6, 0);
    s.release(X);
    s.mem.put(X, 100, &[0x0f, 0x22, 0xc0]);
    let refused = s.v.map_code(&mut s.mem, RawPfn(l1), 6, crate::vmmu::RawPte(code(X)));
    assert_eq!(refused, Err(VmmuError::ProtectedInstruction { pfn: X, offset: 100 }));
    s.v.finish(&mut s.mem);
    s.assert_clean();
}
