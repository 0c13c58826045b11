//! The ELF loader against crafted files: each malformed executable the
//! issue lists gets Linux's errno from `execve` (or, where Linux only fails
//! after the point of no return, a clean refusal here and a dead process
//! there), and random mutations of a valid file never take the kernel
//! down. The files are made at run time (`crafted.rs`).

use crate::crafted::{self, OnLinux};
use crate::support::*;

pub const TESTS: &[Test] = tests![
    execve_runs_a_minimal_crafted_elf,
    execve_refuses_each_crafted_elf_with_linux_errno,
    execve_survives_mutated_elf_headers,
    execve_limits_arguments_as_linux,
];

/// Writes `bytes` to `/tmp/utest/NAME`, made executable (mode 0755 at
/// creation: there is no chmod here yet).
fn executable(name: &str, bytes: &[u8]) -> Result<String, String> {
    let path = scratch(name)?;
    let fd = open(&path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o755)?;
    write_all(std::os::fd::AsRawFd::as_raw_fd(&fd), bytes)?;
    drop(fd);
    Ok(path)
}

/// Runs `path` in a child; a failed execve exits with 100 + errno. Killed
/// after two seconds (a mutated header may make anything run).
fn exec_status(path: &str) -> Result<libc::c_int, String> {
    exec_with(path, &[])
}

/// `exec_status` with `args` after argv[0].
fn exec_with(path: &str, args: &[std::ffi::CString]) -> Result<libc::c_int, String> {
    let c = cstr(path);
    let pid = fork_child(|| {
        let mut argv = vec![c.as_ptr()];
        argv.extend(args.iter().map(|a| a.as_ptr()));
        argv.push(std::ptr::null());
        let envp = [std::ptr::null()];
        // SAFETY: NULL-terminated argv and envp of valid strings.
        unsafe { libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        100 + errno()
    })?;
    let start = now();
    loop {
        let mut status = 0;
        // SAFETY: a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Ok(status);
        }
        if now() - start > std::time::Duration::from_secs(2) {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return wait_for(pid);
        }
        sleep_ms(1);
    }
}

fn execve_runs_a_minimal_crafted_elf() -> TestResult {
    let path = executable("tiny-elf", &crafted::tiny())?;
    exited(exec_status(&path)?, 7)
}

fn execve_refuses_each_crafted_elf_with_linux_errno() -> TestResult {
    let ours = on_our_kernel();
    for (name, bytes, linux) in crafted::hostile_files() {
        let path = executable(name, &bytes)?;
        let status = exec_status(&path)?;
        let refused = |e: i32| libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 100 + e;
        let good = match linux {
            OnLinux::Refused(e) => refused(e),
            OnLinux::LateFailure(e) if ours => refused(e),
            // Past the point of no return Linux kills the process; a huge
            // bss may even be granted (overcommit) and the program run.
            OnLinux::LateFailure(_) => libc::WIFSIGNALED(status) || refused(libc::ENOMEM) || exited(status, 7).is_ok(),
        };
        check(good, || format!("{name}: the child {}, wanted {linux:?}", describe(status)))?;
    }
    Ok(())
}

fn execve_survives_mutated_elf_headers() -> TestResult {
    // A fixed seed: a failure here replays exactly.
    let mut rng = crafted::Rng(0x5eed_e1f0_0d15_ea5e);
    let path = scratch("mutated-elf")?;
    for round in 0..48 {
        let bytes = crafted::mutated(&mut rng);
        let path = executable("mutated-elf", &bytes).map_err(|e| format!("round {round}: {e}"))?;
        let status = exec_status(&path)?;
        // Any verdict is fine (a refusal, an exit, a signal): the kernel
        // lived to give it. A stop or continue status would be a bug.
        check(libc::WIFEXITED(status) || libc::WIFSIGNALED(status), || {
            format!("round {round}: the child {}", describe(status))
        })?;
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Linux's `MAX_ARG_STRLEN` (32 pages with the NUL), `ARG_MAX` (a quarter
/// of the default 8 MiB stack) and `PATH_MAX`.
fn execve_limits_arguments_as_linux() -> TestResult {
    let path = executable("tiny-elf-args", &crafted::tiny())?;
    let arg = |n: usize| cstr(&"a".repeat(n));
    let longest = 32 * 4096 - 1;
    exited(exec_with(&path, &[arg(longest)])?, 7).map_err(|e| format!("an argument of {longest} bytes: {e}"))?;
    exited(exec_with(&path, &[arg(longest + 1)])?, 100 + libc::E2BIG)
        .map_err(|e| format!("an argument of {} bytes: {e}", longest + 1))?;
    let many: Vec<_> = (0..20).map(|_| arg(120_000)).collect();
    exited(exec_with(&path, &many)?, 100 + libc::E2BIG).map_err(|e| format!("20 arguments of 120000 bytes: {e}"))?;
    let long_path = format!("/{}", "p".repeat(4095));
    exited(exec_status(&long_path)?, 100 + libc::ENAMETOOLONG).map_err(|e| format!("a path of 4096 bytes: {e}"))
}
