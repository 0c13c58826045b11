//! `cargo xtask gdb`: boots the kernel with QEMU's GDB stub waiting, and
//! writes the GDB script that attaches to it from another terminal.

use crate::Result;
use crate::build::{self, BuildOptions};
use crate::cli::RunOptions;
use crate::initrd;
use crate::qemu::{self, Machine};
use crate::run;
use crate::setup;
use std::fs;
use std::path::Path;

pub fn gdb(opts: &RunOptions) -> Result<u8> {
    let kernel = build::build_kernel(&BuildOptions { backend: opts.nk, ..Default::default() })?;
    let initrd = initrd::build(&opts.add)?;
    setup::ensure_qemu()?;
    let root = setup::workspace_root();
    let script = setup::target_dir().join("gdb-init");
    let relative = |p: &'_ Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
    fs::write(&script, gdb_script(&relative(&kernel)))
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;

    eprintln!("QEMU starts with the CPU stopped and a GDB stub on localhost:1234.");
    if setup::find_on_path("gdb").is_some() {
        eprintln!("In another terminal, in {}, run:", root.display());
    } else {
        eprintln!("gdb is not on PATH (Debian: apt-get install gdb); then, in {}, run:", root.display());
    }
    eprintln!("    gdb -x {}", relative(&script));
    run::kvm_note(opts.accel);
    // QEMU keeps this terminal for the serial console; GDB gets another.
    let ended = qemu::boot_interactive(&Machine::new(kernel, initrd, opts), true, false, opts.timeout)?;
    Ok(run::report(&ended, opts.timeout))
}

/// The commands that load the kernel's symbols, attach and stop in
/// `kernel_main`. GDB names Rust functions by path: the bare `kernel_main`
/// is "not defined", `kernel::kernel_main` is found.
pub fn gdb_script(kernel: &str) -> String {
    // `hbreak`, a hardware breakpoint: QEMU enters the kernel in 32-bit mode
    // with paging off at a physical address, and the 64-bit code lives at
    // high virtual addresses (0xffffffff8...) that exist only once the
    // trampoline turns paging on. A software breakpoint would be written to
    // an address that is not mapped yet; a debug register just compares the
    // address when the code finally runs.
    format!(
        "file {kernel}\n\
         set architecture i386:x86-64\n\
         target remote localhost:1234\n\
         hbreak kernel::kernel_main\n\
         continue\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_loads_connects_and_breaks_in_hardware() {
        let s = gdb_script("target/x86_64-unknown-none/release/kernel");
        assert_eq!(
            s.lines().collect::<Vec<_>>(),
            [
                "file target/x86_64-unknown-none/release/kernel",
                "set architecture i386:x86-64",
                "target remote localhost:1234",
                "hbreak kernel::kernel_main",
                "continue",
            ]
        );
    }
}
