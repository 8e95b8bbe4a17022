//! The outcome of verifying one proof, as it enters a round's results (`PROTOCOL.md` §10).

use thiserror::Error;

/// Whether a proof verified. Its byte is the one hashed into the round's result leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Verdict {
    /// The proof does not verify against the verifying key and public inputs.
    Invalid = 0x00,
    /// The pairing check holds: the proof verifies.
    Valid = 0x01,
}

/// The byte is neither `0x00` (invalid) nor `0x01` (valid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("verdict byte {0:#04x} is neither 0x00 nor 0x01")]
pub struct UnknownVerdict(pub u8);

impl Verdict {
    /// `0x01` for valid, `0x00` for invalid.
    pub const fn byte(self) -> u8 {
        self as u8
    }

    /// Whether this is [`Verdict::Valid`].
    pub const fn is_valid(self) -> bool {
        matches!(self, Verdict::Valid)
    }
}

impl TryFrom<u8> for Verdict {
    type Error = UnknownVerdict;

    fn try_from(byte: u8) -> Result<Self, Self::Error> {
        match byte {
            0x00 => Ok(Verdict::Invalid),
            0x01 => Ok(Verdict::Valid),
            other => Err(UnknownVerdict(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_follow_the_protocol_and_round_trip() {
        assert_eq!(Verdict::Valid.byte(), 0x01);
        assert_eq!(Verdict::Invalid.byte(), 0x00);
        assert_eq!(Verdict::try_from(0x01), Ok(Verdict::Valid));
        assert_eq!(Verdict::try_from(0x00), Ok(Verdict::Invalid));
        assert_eq!(Verdict::try_from(0x02), Err(UnknownVerdict(0x02)));
    }
}
