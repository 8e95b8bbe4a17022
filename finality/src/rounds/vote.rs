//! A verifier's vote on a round and the rules that accept it (`PROTOCOL.md` §9–11).

use fiamma_staking::context::SigningContexts;
use secp256k1::{Keypair, XOnlyPublicKey};

use crate::commitment::{RandomnessCommitment, RandomnessProofError};
use crate::committed::RoundRandomness;
use crate::eots::{self, PublicRandomness, VerifyError};
use crate::merkle::{Digest, Proof};
use crate::vote::vote_message;

use super::evidence::{equivocation, EquivocationError, Slashing};
use super::power::VerifierStatus;

/// A signed vote: the EOTS signature by `voter` on
/// `ctx("fp_fin_vote") ‖ u64be(round) ‖ round_hash`, with the committed randomness it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// The verifier's BTC key.
    pub voter: XOnlyPublicKey,
    /// The round voted on.
    pub round: u64,
    /// The round hash the verifier computed and signed.
    pub round_hash: Digest,
    /// The public randomness `pr` of the round.
    pub public_randomness: PublicRandomness,
    /// The inclusion proof of `pr` under the verifier's commitment.
    pub proof: Proof,
    /// The EOTS signature `s`.
    pub signature: eots::Signature,
}

impl Vote {
    /// Signs `round_hash` for `round` with the round's committed randomness, which is consumed:
    /// signing a second message with it would give the key away.
    pub fn sign(
        keypair: &Keypair,
        randomness: RoundRandomness,
        contexts: &SigningContexts,
        round: u64,
        round_hash: Digest,
    ) -> Vote {
        let msg = vote_message(contexts, round, &round_hash);
        let signature = eots::sign(keypair, &randomness.secret, &msg);
        Vote {
            voter: keypair.x_only_public_key().0,
            round,
            round_hash,
            public_randomness: randomness.public,
            proof: randomness.proof,
            signature,
        }
    }

    /// The message the signature is on.
    pub fn message(&self, contexts: &SigningContexts) -> Vec<u8> {
        vote_message(contexts, self.round, &self.round_hash)
    }

    /// Checks the EOTS signature alone.
    ///
    /// # Errors
    /// [`VerifyError`] when it does not verify for the voter, randomness and message.
    pub fn verify_signature(&self, contexts: &SigningContexts) -> Result<(), VerifyError> {
        eots::verify(
            &self.voter,
            &self.public_randomness,
            &self.message(contexts),
            &self.signature,
        )
    }
}

/// A round the node has closed: its number and the round hash of its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedRound {
    /// The round number h.
    pub round: u64,
    /// The round hash the node computed.
    pub round_hash: Digest,
}

/// What a vote is checked in: the node's configuration and where it stands.
#[derive(Debug, Clone, Copy)]
pub struct VoteEnv<'a> {
    /// The signing contexts of this network.
    pub contexts: &'a SigningContexts,
    /// The latest round the node has closed.
    pub latest_round: u64,
    /// For how many rounds after round h votes on h are still accepted.
    pub vote_expiry: u64,
}

/// What the node knows about the voter for the vote's round.
#[derive(Debug, Clone, Copy)]
pub struct VoterInRound<'a> {
    /// Whether the voter is in the round's active set.
    pub in_active_set: bool,
    /// The voter's commitment covering the round, if any.
    pub commitment: Option<&'a RandomnessCommitment>,
    /// The vote the voter already cast in this round, if any.
    pub earlier_vote: Option<&'a Vote>,
}

/// What an accepted vote means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteOutcome {
    /// A first vote on the node's round hash: it counts toward the tally.
    Counted,
    /// A first, valid vote on a different round hash: recorded (a later vote on another
    /// message is equivocation) but not counted.
    Disagrees,
    /// A second vote on a different message: the verifier's key was extracted; record the
    /// evidence and mark the verifier slashed.
    Equivocation(Slashing),
}

/// Why a vote was refused. Nothing is recorded for a refused vote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    /// The round has not been closed by the node.
    #[error("round {round} is unknown; the latest closed round is {latest_round}")]
    UnknownRound {
        /// The vote's round.
        round: u64,
        /// The latest closed round.
        latest_round: u64,
    },
    /// Votes on the round are no longer accepted.
    #[error(
        "round {round} has expired: the latest round is {latest_round} and votes are accepted for {vote_expiry} rounds"
    )]
    Expired {
        /// The vote's round.
        round: u64,
        /// The latest closed round.
        latest_round: u64,
        /// The parameter.
        vote_expiry: u64,
    },
    /// The voter is not in the round's active set.
    #[error("verifier {voter} is not in the active set of round {round}")]
    NotInActiveSet {
        /// The voter.
        voter: XOnlyPublicKey,
        /// The vote's round.
        round: u64,
    },
    /// No commitment of the voter covers the round.
    #[error("verifier {voter} has no randomness commitment covering round {round}")]
    NoCommitment {
        /// The voter.
        voter: XOnlyPublicKey,
        /// The vote's round.
        round: u64,
    },
    /// The public randomness is not the committed one (wrong pr, position or Merkle proof).
    #[error("public randomness {pr} of verifier {voter} is not committed: {source}")]
    UncommittedRandomness {
        /// The voter.
        voter: XOnlyPublicKey,
        /// The randomness in the vote.
        pr: PublicRandomness,
        /// What failed.
        source: Box<RandomnessProofError>,
    },
    /// The EOTS signature does not verify.
    #[error("vote of verifier {voter} on round {round}: {source}")]
    BadSignature {
        /// The voter.
        voter: XOnlyPublicKey,
        /// The vote's round.
        round: u64,
        /// The verification failure.
        source: Box<VerifyError>,
    },
    /// The voter already cast this very vote.
    #[error("verifier {voter} already voted on round {round} for round hash {}", hex::encode(.round_hash))]
    Duplicate {
        /// The voter.
        voter: XOnlyPublicKey,
        /// The vote's round.
        round: u64,
        /// The round hash voted for.
        round_hash: Digest,
    },
    /// The voter is slashed: its secret key is public (`PROTOCOL.md` §11), so anyone could
    /// have signed the vote.
    #[error("verifier {voter} was slashed in round {since}; its votes are refused")]
    Slashed {
        /// The voter.
        voter: XOnlyPublicKey,
        /// The round in which it was slashed.
        since: u64,
    },
    /// The voter is jailed for missing rounds: as in Babylon, its votes are refused (even in
    /// rounds whose active set it still belongs to) until it is unjailed.
    #[error("verifier {voter} is jailed since round {since}; its votes are refused until it is unjailed")]
    Jailed {
        /// The voter.
        voter: XOnlyPublicKey,
        /// The round it was jailed at.
        since: u64,
    },
    /// Two different, valid votes that nevertheless do not reveal the key. Only possible with a
    /// hash collision; kept as an error rather than a panic.
    #[error("conflicting votes of verifier {voter} on round {round}: {source}")]
    Unextractable {
        /// The voter.
        voter: XOnlyPublicKey,
        /// The vote's round.
        round: u64,
        /// Why extraction failed.
        source: Box<EquivocationError>,
    },
}

/// Checks `vote` for `round` (the closed round with the vote's number, `None` when the node
/// has none), in the order: round known and not expired, not a resubmission of the recorded
/// vote, voter in the active set, a commitment covering the round, the Merkle proof of `pr`,
/// the EOTS signature, then the voter's earlier vote in the round (same message: duplicate;
/// different message: equivocation).
///
/// # Errors
/// [`VoteError`] naming the first rule broken.
pub fn check_vote(
    vote: &Vote,
    round: Option<&ClosedRound>,
    voter: &VoterInRound<'_>,
    env: &VoteEnv<'_>,
) -> Result<VoteOutcome, VoteError> {
    let h = vote.round;
    let Some(round) = round.filter(|r| r.round == h && h <= env.latest_round) else {
        return Err(VoteError::UnknownRound {
            round: h,
            latest_round: env.latest_round,
        });
    };
    if env.latest_round > h.saturating_add(env.vote_expiry) {
        return Err(VoteError::Expired {
            round: h,
            latest_round: env.latest_round,
            vote_expiry: env.vote_expiry,
        });
    }
    if voter.earlier_vote == Some(vote) {
        // A resubmission of the recorded vote: refused without paying for verification again.
        return Err(VoteError::Duplicate {
            voter: vote.voter,
            round: h,
            round_hash: vote.round_hash,
        });
    }
    if !voter.in_active_set {
        return Err(VoteError::NotInActiveSet {
            voter: vote.voter,
            round: h,
        });
    }
    let commitment = voter
        .commitment
        .filter(|c| c.covers(h))
        .ok_or(VoteError::NoCommitment {
            voter: vote.voter,
            round: h,
        })?;
    commitment
        .verify_randomness(h, &vote.public_randomness, &vote.proof)
        .map_err(|source| VoteError::UncommittedRandomness {
            voter: vote.voter,
            pr: vote.public_randomness,
            source: Box::new(source),
        })?;
    vote.verify_signature(env.contexts)
        .map_err(|source| VoteError::BadSignature {
            voter: vote.voter,
            round: h,
            source: Box::new(source),
        })?;
    match voter.earlier_vote {
        Some(earlier) if earlier.round_hash == vote.round_hash => Err(VoteError::Duplicate {
            voter: vote.voter,
            round: h,
            round_hash: vote.round_hash,
        }),
        Some(earlier) => equivocation(earlier, vote, env.contexts)
            .map(VoteOutcome::Equivocation)
            .map_err(|source| VoteError::Unextractable {
                voter: vote.voter,
                round: h,
                source: Box::new(source),
            }),
        None if vote.round_hash == round.round_hash => Ok(VoteOutcome::Counted),
        None => Ok(VoteOutcome::Disagrees),
    }
}

/// The rule checked after [`check_vote`] accepts a first vote: only an ACTIVE voter's vote
/// is taken. A slashed voter's vote is refused even in a round whose active set it still
/// belongs to, since its key was extracted and published and the vote proves nothing about
/// the verifier; a jailed voter's vote is refused until it is unjailed (as Babylon does). (A
/// second vote of a slashed or jailed voter is equivocation evidence all the same.)
///
/// # Errors
/// [`VoteError::Slashed`] when `status` is SLASHED, [`VoteError::Jailed`] when JAILED.
pub fn check_voter_standing(vote: &Vote, status: VerifierStatus) -> Result<(), VoteError> {
    match status {
        VerifierStatus::Slashed { since } => Err(VoteError::Slashed {
            voter: vote.voter,
            since,
        }),
        VerifierStatus::Jailed { since } => Err(VoteError::Jailed {
            voter: vote.voter,
            since,
        }),
        VerifierStatus::Active => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eots::Signature;
    use crate::merkle::ProofError;
    use crate::rounds::testkit::{contexts, TestVerifier};

    const HASH: Digest = [0xaa; 32];
    const ROUND: ClosedRound = ClosedRound {
        round: 12,
        round_hash: HASH,
    };

    fn env(contexts: &SigningContexts, latest_round: u64) -> VoteEnv<'_> {
        VoteEnv {
            contexts,
            latest_round,
            vote_expiry: 5,
        }
    }

    fn voter<'a>(v: &'a TestVerifier, earlier_vote: Option<&'a Vote>) -> VoterInRound<'a> {
        VoterInRound {
            in_active_set: true,
            commitment: Some(v.commitment()),
            earlier_vote,
        }
    }

    fn check(vote: &Vote, v: &VoterInRound<'_>) -> Result<VoteOutcome, VoteError> {
        let contexts = contexts();
        check_vote(vote, Some(&ROUND), v, &env(&contexts, 14))
    }

    #[test]
    fn a_first_vote_on_the_round_hash_counts() {
        let v = TestVerifier::new(1, 10, 8);
        assert_eq!(
            check(&v.vote(12, HASH), &voter(&v, None)),
            Ok(VoteOutcome::Counted)
        );
    }

    #[test]
    fn a_first_vote_on_another_round_hash_is_recorded_but_not_counted() {
        let v = TestVerifier::new(1, 10, 8);
        assert_eq!(
            check(&v.vote(12, [0xbb; 32]), &voter(&v, None)),
            Ok(VoteOutcome::Disagrees)
        );
    }

    #[test]
    fn a_vote_on_an_unclosed_or_missing_round_is_refused() {
        let v = TestVerifier::new(1, 10, 8);
        let contexts = contexts();
        let vote = v.vote(15, HASH);
        let unknown = Err(VoteError::UnknownRound {
            round: 15,
            latest_round: 14,
        });
        assert_eq!(check(&vote, &voter(&v, None)), unknown);
        let later = ClosedRound {
            round: 15,
            round_hash: HASH,
        };
        assert_eq!(
            check_vote(&vote, Some(&later), &voter(&v, None), &env(&contexts, 14)),
            unknown
        );
        assert_eq!(
            check_vote(
                &v.vote(12, HASH),
                None,
                &voter(&v, None),
                &env(&contexts, 14)
            ),
            Err(VoteError::UnknownRound {
                round: 12,
                latest_round: 14
            })
        );
    }

    #[test]
    fn a_vote_after_the_expiry_is_refused_and_at_the_expiry_accepted() {
        let v = TestVerifier::new(1, 10, 8);
        let contexts = contexts();
        let vote = v.vote(12, HASH);
        assert_eq!(
            check_vote(&vote, Some(&ROUND), &voter(&v, None), &env(&contexts, 17)),
            Ok(VoteOutcome::Counted)
        );
        assert_eq!(
            check_vote(&vote, Some(&ROUND), &voter(&v, None), &env(&contexts, 18)),
            Err(VoteError::Expired {
                round: 12,
                latest_round: 18,
                vote_expiry: 5
            })
        );
    }

    #[test]
    fn a_voter_outside_the_active_set_is_refused() {
        let v = TestVerifier::new(1, 10, 8);
        let mut outsider = voter(&v, None);
        outsider.in_active_set = false;
        assert_eq!(
            check(&v.vote(12, HASH), &outsider),
            Err(VoteError::NotInActiveSet {
                voter: v.key(),
                round: 12
            })
        );
    }

    #[test]
    fn a_vote_without_a_covering_commitment_is_refused() {
        let v = TestVerifier::new(1, 10, 8);
        let elsewhere = TestVerifier::new(1, 20, 8);
        let no_commitment = Err(VoteError::NoCommitment {
            voter: v.key(),
            round: 12,
        });
        let mut none = voter(&v, None);
        none.commitment = None;
        assert_eq!(check(&v.vote(12, HASH), &none), no_commitment);
        // A commitment that does not cover the round counts as none.
        none.commitment = Some(elsewhere.commitment());
        assert_eq!(check(&v.vote(12, HASH), &none), no_commitment);
    }

    #[test]
    fn a_wrong_public_randomness_is_refused() {
        let v = TestVerifier::new(1, 10, 8);
        let mut vote = v.vote(12, HASH);
        let other = v.vote(13, HASH);
        vote.public_randomness = other.public_randomness;
        assert!(matches!(
            check(&vote, &voter(&v, None)),
            Err(VoteError::UncommittedRandomness { pr, source, .. })
                if pr == other.public_randomness && matches!(*source, RandomnessProofError::Proof {
                    source: ProofError::LeafMismatch { .. },
                    ..
                })
        ));
    }

    #[test]
    fn a_wrong_merkle_proof_is_refused() {
        let v = TestVerifier::new(1, 10, 8);
        let mut bad_aunt = v.vote(12, HASH);
        bad_aunt.proof.aunts[0][0] ^= 1;
        assert!(matches!(
            check(&bad_aunt, &voter(&v, None)),
            Err(VoteError::UncommittedRandomness { source, .. })
                if matches!(*source, RandomnessProofError::Proof {
                    source: ProofError::RootMismatch { .. },
                    ..
                })
        ));
        let mut other_leaf = v.vote(12, HASH);
        other_leaf.proof = v.vote(13, HASH).proof;
        assert!(matches!(
            check(&other_leaf, &voter(&v, None)),
            Err(VoteError::UncommittedRandomness { source, .. })
                if matches!(*source, RandomnessProofError::WrongPosition { index: 3, .. })
        ));
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let v = TestVerifier::new(1, 10, 8);
        let mut vote = v.vote(12, HASH);
        let mut s = vote.signature.to_byte_array();
        s[31] ^= 1;
        vote.signature = Signature::from_byte_array(s);
        assert!(matches!(
            check(&vote, &voter(&v, None)),
            Err(VoteError::BadSignature { voter, round: 12, .. }) if voter == v.key()
        ));
        // A vote claiming another voter fails the same way.
        let other = TestVerifier::new(2, 10, 8);
        let mut stolen = v.vote(12, HASH);
        stolen.voter = other.key();
        assert!(matches!(
            check(&stolen, &voter(&v, None)),
            Err(VoteError::BadSignature { .. })
        ));
    }

    #[test]
    fn the_same_vote_twice_is_a_duplicate() {
        let v = TestVerifier::new(1, 10, 8);
        let first = v.vote(12, HASH);
        let duplicate = Err(VoteError::Duplicate {
            voter: v.key(),
            round: 12,
            round_hash: HASH,
        });
        // Byte for byte the recorded vote: refused before verification, even if forged.
        assert_eq!(
            check(&v.vote(12, HASH), &voter(&v, Some(&first))),
            duplicate
        );
        let mut forged = first.clone();
        forged.signature = Signature::from_byte_array([3; 32]);
        assert_eq!(check(&forged, &voter(&v, Some(&forged))), duplicate);
        // The same message in other bytes (here: a recorded copy without proof aunts) is
        // verified first, then refused as the same vote.
        let mut recorded = first.clone();
        recorded.proof.aunts.clear();
        assert_eq!(check(&first, &voter(&v, Some(&recorded))), duplicate);
        let mut bad = first.clone();
        bad.signature = Signature::from_byte_array([3; 32]);
        assert!(matches!(
            check(&bad, &voter(&v, Some(&recorded))),
            Err(VoteError::BadSignature { .. })
        ));
    }

    #[test]
    fn slashed_and_jailed_voters_are_refused() {
        let v = TestVerifier::new(1, 10, 8);
        let vote = v.vote(12, HASH);
        assert_eq!(
            check_voter_standing(&vote, VerifierStatus::Slashed { since: 11 }),
            Err(VoteError::Slashed {
                voter: v.key(),
                since: 11
            })
        );
        assert_eq!(check_voter_standing(&vote, VerifierStatus::Active), Ok(()));
        assert_eq!(
            check_voter_standing(&vote, VerifierStatus::Jailed { since: 11 }),
            Err(VoteError::Jailed {
                voter: v.key(),
                since: 11
            })
        );
    }

    #[test]
    fn a_second_message_is_equivocation_and_reveals_the_key() {
        let v = TestVerifier::new(1, 10, 8);
        let first = v.vote(12, HASH);
        let second = v.vote(12, [0xbb; 32]);
        let Ok(VoteOutcome::Equivocation(slashing)) = check(&second, &voter(&v, Some(&first)))
        else {
            panic!("expected equivocation");
        };
        assert_eq!(slashing.verifier, v.key());
        assert_eq!(
            slashing
                .secret_key
                .x_only_public_key(secp256k1::SECP256K1)
                .0,
            v.key()
        );
    }
}
