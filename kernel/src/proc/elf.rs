//! Loading a static ELF64 executable (ET_EXEC, or a static PIE at a fixed
//! base) into a fresh address space, W^X page by page.

use crate::mm::frames::{self, Frame};
use crate::mm::vm::{AddressSpace, VmError};
use alloc::collections::BTreeMap;
use nk_model::layout::{PAGE_SIZE, USER_END};
use nk_model::pte::PteFlags;
use xmas_elf::ElfFile;
use xmas_elf::header::{Machine, Type};
use xmas_elf::program::{self, Type as PhType};

/// Where a static PIE is placed (its own addresses start near 0).
pub const PIE_BASE: u64 = 0x40_0000;

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
    /// Not an ELF64 x86-64 executable we can run (ENOEXEC).
    NotExecutable(&'static str),
    /// A segment both writable and executable: refused (W^X, I6).
    WritableAndExecutable,
    OutOfMemory,
    Vm(VmError),
}

/// Loads `image` into `space`; records every frame in `pages`.
pub fn load(file: &[u8], space: &mut AddressSpace, pages: &mut BTreeMap<u64, Frame>) -> Result<Loaded, LoadError> {
    // The parser reads headers in place and needs them 8-byte aligned; a
    // file in a cpio archive is only 4-byte aligned.
    let mut copy = alloc::vec![0u8; file.len() + 8];
    let at = copy.as_ptr().align_offset(8);
    copy[at..at + file.len()].copy_from_slice(file);
    let image = &copy[at..at + file.len()];
    let elf = ElfFile::new(image).map_err(LoadError::NotExecutable)?;
    let h = &elf.header;
    if h.pt1.class() != xmas_elf::header::Class::SixtyFour
        || h.pt2.machine().as_machine() != Machine::X86_64
        || h.pt1.data() != xmas_elf::header::Data::LittleEndian
    {
        return Err(LoadError::NotExecutable("not an x86-64 little-endian ELF64 file"));
    }
    let base = match h.pt2.type_().as_type() {
        Type::Executable => 0,
        Type::SharedObject => PIE_BASE,
        _ => return Err(LoadError::NotExecutable("not an executable")),
    };
    if elf.program_iter().any(|ph| ph.get_type() == Ok(PhType::Interp)) {
        return Err(LoadError::NotExecutable("dynamically linked (has an interpreter)"));
    }
    // Page -> (rights, bytes to copy): segments may share a page.
    let mut plan: BTreeMap<u64, (bool, bool)> = BTreeMap::new();
    let mut end = 0u64;
    for ph in elf.program_iter() {
        if ph.get_type() != Ok(PhType::Load) || ph.mem_size() == 0 {
            continue;
        }
        let start = base.checked_add(ph.virtual_addr()).ok_or(LoadError::NotExecutable("segment address overflows"))?;
        let seg_end = start.checked_add(ph.mem_size()).ok_or(LoadError::NotExecutable("segment size overflows"))?;
        if seg_end > USER_END || ph.file_size() > ph.mem_size() {
            return Err(LoadError::NotExecutable("segment outside user space or larger on file than in memory"));
        }
        let flags = ph.flags();
        if flags.is_write() && flags.is_execute() {
            return Err(LoadError::WritableAndExecutable);
        }
        let mut page = start & !(PAGE_SIZE - 1);
        while page < seg_end {
            let e = plan.entry(page).or_insert((false, false));
            e.0 |= flags.is_write();
            e.1 |= flags.is_execute();
            if e.0 && e.1 {
                return Err(LoadError::WritableAndExecutable);
            }
            page += PAGE_SIZE;
        }
        end = end.max(seg_end);
    }
    if plan.is_empty() {
        return Err(LoadError::NotExecutable("no loadable segment"));
    }
    for &page in plan.keys() {
        let frame = frames::alloc().ok_or(LoadError::OutOfMemory)?;
        frame.fill(0);
        pages.insert(page, frame);
    }
    // Copy each segment's file bytes into its pages.
    for ph in elf.program_iter() {
        if ph.get_type() != Ok(PhType::Load) {
            continue;
        }
        let program::SegmentData::Undefined(data) = ph.get_data(&elf).map_err(LoadError::NotExecutable)? else {
            return Err(LoadError::NotExecutable("segment data"));
        };
        let data = data.get(..ph.file_size() as usize).ok_or(LoadError::NotExecutable("segment beyond the file"))?;
        let mut va = base + ph.virtual_addr();
        let mut rest = data;
        while !rest.is_empty() {
            let off = (va % PAGE_SIZE) as usize;
            let n = rest.len().min(PAGE_SIZE as usize - off);
            pages[&(va - off as u64)].write_at(off, &rest[..n]);
            rest = &rest[n..];
            va += n as u64;
        }
    }
    for (flags, group) in [(true, false), (false, true), (false, false)].map(|rights| {
        let f = PteFlags::USER
            | if rights.0 { PteFlags::WRITABLE } else { PteFlags::empty() }
            | if rights.1 { PteFlags::empty() } else { PteFlags::NO_EXECUTE };
        let group: alloc::vec::Vec<(u64, u64)> =
            plan.iter().filter(|(_, r)| **r == rights).map(|(va, _)| (*va, pages[va].addr())).collect();
        (f, group)
    }) {
        if !group.is_empty() {
            space.map(&group, flags).map_err(LoadError::Vm)?;
        }
    }
    // Program headers: PT_PHDR if present, else inside the first segment.
    let phdr = elf
        .program_iter()
        .find(|ph| ph.get_type() == Ok(PhType::Phdr))
        .map(|ph| base + ph.virtual_addr())
        .or_else(|| {
            elf.program_iter()
                .find(|ph| ph.get_type() == Ok(PhType::Load) && ph.offset() == 0)
                .map(|ph| base + ph.virtual_addr() + h.pt2.ph_offset())
        })
        .unwrap_or(0);
    Ok(Loaded {
        entry: base + h.pt2.entry_point(),
        phdr,
        phent: u64::from(h.pt2.ph_entry_size()),
        phnum: u64::from(h.pt2.ph_count()),
        end: (end + PAGE_SIZE - 1) & !(PAGE_SIZE - 1),
    })
}
