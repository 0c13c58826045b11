//! What a process is given and charged: resource limits, the file-mode
//! creation mask, CPU time, its name, the wall clock and its alarm.

use crate::support::*;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const TESTS: &[Test] = tests![
    rlimit_nofile_bounds_new_descriptors,
    setrlimit_refuses_soft_above_hard,
    prlimit_reads_another_process,
    umask_masks_new_files_and_is_inherited,
    cpu_time_is_charged,
    prctl_names_the_process,
    the_wall_clock_is_a_date,
    alarm_sends_sigalrm,
    setitimer_repeats_and_getitimer_counts_down,
    msync_checks_its_range,
];

fn rlimit(resource: libc::c_int) -> Result<libc::rlimit, String> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `r` is writable.
    ok("getrlimit", unsafe { libc::getrlimit(resource, &mut r) }.into())?;
    Ok(r)
}

fn rlimit_nofile_bounds_new_descriptors() -> TestResult {
    let status = in_child(|| {
        let lim = libc::rlimit { rlim_cur: 8, rlim_max: 8 };
        // SAFETY: a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return 2;
        }
        // Descriptors 0..8 at most: pipes fill them, then EMFILE.
        let mut fds = [0; 2];
        let mut opened = 0;
        loop {
            // SAFETY: room for two descriptors.
            if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                break;
            }
            opened += 2;
            if fds.iter().any(|&fd| fd >= 8) {
                return 3;
            }
        }
        if errno() != libc::EMFILE || opened == 0 {
            return 4;
        }
        // SAFETY: dup2 to a number past the limit must fail with EBADF.
        let r = unsafe { libc::dup2(0, 8) };
        if r != -1 || errno() != libc::EBADF { 5 } else { 0 }
    })?;
    exited(status, 0)
}

fn setrlimit_refuses_soft_above_hard() -> TestResult {
    let now = rlimit(libc::RLIMIT_STACK)?;
    let bad = libc::rlimit { rlim_cur: 2 << 20, rlim_max: 1 << 20 };
    // SAFETY: a valid rlimit; the call must fail.
    fails_with("setrlimit soft > hard", unsafe { libc::setrlimit(libc::RLIMIT_STACK, &bad) }.into(), libc::EINVAL)?;
    // SAFETY: an out-of-range resource.
    let r = unsafe { libc::syscall(libc::SYS_getrlimit, 99, &mut libc::rlimit { rlim_cur: 0, rlim_max: 0 }) };
    fails_with("getrlimit(99)", r, libc::EINVAL)?;
    let after = rlimit(libc::RLIMIT_STACK)?;
    check(after.rlim_cur == now.rlim_cur && after.rlim_max == now.rlim_max, || "a refused setrlimit changed".into())
}

fn prlimit_reads_another_process() -> TestResult {
    let (r, w) = pipe2(0)?;
    let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
    let (ready_r, ready_w) = pipe2(0)?;
    let ready = ready_w.as_raw_fd();
    let child = fork_child(|| {
        // SAFETY: the child's copy of the write end.
        unsafe { libc::close(wfd) };
        let lim = libc::rlimit { rlim_cur: 100, rlim_max: 200 };
        // SAFETY: a valid rlimit.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &lim) };
        let _ = write_all(ready, b"r");
        let _ = read_up_to(rfd, 1);
        0
    })?;
    drop(ready_w);
    // Once the child says its limit is set.
    read_up_to(ready_r.as_raw_fd(), 1)?;
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid output pointer, no new limit.
    let r = unsafe { libc::prlimit(child, libc::RLIMIT_CORE, std::ptr::null(), &mut old) };
    drop(w);
    exited(wait_for(child)?, 0)?;
    equals("prlimit(child, RLIMIT_CORE)", r.into(), 0)?;
    check(old.rlim_cur == 100 && old.rlim_max == 200, || format!("the child's limit {}/{}", old.rlim_cur, old.rlim_max))
}

fn umask_masks_new_files_and_is_inherited() -> TestResult {
    let status = in_child(|| {
        // SAFETY: no memory is passed.
        unsafe { libc::umask(0o077) };
        // SAFETY: as above; the old mask comes back.
        if unsafe { libc::umask(0o027) } != 0o077 {
            return 2;
        }
        let code = in_child(|| {
            let Ok(path) = scratch("umask-file") else { return 3 };
            let _ = std::fs::remove_file(&path);
            let Ok(f) = open(&path, libc::O_CREAT | libc::O_WRONLY, 0o666) else { return 4 };
            let Ok(st) = fstat(f.as_raw_fd()) else { return 5 };
            if st.st_mode & 0o777 == 0o640 { 0 } else { 6 }
        });
        match code {
            Ok(s) if libc::WIFEXITED(s) => libc::WEXITSTATUS(s),
            _ => 7,
        }
    })?;
    exited(status, 0)
}

/// User plus system time `who` has been charged, in µs.
fn charged(who: libc::c_int) -> Result<i64, String> {
    // SAFETY: a zeroed rusage is a valid value to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is writable.
    ok("getrusage", unsafe { libc::getrusage(who, &mut ru) }.into())?;
    let us = |t: libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
    Ok(us(ru.ru_utime) + us(ru.ru_stime))
}

/// Spins until 30 ms of CPU time are charged; false if 5 s of wall time
/// pass first (ticks are charged to whoever runs, so a loaded host only
/// makes this slower).
fn spin_until_charged() -> bool {
    let start = now();
    while now() - start < Duration::from_secs(5) {
        for _ in 0..10_000 {
            std::hint::black_box(0u64);
        }
        if charged(libc::RUSAGE_SELF).is_ok_and(|us| us >= 30_000) {
            return true;
        }
    }
    false
}

fn cpu_time_is_charged() -> TestResult {
    check(spin_until_charged(), || "5 s of spinning were charged less than 30 ms of CPU time".into())?;
    // A waited-for child's time moves to RUSAGE_CHILDREN.
    let before = charged(libc::RUSAGE_CHILDREN)?;
    exited(in_child(|| if spin_until_charged() { 0 } else { 2 })?, 0)?;
    let children = charged(libc::RUSAGE_CHILDREN)? - before;
    check(children >= 30_000, || format!("a child charged 30 ms shows as {children} us"))?;
    // SAFETY: an invalid `who`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is writable; the call must fail.
    fails_with("getrusage(5)", unsafe { libc::getrusage(5, &mut ru) }.into(), libc::EINVAL)
}

fn prctl_names_the_process() -> TestResult {
    // SAFETY: a NUL-terminated name longer than 15 bytes, cut by the kernel.
    ok("PR_SET_NAME", unsafe { libc::prctl(libc::PR_SET_NAME, c"a-long-name-for-a-test".as_ptr()) }.into())?;
    let mut buf = [0u8; 16];
    // SAFETY: a 16-byte buffer, as PR_GET_NAME needs.
    ok("PR_GET_NAME", unsafe { libc::prctl(libc::PR_GET_NAME, buf.as_mut_ptr()) }.into())?;
    let got = &buf[..buf.iter().position(|&b| b == 0).unwrap_or(16)];
    check(got == b"a-long-name-for", || format!("name {:?}", String::from_utf8_lossy(got)))?;
    // SAFETY: an option no kernel has.
    fails_with("prctl(-1)", unsafe { libc::prctl(-1, 0) }.into(), libc::EINVAL)
}

fn the_wall_clock_is_a_date() -> TestResult {
    let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
    // SAFETY: a writable timeval, no time zone. The raw call: libc may
    // answer from the vDSO.
    ok("gettimeofday", unsafe { libc::syscall(libc::SYS_gettimeofday, &mut tv, 0) })?;
    // SAFETY: no pointer.
    let t = unsafe { libc::syscall(libc::SYS_time, 0) };
    // After 2020-01-01 and within a second of gettimeofday.
    check(tv.tv_sec > 1_577_836_800, || format!("gettimeofday says {} s since 1970", tv.tv_sec))?;
    check((t - tv.tv_sec).abs() <= 1, || format!("time {t} and gettimeofday {} disagree", tv.tv_sec))?;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a writable timespec.
    ok("clock_gettime(REALTIME)", unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_REALTIME, &mut ts) })?;
    check((ts.tv_sec - tv.tv_sec).abs() <= 1, || format!("CLOCK_REALTIME {} disagrees", ts.tv_sec))?;
    // SAFETY: a writable timespec.
    ok("clock_getres", unsafe { libc::syscall(libc::SYS_clock_getres, libc::CLOCK_MONOTONIC, &mut ts) })?;
    check(ts.tv_sec == 0 && ts.tv_nsec > 0 && ts.tv_nsec <= 10_000_000, || format!("resolution {}ns", ts.tv_nsec))
}

static ALARMS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_alarm(_: libc::c_int) {
    ALARMS.fetch_add(1, Ordering::Relaxed);
}

fn alarm_sends_sigalrm() -> TestResult {
    set_action(libc::SIGALRM, on_alarm as extern "C" fn(libc::c_int) as usize, 0, &[])?;
    // SAFETY: no memory is passed.
    equals("alarm(1) with none armed", unsafe { libc::alarm(1) }.into(), 0)?;
    // SAFETY: as above: what was left of 1 s, rounded.
    equals("alarm(1) again", unsafe { libc::alarm(1) }.into(), 1)?;
    let start = now();
    // SAFETY: pause returns once a handled signal came.
    unsafe { libc::pause() };
    let waited = now() - start;
    check(ALARMS.load(Ordering::Relaxed) == 1, || format!("{} alarms", ALARMS.load(Ordering::Relaxed)))?;
    check(waited >= Duration::from_millis(900), || format!("SIGALRM after {waited:?}"))?;
    // SAFETY: cancels; none left.
    equals("alarm(0)", unsafe { libc::alarm(0) }.into(), 0)
}

fn setitimer_repeats_and_getitimer_counts_down() -> TestResult {
    set_action(libc::SIGALRM, on_alarm as extern "C" fn(libc::c_int) as usize, 0, &[])?;
    let every = libc::timeval { tv_sec: 0, tv_usec: 30_000 };
    let t = libc::itimerval { it_interval: every, it_value: every };
    // SAFETY: valid itimervals.
    ok("setitimer", unsafe { libc::setitimer(libc::ITIMER_REAL, &t, std::ptr::null_mut()) }.into())?;
    let mut cur = libc::itimerval { it_interval: every, it_value: every };
    // SAFETY: a writable itimerval.
    ok("getitimer", unsafe { libc::getitimer(libc::ITIMER_REAL, &mut cur) }.into())?;
    check(cur.it_interval.tv_usec == 30_000 && cur.it_value.tv_usec <= 30_000, || {
        format!("getitimer: interval {}us, value {}us", cur.it_interval.tv_usec, cur.it_value.tv_usec)
    })?;
    let start = now();
    while ALARMS.load(Ordering::Relaxed) < 3 && now() - start < Duration::from_secs(5) {
        // SAFETY: returns at each SIGALRM.
        unsafe { libc::pause() };
    }
    let off = libc::itimerval {
        it_interval: libc::timeval { tv_sec: 0, tv_usec: 0 },
        it_value: libc::timeval { tv_sec: 0, tv_usec: 0 },
    };
    // SAFETY: valid itimervals; disarms.
    ok("setitimer off", unsafe { libc::setitimer(libc::ITIMER_REAL, &off, std::ptr::null_mut()) }.into())?;
    check(ALARMS.load(Ordering::Relaxed) >= 3, || format!("{} SIGALRMs in 5 s", ALARMS.load(Ordering::Relaxed)))?;
    let bad = libc::itimerval { it_interval: every, it_value: libc::timeval { tv_sec: 0, tv_usec: 1_000_000 } };
    // SAFETY: the kernel must refuse tv_usec of a second.
    fails_with(
        "setitimer tv_usec 10^6",
        unsafe { libc::setitimer(libc::ITIMER_REAL, &bad, std::ptr::null_mut()) }.into(),
        libc::EINVAL,
    )
}

fn msync_checks_its_range() -> TestResult {
    let (_path, f) = fresh_file("msync-file", &[0u8; 3 * 4096])?;
    // SAFETY: a fresh shared mapping of the file's three pages, the middle
    // one then unmapped, so the range has a hole.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            3 * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    check(p != libc::MAP_FAILED, || format!("mmap failed ({})", errno_name(errno())))?;
    // SAFETY: the middle page of our own mapping.
    ok("munmap", unsafe { libc::munmap(p.cast::<u8>().add(4096).cast(), 4096) }.into())?;
    // SAFETY: the mapping is one writable page.
    unsafe { p.cast::<u8>().write(b'm') };
    // SAFETY: the mapping's own range.
    equals("msync(MS_SYNC)", unsafe { libc::msync(p, 4096, libc::MS_SYNC) }.into(), 0)?;
    let mut b = [0u8; 1];
    // SAFETY: a one-byte buffer.
    equals("pread", unsafe { libc::pread(f.as_raw_fd(), b.as_mut_ptr().cast(), 1, 0) } as i64, 1)?;
    check(b[0] == b'm', || format!("the file has {:?} after msync", b[0]))?;
    // SAFETY: each call must fail without touching memory.
    unsafe {
        fails_with(
            "msync unaligned",
            libc::msync(p.cast::<u8>().add(1).cast(), 10, libc::MS_SYNC).into(),
            libc::EINVAL,
        )?;
        fails_with("msync ASYNC|SYNC", libc::msync(p, 4096, libc::MS_ASYNC | libc::MS_SYNC).into(), libc::EINVAL)?;
        fails_with("msync over a hole", libc::msync(p, 3 * 4096, libc::MS_SYNC).into(), libc::ENOMEM)?;
        libc::munmap(p, 3 * 4096);
    }
    Ok(())
}
