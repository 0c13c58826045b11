//! The `cargo xtask` command line, parsed by hand: the grammar is small and
//! this keeps the tool free of dependencies.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build [--nk wp|native]      build the kernel (release) and the user programs, pack
                              target/initrd.cpio, and print the kernel ELF's path
  run [options] [--] [WORD...]
                              build, then boot the kernel in QEMU on this terminal;
                              the WORDs form the kernel command line
  test [FILTER]               every test: host tests, user programs and initrd, kernel
                              build, in-kernel tests, QEMU scenarios; the last line
                              is \"N passed, M failed\".
                              FILTER keeps only the tests whose name contains it
  gdb [options] [--] [WORD...]
                              like run, but QEMU waits for GDB on localhost:1234;
                              writes target/gdb-init for `gdb -x target/gdb-init`
  bench [--quick] [--accel tcg|kvm] [--boots N]
                              the native kernel against the protected (wp) kernel:
                              boots each N times (5; --quick: 2, short samples),
                              interleaved, running /bin/bench and `nk bench`; prints
                              the table and writes target/bench/report.{md,json,svg}
  scan [--sites] [ELF]        decode every byte offset of the kernel (or ELF) and
                              fail on a protected instruction outside the NK (I7),
                              or on an NK-text site that is unnamed or unchecked;
                              --sites prints the NK site table of docs/scanner.md;
                              build, run, test and gdb scan before they boot
  scan --doc                  build the wp kernel, scan it, and rewrite the report in
                              docs/scanner.md with the result
  layout-bench [--seeds N] [--scale N]
                              relinks only: the clean-link rate of N shuffled function
                              orders (40), and a kernel with N times today's outer text
                              (10, generated filler) converged from no layout decisions;
                              prints hits, relinks and seconds
  fuzz [--calls N] [--seed S] [--nk wp|native]
                              boot and run /bin/fuzz for N system calls (5000000)
                              from seed S (1), then check that the kernel survived,
                              the audit is clean and every frame came back
  help                        this text

options for run and gdb:
  --nk wp|native              the nested kernel's backend: wp (CR0.WP, default) or
                              native (no protection: the baseline and attack control)
  --accel tcg|kvm             tcg (default, -cpu max) is the tested path;
                              kvm (-cpu host) is opt-in
  --smp N                     number of CPUs (default 1)
  --mem SIZE                  guest RAM: 512M, 1G, ... (default 256M)
  --boot-time                 run only: print the time from QEMU start to the shell prompt
  --timeout SECS              stop QEMU after SECS seconds (default: never)
  --userland busybox|bash|sash
                              run only: boot into Debian's static busybox sh (with a link
                              per applet), bash or sash, fetched with apt-get download and
                              packed into the initrd; exit it to reach the kernel shell
  --add HOST_PATH[:GUEST_PATH]
                              also pack the host file HOST_PATH into the initrd, as
                              GUEST_PATH (default bin/<file name>; one ending in /
                              is a directory); repeatable; may replace bin/init

Every boot gets target/initrd.cpio (-initrd): the user programs as bin/hello
and bin/init, built for x86_64-unknown-linux-musl from user/.

`printf 'help\\npoweroff\\n' | cargo xtask run` exits 0: the console reads stdin.
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    /// The name for people, as in the boot-time report.
    pub fn label(self) -> &'static str {
        match self {
            Accel::Tcg => "TCG",
            Accel::Kvm => "KVM",
        }
    }
}

/// How to boot the kernel, for `run` and `gdb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// The nested kernel's protection backend.
    pub nk: crate::build::Backend,
    pub accel: Accel,
    pub smp: u32,
    pub mem_mib: u64,
    pub boot_time: bool,
    pub timeout: Option<Duration>,
    /// The kernel command line, the positional words joined by spaces.
    pub cmdline: String,
    /// Extra files for the initrd (`--add`), in the order given.
    pub add: Vec<AddFile>,
    /// A Debian userland to boot into (`--userland`).
    pub userland: Option<crate::userland::Userland>,
}

/// A host file to pack into the initrd (`--add HOST_PATH[:GUEST_PATH]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddFile {
    pub host: PathBuf,
    /// Where it appears in the initrd: a relative path, no `.` or `..`.
    pub guest: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            nk: crate::build::Backend::Wp,
            accel: Accel::Tcg,
            smp: 1,
            mem_mib: 256,
            boot_time: false,
            timeout: None,
            cmdline: String::new(),
            add: Vec::new(),
            userland: None,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Build {
        nk: crate::build::Backend,
    },
    Run(RunOptions),
    Gdb(RunOptions),
    Test {
        filter: Option<String>,
    },
    Bench(crate::bench::BenchOptions),
    /// Scan an ELF (the kernel by default) for protected instructions.
    Scan {
        path: Option<String>,
        /// Print only the NK site table, as docs/scanner.md holds it.
        sites: bool,
    },
    /// Rewrite the report in docs/scanner.md from a scan of the wp kernel.
    ScanDoc,
    /// How the layout scales (xtask/src/layout_bench.rs).
    LayoutBench(crate::layout_bench::BenchOptions),
    /// A longer run of the system-call fuzzer (xtask/src/fuzz.rs).
    Fuzz(FuzzOptions),
    Help,
}

/// `cargo xtask fuzz`: how long, from which seed, on which backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzOptions {
    pub calls: u64,
    pub seed: u64,
    pub nk: crate::build::Backend,
}

fn parse_fuzz(args: &[String]) -> Result<FuzzOptions, UsageError> {
    let mut opts = FuzzOptions { calls: 5_000_000, seed: 1, nk: crate::build::Backend::Wp };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or_else(|| UsageError(format!("{a} needs a value")))?;
        match a.as_str() {
            "--calls" | "--seed" => {
                let n: u64 = v.parse().map_err(|_| UsageError(format!("{a} takes a number, got '{v}'")))?;
                if a == "--calls" {
                    opts.calls = n;
                } else {
                    opts.seed = n;
                }
            }
            "--nk" => {
                opts.nk = match v.as_str() {
                    "wp" => crate::build::Backend::Wp,
                    "native" => crate::build::Backend::Native,
                    _ => return usage_err(format!("--nk takes wp or native, got '{v}'")),
                }
            }
            _ => return usage_err(format!("unknown option '{a}' for fuzz")),
        }
    }
    Ok(opts)
}

/// A command line that does not parse; the caller shows it with the usage.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn usage_err<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let Some((cmd, rest)) = args.split_first() else {
        return usage_err("no command given");
    };
    match cmd.as_str() {
        "build" => match rest {
            [] => Ok(Command::Build { nk: crate::build::Backend::Wp }),
            [flag, v] if flag == "--nk" && v == "wp" => Ok(Command::Build { nk: crate::build::Backend::Wp }),
            [flag, v] if flag == "--nk" && v == "native" => Ok(Command::Build { nk: crate::build::Backend::Native }),
            _ => usage_err(format!("build takes only --nk wp|native, got '{}'", rest.join(" "))),
        },
        "run" => parse_run(rest).map(Command::Run),
        "gdb" => {
            let opts = parse_run(rest)?;
            if opts.boot_time {
                return usage_err("--boot-time applies to run only (under gdb, QEMU waits for the debugger)");
            }
            Ok(Command::Gdb(opts))
        }
        "test" => parse_test(rest),
        "bench" => parse_bench(rest).map(Command::Bench),
        "scan" => {
            let sites = rest.iter().any(|a| a == "--sites");
            if rest.len() == 1 && rest[0] == "--doc" {
                return Ok(Command::ScanDoc);
            }
            let paths: Vec<&String> = rest.iter().filter(|a| *a != "--sites").collect();
            match paths.as_slice() {
                [] => Ok(Command::Scan { path: None, sites }),
                [path] => Ok(Command::Scan { path: Some((*path).clone()), sites }),
                _ => usage_err("scan takes at most one ELF path"),
            }
        }
        "layout-bench" => parse_layout_bench(rest).map(Command::LayoutBench),
        "fuzz" => parse_fuzz(rest).map(Command::Fuzz),
        "help" | "-h" | "--help" => Ok(Command::Help),
        other => usage_err(format!("unknown command '{other}'")),
    }
}

fn parse_layout_bench(args: &[String]) -> Result<crate::layout_bench::BenchOptions, UsageError> {
    let mut opts = crate::layout_bench::BenchOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let slot = match a.as_str() {
            "--seeds" => &mut opts.seeds,
            "--scale" => &mut opts.scale,
            other => return usage_err(format!("unknown option '{other}' for layout-bench")),
        };
        match it.next().and_then(|v| v.parse().ok()) {
            Some(v) => *slot = v,
            None => return usage_err(format!("{a} takes a number")),
        }
    }
    Ok(opts)
}

fn parse_test(args: &[String]) -> Result<Command, UsageError> {
    let mut filter = None;
    for a in args {
        if a.starts_with('-') {
            return usage_err(format!("unknown option '{a}' for test"));
        }
        if filter.is_some() {
            return usage_err("test takes at most one FILTER");
        }
        // The filter travels on the kernel command line as `test=FILTER`,
        // where a space would start another word.
        if a.is_empty() || a.chars().any(char::is_whitespace) {
            return usage_err(format!("FILTER must be one non-empty word, got '{a}'"));
        }
        filter = Some(a.clone());
    }
    Ok(Command::Test { filter })
}

fn parse_bench(args: &[String]) -> Result<crate::bench::BenchOptions, UsageError> {
    let mut opts = crate::bench::BenchOptions::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || -> Result<String, UsageError> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().cloned().ok_or_else(|| UsageError(format!("{name} needs a value"))),
            }
        };
        match name {
            "--quick" if inline.is_none() => opts.quick = true,
            "--accel" => {
                opts.accel = match value()?.as_str() {
                    "tcg" => Accel::Tcg,
                    "kvm" => Accel::Kvm,
                    v => return usage_err(format!("--accel takes tcg or kvm, got '{v}'")),
                }
            }
            "--boots" => {
                let v = value()?;
                opts.boots = match v.parse::<usize>() {
                    Ok(n) if (1..=100).contains(&n) => Some(n),
                    _ => return usage_err(format!("--boots takes a number from 1 to 100, got '{v}'")),
                }
            }
            _ => return usage_err(format!("unknown option '{arg}' for bench")),
        }
    }
    Ok(opts)
}

fn parse_run(args: &[String]) -> Result<RunOptions, UsageError> {
    let mut opts = RunOptions::default();
    let mut words: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            words.extend(it.by_ref().map(String::as_str));
            break;
        }
        if !arg.starts_with('-') {
            words.push(arg);
            continue;
        }
        // Both `--smp 2` and `--smp=2`.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || -> Result<String, UsageError> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().cloned().ok_or_else(|| UsageError(format!("{name} needs a value"))),
            }
        };
        match name {
            "--nk" => {
                opts.nk = match value()?.as_str() {
                    "wp" => crate::build::Backend::Wp,
                    "native" => crate::build::Backend::Native,
                    v => return usage_err(format!("--nk takes wp or native, got '{v}'")),
                }
            }
            "--accel" => {
                opts.accel = match value()?.as_str() {
                    "tcg" => Accel::Tcg,
                    "kvm" => Accel::Kvm,
                    v => return usage_err(format!("--accel takes tcg or kvm, got '{v}'")),
                }
            }
            "--smp" => {
                let v = value()?;
                opts.smp = match v.parse::<u32>() {
                    Ok(n) if n >= 1 => n,
                    _ => return usage_err(format!("--smp takes a number of CPUs (1 or more), got '{v}'")),
                }
            }
            "--mem" => {
                let v = value()?;
                opts.mem_mib = parse_size_mib(&v).map_err(|e| UsageError(format!("--mem: {e}")))?;
            }
            "--timeout" => {
                let v = value()?;
                opts.timeout = match v.parse::<u64>() {
                    Ok(s) if s > 0 => Some(Duration::from_secs(s)),
                    _ => return usage_err(format!("--timeout takes whole seconds (1 or more), got '{v}'")),
                }
            }
            "--add" => {
                let file = parse_add(&value()?).map_err(|e| UsageError(format!("--add: {e}")))?;
                if opts.add.iter().any(|a| a.guest == file.guest) {
                    return usage_err(format!("--add: {} is given twice", file.guest));
                }
                opts.add.push(file);
            }
            "--userland" => {
                let v = value()?;
                opts.userland = match crate::userland::Userland::parse(&v) {
                    Some(u) => Some(u),
                    None => return usage_err(format!("--userland takes busybox, bash or sash, got '{v}'")),
                }
            }
            "--boot-time" if inline.is_none() => opts.boot_time = true,
            _ => return usage_err(format!("unknown option '{arg}'")),
        }
    }
    opts.cmdline = words.join(" ");
    Ok(opts)
}

/// `HOST_PATH[:GUEST_PATH]`, split at the last `:` (so a host path may hold
/// one when a guest path follows). Without a guest path the file lands in
/// `bin/`; a guest path ending in `/` is a directory for the file's name.
pub fn parse_add(s: &str) -> Result<AddFile, String> {
    let (host, guest) = match s.rsplit_once(':') {
        Some((host, guest)) => (host, Some(guest)),
        None => (s, None),
    };
    if host.is_empty() {
        return Err(format!("'{s}' has no host path"));
    }
    let file_name = || -> Result<&str, String> {
        Path::new(host)
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("'{host}' names no file; say where it goes with {host}:GUEST_PATH"))
    };
    let guest = match guest {
        None => format!("bin/{}", file_name()?),
        Some(g) if g.ends_with('/') => format!("{g}{}", file_name()?),
        Some(g) => g.to_string(),
    };
    Ok(AddFile { host: PathBuf::from(host), guest: guest_path(&guest)? })
}

/// A path inside the initrd: relative (a leading `/` is dropped), with no
/// empty, `.` or `..` component, and not the cpio trailer's name.
fn guest_path(path: &str) -> Result<String, String> {
    let relative = path.trim_start_matches('/');
    let bad = relative.is_empty()
        || relative.contains('\0')
        || relative == klib::cpio::TRAILER
        || relative.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(format!("'{path}' is not a file path for the initrd (such as bin/tool)"));
    }
    Ok(relative.to_string())
}

/// A RAM size as QEMU's `-m` takes it, in MiB: a bare number is MiB, and
/// `M`/`MiB`/`G`/`GiB` suffixes (any case) scale it.
pub fn parse_size_mib(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a size such as 512M or 1G"))?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mib" => 1,
        "g" | "gb" | "gib" => 1024,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use M or G)")),
    };
    match n.checked_mul(scale) {
        Some(0) => Err(format!("'{s}': the size must be more than zero")),
        Some(mib) => Ok(mib),
        None => Err(format!("'{s}' is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run_opts(s: &str) -> RunOptions {
        match parse(&args(s)) {
            Ok(Command::Run(o)) => o,
            other => panic!("{s:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_mib("512M"), Ok(512));
        assert_eq!(parse_size_mib("512"), Ok(512));
        assert_eq!(parse_size_mib("1G"), Ok(1024));
        assert_eq!(parse_size_mib("2g"), Ok(2048));
        assert_eq!(parse_size_mib("3GiB"), Ok(3072));
        assert_eq!(parse_size_mib("64MiB"), Ok(64));
        assert!(parse_size_mib("0M").is_err());
        assert!(parse_size_mib("").is_err());
        assert!(parse_size_mib("M").is_err());
        assert!(parse_size_mib("1.5G").is_err());
        assert!(parse_size_mib("12K").is_err());
        assert!(parse_size_mib("-1G").is_err());
        assert!(parse_size_mib("99999999999999999999G").is_err());
        assert!(parse_size_mib("18446744073709551615G").is_err());
    }

    #[test]
    fn run_defaults() {
        assert_eq!(run_opts("run"), RunOptions::default());
        let d = RunOptions::default();
        assert_eq!((d.accel, d.smp, d.mem_mib, d.boot_time, d.timeout), (Accel::Tcg, 1, 256, false, None));
    }

    #[test]
    fn run_options_both_spellings() {
        let o = run_opts("run --accel kvm --smp 2 --mem 1G --boot-time --timeout 30");
        assert_eq!(o.accel, Accel::Kvm);
        assert_eq!(o.smp, 2);
        assert_eq!(o.mem_mib, 1024);
        assert!(o.boot_time);
        assert_eq!(o.timeout, Some(Duration::from_secs(30)));
        let o = run_opts("run --accel=tcg --smp=4 --mem=512M --timeout=5");
        assert_eq!((o.accel, o.smp, o.mem_mib, o.timeout), (Accel::Tcg, 4, 512, Some(Duration::from_secs(5))));
    }

    #[test]
    fn run_words_form_the_cmdline() {
        assert_eq!(run_opts("run test=heap").cmdline, "test=heap");
        assert_eq!(run_opts("run --smp 2 a b -- --mem c").cmdline, "a b --mem c");
        let o = run_opts("run -- test --smp 3");
        assert_eq!((o.cmdline.as_str(), o.smp), ("test --smp 3", 1));
        assert_eq!(run_opts("run --").cmdline, "");
    }

    #[test]
    fn run_errors() {
        for bad in [
            "run --smp",
            "run --smp 0",
            "run --smp two",
            "run --accel hvf",
            "run --mem lots",
            "run --timeout 0",
            "run --timeout 1.5",
            "run --frobnicate",
            "run -x",
            "run --boot-time=yes",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn commands() {
        assert_eq!(parse(&args("build")), Ok(Command::Build { nk: crate::build::Backend::Wp }));
        assert_eq!(parse(&args("build --nk native")), Ok(Command::Build { nk: crate::build::Backend::Native }));
        assert!(parse(&args("build --release")).is_err());
        assert_eq!(parse(&args("test")), Ok(Command::Test { filter: None }));
        assert_eq!(parse(&args("test heap")), Ok(Command::Test { filter: Some("heap".into()) }));
        assert!(parse(&args("test a b")).is_err());
        assert!(parse(&args("test --verbose")).is_err());
        assert!(parse(&["test".to_owned(), "a b".to_owned()]).is_err());
        assert_eq!(parse(&args("help")), Ok(Command::Help));
        assert_eq!(parse(&args("--help")), Ok(Command::Help));
        assert!(parse(&args("")).is_err());
        assert!(parse(&args("frobnicate")).is_err());
    }

    #[test]
    fn bench_options() {
        use crate::bench::BenchOptions;
        assert_eq!(parse(&args("bench")), Ok(Command::Bench(BenchOptions::default())));
        match parse(&args("bench --quick --accel=kvm --boots 3")) {
            Ok(Command::Bench(o)) => assert_eq!((o.quick, o.accel, o.boots), (true, Accel::Kvm, Some(3))),
            other => panic!("{other:?}"),
        }
        for bad in ["bench --boots 0", "bench --boots", "bench --quick=1", "bench --accel hvf", "bench extra"] {
            assert!(parse(&args(bad)).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn gdb_takes_run_options_but_not_boot_time() {
        match parse(&args("gdb --smp 2 -- test")) {
            Ok(Command::Gdb(o)) => assert_eq!((o.smp, o.cmdline.as_str()), (2, "test")),
            other => panic!("{other:?}"),
        }
        assert!(parse(&args("gdb --boot-time")).is_err());
    }

    #[test]
    fn add_paths() {
        let add = |s: &str| parse_add(s).map(|a| (a.host.display().to_string(), a.guest));
        let ok = |h: &str, g: &str| Ok((h.to_string(), g.to_string()));
        assert_eq!(add("target/t/busybox"), ok("target/t/busybox", "bin/busybox"));
        assert_eq!(add("/tmp/x:sbin/y"), ok("/tmp/x", "sbin/y"));
        assert_eq!(add("/tmp/x:/etc/x.conf"), ok("/tmp/x", "etc/x.conf"));
        assert_eq!(add("x:usr/bin/"), ok("x", "usr/bin/x"));
        assert_eq!(add("a:b:c"), ok("a:b", "c"));
        assert_eq!(add("d/x:/"), ok("d/x", "x"));
        assert_eq!(add("prog:bin/init"), ok("prog", "bin/init"));
        for bad in [
            "",
            ":bin/x",
            "x:",
            "x:a//b",
            "x:a/./b",
            "x:../b",
            "x:a/..",
            "x:.",
            "/",
            "..",
            "dir/..:usr/",
            "x:TRAILER!!!",
        ] {
            assert!(parse_add(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn run_add_is_repeatable_in_both_spellings() {
        let o = run_opts("run --add a/hello2 --add=b:sbin/x --smp 2 test");
        assert_eq!(
            o.add,
            [
                AddFile { host: "a/hello2".into(), guest: "bin/hello2".into() },
                AddFile { host: "b".into(), guest: "sbin/x".into() },
            ]
        );
        assert_eq!((o.smp, o.cmdline.as_str()), (2, "test"));
        assert!(run_opts("run").add.is_empty());
        for bad in ["run --add", "run --add x:..", "run --add a/x --add b/x", "run --add a:bin/y --add=b:/bin/y"] {
            assert!(parse(&args(bad)).is_err(), "{bad} should not parse");
        }
        match parse(&args("gdb --add x")) {
            Ok(Command::Gdb(o)) => assert_eq!(o.add[0].guest, "bin/x"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn usage_lists_every_command_and_option() {
        for word in [
            "build",
            "run",
            "test",
            "bench",
            "--quick",
            "--boots",
            "gdb",
            "--accel",
            "--smp",
            "--mem",
            "--boot-time",
            "--timeout",
            "--add",
        ] {
            assert!(USAGE.contains(word), "usage lacks {word}");
        }
    }
}
