//! `/proc`, as the RAM file system's subtree: before a call looks up an
//! absolute path under `/proc`, the subtree is rebuilt from the processes
//! and counters of that moment (`meminfo`, `uptime`, `loadavg`, `stat`,
//! `mounts`, `cpuinfo`, and `PID/` with `cmdline`, `comm`, `stat`,
//! `status`, `exe`, `cwd` and `fd/`), so the ordinary calls (open, read,
//! getdents64, stat, readlink, execve of `/proc/self/exe`) serve it.
//! `/proc/self` is the caller's `PID/`, resolved in the path itself.
//!
//! What it is not: a file's bytes are those of when it was looked up (as
//! if read at once), a relative path from a directory inside `/proc` sees
//! the tree as it was last rebuilt, and a name in `fd/` is the path a
//! file was opened by (folded, but not followed through links, and not
//! updated by a rename).

use super::{FsError, Ino, ROOT, RamFsRef};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// One process as `/proc/PID/` shows it.
struct Entry {
    pid: u64,
    ppid: u64,
    pgid: u64,
    sid: u64,
    name: String,
    state: char,
    exe: String,
    cmdline: Vec<u8>,
    cwd: Ino,
    utime: u64,
    stime: u64,
    rss_pages: u64,
    /// Open descriptors and what each names.
    fds: Vec<(usize, Vec<u8>)>,
}

/// Rewrites `/proc/self` to the caller's `/proc/PID` and rebuilds the
/// tree, if `path` is `/proc` or under it.
pub fn prepare(path: &mut Vec<u8>) {
    if !(path == b"/proc" || path.starts_with(b"/proc/")) {
        return;
    }
    for alias in [&b"/proc/self"[..], b"/proc/thread-self"] {
        if path.starts_with(alias) && matches!(path.get(alias.len()), None | Some(b'/')) {
            let me = format!("/proc/{}", crate::sched::current());
            path.splice(..alias.len(), me.bytes());
            break;
        }
    }
    let entries = snapshot();
    let mut files = counters(&entries);
    // Modules' entries are shown before the lock: their code runs.
    let extra = crate::module::proc_files();
    files.extend(extra.iter().map(|(name, text)| (name.as_str(), text.clone())));
    super::with(|fs| {
        if let Err(e) = rebuild(fs, &entries, &files) {
            // Said once: a program looping over /proc must not flood the console.
            static SAID: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, core::sync::atomic::Ordering::Relaxed) {
                crate::println!("procfs: cannot rebuild /proc: {e} (said only once)");
            }
        }
    });
}

fn snapshot() -> Vec<Entry> {
    let states = crate::sched::list();
    let mut out = Vec::new();
    crate::proc::each(|p| {
        let (name, st) =
            states.iter().find(|(id, _, _)| *id == p.pid).map(|(_, n, s)| (n.clone(), *s)).unwrap_or_default();
        let state = match (p.job.stopped.is_some(), st) {
            (true, _) => 'T',
            (false, "running" | "ready") => 'R',
            _ => 'S',
        };
        out.push(Entry {
            pid: p.pid,
            ppid: if p.parent == crate::proc::ORPHAN { 1 } else { p.parent },
            pgid: p.job.pgid,
            sid: p.job.sid,
            name,
            state,
            exe: p.exe.clone(),
            cmdline: p.cmdline.clone(),
            cwd: p.cwd,
            utime: p.cpu.user,
            stime: p.cpu.system,
            rss_pages: p.mem.resident() as u64,
            fds: p.files.names(),
        });
    });
    out
}

/// The files of `/proc` itself: (name, contents).
/// Whether a module may name a `/proc` entry `name`: not a number (a
/// process), not `self` or `thread-self`, not one of the kernel's files.
pub fn free_name(name: &str) -> bool {
    let kernel = counters(&[]);
    !name.bytes().all(|b| b.is_ascii_digit())
        && !["self", "thread-self"].contains(&name)
        && kernel.iter().all(|(n, _)| *n != name)
}

fn counters(entries: &[Entry]) -> Vec<(&'static str, String)> {
    let (free, total) = crate::mm::frames::stats();
    let kib = |frames: u64| frames * 4;
    let up = crate::time::uptime_us();
    let (mut user, mut system) = (0, 0);
    for e in entries {
        user += e.utime;
        system += e.stime;
    }
    let idle = (up / 10_000).saturating_sub(user + system);
    let mut meminfo = String::new();
    for (k, v) in [
        ("MemTotal", kib(total)),
        ("MemFree", kib(free)),
        ("MemAvailable", kib(free)),
        ("Buffers", 0),
        ("Cached", 0),
        ("SwapCached", 0),
        ("SwapTotal", 0),
        ("SwapFree", 0),
        ("Shmem", 0),
        ("SReclaimable", 0),
    ] {
        let _ = writeln!(meminfo, "{:<16}{v:>8} kB", format!("{k}:"));
    }
    let boot = (crate::time::realtime_us().saturating_sub(up)) / 1_000_000;
    let last = entries.iter().map(|e| e.pid).max().unwrap_or(0);
    alloc::vec![
        ("meminfo", meminfo),
        ("uptime", format!("{}.{:02} {}.{:02}\n", up / 1_000_000, up / 10_000 % 100, idle / 100, idle % 100)),
        ("loadavg", format!("0.00 0.00 0.00 1/{} {last}\n", entries.len())),
        (
            "stat",
            format!(
                "cpu  {user} 0 {system} {idle} 0 0 0 0 0 0\ncpu0 {user} 0 {system} {idle} 0 0 0 0 0 0\nbtime {boot}\nprocesses {last}\nprocs_running 1\nprocs_blocked 0\n"
            ),
        ),
        // The root as tmpfs, not "rootfs", which df and mount skip.
        ("mounts", String::from("tmpfs / tmpfs rw 0 0\nproc /proc proc rw 0 0\n")),
        ("filesystems", String::from("nodev\ttmpfs\nnodev\tproc\n")),
        ("modules", crate::module::proc_modules()),
        (
            "cpuinfo",
            format!(
                "processor\t: 0\nvendor_id\t: {}\nmodel name\t: {}\ncpu MHz\t\t: {}.000\n\n",
                crate::arch::cpu_vendor(),
                crate::arch::cpu_brand(),
                crate::time::tsc_per_ms() / 1000
            ),
        ),
    ]
}

/// Empties `/proc` and fills it again.
fn rebuild(fs: &mut RamFsRef, entries: &[Entry], files: &[(&str, String)]) -> Result<(), FsError> {
    let proc = match fs.lookup(ROOT, "/proc") {
        Ok(ino) => ino,
        Err(_) => fs.mkdir(ROOT, "proc", 0o555)?,
    };
    clear(fs, proc, 0)?;
    for (name, text) in files {
        file(fs, proc, name, text.as_bytes())?;
    }
    for e in entries {
        let dir = fs.mkdir(proc, format!("{}", e.pid), 0o555)?;
        file(fs, dir, "cmdline", &e.cmdline)?;
        file(fs, dir, "comm", format!("{}\n", e.name).as_bytes())?;
        // Fields 1 to 24 of Linux's stat: the ones ps and top read are real.
        let stat = format!(
            "{} ({}) {} {} {} {} 0 {} 0 0 0 0 0 {} {} 0 0 20 0 1 0 0 {} {}\n",
            e.pid,
            e.name,
            e.state,
            e.ppid,
            e.pgid,
            e.sid,
            e.pgid,
            e.utime,
            e.stime,
            e.rss_pages * 4096,
            e.rss_pages
        );
        file(fs, dir, "stat", stat.as_bytes())?;
        let status = format!(
            "Name:\t{}\nState:\t{} ({})\nTgid:\t{}\nPid:\t{}\nPPid:\t{}\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nVmRSS:\t{} kB\nThreads:\t1\n",
            e.name,
            e.state,
            match e.state {
                'R' => "running",
                'T' => "stopped",
                _ => "sleeping",
            },
            e.pid,
            e.pid,
            e.ppid,
            e.rss_pages * 4
        );
        file(fs, dir, "status", status.as_bytes())?;
        fs.symlink(dir, e.exe.as_bytes(), "exe")?;
        let cwd = fs.path_of(e.cwd).unwrap_or_else(|_| b"/".to_vec());
        fs.symlink(dir, &cwd, "cwd")?;
        let fd = fs.mkdir(dir, "fd", 0o500)?;
        for (n, name) in &e.fds {
            fs.symlink(fd, name, format!("{n}"))?;
        }
    }
    Ok(())
}

fn file(fs: &mut RamFsRef, dir: Ino, name: &str, bytes: &[u8]) -> Result<(), FsError> {
    // Read-only, as Linux's: written once here, before anyone sees it.
    let ino = fs.create(dir, name, 0o444)?;
    fs.write(ino, 0, bytes).map(|_| ())
}

/// Removes everything under `dir` (depth-bounded: /proc is two deep).
fn clear(fs: &mut RamFsRef, dir: Ino, depth: u32) -> Result<(), FsError> {
    let names: Vec<(Vec<u8>, Ino, super::Kind)> = fs
        .readdir(dir)?
        .filter(|e| e.name != b"." && e.name != b"..")
        .map(|e| (e.name.to_vec(), e.ino, e.kind))
        .collect();
    for (name, ino, kind) in names {
        if kind == super::Kind::Dir && depth < 4 {
            clear(fs, ino, depth + 1)?;
            fs.rmdir(dir, &name)?;
        } else {
            fs.unlink(dir, &name)?;
        }
    }
    Ok(())
}
