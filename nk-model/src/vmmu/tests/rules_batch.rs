//! Batches, `finish`, counters and the error messages.

use super::machine::*;
use super::sim;
use crate::vmmu::{BatchError, FrameKind, Level, Op, RawLevel, RawPfn, RawPte, VmmuError};
use std::collections::BTreeSet;
use std::string::ToString;
use std::vec::Vec;

const X: u64 = FIRST_DATA + 100;
const Y: u64 = FIRST_DATA + 101;

fn build_and_break() -> [Op; 5] {
    [
        Op::Declare(RawPfn(X), RawLevel(2)),
        Op::Declare(RawPfn(Y), RawLevel(1)),
        Op::Write(RawPfn(X), 0, RawPte(Y << 12 | T)),
        Op::Write(RawPfn(Y), 0, RawPte(X << 12 | P | W | NX)),
        Op::Remove(RawPfn(Y)),
    ]
}

#[test]
fn a_batch_stops_at_the_first_refusal_which_changed_nothing() {
    let ops = build_and_break();
    // The same operations one by one, up to the refused one.
    let mut frames_one = Vec::new();
    let mut one = sim(&mut frames_one);
    for op in &ops[..3] {
        one.v.apply_batch(&mut one.mem, core::slice::from_ref(op)).unwrap();
    }
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let error = VmmuError::WritableMapping { pfn: X, kind: FrameKind::Ptp(Level::L2) };
    assert_eq!(s.v.apply_batch(&mut s.mem, &ops), Err(BatchError { index: 3, error }));
    assert_eq!(s.v.frames, one.v.frames);
    assert!(s.mem.tables == one.mem.tables);
    assert_eq!(s.mem.journal, one.mem.journal);
    s.assert_clean();
    let c = s.v.counters();
    assert_eq!((c.batches.calls, c.batches.rejections), (1, 1));
    assert_eq!((c.declare.calls, c.write_pte.calls, c.write_pte.rejections, c.remove.calls), (2, 2, 1, 0));
}

#[test]
fn a_whole_batch_applies_in_order() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    let mut ops = build_and_break();
    ops[3] = Op::Write(RawPfn(X), 0, RawPte(0));
    assert_eq!(s.v.apply_batch(&mut s.mem, &ops), Ok(()));
    assert_eq!(s.v.frame(Y).unwrap().kind(), FrameKind::Data);
    assert_eq!(s.v.apply_batch(&mut s.mem, &[]), Ok(()));
    s.assert_clean();
    assert_eq!(s.v.counters().batches.calls, 2);
}

#[test]
fn operations_fed_one_at_a_time_are_read_no_further_than_the_refusal() {
    let ops = build_and_break();
    let mut frames_batch = Vec::new();
    let mut batch = sim(&mut frames_batch);
    let expected = batch.v.apply_batch(&mut batch.mem, &ops);
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    // As the NK copies them out of outer-kernel memory: one by one, each
    // only once the one before it is done.
    let mut read = 0;
    let fetch = core::iter::from_fn(|| {
        let op = ops.get(read).copied();
        read += 1;
        op
    });
    assert_eq!(s.v.apply_ops(&mut s.mem, fetch), expected);
    assert_eq!(read, 4, "read past the refused operation");
    assert_eq!(s.v.frames, batch.v.frames);
    assert_eq!(s.mem.journal, batch.mem.journal);
    assert_eq!(s.v.counters(), batch.v.counters());
    // A whole stream applies and counts as one batch.
    let mut ops = build_and_break();
    ops[3] = Op::Write(RawPfn(X), 0, RawPte(0));
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    assert_eq!(s.v.apply_ops(&mut s.mem, ops), Ok(()));
    s.assert_clean();
    let c = s.v.counters();
    assert_eq!((c.batches.calls, c.batches.rejections, c.declare.calls, c.write_pte.calls), (1, 0, 2, 2));
}

#[test]
fn finish_flushes_once_and_only_when_needed() {
    let mut frames = Vec::new();
    let mut s = sim(&mut frames);
    s.v.finish(&mut s.mem);
    assert_eq!(s.mem.flushes(), 0);
    // A refused operation leaves nothing stale.
    let _ = s.v.write_pte(&mut s.mem, RawPfn(X), 0, RawPte(0));
    s.v.finish(&mut s.mem);
    assert_eq!(s.mem.flushes(), 0);
    // Declaring flushes inside the operation (before zeroing).
    s.declare(X, Level::L1);
    assert_eq!(s.mem.flushes(), 1);
    s.write(X, 0, Y << 12 | P | NX);
    s.v.finish(&mut s.mem);
    assert_eq!(s.mem.flushes(), 1, "filling an empty entry leaves nothing stale");
    s.write(X, 0, Y << 12 | P | U | NX);
    s.write(X, 0, 0);
    s.v.finish(&mut s.mem);
    s.v.finish(&mut s.mem);
    assert_eq!(s.mem.flushes(), 2);
}

#[test]
fn every_error_has_a_sentence_and_a_distinct_code() {
    let kind = FrameKind::Ptp(Level::L2);
    let errors = [
        VmmuError::FrameOutOfRange { pfn: 1 },
        VmmuError::BadLevel { level: 9 },
        VmmuError::BadIndex { index: 512 },
        VmmuError::BadCpu { cpu: 16 },
        VmmuError::NotDeclared { pfn: 1 },
        VmmuError::WrongKind { pfn: 1, found: FrameKind::Code },
        VmmuError::WrongLevel { pfn: 1, expected: Level::L3, found: kind },
        VmmuError::StillMapped { pfn: 1, refs: 2 },
        VmmuError::InUse { pfn: 1, refs: 2 },
        VmmuError::LiveRoot { pfn: 1 },
        VmmuError::KernelRoot,
        VmmuError::NoDirectMapAlias { pfn: 1 },
        VmmuError::ReservedBits { bits: 1 << 52 },
        VmmuError::BadTableEntryFlags { value: 3 },
        VmmuError::HugePageRefused { level: Level::L3 },
        VmmuError::Misaligned { addr: 0x1000 },
        VmmuError::WritableMapping { pfn: 1, kind },
        VmmuError::UserMapping { pfn: 1, kind },
        VmmuError::ExecutableMapping { pfn: 1, kind },
        VmmuError::WritableExecutable { value: 3 },
        VmmuError::MapsNkMemory { pfn: 1 },
        VmmuError::ExecutableDevice { addr: 0x1000 },
        VmmuError::RefOverflow { pfn: 1 },
        VmmuError::PinnedEntry { table: 1, index: 2 },
        VmmuError::Pinned { pfn: 1 },
        VmmuError::ProtectedInstruction { pfn: 1, offset: 2 },
        VmmuError::NotCodeLeaf { value: 3 },
    ];
    let codes: BTreeSet<u32> = errors.iter().map(VmmuError::code).collect();
    assert_eq!(codes.len(), errors.len());
    // Codes are part of the gate's interface: new rules only append.
    let in_order: Vec<u32> = errors.iter().map(VmmuError::code).collect();
    assert_eq!(in_order, (1..=errors.len() as u32).collect::<Vec<_>>());
    assert!(!codes.contains(&0));
    let texts: BTreeSet<_> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), errors.len());
    assert!(texts.iter().all(|t| !t.is_empty() && !t.ends_with('.') && !t.contains('\n')));
    let batch = BatchError { index: 3, error: VmmuError::KernelRoot };
    assert_eq!(batch.to_string(), "operation 3 of the batch: the kernel root page table is never removed");
}

#[test]
fn a_batch_entry_names_one_of_five_operations() {
    use crate::vmmu::Entry;
    let (a, b, c) = (0x1234, 3, 0x5678);
    assert_eq!(Entry::decode(1, a, b, c), Some(Entry::Vmmu(Op::Declare(RawPfn(a), RawLevel(3)))));
    assert_eq!(Entry::decode(2, a, b, c), Some(Entry::Vmmu(Op::Remove(RawPfn(a)))));
    assert_eq!(Entry::decode(3, a, b, c), Some(Entry::Vmmu(Op::Write(RawPfn(a), 3, RawPte(c)))));
    assert_eq!(Entry::decode(4, a, b, c), Some(Entry::Switch { rsp0: a, fs_base: b, root: c }));
    assert_eq!(Entry::decode(5, a, b, c), Some(Entry::NkWrite { dst: a, src: b, len: c }));
    for kind in [0, 6, 7, 0x100 | 1, u64::MAX] {
        assert_eq!(Entry::decode(kind, a, b, c), None, "kind {kind:#x}");
    }
    // Words that do not fit are refused by the rules, not wrapped into range.
    assert_eq!(Entry::decode(1, a, 0x104, c), Some(Entry::Vmmu(Op::Declare(RawPfn(a), RawLevel(0)))));
    assert_eq!(Entry::decode(3, a, u64::MAX, c), Some(Entry::Vmmu(Op::Write(RawPfn(a), usize::MAX, RawPte(c)))));
}
