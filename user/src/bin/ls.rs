//! `ls [-l] [PATH...]`: lists each directory's entries (or `.`), one name a
//! line, sorted; a file argument lists itself. `-l` adds the type and
//! permission bits and the size. A path that cannot be read is reported and
//! the exit status is 1.

use std::fs::Metadata;
use std::os::unix::fs::PermissionsExt;

fn main() {
    let mut long = false;
    let mut paths = Vec::new();
    for arg in std::env::args().skip(1) {
        if arg == "-l" {
            long = true;
        } else {
            paths.push(arg);
        }
    }
    if paths.is_empty() {
        paths.push(".".into());
    }
    let mut status = 0;
    for (i, path) in paths.iter().enumerate() {
        if let Err(e) = list(path, long, paths.len() > 1 && i > 0, paths.len() > 1) {
            eprintln!("ls: {path}: {e}");
            status = 1;
        }
    }
    std::process::exit(status);
}

/// Lists one argument; with several, a directory's listing gets a `PATH:`
/// header, after a blank line unless it comes first.
fn list(path: &str, long: bool, gap: bool, header: bool) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        print_entry(path, &meta, long);
        return Ok(());
    }
    if gap {
        println!();
    }
    if header {
        println!("{path}:");
    }
    let mut entries: Vec<(String, Option<Metadata>)> = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = if long { entry.metadata().ok() } else { None };
        entries.push((entry.file_name().to_string_lossy().into_owned(), meta));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, meta) in &entries {
        match meta {
            Some(meta) => print_entry(name, meta, true),
            None => println!("{name}"),
        }
    }
    Ok(())
}

fn print_entry(name: &str, meta: &Metadata, long: bool) {
    if long {
        println!("{} {:>8} {name}", mode_string(meta), meta.len());
    } else {
        println!("{name}");
    }
}

/// `drwxr-xr-x`: the file type, then read, write and execute for owner,
/// group and others.
fn mode_string(meta: &Metadata) -> String {
    let kind = if meta.is_dir() {
        'd'
    } else if meta.file_type().is_symlink() {
        'l'
    } else if meta.is_file() {
        '-'
    } else {
        '?'
    };
    let mode = meta.permissions().mode();
    let mut s = String::from(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}
