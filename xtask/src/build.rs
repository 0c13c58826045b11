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

/// A kernel built, linked with its layout and scanned.
#[derive(Debug)]
pub struct Built {
    pub kernel: PathBuf,
    /// Relinks the committed layout needed before the scan was clean (0: it
    /// was clean as committed).
    pub retries: usize,
    /// The committed layout file of this build.
    pub layout_file: PathBuf,
    /// Seconds spent linking and scanning.
    pub link_seconds: f64,
}

/// Builds the kernel and scans it (I7): an image with a protected
/// instruction outside the NK is refused, so nothing ever boots it.
pub fn build_kernel(opts: &BuildOptions) -> Result<PathBuf> {
    build(opts).map(|b| b.kernel)
}

/// Compiles with cargo (the objects are kept), then links with the
/// committed layout (`kernel/layout/<backend>.txt`) and scans. A protected
/// byte sequence that a displacement forms goes away when the function
/// holding it moves, so while the scan finds one, the function is padded
/// or moved and the image relinked (`layout::converge`: a relink is a
/// fraction of a second, nothing is recompiled). A changed layout is
/// written back to the committed file, like Cargo.lock: `cargo xtask test`
/// fails until it is committed, so that a fresh clone links the same image
/// with no retry. A sequence inside one instruction stream survives every
/// placement; the scan report names its function, whose code must change.
pub fn build(opts: &BuildOptions) -> Result<Built> {
    let capture_dir = backend_dir(opts).join("capture");
    compile(opts, &capture_dir)?;
    if crate::link::Capture::load(&capture_dir).is_err() {
        // Cargo had nothing to relink and the kept objects are gone:
        // rebuild the kernel crate once so the wrapper sees its link.
        eprintln!("layout: no kept objects for this build; rebuilding the kernel crate");
        clean_kernel_crate()?;
        compile(opts, &capture_dir)?;
    }
    let capture = crate::link::Capture::load(&capture_dir)?;
    let layout_file = layout_file(opts);
    let committed = std::fs::read_to_string(&layout_file).unwrap_or_default();
    let mut fixes = crate::layout::Fixes::parse(&committed)?;
    let before = fixes.clone();
    let dir = backend_dir(opts);
    let kernel = dir.join("kernel");
    let done = crate::layout::converge(&capture, &dir.join("link"), &kernel, &mut fixes, &[], None, &[])?;
    // NK text is held to its own rules (xtask/src/nk_text.rs). The layout
    // moves only outer functions, so an NK-text problem is a code change.
    let (_, nk) = crate::scan::scan_all(&kernel)?;
    if !nk.problems.is_empty() || !nk.accidental.is_empty() {
        eprint!("{}", nk.render());
        return Err("scan: the nested kernel's own code breaks its rules (above); refusing to boot".into());
    }
    if fixes != before || !layout_file.exists() {
        std::fs::write(&layout_file, fixes.render())
            .map_err(|e| format!("cannot write {}: {e}", layout_file.display()))?;
    }
    if done.retries > 0 {
        eprintln!(
            "layout: clean after {} relink(s), {} fix(es) ({:.1} s); {} changed: commit it",
            done.retries,
            done.hits_fixed,
            done.seconds,
            layout_file.display()
        );
    }
    Ok(Built { kernel, retries: done.retries, layout_file, link_seconds: done.seconds })
}

/// This build's directory under target/: each backend keeps its own
/// kernel, kept objects and link work (cargo writes both to one path).
fn backend_dir(opts: &BuildOptions) -> PathBuf {
    let features = opts.features.join(",").replace('/', "_");
    let name = if features.is_empty() {
        opts.backend.name().to_string()
    } else {
        format!("{}-{features}", opts.backend.name())
    };
    setup::target_dir().join(format!("nk-{name}"))
}

/// The committed layout decisions of this build.
pub fn layout_file(opts: &BuildOptions) -> PathBuf {
    let features = opts.features.join(",").replace('/', "_");
    let name = if features.is_empty() {
        opts.backend.name().to_string()
    } else {
        format!("{}-{features}", opts.backend.name())
    };
    setup::workspace_root().join("kernel").join("layout").join(format!("{name}.txt"))
}

/// Adds the target if needed, builds with cargo's own link (the natural
/// order, unscanned), and returns the kernel ELF's path.
pub fn build_unscanned(opts: &BuildOptions) -> Result<PathBuf> {
    let capture_dir = backend_dir(opts).join("capture");
    compile(opts, &capture_dir)?;
    Ok(kernel_path())
}

/// `--config` arguments for cargo: the linker wrapper that keeps the
/// objects, and path remapping so the image's bytes do not depend on where
/// the checkout or CARGO_HOME is (panic locations and debug information
/// name source files). Cargo joins `--config` arrays onto the ones in
/// .cargo/config.toml, so the kernel's own rustflags stay.
pub fn config_args(wrapper: &std::path::Path) -> Vec<String> {
    let root = setup::workspace_root();
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"));
    let q = |p: &std::path::Path| p.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
    vec![
        "--config".into(),
        format!("target.{TARGET}.linker=\"{}\"", q(wrapper)),
        "--config".into(),
        // The last matching prefix wins: CARGO_HOME inside the checkout
        // still maps to /cargo.
        format!(
            "target.{TARGET}.rustflags=[\"--remap-path-prefix={}=.\", \"--remap-path-prefix={}=/cargo\"]",
            q(&root),
            q(&cargo_home)
        ),
    ]
}

fn compile(opts: &BuildOptions, capture_dir: &std::path::Path) -> Result<()> {
    setup::ensure_target()?;
    let wrapper = crate::link::write_wrapper()?;
    // The cargo that runs us, when there is one: same toolchain, no proxy.
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args = config_args(&wrapper);
    args.extend(cargo_args(opts));
    let status = Command::new(&cargo)
        .args(&args)
        .env("KERNEL_LINK_CAPTURE", capture_dir)
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
    Ok(())
}

fn clean_kernel_crate() -> Result<()> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args(["clean", "--release", "-p", "kernel", "--target", TARGET])
        .current_dir(setup::workspace_root())
        .stdout(Stdio::from(io::stderr()))
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo clean -p kernel failed".into());
    }
    Ok(())
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
