//! `cargo xtask`: the host tool that installs what the kernel needs, builds
//! it and the initrd, boots it in QEMU, runs every test and starts a
//! debugging session, and benchmarks the native kernel against the nested one.

mod attacks;
mod bench;
mod build;
mod cli;
mod fuzz;
mod gdb;
mod initrd;
mod layout;
mod layout_bench;
mod link;
mod modules;
mod nk_text;
mod qemu;
mod run;
mod scan;
mod scan_doc;
mod scenarios;
mod setup;
mod test;
mod userland;

use std::fmt;
use std::process::ExitCode;

/// An error worded for the person at the terminal; `main` prints it.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error(s.to_owned())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xtask: {e}\n");
            eprint!("{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let result = match command {
        cli::Command::Help => {
            print!("{}", cli::USAGE);
            Ok(0)
        }
        // stdout is the kernel's path alone, for scripts; the initrd's goes to stderr.
        cli::Command::Build { nk } => build::build_kernel(&build::BuildOptions { backend: nk, ..Default::default() })
            .and_then(|kernel| initrd::build(&[]).map(|_| kernel))
            .map(|kernel| {
                println!("{}", kernel.display());
                0
            }),
        cli::Command::Run(opts) => run::run(&opts),
        cli::Command::Gdb(opts) => gdb::gdb(&opts),
        cli::Command::Test { filter } => Ok(test::run(filter.as_deref())),
        cli::Command::Bench(opts) => bench::bench(&opts),
        cli::Command::LayoutBench(opts) => layout_bench::run(&opts),
        cli::Command::Fuzz(opts) => fuzz::fuzz(&opts),
        cli::Command::ScanDoc => build::build_kernel(&build::BuildOptions::default()).and_then(|k| scan_doc::write(&k)),
        cli::Command::Scan { path, sites } => {
            let path = match path {
                Some(p) => Ok(std::path::PathBuf::from(p)),
                None => build::build_unscanned(&build::BuildOptions::default()),
            };
            path.and_then(|k| if sites { scan::sites_command(&k) } else { scan::scan_command(&k) })
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
