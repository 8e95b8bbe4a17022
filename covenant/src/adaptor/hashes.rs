//! The three BIP-0340-style tagged hashes of the scheme: `tagged(tag, m) =
//! sha256(sha256(tag) ‖ sha256(tag) ‖ m)`, with the tag prefix precomputed as a SHA-256 midstate.
//! The challenge itself is the one `fiamma_staking::bip340` computes for EOTS as well.

use bitcoin::hashes::{sha256, sha256t, Hash, HashEngine};
use fiamma_staking::bip340;
use secp256k1::Scalar;
use zeroize::Zeroizing;

macro_rules! tag {
    ($name:ident, $tag:literal) => {
        #[doc = concat!("The tag `", $tag, "`.")]
        pub(crate) struct $name;

        impl sha256t::Tag for $name {
            fn engine() -> sha256::HashEngine {
                const MIDSTATE: sha256::Midstate = sha256::Midstate::hash_tag($tag.as_bytes());
                sha256::HashEngine::from_midstate(MIDSTATE, 64)
            }
        }
    };
}

tag!(AuxTag, "SchnorrAdaptor/aux");
tag!(NonceTag, "SchnorrAdaptor/nonce");

fn tagged<T: sha256t::Tag>(parts: &[&[u8]]) -> [u8; 32] {
    let mut engine = T::engine();
    for part in parts {
        engine.input(part);
    }
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// `tagged("SchnorrAdaptor/aux", aux)`: masks the signing key before it enters the nonce hash.
pub(crate) fn aux_mask(aux: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(tagged::<AuxTag>(&[aux]))
}

/// `tagged("SchnorrAdaptor/nonce", t_aux ‖ T ‖ P.x ‖ m)`, not yet reduced mod n.
pub(crate) fn nonce_hash(
    masked_key: &[u8; 32],
    encryption_key: &[u8; 33],
    signer_x: &[u8; 32],
    msg: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(tagged::<NonceTag>(&[
        masked_key,
        encryption_key,
        signer_x,
        msg,
    ]))
}

/// The BIP-0340 challenge `e = tagged("BIP0340/challenge", R.x ‖ P.x ‖ m) mod n`.
pub(crate) fn challenge(nonce_x: &[u8; 32], signer_x: &[u8; 32], msg: &[u8; 32]) -> Scalar {
    bip340::challenge(nonce_x, signer_x, msg).map_or(Scalar::ZERO, Scalar::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(tag: &str, m: &[u8]) -> [u8; 32] {
        let t = sha256::Hash::hash(tag.as_bytes()).to_byte_array();
        let mut data = t.to_vec();
        data.extend_from_slice(&t);
        data.extend_from_slice(m);
        sha256::Hash::hash(&data).to_byte_array()
    }

    #[test]
    fn midstates_match_the_definition() {
        let m = [7u8; 32];
        assert_eq!(*aux_mask(&m), naive("SchnorrAdaptor/aux", &m));
        let t = [1u8; 33];
        let mut cat = m.to_vec();
        cat.extend_from_slice(&t);
        cat.extend_from_slice(&[2u8; 32]);
        cat.extend_from_slice(&[3u8; 32]);
        assert_eq!(
            *nonce_hash(&m, &t, &[2u8; 32], &[3u8; 32]),
            naive("SchnorrAdaptor/nonce", &cat)
        );
    }

    #[test]
    fn challenge_is_the_tagged_hash_of_r_p_m() {
        let r = [9u8; 32];
        let p = [8u8; 32];
        let m = [4u8; 32];
        let mut cat = r.to_vec();
        cat.extend_from_slice(&p);
        cat.extend_from_slice(&m);
        let expected = naive("BIP0340/challenge", &cat);
        assert_eq!(challenge(&r, &p, &m).to_be_bytes(), expected);
    }
}
