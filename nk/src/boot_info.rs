//! What the NK hands the outer kernel at boot: the machine as the boot
//! protocol described it, copied into NK memory so nothing points back into
//! firmware tables.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

pub const MAX_MEMORY_REGIONS: usize = 128;
pub const MAX_CMDLINE: usize = 1024;

/// A memory-map entry's type, as E820 and the PVH memory map number them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MemoryKind {
    Ram,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Unusable,
    Other(u32),
}

impl MemoryKind {
    pub const fn from_e820(kind: u32) -> Self {
        match kind {
            1 => Self::Ram,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            other => Self::Other(other),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct MemoryRegion {
    pub start: u64,
    pub len: u64,
    pub kind: MemoryKind,
}

impl MemoryRegion {
    pub const EMPTY: Self = Self { start: 0, len: 0, kind: MemoryKind::Reserved };

    /// End of the region, saturating so a hostile length cannot wrap.
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PhysRange {
    pub start: u64,
    pub end: u64,
}

/// CPU features the NK found (CPUID) and, where it applies, turned on.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuFeatures {
    pub smep: bool,
    pub smap: bool,
    pub pku: bool,
    pub pks: bool,
    pub huge_1g: bool,
    pub invariant_tsc: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    pub(crate) memory: [MemoryRegion; MAX_MEMORY_REGIONS],
    pub(crate) memory_len: usize,
    /// Regions the firmware listed beyond `MAX_MEMORY_REGIONS` (ignored).
    pub memory_dropped: usize,
    pub(crate) cmdline: [u8; MAX_CMDLINE],
    pub(crate) cmdline_len: usize,
    /// True when the command line was longer than `MAX_CMDLINE` and was cut.
    pub cmdline_truncated: bool,
    /// The initrd (first PVH module), if QEMU was given `-initrd`.
    pub initrd: Option<PhysRange>,
    /// ACPI RSDP physical address, 0 if the firmware gave none.
    pub rsdp: u64,
    /// The kernel image in physical memory, boot trampoline included.
    pub image: PhysRange,
    /// RAM the NK took for itself at boot (frame table, page tables of the
    /// kernel root): never the outer kernel's to allocate.
    pub nk_reserved: PhysRange,
    /// TSC value when the NK started its 64-bit boot code.
    pub boot_tsc: u64,
    pub cpu: CpuFeatures,
}

impl BootInfo {
    pub(crate) const fn empty() -> Self {
        Self {
            memory: [MemoryRegion::EMPTY; MAX_MEMORY_REGIONS],
            memory_len: 0,
            memory_dropped: 0,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            cmdline_truncated: false,
            initrd: None,
            rsdp: 0,
            image: PhysRange { start: 0, end: 0 },
            nk_reserved: PhysRange { start: 0, end: 0 },
            boot_tsc: 0,
            cpu: CpuFeatures { smep: false, smap: false, pku: false, pks: false, huge_1g: false, invariant_tsc: false },
        }
    }

    pub fn memory_map(&self) -> &[MemoryRegion] {
        &self.memory[..self.memory_len]
    }

    /// The kernel command line; invalid UTF-8 is cut at the first bad byte.
    pub fn cmdline(&self) -> &str {
        let bytes = &self.cmdline[..self.cmdline_len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    pub(crate) fn push_region(&mut self, region: MemoryRegion) {
        if self.memory_len < MAX_MEMORY_REGIONS {
            self.memory[self.memory_len] = region;
            self.memory_len += 1;
        } else {
            self.memory_dropped += 1;
        }
    }

    pub(crate) fn set_cmdline(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(MAX_CMDLINE);
        self.cmdline[..n].copy_from_slice(&bytes[..n]);
        self.cmdline_len = n;
        self.cmdline_truncated = bytes.len() > MAX_CMDLINE;
    }

    /// Highest end address of any RAM region.
    pub fn ram_end(&self) -> u64 {
        self.memory_map().iter().filter(|r| r.kind == MemoryKind::Ram).map(MemoryRegion::end).max().unwrap_or(0)
    }
}

struct BootInfoCell {
    info: UnsafeCell<BootInfo>,
    published: AtomicBool,
}

// SAFETY: the cell is written once, by `publish`, on the bootstrap CPU before
// any other CPU runs or any shared reference exists; afterwards it is only read.
unsafe impl Sync for BootInfoCell {}

static BOOT_INFO: BootInfoCell =
    BootInfoCell { info: UnsafeCell::new(BootInfo::empty()), published: AtomicBool::new(false) };

/// Stores the boot information once and returns the shared view of it.
pub(crate) fn publish(info: BootInfo) -> &'static BootInfo {
    if BOOT_INFO.published.swap(true, Ordering::AcqRel) {
        crate::console::fatal("nk: boot information published twice");
    }
    // SAFETY: the flag above admits exactly one writer, and no reference to
    // the cell's contents exists before this write completes.
    unsafe { BOOT_INFO.info.get().write(info) };
    // Not a tail call to `memcpy`: its GOT displacement, with the bytes
    // after the jump, happened to encode `lldt`, which the scan refuses.
    core::sync::atomic::fence(Ordering::SeqCst);
    // SAFETY: written above, never again; shared reads only from here.
    unsafe { &*BOOT_INFO.info.get() }
}

/// The published boot information (the NK's own copy).
pub(crate) fn published() -> &'static BootInfo {
    if !BOOT_INFO.published.load(Ordering::Acquire) {
        crate::console::fatal("nk: boot information read before it was published");
    }
    // SAFETY: published, so written once and never again; shared reads only.
    unsafe { &*BOOT_INFO.info.get() }
}

/// A boot stack for the outer kernel, placed in its data by `entry_point!`.
#[repr(C, align(16))]
pub struct BootStack(UnsafeCell<[u8; BootStack::SIZE]>);

// SAFETY: the stack is used by exactly one CPU, the bootstrap CPU, and only
// through the stack pointer; Rust code never forms references into it.
unsafe impl Sync for BootStack {}

impl BootStack {
    pub const SIZE: usize = 64 * 1024;

    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(UnsafeCell::new([0; Self::SIZE]))
    }

    /// The initial stack pointer: one past the highest byte.
    pub fn top(&self) -> u64 {
        self.0.get() as u64 + Self::SIZE as u64
    }
}
