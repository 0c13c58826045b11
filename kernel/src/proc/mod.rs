//! Processes: a user address space, its frames, and the kernel thread that
//! runs it. A process is entered with `iretq` from its thread and comes back
//! through `syscall` and interrupts onto that thread's kernel stack.

pub mod elf;
pub mod syscall;

use crate::mm::frames::{self, Frame};
use crate::mm::vm::AddressSpace;
use crate::sched;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use nk_model::layout::PAGE_SIZE;
use nk_model::pte::PteFlags;
use spin::Mutex;

/// The top of every process's stack, and its size.
const STACK_TOP: u64 = 0x7fff_ffff_f000;
const STACK_PAGES: u64 = 32;
/// Anonymous `mmap` regions are handed out upwards from here.
const MMAP_BASE: u64 = 0x1000_0000_0000;

pub type Pid = u64;

pub struct Process {
    pub pid: Pid,
    pub space: AddressSpace,
    /// Every user page and its frame, to free on exit.
    pub pages: BTreeMap<u64, Frame>,
    pub brk_start: u64,
    pub brk: u64,
    pub mmap_next: u64,
    pub fs_base: u64,
    pub exit_code: Option<i32>,
}

impl Process {
    pub fn root(&self) -> u64 {
        self.space.root()
    }

    /// Maps fresh zeroed pages over `[start, end)` with `flags` (user).
    pub fn map_zeroed(&mut self, start: u64, end: u64, flags: PteFlags) -> Result<(), ()> {
        let mut new = Vec::new();
        let mut va = start;
        while va < end {
            if !self.pages.contains_key(&va) {
                let frame = frames::alloc().ok_or(())?;
                frame.fill(0);
                new.push((va, frame));
            }
            va += PAGE_SIZE;
        }
        let map: Vec<(u64, u64)> = new.iter().map(|(va, f)| (*va, f.addr())).collect();
        match self.space.map(&map, flags | PteFlags::USER) {
            Ok(()) => {
                self.pages.extend(new);
                Ok(())
            }
            Err(_) => {
                for (_, f) in new {
                    let _ = frames::free(f);
                }
                Err(())
            }
        }
    }
}

/// Every live process, by the id of the thread that runs it.
static PROCS: Mutex<BTreeMap<sched::ThreadId, Process>> = Mutex::new(BTreeMap::new());

/// Runs `f` on the calling thread's process.
pub fn with_current<R>(f: impl FnOnce(&mut Process) -> R) -> Option<R> {
    let tid = sched::current();
    crate::arch::without_interrupts(|| PROCS.lock().get_mut(&tid).map(f))
}

#[derive(Debug)]
pub enum SpawnError {
    NotFound,
    Load(elf::LoadError),
    OutOfMemory,
    Vm(crate::mm::vm::VmError),
    /// The arguments do not fit the stack.
    Arguments,
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotFound => f.write_str("no such file in the initrd"),
            Self::Load(e) => write!(f, "cannot load: {e:?}"),
            Self::OutOfMemory => f.write_str("out of memory"),
            Self::Vm(e) => write!(f, "address space: {e}"),
            Self::Arguments => f.write_str("arguments too long for the stack"),
        }
    }
}

/// The initrd's bytes, through the direct map.
pub fn initrd() -> &'static [u8] {
    match crate::boot_info().initrd {
        Some(r) => crate::mm::frames::phys_slice(r.start, r.end - r.start),
        None => &[],
    }
}

/// Starts the program at `path` in the initrd with `argv`; returns its
/// thread, which `sched::join` waits for.
pub fn spawn(path: &str, argv: Vec<String>) -> Result<sched::ThreadId, SpawnError> {
    let image = klib::cpio::find(initrd(), path.trim_start_matches('/')).ok_or(SpawnError::NotFound)?;
    let mut space = AddressSpace::new().map_err(SpawnError::Vm)?;
    let mut pages = BTreeMap::new();
    let loaded = match elf::load(image, &mut space, &mut pages) {
        Ok(l) => l,
        Err(e) => {
            drop(space);
            pages.into_values().for_each(|f| {
                let _ = frames::free(f);
            });
            return Err(SpawnError::Load(e));
        }
    };
    let mut proc = Process {
        pid: 0,
        space,
        pages,
        brk_start: loaded.end,
        brk: loaded.end,
        mmap_next: MMAP_BASE,
        fs_base: 0,
        exit_code: None,
    };
    let stack_flags = PteFlags::WRITABLE | PteFlags::NO_EXECUTE;
    if proc.map_zeroed(STACK_TOP - STACK_PAGES * PAGE_SIZE, STACK_TOP, stack_flags).is_err() {
        release(proc);
        return Err(SpawnError::OutOfMemory);
    }
    let sp = match syscall::lay_out_stack(&proc, STACK_TOP, &argv, &loaded) {
        Some(sp) => sp,
        None => {
            release(proc);
            return Err(SpawnError::Arguments);
        }
    };
    let entry = loaded.entry;
    let root = proc.root();
    let tid = sched::spawn(path, move || {
        sched::become_user(root);
        crate::arch::user::enter_user(entry, sp)
    });
    proc.pid = tid;
    crate::arch::without_interrupts(|| PROCS.lock().insert(tid, proc));
    Ok(tid)
}

/// Frees a process's pages and address space (the CPU must not be on it).
fn release(proc: Process) {
    let Process { space, pages, .. } = proc;
    drop(space);
    for f in pages.into_values() {
        let _ = frames::free(f);
    }
}

/// Ends the calling thread's process with `code`: leaves its address space,
/// frees it, and ends the thread.
pub fn exit_current(code: i32) -> ! {
    let tid = sched::current();
    let proc = crate::arch::without_interrupts(|| PROCS.lock().remove(&tid));
    if let Some(mut p) = proc {
        p.exit_code = Some(code);
        sched::leave_user();
        EXITS.lock().insert(tid, code);
        release(p);
    }
    sched::exit(sched::Exit::Returned)
}

/// Exit codes of processes not yet waited for.
static EXITS: Mutex<BTreeMap<sched::ThreadId, i32>> = Mutex::new(BTreeMap::new());

/// Waits for the process on thread `tid`; its exit code, or `None` if it
/// was killed (a fault) or never was a process.
pub fn wait(tid: sched::ThreadId) -> Option<i32> {
    let how = sched::join(tid);
    let code = crate::arch::without_interrupts(|| EXITS.lock().remove(&tid));
    match how {
        Some(sched::Exit::Returned) => code,
        _ => None,
    }
}

/// Kills the calling thread's process (a fault, a bad return address).
pub fn kill_current(why: &str) -> ! {
    crate::println!("process '{}' killed: {}", sched::current_name(), why);
    exit_current(-11)
}

/// Called when a thread dies by a fault: frees its process, if it had one.
pub fn reap_killed(tid: sched::ThreadId) {
    if let Some(p) = crate::arch::without_interrupts(|| PROCS.lock().remove(&tid)) {
        release(p);
    }
}

/// The FS base (thread pointer) of the process on thread `tid`, 0 if none.
pub fn fs_base_of(tid: sched::ThreadId) -> u64 {
    // Called from the scheduler with interrupts off.
    PROCS.try_lock().and_then(|p| p.get(&tid).map(|p| p.fs_base)).unwrap_or(0)
}
