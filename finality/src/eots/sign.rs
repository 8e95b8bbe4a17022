//! EOTS signing and verification.

use bitcoin::hashes::{sha256, Hash};
use fiamma_staking::bip340::challenge;
use secp256k1::{Keypair, Message, Parity, PublicKey, XOnlyPublicKey, SECP256K1};

use super::scalar::{self, ModN};
use super::{PublicRandomness, SecretRandomness, Signature};

/// Signs `msg` with the verifier key and one round's secret randomness:
/// h = sha256(msg); d and k are negated where P or R = kG has odd y;
/// e = tagged("BIP0340/challenge", R.x ‖ P.x ‖ h); s = k + e·d.
///
/// The result verifies with [`verify`] against `keypair`'s x-only key and `sec_rand.public()`.
/// Signing a second, different message with the same `sec_rand` reveals the key ([`super::extract`]);
/// preventing that is the caller's slashing protection.
pub fn sign(keypair: &Keypair, sec_rand: &SecretRandomness, msg: &[u8]) -> Signature {
    let h = sha256::Hash::hash(msg).to_byte_array();
    let (p_x, p_parity) = keypair.x_only_public_key();
    let mut d: ModN = Some(keypair.secret_key());
    if p_parity == Parity::Odd {
        d = scalar::neg(d);
    }
    let mut k: ModN = Some(*sec_rand.key());
    let (r_x, r_parity) = PublicKey::from_secret_key(SECP256K1, sec_rand.key()).x_only_public_key();
    if r_parity == Parity::Odd {
        k = scalar::neg(k);
    }
    let e = challenge(&r_x.serialize(), &p_x.serialize(), &h);
    let mut ed = scalar::mul(e, d);
    let s = scalar::add(k, ed);
    for secret in [&mut d, &mut k, &mut ed].into_iter().flatten() {
        secret.non_secure_erase();
    }
    Signature(scalar::to_bytes(s))
}

/// Verifies an EOTS signature: BIP-0340 verification of `(pr ‖ s)` by `pk` over `sha256(msg)`,
/// done by libsecp256k1.
///
/// # Errors
/// [`VerifyError::Invalid`] when the signature does not verify (including a `pr` that is not
/// an x coordinate on the curve and an `s` not below the group order).
pub fn verify(
    pk: &XOnlyPublicKey,
    pr: &PublicRandomness,
    msg: &[u8],
    sig: &Signature,
) -> Result<(), VerifyError> {
    let digest = Message::from_digest(sha256::Hash::hash(msg).to_byte_array());
    SECP256K1
        .verify_schnorr(&sig.to_schnorr(pr), &digest, pk)
        .map_err(|_| VerifyError::Invalid { pk: *pk, pr: *pr })
}

/// Why an EOTS signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// BIP-0340 verification failed.
    #[error("eots signature by {pk} with public randomness {pr} does not verify")]
    Invalid {
        /// The signer's key.
        pk: XOnlyPublicKey,
        /// The public randomness the signature was checked with.
        pr: PublicRandomness,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use secp256k1::SecretKey;

    fn keypair(bytes: [u8; 32]) -> Option<Keypair> {
        SecretKey::from_slice(&bytes)
            .ok()
            .map(|sk| Keypair::from_secret_key(SECP256K1, &sk))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn signatures_verify_only_for_their_message_key_and_randomness(
            sk in any::<[u8; 32]>(),
            k in any::<[u8; 32]>(),
            msg in proptest::collection::vec(any::<u8>(), 0..100),
            other in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let (Some(kp), Ok(sr)) = (keypair(sk), SecretRandomness::from_byte_array(k)) else {
                return Err(TestCaseError::reject("not a scalar"));
            };
            let pr = sr.public();
            let (pk, _) = kp.x_only_public_key();
            let sig = sign(&kp, &sr, &msg);
            prop_assert_eq!(verify(&pk, &pr, &msg, &sig), Ok(()));
            // It is a BIP-0340 signature on sha256(msg).
            let digest = Message::from_digest(sha256::Hash::hash(&msg).to_byte_array());
            prop_assert!(SECP256K1.verify_schnorr(&sig.to_schnorr(&pr), &digest, &pk).is_ok());
            if other != msg {
                prop_assert!(verify(&pk, &pr, &other, &sig).is_err());
            }
            let (other_pk, _) = keypair([7; 32]).expect("valid key").x_only_public_key();
            if other_pk != pk {
                prop_assert!(verify(&other_pk, &pr, &msg, &sig).is_err());
            }
            let other_pr = SecretRandomness::from_byte_array([9; 32]).expect("valid").public();
            if other_pr != pr {
                prop_assert!(verify(&pk, &other_pr, &msg, &sig).is_err());
            }
        }
    }

    #[test]
    fn s_at_the_group_order_is_rejected() {
        let kp = keypair([1; 32]).expect("valid key");
        let sr = SecretRandomness::from_byte_array([2; 32]).expect("valid");
        let n = hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
            .expect("hex");
        let sig = Signature::from_byte_array(n.try_into().expect("32 bytes"));
        let (pk, _) = kp.x_only_public_key();
        assert!(verify(&pk, &sr.public(), b"m", &sig).is_err());
    }

    /// The degenerate inputs an attacker controls are refused: a zero `s`, and a zero or
    /// off-curve `pr` (no point has x = 0 on secp256k1, so the identity cannot stand in for
    /// `R`); randomness equal to the secret key still signs only its own message.
    #[test]
    fn vacuous_signatures_and_randomness_are_rejected() {
        let kp = keypair([1; 32]).expect("valid key");
        let (pk, _) = kp.x_only_public_key();
        let sr = SecretRandomness::from_byte_array([2; 32]).expect("valid");
        let sig = sign(&kp, &sr, b"m");
        assert_eq!(verify(&pk, &sr.public(), b"m", &sig), Ok(()));
        let zero_s = Signature::from_byte_array([0; 32]);
        assert!(verify(&pk, &sr.public(), b"m", &zero_s).is_err());
        for pr in [[0u8; 32], [0xff; 32]] {
            let pr = PublicRandomness::from_byte_array(pr);
            assert!(verify(&pk, &pr, b"m", &sig).is_err());
            assert!(verify(&pk, &pr, b"m", &zero_s).is_err());
        }
        // Randomness equal to the key: valid for its message only.
        let same = SecretRandomness::from_byte_array([1; 32]).expect("valid");
        let sig = sign(&kp, &same, b"m");
        assert_eq!(verify(&pk, &same.public(), b"m", &sig), Ok(()));
        assert!(verify(&pk, &same.public(), b"n", &sig).is_err());
    }
}
