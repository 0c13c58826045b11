//! The initrd: builds the user programs in `user/` (static Linux x86-64
//! binaries, musl) and the modules in `modules/` (`lib/modules/NAME.ko`),
//! and packs them with any `--add` files into
//! `target/initrd.cpio`, a cpio newc archive written by `klib::cpio`, the
//! same module the kernel reads it with. QEMU hands it over with `-initrd`.

use crate::Result;
use crate::cli::AddFile;
use crate::setup;
use klib::cpio::{S_IFDIR, S_IFMT, S_IFREG};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::{env, fs, io};

/// The user programs' Rust target: static, Linux system calls.
pub const USER_TARGET: &str = "x86_64-unknown-linux-musl";
/// The programs `user/` builds, packed as `bin/NAME`.
pub const PROGRAMS: &[&str] =
    &["hello", "init", "sh", "utest", "bench", "tiny", "echo", "cat", "ls", "hostile", "fuzz"];
/// What the built programs are: regular files, rwxr-xr-x.
pub const PROGRAM_MODE: u32 = S_IFREG | 0o755;
const DIR_MODE: u32 = S_IFDIR | 0o755;

pub fn user_dir() -> PathBuf {
    setup::workspace_root().join("user")
}

pub fn program_path(name: &str) -> PathBuf {
    setup::target_dir().join("user").join(USER_TARGET).join("release").join(name)
}

pub fn initrd_path() -> PathBuf {
    setup::target_dir().join("initrd.cpio")
}

pub fn cargo_args() -> Vec<String> {
    let target_dir = setup::target_dir().join("user").display().to_string();
    ["build", "--release", "--target", USER_TARGET, "--target-dir", &target_dir].map(String::from).to_vec()
}

/// Builds the user programs and packs them, then `extra`, into
/// `target/initrd.cpio`; returns its path.
pub fn build(extra: &[AddFile]) -> Result<PathBuf> {
    build_with(extra, Vec::new(), &initrd_path())
}

/// As `build`, with `more` files after the programs (a userland) and
/// before `extra`, written to `initrd`.
pub fn build_with(extra: &[AddFile], more: Vec<File>, initrd: &Path) -> Result<PathBuf> {
    build_programs()?;
    let mut files = Vec::new();
    for name in PROGRAMS {
        let path = program_path(name);
        files.push(File { guest: format!("bin/{name}"), mode: PROGRAM_MODE, data: read(&path)? });
    }
    files.extend(crate::modules::build()?);
    files.extend(more);
    for add in extra {
        files.push(read_added(add)?);
    }
    let archive = pack(files)?;
    let initrd = initrd.to_path_buf();
    write_atomically(&initrd, &archive)?;
    eprintln!("initrd: {} ({} bytes)", initrd.display(), archive.len());
    Ok(initrd)
}

fn build_programs() -> Result<()> {
    setup::ensure_rust_target(USER_TARGET)?;
    // The cargo that runs us, when there is one: same toolchain, no proxy.
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let args = cargo_args();
    let status = Command::new(&cargo)
        .args(&args)
        // user/ is its own workspace; rust-toolchain.toml above it pins the toolchain.
        .current_dir(user_dir())
        .stdout(Stdio::from(io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("user programs build failed: cargo {} in user/ ({status})", args.join(" ")).into());
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}

/// An `--add` file, keeping its permission bits.
fn read_added(add: &AddFile) -> Result<File> {
    use std::os::unix::fs::PermissionsExt;
    let shown = add.host.display();
    let meta = fs::metadata(&add.host).map_err(|e| format!("--add {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("--add {shown}: not a regular file").into());
    }
    let mode = S_IFREG | (meta.permissions().mode() & 0o7777);
    Ok(File { guest: add.guest.clone(), mode, data: read(&add.host)? })
}

/// One file for the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// A relative path with no empty, `.` or `..` component (cli checks it).
    pub guest: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// The archive's entries: each file after its parent directories (each
/// directory once, before anything in it), a later file at a path taking
/// an earlier one's place. A path that is both a file and a directory
/// (`bin` and `bin/x`) is an error.
pub fn entries(files: Vec<File>) -> Result<Vec<File>> {
    let mut out: Vec<File> = Vec::new();
    for file in files {
        let mut dir = String::new();
        let mut components = file.guest.split('/').peekable();
        while let Some(component) = components.next() {
            if components.peek().is_none() {
                break;
            }
            if !dir.is_empty() {
                dir.push('/');
            }
            dir.push_str(component);
            match out.iter().find(|e| e.guest == dir) {
                Some(e) if e.mode & S_IFMT != S_IFDIR => {
                    return Err(format!("initrd: {dir} is a file, so {} cannot be in it", file.guest).into());
                }
                Some(_) => {}
                None => out.push(File { guest: dir.clone(), mode: DIR_MODE, data: Vec::new() }),
            }
        }
        match out.iter_mut().find(|e| e.guest == file.guest) {
            Some(e) if e.mode & S_IFMT == S_IFDIR => {
                return Err(format!("initrd: {} is a directory, so a file cannot go there", file.guest).into());
            }
            Some(e) => {
                eprintln!("initrd: a later file replaces {}", file.guest);
                *e = file;
            }
            None => out.push(file),
        }
    }
    Ok(out)
}

/// The cpio newc archive of `files` (see `entries`).
pub fn pack(files: Vec<File>) -> Result<Vec<u8>> {
    let entries = entries(files)?;
    let borrowed: Vec<(&str, u32, &[u8])> = entries.iter().map(|f| (f.guest.as_str(), f.mode, &f.data[..])).collect();
    klib::cpio::write_newc(&borrowed).map_err(|e| format!("initrd: {e}").into())
}

/// Writes through a temporary file and a rename, so a QEMU starting
/// meanwhile (another xtask) never reads half an archive.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("cpio.{}.tmp", std::process::id()));
    fs::write(&tmp, bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display()).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use klib::cpio;

    fn file(guest: &str, data: &[u8]) -> File {
        File { guest: guest.into(), mode: PROGRAM_MODE, data: data.to_vec() }
    }

    fn names(files: &[File]) -> Vec<&str> {
        files.iter().map(|f| f.guest.as_str()).collect()
    }

    #[test]
    fn parents_come_first_and_once() {
        let e = entries(vec![file("bin/hello", b"h"), file("bin/init", b"i"), file("usr/lib/x/y", b"")]).unwrap();
        assert_eq!(names(&e), ["bin", "bin/hello", "bin/init", "usr", "usr/lib", "usr/lib/x", "usr/lib/x/y"]);
        assert_eq!(e[0].mode, S_IFDIR | 0o755);
        assert_eq!(e[1].mode, S_IFREG | 0o755);
        assert_eq!(names(&entries(vec![file("top", b"")]).unwrap()), ["top"]);
    }

    #[test]
    fn a_later_file_replaces_an_earlier_one_in_place() {
        let e = entries(vec![file("bin/init", b"old"), file("bin/hello", b""), file("bin/init", b"new")]).unwrap();
        assert_eq!(names(&e), ["bin", "bin/init", "bin/hello"]);
        assert_eq!(e[1].data, b"new");
    }

    #[test]
    fn a_path_is_a_file_or_a_directory() {
        assert!(entries(vec![file("bin/x", b""), file("bin", b"")]).is_err());
        assert!(entries(vec![file("bin", b""), file("bin/x", b"")]).is_err());
        assert!(entries(vec![file("a/b", b""), file("a/b/c", b"")]).is_err());
    }

    #[test]
    fn klib_reads_what_we_pack() {
        let archive = pack(vec![file("bin/hello", b"\x7fELF hello"), file("bin/init", b"\x7fELF init")]).unwrap();
        assert_eq!(cpio::find(&archive, "bin/hello"), Some(&b"\x7fELF hello"[..]));
        assert_eq!(cpio::find(&archive, "/bin/init"), Some(&b"\x7fELF init"[..]));
        let all: Vec<_> = cpio::entries(&archive).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 3);
        assert!(all[0].is_dir() && all[0].name == "bin");
        assert_eq!(all[1].mode, 0o100755);
    }

    #[test]
    fn paths_live_under_target() {
        assert!(initrd_path().ends_with("target/initrd.cpio") || env::var_os("CARGO_TARGET_DIR").is_some());
        assert!(program_path("hello").ends_with("user/x86_64-unknown-linux-musl/release/hello"));
        assert!(user_dir().join("Cargo.toml").is_file());
        let args = cargo_args().join(" ");
        assert!(args.starts_with("build --release --target x86_64-unknown-linux-musl --target-dir "));
        assert!(args.ends_with("/user"));
    }
}
