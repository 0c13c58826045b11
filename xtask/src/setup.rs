//! Installs what the commands need on a fresh machine (the Rust targets of
//! the kernel and the user programs, QEMU) and knows where the workspace
//! lives. Set-up output goes to stderr so that stdout stays the guest
//! console or the test report.

use crate::Result;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::{env, fs, io};

pub const TARGET: &str = "x86_64-unknown-none";
pub const QEMU: &str = "qemu-system-x86_64";

pub fn workspace_root() -> PathBuf {
    // Fixed at compile time, so the commands work from any directory.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    match env::var_os("CARGO_TARGET_DIR") {
        // `join` keeps an absolute directory as it is.
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Adds the kernel's Rust target to the pinned toolchain when it is missing.
pub fn ensure_target() -> Result<()> {
    ensure_rust_target(TARGET)
}

/// Adds `target` to the pinned toolchain when it is missing (the kernel's,
/// and the user programs' `x86_64-unknown-linux-musl`).
pub fn ensure_rust_target(target: &str) -> Result<()> {
    let root = workspace_root();
    // Run in the workspace root so rust-toolchain.toml picks the toolchain.
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(&root)
        .stderr(Stdio::inherit())
        .output();
    let listed = match listed {
        Ok(out) if out.status.success() => out,
        Ok(out) => return Err(format!("`rustup target list --installed` failed ({})", out.status).into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A toolchain not managed by rustup: cargo will say if the target is missing.
            eprintln!("setup: rustup not found; assuming the {target} target is installed");
            return Ok(());
        }
        Err(e) => return Err(format!("cannot run rustup: {e}").into()),
    };
    if has_target(&String::from_utf8_lossy(&listed.stdout), target) {
        return Ok(());
    }
    eprintln!("setup: adding the Rust target: rustup target add {target}");
    run_setup(Command::new("rustup").args(["target", "add", target]).current_dir(&root))
}

fn has_target(installed: &str, target: &str) -> bool {
    installed.lines().any(|l| l.trim() == target)
}

/// Makes sure QEMU is on PATH, installing Debian's package when we are root.
pub fn ensure_qemu() -> Result<()> {
    if find_on_path(QEMU).is_some() {
        return Ok(());
    }
    apt_install(QEMU, "qemu-system-x86")?;
    match find_on_path(QEMU) {
        Some(_) => Ok(()),
        None => Err(format!("{QEMU} still not found after installing qemu-system-x86").into()),
    }
}

/// Linux's x86-64 system-call numbers, which `klib::linux_nr`'s host test
/// checks its table against.
pub const LINUX_NR_HEADER: &str = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";

/// Makes sure Linux's `asm/unistd_64.h` is there, installing Debian's
/// linux-libc-dev when we are root; the host test says what is missing
/// otherwise.
pub fn ensure_linux_header() -> Result<()> {
    if Path::new(LINUX_NR_HEADER).is_file() {
        return Ok(());
    }
    apt_install(LINUX_NR_HEADER, "linux-libc-dev")
}

/// Installs Debian's `package` for `missing` when we are root; otherwise
/// says what to install.
fn apt_install(missing: &str, package: &str) -> Result<()> {
    if effective_uid() != Some(0) {
        return Err(format!("{missing} not found: install Debian's {package} (apt-get install {package})").into());
    }
    eprintln!("setup: {missing} not found; installing it: apt-get install {package}");
    run_setup(Command::new("apt-get").arg("update"))?;
    run_setup(Command::new("apt-get").args(["install", "-y", package]).env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Runs a set-up step with its stdout sent to our stderr.
fn run_setup(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .stdout(Stdio::from(io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{shown} failed ({status})").into()) }
}

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn effective_uid() -> Option<u32> {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        return parse_status_uid(&status);
    }
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The effective uid from /proc/self/status's `Uid:` line (real, effective,
/// saved, filesystem).
fn parse_status_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_from_proc_status() {
        let status = "Name:\txtask\nUmask:\t0022\nState:\tR (running)\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_status_uid(status), Some(0));
        assert_eq!(parse_status_uid("Uid:\t0\t1000\t1000\t1000\n"), Some(1000));
        assert_eq!(parse_status_uid("Name:\tx\n"), None);
        assert_eq!(parse_status_uid("Uid:\t0\n"), None);
    }

    #[test]
    fn installed_target_list() {
        assert!(has_target("x86_64-unknown-linux-gnu\nx86_64-unknown-none\n", TARGET));
        assert!(!has_target("x86_64-unknown-linux-gnu\n", TARGET));
        assert!(!has_target("x86_64-unknown-none-elf\n", TARGET));
        let musl = "x86_64-unknown-linux-musl";
        assert!(has_target("x86_64-unknown-linux-musl\nx86_64-unknown-none\n", musl));
        assert!(!has_target("x86_64-unknown-linux-gnu\nx86_64-unknown-none\n", musl));
    }

    #[test]
    fn root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(workspace_root().join("xtask").is_dir());
    }
}
