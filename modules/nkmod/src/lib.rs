//! The interface between a loadable module and the outer kernel, version
//! 1: the functions the kernel exports by name, safe wrappers over them,
//! the `module!` macro that names a module and its entry points, and the
//! panic handler every module links. A module that needs a symbol the
//! kernel does not export, or says another interface version, is refused
//! at load time (docs/modules.md).
#![no_std]

use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

/// The interface version this crate builds against; the loader refuses a
/// module whose `.modinfo` says another.
pub const INTERFACE: u32 = 1;

/// A character device's operations. The kernel moves the bytes between
/// user memory and a kernel buffer: `buf` is always kernel memory, at most
/// 4096 bytes. Each returns the bytes it took or gave, or `-errno`.
#[repr(C)]
pub struct CharDevOps {
    pub read: extern "C" fn(buf: *mut u8, len: usize) -> isize,
    pub write: extern "C" fn(buf: *const u8, len: usize) -> isize,
}

/// What a module's `/proc` entry shows: it writes into `buf` (kernel
/// memory, `cap` bytes) and returns how many it wrote.
pub type ProcShow = extern "C" fn(buf: *mut u8, cap: usize) -> usize;

/// The exports, version 1. The loader resolves these names against the
/// kernel's export table.
mod sys {
    use super::{CharDevOps, ProcShow};
    unsafe extern "C" {
        pub fn nkmod_print(text: *const u8, len: usize);
        pub fn nkmod_alloc(size: usize, align: usize) -> *mut u8;
        pub fn nkmod_free(ptr: *mut u8, size: usize, align: usize);
        pub fn nkmod_chrdev_register(name: *const u8, len: usize, ops: *const CharDevOps) -> i32;
        pub fn nkmod_chrdev_unregister(name: *const u8, len: usize) -> i32;
        pub fn nkmod_proc_register(name: *const u8, len: usize, show: ProcShow) -> i32;
        pub fn nkmod_proc_unregister(name: *const u8, len: usize) -> i32;
        pub fn nkmod_timer_start(period_ms: u64, tick: extern "C" fn()) -> i32;
        pub fn nkmod_timer_stop(id: i32) -> i32;
        pub fn nkmod_ticks() -> u64;
        pub fn nkmod_panic(text: *const u8, len: usize) -> !;
    }
}

/// A failure the kernel reported, as a positive errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

fn check(r: i32) -> Result<i32, Errno> {
    if r < 0 { Err(Errno(-r)) } else { Ok(r) }
}

/// Writes `text` to the kernel console.
pub fn print_str(text: &str) {
    // SAFETY: the kernel reads `len` bytes at `text` and keeps nothing.
    unsafe { sys::nkmod_print(text.as_ptr(), text.len()) }
}

/// `core::fmt` onto the console, for `println!`.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        print_str(s);
        Ok(())
    }
}

#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::Console, $($arg)*);
    }};
}

/// Memory from the kernel heap; null when there is none.
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    // SAFETY: the kernel checks the layout and returns null if refused.
    unsafe { sys::nkmod_alloc(size, align) }
}

/// # Safety
/// `ptr` must come from `alloc(size, align)` and not be freed yet.
pub unsafe fn free(ptr: *mut u8, size: usize, align: usize) {
    // SAFETY: the caller upholds the contract.
    unsafe { sys::nkmod_free(ptr, size, align) }
}

/// Registers `/dev/NAME`. The kernel keeps the pointer: `ops` must live as
/// long as the module (a `static`), and the device is unregistered at the
/// latest when the module unloads.
pub fn register_chrdev(name: &str, ops: &'static CharDevOps) -> Result<(), Errno> {
    // SAFETY: the kernel copies the name and keeps `ops`, which is static.
    check(unsafe { sys::nkmod_chrdev_register(name.as_ptr(), name.len(), ops) }).map(|_| ())
}

pub fn unregister_chrdev(name: &str) -> Result<(), Errno> {
    // SAFETY: the kernel only reads the name.
    check(unsafe { sys::nkmod_chrdev_unregister(name.as_ptr(), name.len()) }).map(|_| ())
}

/// Registers `/proc/NAME`, shown by `show` on each read.
pub fn register_proc(name: &str, show: ProcShow) -> Result<(), Errno> {
    // SAFETY: the kernel copies the name and keeps the function.
    check(unsafe { sys::nkmod_proc_register(name.as_ptr(), name.len(), show) }).map(|_| ())
}

pub fn unregister_proc(name: &str) -> Result<(), Errno> {
    // SAFETY: the kernel only reads the name.
    check(unsafe { sys::nkmod_proc_unregister(name.as_ptr(), name.len()) }).map(|_| ())
}

/// Calls `tick` every `period_ms` milliseconds (rounded up to the timer's
/// tick), from the timer interrupt, until `stop_timer` or unload.
pub fn start_timer(period_ms: u64, tick: extern "C" fn()) -> Result<i32, Errno> {
    // SAFETY: the kernel keeps the function, which lives in the module.
    check(unsafe { sys::nkmod_timer_start(period_ms, tick) })
}

pub fn stop_timer(id: i32) -> Result<(), Errno> {
    // SAFETY: no pointers.
    check(unsafe { sys::nkmod_timer_stop(id) }).map(|_| ())
}

/// Timer ticks since boot.
pub fn ticks() -> u64 {
    // SAFETY: no pointers.
    unsafe { sys::nkmod_ticks() }
}

/// A spin lock for a module's state. The kernel runs one CPU and calls a
/// module's timer from an interrupt, so state shared with a timer must not
/// be locked here; atomics serve there.
pub struct Lock<T> {
    held: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: `with` hands the value to one holder at a time.
unsafe impl<T: Send> Sync for Lock<T> {}

impl<T> Lock<T> {
    pub const fn new(value: T) -> Self {
        Self { held: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        while self.held.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            core::hint::spin_loop();
        }
        // SAFETY: the flag makes this the only reference until it is cleared.
        let r = f(unsafe { &mut *self.value.get() });
        self.held.store(false, Ordering::Release);
        r
    }
}

/// `.modinfo` bytes from a string, for `module!`.
pub const fn modinfo<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Names the module and its entry points: `init` returns `Ok` or an errno
/// (the load fails, nothing stays), `exit` runs at unload.
///
/// ```ignore
/// nkmod::module! { name: "hello", version: "1.0", license: "MIT", init: init, exit: exit }
/// ```
#[macro_export]
macro_rules! module {
    (name: $name:literal, version: $version:literal, license: $license:literal, init: $init:path, exit: $exit:path $(,)?) => {
        const __NKMOD_INFO: &str =
            concat!("name=", $name, "\0version=", $version, "\0license=", $license, "\0interface=1\0");
        #[used]
        #[unsafe(link_section = ".modinfo")]
        static __NKMOD_MODINFO: [u8; __NKMOD_INFO.len()] = $crate::modinfo(__NKMOD_INFO);

        #[unsafe(no_mangle)]
        pub extern "C" fn module_init() -> i32 {
            match $init() {
                Ok(()) => 0,
                Err($crate::Errno(e)) => -e,
            }
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn module_exit() {
            $exit()
        }
    };
}

struct Buf {
    bytes: [u8; 160],
    len: usize,
}

impl fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use fmt::Write as _;
    let mut buf = Buf { bytes: [0; 160], len: 0 };
    let _ = write!(buf, "{}", info.message());
    if let Some(at) = info.location() {
        let _ = write!(buf, " at {}:{}", at.file(), at.line());
    }
    // SAFETY: the kernel reads the bytes and does not return.
    unsafe { sys::nkmod_panic(buf.bytes.as_ptr(), buf.len) }
}
