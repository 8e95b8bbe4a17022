//! The devnet's slasher: the component `fiamma slasher run` runs
//! ([`fiamma_slasher::slasher::Slasher`]), over the node's gRPC and the chain's JSON-RPC, with
//! an in-memory store, stepped by the story: it reads the key the node extracted from an
//! equivocation, and for every delegation to that verifier slashes whichever of its staking
//! or unbonding output is unspent.

use std::sync::Arc;

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Amount, ScriptBuf, Txid};
use fiamma_covenant::delegation::SlashingTx;
use fiamma_proto::client::{GrpcNode, SlasherNode};
use fiamma_slasher::plan::{checked_key, BroadcastVerdict};
use fiamma_slasher::slasher::{Outcome, Slasher, SlasherSettings};
use fiamma_slasher::store::SlasherStore;
use tonic::transport::Channel;

use super::error::DevnetError;
use crate::btc::RpcBackend;

const PARTY: &str = "slasher";

/// One slashing transaction broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slashed {
    /// The delegation.
    pub staking_txid: String,
    /// Which output it slashed: the staking or the unbonding output.
    pub which: SlashingTx,
    /// The slashing transaction.
    pub slashing_txid: Txid,
    /// What it pays to the slashing script.
    pub slashed: Amount,
    /// The slashing script it pays.
    pub to: ScriptBuf,
    /// What goes back to the staker (after the unbonding time).
    pub change: Amount,
}

fn refuse(e: impl std::fmt::Display) -> DevnetError {
    DevnetError::refused(PARTY, e)
}

/// The slasher component and the node it asks.
pub struct DevnetSlasher {
    node: Arc<GrpcNode>,
    component: Slasher,
}

impl DevnetSlasher {
    /// The component over `channel` and `bitcoin`, final at `confirmations`.
    ///
    /// # Errors
    /// [`DevnetError::Local`] when its store cannot be opened.
    pub async fn new(
        channel: Channel,
        bitcoin: RpcBackend,
        confirmations: u32,
    ) -> Result<Self, DevnetError> {
        let node = Arc::new(GrpcNode::from_channel(channel));
        let store = SlasherStore::open("sqlite::memory:")
            .await
            .map_err(|e| DevnetError::local("slasher: local store", e))?;
        let settings = SlasherSettings {
            confirmations,
            poll_interval: std::time::Duration::from_secs(1),
            page_size: 100,
        };
        Ok(DevnetSlasher {
            component: Slasher::new(settings, node.clone(), Arc::new(bitcoin), store),
            node,
        })
    }

    /// Checks that the node published the key of `verifier` (as the component checks it).
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when the node has not slashed it or the key is not its key.
    pub async fn published_key(&self, verifier: &XOnlyPublicKey) -> Result<(), DevnetError> {
        let slashed = self
            .node
            .slashed_verifiers()
            .await
            .map_err(|e| refuse(format!("SlashedVerifiers: {e}")))?;
        let entry = slashed
            .into_iter()
            .find(|v| v.verifier == *verifier)
            .ok_or_else(|| refuse(format!("verifier {verifier} is not slashed")))?;
        let key = entry.extracted_key.map_err(refuse)?;
        checked_key(verifier, key).map_err(refuse)?;
        Ok(())
    }

    /// The component's daemon loop, as `fiamma slasher run` runs it, until `shutdown`.
    pub async fn run(&self, shutdown: fiamma_role::daemon::Shutdown) {
        self.component.run(shutdown).await;
    }

    /// One step of the component: the slashing transactions it broadcast and Bitcoin accepted.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when the step fails, a delegation cannot be slashed, or a
    /// broadcast is not accepted.
    pub async fn slash(&self) -> Result<Vec<Slashed>, DevnetError> {
        let report = self.component.step().await.map_err(refuse)?;
        if let Some(why) = report.refused_keys.first() {
            return Err(refuse(why));
        }
        let mut done = Vec::new();
        for d in report.delegations {
            match d.outcome {
                Outcome::Broadcast {
                    which,
                    txid,
                    verdict: BroadcastVerdict::Accepted,
                    payout,
                } => done.push(Slashed {
                    staking_txid: d.staking_txid,
                    which,
                    slashing_txid: txid,
                    slashed: payout.slashed,
                    to: payout.to,
                    change: payout.change,
                }),
                Outcome::Broadcast { verdict, .. } => {
                    return Err(refuse(format!(
                        "delegation {}: broadcast: {verdict:?}",
                        d.staking_txid
                    )))
                }
                Outcome::Refused(why) => return Err(refuse(why)),
                _ => {}
            }
        }
        Ok(done)
    }

    /// One more step once the transactions are mined: the delegations it now counts as
    /// slashed k deep.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when the step fails.
    pub async fn confirmed(&self) -> Result<Vec<(String, u32)>, DevnetError> {
        let report = self.component.step().await.map_err(refuse)?;
        Ok(report
            .delegations
            .into_iter()
            .filter_map(|d| match d.outcome {
                Outcome::Slashed { confirmations, .. } => Some((d.staking_txid, confirmations)),
                _ => None,
            })
            .collect())
    }
}
