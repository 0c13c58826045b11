//! Which rights a leaf may give each kind of frame (docs/vmmu.md, the table
//! of kinds and `write_pte`).

use super::entry::Rights;
use super::error::VmmuError;
use super::frame::FrameKind;

/// Checks one frame a new leaf maps with rights `r`.
pub fn check_leaf_frame(pfn: u64, kind: FrameKind, r: Rights) -> Result<(), VmmuError> {
    match kind {
        // Even a read-only mapping would show the outer kernel NK secrets
        // and let it alias NK addresses; the NK maps its memory at boot.
        FrameKind::Nk => Err(VmmuError::MapsNkMemory { pfn }),
        FrameKind::Ptp(_) | FrameKind::ReadOnly | FrameKind::Mediated => {
            if r.writable {
                Err(VmmuError::WritableMapping { pfn, kind })
            } else if r.user {
                Err(VmmuError::UserMapping { pfn, kind })
            } else if r.executable {
                Err(VmmuError::ExecutableMapping { pfn, kind })
            } else {
                Ok(())
            }
        }
        FrameKind::Code => {
            if r.writable {
                Err(VmmuError::WritableMapping { pfn, kind })
            } else if r.user {
                Err(VmmuError::UserMapping { pfn, kind })
            } else {
                Ok(())
            }
        }
        // Kernel-executable is for vetted code only (I6, I7); user code is
        // ordinary data, which SMEP keeps the kernel from executing.
        FrameKind::Data if r.executable && !r.user => Err(VmmuError::ExecutableMapping { pfn, kind }),
        FrameKind::Data => Ok(()),
        FrameKind::Device if r.executable => Err(VmmuError::ExecutableDevice { addr: pfn << 12 }),
        FrameKind::Device => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmmu::level::Level;

    fn r(writable: bool, user: bool, executable: bool) -> Rights {
        Rights { writable, user, executable }
    }

    #[test]
    fn table_of_kinds() {
        let ptp = FrameKind::Ptp(Level::L1);
        for kind in [ptp, FrameKind::ReadOnly, FrameKind::Mediated] {
            assert_eq!(check_leaf_frame(1, kind, r(false, false, false)), Ok(()));
            assert_eq!(
                check_leaf_frame(1, kind, r(true, false, false)),
                Err(VmmuError::WritableMapping { pfn: 1, kind })
            );
            assert_eq!(check_leaf_frame(1, kind, r(false, true, false)), Err(VmmuError::UserMapping { pfn: 1, kind }));
            assert_eq!(
                check_leaf_frame(1, kind, r(false, false, true)),
                Err(VmmuError::ExecutableMapping { pfn: 1, kind })
            );
        }
        let code = FrameKind::Code;
        assert_eq!(check_leaf_frame(1, code, r(false, false, true)), Ok(()));
        assert_eq!(check_leaf_frame(1, code, r(false, true, true)), Err(VmmuError::UserMapping { pfn: 1, kind: code }));
        let data = FrameKind::Data;
        assert_eq!(check_leaf_frame(1, data, r(true, true, false)), Ok(()));
        assert_eq!(check_leaf_frame(1, data, r(false, true, true)), Ok(()));
        assert_eq!(
            check_leaf_frame(1, data, r(false, false, true)),
            Err(VmmuError::ExecutableMapping { pfn: 1, kind: data })
        );
        assert_eq!(check_leaf_frame(2, FrameKind::Nk, r(false, false, false)), Err(VmmuError::MapsNkMemory { pfn: 2 }));
        assert_eq!(check_leaf_frame(2, FrameKind::Device, r(true, true, false)), Ok(()));
        assert_eq!(
            check_leaf_frame(2, FrameKind::Device, r(false, false, true)),
            Err(VmmuError::ExecutableDevice { addr: 0x2000 })
        );
    }
}
