//! The security monitor: every system call's entry (pid, number,
//! arguments) and exit (result) goes into the NK's hash-chained,
//! append-only audit log, in one NK crossing per call (the record is
//! written at exit, with both halves). A call that never returns (`exit`)
//! is recorded at entry. Whether to audit is the NK's to keep: outer
//! code reads the switch in NK data and changes it only through
//! `audit_switch`, which chains a record of the change (and refuses once
//! the monitor is locked on).

use nk::api::NkError;
use nk_model::chain::{AuditEntry, AuditRecord, ChainError, verify as verify_chain};
use nk_model::monitor::{Monitor, Request, SWITCH_NR};

/// Asks the NK to switch the monitor; says so on the console if refused.
pub fn set(request: Request) -> Result<(), NkError> {
    let r = nk::api::audit_switch(request).map(|_| ());
    if let Err(e) = &r {
        crate::println!("audit: the NK refused to switch the monitor: {}", e);
    }
    r
}

pub fn on() -> bool {
    nk::services::monitor().on
}

pub fn state() -> Monitor {
    nk::services::monitor()
}

/// "on", "off" or "locked on".
pub fn describe(m: Monitor) -> &'static str {
    match (m.on, m.locked) {
        (_, true) => "locked on",
        (true, false) => "on",
        (false, false) => "off",
    }
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
        describe(state()),
        head.next_seq,
        head.dropped,
        n.min(head.next_seq - head.first_seq())
    );
    for seq in head.next_seq.saturating_sub(n).max(head.first_seq())..head.next_seq {
        let Some(r) = nk::services::audit_record(seq) else { continue };
        let e = r.entry;
        if e.nr == SWITCH_NR && e.flags & AuditEntry::SWITCH != 0 {
            let now = describe(Monitor { on: e.args[0] != 0, locked: e.args[1] != 0 });
            crate::println!(
                "  #{:<6} monitor switched {} (by code at {:#x})  [{:016x}]",
                r.seq,
                now,
                e.args[2],
                r.hash
            );
            continue;
        }
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
