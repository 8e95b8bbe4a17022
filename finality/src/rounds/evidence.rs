//! Slashing evidence (`PROTOCOL.md` §11): two votes on different messages for one round
//! (equivocation), or a key the verifier revealed by slashing on its own (selective slashing).
//! Either way the result is the verifier's secret key, checked against its BTC key.

use bitcoin::Txid;
use fiamma_staking::context::SigningContexts;
use secp256k1::{Parity, PublicKey, SecretKey, XOnlyPublicKey, SECP256K1};

use crate::checkpoint::{checkpoint_equivocation, CheckpointEquivocationError};
use crate::checkpoint::{CheckpointMessage, CheckpointVote};
use crate::eots::{extract, ExtractError, PublicRandomness, Signature, VerifyError};
use crate::merkle::Proof;

use super::vote::Vote;

/// Two valid votes by one verifier on one round with different round hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// The vote seen first.
    pub first: Vote,
    /// The conflicting vote.
    pub second: Vote,
}

/// A checkpoint vote over M and a second message signed with the same committed randomness
/// (another candidate's M′, or the round's §10 vote message): `CHECKPOINTS.md` §13.5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointEquivocation {
    /// The checkpoint round.
    pub round: u64,
    /// The checkpoint vote.
    pub vote: CheckpointVote,
    /// The proof that its randomness is the committed one for the round.
    pub proof: Proof,
    /// M, the message the vote signs.
    pub message: CheckpointMessage,
    /// The second message.
    pub other_message: Vec<u8>,
    /// The EOTS `s` over the second message with the vote's randomness.
    pub other_signature: Signature,
}

/// What proved that a verifier's key is exposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlashingEvidence {
    /// It voted twice on one round (boxed: two votes with their Merkle proofs).
    Equivocation(Box<Equivocation>),
    /// It signed a checkpoint round's M and a second message with the round's committed
    /// randomness (boxed: a vote, its proof and two messages).
    Checkpoint(Box<CheckpointEquivocation>),
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

/// Why a checkpoint equivocation is not evidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointSlashingError {
    /// The two signatures do not reveal a key.
    #[error(transparent)]
    Equivocation(#[from] CheckpointEquivocationError),
    /// The revealed key is not the voter's.
    #[error(transparent)]
    Key(#[from] KeyMismatch),
}

/// Extracts the voter's key from a checkpoint equivocation ([`checkpoint_equivocation`]).
/// Whether the vote's randomness is the committed one is the caller's check (it needs the
/// voter's commitment).
///
/// # Errors
/// [`CheckpointSlashingError`] when the signatures do not both verify under the vote's key
/// and randomness, the messages are equal, or the key does not match.
pub fn checkpoint_slashing(
    evidence: CheckpointEquivocation,
) -> Result<Slashing, CheckpointSlashingError> {
    let key = checkpoint_equivocation(
        &evidence.vote,
        &evidence.message,
        &evidence.other_message,
        &evidence.other_signature,
    )?;
    Ok(Slashing {
        verifier: evidence.vote.voter,
        secret_key: matching_key(&evidence.vote.voter, key)?,
        evidence: SlashingEvidence::Checkpoint(Box::new(evidence)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eots::Signature;
    use crate::rounds::testkit::{contexts, TestVerifier};
    use bitcoin::hashes::Hash;
    use secp256k1::Keypair;

    fn two_votes(v: &TestVerifier) -> (Vote, Vote) {
        (v.vote(12, [1; 32]), v.vote(12, [2; 32]))
    }

    #[test]
    fn two_votes_on_one_round_reveal_the_verifiers_key() {
        let v = TestVerifier::new(5, 10, 4);
        let (a, b) = two_votes(&v);
        let slashing = equivocation(&a, &b, &contexts()).expect("equivocation");
        assert_eq!(slashing.verifier, v.key());
        let (pk, parity) = slashing.secret_key.x_only_public_key(SECP256K1);
        assert_eq!((pk, parity), (v.key(), Parity::Even));
        assert_eq!(
            slashing.evidence,
            SlashingEvidence::Equivocation(Box::new(Equivocation {
                first: a.clone(),
                second: b.clone()
            }))
        );
        // Order does not matter for the key.
        let reversed = equivocation(&b, &a, &contexts()).expect("equivocation");
        assert_eq!(reversed.secret_key, slashing.secret_key);
    }

    #[test]
    fn votes_that_are_not_equivocation_are_refused() {
        let v = TestVerifier::new(5, 10, 4);
        let w = TestVerifier::new(6, 10, 4);
        let (a, b) = two_votes(&v);
        let c = contexts();
        assert_eq!(
            equivocation(&a, &w.vote(12, [2; 32]), &c),
            Err(EquivocationError::DifferentVoters(Box::new([
                v.key(),
                w.key()
            ])))
        );
        assert_eq!(
            equivocation(&a, &v.vote(13, [2; 32]), &c),
            Err(EquivocationError::DifferentRounds {
                first: 12,
                second: 13
            })
        );
        assert_eq!(
            equivocation(&a, &a, &c),
            Err(EquivocationError::SameMessage {
                voter: v.key(),
                round: 12
            })
        );
        let mut forged = b.clone();
        forged.signature = Signature::from_byte_array([7; 32]);
        assert!(matches!(
            equivocation(&forged, &a, &c),
            Err(EquivocationError::FirstSignature(_))
        ));
        assert!(matches!(
            equivocation(&a, &forged, &c),
            Err(EquivocationError::SecondSignature(_))
        ));
    }

    #[test]
    fn votes_with_different_randomness_reveal_nothing() {
        let v = TestVerifier::new(5, 10, 4);
        // The same message signed with another round's randomness, relabelled: still a
        // valid signature, but on a second nonce.
        let a = v.vote(12, [1; 32]);
        let r = v.randomness.for_round(13).expect("committed");
        let msg = crate::vote::vote_message(&contexts(), 12, &[2; 32]);
        let b = Vote {
            round: 12,
            round_hash: [2; 32],
            public_randomness: r.public,
            signature: crate::eots::sign(&v.keypair, &r.secret, &msg),
            ..a.clone()
        };
        assert_eq!(
            equivocation(&a, &b, &contexts()),
            Err(EquivocationError::DifferentRandomness {
                first: a.public_randomness,
                second: b.public_randomness
            })
        );
    }

    #[test]
    fn selective_slashing_accepts_the_key_or_its_negation_only() {
        let v = TestVerifier::new(5, 10, 4);
        let txid = Txid::from_byte_array([9; 32]);
        let sk = v.keypair.secret_key();
        let even = selective_slashing(&v.key(), sk, txid).expect("the verifier's key");
        let negated = selective_slashing(&v.key(), sk.negate(), txid).expect("same x-only key");
        assert_eq!(even.secret_key, negated.secret_key);
        assert_eq!(
            even.evidence,
            SlashingEvidence::SelectiveSlashing {
                slashing_txid: txid
            }
        );
        let other = Keypair::from_seckey_slice(SECP256K1, &[6; 32]).expect("valid key");
        assert_eq!(
            selective_slashing(&v.key(), other.secret_key(), txid),
            Err(KeyMismatch {
                got: other.x_only_public_key().0
            })
        );
    }
}
