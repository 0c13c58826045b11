//! A small shell: runs programs by path (or by name from /bin) with
//! arguments, joins them with `|`, redirects with `< file`, `> file` and
//! `>> file`, and has the built-ins `cd`, `pwd`, `exit`, and `nk`/`attack`,
//! which hand the line to the kernel shell (a research convenience: the
//! nested kernel's commands stay reachable).
#![allow(unsafe_code)] // fork, pipe, dup2 and execve are called directly

use std::ffi::CString;
use std::io::{BufRead, Write};

/// The kernel-shell pass-through call (not a Linux number).
const SYS_KSH: libc::c_long = 1000;

fn main() {
    let stdin = std::io::stdin();
    let mut line = String::new();
    // The status of the last pipeline, what a bare `exit` returns.
    let mut last_status = 0;
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
        match run_line(line, last_status) {
            Flow::Exit(code) => std::process::exit(code),
            Flow::Status(status) => last_status = status,
        }
    }
    std::process::exit(last_status);
}

/// What a command line asks of the shell afterwards.
enum Flow {
    /// Read the next line; the line's exit status.
    Status(i32),
    /// Leave with this status.
    Exit(i32),
}

/// Runs one command line.
fn run_line(line: &str, last_status: i32) -> Flow {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words[0] {
        "exit" => return Flow::Exit(words.get(1).and_then(|w| w.parse().ok()).unwrap_or(last_status)),
        "cd" => {
            let dir = words.get(1).copied().unwrap_or("/");
            if let Err(e) = std::env::set_current_dir(dir) {
                eprintln!("cd: {dir}: {e}");
                return Flow::Status(1);
            }
            return Flow::Status(0);
        }
        "pwd" if words.len() == 1 => {
            match std::env::current_dir() {
                Ok(d) => println!("{}", d.display()),
                Err(e) => {
                    eprintln!("pwd: {e}");
                    return Flow::Status(1);
                }
            }
            return Flow::Status(0);
        }
        "nk" | "attack" => {
            // SAFETY: the kernel reads `line.len()` bytes at `line.as_ptr()`.
            let r = unsafe { libc::syscall(SYS_KSH, line.as_ptr(), line.len()) };
            if r < 0 {
                eprintln!("{}: the kernel refused the command", words[0]);
                return Flow::Status(1);
            }
            return Flow::Status(0);
        }
        _ => {}
    }
    match parse(line) {
        Ok(stages) => Flow::Status(run_pipeline(&stages)),
        Err(why) => {
            eprintln!("sh: {why}");
            Flow::Status(2)
        }
    }
}

/// One stage of a pipeline: the program's words and where its standard
/// input and output come from, when not the pipe or the console.
#[derive(Debug, Default, PartialEq)]
struct Stage {
    argv: Vec<String>,
    input: Option<String>,
    output: Option<Redirect>,
}

#[derive(Debug, PartialEq)]
struct Redirect {
    path: String,
    append: bool,
}

/// Splits a line into words and the operators `|`, `<`, `>` and `>>`,
/// which need no spaces around them (`a>b` is `a > b`).
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() || matches!(c, '|' | '<' | '>') {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            match c {
                '>' if chars.peek() == Some(&'>') => {
                    chars.next();
                    out.push(">>".into());
                }
                '|' | '<' | '>' => out.push(c.to_string()),
                _ => {}
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Turns a line into pipeline stages; an error names what is malformed.
fn parse(line: &str) -> Result<Vec<Stage>, String> {
    let mut stages = vec![Stage::default()];
    let mut toks = tokens(line).into_iter();
    while let Some(tok) = toks.next() {
        let stage = stages.last_mut().expect("never empty");
        match tok.as_str() {
            "|" => {
                if stage.argv.is_empty() {
                    return Err("empty command in a pipeline".into());
                }
                stages.push(Stage::default());
            }
            "<" | ">" | ">>" => {
                let path = toks.next().filter(|t| !matches!(t.as_str(), "|" | "<" | ">" | ">>"));
                let Some(path) = path else { return Err(format!("{tok} needs a file name")) };
                if tok == "<" {
                    stage.input = Some(path);
                } else {
                    stage.output = Some(Redirect { path, append: tok == ">>" });
                }
            }
            _ => stage.argv.push(tok),
        }
    }
    if stages.iter().any(|s| s.argv.is_empty()) {
        return Err("empty command in a pipeline".into());
    }
    Ok(stages)
}

/// Starts every stage with its standard input on the previous stage's pipe
/// and its output on the next one's, then waits for them all; returns the
/// last stage's status (128 + the signal when one killed it), as sh does.
fn run_pipeline(stages: &[Stage]) -> i32 {
    let mut input: libc::c_int = -1;
    let mut children = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
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
            // After the pipe, so an explicit redirection wins, as in sh.
            redirect(stage);
            exec(&stage.argv);
        }
        if pid < 0 {
            eprintln!("sh: fork: {}", std::io::Error::last_os_error());
        } else {
            children.push(pid);
        }
        // SAFETY: the parent's copies, no longer needed (the child has its own).
        unsafe {
            if input >= 0 {
                libc::close(input);
            }
            if !last {
                libc::close(fds[1]);
            }
        }
        input = fds[0];
        if pid < 0 {
            break;
        }
    }
    if input >= 0 {
        // SAFETY: the read end no stage was started for (a fork failed).
        unsafe { libc::close(input) };
    }
    let mut status = 0;
    let last = children.last().copied();
    for pid in children {
        let mut raw = 0;
        // SAFETY: a valid status pointer.
        unsafe { libc::waitpid(pid, &mut raw, 0) };
        if Some(pid) != last {
            continue;
        }
        if libc::WIFEXITED(raw) {
            status = libc::WEXITSTATUS(raw);
            if status != 0 {
                eprintln!("sh: [{pid}] exited with status {status}");
            }
        } else if libc::WIFSIGNALED(raw) {
            status = 128 + libc::WTERMSIG(raw);
            eprintln!("sh: [{pid}] killed by signal {}", libc::WTERMSIG(raw));
        }
    }
    if last.is_none() { 1 } else { status }
}

/// Points this (child) process's standard input and output at the stage's
/// files; exits 1 if one cannot be opened.
fn redirect(stage: &Stage) {
    if let Some(path) = &stage.input {
        open_onto(path, libc::O_RDONLY, 0);
    }
    if let Some(out) = &stage.output {
        let mode = if out.append { libc::O_APPEND } else { libc::O_TRUNC };
        open_onto(&out.path, libc::O_WRONLY | libc::O_CREAT | mode, 1);
    }
}

fn open_onto(path: &str, flags: libc::c_int, target: libc::c_int) {
    let fd = match CString::new(path) {
        // SAFETY: a NUL-terminated path; 0o644 is the mode of a created file.
        Ok(cpath) => unsafe { libc::open(cpath.as_ptr(), flags, 0o644) },
        Err(_) => -1,
    };
    if fd < 0 {
        eprintln!("sh: {path}: {}", std::io::Error::last_os_error());
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(1) };
    }
    if fd != target {
        // SAFETY: both are this process's descriptors; `fd` is a spare copy.
        unsafe {
            libc::dup2(fd, target);
            libc::close(fd);
        }
    }
}

/// Replaces this (child) process with `argv`; exits 127 if it cannot.
fn exec(argv: &[String]) -> ! {
    let path = if argv[0].contains('/') { argv[0].clone() } else { format!("/bin/{}", argv[0]) };
    let cargs: Vec<CString> = argv.iter().filter_map(|a| CString::new(a.as_str()).ok()).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(argv: &[&str], input: Option<&str>, output: Option<(&str, bool)>) -> Stage {
        Stage {
            argv: argv.iter().map(|w| w.to_string()).collect(),
            input: input.map(String::from),
            output: output.map(|(path, append)| Redirect { path: path.into(), append }),
        }
    }

    #[test]
    fn operators_need_no_spaces() {
        assert_eq!(tokens("a|b<c>d>>e"), ["a", "|", "b", "<", "c", ">", "d", ">>", "e"]);
    }

    #[test]
    fn a_pipeline_with_redirections() {
        let got = parse("cat < in | grep x | wc >> out").unwrap();
        assert_eq!(
            got,
            [
                stage(&["cat"], Some("in"), None),
                stage(&["grep", "x"], None, None),
                stage(&["wc"], None, Some(("out", true)))
            ]
        );
        assert_eq!(parse("echo hi > f").unwrap(), [stage(&["echo", "hi"], None, Some(("f", false)))]);
    }

    #[test]
    fn malformed_lines_are_refused() {
        assert!(parse("a | | b").is_err());
        assert!(parse("a |").is_err());
        assert!(parse("a >").is_err());
        assert!(parse("a > | b").is_err());
        assert!(parse("> f").is_err());
    }
}
