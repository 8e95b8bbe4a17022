//! The two BIP-0340 pieces that the covenant adaptor signatures (`PROTOCOL.md` §5) and the
//! finality EOTS signatures (§9) compute themselves, outside the `secp256k1` crate's own
//! sign/verify: the challenge `e = tagged("BIP0340/challenge", R.x ‖ P.x ‖ m) mod n`, and the
//! reduction of 32 big-endian bytes modulo the group order n.
//!
//! Scalars are `Option<SecretKey>` with `None` standing for zero, because `SecretKey` is the
//! crate's only mod-n type with arithmetic and it cannot hold zero.

use bitcoin::hashes::{sha256t_hash_newtype, Hash, HashEngine};
use secp256k1::{Scalar, SecretKey};

sha256t_hash_newtype! {
    struct ChallengeTag = hash_str("BIP0340/challenge");

    /// `tagged("BIP0340/challenge", ·)`, before reduction.
    struct ChallengeHash(_);
}

/// 2^255: below n, so `value − 2^255` is the one subtraction a value in [n, 2^256) needs.
const TWO_POW_255: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 0x80;
    b
};

/// The BIP-0340 challenge `e = tagged("BIP0340/challenge", r_x ‖ p_x ‖ msg) mod n`, where
/// `r_x` is the nonce's and `p_x` the signer's x coordinate; `None` when e is zero.
///
/// For every BIP-0340 signature `(r_x, s)` by `p_x` on `msg`, `s·G = R + e·P` with R and P the
/// even-y points of `r_x` and `p_x`.
pub fn challenge(r_x: &[u8; 32], p_x: &[u8; 32], msg: &[u8; 32]) -> Option<SecretKey> {
    let mut engine = ChallengeHash::engine();
    engine.input(r_x);
    engine.input(p_x);
    engine.input(msg);
    reduce_mod_n(&ChallengeHash::from_engine(engine).to_byte_array())
}

/// `bytes mod n`, reading `bytes` as a big-endian integer; `None` when the result is zero
/// (`bytes` is 0 or n).
///
/// Values below n, all but a 2^-128 fraction of 32-byte hashes, take one constant-time parse,
/// so secret inputs such as a nonce hash may be reduced here.
pub fn reduce_mod_n(bytes: &[u8; 32]) -> Option<SecretKey> {
    if let Ok(key) = SecretKey::from_slice(bytes) {
        return Some(key);
    }
    if Scalar::from_be_bytes(*bytes).is_ok() {
        // Below n but not a secret key: zero.
        return None;
    }
    // The value v is in [n, 2^256), so its top bit is set and v − 2^255 (the value with the
    // top bit cleared) lies in [n − 2^255, 2^255): non-zero and below n, so both parses succeed
    // and the `?`s never return. The sum is v − n, zero only when v = n.
    let mut low = *bytes;
    low[0] &= 0x7f;
    let low = SecretKey::from_slice(&low).ok()?;
    low.add_tweak(&Scalar::from_be_bytes(TWO_POW_255).ok()?)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::sha256;
    use proptest::prelude::*;
    use secp256k1::constants::CURVE_ORDER as N;
    use secp256k1::{Keypair, Message, Parity, PublicKey, SECP256K1};

    fn bytes(x: Option<SecretKey>) -> [u8; 32] {
        x.map_or([0; 32], |k| k.secret_bytes())
    }

    /// a − b for big-endian 256-bit integers with a ≥ b.
    fn sub(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let d = i16::from(a[i]) - i16::from(b[i]) - borrow;
            borrow = i16::from(d < 0);
            out[i] = d.rem_euclid(256) as u8;
        }
        out
    }

    #[test]
    fn reduction_at_the_boundaries() {
        let mut one = [0u8; 32];
        one[31] = 1;
        let mut n_minus_1 = N;
        n_minus_1[31] -= 1;
        let mut n_plus_5 = N;
        n_plus_5[31] += 5;
        let mut five = [0u8; 32];
        five[31] = 5;
        assert_eq!(reduce_mod_n(&[0; 32]), None);
        assert_eq!(bytes(reduce_mod_n(&one)), one);
        assert_eq!(bytes(reduce_mod_n(&n_minus_1)), n_minus_1);
        assert_eq!(reduce_mod_n(&N), None);
        assert_eq!(bytes(reduce_mod_n(&n_plus_5)), five);
        assert_eq!(bytes(reduce_mod_n(&[0xff; 32])), sub(&[0xff; 32], &N));
    }

    #[test]
    fn challenge_is_the_tagged_hash_of_r_p_m() {
        let tag = sha256::Hash::hash(b"BIP0340/challenge").to_byte_array();
        let mut data = [tag, tag].concat();
        data.extend_from_slice(&[[9u8; 32], [8u8; 32], [4u8; 32]].concat());
        let expected = sha256::Hash::hash(&data).to_byte_array();
        assert_eq!(
            bytes(challenge(&[9; 32], &[8; 32], &[4; 32])),
            bytes(reduce_mod_n(&expected))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn reduction_subtracts_n_at_most_once(v in any::<[u8; 32]>()) {
            let reduced = bytes(reduce_mod_n(&v));
            if v < N {
                prop_assert_eq!(reduced, v);
            } else {
                prop_assert_eq!(reduced, sub(&v, &N));
            }
        }

        /// s·G = R + e·P for libsecp256k1's own BIP-0340 signatures.
        #[test]
        fn challenge_satisfies_the_verification_equation(
            key in any::<[u8; 32]>(),
            msg in any::<[u8; 32]>(),
            aux in any::<[u8; 32]>(),
        ) {
            let Ok(keypair) = Keypair::from_seckey_slice(SECP256K1, &key) else {
                return Err(TestCaseError::reject("not a secret key"));
            };
            let (p_x, _) = keypair.x_only_public_key();
            let sig = SECP256K1.sign_schnorr_with_aux_rand(&Message::from_digest(msg), &keypair, &aux);
            let sig = sig.serialize();
            let (r_x, s) = sig.split_at(32);
            let r_x: [u8; 32] = r_x.try_into().expect("32 bytes");
            let e = challenge(&r_x, &p_x.serialize(), &msg).expect("e = 0 has probability 2^-256");
            let s_g = SecretKey::from_slice(s).expect("0 < s < n").public_key(SECP256K1);
            let p = PublicKey::from_x_only_public_key(p_x, Parity::Even);
            let r = PublicKey::from_x_only_public_key(
                secp256k1::XOnlyPublicKey::from_slice(&r_x).expect("r is on the curve"),
                Parity::Even,
            );
            let e_p = p.mul_tweak(SECP256K1, &Scalar::from(e)).expect("e ≠ 0");
            prop_assert_eq!(r.combine(&e_p).expect("not infinity"), s_g);
        }
    }
}
