//! Why the vMMU refused an operation: one variant per rule of docs/vmmu.md,
//! carrying what the caller needs to act on it.

use super::frame::FrameKind;
use super::level::Level;
use super::state::MAX_CPUS;

/// A refused operation. The operation changed nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VmmuError {
    /// The frame number is beyond the frame table (not RAM).
    FrameOutOfRange { pfn: u64 },
    /// The level is not 1 to 4.
    BadLevel { level: u8 },
    /// The entry index is not below 512.
    BadIndex { index: usize },
    /// The CPU number is not below `MAX_CPUS`.
    BadCpu { cpu: usize },
    /// The frame is not a declared page-table page.
    NotDeclared { pfn: u64 },
    /// Only free outer-kernel data can become a page-table page.
    WrongKind { pfn: u64, found: FrameKind },
    /// The page-table page is of another level than the entry requires.
    WrongLevel { pfn: u64, expected: Level, found: FrameKind },
    /// The frame is mapped by more than its direct-map alias.
    StillMapped { pfn: u64, refs: u32 },
    /// Entries besides its direct-map alias still point at the page table.
    InUse { pfn: u64, refs: u32 },
    /// The page table is loaded in some CPU's CR3.
    LiveRoot { pfn: u64 },
    /// The kernel root is never removed.
    KernelRoot,
    /// The frame has no 4 KiB direct-map alias pointing at it under the
    /// kernel root, so its rights cannot be changed.
    NoDirectMapAlias { pfn: u64 },
    /// The entry sets bits 52..=62, which the NK keeps.
    ReservedBits { bits: u64 },
    /// A non-leaf entry is not exactly present + writable + user, NX clear.
    BadTableEntryFlags { value: u64 },
    /// Level-4 entries cannot be leaves; 1 GiB leaves are refused.
    HugePageRefused { level: Level },
    /// A 2 MiB leaf's address is not 2 MiB aligned.
    Misaligned { addr: u64 },
    /// The frame's kind forbids a writable mapping.
    WritableMapping { pfn: u64, kind: FrameKind },
    /// The frame's kind forbids a user-accessible mapping.
    UserMapping { pfn: u64, kind: FrameKind },
    /// The frame's kind forbids executing it with these rights.
    ExecutableMapping { pfn: u64, kind: FrameKind },
    /// A leaf is both writable and executable (W^X).
    WritableExecutable { value: u64 },
    /// NK memory is never mapped by the outer kernel.
    MapsNkMemory { pfn: u64 },
    /// Device memory is never executable.
    ExecutableDevice { addr: u64 },
    /// The frame's reference count would overflow.
    RefOverflow { pfn: u64 },
    /// The entry is present and frozen: its table is pinned, or it points at
    /// NK memory or at a pinned page table, so it never changes (not even to
    /// its own value).
    PinnedEntry { table: u64, index: usize },
    /// The page table is pinned (a boot table of the NK's) and is never
    /// removed.
    Pinned { pfn: u64 },
    /// `map_code`: the frame holds, at byte `offset`, the opcode of a
    /// protected instruction (or the start of one cut off by the end of the
    /// frame), so it never becomes kernel code.
    ProtectedInstruction { pfn: u64, offset: usize },
    /// `map_code`: the entry is not a code leaf (present, read-only,
    /// supervisor, executable, a 4 KiB page with bit 7 clear).
    NotCodeLeaf { value: u64 },
    /// The frame is the kernel image's code, which is executable only at
    /// its boot mapping (the build-time scan vouches for it only there).
    ImageCodeRemapped { pfn: u64 },
    /// `release_code`: only a frame of kernel code is given back as data.
    NotCode { pfn: u64, kind: FrameKind },
    /// `release_code`: the kernel image's code is never given back (the
    /// build-time scan vouches for it at its frozen boot mapping).
    ImageCodeReleased { pfn: u64 },
}

impl VmmuError {
    /// A stable number for the status register of a gate call (0 is
    /// success), so the outer kernel can tell rules apart without the NK
    /// writing through a pointer it was given.
    pub const fn code(&self) -> u32 {
        match self {
            Self::FrameOutOfRange { .. } => 1,
            Self::BadLevel { .. } => 2,
            Self::BadIndex { .. } => 3,
            Self::BadCpu { .. } => 4,
            Self::NotDeclared { .. } => 5,
            Self::WrongKind { .. } => 6,
            Self::WrongLevel { .. } => 7,
            Self::StillMapped { .. } => 8,
            Self::InUse { .. } => 9,
            Self::LiveRoot { .. } => 10,
            Self::KernelRoot => 11,
            Self::NoDirectMapAlias { .. } => 12,
            Self::ReservedBits { .. } => 13,
            Self::BadTableEntryFlags { .. } => 14,
            Self::HugePageRefused { .. } => 15,
            Self::Misaligned { .. } => 16,
            Self::WritableMapping { .. } => 17,
            Self::UserMapping { .. } => 18,
            Self::ExecutableMapping { .. } => 19,
            Self::WritableExecutable { .. } => 20,
            Self::MapsNkMemory { .. } => 21,
            Self::ExecutableDevice { .. } => 22,
            Self::RefOverflow { .. } => 23,
            Self::PinnedEntry { .. } => 24,
            Self::Pinned { .. } => 25,
            Self::ProtectedInstruction { .. } => 26,
            Self::NotCodeLeaf { .. } => 27,
            Self::ImageCodeRemapped { .. } => 28,
            Self::NotCode { .. } => 29,
            Self::ImageCodeReleased { .. } => 30,
        }
    }
}

impl core::fmt::Display for VmmuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::FrameOutOfRange { pfn } => write!(f, "frame {pfn:#x} is outside RAM"),
            Self::BadLevel { level } => write!(f, "page-table level {level} does not exist (1 to 4)"),
            Self::BadIndex { index } => write!(f, "entry index {index} is beyond a 512-entry table"),
            Self::BadCpu { cpu } => write!(f, "CPU {cpu} is beyond the {MAX_CPUS} the NK supports"),
            Self::NotDeclared { pfn } => write!(f, "frame {pfn:#x} is not a declared page-table page"),
            Self::WrongKind { pfn, found } => {
                write!(f, "frame {pfn:#x} is {found}; only free outer-kernel data can become a page table")
            }
            Self::WrongLevel { pfn, expected, found } => {
                write!(f, "frame {pfn:#x} is {found}, not a level-{expected} page-table page")
            }
            Self::StillMapped { pfn, refs } => {
                write!(f, "frame {pfn:#x} has {refs} mappings; only its direct-map alias may remain")
            }
            Self::InUse { pfn, refs } => {
                write!(f, "page table {pfn:#x} has {refs} references; only its direct-map alias may remain")
            }
            Self::LiveRoot { pfn } => write!(f, "page table {pfn:#x} is loaded in a CPU's CR3"),
            Self::KernelRoot => f.write_str("the kernel root page table is never removed"),
            Self::NoDirectMapAlias { pfn } => write!(f, "frame {pfn:#x} has no 4 KiB direct-map alias"),
            Self::ReservedBits { bits } => write!(f, "entry sets bits {bits:#x}, which belong to the NK"),
            Self::BadTableEntryFlags { value } => {
                write!(f, "table entry {value:#x} is not exactly present, writable and user with NX clear")
            }
            Self::HugePageRefused { level } => write!(f, "level-{level} entries cannot be large-page leaves"),
            Self::Misaligned { addr } => write!(f, "large-page address {addr:#x} is not 2 MiB aligned"),
            Self::WritableMapping { pfn, kind } => write!(f, "frame {pfn:#x} ({kind}) cannot be mapped writable"),
            Self::UserMapping { pfn, kind } => {
                write!(f, "frame {pfn:#x} ({kind}) cannot be mapped user-accessible")
            }
            Self::ExecutableMapping { pfn, kind } => {
                write!(f, "frame {pfn:#x} ({kind}) cannot be mapped executable with these rights")
            }
            Self::WritableExecutable { value } => write!(f, "entry {value:#x} is both writable and executable"),
            Self::MapsNkMemory { pfn } => write!(f, "frame {pfn:#x} is nested-kernel memory and cannot be mapped"),
            Self::ExecutableDevice { addr } => write!(f, "device memory at {addr:#x} cannot be executable"),
            Self::RefOverflow { pfn } => write!(f, "frame {pfn:#x} cannot take another reference"),
            Self::PinnedEntry { table, index } => write!(
                f,
                "entry {index} of page table {table:#x} is frozen (a pinned table's, or pointing at \
                 nested-kernel memory or a pinned page table) and cannot be changed"
            ),
            Self::Pinned { pfn } => write!(f, "page table {pfn:#x} is pinned and is never removed"),
            Self::ProtectedInstruction { pfn, offset } => write!(
                f,
                "frame {pfn:#x} holds a protected instruction's opcode at byte {offset} (or one cut off at its \
                 end) and cannot become kernel code"
            ),
            Self::NotCodeLeaf { value } => write!(
                f,
                "entry {value:#x} is not a code leaf: present, read-only, supervisor, executable, 4 KiB, bit 7 clear"
            ),
            Self::ImageCodeRemapped { pfn } => {
                write!(f, "frame {pfn:#x} is kernel-image code, executable only at its boot mapping")
            }
            Self::NotCode { pfn, kind } => {
                write!(f, "frame {pfn:#x} is {kind}; only kernel code is released back to data")
            }
            Self::ImageCodeReleased { pfn } => {
                write!(f, "frame {pfn:#x} is kernel-image code, which is never released")
            }
        }
    }
}
