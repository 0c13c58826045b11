//! `write_pte`: one test per rule, plus what an accepted write does.

use super::machine::*;
use super::{Sim, sim};
use crate::vmmu::{FrameDesc, FrameKind, Level, RawPfn, RawPte, VmmuError};
use std::vec::Vec;

const BASE: u64 = FIRST_DATA + 100;
const DATA: u64 = FIRST_DATA + 200;

/// A user address space: (sim, [l4, l3, l2, l1]).
fn spaces(frames: &mut Vec<FrameDesc>) -> (Sim<'_>, [u64; 4]) {
    let mut s = sim(frames);
    let t = s.user_tables(BASE);
    (s, t)
}

#[test]
fn maps_and_unmaps_with_exact_counts() {
    let mut frames = Vec::new();
    let (mut s, [_, _, _, l1]) = spaces(&mut frames);
    s.v.finish(&mut s.mem);
    s.write(l1, 1, DATA << 12 | P | W | U | NX);
    assert_eq!(s.refs(DATA), 2);
    assert!(!s.v.tlb_stale(), "filling an empty slot leaves nothing stale");
    // Replacing moves the reference and leaves the TLB stale.
    s.write(l1, 1, (DATA + 1) << 12 | P | U);
    assert_eq!((s.refs(DATA), s.refs(DATA + 1)), (1, 2));
    assert!(s.v.tlb_stale());
    s.v.finish(&mut s.mem);
    // Rewriting the same frame with other rights keeps the count.
    s.write(l1, 1, (DATA + 1) << 12 | P | U | NX | A);
    assert_eq!(s.refs(DATA + 1), 2);
    s.write(l1, 1, 0);
    assert_eq!(s.refs(DATA + 1), 1);
    assert!(s.v.tlb_stale());
    // An absent entry may carry the outer kernel's own bits (a swap entry).
    s.write(l1, 2, 0x0000_0123_4567_8ffe);
    assert_eq!(s.entry(l1, 2), 0x0000_0123_4567_8ffe);
}

#[test]
fn the_table_must_be_declared() {
    let mut frames = Vec::new();
    let (mut s, _) = spaces(&mut frames);
    let value = DATA << 12 | P | NX;
    s.refuses_write(FRAMES as u64, 0, value, VmmuError::FrameOutOfRange { pfn: FRAMES as u64 });
    for pfn in [DATA, CODE.start, NK_DATA.start, HOLE.start] {
        s.refuses_write(pfn, 0, value, VmmuError::NotDeclared { pfn });
    }
}

#[test]
fn bad_index() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = spaces(&mut frames);
    s.refuses_write(l1, 512, 0, VmmuError::BadIndex { index: 512 });
    s.refuses_write(l1, usize::MAX, 0, VmmuError::BadIndex { index: usize::MAX });
}

#[test]
fn reserved_bits() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = spaces(&mut frames);
    s.refuses_write(l1, 0, DATA << 12 | P | NX | 1 << 52, VmmuError::ReservedBits { bits: 1 << 52 });
    s.refuses_write(l1, 0, 0xf << 59, VmmuError::ReservedBits { bits: 0xf << 59 & 0x7ff << 52 });
}

#[test]
fn table_entries_are_exactly_present_writable_user() {
    let mut frames = Vec::new();
    let (mut s, [l4, l3, l2, l1]) = spaces(&mut frames);
    let cases = [(l4, l3), (l3, l2), (l2, l1)];
    for (table, next) in cases {
        for bad in [P | W, P | U, P | W | U | NX, P | W | U | PCD, P | W | U | G] {
            let value = next << 12 | bad;
            s.refuses_write(table, 9, value, VmmuError::BadTableEntryFlags { value });
        }
        s.write(table, 9, next << 12 | T | A);
    }
}

#[test]
fn large_pages() {
    let mut frames = Vec::new();
    let (mut s, [l4, l3, l2, _]) = spaces(&mut frames);
    s.refuses_write(l4, 5, DATA << 12 | P | NX | PS, VmmuError::HugePageRefused { level: Level::L4 });
    s.refuses_write(l3, 5, P | W | NX | PS, VmmuError::HugePageRefused { level: Level::L3 });
    for addr in [0x1000, 0x10_0000, 0x20_1000] {
        s.refuses_write(l2, 5, addr | P | W | NX | PS, VmmuError::Misaligned { addr });
    }
    // 512..1000 are RAM (one hole of device frames among them), the rest
    // of the page device memory: refs rise only on the RAM frames.
    s.write(l2, 5, 512 << 12 | P | W | U | NX | PS);
    assert_eq!((s.refs(512), s.refs(999), s.refs(HOLE.start)), (2, 2, 2));
    s.write(l2, 5, 0);
    assert_eq!((s.refs(512), s.refs(999), s.refs(HOLE.start)), (1, 1, 1));
}

#[test]
fn table_entries_point_at_the_next_level() {
    let mut frames = Vec::new();
    let (mut s, [l4, l3, l2, l1]) = spaces(&mut frames);
    let out = FRAMES as u64 + 10;
    s.refuses_write(l4, 1, out << 12 | T, VmmuError::FrameOutOfRange { pfn: out });
    s.refuses_write(l4, 1, DATA << 12 | T, VmmuError::NotDeclared { pfn: DATA });
    s.refuses_write(l3, 1, NK_DATA.start << 12 | T, VmmuError::NotDeclared { pfn: NK_DATA.start });
    let wrong = |pfn: u64, expected, found| VmmuError::WrongLevel { pfn, expected, found: FrameKind::Ptp(found) };
    s.refuses_write(l4, 1, l1 << 12 | T, wrong(l1, Level::L3, Level::L1));
    s.refuses_write(l4, 1, l4 << 12 | T, wrong(l4, Level::L3, Level::L4));
    s.refuses_write(l2, 1, l2 << 12 | T, wrong(l2, Level::L1, Level::L2));
    s.refuses_write(l3, 1, s.root << 12 | T, wrong(s.root, Level::L2, Level::L4));
}

#[test]
fn page_tables_and_read_only_data_map_read_only_supervisor_no_execute() {
    let mut frames = Vec::new();
    let (mut s, [l4, .., l1]) = spaces(&mut frames);
    for (pfn, kind) in [(l4, FrameKind::Ptp(Level::L4)), (READ_ONLY.start, FrameKind::ReadOnly)] {
        s.refuses_write(l1, 7, pfn << 12 | P | W | NX, VmmuError::WritableMapping { pfn, kind });
        s.refuses_write(l1, 7, pfn << 12 | P | U | NX, VmmuError::UserMapping { pfn, kind });
        s.refuses_write(l1, 7, pfn << 12 | P, VmmuError::ExecutableMapping { pfn, kind });
        s.write(l1, 7, pfn << 12 | P | NX | G);
    }
}

#[test]
fn code_maps_read_only_supervisor() {
    let mut frames = Vec::new();
    let (mut s, [.., l1]) = spaces(&mut frames);
    let (pfn, kind) = (CODE.start, FrameKind::Code);
    s.refuses_write(l1, 7, pfn << 12 | P | W | NX, VmmuError::WritableMapping { pfn, kind });
    s.refuses_write(l1, 7, pfn << 12 | P | U, VmmuError::UserMapping { pfn, kind });
    // Image code is executable only at its boot mapping (rules_image_code).
    s.refuses_write(l1, 7, pfn << 12 | P, VmmuError::ImageCodeRemapped { pfn });
    s.write(l1, 8, pfn << 12 | P | NX);
}

#[test]
fn nk_memory_is_never_mapped() {
    let mut frames = Vec::new();
    let (mut s, [_, _, l2, l1]) = spaces(&mut frames);
    for pfn in [NK_LOW.start, NK_DATA.start, BOOT_TABLES.end - 1] {
        s.refuses_write(l1, 7, pfn << 12 | P | NX, VmmuError::MapsNkMemory { pfn });
    }
    // A large page over low memory covers the NK's frames too.
    s.refuses_write(l2, 7, P | NX | PS, VmmuError::MapsNkMemory { pfn: 0 });
}

#[test]
fn data_is_executable_only_by_user_mode() {
    let mut frames = Vec::new();
    let (mut s, [.., l2, l1]) = spaces(&mut frames);
    let kind = FrameKind::Data;
    s.refuses_write(l1, 7, DATA << 12 | P, VmmuError::ExecutableMapping { pfn: DATA, kind });
    s.refuses_write(l1, 7, DATA << 12 | P | W | U, VmmuError::WritableExecutable { value: DATA << 12 | P | W | U });
    s.refuses_write(l2, 7, 512 << 12 | P | PS, VmmuError::ExecutableMapping { pfn: 512, kind });
    s.write(l1, 7, DATA << 12 | P | U);
    s.write(l1, 8, DATA << 12 | P | W | NX);
}

#[test]
fn device_memory_is_never_executable() {
    let mut frames = Vec::new();
    let (mut s, [.., l2, l1]) = spaces(&mut frames);
    let beyond = FRAMES as u64 + 20;
    s.refuses_write(l1, 7, beyond << 12 | P, VmmuError::ExecutableDevice { addr: beyond << 12 });
    s.refuses_write(l1, 7, HOLE.start << 12 | P | U, VmmuError::ExecutableDevice { addr: HOLE.start << 12 });
    s.refuses_write(l2, 7, 1024 << 12 | P | U | PS, VmmuError::ExecutableDevice { addr: 1024 << 12 });
    // A large page straddling the end of RAM covers the hole's device frames.
    s.refuses_write(l2, 7, 512 << 12 | P | U | PS, VmmuError::ExecutableDevice { addr: HOLE.start << 12 });
    s.write(l1, 7, beyond << 12 | P | W | NX | PCD);
    s.write(l1, 8, HOLE.start << 12 | P | W | U | NX);
    assert_eq!(s.refs(HOLE.start), 2);
}

#[test]
fn reference_counts_never_overflow() {
    let mut frames = Vec::new();
    let (mut s, [.., l2, l1]) = spaces(&mut frames);
    s.write(l1, 7, DATA << 12 | P | NX);
    s.v.frames[DATA as usize].set_refs(u32::MAX);
    s.refuses_unchecked(VmmuError::RefOverflow { pfn: DATA }, |v, mem| {
        v.write_pte(mem, RawPfn(l1), 8, RawPte(DATA << 12 | P | NX))
    });
    s.v.frames[600].set_refs(u32::MAX);
    s.refuses_unchecked(VmmuError::RefOverflow { pfn: 600 }, |v, mem| {
        v.write_pte(mem, RawPfn(l2), 8, RawPte(512 << 12 | P | NX | PS))
    });
    // Rewriting the entry that already holds the reference needs no room.
    s.v.write_pte(&mut s.mem, RawPfn(l1), 7, RawPte(DATA << 12 | P | U | NX)).unwrap();
    assert_eq!(s.refs(DATA), u32::MAX);
}
