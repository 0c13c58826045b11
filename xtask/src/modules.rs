//! The loadable modules in `modules/`: each crate is built for the
//! bare-metal target as a static library, then linked by the toolchain's
//! `rust-lld -r` with `modules/module.ld` into one relocatable ELF,
//! `target/modules/NAME.ko`, which the initrd carries as
//! `lib/modules/NAME.ko` (docs/modules.md).

use crate::Result;
use crate::initrd::File;
use crate::setup;
use klib::cpio::S_IFREG;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::{env, fs, io};

/// The modules `modules/` builds, packed as `lib/modules/NAME.ko`: the
/// examples, then the malicious ones the attack catalog loads.
pub const MODULES: &[&str] = &[
    "hello",
    "rot13",
    "ticker",
    "evil_unaligned",
    "evil_pagecross",
    "evil_reloc",
    "evil_selfwrite",
    "evil_hook",
    "evil_nkcall",
];
const TARGET: &str = "x86_64-unknown-none";

pub fn modules_dir() -> PathBuf {
    setup::workspace_root().join("modules")
}

fn target_dir() -> PathBuf {
    setup::target_dir().join("modules")
}

/// Where the built `NAME.ko` is.
pub fn ko_path(name: &str) -> PathBuf {
    target_dir().join(format!("{name}.ko"))
}

/// The toolchain's own linker: it ships with rustc, so no package is needed.
fn rust_lld() -> Result<PathBuf> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .current_dir(setup::workspace_root())
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // Under the host's directory of lib/rustlib, whichever host that is.
    let rustlib = sysroot.join("lib/rustlib");
    let found = fs::read_dir(&rustlib)
        .map_err(|e| format!("cannot read {}: {e}", rustlib.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/rust-lld"))
        .find(|p| p.is_file());
    let lld = found.ok_or_else(|| format!("no rust-lld under {} (it comes with rustc)", rustlib.display()))?;
    Ok(lld)
}

/// Builds every module and returns them as initrd files.
pub fn build() -> Result<Vec<File>> {
    setup::ensure_rust_target(TARGET)?;
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let dir = target_dir();
    let args = ["build", "--release", "--target", TARGET, "--target-dir"];
    let status = Command::new(&cargo)
        .args(args)
        .arg(&dir)
        .current_dir(modules_dir())
        .stdout(Stdio::from(io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("modules build failed: cargo {} in modules/ ({status})", args.join(" ")).into());
    }
    let lld = rust_lld()?;
    let mut files = Vec::new();
    for name in MODULES {
        let lib = dir.join(TARGET).join("release").join(format!("lib{name}.a"));
        let ko = ko_path(name);
        // A module's own link options, one per line (`evil_reloc` defines
        // the absolute symbol its relocation names).
        let own = fs::read_to_string(modules_dir().join(name).join("link.args")).unwrap_or_default();
        let status = Command::new(&lld)
            .args(["-flavor", "gnu", "-r", "--gc-sections", "-u", "module_init", "-u", "module_exit", "-T"])
            .arg(modules_dir().join("module.ld"))
            .arg("-o")
            .arg(&ko)
            .args(own.lines().map(str::trim).filter(|l| !l.is_empty()))
            .arg(&lib)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", lld.display()))?;
        if !status.success() {
            return Err(format!("linking module {name} failed ({status})").into());
        }
        let data = fs::read(&ko).map_err(|e| format!("cannot read {}: {e}", ko.display()))?;
        files.push(File { guest: format!("lib/modules/{name}.ko"), mode: S_IFREG | 0o644, data });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_is_a_member() {
        let manifest = fs::read_to_string(modules_dir().join("Cargo.toml")).unwrap();
        for name in MODULES {
            assert!(manifest.contains(&format!("\"{name}\"")), "{name} is not in modules/Cargo.toml");
            assert!(modules_dir().join(name).join("src/lib.rs").is_file());
        }
    }
}
