//! The vMMU inside the NK: the rules of `nk_model::vmmu` applied to the
//! machine's real page tables, reached through the direct map, behind one
//! lock. The `native` backend keeps the interface and drops the rules.

use crate::layout::{DIRECT_MAP_BASE, PAGE_SIZE, phys_to_virt};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use nk_model::vmmu::{
    BatchError, Entry, FrameDesc, Op, PhysMem, RawLevel, RawPfn, RawPte, Report, Vmmu, VmmuError, index_from_word,
};

/// Most operations one `write_ptes` call applies: the NK runs with
/// interrupts off, so a call must stay short.
pub const MAX_BATCH: u64 = 4096;

/// One operation of a batch, as the outer kernel lays it out in its memory.
/// `kind`: 1 declare (`a` frame, `b` level), 2 remove (`a` frame), 3 write
/// (`a` table frame, `b` index, `c` entry); and two that are not the
/// vMMU's, so one crossing can carry a whole event (a fork, an exit and
/// the switch after it): 4 switch (`a` kernel stack, `b` FS base, `c` root,
/// as the `switch` operation), 5 mediated write (`a` destination, `b`
/// source, `c` length, as `nk_write`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchOp {
    pub kind: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
}

impl BatchOp {
    pub const DECLARE: u64 = Entry::DECLARE;
    pub const REMOVE: u64 = Entry::REMOVE;
    pub const WRITE: u64 = Entry::WRITE;
    pub const SWITCH: u64 = Entry::SWITCH;
    pub const NK_WRITE: u64 = Entry::NK_WRITE;

    fn decode(self) -> Option<Entry> {
        Entry::decode(self.kind, self.a, self.b, self.c)
    }
}

/// Physical memory as the NK reaches it: through the direct map. Every
/// frame of RAM has a present 4 KiB alias there, in tables pinned at boot,
/// so the outer kernel cannot redirect what the NK reads or writes.
pub(crate) struct DirectMap;

fn entry_ptr(table: u64, index: usize) -> *mut u64 {
    (phys_to_virt(table * PAGE_SIZE) as *mut u64).wrapping_add(index % 512)
}

impl PhysMem for DirectMap {
    fn read_entry(&self, table: u64, index: usize) -> u64 {
        // SAFETY: the vMMU passes frames of RAM only (inside the frame
        // table), which the direct map covers; the index is kept in the frame.
        unsafe { entry_ptr(table, index).read_volatile() }
    }

    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as in `read_entry`; the NK runs with protection lifted, so
        // the read-only alias of a page table can be written.
        unsafe { entry_ptr(table, index).write_volatile(value) }
    }

    fn zero_frame(&mut self, pfn: u64) {
        // SAFETY: as in `write_entry`, for the whole frame.
        unsafe { core::ptr::write_bytes(entry_ptr(pfn, 0), 0, 512) }
    }

    fn flush_tlb(&mut self) {
        // One CPU runs the outer kernel today; a second one will need a
        // shootdown here before it may run (docs/vmmu.md).
        crate::sites::flush_tlb_all();
    }
}

/// A spin lock for NK state. Interrupts are off inside the NK and a nested
/// entry on the same CPU is refused by the gate, so it never self-deadlocks.
pub(crate) struct NkLock<T> {
    held: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: `with` hands out the value to one holder at a time.
unsafe impl<T: Send> Sync for NkLock<T> {}

impl<T> NkLock<T> {
    pub const fn new(value: T) -> Self {
        Self { held: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        while self.held.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            core::hint::spin_loop();
        }
        // SAFETY: the flag is ours until the store below.
        let r = f(unsafe { &mut *self.value.get() });
        self.held.store(false, Ordering::Release);
        r
    }
}

/// The vMMU and the auditor's scratch space (one count per frame).
pub(crate) struct State {
    pub vmmu: Vmmu<'static>,
    pub scratch: &'static mut [u32],
    /// The frame table's direct-map address.
    pub table_va: u64,
}

static STATE: NkLock<Option<State>> = NkLock::new(None);

/// The kernel root's frame number, for the outer kernel to switch back to.
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);
static FRAMES: AtomicU64 = AtomicU64::new(0);
/// Where the frame table is, for `frame_kind` (read-only to outer code).
static FRAME_TABLE: AtomicU64 = AtomicU64::new(0);

/// Installs the vMMU the boot code built. Once.
pub(crate) fn install(state: State) {
    KERNEL_ROOT.store(state.vmmu.kernel_root().unwrap_or(0), Ordering::Relaxed);
    FRAMES.store(state.vmmu.frames_len() as u64, Ordering::Relaxed);
    FRAME_TABLE.store(state.table_va, Ordering::Relaxed);
    STATE.with(|s| {
        if s.is_some() {
            crate::console::fatal("nk: vMMU installed twice");
        }
        *s = Some(state);
    });
}

pub fn kernel_root() -> u64 {
    KERNEL_ROOT.load(Ordering::Relaxed)
}

/// Frames in the frame table: RAM up to its highest address.
pub fn frame_count() -> u64 {
    FRAMES.load(Ordering::Relaxed)
}

/// What the frame table says frame `pfn` is (`None` beyond RAM). A snapshot:
/// the NK may change it right after. For fault reports and tests.
pub fn frame_kind(pfn: u64) -> Option<nk_model::vmmu::FrameKind> {
    let base = FRAME_TABLE.load(Ordering::Relaxed);
    if base == 0 || pfn >= frame_count() {
        return None;
    }
    // SAFETY: the frame table lies in the direct map, readable everywhere,
    // and has `frame_count()` descriptors; every bit pattern reads as some kind.
    let desc = unsafe { (base as *const FrameDesc).add(pfn as usize).read_volatile() };
    Some(desc.kind())
}

fn with_vmmu<R>(f: impl FnOnce(&mut State, &mut DirectMap) -> R) -> R {
    STATE.with(|s| match s {
        Some(state) => {
            let mut mem = DirectMap;
            let r = f(state, &mut mem);
            // Whatever happened, no stale translation outlives the call (I10).
            state.vmmu.finish(&mut mem);
            r
        }
        None => crate::console::fatal("nk: vMMU used before boot built it"),
    })
}

/// Why a batch stopped: a rule, or an operation kind that does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchFailure {
    Rule(BatchError),
    BadKind {
        index: usize,
    },
    /// The buffer is not inside the direct map of RAM, or is too long.
    BadBuffer,
}

/// The operations of a batch, copied one by one out of the outer kernel's
/// memory before each is checked, so changing them meanwhile gains nothing.
/// It yields the vMMU's operations; at a switch or a mediated write it
/// stops and keeps that operation (its copy) for the caller to apply.
pub(crate) struct BatchReader {
    next: u64,
    left: u64,
    index: usize,
    bad_kind: Option<usize>,
    other: Option<Entry>,
}

impl BatchReader {
    /// A reader over `count` operations at `ptr`, if the buffer is one the
    /// NK reads batches from.
    pub(crate) fn open(ptr: u64, count: u64) -> Result<Self, BatchFailure> {
        if !check_batch_buffer(ptr, count) {
            return Err(BatchFailure::BadBuffer);
        }
        Ok(Self { next: ptr, left: count, index: 0, bad_kind: None, other: None })
    }

    /// Where the vMMU's run stopped: the end (`None`), a kind that does
    /// not exist, or an operation of another service (its copy).
    fn stop(&mut self) -> Result<Option<Entry>, BatchFailure> {
        match (self.bad_kind, self.other.take()) {
            (Some(index), _) => Err(BatchFailure::BadKind { index }),
            (None, Some(op)) => Ok(Some(op)),
            (None, None) => Ok(None),
        }
    }
}

impl Iterator for BatchReader {
    type Item = Op;
    fn next(&mut self) -> Option<Op> {
        if self.left == 0 || self.bad_kind.is_some() || self.other.is_some() {
            return None;
        }
        // SAFETY: `check_batch_buffer` showed the whole buffer lies in the
        // direct map of RAM, which is always mapped and readable.
        let raw = unsafe { (self.next as *const BatchOp).read_volatile() };
        self.next += size_of::<BatchOp>() as u64;
        self.left -= 1;
        self.index += 1;
        match raw.decode() {
            Some(Entry::Vmmu(op)) => return Some(op),
            Some(other) => self.other = Some(other),
            None => self.bad_kind = Some(self.index - 1),
        }
        None
    }
}

fn check_batch_buffer(ptr: u64, count: u64) -> bool {
    let ram_end = DIRECT_MAP_BASE + frame_count() * PAGE_SIZE;
    let end = count.checked_mul(size_of::<BatchOp>() as u64).and_then(|len| ptr.checked_add(len));
    count <= MAX_BATCH && ptr.is_multiple_of(8) && ptr >= DIRECT_MAP_BASE && end.is_some_and(|end| end <= ram_end)
}

#[cfg(not(feature = "native"))]
mod ops {
    use super::*;

    pub fn declare(pfn: u64, level: u64) -> Result<(), VmmuError> {
        with_vmmu(|s, m| s.vmmu.declare_ptp(m, RawPfn(pfn), RawLevel::from_word(level)))
    }

    pub fn remove(pfn: u64) -> Result<(), VmmuError> {
        with_vmmu(|s, m| s.vmmu.remove_ptp(m, RawPfn(pfn)))
    }

    pub fn write(table: u64, index: u64, pte: u64) -> Result<(), VmmuError> {
        with_vmmu(|s, m| s.vmmu.write_pte(m, RawPfn(table), index_from_word(index), RawPte(pte)))
    }

    pub fn map_code(table: u64, index: u64, pte: u64) -> Result<(), VmmuError> {
        with_vmmu(|s, m| s.vmmu.map_code(m, RawPfn(table), index_from_word(index), RawPte(pte)))
    }

    pub fn release_code(pfn: u64) -> Result<(), VmmuError> {
        with_vmmu(|s, m| s.vmmu.release_code(m, RawPfn(pfn)))
    }

    /// Applies the batch's vMMU operations up to its end or to the next
    /// operation of another service, which it returns for the caller to
    /// apply before calling again.
    pub fn write_batch(reader: &mut BatchReader) -> Result<Option<Entry>, BatchFailure> {
        let base = reader.index;
        with_vmmu(|s, m| s.vmmu.apply_ops(m, &mut *reader))
            .map_err(|e| BatchFailure::Rule(BatchError { index: base + e.index, ..e }))?;
        reader.stop()
    }

    pub fn load_cr3(root: u64) -> Result<(), VmmuError> {
        let cpu = crate::percpu::current();
        with_vmmu(|s, _| {
            let pfn = s.vmmu.load_cr3(cpu, RawPfn(root))?;
            // SAFETY: a declared level-4 table holds the kernel half, whose
            // entries point at pinned tables: it maps the NK and the kernel
            // exactly as the kernel root does.
            unsafe { crate::cr3::load(pfn * PAGE_SIZE) };
            Ok(())
        })
    }

    pub fn flush() {
        crate::sites::flush_tlb_all();
    }

    /// Makes frames `first..first + count` write-mediated: all checked
    /// before any changes, so a refusal leaves every frame as it was.
    pub fn protect(first: u64, count: u64) -> Result<(), VmmuError> {
        with_vmmu(|s, m| {
            for pfn in first..first + count {
                s.vmmu.check_protect(m, pfn)?;
            }
            for pfn in first..first + count {
                s.vmmu.protect(m, pfn)?;
            }
            Ok(())
        })
    }

    /// Gives write-mediated frames back as writable outer-kernel data.
    pub fn unprotect(first: u64, count: u64) -> Result<(), VmmuError> {
        with_vmmu(|s, m| (first..first + count).try_for_each(|pfn| s.vmmu.unprotect(m, pfn)))
    }

    /// Runs the invariant checker over every declared table.
    pub fn audit() -> Option<Report> {
        Some(with_vmmu(|s, m| nk_model::vmmu::check(&s.vmmu, m, s.scratch)))
    }
}

/// The unprotected baseline: the same calls, no rule checked, no frame
/// table kept. What a kernel without a nested kernel does.
#[cfg(feature = "native")]
mod ops {
    use super::*;
    use core::sync::atomic::AtomicBool;

    /// Set when a write replaced a present entry: flush before returning,
    /// as any kernel must.
    static STALE: AtomicBool = AtomicBool::new(false);

    fn apply(m: &mut DirectMap, op: Op) {
        match op {
            Op::Declare(pfn, level) => {
                m.zero_frame(pfn.0);
                if level.0 == 4 {
                    for i in 256..512 {
                        m.write_entry(pfn.0, i, m.read_entry(kernel_root(), i));
                    }
                }
            }
            Op::Remove(_) => {}
            Op::Write(table, index, pte) => {
                if m.read_entry(table.0, index) & 1 != 0 {
                    STALE.store(true, Ordering::Relaxed);
                }
                m.write_entry(table.0, index, pte.0);
            }
        }
    }

    fn finish() {
        if STALE.swap(false, Ordering::Relaxed) {
            crate::sites::flush_tlb_all();
        }
    }

    pub fn declare(pfn: u64, level: u64) -> Result<(), VmmuError> {
        apply(&mut DirectMap, Op::Declare(RawPfn(pfn), RawLevel::from_word(level)));
        Ok(())
    }

    pub fn remove(_pfn: u64) -> Result<(), VmmuError> {
        Ok(())
    }

    /// No vetting: whatever the frame holds becomes executable.
    pub fn map_code(table: u64, index: u64, pte: u64) -> Result<(), VmmuError> {
        write(table, index, pte)
    }

    /// No check: the frame is zeroed, as the call promises (like `declare`
    /// here), even under mappings that still execute it; the outer kernel
    /// can write it anyway, its alias never was read-only.
    pub fn release_code(pfn: u64) -> Result<(), VmmuError> {
        DirectMap.zero_frame(pfn);
        Ok(())
    }

    pub fn write(table: u64, index: u64, pte: u64) -> Result<(), VmmuError> {
        apply(&mut DirectMap, Op::Write(RawPfn(table), index_from_word(index), RawPte(pte)));
        finish();
        Ok(())
    }

    pub fn write_batch(reader: &mut BatchReader) -> Result<Option<Entry>, BatchFailure> {
        for op in &mut *reader {
            apply(&mut DirectMap, op);
        }
        finish();
        reader.stop()
    }

    pub fn load_cr3(root: u64) -> Result<(), VmmuError> {
        // SAFETY: none: the native backend trusts the outer kernel, which is
        // what makes it the unprotected baseline.
        unsafe { crate::cr3::load(root * PAGE_SIZE) };
        Ok(())
    }

    pub fn flush() {
        crate::sites::flush_tlb_all();
    }

    /// Nothing to protect: the native backend's regions stay writable.
    pub fn protect(_first: u64, _count: u64) -> Result<(), VmmuError> {
        Ok(())
    }

    pub fn unprotect(_first: u64, _count: u64) -> Result<(), VmmuError> {
        Ok(())
    }

    /// The native backend keeps no frame table to audit against.
    pub fn audit() -> Option<Report> {
        None
    }
}

pub(crate) use ops::*;

/// The frame table's memory as boot carved it: zeroed, so all `DATA`.
///
/// # Safety
/// `[phys, phys + 8 * frames)` must be RAM that nothing else uses for the
/// rest of the kernel's life, mapped by the direct map, and zeroed.
pub(crate) unsafe fn frame_table(phys: u64, frames: usize) -> &'static mut [FrameDesc] {
    // SAFETY: the caller gives exclusive, zeroed, mapped memory; all-zero
    // bytes are `FrameDesc::DATA`, a valid descriptor.
    unsafe { core::slice::from_raw_parts_mut(phys_to_virt(phys) as *mut FrameDesc, frames) }
}

/// The auditor's scratch counts, as `frame_table`.
///
/// # Safety
/// As `frame_table`, for `[phys, phys + 4 * frames)`.
pub(crate) unsafe fn scratch(phys: u64, frames: usize) -> &'static mut [u32] {
    // SAFETY: as in `frame_table`; any bytes are a valid `u32`.
    unsafe { core::slice::from_raw_parts_mut(phys_to_virt(phys) as *mut u32, frames) }
}
