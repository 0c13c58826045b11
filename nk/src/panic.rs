//! The image's panic handler, in NK text because NK code can panic (a
//! bounds check, an `expect`) while protection is lifted, and no outer code
//! may run then. Inside the NK a panic stops the machine with its location;
//! outside, it is the outer kernel's panic, handed to the function the
//! outer kernel names in [`crate::entry_point!`].

use core::panic::PanicInfo;

unsafe extern "Rust" {
    /// Defined by the outer kernel through [`crate::entry_point!`].
    fn nk_outer_panic(info: &PanicInfo) -> !;
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let inside = cfg!(not(feature = "native")) && crate::cpu::read_cr0() & crate::cpu::cr0::WP == 0;
    if inside {
        let (line, column) = info.location().map_or((0, 0), |l| (l.line(), l.column()));
        if let Some(l) = info.location() {
            crate::console::write_str("\nnk: panic at ");
            crate::console::write_str(l.file());
        }
        crate::sites::fail_stop(c"panic inside the nested kernel (line, column):", line.into(), column.into(), 0)
    }
    // SAFETY: the outer kernel's panic function, which never returns; it
    // runs with protection on, as any outer code.
    unsafe { nk_outer_panic(info) }
}
