//! The first calls a program makes: getpid, write to the console and its
//! error paths, and ENOSYS for a number the kernel does not know.

use crate::support::*;

pub const TESTS: &[Test] = tests![
    getpid_is_stable,
    write_to_stdout,
    write_from_a_bad_pointer_is_efault,
    write_to_a_bad_fd_is_ebadf,
    unknown_syscall_is_enosys,
];

fn getpid_is_stable() -> TestResult {
    // SAFETY: getpid has no preconditions.
    let (a, b) = unsafe { (libc::getpid(), libc::getpid()) };
    check(a > 0 && a == b, || format!("getpid gave {a} then {b}"))
}

fn write_to_stdout() -> TestResult {
    let msg = b"utest: write reaches the console\n";
    // SAFETY: a valid buffer of the given length.
    let n = unsafe { libc::write(1, msg.as_ptr().cast(), msg.len()) };
    check(n == msg.len() as isize, || format!("write returned {n}"))
}

fn write_from_a_bad_pointer_is_efault() -> TestResult {
    // SAFETY: the kernel must refuse the pointer, not dereference it for us.
    let n = unsafe { libc::write(1, 0x10 as *const libc::c_void, 8) };
    check(n == -1 && errno() == libc::EFAULT, || format!("write returned {n}, errno {}", errno()))
}

fn write_to_a_bad_fd_is_ebadf() -> TestResult {
    // SAFETY: a valid buffer; the descriptor is what is wrong.
    let n = unsafe { libc::write(77, b"x".as_ptr().cast(), 1) };
    check(n == -1 && errno() == libc::EBADF, || format!("write returned {n}, errno {}", errno()))
}

fn unknown_syscall_is_enosys() -> TestResult {
    // Twice: the kernel says so on the console once per process and
    // number (the `user` scenario counts the lines).
    for _ in 0..2 {
        // SAFETY: number 499 is unassigned on x86-64; it takes no arguments.
        let r = unsafe { libc::syscall(499) };
        check(r == -1 && errno() == libc::ENOSYS, || format!("syscall 499 returned {r}, errno {}", errno()))?;
    }
    Ok(())
}
