//! The outer kernel as an adversary: random calls, biased so that a good
//! share succeed (frames picked from the declared tables and free data most
//! of the time) and the rest probe every rule (tables mapped writable, NK
//! frames, undeclared frames, wrong levels, large pages, device memory,
//! reserved bits, user/exec combinations, rewritten direct-map aliases of
//! data and of page tables, entries of pinned tables and entries that point
//! at NK memory or pinned tables), and `map_code` of random frames, filled
//! first with benign code or with a protected opcode planted at a random
//! offset (inside an immediate, cut off at the end of the frame), and
//! `release_code` of vetted code (still mapped, or unmapped first), image
//! code and any frame.

use super::machine::*;
use super::{Sim, machine};
use crate::code::find_protected;
use crate::vmmu::{ENTRIES, FrameKind, Level, MAX_CPUS, Op, RESERVED_BITS, RawLevel, RawPfn, RawPte};
use std::vec;
use std::vec::Vec;

/// A small deterministic generator (SplitMix64), seeded per step by
/// proptest, so a failing case shrinks to a short list of seeds.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    pub fn pick<T: Copy>(&mut self, from: &[T]) -> Option<T> {
        (!from.is_empty()).then(|| from[self.below(from.len() as u64) as usize])
    }
}

/// Frames most calls are about.
const HOT: core::ops::Range<u64> = FIRST_DATA..FIRST_DATA + 48;

/// One gate call of the outer kernel.
#[derive(Clone, Debug)]
pub enum Call {
    Single(Op),
    Batch(Vec<Op>),
    LoadCr3(usize, RawPfn),
    MapCode(MapCode),
    ReleaseCode(RawPfn),
}

/// A `map_code` call, and what the outer kernel wrote into the frame just
/// before it (through the frame's writable alias, so only into `Data`).
#[derive(Clone, Debug)]
pub struct MapCode {
    pub fill: Option<Fill>,
    pub table: RawPfn,
    pub index: usize,
    pub pte: RawPte,
}

/// A frame's worth of bytes (printed as where its first protected opcode
/// is, not as 4096 bytes).
#[derive(Clone)]
pub struct Fill(pub Vec<u8>);

impl core::fmt::Debug for Fill {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Fill({:?})", find_protected(&self.0))
    }
}

/// Benign instructions, system ones included (reads of control registers,
/// clac, syscall, rdmsr, rdtscp, rdrand, str, pshufb): none is protected.
const BENIGN: &[&[u8]] = &[
    &[0x0f, 0x05],
    &[0x0f, 0x20, 0xc0],
    &[0x0f, 0x01, 0xca],
    &[0x0f, 0x38, 0x00, 0xc1],
    &[0x0f, 0x32],
    &[0x0f, 0x01, 0xf9],
    &[0x0f, 0xc7, 0xf0],
    &[0x0f, 0x00, 0xc8],
    &[0x48, 0x89, 0xc3, 0xc3],
];

/// Protected instructions to plant; the last hides `mov cr0, rax` in the
/// immediate of `mov eax, imm32`, one byte in.
const PLANTS: &[&[u8]] = &[
    &[0x0f, 0x22, 0xc0],
    &[0x44, 0x0f, 0x22, 0xc0],
    &[0x0f, 0x23, 0xf8],
    &[0x0f, 0x30],
    &[0x0f, 0x06],
    &[0x0f, 0x01, 0x10],
    &[0x0f, 0x01, 0x18],
    &[0x0f, 0x01, 0xf0],
    &[0x0f, 0x00, 0xd8],
    &[0x0f, 0x01, 0xd1],
    &[0x0f, 0x01, 0xc2],
    &[0xf3, 0x0f, 0xc7, 0x30],
    &[0x66, 0x0f, 0x38, 0x80, 0x00],
    &[0x0f, 0x78, 0xc0],
    &[0xb8, 0x0f, 0x22, 0xc0, 0xc3],
];

/// Opcodes cut off by the end of the frame: the next page could complete
/// them.
const CUT: &[&[u8]] = &[&[0x0f], &[0x0f, 0x01], &[0x0f, 0x00], &[0x0f, 0xc7], &[0x0f, 0x38]];

/// How often each kind of call is made, in percent of single calls.
#[derive(Clone, Copy)]
pub struct Mix {
    pub batch: u64,
    pub declare: u64,
    pub remove: u64,
    pub unlink: u64,
    pub cr3: u64,
    pub map_code: u64,
    pub release_code: u64,
}

/// The frames of the machine by what they are now.
struct Pools {
    /// Declared tables per level (index 0 unused), and those the test made.
    ptps: [Vec<u64>; 5],
    made: Vec<u64>,
    data: Vec<u64>,
    /// Frames vetted into code after boot (not the image's code).
    code: Vec<u64>,
}

impl Pools {
    fn of(s: &Sim<'_>) -> Self {
        let mut p = Pools { ptps: Default::default(), made: Vec::new(), data: Vec::new(), code: Vec::new() };
        for pfn in 0..FRAMES as u64 {
            match s.v.frame(pfn).unwrap().kind() {
                FrameKind::Ptp(level) => {
                    p.ptps[level.as_u8() as usize].push(pfn);
                    if !BOOT_TABLES.contains(&pfn) {
                        p.made.push(pfn);
                    }
                }
                FrameKind::Data => p.data.push(pfn),
                FrameKind::Code if !CODE.contains(&pfn) => p.code.push(pfn),
                _ => {}
            }
        }
        p
    }

    fn all_ptps(&self) -> impl Iterator<Item = u64> + '_ {
        self.ptps.iter().flatten().copied()
    }
}

pub struct Gen<'s, 't> {
    s: &'s Sim<'t>,
    rng: Rng,
    pools: Pools,
    mix: Mix,
}

impl<'s, 't> Gen<'s, 't> {
    pub fn new(s: &'s Sim<'t>, seed: u64, mix: Mix) -> Self {
        Self { s, rng: Rng::new(seed), pools: Pools::of(s), mix }
    }

    pub fn call(&mut self) -> Call {
        if self.rng.percent(self.mix.batch) {
            let n = 1 + self.rng.below(8) as usize;
            return Call::Batch((0..n).map(|_| self.op()).collect());
        }
        if self.rng.percent(self.mix.cr3) {
            return self.load_cr3();
        }
        if self.rng.percent(self.mix.map_code) {
            return self.map_code();
        }
        if self.rng.percent(self.mix.release_code) {
            return self.release_code();
        }
        Call::Single(self.op())
    }

    fn op(&mut self) -> Op {
        let m = self.mix;
        let roll = self.rng.below(100);
        if roll < m.declare {
            self.declare()
        } else if roll < m.declare + m.remove {
            self.remove()
        } else if roll < m.declare + m.remove + m.unlink {
            self.unlink()
        } else {
            self.write()
        }
    }

    /// Any frame, as an attacker would choose it.
    fn any_frame(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(100) {
            0..35 => self.data_frame(),
            35..55 => {
                let all: Vec<u64> = self.pools.all_ptps().collect();
                r.pick(&all).unwrap_or(self.s.root)
            }
            55..63 => CODE.start + r.below(CODE.end - CODE.start),
            63..68 => READ_ONLY.start + r.below(READ_ONLY.end - READ_ONLY.start),
            68..75 => r.pick(&[NK_LOW.start, NK_DATA.start, NK_DATA.end - 1, BOOT_TABLES.end - 1]).unwrap(),
            75..80 => HOLE.start + r.below(HOLE.end - HOLE.start),
            80..90 => FRAMES as u64 + r.below(600),
            90..95 => r.next() >> 24,
            _ => self.s.root,
        }
    }

    /// Free data, mostly from a small hot set, so that mappings, alias
    /// rewrites and declarations keep meeting on the same frames.
    fn data_frame(&mut self) -> u64 {
        if self.rng.percent(70) {
            let hot: Vec<u64> = self.pools.data.iter().copied().filter(|p| HOT.contains(p)).collect();
            if let Some(pfn) = self.rng.pick(&hot) {
                return pfn;
            }
        }
        self.rng.pick(&self.pools.data).unwrap_or(FIRST_DATA)
    }

    fn ptp(&mut self) -> u64 {
        if self.rng.percent(80) && !self.pools.made.is_empty() {
            return self.rng.pick(&self.pools.made).unwrap();
        }
        let all: Vec<u64> = self.pools.all_ptps().collect();
        self.rng.pick(&all).unwrap_or(self.s.root)
    }

    fn declare(&mut self) -> Op {
        if self.rng.percent(80) {
            let pfn = self.data_frame();
            let level = [1, 1, 1, 2, 2, 3, 3, 4, 4][self.rng.below(9) as usize];
            Op::Declare(RawPfn(pfn), RawLevel(level))
        } else {
            let pfn = self.any_frame();
            let level = if self.rng.percent(10) { 255 } else { self.rng.below(7) as u8 };
            Op::Declare(RawPfn(pfn), RawLevel(level))
        }
    }

    fn remove(&mut self) -> Op {
        let pfn = if self.rng.percent(80) { self.ptp() } else { self.any_frame() };
        Op::Remove(RawPfn(pfn))
    }

    /// Clears (or rewrites unchanged) a present entry of a table: how the
    /// outer kernel tears an address space down.
    fn unlink(&mut self) -> Op {
        let table = self.ptp();
        let present: Vec<usize> = (0..ENTRIES).filter(|&i| self.s.entry(table, i) & P != 0).collect();
        let index = self.rng.pick(&present).unwrap_or(0);
        let value = if self.rng.percent(25) { self.s.entry(table, index) } else { 0 };
        Op::Write(RawPfn(table), index, RawPte(value))
    }

    fn write(&mut self) -> Op {
        if self.rng.percent(10)
            && let Some(op) = self.rewrite_alias()
        {
            return op;
        }
        if self.rng.percent(8)
            && let Some(op) = self.rewrite_frozen()
        {
            return op;
        }
        let table = if self.rng.percent(88) { self.ptp() } else { self.any_frame() };
        let level = match self.s.v.kind_of(table) {
            Some(FrameKind::Ptp(level)) => level,
            _ => Level::L1,
        };
        let index = match self.rng.below(100) {
            0..3 => self.rng.pick(&[ENTRIES, ENTRIES + 1, usize::MAX]).unwrap(),
            // Mostly the user half of a root, so the kernel half keeps working.
            _ if level == Level::L4 && self.rng.percent(85) => self.rng.below(256) as usize,
            _ => self.rng.below(ENTRIES as u64) as usize,
        };
        Op::Write(RawPfn(table), index, RawPte(self.value(level)))
    }

    fn value(&mut self, level: Level) -> u64 {
        let r = self.rng.below(100);
        match r {
            0..15 if self.rng.percent(70) => 0,
            0..15 => self.rng.next() & !P & !RESERVED_BITS,
            15..40 => self.table_entry(level),
            40..70 => self.leaf(level),
            70..80 => self.bad_table_entry(),
            80..85 => self.leaf(level) | (self.rng.next() & RESERVED_BITS) | 1 << 52,
            _ => self.rng.next(),
        }
    }

    fn table_entry(&mut self, level: Level) -> u64 {
        let Some(next) = level.next_lower() else { return self.leaf(level) };
        let pool = &self.pools.ptps[next.as_u8() as usize];
        let pfn = self.rng.pick(pool).unwrap_or(FIRST_DATA);
        pfn << 12 | T | if self.rng.percent(30) { A } else { 0 }
    }

    fn bad_table_entry(&mut self) -> u64 {
        let pfn = if self.rng.percent(50) {
            self.any_frame()
        } else {
            let wrong = 1 + self.rng.below(4) as usize;
            self.rng.pick(&self.pools.ptps[wrong]).unwrap_or(self.s.root)
        };
        let flags = match self.rng.below(8) {
            0 => P | W,
            1 => P | U,
            2 => T | NX,
            3 => T | PCD,
            4 => T | G | 1 << 9,
            5 => T | PS,
            _ => T,
        };
        (pfn << 12 | flags) & !RESERVED_BITS
    }

    fn leaf(&mut self, level: Level) -> u64 {
        let r = &mut self.rng;
        let mut flags = P;
        for (bit, p) in [(W, 40), (U, 50), (NX, 60), (G, 15), (A, 20), (D, 20), (PCD, 10)] {
            if r.percent(p) {
                flags |= bit;
            }
        }
        let huge = matches!(level, Level::L2 | Level::L3) && r.percent(65);
        if !huge {
            return (self.any_frame() << 12 | flags) & !RESERVED_BITS;
        }
        let base = match self.rng.below(10) {
            0..7 => self.rng.below(4) * 512,
            7 => self.rng.below(1 << 20) * 512,
            _ => self.any_frame(),
        };
        (base << 12 | flags | PS) & !RESERVED_BITS
    }

    /// Rewrites the direct-map alias of a data frame, a page table or any
    /// frame: same frame other rights (writable, for a table), another frame
    /// writable (the NK would then read and write a table through it),
    /// nothing, or the same value. Always refused: the direct map is pinned.
    fn rewrite_alias(&mut self) -> Option<Op> {
        let pfn = match self.rng.below(10) {
            0..4 => self.data_frame(),
            4..8 => self.ptp(),
            _ => self.any_frame(),
        };
        let (table, index) = machine::alias_slot(&self.s.mem, self.s.root, pfn)?;
        let value = match self.rng.below(5) {
            0 | 1 => pfn << 12 | P | [0, W | NX, NX, U | NX, U, W][self.rng.below(6) as usize],
            2 => self.data_frame() << 12 | P | W | NX,
            3 => self.s.entry(table, index),
            _ => 0,
        } & !RESERVED_BITS;
        Some(Op::Write(RawPfn(table), index, RawPte(value)))
    }

    /// Tries to change a frozen entry: one the boot froze (any present entry
    /// of a pinned table, a root link to one), or the kernel half of a root.
    /// Repoints it at a table or frame the outer kernel controls, clears it,
    /// or writes it unchanged.
    fn rewrite_frozen(&mut self) -> Option<Op> {
        let (table, index) = if self.rng.percent(60) {
            let f = self.rng.pick(&self.s.frozen)?;
            (f.table, f.index)
        } else {
            let root = self.rng.pick(&self.pools.ptps[4])?;
            let present: Vec<usize> = (256..ENTRIES).filter(|&i| self.s.entry(root, i) & P != 0).collect();
            (root, self.rng.pick(&present)?)
        };
        let level = match self.s.v.kind_of(table) {
            Some(FrameKind::Ptp(level)) => level,
            _ => Level::L1,
        };
        let old = self.s.entry(table, index);
        let value = match self.rng.below(6) {
            0 => old,
            1 => old ^ A,
            2 => 0,
            3 if level == Level::L1 => self.data_frame() << 12 | P | W | NX,
            _ => self.table_entry(level),
        };
        Some(Op::Write(RawPfn(table), index, RawPte(value)))
    }

    /// `map_code` of a free data frame most of the time (it becomes code if
    /// it is mapped by its alias alone and holds nothing protected), of
    /// code, or of any frame; mostly into a level-1 table the test made;
    /// mostly a well-formed code leaf, else one with a wrong bit.
    fn map_code(&mut self) -> Call {
        let pfn = match self.rng.below(100) {
            0..55 => self.data_frame(),
            // Data the outer kernel still maps elsewhere (and could write
            // after the vetting).
            55..65 => {
                let mapped: Vec<u64> = self.pools.data.iter().copied().filter(|&p| self.s.refs(p) > 1).collect();
                self.rng.pick(&mapped).unwrap_or(FIRST_DATA)
            }
            // Code vetted earlier: mapped again without a second vetting.
            65..72 => {
                let code = self.rng.pick(&self.pools.code);
                code.unwrap_or_else(|| CODE.start + self.rng.below(CODE.end - CODE.start))
            }
            72..78 => CODE.start + self.rng.below(CODE.end - CODE.start),
            _ => self.any_frame(),
        };
        let table = match self.rng.below(100) {
            0..85 => {
                let made: Vec<u64> = self.pools.ptps[1].iter().copied().filter(|p| !BOOT_TABLES.contains(p)).collect();
                let l1 = if self.rng.percent(90) { self.rng.pick(&made) } else { None };
                l1.or_else(|| self.rng.pick(&self.pools.ptps[1])).unwrap_or(self.s.root)
            }
            85..93 => self.ptp(),
            _ => self.any_frame(),
        };
        let index = if self.rng.percent(3) {
            self.rng.pick(&[ENTRIES, ENTRIES + 1, usize::MAX]).unwrap()
        } else {
            self.rng.below(ENTRIES as u64) as usize
        };
        let mut flags = P;
        for (bit, p) in [(G, 40), (A, 20), (D, 20), (PCD, 5)] {
            if self.rng.percent(p) {
                flags |= bit;
            }
        }
        if self.rng.percent(25) {
            let bad = [W, W | NX, U, NX, PS, U | NX, RESERVED_BITS & self.rng.next() | 1 << 55];
            flags |= self.rng.pick(&bad).unwrap();
            if self.rng.percent(15) {
                flags &= !P;
            }
        }
        let fill = match self.rng.below(100) {
            0..40 => Some(self.benign()),
            40..75 => Some(self.planted()),
            _ => None,
        };
        Call::MapCode(MapCode { fill, table: RawPfn(table), index, pte: RawPte(pfn << 12 | flags) })
    }

    /// `release_code` of a frame vetted earlier most of the time (often one
    /// no table maps any more, so the release is accepted), or first the
    /// unload's unmapping: a write clearing a leaf that maps vetted code.
    /// Else image code or any frame.
    fn release_code(&mut self) -> Call {
        if self.rng.percent(45) {
            let code = &self.pools.code;
            let s = self.s;
            let leaves: Vec<(u64, usize)> = self.pools.ptps[1]
                .iter()
                .filter(|p| !BOOT_TABLES.contains(p))
                .flat_map(|&t| (0..ENTRIES).map(move |i| (t, i)))
                .filter(|&(t, i)| s.entry(t, i) & P != 0 && code.contains(&((s.entry(t, i) >> 12) & 0xff_ffff_ffff)))
                .collect();
            if let Some((table, index)) = self.rng.pick(&leaves) {
                return Call::Single(Op::Write(RawPfn(table), index, RawPte(0)));
            }
        }
        let pfn = match self.rng.below(100) {
            0..65 => {
                let unmapped: Vec<u64> = self.pools.code.iter().copied().filter(|&p| self.s.refs(p) == 1).collect();
                let pick = if self.rng.percent(70) { self.rng.pick(&unmapped) } else { None };
                pick.or_else(|| self.rng.pick(&self.pools.code)).unwrap_or_else(|| self.data_frame())
            }
            65..80 => CODE.start + self.rng.below(CODE.end - CODE.start),
            _ => self.any_frame(),
        };
        Call::ReleaseCode(RawPfn(pfn))
    }

    /// Random bytes without 0x0f (so no opcode of the two-byte map), with
    /// benign instructions of that map at a few places, none at the end.
    fn benign(&mut self) -> Fill {
        let mut bytes = vec![0u8; 4096];
        for chunk in bytes.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.rng.next().to_le_bytes());
        }
        for b in &mut bytes {
            if *b == 0x0f {
                *b = 0x90;
            }
        }
        for _ in 0..self.rng.below(12) {
            let insn = self.rng.pick(BENIGN).unwrap();
            let at = self.rng.below(511) as usize * 8;
            bytes[at..at + insn.len()].copy_from_slice(insn);
        }
        Fill(bytes)
    }

    /// Benign bytes with a protected opcode planted at a random offset, or
    /// one cut off at the very end.
    fn planted(&mut self) -> Fill {
        let Fill(mut bytes) = self.benign();
        let (insn, at) = if self.rng.percent(15) {
            let cut = self.rng.pick(CUT).unwrap();
            (cut, 4096 - cut.len())
        } else {
            let insn = self.rng.pick(PLANTS).unwrap();
            (insn, self.rng.below((4096 - insn.len() + 1) as u64) as usize)
        };
        bytes[at..at + insn.len()].copy_from_slice(insn);
        Fill(bytes)
    }

    fn load_cr3(&mut self) -> Call {
        let cpu = if self.rng.percent(90) {
            self.rng.below(MAX_CPUS as u64) as usize
        } else {
            self.rng.pick(&[MAX_CPUS, MAX_CPUS + 3, usize::MAX]).unwrap()
        };
        let pfn = if self.rng.percent(75) {
            self.rng.pick(&self.pools.ptps[4]).unwrap_or(self.s.root)
        } else {
            self.any_frame()
        };
        Call::LoadCr3(cpu, RawPfn(pfn))
    }
}
