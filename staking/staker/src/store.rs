//! The staker's local store: each delegation it created, as registered, with the step it
//! reached, and the wallet's changesets beside it (one database). SQLite by default,
//! PostgreSQL as an option, through one set of statements (sqlx `Any`).
//!
//! A delegation is written before it is registered with the node and each step before the
//! action it records (the staking, unbonding or withdrawal transaction is stored before it is
//! broadcast), so a crash at any point resumes without funding twice or losing track.

use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::psbt::Psbt;
use bitcoin::secp256k1::{schnorr, XOnlyPublicKey};
use bitcoin::{Amount, OutPoint, Transaction};
use fiamma_proto::codec;
use fiamma_proto::staking::v1 as pb;
use fiamma_role::store::unix_now as now;
use fiamma_role::store::{self as local, Dialect, LocalStoreError};
use fiamma_staking::registration::Registration;
use fiamma_wallet::store::role_migrator;
use fiamma_wallet::{WalletStore, WalletStoreError};
use prost::Message;
use sqlx::{AnyPool, Row};

use crate::plan::WithdrawFrom;

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
    #[error("staker store: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row does not decode.
    #[error("staker store row {staking_txid} is corrupt: {what}")]
    Corrupt {
        /// The delegation.
        staking_txid: String,
        /// What.
        what: String,
    },
    /// A registration cannot be encoded.
    #[error("cannot record delegation {staking_txid}: {reason}")]
    Encode {
        /// The delegation.
        staking_txid: String,
        /// Why.
        reason: String,
    },
    /// A second record of one delegation.
    #[error("delegation {0} is recorded already")]
    Duplicate(String),
}

/// How far the staker carried a delegation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Recorded; CreateDelegation next.
    Registered,
    /// The node has it; the staking transaction waits for the committee.
    Submitted,
    /// The staking transaction was broadcast.
    Broadcast,
    /// The co-signed unbonding transaction was broadcast.
    Unbonding,
    /// A withdrawal was broadcast.
    Withdrawing,
    /// The withdrawal is confirmed: nothing left to do.
    Done,
}

impl Step {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Registered => "registered",
            Step::Submitted => "submitted",
            Step::Broadcast => "broadcast",
            Step::Unbonding => "unbonding",
            Step::Withdrawing => "withdrawing",
            Step::Done => "done",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "registered" => Step::Registered,
            "submitted" => Step::Submitted,
            "broadcast" => Step::Broadcast,
            "unbonding" => Step::Unbonding,
            "withdrawing" => Step::Withdrawing,
            "done" => Step::Done,
            _ => return None,
        })
    }
}

fn withdraw_from(s: &str) -> Option<WithdrawFrom> {
    Some(match s {
        "staking" => WithdrawFrom::Staking,
        "unbonding" => WithdrawFrom::Unbonding,
        "slashing_change" => WithdrawFrom::SlashingChange,
        "unbonding_slashing_change" => WithdrawFrom::UnbondingSlashingChange,
        _ => return None,
    })
}

/// One delegation as the staker keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StakeRecord {
    /// The staking txid (the delegation's id).
    pub staking_txid: String,
    /// The registration.
    pub registration: Registration,
    /// The params version it was planned under.
    pub params_version: u32,
    /// The signed staking transaction.
    pub staking_tx: Transaction,
    /// The staker's unbonding signature.
    pub unbonding_sig: schnorr::Signature,
    /// The step reached.
    pub step: Step,
    /// Whether the owner asked to unbond.
    pub unbond_requested: bool,
    /// The node's last reported status (lower-case word, empty before the first report).
    pub node_status: String,
    /// What the withdrawal spends, once chosen.
    pub withdraw_from: Option<WithdrawFrom>,
    /// The withdrawal, once signed (stored before it is broadcast).
    pub withdraw_tx: Option<Transaction>,
    /// A withdrawal PSBT waiting for the external signer.
    pub withdraw_psbt: Option<String>,
    /// Unix time of the record.
    pub created_at: i64,
}

impl StakeRecord {
    /// The inputs of the staking transaction: coins the wallet must not spend elsewhere
    /// while the stake waits for the committee.
    pub fn funding_inputs(&self) -> Vec<OutPoint> {
        self.staking_tx
            .input
            .iter()
            .map(|i| i.previous_output)
            .collect()
    }
}

/// A watch-only wallet's stake, planned and exported to its signer, not yet signed.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStake {
    /// The funding transaction's id (the delegation's id to be).
    pub staking_txid: String,
    /// The params version it was planned under.
    pub params_version: u32,
    /// The verifier.
    pub verifier: XOnlyPublicKey,
    /// The staked value.
    pub value: Amount,
    /// Staking time `T`, in blocks.
    pub staking_time: u32,
    /// The fee of each slashing transaction.
    pub slashing_fee: Amount,
    /// The wallet's unsigned funding PSBT.
    pub funding: Psbt,
}

impl PlannedStake {
    /// The coins the funding transaction spends: locked while the signer holds the plan.
    pub fn funding_inputs(&self) -> Vec<OutPoint> {
        self.funding
            .unsigned_tx
            .input
            .iter()
            .map(|i| i.previous_output)
            .collect()
    }
}

fn sat(value: Amount, staking_txid: &str) -> Result<i64, StoreError> {
    i64::try_from(value.to_sat()).map_err(|_| StoreError::Encode {
        staking_txid: staking_txid.to_owned(),
        reason: format!("{value} is out of range"),
    })
}

/// The staker's local store.
#[derive(Debug, Clone)]
pub struct StakerStore {
    pool: AnyPool,
    dialect: Dialect,
}

const COLUMNS: &str = "staking_txid, registration, params_version, staking_tx, unbonding_sig, \
    step, unbond_requested, node_status, withdraw_from, withdraw_tx, withdraw_psbt, created_at";

impl StakerStore {
    /// Opens and migrates the store at `url` (`sqlite:` or `postgres:`), the wallet's table
    /// included.
    ///
    /// # Errors
    /// [`StoreError::Open`] or [`StoreError::Wallet`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let sqlite = role_migrator(sqlx::migrate!("./migrations/sqlite"));
        let postgres = role_migrator(sqlx::migrate!("./migrations/postgres"));
        let (pool, dialect) = local::open(url, "fiamma_staker", &sqlite, &postgres).await?;
        fiamma_wallet::store::migrator(dialect)
            .run(&pool)
            .await
            .map_err(WalletStoreError::from)?;
        Ok(StakerStore { pool, dialect })
    }

    /// The wallet named `name` in this store.
    ///
    /// # Errors
    /// [`StoreError::Wallet`].
    pub async fn wallet(&self, name: &str) -> Result<WalletStore, StoreError> {
        Ok(WalletStore::on_pool(self.pool.clone(), self.dialect, name).await?)
    }

    /// Records a new delegation at [`Step::Registered`].
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when it is recorded already, [`StoreError`] otherwise.
    pub async fn record(
        &self,
        registration: &Registration,
        params_version: u32,
        staking_tx: &Transaction,
        unbonding_sig: &schnorr::Signature,
    ) -> Result<String, StoreError> {
        let staking_txid = registration.staking_tx.compute_txid().to_string();
        let request =
            codec::create_delegation_request(registration).map_err(|e| StoreError::Encode {
                staking_txid: staking_txid.clone(),
                reason: e.to_string(),
            })?;
        if self.get(&staking_txid).await?.is_some() {
            return Err(StoreError::Duplicate(staking_txid));
        }
        let t = now();
        sqlx::query(
            "INSERT INTO delegation (staking_txid, registration, params_version, staking_tx, \
             unbonding_sig, step, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&staking_txid)
        .bind(request.encode_to_vec())
        .bind(i64::from(params_version))
        .bind(serialize(staking_tx))
        .bind(unbonding_sig.as_ref().to_vec())
        .bind(Step::Registered.as_str())
        .bind(t)
        .execute(&self.pool)
        .await?;
        Ok(staking_txid)
    }

    fn decode(row: &sqlx::any::AnyRow) -> Result<StakeRecord, StoreError> {
        let staking_txid: String = row.try_get("staking_txid")?;
        let corrupt = |what: &str| StoreError::Corrupt {
            staking_txid: staking_txid.clone(),
            what: what.to_owned(),
        };
        let bytes: Vec<u8> = row.try_get("registration")?;
        let request = pb::CreateDelegationRequest::decode(bytes.as_slice())
            .map_err(|_| corrupt("registration"))?;
        let registration =
            codec::registration_of_request(&request).map_err(|e| corrupt(&e.to_string()))?;
        let staking_tx: Vec<u8> = row.try_get("staking_tx")?;
        let staking_tx: Transaction =
            deserialize(&staking_tx).map_err(|_| corrupt("staking_tx"))?;
        let sig: Vec<u8> = row.try_get("unbonding_sig")?;
        let unbonding_sig =
            schnorr::Signature::from_slice(&sig).map_err(|_| corrupt("unbonding_sig"))?;
        let step: String = row.try_get("step")?;
        let step = Step::parse(&step).ok_or_else(|| corrupt("step"))?;
        let from: Option<String> = row.try_get("withdraw_from")?;
        let withdraw_from = match from {
            Some(s) => Some(withdraw_from(&s).ok_or_else(|| corrupt("withdraw_from"))?),
            None => None,
        };
        let withdraw: Option<Vec<u8>> = row.try_get("withdraw_tx")?;
        let withdraw_tx = match withdraw {
            Some(b) => Some(deserialize(&b).map_err(|_| corrupt("withdraw_tx"))?),
            None => None,
        };
        let version: i64 = row.try_get("params_version")?;
        let requested: i64 = row.try_get("unbond_requested")?;
        Ok(StakeRecord {
            params_version: u32::try_from(version).map_err(|_| corrupt("params_version"))?,
            registration,
            staking_tx,
            unbonding_sig,
            step,
            unbond_requested: requested != 0,
            node_status: row.try_get("node_status")?,
            withdraw_from,
            withdraw_tx,
            withdraw_psbt: row.try_get("withdraw_psbt")?,
            created_at: row.try_get("created_at")?,
            staking_txid,
        })
    }

    /// The delegation `staking_txid`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn get(&self, staking_txid: &str) -> Result<Option<StakeRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM delegation WHERE staking_txid = $1"
        ))
        .bind(staking_txid)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::decode).transpose()
    }

    /// Every delegation, oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn all(&self) -> Result<Vec<StakeRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM delegation ORDER BY created_at, staking_txid"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::decode).collect()
    }

    /// Moves `staking_txid` to `step` (never back).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn set_step(&self, staking_txid: &str, step: Step) -> Result<(), StoreError> {
        let Some(record) = self.get(staking_txid).await? else {
            return Ok(());
        };
        if step <= record.step {
            return Ok(());
        }
        sqlx::query("UPDATE delegation SET step = $1, updated_at = $2 WHERE staking_txid = $3")
            .bind(step.as_str())
            .bind(now())
            .bind(staking_txid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the node's status of `staking_txid`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn set_node_status(
        &self,
        staking_txid: &str,
        status: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE delegation SET node_status = $1, updated_at = $2 WHERE staking_txid = $3",
        )
        .bind(status)
        .bind(now())
        .bind(staking_txid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the owner's request to unbond `staking_txid`; false when it is not recorded.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn request_unbond(&self, staking_txid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE delegation SET unbond_requested = 1, updated_at = $1 WHERE staking_txid = $2",
        )
        .bind(now())
        .bind(staking_txid)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a withdrawal PSBT waiting for the external signer.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn set_withdraw_psbt(
        &self,
        staking_txid: &str,
        from: WithdrawFrom,
        psbt: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE delegation SET withdraw_from = $1, withdraw_psbt = $2, updated_at = $3 \
             WHERE staking_txid = $4",
        )
        .bind(from.as_str())
        .bind(psbt)
        .bind(now())
        .bind(staking_txid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the signed withdrawal (before it is broadcast) and moves to
    /// [`Step::Withdrawing`].
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn record_withdraw(
        &self,
        staking_txid: &str,
        from: WithdrawFrom,
        tx: &Transaction,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE delegation SET withdraw_from = $1, withdraw_tx = $2, withdraw_psbt = NULL, \
             step = $3, updated_at = $4 WHERE staking_txid = $5",
        )
        .bind(from.as_str())
        .bind(serialize(tx))
        .bind(Step::Withdrawing.as_str())
        .bind(now())
        .bind(staking_txid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a watch-only wallet's planned stake (again: a no-op).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn record_plan(&self, plan: &PlannedStake) -> Result<(), StoreError> {
        let txid = &plan.staking_txid;
        sqlx::query(
            "INSERT INTO planned_stake (staking_txid, params_version, verifier_pk, value_sat, \
             staking_time, slashing_fee_sat, funding_psbt, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (staking_txid) DO NOTHING",
        )
        .bind(txid)
        .bind(i64::from(plan.params_version))
        .bind(plan.verifier.serialize().to_vec())
        .bind(sat(plan.value, txid)?)
        .bind(i64::from(plan.staking_time))
        .bind(sat(plan.slashing_fee, txid)?)
        .bind(plan.funding.serialize())
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn decode_plan(row: &sqlx::any::AnyRow) -> Result<PlannedStake, StoreError> {
        let staking_txid: String = row.try_get("staking_txid")?;
        let corrupt = |what: &str| StoreError::Corrupt {
            staking_txid: staking_txid.clone(),
            what: format!("planned stake {what}"),
        };
        let int = |name: &str| -> Result<i64, StoreError> { Ok(row.try_get(name)?) };
        let u32_of =
            |name: &str| int(name).and_then(|v| u32::try_from(v).map_err(|_| corrupt(name)));
        let sat_of = |name: &str| {
            int(name).and_then(|v| {
                u64::try_from(v)
                    .map(Amount::from_sat)
                    .map_err(|_| corrupt(name))
            })
        };
        let key: Vec<u8> = row.try_get("verifier_pk")?;
        let psbt: Vec<u8> = row.try_get("funding_psbt")?;
        Ok(PlannedStake {
            params_version: u32_of("params_version")?,
            verifier: XOnlyPublicKey::from_slice(&key).map_err(|_| corrupt("verifier_pk"))?,
            value: sat_of("value_sat")?,
            staking_time: u32_of("staking_time")?,
            slashing_fee: sat_of("slashing_fee_sat")?,
            funding: Psbt::deserialize(&psbt).map_err(|_| corrupt("funding_psbt"))?,
            staking_txid,
        })
    }

    /// The planned stake `staking_txid`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn plan(&self, staking_txid: &str) -> Result<Option<PlannedStake>, StoreError> {
        let row = sqlx::query(
            "SELECT staking_txid, params_version, verifier_pk, value_sat, staking_time, \
             slashing_fee_sat, funding_psbt FROM planned_stake WHERE staking_txid = $1",
        )
        .bind(staking_txid)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::decode_plan).transpose()
    }

    /// Every planned stake, oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn plans(&self) -> Result<Vec<PlannedStake>, StoreError> {
        let rows = sqlx::query(
            "SELECT staking_txid, params_version, verifier_pk, value_sat, staking_time, \
             slashing_fee_sat, funding_psbt FROM planned_stake ORDER BY created_at, staking_txid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::decode_plan).collect()
    }

    /// Forgets the planned stake `staking_txid` (signed and recorded as a delegation).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn forget_plan(&self, staking_txid: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM planned_stake WHERE staking_txid = $1")
            .bind(staking_txid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::{absolute, transaction, TxIn, Txid};

    fn planned(seed: u8) -> PlannedStake {
        let tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_byte_array([seed; 32]), 3),
                ..TxIn::default()
            }],
            output: Vec::new(),
        };
        let key = bitcoin::secp256k1::Keypair::from_seckey_slice(
            bitcoin::secp256k1::SECP256K1,
            &[seed; 32],
        )
        .expect("key")
        .x_only_public_key()
        .0;
        PlannedStake {
            staking_txid: tx.compute_txid().to_string(),
            params_version: 0,
            verifier: key,
            value: Amount::from_sat(1_000_000),
            staking_time: 100,
            slashing_fee: Amount::from_sat(1_000),
            funding: Psbt::from_unsigned_tx(tx).expect("psbt"),
        }
    }

    #[tokio::test]
    async fn a_planned_stake_outlives_the_store_until_forgotten() {
        let dir = tempfile::tempdir().expect("dir");
        let url = local::sqlite_url(&dir.path().join("staker.db"));
        let (a, b) = (planned(1), planned(2));
        {
            let store = StakerStore::open(&url).await.expect("opens");
            store.record_plan(&a).await.expect("records");
            store.record_plan(&b).await.expect("records");
            store.record_plan(&a).await.expect("again: a no-op");
        }
        let store = StakerStore::open(&url).await.expect("reopens");
        let plans = store.plans().await.expect("plans");
        assert_eq!(plans.len(), 2);
        assert!(plans.contains(&a) && plans.contains(&b));
        assert_eq!(
            store.plan(&a.staking_txid).await.expect("reads"),
            Some(a.clone())
        );
        assert_eq!(
            a.funding_inputs(),
            vec![OutPoint::new(Txid::from_byte_array([1; 32]), 3)]
        );
        store.forget_plan(&a.staking_txid).await.expect("forgets");
        assert_eq!(store.plan(&a.staking_txid).await.expect("reads"), None);
        assert_eq!(store.plans().await.expect("plans"), vec![b]);
    }
}
