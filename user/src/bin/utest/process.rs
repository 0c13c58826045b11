//! Processes: fork, wait4 (with WNOHANG), execve and its refusals, getppid
//! (also of an orphan), and the process limit a fork bomb meets.

use crate::support::*;
use std::os::fd::AsRawFd;
use std::time::Duration;

pub const TESTS: &[Test] = tests![
    fork_and_wait_for_the_exit_status,
    fork_copies_memory,
    wait_without_children_is_echild,
    int_arguments_ignore_the_upper_half,
    wait4_with_wnohang_returns_0_while_the_child_runs,
    wait4_never_loses_an_exiting_child,
    execve_runs_another_program,
    execve_passes_argv_and_envp,
    execve_passes_bytes_that_are_not_utf8,
    execve_of_a_missing_file_is_enoent,
    execve_of_a_text_file_is_enoexec,
    execve_of_a_truncated_elf_is_enoexec,
    execve_without_exec_permission_is_eacces,
    execve_of_a_directory_is_eacces,
    execve_with_a_bad_path_pointer_is_efault,
    getppid_names_the_parent,
    an_orphan_is_adopted_by_init,
    a_fork_bomb_meets_the_process_limit,
];

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

/// Linux reads an `int` argument, and the call number, from the low half
/// of its register: glibc passes `(int)-1` with a zero upper half, and
/// busybox's `wait4(-1)` must still mean "any child".
fn int_arguments_ignore_the_upper_half() -> TestResult {
    const HIGH: libc::c_long = 0x5a5a_0000_0000;
    let child = fork_child(|| 7)?;
    let mut status = 0;
    // SAFETY: a valid status pointer; -1 as a zero-extended int, and an
    // options word whose upper half is noise (WNOHANG is not set).
    let r = unsafe { libc::syscall(libc::SYS_wait4, 0xffff_ffff_u32 as libc::c_long, &mut status, HIGH, 0) };
    equals("wait4((int)-1, options with an upper half)", r, child.into())?;
    exited(status, 7)?;
    // SAFETY: no preconditions.
    let me = unsafe { libc::getpid() };
    // SAFETY: signal 0 to ourselves only checks that we exist.
    let r = unsafe { libc::syscall(libc::SYS_kill, HIGH | libc::c_long::from(me), HIGH) };
    equals("kill(pid and signal 0 with upper halves)", r, 0)?;
    // SAFETY: getpid has no arguments; the number has an upper half.
    let r = unsafe { libc::syscall(HIGH | libc::SYS_getpid) };
    equals("system call getpid with an upper half", r, me.into())?;
    // SAFETY: (int)-1 is no call: ENOSYS, whatever the upper half says.
    let r = unsafe { libc::syscall(0x0000_0000_ffff_ffff) };
    fails_with("system call (int)-1", r, libc::ENOSYS)
}

fn wait4_with_wnohang_returns_0_while_the_child_runs() -> TestResult {
    let (r, w) = pipe2(0)?;
    let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
    let child = fork_child(|| {
        // SAFETY: the child's copy of the write end; then a blocking read.
        unsafe { libc::close(wfd) };
        if read_up_to(rfd, 1).is_ok() { 0 } else { 2 }
    })?;
    let mut status = 0;
    // SAFETY: a valid status pointer; the child is blocked in read.
    let r0 = unsafe { libc::wait4(child, &mut status, libc::WNOHANG, std::ptr::null_mut()) };
    equals("wait4 WNOHANG of a running child", r0.into(), 0)?;
    // SAFETY: as above, any child.
    let r1 = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, std::ptr::null_mut()) };
    equals("wait4(-1) WNOHANG with a running child", r1.into(), 0)?;
    drop(w);
    exited(wait_for(child)?, 0)?;
    // SAFETY: as above; no child is left.
    let r2 = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, std::ptr::null_mut()) };
    fails_with("wait4 WNOHANG with no child", r2.into(), libc::ECHILD)
}

/// Polls a child while it exits: each poll must say "running" (0) or hand
/// over the status, never ECHILD, at whatever point of its exit the child
/// is (a kernel that drops a process before it records its status has a
/// window in which the parent sees neither). One child at a time, so the
/// parent is what runs when a tick preempts the child in that window.
fn wait4_never_loses_an_exiting_child() -> TestResult {
    const ROUNDS: i32 = 100;
    for round in 0..ROUNDS {
        let pid = fork_child(|| round % 7)?;
        let mut polls = 0u64;
        loop {
            let mut status = 0;
            // SAFETY: a valid status pointer; `pid` is our child.
            let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, std::ptr::null_mut()) };
            polls += 1;
            if r == pid {
                exited(status, round % 7)?;
                break;
            }
            if r != 0 {
                let got = if r == -1 { errno_name(errno()) } else { r.to_string() };
                // Reap it before failing, so it does not outlive the test.
                let _ = wait_for(pid);
                return Err(format!(
                    "round {round}: wait4({pid}, WNOHANG) gave {got} at poll {polls}, before the child was reaped"
                ));
            }
            // SAFETY: no preconditions.
            unsafe { libc::sched_yield() };
        }
    }
    Ok(())
}

/// Runs `path` with `args` (argv[0] is the path) in a child; its status.
fn exec_in_child(path: &str, args: &[&str], env: &[&str]) -> Result<libc::c_int, String> {
    let path = cstr(path);
    let args: Vec<_> = args.iter().map(|a| cstr(a)).collect();
    let env: Vec<_> = env.iter().map(|e| cstr(e)).collect();
    in_child(|| {
        let mut argv = vec![path.as_ptr()];
        argv.extend(args.iter().map(|a| a.as_ptr()));
        argv.push(std::ptr::null());
        let mut envp: Vec<_> = env.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());
        // SAFETY: NUL-terminated strings in NULL-terminated arrays.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        99
    })
}

fn execve_runs_another_program() -> TestResult {
    let target = if on_our_kernel() { "/bin/hello".to_string() } else { self_path() };
    let status = exec_in_child(&target, &["--args-and-env", "a", "b"], &["UTEST=1"])?;
    check(!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 99), || format!("execve of {target} failed"))?;
    exited(status, if on_our_kernel() { 0 } else { 42 })
}

fn execve_passes_argv_and_envp() -> TestResult {
    let status = exec_in_child(&self_path(), &["--args-and-env", "a", "b"], &["A=x", "UTEST=1"])?;
    check(!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 1), || {
        "the new program got other arguments or environment".into()
    })?;
    exited(status, 42)
}

/// Linux passes argv as bytes: an argument need not be UTF-8.
fn execve_passes_bytes_that_are_not_utf8() -> TestResult {
    let status = in_child(|| {
        let path = cstr(&self_path());
        let odd = [0xff_u8, b'A', 0];
        let argv = [path.as_ptr(), c"--bytes-arg".as_ptr(), odd.as_ptr().cast(), std::ptr::null()];
        let envp = [std::ptr::null()];
        // SAFETY: NUL-terminated strings in NULL-terminated arrays.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        100 + errno()
    })?;
    exited(status, 42)
}

fn execve_of_a_missing_file_is_enoent() -> TestResult {
    let path = c"/bin/no-such-program";
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    // SAFETY: valid strings and arrays; the call must fail and return.
    let r = unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    check(r == -1 && errno() == libc::ENOENT, || format!("execve returned {r}, errno {}", errno()))
}

/// Calls execve on `path` here (it must fail and return).
fn exec_here(path: &str) -> i64 {
    let p = cstr(path);
    let argv = [p.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    // SAFETY: valid strings and arrays; the call must fail.
    unsafe { libc::execve(p.as_ptr(), argv.as_ptr(), envp.as_ptr()) }.into()
}

/// A file `/tmp/utest/NAME` holding `contents`, created with permission
/// bits `mode` (by open, not chmod, which the suite does not test).
fn file_with_mode(name: &str, contents: &[u8], mode: libc::mode_t) -> Result<String, String> {
    let path = scratch(name)?;
    // SAFETY: no preconditions; the usual mask, whatever the caller's was.
    unsafe { libc::umask(0o022) };
    let f = open(&path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, mode)?;
    write_all(std::os::fd::AsRawFd::as_raw_fd(&f), contents)?;
    // Closed before execve: execve of a file open for writing is ETXTBSY.
    drop(f);
    let st = std::fs::metadata(&path).map_err(|e| format!("stat {path}: {e}"))?;
    let got = std::os::unix::fs::PermissionsExt::mode(&st.permissions()) & 0o777;
    check(got == mode & 0o777, || format!("open(O_CREAT, {mode:o}) made a file of mode {got:o}"))?;
    Ok(path)
}

fn execve_of_a_text_file_is_enoexec() -> TestResult {
    let path = file_with_mode("text-exec", b"just some text, no #! line\n", 0o755)?;
    fails_with("execve of a text file", exec_here(&path), libc::ENOEXEC)
}

fn execve_of_a_truncated_elf_is_enoexec() -> TestResult {
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(24, 0);
    let path = file_with_mode("elf-stub", &elf, 0o755)?;
    fails_with("execve of a 24-byte ELF", exec_here(&path), libc::ENOEXEC)
}

fn execve_without_exec_permission_is_eacces() -> TestResult {
    let me = std::fs::read(self_path()).map_err(|e| format!("read {}: {e}", self_path()))?;
    let path = file_with_mode("no-exec", &me, 0o644)?;
    fails_with("execve of a mode 0644 program", exec_here(&path), libc::EACCES)
}

fn execve_of_a_directory_is_eacces() -> TestResult {
    scratch("x")?;
    fails_with("execve of /tmp/utest", exec_here("/tmp/utest"), libc::EACCES)
}

fn execve_with_a_bad_path_pointer_is_efault() -> TestResult {
    let argv: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: the kernel must refuse the path pointer and return.
    let r = unsafe { libc::syscall(libc::SYS_execve, 0x10usize, argv.as_ptr(), argv.as_ptr()) };
    fails_with("execve of path 0x10", r, libc::EFAULT)
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

fn an_orphan_is_adopted_by_init() -> TestResult {
    let (r, w) = pipe2(0)?;
    let wfd = w.as_raw_fd();
    // The middle process forks the grandchild and exits at once.
    let middle = fork_child(|| {
        // SAFETY: no preconditions.
        let me = unsafe { libc::getpid() };
        let grandchild = fork_child(|| {
            // Waits (bounded) for the parent to die, then reports who
            // adopted it; exit cleans up after itself.
            let start = now();
            // SAFETY: no preconditions.
            while unsafe { libc::getppid() } == me && now() - start < Duration::from_secs(5) {
                sleep_ms(1);
            }
            // SAFETY: as above.
            let ppid = unsafe { libc::getppid() };
            if write_all(wfd, &ppid.to_ne_bytes()).is_ok() { 0 } else { 1 }
        });
        if grandchild.is_ok() { 0 } else { 2 }
    })?;
    drop(w);
    exited(wait_for(middle)?, 0)?;
    let got = read_up_to(r.as_raw_fd(), 4)?;
    check(got.len() == 4, || "the orphan never reported its parent".into())?;
    let ppid = i32::from_ne_bytes(got.try_into().unwrap_or_default());
    check(ppid == 1, || format!("the orphan's getppid is {ppid}, wanted 1 (init)"))
}

/// Where this test gives up on host Linux, whose limit (for root) is far
/// above it; our kernel must refuse sooner.
const FORK_BOUND: usize = 1000;

fn a_fork_bomb_meets_the_process_limit() -> TestResult {
    let (r, w) = pipe2(0)?;
    let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
    let mut children = Vec::new();
    let mut refused = None;
    while children.len() < FORK_BOUND {
        // SAFETY: the child only closes, reads and calls _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: its copy of the write end, so the parent's close ends
            // the read; no Rust code runs after the fork in the child.
            unsafe {
                libc::close(wfd);
                libc::read(rfd, [0u8; 1].as_mut_ptr().cast(), 1);
                libc::_exit(0);
            }
        }
        if pid < 0 {
            refused = Some(errno());
            break;
        }
        children.push(pid);
    }
    // Release and reap every child whatever happened.
    drop(w);
    let mut reaped = 0;
    for &pid in &children {
        if wait_for(pid).is_ok_and(|s| libc::WIFEXITED(s)) {
            reaped += 1;
        }
    }
    let n = children.len();
    check(reaped == n, || format!("{reaped} of {n} children exited normally"))?;
    match refused {
        Some(e) => check(e == libc::EAGAIN, || format!("fork {} failed with {}, wanted EAGAIN", n + 1, errno_name(e)))?,
        None if on_our_kernel() => return Err(format!("{n} forks succeeded: no process limit")),
        None => return skip(&format!("host Linux: no limit met within {FORK_BOUND} processes")),
    }
    // The limit counts live processes: with them reaped, fork works again.
    exited(in_child(|| 0)?, 0).map_err(|e| format!("after reaping {n} children: {e}"))
}
