//! Malicious loadable modules (`modules/evil_*`, in the initrd as
//! `/lib/modules/NAME.ko`): each hides `mov cr0, rax` its own way, or
//! rewrites its own text once loaded, and its init clears CR0.WP if it can.
//! The loader is the honest one here; what must stop them is the NK's
//! vetting of text after relocation (I7) and the read-only alias of a
//! frame once it is code (I6). A last attack plays a compromised loader
//! that maps a module's text writable and executable itself.

use super::Outcome::{self, Blocked, NotRun, Succeeded};
use crate::mm::frames;
use crate::module::LoadError;
use alloc::format;
use alloc::string::String;

/// `evil::PAYLOAD_RAN`: the errno a malicious init fails with once its
/// payload ran and saw CR0.WP clear.
const PAYLOAD_RAN: i64 = 133;

fn load(name: &str) -> Result<Result<String, LoadError>, Outcome> {
    load_with(name, &[])
}

/// Loads `name`, resolving `extra` for it as a compromised loader would.
fn load_with(name: &str, extra: &[(&str, u64)]) -> Result<Result<String, LoadError>, Outcome> {
    let path = format!("/lib/modules/{name}.ko");
    let bytes = crate::fs::read_file(crate::fs::ROOT, &path)
        .map_err(|e| NotRun(format!("{path}: {e} (built by cargo xtask build)")))?;
    Ok(crate::module::load_with(&bytes, extra))
}

/// Loads the malicious module `name`: blocked if the NK refused its text,
/// succeeded if its payload ran.
fn evil(name: &str) -> Outcome {
    match load(name) {
        Err(outcome) => outcome,
        Ok(Err(LoadError::Refused(e))) => Blocked(format!("the NK refused the module's text: {e}")),
        Ok(Err(LoadError::Init(PAYLOAD_RAN))) => {
            Succeeded(format!("{name} was mapped executable; its init cleared CR0.WP (and set it back)"))
        }
        Ok(Err(e)) => NotRun(format!("{name} was refused before the NK saw it: {e}")),
        Ok(Ok(_)) => {
            let _ = crate::module::unload(name);
            NotRun(format!("{name} loaded but its payload did not report"))
        }
    }
}

pub fn hidden_instruction() -> Outcome {
    evil("evil_unaligned")
}

pub fn page_boundary() -> Outcome {
    evil("evil_pagecross")
}

pub fn relocation_formed() -> Outcome {
    evil("evil_reloc")
}

/// Rewrites its own text through the direct map once loaded: on the
/// protected kernel that alias is read-only and the write faults (this
/// thread dies, leaving the module half-loaded); on `native` it runs.
pub fn writes_own_text() -> Outcome {
    match load("evil_selfwrite") {
        Err(outcome) => outcome,
        Ok(Err(LoadError::Init(PAYLOAD_RAN))) => {
            Succeeded(String::from("evil_selfwrite patched its own text through the direct map and ran it"))
        }
        Ok(Err(e)) => NotRun(format!("evil_selfwrite: {e}")),
        Ok(Ok(_)) => NotRun(String::from("evil_selfwrite loaded but its payload did not report")),
    }
}

/// A compromised loader: `hello.ko`'s text put in a frame and mapped in
/// the module area writable and executable at once, as a section marked
/// both would want, skipping `klib::module`'s refusal. The NK refuses an
/// executable leaf of a data frame; on `native` the page is writable code.
pub fn writable_code() -> Outcome {
    use crate::mm::modarea;
    use nk_model::layout::{PAGE_SIZE, table_index};
    use nk_model::pte::{Pte, PteFlags};
    let Some(frame) = frames::alloc() else { return NotRun(String::from("no frames")) };
    frame.fill(0xc3);
    // Past any module `place` would put there: the area's last page.
    let va = modarea::BASE + modarea::SIZE - PAGE_SIZE;
    let flags = PteFlags::PRESENT | PteFlags::WRITABLE;
    let result = modarea::map_raw(va, Pte::new(frame.addr(), flags));
    let outcome = match result {
        Err(e) => Blocked(format!("the NK refused a writable, executable module page: {e}")),
        Ok(table) => {
            let t = crate::mm::walk::entry(table * PAGE_SIZE, table_index(va, 1));
            Succeeded(format!("module page {va:#x} is writable and executable ({:#x})", t.bits()))
        }
    };
    let _ = modarea::unmap(va, 1);
    let _ = frames::free(frame);
    outcome
}

/// Hooks getppid by a store from module code into the sealed system-call
/// table: the store faults on the protected kernel (this thread dies,
/// leaving the module half-loaded); on `native` the hook is in place.
pub fn hook_syscall() -> Outcome {
    use super::services::{VICTIM, evil, victim_is_evil};
    let Some(slot) = crate::services::systable::entry_address(VICTIM) else {
        return NotRun(String::from("no system-call table"));
    };
    let old = crate::services::systable::lookup(VICTIM).map_or(0, |h| h as *const () as u64);
    let extra = [("evil_syscall_slot", slot), ("evil_handler", evil as *const () as u64)];
    let outcome = match load_with("evil_hook", &extra) {
        Err(outcome) => return outcome,
        Ok(Err(LoadError::Init(PAYLOAD_RAN))) if victim_is_evil() => {
            Succeeded(String::from("evil_hook stored into the sealed table: getppid dispatched to the attacker"))
        }
        Ok(r) => NotRun(format!("evil_hook: {:?}", r.err())),
    };
    restore(slot, old);
    outcome
}

/// Calls the NK's gate body from module code, past the gate, to write the
/// sealed system-call table: on the protected kernel the body's first
/// write to NK data faults (this thread dies); on `native` it lands.
pub fn call_nk_body() -> Outcome {
    use super::services::{VICTIM, evil, victim_is_evil};
    let Some(slot) = crate::services::systable::entry_address(VICTIM) else {
        return NotRun(String::from("no system-call table"));
    };
    let old = crate::services::systable::lookup(VICTIM).map_or(0, |h| h as *const () as u64);
    let word = alloc::boxed::Box::new(evil as *const () as u64);
    let extra = [
        ("evil_gate_body", super::gate::body_address()),
        ("evil_syscall_slot", slot),
        ("evil_src", super::direct_map(&*word as *const u64 as u64)),
    ];
    let outcome = match load_with("evil_nkcall", &extra) {
        Err(outcome) => return outcome,
        Ok(Err(LoadError::Init(PAYLOAD_RAN))) if victim_is_evil() => {
            Succeeded(String::from("evil_nkcall ran the NK's gate body past the gate: getppid redirected"))
        }
        Ok(r) => NotRun(format!("evil_nkcall: {:?}", r.err())),
    };
    restore(slot, old);
    outcome
}

/// Puts the table entry back after an attack that got through (`native`,
/// where the table is writable memory).
fn restore(slot: u64, old: u64) {
    if super::NATIVE {
        super::services::restore_entry(slot, old);
    }
}
