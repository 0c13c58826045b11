//! `cargo xtask test`: host tests, the user programs and the initrd, the
//! kernel build, the in-kernel tests, the QEMU scenarios and a quick
//! benchmark run, counted into one final `N passed, M failed` line.
//! Anything that cannot run counts as a failure, so the count never hides it.

use crate::build::{self, Backend, BuildOptions};
use crate::initrd;
use crate::qemu::{self, EXIT_SUCCESS, Machine};
use crate::scenarios;
use crate::setup;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const HOST_PACKAGES: &[&str] = &["nk-model", "klib", "xtask"];
const KTEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The running count, and the names of what failed.
#[derive(Debug, Default)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub failures: Vec<String>,
}

impl Tally {
    pub fn pass(&mut self) {
        self.passed += 1;
    }

    pub fn fail(&mut self, name: impl Into<String>) {
        self.failed += 1;
        self.failures.push(name.into());
    }

    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

pub fn header(title: &str) {
    println!("\n==> {title}");
}

/// Runs every stage and returns the exit status.
pub fn run(filter: Option<&str>) -> u8 {
    let mut tally = Tally::default();
    lint_tests(filter, &mut tally);
    if let Err(e) = setup::ensure_linux_header() {
        // The klib host test that needs it fails and says why.
        println!("setup: {e}");
    }
    host_tests(filter, &mut tally);
    let initrd = initrd_stage(filter, &mut tally);
    let initrd = initrd.as_deref();

    header("kernel build (cargo build --release -p kernel --target x86_64-unknown-none)");
    match build::build(&BuildOptions::default()) {
        Ok(built) => {
            layout_locked(&built, "wp", &mut tally);
            let kernel = built.kernel;
            println!("built {}", kernel.display());
            match setup::ensure_qemu() {
                Ok(()) => {
                    scan_tests(&kernel, &mut tally);
                    kernel_tests(&kernel, initrd, filter, &mut tally);
                    scenarios::run_all(&kernel, initrd, filter, &mut tally);
                    crate::attacks::run(Backend::Wp, &kernel, initrd, filter, &mut tally);
                    let native = native_stage(initrd, filter, &mut tally);
                    userland_stage(&kernel, native.as_deref(), filter, &mut tally);
                    if let Some(native) = native {
                        bench_stage(&native, &kernel, initrd, filter, &mut tally);
                    }
                }
                Err(e) => {
                    println!("{e}\nskipping the in-kernel tests and the QEMU scenarios");
                    tally.fail("setup: QEMU");
                }
            }
        }
        Err(e) => {
            println!("{e}\nskipping the in-kernel tests and the QEMU scenarios");
            tally.fail("build: kernel");
        }
    }

    println!();
    if !tally.failures.is_empty() {
        println!("failures:");
        for name in &tally.failures {
            println!("    {name}");
        }
    }
    println!("{}", tally.summary());
    if tally.failed > 0 { 1 } else { 0 }
}

/// The committed layout (`kernel/layout/<backend>.txt`) must give a clean
/// image with no relink, so that a fresh clone builds exactly this image.
/// When it drifted (the code changed and a displacement now forms a
/// protected instruction), the build already converged and wrote the new
/// decisions to the file, and the run goes on with that image; this test
/// fails so the change is committed, as `cargo --locked` fails on a stale
/// Cargo.lock. A silent relink in CI would hide that the committed tree no
/// longer builds the image it names.
fn layout_locked(built: &build::Built, backend: &str, tally: &mut Tally) {
    if built.retries == 0 {
        println!("layout {backend} ... ok: the committed layout links clean ({:.1} s)", built.link_seconds);
        tally.pass();
    } else {
        println!(
            "layout {backend} ... FAILED: the committed layout needed {} relink(s); {} is updated: commit it",
            built.retries,
            built.layout_file.display()
        );
        tally.fail(format!("layout {backend}: committed layout is stale"));
    }
}

/// The unprotected build: it must build, pass the scan, and let every
/// attack through (the control that shows each attack is real). Returns
/// the kernel for the benchmark stage.
fn native_stage(initrd: Option<&Path>, filter: Option<&str>, tally: &mut Tally) -> Option<PathBuf> {
    header("kernel build, native backend (--features nk/native)");
    match build::build(&BuildOptions { backend: Backend::Native, ..Default::default() }) {
        Ok(built) => {
            layout_locked(&built, "native", tally);
            let kernel = built.kernel;
            println!("built {}", kernel.display());
            crate::attacks::run(Backend::Native, &kernel, initrd, filter, tally);
            crate::scenarios::run_user(&kernel, initrd, "user-native", filter, tally);
            crate::scenarios::run_hostile(&kernel, initrd, "hostile-native", filter, tally);
            crate::scenarios::run_monitor_native(&kernel, initrd, filter, tally);
            crate::scenarios::run_modules_native(&kernel, initrd, filter, tally);
            crate::scenarios::run_fuzz(&kernel, initrd, "fuzz-native", filter, tally);
            Some(kernel)
        }
        Err(e) => {
            println!("{e}");
            tally.fail("build: native kernel");
            None
        }
    }
}

/// Debian's busybox-static and bash-static, fetched through apt, run the
/// workload (`scenarios::WORKLOAD`) on both kernels.
fn userland_stage(wp: &Path, native: Option<&Path>, filter: Option<&str>, tally: &mut Tally) {
    use crate::userland::Userland;
    for (u, groups) in [
        (Userland::Busybox, ["busybox", "busybox-native"]),
        (Userland::Bash, ["bash", "bash-native"]),
        (Userland::Sash, ["sash", "sash-native"]),
    ] {
        if filter.is_some_and(|f| !groups.iter().any(|g| f.starts_with(g) || g.contains(f))) {
            continue;
        }
        header(&format!("userland: Debian's {} (apt-get download)", u.package()));
        let path = setup::target_dir().join(format!("initrd-{}.cpio", u.package()));
        match u.files().and_then(|files| initrd::build_with(&[], files, &path)) {
            Ok(initrd) => {
                crate::scenarios::run_userland(wp, &initrd, groups[0], filter, tally);
                if let Some(native) = native {
                    crate::scenarios::run_userland(native, &initrd, groups[1], filter, tally);
                }
            }
            Err(e) => {
                println!("{e}");
                tally.fail(format!("userland: {}", u.package()));
            }
        }
    }
}

/// `bench --quick` on the two kernels just built: it must run every boot
/// to the end and write a report whose JSON holds every row, each with a
/// positive figure or the reason it has none (`bench::check_json`), plus
/// the Markdown report and the SVG chart. Timing is never judged here.
fn bench_stage(native: &Path, wp: &Path, initrd: Option<&Path>, filter: Option<&str>, tally: &mut Tally) {
    const CHECKS: &[&str] = &["bench/quick-run", "bench/report-json", "bench/report-md", "bench/chart-svg"];
    if filter.is_some_and(|f| !CHECKS.iter().any(|c| c.contains(f))) {
        return;
    }
    header("benchmark, quick (cargo xtask bench --quick, into target/bench-test/)");
    let mut check = |name: &str, r: Result<String, String>| match r {
        Ok(what) => {
            println!("{name} ... ok: {what}");
            tally.pass();
        }
        Err(why) => {
            println!("{name} ... FAILED: {why}");
            tally.fail(name);
        }
    };
    let Some(initrd) = initrd else {
        check("bench/quick-run", Err("no initrd, so no /bin/bench".into()));
        return;
    };
    let out = setup::target_dir().join("bench-test");
    let _ = std::fs::remove_dir_all(&out);
    let opts = crate::bench::BenchOptions { quick: true, ..Default::default() };
    let kernels = [(Backend::Native, native.to_path_buf()), (Backend::Wp, wp.to_path_buf())];
    let report = crate::bench::run(&opts, &kernels, initrd, &out).map_err(|e| e.to_string());
    check(
        "bench/quick-run",
        report.and_then(|r| match r.meta.incomplete_boots {
            0 => Ok(format!(
                "{} boots per backend, {} run again after stopping short",
                r.meta.boots_per_backend, r.meta.retried_boots
            )),
            n => Err(format!("{n} boot(s) did not run to the end")),
        }),
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).map_err(|e| format!("{name}: {e}"));
    check("bench/report-json", read("report.json").and_then(|t| crate::bench::check_json(&t)));
    check(
        "bench/report-md",
        read("report.md").and_then(|t| match t.lines().filter(|l| l.starts_with("| ")).count() {
            n if n > crate::bench::row_count() => Ok(format!("{n} table lines")),
            n => Err(format!("only {n} table lines")),
        }),
    );
    check(
        "bench/chart-svg",
        read("report.svg").and_then(|t| {
            if t.starts_with("<svg ") && t.trim_end().ends_with("</svg>") {
                Ok(format!("{} bytes", t.len()))
            } else {
                Err("not an SVG document".into())
            }
        }),
    );
}

/// The image scan (I7): the built kernel passes, and a copy with a
/// `mov cr0` planted in outer code fails.
fn scan_tests(kernel: &Path, tally: &mut Tally) {
    header("image scan (invariant I7)");
    let mut check = |name: &str, r: Result<(), String>| match r {
        Ok(()) => {
            println!("scan {name} ... ok");
            tally.pass();
        }
        Err(why) => {
            println!("scan {name} ... FAILED: {why}");
            tally.fail(format!("scan {name}"));
        }
    };
    let clean = crate::scan::scan_file(kernel).map_err(|e| e.to_string());
    check(
        "clean-image",
        clean.as_ref().map_err(Clone::clone).and_then(|r| {
            let nk = r.hits.iter().filter(|h| h.in_nk).count();
            match r.outer_hits().count() {
                0 if nk > 0 => Ok(()),
                0 => Err("no protected instruction found even in the NK: the scan sees nothing".into()),
                n => Err(format!("{n} protected instruction(s) in outer code")),
            }
        }),
    );
    let planted = std::fs::read(kernel)
        .map_err(|e| e.to_string())
        .and_then(|bytes| crate::scan::plant(&bytes, "kernel_main").map_err(|e| e.to_string()))
        .and_then(|bytes| {
            let copy = setup::target_dir().join("scan-planted.elf");
            std::fs::write(&copy, &bytes).map_err(|e| e.to_string())?;
            crate::scan::scan_file(&copy).map_err(|e| e.to_string())
        });
    check(
        "planted-instruction-detected",
        planted.and_then(|r| match r.outer_hits().find(|h| h.symbol.contains("kernel_main")) {
            Some(_) => Ok(()),
            None => Err("a mov cr0 planted in kernel_main was not reported".into()),
        }),
    );
    nk_text_tests(kernel, &mut check);
}

/// NK text (issue: code reuse of the NK): the built image holds protected
/// instructions only at its named sites, each with its check, and its lifted
/// code stays in NK text; copies with a planted encoding, a check removed,
/// or a return on the lift's fixed path are refused; docs/scanner.md lists
/// the sites the scan finds.
fn nk_text_tests(kernel: &Path, check: &mut impl FnMut(&str, Result<(), String>)) {
    use crate::nk_text::{self, SITES};
    let Ok(bytes) = std::fs::read(kernel) else {
        check("nk-text-clean", Err(format!("cannot read {}", kernel.display())));
        return;
    };
    let scan = |b: &[u8]| -> Result<nk_text::NkTextReport, String> {
        let report = crate::scan::scan_bytes(b).map_err(|e| e.to_string())?;
        nk_text::check(b, &report).map_err(|e| e.to_string())
    };
    let clean = scan(&bytes);
    check(
        "nk-text-clean",
        clean.as_ref().map_err(Clone::clone).and_then(|r| {
            let want = SITES.len() - 1; // all but the native-only site
            if !r.protected {
                Err("the wp image looks like the native one".into())
            } else if !r.accidental.is_empty() || !r.problems.is_empty() {
                Err(r.render())
            } else if r.sites.len() != want {
                Err(format!("{} of {want} sites found", r.sites.len()))
            } else if r.lifted_functions == 0 {
                Err("no function found behind the lift: the walk sees nothing".into())
            } else {
                Ok(())
            }
        }),
    );
    let refused = |name: &str, symbol: &str, offset: u64, with: &[u8], expect: &str| {
        nk_text::patch(&bytes, symbol, offset, with).map_err(|e| e.to_string()).and_then(|b| {
            let r = scan(&b)?;
            let all: Vec<&String> = r.accidental.iter().chain(&r.problems).collect();
            match all.iter().any(|p| p.contains(expect)) {
                true => Ok(()),
                false => Err(format!("{name}: no problem naming {expect:?} in {all:?}")),
            }
        })
    };
    // mov cr0, rax at the start of the gate's body: no named site.
    check(
        "nk-text-planted-encoding-refused",
        refused("planted", "gate_body", 0, &[0x0f, 0x22, 0xc0], "is no named NK site"),
    );
    // The read-back after the CR4 write (mov rax, cr4: 3 bytes) gone.
    check(
        "nk-text-missing-check-refused",
        refused("no check", "nk_site_cr4_write", 3, &[0x90, 0x90, 0x90], "nk_site_cr4_write"),
    );
    // A return right after the lift: protection would stay off.
    check("nk-text-lift-return-refused", refused("ret", "nk_gate_after_lift", 0, &[0xc3], "before the re-arm"));
    let doc = std::fs::read_to_string(setup::workspace_root().join("docs/scanner.md")).unwrap_or_default();
    check(
        "nk-text-sites-documented",
        clean.and_then(|r| match doc.contains(&r.markdown()) {
            true => Ok(()),
            false => Err(format!(
                "docs/scanner.md does not hold the site table the scan finds; `cargo xtask scan --sites` prints it:\n{}",
                r.markdown()
            )),
        }),
    );
}

/// Builds the user programs and packs the initrd that every boot gets, then
/// checks the archive: klib's reader finds each program, a static x86-64
/// executable, and `bin/hello` taken from the archive runs on this (Linux
/// x86-64) host and greets. Without an initrd the boots still run.
fn initrd_stage(filter: Option<&str>, tally: &mut Tally) -> Option<PathBuf> {
    header(&format!("user programs and initrd (user/, {})", initrd::USER_TARGET));
    let path = match initrd::build(&[]) {
        Ok(p) => p,
        Err(e) => {
            println!("{e}\nbooting without an initrd");
            tally.fail("build: initrd");
            return None;
        }
    };
    println!("built {}", path.display());
    let archive = std::fs::read(&path).unwrap_or_default();
    let mut check = |name: &str, judge: &dyn Fn() -> Result<String, String>| {
        let name = format!("initrd/{name}");
        if filter.is_some_and(|f| !name.contains(f)) {
            return;
        }
        match judge() {
            Ok(what) => {
                println!("{name} ... ok: {what}");
                tally.pass();
            }
            Err(why) => {
                println!("{name} ... FAILED: {why}");
                tally.fail(name);
            }
        }
    };
    for program in initrd::PROGRAMS {
        check(&format!("bin/{program}"), &|| program_in_archive(&archive, program));
    }
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        check("hello-runs-on-host", &|| hello_on_host(&archive));
    }
    Some(path)
}

/// `bin/NAME` is a regular rwxr-xr-x file holding a static x86-64 ELF executable.
fn program_in_archive(archive: &[u8], name: &str) -> Result<String, String> {
    use goblin::elf::{Elf, header};
    let guest = format!("bin/{name}");
    let entry = klib::cpio::entries(archive)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?
        .into_iter()
        .rfind(|e| e.name == guest)
        .ok_or_else(|| format!("no {guest} in the archive"))?;
    if entry.mode != initrd::PROGRAM_MODE {
        return Err(format!("mode {:o}, expected {:o}", entry.mode, initrd::PROGRAM_MODE));
    }
    let elf = Elf::parse(entry.data).map_err(|e| format!("not an ELF file: {e}"))?;
    let kind = match elf.header.e_type {
        header::ET_EXEC => "static",
        header::ET_DYN => "static-pie",
        t => return Err(format!("ELF type {t}, not an executable")),
    };
    if elf.header.e_machine != header::EM_X86_64 || !elf.is_64 {
        return Err(format!("machine {}, not x86-64", elf.header.e_machine));
    }
    if let Some(interp) = elf.interpreter {
        return Err(format!("dynamically linked (interpreter {interp})"));
    }
    if !elf.libraries.is_empty() {
        return Err(format!("needs shared libraries {:?}", elf.libraries));
    }
    Ok(format!("{kind} x86-64 ELF, {} bytes", entry.data.len()))
}

/// Runs the archive's `bin/hello` here and checks its output and status.
fn hello_on_host(archive: &[u8]) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let data = klib::cpio::find(archive, "bin/hello").ok_or("no bin/hello in the archive")?;
    let copy = crate::setup::target_dir().join("initrd-hello");
    std::fs::write(&copy, data).map_err(|e| format!("cannot write {}: {e}", copy.display()))?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    let out = Command::new(&copy).stdin(Stdio::null()).output().map_err(|e| format!("cannot run it: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || stdout != "hello from user space\n" {
        return Err(format!("{} with stdout {stdout:?}", out.status));
    }
    Ok(format!("{:?}, {}", stdout.trim_end(), out.status))
}

/// The project's own rules, enforced: every crate `cargo fmt` clean, and
/// clippy with `-D warnings` over the host crates, the kernel for both
/// backends (`x86_64-unknown-none`) and the user programs.
fn lint_tests(filter: Option<&str>, tally: &mut Tally) {
    let root = setup::workspace_root();
    let user = root.join("user");
    let runs: [(&str, &Path, &[&str]); 6] = [
        ("fmt", &root, &["fmt", "--all", "--check"]),
        ("fmt-user", &user, &["fmt", "--all", "--check"]),
        (
            "clippy-host",
            &root,
            &["clippy", "-q", "-p", "nk-model", "-p", "klib", "-p", "xtask", "--all-targets", "--", "-D", "warnings"],
        ),
        (
            "clippy-kernel-wp",
            &root,
            &["clippy", "-q", "--release", "-p", "kernel", "--target", setup::TARGET, "--", "-D", "warnings"],
        ),
        (
            "clippy-kernel-native",
            &root,
            &[
                "clippy",
                "-q",
                "--release",
                "-p",
                "kernel",
                "--target",
                setup::TARGET,
                "--features",
                "nk/native",
                "--",
                "-D",
                "warnings",
            ],
        ),
        ("clippy-user", &user, &["clippy", "-q", "--target", "x86_64-unknown-linux-musl", "--", "-D", "warnings"]),
    ];
    let runs: Vec<_> =
        runs.iter().filter(|(name, ..)| filter.is_none_or(|f| format!("lint {name}").contains(f))).collect();
    if runs.is_empty() {
        return;
    }
    header("lints (cargo fmt --check, cargo clippy -D warnings)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for (name, dir, args) in runs {
        let target = if *name == "clippy-user" { crate::initrd::USER_TARGET } else { setup::TARGET };
        if let Err(e) = setup::ensure_rust_target(target) {
            println!("lint {name} ... FAILED: {e}");
            tally.fail(format!("lint {name}"));
            continue;
        }
        let out = Command::new(&cargo).args(*args).current_dir(dir).output();
        match out {
            Ok(o) if o.status.success() => {
                println!("lint {name} ... ok");
                tally.pass();
            }
            Ok(o) => {
                print!("{}", String::from_utf8_lossy(&o.stdout));
                print!("{}", String::from_utf8_lossy(&o.stderr));
                println!("lint {name} ... FAILED: cargo {} ({})", args.join(" "), o.status);
                tally.fail(format!("lint {name}"));
            }
            Err(e) => {
                println!("lint {name} ... FAILED: cannot run cargo: {e}");
                tally.fail(format!("lint {name}"));
            }
        }
    }
}

fn host_tests(filter: Option<&str>, tally: &mut Tally) {
    let mut args = vec!["test".to_string()];
    for p in HOST_PACKAGES {
        args.extend(["-p".to_string(), p.to_string()]);
    }
    // Every test binary runs even when an earlier one fails.
    args.push("--no-fail-fast".into());
    if let Some(f) = filter {
        args.extend(["--".to_string(), f.to_string()]);
    }
    header(&format!("host tests (cargo {})", args.join(" ")));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let child = Command::new(cargo)
        .args(&args)
        .current_dir(setup::workspace_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            println!("cannot run cargo: {e}");
            tally.fail("host tests: cargo test did not start");
            return;
        }
    };
    let mut count = HostCount::default();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut line = Vec::new();
    while stdout.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        println!("{text}");
        count.line(text);
        line.clear();
    }
    let status = child.wait();
    tally.passed += count.passed;
    tally.failed += count.failed;
    tally.failures.extend(count.failed_names.iter().map(|n| format!("host: {n}")));
    match status {
        Ok(s) if s.success() => {}
        // Failed tests already count; a failure with none counted (a
        // compile error, a missing package, a crashed binary) adds one.
        Ok(s) if count.failed == 0 => tally.fail(format!("host tests: cargo test failed ({s})")),
        Ok(_) => {}
        Err(e) => tally.fail(format!("host tests: waiting for cargo: {e}")),
    }
}

/// Counts from `cargo test` output.
#[derive(Debug, Default)]
struct HostCount {
    passed: usize,
    failed: usize,
    failed_names: Vec<String>,
}

impl HostCount {
    fn line(&mut self, line: &str) {
        if let Some((passed, failed)) = parse_cargo_result(line) {
            self.passed += passed;
            self.failed += failed;
        } else if let Some(TestLine::Failed(name)) = parse_test_line(line) {
            self.failed_names.push(name.to_string());
        }
    }
}

/// `test result: ok. 3 passed; 1 failed; 0 ignored; ...` → (3, 1).
pub fn parse_cargo_result(line: &str) -> Option<(usize, usize)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_verdict, counts) = rest.split_once(". ")?;
    let (mut passed, mut failed) = (None, None);
    for part in counts.split(';') {
        let Some((n, what)) = part.trim().split_once(' ') else { continue };
        match what {
            "passed" => passed = n.parse().ok(),
            "failed" => failed = n.parse().ok(),
            _ => {}
        }
    }
    Some((passed?, failed?))
}

/// A line of test output, from the kernel or from cargo's harness: both
/// print `test NAME ... ok` and `test NAME ... FAILED`.
#[derive(Debug, PartialEq, Eq)]
pub enum TestLine<'a> {
    Ok(&'a str),
    Failed(&'a str),
    /// The kernel's `ktest: N passed, M failed`.
    Summary {
        passed: usize,
        failed: usize,
    },
}

pub fn parse_test_line(line: &str) -> Option<TestLine<'_>> {
    let line = line.trim_end();
    if let Some(rest) = line.strip_prefix("ktest: ") {
        let (passed, failed) = rest.split_once(", ")?;
        let passed = passed.strip_suffix(" passed")?.parse().ok()?;
        let failed = failed.strip_suffix(" failed")?.parse().ok()?;
        return Some(TestLine::Summary { passed, failed });
    }
    let (name, result) = line.strip_prefix("test ")?.split_once(" ... ")?;
    if name.is_empty() {
        return None;
    }
    if result == "ok" || result.starts_with("ok ") {
        Some(TestLine::Ok(name))
    } else if result.starts_with("FAILED") {
        Some(TestLine::Failed(name))
    } else {
        None
    }
}

/// What the kernel's test run printed.
#[derive(Debug, Default)]
struct KtestCount {
    passed: usize,
    failed: Vec<String>,
    summary: Option<(usize, usize)>,
}

impl KtestCount {
    fn record(&mut self, line: TestLine<'_>) {
        match line {
            TestLine::Ok(_) => self.passed += 1,
            TestLine::Failed(name) => self.failed.push(name.to_string()),
            TestLine::Summary { passed, failed } => self.summary = Some((passed, failed)),
        }
    }

    /// Failures beyond the failed tests themselves: how the run ended.
    fn run_failures(&self, timed_out: bool, code: Option<i32>) -> Vec<String> {
        let mut extra = Vec::new();
        if timed_out {
            extra.push("ktest: timeout".to_string());
        } else if self.summary.is_none() {
            extra.push("ktest: kernel stopped before the summary".to_string());
        }
        if let Some((p, f)) = self.summary {
            if (p, f) != (self.passed, self.failed.len()) {
                extra.push(format!(
                    "ktest: the summary says {p} passed, {f} failed, but {} ok and {} FAILED lines came",
                    self.passed,
                    self.failed.len()
                ));
            }
            if !timed_out && f == 0 && code != Some(EXIT_SUCCESS) {
                let status = code.map_or("no status".to_string(), |c| format!("status {c}"));
                extra.push(format!("ktest: QEMU ended with {status} after all tests passed (expected {EXIT_SUCCESS})"));
            }
        }
        extra
    }
}

fn kernel_tests(kernel: &Path, initrd: Option<&Path>, filter: Option<&str>, tally: &mut Tally) {
    let cmdline = match filter {
        Some(f) => format!("test={f}"),
        None => "test".to_string(),
    };
    header(&format!("in-kernel tests (kernel command line '{cmdline}')"));
    let machine = Machine::tested(kernel, initrd, cmdline);
    let mut count = KtestCount::default();
    let capture = qemu::boot_capture(&machine, b"", KTEST_TIMEOUT, &mut |line| {
        if let Some(parsed) = parse_test_line(line) {
            println!("{line}");
            count.record(parsed);
        }
    });
    let capture = match capture {
        Ok(c) => c,
        Err(e) => {
            println!("{e}");
            tally.fail("ktest: QEMU did not start");
            return;
        }
    };
    for _ in 0..count.passed {
        tally.pass();
    }
    for name in &count.failed {
        tally.fail(format!("ktest: {name}"));
    }
    let extra = count.run_failures(capture.timed_out, capture.code());
    for why in &extra {
        println!("{why}");
        tally.fail(why.clone());
    }
    if !count.failed.is_empty() || !extra.is_empty() {
        println!("{}", capture.report("in-kernel tests"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/syscalls.md names every call in the kernel's table (each is
    /// `number("NAME")` in `kernel/src/proc/syscall.rs`), so the page
    /// cannot fall behind the code.
    #[test]
    fn the_syscall_page_names_every_call_in_the_table() {
        let root = setup::workspace_root();
        let table = std::fs::read_to_string(root.join("kernel/src/proc/syscall.rs")).unwrap();
        let doc = std::fs::read_to_string(root.join("docs/syscalls.md")).unwrap();
        let names: Vec<&str> = table.split("number(\"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
        assert!(names.len() > 100, "only {} calls found in the table", names.len());
        let missing: Vec<&&str> = names.iter().filter(|n| !doc.contains(&format!("`{n}`"))).collect();
        assert!(missing.is_empty(), "docs/syscalls.md does not name {missing:?}");
    }

    #[test]
    fn cargo_result_lines() {
        assert_eq!(
            parse_cargo_result(
                "test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s"
            ),
            Some((12, 0))
        );
        assert_eq!(
            parse_cargo_result("test result: FAILED. 3 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out"),
            Some((3, 2))
        );
        assert_eq!(parse_cargo_result("test result: ok. 0 passed; 0 failed; 0 ignored"), Some((0, 0)));
        assert_eq!(parse_cargo_result("running 3 tests"), None);
        assert_eq!(parse_cargo_result("test result: garbled"), None);
    }

    #[test]
    fn host_count_sums_every_binary() {
        let out = "\
running 2 tests
test a::b ... ok
test a::c ... FAILED

failures:
test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

running 5 tests
test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

   Doc-tests klib
test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";
        let mut c = HostCount::default();
        out.lines().for_each(|l| c.line(l));
        assert_eq!((c.passed, c.failed), (6, 1));
        assert_eq!(c.failed_names, ["a::c"]);
    }

    #[test]
    fn kernel_test_lines() {
        assert_eq!(parse_test_line("test heap_grows ... ok"), Some(TestLine::Ok("heap_grows")));
        assert_eq!(parse_test_line("test mm::frames ... ok\r"), Some(TestLine::Ok("mm::frames")));
        assert_eq!(parse_test_line("test wx ... FAILED"), Some(TestLine::Failed("wx")));
        assert_eq!(
            parse_test_line("test wx ... FAILED (the kernel stopped inside the test)"),
            Some(TestLine::Failed("wx"))
        );
        assert_eq!(parse_test_line("ktest: 7 passed, 1 failed"), Some(TestLine::Summary { passed: 7, failed: 1 }));
        assert_eq!(parse_test_line("ktest: running 8 of 8 tests (filter '')"), None);
        assert_eq!(parse_test_line("test heap ... "), None);
        assert_eq!(parse_test_line("test  ... ok"), None);
        assert_eq!(parse_test_line("testing ... ok"), None);
        assert_eq!(parse_test_line("  test x ... ok"), None);
        assert_eq!(parse_test_line("test x ... okay"), None);
    }

    fn ktest(lines: &str) -> KtestCount {
        let mut c = KtestCount::default();
        lines.lines().filter_map(parse_test_line).for_each(|l| c.record(l));
        c
    }

    #[test]
    fn a_clean_run_adds_nothing() {
        let c = ktest("test a ... ok\ntest b ... ok\nktest: 2 passed, 0 failed\n");
        assert_eq!((c.passed, c.failed.len()), (2, 0));
        assert!(c.run_failures(false, Some(33)).is_empty());
    }

    #[test]
    fn failed_tests_with_the_failure_status() {
        let c = ktest("test a ... ok\ntest b ... FAILED\n  at kernel/src/x.rs:1\nktest: 1 passed, 1 failed\n");
        assert_eq!(c.failed, ["b"]);
        assert!(c.run_failures(false, Some(35)).is_empty());
    }

    #[test]
    fn a_panic_mid_test_is_one_more_failure() {
        let c = ktest("test a ... ok\ntest b ... FAILED (the kernel stopped inside the test)\nKERNEL PANIC at ...\n");
        assert_eq!(c.run_failures(false, Some(35)), ["ktest: kernel stopped before the summary"]);
    }

    #[test]
    fn a_hang_is_a_timeout() {
        let c = ktest("test a ... ok\n");
        assert_eq!(c.run_failures(true, None), ["ktest: timeout"]);
    }

    #[test]
    fn success_needs_the_success_status_and_matching_counts() {
        let c = ktest("test a ... ok\nktest: 1 passed, 0 failed\n");
        assert_eq!(c.run_failures(false, Some(0)).len(), 1);
        let c = ktest("test a ... ok\nktest: 2 passed, 0 failed\n");
        assert_eq!(c.run_failures(false, Some(33)).len(), 1);
    }

    #[test]
    fn tally_summary() {
        let mut t = Tally::default();
        t.pass();
        t.pass();
        t.fail("x");
        assert_eq!(t.summary(), "2 passed, 1 failed");
        assert_eq!(t.failures, ["x"]);
    }
}
