//! The kernel's file system: one RAM file system (`klib::ramfs`) unpacked
//! from the initrd, behind a lock. `files` puts the file system calls on it.
//!
//! The initrd's files borrow its bytes (it stays in memory for the kernel's
//! life) until first written; written bytes live on the kernel heap, of
//! which files may take half, so a process filling the disk gets ENOSPC
//! instead of starving the kernel.

pub mod dev;
pub mod files;
pub mod paths;
pub mod pipe;
pub mod poll;
pub mod procfs;

pub use klib::ramfs::{FsError, Ino, Kind, ROOT, Stat};

use alloc::vec::Vec;
use klib::ramfs::RamFs;
use spin::Mutex;

static FS: Mutex<Option<RamFs<'static>>> = Mutex::new(None);

/// The file system as the calls see it.
pub type RamFsRef = RamFs<'static>;

/// Unpacks the initrd into the file system. Call once at boot, after
/// `mm::init` (it needs the heap and the direct map); the first use of the
/// file system does it otherwise.
pub fn init() {
    with(|fs| {
        let (files, dirs) = fs.counts();
        crate::println!("fs: {} files, {} directories from the initrd", files, dirs);
    });
}

fn load() -> RamFs<'static> {
    let mut fs = match RamFs::from_cpio(crate::proc::initrd()) {
        Ok(fs) => fs,
        Err(e) => {
            // A damaged archive is not half-trusted: start empty.
            crate::println!("fs: {}; the root is empty", e);
            RamFs::new()
        }
    };
    let (_, heap) = crate::mm::heap::stats();
    fs.set_limit(heap / 2);
    fs.set_clock(wall_clock);
    make_dev(&mut fs);
    if fs.lookup(ROOT, "/proc").is_err()
        && let Err(e) = fs.mkdir(ROOT, "proc", 0o555)
    {
        crate::println!("fs: cannot make /proc: {e}");
    }
    fs
}

/// Timestamps come from the wall clock (also UTIME_NOW's time).
pub(super) fn wall_clock() -> klib::ramfs::Time {
    let us = crate::time::realtime_us();
    klib::ramfs::Time { sec: (us / 1_000_000) as i64, nsec: (us % 1_000_000 * 1000) as u32 }
}

/// `/dev` and its nodes (`dev::NODES`), unless the initrd made them.
fn make_dev(fs: &mut RamFs<'static>) {
    let dev = match fs.lookup(ROOT, "/dev") {
        Ok(ino) => ino,
        Err(_) => match fs.mkdir(ROOT, "dev", 0o755) {
            Ok(ino) => ino,
            Err(e) => return crate::println!("fs: cannot make /dev: {e}"),
        },
    };
    for &(name, rdev, mode) in dev::NODES {
        if let Err(e) = fs.mknod_chr(dev, name, mode, rdev)
            && e != FsError::Exists
        {
            crate::println!("fs: cannot make /dev/{name}: {e}");
        }
    }
}

/// Makes `/dev/NAME`, a character device `rdev` (a module's), mode 0666.
pub fn make_node(name: &str, rdev: u64) -> Result<(), FsError> {
    with(|fs| {
        let dev = fs.lookup(ROOT, "/dev")?;
        fs.mknod_chr(dev, name, 0o666, rdev).map(|_| ())
    })
}

/// Removes `/dev/NAME` (a module's device that is gone); descriptions
/// still open on it keep the node, as after any unlink.
pub fn remove_node(name: &str) {
    with(|fs| {
        if let Ok(dev) = fs.lookup(ROOT, "/dev") {
            let _ = fs.unlink(dev, name);
        }
    })
}

/// Runs `f` on the file system, with interrupts off so the lock is never
/// held across a switch. `f` must not drop an `OpenFile` (its `Drop` takes
/// this lock) nor touch user memory (copy it before or after).
pub fn with<R>(f: impl FnOnce(&mut RamFs<'static>) -> R) -> R {
    crate::arch::without_interrupts(|| {
        let mut fs = FS.lock();
        f(fs.get_or_insert_with(load))
    })
}

/// The whole regular file at `path` (from `cwd` when relative), for the
/// ELF loader. A directory is `IsDir` (execve's EACCES); out of heap is
/// `NoSpace` (ENOMEM).
pub fn read_file(cwd: Ino, path: impl AsRef<[u8]>) -> Result<Vec<u8>, FsError> {
    with(|fs| {
        let ino = fs.lookup(cwd, path)?;
        copy_of(fs, ino)
    })
}

/// The whole regular file `ino`, copied (out of heap is `NoSpace`).
pub fn read_ino(ino: Ino) -> Result<Vec<u8>, FsError> {
    with(|fs| copy_of(fs, ino))
}

fn copy_of(fs: &RamFs<'static>, ino: Ino) -> Result<Vec<u8>, FsError> {
    let data = fs.data(ino)?;
    let mut copy = Vec::new();
    copy.try_reserve_exact(data.len()).map_err(|_| FsError::NoSpace)?;
    copy.extend_from_slice(data);
    Ok(copy)
}

/// What `stat` says of `path` (from `cwd` when relative): the mode bits
/// let execve refuse a file without execute permission (EACCES).
pub fn stat_path(cwd: Ino, path: impl AsRef<[u8]>) -> Result<Stat, FsError> {
    with(|fs| fs.lookup(cwd, path).and_then(|ino| fs.stat(ino)))
}

crate::ktest!(
    fn the_initrd_is_unpacked_into_the_file_system() {
        let image = crate::proc::initrd();
        let mut checked = 0;
        for entry in klib::cpio::entries(image).flatten().filter(|e| e.is_file()) {
            // The last copy of a name wins in both.
            if klib::cpio::find(image, entry.name) == Some(entry.data) {
                let bytes = read_file(ROOT, entry.name).map_err(|e| alloc::format!("{}: {e}", entry.name))?;
                crate::kassert!(bytes == entry.data, "{} differs from the initrd", entry.name);
                let st = stat_path(ROOT, alloc::format!("/{}", entry.name)).map_err(|e| alloc::format!("{e}"))?;
                crate::kassert_eq!(st.mode, entry.mode);
                checked += 1;
            }
        }
        crate::kassert!(checked > 0 || image.is_empty(), "no file of the initrd was checked");
        crate::kassert_eq!(read_file(ROOT, "/"), Err(FsError::IsDir));
        crate::kassert_eq!(read_file(ROOT, "/no/such/file"), Err(FsError::NotFound));
        Ok(())
    }
);
