//! Attacks on the write-mediation services (I11): redirect a system call,
//! write a sealed region twice, rewrite an append-only region, rewrite,
//! erase or forge audit records, hide a process from the protected list,
//! and switch the monitor without a record or forge a switch record. On
//! the protected kernel the direct stores fault and the NK refuses the
//! policy breaks; on `native` each lands, and the attacker also fixes up
//! the logs so the readers' checks pass: it succeeds undetected.
#![allow(unsafe_code)] // these attacks write NK-protected memory on purpose

use super::Outcome::{self, Blocked, NotRun, Succeeded};
use crate::services::{audit, proclist, systable};
use alloc::format;
use nk::services::{self as nks, AUDIT_LOG_LEN, WriteLogHead};
use nk_model::chain::{AuditEntry, AuditHead, AuditRecord, WriteRecord};
use nk_model::mediate::Policy;
use nk_model::monitor::Monitor;

pub(super) const VICTIM: u64 = 110; // getppid
const MAGIC: u64 = 0x0bad_c0de;

pub(super) fn evil(_: &mut crate::arch::user::SyscallFrame) -> Result<u64, i64> {
    Ok(MAGIC)
}

/// Calls the table's handler for `VICTIM` with an empty frame: `MAGIC` if
/// the attacker's handler runs.
pub(super) fn victim_is_evil() -> bool {
    let mut frame = crate::arch::user::SyscallFrame::default();
    systable::lookup(VICTIM).is_some_and(|h| (h as usize) == (evil as *const () as usize) && h(&mut frame) == Ok(MAGIC))
}

/// Writes a table entry back (on `native`, where the table is writable
/// memory), after an attack that changed it.
pub(super) fn restore_entry(slot: u64, old: u64) {
    // SAFETY: `slot` is the table entry an attack overwrote; the value is
    // the handler it held.
    unsafe { (slot as *mut u64).write_volatile(old) };
}

/// A store straight into the sealed system-call table.
pub fn syscall_table_overwrite() -> Outcome {
    let Some(addr) = systable::entry_address(VICTIM) else { return NotRun("no system-call table".into()) };
    let p = addr as *mut u64;
    // SAFETY: deliberately writes the table (on the protected kernel this
    // store faults); restored below before any process can call getppid.
    let old = unsafe {
        let old = p.read_volatile();
        p.write_volatile(evil as *const () as usize as u64);
        old
    };
    let redirected = victim_is_evil();
    // SAFETY: as above: puts the real handler back.
    unsafe { p.write_volatile(old) };
    if redirected {
        Succeeded(format!("getppid ({VICTIM}) dispatched to the attacker's handler"))
    } else {
        Blocked("the store did not change the table".into())
    }
}

/// A second `nk_write` to the write-once system-call table.
pub fn write_once_second_write() -> Outcome {
    second_write("the sealed table took a second write", |addr, bytes| {
        nk::api::nk_write(addr, bytes).map_err(|e| format!("the NK refused: {e}"))
    })
}

/// The sealed table's second write again, as a mediated-write entry of a
/// `write_ptes` batch (the way a fork lists its child): the policy holds
/// there as in `nk_write`.
pub fn batch_write_sealed_table() -> Outcome {
    second_write("a batch's mediated write rewrote the sealed table", |addr, bytes| {
        let mut batch = crate::mm::vm::Batch::new();
        batch.nk_write(addr, bytes);
        batch.submit().map_err(|e| format!("the NK refused the batch: {e}"))
    })
}

/// Points the sealed table's victim entry at `evil` through `write`, and
/// back (on a kernel that let it through).
fn second_write(what: &str, write: impl FnOnce(u64, &[u8]) -> Result<(), alloc::string::String>) -> Outcome {
    let Some(addr) = systable::entry_address(VICTIM) else { return NotRun("no system-call table".into()) };
    let old = systable::lookup(VICTIM).map_or(0, |h| h as usize as u64);
    if let Err(refused) = write(addr, &(evil as *const () as usize as u64).to_le_bytes()) {
        return Blocked(refused);
    }
    let redirected = victim_is_evil();
    let _ = nk::api::nk_write(addr, &old.to_le_bytes());
    if redirected {
        Succeeded(format!("{what}: getppid redirected"))
    } else {
        Blocked("the write was accepted but changed nothing".into())
    }
}

/// An append-only region for the catalog, made once per boot.
pub(super) fn append_region() -> Option<u64> {
    static REGION: spin::Once<Option<u64>> = spin::Once::new();
    *REGION.call_once(|| nk::api::nk_alloc(4096, Policy::AppendOnly).ok())
}

/// Rewrites what an append-only region already holds, through `nk_write`.
pub fn append_only_rewrite() -> Outcome {
    let Some(base) = append_region() else { return NotRun("the NK gave no append-only region".into()) };
    let region = nks::region(base).expect("the region just made");
    if region.used + 16 > region.len {
        return NotRun("the catalog's region is full".into());
    }
    if let Err(e) = nk::api::nk_write(base + region.used, b"honest record 01") {
        return NotRun(format!("the legitimate append was refused: {e}"));
    }
    match nk::api::nk_write(base, b"rewritten past!!") {
        Err(e) => Blocked(format!("the NK refused: {e}")),
        Ok(()) => Succeeded("the first record of an append-only region was rewritten".into()),
    }
}

/// Adds two records through the legitimate path so the log has something
/// to attack; the head after them.
fn seed_audit_log() -> AuditHead {
    for i in 0..2 {
        let entry = AuditEntry { pid: 0, nr: 1000 + i, args: [i; 6], result: 0, flags: 0 };
        let _ = nk::api::audit_append(&entry);
    }
    nks::audit_head()
}

fn record_ptr(seq: u64) -> *mut AuditRecord {
    let base = nks::log_addresses().audit as *mut AuditRecord;
    base.wrapping_add((seq % AUDIT_LOG_LEN as u64) as usize)
}

fn head_ptr() -> *mut AuditHead {
    nks::log_addresses().audit_head as *mut AuditHead
}

/// Recomputes the chain from record `from` to the newest and the head, as
/// an attacker who can write the log would, so readers find it consistent.
///
/// # Safety
/// Writes the NK's audit log: only on a kernel where that is possible.
unsafe fn rechain(from: u64, head: &mut AuditHead) {
    let mut prev = if from == head.first_seq() {
        head.anchor
    } else {
        // SAFETY: a record the log keeps.
        unsafe { record_ptr(from - 1).read_volatile().hash }
    };
    for seq in from..head.next_seq {
        let p = record_ptr(seq);
        // SAFETY: the caller allows writing the log.
        unsafe {
            let mut r = p.read_volatile();
            r.hash = r.chain(prev);
            p.write_volatile(r);
            prev = r.hash;
        }
    }
    head.head = prev;
    // SAFETY: as above.
    unsafe { head_ptr().write_volatile(*head) };
}

fn log_verdict(what: &str) -> Outcome {
    match audit::verify() {
        Ok(n) => Succeeded(format!("{what}; the log still verifies ({n} records)")),
        Err(e) => Blocked(format!("{what}, but the chain shows it: {e}")),
    }
}

/// Rewrites an audit record's result in place, then fixes up the chain.
pub fn audit_rewrite() -> Outcome {
    let mut head = seed_audit_log();
    let seq = head.next_seq - 2;
    let p = record_ptr(seq);
    // SAFETY: deliberately writes the audit log (faults on the protected
    // kernel).
    unsafe {
        let mut r = p.read_volatile();
        r.entry.result = 0xdead;
        p.write_volatile(r);
        rechain(seq, &mut head);
    }
    log_verdict(&format!("record {seq} rewritten"))
}

/// Erases the newest audit record: the head steps back one record.
pub fn audit_erase() -> Outcome {
    let mut head = seed_audit_log();
    let seq = head.next_seq - 1;
    // SAFETY: deliberately writes the audit log's head (faults on the
    // protected kernel).
    unsafe {
        head.next_seq -= 1;
        record_ptr(seq).write_volatile(AuditRecord::default());
        rechain(head.next_seq, &mut head);
    }
    log_verdict(&format!("record {seq} erased"))
}

/// Appends a forged record (a call that never happened) directly.
pub fn audit_forge() -> Outcome {
    let mut head = seed_audit_log();
    let forged = AuditEntry { pid: 1, nr: 59, args: [0x4000; 6], result: 0, flags: 0 };
    let record = AuditRecord::new(head.next_seq, forged, head.head);
    // SAFETY: deliberately writes the audit log (faults on the protected
    // kernel).
    unsafe {
        record_ptr(head.next_seq).write_volatile(record);
        head.next_seq += 1;
        head.head = record.hash;
        head_ptr().write_volatile(head);
    }
    log_verdict(&format!("forged record {} (an execve by pid 1)", record.seq))
}

/// Lists this thread as a process through the legitimate path, then
/// clears its slot directly and patches the write log to match: hidden.
pub fn proc_hide() -> Outcome {
    let Some(base) = proclist::base() else { return NotRun("the protected process list is off".into()) };
    let me = crate::sched::current();
    proclist::add(me, 0, "hide-me");
    let Some(slot) = proclist::entries().iter().position(|e| u64::from(e.pid) == me) else {
        return NotRun(format!("the list took no entry for pid {me}"));
    };
    let addr = base + (slot * proclist::SLOT_BYTES) as u64;
    // SAFETY: deliberately writes the protected list (faults on the
    // protected kernel; on `native` the thread removes nothing else).
    unsafe { core::ptr::write_bytes(addr as *mut u8, 0, proclist::SLOT_BYTES) };
    // Cover the tracks: the newest logged write put this entry there; make
    // it write zeros instead, so a replay agrees with the list.
    let head: WriteLogHead = nks::write_log_head();
    let seq = head.next_seq - 1;
    let p = (nks::log_addresses().write as *mut WriteRecord).wrapping_add((seq % nks::WRITE_LOG_LEN as u64) as usize);
    // SAFETY: as above, the NK's write log.
    unsafe {
        let mut r = p.read_volatile();
        if r.dst == addr {
            r.new = [0; 32];
            p.write_volatile(r);
        }
    }
    let listed = proclist::entries().iter().any(|e| u64::from(e.pid) == me);
    match proclist::verify() {
        Ok(f) if !listed && f.hidden.is_empty() && f.forged.is_empty() => {
            Succeeded(format!("pid {me} is gone from the list and the write log replays clean"))
        }
        Ok(f) => Blocked(format!("replay finds {} hidden, {} forged", f.hidden.len(), f.forged.len())),
        Err(e) => Blocked(format!("the replay shows it: {e}")),
    }
}

/// Switches the security monitor with a store into the NK's state, so no
/// switch record enters the audit chain: the way a compromised kernel would
/// stop (or fake) auditing without a trace. Flips whichever way it is now.
pub fn monitor_store() -> Outcome {
    let before = audit::state();
    let records = nks::audit_head().next_seq;
    let flipped = Monitor { on: !before.on, locked: false };
    let p = nks::log_addresses().monitor as *mut Monitor;
    // SAFETY: deliberately writes the NK's monitor switch (faults on the
    // protected kernel); put back below.
    unsafe { p.write_volatile(flipped) };
    let switched = audit::state() == flipped;
    let unrecorded = nks::audit_head().next_seq == records;
    // SAFETY: as above: the state as it was.
    unsafe { p.write_volatile(before) };
    match (switched, unrecorded) {
        (true, true) => Succeeded(format!("monitor {} by a store, no record in the chain", audit::describe(flipped))),
        (true, false) => Blocked("the store switched the monitor, but the chain recorded it".into()),
        (false, _) => Blocked("the store did not change the monitor".into()),
    }
}

/// Appends, through the legitimate call, a record that claims to be the
/// NK's own switch record ("monitor on"), to cover a gap in auditing.
pub fn audit_forge_switch() -> Outcome {
    let fake = Monitor { on: true, locked: false }.record(0);
    match nk::api::audit_append(&fake) {
        Err(e) => Blocked(format!("the NK refused: {e}")),
        Ok(()) => Succeeded("the chain took a switch record the NK never wrote".into()),
    }
}
