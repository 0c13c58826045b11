//! The frame table's entries: what each physical frame of RAM is, whether
//! the NK has pinned it, and how many page-table entries point at it.

use super::level::Level;

/// What a frame of RAM is used for; decides which mappings of it are legal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameKind {
    /// Ordinary outer-kernel memory, free or in use.
    Data,
    /// Kernel code the NK vetted.
    Code,
    /// Kernel read-only data.
    ReadOnly,
    /// A declared page-table page of the given level.
    Ptp(Level),
    /// The NK's own code, data, stacks and frame table.
    Nk,
    /// Outer-kernel data the NK write-mediates (`nk_declare`): read-only
    /// to the outer kernel in every mapping, changed only by `nk_write` (I11).
    Mediated,
    /// A hole below the end of RAM: treated like memory beyond the frame
    /// table (mappable as data, never executable, never a page table).
    Device,
}

impl core::fmt::Display for FrameKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Data => f.write_str("outer-kernel data"),
            Self::Code => f.write_str("kernel code"),
            Self::ReadOnly => f.write_str("kernel read-only data"),
            Self::Ptp(level) => write!(f, "a level-{level} page-table page"),
            Self::Nk => f.write_str("nested-kernel memory"),
            Self::Device => f.write_str("device memory"),
            Self::Mediated => f.write_str("a write-mediated region"),
        }
    }
}

/// One frame's descriptor: 8 bytes, so the table costs 0.2 % of RAM.
///
/// The fields are private: only the vMMU changes a kind, a pin or a count,
/// and it keeps `refs` exact.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FrameDesc {
    tag: u8,
    level: u8,
    /// 1 when pinned, else 0 (other values read as pinned).
    pinned: u8,
    /// 1 for a frame of the kernel image's code, typed `Code` at boot; else
    /// 0 (other values read as image code).
    image: u8,
    refs: u32,
}

const _: () = assert!(size_of::<FrameDesc>() == 8);

const TAG_DATA: u8 = 0;
const TAG_CODE: u8 = 1;
const TAG_READ_ONLY: u8 = 2;
const TAG_PTP: u8 = 3;
const TAG_NK: u8 = 4;
const TAG_DEVICE: u8 = 5;
const TAG_MEDIATED: u8 = 6;

impl FrameDesc {
    /// Free outer-kernel data with no mapping: what the NK fills the table
    /// with before it sets the kinds. All zero bytes, so a zeroed frame
    /// table is a table of `DATA`.
    pub const DATA: Self = Self { tag: TAG_DATA, level: 0, pinned: 0, image: 0, refs: 0 };

    pub const fn kind(&self) -> FrameKind {
        match (self.tag, Level::from_u8(self.level)) {
            (TAG_DATA, _) => FrameKind::Data,
            (TAG_CODE, _) => FrameKind::Code,
            (TAG_READ_ONLY, _) => FrameKind::ReadOnly,
            (TAG_PTP, Some(level)) => FrameKind::Ptp(level),
            (TAG_DEVICE, _) => FrameKind::Device,
            (TAG_MEDIATED, _) => FrameKind::Mediated,
            // The NK writes only valid encodings; anything else (corrupted
            // NK memory) reads as the most restricted kind: never mappable,
            // never declarable, never removable.
            _ => FrameKind::Nk,
        }
    }

    /// A page table the NK pinned at boot (every boot table but the root):
    /// never removed; its present entries, and entries pointing at it, never
    /// change. The NK writes only 0 or 1; any other value (corrupted NK
    /// memory) reads as pinned, the more restricted reading.
    pub const fn pinned(&self) -> bool {
        self.pinned != 0
    }

    /// A frame of the kernel image's code (boot typed it `Code`), as
    /// opposed to one `map_code` vetted: the build-time scan read it only
    /// as part of the image's one contiguous run of code, so it is
    /// executable only at its boot mapping (docs/vmmu.md, *Image code*).
    /// The NK writes only 0 or 1; any other value reads as image code, the
    /// more restricted reading.
    pub const fn image_code(&self) -> bool {
        self.image != 0
    }

    pub const fn refs(&self) -> u32 {
        self.refs
    }

    /// Sets the kind; the frame is no longer image code (`mark_image_code`
    /// makes it that again).
    pub(super) fn set_kind(&mut self, kind: FrameKind) {
        self.image = 0;
        (self.tag, self.level) = match kind {
            FrameKind::Data => (TAG_DATA, 0),
            FrameKind::Code => (TAG_CODE, 0),
            FrameKind::ReadOnly => (TAG_READ_ONLY, 0),
            FrameKind::Ptp(level) => (TAG_PTP, level.as_u8()),
            FrameKind::Nk => (TAG_NK, 0),
            FrameKind::Device => (TAG_DEVICE, 0),
            FrameKind::Mediated => (TAG_MEDIATED, 0),
        };
    }

    /// Marks a `Code` frame as the image's (boot only).
    pub(super) fn mark_image_code(&mut self) {
        self.image = 1;
    }

    /// Pins the frame for good: nothing unpins it.
    pub(super) fn pin(&mut self) {
        self.pinned = 1;
    }

    pub(super) fn set_refs(&mut self, refs: u32) {
        self.refs = refs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        let kinds = [
            FrameKind::Data,
            FrameKind::Code,
            FrameKind::ReadOnly,
            FrameKind::Ptp(Level::L1),
            FrameKind::Ptp(Level::L4),
            FrameKind::Nk,
            FrameKind::Device,
            FrameKind::Mediated,
        ];
        for kind in kinds {
            let mut d = FrameDesc::DATA;
            d.set_kind(kind);
            d.set_refs(7);
            assert_eq!(d.kind(), kind);
            assert_eq!(d.refs(), 7);
            assert!(!d.pinned());
            d.pin();
            assert_eq!((d.kind(), d.refs(), d.pinned()), (kind, 7, true));
            assert!(!d.image_code());
        }
    }

    #[test]
    fn image_code_is_its_own_flag() {
        let mut d = FrameDesc::DATA;
        d.set_kind(FrameKind::Code);
        assert!(!d.image_code(), "a vetted frame is not image code");
        d.mark_image_code();
        assert!(d.image_code());
        assert_eq!(d.kind(), FrameKind::Code);
        d.set_kind(FrameKind::Data);
        assert!(!d.image_code(), "a new kind drops the flag");
        let bad = FrameDesc { tag: TAG_CODE, level: 0, pinned: 0, image: 0x40, refs: 0 };
        assert!(bad.image_code(), "any non-zero value reads as image code");
    }

    #[test]
    fn all_zero_is_unpinned_data() {
        let zero = FrameDesc { tag: 0, level: 0, pinned: 0, image: 0, refs: 0 };
        assert_eq!(zero, FrameDesc::DATA);
        assert!(!FrameDesc::DATA.pinned());
    }

    #[test]
    fn corrupted_encodings_read_as_nk() {
        let bad = FrameDesc { tag: 200, level: 0, pinned: 0, image: 0, refs: 0 };
        assert_eq!(bad.kind(), FrameKind::Nk);
        let bad_level = FrameDesc { tag: TAG_PTP, level: 9, pinned: 0, image: 0, refs: 0 };
        assert_eq!(bad_level.kind(), FrameKind::Nk);
        let bad_pin = FrameDesc { tag: TAG_PTP, level: 1, pinned: 0x80, image: 0, refs: 0 };
        assert!(bad_pin.pinned());
        assert_eq!(FrameDesc::DATA.kind(), FrameKind::Data);
    }
}
