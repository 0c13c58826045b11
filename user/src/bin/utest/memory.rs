//! Process memory: brk, anonymous and file mappings (MAP_PRIVATE,
//! MAP_SHARED, past the end of the file), mprotect, munmap, MAP_FIXED,
//! copy-on-write after fork, W^X, and mmap's error paths.

use crate::support::*;
use std::hint::black_box;
use std::os::fd::AsRawFd;

pub const TESTS: &[Test] = tests![
    brk_grows_the_heap,
    brk_near_the_top_is_refused,
    unmapped_address_space_is_used_again,
    anonymous_mmap_is_zeroed_and_writable,
    writable_and_executable_mmap_is_refused,
    mprotect_read_only_makes_a_write_fault,
    fork_is_copy_on_write_for_heap_stack_and_mmap,
    mmap_private_of_a_file_keeps_writes_private,
    mmap_shared_of_a_file_writes_back,
    mmap_shared_is_coherent_with_read_while_mapped,
    mmap_shared_is_shared_with_a_forked_child,
    mmap_past_eof_is_zero_within_the_last_page,
    mmap_beyond_the_last_file_page_is_sigbus,
    munmap_then_access_is_sigsegv,
    map_fixed_replaces_at_the_address,
    mmap_refuses_bad_arguments,
    mmap_checks_the_descriptor_access_mode,
];

const PAGE: usize = 4096;

fn mmap(len: usize, prot: libc::c_int, flags: libc::c_int, fd: libc::c_int, off: i64) -> Result<*mut u8, String> {
    // SAFETY: a new mapping where the kernel chooses (callers pass
    // MAP_FIXED only over their own mappings).
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, off) };
    check(p != libc::MAP_FAILED, || {
        format!("mmap({len}, prot {prot}, flags {flags:#x}) failed: {}", errno_name(errno()))
    })?;
    Ok(p.cast())
}

fn anon(len: usize) -> Result<*mut u8, String> {
    mmap(len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
}

fn munmap(p: *mut u8, len: usize) -> TestResult {
    // SAFETY: a mapping this test made and no longer uses.
    equals("munmap", unsafe { libc::munmap(p.cast(), len) }.into(), 0)
}

/// A child that reads `p` with SIGSEGV and SIGBUS at their defaults: its
/// wait status says how the access ended.
fn touch_in_child(p: *const u8, write: bool) -> Result<libc::c_int, String> {
    in_child(|| {
        // The defaults, not Rust's runtime handlers.
        for sig in [libc::SIGSEGV, libc::SIGBUS] {
            if set_action(sig, libc::SIG_DFL, 0, &[]).is_err() {
                return 3;
            }
        }
        // SAFETY: not sound when the page is gone, on purpose: the kernel
        // must end this child with a signal.
        unsafe {
            if write {
                (p as *mut u8).write_volatile(1);
            } else {
                black_box(p.read_volatile());
            }
        }
        0
    })
}

/// The byte pattern the file tests write: offset i holds i mod 251.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn brk_grows_the_heap() -> TestResult {
    // SAFETY: brk(0) only reports the break; the second call asks for 64
    // KiB more, which this test then writes and reads.
    unsafe {
        let start = libc::syscall(libc::SYS_brk, 0) as u64;
        let end = libc::syscall(libc::SYS_brk, start + 65536) as u64;
        check(end == start + 65536, || format!("brk from {start:#x} to {end:#x}"))?;
        let p = (start + 65000) as *mut u8;
        p.write_volatile(0x5a);
        check(p.read_volatile() == 0x5a, || "new heap memory did not keep a byte".into())
    }
}

/// A break that rounds up past 2^64 is refused and the heap stays (the
/// kernel once rounded it to 0 and unmapped the program: `fuzz --seed 1`).
fn brk_near_the_top_is_refused() -> TestResult {
    // SAFETY: brk(0) only reports the break; the huge one must be refused.
    unsafe {
        let start = libc::syscall(libc::SYS_brk, 0) as u64;
        let after = libc::syscall(libc::SYS_brk, u64::MAX) as u64;
        check(after == start, || format!("brk(u64::MAX) moved the break from {start:#x} to {after:#x}"))?;
        let again = libc::syscall(libc::SYS_brk, 0) as u64;
        check(again == start, || format!("the break is {again:#x}, was {start:#x}"))
    }
}

/// 300 mappings of 1 TiB, each unmapped at once, exceed the user half
/// (128 TiB) taken together: the space must be handed out again.
fn unmapped_address_space_is_used_again() -> TestResult {
    let len = 1usize << 40;
    for i in 0..300 {
        // SAFETY: an anonymous mapping, never touched, unmapped at once.
        unsafe {
            let p =
                libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
            check(p != libc::MAP_FAILED, || format!("mapping {i} of 1 TiB failed: {}", errno_name(errno())))?;
            libc::munmap(p, len);
        }
    }
    Ok(())
}

fn anonymous_mmap_is_zeroed_and_writable() -> TestResult {
    let len = 3 * 4096;
    // SAFETY: an anonymous private mapping, used only within its length
    // and unmapped at the end.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        check(p != libc::MAP_FAILED, || format!("mmap failed, errno {}", errno()))?;
        let bytes = std::slice::from_raw_parts_mut(p.cast::<u8>(), len);
        check(bytes.iter().all(|&b| b == 0), || "fresh anonymous memory is not zero".into())?;
        bytes[len - 1] = 7;
        check(libc::munmap(p, len) == 0, || format!("munmap failed, errno {}", errno()))
    }
}

/// Our kernel's rule (Linux grants such a mapping): no page is both.
fn writable_and_executable_mmap_is_refused() -> TestResult {
    if !on_our_kernel() {
        return skip("W^X is this kernel's rule, not Linux's");
    }
    // SAFETY: asks for a mapping the kernel must refuse (W^X); nothing is used.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    check(p == libc::MAP_FAILED, || "a writable and executable mapping was granted".into())
}

fn mprotect_read_only_makes_a_write_fault() -> TestResult {
    let p = anon(2 * PAGE)?;
    // SAFETY: `p` is this test's two-page mapping.
    unsafe {
        p.write_volatile(7);
        equals("mprotect PROT_READ", libc::mprotect(p.cast(), PAGE, libc::PROT_READ).into(), 0)?;
        check(p.read_volatile() == 7, || "a read-only page lost its byte".into())?;
        killed_by(touch_in_child(p, true)?, libc::SIGSEGV)
            .map_err(|e| format!("a write to the read-only page: {e}"))?;
        // The second page kept its protection.
        exited(touch_in_child(p.add(PAGE), true)?, 0).map_err(|e| format!("a write to the writable page: {e}"))?;
        equals(
            "mprotect PROT_READ|PROT_WRITE",
            libc::mprotect(p.cast(), PAGE, libc::PROT_READ | libc::PROT_WRITE).into(),
            0,
        )?;
        p.write_volatile(8);
        check(p.read_volatile() == 8, || "the page is not writable again".into())?;
        // Raw: musl's mprotect rounds the address down to a page.
        let r = libc::syscall(libc::SYS_mprotect, p.add(1), PAGE, libc::PROT_READ);
        fails_with("mprotect of an unaligned address", r, libc::EINVAL)?;
    }
    munmap(p, 2 * PAGE)
}

fn fork_is_copy_on_write_for_heap_stack_and_mmap() -> TestResult {
    const BEFORE: u64 = 1;
    const CHILD: u64 = 2;
    const PARENT: u64 = 3;
    let mut heap = Box::new([BEFORE; 512]);
    let mut stack = black_box([BEFORE; 512]);
    let map = anon(PAGE)?.cast::<u64>();
    // SAFETY: `map` is this test's page, 512 u64s long.
    let in_map = unsafe { map.add(100) };
    // SAFETY: as above.
    unsafe { in_map.write_volatile(BEFORE) };
    let cells: [*mut u64; 3] = [&mut heap[100], &mut stack[100], in_map];
    // SAFETY: each cell points into memory this test owns and keeps alive
    // across the fork; volatile so every access reaches memory.
    let read = |i: usize| unsafe { cells[i].read_volatile() };
    // SAFETY: as above.
    let write = |v: u64| cells.iter().for_each(|&c| unsafe { c.write_volatile(v) });
    let (go_r, go_w) = pipe2(0)?;
    let (done_r, done_w) = pipe2(0)?;
    let (go_rfd, done_wfd) = (go_r.as_raw_fd(), done_w.as_raw_fd());
    let child = fork_child(|| {
        if (0..3).any(|i| read(i) != BEFORE) {
            return 2;
        }
        write(CHILD);
        if write_all(done_wfd, b"w").is_err() {
            return 3;
        }
        // The parent has written its own values by the time this arrives.
        if read_up_to(go_rfd, 1).map(|b| b.len()) != Ok(1) {
            return 4;
        }
        if (0..3).any(|i| read(i) != CHILD) { 5 } else { 0 }
    })?;
    check(read_up_to(done_r.as_raw_fd(), 1)?.len() == 1, || "the child never wrote".into())?;
    let seen: Vec<u64> = (0..3).map(read).collect();
    check(seen == [BEFORE; 3], || format!("after the child's writes the parent sees (heap, stack, mmap) {seen:?}"))?;
    write(PARENT);
    write_all(go_w.as_raw_fd(), b"g")?;
    let status = wait_for(child)?;
    let why = match libc::WEXITSTATUS(status) {
        2 => "the child did not see the values from before the fork",
        5 => "the parent's writes reached the child",
        _ => "",
    };
    check(why.is_empty(), || why.into())?;
    exited(status, 0)?;
    let seen: Vec<u64> = (0..3).map(read).collect();
    check(seen == [PARENT; 3], || format!("the parent's own writes read back as {seen:?}"))?;
    munmap(map.cast(), PAGE)
}

fn mmap_private_of_a_file_keeps_writes_private() -> TestResult {
    let data = pattern(2 * PAGE);
    let (path, f) = fresh_file("mmap-private", &data)?;
    let p = mmap(2 * PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE, f.as_raw_fd(), 0)?;
    // SAFETY: `p` maps 2 pages of the file.
    let mapped = unsafe { std::slice::from_raw_parts_mut(p, 2 * PAGE) };
    check(mapped == &data[..], || "the mapping does not hold the file's bytes".into())?;
    mapped[100] = 0xee;
    mapped[PAGE + 1] = 0xee;
    check(mapped[100] == 0xee, || "a write to the private mapping did not stick".into())?;
    munmap(p, 2 * PAGE)?;
    let back = std::fs::read(&path).map_err(|e| e.to_string())?;
    check(back == data, || "a write to a MAP_PRIVATE mapping reached the file".into())?;
    // An offset maps from there.
    let q = mmap(PAGE, libc::PROT_READ, libc::MAP_PRIVATE, f.as_raw_fd(), PAGE as i64)?;
    // SAFETY: `q` maps one page.
    let first = unsafe { q.read_volatile() };
    check(first == data[PAGE], || format!("the page at offset 4096 starts {first}, wanted {}", data[PAGE]))?;
    munmap(q, PAGE)
}

fn mmap_shared_of_a_file_writes_back() -> TestResult {
    let data = pattern(2 * PAGE);
    let (path, f) = fresh_file("mmap-shared", &data)?;
    let p = mmap(2 * PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, f.as_raw_fd(), 0)?;
    // SAFETY: `p` maps 2 pages of the file.
    unsafe {
        p.add(10).write_volatile(0xaa);
        p.add(PAGE + 20).write_volatile(0xbb);
    }
    munmap(p, 2 * PAGE)?;
    let back = std::fs::read(&path).map_err(|e| e.to_string())?;
    check(back.len() == 2 * PAGE, || format!("the file is {} bytes now", back.len()))?;
    check(back[10] == 0xaa && back[PAGE + 20] == 0xbb, || {
        "writes to a MAP_SHARED mapping did not reach the file".into()
    })?;
    check(back[11] == data[11] && back[PAGE] == data[PAGE], || "bytes the mapping did not write changed".into())
}

/// Linux has one copy of a file page: read() sees a shared mapping's
/// writes at once, and the mapping sees write()s, without munmap or msync.
fn mmap_shared_is_coherent_with_read_while_mapped() -> TestResult {
    let (_, f) = fresh_file("mmap-coherent", &pattern(PAGE))?;
    let fd = f.as_raw_fd();
    let p = mmap(PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)?;
    let mut b = [0u8; 1];
    // SAFETY: `p` maps one page; `b` is a one-byte buffer.
    unsafe {
        p.add(5).write_volatile(0xcc);
        equals("pread", libc::pread(fd, b.as_mut_ptr().cast(), 1, 5) as i64, 1)?;
        check(b[0] == 0xcc, || format!("read() sees {:#x}, the mapping wrote 0xcc", b[0]))?;
        equals("pwrite", libc::pwrite(fd, [0xddu8].as_ptr().cast(), 1, 6) as i64, 1)?;
        let v = p.add(6).read_volatile();
        check(v == 0xdd, || format!("the mapping sees {v:#x}, write() wrote 0xdd"))?;
    }
    munmap(p, PAGE)
}

fn mmap_shared_is_shared_with_a_forked_child() -> TestResult {
    let (_, f) = fresh_file("mmap-fork", &[0u8; PAGE])?;
    let p = mmap(PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, f.as_raw_fd(), 0)?;
    let (go_r, go_w) = pipe2(0)?;
    let (done_r, done_w) = pipe2(0)?;
    let (go_rfd, done_wfd) = (go_r.as_raw_fd(), done_w.as_raw_fd());
    let child = fork_child(|| {
        if read_up_to(go_rfd, 1).map(|b| b.len()) != Ok(1) {
            return 2;
        }
        // SAFETY: the shared page, inherited from the parent.
        let seen = unsafe { p.read_volatile() };
        // SAFETY: as above.
        unsafe { p.add(1).write_volatile(0x22) };
        let _ = write_all(done_wfd, b"d");
        if seen == 0x11 { 0 } else { 5 }
    })?;
    // SAFETY: the shared page.
    unsafe { p.write_volatile(0x11) };
    write_all(go_w.as_raw_fd(), b"g")?;
    check(read_up_to(done_r.as_raw_fd(), 1)?.len() == 1, || "the child never answered".into())?;
    let status = wait_for(child)?;
    check(libc::WEXITSTATUS(status) != 5, || "the parent's write after fork did not reach the child".into())?;
    exited(status, 0)?;
    // SAFETY: the shared page.
    let back = unsafe { p.add(1).read_volatile() };
    check(back == 0x22, || format!("the child's write reads {back:#x} in the parent, wanted 0x22"))?;
    munmap(p, PAGE)
}

fn mmap_past_eof_is_zero_within_the_last_page() -> TestResult {
    let (path, f) = fresh_file("mmap-eof", &[0xab; 100])?;
    for flags in [libc::MAP_PRIVATE, libc::MAP_SHARED] {
        let p = mmap(PAGE, libc::PROT_READ | libc::PROT_WRITE, flags, f.as_raw_fd(), 0)?;
        // SAFETY: `p` maps one page.
        let page = unsafe { std::slice::from_raw_parts_mut(p, PAGE) };
        check(page[..100].iter().all(|&b| b == 0xab), || "the file's 100 bytes are not in the mapping".into())?;
        let nonzero = page[100..].iter().position(|&b| b != 0);
        check(nonzero.is_none(), || {
            format!("byte {} past the end of the file is not zero", nonzero.unwrap_or(0) + 100)
        })?;
        // A write past the end stays in memory: the file does not grow.
        page[200] = 1;
        munmap(p, PAGE)?;
    }
    let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    check(len == 100, || format!("the file grew to {len} bytes through a mapping"))
}

fn mmap_beyond_the_last_file_page_is_sigbus() -> TestResult {
    let (_, f) = fresh_file("mmap-sigbus", &[0xab; 100])?;
    let p = mmap(2 * PAGE, libc::PROT_READ, libc::MAP_PRIVATE, f.as_raw_fd(), 0)?;
    exited(touch_in_child(p, false)?, 0).map_err(|e| format!("a read of the file's page: {e}"))?;
    // SAFETY: the second page of the mapping, past the file's last page.
    let beyond = unsafe { p.add(PAGE) };
    killed_by(touch_in_child(beyond, false)?, libc::SIGBUS)
        .map_err(|e| format!("a read past the file's last page: {e}"))?;
    munmap(p, 2 * PAGE)
}

fn munmap_then_access_is_sigsegv() -> TestResult {
    let p = anon(2 * PAGE)?;
    // SAFETY: this test's mapping, both pages.
    unsafe {
        p.write_volatile(1);
        p.add(PAGE).write_volatile(2);
    }
    munmap(p, PAGE)?;
    killed_by(touch_in_child(p, false)?, libc::SIGSEGV).map_err(|e| format!("a read of the unmapped page: {e}"))?;
    // SAFETY: the second page is still mapped.
    let kept = unsafe { p.add(PAGE).read_volatile() };
    check(kept == 2, || "unmapping the first page lost the second".into())?;
    // SAFETY: each call must fail and unmap nothing.
    unsafe {
        fails_with("munmap of an unaligned address", libc::munmap(p.add(PAGE + 1).cast(), PAGE).into(), libc::EINVAL)?;
        fails_with("munmap of length 0", libc::munmap(p.add(PAGE).cast(), 0).into(), libc::EINVAL)?;
    }
    // SAFETY: the second page of this test's mapping.
    munmap(unsafe { p.add(PAGE) }, PAGE)?;
    // Unmapping what is not mapped is no error.
    munmap(p, 2 * PAGE)
}

fn map_fixed_replaces_at_the_address() -> TestResult {
    let p = anon(3 * PAGE)?;
    // SAFETY: this test's three pages; the MAP_FIXED call replaces the
    // middle one, which nothing else refers to.
    unsafe {
        std::ptr::write_bytes(p, 0x55, 3 * PAGE);
        let mid = p.add(PAGE);
        let q = libc::mmap(
            mid.cast(),
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        );
        check(q == mid.cast(), || format!("MAP_FIXED at {mid:?} returned {q:?} ({})", errno_name(errno())))?;
        check(mid.read_volatile() == 0 && mid.add(PAGE - 1).read_volatile() == 0, || {
            "the new page is not zero".into()
        })?;
        check(p.read_volatile() == 0x55 && p.add(2 * PAGE).read_volatile() == 0x55, || {
            "the pages around it changed".into()
        })?;
        mid.write_volatile(9);
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
        let bad = libc::syscall(libc::SYS_mmap, p.add(1), PAGE, libc::PROT_READ, flags, -1, 0);
        fails_with("MAP_FIXED at an unaligned address", bad, libc::EINVAL)?;
    }
    munmap(p, 3 * PAGE)
}

/// The raw mmap (musl refuses some bad arguments itself, before the
/// kernel sees them): -1 and errno when it failed.
fn mmap_result(len: usize, prot: libc::c_int, flags: libc::c_int, fd: libc::c_int, off: i64) -> i64 {
    // SAFETY: every call here is meant to fail; one that succeeds maps
    // memory nothing uses (and the test fails).
    unsafe { libc::syscall(libc::SYS_mmap, 0usize, len, prot, flags, fd, off) }
}

fn mmap_refuses_bad_arguments() -> TestResult {
    let (_, f) = fresh_file("mmap-errors", &pattern(PAGE))?;
    let dir = open("/tmp/utest", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let (rw, private, anon) =
        (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS);
    fails_with("mmap of an unused fd", mmap_result(PAGE, rw, private, UNUSED_FD, 0), libc::EBADF)?;
    fails_with("mmap of fd -1 without MAP_ANONYMOUS", mmap_result(PAGE, rw, private, -1, 0), libc::EBADF)?;
    fails_with("mmap of a directory", mmap_result(PAGE, libc::PROT_READ, private, dir.as_raw_fd(), 0), libc::ENODEV)?;
    fails_with("mmap of length 0 (anonymous)", mmap_result(0, rw, anon, -1, 0), libc::EINVAL)?;
    fails_with("mmap of length 0 (file)", mmap_result(0, rw, private, f.as_raw_fd(), 0), libc::EINVAL)?;
    fails_with("mmap neither private nor shared", mmap_result(PAGE, rw, libc::MAP_ANONYMOUS, -1, 0), libc::EINVAL)?;
    fails_with(
        "mmap at an unaligned offset",
        mmap_result(PAGE, libc::PROT_READ, private, f.as_raw_fd(), 100),
        libc::EINVAL,
    )
}

fn mmap_checks_the_descriptor_access_mode() -> TestResult {
    let (path, _) = fresh_file("mmap-access", &pattern(PAGE))?;
    let ro = open(&path, libc::O_RDONLY, 0)?;
    let wo = open(&path, libc::O_WRONLY, 0)?;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    fails_with(
        "a writable shared map of a read-only fd",
        mmap_result(PAGE, rw, libc::MAP_SHARED, ro.as_raw_fd(), 0),
        libc::EACCES,
    )?;
    fails_with(
        "a map of a write-only fd",
        mmap_result(PAGE, libc::PROT_READ, libc::MAP_SHARED, wo.as_raw_fd(), 0),
        libc::EACCES,
    )?;
    // A private copy may be written even though the file may not.
    let p = mmap(PAGE, rw, libc::MAP_PRIVATE, ro.as_raw_fd(), 0)?;
    // SAFETY: `p` maps one page, privately.
    unsafe { p.write_volatile(1) };
    munmap(p, PAGE)
}
