//! `load_cr3`: which root a CPU may run on (I5).

use super::error::VmmuError;
use super::frame::FrameKind;
use super::level::Level;
use super::raw::RawPfn;
use super::state::{MAX_CPUS, Vmmu};

impl Vmmu<'_> {
    /// Checks that `root` is a declared level-4 table and records it as
    /// `cpu`'s live root (so it cannot be removed); returns it for the NK to
    /// load.
    pub fn load_cr3(&mut self, cpu: usize, root: RawPfn) -> Result<u64, VmmuError> {
        let checked = self.check_root(cpu, root);
        self.counters.load_cr3.record(&checked);
        let pfn = checked?;
        self.live_roots[cpu] = Some(pfn);
        Ok(pfn)
    }

    fn check_root(&self, cpu: usize, root: RawPfn) -> Result<u64, VmmuError> {
        if cpu >= MAX_CPUS {
            return Err(VmmuError::BadCpu { cpu });
        }
        let pfn = root.0;
        match self.kind_of(pfn) {
            None => Err(VmmuError::FrameOutOfRange { pfn }),
            Some(FrameKind::Ptp(Level::L4)) => Ok(pfn),
            Some(found @ FrameKind::Ptp(_)) => Err(VmmuError::WrongLevel { pfn, expected: Level::L4, found }),
            Some(_) => Err(VmmuError::NotDeclared { pfn }),
        }
    }
}
