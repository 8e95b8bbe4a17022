//! Scalars modulo the group order n, and wrappers that erase secret ones on drop.
//!
//! The `secp256k1` crate parses scalars only when they are already below n. A 32-byte hash
//! is reduced here without any arithmetic of our own: a value v ≥ n is split as
//! v = hi·2^128 + lo (both halves < n) and recombined with the library's scalar
//! multiply-and-add, which works mod n.

use secp256k1::{Scalar, SecretKey};

/// 2^128 as a scalar.
fn two_pow_128() -> Scalar {
    let mut bytes = [0u8; 32];
    bytes[15] = 1;
    // Infallible: 2^128 < n.
    Scalar::from_be_bytes(bytes).expect("2^128 is below the group order")
}

/// `bytes mod n` as a non-zero secret scalar, or `None` when it is zero.
///
/// The common case (bytes < n, probability 1 − 2^-128) is a constant-time parse.
pub(crate) fn reduce_secret(bytes: &[u8; 32]) -> Option<SecretScalar> {
    if let Ok(key) = SecretKey::from_slice(bytes) {
        return Some(SecretScalar(key));
    }
    // Either bytes == 0 or bytes ≥ n.
    let mut hi = [0u8; 32];
    hi[16..].copy_from_slice(&bytes[..16]);
    let mut lo = [0u8; 32];
    lo[16..].copy_from_slice(&bytes[16..]);
    // Both halves are below 2^128 < n, so they parse; hi is zero only when bytes < 2^128,
    // which (parsing having failed) means bytes == 0.
    let hi = SecretKey::from_slice(&hi).ok()?;
    let lo = Scalar::from_be_bytes(lo).ok()?;
    // hi·2^128 is non-zero (n is prime); adding lo fails only when the sum is 0 mod n.
    let sum = hi.mul_tweak(&two_pow_128()).ok()?.add_tweak(&lo).ok()?;
    Some(SecretScalar(sum))
}

/// `bytes mod n` for public values such as the BIP-0340 challenge; may be zero.
pub(crate) fn reduce_public(bytes: [u8; 32]) -> Scalar {
    match Scalar::from_be_bytes(bytes) {
        Ok(s) => s,
        Err(_) => reduce_secret(&bytes).map_or(Scalar::ZERO, |s| s.to_tweak().0),
    }
}

/// A non-zero secret scalar; overwritten when dropped.
///
/// `SecretKey` is `Copy`, so the library's by-value operations leave copies on the stack that
/// no wrapper can reach; the owned value, the one that lives on, is erased.
pub(crate) struct SecretScalar(SecretKey);

impl SecretScalar {
    pub(crate) fn new(key: SecretKey) -> Self {
        SecretScalar(key)
    }

    pub(crate) fn key(&self) -> &SecretKey {
        &self.0
    }

    /// n − self.
    pub(crate) fn negate(&self) -> SecretScalar {
        SecretScalar(self.0.negate())
    }

    /// self + tweak, or `None` when the sum is 0 mod n.
    pub(crate) fn add(&self, tweak: &Scalar) -> Option<SecretScalar> {
        self.0.add_tweak(tweak).ok().map(SecretScalar)
    }

    /// self · factor, or `None` when factor is zero.
    pub(crate) fn mul(&self, factor: &Scalar) -> Option<SecretScalar> {
        self.0.mul_tweak(factor).ok().map(SecretScalar)
    }

    /// The same value as a tweak for the library's `add_tweak`, erased on drop as well.
    pub(crate) fn to_tweak(&self) -> SecretTweak {
        SecretTweak(Scalar::from(self.0))
    }
}

impl Drop for SecretScalar {
    fn drop(&mut self) {
        self.0.non_secure_erase();
    }
}

/// A secret value in the library's `Scalar` form; overwritten when dropped.
pub(crate) struct SecretTweak(pub(crate) Scalar);

impl Drop for SecretTweak {
    fn drop(&mut self) {
        self.0.non_secure_erase();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: [u8; 32] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xFE, 0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36,
        0x41, 0x41,
    ];

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        let raw = hex::decode(s).unwrap();
        out[32 - raw.len()..].copy_from_slice(&raw);
        out
    }

    #[test]
    fn values_below_n_are_unchanged() {
        let v = hex32("1234");
        assert_eq!(reduce_public(v).to_be_bytes(), v);
        assert_eq!(reduce_secret(&v).unwrap().key().secret_bytes(), v);
    }

    #[test]
    fn n_reduces_to_zero() {
        assert_eq!(reduce_public(N), Scalar::ZERO);
        assert!(reduce_secret(&N).is_none());
        assert!(reduce_secret(&[0u8; 32]).is_none());
    }

    #[test]
    fn values_above_n_wrap_once() {
        let mut n_plus_5 = N;
        n_plus_5[31] += 5;
        assert_eq!(reduce_public(n_plus_5).to_be_bytes(), hex32("05"));
        // (2^256 − 1) mod n = 2^256 − 1 − n.
        assert_eq!(
            reduce_public([0xFF; 32]).to_be_bytes(),
            hex32("014551231950b75fc4402da1732fc9bebe")
        );
    }

    #[test]
    fn secret_arithmetic_is_mod_n() {
        let one = reduce_secret(&hex32("01")).unwrap();
        let minus_one = one.negate();
        assert_eq!(minus_one.key().secret_bytes(), Scalar::MAX.to_be_bytes());
        assert!(minus_one.add(&Scalar::ONE).is_none());
        let two = one.add(&Scalar::ONE).unwrap();
        assert!(two.mul(&Scalar::ZERO).is_none());
        assert_eq!(
            two.mul(&two.to_tweak().0).unwrap().key().secret_bytes(),
            hex32("04")
        );
    }
}
