//! Key extraction from two EOTS signatures with the same randomness.

use bitcoin::hashes::{sha256, Hash};
use fiamma_staking::bip340::challenge;
use secp256k1::{SecretKey, XOnlyPublicKey, SECP256K1};

use super::scalar;
use super::{PublicRandomness, Signature};

/// Recovers the signer's secret key from two signatures with the same public randomness on
/// different messages: x = (s1 − s2) / (e1 − e2) mod n.
///
/// The returned key is the one whose public key has even y and x coordinate `pk`, i.e. the
/// verifier's key or its negation n − sk; compare keys x-only. The result is checked against
/// `pk`, so a returned key is always the verifier's.
///
/// # Errors
/// [`ExtractError`] when the messages are equal, an `s` is not below the group order, or the
/// signatures do not come from `pk` with randomness `pr`.
pub fn extract(
    pk: &XOnlyPublicKey,
    pr: &PublicRandomness,
    m1: &[u8],
    s1: &Signature,
    m2: &[u8],
    s2: &Signature,
) -> Result<SecretKey, ExtractError> {
    if m1 == m2 {
        return Err(ExtractError::SameMessage);
    }
    let p_x = pk.serialize();
    let e = |m: &[u8]| challenge(pr.as_bytes(), &p_x, &sha256::Hash::hash(m).to_byte_array());
    let s = |sig: &Signature| {
        scalar::parse_canonical(&sig.0).ok_or(ExtractError::NonCanonicalS { s: *sig })
    };
    let numerator = scalar::sub(s(s1)?, s(s2)?);
    let denominator = scalar::sub(e(m1), e(m2));
    if denominator.is_none() {
        return Err(ExtractError::EqualChallenges);
    }
    let key = scalar::mul(numerator, scalar::inv(denominator))
        .filter(|x| x.x_only_public_key(SECP256K1).0 == *pk)
        .ok_or(ExtractError::NotTheSigner { pk: *pk })?;
    Ok(key)
}

/// Why no key could be extracted from two EOTS signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// Both signatures are on the same message, which reveals nothing.
    #[error("both signatures are on the same message")]
    SameMessage,
    /// An `s` is not below the group order, so it is no valid signature.
    #[error("signature scalar {s} is not below the group order")]
    NonCanonicalS {
        /// The offending signature.
        s: Signature,
    },
    /// The two challenges are equal although the messages differ (a hash collision).
    #[error("the two messages give the same bip-0340 challenge")]
    EqualChallenges,
    /// The extracted scalar is not the secret key of `pk`: the signatures were not both made by
    /// `pk` with the given randomness.
    #[error("the signatures do not reveal the key of {pk}")]
    NotTheSigner {
        /// The key the signatures were claimed to be from.
        pk: XOnlyPublicKey,
    },
}

#[cfg(test)]
mod tests {
    use super::super::{sign, SecretRandomness};
    use super::*;
    use proptest::prelude::*;
    use secp256k1::Keypair;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn two_messages_with_one_randomness_reveal_the_key(
            sk in any::<[u8; 32]>(),
            k in any::<[u8; 32]>(),
            m1 in proptest::collection::vec(any::<u8>(), 0..64),
            m2 in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            prop_assume!(m1 != m2);
            let (Ok(sk), Ok(sr)) = (SecretKey::from_slice(&sk), SecretRandomness::from_byte_array(k))
            else {
                return Err(TestCaseError::reject("not a scalar"));
            };
            let kp = Keypair::from_secret_key(SECP256K1, &sk);
            let (pk, parity) = kp.x_only_public_key();
            let pr = sr.public();
            let s1 = sign(&kp, &sr, &m1);
            let s2 = sign(&kp, &sr, &m2);
            let key = extract(&pk, &pr, &m1, &s1, &m2, &s2).expect("extracts");
            let expected = if parity == secp256k1::Parity::Odd { sk.negate() } else { sk };
            prop_assert_eq!(key, expected);
            prop_assert_eq!(extract(&pk, &pr, &m1, &s1, &m1, &s1), Err(ExtractError::SameMessage));
        }
    }

    #[test]
    fn signatures_from_another_key_are_refused() {
        let kp = Keypair::from_seckey_slice(SECP256K1, &[3; 32]).expect("valid key");
        let other = Keypair::from_seckey_slice(SECP256K1, &[4; 32]).expect("valid key");
        let sr = SecretRandomness::from_byte_array([5; 32]).expect("valid");
        let (s1, s2) = (sign(&kp, &sr, b"a"), sign(&kp, &sr, b"b"));
        let (other_pk, _) = other.x_only_public_key();
        assert_eq!(
            extract(&other_pk, &sr.public(), b"a", &s1, b"b", &s2),
            Err(ExtractError::NotTheSigner { pk: other_pk })
        );
    }

    #[test]
    fn non_canonical_s_is_refused() {
        let kp = Keypair::from_seckey_slice(SECP256K1, &[3; 32]).expect("valid key");
        let sr = SecretRandomness::from_byte_array([5; 32]).expect("valid");
        let s1 = sign(&kp, &sr, b"a");
        let bad = Signature::from_byte_array([0xff; 32]);
        let (pk, _) = kp.x_only_public_key();
        assert_eq!(
            extract(&pk, &sr.public(), b"a", &s1, b"b", &bad),
            Err(ExtractError::NonCanonicalS { s: bad })
        );
    }
}
