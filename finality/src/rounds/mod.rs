//! The finality state machine of rounds (`PROTOCOL.md` §9–11): who may vote in a round and with
//! how much power, which randomness commitments and votes are accepted, when a round is final,
//! how equivocation and selective slashing turn into a slashed verifier, and liveness jailing.
//!
//! Everything here is pure. The caller supplies the round number, the verifiers' powers (from
//! the staking module), the parameters and the signing contexts; the functions return values or
//! one typed error per operation. Every collection that reaches an output is ordered (`BTreeMap`
//! or a sorted `Vec`), so the same inputs give the same outputs on every node.

pub mod certificate;
pub mod commit;
pub mod evidence;
pub mod liveness;
pub mod power;
pub mod registry;
pub mod round_votes;
pub mod tally;
#[cfg(test)]
mod testkit;
pub mod vote;

pub use certificate::{Certificate, CertificateEntry, CertificateError};
pub use commit::{check_commitment, CommitRandomnessError, CommitmentRules, MAX_ROUND};
pub use evidence::{
    checkpoint_slashing, equivocation, selective_slashing, CheckpointEquivocation,
    CheckpointSlashingError, Equivocation, EquivocationError, KeyMismatch, Slashing,
    SlashingEvidence,
};
pub use liveness::{LivenessRules, LivenessRulesError, SigningWindow};
pub use power::{Candidate, PowerTable, PowerTableError, VerifierStatus};
pub use registry::{
    unjail_message, RegisterError, SlashError, UnjailError, VerifierRecord, Verifiers,
};
pub use round_votes::{RoundVotes, RoundVotesError};
pub use tally::{has_quorum, tally, Tally};
pub use vote::{
    check_vote, check_voter_standing, ClosedRound, Vote, VoteEnv, VoteError, VoteOutcome,
    VoterInRound,
};
