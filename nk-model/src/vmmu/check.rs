//! The invariant checker: reads every declared page table and the frame
//! table and reports what breaks I1, I2, I5, I6, I7 (image code executable
//! only at its boot mapping), I8, I11 or the reference counts.
//! It shares only the reading of entries with the rules, not the rules
//! themselves, so it can catch a rule that lets too much through.

use super::entry::{ENTRIES, Rights, Target, target};
use super::frame::FrameKind;
use super::level::Level;
use super::phys_mem::PhysMem;
use super::report::{Invariant, Report};
use super::state::Vmmu;

/// Checks the vMMU's state in `mem`. `scratch` needs one `u32` per frame
/// (`frames_len()`); it is where references are recounted, since the model
/// has no heap.
///
/// Every declared table is read once, reachable or not: every table a root
/// reaches is declared (or the entry pointing at it is an I1 violation), so
/// this covers every address space, and the shared kernel half is read once
/// rather than once per address space.
pub fn check(vmmu: &Vmmu<'_>, mem: &impl PhysMem, scratch: &mut [u32]) -> Report {
    let frames = vmmu.frames_len();
    let mut report = Report::new(frames);
    check_roots(vmmu, &mut report);
    let mut counts = scratch.get_mut(..frames);
    match counts.as_deref_mut() {
        Some(c) => c.fill(0),
        None => report.note(Invariant::RefCount, frames as u64, "scratch smaller than the frame table: not recounted"),
    }
    for pfn in 0..frames as u64 {
        let Some(FrameKind::Ptp(level)) = vmmu.kind_of(pfn) else { continue };
        report.ptps += 1;
        if level == Level::L4 {
            report.address_spaces += 1;
        }
        check_table(vmmu, mem, pfn, level, counts.as_deref_mut(), &mut report);
    }
    if let Some(counts) = counts {
        for (pfn, &count) in counts.iter().enumerate() {
            if vmmu.frames[pfn].refs() != count {
                report.note(Invariant::RefCount, pfn as u64, "refs disagrees with the entries pointing at the frame");
            }
        }
    }
    report
}

/// I5: every live root, and the kernel root, is a level-4 table.
fn check_roots(vmmu: &Vmmu<'_>, report: &mut Report) {
    for root in vmmu.live_roots.iter().chain([&vmmu.kernel_root]).flatten() {
        if vmmu.kind_of(*root) != Some(FrameKind::Ptp(Level::L4)) {
            report.note(Invariant::I5, *root, "a root is not a declared level-4 table");
        }
    }
}

fn check_table(
    vmmu: &Vmmu<'_>,
    mem: &impl PhysMem,
    table: u64,
    level: Level,
    mut counts: Option<&mut [u32]>,
    report: &mut Report,
) {
    for index in 0..ENTRIES {
        let entry = mem.read_entry(table, index);
        let Some(t) = target(level, entry) else { continue };
        if let Some(counts) = counts.as_deref_mut() {
            for pfn in t.in_ram(counts.len()) {
                counts[pfn as usize] = counts[pfn as usize].saturating_add(1);
            }
        }
        if t.leaf {
            let pinned = vmmu.frames.get(table as usize).is_some_and(|d| d.pinned());
            check_leaf(vmmu, t, Rights::of(entry), pinned, report);
        } else {
            check_table_entry(vmmu, t.first, level, report);
        }
    }
}

/// I1: a non-leaf entry points at a declared table of the next level.
fn check_table_entry(vmmu: &Vmmu<'_>, pfn: u64, level: Level, report: &mut Report) {
    let expected = level.next_lower().map(FrameKind::Ptp);
    if expected.is_none() || vmmu.kind_of(pfn) != expected {
        report.note(Invariant::I1, pfn, "a table entry points at something other than a next-level table");
    }
}

/// I2, I6, I7, I8, I11 for one leaf (in a pinned table when `pinned`):
/// once per entry for what the entry alone breaks, once per frame for what
/// the frame's kind forbids.
fn check_leaf(vmmu: &Vmmu<'_>, t: Target, r: Rights, pinned: bool, report: &mut Report) {
    if r.writable && r.executable {
        report.note(Invariant::I6, t.first, "a leaf is writable and executable");
    }
    if r.executable
        && let Some(pfn) = t.first_beyond_ram(vmmu.frames_len())
    {
        report.note(Invariant::I6, pfn, "device memory is mapped executable");
    }
    for pfn in t.in_ram(vmmu.frames_len()) {
        let desc = vmmu.frames[pfn as usize];
        let kind = desc.kind();
        let broken = match kind {
            FrameKind::Ptp(_) if r.writable || r.user => {
                Some((Invariant::I2, "a page table is mapped writable or user"))
            }
            FrameKind::Nk if r.writable || r.user => Some((Invariant::I8, "NK memory is mapped writable or user")),
            FrameKind::Mediated if r.writable || r.user => {
                Some((Invariant::I11, "a write-mediated region is mapped writable or user"))
            }
            // Only the NK's boot maps NK frames (outer mappings are refused),
            // and it maps its own code executable.
            FrameKind::Nk => None,
            FrameKind::Code if r.writable => Some((Invariant::I6, "kernel code is mapped writable")),
            // Every boot table but the root is pinned, and the boot maps
            // the image from pinned tables only.
            FrameKind::Code if r.executable && desc.image_code() && !pinned => {
                Some((Invariant::I7, "image code is executable outside its boot mapping"))
            }
            FrameKind::Device if r.executable => Some((Invariant::I6, "device memory is mapped executable")),
            FrameKind::Code => None,
            _ if r.executable && !r.user => Some((Invariant::I6, "a kernel-executable leaf maps something but code")),
            _ => None,
        };
        if let Some((invariant, detail)) = broken {
            report.note(invariant, pfn, detail);
        }
    }
}
