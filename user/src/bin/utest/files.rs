//! Descriptors and the file system: open/read/write, dup2 and dup3, lseek,
//! pread/pwrite, O_APPEND, ftruncate, fstat, directories, getdents64 and
//! the working directory.

use crate::support::*;
use std::os::fd::{AsRawFd, IntoRawFd};

pub const TESTS: &[Test] = tests![
    files_round_trip,
    read_dir_lists_the_programs_directory,
    opening_a_missing_file_is_enoent,
    dup2_onto_an_open_fd_closes_it,
    dup3_sets_close_on_exec_and_refuses_the_same_fd,
    lseek_moves_the_offset_and_refuses_a_negative_one,
    lseek_on_a_pipe_is_espipe,
    a_write_past_the_end_leaves_zeros,
    working_directory_round_trip,
    getcwd_with_a_small_buffer_is_erange,
    fstat_reports_size_and_type,
    read_dir_lists_a_directory_made_here,
    getdents64_lists_dot_and_dotdot_with_types,
    o_append_writes_at_the_end,
    ftruncate_shrinks_and_grows,
    pread_and_pwrite_leave_the_offset_alone,
];

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

/// The directory this program was started from lists it (on our kernel,
/// /bin, which also holds hello).
fn read_dir_lists_the_programs_directory() -> TestResult {
    let me = self_path();
    let (dir, file) = me.rsplit_once('/').unwrap_or(("/bin", "utest"));
    let dir = if dir.is_empty() { "/" } else { dir };
    let names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|err| format!("read_dir {dir}: {err}"))?
        .filter_map(|entry| entry.ok().map(|entry| entry.file_name().to_string_lossy().into_owned()))
        .collect();
    check(names.iter().any(|n| n == file), || format!("{dir} holds {names:?}, not {file}"))?;
    if on_our_kernel() {
        check(names.iter().any(|n| n == "hello"), || format!("{dir} holds {names:?}, not hello"))?;
    }
    Ok(())
}

fn opening_a_missing_file_is_enoent() -> TestResult {
    // SAFETY: a NUL-terminated path; the call must fail.
    let fd = unsafe { libc::open(c"/no/such/file".as_ptr(), libc::O_RDONLY) };
    fails_with("open /no/such/file", fd.into(), libc::ENOENT)
}

fn dup2_onto_an_open_fd_closes_it() -> TestResult {
    let (_, a) = fresh_file("dup2-a", b"")?;
    let (b_path, b) = fresh_file("dup2-b", b"")?;
    let a = a.as_raw_fd();
    // Ours to close now: dup2 replaces what it names.
    let b = b.into_raw_fd();
    // SAFETY: raw dup2 on descriptors this test owns, then one-byte writes
    // and closes of them.
    unsafe {
        equals("dup2(a, b)", libc::syscall(libc::SYS_dup2, a, b), b.into())?;
        equals("write to b", libc::write(b, b"x".as_ptr().cast(), 1) as i64, 1)?;
        let a_size = fstat(a)?.st_size;
        check(a_size == 1, || format!("the write through the new b reached a {a_size} bytes, wanted 1"))?;
        let b_size = std::fs::metadata(&b_path).map_err(|e| e.to_string())?.len();
        check(b_size == 0, || format!("b's old file grew to {b_size} bytes: dup2 did not close it"))?;
        equals("dup2(a, a)", libc::syscall(libc::SYS_dup2, a, a), a.into())?;
        fails_with("dup2 of an unused fd", libc::syscall(libc::SYS_dup2, UNUSED_FD, b), libc::EBADF)?;
        equals("close(b)", libc::close(b).into(), 0)
    }
}

fn dup3_sets_close_on_exec_and_refuses_the_same_fd() -> TestResult {
    let (_, a) = fresh_file("dup3", b"")?;
    let a = a.as_raw_fd();
    // SAFETY: raw dup/dup3/fcntl on descriptors this test owns.
    unsafe {
        let spare = own("dup", libc::dup(a))?;
        let s = spare.as_raw_fd();
        equals("F_GETFD after dup", libc::fcntl(s, libc::F_GETFD).into(), 0)?;
        equals("dup3(a, s, O_CLOEXEC)", libc::syscall(libc::SYS_dup3, a, s, libc::O_CLOEXEC), s.into())?;
        equals("F_GETFD after dup3", libc::fcntl(s, libc::F_GETFD).into(), libc::FD_CLOEXEC.into())?;
        equals("dup2(a, s)", libc::syscall(libc::SYS_dup2, a, s), s.into())?;
        equals("F_GETFD after dup2", libc::fcntl(s, libc::F_GETFD).into(), 0)?;
        fails_with("dup3(a, a, O_CLOEXEC)", libc::syscall(libc::SYS_dup3, a, a, libc::O_CLOEXEC), libc::EINVAL)?;
        fails_with("dup3 with O_NONBLOCK", libc::syscall(libc::SYS_dup3, a, s, libc::O_NONBLOCK), libc::EINVAL)?;
        fails_with("dup3 of an unused fd", libc::syscall(libc::SYS_dup3, UNUSED_FD, s, 0), libc::EBADF)
    }
}

fn lseek_moves_the_offset_and_refuses_a_negative_one() -> TestResult {
    let (_, f) = fresh_file("lseek", b"0123456789")?;
    let fd = f.as_raw_fd();
    // SAFETY: lseek on a descriptor this test owns.
    let seek = |off: i64, whence: libc::c_int| unsafe { libc::lseek(fd, off, whence) };
    equals("SEEK_SET 3", seek(3, libc::SEEK_SET), 3)?;
    check(read_up_to(fd, 2)? == b"34", || "read after SEEK_SET 3 is not \"34\"".into())?;
    equals("SEEK_CUR 0", seek(0, libc::SEEK_CUR), 5)?;
    equals("SEEK_CUR 2", seek(2, libc::SEEK_CUR), 7)?;
    check(read_up_to(fd, 1)? == b"7", || "read after SEEK_CUR is not \"7\"".into())?;
    equals("SEEK_END -1", seek(-1, libc::SEEK_END), 9)?;
    check(read_up_to(fd, 5)? == b"9", || "read after SEEK_END -1 is not \"9\"".into())?;
    fails_with("SEEK_SET -1", seek(-1, libc::SEEK_SET), libc::EINVAL)?;
    fails_with("SEEK_CUR -100", seek(-100, libc::SEEK_CUR), libc::EINVAL)?;
    fails_with("SEEK_END -11", seek(-11, libc::SEEK_END), libc::EINVAL)?;
    equals("the offset after the refusals", seek(0, libc::SEEK_CUR), 10)?;
    fails_with("whence 7", seek(0, 7), libc::EINVAL)?;
    // SAFETY: the descriptor is what is wrong.
    fails_with("lseek of an unused fd", unsafe { libc::lseek(UNUSED_FD, 0, libc::SEEK_SET) }, libc::EBADF)
}

fn lseek_on_a_pipe_is_espipe() -> TestResult {
    let (r, w) = pipe2(0)?;
    // SAFETY: lseek on descriptors this test owns.
    unsafe {
        fails_with("lseek on a pipe's read end", libc::lseek(r.as_raw_fd(), 0, libc::SEEK_CUR), libc::ESPIPE)?;
        fails_with("lseek on a pipe's write end", libc::lseek(w.as_raw_fd(), 0, libc::SEEK_SET), libc::ESPIPE)
    }
}

fn a_write_past_the_end_leaves_zeros() -> TestResult {
    let (_, f) = fresh_file("hole", b"ab")?;
    let fd = f.as_raw_fd();
    // SAFETY: lseek and a one-byte write on a descriptor this test owns.
    unsafe {
        equals("SEEK_SET 5000", libc::lseek(fd, 5000, libc::SEEK_SET), 5000)?;
        equals("write at 5000", libc::write(fd, b"z".as_ptr().cast(), 1) as i64, 1)?;
        equals("SEEK_SET 0", libc::lseek(fd, 0, libc::SEEK_SET), 0)?;
    }
    check(fstat(fd)?.st_size == 5001, || format!("size {}, wanted 5001", fstat(fd).map(|s| s.st_size).unwrap_or(-1)))?;
    let all = read_up_to(fd, 6000)?;
    check(all.len() == 5001, || format!("read {} bytes, wanted 5001", all.len()))?;
    check(&all[..2] == b"ab" && all[5000] == b'z', || "the data around the gap changed".into())?;
    let nonzero = all[2..5000].iter().position(|&b| b != 0);
    check(nonzero.is_none(), || format!("the gap holds a nonzero byte at {}", nonzero.unwrap_or(0) + 2))
}

fn getcwd() -> Result<String, String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length (the raw call, not libc's).
    let n = ok("getcwd", unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) })?;
    // The raw call returns the length with the NUL.
    let s = buf[..(n as usize).saturating_sub(1)].to_vec();
    check(buf[n as usize - 1] == 0, || "getcwd's length does not count the NUL".into())?;
    String::from_utf8(s).map_err(|e| e.to_string())
}

fn working_directory_round_trip() -> TestResult {
    let dir = "/tmp/utest/cwd";
    let _ = std::fs::remove_file(format!("{dir}/f"));
    let _ = std::fs::remove_dir(dir);
    scratch("cwd")?;
    let c = cstr(dir);
    // SAFETY: NUL-terminated paths; each call only names files under
    // /tmp/utest. (The test runs in its own process: its cwd is its own.)
    unsafe {
        equals("mkdir", libc::mkdir(c.as_ptr(), 0o755).into(), 0)?;
        fails_with("mkdir of an existing dir", libc::mkdir(c.as_ptr(), 0o755).into(), libc::EEXIST)?;
        equals("chdir", libc::chdir(c.as_ptr()).into(), 0)?;
        let cwd = getcwd()?;
        check(cwd == dir, || format!("getcwd is {cwd:?} after chdir {dir:?}"))?;
        // A relative name resolves against the new working directory.
        drop(open("f", libc::O_CREAT | libc::O_WRONLY, 0o644)?);
        check(std::fs::metadata(format!("{dir}/f")).is_ok(), || "the file made as \"f\" is not in the cwd".into())?;
        fails_with("rmdir of a non-empty dir", libc::rmdir(c.as_ptr()).into(), libc::ENOTEMPTY)?;
        fails_with("unlink of a dir", libc::unlink(c.as_ptr()).into(), libc::EISDIR)?;
        fails_with("rmdir of a file", libc::rmdir(c"f".as_ptr()).into(), libc::ENOTDIR)?;
        fails_with("chdir to a file", libc::chdir(c"f".as_ptr()).into(), libc::ENOTDIR)?;
        fails_with("rmdir .", libc::rmdir(c".".as_ptr()).into(), libc::EINVAL)?;
        equals("unlink f", libc::unlink(c"f".as_ptr()).into(), 0)?;
        fails_with("unlink f again", libc::unlink(c"f".as_ptr()).into(), libc::ENOENT)?;
        equals("chdir ..", libc::chdir(c"..".as_ptr()).into(), 0)?;
        let cwd = getcwd()?;
        check(cwd == "/tmp/utest", || format!("getcwd is {cwd:?} after chdir .."))?;
        equals("rmdir", libc::rmdir(c"cwd".as_ptr()).into(), 0)?;
        fails_with("rmdir again", libc::rmdir(c.as_ptr()).into(), libc::ENOENT)?;
        fails_with("chdir to the removed dir", libc::chdir(c.as_ptr()).into(), libc::ENOENT)?;
        fails_with("mkdir under a missing dir", libc::mkdir(c"/tmp/utest/no/such".as_ptr(), 0o755).into(), libc::ENOENT)
    }
}

fn getcwd_with_a_small_buffer_is_erange() -> TestResult {
    let mut buf = [0u8; 3];
    // SAFETY: `buf` is writable for the length given.
    unsafe {
        equals("chdir /tmp", libc::chdir(c"/tmp".as_ptr()).into(), 0)?;
        fails_with("getcwd into 3 bytes", libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()), libc::ERANGE)?;
        // "/tmp" and its NUL need 5: exactly enough succeeds, one less does not.
        let mut five = [0u8; 5];
        equals("getcwd into 5 bytes", libc::syscall(libc::SYS_getcwd, five.as_mut_ptr(), 5), 5)?;
        fails_with("getcwd into 4 bytes", libc::syscall(libc::SYS_getcwd, five.as_mut_ptr(), 4), libc::ERANGE)?;
        fails_with("getcwd to a bad pointer", libc::syscall(libc::SYS_getcwd, 0x10usize, 64), libc::EFAULT)
    }
}

fn fstat_reports_size_and_type() -> TestResult {
    let (path, f) = fresh_file("fstat", &[7u8; 5000])?;
    let st = fstat(f.as_raw_fd())?;
    check(st.st_size == 5000, || format!("size {}, wanted 5000", st.st_size))?;
    check(st.st_mode & libc::S_IFMT == libc::S_IFREG, || format!("a file's mode is {:o}", st.st_mode))?;
    let dir = open("/tmp/utest", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let st = fstat(dir.as_raw_fd())?;
    check(st.st_mode & libc::S_IFMT == libc::S_IFDIR, || format!("a directory's mode is {:o}", st.st_mode))?;
    let (r, _w) = pipe2(0)?;
    let st = fstat(r.as_raw_fd())?;
    check(st.st_mode & libc::S_IFMT == libc::S_IFIFO, || format!("a pipe's mode is {:o}", st.st_mode))?;
    let p = cstr(&path);
    // SAFETY: the calls must fail; `st` is writable.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        fails_with("fstat of an unused fd", libc::fstat(UNUSED_FD, &mut st).into(), libc::EBADF)?;
        fails_with(
            "open O_DIRECTORY of a file",
            libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY).into(),
            libc::ENOTDIR,
        )?;
        fails_with("fstat to a bad pointer", libc::syscall(libc::SYS_fstat, f.as_raw_fd(), 0x10usize), libc::EFAULT)
    }
}

/// A fresh directory `/tmp/utest/NAME` holding files a, b, c and a
/// subdirectory d.
fn make_tree(name: &str) -> Result<String, String> {
    let dir = format!("/tmp/utest/{name}");
    let _ = std::fs::remove_dir_all(&dir);
    let e = |err: std::io::Error| format!("making {dir}: {err}");
    std::fs::create_dir_all(&dir).map_err(e)?;
    for f in ["a", "b", "c"] {
        std::fs::write(format!("{dir}/{f}"), f).map_err(e)?;
    }
    std::fs::create_dir(format!("{dir}/d")).map_err(e)?;
    Ok(dir)
}

fn read_dir_lists_a_directory_made_here() -> TestResult {
    let dir = make_tree("dents")?;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("read_dir: {e}"))? {
        let entry = entry.map_err(|e| format!("read_dir entry: {e}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().map_err(|e| e.to_string())?.is_dir();
        check(is_dir == (name == "d"), || format!("{name} is_dir {is_dir}"))?;
        names.push(name);
    }
    names.sort();
    check(names == ["a", "b", "c", "d"], || format!("{dir} lists {names:?}"))?;
    std::fs::remove_file(format!("{dir}/b")).map_err(|e| e.to_string())?;
    let left = std::fs::read_dir(&dir).map_err(|e| e.to_string())?.count();
    check(left == 3, || format!("{left} entries after removing one of 4"))
}

fn getdents64_lists_dot_and_dotdot_with_types() -> TestResult {
    let dir = make_tree("dents64")?;
    let d = open(&dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = ok("getdents64", unsafe {
            libc::syscall(libc::SYS_getdents64, d.as_raw_fd(), buf.as_mut_ptr(), buf.len())
        })?;
        if n == 0 {
            break;
        }
        // linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name.
        let mut at = 0;
        while at < n as usize {
            let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
            check(reclen >= 20 && reclen.is_multiple_of(8) && at + reclen <= n as usize, || {
                format!("a record of length {reclen}")
            })?;
            let ino = u64::from_ne_bytes(buf[at..at + 8].try_into().unwrap_or_default());
            let kind = buf[at + 18];
            let name_bytes = &buf[at + 19..at + reclen];
            let name: String = name_bytes.iter().take_while(|&&b| b != 0).map(|&b| b as char).collect();
            check(ino != 0, || format!("{name} has inode 0"))?;
            seen.push((name, kind));
            at += reclen;
        }
        check(seen.len() < 100, || "getdents64 never reached the end".into())?;
    }
    seen.sort();
    let want: Vec<(String, u8)> = [
        (".", libc::DT_DIR),
        ("..", libc::DT_DIR),
        ("a", libc::DT_REG),
        ("b", libc::DT_REG),
        ("c", libc::DT_REG),
        ("d", libc::DT_DIR),
    ]
    .iter()
    .map(|&(n, t)| (n.to_string(), t))
    .collect();
    check(seen == want, || format!("getdents64 gave {seen:?}"))?;
    let (_, f) = fresh_file("dents64-file", b"x")?;
    // SAFETY: `buf` is writable for the lengths given.
    unsafe {
        fails_with(
            "getdents64 of a file",
            libc::syscall(libc::SYS_getdents64, f.as_raw_fd(), buf.as_mut_ptr(), buf.len()),
            libc::ENOTDIR,
        )?;
        let d2 = open(&dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        fails_with(
            "getdents64 into 8 bytes",
            libc::syscall(libc::SYS_getdents64, d2.as_raw_fd(), buf.as_mut_ptr(), 8),
            libc::EINVAL,
        )
    }
}

fn o_append_writes_at_the_end() -> TestResult {
    let (path, _) = fresh_file("append", b"ab")?;
    let f = open(&path, libc::O_WRONLY | libc::O_APPEND, 0)?;
    let fd = f.as_raw_fd();
    // SAFETY: lseek and writes on a descriptor this test owns.
    unsafe {
        equals("SEEK_SET 0", libc::lseek(fd, 0, libc::SEEK_SET), 0)?;
        equals("write", libc::write(fd, b"cd".as_ptr().cast(), 2) as i64, 2)?;
        equals("the offset after an append", libc::lseek(fd, 0, libc::SEEK_CUR), 4)?;
        equals("write", libc::write(fd, b"e".as_ptr().cast(), 1) as i64, 1)?;
    }
    let back = std::fs::read(&path).map_err(|e| e.to_string())?;
    check(back == b"abcde", || format!("the file holds {:?}", String::from_utf8_lossy(&back)))
}

fn ftruncate_shrinks_and_grows() -> TestResult {
    let (path, f) = fresh_file("truncate", b"hello world")?;
    let fd = f.as_raw_fd();
    // SAFETY: ftruncate and lseek on descriptors this test owns.
    unsafe {
        equals("SEEK_SET 8", libc::lseek(fd, 8, libc::SEEK_SET), 8)?;
        equals("ftruncate 3", libc::ftruncate(fd, 3).into(), 0)?;
        equals("the offset after ftruncate", libc::lseek(fd, 0, libc::SEEK_CUR), 8)?;
        check(fstat(fd)?.st_size == 3, || "size is not 3 after ftruncate 3".into())?;
        equals("ftruncate 5000", libc::ftruncate(fd, 5000).into(), 0)?;
        equals("SEEK_SET 0", libc::lseek(fd, 0, libc::SEEK_SET), 0)?;
    }
    let all = read_up_to(fd, 6000)?;
    check(all.len() == 5000, || format!("read {} bytes after ftruncate 5000", all.len()))?;
    check(&all[..3] == b"hel" && all[3..].iter().all(|&b| b == 0), || {
        "the grown file is not \"hel\" and zeros".into()
    })?;
    let ro = open(&path, libc::O_RDONLY, 0)?;
    let (r, _w) = pipe2(0)?;
    // SAFETY: each call must fail.
    unsafe {
        fails_with("ftruncate -1", libc::ftruncate(fd, -1).into(), libc::EINVAL)?;
        fails_with("ftruncate of a read-only fd", libc::ftruncate(ro.as_raw_fd(), 0).into(), libc::EINVAL)?;
        fails_with("ftruncate of a pipe", libc::ftruncate(r.as_raw_fd(), 0).into(), libc::EINVAL)?;
        fails_with("ftruncate of an unused fd", libc::ftruncate(UNUSED_FD, 0).into(), libc::EBADF)
    }
}

fn pread_and_pwrite_leave_the_offset_alone() -> TestResult {
    let (_, f) = fresh_file("pread", b"0123456789")?;
    let fd = f.as_raw_fd();
    let mut buf = [0u8; 4];
    // SAFETY: buffers valid for the lengths given; descriptors this test owns.
    unsafe {
        equals("SEEK_SET 2", libc::lseek(fd, 2, libc::SEEK_SET), 2)?;
        equals("pwrite at 6", libc::pwrite(fd, b"AB".as_ptr().cast(), 2, 6) as i64, 2)?;
        equals("the offset after pwrite", libc::lseek(fd, 0, libc::SEEK_CUR), 2)?;
        equals("pread at 5", libc::pread(fd, buf.as_mut_ptr().cast(), 4, 5) as i64, 4)?;
        check(&buf == b"5AB8", || format!("pread gave {:?}", String::from_utf8_lossy(&buf)))?;
        equals("the offset after pread", libc::lseek(fd, 0, libc::SEEK_CUR), 2)?;
        equals("pread at 8 (2 bytes left)", libc::pread(fd, buf.as_mut_ptr().cast(), 4, 8) as i64, 2)?;
        equals("pread past the end", libc::pread(fd, buf.as_mut_ptr().cast(), 4, 100) as i64, 0)?;
        fails_with("pread at -1", libc::pread(fd, buf.as_mut_ptr().cast(), 4, -1) as i64, libc::EINVAL)?;
        let (r, w) = pipe2(0)?;
        fails_with("pread of a pipe", libc::pread(r.as_raw_fd(), buf.as_mut_ptr().cast(), 4, 0) as i64, libc::ESPIPE)?;
        fails_with("pwrite to a pipe", libc::pwrite(w.as_raw_fd(), buf.as_ptr().cast(), 4, 0) as i64, libc::ESPIPE)?;
    }
    let mut all = [0u8; 10];
    // SAFETY: `all` is writable for its length.
    equals("pread all", unsafe { libc::pread(fd, all.as_mut_ptr().cast(), 10, 0) } as i64, 10)?;
    check(&all == b"012345AB89", || format!("the file holds {:?}", String::from_utf8_lossy(&all)))
}
