//! The genesis output (§13.1): which output starts the chain.
//!
//! The genesis encodes round h₀'s set, which exists only once h₀ is closed, so it cannot be
//! fixed beforehand in the parameters: `genesis_round` names the earliest round, and h₀ is the
//! first closed round from it on with a non-empty active set. Anyone funds an output of value
//! V paying round h₀'s checkpoint output (the node serves its script); once it is k deep,
//! RegisterCheckpointGenesis names it and the node checks it on Bitcoin: the first
//! registration that passes is the genesis for good. The output is spendable only by h₀'s set
//! (or the committee after R), whoever funded it.

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

/// The round h₀ whose set the genesis encodes, and the scriptPubKey the genesis must pay
/// (round h₀'s checkpoint output). h₀ is the first closed round from `genesis_round` on whose
/// active set is not empty: a network's first rounds may have no stake yet, and every node
/// following the same rounds finds the same h₀.
///
/// # Errors
/// [`CheckpointError::GenesisRoundOpen`] before `genesis_round` closes,
/// [`CheckpointError::GenesisNoSet`] while every closed round from it on has an empty set.
pub async fn genesis_script(
    conn: &mut PgConnection,
    settings: &CheckpointSettings,
) -> Result<(u64, ScriptBuf), CheckpointError> {
    let earliest = settings.genesis_round;
    let latest = finality_store::position(&mut *conn, Lock::None)
        .await?
        .latest_round;
    if latest < earliest {
        return Err(CheckpointError::GenesisRoundOpen {
            round: earliest,
            latest,
        });
    }
    let first: Option<i64> =
        sqlx::query_scalar("SELECT MIN(round) FROM round_members WHERE round >= $1")
            .bind(finality_store::to_i64("genesis_round", earliest)?)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::from)?;
    let round = first
        .map(|r| finality_store::to_u64("round", r))
        .transpose()?
        .ok_or_else(|| CheckpointError::GenesisNoSet {
            round: earliest,
            reason: format!("no round from {earliest} to {latest} has an active set"),
        })?;
    let table = finality_store::power_table(&mut *conn, round).await?;
    let set =
        CheckpointSet::from_power_table(&table).map_err(|e| CheckpointError::GenesisNoSet {
            round,
            reason: e.to_string(),
        })?;
    Ok((
        round,
        CheckpointOutput::new(&set, &settings.recovery).script_pubkey(),
    ))
}

impl FinalityModule {
    /// RegisterCheckpointGenesis: `txid:vout` becomes the genesis if it is a k-deep, unspent
    /// output of value V paying round h₀'s checkpoint output ([`genesis_script`]) and no
    /// genesis is registered.
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
        let (round, expected) = expected;
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
                round,
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
            round,
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
