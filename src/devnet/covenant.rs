//! The devnet's covenant committee: each member is the component `fiamma covenant run` runs
//! ([`CovenantMember`]), with its key from the devnet's seed, its own copy of the params, the
//! node over gRPC and an in-memory store, driven one step at a time by the story.

use std::sync::Arc;

use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_covenant_member::member::{CovenantMember, MemberSettings, Outcome, StepReport};
use fiamma_covenant_member::signer::{KeystoreSigner, Signer};
use fiamma_covenant_member::store::MemberStore;
use fiamma_proto::client::GrpcNode;
use fiamma_staking::context::SigningContexts;
use fiamma_staking::params::{Params, ParamsVersions};
use tonic::transport::Channel;

use super::error::DevnetError;
use super::setup;

/// One member of the devnet committee.
pub struct DevnetMember {
    /// "covenant 1", …
    pub name: String,
    /// Its key.
    pub key: XOnlyPublicKey,
    /// The component.
    pub member: CovenantMember,
}

/// The committee: `setup::COVENANT_MEMBERS` members, each signing under `params`.
///
/// # Errors
/// [`DevnetError::Local`] when a member's store cannot be opened.
pub async fn committee(
    params: &Params,
    contexts: &SigningContexts,
    channel: Channel,
) -> Result<Vec<DevnetMember>, DevnetError> {
    let versions = ParamsVersions::new(vec![params.clone()])
        .map_err(|e| DevnetError::refused("devnet params", e))?;
    let mut members = Vec::new();
    for i in 0..setup::COVENANT_MEMBERS {
        let name = format!("covenant {}", i + 1);
        let signer = KeystoreSigner::new(setup::covenant_keypair(i));
        let key = signer.public_key();
        let store = MemberStore::open("sqlite::memory:")
            .await
            .map_err(|e| DevnetError::local(format!("{name}: local store"), e))?;
        let settings = MemberSettings {
            params: versions.clone(),
            contexts: contexts.clone(),
            page_size: 100,
            poll_interval: std::time::Duration::from_secs(1),
            max_retry: std::time::Duration::from_secs(10),
        };
        let member = CovenantMember::new(
            settings,
            Arc::new(signer),
            Arc::new(GrpcNode::from_channel(channel.clone())),
            store,
        );
        members.push(DevnetMember { name, key, member });
    }
    Ok(members)
}

impl DevnetMember {
    /// One pass of the member: every delegation waiting for it, checked and signed.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when the member refused a delegation or the node's params,
    /// [`DevnetError::Local`] when the pass itself failed.
    pub async fn step(&self) -> Result<StepReport, DevnetError> {
        let report = self
            .member
            .step()
            .await
            .map_err(|e| DevnetError::local(format!("{}: step", self.name), e))?;
        if let Some(problem) = &report.params_problem {
            return Err(DevnetError::refused(&self.name, problem));
        }
        for d in &report.decisions {
            match &d.outcome {
                Outcome::Refused { reason, .. } => {
                    return Err(DevnetError::refused(
                        &self.name,
                        format!("delegation {}: {reason}", d.staking_txid),
                    ))
                }
                Outcome::Undelivered(reason) => {
                    return Err(DevnetError::refused(
                        &self.name,
                        format!("delegation {}: not delivered: {reason}", d.staking_txid),
                    ))
                }
                _ => {}
            }
        }
        Ok(report)
    }
}
