//! Acceptance of a verifier's randomness commitment (`PROTOCOL.md` §9).

use fiamma_staking::context::SigningContexts;
use secp256k1::{schnorr, XOnlyPublicKey};

use crate::commitment::{CommitmentSignatureError, RandomnessCommitment};

/// The largest round number: rounds are stored as signed 64-bit integers, so no committed
/// round may lie beyond `i64::MAX` (and a range ending there stays computable everywhere).
pub const MAX_ROUND: u64 = i64::MAX as u64;

/// The parameters a commitment is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitmentRules {
    /// The least number of rounds a commitment must cover (`min_pub_rand`).
    pub min_pub_rand: u64,
    /// The most rounds a commitment may cover (`max_pub_rand` of the params' resource
    /// limits): what one signature can make every node store and index.
    pub max_pub_rand: u64,
    /// How far past the current round a commitment may start: `start ≤ current + this`.
    pub max_start_ahead: u64,
}

/// Why a randomness commitment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitRandomnessError {
    /// The committer is not a registered verifier.
    #[error("verifier {verifier} is not registered")]
    UnknownVerifier {
        /// The key.
        verifier: XOnlyPublicKey,
    },
    /// It covers fewer rounds than `min_pub_rand`.
    #[error("commitment covers {num} rounds, fewer than min_pub_rand {min_pub_rand}")]
    TooFewRounds {
        /// The commitment's number of rounds.
        num: u64,
        /// The parameter.
        min_pub_rand: u64,
    },
    /// It covers more rounds than `max_pub_rand`.
    #[error("num_pub_rand {num} is above the limit max_pub_rand {max_pub_rand}")]
    TooManyRounds {
        /// The commitment's number of rounds.
        num: u64,
        /// The limit.
        max_pub_rand: u64,
    },
    /// Its last round lies beyond [`MAX_ROUND`].
    #[error(
        "commitment from round {start} of {num} rounds ends beyond the largest round {MAX_ROUND}"
    )]
    BeyondLastRound {
        /// The commitment's first round.
        start: u64,
        /// The commitment's number of rounds.
        num: u64,
    },
    /// It starts before the latest closed round.
    #[error("commitment starts at round {start}, before the latest closed round {current_round}")]
    StartInPast {
        /// The commitment's first round.
        start: u64,
        /// The latest closed round.
        current_round: u64,
    },
    /// It starts too far after the current round.
    #[error(
        "commitment starts at round {start}, more than {max_start_ahead} rounds after the current round {current_round}"
    )]
    StartTooFarAhead {
        /// The commitment's first round.
        start: u64,
        /// The current round.
        current_round: u64,
        /// The parameter.
        max_start_ahead: u64,
    },
    /// The verifier's BIP-0340 signature does not verify.
    #[error(transparent)]
    BadSignature(#[from] CommitmentSignatureError),
    /// It shares a round with a commitment the verifier made before.
    #[error(
        "commitment to rounds {start}..={last} overlaps the earlier commitment to rounds {earlier_start}..={earlier_last}"
    )]
    Overlap {
        /// The new commitment's first round.
        start: u64,
        /// The new commitment's last round.
        last: u64,
        /// The earlier commitment's first round.
        earlier_start: u64,
        /// The earlier commitment's last round.
        earlier_last: u64,
    },
}

/// Checks a commitment by `verifier` before it is stored: between `min_pub_rand` and
/// `max_pub_rand` rounds, none beyond [`MAX_ROUND`], a start neither before `current_round`
/// (the latest closed round) nor too far ahead of it, a valid signature, and no round in
/// common with `earlier` (the verifier's accepted commitments, in any order). Stateless
/// checks come first, so a malformed commitment is refused without looking at the stored
/// ones. No arithmetic here can overflow.
///
/// The earliest start is the latest closed round itself rather than the round after it: the
/// node checks a commitment against a snapshot of the position, so a round may close while
/// the commitment is checked and the rule can only hold to within one round without
/// blocking the closer. A commitment covering a closed round gains its verifier nothing (the
/// round's active set is fixed), and this bound keeps every commitment out of older history.
///
/// # Errors
/// [`CommitRandomnessError`] naming the first rule broken.
pub fn check_commitment(
    verifier: &XOnlyPublicKey,
    commitment: &RandomnessCommitment,
    signature: &schnorr::Signature,
    earlier: &[RandomnessCommitment],
    current_round: u64,
    rules: &CommitmentRules,
    contexts: &SigningContexts,
) -> Result<(), CommitRandomnessError> {
    if commitment.num() < rules.min_pub_rand {
        return Err(CommitRandomnessError::TooFewRounds {
            num: commitment.num(),
            min_pub_rand: rules.min_pub_rand,
        });
    }
    if commitment.num() > rules.max_pub_rand {
        return Err(CommitRandomnessError::TooManyRounds {
            num: commitment.num(),
            max_pub_rand: rules.max_pub_rand,
        });
    }
    if commitment.last() > MAX_ROUND {
        return Err(CommitRandomnessError::BeyondLastRound {
            start: commitment.start(),
            num: commitment.num(),
        });
    }
    if commitment.start() < current_round {
        return Err(CommitRandomnessError::StartInPast {
            start: commitment.start(),
            current_round,
        });
    }
    if commitment.start() > current_round.saturating_add(rules.max_start_ahead) {
        return Err(CommitRandomnessError::StartTooFarAhead {
            start: commitment.start(),
            current_round,
            max_start_ahead: rules.max_start_ahead,
        });
    }
    commitment.verify(verifier, contexts, signature)?;
    if let Some(earlier) = earlier.iter().find(|e| e.overlaps(commitment)) {
        return Err(CommitRandomnessError::Overlap {
            start: commitment.start(),
            last: commitment.last(),
            earlier_start: earlier.start(),
            earlier_last: earlier.last(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secp256k1::{Keypair, SECP256K1};

    const RULES: CommitmentRules = CommitmentRules {
        min_pub_rand: 4,
        max_pub_rand: 1_000,
        max_start_ahead: 100,
    };

    fn signed(
        kp: &Keypair,
        start: u64,
        num: u64,
        contexts: &SigningContexts,
    ) -> (RandomnessCommitment, schnorr::Signature) {
        let c = RandomnessCommitment::new(start, num, [start as u8; 32]).expect("valid range");
        let sig = c.sign(kp, contexts, &[1; 32]);
        (c, sig)
    }

    fn check(
        kp: &Keypair,
        start: u64,
        num: u64,
        earlier: &[RandomnessCommitment],
    ) -> Result<(), CommitRandomnessError> {
        let contexts = SigningContexts::new("chain", "addr");
        let (c, sig) = signed(kp, start, num, &contexts);
        let pk = kp.x_only_public_key().0;
        check_commitment(&pk, &c, &sig, earlier, 50, &RULES, &contexts)
    }

    fn keypair() -> Keypair {
        Keypair::from_seckey_slice(SECP256K1, &[0x11; 32]).expect("valid key")
    }

    #[test]
    fn a_fresh_commitment_within_the_rules_is_accepted() {
        assert_eq!(check(&keypair(), 50, 4, &[]), Ok(()));
        assert_eq!(check(&keypair(), 150, 4, &[]), Ok(()));
    }

    #[test]
    fn too_few_rounds_are_refused() {
        assert_eq!(
            check(&keypair(), 50, 3, &[]),
            Err(CommitRandomnessError::TooFewRounds {
                num: 3,
                min_pub_rand: 4
            })
        );
    }

    #[test]
    fn a_start_too_far_ahead_is_refused() {
        assert_eq!(
            check(&keypair(), 151, 4, &[]),
            Err(CommitRandomnessError::StartTooFarAhead {
                start: 151,
                current_round: 50,
                max_start_ahead: 100
            })
        );
    }

    #[test]
    fn more_rounds_than_max_pub_rand_are_refused() {
        assert_eq!(check(&keypair(), 50, 1_000, &[]), Ok(()));
        assert_eq!(
            check(&keypair(), 50, 1_001, &[]),
            Err(CommitRandomnessError::TooManyRounds {
                num: 1_001,
                max_pub_rand: 1_000
            })
        );
        // Even a num that fits no BIGINT is refused by the limit, not by arithmetic.
        assert_eq!(
            check(&keypair(), 50, u64::MAX - 50, &[]),
            Err(CommitRandomnessError::TooManyRounds {
                num: u64::MAX - 50,
                max_pub_rand: 1_000
            })
        );
    }

    #[test]
    fn a_range_ending_beyond_the_largest_round_is_refused_without_overflow() {
        let contexts = SigningContexts::new("chain", "addr");
        let pk = keypair().x_only_public_key().0;
        let lax = CommitmentRules {
            max_pub_rand: u64::MAX,
            max_start_ahead: u64::MAX,
            ..RULES
        };
        let at = |start: u64, num: u64, current: u64| {
            let (c, sig) = signed(&keypair(), start, num, &contexts);
            check_commitment(&pk, &c, &sig, &[], current, &lax, &contexts)
        };
        // Ends exactly at the largest round: accepted.
        assert_eq!(at(MAX_ROUND - 3, 4, MAX_ROUND - 10), Ok(()));
        assert_eq!(
            at(MAX_ROUND - 2, 4, MAX_ROUND - 10),
            Err(CommitRandomnessError::BeyondLastRound {
                start: MAX_ROUND - 2,
                num: 4
            })
        );
        assert_eq!(
            at(1, MAX_ROUND + 1, 0),
            Err(CommitRandomnessError::BeyondLastRound {
                start: 1,
                num: MAX_ROUND + 1
            })
        );
        // A current round near u64::MAX does not overflow the ahead bound.
        assert_eq!(
            at(u64::MAX - 3, 4, u64::MAX - 3),
            Err(CommitRandomnessError::BeyondLastRound {
                start: u64::MAX - 3,
                num: 4
            })
        );
    }

    #[test]
    fn a_start_before_the_latest_closed_round_is_refused() {
        assert_eq!(
            check(&keypair(), 49, 4, &[]),
            Err(CommitRandomnessError::StartInPast {
                start: 49,
                current_round: 50
            })
        );
        assert_eq!(
            check(&keypair(), 0, 4, &[]),
            Err(CommitRandomnessError::StartInPast {
                start: 0,
                current_round: 50
            })
        );
        // The latest closed round itself is the earliest start (see check_commitment).
        assert_eq!(check(&keypair(), 50, 4, &[]), Ok(()));
    }

    #[test]
    fn a_signature_by_another_key_or_context_is_refused() {
        let contexts = SigningContexts::new("chain", "addr");
        let (c, sig) = signed(&keypair(), 50, 4, &contexts);
        let other = Keypair::from_seckey_slice(SECP256K1, &[0x12; 32]).expect("valid key");
        let other_pk = other.x_only_public_key().0;
        assert!(matches!(
            check_commitment(&other_pk, &c, &sig, &[], 50, &RULES, &contexts),
            Err(CommitRandomnessError::BadSignature(e)) if e.pk == other_pk
        ));
        let pk = keypair().x_only_public_key().0;
        let elsewhere = SigningContexts::new("other-chain", "addr");
        assert!(matches!(
            check_commitment(&pk, &c, &sig, &[], 50, &RULES, &elsewhere),
            Err(CommitRandomnessError::BadSignature(_))
        ));
    }

    #[test]
    fn overlap_with_an_earlier_commitment_is_refused_at_both_ends() {
        let earlier = [RandomnessCommitment::new(60, 10, [0; 32]).expect("valid range")];
        for (start, num) in [(55, 6), (69, 5), (62, 4), (50, 30)] {
            let last = start + num - 1;
            assert_eq!(
                check(&keypair(), start, num, &earlier),
                Err(CommitRandomnessError::Overlap {
                    start,
                    last,
                    earlier_start: 60,
                    earlier_last: 69
                })
            );
        }
        assert_eq!(check(&keypair(), 56, 4, &earlier), Ok(()));
        assert_eq!(check(&keypair(), 70, 4, &earlier), Ok(()));
    }
}
