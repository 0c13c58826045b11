//! Waiting for descriptors and signals: poll, ppoll, select, pselect6 and
//! rt_sigsuspend, with their timeouts, their error reports and the masks
//! they wait under.

use crate::support::*;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const TESTS: &[Test] = tests![
    poll_sees_a_pipe_become_readable,
    poll_waits_for_another_process,
    poll_times_out,
    poll_reports_hangup_error_and_bad_descriptors,
    poll_refuses_bad_arguments,
    poll_on_a_file_is_always_ready,
    select_rewrites_its_sets,
    select_refuses_closed_descriptors_and_bad_arguments,
    select_times_out_and_says_how_long_is_left,
    ppoll_waits_under_its_mask,
    pselect6_waits_under_its_mask,
    sigsuspend_waits_under_its_mask,
    sa_restart_makes_an_interrupted_pipe_read_again,
];

fn pollfd(fd: libc::c_int, events: libc::c_short) -> libc::pollfd {
    libc::pollfd { fd, events, revents: 0 }
}

fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> i64 {
    // SAFETY: `fds` is a writable array of its length.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) }.into()
}

fn poll_sees_a_pipe_become_readable() -> TestResult {
    let (r, w) = pipe2(0)?;
    let mut fds = [pollfd(r.as_raw_fd(), libc::POLLIN), pollfd(w.as_raw_fd(), libc::POLLOUT)];
    equals("poll with only the write end ready", poll(&mut fds, 0), 1)?;
    check(fds[0].revents == 0 && fds[1].revents == libc::POLLOUT, || {
        format!("revents {:#x} {:#x}, wanted 0 and POLLOUT", fds[0].revents, fds[1].revents)
    })?;
    write_all(w.as_raw_fd(), b"x")?;
    equals("poll after a write", poll(&mut fds, 0), 2)?;
    check(fds[0].revents == libc::POLLIN, || format!("read end revents {:#x}", fds[0].revents))?;
    read_up_to(r.as_raw_fd(), 1)?;
    equals("poll after the byte was read", poll(&mut fds[..1], 0), 0)
}

fn poll_waits_for_another_process() -> TestResult {
    let (r, w) = pipe2(0)?;
    let wfd = w.as_raw_fd();
    let child = fork_child(|| {
        sleep_ms(50);
        if write_all(wfd, b"late").is_ok() { 0 } else { 2 }
    })?;
    drop(w);
    let start = now();
    let mut fds = [pollfd(r.as_raw_fd(), libc::POLLIN)];
    equals("poll with no timeout", poll(&mut fds, -1), 1)?;
    let waited = now() - start;
    check(fds[0].revents & libc::POLLIN != 0, || format!("revents {:#x}", fds[0].revents))?;
    check(waited >= Duration::from_millis(30), || format!("poll returned after {waited:?}, before the write"))?;
    exited(wait_for(child)?, 0)?;
    // Every writer gone: readable (the bytes) and hung up.
    equals("poll after the writer exited", poll(&mut fds, -1), 1)?;
    check(fds[0].revents == libc::POLLIN | libc::POLLHUP, || format!("revents {:#x}", fds[0].revents))
}

fn poll_times_out() -> TestResult {
    let (r, _w) = pipe2(0)?;
    let mut fds = [pollfd(r.as_raw_fd(), libc::POLLIN)];
    let start = now();
    equals("poll of an empty pipe for 50 ms", poll(&mut fds, 50), 0)?;
    let waited = now() - start;
    check(waited >= Duration::from_millis(50), || format!("returned after {waited:?}"))?;
    check(fds[0].revents == 0, || format!("revents {:#x}", fds[0].revents))?;
    // No descriptors at all: poll is a sleep.
    let start = now();
    equals("poll of nothing for 20 ms", poll(&mut [], 20), 0)?;
    check(now() - start >= Duration::from_millis(20), || "poll of nothing returned early".into())
}

fn poll_reports_hangup_error_and_bad_descriptors() -> TestResult {
    let (r, w) = pipe2(0)?;
    let (r2, w2) = pipe2(0)?;
    let (rfd, w2fd) = (r.as_raw_fd(), w2.as_raw_fd());
    drop(w);
    drop(r2);
    // Hang-ups and errors are reported even when not asked for; a negative
    // descriptor is skipped and does not count.
    let mut fds = [pollfd(rfd, 0), pollfd(w2fd, 0), pollfd(UNUSED_FD, libc::POLLIN), pollfd(-1, libc::POLLIN)];
    equals("poll of a hung-up, a broken, a closed and a skipped descriptor", poll(&mut fds, 0), 3)?;
    let got: Vec<i16> = fds.iter().map(|f| f.revents).collect();
    // The broken end is writable too, but POLLOUT was not asked for.
    let want = [libc::POLLHUP, libc::POLLERR, libc::POLLNVAL, 0];
    check(got == want, || format!("revents {got:x?}, wanted {want:x?}"))
}

fn poll_refuses_bad_arguments() -> TestResult {
    // SAFETY: the kernel must refuse these without touching memory.
    unsafe {
        fails_with(
            "poll of more than RLIMIT_NOFILE entries",
            libc::poll(std::ptr::null_mut(), 1 << 20, 0).into(),
            libc::EINVAL,
        )?;
        fails_with("poll of a bad pointer", libc::poll(0x10 as *mut libc::pollfd, 1, 0).into(), libc::EFAULT)?;
        let ts = libc::timespec { tv_sec: 0, tv_nsec: 1_000_000_000 };
        let r = libc::syscall(libc::SYS_ppoll, std::ptr::null_mut::<libc::pollfd>(), 0, &ts, 0, 8);
        fails_with("ppoll with tv_nsec of a second", r, libc::EINVAL)?;
        let set = sigset(&[]);
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        let r = libc::syscall(libc::SYS_ppoll, std::ptr::null_mut::<libc::pollfd>(), 0, &zero, &set, 4);
        fails_with("ppoll with a 4-byte signal set", r, libc::EINVAL)
    }
}

fn poll_on_a_file_is_always_ready() -> TestResult {
    let (_path, f) = fresh_file("poll-file", b"")?;
    let mut fds = [pollfd(f.as_raw_fd(), libc::POLLIN | libc::POLLOUT)];
    equals("poll of a regular file", poll(&mut fds, -1), 1)?;
    check(fds[0].revents == libc::POLLIN | libc::POLLOUT, || format!("revents {:#x}", fds[0].revents))
}

/// An fd_set holding `fds`.
fn fdset(fds: &[libc::c_int]) -> libc::fd_set {
    // SAFETY: a zeroed fd_set is empty; FD_SET stays within it for fds < 1024.
    unsafe {
        let mut s: libc::fd_set = std::mem::zeroed();
        fds.iter().for_each(|&fd| libc::FD_SET(fd, &mut s));
        s
    }
}

fn members(s: &libc::fd_set, upto: libc::c_int) -> Vec<libc::c_int> {
    // SAFETY: FD_ISSET reads within the set for fds < 1024.
    (0..upto).filter(|&fd| unsafe { libc::FD_ISSET(fd, s) }).collect()
}

fn select(n: libc::c_int, rd: &mut libc::fd_set, wr: &mut libc::fd_set, tv: Option<&mut libc::timeval>) -> i64 {
    let tv = tv.map_or(std::ptr::null_mut(), |t| t as *mut _);
    // SAFETY: valid sets and an optional valid timeval.
    unsafe { libc::select(n, rd, wr, std::ptr::null_mut(), tv) }.into()
}

fn select_rewrites_its_sets() -> TestResult {
    let (r, w) = pipe2(0)?;
    let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
    let n = rfd.max(wfd) + 1;
    let (mut rd, mut wr) = (fdset(&[rfd]), fdset(&[wfd]));
    let mut zero = libc::timeval { tv_sec: 0, tv_usec: 0 };
    equals("select with only the write end ready", select(n, &mut rd, &mut wr, Some(&mut zero)), 1)?;
    check(members(&rd, n).is_empty() && members(&wr, n) == [wfd], || {
        format!("sets {:?} {:?}", members(&rd, n), members(&wr, n))
    })?;
    write_all(wfd, b"x")?;
    let (mut rd, mut wr) = (fdset(&[rfd, wfd]), fdset(&[rfd, wfd]));
    // A write end is never readable; a read end never writable.
    equals("select after a write", select(n, &mut rd, &mut wr, None), 2)?;
    check(members(&rd, n) == [rfd] && members(&wr, n) == [wfd], || {
        format!("sets {:?} {:?}", members(&rd, n), members(&wr, n))
    })
}

fn select_refuses_closed_descriptors_and_bad_arguments() -> TestResult {
    // A descriptor that was open, so it lies within the table: Linux
    // ignores bits past the table's size.
    let (r, w) = pipe2(0)?;
    let closed = r.as_raw_fd().max(w.as_raw_fd());
    drop((r, w));
    let (mut rd, mut wr) = (fdset(&[closed]), fdset(&[]));
    let mut zero = libc::timeval { tv_sec: 0, tv_usec: 0 };
    let r = select(closed + 1, &mut rd, &mut wr, Some(&mut zero));
    fails_with("select of a closed descriptor", r, libc::EBADF)?;
    let (mut rd, mut wr) = (fdset(&[]), fdset(&[]));
    fails_with("select with n = -1", select(-1, &mut rd, &mut wr, None), libc::EINVAL)?;
    // Linux carries whole seconds out of tv_usec; only a negative time is
    // refused. The raw call, so libc does not check first.
    let mut tv = libc::timeval { tv_sec: 0, tv_usec: -1 };
    // SAFETY: a valid timeval.
    let r = unsafe { libc::syscall(libc::SYS_select, 0, 0, 0, 0, &mut tv) };
    fails_with("select with tv_usec -1", r, libc::EINVAL)?;
    // SAFETY: the kernel must refuse the set's pointer.
    let r = unsafe { libc::syscall(libc::SYS_select, 1, 0x10usize, 0, 0, 0) };
    fails_with("select of a bad set pointer", r, libc::EFAULT)
}

fn select_times_out_and_says_how_long_is_left() -> TestResult {
    let (r, _w) = pipe2(0)?;
    let rfd = r.as_raw_fd();
    let (mut rd, mut wr) = (fdset(&[rfd]), fdset(&[]));
    let mut tv = libc::timeval { tv_sec: 0, tv_usec: 50_000 };
    let start = now();
    // The raw call: libc's select may pass the kernel a copy of `tv`.
    // SAFETY: valid sets and timeval.
    let r = unsafe { libc::syscall(libc::SYS_select, rfd + 1, &mut rd, &mut wr, 0, &mut tv) };
    equals("select of an empty pipe for 50 ms", r, 0)?;
    let waited = now() - start;
    check(waited >= Duration::from_millis(50), || format!("returned after {waited:?}"))?;
    check(members(&rd, rfd + 1).is_empty(), || "a set kept a descriptor that was not ready".into())?;
    // Linux writes the time left back: none, once it timed out.
    check(tv.tv_sec == 0 && tv.tv_usec == 0, || format!("time left {}s {}us", tv.tv_sec, tv.tv_usec))
}

static WOKEN: AtomicU32 = AtomicU32::new(0);

extern "C" fn note(_: libc::c_int) {
    WOKEN.fetch_add(1, Ordering::Relaxed);
}

/// A pipe read interrupted by a handler before any byte came: with
/// SA_RESTART the read goes on and gets the byte sent later; without it,
/// EINTR. Either way the handler ran once.
fn sa_restart_makes_an_interrupted_pipe_read_again() -> TestResult {
    for (flags, restarts) in [(libc::SA_RESTART, true), (0, false)] {
        set_action(libc::SIGUSR1, note as extern "C" fn(libc::c_int) as usize, flags, &[])?;
        WOKEN.store(0, Ordering::Relaxed);
        let (r, w) = pipe2(0)?;
        // SAFETY: no preconditions.
        let parent = unsafe { libc::getpid() };
        let child = fork_child(|| {
            sleep_ms(40);
            // SAFETY: a signal to the parent, which has a handler.
            unsafe { libc::kill(parent, libc::SIGUSR1) };
            sleep_ms(40);
            // SAFETY: one byte from a valid buffer.
            unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) };
            0
        })?;
        let mut b = [0u8; 1];
        // SAFETY: `b` is writable.
        let n = unsafe { libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        let e = errno();
        exited(wait_for(child)?, 0)?;
        let woken = WOKEN.load(Ordering::Relaxed);
        check(woken == 1, || format!("the handler ran {woken} times"))?;
        if restarts {
            check(n == 1 && b == *b"x", || format!("with SA_RESTART read gave {n} ({})", errno_name(e)))?;
        } else {
            check(n == -1 && e == libc::EINTR, || format!("without SA_RESTART read gave {n} ({})", errno_name(e)))?;
        }
    }
    set_action(libc::SIGUSR1, libc::SIG_DFL, 0, &[]).map(drop)
}

/// With SIGUSR1 blocked and a handler for it, a child sends it while
/// `wait_unblocked` waits under an empty mask: the call must end in EINTR
/// after the handler ran, and SIGUSR1 must be blocked again afterwards.
fn waits_under_mask(what: &str, wait_unblocked: impl FnOnce(&libc::sigset_t) -> i64) -> TestResult {
    set_action(libc::SIGUSR1, note as extern "C" fn(libc::c_int) as usize, 0, &[])?;
    let blocked = sigset(&[libc::SIGUSR1]);
    // SAFETY: valid signal sets.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &blocked, std::ptr::null_mut()) };
    // SAFETY: no preconditions.
    let parent = unsafe { libc::getpid() };
    let child = fork_child(|| {
        sleep_ms(30);
        // SAFETY: a signal to the parent, which has a handler.
        unsafe { libc::kill(parent, libc::SIGUSR1) };
        0
    })?;
    let r = wait_unblocked(&sigset(&[]));
    let e = errno();
    exited(wait_for(child)?, 0)?;
    check(r == -1 && e == libc::EINTR, || format!("{what} returned {r} ({}), wanted EINTR", errno_name(e)))?;
    check(WOKEN.load(Ordering::Relaxed) == 1, || format!("the handler ran {} times", WOKEN.load(Ordering::Relaxed)))?;
    let mut now_blocked = sigset(&[]);
    // SAFETY: a query of the mask.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, std::ptr::null(), &mut now_blocked) };
    check(has(&now_blocked, libc::SIGUSR1), || format!("SIGUSR1 is no longer blocked after {what}"))
}

fn ppoll_waits_under_its_mask() -> TestResult {
    let (r, _w) = pipe2(0)?;
    let mut fds = [pollfd(r.as_raw_fd(), libc::POLLIN)];
    // SAFETY: a valid array, no timeout, a valid mask.
    waits_under_mask("ppoll", |m| unsafe { libc::ppoll(fds.as_mut_ptr(), 1, std::ptr::null(), m) }.into())
}

fn pselect6_waits_under_its_mask() -> TestResult {
    let (r, _w) = pipe2(0)?;
    let rfd = r.as_raw_fd();
    let mut rd = fdset(&[rfd]);
    waits_under_mask("pselect", |m| {
        // SAFETY: a valid set, no timeout, a valid mask.
        unsafe { libc::pselect(rfd + 1, &mut rd, std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null(), m) }
            .into()
    })
}

fn sigsuspend_waits_under_its_mask() -> TestResult {
    // SAFETY: a valid mask.
    waits_under_mask("sigsuspend", |m| unsafe { libc::sigsuspend(m) }.into())
}
