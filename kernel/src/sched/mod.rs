//! Kernel threads and a round-robin scheduler, preempted by the timer.
//!
//! A thread that faults in kernel mode is terminated with a report and the
//! rest of the system keeps running; this is how attacks on the nested
//! kernel are contained.
#![allow(unsafe_code)] // one block: the switch, whose contract the scheduler keeps

mod switch;

use crate::arch;
use crate::mm::vm::Batch;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use spin::Mutex;

const STACK_WORDS: usize = 128 * 1024 / 8;

/// The lowest word of every kernel stack: checked at each switch, so an
/// overflow (there is no guard page: stacks come from the heap) stops the
/// kernel with its name instead of corrupting the heap silently.
const STACK_CANARY: u64 = 0x5ac3_c0de_57ac_4e11;

pub type ThreadId = u64;

/// How a thread ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It returned from its function.
    Returned,
    /// It was terminated (a fault in kernel mode); the text says why.
    Killed(String),
}

enum State {
    Ready,
    Running,
    /// Waiting for `wake` on this channel.
    Blocked(u64),
    Dead(Exit),
}

/// How the running thread leaves the CPU.
enum Leave {
    /// It stays ready to run.
    Yield,
    Block(u64),
    Die(Exit),
}

struct Thread {
    id: ThreadId,
    name: String,
    state: State,
    /// Saved stack pointer while not running.
    rsp: u64,
    /// Owned here so it lives as long as the thread's record; `None` for
    /// the boot thread, which runs on the NK-provided stack.
    _stack: Option<Vec<u64>>,
    entry: Option<Box<dyn FnOnce() + Send>>,
    /// Set while the thread runs a process: its address space and the
    /// kernel stack its system calls and interrupts land on.
    user: Option<UserContext>,
    /// Nobody will join it: its record goes once it is dead.
    detached: bool,
    /// Its user floating-point and SSE registers while it is not running.
    fpu: Box<arch::fpu::FpuState>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct UserContext {
    root: u64,
    kstack_top: u64,
}

struct Scheduler {
    /// Few threads: a vector searched by id is all it takes. Boxed, so a
    /// thread's saved stack pointer stays put while the vector grows.
    #[allow(clippy::vec_box)] // the box is the point: stable addresses
    threads: Vec<Box<Thread>>,
    ready: VecDeque<ThreadId>,
    current: ThreadId,
    next_id: ThreadId,
}

static SCHED: Mutex<Option<Scheduler>> = Mutex::new(None);

/// Makes the running code (the boot thread, which becomes the shell) thread 0.
pub fn init() {
    let threads = vec![Box::new(Thread {
        id: 0,
        name: String::from("kmain"),
        state: State::Running,
        rsp: 0,
        _stack: None,
        entry: None,
        user: None,
        detached: false,
        fpu: Box::default(),
    })];
    *SCHED.lock() = Some(Scheduler { threads, ready: VecDeque::new(), current: 0, next_id: 1 });
}

impl Scheduler {
    fn get(&mut self, id: ThreadId) -> Option<&mut Thread> {
        self.threads.iter_mut().find(|t| t.id == id).map(|t| &mut **t)
    }
}

fn with<R>(f: impl FnOnce(&mut Scheduler) -> R) -> R {
    arch::without_interrupts(|| f(SCHED.lock().as_mut().expect("scheduler not initialised")))
}

pub fn current() -> ThreadId {
    with(|s| s.current)
}

pub fn current_name() -> String {
    with(|s| s.threads.iter().find(|t| t.id == s.current).map(|t| t.name.clone()).unwrap_or_default())
}

/// Renames thread `id` (`prctl(PR_SET_NAME)`).
pub fn rename(id: ThreadId, name: &str) {
    let name = String::from(name);
    with(|s| {
        if let Some(t) = s.threads.iter_mut().find(|t| t.id == id) {
            t.name = name;
        }
    });
}

/// The name of thread `id` (empty when there is none).
pub fn name_of(id: ThreadId) -> String {
    with(|s| s.threads.iter().find(|t| t.id == id).map(|t| t.name.clone()).unwrap_or_default())
}

/// Starts `f` in a new kernel thread.
#[inline(never)]
/// The id the next `spawn` will give (so one crossing can list a process
/// before its thread exists); interrupts off from here to that `spawn`.
pub fn next_id() -> ThreadId {
    with(|s| s.next_id)
}

pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> ThreadId {
    let mut stack = vec![0u64; STACK_WORDS];
    stack[0] = STACK_CANARY;
    let rsp = switch::initial_stack(&mut stack, thread_start);
    with(|s| {
        let cur = s.current;
        s.threads.retain(|t| !(t.detached && t.id != cur && matches!(t.state, State::Dead(_))));
        let id = s.next_id;
        s.next_id += 1;
        let entry: Box<dyn FnOnce() + Send> = Box::new(f);
        s.threads.push(Box::new(Thread {
            id,
            name: String::from(name),
            state: State::Ready,
            rsp,
            _stack: Some(stack),
            entry: Some(entry),
            user: None,
            detached: false,
            fpu: Box::default(),
        }));
        s.ready.push_back(id);
        id
    })
}

extern "C" fn thread_start() -> ! {
    let entry = with(|s| {
        let cur = s.current;
        s.get(cur).and_then(|t| t.entry.take())
    });
    arch::enable_interrupts();
    if let Some(f) = entry {
        f();
    }
    exit(Exit::Returned)
}

/// Gives the CPU to the next ready thread, if any.
pub fn yield_now() {
    arch::without_interrupts(|| {
        schedule(Leave::Yield);
    });
}

/// Called from the timer interrupt: preempts the running thread.
pub fn preempt() {
    if SCHED.is_locked() {
        return;
    }
    schedule(Leave::Yield);
}

/// Ends the running thread. Its stack is freed by whoever joins it.
pub fn exit(how: Exit) -> ! {
    arch::disable_interrupts();
    // Every other thread may be asleep (a parent polling with nanosleep):
    // idle on this dying thread's stack until one is ready. Its joiners are
    // woken right before it dies, interrupts off from there on: woken
    // earlier, they could run while a preemption left it merely ready, and
    // sleep again with nobody left to wake them.
    loop {
        wake(death_channel(current()));
        if !with(|s| s.ready.is_empty()) {
            break;
        }
        arch::wait_for_interrupt();
        arch::disable_interrupts();
    }
    schedule(Leave::Die(how));
    unreachable!("a dead thread was resumed");
}

/// Terminates the running thread from a fault handler, unless it is the
/// boot thread (then there is nothing to fall back to; returns false).
pub fn kill_current(why: String) -> bool {
    if current() == 0 {
        return false;
    }
    // It may have died inside another address space (`mm::vm::with_space`):
    // the next thread runs on the kernel root.
    if crate::mm::walk::current_root() / 4096 != nk::api::kernel_root() {
        let _ = nk::api::load_cr3(nk::api::kernel_root());
    }
    with(|s| {
        let cur = s.current;
        if let Some(t) = s.get(cur) {
            t.user = None;
        }
    });
    crate::proc::reap_killed(current());
    exit(Exit::Killed(why))
}

/// Switches away from the current thread (leaving it ready, blocked or
/// dead). Interrupts must be off. Returns at once, without switching, when
/// no other thread is ready (a blocking caller then idles and checks again).
fn schedule(leave: Leave) -> bool {
    let switch_to = {
        let mut guard = SCHED.lock();
        let Some(s) = guard.as_mut() else { return false };
        let cur = s.current;
        let Some(next) = s.ready.pop_front() else {
            if matches!(leave, Leave::Die(_)) {
                drop(guard);
                panic!("sched: the last thread exited");
            }
            return false;
        };
        if matches!(leave, Leave::Yield) {
            s.ready.push_back(cur);
        }
        let t = s.get(cur).expect("current thread exists");
        if t._stack.as_ref().is_some_and(|st| st[0] != STACK_CANARY) {
            // The heap below it is damaged already: stop before it spreads.
            let name = t.name.clone();
            drop(guard);
            panic!("sched: thread '{name}' overflowed its {} KiB kernel stack", STACK_WORDS * 8 / 1024);
        }
        if !matches!(leave, Leave::Die(_)) {
            t.fpu.save();
        }
        t.state = match leave {
            Leave::Die(how) => State::Dead(how),
            Leave::Block(channel) => State::Blocked(channel),
            Leave::Yield => State::Ready,
        };
        let save: *mut u64 = &mut t.rsp;
        s.current = next;
        let n = s.get(next).expect("ready thread exists");
        n.state = State::Running;
        // The kernel never touches these registers: they can change hands
        // here, before the stacks do.
        n.fpu.restore();
        (save, n.rsp, n.user, next)
    };
    match FAREWELL.lock().take() {
        Some(farewell) => depart(farewell, switch_to.2, switch_to.3),
        None => {
            if let Some(user) = switch_to.2 {
                activate(user, switch_to.3);
            }
        }
    }
    // SAFETY: `save` points into the scheduler's record of the current
    // thread, boxed so it does not move (threads are removed only by `join`,
    // never while running); the next thread's stack pointer was saved by a
    // switch or laid out by `initial_stack`, and its stack is alive.
    unsafe { switch::switch(switch_to.0, switch_to.1) };
    true
}

/// The kernel stack, FS base and address space of a thread that runs a
/// process: what the CPU needs before that thread's user code can run. One
/// NK crossing for whatever differs from what the CPU has, none if nothing
/// does.
fn activate(user: UserContext, tid: ThreadId) {
    let (rsp0, fs, root) = switch_parts(Some(user), tid);
    if rsp0.is_some() || fs.is_some() || root.is_some() {
        let _ = nk::api::switch(rsp0, fs, root);
    }
}

/// What differs between what this CPU holds and what thread `tid` needs
/// (the kernel root for a thread that runs no process), each part `Some`
/// only then; the CPU is taken to hold it from now on.
fn switch_parts(user: Option<UserContext>, tid: ThreadId) -> (Option<u64>, Option<u64>, Option<u64>) {
    use core::sync::atomic::{AtomicU64, Ordering};
    static RSP0: AtomicU64 = AtomicU64::new(0);
    let Some(user) = user else {
        let root = nk::api::kernel_root();
        return (None, None, (crate::mm::walk::current_root() / 4096 != root).then_some(root));
    };
    arch::user::set_syscall_stack(user.kstack_top);
    let rsp0 = (RSP0.swap(user.kstack_top, Ordering::Relaxed) != user.kstack_top).then_some(user.kstack_top);
    let fs = crate::proc::fs_base_of(tid).filter(|&fs| FS_BASE.swap(fs, Ordering::Relaxed) != fs);
    let root = (crate::mm::walk::current_root() / 4096 != user.root).then_some(user.root);
    (rsp0, fs, root)
}

/// What a process that ended leaves for the switch away from it: given a
/// batch holding that switch, it adds its own operations (its address
/// space's teardown) and submits it, so the exit and the switch are one
/// crossing. Runs inside the scheduler with interrupts off.
pub type Farewell = Box<dyn FnOnce(Batch) + Send>;

/// The farewell of the thread this CPU is leaving, if it ended a process.
static FAREWELL: Mutex<Option<Farewell>> = Mutex::new(None);

/// The calling thread stops running a process, whose address space it is
/// still on: the next switch runs `farewell` with the switch in its batch.
pub fn leave_user_at_switch(farewell: Farewell) {
    arch::without_interrupts(|| {
        with(|s| {
            let cur = s.current;
            if let Some(t) = s.get(cur) {
                t.user = None;
            }
        });
        *FAREWELL.lock() = Some(farewell);
    });
}

/// Switches to thread `tid` inside `farewell`'s crossing. Should that
/// crossing be refused, the switch is made on its own: the next thread
/// never runs on an address space not its own.
fn depart(farewell: Farewell, user: Option<UserContext>, tid: ThreadId) {
    let (rsp0, fs, root) = switch_parts(user, tid);
    let mut batch = Batch::new();
    batch.switch(rsp0, fs, root);
    farewell(batch);
    let want = user.map_or_else(nk::api::kernel_root, |u| u.root);
    if crate::mm::walk::current_root() / 4096 != want {
        let _ = nk::api::switch(rsp0, fs, Some(want));
    }
}

/// The FS base this CPU holds: every write goes through `set_fs_base`, so
/// a switch writes the MSR only when the next thread's differs.
static FS_BASE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Loads `fs` as the FS base (the running process's thread pointer).
pub fn set_fs_base(fs: u64) -> Result<(), nk::api::NkError> {
    use core::sync::atomic::Ordering;
    if FS_BASE.swap(fs, Ordering::Relaxed) != fs {
        nk::api::write_msr(0xc000_0100, fs)?;
    }
    Ok(())
}

/// Makes the calling thread the runner of the process whose root is
/// `root`, and switches to that address space.
pub fn become_user(root: u64) {
    arch::without_interrupts(|| {
        let (ctx, tid) = take_user(root);
        activate(ctx, tid);
    });
}

/// `become_user` with the switch added to `batch`, which the caller
/// submits before interrupts are on again (a switch back to this thread
/// meanwhile would load a root the batch has not declared yet).
pub fn become_user_in(root: u64, batch: &mut Batch) {
    let (ctx, tid) = take_user(root);
    let (rsp0, fs, root) = switch_parts(Some(ctx), tid);
    batch.switch(rsp0, fs, root);
}

fn take_user(root: u64) -> (UserContext, ThreadId) {
    with(|s| {
        let cur = s.current;
        let t = s.get(cur).expect("current thread exists");
        let top = t._stack.as_ref().map_or(0, |st| st.as_ptr() as u64 + (st.len() * 8) as u64) & !15;
        let ctx = UserContext { root, kstack_top: top };
        t.user = Some(ctx);
        (ctx, cur)
    })
}

/// Blocks the calling thread until `ready()` holds, sleeping on `channel`
/// between checks: whoever makes it hold calls `wake(channel)`. The check
/// and the sleep happen with interrupts off, so no wake-up is lost.
pub fn wait_until(channel: u64, mut ready: impl FnMut() -> bool) {
    loop {
        let idle = arch::without_interrupts(|| {
            if ready() {
                return None;
            }
            // Not switched: nobody else could run, so idle until an interrupt.
            Some(!schedule(Leave::Block(channel)))
        });
        match idle {
            None => return,
            Some(true) => arch::wait_for_interrupt(),
            Some(false) => {}
        }
    }
}

/// The channel every timer tick wakes: for sleeps that end at a time.
pub const TICK: u64 = 1 << 60;

/// Makes every thread blocked on `channel` ready again.
pub fn wake(channel: u64) {
    with(|s| {
        let mut woken = Vec::new();
        for t in s.threads.iter_mut() {
            if matches!(t.state, State::Blocked(c) if c == channel) {
                t.state = State::Ready;
                woken.push(t.id);
            }
        }
        s.ready.extend(woken);
    });
}

/// Makes thread `id` ready if it is blocked, whatever it waits for: a
/// signal came, and its wait checks for one.
pub fn interrupt(id: ThreadId) {
    with(|s| {
        if let Some(t) = s.get(id)
            && matches!(t.state, State::Blocked(_))
        {
            t.state = State::Ready;
            s.ready.push_back(id);
        }
    });
}

/// The calling thread's floating-point and SSE registers, as they are now.
pub fn fpu_state() -> arch::fpu::FpuState {
    let mut state = arch::fpu::FpuState::default();
    arch::without_interrupts(|| state.save());
    state
}

/// Loads `state` into the calling thread's registers (execve's fresh
/// state, a signal handler's return).
pub fn set_fpu_state(mut state: arch::fpu::FpuState) {
    arch::without_interrupts(|| state.restore());
}

/// Gives thread `id`, not yet run, the registers in `state` (a forked
/// child inherits its parent's).
pub fn set_fpu_of(id: ThreadId, state: arch::fpu::FpuState) {
    with(|s| {
        if let Some(t) = s.get(id) {
            *t.fpu = state;
        }
    });
}

/// Marks thread `id` as one nobody joins: once dead, its record and stack
/// are freed (at the next `spawn`).
pub fn detach(id: ThreadId) {
    with(|s| {
        if let Some(t) = s.get(id) {
            t.detached = true;
        }
    });
}

/// Waits for thread `id` to end and returns how it ended.
pub fn join(id: ThreadId) -> Option<Exit> {
    let mut result = None;
    wait_until(death_channel(id), || {
        with(|s| match s.threads.iter().position(|t| t.id == id) {
            None => true,
            Some(i) => match s.threads[i].state {
                State::Dead(_) => {
                    if let State::Dead(how) = s.threads.swap_remove(i).state {
                        result = Some(how);
                    }
                    true
                }
                _ => false,
            },
        })
    });
    result
}

/// What `join` sleeps on: thread `id`'s end.
fn death_channel(id: ThreadId) -> u64 {
    (1 << 62) | id
}

/// (id, name, state) of every thread, for the shell.
pub fn list() -> Vec<(ThreadId, String, &'static str)> {
    with(|s| {
        s.threads
            .iter()
            .map(|t| {
                let st = match t.state {
                    State::Ready => "ready",
                    State::Running => "running",
                    State::Blocked(_) => "blocked",
                    State::Dead(_) => "dead",
                };
                (t.id, t.name.clone(), st)
            })
            .collect()
    })
}

crate::ktest!(
    fn threads_run_and_are_joined() {
        use core::sync::atomic::{AtomicU64, Ordering};
        static SUM: AtomicU64 = AtomicU64::new(0);
        let ids: Vec<ThreadId> = (1..=4u64)
            .map(|i| {
                spawn("adder", move || {
                    for _ in 0..10 {
                        SUM.fetch_add(i, Ordering::Relaxed);
                        yield_now();
                    }
                })
            })
            .collect();
        for id in ids {
            crate::kassert_eq!(join(id), Some(Exit::Returned));
        }
        crate::kassert_eq!(SUM.load(Ordering::Relaxed), 10 * (1 + 2 + 3 + 4));
        Ok(())
    }
);

crate::ktest!(
    fn a_spinning_thread_is_preempted() {
        use core::sync::atomic::{AtomicBool, Ordering};
        static STOP: AtomicBool = AtomicBool::new(false);
        let id = spawn("spinner", || {
            while !STOP.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        });
        // The spinner never yields; the timer must take the CPU back for us.
        crate::time::sleep_ms(50);
        STOP.store(true, Ordering::Relaxed);
        crate::kassert_eq!(join(id), Some(Exit::Returned));
        Ok(())
    }
);

crate::ktest!(
    fn a_faulting_thread_is_killed_and_the_system_goes_on() {
        let id = spawn("faulter", || {
            let p = 0xffff_c000_0000_0000usize as *const u64;
            // SAFETY: deliberately unsound: this read faults, and the fault
            // handler must terminate this thread only.
            #[allow(unsafe_code)]
            let _ = unsafe { core::ptr::read_volatile(p) };
        });
        match join(id) {
            Some(Exit::Killed(why)) => crate::kassert!(why.contains("page fault"), "killed for: {}", why),
            other => return Err(alloc::format!("faulting thread ended as {:?}", other)),
        }
        Ok(())
    }
);

crate::ktest!(
    fn a_switch_is_one_crossing_and_refuses_what_its_parts_refuse() {
        let root = nk::api::kernel_root();
        let crossings = nk::api::gate_crossings();
        let fs = FS_BASE.load(core::sync::atomic::Ordering::Relaxed);
        arch::without_interrupts(|| nk::api::switch(None, Some(fs), Some(root))).map_err(|e| alloc::format!("{e}"))?;
        crate::kassert_eq!(nk::api::gate_crossings() - crossings, 1);
        // Nothing to change: still accepted.
        crate::kassert!(nk::api::switch(None, None, None).is_ok());
        // A non-canonical FS base, as write_msr refuses it.
        crate::kassert!(nk::api::switch(None, Some(1 << 63), None).is_err());
        // A kernel stack outside the kernel half, as set_kernel_stack refuses it.
        crate::kassert!(nk::api::switch(Some(0x1000), None, None).is_err());
        Ok(())
    }
);
