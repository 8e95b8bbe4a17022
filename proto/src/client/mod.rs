//! The typed node client: what a role asks of the node, in domain types where the role acts
//! on them and in wire form where it must compare rather than trust (params).
//!
//! Roles take a `dyn StakingNode`, `dyn FinalityNode` or `dyn SlasherNode`, so the gRPC
//! implementation ([`GrpcNode`], every trait over one channel) can be wrapped (to inject faults
//! in the devnet, or to count calls in a test) without the role knowing.
//!
//! - [`staking`]: what the covenant member asks of the staking module;
//! - [`finality`]: what a verifier asks of the finality module;
//! - [`checkpoint`]: what verifiers and sequencers ask about Bitcoin-checked checkpoints;
//! - [`slasher`]: what a slasher asks of both (slashed verifiers, their delegations).
//! - [`staker`]: what a staker asks of the staking module.
//! - [`sequencer`]: what a rollup's sequencer asks of the finality module (submit, certificates).

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
pub use tonic::Code;

use crate::codec::FieldError;
use crate::finality::v1::finality_client::FinalityClient;
use crate::staking::v1::staking_client::StakingClient;

pub mod checkpoint;
pub mod finality;
pub mod sequencer;
pub mod slasher;
pub mod staker;
pub mod staking;

pub use checkpoint::*;
pub use finality::*;
pub use sequencer::*;
pub use slasher::*;
pub use staker::*;
pub use staking::*;

/// Longest node message kept in an error: a hostile or broken node cannot flood the log.
const MAX_NODE_MESSAGE: usize = 512;
/// Largest response a client decodes: one page of delegations, each of at most four
/// transactions of [`codec::MAX_TX_BYTES`].
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Why a call to the node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The endpoint is not a valid URL.
    #[error("node endpoint {endpoint:?} is not a valid URL: {reason}")]
    Endpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The node answered the call with a status other than OK, or could not be reached
    /// (UNAVAILABLE).
    #[error("node {call}: {code:?}: {message}")]
    Status {
        /// The RPC.
        call: &'static str,
        /// The gRPC status code.
        code: tonic::Code,
        /// The node's message, cut to a bounded length.
        message: String,
    },
    /// The node's answer does not decode.
    #[error("node {call} answered a message that does not decode: {source}")]
    Decode {
        /// The RPC.
        call: &'static str,
        /// The field that does not decode.
        source: FieldError,
    },
}

impl NodeError {
    pub(crate) fn status(call: &'static str, status: &tonic::Status) -> Self {
        let mut message = status.message().to_owned();
        if message.len() > MAX_NODE_MESSAGE {
            let mut end = MAX_NODE_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        NodeError::Status {
            call,
            code: status.code(),
            message,
        }
    }

    /// Whether the same call may succeed later unchanged: the node was unreachable, busy,
    /// timed out or failed internally. A refusal of the message itself is not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            NodeError::Status { code, .. } => matches!(
                code,
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Aborted
                    | tonic::Code::Internal
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
            ),
            NodeError::Endpoint { .. } | NodeError::Decode { .. } => false,
        }
    }
}

/// [`StakingNode`] and [`FinalityNode`] over gRPC, on one channel.
#[derive(Clone)]
pub struct GrpcNode {
    client: StakingClient<Channel>,
    finality: FinalityClient<Channel>,
}

impl GrpcNode {
    /// A client of the node at `endpoint` (e.g. `http://127.0.0.1:9090`). It connects lazily:
    /// a node that is down makes calls fail with UNAVAILABLE until it is back.
    ///
    /// # Errors
    /// [`NodeError::Endpoint`] when `endpoint` is not a valid URL.
    pub fn connect_lazy(endpoint: &str, timeout: Duration) -> Result<Self, NodeError> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| NodeError::Endpoint {
                endpoint: endpoint.to_owned(),
                reason: e.to_string(),
            })?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self::from_channel(channel))
    }

    /// A client over an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        GrpcNode {
            client: StakingClient::new(channel.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            finality: FinalityClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_not_transient_and_outages_are() {
        let err = |code| NodeError::status("X", &tonic::Status::new(code, "m"));
        assert!(err(tonic::Code::Unavailable).is_transient());
        assert!(err(tonic::Code::DeadlineExceeded).is_transient());
        assert!(!err(tonic::Code::InvalidArgument).is_transient());
        assert!(!err(tonic::Code::FailedPrecondition).is_transient());
        assert!(!err(tonic::Code::AlreadyExists).is_transient());
    }

    #[test]
    fn a_long_node_message_is_cut() {
        let long = "é".repeat(2 * MAX_NODE_MESSAGE);
        let e = NodeError::status("X", &tonic::Status::internal(long));
        let NodeError::Status { message, .. } = e else {
            panic!("a status error");
        };
        assert!(message.len() <= MAX_NODE_MESSAGE + '…'.len_utf8());
    }

    #[test]
    fn a_bad_endpoint_is_named() {
        let Err(e) = GrpcNode::connect_lazy("not a url", Duration::from_secs(1)) else {
            panic!("refused");
        };
        assert!(e.to_string().contains("not a url"), "{e}");
    }
}
