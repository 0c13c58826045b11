//! Reading the PVH `hvm_start_info` block (Xen's `arch-x86/hvm/start_info.h`)
//! that QEMU passes in `ebx`.

use crate::boot_info::{BootInfo, MemoryKind, MemoryRegion, PhysRange};
use crate::layout::{self, phys_to_virt};

const MAGIC: u32 = 0x336e_c578;
/// The early page tables map only the first GiB of physical memory.
const EARLY_LIMIT: u64 = 1 << 30;

/// Reads a `T` at physical address `phys` through the early direct map.
fn read_phys<T: Copy>(phys: u64) -> Result<T, &'static str> {
    let end = phys.checked_add(size_of::<T>() as u64).ok_or("nk: boot table address overflows")?;
    if end > EARLY_LIMIT {
        return Err("nk: boot table lies above the first GiB");
    }
    // SAFETY: the early page tables map the first GiB at the direct map, and
    // the range was checked to lie inside it; the read is unaligned-safe.
    Ok(unsafe { (phys_to_virt(phys) as *const T).read_unaligned() })
}

fn read_bytes(phys: u64, out: &mut [u8]) -> Result<usize, &'static str> {
    for (i, b) in out.iter_mut().enumerate() {
        *b = read_phys::<u8>(phys + i as u64)?;
        if *b == 0 {
            return Ok(i);
        }
    }
    Ok(out.len())
}

#[derive(Clone, Copy)]
#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct ModuleEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

/// Builds a [`BootInfo`] from the start-info block at `phys`.
pub fn read(phys: u64) -> Result<BootInfo, &'static str> {
    let si: StartInfo = read_phys(phys)?;
    if si.magic != MAGIC {
        return Err("nk: no PVH start info (boot with qemu-system-x86_64 -kernel)");
    }
    if si.version < 1 || si.memmap_entries == 0 {
        return Err("nk: PVH start info has no memory map");
    }
    let mut info = BootInfo::empty();
    for i in 0..u64::from(si.memmap_entries) {
        let e: MemmapEntry = read_phys(si.memmap_paddr + i * size_of::<MemmapEntry>() as u64)?;
        info.push_region(MemoryRegion { start: e.addr, len: e.size, kind: MemoryKind::from_e820(e.kind) });
    }
    if si.cmdline_paddr != 0 {
        let mut buf = [0u8; crate::boot_info::MAX_CMDLINE + 1];
        let n = read_bytes(si.cmdline_paddr, &mut buf)?;
        info.set_cmdline(&buf[..n]);
    }
    if si.nr_modules > 0 && si.modlist_paddr != 0 {
        let m: ModuleEntry = read_phys(si.modlist_paddr)?;
        if m.size > 0 {
            let end = m.paddr.checked_add(m.size).ok_or("nk: initrd range overflows")?;
            info.initrd = Some(PhysRange { start: m.paddr, end });
        }
    }
    info.rsdp = si.rsdp_paddr;
    let image = layout::image();
    info.image = PhysRange { start: image.phys_start, end: image.data.phys().1 };
    Ok(info)
}
