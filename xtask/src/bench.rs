//! `cargo xtask bench`: the native kernel against each protected backend,
//! side by side, in one command (DESIGN section 8, issue 7).
//!
//! Builds the `native` and `wp` kernels and the initrd, then boots them in
//! turn under the same accelerator (native, wp, native, wp, ...), each boot
//! running `/bin/bench` (the user-space rows) and `nk bench` (the NK's own
//! micro-costs). The boots' figures become medians with their spread, the
//! ratio to native, PerspicuOS's ratio and the NK crossings per operation:
//! a table on the terminal and `report.md`, `report.json` and `report.svg`
//! under `target/bench/`.

mod report;
mod rows;
mod stats;

pub use report::check_json;

use crate::Result;
use crate::build::{self, Backend, BuildOptions};
use crate::cli::Accel;
use crate::qemu::{self, Machine};
use crate::{initrd, setup};
use report::{Meta, Report, RowResult};
use rows::{BootReport, ROWS};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How to run the benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    /// Short samples and fewer boots: a run CI can afford.
    pub quick: bool,
    pub accel: Accel,
    /// Boots per backend; `None`: 2 quick, 5 full.
    pub boots: Option<usize>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { quick: false, accel: Accel::Tcg, boots: None }
    }
}

impl BenchOptions {
    fn boots(&self) -> usize {
        self.boots.unwrap_or(if self.quick { 2 } else { 5 })
    }
}

/// The backends compared, native first (the baseline).
pub const BACKENDS: &[Backend] = &[Backend::Native, Backend::Wp];

/// How many rows the report has.
pub fn row_count() -> usize {
    ROWS.len()
}

pub fn out_dir() -> PathBuf {
    setup::target_dir().join("bench")
}

/// `cargo xtask bench`: build everything, run, print and write the report.
pub fn bench(opts: &BenchOptions) -> Result<u8> {
    let started = Instant::now();
    let mut kernels = Vec::new();
    for &backend in BACKENDS {
        eprintln!("bench: building the {} kernel", backend.name());
        kernels.push((backend, build::build_kernel(&BuildOptions { backend, ..Default::default() })?));
    }
    // Debian's busybox for the macro row; without apt the row says why.
    let initrd = match crate::userland::Userland::Busybox.files() {
        Ok(files) => initrd::build_with(&[], files, &setup::target_dir().join("initrd-bench.cpio"))?,
        Err(e) => {
            eprintln!("bench: {e}; the busybox_workload row is left out");
            initrd::build(&[])?
        }
    };
    setup::ensure_qemu()?;
    crate::run::kvm_note(opts.accel);
    let report = run(opts, &kernels, &initrd, &out_dir())?;
    print!("{}", report.table());
    eprintln!(
        "bench: wrote {}/report.md, report.json, report.svg in {:.0} s",
        out_dir().display(),
        started.elapsed().as_secs_f64()
    );
    Ok(if report.meta.incomplete_boots == 0 { 0 } else { 1 })
}

/// Boots each kernel `opts.boots()` times, interleaved, and writes the
/// report into `out`; `kernels` lists native first.
pub fn run(opts: &BenchOptions, kernels: &[(Backend, PathBuf)], initrd: &Path, out: &Path) -> Result<Report> {
    let boots = opts.boots();
    let total = boots * kernels.len();
    let script = format!("run /bin/bench{}\nnk bench\npoweroff\n", if opts.quick { " --quick" } else { "" });
    // A quick boot takes about a second and a full one about ten under TCG.
    let timeout = Duration::from_secs(if opts.quick { 60 } else { 300 });
    let mut results: Vec<(Backend, BootReport)> = Vec::new();
    let (mut incomplete, mut retried) = (0, 0);
    for round in 0..boots {
        for (backend, kernel) in kernels {
            let n = results.len() + 1;
            let what = format!("{} boot {} of {boots}", backend.name(), round + 1);
            // A boot that stops short (a hang, a crash) is reported and tried
            // once more, so one bad boot does not void the run; both count.
            let mut attempt = 0;
            let boot = loop {
                attempt += 1;
                eprintln!(
                    "bench: [{n}/{total}] {what} ({}){}",
                    opts.accel.label(),
                    if attempt > 1 { ", again" } else { "" }
                );
                let t = Instant::now();
                let (boot, complete) = boot_once(opts, kernel, initrd, &script, timeout)?;
                eprintln!("bench: [{n}/{total}] done in {:.1} s", t.elapsed().as_secs_f64());
                if complete {
                    break boot;
                }
                if attempt == 2 {
                    incomplete += 1;
                    break boot;
                }
                retried += 1;
            };
            results.push((*backend, boot));
        }
    }
    let report = Report {
        meta: Meta {
            accelerator: opts.accel.label().to_string(),
            cpu_model: cpu_model(),
            date: utc_now(),
            qemu: qemu_version(),
            quick: opts.quick,
            boots_per_backend: boots,
            incomplete_boots: incomplete,
            retried_boots: retried,
        },
        backends: kernels.iter().skip(1).map(|(b, _)| b.name().to_string()).collect(),
        rows: ROWS
            .iter()
            .map(|spec| RowResult {
                spec,
                cells: kernels
                    .iter()
                    .map(|(b, _)| {
                        let seen: Vec<&rows::Observation> =
                            results.iter().filter(|(rb, _)| rb == b).filter_map(|(_, r)| r.get(spec.name)).collect();
                        (b.name().to_string(), stats::aggregate(&seen))
                    })
                    .collect(),
            })
            .collect(),
    };
    write_reports(&report, out)?;
    Ok(report)
}

/// One boot running the script; the rows it printed, and whether the
/// program, the kernel rows and the power-off all happened.
fn boot_once(
    opts: &BenchOptions,
    kernel: &Path,
    initrd: &Path,
    script: &str,
    timeout: Duration,
) -> Result<(BootReport, bool)> {
    let machine = Machine { accel: opts.accel, ..Machine::tested(kernel, Some(initrd), "") };
    let mut boot = BootReport::default();
    let capture = qemu::boot_capture(&machine, script.as_bytes(), timeout, &mut |line| {
        boot.line(line);
        if let Some((name, obs)) = rows::parse_line(line) {
            let shown = match obs {
                rows::Observation::Value { ns, .. } => report::fmt_ns(ns),
                rows::Observation::Unavailable(why) => format!("n/a ({why})"),
            };
            eprintln!("bench:     {name:<20} {shown}");
        }
    })?;
    let complete = boot.user_done && boot.kernel_done && capture.code() == Some(qemu::EXIT_SUCCESS);
    if !complete {
        eprintln!("bench: this boot did not run to the end\n{}", capture.report("bench boot"));
    }
    Ok((boot, complete))
}

fn write_reports(report: &Report, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let json = serde_json::to_string_pretty(&report.json()).map_err(|e| format!("report.json: {e}"))?;
    for (name, text) in [("report.md", report.markdown()), ("report.json", json + "\n"), ("report.svg", report.svg())] {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The host CPU's model name, from /proc/cpuinfo.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            })
        })
        .map(|m| format!("{m} ({} host CPUs)", std::thread::available_parallelism().map_or(0, |n| n.get())))
        .unwrap_or_else(|| "unknown".into())
}

fn qemu_version() -> String {
    std::process::Command::new(setup::QEMU)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
        .unwrap_or_else(|| "QEMU version unknown".into())
}

/// Now, as `YYYY-MM-DD HH:MM` (UTC).
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM` (UTC), by the
/// days-to-civil-date algorithm (proleptic Gregorian calendar).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hh, mm) = (secs % 86_400 / 3600, secs % 3600 / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_utc(1_709_210_096), "2024-02-29 12:34");
        assert_eq!(format_utc(4_102_444_799), "2099-12-31 23:59");
    }

    #[test]
    fn boots_default_by_mode() {
        assert_eq!(BenchOptions::default().boots(), 5);
        assert_eq!(BenchOptions { quick: true, ..Default::default() }.boots(), 2);
        assert_eq!(BenchOptions { boots: Some(3), ..Default::default() }.boots(), 3);
        assert_eq!(BACKENDS[0], Backend::Native);
    }
}
