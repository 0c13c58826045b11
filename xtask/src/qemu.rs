//! Starting QEMU on the kernel: the command line, a boot on this terminal
//! (`run`, `gdb`), and a boot with scripted input and captured output under a
//! timeout (`test`). Every wait has a deadline and every child is reaped.

use crate::Result;
use crate::cli::{Accel, RunOptions};
use crate::setup::QEMU;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// QEMU's exit status when the guest writes 0x10 to isa-debug-exit
/// (`(value << 1) | 1`): the kernel's success.
pub const EXIT_SUCCESS: i32 = 33;
/// The same for 0x11: the kernel's failure (panic, fatal exception).
pub const EXIT_FAILURE: i32 = 35;

/// The shell's prompt, whose first appearance ends the boot.
pub const PROMPT: &str = "ksh> ";

/// In scripted input, a NUL byte holds back the rest until the guest has
/// printed `CUE` once more: a key typed at a running program (Ctrl-C at a
/// loop) must not arrive before the program runs.
pub const CUE: &str = "@cue@";

/// One virtual machine.
#[derive(Debug, Clone)]
pub struct Machine {
    pub kernel: PathBuf,
    pub accel: Accel,
    pub smp: u32,
    pub mem_mib: u64,
    pub cmdline: String,
    /// The cpio archive QEMU hands over as the first PVH module (`-initrd`).
    pub initrd: Option<PathBuf>,
}

impl Machine {
    pub fn new(kernel: PathBuf, initrd: PathBuf, opts: &RunOptions) -> Machine {
        Machine {
            kernel,
            accel: opts.accel,
            smp: opts.smp,
            mem_mib: opts.mem_mib,
            cmdline: opts.cmdline.clone(),
            initrd: Some(initrd),
        }
    }

    /// A TCG machine with one CPU and 256 MiB, as the tests boot.
    pub fn tested(kernel: &Path, initrd: Option<&Path>, cmdline: impl Into<String>) -> Machine {
        Machine {
            kernel: kernel.to_path_buf(),
            accel: Accel::Tcg,
            smp: 1,
            mem_mib: 256,
            cmdline: cmdline.into(),
            initrd: initrd.map(Path::to_path_buf),
        }
    }
}

/// Where the serial console goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// A person at a terminal: console and monitor share stdio, so Ctrl-C
    /// reaches the guest and Ctrl-A X quits.
    Terminal,
    /// A pipe or file: the serial port alone on stdio.
    Stdio,
}

pub fn qemu_args(m: &Machine, console: Console, gdb: bool) -> Vec<String> {
    let (cpu, accel) = match m.accel {
        Accel::Tcg => ("max", "tcg"),
        // KVM's arch-capabilities MSR needs host support that nested or
        // older hosts lack; the kernel does not use it.
        Accel::Kvm => ("host,-arch-capabilities", "kvm"),
    };
    let mut args: Vec<String> = vec![
        "-M".into(),
        "q35".into(),
        "-cpu".into(),
        cpu.into(),
        "-accel".into(),
        accel.into(),
        "-m".into(),
        format!("{}M", m.mem_mib),
        "-smp".into(),
        m.smp.to_string(),
        "-kernel".into(),
        m.kernel.display().to_string(),
    ];
    if let Some(initrd) = &m.initrd {
        args.extend(["-initrd".into(), initrd.display().to_string()]);
    }
    args.extend([
        "-append".into(),
        m.cmdline.clone(),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
        "-device".into(),
        "isa-debug-exit,iobase=0xf4,iosize=0x04".into(),
    ]);
    let console_args: &[&str] = match console {
        Console::Terminal => &[
            "-chardev",
            "stdio,id=con,mux=on,signal=off",
            "-serial",
            "chardev:con",
            "-mon",
            "chardev=con,mode=readline",
        ],
        Console::Stdio => &["-serial", "stdio", "-monitor", "none"],
    };
    args.extend(console_args.iter().map(|s| s.to_string()));
    if gdb {
        // -s: gdbstub on tcp::1234; -S: CPU stopped until GDB continues.
        args.extend(["-s".into(), "-S".into()]);
    }
    args
}

/// How an interactive QEMU ended.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    /// We stopped it at the deadline.
    pub timed_out: bool,
}

/// Boots on this terminal and waits for QEMU to end (or the timeout).
///
/// With `boot_time`, QEMU's stdout comes through us so we can see the
/// prompt; its stdin stays ours, so QEMU still puts a terminal in raw mode
/// itself and keys reach the guest unchanged.
pub fn boot_interactive(m: &Machine, gdb: bool, boot_time: bool, timeout: Option<Duration>) -> Result<Ended> {
    let console = if io::stdin().is_terminal() {
        eprintln!("Ctrl-A X quits QEMU");
        Console::Terminal
    } else {
        Console::Stdio
    };
    let mut cmd = Command::new(QEMU);
    cmd.args(qemu_args(m, console, gdb));
    if boot_time {
        cmd.stdout(Stdio::piped());
    }
    if matches!(console, Console::Stdio) {
        cmd.stdin(Stdio::piped());
    }
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {QEMU}: {e}"))?;
    if let Some(mut guest) = child.stdin.take() {
        // Piped input (a script): QEMU does not pass its end on, so we say
        // it as a terminal would, with Ctrl-D on a fresh line, and ksh
        // powers off. (A program reading the console takes it as its EOF.)
        std::thread::spawn(move || {
            let _ = io::copy(&mut io::stdin().lock(), &mut guest).and_then(|_| guest.write_all(b"\n\x04"));
        });
    }
    let deadline = timeout.map(|t| start + t);
    if let Some(stdout) = child.stdout.take() {
        let chunks = spawn_reader(stdout);
        let mut watch = Some(Watch::new(PROMPT));
        let mut out = io::stdout().lock();
        loop {
            let chunk = match deadline {
                Some(d) => chunks.recv_timeout(d.saturating_duration_since(Instant::now())),
                None => chunks.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let Ok(chunk) = chunk else { break };
            // Our stdout may be gone (a closed pipe); the guest runs on.
            let _ = out.write_all(&chunk).and_then(|()| out.flush());
            if watch.as_mut().is_some_and(|w| w.feed(&chunk)) {
                watch = None;
                let ms = start.elapsed().as_millis();
                eprintln!("boot time: {ms} ms (QEMU start to shell prompt, {})", m.accel.label());
            }
        }
    }
    let waited = wait_until(&mut child, deadline);
    let timed_out = waited.as_ref().is_ok_and(|&(_, late)| late);
    let status = status_or_kill(&mut child, waited.map(|(status, _)| status))?;
    Ok(Ended { status, timed_out })
}

/// What a scripted boot produced.
#[derive(Debug)]
pub struct Capture {
    /// The console output, with carriage returns removed.
    pub output: String,
    pub stderr: String,
    pub status: ExitStatus,
    pub timed_out: bool,
    /// When the shell prompt first appeared, counted from QEMU's start.
    pub prompt_at: Option<Duration>,
}

impl Capture {
    /// QEMU's exit status, if it exited by itself.
    pub fn code(&self) -> Option<i32> {
        if self.timed_out { None } else { self.status.code() }
    }

    /// The end of the output and QEMU's stderr, for a failure report.
    pub fn report(&self, what: &str) -> String {
        let mut r = format!("--- {what}: last 30 lines of output ---\n{}\n", last_lines(&self.output, 30));
        if !self.stderr.trim().is_empty() {
            r += &format!("--- {what}: QEMU stderr ---\n{}\n", self.stderr.trim_end());
        }
        r += &format!("--- {what}: {} ---", self.describe_end());
        r
    }

    pub fn describe_end(&self) -> String {
        if self.timed_out {
            "QEMU did not finish before the timeout and was stopped".into()
        } else {
            describe_status(self.status)
        }
    }
}

pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("qemu exited with status {code}"),
        (None, Some(sig)) => format!("qemu was killed by signal {sig}"),
        (None, None) => format!("qemu ended: {status}"),
    }
}

/// Boots with the console on pipes: writes `input` to the guest, collects
/// everything until QEMU exits or `timeout` passes (then stops it), and
/// hands each complete output line to `on_line` as it arrives.
pub fn boot_capture(m: &Machine, input: &[u8], timeout: Duration, on_line: &mut dyn FnMut(&str)) -> Result<Capture> {
    let start = Instant::now();
    let mut child = Command::new(QEMU)
        .args(qemu_args(m, Console::Stdio, false))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {QEMU}: {e}"))?;
    let deadline = start + timeout;
    let chunks = spawn_reader(child.stdout.take().expect("stdout is piped"));
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    let (stderr_tx, stderr_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf);
        let _ = stderr_tx.send(buf);
    });
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    // A thread, because a guest that never reads would block the write.
    // The pipe stays open until QEMU is gone, so the guest never sees EOF.
    let (stdin_tx, stdin_rx) = mpsc::channel();
    let (cue_tx, cue_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        // A failed write means QEMU has exited: nothing more to say.
        for (i, part) in input.split(|&b| b == 0).enumerate() {
            if i > 0 && cue_rx.recv().is_err() {
                break;
            }
            if stdin.write_all(part).and_then(|()| stdin.flush()).is_err() {
                break;
            }
        }
        let _ = stdin_tx.send(stdin);
    });
    let mut cues = Watch::new(CUE);

    let mut output = Vec::new();
    let mut pending = Vec::new();
    let mut watch = Some(Watch::new(PROMPT));
    let mut prompt_at = None;
    let mut timed_out = false;
    loop {
        match chunks.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(chunk) => {
                if watch.as_mut().is_some_and(|w| w.feed(&chunk)) {
                    watch = None;
                    prompt_at = Some(start.elapsed());
                }
                for _ in 0..cues.count(&chunk) {
                    let _ = cue_tx.send(());
                }
                output.extend_from_slice(&chunk);
                pending.extend_from_slice(&chunk);
                emit_lines(&mut pending, on_line);
            }
            Err(RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let (status, late) = if timed_out {
        (stop(&mut child), true)
    } else {
        match wait_until(&mut child, Some(deadline)) {
            Ok((status, late)) => (Ok(status), late),
            Err(e) => (Err(e), false),
        }
    };
    let status = status_or_kill(&mut child, status)?;
    // What a stopped QEMU wrote last is what explains the hang.
    while let Ok(chunk) = chunks.recv_timeout(Duration::from_millis(500)) {
        output.extend_from_slice(&chunk);
        pending.extend_from_slice(&chunk);
        emit_lines(&mut pending, on_line);
    }
    if !pending.is_empty() {
        pending.push(b'\n');
        emit_lines(&mut pending, on_line);
    }
    // Closes stdin now that QEMU is gone (a write still stuck is left to
    // fail on its own).
    drop(stdin_rx.recv_timeout(Duration::from_secs(1)));
    // Bounded: anything QEMU left behind could hold the pipe open.
    let stderr = stderr_rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
    Ok(Capture {
        output: String::from_utf8_lossy(&output).replace('\r', ""),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        status,
        timed_out: timed_out || late,
        prompt_at,
    })
}

/// On a failed wait, makes sure the child is gone before reporting.
fn status_or_kill(child: &mut Child, status: io::Result<ExitStatus>) -> Result<ExitStatus> {
    status.map_err(|e| {
        let _ = child.kill();
        let _ = child.wait();
        format!("waiting for QEMU: {e}").into()
    })
}

/// Calls `on_line` for each complete line in `pending` and keeps the rest.
fn emit_lines(pending: &mut Vec<u8>, on_line: &mut dyn FnMut(&str)) {
    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        let text = String::from_utf8_lossy(&line[..end]);
        on_line(text.trim_end_matches('\r'));
    }
}

/// Forwards a pipe's bytes to a channel from a thread, so the reader can
/// wait with a timeout; the channel closes at end of file.
fn spawn_reader<R: Read + Send + 'static>(mut pipe: R) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    rx
}

/// Waits for the child; past the deadline, stops it. The flag says whether
/// the deadline was hit.
fn wait_until(child: &mut Child, deadline: Option<Instant>) -> io::Result<(ExitStatus, bool)> {
    let Some(deadline) = deadline else { return Ok((child.wait()?, false)) };
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        if Instant::now() >= deadline {
            return Ok((stop(child)?, true));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

mod sys {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe extern "C" {
        pub safe fn kill(pid: i32, sig: i32) -> i32;
    }
    pub const SIGTERM: i32 = 15;
}

/// Stops and reaps the child: SIGTERM first, so QEMU restores a terminal it
/// put in raw mode, then SIGKILL if it lingers.
pub fn stop(child: &mut Child) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    // Not reaped yet, so the pid is still this child's. A pid that does not
    // fit, or 0, would signal a whole group: skip straight to SIGKILL.
    if let Ok(pid) = i32::try_from(child.id())
        && pid > 0
    {
        sys::kill(pid, sys::SIGTERM);
        let grace = Instant::now() + Duration::from_secs(2);
        while Instant::now() < grace {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    child.kill()?;
    child.wait()
}

/// Finds a marker in a byte stream that arrives in pieces.
#[derive(Debug)]
pub struct Watch {
    needle: &'static [u8],
    tail: Vec<u8>,
}

impl Watch {
    pub fn new(needle: &'static str) -> Watch {
        assert!(!needle.is_empty());
        Watch { needle: needle.as_bytes(), tail: Vec::new() }
    }

    /// Feeds the next piece; true once the marker has been seen.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(chunk);
        if window.windows(self.needle.len()).any(|w| w == self.needle) {
            return true;
        }
        let keep = window.len().min(self.needle.len() - 1);
        self.tail = window[window.len() - keep..].to_vec();
        false
    }

    /// Feeds the next piece; how many times the marker ends in it.
    pub fn count(&mut self, chunk: &[u8]) -> usize {
        let mut n = 0;
        for &b in chunk {
            self.tail.push(b);
            if self.tail.ends_with(self.needle) {
                n += 1;
                self.tail.clear();
            } else if self.tail.len() >= self.needle.len() {
                self.tail.remove(0);
            }
        }
        n
    }
}

pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn machine() -> Machine {
        Machine::tested(Path::new("/k"), Some(Path::new("/i.cpio")), "test=heap x")
    }

    #[test]
    fn default_command_line() {
        let args = qemu_args(&machine(), Console::Stdio, false).join(" ");
        assert_eq!(
            args,
            "-M q35 -cpu max -accel tcg -m 256M -smp 1 -kernel /k -initrd /i.cpio -append test=heap x -display none \
             -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 -serial stdio -monitor none"
        );
        let bare = Machine { initrd: None, ..machine() };
        assert!(!qemu_args(&bare, Console::Stdio, false).contains(&"-initrd".to_string()));
        // The command line is one argument, spaces and all.
        assert!(qemu_args(&machine(), Console::Stdio, false).contains(&"test=heap x".to_string()));
    }

    #[test]
    fn terminal_console_kvm_and_gdb() {
        let m = Machine { accel: Accel::Kvm, smp: 2, mem_mib: 1024, ..machine() };
        let args = qemu_args(&m, Console::Terminal, true).join(" ");
        assert!(args.contains("-cpu host,-arch-capabilities -accel kvm -m 1024M -smp 2"));
        assert!(
            args.contains("-chardev stdio,id=con,mux=on,signal=off -serial chardev:con -mon chardev=con,mode=readline")
        );
        assert!(!args.contains("-monitor none"));
        assert!(args.ends_with("-s -S"));
    }

    #[test]
    fn watch_finds_a_split_prompt() {
        let mut w = Watch::new("ksh> ");
        assert!(!w.feed(b"booting...\nks"));
        assert!(!w.feed(b"h"));
        assert!(w.feed(b"> "));
        let mut w = Watch::new("ksh> ");
        assert!(!w.feed(b"ksh>"));
        assert!(!w.feed(b"\n ksh"));
        assert!(w.feed(b">  "));
        assert!(Watch::new("ksh> ").feed(b"x ksh> y"));
    }

    #[test]
    fn watch_counts_each_cue_once_across_pieces() {
        let mut w = Watch::new(CUE);
        assert_eq!(w.count(b"echo x @cu"), 0);
        assert_eq!(w.count(b"e@ and @cue@@cue@"), 3);
        assert_eq!(w.count(b"cue@"), 0);
    }

    #[test]
    fn lines_come_out_whole() {
        let mut seen = Vec::new();
        let mut pending = b"test a ... ok\r\ntest b".to_vec();
        emit_lines(&mut pending, &mut |l| seen.push(l.to_string()));
        assert_eq!(seen, ["test a ... ok"]);
        pending.extend_from_slice(b" ... FAILED\n\n");
        emit_lines(&mut pending, &mut |l| seen.push(l.to_string()));
        assert_eq!(seen, ["test a ... ok", "test b ... FAILED", ""]);
        assert!(pending.is_empty());
    }

    #[test]
    fn tail_of_output() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 30), "a");
        assert_eq!(last_lines("", 30), "");
    }

    #[test]
    fn exit_descriptions() {
        assert_eq!(describe_status(ExitStatus::from_raw(33 << 8)), "qemu exited with status 33");
        assert_eq!(describe_status(ExitStatus::from_raw(9)), "qemu was killed by signal 9");
    }
}
