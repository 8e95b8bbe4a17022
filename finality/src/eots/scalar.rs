//! Arithmetic modulo the group order n, expressed through the `secp256k1` crate's secret-key
//! tweaks so that every multiplication and addition runs in libsecp256k1. Reducing a hash mod n
//! is `fiamma_staking::bip340::reduce_mod_n`, whose `Option<SecretKey>` is this module's `ModN`.
//!
//! The crate's `SecretKey` cannot hold zero, so a scalar that may be zero is an
//! `Option<SecretKey>` with `None` standing for zero. That makes every operation here total: the
//! callers decide what a zero means for them instead of handling impossible errors.

use secp256k1::{Scalar, SecretKey};

/// A scalar modulo n; `None` is zero.
pub(crate) type ModN = Option<SecretKey>;

/// n − 2, the exponent that inverts a nonzero scalar (Fermat: a^(n−2) = a⁻¹ mod the prime n).
const N_MINUS_2: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x3f,
];

/// Parses a big-endian scalar that must be below n (as BIP-0340 requires of `s`).
/// Returns `None` when the value is n or above, `Some(None)` for zero.
pub(crate) fn parse_canonical(bytes: &[u8; 32]) -> Option<ModN> {
    Scalar::from_be_bytes(*bytes).ok()?;
    Some(SecretKey::from_slice(bytes).ok())
}

/// The big-endian encoding; zero encodes as 32 zero bytes.
pub(crate) fn to_bytes(a: ModN) -> [u8; 32] {
    a.map_or([0u8; 32], |a| a.secret_bytes())
}

/// a + b mod n.
pub(crate) fn add(a: ModN, b: ModN) -> ModN {
    match (a, b) {
        (None, x) | (x, None) => x,
        // `b` is below n, so the tweak is valid and the only failure is a zero sum.
        (Some(a), Some(b)) => a.add_tweak(&Scalar::from(b)).ok(),
    }
}

/// −a mod n.
pub(crate) fn neg(a: ModN) -> ModN {
    a.map(SecretKey::negate)
}

/// a − b mod n.
pub(crate) fn sub(a: ModN, b: ModN) -> ModN {
    add(a, neg(b))
}

/// a · b mod n.
pub(crate) fn mul(a: ModN, b: ModN) -> ModN {
    match (a, b) {
        // n is prime, so a product of nonzero scalars is nonzero and the tweak cannot fail.
        (Some(a), Some(b)) => a.mul_tweak(&Scalar::from(b)).ok(),
        _ => None,
    }
}

/// a⁻¹ mod n, or `None` when a is zero. The crate exposes no inverse, so this is a^(n−2) by
/// square-and-multiply over the crate's multiplication. The exponent is public, so the sequence
/// of operations does not depend on `a`.
pub(crate) fn inv(a: ModN) -> ModN {
    let mut acc: ModN = None;
    for byte in N_MINUS_2 {
        for bit in (0..8).rev() {
            acc = mul(acc, acc);
            if (byte >> bit) & 1 == 1 {
                acc = if acc.is_none() { a } else { mul(acc, a) };
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scalar(bytes: [u8; 32]) -> ModN {
        fiamma_staking::bip340::reduce_mod_n(&bytes)
    }

    #[test]
    fn parse_canonical_rejects_n() {
        let mut n = N_MINUS_2;
        n[31] += 2;
        assert!(parse_canonical(&n).is_none());
        assert_eq!(parse_canonical(&[0u8; 32]), Some(None));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn inverse_times_value_is_one(bytes in any::<[u8; 32]>()) {
            let a = scalar(bytes);
            prop_assume!(a.is_some());
            let one = mul(a, inv(a));
            prop_assert_eq!(to_bytes(one), Scalar::ONE.to_be_bytes());
        }

        #[test]
        fn sub_undoes_add(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
            let (a, b) = (scalar(a), scalar(b));
            prop_assert_eq!(sub(add(a, b), b), a);
            prop_assert_eq!(add(a, neg(a)), None);
        }
    }
}
