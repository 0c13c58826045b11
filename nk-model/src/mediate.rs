//! Write mediation (I11): the regions the NK protects, their policies, and
//! which `nk_write` each policy lets through. Pure bookkeeping; the NK
//! copies the bytes, keeps the logs and changes the frames.

/// What a region lets `nk_write` do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// One write, then never again: the first `nk_write` (or the
    /// declaration, for existing data) seals the region.
    WriteOnce,
    /// Writes only at the end of what was written, until the region is full.
    AppendOnly,
    /// Any write, each one recorded in the NK's write log with the old and
    /// new bytes and the caller's address.
    WriteLogged,
}

impl Policy {
    pub const fn as_raw(self) -> u64 {
        match self {
            Self::WriteOnce => 1,
            Self::AppendOnly => 2,
            Self::WriteLogged => 3,
        }
    }

    pub const fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            1 => Self::WriteOnce,
            2 => Self::AppendOnly,
            3 => Self::WriteLogged,
            _ => return None,
        })
    }
}

impl core::fmt::Display for Policy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // `pad`, so a table can give the name a width.
        f.pad(match self {
            Self::WriteOnce => "write-once",
            Self::AppendOnly => "append-only",
            Self::WriteLogged => "write-logged",
        })
    }
}

/// Where a region's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// In the NK's own arena (`nk_alloc`).
    Arena,
    /// In outer-kernel frames the NK took over (`nk_declare`).
    Declared,
}

/// One protected region. Addresses are kernel virtual addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub len: u64,
    pub policy: Policy,
    pub backing: Backing,
    /// Write-once: 1 once sealed. Append-only: bytes appended so far.
    /// Write-logged: writes so far.
    pub used: u64,
    /// Write-logged: the arena copy of the region as it was before the
    /// oldest write still in the log (the log's evicted writes are folded
    /// into it). 0 otherwise.
    pub shadow: u64,
}

impl Region {
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.base && addr.checked_add(len).is_some_and(|end| end <= self.base + self.len)
    }

    /// Whether the region holds something its policy promises to keep (a
    /// sealed value, appended records, logged history): then it is never
    /// freed, or freeing would be a way around the policy.
    pub fn keeps_history(&self) -> bool {
        self.used != 0
    }

    /// The arena ranges the region takes: its bytes, its shadow.
    fn arena_spans(&self) -> [Option<(u64, u64)>; 2] {
        let bytes = (self.backing == Backing::Arena).then(|| (self.base, round_up(self.len)));
        let shadow = (self.shadow != 0).then(|| (self.shadow, round_up(self.len)));
        [bytes, shadow]
    }
}

/// A refused service call. The call changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediateError {
    BadPolicy {
        raw: u64,
    },
    /// Zero, or larger than the service accepts.
    BadLength {
        len: u64,
    },
    /// `nk_declare` takes whole pages.
    Unaligned {
        addr: u64,
    },
    /// The range overlaps a region (or the arena, for `nk_declare`).
    Overlap {
        addr: u64,
    },
    /// The arena has no free range that large.
    ArenaFull {
        len: u64,
    },
    TooManyRegions,
    /// No region starts at this address.
    NotARegion {
        addr: u64,
    },
    /// The write is not wholly inside one region.
    Outside {
        addr: u64,
        len: u64,
    },
    /// A write-once region was already written.
    Sealed {
        base: u64,
    },
    /// An append-only write not at the end of what was written.
    NotAtEnd {
        expected: u64,
    },
    /// An append-only region has no room for the write.
    Full {
        base: u64,
    },
    /// A write-logged write longer than a log record holds.
    TooLongToLog {
        len: u64,
    },
    /// The region keeps a sealed value or history, so it is never freed.
    Kept {
        base: u64,
    },
    /// A write's source or a declared range is not in the direct map of RAM.
    NotRam {
        addr: u64,
    },
    /// The monitor is locked on until the next boot.
    MonitorLocked,
    /// No monitor switch numbered so.
    BadSwitch {
        raw: u64,
    },
    /// An audit entry with flags only the NK may set.
    ReservedFlags {
        flags: u64,
    },
}

impl MediateError {
    /// A stable number for the gate's status word, and the one detail word.
    pub const fn to_wire(self) -> (u32, u64) {
        match self {
            Self::BadPolicy { raw } => (1, raw),
            Self::BadLength { len } => (2, len),
            Self::Unaligned { addr } => (3, addr),
            Self::Overlap { addr } => (4, addr),
            Self::ArenaFull { len } => (5, len),
            Self::TooManyRegions => (6, 0),
            Self::NotARegion { addr } => (7, addr),
            Self::Outside { addr, len: _ } => (8, addr),
            Self::Sealed { base } => (9, base),
            Self::NotAtEnd { expected } => (10, expected),
            Self::Full { base } => (11, base),
            Self::TooLongToLog { len } => (12, len),
            Self::Kept { base } => (13, base),
            Self::NotRam { addr } => (14, addr),
            Self::MonitorLocked => (15, 0),
            Self::BadSwitch { raw } => (16, raw),
            Self::ReservedFlags { flags } => (17, flags),
        }
    }

    /// The inverse of `to_wire` (an `Outside` comes back with length 0).
    pub const fn from_wire(code: u32, detail: u64) -> Option<Self> {
        Some(match code {
            1 => Self::BadPolicy { raw: detail },
            2 => Self::BadLength { len: detail },
            3 => Self::Unaligned { addr: detail },
            4 => Self::Overlap { addr: detail },
            5 => Self::ArenaFull { len: detail },
            6 => Self::TooManyRegions,
            7 => Self::NotARegion { addr: detail },
            8 => Self::Outside { addr: detail, len: 0 },
            9 => Self::Sealed { base: detail },
            10 => Self::NotAtEnd { expected: detail },
            11 => Self::Full { base: detail },
            12 => Self::TooLongToLog { len: detail },
            13 => Self::Kept { base: detail },
            14 => Self::NotRam { addr: detail },
            15 => Self::MonitorLocked,
            16 => Self::BadSwitch { raw: detail },
            17 => Self::ReservedFlags { flags: detail },
            _ => return None,
        })
    }
}

impl core::fmt::Display for MediateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::BadPolicy { raw } => write!(f, "no policy numbered {raw}"),
            Self::BadLength { len } => write!(f, "length {len} is zero or too large"),
            Self::Unaligned { addr } => write!(f, "{addr:#x} is not page-aligned"),
            Self::Overlap { addr } => write!(f, "the range overlaps protected memory at {addr:#x}"),
            Self::ArenaFull { len } => write!(f, "the NK arena has no {len} bytes free"),
            Self::TooManyRegions => f.write_str("the NK's region table is full"),
            Self::NotARegion { addr } => write!(f, "no region starts at {addr:#x}"),
            Self::Outside { addr, .. } => write!(f, "the write at {addr:#x} is not inside one region"),
            Self::Sealed { base } => write!(f, "the write-once region at {base:#x} is sealed"),
            Self::NotAtEnd { expected } => write!(f, "append-only: the next write must start at {expected:#x}"),
            Self::Full { base } => write!(f, "the append-only region at {base:#x} is full"),
            Self::TooLongToLog { len } => write!(f, "a logged write of {len} bytes is longer than a log record"),
            Self::Kept { base } => write!(f, "the region at {base:#x} keeps a sealed value or history"),
            Self::NotRam { addr } => write!(f, "{addr:#x} is not in the direct map of RAM"),
            Self::MonitorLocked => f.write_str("the monitor is locked on until the next boot"),
            Self::BadSwitch { raw } => write!(f, "no monitor switch numbered {raw}"),
            Self::ReservedFlags { flags } => write!(f, "audit flags {flags:#x} are the NK's own"),
        }
    }
}

pub const MAX_REGIONS: usize = 32;
/// The largest single `nk_write`: the NK copies with interrupts off.
pub const MAX_WRITE: u64 = 16 * 1024;
/// The most bytes one write-logged write changes (one log record's worth).
pub const MAX_LOGGED_WRITE: usize = 32;
/// Arena allocations start on this boundary.
pub const ARENA_ALIGN: u64 = 64;
const PAGE: u64 = 4096;

fn round_up(len: u64) -> u64 {
    len.div_ceil(ARENA_ALIGN) * ARENA_ALIGN
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.0.saturating_add(b.1) && b.0 < a.0.saturating_add(a.1)
}

/// Where a write goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WritePlan {
    pub slot: usize,
    pub region: Region,
}

/// The region table and the arena it allocates from.
#[derive(Clone, Debug)]
pub struct Regions {
    slots: [Option<Region>; MAX_REGIONS],
    arena: (u64, u64),
}

impl Regions {
    /// An empty table over the arena `[start, start + len)`.
    pub const fn new(start: u64, len: u64) -> Self {
        Self { slots: [None; MAX_REGIONS], arena: (start, len) }
    }

    pub fn arena(&self) -> (u64, u64) {
        self.arena
    }

    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.slots.iter().flatten()
    }

    pub fn get(&self, slot: usize) -> Option<&Region> {
        self.slots.get(slot)?.as_ref()
    }

    /// The slot of the region whose bytes contain `[addr, addr + len)`.
    pub fn find(&self, addr: u64, len: u64) -> Option<usize> {
        self.slots.iter().position(|r| r.is_some_and(|r| r.contains(addr, len)))
    }

    fn free_slot(&self) -> Result<usize, MediateError> {
        self.slots.iter().position(Option::is_none).ok_or(MediateError::TooManyRegions)
    }

    /// First fit: the lowest arena offset where `len` bytes overlap nothing.
    fn arena_room(&self, len: u64) -> Result<u64, MediateError> {
        let need = round_up(len);
        let (start, size) = self.arena;
        let end = start + size;
        let mut at = start;
        'search: while at + need <= end {
            for span in self.iter().flat_map(|r| r.arena_spans()).flatten() {
                if overlaps((at, need), span) {
                    at = span.0 + span.1;
                    continue 'search;
                }
            }
            return Ok(at);
        }
        Err(MediateError::ArenaFull { len: need })
    }

    fn check_len(len: u64) -> Result<(), MediateError> {
        if len == 0 || len > MAX_WRITE * 64 { Err(MediateError::BadLength { len }) } else { Ok(()) }
    }

    /// Plans `nk_alloc`: the region's bytes and, if write-logged, its
    /// shadow, both in the arena. Nothing changes until `insert`.
    pub fn plan_alloc(&self, len: u64, policy: Policy) -> Result<Region, MediateError> {
        Self::check_len(len)?;
        self.free_slot()?;
        let base = self.arena_room(len)?;
        let mut region = Region { base, len, policy, backing: Backing::Arena, used: 0, shadow: 0 };
        if policy == Policy::WriteLogged {
            // Plan the shadow with the bytes already counted as taken.
            let mut with = self.clone();
            with.slots[self.free_slot()?] = Some(region);
            region.shadow = with.arena_room(len)?;
        }
        Ok(region)
    }

    /// Plans `nk_declare` of whole pages of outer-kernel data. A
    /// write-once declaration is sealed at once: the data is its one write.
    pub fn plan_declare(&self, base: u64, len: u64, policy: Policy) -> Result<Region, MediateError> {
        Self::check_len(len)?;
        for addr in [base, len] {
            if addr % PAGE != 0 {
                return Err(MediateError::Unaligned { addr });
            }
        }
        self.free_slot()?;
        let span = (base, len);
        if overlaps(span, self.arena) {
            return Err(MediateError::Overlap { addr: self.arena.0 });
        }
        if let Some(r) = self.iter().find(|r| overlaps(span, (r.base, r.len))) {
            return Err(MediateError::Overlap { addr: r.base });
        }
        let used = u64::from(policy == Policy::WriteOnce);
        let mut region = Region { base, len, policy, backing: Backing::Declared, used, shadow: 0 };
        if policy == Policy::WriteLogged {
            region.shadow = self.arena_room(len)?;
        }
        Ok(region)
    }

    /// Adds a planned region; returns its slot.
    pub fn insert(&mut self, region: Region) -> Result<usize, MediateError> {
        let slot = self.free_slot()?;
        self.slots[slot] = Some(region);
        Ok(slot)
    }

    /// Checks a write of `len` bytes at `dst` against the policy of the
    /// region holding it. `enforce` is false on the `native` build, which
    /// keeps the bookkeeping (and the logs) but drops the rules.
    pub fn plan_write(&self, dst: u64, len: u64, enforce: bool) -> Result<WritePlan, MediateError> {
        if len == 0 || len > MAX_WRITE {
            return Err(MediateError::BadLength { len });
        }
        // The region holding the first byte (or, for a full append-only
        // region, the one the write would continue).
        let holds = |r: &Region| r.contains(dst, 1) || (r.policy == Policy::AppendOnly && dst == r.base + r.len);
        let outside = MediateError::Outside { addr: dst, len };
        let slot = self.slots.iter().position(|r| r.as_ref().is_some_and(holds)).ok_or(outside)?;
        let region = self.slots[slot].expect("found");
        if !region.contains(dst, len) {
            return Err(if region.policy == Policy::AppendOnly {
                MediateError::Full { base: region.base }
            } else {
                outside
            });
        }
        if region.policy == Policy::WriteLogged && len > MAX_LOGGED_WRITE as u64 {
            return Err(MediateError::TooLongToLog { len });
        }
        if enforce {
            match region.policy {
                Policy::WriteOnce if region.used != 0 => return Err(MediateError::Sealed { base: region.base }),
                Policy::AppendOnly => {
                    let expected = region.base + region.used;
                    if dst != expected {
                        return Err(MediateError::NotAtEnd { expected });
                    }
                }
                _ => {}
            }
        }
        Ok(WritePlan { slot, region })
    }

    /// Records that a planned write of `len` bytes at `dst` happened.
    pub fn commit_write(&mut self, plan: WritePlan, dst: u64, len: u64) {
        if let Some(r) = self.slots[plan.slot].as_mut() {
            r.used = match r.policy {
                Policy::WriteOnce => 1,
                Policy::AppendOnly => r.used.max(dst + len - r.base),
                Policy::WriteLogged => r.used + 1,
            };
        }
    }

    /// Plans `nk_free` of the region starting at `base`: refused while it
    /// keeps a sealed value or history.
    pub fn plan_free(&self, base: u64) -> Result<usize, MediateError> {
        let slot = self
            .slots
            .iter()
            .position(|r| r.is_some_and(|r| r.base == base))
            .ok_or(MediateError::NotARegion { addr: base })?;
        if self.slots[slot].is_some_and(|r| r.keeps_history()) {
            return Err(MediateError::Kept { base });
        }
        Ok(slot)
    }

    pub fn remove(&mut self, slot: usize) -> Option<Region> {
        self.slots.get_mut(slot)?.take()
    }
}

#[cfg(test)]
mod tests;
