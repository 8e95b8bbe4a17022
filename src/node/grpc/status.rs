//! Typed errors to gRPC statuses: a small set of codes (ARCHITECTURE rule 4), each with the
//! error's own message, which names the offending value.
//!
//! - INVALID_ARGUMENT: the request is malformed or breaks a protocol rule; fix the request.
//! - NOT_FOUND: it refers to something the node does not hold.
//! - ALREADY_EXISTS: it repeats something already recorded; nothing to do.
//! - FAILED_PRECONDITION: valid, but not in the current state; wait or change the plan.
//! - PERMISSION_DENIED: the signer is not allowed to sign this.
//! - UNAVAILABLE: the node cannot serve it right now; retry.
//! - INTERNAL: the node's own fault; logged, details withheld.

use fiamma_staking::light_client::{BestChainError, InclusionError};
use fiamma_staking::state::{AddCovenantSigsError, RecordInclusionError};
use tonic::{Code, Status};

use crate::node::module::{
    CovenantSigsError, CreateDelegationError, CreateVerifierError, InclusionProofError, QueryError,
    SlashingEvidenceError, StoredDelegationError,
};
use crate::node::store::StoreError;

fn status(code: Code, message: impl std::fmt::Display) -> Status {
    Status::new(code, message.to_string())
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Database(sqlx::Error::PoolTimedOut) => {
                tracing::warn!(error = %e, "handler pool exhausted");
                status(
                    Code::Unavailable,
                    "every database connection of the request handlers is busy (server \
                     db_max_connections reached for db_acquire_timeout_ms); retry shortly",
                )
            }
            StoreError::Database(sqlx::Error::PoolClosed | sqlx::Error::Io(_)) => {
                tracing::warn!(error = %e, "database unavailable");
                status(
                    Code::Unavailable,
                    "the node's database is unavailable; retry shortly",
                )
            }
            _ => {
                tracing::error!(error = %e, "store failure");
                status(
                    Code::Internal,
                    "internal error; the node operator has the details in its logs",
                )
            }
        }
    }
}

fn stored(e: StoredDelegationError) -> Status {
    tracing::error!(error = %e, "stored delegation unusable");
    status(Code::Internal, e)
}

impl From<CreateVerifierError> for Status {
    fn from(e: CreateVerifierError) -> Self {
        match e {
            CreateVerifierError::Pop(_) => status(Code::InvalidArgument, e),
            CreateVerifierError::Duplicate(_) => status(Code::AlreadyExists, e),
            CreateVerifierError::Store(s) => s.into(),
        }
    }
}

impl From<CreateDelegationError> for Status {
    fn from(e: CreateDelegationError) -> Self {
        match e {
            CreateDelegationError::Params(_) => status(Code::FailedPrecondition, e),
            CreateDelegationError::Invalid(_) | CreateDelegationError::SeveralVerifiers(_) => {
                status(Code::InvalidArgument, e)
            }
            CreateDelegationError::UnknownVerifier(_) => status(Code::NotFound, e),
            CreateDelegationError::VerifierSlashed(_) => status(Code::FailedPrecondition, e),
            CreateDelegationError::Duplicate(_) => status(Code::AlreadyExists, e),
            CreateDelegationError::Store(s) => s.into(),
        }
    }
}

impl From<CovenantSigsError> for Status {
    fn from(e: CovenantSigsError) -> Self {
        match e {
            CovenantSigsError::UnknownDelegation(_) => status(Code::NotFound, e),
            CovenantSigsError::State(AddCovenantSigsError::NotInCommittee { .. }) => {
                status(Code::PermissionDenied, e)
            }
            CovenantSigsError::State(AddCovenantSigsError::AlreadySigned { .. }) => {
                status(Code::AlreadyExists, e)
            }
            CovenantSigsError::State(AddCovenantSigsError::NotAcceptingSignatures { .. }) => {
                status(Code::FailedPrecondition, e)
            }
            CovenantSigsError::Signatures(_) => status(Code::InvalidArgument, e),
            CovenantSigsError::Stored(s) => stored(s),
            CovenantSigsError::Store(s) => s.into(),
        }
    }
}

impl From<InclusionProofError> for Status {
    fn from(e: InclusionProofError) -> Self {
        match e {
            InclusionProofError::UnknownDelegation(_) => status(Code::NotFound, e),
            InclusionProofError::NoHeaderChain => status(Code::Unavailable, e),
            InclusionProofError::Inclusion(InclusionError::NotOnBestChain(
                BestChainError::UnknownBlock { .. },
            )) => status(
                Code::FailedPrecondition,
                format!("{e}; retry once the node has synced that block"),
            ),
            InclusionProofError::Inclusion(_) | InclusionProofError::Coinbase { .. } => {
                status(Code::InvalidArgument, e)
            }
            InclusionProofError::State(RecordInclusionError::AlreadyIncluded { .. }) => {
                status(Code::AlreadyExists, e)
            }
            InclusionProofError::State(RecordInclusionError::NotDeepEnough { .. }) => status(
                Code::FailedPrecondition,
                format!("{e}; resend the proof once enough blocks are built on it"),
            ),
            InclusionProofError::State(_)
            | InclusionProofError::ParamsVersionChanged { .. }
            | InclusionProofError::Params(_) => status(Code::FailedPrecondition, e),
            InclusionProofError::Stored(s) => stored(s),
            InclusionProofError::Store(s) => s.into(),
        }
    }
}

impl From<SlashingEvidenceError> for Status {
    fn from(e: SlashingEvidenceError) -> Self {
        match e {
            SlashingEvidenceError::UnknownDelegation(_) => status(Code::NotFound, e),
            SlashingEvidenceError::KeyMismatch { .. } => status(Code::InvalidArgument, e),
            SlashingEvidenceError::AlreadySlashed { .. } => status(Code::AlreadyExists, e),
            SlashingEvidenceError::MissingVerifier(_) => {
                tracing::error!(error = %e, "damaged database");
                status(Code::Internal, e)
            }
            SlashingEvidenceError::Store(s) => s.into(),
        }
    }
}

impl From<QueryError> for Status {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::NotFound(_) | QueryError::Params(_) => status(Code::NotFound, e),
            QueryError::Store(s) => s.into(),
        }
    }
}
