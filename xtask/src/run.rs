//! `cargo xtask run`: builds the kernel and the initrd, boots them in QEMU on this terminal,
//! and turns how the guest stopped into our exit status.

use crate::Result;
use crate::build::{self, BuildOptions};
use crate::cli::{Accel, RunOptions};
use crate::initrd;
use crate::qemu::{self, EXIT_SUCCESS, Ended, Machine};
use crate::setup;
use std::time::Duration;

pub fn run(opts: &RunOptions) -> Result<u8> {
    let kernel = build::build_kernel(&BuildOptions { backend: opts.nk, ..Default::default() })?;
    let mut opts = opts.clone();
    let initrd = match opts.userland {
        None => initrd::build(&opts.add)?,
        Some(u) => {
            let path = crate::setup::target_dir().join(format!("initrd-{}.cpio", u.package()));
            let initrd = initrd::build_with(&opts.add, u.files()?, &path)?;
            opts.cmdline = format!("{} init={}", opts.cmdline, u.shell()).trim().to_string();
            initrd
        }
    };
    let opts = &opts;
    setup::ensure_qemu()?;
    kvm_note(opts.accel);
    let ended = qemu::boot_interactive(&Machine::new(kernel, initrd, opts), false, opts.boot_time, opts.timeout)?;
    Ok(report(&ended, opts.timeout))
}

pub fn kvm_note(accel: Accel) {
    if accel == Accel::Kvm {
        eprintln!("note: --accel kvm is opt-in: KVM runs ring 0 here, and it is not the tested path (TCG is)");
    }
}

/// Prints why the run failed, if it did, and gives the exit status.
pub fn report(ended: &Ended, timeout: Option<Duration>) -> u8 {
    match verdict(ended, timeout) {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("{why}");
            1
        }
    }
}

/// Only the guest's own success (isa-debug-exit 0x10, status 33) is
/// success: quitting QEMU, a triple fault and a timeout are all failures.
pub fn verdict(ended: &Ended, timeout: Option<Duration>) -> Result<(), String> {
    if ended.timed_out {
        let secs = timeout.map_or(0, |t| t.as_secs());
        return Err(format!("qemu stopped after the {secs} s timeout (guest failure)"));
    }
    match ended.status.code() {
        Some(EXIT_SUCCESS) => Ok(()),
        Some(0) => Err("qemu exited with status 0 (guest failure)\n\
             (status 0: QEMU was quit, or the guest triple-faulted under -no-reboot)"
            .into()),
        Some(code) => Err(format!("qemu exited with status {code} (guest failure)")),
        None => Err(format!("{} (guest failure)", qemu::describe_status(ended.status))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    fn ended(raw: i32, timed_out: bool) -> Ended {
        Ended { status: ExitStatus::from_raw(raw), timed_out }
    }

    #[test]
    fn only_33_is_success() {
        assert_eq!(verdict(&ended(33 << 8, false), None), Ok(()));
        assert_eq!(verdict(&ended(35 << 8, false), None), Err("qemu exited with status 35 (guest failure)".into()));
        assert_eq!(verdict(&ended(1 << 8, false), None), Err("qemu exited with status 1 (guest failure)".into()));
        assert!(verdict(&ended(0, false), None).unwrap_err().starts_with("qemu exited with status 0 (guest failure)"));
        assert_eq!(verdict(&ended(9, false), None), Err("qemu was killed by signal 9 (guest failure)".into()));
    }

    #[test]
    fn a_timeout_fails_even_after_success() {
        let why = verdict(&ended(33 << 8, true), Some(Duration::from_secs(5))).unwrap_err();
        assert_eq!(why, "qemu stopped after the 5 s timeout (guest failure)");
    }
}
