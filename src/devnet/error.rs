//! Why the devnet story stopped: one variant per kind of failure, each naming the step.

use std::time::Duration;

use crate::node::run::RunError;

/// The first step whose expected outcome was not observed.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// The PostgreSQL server refused an administrative statement.
    #[error("database: {action}: {source}")]
    Database {
        /// What was being done.
        action: String,
        /// The server's error.
        source: sqlx::Error,
    },
    /// A local resource (a port, a thread) was not available.
    #[error("{action}: {reason}")]
    Local {
        /// What was being done.
        action: String,
        /// What went wrong.
        reason: String,
    },
    /// The node could not start or stop cleanly.
    #[error("node: {0}")]
    Node(#[from] RunError),
    /// The embedded chain, its JSON-RPC server or a Bitcoin call failed.
    #[error("bitcoin: {action}: {reason}")]
    Bitcoin {
        /// What was being done.
        action: String,
        /// What went wrong.
        reason: String,
    },
    /// A gRPC call to the node failed.
    #[error("{party}: {call} refused: {code:?}: {message}")]
    Rpc {
        /// Who called.
        party: String,
        /// The method.
        call: &'static str,
        /// The gRPC status code.
        code: tonic::Code,
        /// The node's message.
        message: String,
    },
    /// A wallet could not be created, synced, or build or sign a transaction.
    #[error("{who}: wallet: {reason}")]
    Wallet {
        /// Whose wallet.
        who: String,
        /// What went wrong.
        reason: String,
    },
    /// Something the node served could not be decoded or does not pass a party's checks.
    #[error("{party}: {reason}")]
    Refused {
        /// The party that checked.
        party: String,
        /// What is wrong.
        reason: String,
    },
    /// A step observed another outcome than the story expects.
    #[error("{step}: expected {expected}, observed {observed}")]
    Unexpected {
        /// The step.
        step: &'static str,
        /// The expected outcome.
        expected: String,
        /// What was seen instead.
        observed: String,
    },
    /// The user interrupted the story (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
    /// An expected outcome did not happen in time.
    #[error("{what}: not observed within {after:?}")]
    Timeout {
        /// The awaited outcome.
        what: String,
        /// How long the story waited.
        after: Duration,
    },
}

impl DevnetError {
    /// A refused gRPC call by `party`.
    pub fn rpc(party: impl Into<String>, call: &'static str, status: &tonic::Status) -> Self {
        DevnetError::Rpc {
            party: party.into(),
            call,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }

    /// A Bitcoin failure while doing `action`.
    pub fn bitcoin(action: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        DevnetError::Bitcoin {
            action: action.into(),
            reason: reason.to_string(),
        }
    }

    /// A local failure while doing `action`.
    pub fn local(action: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        DevnetError::Local {
            action: action.into(),
            reason: reason.to_string(),
        }
    }

    /// A party's refusal of what it was given.
    pub fn refused(party: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        DevnetError::Refused {
            party: party.into(),
            reason: reason.to_string(),
        }
    }

    /// An outcome other than the expected one.
    pub fn unexpected(
        step: &'static str,
        expected: impl Into<String>,
        observed: impl Into<String>,
    ) -> Self {
        DevnetError::Unexpected {
            step,
            expected: expected.into(),
            observed: observed.into(),
        }
    }
}
