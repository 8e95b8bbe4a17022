//! The devnet's stakers: each is the component `fiamma staker run` runs
//! ([`fiamma_staker::staker::Staker`]), with a wallet whose mnemonic comes from the devnet's
//! seed, the devnet's params as its own copy, the node over gRPC, the chain over JSON-RPC and
//! an in-memory store. The story makes the owner's requests (stake, unbond) and steps the
//! component itself, so that each action it takes (broadcast, ACTIVE, unbonding) is seen and
//! printed in the story's order; the daemon loop of `fiamma staker run` does nothing else than
//! step it.

use std::sync::Arc;

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Address, Amount, FeeRate, Network};
use fiamma_proto::client::GrpcNode;
use fiamma_staker::staker::{Action, StakeOutcome, Staker as Component, StakerSettings};
use fiamma_staker::store::StakerStore;
use fiamma_staking::context::SigningContexts;
use fiamma_staking::params::ParamsVersions;
use tonic::transport::Channel;

use super::error::DevnetError;
use super::setup::STAKING_TIME;
use super::wallet::{self, WALLET_FEE_RATE_SAT_VB};
use crate::btc::RpcBackend;

/// One staker and its stake.
pub struct Staker {
    /// "staker 1", …
    pub name: String,
    /// The verifier the stake is delegated to.
    pub verifier: XOnlyPublicKey,
    /// The staked value.
    pub value: Amount,
    component: Component,
    staking_txid: Option<String>,
}

impl Staker {
    /// Staker `number` (1-based), to stake `value` with `verifier`.
    ///
    /// # Errors
    /// [`DevnetError::Wallet`] when its wallet or store cannot be created.
    pub async fn new(
        number: usize,
        verifier: XOnlyPublicKey,
        value: Amount,
        params: ParamsVersions,
        contexts: SigningContexts,
        channel: Channel,
        bitcoin: RpcBackend,
    ) -> Result<Self, DevnetError> {
        let name = format!("staker {number}");
        let fail = |reason: String| DevnetError::Wallet {
            who: name.clone(),
            reason,
        };
        let store = StakerStore::open("sqlite::memory:")
            .await
            .map_err(|e| fail(e.to_string()))?;
        let wallet_store = store
            .wallet(fiamma_staker::config::WALLET_NAME)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let wallet = wallet::create(&name, wallet_store).await?;
        let settings = StakerSettings {
            params,
            contexts,
            network: Network::Regtest,
            fee_rate: FeeRate::from_sat_per_vb(WALLET_FEE_RATE_SAT_VB)
                .unwrap_or(FeeRate::BROADCAST_MIN),
            // The story's stakes never become withdrawable while it runs.
            auto_withdraw: false,
            poll_interval: std::time::Duration::from_secs(1),
        };
        let node = Arc::new(GrpcNode::from_channel(channel));
        let rpc = bitcoin.client();
        let component = Component::new(
            settings,
            wallet,
            store,
            node.clone(),
            Some(node),
            Arc::new(bitcoin),
            rpc,
        );
        Ok(Staker {
            name,
            verifier,
            value,
            component,
            staking_txid: None,
        })
    }

    fn refused(&self, e: impl std::fmt::Display) -> DevnetError {
        DevnetError::refused(&self.name, e)
    }

    /// A fresh receiving address of its wallet.
    ///
    /// # Errors
    /// [`DevnetError::Wallet`].
    pub async fn receive_address(&self) -> Result<Address, DevnetError> {
        self.component
            .wallet()
            .await
            .next_address()
            .await
            .map_err(|e| DevnetError::Wallet {
                who: self.name.clone(),
                reason: e.to_string(),
            })
    }

    /// Syncs its wallet over JSON-RPC; returns the confirmed balance.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when the sync fails.
    pub async fn sync(&self) -> Result<Amount, DevnetError> {
        self.component.sync().await.map_err(|e| self.refused(e))?;
        Ok(self.component.wallet().await.balance().confirmed)
    }

    /// The owner's stake request: the component checks its params against the node's and
    /// the verifier, builds and signs the staking transaction and the registration, checks
    /// the registration with `validate_delegation`, records it and registers it (nothing is
    /// broadcast yet). Returns the delegation's id.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when the component refuses or the node does.
    pub async fn stake(&mut self) -> Result<String, DevnetError> {
        let outcome = self
            .component
            .stake(self.verifier, self.value, STAKING_TIME, None)
            .await
            .map_err(|e| self.refused(e))?;
        match outcome {
            StakeOutcome::Registered { staking_txid } => {
                Ok(self.staking_txid.insert(staking_txid).clone())
            }
            StakeOutcome::NeedsSignatures { .. } => {
                Err(self.refused("its wallet is watch-only: nothing was signed"))
            }
        }
    }

    /// The staking transaction id (the delegation's id).
    ///
    /// # Errors
    /// [`DevnetError::Refused`] before [`Staker::stake`].
    pub fn staking_txid(&self) -> Result<String, DevnetError> {
        self.staking_txid
            .clone()
            .ok_or_else(|| self.refused("has not staked"))
    }

    /// One step of the component; returns what it did to its delegation.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when the step fails, or failed for its delegation.
    pub async fn step(&self) -> Result<Vec<Action>, DevnetError> {
        let txid = self.staking_txid()?;
        let report = self.component.step().await.map_err(|e| self.refused(e))?;
        let mut actions = Vec::new();
        for (t, action) in report.actions {
            if t != txid {
                continue;
            }
            if let Action::Failed(why) = &action {
                return Err(self.refused(format!("delegation {txid}: {why}")));
            }
            actions.push(action);
        }
        Ok(actions)
    }

    /// Steps the component until `pick` finds what it waits for in a step's actions.
    ///
    /// # Errors
    /// [`DevnetError::Timeout`] after `patience`, or as [`Staker::step`].
    pub async fn step_until<T>(
        &self,
        what: &str,
        patience: std::time::Duration,
        mut pick: impl FnMut(&Action) -> Option<T>,
    ) -> Result<T, DevnetError> {
        let until = tokio::time::Instant::now() + patience;
        loop {
            if let Some(found) = self.step().await?.iter().find_map(&mut pick) {
                return Ok(found);
            }
            if tokio::time::Instant::now() > until {
                return Err(DevnetError::Timeout {
                    what: format!("{}: {what}", self.name),
                    after: patience,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The owner's unbond request; the component's next step broadcasts the unbonding
    /// transaction co-signed by the committee. Returns the value that transaction moves to
    /// the unbonding output.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when the component refuses.
    pub async fn request_unbond(&self) -> Result<Amount, DevnetError> {
        let txid = self.staking_txid()?;
        self.component
            .request_unbond(&txid)
            .await
            .map_err(|e| self.refused(e))?;
        let record = self
            .component
            .store()
            .get(&txid)
            .await
            .map_err(|e| self.refused(e))?
            .ok_or_else(|| self.refused(format!("delegation {txid} not in its store")))?;
        Ok(record
            .registration
            .unbonding_tx
            .output
            .first()
            .map_or(Amount::ZERO, |o| o.value))
    }
}
