//! The NK's two logs as data: the hash-chained system-call audit log and
//! the write log of write-logged regions, with the checks a reader runs.

/// SipHash-2-4 of `words` (each taken as 8 little-endian bytes). A fast,
/// well-studied 64-bit hash; the key is public, so the chain guards
/// integrity only together with the head the NK keeps (see `verify`).
pub fn siphash24(k0: u64, k1: u64, words: &[u64]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let round = |v: &mut [u64; 4]| {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    };
    let compress = |v: &mut [u64; 4], m: u64| {
        v[3] ^= m;
        round(v);
        round(v);
        v[0] ^= m;
    };
    for &m in words {
        compress(&mut v, m);
    }
    compress(&mut v, ((words.len() as u64 * 8) & 0xff) << 56);
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The chain's key: public ("nested k", "ernel au").
const KEY: (u64, u64) = (0x6b20_6465_7473_656e, 0x7561_206c_656e_7265);

/// What the outer kernel reports about one system call: who made it, the
/// call and its arguments (entry), and its result (exit).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditEntry {
    pub pid: u64,
    pub nr: u64,
    pub args: [u64; 6],
    pub result: u64,
    /// `NO_RETURN` for a call recorded at entry because it never returns
    /// (`exit`): `result` is then meaningless.
    pub flags: u64,
}

impl AuditEntry {
    pub const NO_RETURN: u64 = 1;
    /// A record the NK itself wrote when the monitor was switched (see
    /// `monitor`); `audit_append` refuses entries that carry it.
    pub const SWITCH: u64 = 2;
    /// The flags an outer kernel's entry may carry.
    pub const OUTER_FLAGS: u64 = Self::NO_RETURN;
}

/// One audit-log record: the entry, its sequence number and the chain hash
/// over the previous record's hash and this record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: u64,
    pub entry: AuditEntry,
    pub hash: u64,
}

impl AuditRecord {
    /// Seals `entry` as record `seq` after a record whose hash is `prev`.
    pub fn new(seq: u64, entry: AuditEntry, prev: u64) -> Self {
        let mut r = Self { seq, entry, hash: 0 };
        r.hash = r.chain(prev);
        r
    }

    /// The hash this record must carry if the one before it carries `prev`.
    pub fn chain(&self, prev: u64) -> u64 {
        let e = &self.entry;
        let [a0, a1, a2, a3, a4, a5] = e.args;
        let words = [prev, self.seq, e.pid, e.nr, a0, a1, a2, a3, a4, a5, e.result, e.flags];
        siphash24(KEY.0, KEY.1, &words)
    }
}

/// The audit log's state, which the NK keeps beside the records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditHead {
    /// The next record's sequence number: records ever appended.
    pub next_seq: u64,
    /// Records overwritten because the ring was full (the oldest go first).
    pub dropped: u64,
    /// The hash of the last dropped record (0 before any), which the first
    /// record still kept chains from.
    pub anchor: u64,
    /// The hash of the newest record (0 while empty).
    pub head: u64,
}

impl AuditHead {
    /// The sequence number of the oldest record still kept.
    pub fn first_seq(&self) -> u64 {
        self.dropped
    }
}

/// Why a log does not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// A record is missing or out of order here: `found` instead of `expected`.
    Gap { expected: u64, found: u64 },
    /// Record `seq`'s hash does not follow from the one before it: it or an
    /// earlier record was altered.
    BadHash { seq: u64 },
    /// The records end before the NK's head: the newest were removed.
    Truncated { expected: u64, found: u64 },
    /// The last record's hash is not the head's: a record was altered and
    /// the chain recomputed after it.
    HeadMismatch,
}

impl core::fmt::Display for ChainError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Gap { expected, found } => write!(f, "record {expected} expected, found {found}"),
            Self::BadHash { seq } => write!(f, "record {seq} does not chain from the one before it"),
            Self::Truncated { expected, found } => write!(f, "the log ends at {found}, the head says {expected}"),
            Self::HeadMismatch => f.write_str("the last record's hash is not the head"),
        }
    }
}

/// Checks that `records` (oldest first) are exactly the records `head`
/// describes: consecutive from the first kept, each chained from the one
/// before (the first from the anchor), the last equal to the head.
/// Returns how many records it checked.
pub fn verify<'r>(head: &AuditHead, records: impl IntoIterator<Item = &'r AuditRecord>) -> Result<u64, ChainError> {
    let mut expected = head.first_seq();
    let mut prev = head.anchor;
    for r in records {
        if r.seq != expected {
            return Err(ChainError::Gap { expected, found: r.seq });
        }
        if r.hash != r.chain(prev) {
            return Err(ChainError::BadHash { seq: r.seq });
        }
        prev = r.hash;
        expected += 1;
    }
    if expected != head.next_seq {
        return Err(ChainError::Truncated { expected: head.next_seq, found: expected });
    }
    if prev != head.head {
        return Err(ChainError::HeadMismatch);
    }
    Ok(expected - head.first_seq())
}

/// One write to a write-logged region, as the NK's write log keeps it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteRecord {
    pub seq: u64,
    /// The return address of the `nk_write` call: where in the outer
    /// kernel the write came from.
    pub caller: u64,
    pub dst: u64,
    pub len: u64,
    pub old: [u8; crate::mediate::MAX_LOGGED_WRITE],
    pub new: [u8; crate::mediate::MAX_LOGGED_WRITE],
}

/// Why a replay failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// Record `seq`'s old bytes are not what the replay holds there: a
    /// record was forged, altered or removed before it.
    OldBytes { seq: u64 },
    /// Records are not consecutive.
    Gap { expected: u64, found: u64 },
}

/// Replays `records` (oldest first) of the region at `base` onto `image`,
/// which holds the region's shadow (its bytes before the oldest record).
/// Records of other regions are skipped. Afterwards `image` is what the
/// region must hold if every change went through `nk_write`.
pub fn replay<'r>(
    image: &mut [u8],
    base: u64,
    records: impl IntoIterator<Item = &'r WriteRecord>,
) -> Result<(), ReplayError> {
    let mut next: Option<u64> = None;
    for r in records {
        if let Some(expected) = next
            && r.seq != expected
        {
            return Err(ReplayError::Gap { expected, found: r.seq });
        }
        next = Some(r.seq + 1);
        let len = (r.len as usize).min(crate::mediate::MAX_LOGGED_WRITE);
        let Some(offset) = r.dst.checked_sub(base) else { continue };
        let Some(target) = usize::try_from(offset).ok().and_then(|o| image.get_mut(o..o.checked_add(len)?)) else {
            continue;
        };
        if target != &r.old[..len] {
            return Err(ReplayError::OldBytes { seq: r.seq });
        }
        target.copy_from_slice(&r.new[..len]);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
