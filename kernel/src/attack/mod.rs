//! The attack catalog: each attack plays a compromised outer kernel trying
//! to break one nested-kernel invariant, in its own kernel thread. On the
//! protected kernel every attack must be blocked (the NK refuses, or the
//! hardware faults and only the attacking thread dies); on the `native`
//! build the same attack must succeed, which shows it is real.

mod cpu_state;
mod flags;
pub mod gate;
mod memory;
mod modules;
mod services;
mod sites;
mod stack;
pub mod traps;
mod user;
mod vmmu;

use crate::println;
use crate::sched::{self, Exit};
use alloc::string::String;

/// Whether this is the unprotected `native` build (a constant, so code for
/// the other backend, and the NK symbols only it has, drop out).
const NATIVE: bool = {
    let (a, b) = (nk::BACKEND.as_bytes(), b"native");
    let mut same = a.len() == b.len();
    let mut i = 0;
    while same && i < a.len() {
        same = a[i] == b[i];
        i += 1;
    }
    same
};

/// Names kernel data by its direct-map address, the form the NK accepts
/// for a source buffer (the image is linked at `KERNEL_BASE` + physical).
fn direct_map(va: u64) -> u64 {
    match va.checked_sub(nk::layout::KERNEL_BASE) {
        Some(phys) => nk::layout::phys_to_virt(phys),
        None => va,
    }
}

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
    /// Blocking it stops the machine on the protected kernel (the NK's
    /// fail-stop): `attack all` skips it, `attack NAME` runs it alone, and
    /// `cargo xtask test` gives it a boot of its own on each backend.
    pub stops_machine: bool,
}

/// An attack that `attack all` runs.
const fn runs(name: &'static str, invariant: &'static str, run: fn() -> Outcome) -> Attack {
    Attack { name, invariant, run, stops_machine: false }
}

/// An attack the protected kernel blocks by stopping the machine.
const fn stops(name: &'static str, invariant: &'static str, run: fn() -> Outcome) -> Attack {
    Attack { name, invariant, run, stops_machine: true }
}

/// Every attack, in the order `attack all` runs them.
pub const CATALOG: &[Attack] = &[
    runs("ptp-direct-write", "I2", memory::ptp_direct_write),
    runs("ptp-direct-write-leaf", "I2", vmmu::ptp_direct_write_leaf),
    runs("map-ptp-writable", "I2", vmmu::map_ptp_writable),
    runs("map-nk-memory", "I8", vmmu::map_nk_memory),
    runs("rewrite-nk-mapping", "I8", vmmu::rewrite_nk_mapping),
    runs("redirect-ptp-alias", "I2", vmmu::redirect_ptp_alias),
    runs("undeclared-table", "I1", vmmu::undeclared_table),
    runs("level-confusion", "I1", vmmu::level_confusion),
    runs("declare-mapped-frame", "I10", vmmu::declare_mapped_frame),
    runs("remove-referenced-ptp", "I10", vmmu::remove_referenced_ptp),
    runs("cr3-undeclared-root", "I5", vmmu::cr3_undeclared_root),
    runs("switch-undeclared-root", "I5", vmmu::switch_undeclared_root),
    runs("batch-switch-undeclared-root", "I5", vmmu::batch_switch_undeclared_root),
    runs("declare-twice", "I10", vmmu::declare_twice),
    runs("frames-out-of-range", "I1", vmmu::frames_out_of_range),
    runs("map-code-hidden-mov-cr0", "I7", vmmu::map_code_hidden_mov_cr0),
    runs("image-code-remap", "I7", vmmu::image_code_remap),
    runs("release-mapped-code", "I7", vmmu::release_mapped_code),
    runs("kernel-code-write", "I6", memory::kernel_code_write),
    runs("execute-data", "I6", memory::execute_data),
    runs("idt-overwrite", "I9", memory::idt_overwrite),
    runs("gdt-overwrite", "I9", memory::gdt_overwrite),
    runs("tss-overwrite", "I9", memory::tss_overwrite),
    runs("clear-wp", "I3", cpu_state::clear_wp),
    runs("clear-smep", "I6", cpu_state::clear_smep),
    runs("smep-execute-user", "I6", user::smep_execute_user),
    runs("smap-read-user", "I6", user::smap_read_user),
    runs("clear-nxe", "I6", cpu_state::clear_nxe),
    runs("msr-not-allowed", "I9", cpu_state::msr_not_allowed),
    runs("gate-jump-past-lift", "I4", gate::jump_past_lift),
    runs("gate-jump-to-rearm", "I4", gate::jump_to_rearm),
    stops("gate-interrupt-window", "I3", gate::interrupt_in_window),
    runs("syscall-table-overwrite", "I11", services::syscall_table_overwrite),
    runs("write-once-second-write", "I11", services::write_once_second_write),
    runs("batch-write-sealed-table", "I11", services::batch_write_sealed_table),
    runs("append-only-rewrite", "I11", services::append_only_rewrite),
    runs("audit-rewrite", "I11", services::audit_rewrite),
    runs("audit-erase", "I11", services::audit_erase),
    runs("audit-forge", "I11", services::audit_forge),
    runs("proc-hide", "I11", services::proc_hide),
    runs("monitor-store", "I11", services::monitor_store),
    runs("audit-forge-switch", "I11", services::audit_forge_switch),
    runs("gate-single-step", "I3", traps::single_step),
    runs("gate-nmi-rewrite", "I3", traps::nmi_rewrite),
    runs("gate-flags", "I4", flags::gate_flags),
    runs("gate-rsp-ptp", "I2", stack::rsp_ptp),
    runs("gate-rsp-nk", "I8", stack::rsp_nk),
    stops("gate-rsp-ptp-trap", "I3", stack::rsp_ptp_trap),
    runs("gate-body-direct", "I4", gate::body_direct),
    runs("site-cr0", "I3", sites::cr0),
    runs("site-cr0-rearms", "I3", sites::cr0_rearms),
    runs("site-cr3", "I5", sites::cr3),
    stops("site-cr4", "I6", sites::cr4),
    stops("site-cr4-flush", "I6", sites::cr4_flush),
    stops("site-wrmsr-lstar", "I9", sites::wrmsr_lstar),
    stops("site-wrmsr-efer", "I6", sites::wrmsr_efer),
    stops("site-lgdt", "I9", sites::lgdt),
    stops("site-lidt", "I9", sites::lidt),
    stops("site-ltr", "I9", sites::ltr),
    runs("accidental-encoding", "I4", sites::accidental_encoding),
    runs("module-hidden-instruction", "I7", modules::hidden_instruction),
    runs("module-page-boundary", "I7", modules::page_boundary),
    runs("module-relocation-formed", "I7", modules::relocation_formed),
    runs("module-writes-own-text", "I6", modules::writes_own_text),
    runs("module-writable-code", "I6", modules::writable_code),
    runs("module-hook-syscall", "I11", modules::hook_syscall),
    runs("module-calls-nk-body", "I4", modules::call_nk_body),
    // Last: on `native` their backwards copies may also scribble on NK data.
    runs("gate-df-append", "I11", flags::df_append),
    runs("gate-df-declare", "I2", flags::df_declare),
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
/// a summary line; returns how many ran. `all` skips the attacks that stop
/// the machine when blocked (each says so); naming one runs it.
pub fn run_matching(pattern: &str) -> usize {
    let (mut blocked, mut succeeded, mut not_run, mut skipped) = (0, 0, 0, 0);
    for a in CATALOG.iter().filter(|a| pattern == "all" || a.name == pattern) {
        if pattern == "all" && a.stops_machine {
            println!(
                "attack {} [{}]: skipped (blocking it stops the machine: run it alone, 'attack {}')",
                a.name, a.invariant, a.name
            );
            skipped += 1;
            continue;
        }
        match run(a) {
            Verdict::Blocked => blocked += 1,
            Verdict::Succeeded => succeeded += 1,
            Verdict::NotRun => not_run += 1,
        }
    }
    let ran = blocked + succeeded + not_run;
    if ran + skipped == 0 {
        println!("attack: no attack named '{}' (try 'attack list')", pattern);
    } else {
        println!(
            "attacks: {} blocked, {} succeeded, {} not run, {} skipped (they stop the machine)",
            blocked, succeeded, not_run, skipped
        );
    }
    ran
}

/// Prints the catalog, one `catalog NAME INVARIANT CLASS` line per attack:
/// CLASS `all` runs in `attack all`, `alone` needs a boot of its own.
pub fn list() {
    for a in CATALOG {
        println!("catalog {} {} {}", a.name, a.invariant, if a.stops_machine { "alone" } else { "all" });
    }
}
