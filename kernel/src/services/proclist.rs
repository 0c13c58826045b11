//! The process list the NK keeps tamper-evident: one 32-byte slot per live
//! process in a write-logged region, so every change goes through
//! `nk_write` and lands in the NK's write log, and `nk verify proc` can
//! replay the log against the live list.

use super::protected;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use nk_model::chain::{ReplayError, WriteRecord, replay};
use nk_model::mediate::Policy;

pub const SLOTS: usize = crate::proc::MAX_PROCESSES;
pub const SLOT_BYTES: usize = 32;
const NAME: usize = 24;

/// One slot: a pid (0: free), its parent, and its program's name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub pid: u32,
    pub ppid: u32,
    pub name: [u8; NAME],
}

impl Entry {
    fn new(pid: u64, ppid: u64, name: &str) -> Self {
        let mut e = Entry { pid: pid as u32, ppid: ppid as u32, name: [0; NAME] };
        // The last path component, cut to fit.
        let base = name.rsplit('/').next().unwrap_or(name).as_bytes();
        let n = base.len().min(NAME);
        e.name[..n].copy_from_slice(&base[..n]);
        e
    }

    pub fn to_bytes(self) -> [u8; SLOT_BYTES] {
        let mut b = [0u8; SLOT_BYTES];
        b[..4].copy_from_slice(&self.pid.to_le_bytes());
        b[4..8].copy_from_slice(&self.ppid.to_le_bytes());
        b[8..].copy_from_slice(&self.name);
        b
    }

    pub fn from_bytes(b: &[u8]) -> Self {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut name = [0; NAME];
        name.copy_from_slice(&b[8..SLOT_BYTES]);
        Entry { pid: word(0), ppid: word(4), name }
    }

    pub fn name(&self) -> &str {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(NAME);
        core::str::from_utf8(&self.name[..end]).unwrap_or("?")
    }
}

/// The region's address (0: the service is off or not started).
static BASE: AtomicU64 = AtomicU64::new(0);
/// Slot choice and write must not interleave between two forks.
static LOCK: spin::Mutex<()> = spin::Mutex::new(());

pub fn init(on: bool) {
    if !on || BASE.load(Ordering::Relaxed) != 0 {
        return;
    }
    match nk::api::nk_alloc(SLOTS * SLOT_BYTES, Policy::WriteLogged) {
        Ok(base) => BASE.store(base, Ordering::Relaxed),
        Err(e) => crate::println!("boot: no protected process list: {}", e),
    }
}

pub fn on() -> bool {
    base().is_some()
}

pub fn base() -> Option<u64> {
    Some(BASE.load(Ordering::Relaxed)).filter(|&b| b != 0)
}

/// The live list, slot by slot.
pub fn entries() -> Vec<Entry> {
    let Some(base) = base() else { return Vec::new() };
    protected::read(base, SLOTS * SLOT_BYTES).chunks(SLOT_BYTES).map(Entry::from_bytes).collect()
}

/// The slot listing `pid`, and its entry.
fn slot_of(pid: u64) -> Option<(usize, Entry)> {
    entries().into_iter().enumerate().find(|(_, e)| e.pid != 0 && u64::from(e.pid) == pid)
}

/// Where slot `slot` of the list at `base` is.
fn slot_address(base: u64, slot: usize) -> u64 {
    base + (slot * SLOT_BYTES) as u64
}

fn write_slot(slot: usize, e: Entry) {
    let Some(base) = base() else { return };
    if let Err(err) = nk::api::nk_write(slot_address(base, slot), &e.to_bytes()) {
        crate::println!("proclist: the NK refused a write to slot {}: {}", slot, err);
    }
}

/// Lists a new process.
pub fn add(pid: u64, ppid: u64, name: &str) {
    if !on() {
        return;
    }
    crate::arch::without_interrupts(|| {
        let _guard = LOCK.lock();
        match entries().iter().position(|e| e.pid == 0) {
            Some(slot) => write_slot(slot, Entry::new(pid, ppid, name)),
            None => crate::println!("proclist: no free slot for pid {}", pid),
        }
    });
}

/// Lists a new process in `batch` (its write lands when the batch runs):
/// the guard keeps another listing from choosing the same slot until then.
pub fn stage_add(
    batch: &mut crate::mm::vm::Batch,
    pid: u64,
    ppid: u64,
    name: &str,
) -> Option<spin::MutexGuard<'static, ()>> {
    let base = base()?;
    let guard = LOCK.lock();
    match entries().iter().position(|e| e.pid == 0) {
        Some(slot) => batch.nk_write(slot_address(base, slot), &Entry::new(pid, ppid, name).to_bytes()),
        None => crate::println!("proclist: no free slot for pid {}", pid),
    }
    Some(guard)
}

/// The write that unlists `pid`, to carry in a later crossing: its slot
/// stays taken until then, so nothing else is listed there meanwhile.
pub fn removal(pid: u64) -> Option<(u64, [u8; SLOT_BYTES])> {
    let base = base()?;
    crate::arch::without_interrupts(|| {
        let _guard = LOCK.lock();
        slot_of(pid).map(|(slot, _)| (slot_address(base, slot), Entry::default().to_bytes()))
    })
}

/// A process ran `execve`: its name changes, in `batch` (as `stage_add`).
pub fn stage_rename(batch: &mut crate::mm::vm::Batch, pid: u64, name: &str) -> Option<spin::MutexGuard<'static, ()>> {
    let base = base()?;
    let guard = LOCK.lock();
    if let Some((slot, old)) = slot_of(pid) {
        batch.nk_write(slot_address(base, slot), &Entry::new(pid, u64::from(old.ppid), name).to_bytes());
    }
    Some(guard)
}

/// A process ended.
pub fn remove(pid: u64) {
    if !on() {
        return;
    }
    crate::arch::without_interrupts(|| {
        let _guard = LOCK.lock();
        if let Some((slot, _)) = slot_of(pid) {
            write_slot(slot, Entry::default());
        }
    });
}

/// What `verify` found.
pub struct Finding {
    /// Write-log records replayed.
    pub replayed: u64,
    /// Processes in the live list the log never put there.
    pub forged: Vec<Entry>,
    /// Processes the log put there that the live list lacks.
    pub hidden: Vec<Entry>,
}

/// The write log's records still kept, oldest first.
pub fn log_records() -> Vec<WriteRecord> {
    let head = nk::services::write_log_head();
    (head.dropped..head.next_seq).filter_map(nk::services::write_record).collect()
}

/// Replays the NK's write log over the list's shadow and compares the
/// result with the live list, slot by slot.
pub fn verify() -> Result<Finding, String> {
    let base = base().ok_or_else(|| String::from("the protected process list is off"))?;
    let region = nk::services::region(base).ok_or_else(|| String::from("the NK has no region there"))?;
    let mut image = protected::read(region.shadow, SLOTS * SLOT_BYTES);
    let records = log_records();
    let first = nk::services::write_log_head().dropped;
    if records.first().is_some_and(|r| r.seq != first) {
        return Err(alloc::format!("the write log starts at record {}, not {}", records[0].seq, first));
    }
    replay(&mut image, base, &records).map_err(|e| match e {
        ReplayError::OldBytes { seq } => alloc::format!("write-log record {} does not match the bytes before it", seq),
        ReplayError::Gap { expected, found } => {
            alloc::format!("write-log record {} missing (found {})", expected, found)
        }
    })?;
    let live = entries();
    let mut finding = Finding { replayed: records.len() as u64, forged: Vec::new(), hidden: Vec::new() };
    for (i, chunk) in image.chunks(SLOT_BYTES).enumerate() {
        let expected = Entry::from_bytes(chunk);
        if expected != live[i] {
            if live[i].pid != 0 {
                finding.forged.push(live[i]);
            }
            if expected.pid != 0 {
                finding.hidden.push(expected);
            }
        }
    }
    Ok(finding)
}

/// `nk verify proc`: prints the verdict; true when the list verifies.
pub fn print_verify() -> bool {
    match verify() {
        Ok(f) => {
            for e in &f.forged {
                crate::println!(
                    "verify proc: FORGED pid {} ({}) is listed, but no logged write put it there",
                    e.pid,
                    e.name()
                );
            }
            for e in &f.hidden {
                crate::println!(
                    "verify proc: HIDDEN pid {} ({}) was listed by a logged write, but is gone",
                    e.pid,
                    e.name()
                );
            }
            let ok = f.forged.is_empty() && f.hidden.is_empty();
            let n = entries().iter().filter(|e| e.pid != 0).count();
            crate::println!(
                "verify proc: {} ({} processes listed, {} logged writes replayed)",
                if ok { "ok" } else { "TAMPERED" },
                n,
                f.replayed
            );
            ok
        }
        Err(e) => {
            crate::println!("verify proc: TAMPERED ({})", e);
            false
        }
    }
}

/// `ps`: the protected list.
pub fn print() {
    if !on() {
        crate::println!("ps: the protected process list is off (nk.proclist=off)");
        return;
    }
    crate::println!("{:>5} {:>5}  {}", "PID", "PPID", "NAME");
    for e in entries().iter().filter(|e| e.pid != 0) {
        crate::println!("{:>5} {:>5}  {}", e.pid, e.ppid, e.name());
    }
}
