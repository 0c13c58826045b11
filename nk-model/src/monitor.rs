//! The security monitor's switch as the NK keeps it: on or off, or locked
//! on until the next boot. Every change is a record in the audit chain, so
//! a gap in the log is always explained by the log itself.

use crate::chain::AuditEntry;
use crate::mediate::MediateError;

/// The monitor's state, in NK data (outer code reads it, never writes it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Monitor {
    pub on: bool,
    /// On for good: no switch is accepted until the next boot.
    pub locked: bool,
}

/// What the outer kernel may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Off,
    On,
    /// On, and locked on.
    Lock,
}

impl Request {
    pub const fn as_raw(self) -> u64 {
        match self {
            Self::Off => 0,
            Self::On => 1,
            Self::Lock => 2,
        }
    }

    pub const fn from_raw(raw: u64) -> Option<Self> {
        match raw {
            0 => Some(Self::Off),
            1 => Some(Self::On),
            2 => Some(Self::Lock),
            _ => None,
        }
    }
}

/// The system-call number of a switch record: no system call has it.
pub const SWITCH_NR: u64 = u64::MAX;

impl Monitor {
    /// The state after `raw`, or why it is refused. A locked monitor
    /// refuses every request but `Lock` (which changes nothing); `enforce`
    /// false (the `native` build, which keeps the books but not the rules)
    /// lets a locked monitor be switched off.
    pub fn switch(self, raw: u64, enforce: bool) -> Result<Monitor, MediateError> {
        let request = Request::from_raw(raw).ok_or(MediateError::BadSwitch { raw })?;
        if self.locked && enforce && request != Request::Lock {
            return Err(MediateError::MonitorLocked);
        }
        Ok(match request {
            Request::Off => Monitor { on: false, locked: false },
            Request::On => Monitor { on: true, locked: self.locked && enforce },
            Request::Lock => Monitor { on: true, locked: true },
        })
    }

    /// The record the NK appends when the state changes to `self`, at the
    /// request of code at `caller`.
    pub fn record(self, caller: u64) -> AuditEntry {
        AuditEntry {
            pid: 0,
            nr: SWITCH_NR,
            args: [u64::from(self.on), u64::from(self.locked), caller, 0, 0, 0],
            result: 0,
            flags: AuditEntry::SWITCH,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFF: Monitor = Monitor { on: false, locked: false };
    const ON: Monitor = Monitor { on: true, locked: false };
    const LOCKED: Monitor = Monitor { on: true, locked: true };

    #[test]
    fn an_unlocked_monitor_goes_anywhere() {
        for from in [OFF, ON] {
            assert_eq!(from.switch(0, true), Ok(OFF));
            assert_eq!(from.switch(1, true), Ok(ON));
            assert_eq!(from.switch(2, true), Ok(LOCKED));
        }
    }

    #[test]
    fn a_locked_monitor_stays_on() {
        assert_eq!(LOCKED.switch(0, true), Err(MediateError::MonitorLocked));
        assert_eq!(LOCKED.switch(1, true), Err(MediateError::MonitorLocked));
        assert_eq!(LOCKED.switch(2, true), Ok(LOCKED));
    }

    #[test]
    fn native_ignores_the_lock() {
        assert_eq!(LOCKED.switch(0, false), Ok(OFF));
        assert_eq!(LOCKED.switch(1, false), Ok(ON));
    }

    #[test]
    fn unknown_requests_are_refused_in_both_builds() {
        for raw in [3, 4, u64::MAX, 1 << 32] {
            for enforce in [true, false] {
                assert_eq!(OFF.switch(raw, enforce), Err(MediateError::BadSwitch { raw }));
            }
        }
    }

    #[test]
    fn a_switch_record_names_the_state_and_the_caller_and_is_flagged() {
        let r = LOCKED.record(0xffff_8000_1234_5678);
        assert_eq!((r.nr, r.args[0], r.args[1], r.args[2]), (SWITCH_NR, 1, 1, 0xffff_8000_1234_5678));
        assert_eq!(r.flags, AuditEntry::SWITCH);
    }
}
