//! The covenant side: a member's signatures for one delegation (`PROTOCOL.md` §5).
//!
//! Per delegation a member produces, for each slashing transaction, one adaptor signature per
//! verifier key (encrypted to that key), and one plain BIP-0340 signature on the unbonding
//! transaction.

use bitcoin::hashes::Hash as _;
use bitcoin::TapSighash;
use fiamma_staking::sighash::sign_with_aux_rand;
use rand::{CryptoRng, RngCore};
use secp256k1::schnorr::Signature;
use secp256k1::{Keypair, XOnlyPublicKey};
use zeroize::Zeroizing;

use crate::adaptor::{enc_sign, AdaptorSignature, EncSignError, EncryptionKey};
use crate::delegation::{DelegationSighashes, SlashingTx};

/// An adaptor signature together with the verifier key it is encrypted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifierAdaptorSig {
    /// The verifier key (x-only) whose secret key decrypts the signature.
    pub verifier: XOnlyPublicKey,
    /// The pre-signature.
    pub signature: AdaptorSignature,
}

/// Everything one covenant member signs for one delegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CovenantSignatures {
    /// The member's key.
    pub covenant: XOnlyPublicKey,
    /// Adaptor signatures on the staking slashing transaction, one per verifier key.
    pub slashing: Vec<VerifierAdaptorSig>,
    /// Adaptor signatures on the unbonding slashing transaction, one per verifier key.
    pub unbonding_slashing: Vec<VerifierAdaptorSig>,
    /// BIP-0340 signature on the unbonding transaction.
    pub unbonding: Signature,
}

impl CovenantSignatures {
    /// The adaptor signatures on `tx`.
    pub fn adaptor_sigs(&self, tx: SlashingTx) -> &[VerifierAdaptorSig] {
        match tx {
            SlashingTx::Staking => &self.slashing,
            SlashingTx::Unbonding => &self.unbonding_slashing,
        }
    }
}

/// Why a covenant member could not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CovenantSignError {
    /// EncSign failed for one verifier key (probability about 2^-128).
    #[error("adaptor signing the {tx} for verifier {verifier}: {source}")]
    Adaptor {
        /// Which slashing transaction.
        tx: SlashingTx,
        /// The verifier key.
        verifier: XOnlyPublicKey,
        /// The cause.
        source: EncSignError,
    },
}

/// Draws 32 bytes of aux randomness, erased after use.
fn aux<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Zeroizing<[u8; 32]> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(bytes.as_mut());
    bytes
}

/// Adaptor-signs one slashing transaction's sighash for one verifier key: the pre-signature
/// becomes a valid signature by `keypair` exactly with that verifier's secret key.
pub fn adaptor_sign_slashing<R: RngCore + CryptoRng + ?Sized>(
    keypair: &Keypair,
    sighash: &TapSighash,
    verifier: &XOnlyPublicKey,
    rng: &mut R,
) -> Result<AdaptorSignature, EncSignError> {
    enc_sign(
        keypair,
        &EncryptionKey::from_verifier_key(verifier),
        &sighash.to_byte_array(),
        &aux(rng),
    )
}

/// All of one member's signatures for a delegation: adaptor signatures on both slashing
/// transactions for each key of `verifiers`, in that order (the delegation's verifier keys:
/// `StakingKeys::verifiers()`, or the order of the registration message), and the unbonding
/// signature. The result passes [`crate::verification::verify_covenant_signatures`].
pub fn sign_delegation<R: RngCore + CryptoRng + ?Sized>(
    keypair: &Keypair,
    sighashes: &DelegationSighashes,
    verifiers: &[XOnlyPublicKey],
    rng: &mut R,
) -> Result<CovenantSignatures, CovenantSignError> {
    let mut per_tx = |tx: SlashingTx| -> Result<Vec<VerifierAdaptorSig>, CovenantSignError> {
        verifiers
            .iter()
            .map(|verifier| {
                adaptor_sign_slashing(keypair, sighashes.slashing_sighash(tx), verifier, rng)
                    .map(|signature| VerifierAdaptorSig {
                        verifier: *verifier,
                        signature,
                    })
                    .map_err(|source| CovenantSignError::Adaptor {
                        tx,
                        verifier: *verifier,
                        source,
                    })
            })
            .collect()
    };
    let slashing = per_tx(SlashingTx::Staking)?;
    let unbonding_slashing = per_tx(SlashingTx::Unbonding)?;
    let unbonding = sign_with_aux_rand(&sighashes.unbonding, keypair, &aux(rng));
    Ok(CovenantSignatures {
        covenant: keypair.x_only_public_key().0,
        slashing,
        unbonding_slashing,
        unbonding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adaptor::{DecryptionKey, SignerKey};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use secp256k1::{Message, SecretKey, SECP256K1};

    #[test]
    fn slashing_pre_signature_decrypts_with_the_verifier_key_only() {
        let keypair = Keypair::from_seckey_slice(SECP256K1, &[1; 32]).unwrap();
        let verifier = SecretKey::from_slice(&[2; 32]).unwrap();
        let (verifier_x, _) = verifier.x_only_public_key(SECP256K1);
        let sighash = TapSighash::from_byte_array([5; 32]);
        let mut rng = StdRng::seed_from_u64(1);
        let presig = adaptor_sign_slashing(&keypair, &sighash, &verifier_x, &mut rng).unwrap();
        let (covenant, _) = keypair.x_only_public_key();
        presig
            .enc_verify(
                &SignerKey::new(covenant),
                &sighash.to_byte_array(),
                &EncryptionKey::from_verifier_key(&verifier_x),
            )
            .unwrap();
        let sig = presig
            .decrypt(&DecryptionKey::from_verifier_secret(&verifier))
            .unwrap();
        let msg = Message::from_digest(sighash.to_byte_array());
        assert!(SECP256K1.verify_schnorr(&sig, &msg, &covenant).is_ok());
        // Fresh aux randomness each time: two pre-signatures of the same message differ.
        let again = adaptor_sign_slashing(&keypair, &sighash, &verifier_x, &mut rng).unwrap();
        assert_ne!(presig, again);
    }
}
