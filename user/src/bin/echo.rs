//! `echo [-n] [ARG...]`: prints the arguments joined by single spaces, and a
//! newline unless `-n` comes first.

use std::io::Write;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let newline = args.first().is_none_or(|a| a != "-n");
    if !newline {
        args.remove(0);
    }
    let mut line = args.join(" ");
    if newline {
        line.push('\n');
    }
    // One write, so a pipe reader sees the whole line at once.
    let mut out = std::io::stdout().lock();
    if out.write_all(line.as_bytes()).and_then(|()| out.flush()).is_err() {
        std::process::exit(1);
    }
}
