//! The state-changing messages of the finality module. Each decodes and checks what it can
//! without state, then applies in one database transaction: load, pure core, write, commit.
//! An error means the transaction was rolled back and nothing changed.

use bitcoin::secp256k1::{schnorr, SecretKey, XOnlyPublicKey};
use fiamma_finality::rounds::{
    check_vote, check_voter_standing, equivocation, ClosedRound, VerifierStatus, Verifiers, Vote,
    VoteEnv, VoteOutcome, VoterInRound,
};
use fiamma_finality::zk::{ProofId, ProofSystem, UnknownProofSystem, ZkProof};
use fiamma_proto::finality::v1 as pb;
use fiamma_staking::params::ResourceLimits;

use super::errors::{
    AddVoteError, CommitError, EvidenceError, SubmitProofError, UnjailVerifierError,
};
use super::store::{self, Commitments, FirstVote, Lock, PendingBudget};
use super::{slashing, wire, FinalityModule};
use crate::node::checkpoint::store as checkpoint_store;
use crate::node::grpc::convert::FieldError;
use crate::node::store::StoreError;

fn begin_error(e: sqlx::Error) -> StoreError {
    StoreError::Database(e)
}

/// Whether a proof of `bytes` fits in `round` next to the pending proofs of `budget`.
fn check_budget(
    budget: PendingBudget,
    bytes: u64,
    limits: &ResourceLimits,
    round: u64,
) -> Result<(), SubmitProofError> {
    if budget.proofs >= u64::from(limits.max_proofs_per_round) {
        return Err(SubmitProofError::RoundFull {
            round,
            limit: "max_proofs_per_round",
            value: u64::from(limits.max_proofs_per_round),
        });
    }
    if budget.bytes.saturating_add(bytes) > limits.max_round_proof_bytes {
        return Err(SubmitProofError::RoundFull {
            round,
            limit: "max_round_proof_bytes",
            value: limits.max_round_proof_bytes,
        });
    }
    Ok(())
}

impl FinalityModule {
    /// SubmitProof: a well-formed proof within the limits joins the pending proofs of the next
    /// round, with its verdict. Returns its proof_id and that round.
    ///
    /// The proof is verified here, in a blocking task and before the transaction, so the
    /// round close only reads verdicts and verifies nothing while it holds the finality lock.
    /// The cheap refusals (size, duplicate, full round) come before the verification, so a
    /// refused proof costs no pairing.
    ///
    /// # Errors
    /// [`SubmitProofError`]: unknown system, a part over its cap, the whole over
    /// `max_proof_bytes`, bytes that do not decode, the same proof already pending, the next
    /// round full (`max_proofs_per_round` or `max_round_proof_bytes`).
    pub async fn submit_proof(
        &self,
        r: pb::SubmitProofRequest,
    ) -> Result<(ProofId, u64), SubmitProofError> {
        let code = u8::try_from(r.proof_system).map_err(|_| FieldError {
            field: "proof_system",
            reason: format!("{} is not a one-byte proof system code", r.proof_system),
        })?;
        let system = ProofSystem::try_from(code).map_err(|UnknownProofSystem(c)| {
            SubmitProofError::UnknownSystem(UnknownProofSystem(c))
        })?;
        let limits = &self.params.limits;
        let bytes = [&r.verifying_key, &r.proof, &r.public_inputs]
            .iter()
            .map(|part| u64::try_from(part.len()).unwrap_or(u64::MAX))
            .fold(0, u64::saturating_add);
        if bytes > u64::from(limits.max_proof_bytes) {
            return Err(SubmitProofError::TooLarge {
                bytes,
                max_proof_bytes: limits.max_proof_bytes,
            });
        }
        let proof = ZkProof::new(system, r.verifying_key, r.proof, r.public_inputs)?;
        let id = proof.proof_id();
        {
            let mut conn = self.pool.acquire().await.map_err(begin_error)?;
            let position = store::position(&mut conn, Lock::None).await?;
            let round = position.latest_round.saturating_add(1);
            if store::is_pending(&mut conn, id.as_bytes()).await? {
                return Err(SubmitProofError::AlreadyPending {
                    proof_id: id.0,
                    round,
                });
            }
            check_budget(
                store::pending_budget(&mut conn).await?,
                bytes,
                limits,
                round,
            )?;
        }
        // Decoding checks every point and scalar (curve and subgroup membership); a proof
        // that fails it could only ever get an invalid verdict, so it is refused instead.
        let (proof, verdict) = tokio::task::spawn_blocking(move || {
            let verdict = proof.decode().map(|d| d.verify());
            (proof, verdict)
        })
        .await
        .map_err(|_| SubmitProofError::Interrupted)?;
        let verdict = verdict?;
        let mut tx = self.pool.begin().await.map_err(begin_error)?;
        // The shared lock keeps the round from closing until this proof is in, so the round
        // returned is the one it is in.
        let position = store::position(&mut tx, Lock::Share).await?;
        let round = position.latest_round.saturating_add(1);
        let inserted = sqlx::query(
            "INSERT INTO pending_proofs (proof_id, proof_system, verifying_key, proof, \
             public_inputs, valid) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (proof_id) DO NOTHING",
        )
        .bind(id.as_bytes().as_slice())
        .bind(i16::from(system.code()))
        .bind(proof.verifying_key())
        .bind(proof.proof())
        .bind(proof.public_inputs())
        .bind(verdict.is_valid())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if inserted.rows_affected() == 0 {
            return Err(SubmitProofError::AlreadyPending {
                proof_id: id.0,
                round,
            });
        }
        if !store::take_pending_place(
            &mut tx,
            bytes,
            limits.max_proofs_per_round,
            limits.max_round_proof_bytes,
        )
        .await?
        {
            // Another submission took the last place since the check above.
            let budget = store::pending_budget(&mut tx).await?;
            check_budget(budget, bytes, limits, round)?;
            return Err(SubmitProofError::RoundFull {
                round,
                limit: "max_proofs_per_round",
                value: u64::from(limits.max_proofs_per_round),
            });
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok((id, round))
    }

    /// CommitPubRandList: checks the commitment with the finality rules and stores it.
    ///
    /// # Errors
    /// [`CommitError`]: malformed fields, unknown verifier, too few rounds, start too far
    /// ahead, bad signature, overlap with an earlier commitment.
    pub async fn commit_pub_rand(
        &self,
        r: pb::CommitPubRandListRequest,
    ) -> Result<(), CommitError> {
        let pk = wire::key("verifier_btc_pk", &r.verifier_btc_pk)?;
        let commitment = wire::commitment(&r)?;
        let signature = wire::schnorr_sig("signature", &r.signature)?;
        let mut tx = self.pool.begin().await.map_err(begin_error)?;
        store::ensure_verifier(&mut tx, &pk).await?;
        let position = store::position(&mut tx, Lock::None).await?;
        let record =
            store::verifier_record(&mut tx, &pk, Commitments::All, &self.params.liveness).await?;
        let mut registry = Verifiers::new();
        if let Some(record) = record {
            registry.restore(pk, record);
        }
        registry.commit_randomness(
            &pk,
            commitment,
            &signature,
            position.latest_round,
            &self.params.commitment,
            &self.contexts,
        )?;
        store::insert_commitment(&mut tx, &pk, &commitment, signature.as_ref()).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// AddFinalitySig: checks the vote against the round, the voter's commitment and earlier
    /// vote ([`check_vote`]) and the voter's standing ([`check_voter_standing`]); records a
    /// first vote, or slashes an equivocating verifier.
    ///
    /// A first vote on a recent round takes the batched path ([`Self::add_first_vote`]);
    /// anything else (a refusal, a second vote, a round not in
    /// the [`RoundCache`](super::ingest::RoundCache)) is decided in a transaction, so every
    /// refusal names the first rule broken and changes nothing.
    ///
    /// # Errors
    /// [`AddVoteError`] naming the first rule broken.
    pub async fn add_vote(
        &self,
        r: pb::AddFinalitySigRequest,
    ) -> Result<VoteOutcome, AddVoteError> {
        let vote = wire::vote(&wire::VOTE, r.vote.as_ref())?;
        if let Some(outcome) = self.add_first_vote(&vote).await? {
            return Ok(outcome);
        }
        self.add_vote_in_transaction(&vote).await
    }

    /// A vote checked against the cached facts of its round (which never change), stored with
    /// the first votes sent at about the same time by one transaction that checks the rest
    /// under the shared finality lock (round still taking votes, voter ACTIVE and not slashed
    /// in either module, no earlier vote). `None` when the vote is
    /// not decided here: refused by the check, or not stored; the transaction then decides it.
    async fn add_first_vote(&self, vote: &Vote) -> Result<Option<VoteOutcome>, AddVoteError> {
        let expiry = self.params.vote_expiry;
        let Some(facts) = self
            .ingest
            .rounds
            .round(&self.pool, vote.round, expiry)
            .await?
        else {
            return Ok(None);
        };
        if facts.checkpoint {
            return Ok(None);
        }
        let Some(commitment) = facts.members.get(&vote.voter.serialize()) else {
            return Ok(None);
        };
        let closed = ClosedRound {
            round: facts.round,
            round_hash: facts.round_hash,
        };
        let voter = VoterInRound {
            in_active_set: true,
            commitment: commitment.as_ref(),
            earlier_vote: None,
        };
        // The round is closed, so the latest round is at least h; whether it is later than
        // h + vote_expiry by now is for the insert to check.
        let env = VoteEnv {
            contexts: &self.contexts,
            latest_round: vote.round,
            vote_expiry: expiry,
        };
        let outcome = match check_vote(vote, Some(&closed), &voter, &env) {
            Ok(outcome @ (VoteOutcome::Counted | VoteOutcome::Disagrees)) => outcome,
            // Refused: an earlier rule than this one (the round expired meanwhile) may be
            // the first broken, which only the transaction can tell.
            Ok(VoteOutcome::Equivocation(_)) | Err(_) => return Ok(None),
        };
        let first = FirstVote {
            vote: vote.clone(),
            agrees: outcome == VoteOutcome::Counted,
            last_accepting: vote.round.saturating_add(expiry),
        };
        let stored = self.ingest.writer.store(&self.pool, first).await;
        Ok(stored.then_some(outcome))
    }

    /// The vote decided in a transaction (see [`Self::decide_vote`]): first under the shared
    /// finality lock; a vote that turns out to be equivocation is decided again from the start
    /// under the writer lock, which slashing needs (taking it after the shared lock would be
    /// an upgrade, and two transactions upgrading at once deadlock).
    async fn add_vote_in_transaction(&self, vote: &Vote) -> Result<VoteOutcome, AddVoteError> {
        match self.decide_vote(vote, Lock::Share).await? {
            Some(outcome) => Ok(outcome),
            None => self
                .decide_vote(vote, Lock::Update)
                .await?
                .ok_or(AddVoteError::Contended {
                    voter: vote.voter,
                    round: vote.round,
                }),
        }
    }

    /// The vote decided in one transaction that takes the finality state row with `lock`
    /// (so no round closes until it commits: a stored vote is in the next tally and liveness
    /// record), then the voter's row: every rule checked against the store, a first vote
    /// stored, an equivocation slashed. `None` when the vote is equivocation and `lock` is not
    /// the writer lock (nothing was written).
    async fn decide_vote(
        &self,
        vote: &Vote,
        lock: Lock,
    ) -> Result<Option<VoteOutcome>, AddVoteError> {
        let mut tx = self.pool.begin().await.map_err(begin_error)?;
        let position = store::position(&mut tx, lock).await?;
        let env = VoteEnv {
            contexts: &self.contexts,
            latest_round: position.latest_round,
            vote_expiry: self.params.vote_expiry,
        };
        let Some(round) = store::round(&mut tx, vote.round).await? else {
            let nobody = VoterInRound {
                in_active_set: false,
                commitment: None,
                earlier_vote: None,
            };
            // Without a closed round the first rule refuses the vote.
            return Err(check_vote(vote, None, &nobody, &env)
                .err()
                .map(AddVoteError::from)
                .unwrap_or_else(|| {
                    AddVoteError::Store(StoreError::Missing {
                        what: format!("round {}", vote.round),
                    })
                }));
        };
        let closed = ClosedRound {
            round: round.round,
            round_hash: round.round_hash,
        };
        // Locks the voter's row: its votes and slashing apply one at a time (votes stored
        // by `add_first_vote` do not take it, hence the second attempt below).
        let record = store::verifier_record(
            &mut tx,
            &vote.voter,
            Commitments::Covering(vote.round),
            &self.params.liveness,
        )
        .await?;
        let in_active_set = store::is_member(&mut tx, vote.round, &vote.voter).await?;
        // A first vote may find another vote of the voter stored meanwhile without the row
        // lock; it is then checked again against that vote, which stays.
        for _ in 0..2 {
            let earlier = store::vote_of(&mut tx, vote.round, &vote.voter).await?;
            let voter = VoterInRound {
                in_active_set,
                commitment: record
                    .as_ref()
                    .and_then(|r| r.commitment_covering(vote.round)),
                earlier_vote: earlier.as_ref(),
            };
            let outcome = check_vote(vote, Some(&closed), &voter, &env)?;
            let mut on_checkpoint = false;
            let events = match &outcome {
                VoteOutcome::Counted | VoteOutcome::Disagrees => {
                    if let Some(record) = &record {
                        check_voter_standing(vote, record.status())?;
                    }
                    // Slashed in the staking module, not yet adopted here: its key is public
                    // all the same. It will be recorded as slashed in the latest round.
                    if store::slashed_in_staking(&mut tx, &vote.voter).await? {
                        check_voter_standing(
                            vote,
                            VerifierStatus::Slashed {
                                since: position.latest_round,
                            },
                        )?;
                    }
                    // On a checkpoint round the vote is the checkpoint signature: a §10 vote
                    // is recorded without counting, and with a checkpoint vote it is a second
                    // message for the round.
                    let checkpoint_round =
                        checkpoint_store::checkpoint_round(&mut tx, vote.round).await?;
                    if checkpoint_round.is_some() {
                        if let Some(slashing) = self
                            .checkpoint_equivocation_of(&mut tx, vote)
                            .await
                            .map_err(Box::new)?
                        {
                            if lock != Lock::Update {
                                return Ok(None);
                            }
                            let events = slashing::apply::<AddVoteError>(
                                &mut tx,
                                &slashing,
                                record,
                                &self.params.liveness,
                            )
                            .await?;
                            tx.commit().await.map_err(StoreError::from)?;
                            self.publish(events);
                            return Ok(Some(VoteOutcome::Equivocation(slashing)));
                        }
                    }
                    on_checkpoint = checkpoint_round.is_some();
                    let agrees = outcome == VoteOutcome::Counted && !on_checkpoint;
                    if !store::insert_vote(&mut tx, vote, agrees).await? {
                        continue;
                    }
                    Vec::new()
                }
                VoteOutcome::Equivocation(_) if lock != Lock::Update => return Ok(None),
                VoteOutcome::Equivocation(slashing) => {
                    slashing::apply::<AddVoteError>(
                        &mut tx,
                        slashing,
                        record,
                        &self.params.liveness,
                    )
                    .await?
                }
            };
            tx.commit().await.map_err(StoreError::from)?;
            self.publish(events);
            return Ok(Some(match outcome {
                VoteOutcome::Counted if on_checkpoint => VoteOutcome::Disagrees,
                other => other,
            }));
        }
        Err(AddVoteError::Contended {
            voter: vote.voter,
            round: vote.round,
        })
    }

    /// EquivocationEvidence: two votes of one verifier on one round with different round
    /// hashes, from anyone. Extracts the key ([`equivocation`]) and slashes the verifier.
    /// Returns the verifier and its extracted secret key.
    ///
    /// # Errors
    /// [`EvidenceError`]: malformed votes, votes that are not equivocation, unknown or already
    /// slashed verifier.
    pub async fn equivocation_evidence(
        &self,
        r: pb::EquivocationEvidenceRequest,
    ) -> Result<(XOnlyPublicKey, SecretKey), EvidenceError> {
        if let Some(checkpoint) = &r.checkpoint {
            return self
                .checkpoint_evidence(checkpoint)
                .await
                .map_err(|e| EvidenceError::Checkpoint(Box::new(e)));
        }
        let first = wire::vote(&wire::FIRST, r.first.as_ref())?;
        let second = wire::vote(&wire::SECOND, r.second.as_ref())?;
        let slashing = equivocation(&first, &second, &self.contexts)?;
        let mut tx = self.pool.begin().await.map_err(begin_error)?;
        // The writer lock before the verifier's row: the documented lock order.
        store::position(&mut tx, Lock::Update).await?;
        let record = store::verifier_record(
            &mut tx,
            &slashing.verifier,
            Commitments::None,
            &self.params.liveness,
        )
        .await?;
        let events =
            slashing::apply::<EvidenceError>(&mut tx, &slashing, record, &self.params.liveness)
                .await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.publish(events);
        Ok((slashing.verifier, slashing.secret_key))
    }

    /// UnjailVerifier: a jailed verifier, signing
    /// [`unjail_message`](fiamma_finality::rounds::unjail_message) in the `fp_unjail` context,
    /// becomes ACTIVE once its jail time is over.
    ///
    /// # Errors
    /// [`UnjailVerifierError`]: malformed fields, unknown or not jailed verifier, a signature
    /// not by the verifier, jail time not over.
    pub async fn unjail(&self, r: pb::UnjailVerifierRequest) -> Result<(), UnjailVerifierError> {
        let pk = wire::key("verifier_btc_pk", &r.verifier_btc_pk)?;
        let signature: schnorr::Signature = wire::schnorr_sig("signature", &r.signature)?;
        let mut tx = self.pool.begin().await.map_err(begin_error)?;
        // Shared: no round closes (and records liveness from a stale status) until this is in.
        let position = store::position(&mut tx, Lock::Share).await?;
        let record =
            store::verifier_record(&mut tx, &pk, Commitments::None, &self.params.liveness).await?;
        let mut registry = Verifiers::new();
        if let Some(record) = record {
            registry.restore(pk, record);
        }
        registry.unjail(
            &pk,
            &signature,
            position.latest_round,
            &self.params.liveness,
            &self.contexts,
        )?;
        if let Some(record) = registry.get(&pk) {
            store::save_record(&mut tx, &pk, record).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }
}
