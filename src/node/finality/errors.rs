//! One error enum per finality operation, and the gRPC status of each (the codes of
//! `service.proto`: a rejected message changed nothing).

use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_finality::rounds::{
    CommitRandomnessError, EquivocationError, SlashError, UnjailError, VoteError,
};
use fiamma_finality::zk::{ProofSizeError, UnknownProofSystem, ZkError};
use tonic::{Code, Status};

use crate::node::checkpoint::errors::CheckpointError;
use crate::node::grpc::convert::FieldError;
use crate::node::store::StoreError;

fn status(code: Code, message: impl std::fmt::Display) -> Status {
    Status::new(code, message.to_string())
}

/// A store failure, with PostgreSQL's deadlock and serialization failures told apart: they
/// roll the transaction back and the client may simply retry.
pub(crate) fn store_status(e: StoreError) -> Status {
    if let StoreError::Database(sqlx::Error::Database(db)) = &e {
        if matches!(db.code().as_deref(), Some("40P01" | "40001")) {
            return status(
                Code::Aborted,
                format!("conflicting concurrent update, nothing was applied; retry: {db}"),
            );
        }
    }
    e.into()
}

/// Why SubmitProof refused a proof.
#[derive(Debug, thiserror::Error)]
pub enum SubmitProofError {
    /// A field is malformed.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The proof system code is not supported.
    #[error(transparent)]
    UnknownSystem(#[from] UnknownProofSystem),
    /// A part is over its size cap.
    #[error(transparent)]
    Oversized(#[from] ProofSizeError),
    /// The submission is larger than the params' `max_proof_bytes`.
    #[error("proof of {bytes} bytes (verifying key, proof and public inputs) is above the limit max_proof_bytes {max_proof_bytes}")]
    TooLarge {
        /// Its verifying key, proof and public inputs together.
        bytes: u64,
        /// The limit.
        max_proof_bytes: u32,
    },
    /// The next round holds as many proofs, or as many bytes of proofs, as it may.
    #[error(
        "round {round} is full: the limit {limit} {value} is reached; submit again after it closes"
    )]
    RoundFull {
        /// The round the proof would have joined.
        round: u64,
        /// The limit reached: `max_proofs_per_round` or `max_round_proof_bytes`.
        limit: &'static str,
        /// Its value.
        value: u64,
    },
    /// Verifying the proof was interrupted (the task panicked or the node is shutting down).
    #[error("proof verification was interrupted; nothing was applied, retry")]
    Interrupted,
    /// The parts do not decode in the proof system's encoding.
    #[error("malformed proof: {0}")]
    Malformed(#[from] ZkError),
    /// The same proof waits for the next round already.
    #[error("proof {} is already pending for round {round}", hex::encode(.proof_id))]
    AlreadyPending {
        /// Its proof_id.
        proof_id: [u8; 32],
        /// The round it will be in.
        round: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SubmitProofError> for Status {
    fn from(e: SubmitProofError) -> Self {
        match e {
            SubmitProofError::Field(_)
            | SubmitProofError::UnknownSystem(_)
            | SubmitProofError::Malformed(_) => status(Code::InvalidArgument, e),
            SubmitProofError::Oversized(_) | SubmitProofError::TooLarge { .. } => {
                status(Code::OutOfRange, e)
            }
            SubmitProofError::RoundFull { .. } => status(Code::ResourceExhausted, e),
            SubmitProofError::Interrupted => status(Code::Unavailable, e),
            SubmitProofError::AlreadyPending { .. } => status(Code::AlreadyExists, e),
            SubmitProofError::Store(s) => store_status(s),
        }
    }
}

/// Why CommitPubRandList refused a commitment.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// A field is malformed.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The finality rules refused it.
    #[error(transparent)]
    Rules(#[from] CommitRandomnessError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CommitError> for Status {
    fn from(e: CommitError) -> Self {
        let code = match &e {
            CommitError::Field(_) => Code::InvalidArgument,
            CommitError::Rules(r) => match r {
                CommitRandomnessError::UnknownVerifier { .. } => Code::NotFound,
                CommitRandomnessError::Overlap { .. } => Code::AlreadyExists,
                CommitRandomnessError::StartTooFarAhead { .. }
                | CommitRandomnessError::StartInPast { .. } => Code::FailedPrecondition,
                CommitRandomnessError::TooFewRounds { .. }
                | CommitRandomnessError::TooManyRounds { .. }
                | CommitRandomnessError::BeyondLastRound { .. }
                | CommitRandomnessError::BadSignature(_) => Code::InvalidArgument,
            },
            CommitError::Store(_) => Code::Internal,
        };
        match e {
            CommitError::Store(s) => store_status(s),
            other => status(code, other),
        }
    }
}

/// Why AddFinalitySig refused a vote.
#[derive(Debug, thiserror::Error)]
pub enum AddVoteError {
    /// A field is malformed.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The vote rules refused it.
    #[error(transparent)]
    Vote(#[from] VoteError),
    /// The vote was an equivocation, but its verifier could not be slashed.
    #[error(transparent)]
    Slash(#[from] SlashError),
    /// Other votes of the voter on the round kept arriving while this one was checked.
    #[error("votes of verifier {voter} on round {round} changed while this one was checked; nothing was applied, retry")]
    Contended {
        /// The voter.
        voter: XOnlyPublicKey,
        /// The vote's round.
        round: u64,
    },
    /// Checking the vote against the round's checkpoint vote failed.
    #[error(transparent)]
    Checkpoint(#[from] Box<CheckpointError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn vote_status(e: &VoteError) -> Code {
    match e {
        VoteError::UnknownRound { .. } => Code::NotFound,
        VoteError::Expired { .. }
        | VoteError::NotInActiveSet { .. }
        | VoteError::NoCommitment { .. }
        | VoteError::Slashed { .. }
        | VoteError::Jailed { .. } => Code::FailedPrecondition,
        VoteError::UncommittedRandomness { .. }
        | VoteError::BadSignature { .. }
        | VoteError::Unextractable { .. } => Code::InvalidArgument,
        VoteError::Duplicate { .. } => Code::AlreadyExists,
    }
}

fn slash_status(e: &SlashError) -> Code {
    match e {
        SlashError::UnknownVerifier { .. } => Code::NotFound,
        SlashError::AlreadySlashed { .. } => Code::AlreadyExists,
    }
}

impl From<AddVoteError> for Status {
    fn from(e: AddVoteError) -> Self {
        let code = match &e {
            AddVoteError::Field(_) => Code::InvalidArgument,
            AddVoteError::Vote(v) => vote_status(v),
            AddVoteError::Slash(s) => slash_status(s),
            AddVoteError::Contended { .. } => Code::Aborted,
            AddVoteError::Checkpoint(_) | AddVoteError::Store(_) => Code::Internal,
        };
        match e {
            AddVoteError::Store(s) => store_status(s),
            AddVoteError::Checkpoint(c) => (*c).into(),
            other => status(code, other),
        }
    }
}

/// Why EquivocationEvidence was refused.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// A field is malformed.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The two votes are not equivocation.
    #[error(transparent)]
    Equivocation(#[from] EquivocationError),
    /// The verifier cannot be slashed.
    #[error(transparent)]
    Slash(#[from] SlashError),
    /// The checkpoint evidence was refused.
    #[error(transparent)]
    Checkpoint(Box<CheckpointError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<EvidenceError> for Status {
    fn from(e: EvidenceError) -> Self {
        let code = match &e {
            EvidenceError::Field(_) | EvidenceError::Equivocation(_) => Code::InvalidArgument,
            EvidenceError::Slash(s) => slash_status(s),
            EvidenceError::Checkpoint(_) | EvidenceError::Store(_) => Code::Internal,
        };
        match e {
            EvidenceError::Store(s) => store_status(s),
            EvidenceError::Checkpoint(c) => (*c).into(),
            other => status(code, other),
        }
    }
}

/// Why UnjailVerifier was refused.
#[derive(Debug, thiserror::Error)]
pub enum UnjailVerifierError {
    /// A field is malformed.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The liveness rules (or the signature check) refused it.
    #[error(transparent)]
    Rules(#[from] UnjailError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<UnjailVerifierError> for Status {
    fn from(e: UnjailVerifierError) -> Self {
        let code = match &e {
            UnjailVerifierError::Field(_) => Code::InvalidArgument,
            UnjailVerifierError::Rules(UnjailError::BadSignature { .. }) => Code::PermissionDenied,
            UnjailVerifierError::Rules(UnjailError::UnknownVerifier { .. }) => Code::NotFound,
            UnjailVerifierError::Rules(_) => Code::FailedPrecondition,
            UnjailVerifierError::Store(_) => Code::Internal,
        };
        match e {
            UnjailVerifierError::Store(s) => store_status(s),
            other => status(code, other),
        }
    }
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum FinalityQueryError {
    /// A field is malformed.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// Nothing is recorded under the key.
    #[error("{what} is not known")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<FinalityQueryError> for Status {
    fn from(e: FinalityQueryError) -> Self {
        match e {
            FinalityQueryError::Field(f) => f.into(),
            FinalityQueryError::NotFound { .. } => status(Code::NotFound, e),
            FinalityQueryError::Store(s) => store_status(s),
        }
    }
}

/// Why closing a round (or tallying) failed. Nothing is written when it fails.
#[derive(Debug, thiserror::Error)]
pub enum CloseRoundError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value out of the stored range.
    #[error("round number overflow after round {0}")]
    RoundOverflow(u64),
    /// The proof verification task panicked or was cancelled.
    #[error("proof verification task failed: {0}")]
    Verification(String),
    /// Adopting the staking module's selective slashing failed.
    #[error(transparent)]
    Slashing(#[from] SlashError),
}
