//! The initrd's format: cpio "newc" archives (magic `070701`, or `070702`
//! with a checksum of each regular file), as the Linux kernel's initramfs
//! and `cpio -H newc` (`-H crc`) use.
//!
//! Each entry is a 110-byte ASCII header (the magic, then 13 fields of 8 hex
//! digits), the name with its NUL (padded so the data starts 4-aligned),
//! then the data (padded to 4). The entry named `TRAILER!!!` ends the
//! archive. Offsets are counted from the archive's first byte.
//!
//! The archive comes from outside the kernel, so nothing in it is trusted:
//! every size is checked against the bytes that are there, and a malformed
//! entry is an error, never a panic or a read past the end.

use core::fmt;

/// The header's magic: plain newc.
pub const MAGIC: &[u8; 6] = b"070701";
/// newc with a checksum (the sum of the data bytes) in the last field.
pub const MAGIC_CRC: &[u8; 6] = b"070702";
/// Length of the fixed header: the magic and 13 fields of 8 hex digits.
pub const HEADER_LEN: usize = 110;
/// The name of the entry that ends the archive.
pub const TRAILER: &str = "TRAILER!!!";

/// File-type bits of `Entry::mode` (as in `st_mode`).
pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;

/// One member of the archive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Entry<'a> {
    /// The path without a leading `./` or `/` (`bin/init`).
    pub name: &'a str,
    /// File type and permission bits, as `st_mode`.
    pub mode: u32,
    /// The file's contents (a symbolic link's target; empty for a directory).
    pub data: &'a [u8],
}

impl Entry<'_> {
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    /// A symbolic link: `data` is its target.
    pub fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }
}

/// Why an archive does not parse. `offset` is where the entry's header starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CpioError {
    /// The archive ends inside this entry's header, name or data, or before
    /// any `TRAILER!!!` (then `offset` is the archive's length).
    Truncated { offset: usize },
    /// The header does not start with `070701` or `070702`.
    BadMagic { offset: usize },
    /// Field `field` (0 = c_ino ... 12 = c_check) is not 8 hex digits.
    BadField { offset: usize, field: usize },
    /// The name is empty, lacks its NUL, holds a NUL, or is not UTF-8.
    BadName { offset: usize },
    /// A `070702` regular file whose data does not sum to its c_check field.
    BadChecksum { offset: usize },
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CpioError::Truncated { offset } => write!(f, "cpio: archive truncated in the entry at {offset:#x}"),
            CpioError::BadMagic { offset } => write!(f, "cpio: no newc magic at {offset:#x}"),
            CpioError::BadField { offset, field } => {
                write!(f, "cpio: header field {field} of the entry at {offset:#x} is not 8 hex digits")
            }
            CpioError::BadName { offset } => write!(f, "cpio: bad name in the entry at {offset:#x}"),
            CpioError::BadChecksum { offset } => write!(f, "cpio: checksum mismatch in the entry at {offset:#x}"),
        }
    }
}

// Header fields, in order after the magic.
const F_MODE: usize = 1;
const F_FILESIZE: usize = 6;
const F_NAMESIZE: usize = 11;
const F_CHECK: usize = 12;
const FIELDS: usize = 13;

/// The archive's entries in order, up to (not including) the trailer. An
/// error ends the iteration: it is the last item.
pub fn entries(archive: &[u8]) -> Entries<'_> {
    Entries { archive, offset: 0, done: false }
}

/// The iterator behind `entries`.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    archive: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, CpioError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match parse_at(self.archive, self.offset) {
            Ok(Parsed::Entry(entry, next)) => {
                self.offset = next;
                Some(Ok(entry))
            }
            Ok(Parsed::Trailer) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for Entries<'_> {}

/// The contents of the regular file at `path` (a leading `/` or `./` is
/// ignored). When the archive holds the path more than once the last one
/// wins, as when it is unpacked. `None` when there is no such file, when the
/// path is a directory or a link, and when the archive is malformed anywhere
/// before its trailer: a damaged archive is not half-trusted.
pub fn find<'a>(archive: &'a [u8], path: &str) -> Option<&'a [u8]> {
    let path = normalize(path);
    let mut found = None;
    for entry in entries(archive) {
        let entry = entry.ok()?;
        if entry.name == path {
            found = Some(entry);
        }
    }
    found.filter(Entry::is_file).map(|e| e.data)
}

/// `path` without its leading `./` and `/` (any number of them).
pub fn normalize(mut path: &str) -> &str {
    loop {
        if let Some(rest) = path.strip_prefix("./") {
            path = rest;
        } else if let Some(rest) = path.strip_prefix('/') {
            path = rest;
        } else {
            return path;
        }
    }
}

enum Parsed<'a> {
    /// An entry and the offset of the next header.
    Entry(Entry<'a>, usize),
    Trailer,
}

fn parse_at(archive: &[u8], offset: usize) -> Result<Parsed<'_>, CpioError> {
    let truncated = CpioError::Truncated { offset };
    if offset == archive.len() {
        // Clean end of the bytes, but the trailer never came.
        return Err(truncated);
    }
    let header_end = offset.checked_add(HEADER_LEN).ok_or(truncated)?;
    let header = archive.get(offset..header_end).ok_or(truncated)?;
    let (magic, fields) = header.split_at(6);
    let with_crc = match magic {
        m if m == MAGIC => false,
        m if m == MAGIC_CRC => true,
        _ => return Err(CpioError::BadMagic { offset }),
    };
    let mut values = [0u32; FIELDS];
    for (i, (value, digits)) in values.iter_mut().zip(fields.chunks_exact(8)).enumerate() {
        *value = parse_hex(digits).ok_or(CpioError::BadField { offset, field: i })?;
    }

    let name_size = to_usize(values[F_NAMESIZE]).ok_or(truncated)?;
    let name_end = header_end.checked_add(name_size).ok_or(truncated)?;
    let name_bytes = archive.get(header_end..name_end).ok_or(truncated)?;
    let name = parse_name(name_bytes).ok_or(CpioError::BadName { offset })?;
    if name == TRAILER {
        return Ok(Parsed::Trailer);
    }

    let data_start = align4(name_end).ok_or(truncated)?;
    let data_size = to_usize(values[F_FILESIZE]).ok_or(truncated)?;
    let data_end = data_start.checked_add(data_size).ok_or(truncated)?;
    let data = archive.get(data_start..data_end).ok_or(truncated)?;
    // Only regular files carry a sum: GNU cpio writes 0 for the rest, and
    // Linux checks none but theirs.
    if with_crc && values[F_MODE] & S_IFMT == S_IFREG && checksum(data) != values[F_CHECK] {
        return Err(CpioError::BadChecksum { offset });
    }
    // The next header starts after the padding; a missing padding shows up
    // as a truncated next entry.
    let next = align4(data_end).ok_or(truncated)?;
    Ok(Parsed::Entry(Entry { name: normalize(name), mode: values[F_MODE], data }, next))
}

/// Exactly 8 hex digits, either case.
fn parse_hex(digits: &[u8]) -> Option<u32> {
    if digits.len() != 8 {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &b| {
        let d = (b as char).to_digit(16)?;
        Some(acc << 4 | d)
    })
}

/// The name field: the name, then one NUL that ends it.
fn parse_name(bytes: &[u8]) -> Option<&str> {
    let (&nul, name) = bytes.split_last()?;
    if nul != 0 || name.is_empty() || name.contains(&0) {
        return None;
    }
    core::str::from_utf8(name).ok()
}

fn to_usize(v: u32) -> Option<usize> {
    usize::try_from(v).ok()
}

fn align4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

/// The `070702` checksum: the data's bytes summed into 32 bits.
fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)))
}

/// Why `write_newc` cannot write an entry (`index` counts from 0).
#[cfg(any(test, feature = "std"))]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum WriteError {
    /// Empty, holding a NUL, or the trailer's name.
    BadName { index: usize },
    /// Data or name longer than a header field (4 GiB) can say.
    TooLarge { index: usize },
}

#[cfg(any(test, feature = "std"))]
impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WriteError::BadName { index } => write!(f, "cpio: entry {index} has an empty or reserved name, or a NUL"),
            WriteError::TooLarge { index } => write!(f, "cpio: entry {index} is larger than newc can hold (4 GiB)"),
        }
    }
}

/// A newc archive (magic `070701`) of `(name, mode, data)` entries in the
/// given order, then the trailer. Names are written as given; parents are
/// not added. Inode numbers count from 1, link counts are 1, owners and
/// times 0: the same inputs always give the same bytes.
#[cfg(any(test, feature = "std"))]
pub fn write_newc(entries: &[(&str, u32, &[u8])]) -> Result<alloc::vec::Vec<u8>, WriteError> {
    let mut out = alloc::vec::Vec::new();
    for (index, &(name, mode, data)) in entries.iter().enumerate() {
        if name.is_empty() || name.contains('\0') || name == TRAILER {
            return Err(WriteError::BadName { index });
        }
        let size = u32::try_from(data.len()).map_err(|_| WriteError::TooLarge { index })?;
        let ino = u32::try_from(index + 1).map_err(|_| WriteError::TooLarge { index })?;
        push_entry(&mut out, ino, mode, name, data, size).ok_or(WriteError::TooLarge { index })?;
    }
    push_entry(&mut out, 0, 0, TRAILER, &[], 0).ok_or(WriteError::TooLarge { index: entries.len() })?;
    Ok(out)
}

/// The `write_newc` entry of a symbolic link `name` to `target`: mode
/// `S_IFLNK | 0777` and the target as the data, as `cpio -H newc` and the
/// Linux initramfs unpacker have it.
#[cfg(any(test, feature = "std"))]
pub fn symlink_entry<'a>(name: &'a str, target: &'a str) -> (&'a str, u32, &'a [u8]) {
    (name, S_IFLNK | 0o777, target.as_bytes())
}

#[cfg(any(test, feature = "std"))]
fn push_entry(out: &mut alloc::vec::Vec<u8>, ino: u32, mode: u32, name: &str, data: &[u8], size: u32) -> Option<()> {
    use core::fmt::Write;
    let name_size = u32::try_from(name.len().checked_add(1)?).ok()?;
    let nlink = if mode & S_IFMT == S_IFDIR { 2 } else { 1 };
    let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, name_size, 0];
    let mut header = alloc::string::String::with_capacity(HEADER_LEN);
    header.push_str("070701");
    for v in fields {
        write!(header, "{v:08X}").ok()?;
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
    Some(())
}

#[cfg(any(test, feature = "std"))]
fn pad4(out: &mut alloc::vec::Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::string::String;
    use std::vec::Vec;

    extern crate std;

    const FILE: u32 = S_IFREG | 0o755;
    const DIR: u32 = S_IFDIR | 0o755;

    fn all(archive: &[u8]) -> Result<Vec<Entry<'_>>, CpioError> {
        entries(archive).collect()
    }

    fn sample() -> Vec<u8> {
        write_newc(&[("bin", DIR, b""), ("bin/init", FILE, b"\x7fELF init"), ("bin/hello", FILE, b"hi")]).unwrap()
    }

    /// A header with the given fields, as `cpio -H newc` would write it.
    fn header(magic: &str, mode: u32, file_size: u32, name_size: u32, check: u32) -> String {
        let mut h = String::from(magic);
        for v in [1, mode, 0, 0, 1, 0, file_size, 0, 0, 0, 0, name_size, check] {
            h += &std::format!("{v:08x}");
        }
        h
    }

    #[test]
    fn writes_and_reads_entries_in_order() {
        let a = sample();
        assert_eq!(a.len() % 4, 0);
        let e = all(&a).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0], Entry { name: "bin", mode: DIR, data: b"" });
        assert!(e[0].is_dir() && !e[0].is_file());
        assert_eq!(e[1], Entry { name: "bin/init", mode: FILE, data: b"\x7fELF init" });
        assert_eq!(e[2].data, b"hi");
        assert!(e[2].is_file());
    }

    #[test]
    fn layout_matches_newc() {
        let a = write_newc(&[("a", FILE, b"xyz")]).unwrap();
        // Header, "a\0" (already ending 4-aligned at 112), 3 bytes of data
        // padded to 116, then the trailer.
        assert_eq!(&a[..6], b"070701");
        assert_eq!(&a[6..14], b"00000001");
        assert_eq!(&a[14..22], b"000081ED");
        assert_eq!(&a[54..62], b"00000003");
        assert_eq!(&a[94..102], b"00000002");
        assert_eq!(&a[110..112], b"a\0");
        assert_eq!(&a[112..116], b"xyz\0");
        assert_eq!(&a[116..122], b"070701");
        assert_eq!(&a[116 + 110..116 + 121], b"TRAILER!!!\0");
    }

    #[test]
    fn reads_what_gnu_cpio_writes() {
        // Lower-case hex, a `./` name, an odd name length and the trailer
        // padded out to a 512-byte block, as `find . | cpio -o -H newc` gives.
        let mut a = header("070701", FILE, 5, 8, 0).into_bytes();
        a.extend_from_slice(b"./hello\0\0\0"); // 110 + 8, padded to 120
        a.extend_from_slice(b"hello\0\0\0"); // 125, padded to 128
        a.extend_from_slice(header("070701", 0, 0, 11, 0).as_bytes());
        a.extend_from_slice(b"TRAILER!!!\0\0\0\0");
        a.resize(512, 0);
        assert_eq!(all(&a).unwrap(), [Entry { name: "hello", mode: FILE, data: b"hello" }]);
        assert_eq!(find(&a, "hello"), Some(&b"hello"[..]));
    }

    #[test]
    fn crc_variant_checks_the_sum() {
        let sum = u32::from(b'a') + u32::from(b'b');
        let mut a = header("070702", FILE, 2, 2, sum).into_bytes();
        a.extend_from_slice(b"f\0ab\0\0");
        a.extend_from_slice(header("070702", 0, 0, 11, 0).as_bytes());
        a.extend_from_slice(b"TRAILER!!!\0");
        assert_eq!(find(&a, "f"), Some(&b"ab"[..]));
        a[110 + 2] = b'b';
        assert_eq!(all(&a), Err(CpioError::BadChecksum { offset: 0 }));
    }

    #[test]
    fn crc_variant_sums_regular_files_only() {
        // GNU cpio -H crc writes 0 as a link's or a directory's sum.
        let mut a = header("070702", S_IFLNK | 0o777, 1, 2, 0).into_bytes();
        a.extend_from_slice(b"l\0a\0\0\0");
        a.extend_from_slice(header("070702", DIR, 0, 2, 0).as_bytes());
        a.extend_from_slice(b"d\0");
        a.extend_from_slice(header("070702", 0, 0, 11, 0).as_bytes());
        a.extend_from_slice(b"TRAILER!!!\0");
        let e = all(&a).unwrap();
        assert_eq!((e[0].name, e[0].data, e[1].name), ("l", &b"a"[..], "d"));
    }

    #[test]
    fn find_normalizes_and_takes_regular_files_only() {
        let a = sample();
        assert_eq!(find(&a, "bin/hello"), Some(&b"hi"[..]));
        assert_eq!(find(&a, "/bin/hello"), Some(&b"hi"[..]));
        assert_eq!(find(&a, "./bin/init"), Some(&b"\x7fELF init"[..]));
        assert_eq!(find(&a, "bin"), None);
        assert_eq!(find(&a, "bin/"), None);
        assert_eq!(find(&a, "hello"), None);
        assert_eq!(find(&a, TRAILER), None);
        let link = write_newc(&[("sh", S_IFLNK | 0o777, b"bin/hello")]).unwrap();
        assert_eq!(find(&link, "sh"), None);
    }

    #[test]
    fn symlinks_round_trip() {
        let a = write_newc(&[("bin", DIR, b""), symlink_entry("bin/sh", "busybox"), symlink_entry("init", "/bin/sh")])
            .unwrap();
        let e = all(&a).unwrap();
        assert_eq!(e[1], Entry { name: "bin/sh", mode: S_IFLNK | 0o777, data: b"busybox" });
        assert!(e[1].is_symlink() && !e[1].is_file() && !e[1].is_dir());
        assert_eq!((e[2].name, e[2].data), ("init", &b"/bin/sh"[..]));
        assert!(!e[0].is_symlink());
        // One link count and the target's length in c_filesize, as GNU cpio.
        let one = write_newc(&[symlink_entry("l", "abc")]).unwrap();
        assert_eq!(&one[14..22], b"0000A1FF");
        assert_eq!(&one[38..46], b"00000001");
        assert_eq!(&one[54..62], b"00000003");
        assert_eq!(&one[112..116], b"abc\0");
        // Links are not files to `find`.
        assert_eq!(find(&a, "bin/sh"), None);
    }

    #[test]
    fn reads_a_link_as_gnu_cpio_writes_it() {
        // `ln -s busybox sh; echo sh | cpio -o -H newc`: lower-case hex.
        let mut a = header("070701", S_IFLNK | 0o777, 7, 3, 0).into_bytes();
        a.extend_from_slice(b"sh\0\0\0\0busybox\0"); // 113 padded to 116, 123 to 124
        a.extend_from_slice(header("070701", 0, 0, 11, 0).as_bytes());
        a.extend_from_slice(b"TRAILER!!!\0");
        let e = all(&a).unwrap();
        assert_eq!(e, [Entry { name: "sh", mode: S_IFLNK | 0o777, data: b"busybox" }]);
    }

    #[test]
    fn the_last_copy_wins() {
        let a = write_newc(&[("x", FILE, b"old"), ("y", FILE, b""), ("./x", FILE, b"new")]).unwrap();
        assert_eq!(find(&a, "x"), Some(&b"new"[..]));
        assert_eq!(find(&a, "y"), Some(&b""[..]));
    }

    #[test]
    fn names_lose_leading_dots_and_slashes() {
        assert_eq!(normalize("./bin/x"), "bin/x");
        assert_eq!(normalize("/bin/x"), "bin/x");
        assert_eq!(normalize(".//./x"), "x");
        assert_eq!(normalize("."), ".");
        assert_eq!(normalize(".x"), ".x");
        assert_eq!(normalize("../x"), "../x");
    }

    #[test]
    fn empty_archive_and_missing_trailer() {
        assert_eq!(all(b""), Err(CpioError::Truncated { offset: 0 }));
        let a = sample();
        let trailer_at = a.len() - 124;
        let cut = &a[..trailer_at];
        let e: Vec<_> = entries(cut).collect();
        assert_eq!(e.len(), 4);
        assert_eq!(e[3], Err(CpioError::Truncated { offset: trailer_at }));
        assert_eq!(find(cut, "bin/hello"), None);
    }

    #[test]
    fn an_error_ends_the_iteration() {
        let mut a = sample();
        a[0] = b'x';
        let mut it = entries(&a);
        assert_eq!(it.next(), Some(Err(CpioError::BadMagic { offset: 0 })));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
    }

    #[test]
    fn rejects_bad_headers() {
        let good = sample();
        let mut a = good.clone();
        a[6 + 8 + 3] = b'g'; // c_mode
        assert_eq!(all(&a), Err(CpioError::BadField { offset: 0, field: 1 }));
        let mut a = good.clone();
        a[6 + 12 * 8] = b' '; // c_check
        assert_eq!(all(&a), Err(CpioError::BadField { offset: 0, field: 12 }));
        let mut a = good.clone();
        a[6 + 8] = b'+'; // `from_str_radix` would take a sign here
        assert_eq!(all(&a), Err(CpioError::BadField { offset: 0, field: 1 }));
        assert_eq!(all(&good[..109]), Err(CpioError::Truncated { offset: 0 }));
        assert_eq!(all(b"070707"), Err(CpioError::Truncated { offset: 0 }));
        let mut odc = good.clone();
        odc[..6].copy_from_slice(b"070707");
        assert_eq!(all(&odc), Err(CpioError::BadMagic { offset: 0 }));
    }

    #[test]
    fn huge_sizes_are_truncation_not_panics() {
        for (file_size, name_size) in [(u32::MAX, 2), (0, u32::MAX), (u32::MAX, u32::MAX), (0x7fff_ffff, 2)] {
            let mut a = header("070701", FILE, file_size, name_size, 0).into_bytes();
            a.extend_from_slice(b"a\0");
            a.resize(4096, 0);
            assert_eq!(all(&a), Err(CpioError::Truncated { offset: 0 }), "{file_size:#x} {name_size:#x}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        for (size, name) in [(0u32, &b""[..]), (1, b"\0"), (2, b"ab"), (3, b"a\0\0"), (3, b"\xff\xfe\0")] {
            let mut a = header("070701", FILE, 0, size, 0).into_bytes();
            a.extend_from_slice(name);
            a.extend_from_slice(&[0; 8]);
            a.extend_from_slice(&write_newc(&[]).unwrap());
            assert_eq!(all(&a), Err(CpioError::BadName { offset: 0 }), "{name:?}");
        }
    }

    #[test]
    fn trailer_needs_no_padding_after_it() {
        let mut a = header("070701", 0, 0, 11, 0).into_bytes();
        a.extend_from_slice(b"TRAILER!!!\0");
        assert_eq!(all(&a), Ok(Vec::new()));
        assert_eq!(all(&a[..a.len() - 1]), Err(CpioError::Truncated { offset: 0 }));
    }

    #[test]
    fn writer_refuses_what_newc_cannot_say() {
        assert_eq!(write_newc(&[("", FILE, b"")]), Err(WriteError::BadName { index: 0 }));
        assert_eq!(write_newc(&[("a", FILE, b""), ("a\0b", FILE, b"")]), Err(WriteError::BadName { index: 1 }));
        assert_eq!(write_newc(&[(TRAILER, FILE, b"")]), Err(WriteError::BadName { index: 0 }));
        assert_eq!(all(&write_newc(&[]).unwrap()), Ok(Vec::new()));
    }

    #[test]
    fn errors_print_their_offset() {
        assert_eq!(std::format!("{}", CpioError::BadMagic { offset: 0x74 }), "cpio: no newc magic at 0x74");
    }

    fn arb_entries() -> impl Strategy<Value = Vec<(String, u32, Vec<u8>)>> {
        let name = "[a-z0-9_][a-z0-9_.-]{0,15}(/[a-z0-9_.-]{1,12}){0,3}";
        proptest::collection::vec((name, any::<u32>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..8)
    }

    fn write(entries: &[(String, u32, Vec<u8>)]) -> Vec<u8> {
        let borrowed: Vec<(&str, u32, &[u8])> = entries.iter().map(|(n, m, d)| (n.as_str(), *m, &d[..])).collect();
        write_newc(&borrowed).unwrap()
    }

    proptest! {
        #[test]
        fn round_trip(input in arb_entries()) {
            let archive = write(&input);
            prop_assert_eq!(archive.len() % 4, 0);
            let parsed = all(&archive).unwrap();
            prop_assert_eq!(parsed.len(), input.len());
            for (p, (name, mode, data)) in parsed.iter().zip(&input) {
                prop_assert_eq!(p.name, name.as_str());
                prop_assert_eq!(p.mode, *mode);
                prop_assert_eq!(p.data, &data[..]);
            }
            for (name, _, _) in &input {
                let last = input.iter().rev().find(|(n, _, _)| n == name).unwrap();
                let want = (last.1 & S_IFMT == S_IFREG).then_some(&last.2[..]);
                prop_assert_eq!(find(&archive, name), want);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), path in ".{0,12}") {
            let _ = all(&bytes);
            let _ = find(&bytes, &path);
        }

        #[test]
        fn arbitrary_bytes_after_a_magic_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut a = b"070701".to_vec();
            a.extend_from_slice(&bytes);
            let _ = all(&a);
        }

        #[test]
        fn damaged_archives_are_errors_or_entries_never_panics(
            input in arb_entries(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut archive = write(&input);
            for (at, byte) in edits {
                let i = at.index(archive.len());
                archive[i] = byte;
            }
            for e in entries(&archive).flatten() {
                // Whatever parses lies inside the archive.
                let (start, end) = (archive.as_ptr() as usize, archive.as_ptr() as usize + archive.len());
                let data = e.data.as_ptr() as usize;
                prop_assert!(start <= data && data + e.data.len() <= end);
            }
        }

        #[test]
        fn every_cut_short_archive_is_an_error(input in arb_entries(), cut in any::<prop::sample::Index>()) {
            let archive = write(&input);
            // Anywhere before the trailer's name is complete.
            let end = archive.len() - (124 - HEADER_LEN - TRAILER.len() - 1);
            let at = cut.index(end);
            prop_assert!(all(&archive[..at]).is_err());
        }
    }
}
