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
    votes: BTreeMap<XOnlyPublicKey, Vote>,
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
    /// On equivocation the first vote stays recorded and the evidence is returned.
    ///
    /// # Errors
    /// [`VoteError`]; nothing is recorded on error.
    pub fn add_vote(
        &mut self,
        vote: Vote,
        commitment: Option<&RandomnessCommitment>,
        env: &VoteEnv<'_>,
    ) -> Result<VoteOutcome, VoteError> {
        let voter = VoterInRound {
            in_active_set: self.table.contains(&vote.voter),
            commitment,
            earlier_vote: self.votes.get(&vote.voter),
        };
        let outcome = check_vote(&vote, Some(&self.round), &voter, env)?;
        if matches!(outcome, VoteOutcome::Counted | VoteOutcome::Disagrees) {
            self.votes.insert(vote.voter, vote);
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
