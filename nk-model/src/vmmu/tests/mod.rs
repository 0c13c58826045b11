//! Host tests of the vMMU: one unit test per rule (each refusal names the
//! rule and changes nothing), the checker against broken states, and
//! property tests that drive random outer-kernel calls with the checker run
//! after every step.

mod adversary;
mod checker;
mod driver;
mod machine;
mod props;
mod rules_batch;
mod rules_cr3;
mod rules_declare;
mod rules_image_code;
mod rules_map_code;
mod rules_mediate;
mod rules_pin;
mod rules_release_code;
mod rules_remove;
mod rules_write;
mod sim;

use crate::vmmu::{FrameDesc, Level, MAX_CPUS, RawLevel, RawPfn, RawPte, Report, Vmmu, VmmuError, check};
use core::fmt::Debug;
use machine::{Frozen, Machine, booted};
use sim::SimMem;
use std::vec;
use std::vec::Vec;

/// The vMMU over a booted machine, with the memory and the checker's scratch.
pub struct Sim<'t> {
    pub v: Vmmu<'t>,
    pub mem: SimMem,
    pub root: u64,
    /// The entries the boot pins froze, with their boot values.
    pub frozen: Vec<Frozen>,
    scratch: Vec<u32>,
}

/// Everything an operation may change, to compare before and after.
#[derive(Clone, PartialEq, Debug)]
pub struct State {
    frames: Vec<FrameDesc>,
    journal: usize,
    live_roots: [Option<u64>; MAX_CPUS],
    tlb_stale: bool,
    kernel_root: Option<u64>,
}

/// Boots a machine whose frame table lives in `frames`.
pub fn sim(frames: &mut Vec<FrameDesc>) -> Sim<'_> {
    let Machine { frames: booted_frames, mem, root, frozen } = booted();
    *frames = booted_frames;
    let mut v = Vmmu::new(frames);
    v.set_kernel_root(root);
    let scratch = vec![0; v.frames_len()];
    Sim { v, mem, root, frozen, scratch }
}

impl<'t> Sim<'t> {
    pub fn state(&self) -> State {
        State {
            frames: self.v.frames.to_vec(),
            journal: self.mem.mark(),
            live_roots: self.v.live_roots,
            tlb_stale: self.v.tlb_stale,
            kernel_root: self.v.kernel_root,
        }
    }

    pub fn report(&mut self) -> Report {
        check(&self.v, &self.mem, &mut self.scratch)
    }

    #[track_caller]
    pub fn assert_clean(&mut self) {
        let r = self.report();
        assert!(r.is_clean(), "{} violations, first: {:?}", r.violations, r.first);
        self.assert_frozen_kept();
    }

    /// Every entry the boot pins froze still holds its boot value (a
    /// direct-map alias: write-protected while its frame is a page table).
    #[track_caller]
    pub fn assert_frozen_kept(&self) {
        for f in &self.frozen {
            let (table, index) = (f.table, f.index);
            let now = self.mem.tables[table as usize][index];
            if now != f.expected(&self.v) {
                panic!("frozen entry {index} of table {table:#x} changed: {now:#x}, boot value {:#x}", f.value);
            }
        }
    }

    /// Writes an entry through the trusted boot interface, as a boot that
    /// built the machine otherwise would have: no rule is checked, so a test
    /// can reach a state the outer kernel cannot (say, a frame without its
    /// direct-map alias). The entry is no longer held to its boot value.
    #[track_caller]
    pub fn boot_map(&mut self, table: u64, index: usize, value: u64) {
        self.v.boot_map(&mut self.mem, table, index, crate::pte::Pte::from_bits(value)).unwrap();
        self.frozen.retain(|f| (f.table, f.index) != (table, index));
    }

    /// Runs `op`, which must be refused with `expected` and change nothing
    /// (frame table, memory, roots, TLB state); the machine stays clean.
    #[track_caller]
    pub fn refuses<T: Debug>(
        &mut self,
        expected: VmmuError,
        op: impl FnOnce(&mut Vmmu<'t>, &mut SimMem) -> Result<T, VmmuError>,
    ) {
        self.refuses_unchecked(expected, op);
        self.assert_clean();
    }

    /// `refuses`, for a machine a test has deliberately put in a state the
    /// checker rejects (a reference count set near its limit).
    #[track_caller]
    pub fn refuses_unchecked<T: Debug>(
        &mut self,
        expected: VmmuError,
        op: impl FnOnce(&mut Vmmu<'t>, &mut SimMem) -> Result<T, VmmuError>,
    ) {
        let before = self.state();
        let memory = self.mem.tables.clone();
        let result = op(&mut self.v, &mut self.mem);
        assert_eq!(result.err(), Some(expected));
        assert_eq!(self.state(), before, "a refused operation changed the vMMU");
        assert!(self.mem.tables == memory, "a refused operation changed memory");
    }

    #[track_caller]
    pub fn declare(&mut self, pfn: u64, level: Level) {
        self.v.declare_ptp(&mut self.mem, RawPfn(pfn), RawLevel(level.as_u8())).unwrap();
        self.assert_clean();
    }

    #[track_caller]
    pub fn write(&mut self, table: u64, index: usize, value: u64) {
        self.v.write_pte(&mut self.mem, RawPfn(table), index, RawPte(value)).unwrap();
        self.assert_clean();
    }

    #[track_caller]
    pub fn remove(&mut self, pfn: u64) {
        self.v.remove_ptp(&mut self.mem, RawPfn(pfn)).unwrap();
        self.assert_clean();
    }

    #[track_caller]
    pub fn map_code(&mut self, table: u64, index: usize, value: u64) {
        self.v.map_code(&mut self.mem, RawPfn(table), index, RawPte(value)).unwrap();
        self.assert_clean();
    }

    /// A `map_code` refused before it changed anything (not by vetting).
    #[track_caller]
    pub fn refuses_map_code(&mut self, table: u64, index: usize, value: u64, expected: VmmuError) {
        self.refuses(expected, |v, mem| v.map_code(mem, RawPfn(table), index, RawPte(value)));
    }

    #[track_caller]
    pub fn refuses_write(&mut self, table: u64, index: usize, value: u64, expected: VmmuError) {
        self.refuses(expected, |v, mem| v.write_pte(mem, RawPfn(table), index, RawPte(value)));
    }

    #[track_caller]
    pub fn refuses_declare(&mut self, pfn: u64, level: u8, expected: VmmuError) {
        self.refuses(expected, |v, mem| v.declare_ptp(mem, RawPfn(pfn), RawLevel(level)));
    }

    #[track_caller]
    pub fn refuses_remove(&mut self, pfn: u64, expected: VmmuError) {
        self.refuses(expected, |v, mem| v.remove_ptp(mem, RawPfn(pfn)));
    }

    pub fn refs(&self, pfn: u64) -> u32 {
        self.v.frame(pfn).unwrap().refs()
    }

    pub fn entry(&self, table: u64, index: usize) -> u64 {
        self.mem.tables[table as usize][index]
    }

    /// The value of `pfn`'s direct-map alias leaf.
    pub fn alias(&self, pfn: u64) -> u64 {
        let (table, index) = machine::alias_slot(&self.mem, self.root, pfn).unwrap();
        self.entry(table, index)
    }

    /// Declares a user address space's tables down to level 1 in frames
    /// `base..base + 4`, linked at index 0 of each: (l4, l3, l2, l1).
    pub fn user_tables(&mut self, base: u64) -> [u64; 4] {
        let [l4, l3, l2, l1] = [base, base + 1, base + 2, base + 3];
        self.declare(l4, Level::L4);
        self.declare(l3, Level::L3);
        self.declare(l2, Level::L2);
        self.declare(l1, Level::L1);
        self.write(l4, 0, l3 << 12 | machine::T);
        self.write(l3, 0, l2 << 12 | machine::T);
        self.write(l2, 0, l1 << 12 | machine::T);
        [l4, l3, l2, l1]
    }
}
