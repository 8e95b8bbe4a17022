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
    derive_from_key_bytes(&key, chain_id, round)
}

/// [`derive_secret_randomness`] from the raw 32-byte key.
pub(crate) fn derive_from_key_bytes(
    key: &[u8; 32],
    chain_id: &str,
    round: u64,
) -> SecretRandomness {
    let mut iter: u64 = 0;
    loop {
        let mut engine = hmac::HmacEngine::<sha256::Hash>::new(key);
        engine.input(&round.to_be_bytes());
        engine.input(chain_id.as_bytes());
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
