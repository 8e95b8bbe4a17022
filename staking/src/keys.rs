//! BIP-0340 x-only keys (PROTOCOL §1): parsing, ordering and the key sets of one delegation.

use bitcoin::secp256k1::{PublicKey, XOnlyPublicKey};

/// Why a key or key set was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is neither 32 (x-only) nor 33 (compressed) bytes long.
    #[error("key has {0} bytes, expected 32 (x-only) or 33 (compressed)")]
    Length(usize),
    /// The key text is not hexadecimal.
    #[error("key {0:?} is not hex")]
    Hex(String),
    /// The bytes do not encode a point on the curve.
    #[error("key {0} is not a valid secp256k1 point")]
    Invalid(String),
    /// The same x-only key appears twice across the staker, verifier and covenant sets.
    #[error("key {0} appears more than once")]
    Duplicate(XOnlyPublicKey),
    /// A key set that must not be empty is empty.
    #[error("the {0} key set is empty")]
    Empty(&'static str),
    /// The covenant quorum is zero or larger than the number of covenant keys.
    #[error("covenant quorum {quorum} is not in 1..={keys}")]
    Quorum {
        /// The quorum asked for.
        quorum: u32,
        /// The number of covenant keys.
        keys: usize,
    },
}

/// Parses a 32-byte x-only key or a 33-byte compressed key, reducing the latter to x-only.
pub fn parse_xonly(bytes: &[u8]) -> Result<XOnlyPublicKey, KeyError> {
    match bytes.len() {
        32 => XOnlyPublicKey::from_slice(bytes).map_err(|_| KeyError::Invalid(hex::encode(bytes))),
        33 => PublicKey::from_slice(bytes)
            .map(|pk| pk.x_only_public_key().0)
            .map_err(|_| KeyError::Invalid(hex::encode(bytes))),
        n => Err(KeyError::Length(n)),
    }
}

/// Parses a hex-encoded 32-byte x-only or 33-byte compressed key.
pub fn parse_xonly_hex(text: &str) -> Result<XOnlyPublicKey, KeyError> {
    let bytes = hex::decode(text.trim()).map_err(|_| KeyError::Hex(text.to_owned()))?;
    parse_xonly(&bytes)
}

/// Returns `keys` sorted ascending by their 32 serialized bytes, the order of every multisig
/// in the staking scripts. Rejects a key that appears twice.
pub fn sorted_keys(keys: &[XOnlyPublicKey]) -> Result<Vec<XOnlyPublicKey>, KeyError> {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable_by_key(|k| k.serialize());
    if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(KeyError::Duplicate(pair[0]));
    }
    Ok(sorted)
}

/// The keys of one delegation, checked once: verifier and covenant keys sorted ascending, no key
/// repeated across the three sets, covenant quorum in `1..=n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StakingKeys {
    staker: XOnlyPublicKey,
    verifiers: Vec<XOnlyPublicKey>,
    covenants: Vec<XOnlyPublicKey>,
    covenant_quorum: u32,
}

impl StakingKeys {
    /// Checks and sorts the key sets of a delegation.
    pub fn new(
        staker: XOnlyPublicKey,
        verifiers: &[XOnlyPublicKey],
        covenants: &[XOnlyPublicKey],
        covenant_quorum: u32,
    ) -> Result<Self, KeyError> {
        if verifiers.is_empty() {
            return Err(KeyError::Empty("verifier"));
        }
        if covenants.is_empty() {
            return Err(KeyError::Empty("covenant"));
        }
        if covenant_quorum == 0 || covenant_quorum as usize > covenants.len() {
            return Err(KeyError::Quorum {
                quorum: covenant_quorum,
                keys: covenants.len(),
            });
        }
        let verifiers = sorted_keys(verifiers)?;
        let covenants = sorted_keys(covenants)?;
        // One pass over all keys catches a key shared between any two sets.
        let mut all = Vec::with_capacity(1 + verifiers.len() + covenants.len());
        all.push(staker);
        all.extend_from_slice(&verifiers);
        all.extend_from_slice(&covenants);
        sorted_keys(&all)?;
        Ok(StakingKeys {
            staker,
            verifiers,
            covenants,
            covenant_quorum,
        })
    }

    /// The staker's key.
    pub fn staker(&self) -> XOnlyPublicKey {
        self.staker
    }

    /// The verifier keys, ascending.
    pub fn verifiers(&self) -> &[XOnlyPublicKey] {
        &self.verifiers
    }

    /// The covenant committee keys, ascending.
    pub fn covenants(&self) -> &[XOnlyPublicKey] {
        &self.covenants
    }

    /// How many covenant signatures a covenant path needs.
    pub fn covenant_quorum(&self) -> u32 {
        self.covenant_quorum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::key;

    const COMPRESSED: &str = "03cc327c2a1ee1a70d7033bee61ed2e3e6ffc7c5f5d6c637c4f0d2ddfae8a257fe";

    #[test]
    fn compressed_and_xonly_forms_parse_to_the_same_key() {
        let a = parse_xonly_hex(COMPRESSED).unwrap();
        let b = parse_xonly_hex(&COMPRESSED[2..]).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_lengths_hex_and_points_are_rejected() {
        assert_eq!(parse_xonly(&[2u8; 31]), Err(KeyError::Length(31)));
        assert!(matches!(parse_xonly_hex("zz"), Err(KeyError::Hex(_))));
        let mut bad = hex::decode(COMPRESSED).unwrap();
        bad[0] = 0x05;
        assert!(matches!(parse_xonly(&bad), Err(KeyError::Invalid(_))));
        assert!(matches!(
            parse_xonly(&[0xff; 32]),
            Err(KeyError::Invalid(_))
        ));
    }

    #[test]
    fn keys_sort_by_serialized_bytes() {
        let keys = [key(3), key(1), key(2)];
        let sorted = sorted_keys(&keys).unwrap();
        assert!(sorted
            .windows(2)
            .all(|w| w[0].serialize() < w[1].serialize()));
    }

    #[test]
    fn duplicate_keys_are_rejected_within_and_across_sets() {
        assert_eq!(
            sorted_keys(&[key(1), key(1)]),
            Err(KeyError::Duplicate(key(1)))
        );
        assert_eq!(
            StakingKeys::new(key(1), &[key(2)], &[key(3), key(2)], 1),
            Err(KeyError::Duplicate(key(2)))
        );
        assert_eq!(
            StakingKeys::new(key(1), &[key(1)], &[key(3)], 1),
            Err(KeyError::Duplicate(key(1)))
        );
    }

    #[test]
    fn quorum_and_empty_sets_are_checked() {
        assert_eq!(
            StakingKeys::new(key(1), &[key(2)], &[key(3)], 2),
            Err(KeyError::Quorum { quorum: 2, keys: 1 })
        );
        assert_eq!(
            StakingKeys::new(key(1), &[key(2)], &[key(3)], 0),
            Err(KeyError::Quorum { quorum: 0, keys: 1 })
        );
        assert_eq!(
            StakingKeys::new(key(1), &[], &[key(3)], 1),
            Err(KeyError::Empty("verifier"))
        );
        assert_eq!(
            StakingKeys::new(key(1), &[key(2)], &[], 1),
            Err(KeyError::Empty("covenant"))
        );
    }
}
