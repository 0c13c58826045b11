//! The calls that change names and inodes rather than bytes: rename,
//! link, symlink, readlink, chmod, chown, utimensat, and statx. Arguments
//! are the raw registers, read with their C types; paths are relative to
//! the working directory or a directory descriptor, as `files` resolves
//! them.

use super::Ino;
use super::files::errno::*;
use super::files::{self, AT_EMPTY_PATH, AT_FDCWD, AT_NO_AUTOMOUNT, AT_SYMLINK_NOFOLLOW, FdTable, Object, fs_err};
use crate::mm::usercopy::{copy_from_user, copy_to_user};
use klib::ramfs::{RenameMode, Time};

pub type SysResult = Result<u64, i64>;

const AT_SYMLINK_FOLLOW: u64 = 0x400;
const FDCWD: u64 = AT_FDCWD as u64;

/// A path argument and the directory it starts from.
fn at(root: u64, files: &FdTable, cwd: Ino, dirfd: u64, path: u64) -> Result<(Ino, alloc::vec::Vec<u8>), i64> {
    let path = files::user_path(root, path)?;
    Ok((files::base_dir(files, cwd, dirfd, &path)?, path))
}

/// renameat2(2) (and rename, renameat): RENAME_NOREPLACE and
/// RENAME_EXCHANGE; RENAME_WHITEOUT is EINVAL (no overlay file systems).
pub fn renameat2(root: u64, files: &FdTable, cwd: Ino, args: [u64; 5]) -> SysResult {
    let [olddir, old, newdir, new, flags] = args;
    let mode = RenameMode::from_flags(flags as u32).map_err(fs_err)?;
    let (obase, old) = at(root, files, cwd, olddir, old)?;
    let (nbase, new) = at(root, files, cwd, newdir, new)?;
    super::with(|fs| fs.rename_at(obase, &old, nbase, &new, mode)).map_err(fs_err)?;
    Ok(0)
}

pub fn rename(root: u64, cwd: Ino, old: u64, new: u64) -> SysResult {
    renameat2(root, &FdTable::empty(), cwd, [FDCWD, old, FDCWD, new, 0])
}

/// linkat(2) (and link): AT_SYMLINK_FOLLOW links what a link names.
pub fn linkat(root: u64, files: &FdTable, cwd: Ino, args: [u64; 5]) -> SysResult {
    let [olddir, old, newdir, new, flags] = args;
    if flags as u32 as u64 & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let (obase, old) = at(root, files, cwd, olddir, old)?;
    let (nbase, new) = at(root, files, cwd, newdir, new)?;
    let follow = flags & AT_SYMLINK_FOLLOW != 0;
    super::with(|fs| fs.link_at(obase, &old, nbase, &new, follow)).map_err(fs_err)?;
    Ok(0)
}

pub fn link(root: u64, cwd: Ino, old: u64, new: u64) -> SysResult {
    linkat(root, &FdTable::empty(), cwd, [FDCWD, old, FDCWD, new, 0])
}

/// symlinkat(2) (and symlink): a link at `linkpath` holding `target`,
/// which is not looked at.
pub fn symlinkat(root: u64, files: &FdTable, cwd: Ino, target: u64, newdir: u64, linkpath: u64) -> SysResult {
    let target = files::user_path(root, target)?;
    let (base, linkpath) = at(root, files, cwd, newdir, linkpath)?;
    super::with(|fs| fs.symlink(base, &target, &linkpath)).map_err(fs_err)?;
    Ok(0)
}

/// readlinkat(2) (and readlink): the target, cut to `bufsiz` bytes, with
/// no NUL; EINVAL if `bufsiz` is not positive or the path is no link.
pub fn readlinkat(root: u64, files: &FdTable, cwd: Ino, dirfd: u64, path: u64, buf: u64, bufsiz: i32) -> SysResult {
    let Ok(bufsiz) = usize::try_from(bufsiz) else { return Err(EINVAL) };
    if bufsiz == 0 {
        return Err(EINVAL);
    }
    let (base, path) = at(root, files, cwd, dirfd, path)?;
    let target =
        super::with(|fs| fs.readlink(base, &path).map(|t| t[..t.len().min(bufsiz)].to_vec())).map_err(fs_err)?;
    copy_to_user(root, buf, &target).map_err(|_| EFAULT)?;
    Ok(target.len() as u64)
}

/// The inode an open descriptor refers to (fchmod, fchown, futimens):
/// EBADF for a pipe or the console, which have no node here.
fn ino_of(files: &FdTable, fd: u64) -> Result<Ino, i64> {
    match files.get(fd)?.lock().object {
        Object::File(ino) | Object::Dir(ino) | Object::Device(_, ino) => Ok(ino),
        Object::Console | Object::Pipe(_) => Err(EBADF),
    }
}

/// fchmodat(2) (and chmod): Linux's call has no flags; the link's target
/// is changed.
pub fn fchmodat(root: u64, files: &FdTable, cwd: Ino, dirfd: u64, path: u64, mode: u64) -> SysResult {
    let (base, path) = at(root, files, cwd, dirfd, path)?;
    super::with(|fs| fs.lookup(base, &path).and_then(|ino| fs.chmod(ino, mode as u32 & 0o7777))).map_err(fs_err)?;
    Ok(0)
}

pub fn fchmod(files: &FdTable, fd: u64, mode: u64) -> SysResult {
    let ino = ino_of(files, fd)?;
    super::with(|fs| fs.chmod(ino, mode as u32 & 0o7777)).map_err(fs_err)?;
    Ok(0)
}

/// chown, fchown, lchown, fchownat: one user, so root (0) is the only
/// owner; -1 leaves one as it is. Another id is EINVAL, as Linux says of
/// an id with no mapping. The file must exist (the usual lookup errors).
pub fn fchownat(root: u64, files: &FdTable, cwd: Ino, dirfd: u64, path: u64, ids: [u64; 2], flags: u64) -> SysResult {
    if flags as u32 as u64 & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    check_ids(ids)?;
    let path = files::user_path(root, path)?;
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        return if dirfd as u32 as i32 == AT_FDCWD { Ok(0) } else { files.get(dirfd).map(|_| 0) };
    }
    let base = files::base_dir(files, cwd, dirfd, &path)?;
    let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
    super::with(|fs| files::lookup(fs, base, &path, follow)).map_err(fs_err)?;
    Ok(0)
}

pub fn fchown(files: &FdTable, fd: u64, ids: [u64; 2]) -> SysResult {
    check_ids(ids)?;
    files.get(fd).map(|_| 0)
}

fn check_ids(ids: [u64; 2]) -> Result<(), i64> {
    if ids.iter().all(|&id| id as u32 == 0 || id as u32 == u32::MAX) { Ok(()) } else { Err(EINVAL) }
}

const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

/// utimensat(2): `times` NULL sets both to now; each of the two
/// timespecs may be UTIME_NOW or UTIME_OMIT; a NULL path sets the file
/// open at `dirfd` (futimens).
pub fn utimensat(root: u64, files: &FdTable, cwd: Ino, args: [u64; 4]) -> SysResult {
    let [dirfd, path, times, flags] = args;
    if flags as u32 as u64 & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(EINVAL);
    }
    let now = super::wall_clock();
    let (atime, mtime) = if times == 0 {
        (Some(now), Some(now))
    } else {
        let mut b = [0u8; 32];
        copy_from_user(root, &mut b, times).map_err(|_| EFAULT)?;
        let word = |i: usize| i64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let one = |sec: i64, nsec: i64| match nsec {
            UTIME_NOW => Ok(Some(now)),
            UTIME_OMIT => Ok(None),
            n if (0..1_000_000_000).contains(&n) => Ok(Some(Time { sec, nsec: n as u32 })),
            _ => Err(EINVAL),
        };
        (one(word(0), word(1))?, one(word(2), word(3))?)
    };
    let ino = if path == 0 {
        if dirfd as u32 as i32 == AT_FDCWD {
            return Err(EFAULT);
        }
        ino_of(files, dirfd)?
    } else {
        let (base, path) = at(root, files, cwd, dirfd, path)?;
        let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
        super::with(|fs| files::lookup(fs, base, &path, follow)).map_err(fs_err)?
    };
    super::with(|fs| fs.utimens(ino, atime, mtime)).map_err(fs_err)?;
    Ok(0)
}

/// statx(2): what `stat` says, in `struct statx`, for the basic fields
/// (STATX_BASIC_STATS; no birth time is kept).
pub fn statx(root: u64, files: &FdTable, cwd: Ino, args: [u64; 5]) -> SysResult {
    const AT_STATX_SYNC_TYPE: u64 = 0x6000;
    const STATX_RESERVED: u32 = 0x8000_0000;
    const STATX_BASIC_STATS: u32 = 0x7ff;
    let [dirfd, path, flags, mask, buf] = args;
    let known = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE;
    if flags as u32 as u64 & !known != 0 || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE {
        return Err(EINVAL);
    }
    if mask as u32 & STATX_RESERVED != 0 {
        return Err(EINVAL);
    }
    // The stat(2) layout first, then its fields moved to statx's.
    let st = files::stat_any(root, files, cwd, dirfd, path, flags)?;
    let w = |at: usize| u64::from_le_bytes(st[at..at + 8].try_into().unwrap_or_default());
    let h = |at: usize| u32::from_le_bytes(st[at..at + 4].try_into().unwrap_or_default());
    let mut x = [0u8; 256];
    x[0..4].copy_from_slice(&STATX_BASIC_STATS.to_le_bytes());
    x[4..8].copy_from_slice(&(w(56) as u32).to_le_bytes());
    x[16..20].copy_from_slice(&(w(16) as u32).to_le_bytes());
    x[20..24].copy_from_slice(&h(28).to_le_bytes());
    x[24..28].copy_from_slice(&h(32).to_le_bytes());
    x[28..30].copy_from_slice(&(h(24) as u16).to_le_bytes());
    x[32..40].copy_from_slice(&w(8).to_le_bytes());
    x[40..48].copy_from_slice(&w(48).to_le_bytes());
    x[48..56].copy_from_slice(&w(64).to_le_bytes());
    // atime, (btime left 0), ctime, mtime: stat keeps atime, mtime, ctime.
    for (from, to) in [(72, 64), (104, 96), (88, 112)] {
        x[to..to + 8].copy_from_slice(&w(from).to_le_bytes());
        x[to + 8..to + 12].copy_from_slice(&(w(from + 8) as u32).to_le_bytes());
    }
    let (rdev, dev) = (w(40), w(0));
    for (at, v) in [(128, rdev >> 8), (132, rdev & 0xff), (136, dev >> 8), (140, dev & 0xff)] {
        x[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
    }
    copy_to_user(root, buf, &x).map_err(|_| EFAULT)?;
    Ok(0)
}

/// Which file system a name is in, for statfs: `/proc` is a subtree of
/// the RAM file system here, but programs (df, `stat -f`) expect Linux's
/// magic numbers.
#[derive(Clone, Copy)]
enum FsKind {
    Tmpfs,
    Proc,
    Pipe,
}

fn kind_of(path: &[u8]) -> FsKind {
    if path == b"/proc" || path.starts_with(b"/proc/") { FsKind::Proc } else { FsKind::Tmpfs }
}

/// `struct statfs` (120 bytes) for `kind`: the RAM file system counts
/// memory frames as its blocks, as tmpfs does; /proc and pipes have none.
fn statfs_bytes(kind: FsKind) -> [u8; 120] {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    const PROC_SUPER_MAGIC: u64 = 0x9fa0;
    const PIPEFS_MAGIC: u64 = 0x5049_5045;
    const ST_VALID: u64 = 0x20;
    let (free, total) = crate::mm::frames::stats();
    let (magic, blocks, bfree, files, ffree) = match kind {
        FsKind::Tmpfs => {
            let (f, d) = super::with(|fs| fs.counts());
            let used = (f + d) as u64;
            (TMPFS_MAGIC, total, free, used + free, free)
        }
        FsKind::Proc => (PROC_SUPER_MAGIC, 0, 0, 0, 0),
        FsKind::Pipe => (PIPEFS_MAGIC, 0, 0, 0, 0),
    };
    let page = nk_model::layout::PAGE_SIZE;
    let mut b = [0u8; 120];
    let words = [magic, page, blocks, bfree, bfree, files, ffree, 0, klib::ramfs::NAME_MAX as u64, page, ST_VALID];
    for (i, w) in words.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    b
}

/// statfs(2).
pub fn statfs(root: u64, cwd: Ino, path: u64, buf: u64) -> SysResult {
    let path = files::user_path(root, path)?;
    super::with(|fs| fs.lookup(cwd, &path)).map_err(fs_err)?;
    let st = statfs_bytes(kind_of(&files::full_name(cwd, &path).unwrap_or_default()));
    copy_to_user(root, buf, &st).map_err(|_| EFAULT)?;
    Ok(0)
}

/// fstatfs(2).
pub fn fstatfs(root: u64, files: &FdTable, fd: u64, buf: u64) -> SysResult {
    let (object, name) = {
        let file = files.get(fd)?;
        let f = file.lock();
        (f.object.clone(), f.name())
    };
    let kind = match object {
        Object::Pipe(_) => FsKind::Pipe,
        Object::Console => FsKind::Tmpfs,
        Object::Dir(ino) => kind_of(&super::with(|fs| fs.path_of(ino)).unwrap_or_default()),
        Object::File(_) | Object::Device(..) => kind_of(&name),
    };
    copy_to_user(root, buf, &statfs_bytes(kind)).map_err(|_| EFAULT)?;
    Ok(0)
}
