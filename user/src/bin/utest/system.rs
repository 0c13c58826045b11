//! The machine as a program sees it: uname, the clocks, sleeping,
//! sched_yield, and the terminal ioctls on standard output.

use crate::support::*;
use std::os::fd::AsRawFd;
use std::time::Duration;

pub const TESTS: &[Test] = tests![
    uname_says_linux,
    monotonic_clock_advances,
    clock_gettime_refuses_a_bad_clock,
    nanosleep_sleeps_at_least_as_asked,
    nanosleep_refuses_a_bad_time,
    sched_yield_returns_0,
    tcgets_on_stdout_answers_as_a_tty_would,
    tiocgwinsz_on_stdout_answers_as_a_tty_would,
    terminal_ioctls_on_other_files_are_enotty,
    ids_agree_and_are_root_here,
    getrandom_fills_and_refuses_bad_input,
];

fn uname_says_linux() -> TestResult {
    // SAFETY: a zeroed utsname is a valid value to overwrite.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is writable.
    equals("uname", unsafe { libc::uname(&mut u) }.into(), 0)?;
    let (sys, machine, release) = (field(&u.sysname), field(&u.machine), field(&u.release));
    check(sys == "Linux", || format!("sysname {sys:?}"))?;
    check(machine == "x86_64", || format!("machine {machine:?}"))?;
    check(!release.is_empty(), || "an empty release".into())?;
    // SAFETY: the kernel must refuse the pointer.
    fails_with("uname to a bad pointer", unsafe { libc::syscall(libc::SYS_uname, 0x10usize) }, libc::EFAULT)
}

/// The raw clock_gettime (libc may answer from the vDSO without the kernel).
fn raw_clock(clock: libc::clockid_t) -> Result<Duration, String> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is writable.
    ok("clock_gettime", unsafe { libc::syscall(libc::SYS_clock_gettime, clock, &mut ts) })?;
    check(ts.tv_sec >= 0 && (0..1_000_000_000).contains(&ts.tv_nsec), || {
        format!("a malformed time {}s {}ns", ts.tv_sec, ts.tv_nsec)
    })?;
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

fn monotonic_clock_advances() -> TestResult {
    let first = raw_clock(libc::CLOCK_MONOTONIC)?;
    let mut last = first;
    // Bounded: a clock that never moves fails instead of spinning forever.
    for _ in 0..200_000 {
        let t = raw_clock(libc::CLOCK_MONOTONIC)?;
        check(t >= last, || format!("the monotonic clock went back from {last:?} to {t:?}"))?;
        last = t;
        if t > first {
            raw_clock(libc::CLOCK_REALTIME)?;
            return Ok(());
        }
        // SAFETY: no preconditions.
        unsafe { libc::sched_yield() };
    }
    Err(format!("the monotonic clock stayed at {first:?}"))
}

fn clock_gettime_refuses_a_bad_clock() -> TestResult {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is writable; each call must fail.
    unsafe {
        fails_with("clock_gettime(1234)", libc::syscall(libc::SYS_clock_gettime, 1234, &mut ts), libc::EINVAL)?;
        fails_with(
            "clock_gettime to a bad pointer",
            libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, 0x10usize),
            libc::EFAULT,
        )
    }
}

fn nanosleep_sleeps_at_least_as_asked() -> TestResult {
    let asked = Duration::from_millis(20);
    let ts = libc::timespec { tv_sec: 0, tv_nsec: asked.as_nanos() as libc::c_long };
    let start = now();
    // SAFETY: a valid timespec; no remainder wanted.
    equals("nanosleep", unsafe { libc::syscall(libc::SYS_nanosleep, &ts, 0usize) }, 0)?;
    let slept = now() - start;
    check(slept >= asked, || format!("nanosleep(20 ms) returned after {slept:?}"))?;
    check(slept < Duration::from_secs(2), || format!("nanosleep(20 ms) took {slept:?}"))
}

fn nanosleep_refuses_a_bad_time() -> TestResult {
    let bad_ns = libc::timespec { tv_sec: 0, tv_nsec: 1_000_000_000 };
    let negative = libc::timespec { tv_sec: -1, tv_nsec: 0 };
    // SAFETY: valid pointers to invalid times; each call must fail at once.
    unsafe {
        fails_with("nanosleep 1e9 ns", libc::syscall(libc::SYS_nanosleep, &bad_ns, 0usize), libc::EINVAL)?;
        fails_with("nanosleep -1 s", libc::syscall(libc::SYS_nanosleep, &negative, 0usize), libc::EINVAL)?;
        fails_with("nanosleep from a bad pointer", libc::syscall(libc::SYS_nanosleep, 0x10usize, 0usize), libc::EFAULT)
    }
}

fn sched_yield_returns_0() -> TestResult {
    // SAFETY: no preconditions.
    equals("sched_yield", unsafe { libc::syscall(libc::SYS_sched_yield) }, 0)
}

/// Whether standard output is a terminal: always on our kernel (the
/// console); on a host, what isatty says (it may be a pipe or a file).
fn stdout_is_a_tty() -> bool {
    // SAFETY: no preconditions.
    on_our_kernel() || unsafe { libc::isatty(1) } == 1
}

/// 0 on a terminal, ENOTTY on anything else.
fn answers_as_a_tty(what: &str, r: i64) -> TestResult {
    if stdout_is_a_tty() {
        equals(what, r, 0)
    } else {
        fails_with(&format!("{what} (stdout is no tty)"), r, libc::ENOTTY)
    }
}

fn tcgets_on_stdout_answers_as_a_tty_would() -> TestResult {
    // SAFETY: a zeroed termios is a valid value; the kernel fills it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is writable and as large as TCGETS writes.
    answers_as_a_tty("ioctl(1, TCGETS)", unsafe { libc::ioctl(1, libc::TCGETS, &mut t) }.into())
}

fn tiocgwinsz_on_stdout_answers_as_a_tty_would() -> TestResult {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: `ws` is writable and as large as TIOCGWINSZ writes.
    answers_as_a_tty("ioctl(1, TIOCGWINSZ)", unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) }.into())
}

fn terminal_ioctls_on_other_files_are_enotty() -> TestResult {
    let (_, f) = fresh_file("ioctl", b"x")?;
    let (r, _w) = pipe2(0)?;
    // SAFETY: a zeroed termios is a valid value; every call must fail.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        fails_with("TCGETS on a file", libc::ioctl(f.as_raw_fd(), libc::TCGETS, &mut t).into(), libc::ENOTTY)?;
        fails_with("TCGETS on a pipe", libc::ioctl(r.as_raw_fd(), libc::TCGETS, &mut t).into(), libc::ENOTTY)?;
        fails_with("TCGETS on an unused fd", libc::ioctl(UNUSED_FD, libc::TCGETS, &mut t).into(), libc::EBADF)
    }
}

fn ids_agree_and_are_root_here() -> TestResult {
    // SAFETY: the id calls take no pointers.
    let (uid, euid, gid, egid) = unsafe { (libc::getuid(), libc::geteuid(), libc::getgid(), libc::getegid()) };
    let (mut r, mut e, mut s) = (7u32, 7u32, 7u32);
    // SAFETY: three writable ids.
    equals("getresuid", unsafe { libc::getresuid(&mut r, &mut e, &mut s) }.into(), 0)?;
    check(r == uid && e == euid, || format!("getresuid {r} {e} {s}, getuid {uid}, geteuid {euid}"))?;
    // SAFETY: three writable ids.
    equals("getresgid", unsafe { libc::getresgid(&mut r, &mut e, &mut s) }.into(), 0)?;
    check(r == gid && e == egid, || format!("getresgid {r} {e} {s}, getgid {gid}, getegid {egid}"))?;
    // SAFETY: the kernel must refuse the pointer.
    fails_with(
        "getresuid to a bad pointer",
        unsafe { libc::syscall(libc::SYS_getresuid, 0x10usize, 0x10usize, 0x10usize) },
        libc::EFAULT,
    )?;
    // SAFETY: a negative size with no buffer.
    fails_with("getgroups(-1)", unsafe { libc::syscall(libc::SYS_getgroups, -1i64, 0usize) }, libc::EINVAL)?;
    // One user here: root, in no extra groups.
    if on_our_kernel() {
        check(uid == 0 && euid == 0 && gid == 0 && egid == 0, || format!("ids {uid} {euid} {gid} {egid}"))?;
        // SAFETY: no buffer is written for a size of 0.
        equals("getgroups(0)", unsafe { libc::getgroups(0, std::ptr::null_mut()) }.into(), 0)?;
    }
    Ok(())
}

fn getrandom_fills_and_refuses_bad_input() -> TestResult {
    let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
    // SAFETY: writable buffers of the lengths given.
    let n = unsafe { libc::syscall(libc::SYS_getrandom, a.as_mut_ptr(), a.len(), 0) };
    equals("getrandom 64", n, 64)?;
    // SAFETY: as above.
    let n = unsafe { libc::syscall(libc::SYS_getrandom, b.as_mut_ptr(), b.len(), libc::GRND_NONBLOCK) };
    equals("getrandom 64 nonblock", n, 64)?;
    check(a != b && a != [0; 64], || "two getrandom calls gave the same bytes".into())?;
    // SAFETY: the kernel must refuse the pointer or the flags.
    fails_with(
        "getrandom to a bad pointer",
        unsafe { libc::syscall(libc::SYS_getrandom, 0x10usize, 8usize, 0) },
        libc::EFAULT,
    )?;
    // SAFETY: as above.
    fails_with(
        "getrandom with flag 0x80",
        unsafe { libc::syscall(libc::SYS_getrandom, a.as_mut_ptr(), 8usize, 0x80) },
        libc::EINVAL,
    )
}
