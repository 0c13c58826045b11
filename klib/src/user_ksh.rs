//! Which kernel-shell lines a user program may run through system call
//! 1000, by the boot command line's `ksh.user=off|ro|on` (default `ro`).
//!
//! The kernel shell is the machine's console: it can switch the security
//! monitor off, run attacks that play a compromised kernel, start programs
//! and stop the machine. A process must not be able to lower the
//! protection it runs under, so from user space:
//! - `off`: nothing.
//! - `ro` (the default): commands that only report (`nk stat|audit|
//!   services|verify ...|bench`, `ps`, `sys stat`, `audit [N]|verify`), and `audit
//!   on` and `audit lock`, which only raise protection (a ratchet: `audit
//!   off` is refused, so a process can switch the monitor on and never off).
//! - `on` (a research boot that asks for it): also `audit off` and
//!   `attack ...`.
//!
//! `poweroff`, `run`, `crash` and every other command stay the console's
//! in every mode.

/// The `ksh.user` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Off,
    ReadOnly,
    On,
}

impl Mode {
    /// The mode a `ksh.user` value names; `None` for an unknown value.
    pub fn parse(value: &str) -> Option<Mode> {
        match value {
            "off" => Some(Mode::Off),
            "ro" => Some(Mode::ReadOnly),
            "on" => Some(Mode::On),
            _ => None,
        }
    }
}

/// Whether a user program may run `line` under `mode`.
pub fn allowed(mode: Mode, line: &str) -> bool {
    let mut words = line.split_ascii_whitespace();
    let (first, second) = (words.next(), words.next());
    let reads = match (first, second) {
        (Some("nk"), Some("stat" | "audit" | "services" | "verify" | "bench")) => true,
        (Some("ps"), None) => true,
        (Some("sys"), Some("stat")) => true,
        (Some("audit"), None | Some("verify" | "on" | "lock")) => true,
        (Some("audit"), Some(n)) => n.parse::<u64>().is_ok(),
        _ => false,
    };
    let changes = matches!((first, second), (Some("attack"), _) | (Some("audit"), Some("off")));
    match mode {
        Mode::Off => false,
        Mode::ReadOnly => reads,
        Mode::On => reads || changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_reports_and_raises_but_never_lowers() {
        for line in [
            "nk stat",
            "nk audit",
            "nk verify proc",
            "ps",
            "sys stat",
            "audit",
            "audit 10",
            "audit verify",
            "audit on",
            "audit lock",
        ] {
            assert!(allowed(Mode::ReadOnly, line), "{line}");
            assert!(!allowed(Mode::Off, line), "{line}");
        }
        for line in ["audit off", "audit  off", "attack all", "poweroff", "run /bin/hello", "crash panic", "", "nk"] {
            assert!(!allowed(Mode::ReadOnly, line), "{line}");
        }
    }

    #[test]
    fn on_adds_the_monitor_switch_and_attacks_only() {
        assert!(allowed(Mode::On, "audit off") && allowed(Mode::On, "attack list"));
        for line in ["poweroff", "run /bin/sh", "crash page-fault", "mem", "audit -1"] {
            assert!(!allowed(Mode::On, line), "{line}");
        }
        assert_eq!(Mode::parse("ro"), Some(Mode::ReadOnly));
        assert_eq!(Mode::parse("yes"), None);
    }
}
