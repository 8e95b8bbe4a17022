//! What a covenant member asks of the node's staking module.

use std::pin::Pin;

use async_trait::async_trait;
use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_covenant::signing::CovenantSignatures;
use fiamma_staking::registration::Registration;
use tokio_stream::{Stream, StreamExt};

use super::{GrpcNode, NodeError};
use crate::codec::{self, FieldError};
use crate::staking::v1 as pb;

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

impl GrpcNode {
    /// The params version `selector` names, in wire form.
    pub(super) async fn params_by(
        &self,
        selector: pb::params_request::Selector,
    ) -> Result<pb::Params, NodeError> {
        const CALL: &str = "Params";
        let r = self
            .client
            .clone()
            .params(pb::ParamsRequest {
                selector: Some(selector),
            })
            .await
            .map_err(|s| NodeError::status(CALL, &s))?
            .into_inner();
        r.params.ok_or(NodeError::Decode {
            call: CALL,
            source: codec::bad("params", "missing"),
        })
    }
}

#[async_trait]
impl StakingNode for GrpcNode {
    async fn params(&self, version: u32) -> Result<pb::Params, NodeError> {
        self.params_by(pb::params_request::Selector::Version(version))
            .await
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
