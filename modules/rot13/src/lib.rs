//! `/dev/rot13`: a character device whose bytes, once written, read back
//! rot13-ed (letters turned 13 places, all else as it was), first in first
//! out, at most 4096 bytes waiting. Its buffer comes from the kernel heap,
//! so a load and unload that leak show up in the heap's count.
#![no_std]

use nkmod::{CharDevOps, Errno, Lock, println};

nkmod::module! { name: "rot13", version: "1.0", license: "MIT OR Apache-2.0", init: init, exit: exit }

const CAP: usize = 4096;
const ENOMEM: i32 = 12;
const ENOSPC: isize = 28;

/// The waiting bytes: a heap buffer of `CAP`, and how many are in it.
struct Fifo {
    buf: *mut u8,
    len: usize,
}

// SAFETY: the buffer is reached only under the lock.
unsafe impl Send for Fifo {}

static FIFO: Lock<Fifo> = Lock::new(Fifo { buf: core::ptr::null_mut(), len: 0 });

static OPS: CharDevOps = CharDevOps { read, write };

fn rot13(b: u8) -> u8 {
    match b {
        b'a'..=b'z' => (b - b'a' + 13) % 26 + b'a',
        b'A'..=b'Z' => (b - b'A' + 13) % 26 + b'A',
        _ => b,
    }
}

fn init() -> Result<(), Errno> {
    let buf = nkmod::alloc(CAP, 1);
    if buf.is_null() {
        return Err(Errno(ENOMEM));
    }
    FIFO.with(|f| *f = Fifo { buf, len: 0 });
    if let Err(e) = nkmod::register_chrdev("rot13", &OPS) {
        give_back();
        return Err(e);
    }
    println!("rot13: /dev/rot13 ready");
    Ok(())
}

fn exit() {
    let _ = nkmod::unregister_chrdev("rot13");
    give_back();
}

fn give_back() {
    let buf = FIFO.with(|f| core::mem::replace(f, Fifo { buf: core::ptr::null_mut(), len: 0 }).buf);
    // SAFETY: `buf` came from `alloc(CAP, 1)` in `init` and is freed once.
    unsafe { nkmod::free(buf, CAP, 1) }
}

extern "C" fn write(src: *const u8, len: usize) -> isize {
    FIFO.with(|f| {
        let n = len.min(CAP - f.len);
        if n == 0 && len > 0 {
            return -ENOSPC;
        }
        for i in 0..n {
            // SAFETY: the kernel passes `len` readable bytes at `src`, and
            // `f.buf` holds `CAP` bytes with `f.len + n <= CAP`.
            unsafe { *f.buf.add(f.len + i) = rot13(*src.add(i)) };
        }
        f.len += n;
        n as isize
    })
}

extern "C" fn read(dst: *mut u8, len: usize) -> isize {
    FIFO.with(|f| {
        let n = len.min(f.len);
        // SAFETY: `dst` has `len` writable bytes; the buffer holds `f.len`,
        // and the copy within it moves the rest to the front.
        unsafe {
            core::ptr::copy_nonoverlapping(f.buf, dst, n);
            core::ptr::copy(f.buf.add(n), f.buf, f.len - n);
        }
        f.len -= n;
        n as isize
    })
}
