//! The keys of the scheme: the signer's public key, and the encryption/decryption key pair
//! (a verifier's public and secret key in the protocol).

use std::fmt;

use secp256k1::{Parity, PublicKey, SecretKey, XOnlyPublicKey, SECP256K1};

use super::point::Recovery;
use super::scalar::SecretScalar;

/// The public key of an adaptor signer (a covenant member): BIP-0340 x-only key `P`, kept
/// together with its even-y point and the values EncVerify precomputes from it.
///
/// Building one costs a square root; build it once per covenant key and reuse it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignerKey {
    x_only: XOnlyPublicKey,
    x: [u8; 32],
    point: PublicKey,
    recovery: Option<Recovery>,
}

impl SignerKey {
    /// The signer key for a BIP-0340 x-only public key (its point with even y).
    pub fn new(x_only: XOnlyPublicKey) -> Self {
        let point = PublicKey::from_x_only_public_key(x_only, Parity::Even);
        let x = x_only.serialize();
        SignerKey {
            x_only,
            x,
            point,
            recovery: Recovery::for_even_point(&x),
        }
    }

    /// The BIP-0340 x-only key.
    pub fn x_only(&self) -> XOnlyPublicKey {
        self.x_only
    }

    pub(crate) fn x_bytes(&self) -> &[u8; 32] {
        &self.x
    }

    pub(crate) fn even_point(&self) -> &PublicKey {
        &self.point
    }

    pub(crate) fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }
}

impl From<XOnlyPublicKey> for SignerKey {
    fn from(x_only: XOnlyPublicKey) -> Self {
        SignerKey::new(x_only)
    }
}

/// The encryption key `T` of an adaptor signature: a curve point.
///
/// In the protocol it is a verifier's public key lifted to even y
/// ([`EncryptionKey::from_verifier_key`]); the scheme itself accepts any point, which the
/// published conformance vectors use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EncryptionKey(PublicKey);

impl EncryptionKey {
    /// `T = lift_x(V)`: the verifier's x-only key as the point with even y.
    pub fn from_verifier_key(verifier: &XOnlyPublicKey) -> Self {
        EncryptionKey(PublicKey::from_x_only_public_key(*verifier, Parity::Even))
    }

    /// Any point as an encryption key, either parity.
    pub fn from_point(point: PublicKey) -> Self {
        EncryptionKey(point)
    }

    /// The point `T`.
    pub fn point(&self) -> &PublicKey {
        &self.0
    }

    /// The 33-byte compressed encoding (parity byte ‖ x), as it enters the nonce hash.
    pub fn serialize(&self) -> [u8; 33] {
        self.0.serialize()
    }
}

impl fmt::Display for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The decryption key `t` of an adaptor signature, with `tG = T`; erased when dropped.
///
/// In the protocol it is a verifier's secret key, negated if needed so that `tG` has even y
/// ([`DecryptionKey::from_verifier_secret`]).
pub struct DecryptionKey(SecretScalar);

impl DecryptionKey {
    /// `t` for a verifier's secret key: `sk` or `n − sk`, whichever gives a point with even y,
    /// so that it decrypts signatures made to [`EncryptionKey::from_verifier_key`].
    pub fn from_verifier_secret(sk: &SecretKey) -> Self {
        let (_, parity) = sk.x_only_public_key(SECP256K1);
        let t = SecretScalar::new(*sk);
        DecryptionKey(match parity {
            Parity::Even => t,
            Parity::Odd => t.negate(),
        })
    }

    /// `t` exactly as given: it decrypts signatures made to the point `tG`, either parity.
    pub fn from_secret_key(t: SecretKey) -> Self {
        DecryptionKey(SecretScalar::new(t))
    }

    /// `t` from 32 big-endian bytes; fails when the value is 0 or not below n.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, secp256k1::Error> {
        SecretKey::from_slice(bytes).map(Self::from_secret_key)
    }

    pub(crate) fn from_scalar(t: SecretScalar) -> Self {
        DecryptionKey(t)
    }

    pub(crate) fn scalar(&self) -> &SecretScalar {
        &self.0
    }

    /// The matching encryption key `T = tG`.
    pub fn encryption_key(&self) -> EncryptionKey {
        EncryptionKey(PublicKey::from_secret_key(SECP256K1, self.0.key()))
    }

    /// The x-only public key of `t`; equal to the verifier's key for a key that is the
    /// verifier's secret key up to negation.
    pub fn x_only_public_key(&self) -> XOnlyPublicKey {
        self.0.key().x_only_public_key(SECP256K1).0
    }

    /// A copy of `t` as a `SecretKey`, e.g. to sign as the verifier. The copy is not erased
    /// automatically: call `non_secure_erase` on it when done.
    pub fn to_secret_key(&self) -> SecretKey {
        *self.0.key()
    }
}

impl fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DecryptionKey(T = {})", self.encryption_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_secret_is_normalized_to_even_y() {
        for byte in 1u8..=8 {
            let sk = SecretKey::from_slice(&[byte; 32]).unwrap();
            let (x, _) = sk.x_only_public_key(SECP256K1);
            let t = DecryptionKey::from_verifier_secret(&sk);
            assert_eq!(t.encryption_key(), EncryptionKey::from_verifier_key(&x));
            assert_eq!(t.x_only_public_key(), x);
        }
    }

    #[test]
    fn raw_secret_keeps_its_parity() {
        for byte in 1u8..=8 {
            let sk = SecretKey::from_slice(&[byte; 32]).unwrap();
            let t = DecryptionKey::from_secret_key(sk);
            assert_eq!(*t.encryption_key().point(), sk.public_key(SECP256K1));
        }
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let sk = SecretKey::from_slice(&[3u8; 32]).unwrap();
        let text = format!("{:?}", DecryptionKey::from_secret_key(sk));
        assert!(!text.contains(&hex::encode([3u8; 32])));
    }
}
