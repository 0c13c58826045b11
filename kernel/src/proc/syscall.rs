//! The Linux x86-64 system-call ABI: numbers, arguments in RDI, RSI, RDX,
//! R10, R8, R9, the result (or `-errno`) in RAX. Calls not implemented yet
//! return ENOSYS, as Linux does for calls it lacks.

use super::elf::Loaded;
use super::{Process, mem, signal};
use crate::arch::user::SyscallFrame;
use crate::mm::usercopy::{copy_from_user, copy_to_user};
use crate::services::systable::Handler;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use nk_model::layout::{PAGE_SIZE, USER_END};

pub mod errno {
    pub const EPERM: i64 = 1;
    pub const E2BIG: i64 = 7;
    pub const EBADF: i64 = 9;
    pub const ECHILD: i64 = 10;
    pub const ENOMEM: i64 = 12;
    pub const EACCES: i64 = 13;
    pub const EFAULT: i64 = 14;
    pub const EEXIST: i64 = 17;
    pub const ENOENT: i64 = 2;
    pub const EFBIG: i64 = 27;
    pub const ESRCH: i64 = 3;
    pub const EINTR: i64 = 4;
    pub const EAGAIN: i64 = 11;
    pub const EINVAL: i64 = 22;
    pub const ENODEV: i64 = 19;
    pub const ENOSYS: i64 = 38;
    pub const ENOTTY: i64 = 25;
    pub const EIO: i64 = 5;
    /// Never seen by user space: the call is made again once the signal
    /// that interrupted it is dealt with, unless a handler without
    /// SA_RESTART runs, which sees EINTR (`signal::deliver_syscall`).
    pub const ERESTARTSYS: i64 = 512;
}

/// Numbers by Linux's names: a name Linux lacks fails the build.
mod nr {
    use klib::linux_nr::number;
    pub const READ: u64 = number("read");
    pub const WRITE: u64 = number("write");
    pub const POLL: u64 = number("poll");
    pub const MMAP: u64 = number("mmap");
    pub const MPROTECT: u64 = number("mprotect");
    pub const MUNMAP: u64 = number("munmap");
    pub const BRK: u64 = number("brk");
    pub const RT_SIGACTION: u64 = number("rt_sigaction");
    pub const RT_SIGPROCMASK: u64 = number("rt_sigprocmask");
    pub const RT_SIGRETURN: u64 = number("rt_sigreturn");
    pub const RT_SIGPENDING: u64 = number("rt_sigpending");
    pub const PAUSE: u64 = number("pause");
    pub const NANOSLEEP: u64 = number("nanosleep");
    pub const KILL: u64 = number("kill");
    pub const TKILL: u64 = number("tkill");
    pub const TGKILL: u64 = number("tgkill");
    pub const CLOCK_NANOSLEEP: u64 = number("clock_nanosleep");
    pub const IOCTL: u64 = number("ioctl");
    pub const WRITEV: u64 = number("writev");
    pub const SCHED_YIELD: u64 = number("sched_yield");
    pub const GETPID: u64 = number("getpid");
    pub const CLONE: u64 = number("clone");
    pub const FORK: u64 = number("fork");
    pub const VFORK: u64 = number("vfork");
    pub const EXECVE: u64 = number("execve");
    pub const EXIT: u64 = number("exit");
    pub const WAIT4: u64 = number("wait4");
    pub const UNAME: u64 = number("uname");
    pub const SYNC: u64 = number("sync");
    pub const SYNCFS: u64 = number("syncfs");
    pub const FSYNC: u64 = number("fsync");
    pub const FDATASYNC: u64 = number("fdatasync");
    pub const REBOOT: u64 = number("reboot");
    pub const INIT_MODULE: u64 = number("init_module");
    pub const FINIT_MODULE: u64 = number("finit_module");
    pub const DELETE_MODULE: u64 = number("delete_module");
    pub const SYSINFO: u64 = number("sysinfo");
    pub const GETPPID: u64 = number("getppid");
    pub const SIGALTSTACK: u64 = number("sigaltstack");
    pub const ARCH_PRCTL: u64 = number("arch_prctl");
    pub const GETTID: u64 = number("gettid");
    pub const SET_TID_ADDRESS: u64 = number("set_tid_address");
    pub const CLOCK_GETTIME: u64 = number("clock_gettime");
    pub const EXIT_GROUP: u64 = number("exit_group");
    pub const GETUID: u64 = number("getuid");
    pub const GETGID: u64 = number("getgid");
    pub const GETEUID: u64 = number("geteuid");
    pub const GETEGID: u64 = number("getegid");
    pub const GETGROUPS: u64 = number("getgroups");
    pub const GETRESUID: u64 = number("getresuid");
    pub const GETRESGID: u64 = number("getresgid");
    pub const SET_ROBUST_LIST: u64 = number("set_robust_list");
    pub const GETRANDOM: u64 = number("getrandom");
    pub const PPOLL: u64 = number("ppoll");
    pub const SELECT: u64 = number("select");
    pub const PSELECT6: u64 = number("pselect6");
    pub const RT_SIGSUSPEND: u64 = number("rt_sigsuspend");
    pub const SETPGID: u64 = number("setpgid");
    pub const GETPGRP: u64 = number("getpgrp");
    pub const SETSID: u64 = number("setsid");
    pub const GETPGID: u64 = number("getpgid");
    pub const GETSID: u64 = number("getsid");
    pub const GETRLIMIT: u64 = number("getrlimit");
    pub const SETRLIMIT: u64 = number("setrlimit");
    pub const PRLIMIT64: u64 = number("prlimit64");
    pub const UMASK: u64 = number("umask");
    pub const GETRUSAGE: u64 = number("getrusage");
    pub const TIMES: u64 = number("times");
    pub const TIME: u64 = number("time");
    pub const GETTIMEOFDAY: u64 = number("gettimeofday");
    pub const SETTIMEOFDAY: u64 = number("settimeofday");
    pub const CLOCK_SETTIME: u64 = number("clock_settime");
    pub const CLOCK_GETRES: u64 = number("clock_getres");
    pub const ALARM: u64 = number("alarm");
    pub const SETITIMER: u64 = number("setitimer");
    pub const GETITIMER: u64 = number("getitimer");
    pub const PRCTL: u64 = number("prctl");
    pub const MSYNC: u64 = number("msync");
    pub const RSEQ: u64 = number("rseq");
    pub const CLONE3: u64 = number("clone3");
    pub const SOCKET: u64 = number("socket");
    pub const OPEN: u64 = number("open");
    pub const CLOSE: u64 = number("close");
    pub const STAT: u64 = number("stat");
    pub const FSTAT: u64 = number("fstat");
    pub const LSTAT: u64 = number("lstat");
    pub const LSEEK: u64 = number("lseek");
    pub const PREAD64: u64 = number("pread64");
    pub const PWRITE64: u64 = number("pwrite64");
    pub const READV: u64 = number("readv");
    pub const ACCESS: u64 = number("access");
    pub const PIPE: u64 = number("pipe");
    pub const DUP: u64 = number("dup");
    pub const DUP2: u64 = number("dup2");
    pub const FCNTL: u64 = number("fcntl");
    pub const TRUNCATE: u64 = number("truncate");
    pub const FTRUNCATE: u64 = number("ftruncate");
    pub const GETCWD: u64 = number("getcwd");
    pub const CHDIR: u64 = number("chdir");
    pub const FCHDIR: u64 = number("fchdir");
    pub const MKDIR: u64 = number("mkdir");
    pub const RMDIR: u64 = number("rmdir");
    pub const CREAT: u64 = number("creat");
    pub const UNLINK: u64 = number("unlink");
    pub const GETDENTS64: u64 = number("getdents64");
    pub const OPENAT: u64 = number("openat");
    pub const MKDIRAT: u64 = number("mkdirat");
    pub const NEWFSTATAT: u64 = number("newfstatat");
    pub const UNLINKAT: u64 = number("unlinkat");
    pub const FACCESSAT: u64 = number("faccessat");
    pub const DUP3: u64 = number("dup3");
    pub const PIPE2: u64 = number("pipe2");
    pub const SENDFILE: u64 = number("sendfile");
    pub const RENAME: u64 = number("rename");
    pub const RENAMEAT: u64 = number("renameat");
    pub const RENAMEAT2: u64 = number("renameat2");
    pub const LINK: u64 = number("link");
    pub const LINKAT: u64 = number("linkat");
    pub const SYMLINK: u64 = number("symlink");
    pub const SYMLINKAT: u64 = number("symlinkat");
    pub const READLINK: u64 = number("readlink");
    pub const READLINKAT: u64 = number("readlinkat");
    pub const CHMOD: u64 = number("chmod");
    pub const FCHMOD: u64 = number("fchmod");
    pub const FCHMODAT: u64 = number("fchmodat");
    pub const CHOWN: u64 = number("chown");
    pub const FCHOWN: u64 = number("fchown");
    pub const LCHOWN: u64 = number("lchown");
    pub const FCHOWNAT: u64 = number("fchownat");
    pub const UTIMENSAT: u64 = number("utimensat");
    pub const STATX: u64 = number("statx");
    pub const STATFS: u64 = number("statfs");
    pub const FSTATFS: u64 = number("fstatfs");
    /// Not Linux: runs one kernel-shell line that the boot's `ksh.user`
    /// allows (`klib::user_ksh`), so the NK's reports stay reachable from
    /// user space and no process can switch its monitor off.
    pub const KSH: u64 = 1000;
    /// Not Linux: the NK's gate crossings so far (`/bin/bench` counts
    /// crossings per operation with it).
    pub const NK_CROSSINGS: u64 = 1001;
}

type SysResult = Result<u64, i64>;

/// Every call this kernel implements, by number: the system-call table's
/// contents, which `install_table` seals at the end of boot.
fn handlers() -> Vec<(u64, Handler)> {
    let mut h: Vec<(u64, Handler)> = vec![
        (nr::READ, |f| files_call(f)),
        (nr::WRITE, |f| files_call(f)),
        (nr::WRITEV, |f| files_call(f)),
        (nr::IOCTL, |f| files_call(f)),
        (nr::POLL, |f| poll(f.rdi, uint(f.rsi), int(f.rdx))),
        (nr::PPOLL, |f| ppoll(f.rdi, uint(f.rsi), f.rdx, f.r10, f.r8)),
        (nr::SELECT, |f| select(int(f.rdi), [f.rsi, f.rdx, f.r10], f.r8)),
        (nr::PSELECT6, |f| pselect6(int(f.rdi), [f.rsi, f.rdx, f.r10], f.r8, f.r9)),
        (nr::RT_SIGSUSPEND, |f| rt_sigsuspend(f.rdi, f.rsi)),
        (nr::SETPGID, |f| super::jobs::setpgid(int(f.rdi), int(f.rsi))),
        (nr::GETPGRP, |_| super::jobs::getpgid(0)),
        (nr::SETSID, |_| super::jobs::setsid()),
        (nr::GETPGID, |f| super::jobs::getpgid(int(f.rdi))),
        (nr::GETSID, |f| super::jobs::getsid(int(f.rdi))),
        (nr::GETRLIMIT, |f| super::limits::prlimit(root()?, 0, uint(f.rdi), 0, f.rsi)),
        (nr::SETRLIMIT, |f| super::limits::prlimit(root()?, 0, uint(f.rdi), f.rsi, 0)),
        (nr::PRLIMIT64, |f| super::limits::prlimit(root()?, int(f.rdi), uint(f.rsi), f.rdx, f.r10)),
        (nr::UMASK, |f| super::limits::umask(uint(f.rdi))),
        (nr::GETRUSAGE, |f| super::clock::getrusage(root()?, int(f.rdi), f.rsi)),
        (nr::TIMES, |f| super::clock::times(root()?, f.rdi)),
        (nr::TIME, |f| super::clock::time(root()?, f.rdi)),
        (nr::GETTIMEOFDAY, |f| super::clock::gettimeofday(root()?, f.rdi, f.rsi)),
        (nr::SETTIMEOFDAY, |f| super::clock::settimeofday(root()?, f.rdi)),
        (nr::CLOCK_SETTIME, |f| clock_settime(int(f.rdi), f.rsi)),
        (nr::CLOCK_GETRES, |f| clock_getres(int(f.rdi), f.rsi)),
        (nr::ALARM, |f| super::clock::alarm(uint(f.rdi))),
        (nr::SETITIMER, |f| super::clock::setitimer(root()?, int(f.rdi), f.rsi, f.rdx)),
        (nr::GETITIMER, |f| super::clock::getitimer(root()?, int(f.rdi), f.rsi)),
        (nr::PRCTL, |f| prctl(int(f.rdi), f.rsi)),
        (nr::MSYNC, |f| msync(f.rdi, f.rsi, int(f.rdx))),
        // Restartable sequences need the kernel to rewrite a user area at
        // every preemption; refused as by a Linux built without them, and
        // on purpose, so not reported as missing (glibc then goes on).
        (nr::RSEQ, |_| Err(errno::ENOSYS)),
        // No sockets yet, of any family: EAFNOSUPPORT, which glibc's name
        // service (looking for nscd) takes as "none here" and goes on.
        (nr::SOCKET, |_| Err(EAFNOSUPPORT)),
        (nr::MMAP, |f| mmap(f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9)),
        (nr::MUNMAP, |f| munmap(f.rdi, f.rsi)),
        (nr::MPROTECT, |f| mprotect(f.rdi, f.rsi, f.rdx)),
        (nr::BRK, |f| brk(f.rdi)),
        (nr::RT_SIGACTION, |f| rt_sigaction(int(f.rdi), f.rsi, f.rdx, f.r10)),
        (nr::RT_SIGPROCMASK, |f| rt_sigprocmask(int(f.rdi), f.rsi, f.rdx, f.r10)),
        (nr::RT_SIGRETURN, |f| rt_sigreturn(f)),
        (nr::RT_SIGPENDING, |f| rt_sigpending(f.rdi, f.rsi)),
        (nr::SIGALTSTACK, |f| sigaltstack(f.rdi, f.rsi, f.rsp)),
        (nr::KILL, |f| kill(int(f.rdi), int(f.rsi))),
        (nr::TKILL, |f| kill(int(f.rdi), int(f.rsi))),
        (nr::TGKILL, |f| kill(int(f.rsi), int(f.rdx))),
        (nr::PAUSE, |_| pause()),
        (nr::NANOSLEEP, |f| nanosleep(f.rdi, f.rsi)),
        (nr::CLOCK_NANOSLEEP, |f| clock_nanosleep(int(f.rdi), int(f.rsi), f.rdx, f.r10)),
        (nr::SCHED_YIELD, |_| {
            crate::sched::yield_now();
            Ok(0)
        }),
        (nr::GETPID, |_| Ok(crate::sched::current())),
        (nr::GETTID, |_| Ok(crate::sched::current())),
        (nr::SET_TID_ADDRESS, |_| Ok(crate::sched::current())),
        (nr::GETPPID, |_| current(|p| if p.parent == super::ORPHAN { 1 } else { p.parent })),
        (nr::FORK, |f| super::fork(f)),
        (nr::VFORK, |f| super::fork(f)),
        (nr::CLONE, |f| clone(f)),
        (nr::CLONE3, |f| clone3(f)),
        (nr::EXECVE, |f| execve(f.rdi, f.rsi, f.rdx)),
        (nr::WAIT4, |f| wait4(int(f.rdi), f.rsi, int(f.rdx))),
        (nr::UNAME, |f| uname(f.rdi)),
        // The RAM file system has nothing to write back.
        (nr::SYNC, |_| Ok(0)),
        (nr::REBOOT, |f| reboot(int(f.rdi), int(f.rsi), f.rdx as u32)),
        (nr::INIT_MODULE, |f| init_module(f.rdi, f.rsi, f.rdx)),
        (nr::FINIT_MODULE, |f| finit_module(f.rdi, f.rsi, int(f.rdx))),
        (nr::DELETE_MODULE, |f| delete_module(f.rdi, f.rsi)),
        (nr::SYSINFO, |f| sysinfo(f.rdi)),
        (nr::ARCH_PRCTL, |f| arch_prctl(int(f.rdi), f.rsi)),
        (nr::CLOCK_GETTIME, |f| clock_gettime(int(f.rdi), f.rsi)),
        (nr::EXIT, |f| exit(f)),
        (nr::EXIT_GROUP, |f| exit(f)),
        (nr::KSH, |f| ksh(f.rdi, f.rsi)),
        (nr::NK_CROSSINGS, |_| Ok(crate::bench::gate_crossings())),
        // One user, root: every id is 0, and there are no extra groups.
        (nr::GETUID, |_| Ok(0)),
        (nr::GETGID, |_| Ok(0)),
        (nr::GETEUID, |_| Ok(0)),
        (nr::GETEGID, |_| Ok(0)),
        (nr::GETRESUID, |f| three_ids(f.rdi, f.rsi, f.rdx)),
        (nr::GETRESGID, |f| three_ids(f.rdi, f.rsi, f.rdx)),
        (nr::GETGROUPS, |f| if int(f.rdi) < 0 { Err(errno::EINVAL) } else { Ok(0) }),
        // No threads share an address space yet, so no robust futexes to
        // clean up: accepted, as musl and glibc expect.
        (nr::SET_ROBUST_LIST, |f| if f.rsi == 24 { Ok(0) } else { Err(errno::EINVAL) }),
        (nr::GETRANDOM, |f| getrandom(f.rdi, f.rsi, uint(f.rdx))),
    ];
    h.extend(FILE_CALLS.iter().map(|&n| (n, (|f| files_call(f)) as Handler)));
    h
}

/// Builds the system-call table and has the NK seal it (write-once).
pub fn install_table() {
    crate::services::systable::install(&handlers());
}

/// `exit` and `exit_group` never return: the audit log gets them at entry.
fn exit(f: &mut SyscallFrame) -> SysResult {
    crate::services::audit::record(crate::sched::current(), f.rax, args(f), None);
    super::exit_current(f.rdi as i32)
}

fn args(f: &SyscallFrame) -> [u64; 6] {
    [f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9]
}

/// Runs the call in `frame` through the system-call table and leaves the
/// result in `frame.rax`.
pub fn dispatch(frame: &mut SyscallFrame) {
    crate::arch::enable_interrupts();
    // Frames of exits not let go of yet come back before anything counts
    // or needs them (one load when there are none).
    super::mem::empty_graves();
    // Linux reads the number as an `int`: the upper half is ignored, and
    // a negative number is no call at all.
    frame.rax = u64::from(frame.rax as u32);
    let (nr, args) = (frame.rax, args(frame));
    let r = match crate::services::systable::lookup(nr) {
        Some(handler) => handler(frame),
        None => {
            super::missing::note(nr);
            Err(errno::ENOSYS)
        }
    };
    frame.rax = match r {
        Ok(v) => v,
        Err(e) => (-e) as u64,
    };
    crate::services::audit::record(crate::sched::current(), nr, args, Some(frame.rax));
    crate::arch::disable_interrupts();
}

/// An `int` argument (`pid_t`, `clockid_t`, a signal, flags): Linux
/// reads the low half of the register, sign-extended, so `(int)-1` passed
/// with a zero upper half is -1.
fn int(a: u64) -> i32 {
    a as i32
}

/// An `unsigned int` argument: the low half of the register.
fn uint(a: u64) -> u32 {
    a as u32
}

fn signal_number(sig: i32) -> Result<u32, i64> {
    match u32::try_from(sig) {
        Ok(s) if s != 0 && s <= signal::NSIG => Ok(s),
        _ => Err(errno::EINVAL),
    }
}

fn rt_sigaction(sig: i32, act: u64, old: u64, setsize: u64) -> SysResult {
    let sig = signal_number(sig)?;
    if setsize != 8 {
        return Err(errno::EINVAL);
    }
    let root = root()?;
    let new = if act != 0 {
        if sig == signal::SIGKILL || sig == 19 {
            return Err(errno::EINVAL);
        }
        let mut b = [0u8; 32];
        copy_from_user(root, &mut b, act).map_err(|_| errno::EFAULT)?;
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        Some(signal::Action { handler: w(0), flags: w(1), restorer: w(2), mask: w(3) })
    } else {
        None
    };
    let prev = current(|p| {
        let prev = p.sig.action(sig);
        if let Some(a) = new {
            p.sig.set_action(sig, a);
        }
        prev
    })?;
    if old != 0 {
        let words = [prev.handler, prev.flags, prev.restorer, prev.mask];
        let b: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        copy_to_user(root, old, &b).map_err(|_| errno::EFAULT)?;
    }
    Ok(0)
}

fn rt_sigprocmask(how: i32, set: u64, old: u64, setsize: u64) -> SysResult {
    const SIG_BLOCK: i32 = 0;
    const SIG_UNBLOCK: i32 = 1;
    const SIG_SETMASK: i32 = 2;
    if setsize != 8 {
        return Err(errno::EINVAL);
    }
    let root = root()?;
    let new = if set != 0 {
        let mut b = [0u8; 8];
        copy_from_user(root, &mut b, set).map_err(|_| errno::EFAULT)?;
        if !(SIG_BLOCK..=SIG_SETMASK).contains(&how) {
            return Err(errno::EINVAL);
        }
        Some(u64::from_le_bytes(b))
    } else {
        None
    };
    let prev = current(|p| {
        let prev = p.sig.mask;
        match (how, new) {
            (SIG_BLOCK, Some(m)) => p.sig.set_mask(prev | m),
            (SIG_UNBLOCK, Some(m)) => p.sig.set_mask(prev & !m),
            (_, Some(m)) => p.sig.set_mask(m),
            (_, None) => {}
        }
        prev
    })?;
    if old != 0 {
        copy_to_user(root, old, &prev.to_le_bytes()).map_err(|_| errno::EFAULT)?;
    }
    Ok(0)
}

/// The signals pending and blocked.
fn rt_sigpending(set: u64, setsize: u64) -> SysResult {
    if setsize != 8 {
        return Err(errno::EINVAL);
    }
    let pending = current(|p| p.sig.pending_blocked())?;
    copy_to_user(root()?, set, &pending.to_le_bytes()).map_err(|_| errno::EFAULT)?;
    Ok(0)
}

/// `rt_sigreturn`: back to where the handler interrupted, all registers
/// restored (so through `iretq`, not `sysretq`, which clobbers two).
fn rt_sigreturn(frame: &SyscallFrame) -> SysResult {
    match signal::sigreturn(frame.rsp) {
        Ok(mut regs) => {
            crate::arch::disable_interrupts();
            signal::deliver(&mut regs, None);
            crate::arch::user::return_to_user(&regs)
        }
        Err(()) => super::terminate_current(signal::SIGSEGV),
    }
}

/// `kill`: to a process, the caller's group (0), every other process
/// (-1) or a group (-pgid); ESRCH if it reaches none.
fn kill(pid: i32, sig: i32) -> SysResult {
    let sig = if sig == 0 { 0 } else { signal_number(sig)? };
    let me = crate::sched::current();
    let info = signal::Info { code: signal::SI_USER, pid: me, addr: 0, status: 0 };
    let mut reached = false;
    for target in super::jobs::targets(pid)? {
        reached |= signal::send(target, sig, info).is_ok();
    }
    if reached { Ok(0) } else { Err(errno::ESRCH) }
}

/// Reads a signal set for a call that waits under it (`sigsetsize` must
/// be 8) and makes it the mask until the call returns; no set, no change.
fn mask_for_call(set: u64, setsize: u64) -> Result<(), i64> {
    if set == 0 {
        return Ok(());
    }
    if setsize != 8 {
        return Err(errno::EINVAL);
    }
    let mut b = [0u8; 8];
    copy_from_user(root()?, &mut b, set).map_err(|_| errno::EFAULT)?;
    current(|p| p.sig.mask_for_call(u64::from_le_bytes(b)))
}

/// `rt_sigsuspend`: waits under `set` until a signal comes; always EINTR.
fn rt_sigsuspend(set: u64, setsize: u64) -> SysResult {
    if set == 0 {
        return Err(errno::EFAULT);
    }
    mask_for_call(set, setsize)?;
    pause()
}

/// The deadline of a call that waits `us` from now.
fn deadline_in(us: u64) -> crate::fs::poll::Deadline {
    Some(crate::time::uptime_us().saturating_add(us))
}

/// The time left before `deadline`, written back as Linux's ppoll,
/// select and pselect6 do; a pointer that cannot be written is ignored,
/// as on Linux, since the call itself succeeded.
fn write_time_left(at: u64, deadline: crate::fs::poll::Deadline, timeval: bool) {
    let (Some(d), Ok(root)) = (deadline, root()) else { return };
    let left = d.saturating_sub(crate::time::uptime_us());
    let b = if timeval { super::clock::timeval(left) } else { timespec(left) };
    let _ = copy_to_user(root, at, &b);
}

/// A `struct timeval` as microseconds. As Linux's select, whole seconds
/// in `tv_usec` carry over; a negative time is EINVAL (setitimer is
/// stricter: `clock::read_timeval`).
fn read_timeval(at: u64) -> Result<u64, i64> {
    let mut b = [0u8; 16];
    copy_from_user(root()?, &mut b, at).map_err(|_| errno::EFAULT)?;
    let sec = i64::from_le_bytes(b[..8].try_into().unwrap_or_default());
    let usec = i64::from_le_bytes(b[8..].try_into().unwrap_or_default());
    let sec = sec.checked_add(usec / 1_000_000).ok_or(errno::EINVAL)?;
    if sec < 0 || usec < 0 {
        return Err(errno::EINVAL);
    }
    Ok((sec as u64).saturating_mul(1_000_000).saturating_add((usec % 1_000_000) as u64))
}

/// poll(2): a negative timeout waits for ever.
fn poll(fds: u64, nfds: u32, timeout_ms: i32) -> SysResult {
    let deadline = u64::try_from(timeout_ms).ok().and_then(|ms| deadline_in(ms * 1000));
    with_files(|root, files| crate::fs::poll::poll(root, files, fds, nfds, deadline))?
}

fn ppoll(fds: u64, nfds: u32, tsp: u64, set: u64, setsize: u64) -> SysResult {
    let deadline = if tsp == 0 { None } else { deadline_in(read_timespec(tsp)?) };
    mask_for_call(set, setsize)?;
    let r = with_files(|root, files| crate::fs::poll::poll(root, files, fds, nfds, deadline))?;
    if tsp != 0 {
        write_time_left(tsp, deadline, false);
    }
    r
}

fn select(n: i32, sets: [u64; 3], tvp: u64) -> SysResult {
    let deadline = if tvp == 0 { None } else { deadline_in(read_timeval(tvp)?) };
    let r = with_files(|root, files| crate::fs::poll::select(root, files, n, sets, deadline))?;
    if tvp != 0 {
        write_time_left(tvp, deadline, true);
    }
    r
}

/// pselect6: the sixth argument points at `{ sigset_t *set; size_t size }`.
fn pselect6(n: i32, sets: [u64; 3], tsp: u64, sig: u64) -> SysResult {
    let deadline = if tsp == 0 { None } else { deadline_in(read_timespec(tsp)?) };
    if sig != 0 {
        let mut b = [0u8; 16];
        copy_from_user(root()?, &mut b, sig).map_err(|_| errno::EFAULT)?;
        let word = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        mask_for_call(word(0), word(1))?;
    }
    let r = with_files(|root, files| crate::fs::poll::select(root, files, n, sets, deadline))?;
    if tsp != 0 {
        write_time_left(tsp, deadline, false);
    }
    r
}

/// `sigaltstack`: the old stack into `old`, then the new one from `new`
/// (`stack_t`: sp, flags, size), either pointer 0 for none. `user_rsp` is
/// where the caller runs: on the stack, it may not change it (EPERM).
fn sigaltstack(new: u64, old: u64, user_rsp: u64) -> SysResult {
    use signal::{MINSIGSTKSZ, SS_DISABLE, SS_ONSTACK};
    const SS_AUTODISARM: u64 = 1 << 31;
    let root = root()?;
    let now = current(|p| p.alt_stack)?;
    let on = now.is_some_and(|(sp, size)| (sp..sp + size).contains(&user_rsp));
    let wanted = if new != 0 {
        let mut b = [0u8; 24];
        copy_from_user(root, &mut b, new).map_err(|_| errno::EFAULT)?;
        let word = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let (sp, flags, size) = (word(0), word(1) as u32 as u64, word(2));
        if on {
            return Err(errno::EPERM);
        }
        // SS_AUTODISARM is accepted and not honoured: the stack stays
        // armed while a handler runs on it (nested signals stay on it).
        match flags & !SS_AUTODISARM {
            SS_DISABLE => Some(None),
            0 | SS_ONSTACK if size < MINSIGSTKSZ => return Err(errno::ENOMEM),
            0 | SS_ONSTACK => Some(Some((sp, size))),
            _ => return Err(errno::EINVAL),
        }
    } else {
        None
    };
    if old != 0 {
        let (sp, flags, size) = match now {
            Some((sp, size)) => (sp, if on { SS_ONSTACK } else { 0 }, size),
            None => (0, SS_DISABLE, 0),
        };
        let b: Vec<u8> = [sp, flags, size].iter().flat_map(|w| w.to_le_bytes()).collect();
        copy_to_user(root, old, &b).map_err(|_| errno::EFAULT)?;
    }
    if let Some(stack) = wanted {
        current(|p| p.alt_stack = stack)?;
    }
    Ok(0)
}

/// Sleeps until a signal comes; always EINTR.
fn pause() -> SysResult {
    let me = crate::sched::current();
    crate::sched::wait_until(sleep_channel(me), signal::pending_current);
    Err(errno::EINTR)
}

/// What a sleeping thread waits on: nothing wakes it but a signal or time.
fn sleep_channel(tid: u64) -> u64 {
    (1 << 61) | tid
}

/// Sleeps until the uptime reaches `until_us`, or a signal comes (EINTR,
/// with the time left in `rem` when given).
fn sleep_until(until_us: u64, rem: u64) -> SysResult {
    crate::sched::wait_until(crate::sched::TICK, || crate::time::uptime_us() >= until_us || signal::pending_current());
    let now = crate::time::uptime_us();
    if now < until_us {
        if rem != 0 {
            let left = until_us - now;
            let _ = copy_to_user(root()?, rem, &timespec(left));
        }
        return Err(errno::EINTR);
    }
    Ok(0)
}

fn timespec(us: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(us / 1_000_000).to_le_bytes());
    b[8..].copy_from_slice(&((us % 1_000_000) * 1000).to_le_bytes());
    b
}

/// A user `struct timespec` as microseconds (rounded up).
fn read_timespec(at: u64) -> Result<u64, i64> {
    let mut b = [0u8; 16];
    copy_from_user(root()?, &mut b, at).map_err(|_| errno::EFAULT)?;
    let sec = i64::from_le_bytes(b[..8].try_into().unwrap_or_default());
    let nsec = i64::from_le_bytes(b[8..].try_into().unwrap_or_default());
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(errno::EINVAL);
    }
    Ok((sec as u64).saturating_mul(1_000_000).saturating_add((nsec as u64).div_ceil(1000)))
}

fn nanosleep(req: u64, rem: u64) -> SysResult {
    let us = read_timespec(req)?;
    sleep_until(crate::time::uptime_us().saturating_add(us), rem)
}

fn clock_nanosleep(clock: i32, flags: i32, req: u64, rem: u64) -> SysResult {
    const TIMER_ABSTIME: i32 = 1;
    if !matches!(clock, 0 | 1 | 7) {
        return Err(errno::EINVAL);
    }
    let us = read_timespec(req)?;
    let now = crate::time::uptime_us();
    let until = match (flags & TIMER_ABSTIME != 0, clock) {
        // A wall-clock time, as an uptime: the wall clock runs with it.
        (true, CLOCK_REALTIME) => us.saturating_sub(crate::time::realtime_us() - now).max(now),
        (true, _) => us,
        (false, _) => now.saturating_add(us),
    };
    sleep_until(until, if flags & TIMER_ABSTIME != 0 { 0 } else { rem })
}

/// `clone` with fork semantics only (no shared address space yet).
fn clone(frame: &SyscallFrame) -> SysResult {
    fork_like(frame, frame.rdi, frame.rsi)
}

/// `clone` and `clone3` as `fork`, the child on `stack` if one is given.
/// CLONE_VM is honoured only with CLONE_VFORK, as posix_spawn asks: the
/// child gets a copy of the memory rather than a share. It runs on the
/// stack it was given and execs, so the copy differs only where the
/// parent would read the child's writes: an exec that fails there shows
/// as the child's exit status 127, not as posix_spawn's errno. Threads
/// (CLONE_THREAD, or CLONE_VM without CLONE_VFORK) are ENOSYS.
fn fork_like(frame: &SyscallFrame, flags: u64, stack: u64) -> SysResult {
    const CLONE_VM: u64 = 0x100;
    const CLONE_VFORK: u64 = 0x4000;
    const CLONE_THREAD: u64 = 0x10000;
    if flags & CLONE_THREAD != 0 || (flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0) {
        return Err(errno::ENOSYS);
    }
    let mut child = *frame;
    if stack != 0 {
        child.rsp = stack;
    }
    super::fork(&child)
}

/// `clone3`: `struct clone_args` (64 bytes at least; a larger one must
/// be zero past what is known), then as `clone`. The stack is given by
/// its lowest address and size.
fn clone3(frame: &SyscallFrame) -> SysResult {
    const KNOWN: usize = 88;
    let (args, size) = (frame.rdi, frame.rsi);
    if !(64..=PAGE_SIZE).contains(&size) {
        return Err(errno::EINVAL);
    }
    let mut a = [0u8; PAGE_SIZE as usize];
    copy_from_user(root()?, &mut a[..size as usize], args).map_err(|_| errno::EFAULT)?;
    if a[KNOWN.min(size as usize)..size as usize].iter().any(|&b| b != 0) {
        return Err(errno::E2BIG);
    }
    let word = |i: usize| u64::from_le_bytes(a[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    let (flags, exit_signal, stack, stack_size) = (word(0), word(4), word(5), word(6));
    if exit_signal > 64 || (stack == 0) != (stack_size == 0) {
        return Err(errno::EINVAL);
    }
    fork_like(frame, flags, stack.checked_add(stack_size).ok_or(errno::EINVAL)?)
}

/// Linux's limits on what `execve` copies in: one string with its NUL
/// (`MAX_ARG_STRLEN`, 32 pages), and argv and envp together, strings and
/// pointers (`ARG_MAX` as Linux sets it for the default 8 MiB stack: a
/// quarter of it). Past either, E2BIG.
const MAX_ARG_STRLEN: usize = 32 * PAGE_SIZE as usize;
const ARG_MAX: usize = 2 << 20;
/// A path with its NUL (`PATH_MAX`); past it, ENAMETOOLONG.
const PATH_MAX: usize = 4096;
const ENAMETOOLONG: i64 = 36;
const EAFNOSUPPORT: i64 = 97;

/// A NUL-terminated string from user memory, read a page at a time, of
/// fewer than `max` bytes (`None` if it has no NUL by then). Bytes, as
/// Linux takes them: an argument need not be UTF-8.
fn user_string(root: u64, ptr: u64, max: usize) -> Result<Option<Vec<u8>>, i64> {
    let mut out = Vec::new();
    let mut at = ptr;
    while out.len() < max {
        // Up to the end of the page, so a string that ends just before an
        // unmapped page reads as it does on Linux.
        let n = ((PAGE_SIZE - at % PAGE_SIZE) as usize).min(max - out.len());
        let mut chunk = [0u8; PAGE_SIZE as usize];
        copy_from_user(root, &mut chunk[..n], at).map_err(|_| errno::EFAULT)?;
        let end = chunk[..n].iter().position(|&b| b == 0);
        let take = end.unwrap_or(n);
        if !crate::mm::heap::can_grow(take as u64) || out.try_reserve_exact(take).is_err() {
            return Err(errno::ENOMEM);
        }
        out.extend_from_slice(&chunk[..take]);
        if end.is_some() {
            return Ok(Some(out));
        }
        at = at.checked_add(n as u64).ok_or(errno::EFAULT)?;
    }
    Ok(None)
}

/// A path argument (`/proc` paths are prepared, as the file calls do).
/// The loader takes UTF-8 paths: another is EINVAL.
fn user_path(root: u64, ptr: u64) -> Result<String, i64> {
    let mut bytes = user_string(root, ptr, PATH_MAX)?.ok_or(ENAMETOOLONG)?;
    crate::fs::procfs::prepare(&mut bytes);
    String::from_utf8(bytes).map_err(|_| errno::EINVAL)
}

/// A NULL-terminated array of string pointers (argv, envp), charged to
/// `budget` (what is left of `ARG_MAX`).
fn user_strings(root: u64, ptr: u64, budget: &mut usize) -> Result<Vec<Vec<u8>>, i64> {
    let mut out = Vec::new();
    if ptr == 0 {
        return Ok(out);
    }
    for i in 0u64.. {
        let mut w = [0u8; 8];
        let at = i.checked_mul(8).and_then(|o| ptr.checked_add(o)).ok_or(errno::EFAULT)?;
        copy_from_user(root, &mut w, at).map_err(|_| errno::EFAULT)?;
        let p = u64::from_le_bytes(w);
        if p == 0 {
            break;
        }
        *budget = budget.checked_sub(8).ok_or(errno::E2BIG)?;
        let s = user_string(root, p, MAX_ARG_STRLEN.min(*budget))?.ok_or(errno::E2BIG)?;
        *budget -= s.len() + 1;
        let grown = (out.len() as u64 + 1) * core::mem::size_of::<Vec<u8>>() as u64;
        if !crate::mm::heap::can_grow(grown) || out.try_reserve(1).is_err() {
            return Err(errno::ENOMEM);
        }
        out.push(s);
    }
    Ok(out)
}

/// System call 1000: one kernel-shell line, if the boot's `ksh.user`
/// setting lets user programs run it (`klib::user_ksh`: by default only
/// commands that report, and `audit on`); EPERM otherwise.
fn ksh(line: u64, len: u64) -> SysResult {
    if len > 256 {
        return Err(errno::EINVAL);
    }
    let mut bytes = vec![0u8; len as usize];
    copy_from_user(root()?, &mut bytes, line).map_err(|_| errno::EFAULT)?;
    let line = core::str::from_utf8(&bytes).map_err(|_| errno::EINVAL)?;
    if !klib::user_ksh::allowed(user_ksh_mode(), line) {
        return Err(errno::EPERM);
    }
    crate::shell::execute(line);
    Ok(0)
}

/// The boot command line's `ksh.user` (the boot information is the NK's,
/// read-only to the outer kernel); an unknown value means `off`.
fn user_ksh_mode() -> klib::user_ksh::Mode {
    use klib::user_ksh::Mode;
    match klib::cmdline::get(crate::boot_info().cmdline(), "ksh.user") {
        None => Mode::ReadOnly,
        Some(v) => v.and_then(Mode::parse).unwrap_or(Mode::Off),
    }
}

fn execve(path: u64, argv: u64, envp: u64) -> SysResult {
    let root = root()?;
    let path = user_path(root, path)?;
    let mut budget = ARG_MAX;
    let argv = user_strings(root, argv, &mut budget)?;
    let envp = user_strings(root, envp, &mut budget)?;
    // The new stack is laid out through two vectors of pointers (and the
    // words of the stack): room for them, or ENOMEM before anything changes.
    if !crate::mm::heap::can_grow((argv.len() + envp.len()) as u64 * 16) {
        return Err(errno::ENOMEM);
    }
    match super::execve(&path, &argv, &envp)? {}
}

fn wait4(pid: i32, status: u64, options: i32) -> SysResult {
    // Linux's __WNOTHREAD, __WALL and __WCLONE are accepted: one thread
    // per process here, so they change nothing.
    const KNOWN: i32 = super::WNOHANG | super::WUNTRACED | super::WCONTINUED | 0x2000_0000 | 0x4000_0000 | -0x8000_0000;
    if options & !KNOWN != 0 {
        return Err(errno::EINVAL);
    }
    match super::wait_child(i64::from(pid), options)? {
        None => Ok(0),
        Some((child, st)) => {
            if status != 0 {
                copy_to_user(root()?, status, &st.to_le_bytes()).map_err(|_| errno::EFAULT)?;
            }
            Ok(child)
        }
    }
}

fn current<R>(f: impl FnOnce(&mut Process) -> R) -> Result<R, i64> {
    super::with_current(f).ok_or(errno::EPERM)
}

fn root() -> Result<u64, i64> {
    current(|p| p.root())
}

/// The file system calls (`crate::fs::files`), by number.
const FILE_CALLS: &[u64] = &[
    nr::OPEN,
    nr::CLOSE,
    nr::STAT,
    nr::FSTAT,
    nr::LSTAT,
    nr::LSEEK,
    nr::PREAD64,
    nr::PWRITE64,
    nr::READV,
    nr::ACCESS,
    nr::PIPE,
    nr::DUP,
    nr::DUP2,
    nr::FCNTL,
    nr::TRUNCATE,
    nr::FTRUNCATE,
    nr::GETCWD,
    nr::CHDIR,
    nr::FCHDIR,
    nr::MKDIR,
    nr::RMDIR,
    nr::CREAT,
    nr::UNLINK,
    nr::GETDENTS64,
    nr::OPENAT,
    nr::MKDIRAT,
    nr::NEWFSTATAT,
    nr::UNLINKAT,
    nr::FACCESSAT,
    nr::DUP3,
    nr::PIPE2,
    nr::SENDFILE,
    nr::RENAME,
    nr::RENAMEAT,
    nr::RENAMEAT2,
    nr::LINK,
    nr::LINKAT,
    nr::SYMLINK,
    nr::SYMLINKAT,
    nr::READLINK,
    nr::READLINKAT,
    nr::CHMOD,
    nr::FCHMOD,
    nr::FCHMODAT,
    nr::CHOWN,
    nr::FCHOWN,
    nr::LCHOWN,
    nr::FCHOWNAT,
    nr::UTIMENSAT,
    nr::STATX,
    nr::STATFS,
    nr::FSTATFS,
    nr::FSYNC,
    nr::FDATASYNC,
    nr::SYNCFS,
];

/// Runs a file system call on the calling process's descriptors
/// (`with_files`) and working directory.
fn files_call(frame: &SyscallFrame) -> SysResult {
    let args = [frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8];
    let nr = frame.rax;
    let cwd = current(|p| p.cwd)?;
    let mut new_cwd = None;
    // A call that looks a name up may look at /proc/self/fd, which lists
    // the table the process holds: it keeps a copy there for the call.
    let looks_up = matches!(nr, nr::OPEN | nr::OPENAT | nr::STAT | nr::LSTAT | nr::NEWFSTATAT | nr::STATX | nr::STATFS)
        || matches!(nr, nr::READLINK | nr::READLINKAT | nr::ACCESS | nr::FACCESSAT | nr::CHDIR);
    let r = with_files_showing(looks_up, |root, files| files_call_on(nr, args, root, cwd, files, &mut new_cwd))?;
    if let Some(ino) = new_cwd {
        current(|p| p.cwd = ino)?;
    }
    r
}

/// Runs `f` on the calling process's descriptor table, taken out of the
/// process for the call, so no lock is held while a call waits (a console
/// read waits for input); only this process's thread uses it meanwhile.
fn with_files<R>(f: impl FnOnce(u64, &mut crate::fs::files::FdTable) -> R) -> Result<R, i64> {
    with_files_showing(false, f)
}

/// `with_files`, leaving a copy of the table in the process for `/proc`
/// to list while the call runs if `shown` (a copy costs an allocation, so
/// only calls that look names up make one).
fn with_files_showing<R>(shown: bool, f: impl FnOnce(u64, &mut crate::fs::files::FdTable) -> R) -> Result<R, i64> {
    use crate::fs::files::FdTable;
    let (root, mut table, nofile) = current(|p| {
        let stand_in = if shown { p.files.clone() } else { FdTable::empty() };
        (p.root(), core::mem::replace(&mut p.files, stand_in), p.limits.nofile())
    })?;
    // The limit lives in the process (prlimit may set it while the table
    // is out for a call); the table is told it here, where calls use it.
    table.set_limit(nofile);
    let r = f(root, &mut table);
    // Dropped outside the process table's lock: the copy may hold the last
    // reference to a description the call closed.
    let stand_in = current(|p| core::mem::replace(&mut p.files, table))?;
    drop(stand_in);
    Ok(r)
}

fn files_call_on(
    nr: u64,
    [a0, a1, a2, a3, a4]: [u64; 5],
    root: u64,
    cwd: crate::fs::Ino,
    files: &mut crate::fs::files::FdTable,
    new_cwd: &mut Option<crate::fs::Ino>,
) -> SysResult {
    use crate::fs::files as f;
    use crate::fs::paths as p;
    match nr {
        nr::READ => f::read(root, files, a0, a1, a2),
        nr::WRITE => f::write(root, files, a0, a1, a2),
        nr::OPEN => f::open(root, files, cwd, a0, a1, a2),
        nr::CLOSE => f::close(files, a0),
        nr::STAT => f::stat(root, cwd, a0, a1, true),
        nr::LSTAT => f::stat(root, cwd, a0, a1, false),
        nr::FSTAT => f::fstat(root, files, a0, a1),
        nr::LSEEK => f::lseek(files, a0, a1, a2),
        nr::IOCTL => f::ioctl(root, files, a0, a1, a2),
        nr::PREAD64 => f::pread64(root, files, a0, a1, a2, a3),
        nr::PWRITE64 => f::pwrite64(root, files, a0, a1, a2, a3),
        nr::READV => f::readv(root, files, a0, a1, a2),
        nr::WRITEV => f::writev(root, files, a0, a1, a2),
        nr::ACCESS => f::access(root, cwd, a0, a1),
        nr::PIPE => f::pipe2(root, files, a0, 0),
        nr::PIPE2 => f::pipe2(root, files, a0, a1),
        nr::DUP => f::dup(files, a0),
        nr::DUP2 => f::dup2(files, a0, a1),
        nr::FCNTL => f::fcntl(files, a0, a1, a2),
        nr::TRUNCATE => f::truncate(root, cwd, a0, a1),
        nr::FTRUNCATE => f::ftruncate(files, a0, a1),
        nr::GETCWD => f::getcwd(root, cwd, a0, a1),
        nr::CHDIR => f::chdir(root, cwd, a0).map(|ino| {
            *new_cwd = Some(ino);
            0
        }),
        nr::FCHDIR => f::fchdir(files, a0).map(|ino| {
            *new_cwd = Some(ino);
            0
        }),
        nr::MKDIR => f::mkdir(root, cwd, a0, a1),
        nr::RMDIR => f::rmdir(root, cwd, a0),
        nr::CREAT => f::creat(root, files, cwd, a0, a1),
        nr::UNLINK => f::unlink(root, cwd, a0),
        nr::GETDENTS64 => f::getdents64(root, files, a0, a1, a2),
        nr::OPENAT => f::openat(root, files, cwd, a0, a1, a2, a3),
        nr::MKDIRAT => f::mkdirat(root, files, cwd, a0, a1, a2),
        nr::NEWFSTATAT => f::newfstatat(root, files, cwd, a0, a1, a2, a3),
        nr::UNLINKAT => f::unlinkat(root, files, cwd, a0, a1, a2),
        nr::FACCESSAT => f::faccessat(root, files, cwd, a0, a1, a2),
        nr::DUP3 => f::dup3(files, a0, a1, a2),
        nr::SENDFILE => f::sendfile(root, files, a0, a1, a2, a3),
        nr::RENAME => p::rename(root, cwd, a0, a1),
        nr::RENAMEAT => p::renameat2(root, files, cwd, [a0, a1, a2, a3, 0]),
        nr::RENAMEAT2 => p::renameat2(root, files, cwd, [a0, a1, a2, a3, a4]),
        nr::LINK => p::link(root, cwd, a0, a1),
        nr::LINKAT => p::linkat(root, files, cwd, [a0, a1, a2, a3, a4]),
        nr::SYMLINK => p::symlinkat(root, files, cwd, a0, f::AT_FDCWD as u64, a1),
        nr::SYMLINKAT => p::symlinkat(root, files, cwd, a0, a1, a2),
        nr::READLINK => p::readlinkat(root, files, cwd, f::AT_FDCWD as u64, a0, a1, a2 as i32),
        nr::READLINKAT => p::readlinkat(root, files, cwd, a0, a1, a2, a3 as i32),
        nr::CHMOD => p::fchmodat(root, files, cwd, f::AT_FDCWD as u64, a0, a1),
        nr::FCHMOD => p::fchmod(files, a0, a1),
        nr::FCHMODAT => p::fchmodat(root, files, cwd, a0, a1, a2),
        nr::CHOWN => p::fchownat(root, files, cwd, f::AT_FDCWD as u64, a0, [a1, a2], 0),
        nr::LCHOWN => p::fchownat(root, files, cwd, f::AT_FDCWD as u64, a0, [a1, a2], f::AT_SYMLINK_NOFOLLOW),
        nr::FCHOWN => p::fchown(files, a0, [a1, a2]),
        nr::FCHOWNAT => p::fchownat(root, files, cwd, a0, a1, [a2, a3], a4),
        nr::UTIMENSAT => p::utimensat(root, files, cwd, [a0, a1, a2, a3]),
        nr::STATX => p::statx(root, files, cwd, [a0, a1, a2, a3, a4]),
        nr::STATFS => p::statfs(root, cwd, a0, a1),
        nr::FSYNC | nr::FDATASYNC | nr::SYNCFS => f::fsync(files, a0, nr == nr::SYNCFS),
        nr::FSTATFS => p::fstatfs(root, files, a0, a1),
        _ => Err(errno::ENOSYS),
    }
}

fn brk(addr: u64) -> SysResult {
    // Checked: a break near 2^64 must not round up to 0, which would
    // shrink the heap over the program below it (fuzz seed 1 found it).
    let page_up = |a: u64| a.checked_add(PAGE_SIZE - 1).map(|a| a & !(PAGE_SIZE - 1));
    current(|p| {
        let Some(want) = page_up(addr) else { return p.brk };
        if addr >= p.brk_start
            && want <= p.brk_start + (1 << 30)
            && room_for_regions(p, 1)
            && p.mem.resize_heap(page_up(p.brk).unwrap_or(want), want).is_ok()
        {
            p.brk = addr;
        }
        p.brk
    })
}

/// Regions a process may have at most (Linux's `vm.max_map_count` is
/// 65530; each region costs kernel heap): `mmap` and an `mprotect` that
/// would split past it fail with ENOMEM.
pub const MAX_MAP_COUNT: usize = 8192;

/// Whether the caller may add `n` regions: under `MAX_MAP_COUNT`, and the
/// heap has room for their entries.
fn room_for_regions(p: &Process, n: usize) -> bool {
    p.mem.regions() + n <= MAX_MAP_COUNT && crate::mm::heap::can_grow(n as u64 * 256)
}

// mmap(2) flags and rights, x86-64 values.
const PROT_ALL: u64 = 7;
const MAP_SHARED: u64 = 1;
const MAP_PRIVATE: u64 = 2;
const MAP_TYPE: u64 = 0xf;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;

/// The rights `prot` asks for, W^X enforced (I6): a writable and
/// executable mapping is refused.
fn prot_bits(prot: u64) -> Result<u8, i64> {
    if prot & !PROT_ALL != 0 {
        return Err(errno::EINVAL);
    }
    let p = prot as u8;
    if p & mem::PROT_WRITE != 0 && p & mem::PROT_EXEC != 0 {
        return Err(errno::EACCES);
    }
    // x86 pages are readable whenever they are mapped at all.
    Ok(if p == 0 { 0 } else { p | mem::PROT_READ })
}

fn mmap(addr: u64, len: u64, prot: u64, flags: u64, fd: u64, offset: u64) -> SysResult {
    let shared = match flags & MAP_TYPE {
        MAP_SHARED => true,
        MAP_PRIVATE => false,
        _ => return Err(errno::EINVAL),
    };
    if len == 0 || len > 1 << 40 || !offset.is_multiple_of(PAGE_SIZE) {
        return Err(errno::EINVAL);
    }
    let prot = prot_bits(prot)?;
    let len = (len + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    let backing = if flags & MAP_ANONYMOUS != 0 {
        if shared {
            // Anonymous memory shared across fork: not yet.
            return Err(errno::EINVAL);
        }
        mem::Backing::Anon
    } else {
        file_backing(fd, offset, shared, prot)?
    };
    let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
    if fixed && !mem::valid_range(addr, len) {
        return Err(errno::EINVAL);
    }
    current(|p| {
        let start = if fixed {
            if flags & MAP_FIXED_NOREPLACE != 0 && p.mem.overlaps(addr, addr + len) {
                return Err(errno::EEXIST);
            }
            addr
        } else {
            // The bump pointer while it has room and hits nothing (a
            // MAP_FIXED mapping may sit there, and was once replaced),
            // else the lowest free gap: without it, large mappings used up
            // the address space for good, even once unmapped.
            // A mapping of a window or more starts on a window: its faults
            // then map whole windows (a crossing each), not one more
            // split across its ends.
            let bump = if len >= mem::WINDOW { p.mmap_next.next_multiple_of(mem::WINDOW) } else { p.mmap_next };
            let start = if bump.checked_add(len).is_some_and(|e| e <= USER_END) && !p.mem.overlaps(bump, bump + len) {
                bump
            } else {
                p.mem.find_gap(super::MMAP_BASE, len, USER_END).ok_or(errno::ENOMEM)?
            };
            p.mmap_next = start + len + PAGE_SIZE; // a guard gap between regions
            start
        };
        if start + len > USER_END || !room_for_regions(p, 2) {
            return Err(errno::ENOMEM);
        }
        let region = mem::Region { end: start + len, prot, backing };
        p.mem.add_region(start, start + len, region).map_err(|_| errno::ENOMEM)?;
        Ok(start)
    })?
}

/// What backs a mapping of the file open at `fd`. The description is
/// looked at outside the process lock (lock order: descriptions first).
fn file_backing(fd: u64, offset: u64, shared: bool, prot: u8) -> Result<mem::Backing, i64> {
    use crate::fs::files;
    let file = current(|p| p.files.get(fd))?.map_err(|_| errno::EBADF)?;
    let f = file.lock();
    let files::Object::File(ino) = f.object else { return Err(errno::ENODEV) };
    if !f.readable() || (shared && prot & mem::PROT_WRITE != 0 && !f.writable()) {
        return Err(errno::EACCES);
    }
    Ok(mem::Backing::File { ino, offset, shared })
}

fn munmap(addr: u64, len: u64) -> SysResult {
    if !mem::valid_range(addr, len) {
        return Err(errno::EINVAL);
    }
    let end = (addr + len + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    current(|p| p.mem.remove(addr, end.min(USER_END)).map(|()| 0).map_err(|_| errno::ENOMEM))?
}

fn mprotect(addr: u64, len: u64, prot: u64) -> SysResult {
    let prot = prot_bits(prot)?;
    if len == 0 && addr.is_multiple_of(PAGE_SIZE) {
        return Ok(0);
    }
    if !mem::valid_range(addr, len) {
        return Err(errno::EINVAL);
    }
    let end = (addr + len + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    match current(|p| if room_for_regions(p, 2) { p.mem.protect(addr, end.min(USER_END), prot) } else { Ok(false) })? {
        Ok(true) => Ok(0),
        Ok(false) => Err(errno::ENOMEM),
        Err(_) => Err(errno::ENOMEM),
    }
}

const ARCH_SET_FS: i32 = 0x1002;

fn arch_prctl(code: i32, addr: u64) -> SysResult {
    if code != ARCH_SET_FS {
        return Err(errno::EINVAL);
    }
    if addr >= USER_END {
        return Err(errno::EPERM);
    }
    current(|p| p.fs_base = addr)?;
    crate::sched::set_fs_base(addr).map_err(|_| errno::EPERM)?;
    Ok(0)
}

/// `reboot`: Linux's magic numbers, then power-off, halt or restart, all
/// of which end the run here (QEMU exits with success); turning
/// Ctrl-Alt-Del on or off is accepted and changes nothing.
fn reboot(magic: i32, magic2: i32, cmd: u32) -> SysResult {
    const MAGIC1: i32 = 0xfee1_dead_u32 as i32;
    const MAGIC2: [i32; 4] = [672_274_793, 85_072_278, 369_367_448, 537_993_216];
    const RESTART: u32 = 0x0123_4567;
    const HALT: u32 = 0xcdef_0123;
    const POWER_OFF: u32 = 0x4321_fedc;
    const CAD_ON: u32 = 0x89ab_cdef;
    const CAD_OFF: u32 = 0;
    if magic != MAGIC1 || !MAGIC2.contains(&magic2) {
        return Err(errno::EINVAL);
    }
    match cmd {
        CAD_ON | CAD_OFF => Ok(0),
        RESTART | HALT | POWER_OFF => {
            crate::println!("reboot: pid {} asked to power off", crate::sched::current());
            crate::arch::exit_qemu(crate::arch::ExitCode::Success)
        }
        _ => Err(errno::EINVAL),
    }
}

/// The largest module file `init_module` copies in: four times the
/// largest image, which leaves room for symbols and relocations.
const MODULE_FILE_MAX: u64 = 4 * klib::module::MAX_IMAGE;

/// `init_module`: the module's file at `image` (`len` bytes). Parameters
/// are not supported: only an empty string is accepted.
fn init_module(image: u64, len: u64, params: u64) -> SysResult {
    let root = root()?;
    no_module_params(root, params)?;
    if len > MODULE_FILE_MAX {
        return Err(errno::EFBIG);
    }
    if !crate::mm::heap::can_grow(len) {
        return Err(errno::ENOMEM);
    }
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len as usize).map_err(|_| errno::ENOMEM)?;
    bytes.resize(len as usize, 0);
    copy_from_user(root, &mut bytes, image).map_err(|_| errno::EFAULT)?;
    load_module(&bytes)
}

/// `finit_module`: as `init_module`, the file read from `fd`. None of
/// the flags (ignore version magic, decompress) applies here.
fn finit_module(fd: u64, params: u64, flags: i32) -> SysResult {
    no_module_params(root()?, params)?;
    if flags != 0 {
        return Err(errno::EINVAL);
    }
    let bytes = with_files(|_, files| crate::fs::files::whole_file(files, fd))??;
    load_module(&bytes)
}

fn no_module_params(root: u64, params: u64) -> Result<(), i64> {
    match user_string(root, params, 4096)? {
        Some(p) if p.iter().all(|b| b.is_ascii_whitespace()) => Ok(()),
        Some(_) => Err(errno::EINVAL),
        None => Err(ENAMETOOLONG),
    }
}

fn load_module(bytes: &[u8]) -> SysResult {
    match crate::module::load(bytes) {
        Ok(_) => Ok(0),
        Err(e) => {
            crate::println!("init_module: pid {}: {e}", crate::sched::current());
            Err(e.errno())
        }
    }
}

/// `delete_module`: the flags change nothing, as on a Linux built without
/// forced unloading: the kernel never waits for a module's users to go
/// (O_NONBLOCK, which every caller passes, is how it always behaves), and
/// O_TRUNC does not force an unload (busybox also passes O_EXCL).
fn delete_module(name: u64, _flags: u64) -> SysResult {
    let name = user_string(root()?, name, klib::module::NAME_MAX + 1)?.ok_or(errno::ENOENT)?;
    let name = core::str::from_utf8(&name).map_err(|_| errno::ENOENT)?;
    crate::module::unload(name).map(|()| 0).map_err(|e| e.errno())
}

fn uname(buf: u64) -> SysResult {
    let mut u = [0u8; 65 * 6];
    for (i, field) in ["Linux", "nk", "6.1.0-nested", "#1", "x86_64", "(none)"].iter().enumerate() {
        u[i * 65..i * 65 + field.len()].copy_from_slice(field.as_bytes());
    }
    copy_to_user(root()?, buf, &u).map_err(|_| errno::EFAULT)?;
    Ok(0)
}

/// `sysinfo`: uptime, RAM and free RAM in frames, process count (no
/// swap, no load averages yet).
fn sysinfo(buf: u64) -> SysResult {
    let (free, total) = crate::mm::frames::stats();
    let mut b = [0u8; 112];
    b[0..8].copy_from_slice(&(crate::time::uptime_us() / 1_000_000).to_le_bytes());
    b[32..40].copy_from_slice(&(total * PAGE_SIZE).to_le_bytes());
    b[40..48].copy_from_slice(&(free * PAGE_SIZE).to_le_bytes());
    b[80..82].copy_from_slice(&(super::count() as u16).to_le_bytes());
    b[104..108].copy_from_slice(&1u32.to_le_bytes());
    copy_to_user(root()?, buf, &b).map_err(|_| errno::EFAULT)?;
    Ok(0)
}

/// `getresuid`/`getresgid`: real, effective and saved, all root's.
fn three_ids(a: u64, b: u64, c: u64) -> SysResult {
    let root = root()?;
    for at in [a, b, c] {
        copy_to_user(root, at, &0u32.to_le_bytes()).map_err(|_| errno::EFAULT)?;
    }
    Ok(0)
}

/// `getrandom`: RDRAND where the CPU has it; otherwise SplitMix64 over the
/// TSC and a counter, which is unpredictable enough for hash seeds and
/// stack canaries but not for keys (said in docs/architecture.md).
fn getrandom(buf: u64, len: u64, flags: u32) -> SysResult {
    const GRND_NONBLOCK: u32 = 1;
    const GRND_RANDOM: u32 = 2;
    const GRND_INSECURE: u32 = 4;
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
        || flags & (GRND_RANDOM | GRND_INSECURE) == GRND_RANDOM | GRND_INSECURE
    {
        return Err(errno::EINVAL);
    }
    // Linux's cap per call (`MAX_RW_COUNT` is larger; 32 MiB - 1 for
    // getrandom's own loop), so one call cannot hold the CPU for long.
    let len = len.min((32 << 20) - 1);
    let root = root()?;
    let mut done = 0;
    while done < len {
        let mut chunk = [0u8; 256];
        let n = (len - done).min(chunk.len() as u64) as usize;
        random_bytes(&mut chunk[..n]);
        if copy_to_user(root, buf.wrapping_add(done), &chunk[..n]).is_err() {
            // As Linux: what was copied counts; nothing copied is EFAULT.
            return if done > 0 { Ok(done) } else { Err(errno::EFAULT) };
        }
        done += n as u64;
    }
    Ok(done)
}

/// Fills `buf` as `getrandom` does (also `/dev/random` and `/dev/urandom`).
pub fn random_bytes(buf: &mut [u8]) {
    let rdrand = x86_64::instructions::random::RdRand::new();
    for word in buf.chunks_mut(8) {
        let r = rdrand.and_then(|r| r.get_u64()).unwrap_or_else(splitmix);
        word.copy_from_slice(&r.to_le_bytes()[..word.len()]);
    }
}

fn splitmix() -> u64 {
    use core::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut z = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed) ^ crate::arch::rdtsc();
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// Clock ids.
const CLOCK_REALTIME: i32 = 0;
const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
const CLOCK_REALTIME_COARSE: i32 = 5;
const CLOCK_BOOTTIME: i32 = 7;
const CLOCK_TAI: i32 = 11;

/// The time on `clock` in µs: the wall clock (from the RTC at boot), the
/// CPU time charged to the caller (in ticks), or the uptime for
/// MONOTONIC, MONOTONIC_RAW, MONOTONIC_COARSE and BOOTTIME (nothing is
/// suspended here).
fn clock_us(clock: i32) -> Result<u64, i64> {
    match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_TAI => Ok(crate::time::realtime_us()),
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => {
            current(|p| (p.cpu.user + p.cpu.system) * (1_000_000 / crate::time::TICK_HZ))
        }
        0..=CLOCK_BOOTTIME => Ok(crate::time::uptime_us()),
        _ => Err(errno::EINVAL),
    }
}

fn clock_gettime(clock: i32, ts: u64) -> SysResult {
    let us = clock_us(clock)?;
    copy_to_user(root()?, ts, &timespec(us)).map_err(|_| errno::EFAULT)?;
    Ok(0)
}

/// `clock_getres`: a microsecond for every clock (the wall and uptime
/// clocks are kept in µs); a tick for the CPU-time clocks.
fn clock_getres(clock: i32, ts: u64) -> SysResult {
    clock_us(clock)?;
    let res_ns: u64 = match clock {
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => 1_000_000_000 / crate::time::TICK_HZ,
        _ => 1000,
    };
    if ts != 0 {
        let mut b = [0u8; 16];
        b[8..].copy_from_slice(&res_ns.to_le_bytes());
        copy_to_user(root()?, ts, &b).map_err(|_| errno::EFAULT)?;
    }
    Ok(0)
}

/// `clock_settime`: only the wall clock can be set (EINVAL otherwise).
fn clock_settime(clock: i32, ts: u64) -> SysResult {
    if clock != CLOCK_REALTIME {
        return Err(errno::EINVAL);
    }
    crate::time::set_realtime_us(read_timespec(ts)?);
    Ok(0)
}

const PR_SET_NAME: i32 = 15;
const PR_GET_NAME: i32 = 16;

/// `prctl`: the calling thread's name (16 bytes with the NUL, cut as
/// Linux cuts it); any other option is EINVAL, as Linux says for options
/// it does not know.
fn prctl(option: i32, arg: u64) -> SysResult {
    let root = root()?;
    match option {
        PR_SET_NAME => {
            let mut b = [0u8; 16];
            // Up to 16 bytes, stopping at a page end as a string read does.
            let n = (PAGE_SIZE - arg % PAGE_SIZE).min(16) as usize;
            copy_from_user(root, &mut b[..n], arg).map_err(|_| errno::EFAULT)?;
            let len = b[..15].iter().position(|&c| c == 0).unwrap_or(15);
            let name = String::from_utf8_lossy(&b[..len]);
            crate::sched::rename(crate::sched::current(), &name);
            Ok(0)
        }
        PR_GET_NAME => {
            let mut b = [0u8; 16];
            let name = crate::sched::current_name();
            let n = name.len().min(15);
            b[..n].copy_from_slice(&name.as_bytes()[..n]);
            copy_to_user(root, arg, &b).map_err(|_| errno::EFAULT)?;
            Ok(0)
        }
        _ => Err(errno::EINVAL),
    }
}

// msync(2) flags.
const MS_ASYNC: i32 = 1;
const MS_INVALIDATE: i32 = 2;
const MS_SYNC: i32 = 4;

/// `msync`: a shared file mapping's pages go into the file (MS_SYNC and
/// MS_ASYNC alike: the file is RAM). EINVAL for an unaligned start or bad
/// flags, ENOMEM if part of the range is not mapped.
fn msync(addr: u64, len: u64, flags: i32) -> SysResult {
    if flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
        || flags & (MS_ASYNC | MS_SYNC) == MS_ASYNC | MS_SYNC
        || !addr.is_multiple_of(PAGE_SIZE)
    {
        return Err(errno::EINVAL);
    }
    let end = addr.checked_add(len).and_then(|e| e.checked_add(PAGE_SIZE - 1)).ok_or(errno::ENOMEM)? & !(PAGE_SIZE - 1);
    if end == addr {
        return Ok(0);
    }
    if end > USER_END {
        return Err(errno::ENOMEM);
    }
    let files = current(|p| p.mem.shared_files_in(addr, end))?.map_err(|()| errno::ENOMEM)?;
    for ino in files {
        mem::sync_to_file(ino);
    }
    Ok(0)
}

// Auxiliary-vector keys.
const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_BASE: u64 = 7;
const AT_ENTRY: u64 = 9;
const AT_UID: u64 = 11;
const AT_EUID: u64 = 12;
const AT_GID: u64 = 13;
const AT_EGID: u64 = 14;
const AT_SECURE: u64 = 23;
const AT_RANDOM: u64 = 25;
const AT_EXECFN: u64 = 31;

/// Lays out argc, argv, envp and the auxiliary vector below `top` as Linux
/// does, in `mem`'s own pages (its tables may not exist yet); returns the
/// initial stack pointer.
pub fn lay_out_stack<A: AsRef<[u8]>, E: AsRef<[u8]>>(
    mem: &super::mem::Memory,
    top: u64,
    argv: &[A],
    envp: &[E],
    l: &Loaded,
) -> Option<u64> {
    let mut sp = top;
    let push_bytes = |bytes: &[u8], sp: &mut u64| -> Option<u64> {
        *sp -= bytes.len() as u64;
        mem.poke(*sp, bytes)?;
        Some(*sp)
    };
    // The NUL first, then the bytes below it: no copy of the string.
    let push_string = |s: &[u8], sp: &mut u64| push_bytes(&[0], sp).and_then(|_| push_bytes(s, sp));
    let arg_ptrs = argv.iter().map(|a| push_string(a.as_ref(), &mut sp)).collect::<Option<Vec<u64>>>()?;
    let env_ptrs = envp.iter().map(|e| push_string(e.as_ref(), &mut sp)).collect::<Option<Vec<u64>>>()?;
    let seed = crate::arch::rdtsc().to_le_bytes();
    let random = push_bytes(&[seed, seed.map(|b| b.rotate_left(3))].concat(), &mut sp)?;
    let execfn = arg_ptrs.first().copied().unwrap_or(0);
    let aux = [
        (AT_PHDR, l.phdr),
        (AT_PHENT, l.phent),
        (AT_PHNUM, l.phnum),
        (AT_PAGESZ, PAGE_SIZE),
        (AT_BASE, 0),
        (AT_ENTRY, l.entry),
        (AT_UID, 0),
        (AT_EUID, 0),
        (AT_GID, 0),
        (AT_EGID, 0),
        (AT_SECURE, 0),
        (AT_RANDOM, random),
        (AT_EXECFN, execfn),
        (AT_NULL, 0),
    ];
    let mut words: Vec<u64> = Vec::new();
    words.push(arg_ptrs.len() as u64);
    words.extend(&arg_ptrs);
    words.push(0);
    words.extend(&env_ptrs);
    words.push(0);
    for (k, v) in aux {
        words.extend([k, v]);
    }
    sp = (sp - words.len() as u64 * 8) & !15;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    mem.poke(sp, &bytes)?;
    Some(sp)
}
