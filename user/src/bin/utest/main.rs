//! The user-space test suite: each test makes system calls the way a
//! program would and checks what the kernel answers, error paths included,
//! with Linux's exact semantics (every test also passes on a real Linux).
//! Prints `test NAME ... ok|FAILED` and ends with `utest: N passed, M failed`;
//! exits 0 only when every test passed. An argument runs only the tests
//! whose name contains it.
#![allow(unsafe_code)] // raw system calls are the thing under test

mod basics;
mod crafted;
mod files;
mod jobs;
mod limits;
mod loader;
mod memory;
mod names;
mod pipes;
mod process;
mod procfs;
mod resources;
mod signals;
mod support;
mod system;
mod waiting;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;
use support::{Test, TestResult};

/// A test still running after this long is killed and fails: one hung
/// system call must not hang the suite.
const TIMEOUT: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    // Lossily: a helper may be given bytes that are not UTF-8.
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    if let Some(code) = helper(&args) {
        return ExitCode::from(code);
    }
    // Start from no signal blocked: a blocked mask survives execve, and the
    // signal tests assume Linux's defaults (the host shell may block SIGCHLD).
    let empty = support::sigset(&[]);
    // SAFETY: a valid signal set; the old mask is not wanted.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };

    let groups: &[&[Test]] = &[
        basics::TESTS,
        files::TESTS,
        names::TESTS,
        system::TESTS,
        pipes::TESTS,
        waiting::TESTS,
        signals::TESTS,
        memory::TESTS,
        process::TESTS,
        jobs::TESTS,
        resources::TESTS,
        procfs::TESTS,
        loader::TESTS,
        limits::TESTS,
    ];
    let filter = args.get(1).cloned().unwrap_or_default();
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in groups.iter().flat_map(|g| g.iter()).filter(|(n, _)| n.contains(filter.as_str())) {
        if run_isolated(name, *test) {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("utest: {passed} passed, {failed} failed");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Runs one test in a forked process, so that a crash fails that test only
/// and no signal action, mask, descriptor or working directory leaks into
/// the next. The child prints the verdict; true when it passed.
fn run_isolated(name: &str, test: fn() -> TestResult) -> bool {
    let _ = std::io::stdout().flush();
    let pid = support::fork_child(|| {
        let line = match test() {
            Ok(()) => match support::SKIPPED.lock().unwrap_or_else(|e| e.into_inner()).take() {
                Some(why) => format!("test {name} ... ok (skipped: {why})"),
                None => format!("test {name} ... ok"),
            },
            Err(why) => format!("test {name} ... FAILED: {why}"),
        };
        let passed = line.contains(" ... ok");
        // One write, so the verdict is whole even if a test left output half-done.
        let _ = support::write_all(1, format!("{line}\n").as_bytes());
        if passed { 0 } else { 1 }
    });
    let pid = match pid {
        Ok(pid) => pid,
        Err(why) => {
            println!("test {name} ... FAILED: cannot fork the test's process: {why}");
            return false;
        }
    };
    let start = support::now();
    loop {
        let mut status = 0;
        // SAFETY: a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return match status {
                s if libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0 => true,
                s if libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 1 => false,
                s => {
                    println!("test {name} ... FAILED: its process {} before a verdict", support::describe(s));
                    false
                }
            };
        }
        if r == -1 && support::errno() != libc::EINTR {
            // A verdict the test printed above does not count: the kernel
            // lost the process that gave it (ECHILD for a live child).
            let e = support::errno_name(support::errno());
            println!("test {name} ... FAILED: the suite's waitpid({pid}, WNOHANG) for the test's process gave {e}");
            return false;
        }
        if support::now() - start > TIMEOUT {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = support::wait_for(pid);
            println!("test {name} ... FAILED: still running after {} s, killed", TIMEOUT.as_secs());
            return false;
        }
        support::sleep_ms(2);
    }
}

/// The modes in which tests run this program again through execve; the
/// exit code is the helper's verdict.
fn helper(args: &[String]) -> Option<u8> {
    match args.get(1).map(String::as_str) {
        // execve passed argv and envp through: `--args-and-env a b`, UTEST=1.
        Some("--args-and-env") => {
            let argv_ok = args[2..] == ["a", "b"];
            let env_ok = std::env::var("UTEST").is_ok_and(|v| v == "1");
            Some(if argv_ok && env_ok { 42 } else { 1 })
        }
        // `--cloexec-probe P Q`: P survived execve, Q (close-on-exec) did not.
        Some("--cloexec-probe") => {
            let fd = |i: usize| args.get(i).and_then(|a| a.parse::<libc::c_int>().ok()).unwrap_or(-1);
            // SAFETY: one-byte writes from a valid buffer to descriptor numbers.
            let (p, q) =
                unsafe { (libc::write(fd(2), b"p".as_ptr().cast(), 1), libc::write(fd(3), b"q".as_ptr().cast(), 1)) };
            let q_closed = q == -1 && support::errno() == libc::EBADF;
            Some(match (p == 1, q_closed) {
                (true, true) => 0,
                (false, _) => 2,
                (true, false) => 3,
            })
        }
        // `--bytes-arg`: the next argument arrived as the bytes ff 41.
        Some("--bytes-arg") => {
            use std::os::unix::ffi::OsStrExt;
            let arg = std::env::args_os().nth(2);
            Some(if arg.as_deref().map(|a| a.as_bytes()) == Some(&[0xff, b'A'][..]) { 42 } else { 1 })
        }
        // `--sleep-ms N [FD]`: writes a byte to FD (it runs), sleeps, then
        // exits 0 (a child that has exec'd).
        Some("--sleep-ms") => {
            if let Some(fd) = args.get(3).and_then(|a| a.parse::<libc::c_int>().ok()) {
                let _ = support::write_all(fd, b"x");
            }
            support::sleep_ms(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0));
            Some(0)
        }
        _ => None,
    }
}
