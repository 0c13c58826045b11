//! The user-space test suite: each test makes system calls the way a
//! program would and checks what the kernel answers, error paths included.
//! Prints `test NAME ... ok|FAILED` and ends with `utest: N passed, M failed`;
//! exits 0 only when every test passed.
#![allow(unsafe_code)] // raw system calls are the thing under test

use std::process::ExitCode;

type TestResult = Result<(), String>;

fn check(cond: bool, what: impl FnOnce() -> String) -> TestResult {
    if cond { Ok(()) } else { Err(what()) }
}

/// The calling thread's errno after a failed libc call.
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

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
    // SAFETY: number 499 is unassigned on x86-64; it takes no arguments.
    let r = unsafe { libc::syscall(499) };
    check(r == -1 && errno() == libc::ENOSYS, || format!("syscall 499 returned {r}, errno {}", errno()))
}

fn brk_grows_the_heap() -> TestResult {
    // SAFETY: brk(0) only reports the break; the second call asks for 64
    // KiB more, which this test then writes and reads.
    unsafe {
        let start = libc::syscall(libc::SYS_brk, 0) as u64;
        let end = libc::syscall(libc::SYS_brk, start + 65536) as u64;
        check(end == start + 65536, || format!("brk from {start:#x} to {end:#x}"))?;
        let p = (start + 65000) as *mut u8;
        p.write_volatile(0x5a);
        check(p.read_volatile() == 0x5a, || "new heap memory did not keep a byte".into())
    }
}

fn anonymous_mmap_is_zeroed_and_writable() -> TestResult {
    let len = 3 * 4096;
    // SAFETY: an anonymous private mapping, used only within its length
    // and unmapped at the end.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        check(p != libc::MAP_FAILED, || format!("mmap failed, errno {}", errno()))?;
        let bytes = std::slice::from_raw_parts_mut(p.cast::<u8>(), len);
        check(bytes.iter().all(|&b| b == 0), || "fresh anonymous memory is not zero".into())?;
        bytes[len - 1] = 7;
        check(libc::munmap(p, len) == 0, || format!("munmap failed, errno {}", errno()))
    }
}

fn writable_and_executable_mmap_is_refused() -> TestResult {
    // SAFETY: asks for a mapping the kernel must refuse (W^X); nothing is used.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    check(p == libc::MAP_FAILED, || "a writable and executable mapping was granted".into())
}

fn fork_and_wait_for_the_exit_status() -> TestResult {
    // SAFETY: the child only calls _exit; the parent waits for it.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(7);
        }
        check(pid > 0, || format!("fork returned {pid}, errno {}", errno()))?;
        let mut status = 0;
        let got = libc::waitpid(pid, &mut status, 0);
        check(got == pid, || format!("waitpid returned {got}, wanted {pid}"))?;
        check(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7, || format!("status {status:#x}"))
    }
}

fn fork_copies_memory() -> TestResult {
    let mut value = 1u64;
    // SAFETY: the child writes its own copy of `value` and exits; the parent
    // waits, then reads its own copy.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            std::ptr::write_volatile(&mut value, 2);
            libc::_exit(if std::ptr::read_volatile(&value) == 2 { 0 } else { 1 });
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        check(libc::WEXITSTATUS(status) == 0, || "the child did not see its own write".into())?;
        check(std::ptr::read_volatile(&value) == 1, || "the child's write reached the parent".into())
    }
}

fn wait_without_children_is_echild() -> TestResult {
    let mut status = 0;
    // SAFETY: a valid status pointer.
    let r = unsafe { libc::waitpid(-1, &mut status, 0) };
    check(r == -1 && errno() == libc::ECHILD, || format!("waitpid returned {r}, errno {}", errno()))
}

fn execve_runs_another_program() -> TestResult {
    // SAFETY: the child replaces itself with /bin/hello (or exits 99 if it
    // cannot); the strings are NUL-terminated and the arrays NULL-terminated.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            let path = c"/bin/hello";
            let argv = [path.as_ptr(), std::ptr::null()];
            let envp = [c"UTEST=1".as_ptr(), std::ptr::null()];
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(99);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        check(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, || format!("status {status:#x}"))
    }
}

fn execve_of_a_missing_file_is_enoent() -> TestResult {
    let path = c"/bin/no-such-program";
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    // SAFETY: valid strings and arrays; the call must fail and return.
    let r = unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    check(r == -1 && errno() == libc::ENOENT, || format!("execve returned {r}, errno {}", errno()))
}

fn getppid_names_the_parent() -> TestResult {
    // SAFETY: the child compares its parent with the pid the parent saw
    // before forking, and exits with the verdict.
    unsafe {
        let me = libc::getpid();
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(if libc::getppid() == me { 0 } else { 1 });
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        check(libc::WEXITSTATUS(status) == 0, || "the child's getppid is not its parent".into())
    }
}

fn files_round_trip() -> TestResult {
    let e = |what: &str, err: std::io::Error| format!("{what}: {err}");
    std::fs::create_dir_all("/tmp/utest").map_err(|err| e("create_dir_all", err))?;
    std::fs::write("/tmp/utest/a", b"nested kernel").map_err(|err| e("write", err))?;
    let back = std::fs::read("/tmp/utest/a").map_err(|err| e("read", err))?;
    check(back == b"nested kernel", || format!("read back {back:?}"))?;
    let len = std::fs::metadata("/tmp/utest/a").map_err(|err| e("metadata", err))?.len();
    check(len == 13, || format!("size {len}"))?;
    std::fs::remove_file("/tmp/utest/a").map_err(|err| e("remove_file", err))?;
    let gone = std::fs::read("/tmp/utest/a");
    check(gone.as_ref().is_err_and(|err| err.kind() == std::io::ErrorKind::NotFound), || format!("{gone:?}"))
}

fn read_dir_lists_bin() -> TestResult {
    let names: Vec<String> = std::fs::read_dir("/bin")
        .map_err(|err| format!("read_dir: {err}"))?
        .filter_map(|entry| entry.ok().map(|entry| entry.file_name().to_string_lossy().into_owned()))
        .collect();
    check(names.iter().any(|n| n == "hello") && names.iter().any(|n| n == "utest"), || format!("/bin holds {names:?}"))
}

fn opening_a_missing_file_is_enoent() -> TestResult {
    // SAFETY: a NUL-terminated path; the call must fail.
    let fd = unsafe { libc::open(c"/no/such/file".as_ptr(), libc::O_RDONLY) };
    check(fd == -1 && errno() == libc::ENOENT, || format!("open returned {fd}, errno {}", errno()))
}

fn main() -> ExitCode {
    let tests: &[(&str, fn() -> TestResult)] = &[
        ("getpid_is_stable", getpid_is_stable),
        ("write_to_stdout", write_to_stdout),
        ("write_from_a_bad_pointer_is_efault", write_from_a_bad_pointer_is_efault),
        ("write_to_a_bad_fd_is_ebadf", write_to_a_bad_fd_is_ebadf),
        ("unknown_syscall_is_enosys", unknown_syscall_is_enosys),
        ("brk_grows_the_heap", brk_grows_the_heap),
        ("anonymous_mmap_is_zeroed_and_writable", anonymous_mmap_is_zeroed_and_writable),
        ("writable_and_executable_mmap_is_refused", writable_and_executable_mmap_is_refused),
        ("fork_and_wait_for_the_exit_status", fork_and_wait_for_the_exit_status),
        ("fork_copies_memory", fork_copies_memory),
        ("wait_without_children_is_echild", wait_without_children_is_echild),
        ("execve_runs_another_program", execve_runs_another_program),
        ("execve_of_a_missing_file_is_enoent", execve_of_a_missing_file_is_enoent),
        ("getppid_names_the_parent", getppid_names_the_parent),
        ("files_round_trip", files_round_trip),
        ("read_dir_lists_bin", read_dir_lists_bin),
        ("opening_a_missing_file_is_enoent", opening_a_missing_file_is_enoent),
    ];
    let filter = std::env::args().nth(1).unwrap_or_default();
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests.iter().filter(|(n, _)| n.contains(filter.as_str())) {
        match test() {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(why) => {
                println!("test {name} ... FAILED: {why}");
                failed += 1;
            }
        }
    }
    println!("utest: {passed} passed, {failed} failed");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
