//! Read-only queries of the finality module, straight from the pool.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_proto::finality::v1 as pb;
use prost::Message;
use sqlx::Row;

use super::errors::FinalityQueryError;
use super::store::{self, to_u64, Commitments, RoundRow};
use super::{wire, FinalityModule};
use crate::node::store::StoreError;

/// One certificate entry as `Certificate::encode` writes it: key (32) ‖ pr (32) ‖ s (32).
const CERTIFICATE_ENTRY_LEN: usize = 96;

/// Default number of rounds per Rounds page.
pub const DEFAULT_ROUNDS: u32 = 100;
/// Largest number of rounds per Rounds page.
pub const MAX_ROUNDS: u32 = 1000;
/// Default number of proofs per RoundProofs page.
pub const DEFAULT_ROUND_PROOFS: u32 = 20;
/// Largest number of proofs per RoundProofs page (each at most a few kB under the size caps).
pub const MAX_ROUND_PROOFS: u32 = 100;

fn round_status(text: &str) -> Result<pb::RoundStatus, StoreError> {
    match text {
        "OPEN" => Ok(pb::RoundStatus::Open),
        "FINAL" => Ok(pb::RoundStatus::Final),
        "EXPIRED" => Ok(pb::RoundStatus::Expired),
        other => Err(StoreError::Corrupt {
            column: "rounds.status",
            reason: format!("unknown status {other:?}"),
        }),
    }
}

fn certificate(encoded: &[u8]) -> pb::Certificate {
    pb::Certificate {
        entries: encoded
            .chunks_exact(CERTIFICATE_ENTRY_LEN)
            .map(|e| pb::CertificateEntry {
                verifier_btc_pk: e[..32].to_vec(),
                public_randomness: e[32..64].to_vec(),
                signature: e[64..].to_vec(),
            })
            .collect(),
        encoded: encoded.to_vec(),
        digest: sha256::Hash::hash(encoded).to_byte_array().to_vec(),
    }
}

fn summary(r: &RoundRow, proofs: u32) -> Result<pb::RoundSummary, StoreError> {
    Ok(pb::RoundSummary {
        round: r.round,
        round_hash: r.round_hash.to_vec(),
        status: round_status(&r.status)? as i32,
        proofs,
        total_power_sat: r.total_power,
        voted_power_sat: r.voted_power,
    })
}

impl FinalityModule {
    /// One closed round with its results, active set, votes and certificate.
    ///
    /// # Errors
    /// [`FinalityQueryError::NotFound`] for a round not closed.
    pub async fn round(&self, round: u64) -> Result<pb::Round, FinalityQueryError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let r =
            store::round(&mut conn, round)
                .await?
                .ok_or_else(|| FinalityQueryError::NotFound {
                    what: format!("round {round}"),
                })?;
        let results = sqlx::query(
            "SELECT proof_id, valid FROM round_results WHERE round = $1 ORDER BY position",
        )
        .bind(store::to_i64("round", round)?)
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from)?
        .iter()
        .map(|row| {
            Ok(pb::ProofResult {
                proof_id: row.try_get("proof_id")?,
                valid: row.try_get("valid")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(StoreError::from)?;
        let members = store::members(&mut conn, round).await?;
        let votes = store::votes_of_round(&mut conn, round).await?;
        Ok(pb::Round {
            round: r.round,
            round_hash: r.round_hash.to_vec(),
            prev_round_hash: r.prev_round_hash.to_vec(),
            results,
            status: round_status(&r.status)? as i32,
            active_set: members
                .iter()
                .map(|(pk, power)| pb::PowerEntry {
                    verifier_btc_pk: pk.serialize().to_vec(),
                    power_sat: *power,
                })
                .collect(),
            total_power_sat: r.total_power,
            voted_power_sat: r.voted_power,
            votes: votes
                .iter()
                .map(|(v, agrees)| pb::RecordedVote {
                    vote: Some(wire::vote_to_pb(v)),
                    agrees: *agrees,
                })
                .collect(),
            certificate: r.certificate.as_deref().map(certificate),
        })
    }

    /// Up to `limit` rounds (0: [`DEFAULT_ROUNDS`], capped at [`MAX_ROUNDS`]) from `from` on.
    ///
    /// # Errors
    /// [`FinalityQueryError::Store`] when the store fails.
    pub async fn rounds(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<pb::RoundSummary>, FinalityQueryError> {
        let limit = match limit {
            0 => DEFAULT_ROUNDS,
            n => n.min(MAX_ROUNDS),
        };
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        Ok(store::rounds_from(&mut conn, from, limit)
            .await?
            .iter()
            .map(|(r, proofs)| summary(r, *proofs))
            .collect::<Result<_, _>>()?)
    }

    /// Up to `limit` proofs (0: [`DEFAULT_ROUND_PROOFS`], capped at [`MAX_ROUND_PROOFS`]) of a
    /// closed round with their bytes and verdicts, from position `from` on.
    ///
    /// # Errors
    /// [`FinalityQueryError::NotFound`] for a round not closed.
    pub async fn round_proofs(
        &self,
        round: u64,
        from: u32,
        limit: u32,
    ) -> Result<Vec<pb::RoundProof>, FinalityQueryError> {
        let limit = match limit {
            0 => DEFAULT_ROUND_PROOFS,
            n => n.min(MAX_ROUND_PROOFS),
        };
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        if store::round(&mut conn, round).await?.is_none() {
            return Err(FinalityQueryError::NotFound {
                what: format!("round {round}"),
            });
        }
        let position = |p: i32| {
            u32::try_from(p).map_err(|_| StoreError::Corrupt {
                column: "round_results.position",
                reason: format!("{p} is negative"),
            })
        };
        let system = |code: i16| {
            u32::try_from(code).map_err(|_| StoreError::Corrupt {
                column: "round_results.proof_system",
                reason: format!("{code} is negative"),
            })
        };
        let rows = sqlx::query(
            "SELECT position, proof_id, proof_system, verifying_key, proof, public_inputs, valid \
             FROM round_results WHERE round = $1 AND position >= $2 ORDER BY position LIMIT $3",
        )
        .bind(store::to_i64("round", round)?)
        .bind(i64::from(from))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        let mut proofs = Vec::with_capacity(rows.len());
        for row in &rows {
            proofs.push(pb::RoundProof {
                position: position(row.try_get("position").map_err(StoreError::from)?)?,
                proof_id: row.try_get("proof_id").map_err(StoreError::from)?,
                proof_system: system(row.try_get("proof_system").map_err(StoreError::from)?)?,
                verifying_key: row.try_get("verifying_key").map_err(StoreError::from)?,
                proof: row.try_get("proof").map_err(StoreError::from)?,
                public_inputs: row.try_get("public_inputs").map_err(StoreError::from)?,
                valid: row.try_get("valid").map_err(StoreError::from)?,
            });
        }
        Ok(proofs)
    }

    /// The finality record of a verifier.
    ///
    /// # Errors
    /// [`FinalityQueryError::NotFound`] when the finality module holds nothing for the key.
    pub async fn verifier(
        &self,
        pk: &XOnlyPublicKey,
    ) -> Result<pb::FinalityVerifier, FinalityQueryError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let record = store::verifier_record(&mut tx, pk, Commitments::All, &self.params.liveness)
            .await?
            .ok_or_else(|| FinalityQueryError::NotFound {
                what: format!("finality record of verifier {pk}"),
            })?;
        tx.rollback().await.map_err(StoreError::from)?;
        let (status, since) = match record.status() {
            fiamma_finality::rounds::VerifierStatus::Active => (pb::VerifierStatus::Active, 0),
            fiamma_finality::rounds::VerifierStatus::Jailed { since } => {
                (pb::VerifierStatus::Jailed, since)
            }
            fiamma_finality::rounds::VerifierStatus::Slashed { since } => {
                (pb::VerifierStatus::Slashed, since)
            }
        };
        Ok(pb::FinalityVerifier {
            verifier_btc_pk: pk.serialize().to_vec(),
            status: status as i32,
            since_round: since,
            commitments: record
                .commitments()
                .iter()
                .map(|c| pb::RandomnessCommitment {
                    start_round: c.start(),
                    num_pub_rand: c.num(),
                    root: c.root().to_vec(),
                })
                .collect(),
            missed_rounds: record.signing_window().missed(),
        })
    }

    /// The equivocation evidence against a verifier.
    ///
    /// # Errors
    /// [`FinalityQueryError::NotFound`] when there is none.
    pub async fn evidence(&self, pk: &XOnlyPublicKey) -> Result<pb::Evidence, FinalityQueryError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let row = sqlx::query(
            "SELECT round, first_vote, second_vote, secret_key, slashed_in_round \
             FROM slashing_records WHERE verifier = $1 AND reason = 'equivocation'",
        )
        .bind(pk.serialize().as_slice())
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::from)?
        .ok_or_else(|| FinalityQueryError::NotFound {
            what: format!("equivocation evidence against verifier {pk}"),
        })?;
        let decode = |column: &'static str| -> Result<pb::FinalityVote, StoreError> {
            let bytes: Vec<u8> = row.try_get(column)?;
            pb::FinalityVote::decode(bytes.as_slice()).map_err(|e| StoreError::Corrupt {
                column,
                reason: e.to_string(),
            })
        };
        let round: Option<i64> = row.try_get("round").map_err(StoreError::from)?;
        Ok(pb::Evidence {
            verifier_btc_pk: pk.serialize().to_vec(),
            round: to_u64("round", round.unwrap_or(0))?,
            first: Some(decode("first_vote")?),
            second: Some(decode("second_vote")?),
            extracted_secret_key: row.try_get("secret_key").map_err(StoreError::from)?,
            slashed_in_round: to_u64(
                "slashed_in_round",
                row.try_get("slashed_in_round").map_err(StoreError::from)?,
            )?,
        })
    }

    /// Every verifier the finality module slashed, with its extracted key, ordered by key.
    ///
    /// # Errors
    /// [`FinalityQueryError::Store`] when the store fails.
    pub async fn slashed_verifiers(&self) -> Result<Vec<pb::SlashedVerifier>, FinalityQueryError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let rows = sqlx::query(
            "SELECT verifier, reason, secret_key, slashed_in_round FROM slashing_records ORDER BY verifier",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        rows.iter()
            .map(|row| {
                Ok(pb::SlashedVerifier {
                    verifier_btc_pk: row.try_get("verifier").map_err(StoreError::from)?,
                    extracted_secret_key: row.try_get("secret_key").map_err(StoreError::from)?,
                    slashed_in_round: to_u64(
                        "slashed_in_round",
                        row.try_get("slashed_in_round").map_err(StoreError::from)?,
                    )?,
                    reason: row.try_get("reason").map_err(StoreError::from)?,
                })
            })
            .collect()
    }
}
