//! The votes of one closed round, kept against the round's power table.

use std::collections::{BTreeMap, BTreeSet};

use secp256k1::XOnlyPublicKey;

use crate::commitment::RandomnessCommitment;

use super::power::PowerTable;
use super::tally::{tally, Tally};
use super::vote::{check_vote, ClosedRound, Vote, VoteEnv, VoteError, VoteOutcome, VoterInRound};

/// A power table built for another round than the one it is paired with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoundVotesError {
    /// The table's round differs.
    #[error("power table of round {table_round} does not belong to round {round}")]
    TableForOtherRound {
        /// The closed round.
        round: u64,
        /// The table's round.
        table_round: u64,
    },
}

/// A closed round, its power table and the first valid vote of each voter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundVotes {
    round: ClosedRound,
    table: PowerTable,
    /// Keyed by the voter's key bytes (cheap comparisons, the order of `XOnlyPublicKey`).
    votes: BTreeMap<[u8; 32], Vote>,
}

impl RoundVotes {
    /// A round without votes.
    ///
    /// # Errors
    /// [`RoundVotesError::TableForOtherRound`] when `table` is not the table of `round`.
    pub fn new(round: ClosedRound, table: PowerTable) -> Result<Self, RoundVotesError> {
        if table.round() != round.round {
            return Err(RoundVotesError::TableForOtherRound {
                round: round.round,
                table_round: table.round(),
            });
        }
        Ok(RoundVotes {
            round,
            table,
            votes: BTreeMap::new(),
        })
    }

    /// The closed round.
    pub fn round(&self) -> &ClosedRound {
        &self.round
    }

    /// The round's power table.
    pub fn table(&self) -> &PowerTable {
        &self.table
    }

    /// Checks `vote` ([`check_vote`]) against this round, the voter's `commitment` covering
    /// the round and the voter's earlier vote here, and records it when it is a first vote.
    /// On equivocation the first vote stays recorded and the evidence is returned; this
    /// round's power table is fixed, so an equivocator's first vote still counts here and its
    /// power is gone from the next table on (`PROTOCOL.md` §11).
    ///
    /// # Errors
    /// [`VoteError`]; nothing is recorded on error.
    pub fn add_vote(
        &mut self,
        vote: Vote,
        commitment: Option<&RandomnessCommitment>,
        env: &VoteEnv<'_>,
    ) -> Result<VoteOutcome, VoteError> {
        let voter_bytes = vote.voter.serialize();
        let voter = VoterInRound {
            in_active_set: self.table.contains(&vote.voter),
            commitment,
            earlier_vote: self.votes.get(&voter_bytes),
        };
        let outcome = check_vote(&vote, Some(&self.round), &voter, env)?;
        if matches!(outcome, VoteOutcome::Counted | VoteOutcome::Disagrees) {
            self.votes.insert(voter_bytes, vote);
        }
        Ok(outcome)
    }

    /// The recorded votes, ordered by voter.
    pub fn votes(&self) -> impl Iterator<Item = &Vote> {
        self.votes.values()
    }

    /// The tally of the recorded votes on the node's round hash.
    pub fn tally(&self) -> Tally {
        tally(&self.table, &self.round.round_hash, self.votes.values())
    }

    /// The voters whose vote counts (on the node's round hash), for liveness.
    pub fn signers(&self) -> BTreeSet<XOnlyPublicKey> {
        self.votes
            .values()
            .filter(|v| v.round_hash == self.round.round_hash)
            .map(|v| v.voter)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rounds::testkit::{self, contexts, TestVerifier};
    use fiamma_staking::context::SigningContexts;

    const HASH: [u8; 32] = [0x42; 32];

    fn round_of(vs: &[TestVerifier], round: u64) -> RoundVotes {
        let powers: Vec<(&TestVerifier, u64)> = vs.iter().map(|v| (v, 10)).collect();
        let table = testkit::table(round, &powers);
        RoundVotes::new(
            ClosedRound {
                round,
                round_hash: HASH,
            },
            table,
        )
        .expect("same round")
    }

    fn env(contexts: &SigningContexts) -> VoteEnv<'_> {
        VoteEnv {
            contexts,
            latest_round: 5,
            vote_expiry: 10,
        }
    }

    #[test]
    fn a_table_of_another_round_is_refused() {
        let vs = [TestVerifier::new(1, 0, 8)];
        let table = round_of(&vs, 4).table().clone();
        let round = ClosedRound {
            round: 5,
            round_hash: HASH,
        };
        assert_eq!(
            RoundVotes::new(round, table),
            Err(RoundVotesError::TableForOtherRound {
                round: 5,
                table_round: 4
            })
        );
    }

    #[test]
    fn records_first_votes_keeps_the_first_on_equivocation_and_nothing_on_error() {
        let vs = [TestVerifier::new(1, 0, 8), TestVerifier::new(2, 0, 8)];
        let mut round = round_of(&vs, 5);
        let c = contexts();
        let add = |round: &mut RoundVotes, v: &TestVerifier, hash| {
            round.add_vote(v.vote(5, hash), Some(v.commitment()), &env(&c))
        };
        assert_eq!(add(&mut round, &vs[0], HASH), Ok(VoteOutcome::Counted));
        assert_eq!(add(&mut round, &vs[1], [1; 32]), Ok(VoteOutcome::Disagrees));
        assert_eq!(round.signers(), [vs[0].key()].into());
        let before = round.clone();
        assert!(matches!(
            add(&mut round, &vs[0], HASH),
            Err(VoteError::Duplicate { .. })
        ));
        assert!(matches!(
            round.add_vote(vs[1].vote(5, HASH), None, &env(&c)),
            Err(VoteError::NoCommitment { .. })
        ));
        assert_eq!(round, before);
        // The verifier that disagreed now signs the node's hash: equivocation.
        let Ok(VoteOutcome::Equivocation(slashing)) = add(&mut round, &vs[1], HASH) else {
            panic!("expected equivocation");
        };
        assert_eq!(slashing.verifier, vs[1].key());
        assert_eq!(round, before);
        let tally = round.tally();
        assert_eq!((tally.voted_power, tally.total_power), (10, 20));
    }
}
