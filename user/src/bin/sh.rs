//! A small shell: runs programs by path (or by name from /bin) with
//! arguments, joins them with `|`, and has the built-ins `cd`, `pwd`,
//! `exit`, and `nk`/`attack`, which hand the line to the kernel shell (a
//! research convenience: the nested kernel's commands stay reachable).
#![allow(unsafe_code)] // fork, pipe, dup2 and execve are called directly

use std::ffi::CString;
use std::io::{BufRead, Write};

/// The kernel-shell pass-through call (not a Linux number).
const SYS_KSH: libc::c_long = 1000;

fn main() {
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        print!("$ ");
        let _ = std::io::stdout().flush();
        line.clear();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(code) = run_line(line) {
            std::process::exit(code);
        }
    }
}

/// Runs one command line; `Some(code)` when the shell should exit.
fn run_line(line: &str) -> Option<i32> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words[0] {
        "exit" => return Some(words.get(1).and_then(|w| w.parse().ok()).unwrap_or(0)),
        "cd" => {
            let dir = words.get(1).copied().unwrap_or("/");
            if let Err(e) = std::env::set_current_dir(dir) {
                eprintln!("cd: {dir}: {e}");
            }
            return None;
        }
        "pwd" => {
            match std::env::current_dir() {
                Ok(d) => println!("{}", d.display()),
                Err(e) => eprintln!("pwd: {e}"),
            }
            return None;
        }
        "nk" | "attack" => {
            // SAFETY: the kernel reads `line.len()` bytes at `line.as_ptr()`.
            let r = unsafe { libc::syscall(SYS_KSH, line.as_ptr(), line.len()) };
            if r < 0 {
                eprintln!("{}: the kernel refused the command", words[0]);
            }
            return None;
        }
        _ => {}
    }
    let stages: Vec<Vec<&str>> = line.split('|').map(|s| s.split_whitespace().collect()).collect();
    if stages.iter().any(|s| s.is_empty()) {
        eprintln!("sh: empty command in a pipeline");
        return None;
    }
    run_pipeline(&stages);
    None
}

fn run_pipeline(stages: &[Vec<&str>]) {
    let mut input: libc::c_int = -1;
    let mut children = Vec::new();
    for (i, argv) in stages.iter().enumerate() {
        let last = i + 1 == stages.len();
        let mut fds = [-1; 2];
        // SAFETY: `fds` has room for the two descriptors pipe returns.
        if !last && unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            eprintln!("sh: pipe: {}", std::io::Error::last_os_error());
            break;
        }
        // SAFETY: the child only rearranges descriptors and calls execve or
        // _exit; the parent closes its copies of the pipe ends.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: descriptors this process owns.
            unsafe {
                if input >= 0 {
                    libc::dup2(input, 0);
                    libc::close(input);
                }
                if !last {
                    libc::dup2(fds[1], 1);
                    libc::close(fds[0]);
                    libc::close(fds[1]);
                }
            }
            exec(argv);
        }
        if pid < 0 {
            eprintln!("sh: fork: {}", std::io::Error::last_os_error());
            break;
        }
        children.push(pid);
        // SAFETY: the parent's copies, no longer needed.
        unsafe {
            if input >= 0 {
                libc::close(input);
            }
            if !last {
                libc::close(fds[1]);
            }
        }
        input = fds[0];
    }
    for pid in children {
        let mut status = 0;
        // SAFETY: a valid status pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 0 {
            eprintln!("sh: [{pid}] exited with status {}", libc::WEXITSTATUS(status));
        } else if libc::WIFSIGNALED(status) {
            eprintln!("sh: [{pid}] killed by signal {}", libc::WTERMSIG(status));
        }
    }
}

/// Replaces this (child) process with `argv`; exits 127 if it cannot.
fn exec(argv: &[&str]) -> ! {
    let path = if argv[0].contains('/') { argv[0].to_string() } else { format!("/bin/{}", argv[0]) };
    let cargs: Vec<CString> = argv.iter().filter_map(|a| CString::new(*a).ok()).collect();
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let env = [c"PATH=/bin".as_ptr(), std::ptr::null()];
    if let Ok(cpath) = CString::new(path.clone()) {
        // SAFETY: NUL-terminated strings in NULL-terminated arrays that
        // outlive the call.
        unsafe { libc::execve(cpath.as_ptr(), ptrs.as_ptr(), env.as_ptr()) };
    }
    eprintln!("sh: {path}: {}", std::io::Error::last_os_error());
    // SAFETY: ends the child without running the parent's exit handlers.
    unsafe { libc::_exit(127) }
}
