//! The attack catalog: each attack plays a compromised outer kernel trying
//! to break one nested-kernel invariant, in its own kernel thread. On the
//! protected kernel every attack must be blocked (the NK refuses, or the
//! hardware faults and only the attacking thread dies); on the `native`
//! build the same attack must succeed, which shows it is real.

mod cpu_state;
pub mod gate;
mod memory;
mod services;
mod user;
mod vmmu;

use crate::println;
use crate::sched::{self, Exit};
use alloc::string::String;

/// How one attack ended, as the attack itself saw it.
pub enum Outcome {
    /// The NK or the hardware stopped it; the text says how.
    Blocked(String),
    /// The attack did what it set out to do.
    Succeeded(String),
    /// Not run on this build; the text says why.
    NotRun(String),
}

pub struct Attack {
    pub name: &'static str,
    /// The invariant it targets (docs/invariants.md).
    pub invariant: &'static str,
    pub run: fn() -> Outcome,
}

/// Every attack, in the order `attack all` runs them.
pub const CATALOG: &[Attack] = &[
    Attack { name: "ptp-direct-write", invariant: "I2", run: memory::ptp_direct_write },
    Attack { name: "ptp-direct-write-leaf", invariant: "I2", run: vmmu::ptp_direct_write_leaf },
    Attack { name: "map-ptp-writable", invariant: "I2", run: vmmu::map_ptp_writable },
    Attack { name: "map-nk-memory", invariant: "I8", run: vmmu::map_nk_memory },
    Attack { name: "rewrite-nk-mapping", invariant: "I8", run: vmmu::rewrite_nk_mapping },
    Attack { name: "redirect-ptp-alias", invariant: "I2", run: vmmu::redirect_ptp_alias },
    Attack { name: "undeclared-table", invariant: "I1", run: vmmu::undeclared_table },
    Attack { name: "level-confusion", invariant: "I1", run: vmmu::level_confusion },
    Attack { name: "declare-mapped-frame", invariant: "I10", run: vmmu::declare_mapped_frame },
    Attack { name: "remove-referenced-ptp", invariant: "I10", run: vmmu::remove_referenced_ptp },
    Attack { name: "cr3-undeclared-root", invariant: "I5", run: vmmu::cr3_undeclared_root },
    Attack { name: "declare-twice", invariant: "I10", run: vmmu::declare_twice },
    Attack { name: "frames-out-of-range", invariant: "I1", run: vmmu::frames_out_of_range },
    Attack { name: "map-code-hidden-mov-cr0", invariant: "I7", run: vmmu::map_code_hidden_mov_cr0 },
    Attack { name: "image-code-remap", invariant: "I7", run: vmmu::image_code_remap },
    Attack { name: "kernel-code-write", invariant: "I6", run: memory::kernel_code_write },
    Attack { name: "execute-data", invariant: "I6", run: memory::execute_data },
    Attack { name: "idt-overwrite", invariant: "I9", run: memory::idt_overwrite },
    Attack { name: "gdt-overwrite", invariant: "I9", run: memory::gdt_overwrite },
    Attack { name: "tss-overwrite", invariant: "I9", run: memory::tss_overwrite },
    Attack { name: "clear-wp", invariant: "I3", run: cpu_state::clear_wp },
    Attack { name: "clear-smep", invariant: "I6", run: cpu_state::clear_smep },
    Attack { name: "smep-execute-user", invariant: "I6", run: user::smep_execute_user },
    Attack { name: "smap-read-user", invariant: "I6", run: user::smap_read_user },
    Attack { name: "clear-nxe", invariant: "I6", run: cpu_state::clear_nxe },
    Attack { name: "msr-not-allowed", invariant: "I9", run: cpu_state::msr_not_allowed },
    Attack { name: "gate-jump-past-lift", invariant: "I4", run: gate::jump_past_lift },
    Attack { name: "gate-jump-to-rearm", invariant: "I4", run: gate::jump_to_rearm },
    Attack { name: "gate-interrupt-window", invariant: "I3", run: gate::interrupt_in_window },
    Attack { name: "syscall-table-overwrite", invariant: "I11", run: services::syscall_table_overwrite },
    Attack { name: "write-once-second-write", invariant: "I11", run: services::write_once_second_write },
    Attack { name: "append-only-rewrite", invariant: "I11", run: services::append_only_rewrite },
    Attack { name: "audit-rewrite", invariant: "I11", run: services::audit_rewrite },
    Attack { name: "audit-erase", invariant: "I11", run: services::audit_erase },
    Attack { name: "audit-forge", invariant: "I11", run: services::audit_forge },
    Attack { name: "proc-hide", invariant: "I11", run: services::proc_hide },
];

/// How `run` classified an attack.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Blocked,
    Succeeded,
    NotRun,
}

/// Runs one attack in its own thread and reports `attack NAME: ...`.
pub fn run(attack: &'static Attack) -> Verdict {
    let id = sched::spawn(attack.name, move || {
        let line = match (attack.run)() {
            Outcome::Blocked(how) => alloc::format!("blocked ({})", how),
            Outcome::Succeeded(what) => alloc::format!("SUCCEEDED ({})", what),
            Outcome::NotRun(why) => alloc::format!("not run ({})", why),
        };
        RESULT.lock().replace(line);
    });
    let verdict = match sched::join(id) {
        Some(Exit::Returned) => RESULT.lock().take().unwrap_or_else(|| String::from("SUCCEEDED (no verdict)")),
        // A fault killed the attacker: the hardware blocked the write.
        Some(Exit::Killed(why)) => alloc::format!("blocked (fault: {}; thread terminated)", why),
        None => String::from("SUCCEEDED (attack thread vanished)"),
    };
    println!("attack {} [{}]: {}", attack.name, attack.invariant, verdict);
    if verdict.starts_with("blocked") {
        Verdict::Blocked
    } else if verdict.starts_with("not run") {
        Verdict::NotRun
    } else {
        Verdict::Succeeded
    }
}

static RESULT: spin::Mutex<Option<String>> = spin::Mutex::new(None);

/// Runs every attack whose name matches (`all` for every one) and prints
/// a summary line; returns how many ran.
pub fn run_matching(pattern: &str) -> usize {
    let (mut blocked, mut succeeded, mut not_run) = (0, 0, 0);
    for a in CATALOG.iter().filter(|a| pattern == "all" || a.name == pattern) {
        match run(a) {
            Verdict::Blocked => blocked += 1,
            Verdict::Succeeded => succeeded += 1,
            Verdict::NotRun => not_run += 1,
        }
    }
    let ran = blocked + succeeded + not_run;
    if ran == 0 {
        println!("attack: no attack named '{}' (try 'attack list')", pattern);
    } else {
        println!("attacks: {} blocked, {} succeeded, {} not run", blocked, succeeded, not_run);
    }
    ran
}
