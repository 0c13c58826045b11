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
    let c = cstr(path);
    let pid = fork_child(|| {
        let argv = [c.as_ptr(), std::ptr::null()];
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
