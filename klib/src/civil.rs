//! Calendar arithmetic for the wall clock: the CMOS RTC's date and time
//! (BCD or binary, as its status register says) to seconds since the Unix
//! epoch, and back for `/proc` and the like. Proleptic Gregorian, UTC.

/// A date and time as the RTC keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub year: u32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// A BCD byte (0x59 is 59); `None` if a nibble is not a decimal digit.
pub fn from_bcd(b: u8) -> Option<u32> {
    let (hi, lo) = (u32::from(b >> 4), u32::from(b & 0xf));
    (hi < 10 && lo < 10).then_some(hi * 10 + lo)
}

/// Days from 1970-01-01 to `year-month-day` (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl DateTime {
    /// Seconds since the epoch; `None` for a date that cannot be (a month
    /// 13, a day 32, a time 25:00, a year before 1970), as a dead or
    /// unset RTC may report.
    pub fn unix_seconds(&self) -> Option<u64> {
        let days_in = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let leap = (self.year.is_multiple_of(4) && !self.year.is_multiple_of(100)) || self.year.is_multiple_of(400);
        let month_ok = (1..=12).contains(&self.month);
        let max_day = if !month_ok {
            0
        } else if self.month == 2 && leap {
            29
        } else {
            days_in[self.month as usize - 1]
        };
        if self.year < 1970 || !month_ok || !(1..=max_day).contains(&self.day) {
            return None;
        }
        if self.hour > 23 || self.minute > 59 || self.second > 59 {
            return None;
        }
        let days = days_from_civil(i64::from(self.year), i64::from(self.month), i64::from(self.day));
        let secs = days * 86_400 + i64::from(self.hour * 3600 + self.minute * 60 + self.second);
        u64::try_from(secs).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(year: u32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<u64> {
        DateTime { year, month, day, hour, minute, second }.unix_seconds()
    }

    #[test]
    fn known_instants() {
        // Checked against Python's calendar.timegm.
        assert_eq!(at(1970, 1, 1, 0, 0, 0), Some(0));
        assert_eq!(at(2000, 2, 29, 23, 59, 59), Some(951_868_799));
        assert_eq!(at(2026, 12, 3, 12, 0, 0), Some(1_796_299_200));
        assert_eq!(at(2100, 3, 1, 0, 0, 0), Some(4_107_542_400));
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert_eq!(at(2023, 2, 29, 0, 0, 0), None);
        assert_eq!(at(2100, 2, 29, 0, 0, 0), None);
        assert_eq!(at(2026, 13, 1, 0, 0, 0), None);
        assert_eq!(at(2026, 0, 1, 0, 0, 0), None);
        assert_eq!(at(2026, 4, 31, 0, 0, 0), None);
        assert_eq!(at(2026, 1, 1, 24, 0, 0), None);
        assert_eq!(at(1969, 12, 31, 23, 59, 59), None);
        assert!(at(2000, 2, 29, 0, 0, 0).is_some());
    }

    #[test]
    fn bcd_digits() {
        assert_eq!(from_bcd(0x59), Some(59));
        assert_eq!(from_bcd(0x00), Some(0));
        assert_eq!(from_bcd(0x5a), None);
        assert_eq!(from_bcd(0xa0), None);
    }
}
