//! A line editor for a serial console: printable input is echoed, backspace
//! and Ctrl-U edit, Enter completes the line, and input past the capacity is
//! dropped (and remembered, so the caller can say the line was cut).

/// What the caller should do after feeding one byte.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    /// Nothing to do.
    None,
    /// Echo these bytes to the terminal.
    Echo(&'static [u8]),
    /// Echo this one input byte.
    EchoByte(u8),
    /// Erase `n` characters on the terminal.
    Erase(usize),
    /// A line is complete: call [`LineEditor::line`], then [`LineEditor::clear`].
    Line,
    /// Ctrl-C: the line was abandoned.
    Cancel,
    /// Ctrl-D on an empty line: the end of input.
    End,
}

pub struct LineEditor<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// Bytes dropped because the line was full.
    dropped: usize,
    /// Inside an escape sequence (arrow keys and the like), which is ignored.
    escape: u8,
    /// The last byte was CR, so a following LF belongs to the same Enter.
    after_cr: bool,
}

impl<const N: usize> Default for LineEditor<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineEditor<N> {
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0, dropped: 0, escape: 0, after_cr: false }
    }

    /// The line so far (valid UTF-8 prefix only).
    pub fn line(&self) -> &str {
        let bytes = &self.buf[..self.len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// How many bytes were dropped from the current line for lack of room.
    pub const fn dropped(&self) -> usize {
        self.dropped
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.dropped = 0;
    }

    pub fn feed(&mut self, b: u8) -> Event {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match self.escape {
            1 => {
                self.escape = if b == b'[' || b == b'O' { 2 } else { 0 };
                return Event::None;
            }
            2 => {
                // CSI parameters continue until a final byte in 0x40..=0x7e.
                if (0x40..=0x7e).contains(&b) {
                    self.escape = 0;
                }
                return Event::None;
            }
            _ => {}
        }
        match b {
            b'\n' if after_cr => Event::None,
            b'\r' | b'\n' => {
                self.after_cr = b == b'\r';
                Event::Line
            }
            0x1b => {
                self.escape = 1;
                Event::None
            }
            0x08 | 0x7f => {
                if self.dropped > 0 {
                    self.dropped -= 1;
                    Event::None
                } else if self.len > 0 {
                    self.len -= 1;
                    // Remove a whole UTF-8 character.
                    while self.len > 0 && self.buf[self.len] & 0xc0 == 0x80 {
                        self.len -= 1;
                    }
                    Event::Erase(1)
                } else {
                    Event::None
                }
            }
            0x15 => {
                let n = self.line().chars().count();
                self.clear();
                Event::Erase(n)
            }
            0x03 => {
                self.clear();
                Event::Cancel
            }
            // As a terminal's EOF: only on an empty line (elsewhere ignored).
            0x04 if self.len == 0 && self.dropped == 0 => Event::End,
            b'\t' | 0x20.. => {
                let b = if b == b'\t' { b' ' } else { b };
                if self.len < N {
                    self.buf[self.len] = b;
                    self.len += 1;
                    Event::EchoByte(b)
                } else {
                    self.dropped += 1;
                    if self.dropped == 1 { Event::Echo(b"\x07") } else { Event::None }
                }
            }
            _ => Event::None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ctrl_d_ends_input_only_on_an_empty_line() {
        let mut ed = LineEditor::<8>::new();
        assert_eq!(ed.feed(0x04), Event::End);
        ed.feed(b'a');
        assert_eq!(ed.feed(0x04), Event::None);
        assert_eq!(ed.line(), "a");
        ed.feed(0x7f);
        assert_eq!(ed.feed(0x04), Event::End);
    }

    use super::*;

    fn feed_all<const N: usize>(ed: &mut LineEditor<N>, input: &[u8]) -> usize {
        input.iter().filter(|&&b| ed.feed(b) == Event::Line).count()
    }

    #[test]
    fn builds_a_line_and_completes_on_enter() {
        let mut ed = LineEditor::<16>::new();
        assert_eq!(feed_all(&mut ed, b"help"), 0);
        assert_eq!(ed.feed(b'\r'), Event::Line);
        assert_eq!(ed.line(), "help");
        ed.clear();
        // The LF of a CRLF pair is not a second Enter.
        assert_eq!(ed.feed(b'\n'), Event::None);
        assert_eq!(ed.feed(b'\n'), Event::Line);
    }

    #[test]
    fn backspace_and_kill_line() {
        let mut ed = LineEditor::<16>::new();
        feed_all(&mut ed, b"memx\x7f");
        assert_eq!(ed.line(), "mem");
        assert_eq!(ed.feed(0x15), Event::Erase(3));
        assert_eq!(ed.line(), "");
        assert_eq!(ed.feed(0x7f), Event::None);
    }

    #[test]
    fn over_long_input_is_cut_and_counted() {
        let mut ed = LineEditor::<4>::new();
        feed_all(&mut ed, b"abcdefgh");
        assert_eq!(ed.line(), "abcd");
        assert_eq!(ed.dropped(), 4);
        ed.clear();
        assert_eq!(ed.dropped(), 0);
    }

    #[test]
    fn escape_sequences_are_ignored() {
        let mut ed = LineEditor::<16>::new();
        feed_all(&mut ed, b"up\x1b[A\x1b[1;5Cx");
        assert_eq!(ed.line(), "upx");
    }

    #[test]
    fn control_bytes_and_utf8() {
        let mut ed = LineEditor::<16>::new();
        feed_all(&mut ed, "a\u{1}é".as_bytes());
        assert_eq!(ed.line(), "aé");
        ed.feed(0x7f);
        assert_eq!(ed.line(), "a");
        assert_eq!(ed.feed(0x03), Event::Cancel);
        assert_eq!(ed.line(), "");
    }
}
