//! The slashing rate (PROTOCOL §4, §7): a decimal in (0, 1) with at most 4 decimals, kept as an
//! exact integer count of ten-thousandths so that slashed amounts never depend on floating point.

use std::fmt;
use std::str::FromStr;

use bitcoin::Amount;

/// Ten-thousandths in one.
const DENOMINATOR: u64 = 10_000;

/// Why a slashing rate was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// Not a plain decimal number.
    #[error("slashing rate {0:?} is not a decimal number")]
    Syntax(String),
    /// More than 4 significant decimals.
    #[error("slashing rate {0:?} has more than 4 decimals")]
    TooPrecise(String),
    /// Not strictly between 0 and 1.
    #[error("slashing rate {0:?} is not in (0, 1)")]
    OutOfRange(String),
}

/// A slashing rate in (0, 1) with at most 4 decimals: exactly `ten_thousandths / 10_000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlashingRate(u16);

impl SlashingRate {
    /// The rate `ten_thousandths / 10_000`; must be in 1..=9999.
    pub fn from_ten_thousandths(ten_thousandths: u16) -> Result<Self, RateError> {
        if ten_thousandths == 0 || u64::from(ten_thousandths) >= DENOMINATOR {
            return Err(RateError::OutOfRange(format!("{ten_thousandths}/10000")));
        }
        Ok(SlashingRate(ten_thousandths))
    }

    /// The rate in ten-thousandths.
    pub fn ten_thousandths(self) -> u16 {
        self.0
    }

    /// `round_half_up(value × rate)`: the least value the slashing output may carry.
    pub fn slashed_amount(self, value: Amount) -> Amount {
        let scaled = u128::from(value.to_sat()) * u128::from(self.0) + u128::from(DENOMINATOR / 2);
        // value × rate < value ≤ u64::MAX, so the quotient fits a u64.
        Amount::from_sat((scaled / u128::from(DENOMINATOR)) as u64)
    }
}

impl FromStr for SlashingRate {
    type Err = RateError;

    /// Parses `0.1`, `0.3333`, or a padded form such as `0.100000000000000000` (Cosmos `Dec`).
    fn from_str(s: &str) -> Result<Self, RateError> {
        let syntax = || RateError::Syntax(s.to_owned());
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !all_digits(int) || !all_digits(frac) {
            return Err(syntax());
        }
        if int.bytes().any(|b| b != b'0') {
            return Err(RateError::OutOfRange(s.to_owned()));
        }
        let (kept, rest) = frac.split_at(frac.len().min(4));
        if rest.bytes().any(|b| b != b'0') {
            return Err(RateError::TooPrecise(s.to_owned()));
        }
        let padded = format!("{kept:0<4}");
        let ten_thousandths: u16 = padded.parse().map_err(|_| syntax())?;
        SlashingRate::from_ten_thousandths(ten_thousandths)
            .map_err(|_| RateError::OutOfRange(s.to_owned()))
    }
}

impl fmt::Display for SlashingRate {
    /// The shortest decimal form, e.g. `0.1` or `0.0025`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = format!("{:04}", self.0);
        write!(f, "0.{}", digits.trim_end_matches('0'))
    }
}

impl serde::Serialize for SlashingRate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SlashingRate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Result<SlashingRate, RateError> {
        s.parse()
    }

    #[test]
    fn parses_and_prints_exactly() {
        assert_eq!(rate("0.1").unwrap().ten_thousandths(), 1000);
        assert_eq!(rate("0.33").unwrap().ten_thousandths(), 3300);
        assert_eq!(rate("0.0001").unwrap().ten_thousandths(), 1);
        assert_eq!(rate("0.9999").unwrap().ten_thousandths(), 9999);
        assert_eq!(
            rate("0.100000000000000000").unwrap().ten_thousandths(),
            1000
        );
        assert_eq!(rate("0.25").unwrap().to_string(), "0.25");
        assert_eq!(rate("0.0025").unwrap().to_string(), "0.0025");
    }

    #[test]
    fn rejects_precision_range_and_syntax() {
        assert_eq!(
            rate("0.00001"),
            Err(RateError::TooPrecise("0.00001".into()))
        );
        assert_eq!(
            rate("0.12345"),
            Err(RateError::TooPrecise("0.12345".into()))
        );
        assert_eq!(rate("0"), Err(RateError::OutOfRange("0".into())));
        assert_eq!(rate("0.0000"), Err(RateError::OutOfRange("0.0000".into())));
        assert_eq!(rate("1"), Err(RateError::OutOfRange("1".into())));
        assert_eq!(rate("1.5"), Err(RateError::OutOfRange("1.5".into())));
        assert_eq!(rate("-0.1"), Err(RateError::Syntax("-0.1".into())));
        assert_eq!(rate(".5"), Err(RateError::Syntax(".5".into())));
        assert_eq!(rate("0.1e2"), Err(RateError::Syntax("0.1e2".into())));
    }

    #[test]
    fn slashed_amount_rounds_half_up() {
        let r = rate("0.1").unwrap();
        assert_eq!(r.slashed_amount(Amount::from_sat(15)), Amount::from_sat(2));
        assert_eq!(r.slashed_amount(Amount::from_sat(14)), Amount::from_sat(1));
        let r = rate("0.33").unwrap();
        assert_eq!(
            r.slashed_amount(Amount::from_sat(1_999_999_000)),
            Amount::from_sat(659_999_670)
        );
        let max = rate("0.9999").unwrap().slashed_amount(Amount::MAX);
        assert!(max < Amount::MAX);
    }

    #[test]
    fn serde_uses_the_decimal_string() {
        let r = rate("0.05").unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"0.05\"");
        assert_eq!(serde_json::from_str::<SlashingRate>(&json).unwrap(), r);
        assert!(serde_json::from_str::<SlashingRate>("\"0.123456\"").is_err());
    }
}
