//! Extractable one-time signatures (EOTS, `PROTOCOL.md` §9).
//!
//! A verifier signs its vote for round h with secret randomness k committed to in advance as the
//! public randomness `pr = x(kG)`. The signature is the 32-byte `s` such that `(pr ‖ s)` is a
//! BIP-0340 signature on `sha256(msg)`, so verification is exactly BIP-0340 verification. Signing
//! two different messages with the same randomness reveals the secret key ([`extract`]).

mod derive;
mod extract;
mod scalar;
mod sign;

pub(crate) use derive::derive_from_key_bytes;
pub use derive::{
    derive_bound_randomness, derive_secret_randomness, RandomnessDomain, RANDOMNESS_DOMAIN_TAG,
};
pub use extract::{extract, ExtractError};
pub use sign::{sign, verify, VerifyError};

use secp256k1::{PublicKey, SecretKey, SECP256K1};

/// The secret randomness k of one round (0 < k < n). Erased on drop; not `Clone`, because a
/// value used for two different messages gives the key away; `Debug` does not print it.
///
/// `SecretKey` is `Copy` and has no `zeroize`, so the erase on drop uses the `secp256k1`
/// crate's volatile `non_secure_erase`; copies handed to libsecp256k1 calls are short-lived
/// locals, erased by the callers where they hold them.
pub struct SecretRandomness(SecretKey);

impl SecretRandomness {
    /// Wraps k. Any valid secret key is valid randomness.
    pub fn new(k: SecretKey) -> Self {
        SecretRandomness(k)
    }

    /// Parses k from 32 big-endian bytes.
    ///
    /// # Errors
    /// [`InvalidSecretRandomness`] when the bytes are zero or not below the group order.
    pub fn from_byte_array(bytes: [u8; 32]) -> Result<Self, InvalidSecretRandomness> {
        SecretKey::from_slice(&bytes)
            .map(Self::new)
            .map_err(|_| InvalidSecretRandomness)
    }

    /// The public randomness `pr = x(kG)` that commits to this value.
    pub fn public(&self) -> PublicRandomness {
        let (x, _) = PublicKey::from_secret_key(SECP256K1, &self.0).x_only_public_key();
        PublicRandomness(x.serialize())
    }

    pub(crate) fn key(&self) -> &SecretKey {
        &self.0
    }
}

impl Drop for SecretRandomness {
    fn drop(&mut self) {
        self.0.non_secure_erase();
    }
}

impl std::fmt::Debug for SecretRandomness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretRandomness(..)")
    }
}

/// 32 bytes that are not a valid secret randomness (zero, or not below the group order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("secret randomness is zero or not below the group order")]
pub struct InvalidSecretRandomness;

/// Debug and Display as lower-case hex for the public 32-byte newtypes below.
macro_rules! hex_formatting {
    ($name:ident) => {
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), hex::encode(self.0))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
    };
}

/// Public randomness `pr`: the x coordinate of R = kG, as committed in a randomness commitment.
///
/// Any 32 bytes are accepted; bytes that are not the x coordinate of a curve point simply never
/// verify.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicRandomness([u8; 32]);

impl PublicRandomness {
    /// Wraps the 32-byte x coordinate.
    pub fn from_byte_array(bytes: [u8; 32]) -> Self {
        PublicRandomness(bytes)
    }

    /// The 32-byte x coordinate.
    pub fn to_byte_array(self) -> [u8; 32] {
        self.0
    }

    /// The 32-byte x coordinate, borrowed (it is the Merkle leaf of a randomness commitment).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

hex_formatting!(PublicRandomness);

/// An EOTS signature: the 32-byte scalar `s` of the BIP-0340 signature `(pr ‖ s)`.
///
/// Any 32 bytes are accepted; a value not below the group order never verifies.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature([u8; 32]);

impl Signature {
    /// Wraps the 32-byte big-endian `s`.
    pub fn from_byte_array(bytes: [u8; 32]) -> Self {
        Signature(bytes)
    }

    /// The 32-byte big-endian `s`.
    pub fn to_byte_array(self) -> [u8; 32] {
        self.0
    }

    /// The BIP-0340 signature `(pr ‖ s)` this EOTS signature forms with its randomness.
    pub fn to_schnorr(self, pr: &PublicRandomness) -> secp256k1::schnorr::Signature {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&pr.0);
        bytes[32..].copy_from_slice(&self.0);
        // Infallible: `from_slice` only checks that the length is 64, which it is by construction.
        secp256k1::schnorr::Signature::from_slice(&bytes).expect("64-byte signature")
    }
}

hex_formatting!(Signature);

#[cfg(test)]
mod tests {
    use super::*;
    use secp256k1::constants::CURVE_ORDER;
    use secp256k1::Scalar;

    #[test]
    fn secret_randomness_must_be_a_nonzero_scalar_below_n() {
        let mut n_minus_1 = CURVE_ORDER;
        n_minus_1[31] -= 1;
        let mut n_plus_1 = CURVE_ORDER;
        n_plus_1[31] += 1;
        for bad in [[0; 32], CURVE_ORDER, n_plus_1, [0xff; 32]] {
            assert_eq!(
                SecretRandomness::from_byte_array(bad).map(|k| k.public()),
                Err(InvalidSecretRandomness),
                "{}",
                hex::encode(bad)
            );
        }
        let k = SecretRandomness::from_byte_array(n_minus_1).unwrap();
        // n − 1 = −1, so kG = −G, whose x coordinate is G's.
        let one = SecretRandomness::from_byte_array(Scalar::ONE.to_be_bytes()).unwrap();
        assert_eq!(k.public(), one.public());
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let k = SecretRandomness::from_byte_array([0x2a; 32]).unwrap();
        assert_eq!(format!("{k:?}"), "SecretRandomness(..)");
    }

    #[test]
    fn the_schnorr_form_is_pr_then_s_and_the_hex_forms_name_the_type() {
        let pr = PublicRandomness::from_byte_array([1; 32]);
        let sig = Signature::from_byte_array([2; 32]);
        let schnorr = sig.to_schnorr(&pr);
        assert_eq!(schnorr.as_ref()[..32], [1; 32]);
        assert_eq!(schnorr.as_ref()[32..], [2; 32]);
        assert_eq!(format!("{pr}"), "01".repeat(32));
        assert_eq!(
            format!("{sig:?}"),
            format!("Signature({})", "02".repeat(32))
        );
    }
}
