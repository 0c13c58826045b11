//! `/proc` as programs read it: the calling process's own entries, the
//! memory and time counters, and a listing with every live process.

use crate::support::*;

pub const TESTS: &[Test] =
    tests![proc_self_names_the_caller, proc_meminfo_and_uptime_parse, proc_lists_a_child_while_it_lives,];

fn read_text(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

fn proc_self_names_the_caller() -> TestResult {
    // SAFETY: no preconditions.
    let me = unsafe { libc::getpid() };
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| format!("readlink /proc/self/exe: {e}"))?;
    let ours = std::fs::canonicalize(self_path()).map_err(|e| format!("canonicalize {}: {e}", self_path()))?;
    check(exe == ours, || format!("/proc/self/exe is {exe:?}, this program is {ours:?}"))?;
    let stat = read_text("/proc/self/stat")?;
    check(stat.starts_with(&format!("{me} (")), || {
        format!("/proc/self/stat begins {:?}", &stat[..stat.len().min(40)])
    })?;
    let cmdline = std::fs::read("/proc/self/cmdline").map_err(|e| e.to_string())?;
    let argv0 = std::env::args().next().unwrap_or_default();
    check(cmdline.starts_with(argv0.as_bytes()) && cmdline.ends_with(&[0]), || format!("cmdline {cmdline:?}"))?;
    let status = read_text(&format!("/proc/{me}/status"))?;
    check(status.lines().any(|l| l == format!("Pid:\t{me}")), || "no Pid line in status".into())
}

fn proc_meminfo_and_uptime_parse() -> TestResult {
    let meminfo = read_text("/proc/meminfo")?;
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let (total, free) = (field("MemTotal:"), field("MemFree:"));
    check(matches!((total, free), (Some(t), Some(f)) if t > 0 && f <= t), || {
        format!("MemTotal {total:?}, MemFree {free:?}")
    })?;
    let uptime = read_text("/proc/uptime")?;
    let up: Option<f64> = uptime.split_whitespace().next().and_then(|s| s.parse().ok());
    check(up.is_some_and(|u| u > 0.0), || format!("/proc/uptime is {uptime:?}"))
}

fn proc_lists_a_child_while_it_lives() -> TestResult {
    use std::os::fd::AsRawFd;
    let (r, w) = pipe2(0)?;
    let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
    let child = fork_child(|| {
        // SAFETY: the child's copy of the write end.
        unsafe { libc::close(wfd) };
        let _ = read_up_to(rfd, 1);
        0
    })?;
    let listed = |pid: libc::pid_t| -> Result<bool, String> {
        let dir = std::fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))?;
        Ok(dir.flatten().any(|e| e.file_name().to_str() == Some(&pid.to_string())))
    };
    check(listed(child)?, || format!("/proc does not list the child {child}"))?;
    let stat = read_text(&format!("/proc/{child}/stat"))?;
    // SAFETY: no preconditions.
    let me = unsafe { libc::getpid() };
    let ppid: Option<i32> =
        stat.rsplit(") ").next().and_then(|rest| rest.split(' ').nth(1)).and_then(|p| p.parse().ok());
    check(ppid == Some(me), || format!("the child's stat gives ppid {ppid:?}, wanted {me}"))?;
    drop(w);
    exited(wait_for(child)?, 0)?;
    check(!listed(child)?, || format!("/proc still lists {child} once reaped"))
}
