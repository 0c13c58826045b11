//! Names and inodes: rename, hard and symbolic links, chmod, chown,
//! timestamps, statx, and the devices of /dev.

use crate::support::*;
use std::os::fd::AsRawFd;

pub const TESTS: &[Test] = tests![
    rename_moves_and_replaces,
    rename_follows_linuxs_rules,
    hard_links_share_an_inode,
    symlinks_are_followed_and_read,
    a_symlink_loop_is_eloop,
    chmod_changes_the_mode_bits,
    chown_to_root_is_accepted,
    writes_move_the_timestamps_and_utimensat_sets_them,
    statx_agrees_with_stat,
    dev_null_zero_full_and_urandom,
];

fn c(s: &str) -> std::ffi::CString {
    cstr(s)
}

fn lstat(path: &str) -> Result<libc::stat, String> {
    // SAFETY: a zeroed stat is a valid value to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a writable stat.
    ok(&format!("lstat {path}"), unsafe { libc::lstat(c(path).as_ptr(), &mut st) }.into())?;
    Ok(st)
}

fn stat(path: &str) -> Result<libc::stat, String> {
    // SAFETY: as above.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    ok(&format!("stat {path}"), unsafe { libc::stat(c(path).as_ptr(), &mut st) }.into())?;
    Ok(st)
}

fn rename(a: &str, b: &str) -> i64 {
    // SAFETY: NUL-terminated paths.
    unsafe { libc::rename(c(a).as_ptr(), c(b).as_ptr()) }.into()
}

fn rename_moves_and_replaces() -> TestResult {
    let (a, _fa) = fresh_file("rename-a", b"first")?;
    let (b, _fb) = fresh_file("rename-b", b"second")?;
    let ino = stat(&a)?.st_ino;
    equals("rename a onto b", rename(&a, &b), 0)?;
    check(stat(&b)?.st_ino == ino, || "b is not a's inode after the rename".into())?;
    fails_with("stat of the old name", stat(&a).map(|_| 0).unwrap_or(-1), libc::ENOENT)?;
    let back = std::fs::read(&b).map_err(|e| e.to_string())?;
    check(back == b"first", || format!("b holds {back:?}"))
}

fn rename_follows_linuxs_rules() -> TestResult {
    let dir = scratch("rename-dir")?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(format!("{dir}/sub/inner")).map_err(|e| e.to_string())?;
    let (file, _f) = fresh_file("rename-file", b"x")?;
    fails_with("a directory into itself", rename(&dir, &format!("{dir}/sub/moved")), libc::EINVAL)?;
    fails_with("a directory onto a file", rename(&format!("{dir}/sub"), &file), libc::ENOTDIR)?;
    fails_with("a file onto a directory", rename(&file, &format!("{dir}/sub")), libc::EISDIR)?;
    std::fs::create_dir(format!("{dir}/other")).map_err(|e| e.to_string())?;
    fails_with("onto a non-empty directory", rename(&format!("{dir}/other"), &format!("{dir}/sub")), libc::ENOTEMPTY)?;
    equals("onto an empty directory", rename(&format!("{dir}/sub"), &format!("{dir}/other")), 0)?;
    check(stat(&format!("{dir}/other/inner")).is_ok(), || "the moved directory lost its entry".into())?;
    fails_with("a missing file", rename(&format!("{dir}/nothing"), &format!("{dir}/x")), libc::ENOENT)?;
    // SAFETY: NUL-terminated paths; RENAME_NOREPLACE onto an existing name.
    let r = unsafe {
        libc::syscall(libc::SYS_renameat2, libc::AT_FDCWD, c(&file).as_ptr(), libc::AT_FDCWD, c(&dir).as_ptr(), 1)
    };
    fails_with("renameat2 RENAME_NOREPLACE", r, libc::EEXIST)
}

fn hard_links_share_an_inode() -> TestResult {
    let (a, _fa) = fresh_file("link-a", b"shared")?;
    let b = scratch("link-b")?;
    let _ = std::fs::remove_file(&b);
    // SAFETY: NUL-terminated paths.
    equals("link", unsafe { libc::link(c(&a).as_ptr(), c(&b).as_ptr()) }.into(), 0)?;
    let (sa, sb) = (stat(&a)?, stat(&b)?);
    check(sa.st_ino == sb.st_ino && sa.st_nlink == 2, || {
        format!("inodes {} {}, nlink {}", sa.st_ino, sb.st_ino, sa.st_nlink)
    })?;
    std::fs::remove_file(&a).map_err(|e| e.to_string())?;
    check(stat(&b)?.st_nlink == 1, || "nlink after unlinking one name".into())?;
    let back = std::fs::read(&b).map_err(|e| e.to_string())?;
    check(back == b"shared", || format!("the other name holds {back:?}"))?;
    let dir = scratch("link-dir")?;
    let _ = std::fs::create_dir(&dir);
    // SAFETY: as above; a directory cannot be linked.
    let r = unsafe { libc::link(c(&dir).as_ptr(), c(&format!("{dir}-2")).as_ptr()) };
    fails_with("link of a directory", r.into(), libc::EPERM)
}

fn symlinks_are_followed_and_read() -> TestResult {
    let (target, _f) = fresh_file("symlink-target", b"through the link")?;
    let link = scratch("symlink-link")?;
    let _ = std::fs::remove_file(&link);
    // SAFETY: NUL-terminated paths.
    equals("symlink", unsafe { libc::symlink(c(&target).as_ptr(), c(&link).as_ptr()) }.into(), 0)?;
    let back = std::fs::read(&link).map_err(|e| e.to_string())?;
    check(back == b"through the link", || format!("read through the link: {back:?}"))?;
    let l = lstat(&link)?;
    check(l.st_mode & libc::S_IFMT == libc::S_IFLNK && l.st_size as usize == target.len(), || {
        format!("lstat mode {:o} size {}", l.st_mode, l.st_size)
    })?;
    let mut buf = [0u8; 256];
    // SAFETY: a writable buffer of its length.
    let n = unsafe { libc::readlink(c(&link).as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    check(n as usize == target.len() && &buf[..n as usize] == target.as_bytes(), || format!("readlink gave {n}"))?;
    // SAFETY: as above, but cut to 3 bytes, no NUL.
    let n = unsafe { libc::readlink(c(&link).as_ptr(), buf.as_mut_ptr().cast(), 3) };
    equals("readlink into 3 bytes", n as i64, 3)?;
    // SAFETY: readlink of a regular file.
    let r = unsafe { libc::readlink(c(&target).as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    fails_with("readlink of a file", r as i64, libc::EINVAL)?;
    // SAFETY: O_NOFOLLOW on a link.
    let r = unsafe { libc::open(c(&link).as_ptr(), libc::O_RDONLY | libc::O_NOFOLLOW) };
    fails_with("open O_NOFOLLOW of a link", r.into(), libc::ELOOP)?;
    std::fs::remove_file(&link).map_err(|e| e.to_string())?;
    check(stat(&target).is_ok(), || "unlinking the link removed its target".into())
}

fn a_symlink_loop_is_eloop() -> TestResult {
    let (a, b) = (scratch("loop-a")?, scratch("loop-b")?);
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    // SAFETY: NUL-terminated paths.
    unsafe {
        ok("symlink a->b", libc::symlink(c(&b).as_ptr(), c(&a).as_ptr()).into())?;
        ok("symlink b->a", libc::symlink(c(&a).as_ptr(), c(&b).as_ptr()).into())?;
    }
    fails_with("stat through a loop", stat(&a).map(|_| 0).unwrap_or(-1), libc::ELOOP)
}

fn chmod_changes_the_mode_bits() -> TestResult {
    let (path, f) = fresh_file("chmod-file", b"")?;
    // SAFETY: a NUL-terminated path.
    equals("chmod 0604", unsafe { libc::chmod(c(&path).as_ptr(), 0o604) }.into(), 0)?;
    check(stat(&path)?.st_mode & 0o7777 == 0o604, || {
        format!("mode {:o}", stat(&path).map(|s| s.st_mode).unwrap_or(0))
    })?;
    // SAFETY: an open descriptor.
    equals("fchmod 0750", unsafe { libc::fchmod(f.as_raw_fd(), 0o750) }.into(), 0)?;
    let st = fstat(f.as_raw_fd())?;
    check(st.st_mode & 0o7777 == 0o750 && st.st_mode & libc::S_IFMT == libc::S_IFREG, || {
        format!("mode {:o}", st.st_mode)
    })
}

fn chown_to_root_is_accepted() -> TestResult {
    let (path, _f) = fresh_file("chown-file", b"")?;
    // SAFETY: a NUL-terminated path; root to root, and -1 for "unchanged".
    unsafe {
        equals("chown 0 0", libc::chown(c(&path).as_ptr(), 0, 0).into(), 0)?;
        equals("chown -1 -1", libc::chown(c(&path).as_ptr(), u32::MAX, u32::MAX).into(), 0)?;
        fails_with("chown of a missing file", libc::chown(c("/no/such/file").as_ptr(), 0, 0).into(), libc::ENOENT)
    }
}

fn writes_move_the_timestamps_and_utimensat_sets_them() -> TestResult {
    let (path, f) = fresh_file("times-file", b"")?;
    let before = fstat(f.as_raw_fd())?;
    check(before.st_mtime > 1_577_836_800, || format!("a new file's mtime is {}", before.st_mtime))?;
    let times = [libc::timespec { tv_sec: 1000, tv_nsec: 5 }, libc::timespec { tv_sec: 2000, tv_nsec: 7 }];
    // SAFETY: a NUL-terminated path and two timespecs.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c(&path).as_ptr(), times.as_ptr(), 0) };
    equals("utimensat", r.into(), 0)?;
    let st = stat(&path)?;
    check(st.st_atime == 1000 && st.st_atime_nsec == 5 && st.st_mtime == 2000 && st.st_mtime_nsec == 7, || {
        format!("atime {}.{} mtime {}.{}", st.st_atime, st.st_atime_nsec, st.st_mtime, st.st_mtime_nsec)
    })?;
    write_all(f.as_raw_fd(), b"x")?;
    let after = fstat(f.as_raw_fd())?;
    check(after.st_mtime > 2000 && after.st_atime == 1000, || format!("after a write: mtime {}", after.st_mtime))?;
    let bad = [libc::timespec { tv_sec: 0, tv_nsec: 1_000_000_000 }, times[1]];
    // SAFETY: as above; the kernel must refuse the time.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c(&path).as_ptr(), bad.as_ptr(), 0) };
    fails_with("utimensat tv_nsec of a second", r.into(), libc::EINVAL)
}

fn statx_agrees_with_stat() -> TestResult {
    let (path, _f) = fresh_file("statx-file", b"twelve bytes")?;
    let st = stat(&path)?;
    // SAFETY: a zeroed statx is a valid value to overwrite.
    let mut x: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a writable statx.
    let r = unsafe { libc::statx(libc::AT_FDCWD, c(&path).as_ptr(), 0, libc::STATX_BASIC_STATS, &mut x) };
    equals("statx", r.into(), 0)?;
    check(
        x.stx_ino == st.st_ino
            && x.stx_size == 12
            && u32::from(x.stx_mode) == st.st_mode
            && x.stx_mtime.tv_sec == st.st_mtime
            && x.stx_mask & libc::STATX_BASIC_STATS == libc::STATX_BASIC_STATS,
        || format!("statx ino {} size {} mode {:o} mask {:#x}", x.stx_ino, x.stx_size, x.stx_mode, x.stx_mask),
    )?;
    // SAFETY: as above; a reserved mask bit is refused.
    let r = unsafe { libc::statx(libc::AT_FDCWD, c(&path).as_ptr(), 0, 0x8000_0000, &mut x) };
    fails_with("statx with STATX__RESERVED", r.into(), libc::EINVAL)
}

fn dev_null_zero_full_and_urandom() -> TestResult {
    let null = open("/dev/null", libc::O_RDWR, 0)?;
    write_all(null.as_raw_fd(), b"gone")?;
    check(read_up_to(null.as_raw_fd(), 10)?.is_empty(), || "/dev/null gave bytes".into())?;
    let zero = open("/dev/zero", libc::O_RDONLY, 0)?;
    let z = read_up_to(zero.as_raw_fd(), 1000)?;
    check(z.len() == 1000 && z.iter().all(|&b| b == 0), || format!("/dev/zero gave {} bytes", z.len()))?;
    let full = open("/dev/full", libc::O_WRONLY, 0)?;
    // SAFETY: a one-byte buffer.
    let r = unsafe { libc::write(full.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    fails_with("write to /dev/full", r as i64, libc::ENOSPC)?;
    let random = open("/dev/urandom", libc::O_RDONLY, 0)?;
    let (a, b) = (read_up_to(random.as_raw_fd(), 32)?, read_up_to(random.as_raw_fd(), 32)?);
    check(a.len() == 32 && a != b, || "two reads of /dev/urandom agree".into())?;
    let st = stat("/dev/null")?;
    check(st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3), || {
        format!("/dev/null: mode {:o}, rdev {:#x}", st.st_mode, st.st_rdev)
    })?;
    // /dev/tty is the terminal: a tty, and writable.
    match open("/dev/tty", libc::O_WRONLY, 0) {
        // SAFETY: an open descriptor.
        Ok(tty) => check(unsafe { libc::isatty(tty.as_raw_fd()) } == 1, || "/dev/tty is no tty".into()),
        // No controlling terminal (a host's test runner): nothing to check.
        Err(_) if !on_our_kernel() => skip("no controlling terminal on this host"),
        Err(e) => Err(e),
    }
}
