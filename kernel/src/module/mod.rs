//! Loadable kernel modules: loading (`klib::module` checks and links the
//! file, the NK vets the text and maps it executable), unloading (exit,
//! unmap, the NK gives the code frames back as zeroed data), and the
//! registry that `insmod`, `rmmod`, `lsmod`, `init_module`,
//! `finit_module`, `delete_module` and `/proc/modules` use
//! (docs/modules.md).
//!
//! A load or unload runs with interrupts off from start to end: on this
//! one CPU nothing else runs meanwhile, so no module's timer or device is
//! called half-way, and no lock is held while module code runs.

mod abi;

use crate::mm::frames::{self, Frame};
use crate::mm::modarea;
use crate::mm::vm::VmError;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use klib::module::{Kind, ModError, Module};
use nk_model::layout::PAGE_SIZE;
use spin::Mutex;

pub use abi::{dev_close, dev_open, dev_read, dev_write, device_slot, proc_files, set_quiet, tick};

/// A module in the kernel.
struct Loaded {
    name: String,
    version: String,
    base: u64,
    /// The image's frames, in page order (text first).
    frames: Vec<Frame>,
    text_pages: u64,
    exit: Option<u64>,
    /// Its `init` returned and its `exit` has not begun.
    live: bool,
}

impl Loaded {
    fn end(&self) -> u64 {
        self.base + self.frames.len() as u64 * PAGE_SIZE
    }
}

static MODULES: Mutex<Vec<Loaded>> = Mutex::new(Vec::new());

/// Loads, unloads and refusals since boot, for `lsmod` and the tests.
static LOADS: AtomicU64 = AtomicU64::new(0);
static UNLOADS: AtomicU64 = AtomicU64::new(0);

/// Why a module was not loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file: `klib::module` says what is wrong.
    Module(ModError),
    /// A module of that name is loaded.
    Exists(String),
    /// No frames, or no room left in the module area.
    NoMemory,
    /// The nested kernel refused a mapping: the text holds a protected
    /// instruction, or a rule of the vMMU.
    Refused(VmError),
    /// `init` returned this errno; the module was unloaded.
    Init(i64),
}

impl LoadError {
    pub fn errno(&self) -> i64 {
        match self {
            Self::Module(e) => e.errno(),
            Self::Exists(_) => 17,
            Self::NoMemory => 12,
            Self::Refused(_) => 1,
            Self::Init(e) => *e,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Module(e) => write!(f, "{e}"),
            Self::Exists(name) => write!(f, "a module named {name} is loaded"),
            Self::NoMemory => f.write_str("out of memory for the module"),
            Self::Refused(e) => write!(f, "the nested kernel refused it: {e}"),
            Self::Init(e) => write!(f, "its init failed with errno {e}"),
        }
    }
}

/// Why a module was not unloaded.
#[derive(Debug, PartialEq, Eq)]
pub enum UnloadError {
    NotLoaded,
    /// Open devices of its hold it (EAGAIN, as Linux's `delete_module`).
    InUse,
    /// It has no exit function: it stays for good (EBUSY).
    Permanent,
}

impl UnloadError {
    pub fn errno(&self) -> i64 {
        match self {
            Self::NotLoaded => 2,
            Self::InUse => 11,
            Self::Permanent => 16,
        }
    }
}

impl fmt::Display for UnloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotLoaded => "no module of that name is loaded",
            Self::InUse => "the module is in use (a device of its is open)",
            Self::Permanent => "the module has no exit function and cannot be unloaded",
        })
    }
}

/// The first address of the area with `pages` pages free after it, and a
/// free guard page before and after (a module running off its end faults).
fn place(modules: &[Loaded], pages: u64) -> Option<u64> {
    let mut ranges: Vec<(u64, u64)> = modules.iter().map(|m| (m.base, m.end())).collect();
    ranges.sort_unstable();
    let want = (pages + 1) * PAGE_SIZE;
    let mut at = modarea::BASE + PAGE_SIZE;
    for (base, end) in ranges {
        if base >= at + want {
            break;
        }
        at = at.max(end + PAGE_SIZE);
    }
    (at + want <= modarea::BASE + modarea::SIZE).then_some(at)
}

/// Loads the module in `bytes` and runs its `init`; returns its name.
pub fn load(bytes: &[u8]) -> Result<String, LoadError> {
    load_with(bytes, &[])
}

/// `load`, resolving `extra` symbols before the kernel's exports: what a
/// compromised loader would do for a malicious module (the attack catalog
/// uses it to hand modules addresses the interface never exports).
pub fn load_with(bytes: &[u8], extra: &[(&str, u64)]) -> Result<String, LoadError> {
    crate::arch::without_interrupts(|| load_quiet(bytes, extra))
}

fn load_quiet(bytes: &[u8], extra: &[(&str, u64)]) -> Result<String, LoadError> {
    let module = Module::parse(bytes).map_err(LoadError::Module)?;
    let name = module.info.name.clone();
    let mut modules = MODULES.lock();
    if modules.iter().any(|m| m.name == name) {
        return Err(LoadError::Exists(name));
    }
    let base = place(&modules, module.pages()).ok_or(LoadError::NoMemory)?;
    let resolve = |name: &str| extra.iter().find(|(n, _)| *n == name).map(|&(_, a)| a).or_else(|| abi::resolve(name));
    let image = module.link(base, &resolve).map_err(LoadError::Module)?;
    let mut frames_ = Vec::new();
    frames_.try_reserve_exact(module.pages() as usize).map_err(|_| LoadError::NoMemory)?;
    for page in image.bytes.chunks_exact(PAGE_SIZE as usize) {
        let Some(frame) = frames::alloc() else {
            give_back(&frames_, 0);
            return Err(LoadError::NoMemory);
        };
        frame.write_at(0, page);
        frames_.push(frame);
    }
    let kinds = (0..module.pages()).map(|i| match i {
        i if i < module.text_pages => Kind::Text,
        i if i < module.text_pages + module.ro_pages => Kind::ReadOnly,
        _ => Kind::Data,
    });
    let pages: Vec<(Frame, Kind)> = frames_.iter().copied().zip(kinds).collect();
    if let Err(e) = modarea::map(base, &pages) {
        unmap_and_give_back(base, &frames_, module.text_pages);
        return Err(LoadError::Refused(e));
    }
    let loaded = Loaded {
        name: name.clone(),
        version: module.info.version.clone(),
        base,
        frames: frames_,
        text_pages: module.text_pages,
        exit: image.exit,
        live: false,
    };
    let end = loaded.end();
    modules.push(loaded);
    // Unlocked while module code runs: its calls back (a device, a timer)
    // look the module up.
    drop(modules);
    let status = abi::call_init(image.init);
    let mut modules = MODULES.lock();
    let Some(at) = modules.iter().position(|m| m.base == base) else {
        return Err(LoadError::Init(5));
    };
    if status != 0 {
        let m = modules.swap_remove(at);
        drop(modules);
        abi::forget(base, end, &name);
        unmap_and_give_back(m.base, &m.frames, m.text_pages);
        // A positive return is not an errno: EINVAL, as Linux would say.
        return Err(LoadError::Init(if status < 0 { -i64::from(status) } else { 22 }));
    }
    modules[at].live = true;
    LOADS.fetch_add(1, Ordering::Relaxed);
    Ok(name)
}

/// Runs `name`'s exit and unloads it, unless a device of its is open.
pub fn unload(name: &str) -> Result<(), UnloadError> {
    crate::arch::without_interrupts(|| {
        let mut modules = MODULES.lock();
        let at = modules.iter().position(|m| m.name == name && m.live).ok_or(UnloadError::NotLoaded)?;
        let (base, end) = (modules[at].base, modules[at].end());
        let Some(exit) = modules[at].exit else { return Err(UnloadError::Permanent) };
        if abi::in_use(base, end) {
            return Err(UnloadError::InUse);
        }
        modules[at].live = false;
        drop(modules);
        abi::call_exit(exit);
        abi::forget(base, end, name);
        let mut modules = MODULES.lock();
        let Some(at) = modules.iter().position(|m| m.base == base) else { return Err(UnloadError::NotLoaded) };
        let m = modules.swap_remove(at);
        drop(modules);
        unmap_and_give_back(m.base, &m.frames, m.text_pages);
        UNLOADS.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })
}

/// Unmaps a module's pages, then hands its frames back: each text frame
/// once the NK has turned it back into zeroed data (it refuses while any
/// mapping of it is left), the rest at once. A frame the NK keeps as code
/// is leaked, never reused.
fn unmap_and_give_back(base: u64, frames_: &[Frame], text_pages: u64) {
    if let Err(e) = modarea::unmap(base, frames_.len() as u64) {
        crate::println!("module: cannot unmap {base:#x} ({e}); its frames leak");
        return;
    }
    give_back(frames_, text_pages);
}

fn give_back(frames_: &[Frame], text_pages: u64) {
    for (i, &frame) in frames_.iter().enumerate() {
        let was_code = (i as u64) < text_pages && nk::api::frame_kind(frame.number()) == Some(nk::FrameKind::Code);
        if was_code && let Err(e) = nk::api::release_code(frame.number()) {
            crate::println!("module: the NK keeps frame {:#x} as code ({e}); it leaks", frame.addr());
            continue;
        }
        let _ = frames::free(frame);
    }
}

/// The module whose image holds `addr`: its base, end and name.
fn owner_of(addr: u64) -> Option<(u64, u64, String)> {
    MODULES.lock().iter().find(|m| (m.base..m.end()).contains(&addr)).map(|m| (m.base, m.end(), m.name.clone()))
}

/// One line of `lsmod`.
pub struct Listed {
    pub name: String,
    pub version: String,
    pub bytes: u64,
    pub users: u64,
    pub base: u64,
    pub live: bool,
}

pub fn list() -> Vec<Listed> {
    let modules: Vec<(String, String, u64, u64, bool)> =
        MODULES.lock().iter().map(|m| (m.name.clone(), m.version.clone(), m.base, m.end(), m.live)).collect();
    let mut out: Vec<Listed> = modules
        .into_iter()
        .map(|(name, version, base, end, live)| Listed {
            name,
            version,
            bytes: end - base,
            users: abi::users(base, end),
            base,
            live,
        })
        .collect();
    out.sort_by_key(|m| m.base);
    out
}

/// `/proc/modules`, in Linux's format (which busybox's `lsmod` reads).
pub fn proc_modules() -> String {
    let mut out = String::new();
    for m in list() {
        let state = if m.live { "Live" } else { "Loading" };
        let _ = fmt::Write::write_fmt(
            &mut out,
            format_args!("{} {} {} - {state} {:#x}\n", m.name, m.bytes, m.users, m.base),
        );
    }
    out
}

/// Loads and unloads since boot.
pub fn counts() -> (u64, u64) {
    (LOADS.load(Ordering::Relaxed), UNLOADS.load(Ordering::Relaxed))
}

/// What the system holds that a module's load and unload could leak:
/// free frames, heap bytes in use, module-area tables.
fn footprint() -> (u64, u64, usize) {
    (frames::stats().0, crate::mm::heap::stats().0, modarea::tables())
}

crate::ktest!(
    fn every_example_module_loads_and_unloads_a_thousand_times_without_a_leak() {
        const CYCLES: usize = 1000;
        for name in ["hello", "rot13", "ticker"] {
            let path = alloc::format!("/lib/modules/{name}.ko");
            let bytes = crate::fs::read_file(crate::fs::ROOT, &path).map_err(|e| alloc::format!("{path}: {e}"))?;
            abi::set_quiet(true);
            // Once first: the area's tables and the registries' vectors
            // are made on first use and kept.
            let once = load(&bytes)
                .map_err(|e| alloc::format!("{name}: {e}"))
                .and_then(|_| unload(name).map_err(|e| alloc::format!("{name}: {e}")));
            let before = footprint();
            let mut failed = None;
            for i in 0..CYCLES {
                if let Err(e) = load(&bytes) {
                    failed = Some(alloc::format!("{name}: load {i}: {e}"));
                    break;
                }
                if let Err(e) = unload(name) {
                    failed = Some(alloc::format!("{name}: unload {i}: {e}"));
                    break;
                }
            }
            abi::set_quiet(false);
            once?;
            if let Some(e) = failed {
                return Err(e);
            }
            let after = footprint();
            crate::kassert!(
                before == after,
                "{} after {} cycles: (free frames, heap bytes, area tables) {:?} before, {:?} after",
                name,
                CYCLES,
                before,
                after
            );
        }
        crate::kassert!(list().is_empty(), "modules left loaded");
        Ok(())
    }
);

crate::ktest!(
    fn bad_module_files_are_refused_with_an_errno() {
        let bytes =
            crate::fs::read_file(crate::fs::ROOT, "/lib/modules/hello.ko").map_err(|e| alloc::format!("{e}"))?;
        let mut arm = bytes.clone();
        arm[18] = 183;
        let before = footprint();
        // Every truncation, a wrong machine, and a file that is no ELF.
        for len in (0..bytes.len()).step_by(97) {
            let e = load(&bytes[..len]).err().ok_or_else(|| alloc::format!("a {len}-byte prefix loaded"))?;
            crate::kassert!(e.errno() == 8, "prefix of {}: errno {} ({})", len, e.errno(), e);
        }
        crate::kassert!(load(&arm).is_err_and(|e| e.errno() == 8));
        crate::kassert!(load(b"#!/bin/sh\necho hi\n").is_err_and(|e| e.errno() == 8));
        crate::kassert!(unload("hello") == Err(UnloadError::NotLoaded));
        crate::kassert!(before == footprint(), "a refused load leaked: {:?} then {:?}", before, footprint());
        // Refused by the NK (protected) or by its own init (native, where
        // the hidden instruction runs): either way nothing stays.
        let evil = crate::fs::read_file(crate::fs::ROOT, "/lib/modules/evil_pagecross.ko")
            .map_err(|e| alloc::format!("{e}"))?;
        let before = footprint();
        for _ in 0..20 {
            let e = load(&evil).err().ok_or("evil_pagecross loaded")?;
            let want = if nk::BACKEND == "native" { 133 } else { 1 };
            crate::kassert!(e.errno() == want, "evil_pagecross: errno {} ({})", e.errno(), e);
        }
        crate::kassert!(before == footprint(), "refused evil loads leaked: {:?} then {:?}", before, footprint());
        Ok(())
    }
);

crate::ktest!(
    fn a_module_text_is_vetted_code_and_its_frames_come_back_as_data() {
        let bytes =
            crate::fs::read_file(crate::fs::ROOT, "/lib/modules/hello.ko").map_err(|e| alloc::format!("{e}"))?;
        abi::set_quiet(true);
        let loaded = load(&bytes);
        abi::set_quiet(false);
        loaded.map_err(|e| alloc::format!("{e}"))?;
        let (base, text) = {
            let modules = MODULES.lock();
            let m = modules.iter().find(|m| m.name == "hello").ok_or("not listed")?;
            (m.base, m.frames[0])
        };
        let t = crate::mm::walk::translate(crate::mm::walk::current_root(), base).ok_or("text not mapped")?;
        crate::kassert!(t.executable && !t.writable && !t.user, "text mapped {:?}", t);
        if nk::BACKEND != "native" {
            crate::kassert_eq!(nk::api::frame_kind(text.number()), Some(nk::FrameKind::Code));
        }
        abi::set_quiet(true);
        let gone = unload("hello");
        abi::set_quiet(false);
        gone.map_err(|e| alloc::format!("{e}"))?;
        crate::kassert!(crate::mm::walk::translate(crate::mm::walk::current_root(), base).is_none());
        if nk::BACKEND != "native" {
            crate::kassert_eq!(nk::api::frame_kind(text.number()), Some(nk::FrameKind::Data));
        }
        Ok(())
    }
);
