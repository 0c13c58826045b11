//! The nested kernel (NK): the small trusted part of the kernel.
//!
//! It runs first at boot, builds the page tables and descriptor tables, and
//! hands the machine to the outer kernel through [`entry_point!`]. It is the
//! only code in the image that contains privileged instructions (writes to
//! control registers, MSRs, descriptor-table loads); the outer kernel asks the
//! NK for those operations through this crate's public functions.
//!
//! Rules for this crate: no heap, no dependencies but `core` and `nk-model`,
//! every `unsafe` block says why it is sound.
#![no_std]
// The `native` backend compiles the protection machinery (gate stacks,
// re-arm paths) out; what it leaves unused is expected.
#![cfg_attr(feature = "native", allow(dead_code, unused_imports))]

pub mod api;
pub mod boot_info;
pub mod layout;
pub mod services;
pub mod trap;

mod boot;
mod console;
mod cpu;
pub mod cpu_state;
mod cr3;
mod gate;
mod gdt;
mod paging;
mod panic;
mod percpu;
mod sites;
mod start_info;
mod vmmu;

pub use boot_info::{BootInfo, BootStack, CpuFeatures, MemoryKind, MemoryRegion, PhysRange};
/// The protection backend this NK was built with.
pub const BACKEND: &str = if cfg!(feature = "native") { "native" } else { "wp" };

pub use console::fatal;
pub use gate::GateResult;
pub use gdt::{IstStacks, KERNEL_CODE, KERNEL_DATA, USER_CODE, USER_DATA};
pub use nk_model::vmmu::{FrameKind, Level, Report, VmmuError};
pub use percpu::{MAX_CPUS, current as current_cpu};

/// Declares the outer kernel's entry function, `fn(&'static BootInfo) -> !`,
/// and its panic function, `fn(&PanicInfo) -> !`.
///
/// The NK calls the entry once, on the bootstrap CPU, after the page tables
/// and descriptor tables are live, with interrupts disabled, on a 64 KiB
/// stack that this macro places in the outer kernel's own data, as it does
/// the interrupt stacks (which the CPU writes with protection on). The
/// image's panic handler is the NK's (`panic.rs`): it stops the machine for
/// a panic inside the NK and calls the outer kernel's for any other.
#[macro_export]
macro_rules! entry_point {
    ($path:path, panic = $panic:path) => {
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        fn nk_outer_panic(info: &core::panic::PanicInfo) -> ! {
            let handler: fn(&core::panic::PanicInfo) -> ! = $panic;
            handler(info)
        }

        $crate::entry_point!($path);
    };
    ($path:path) => {
        // The NK finds these two by name.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        extern "C" fn nk_outer_entry(info: &'static $crate::BootInfo) -> ! {
            let entry: fn(&'static $crate::BootInfo) -> ! = $path;
            entry(info)
        }

        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        static NK_OUTER_BOOT_STACK: $crate::BootStack = $crate::BootStack::new();

        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        static NK_IST_STACKS: $crate::IstStacks = $crate::IstStacks::new();
    };
}
