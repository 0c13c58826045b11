//! The NK's write-mediation services as the outer kernel uses them: the
//! sealed system-call table, the write-logged process list and the
//! system-call audit log (docs/services.md). Each can be switched off on
//! the command line (`nk.systable=off`, `nk.proclist=off`, `nk.audit=on`)
//! so its cost can be measured alone; `nk.audit=locked` keeps the monitor
//! on until the next boot.

pub mod audit;
mod ktests;
pub mod proclist;
mod protected;
pub mod systable;

use core::sync::atomic::{AtomicBool, Ordering};
use nk_model::monitor::Request;

static SYSTABLE: AtomicBool = AtomicBool::new(true);
static PROCLIST: AtomicBool = AtomicBool::new(true);

/// Reads the switches; prints what it could not understand.
pub fn init(cmdline: &str) {
    let switch = |key: &str, default: bool| match klib::cmdline::get(cmdline, key) {
        None => default,
        Some(Some("on")) => true,
        Some(Some("off")) => false,
        Some(v) => {
            crate::println!("cmdline: {}={} is not on or off; {} stays {}", key, v.unwrap_or(""), key, on_off(default));
            default
        }
    };
    SYSTABLE.store(switch("nk.systable", true), Ordering::Relaxed);
    PROCLIST.store(switch("nk.proclist", true), Ordering::Relaxed);
    let monitor = match klib::cmdline::get(cmdline, "nk.audit") {
        Some(Some("locked")) => Some(Request::Lock),
        Some(Some("on")) => Some(Request::On),
        None | Some(Some("off")) => None,
        Some(v) => {
            crate::println!("cmdline: nk.audit={} is not on, off or locked; the monitor stays off", v.unwrap_or(""));
            None
        }
    };
    if let Some(request) = monitor {
        let _ = audit::set(request);
    }
    proclist::init(PROCLIST.load(Ordering::Relaxed));
}

pub fn systable_on() -> bool {
    SYSTABLE.load(Ordering::Relaxed)
}

pub fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// One line per service, and the NK's regions, for `nk services`.
pub fn show() {
    crate::println!(
        "services: systable {} ({}), proclist {}, audit {}",
        on_off(systable_on()),
        if systable::sealed() { "sealed" } else { "writable" },
        on_off(proclist::on()),
        audit::describe(audit::state())
    );
    crate::println!("{:<20} {:>8} {:<13} {:<9} {:>6}", "region", "bytes", "policy", "backing", "used");
    for r in nk::services::regions() {
        crate::println!(
            "{:#018x}   {:>8} {:<13} {:<9} {:>6}",
            r.base,
            r.len,
            r.policy,
            alloc::format!("{:?}", r.backing).to_lowercase(),
            r.used
        );
    }
    let (w, a) = (nk::services::write_log_head(), nk::services::audit_head());
    crate::println!("write log: {} writes, {} folded into shadows", w.next_seq, w.dropped);
    crate::println!("audit log: {} records, {} dropped (oldest first)", a.next_seq, a.dropped);
}
