//! Pure building blocks of the outer kernel: no hardware, no `unsafe`, so
//! each runs under `cargo test` on the host exactly as it runs in the kernel.
#![no_std]
#![forbid(unsafe_code)]

// The RAM file system (its tree lives on the heap) and the cpio writer
// (host side: xtask packs the initrd with it).
extern crate alloc;

pub mod bitmap;
pub mod civil;
pub mod cmdline;
pub mod cpio;
pub mod elf;
pub mod ldisc;
pub mod line;
pub mod linux_nr;
pub mod memmap;
pub mod module;
pub mod path;
pub mod ramfs;
pub mod user_ksh;
