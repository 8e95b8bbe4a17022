//! Scalars modulo the group order n, and wrappers that erase secret ones on drop.
//!
//! Reduction of 32-byte hashes mod n is `fiamma_staking::bip340::reduce_mod_n`, shared with the
//! finality crate's EOTS; this module only wraps its result.

use fiamma_staking::bip340::reduce_mod_n;
use secp256k1::{Scalar, SecretKey};

/// `bytes mod n` as a non-zero secret scalar, or `None` when it is zero.
///
/// The common case (bytes < n, probability 1 − 2^-128) is a constant-time parse.
pub(crate) fn reduce_secret(bytes: &[u8; 32]) -> Option<SecretScalar> {
    reduce_mod_n(bytes).map(SecretScalar)
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

    use secp256k1::constants::CURVE_ORDER as N;

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        let raw = hex::decode(s).unwrap();
        out[32 - raw.len()..].copy_from_slice(&raw);
        out
    }

    #[test]
    fn reduction_is_mod_n_and_zero_is_none() {
        let v = hex32("1234");
        assert_eq!(reduce_secret(&v).unwrap().key().secret_bytes(), v);
        assert!(reduce_secret(&N).is_none());
        assert!(reduce_secret(&[0u8; 32]).is_none());
        let mut n_plus_5 = N;
        n_plus_5[31] += 5;
        assert_eq!(
            reduce_secret(&n_plus_5).unwrap().key().secret_bytes(),
            hex32("05")
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
