//! A process's memory: its regions (what backs each range of user
//! addresses, with which rights) and the pages mapped so far. Pages arrive
//! on first touch: zeroed, read from a file, or copied when a page shared
//! after `fork` is first written. Each fault maps a window of pages in one
//! NK crossing, so touching a large mapping costs a crossing per window.
//!
//! Frames may be held by several processes (after `fork`, or a file's
//! shared page): `REFS` counts holders beyond the first. The pages of
//! `MAP_SHARED` file mappings live in `SHARED`, one frame per file page,
//! written back to the file when the last mapping goes and whenever a
//! `read` or `write` of the file needs the two to agree.

use crate::fs::Ino;
use crate::mm::frames::{self, Frame};
use crate::mm::vm::{AddressSpace, Batch, VmError};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use nk_model::layout::{PAGE_SIZE, USER_END};
use nk_model::pte::PteFlags;
use spin::Mutex;

pub const PROT_READ: u8 = 1;
pub const PROT_WRITE: u8 = 2;
pub const PROT_EXEC: u8 = 4;

/// Pages mapped per fault: 16 pages, aligned, clipped to the region.
pub const WINDOW: u64 = 16 * PAGE_SIZE;

/// What a region's pages hold before they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Zeroes.
    Anon,
    /// The file's bytes from `offset` (for the region's first page).
    /// Private: each process's own copy once written. Shared: the file's
    /// own pages, written back to it.
    File { ino: Ino, offset: u64, shared: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub end: u64,
    pub prot: u8,
    pub backing: Backing,
}

impl Region {
    /// `self`, when it starts at `start`, cut to start at `at`.
    fn from(self, start: u64, at: u64) -> Region {
        let backing = match self.backing {
            Backing::File { ino, offset, shared } => Backing::File { ino, offset: offset + (at - start), shared },
            b => b,
        };
        Region { backing, ..self }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// This process's alone.
    Own,
    /// Shared with other processes since a `fork`: mapped read-only and
    /// copied (or, once the last other holder is gone, made writable) on
    /// the first write.
    Cow,
    /// Page `index` of file `ino`'s shared pages.
    Shared(Ino, u64),
}

#[derive(Clone, Copy, Debug)]
struct Page {
    frame: Frame,
    hold: Hold,
}

/// Why a fault could not be resolved: the process gets SIGSEGV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No region there, or one that forbids the access.
    Access,
    /// A file mapping's page wholly past the end of the file (SIGBUS).
    Bus,
    OutOfMemory,
}

pub struct Memory {
    // Dropped in this order: the tables go before the frames they map.
    pub space: AddressSpace,
    regions: Regions,
    pages: Pages,
}

/// The regions; dropping them lets go of the files they map.
#[derive(Clone, Default)]
struct Regions(BTreeMap<u64, Region>);

impl core::ops::Deref for Regions {
    type Target = BTreeMap<u64, Region>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl core::ops::DerefMut for Regions {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Regions {
    fn drop(&mut self) {
        self.0.values().for_each(|r| release_file(r.backing));
    }
}

/// The mapped pages; dropping them lets go of their frames.
struct Pages(BTreeMap<u64, Page>);

impl Drop for Pages {
    fn drop(&mut self) {
        for p in core::mem::take(&mut self.0).into_values() {
            let_go(p);
        }
    }
}

fn flags(prot: u8, hold: Hold) -> PteFlags {
    // PROT_NONE: kept mapped (the frame stays the page's) but for the
    // kernel only, read-only, not executable: every user access faults,
    // and user copies refuse it (EFAULT).
    if prot == 0 {
        return PteFlags::NO_EXECUTE;
    }
    let mut f = PteFlags::USER;
    if prot & PROT_WRITE != 0 && hold != Hold::Cow {
        f = f | PteFlags::WRITABLE;
    }
    if prot & PROT_EXEC == 0 {
        f = f | PteFlags::NO_EXECUTE;
    }
    f
}

impl Memory {
    /// An empty memory whose root `batch` declares.
    pub fn new_in(batch: &mut Batch) -> Result<Memory, VmError> {
        Ok(Memory { space: AddressSpace::new_in(batch)?, regions: Regions::default(), pages: Pages(BTreeMap::new()) })
    }

    pub fn root(&self) -> u64 {
        self.space.root()
    }

    /// Takes over pages the ELF loader filled and mapped, with the rights
    /// it mapped them with, as regions of their own.
    pub fn adopt(&mut self, loaded: BTreeMap<u64, (Frame, u8)>) {
        for (va, (frame, prot)) in loaded {
            self.pages.0.insert(va, Page { frame, hold: Hold::Own });
            // Merge with the region just below when it ends here alike.
            match self.regions.range_mut(..va).next_back() {
                Some((_, r)) if r.end == va && r.prot == prot && r.backing == Backing::Anon => r.end = va + PAGE_SIZE,
                _ => {
                    self.regions.insert(va, Region { end: va + PAGE_SIZE, prot, backing: Backing::Anon });
                }
            }
        }
    }

    /// `populate` with the mappings added to `batch` (there once it runs):
    /// the pages of `[start, end)` not there yet, fresh, of the region
    /// holding `start`, which must hold the whole range.
    pub fn populate_in(&mut self, batch: &mut Batch, start: u64, end: u64) -> Result<(), Fault> {
        let (from, region) = self.region_at(start).ok_or(Fault::Access)?;
        if end > region.end || !crate::mm::heap::can_grow((end - start) / PAGE_SIZE * super::HEAP_PER_PAGE) {
            return Err(Fault::OutOfMemory);
        }
        let mut leaves = Vec::new();
        let mut va = start & !(PAGE_SIZE - 1);
        while va < end {
            if let alloc::collections::btree_map::Entry::Vacant(slot) = self.pages.0.entry(va) {
                let p = page_for(va, from, region)?;
                leaves.push((va, p.frame.addr(), flags(region.prot, p.hold)));
                slot.insert(p);
            }
            va += PAGE_SIZE;
        }
        self.space.stage_set(batch, &leaves).map_err(|_| Fault::OutOfMemory)
    }

    /// Writes `bytes` at `va` through this memory's own pages, not its
    /// tables (which may not exist yet): `None` if a page is missing.
    pub fn poke(&self, va: u64, bytes: &[u8]) -> Option<()> {
        let end = va.checked_add(bytes.len() as u64)?;
        let mut at = va;
        while at < end {
            let page = at & !(PAGE_SIZE - 1);
            let n = (end - at).min(page + PAGE_SIZE - at);
            let off = (at - va) as usize;
            self.pages.0.get(&page)?.frame.write_at((at - page) as usize, &bytes[off..off + n as usize]);
            at += n;
        }
        Some(())
    }

    /// The region holding `va`, with its start.
    pub fn region_at(&self, va: u64) -> Option<(u64, Region)> {
        self.regions.range(..=va).next_back().filter(|(_, r)| va < r.end).map(|(s, r)| (*s, *r))
    }

    /// The files whose shared mappings lie in `[start, end)`, for `msync`;
    /// `Err` if part of the range is not mapped at all (ENOMEM).
    pub fn shared_files_in(&self, start: u64, end: u64) -> Result<Vec<Ino>, ()> {
        let mut at = start;
        let mut files = Vec::new();
        while at < end {
            let (_, r) = self.region_at(at).ok_or(())?;
            if let Backing::File { ino, shared: true, .. } = r.backing
                && !files.contains(&ino)
            {
                files.push(ino);
            }
            at = r.end;
        }
        Ok(files)
    }

    /// Whether any region overlaps `[start, end)`.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.regions.range(..end).next_back().is_some_and(|(_, r)| r.end > start)
    }

    /// The lowest page-aligned `start >= from` such that `[start, start +
    /// len)` and one guard page after it overlap no region, ending by
    /// `limit`: where `mmap` places a mapping once its bump pointer has run
    /// out, so address space given back by `munmap` is used again.
    pub fn find_gap(&self, from: u64, len: u64, limit: u64) -> Option<u64> {
        let mut start = from;
        if let Some((_, r)) = self.regions.range(..from).next_back()
            && r.end > start
        {
            start = r.end.checked_add(PAGE_SIZE)?;
        }
        for (&s, r) in self.regions.range(from..) {
            if start.checked_add(len)?.checked_add(PAGE_SIZE)? <= s {
                break;
            }
            start = start.max(r.end.checked_add(PAGE_SIZE)?);
        }
        (start.checked_add(len)? <= limit).then_some(start)
    }

    /// Adds a region over `[start, end)` (page-aligned), replacing whatever
    /// was there. Nothing is mapped until touched.
    pub fn add_region(&mut self, start: u64, end: u64, region: Region) -> Result<(), VmError> {
        self.remove(start, end)?;
        hold_file(region.backing);
        self.regions.insert(start, Region { end, ..region });
        Ok(())
    }

    /// Makes a region boundary at `at`, if a region spans it.
    fn split(&mut self, at: u64) {
        if let Some((start, r)) = self.region_at(at)
            && start < at
        {
            hold_file(r.backing);
            self.regions.insert(start, Region { end: at, ..r });
            self.regions.insert(at, r.from(start, at));
        }
    }

    /// `munmap`: removes the regions and pages of `[start, end)`.
    pub fn remove(&mut self, start: u64, end: u64) -> Result<(), VmError> {
        self.split(start);
        self.split(end);
        // Cut out by splitting, not entry by entry: the B-tree's removal
        // code, inlined here, happened to encode `lmsw` at an unaligned
        // offset, which the image scanner refuses.
        for r in cut(&mut self.regions.0, start, end).into_values() {
            release_file(r.backing);
        }
        let gone = cut(&mut self.pages.0, start, end);
        let vas: Vec<u64> = gone.keys().copied().collect();
        let unmapped = self.space.unmap(&vas);
        if unmapped.is_err() {
            // Still mapped: keep holding them.
            self.pages.0.extend(gone);
            return unmapped;
        }
        gone.into_values().for_each(let_go);
        Ok(())
    }

    /// `mprotect`: new rights for `[start, end)`, which regions must cover
    /// without a gap (else `false`, and nothing changes).
    pub fn protect(&mut self, start: u64, end: u64, prot: u8) -> Result<bool, VmError> {
        let mut at = start;
        while at < end {
            match self.region_at(at) {
                Some((_, r)) => at = r.end,
                None => return Ok(false),
            }
        }
        self.split(start);
        self.split(end);
        for (_, r) in self.regions.range_mut(start..end) {
            r.prot = prot;
        }
        let leaves: Vec<(u64, u64, PteFlags)> =
            self.pages.0.range(start..end).map(|(va, p)| (*va, p.frame.addr(), flags(prot, p.hold))).collect();
        self.space.set(&leaves)?;
        Ok(true)
    }

    /// Moves the end of the heap behind `brk` from `old` to `new` (both
    /// page-aligned): new pages are anonymous and writable, pages beyond
    /// the new end go.
    pub fn resize_heap(&mut self, old: u64, new: u64) -> Result<(), VmError> {
        if new < old {
            self.remove(new, old)
        } else if new > old {
            let region = Region { end: new, prot: PROT_READ | PROT_WRITE, backing: Backing::Anon };
            self.add_region(old, new, region)
        } else {
            Ok(())
        }
    }

    /// Resolves a fault at `va` (`write`: a write access; `exec`: an
    /// instruction fetch): maps the missing window or breaks a
    /// copy-on-write share. One NK crossing.
    pub fn fault(&mut self, va: u64, write: bool) -> Result<(), Fault> {
        self.fault_access(va, write, false)
    }

    pub fn fault_access(&mut self, va: u64, write: bool, exec: bool) -> Result<(), Fault> {
        let page = va & !(PAGE_SIZE - 1);
        let (start, region) = self.region_at(page).ok_or(Fault::Access)?;
        let needs = PROT_READ | if write { PROT_WRITE } else { 0 } | if exec { PROT_EXEC } else { 0 };
        if region.prot & needs != needs {
            return Err(Fault::Access);
        }
        match self.pages.0.get(&page).copied() {
            Some(p) if write && p.hold == Hold::Cow => self.break_cow(page, p, region.prot),
            // Already there: a stale TLB entry, or a racing fault.
            Some(_) => Ok(()),
            None => self.fill(page, start, region),
        }
    }

    /// Maps the missing pages of the window around `page` in one batch.
    // Not inlined into `fault_access`: inlined, they happened to encode
    // `lmsw` at an unaligned offset there, which the image scanner refuses.
    #[inline(never)]
    fn fill(&mut self, page: u64, start: u64, region: Region) -> Result<(), Fault> {
        if !heap_room_for_a_window() {
            return Err(Fault::OutOfMemory);
        }
        let lo = (page & !(WINDOW - 1)).max(start);
        let hi = ((page | (WINDOW - 1)) + 1).min(region.end);
        let mut new = Vec::new();
        let mut va = lo;
        while va < hi {
            if !self.pages.0.contains_key(&va) {
                match page_for(va, start, region) {
                    Ok(p) => new.push((va, p)),
                    Err(e) if va == page => {
                        new.into_iter().for_each(|(_, p)| let_go(p));
                        return Err(e);
                    }
                    Err(_) => {}
                }
            }
            va += PAGE_SIZE;
        }
        let leaves: Vec<(u64, u64, PteFlags)> =
            new.iter().map(|(va, p)| (*va, p.frame.addr(), flags(region.prot, p.hold))).collect();
        if self.space.set(&leaves).is_err() {
            new.into_iter().for_each(|(_, p)| let_go(p));
            return Err(Fault::OutOfMemory);
        }
        self.pages.0.extend(new);
        Ok(())
    }

    /// The first write to a page shared since `fork`: a copy of its own,
    /// or the same frame made writable when nobody else holds it any more.
    // Not inlined into `fault_access`: inlined, they happened to encode
    // `lmsw` at an unaligned offset there, which the image scanner refuses.
    #[inline(never)]
    fn break_cow(&mut self, page: u64, p: Page, prot: u8) -> Result<(), Fault> {
        let frame = if holders(p.frame) == 1 {
            p.frame
        } else {
            let copy = frames::alloc().ok_or(Fault::OutOfMemory)?;
            copy.copy_from(p.frame);
            copy
        };
        if self.space.set(&[(page, frame.addr(), flags(prot, Hold::Own))]).is_err() {
            if frame != p.frame {
                let_go(Page { frame, hold: Hold::Own });
            }
            return Err(Fault::OutOfMemory);
        }
        if frame != p.frame {
            let_go(p);
        }
        self.pages.0.insert(page, Page { frame, hold: Hold::Own });
        Ok(())
    }

    /// A copy for a child process: the same regions, every page shared,
    /// and the batch that makes it (to submit, with whatever else the fork
    /// changes, before the child runs). Private pages become copy-on-write
    /// in both, except those in `hot` (the pages both will write at once:
    /// the stack under the system call, the thread block), which the child
    /// gets copies of now, so neither takes a fault and a crossing for
    /// them. The child's root, the parent's write protection and the
    /// child's mappings are all in the batch: one crossing.
    pub fn fork(&mut self, hot: &[u64]) -> Result<(Memory, Batch), VmError> {
        // Two writes a page, and a few per table the child needs.
        let n = self.pages.0.len();
        let mut batch = Batch::with_capacity(2 * n + n / 64 + 64)?;
        let mut child = Memory::new_in(&mut batch)?;
        child.regions = self.regions.clone();
        child.regions.values().for_each(|r| hold_file(r.backing));
        // Every vector at its final size, fallibly: a fork of a large
        // process must fail with ENOMEM, not exhaust the heap while growing.
        let (mut parent_leaves, mut child_leaves) = (Vec::new(), Vec::new());
        parent_leaves.try_reserve_exact(n).map_err(|_| VmError::OutOfFrames)?;
        child_leaves.try_reserve_exact(n).map_err(|_| VmError::OutOfFrames)?;
        for (&va, p) in self.pages.0.iter_mut() {
            let prot = self.regions.range(..=va).next_back().map_or(0, |(_, r)| r.prot);
            if p.hold == Hold::Own
                && prot & PROT_WRITE != 0
                && hot.contains(&va)
                && let Some(copy) = frames::alloc()
            {
                copy.copy_from(p.frame);
                child.pages.0.insert(va, Page { frame: copy, hold: Hold::Own });
                child_leaves.push((va, copy.addr(), flags(prot, Hold::Own)));
                continue;
            }
            if p.hold == Hold::Own {
                p.hold = Hold::Cow;
                if prot & PROT_WRITE != 0 {
                    parent_leaves.push((va, p.frame.addr(), flags(prot, Hold::Cow)));
                }
            }
            share(p.frame);
            child.pages.0.insert(va, *p);
            child_leaves.push((va, p.frame.addr(), flags(prot, p.hold)));
        }
        self.space.stage_set(&mut batch, &parent_leaves)?;
        child.space.stage_set(&mut batch, &child_leaves)?;
        Ok((child, batch))
    }

    /// How many regions there are (`MAX_MAP_COUNT` bounds them).
    pub fn regions(&self) -> usize {
        self.regions.len()
    }

    /// How many pages are mapped now.
    pub fn resident(&self) -> usize {
        self.pages.0.len()
    }

    /// What the end of this memory would give back, in pages, for the
    /// out-of-memory choice: the frames no other process or file holds,
    /// and the kernel heap its page entries take. (Linux's `oom_badness`
    /// counts the resident set and the page tables; a page shared after
    /// `fork` is not counted here, since killing one holder frees nothing.)
    pub fn oom_score(&self) -> usize {
        let alone = crate::arch::without_interrupts(|| {
            let refs = REFS.lock();
            self.pages
                .0
                .values()
                .filter(|p| !matches!(p.hold, Hold::Shared(..)) && !refs.contains_key(&p.frame.number()))
                .count()
        });
        alone + self.pages.0.len() * super::HEAP_PER_PAGE as usize / PAGE_SIZE as usize
    }
}

/// What is left of a process's memory once its regions are gone: its
/// address space and its pages, whose frames must stay held until the
/// space's teardown has unmapped them.
pub struct Remains {
    space: AddressSpace,
    pages: Pages,
}

impl Memory {
    /// Lets go of the regions (and the files they map) now; the rest goes
    /// with `bury`, in the switch away from the space.
    pub fn retire(self) -> Remains {
        let Memory { space, regions, pages } = self;
        drop(regions);
        Remains { space, pages }
    }
}

/// Pages of spaces torn down, whose frames are let go of by `empty_graves`
/// in a process's own context: letting go may write a shared page back to
/// its file, which must not happen inside the scheduler.
static GRAVES: Mutex<Vec<Pages>> = Mutex::new(Vec::new());
/// Whether `GRAVES` may hold any: checked on every system call.
static BURIED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Tears the space down in one crossing that runs `carry` first (the
/// switch away from it, and the process-list write of the same exit); the
/// pages wait in `GRAVES`. Safe with interrupts off, inside the scheduler.
pub fn bury(remains: Remains, carry: Batch) {
    let Remains { mut space, pages } = remains;
    space.carry(carry);
    drop(space);
    crate::arch::without_interrupts(|| {
        GRAVES.lock().push(pages);
        BURIED.store(true, core::sync::atomic::Ordering::Release);
    });
}

/// Lets go of the frames of the spaces `bury` tore down; whether there
/// were any.
pub fn empty_graves() -> bool {
    if !BURIED.load(core::sync::atomic::Ordering::Acquire) {
        return false;
    }
    let graves = crate::arch::without_interrupts(|| {
        BURIED.store(false, core::sync::atomic::Ordering::Relaxed);
        core::mem::take(&mut *GRAVES.lock())
    });
    !graves.is_empty()
}

/// A file mapped by a region stays (unlinked or not) while the region does.
fn hold_file(b: Backing) {
    if let Backing::File { ino, .. } = b {
        let _ = crate::fs::with(|fs| fs.hold(ino));
    }
}

fn release_file(b: Backing) {
    if let Backing::File { ino, .. } = b {
        crate::fs::with(|fs| fs.release(ino));
    }
}

/// Whether the heap has room for a window's page entries: out of it is
/// out of memory, as out of frames is.
// Not inlined into `fill`: inlined, a jump there happened to encode
// `clts` (0f 06), which the image scanner refuses.
#[inline(never)]
fn heap_room_for_a_window() -> bool {
    crate::mm::heap::can_grow(WINDOW / PAGE_SIZE * super::HEAP_PER_PAGE)
}

/// Takes the entries of `[start, end)` out of `map`.
fn cut<V>(map: &mut BTreeMap<u64, V>, start: u64, end: u64) -> BTreeMap<u64, V> {
    let mut middle = map.split_off(&start);
    let mut rest = middle.split_off(&end);
    map.append(&mut rest);
    middle
}

/// A fresh page for `va` of `region` (which starts at `start`). A file
/// page wholly past the end of the file is `Bus`, as on Linux.
// Not inlined into `fault_access`: inlined, they happened to encode
// `lmsw` at an unaligned offset there, which the image scanner refuses.
#[inline(never)]
fn page_for(va: u64, start: u64, region: Region) -> Result<Page, Fault> {
    let frame = || frames::alloc().ok_or(Fault::OutOfMemory);
    match region.backing {
        Backing::Anon => {
            let f = frame()?;
            f.fill(0);
            Ok(Page { frame: f, hold: Hold::Own })
        }
        Backing::File { ino, offset, shared } => {
            let at = offset + (va - start);
            let size = crate::fs::with(|fs| fs.stat(ino).map(|st| st.size)).unwrap_or(0);
            if at >= size.next_multiple_of(PAGE_SIZE) {
                return Err(Fault::Bus);
            }
            if shared {
                let index = at / PAGE_SIZE;
                let f = shared_page(ino, index).ok_or(Fault::OutOfMemory)?;
                return Ok(Page { frame: f, hold: Hold::Shared(ino, index) });
            }
            let f = frame()?;
            load_page(f, ino, at);
            Ok(Page { frame: f, hold: Hold::Own })
        }
    }
}

/// Fills `f` with the file's bytes at `offset`, zeroes past its end.
fn load_page(f: Frame, ino: Ino, offset: u64) {
    let mut buf = [0u8; PAGE_SIZE as usize];
    let _ = crate::fs::with(|fs| fs.read(ino, offset, &mut buf));
    f.write_at(0, &buf);
}

/// Holders of each frame held more than once, beyond the first.
static REFS: Mutex<BTreeMap<u64, u32>> = Mutex::new(BTreeMap::new());

fn share(f: Frame) {
    crate::arch::without_interrupts(|| *REFS.lock().entry(f.number()).or_insert(0) += 1);
}

fn holders(f: Frame) -> u32 {
    crate::arch::without_interrupts(|| REFS.lock().get(&f.number()).map_or(1, |n| n + 1))
}

/// Drops one hold on `f`; true when it was the last.
fn unshare(f: Frame) -> bool {
    crate::arch::without_interrupts(|| {
        let mut refs = REFS.lock();
        match refs.get_mut(&f.number()) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                refs.remove(&f.number());
                false
            }
            None => true,
        }
    })
}

/// A process lets go of a page it no longer maps.
fn let_go(p: Page) {
    match p.hold {
        Hold::Shared(ino, index) => {
            unshare(p.frame);
            // The file's own hold is the last one: the page goes back.
            if holders(p.frame) == 1 {
                let gone = crate::arch::without_interrupts(|| SHARED.lock().remove(&(ino, index)));
                if let Some(f) = gone {
                    write_back(ino, index, f);
                    let _ = frames::free(f);
                }
            }
        }
        _ => {
            if unshare(p.frame) {
                let _ = frames::free(p.frame);
            }
        }
    }
}

/// The pages of files mapped `MAP_SHARED`, by (file, page index).
static SHARED: Mutex<BTreeMap<(Ino, u64), Frame>> = Mutex::new(BTreeMap::new());

/// File `ino`'s shared page `index`, held once more for a new mapping.
fn shared_page(ino: Ino, index: u64) -> Option<Frame> {
    crate::arch::without_interrupts(|| {
        let mut shared = SHARED.lock();
        let f = match shared.get(&(ino, index)) {
            Some(f) => *f,
            None => {
                let f = frames::alloc()?;
                load_page(f, ino, index * PAGE_SIZE);
                shared.insert((ino, index), f);
                f
            }
        };
        share(f);
        Some(f)
    })
}

/// Copies a shared page's bytes into the file, up to the file's end (a
/// mapping does not grow a file).
fn write_back(ino: Ino, index: u64, f: Frame) {
    let off = index * PAGE_SIZE;
    let bytes = crate::mm::frames::phys_slice(f.addr(), PAGE_SIZE);
    let _ = crate::fs::with(|fs| {
        let size = fs.stat(ino)?.size;
        if off < size {
            let n = (size - off).min(PAGE_SIZE) as usize;
            fs.write(ino, off, &bytes[..n])?;
        }
        Ok::<(), crate::fs::FsError>(())
    });
}

/// Before a `read` of `ino`: what its shared mappings wrote goes into it.
pub fn sync_to_file(ino: Ino) {
    crate::arch::without_interrupts(|| {
        for (&(_, index), &f) in SHARED.lock().range((ino, 0)..=(ino, u64::MAX)) {
            write_back(ino, index, f);
        }
    });
}

/// After a `write` or truncation of `ino`: its shared mappings see it.
pub fn sync_from_file(ino: Ino) {
    crate::arch::without_interrupts(|| {
        for (&(_, index), &f) in SHARED.lock().range((ino, 0)..=(ino, u64::MAX)) {
            load_page(f, ino, index * PAGE_SIZE);
        }
    });
}

/// Whether `[start, start + len)` is a page-aligned lower-half range.
pub fn valid_range(start: u64, len: u64) -> bool {
    start.is_multiple_of(PAGE_SIZE) && len > 0 && start.checked_add(len).is_some_and(|e| e <= USER_END)
}
