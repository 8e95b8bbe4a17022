//! The verifier's local store: its slashing protection (for each (network, round), the one
//! message it signed), the randomness commitments it made, the salt its randomness is bound to,
//! the rounds it disagreed on, and its progress.
//!
//! SQLite by default (WAL, `synchronous = FULL`: a commit is on disk before it returns),
//! PostgreSQL as an option; one set of statements through sqlx's `Any` driver, the schema in
//! `migrations/{sqlite,postgres}`. Protection rows are only ever inserted: nothing lowers them.

use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_finality::commitment::RandomnessCommitment;
use fiamma_role::store::unix_now as now;
use fiamma_role::store::{self as local, bounded, int, to_u64, Dialect, LocalStoreError};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");
/// The PostgreSQL schema of this role's tables.
const SCHEMA: &str = "fiamma_verifier";

/// Why the store failed or refused.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening or migrating failed.
    #[error(transparent)]
    Open(#[from] LocalStoreError),
    /// A statement failed.
    #[error("local store: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row does not decode: the file was changed by hand or is corrupt.
    #[error("local store row is corrupt: {0}")]
    Corrupt(&'static str),
    /// Slashing protection: a different message is recorded for this round.
    #[error("slashing protection: round {round} of {network} is recorded as signed for another message; refusing to sign a second one")]
    Conflict {
        /// The network.
        network: String,
        /// The round.
        round: u64,
    },
    /// The store belongs to another verifier key.
    #[error("the local store belongs to verifier {recorded} on {network}, not to this key {ours}")]
    ForeignKey {
        /// The network.
        network: String,
        /// The key recorded.
        recorded: String,
        /// The key in use.
        ours: String,
    },
}

/// A network: its chain id and module address (the signing contexts' pair).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Network {
    /// Chain id.
    pub chain_id: String,
    /// Module address.
    pub module_address: String,
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.chain_id, self.module_address)
    }
}

/// A signed round as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRound {
    /// The round.
    pub round: u64,
    /// sha256 of the vote message signed.
    pub message_hash: [u8; 32],
    /// The vote as sent (protobuf `FinalityVote`, or `CheckpointVote` for a checkpoint round);
    /// empty when imported without it.
    pub vote: Vec<u8>,
}

/// A round the verifier did not vote in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    /// The round.
    pub round: u64,
    /// `disagree` (its verdicts or round hash differ from the node's) or `unverifiable`.
    pub kind: String,
    /// What differs: the proof ids, or the reason it could not check.
    pub reason: String,
}

/// The verifier's progress, for `fiamma verifier status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Unix time of the last completed step.
    pub last_step_at: i64,
    /// The newest closed round seen.
    pub current_round: u64,
    /// Rounds up to this one were acted on.
    pub processed_round: u64,
    /// The last round its randomness covers on the node.
    pub committed_until: u64,
    /// ACTIVE, JAILED, SLASHED or UNREGISTERED.
    pub status: String,
    /// Its power in the newest round it is in the active set of.
    pub power_sat: u64,
    /// Rounds missed in the current liveness window (the node's count).
    pub missed_rounds: u64,
}

/// Counts for `fiamma verifier status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Rounds signed on the network.
    pub signed: u64,
    /// The newest round signed.
    pub last_signed: Option<u64>,
    /// Rounds not voted on for disagreement.
    pub disagreements: u64,
    /// The most recent ones.
    pub recent_disagreements: Vec<Disagreement>,
    /// Progress, if a step ever completed.
    pub progress: Option<Progress>,
}

/// The verifier's local store.
#[derive(Debug, Clone)]
pub struct VerifierStore {
    pool: AnyPool,
    dialect: Dialect,
}

fn digest(bytes: &[u8], what: &'static str) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| StoreError::Corrupt(what))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl VerifierStore {
    /// Opens (creating a SQLite file when missing) and migrates the store at `url`.
    ///
    /// # Errors
    /// [`StoreError::Open`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let (pool, dialect) = local::open(url, SCHEMA, &SQLITE, &POSTGRES).await?;
        Ok(VerifierStore { pool, dialect })
    }

    /// Which database it runs on.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The randomness salt of `network` for `key`; `None` when this store never joined it.
    ///
    /// # Errors
    /// [`StoreError::ForeignKey`] when the network was joined by another key.
    pub async fn salt(
        &self,
        network: &Network,
        key: &XOnlyPublicKey,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        let row = sqlx::query(
            "SELECT verifier_pk, randomness_salt FROM network \
             WHERE chain_id = $1 AND module_address = $2",
        )
        .bind(&network.chain_id)
        .bind(&network.module_address)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let recorded: Vec<u8> = row.try_get("verifier_pk")?;
        if recorded != key.serialize() {
            return Err(StoreError::ForeignKey {
                network: network.to_string(),
                recorded: hex::encode(recorded),
                ours: key.to_string(),
            });
        }
        let salt: Vec<u8> = row.try_get("randomness_salt")?;
        Ok(Some(digest(&salt, "randomness_salt")?))
    }

    /// Records that `key` joins `network` with randomness `salt`; keeps an existing row (and
    /// returns its salt) so that saying "new network" twice changes nothing.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn join(
        &self,
        network: &Network,
        key: &XOnlyPublicKey,
        salt: &[u8; 32],
    ) -> Result<[u8; 32], StoreError> {
        sqlx::query(
            "INSERT INTO network (chain_id, module_address, verifier_pk, randomness_salt, \
             created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (chain_id, module_address) DO NOTHING",
        )
        .bind(&network.chain_id)
        .bind(&network.module_address)
        .bind(key.serialize().to_vec())
        .bind(salt.to_vec())
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.salt(network, key)
            .await?
            .ok_or(StoreError::Corrupt("network row"))
    }

    /// Records a commitment before it is sent; recording it again changes nothing.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn record_commitment(
        &self,
        network: &Network,
        c: &RandomnessCommitment,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO commitment (chain_id, module_address, start_round, num_pub_rand, root, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (chain_id, module_address, start_round) DO NOTHING",
        )
        .bind(&network.chain_id)
        .bind(&network.module_address)
        .bind(int(c.start()))
        .bind(int(c.num()))
        .bind(c.root().to_vec())
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The commitments made on `network`, by start round.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn commitments(
        &self,
        network: &Network,
    ) -> Result<Vec<RandomnessCommitment>, StoreError> {
        sqlx::query(
            "SELECT start_round, num_pub_rand, root FROM commitment \
             WHERE chain_id = $1 AND module_address = $2 ORDER BY start_round",
        )
        .bind(&network.chain_id)
        .bind(&network.module_address)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row| {
            let root: Vec<u8> = row.try_get("root")?;
            RandomnessCommitment::new(
                to_u64(row.try_get("start_round")?),
                to_u64(row.try_get("num_pub_rand")?),
                digest(&root, "commitment root")?,
            )
            .map_err(|_| StoreError::Corrupt("commitment range"))
        })
        .collect()
    }

    /// The record of `round`, if it was signed.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn signed(
        &self,
        network: &Network,
        round: u64,
    ) -> Result<Option<SignedRound>, StoreError> {
        let row = sqlx::query(
            "SELECT message_hash, vote FROM signed \
             WHERE chain_id = $1 AND module_address = $2 AND round = $3",
        )
        .bind(&network.chain_id)
        .bind(&network.module_address)
        .bind(int(round))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let hash: Vec<u8> = row.try_get("message_hash")?;
            Ok(SignedRound {
                round,
                message_hash: digest(&hash, "message_hash")?,
                vote: row.try_get("vote")?,
            })
        })
        .transpose()
    }

    /// Slashing protection: records that `message_hash` is the one message signed for
    /// `round`, durably, before the vote leaves the process. The same message again is
    /// accepted (a re-send); a different one is [`StoreError::Conflict`].
    ///
    /// # Errors
    /// [`StoreError::Conflict`], or a database failure (then nothing may be sent).
    pub async fn protect(&self, network: &Network, record: &SignedRound) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO signed (chain_id, module_address, round, message_hash, vote, signed_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&network.chain_id)
        .bind(&network.module_address)
        .bind(int(record.round))
        .bind(record.message_hash.to_vec())
        .bind(record.vote.clone())
        .bind(now())
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => match self.signed(network, record.round).await? {
                Some(existing) if existing.message_hash == record.message_hash => Ok(()),
                _ => Err(StoreError::Conflict {
                    network: network.to_string(),
                    round: record.round,
                }),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Every signed round of `network`, by round.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn signed_rounds(&self, network: &Network) -> Result<Vec<SignedRound>, StoreError> {
        sqlx::query(
            "SELECT round, message_hash, vote FROM signed \
             WHERE chain_id = $1 AND module_address = $2 ORDER BY round",
        )
        .bind(&network.chain_id)
        .bind(&network.module_address)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row| {
            let hash: Vec<u8> = row.try_get("message_hash")?;
            Ok(SignedRound {
                round: to_u64(row.try_get("round")?),
                message_hash: digest(&hash, "message_hash")?,
                vote: row.try_get("vote")?,
            })
        })
        .collect()
    }

    /// The networks this store joined.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn networks(&self) -> Result<Vec<(Network, XOnlyPublicKey, [u8; 32])>, StoreError> {
        sqlx::query(
            "SELECT chain_id, module_address, verifier_pk, randomness_salt FROM network \
             ORDER BY chain_id, module_address",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row| {
            let pk: Vec<u8> = row.try_get("verifier_pk")?;
            let salt: Vec<u8> = row.try_get("randomness_salt")?;
            Ok((
                Network {
                    chain_id: row.try_get("chain_id")?,
                    module_address: row.try_get("module_address")?,
                },
                XOnlyPublicKey::from_slice(&pk).map_err(|_| StoreError::Corrupt("verifier_pk"))?,
                digest(&salt, "randomness_salt")?,
            ))
        })
        .collect()
    }

    /// Records why `round` got no vote (the first reason is kept).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn record_disagreement(
        &self,
        network: &Network,
        d: &Disagreement,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO disagreement (chain_id, module_address, round, kind, reason, at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (chain_id, module_address, round) DO NOTHING",
        )
        .bind(&network.chain_id)
        .bind(&network.module_address)
        .bind(int(d.round))
        .bind(&d.kind)
        .bind(bounded(&d.reason))
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the state of the last completed step.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn record_progress(&self, p: &Progress) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO progress (id, last_step_at, current_round, processed_round, \
             committed_until, status, power_sat, missed_rounds) \
             VALUES (1, $1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET last_step_at = excluded.last_step_at, \
             current_round = excluded.current_round, processed_round = excluded.processed_round, \
             committed_until = excluded.committed_until, status = excluded.status, \
             power_sat = excluded.power_sat, missed_rounds = excluded.missed_rounds",
        )
        .bind(p.last_step_at)
        .bind(int(p.current_round))
        .bind(int(p.processed_round))
        .bind(int(p.committed_until))
        .bind(&p.status)
        .bind(int(p.power_sat))
        .bind(int(p.missed_rounds))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The progress of the last completed step.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn progress(&self) -> Result<Option<Progress>, StoreError> {
        Ok(sqlx::query(
            "SELECT last_step_at, current_round, processed_round, committed_until, status, \
             power_sat, missed_rounds FROM progress WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .map(|row| {
            Ok::<_, sqlx::Error>(Progress {
                last_step_at: row.try_get("last_step_at")?,
                current_round: to_u64(row.try_get("current_round")?),
                processed_round: to_u64(row.try_get("processed_round")?),
                committed_until: to_u64(row.try_get("committed_until")?),
                status: row.try_get("status")?,
                power_sat: to_u64(row.try_get("power_sat")?),
                missed_rounds: to_u64(row.try_get("missed_rounds")?),
            })
        })
        .transpose()?)
    }

    /// Counts, the `limit` most recent disagreements and the progress on `network`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn summary(&self, network: &Network, limit: u32) -> Result<Summary, StoreError> {
        let counts = sqlx::query(
            "SELECT COUNT(*) AS signed, CAST(COALESCE(MAX(round), -1) AS BIGINT) AS last \
             FROM signed WHERE chain_id = $1 AND module_address = $2",
        )
        .bind(&network.chain_id)
        .bind(&network.module_address)
        .fetch_one(&self.pool)
        .await?;
        let disagreements = sqlx::query(
            "SELECT COUNT(*) AS n FROM disagreement WHERE chain_id = $1 AND module_address = $2",
        )
        .bind(&network.chain_id)
        .bind(&network.module_address)
        .fetch_one(&self.pool)
        .await?;
        let recent = sqlx::query(
            "SELECT round, kind, reason FROM disagreement \
             WHERE chain_id = $1 AND module_address = $2 ORDER BY round DESC LIMIT $3",
        )
        .bind(&network.chain_id)
        .bind(&network.module_address)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row| {
            Ok(Disagreement {
                round: to_u64(row.try_get("round")?),
                kind: row.try_get("kind")?,
                reason: row.try_get("reason")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let last: i64 = counts.try_get("last")?;
        Ok(Summary {
            signed: to_u64(counts.try_get("signed")?),
            last_signed: u64::try_from(last).ok(),
            disagreements: to_u64(disagreements.try_get("n")?),
            recent_disagreements: recent,
            progress: self.progress().await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Keypair, SECP256K1};

    fn key(seed: u8) -> XOnlyPublicKey {
        Keypair::from_seckey_slice(SECP256K1, &[seed; 32])
            .expect("valid")
            .x_only_public_key()
            .0
    }

    fn net() -> Network {
        Network {
            chain_id: "c".into(),
            module_address: "m".into(),
        }
    }

    fn record(round: u64, hash: u8) -> SignedRound {
        SignedRound {
            round,
            message_hash: [hash; 32],
            vote: vec![hash],
        }
    }

    #[tokio::test]
    async fn a_second_message_for_a_round_is_refused_across_a_reopen() {
        let dir = tempfile::tempdir().expect("dir");
        let url = local::sqlite_url(&dir.path().join("v.db"));
        let store = VerifierStore::open(&url).await.expect("open");
        store.protect(&net(), &record(5, 1)).await.expect("first");
        store
            .protect(&net(), &record(5, 1))
            .await
            .expect("same again");
        drop(store);
        let store = VerifierStore::open(&url).await.expect("reopen");
        let refused = store.protect(&net(), &record(5, 2)).await;
        assert!(
            matches!(refused, Err(StoreError::Conflict { round: 5, .. })),
            "{refused:?}"
        );
        assert_eq!(
            store.signed(&net(), 5).await.expect("read"),
            Some(record(5, 1))
        );
        // Another network has its own rounds.
        let other = Network {
            chain_id: "c".into(),
            module_address: "m2".into(),
        };
        store
            .protect(&other, &record(5, 2))
            .await
            .expect("other network");
    }

    #[tokio::test]
    async fn joining_keeps_the_first_salt_and_refuses_another_key() {
        let store = VerifierStore::open("sqlite::memory:").await.expect("open");
        assert_eq!(store.salt(&net(), &key(1)).await.expect("read"), None);
        assert_eq!(
            store.join(&net(), &key(1), &[9; 32]).await.expect("join"),
            [9; 32]
        );
        assert_eq!(
            store.join(&net(), &key(1), &[8; 32]).await.expect("join"),
            [9; 32]
        );
        assert!(matches!(
            store.salt(&net(), &key(2)).await,
            Err(StoreError::ForeignKey { .. })
        ));
    }
}
