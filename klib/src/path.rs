//! Paths as text: a relative path joined to its directory's, with `.`
//! and `..` folded without looking anything up. For the names the kernel
//! reports (`/proc/PID/fd/N`, `/proc/PID/exe`), not for lookups: a
//! symbolic link on the way is kept as it was named.

use alloc::vec::Vec;

/// `path` made absolute against directory `base` (itself absolute), with
/// empty, `.` and `..` components folded; `..` at the root stays there.
pub fn lexical(base: &[u8], path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let start: &[u8] = if path.starts_with(b"/") { b"" } else { base };
    for part in start.split(|&b| b == b'/').chain(path.split(|&b| b == b'/')) {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    if parts.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for part in parts {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::lexical;

    #[test]
    fn relative_paths_join_their_directory_and_fold_dots() {
        assert_eq!(lexical(b"/tmp/w", b"a.txt"), b"/tmp/w/a.txt");
        assert_eq!(lexical(b"/tmp/w", b"./d/../b//c"), b"/tmp/w/b/c");
        assert_eq!(lexical(b"/tmp", b"/bin/./sh"), b"/bin/sh");
        assert_eq!(lexical(b"/", b"../../x"), b"/x");
        assert_eq!(lexical(b"/a", b".."), b"/");
        assert_eq!(lexical(b"/", b""), b"/");
    }
}
