//! The typed node client: what a role asks of the node, in domain types where the role acts
//! on them and in wire form where it must compare rather than trust (params).
//!
//! Roles take a `dyn StakingNode`, so the gRPC implementation ([`GrpcNode`]) can be wrapped (to
//! inject faults in the devnet, or to count calls in a test) without the role knowing.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_covenant::signing::CovenantSignatures;
use fiamma_staking::registration::Registration;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Channel, Endpoint};
pub use tonic::Code;

use crate::codec::{self, FieldError};
use crate::staking::v1 as pb;
use crate::staking::v1::staking_client::StakingClient;

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
    fn status(call: &'static str, status: &tonic::Status) -> Self {
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

/// A delegation waiting for a covenant member's signatures, as the node serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelegation {
    /// The staking txid the node files it under (display hex, as served).
    pub staking_txid: String,
    /// The params version the node validated it against.
    pub params_version: u32,
    /// The registration, or the first field that does not decode: one malformed delegation
    /// is the reader's to refuse, it does not fail the page.
    pub registration: Result<Registration, FieldError>,
}

/// One page of [`PendingDelegation`]s and the token of the next page (`None` at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPage {
    /// The delegations of this page, in the node's order (by staking txid).
    pub delegations: Vec<PendingDelegation>,
    /// Where the next page starts.
    pub next_page_token: Option<String>,
}

/// The node's answer to one member's signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CovenantSigsAck {
    /// The delegation's status after them.
    pub status: pb::DelegationStatus,
    /// Distinct members that have signed it.
    pub signatures: u32,
}

/// A stream of the node's staking events, in sequence order.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, NodeError>> + Send>>;

/// What a role asks of the node's staking module.
#[async_trait]
pub trait StakingNode: Send + Sync {
    /// Params version `version`, in wire form: a role compares it with its own copy and
    /// never takes it as its own.
    async fn params(&self, version: u32) -> Result<pb::Params, NodeError>;

    /// One page (at most `page_size` delegations) of those waiting for `covenant`'s signatures.
    async fn pending_delegations(
        &self,
        covenant: XOnlyPublicKey,
        page_token: Option<String>,
        page_size: u32,
    ) -> Result<PendingPage, NodeError>;

    /// Submits one member's signatures on the delegation filed under `staking_txid`.
    async fn add_covenant_sigs(
        &self,
        staking_txid: &str,
        sigs: &CovenantSignatures,
    ) -> Result<CovenantSigsAck, NodeError>;

    /// The events from `from_sequence` on, then new ones as the node applies them.
    async fn events(&self, from_sequence: u64) -> Result<EventStream, NodeError>;
}

/// [`StakingNode`] over gRPC.
#[derive(Clone)]
pub struct GrpcNode {
    client: StakingClient<Channel>,
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
            client: StakingClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES),
        }
    }
}

#[async_trait]
impl StakingNode for GrpcNode {
    async fn params(&self, version: u32) -> Result<pb::Params, NodeError> {
        const CALL: &str = "Params";
        let r = self
            .client
            .clone()
            .params(pb::ParamsRequest {
                selector: Some(pb::params_request::Selector::Version(version)),
            })
            .await
            .map_err(|s| NodeError::status(CALL, &s))?
            .into_inner();
        r.params.ok_or(NodeError::Decode {
            call: CALL,
            source: codec::bad("params", "missing"),
        })
    }

    async fn pending_delegations(
        &self,
        covenant: XOnlyPublicKey,
        page_token: Option<String>,
        page_size: u32,
    ) -> Result<PendingPage, NodeError> {
        let r = self
            .client
            .clone()
            .pending_delegations(pb::PendingDelegationsRequest {
                covenant_pk: covenant.serialize().to_vec(),
                page: Some(pb::PageRequest {
                    page_token: page_token.unwrap_or_default(),
                    page_size,
                }),
            })
            .await
            .map_err(|s| NodeError::status("PendingDelegations", &s))?
            .into_inner();
        let next_page_token = r
            .page
            .map(|p| p.next_page_token)
            .filter(|token| !token.is_empty());
        Ok(PendingPage {
            delegations: r
                .delegations
                .iter()
                .map(|d| PendingDelegation {
                    staking_txid: d.staking_txid.clone(),
                    params_version: d.params_version,
                    registration: codec::registration_of(d),
                })
                .collect(),
            next_page_token,
        })
    }

    async fn add_covenant_sigs(
        &self,
        staking_txid: &str,
        sigs: &CovenantSignatures,
    ) -> Result<CovenantSigsAck, NodeError> {
        const CALL: &str = "AddCovenantSigs";
        let sigs = codec::covenant_sigs_to_pb(sigs)
            .map_err(|source| NodeError::Decode { call: CALL, source })?;
        let r = self
            .client
            .clone()
            .add_covenant_sigs(pb::AddCovenantSigsRequest {
                staking_txid: staking_txid.to_owned(),
                sigs: Some(sigs),
            })
            .await
            .map_err(|s| NodeError::status(CALL, &s))?
            .into_inner();
        Ok(CovenantSigsAck {
            status: r.status(),
            signatures: r.signatures,
        })
    }

    async fn events(&self, from_sequence: u64) -> Result<EventStream, NodeError> {
        const CALL: &str = "Events";
        let stream = self
            .client
            .clone()
            .events(pb::EventsRequest { from_sequence })
            .await
            .map_err(|s| NodeError::status(CALL, &s))?
            .into_inner();
        Ok(Box::pin(
            stream.map(|item| item.map_err(|s| NodeError::status(CALL, &s))),
        ))
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
