//! A terminal's line discipline, the part of Linux's `n_tty` that programs
//! see: input edited into lines (canonical mode) or passed on a byte at a
//! time (raw), echoed as termios says, held until read, and watched by
//! `poll`. Pure: the kernel feeds it console bytes and writes its echo.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// `struct termios` as the kernel's TCGETS and TCSETS move it: four flag
/// words, the line discipline, 19 control characters.
pub const TERMIOS_LEN: usize = 36;

// Flag bits (x86-64 values).
pub const ICRNL: u32 = 0o400;
pub const IXON: u32 = 0o2000;
pub const OPOST: u32 = 0o1;
pub const ONLCR: u32 = 0o4;
pub const B38400: u32 = 0o17;
pub const CS8: u32 = 0o60;
pub const CREAD: u32 = 0o200;
pub const HUPCL: u32 = 0o2000;
pub const ISIG: u32 = 0o1;
pub const ICANON: u32 = 0o2;
pub const ECHO: u32 = 0o10;
pub const ECHOE: u32 = 0o20;
pub const ECHOK: u32 = 0o40;
pub const ECHONL: u32 = 0o100;
pub const ECHOCTL: u32 = 0o1000;
pub const ECHOKE: u32 = 0o4000;
pub const TOSTOP: u32 = 0o400;
pub const IEXTEN: u32 = 0o100000;

// Control-character slots.
pub const VINTR: usize = 0;
pub const VQUIT: usize = 1;
pub const VERASE: usize = 2;
pub const VKILL: usize = 3;
pub const VEOF: usize = 4;
pub const VTIME: usize = 5;
pub const VMIN: usize = 6;
pub const VSUSP: usize = 10;

/// Bytes of input held at most, as Linux's `N_TTY_BUF_SIZE`: past it,
/// input is dropped (a line longer than this is cut).
pub const MAX_INPUT: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termios {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: [u8; 19],
}

impl Default for Termios {
    /// What Linux gives a serial console: canonical, echoing, signals on.
    fn default() -> Self {
        // ^C ^\ DEL ^U ^D, VTIME 0, VMIN 1, VSWTC 0, ^Q ^S ^Z, VEOL 0,
        // ^R ^O ^W ^V, VEOL2 0.
        let cc = [3, 0x1c, 0x7f, 0x15, 4, 0, 1, 0, 0x11, 0x13, 0x1a, 0, 0x12, 0x0f, 0x17, 0x16, 0, 0, 0];
        Termios {
            iflag: ICRNL | IXON,
            oflag: OPOST | ONLCR,
            cflag: B38400 | CS8 | CREAD | HUPCL,
            lflag: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
            line: 0,
            cc,
        }
    }
}

impl Termios {
    pub fn to_bytes(&self) -> [u8; TERMIOS_LEN] {
        let mut t = [0u8; TERMIOS_LEN];
        for (i, f) in [self.iflag, self.oflag, self.cflag, self.lflag].iter().enumerate() {
            t[i * 4..i * 4 + 4].copy_from_slice(&f.to_le_bytes());
        }
        t[16] = self.line;
        t[17..].copy_from_slice(&self.cc);
        t
    }

    pub fn from_bytes(t: &[u8; TERMIOS_LEN]) -> Self {
        let word = |i: usize| u32::from_le_bytes([t[i * 4], t[i * 4 + 1], t[i * 4 + 2], t[i * 4 + 3]]);
        let mut cc = [0u8; 19];
        cc.copy_from_slice(&t[17..]);
        Termios { iflag: word(0), oflag: word(1), cflag: word(2), lflag: word(3), line: t[16], cc }
    }

    fn canonical(&self) -> bool {
        self.lflag & ICANON != 0
    }

    /// Whether `b` is the control character in `slot` (0 disables one).
    fn is(&self, b: u8, slot: usize) -> bool {
        self.cc[slot] != 0 && self.cc[slot] == b
    }
}

/// A signal the input asks for (ISIG): the terminal's foreground group
/// gets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Quit,
    Suspend,
}

/// What `read` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// This many bytes were copied (at least one, or none for VMIN 0).
    Bytes(usize),
    /// End of input (VEOF on an empty line): read returns 0.
    End,
    /// Nothing yet: the reader waits.
    Empty,
}

#[derive(Default)]
pub struct Ldisc {
    pub termios: Termios,
    /// The canonical line being edited.
    line: Vec<u8>,
    /// Input a read may take. In canonical mode each entry is one line
    /// (an empty one marks end of input); in raw mode, bytes in arrival
    /// order, which a read takes across entries.
    ready: VecDeque<Vec<u8>>,
    /// Bytes in `line` and `ready` together.
    held: usize,
    /// Bytes that arrived while nobody read, not yet edited or echoed
    /// (`receive`): they are fed in order when a reader wants input, so
    /// scripted input echoes where it is read, while a signal character
    /// among them takes effect at once.
    typeahead: VecDeque<u8>,
}

impl Ldisc {
    /// Feeds one input byte; `echo` gets what the terminal should show.
    /// Returns the signal the byte asks for, if any.
    pub fn feed(&mut self, mut b: u8, echo: &mut impl FnMut(&[u8])) -> Option<Signal> {
        let t = self.termios;
        let echoing = t.lflag & ECHO != 0;
        if b == b'\r' && t.iflag & ICRNL != 0 {
            b = b'\n';
        }
        if t.lflag & ISIG != 0 {
            let signal = if t.is(b, VINTR) {
                Some(Signal::Interrupt)
            } else if t.is(b, VQUIT) {
                Some(Signal::Quit)
            } else if t.is(b, VSUSP) {
                Some(Signal::Suspend)
            } else {
                None
            };
            if let Some(s) = signal {
                // As Linux: the pending input is flushed, and ^C shown.
                self.flush();
                if echoing && t.lflag & ECHOCTL != 0 {
                    echo(&[b'^', b ^ 0x40, b'\n']);
                }
                return Some(s);
            }
        }
        if !t.canonical() {
            if self.held < MAX_INPUT {
                match self.ready.back_mut() {
                    Some(last) if !last.is_empty() => last.push(b),
                    _ => self.ready.push_back(alloc::vec![b]),
                }
                self.held += 1;
                if echoing {
                    echo(&[b]);
                }
            }
            return None;
        }
        if t.is(b, VERASE) || b == 0x08 {
            if self.line.pop().is_some() {
                self.held -= 1;
                if echoing && t.lflag & ECHOE != 0 {
                    echo(b"\x08 \x08");
                }
            }
        } else if t.is(b, VKILL) {
            let n = self.line.len();
            self.line.clear();
            self.held -= n;
            if echoing && t.lflag & ECHOK != 0 {
                (0..n).for_each(|_| echo(b"\x08 \x08"));
            }
        } else if t.is(b, VEOF) {
            // The line as it is, without a newline; on an empty line, a
            // read that returns 0 (bounded: each costs an entry).
            if self.ready.len() < MAX_INPUT {
                self.ready.push_back(core::mem::take(&mut self.line));
            }
        } else if b == b'\n' {
            // A newline has the last byte of room, so a full line can end.
            if self.held >= MAX_INPUT {
                return None;
            }
            self.line.push(b'\n');
            self.held += 1;
            self.ready.push_back(core::mem::take(&mut self.line));
            if echoing || t.lflag & ECHONL != 0 {
                echo(b"\n");
            }
        } else if self.held < MAX_INPUT - 1 {
            self.line.push(b);
            self.held += 1;
            if echoing {
                echo(&[b]);
            }
        }
        None
    }

    /// Takes a byte that arrived while no reader waits. A signal character
    /// (ISIG) acts now: the input before it is dropped, as `feed` drops
    /// the edited input, and the signal is returned. Any other byte waits
    /// in the typeahead for `next_typed`, or is dropped once that holds
    /// `MAX_INPUT` (callers ask `can_receive` first and leave input where
    /// it is).
    pub fn receive(&mut self, b: u8, echo: &mut impl FnMut(&[u8])) -> Option<Signal> {
        let t = self.termios;
        if t.lflag & ISIG != 0 && [VINTR, VQUIT, VSUSP].iter().any(|&slot| t.is(b, slot)) {
            self.typeahead.clear();
            return self.feed(b, echo);
        }
        if self.can_receive() {
            self.typeahead.push_back(b);
        }
        None
    }

    /// Whether `receive` has room for another byte.
    pub fn can_receive(&self) -> bool {
        self.typeahead.len() < MAX_INPUT
    }

    /// The oldest byte `receive` kept, to be fed (or, for the kernel's
    /// shell, taken as it is).
    pub fn next_typed(&mut self) -> Option<u8> {
        self.typeahead.pop_front()
    }

    /// Sets the termios; leaving canonical mode hands the line being
    /// edited to readers, as Linux does.
    pub fn set_termios(&mut self, t: Termios) {
        if self.termios.canonical() && !t.canonical() && !self.line.is_empty() {
            self.ready.push_back(core::mem::take(&mut self.line));
        }
        self.termios = t;
    }

    /// Drops the input not yet read (TCSETSF, TCFLSH).
    pub fn flush(&mut self) {
        self.typeahead.clear();
        self.line.clear();
        self.ready.clear();
        self.held = 0;
    }

    /// Whether a read would return now (poll's POLLIN).
    pub fn readable(&self) -> bool {
        !self.ready.is_empty() || (!self.termios.canonical() && self.termios.cc[VMIN] == 0)
    }

    /// Takes input into `buf`: one line at most in canonical mode; in raw
    /// mode whatever has arrived.
    pub fn read(&mut self, buf: &mut [u8]) -> Read {
        if buf.is_empty() {
            return Read::Bytes(0);
        }
        let canonical = self.termios.canonical();
        let mut n = 0;
        while n < buf.len() {
            let Some(front) = self.ready.front_mut() else { break };
            if front.is_empty() {
                if n > 0 {
                    break;
                }
                self.ready.pop_front();
                return Read::End;
            }
            let take = front.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&front[..take]);
            front.drain(..take);
            n += take;
            self.held -= take;
            if front.is_empty() {
                self.ready.pop_front();
                if canonical {
                    break;
                }
            }
        }
        match n {
            0 if !canonical && self.termios.cc[VMIN] == 0 => Read::Bytes(0),
            0 => Read::Empty,
            n => Read::Bytes(n),
        }
    }

    /// One byte of pending input, for the kernel's own shell once no
    /// program reads the console: nothing typed ahead is lost.
    pub fn take_byte(&mut self) -> Option<u8> {
        if self.ready.is_empty() && !self.line.is_empty() {
            self.ready.push_back(core::mem::take(&mut self.line));
        }
        let front = self.ready.front_mut()?;
        if front.is_empty() {
            self.ready.pop_front();
            // The end of input, as the console's own ^D.
            return Some(4);
        }
        let b = front.remove(0);
        self.held -= 1;
        if front.is_empty() {
            self.ready.pop_front();
        }
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn feed(l: &mut Ldisc, bytes: &[u8]) -> (Vec<u8>, Vec<Signal>) {
        let (mut shown, mut signals) = (Vec::new(), Vec::new());
        for &b in bytes {
            if let Some(s) = l.feed(b, &mut |e: &[u8]| shown.extend_from_slice(e)) {
                signals.push(s);
            }
        }
        (shown, signals)
    }

    fn read(l: &mut Ldisc, n: usize) -> (Read, Vec<u8>) {
        let mut buf = std::vec![0u8; n];
        let r = l.read(&mut buf);
        let got = if let Read::Bytes(k) = r { buf[..k].to_vec() } else { Vec::new() };
        (r, got)
    }

    #[test]
    fn termios_round_trips_through_bytes() {
        let t = Termios::default();
        assert_eq!(Termios::from_bytes(&t.to_bytes()), t);
        assert_eq!(t.to_bytes()[17 + VMIN], 1);
    }

    #[test]
    fn canonical_input_is_edited_and_read_a_line_at_a_time() {
        let mut l = Ldisc::default();
        let (shown, _) = feed(&mut l, b"lx\x7fs\r");
        assert_eq!(shown, b"lx\x08 \x08s\n");
        assert!(l.readable());
        feed(&mut l, b"two\n");
        assert_eq!(read(&mut l, 100), (Read::Bytes(3), b"ls\n".to_vec()));
        assert_eq!(read(&mut l, 2), (Read::Bytes(2), b"tw".to_vec()));
        assert_eq!(read(&mut l, 100), (Read::Bytes(2), b"o\n".to_vec()));
        assert_eq!(read(&mut l, 100).0, Read::Empty);
        assert!(!l.readable());
    }

    #[test]
    fn a_partial_line_is_not_readable_until_it_ends() {
        let mut l = Ldisc::default();
        feed(&mut l, b"abc");
        assert!(!l.readable());
        feed(&mut l, b"\x15xy\x04");
        assert!(l.readable());
        assert_eq!(read(&mut l, 10), (Read::Bytes(2), b"xy".to_vec()));
        feed(&mut l, b"\x04");
        assert_eq!(read(&mut l, 10).0, Read::End);
        assert_eq!(read(&mut l, 10).0, Read::Empty);
    }

    #[test]
    fn raw_input_passes_bytes_and_vmin_0_never_waits() {
        let mut l = Ldisc::default();
        feed(&mut l, b"ab");
        let mut t = l.termios;
        t.lflag &= !(ICANON | ECHO);
        l.set_termios(t);
        // The edited "ab" went to readers with the mode change.
        let (shown, _) = feed(&mut l, b"c\x04\x7f");
        assert!(shown.is_empty());
        assert_eq!(read(&mut l, 100), (Read::Bytes(5), b"abc\x04\x7f".to_vec()));
        assert_eq!(read(&mut l, 100).0, Read::Empty);
        t.cc[VMIN] = 0;
        l.set_termios(t);
        assert!(l.readable());
        assert_eq!(read(&mut l, 100).0, Read::Bytes(0));
    }

    #[test]
    fn signal_characters_flush_and_say_so() {
        let mut l = Ldisc::default();
        let (shown, signals) = feed(&mut l, b"line\n half\x03");
        assert_eq!(signals, [Signal::Interrupt]);
        assert!(shown.ends_with(b"^C\n"));
        assert!(!l.readable());
        assert_eq!(feed(&mut l, b"\x1a\x1c").1, [Signal::Suspend, Signal::Quit]);
        let mut t = l.termios;
        t.lflag &= !ISIG;
        l.set_termios(t);
        assert!(feed(&mut l, b"\x03\n").1.is_empty());
        assert_eq!(read(&mut l, 9), (Read::Bytes(2), b"\x03\n".to_vec()));
    }

    #[test]
    fn typeahead_waits_unechoed_but_a_signal_character_acts_at_once() {
        let mut l = Ldisc::default();
        let mut shown = Vec::new();
        for &b in b"ls\n" {
            assert_eq!(l.receive(b, &mut |e: &[u8]| shown.extend_from_slice(e)), None);
        }
        assert!(shown.is_empty() && !l.readable());
        // Fed when a reader asks: echoed then, in order.
        while let Some(b) = l.next_typed() {
            l.feed(b, &mut |e: &[u8]| shown.extend_from_slice(e));
        }
        assert_eq!(shown, b"ls\n");
        assert_eq!(read(&mut l, 9), (Read::Bytes(3), b"ls\n".to_vec()));
        // ^C drops what was typed before it and says so; what follows waits.
        shown.clear();
        for &b in b"sleep\n" {
            l.receive(b, &mut |e: &[u8]| shown.extend_from_slice(e));
        }
        assert_eq!(l.receive(3, &mut |e: &[u8]| shown.extend_from_slice(e)), Some(Signal::Interrupt));
        assert_eq!(shown, b"^C\n");
        l.receive(b'x', &mut |_: &[u8]| {});
        assert_eq!((l.next_typed(), l.next_typed()), (Some(b'x'), None));
        // Without ISIG, ^C is input like any other.
        let mut t = l.termios;
        t.lflag &= !ISIG;
        l.set_termios(t);
        assert_eq!(l.receive(3, &mut |_: &[u8]| {}), None);
        assert_eq!(l.next_typed(), Some(3));
        // Bounded: past MAX_INPUT bytes are refused, not kept.
        for _ in 0..MAX_INPUT + 10 {
            let _ = l.receive(b'a', &mut |_: &[u8]| {});
        }
        assert!(!l.can_receive());
        assert_eq!(core::iter::from_fn(|| l.next_typed()).count(), MAX_INPUT);
    }

    #[test]
    fn input_past_the_limit_is_dropped_but_a_line_can_end() {
        let mut l = Ldisc::default();
        let long = std::vec![b'x'; MAX_INPUT * 2];
        let (shown, _) = feed(&mut l, &long);
        assert_eq!(shown.len(), MAX_INPUT - 1);
        feed(&mut l, b"\n");
        let (r, got) = read(&mut l, MAX_INPUT * 2);
        assert_eq!(r, Read::Bytes(MAX_INPUT));
        assert_eq!(got.last(), Some(&b'\n'));
        // A flood of lines is bounded too.
        for _ in 0..MAX_INPUT {
            feed(&mut l, b"y\n");
        }
        assert!(l.held <= MAX_INPUT);
        for _ in 0..MAX_INPUT * 2 {
            feed(&mut l, b"\x04");
        }
        assert!(l.ready.len() <= MAX_INPUT);
    }

    #[test]
    fn the_kernel_shell_gets_what_was_typed_ahead() {
        let mut l = Ldisc::default();
        feed(&mut l, b"ps\n\x04nk");
        let got: Vec<u8> = core::iter::from_fn(|| l.take_byte()).collect();
        assert_eq!(got, b"ps\n\x04nk");
        assert_eq!(l.held, 0);
    }
}
