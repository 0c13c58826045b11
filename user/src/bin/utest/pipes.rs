//! Pipes: round trips, end of file, EPIPE and SIGPIPE, non-blocking ends,
//! close-on-exec, and writers that block until a reader drains them.

use crate::support::*;
use std::os::fd::AsRawFd;

pub const TESTS: &[Test] = tests![
    pipe_and_pipe2_round_trip,
    pipe_ends_go_one_way,
    read_sees_eof_once_every_writer_closed,
    write_without_readers_is_epipe_when_sigpipe_is_ignored,
    write_without_readers_kills_by_sigpipe_by_default,
    nonblocking_pipe_gives_eagain_when_empty_or_full,
    pipe2_cloexec_sets_fd_cloexec,
    close_on_exec_closes_a_pipe_end_in_the_new_program,
    ping_pong_100_round_trips_with_a_child,
    a_large_write_blocks_until_the_reader_drains_it,
];

fn pipe_and_pipe2_round_trip() -> TestResult {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for two descriptors.
    equals("pipe", unsafe { libc::syscall(libc::SYS_pipe, fds.as_mut_ptr()) }, 0)?;
    let (r1, w1) = (own("pipe", fds[0])?, own("pipe", fds[1])?);
    let (r2, w2) = pipe2(0)?;
    for (r, w, what) in [(&r1, &w1, "pipe"), (&r2, &w2, "pipe2")] {
        write_all(w.as_raw_fd(), b"ping")?;
        let back = read_up_to(r.as_raw_fd(), 4)?;
        check(back == b"ping", || format!("{what} carried {back:?}"))?;
    }
    // SAFETY: the calls must fail.
    unsafe {
        fails_with("pipe2 with flag 1", libc::syscall(libc::SYS_pipe2, fds.as_mut_ptr(), 1), libc::EINVAL)?;
        fails_with("pipe to a bad pointer", libc::syscall(libc::SYS_pipe, 0x10usize), libc::EFAULT)
    }
}

fn pipe_ends_go_one_way() -> TestResult {
    let (r, w) = pipe2(0)?;
    let mut b = [0u8; 1];
    // SAFETY: one-byte buffers; each call must fail.
    unsafe {
        fails_with("write to the read end", libc::write(r.as_raw_fd(), b.as_ptr().cast(), 1) as i64, libc::EBADF)?;
        fails_with("read from the write end", libc::read(w.as_raw_fd(), b.as_mut_ptr().cast(), 1) as i64, libc::EBADF)
    }
}

fn read_sees_eof_once_every_writer_closed() -> TestResult {
    let (r, w) = pipe2(0)?;
    let wfd = w.as_raw_fd();
    let child = fork_child(|| {
        // SAFETY: one write from a valid buffer; the descriptor is ours.
        unsafe { libc::write(wfd, b"x".as_ptr().cast(), 1) as i32 - 1 }
    })?;
    drop(w);
    // The child's end closes when it exits: "x" then end of file.
    let got = read_up_to(r.as_raw_fd(), 10)?;
    check(got == b"x", || format!("read {got:?}, wanted \"x\" then end of file"))?;
    exited(wait_for(child)?, 0)?;
    // SAFETY: a one-byte buffer.
    equals("read after EOF", unsafe { libc::read(r.as_raw_fd(), [0u8; 1].as_mut_ptr().cast(), 1) } as i64, 0)
}

fn write_without_readers_is_epipe_when_sigpipe_is_ignored() -> TestResult {
    set_action(libc::SIGPIPE, libc::SIG_IGN, 0, &[])?;
    let (r, w) = pipe2(0)?;
    drop(r);
    // SAFETY: a valid one-byte buffer; the write must fail.
    fails_with(
        "write with no reader",
        unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) } as i64,
        libc::EPIPE,
    )
}

fn write_without_readers_kills_by_sigpipe_by_default() -> TestResult {
    let (r, w) = pipe2(0)?;
    drop(r);
    let wfd = w.as_raw_fd();
    let status = in_child(|| {
        // Rust programs start with SIGPIPE ignored; a C program's default is this.
        if set_action(libc::SIGPIPE, libc::SIG_DFL, 0, &[]).is_err() {
            return 3;
        }
        // SAFETY: a valid one-byte buffer.
        unsafe { libc::write(wfd, b"x".as_ptr().cast(), 1) };
        4
    })?;
    killed_by(status, libc::SIGPIPE)
}

fn nonblocking_pipe_gives_eagain_when_empty_or_full() -> TestResult {
    let (r, w) = pipe2(libc::O_NONBLOCK)?;
    let mut buf = [0u8; 4096];
    // SAFETY: fcntl and reads/writes with buffers valid for their lengths.
    unsafe {
        let fl = ok("F_GETFL", libc::fcntl(r.as_raw_fd(), libc::F_GETFL).into())?;
        check(fl as i32 & libc::O_NONBLOCK != 0, || format!("the read end's flags {fl:#x} lack O_NONBLOCK"))?;
        fails_with(
            "read of an empty pipe",
            libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), 1) as i64,
            libc::EAGAIN,
        )?;
        let mut total = 0usize;
        loop {
            let n = libc::write(w.as_raw_fd(), buf.as_ptr().cast(), buf.len());
            if n == -1 {
                fails_with("write to a full pipe", n as i64, libc::EAGAIN)?;
                break;
            }
            total += n as usize;
            check(total <= 16 << 20, || "a non-blocking pipe took 16 MiB without filling".into())?;
        }
        check(total >= 4096, || format!("a pipe holds only {total} bytes"))?;
        drop(w);
        // With no writer left, the data comes out, then end of file, not EAGAIN.
        let mut drained = 0usize;
        loop {
            let n =
                ok("read of a pipe with data", libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) as i64)?;
            if n == 0 {
                break;
            }
            drained += n as usize;
        }
        check(drained == total, || format!("wrote {total} bytes, read {drained}"))
    }
}

fn pipe2_cloexec_sets_fd_cloexec() -> TestResult {
    let (r, w) = pipe2(libc::O_CLOEXEC)?;
    let (pr, pw) = pipe2(0)?;
    // SAFETY: F_GETFD on descriptors this test owns.
    let fd_flags = |fd: libc::c_int| unsafe { libc::fcntl(fd, libc::F_GETFD) } as i64;
    equals("F_GETFD of pipe2(O_CLOEXEC)'s read end", fd_flags(r.as_raw_fd()), libc::FD_CLOEXEC.into())?;
    equals("F_GETFD of pipe2(O_CLOEXEC)'s write end", fd_flags(w.as_raw_fd()), libc::FD_CLOEXEC.into())?;
    equals("F_GETFD of pipe2(0)'s read end", fd_flags(pr.as_raw_fd()), 0)?;
    equals("F_GETFD of pipe2(0)'s write end", fd_flags(pw.as_raw_fd()), 0)
}

fn close_on_exec_closes_a_pipe_end_in_the_new_program() -> TestResult {
    let (pr, pw) = pipe2(0)?;
    let (qr, qw) = pipe2(libc::O_CLOEXEC)?;
    let (p, q) = (pw.as_raw_fd().to_string(), qw.as_raw_fd().to_string());
    let me = self_path();
    let child = fork_child(|| {
        let args = [cstr(&me), cstr("--cloexec-probe"), cstr(&p), cstr(&q)];
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let envp = [std::ptr::null()];
        // SAFETY: NUL-terminated strings in NULL-terminated arrays.
        unsafe { libc::execve(argv[0], argv.as_ptr(), envp.as_ptr()) };
        99
    })?;
    drop(pw);
    drop(qw);
    let status = wait_for(child)?;
    check(!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3), || {
        "the close-on-exec end was still open after execve".into()
    })?;
    check(!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 2), || {
        "the plain end was closed by execve".into()
    })?;
    exited(status, 0)?;
    let got = read_up_to(pr.as_raw_fd(), 4)?;
    check(got == b"p", || format!("the plain pipe carried {got:?}"))?;
    let got = read_up_to(qr.as_raw_fd(), 4)?;
    check(got.is_empty(), || format!("the close-on-exec pipe carried {got:?}"))
}

fn ping_pong_100_round_trips_with_a_child() -> TestResult {
    let (to_child, from_parent) = {
        let (r, w) = pipe2(0)?;
        (w, r)
    };
    let (from_child, to_parent) = pipe2(0)?;
    let (cin, cout, pin, pout) =
        (from_parent.as_raw_fd(), to_parent.as_raw_fd(), from_child.as_raw_fd(), to_child.as_raw_fd());
    let child = fork_child(|| {
        // SAFETY: the parent's ends, not needed here.
        unsafe {
            libc::close(pin);
            libc::close(pout);
        }
        loop {
            let Ok(got) = read_up_to(cin, 4) else { return 2 };
            if got.is_empty() {
                return 0;
            }
            let n = u32::from_ne_bytes(got.try_into().unwrap_or_default());
            if write_all(cout, &(n + 1).to_ne_bytes()).is_err() {
                return 3;
            }
        }
    })?;
    drop(from_parent);
    drop(to_parent);
    for i in 0..100u32 {
        write_all(pout, &(i * 2).to_ne_bytes())?;
        let got = read_up_to(pin, 4)?;
        check(got.len() == 4, || format!("round trip {i}: the child's answer has {} bytes", got.len()))?;
        let n = u32::from_ne_bytes(got.try_into().unwrap_or_default());
        check(n == i * 2 + 1, || format!("round trip {i}: sent {}, got {n}", i * 2))?;
    }
    drop(to_child);
    exited(wait_for(child)?, 0)
}

fn a_large_write_blocks_until_the_reader_drains_it() -> TestResult {
    const LEN: usize = 200 * 1024;
    let (r, w) = pipe2(0)?;
    let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
    let child = fork_child(|| {
        // SAFETY: the parent's end, not needed here.
        unsafe { libc::close(rfd) };
        let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        // One call: a blocking pipe write returns only when all of it is in.
        // SAFETY: a valid buffer of the given length.
        let n = unsafe { libc::write(wfd, data.as_ptr().cast(), LEN) };
        if n == LEN as isize { 0 } else { 1 }
    })?;
    drop(w);
    let got = read_up_to(rfd, LEN + 1)?;
    check(got.len() == LEN, || format!("read {} bytes of {LEN}", got.len()))?;
    let bad = got.iter().enumerate().position(|(i, &b)| b != (i % 251) as u8);
    check(bad.is_none(), || format!("byte {} differs", bad.unwrap_or(0)))?;
    let status = wait_for(child)?;
    check(!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 1), || {
        "the child's single write returned short".into()
    })?;
    exited(status, 0)
}
