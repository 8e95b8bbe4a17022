//! What a slasher asks of the node: the verifiers the node slashed with the key their
//! equivocation (or selective slashing) revealed, every delegation of such a verifier with the
//! covenant adaptor signatures encrypted to that key, and the selective slashing evidence it
//! finds itself.

use async_trait::async_trait;
use bitcoin::secp256k1::{SecretKey, XOnlyPublicKey};
use fiamma_covenant::adaptor::AdaptorSignature;
use fiamma_staking::registration::Registration;

use super::{Code, FinalityNode, GrpcNode, NodeError, StakingNode};
use crate::codec::{self, FieldError};
use crate::finality::v1 as fpb;
use crate::staking::v1 as pb;

/// Characters of a served slashing reason kept.
const MAX_REASON_CHARS: usize = 64;

/// A verifier the node slashed, as it publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashedVerifier {
    /// The verifier's key.
    pub verifier: XOnlyPublicKey,
    /// The secret key the node extracted, or why it does not decode. It is public once the
    /// node publishes it; a reader still checks it is the verifier's before using it.
    pub extracted_key: Result<SecretKey, FieldError>,
    /// The round it was slashed in.
    pub slashed_in_round: u64,
    /// `equivocation` or `selective_slashing`.
    pub reason: String,
}

/// One covenant member's adaptor signatures on a delegation's two slashing transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CovenantAdaptorSigs {
    /// The member's key.
    pub covenant: XOnlyPublicKey,
    /// On the staking slashing transaction.
    pub slashing: AdaptorSignature,
    /// On the unbonding slashing transaction.
    pub unbonding_slashing: AdaptorSignature,
}

/// A delegation as the node serves it to a slasher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedDelegation {
    /// The staking txid the node files it under (display hex, as served).
    pub staking_txid: String,
    /// The params version it was validated against.
    pub params_version: u32,
    /// Its status on the node.
    pub status: pb::DelegationStatus,
    /// The registration, or the first field that does not decode.
    pub registration: Result<Registration, FieldError>,
    /// The covenant signatures, or the first that does not decode.
    pub covenant_sigs: Result<Vec<CovenantAdaptorSigs>, FieldError>,
    /// The transaction the node saw spending the staking output (UNBONDED only), as served.
    pub spending_txid: Option<String>,
}

/// One page of [`ServedDelegation`]s and the token of the next page (`None` at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationPage {
    /// The delegations of this page, in the node's order (by staking txid).
    pub delegations: Vec<ServedDelegation>,
    /// Where the next page starts.
    pub next_page_token: Option<String>,
}

/// What a slasher asks of the node, on top of the staking and finality calls (params, events).
#[async_trait]
pub trait SlasherNode: StakingNode + FinalityNode {
    /// Every verifier the node slashed, with its extracted key.
    async fn slashed_verifiers(&self) -> Result<Vec<SlashedVerifier>, NodeError>;

    /// One page (at most `page_size`) of the delegations of `verifier`, in any status.
    async fn verifier_delegations(
        &self,
        verifier: XOnlyPublicKey,
        page_token: Option<String>,
        page_size: u32,
    ) -> Result<DelegationPage, NodeError>;

    /// The delegation filed under `staking_txid`; `None` when the node does not know it.
    async fn delegation(&self, staking_txid: &str) -> Result<Option<ServedDelegation>, NodeError>;

    /// Selective slashing evidence (PROTOCOL §11): the key of the verifier of delegation
    /// `staking_txid`, recovered from a slashing transaction that verifier broadcast itself.
    /// Returns the verifier the node slashed.
    async fn selective_slashing_evidence(
        &self,
        staking_txid: &str,
        recovered_key: &SecretKey,
    ) -> Result<XOnlyPublicKey, NodeError>;
}

fn covenant_sigs(d: &pb::Delegation) -> Result<Vec<CovenantAdaptorSigs>, FieldError> {
    d.covenant_sigs
        .iter()
        .map(|s| {
            Ok(CovenantAdaptorSigs {
                covenant: codec::key("covenant_sigs.covenant_pk", &s.covenant_pk)?,
                slashing: codec::adaptor_sig(
                    "covenant_sigs.slashing_adaptor_sig",
                    &s.slashing_adaptor_sig,
                )?,
                unbonding_slashing: codec::adaptor_sig(
                    "covenant_sigs.unbonding_slashing_adaptor_sig",
                    &s.unbonding_slashing_adaptor_sig,
                )?,
            })
        })
        .collect()
}

/// A served delegation in a slasher's terms: each part decoded on its own, so one malformed
/// delegation is the reader's to skip and does not fail the page.
pub fn served_delegation(d: &pb::Delegation) -> ServedDelegation {
    ServedDelegation {
        staking_txid: d.staking_txid.clone(),
        params_version: d.params_version,
        status: d.status(),
        registration: codec::registration_of(d),
        covenant_sigs: covenant_sigs(d),
        spending_txid: Some(d.spending_txid.clone()).filter(|t| !t.is_empty()),
    }
}

#[async_trait]
impl SlasherNode for GrpcNode {
    async fn slashed_verifiers(&self) -> Result<Vec<SlashedVerifier>, NodeError> {
        const CALL: &str = "SlashedVerifiers";
        let r = self
            .finality
            .clone()
            .slashed_verifiers(fpb::SlashedVerifiersRequest {})
            .await
            .map_err(|s| NodeError::status(CALL, &s))?
            .into_inner();
        r.verifiers
            .iter()
            .map(|v| {
                Ok(SlashedVerifier {
                    verifier: codec::key("verifier_btc_pk", &v.verifier_btc_pk)
                        .map_err(|source| NodeError::Decode { call: CALL, source })?,
                    extracted_key: codec::secret_key(
                        "extracted_secret_key",
                        &v.extracted_secret_key,
                    ),
                    slashed_in_round: v.slashed_in_round,
                    // A hostile node cannot grow a log line with it.
                    reason: v.reason.chars().take(MAX_REASON_CHARS).collect(),
                })
            })
            .collect()
    }

    async fn verifier_delegations(
        &self,
        verifier: XOnlyPublicKey,
        page_token: Option<String>,
        page_size: u32,
    ) -> Result<DelegationPage, NodeError> {
        let r = self
            .client
            .clone()
            .delegations(pb::DelegationsRequest {
                verifier_btc_pk: verifier.serialize().to_vec(),
                page: Some(pb::PageRequest {
                    page_token: page_token.unwrap_or_default(),
                    page_size,
                }),
                ..pb::DelegationsRequest::default()
            })
            .await
            .map_err(|s| NodeError::status("Delegations", &s))?
            .into_inner();
        let next_page_token = r
            .page
            .map(|p| p.next_page_token)
            .filter(|token| !token.is_empty());
        Ok(DelegationPage {
            delegations: r.delegations.iter().map(served_delegation).collect(),
            next_page_token,
        })
    }

    async fn delegation(&self, staking_txid: &str) -> Result<Option<ServedDelegation>, NodeError> {
        let r = match self
            .client
            .clone()
            .delegation(pb::DelegationRequest {
                staking_txid: staking_txid.to_owned(),
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(NodeError::status("Delegation", &s)),
        };
        Ok(r.delegation.as_ref().map(served_delegation))
    }

    async fn selective_slashing_evidence(
        &self,
        staking_txid: &str,
        recovered_key: &SecretKey,
    ) -> Result<XOnlyPublicKey, NodeError> {
        const CALL: &str = "SelectiveSlashingEvidence";
        let r = self
            .client
            .clone()
            .selective_slashing_evidence(pb::SelectiveSlashingEvidenceRequest {
                staking_txid: staking_txid.to_owned(),
                recovered_verifier_sk: recovered_key.secret_bytes().to_vec(),
            })
            .await
            .map_err(|s| NodeError::status(CALL, &s))?
            .into_inner();
        codec::key("verifier_btc_pk", &r.verifier_btc_pk)
            .map_err(|source| NodeError::Decode { call: CALL, source })
    }
}
