//! The program `bench`'s fork+exec row runs: a static C-library program
//! that only exits, about as small as LMBench's `hello`, so the row
//! measures the kernel's exec and not the loading of a large image.
#![no_std]
#![no_main]
#![allow(unsafe_code)] // a C `main` and the C library's `_exit`

#[unsafe(no_mangle)]
extern "C" fn main() -> libc::c_int {
    // SAFETY: ends the process; nothing runs after it.
    unsafe { libc::_exit(0) }
}

// musl's static C library: its start-up code calls `main` above.
#[link(name = "c", kind = "static")]
unsafe extern "C" {}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: as in `main`.
    unsafe { libc::_exit(101) }
}
