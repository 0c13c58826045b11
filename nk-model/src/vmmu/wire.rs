//! A refusal as it crosses the gate back to the outer kernel: a rule code
//! and two words, so the NK never writes through a pointer it was given.

use super::error::VmmuError;
use super::frame::FrameKind;
use super::level::Level;

/// A `VmmuError` in three plain numbers: `code()`, the main value (a frame,
/// an address, an entry) and a small auxiliary value (a level, a kind, a
/// count, an index).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Wire {
    pub code: u32,
    pub main: u64,
    pub aux: u32,
}

fn kind_code(kind: FrameKind) -> u32 {
    match kind {
        FrameKind::Data => 0,
        FrameKind::Code => 1,
        FrameKind::ReadOnly => 2,
        FrameKind::Nk => 3,
        FrameKind::Device => 4,
        FrameKind::Mediated => 5,
        FrameKind::Ptp(level) => 0x10 | u32::from(level.as_u8()),
    }
}

fn kind_of(code: u32) -> Option<FrameKind> {
    Some(match code {
        0 => FrameKind::Data,
        1 => FrameKind::Code,
        2 => FrameKind::ReadOnly,
        3 => FrameKind::Nk,
        4 => FrameKind::Device,
        5 => FrameKind::Mediated,
        c if c & !0xf == 0x10 => FrameKind::Ptp(level_of(c & 0xf)?),
        _ => return None,
    })
}

fn level_of(code: u32) -> Option<Level> {
    Level::from_u8(u8::try_from(code).ok()?)
}

impl VmmuError {
    pub fn to_wire(&self) -> Wire {
        use VmmuError as E;
        let code = self.code();
        let (main, aux) = match *self {
            E::FrameOutOfRange { pfn }
            | E::NotDeclared { pfn }
            | E::LiveRoot { pfn }
            | E::NoDirectMapAlias { pfn }
            | E::MapsNkMemory { pfn }
            | E::RefOverflow { pfn }
            | E::Pinned { pfn }
            | E::ImageCodeRemapped { pfn }
            | E::ImageCodeReleased { pfn } => (pfn, 0),
            E::BadLevel { level } => (0, u32::from(level)),
            E::BadIndex { index } => (index as u64, 0),
            E::BadCpu { cpu } => (cpu as u64, 0),
            E::WrongKind { pfn, found } => (pfn, kind_code(found)),
            E::WrongLevel { pfn, expected, found } => (pfn, u32::from(expected.as_u8()) << 8 | kind_code(found)),
            E::StillMapped { pfn, refs } | E::InUse { pfn, refs } => (pfn, refs),
            E::KernelRoot => (0, 0),
            E::ReservedBits { bits } => (bits, 0),
            E::BadTableEntryFlags { value } | E::WritableExecutable { value } | E::NotCodeLeaf { value } => (value, 0),
            E::HugePageRefused { level } => (0, u32::from(level.as_u8())),
            E::Misaligned { addr } | E::ExecutableDevice { addr } => (addr, 0),
            E::WritableMapping { pfn, kind }
            | E::UserMapping { pfn, kind }
            | E::ExecutableMapping { pfn, kind }
            | E::NotCode { pfn, kind } => (pfn, kind_code(kind)),
            E::PinnedEntry { table, index } => (table, index as u32),
            // An offset inside a frame: below 4096.
            E::ProtectedInstruction { pfn, offset } => (pfn, offset as u32),
        };
        Wire { code, main, aux }
    }

    /// The error `to_wire` encoded; `None` for numbers no error encodes to.
    pub fn from_wire(w: Wire) -> Option<Self> {
        use VmmuError as E;
        let (pfn, aux) = (w.main, w.aux);
        Some(match w.code {
            1 => E::FrameOutOfRange { pfn },
            2 => E::BadLevel { level: u8::try_from(aux).ok()? },
            3 => E::BadIndex { index: usize::try_from(pfn).ok()? },
            4 => E::BadCpu { cpu: usize::try_from(pfn).ok()? },
            5 => E::NotDeclared { pfn },
            6 => E::WrongKind { pfn, found: kind_of(aux)? },
            7 => E::WrongLevel { pfn, expected: level_of(aux >> 8)?, found: kind_of(aux & 0xff)? },
            8 => E::StillMapped { pfn, refs: aux },
            9 => E::InUse { pfn, refs: aux },
            10 => E::LiveRoot { pfn },
            11 => E::KernelRoot,
            12 => E::NoDirectMapAlias { pfn },
            13 => E::ReservedBits { bits: pfn },
            14 => E::BadTableEntryFlags { value: pfn },
            15 => E::HugePageRefused { level: level_of(aux)? },
            16 => E::Misaligned { addr: pfn },
            17 => E::WritableMapping { pfn, kind: kind_of(aux)? },
            18 => E::UserMapping { pfn, kind: kind_of(aux)? },
            19 => E::ExecutableMapping { pfn, kind: kind_of(aux)? },
            20 => E::WritableExecutable { value: pfn },
            21 => E::MapsNkMemory { pfn },
            22 => E::ExecutableDevice { addr: pfn },
            23 => E::RefOverflow { pfn },
            24 => E::PinnedEntry { table: pfn, index: aux as usize },
            25 => E::Pinned { pfn },
            26 => E::ProtectedInstruction { pfn, offset: aux as usize },
            27 => E::NotCodeLeaf { value: pfn },
            28 => E::ImageCodeRemapped { pfn },
            29 => E::NotCode { pfn, kind: kind_of(aux)? },
            30 => E::ImageCodeReleased { pfn },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_survives_the_gate() {
        let l1 = FrameKind::Ptp(Level::L1);
        let all = [
            VmmuError::FrameOutOfRange { pfn: 1 << 40 },
            VmmuError::BadLevel { level: 200 },
            VmmuError::BadIndex { index: 512 },
            VmmuError::BadCpu { cpu: 99 },
            VmmuError::NotDeclared { pfn: 7 },
            VmmuError::WrongKind { pfn: 7, found: FrameKind::Code },
            VmmuError::WrongLevel { pfn: 7, expected: Level::L2, found: l1 },
            VmmuError::WrongLevel { pfn: 7, expected: Level::L4, found: FrameKind::Data },
            VmmuError::StillMapped { pfn: 7, refs: u32::MAX },
            VmmuError::InUse { pfn: 7, refs: 2 },
            VmmuError::LiveRoot { pfn: 7 },
            VmmuError::KernelRoot,
            VmmuError::NoDirectMapAlias { pfn: 7 },
            VmmuError::ReservedBits { bits: 0x7ff << 52 },
            VmmuError::BadTableEntryFlags { value: u64::MAX },
            VmmuError::HugePageRefused { level: Level::L3 },
            VmmuError::Misaligned { addr: 0x20_1000 },
            VmmuError::WritableMapping { pfn: 7, kind: FrameKind::Ptp(Level::L4) },
            VmmuError::UserMapping { pfn: 7, kind: FrameKind::ReadOnly },
            VmmuError::ExecutableMapping { pfn: 7, kind: FrameKind::Device },
            VmmuError::WritableExecutable { value: 3 },
            VmmuError::MapsNkMemory { pfn: 7 },
            VmmuError::ExecutableDevice { addr: 0xfee0_0000 },
            VmmuError::RefOverflow { pfn: 7 },
            VmmuError::PinnedEntry { table: 7, index: 511 },
            VmmuError::Pinned { pfn: 7 },
            VmmuError::ProtectedInstruction { pfn: 7, offset: 4095 },
            VmmuError::NotCodeLeaf { value: u64::MAX },
            VmmuError::ImageCodeRemapped { pfn: 7 },
            VmmuError::NotCode { pfn: 7, kind: FrameKind::Ptp(Level::L3) },
            VmmuError::ImageCodeReleased { pfn: 7 },
        ];
        let mut codes: std::vec::Vec<u32> = all.iter().map(|e| e.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), 30, "every rule is covered once (WrongLevel twice)");
        for e in all {
            assert_eq!(VmmuError::from_wire(e.to_wire()), Some(e), "{e:?}");
        }
    }

    #[test]
    fn unknown_numbers_decode_to_nothing() {
        assert_eq!(VmmuError::from_wire(Wire { code: 0, main: 0, aux: 0 }), None);
        assert_eq!(VmmuError::from_wire(Wire { code: 31, main: 0, aux: 0 }), None);
        assert_eq!(VmmuError::from_wire(Wire { code: 6, main: 0, aux: 0x99 }), None);
        assert_eq!(VmmuError::from_wire(Wire { code: 2, main: 0, aux: 300 }), None);
    }
}
