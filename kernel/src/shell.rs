//! The kernel's built-in serial shell (`ksh`): a line editor and a few
//! commands for looking at the machine.

use crate::arch::{self, ExitCode};
use crate::{console, mm, print, println, time};
use klib::line::{Event, LineEditor};

pub const PROMPT: &str = "ksh> ";
const LINE_MAX: usize = 255;

struct Command {
    name: &'static str,
    args: &'static str,
    help: &'static str,
    run: fn(&[&str]),
}

const COMMANDS: &[Command] = &[
    Command { name: "help", args: "", help: "list the commands", run: help },
    Command { name: "mem", args: "", help: "physical memory, frames and heap", run: mem },
    Command { name: "uptime", args: "", help: "time since boot and timer ticks", run: uptime },
    Command { name: "sleep", args: "MS", help: "wait MS milliseconds (timer interrupts keep ticking)", run: sleep },
    Command { name: "threads", args: "", help: "kernel threads and their states", run: threads },
    Command {
        name: "run",
        args: "PATH [ARG...]",
        help: "run a program from the initrd and wait for it",
        run: run_program,
    },
    Command { name: "cpu", args: "", help: "CPU protection features the NK found", run: cpu },
    Command {
        name: "crash",
        args: "page-fault|panic|breakpoint",
        help: "trigger a fault to see how the kernel reports it",
        run: crash,
    },
    Command {
        name: "nk",
        args: "stat|audit|bench|services|verify proc|verify audit",
        help: "nested-kernel counters, invariant audit, timings, protected regions, log checks",
        run: nk_cmd,
    },
    Command { name: "ps", args: "", help: "the NK-protected process list", run: ps },
    Command { name: "insmod", args: "PATH", help: "load a kernel module (its text vetted by the NK)", run: insmod },
    Command { name: "rmmod", args: "NAME", help: "unload a kernel module", run: rmmod },
    Command { name: "lsmod", args: "", help: "the loaded kernel modules", run: lsmod },
    Command { name: "sys", args: "stat", help: "unimplemented system calls programs asked for", run: sys_cmd },
    Command {
        name: "audit",
        args: "[N]|verify|on|off|lock",
        help: "the last N system-call audit records (default 10), check the chain, switch the monitor",
        run: audit_cmd,
    },
    Command {
        name: "attack",
        args: "NAME|all|list",
        help: "run attacks on the nested kernel, each in its own thread",
        run: attack,
    },
    Command { name: "poweroff", args: "", help: "stop the machine", run: poweroff },
];

pub fn run() -> ! {
    // `init=PATH` on the command line: that program first, as the shell a
    // user works in (`cargo xtask run --userland busybox`); this prompt
    // comes back when it ends.
    if let Some(Some(init)) = klib::cmdline::get(crate::boot_info().cmdline(), "init") {
        println!("ksh: starting {init} (init=); the kernel shell comes back when it ends");
        execute(&alloc::format!("run {init}"));
    }
    println!("Type 'help' for commands.");
    let mut editor = LineEditor::<LINE_MAX>::new();
    print!("{}", PROMPT);
    loop {
        let Some(b) = crate::tty::kernel_byte() else {
            arch::wait_for_interrupt();
            continue;
        };
        match editor.feed(b) {
            Event::None => {}
            Event::Echo(bytes) => console::write_bytes(bytes),
            Event::EchoByte(b) => console::write_bytes(&[b]),
            Event::Erase(n) => {
                for _ in 0..n {
                    console::write_bytes(b"\x08 \x08");
                }
            }
            Event::Cancel => {
                println!("^C");
                print!("{}", PROMPT);
            }
            // The console's input ended (`cargo xtask run` sends Ctrl-D
            // when its piped input does): nothing more will come.
            Event::End => {
                println!("^D");
                execute("poweroff");
            }
            Event::Line => {
                println!();
                if editor.dropped() > 0 {
                    println!("ksh: line too long ({} bytes), cut to {}", LINE_MAX + editor.dropped(), LINE_MAX);
                }
                execute(editor.line());
                editor.clear();
                print!("{}", PROMPT);
            }
        }
    }
}

/// Runs one command line.
pub fn execute(line: &str) {
    let mut words = line.split_ascii_whitespace();
    let Some(name) = words.next() else { return };
    let args: alloc::vec::Vec<&str> = words.collect();
    match COMMANDS.iter().find(|c| c.name == name) {
        Some(c) => (c.run)(&args),
        None => {
            // Show at most a screenful of a long unknown word.
            let shown: alloc::string::String = name.chars().take(40).collect();
            let more = if shown.len() < name.len() { "..." } else { "" };
            println!("ksh: unknown command '{}{}' (try 'help')", shown, more);
        }
    }
}

fn help(_: &[&str]) {
    println!("commands:");
    for c in COMMANDS {
        let usage =
            if c.args.is_empty() { alloc::format!("{} ", c.name) } else { alloc::format!("{} {} ", c.name, c.args) };
        println!("  {:<38}{}", usage, c.help);
    }
}

fn mem(_: &[&str]) {
    let p = mm::summary();
    let (free, total) = mm::frames::stats();
    let (heap_used, heap_size) = mm::heap::stats();
    println!(
        "physical: {} MiB usable in {} region{} ({} KiB of RAM in the memory map)",
        p.usable_bytes >> 20,
        p.usable_regions,
        if p.usable_regions == 1 { "" } else { "s" },
        p.ram_bytes >> 10
    );
    println!("frames: {} free of {} ({} MiB free)", free, total, (free * 4096) >> 20);
    println!("heap: {} KiB used, of {} KiB", heap_used >> 10, heap_size >> 10);
}

fn insmod(args: &[&str]) {
    let [path] = args else { return println!("usage: insmod PATH") };
    let bytes = match crate::fs::read_file(crate::fs::ROOT, path) {
        Ok(b) => b,
        Err(e) => return println!("insmod: {path}: {e}"),
    };
    let crossings = nk::api::gate_crossings();
    match crate::module::load(&bytes) {
        Ok(name) => println!("insmod: {name} loaded ({} NK crossings)", nk::api::gate_crossings() - crossings),
        Err(e) => println!("insmod: {path}: {e} (errno {})", e.errno()),
    }
}

fn rmmod(args: &[&str]) {
    let [name] = args else { return println!("usage: rmmod NAME") };
    match crate::module::unload(name) {
        Ok(()) => println!("rmmod: {name} unloaded"),
        Err(e) => println!("rmmod: {name}: {e}"),
    }
}

fn lsmod(_: &[&str]) {
    let (loads, unloads) = crate::module::counts();
    println!("{:<16}{:>8}  {:<7} {:<8}{}", "Module", "Size", "Used by", "Version", "Address");
    for m in crate::module::list() {
        println!("{:<16}{:>8}  {:<7} {:<8}{:#x}", m.name, m.bytes, m.users, m.version, m.base);
    }
    println!("({loads} loaded and {unloads} unloaded since boot)");
}

fn uptime(_: &[&str]) {
    let us = time::uptime_us();
    println!("up {}.{:03} s, {} timer ticks", us / 1_000_000, us / 1000 % 1000, time::ticks());
}

fn sleep(args: &[&str]) {
    match args.first().and_then(|a| a.parse::<u64>().ok()) {
        Some(ms) if ms <= 60_000 => time::sleep_ms(ms),
        _ => println!("usage: sleep MS (at most 60000)"),
    }
}

fn threads(_: &[&str]) {
    for (id, name, state) in crate::sched::list() {
        println!("{:>4} {:<8} {}", id, state, name);
    }
}

fn cpu(_: &[&str]) {
    let f = crate::boot_info().cpu;
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "cpu: SMEP {} SMAP {} PKU {} PKS {} 1GiB-pages {}; local APIC id {} version {:#x}",
        yes(f.smep),
        yes(f.smap),
        yes(f.pku),
        yes(f.pks),
        yes(f.huge_1g),
        arch::lapic::id(),
        arch::lapic::version()
    );
}

fn crash(args: &[&str]) {
    match args.first().copied() {
        Some("page-fault") => {
            // A canonical kernel address in a PML4 slot nothing maps.
            let p = 0xffff_c000_0000_0000usize as *const u64;
            println!("crash: reading {:p}", p);
            // SAFETY: deliberately unsound: this is the demonstration of the
            // page-fault report, and the kernel stops right after it.
            #[allow(unsafe_code)]
            let v = unsafe { core::ptr::read_volatile(p) };
            println!("crash: read {:#x}?!", v);
        }
        Some("panic") => panic!("crash: panic requested from the shell"),
        Some("breakpoint") => {
            arch::breakpoint();
            println!("crash: resumed after the breakpoint");
        }
        _ => println!("usage: crash page-fault|panic|breakpoint"),
    }
}

fn sys_cmd(args: &[&str]) {
    match args {
        ["stat"] => crate::proc::missing::print(),
        _ => println!("usage: sys stat"),
    }
}

fn nk_cmd(args: &[&str]) {
    match args.first().copied() {
        Some("stat") => nk_stat(),
        Some("audit") => nk_audit(),
        Some("bench") => nk_bench(),
        Some("services") => crate::services::show(),
        Some("verify") => match args.get(1).copied() {
            Some("proc") => {
                crate::services::proclist::print_verify();
            }
            Some("audit") => {
                crate::services::audit::print_verify();
            }
            _ => println!("usage: nk verify proc|audit"),
        },
        _ => println!("usage: nk stat|audit|bench|services|verify proc|verify audit"),
    }
}

fn ps(_: &[&str]) {
    crate::services::proclist::print();
}

fn audit_cmd(args: &[&str]) {
    use crate::services::audit;
    use nk_model::monitor::Request;
    let switch = |request| {
        if audit::set(request).is_ok() {
            println!("audit: monitor {}", audit::describe(audit::state()));
        }
    };
    match args.first().copied() {
        None => audit::print_last(10),
        Some("verify") => {
            audit::print_verify();
        }
        Some("on") => switch(Request::On),
        Some("off") => switch(Request::Off),
        Some("lock") => switch(Request::Lock),
        Some(n) => match n.parse() {
            Ok(n) => audit::print_last(n),
            Err(_) => println!("usage: audit [N]|verify|on|off|lock"),
        },
    }
}

fn run_program(args: &[&str]) {
    let Some(path) = args.first() else {
        println!("usage: run PATH [ARG...]");
        return;
    };
    let argv = args.iter().map(|a| alloc::string::String::from(*a)).collect();
    match crate::proc::spawn(path, argv) {
        Ok(tid) => {
            crate::proc::jobs::give_console(tid);
            let status = crate::proc::wait(tid);
            crate::proc::jobs::release_console();
            match status {
                Some(0) => {}
                Some(code) => println!("run: {} exited with status {}", path, code),
                None => println!("run: {} was killed", path),
            }
        }
        Err(e) => println!("run: {}: {}", path, e),
    }
}

fn nk_stat() {
    println!("nk: backend {}, {} gate crossings", nk::BACKEND, nk::api::gate_crossings());
    println!("{:<18} {:>10} {:>10}", "operation", "calls", "refused");
    for c in nk::api::op_counts().iter().filter(|c| c.calls > 0) {
        println!("{:<18} {:>10} {:>10}", c.name, c.calls, c.refused);
    }
    println!("{:<18} {:>10}", "(in batches)", nk::api::batched_ops());
}

fn nk_audit() {
    match nk::api::audit() {
        Ok(r) => {
            println!(
                "audit: {} address spaces, {} PTPs, {} frames, {} violations",
                r.address_spaces, r.ptps, r.frames, r.violations
            );
            for v in r.kept() {
                println!("  {}", v);
            }
        }
        Err(e) => println!("audit: {}", e),
    }
}

/// The NK's own costs, timed (`crate::bench`).
fn nk_bench() {
    crate::bench::nk_bench();
}

fn attack(args: &[&str]) {
    match args.first().copied() {
        None | Some("list") => crate::attack::list(),
        Some(name) => {
            crate::attack::run_matching(name);
        }
    }
}

fn poweroff(_: &[&str]) {
    println!("poweroff");
    arch::exit_qemu(ExitCode::Success);
}
