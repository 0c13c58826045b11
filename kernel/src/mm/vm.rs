//! Address spaces, built only through the nested kernel: every table is
//! declared and every entry written by an NK call, batched so that mapping
//! many pages costs one gate crossing, not one per entry.

use super::frames::{self, Frame};
use super::walk::{self, Translation};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use nk::api::{BatchOp, NkError};
use nk_model::layout::{PAGE_SIZE, USER_END, is_canonical, table_index};
use nk_model::pte::{Pte, PteFlags};
use nk_model::vmmu::TABLE_FLAGS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmError {
    OutOfFrames,
    /// Only the lower half belongs to an address space; the kernel half is
    /// the kernel root's.
    NotLowerHalf {
        va: u64,
    },
    AlreadyMapped {
        va: u64,
    },
    Nk(NkError),
}

impl From<NkError> for VmError {
    fn from(e: NkError) -> Self {
        Self::Nk(e)
    }
}

impl core::fmt::Display for VmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfFrames => f.write_str("out of physical frames"),
            Self::NotLowerHalf { va } => write!(f, "{va:#x} is not a lower-half page address"),
            Self::AlreadyMapped { va } => write!(f, "{va:#x} is already mapped"),
            Self::Nk(e) => write!(f, "{e}"),
        }
    }
}

/// A lower half of its own over the shared kernel half.
pub struct AddressSpace {
    root: Frame,
    /// Every table below the root, so they can be removed and freed.
    tables: Vec<Frame>,
    /// What the teardown's crossing runs first (see `carry`).
    carried: Option<Batch>,
}

/// Operations collected for one gate crossing, with the tables it declares
/// (not yet visible in memory, so walks consult them here). One batch may
/// change several address spaces (`fork` write-protects the parent's pages
/// and fills the child's in one crossing).
pub struct Batch {
    ops: Vec<BatchOp>,
    pending: BTreeMap<(u64, usize), u64>,
    /// Tables the batch declares: empty once it runs, whatever their frames
    /// hold now.
    fresh: BTreeSet<u64>,
    /// The sources of the batch's mediated writes: boxed, so they stay
    /// where the operations point while the batch grows.
    sources: Vec<alloc::boxed::Box<[u8]>>,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub fn new() -> Self {
        Self { ops: Vec::new(), pending: BTreeMap::new(), fresh: BTreeSet::new(), sources: Vec::new() }
    }

    /// A batch with room for `ops` operations, taken from the heap up
    /// front and fallibly (a large batch grown by doubling would need
    /// twice its size at the moment it moves).
    pub fn with_capacity(ops: usize) -> Result<Self, VmError> {
        let mut batch = Self::new();
        batch.ops.try_reserve_exact(ops).map_err(|_| VmError::OutOfFrames)?;
        Ok(batch)
    }

    /// Entry `index` of `table` as it will be when the batch runs.
    pub(super) fn entry(&self, table: u64, index: usize) -> Pte {
        if self.fresh.contains(&table) { Pte::from_bits(0) } else { walk::entry(table * PAGE_SIZE, index) }
    }

    pub(super) fn write(&mut self, table: u64, index: usize, pte: u64) {
        self.ops.push(BatchOp { kind: BatchOp::WRITE, a: table, b: index as u64, c: pte });
    }

    /// Adds a switch of this CPU, as `nk::api::switch`: each part `Some`
    /// only when it changes.
    pub fn switch(&mut self, rsp0: Option<u64>, fs_base: Option<u64>, root: Option<u64>) {
        let keep = |v: Option<u64>| v.unwrap_or(nk::api::KEEP);
        self.ops.push(BatchOp { kind: BatchOp::SWITCH, a: keep(rsp0), b: keep(fs_base), c: keep(root) });
    }

    /// Adds a write of `bytes` to NK-protected memory at `dst`, as
    /// `nk::api::nk_write` (its policy checked when the batch runs).
    pub fn nk_write(&mut self, dst: u64, bytes: &[u8]) {
        let source: alloc::boxed::Box<[u8]> = bytes.into();
        let src = nk::api::direct_map(source.as_ptr() as u64);
        self.ops.push(BatchOp { kind: BatchOp::NK_WRITE, a: dst, b: src, c: bytes.len() as u64 });
        self.sources.push(source);
    }

    /// Runs the batch: one gate crossing (none when it is empty).
    pub fn submit(self) -> Result<(), VmError> {
        if self.ops.is_empty() {
            return Ok(());
        }
        nk::api::write_ptes(&self.ops).map_err(VmError::Nk)
    }
}

impl AddressSpace {
    /// A new address space: a declared root with the kernel half in it.
    pub fn new() -> Result<Self, VmError> {
        let root = frames::alloc().ok_or(VmError::OutOfFrames)?;
        if let Err(e) = nk::api::declare_ptp(root.number(), 4) {
            let _ = frames::free(root);
            return Err(e.into());
        }
        Ok(Self { root, tables: Vec::new(), carried: None })
    }

    /// A new address space whose root `batch` declares (no crossing of its
    /// own): nothing may load or use it before the batch has run.
    pub fn new_in(batch: &mut Batch) -> Result<Self, VmError> {
        let root = frames::alloc().ok_or(VmError::OutOfFrames)?;
        batch.ops.push(BatchOp { kind: BatchOp::DECLARE, a: root.number(), b: 4, c: 0 });
        // Its lower half reads as empty once declared, whatever it holds now.
        batch.fresh.insert(root.number());
        Ok(Self { root, tables: Vec::new(), carried: None })
    }

    /// Makes the teardown, when this space is dropped, run `batch` first
    /// in the same crossing: the switch away from a space that is live in
    /// this CPU's CR3, so its root can go in that crossing too, and what
    /// else belongs to the same event.
    pub fn carry(&mut self, batch: Batch) {
        self.carried = Some(batch);
    }

    /// The root's frame number, for `nk::api::load_cr3`.
    pub fn root(&self) -> u64 {
        self.root.number()
    }

    pub fn translate(&self, va: u64) -> Option<Translation> {
        walk::translate(self.root.addr(), va)
    }

    /// Maps each `(va, pa)` page with leaf `flags`, declaring the tables it
    /// needs, in one batch. Refused as a whole if a page is already mapped
    /// or outside the lower half; the NK refuses what breaks its rules (in
    /// which case the operations before the refused one stay applied and
    /// the space stays consistent; drop it to clean up).
    pub fn map(&mut self, pages: &[(u64, u64)], flags: PteFlags) -> Result<(), VmError> {
        let mut batch = Batch::new();
        let mut new_tables = Vec::new();
        for &(va, pa) in pages {
            if !va.is_multiple_of(PAGE_SIZE) || va >= USER_END || !is_canonical(va) {
                return Err(VmError::NotLowerHalf { va });
            }
            let table = self.walk_or_create(va, &mut batch, &mut new_tables)?;
            let index = table_index(va, 1);
            if batch.entry(table, index).is_present() {
                give_back(new_tables);
                return Err(VmError::AlreadyMapped { va });
            }
            batch.write(table, index, Pte::new(pa, flags | PteFlags::PRESENT).bits());
        }
        let result = batch.submit();
        // Declared or not, the frames are the space's now: `Drop` removes
        // and frees them whatever the NK accepted.
        self.tables.extend(new_tables);
        result
    }

    /// Maps `frame` at `va` as kernel code (read-only, supervisor,
    /// executable) after the NK has vetted it. Once accepted the frame is
    /// code: the caller must not free it until it is unmapped everywhere
    /// and `nk::api::release_code` has made it data again.
    pub fn map_code(&mut self, va: u64, frame: Frame) -> Result<(), VmError> {
        if !va.is_multiple_of(PAGE_SIZE) || va >= USER_END || !is_canonical(va) {
            return Err(VmError::NotLowerHalf { va });
        }
        let mut batch = Batch::new();
        let mut new_tables = Vec::new();
        let table = self.walk_or_create(va, &mut batch, &mut new_tables)?;
        if batch.entry(table, table_index(va, 1)).is_present() {
            give_back(new_tables);
            return Err(VmError::AlreadyMapped { va });
        }
        let tables = batch.submit();
        self.tables.extend(new_tables);
        tables?;
        nk::api::map_code(table, table_index(va, 1), Pte::new(frame.addr(), PteFlags::PRESENT).bits())?;
        Ok(())
    }

    /// Removes the mappings of `vas` (pages not mapped are skipped).
    pub fn unmap(&mut self, vas: &[u64]) -> Result<(), VmError> {
        let mut batch = Batch::new();
        self.stage_unmap(&mut batch, vas);
        batch.submit()
    }

    /// Adds the removal of `vas` to `batch`.
    pub fn stage_unmap(&self, batch: &mut Batch, vas: &[u64]) {
        for &va in vas {
            if let Some(table) = self.leaf_table(va)
                && walk::entry(table * PAGE_SIZE, table_index(va, 1)).is_present()
            {
                batch.write(table, table_index(va, 1), 0);
            }
        }
    }

    /// Adds to `batch` the leaves `(va, pa, flags)`, present or not before
    /// (a mapping changes its frame or its rights), declaring the tables
    /// they need. The tables are the space's from now on, whatever the
    /// batch's fate: `Drop` removes and frees them.
    pub fn stage_set(&mut self, batch: &mut Batch, leaves: &[(u64, u64, PteFlags)]) -> Result<(), VmError> {
        let mut new_tables = Vec::new();
        for &(va, pa, flags) in leaves {
            if !va.is_multiple_of(PAGE_SIZE) || va >= USER_END || !is_canonical(va) {
                self.tables.extend(new_tables);
                return Err(VmError::NotLowerHalf { va });
            }
            let table = match self.walk_or_create(va, batch, &mut new_tables) {
                Ok(t) => t,
                Err(e) => {
                    self.tables.extend(new_tables);
                    return Err(e);
                }
            };
            batch.write(table, table_index(va, 1), Pte::new(pa, flags | PteFlags::PRESENT).bits());
        }
        self.tables.extend(new_tables);
        Ok(())
    }

    /// Sets the leaves `(va, pa, flags)` in one crossing (see `stage_set`).
    pub fn set(&mut self, leaves: &[(u64, u64, PteFlags)]) -> Result<(), VmError> {
        let mut batch = Batch::new();
        self.stage_set(&mut batch, leaves)?;
        batch.submit()
    }

    /// The level-1 table for `va`, if the levels above exist.
    fn leaf_table(&self, va: u64) -> Option<u64> {
        leaf_table(self.root.number(), va)
    }

    fn walk_or_create(&self, va: u64, batch: &mut Batch, new_tables: &mut Vec<Frame>) -> Result<u64, VmError> {
        walk_or_create(self.root.number(), va, batch, new_tables)
    }

    /// Clears every lower-half entry, removes every table and the root, in
    /// one batch, after what it carries. Frames the NK did not hand back
    /// are leaked, not reused.
    fn tear_down(&mut self) -> Result<(), VmError> {
        let mut batch = self.carried.take().unwrap_or_default();
        for table in self.tables.iter().chain([&self.root]) {
            let entries = if *table == self.root { 0..256 } else { 0..512 };
            for index in entries {
                if walk::entry(table.addr(), index).bits() != 0 {
                    batch.write(table.number(), index, 0);
                }
            }
        }
        for table in self.tables.iter().chain([&self.root]) {
            batch.ops.push(BatchOp { kind: BatchOp::REMOVE, a: table.number(), b: 0, c: 0 });
        }
        batch.submit()
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        match self.tear_down() {
            Ok(()) => {
                for f in self.tables.drain(..).chain([self.root]) {
                    let _ = frames::free(f);
                }
            }
            Err(e) => crate::println!("vm: address space {:#x} not torn down ({e}); its frames leak", self.root.addr()),
        }
    }
}

/// The level-1 table for `va` under the root `root` (a frame number), if
/// the levels above exist.
pub(super) fn leaf_table(root: u64, va: u64) -> Option<u64> {
    let mut table = root;
    for level in (2..=4u8).rev() {
        let e = walk::entry(table * PAGE_SIZE, table_index(va, level));
        if !e.is_present() || e.is_huge() {
            return None;
        }
        table = e.addr() / PAGE_SIZE;
    }
    Some(table)
}

/// The level-1 table for `va` under the root `root`, with the batch's
/// pending tables; a missing level is a fresh frame, declared and linked in
/// `batch` and added to `new_tables` (all of them given back on failure).
pub(super) fn walk_or_create(
    root: u64,
    va: u64,
    batch: &mut Batch,
    new_tables: &mut Vec<Frame>,
) -> Result<u64, VmError> {
    let mut table = root;
    for level in (2..=4u8).rev() {
        let index = table_index(va, level);
        let e = batch.entry(table, index);
        table = if let Some(&child) = batch.pending.get(&(table, index)) {
            child
        } else if e.is_present() {
            if e.is_huge() {
                return Err(VmError::AlreadyMapped { va });
            }
            e.addr() / PAGE_SIZE
        } else {
            let Some(frame) = frames::alloc() else {
                give_back(core::mem::take(new_tables));
                return Err(VmError::OutOfFrames);
            };
            new_tables.push(frame);
            let child = frame.number();
            batch.ops.push(BatchOp { kind: BatchOp::DECLARE, a: child, b: u64::from(level - 1), c: 0 });
            batch.write(table, index, Pte::new(child * PAGE_SIZE, TABLE_FLAGS).bits());
            batch.pending.insert((table, index), child);
            batch.fresh.insert(child);
            child
        };
    }
    Ok(table)
}

/// Frees frames that were allocated for tables never submitted.
fn give_back(frames_: Vec<Frame>) {
    for f in frames_ {
        let _ = frames::free(f);
    }
}

/// Runs `f` with `space` loaded in this CPU's CR3, then the kernel root again.
pub fn with_space<R>(space: &AddressSpace, f: impl FnOnce() -> R) -> Result<R, VmError> {
    crate::arch::without_interrupts(|| {
        nk::api::load_cr3(space.root())?;
        let r = f();
        nk::api::load_cr3(nk::api::kernel_root())?;
        Ok(r)
    })
}

crate::ktest!(
    fn address_space_maps_through_the_nk() {
        let mut space = AddressSpace::new().map_err(|e| alloc::format!("{e}"))?;
        let frames_: Vec<Frame> = (0..3).map(|_| frames::alloc().expect("frame")).collect();
        for (i, f) in frames_.iter().enumerate() {
            f.fill(0x41 + i as u8);
        }
        let base = 0x4000_0000u64;
        let pages: Vec<(u64, u64)> =
            frames_.iter().enumerate().map(|(i, f)| (base + i as u64 * PAGE_SIZE, f.addr())).collect();
        let crossings = nk::api::gate_crossings();
        space.map(&pages, PteFlags::WRITABLE | PteFlags::NO_EXECUTE).map_err(|e| alloc::format!("map: {e}"))?;
        let used = nk::api::gate_crossings() - crossings;
        if nk::BACKEND != "native" {
            crate::kassert!(used == 1, "mapping 3 pages and 3 tables took {} gate crossings", used);
        }
        let t = space.translate(base + PAGE_SIZE).ok_or("page not mapped")?;
        crate::kassert!(t.phys == frames_[1].addr() && t.writable && !t.executable && !t.user);
        let seen = with_space(&space, || walk::read_u8(base + 2 * PAGE_SIZE)).map_err(|e| alloc::format!("{e}"))?;
        crate::kassert!(seen == Some(0x43), "read {:?} through the new address space", seen);
        space.unmap(&[base]).map_err(|e| alloc::format!("unmap: {e}"))?;
        crate::kassert!(space.translate(base).is_none());
        drop(space);
        for f in frames_ {
            frames::free(f).map_err(|_| "free")?;
        }
        if let Ok(report) = nk::api::audit() {
            crate::kassert!(report.violations == 0, "audit after teardown: {:?}", report.first[0]);
        }
        Ok(())
    }
);

crate::ktest!(
    fn vetted_code_runs_from_a_new_address_space() {
        let mut space = AddressSpace::new().map_err(|e| alloc::format!("{e}"))?;
        let frame = frames::alloc().ok_or("frame")?;
        frame.fill(0xcc);
        // mov eax, 0x1234; ret
        frame.write_at(0, &[0xb8, 0x34, 0x12, 0, 0, 0xc3]);
        let va = 0x6000_0000;
        space.map_code(va, frame).map_err(|e| alloc::format!("map_code: {e}"))?;
        let t = space.translate(va).ok_or("not mapped")?;
        crate::kassert!(t.executable && !t.writable && !t.user);
        if nk::BACKEND != "native" {
            crate::kassert_eq!(nk::api::frame_kind(frame.number()), Some(nk::FrameKind::Code));
            let alias = walk::translate(walk::current_root(), nk::layout::phys_to_virt(frame.addr())).ok_or("alias")?;
            crate::kassert!(!alias.writable, "a vetted frame's alias stays writable");
        }
        let r = with_space(&space, || crate::ktest::call_code(va)).map_err(|e| alloc::format!("{e}"))?;
        crate::kassert_eq!(r, 0x1234);
        // Not released: code on the protected kernel, so never freed.
        Ok(())
    }
);

crate::ktest!(
    fn released_code_is_zeroed_writable_data_again() {
        let mut space = AddressSpace::new().map_err(|e| alloc::format!("{e}"))?;
        let frame = frames::alloc().ok_or("frame")?;
        frame.fill(0xcc);
        // mov eax, 0x4321; ret
        frame.write_at(0, &[0xb8, 0x21, 0x43, 0, 0, 0xc3]);
        let va = 0x6000_0000;
        space.map_code(va, frame).map_err(|e| alloc::format!("map_code: {e}"))?;
        let r = with_space(&space, || crate::ktest::call_code(va)).map_err(|e| alloc::format!("{e}"))?;
        crate::kassert_eq!(r, 0x4321);
        if nk::BACKEND != "native" {
            let refused = nk::api::release_code(frame.number());
            let still = nk::api::NkError::Vmmu {
                error: nk::VmmuError::StillMapped { pfn: frame.number(), refs: 2 },
                index: None,
            };
            crate::kassert!(refused == Err(still), "released while mapped: {:?}", refused);
            crate::kassert_eq!(nk::api::frame_kind(frame.number()), Some(nk::FrameKind::Code));
        }
        space.unmap(&[va]).map_err(|e| alloc::format!("unmap: {e}"))?;
        nk::api::release_code(frame.number()).map_err(|e| alloc::format!("release_code: {e}"))?;
        if nk::BACKEND != "native" {
            crate::kassert_eq!(nk::api::frame_kind(frame.number()), Some(nk::FrameKind::Data));
        }
        let alias = nk::layout::phys_to_virt(frame.addr());
        let t = walk::translate(walk::current_root(), alias).ok_or("alias")?;
        crate::kassert!(t.writable && !t.executable, "a released frame's alias is not writable data");
        let zeroed = (0..PAGE_SIZE).all(|i| walk::read_u8(alias + i) == Some(0));
        crate::kassert!(zeroed, "a released frame was not zeroed");
        frame.fill(0x5a);
        drop(space);
        frames::free(frame).map_err(|_| "free")?;
        if let Ok(report) = nk::api::audit() {
            crate::kassert!(report.violations == 0, "audit after release: {:?}", report.first[0]);
        }
        Ok(())
    }
);

crate::ktest!(
    fn a_mapped_page_is_refused_twice() {
        let mut space = AddressSpace::new().map_err(|e| alloc::format!("{e}"))?;
        let f = frames::alloc().ok_or("frame")?;
        let page = [(0x1000u64, f.addr())];
        space.map(&page, PteFlags::NO_EXECUTE).map_err(|e| alloc::format!("{e}"))?;
        let again = space.map(&page, PteFlags::NO_EXECUTE);
        crate::kassert!(again == Err(VmError::AlreadyMapped { va: 0x1000 }), "{:?}", again);
        crate::kassert!(space.map(&[(USER_END, f.addr())], PteFlags::empty()).is_err());
        drop(space);
        frames::free(f).map_err(|_| "free")?;
        Ok(())
    }
);
