//! `--userland busybox|bash|sash`: Debian's static busybox or bash, fetched
//! through apt (`apt-get download`, never a download from elsewhere),
//! unpacked with `dpkg-deb`, and packed into the initrd next to the
//! project's programs; the kernel starts it as the shell (`init=`).

use crate::Result;
use crate::initrd::File;
use crate::setup;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Userland {
    /// busybox-static: `/bin/busybox` and a link for each applet, `sh` among them.
    Busybox,
    /// bash-static: `/bin/bash`, with busybox's applets as its commands.
    Bash,
    /// sash, the stand-alone shell (static, with its own `-ls`, `-cp` and
    /// the like): `/bin/sash`, with busybox's applets too.
    Sash,
}

impl Userland {
    pub fn parse(s: &str) -> Option<Userland> {
        match s {
            "busybox" => Some(Userland::Busybox),
            "bash" => Some(Userland::Bash),
            "sash" => Some(Userland::Sash),
            _ => None,
        }
    }

    /// The Debian package it comes from.
    pub fn package(self) -> &'static str {
        match self {
            Userland::Busybox => "busybox-static",
            Userland::Bash => "bash-static",
            Userland::Sash => "sash",
        }
    }

    /// The shell the kernel starts (`init=`).
    pub fn shell(self) -> &'static str {
        match self {
            Userland::Busybox => "/bin/sh",
            Userland::Bash => "/bin/bash",
            Userland::Sash => "/bin/sash",
        }
    }

    /// The initrd's files for it: the binary, and for busybox a symbolic
    /// link per applet (`bin/ls -> /bin/busybox`), which replace the
    /// project's own `sh`, `ls`, `cat` and `echo`.
    pub fn files(self) -> Result<Vec<File>> {
        let dir = unpacked(self.package())?;
        // The one user and group, so `id`, `ls -l` and prompts name them.
        let etc = |name: &str, text: &str| File {
            guest: format!("etc/{name}"),
            mode: klib::cpio::S_IFREG | 0o644,
            data: text.as_bytes().to_vec(),
        };
        let mut files = vec![etc("passwd", "root:x:0:0:root:/:/bin/sh\n"), etc("group", "root:x:0:\n")];
        files.extend(self.programs(&dir)?);
        Ok(files)
    }

    fn programs(self, dir: &Path) -> Result<Vec<File>> {
        match self {
            // bash, with busybox's applets for the commands it runs.
            Userland::Bash | Userland::Sash => {
                let (from, to) =
                    if self == Userland::Bash { ("bin/bash-static", "bin/bash") } else { ("bin/sash", "bin/sash") };
                let data = read(&dir.join(from))?;
                let mut files = Userland::Busybox.programs(&unpacked(Userland::Busybox.package())?)?;
                files.push(File { guest: to.into(), mode: klib::cpio::S_IFREG | 0o755, data });
                Ok(files)
            }
            Userland::Busybox => {
                let binary = dir.join("bin/busybox");
                let mut files =
                    vec![File { guest: "bin/busybox".into(), mode: klib::cpio::S_IFREG | 0o755, data: read(&binary)? }];
                for applet in applets(&binary)? {
                    let (name, mode, target) = klib::cpio::symlink_entry(&applet, "/bin/busybox");
                    files.push(File { guest: name.into(), mode, data: target.to_vec() });
                }
                Ok(files)
            }
        }
    }
}

/// Debian's `package`, downloaded and unpacked once under
/// `target/debs/PACKAGE/`.
fn unpacked(package: &str) -> Result<PathBuf> {
    let debs = setup::target_dir().join("debs");
    let dir = debs.join(package);
    if dir.join(".unpacked").is_file() {
        return Ok(dir);
    }
    fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    let deb = match find_deb(&debs, package) {
        Some(d) => d,
        None => {
            if !download(&debs, package)? {
                // The package lists may be missing (a fresh machine): once more after an update.
                eprintln!("userland: apt-get download {package} failed; updating the package lists (apt-get update)");
                let _ = Command::new("apt-get").arg("update").stdout(Stdio::null()).status();
                if !download(&debs, package)? {
                    return Err(format!(
                        "cannot fetch Debian's {package}: `apt-get download {package}` failed (is this a Debian or \
                         Ubuntu machine with its package lists reachable?)"
                    )
                    .into());
                }
            }
            find_deb(&debs, package)
                .ok_or_else(|| format!("apt-get download {package} left no .deb in {}", debs.display()))?
        }
    };
    let _ = fs::remove_dir_all(&dir);
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&dir)
        .status()
        .map_err(|e| format!("cannot run dpkg-deb (Debian's dpkg) to unpack {}: {e}", deb.display()))?;
    if !status.success() {
        return Err(format!("dpkg-deb -x {} failed ({status})", deb.display()).into());
    }
    fs::write(dir.join(".unpacked"), b"").map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn download(debs: &Path, package: &str) -> Result<bool> {
    eprintln!("userland: fetching Debian's {package} (apt-get download {package})");
    let status = Command::new("apt-get")
        .args(["download", package])
        .current_dir(debs)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run apt-get to fetch Debian's {package}: {e}"))?;
    Ok(status.success())
}

fn find_deb(debs: &Path, package: &str) -> Option<PathBuf> {
    let prefix = format!("{package}_");
    fs::read_dir(debs).ok()?.flatten().map(|e| e.path()).find(|p| {
        p.extension().is_some_and(|x| x == "deb")
            && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix))
    })
}

/// Busybox's applets as paths (`bin/ls`, `usr/bin/wc`), from the binary
/// itself (`busybox --list-full`): it is a static x86-64 Linux program,
/// so it runs on this host.
fn applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| format!("cannot run {} --list-full on this host: {e}", busybox.display()))?;
    if !out.status.success() {
        return Err(format!("{} --list-full failed ({})", busybox.display(), out.status).into());
    }
    let list = String::from_utf8_lossy(&out.stdout);
    Ok(list
        .lines()
        .map(str::trim)
        // Safe guest paths only: relative, no empty, `.` or `..` part.
        .filter(|p| {
            !p.is_empty() && !p.starts_with('/') && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        })
        .filter(|p| *p != "bin/busybox")
        .map(String::from)
        .collect())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}
