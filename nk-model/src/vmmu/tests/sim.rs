//! A simulated physical memory: one 512-entry table per frame, with a
//! journal of every change, so a test can prove that a refused call wrote
//! nothing and can undo a step to replay it another way.

use crate::vmmu::{ENTRIES, PhysMem};
use std::vec;
use std::vec::Vec;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Change {
    Write {
        table: u64,
        index: usize,
        old: u64,
        new: u64,
    },
    /// A non-zero entry of a frame being zeroed (kept to undo the zeroing).
    Cleared {
        table: u64,
        index: usize,
        old: u64,
    },
    /// A zeroed frame, after its `Cleared` entries.
    Zero {
        pfn: u64,
    },
    Flush,
}

#[derive(Clone)]
pub struct SimMem {
    pub tables: Vec<[u64; ENTRIES]>,
    pub journal: Vec<Change>,
}

impl SimMem {
    pub fn new(frames: usize) -> Self {
        Self { tables: vec![[0; ENTRIES]; frames], journal: Vec::new() }
    }

    pub fn mark(&self) -> usize {
        self.journal.len()
    }

    pub fn since(&self, mark: usize) -> &[Change] {
        &self.journal[mark..]
    }

    pub fn flushes(&self) -> usize {
        self.journal.iter().filter(|c| **c == Change::Flush).count()
    }

    /// Undoes every change after `mark`.
    pub fn undo_to(&mut self, mark: usize) {
        while self.journal.len() > mark {
            if let Some(Change::Write { table, index, old, .. } | Change::Cleared { table, index, old }) =
                self.journal.pop()
            {
                self.tables[table as usize][index] = old;
            }
        }
    }

    /// Writes as the outer kernel would through a writable alias: no vMMU,
    /// no journal (the journal records what the vMMU does).
    pub fn poke(&mut self, table: u64, index: usize, value: u64) {
        self.tables[table as usize][index] = value;
    }

    /// A frame's 4096 bytes, as code: each entry little-endian.
    pub fn bytes(&self, pfn: u64) -> Vec<u8> {
        self.tables[pfn as usize].iter().flat_map(|e| e.to_le_bytes()).collect()
    }

    /// Writes `bytes` into a frame from byte `offset` on, as the outer
    /// kernel would through a writable alias (no journal, like `poke`).
    pub fn put(&mut self, pfn: u64, offset: usize, bytes: &[u8]) {
        let mut all = self.bytes(pfn);
        all[offset..offset + bytes.len()].copy_from_slice(bytes);
        for (slot, chunk) in self.tables[pfn as usize].iter_mut().zip(all.chunks_exact(8)) {
            *slot = u64::from_le_bytes(chunk.try_into().unwrap());
        }
    }
}

// Indexing panics on a frame outside RAM: the vMMU must never read or
// write one as a table, and a panic makes a test say so.
impl PhysMem for SimMem {
    fn read_entry(&self, table: u64, index: usize) -> u64 {
        self.tables[table as usize][index]
    }

    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        let slot = &mut self.tables[table as usize][index];
        self.journal.push(Change::Write { table, index, old: *slot, new: value });
        *slot = value;
    }

    fn zero_frame(&mut self, pfn: u64) {
        let frame = &mut self.tables[pfn as usize];
        for (index, slot) in frame.iter_mut().enumerate() {
            if *slot != 0 {
                self.journal.push(Change::Cleared { table: pfn, index, old: *slot });
                *slot = 0;
            }
        }
        self.journal.push(Change::Zero { pfn });
    }

    fn flush_tlb(&mut self) {
        self.journal.push(Change::Flush);
    }
}
