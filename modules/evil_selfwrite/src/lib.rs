//! Malicious: once loaded, it rewrites its own text. Its text mapping is
//! read-only everywhere, so it finds the frame's other mapping, the direct
//! map's alias, by walking the page tables from CR3, and writes there:
//! `mov eax, 1; ret` becomes `mov eax, 2; ret`. On the protected kernel
//! the NK made that alias read-only when it vetted the frame, so the write
//! faults and the loading thread dies; on `native` the patched code runs.
#![no_std]

nkmod::module! { name: "evil_selfwrite", version: "1", license: "MIT OR Apache-2.0", init: init, exit: exit }

core::arch::global_asm!(
    ".pushsection .text.evil_victim, \"ax\"",
    ".globl evil_victim",
    "evil_victim:",
    "mov eax, 1",
    "ret",
    ".popsection",
);

unsafe extern "C" {
    fn evil_victim() -> u32;
}

const DIRECT_MAP: u64 = 0xffff_8000_0000_0000;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// The physical address `va` maps to, walking the tables through the
/// direct map (reading them is allowed: they are only read-only).
fn physical(va: u64) -> Option<u64> {
    let mut table: u64;
    // SAFETY: reading CR3 has no effect.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) table, options(nomem, nostack)) };
    table &= ADDR;
    for level in (1..=4u64).rev() {
        let index = (va >> (12 + 9 * (level - 1))) & 0x1ff;
        // SAFETY: the direct map holds every page table, readable.
        let entry = unsafe { core::ptr::read_volatile((DIRECT_MAP + table + index * 8) as *const u64) };
        if entry & 1 == 0 {
            return None;
        }
        if level == 2 && entry & 0x80 != 0 {
            return Some((entry & ADDR & !0x1f_ffff) + (va & 0x1f_ffff));
        }
        table = entry & ADDR;
    }
    Some(table + (va & 0xfff))
}

fn init() -> Result<(), nkmod::Errno> {
    let va = evil_victim as *const () as u64;
    let Some(pa) = physical(va) else { return Err(nkmod::Errno(evil::PAYLOAD_FAILED)) };
    // SAFETY: deliberately not: writes code through another mapping.
    unsafe { core::ptr::write_volatile((DIRECT_MAP + pa + 1) as *mut u8, 2) };
    // SAFETY: the function is `mov eax, N; ret`.
    let ran = unsafe { evil_victim() };
    Err(nkmod::Errno(if ran == 2 { evil::PAYLOAD_RAN } else { evil::PAYLOAD_FAILED }))
}

fn exit() {}
