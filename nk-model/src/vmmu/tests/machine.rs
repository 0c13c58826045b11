//! A small machine built like the real boot, through the trusted boot
//! interface: kinds first, then every table declared, then the leaves, each
//! with the rights of its frame's final kind, and last the pins: every boot
//! table but the root, as the NK does (docs/vmmu.md, *Pinning*).
//!
//! 1000 frames of RAM (not a multiple of 2 MiB, so a large page can straddle
//! the end of RAM), a hole of device frames, kernel code, read-only data, NK
//! memory, a kernel root with a 4 KiB direct map of every RAM frame, an
//! uncached 2 MiB device page above RAM, and the kernel image mapping.

use super::sim::SimMem;
use crate::layout::{DIRECT_MAP_BASE, KERNEL_BASE, PAGE_SIZE, table_index};
use crate::pte::{Pte, PteFlags};
use crate::vmmu::{ENTRIES, FrameDesc, FrameKind, Level, PhysMem, TABLE_FLAGS, Vmmu};
use core::ops::Range;
use std::sync::OnceLock;
use std::vec;
use std::vec::Vec;

pub const FRAMES: usize = 1000;
/// Boot trampoline and friends.
pub const NK_LOW: Range<u64> = 0..2;
pub const CODE: Range<u64> = 16..24;
pub const READ_ONLY: Range<u64> = 24..28;
pub const NK_DATA: Range<u64> = 28..32;
/// Mapped at `KERNEL_BASE + pa`.
pub const IMAGE: Range<u64> = 16..32;
/// The NK's carve-out for boot tables (`Nk` until declared).
pub const BOOT_TABLES: Range<u64> = 32..48;
/// A hole below the end of RAM.
pub const HOLE: Range<u64> = 960..968;
/// The 2 MiB device page above RAM in the direct map.
pub const DEVICE_PAGE: u64 = 4 << 20;
/// The first frame that is free outer-kernel data after boot.
pub const FIRST_DATA: u64 = 48;

pub const P: u64 = PteFlags::PRESENT.bits();
pub const W: u64 = PteFlags::WRITABLE.bits();
pub const U: u64 = PteFlags::USER.bits();
pub const A: u64 = PteFlags::ACCESSED.bits();
pub const D: u64 = PteFlags::DIRTY.bits();
pub const G: u64 = PteFlags::GLOBAL.bits();
pub const PS: u64 = PteFlags::HUGE.bits();
pub const PCD: u64 = PteFlags::CACHE_DISABLE.bits();
pub const PWT: u64 = PteFlags::WRITE_THROUGH.bits();
pub const NX: u64 = PteFlags::NO_EXECUTE.bits();
/// A non-leaf entry's flags.
pub const T: u64 = TABLE_FLAGS.bits();

/// A booted machine: the frame table, memory, the kernel root, and the
/// entries the pins freeze.
#[derive(Clone)]
pub struct Machine {
    pub frames: Vec<FrameDesc>,
    pub mem: SimMem,
    pub root: u64,
    pub frozen: Vec<Frozen>,
}

/// An entry of a boot table the outer kernel must never change: a present
/// entry of a pinned table, or one pointing at NK memory or a pinned table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Frozen {
    pub table: u64,
    pub index: usize,
    /// The value the boot wrote.
    pub value: u64,
    /// The frame whose direct-map alias this is, if it is one.
    pub alias_of: Option<u64>,
}

impl Frozen {
    /// The value the entry must hold now: its boot value, except that a
    /// direct-map alias is read-only, supervisor and no-execute while its
    /// frame is a page table or code (`declare_ptp`, `remove_ptp`,
    /// `map_code` and `release_code` change it, never `write_pte`; the boot
    /// gave every data alias W and NX and no U, so `remove_ptp` and
    /// `release_code` restore exactly the boot value, and boot code already
    /// has the code alias).
    pub fn expected(&self, v: &Vmmu<'_>) -> u64 {
        match self.alias_of {
            Some(pfn)
                if matches!(
                    v.frames[pfn as usize].kind(),
                    FrameKind::Ptp(_) | FrameKind::Code | FrameKind::Mediated
                ) =>
            {
                self.value & !(W | U) | NX
            }
            _ => self.value,
        }
    }
}

/// The booted machine (built once per test binary, cloned per use).
pub fn booted() -> Machine {
    static BOOTED: OnceLock<Machine> = OnceLock::new();
    BOOTED.get_or_init(boot).clone()
}

fn boot() -> Machine {
    let mut frames = vec![FrameDesc::DATA; FRAMES];
    let mut mem = SimMem::new(FRAMES);
    let mut v = Vmmu::new(&mut frames);
    let kinds = [
        (NK_LOW, FrameKind::Nk),
        (CODE, FrameKind::Code),
        (READ_ONLY, FrameKind::ReadOnly),
        (NK_DATA, FrameKind::Nk),
        (BOOT_TABLES, FrameKind::Nk),
        (HOLE, FrameKind::Device),
    ];
    for (range, kind) in kinds {
        for pfn in range {
            v.boot_set_kind(pfn, kind).unwrap();
        }
    }
    let mut pool = BOOT_TABLES;
    let root = pool.next().unwrap();
    v.boot_declare_table(&mut mem, root, Level::L4).unwrap();
    v.set_kernel_root(root);

    let direct = (0..FRAMES as u64).map(|pfn| (DIRECT_MAP_BASE + pfn * PAGE_SIZE, pfn, false));
    let image = IMAGE.map(|pfn| (KERNEL_BASE + pfn * PAGE_SIZE, pfn, true));
    let leaves: Vec<(u64, u64, bool)> = direct.chain(image).collect();
    for &(va, _, _) in &leaves {
        table_for(&mut v, &mut mem, root, va, Level::L1, &mut pool);
    }
    let device_table = table_for(&mut v, &mut mem, root, DIRECT_MAP_BASE + DEVICE_PAGE, Level::L2, &mut pool);
    let device = Pte::from_bits(DEVICE_PAGE | P | W | NX | G | PS | PCD | PWT);
    v.boot_map(&mut mem, device_table, table_index(DEVICE_PAGE, 2), device).unwrap();

    for (va, pfn, image) in leaves {
        let table = table_for(&mut v, &mut mem, root, va, Level::L1, &mut pool);
        let flags = leaf_flags(v.frame(pfn).unwrap().kind(), image);
        v.boot_map(&mut mem, table, table_index(va, 1), Pte::from_bits(pfn << 12 | flags)).unwrap();
    }
    // Every boot table but the root: the direct map's (through which the NK
    // reads and writes page tables) and the image's.
    for table in BOOT_TABLES {
        if table != root && matches!(v.frame(table).unwrap().kind(), FrameKind::Ptp(_)) {
            v.boot_pin(table).unwrap();
        }
    }
    let frozen = frozen_entries(&v, &mem, root);
    mem.journal.clear();
    Machine { frames, mem, root, frozen }
}

/// What a present entry of a table of `level` covers: (first frame, frames,
/// leaf). Read here from the bits, apart from the vMMU's own reading.
fn covers(level: Level, e: Pte) -> Option<(u64, u64, bool)> {
    let pfn = e.addr() >> 12;
    match level {
        _ if !e.is_present() => None,
        Level::L1 => Some((pfn, 1, true)),
        Level::L2 | Level::L3 if e.is_huge() => {
            let count = level.leaf_frames();
            Some((pfn & !(count - 1), count, true))
        }
        _ => Some((pfn, 1, false)),
    }
}

/// Every entry of a boot table the rule freezes, restated: present, and in
/// a pinned table or covering an NK frame or a pinned table. (That is every
/// present entry of the pinned tables, and the root's entries leading to
/// them.)
fn frozen_entries(v: &Vmmu<'_>, mem: &SimMem, root: u64) -> Vec<Frozen> {
    let frozen_target = |pfn: u64| v.frame(pfn).is_some_and(|d| d.kind() == FrameKind::Nk || d.pinned());
    let mut frozen = Vec::new();
    for table in BOOT_TABLES {
        let Some(desc) = v.frame(table) else { continue };
        let FrameKind::Ptp(level) = desc.kind() else { continue };
        for index in 0..ENTRIES {
            let value = mem.read_entry(table, index);
            let Some((first, count, leaf)) = covers(level, Pte::from_bits(value)) else { continue };
            if desc.pinned() || (first..first + count).any(frozen_target) {
                let alias = leaf && level == Level::L1 && alias_slot(mem, root, first) == Some((table, index));
                frozen.push(Frozen { table, index, value, alias_of: alias.then_some(first) });
            }
        }
    }
    frozen
}

/// The rights the boot gives a frame: the direct map is never executable;
/// the image maps code executable and nothing writable.
fn leaf_flags(kind: FrameKind, image: bool) -> u64 {
    match kind {
        FrameKind::Code if image => P | G,
        FrameKind::Data => P | W | NX | G,
        FrameKind::Device => P | W | NX | PCD | PWT,
        _ => P | NX | G,
    }
}

/// The table of `level` on the way to `va`, declaring missing tables.
fn table_for(v: &mut Vmmu<'_>, mem: &mut SimMem, root: u64, va: u64, level: Level, pool: &mut Range<u64>) -> u64 {
    let mut table = root;
    let mut at = Level::L4;
    while at != level {
        let next = at.next_lower().unwrap();
        let index = table_index(va, at.as_u8());
        let entry = Pte::from_bits(mem.read_entry(table, index));
        table = if entry.is_present() {
            entry.addr() >> 12
        } else {
            let t = pool.next().expect("boot table pool exhausted");
            v.boot_declare_table(mem, t, next).unwrap();
            v.boot_map(mem, table, index, Pte::from_bits(t << 12 | T)).unwrap();
            t
        };
        at = next;
    }
    table
}

/// Where the direct-map alias leaf of `pfn` is, found by walking `mem`
/// (independently of the vMMU's own walk).
pub fn alias_slot(mem: &SimMem, root: u64, pfn: u64) -> Option<(u64, usize)> {
    if pfn >= FRAMES as u64 {
        return None;
    }
    let va = DIRECT_MAP_BASE + pfn * PAGE_SIZE;
    let mut table = root;
    for level in [4u8, 3, 2] {
        let e = Pte::from_bits(mem.read_entry(table, table_index(va, level)));
        if !e.is_present() || (level < 4 && e.is_huge()) || e.addr() >> 12 >= FRAMES as u64 {
            return None;
        }
        table = e.addr() >> 12;
    }
    Some((table, table_index(va, 1)))
}
