//! What a staker asks of the node's staking module.

use async_trait::async_trait;
use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_staking::registration::Registration;

use super::{Code, EventStream, GrpcNode, NodeError, StakingNode};
use crate::codec;
use crate::staking::v1 as pb;

/// What a staker asks of the node.
#[async_trait]
pub trait StakerNode: Send + Sync {
    /// The params in force at BTC height `height`, in wire form (the staker compares them with
    /// its own copy and never takes them as its own).
    async fn params_at(&self, height: u32) -> Result<pb::Params, NodeError>;

    /// The verifier `verifier`; `None` when the node does not know it.
    async fn staking_verifier(
        &self,
        verifier: XOnlyPublicKey,
    ) -> Result<Option<pb::Verifier>, NodeError>;

    /// Registers `reg`; returns the node's staking txid and params version. A registration
    /// the node already has is not an error (`already` is true).
    async fn create_delegation(&self, reg: &Registration) -> Result<Registered, NodeError>;

    /// The delegation filed under `staking_txid`; `None` when the node does not know it.
    async fn delegation(&self, staking_txid: &str) -> Result<Option<pb::Delegation>, NodeError>;

    /// The staking module's events from `from_sequence` on.
    async fn staking_events(&self, from_sequence: u64) -> Result<EventStream, NodeError>;
}

/// The node's answer to CreateDelegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The staking txid the node files it under.
    pub staking_txid: String,
    /// The params version it was validated against (0 when it was registered before).
    pub params_version: u32,
    /// Whether the node had it already.
    pub already: bool,
}

#[async_trait]
impl StakerNode for GrpcNode {
    async fn staking_events(&self, from_sequence: u64) -> Result<EventStream, NodeError> {
        StakingNode::events(self, from_sequence).await
    }

    async fn params_at(&self, height: u32) -> Result<pb::Params, NodeError> {
        self.params_by(pb::params_request::Selector::BtcHeight(height))
            .await
    }

    async fn staking_verifier(
        &self,
        verifier: XOnlyPublicKey,
    ) -> Result<Option<pb::Verifier>, NodeError> {
        match self
            .client
            .clone()
            .verifier(pb::VerifierRequest {
                btc_pk: verifier.serialize().to_vec(),
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().verifier),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(NodeError::status("Verifier", &s)),
        }
    }

    async fn create_delegation(&self, reg: &Registration) -> Result<Registered, NodeError> {
        const CALL: &str = "CreateDelegation";
        let request = codec::create_delegation_request(reg)
            .map_err(|source| NodeError::Decode { call: CALL, source })?;
        match self.client.clone().create_delegation(request).await {
            Ok(r) => {
                let r = r.into_inner();
                Ok(Registered {
                    staking_txid: r.staking_txid,
                    params_version: r.params_version,
                    already: false,
                })
            }
            Err(s) if s.code() == Code::AlreadyExists => Ok(Registered {
                staking_txid: reg.staking_tx.compute_txid().to_string(),
                params_version: 0,
                already: true,
            }),
            Err(s) => Err(NodeError::status(CALL, &s)),
        }
    }

    async fn delegation(&self, staking_txid: &str) -> Result<Option<pb::Delegation>, NodeError> {
        match self
            .client
            .clone()
            .delegation(pb::DelegationRequest {
                staking_txid: staking_txid.to_owned(),
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().delegation),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(NodeError::status("Delegation", &s)),
        }
    }
}
