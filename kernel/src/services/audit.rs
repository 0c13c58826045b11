//! The security monitor: every system call's entry (pid, number,
//! arguments) and exit (result) goes into the NK's hash-chained,
//! append-only audit log, in one NK crossing per call (the record is
//! written at exit, with both halves). A call that never returns (`exit`)
//! is recorded at entry.

use core::sync::atomic::{AtomicBool, Ordering};
use nk_model::chain::{AuditEntry, AuditRecord, ChainError, verify as verify_chain};

static ON: AtomicBool = AtomicBool::new(false);

pub fn set(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Records one call. `result` is `None` for a call that does not return.
pub fn record(pid: u64, nr: u64, args: [u64; 6], result: Option<u64>) {
    if !on() {
        return;
    }
    let entry = AuditEntry {
        pid,
        nr,
        args,
        result: result.unwrap_or(0),
        flags: if result.is_none() { AuditEntry::NO_RETURN } else { 0 },
    };
    if let Err(e) = nk::api::audit_append(&entry) {
        crate::println!("audit: the NK refused a record: {}", e);
    }
}

/// Every record the NK still keeps, oldest first, checked against the
/// chain and the head the NK keeps. How many it checked.
pub fn verify() -> Result<u64, ChainError> {
    let head = nk::services::audit_head();
    let records: alloc::vec::Vec<AuditRecord> =
        (head.first_seq()..head.next_seq).filter_map(nk::services::audit_record).collect();
    verify_chain(&head, &records)
}

/// `audit verify`: prints the verdict; true when the log verifies.
pub fn print_verify() -> bool {
    let head = nk::services::audit_head();
    match verify() {
        Ok(n) => {
            crate::println!(
                "verify audit: ok ({} records chained to head {:016x}; {} older dropped, anchored)",
                n,
                head.head,
                head.dropped
            );
            true
        }
        Err(e) => {
            crate::println!("verify audit: TAMPERED ({})", e);
            false
        }
    }
}

/// `audit [N]`: the last `n` records.
pub fn print_last(n: u64) {
    let head = nk::services::audit_head();
    crate::println!(
        "audit: monitor {}, {} records, {} dropped; last {}:",
        super::on_off(on()),
        head.next_seq,
        head.dropped,
        n.min(head.next_seq - head.first_seq())
    );
    for seq in head.next_seq.saturating_sub(n).max(head.first_seq())..head.next_seq {
        let Some(r) = nk::services::audit_record(seq) else { continue };
        let e = r.entry;
        let result = if e.flags & AuditEntry::NO_RETURN != 0 {
            alloc::string::String::from("(no return)")
        } else {
            alloc::format!("= {}", e.result as i64)
        };
        crate::println!(
            "  #{:<6} pid {:<4} {:>4}({:#x}, {:#x}, {:#x}) {}  [{:016x}]",
            r.seq,
            e.pid,
            e.nr,
            e.args[0],
            e.args[1],
            e.args[2],
            result,
            r.hash
        );
    }
}
