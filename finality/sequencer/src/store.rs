//! The sequencer's local store: the proofs it submitted, each anchor transaction it signed
//! (recorded before its first broadcast, so that a restart sends the same bytes and never
//! anchors a round twice), how far it has looked, and its wallet's changesets.
//!
//! SQLite by default, PostgreSQL as an option (schema `fiamma_sequencer`); one set of
//! statements through sqlx's `Any` driver, the schema in `migrations/{sqlite,postgres}`.

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::Transaction;
use fiamma_finality::round::anchor::Anchor;
use fiamma_role::store::unix_now as now;
use fiamma_role::store::{self as local, bounded, int, to_u64, Dialect, LocalStoreError};
use fiamma_wallet::store::role_migrator;
use fiamma_wallet::{WalletStore, WalletStoreError};
use sqlx::{AnyPool, Row};

/// The PostgreSQL schema of this role's tables.
const SCHEMA: &str = "fiamma_sequencer";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening or migrating failed.
    #[error(transparent)]
    Open(#[from] LocalStoreError),
    /// The wallet's table.
    #[error(transparent)]
    Wallet(#[from] WalletStoreError),
    /// A statement failed.
    #[error("local store: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row does not decode: the file was changed by hand or is corrupt.
    #[error("local store row is corrupt: {0}")]
    Corrupt(&'static str),
}

/// A recorded anchor and its broadcasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorRow {
    /// The round.
    pub round: u64,
    /// The round hash anchored.
    pub round_hash: [u8; 32],
    /// The certificate digest anchored.
    pub certificate_digest: [u8; 32],
    /// The signed transaction.
    pub tx: Transaction,
    /// How often it was broadcast.
    pub broadcasts: u64,
    /// What the Bitcoin node said last; empty when it accepted it.
    pub last_result: String,
    /// Its confirmations at the last look.
    pub confirmations: u32,
    /// Whether it is k deep.
    pub done: bool,
}

/// A recorded checkpoint package and its broadcasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRow {
    /// The checkpoint round.
    pub round: u64,
    /// The signed candidate.
    pub parent: Transaction,
    /// The child paying for both.
    pub child: Transaction,
    /// How often it was broadcast.
    pub broadcasts: u64,
    /// What the Bitcoin node said last; empty when it accepted it.
    pub last_result: String,
    /// The candidate's confirmations at the last look.
    pub confirmations: u32,
    /// Whether nothing is left to do (k deep, or superseded).
    pub done: bool,
    /// Whether the node said the round was superseded.
    pub superseded: bool,
}

/// The recorded genesis funding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisRow {
    /// h₀.
    pub genesis_round: u64,
    /// The funding transaction.
    pub tx: Transaction,
    /// Its output paying V to the genesis script.
    pub vout: u32,
    /// Whether the node registered it.
    pub registered: bool,
}

/// A submitted proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofRow {
    /// Its id.
    pub proof_id: [u8; 32],
    /// The round the node put it in.
    pub round: u64,
}

/// How far the sequencer has looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// The lowest round not settled yet (anchored, skipped, or not due).
    pub next_round: u64,
    /// Unix time of the last completed step.
    pub last_step_at: i64,
    /// The Bitcoin tip it saw.
    pub tip_height: u32,
    /// The newest closed round it saw.
    pub latest_round: u64,
}

/// The sequencer's local store.
#[derive(Debug, Clone)]
pub struct SequencerStore {
    pool: AnyPool,
    dialect: Dialect,
}

fn digest(bytes: Vec<u8>, what: &'static str) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| StoreError::Corrupt(what))
}

fn anchor_row(row: &sqlx::any::AnyRow) -> Result<AnchorRow, StoreError> {
    let tx: Vec<u8> = row.try_get("tx")?;
    Ok(AnchorRow {
        round: to_u64(row.try_get("round")?),
        round_hash: digest(row.try_get("round_hash")?, "anchor.round_hash")?,
        certificate_digest: digest(
            row.try_get("certificate_digest")?,
            "anchor.certificate_digest",
        )?,
        tx: deserialize(&tx).map_err(|_| StoreError::Corrupt("anchor.tx"))?,
        broadcasts: to_u64(row.try_get("broadcasts")?),
        last_result: row.try_get("last_result")?,
        confirmations: u32::try_from(row.try_get::<i64, _>("confirmations")?)
            .map_err(|_| StoreError::Corrupt("anchor.confirmations"))?,
        done: row.try_get::<i64, _>("done")? == 1,
    })
}

fn package_row(row: &sqlx::any::AnyRow) -> Result<PackageRow, StoreError> {
    let parent: Vec<u8> = row.try_get("parent")?;
    let child: Vec<u8> = row.try_get("child")?;
    Ok(PackageRow {
        round: to_u64(row.try_get("round")?),
        parent: deserialize(&parent)
            .map_err(|_| StoreError::Corrupt("checkpoint_package.parent"))?,
        child: deserialize(&child).map_err(|_| StoreError::Corrupt("checkpoint_package.child"))?,
        broadcasts: to_u64(row.try_get("broadcasts")?),
        last_result: row.try_get("last_result")?,
        confirmations: u32::try_from(row.try_get::<i64, _>("confirmations")?)
            .map_err(|_| StoreError::Corrupt("checkpoint_package.confirmations"))?,
        done: row.try_get::<i64, _>("done")? == 1,
        superseded: row.try_get::<i64, _>("superseded")? == 1,
    })
}

impl SequencerStore {
    /// Opens (creating a SQLite file when missing) and migrates the store at `url`, the
    /// wallet's table included.
    ///
    /// # Errors
    /// [`StoreError::Open`] or [`StoreError::Wallet`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let sqlite = role_migrator(sqlx::migrate!("./migrations/sqlite"));
        let postgres = role_migrator(sqlx::migrate!("./migrations/postgres"));
        let (pool, dialect) = local::open(url, SCHEMA, &sqlite, &postgres).await?;
        fiamma_wallet::store::migrator(dialect)
            .run(&pool)
            .await
            .map_err(WalletStoreError::from)?;
        Ok(SequencerStore { pool, dialect })
    }

    /// Which database it runs on.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The wallet named `name` in this store.
    ///
    /// # Errors
    /// [`StoreError::Wallet`].
    pub async fn wallet(&self, name: &str) -> Result<WalletStore, StoreError> {
        Ok(WalletStore::on_pool(self.pool.clone(), self.dialect, name).await?)
    }

    /// Records a submitted proof; recording it again keeps the first round.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn note_proof(&self, proof_id: &[u8; 32], round: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO proof (proof_id, round, submitted_at) VALUES ($1, $2, $3) \
             ON CONFLICT (proof_id) DO NOTHING",
        )
        .bind(proof_id.to_vec())
        .bind(int(round))
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every submitted proof, by round.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn proofs(&self) -> Result<Vec<ProofRow>, StoreError> {
        sqlx::query("SELECT proof_id, round FROM proof ORDER BY round, proof_id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(ProofRow {
                    proof_id: digest(row.try_get("proof_id")?, "proof.proof_id")?,
                    round: to_u64(row.try_get("round")?),
                })
            })
            .collect()
    }

    /// The anchor recorded for `round`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn anchor(&self, round: u64) -> Result<Option<AnchorRow>, StoreError> {
        sqlx::query(
            "SELECT round, round_hash, certificate_digest, tx, broadcasts, last_result, \
             confirmations, done FROM anchor WHERE round = $1",
        )
        .bind(int(round))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(anchor_row)
        .transpose()
    }

    /// Records the signed anchor `tx` of `anchor` before it is broadcast, unless one is
    /// recorded for that round already; returns the recorded one (which is the one to send).
    ///
    /// # Errors
    /// [`StoreError`]; then nothing may be broadcast.
    pub async fn record_anchor(
        &self,
        anchor: &Anchor,
        tx: &Transaction,
    ) -> Result<AnchorRow, StoreError> {
        sqlx::query(
            "INSERT INTO anchor (round, round_hash, certificate_digest, txid, tx, recorded_at, \
             broadcasts, last_broadcast_at, last_result, confirmations, done) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, 0, '', 0, 0) ON CONFLICT (round) DO NOTHING",
        )
        .bind(int(anchor.round))
        .bind(anchor.round_hash.0.to_vec())
        .bind(anchor.certificate_hash.to_vec())
        .bind(tx.compute_txid().to_string())
        .bind(serialize(tx))
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.anchor(anchor.round)
            .await?
            .ok_or(StoreError::Corrupt("anchor row"))
    }

    /// Counts a broadcast of round `round`'s anchor and what the node said (`""`: accepted).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn note_broadcast(&self, round: u64, result: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE anchor SET broadcasts = broadcasts + 1, last_broadcast_at = $1, \
             last_result = $2 WHERE round = $3",
        )
        .bind(now())
        .bind(bounded(result))
        .bind(int(round))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how deep round `round`'s anchor is, and whether that is k.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn note_depth(
        &self,
        round: u64,
        confirmations: u32,
        done: bool,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE anchor SET confirmations = $1, done = $2 WHERE round = $3")
            .bind(i64::from(confirmations))
            .bind(i64::from(u8::from(done)))
            .bind(int(round))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The anchors not yet k deep, by round.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn pending(&self) -> Result<Vec<AnchorRow>, StoreError> {
        sqlx::query(
            "SELECT round, round_hash, certificate_digest, tx, broadcasts, last_result, \
             confirmations, done FROM anchor WHERE done = 0 ORDER BY round",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(anchor_row)
        .collect()
    }

    /// Every anchor, by round.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn anchors(&self) -> Result<Vec<AnchorRow>, StoreError> {
        sqlx::query(
            "SELECT round, round_hash, certificate_digest, tx, broadcasts, last_result, \
             confirmations, done FROM anchor ORDER BY round",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(anchor_row)
        .collect()
    }

    /// The checkpoint package recorded for `round`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn package(&self, round: u64) -> Result<Option<PackageRow>, StoreError> {
        sqlx::query(
            "SELECT round, parent, child, broadcasts, last_result, confirmations, done, \
             superseded FROM checkpoint_package WHERE round = $1",
        )
        .bind(int(round))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(package_row)
        .transpose()
    }

    /// Records round `round`'s package (the signed candidate and its child) before it is
    /// broadcast, unless one is recorded for that round already; returns the recorded one
    /// (which is the one to send).
    ///
    /// # Errors
    /// [`StoreError`]; then nothing may be broadcast.
    pub async fn record_package(
        &self,
        round: u64,
        parent: &Transaction,
        child: &Transaction,
    ) -> Result<PackageRow, StoreError> {
        sqlx::query(
            "INSERT INTO checkpoint_package (round, candidate_txid, parent, child, recorded_at, \
             broadcasts, last_broadcast_at, last_result, confirmations, done, superseded) \
             VALUES ($1, $2, $3, $4, $5, 0, 0, '', 0, 0, 0) ON CONFLICT (round) DO NOTHING",
        )
        .bind(int(round))
        .bind(parent.compute_txid().to_string())
        .bind(serialize(parent))
        .bind(serialize(child))
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.package(round)
            .await?
            .ok_or(StoreError::Corrupt("checkpoint_package row"))
    }

    /// Counts a broadcast of round `round`'s package and what the node said (`""`: accepted).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn note_package_broadcast(&self, round: u64, result: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE checkpoint_package SET broadcasts = broadcasts + 1, last_broadcast_at = $1, \
             last_result = $2 WHERE round = $3",
        )
        .bind(now())
        .bind(bounded(result))
        .bind(int(round))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how deep round `round`'s candidate is, whether that is the end, and whether
    /// the round was superseded.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn note_package_depth(
        &self,
        round: u64,
        confirmations: u32,
        done: bool,
        superseded: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE checkpoint_package SET confirmations = $1, done = $2, superseded = $3 \
             WHERE round = $4",
        )
        .bind(i64::from(confirmations))
        .bind(i64::from(u8::from(done)))
        .bind(i64::from(u8::from(superseded)))
        .bind(int(round))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The packages by round: those with something left to do when `pending_only`, else all.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn packages(&self, pending_only: bool) -> Result<Vec<PackageRow>, StoreError> {
        sqlx::query(
            "SELECT round, parent, child, broadcasts, last_result, confirmations, done, \
             superseded FROM checkpoint_package WHERE done = 0 OR $1 = 0 ORDER BY round",
        )
        .bind(i64::from(u8::from(pending_only)))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(package_row)
        .collect()
    }

    /// The recorded genesis funding.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn genesis(&self) -> Result<Option<GenesisRow>, StoreError> {
        sqlx::query(
            "SELECT genesis_round, vout, tx, registered FROM checkpoint_genesis WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .map(|row| {
            let tx: Vec<u8> = row.try_get("tx")?;
            Ok(GenesisRow {
                genesis_round: to_u64(row.try_get("genesis_round")?),
                tx: deserialize(&tx).map_err(|_| StoreError::Corrupt("checkpoint_genesis.tx"))?,
                vout: u32::try_from(row.try_get::<i64, _>("vout")?)
                    .map_err(|_| StoreError::Corrupt("checkpoint_genesis.vout"))?,
                registered: row.try_get::<i64, _>("registered")? == 1,
            })
        })
        .transpose()
    }

    /// Records the genesis funding `tx` (output `vout` pays the genesis script) before it is
    /// broadcast, unless one is recorded already; returns the recorded one (the one to send).
    ///
    /// # Errors
    /// [`StoreError`]; then nothing may be broadcast.
    pub async fn record_genesis(
        &self,
        genesis_round: u64,
        tx: &Transaction,
        vout: u32,
    ) -> Result<GenesisRow, StoreError> {
        sqlx::query(
            "INSERT INTO checkpoint_genesis (id, genesis_round, txid, vout, tx, recorded_at, \
             registered) VALUES (1, $1, $2, $3, $4, $5, 0) ON CONFLICT (id) DO NOTHING",
        )
        .bind(int(genesis_round))
        .bind(tx.compute_txid().to_string())
        .bind(i64::from(vout))
        .bind(serialize(tx))
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.genesis()
            .await?
            .ok_or(StoreError::Corrupt("checkpoint_genesis row"))
    }

    /// Notes that the node registered the recorded genesis output.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn note_genesis_registered(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE checkpoint_genesis SET registered = 1 WHERE id = 1")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The progress row, if a step ever completed.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn progress(&self) -> Result<Option<Progress>, StoreError> {
        sqlx::query(
            "SELECT next_round, last_step_at, tip_height, latest_round FROM progress WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .map(|row| {
            Ok(Progress {
                next_round: to_u64(row.try_get("next_round")?),
                last_step_at: row.try_get("last_step_at")?,
                tip_height: u32::try_from(row.try_get::<i64, _>("tip_height")?)
                    .map_err(|_| StoreError::Corrupt("progress.tip_height"))?,
                latest_round: to_u64(row.try_get("latest_round")?),
            })
        })
        .transpose()
    }

    /// Records the progress row.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn record_progress(&self, p: &Progress) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO progress (id, next_round, last_step_at, tip_height, latest_round) \
             VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
             next_round = excluded.next_round, last_step_at = excluded.last_step_at, \
             tip_height = excluded.tip_height, latest_round = excluded.latest_round",
        )
        .bind(int(p.next_round))
        .bind(p.last_step_at)
        .bind(i64::from(p.tip_height))
        .bind(int(p.latest_round))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fiamma_finality::round::RoundHash;

    fn tx(byte: u8) -> Transaction {
        Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![bitcoin::TxIn {
                witness: bitcoin::Witness::from_slice(&[vec![byte; 64]]),
                ..bitcoin::TxIn::default()
            }],
            output: vec![],
        }
    }

    #[tokio::test]
    async fn the_first_recorded_package_and_genesis_are_the_ones_kept() {
        let store = SequencerStore::open("sqlite::memory:")
            .await
            .expect("sqlite");
        let first = store
            .record_package(8, &tx(1), &tx(2))
            .await
            .expect("recorded");
        assert_eq!((first.parent.clone(), first.child.clone()), (tx(1), tx(2)));
        let again = store.record_package(8, &tx(3), &tx(4)).await.expect("kept");
        assert_eq!(again, first);
        store
            .note_package_broadcast(8, "refused")
            .await
            .expect("noted");
        store
            .record_package(12, &tx(5), &tx(6))
            .await
            .expect("recorded");
        store
            .note_package_depth(12, 0, true, true)
            .await
            .expect("superseded");
        let pending = store.packages(true).await.expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (
                pending[0].round,
                pending[0].broadcasts,
                pending[0].last_result.as_str()
            ),
            (8, 1, "refused")
        );
        let all = store.packages(false).await.expect("all");
        assert_eq!(all.len(), 2);
        assert!(all[1].done && all[1].superseded);

        assert_eq!(store.genesis().await.expect("none"), None);
        let g = store.record_genesis(2, &tx(7), 1).await.expect("recorded");
        assert_eq!((g.genesis_round, g.vout, g.registered), (2, 1, false));
        let kept = store.record_genesis(3, &tx(8), 0).await.expect("kept");
        assert_eq!(kept, g);
        store.note_genesis_registered().await.expect("registered");
        assert!(
            store
                .genesis()
                .await
                .expect("some")
                .expect("row")
                .registered
        );
    }

    #[tokio::test]
    async fn the_first_recorded_anchor_of_a_round_is_the_one_kept() {
        let store = SequencerStore::open("sqlite::memory:")
            .await
            .expect("sqlite");
        let anchor = Anchor {
            round: 4,
            round_hash: RoundHash([1; 32]),
            certificate_hash: [2; 32],
        };
        let first = store
            .record_anchor(&anchor, &tx(1))
            .await
            .expect("recorded");
        assert_eq!(first.tx, tx(1));
        let again = store.record_anchor(&anchor, &tx(2)).await.expect("kept");
        assert_eq!(again.tx, tx(1));
        store.note_broadcast(4, "").await.expect("noted");
        store.note_depth(4, 1, false).await.expect("depth");
        assert_eq!(store.pending().await.expect("pending").len(), 1);
        store.note_depth(4, 3, true).await.expect("depth");
        assert!(store.pending().await.expect("pending").is_empty());
        let all = store.anchors().await.expect("all");
        assert_eq!(
            (all[0].broadcasts, all[0].confirmations, all[0].done),
            (1, 3, true)
        );
        store.note_proof(&[7; 32], 3).await.expect("proof");
        store.note_proof(&[7; 32], 9).await.expect("proof again");
        assert_eq!(store.proofs().await.expect("proofs")[0].round, 3);
        assert_eq!(store.progress().await.expect("none"), None);
        let p = Progress {
            next_round: 5,
            last_step_at: 1,
            tip_height: 2,
            latest_round: 6,
        };
        store.record_progress(&p).await.expect("progress");
        assert_eq!(store.progress().await.expect("some"), Some(p));
    }
}
