//! The outer kernel: an ordinary monolithic kernel that runs on top of the
//! nested kernel (`nk`). It owns devices, memory policy, the shell and the
//! tests; it asks the NK for anything privileged.
//!
//! `unsafe` is denied here except in the narrow, named modules that talk to
//! hardware (`arch`, `console`) or hand raw memory to Rust (`mm`, `ktest`).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

mod arch;
mod attack;
mod bench;
mod console;
mod fs;
mod ktest;
mod mm;
mod module;
mod panic;
mod proc;
mod sched;
mod services;
mod shell;
mod time;
mod trap;
mod tty;

use nk::BootInfo;

nk::entry_point!(kernel_main, panic = panic::panic);

/// Kernel command-line words the kernel understands.
const KNOWN_WORDS: &[&str] = &["test", "nk.systable", "nk.proclist", "nk.audit", "ksh.user", "init"];

static BOOT_INFO: spin::Once<&'static BootInfo> = spin::Once::new();

/// What the NK told us at boot.
pub fn boot_info() -> &'static BootInfo {
    BOOT_INFO.get().expect("boot info is set first thing in kernel_main")
}

fn kernel_main(info: &'static BootInfo) -> ! {
    BOOT_INFO.call_once(|| info);
    console::init();
    println!();
    println!("Nested Kernel {} on x86-64: nested kernel active, outer kernel starting", env!("CARGO_PKG_VERSION"));
    let cmdline = info.cmdline();
    println!("cmdline: \"{}\"", cmdline);
    for w in klib::cmdline::unknown(cmdline, KNOWN_WORDS) {
        println!("cmdline: unknown word '{}' ignored", w.raw);
    }
    if info.cmdline_truncated {
        println!("cmdline: longer than {} bytes, cut", nk::boot_info::MAX_CMDLINE);
    }

    mm::init(info);
    fs::init();
    sched::init();
    trap::init();
    services::init(cmdline);
    // The end of boot: the table is sealed before any process runs.
    proc::syscall::install_table();
    if let Err(e) = nk::api::set_syscall_entry(arch::user::syscall_entry()) {
        println!("boot: the NK refused the system-call entry point: {}", e);
    }
    time::init(info.boot_tsc);
    arch::enable_interrupts();
    println!("boot: ready in {} ms since the NK started", time::since_tsc_ms(info.boot_tsc));

    if let Some(filter) = klib::cmdline::get(cmdline, "test") {
        ktest::run_all(filter.unwrap_or(""));
    }
    shell::run()
}

ktest!(
    fn boot_info_describes_the_machine() {
        let info = boot_info();
        let ram: u64 = info.memory_map().iter().filter(|r| r.kind == nk::MemoryKind::Ram).map(|r| r.len).sum();
        kassert!(ram >= 64 << 20, "only {} KiB of RAM in the memory map", ram >> 10);
        kassert!(info.image.start == 1 << 20 && info.image.end > info.image.start);
        kassert!(info.image.end <= info.ram_end());
        kassert!(klib::cmdline::get(info.cmdline(), "test").is_some(), "cmdline {:?}", info.cmdline());
        kassert!(info.boot_tsc > 0 && info.boot_tsc < arch::rdtsc());
        Ok(())
    }
);

ktest!(
    fn cpu_protection_is_on_where_offered() {
        use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
        let f = boot_info().cpu;
        kassert!(Cr0::read().contains(Cr0Flags::WRITE_PROTECT));
        let cr4 = Cr4::read();
        kassert_eq!(cr4.contains(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION), f.smep);
        kassert_eq!(cr4.contains(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION), f.smap);
        Ok(())
    }
);

ktest!(
    fn set_cr0_changes_a_free_bit_and_keeps_wp() {
        // The NK applies a CR0 request's free bits (MP, EM, TS, NE, AM) at
        // the gate's re-arm, together with WP: AM only matters in ring 3.
        use x86_64::registers::control::{Cr0, Cr0Flags};
        let before = Cr0::read_raw();
        let am = Cr0Flags::ALIGNMENT_MASK.bits();
        kassert_eq!(nk::api::set_cr0(before | am), Ok(()));
        let with = Cr0::read_raw();
        kassert_eq!(nk::api::set_cr0(before & !am), Ok(()));
        let without = Cr0::read_raw();
        kassert!(with & am != 0 && without & am == 0, "CR0 {:#x} then {:#x}", with, without);
        kassert!(with & Cr0Flags::WRITE_PROTECT.bits() != 0 && without & Cr0Flags::WRITE_PROTECT.bits() != 0);
        if before & am != 0 {
            let _ = nk::api::set_cr0(before);
        }
        Ok(())
    }
);

ktest!(
    fn empty_nk_call_crosses_the_gate_once() {
        use x86_64::registers::control::{Cr0, Cr0Flags};
        let before = nk::api::gate_crossings();
        let r = nk::api::nop();
        kassert_eq!(r, Ok(()));
        kassert_eq!(nk::api::gate_crossings(), before + 1);
        // Protection is back on, and interrupts are as they were.
        kassert!(Cr0::read().contains(Cr0Flags::WRITE_PROTECT));
        kassert!(x86_64::instructions::interrupts::are_enabled());
        // The NK ran it with the known RFLAGS, not the caller's (IF set).
        if nk::BACKEND != "native" {
            kassert_eq!(nk::api::nop_flags(), Ok(0));
        }
        Ok(())
    }
);
