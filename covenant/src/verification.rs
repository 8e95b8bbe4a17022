//! Checking a covenant member's full signature set for a delegation (`PROTOCOL.md` §5, §8):
//! what the node does before it counts the member towards the quorum.

use std::collections::BTreeSet;

use bitcoin::hashes::Hash as _;

use fiamma_staking::delegation::DelegationSighashes as Messages;
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::sighash::{verify, SignatureError};
use secp256k1::XOnlyPublicKey;

use crate::adaptor::{EncVerifyError, EncryptionKey, SignerKey};
use crate::delegation::{DelegationSighashes, SlashingTx};
use crate::signing::CovenantSignatures;

/// The first reason a covenant member's signature set was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CovenantSignaturesError {
    /// The signer is not in the delegation's covenant committee.
    #[error("{0} is not a covenant committee key of the delegation")]
    NotCovenantMember(XOnlyPublicKey),
    /// An adaptor signature is encrypted to a key that is not a verifier of the delegation.
    #[error(
        "adaptor signature on the {tx} for {verifier}, which is not a verifier of the delegation"
    )]
    UnknownVerifier {
        /// Which slashing transaction.
        tx: SlashingTx,
        /// The key named by the signature.
        verifier: XOnlyPublicKey,
    },
    /// Two adaptor signatures for one verifier key.
    #[error("two adaptor signatures on the {tx} for verifier {verifier}")]
    DuplicateVerifier {
        /// Which slashing transaction.
        tx: SlashingTx,
        /// The repeated key.
        verifier: XOnlyPublicKey,
    },
    /// No adaptor signature for one of the delegation's verifier keys.
    #[error("no adaptor signature on the {tx} for verifier {verifier}")]
    MissingVerifier {
        /// Which slashing transaction.
        tx: SlashingTx,
        /// The verifier key without a signature.
        verifier: XOnlyPublicKey,
    },
    /// An adaptor signature fails EncVerify.
    #[error("adaptor signature on the {tx} for verifier {verifier}: {source}")]
    AdaptorSignature {
        /// Which slashing transaction.
        tx: SlashingTx,
        /// The verifier key it should be encrypted to.
        verifier: XOnlyPublicKey,
        /// Why EncVerify rejected it (boxed: it carries the signature and both points).
        source: Box<EncVerifyError>,
    },
    /// The unbonding signature does not verify.
    #[error("unbonding signature by {covenant}: {source}")]
    UnbondingSignature {
        /// The covenant member.
        covenant: XOnlyPublicKey,
        /// Why it was rejected.
        source: Box<SignatureError>,
    },
}

/// Accepts `sigs` iff its signer is a committee member of the delegation, it holds exactly one
/// adaptor signature per verifier key on each slashing transaction, every one of them
/// EncVerifies against its verifier key over that transaction's sighash, and the unbonding
/// signature is valid. Reports the first failure found.
pub fn verify_covenant_signatures(
    keys: &StakingKeys,
    sighashes: &DelegationSighashes,
    sigs: &CovenantSignatures,
) -> Result<(), CovenantSignaturesError> {
    verify_covenant_signatures_on(keys, &sighashes.messages(), sigs)
}

/// [`verify_covenant_signatures`] against messages computed earlier (the node computes them
/// once, when it registers the delegation, and keeps them).
pub fn verify_covenant_signatures_on(
    keys: &StakingKeys,
    messages: &Messages,
    sigs: &CovenantSignatures,
) -> Result<(), CovenantSignaturesError> {
    let covenant = sigs.covenant;
    if !keys.covenants().contains(&covenant) {
        return Err(CovenantSignaturesError::NotCovenantMember(covenant));
    }
    // One square root for the signer key, reused for every EncVerify below.
    let signer = SignerKey::new(covenant);
    for tx in SlashingTx::ALL {
        let msg = match tx {
            SlashingTx::Staking => &messages.slashing,
            SlashingTx::Unbonding => &messages.unbonding_slashing,
        }
        .as_byte_array();
        let mut seen = BTreeSet::new();
        for entry in sigs.adaptor_sigs(tx) {
            let verifier = entry.verifier;
            if !keys.verifiers().contains(&verifier) {
                return Err(CovenantSignaturesError::UnknownVerifier { tx, verifier });
            }
            if !seen.insert(verifier.serialize()) {
                return Err(CovenantSignaturesError::DuplicateVerifier { tx, verifier });
            }
            entry
                .signature
                .enc_verify(&signer, msg, &EncryptionKey::from_verifier_key(&verifier))
                .map_err(|source| CovenantSignaturesError::AdaptorSignature {
                    tx,
                    verifier,
                    source: Box::new(source),
                })?;
        }
        if let Some(verifier) = keys
            .verifiers()
            .iter()
            .find(|v| !seen.contains(&v.serialize()))
        {
            return Err(CovenantSignaturesError::MissingVerifier {
                tx,
                verifier: *verifier,
            });
        }
    }
    verify(&messages.unbonding, &sigs.unbonding, &covenant).map_err(|source| {
        CovenantSignaturesError::UnbondingSignature {
            covenant,
            source: Box::new(source),
        }
    })
}
