//! Page-table levels: 1 (PT) to 4 (PML4).

/// The level of a page-table page, or of the table an entry sits in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Level {
    L1 = 1,
    L2 = 2,
    L3 = 3,
    L4 = 4,
}

impl Level {
    pub const fn from_u8(level: u8) -> Option<Self> {
        match level {
            1 => Some(Self::L1),
            2 => Some(Self::L2),
            3 => Some(Self::L3),
            4 => Some(Self::L4),
            _ => None,
        }
    }

    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The level of the tables this level's non-leaf entries point at.
    pub const fn next_lower(self) -> Option<Self> {
        match self {
            Self::L1 => None,
            Self::L2 => Some(Self::L1),
            Self::L3 => Some(Self::L2),
            Self::L4 => Some(Self::L3),
        }
    }

    /// How many 4 KiB frames a leaf at this level maps (1, 512, 512²...).
    pub const fn leaf_frames(self) -> u64 {
        1 << (9 * (self as u64 - 1))
    }
}

impl core::fmt::Display for Level {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.as_u8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_steps_down() {
        for n in 0..=255u8 {
            match Level::from_u8(n) {
                Some(l) => assert_eq!(l.as_u8(), n),
                None => assert!(n == 0 || n > 4),
            }
        }
        assert_eq!(Level::L4.next_lower(), Some(Level::L3));
        assert_eq!(Level::L1.next_lower(), None);
        assert_eq!(Level::L2.leaf_frames(), 512);
        assert_eq!(Level::L3.leaf_frames(), 512 * 512);
    }
}
