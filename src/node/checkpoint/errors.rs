//! Why a checkpoint message or query was refused, and its gRPC status (the codes of
//! `service.proto`: a refused message changed nothing).

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Amount, OutPoint, Txid};
use fiamma_finality::checkpoint::CheckpointVoteError;
use fiamma_finality::rounds::{CheckpointSlashingError, SlashError};
use tonic::{Code, Status};

use crate::btc::BackendError;
use crate::node::grpc::convert::FieldError;
use crate::node::store::StoreError;

/// Why a checkpoint rpc was refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The node runs without `[checkpoint]`.
    #[error("this node runs without checkpoints: its config has no [checkpoint] section")]
    Disabled,
    /// A field is malformed.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The round is not a checkpoint round (or not closed).
    #[error("round {round} is not a checkpoint round")]
    NotCheckpointRound {
        /// The round asked for.
        round: u64,
    },
    /// Votes on the round are no longer accepted.
    #[error("round {round} no longer takes votes: the latest round is {latest} and votes expire after {expiry} rounds")]
    Expired {
        /// The round.
        round: u64,
        /// The latest closed round.
        latest: u64,
        /// `vote_expiry`.
        expiry: u64,
    },
    /// The voter is slashed.
    #[error("verifier {voter} is slashed and signs nothing more")]
    Slashed {
        /// The voter.
        voter: XOnlyPublicKey,
    },
    /// The voter has no commitment covering the round.
    #[error("verifier {voter} has no randomness commitment covering round {round}")]
    NoCommitment {
        /// The voter.
        voter: XOnlyPublicKey,
        /// The round.
        round: u64,
    },
    /// The vote does not check against the round.
    #[error(transparent)]
    Vote(#[from] CheckpointVoteError),
    /// The two messages do not reveal the voter's key (the same message twice, or a second
    /// signature that does not verify with the vote's randomness).
    #[error("equivocation on a checkpoint round: {0}")]
    Evidence(#[from] CheckpointSlashingError),
    /// The voter could not be slashed.
    #[error(transparent)]
    Slash(#[from] SlashError),
    /// Other messages of the voter on the round kept arriving while this one was checked.
    #[error("votes of verifier {voter} on round {round} changed while this one was checked; nothing was applied, retry")]
    Contended {
        /// The voter.
        voter: XOnlyPublicKey,
        /// The round.
        round: u64,
    },
    /// A genesis is registered already.
    #[error("the checkpoint genesis is {genesis} already")]
    GenesisExists {
        /// The registered genesis.
        genesis: OutPoint,
    },
    /// Round h₀ is not closed yet, so its set is not known.
    #[error(
        "round {round} (the genesis round h₀) is not closed yet; the latest round is {latest}"
    )]
    GenesisRoundOpen {
        /// h₀.
        round: u64,
        /// The latest closed round.
        latest: u64,
    },
    /// No closed round from `genesis_round` on has a set.
    #[error("no checkpoint set from round {round} on yet: {reason}")]
    GenesisNoSet {
        /// h₀.
        round: u64,
        /// Why.
        reason: String,
    },
    /// The backend does not know the transaction.
    #[error("transaction {txid} is not known to the Bitcoin backend")]
    GenesisUnknown {
        /// The txid.
        txid: Txid,
    },
    /// The transaction has no such output.
    #[error("transaction {txid} has {outputs} outputs, no output {vout}")]
    GenesisNoOutput {
        /// The txid.
        txid: Txid,
        /// The index asked for.
        vout: u32,
        /// How many it has.
        outputs: usize,
    },
    /// The output's value is not V.
    #[error("output {outpoint} holds {value}, a checkpoint output holds {expected}")]
    GenesisValue {
        /// The output.
        outpoint: OutPoint,
        /// Its value.
        value: Amount,
        /// V.
        expected: Amount,
    },
    /// The output does not pay round h₀'s checkpoint output.
    #[error("output {outpoint} does not pay round {round}'s checkpoint output {expected}")]
    GenesisScript {
        /// The output.
        outpoint: OutPoint,
        /// h₀.
        round: u64,
        /// The scriptPubKey it must pay (hex).
        expected: String,
    },
    /// The output is not k deep yet.
    #[error("output {outpoint} has {confirmations} confirmations, a genesis needs {needed}")]
    GenesisNotConfirmed {
        /// The output.
        outpoint: OutPoint,
        /// Its confirmations (0 in the mempool).
        confirmations: u32,
        /// k.
        needed: u32,
    },
    /// The output is spent already.
    #[error("output {outpoint} is spent already")]
    GenesisSpent {
        /// The output.
        outpoint: OutPoint,
    },
    /// The Bitcoin backend could not answer.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CheckpointError> for Status {
    fn from(e: CheckpointError) -> Self {
        use CheckpointError as E;
        let code = match &e {
            E::Field(_)
            | E::Evidence(_)
            | E::GenesisNoOutput { .. }
            | E::GenesisValue { .. }
            | E::GenesisScript { .. } => Code::InvalidArgument,
            E::Vote(CheckpointVoteError::NotASigner(_)) => Code::FailedPrecondition,
            E::Vote(_) => Code::InvalidArgument,
            E::NotCheckpointRound { .. } | E::GenesisUnknown { .. } => Code::NotFound,
            E::Disabled
            | E::Expired { .. }
            | E::Slashed { .. }
            | E::NoCommitment { .. }
            | E::GenesisRoundOpen { .. }
            | E::GenesisNoSet { .. }
            | E::GenesisNotConfirmed { .. }
            | E::GenesisSpent { .. } => Code::FailedPrecondition,
            E::GenesisExists { .. } => Code::AlreadyExists,
            E::Slash(SlashError::AlreadySlashed { .. }) => Code::AlreadyExists,
            E::Slash(SlashError::UnknownVerifier { .. }) => Code::NotFound,
            E::Contended { .. } => Code::Aborted,
            E::Backend(_) => Code::Unavailable,
            E::Store(_) => Code::Internal,
        };
        match e {
            E::Store(s) => crate::node::finality::errors::store_status(s),
            other => Status::new(code, other.to_string()),
        }
    }
}
