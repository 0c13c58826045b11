//! What every test module shares: checks that name the exact errno, forked
//! children and their wait statuses, scratch files, descriptors that close
//! themselves, and signal actions.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

pub type TestResult = Result<(), String>;
/// A test's name and body; each module lists its own in `TESTS`.
pub type Test = (&'static str, fn() -> TestResult);

/// `tests![a, b]`: the listed functions, each named as written.
macro_rules! tests {
    ($($f:ident),* $(,)?) => {
        &[$((stringify!($f), $f as fn() -> $crate::support::TestResult)),*]
    };
}
pub(crate) use tests;

/// The release our kernel's uname reports, which no real Linux has.
pub const OUR_RELEASE: &str = "6.1.0-nested";
/// A descriptor number no test opens (well under RLIMIT_NOFILE).
pub const UNUSED_FD: libc::c_int = 900;

pub fn check(cond: bool, what: impl FnOnce() -> String) -> TestResult {
    if cond { Ok(()) } else { Err(what()) }
}

/// The calling thread's errno after a failed libc call.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The symbolic name of an errno value, for failure messages.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::ESPIPE => "ESPIPE",
        libc::EPIPE => "EPIPE",
        libc::ERANGE => "ERANGE",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        _ => return format!("errno {e}"),
    };
    name.into()
}

/// `r` must be -1 with errno `want`: how an error path is asserted.
pub fn fails_with(what: &str, r: i64, want: i32) -> TestResult {
    let e = errno();
    check(r == -1 && e == want, || {
        let got = if r == -1 { errno_name(e) } else { "success".into() };
        format!("{what} returned {r} ({got}), wanted -1 ({})", errno_name(want))
    })
}

/// `r` must not be -1; returns it, or an error naming the call and errno.
pub fn ok(what: &str, r: i64) -> Result<i64, String> {
    if r == -1 { Err(format!("{what} failed: {}", errno_name(errno()))) } else { Ok(r) }
}

/// `r` must be exactly `want`.
pub fn equals(what: &str, r: i64, want: i64) -> TestResult {
    let e = errno();
    check(r == want, || {
        if r == -1 {
            format!("{what} failed ({}), wanted {want}", errno_name(e))
        } else {
            format!("{what} returned {r}, wanted {want}")
        }
    })
}

/// Takes ownership of a descriptor a call returned, so it closes on drop.
pub fn own(what: &str, fd: libc::c_int) -> Result<OwnedFd, String> {
    ok(what, fd.into())?;
    // SAFETY: the call just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn cstr(s: &str) -> CString {
    CString::new(s).expect("paths in tests hold no NUL")
}

pub fn open(path: &str, flags: libc::c_int, mode: libc::mode_t) -> Result<OwnedFd, String> {
    let p = cstr(path);
    // SAFETY: a NUL-terminated path.
    own(&format!("open {path}"), unsafe { libc::open(p.as_ptr(), flags, mode) })
}

/// A fresh file `/tmp/utest/NAME` holding `contents`, open read-write at
/// offset 0 (a leftover from an earlier run is replaced).
pub fn fresh_file(name: &str, contents: &[u8]) -> Result<(String, OwnedFd), String> {
    let path = scratch(name)?;
    let fd = open(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC, 0o644)?;
    write_all(fd.as_raw_fd(), contents)?;
    // SAFETY: a descriptor this test owns.
    equals("lseek to 0", unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_SET) }, 0)?;
    Ok((path, fd))
}

/// `/tmp/utest/NAME`, with nothing there yet (a leftover file is removed).
pub fn scratch(name: &str) -> Result<String, String> {
    std::fs::create_dir_all("/tmp/utest").map_err(|e| format!("mkdir /tmp/utest: {e}"))?;
    let path = format!("/tmp/utest/{name}");
    let _ = std::fs::remove_file(&path);
    Ok(path)
}

/// The two ends of a new pipe: (read, write).
pub fn pipe2(flags: libc::c_int) -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors.
    ok("pipe2", unsafe { libc::syscall(libc::SYS_pipe2, fds.as_mut_ptr(), flags) })?;
    Ok((own("pipe2", fds[0])?, own("pipe2", fds[1])?))
}

pub fn write_all(fd: libc::c_int, mut bytes: &[u8]) -> TestResult {
    while !bytes.is_empty() {
        // SAFETY: a valid buffer of the given length.
        let n = ok("write", unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) } as i64)?;
        check(n > 0, || "write returned 0".into())?;
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Reads until `len` bytes or end of file; returns what came.
pub fn read_up_to(fd: libc::c_int, len: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        // SAFETY: the rest of `buf` is writable.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), len - got) };
        if n == -1 && errno() == libc::EINTR {
            continue;
        }
        let n = ok("read", n as i64)?;
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    buf.truncate(got);
    Ok(buf)
}

/// What `fstat` reports for `fd`.
pub fn fstat(fd: libc::c_int) -> Result<libc::stat, String> {
    // SAFETY: a zeroed stat is a valid value to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable.
    ok("fstat", unsafe { libc::fstat(fd, &mut st) }.into())?;
    Ok(st)
}

/// Forks; the child runs `f` and `_exit`s with what it returns.
pub fn fork_child(f: impl FnOnce() -> i32) -> Result<libc::pid_t, String> {
    // SAFETY: the child runs `f` and leaves by `_exit`, never returning into
    // the parent's code; this program is single-threaded.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = f();
        // SAFETY: ends the child without the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    ok("fork", pid.into())?;
    Ok(pid)
}

/// Waits for `pid` (retrying after a handler interrupts); its raw status.
pub fn wait_for(pid: libc::pid_t) -> Result<libc::c_int, String> {
    let mut status = 0;
    loop {
        // SAFETY: a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == -1 && errno() == libc::EINTR {
            continue;
        }
        equals(&format!("waitpid({pid})"), r.into(), pid.into())?;
        return Ok(status);
    }
}

/// Runs `f` in a forked child and returns its raw wait status.
pub fn in_child(f: impl FnOnce() -> i32) -> Result<libc::c_int, String> {
    wait_for(fork_child(f)?)
}

/// A wait status in words.
pub fn describe(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status:#x}")
    }
}

pub fn exited(status: libc::c_int, code: i32) -> TestResult {
    check(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == code, || {
        format!("the child {}, wanted exit {code}", describe(status))
    })
}

pub fn killed_by(status: libc::c_int, sig: libc::c_int) -> TestResult {
    check(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == sig, || {
        format!("the child {}, wanted killed by signal {sig}", describe(status))
    })
}

/// Whether this is our kernel (by its uname release), not a real Linux.
pub fn on_our_kernel() -> bool {
    // SAFETY: a zeroed utsname is a valid value to overwrite.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is writable.
    if unsafe { libc::uname(&mut u) } != 0 {
        return false;
    }
    field(&u.release) == OUR_RELEASE
}

/// A NUL-terminated `c_char` array as a string.
pub fn field(chars: &[libc::c_char]) -> String {
    chars.iter().take_while(|&&c| c != 0).map(|&c| c as u8 as char).collect()
}

/// CLOCK_MONOTONIC now.
pub fn now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is writable.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

pub fn sleep_ms(ms: u64) {
    let ts = libc::timespec { tv_sec: 0, tv_nsec: (ms * 1_000_000) as libc::c_long };
    // SAFETY: a valid timespec; the remainder is not wanted.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

/// Installs `handler` (an address, SIG_DFL or SIG_IGN) for `sig` with
/// `flags`, blocking `mask` while it runs; returns the previous action.
pub fn set_action(
    sig: libc::c_int,
    handler: usize,
    flags: libc::c_int,
    mask: &[libc::c_int],
) -> Result<libc::sigaction, String> {
    // SAFETY: zeroed sigactions are valid values; both pointers are valid.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = flags;
        libc::sigemptyset(&mut sa.sa_mask);
        for &s in mask {
            libc::sigaddset(&mut sa.sa_mask, s);
        }
        let mut old: libc::sigaction = std::mem::zeroed();
        ok(&format!("sigaction({sig})"), libc::sigaction(sig, &sa, &mut old).into())?;
        Ok(old)
    }
}

/// The signal set holding `sigs`.
pub fn sigset(sigs: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is a valid value; sigemptyset then fills it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

pub fn has(set: &libc::sigset_t, sig: libc::c_int) -> bool {
    // SAFETY: `set` is an initialised signal set.
    unsafe { libc::sigismember(set, sig) == 1 }
}

/// The path this program was started by, to exec it again as a helper.
pub fn self_path() -> String {
    std::env::args().next().filter(|a| a.contains('/')).unwrap_or_else(|| "/bin/utest".into())
}

/// Why the running test skipped its checks, when it did.
pub static SKIPPED: Mutex<Option<String>> = Mutex::new(None);

/// Passes without checking: what the test checks does not apply here.
pub fn skip(why: &str) -> TestResult {
    *SKIPPED.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.into());
    Ok(())
}
