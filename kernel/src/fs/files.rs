//! Open files and the file system calls: each process's descriptor table
//! (`FdTable`), the open file descriptions it points at (`OpenFile`, shared
//! after `dup` and `fork` as on Linux: one offset, one set of status flags),
//! and the bodies of `read`, `write`, `openat`, `fstat`, `getdents64` and
//! the rest, taking decoded arguments, the caller's address space (`root`,
//! for user copies), its table and its working directory.
//!
//! Lock order: the caller's `FdTable`, then an `OpenFile`, then the file
//! system (`super::with`). User memory is copied outside the file-system
//! lock, a chunk at a time, so a large read or write neither holds it long
//! nor needs a large kernel buffer. Results are `Ok(value)` or
//! `Err(errno)`, a positive Linux error number.

use super::{FsError, Ino, Kind, ROOT, Stat};
use crate::mm::usercopy::{copy_from_user, copy_to_user};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use klib::ramfs::{MAX_FILE_SIZE, OpenOptions, PATH_MAX};
use nk_model::layout::PAGE_SIZE;
use spin::Mutex;

pub type SysResult = Result<u64, i64>;

/// Linux error numbers these calls return (beyond `FsError::errno`).
pub mod errno {
    pub const ENOENT: i64 = 2;
    pub const ENXIO: i64 = 6;
    pub const ENOSPC: i64 = 28;
    pub const ELOOP: i64 = 40;
    pub const EBADF: i64 = 9;
    pub const ENOMEM: i64 = 12;
    pub const EACCES: i64 = 13;
    pub const EFAULT: i64 = 14;
    pub const ENOTDIR: i64 = 20;
    pub const EISDIR: i64 = 21;
    pub const EINVAL: i64 = 22;
    pub const ENFILE: i64 = 23;
    pub const EMFILE: i64 = 24;
    pub const ENOTTY: i64 = 25;
    pub const EINTR: i64 = 4;
    pub use crate::proc::syscall::errno::ERESTARTSYS;
    pub const EAGAIN: i64 = 11;
    pub const EPIPE: i64 = 32;
    pub const ESPIPE: i64 = 29;
    pub const ERANGE: i64 = 34;
    pub const ENAMETOOLONG: i64 = 36;
    pub const EOPNOTSUPP: i64 = 95;
}
use errno::*;

// open(2) flags, x86-64 values.
pub const O_ACCMODE: u32 = 0o3;
pub const O_RDONLY: u32 = 0o0;
pub const O_WRONLY: u32 = 0o1;
pub const O_RDWR: u32 = 0o2;
pub const O_CREAT: u32 = 0o100;
pub const O_EXCL: u32 = 0o200;
pub const O_TRUNC: u32 = 0o1000;
pub const O_APPEND: u32 = 0o2000;
pub const O_NONBLOCK: u32 = 0o4000;
pub const O_DSYNC: u32 = 0o10000;
pub const O_ASYNC: u32 = 0o20000;
pub const O_DIRECT: u32 = 0o40000;
pub const O_LARGEFILE: u32 = 0o100000;
pub const O_DIRECTORY: u32 = 0o200000;
pub const O_NOFOLLOW: u32 = 0o400000;
pub const O_NOATIME: u32 = 0o1000000;
pub const O_CLOEXEC: u32 = 0o2000000;
pub const O_SYNC: u32 = 0o4010000;
pub const O_PATH: u32 = 0o10000000;
pub const O_TMPFILE: u32 = 0o20000000 | O_DIRECTORY;
/// What F_GETFL reports: the flags that stay with the description.
const STATUS_FLAGS: u32 =
    O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_ASYNC | O_DIRECT | O_LARGEFILE | O_NOATIME | O_SYNC | O_PATH;
/// What F_SETFL may change.
const SETFL_FLAGS: u32 = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME;

// The *at calls.
pub const AT_FDCWD: i32 = -100;
pub const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
pub const AT_REMOVEDIR: u64 = 0x200;
pub const AT_NO_AUTOMOUNT: u64 = 0x800;
pub const AT_EMPTY_PATH: u64 = 0x1000;

pub const SEEK_SET: u64 = 0;
pub const SEEK_CUR: u64 = 1;
pub const SEEK_END: u64 = 2;
pub const SEEK_DATA: u64 = 3;
pub const SEEK_HOLE: u64 = 4;

pub const F_DUPFD: u64 = 0;
pub const F_GETFD: u64 = 1;
pub const F_SETFD: u64 = 2;
pub const F_GETFL: u64 = 3;
pub const F_SETFL: u64 = 4;
pub const F_DUPFD_CLOEXEC: u64 = 1030;
pub const FD_CLOEXEC: u64 = 1;

pub const TCGETS: u64 = 0x5401;
pub const TCSETS: u64 = 0x5402;
pub const TCSETSW: u64 = 0x5403;
pub const TCSETSF: u64 = 0x5404;
pub const TIOCGWINSZ: u64 = 0x5413;
pub const TIOCSWINSZ: u64 = 0x5414;
pub const FIONBIO: u64 = 0x5421;
pub const TIOCSCTTY: u64 = 0x540e;
pub const TIOCGPGRP: u64 = 0x540f;
pub const TIOCSPGRP: u64 = 0x5410;
pub const TIOCNOTTY: u64 = 0x5422;
pub const TIOCGSID: u64 = 0x5429;
pub const FIONCLEX: u64 = 0x5450;
pub const FIOCLEX: u64 = 0x5451;

/// Descriptors per process (Linux's default RLIMIT_NOFILE).
pub const MAX_FDS: usize = 1024;
/// Buffers per readv/writev (IOV_MAX).
pub const IOV_MAX: u64 = 1024;
/// Bytes moved per step between user memory and a file.
const CHUNK: usize = 64 * 1024;
/// The most one read or write moves (Linux's MAX_RW_COUNT).
const MAX_RW: u64 = 0x7fff_f000;
/// The file-mode creation mask a process starts with (`umask`).
pub const UMASK: u32 = 0o022;

/// `st_dev` of the RAM file system and of the console.
const DEV_RAMFS: u64 = 1;
const DEV_CONSOLE: u64 = 5;
/// The console's `st_rdev`: ttyS0, major 4, minor 64.
const RDEV_TTYS0: u64 = (4 << 8) | 64;
const S_IFCHR: u32 = 0o020000;
const S_IFIFO: u32 = 0o010000;
/// `st_dev` of pipes (Linux's pipefs is an anonymous device too).
const DEV_PIPE: u64 = 12;

/// What an open file description refers to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Object {
    /// The serial console: writes print, reads take a line (`crate::tty`).
    Console,
    File(Ino),
    Dir(Ino),
    /// One end of a pipe (shared, so a call can sleep without the
    /// description's lock).
    Pipe(Arc<super::pipe::End>),
    /// A device node of `/dev` (`super::dev`), and the node.
    Device(super::dev::Dev, Ino),
}

/// An open file description: what `open` made, shared by `dup`ed and
/// inherited descriptors.
#[derive(Debug)]
pub struct OpenFile {
    pub(crate) object: Object,
    /// The access mode and status flags (F_GETFL).
    flags: u32,
    offset: u64,
    /// A directory's place: the name `getdents64` returned last (`None`
    /// at the start). Names, not indices, so entries added or removed
    /// between calls skip nothing.
    dir_after: Option<Vec<u8>>,
    /// Counted in `OPEN_DESCRIPTIONS` (every description `install` made).
    counted: bool,
    /// The name `/proc/PID/fd` shows: the path it was opened by, made
    /// absolute and folded (`klib::path::lexical`), or a pipe's.
    name: Option<Vec<u8>>,
}

/// Open file descriptions in the whole system at most (Linux's
/// `fs.file-max`, scaled to this kernel's heap): past it, `open`, `pipe`
/// and the like fail with ENFILE.
pub const FILE_MAX: usize = 4096;

/// Descriptions `install` made that are still open.
static OPEN_DESCRIPTIONS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// A descriptor's description, shared.
pub type FileRef = Arc<Mutex<OpenFile>>;

impl OpenFile {
    /// The console, open for reading and writing (fds 0, 1 and 2).
    pub fn console() -> Self {
        OpenFile { object: Object::Console, flags: O_RDWR, offset: 0, dir_after: None, counted: false, name: None }
    }

    /// What `/proc/PID/fd/N` links to, as Linux names it.
    pub fn name(&self) -> Vec<u8> {
        match (&self.name, &self.object) {
            (Some(name), _) => name.clone(),
            (None, Object::Console) => b"/dev/console".to_vec(),
            (None, _) => b"anon_inode:[unnamed]".to_vec(),
        }
    }

    pub fn readable(&self) -> bool {
        self.flags & O_PATH == 0 && self.flags & O_ACCMODE != O_WRONLY
    }

    pub fn writable(&self) -> bool {
        self.flags & O_PATH == 0 && self.flags & O_ACCMODE != O_RDONLY
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        if self.counted {
            OPEN_DESCRIPTIONS.fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
        }
        if let Object::Device(super::dev::Dev::Module(slot), _) = self.object {
            crate::module::dev_close(slot);
        }
        // The last descriptor is gone: an unlinked file's bytes may go too.
        if let Object::File(ino) | Object::Dir(ino) | Object::Device(_, ino) = self.object {
            super::with(|fs| fs.release(ino));
        }
    }
}

#[derive(Clone, Debug)]
struct Slot {
    file: FileRef,
    cloexec: bool,
}

/// A process's file descriptors. `Clone` is `fork`: the copy's
/// descriptors share the parent's descriptions.
#[derive(Clone, Debug)]
pub struct FdTable {
    slots: Vec<Option<Slot>>,
    /// Descriptors at or past this are refused (RLIMIT_NOFILE's soft
    /// limit, at most `MAX_FDS`).
    limit: usize,
}

impl Default for FdTable {
    fn default() -> Self {
        Self::new()
    }
}

impl FdTable {
    /// Standard input, output and error on the console: one description,
    /// as a shell's terminal is.
    pub fn new() -> Self {
        let console = Arc::new(Mutex::new(OpenFile::console()));
        let slot = || Some(Slot { file: console.clone(), cloexec: false });
        FdTable { slots: vec![slot(), slot(), slot()], limit: MAX_FDS }
    }

    /// No descriptors at all.
    pub fn empty() -> Self {
        FdTable { slots: Vec::new(), limit: MAX_FDS }
    }

    /// The description behind `fd` (EBADF if none). The argument is the
    /// raw register: Linux takes an `unsigned int`, so only 32 bits count.
    pub fn get(&self, fd: u64) -> Result<FileRef, i64> {
        self.slot(fd).map(|s| s.file.clone())
    }

    /// RLIMIT_NOFILE: descriptors from `limit` on are refused (those
    /// already open stay, as on Linux).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(MAX_FDS);
    }

    /// Each open descriptor and the name `/proc/PID/fd` gives it. Called
    /// with the process table locked, so a description whose lock is held
    /// (its owner was preempted in a call) is named without waiting.
    pub fn names(&self) -> Vec<(usize, Vec<u8>)> {
        let busy = || b"anon_inode:[busy]".to_vec();
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(fd, s)| s.as_ref().map(|s| (fd, s.file.try_lock().map_or_else(busy, |f| f.name()))))
            .collect()
    }

    /// What `fd` refers to, for poll and select: `None` if it is not
    /// open, or open with O_PATH (which Linux's poll treats as not open).
    pub fn watched(&self, fd: u64) -> Option<Object> {
        let file = self.get(fd).ok()?;
        let f = file.lock();
        (f.flags & O_PATH == 0).then(|| f.object.clone())
    }

    fn slot(&self, fd: u64) -> Result<&Slot, i64> {
        self.slots.get(fd as u32 as usize).and_then(Option::as_ref).ok_or(EBADF)
    }

    fn slot_mut(&mut self, fd: u64) -> Result<&mut Slot, i64> {
        self.slots.get_mut(fd as u32 as usize).and_then(Option::as_mut).ok_or(EBADF)
    }

    /// The lowest free descriptor at or above `min` (EMFILE if none).
    fn lowest_free(&self, min: usize) -> Result<usize, i64> {
        (min..self.limit).find(|&fd| self.slots.get(fd).is_none_or(Option::is_none)).ok_or(EMFILE)
    }

    /// Puts `file` at descriptor `fd`; whatever was there is returned, to
    /// be dropped by the caller (outside any lock).
    fn put(&mut self, fd: usize, file: FileRef, cloexec: bool) -> Option<Slot> {
        if self.slots.len() <= fd {
            self.slots.resize(fd + 1, None);
        }
        self.slots[fd].replace(Slot { file, cloexec })
    }

    /// Installs a new description at the lowest free descriptor: EMFILE
    /// when the table is full, ENFILE past `FILE_MAX` descriptions in the
    /// system, ENOMEM when the heap is low.
    pub fn install(&mut self, mut file: OpenFile, cloexec: bool) -> Result<u64, i64> {
        use core::sync::atomic::Ordering;
        let fd = self.lowest_free(0)?;
        if !crate::mm::heap::can_grow(1024) {
            return Err(ENOMEM);
        }
        OPEN_DESCRIPTIONS
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < FILE_MAX).then_some(n + 1))
            .map_err(|_| ENFILE)?;
        file.counted = true;
        self.put(fd, Arc::new(Mutex::new(file)), cloexec);
        Ok(fd as u64)
    }

    /// Closes `fd`. The description goes with its last descriptor.
    pub fn close(&mut self, fd: u64) -> Result<(), i64> {
        self.slot(fd)?;
        let old = self.slots[fd as u32 as usize].take();
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        drop(old);
        Ok(())
    }

    /// Closes every descriptor marked close-on-exec: `execve` calls this
    /// once the new image is certain.
    pub fn close_on_exec(&mut self) {
        let mut closed = Vec::new();
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|s| s.cloexec) {
                closed.push(slot.take());
            }
        }
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        drop(closed);
    }

    /// How many descriptors are open.
    pub fn count(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Whether `fd` is marked close-on-exec (EBADF if not open).
    pub fn cloexec(&self, fd: u64) -> Result<bool, i64> {
        self.slot(fd).map(|s| s.cloexec)
    }
}

/// write(2) on a pipe's write end. Out of line: inlined into `write_ref`
/// it happened to encode `wrmsr` there, which the image scanner refuses.
#[inline(never)]
fn write_pipe(end: &super::pipe::End, root: u64, buf: u64, len: u64, nonblock: bool) -> SysResult {
    super::pipe::write(end, root, buf, len.min(MAX_RW), nonblock).map_err(pipe_err)
}

/// A pipe call's stop as an errno; a write with no reader left also
/// sends the caller SIGPIPE.
fn pipe_err(stop: super::pipe::Stop) -> i64 {
    use super::pipe::Stop;
    match stop {
        Stop::WouldBlock => EAGAIN,
        // Nothing moved yet: made again after the signal, as Linux's pipes.
        Stop::Interrupted => ERESTARTSYS,
        Stop::Fault => EFAULT,
        Stop::NoMemory => ENOMEM,
        Stop::Broken => {
            let me = crate::sched::current();
            let info = crate::proc::signal::Info { code: crate::proc::signal::SI_USER, pid: me, ..Default::default() };
            let _ = crate::proc::signal::send(me, crate::proc::signal::SIGPIPE, info);
            EPIPE
        }
    }
}

/// pipe2(2): a new pipe, its read end at `fds[0]`, its write end at
/// `fds[1]`.
pub fn pipe2(root: u64, files: &mut FdTable, fds: u64, flags: u64) -> SysResult {
    let flags = u32::try_from(flags).map_err(|_| EINVAL)?;
    if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(EINVAL);
    }
    // Room in the table for both ends first, as Linux checks.
    let free = (0..files.limit).filter(|&fd| files.slots.get(fd).is_none_or(Option::is_none)).take(2).count();
    if free < 2 {
        return Err(EMFILE);
    }
    let (r, w) = super::pipe::End::pair().map_err(|e| e.errno())?;
    let status = flags & O_NONBLOCK;
    // Numbered as Linux numbers a pipe's inode, so both ends show one name.
    static PIPES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);
    let id = PIPES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    let open = |end, mode| OpenFile {
        object: Object::Pipe(Arc::new(end)),
        flags: mode | status,
        offset: 0,
        dir_after: None,
        counted: false,
        name: Some(alloc::format!("pipe:[{id}]").into_bytes()),
    };
    let cloexec = flags & O_CLOEXEC != 0;
    let rfd = files.install(open(r, O_RDONLY), cloexec)?;
    let wfd = match files.install(open(w, O_WRONLY), cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = files.close(rfd);
            return Err(e);
        }
    };
    let mut pair = [0u8; 8];
    pair[..4].copy_from_slice(&(rfd as i32).to_le_bytes());
    pair[4..].copy_from_slice(&(wfd as i32).to_le_bytes());
    if copy_to_user(root, fds, &pair).is_err() {
        let _ = files.close(rfd);
        let _ = files.close(wfd);
        return Err(EFAULT);
    }
    Ok(0)
}

pub(super) fn fs_err(e: FsError) -> i64 {
    e.errno()
}

/// A NUL-terminated path from user memory, without its NUL: EFAULT for a
/// bad pointer, ENAMETOOLONG with no NUL in PATH_MAX bytes. Copied a page
/// at a time, so a short string at the end of a mapping is fine.
pub fn user_path(root: u64, addr: u64) -> Result<Vec<u8>, i64> {
    let mut path = Vec::new();
    let mut at = addr;
    loop {
        let room = ((PAGE_SIZE - at % PAGE_SIZE) as usize).min(PATH_MAX - path.len());
        let start = path.len();
        path.resize(start + room, 0);
        copy_from_user(root, &mut path[start..], at).map_err(|_| EFAULT)?;
        if let Some(nul) = path[start..].iter().position(|&b| b == 0) {
            path.truncate(start + nul);
            super::procfs::prepare(&mut path);
            return Ok(path);
        }
        if path.len() >= PATH_MAX {
            return Err(ENAMETOOLONG);
        }
        // The copy succeeded, so `at + room` is still a user address.
        at += room as u64;
    }
}

/// `path`, from directory `base`, as an absolute name folded by
/// `klib::path::lexical` (for names the kernel reports, not lookups);
/// `None` if `base` has been removed.
pub(super) fn full_name(base: Ino, path: &[u8]) -> Option<Vec<u8>> {
    let dir = if path.first() == Some(&b'/') { Vec::new() } else { super::with(|fs| fs.path_of(base)).ok()? };
    Some(klib::path::lexical(&dir, path))
}

/// The directory a relative `path` starts from: `cwd` for AT_FDCWD, else
/// the directory open at `dirfd`. An absolute path ignores `dirfd`.
pub(super) fn base_dir(files: &FdTable, cwd: Ino, dirfd: u64, path: &[u8]) -> Result<Ino, i64> {
    if path.is_empty() {
        // Linux refuses an empty path before it looks at `dirfd`.
        return Err(ENOENT);
    }
    if path.first() == Some(&b'/') || dirfd as u32 as i32 == AT_FDCWD {
        return Ok(cwd);
    }
    match files.get(dirfd)?.lock().object {
        Object::Dir(ino) => Ok(ino),
        _ => Err(ENOTDIR),
    }
}

// ---- read and write ----

/// Reads up to `len` bytes at `offset` of file `ino` into user memory at
/// `buf`. A fault after some bytes is a short read, as on Linux.
fn read_at(root: u64, ino: Ino, offset: u64, buf: u64, len: u64) -> SysResult {
    crate::proc::mem::sync_to_file(ino);
    let len = len.min(MAX_RW) as usize;
    let mut chunk = vec![0u8; len.min(CHUNK)];
    let mut done = 0;
    while done < len {
        let want = (len - done).min(CHUNK);
        let n = super::with(|fs| fs.read(ino, offset + done as u64, &mut chunk[..want])).map_err(fs_err)?;
        if n == 0 {
            break;
        }
        // `buf + done` stays in user space: the bytes before it were copied.
        if copy_to_user(root, buf + done as u64, &chunk[..n]).is_err() {
            return if done > 0 { Ok(done as u64) } else { Err(EFAULT) };
        }
        done += n;
        if n < want {
            break;
        }
    }
    Ok(done as u64)
}

/// Writes `len` (> 0) bytes from user memory at `buf` to file `ino` at
/// `offset`, or at its end each step for `None` (O_APPEND). Returns the
/// count and the offset after the last byte written.
fn write_at(root: u64, ino: Ino, offset: Option<u64>, buf: u64, len: u64) -> Result<(u64, u64), i64> {
    // Its shared mappings' bytes first, so a write lands on top of them,
    // and the mappings see the write after.
    crate::proc::mem::sync_to_file(ino);
    let r = write_at_inner(root, ino, offset, buf, len);
    crate::proc::mem::sync_from_file(ino);
    r
}

fn write_at_inner(root: u64, ino: Ino, offset: Option<u64>, buf: u64, len: u64) -> Result<(u64, u64), i64> {
    let len = len.min(MAX_RW) as usize;
    let mut chunk = vec![0u8; len.min(CHUNK)];
    let mut done = 0;
    let mut end = offset.unwrap_or(0);
    while done < len {
        let want = (len - done).min(CHUNK);
        if copy_from_user(root, &mut chunk[..want], buf + done as u64).is_err() {
            return if done > 0 { Ok((done as u64, end)) } else { Err(EFAULT) };
        }
        let r = super::with(|fs| {
            let at = match offset {
                Some(o) => o + done as u64,
                None => fs.stat(ino)?.size,
            };
            fs.write(ino, at, &chunk[..want]).map(|n| (at, n))
        });
        match r {
            Ok((at, n)) => {
                done += n;
                end = at + n as u64;
                if n < want {
                    break; // out of space: a short write
                }
            }
            Err(_) if done > 0 => break,
            Err(e) => return Err(fs_err(e)),
        }
    }
    Ok((done as u64, end))
}

/// Copies `len` bytes from user memory to the console. With TOSTOP, a
/// background job's write stops it first (`jobs::console_check`).
fn write_console(root: u64, buf: u64, len: u64) -> SysResult {
    if crate::tty::termios().lflag & klib::ldisc::TOSTOP != 0 {
        crate::proc::jobs::console_check(crate::proc::signal::SIGTTOU)?;
    }
    let len = len.min(MAX_RW) as usize;
    let mut chunk = vec![0u8; len.min(CHUNK)];
    let mut done = 0;
    while done < len {
        let want = (len - done).min(CHUNK);
        if copy_from_user(root, &mut chunk[..want], buf + done as u64).is_err() {
            return if done > 0 { Ok(done as u64) } else { Err(EFAULT) };
        }
        crate::console::write_bytes(&chunk[..want]);
        done += want;
    }
    Ok(done as u64)
}

/// Reads console input (`crate::tty`), waiting for some unless `nonblock`.
/// A background job's read stops it (SIGTTIN); a signal while it waits
/// makes the call again afterwards, unless a handler without SA_RESTART
/// runs (ERESTARTSYS), as Linux's terminal does.
fn read_console(root: u64, buf: u64, len: u64, nonblock: bool) -> SysResult {
    crate::proc::jobs::console_check(crate::proc::signal::SIGTTIN)?;
    let mut bytes = vec![0u8; len.min(klib::ldisc::MAX_INPUT as u64) as usize];
    let n = crate::tty::read(&mut bytes, nonblock).map_err(|s| match s {
        crate::tty::Stop::WouldBlock => EAGAIN,
        crate::tty::Stop::Interrupted => ERESTARTSYS,
    })?;
    copy_to_user(root, buf, &bytes[..n]).map_err(|_| EFAULT)?;
    Ok(n as u64)
}

/// read(2) on a description. The console is read without the
/// description's lock: it waits for a line, and a forked child reading the
/// terminal must not stall its parent writing to the same description.
pub fn read_ref(root: u64, file: &FileRef, buf: u64, len: u64) -> SysResult {
    let mut f = file.lock();
    if !f.readable() {
        return Err(EBADF);
    }
    match f.object {
        Object::Console => {
            let nonblock = f.flags & O_NONBLOCK != 0;
            drop(f);
            read_console(root, buf, len, nonblock)
        }
        Object::Pipe(ref end) => {
            let (end, nonblock) = (end.clone(), f.flags & O_NONBLOCK != 0);
            drop(f);
            super::pipe::read(&end, root, buf, len.min(MAX_RW), nonblock).map_err(pipe_err)
        }
        Object::Device(dev, _) => {
            drop(f);
            super::dev::read(dev, root, buf, len)
        }
        Object::Dir(_) => Err(EISDIR),
        Object::File(ino) => {
            let n = read_at(root, ino, f.offset, buf, len)?;
            f.offset += n;
            Ok(n)
        }
    }
}

/// write(2) on a description; the console, again, without its lock.
pub fn write_ref(root: u64, file: &FileRef, buf: u64, len: u64) -> SysResult {
    let mut f = file.lock();
    if !f.writable() {
        return Err(EBADF);
    }
    match f.object {
        Object::Console => {
            drop(f);
            write_console(root, buf, len)
        }
        Object::Pipe(ref end) => {
            let (end, nonblock) = (end.clone(), f.flags & O_NONBLOCK != 0);
            drop(f);
            write_pipe(&end, root, buf, len, nonblock)
        }
        Object::Device(dev, _) => super::dev::write(dev, root, buf, len),
        Object::Dir(_) => Err(EISDIR),
        // Linux returns before an append would move the offset.
        Object::File(_) if len == 0 => Ok(0),
        Object::File(ino) => {
            let at = (f.flags & O_APPEND == 0).then_some(f.offset);
            let (n, end) = write_at(root, ino, at, buf, len)?;
            f.offset = end;
            Ok(n)
        }
    }
}

/// sendfile(2), for a regular file into the console (`cat FILE` on a
/// terminal). Other pairs are EINVAL, as Linux answers for descriptors
/// without the operations it needs, and callers (busybox's copy loop) then
/// fall back to read and write.
pub fn sendfile(root: u64, files: &FdTable, out_fd: u64, in_fd: u64, offset: u64, count: u64) -> SysResult {
    let (input, output) = (files.get(in_fd)?, files.get(out_fd)?);
    let (ino, start) = {
        let f = input.lock();
        if !f.readable() {
            return Err(EBADF);
        }
        let Object::File(ino) = f.object else { return Err(EINVAL) };
        (ino, f.offset)
    };
    {
        let o = output.lock();
        if !o.writable() {
            return Err(EBADF);
        }
        if o.object != Object::Console {
            return Err(EINVAL);
        }
    }
    let start = if offset != 0 {
        let mut b = [0u8; 8];
        copy_from_user(root, &mut b, offset).map_err(|_| EFAULT)?;
        u64::try_from(i64::from_le_bytes(b)).map_err(|_| EINVAL)?
    } else {
        start
    };
    crate::proc::mem::sync_to_file(ino);
    let len = count.min(MAX_RW);
    let mut chunk = vec![0u8; (len as usize).min(CHUNK)];
    let mut done = 0u64;
    while done < len {
        let want = ((len - done) as usize).min(CHUNK);
        let n = super::with(|fs| fs.read(ino, start + done, &mut chunk[..want])).map_err(fs_err)?;
        if n == 0 {
            break;
        }
        crate::console::write_bytes(&chunk[..n]);
        done += n as u64;
    }
    if offset != 0 {
        copy_to_user(root, offset, &(start + done).to_le_bytes()).map_err(|_| EFAULT)?;
    } else {
        input.lock().offset = start + done;
    }
    Ok(done)
}

/// read(2).
pub fn read(root: u64, files: &FdTable, fd: u64, buf: u64, len: u64) -> SysResult {
    read_ref(root, &files.get(fd)?, buf, len)
}

/// write(2).
pub fn write(root: u64, files: &FdTable, fd: u64, buf: u64, len: u64) -> SysResult {
    write_ref(root, &files.get(fd)?, buf, len)
}

/// The (base, length) pairs of a user `struct iovec` array.
fn iovecs(root: u64, iov: u64, count: u64) -> Result<Vec<(u64, u64)>, i64> {
    if count > IOV_MAX {
        return Err(EINVAL);
    }
    let mut raw = vec![0u8; count as usize * 16];
    copy_from_user(root, &mut raw, iov).map_err(|_| EFAULT)?;
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let v: Vec<(u64, u64)> = raw.chunks_exact(16).map(|c| (word(&c[..8]), word(&c[8..]))).collect();
    // The lengths are `ssize_t`s, and so is their sum.
    let mut total: u64 = 0;
    for &(_, len) in &v {
        total = total.checked_add(len).filter(|&t| t <= i64::MAX as u64).ok_or(EINVAL)?;
    }
    Ok(v)
}

/// Runs `step` over each buffer until one comes up short; an error after
/// some bytes ends it with their count.
fn vectored(bufs: &[(u64, u64)], mut step: impl FnMut(u64, u64) -> SysResult) -> SysResult {
    let mut total = 0;
    for &(base, len) in bufs {
        match step(base, len) {
            Ok(n) => {
                total += n;
                if n < len {
                    break;
                }
            }
            Err(_) if total > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// readv(2). Each buffer is one read: another process sharing the
/// description may read between them (Linux would not let it).
pub fn readv(root: u64, files: &FdTable, fd: u64, iov: u64, count: u64) -> SysResult {
    let file = files.get(fd)?;
    let bufs = iovecs(root, iov, count)?;
    vectored(&bufs, |base, len| read_ref(root, &file, base, len))
}

/// writev(2), a write per buffer.
pub fn writev(root: u64, files: &FdTable, fd: u64, iov: u64, count: u64) -> SysResult {
    let file = files.get(fd)?;
    let bufs = iovecs(root, iov, count)?;
    vectored(&bufs, |base, len| write_ref(root, &file, base, len))
}

/// pread64(2): at `offset`, leaving the file's offset alone.
pub fn pread64(root: u64, files: &FdTable, fd: u64, buf: u64, len: u64, offset: u64) -> SysResult {
    let file = files.get(fd)?;
    let f = file.lock();
    if !f.readable() {
        return Err(EBADF);
    }
    if (offset as i64) < 0 {
        return Err(EINVAL);
    }
    match f.object {
        Object::Console | Object::Pipe(_) => Err(ESPIPE),
        Object::Device(dev, _) => super::dev::read(dev, root, buf, len),
        Object::Dir(_) => Err(EISDIR),
        Object::File(ino) => read_at(root, ino, offset, buf, len),
    }
}

/// pwrite64(2): at `offset`, leaving the file's offset alone.
pub fn pwrite64(root: u64, files: &FdTable, fd: u64, buf: u64, len: u64, offset: u64) -> SysResult {
    let file = files.get(fd)?;
    let f = file.lock();
    if !f.writable() {
        return Err(EBADF);
    }
    if (offset as i64) < 0 {
        return Err(EINVAL);
    }
    match f.object {
        Object::Console | Object::Pipe(_) => Err(ESPIPE),
        Object::Device(dev, _) => super::dev::write(dev, root, buf, len),
        Object::Dir(_) => Err(EISDIR),
        Object::File(_) if len == 0 => Ok(0),
        Object::File(ino) => write_at(root, ino, Some(offset), buf, len).map(|(n, _)| n),
    }
}

// ---- opening and closing ----

/// open(2): openat relative to the working directory.
pub fn open(root: u64, files: &mut FdTable, cwd: Ino, path: u64, flags: u64, mode: u64) -> SysResult {
    openat(root, files, cwd, AT_FDCWD as u64, path, flags, mode)
}

/// creat(2).
pub fn creat(root: u64, files: &mut FdTable, cwd: Ino, path: u64, mode: u64) -> SysResult {
    open(root, files, cwd, path, u64::from(O_CREAT | O_WRONLY | O_TRUNC), mode)
}

/// openat(2): O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY, O_CLOEXEC,
/// O_PATH and the access modes; the other flags are kept or ignored.
pub fn openat(root: u64, files: &mut FdTable, cwd: Ino, dirfd: u64, path: u64, flags: u64, mode: u64) -> SysResult {
    let flags = flags as u32;
    let path = user_path(root, path)?;
    if flags & O_TMPFILE == O_TMPFILE {
        return Err(EOPNOTSUPP);
    }
    let access = flags & O_ACCMODE;
    if (access == O_ACCMODE && flags & O_PATH == 0) || (flags & O_CREAT != 0 && flags & O_DIRECTORY != 0) {
        return Err(EINVAL);
    }
    // A descriptor first, as Linux does: EMFILE before any lookup.
    files.lowest_free(0)?;
    let base = base_dir(files, cwd, dirfd, &path)?;
    let how = if flags & O_PATH != 0 {
        // O_PATH: only find it (fchdir, fstat, a dirfd); no create, no truncate.
        OpenOptions { directory: flags & O_DIRECTORY != 0, ..OpenOptions::default() }
    } else {
        OpenOptions {
            create: flags & O_CREAT != 0,
            exclusive: flags & O_EXCL != 0,
            truncate: flags & O_TRUNC != 0,
            directory: flags & O_DIRECTORY != 0,
            write: access != O_RDONLY,
            mode: (mode as u32) & 0o7777 & !crate::proc::umask(),
            nofollow: flags & O_NOFOLLOW != 0,
        }
    };
    let (ino, st) = super::with(|fs| {
        let ino = fs.open(base, &path, &how)?;
        let st = fs.stat(ino)?;
        // The console is no node of its own: nothing to hold for it.
        if st.kind != Kind::CharDev || !matches!(super::dev::opens(st.rdev), Some(super::dev::Opens::Console)) {
            fs.hold(ino)?;
        }
        Ok(st)
    })
    .map(|st| (st.ino, st))
    .map_err(fs_err)?;
    let object = match st.kind {
        Kind::File => Object::File(ino),
        Kind::Dir => Object::Dir(ino),
        Kind::CharDev => match super::dev::opens(st.rdev) {
            Some(super::dev::Opens::Dev(d)) => {
                // A module's device: the description holds the module
                // loaded (`OpenFile`'s drop lets go). It may have gone
                // between the look-up and now.
                if let super::dev::Dev::Module(slot) = d
                    && !crate::module::dev_open(slot)
                {
                    super::with(|fs| fs.release(ino));
                    return Err(ENXIO);
                }
                Object::Device(d, ino)
            }
            Some(super::dev::Opens::Console) => Object::Console,
            // A node with a number no driver has (made by nobody yet).
            None => {
                super::with(|fs| fs.release(ino));
                return Err(ENXIO);
            }
        },
        // `open` follows links; with O_NOFOLLOW it refuses one (ELOOP).
        Kind::Symlink => {
            super::with(|fs| fs.release(ino));
            return Err(ELOOP);
        }
    };
    let keep = if flags & O_PATH != 0 { O_PATH } else { flags & STATUS_FLAGS };
    let name = full_name(base, &path);
    // Made outside the file-system lock: dropping it on an error releases the hold.
    let file = OpenFile { object, flags: keep | O_LARGEFILE, offset: 0, dir_after: None, counted: false, name };
    files.install(file, flags & O_CLOEXEC != 0)
}

/// The whole regular file open as `fd`, for `finit_module`: EBADF if it
/// is not open for reading, EINVAL if it is no regular file.
pub fn whole_file(files: &FdTable, fd: u64) -> Result<Vec<u8>, i64> {
    let file = files.get(fd)?;
    let f = file.lock();
    if !f.readable() {
        return Err(EBADF);
    }
    let Object::File(ino) = f.object else { return Err(EINVAL) };
    drop(f);
    super::read_ino(ino).map_err(fs_err)
}

/// close(2).
pub fn close(files: &mut FdTable, fd: u64) -> SysResult {
    files.close(fd).map(|()| 0)
}

/// dup(2).
pub fn dup(files: &mut FdTable, fd: u64) -> SysResult {
    let file = files.get(fd)?;
    let new = files.lowest_free(0)?;
    files.put(new, file, false);
    Ok(new as u64)
}

/// dup2(2): `new` becomes `old`'s, closing what `new` was.
pub fn dup2(files: &mut FdTable, old: u64, new: u64) -> SysResult {
    let file = files.get(old)?;
    if old as u32 == new as u32 {
        return Ok(u64::from(new as u32));
    }
    replace(files, file, new, false)
}

/// dup3(2): dup2 with O_CLOEXEC, and `old == new` refused.
pub fn dup3(files: &mut FdTable, old: u64, new: u64, flags: u64) -> SysResult {
    if flags & !u64::from(O_CLOEXEC) != 0 || old as u32 == new as u32 {
        return Err(EINVAL);
    }
    let file = files.get(old)?;
    replace(files, file, new, flags != 0)
}

fn replace(files: &mut FdTable, file: FileRef, new: u64, cloexec: bool) -> SysResult {
    let new = new as u32 as usize;
    if new >= files.limit {
        return Err(EBADF);
    }
    let old = files.put(new, file, cloexec);
    drop(old);
    Ok(new as u64)
}

/// fcntl(2): F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL, F_SETFL.
pub fn fcntl(files: &mut FdTable, fd: u64, cmd: u64, arg: u64) -> SysResult {
    let file = files.get(fd)?;
    match cmd as u32 as u64 {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let min = arg as u32 as usize;
            if min >= files.limit {
                return Err(EINVAL);
            }
            let new = files.lowest_free(min)?;
            files.put(new, file, cmd == F_DUPFD_CLOEXEC);
            Ok(new as u64)
        }
        F_GETFD => Ok(u64::from(files.slot(fd)?.cloexec)),
        F_SETFD => {
            files.slot_mut(fd)?.cloexec = arg & FD_CLOEXEC != 0;
            Ok(0)
        }
        F_GETFL => Ok(u64::from(file.lock().flags)),
        F_SETFL => {
            let mut f = file.lock();
            f.flags = (f.flags & !SETFL_FLAGS) | (arg as u32 & SETFL_FLAGS);
            Ok(0)
        }
        _ => Err(EINVAL),
    }
}

// ---- offsets ----

/// lseek(2), SEEK_DATA and SEEK_HOLE included. A directory takes SEEK_SET
/// and SEEK_CUR: a position is a count of entries (`d_off`).
pub fn lseek(files: &FdTable, fd: u64, offset: u64, whence: u64) -> SysResult {
    let file = files.get(fd)?;
    let mut f = file.lock();
    let offset = offset as i64;
    let target = |base: u64| -> Result<u64, i64> {
        let t = (base as i64).checked_add(offset).ok_or(EINVAL)?;
        if t < 0 || t as u64 > MAX_FILE_SIZE {
            return Err(EINVAL);
        }
        Ok(t as u64)
    };
    match f.object {
        Object::Console | Object::Pipe(_) => Err(ESPIPE),
        // As Linux's null and zero devices: any seek succeeds, at 0.
        Object::Device(..) => Ok(0),
        Object::File(ino) => {
            let size = super::with(|fs| fs.stat(ino)).map_err(fs_err)?.size;
            let new = match whence {
                SEEK_SET => target(0)?,
                SEEK_CUR => target(f.offset)?,
                SEEK_END => target(size)?,
                // No holes are kept: all of the file is data, its end the only hole.
                SEEK_DATA | SEEK_HOLE if offset < 0 => return Err(ENXIO),
                SEEK_DATA | SEEK_HOLE if offset as u64 >= size => return Err(ENXIO),
                SEEK_DATA => offset as u64,
                SEEK_HOLE => size,
                _ => return Err(EINVAL),
            };
            f.offset = new;
            Ok(new)
        }
        Object::Dir(ino) => {
            let new = match whence {
                SEEK_SET => target(0)?,
                SEEK_CUR => target(f.offset)?,
                _ => return Err(EINVAL),
            };
            if new != f.offset {
                // The name before position `new`: reading resumes after it.
                let after = match new {
                    0 => None,
                    n => super::with(|fs| {
                        let mut entries = fs.readdir(ino)?;
                        let last = entries.by_ref().take(n as usize).last().map(|e| e.name.to_vec());
                        Ok(last)
                    })
                    .map_err(fs_err)?,
                };
                f.dir_after = after;
                f.offset = new;
            }
            Ok(new)
        }
    }
}

/// fsync(2) and fdatasync(2), or syncfs(2) with `any`: nothing is
/// cached, so only the descriptor is checked (EINVAL for a pipe or the
/// console, as Linux says for objects that cannot be synced).
pub fn fsync(files: &FdTable, fd: u64, any: bool) -> SysResult {
    match files.get(fd)?.lock().object {
        Object::Pipe(_) | Object::Console if !any => Err(EINVAL),
        _ => Ok(0),
    }
}

/// ftruncate(2).
pub fn ftruncate(files: &FdTable, fd: u64, len: u64) -> SysResult {
    let file = files.get(fd)?;
    let f = file.lock();
    if (len as i64) < 0 {
        return Err(EINVAL);
    }
    match f.object {
        Object::File(ino) if f.writable() => truncate_ino(ino, len),
        Object::File(_) | Object::Console | Object::Dir(_) | Object::Pipe(_) | Object::Device(..) => Err(EINVAL),
    }
}

/// truncate(2).
pub fn truncate(root: u64, cwd: Ino, path: u64, len: u64) -> SysResult {
    let path = user_path(root, path)?;
    if (len as i64) < 0 {
        return Err(EINVAL);
    }
    let ino = super::with(|fs| fs.lookup(cwd, &path)).map_err(fs_err)?;
    truncate_ino(ino, len)
}

/// Sets file `ino`'s size; its shared mappings agree before and after.
fn truncate_ino(ino: Ino, len: u64) -> SysResult {
    crate::proc::mem::sync_to_file(ino);
    let r = super::with(|fs| fs.truncate(ino, len)).map(|()| 0).map_err(fs_err);
    crate::proc::mem::sync_from_file(ino);
    r
}

// ---- stat ----

/// The console as `stat` tells it: a character device, ttyS0.
fn pipe_stat() -> [u8; 144] {
    let mut st = [0u8; 144];
    put(&mut st, 0, DEV_PIPE);
    put(&mut st, 16, 1);
    st[24..28].copy_from_slice(&(S_IFIFO | 0o600).to_le_bytes());
    put(&mut st, 56, PAGE_SIZE);
    st
}

fn console_stat() -> [u8; 144] {
    let mut st = [0u8; 144];
    put(&mut st, 0, DEV_CONSOLE);
    put(&mut st, 8, 1);
    put(&mut st, 16, 1);
    st[24..28].copy_from_slice(&(S_IFCHR | 0o620).to_le_bytes());
    put(&mut st, 40, RDEV_TTYS0);
    put(&mut st, 56, 1024);
    st
}

/// `struct stat` as x86-64 Linux lays it out (144 bytes): st_dev, st_ino,
/// st_nlink (8 bytes each), st_mode, st_uid, st_gid (4 each, then 4 of
/// padding), st_rdev, st_size, st_blksize, st_blocks (8 each), then the
/// three timestamps (seconds and nanoseconds) and three unused words.
pub fn stat_bytes(s: &Stat) -> [u8; 144] {
    let mut st = [0u8; 144];
    put(&mut st, 0, DEV_RAMFS);
    put(&mut st, 8, s.ino);
    put(&mut st, 16, u64::from(s.nlink));
    st[24..28].copy_from_slice(&s.mode.to_le_bytes());
    st[28..32].copy_from_slice(&s.uid.to_le_bytes());
    st[32..36].copy_from_slice(&s.gid.to_le_bytes());
    put(&mut st, 40, s.rdev);
    put(&mut st, 48, s.size);
    put(&mut st, 56, PAGE_SIZE);
    // st_blocks counts 512-byte units of whole pages, as tmpfs does.
    let blocks = if s.kind == Kind::File { s.size.div_ceil(PAGE_SIZE) * (PAGE_SIZE / 512) } else { 0 };
    put(&mut st, 64, blocks);
    for (i, t) in [s.atime, s.mtime, s.ctime].iter().enumerate() {
        put(&mut st, 72 + i * 16, t.sec as u64);
        put(&mut st, 80 + i * 16, u64::from(t.nsec));
    }
    st
}

/// `path` from `dir`, its last component followed if it is a link when
/// `follow` says so.
pub(super) fn lookup(fs: &super::RamFsRef, dir: Ino, path: &[u8], follow: bool) -> Result<Ino, FsError> {
    if follow { fs.lookup(dir, path) } else { fs.lookup_nofollow(dir, path) }
}

fn put(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn stat_object(object: &Object) -> Result<[u8; 144], i64> {
    match *object {
        // The node `/proc/PID/fd` names, so that ttyname finds it.
        Object::Console => Ok(super::with(|fs| fs.lookup(ROOT, b"/dev/console").and_then(|ino| fs.stat(ino)))
            .map_or_else(|_| console_stat(), |s| stat_bytes(&s))),
        Object::Pipe(_) => Ok(pipe_stat()),
        Object::File(ino) | Object::Dir(ino) | Object::Device(_, ino) => {
            super::with(|fs| fs.stat(ino)).map(|s| stat_bytes(&s)).map_err(fs_err)
        }
    }
}

/// fstat(2).
pub fn fstat(root: u64, files: &FdTable, fd: u64, statbuf: u64) -> SysResult {
    let st = stat_object(&files.get(fd)?.lock().object)?;
    copy_to_user(root, statbuf, &st).map_err(|_| EFAULT)?;
    Ok(0)
}

/// stat(2), and lstat(2) (`follow` false: a link itself).
pub fn stat(root: u64, cwd: Ino, path: u64, statbuf: u64, follow: bool) -> SysResult {
    let path = user_path(root, path)?;
    let s = super::with(|fs| lookup(fs, cwd, &path, follow).and_then(|ino| fs.stat(ino))).map_err(fs_err)?;
    copy_to_user(root, statbuf, &stat_bytes(&s)).map_err(|_| EFAULT)?;
    Ok(0)
}

/// newfstatat(2): AT_EMPTY_PATH stats `dirfd` itself; AT_SYMLINK_NOFOLLOW
/// a link itself.
pub fn newfstatat(root: u64, files: &FdTable, cwd: Ino, dirfd: u64, path: u64, statbuf: u64, flags: u64) -> SysResult {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT) != 0 {
        return Err(EINVAL);
    }
    let st = stat_any(root, files, cwd, dirfd, path, flags)?;
    copy_to_user(root, statbuf, &st).map_err(|_| EFAULT)?;
    Ok(0)
}

/// What newfstatat and statx tell of `path` from `dirfd`, in stat(2)'s
/// layout: AT_EMPTY_PATH with an empty path is `dirfd` itself.
pub(super) fn stat_any(
    root: u64,
    files: &FdTable,
    cwd: Ino,
    dirfd: u64,
    path: u64,
    flags: u64,
) -> Result<[u8; 144], i64> {
    let path = user_path(root, path)?;
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        return if dirfd as u32 as i32 == AT_FDCWD {
            stat_object(&Object::Dir(cwd))
        } else {
            stat_object(&files.get(dirfd)?.lock().object)
        };
    }
    let base = base_dir(files, cwd, dirfd, &path)?;
    let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
    let s = super::with(|fs| lookup(fs, base, &path, follow).and_then(|ino| fs.stat(ino))).map_err(fs_err)?;
    Ok(stat_bytes(&s))
}

/// access(2): existence, and for X_OK an execute bit (the caller is root,
/// for whom reading and writing are always allowed).
pub fn access(root: u64, cwd: Ino, path: u64, mode: u64) -> SysResult {
    faccessat(root, &FdTable::empty(), cwd, AT_FDCWD as u64, path, mode)
}

/// faccessat(2).
pub fn faccessat(root: u64, files: &FdTable, cwd: Ino, dirfd: u64, path: u64, mode: u64) -> SysResult {
    const X_OK: u64 = 1;
    if mode & !7 != 0 {
        return Err(EINVAL);
    }
    let path = user_path(root, path)?;
    let base = base_dir(files, cwd, dirfd, &path)?;
    let s = super::with(|fs| fs.lookup(base, &path).and_then(|ino| fs.stat(ino))).map_err(fs_err)?;
    if mode & X_OK != 0 && s.kind == Kind::File && s.mode & 0o111 == 0 {
        return Err(EACCES);
    }
    Ok(0)
}

// ---- directories ----

/// Size of a `struct linux_dirent64` with a name of `len` bytes: d_ino (8),
/// d_off (8), d_reclen (2), d_type (1), the name and its NUL, padded to 8.
fn dirent_len(len: usize) -> usize {
    (19 + len + 1).next_multiple_of(8)
}

/// getdents64(2): as many whole entries as fit in `count` bytes, `.` and
/// `..` first; 0 at the end; EINVAL if not even the next one fits.
pub fn getdents64(root: u64, files: &FdTable, fd: u64, dirp: u64, count: u64) -> SysResult {
    let file = files.get(fd)?;
    let mut f = file.lock();
    let Object::Dir(ino) = f.object else { return Err(ENOTDIR) };
    if f.flags & O_PATH != 0 {
        return Err(EBADF);
    }
    // One call fills at most CHUNK bytes: fewer entries is still a full answer.
    let room = (count as u32 as usize).min(CHUNK);
    let start = f.offset;
    let (buf, last, pos, full) = super::with(|fs| {
        let mut buf = Vec::new();
        let mut last = None;
        let mut pos = start;
        let mut full = false;
        for e in fs.readdir_after(ino, f.dir_after.as_deref())? {
            let len = dirent_len(e.name.len());
            if buf.len() + len > room {
                full = true;
                break;
            }
            pos += 1;
            let at = buf.len();
            buf.resize(at + len, 0);
            put(&mut buf, at, e.ino);
            // d_off: where the next entry starts, for lseek (telldir/seekdir).
            put(&mut buf, at + 8, pos);
            buf[at + 16..at + 18].copy_from_slice(&(len as u16).to_le_bytes());
            buf[at + 18] = e.kind.dt();
            buf[at + 19..at + 19 + e.name.len()].copy_from_slice(e.name);
            last = Some(e.name.to_vec());
        }
        Ok((buf, last, pos, full))
    })
    .map_err(fs_err)?;
    if buf.is_empty() && full {
        return Err(EINVAL);
    }
    copy_to_user(root, dirp, &buf).map_err(|_| EFAULT)?;
    if last.is_some() {
        f.dir_after = last;
        f.offset = pos;
    }
    Ok(buf.len() as u64)
}

/// chdir(2): the new working directory, for the caller to store.
pub fn chdir(root: u64, cwd: Ino, path: u64) -> Result<Ino, i64> {
    let path = user_path(root, path)?;
    super::with(|fs| {
        let ino = fs.lookup(cwd, &path)?;
        match fs.stat(ino)?.kind {
            Kind::Dir => Ok(ino),
            _ => Err(FsError::NotDir),
        }
    })
    .map_err(fs_err)
}

/// fchdir(2): the directory open at `fd` becomes the working directory.
pub fn fchdir(files: &FdTable, fd: u64) -> Result<Ino, i64> {
    match files.get(fd)?.lock().object {
        Object::Dir(ino) => Ok(ino),
        _ => Err(ENOTDIR),
    }
}

/// getcwd(2): the path and its NUL into `buf`; returns their length.
pub fn getcwd(root: u64, cwd: Ino, buf: u64, size: u64) -> SysResult {
    let mut path = super::with(|fs| fs.path_of(cwd)).map_err(fs_err)?;
    path.push(0);
    if path.len() as u64 > size {
        return Err(ERANGE);
    }
    copy_to_user(root, buf, &path).map_err(|_| EFAULT)?;
    Ok(path.len() as u64)
}

/// mkdir(2).
pub fn mkdir(root: u64, cwd: Ino, path: u64, mode: u64) -> SysResult {
    mkdirat(root, &FdTable::empty(), cwd, AT_FDCWD as u64, path, mode)
}

/// mkdirat(2).
pub fn mkdirat(root: u64, files: &FdTable, cwd: Ino, dirfd: u64, path: u64, mode: u64) -> SysResult {
    let path = user_path(root, path)?;
    let base = base_dir(files, cwd, dirfd, &path)?;
    let mode = (mode as u32) & 0o1777 & !crate::proc::umask();
    super::with(|fs| fs.mkdir_path(base, &path, mode)).map(|_| 0).map_err(fs_err)
}

/// unlink(2).
pub fn unlink(root: u64, cwd: Ino, path: u64) -> SysResult {
    unlinkat(root, &FdTable::empty(), cwd, AT_FDCWD as u64, path, 0)
}

/// rmdir(2).
pub fn rmdir(root: u64, cwd: Ino, path: u64) -> SysResult {
    unlinkat(root, &FdTable::empty(), cwd, AT_FDCWD as u64, path, AT_REMOVEDIR)
}

/// unlinkat(2): a file, or with AT_REMOVEDIR an empty directory.
pub fn unlinkat(root: u64, files: &FdTable, cwd: Ino, dirfd: u64, path: u64, flags: u64) -> SysResult {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(EINVAL);
    }
    let path = user_path(root, path)?;
    let base = base_dir(files, cwd, dirfd, &path)?;
    super::with(|fs| if flags & AT_REMOVEDIR != 0 { fs.rmdir_path(base, &path) } else { fs.unlink_path(base, &path) })
        .map(|()| 0)
        .map_err(fs_err)
}

// ---- ioctl ----

/// ioctl(2): the terminal requests on the console (TCGETS and TCSETS move
/// the line discipline's termios; TIOCGWINSZ answers 80x24),
/// FIOCLEX, FIONCLEX and FIONBIO on any descriptor; ENOTTY otherwise.
pub fn ioctl(root: u64, files: &mut FdTable, fd: u64, request: u64, arg: u64) -> SysResult {
    let file = files.get(fd)?;
    match request as u32 as u64 {
        FIOCLEX | FIONCLEX => {
            files.slot_mut(fd)?.cloexec = request as u32 as u64 == FIOCLEX;
            return Ok(0);
        }
        FIONBIO => {
            let mut on = [0u8; 4];
            copy_from_user(root, &mut on, arg).map_err(|_| EFAULT)?;
            let mut f = file.lock();
            if u32::from_le_bytes(on) != 0 {
                f.flags |= O_NONBLOCK;
            } else {
                f.flags &= !O_NONBLOCK;
            }
            return Ok(0);
        }
        _ => {}
    }
    if file.lock().object != Object::Console {
        return Err(ENOTTY);
    }
    match request as u32 as u64 {
        TCGETS => copy_to_user(root, arg, &crate::tty::termios().to_bytes()).map(|()| 0).map_err(|_| EFAULT),
        TCSETS | TCSETSW | TCSETSF => {
            crate::proc::jobs::console_check(crate::proc::signal::SIGTTOU)?;
            let mut t = [0u8; klib::ldisc::TERMIOS_LEN];
            copy_from_user(root, &mut t, arg).map_err(|_| EFAULT)?;
            crate::tty::set_termios(klib::ldisc::Termios::from_bytes(&t), request as u32 as u64 == TCSETSF);
            Ok(0)
        }
        TIOCGWINSZ => {
            // 24 rows of 80 columns; no pixel sizes.
            let mut w = [0u8; 8];
            w[..2].copy_from_slice(&24u16.to_le_bytes());
            w[2..4].copy_from_slice(&80u16.to_le_bytes());
            copy_to_user(root, arg, &w).map(|()| 0).map_err(|_| EFAULT)
        }
        TIOCSWINSZ => Ok(0),
        TIOCGPGRP | TIOCGSID => {
            let id = if request as u32 as u64 == TIOCGPGRP {
                crate::proc::jobs::foreground()?
            } else {
                crate::proc::jobs::console_session()?
            };
            copy_to_user(root, arg, &(id as i32).to_le_bytes()).map(|()| 0).map_err(|_| EFAULT)
        }
        TIOCSPGRP => {
            crate::proc::jobs::console_check(crate::proc::signal::SIGTTOU)?;
            let mut b = [0u8; 4];
            copy_from_user(root, &mut b, arg).map_err(|_| EFAULT)?;
            crate::proc::jobs::set_foreground(i32::from_le_bytes(b))
        }
        TIOCSCTTY => crate::proc::jobs::take_console(),
        // Giving the console up: the session keeps it here (one console).
        TIOCNOTTY => Ok(0),
        _ => Err(ENOTTY),
    }
}

crate::ktest!(
    fn fd_table_allocates_the_lowest_free_and_closes_on_exec() {
        let mut t = FdTable::new();
        crate::kassert_eq!(t.count(), 3);
        let console = t.get(1).map_err(|e| alloc::format!("{e}"))?;
        crate::kassert!(Arc::ptr_eq(&console, &t.get(2).map_err(|e| alloc::format!("{e}"))?));
        crate::kassert_eq!(close(&mut t, 1), Ok(0));
        crate::kassert_eq!(close(&mut t, 1), Err(EBADF));
        crate::kassert_eq!(dup(&mut t, 2), Ok(1));
        crate::kassert_eq!(dup2(&mut t, 0, 7), Ok(7));
        crate::kassert_eq!(dup2(&mut t, 7, 7), Ok(7));
        crate::kassert_eq!(dup2(&mut t, 8, 7), Err(EBADF));
        crate::kassert_eq!(dup3(&mut t, 7, 7, 0), Err(EINVAL));
        crate::kassert_eq!(dup3(&mut t, 0, 9, u64::from(O_CLOEXEC)), Ok(9));
        crate::kassert_eq!(dup2(&mut t, 0, MAX_FDS as u64), Err(EBADF));
        crate::kassert_eq!(fcntl(&mut t, 0, F_DUPFD_CLOEXEC, 5), Ok(5));
        crate::kassert_eq!(fcntl(&mut t, 5, F_GETFD, 0), Ok(FD_CLOEXEC));
        crate::kassert_eq!(fcntl(&mut t, 0, F_GETFL, 0), Ok(u64::from(O_RDWR)));
        crate::kassert_eq!(fcntl(&mut t, 0, F_DUPFD, 4), Ok(4));
        crate::kassert_eq!(t.count(), 7);
        // fork: the child's table shares the descriptions.
        let child = t.clone();
        let (mine, theirs) = (t.get(4), child.get(4));
        crate::kassert!(matches!((mine, theirs), (Ok(a), Ok(b)) if Arc::ptr_eq(&a, &b)));
        t.close_on_exec();
        crate::kassert_eq!(t.count(), 5);
        crate::kassert_eq!(t.get(9).map(|_| ()), Err(EBADF));
        crate::kassert_eq!(t.get(5).map(|_| ()), Err(EBADF));
        crate::kassert_eq!(child.count(), 7);
        crate::kassert_eq!(t.get(u64::MAX).map(|_| ()), Err(EBADF));
        let mut full = FdTable::new();
        for _ in 3..MAX_FDS {
            dup(&mut full, 0).map_err(|e| alloc::format!("dup: {e}"))?;
        }
        crate::kassert_eq!(dup(&mut full, 0), Err(EMFILE));
        Ok(())
    }
);

/// A throwaway user address space for calling the system-call bodies from
/// the in-kernel tests.
mod scratch {
    use crate::mm::frames::{self, Frame};
    use crate::mm::vm::AddressSpace;
    use alloc::string::String;
    use alloc::vec::Vec;
    use nk_model::layout::PAGE_SIZE;
    use nk_model::pte::PteFlags;

    pub const BASE: u64 = 0x4000_0000;

    /// `pages` zeroed user pages at `BASE`, writable.
    pub struct Scratch {
        pub space: Option<AddressSpace>,
        frames: Vec<Frame>,
    }

    impl Scratch {
        pub fn new(pages: u64) -> Result<Self, String> {
            let mut space = AddressSpace::new().map_err(|e| alloc::format!("{e}"))?;
            let mut frames_ = Vec::new();
            let mut map = Vec::new();
            for i in 0..pages {
                let f = frames::alloc().ok_or("out of frames")?;
                f.fill(0);
                map.push((BASE + i * PAGE_SIZE, f.addr()));
                frames_.push(f);
            }
            let flags = PteFlags::USER | PteFlags::WRITABLE | PteFlags::NO_EXECUTE;
            let r = space.map(&map, flags).map_err(|e| alloc::format!("map: {e}"));
            let s = Scratch { space: Some(space), frames: frames_ };
            r.map(|()| s)
        }

        pub fn root(&self) -> u64 {
            self.space.as_ref().map_or(0, AddressSpace::root)
        }

        /// Puts `bytes` at `va` (with a NUL after them, for a path).
        pub fn put(&self, va: u64, bytes: &[u8]) -> Result<u64, String> {
            let mut with_nul = bytes.to_vec();
            with_nul.push(0);
            crate::mm::usercopy::copy_to_user(self.root(), va, &with_nul).map_err(|_| "put")?;
            Ok(va)
        }

        pub fn get(&self, va: u64, len: usize) -> Result<Vec<u8>, String> {
            let mut v = alloc::vec![0u8; len];
            crate::mm::usercopy::copy_from_user(self.root(), &mut v, va).map_err(|_| "get")?;
            Ok(v)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            drop(self.space.take());
            for f in self.frames.drain(..) {
                let _ = frames::free(f);
            }
        }
    }
}

crate::ktest!(
    fn file_calls_move_bytes_through_user_memory() {
        use scratch::{BASE, Scratch};
        let e = |e: i64| alloc::format!("errno {e}");
        let s = Scratch::new(4)?;
        let root = s.root();
        let mut t = FdTable::new();
        let cwd = ROOT;
        let (path, data, out) = (BASE, BASE + 0x1000, BASE + 0x2000);
        // A directory of our own, removed at the end.
        s.put(path, b"/ktest-files")?;
        let _ = unlinkat(root, &t, cwd, AT_FDCWD as u64, s.put(path, b"/ktest-files/f")?, 0);
        let _ = rmdir(root, cwd, s.put(path, b"/ktest-files")?);
        crate::kassert_eq!(mkdir(root, cwd, path, 0o777), Ok(0));
        crate::kassert_eq!(mkdir(root, cwd, path, 0o777), Err(17));
        let dir = chdir(root, cwd, path).map_err(e)?;
        crate::kassert_eq!(getcwd(root, dir, out, 100), Ok(13));
        crate::kassert!(s.get(out, 13)? == b"/ktest-files\0");
        crate::kassert_eq!(getcwd(root, dir, out, 12), Err(ERANGE));

        // Create, write, seek, read back.
        s.put(path, b"f")?;
        let flags = u64::from(O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC);
        let fd = openat(root, &mut t, dir, AT_FDCWD as u64, path, flags, 0o666).map_err(e)?;
        crate::kassert_eq!(fd, 3);
        crate::kassert_eq!(t.cloexec(fd), Ok(true));
        crate::kassert_eq!(openat(root, &mut t, dir, AT_FDCWD as u64, path, flags, 0o666), Err(17));
        s.put(data, b"hello, file")?;
        crate::kassert_eq!(write(root, &t, fd, data, 11), Ok(11));
        crate::kassert_eq!(lseek(&t, fd, (-4i64) as u64, SEEK_CUR), Ok(7));
        crate::kassert_eq!(read(root, &t, fd, out, 100), Ok(4));
        crate::kassert!(s.get(out, 4)? == b"file");
        crate::kassert_eq!(read(root, &t, fd, out, 100), Ok(0));
        crate::kassert_eq!(lseek(&t, fd, 20, SEEK_SET), Ok(20));
        crate::kassert_eq!(write(root, &t, fd, data, 1), Ok(1));
        crate::kassert_eq!(pread64(root, &t, fd, out, 100, 9), Ok(12));
        crate::kassert!(s.get(out, 12)? == b"le\0\0\0\0\0\0\0\0\0h");
        crate::kassert_eq!(lseek(&t, fd, 0, SEEK_END), Ok(21));
        crate::kassert_eq!(lseek(&t, fd, (-1i64) as u64, SEEK_SET), Err(EINVAL));
        crate::kassert_eq!(lseek(&t, fd, 0, SEEK_HOLE), Ok(21));
        crate::kassert_eq!(lseek(&t, 1, 0, SEEK_SET), Err(ESPIPE));

        // fstat: the 144-byte layout.
        crate::kassert_eq!(fstat(root, &t, fd, out), Ok(0));
        let st = s.get(out, 144)?;
        let word = |at: usize| u64::from_le_bytes(st[at..at + 8].try_into().unwrap_or_default());
        crate::kassert_eq!(word(16), 1); // st_nlink
        crate::kassert_eq!(u32::from_le_bytes(st[24..28].try_into().unwrap_or_default()), 0o100644); // umask 022
        crate::kassert_eq!(word(48), 21); // st_size
        crate::kassert_eq!(word(56), 4096); // st_blksize
        crate::kassert_eq!(word(64), 8); // st_blocks
        let ino = word(8);
        crate::kassert_eq!(newfstatat(root, &t, dir, AT_FDCWD as u64, path, out, 0), Ok(0));
        crate::kassert_eq!(word(8), ino);
        s.put(path, b"")?;
        crate::kassert_eq!(newfstatat(root, &t, dir, fd, path, out, AT_EMPTY_PATH), Ok(0));
        crate::kassert_eq!(newfstatat(root, &t, dir, fd, path, out, 0), Err(ENOENT));
        crate::kassert_eq!(fstat(root, &t, 1, out), Ok(0));
        let st = s.get(out, 144)?;
        crate::kassert_eq!(u32::from_le_bytes(st[24..28].try_into().unwrap_or_default()) & 0o170000, S_IFCHR);

        // O_APPEND and O_TRUNC through a second description.
        s.put(path, b"/ktest-files/f")?;
        let fd2 = open(root, &mut t, cwd, path, u64::from(O_WRONLY | O_APPEND), 0).map_err(e)?;
        crate::kassert_eq!(write(root, &t, fd2, data, 5), Ok(5));
        crate::kassert_eq!(lseek(&t, fd2, 0, SEEK_CUR), Ok(26));
        crate::kassert_eq!(read(root, &t, fd2, out, 1), Err(EBADF));
        crate::kassert_eq!(ftruncate(&t, fd2, 3), Ok(0));
        crate::kassert_eq!(pread64(root, &t, fd, out, 100, 0), Ok(3));
        let fd3 = open(root, &mut t, cwd, path, u64::from(O_RDONLY | O_TRUNC), 0).map_err(e)?;
        crate::kassert_eq!(pread64(root, &t, fd3, out, 100, 0), Ok(0));
        crate::kassert_eq!(write(root, &t, fd3, data, 1), Err(EBADF));

        // writev and readv.
        let iov = BASE + 0x3000;
        let mut v = Vec::new();
        for (base, len) in [(data, 5u64), (data + 7, 4)] {
            v.extend_from_slice(&base.to_le_bytes());
            v.extend_from_slice(&len.to_le_bytes());
        }
        crate::mm::usercopy::copy_to_user(root, iov, &v).map_err(|_| "iov")?;
        crate::kassert_eq!(pwrite64(root, &t, fd, data, 0, 0), Ok(0));
        crate::kassert_eq!(lseek(&t, fd, 0, SEEK_SET), Ok(0));
        crate::kassert_eq!(writev(root, &t, fd, iov, 2), Ok(9));
        crate::kassert_eq!(pread64(root, &t, fd, out, 100, 0), Ok(9));
        crate::kassert!(s.get(out, 9)? == b"hellofile");
        crate::kassert_eq!(writev(root, &t, fd, iov, IOV_MAX + 1), Err(EINVAL));
        crate::kassert_eq!(write(root, &t, fd, 0x10, 1), Err(EFAULT));
        // The console: an empty read returns at once (a real one waits for a line).
        crate::kassert_eq!(read(root, &t, 0, out, 0), Ok(0));

        // getdents64 sees `.`, `..` and `f`; then the end.
        let dfd =
            openat(root, &mut t, dir, AT_FDCWD as u64, s.put(path, b".")?, u64::from(O_DIRECTORY), 0).map_err(e)?;
        crate::kassert_eq!(getdents64(root, &t, dfd, out, 8), Err(EINVAL));
        let n = getdents64(root, &t, dfd, out, 4096).map_err(e)? as usize;
        let buf = s.get(out, n)?;
        let mut names = Vec::new();
        let mut at = 0;
        while at < n {
            let reclen = u16::from_le_bytes([buf[at + 16], buf[at + 17]]) as usize;
            let name: Vec<u8> = buf[at + 19..at + reclen].iter().copied().take_while(|&b| b != 0).collect();
            names.push((name, buf[at + 18]));
            at += reclen;
        }
        crate::kassert!(names == [(b".".to_vec(), 4), (b"..".to_vec(), 4), (b"f".to_vec(), 8)], "{:?}", names);
        crate::kassert_eq!(getdents64(root, &t, dfd, out, 4096), Ok(0));
        crate::kassert_eq!(lseek(&t, dfd, 2, SEEK_SET), Ok(2));
        crate::kassert_eq!(getdents64(root, &t, dfd, out, 4096), Ok(24));
        crate::kassert_eq!(getdents64(root, &t, fd, out, 4096), Err(ENOTDIR));
        crate::kassert_eq!(read(root, &t, dfd, out, 1), Err(EISDIR));
        crate::kassert_eq!(fchdir(&t, dfd), Ok(dir));
        crate::kassert_eq!(fchdir(&t, fd), Err(ENOTDIR));

        // An unlinked file stays readable while open.
        crate::kassert_eq!(unlinkat(root, &t, cwd, dfd, s.put(path, b"f")?, 0), Ok(0));
        crate::kassert_eq!(pread64(root, &t, fd, out, 100, 0), Ok(9));
        crate::kassert_eq!(unlink(root, dir, path), Err(ENOENT));
        crate::kassert_eq!(unlinkat(root, &t, cwd, dfd, path, 0x1), Err(EINVAL));

        // The console is a terminal; a file is not.
        crate::kassert_eq!(ioctl(root, &mut t, 1, TIOCGWINSZ, out), Ok(0));
        crate::kassert!(s.get(out, 4)? == [24, 0, 80, 0]);
        crate::kassert_eq!(ioctl(root, &mut t, 0, TCGETS, out), Ok(0));
        crate::kassert_eq!(ioctl(root, &mut t, fd, TCGETS, out), Err(ENOTTY));
        crate::kassert_eq!(ioctl(root, &mut t, 1, 0x1234, out), Err(ENOTTY));
        crate::kassert_eq!(ioctl(root, &mut t, fd, FIONCLEX, 0), Ok(0));
        crate::kassert_eq!(t.cloexec(fd), Ok(false));

        // Paths: too long, unterminated at the end of the mapping, bad.
        let long = alloc::vec![b'a'; PATH_MAX];
        crate::mm::usercopy::copy_to_user(root, BASE, &long).map_err(|_| "long")?;
        crate::kassert_eq!(open(root, &mut t, cwd, BASE, 0, 0), Err(ENAMETOOLONG));
        let end = BASE + 4 * PAGE_SIZE;
        crate::mm::usercopy::copy_to_user(root, end - 2, b"f\0").map_err(|_| "end")?;
        crate::kassert_eq!(user_path(root, end - 2), Ok(b"f".to_vec()));
        crate::mm::usercopy::copy_to_user(root, end - 2, b"ff").map_err(|_| "end")?;
        crate::kassert_eq!(user_path(root, end - 2), Err(EFAULT));
        crate::kassert_eq!(open(root, &mut t, cwd, 0, 0, 0), Err(EFAULT));
        s.put(path, b"")?;
        crate::kassert_eq!(open(root, &mut t, cwd, path, 0, 0), Err(ENOENT));
        crate::kassert_eq!(access(root, cwd, s.put(path, b"/ktest-files")?, 1), Ok(0));
        crate::kassert_eq!(access(root, cwd, path, 8), Err(EINVAL));

        // Clean up: the directory goes once it is empty.
        crate::kassert_eq!(rmdir(root, cwd, path), Ok(0));
        crate::kassert_eq!(getcwd(root, dir, out, 100), Err(ENOENT));
        for fd in [fd, fd2, fd3, dfd] {
            crate::kassert_eq!(close(&mut t, fd), Ok(0));
        }
        Ok(())
    }
);
