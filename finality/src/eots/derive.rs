//! Deterministic per-round randomness (`PROTOCOL.md` §9).

use bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
use secp256k1::SecretKey;
use zeroize::Zeroizing;

use super::SecretRandomness;

/// The secret randomness of `round` for the verifier key `sk` on chain `chain_id`:
/// k = HMAC-SHA256(key = sk, u64be(round) ‖ chain_id ‖ u64be(iter)) for iter = 0, 1, … until
/// 0 < k < n.
///
/// Deterministic, so a verifier that restarts re-derives the randomness it committed to.
pub fn derive_secret_randomness(sk: &SecretKey, chain_id: &str, round: u64) -> SecretRandomness {
    let key = Zeroizing::new(sk.secret_bytes());
    derive_from_key_bytes(&key, chain_id.as_bytes(), round)
}

/// The tag that starts a [`RandomnessDomain`]: no chain id of the unbound derivation can
/// collide with a bound domain, whose bytes always start with it.
pub const RANDOMNESS_DOMAIN_TAG: &[u8] = b"fiamma/eots-randomness/v2";

/// What a verifier's randomness is bound to (`PROTOCOL.md` §9): the network's chain id and
/// module address, and a 32-byte network-instance salt the verifier draws when it first joins
/// the network and keeps in its slashing-protection store. Two networks (or one network reset
/// to round 1 and joined again as new) give different randomness for the same round, so one
/// randomness is never used for two messages across them.
#[derive(Clone, PartialEq, Eq)]
pub struct RandomnessDomain {
    bytes: Vec<u8>,
}

impl RandomnessDomain {
    /// `tag ‖ u32be(len chain_id) ‖ chain_id ‖ u32be(len module_address) ‖ module_address ‖ salt`.
    pub fn new(chain_id: &str, module_address: &str, salt: &[u8; 32]) -> Self {
        let mut bytes = RANDOMNESS_DOMAIN_TAG.to_vec();
        for part in [chain_id.as_bytes(), module_address.as_bytes()] {
            // Lengths make the encoding injective; a string longer than 4 GiB is not a chain id.
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(part);
        }
        bytes.extend_from_slice(salt);
        RandomnessDomain { bytes }
    }

    /// The unbound domain of the first derivation: the chain id's bytes alone. Kept for the
    /// published vectors and for data made before the bound derivation.
    pub fn chain_only(chain_id: &str) -> Self {
        RandomnessDomain {
            bytes: chain_id.as_bytes().to_vec(),
        }
    }

    /// The bytes fed to the HMAC between the round and the counter.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for RandomnessDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The salt is not secret alone, but there is no reason to print it.
        f.write_str("RandomnessDomain(..)")
    }
}

/// The secret randomness of `round` for `sk` bound to `domain`:
/// k = HMAC-SHA256(key = sk, u64be(round) ‖ domain bytes ‖ u64be(iter)) for iter = 0, 1, … until
/// 0 < k < n (see [`RandomnessDomain::new`] for the domain bytes).
pub fn derive_bound_randomness(
    sk: &SecretKey,
    domain: &RandomnessDomain,
    round: u64,
) -> SecretRandomness {
    let key = Zeroizing::new(sk.secret_bytes());
    derive_from_key_bytes(&key, domain.as_bytes(), round)
}

/// [`derive_secret_randomness`] and [`derive_bound_randomness`] from the raw 32-byte key and
/// the domain bytes.
pub(crate) fn derive_from_key_bytes(key: &[u8; 32], domain: &[u8], round: u64) -> SecretRandomness {
    let mut iter: u64 = 0;
    loop {
        let mut engine = hmac::HmacEngine::<sha256::Hash>::new(key);
        engine.input(&round.to_be_bytes());
        engine.input(domain);
        engine.input(&iter.to_be_bytes());
        let k = Zeroizing::new(hmac::Hmac::from_engine(engine).to_byte_array());
        if let Ok(sec_rand) = SecretRandomness::from_byte_array(*k) {
            return sec_rand;
        }
        // A retry happens with probability below 2^-127; wrapping only documents that the
        // counter cannot realistically overflow.
        iter = iter.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac_k(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
        let mut engine = hmac::HmacEngine::<sha256::Hash>::new(key);
        engine.input(msg);
        hmac::Hmac::from_engine(engine).to_byte_array()
    }

    #[test]
    fn first_iteration_is_hmac_of_round_chain_and_zero() {
        let sk = SecretKey::from_slice(&[0x11; 32]).expect("valid key");
        let mut msg = 42u64.to_be_bytes().to_vec();
        msg.extend_from_slice(b"chain-a");
        msg.extend_from_slice(&0u64.to_be_bytes());
        let expected = SecretRandomness::from_byte_array(hmac_k(&[0x11; 32], &msg))
            .expect("a valid scalar for this key");
        assert_eq!(
            derive_secret_randomness(&sk, "chain-a", 42).public(),
            expected.public()
        );
    }

    #[test]
    fn bound_randomness_is_the_hmac_of_round_domain_and_zero() {
        let sk = SecretKey::from_slice(&[0x11; 32]).expect("valid key");
        let domain = RandomnessDomain::new("chain-a", "addr", &[7; 32]);
        let mut msg = 42u64.to_be_bytes().to_vec();
        msg.extend_from_slice(b"fiamma/eots-randomness/v2");
        msg.extend_from_slice(&7u32.to_be_bytes());
        msg.extend_from_slice(b"chain-a");
        msg.extend_from_slice(&4u32.to_be_bytes());
        msg.extend_from_slice(b"addr");
        msg.extend_from_slice(&[7; 32]);
        msg.extend_from_slice(&0u64.to_be_bytes());
        let expected = SecretRandomness::from_byte_array(hmac_k(&[0x11; 32], &msg))
            .expect("a valid scalar for this key");
        assert_eq!(
            derive_bound_randomness(&sk, &domain, 42).public(),
            expected.public()
        );
    }

    #[test]
    fn bound_randomness_differs_per_chain_address_salt_and_from_the_unbound_one() {
        let sk = SecretKey::from_slice(&[0x11; 32]).expect("valid key");
        let base = derive_bound_randomness(&sk, &RandomnessDomain::new("c", "a", &[1; 32]), 5);
        for other in [
            RandomnessDomain::new("c2", "a", &[1; 32]),
            RandomnessDomain::new("c", "a2", &[1; 32]),
            RandomnessDomain::new("c", "a", &[2; 32]),
            // Moving a byte from the chain id to the address changes the encoding.
            RandomnessDomain::new("ca", "", &[1; 32]),
        ] {
            assert_ne!(
                base.public(),
                derive_bound_randomness(&sk, &other, 5).public()
            );
        }
        assert_ne!(
            base.public(),
            derive_secret_randomness(&sk, "c", 5).public()
        );
        assert_eq!(
            derive_bound_randomness(&sk, &RandomnessDomain::chain_only("c"), 5).public(),
            derive_secret_randomness(&sk, "c", 5).public()
        );
    }

    #[test]
    fn randomness_depends_on_round_chain_and_key() {
        let sk = SecretKey::from_slice(&[0x11; 32]).expect("valid key");
        let other = SecretKey::from_slice(&[0x12; 32]).expect("valid key");
        let base = derive_secret_randomness(&sk, "chain-a", 7).public();
        assert_eq!(base, derive_secret_randomness(&sk, "chain-a", 7).public());
        assert_ne!(base, derive_secret_randomness(&sk, "chain-a", 8).public());
        assert_ne!(base, derive_secret_randomness(&sk, "chain-b", 7).public());
        assert_ne!(
            base,
            derive_secret_randomness(&other, "chain-a", 7).public()
        );
    }
}
