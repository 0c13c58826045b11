//! The user-space micro-benchmarks of `cargo xtask bench`: the rows of the
//! Nested Kernel paper's LMBench table, run the same way on every kernel so
//! the native and protected builds compare directly.
//!
//! Each row runs a calibrated number of iterations per sample (doubling
//! until a sample takes the target time), then several samples; it prints
//! one line for machines:
//!
//! ```text
//! bench: row=NAME ns=MEDIAN min=MIN max=MAX crossings=PER_OP iters=N samples=K
//! bench: row=NAME unavailable=WHY
//! ```
//!
//! `ns` is per operation, `crossings` the NK's gate crossings per operation
//! (exact: the counter's difference over every timed iteration, read with
//! system call 1001), `na` where the kernel does not count them. A row
//! whose system calls the kernel lacks (ENOSYS, ENODEV, ...) is reported
//! unavailable with the reason instead of failing the run.
//!
//! `bench --quick` uses shorter samples; `bench --breakdown ROW` runs one operation of
//! ROW between two `nk stat` tables, to show which NK operations it makes.
#![allow(unsafe_code)] // raw system calls are the thing measured

use std::ffi::CStr;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

/// Not Linux: the NK's gate crossings so far.
const SYS_NK_CROSSINGS: libc::c_long = 1001;
/// Not Linux: runs one `nk ...` line of the kernel shell.
const SYS_KSH: libc::c_long = 1000;
const PAGE: usize = 4096;
const FILE_LEN: usize = 1 << 20;
const DATA_FILE: &CStr = c"/tmp/bench.dat";
const OPEN_FILE: &CStr = c"/bin/hello";
/// What the fork+exec row execs: a static program that only exits.
const TINY: &CStr = c"/bin/tiny";

type RowResult = Result<Sample, String>;

/// One timed stretch: wall time and crossings, over `ops` operations.
#[derive(Clone, Copy)]
struct Sample {
    ns: u64,
    crossings: Option<u64>,
    ops: u64,
}

struct Config {
    /// How long one sample should take, in ns.
    target_ns: u64,
    samples: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let config =
        if quick { Config { target_ns: 10_000_000, samples: 3 } } else { Config { target_ns: 50_000_000, samples: 7 } };
    println!("bench: start quick={} crossings={}", quick as u8, if crossings().is_some() { "yes" } else { "na" });
    let data = make_data_file();
    let breakdown = args.iter().position(|a| a == "--breakdown").and_then(|i| args.get(i + 1));
    let rows: [(&str, &mut dyn FnMut(u64) -> RowResult); 11] = [
        ("null_syscall", &mut |n| null_syscall(n)),
        ("open_close", &mut |n| open_close(n)),
        ("mmap_1mib", &mut |n| with_data(&data, |fd| mmap_touch_unmap(fd, n))),
        ("page_fault", &mut |n| with_data(&data, |fd| page_faults(fd, n))),
        ("sig_install", &mut |n| sig_install(n)),
        ("sig_delivery", &mut |n| sig_delivery(n)),
        ("fork_exit", &mut |n| fork_exit(n)),
        ("fork_exec", &mut |n| fork_exec(n)),
        ("pipe_pingpong", &mut |n| pipe_pingpong(n)),
        ("ctx_switch", &mut |n| ctx_switch(n)),
        ("busybox_workload", &mut |n| busybox_workload(n)),
    ];
    if let Some(wanted) = breakdown {
        for (name, op) in rows.into_iter().filter(|(name, _)| name == wanted) {
            // Warm up first: the first call of a row may do one-time work.
            let _ = op(1);
            nk_stat();
            let r = op(1);
            nk_stat();
            match r {
                Ok(s) => println!("bench: breakdown of one {name}: {} crossings", s.crossings.unwrap_or(0)),
                Err(why) => println!("bench: breakdown of {name}: unavailable ({why})"),
            }
        }
        return;
    }
    for (name, op) in rows {
        match measure(&config, op) {
            Ok(line) => println!("bench: row={name} {line}"),
            Err(why) => println!("bench: row={name} unavailable={why}"),
        }
    }
    // The same null call with the security monitor on: one audit record,
    // and one NK crossing, per call.
    if ksh(b"audit on") == 0 {
        let r = measure(&config, &mut |n| null_syscall(n));
        ksh(b"audit off");
        match r {
            Ok(line) => println!("bench: row=null_syscall_audit {line}"),
            Err(why) => println!("bench: row=null_syscall_audit unavailable={why}"),
        }
    } else {
        println!("bench: row=null_syscall_audit unavailable=this kernel has no audit log");
    }
    println!("bench: done");
}

/// Calibrates the iteration count, takes the samples, and formats the line.
fn measure(config: &Config, op: &mut dyn FnMut(u64) -> RowResult) -> Result<String, String> {
    let mut n = 1;
    loop {
        let s = op(n)?;
        if s.ns >= config.target_ns || n >= 1 << 20 {
            break;
        }
        // Aim straight for the target once a sample is long enough to trust.
        n = if s.ns > config.target_ns / 16 { (n * config.target_ns / s.ns.max(1)).max(n + 1) } else { n * 2 };
    }
    let mut per_op = Vec::new();
    let (mut crossings, mut ops) = (Some(0), 0);
    for _ in 0..config.samples {
        let s = op(n)?;
        per_op.push(s.ns as f64 / s.ops as f64);
        crossings = crossings.zip(s.crossings).map(|(a, b)| a + b);
        ops += s.ops;
    }
    per_op.sort_by(f64::total_cmp);
    let crossings = crossings.map_or("na".to_string(), |c| format!("{:.3}", c as f64 / ops as f64));
    Ok(format!(
        "ns={:.1} min={:.1} max={:.1} crossings={crossings} iters={n} samples={}",
        per_op[per_op.len() / 2],
        per_op[0],
        per_op[per_op.len() - 1],
        config.samples
    ))
}

/// Runs one line of the kernel shell (system call 1000); its result.
fn ksh(line: &[u8]) -> libc::c_long {
    // SAFETY: a buffer of the given length; the kernel only reads it.
    unsafe { libc::syscall(SYS_KSH, line.as_ptr(), line.len()) }
}

/// Prints the NK's per-operation counters (`nk stat`).
fn nk_stat() {
    ksh(b"nk stat");
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The NK's crossing count, or `None` on a kernel without system call 1001.
fn crossings() -> Option<u64> {
    // SAFETY: takes no arguments and touches no memory.
    let r = unsafe { libc::syscall(SYS_NK_CROSSINGS) };
    (r >= 0).then_some(r as u64)
}

/// Times `f`, which performs `ops` operations.
fn span(ops: u64, f: impl FnOnce() -> Result<(), String>) -> RowResult {
    let c0 = crossings();
    let t0 = now_ns();
    f()?;
    let ns = now_ns() - t0;
    let crossings = c0.zip(crossings()).map(|(a, b)| b - a);
    Ok(Sample { ns, crossings, ops })
}

/// `what` failed: the errno's name and text, as the row's reason.
fn failed(what: &str) -> String {
    let e = std::io::Error::last_os_error();
    let name = match e.raw_os_error() {
        Some(libc::ENOSYS) => "ENOSYS",
        Some(libc::ENODEV) => "ENODEV",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::EPERM) => "EPERM",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EBADF) => "EBADF",
        _ => "error",
    };
    // "No such file or directory (os error 2)": the text, without the number.
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    format!("{what}: {name} ({text})")
}

fn null_syscall(n: u64) -> RowResult {
    span(n, || {
        for _ in 0..n {
            // SAFETY: getppid has no arguments; the raw call avoids any libc cache.
            black_box(unsafe { libc::syscall(libc::SYS_getppid) });
        }
        Ok(())
    })
}

fn open_close(n: u64) -> RowResult {
    span(n, || {
        for _ in 0..n {
            // SAFETY: a NUL-terminated path; the descriptor is closed at once.
            let fd = unsafe { libc::open(OPEN_FILE.as_ptr(), libc::O_RDONLY) };
            if fd < 0 {
                return Err(failed("open /bin/hello"));
            }
            // SAFETY: the descriptor just opened.
            unsafe { libc::close(fd) };
        }
        Ok(())
    })
}

/// `/tmp/bench.dat`: 1 MiB with a known byte on every page, opened for
/// reading, or why it could not be made.
fn make_data_file() -> Result<libc::c_int, String> {
    // SAFETY: NUL-terminated paths and a buffer of the given length; every
    // descriptor opened here is closed or returned.
    unsafe {
        libc::mkdir(c"/tmp".as_ptr(), 0o755);
        let fd = libc::open(DATA_FILE.as_ptr(), libc::O_CREAT | libc::O_TRUNC | libc::O_RDWR, 0o644);
        if fd < 0 {
            return Err(failed("creating /tmp/bench.dat"));
        }
        let page: Vec<u8> = (0..PAGE).map(|i| (i % 251) as u8 + 1).collect();
        for _ in 0..FILE_LEN / PAGE {
            if libc::write(fd, page.as_ptr().cast(), PAGE) != PAGE as isize {
                libc::close(fd);
                return Err(failed("writing /tmp/bench.dat"));
            }
        }
        Ok(fd)
    }
}

fn with_data(data: &Result<libc::c_int, String>, f: impl FnOnce(libc::c_int) -> RowResult) -> RowResult {
    f(*data.as_ref().map_err(Clone::clone)?)
}

/// Maps the whole data file, private and read-only, and checks it shows
/// the file's bytes (a kernel without file mappings must not pass as fast).
fn map_file(fd: libc::c_int) -> Result<*const u8, String> {
    // SAFETY: a fresh mapping the kernel places; nothing else is touched.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), FILE_LEN, libc::PROT_READ, libc::MAP_PRIVATE, fd, 0) };
    if p == libc::MAP_FAILED {
        return Err(failed("mmap of a file"));
    }
    let p = p.cast::<u8>();
    // SAFETY: inside the mapping just made (1 MiB, readable).
    let (first, last) = unsafe { (p.read_volatile(), p.add(FILE_LEN - PAGE + 7).read_volatile()) };
    if (first, last) != (1, 8) {
        unmap(p);
        return Err(format!("mmap of a file does not show the file's bytes (read {first}, {last})"));
    }
    Ok(p)
}

fn unmap(p: *const u8) {
    // SAFETY: a whole mapping made by `map_file`, no longer used.
    unsafe { libc::munmap(p as *mut libc::c_void, FILE_LEN) };
}

/// Reads one byte of every page.
fn touch(p: *const u8) {
    let mut sum = 0u8;
    for off in (0..FILE_LEN).step_by(PAGE) {
        // SAFETY: inside a live 1 MiB readable mapping.
        sum = sum.wrapping_add(unsafe { p.add(off).read_volatile() });
    }
    black_box(sum);
}

/// LMBench's mmap row: map 1 MiB of a file, touch every page, unmap.
fn mmap_touch_unmap(fd: libc::c_int, n: u64) -> RowResult {
    // The first mapping checks the bytes (not timed: its own faults).
    unmap(map_file(fd)?);
    span(n, || {
        for _ in 0..n {
            // SAFETY: as in `map_file`, without the check.
            let p = unsafe { libc::mmap(std::ptr::null_mut(), FILE_LEN, libc::PROT_READ, libc::MAP_PRIVATE, fd, 0) };
            if p == libc::MAP_FAILED {
                return Err(failed("mmap of a file"));
            }
            touch(p.cast());
            unmap(p.cast());
        }
        Ok(())
    })
}

/// The first touch of each page of a fresh file mapping; mapping and
/// unmapping are outside the timing. `n` counts mappings, and each one
/// gives 256 faults (one per page).
fn page_faults(fd: libc::c_int, n: u64) -> RowResult {
    let pages = (FILE_LEN / PAGE) as u64;
    let mut total = Sample { ns: 0, crossings: Some(0), ops: 0 };
    for _ in 0..n.div_ceil(pages).max(1) {
        let p = map_file(fd)?;
        // `map_file` read the first and last pages: start after the first.
        let s = span(pages - 2, || {
            for off in (PAGE..FILE_LEN - PAGE).step_by(PAGE) {
                // SAFETY: inside the live mapping.
                black_box(unsafe { p.add(off).read_volatile() });
            }
            Ok(())
        });
        unmap(p);
        let s = s?;
        total = Sample {
            ns: total.ns + s.ns,
            crossings: total.crossings.zip(s.crossings).map(|(a, b)| a + b),
            ops: total.ops + s.ops,
        };
    }
    Ok(total)
}

static CAUGHT: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_usr1(_: libc::c_int) {
    CAUGHT.fetch_add(1, Ordering::Relaxed);
}

fn install_handler() -> Result<(), String> {
    // SAFETY: a zeroed sigaction with a handler that only bumps an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_usr1 as *const () as usize;
        if libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()) != 0 {
            return Err(failed("rt_sigaction"));
        }
    }
    Ok(())
}

fn sig_install(n: u64) -> RowResult {
    install_handler()?; // musl's first install does extra work: not timed
    span(n, || (0..n).try_for_each(|_| install_handler()))
}

fn sig_delivery(n: u64) -> RowResult {
    install_handler()?;
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let before = CAUGHT.load(Ordering::Relaxed);
    let s = span(n, || {
        for _ in 0..n {
            // SAFETY: signals this process, whose SIGUSR1 handler is installed.
            if unsafe { libc::kill(me, libc::SIGUSR1) } != 0 {
                return Err(failed("kill"));
            }
        }
        Ok(())
    })?;
    let caught = CAUGHT.load(Ordering::Relaxed) - before;
    if caught != n {
        return Err(format!("kill succeeded {n} times but the handler ran {caught} times (signals not delivered)"));
    }
    Ok(s)
}

/// Waits for `pid` and requires a clean exit.
fn reap(pid: libc::pid_t) -> Result<(), String> {
    let mut status = 0;
    // SAFETY: a child of ours and a status word to fill.
    let got = unsafe { libc::waitpid(pid, &mut status, 0) };
    if got != pid {
        return Err(failed("waitpid"));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("child ended with status {status:#x}"));
    }
    Ok(())
}

fn fork_exit(n: u64) -> RowResult {
    span(n, || {
        for _ in 0..n {
            // SAFETY: the child only calls _exit.
            let pid = unsafe { libc::fork() };
            match pid {
                0 => unsafe { libc::_exit(0) },
                p if p < 0 => return Err(failed("fork")),
                p => reap(p)?,
            }
        }
        Ok(())
    })
}

fn fork_exec(n: u64) -> RowResult {
    let argv = [c"tiny".as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    span(n, || {
        for _ in 0..n {
            // SAFETY: the child only calls execve and _exit, with
            // NUL-terminated strings in NULL-terminated arrays.
            let pid = unsafe { libc::fork() };
            match pid {
                0 => unsafe {
                    libc::execve(TINY.as_ptr(), argv.as_ptr(), envp.as_ptr());
                    libc::_exit(127)
                },
                p if p < 0 => return Err(failed("fork")),
                p => reap(p)?,
            }
        }
        Ok(())
    })
}

/// The macro row: Debian's busybox sh runs a small job that forks, execs,
/// pipes and compresses (`cargo xtask bench` packs busybox-static; the
/// Nested Kernel paper's kernel-compile row is its anchor).
const WORKLOAD: &std::ffi::CStr = c"mkdir -p /tmp/macro && cd /tmp/macro && seq 1 3000 > n && \
for i in 1 2 3 4; do sort -r n | gzip -c > n.gz && gunzip -c n.gz | md5sum > sum; done && \
tar -cf t.tar n n.gz sum && mkdir -p x && cd x && tar -xf ../t.tar && cmp n ../n && cd / && rm -r /tmp/macro";

fn busybox_workload(n: u64) -> RowResult {
    if std::fs::metadata("/bin/busybox").is_err() {
        return Err("no /bin/busybox in this initrd (cargo xtask bench packs Debian's busybox-static)".into());
    }
    let argv = [c"sh".as_ptr(), c"-c".as_ptr(), WORKLOAD.as_ptr(), std::ptr::null()];
    let envp = [c"PATH=/bin:/usr/bin:/sbin:/usr/sbin".as_ptr(), std::ptr::null()];
    span(n, || {
        for _ in 0..n {
            // SAFETY: the child only calls execve and _exit, with
            // NUL-terminated strings in NULL-terminated arrays.
            let pid = unsafe { libc::fork() };
            match pid {
                0 => unsafe {
                    libc::execve(c"/bin/busybox".as_ptr(), argv.as_ptr(), envp.as_ptr());
                    libc::_exit(127)
                },
                p if p < 0 => return Err(failed("fork")),
                p => reap(p)?,
            }
        }
        Ok(())
    })
}

/// One byte to a child and back through two pipes: two context switches
/// per round trip.
fn pipe_pingpong(n: u64) -> RowResult {
    token_ring(n)
}

/// LMBench's `lat_ctx -s 0 2`: two processes pass a token through two
/// pipes, and each pass is one context switch; the time is per switch,
/// the pipe read and write included (`lat_ctx` subtracts them; here the
/// pipe row beside it says what they cost alone).
fn ctx_switch(n: u64) -> RowResult {
    let rounds = n.div_ceil(2);
    token_ring(rounds).map(|s| Sample { ops: 2 * rounds, ..s })
}

/// `n` round trips of one byte between this process and a child.
fn token_ring(n: u64) -> RowResult {
    let (mut to_child, mut to_parent) = ([0; 2], [0; 2]);
    // SAFETY: arrays of two descriptors to fill.
    if unsafe { libc::pipe(to_child.as_mut_ptr()) } != 0 {
        return Err(failed("pipe"));
    }
    // SAFETY: as above.
    if unsafe { libc::pipe(to_parent.as_mut_ptr()) } != 0 {
        close_all(&to_child);
        return Err(failed("pipe"));
    }
    // SAFETY: the child only reads, writes and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: the child closes the ends it does not use, then echoes
        // bytes until the parent closes its end.
        unsafe {
            libc::close(to_child[1]);
            libc::close(to_parent[0]);
            let mut b = 0u8;
            while libc::read(to_child[0], (&raw mut b).cast(), 1) == 1 {
                if libc::write(to_parent[1], (&raw const b).cast(), 1) != 1 {
                    libc::_exit(1);
                }
            }
            libc::_exit(0);
        }
    }
    if pid < 0 {
        let e = failed("fork");
        close_all(&to_child);
        close_all(&to_parent);
        return Err(e);
    }
    // SAFETY: the parent's unused ends.
    unsafe {
        libc::close(to_child[0]);
        libc::close(to_parent[1]);
    }
    let s = span(n, || {
        let mut b = 0u8;
        for _ in 0..n {
            // SAFETY: one byte out of and into a local, on our pipe ends.
            unsafe {
                if libc::write(to_child[1], (&raw const b).cast(), 1) != 1 {
                    return Err(failed("write to a pipe"));
                }
                if libc::read(to_parent[0], (&raw mut b).cast(), 1) != 1 {
                    return Err(failed("read from a pipe"));
                }
            }
        }
        Ok(())
    });
    // Closing our write end ends the child's loop.
    close_all(&[to_child[1], to_parent[0]]);
    let reaped = reap(pid);
    let s = s?;
    reaped?;
    Ok(s)
}

fn close_all(fds: &[libc::c_int]) {
    for &fd in fds {
        // SAFETY: descriptors of ours, not used again.
        unsafe { libc::close(fd) };
    }
}
