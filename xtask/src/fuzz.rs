//! `cargo xtask fuzz`: boots one kernel and runs the system-call fuzzer
//! for a longer budget than `cargo xtask test` gives it, with the same
//! checks (the kernel survives, the audit is clean, every frame is back).

use crate::build::{self, BuildOptions};
use crate::test::Tally;

pub fn fuzz(opts: &crate::cli::FuzzOptions) -> crate::Result<u8> {
    let kernel = build::build_kernel(&BuildOptions { backend: opts.nk, ..Default::default() })?;
    let initrd = crate::initrd::build(&[])?;
    let mut tally = Tally::default();
    crate::scenarios::run_fuzz_long(&kernel, Some(&initrd), opts.seed, opts.calls, &mut tally);
    println!("{}", tally.summary());
    Ok(if tally.failed > 0 { 1 } else { 0 })
}
