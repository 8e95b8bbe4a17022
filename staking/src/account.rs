//! Registrant accounts on the node (PROTOCOL §6): 20 bytes, shown as bech32 with the network's
//! human-readable part (`fmma` here, `bbn` on Babylon).

use std::fmt;

use bitcoin::bech32::{self, Bech32, Hrp};

/// The human-readable part of this network's account addresses.
pub const ACCOUNT_HRP: &str = "fmma";

/// A 20-byte account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Account(pub [u8; 20]);

/// Why a bech32 account address was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// Not valid bech32.
    #[error("account address {0:?} is not bech32")]
    Bech32(String),
    /// The address does not carry 20 bytes.
    #[error("account address {address:?} carries {len} bytes, expected 20")]
    Length {
        /// The address.
        address: String,
        /// The bytes it carries.
        len: usize,
    },
    /// The address has another human-readable part.
    #[error("account address {address:?} has prefix {got:?}, expected {want:?}")]
    Hrp {
        /// The address.
        address: String,
        /// Its prefix.
        got: String,
        /// The expected prefix.
        want: String,
    },
    /// The prefix cannot be used in bech32.
    #[error("{0:?} is not a valid bech32 prefix")]
    BadHrp(String),
}

impl Account {
    /// Decodes a bech32 address with prefix `hrp`.
    pub fn from_bech32(address: &str, hrp: &str) -> Result<Self, AccountError> {
        let (got, data) =
            bech32::decode(address).map_err(|_| AccountError::Bech32(address.to_owned()))?;
        if !got.as_str().eq_ignore_ascii_case(hrp) {
            return Err(AccountError::Hrp {
                address: address.to_owned(),
                got: got.to_string(),
                want: hrp.to_owned(),
            });
        }
        let bytes = <[u8; 20]>::try_from(data.as_slice()).map_err(|_| AccountError::Length {
            address: address.to_owned(),
            len: data.len(),
        })?;
        Ok(Account(bytes))
    }

    /// The bech32 address with prefix `hrp`.
    pub fn to_bech32(&self, hrp: &str) -> Result<String, AccountError> {
        let hrp = Hrp::parse(hrp).map_err(|_| AccountError::BadHrp(hrp.to_owned()))?;
        // 20 bytes under a valid prefix always fit bech32's 90-character limit.
        bech32::encode::<Bech32>(hrp, &self.0).map_err(|_| AccountError::BadHrp(hrp.to_string()))
    }

    /// The raw 20 bytes, which is what a proof of possession signs.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for Account {
    /// The address with this network's prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_bech32(ACCOUNT_HRP) {
            Ok(address) => f.write_str(&address),
            Err(_) => write!(f, "{}", hex::encode(self.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn babylon_address_round_trips() {
        let address = "bbn1s8r0tmf98mm2wps7at48m7m0sku8fxl4qu0tn8";
        let account = Account::from_bech32(address, "bbn").unwrap();
        assert_eq!(account.to_bech32("bbn").unwrap(), address);
        assert!(account.to_string().starts_with("fmma1"));
    }

    #[test]
    fn wrong_prefix_checksum_and_length_are_rejected() {
        let address = "bbn1s8r0tmf98mm2wps7at48m7m0sku8fxl4qu0tn8";
        assert!(matches!(
            Account::from_bech32(address, "fmma"),
            Err(AccountError::Hrp { .. })
        ));
        assert!(matches!(
            Account::from_bech32("bbn1s8r0tmf98mm2wps7at48m7m0sku8fxl4qu0tn9", "bbn"),
            Err(AccountError::Bech32(_))
        ));
        let short = bech32::encode::<Bech32>(Hrp::parse("bbn").unwrap(), &[1; 19]).unwrap();
        assert_eq!(
            Account::from_bech32(&short, "bbn"),
            Err(AccountError::Length {
                address: short.clone(),
                len: 19
            })
        );
    }

    #[test]
    fn an_unusable_prefix_is_refused_by_name() {
        let account = Account([7; 20]);
        for hrp in ["", "b b", "bbn\u{e9}"] {
            assert_eq!(
                account.to_bech32(hrp),
                Err(AccountError::BadHrp(hrp.to_owned()))
            );
        }
    }
}
