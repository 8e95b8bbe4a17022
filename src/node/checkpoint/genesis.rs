//! The genesis output (§13.1): which output starts the chain.
//!
//! The genesis encodes round h₀'s set, which exists only once h₀ is closed, so it cannot be
//! fixed beforehand in the parameters. Anyone funds an output of value V paying round h₀'s
//! checkpoint output; once it is k deep, RegisterCheckpointGenesis names it and the node checks
//! it on Bitcoin: the first registration that passes is the genesis for good. The output is
//! spendable only by h₀'s set (or the committee after R), whoever funded it.

use bitcoin::hashes::Hash;
use bitcoin::{OutPoint, ScriptBuf, Txid};
use fiamma_finality::checkpoint::{CheckpointOutput, CheckpointSet};
use fiamma_proto::finality::v1 as pb;
use sqlx::PgConnection;

use super::errors::CheckpointError;
use super::store::{self, ChainOutput};
use super::CheckpointSettings;
use crate::btc::{OutPointStatus, TxStatus};
use crate::node::finality::store::{self as finality_store, Lock};
use crate::node::finality::{wire, FinalityModule};
use crate::node::store::StoreError;

/// The scriptPubKey the genesis must pay: round h₀'s checkpoint output.
///
/// # Errors
/// [`CheckpointError::GenesisRoundOpen`] before h₀ closes, [`CheckpointError::GenesisNoSet`]
/// when its active set is empty.
pub async fn genesis_script(
    conn: &mut PgConnection,
    settings: &CheckpointSettings,
) -> Result<ScriptBuf, CheckpointError> {
    let round = settings.genesis_round;
    let latest = finality_store::position(&mut *conn, Lock::None)
        .await?
        .latest_round;
    if latest < round {
        return Err(CheckpointError::GenesisRoundOpen { round, latest });
    }
    let table = finality_store::power_table(&mut *conn, round).await?;
    let set =
        CheckpointSet::from_power_table(&table).map_err(|e| CheckpointError::GenesisNoSet {
            round,
            reason: e.to_string(),
        })?;
    Ok(CheckpointOutput::new(&set, &settings.recovery).script_pubkey())
}

impl FinalityModule {
    /// RegisterCheckpointGenesis: `txid:vout` becomes the genesis if it is a k-deep, unspent
    /// output of value V paying round h₀'s checkpoint output and no genesis is registered.
    /// Naming the registered genesis again returns it.
    ///
    /// # Errors
    /// [`CheckpointError`] naming the first check that failed; nothing changed.
    pub async fn register_checkpoint_genesis(
        &self,
        r: pb::RegisterCheckpointGenesisRequest,
    ) -> Result<ChainOutput, CheckpointError> {
        let checkpoints = self.checkpoint_config()?;
        let settings = &checkpoints.settings;
        let txid = Txid::from_byte_array(wire::bytes32("txid", &r.txid)?);
        let outpoint = OutPoint::new(txid, r.vout);
        let expected = {
            let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
            if let Some(chain) = store::chain(&mut conn).await? {
                return registered(chain.genesis, outpoint);
            }
            genesis_script(&mut conn, settings).await?
        };
        // Bitcoin is asked outside any transaction: no lock waits on the backend.
        let backend = &checkpoints.backend;
        let (height, confirmations) = match backend.tx_status(&txid).await? {
            TxStatus::Confirmed {
                height,
                confirmations,
                ..
            } => (height, confirmations),
            TxStatus::InMempool => (0, 0),
            TxStatus::Unknown => return Err(CheckpointError::GenesisUnknown { txid }),
        };
        if confirmations < settings.confirmation_depth {
            return Err(CheckpointError::GenesisNotConfirmed {
                outpoint,
                confirmations,
                needed: settings.confirmation_depth,
            });
        }
        let tx = backend
            .transaction(&txid)
            .await?
            .ok_or(CheckpointError::GenesisUnknown { txid })?;
        let output = usize::try_from(r.vout)
            .ok()
            .and_then(|i| tx.output.get(i))
            .ok_or(CheckpointError::GenesisNoOutput {
                txid,
                vout: r.vout,
                outputs: tx.output.len(),
            })?;
        if output.value != settings.value {
            return Err(CheckpointError::GenesisValue {
                outpoint,
                value: output.value,
                expected: settings.value,
            });
        }
        if output.script_pubkey != expected {
            return Err(CheckpointError::GenesisScript {
                outpoint,
                round: settings.genesis_round,
                expected: expected.to_hex_string(),
            });
        }
        match backend.outpoint_status(&outpoint).await? {
            OutPointStatus::Unspent { .. } => {}
            OutPointStatus::Unknown => return Err(CheckpointError::GenesisUnknown { txid }),
            _ => return Err(CheckpointError::GenesisSpent { outpoint }),
        }
        let genesis = ChainOutput {
            outpoint,
            round: settings.genesis_round,
            height,
            kind: 0,
        };
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        // The writer lock: a round close reads the chain under it.
        finality_store::position(&mut tx, Lock::Update).await?;
        if !store::insert_genesis(&mut tx, &genesis).await? {
            let chain = store::chain(&mut tx)
                .await?
                .ok_or_else(|| StoreError::Missing {
                    what: "checkpoint_chain".into(),
                })?;
            return registered(chain.genesis, outpoint);
        }
        tx.commit().await.map_err(StoreError::from)?;
        tracing::info!(%outpoint, round = genesis.round, height, "checkpoint genesis registered");
        Ok(genesis)
    }
}

/// The answer to a registration once a genesis exists: it, if named again.
fn registered(genesis: ChainOutput, named: OutPoint) -> Result<ChainOutput, CheckpointError> {
    if genesis.outpoint == named {
        Ok(genesis)
    } else {
        Err(CheckpointError::GenesisExists {
            genesis: genesis.outpoint,
        })
    }
}
