//! The character devices of `/dev`: null, zero, full, random, urandom,
//! tty and console (which are the console), and those modules register.
//! The nodes live in the RAM file system with their device numbers;
//! opening one gives a description whose reads and writes land here.

use super::files::errno::{EFAULT, ENOSPC};
use crate::mm::usercopy::copy_to_user;

/// The devices, by what they do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dev {
    /// Reads end at once, writes vanish.
    Null,
    /// Reads give zeros, writes vanish.
    Zero,
    /// Reads give zeros, writes fail with ENOSPC.
    Full,
    /// Reads give random bytes (RDRAND, or the fallback generator, as
    /// `getrandom`), writes are accepted and ignored.
    Random,
    /// A loadable module's device, by its slot (`crate::module`).
    Module(u32),
}

/// `makedev(major, minor)` as Linux's `st_rdev` encodes small numbers.
pub const fn rdev(major: u64, minor: u64) -> u64 {
    (major << 8) | minor
}

/// Every node `/dev` gets at boot: name, device number, mode.
pub const NODES: &[(&str, u64, u32)] = &[
    ("null", rdev(1, 3), 0o666),
    ("zero", rdev(1, 5), 0o666),
    ("full", rdev(1, 7), 0o666),
    ("random", rdev(1, 8), 0o666),
    ("urandom", rdev(1, 9), 0o666),
    ("tty", rdev(5, 0), 0o666),
    ("console", rdev(5, 1), 0o600),
];

/// What a device number opens: a device here, or the console.
pub enum Opens {
    Dev(Dev),
    Console,
}

pub fn opens(rdev_: u64) -> Option<Opens> {
    Some(match rdev_ {
        r if r == rdev(1, 3) => Opens::Dev(Dev::Null),
        r if r == rdev(1, 5) => Opens::Dev(Dev::Zero),
        r if r == rdev(1, 7) => Opens::Dev(Dev::Full),
        r if r == rdev(1, 8) || r == rdev(1, 9) => Opens::Dev(Dev::Random),
        r if r == rdev(5, 0) || r == rdev(5, 1) => Opens::Console,
        r => Opens::Dev(Dev::Module(crate::module::device_slot(r)?)),
    })
}

/// read(2) of `len` bytes into user memory at `buf`.
pub fn read(dev: Dev, root: u64, buf: u64, len: u64) -> Result<u64, i64> {
    match dev {
        Dev::Null => return Ok(0),
        Dev::Module(slot) => return crate::module::dev_read(slot, root, buf, len),
        _ => {}
    }
    // As Linux's /dev/zero, a read moves at most MAX_RW_COUNT bytes; a
    // chunk at a time, so a huge read needs no huge buffer.
    let len = len.min(0x7fff_f000);
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        if dev == Dev::Random {
            crate::proc::syscall::random_bytes(&mut chunk[..n]);
        }
        if copy_to_user(root, buf.wrapping_add(done), &chunk[..n]).is_err() {
            return if done > 0 { Ok(done) } else { Err(EFAULT) };
        }
        done += n as u64;
    }
    Ok(done)
}

/// write(2): every byte taken, except by `/dev/full`.
pub fn write(dev: Dev, root: u64, buf: u64, len: u64) -> Result<u64, i64> {
    match dev {
        Dev::Full => Err(ENOSPC),
        Dev::Module(slot) => crate::module::dev_write(slot, root, buf, len),
        _ => Ok(len.min(0x7fff_f000)),
    }
}
