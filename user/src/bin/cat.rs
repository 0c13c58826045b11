//! `cat [FILE...]`: copies each file, or standard input when there is none
//! (or for `-`), to standard output. A file that cannot be read is reported
//! and skipped; the exit status is then 1.

use std::io::{Read, Write};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names = if args.is_empty() { vec!["-".to_string()] } else { args };
    let mut out = std::io::stdout().lock();
    let mut status = 0;
    for name in &names {
        let copied = if name == "-" {
            copy(&mut std::io::stdin().lock(), &mut out)
        } else {
            std::fs::File::open(name).and_then(|mut f| copy(&mut f, &mut out))
        };
        if let Err(e) = copied {
            eprintln!("cat: {name}: {e}");
            status = 1;
        }
    }
    std::process::exit(status);
}

/// Copies through a fixed buffer and writes each chunk at once: standard
/// output is unbuffered for a pipe reader that waits for data.
fn copy(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}
