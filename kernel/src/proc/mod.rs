//! Processes: a user address space, its frames, and the kernel thread that
//! runs it. A process is entered with `iretq` from its thread and comes back
//! through `syscall` and interrupts onto that thread's kernel stack.

pub mod clock;
pub mod elf;
pub mod jobs;
pub mod limits;
pub mod mem;
pub mod missing;
pub mod signal;
pub mod syscall;

use crate::mm::frames::{self, Frame};
use crate::mm::vm::Batch;
use crate::sched;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use mem::{Backing, Memory, PROT_READ, PROT_WRITE, Region};
use nk_model::layout::PAGE_SIZE;
use spin::Mutex;

/// The top of every process's stack, and its size: pages arrive as it
/// grows into them.
const STACK_TOP: u64 = 0x7fff_ffff_f000;
const STACK_SIZE: u64 = 8 << 20;
/// Mapped before the program runs, for argv, envp and the auxiliary vector.
const STACK_READY: u64 = 16 * PAGE_SIZE;
/// Anonymous `mmap` regions are handed out upwards from here.
pub(super) const MMAP_BASE: u64 = 0x1000_0000_0000;

pub type Pid = u64;

/// Processes at most: a fork past it fails with EAGAIN (a fork bomb stops
/// there, and the kernel keeps its memory).
pub const MAX_PROCESSES: usize = 64;
/// Kernel heap a process's bookkeeping takes per mapped page at most (its
/// page entry, a share count, the B-tree's slack): `fork` asks the heap
/// for this much per page first, and fails with ENOMEM instead of
/// exhausting it.
pub const HEAP_PER_PAGE: u64 = 256;
/// Kernel heap a new process takes besides its pages: its kernel stack
/// (128 KiB), descriptor table, signal state and regions.
const HEAP_PER_PROCESS: u64 = 160 << 10;

pub struct Process {
    pub pid: Pid,
    /// The process that forked it (0: started by the kernel).
    pub parent: Pid,
    /// Its regions and pages, in its own address space.
    pub mem: Memory,
    pub brk_start: u64,
    pub brk: u64,
    pub mmap_next: u64,
    pub fs_base: u64,
    pub exit_code: Option<i32>,
    /// Open files (shared descriptions after `fork`, as on Linux).
    pub files: crate::fs::files::FdTable,
    /// The working directory.
    pub cwd: crate::fs::Ino,
    /// Boxed: 4 KiB that would otherwise ride on kernel stacks in every
    /// move of a `Process`.
    pub sig: alloc::boxed::Box<signal::Signals>,
    /// The unimplemented calls it has been said to lack (`missing`).
    pub missing: klib::linux_nr::Seen,
    /// The file-mode creation mask (`umask`).
    pub umask: u32,
    pub limits: limits::Limits,
    /// CPU time charged to it and to its reaped children.
    pub cpu: clock::Times,
    /// Its ITIMER_REAL, when armed.
    pub alarm: Option<clock::Alarm>,
    /// Its group, session, and whether it is stopped.
    pub job: jobs::Job,
    /// The program it runs (absolute path) and its argv, NUL-separated.
    pub exe: String,
    pub cmdline: Vec<u8>,
    /// The alternate signal stack (`sigaltstack`): base and size. Kept by
    /// `fork`, gone with the old program's memory at `execve`.
    pub alt_stack: Option<(u64, u64)>,
}

impl Process {
    pub fn root(&self) -> u64 {
        self.mem.root()
    }
}

/// Every live process, by the id of the thread that runs it.
static PROCS: Mutex<BTreeMap<sched::ThreadId, Process>> = Mutex::new(BTreeMap::new());

/// How many processes there are.
pub fn count() -> usize {
    crate::arch::without_interrupts(|| PROCS.lock().len())
}

/// Runs `f` on every process, in pid order, with the table locked (for
/// `/proc`): `f` must not take the table's lock.
pub fn each(mut f: impl FnMut(&Process)) {
    crate::arch::without_interrupts(|| PROCS.lock().values().for_each(&mut f));
}

/// Runs `f` on process `pid`, if there is one.
pub fn with_process<R>(pid: Pid, f: impl FnOnce(&mut Process) -> R) -> Option<R> {
    crate::arch::without_interrupts(|| PROCS.lock().get_mut(&pid).map(f))
}

/// The calling process's file-mode creation mask (the default outside one).
pub fn umask() -> u32 {
    with_current(|p| p.umask).unwrap_or(crate::fs::files::UMASK)
}

/// Runs `f` on the calling thread's process.
pub fn with_current<R>(f: impl FnOnce(&mut Process) -> R) -> Option<R> {
    let tid = sched::current();
    crate::arch::without_interrupts(|| PROCS.lock().get_mut(&tid).map(f))
}

#[derive(Debug)]
pub enum SpawnError {
    /// The file system refused the path (missing, not a file, not executable).
    Fs(crate::fs::FsError),
    Load(elf::LoadError),
    OutOfMemory,
    Vm(crate::mm::vm::VmError),
    /// The arguments do not fit the stack.
    Arguments,
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Fs(e) => write!(f, "{e}"),
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

/// A program loaded into a fresh address space, with its stack laid out:
/// ready to become a new process (`spawn`) or to replace one (`execve`).
struct Image {
    mem: Memory,
    /// What builds `mem`'s address space: its root, the program's pages
    /// and the stack's, for the caller to submit with whatever else goes
    /// in the same crossing (an exec's switch and old space's teardown).
    batch: Batch,
    loaded: elf::Loaded,
    sp: u64,
    /// The program's absolute path and its argv, NUL-separated, for
    /// `/proc/PID/exe` and `/proc/PID/cmdline`.
    exe: String,
    cmdline: Vec<u8>,
}

impl Image {
    fn build<A: AsRef<[u8]>, E: AsRef<[u8]>>(
        cwd: crate::fs::Ino,
        path: &str,
        argv: &[A],
        envp: &[E],
    ) -> Result<Image, SpawnError> {
        let st = crate::fs::stat_path(cwd, path).map_err(SpawnError::Fs)?;
        if st.kind != crate::fs::Kind::File || st.mode & 0o111 == 0 {
            return Err(SpawnError::Fs(crate::fs::FsError::Access));
        }
        let file = crate::fs::read_file(cwd, path).map_err(SpawnError::Fs)?;
        let mut batch = Batch::new();
        let mut mem = Memory::new_in(&mut batch).map_err(SpawnError::Vm)?;
        // On failure what was staged runs all the same, so the space's
        // teardown finds it declared; the tables go before the frames.
        let fail = |batch: Batch, mem: Memory, e: SpawnError| {
            let _ = batch.submit();
            drop(mem);
            Err(e)
        };
        let mut pages = BTreeMap::new();
        let loaded = elf::load(file.as_slice(), &mut mem.space, &mut batch, &mut pages);
        drop(file);
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                let r = fail(batch, mem, SpawnError::Load(e));
                free_all(pages);
                return r;
            }
        };
        mem.adopt(pages);
        let stack = Region { end: STACK_TOP, prot: PROT_READ | PROT_WRITE, backing: Backing::Anon };
        if let Err(e) = mem.add_region(STACK_TOP - STACK_SIZE, STACK_TOP, stack) {
            return fail(batch, mem, SpawnError::Vm(e));
        }
        // The strings and their pointers sit at the top (up to ARG_MAX,
        // 2 MiB), laid out before the process runs to fault pages in.
        let strings: u64 = argv
            .iter()
            .map(|s| s.as_ref().len())
            .chain(envp.iter().map(|s| s.as_ref().len()))
            .map(|n| n as u64 + 1 + 8)
            .sum();
        let ready = (STACK_READY + strings.next_multiple_of(PAGE_SIZE)).min(STACK_SIZE);
        if mem.populate_in(&mut batch, STACK_TOP - ready, STACK_TOP).is_err() {
            return fail(batch, mem, SpawnError::OutOfMemory);
        }
        let Some(sp) = syscall::lay_out_stack(&mem, STACK_TOP, argv, envp, &loaded) else {
            return fail(batch, mem, SpawnError::Arguments);
        };
        let exe = exe_path(cwd, path);
        let cmdline = argv.iter().flat_map(|a| a.as_ref().iter().copied().chain([0])).collect();
        Ok(Image { mem, batch, loaded, sp, exe, cmdline })
    }
}

/// The absolute path of the file `path` names, its links followed (as
/// Linux's `/proc/PID/exe` names the file itself, not a link to it).
fn exe_path(cwd: crate::fs::Ino, path: &str) -> String {
    // Folded as it goes (`./x`, `../bin/y`, a link to `../lib/z`).
    use klib::path::lexical;
    let start = crate::fs::with(|fs| fs.path_of(cwd)).unwrap_or_else(|_| b"/".to_vec());
    let mut p = lexical(&start, path.as_bytes());
    // Linux's limit on links followed; past it, the path as it stands.
    for _ in 0..40 {
        let Ok(target) = crate::fs::with(|fs| fs.readlink(crate::fs::ROOT, &p).map(<[u8]>::to_vec)) else { break };
        let dir_end = p.iter().rposition(|&b| b == b'/').unwrap_or(0);
        p = lexical(&p[..dir_end.max(1)], &target);
    }
    String::from_utf8_lossy(&p).into_owned()
}

fn free_all(pages: BTreeMap<u64, (Frame, u8)>) {
    for (f, _) in pages.into_values() {
        let _ = frames::free(f);
    }
}

/// Starts the program at `path` in the initrd with `argv`; returns its
/// thread, which `wait` waits for.
pub fn spawn(path: &str, argv: Vec<String>) -> Result<sched::ThreadId, SpawnError> {
    let env = ["PATH=/bin:/usr/bin:/sbin:/usr/sbin", "HOME=/", "TERM=vt100"].map(String::from);
    let mut image = Image::build(crate::fs::ROOT, path, &argv, &env)?;
    core::mem::take(&mut image.batch).submit().map_err(SpawnError::Vm)?;
    let (entry, sp, root) = (image.loaded.entry, image.sp, image.mem.root());
    let proc = Process::new(image, 0);
    // The thread must not run before its process is in the table.
    let tid = crate::arch::without_interrupts(|| {
        let tid = sched::spawn(path, move || {
            sched::become_user(root);
            crate::arch::user::enter_user(entry, sp)
        });
        PROCS.lock().insert(tid, Process { pid: tid, job: jobs::Job::leader(tid), ..proc });
        tid
    });
    crate::services::proclist::add(tid, 0, path);
    Ok(tid)
}

impl Process {
    fn new(image: Image, parent: Pid) -> Process {
        Process {
            pid: 0,
            parent,
            mem: image.mem,
            brk_start: image.loaded.end,
            brk: image.loaded.end,
            mmap_next: MMAP_BASE,
            fs_base: 0,
            exit_code: None,
            files: crate::fs::files::FdTable::new(),
            cwd: crate::fs::ROOT,
            sig: alloc::boxed::Box::default(),
            missing: klib::linux_nr::Seen::default(),
            umask: crate::fs::files::UMASK,
            limits: limits::Limits::default(),
            cpu: clock::Times::default(),
            alarm: None,
            job: jobs::Job::default(),
            exe: image.exe,
            cmdline: image.cmdline,
            alt_stack: None,
        }
    }
}

/// `fork`: a copy of the calling process, whose thread returns from the
/// same system call with 0. The pages are shared, copy-on-write.
pub fn fork(frame: &crate::arch::user::SyscallFrame) -> Result<Pid, i64> {
    use syscall::errno;
    if crate::arch::without_interrupts(|| PROCS.lock().len()) >= MAX_PROCESSES {
        return Err(errno::EAGAIN);
    }
    crate::proc::mem::empty_graves();
    // The pages both will write first: the stack under the call, and the
    // thread block (musl writes the child's tid there).
    let stack = frame.rsp.wrapping_sub(8) & !(PAGE_SIZE - 1);
    let (mem, batch, parent, brk, mmap_next, fs_base, files, cwd, sig, inherited) =
        with_current(|p| -> Result<_, i64> {
            let need = (p.mem.resident() as u64).saturating_mul(HEAP_PER_PAGE).saturating_add(HEAP_PER_PROCESS);
            if !crate::mm::heap::can_grow(need) {
                return Err(errno::ENOMEM);
            }
            let hot = [stack, p.fs_base & !(PAGE_SIZE - 1)];
            let (mem, batch) = p.mem.fork(&hot).map_err(|_| errno::ENOMEM)?;
            Ok((
                mem,
                batch,
                p.pid,
                (p.brk_start, p.brk),
                p.mmap_next,
                p.fs_base,
                p.files.clone(),
                p.cwd,
                alloc::boxed::Box::new(p.sig.for_child()),
                (p.umask, p.limits, p.job.for_child(), p.exe.clone(), p.cmdline.clone(), p.alt_stack),
            ))
        })
        .ok_or(errno::EPERM)??;
    let child = Process {
        pid: 0,
        parent,
        mem,
        brk_start: brk.0,
        brk: brk.1,
        mmap_next,
        fs_base,
        exit_code: None,
        files,
        cwd,
        sig,
        missing: klib::linux_nr::Seen::default(),
        umask: inherited.0,
        limits: inherited.1,
        // A child starts with no time charged and no alarm, as on Linux.
        cpu: clock::Times::default(),
        alarm: None,
        job: inherited.2,
        exe: inherited.3,
        cmdline: inherited.4,
        alt_stack: inherited.5,
    };
    let root = child.mem.root();
    let mut regs = *frame;
    regs.rax = 0;
    let name = sched::current_name();
    let fpu = sched::fpu_state();
    // One crossing for the whole fork: the child's root and mappings, the
    // parent's write protection and the child's process-list entry. The
    // thread is made only once the batch has run: nothing of the child can
    // run before its address space exists.
    let mut child = Some(child);
    let forked = crate::arch::without_interrupts(|| {
        let tid = sched::next_id();
        let mut batch = batch;
        let listed = crate::services::proclist::stage_add(&mut batch, tid, parent, &name);
        if let Err(e) = batch.submit() {
            crate::println!("fork: the NK refused the fork's batch: {e}");
            return Err(errno::ENOMEM);
        }
        drop(listed);
        let spawned = sched::spawn(&name, move || {
            sched::become_user(root);
            crate::arch::user::resume_user(&regs)
        });
        // Interrupts are off: nothing else made a thread meanwhile.
        debug_assert_eq!(spawned, tid);
        sched::set_fpu_of(tid, fpu);
        if let Some(child) = child.take() {
            PROCS.lock().insert(tid, Process { pid: tid, ..child });
        }
        Ok(tid)
    });
    // A child that never ran goes here, interrupts on: its regions let go
    // of files.
    drop(child);
    forked
}

/// `execve`: replaces the calling process's program. On failure the caller
/// keeps running its old one.
pub fn execve(path: &str, argv: &[Vec<u8>], envp: &[Vec<u8>]) -> Result<core::convert::Infallible, i64> {
    use syscall::errno;
    let cwd = with_current(|p| p.cwd).ok_or(errno::EPERM)?;
    let mut image = Image::build(cwd, path, argv, envp).map_err(|e| match e {
        SpawnError::Fs(e) => e.errno(),
        SpawnError::Load(e) => e.errno(),
        SpawnError::OutOfMemory | SpawnError::Vm(_) => errno::ENOMEM,
        SpawnError::Arguments => errno::E2BIG,
    })?;
    let mut batch = core::mem::take(&mut image.batch);
    let (entry, sp, root) = (image.loaded.entry, image.sp, image.mem.root());
    let Some(old) = with_current(|p| {
        let parent = p.parent;
        let mut old = core::mem::replace(p, Process::new(image, parent));
        p.pid = old.pid;
        p.cwd = old.cwd;
        p.files = core::mem::replace(&mut old.files, crate::fs::files::FdTable::empty());
        p.files.close_on_exec();
        p.sig = core::mem::take(&mut old.sig);
        p.sig.exec();
        // Kept across execve, as on Linux: the mask, limits, times, alarm.
        (p.umask, p.limits, p.cpu, p.alarm) = (old.umask, old.limits, old.cpu, old.alarm);
        p.job = jobs::Job { execed: true, ..old.job };
        old
    }) else {
        let _ = batch.submit();
        return Err(errno::EPERM);
    };
    let pid = old.pid;
    // In a block: the rest of the old process is dropped at its end (this
    // function never returns, so nothing would drop it later).
    let remains = {
        let old = old;
        old.mem.retire()
    };
    // One crossing: the new space built, the switch to it, the new name
    // listed, the old space torn down (its root once no CPU runs on it).
    crate::arch::without_interrupts(|| {
        sched::become_user_in(root, &mut batch);
        let _listed = crate::services::proclist::stage_rename(&mut batch, pid, path);
        mem::bury(remains, batch);
    });
    mem::empty_graves();
    if crate::mm::walk::current_root() / PAGE_SIZE != root {
        // Past the point of no return, as on Linux: the old program is gone.
        sched::kill_current(alloc::format!("execve: the NK refused the new address space of pid {pid}"));
        exit_current(127);
    }
    let _ = sched::set_fs_base(0);
    sched::set_fpu_state(crate::arch::fpu::FpuState::default());
    crate::arch::user::enter_user(entry, sp)
}

/// Ends the calling thread's process with `code` (an exit status, as
/// `exit` gives it): leaves its address space, frees it, and ends the thread.
pub fn exit_current(code: i32) -> ! {
    finish(sched::current(), (code & 0xff) << 8);
    sched::exit(sched::Exit::Returned)
}

/// A process that ended and was not waited for yet.
struct Exited {
    tid: sched::ThreadId,
    parent: Pid,
    /// The wait status, in the Linux encoding.
    status: i32,
    /// Its group and session when it ended: for `wait4(0)` and
    /// `wait4(-pgid)`, and, as on Linux, a group lives while a member
    /// is a zombie.
    pgid: Pid,
    sid: Pid,
    /// Its CPU time, which the parent adds to its children's on reaping.
    cpu: clock::Times,
}

/// Processes that ended and were not waited for yet. A short list; a
/// vector, because the B-tree's removal code happens to encode `0f 01 75`
/// (lmsw) at an unaligned offset, which the image scanner refuses.
static EXITS: Mutex<Vec<Exited>> = Mutex::new(Vec::new());

fn take_exit(exits: &mut Vec<Exited>, f: impl Fn(&Exited) -> bool) -> Option<Exited> {
    exits.iter().position(f).map(|i| exits.swap_remove(i))
}

/// Whether group `pgid` of session `sid` has a member, a zombie not yet
/// reaped included (Linux keeps its pid, so its group, until then). Takes
/// the table locked, as callers hold it (lock order: PROCS, then EXITS).
pub(super) fn group_exists(procs: &BTreeMap<sched::ThreadId, Process>, pgid: Pid, sid: Pid) -> bool {
    procs.values().any(|q| q.job.pgid == pgid && q.job.sid == sid)
        || EXITS.lock().iter().any(|e| e.pgid == pgid && e.sid == sid)
}

/// A parent that is gone: its children are reaped by nobody.
pub const ORPHAN: Pid = Pid::MAX;

/// Removes the process on thread `tid` (the calling thread or one that just
/// died), records its wait status for its parent and frees its memory.
fn finish(tid: sched::ThreadId, status: i32) {
    mem::empty_graves();
    // The calling thread's process leaves in the crossing that switches
    // away from it (below); any other is unlisted first, whether or not it
    // was a process: a kernel thread the attack catalog listed leaves the
    // list when it dies too.
    let here = tid == sched::current();
    if !here {
        crate::services::proclist::remove(tid);
    }
    // Out of the table and into the exits in one step: a parent's wait4
    // must never see the child in neither (it would say ECHILD).
    let Some(mut p) = crate::arch::without_interrupts(|| {
        let mut procs = PROCS.lock();
        let p = procs.remove(&tid)?;
        // Its children outlive it: nobody will wait for them.
        for child in procs.values_mut().filter(|c| c.parent == tid) {
            child.parent = ORPHAN;
        }
        let mut exits = EXITS.lock();
        while let Some(zombie) = take_exit(&mut exits, |e| e.parent == tid) {
            sched::detach(zombie.tid);
        }
        if p.parent == ORPHAN {
            sched::detach(tid);
        } else {
            exits.push(Exited { tid, parent: p.parent, status, pgid: p.job.pgid, sid: p.job.sid, cpu: p.cpu });
            sched::wake(child_exit_channel(p.parent));
        }
        Some(p)
    }) else {
        if here {
            crate::services::proclist::remove(tid);
        }
        return;
    };
    p.exit_code = Some(status);
    let memory = p.mem;
    if here {
        // Still on its address space: the switch away, the teardown and
        // the unlisting are one crossing, at the switch.
        let (remains, unlist) = (memory.retire(), crate::services::proclist::removal(tid));
        sched::leave_user_at_switch(alloc::boxed::Box::new(move |mut batch| {
            if let Some((slot, bytes)) = unlist {
                batch.nk_write(slot, &bytes);
            }
            mem::bury(remains, batch);
        }));
    } else {
        drop(memory);
    }
    if p.parent != ORPHAN {
        let (code, st) =
            if status & 0x7f == 0 { (signal::CLD_EXITED, status >> 8) } else { (signal::CLD_KILLED, status) };
        let _ = signal::send(p.parent, signal::SIGCHLD, signal::Info { code, pid: tid, addr: 0, status: st });
    }
    // Killed for memory or not, what it held is back: the next shortage
    // may choose again.
    let _ = OOM_VICTIM.compare_exchange(tid, 0, Ordering::AcqRel, Ordering::Acquire);
}

/// Waits for the process on thread `tid` (one the kernel started); its
/// exit code, or `None` if it was killed or never was a process.
pub fn wait(tid: sched::ThreadId) -> Option<i32> {
    let how = sched::join(tid);
    // It has switched away for good: what its exit left is let go of now.
    mem::empty_graves();
    let status = crate::arch::without_interrupts(|| take_exit(&mut EXITS.lock(), |e| e.tid == tid)).map(|e| e.status);
    match (how, status) {
        (Some(sched::Exit::Returned), Some(st)) if st & 0x7f == 0 => Some(st >> 8),
        _ => None,
    }
}

/// `wait4`'s options.
pub const WNOHANG: i32 = 1;
pub const WUNTRACED: i32 = 2;
pub const WCONTINUED: i32 = 8;

/// `wait4`: a child of the caller that ended, or with WUNTRACED or
/// WCONTINUED one that stopped or continued since last asked, with its
/// wait status; `Ok(None)` with WNOHANG when there is none yet. `pid` is
/// as Linux's: > 0 that child, -1 any, 0 one in the caller's group, < -1
/// one in group -pid.
pub fn wait_child(pid: i64, options: i32) -> Result<Option<(Pid, i32)>, i64> {
    let me = sched::current();
    let my_group = with_current(|p| p.job.pgid).unwrap_or(0);
    let wanted = |tid: Pid, pgid: Pid| match pid {
        -1 => true,
        0 => pgid == my_group,
        p if p < -1 => pgid == p.unsigned_abs(),
        p => tid as i64 == p,
    };
    let reportable = |r: Option<jobs::Report>| match r {
        Some(jobs::Report::Stopped(_)) => options & WUNTRACED != 0,
        Some(jobs::Report::Continued) => options & WCONTINUED != 0,
        None => false,
    };
    loop {
        // One look at the table and the exits together (PROCS, then EXITS,
        // as `finish` takes them): a child moving from one to the other
        // between two looks would be in neither, and wait4 would say
        // ECHILD for a live child.
        let done = crate::arch::without_interrupts(|| {
            let mut procs = PROCS.lock();
            if let Some(e) = take_exit(&mut EXITS.lock(), |e| e.parent == me && wanted(e.tid, e.pgid)) {
                if let Some(p) = procs.get_mut(&me) {
                    p.cpu.reaped(&e.cpu);
                }
                return Ok(Some((e.tid, e.status, true)));
            }
            let mut children = procs.values_mut().filter(|c| c.parent == me && wanted(c.pid, c.job.pgid)).peekable();
            if children.peek().is_none() {
                return Err(syscall::errno::ECHILD);
            }
            Ok(children
                .find(|c| reportable(c.job.report))
                .and_then(|c| c.job.report.take().map(|r| (c.pid, r.status(), false))))
        })?;
        if let Some((tid, status, ended)) = done {
            if ended {
                sched::join(tid);
                mem::empty_graves();
            }
            return Ok(Some((tid, status)));
        }
        if options & WNOHANG != 0 {
            return Ok(None);
        }
        // Each exit, stop or continue of a child wakes its parent; so does
        // a signal.
        let mut interrupted = false;
        sched::wait_until(child_exit_channel(me), || {
            let procs = PROCS.lock();
            interrupted = procs.get(&me).is_some_and(|p| p.sig.deliverable());
            interrupted
                || EXITS.lock().iter().any(|e| e.parent == me && wanted(e.tid, e.pgid))
                || procs.values().any(|c| c.parent == me && wanted(c.pid, c.job.pgid) && reportable(c.job.report))
                || !procs.values().any(|p| p.parent == me && wanted(p.pid, p.job.pgid))
        });
        if interrupted {
            // As Linux's do_wait: made again after the signal, unless a
            // handler without SA_RESTART runs.
            return Err(syscall::errno::ERESTARTSYS);
        }
    }
}

/// What a parent sleeps on while its children run.
pub(super) fn child_exit_channel(parent: Pid) -> u64 {
    (1 << 63) | parent
}

/// Ends the calling process by signal `sig` (its default action): the
/// parent's wait status says which.
pub fn terminate_current(sig: u32) -> ! {
    let tid = sched::current();
    finish(tid, sig as i32);
    sched::exit(sched::Exit::Killed(alloc::format!("signal {sig}")))
}

/// Kills the calling thread's process (a fault, a bad return address).
pub fn kill_current(why: &str) -> ! {
    crate::println!("process '{}' killed: {}", sched::current_name(), why);
    finish(sched::current(), SIGSEGV);
    sched::exit(sched::Exit::Killed(String::from(why)))
}

const SIGSEGV: i32 = 11;

/// Called when a thread dies by a fault: ends its process, if it had one,
/// as if by SIGSEGV.
pub fn reap_killed(tid: sched::ThreadId) {
    finish(tid, SIGSEGV);
}

/// Resolves a fault at user address `va` of the calling process, if its
/// root is `root` (a user copy touching a page not mapped yet, or shared
/// copy-on-write). False when the access is not allowed there.
/// Out of memory, the largest process is killed (see `out_of_memory`) and
/// the copy fails (EFAULT): a copy may run with locks held that the
/// victim's exit needs, so it cannot wait for the memory to come back.
pub fn resolve_fault(root: u64, va: u64, write: bool) -> bool {
    match with_current(|p| if p.root() == root { p.mem.fault(va, write) } else { Err(mem::Fault::Access) }) {
        Some(Ok(())) => true,
        Some(Err(mem::Fault::OutOfMemory)) => {
            out_of_memory(va);
            false
        }
        _ => false,
    }
}

/// A page fault in user mode at `va`: resolved (the process goes on), or
/// not (it gets SIGSEGV or SIGBUS). A fault that needs memory the kernel
/// cannot find is Linux's out-of-memory case: the process that would give
/// back the most is killed with SIGKILL (`out_of_memory`). When that is
/// another process, the faulting one waits for its memory to come back and
/// then takes the fault again.
pub fn user_page_fault(va: u64, write: bool, exec: bool) -> Result<(), mem::Fault> {
    match with_current(|p| p.mem.fault_access(va, write, exec)).unwrap_or(Err(mem::Fault::Access)) {
        Err(mem::Fault::OutOfMemory) => {
            if out_of_memory(va) == Oom::Other {
                wait_for_oom_victim();
            }
            // Resolved in the sense that nothing more is to be done here:
            // either SIGKILL is pending and ends this process on the way
            // out, or the instruction runs again and faults again.
            Ok(())
        }
        r => r,
    }
}

/// The process killed for memory whose exit has not finished yet (0:
/// none). While it is set, no second victim is chosen: its memory is on
/// the way back.
static OOM_VICTIM: AtomicU64 = AtomicU64::new(0);

/// Whom `out_of_memory` killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Oom {
    /// The calling process: SIGKILL is pending.
    Me,
    /// Another process (now or by an earlier call): its memory is coming
    /// back.
    Other,
}

/// Out of memory in the calling process: SIGKILL, as from Linux's OOM
/// killer, to the process whose death gives back the most (frames it
/// alone holds, and the heap its page map takes; `Memory::oom_score`),
/// the caller on a tie. While an earlier victim is still exiting, nobody
/// else is killed.
fn out_of_memory(va: u64) -> Oom {
    // Frames of exits not let go of yet are memory coming back: try again.
    if mem::empty_graves() {
        return Oom::Other;
    }
    let me = sched::current();
    let pending = OOM_VICTIM.load(Ordering::Acquire);
    if pending == me {
        return Oom::Me;
    }
    if pending != 0 && crate::arch::without_interrupts(|| PROCS.lock().contains_key(&pending)) {
        return Oom::Other;
    }
    // The highest score; on a tie, the caller.
    let (score, _, victim) = crate::arch::without_interrupts(|| {
        PROCS.lock().iter().map(|(&tid, p)| (p.mem.oom_score(), tid == me, tid)).max().unwrap_or((0, true, me))
    });
    OOM_VICTIM.store(victim, Ordering::Release);
    let info = signal::Info { code: 0x80, addr: va, ..signal::Info::default() };
    if victim == me {
        crate::println!(
            "process '{}' (pid {}) killed: out of memory (fault at {:#x}; it gives back the most, {} pages)",
            sched::current_name(),
            me,
            va,
            score
        );
        signal::force(signal::SIGKILL, info);
        return Oom::Me;
    }
    crate::println!(
        "process '{}' (pid {}) killed: out of memory (it gives back the most, {} pages; pid {} faulted at {:#x})",
        sched::name_of(victim),
        victim,
        score,
        me,
        va
    );
    if signal::send(victim, signal::SIGKILL, info).is_err() {
        // Gone by itself in the meantime: its memory is back anyway.
        let _ = OOM_VICTIM.compare_exchange(victim, 0, Ordering::AcqRel, Ordering::Acquire);
    }
    Oom::Other
}

/// Waits (a bounded while) until the process killed for memory has
/// finished exiting and its memory is back.
fn wait_for_oom_victim() {
    // A victim asleep where a signal does not wake it would hold the
    // caller forever: after a second the fault is tried again anyway (and,
    // still out of memory, ends up here again).
    let until = crate::time::uptime_us() + 1_000_000;
    while OOM_VICTIM.load(Ordering::Acquire) != 0 && crate::time::uptime_us() < until {
        sched::yield_now();
    }
    mem::empty_graves();
}

/// The FS base (thread pointer) of the process on thread `tid`, if it
/// has one and the table is not locked.
pub fn fs_base_of(tid: sched::ThreadId) -> Option<u64> {
    // Called from the scheduler with interrupts off: never wait for the lock.
    PROCS.try_lock().and_then(|p| p.get(&tid).map(|p| p.fs_base))
}
