//! A system-call fuzzer in the spirit of trinity: `fuzz [--seed S]
//! [--calls N] [--procs P] [--ms T] [--trace]` forks P processes at start
//! (and never again), and each makes its share of N calls chosen from
//! `CALLS` with random and semi-valid arguments: its own buffers, NULL,
//! kernel-half, non-canonical, read-only and unmapped pointers; open,
//! closed and huge descriptors; lengths of 0, a few bytes, page-crossing
//! and huge; random flag bits. Everything follows from the seed, so a
//! failure replays with the same `--seed --calls --procs` (`--trace`
//! prints each call before it is made). Calls that would end the run for
//! reasons that are not kernel bugs are left out or tamed: exit, execve,
//! fork, kill of other processes, the kernel shell (1000), rt_sigreturn,
//! pause, blocking reads (every pipe is O_NONBLOCK, FIONBIO and F_SETFL
//! cannot clear it), long sleeps, and address-space changes outside the
//! process's own arena. Each process stops after T ms (60000) if its share
//! is not done. The parent prints `fuzz: seed S, N calls in P processes,
//! T ms` and exits 0, or 1 if a process died or failed.
#![allow(unsafe_code)] // raw system calls with bad arguments are the point

use std::time::Instant;

const PAGE: u64 = 4096;
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// SplitMix64: small, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// What an argument is, so its value can be semi-valid.
#[derive(Clone, Copy)]
enum Arg {
    /// Anything: a random 64-bit value.
    Any,
    /// Zero.
    Zero,
    Fd,
    /// A directory descriptor: AT_FDCWD or a descriptor.
    Dirfd,
    /// A user buffer the kernel reads or writes.
    Buf,
    Len,
    /// Random flag bits (the low 32).
    Flags,
    Path,
    Off,
    Whence,
    Mode,
    /// A pointer to a short `timespec` (at most a millisecond), or a bad one.
    Ts,
    Iov,
    IovCnt,
    /// A signal that cannot stop or kill the fuzzer, or an invalid one.
    Sig,
    /// This process (by pid or 0), or one that does not exist.
    Pid,
    /// A `sigaction` with SIG_DFL or SIG_IGN, or a bad pointer.
    SigAct,
    SigSetSize,
    Clock,
    Ioctl,
    WaitOpts,
}

/// How a call's arguments are made: from kinds, or by a function for calls
/// whose arguments must agree with each other (the address-space calls).
#[derive(Clone, Copy)]
enum Shape {
    Args([Arg; 6]),
    Special,
}

use Arg::*;

const fn a(args: [Arg; 6]) -> Shape {
    Shape::Args(args)
}

/// Every call the fuzzer makes, by number. The only list of them.
const CALLS: &[(u64, &str, Shape)] = &[
    (0, "read", a([Fd, Buf, Len, Zero, Zero, Zero])),
    (1, "write", a([Fd, Buf, Len, Zero, Zero, Zero])),
    (2, "open", a([Path, Flags, Mode, Zero, Zero, Zero])),
    (3, "close", a([Fd, Zero, Zero, Zero, Zero, Zero])),
    (4, "stat", a([Path, Buf, Zero, Zero, Zero, Zero])),
    (5, "fstat", a([Fd, Buf, Zero, Zero, Zero, Zero])),
    (6, "lstat", a([Path, Buf, Zero, Zero, Zero, Zero])),
    (7, "poll", a([Buf, Len, Zero, Zero, Zero, Zero])),
    (8, "lseek", a([Fd, Off, Whence, Zero, Zero, Zero])),
    (9, "mmap", Shape::Special),
    (10, "mprotect", Shape::Special),
    (11, "munmap", Shape::Special),
    (12, "brk", Shape::Special),
    (13, "rt_sigaction", a([Sig, SigAct, Buf, SigSetSize, Zero, Zero])),
    (14, "rt_sigprocmask", a([Any, Buf, Buf, SigSetSize, Zero, Zero])),
    (16, "ioctl", a([Fd, Ioctl, Buf, Zero, Zero, Zero])),
    (17, "pread64", a([Fd, Buf, Len, Off, Zero, Zero])),
    (18, "pwrite64", a([Fd, Buf, Len, Off, Zero, Zero])),
    (19, "readv", a([Fd, Iov, IovCnt, Zero, Zero, Zero])),
    (20, "writev", a([Fd, Iov, IovCnt, Zero, Zero, Zero])),
    (21, "access", a([Path, Mode, Zero, Zero, Zero, Zero])),
    (24, "sched_yield", a([Zero; 6])),
    (32, "dup", a([Fd, Zero, Zero, Zero, Zero, Zero])),
    (33, "dup2", a([Fd, Fd, Zero, Zero, Zero, Zero])),
    (35, "nanosleep", a([Ts, Buf, Zero, Zero, Zero, Zero])),
    (39, "getpid", a([Zero; 6])),
    (61, "wait4", a([Any, Buf, WaitOpts, Buf, Zero, Zero])),
    (62, "kill", a([Pid, Sig, Zero, Zero, Zero, Zero])),
    (63, "uname", a([Buf, Zero, Zero, Zero, Zero, Zero])),
    (72, "fcntl", Shape::Special),
    (76, "truncate", a([Path, Off, Zero, Zero, Zero, Zero])),
    (77, "ftruncate", a([Fd, Off, Zero, Zero, Zero, Zero])),
    (79, "getcwd", a([Buf, Len, Zero, Zero, Zero, Zero])),
    (80, "chdir", a([Path, Zero, Zero, Zero, Zero, Zero])),
    (81, "fchdir", a([Fd, Zero, Zero, Zero, Zero, Zero])),
    (83, "mkdir", a([Path, Mode, Zero, Zero, Zero, Zero])),
    (84, "rmdir", a([Path, Zero, Zero, Zero, Zero, Zero])),
    (85, "creat", a([Path, Mode, Zero, Zero, Zero, Zero])),
    (87, "unlink", a([Path, Zero, Zero, Zero, Zero, Zero])),
    (99, "sysinfo", a([Buf, Zero, Zero, Zero, Zero, Zero])),
    (110, "getppid", a([Zero; 6])),
    (127, "rt_sigpending", a([Buf, SigSetSize, Zero, Zero, Zero, Zero])),
    (131, "sigaltstack", a([Buf, Buf, Zero, Zero, Zero, Zero])),
    (158, "arch_prctl", Shape::Special),
    (186, "gettid", a([Zero; 6])),
    (200, "tkill", a([Pid, Sig, Zero, Zero, Zero, Zero])),
    (217, "getdents64", a([Fd, Buf, Len, Zero, Zero, Zero])),
    (218, "set_tid_address", a([Buf, Zero, Zero, Zero, Zero, Zero])),
    (228, "clock_gettime", a([Clock, Buf, Zero, Zero, Zero, Zero])),
    (230, "clock_nanosleep", a([Clock, Zero, Ts, Buf, Zero, Zero])),
    (234, "tgkill", a([Pid, Pid, Sig, Zero, Zero, Zero])),
    (257, "openat", a([Dirfd, Path, Flags, Mode, Zero, Zero])),
    (258, "mkdirat", a([Dirfd, Path, Mode, Zero, Zero, Zero])),
    (262, "newfstatat", a([Dirfd, Path, Buf, Flags, Zero, Zero])),
    (263, "unlinkat", a([Dirfd, Path, Flags, Zero, Zero, Zero])),
    (269, "faccessat", a([Dirfd, Path, Mode, Flags, Zero, Zero])),
    (292, "dup3", a([Fd, Fd, Flags, Zero, Zero, Zero])),
    (293, "pipe2", Shape::Special),
    (1001, "nk_crossings", a([Any, Any, Any, Any, Any, Any])),
    // Numbers the kernel does not implement: ENOSYS, whatever the arguments.
    (335, "unimplemented", a([Any, Any, Any, Any, Any, Any])),
    (512, "unimplemented", a([Any, Any, Any, Any, Any, Any])),
    (1 << 32, "unimplemented", a([Any, Any, Any, Any, Any, Any])),
    (u64::MAX, "unimplemented", a([Any, Any, Any, Any, Any, Any])),
];

/// One process's memory for arguments: `[guard][buffers][buffers][structs]
/// [guard]`, so a long copy runs into a PROT_NONE page, never into the
/// fuzzer's own heap; an arena that mmap, mprotect and munmap may change;
/// and a read-only page.
struct Mem {
    scratch: u64,
    arena: u64,
    readonly: u64,
}

const ARENA_PAGES: u64 = 16;

impl Mem {
    fn new() -> Mem {
        let map = |len: u64, prot| {
            // SAFETY: a fresh anonymous mapping, placed by the kernel.
            let p = unsafe {
                libc::mmap(std::ptr::null_mut(), len as usize, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
            };
            assert!(p != libc::MAP_FAILED, "fuzz: cannot map its buffers");
            p as u64
        };
        let scratch = map(5 * PAGE, libc::PROT_NONE);
        // SAFETY: the three middle pages of the mapping just made.
        let r = unsafe {
            libc::mprotect((scratch + PAGE) as *mut _, 3 * PAGE as usize, libc::PROT_READ | libc::PROT_WRITE)
        };
        assert!(r == 0, "fuzz: cannot open its buffers");
        Mem {
            scratch: scratch + PAGE,
            arena: map(ARENA_PAGES * PAGE, libc::PROT_READ | libc::PROT_WRITE),
            readonly: map(PAGE, libc::PROT_READ),
        }
    }
    /// The page that holds the structures built for one call.
    fn structs(&self) -> u64 {
        self.scratch + 2 * PAGE
    }
    fn write(&self, at: u64, bytes: &[u8]) {
        assert!(at >= self.structs() && at + bytes.len() as u64 <= self.structs() + PAGE);
        // SAFETY: inside the struct page, which is mapped read-write and
        // which the fuzzer never unmaps or protects.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), at as *mut u8, bytes.len()) };
    }
}

/// One fuzzing process: its generator, memory, descriptors and paths.
struct Fuzzer {
    rng: Rng,
    mem: Mem,
    fds: Vec<u64>,
    paths: Vec<String>,
    /// Where the next structure goes in the struct page.
    cursor: u64,
}

impl Fuzzer {
    fn new(seed: u64, index: u64) -> Fuzzer {
        let mem = Mem::new();
        let base = format!("/tmp/fz{index}");
        let paths = vec![format!("{base}.a"), format!("{base}.b"), format!("{base}.d"), format!("{base}.d/x")];
        let mut f = Fuzzer {
            rng: Rng(seed ^ (index + 1).wrapping_mul(0xa076_1d64_78bd_642f)),
            mem,
            fds: Vec::new(),
            paths,
            cursor: 0,
        };
        let mkdir = std::ffi::CString::new(f.paths[2].clone()).unwrap_or_default();
        // SAFETY: a NUL-terminated path.
        unsafe { libc::mkdir(mkdir.as_ptr(), 0o755) };
        for (i, path) in f.paths.clone().iter().enumerate() {
            if i == 2 {
                continue;
            }
            let c = std::ffi::CString::new(path.clone()).unwrap_or_default();
            // SAFETY: a NUL-terminated path.
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC, 0o644) };
            if fd >= 0 {
                f.fds.push(fd as u64);
            }
        }
        for c in ["/", "/tmp", &f.paths[2].clone()] {
            let c = std::ffi::CString::new(c).unwrap_or_default();
            // SAFETY: a NUL-terminated path.
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
            if fd >= 0 {
                f.fds.push(fd as u64);
            }
        }
        for _ in 0..2 {
            let mut p = [0i32; 2];
            // SAFETY: room for two descriptors.
            if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK) } == 0 {
                f.fds.extend([p[0] as u64, p[1] as u64]);
            }
        }
        f
    }

    /// Bytes in the struct page for this call; returns their address.
    fn put(&mut self, bytes: &[u8]) -> u64 {
        if self.cursor + bytes.len() as u64 > PAGE {
            self.cursor = 0;
        }
        let at = self.mem.structs() + self.cursor;
        self.mem.write(at, bytes);
        self.cursor = (self.cursor + bytes.len() as u64 + 7) & !7;
        at
    }

    fn bad_ptr(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(8) {
            0 => 0,
            1 => KERNEL_HALF + r.below(1 << 30) * 8,
            2 => 0xffff_ffff_8000_0000 + r.below(1 << 20),
            3 => 0x0000_8000_0000_0000 + r.below(1 << 20),
            4 => 0x1000 + r.below(0x1000),
            5 => self.mem.readonly + r.below(PAGE),
            6 => self.mem.scratch - PAGE + r.below(PAGE),
            _ => r.next(),
        }
    }

    fn buf(&mut self) -> u64 {
        let s = self.mem.scratch;
        match self.rng.below(10) {
            0..=2 => s,
            3 => s + self.rng.below(2 * PAGE),
            4 => s + 2 * PAGE - self.rng.below(64),
            5 => s + 3 * PAGE - 1 - self.rng.below(16),
            6 => self.mem.arena + self.rng.below(ARENA_PAGES * PAGE),
            _ => self.bad_ptr(),
        }
    }

    fn len(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(9) {
            0 => 0,
            1 => 1 + r.below(16),
            2 => r.below(PAGE),
            3 => PAGE,
            4 => PAGE + 1 + r.below(PAGE),
            5 => 3 * PAGE + r.below(PAGE),
            6 => 1 << r.below(40),
            7 => u64::MAX - r.below(4),
            _ => r.next(),
        }
    }

    fn fd(&mut self) -> u64 {
        match self.rng.below(8) {
            0..=4 if !self.fds.is_empty() => self.fds[self.rng.below(self.fds.len() as u64) as usize],
            5 => 3 + self.rng.below(40),
            6 => self.rng.pick(&[200, 1023, 1024, 65535, 1 << 31, u32::MAX as u64, u64::MAX]),
            _ => 900 + self.rng.below(100),
        }
    }

    /// A NUL-terminated path in the struct page, or a bad pointer. Nothing
    /// here allocates: once the kernel heap is full (other processes' files
    /// fill it), malloc in the fuzzer would fail and abort it.
    fn path(&mut self) -> u64 {
        let mut name = [0u8; 64];
        let n = match self.rng.below(12) {
            0..=6 => {
                let i = self.rng.below(self.paths.len() as u64) as usize;
                let p = self.paths[i].as_bytes();
                name[..p.len()].copy_from_slice(p);
                p.len()
            }
            7 => {
                name[0] = b'/';
                1
            }
            8 => {
                let p = self.rng.pick(&[&b""[..], b".", b"..", b"/tmp/", b"/nonexistent/x", b"/bin/hello/x"]);
                name[..p.len()].copy_from_slice(p);
                p.len()
            }
            9 => {
                // A path longer than PATH_MAX, running to the end of the page.
                static LONG: [u8; 4096] = [b'a'; 4096];
                let n = 4000 + self.rng.below(90) as usize;
                let at = self.mem.structs();
                self.mem.write(at, &LONG[..n]);
                self.mem.write(at, b"/");
                self.mem.write(at + n as u64, &[0]);
                self.cursor = (n as u64 + 8) & !7;
                return at;
            }
            10 => {
                // No terminating NUL before the guard page.
                let at = self.mem.structs() + PAGE - 8;
                self.mem.write(at, b"/tmpxxxx");
                return at;
            }
            _ => return self.bad_ptr(),
        };
        self.put(&name[..n + 1])
    }

    fn timespec(&mut self) -> u64 {
        if self.rng.chance(4) {
            return self.bad_ptr();
        }
        let sec: i64 = self.rng.pick(&[0, 0, 0, -1]);
        let nsec: i64 = self.rng.pick(&[0, 1, 1000, 999_999, 1_000_000_000, -1]);
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&sec.to_ne_bytes());
        b[8..].copy_from_slice(&nsec.to_ne_bytes());
        self.put(&b)
    }

    fn iov(&mut self) -> u64 {
        if self.rng.chance(4) {
            return self.bad_ptr();
        }
        let n = 1 + self.rng.below(4) as usize;
        let mut b = [0u8; 64];
        for i in 0..n {
            let base = self.buf();
            let len = if self.rng.chance(3) { self.len() } else { self.rng.below(2 * PAGE) };
            b[i * 16..i * 16 + 8].copy_from_slice(&base.to_ne_bytes());
            b[i * 16 + 8..i * 16 + 16].copy_from_slice(&len.to_ne_bytes());
        }
        self.put(&b[..n * 16])
    }

    fn sig(&mut self) -> u64 {
        let r = &mut self.rng;
        r.pick(&[0, 0, libc::SIGCHLD as u64, libc::SIGURG as u64, libc::SIGWINCH as u64, 65, 1 << 32, u64::MAX])
    }

    fn arg(&mut self, kind: Arg, pid: u64) -> u64 {
        match kind {
            Any => self.rng.next(),
            Zero => 0,
            Fd => self.fd(),
            Dirfd => {
                if self.rng.chance(2) {
                    libc::AT_FDCWD as i64 as u64
                } else {
                    self.fd()
                }
            }
            Buf => self.buf(),
            Len => self.len(),
            Flags => {
                if self.rng.chance(3) {
                    0
                } else {
                    self.rng.next() & 0xffff_ffff & self.rng.next()
                }
            }
            Path => self.path(),
            Off => self.rng.pick(&[0, 1, 100, PAGE, 1 << 20, 1 << 40, u64::MAX, i64::MAX as u64, (-4096i64) as u64]),
            Whence => self.rng.below(6),
            Mode => self.rng.next() & 0o7777,
            Ts => self.timespec(),
            Iov => self.iov(),
            IovCnt => self.rng.pick(&[0, 1, 2, 3, 4, 1024, 1025, u64::MAX]),
            Sig => self.sig(),
            Pid => self.rng.pick(&[0, pid, pid, 0x7fff_fff0]),
            SigAct => match self.rng.below(4) {
                0 => 0,
                1 => self.bad_ptr(),
                _ => {
                    let mut b = [0u8; 32];
                    b[..8].copy_from_slice(&self.rng.below(2).to_ne_bytes()); // SIG_DFL or SIG_IGN
                    b[8..16].copy_from_slice(&(self.rng.next() & !0x0400_0000).to_ne_bytes()); // no SA_RESTORER
                    self.put(&b)
                }
            },
            SigSetSize => self.rng.pick(&[8, 8, 0, 4, 16, u64::MAX]),
            Clock => self.rng.pick(&[0, 1, 2, 3, 4, 7, 100, u64::MAX]),
            Ioctl => {
                let any = self.rng.next() & 0xffff_ffff;
                let cmd = self.rng.pick(&[0x5401, 0x5413, 0x541b, 0x540f, 0x5410, 0x5414, any]);
                // FIONBIO could make a pipe blocking: ask TCGETS instead.
                if cmd == 0x5421 { 0x5401 } else { cmd }
            }
            WaitOpts => {
                let any = self.rng.next();
                self.rng.pick(&[0, 1, 2, 8, 0x0100_0000, any])
            }
        }
    }

    /// Arguments for the calls whose arguments must agree.
    fn special(&mut self, nr: u64) -> [u64; 6] {
        let arena_end = self.mem.arena + ARENA_PAGES * PAGE;
        // An address in the arena and a length that stays in it, or a bad
        // address and any length.
        let range = |f: &mut Fuzzer| -> (u64, u64) {
            if f.rng.chance(3) {
                if f.rng.chance(4) {
                    // Across the top of user space (never the stack's own
                    // pages alone): must fail.
                    return (0x0000_7fff_ffff_f000, 2 * PAGE + f.rng.below(1 << 20));
                }
                let addr = f.rng.pick(&[KERNEL_HALF, 0xffff_ffff_ffff_f000, 0x0000_8000_0000_0000, f.mem.arena + 1]);
                (addr, f.len())
            } else {
                let page = f.rng.below(ARENA_PAGES);
                let addr = f.mem.arena + page * PAGE;
                let len = match f.rng.below(3) {
                    0 => 0,
                    1 => PAGE,
                    _ => 1 + f.rng.below(arena_end - addr),
                };
                (addr, len)
            }
        };
        match nr {
            9 => {
                let fixed = self.rng.chance(2);
                let (addr, len) = if fixed || self.rng.chance(2) {
                    range(self)
                } else {
                    (0, self.rng.pick(&[0, PAGE, 3 * PAGE, 1 << 20, 1 << 46, u64::MAX]))
                };
                let mut flags = self.rng.next() & 0x1f_ffff & !(libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE) as u64;
                if fixed {
                    flags |= libc::MAP_FIXED as u64;
                }
                if self.rng.chance(4) {
                    flags = self.rng.pick(&[0x22, 0x21, 0x02, 0x01, 0x03]) | if fixed { 0x10 } else { 0 };
                }
                let fd = if self.rng.chance(2) { u64::MAX } else { self.fd() };
                let off = self.rng.pick(&[0, 0, PAGE, 1, 1 << 40, u64::MAX - PAGE + 1]);
                [addr, len, self.rng.below(16), flags, fd, off]
            }
            10 => {
                let (addr, len) = range(self);
                let any = self.rng.next();
                [addr, len, self.rng.pick(&[0, 1, 3, 4, 7, 0x0100_0000, any]), 0, 0, 0]
            }
            11 => {
                let (addr, len) = range(self);
                [addr, len, 0, 0, 0, 0]
            }
            12 => {
                // SAFETY: brk(0) only reports the break.
                let cur = unsafe { libc::syscall(12, 0) } as u64;
                [self.rng.pick(&[0, cur, cur + PAGE, cur + 7 * PAGE + 5, 0x1000, KERNEL_HALF, u64::MAX]), 0, 0, 0, 0, 0]
            }
            72 => {
                let any = self.rng.next() & 0xffff_ffff;
                let mut cmd = self.rng.pick(&[0, 1, 2, 3, 4, 5, 6, 1030, 1031, 1032, any]);
                let buf = self.buf();
                let mut arg = self.rng.pick(&[0, 1, 3, 100, 1 << 20, u64::MAX, buf]);
                if cmd == 7 || cmd == 38 {
                    cmd = 5; // F_SETLKW and F_OFD_SETLKW may wait: F_GETLK instead
                }
                if cmd == 4 {
                    arg |= libc::O_NONBLOCK as u64; // F_SETFL keeps pipes non-blocking
                }
                [self.fd(), cmd, arg, 0, 0, 0]
            }
            158 => {
                // Never ARCH_SET_FS: the fuzzer's own thread pointer.
                let code = self.rng.pick(&[0x1001, 0x1003, 0x1004, 0x1005, 0x3001, 0, 0x1002 + 0x10]);
                let addr = if code == 0x1001 { self.rng.next() } else { self.buf() };
                [code, addr, 0, 0, 0, 0]
            }
            293 => {
                let flags = (self.rng.next() & 0xffff_ffff) | libc::O_NONBLOCK as u64;
                let p = if self.rng.chance(2) { self.buf() } else { self.mem.structs() };
                [p, flags, 0, 0, 0, 0]
            }
            _ => [0; 6],
        }
    }

    /// Makes up to `calls` calls, stopping at `deadline`; how many it made.
    fn run(&mut self, calls: u64, deadline: Instant, trace: Option<u64>) -> u64 {
        // SAFETY: getpid has no arguments.
        let pid = unsafe { libc::getpid() } as u64;
        for i in 0..calls {
            if i % 16 == 0 && Instant::now() >= deadline {
                return i;
            }
            self.cursor = 0;
            let (nr, name, shape) = CALLS[self.rng.below(CALLS.len() as u64) as usize];
            let args = match shape {
                Shape::Args(kinds) => kinds.map(|k| self.arg(k, pid)),
                Shape::Special => self.special(nr),
            };
            if let Some(who) = trace {
                println!(
                    "fuzz[{who}] #{i} {name}({nr}) {:#x} {:#x} {:#x} {:#x} {:#x} {:#x}",
                    args[0], args[1], args[2], args[3], args[4], args[5]
                );
            }
            // SAFETY: the arguments may be anything; the calls that could
            // change the fuzzer's own memory or control flow are kept to
            // its arena and scratch pages (see `CALLS` and `special`).
            let r = unsafe { libc::syscall(nr as libc::c_long, args[0], args[1], args[2], args[3], args[4], args[5]) };
            let arena = self.mem.arena..self.mem.arena + ARENA_PAGES * PAGE;
            if nr == 9 && r > 0 && !arena.contains(&(r as u64)) {
                // Keep the fuzzer's own memory bounded: a mapping left in
                // place would, after enough calls, leave malloc no room
                // (seed 1, 500000 calls: "memory allocation failed").
                // SAFETY: the mapping the call just made, nothing else.
                unsafe { libc::munmap(r as *mut _, args[1] as usize) };
            }
            if nr == 293 && r == 0 && args[0] == self.mem.structs() && self.fds.len() < 24 {
                // SAFETY: pipe2 just wrote two descriptors there.
                let p = unsafe { *(self.mem.structs() as *const [i32; 2]) };
                self.fds.extend([p[0] as u64, p[1] as u64]);
            }
            if trace.is_some() {
                println!("fuzz[{}] #{i} = {r}", trace.unwrap_or(0));
            }
        }
        calls
    }

    /// Removes what the process created, so its frames come back.
    fn clean(&self) {
        // Its descriptors too: with the table full the count file could
        // not be written (seed 1, 200000 calls, found that).
        for fd in 3..1024 {
            // SAFETY: closes descriptors only this process uses.
            unsafe { libc::close(fd) };
        }
        for p in [&self.paths[3], &self.paths[0], &self.paths[1]] {
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_dir(&self.paths[2]);
    }
}

fn count_path(index: u64) -> String {
    format!("/tmp/fuzz-count{index}")
}

fn main() {
    let mut seed = 1u64;
    let mut calls = 1000u64;
    let mut procs = 4u64;
    let mut ms = 60_000u64;
    let mut trace = false;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--trace" {
            trace = true;
            continue;
        }
        let slot = match a.as_str() {
            "--seed" => &mut seed,
            "--calls" => &mut calls,
            "--procs" => &mut procs,
            "--ms" => &mut ms,
            _ => {
                eprintln!("usage: fuzz [--seed S] [--calls N] [--procs P] [--ms T] [--trace]");
                std::process::exit(2);
            }
        };
        match it.next().and_then(|v| v.parse().ok()) {
            Some(v) => *slot = v,
            None => {
                eprintln!("fuzz: {a} takes a number");
                std::process::exit(2);
            }
        }
    }
    let procs = procs.clamp(1, 16);
    let start = Instant::now();
    let deadline = start + std::time::Duration::from_millis(ms);
    let mut children = Vec::new();
    for index in 0..procs {
        let share = calls / procs + u64::from(index < calls % procs);
        // SAFETY: single-threaded; the child leaves by `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let mut f = Fuzzer::new(seed, index);
            let made = f.run(share, deadline, trace.then_some(index));
            f.clean();
            let _ = std::fs::write(count_path(index), made.to_string());
            // SAFETY: ends the child.
            unsafe { libc::_exit(0) };
        }
        if pid < 0 {
            eprintln!("fuzz: fork failed: {}", std::io::Error::last_os_error());
            std::process::exit(1);
        }
        children.push((index, pid));
    }
    let mut made = 0u64;
    let mut failed = false;
    for (index, pid) in children {
        let mut status = 0;
        // SAFETY: a valid status pointer.
        while unsafe { libc::waitpid(pid, &mut status, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            failed = true;
            if libc::WIFSIGNALED(status) {
                println!("fuzz: process {index} (seed {seed}) killed by signal {}", libc::WTERMSIG(status));
            } else {
                println!("fuzz: process {index} (seed {seed}) exited {}", libc::WEXITSTATUS(status));
            }
        }
        match std::fs::read_to_string(count_path(index)).ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(n) => made += n,
            None => {
                failed = true;
                println!("fuzz: process {index} (seed {seed}) reported no count");
            }
        }
        let _ = std::fs::remove_file(count_path(index));
    }
    println!("fuzz: seed {seed}, {made} calls in {procs} processes, {} ms", start.elapsed().as_millis());
    std::process::exit(i32::from(failed));
}
