//! Resource limits (`getrlimit`, `setrlimit`, `prlimit64`) and the
//! file-mode creation mask (`umask`), kept per process and inherited by
//! `fork` and `execve`. Of the limits only RLIMIT_NOFILE is enforced
//! (through the descriptor table); the others are kept and reported, so a
//! program that lowers one and reads it back sees what it set.

use super::syscall::errno;
use super::{Pid, with_current};
use crate::mm::usercopy::{copy_from_user, copy_to_user};

pub const RLIM_INFINITY: u64 = u64::MAX;
pub const RLIMIT_STACK: usize = 3;
pub const RLIMIT_CORE: usize = 4;
pub const RLIMIT_NPROC: usize = 6;
pub const RLIMIT_NOFILE: usize = 7;
pub const RLIMIT_MEMLOCK: usize = 8;
pub const RLIMIT_SIGPENDING: usize = 11;
pub const RLIMIT_MSGQUEUE: usize = 12;
pub const RLIMIT_NICE: usize = 13;
pub const RLIMIT_RTPRIO: usize = 14;
/// Limits Linux has (RLIM_NLIMITS).
pub const NLIMITS: usize = 16;

/// Soft and hard limit of each resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits([(u64, u64); NLIMITS]);

impl Default for Limits {
    /// What Linux gives init, except where this kernel's own bounds are
    /// lower: descriptors (the table's size) and processes.
    fn default() -> Self {
        let mut l = [(RLIM_INFINITY, RLIM_INFINITY); NLIMITS];
        l[RLIMIT_STACK] = (8 << 20, RLIM_INFINITY);
        l[RLIMIT_CORE] = (0, RLIM_INFINITY);
        let procs = super::MAX_PROCESSES as u64;
        l[RLIMIT_NPROC] = (procs, procs);
        let fds = crate::fs::files::MAX_FDS as u64;
        l[RLIMIT_NOFILE] = (fds, fds);
        l[RLIMIT_MEMLOCK] = (8 << 20, 8 << 20);
        l[RLIMIT_SIGPENDING] = (procs, procs);
        l[RLIMIT_MSGQUEUE] = (819_200, 819_200);
        l[RLIMIT_NICE] = (0, 0);
        l[RLIMIT_RTPRIO] = (0, 0);
        Limits(l)
    }
}

impl Limits {
    /// RLIMIT_NOFILE's soft limit, which the descriptor table enforces
    /// (`syscall::with_files` hands it over at each call).
    pub fn nofile(&self) -> usize {
        usize::try_from(self.0[RLIMIT_NOFILE].0).unwrap_or(usize::MAX)
    }

    /// Sets `resource` as setrlimit does: EINVAL for soft above hard, EPERM
    /// past a bound this kernel cannot give (as Linux past `nr_open`).
    fn set(&mut self, resource: usize, soft: u64, hard: u64) -> Result<(), i64> {
        if soft > hard {
            return Err(errno::EINVAL);
        }
        let ceiling = match resource {
            RLIMIT_NOFILE => crate::fs::files::MAX_FDS as u64,
            RLIMIT_NPROC => super::MAX_PROCESSES as u64,
            _ => RLIM_INFINITY,
        };
        if hard > ceiling {
            return Err(errno::EPERM);
        }
        self.0[resource] = (soft, hard);
        Ok(())
    }
}

fn rlimit_bytes((soft, hard): (u64, u64)) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&soft.to_le_bytes());
    b[8..].copy_from_slice(&hard.to_le_bytes());
    b
}

/// `prlimit64` (and `getrlimit`/`setrlimit`, its cases for the caller):
/// the old limits into `old`, then the new ones from `new`, either
/// pointer 0 for none. `pid` 0 is the caller; one user, so any process
/// may be asked.
pub fn prlimit(root: u64, pid: i32, resource: u32, new: u64, old: u64) -> Result<u64, i64> {
    let resource = resource as usize;
    if resource >= NLIMITS {
        return Err(errno::EINVAL);
    }
    let wanted = if new != 0 {
        let mut b = [0u8; 16];
        copy_from_user(root, &mut b, new).map_err(|_| errno::EFAULT)?;
        let word = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        Some((word(0), word(1)))
    } else {
        None
    };
    let target: Pid = match pid {
        0 => crate::sched::current(),
        p if p > 0 => p as Pid,
        _ => return Err(errno::EINVAL),
    };
    let prev = super::with_process(target, |p| {
        let prev = p.limits.0[resource];
        if let Some((soft, hard)) = wanted {
            p.limits.set(resource, soft, hard)?;
        }
        Ok::<_, i64>(prev)
    })
    .ok_or(errno::ESRCH)??;
    if old != 0 {
        copy_to_user(root, old, &rlimit_bytes(prev)).map_err(|_| errno::EFAULT)?;
    }
    Ok(0)
}

/// `umask`: sets the mask, returns the old one.
pub fn umask(mask: u32) -> Result<u64, i64> {
    with_current(|p| u64::from(core::mem::replace(&mut p.umask, mask & 0o777))).ok_or(errno::EPERM)
}
