//! Builds the kernel ELF with cargo for the bare-metal target.

use crate::Result;
use crate::setup::{self, TARGET};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::{env, io};

/// The nested kernel's protection backend (DESIGN section 5).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// CR0.WP toggling, the paper's mechanism.
    #[default]
    Wp,
    /// No protection: the baseline for benchmarks, the control for attacks.
    Native,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Wp => "wp",
            Backend::Native => "native",
        }
    }
}

/// What to build; grows with the options that select kernel code.
#[derive(Debug, Default, Clone)]
pub struct BuildOptions {
    pub backend: Backend,
    /// Cargo features, `crate/feature` for a dependency's (how, for
    /// example, a nested-kernel backend would be chosen).
    pub features: Vec<String>,
}

pub fn cargo_args(opts: &BuildOptions) -> Vec<String> {
    let mut args: Vec<String> =
        ["build", "--release", "-p", "kernel", "--target", TARGET].iter().map(|s| s.to_string()).collect();
    let mut features = opts.features.clone();
    if opts.backend == Backend::Native {
        features.push("nk/native".into());
    }
    if !features.is_empty() {
        args.push("--features".into());
        args.push(features.join(","));
    }
    args
}

pub fn kernel_path() -> PathBuf {
    setup::target_dir().join(TARGET).join("release").join("kernel")
}

/// Builds the kernel and scans it (I7): an image with a protected
/// instruction outside the NK is refused, so nothing ever boots it.
///
/// A protected byte sequence that only a displacement forms (a call, a
/// RIP-relative load) goes away when the functions move, so a failing image
/// is relinked with a shuffled function order, seed 1, 2, ... (deterministic:
/// the same sources pick the same seed on a fresh checkout; the seed that
/// was clean last time is tried first). A sequence inside one
/// instruction stream needs a code change; the scan report names it.
pub fn build_kernel(opts: &BuildOptions) -> Result<PathBuf> {
    let mut last_report = String::new();
    // The seed that worked last time for this backend goes first: one test
    // run builds each backend several times, and each relink recompiles.
    let remembered = seed_file(opts);
    let last: Option<u32> = std::fs::read_to_string(&remembered).ok().and_then(|s| s.trim().parse().ok());
    let order = last.into_iter().chain((0..=MAX_SHUFFLE_SEED).filter(|&s| Some(s) != last));
    for seed in order {
        let built = build_with_seed(opts, seed)?;
        let (report, nk) = crate::scan::scan_all(&built)?;
        if !nk.problems.is_empty() {
            // A missing site or check, or lifted code leaving NK text: no
            // link order changes that.
            eprint!("{}", nk.render());
            return Err("scan: the nested kernel's own code breaks its rules (above); refusing to boot".into());
        }
        if report.outer_hits().count() == 0 && nk.accidental.is_empty() {
            if seed > 0 {
                eprintln!("scan: clean with link-order shuffle seed {seed}");
            }
            let kernel = keep_copy(opts, &built)?;
            // Only a hint for the next build: losing it costs time, not safety.
            let _ = std::fs::write(&remembered, seed.to_string());
            return Ok(kernel);
        }
        last_report = report.render() + &nk.render();
        eprintln!(
            "scan: {} protected instruction(s) outside the NK, {} unnamed in NK text, with link seed {seed}; relinking",
            report.outer_hits().count(),
            nk.accidental.len()
        );
    }
    eprint!("{last_report}");
    Err(format!("scan: every link order up to seed {MAX_SHUFFLE_SEED} leaves a protected instruction outside the NK; refusing to boot").into())
}

/// How many shuffled link orders to try before giving up.
const MAX_SHUFFLE_SEED: u32 = 160;

/// Where the last clean seed of this build is remembered.
fn seed_file(opts: &BuildOptions) -> PathBuf {
    let features = opts.features.join(",").replace('/', "_");
    setup::target_dir()
        .join(format!("nk-{}", opts.backend.name()))
        .join(format!("seed{}", if features.is_empty() { String::new() } else { format!("-{features}") }))
}

/// Each backend keeps its own copy: cargo writes both to one path.
fn keep_copy(opts: &BuildOptions, built: &std::path::Path) -> Result<PathBuf> {
    let dir = setup::target_dir().join(format!("nk-{}", opts.backend.name()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let kernel = dir.join("kernel");
    std::fs::copy(built, &kernel).map_err(|e| format!("cannot copy the kernel to {}: {e}", kernel.display()))?;
    Ok(kernel)
}

/// Adds the target if needed, builds, and returns the kernel ELF's path.
pub fn build_unscanned(opts: &BuildOptions) -> Result<PathBuf> {
    build_with_seed(opts, 0)
}

fn build_with_seed(opts: &BuildOptions, seed: u32) -> Result<PathBuf> {
    setup::ensure_target()?;
    // The cargo that runs us, when there is one: same toolchain, no proxy.
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let args = cargo_args(opts);
    let status = Command::new(&cargo)
        .args(&args)
        .env("KERNEL_LINK_SHUFFLE", seed.to_string())
        .current_dir(setup::workspace_root())
        // Our stdout may be the guest console or the test report.
        .stdout(Stdio::from(io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("kernel build failed: cargo {} ({status})", args.join(" ")).into());
    }
    let kernel = kernel_path();
    if !kernel.is_file() {
        return Err(format!("cargo built the kernel but {} is missing", kernel.display()).into());
    }
    Ok(kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_release_build() {
        assert_eq!(
            cargo_args(&BuildOptions::default()).join(" "),
            "build --release -p kernel --target x86_64-unknown-none"
        );
    }

    #[test]
    fn features_join_into_one_flag() {
        let opts = BuildOptions { features: vec!["nk/a".into(), "b".into()], ..Default::default() };
        assert!(cargo_args(&opts).join(" ").ends_with("--features nk/a,b"));
    }

    #[test]
    fn native_backend_is_a_feature_of_nk() {
        let opts = BuildOptions { backend: Backend::Native, ..Default::default() };
        assert!(cargo_args(&opts).join(" ").ends_with("--features nk/native"));
    }

    #[test]
    fn elf_lives_under_the_target_triple() {
        assert!(kernel_path().ends_with("x86_64-unknown-none/release/kernel"));
    }
}
