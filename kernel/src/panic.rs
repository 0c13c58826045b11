//! The outer kernel's panic: print where, then stop the machine with a
//! failure status so a test run notices. The image's `#[panic_handler]` is
//! the NK's, which calls this for every panic outside the NK.

use crate::{arch, console, println};

pub fn panic(info: &core::panic::PanicInfo) -> ! {
    arch::disable_interrupts();
    // A panic while printing must still reach the serial port.
    console::force_unlock();
    crate::ktest::report_panic();
    match info.location() {
        Some(loc) => println!("KERNEL PANIC at {}:{}:{}: {}", loc.file(), loc.line(), loc.column(), info.message()),
        None => println!("KERNEL PANIC: {}", info.message()),
    }
    arch::exit_qemu(arch::ExitCode::Failure)
}
