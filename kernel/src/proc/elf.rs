//! Loading a static ELF64 executable (ET_EXEC, or a static PIE at a fixed
//! base) into a fresh address space, W^X page by page. The plan (which
//! pages, with which rights, which bytes) comes from `klib::elf`, which
//! checks every header field and bounds the page count before a frame is
//! claimed here; this file only carries it out.

use super::mem::{PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::mm::frames::{self, Frame};
use crate::mm::vm::{AddressSpace, Batch, VmError};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use klib::elf::{ElfError, Plan};
use nk_model::layout::{PAGE_SIZE, USER_END};
use nk_model::pte::PteFlags;

/// Pages an executable's segments may span at most (1 GiB), whatever
/// memory is free: the loader fills them eagerly.
pub const MAX_IMAGE_PAGES: u64 = (1 << 30) / PAGE_SIZE;
/// Frames the loader leaves free for the rest of the system (4 MiB).
const RESERVE_PAGES: u64 = 1024;

/// What the loader tells the process's start-up code (the auxiliary vector).
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    pub entry: u64,
    /// Where the program headers are in the process's memory.
    pub phdr: u64,
    pub phent: u64,
    pub phnum: u64,
    /// The first address above every segment: where `brk` starts.
    pub end: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The file's headers refused it (`ElfError::errno` says how).
    Elf(ElfError),
    OutOfMemory,
    Vm(VmError),
}

impl LoadError {
    /// What `execve` returns for it.
    pub fn errno(self) -> i64 {
        match self {
            Self::Elf(e) => e.errno(),
            Self::OutOfMemory | Self::Vm(_) => super::syscall::errno::ENOMEM,
        }
    }
}

/// Loads `file` into `space`, its mappings added to `batch` (they exist
/// once it runs); records every frame in `pages` with the rights it is
/// mapped with (also on failure, so that the caller frees them after the
/// tables go).
pub fn load(
    file: &[u8],
    space: &mut AddressSpace,
    batch: &mut Batch,
    pages: &mut BTreeMap<u64, (Frame, u8)>,
) -> Result<Loaded, LoadError> {
    // Bounded by free frames, and by the heap the pages' entries take.
    let heap_pages = crate::mm::heap::room() / super::HEAP_PER_PAGE;
    let limit = frames::stats().0.saturating_sub(RESERVE_PAGES).min(MAX_IMAGE_PAGES).min(heap_pages);
    let plan = klib::elf::plan(file, USER_END, limit).map_err(LoadError::Elf)?;
    for run in &plan.runs {
        let mut va = run.start;
        while va < run.end {
            let frame = frames::alloc().ok_or(LoadError::OutOfMemory)?;
            frame.fill(0);
            let prot =
                PROT_READ | if run.writable { PROT_WRITE } else { 0 } | if run.executable { PROT_EXEC } else { 0 };
            pages.insert(va, (frame, prot));
            va += PAGE_SIZE;
        }
    }
    copy_segments(&plan, file, pages)?;
    for rights in [(true, false), (false, true), (false, false)] {
        let flags = PteFlags::USER
            | if rights.0 { PteFlags::WRITABLE } else { PteFlags::empty() }
            | if rights.1 { PteFlags::empty() } else { PteFlags::NO_EXECUTE };
        let group: Vec<(u64, u64, PteFlags)> = plan
            .runs
            .iter()
            .filter(|r| (r.writable, r.executable) == rights)
            .flat_map(|r| (r.start..r.end).step_by(PAGE_SIZE as usize))
            .filter_map(|va| pages.get(&va).map(|(f, _)| (va, f.addr(), flags)))
            .collect();
        space.stage_set(batch, &group).map_err(LoadError::Vm)?;
    }
    Ok(Loaded { entry: plan.entry, phdr: plan.phdr, phent: plan.phent, phnum: plan.phnum, end: plan.end })
}

/// Copies each segment's file bytes into its pages (every one planned).
fn copy_segments(plan: &Plan, file: &[u8], pages: &BTreeMap<u64, (Frame, u8)>) -> Result<(), LoadError> {
    let missing = LoadError::Elf(ElfError::NotExecutable("segment outside its pages"));
    for s in &plan.segments {
        let mut rest = file.get(s.file_offset..s.file_offset + s.file_size).ok_or(missing)?;
        let mut va = s.start;
        while !rest.is_empty() {
            let off = (va % PAGE_SIZE) as usize;
            let n = rest.len().min(PAGE_SIZE as usize - off);
            pages.get(&(va - off as u64)).ok_or(missing)?.0.write_at(off, &rest[..n]);
            rest = &rest[n..];
            va += n as u64;
        }
    }
    Ok(())
}
