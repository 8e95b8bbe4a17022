//! Arithmetic modulo the group order n, expressed through the `secp256k1` crate's secret-key
//! tweaks so that every multiplication and addition runs in libsecp256k1.
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

/// 2^255, which is below n and therefore a valid nonzero scalar.
const TWO_POW_255: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 0x80;
    b
};

/// Parses a big-endian scalar that must be below n (as BIP-0340 requires of `s`).
/// Returns `None` when the value is n or above, `Some(None)` for zero.
pub(crate) fn parse_canonical(bytes: &[u8; 32]) -> Option<ModN> {
    Scalar::from_be_bytes(*bytes).ok()?;
    Some(SecretKey::from_slice(bytes).ok())
}

/// Interprets 32 big-endian bytes as an integer and reduces it modulo n (as BIP-0340 does with
/// the challenge hash).
pub(crate) fn reduce(bytes: &[u8; 32]) -> ModN {
    if let Some(canonical) = parse_canonical(bytes) {
        return canonical;
    }
    // The value is in [n, 2^256), so its top bit is set: value = low + 2^255 with
    // low = value − 2^255 in [n − 2^255, 2^255), a nonzero scalar below n.
    let mut low = *bytes;
    low[0] &= 0x7f;
    add(
        SecretKey::from_slice(&low).ok(),
        SecretKey::from_slice(&TWO_POW_255).ok(),
    )
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
        reduce(&bytes)
    }

    #[test]
    fn reduce_wraps_values_at_and_above_n() {
        let mut n = N_MINUS_2;
        n[31] += 2;
        assert_eq!(reduce(&n), None);
        let mut n_plus_5 = n;
        n_plus_5[31] += 5;
        assert_eq!(to_bytes(reduce(&n_plus_5))[31], 5);
        assert_eq!(to_bytes(reduce(&n_plus_5))[..31], [0u8; 31]);
        let max = [0xff; 32];
        // (2^256 − 1) mod n = 2^256 − 1 − n
        let expected =
            hex::decode("000000000000000000000000000000014551231950b75fc4402da1732fc9bebe")
                .unwrap();
        assert_eq!(to_bytes(reduce(&max)).to_vec(), expected);
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
