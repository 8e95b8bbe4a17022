//! Property tests of the adaptor signature scheme over random keys, messages and aux bytes.

use fiamma_covenant::adaptor::{
    enc_sign, AdaptorSignature, DecryptionKey, EncryptionKey, SignerKey,
};
use proptest::prelude::*;
use secp256k1::{Keypair, Message, SecretKey, SECP256K1};

fn secret_key() -> impl Strategy<Value = SecretKey> {
    any::<[u8; 32]>().prop_filter_map("not a valid secret key", |b| SecretKey::from_slice(&b).ok())
}

/// A covenant signing key, a verifier secret key, a message and aux randomness.
fn inputs() -> impl Strategy<Value = (SecretKey, SecretKey, [u8; 32], [u8; 32])> {
    (
        secret_key(),
        secret_key(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
}

fn signer(sk: &SecretKey) -> SignerKey {
    SignerKey::new(sk.x_only_public_key(SECP256K1).0)
}

fn verifier_keys(sk: &SecretKey) -> (EncryptionKey, DecryptionKey) {
    let (x, _) = sk.x_only_public_key(SECP256K1);
    (
        EncryptionKey::from_verifier_key(&x),
        DecryptionKey::from_verifier_secret(sk),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn decrypted_pre_signature_is_a_valid_bip340_signature((d, v, msg, aux) in inputs()) {
        let (t_pub, t) = verifier_keys(&v);
        let presig = enc_sign(&Keypair::from_secret_key(SECP256K1, &d), &t_pub, &msg, &aux).unwrap();
        prop_assert!(presig.enc_verify(&signer(&d), &msg, &t_pub).is_ok());
        let sig = presig.decrypt(&t).unwrap();
        let (p, _) = d.x_only_public_key(SECP256K1);
        prop_assert!(SECP256K1.verify_schnorr(&sig, &Message::from_digest(msg), &p).is_ok());
    }

    #[test]
    fn extract_recovers_the_verifier_key((d, v, msg, aux) in inputs()) {
        let (t_pub, t) = verifier_keys(&v);
        let presig = enc_sign(&Keypair::from_secret_key(SECP256K1, &d), &t_pub, &msg, &aux).unwrap();
        let extracted = presig.extract(&presig.decrypt(&t).unwrap()).unwrap();
        // Equal as x-only keys: the secret is v or n − v.
        prop_assert_eq!(extracted.x_only_public_key(), v.x_only_public_key(SECP256K1).0);
        let secret = extracted.to_secret_key();
        prop_assert!(secret == v || secret == v.negate());
    }

    #[test]
    fn any_point_of_either_parity_works_as_encryption_key((d, v, msg, aux) in inputs()) {
        // The general scheme: T = tG exactly, t not normalized.
        let t = DecryptionKey::from_secret_key(v);
        let t_pub = t.encryption_key();
        let presig = enc_sign(&Keypair::from_secret_key(SECP256K1, &d), &t_pub, &msg, &aux).unwrap();
        prop_assert!(presig.enc_verify(&signer(&d), &msg, &t_pub).is_ok());
        let sig = presig.decrypt(&t).unwrap();
        let (p, _) = d.x_only_public_key(SECP256K1);
        prop_assert!(SECP256K1.verify_schnorr(&sig, &Message::from_digest(msg), &p).is_ok());
        prop_assert_eq!(presig.extract(&sig).unwrap().to_secret_key(), v);
    }

    #[test]
    fn wrong_signer_message_or_encryption_key_fails(
        (d, v, msg, aux) in inputs(),
        other in secret_key(),
        other_msg in any::<[u8; 32]>(),
    ) {
        let (t_pub, _) = verifier_keys(&v);
        let presig = enc_sign(&Keypair::from_secret_key(SECP256K1, &d), &t_pub, &msg, &aux).unwrap();
        prop_assume!(other.x_only_public_key(SECP256K1).0 != d.x_only_public_key(SECP256K1).0);
        prop_assume!(other.x_only_public_key(SECP256K1).0 != v.x_only_public_key(SECP256K1).0);
        prop_assume!(other_msg != msg);
        prop_assert!(presig.enc_verify(&signer(&other), &msg, &t_pub).is_err());
        prop_assert!(presig.enc_verify(&signer(&d), &other_msg, &t_pub).is_err());
        let (other_t, _) = verifier_keys(&other);
        prop_assert!(presig.enc_verify(&signer(&d), &msg, &other_t).is_err());
        // The same x-coordinate with the other parity is a different encryption key.
        let negated = EncryptionKey::from_point(t_pub.point().negate(SECP256K1));
        prop_assert!(presig.enc_verify(&signer(&d), &msg, &negated).is_err());
    }

    #[test]
    fn any_flipped_bit_fails_parsing_or_enc_verify((d, v, msg, aux) in inputs(), bit in 0usize..520) {
        let (t_pub, _) = verifier_keys(&v);
        let mut bytes = enc_sign(&Keypair::from_secret_key(SECP256K1, &d), &t_pub, &msg, &aux).unwrap().to_bytes();
        bytes[bit / 8] ^= 1 << (bit % 8);
        if let Ok(tampered) = AdaptorSignature::from_bytes(&bytes) {
            prop_assert!(tampered.enc_verify(&signer(&d), &msg, &t_pub).is_err());
        }
    }

    #[test]
    fn both_encodings_round_trip((d, v, msg, aux) in inputs()) {
        let (t_pub, _) = verifier_keys(&v);
        let presig = enc_sign(&Keypair::from_secret_key(SECP256K1, &d), &t_pub, &msg, &aux).unwrap();
        prop_assert_eq!(AdaptorSignature::from_slice(&presig.to_bytes()).unwrap(), presig);
        prop_assert_eq!(AdaptorSignature::from_slice(&presig.to_legacy_bytes()).unwrap(), presig);
    }
}
