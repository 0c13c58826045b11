//! `map_code`: one test per rule, what an accepted call does (a `Data` frame
//! vetted, typed `Code` until `release_code`, its alias read-only, the
//! entry written), and what a refused one does not (nothing, even when the
//! vetting refuses after the alias was write-protected).

use super::machine::*;
use super::sim::{Change, SimMem};
use super::{Sim, State, sim};
use crate::code::find_protected;
use crate::vmmu::{FrameDesc, FrameKind, Level, PhysMem, RawLevel, RawPfn, RawPte, VmmuError};
use core::cell::RefCell;
use std::vec::Vec;

/// The frame that becomes code.
const X: u64 = FIRST_DATA + 100;
const DATA: u64 = FIRST_DATA + 200;
/// The user address space's tables.
const BASE: u64 = FIRST_DATA + 300;

/// A small function: push rbp; mov rbp, rsp; mov rax, cr0 (a read);
/// clac; syscall; rdmsr; pop rbp; ret. System instructions, none protected.
const BENIGN: &[u8] = &[0x55, 0x48, 0x89, 0xe5, 0x0f, 0x20, 0xc0, 0x0f, 0x01, 0xca, 0x0f, 0x05, 0x0f, 0x32, 0x5d, 0xc3];

/// `mov eax, 0xc3c0220f; ret`: at its second byte, `mov cr0, rax; ret`.
const HIDDEN_MOV_CR0: &[u8] = &[0xb8, 0x0f, 0x22, 0xc0, 0xc3, 0xc3];

/// A code leaf for `pfn`: present, read-only, supervisor, executable.
fn code(pfn: u64) -> u64 {
    pfn << 12 | P | G
}

/// A machine with a user address space (l4, l3, l2, l1) and `X` holding
/// benign code at its start and near its end.
fn setup(frames: &mut Vec<FrameDesc>) -> (Sim<'_>, [u64; 4]) {
    let mut s = sim(frames);
    let t = s.user_tables(BASE);
    s.mem.put(X, 0, BENIGN);
    s.mem.put(X, 4096 - BENIGN.len(), BENIGN);
    s.v.finish(&mut s.mem);
    (s, t)
}

/// `map_code(table, index, value)` must be refused by the vetting with
/// `offset` and leave everything as it was (frame table, memory, roots,
/// TLB state, every counter but its own), having write-protected the alias,
/// flushed, put the alias back and flushed again meanwhile.
#[track_caller]
fn refused_by_vetting(s: &mut Sim<'_>, table: u64, index: usize, value: u64, offset: usize) {
    let pfn = value >> 12 & 0xff_ffff_ffff;
    let before = s.state();
    let counters = *s.v.counters();
    let memory = s.mem.tables.clone();
    let (at, slot) = alias_slot(&s.mem, s.root, pfn).unwrap();
    let alias = s.entry(at, slot);
    let result = s.v.map_code(&mut s.mem, RawPfn(table), index, RawPte(value));
    assert_eq!(result, Err(VmmuError::ProtectedInstruction { pfn, offset }));
    assert_eq!(State { journal: before.journal, ..s.state() }, before, "the refusal changed the vMMU");
    assert!(s.mem.tables == memory, "the refusal changed memory");
    let mut expected = counters;
    expected.map_code.calls += 1;
    expected.map_code.rejections += 1;
    assert_eq!(*s.v.counters(), expected);
    let ro = alias & !W | NX;
    let journal = [
        Change::Write { table: at, index: slot, old: alias, new: ro },
        Change::Flush,
        Change::Write { table: at, index: slot, old: ro, new: alias },
        Change::Flush,
    ];
    assert_eq!(s.mem.since(before.journal), journal);
    s.assert_clean();
}

#[test]
fn benign_code_becomes_code_and_is_mapped_executable() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    let bytes = s.mem.bytes(X);
    let (at, slot) = alias_slot(&s.mem, s.root, X).unwrap();
    let write_pte = s.v.counters().write_pte;
    let mark = s.mem.mark();
    s.map_code(l1, 3, code(X));
    assert_eq!(s.entry(l1, 3), code(X));
    assert_eq!(s.v.frame(X).unwrap().kind(), FrameKind::Code);
    assert_eq!(s.alias(X), X << 12 | P | NX | G, "the alias is read-only");
    assert_eq!(s.refs(X), 2);
    assert_eq!(s.mem.bytes(X), bytes, "the code is left as it was");
    let journal = [
        Change::Write { table: at, index: slot, old: X << 12 | P | W | NX | G, new: X << 12 | P | NX | G },
        Change::Flush,
        Change::Write { table: l1, index: 3, old: 0, new: code(X) },
    ];
    assert_eq!(s.mem.since(mark), journal);
    assert!(!s.v.tlb_stale(), "filling an empty slot leaves nothing stale");
    let c = s.v.counters();
    assert_eq!((c.map_code.calls, c.map_code.rejections), (1, 0));
    assert_eq!(c.write_pte, write_pte, "map_code counts under its own name only");
    // Accessed, dirty, global, cache bits and ignored bits are allowed.
    s.mem.put(X + 1, 0, BENIGN);
    s.map_code(l1, 4, (X + 1) << 12 | P | A | D | PCD | PWT | 0xe00);
}

/// A `PhysMem` that notes what the vMMU had done when it first read `pfn`,
/// and how many entries of it it read.
struct Watch<'m> {
    mem: &'m mut SimMem,
    pfn: u64,
    mark: usize,
    first_read: RefCell<Option<Vec<Change>>>,
    reads: RefCell<Vec<usize>>,
}

impl PhysMem for Watch<'_> {
    fn read_entry(&self, table: u64, index: usize) -> u64 {
        if table == self.pfn {
            self.first_read.borrow_mut().get_or_insert_with(|| self.mem.since(self.mark).to_vec());
            self.reads.borrow_mut().push(index);
        }
        self.mem.read_entry(table, index)
    }
    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        self.mem.write_entry(table, index, value);
    }
    fn zero_frame(&mut self, pfn: u64) {
        self.mem.zero_frame(pfn);
    }
    fn flush_tlb(&mut self) {
        self.mem.flush_tlb();
    }
}

#[test]
fn the_bytes_are_read_once_no_cpu_can_write_them() {
    for bytes in [BENIGN, HIDDEN_MOV_CR0] {
        let mut frames = Vec::new();
        let (mut s, [.., l1]) = setup(&mut frames);
        s.mem.put(X, 0, bytes);
        let (at, slot) = alias_slot(&s.mem, s.root, X).unwrap();
        let mark = s.mem.mark();
        let mut watch =
            Watch { mem: &mut s.mem, pfn: X, mark, first_read: RefCell::default(), reads: RefCell::default() };
        let _ = s.v.map_code(&mut watch, RawPfn(l1), 3, RawPte(code(X)));
        let (first_read, reads) = (watch.first_read.into_inner(), watch.reads.into_inner());
        let protect =
            Change::Write { table: at, index: slot, old: X << 12 | P | W | NX | G, new: X << 12 | P | NX | G };
        assert_eq!(first_read, Some(std::vec![protect, Change::Flush]), "read before the alias was read-only");
        assert_eq!(reads, (0..512).collect::<Vec<_>>(), "every byte, each once");
    }
}

#[test]
fn code_stays_code_until_released() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    s.map_code(l1, 3, code(X));
    let kind = FrameKind::Code;
    // Never writable, never user, never a page table; data again only by
    // `release_code` (`rules_release_code`).
    s.refuses_write(l1, 4, X << 12 | P | W | NX, VmmuError::WritableMapping { pfn: X, kind });
    s.refuses_write(l1, 4, X << 12 | P | U, VmmuError::UserMapping { pfn: X, kind });
    s.refuses_map_code(l1, 4, X << 12 | P | W, VmmuError::NotCodeLeaf { value: X << 12 | P | W });
    s.refuses_declare(X, 1, VmmuError::WrongKind { pfn: X, found: kind });
    s.refuses_remove(X, VmmuError::NotDeclared { pfn: X });
    // Its alias stays read-only: frozen, like every direct-map leaf.
    let (table, index) = alias_slot(&s.mem, s.root, X).unwrap();
    s.refuses_write(table, index, X << 12 | P | W | NX | G, VmmuError::PinnedEntry { table, index });
    // Unmapped everywhere but its alias, it is still code, still read-only,
    // until it is released.
    s.write(l1, 3, 0);
    assert_eq!((s.v.frame(X).unwrap().kind(), s.refs(X), s.alias(X)), (kind, 1, X << 12 | P | NX | G));
    s.refuses_declare(X, 2, VmmuError::WrongKind { pfn: X, found: kind });
    // Mapped again, by map_code or write_pte alike, read-only.
    s.map_code(l1, 5, code(X));
    s.write(l1, 6, X << 12 | P | NX);
    assert_eq!(s.mem.bytes(X)[..BENIGN.len()], *BENIGN);
}

#[test]
fn a_hidden_mov_cr0_is_refused_and_nothing_changes() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    s.mem.put(X, 1001, HIDDEN_MOV_CR0);
    refused_by_vetting(&mut s, l1, 3, code(X), 1002);
    assert_eq!(s.v.frame(X).unwrap().kind(), FrameKind::Data);
    assert_eq!(s.alias(X), X << 12 | P | W | NX | G);
    // Still free data: it can become a page table (and is zeroed then).
    s.declare(X, Level::L1);
}

#[test]
fn every_byte_offset_is_vetted() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    let wrmsr = [0x0f, 0x30];
    for offset in [0, 1, 7, 8, 9, 2047, 4093, 4094] {
        let clean = s.mem.bytes(X);
        s.mem.put(X, offset, &wrmsr);
        refused_by_vetting(&mut s, l1, 3, code(X), offset);
        s.mem.put(X, 0, &clean);
    }
    // Two protected instructions: the first one is named.
    s.mem.put(X, 3000, &[0x0f, 0x01, 0x18]);
    s.mem.put(X, 200, &[0xf3, 0x0f, 0xc7, 0x30]);
    refused_by_vetting(&mut s, l1, 3, code(X), 201);
}

#[test]
fn an_opcode_cut_off_at_the_end_of_the_frame_is_refused() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    // The next page, whatever frame the outer kernel maps there, could
    // complete it: `0f | 22 c0` is `mov cr0, rax` across the boundary.
    let cut: [(&[u8], usize); 5] =
        [(&[0x0f], 4095), (&[0x0f, 0x01], 4094), (&[0x0f, 0x00], 4094), (&[0x0f, 0xc7], 4094), (&[0x0f, 0x38], 4094)];
    for (tail, offset) in cut {
        let clean = s.mem.bytes(X);
        s.mem.put(X, 4096 - tail.len(), tail);
        refused_by_vetting(&mut s, l1, 3, code(X), offset);
        s.mem.put(X, 0, &clean);
    }
    // A complete instruction at the very end is fine.
    s.mem.put(X, 4093, &[0x0f, 0x01, 0xca]);
    s.map_code(l1, 3, code(X));
    s.mem.put(X + 1, 4094, &[0x0f, 0x05]);
    s.map_code(l1, 4, code(X + 1));
}

#[test]
fn a_frame_mapped_elsewhere_is_refused() {
    let mut frames = Vec::new();
    let (mut s, [_, _, l2, l1]) = setup(&mut frames);
    // Through any other mapping, even a read-only one: the vMMU can
    // write-protect only the alias (it keeps no reverse map to find other
    // entries), and a writable mapping would let the outer kernel change the
    // code after vetting.
    s.write(l1, 5, X << 12 | P | U | NX);
    s.refuses_map_code(l1, 6, code(X), VmmuError::StillMapped { pfn: X, refs: 2 });
    // The very entry being replaced counts too.
    s.refuses_map_code(l1, 5, code(X), VmmuError::StillMapped { pfn: X, refs: 2 });
    s.write(l1, 5, X << 12 | P | W | NX);
    s.write(l1, 7, X << 12 | P | W | NX);
    s.refuses_map_code(l1, 6, code(X), VmmuError::StillMapped { pfn: X, refs: 3 });
    // Through a 2 MiB page.
    s.write(l2, 1, 512 << 12 | P | W | NX | PS);
    s.mem.put(600, 0, BENIGN);
    s.refuses_map_code(l1, 6, code(600), VmmuError::StillMapped { pfn: 600, refs: 2 });
    // Once the other mappings are gone, it is accepted.
    s.write(l1, 5, 0);
    s.write(l1, 7, 0);
    s.map_code(l1, 5, code(X));
}

#[test]
fn no_direct_map_alias() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    let (table, index) = alias_slot(&s.mem, s.root, X).unwrap();
    // The outer kernel cannot take an alias away (the direct map is
    // pinned); the boot interface stands in for a machine where it is gone.
    s.boot_map(table, index, 0);
    s.assert_clean();
    s.refuses_map_code(l1, 3, code(X), VmmuError::NoDirectMapAlias { pfn: X });
    // One reference, but not the alias: the other mapping would stay.
    s.boot_map(table, index, DATA << 12 | P | W | NX);
    let [.., other] = s.user_tables(BASE + 10);
    s.write(other, 0, X << 12 | P | W | U | NX);
    assert_eq!(s.refs(X), 1);
    s.refuses_map_code(l1, 3, code(X), VmmuError::NoDirectMapAlias { pfn: X });
}

#[test]
fn only_code_leaves() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    let x = X << 12;
    // Writable (with or without NX), user, no-execute, bit 7 (a large page
    // elsewhere, PAT here), not present.
    for value in [x | P | W, x | P | W | NX, x | P | U, x | P | U | NX, x | P | NX, x | P | PS, x | P | G | PS, x, 0] {
        s.refuses_map_code(l1, 3, value, VmmuError::NotCodeLeaf { value });
    }
    // Reserved bits: the rule `write_pte` names.
    s.refuses_map_code(l1, 3, x | P | 1 << 52, VmmuError::ReservedBits { bits: 1 << 52 });
    s.refuses_map_code(l1, 3, x | 1 << 62, VmmuError::ReservedBits { bits: 1 << 62 });
    assert_eq!(s.v.counters().map_code.rejections, 11);
}

#[test]
fn the_table_is_a_declared_level_1_table() {
    let mut frames = Vec::new();
    let (mut s, [l4, l3, l2, l1]) = setup(&mut frames);
    let out = FRAMES as u64 + 3;
    s.refuses_map_code(out, 3, code(X), VmmuError::FrameOutOfRange { pfn: out });
    s.refuses_map_code(u64::MAX, 3, code(X), VmmuError::FrameOutOfRange { pfn: u64::MAX });
    for pfn in [DATA, CODE.start, READ_ONLY.start, NK_DATA.start, HOLE.start] {
        s.refuses_map_code(pfn, 3, code(X), VmmuError::NotDeclared { pfn });
    }
    for (pfn, level) in [(l2, Level::L2), (l3, Level::L3), (l4, Level::L4), (s.root, Level::L4)] {
        let wrong = VmmuError::WrongLevel { pfn, expected: Level::L1, found: FrameKind::Ptp(level) };
        s.refuses_map_code(pfn, 3, code(X), wrong);
    }
    s.refuses_map_code(l1, 512, code(X), VmmuError::BadIndex { index: 512 });
    s.refuses_map_code(l1, usize::MAX, code(X), VmmuError::BadIndex { index: usize::MAX });
}

#[test]
fn other_kinds_are_refused_as_write_pte_refuses_them() {
    let mut frames = Vec::new();
    let (mut s, [l4, .., l1]) = setup(&mut frames);
    let beyond = FRAMES as u64 + 20;
    let cases = [
        (READ_ONLY.start, VmmuError::ExecutableMapping { pfn: READ_ONLY.start, kind: FrameKind::ReadOnly }),
        (l4, VmmuError::ExecutableMapping { pfn: l4, kind: FrameKind::Ptp(Level::L4) }),
        (l1, VmmuError::ExecutableMapping { pfn: l1, kind: FrameKind::Ptp(Level::L1) }),
        (NK_DATA.start, VmmuError::MapsNkMemory { pfn: NK_DATA.start }),
        (BOOT_TABLES.end - 1, VmmuError::MapsNkMemory { pfn: BOOT_TABLES.end - 1 }),
        (HOLE.start, VmmuError::ExecutableDevice { addr: HOLE.start << 12 }),
        (beyond, VmmuError::ExecutableDevice { addr: beyond << 12 }),
    ];
    for (pfn, expected) in cases {
        let by_write = s.v.write_pte(&mut s.mem, RawPfn(l1), 3, RawPte(code(pfn)));
        assert_eq!(by_write, Err(expected));
        s.refuses_map_code(l1, 3, code(pfn), expected);
    }
}

#[test]
fn a_code_frame_is_mapped_exactly_as_write_pte_maps_it() {
    let mut frames_a = Vec::new();
    let (mut a, [.., l1]) = setup(&mut frames_a);
    let mut frames_b = Vec::new();
    let (mut b, _) = setup(&mut frames_b);
    // A frame vetted once: image code maps executable nowhere but at boot.
    a.map_code(l1, 2, code(X));
    b.map_code(l1, 2, code(X));
    a.write(l1, 3, DATA << 12 | P | U | NX);
    b.write(l1, 3, DATA << 12 | P | U | NX);
    let (mark_a, mark_b) = (a.mem.mark(), b.mem.mark());
    let (counters_a, counters_b) = (*a.v.counters(), *b.v.counters());
    // Over a present entry: the same writes, the same counts, stale TLB.
    a.map_code(l1, 3, code(X));
    b.write(l1, 3, code(X));
    assert_eq!(a.v.frames, b.v.frames);
    assert_eq!(a.mem.since(mark_a), b.mem.since(mark_b));
    assert_eq!(
        a.mem.since(mark_a),
        [Change::Write { table: l1, index: 3, old: DATA << 12 | P | U | NX, new: code(X) }]
    );
    assert!(a.v.tlb_stale() && b.v.tlb_stale());
    assert_eq!((a.refs(X), a.refs(DATA)), (3, 1));
    let (ca, cb) = (*a.v.counters(), *b.v.counters());
    assert_eq!((ca.map_code.calls - counters_a.map_code.calls, ca.write_pte), (1, counters_a.write_pte));
    assert_eq!((cb.write_pte.calls - counters_b.write_pte.calls, cb.map_code), (1, counters_b.map_code));
    // Every rule of write_pte applies: a frozen entry (the image's mapping
    // of code, in a pinned table), a reference count at its limit.
    let (table, index) = image_slot(&a, CODE.start + 1);
    a.refuses_map_code(table, index, code(X), VmmuError::PinnedEntry { table, index });
    a.v.frames[X as usize].set_refs(u32::MAX);
    a.refuses_unchecked(VmmuError::RefOverflow { pfn: X }, |v, mem| v.map_code(mem, RawPfn(l1), 4, RawPte(code(X))));
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

#[test]
fn every_write_pte_rule_is_checked_before_the_alias_changes() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    // A frozen entry (pointing at NK memory, which only the boot writes):
    // refused before the frame's alias is touched (`refuses` sees no write).
    s.boot_map(l1, 9, NK_DATA.start << 12 | P | NX);
    s.assert_clean();
    s.refuses_map_code(l1, 9, code(X), VmmuError::PinnedEntry { table: l1, index: 9 });
    // A present entry of a pinned table: the image's.
    let (table, index) = image_slot(&s, CODE.start);
    s.refuses_map_code(table, index, code(X), VmmuError::PinnedEntry { table, index });
    // The same frame, planted with a protected opcode: still the entry's
    // rule, not the vetting's, since nothing is vetted that cannot be mapped.
    s.mem.put(X, 5, &[0x0f, 0x30]);
    s.refuses_map_code(l1, 9, code(X), VmmuError::PinnedEntry { table: l1, index: 9 });
    assert_eq!(s.v.frame(X).unwrap().kind(), FrameKind::Data);
}

#[test]
fn replacing_a_present_entry_moves_its_reference_and_leaves_the_tlb_stale() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = setup(&mut frames);
    s.write(l1, 3, DATA << 12 | P | W | U | NX);
    s.v.finish(&mut s.mem);
    assert_eq!(s.refs(DATA), 2);
    s.map_code(l1, 3, code(X));
    assert_eq!((s.refs(DATA), s.refs(X)), (1, 2));
    assert!(s.v.tlb_stale());
    // A refusal by vetting flushes and leaves nothing stale behind it.
    s.v.finish(&mut s.mem);
    s.mem.put(X + 1, 0, HIDDEN_MOV_CR0);
    refused_by_vetting(&mut s, l1, 3, code(X + 1), 1);
    assert_eq!(s.entry(l1, 3), code(X));
    // The declaration path still works on the refused frame.
    s.v.declare_ptp(&mut s.mem, RawPfn(X + 1), RawLevel(1)).unwrap();
    assert_eq!(find_protected(&s.mem.bytes(X + 1)), None, "declared tables are zeroed");
}
