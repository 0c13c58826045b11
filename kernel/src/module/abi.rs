//! The module interface, version 1 (`modules/nkmod`): the functions the
//! kernel exports to modules by name, the registrations they make
//! (character devices, `/proc` entries, timers), and the calls into module
//! code. The one place module code and the kernel meet through raw
//! pointers, so the one place here that needs `unsafe`.
//!
//! A module is outer-kernel code: the NK keeps it from changing mappings
//! or code, not from corrupting kernel data. These functions trust what a
//! module passes exactly as far as the interface says, bound every length,
//! and tie each registration to the module whose image holds its callback,
//! so that an unload removes whatever the module left.
#![allow(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use spin::Mutex;

const EINVAL: i32 = 22;
const EEXIST: i32 = 17;
const EBUSY: i32 = 16;
const ENOENT: i32 = 2;
const ENOSPC: i32 = 28;
const ENOMEM: i32 = 12;
/// A name a module registers: a file name in `/dev` or `/proc`.
const NAME_MAX: usize = 32;
/// The most bytes one device call moves, and one `print`.
const CHUNK: usize = 4096;

/// Every export of interface 1, by name.
fn exports() -> [(&'static str, u64); 11] {
    [
        ("nkmod_print", nkmod_print as *const () as u64),
        ("nkmod_alloc", nkmod_alloc as *const () as u64),
        ("nkmod_free", nkmod_free as *const () as u64),
        ("nkmod_chrdev_register", nkmod_chrdev_register as *const () as u64),
        ("nkmod_chrdev_unregister", nkmod_chrdev_unregister as *const () as u64),
        ("nkmod_proc_register", nkmod_proc_register as *const () as u64),
        ("nkmod_proc_unregister", nkmod_proc_unregister as *const () as u64),
        ("nkmod_timer_start", nkmod_timer_start as *const () as u64),
        ("nkmod_timer_stop", nkmod_timer_stop as *const () as u64),
        ("nkmod_ticks", nkmod_ticks as *const () as u64),
        ("nkmod_panic", nkmod_panic as *const () as u64),
    ]
}

/// The address of the export `name`, for the linker.
pub fn resolve(name: &str) -> Option<u64> {
    exports().iter().find(|(n, _)| *n == name).map(|&(_, addr)| addr)
}

type Init = extern "C" fn() -> i32;
type Exit = extern "C" fn();
type DevRead = extern "C" fn(*mut u8, usize) -> isize;
type DevWrite = extern "C" fn(*const u8, usize) -> isize;
type ProcShow = extern "C" fn(*mut u8, usize) -> usize;
type Tick = extern "C" fn();

/// `nkmod::CharDevOps`, as a module lays it out.
#[repr(C)]
#[derive(Clone, Copy)]
struct CharDevOps {
    read: DevRead,
    write: DevWrite,
}

pub fn call_init(addr: u64) -> i32 {
    // SAFETY: `addr` is the module's `module_init`, which the loader found
    // as a function symbol in its text and the NK mapped executable; the
    // interface says it is `extern "C" fn() -> i32`.
    let f: Init = unsafe { core::mem::transmute(addr as usize) };
    f()
}

pub fn call_exit(addr: u64) {
    // SAFETY: as `call_init`, for `module_exit`.
    let f: Exit = unsafe { core::mem::transmute(addr as usize) };
    f()
}

/// A name from a module, copied, if it is a valid file name.
///
/// # Safety
/// `ptr` must point at `len` readable bytes (checked: at most `NAME_MAX`).
unsafe fn name_from(ptr: *const u8, len: usize) -> Option<String> {
    if ptr.is_null() || len == 0 || len > NAME_MAX {
        return None;
    }
    // SAFETY: the caller's contract, with `len` bounded above.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
    let ok = bytes.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    (ok && bytes != b"." && bytes != b"..").then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// Modules' console output is dropped while set (the load and unload
/// tests, which would print thousands of lines).
static QUIET: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, core::sync::atomic::Ordering::Relaxed);
}

/// # Safety
/// `text` must point at `len` readable bytes.
unsafe extern "C" fn nkmod_print(text: *const u8, len: usize) {
    if text.is_null() || QUIET.load(core::sync::atomic::Ordering::Relaxed) {
        return;
    }
    // SAFETY: the caller's contract, at most `CHUNK` of it read.
    let bytes = unsafe { core::slice::from_raw_parts(text, len.min(CHUNK)) };
    crate::print!("{}", String::from_utf8_lossy(bytes));
}

/// Heap memory; null if the layout is bad or the heap is full.
extern "C" fn nkmod_alloc(size: usize, align: usize) -> *mut u8 {
    match core::alloc::Layout::from_size_align(size, align) {
        // SAFETY: the layout is valid and not zero-sized.
        Ok(layout) if size > 0 => unsafe { alloc::alloc::alloc(layout) },
        _ => core::ptr::null_mut(),
    }
}

/// # Safety
/// `ptr` must come from `nkmod_alloc(size, align)` and not be freed yet.
unsafe extern "C" fn nkmod_free(ptr: *mut u8, size: usize, align: usize) {
    if let Ok(layout) = core::alloc::Layout::from_size_align(size, align)
        && !ptr.is_null()
        && size > 0
    {
        // SAFETY: the caller's contract.
        unsafe { alloc::alloc::dealloc(ptr, layout) }
    }
}

/// A character device a module registered: `/dev/NAME`, with major
/// `FIRST_MAJOR + slot` (Linux's range for local use).
#[derive(Clone)]
struct Device {
    name: String,
    ops: CharDevOps,
    /// The module's image: the registration is its.
    owner: (u64, u64),
    /// Descriptions open on it.
    opens: u64,
}

const FIRST_MAJOR: u64 = 240;
const DEVICES_MAX: usize = 15;
static DEVICES: Mutex<[Option<Device>; DEVICES_MAX]> = Mutex::new([const { None }; DEVICES_MAX]);

/// The module whose image holds `addr`, as (base, end).
fn owner(addr: u64) -> Option<(u64, u64)> {
    super::owner_of(addr).map(|(base, end, _)| (base, end))
}

/// # Safety
/// `name` must point at `len` readable bytes and `ops` at a `CharDevOps`.
unsafe extern "C" fn nkmod_chrdev_register(name: *const u8, len: usize, ops: *const CharDevOps) -> i32 {
    // SAFETY: the caller's contract.
    let Some(name) = (unsafe { name_from(name, len) }) else { return -EINVAL };
    if ops.is_null() || !ops.is_aligned() {
        return -EINVAL;
    }
    // SAFETY: the caller's contract; copied, so the module may not change it later.
    let ops = unsafe { *ops };
    let Some(owner) = owner(ops.read as *const () as u64).filter(|&o| Some(o) == owner(ops.write as *const () as u64))
    else {
        return -EINVAL;
    };
    crate::arch::without_interrupts(|| {
        let slot = {
            let mut devices = DEVICES.lock();
            if devices.iter().flatten().any(|d| d.name == name) {
                return -EEXIST;
            }
            let Some(slot) = devices.iter().position(Option::is_none) else { return -ENOSPC };
            devices[slot] = Some(Device { name: name.clone(), ops, owner, opens: 0 });
            slot
        };
        // The node after the slot, and without its lock: opening the node
        // looks the slot up under the file system's.
        let rdev = crate::fs::dev::rdev(FIRST_MAJOR + slot as u64, 0);
        match crate::fs::make_node(&name, rdev) {
            Ok(()) => 0,
            Err(e) => {
                DEVICES.lock()[slot] = None;
                if e == klib::ramfs::FsError::Exists { -EEXIST } else { -ENOMEM }
            }
        }
    })
}

/// # Safety
/// `name` must point at `len` readable bytes.
unsafe extern "C" fn nkmod_chrdev_unregister(name: *const u8, len: usize) -> i32 {
    // SAFETY: the caller's contract.
    let Some(name) = (unsafe { name_from(name, len) }) else { return -EINVAL };
    crate::arch::without_interrupts(|| {
        let mut devices = DEVICES.lock();
        let Some(slot) = devices.iter().position(|d| d.as_ref().is_some_and(|d| d.name == name)) else {
            return -ENOENT;
        };
        if devices[slot].as_ref().is_some_and(|d| d.opens > 0) {
            return -EBUSY;
        }
        devices[slot] = None;
        drop(devices);
        crate::fs::remove_node(&name);
        0
    })
}

/// The device slot a device number of a module's names, if registered.
pub fn device_slot(rdev: u64) -> Option<u32> {
    let major = rdev >> 8;
    let slot = major.checked_sub(FIRST_MAJOR).filter(|_| rdev & 0xff == 0)? as usize;
    crate::arch::without_interrupts(|| DEVICES.lock().get(slot)?.as_ref().map(|_| slot as u32))
}

/// A description was opened on device `slot`: it holds the module.
pub fn dev_open(slot: u32) -> bool {
    crate::arch::without_interrupts(|| match DEVICES.lock().get_mut(slot as usize) {
        Some(Some(d)) => {
            d.opens += 1;
            true
        }
        _ => false,
    })
}

pub fn dev_close(slot: u32) {
    crate::arch::without_interrupts(|| {
        if let Some(Some(d)) = DEVICES.lock().get_mut(slot as usize) {
            d.opens = d.opens.saturating_sub(1);
        }
    })
}

fn dev_ops(slot: u32) -> Option<CharDevOps> {
    crate::arch::without_interrupts(|| DEVICES.lock().get(slot as usize)?.as_ref().map(|d| d.ops))
}

/// read(2) on a module's device: into a kernel buffer the module fills,
/// then to user memory. Its open description keeps the module loaded.
pub fn dev_read(slot: u32, root: u64, buf: u64, len: u64) -> Result<u64, i64> {
    let ops = dev_ops(slot).ok_or(5i64)?;
    let mut chunk = alloc::vec![0u8; (len as usize).min(CHUNK)];
    let got = (ops.read)(chunk.as_mut_ptr(), chunk.len());
    if got < 0 {
        return Err(got as i64);
    }
    let got = (got as usize).min(chunk.len());
    crate::mm::usercopy::copy_to_user(root, buf, &chunk[..got]).map_err(|_| 14i64)?;
    Ok(got as u64)
}

/// write(2) on a module's device: from user memory into a kernel buffer
/// the module reads.
pub fn dev_write(slot: u32, root: u64, buf: u64, len: u64) -> Result<u64, i64> {
    let ops = dev_ops(slot).ok_or(5i64)?;
    let mut chunk = alloc::vec![0u8; (len as usize).min(CHUNK)];
    crate::mm::usercopy::copy_from_user(root, &mut chunk, buf).map_err(|_| 14i64)?;
    let took = (ops.write)(chunk.as_ptr(), chunk.len());
    if took < 0 {
        return Err(took as i64);
    }
    Ok((took as u64).min(chunk.len() as u64))
}

/// A `/proc` entry a module registered.
struct ProcEntry {
    name: String,
    show: ProcShow,
    owner: (u64, u64),
}

static PROC: Mutex<Vec<ProcEntry>> = Mutex::new(Vec::new());

/// # Safety
/// `name` must point at `len` readable bytes.
unsafe extern "C" fn nkmod_proc_register(name: *const u8, len: usize, show: ProcShow) -> i32 {
    // SAFETY: the caller's contract.
    let Some(name) = (unsafe { name_from(name, len) }) else { return -EINVAL };
    if !crate::fs::procfs::free_name(&name) {
        return -EEXIST;
    }
    let Some(owner) = owner(show as *const () as u64) else { return -EINVAL };
    crate::arch::without_interrupts(|| {
        let mut entries = PROC.lock();
        if entries.iter().any(|e| e.name == name) {
            return -EEXIST;
        }
        if entries.try_reserve(1).is_err() {
            return -ENOMEM;
        }
        entries.push(ProcEntry { name, show, owner });
        0
    })
}

/// # Safety
/// `name` must point at `len` readable bytes.
unsafe extern "C" fn nkmod_proc_unregister(name: *const u8, len: usize) -> i32 {
    // SAFETY: the caller's contract.
    let Some(name) = (unsafe { name_from(name, len) }) else { return -EINVAL };
    crate::arch::without_interrupts(|| {
        let mut entries = PROC.lock();
        let before = entries.len();
        entries.retain(|e| e.name != name);
        if entries.len() == before { -ENOENT } else { 0 }
    })
}

/// The modules' `/proc` files, each shown now.
pub fn proc_files() -> Vec<(String, String)> {
    let shows: Vec<(String, ProcShow)> =
        crate::arch::without_interrupts(|| PROC.lock().iter().map(|e| (e.name.clone(), e.show)).collect());
    let mut out = Vec::new();
    for (name, show) in shows {
        let mut buf = alloc::vec![0u8; CHUNK];
        let n = show(buf.as_mut_ptr(), buf.len()).min(buf.len());
        buf.truncate(n);
        out.push((name, String::from_utf8_lossy(&buf).into_owned()));
    }
    out
}

/// A module's periodic timer.
#[derive(Clone, Copy)]
struct Timer {
    tick: Tick,
    period: u64,
    next: u64,
    owner: (u64, u64),
}

const TIMERS_MAX: usize = 16;
static TIMERS: Mutex<[Option<Timer>; TIMERS_MAX]> = Mutex::new([None; TIMERS_MAX]);

extern "C" fn nkmod_timer_start(period_ms: u64, tick: Tick) -> i32 {
    let Some(owner) = owner(tick as *const () as u64) else { return -EINVAL };
    let period = period_ms.div_ceil(1000 / crate::time::TICK_HZ).max(1);
    crate::arch::without_interrupts(|| {
        let mut timers = TIMERS.lock();
        let Some(slot) = timers.iter().position(Option::is_none) else { return -ENOSPC };
        timers[slot] = Some(Timer { tick, period, next: crate::time::ticks() + period, owner });
        slot as i32
    })
}

extern "C" fn nkmod_timer_stop(id: i32) -> i32 {
    crate::arch::without_interrupts(|| match TIMERS.lock().get_mut(id as usize) {
        Some(t @ Some(_)) => {
            *t = None;
            0
        }
        _ => -EINVAL,
    })
}

extern "C" fn nkmod_ticks() -> u64 {
    crate::time::ticks()
}

/// # Safety
/// `text` must point at `len` readable bytes.
unsafe extern "C" fn nkmod_panic(text: *const u8, len: usize) -> ! {
    let bytes = if text.is_null() {
        &[][..]
    } else {
        // SAFETY: the caller's contract, bounded.
        unsafe { core::slice::from_raw_parts(text, len.min(CHUNK)) }
    };
    panic!("a loadable module panicked: {}", String::from_utf8_lossy(bytes));
}

/// From the timer interrupt: runs the timers that are due, with no lock
/// held (a timer may stop itself).
pub fn tick() {
    let now = crate::time::ticks();
    let mut due = [None; TIMERS_MAX];
    if let Some(mut timers) = TIMERS.try_lock() {
        for (slot, t) in timers.iter_mut().enumerate() {
            if let Some(t) = t
                && now >= t.next
            {
                t.next = now + t.period;
                due[slot] = Some(t.tick);
            }
        }
    }
    for tick in due.into_iter().flatten() {
        tick();
    }
}

/// Whether a device of the module at `base..end` is open.
pub fn in_use(base: u64, end: u64) -> bool {
    users(base, end) > 0
}

/// Open descriptions that hold the module at `base..end`.
pub fn users(base: u64, end: u64) -> u64 {
    crate::arch::without_interrupts(|| {
        DEVICES.lock().iter().flatten().filter(|d| d.owner == (base, end)).map(|d| d.opens).sum()
    })
}

/// Drops whatever the module at `base..end` left registered (its exit
/// should have), saying so: nothing may call into its pages once they go.
pub fn forget(base: u64, end: u64, name: &str) {
    let mine = |o: (u64, u64)| o == (base, end);
    let mut left = 0;
    let mut nodes = Vec::new();
    crate::arch::without_interrupts(|| {
        for d in DEVICES.lock().iter_mut() {
            if d.as_ref().is_some_and(|d| mine(d.owner)) {
                nodes.extend(d.take().map(|d| d.name));
                left += 1;
            }
        }
        for t in TIMERS.lock().iter_mut() {
            if t.is_some_and(|t| mine(t.owner)) {
                *t = None;
                left += 1;
            }
        }
        let mut entries = PROC.lock();
        let before = entries.len();
        entries.retain(|e| !mine(e.owner));
        left += before - entries.len();
    });
    for node in nodes {
        crate::fs::remove_node(&node);
    }
    if left > 0 {
        crate::println!("module {name}: {left} registration(s) left at unload, removed");
    }
}
