//! Links the kernel without cargo: the objects of the last cargo build are
//! kept, and the link command rustc ran is replayed with `rust-lld` and a
//! generated linker-script fragment that places every outer-kernel function
//! (docs/scanner.md, *Layout*). A relink takes well under a second, so a
//! scan hit is fixed by moving the function that holds it, not by
//! recompiling.
//!
//! How the objects are kept: cargo builds the kernel with `-C linker`
//! pointing at a small wrapper, `target/link/rust-lld`, which copies the
//! objects rustc deletes after linking (the crate's own codegen units and
//! `symbols.o`) and the argument list to the backend's capture directory,
//! then runs the real `rust-lld`. Naming the wrapper `rust-lld` makes rustc
//! treat it exactly as the real one (`-flavor gnu` first).

use crate::Result;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wrapper rustc runs as its linker.
pub fn wrapper_path() -> PathBuf {
    crate::setup::target_dir().join("link").join("rust-lld")
}

/// The real `rust-lld` of the pinned toolchain.
pub fn real_lld() -> Result<PathBuf> {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(crate::setup::workspace_root())
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let host = Command::new("rustc")
        .args(["-vV"])
        .current_dir(crate::setup::workspace_root())
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or("rustc -vV names no host")?;
    let lld = Path::new(&sysroot).join("lib/rustlib").join(host).join("bin/rust-lld");
    if !lld.is_file() {
        return Err(format!("no rust-lld at {}", lld.display()).into());
    }
    Ok(lld)
}

/// Writes the wrapper (its path stays the same, so cargo's fingerprint of
/// `-C linker` does too; only its contents follow the toolchain).
pub fn write_wrapper() -> Result<PathBuf> {
    let path = wrapper_path();
    let lld = real_lld()?;
    let script = format!(
        "#!/bin/sh\n\
         # Written by cargo xtask (xtask/src/link.rs): keeps the kernel's link\n\
         # inputs in $KERNEL_LINK_CAPTURE so that xtask can relink without cargo.\n\
         if [ -n \"$KERNEL_LINK_CAPTURE\" ]; then\n\
         \x20 dir=\"$KERNEL_LINK_CAPTURE\"\n\
         \x20 rm -rf \"$dir\" && mkdir -p \"$dir/obj\" || exit 1\n\
         \x20 : > \"$dir/args.tmp\"\n\
         \x20 n=0\n\
         \x20 for a in \"$@\"; do\n\
         \x20   case \"$a\" in\n\
         \x20     *.o) n=$((n + 1)); cp \"$a\" \"$dir/obj/$n.o\" || exit 1; a=\"$dir/obj/$n.o\" ;;\n\
         \x20   esac\n\
         \x20   printf '%s\\n' \"$a\" >> \"$dir/args.tmp\"\n\
         \x20 done\n\
         \x20 mv \"$dir/args.tmp\" \"$dir/args\"\n\
         fi\n\
         exec '{}' \"$@\"\n",
        lld.display()
    );
    std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    if std::fs::read_to_string(&path).ok().as_deref() != Some(script.as_str()) {
        std::fs::write(&path, &script).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot make {} executable: {e}", path.display()))?;
    }
    Ok(path)
}

/// A link command rustc ran, with its objects kept.
#[derive(Debug, Clone)]
pub struct Capture {
    pub args: Vec<String>,
}

impl Capture {
    pub fn load(dir: &Path) -> Result<Capture> {
        let text = std::fs::read_to_string(dir.join("args"))
            .map_err(|e| format!("no captured kernel link in {}: {e}", dir.display()))?;
        let args: Vec<String> = text.lines().map(str::to_string).collect();
        for a in args.iter().filter(|a| a.ends_with(".o") || a.ends_with(".rlib")) {
            if !Path::new(a).is_file() {
                return Err(format!("captured link input {a} is gone").into());
            }
        }
        Ok(Capture { args })
    }

    /// Links to `out` with the fragments in `layout_dir` (searched first
    /// for `INCLUDE`), writing the link map to `map`. `extra` inputs (the
    /// filler objects of the scale test) come after the crate's objects;
    /// `script` replaces the linker script when given; `flags` go last.
    #[allow(clippy::too_many_arguments)] // each is one input of the link command
    pub fn link(
        &self,
        lld: &Path,
        layout_dir: &Path,
        out: &Path,
        map: &Path,
        extra: &[PathBuf],
        script: Option<&Path>,
        flags: &[String],
    ) -> Result<()> {
        let mut args: Vec<String> = Vec::new();
        let mut it = self.args.iter().peekable();
        // `-flavor gnu` first, as rustc passed it.
        while let Some(a) = it.next() {
            match a.as_str() {
                "-o" => {
                    it.next();
                }
                a if a.starts_with("-T") && script.is_some() => {
                    args.push(format!("-T{}", script.unwrap().display()));
                }
                "--as-needed" if !extra.is_empty() => {
                    args.extend(extra.iter().map(|p| p.display().to_string()));
                    args.push(a.to_string());
                }
                a => args.push(a.to_string()),
            }
        }
        // The -L search order decides which `outer-layout.ld` INCLUDE finds.
        let at = if args.first().map(String::as_str) == Some("-flavor") { 2 } else { 0 };
        args.insert(at, format!("-L{}", layout_dir.display()));
        args.extend(flags.iter().cloned());
        args.push("-o".into());
        args.push(out.display().to_string());
        args.push(format!("-Map={}", map.display()));
        let output = Command::new(lld)
            .args(&args)
            .current_dir(crate::setup::workspace_root())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", lld.display()))?;
        if !output.status.success() {
            return Err(format!("relink failed: {}", String::from_utf8_lossy(&output.stderr)).into());
        }
        Ok(())
    }
}
