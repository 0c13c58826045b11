//! Kernel resources a user cannot exhaust: pipe buffers (a budget that
//! ends in ENFILE, never a heap panic), the kernel shell behind system
//! call 1000 (no process can switch the monitor off), and memory (an
//! out-of-memory copy-on-write fault kills the writer with SIGKILL, a
//! bystander lives, and every frame comes back).

use crate::support::*;
use std::os::fd::{AsRawFd, OwnedFd};

pub const TESTS: &[Test] = tests![
    pipe_flood_ends_in_an_errno_and_the_budget_comes_back,
    ksh_syscall_never_lowers_protection,
    cow_out_of_memory_kills_the_writer_not_the_bystander,
];

/// Pipes a flood makes at most (Linux's default fd limit lets about 500).
const FLOOD_PIPES: usize = 600;

/// Fills a non-blocking pipe: bytes it took, and the errno that stopped it.
fn fill(w: &OwnedFd) -> (usize, i32) {
    let chunk = [0x5au8; 4096];
    let mut n = 0;
    loop {
        // SAFETY: a valid buffer of its own length.
        let r = unsafe { libc::write(w.as_raw_fd(), chunk.as_ptr().cast(), chunk.len()) };
        if r <= 0 {
            return (n, errno());
        }
        n += r as usize;
    }
}

fn pipe_flood_ends_in_an_errno_and_the_budget_comes_back() -> TestResult {
    let mut held = Vec::new();
    let mut stopped = None;
    for i in 0..FLOOD_PIPES {
        let mut fds = [-1; 2];
        // SAFETY: room for two descriptors.
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) };
        if r == -1 {
            stopped = Some((i, errno()));
            break;
        }
        let (r, w) = (own("pipe2", fds[0])?, own("pipe2", fds[1])?);
        let (n, e) = fill(&w);
        check(e == libc::EAGAIN || e == libc::ENOMEM, || format!("pipe {i}: filling stopped with {}", errno_name(e)))?;
        check(n >= 4096, || format!("pipe {i} took only {n} bytes"))?;
        held.push((r, w));
    }
    if let Some((i, e)) = stopped {
        check(e == libc::ENFILE || e == libc::EMFILE, || format!("pipe {i}: pipe2 failed with {}", errno_name(e)))?;
    }
    if on_our_kernel() {
        // The budget (a quarter of the heap at most) ends the flood first.
        check(matches!(stopped, Some((_, libc::ENFILE))), || {
            format!("the flood stopped at {stopped:?}, wanted ENFILE")
        })?;
    }
    drop(held);
    // Closed, their budget is back: a full 64 KiB pipe again.
    let (_r, w) = pipe2(libc::O_NONBLOCK)?;
    let (n, e) = fill(&w);
    check(n == 64 * 1024 && e == libc::EAGAIN, || format!("a fresh pipe took {n} bytes, then {}", errno_name(e)))
}

/// System call 1000 with `line`.
fn ksh(line: &str) -> i64 {
    // SAFETY: the kernel only reads `line.len()` bytes at `line.as_ptr()`.
    unsafe { libc::syscall(1000, line.as_ptr(), line.len()) }
}

fn ksh_syscall_never_lowers_protection() -> TestResult {
    // Linux has no system call 1000.
    let refused = if on_our_kernel() { libc::EPERM } else { libc::ENOSYS };
    for line in ["audit off", "attack all", "attack clear-nxe", "poweroff", "run /bin/hello", "crash panic", "mem"] {
        fails_with(&format!("ksh {line:?}"), ksh(line), refused)?;
    }
    if on_our_kernel() {
        // Reports stay reachable (the shell's `nk ...` lines).
        equals("ksh \"nk stat\"", ksh("nk stat"), 0)?;
        equals("ksh \"nk verify proc\"", ksh("nk verify proc"), 0)?;
    }
    Ok(())
}

/// Free RAM now, by sysinfo(2).
fn free_ram() -> Result<u64, String> {
    // SAFETY: a zeroed sysinfo is a valid value to overwrite.
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `si` is writable.
    ok("sysinfo", unsafe { libc::sysinfo(&mut si) }.into())?;
    Ok(si.freeram as u64 * u64::from(si.mem_unit))
}

fn cow_out_of_memory_kills_the_writer_not_the_bystander() -> TestResult {
    if !on_our_kernel() {
        // Exhausting the host's memory would hurt the host, not test it.
        return skip("exhausts RAM: run on this kernel only");
    }
    let before = free_ram()?;
    let (hold_r, hold_w) = pipe2(0)?;
    let (report_r, report_w) = pipe2(0)?;
    let size = (before / 10 * 6) as usize & !4095;
    let writer = fork_child(|| {
        // SAFETY: a fresh private anonymous mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return 2;
        }
        let bytes = p.cast::<u8>();
        let touch = |v: u8| {
            for off in (0..size).step_by(4096) {
                // SAFETY: inside the mapping.
                unsafe { bytes.add(off).write_volatile(v) };
            }
        };
        touch(1);
        // The bystander: shares every page, waits for the writer to go.
        let bystander = fork_child(|| {
            let mut b = [0u8; 1];
            // SAFETY: valid descriptors and buffers.
            unsafe {
                libc::close(hold_w.as_raw_fd());
                libc::read(hold_r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                libc::write(report_w.as_raw_fd(), b"alive".as_ptr().cast(), 5);
            }
            0
        });
        if bystander.is_err() {
            return 4;
        }
        // Copy-on-write every page: 60% of RAM twice does not fit.
        touch(2);
        3
    })?;
    drop(hold_r);
    drop(report_w);
    let status = wait_for(writer)?;
    drop(hold_w);
    killed_by(status, libc::SIGKILL).map_err(|e| format!("the writer: {e}"))?;
    let said = read_up_to(report_r.as_raw_fd(), 5)?;
    check(said == b"alive", || format!("the bystander said {said:?}, wanted \"alive\""))?;
    // Both gone: their frames come back (the bystander is reaped by nobody).
    let start = now();
    loop {
        let free = free_ram()?;
        if free + (8 << 20) >= before {
            return Ok(());
        }
        if now() - start > std::time::Duration::from_secs(5) {
            return Err(format!("free RAM {} MiB after, {} MiB before", free >> 20, before >> 20));
        }
        sleep_ms(20);
    }
}
