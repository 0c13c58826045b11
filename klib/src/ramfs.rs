//! A RAM file system: a tree of inodes (directories mapping names to inodes,
//! regular files holding bytes, symbolic links, character devices) with
//! Linux's path rules and error numbers.
//!
//! Pure and host-tested; the kernel keeps one behind a lock and puts its
//! system calls on top. Names and paths are bytes, as on Linux: any byte
//! but `/` and NUL may be in a name. Inode numbers are never reused, so a
//! stale number (a removed working directory) is `NotFound`, never another
//! file.
//!
//! Files and links unpacked from an archive borrow its bytes (`'a`) until
//! first written: the initrd stays in memory anyway, and the kernel heap is
//! small.
//!
//! Times come from the caller's clock (`set_clock`), since nothing here may
//! read hardware. Reads do not set the access time, as with `noatime`: a
//! read is `&self`, so many may run under a shared lock.

use crate::cpio;
use alloc::borrow::Cow;
use alloc::collections::{BTreeMap, btree_map};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Bound;

/// An inode number (`st_ino`).
pub type Ino = u64;

/// The root directory's inode.
pub const ROOT: Ino = 1;
/// The longest name a directory holds (Linux's NAME_MAX).
pub const NAME_MAX: usize = 255;
/// A path must be shorter than this, counting its NUL (Linux's PATH_MAX).
/// A symbolic link's target too.
pub const PATH_MAX: usize = 4096;
/// The largest file: far beyond the heap, but small enough that offsets
/// never overflow an `i64` (`off_t`) or a `usize`.
pub const MAX_FILE_SIZE: u64 = 1 << 40;
/// Symbolic links one lookup may follow before it is ELOOP (Linux's
/// MAXSYMLINKS).
pub const MAXSYMLINKS: usize = 40;

pub use cpio::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
/// File-type bits of a character device.
pub const S_IFCHR: u32 = 0o020000;
/// Permission bits, with set-user-ID, set-group-ID and sticky.
pub const S_IALLUGO: u32 = 0o7777;

/// What a directory entry's size is taken to be, as Linux's tmpfs does, so
/// that a directory's `st_size` grows with its entries.
const DIRENT_SIZE: u64 = 20;

/// Why an operation failed; each is one Linux errno.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FsError {
    /// ENOENT: no such file, an empty path, or a removed directory.
    NotFound,
    /// EEXIST
    Exists,
    /// ENOTDIR: a path component (or a trailing `/`) names a non-directory.
    NotDir,
    /// EISDIR: a file operation on a directory.
    IsDir,
    /// EINVAL
    Invalid,
    /// ENOTEMPTY
    NotEmpty,
    /// ENAMETOOLONG: a name over NAME_MAX or a path of PATH_MAX or more.
    NameTooLong,
    /// ENOSPC: the size limit is reached, or the heap refused.
    NoSpace,
    /// EFBIG: past MAX_FILE_SIZE.
    FileTooBig,
    /// EBUSY: removing or renaming the root, `.` or `..`.
    Busy,
    /// EACCES: no execute bit for `access(X_OK)` and the like.
    Access,
    /// ELOOP: more than MAXSYMLINKS links in one lookup, or a symbolic link
    /// where `O_NOFOLLOW` forbids one.
    Loop,
    /// EPERM: a hard link to a directory.
    Perm,
    /// EOPNOTSUPP: changing a symbolic link's mode.
    NotSupported,
}

impl FsError {
    /// The Linux error number (positive).
    pub fn errno(&self) -> i64 {
        match self {
            FsError::Perm => 1,
            FsError::NotFound => 2,
            FsError::Access => 13,
            FsError::Busy => 16,
            FsError::Exists => 17,
            FsError::NotDir => 20,
            FsError::IsDir => 21,
            FsError::Invalid => 22,
            FsError::FileTooBig => 27,
            FsError::NoSpace => 28,
            FsError::NameTooLong => 36,
            FsError::NotEmpty => 39,
            FsError::Loop => 40,
            FsError::NotSupported => 95,
        }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsError::Perm => "operation not permitted",
            FsError::NotFound => "no such file or directory",
            FsError::Access => "permission denied",
            FsError::Busy => "busy",
            FsError::Exists => "file exists",
            FsError::NotDir => "not a directory",
            FsError::IsDir => "is a directory",
            FsError::Invalid => "invalid argument",
            FsError::FileTooBig => "file too large",
            FsError::NoSpace => "no space left",
            FsError::NameTooLong => "file name too long",
            FsError::NotEmpty => "directory not empty",
            FsError::Loop => "too many levels of symbolic links",
            FsError::NotSupported => "operation not supported",
        })
    }
}

/// Why an archive could not be unpacked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LoadError<'a> {
    /// The archive itself is malformed.
    Archive(cpio::CpioError),
    /// Entry `name` does not fit the tree built so far (a file where a
    /// directory must be, a `..` component, a name too long, out of space).
    Entry { name: &'a str, error: FsError },
}

impl fmt::Display for LoadError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Archive(e) => e.fmt(f),
            LoadError::Entry { name, error } => write!(f, "ramfs: cannot unpack '{name}': {error}"),
        }
    }
}

/// The type of an inode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A character device: the tree keeps its number (`rdev`), the kernel
    /// decides what reading and writing it do.
    CharDev,
}

impl Kind {
    /// The `d_type` of a directory entry (DT_REG, DT_DIR, DT_LNK, DT_CHR).
    pub fn dt(self) -> u8 {
        match self {
            Kind::File => 8,
            Kind::Dir => 4,
            Kind::Symlink => 10,
            Kind::CharDev => 2,
        }
    }
}

/// A point in time, as `struct timespec`: seconds and nanoseconds since
/// the epoch of whatever clock the kernel gives (`set_clock`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default)]
pub struct Time {
    pub sec: i64,
    /// Below 1_000_000_000.
    pub nsec: u32,
}

impl Time {
    /// The epoch: every time while no clock is set.
    pub const ZERO: Time = Time { sec: 0, nsec: 0 };
}

/// What `stat` tells.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Stat {
    pub ino: Ino,
    /// Type and permission bits, as `st_mode`.
    pub mode: u32,
    /// Bytes in a file or a link's target; for a directory, a number that
    /// grows with its entries; 0 for a device.
    pub size: u64,
    pub nlink: u32,
    pub kind: Kind,
    /// Owner and group: always root (0), the only user.
    pub uid: u32,
    pub gid: u32,
    /// A character device's number (`makedev(major, minor)`), else 0.
    pub rdev: u64,
    /// Last read (set only by `utimens`: reads do not, as with `noatime`).
    pub atime: Time,
    /// Last change of the contents.
    pub mtime: Time,
    /// Last change of the contents or the inode (mode, links, names).
    pub ctime: Time,
}

/// One directory entry, `.` and `..` included.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DirEntry<'n> {
    pub name: &'n [u8],
    pub ino: Ino,
    pub kind: Kind,
}

/// How `open` treats the path (the `O_*` flags that concern the tree).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct OpenOptions {
    /// O_CREAT: make a regular file with `mode` if there is none. Through a
    /// dangling symbolic link, the file it names is made.
    pub create: bool,
    /// O_EXCL (with `create`): fail with EEXIST if there is one, a link
    /// included, which is then not followed.
    pub exclusive: bool,
    /// O_TRUNC: empty a regular file.
    pub truncate: bool,
    /// O_DIRECTORY: fail with ENOTDIR unless it is a directory.
    pub directory: bool,
    /// Opened for writing (O_WRONLY, O_RDWR): a directory is EISDIR.
    pub write: bool,
    /// O_NOFOLLOW: a symbolic link as the last component is ELOOP.
    pub nofollow: bool,
    /// Permission bits for a new file.
    pub mode: u32,
}

/// What `rename_at` does with the target (renameat2's flags).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum RenameMode {
    /// No flag: an existing target is replaced.
    #[default]
    Replace,
    /// RENAME_NOREPLACE: an existing target is EEXIST.
    NoReplace,
    /// RENAME_EXCHANGE: both names must exist; they swap inodes.
    Exchange,
}

impl RenameMode {
    /// The mode renameat2's `flags` ask for: EINVAL for both
    /// RENAME_NOREPLACE (1) and RENAME_EXCHANGE (2), for RENAME_WHITEOUT (4,
    /// which this file system does not do) and for unknown bits.
    pub fn from_flags(flags: u32) -> Result<Self, FsError> {
        match flags {
            0 => Ok(RenameMode::Replace),
            1 => Ok(RenameMode::NoReplace),
            2 => Ok(RenameMode::Exchange),
            _ => Err(FsError::Invalid),
        }
    }
}

enum Body<'a> {
    File(Cow<'a, [u8]>),
    Dir {
        /// The directory this one is in (itself, for the root).
        parent: Ino,
        entries: BTreeMap<Vec<u8>, Ino>,
    },
    /// The target, never empty, shorter than PATH_MAX, without NUL.
    Symlink(Cow<'a, [u8]>),
    CharDev {
        rdev: u64,
    },
}

struct Inode<'a> {
    /// Type and permission bits.
    mode: u32,
    /// Names that refer to it; for a directory 2 plus its subdirectories
    /// (its own `.` and each child's `..`), 0 once removed.
    nlink: u32,
    /// Open descriptions (`hold`): a removed inode lives until they close.
    opens: u32,
    atime: Time,
    mtime: Time,
    ctime: Time,
    body: Body<'a>,
}

impl Body<'_> {
    /// Heap bytes a file's contents or a link's target hold (their length
    /// once off the archive).
    fn heap_len(&self) -> u64 {
        match self {
            Body::File(Cow::Owned(v)) | Body::Symlink(Cow::Owned(v)) => v.len() as u64,
            Body::File(Cow::Borrowed(_))
            | Body::Symlink(Cow::Borrowed(_))
            | Body::Dir { .. }
            | Body::CharDev { .. } => 0,
        }
    }
}

impl Inode<'_> {
    fn kind(&self) -> Kind {
        match self.body {
            Body::File(_) => Kind::File,
            Body::Dir { .. } => Kind::Dir,
            Body::Symlink(_) => Kind::Symlink,
            Body::CharDev { .. } => Kind::CharDev,
        }
    }
}

/// The last component of a path, for the calls that create or remove it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Last<'p> {
    /// The path is `/` (or only slashes).
    Root,
    Dot,
    DotDot,
    Name(&'p [u8]),
}

/// A path split for the calls that create or remove its last component.
struct Parent<'p> {
    dir: Ino,
    last: Last<'p>,
    /// The path ends in `/`: the last component must be a directory.
    trailing_slash: bool,
}

/// What `open` found: the inode, or where O_CREAT makes one.
enum OpenTarget {
    Existing(Ino),
    Create { dir: Ino, name: Vec<u8> },
}

/// The first component of `path` and what follows it; `None` when only
/// slashes are left.
fn next_component(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let start = path.iter().position(|&b| b != b'/')?;
    let rest = &path[start..];
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    Some((&rest[..end], &rest[end..]))
}

/// The clock while the kernel has set none.
fn no_clock() -> Time {
    Time::ZERO
}

/// The file system.
pub struct RamFs<'a> {
    inodes: Inodes<'a>,
    /// File bytes and link targets held on the heap (borrowed archive bytes
    /// not counted).
    used: u64,
    /// Heap bytes files may hold in all: past it writes fail with ENOSPC.
    limit: u64,
    /// Where times come from.
    clock: fn() -> Time,
}

impl Default for RamFs<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RamFs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RamFs").field("inodes", &self.inodes.len()).field("used", &self.used).finish()
    }
}

impl<'a> RamFs<'a> {
    /// An empty tree: the root directory alone (mode 0755), no size limit
    /// beyond what the heap gives, every time 0 until `set_clock`.
    pub fn new() -> Self {
        let root = Inode {
            mode: S_IFDIR | 0o755,
            nlink: 2,
            opens: 0,
            atime: Time::ZERO,
            mtime: Time::ZERO,
            ctime: Time::ZERO,
            body: Body::Dir { parent: ROOT, entries: BTreeMap::new() },
        };
        let mut inodes = Inodes { slots: Vec::new(), free: Vec::new(), live: 0 };
        inodes.insert(root);
        RamFs { inodes, used: 0, limit: u64::MAX, clock: no_clock }
    }

    /// The tree a cpio newc archive unpacks to: its regular files,
    /// directories and symbolic links with their permission bits, missing
    /// parents made (0755). Other entries (devices, pipes) are skipped. A
    /// name given twice takes the last one, as unpacking does. Files and
    /// link targets borrow the archive's bytes.
    pub fn from_cpio(archive: &'a [u8]) -> Result<Self, LoadError<'a>> {
        let mut fs = RamFs::new();
        for entry in cpio::entries(archive) {
            let entry = entry.map_err(LoadError::Archive)?;
            let kind = match entry.mode & S_IFMT {
                S_IFREG => Kind::File,
                S_IFDIR => Kind::Dir,
                S_IFLNK => Kind::Symlink,
                _ => continue,
            };
            fs.unpack(entry.name, kind, entry.mode & S_IALLUGO, entry.data)
                .map_err(|error| LoadError::Entry { name: entry.name, error })?;
        }
        Ok(fs)
    }

    fn unpack(&mut self, name: &str, kind: Kind, perm: u32, data: &'a [u8]) -> Result<(), FsError> {
        let mut dir = ROOT;
        let mut parts = name.split('/').filter(|c| !c.is_empty() && *c != ".").peekable();
        if parts.peek().is_none() {
            // `.`: the root itself, a directory.
            return match kind {
                Kind::Dir => {
                    self.node_mut(ROOT)?.mode = S_IFDIR | perm;
                    Ok(())
                }
                _ => Err(FsError::IsDir),
            };
        }
        if kind == Kind::Symlink {
            check_target(data)?;
        }
        while let Some(part) = parts.next() {
            if part == ".." {
                return Err(FsError::Invalid);
            }
            let last = parts.peek().is_none();
            let existing = self.dir_entries(dir)?.get(part.as_bytes()).copied();
            match (existing, last) {
                (Some(ino), false) => {
                    // Through a link to a directory (`bin -> usr/bin`), as
                    // unpacking with path lookups does.
                    let ino = match self.node(ino)?.body {
                        Body::Symlink(_) => self.walk(dir, part.as_bytes(), true, &mut 0)?,
                        _ => ino,
                    };
                    if self.node(ino)?.kind() != Kind::Dir {
                        return Err(FsError::NotDir);
                    }
                    dir = ino;
                }
                (None, false) => dir = self.mkdir(dir, part, 0o755)?,
                (Some(ino), true) => {
                    let node = self.node_mut(ino)?;
                    match (&mut node.body, kind) {
                        (Body::File(_), Kind::File) => {
                            let old = node.body.heap_len();
                            node.body = Body::File(Cow::Borrowed(data));
                            node.mode = S_IFREG | perm;
                            self.used -= old;
                        }
                        (Body::Symlink(_), Kind::Symlink) => {
                            let old = node.body.heap_len();
                            node.body = Body::Symlink(Cow::Borrowed(data));
                            self.used -= old;
                        }
                        (Body::Dir { .. }, Kind::Dir) => node.mode = S_IFDIR | perm,
                        (Body::Dir { .. }, Kind::File) => return Err(FsError::IsDir),
                        (Body::File(_), Kind::Dir) => return Err(FsError::NotDir),
                        // A link where another kind was, or the reverse.
                        _ => return Err(FsError::Exists),
                    }
                }
                (None, true) => match kind {
                    Kind::Dir => {
                        self.mkdir(dir, part, perm)?;
                    }
                    Kind::File => {
                        let ino = self.create(dir, part, perm)?;
                        self.node_mut(ino)?.body = Body::File(Cow::Borrowed(data));
                    }
                    Kind::Symlink => {
                        self.check_new_name(dir, part.as_bytes())?;
                        self.insert_symlink(dir, part.as_bytes(), Cow::Borrowed(data))?;
                    }
                    // `from_cpio` passes no other kind.
                    Kind::CharDev => return Err(FsError::Invalid),
                },
            }
        }
        Ok(())
    }

    /// Caps the heap bytes files may hold (ENOSPC past it).
    pub fn set_limit(&mut self, bytes: u64) {
        self.limit = bytes;
    }

    /// Where times come from from now on: the kernel's wall clock. It is
    /// called with the file system borrowed, so it must not use it.
    pub fn set_clock(&mut self, clock: fn() -> Time) {
        self.clock = clock;
    }

    fn now(&self) -> Time {
        (self.clock)()
    }

    /// File bytes on the heap now (archive bytes not yet written are not).
    pub fn used_bytes(&self) -> u64 {
        self.used
    }

    /// (regular files, directories) in the tree, removed-but-open ones too;
    /// links and devices are in neither.
    pub fn counts(&self) -> (usize, usize) {
        let count = |kind| self.inodes.values().filter(|i| i.kind() == kind).count();
        (count(Kind::File), count(Kind::Dir))
    }

    fn node(&self, ino: Ino) -> Result<&Inode<'a>, FsError> {
        self.inodes.get(ino).ok_or(FsError::NotFound)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Inode<'a>, FsError> {
        self.inodes.get_mut(ino).ok_or(FsError::NotFound)
    }

    fn kind(&self, ino: Ino) -> Result<Kind, FsError> {
        Ok(self.node(ino)?.kind())
    }

    /// Sets the change time of `ino` to `now` (a link, a name, the mode).
    fn touch_ctime(&mut self, ino: Ino, now: Time) {
        if let Some(node) = self.inodes.get_mut(ino) {
            node.ctime = now;
        }
    }

    /// Sets the modification and change times of `ino` to `now` (its
    /// contents or, for a directory, its entries changed).
    fn touch_mtime(&mut self, ino: Ino, now: Time) {
        if let Some(node) = self.inodes.get_mut(ino) {
            node.mtime = now;
            node.ctime = now;
        }
    }

    /// A live directory's entries: ENOTDIR for a non-directory, ENOENT once
    /// removed.
    fn dir_entries(&self, dir: Ino) -> Result<&BTreeMap<Vec<u8>, Ino>, FsError> {
        let node = self.node(dir)?;
        match &node.body {
            Body::Dir { .. } if node.nlink == 0 => Err(FsError::NotFound),
            Body::Dir { entries, .. } => Ok(entries),
            _ => Err(FsError::NotDir),
        }
    }

    /// The directory `..` leads to from `dir`. A removed directory's parent
    /// may be gone too: then the root, where `..` ends anyway.
    fn parent_of(&self, dir: Ino) -> Result<Ino, FsError> {
        match self.node(dir)?.body {
            Body::Dir { parent, .. } if self.inodes.get(parent).is_some() => Ok(parent),
            Body::Dir { .. } => Ok(ROOT),
            _ => Err(FsError::NotDir),
        }
    }

    /// One step of a walk: `name` in directory `dir`, not followed if a link.
    fn step(&self, dir: Ino, name: &[u8]) -> Result<Ino, FsError> {
        match name {
            b"." => self.dir_entries(dir).map(|_| dir),
            b".." => {
                // Even a removed directory has a way out, as on Linux.
                if self.kind(dir)? != Kind::Dir {
                    return Err(FsError::NotDir);
                }
                self.parent_of(dir)
            }
            _ => {
                if name.len() > NAME_MAX {
                    return Err(FsError::NameTooLong);
                }
                self.dir_entries(dir)?.get(name).copied().ok_or(FsError::NotFound)
            }
        }
    }

    /// Where a walk of `path` starts: the root for an absolute path, else
    /// `cwd`, which must still be there.
    fn start(&self, cwd: Ino, path: &[u8]) -> Result<Ino, FsError> {
        if path.len() >= PATH_MAX {
            return Err(FsError::NameTooLong);
        }
        if path.is_empty() {
            return Err(FsError::NotFound);
        }
        let start = if path[0] == b'/' { ROOT } else { cwd };
        // A relative walk from a stale directory (removed and freed) finds nothing.
        self.node(start)?;
        Ok(start)
    }

    /// Walks `path` from `start`, following every symbolic link but the
    /// last component's unless `follow` (or a trailing `/`) asks; `links`
    /// counts the links followed, shared by all the walks of one lookup.
    ///
    /// Linux's rules: an absolute target restarts at the root, a relative
    /// one at the directory holding the link, and `..` is the parent of the
    /// directory reached, not a step back along the text. A trailing `/`,
    /// in the path or in the target of a link followed as its last
    /// component, asks for a directory.
    ///
    /// Iterative, with the texts still to walk on a fixed stack (one per
    /// link being followed), so a chain of links costs no recursion and no
    /// allocation.
    fn walk(&self, start: Ino, path: &[u8], follow: bool, links: &mut usize) -> Result<Ino, FsError> {
        let mut must_dir = path.ends_with(b"/");
        let follow_last = follow || must_dir;
        let mut pending: [&[u8]; MAXSYMLINKS + 1] = [&[]; MAXSYMLINKS + 1];
        pending[0] = path;
        let mut depth: usize = 1;
        let mut at = start;
        while let Some(top) = depth.checked_sub(1) {
            let Some((name, rest)) = next_component(pending[top]) else {
                depth = top;
                continue;
            };
            pending[top] = rest;
            let dir = at;
            at = self.step(dir, name)?;
            let Body::Symlink(target) = &self.node(at)?.body else { continue };
            let last = pending[..depth].iter().all(|p| next_component(p).is_none());
            if last && !follow_last {
                break;
            }
            *links += 1;
            if *links > MAXSYMLINKS {
                return Err(FsError::Loop);
            }
            if last && target.ends_with(b"/") {
                must_dir = true;
            }
            at = if target.first() == Some(&b'/') { ROOT } else { dir };
            *pending.get_mut(depth).ok_or(FsError::Loop)? = target;
            depth += 1;
        }
        if must_dir && self.kind(at)? != Kind::Dir {
            return Err(FsError::NotDir);
        }
        Ok(at)
    }

    fn resolve(&self, cwd: Ino, path: &[u8], follow: bool) -> Result<Ino, FsError> {
        let start = self.start(cwd, path)?;
        self.walk(start, path, follow, &mut 0)
    }

    /// The inode `path` names, from `cwd` when relative, following
    /// symbolic links (as `stat`). `.`, `..` and repeated slashes as on
    /// Linux; a trailing `/` needs a directory.
    pub fn lookup(&self, cwd: Ino, path: impl AsRef<[u8]>) -> Result<Ino, FsError> {
        self.resolve(cwd, path.as_ref(), true)
    }

    /// As `lookup`, but a symbolic link as the last component is the
    /// answer itself (as `lstat`, or `AT_SYMLINK_NOFOLLOW`). A trailing `/`
    /// still follows it.
    pub fn lookup_nofollow(&self, cwd: Ino, path: impl AsRef<[u8]>) -> Result<Ino, FsError> {
        self.resolve(cwd, path.as_ref(), false)
    }

    /// Walks all but the last component of `path` (following links in
    /// them), which must lead to a directory. The last component is left
    /// as written: the calls that create or remove it never follow it.
    fn parent<'p>(&self, cwd: Ino, path: &'p [u8], links: &mut usize) -> Result<Parent<'p>, FsError> {
        let start = self.start(cwd, path)?;
        let end = path.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        let trimmed = &path[..end];
        let split = trimmed.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        let (prefix, name) = trimmed.split_at(split);
        let last = match name {
            b"" => Last::Root,
            b"." => Last::Dot,
            b".." => Last::DotDot,
            name => Last::Name(name),
        };
        let dir = if next_component(prefix).is_some() { self.walk(start, prefix, true, links)? } else { start };
        if self.kind(dir)? != Kind::Dir {
            return Err(FsError::NotDir);
        }
        if let Last::Name(name) = last
            && name.len() > NAME_MAX
        {
            return Err(FsError::NameTooLong);
        }
        Ok(Parent { dir, last, trailing_slash: path.ends_with(b"/") })
    }

    /// The directory and name a call that makes `path` works on (EEXIST
    /// for `/`, `.`, `..` or a name taken, ENOENT for a trailing `/`,
    /// which only `mkdir` takes).
    fn new_entry<'p>(&self, cwd: Ino, path: &'p [u8]) -> Result<(Ino, &'p [u8]), FsError> {
        let p = self.parent(cwd, path, &mut 0)?;
        let Last::Name(name) = p.last else { return Err(FsError::Exists) };
        self.check_new_name(p.dir, name)?;
        if p.trailing_slash {
            return Err(FsError::NotFound);
        }
        Ok((p.dir, name))
    }

    fn check_new_name(&self, dir: Ino, name: &[u8]) -> Result<(), FsError> {
        match name {
            b"" => return Err(FsError::NotFound),
            b"." | b".." => return Err(FsError::Exists),
            _ if name.contains(&b'/') || name.contains(&0) => return Err(FsError::Invalid),
            _ if name.len() > NAME_MAX => return Err(FsError::NameTooLong),
            _ => {}
        }
        if self.dir_entries(dir)?.contains_key(name) {
            return Err(FsError::Exists);
        }
        Ok(())
    }

    /// A new inode with `mode` and `body`, its three times now.
    fn new_inode(&self, mode: u32, nlink: u32, body: Body<'a>) -> Inode<'a> {
        let now = self.now();
        Inode { mode, nlink, opens: 0, atime: now, mtime: now, ctime: now, body }
    }

    fn insert(&mut self, dir: Ino, name: &[u8], inode: Inode<'a>) -> Result<Ino, FsError> {
        let is_dir = inode.kind() == Kind::Dir;
        let now = inode.ctime;
        // Checked before the inode goes in, so a failure leaves nothing behind.
        self.node(dir)?;
        let ino = self.inodes.insert(inode).ok_or(FsError::NoSpace)?;
        let parent = self.node_mut(dir)?;
        if let Body::Dir { entries, .. } = &mut parent.body {
            entries.insert(name.to_vec(), ino);
        }
        if is_dir {
            parent.nlink += 1;
        }
        parent.mtime = now;
        parent.ctime = now;
        Ok(ino)
    }

    /// A new empty regular file `name` in `dir` with permission bits `mode`.
    pub fn create(&mut self, dir: Ino, name: impl AsRef<[u8]>, mode: u32) -> Result<Ino, FsError> {
        let name = name.as_ref();
        self.check_new_name(dir, name)?;
        let inode = self.new_inode(S_IFREG | (mode & S_IALLUGO), 1, Body::File(Cow::Borrowed(&[])));
        self.insert(dir, name, inode)
    }

    /// A new empty directory `name` in `dir` with permission bits `mode`.
    pub fn mkdir(&mut self, dir: Ino, name: impl AsRef<[u8]>, mode: u32) -> Result<Ino, FsError> {
        let name = name.as_ref();
        self.check_new_name(dir, name)?;
        let body = Body::Dir { parent: dir, entries: BTreeMap::new() };
        let inode = self.new_inode(S_IFDIR | (mode & S_IALLUGO), 2, body);
        self.insert(dir, name, inode)
    }

    /// A new character device `name` in `dir` with permission bits `mode`
    /// and number `rdev` (`makedev(major, minor)`: /dev/null is 1, 3).
    pub fn mknod_chr(&mut self, dir: Ino, name: impl AsRef<[u8]>, mode: u32, rdev: u64) -> Result<Ino, FsError> {
        let name = name.as_ref();
        self.check_new_name(dir, name)?;
        let inode = self.new_inode(S_IFCHR | (mode & S_IALLUGO), 1, Body::CharDev { rdev });
        self.insert(dir, name, inode)
    }

    /// `symlink(2)`: a new symbolic link at `linkpath` holding `target`,
    /// which is stored as given and resolved only when followed (so it may
    /// dangle). ENOENT for an empty target, ENAMETOOLONG for one of
    /// PATH_MAX bytes or more, EEXIST if `linkpath` names anything (a
    /// dangling link too).
    pub fn symlink(&mut self, cwd: Ino, target: impl AsRef<[u8]>, linkpath: impl AsRef<[u8]>) -> Result<Ino, FsError> {
        let target = target.as_ref();
        check_target(target)?;
        let (dir, name) = self.new_entry(cwd, linkpath.as_ref())?;
        if self.used.saturating_add(target.len() as u64) > self.limit {
            return Err(FsError::NoSpace);
        }
        let mut owned = Vec::new();
        owned.try_reserve_exact(target.len()).map_err(|_| FsError::NoSpace)?;
        owned.extend_from_slice(target);
        self.insert_symlink(dir, name, Cow::Owned(owned))
    }

    /// Puts a link with a checked `target` in `dir` (the name checked too).
    fn insert_symlink(&mut self, dir: Ino, name: &[u8], target: Cow<'a, [u8]>) -> Result<Ino, FsError> {
        let inode = self.new_inode(S_IFLNK | 0o777, 1, Body::Symlink(target));
        let heap = inode.body.heap_len();
        let ino = self.insert(dir, name, inode)?;
        self.used += heap;
        Ok(ino)
    }

    /// `readlink(2)`: the target of the symbolic link at `path`, which is
    /// not followed (EINVAL if it is not a link).
    pub fn readlink(&self, cwd: Ino, path: impl AsRef<[u8]>) -> Result<&[u8], FsError> {
        self.link_target(self.lookup_nofollow(cwd, path)?)
    }

    /// The target of symbolic link `ino` (EINVAL if it is not one).
    pub fn link_target(&self, ino: Ino) -> Result<&[u8], FsError> {
        match &self.node(ino)?.body {
            Body::Symlink(target) => Ok(target),
            _ => Err(FsError::Invalid),
        }
    }

    /// `link(2)`: a new name `new` for the inode at `old`, a symbolic link
    /// itself rather than what it names (`linkat` without
    /// AT_SYMLINK_FOLLOW).
    pub fn link(&mut self, cwd: Ino, old: impl AsRef<[u8]>, new: impl AsRef<[u8]>) -> Result<(), FsError> {
        self.link_at(cwd, old, cwd, new, false)
    }

    /// `linkat(2)`: `old` from `old_dir`, `new` from `new_dir` when
    /// relative; `follow` is AT_SYMLINK_FOLLOW. EEXIST if `new` names
    /// anything, then EPERM if `old` is a directory.
    pub fn link_at(
        &mut self,
        old_dir: Ino,
        old: impl AsRef<[u8]>,
        new_dir: Ino,
        new: impl AsRef<[u8]>,
        follow: bool,
    ) -> Result<(), FsError> {
        let ino = self.resolve(old_dir, old.as_ref(), follow)?;
        let (dir, name) = self.new_entry(new_dir, new.as_ref())?;
        let node = self.node(ino)?;
        if node.kind() == Kind::Dir {
            return Err(FsError::Perm);
        }
        // A removed inode has no name to be reached by (unless open, and
        // Linux refuses those too).
        let nlink = node.nlink.checked_add(1).filter(|_| node.nlink != 0).ok_or(FsError::NotFound)?;
        let name = name.to_vec();
        let now = self.now();
        if let Some(Inode { body: Body::Dir { entries, .. }, .. }) = self.inodes.get_mut(dir) {
            entries.insert(name, ino);
        }
        self.touch_mtime(dir, now);
        let node = self.node_mut(ino)?;
        node.nlink = nlink;
        node.ctime = now;
        Ok(())
    }

    /// Removes the non-directory `name` from `dir` (EISDIR for a
    /// directory); a link is removed, not what it names. The inode's bytes
    /// go with its last name, or if it is open when the last open
    /// description does (`release`).
    pub fn unlink(&mut self, dir: Ino, name: impl AsRef<[u8]>) -> Result<(), FsError> {
        let name = name.as_ref();
        if matches!(name, b"." | b"..") {
            return Err(FsError::IsDir);
        }
        let ino = self.step(dir, name)?;
        if self.kind(ino)? == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let now = self.now();
        self.remove_entry(dir, name);
        self.touch_mtime(dir, now);
        let node = self.node_mut(ino)?;
        node.nlink = node.nlink.saturating_sub(1);
        node.ctime = now;
        self.free_if_unused(ino);
        Ok(())
    }

    /// Removes the empty directory `name` from `dir`.
    pub fn rmdir(&mut self, dir: Ino, name: impl AsRef<[u8]>) -> Result<(), FsError> {
        let name = name.as_ref();
        match name {
            b"." => return Err(FsError::Invalid),
            b".." => return Err(FsError::NotEmpty),
            _ => {}
        }
        let ino = self.step(dir, name)?;
        if !self.dir_entries(ino)?.is_empty() {
            return Err(FsError::NotEmpty);
        }
        let now = self.now();
        self.remove_entry(dir, name);
        self.node_mut(dir)?.nlink -= 1;
        self.touch_mtime(dir, now);
        // Dead: no entries, no new ones, lookups in it fail (see `dir_entries`).
        self.node_mut(ino)?.nlink = 0;
        self.free_if_unused(ino);
        Ok(())
    }

    fn remove_entry(&mut self, dir: Ino, name: &[u8]) {
        if let Some(Inode { body: Body::Dir { entries, .. }, .. }) = self.inodes.get_mut(dir) {
            entries.remove(name);
        }
    }

    fn free_if_unused(&mut self, ino: Ino) {
        let unused = ino != ROOT && self.inodes.get(ino).is_some_and(|i| i.nlink == 0 && i.opens == 0);
        if unused && let Some(node) = self.inodes.remove(ino) {
            self.used -= node.body.heap_len();
        }
    }

    /// `rename(2)`: `rename_at` with both paths from `cwd`, replacing.
    pub fn rename(&mut self, cwd: Ino, old: impl AsRef<[u8]>, new: impl AsRef<[u8]>) -> Result<(), FsError> {
        self.rename_at(cwd, old, cwd, new, RenameMode::Replace)
    }

    /// `renameat2(2)`: gives the inode `old` names (from `old_dir`) the
    /// name `new` (from `new_dir`). Neither last component is followed: a
    /// link is renamed, not what it names. Linux's checks, in its order:
    /// EBUSY if either last component is `/`, `.` or `..`; ENOENT without
    /// `old`; EEXIST for an existing `new` under NoReplace, ENOENT without
    /// one under Exchange; ENOTDIR for a trailing `/` on a non-directory;
    /// EINVAL for moving a directory into itself, ENOTEMPTY (EINVAL under
    /// Exchange) for `new` an ancestor of `old`; then nothing at all if
    /// both names are one inode (hard links); else, replacing, ENOTDIR for
    /// a directory onto a non-directory, EISDIR for the reverse, ENOTEMPTY
    /// for a directory with entries. A replaced inode loses a name and is
    /// freed as `unlink` frees.
    pub fn rename_at(
        &mut self,
        old_dir: Ino,
        old: impl AsRef<[u8]>,
        new_dir: Ino,
        new: impl AsRef<[u8]>,
        mode: RenameMode,
    ) -> Result<(), FsError> {
        let (old, new) = (old.as_ref(), new.as_ref());
        let op = self.parent(old_dir, old, &mut 0)?;
        let np = self.parent(new_dir, new, &mut 0)?;
        let (Last::Name(old_name), Last::Name(new_name)) = (op.last, np.last) else { return Err(FsError::Busy) };
        let src = self.dir_entries(op.dir)?.get(old_name).copied().ok_or(FsError::NotFound)?;
        let dst = self.dir_entries(np.dir)?.get(new_name).copied();
        let src_dir = self.kind(src)? == Kind::Dir;
        let dst_dir = match dst {
            Some(d) => Some(self.kind(d)? == Kind::Dir),
            None => None,
        };
        match (mode, dst_dir) {
            (RenameMode::NoReplace, Some(_)) => return Err(FsError::Exists),
            (RenameMode::Exchange, None) => return Err(FsError::NotFound),
            (RenameMode::Exchange, Some(false)) if np.trailing_slash => return Err(FsError::NotDir),
            _ => {}
        }
        if !src_dir && (op.trailing_slash || (mode != RenameMode::Exchange && np.trailing_slash)) {
            return Err(FsError::NotDir);
        }
        if op.dir != np.dir {
            if self.is_ancestor(src, np.dir) {
                return Err(FsError::Invalid);
            }
            if let Some(dst) = dst
                && self.is_ancestor(dst, op.dir)
            {
                return Err(if mode == RenameMode::Exchange { FsError::Invalid } else { FsError::NotEmpty });
            }
        }
        let Some(dst) = dst else {
            self.check_new_name(np.dir, new_name)?;
            self.move_entry(&op, old_name, &np, new_name, src, src_dir);
            return Ok(());
        };
        if src == dst {
            return Ok(());
        }
        let dst_dir = dst_dir == Some(true);
        if mode == RenameMode::Exchange {
            self.exchange(&op, old_name, &np, new_name, (src, src_dir), (dst, dst_dir));
            return Ok(());
        }
        match (src_dir, dst_dir) {
            (true, false) => return Err(FsError::NotDir),
            (false, true) => return Err(FsError::IsDir),
            (true, true) if !self.dir_entries(dst)?.is_empty() => return Err(FsError::NotEmpty),
            _ => {}
        }
        // Nothing below fails: the replaced inode goes, then the move.
        let now = self.now();
        self.remove_entry(np.dir, new_name);
        if let Some(node) = self.inodes.get_mut(dst) {
            node.nlink = if dst_dir { 0 } else { node.nlink.saturating_sub(1) };
            node.ctime = now;
        }
        if dst_dir && let Some(parent) = self.inodes.get_mut(np.dir) {
            parent.nlink = parent.nlink.saturating_sub(1);
        }
        self.move_entry(&op, old_name, &np, new_name, src, src_dir);
        self.free_if_unused(dst);
        Ok(())
    }

    /// Whether directory `dir` is `ancestor` or below it.
    fn is_ancestor(&self, ancestor: Ino, dir: Ino) -> bool {
        let mut at = dir;
        // Bounded by the tree's height, which is below the inode count.
        for _ in 0..=self.inodes.len() {
            if at == ancestor {
                return true;
            }
            match self.parent_of(at) {
                Ok(up) if up != at => at = up,
                _ => return false,
            }
        }
        false
    }

    /// The last step of a rename: `old_name` leaves `op.dir`, `new_name`
    /// (free by now) in `np.dir` names `src`.
    fn move_entry(
        &mut self,
        op: &Parent<'_>,
        old_name: &[u8],
        np: &Parent<'_>,
        new_name: &[u8],
        src: Ino,
        src_dir: bool,
    ) {
        let name = new_name.to_vec();
        let now = self.now();
        self.remove_entry(op.dir, old_name);
        if let Some(Inode { body: Body::Dir { entries, .. }, .. }) = self.inodes.get_mut(np.dir) {
            entries.insert(name, src);
        }
        if src_dir && op.dir != np.dir {
            self.reparent(src, op.dir, np.dir);
        }
        self.touch_mtime(op.dir, now);
        self.touch_mtime(np.dir, now);
        self.touch_ctime(src, now);
    }

    /// Directory `ino` moves from `from` to `to`: its `..` and both link
    /// counts follow.
    fn reparent(&mut self, ino: Ino, from: Ino, to: Ino) {
        if let Some(Inode { body: Body::Dir { parent, .. }, .. }) = self.inodes.get_mut(ino) {
            *parent = to;
        }
        if let Some(node) = self.inodes.get_mut(from) {
            node.nlink = node.nlink.saturating_sub(1);
        }
        if let Some(node) = self.inodes.get_mut(to) {
            node.nlink += 1;
        }
    }

    /// RENAME_EXCHANGE once checked: the two names swap inodes.
    fn exchange(
        &mut self,
        op: &Parent<'_>,
        old_name: &[u8],
        np: &Parent<'_>,
        new_name: &[u8],
        (src, src_dir): (Ino, bool),
        (dst, dst_dir): (Ino, bool),
    ) {
        let now = self.now();
        let mut set = |dir: Ino, name: &[u8], ino: Ino| {
            if let Some(Inode { body: Body::Dir { entries, .. }, .. }) = self.inodes.get_mut(dir)
                && let Some(slot) = entries.get_mut(name)
            {
                *slot = ino;
            }
        };
        set(op.dir, old_name, dst);
        set(np.dir, new_name, src);
        if op.dir != np.dir {
            if src_dir {
                self.reparent(src, op.dir, np.dir);
            }
            if dst_dir {
                self.reparent(dst, np.dir, op.dir);
            }
        }
        self.touch_mtime(op.dir, now);
        self.touch_mtime(np.dir, now);
        self.touch_ctime(src, now);
        self.touch_ctime(dst, now);
    }

    /// Counts an open description of `ino`: it outlives its last name.
    pub fn hold(&mut self, ino: Ino) -> Result<(), FsError> {
        let node = self.node_mut(ino)?;
        node.opens += 1;
        Ok(())
    }

    /// Ends what `hold` began; a removed inode with no opens left is freed.
    pub fn release(&mut self, ino: Ino) {
        if let Some(node) = self.inodes.get_mut(ino) {
            node.opens = node.opens.saturating_sub(1);
            self.free_if_unused(ino);
        }
    }

    /// What `stat` (or, for a link's own inode, `lstat`) tells of `ino`.
    pub fn stat(&self, ino: Ino) -> Result<Stat, FsError> {
        let node = self.node(ino)?;
        let (size, rdev) = match &node.body {
            Body::File(bytes) | Body::Symlink(bytes) => (bytes.len() as u64, 0),
            Body::Dir { entries, .. } => ((entries.len() as u64 + 2) * DIRENT_SIZE, 0),
            Body::CharDev { rdev } => (0, *rdev),
        };
        Ok(Stat {
            ino,
            mode: node.mode,
            size,
            nlink: node.nlink,
            kind: node.kind(),
            uid: 0,
            gid: 0,
            rdev,
            atime: node.atime,
            mtime: node.mtime,
            ctime: node.ctime,
        })
    }

    /// `chmod(2)` on the inode: sets the permission bits (S_IALLUGO) of
    /// `mode`, keeps the type. A symbolic link's mode is always 0777:
    /// EOPNOTSUPP, as Linux's `fchmodat(AT_SYMLINK_NOFOLLOW)`.
    pub fn chmod(&mut self, ino: Ino, mode: u32) -> Result<(), FsError> {
        let now = self.now();
        let node = self.node_mut(ino)?;
        if node.kind() == Kind::Symlink {
            return Err(FsError::NotSupported);
        }
        node.mode = (node.mode & S_IFMT) | (mode & S_IALLUGO);
        node.ctime = now;
        Ok(())
    }

    /// `utimensat(2)` on the inode: sets the access and modification times
    /// given (`None` is UTIME_OMIT; the caller turns UTIME_NOW into its
    /// clock's time) and, if either is, the change time to now.
    pub fn utimens(&mut self, ino: Ino, atime: Option<Time>, mtime: Option<Time>) -> Result<(), FsError> {
        let now = self.now();
        let node = self.node_mut(ino)?;
        if atime.is_none() && mtime.is_none() {
            return Ok(());
        }
        if let Some(t) = atime {
            node.atime = t;
        }
        if let Some(t) = mtime {
            node.mtime = t;
        }
        node.ctime = now;
        Ok(())
    }

    /// The file's bytes, for reading in place (EISDIR for a directory,
    /// EINVAL for a link or a device).
    pub fn data(&self, ino: Ino) -> Result<&[u8], FsError> {
        match &self.node(ino)?.body {
            Body::File(bytes) => Ok(bytes),
            Body::Dir { .. } => Err(FsError::IsDir),
            Body::Symlink(_) | Body::CharDev { .. } => Err(FsError::Invalid),
        }
    }

    /// Reads from `offset` into `buf`; the count, 0 at or past the end.
    pub fn read(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        let data = self.data(ino)?;
        let Ok(start) = usize::try_from(offset) else { return Ok(0) };
        let Some(rest) = data.get(start..) else { return Ok(0) };
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    /// Writes `data` at `offset`, growing the file and filling a hole with
    /// zeros. Near the size limit as much as fits is written (the count
    /// says how much); ENOSPC when nothing fits. Sets the modification and
    /// change times unless nothing is written.
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<usize, FsError> {
        if data.is_empty() {
            // Linux neither grows the file nor checks the offset then.
            self.data(ino)?;
            return Ok(0);
        }
        if offset >= MAX_FILE_SIZE {
            return Err(FsError::FileTooBig);
        }
        let now = self.now();
        let want = offset + (data.len() as u64).min(MAX_FILE_SIZE - offset);
        let (bytes, max) = self.owned(ino)?;
        let old = bytes.len();
        let mut end = want.min(max.max(old as u64)) as usize;
        if end > bytes.capacity()
            && bytes.try_reserve(end - old).is_err()
            && bytes.try_reserve_exact(end - old).is_err()
        {
            // The heap refused: what room there is must do.
            end = end.min(bytes.capacity());
        }
        let start = offset as usize;
        if end <= start {
            return Err(FsError::NoSpace);
        }
        if end > old {
            bytes.resize(end, 0);
        }
        bytes[start..end].copy_from_slice(&data[..end - start]);
        let new = bytes.len();
        self.used = self.used + new as u64 - old as u64;
        self.touch_mtime(ino, now);
        Ok(end - start)
    }

    /// Sets the file's size, cutting it or padding it with zeros, and its
    /// modification and change times, even at the same size (as
    /// `ftruncate` and O_TRUNC do). EISDIR for a directory, EINVAL for a
    /// link or a device.
    pub fn truncate(&mut self, ino: Ino, size: u64) -> Result<(), FsError> {
        if size > MAX_FILE_SIZE {
            return Err(FsError::FileTooBig);
        }
        let now = self.now();
        match self.node(ino)?.body {
            Body::File(Cow::Borrowed(_)) if size == 0 => {
                // Emptying an archive file needs no copy of it first.
                self.node_mut(ino)?.body = Body::File(Cow::Borrowed(&[]));
                self.touch_mtime(ino, now);
                return Ok(());
            }
            Body::File(_) => {}
            Body::Dir { .. } => return Err(FsError::IsDir),
            Body::Symlink(_) | Body::CharDev { .. } => return Err(FsError::Invalid),
        }
        let (bytes, max) = self.owned(ino)?;
        let old = bytes.len();
        let size = size as usize;
        if size > old {
            if size as u64 > max || bytes.try_reserve_exact(size - old).is_err() {
                return Err(FsError::NoSpace);
            }
            bytes.resize(size, 0);
        } else {
            bytes.truncate(size);
            if bytes.capacity() / 2 > size {
                // Give a cut file's memory back to the heap.
                bytes.shrink_to_fit();
            }
        }
        self.used = self.used + size as u64 - old as u64;
        self.touch_mtime(ino, now);
        Ok(())
    }

    /// `ino`'s bytes on the heap (copied off the archive on the first
    /// change), and the length the limit lets it grow to. Never panics on a
    /// refused allocation: that is ENOSPC.
    fn owned(&mut self, ino: Ino) -> Result<(&mut Vec<u8>, u64), FsError> {
        let Self { inodes, used, limit, .. } = self;
        let node = inodes.get_mut(ino).ok_or(FsError::NotFound)?;
        let bytes = match &mut node.body {
            Body::File(bytes) => bytes,
            Body::Dir { .. } => return Err(FsError::IsDir),
            Body::Symlink(_) | Body::CharDev { .. } => return Err(FsError::Invalid),
        };
        if let Cow::Borrowed(b) = *bytes {
            let mut v = Vec::new();
            let n = b.len() as u64;
            if used.saturating_add(n) > *limit || v.try_reserve_exact(b.len()).is_err() {
                return Err(FsError::NoSpace);
            }
            v.extend_from_slice(b);
            *used += n;
            *bytes = Cow::Owned(v);
        }
        // Owned by now, so this allocates nothing.
        let v = bytes.to_mut();
        let others = *used - v.len() as u64;
        Ok((v, limit.saturating_sub(others)))
    }

    /// The entries of `dir` after the one named `after` (all of them from
    /// `None`): `.` and `..` first, then the names in byte order. The order
    /// is stable and an entry removed or added meanwhile shifts nothing, so
    /// a reader can resume from the last name it saw.
    pub fn readdir_after(&self, dir: Ino, after: Option<&[u8]>) -> Result<ReadDir<'_, 'a>, FsError> {
        let entries = self.dir_entries(dir)?;
        let (dots, rest) = match after {
            None => (0, entries.range::<[u8], _>(..)),
            Some(b".") => (1, entries.range::<[u8], _>(..)),
            Some(b"..") => (2, entries.range::<[u8], _>(..)),
            Some(name) => (2, entries.range::<[u8], _>((Bound::Excluded(name), Bound::Unbounded))),
        };
        Ok(ReadDir { fs: self, dir, dots, rest })
    }

    /// Every entry of `dir`, as `readdir_after(dir, None)`.
    pub fn readdir(&self, dir: Ino) -> Result<ReadDir<'_, 'a>, FsError> {
        self.readdir_after(dir, None)
    }

    /// The absolute path of directory `dir`, found by walking `..` (ENOENT
    /// once it is removed).
    pub fn path_of(&self, dir: Ino) -> Result<Vec<u8>, FsError> {
        let mut names: Vec<&[u8]> = Vec::new();
        let mut at = dir;
        let mut len = 0;
        while at != ROOT {
            let node = self.node(at)?;
            let Body::Dir { parent, .. } = node.body else { return Err(FsError::NotDir) };
            if node.nlink == 0 {
                return Err(FsError::NotFound);
            }
            let name = self
                .dir_entries(parent)?
                .iter()
                .find(|&(_, &i)| i == at)
                .map(|(n, _)| n.as_slice())
                .ok_or(FsError::NotFound)?;
            len += name.len() + 1;
            if len >= PATH_MAX {
                return Err(FsError::NameTooLong);
            }
            names.push(name);
            at = parent;
        }
        if names.is_empty() {
            return Ok(b"/".to_vec());
        }
        let mut path = Vec::with_capacity(len);
        for name in names.iter().rev() {
            path.push(b'/');
            path.extend_from_slice(name);
        }
        Ok(path)
    }

    /// `open(2)`'s path work: finds (or with `create` makes) the inode
    /// `path` names and applies `truncate`. The caller counts the open
    /// description (`hold`). A link as the last component is followed
    /// unless `nofollow` (then ELOOP); a device opens like a file, the
    /// caller tells them apart by `Stat::kind`.
    pub fn open(&mut self, cwd: Ino, path: impl AsRef<[u8]>, how: &OpenOptions) -> Result<Ino, FsError> {
        let ino = match self.open_target(cwd, path.as_ref(), how)? {
            OpenTarget::Existing(ino) => ino,
            OpenTarget::Create { dir, name } => self.create(dir, name, how.mode)?,
        };
        // Linux's order: O_DIRECTORY, then the kind (may_open).
        let kind = self.kind(ino)?;
        if how.directory && kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        match kind {
            Kind::Symlink => return Err(FsError::Loop),
            Kind::Dir if how.write || how.truncate => return Err(FsError::IsDir),
            Kind::File if how.truncate => self.truncate(ino, 0)?,
            _ => {}
        }
        Ok(ino)
    }

    /// The inode `open` opens, or where it makes one.
    fn open_target(&self, cwd: Ino, path: &[u8], how: &OpenOptions) -> Result<OpenTarget, FsError> {
        if !how.create {
            return Ok(OpenTarget::Existing(self.resolve(cwd, path, !how.nofollow)?));
        }
        let (mut base, mut path) = (cwd, path);
        let mut links = 0;
        loop {
            let p = self.parent(base, path, &mut links)?;
            let name = match p.last {
                // O_CREAT on `/`, `.`, `..`: directories.
                Last::Root | Last::Dot | Last::DotDot => return Err(FsError::IsDir),
                // A trailing `/` asks for a directory, which O_CREAT never makes.
                Last::Name(_) if p.trailing_slash => return Err(FsError::IsDir),
                Last::Name(name) => name,
            };
            let ino = match self.step(p.dir, name) {
                Ok(ino) => ino,
                Err(FsError::NotFound) => {
                    // In a removed directory there is nothing to create in.
                    self.dir_entries(p.dir)?;
                    return Ok(OpenTarget::Create { dir: p.dir, name: name.to_vec() });
                }
                Err(e) => return Err(e),
            };
            if how.exclusive {
                return Err(FsError::Exists);
            }
            match &self.node(ino)?.body {
                Body::Dir { .. } => return Err(FsError::IsDir),
                // Followed, the link may name nothing yet: then its
                // target is what gets made.
                Body::Symlink(target) if !how.nofollow => {
                    links += 1;
                    if links > MAXSYMLINKS {
                        return Err(FsError::Loop);
                    }
                    (base, path) = (p.dir, target);
                }
                _ => return Ok(OpenTarget::Existing(ino)),
            }
        }
    }

    /// `mkdir(2)`: a new directory at `path` (a trailing `/` is fine).
    pub fn mkdir_path(&mut self, cwd: Ino, path: impl AsRef<[u8]>, mode: u32) -> Result<Ino, FsError> {
        let p = self.parent(cwd, path.as_ref(), &mut 0)?;
        match p.last {
            Last::Root | Last::Dot | Last::DotDot => Err(FsError::Exists),
            Last::Name(name) => self.mkdir(p.dir, name, mode),
        }
    }

    /// `unlink(2)`: removes the file, link or device at `path`.
    pub fn unlink_path(&mut self, cwd: Ino, path: impl AsRef<[u8]>) -> Result<(), FsError> {
        let p = self.parent(cwd, path.as_ref(), &mut 0)?;
        let Last::Name(name) = p.last else { return Err(FsError::IsDir) };
        if p.trailing_slash {
            // `file/` names no file; `dir/` is still a directory; `link/`
            // is not looked through.
            return match self.kind(self.step(p.dir, name)?)? {
                Kind::Dir => Err(FsError::IsDir),
                _ => Err(FsError::NotDir),
            };
        }
        self.unlink(p.dir, name)
    }

    /// `rmdir(2)`: removes the empty directory at `path` (a link to one is
    /// ENOTDIR).
    pub fn rmdir_path(&mut self, cwd: Ino, path: impl AsRef<[u8]>) -> Result<(), FsError> {
        let p = self.parent(cwd, path.as_ref(), &mut 0)?;
        match p.last {
            Last::Root => Err(FsError::Busy),
            Last::Dot => Err(FsError::Invalid),
            Last::DotDot => Err(FsError::NotEmpty),
            Last::Name(name) => {
                if self.kind(self.step(p.dir, name)?)? != Kind::Dir {
                    return Err(FsError::NotDir);
                }
                self.rmdir(p.dir, name)
            }
        }
    }
}

/// A link target `symlink(2)` takes: not empty (ENOENT), shorter than
/// PATH_MAX (ENAMETOOLONG), and without NUL, which no C string holds.
fn check_target(target: &[u8]) -> Result<(), FsError> {
    if target.is_empty() {
        return Err(FsError::NotFound);
    }
    if target.len() >= PATH_MAX {
        return Err(FsError::NameTooLong);
    }
    if target.contains(&0) {
        return Err(FsError::Invalid);
    }
    Ok(())
}

/// The inode table: slots reused through a free list, each with a
/// generation, and an inode number of `generation << 32 | (slot + 1)`, so
/// a number is never handed out twice and a stale one finds nothing.
///
/// Why not a `BTreeMap<Ino, Inode>`: its `remove`, compiled for the
/// kernel, tested a spilled flag with `cmp byte [rsp+0xf], 1; jne`, whose
/// bytes `0f 01 75` decode as `lmsw`, which the kernel's image scanner
/// refuses in every link order (docs/scanner.md).
struct Inodes<'a> {
    slots: Vec<Slot<'a>>,
    /// Free slots, reused last-freed first.
    free: Vec<u32>,
    live: usize,
}

struct Slot<'a> {
    generation: u32,
    inode: Option<Inode<'a>>,
}

impl<'a> Inodes<'a> {
    fn split(ino: Ino) -> Option<(usize, u32)> {
        let slot = (ino as u32).checked_sub(1)?;
        Some((slot as usize, (ino >> 32) as u32))
    }

    fn get(&self, ino: Ino) -> Option<&Inode<'a>> {
        let (i, generation) = Self::split(ino)?;
        let slot = self.slots.get(i)?;
        if slot.generation != generation {
            return None;
        }
        slot.inode.as_ref()
    }

    fn get_mut(&mut self, ino: Ino) -> Option<&mut Inode<'a>> {
        let (i, generation) = Self::split(ino)?;
        let slot = self.slots.get_mut(i)?;
        if slot.generation != generation {
            return None;
        }
        slot.inode.as_mut()
    }

    /// A number for `inode`; `None` when every number is spent.
    fn insert(&mut self, inode: Inode<'a>) -> Option<Ino> {
        let i = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                let i = self.slots.len();
                // Slot numbers are 32 bits, and `+ 1` must not wrap.
                if i >= u32::MAX as usize {
                    return None;
                }
                self.slots.push(Slot { generation: 0, inode: None });
                i
            }
        };
        let slot = &mut self.slots[i];
        slot.inode = Some(inode);
        self.live += 1;
        Some(u64::from(slot.generation) << 32 | (i as u64 + 1))
    }

    fn remove(&mut self, ino: Ino) -> Option<Inode<'a>> {
        let (i, generation) = Self::split(ino)?;
        let slot = self.slots.get_mut(i)?;
        if slot.generation != generation {
            return None;
        }
        let inode = slot.inode.take()?;
        self.live -= 1;
        // The next inode here gets a new number; a slot whose numbers are
        // all used is retired.
        if let Some(next) = slot.generation.checked_add(1) {
            slot.generation = next;
            self.free.push(i as u32);
        }
        Some(inode)
    }

    fn len(&self) -> usize {
        self.live
    }

    fn iter(&self) -> impl Iterator<Item = (Ino, &Inode<'a>)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let ino = u64::from(s.generation) << 32 | (i as u64 + 1);
            s.inode.as_ref().map(|inode| (ino, inode))
        })
    }

    fn values(&self) -> impl Iterator<Item = &Inode<'a>> {
        self.iter().map(|(_, inode)| inode)
    }
}

/// The iterator behind `readdir_after`.
pub struct ReadDir<'s, 'a> {
    fs: &'s RamFs<'a>,
    dir: Ino,
    /// How many of `.` and `..` are behind us.
    dots: u8,
    rest: btree_map::Range<'s, Vec<u8>, Ino>,
}

impl fmt::Debug for ReadDir<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir").field("dir", &self.dir).field("dots", &self.dots).finish()
    }
}

impl<'s> Iterator for ReadDir<'s, '_> {
    type Item = DirEntry<'s>;

    fn next(&mut self) -> Option<DirEntry<'s>> {
        match self.dots {
            0 => {
                self.dots = 1;
                Some(DirEntry { name: b".", ino: self.dir, kind: Kind::Dir })
            }
            1 => {
                self.dots = 2;
                let ino = self.fs.parent_of(self.dir).unwrap_or(ROOT);
                Some(DirEntry { name: b"..", ino, kind: Kind::Dir })
            }
            _ => {
                let (name, &ino) = self.rest.next()?;
                let kind = self.fs.inodes.get(ino).map_or(Kind::File, Inode::kind);
                Some(DirEntry { name, ino, kind })
            }
        }
    }
}

#[cfg(test)]
impl RamFs<'_> {
    /// Panics unless the tree is consistent: every entry leads to a live
    /// inode, link counts and parents agree with the entries, an inode no
    /// entry names is removed and still open, and `used` is the heap bytes.
    fn check(&self) {
        let mut named: BTreeMap<Ino, u32> = BTreeMap::new();
        for (ino, node) in self.inodes.iter() {
            if let Body::Dir { entries, .. } = &node.body {
                assert!(node.nlink != 0 || entries.is_empty(), "removed directory {ino} has entries");
                let mut subdirs = 0;
                for (name, &child) in entries {
                    assert!(!name.is_empty() && name.len() <= NAME_MAX && !name.contains(&b'/'));
                    assert!(name != b"." && name != b"..");
                    let c = self.inodes.get(child).expect("entry leads to a live inode");
                    *named.entry(child).or_default() += 1;
                    if let Body::Dir { parent, .. } = c.body {
                        assert_eq!(parent, ino, "parent of {child}");
                        subdirs += 1;
                    }
                }
                if node.nlink != 0 {
                    assert_eq!(node.nlink, 2 + subdirs, "link count of directory {ino}");
                }
            }
        }
        for (ino, node) in self.inodes.iter() {
            let names = named.get(&ino).copied().unwrap_or(0);
            match &node.body {
                _ if ino == ROOT => assert_eq!(names, 0),
                Body::Dir { .. } => assert_eq!(u32::from(node.nlink != 0), names, "names of directory {ino}"),
                _ => assert_eq!(node.nlink, names, "link count of {ino}"),
            }
            if let Body::Symlink(target) = &node.body {
                assert_eq!(node.mode, S_IFLNK | 0o777, "mode of link {ino}");
                assert!(check_target(target).is_ok(), "target of link {ino}");
            }
            if names == 0 && ino != ROOT {
                assert!(node.opens > 0, "inode {ino} is neither named nor open: leaked");
            }
        }
        let used: u64 = self.inodes.values().map(|i| i.body.heap_len()).sum();
        assert_eq!(self.used, used);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::{S_IFLNK, write_newc};
    use alloc::string::{String, ToString};
    use alloc::vec;
    use proptest::prelude::*;

    extern crate std;

    const ENOENT: Result<Ino, FsError> = Err(FsError::NotFound);

    fn names(fs: &RamFs<'_>, dir: Ino) -> Vec<String> {
        fs.readdir(dir).unwrap().map(|e| String::from_utf8(e.name.to_vec()).unwrap()).collect()
    }

    fn read_all(fs: &RamFs<'_>, ino: Ino) -> Vec<u8> {
        fs.data(ino).unwrap().to_vec()
    }

    /// /etc/motd ("hi"), /bin/init, /usr/lib (empty dir).
    fn sample() -> RamFs<'static> {
        let mut fs = RamFs::new();
        let etc = fs.mkdir(ROOT, "etc", 0o755).unwrap();
        let motd = fs.create(etc, "motd", 0o644).unwrap();
        fs.write(motd, 0, b"hi").unwrap();
        let bin = fs.mkdir(ROOT, "bin", 0o755).unwrap();
        fs.create(bin, "init", 0o755).unwrap();
        let usr = fs.mkdir(ROOT, "usr", 0o755).unwrap();
        fs.mkdir(usr, "lib", 0o755).unwrap();
        fs.check();
        fs
    }

    #[test]
    fn errno_numbers_are_linux_ones() {
        let want = [
            (FsError::NotFound, 2),
            (FsError::Access, 13),
            (FsError::Busy, 16),
            (FsError::Exists, 17),
            (FsError::NotDir, 20),
            (FsError::IsDir, 21),
            (FsError::Invalid, 22),
            (FsError::FileTooBig, 27),
            (FsError::NoSpace, 28),
            (FsError::NameTooLong, 36),
            (FsError::NotEmpty, 39),
            (FsError::Perm, 1),
            (FsError::Loop, 40),
            (FsError::NotSupported, 95),
        ];
        for (e, n) in want {
            assert_eq!(e.errno(), n, "{e:?}");
        }
        assert_eq!(FsError::NotEmpty.to_string(), "directory not empty");
    }

    #[test]
    fn a_new_tree_is_an_empty_root() {
        let fs = RamFs::new();
        let st = fs.stat(ROOT).unwrap();
        assert_eq!((st.ino, st.mode, st.nlink, st.kind), (ROOT, S_IFDIR | 0o755, 2, Kind::Dir));
        let e: Vec<_> = fs.readdir(ROOT).unwrap().collect();
        assert_eq!(
            e,
            [DirEntry { name: b".", ino: ROOT, kind: Kind::Dir }, DirEntry { name: b"..", ino: ROOT, kind: Kind::Dir }]
        );
        assert_eq!(fs.counts(), (0, 1));
        assert_eq!(fs.path_of(ROOT).unwrap(), b"/");
        fs.check();
    }

    #[test]
    fn lookup_walks_absolute_and_relative_paths() {
        let fs = sample();
        let etc = fs.lookup(ROOT, "/etc").unwrap();
        let motd = fs.lookup(ROOT, "/etc/motd").unwrap();
        assert_eq!(fs.lookup(ROOT, "etc/motd"), Ok(motd));
        assert_eq!(fs.lookup(etc, "motd"), Ok(motd));
        assert_eq!(fs.lookup(etc, "./motd"), Ok(motd));
        assert_eq!(fs.lookup(etc, "../etc/./motd"), Ok(motd));
        assert_eq!(fs.lookup(etc, "/etc//motd"), Ok(motd));
        assert_eq!(fs.lookup(etc, "///etc///motd"), Ok(motd));
        assert_eq!(fs.lookup(etc, "."), Ok(etc));
        assert_eq!(fs.lookup(etc, ".."), Ok(ROOT));
        assert_eq!(fs.lookup(etc, "/"), Ok(ROOT));
        assert_eq!(fs.lookup(etc, "etc/"), ENOENT);
        assert_eq!(fs.lookup(ROOT, "etc/"), Ok(etc));
        assert_eq!(fs.lookup(ROOT, "etc/."), Ok(etc));
        // `..` at the root stays there.
        assert_eq!(fs.lookup(ROOT, "../../.."), Ok(ROOT));
        assert_eq!(fs.lookup(ROOT, "/../etc"), Ok(etc));
        let lib = fs.lookup(ROOT, "usr/lib").unwrap();
        assert_eq!(fs.lookup(lib, "../../etc/motd"), Ok(motd));
    }

    #[test]
    fn lookup_errors_are_linux_ones() {
        let fs = sample();
        assert_eq!(fs.lookup(ROOT, ""), ENOENT);
        assert_eq!(fs.lookup(ROOT, "nope"), ENOENT);
        assert_eq!(fs.lookup(ROOT, "etc/nope"), ENOENT);
        assert_eq!(fs.lookup(ROOT, "nope/motd"), ENOENT);
        assert_eq!(fs.lookup(ROOT, "etc/motd/"), Err(FsError::NotDir));
        assert_eq!(fs.lookup(ROOT, "etc/motd/."), Err(FsError::NotDir));
        assert_eq!(fs.lookup(ROOT, "etc/motd/.."), Err(FsError::NotDir));
        assert_eq!(fs.lookup(ROOT, "etc/motd/x"), Err(FsError::NotDir));
        let long = "x".repeat(NAME_MAX + 1);
        assert_eq!(fs.lookup(ROOT, &long), Err(FsError::NameTooLong));
        assert_eq!(fs.lookup(ROOT, "x".repeat(NAME_MAX)), ENOENT);
        // PATH_MAX counts the NUL: 4095 bytes may be a path, 4096 may not.
        let path = "/".repeat(PATH_MAX - 4) + "etc";
        assert_eq!(path.len(), PATH_MAX - 1);
        assert!(fs.lookup(ROOT, &path).is_ok());
        assert_eq!(fs.lookup(ROOT, path + "/"), Err(FsError::NameTooLong));
        // Non-UTF-8 names are names like any other.
        assert_eq!(fs.lookup(ROOT, b"\xff\xfe"), ENOENT);
        // A stale working directory.
        assert_eq!(fs.lookup(999, "etc"), ENOENT);
        assert_eq!(fs.lookup(999, "/etc"), fs.lookup(ROOT, "etc"));
    }

    #[test]
    fn create_and_mkdir_refuse_what_linux_refuses() {
        let mut fs = sample();
        let etc = fs.lookup(ROOT, "etc").unwrap();
        let motd = fs.lookup(ROOT, "etc/motd").unwrap();
        assert_eq!(fs.create(etc, "motd", 0o644), Err(FsError::Exists));
        assert_eq!(fs.mkdir(etc, "motd", 0o755), Err(FsError::Exists));
        assert_eq!(fs.create(etc, ".", 0o644), Err(FsError::Exists));
        assert_eq!(fs.mkdir(etc, "..", 0o755), Err(FsError::Exists));
        assert_eq!(fs.create(etc, "", 0o644), ENOENT);
        assert_eq!(fs.create(etc, "a/b", 0o644), Err(FsError::Invalid));
        assert_eq!(fs.create(etc, "x".repeat(NAME_MAX + 1), 0o644), Err(FsError::NameTooLong));
        assert_eq!(fs.create(motd, "x", 0o644), Err(FsError::NotDir));
        assert!(fs.create(etc, "x".repeat(NAME_MAX), 0o644).is_ok());
        let f = fs.create(etc, b"\xffodd", 0o4777).unwrap();
        assert_eq!(fs.stat(f).unwrap().mode, S_IFREG | 0o4777);
        let d = fs.mkdir(etc, "d", 0o170_700).unwrap();
        assert_eq!(fs.stat(d).unwrap().mode, S_IFDIR | 0o700, "type bits of `mode` are ignored");
        fs.check();
    }

    #[test]
    fn directory_link_counts_follow_subdirectories() {
        let mut fs = RamFs::new();
        let a = fs.mkdir(ROOT, "a", 0o755).unwrap();
        assert_eq!(fs.stat(ROOT).unwrap().nlink, 3);
        fs.mkdir(a, "b", 0o755).unwrap();
        fs.mkdir(a, "c", 0o755).unwrap();
        fs.create(a, "f", 0o644).unwrap();
        assert_eq!(fs.stat(a).unwrap().nlink, 4);
        assert_eq!(fs.stat(fs.lookup(ROOT, "a/f").unwrap()).unwrap().nlink, 1);
        fs.rmdir(a, "b").unwrap();
        assert_eq!(fs.stat(a).unwrap().nlink, 3);
        fs.unlink(a, "f").unwrap();
        assert_eq!(fs.stat(a).unwrap().nlink, 3);
        // A directory's size grows with its entries.
        assert_eq!(fs.stat(a).unwrap().size, 3 * DIRENT_SIZE);
        fs.check();
    }

    #[test]
    fn unlink_and_rmdir_errors() {
        let mut fs = sample();
        assert_eq!(fs.unlink_path(ROOT, "etc"), Err(FsError::IsDir));
        assert_eq!(fs.unlink_path(ROOT, "etc/"), Err(FsError::IsDir));
        assert_eq!(fs.unlink_path(ROOT, "etc/motd/"), Err(FsError::NotDir));
        assert_eq!(fs.unlink_path(ROOT, "etc/nope"), Err(FsError::NotFound));
        assert_eq!(fs.unlink_path(ROOT, "etc/."), Err(FsError::IsDir));
        assert_eq!(fs.unlink_path(ROOT, "/"), Err(FsError::IsDir));
        assert_eq!(fs.unlink_path(ROOT, ""), Err(FsError::NotFound));
        assert_eq!(fs.rmdir_path(ROOT, "etc"), Err(FsError::NotEmpty));
        assert_eq!(fs.rmdir_path(ROOT, "etc/motd"), Err(FsError::NotDir));
        assert_eq!(fs.rmdir_path(ROOT, "etc/motd/"), Err(FsError::NotDir));
        assert_eq!(fs.rmdir_path(ROOT, "usr/lib/."), Err(FsError::Invalid));
        assert_eq!(fs.rmdir_path(ROOT, "usr/lib/.."), Err(FsError::NotEmpty));
        assert_eq!(fs.rmdir_path(ROOT, "/"), Err(FsError::Busy));
        assert_eq!(fs.rmdir_path(ROOT, "nope"), Err(FsError::NotFound));
        assert_eq!(fs.rmdir(ROOT, "."), Err(FsError::Invalid));
        assert_eq!(fs.unlink(ROOT, ".."), Err(FsError::IsDir));
        fs.check();
        fs.rmdir_path(ROOT, "usr/lib/").unwrap();
        fs.rmdir_path(ROOT, "//usr").unwrap();
        fs.unlink_path(ROOT, "etc/motd").unwrap();
        fs.rmdir_path(ROOT, "etc").unwrap();
        assert_eq!(names(&fs, ROOT), [".", "..", "bin"]);
        assert_eq!(fs.stat(ROOT).unwrap().nlink, 3);
        assert_eq!(fs.counts(), (1, 2));
        fs.check();
    }

    #[test]
    fn mkdir_path_takes_a_trailing_slash() {
        let mut fs = sample();
        let d = fs.mkdir_path(ROOT, "usr/share/", 0o755).unwrap();
        assert_eq!(fs.lookup(ROOT, "/usr/share"), Ok(d));
        assert_eq!(fs.mkdir_path(ROOT, "usr/share", 0o755), Err(FsError::Exists));
        assert_eq!(fs.mkdir_path(ROOT, "/", 0o755), Err(FsError::Exists));
        assert_eq!(fs.mkdir_path(ROOT, "usr/.", 0o755), Err(FsError::Exists));
        assert_eq!(fs.mkdir_path(ROOT, "usr/..", 0o755), Err(FsError::Exists));
        assert_eq!(fs.mkdir_path(ROOT, "nope/x", 0o755), ENOENT);
        assert_eq!(fs.mkdir_path(ROOT, "etc/motd/x", 0o755), Err(FsError::NotDir));
        assert_eq!(fs.mkdir_path(ROOT, "".to_string() + &"x".repeat(256), 0o755), Err(FsError::NameTooLong));
        fs.check();
    }

    #[test]
    fn reads_and_writes_grow_and_fill_holes() {
        let mut fs = RamFs::new();
        let f = fs.create(ROOT, "f", 0o644).unwrap();
        assert_eq!(fs.write(f, 0, b"hello"), Ok(5));
        assert_eq!(fs.write(f, 8, b"xy"), Ok(2));
        assert_eq!(read_all(&fs, f), b"hello\0\0\0xy");
        assert_eq!(fs.stat(f).unwrap().size, 10);
        assert_eq!(fs.write(f, 1, b"EL"), Ok(2));
        assert_eq!(read_all(&fs, f), b"hELlo\0\0\0xy");
        let mut buf = [0u8; 4];
        assert_eq!(fs.read(f, 0, &mut buf), Ok(4));
        assert_eq!(&buf, b"hELl");
        assert_eq!(fs.read(f, 8, &mut buf), Ok(2));
        assert_eq!(fs.read(f, 10, &mut buf), Ok(0));
        assert_eq!(fs.read(f, u64::MAX, &mut buf), Ok(0));
        // An empty write at any offset changes nothing.
        assert_eq!(fs.write(f, 100, b""), Ok(0));
        assert_eq!(fs.stat(f).unwrap().size, 10);
        fs.truncate(f, 3).unwrap();
        assert_eq!(read_all(&fs, f), b"hEL");
        fs.truncate(f, 6).unwrap();
        assert_eq!(read_all(&fs, f), b"hEL\0\0\0");
        assert_eq!(fs.used_bytes(), 6);
        assert_eq!(fs.write(f, MAX_FILE_SIZE, b"x"), Err(FsError::FileTooBig));
        assert_eq!(fs.truncate(f, MAX_FILE_SIZE + 1), Err(FsError::FileTooBig));
        assert_eq!(fs.write(ROOT, 0, b"x"), Err(FsError::IsDir));
        assert_eq!(fs.read(ROOT, 0, &mut buf), Err(FsError::IsDir));
        assert_eq!(fs.truncate(ROOT, 0), Err(FsError::IsDir));
        assert_eq!(fs.write(77, 0, b"x"), Err(FsError::NotFound));
        fs.check();
    }

    #[test]
    fn the_limit_gives_short_writes_then_enospc() {
        let mut fs = RamFs::new();
        fs.set_limit(10);
        let a = fs.create(ROOT, "a", 0o644).unwrap();
        let b = fs.create(ROOT, "b", 0o644).unwrap();
        assert_eq!(fs.write(a, 0, b"123456"), Ok(6));
        assert_eq!(fs.write(b, 0, b"abcdef"), Ok(4));
        assert_eq!(fs.write(b, 4, b"x"), Err(FsError::NoSpace));
        // Overwriting in place needs no room.
        assert_eq!(fs.write(b, 0, b"ABCDEF"), Ok(4));
        assert_eq!(read_all(&fs, b), b"ABCD");
        assert_eq!(fs.truncate(a, 7), Err(FsError::NoSpace));
        assert_eq!(fs.write(a, 20, b"x"), Err(FsError::NoSpace));
        fs.unlink(ROOT, "a").unwrap();
        assert_eq!(fs.used_bytes(), 4);
        assert_eq!(fs.write(b, 4, b"efghijkl"), Ok(6));
        assert_eq!(fs.used_bytes(), 10);
        fs.check();
    }

    #[test]
    fn an_open_file_outlives_its_name() {
        let mut fs = RamFs::new();
        let f = fs.create(ROOT, "f", 0o644).unwrap();
        fs.write(f, 0, b"data").unwrap();
        fs.hold(f).unwrap();
        fs.hold(f).unwrap();
        fs.unlink(ROOT, "f").unwrap();
        assert_eq!(fs.lookup(ROOT, "f"), ENOENT);
        assert_eq!(fs.stat(f).unwrap().nlink, 0);
        assert_eq!(fs.write(f, 4, b"!"), Ok(1));
        assert_eq!(read_all(&fs, f), b"data!");
        fs.check();
        fs.release(f);
        assert_eq!(fs.counts(), (1, 1));
        fs.release(f);
        assert_eq!(fs.counts(), (0, 1));
        assert_eq!(fs.stat(f), Err(FsError::NotFound));
        assert_eq!(fs.used_bytes(), 0);
        // Releasing an unknown inode is harmless; a held live file stays.
        fs.release(f);
        let g = fs.create(ROOT, "g", 0o644).unwrap();
        fs.hold(g).unwrap();
        fs.release(g);
        assert!(fs.stat(g).is_ok());
        fs.check();
    }

    #[test]
    fn a_removed_directory_is_dead_but_has_a_way_out() {
        let mut fs = sample();
        let usr = fs.lookup(ROOT, "usr").unwrap();
        let lib = fs.lookup(ROOT, "usr/lib").unwrap();
        fs.hold(lib).unwrap();
        fs.rmdir(usr, "lib").unwrap();
        // Like a process whose working directory was removed.
        assert_eq!(fs.lookup(lib, "."), ENOENT);
        assert_eq!(fs.lookup(lib, "x"), ENOENT);
        assert_eq!(fs.lookup(lib, ".."), Ok(usr));
        assert_eq!(fs.lookup(lib, "../lib"), ENOENT);
        assert_eq!(fs.create(lib, "x", 0o644), ENOENT);
        assert_eq!(fs.open(lib, "x", &OpenOptions { create: true, ..Default::default() }), ENOENT);
        assert_eq!(fs.mkdir_path(lib, "x", 0o755), ENOENT);
        assert_eq!(fs.path_of(lib), Err(FsError::NotFound));
        assert!(fs.readdir(lib).is_err());
        assert_eq!(fs.stat(lib).unwrap().nlink, 0);
        fs.check();
        fs.release(lib);
        assert_eq!(fs.stat(lib), Err(FsError::NotFound));
        // A stale number: relative walks find nothing, absolute ones work.
        assert_eq!(fs.lookup(lib, ".."), ENOENT);
        assert_eq!(fs.lookup(lib, "/usr"), Ok(usr));
        fs.check();
    }

    #[test]
    fn dotdot_of_a_removed_directory_whose_parent_went_too_is_the_root() {
        let mut fs = RamFs::new();
        let a = fs.mkdir(ROOT, "a", 0o755).unwrap();
        let b = fs.mkdir(a, "b", 0o755).unwrap();
        fs.hold(b).unwrap();
        fs.rmdir(a, "b").unwrap();
        fs.rmdir(ROOT, "a").unwrap();
        assert_eq!(fs.lookup(b, ".."), Ok(ROOT));
        fs.check();
    }

    #[test]
    fn path_of_walks_up() {
        let mut fs = sample();
        let lib = fs.lookup(ROOT, "usr/lib").unwrap();
        assert_eq!(fs.path_of(lib).unwrap(), b"/usr/lib");
        let deep = fs.mkdir(lib, b"\xffx", 0o755).unwrap();
        assert_eq!(fs.path_of(deep).unwrap(), b"/usr/lib/\xffx");
        let motd = fs.lookup(ROOT, "etc/motd").unwrap();
        assert_eq!(fs.path_of(motd), Err(FsError::NotDir));
        // A path that grows past PATH_MAX.
        let mut at = ROOT;
        let name = "n".repeat(NAME_MAX);
        for _ in 0..17 {
            at = fs.mkdir(at, &name, 0o755).unwrap();
        }
        assert_eq!(fs.path_of(at), Err(FsError::NameTooLong));
    }

    #[test]
    fn readdir_is_sorted_and_resumes_after_a_name() {
        let mut fs = RamFs::new();
        for n in ["zeta", "alpha", "-dash", "mid"] {
            fs.create(ROOT, n, 0o644).unwrap();
        }
        let d = fs.mkdir(ROOT, "dir", 0o755).unwrap();
        assert_eq!(names(&fs, ROOT), [".", "..", "-dash", "alpha", "dir", "mid", "zeta"]);
        let kinds: Vec<_> = fs.readdir(ROOT).unwrap().map(|e| e.kind.dt()).collect();
        assert_eq!(kinds, [4, 4, 8, 8, 4, 8, 8]);
        assert_eq!(fs.readdir(ROOT).unwrap().nth(4).unwrap().ino, d);
        let after = |fs: &RamFs<'_>, n: &str| -> Vec<Vec<u8>> {
            fs.readdir_after(ROOT, Some(n.as_bytes())).unwrap().map(|e| e.name.to_vec()).collect()
        };
        assert_eq!(after(&fs, ".").len(), 6);
        assert_eq!(after(&fs, "..").len(), 5);
        assert_eq!(after(&fs, "alpha"), [b"dir".to_vec(), b"mid".to_vec(), b"zeta".to_vec()]);
        // Removing the entry last read, or adding one before it, shifts nothing.
        fs.unlink(ROOT, "alpha").unwrap();
        fs.create(ROOT, "beta", 0o644).unwrap();
        fs.create(ROOT, "aardvark", 0o644).unwrap();
        assert_eq!(after(&fs, "alpha"), [b"beta".to_vec(), b"dir".to_vec(), b"mid".to_vec(), b"zeta".to_vec()]);
        assert_eq!(after(&fs, "zzz").len(), 0);
        assert_eq!(fs.readdir(d).unwrap().nth(1).unwrap().ino, ROOT);
        let f = fs.lookup(ROOT, "mid").unwrap();
        assert!(matches!(fs.readdir(f), Err(FsError::NotDir)));
    }

    #[test]
    fn open_follows_linux_flags() {
        let mut fs = sample();
        let motd = fs.lookup(ROOT, "etc/motd").unwrap();
        let etc = fs.lookup(ROOT, "etc").unwrap();
        let o = |create, exclusive, truncate, directory, write| OpenOptions {
            create,
            exclusive,
            truncate,
            directory,
            write,
            nofollow: false,
            mode: 0o600,
        };
        assert_eq!(fs.open(ROOT, "etc/motd", &o(false, false, false, false, false)), Ok(motd));
        assert_eq!(fs.open(ROOT, "etc/motd", &o(true, false, false, false, true)), Ok(motd));
        assert_eq!(fs.open(ROOT, "etc/motd", &o(true, true, false, false, true)), Err(FsError::Exists));
        assert_eq!(fs.open(ROOT, "etc/motd", &o(false, false, false, true, false)), Err(FsError::NotDir));
        assert_eq!(fs.open(ROOT, "etc/motd/", &o(false, false, false, false, false)), Err(FsError::NotDir));
        assert_eq!(fs.open(ROOT, "etc/motd/", &o(true, false, false, false, true)), Err(FsError::IsDir));
        assert_eq!(fs.open(ROOT, "etc", &o(false, false, false, true, false)), Ok(etc));
        assert_eq!(fs.open(ROOT, "etc", &o(false, false, false, false, false)), Ok(etc));
        assert_eq!(fs.open(ROOT, "etc", &o(false, false, false, false, true)), Err(FsError::IsDir));
        assert_eq!(fs.open(ROOT, "etc", &o(false, false, true, false, false)), Err(FsError::IsDir));
        assert_eq!(fs.open(ROOT, "etc", &o(true, false, false, false, false)), Err(FsError::IsDir));
        assert_eq!(fs.open(ROOT, "etc", &o(true, true, false, false, false)), Err(FsError::Exists));
        assert_eq!(fs.open(ROOT, "/", &o(true, false, false, false, false)), Err(FsError::IsDir));
        assert_eq!(fs.open(etc, ".", &o(true, false, false, false, false)), Err(FsError::IsDir));
        assert_eq!(fs.open(ROOT, "new/", &o(true, false, false, false, true)), Err(FsError::IsDir));
        assert_eq!(fs.open(ROOT, "nope", &o(false, false, false, false, false)), ENOENT);
        assert_eq!(fs.open(ROOT, "nope/x", &o(true, false, false, false, true)), ENOENT);
        assert_eq!(fs.open(ROOT, "", &o(true, false, false, false, true)), ENOENT);
        let new = fs.open(etc, "new", &o(true, true, false, false, true)).unwrap();
        assert_eq!(fs.stat(new).unwrap().mode, S_IFREG | 0o600);
        assert_eq!(fs.lookup(ROOT, "/etc/new"), Ok(new));
        assert_eq!(fs.open(ROOT, "etc/motd", &o(false, false, true, false, false)), Ok(motd));
        assert_eq!(read_all(&fs, motd), b"");
        fs.check();
    }

    // ---- Symbolic links, hard links, rename, modes, times, devices. ----

    std::thread_local! {
        /// The test clock's seconds, per test thread.
        static NOW: core::cell::Cell<i64> = const { core::cell::Cell::new(0) };
    }

    fn test_clock() -> Time {
        Time { sec: NOW.with(|n| n.get()), nsec: 7 }
    }

    fn at(sec: i64) -> Time {
        Time { sec, nsec: 7 }
    }

    fn set_now(sec: i64) {
        NOW.with(|n| n.set(sec));
    }

    /// /d (dir) with /d/sub (dir) and /d/g (file), /f ("data"), and links
    /// ldir -> d, lf -> f, ldang -> nowhere, ldang2 -> nodir/x.
    fn linked() -> RamFs<'static> {
        let mut fs = RamFs::new();
        let d = fs.mkdir(ROOT, "d", 0o755).unwrap();
        fs.mkdir(d, "sub", 0o755).unwrap();
        fs.create(d, "g", 0o644).unwrap();
        let f = fs.create(ROOT, "f", 0o644).unwrap();
        fs.write(f, 0, b"data").unwrap();
        for (target, link) in [("d", "ldir"), ("f", "lf"), ("nowhere", "ldang"), ("nodir/x", "ldang2")] {
            fs.symlink(ROOT, target, link).unwrap();
        }
        fs.check();
        fs
    }

    fn opts(create: bool, exclusive: bool, nofollow: bool) -> OpenOptions {
        OpenOptions { create, exclusive, nofollow, mode: 0o644, ..Default::default() }
    }

    #[test]
    fn a_symlink_stats_as_linux_says() {
        let fs = linked();
        let lf = fs.lookup_nofollow(ROOT, "lf").unwrap();
        let st = fs.stat(lf).unwrap();
        assert_eq!((st.mode, st.size, st.nlink, st.kind), (S_IFLNK | 0o777, 1, 1, Kind::Symlink));
        assert_eq!((st.uid, st.gid, st.rdev), (0, 0, 0));
        assert_eq!(Kind::Symlink.dt(), 10);
        assert_eq!(fs.lookup(ROOT, "lf"), fs.lookup(ROOT, "f"));
        let kinds: Vec<_> = fs.readdir(ROOT).unwrap().skip(2).map(|e| (e.name, e.kind)).collect();
        assert!(kinds.contains(&(&b"lf"[..], Kind::Symlink)));
        assert_eq!(fs.link_target(lf), Ok(&b"f"[..]));
        assert_eq!(fs.data(lf), Err(FsError::Invalid));
        assert_eq!(fs.readlink(ROOT, "ldang"), Ok(&b"nowhere"[..]));
    }

    #[test]
    fn symlink_and_readlink_refuse_what_linux_refuses() {
        let mut fs = linked();
        assert_eq!(fs.symlink(ROOT, "", "l"), ENOENT);
        assert_eq!(fs.symlink(ROOT, "a".repeat(PATH_MAX), "l"), Err(FsError::NameTooLong));
        assert!(fs.symlink(ROOT, "a".repeat(PATH_MAX - 1), "long").is_ok());
        assert_eq!(fs.symlink(ROOT, b"a\0b", "l"), Err(FsError::Invalid));
        assert_eq!(fs.symlink(ROOT, "f", "f"), Err(FsError::Exists));
        assert_eq!(fs.symlink(ROOT, "f", "ldang"), Err(FsError::Exists));
        assert_eq!(fs.symlink(ROOT, "f", "nolink/"), ENOENT);
        assert_eq!(fs.symlink(ROOT, "f", "f/"), Err(FsError::Exists));
        assert_eq!(fs.symlink(ROOT, "f", "."), Err(FsError::Exists));
        assert_eq!(fs.symlink(ROOT, "f", "d/.."), Err(FsError::Exists));
        assert_eq!(fs.symlink(ROOT, "f", "nodir/l"), ENOENT);
        assert_eq!(fs.symlink(ROOT, "f", "f/l"), Err(FsError::NotDir));
        assert_eq!(fs.readlink(ROOT, "f"), Err(FsError::Invalid));
        // A trailing `/` follows the link.
        assert_eq!(fs.readlink(ROOT, "ldir/"), Err(FsError::Invalid));
        assert_eq!(fs.readlink(ROOT, "lf/"), Err(FsError::NotDir));
        assert_eq!(fs.readlink(ROOT, "ldang/"), Err(FsError::NotFound));
        // A link made through a linked directory lands in the directory.
        let l = fs.symlink(ROOT, "../f", "ldir/up").unwrap();
        assert_eq!(fs.lookup_nofollow(ROOT, "d/up"), Ok(l));
        assert_eq!(fs.lookup(ROOT, "d/up"), fs.lookup(ROOT, "f"));
        fs.check();
    }

    #[test]
    fn lookup_follows_links_in_every_component() {
        let mut fs = linked();
        let d = fs.lookup(ROOT, "d").unwrap();
        let sub = fs.lookup(ROOT, "d/sub").unwrap();
        let f = fs.lookup(ROOT, "f").unwrap();
        assert_eq!(fs.lookup(ROOT, "ldir"), Ok(d));
        assert_eq!(fs.lookup(ROOT, "ldir/sub"), Ok(sub));
        assert_eq!(fs.lookup(ROOT, "ldir/"), Ok(d));
        assert_eq!(fs.lookup_nofollow(ROOT, "ldir/"), Ok(d));
        assert_eq!(fs.lookup(ROOT, "ldir/."), Ok(d));
        // `..` is the parent of where the link led, not a step back.
        assert_eq!(fs.lookup(sub, "../../ldir/sub/.."), Ok(d));
        // A relative target starts at the link's directory, an absolute one at the root.
        fs.symlink(sub, "../g", "rel").unwrap();
        fs.symlink(sub, "/f", "abs").unwrap();
        fs.symlink(sub, "../../ldir/sub/abs", "chain").unwrap();
        assert_eq!(fs.lookup(ROOT, "d/sub/rel"), fs.lookup(ROOT, "d/g"));
        assert_eq!(fs.lookup(ROOT, "ldir/sub/abs"), Ok(f));
        assert_eq!(fs.lookup(sub, "chain"), Ok(f));
        assert_eq!(fs.lookup(d, "sub/chain"), Ok(f));
        // Not followed last, followed in the middle.
        let lf = fs.lookup_nofollow(ROOT, "lf").unwrap();
        assert_ne!(lf, f);
        assert_eq!(fs.lookup_nofollow(ROOT, "ldir/sub"), Ok(sub));
        // Where a link leads nowhere or to a file.
        assert_eq!(fs.lookup(ROOT, "ldang"), ENOENT);
        assert_eq!(fs.lookup(ROOT, "ldang2"), ENOENT);
        assert!(fs.lookup_nofollow(ROOT, "ldang").is_ok());
        assert_eq!(fs.lookup_nofollow(ROOT, "ldang/"), ENOENT);
        assert_eq!(fs.lookup(ROOT, "lf/"), Err(FsError::NotDir));
        assert_eq!(fs.lookup_nofollow(ROOT, "lf/"), Err(FsError::NotDir));
        assert_eq!(fs.lookup(ROOT, "lf/x"), Err(FsError::NotDir));
        // A trailing `/` in the target asks for a directory too.
        fs.symlink(ROOT, "f/", "lfslash").unwrap();
        fs.symlink(ROOT, "d//", "ldslash").unwrap();
        assert_eq!(fs.lookup(ROOT, "lfslash"), Err(FsError::NotDir));
        assert_eq!(fs.lookup(ROOT, "ldslash"), Ok(d));
        fs.symlink(ROOT, "lfslash", "via").unwrap();
        assert_eq!(fs.lookup(ROOT, "via"), Err(FsError::NotDir));
        fs.check();
    }

    #[test]
    fn a_cycle_is_eloop() {
        let mut fs = linked();
        fs.symlink(ROOT, "loopb", "loopa").unwrap();
        fs.symlink(ROOT, "loopa", "loopb").unwrap();
        fs.symlink(ROOT, "self", "self").unwrap();
        assert_eq!(FsError::Loop.errno(), 40);
        assert_eq!(fs.lookup(ROOT, "loopa"), Err(FsError::Loop));
        assert_eq!(fs.lookup(ROOT, "self"), Err(FsError::Loop));
        assert_eq!(fs.lookup(ROOT, "loopa/x"), Err(FsError::Loop));
        assert_eq!(fs.lookup_nofollow(ROOT, "loopa/"), Err(FsError::Loop));
        assert!(fs.lookup_nofollow(ROOT, "loopa").is_ok());
        assert_eq!(fs.open(ROOT, "loopa", &opts(true, false, false)), Err(FsError::Loop));
        assert_eq!(fs.open(ROOT, "loopa", &opts(false, false, false)), Err(FsError::Loop));
        assert_eq!(fs.mkdir_path(ROOT, "loopa/x", 0o755), Err(FsError::Loop));
        assert_eq!(fs.readlink(ROOT, "loopa"), Ok(&b"loopb"[..]));
        fs.unlink_path(ROOT, "loopa").unwrap();
        assert_eq!(fs.lookup(ROOT, "loopb"), ENOENT);
        fs.check();
    }

    #[test]
    fn forty_links_resolve_and_forty_one_are_eloop() {
        let mut fs = RamFs::new();
        let ch = fs.mkdir(ROOT, "ch", 0o755).unwrap();
        let target = fs.create(ch, "target", 0o644).unwrap();
        for i in 0..45 {
            let to = if i == 0 { "target".to_string() } else { std::format!("l{}", i - 1) };
            fs.symlink(ch, to, std::format!("l{i}")).unwrap();
        }
        // l{n} is n + 1 links from the target, as on Linux 6.18 (tested on tmpfs).
        assert_eq!(fs.lookup(ch, "l38"), Ok(target));
        assert_eq!(fs.lookup(ch, "l39"), Ok(target));
        assert_eq!(fs.lookup(ch, "l40"), Err(FsError::Loop));
        assert_eq!(fs.lookup(ch, "l44"), Err(FsError::Loop));
        // The count is per lookup, across components: a directory reached
        // through 39 links, then one more.
        fs.symlink(ch, ".", "dot0").unwrap();
        for i in 1..40 {
            fs.symlink(ch, std::format!("dot{}", i - 1), std::format!("dot{i}")).unwrap();
        }
        assert_eq!(fs.lookup(ch, "dot38/target"), Ok(target));
        assert_eq!(fs.lookup(ch, "dot38/l0"), Ok(target));
        assert_eq!(fs.lookup(ch, "dot38/l1"), Err(FsError::Loop));
        assert_eq!(fs.lookup_nofollow(ch, "dot38/l1").map(|i| fs.stat(i).unwrap().kind), Ok(Kind::Symlink));
        assert_eq!(fs.lookup(ch, "dot39/target"), Ok(target));
        assert_eq!(fs.lookup(ch, "dot39/l0"), Err(FsError::Loop));
        fs.check();
    }

    #[test]
    fn open_through_links_as_linux() {
        let mut fs = linked();
        let f = fs.lookup(ROOT, "f").unwrap();
        let d = fs.lookup(ROOT, "d").unwrap();
        assert_eq!(fs.open(ROOT, "lf", &opts(false, false, false)), Ok(f));
        assert_eq!(fs.open(ROOT, "lf", &opts(false, false, true)), Err(FsError::Loop));
        let nofollow_dir = OpenOptions { directory: true, nofollow: true, ..Default::default() };
        assert_eq!(fs.open(ROOT, "lf", &nofollow_dir), Err(FsError::NotDir));
        assert_eq!(fs.open(ROOT, "ldir", &nofollow_dir), Err(FsError::NotDir));
        assert_eq!(fs.open(ROOT, "ldir/", &nofollow_dir), Ok(d));
        assert_eq!(fs.open(ROOT, "lf/", &opts(false, false, true)), Err(FsError::NotDir));
        assert_eq!(fs.open(ROOT, "lf", &opts(true, false, true)), Err(FsError::Loop));
        assert_eq!(fs.open(ROOT, "lf", &opts(true, true, true)), Err(FsError::Exists));
        assert_eq!(fs.open(ROOT, "lf", &opts(true, false, false)), Ok(f));
        assert_eq!(fs.open(ROOT, "ldir", &opts(true, false, false)), Err(FsError::IsDir));
        assert_eq!(fs.open(ROOT, "ldang2", &opts(true, false, false)), ENOENT);
        // O_CREAT through a dangling link makes its target, unless O_EXCL.
        assert_eq!(fs.open(ROOT, "ldang", &opts(true, true, false)), Err(FsError::Exists));
        assert_eq!(fs.lookup(ROOT, "nowhere"), ENOENT);
        let made = fs.open(ROOT, "ldang", &opts(true, false, false)).unwrap();
        assert_eq!(fs.lookup(ROOT, "nowhere"), Ok(made));
        assert_eq!(fs.lookup(ROOT, "ldang"), Ok(made));
        // Through a chain, relative to each link's directory, and absolute.
        fs.symlink(ROOT, "ldir/hop", "start").unwrap();
        fs.symlink(d, "sub/end", "hop").unwrap();
        let end = fs.open(ROOT, "start", &opts(true, false, false)).unwrap();
        assert_eq!(fs.lookup(ROOT, "d/sub/end"), Ok(end));
        fs.symlink(d, "/top", "abs").unwrap();
        let top = fs.open(ROOT, "d/abs", &opts(true, false, false)).unwrap();
        assert_eq!(fs.lookup(ROOT, "top"), Ok(top));
        // A target asking for a directory cannot be created.
        fs.symlink(ROOT, "dnew/", "ldslash").unwrap();
        assert_eq!(fs.open(ROOT, "ldslash", &opts(true, false, false)), Err(FsError::IsDir));
        let mut o = opts(true, false, false);
        o.truncate = true;
        assert_eq!(fs.open(ROOT, "lf", &o), Ok(f));
        assert_eq!(fs.data(f).unwrap(), b"");
        fs.check();
    }

    #[test]
    fn calls_on_a_name_do_not_follow_it() {
        let mut fs = linked();
        let d = fs.lookup(ROOT, "d").unwrap();
        let f = fs.lookup(ROOT, "f").unwrap();
        assert_eq!(fs.mkdir_path(ROOT, "ldang", 0o755), Err(FsError::Exists));
        assert_eq!(fs.mkdir_path(ROOT, "ldang2/", 0o755), Err(FsError::Exists));
        assert_eq!(fs.unlink_path(ROOT, "ldir/"), Err(FsError::NotDir));
        assert_eq!(fs.rmdir_path(ROOT, "ldir/"), Err(FsError::NotDir));
        assert_eq!(fs.rmdir_path(ROOT, "ldir"), Err(FsError::NotDir));
        assert_eq!(fs.rename(ROOT, "ldir/", "x"), Err(FsError::NotDir));
        // Renaming and removing a link leave what it names alone.
        fs.rename(ROOT, "lf", "lf2").unwrap();
        assert_eq!(fs.readlink(ROOT, "lf2"), Ok(&b"f"[..]));
        assert_eq!(fs.lookup(ROOT, "lf2"), Ok(f));
        fs.unlink_path(ROOT, "lf2").unwrap();
        fs.unlink_path(ROOT, "ldir").unwrap();
        assert_eq!(fs.lookup(ROOT, "f"), Ok(f));
        assert_eq!(fs.lookup(ROOT, "d"), Ok(d));
        assert_eq!(fs.data(f).unwrap(), b"data");
        // Link targets count as heap bytes and go with the link.
        assert_eq!(fs.used_bytes(), 4 + "nowhere".len() as u64 + "nodir/x".len() as u64);
        fs.unlink(ROOT, "ldang").unwrap();
        fs.unlink(ROOT, "ldang2").unwrap();
        assert_eq!(fs.used_bytes(), 4);
        fs.check();
    }

    #[test]
    fn a_link_target_counts_against_the_limit() {
        let mut fs = RamFs::new();
        fs.set_limit(10);
        fs.symlink(ROOT, "0123456789", "a").unwrap();
        assert_eq!(fs.symlink(ROOT, "x", "b"), Err(FsError::NoSpace));
        fs.check();
    }

    #[test]
    fn hard_links_share_an_inode_and_count_names() {
        let mut fs = linked();
        let f = fs.lookup(ROOT, "f").unwrap();
        fs.link(ROOT, "f", "d/f2").unwrap();
        fs.link(ROOT, "d/f2", "f3").unwrap();
        assert_eq!(fs.lookup(ROOT, "d/f2"), Ok(f));
        assert_eq!(fs.stat(f).unwrap().nlink, 3);
        let f2 = fs.lookup(ROOT, "f3").unwrap();
        fs.write(f2, 4, b"!").unwrap();
        assert_eq!(fs.data(f).unwrap(), b"data!");
        fs.check();
        fs.unlink_path(ROOT, "f").unwrap();
        assert_eq!(fs.stat(f).unwrap().nlink, 2);
        fs.unlink_path(ROOT, "d/f2").unwrap();
        assert_eq!(fs.stat(f).unwrap().nlink, 1);
        fs.hold(f).unwrap();
        fs.unlink_path(ROOT, "f3").unwrap();
        assert_eq!(fs.stat(f).unwrap().nlink, 0);
        assert_eq!(fs.used_bytes(), 5 + 16, "the file and the link targets");
        fs.check();
        fs.release(f);
        assert_eq!(fs.stat(f), Err(FsError::NotFound));
        assert_eq!(fs.used_bytes(), 16);
        fs.check();
    }

    #[test]
    fn link_refuses_what_linux_refuses() {
        let mut fs = linked();
        assert_eq!(FsError::Perm.errno(), 1);
        assert_eq!(fs.link(ROOT, "d", "dlink"), Err(FsError::Perm));
        assert_eq!(fs.link(ROOT, "/", "rootlink"), Err(FsError::Perm));
        assert_eq!(fs.link(ROOT, "d", "f"), Err(FsError::Exists));
        assert_eq!(fs.link(ROOT, "f", "f"), Err(FsError::Exists));
        assert_eq!(fs.link(ROOT, "f", "newlink/"), Err(FsError::NotFound));
        assert_eq!(fs.link(ROOT, "f", "d/g/"), Err(FsError::Exists));
        assert_eq!(fs.link(ROOT, "f/", "x"), Err(FsError::NotDir));
        assert_eq!(fs.link(ROOT, "f", "."), Err(FsError::Exists));
        assert_eq!(fs.link(ROOT, "nope", "x"), Err(FsError::NotFound));
        assert_eq!(fs.link(ROOT, "f", "nodir/x"), Err(FsError::NotFound));
        assert_eq!(
            fs.link(ROOT, "ldang", "x").map(|_| fs.stat(fs.lookup_nofollow(ROOT, "x").unwrap()).unwrap().kind),
            Ok(Kind::Symlink)
        );
        // Without AT_SYMLINK_FOLLOW the link itself gets the new name.
        fs.link(ROOT, "lf", "lf_hard").unwrap();
        let lf = fs.lookup_nofollow(ROOT, "lf").unwrap();
        assert_eq!(fs.lookup_nofollow(ROOT, "lf_hard"), Ok(lf));
        assert_eq!(fs.stat(lf).unwrap().nlink, 2);
        fs.link_at(ROOT, "lf", ROOT, "lf_hard2", true).unwrap();
        let f = fs.lookup(ROOT, "f").unwrap();
        assert_eq!(fs.lookup_nofollow(ROOT, "lf_hard2"), Ok(f));
        assert_eq!(fs.stat(f).unwrap().nlink, 2);
        assert_eq!(fs.link_at(ROOT, "ldir", ROOT, "ld_hard", true), Err(FsError::Perm));
        assert!(fs.link_at(ROOT, "ldir", ROOT, "ld_hard", false).is_ok());
        // Relative paths from two directories.
        let d = fs.lookup(ROOT, "d").unwrap();
        fs.link_at(d, "g", ROOT, "g_top", false).unwrap();
        assert_eq!(fs.lookup(ROOT, "g_top"), fs.lookup(ROOT, "d/g"));
        fs.check();
    }

    #[test]
    fn rename_of_the_root_dot_and_dotdot_is_ebusy() {
        let mut fs = linked();
        for (old, new) in [
            ("/", "x"),
            (".", "x"),
            ("d/.", "x"),
            ("d/..", "x"),
            ("f", "d/."),
            ("f", "d/.."),
            ("f", "/"),
            ("f", "."),
            ("nope", "."),
        ] {
            assert_eq!(fs.rename(ROOT, old, new), Err(FsError::Busy), "{old} -> {new}");
        }
        assert_eq!(fs.rename_at(ROOT, "/", ROOT, "d", RenameMode::Exchange), Err(FsError::Busy));
        fs.check();
    }

    #[test]
    fn rename_into_its_own_subtree_is_einval() {
        let mut fs = linked();
        assert_eq!(fs.rename(ROOT, "d", "d/sub/x"), Err(FsError::Invalid));
        assert_eq!(fs.rename(ROOT, "d", "d/x"), Err(FsError::Invalid));
        assert_eq!(fs.rename(ROOT, "d", "ldir/sub/x"), Err(FsError::Invalid));
        // Onto an ancestor of the source.
        assert_eq!(fs.rename(ROOT, "d/sub", "d"), Err(FsError::NotEmpty));
        assert_eq!(fs.rename(ROOT, "d/g", "d"), Err(FsError::NotEmpty));
        assert_eq!(fs.rename_at(ROOT, "d/sub", ROOT, "d", RenameMode::Exchange), Err(FsError::Invalid));
        assert_eq!(fs.rename_at(ROOT, "d", ROOT, "d/sub", RenameMode::Exchange), Err(FsError::Invalid));
        // Onto itself: nothing.
        assert_eq!(fs.rename(ROOT, "d", "d"), Ok(()));
        assert_eq!(fs.rename(ROOT, "d", "d/"), Ok(()));
        assert_eq!(fs.rename(ROOT, "d", "ldir/sub/.."), Err(FsError::Busy));
        fs.check();
    }

    #[test]
    fn rename_checks_kinds_in_linux_order() {
        let mut fs = linked();
        fs.mkdir(ROOT, "e", 0o755).unwrap();
        let full = fs.mkdir(ROOT, "full", 0o755).unwrap();
        fs.create(full, "x", 0o644).unwrap();
        assert_eq!(fs.rename(ROOT, "e", "f"), Err(FsError::NotDir));
        assert_eq!(fs.rename(ROOT, "f", "e"), Err(FsError::IsDir));
        assert_eq!(fs.rename(ROOT, "e", "full"), Err(FsError::NotEmpty));
        assert_eq!(fs.rename(ROOT, "f", "nope/"), Err(FsError::NotDir));
        assert_eq!(fs.rename(ROOT, "f/", "x"), Err(FsError::NotDir));
        assert_eq!(fs.rename(ROOT, "nope", "x"), Err(FsError::NotFound));
        assert_eq!(fs.rename(ROOT, "f", "nodir/x"), Err(FsError::NotFound));
        assert_eq!(fs.rename(ROOT, "f", "f/x"), Err(FsError::NotDir));
        assert_eq!(fs.rename(ROOT, "f", "x".repeat(NAME_MAX + 1)), Err(FsError::NameTooLong));
        assert_eq!(fs.rename(ROOT, "e", "e2/"), Ok(()));
        assert_eq!(fs.rename(ROOT, "e2/", "e"), Ok(()));
        // Two names of one inode: nothing happens, both stay.
        fs.link(ROOT, "f", "f_hard").unwrap();
        let f = fs.lookup(ROOT, "f").unwrap();
        assert_eq!(fs.rename(ROOT, "f", "f_hard"), Ok(()));
        assert_eq!((fs.lookup(ROOT, "f"), fs.stat(f).unwrap().nlink), (Ok(f), 2));
        assert_eq!(fs.rename_at(ROOT, "f", ROOT, "f_hard", RenameMode::NoReplace), Err(FsError::Exists));
        assert_eq!(fs.rename_at(ROOT, "f", ROOT, "nope", RenameMode::Exchange), Err(FsError::NotFound));
        assert_eq!(fs.rename_at(ROOT, "f/", ROOT, "e", RenameMode::Exchange), Err(FsError::NotDir));
        assert_eq!(fs.rename_at(ROOT, "e", ROOT, "f/", RenameMode::Exchange), Err(FsError::NotDir));
        assert_eq!(fs.rename_at(ROOT, "f", ROOT, "e/", RenameMode::Exchange), Ok(()));
        assert_eq!(fs.rename_at(ROOT, "f", ROOT, "nope", RenameMode::NoReplace), Ok(()));
        assert_eq!(fs.lookup(ROOT, "nope").map(|i| fs.stat(i).unwrap().kind), Ok(Kind::Dir));
        assert_eq!(RenameMode::from_flags(0), Ok(RenameMode::Replace));
        assert_eq!(RenameMode::from_flags(1), Ok(RenameMode::NoReplace));
        assert_eq!(RenameMode::from_flags(2), Ok(RenameMode::Exchange));
        for bad in [3, 4, 8, 1 << 31] {
            assert_eq!(RenameMode::from_flags(bad), Err(FsError::Invalid));
        }
        fs.check();
    }

    #[test]
    fn a_moved_directory_takes_its_dotdot_and_link_counts_along() {
        let mut fs = RamFs::new();
        let a = fs.mkdir(ROOT, "a", 0o755).unwrap();
        let b = fs.mkdir(ROOT, "b", 0o755).unwrap();
        let c = fs.mkdir(a, "c", 0o755).unwrap();
        fs.create(c, "file", 0o644).unwrap();
        assert_eq!((fs.stat(a).unwrap().nlink, fs.stat(b).unwrap().nlink), (3, 2));
        fs.rename(ROOT, "a/c", "b/moved").unwrap();
        fs.check();
        assert_eq!((fs.stat(a).unwrap().nlink, fs.stat(b).unwrap().nlink), (2, 3));
        assert_eq!(fs.lookup(c, ".."), Ok(b));
        assert_eq!(fs.path_of(c).unwrap(), b"/b/moved");
        assert_eq!(fs.lookup(ROOT, "b/moved/file"), fs.lookup(c, "file"));
        assert_eq!(fs.readdir(c).unwrap().nth(1).unwrap().ino, b);
        // Onto an empty directory, which goes.
        let empty = fs.mkdir(a, "empty", 0o755).unwrap();
        fs.rename(ROOT, "b/moved", "a/empty").unwrap();
        fs.check();
        assert_eq!(fs.stat(empty), Err(FsError::NotFound));
        assert_eq!((fs.stat(a).unwrap().nlink, fs.stat(b).unwrap().nlink), (3, 2));
        assert_eq!(fs.path_of(c).unwrap(), b"/a/empty");
        // Within one directory.
        fs.rename(a, "empty", "again").unwrap();
        assert_eq!((fs.stat(a).unwrap().nlink, fs.path_of(c).unwrap()), (3, b"/a/again".to_vec()));
        // Onto an empty directory that is open: it lives on, dead.
        let held = fs.mkdir(b, "held", 0o755).unwrap();
        fs.hold(held).unwrap();
        fs.rename(ROOT, "a/again", "b/held").unwrap();
        fs.check();
        assert_eq!(fs.stat(held).unwrap().nlink, 0);
        assert_eq!(fs.lookup(held, "x"), ENOENT);
        assert_eq!(fs.rename(ROOT, "b/held", "x"), Ok(()));
        assert_eq!(fs.rename(held, "x", "y"), Err(FsError::NotFound));
        fs.release(held);
        assert_eq!(fs.counts(), (1, 4));
        fs.check();
    }

    #[test]
    fn a_replaced_file_loses_a_name_and_its_bytes_when_unheld() {
        let mut fs = RamFs::new();
        let a = fs.create(ROOT, "a", 0o644).unwrap();
        let b = fs.create(ROOT, "b", 0o644).unwrap();
        let c = fs.create(ROOT, "c", 0o644).unwrap();
        fs.write(a, 0, b"aa").unwrap();
        fs.write(b, 0, b"bbb").unwrap();
        fs.write(c, 0, b"cccc").unwrap();
        fs.rename(ROOT, "a", "b").unwrap();
        assert_eq!(fs.stat(b), Err(FsError::NotFound));
        assert_eq!(fs.lookup(ROOT, "b"), Ok(a));
        assert_eq!(fs.lookup(ROOT, "a"), ENOENT);
        assert_eq!(fs.used_bytes(), 6);
        // Replacing one name of two keeps the inode; an open one outlives it.
        fs.link(ROOT, "c", "c2").unwrap();
        fs.rename(ROOT, "b", "c").unwrap();
        assert_eq!(fs.stat(c).unwrap().nlink, 1);
        fs.hold(c).unwrap();
        fs.rename(ROOT, "c", "c2").unwrap();
        assert_eq!(fs.stat(c).unwrap().nlink, 0);
        assert_eq!(fs.used_bytes(), 6);
        fs.check();
        fs.release(c);
        assert_eq!(fs.used_bytes(), 2);
        assert_eq!(names(&fs, ROOT), [".", "..", "c2"]);
        fs.check();
    }

    #[test]
    fn exchange_swaps_a_file_and_a_directory_across_directories() {
        let mut fs = RamFs::new();
        let a = fs.mkdir(ROOT, "a", 0o755).unwrap();
        let b = fs.mkdir(ROOT, "b", 0o755).unwrap();
        let f = fs.create(a, "f", 0o644).unwrap();
        let d = fs.mkdir(b, "d", 0o755).unwrap();
        fs.rename_at(a, "f", b, "d", RenameMode::Exchange).unwrap();
        fs.check();
        assert_eq!((fs.lookup(ROOT, "a/f"), fs.lookup(ROOT, "b/d")), (Ok(d), Ok(f)));
        assert_eq!((fs.stat(a).unwrap().nlink, fs.stat(b).unwrap().nlink), (3, 2));
        assert_eq!(fs.path_of(d).unwrap(), b"/a/f");
        // Two directories, in one directory.
        let e = fs.mkdir(a, "e", 0o755).unwrap();
        fs.rename_at(ROOT, "a/e", ROOT, "a/f", RenameMode::Exchange).unwrap();
        assert_eq!((fs.path_of(e).unwrap(), fs.path_of(d).unwrap()), (b"/a/f".to_vec(), b"/a/e".to_vec()));
        fs.check();
    }

    #[test]
    fn chmod_sets_permission_bits_only() {
        let mut fs = linked();
        let f = fs.lookup(ROOT, "f").unwrap();
        let d = fs.lookup(ROOT, "d").unwrap();
        fs.chmod(f, 0o170_4751).unwrap();
        assert_eq!(fs.stat(f).unwrap().mode, S_IFREG | 0o4751);
        fs.chmod(d, 0o700).unwrap();
        assert_eq!(fs.stat(d).unwrap().mode, S_IFDIR | 0o700);
        let lf = fs.lookup_nofollow(ROOT, "lf").unwrap();
        assert_eq!(fs.chmod(lf, 0o600), Err(FsError::NotSupported));
        assert_eq!(FsError::NotSupported.errno(), 95);
        assert_eq!(fs.stat(lf).unwrap().mode, S_IFLNK | 0o777);
        assert_eq!(fs.chmod(999, 0o600), Err(FsError::NotFound));
        fs.check();
    }

    /// (atime, mtime, ctime) seconds of the inode at `path`, not followed.
    fn times(fs: &RamFs<'_>, path: &str) -> (i64, i64, i64) {
        let st = fs.stat(fs.lookup_nofollow(ROOT, path).unwrap()).unwrap();
        (st.atime.sec, st.mtime.sec, st.ctime.sec)
    }

    #[test]
    fn times_follow_linux_rules() {
        let mut fs = RamFs::new();
        assert_eq!(times(&fs, "/"), (0, 0, 0));
        fs.set_clock(test_clock);
        set_now(10);
        let d = fs.mkdir(ROOT, "d", 0o755).unwrap();
        let f = fs.create(d, "f", 0o644).unwrap();
        assert_eq!(fs.stat(f).unwrap().mtime, at(10));
        assert_eq!((times(&fs, "d/f"), times(&fs, "d"), times(&fs, "/")), ((10, 10, 10), (10, 10, 10), (0, 10, 10)));
        set_now(20);
        fs.write(f, 0, b"").unwrap();
        assert_eq!(times(&fs, "d/f"), (10, 10, 10), "an empty write changes nothing");
        fs.write(f, 0, b"x").unwrap();
        assert_eq!(times(&fs, "d/f"), (10, 20, 20));
        let mut buf = [0; 4];
        set_now(25);
        fs.read(f, 0, &mut buf).unwrap();
        assert_eq!(times(&fs, "d/f"), (10, 20, 20), "noatime");
        fs.truncate(f, 1).unwrap();
        assert_eq!(times(&fs, "d/f"), (10, 25, 25), "as ftruncate, even at the same size");
        set_now(30);
        fs.chmod(f, 0o600).unwrap();
        assert_eq!(times(&fs, "d/f"), (10, 25, 30));
        assert_eq!(times(&fs, "d"), (10, 10, 10));
        set_now(40);
        fs.link(ROOT, "d/f", "f2").unwrap();
        assert_eq!((times(&fs, "d/f"), times(&fs, "/"), times(&fs, "d")), ((10, 25, 40), (0, 40, 40), (10, 10, 10)));
        set_now(50);
        fs.unlink_path(ROOT, "f2").unwrap();
        assert_eq!((times(&fs, "d/f"), times(&fs, "/")), ((10, 25, 50), (0, 50, 50)));
        set_now(60);
        fs.rename(ROOT, "d/f", "g").unwrap();
        assert_eq!((times(&fs, "g"), times(&fs, "/"), times(&fs, "d")), ((10, 25, 60), (0, 60, 60), (10, 60, 60)));
        set_now(70);
        let h = fs.create(ROOT, "h", 0o644).unwrap();
        fs.create(ROOT, "k", 0o644).unwrap();
        fs.hold(h).unwrap();
        set_now(75);
        fs.rename(ROOT, "k", "h").unwrap();
        assert_eq!(fs.stat(h).unwrap().ctime, at(75), "the replaced inode's ctime");
        fs.release(h);
        set_now(80);
        fs.symlink(d, "x", "sym").unwrap();
        assert_eq!((times(&fs, "d/sym"), times(&fs, "d")), ((80, 80, 80), (10, 80, 80)));
        set_now(90);
        let g = fs.lookup(ROOT, "g").unwrap();
        fs.utimens(g, None, None).unwrap();
        assert_eq!(times(&fs, "g"), (10, 25, 60), "both omitted: nothing");
        fs.utimens(g, Some(Time { sec: 5, nsec: 999 }), None).unwrap();
        assert_eq!(times(&fs, "g"), (5, 25, 90));
        assert_eq!(fs.stat(g).unwrap().atime.nsec, 999);
        fs.utimens(g, None, Some(at(-3))).unwrap();
        assert_eq!(times(&fs, "g"), (5, -3, 90));
        set_now(100);
        fs.mkdir(d, "sd", 0o755).unwrap();
        set_now(110);
        fs.rmdir(d, "sd").unwrap();
        assert_eq!(times(&fs, "d"), (10, 110, 110));
        set_now(120);
        let mut o = opts(false, false, false);
        o.truncate = true;
        fs.open(ROOT, "g", &o).unwrap();
        assert_eq!(times(&fs, "g"), (5, 120, 120), "O_TRUNC, even of an empty file");
        set_now(130);
        fs.rename_at(ROOT, "g", ROOT, "d", RenameMode::Exchange).unwrap();
        assert_eq!((times(&fs, "g").2, times(&fs, "d").2, times(&fs, "/")), (130, 130, (0, 130, 130)));
        fs.check();
    }

    #[test]
    fn a_char_device_is_a_node_with_a_number() {
        let mut fs = RamFs::new();
        let dev = fs.mkdir(ROOT, "dev", 0o755).unwrap();
        let null = fs.mknod_chr(dev, "null", 0o666, 1 << 8 | 3).unwrap();
        let st = fs.stat(null).unwrap();
        assert_eq!((st.mode, st.kind, st.rdev, st.size, st.nlink), (S_IFCHR | 0o666, Kind::CharDev, 0x103, 0, 1));
        assert_eq!(Kind::CharDev.dt(), 2);
        assert_eq!(fs.readdir(dev).unwrap().nth(2).unwrap().kind, Kind::CharDev);
        assert_eq!(fs.mknod_chr(dev, "null", 0o666, 0), Err(FsError::Exists));
        let mut o = OpenOptions { write: true, truncate: true, ..Default::default() };
        assert_eq!(fs.open(ROOT, "/dev/null", &o), Ok(null));
        o.create = true;
        assert_eq!(fs.open(ROOT, "/dev/null", &o), Ok(null));
        assert_eq!(fs.read(null, 0, &mut [0; 4]), Err(FsError::Invalid));
        assert_eq!(fs.write(null, 0, b"x"), Err(FsError::Invalid));
        assert_eq!(fs.truncate(null, 0), Err(FsError::Invalid));
        fs.link(ROOT, "/dev/null", "/null2").unwrap();
        assert_eq!(fs.stat(null).unwrap().nlink, 2);
        fs.check();
        fs.unlink_path(ROOT, "/dev/null").unwrap();
        fs.unlink_path(ROOT, "/null2").unwrap();
        assert_eq!(fs.stat(null), Err(FsError::NotFound));
        assert_eq!(fs.counts(), (0, 2));
        fs.check();
    }

    #[test]
    fn from_cpio_unpacks_links_and_walks_through_them() {
        let archive = write_newc(&[
            ("usr/bin/busybox", FILE, b"\x7fELF bb"),
            cpio::symlink_entry("bin", "usr/bin"),
            cpio::symlink_entry("bin/sh", "busybox"),
            cpio::symlink_entry("bin/ls", "/usr/bin/busybox"),
            cpio::symlink_entry("old", "first"),
            cpio::symlink_entry("old", "second"),
            ("sbin/init", S_IFLNK | 0o777, b"../bin/sh"),
        ])
        .unwrap();
        let fs = RamFs::from_cpio(&archive).unwrap();
        fs.check();
        let bb = fs.lookup(ROOT, "usr/bin/busybox").unwrap();
        assert_eq!(fs.lookup(ROOT, "usr/bin/sh"), Ok(bb));
        assert_eq!(fs.lookup(ROOT, "bin/ls"), Ok(bb));
        assert_eq!(fs.lookup(ROOT, "sbin/init"), Ok(bb));
        assert_eq!(fs.readlink(ROOT, "old"), Ok(&b"second"[..]));
        assert_eq!(fs.stat(fs.lookup_nofollow(ROOT, "bin/sh").unwrap()).unwrap().mode, S_IFLNK | 0o777);
        assert_eq!(fs.used_bytes(), 0);
        type Archive<'x> = &'x [(&'x str, u32, &'x [u8])];
        let bad: [(Archive<'_>, &str, FsError); 5] = [
            (&[("l", S_IFLNK | 0o777, b"")], "l", FsError::NotFound),
            (&[("l", S_IFLNK | 0o777, b"a\0")], "l", FsError::Invalid),
            (&[("f", FILE, b""), ("f", S_IFLNK | 0o777, b"x")], "f", FsError::Exists),
            (&[("l", S_IFLNK | 0o777, b"x"), ("l", DIR, b"")], "l", FsError::Exists),
            (&[("l", S_IFLNK | 0o777, b"nowhere"), ("l/f", FILE, b"")], "l/f", FsError::NotFound),
        ];
        for (entries, name, error) in bad {
            let a = write_newc(entries).unwrap();
            assert_eq!(RamFs::from_cpio(&a).unwrap_err(), LoadError::Entry { name, error });
        }
        let long = "t".repeat(PATH_MAX);
        let a = write_newc(&[cpio::symlink_entry("l", &long)]).unwrap();
        assert!(matches!(RamFs::from_cpio(&a), Err(LoadError::Entry { error: FsError::NameTooLong, .. })));
        let a =
            write_newc(&[cpio::symlink_entry("a", "b"), cpio::symlink_entry("b", "a"), ("a/x", FILE, b"")]).unwrap();
        assert!(matches!(RamFs::from_cpio(&a), Err(LoadError::Entry { error: FsError::Loop, .. })));
    }

    #[derive(Clone, Debug)]
    enum LinkOp {
        Symlink(String, String),
        Link(String, String, bool),
        Rename(String, String, u8),
        Unlink(String),
        Rmdir(String),
        Mkdir(String),
        Create(String),
        Hold(String),
        Release(usize),
    }

    fn arb_link_op() -> impl Strategy<Value = LinkOp> {
        let p = || {
            proptest::collection::vec(prop::sample::select(&["a", "b", "c", "..", "."][..]), 1..4)
                .prop_map(|v| v.join("/"))
        };
        prop_oneof![
            (p(), p()).prop_map(|(t, l)| LinkOp::Symlink(t, l)),
            (p(), p(), any::<bool>()).prop_map(|(o, n, f)| LinkOp::Link(o, n, f)),
            (p(), p(), 0u8..3).prop_map(|(o, n, m)| LinkOp::Rename(o, n, m)),
            p().prop_map(LinkOp::Unlink),
            p().prop_map(LinkOp::Rmdir),
            p().prop_map(LinkOp::Mkdir),
            p().prop_map(LinkOp::Create),
            p().prop_map(LinkOp::Hold),
            any::<usize>().prop_map(LinkOp::Release),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Whatever links, renames and removals do, the tree stays whole:
        /// link counts, parents, heap bytes (see `check`), no cycle, and
        /// every directory's path leads back to it.
        #[test]
        fn links_and_renames_keep_the_tree_consistent(ops in proptest::collection::vec(arb_link_op(), 1..50)) {
            let mut fs = RamFs::new();
            let mut held = Vec::new();
            for op in &ops {
                let _ = match op {
                    LinkOp::Symlink(t, l) => fs.symlink(ROOT, t, l).map(|_| ()),
                    LinkOp::Link(o, n, f) => fs.link_at(ROOT, o, ROOT, n, *f),
                    LinkOp::Rename(o, n, m) => fs.rename_at(ROOT, o, ROOT, n, RenameMode::from_flags(u32::from(*m)).unwrap()),
                    LinkOp::Unlink(p) => fs.unlink_path(ROOT, p),
                    LinkOp::Rmdir(p) => fs.rmdir_path(ROOT, p),
                    LinkOp::Mkdir(p) => fs.mkdir_path(ROOT, p, 0o755).map(|_| ()),
                    LinkOp::Create(p) => fs.open(ROOT, p, &opts(true, false, false)).map(|_| ()),
                    LinkOp::Hold(p) => fs.lookup(ROOT, p).and_then(|i| { held.push(i); fs.hold(i) }),
                    LinkOp::Release(i) => {
                        if !held.is_empty() {
                            fs.release(held.remove(i % held.len()));
                        }
                        Ok(())
                    }
                };
                fs.check();
                for (ino, node) in fs.inodes.iter() {
                    if node.kind() == Kind::Dir && node.nlink != 0 {
                        let path = fs.path_of(ino).unwrap();
                        prop_assert_eq!(fs.lookup(ROOT, &path), Ok(ino));
                    }
                }
            }
            for ino in held {
                fs.release(ino);
            }
            fs.check();
        }
    }

    const FILE: u32 = S_IFREG | 0o755;
    const DIR: u32 = S_IFDIR | 0o700;

    #[test]
    fn from_cpio_unpacks_files_and_directories_borrowing_the_bytes() {
        let archive = write_newc(&[
            (".", S_IFDIR | 0o711, b""),
            ("bin/init", FILE, b"\x7fELF init"),
            ("etc", DIR, b""),
            ("etc/motd", S_IFREG | 0o644, b"hello"),
            ("bin", S_IFDIR | 0o750, b""),
            ("sh", S_IFLNK | 0o777, b"bin/init"),
            ("a/b/c/", DIR, b""),
            ("./x//y", S_IFREG | 0o600, b"y"),
            ("dev/null", 0o020_666, b""),
        ])
        .unwrap();
        let mut fs = RamFs::from_cpio(&archive).unwrap();
        fs.check();
        assert_eq!(names(&fs, ROOT), [".", "..", "a", "bin", "etc", "sh", "x"]);
        assert_eq!(fs.stat(ROOT).unwrap().mode, S_IFDIR | 0o711);
        let init = fs.lookup(ROOT, "/bin/init").unwrap();
        assert_eq!(fs.data(init).unwrap(), b"\x7fELF init");
        assert_eq!(fs.stat(init).unwrap().mode, FILE);
        assert_eq!(fs.stat(fs.lookup(ROOT, "bin").unwrap()).unwrap().mode, S_IFDIR | 0o750);
        assert_eq!(fs.stat(fs.lookup(ROOT, "a/b").unwrap()).unwrap().mode, S_IFDIR | 0o755);
        assert_eq!(fs.stat(fs.lookup(ROOT, "a/b/c").unwrap()).unwrap().mode, DIR);
        assert_eq!(fs.data(fs.lookup(ROOT, "x/y").unwrap()).unwrap(), b"y");
        // The link borrows its target from the archive too.
        assert_eq!(fs.readlink(ROOT, "sh"), Ok(&b"bin/init"[..]));
        assert_eq!(fs.lookup(ROOT, "sh"), Ok(init));
        // Devices are left to the kernel.
        assert_eq!(fs.lookup(ROOT, "dev"), ENOENT);
        // The archive's bytes are borrowed until written.
        assert_eq!(fs.used_bytes(), 0);
        let motd = fs.lookup(ROOT, "etc/motd").unwrap();
        fs.write(motd, 5, b"!").unwrap();
        assert_eq!(fs.data(motd).unwrap(), b"hello!");
        assert_eq!(fs.used_bytes(), 6);
        fs.truncate(init, 0).unwrap();
        assert_eq!(fs.used_bytes(), 6);
        fs.check();
    }

    #[test]
    fn from_cpio_takes_the_last_copy_and_refuses_conflicts() {
        let a = write_newc(&[("f", FILE, b"old"), ("f", S_IFREG | 0o600, b"new")]).unwrap();
        let fs = RamFs::from_cpio(&a).unwrap();
        let f = fs.lookup(ROOT, "f").unwrap();
        assert_eq!((fs.data(f).unwrap(), fs.stat(f).unwrap().mode), (&b"new"[..], S_IFREG | 0o600));
        type Archive<'x> = &'x [(&'x str, u32, &'x [u8])];
        let conflicts: [(Archive<'_>, &str, FsError); 4] = [
            (&[("f", FILE, b""), ("f/g", FILE, b"")], "f/g", FsError::NotDir),
            (&[("d", DIR, b""), ("d", FILE, b"")], "d", FsError::IsDir),
            (&[("f", FILE, b""), ("f", DIR, b"")], "f", FsError::NotDir),
            (&[("a/../b", FILE, b"")], "a/../b", FsError::Invalid),
        ];
        for (entries, name, error) in conflicts {
            let a = write_newc(entries).unwrap();
            assert_eq!(RamFs::from_cpio(&a).unwrap_err(), LoadError::Entry { name, error });
        }
        let long = "x".repeat(NAME_MAX + 1);
        let a = write_newc(&[(&long, FILE, b"")]).unwrap();
        assert!(matches!(RamFs::from_cpio(&a), Err(LoadError::Entry { error: FsError::NameTooLong, .. })));
        assert_eq!(
            RamFs::from_cpio(b"junk").unwrap_err(),
            LoadError::Archive(cpio::CpioError::Truncated { offset: 0 })
        );
        let e = LoadError::Entry { name: "f/g", error: FsError::NotDir };
        assert_eq!(e.to_string(), "ramfs: cannot unpack 'f/g': not a directory");
    }

    #[test]
    fn writing_an_archive_file_past_the_limit_is_enospc() {
        let a = write_newc(&[("big", FILE, &[7u8; 100])]).unwrap();
        let mut fs = RamFs::from_cpio(&a).unwrap();
        fs.set_limit(50);
        let big = fs.lookup(ROOT, "big").unwrap();
        assert_eq!(fs.write(big, 0, b"x"), Err(FsError::NoSpace));
        assert_eq!(fs.truncate(big, 10), Err(FsError::NoSpace));
        // Emptying it copies nothing.
        assert_eq!(fs.truncate(big, 0), Ok(()));
        assert_eq!(fs.write(big, 0, &[1; 60]), Ok(50));
        fs.check();
    }

    // ---- The model: the tree as a map from path to node. ----

    #[derive(Clone, Debug)]
    enum MNode {
        Dir,
        /// Index into `Model::contents` (a file's bytes outlive its name
        /// while a handle has it open).
        File(usize),
    }

    #[derive(Default, Debug)]
    struct Model {
        nodes: BTreeMap<String, MNode>,
        contents: Vec<Vec<u8>>,
        /// Open handles: (inode, contents index).
        handles: Vec<(Ino, usize)>,
    }

    impl Model {
        /// The error walking to `path`'s parent gives, if any.
        fn parent_error(&self, path: &str) -> Option<FsError> {
            let mut prefix = String::new();
            let parts: Vec<&str> = path.split('/').collect();
            for part in &parts[..parts.len() - 1] {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                match self.nodes.get(&prefix) {
                    None => return Some(FsError::NotFound),
                    Some(MNode::File(_)) => return Some(FsError::NotDir),
                    Some(MNode::Dir) => {}
                }
            }
            None
        }

        fn lookup(&self, path: &str) -> Result<MNode, FsError> {
            if let Some(e) = self.parent_error(path) {
                return Err(e);
            }
            self.nodes.get(path).cloned().ok_or(FsError::NotFound)
        }

        fn children(&self, dir: &str) -> Vec<(String, bool)> {
            let prefix = if dir.is_empty() { String::new() } else { std::format!("{dir}/") };
            self.nodes
                .iter()
                .filter_map(|(p, n)| {
                    let rest = p.strip_prefix(&prefix)?;
                    (!rest.is_empty() && !rest.contains('/')).then(|| (rest.to_string(), matches!(n, MNode::Dir)))
                })
                .collect()
        }

        fn file(&mut self, path: &str) -> Result<usize, FsError> {
            match self.lookup(path)? {
                MNode::File(i) => Ok(i),
                MNode::Dir => Err(FsError::IsDir),
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Mkdir(String),
        Open {
            path: String,
            create: bool,
            exclusive: bool,
            truncate: bool,
        },
        Write(String, u16, Vec<u8>),
        Read(String, u16, u16),
        Truncate(String, u16),
        Unlink(String),
        Rmdir(String),
        Stat(String),
        /// Opens (holds) the file at the path, keeping a handle.
        Hold(String),
        /// Writes through handle `n % handles` (maybe unlinked by now).
        WriteHandle(usize, u16, Vec<u8>),
        Release(usize),
    }

    fn arb_path() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop::sample::select(&["a", "b", "c"][..]), 1..4).prop_map(|v| v.join("/"))
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        let data = || proptest::collection::vec(any::<u8>(), 0..40);
        prop_oneof![
            2 => arb_path().prop_map(Op::Mkdir),
            2 => (arb_path(), any::<bool>(), any::<bool>(), any::<bool>())
                .prop_map(|(path, create, exclusive, truncate)| Op::Open { path, create, exclusive, truncate }),
            3 => (arb_path(), 0u16..100, data()).prop_map(|(p, o, d)| Op::Write(p, o, d)),
            2 => (arb_path(), 0u16..100, 0u16..100).prop_map(|(p, o, n)| Op::Read(p, o, n)),
            1 => (arb_path(), 0u16..100).prop_map(|(p, n)| Op::Truncate(p, n)),
            2 => arb_path().prop_map(Op::Unlink),
            2 => arb_path().prop_map(Op::Rmdir),
            1 => arb_path().prop_map(Op::Stat),
            1 => arb_path().prop_map(Op::Hold),
            1 => (any::<usize>(), 0u16..100, data()).prop_map(|(h, o, d)| Op::WriteHandle(h, o, d)),
            1 => any::<usize>().prop_map(Op::Release),
        ]
    }

    /// The path as the file system is asked: plain, absolute, `./`-led,
    /// with doubled slashes, or through a `..` detour.
    fn spell(path: &str, style: u8) -> String {
        match style % 5 {
            0 => path.to_string(),
            1 => std::format!("/{path}"),
            2 => std::format!("./{path}"),
            3 => path.replace('/', "//"),
            _ => std::format!("/../{path}"),
        }
    }

    fn write_model(bytes: &mut Vec<u8>, offset: usize, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if bytes.len() < offset + data.len() {
            bytes.resize(offset + data.len(), 0);
        }
        bytes[offset..offset + data.len()].copy_from_slice(data);
    }

    fn run_op(fs: &mut RamFs<'_>, m: &mut Model, op: &Op, style: u8) -> Result<(), TestCaseError> {
        match op {
            Op::Mkdir(p) => {
                let want = match (m.parent_error(p), m.nodes.contains_key(p)) {
                    (Some(e), _) => Err(e),
                    (None, true) => Err(FsError::Exists),
                    (None, false) => Ok(()),
                };
                prop_assert_eq!(fs.mkdir_path(ROOT, spell(p, style), 0o755).map(|_| ()), want);
                if want.is_ok() {
                    m.nodes.insert(p.clone(), MNode::Dir);
                }
            }
            Op::Open { path, create, exclusive, truncate } => {
                let how = OpenOptions {
                    create: *create,
                    exclusive: *exclusive,
                    truncate: *truncate,
                    write: true,
                    ..Default::default()
                };
                let want = match (m.parent_error(path), m.nodes.get(path).cloned()) {
                    (Some(e), _) => Err(e),
                    (None, Some(_)) if *create && *exclusive => Err(FsError::Exists),
                    (None, Some(MNode::Dir)) => Err(FsError::IsDir),
                    (None, Some(MNode::File(i))) => {
                        if *truncate {
                            m.contents[i].clear();
                        }
                        Ok(())
                    }
                    (None, None) if *create => {
                        m.contents.push(Vec::new());
                        m.nodes.insert(path.clone(), MNode::File(m.contents.len() - 1));
                        Ok(())
                    }
                    (None, None) => Err(FsError::NotFound),
                };
                prop_assert_eq!(fs.open(ROOT, spell(path, style), &how).map(|_| ()), want);
            }
            Op::Write(p, off, data) => {
                let want = m.file(p);
                let got = fs.lookup(ROOT, spell(p, style)).and_then(|ino| fs.write(ino, u64::from(*off), data));
                prop_assert_eq!(got, want.map(|_| data.len()));
                if let Ok(i) = want {
                    write_model(&mut m.contents[i], usize::from(*off), data);
                }
            }
            Op::Read(p, off, n) => {
                let mut buf = vec![0u8; usize::from(*n)];
                let got = fs.lookup(ROOT, spell(p, style)).and_then(|ino| fs.read(ino, u64::from(*off), &mut buf));
                match m.file(p) {
                    Ok(i) => {
                        let bytes = &m.contents[i];
                        let start = usize::from(*off).min(bytes.len());
                        let end = (start + usize::from(*n)).min(bytes.len());
                        prop_assert_eq!(got, Ok(end - start));
                        prop_assert_eq!(&buf[..end - start], &bytes[start..end]);
                    }
                    Err(e) => prop_assert_eq!(got, Err(e)),
                }
            }
            Op::Truncate(p, n) => {
                let want = m.file(p);
                let got = fs.lookup(ROOT, spell(p, style)).and_then(|ino| fs.truncate(ino, u64::from(*n)));
                prop_assert_eq!(got, want.map(|_| ()));
                if let Ok(i) = want {
                    m.contents[i].resize(usize::from(*n), 0);
                }
            }
            Op::Unlink(p) => {
                let want = match m.lookup(p) {
                    Err(e) => Err(e),
                    Ok(MNode::Dir) => Err(FsError::IsDir),
                    Ok(MNode::File(_)) => Ok(()),
                };
                prop_assert_eq!(fs.unlink_path(ROOT, spell(p, style)), want);
                if want.is_ok() {
                    m.nodes.remove(p);
                }
            }
            Op::Rmdir(p) => {
                let want = match m.lookup(p) {
                    Err(e) => Err(e),
                    Ok(MNode::File(_)) => Err(FsError::NotDir),
                    Ok(MNode::Dir) if !m.children(p).is_empty() => Err(FsError::NotEmpty),
                    Ok(MNode::Dir) => Ok(()),
                };
                prop_assert_eq!(fs.rmdir_path(ROOT, spell(p, style)), want);
                if want.is_ok() {
                    m.nodes.remove(p);
                }
            }
            Op::Stat(p) => {
                let got = fs.lookup(ROOT, spell(p, style)).and_then(|ino| fs.stat(ino));
                match m.lookup(p) {
                    Err(e) => prop_assert_eq!(got, Err(e)),
                    Ok(MNode::File(i)) => {
                        let st = got.unwrap();
                        prop_assert_eq!((st.kind, st.size, st.nlink), (Kind::File, m.contents[i].len() as u64, 1));
                    }
                    Ok(MNode::Dir) => {
                        let st = got.unwrap();
                        let subdirs = m.children(p).iter().filter(|(_, d)| *d).count() as u32;
                        prop_assert_eq!((st.kind, st.nlink), (Kind::Dir, 2 + subdirs));
                    }
                }
            }
            Op::Hold(p) => {
                if let Ok(MNode::File(i)) = m.lookup(p) {
                    let ino = fs.lookup(ROOT, p).unwrap();
                    fs.hold(ino).unwrap();
                    m.handles.push((ino, i));
                }
            }
            Op::WriteHandle(h, off, data) => {
                if !m.handles.is_empty() {
                    let (ino, i) = m.handles[h % m.handles.len()];
                    prop_assert_eq!(fs.write(ino, u64::from(*off), data), Ok(data.len()));
                    write_model(&mut m.contents[i], usize::from(*off), data);
                    prop_assert_eq!(fs.data(ino).unwrap(), &m.contents[i][..]);
                }
            }
            Op::Release(h) => {
                if !m.handles.is_empty() {
                    let (ino, _) = m.handles.remove(h % m.handles.len());
                    fs.release(ino);
                }
            }
        }
        Ok(())
    }

    /// The whole tree against the model: names, kinds, bytes, heap use.
    fn compare(fs: &RamFs<'_>, m: &Model) -> Result<(), TestCaseError> {
        fs.check();
        let mut dirs = vec![String::new()];
        dirs.extend(m.nodes.iter().filter(|(_, n)| matches!(n, MNode::Dir)).map(|(p, _)| p.clone()));
        for dir in dirs {
            let ino = if dir.is_empty() { ROOT } else { fs.lookup(ROOT, &dir).unwrap() };
            let got: Vec<(String, bool)> = fs
                .readdir(ino)
                .unwrap()
                .skip(2)
                .map(|e| (String::from_utf8(e.name.to_vec()).unwrap(), e.kind == Kind::Dir))
                .collect();
            prop_assert_eq!(got, m.children(&dir), "directory '{}'", dir);
            let path = fs.path_of(ino).unwrap();
            prop_assert_eq!(path, std::format!("/{dir}").into_bytes());
        }
        let mut live: BTreeMap<usize, ()> = BTreeMap::new();
        for (p, n) in &m.nodes {
            if let MNode::File(i) = n {
                prop_assert_eq!(fs.data(fs.lookup(ROOT, p).unwrap()).unwrap(), &m.contents[*i][..], "file '{}'", p);
                live.insert(*i, ());
            }
        }
        for (_, i) in &m.handles {
            live.insert(*i, ());
        }
        // Every file was made empty and written: all its bytes are on the heap.
        let used: usize = live.keys().map(|&i| m.contents[i].len()).sum();
        prop_assert_eq!(fs.used_bytes(), used as u64);
        let files = live.len();
        let dirs = 1 + m.nodes.values().filter(|n| matches!(n, MNode::Dir)).count();
        prop_assert_eq!(fs.counts(), (files, dirs));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn matches_the_model(ops in proptest::collection::vec((arb_op(), any::<u8>()), 1..60)) {
            let mut fs = RamFs::new();
            let mut m = Model::default();
            for (op, style) in &ops {
                run_op(&mut fs, &mut m, op, *style)?;
                fs.check();
            }
            compare(&fs, &m)?;
            // Closing every handle frees what only they kept.
            for (ino, _) in core::mem::take(&mut m.handles) {
                fs.release(ino);
            }
            compare(&fs, &m)?;
        }

        #[test]
        fn any_path_resolves_like_a_stack_walk(
            parts in proptest::collection::vec(prop::sample::select(&["a", "b", "f", ".", "..", "", "zz"][..]), 0..8),
            absolute in any::<bool>(),
            from_a in any::<bool>(),
        ) {
            // /a/b (dir), /a/f and /f (files).
            let mut fs = RamFs::new();
            let a = fs.mkdir(ROOT, "a", 0o755).unwrap();
            let ab = fs.mkdir(a, "b", 0o755).unwrap();
            let af = fs.create(a, "f", 0o644).unwrap();
            let f = fs.create(ROOT, "f", 0o644).unwrap();
            let path = std::format!("{}{}", if absolute { "/" } else { "" }, parts.join("/"));
            // An empty first part makes the path absolute too.
            let absolute = path.starts_with('/');
            let cwd = if from_a { a } else { ROOT };
            // The model: a stack of (name, ino) from the root.
            let mut stack: Vec<Ino> = if absolute || !from_a { vec![ROOT] } else { vec![ROOT, a] };
            let mut want = Ok(());
            for part in parts.iter().filter(|p| !p.is_empty()) {
                let top = *stack.last().unwrap();
                if top == af || top == f {
                    want = Err(FsError::NotDir);
                    break;
                }
                match *part {
                    "." => {}
                    ".." => {
                        if stack.len() > 1 {
                            stack.pop();
                        }
                    }
                    name => {
                        let next = match (top, name) {
                            (ROOT, "a") => a,
                            (ROOT, "f") => f,
                            (t, "b") if t == a => ab,
                            (t, "f") if t == a => af,
                            _ => {
                                want = Err(FsError::NotFound);
                                break;
                            }
                        };
                        stack.push(next);
                    }
                }
            }
            let top = *stack.last().unwrap();
            let want = want.and_then(|()| {
                if path.is_empty() {
                    Err(FsError::NotFound)
                } else if (path.ends_with('/') || parts.last().is_some_and(|p| *p == "." || *p == ".."))
                    && (top == af || top == f)
                {
                    Err(FsError::NotDir)
                } else {
                    Ok(top)
                }
            });
            prop_assert_eq!(fs.lookup(cwd, &path), want, "path {:?}", path);
        }

        #[test]
        fn arbitrary_archives_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut a = b"070701".to_vec();
            a.extend_from_slice(&bytes);
            if let Ok(fs) = RamFs::from_cpio(&a) {
                fs.check();
            }
        }

        #[test]
        fn archives_of_random_names_unpack_consistently(
            entries in proptest::collection::vec(
                ("[ab./]{1,8}", any::<bool>(), proptest::collection::vec(any::<u8>(), 0..8)), 0..10),
        ) {
            let list: Vec<(&str, u32, &[u8])> = entries
                .iter()
                .map(|(n, dir, d)| (n.as_str(), if *dir { DIR } else { FILE }, &d[..]))
                .collect();
            let Ok(a) = write_newc(&list) else { return Ok(()) };
            if let Ok(fs) = RamFs::from_cpio(&a) {
                fs.check();
                prop_assert_eq!(fs.used_bytes(), 0);
                // Each path holds what its last entry (however spelled) said.
                let canonical = |n: &str| n.split('/').filter(|c| !c.is_empty() && *c != ".").collect::<Vec<_>>().join("/");
                for (name, _, _) in &entries {
                    let path = canonical(name);
                    let (_, dir, data) = entries.iter().rev().find(|(n, _, _)| canonical(n) == path).unwrap();
                    let ino = fs.lookup(ROOT, std::format!("/{path}")).unwrap();
                    if *dir {
                        prop_assert_eq!(fs.stat(ino).unwrap().kind, Kind::Dir);
                    } else {
                        prop_assert_eq!(fs.data(ino).unwrap(), &data[..]);
                    }
                }
            }
        }
    }
}
