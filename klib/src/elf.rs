//! Planning the load of a static ELF64 x86-64 executable: every header
//! field is read through a bounds check and validated before anything is
//! sized from it, and the whole plan (pages, rights, bytes to copy) is
//! known, and bounded, before the kernel claims a single frame or builds a
//! per-page structure. Pure and total: any input, however hostile, gives a
//! plan or a refusal, never a panic.
//!
//! The refusals follow Linux's `load_elf_binary` where Linux refuses
//! (ENOEXEC for what is not an executable it can run, EINVAL for
//! segments no address space can hold); where Linux would map a file range
//! past the end of the file and let the process take SIGBUS later, we
//! refuse up front with ENOEXEC (the loader copies file bytes eagerly).

use alloc::vec::Vec;

const PAGE: u64 = 4096;
/// An ELF64 file header.
pub const EHDR_SIZE: usize = 64;
/// An ELF64 program header (`e_phentsize` must be exactly this, as on Linux).
pub const PHDR_SIZE: usize = 56;
/// The program-header table fits one page (Linux's `ELF_MIN_ALIGN` bound):
/// at most 73 headers.
pub const MAX_PHDR_BYTES: usize = 4096;
/// Where a static PIE (ET_DYN) is placed: its own addresses start near 0.
pub const PIE_BASE: u64 = 0x40_0000;

const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const PF_X: u32 = 1;
const PF_W: u32 = 2;

/// Why a file cannot be loaded; `errno` says what `execve` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF64 x86-64 executable we can run, or one whose headers or
    /// segment bytes lie outside the file (ENOEXEC).
    NotExecutable(&'static str),
    /// A segment that no address space can hold: larger on file than in
    /// memory, beyond user space, or an entry point outside it (EINVAL, as
    /// Linux's `load_elf_binary`).
    BadSegment(&'static str),
    /// A segment, or a page two segments share, both writable and
    /// executable: refused for W^X (I6) (ENOEXEC).
    WritableAndExecutable,
    /// More pages than the caller can back (ENOMEM).
    TooLarge { pages: u64, limit: u64 },
}

impl ElfError {
    /// The Linux errno value `execve` returns for it (positive).
    pub fn errno(self) -> i64 {
        match self {
            Self::NotExecutable(_) | Self::WritableAndExecutable => 8, // ENOEXEC
            Self::BadSegment(_) => 22,                                 // EINVAL
            Self::TooLarge { .. } => 12,                               // ENOMEM
        }
    }
}

/// A loadable segment, checked: its file bytes lie inside the file, its
/// memory inside user space, `file_size <= mem_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First byte in memory (the PIE base added).
    pub start: u64,
    /// One past its last byte in memory.
    pub end: u64,
    /// Where its bytes are in the file, and how many.
    pub file_offset: usize,
    pub file_size: usize,
    pub writable: bool,
    pub executable: bool,
}

/// A run of whole pages with one set of rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub start: u64,
    pub end: u64,
    pub writable: bool,
    pub executable: bool,
}

impl Run {
    pub fn pages(&self) -> u64 {
        (self.end - self.start) / PAGE
    }
}

/// What to build: the pages (disjoint runs, sorted), the bytes to copy,
/// and what the start-up code is told (the auxiliary vector).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub runs: Vec<Run>,
    pub segments: Vec<Segment>,
    pub entry: u64,
    /// Where the program headers are in memory (0 when nowhere).
    pub phdr: u64,
    pub phent: u64,
    pub phnum: u64,
    /// The first page above every segment: where `brk` starts.
    pub end: u64,
    /// Pages in all runs.
    pub pages: u64,
}

fn bytes<const N: usize>(file: &[u8], at: usize) -> Option<[u8; N]> {
    file.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(file: &[u8], at: usize) -> Option<u16> {
    bytes(file, at).map(u16::from_le_bytes)
}

fn u32_at(file: &[u8], at: usize) -> Option<u32> {
    bytes(file, at).map(u32::from_le_bytes)
}

fn u64_at(file: &[u8], at: usize) -> Option<u64> {
    bytes(file, at).map(u64::from_le_bytes)
}

struct Phdr {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    file_size: u64,
    mem_size: u64,
}

/// Plans loading `file` below `user_end` (page-aligned) in at most
/// `max_pages` pages.
pub fn plan(file: &[u8], user_end: u64, max_pages: u64) -> Result<Plan, ElfError> {
    use ElfError::{BadSegment, NotExecutable};
    let header = file.get(..EHDR_SIZE).ok_or(NotExecutable("shorter than an ELF header"))?;
    if header[..4] != *b"\x7fELF" {
        return Err(NotExecutable("no ELF magic"));
    }
    if header[4] != 2 || header[5] != 1 {
        return Err(NotExecutable("not a little-endian ELF64 file"));
    }
    let field16 = |at| u16_at(header, at).ok_or(NotExecutable("header"));
    let field64 = |at| u64_at(header, at).ok_or(NotExecutable("header"));
    let base = match field16(16)? {
        ET_EXEC => 0,
        ET_DYN => PIE_BASE,
        _ => return Err(NotExecutable("not an executable")),
    };
    if field16(18)? != EM_X86_64 {
        return Err(NotExecutable("not an x86-64 file"));
    }
    let entry = field64(24)?;
    let phoff = field64(32)?;
    let phent = field16(54)?;
    let phnum = field16(56)?;
    if usize::from(phent) != PHDR_SIZE {
        return Err(NotExecutable("program-header size is not 56"));
    }
    let table_len = usize::from(phnum) * PHDR_SIZE;
    if table_len == 0 || table_len > MAX_PHDR_BYTES {
        return Err(NotExecutable("no program headers, or more than a page of them"));
    }
    let table = usize::try_from(phoff)
        .ok()
        .and_then(|off| file.get(off..off.checked_add(table_len)?))
        .ok_or(NotExecutable("program-header table lies outside the file"))?;
    let phdrs: Vec<Phdr> = table
        .chunks_exact(PHDR_SIZE)
        .map(|h| {
            let g32 = |at| u32_at(h, at).unwrap_or(0);
            let g64 = |at| u64_at(h, at).unwrap_or(0);
            Phdr { kind: g32(0), flags: g32(4), offset: g64(8), vaddr: g64(16), file_size: g64(32), mem_size: g64(40) }
        })
        .collect();
    if phdrs.iter().any(|p| p.kind == PT_INTERP) {
        return Err(NotExecutable("dynamically linked (has an interpreter)"));
    }
    let mut segments = Vec::new();
    for p in phdrs.iter().filter(|p| p.kind == PT_LOAD) {
        if p.file_size > p.mem_size {
            return Err(BadSegment("segment larger on file than in memory"));
        }
        if p.mem_size == 0 {
            continue;
        }
        let start = base.checked_add(p.vaddr).ok_or(BadSegment("segment address overflows"))?;
        let end = start.checked_add(p.mem_size).ok_or(BadSegment("segment size overflows"))?;
        if end > user_end {
            return Err(BadSegment("segment outside user space"));
        }
        let file_offset = usize::try_from(p.offset).map_err(|_| NotExecutable("segment beyond the file"))?;
        let file_size = usize::try_from(p.file_size).map_err(|_| NotExecutable("segment beyond the file"))?;
        if file_offset.checked_add(file_size).is_none_or(|e| e > file.len()) {
            return Err(NotExecutable("segment beyond the file"));
        }
        let (writable, executable) = (p.flags & PF_W != 0, p.flags & PF_X != 0);
        if writable && executable {
            return Err(ElfError::WritableAndExecutable);
        }
        segments.push(Segment { start, end, file_offset, file_size, writable, executable });
    }
    if segments.is_empty() {
        return Err(NotExecutable("no PT_LOAD segment"));
    }
    let entry =
        base.checked_add(entry).filter(|&e| e < user_end).ok_or(BadSegment("entry point outside user space"))?;
    let runs = runs(&segments)?;
    let pages = runs.iter().map(Run::pages).sum::<u64>();
    if pages > max_pages {
        return Err(ElfError::TooLarge { pages, limit: max_pages });
    }
    let end = runs.last().map_or(0, |r| r.end);
    // Program headers: PT_PHDR if present, else inside the segment that
    // loads the file's start. Only told to the program: wrapping is harmless.
    let phdr = phdrs
        .iter()
        .find(|p| p.kind == PT_PHDR)
        .map(|p| base.wrapping_add(p.vaddr))
        .or_else(|| {
            phdrs
                .iter()
                .find(|p| p.kind == PT_LOAD && p.offset == 0)
                .map(|p| base.wrapping_add(p.vaddr).wrapping_add(phoff))
        })
        .unwrap_or(0);
    Ok(Plan { runs, segments, entry, phdr, phent: PHDR_SIZE as u64, phnum: u64::from(phnum), end, pages })
}

/// The pages the segments cover, cut into disjoint sorted runs of equal
/// rights (segments may share a page: its rights are their union).
fn runs(segments: &[Segment]) -> Result<Vec<Run>, ElfError> {
    let page_down = |a: u64| a & !(PAGE - 1);
    // `end <= user_end`, a page-aligned address far below u64::MAX.
    let page_up = |a: u64| a.saturating_add(PAGE - 1) & !(PAGE - 1);
    let mut cuts: Vec<u64> = segments.iter().flat_map(|s| [page_down(s.start), page_up(s.end)]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut runs: Vec<Run> = Vec::new();
    for w in cuts.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        let mut covered = false;
        let (mut writable, mut executable) = (false, false);
        for s in segments.iter().filter(|s| page_down(s.start) < hi && lo < page_up(s.end)) {
            covered = true;
            writable |= s.writable;
            executable |= s.executable;
        }
        if !covered {
            continue;
        }
        if writable && executable {
            return Err(ElfError::WritableAndExecutable);
        }
        match runs.last_mut() {
            Some(r) if r.end == lo && r.writable == writable && r.executable == executable => r.end = hi,
            _ => runs.push(Run { start: lo, end: hi, writable, executable }),
        }
    }
    Ok(runs)
}

/// A minimal valid executable for tests: one read-execute segment at
/// 0x40_0000 holding `code`, entered at its first byte.
#[cfg(test)]
fn tiny_executable(code: &[u8]) -> Vec<u8> {
    let vaddr = 0x40_0000u64;
    let code_at = (EHDR_SIZE + PHDR_SIZE) as u64;
    let mut f = Vec::new();
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0");
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&ET_EXEC.to_le_bytes());
    f.extend_from_slice(&EM_X86_64.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&(vaddr + code_at).to_le_bytes()); // e_entry
    f.extend_from_slice(&(EHDR_SIZE as u64).to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for v in [EHDR_SIZE as u16, PHDR_SIZE as u16, 1, 64, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    let size = code_at + code.len() as u64;
    f.extend_from_slice(&PT_LOAD.to_le_bytes());
    f.extend_from_slice(&(4 | PF_X).to_le_bytes());
    for v in [0, vaddr, vaddr, size, size, PAGE] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(code);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const USER_END: u64 = 0x7fff_ffff_f000;
    const LIMIT: u64 = 1 << 18;
    /// `mov edi, 7; mov eax, 60; syscall`: exit(7).
    const EXIT7: [u8; 12] = [0xbf, 7, 0, 0, 0, 0xb8, 60, 0, 0, 0, 0x0f, 0x05];

    fn tiny() -> Vec<u8> {
        tiny_executable(&EXIT7)
    }

    fn put16(f: &mut [u8], at: usize, v: u16) {
        f[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(f: &mut [u8], at: usize, v: u64) {
        f[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    /// Program header 0's fields.
    const P_OFFSET: usize = 64 + 8;
    const P_FILESZ: usize = 64 + 32;
    const P_MEMSZ: usize = 64 + 40;

    #[test]
    fn a_valid_file_plans_one_page() {
        let p = plan(&tiny(), USER_END, LIMIT).unwrap();
        assert_eq!(p.runs, [Run { start: 0x40_0000, end: 0x40_1000, writable: false, executable: true }]);
        assert_eq!((p.entry, p.phdr, p.phnum, p.end, p.pages), (0x40_0078, 0x40_0040, 1, 0x40_1000, 1));
    }

    #[test]
    fn the_issue_cases_are_refused() {
        let cut = tiny()[..80].to_vec();
        assert!(matches!(plan(&cut, USER_END, LIMIT), Err(ElfError::NotExecutable(_))));
        let mut f = tiny();
        put64(&mut f, 32, u64::MAX - 8);
        assert_eq!(plan(&f, USER_END, LIMIT).unwrap_err().errno(), 8);
        let mut f = tiny();
        put16(&mut f, 56, 65535);
        assert_eq!(plan(&f, USER_END, LIMIT).unwrap_err().errno(), 8);
        let mut f = tiny();
        put16(&mut f, 54, 1);
        assert_eq!(plan(&f, USER_END, LIMIT).unwrap_err().errno(), 8);
        let mut f = tiny();
        put64(&mut f, P_OFFSET, 1 << 40);
        assert_eq!(plan(&f, USER_END, LIMIT).unwrap_err().errno(), 8);
        let mut f = tiny();
        put64(&mut f, P_OFFSET, u64::MAX - 4);
        assert_eq!(plan(&f, USER_END, LIMIT).unwrap_err().errno(), 8);
        let mut f = tiny();
        put64(&mut f, P_MEMSZ, 0);
        assert_eq!(
            plan(&f, USER_END, LIMIT).unwrap_err(),
            ElfError::BadSegment("segment larger on file than in memory")
        );
        let mut f = tiny();
        put64(&mut f, P_MEMSZ, 64 << 30);
        assert_eq!(plan(&f, USER_END, LIMIT).unwrap_err(), ElfError::TooLarge { pages: 16 << 20, limit: LIMIT });
        let mut f = tiny();
        put64(&mut f, P_MEMSZ, u64::MAX);
        assert_eq!(plan(&f, USER_END, LIMIT).unwrap_err().errno(), 22);
        let mut f = tiny();
        put64(&mut f, P_FILESZ, 1 << 20);
        put64(&mut f, P_MEMSZ, 1 << 20);
        assert_eq!(plan(&f, USER_END, LIMIT).unwrap_err().errno(), 8);
    }

    #[test]
    fn shared_pages_take_both_rights_and_wx_is_refused() {
        let mut f = tiny();
        // A second, writable segment in the same page as the code.
        let mut ph = f[64..120].to_vec();
        ph[4..8].copy_from_slice(&(4 | PF_W).to_le_bytes());
        f.splice(120..120, ph);
        put16(&mut f, 56, 2);
        assert_eq!(plan(&f, USER_END, LIMIT).unwrap_err(), ElfError::WritableAndExecutable);
    }

    /// What every plan promises the kernel that builds from it.
    fn sound(p: &Plan, file: &[u8]) {
        assert!(!p.runs.is_empty() && p.pages <= LIMIT);
        assert!(p.entry < USER_END);
        for w in p.runs.windows(2) {
            assert!(w[0].end <= w[1].start);
        }
        for r in &p.runs {
            assert!(r.start < r.end && r.end <= USER_END && r.start % PAGE == 0 && r.end % PAGE == 0);
            assert!(!(r.writable && r.executable));
        }
        for s in &p.segments {
            assert!(s.file_offset + s.file_size <= file.len());
            assert!(s.start + s.file_size as u64 <= s.end);
            assert!(covered(p, s));
        }
    }

    fn covered(p: &Plan, s: &Segment) -> bool {
        let mut at = s.start & !(PAGE - 1);
        while at < s.end {
            if !p.runs.iter().any(|r| r.start <= at && at < r.end) {
                return false;
            }
            at += PAGE;
        }
        true
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(p) = plan(&bytes, USER_END, LIMIT) {
                sound(&p, &bytes);
            }
        }

        #[test]
        fn mutated_valid_files_never_panic(
            edits in proptest::collection::vec((0usize..140, any::<u64>(), 0u8..3), 1..6),
            cut in 0usize..200,
        ) {
            let mut f = tiny();
            for (at, v, width) in edits {
                let at = at.min(f.len() - 8);
                match width {
                    0 => f[at] = v as u8,
                    1 => put16(&mut f, at, v as u16),
                    _ => put64(&mut f, at, v),
                }
            }
            f.truncate(cut.max(1));
            if let Ok(p) = plan(&f, USER_END, LIMIT) {
                sound(&p, &f);
            }
        }
    }
}
