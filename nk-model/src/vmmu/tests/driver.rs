//! Runs the outer kernel's calls against the simulated machine and checks
//! each one: a refused call changed nothing, an accepted one did what it
//! says, a batch does exactly what its operations do one by one, `finish`
//! flushes exactly when needed, the checker finds no violation, every
//! entry the boot pins froze keeps its boot value, and no write ever
//! replaces a direct-map alias. `map_code` is checked the same way, and an
//! accepted one must leave its frame `Code` with no protected opcode in it;
//! an accepted `release_code` must leave a zeroed `Data` frame that nothing
//! but its (now writable) alias maps, flushed before the alias changed.

use super::adversary::{Call, Fill, MapCode};
use super::machine::{FRAMES, NX, P, PS, U, W, alias_slot};
use super::sim::Change;
use super::{Sim, State};
use crate::code::find_protected;
use crate::vmmu::{BatchError, ENTRIES, FrameKind, Level, Op, RESERVED_BITS, RawLevel, RawPfn, RawPte, VmmuError};
use core::ops::Range;
use std::vec::Vec;

/// What the calls did, over all cases of a test.
#[derive(Default, Debug)]
pub struct Tally {
    pub calls: u64,
    /// NK operations executed (each operation of a batch counts).
    pub ops: u64,
    pub accepted: u64,
    pub refused: u64,
    pub batches: u64,
    pub declared: u64,
    pub removed: u64,
    pub written: u64,
    pub loaded: u64,
    /// Accepted `map_code` calls, those of them that made a `Data` frame
    /// code, and `map_code` calls whose frame was vetted and refused.
    pub mapped_code: u64,
    pub became_code: u64,
    pub vetting_refused: u64,
    /// Accepted `release_code` calls.
    pub released: u64,
    /// Refusals by `VmmuError::code`, and those of `map_code` and of
    /// `release_code` alone.
    pub by_rule: [u64; 31],
    pub map_code_by_rule: [u64; 31],
    pub release_code_by_rule: [u64; 31],
    /// Writes aimed at the direct-map alias of a data frame, and of a page
    /// table (all refused).
    pub alias_data: u64,
    pub alias_ptp: u64,
    /// Writes the common-case check accepted (the full check agreed).
    pub common: u64,
}

impl Sim<'_> {
    /// Runs one call, then leaves the gate (`finish`) and checks everything.
    pub fn run(&mut self, call: &Call, tally: &mut Tally) {
        tally.calls += 1;
        let call_mark = self.mem.mark();
        match call {
            Call::Single(op) => {
                tally.ops += 1;
                let _ = self.op_alone(op, tally);
            }
            Call::LoadCr3(cpu, root) => {
                tally.ops += 1;
                let before = self.state();
                match self.v.load_cr3(*cpu, *root) {
                    Ok(pfn) => {
                        assert_eq!(self.v.live_roots()[*cpu], Some(pfn));
                        assert_eq!(self.v.frame(pfn).map(|d| d.kind()), Some(FrameKind::Ptp(Level::L4)));
                        tally.accepted += 1;
                        tally.loaded += 1;
                    }
                    Err(e) => {
                        assert_eq!(self.state(), before, "refused {call:?} ({e}) changed the vMMU");
                        tally.refused += 1;
                        tally.by_rule[e.code() as usize] += 1;
                    }
                }
            }
            Call::Batch(ops) => self.batch(ops, tally),
            Call::MapCode(m) => {
                tally.ops += 1;
                self.map_code_call(m, tally);
            }
            Call::ReleaseCode(RawPfn(pfn)) => {
                tally.ops += 1;
                self.release_code_call(*pfn, tally);
            }
        }
        self.leave_gate(call_mark);
        let r = self.report();
        assert!(r.is_clean(), "after {call:?}: {} violations, first {:?}", r.violations, r.first);
        self.assert_frozen_kept();
    }

    /// One operation through its own entry point; refusals change nothing.
    fn op_alone(&mut self, op: &Op, tally: &mut Tally) -> Result<(), VmmuError> {
        let before = self.state();
        let mark = self.mem.mark();
        let old = match *op {
            Op::Write(RawPfn(table), index, _) if table < FRAMES as u64 && index < ENTRIES => {
                Some(self.entry(table, index))
            }
            _ => None,
        };
        if let Op::Write(ptp, index, pte) = *op
            && let Some(common) = self.v.check_common(&self.mem, ptp.0, index, pte.0)
        {
            tally.common += 1;
            let full = self.v.check_write(&self.mem, ptp, index, pte);
            assert_eq!(full, Ok(common), "the common-case check and the full one disagree on {op:?}");
        }
        let alias_of = self.alias_written(op);
        match alias_of.and_then(|pfn| self.v.frame(pfn)).map(|d| d.kind()) {
            Some(FrameKind::Data) => tally.alias_data += 1,
            Some(FrameKind::Ptp(_)) => tally.alias_ptp += 1,
            _ => {}
        }
        let result = match *op {
            Op::Declare(pfn, level) => self.v.declare_ptp(&mut self.mem, pfn, level),
            Op::Remove(pfn) => self.v.remove_ptp(&mut self.mem, pfn),
            Op::Write(ptp, index, pte) => self.v.write_pte(&mut self.mem, ptp, index, pte),
        };
        match result {
            Ok(()) => {
                tally.accepted += 1;
                assert_eq!(alias_of, None, "rewrote a direct-map alias: {op:?}");
                self.was_allowed(op, &before, old);
                self.did(op, tally);
                assert_flushed_before_trust(op, self.mem.since(mark), before.tlb_stale);
            }
            Err(e) => {
                tally.refused += 1;
                tally.by_rule[e.code() as usize] += 1;
                assert_eq!(self.state(), before, "refused {op:?} ({e}) changed the vMMU or memory");
            }
        }
        result
    }

    /// One `map_code` call, after the outer kernel filled the frame (if it
    /// is data). Accepted: the preconditions held (restated here), the frame
    /// is `Code` and holds no protected opcode, its alias is read-only, and
    /// the call wrote the alias (write-protecting it, then flushing) if the
    /// frame was data, then the entry, nothing else. Refused by vetting: the
    /// opcode is where the vetting says, and the alias was write-protected,
    /// flushed, put back and flushed. Refused otherwise: nothing changed.
    /// Either way, the frame's bytes and every counter but `map_code`'s are
    /// as they were.
    fn map_code_call(&mut self, m: &MapCode, tally: &mut Tally) {
        let &MapCode { ref fill, table: RawPfn(table), index, pte: RawPte(value) } = m;
        let pfn = (value & 0x000f_ffff_ffff_f000) >> 12;
        let kind_before = self.v.frame(pfn).map(|d| d.kind());
        if let (Some(Fill(fill)), Some(FrameKind::Data)) = (fill, kind_before) {
            self.mem.put(pfn, 0, fill);
        }
        let in_ram = pfn < FRAMES as u64;
        let bytes = in_ram.then(|| self.mem.bytes(pfn));
        let alias = alias_slot(&self.mem, self.root, pfn).map(|(t, i)| (t, i, self.entry(t, i)));
        let old = (table < FRAMES as u64 && index < ENTRIES).then(|| self.entry(table, index));
        let op = Op::Write(RawPfn(table), index, RawPte(value));
        let alias_of = self.alias_written(&op);
        let (before, counters, mark) = (self.state(), self.v.counters, self.mem.mark());
        let result = self.v.map_code(&mut self.mem, RawPfn(table), index, RawPte(value));
        let mut expected = counters;
        expected.map_code.record(&result);
        assert_eq!(self.v.counters, expected, "map_code counted elsewhere: {m:?}");
        if let Some(bytes) = &bytes {
            assert!(self.mem.bytes(pfn) == *bytes, "map_code changed the frame's bytes: {m:?}");
        }
        let changes = self.mem.since(mark).to_vec();
        match result {
            Ok(()) => {
                tally.accepted += 1;
                tally.mapped_code += 1;
                // The call as write_pte restated: the leaf is a code leaf of
                // a level-1 table, and the frame was code or data mapped by
                // its alias alone.
                let level_1 = before.frames.get(table as usize).map(|d| d.kind()) == Some(FrameKind::Ptp(Level::L1));
                assert!(level_1, "map_code into a non-level-1 table: {m:?}");
                assert!(value & P != 0 && value & (W | U | NX | PS | RESERVED_BITS) == 0, "not a code leaf: {m:?}");
                let became = kind_before == Some(FrameKind::Data);
                assert!(became || kind_before == Some(FrameKind::Code), "{kind_before:?} made code: {m:?}");
                let mut as_code = before.clone();
                if became {
                    assert_eq!(before.frames[pfn as usize].refs(), 1, "mapped elsewhere: {m:?}");
                    as_code.frames[pfn as usize].set_kind(FrameKind::Code);
                    tally.became_code += 1;
                }
                self.was_allowed(&op, &as_code, old);
                assert_eq!(alias_of, None, "rewrote a direct-map alias: {m:?}");
                // What it did.
                assert_eq!(self.entry(table, index), value);
                assert_eq!(self.v.frame(pfn).map(|d| d.kind()), Some(FrameKind::Code));
                assert_eq!(find_protected(&self.mem.bytes(pfn)), None, "protected opcode made code: {m:?}");
                let (at, slot, was) = alias.expect("code without an alias");
                assert_eq!(self.entry(at, slot) & (W | U | NX), NX, "the code's alias is not read-only: {m:?}");
                let entry = Change::Write { table, index, old: old.unwrap(), new: value };
                let expected: Vec<Change> = if became {
                    let ro = Change::Write { table: at, index: slot, old: was, new: was & !(W | U) | NX };
                    std::vec![ro, Change::Flush, entry]
                } else {
                    std::vec![entry]
                };
                assert_eq!(changes, expected, "{m:?}");
            }
            Err(e) => {
                tally.refused += 1;
                tally.by_rule[e.code() as usize] += 1;
                tally.map_code_by_rule[e.code() as usize] += 1;
                if let VmmuError::ProtectedInstruction { pfn: vetted, offset } = e {
                    tally.vetting_refused += 1;
                    assert_eq!((vetted, kind_before), (pfn, Some(FrameKind::Data)), "{m:?}");
                    let found = find_protected(bytes.as_deref().unwrap()).map(|p| p.offset);
                    assert_eq!(found, Some(offset), "vetting named the wrong offset: {m:?}");
                    let (at, slot, was) = alias.expect("vetted without an alias");
                    let ro = was & !(W | U) | NX;
                    let expected = [
                        Change::Write { table: at, index: slot, old: was, new: ro },
                        Change::Flush,
                        Change::Write { table: at, index: slot, old: ro, new: was },
                        Change::Flush,
                    ];
                    assert_eq!(changes, expected, "{m:?}");
                    assert_eq!(State { journal: before.journal, ..self.state() }, before, "{m:?} changed the vMMU");
                } else {
                    assert_eq!(self.state(), before, "refused {m:?} ({e}) changed the vMMU or memory");
                }
            }
        }
    }

    /// One `release_code` call. Accepted: the preconditions held (restated
    /// here: vetted code, not the image's, mapped by its alias alone), the
    /// frame is `Data` and zero, its alias is the read-only one with W back,
    /// and the call flushed first, then zeroed the frame, then wrote the
    /// alias, nothing else; no other frame changed. Refused: nothing
    /// changed. Either way every counter but `release_code`'s is as it was.
    fn release_code_call(&mut self, pfn: u64, tally: &mut Tally) {
        let alias = alias_slot(&self.mem, self.root, pfn).map(|(t, i)| (t, i, self.entry(t, i)));
        let (before, counters, mark) = (self.state(), self.v.counters, self.mem.mark());
        let result = self.v.release_code(&mut self.mem, RawPfn(pfn));
        let mut expected = counters;
        expected.release_code.record(&result);
        assert_eq!(self.v.counters, expected, "release_code counted elsewhere: {pfn:#x}");
        let e = match result {
            Ok(()) => {
                tally.accepted += 1;
                tally.released += 1;
                let desc = before.frames[pfn as usize];
                assert!(desc.kind() == FrameKind::Code && !desc.image_code(), "released {desc:?} {pfn:#x}");
                assert_eq!(desc.refs(), 1, "released {pfn:#x}, still mapped");
                let mut after = before.frames.clone();
                after[pfn as usize].set_kind(FrameKind::Data);
                assert!(self.v.frames == &after[..], "release_code of {pfn:#x} changed another frame");
                assert!(self.mem.bytes(pfn).iter().all(|&b| b == 0), "released {pfn:#x} unzeroed");
                let (at, slot, was) = alias.expect("released without an alias");
                assert_eq!(was & (W | U | NX), NX, "released code's alias was not read-only: {pfn:#x}");
                let changes = self.mem.since(mark);
                let zeroing = &changes[1..changes.len() - 1];
                assert_eq!(changes.first(), Some(&Change::Flush), "wrote {pfn:#x} before flushing: {changes:?}");
                assert!(
                    zeroing.iter().all(
                        |c| matches!(*c, Change::Cleared { table, .. } | Change::Zero { pfn: table } if table == pfn)
                    ),
                    "release_code of {pfn:#x} did more than zero it: {changes:?}"
                );
                let restore = Change::Write { table: at, index: slot, old: was, new: was | W };
                assert_eq!(changes.last(), Some(&restore), "{pfn:#x}: {changes:?}");
                return;
            }
            Err(e) => e,
        };
        tally.refused += 1;
        tally.by_rule[e.code() as usize] += 1;
        tally.release_code_by_rule[e.code() as usize] += 1;
        assert_eq!(self.state(), before, "refused release_code {pfn:#x} ({e}) changed the vMMU or memory");
    }

    /// The frame whose direct-map alias `op` would write, found by walking
    /// memory from the kernel root (independently of the vMMU's walk).
    fn alias_written(&self, op: &Op) -> Option<u64> {
        let Op::Write(RawPfn(table), index, _) = *op else { return None };
        if table >= FRAMES as u64 || index >= ENTRIES || self.v.frame(table)?.kind() != FrameKind::Ptp(Level::L1) {
            return None;
        }
        let value = self.entry(table, index);
        let pfn = (value & P != 0).then_some((value & 0x000f_ffff_ffff_f000) >> 12)?;
        (alias_slot(&self.mem, self.root, pfn) == Some((table, index))).then_some(pfn)
    }

    /// The preconditions of docs/vmmu.md, restated independently of the
    /// rules' code, against the state before an accepted operation (`old`:
    /// the entry a write replaced).
    fn was_allowed(&self, op: &Op, before: &State, old: Option<u64>) {
        let kind = |pfn: u64| before.frames.get(pfn as usize).map(|d| d.kind());
        let refs = |pfn: u64| before.frames[pfn as usize].refs();
        let pinned = |pfn: u64| before.frames.get(pfn as usize).is_some_and(|d| d.pinned());
        match *op {
            Op::Declare(RawPfn(pfn), _) => {
                assert_eq!((kind(pfn), refs(pfn)), (Some(FrameKind::Data), 1), "declared {op:?}");
            }
            Op::Remove(RawPfn(pfn)) => {
                assert!(matches!(kind(pfn), Some(FrameKind::Ptp(_))) && refs(pfn) == 1, "removed {op:?}");
                assert!(!before.live_roots.contains(&Some(pfn)) && before.kernel_root != Some(pfn), "removed {op:?}");
                assert!(!pinned(pfn), "removed pinned {op:?}");
            }
            Op::Write(RawPfn(table), _, RawPte(value)) => {
                let Some(FrameKind::Ptp(level)) = kind(table) else { panic!("wrote into a non-table: {op:?}") };
                let replaced = old.is_some_and(|old| old & P != 0);
                assert!(!(replaced && pinned(table)), "changed a present entry of pinned table {table:#x}: {op:?}");
                for pfn in old.and_then(|old| covered(level, old)).unwrap_or_default() {
                    let frozen = kind(pfn) == Some(FrameKind::Nk) || pinned(pfn);
                    assert!(!frozen, "changed an entry pointing at {:?} {pfn:#x}: {op:?}", kind(pfn));
                }
                assert_eq!(value & (0x7ff << 52), 0, "{op:?}");
                let huge = value & PS != 0 && matches!(level, Level::L2 | Level::L3);
                if value & P == 0 || !(level == Level::L1 || huge) {
                    return;
                }
                let size = if level == Level::L1 { 1 } else { 512 };
                let first = (value & 0x000f_ffff_ffff_f000) >> 12 & !(size - 1);
                let (user, exec) = (value & U != 0, value & NX == 0);
                let image_code = |pfn: u64| before.frames.get(pfn as usize).is_some_and(|d| d.image_code());
                for pfn in first..first + size {
                    let k = kind(pfn);
                    assert_ne!(k, Some(FrameKind::Nk), "mapped NK memory: {op:?}");
                    if exec {
                        let allowed = if user { k == Some(FrameKind::Data) } else { k == Some(FrameKind::Code) };
                        assert!(allowed, "mapped {k:?} at {pfn:#x} executable: {op:?}");
                        assert!(!image_code(pfn), "mapped image code {pfn:#x} executable again: {op:?}");
                    }
                }
            }
        }
    }

    /// What an accepted operation must have done.
    fn did(&self, op: &Op, tally: &mut Tally) {
        let kind = |pfn: u64| self.v.frame(pfn).unwrap().kind();
        match *op {
            Op::Declare(RawPfn(pfn), RawLevel(level)) => {
                tally.declared += 1;
                assert_eq!(kind(pfn), FrameKind::Ptp(Level::from_u8(level).unwrap()));
                assert!(self.mem.tables[pfn as usize][..256].iter().all(|&e| e == 0));
            }
            Op::Remove(RawPfn(pfn)) => {
                tally.removed += 1;
                assert_eq!(kind(pfn), FrameKind::Data);
                assert_eq!(self.v.frame(pfn).unwrap().refs(), 1);
            }
            Op::Write(RawPfn(table), index, RawPte(value)) => {
                tally.written += 1;
                assert_eq!(self.entry(table, index), value);
            }
        }
    }

    /// A batch must equal its operations applied one by one up to the first
    /// refusal: same result, same frame table, same writes in the same order.
    fn batch(&mut self, ops: &[Op], tally: &mut Tally) {
        tally.batches += 1;
        let (frames, live_roots, stale, counters) =
            (self.v.frames.to_vec(), self.v.live_roots, self.v.tlb_stale, self.v.counters);
        let mark = self.mem.mark();
        let mut expected = Ok(());
        for (index, op) in ops.iter().enumerate() {
            tally.ops += 1;
            if let Err(error) = self.op_alone(op, tally) {
                expected = Err(BatchError { index, error });
                break;
            }
        }
        let one_by_one = (self.v.frames.to_vec(), self.v.live_roots, self.v.tlb_stale);
        let writes: Vec<Change> = self.mem.since(mark).to_vec();

        self.mem.undo_to(mark);
        self.v.frames.copy_from_slice(&frames);
        (self.v.live_roots, self.v.tlb_stale, self.v.counters) = (live_roots, stale, counters);

        // Half the batches as the NK feeds them: copied one operation at a
        // time, none read after a refusal.
        let (fed, mut pulled) = (!ops.len().is_multiple_of(2), 0);
        let result = if fed {
            self.v.apply_ops(&mut self.mem, ops.iter().copied().inspect(|_| pulled += 1))
        } else {
            self.v.apply_batch(&mut self.mem, ops)
        };
        assert_eq!(result, expected, "batch {ops:?}");
        if fed {
            assert_eq!(pulled, expected.map_or_else(|e| e.index + 1, |()| ops.len()), "batch {ops:?} read too far");
        }
        assert!((self.v.frames.to_vec(), self.v.live_roots, self.v.tlb_stale) == one_by_one, "batch {ops:?}");
        assert_eq!(self.mem.since(mark), &writes[..], "batch {ops:?} wrote differently");
    }

    /// The NK leaves the gate: one flush if and only if the call replaced
    /// or removed a present entry since its last flush.
    fn leave_gate(&mut self, call_mark: usize) {
        let stale = stale_after(self.mem.since(call_mark), false);
        assert_eq!(self.v.tlb_stale(), stale, "the vMMU's idea of a stale TLB is wrong");
        let mark = self.mem.mark();
        self.v.finish(&mut self.mem);
        let flushed = self.mem.since(mark);
        assert_eq!(flushed, if stale { &[Change::Flush][..] } else { &[][..] });
        assert!(!self.v.tlb_stale());
    }
}

/// The frames a present entry of a `level` table covers, restated from the
/// bits (beyond RAM cut off: those have no kind).
fn covered(level: Level, value: u64) -> Option<Range<u64>> {
    if value & P == 0 {
        return None;
    }
    let huge = value & PS != 0 && matches!(level, Level::L2 | Level::L3);
    let size = if huge { level.leaf_frames() } else { 1 };
    let first = (value & 0x000f_ffff_ffff_f000) >> 12 & !(size - 1);
    Some(first.min(FRAMES as u64)..(first + size).min(FRAMES as u64))
}

/// Whether, after `changes`, some present entry was replaced or removed
/// since the last flush (`stale` before them).
fn stale_after(changes: &[Change], mut stale: bool) -> bool {
    for c in changes {
        match c {
            Change::Write { old, .. } if old & P != 0 => stale = true,
            Change::Flush => stale = false,
            _ => {}
        }
    }
    stale
}

/// A frame's content starts to be trusted (zeroed as a new table) or stops
/// being a table (its alias made writable) only with nothing stale: no CPU
/// can then reach it through a translation the vMMU has taken away.
fn assert_flushed_before_trust(op: &Op, changes: &[Change], stale_before: bool) {
    let trust_point = match op {
        Op::Declare(..) => changes.iter().position(|c| matches!(c, Change::Cleared { .. } | Change::Zero { .. })),
        Op::Remove(..) => changes.iter().rposition(|c| matches!(c, Change::Write { .. })),
        Op::Write(..) => None,
    };
    if let Some(at) = trust_point {
        assert!(!stale_after(&changes[..at], stale_before), "{op:?} trusted a frame before flushing: {changes:?}");
    }
}
