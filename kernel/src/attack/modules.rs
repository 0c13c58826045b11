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
    let path = format!("/lib/modules/{name}.ko");
    let bytes = crate::fs::read_file(crate::fs::ROOT, &path)
        .map_err(|e| NotRun(format!("{path}: {e} (built by cargo xtask build)")))?;
    Ok(crate::module::load(&bytes))
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
