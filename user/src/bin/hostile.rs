//! A hostile unprivileged program: tries, one after another, each way a
//! user once had to crash this kernel or switch its protections off, and
//! prints `hostile: NAME: ...` with what the kernel answered. The kernel
//! must answer each with an errno or by killing only the offender, and
//! keep running (the `hostile` QEMU scenario checks it did). Ends with
//! `hostile: done`.
#![allow(unsafe_code)] // raw system calls are the attack surface

#[path = "utest/crafted.rs"]
mod crafted;

use std::ffi::CString;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn name(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

fn report(what: &str, how: impl std::fmt::Display) {
    println!("hostile: {what}: {how}");
}

/// Forks; the child runs `f` and exits with what it returns.
fn fork(f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: single-threaded; the child leaves by `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = f();
        // SAFETY: ends the child.
        unsafe { libc::_exit(code) };
    }
    pid
}

fn wait(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    // SAFETY: a valid status pointer.
    while unsafe { libc::waitpid(pid, &mut status, 0) } == -1 && errno() == libc::EINTR {}
    status
}

fn describe(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        let code = libc::WEXITSTATUS(status);
        if code >= 100 { format!("execve refused: {}", name(code - 100)) } else { format!("exited {code}") }
    } else {
        format!("killed by signal {}", libc::WTERMSIG(status))
    }
}

/// Executes `bytes` as a program in a child; what became of it.
fn exec_bytes(bytes: &[u8]) -> String {
    let path = CString::new("/tmp/hostile-elf").unwrap_or_default();
    // SAFETY: a valid path; the file is written and closed before use.
    unsafe {
        libc::unlink(path.as_ptr());
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o755);
        if fd < 0 || libc::write(fd, bytes.as_ptr().cast(), bytes.len()) != bytes.len() as isize {
            return format!("cannot write the file: {}", name(errno()));
        }
        libc::close(fd);
    }
    let pid = fork(|| {
        let argv = [path.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        // SAFETY: NULL-terminated argv and envp.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        100 + errno()
    });
    describe(wait(pid))
}

fn crafted_elfs() {
    for (what, bytes, _) in crafted::hostile_files() {
        report(&format!("elf {what}"), exec_bytes(&bytes));
    }
    let mut rng = crafted::Rng(0x4057_11e5_eed0_0001);
    let mut verdicts = std::collections::BTreeMap::new();
    for _ in 0..100 {
        *verdicts.entry(exec_bytes(&crafted::mutated(&mut rng))).or_insert(0) += 1;
    }
    report("elf mutations (100, seed 0x405711e5eed00001)", format!("{verdicts:?}"));
}

fn pipe_flood() {
    let mut fds_held = Vec::new();
    let chunk = [0u8; 4096];
    let mut bytes = 0usize;
    let mut stop = String::from("none in 600 pipes");
    for i in 0..600 {
        let mut fds = [-1; 2];
        // SAFETY: room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) } == -1 {
            stop = format!("pipe {i}: {}", name(errno()));
            break;
        }
        // SAFETY: a valid buffer; non-blocking, so it ends at a full pipe.
        while unsafe { libc::write(fds[1], chunk.as_ptr().cast(), chunk.len()) } > 0 {
            bytes += chunk.len();
        }
        fds_held.push(fds);
    }
    report("pipe flood", format!("stopped at {stop}, {} KiB held", bytes >> 10));
    for [r, w] in fds_held {
        // SAFETY: descriptors this program opened.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
    }
}

fn ksh(line: &str) -> String {
    // SAFETY: the kernel only reads `line.len()` bytes.
    let r = unsafe { libc::syscall(1000, line.as_ptr(), line.len()) };
    if r == 0 { "ran".into() } else { format!("refused: {}", name(errno())) }
}

/// Opens files in 6 processes at once, 1000 each: past the system's
/// limit on open descriptions, ENFILE.
fn open_flood() {
    let mut hold = [-1; 2];
    let mut results = [-1; 2];
    // SAFETY: room for two descriptors each.
    unsafe {
        libc::pipe(hold.as_mut_ptr());
        libc::pipe(results.as_mut_ptr());
    }
    let mut kids = Vec::new();
    for _ in 0..6 {
        kids.push(fork(|| {
            let path = CString::new("/bin/hello").unwrap_or_default();
            let mut n = 0u32;
            let mut e = 0;
            while n < 1000 {
                // SAFETY: a valid path.
                if unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) } < 0 {
                    e = errno();
                    break;
                }
                n += 1;
            }
            let line = format!("{n} opened, then {}\n", if e == 0 { "stopped".into() } else { name(e) });
            let mut b = [0u8; 1];
            // SAFETY: valid descriptors and buffers.
            unsafe {
                libc::close(hold[1]);
                libc::write(results[1], line.as_ptr().cast(), line.len());
                libc::read(hold[0], b.as_mut_ptr().cast(), 1);
            }
            0
        }));
    }
    // SAFETY: descriptors this program opened.
    unsafe {
        libc::close(results[1]);
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while out.iter().filter(|&&b| b == b'\n').count() < kids.len() {
        // SAFETY: a valid buffer.
        let n = unsafe { libc::read(results[0], buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    // SAFETY: descriptors this program opened; the children see EOF and go.
    unsafe {
        libc::close(hold[1]);
        libc::close(hold[0]);
        libc::close(results[0]);
    }
    kids.into_iter().for_each(|k| {
        wait(k);
    });
    report("open flood (6 x 1000)", String::from_utf8_lossy(&out).trim().replace('\n', "; "));
}

fn mmap_flood() {
    // Room for every address up front: once the kernel says ENOMEM, this
    // program's own allocator cannot get memory either.
    let mut maps: Vec<usize> = Vec::with_capacity(100_000);
    let e = loop {
        // SAFETY: a fresh anonymous mapping; never touched.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        if p == libc::MAP_FAILED {
            break errno();
        }
        maps.push(p as usize);
        if maps.len() == maps.capacity() {
            break 0;
        }
    };
    let n = maps.len();
    for p in maps {
        // SAFETY: a mapping this loop made.
        unsafe { libc::munmap(p as *mut libc::c_void, 4096) };
    }
    report("mmap flood", format!("{n} regions, then {}", if e == 0 { "stopped".into() } else { name(e) }));
}

fn fork_bomb() {
    let mut hold = [-1; 2];
    // SAFETY: room for two descriptors.
    unsafe { libc::pipe(hold.as_mut_ptr()) };
    let mut kids = Vec::new();
    let e = loop {
        let pid = fork(|| {
            let mut b = [0u8; 1];
            // SAFETY: valid descriptors.
            unsafe {
                libc::close(hold[1]);
                libc::read(hold[0], b.as_mut_ptr().cast(), 1);
            }
            0
        });
        if pid < 0 {
            break errno();
        }
        kids.push(pid);
        if kids.len() == 1000 {
            break 0;
        }
    };
    // SAFETY: descriptors this program opened.
    unsafe {
        libc::close(hold[1]);
        libc::close(hold[0]);
    }
    let n = kids.len();
    kids.into_iter().for_each(|k| {
        wait(k);
    });
    report("fork bomb", format!("{n} children, then {}", if e == 0 { "stopped".into() } else { name(e) }));
}

/// Fills 60% of free RAM, forks a sleeping bystander sharing it, then
/// writes every page (copy-on-write): the writer runs out of memory.
fn cow_oom() {
    let size = (free_ram() / 10 * 6) & !4095;
    let mut hold = [-1; 2];
    // SAFETY: room for two descriptors.
    unsafe { libc::pipe(hold.as_mut_ptr()) };
    let writer = fork(|| {
        let p = touch_new(size);
        fork(|| {
            let mut b = [0u8; 1];
            // SAFETY: valid descriptors; the read blocks until the parent goes.
            unsafe {
                libc::close(hold[1]);
                libc::read(hold[0], b.as_mut_ptr().cast(), 1);
            }
            0
        });
        // SAFETY: the `size` bytes `touch_new` mapped writable at `p`.
        unsafe { write_pages(p, size, 2) };
        3
    });
    // SAFETY: descriptors this program opened; the bystander sees EOF
    // once the writer is gone too.
    unsafe {
        libc::close(hold[0]);
        libc::close(hold[1]);
    }
    report(&format!("copy-on-write OOM ({} MiB twice)", size >> 20), describe(wait(writer)));
}

/// Free RAM now, by `sysinfo`.
fn free_ram() -> usize {
    // SAFETY: a zeroed sysinfo is valid; `si` is writable.
    unsafe {
        let mut si: libc::sysinfo = std::mem::zeroed();
        libc::sysinfo(&mut si);
        si.freeram as usize * si.mem_unit as usize
    }
}

/// Writes one byte to every page of a fresh private mapping of `size`
/// bytes, which stays; its address. Exits 4 if there is none.
fn touch_new(size: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping; exits if it failed.
    let p = unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            libc::_exit(4);
        }
        p.cast::<u8>()
    };
    // SAFETY: the mapping just made, `size` bytes, writable.
    unsafe { write_pages(p, size, 1) };
    p
}

/// Writes `byte` to the first byte of every page of `[p, p + size)`.
///
/// # Safety
/// `p` must start `size` writable bytes this program owns.
unsafe fn write_pages(p: *mut u8, size: usize, byte: u8) {
    for off in (0..size).step_by(4096) {
        // SAFETY: `off < size`, inside the range the caller vouches for.
        unsafe { p.add(off).write_volatile(byte) };
    }
}

/// A large process holds 60% of free RAM and sleeps; a smaller one then
/// asks for 80%. The sleeper is the one to kill (it gives back the most),
/// not the smaller process whose fault found memory short: that one
/// finishes.
fn oom_largest() {
    // The copy-on-write case's bystander exits in its own time: wait until
    // its memory is back before measuring.
    let mut free = free_ram();
    for _ in 0..50 {
        // SAFETY: plain sleep.
        unsafe { libc::usleep(100_000) };
        let now = free_ram();
        if now.abs_diff(free) < 1 << 20 {
            break;
        }
        free = now;
    }
    let (large, small) = ((free / 100 * 60) & !4095, (free / 100 * 80) & !4095);
    let (mut ready, mut hold) = ([-1; 2], [-1; 2]);
    // SAFETY: room for two descriptors each.
    unsafe {
        libc::pipe(ready.as_mut_ptr());
        libc::pipe(hold.as_mut_ptr());
    }
    let sleeper = fork(|| {
        let _ = touch_new(large);
        let mut b = [0u8; 1];
        // SAFETY: valid descriptors; the read blocks until the parent goes.
        unsafe {
            libc::close(hold[1]);
            libc::write(ready[1], b.as_ptr().cast(), 1);
            libc::read(hold[0], b.as_mut_ptr().cast(), 1);
        }
        0
    });
    let mut b = [0u8; 1];
    // SAFETY: valid descriptors; the sleeper writes once it holds its share.
    unsafe {
        libc::close(ready[1]);
        libc::read(ready[0], b.as_mut_ptr().cast(), 1);
        libc::close(ready[0]);
    }
    let grower = fork(|| {
        touch_new(small);
        3
    });
    let grown = describe(wait(grower));
    // SAFETY: descriptors this program opened; a live sleeper sees EOF.
    unsafe {
        libc::close(hold[0]);
        libc::close(hold[1]);
    }
    let slept = describe(wait(sleeper));
    report(
        &format!("OOM choice ({} MiB asleep, {} MiB growing)", large >> 20, small >> 20),
        format!("sleeper {slept}, grower {grown}"),
    );
}

fn main() {
    // SAFETY: a valid path; EEXIST is fine.
    unsafe { libc::mkdir(c"/tmp".as_ptr(), 0o777) };
    crafted_elfs();
    pipe_flood();
    for line in ["audit off", "attack all", "poweroff", "run /bin/sh"] {
        report(&format!("ksh {line:?}"), ksh(line));
    }
    open_flood();
    mmap_flood();
    fork_bomb();
    cow_oom();
    oom_largest();
    println!("hostile: done");
}
