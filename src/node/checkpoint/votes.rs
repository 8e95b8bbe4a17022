//! Checkpoint votes (§13.5 "Counting" and "One message per round"): AddCheckpointSig, and the
//! equivocation a verifier commits by signing both a checkpoint round's M and its §10 vote
//! message with the round's committed randomness, whichever arrives second.

use bitcoin::secp256k1::{SecretKey, XOnlyPublicKey};
use fiamma_finality::checkpoint::{CheckpointRound, CheckpointVote};
use fiamma_finality::eots::Signature;
use fiamma_finality::merkle::Proof;
use fiamma_finality::rounds::{
    checkpoint_slashing, CheckpointEquivocation, Slashing, VerifierRecord, VerifierStatus, Vote,
    VoteOutcome,
};
use fiamma_proto::finality::v1 as pb;
use sqlx::PgConnection;

use super::errors::CheckpointError;
use super::{close, store, Checkpoints};
use crate::node::finality::store::{self as finality_store, Commitments, Lock};
use crate::node::finality::{slashing, wire, FinalityModule};
use crate::node::grpc::convert::FieldError;
use crate::node::store::StoreError;

impl FinalityModule {
    /// The checkpoint settings, or why the node has none.
    ///
    /// # Errors
    /// [`CheckpointError::Disabled`] when the node runs without `[checkpoint]`.
    pub fn checkpoint_config(&self) -> Result<&Checkpoints, CheckpointError> {
        self.checkpoints.as_deref().ok_or(CheckpointError::Disabled)
    }

    /// AddCheckpointSig: a checkpoint vote on a checkpoint round still taking votes, by a
    /// member of its active set or of the base set that is not slashed, with its committed
    /// randomness for the round, verifying over the round's M. Stored once (the same vote
    /// again is COUNTED and changes nothing); a voter that also signed the round's §10 vote
    /// message is slashed (EQUIVOCATION).
    ///
    /// # Errors
    /// [`CheckpointError`] naming the first rule broken; nothing changed.
    pub async fn add_checkpoint_vote(
        &self,
        r: pb::AddCheckpointSigRequest,
    ) -> Result<VoteOutcome, CheckpointError> {
        let checkpoints = self.checkpoint_config()?;
        let (round, vote, proof) = wire::checkpoint_vote(r.vote.as_ref())?;
        for lock in [Lock::Share, Lock::Update] {
            if let Some(outcome) = self
                .decide_checkpoint_vote(checkpoints, round, &vote, &proof, lock)
                .await?
            {
                return Ok(outcome);
            }
        }
        Err(CheckpointError::Contended {
            voter: vote.voter,
            round,
        })
    }

    /// The vote decided in one transaction holding the finality state row with `lock`; `None`
    /// when it is equivocation and `lock` is not the writer lock (nothing written).
    async fn decide_checkpoint_vote(
        &self,
        checkpoints: &Checkpoints,
        round: u64,
        vote: &CheckpointVote,
        proof: &Proof,
        lock: Lock,
    ) -> Result<Option<VoteOutcome>, CheckpointError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let position = finality_store::position(&mut tx, lock).await?;
        let row = store::checkpoint_round(&mut tx, round)
            .await?
            .ok_or(CheckpointError::NotCheckpointRound { round })?;
        let expiry = self.params.vote_expiry;
        if position.latest_round > round.saturating_add(expiry) {
            return Err(CheckpointError::Expired {
                round,
                latest: position.latest_round,
                expiry,
            });
        }
        let record = self.standing(&mut tx, &vote.voter, round).await?;
        let checkpoint =
            checked_vote(&mut tx, checkpoints, &row, record.as_ref(), vote, proof).await?;
        // The round's §10 vote message is a second message for the round.
        if let Some(other) = finality_store::vote_of(&mut tx, round, &vote.voter).await? {
            if lock != Lock::Update {
                return Ok(None);
            }
            let slashing = checkpoint_slashing(CheckpointEquivocation {
                round,
                vote: *vote,
                proof: proof.clone(),
                message: checkpoint.message().clone(),
                other_message: other.message(&self.contexts),
                other_signature: other.signature,
            })?;
            let events = slashing::apply::<CheckpointError>(
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
        // A valid vote over M with the committed randomness is unique, so one already stored
        // is this one.
        store::insert_vote(&mut tx, round, vote, proof).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Some(VoteOutcome::Counted))
    }

    /// EquivocationEvidence with a checkpoint vote: the vote must verify over the round's M
    /// with the voter's committed randomness for the round (as AddCheckpointSig checks it),
    /// and the other message and signature under the same key and randomness; then the key
    /// is extracted and the verifier slashed. Returns the verifier and its key.
    ///
    /// # Errors
    /// [`CheckpointError`] naming the first check that failed; nothing changed.
    pub(crate) async fn checkpoint_evidence(
        &self,
        r: &pb::CheckpointEquivocation,
    ) -> Result<(XOnlyPublicKey, SecretKey), CheckpointError> {
        let checkpoints = self.checkpoint_config()?;
        let (round, vote, proof) = wire::checkpoint_vote(r.vote.as_ref())?;
        let other_signature = Signature::from_byte_array(wire::bytes32(
            "checkpoint.other_signature",
            &r.other_signature,
        )?);
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        finality_store::position(&mut tx, Lock::Update).await?;
        let row = store::checkpoint_round(&mut tx, round)
            .await?
            .ok_or(CheckpointError::NotCheckpointRound { round })?;
        let record = finality_store::verifier_record(
            &mut tx,
            &vote.voter,
            Commitments::Covering(round),
            &self.params.liveness,
        )
        .await?;
        let checkpoint =
            checked_vote(&mut tx, checkpoints, &row, record.as_ref(), &vote, &proof).await?;
        if !r.message.is_empty() && r.message != checkpoint.message().as_bytes() {
            return Err(FieldError {
                field: "checkpoint.message",
                reason: format!("is not round {round}'s M"),
            }
            .into());
        }
        let slashing = checkpoint_slashing(CheckpointEquivocation {
            round,
            vote,
            proof,
            message: checkpoint.message().clone(),
            other_message: r.other_message.clone(),
            other_signature,
        })?;
        let events =
            slashing::apply::<CheckpointError>(&mut tx, &slashing, record, &self.params.liveness)
                .await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.publish(events);
        Ok((slashing.verifier, slashing.secret_key))
    }

    /// The voter's record (its row locked), refused when it is slashed in either module.
    async fn standing(
        &self,
        conn: &mut PgConnection,
        voter: &XOnlyPublicKey,
        round: u64,
    ) -> Result<Option<VerifierRecord>, CheckpointError> {
        let record = finality_store::verifier_record(
            &mut *conn,
            voter,
            Commitments::Covering(round),
            &self.params.liveness,
        )
        .await?;
        let slashed = matches!(
            record.as_ref().map(VerifierRecord::status),
            Some(VerifierStatus::Slashed { .. })
        ) || finality_store::slashed_in_staking(&mut *conn, voter).await?;
        if slashed {
            return Err(CheckpointError::Slashed { voter: *voter });
        }
        Ok(record)
    }

    /// For AddFinalitySig on a checkpoint round (inside its transaction, after the vote's own
    /// checks): the equivocation when the voter signed the round's M too. `None` when the
    /// round is not a checkpoint round or the voter has no checkpoint vote on it.
    ///
    /// # Errors
    /// [`CheckpointError`] when the store fails or the pair does not reveal the key.
    pub(crate) async fn checkpoint_equivocation_of(
        &self,
        conn: &mut PgConnection,
        vote: &Vote,
    ) -> Result<Option<Slashing>, CheckpointError> {
        let Some(checkpoints) = self.checkpoints.as_deref() else {
            return Ok(None);
        };
        let Some(row) = store::checkpoint_round(&mut *conn, vote.round).await? else {
            return Ok(None);
        };
        let Some((signed, proof)) = store::vote_of(&mut *conn, vote.round, &vote.voter).await?
        else {
            return Ok(None);
        };
        let checkpoint = close::checkpoint_round(&mut *conn, &checkpoints.settings, &row).await?;
        Ok(Some(checkpoint_slashing(CheckpointEquivocation {
            round: vote.round,
            vote: signed,
            proof,
            message: checkpoint.message().clone(),
            other_message: vote.message(&self.contexts),
            other_signature: vote.signature,
        })?))
    }
}

/// Checkpoint round `row` as the pure core holds it, once `vote` checks against it: `record`
/// (the voter's) has a commitment covering the round, and the vote is by a signer of the round
/// with that commitment's randomness, over the round's M.
async fn checked_vote(
    conn: &mut PgConnection,
    checkpoints: &Checkpoints,
    row: &store::CheckpointRow,
    record: Option<&VerifierRecord>,
    vote: &CheckpointVote,
    proof: &Proof,
) -> Result<CheckpointRound, CheckpointError> {
    let commitment = record
        .and_then(|r| r.commitment_covering(row.round))
        .ok_or(CheckpointError::NoCommitment {
            voter: vote.voter,
            round: row.round,
        })?;
    let checkpoint = close::checkpoint_round(conn, &checkpoints.settings, row).await?;
    checkpoint.check_vote(vote, commitment, proof)?;
    Ok(checkpoint)
}
