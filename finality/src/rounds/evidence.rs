//! Slashing evidence (`PROTOCOL.md` §11): two votes on different messages for one round
//! (equivocation), or a key the verifier revealed by slashing on its own (selective slashing).
//! Either way the result is the verifier's secret key, checked against its BTC key.

use bitcoin::Txid;
use fiamma_staking::context::SigningContexts;
use secp256k1::{Parity, PublicKey, SecretKey, XOnlyPublicKey, SECP256K1};

use crate::eots::{extract, ExtractError, PublicRandomness, VerifyError};

use super::vote::Vote;

/// Two valid votes by one verifier on one round with different round hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// The vote seen first.
    pub first: Vote,
    /// The conflicting vote.
    pub second: Vote,
}

/// What proved that a verifier's key is exposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlashingEvidence {
    /// It voted twice on one round (boxed: two votes with their Merkle proofs).
    Equivocation(Box<Equivocation>),
    /// It spent a staking or unbonding output through the slashing path on its own, revealing
    /// its key through the covenant adaptor signatures.
    SelectiveSlashing {
        /// The slashing transaction that revealed the key.
        slashing_txid: Txid,
    },
}

/// The outcome of accepted evidence: mark `verifier` SLASHED and publish its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slashing {
    /// The verifier to slash.
    pub verifier: XOnlyPublicKey,
    /// Its secret key, normalised to the one whose public key has even y (the BIP-0340 form),
    /// so both kinds of evidence publish the same value.
    pub secret_key: SecretKey,
    /// The evidence.
    pub evidence: SlashingEvidence,
}

/// Why two votes are not equivocation evidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EquivocationError {
    /// The votes are by different verifiers (first, second; boxed to keep the error small).
    #[error("the votes are by different verifiers {} and {}", .0[0], .0[1])]
    DifferentVoters(Box<[XOnlyPublicKey; 2]>),
    /// The votes are on different rounds.
    #[error("the votes are on different rounds {first} and {second}")]
    DifferentRounds {
        /// The first vote's round.
        first: u64,
        /// The second vote's round.
        second: u64,
    },
    /// The votes sign the same message.
    #[error("both votes of {voter} on round {round} sign the same round hash")]
    SameMessage {
        /// The voter.
        voter: XOnlyPublicKey,
        /// The round.
        round: u64,
    },
    /// The first vote's signature does not verify.
    #[error("first vote: {0}")]
    FirstSignature(VerifyError),
    /// The second vote's signature does not verify.
    #[error("second vote: {0}")]
    SecondSignature(VerifyError),
    /// The votes use different randomness, so they do not reveal the key.
    #[error("the votes use different public randomness {first} and {second}")]
    DifferentRandomness {
        /// The first vote's randomness.
        first: PublicRandomness,
        /// The second vote's randomness.
        second: PublicRandomness,
    },
    /// Extraction failed.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// The extracted key is not the verifier's.
    #[error(transparent)]
    KeyMismatch(#[from] KeyMismatch),
}

/// A secret key that is not the accused verifier's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the secret key belongs to {got}, not to the accused verifier")]
pub struct KeyMismatch {
    /// The x-only key of the supplied secret key.
    pub got: XOnlyPublicKey,
}

/// Checks two votes as equivocation evidence (from the node's own store or from anyone) and
/// extracts the verifier's key from them.
///
/// # Errors
/// [`EquivocationError`] naming the first check that failed.
pub fn equivocation(
    first: &Vote,
    second: &Vote,
    contexts: &SigningContexts,
) -> Result<Slashing, EquivocationError> {
    if first.voter != second.voter {
        return Err(EquivocationError::DifferentVoters(Box::new([
            first.voter,
            second.voter,
        ])));
    }
    if first.round != second.round {
        return Err(EquivocationError::DifferentRounds {
            first: first.round,
            second: second.round,
        });
    }
    if first.round_hash == second.round_hash {
        return Err(EquivocationError::SameMessage {
            voter: first.voter,
            round: first.round,
        });
    }
    first
        .verify_signature(contexts)
        .map_err(EquivocationError::FirstSignature)?;
    second
        .verify_signature(contexts)
        .map_err(EquivocationError::SecondSignature)?;
    if first.public_randomness != second.public_randomness {
        return Err(EquivocationError::DifferentRandomness {
            first: first.public_randomness,
            second: second.public_randomness,
        });
    }
    let key = extract(
        &first.voter,
        &first.public_randomness,
        &first.message(contexts),
        &first.signature,
        &second.message(contexts),
        &second.signature,
    )?;
    let secret_key = matching_key(&first.voter, key)?;
    Ok(Slashing {
        verifier: first.voter,
        secret_key,
        evidence: SlashingEvidence::Equivocation(Box::new(Equivocation {
            first: first.clone(),
            second: second.clone(),
        })),
    })
}

/// Accepts a key revealed by the verifier's own slashing transaction (extracted by the caller
/// with the covenant crate's `Extract`) as evidence against `verifier`.
///
/// # Errors
/// [`KeyMismatch`] when the key's x-only public key is not `verifier`.
pub fn selective_slashing(
    verifier: &XOnlyPublicKey,
    extracted: SecretKey,
    slashing_txid: Txid,
) -> Result<Slashing, KeyMismatch> {
    Ok(Slashing {
        verifier: *verifier,
        secret_key: matching_key(verifier, extracted)?,
        evidence: SlashingEvidence::SelectiveSlashing { slashing_txid },
    })
}

/// Compares x-only keys (a key and its negation share one) and returns the even-y secret key.
fn matching_key(verifier: &XOnlyPublicKey, key: SecretKey) -> Result<SecretKey, KeyMismatch> {
    let (got, parity) = PublicKey::from_secret_key(SECP256K1, &key).x_only_public_key();
    if got != *verifier {
        return Err(KeyMismatch { got });
    }
    Ok(if parity == Parity::Odd {
        key.negate()
    } else {
        key
    })
}
