//! The memory the vMMU reads and writes page tables in. The NK implements
//! it over its direct map inside the gate; host tests over a simulation.

/// Physical memory as page tables: frames of 512 entries.
///
/// `table` and `pfn` are frame numbers. The vMMU only passes frames that are
/// in RAM (inside the frame table) and, for the entry accessors, only
/// declared page-table pages or the kernel root's walk, but for two more:
/// `map_code` reads the frame it vets (512 entries, each 8 bytes of code in
/// little-endian order) once its alias is read-only, and `release_code`
/// zeroes the code frame it gives back (`zero_frame`).
pub trait PhysMem {
    fn read_entry(&self, table: u64, index: usize) -> u64;
    fn write_entry(&mut self, table: u64, index: usize, value: u64);
    fn zero_frame(&mut self, pfn: u64);
    /// Invalidates translations and paging-structure caches on every CPU
    /// (local and remote) and returns only when all have done so.
    fn flush_tlb(&mut self);
}
