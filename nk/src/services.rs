//! Write-mediation services (I11): protected regions, `nk_write` under each
//! region's policy, the write log of write-logged regions and the
//! hash-chained system-call audit log. Everything here lies in NK data,
//! read-only to the outer kernel, which reads the logs in place.

use crate::layout::{DIRECT_MAP_BASE, PAGE_SIZE};
use crate::vmmu::{self, NkLock, frame_count};
use core::cell::UnsafeCell;
use nk_model::chain::{AuditEntry, AuditHead, AuditRecord, WriteRecord};
use nk_model::mediate::{Backing, MAX_LOGGED_WRITE, MediateError, Policy, Region, Regions};
use nk_model::monitor::Monitor;
use nk_model::vmmu::VmmuError;

/// The arena `nk_alloc` hands out.
pub const ARENA_SIZE: usize = 64 * 1024;
/// Records the write log keeps; older ones are folded into the shadows.
pub const WRITE_LOG_LEN: usize = 256;
/// Records the audit log keeps; older ones are dropped, counted, and
/// anchored (see `AuditHead`).
pub const AUDIT_LOG_LEN: usize = 2048;

/// Memory only the NK writes. Outer code reads it through the accessors
/// below, never while an NK call that writes it is running: NK calls run
/// with interrupts off, on the one CPU the outer kernel uses.
struct Shared<T>(UnsafeCell<T>);

// SAFETY: written only under `STATE`'s lock inside the NK; see the type.
unsafe impl<T> Sync for Shared<T> {}

#[repr(C, align(4096))]
struct Arena([u8; ARENA_SIZE]);

static ARENA: Shared<Arena> = Shared(UnsafeCell::new(Arena([0; ARENA_SIZE])));
static WRITE_LOG: Shared<[WriteRecord; WRITE_LOG_LEN]> = Shared(UnsafeCell::new(
    [WriteRecord { seq: 0, caller: 0, dst: 0, len: 0, old: [0; 32], new: [0; 32] }; WRITE_LOG_LEN],
));
static AUDIT_LOG: Shared<[AuditRecord; AUDIT_LOG_LEN]> = Shared(UnsafeCell::new(
    [AuditRecord { seq: 0, entry: AuditEntry { pid: 0, nr: 0, args: [0; 6], result: 0, flags: 0 }, hash: 0 };
        AUDIT_LOG_LEN],
));

/// The write log's counts: records ever written, and folded away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct WriteLogHead {
    pub next_seq: u64,
    pub dropped: u64,
}

/// The region table and the two heads: NK data, which outer readers read
/// in place (see `Shared`).
struct State {
    regions: Option<Regions>,
    write_head: WriteLogHead,
    audit_head: AuditHead,
    /// Whether the outer kernel should audit, here so that no outer store
    /// can switch it (only `audit_switch`, which leaves a record).
    monitor: Monitor,
}

static STATE: Shared<State> = Shared(UnsafeCell::new(State {
    regions: None,
    write_head: WriteLogHead { next_seq: 0, dropped: 0 },
    audit_head: AuditHead { next_seq: 0, dropped: 0, anchor: 0, head: 0 },
    monitor: Monitor { on: false, locked: false },
}));
static LOCK: NkLock<()> = NkLock::new(());

/// The native build keeps the books and the logs but drops the rules.
const ENFORCE: bool = cfg!(not(feature = "native"));

fn arena_base() -> u64 {
    ARENA.0.get() as u64
}

/// Runs `f` on the region table and the two heads, under the lock. Hot:
/// every audited system call comes through here, so nothing is copied.
fn with_state<R>(f: impl FnOnce(&mut Regions, &mut WriteLogHead, &mut AuditHead) -> R) -> R {
    LOCK.with(|()| {
        // SAFETY: inside the NK, under the lock; see `Shared`.
        let s = unsafe { &mut *STATE.0.get() };
        let regions = s.regions.get_or_insert_with(fresh_regions);
        f(regions, &mut s.write_head, &mut s.audit_head)
    })
}

/// An empty region table. Not inlined: unrolled into the caller, its stores
/// to each slot of `STATE` carried RIP-relative displacements that encoded
/// `mov dr0` (0f 23) at an unaligned offset, which the scan refuses in NK
/// text as in outer text.
#[inline(never)]
fn fresh_regions() -> Regions {
    Regions::new(arena_base(), ARENA_SIZE as u64)
}

fn state() -> &'static State {
    // SAFETY: see `Shared`: no NK call writes it while outer code runs.
    unsafe { &*STATE.0.get() }
}

/// A range of the direct map of RAM, or `NotRam`.
fn check_ram(addr: u64, len: u64) -> Result<(), MediateError> {
    let ram_end = DIRECT_MAP_BASE + frame_count() * PAGE_SIZE;
    let end = addr.checked_add(len);
    if addr >= DIRECT_MAP_BASE && end.is_some_and(|e| e <= ram_end) {
        Ok(())
    } else {
        Err(MediateError::NotRam { addr })
    }
}

/// Why a service call was refused.
pub enum Refusal {
    Rule(MediateError),
    Frame(VmmuError),
}

impl From<MediateError> for Refusal {
    fn from(e: MediateError) -> Self {
        Self::Rule(e)
    }
}

pub(crate) fn alloc(len: u64, policy: u64) -> Result<u64, Refusal> {
    let policy = Policy::from_raw(policy).ok_or(MediateError::BadPolicy { raw: policy })?;
    with_state(|regions, _, _| {
        let region = regions.plan_alloc(len, policy)?;
        regions.insert(region)?;
        Ok(region.base)
    })
}

pub(crate) fn declare(base: u64, len: u64, policy: u64) -> Result<(), Refusal> {
    let policy = Policy::from_raw(policy).ok_or(MediateError::BadPolicy { raw: policy })?;
    check_ram(base, len)?;
    with_state(|regions, _, _| {
        let region = regions.plan_declare(base, len, policy)?;
        let first = (base - DIRECT_MAP_BASE) / PAGE_SIZE;
        vmmu::protect(first, len / PAGE_SIZE).map_err(Refusal::Frame)?;
        if region.shadow != 0 {
            // SAFETY: the region's frames (RAM, checked) and its shadow (in
            // the arena) do not overlap; the NK writes with protection lifted.
            unsafe { core::ptr::copy_nonoverlapping(base as *const u8, region.shadow as *mut u8, len as usize) };
        }
        regions.insert(region)?;
        Ok(())
    })
}

pub(crate) fn free(base: u64) -> Result<(), Refusal> {
    with_state(|regions, _, _| {
        let slot = regions.plan_free(base)?;
        let region = *regions.get(slot).ok_or(MediateError::NotARegion { addr: base })?;
        match region.backing {
            Backing::Declared => {
                let first = (base - DIRECT_MAP_BASE) / PAGE_SIZE;
                vmmu::unprotect(first, region.len / PAGE_SIZE).map_err(Refusal::Frame)?;
            }
            // The next region taking these bytes starts zeroed.
            // SAFETY: the region lies in the arena, which only the NK writes.
            Backing::Arena => unsafe { core::ptr::write_bytes(base as *mut u8, 0, region.len as usize) },
        }
        regions.remove(slot);
        Ok(())
    })
}

/// Copies `len` bytes from `src` to `dst` if the policy of the region
/// holding `dst` allows it; a write-logged write is logged with `caller`.
pub(crate) fn write(dst: u64, src: u64, len: u64, caller: u64) -> Result<(), Refusal> {
    check_ram(src, len)?;
    with_state(|regions, write_head, _| {
        let plan = regions.plan_write(dst, len, ENFORCE)?;
        let logged = plan.region.policy == Policy::WriteLogged;
        let mut record = WriteRecord { seq: write_head.next_seq, caller, dst, len, ..Default::default() };
        let n = len as usize;
        // SAFETY: `dst..dst + len` lies in a region: arena bytes or frames
        // the NK made read-only, writable here with protection lifted; `src`
        // is RAM (checked). The bytes are copied before being logged, so
        // the log holds what the region holds even if `src` changes.
        unsafe {
            if logged {
                core::ptr::copy_nonoverlapping(dst as *const u8, record.old.as_mut_ptr(), n.min(MAX_LOGGED_WRITE));
            }
            core::ptr::copy(src as *const u8, dst as *mut u8, n);
            if logged {
                core::ptr::copy_nonoverlapping(dst as *const u8, record.new.as_mut_ptr(), n.min(MAX_LOGGED_WRITE));
            }
        }
        regions.commit_write(plan, dst, len);
        if logged {
            log_write(write_head, regions, record);
        }
        Ok(())
    })
}

/// Appends to the write log; a record pushed out is folded into the shadow
/// of its region, so replaying the log over the shadows stays exact.
fn log_write(head: &mut WriteLogHead, regions: &Regions, record: WriteRecord) {
    let slot = (record.seq % WRITE_LOG_LEN as u64) as usize;
    // SAFETY: NK memory, under the lock.
    let log = unsafe { &mut *WRITE_LOG.0.get() };
    if record.seq >= WRITE_LOG_LEN as u64 {
        let old = log[slot];
        let n = (old.len as usize).min(MAX_LOGGED_WRITE);
        if let Some(r) = regions.iter().find(|r| r.shadow != 0 && r.contains(old.dst, old.len)) {
            // SAFETY: the shadow is arena memory of the region's length.
            unsafe { core::ptr::copy_nonoverlapping(old.new.as_ptr(), (r.shadow + old.dst - r.base) as *mut u8, n) };
        }
        head.dropped += 1;
    }
    log[slot] = record;
    head.next_seq += 1;
}

/// Appends one system call's record to the audit log. `entry` points at an
/// `AuditEntry` in RAM, copied before use; its flags must be the outer
/// kernel's own (a switch record is the NK's alone).
pub(crate) fn audit(entry: u64) -> Result<(), Refusal> {
    check_ram(entry, size_of::<AuditEntry>() as u64)?;
    // SAFETY: RAM, checked; any bytes are a valid `AuditEntry`.
    let entry = unsafe { (entry as *const AuditEntry).read_unaligned() };
    if entry.flags & !AuditEntry::OUTER_FLAGS != 0 && ENFORCE {
        return Err(Refusal::Rule(MediateError::ReservedFlags { flags: entry.flags }));
    }
    with_state(|_, _, head| append(head, entry));
    Ok(())
}

/// Switches the monitor as `raw` (a `monitor::Request`) asks, if it is not
/// locked; a change is appended to the audit chain with the caller's
/// address. The new state's `on` as the detail.
pub(crate) fn audit_switch(raw: u64, caller: u64) -> Result<u64, Refusal> {
    LOCK.with(|()| {
        // SAFETY: inside the NK, under the lock; see `Shared`.
        let s = unsafe { &mut *STATE.0.get() };
        let new = s.monitor.switch(raw, ENFORCE).map_err(Refusal::Rule)?;
        if new != s.monitor {
            s.monitor = new;
            append(&mut s.audit_head, new.record(caller));
        }
        Ok(u64::from(new.on))
    })
}

/// Chains `entry` onto the log, dropping the oldest record when it is full.
fn append(head: &mut AuditHead, entry: AuditEntry) {
    let record = AuditRecord::new(head.next_seq, entry, head.head);
    let slot = (record.seq % AUDIT_LOG_LEN as u64) as usize;
    // SAFETY: NK memory; the caller holds the lock.
    let log = unsafe { &mut *AUDIT_LOG.0.get() };
    if record.seq >= AUDIT_LOG_LEN as u64 {
        head.dropped += 1;
        head.anchor = log[slot].hash;
    }
    log[slot] = record;
    head.next_seq += 1;
    head.head = record.hash;
}

/// The monitor's state as of the last NK call.
pub fn monitor() -> Monitor {
    state().monitor
}

/// The audit log's head as of the last NK call.
pub fn audit_head() -> AuditHead {
    state().audit_head
}

/// Audit record `seq`, if the log still keeps it.
pub fn audit_record(seq: u64) -> Option<AuditRecord> {
    let head = audit_head();
    let kept = head.first_seq()..head.next_seq;
    // SAFETY: see `Shared`.
    kept.contains(&seq).then(|| unsafe { (*AUDIT_LOG.0.get())[(seq % AUDIT_LOG_LEN as u64) as usize] })
}

pub fn write_log_head() -> WriteLogHead {
    state().write_head
}

/// Write-log record `seq`, if the log still keeps it.
pub fn write_record(seq: u64) -> Option<WriteRecord> {
    let head = write_log_head();
    // SAFETY: see `Shared`.
    (head.dropped..head.next_seq)
        .contains(&seq)
        .then(|| unsafe { (*WRITE_LOG.0.get())[(seq % WRITE_LOG_LEN as u64) as usize] })
}

/// The protected regions as of the last NK call.
pub fn regions() -> impl Iterator<Item = Region> {
    state().regions.iter().flat_map(|t| t.iter().copied())
}

/// The region starting at `base`, if any.
pub fn region(base: u64) -> Option<Region> {
    regions().find(|r| r.base == base)
}

/// Where the logs and their heads live, for the attack catalog (which
/// tries to write them directly) and for readers that want raw bytes.
pub fn log_addresses() -> LogAddresses {
    LogAddresses {
        audit: AUDIT_LOG.0.get() as u64,
        write: WRITE_LOG.0.get() as u64,
        audit_head: &state().audit_head as *const AuditHead as u64,
        write_head: &state().write_head as *const WriteLogHead as u64,
        monitor: &state().monitor as *const Monitor as u64,
    }
}

#[derive(Clone, Copy, Debug)]
pub struct LogAddresses {
    pub audit: u64,
    pub write: u64,
    pub audit_head: u64,
    pub write_head: u64,
    pub monitor: u64,
}
