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
/// Most proof bytes (verifying keys, proofs, public inputs) in one RoundProofs page, unless
/// its first proof alone is larger: well under the 4 MiB a gRPC client decodes by default.
pub const MAX_ROUND_PROOFS_BYTES: i64 = 1024 * 1024;
/// Default number of results per Round page: a whole round under the default
/// `max_proofs_per_round`.
pub const DEFAULT_ROUND_RESULTS: u32 = 256;
/// Largest number of results per Round page.
pub const MAX_ROUND_RESULTS: u32 = 4096;
/// Most encoded bytes of results in one Round page (a result encodes to about 38 bytes).
pub const MAX_ROUND_RESULTS_BYTES: usize = 256 * 1024;

/// A page size: 0 means `default`, anything above `max` is `max`.
fn page_limit(asked: u32, default: u32, max: u32) -> u32 {
    match asked {
        0 => default,
        n => n.min(max),
    }
}

/// A stored position, never negative.
fn position(p: i32) -> Result<u32, StoreError> {
    u32::try_from(p).map_err(|_| StoreError::Corrupt {
        column: "round_results.position",
        reason: format!("{p} is negative"),
    })
}

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
        checkpoint: r.checkpoint as i32,
    })
}

impl FinalityModule {
    /// One closed round with one page of its results (from position `results_from`, at most
    /// `results_limit` of them, 0: [`DEFAULT_ROUND_RESULTS`], capped at [`MAX_ROUND_RESULTS`],
    /// and at most [`MAX_ROUND_RESULTS_BYTES`] encoded), its active set, votes and certificate;
    /// and where the next page of results starts, `None` on the last page. The active set and
    /// votes are bounded by `max_active_verifiers`.
    ///
    /// # Errors
    /// [`FinalityQueryError::Field`] for a round or position beyond the stored range,
    /// [`FinalityQueryError::NotFound`] for a round not closed.
    pub async fn round(
        &self,
        round: u64,
        results_from: u32,
        results_limit: u32,
    ) -> Result<(pb::Round, Option<u32>), FinalityQueryError> {
        let round = wire::round_number("round", round)?;
        let from = wire::position("results_from", results_from)?;
        let limit = page_limit(results_limit, DEFAULT_ROUND_RESULTS, MAX_ROUND_RESULTS);
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let r =
            store::round(&mut conn, round)
                .await?
                .ok_or_else(|| FinalityQueryError::NotFound {
                    what: format!("round {round}"),
                })?;
        // One row more than the page tells whether another page follows.
        let rows = sqlx::query(
            "SELECT position, proof_id, valid FROM round_results \
             WHERE round = $1 AND position >= $2 ORDER BY position LIMIT $3",
        )
        .bind(store::to_i64("round", round)?)
        .bind(from)
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        let mut results = Vec::with_capacity(rows.len());
        let mut page_bytes = 0;
        let mut next = None;
        for row in &rows {
            let result = pb::ProofResult {
                proof_id: row.try_get("proof_id").map_err(StoreError::from)?,
                valid: row.try_get("valid").map_err(StoreError::from)?,
            };
            page_bytes += result.encoded_len();
            if results.len() == limit as usize || page_bytes > MAX_ROUND_RESULTS_BYTES {
                next = Some(position(
                    row.try_get("position").map_err(StoreError::from)?,
                )?);
                break;
            }
            results.push(result);
        }
        let members = store::members(&mut conn, round).await?;
        let votes = store::votes_of_round(&mut conn, round).await?;
        let round = pb::Round {
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
            checkpoint: r.checkpoint as i32,
        };
        Ok((round, next))
    }

    /// Up to `limit` rounds (0: [`DEFAULT_ROUNDS`], capped at [`MAX_ROUNDS`]) from `from` on.
    ///
    /// # Errors
    /// [`FinalityQueryError::Field`] for a `from` beyond the largest round,
    /// [`FinalityQueryError::Store`] when the store fails.
    pub async fn rounds(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<(Vec<pb::RoundSummary>, u64), FinalityQueryError> {
        let from = wire::round_number("from_round", from)?;
        let limit = page_limit(limit, DEFAULT_ROUNDS, MAX_ROUNDS);
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let latest = store::position(&mut conn, store::Lock::None)
            .await?
            .latest_round;
        let page = store::rounds_from(&mut conn, from, limit)
            .await?
            .iter()
            .map(|(r, proofs)| summary(r, *proofs))
            .collect::<Result<_, _>>()?;
        Ok((page, latest))
    }

    /// Up to `limit` proofs (0: [`DEFAULT_ROUND_PROOFS`], capped at [`MAX_ROUND_PROOFS`]) of a
    /// closed round with their bytes and verdicts, from position `from` on, and where the next
    /// page starts (`None` on the last page). A page holds at most
    /// [`MAX_ROUND_PROOFS_BYTES`] of proof bytes, or its one first proof if that is larger.
    /// Proofs of rounds past the retention come without bytes (`bytes_dropped`).
    ///
    /// # Errors
    /// [`FinalityQueryError::Field`] for a round or position beyond the stored range,
    /// [`FinalityQueryError::NotFound`] for a round not closed.
    pub async fn round_proofs(
        &self,
        round: u64,
        from: u32,
        limit: u32,
    ) -> Result<(Vec<pb::RoundProof>, Option<u32>), FinalityQueryError> {
        let round = wire::round_number("round", round)?;
        let from = wire::position("from_position", from)?;
        let limit = page_limit(limit, DEFAULT_ROUND_PROOFS, MAX_ROUND_PROOFS);
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        if store::round(&mut conn, round).await?.is_none() {
            return Err(FinalityQueryError::NotFound {
                what: format!("round {round}"),
            });
        }
        let system = |code: i16| {
            u32::try_from(code).map_err(|_| StoreError::Corrupt {
                column: "round_results.proof_system",
                reason: format!("{code} is negative"),
            })
        };
        // `keep`: the bytes up to and including the row fit the page, or it is the first row.
        // Rows not kept come without their bytes (never read from storage); the first of them
        // is where the next page starts.
        let rows = sqlx::query(
            "SELECT position, proof_id, proof_system, valid, keep, proof IS NULL AS dropped, \
               CASE WHEN keep THEN verifying_key END AS verifying_key, \
               CASE WHEN keep THEN proof END AS proof, \
               CASE WHEN keep THEN public_inputs END AS public_inputs \
             FROM (SELECT position, proof_id, proof_system, valid, verifying_key, proof, \
                     public_inputs, \
                     (ROW_NUMBER() OVER w = 1 OR SUM(COALESCE(octet_length(verifying_key) \
                       + octet_length(proof) + octet_length(public_inputs), 0)) OVER w <= $4) \
                       AS keep \
                   FROM round_results WHERE round = $1 AND position >= $2 \
                   WINDOW w AS (ORDER BY position) ORDER BY position LIMIT $3) p \
             ORDER BY position",
        )
        .bind(store::to_i64("round", round)?)
        .bind(from)
        .bind(i64::from(limit) + 1)
        .bind(MAX_ROUND_PROOFS_BYTES)
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        let mut proofs = Vec::with_capacity(rows.len());
        let mut next = None;
        for row in &rows {
            let at = position(row.try_get("position").map_err(StoreError::from)?)?;
            let keep: bool = row.try_get("keep").map_err(StoreError::from)?;
            if !keep || proofs.len() == limit as usize {
                next = Some(at);
                break;
            }
            let bytes = |column: &str| -> Result<Vec<u8>, StoreError> {
                Ok(row
                    .try_get::<Option<Vec<u8>>, _>(column)?
                    .unwrap_or_default())
            };
            proofs.push(pb::RoundProof {
                position: at,
                proof_id: row.try_get("proof_id").map_err(StoreError::from)?,
                proof_system: system(row.try_get("proof_system").map_err(StoreError::from)?)?,
                verifying_key: bytes("verifying_key")?,
                proof: bytes("proof")?,
                public_inputs: bytes("public_inputs")?,
                valid: row.try_get("valid").map_err(StoreError::from)?,
                bytes_dropped: row.try_get("dropped").map_err(StoreError::from)?,
            });
        }
        Ok((proofs, next))
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
            "SELECT round, first_vote, second_vote, checkpoint_evidence, secret_key, \
             slashed_in_round FROM slashing_records WHERE verifier = $1 \
             AND reason = 'equivocation'",
        )
        .bind(pk.serialize().as_slice())
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::from)?
        .ok_or_else(|| FinalityQueryError::NotFound {
            what: format!("equivocation evidence against verifier {pk}"),
        })?;
        fn decode<M: Message + Default>(
            row: &sqlx::postgres::PgRow,
            column: &'static str,
        ) -> Result<Option<M>, StoreError> {
            let bytes: Option<Vec<u8>> = row.try_get(column)?;
            bytes
                .map(|b| {
                    M::decode(b.as_slice()).map_err(|e| StoreError::Corrupt {
                        column,
                        reason: e.to_string(),
                    })
                })
                .transpose()
        }
        let round: Option<i64> = row.try_get("round").map_err(StoreError::from)?;
        Ok(pb::Evidence {
            verifier_btc_pk: pk.serialize().to_vec(),
            round: to_u64("round", round.unwrap_or(0))?,
            first: decode(&row, "first_vote")?,
            second: decode(&row, "second_vote")?,
            checkpoint: decode(&row, "checkpoint_evidence")?,
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
