//! `s·G − e·P`, the nonce point EncVerify reconstructs, in one multi-scalar multiplication.
//!
//! The `secp256k1` API offers no general `a·P + b·G`. Its ECDSA public-key recovery computes
//! exactly that shape: for a recoverable signature (r, σ) with recovery id selecting the point
//! R with x ≡ r, and message z, it returns r⁻¹·(σ·R − z·G). Taking R = P (so r = P.x mod n),
//! σ = −e·r and z = −s·r gives r⁻¹·(−e·r·P + s·r·G) = s·G − e·P, at the cost of one
//! Strauss-style multiplication instead of two separate ones.
//!
//! The rare inputs this cannot express (e = 0, or P.x ≡ 0 mod n) take the plain route of
//! two library multiplications.

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey, Scalar, SecretKey, SECP256K1};

use super::scalar::reduce_secret;

/// P.x mod n and the recovery id that selects the even-y point P, computed once per key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// r = P.x mod n, non-zero. Public; held as a `SecretKey` only for its mod-n arithmetic.
    r: SecretKey,
    id: RecoveryId,
}

impl Recovery {
    /// For the point with x-coordinate `x` and even y; `None` when x ≡ 0 mod n.
    pub(crate) fn for_even_point(x: &[u8; 32]) -> Option<Self> {
        let r = reduce_secret(x)?;
        // Recovery id bit 0: parity of y (even); bit 1: x ≥ n, i.e. x = r + n.
        let wrapped = r.key().secret_bytes() != *x;
        let id = RecoveryId::from_i32(if wrapped { 2 } else { 0 }).ok()?;
        Some(Recovery { r: *r.key(), id })
    }
}

/// `s·G − e·P` for a non-zero `s` and the even-y point `p`; `None` when it is the point at
/// infinity.
pub(crate) fn s_g_minus_e_p(
    s: &Scalar,
    e: &Scalar,
    p: &PublicKey,
    recovery: Option<&Recovery>,
) -> Option<PublicKey> {
    if let Some(rec) = recovery {
        if *e != Scalar::ZERO {
            // σ = −e·r and z = −s·r; both non-zero because e, s, r are and n is prime.
            let sigma = rec.r.mul_tweak(e).ok()?.negate();
            let z = rec.r.mul_tweak(s).ok()?.negate();
            let mut compact = [0u8; 64];
            compact[..32].copy_from_slice(&rec.r.secret_bytes());
            compact[32..].copy_from_slice(&sigma.secret_bytes());
            let signature = RecoverableSignature::from_compact(&compact, rec.id).ok()?;
            let message = Message::from_digest(z.secret_bytes());
            // With valid r, σ and a point P on the curve, recovery fails only when the result
            // is the point at infinity.
            return SECP256K1.recover_ecdsa(&message, &signature).ok();
        }
    }
    s_g_minus_e_p_plain(s, e, p)
}

/// The same value by two separate library multiplications; the fallback, and the reference
/// the fast route is tested against.
pub(crate) fn s_g_minus_e_p_plain(s: &Scalar, e: &Scalar, p: &PublicKey) -> Option<PublicKey> {
    if *e == Scalar::ZERO {
        let s = SecretKey::from_slice(&s.to_be_bytes()).ok()?;
        return Some(PublicKey::from_secret_key(SECP256K1, &s));
    }
    p.negate(SECP256K1)
        .mul_tweak(SECP256K1, e)
        .ok()?
        .add_exp_tweak(SECP256K1, s)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use secp256k1::Parity;

    fn scalar(bytes: [u8; 32]) -> Scalar {
        fiamma_staking::bip340::reduce_mod_n(&bytes).map_or(Scalar::ZERO, Scalar::from)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn recovery_route_equals_plain_route(
            key in any::<[u8; 32]>(),
            s in any::<[u8; 32]>(),
            e in any::<[u8; 32]>(),
        ) {
            let Ok(sk) = SecretKey::from_slice(&key) else { return Ok(()) };
            let (x, _) = sk.x_only_public_key(SECP256K1);
            let p = PublicKey::from_x_only_public_key(x, Parity::Even);
            let (s, e) = (scalar(s), scalar(e));
            prop_assume!(s != Scalar::ZERO);
            let rec = Recovery::for_even_point(&x.serialize());
            prop_assert!(rec.is_some());
            prop_assert_eq!(
                s_g_minus_e_p(&s, &e, &p, rec.as_ref()),
                s_g_minus_e_p_plain(&s, &e, &p)
            );
        }
    }

    /// Curve points whose x-coordinate is not below n: x = n (so r = 0, no recovery route)
    /// and x = n + 2 (recovery id 2, r = x − n).
    #[test]
    fn x_coordinates_at_or_above_n_are_handled() {
        let n_hex = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
        let n_plus_2 = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364143";
        let (s, e) = (scalar([3; 32]), scalar([4; 32]));
        for (x_hex, expect_recovery) in [(n_hex, false), (n_plus_2, true)] {
            let x: [u8; 32] = hex::decode(x_hex).unwrap().try_into().unwrap();
            let p = PublicKey::from_x_only_public_key(
                secp256k1::XOnlyPublicKey::from_slice(&x).unwrap(),
                Parity::Even,
            );
            let rec = Recovery::for_even_point(&x);
            assert_eq!(rec.is_some(), expect_recovery, "{x_hex}");
            let plain = s_g_minus_e_p_plain(&s, &e, &p);
            assert!(plain.is_some());
            assert_eq!(s_g_minus_e_p(&s, &e, &p, rec.as_ref()), plain, "{x_hex}");
        }
    }

    #[test]
    fn infinity_is_none() {
        // s·G − e·P = 0 for P = G, s = e.
        let one = SecretKey::from_slice(&Scalar::ONE.to_be_bytes()).unwrap();
        let g = one.public_key(SECP256K1);
        let rec = Recovery::for_even_point(&g.x_only_public_key().0.serialize());
        let five = scalar({
            let mut b = [0u8; 32];
            b[31] = 5;
            b
        });
        // G has even y, so it is its own even lift.
        assert_eq!(g.x_only_public_key().1, Parity::Even);
        assert_eq!(s_g_minus_e_p(&five, &five, &g, rec.as_ref()), None);
        assert_eq!(s_g_minus_e_p_plain(&five, &five, &g), None);
    }

    #[test]
    fn zero_challenge_gives_s_g() {
        let one = SecretKey::from_slice(&Scalar::ONE.to_be_bytes()).unwrap();
        let g = one.public_key(SECP256K1);
        let rec = Recovery::for_even_point(&g.x_only_public_key().0.serialize());
        assert_eq!(
            s_g_minus_e_p(&Scalar::ONE, &Scalar::ZERO, &g, rec.as_ref()),
            Some(g)
        );
    }
}
