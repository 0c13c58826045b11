//! The kernel command line: whitespace-separated words, `key` or
//! `key=value`, checked against the words the kernel knows.

/// One word of the command line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Word<'a> {
    pub key: &'a str,
    pub value: Option<&'a str>,
    /// The word as written, for messages.
    pub raw: &'a str,
}

pub fn words(cmdline: &str) -> impl Iterator<Item = Word<'_>> {
    cmdline.split_ascii_whitespace().map(|raw| match raw.split_once('=') {
        Some((key, value)) => Word { key, value: Some(value), raw },
        None => Word { key: raw, value: None, raw },
    })
}

/// The value of the last `key` or `key=value` word; `Some(None)` for a bare key.
pub fn get<'a>(cmdline: &'a str, key: &str) -> Option<Option<&'a str>> {
    words(cmdline).filter(|w| w.key == key).last().map(|w| w.value)
}

/// Words whose key is not in `known`.
pub fn unknown<'a>(cmdline: &'a str, known: &'a [&'a str]) -> impl Iterator<Item = Word<'a>> {
    words(cmdline).filter(move |w| !known.contains(&w.key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_keys_and_values() {
        let w: std::vec::Vec<_> = words("  test=heap  quiet a=b=c ").collect();
        assert_eq!(w[0], Word { key: "test", value: Some("heap"), raw: "test=heap" });
        assert_eq!(w[1], Word { key: "quiet", value: None, raw: "quiet" });
        assert_eq!(w[2], Word { key: "a", value: Some("b=c"), raw: "a=b=c" });
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn last_word_wins() {
        assert_eq!(get("test=a test=b", "test"), Some(Some("b")));
        assert_eq!(get("test", "test"), Some(None));
        assert_eq!(get("other", "test"), None);
    }

    #[test]
    fn reports_unknown_words() {
        let u: std::vec::Vec<_> = unknown("test frob=1 x", &["test"]).map(|w| w.raw).collect();
        assert_eq!(u, ["frob=1", "x"]);
    }

    extern crate std;
}
