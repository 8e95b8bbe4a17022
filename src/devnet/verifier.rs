//! A verifier: registers its BTC key with a proof of possession, commits to its randomness,
//! and then, as its daemon would, follows the node's round events: for every round it is in
//! the active set of, it re-verifies each proof itself, recomputes the round hash, and signs
//! its EOTS vote only if the hash is the node's.
//!
//! A verifier jailed for missing rounds asks to be unjailed at every round closed after that,
//! signing `sha256(ctx("fp_unjail") ‖ pk ‖ u64be(since_round))` (`PROTOCOL.md` §11), until the
//! node accepts (it refuses while the jail time is not over).
//!
//! One devnet verifier can be told to equivocate: in a given round with an invalid proof it
//! also signs a round hash that calls every proof valid, with the same randomness. That is
//! the fault the protocol punishes, and the only way its key leaks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bitcoin::secp256k1::{Keypair, Message, XOnlyPublicKey};
use fiamma_finality::committed::CommittedRandomness;
use fiamma_finality::merkle::Digest;
use fiamma_finality::round::{round_hash, RoundHash, RoundResult};
use fiamma_finality::rounds::{unjail_message, Vote};
use fiamma_finality::zk::{ProofSystem, Verdict, ZkProof};
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::finality::v1::finality_client::FinalityClient;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use fiamma_staking::context::SigningContexts;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::error::DevnetError;
use super::setup::{self, PUB_RAND_PER_COMMIT};
use super::wire;
use crate::node::finality::wire::vote_to_pb;

/// What a verifier's daemon did in one round.
#[derive(Debug, Clone)]
pub struct VoteReport {
    /// The verifier's name.
    pub verifier: &'static str,
    /// The round.
    pub round: u64,
    /// Proofs it re-verified, and how many of them are valid.
    pub proofs: (usize, usize),
    /// The node's answer to each vote it sent, in order, or why it did not vote.
    pub outcome: Result<Vec<fpb::VoteOutcome>, String>,
}

/// One verifier.
pub struct Verifier {
    /// "A", "B", …
    pub name: &'static str,
    keypair: Keypair,
    randomness: CommittedRandomness,
    contexts: SigningContexts,
}

impl Verifier {
    /// Verifier `name`, with randomness derived for rounds `1 ..= PUB_RAND_PER_COMMIT`.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] if the range cannot be committed.
    pub fn new(name: &'static str, contexts: SigningContexts) -> Result<Self, DevnetError> {
        let keypair = setup::devnet_keypair(&format!("verifier/{name}"));
        let randomness = CommittedRandomness::derive(
            &keypair.secret_key(),
            &contexts.chain_id,
            1,
            PUB_RAND_PER_COMMIT,
        )
        .map_err(|e| DevnetError::refused(format!("verifier {name}"), e))?;
        Ok(Verifier {
            name,
            keypair,
            randomness,
            contexts,
        })
    }

    /// The verifier's BTC key.
    pub fn key(&self) -> XOnlyPublicKey {
        self.keypair.x_only_public_key().0
    }

    fn party(&self) -> String {
        format!("verifier {}", self.name)
    }

    /// Sends CreateVerifier with a BIP-0340 proof of possession.
    ///
    /// # Errors
    /// [`DevnetError::Rpc`] when the node refuses.
    pub async fn register(&self, client: &mut StakingClient<Channel>) -> Result<(), DevnetError> {
        let request = wire::create_verifier_request(&self.keypair, self.name, &self.contexts)
            .map_err(|e| DevnetError::refused(self.party(), e))?;
        client
            .create_verifier(request)
            .await
            .map_err(|s| DevnetError::rpc(self.party(), "CreateVerifier", &s))?;
        Ok(())
    }

    /// Sends CommitPubRandList for its randomness; returns the first and last round covered.
    ///
    /// # Errors
    /// [`DevnetError::Rpc`] when the node refuses.
    pub async fn commit(
        &self,
        client: &mut FinalityClient<Channel>,
    ) -> Result<(u64, u64), DevnetError> {
        let c = self.randomness.commitment();
        let mut aux = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut aux);
        let signature = c.sign(&self.keypair, &self.contexts, &aux);
        client
            .commit_pub_rand_list(fpb::CommitPubRandListRequest {
                verifier_btc_pk: self.key().serialize().to_vec(),
                start_round: c.start(),
                num_pub_rand: c.num(),
                commitment: c.root().to_vec(),
                signature: signature.as_ref().to_vec(),
            })
            .await
            .map_err(|s| DevnetError::rpc(self.party(), "CommitPubRandList", &s))?;
        Ok((c.start(), c.last()))
    }

    /// Starts the voting daemon: it follows the node's finality events until the stream ends
    /// or the verifier is slashed, reporting each round it acted in. Setting `equivocate` to
    /// a round makes it sign two round hashes in that round (0: never).
    pub fn spawn(
        self,
        client: FinalityClient<Channel>,
        equivocate: Arc<AtomicU64>,
        reports: mpsc::UnboundedSender<VoteReport>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut daemon = Daemon {
                verifier: self,
                client,
                equivocate,
                jailed_since: None,
            };
            daemon.run(reports).await;
        })
    }
}

struct Daemon {
    verifier: Verifier,
    client: FinalityClient<Channel>,
    equivocate: Arc<AtomicU64>,
    /// The round it was jailed at, while it is jailed.
    jailed_since: Option<u64>,
}

impl Daemon {
    async fn run(&mut self, reports: mpsc::UnboundedSender<VoteReport>) {
        let name = self.verifier.name;
        let report_error = |round: u64, why: String| VoteReport {
            verifier: name,
            round,
            proofs: (0, 0),
            outcome: Err(why),
        };
        let mut events = match self
            .client
            .events(fpb::EventsRequest { from_sequence: 1 })
            .await
        {
            Ok(stream) => stream.into_inner(),
            Err(s) => {
                let _ = reports.send(report_error(0, format!("events: {}", s.message())));
                return;
            }
        };
        let me = self.verifier.key().serialize().to_vec();
        while let Some(event) = events.next().await {
            let kind = match event {
                Ok(e) => e.kind,
                // The node stopped: the story is over.
                Err(_) => return,
            };
            match kind {
                // Before any stake is active a round has nobody to vote.
                Some(fpb::event::Kind::RoundClosed(c)) if c.total_power_sat > 0 => {
                    if let Err(why) = self.try_unjail().await {
                        let _ = reports.send(report_error(c.round, why));
                    }
                    match self.on_round(c.round).await {
                        Ok(Some(report)) => {
                            let equivocated = report
                                .outcome
                                .as_ref()
                                .is_ok_and(|o| o.contains(&fpb::VoteOutcome::Equivocation));
                            let _ = reports.send(report);
                            // Its key is public now; nothing it signs counts any more.
                            if equivocated {
                                return;
                            }
                        }
                        Ok(None) => {}
                        Err(why) => {
                            let _ = reports.send(report_error(c.round, why));
                        }
                    }
                }
                Some(fpb::event::Kind::VerifierSlashed(s)) if s.verifier_btc_pk == me => return,
                Some(fpb::event::Kind::VerifierJailed(j)) if j.verifier_btc_pk == me => {
                    self.jailed_since = Some(j.round);
                }
                _ => {}
            }
        }
    }

    /// Asks to be unjailed when jailed; a refusal because the jail time is not over is not
    /// an error (it asks again at the next round).
    async fn try_unjail(&mut self) -> Result<(), String> {
        let Some(since) = self.jailed_since else {
            return Ok(());
        };
        let v = &self.verifier;
        let msg = Message::from_digest(unjail_message(&v.contexts, &v.key(), since));
        let signature = v.keypair.sign_schnorr(msg);
        match self
            .client
            .unjail_verifier(fpb::UnjailVerifierRequest {
                verifier_btc_pk: v.key().serialize().to_vec(),
                signature: signature.as_ref().to_vec(),
            })
            .await
        {
            Ok(_) => {
                self.jailed_since = None;
                Ok(())
            }
            Err(s) if s.code() == tonic::Code::FailedPrecondition => Ok(()),
            Err(s) => Err(format!("UnjailVerifier: {}", s.message())),
        }
    }

    /// Re-verifies round `h` and votes; `None` when the verifier is not in its active set.
    async fn on_round(&mut self, h: u64) -> Result<Option<VoteReport>, String> {
        let round = self
            .client
            .round(fpb::RoundRequest {
                round: h,
                ..Default::default()
            })
            .await
            .map_err(|s| format!("round {h}: {}", s.message()))?
            .into_inner()
            .round
            .ok_or_else(|| format!("round {h}: not served"))?;
        let me = self.verifier.key().serialize().to_vec();
        if !round.active_set.iter().any(|e| e.verifier_btc_pk == me) {
            return Ok(None);
        }
        let ours = self.reverify(&round).await?;
        let prev = digest("prev_round_hash", &round.prev_round_hash)?;
        let node_hash = digest("round_hash", &round.round_hash)?;
        let our_hash = round_hash(h, &RoundHash(prev), &ours);
        let valid = ours.iter().filter(|r| r.verdict.is_valid()).count();
        let mut report = VoteReport {
            verifier: self.verifier.name,
            round: h,
            proofs: (ours.len(), valid),
            outcome: Ok(Vec::new()),
        };
        if our_hash.0 != node_hash {
            report.outcome = Err(format!(
                "round hash {our_hash} recomputed, the node says {}",
                hex::encode(node_hash)
            ));
            return Ok(Some(report));
        }
        let mut outcomes = Vec::new();
        if self.equivocate.load(Ordering::SeqCst) == h {
            if valid == ours.len() {
                report.outcome = Err(format!(
                    "told to equivocate in round {h}, which has no invalid proof to lie about"
                ));
                return Ok(Some(report));
            }
            // The bribed answer: every proof valid.
            let lie: Vec<RoundResult> = ours
                .iter()
                .map(|r| RoundResult {
                    proof_id: r.proof_id,
                    verdict: Verdict::Valid,
                })
                .collect();
            let lie_hash = round_hash(h, &RoundHash(prev), &lie);
            outcomes.push(self.vote(h, lie_hash.0).await?);
        }
        outcomes.push(self.vote(h, node_hash).await?);
        report.outcome = Ok(outcomes);
        Ok(Some(report))
    }

    /// The verdicts of the round's proofs, computed here from their bytes as the node serves
    /// them (RoundProofs): each must hash to the proof id the round lists at its position.
    async fn reverify(&mut self, round: &fpb::Round) -> Result<Vec<RoundResult>, String> {
        let h = round.round;
        let mut proofs = Vec::with_capacity(round.results.len());
        while proofs.len() < round.results.len() {
            let page = self
                .client
                .round_proofs(fpb::RoundProofsRequest {
                    round: h,
                    from_position: u32::try_from(proofs.len())
                        .map_err(|_| format!("round {h}: too many proofs"))?,
                    limit: 0,
                })
                .await
                .map_err(|s| format!("round {h} proofs: {}", s.message()))?
                .into_inner()
                .proofs;
            if page.is_empty() {
                return Err(format!(
                    "round {h} lists {} proofs, the node served {}",
                    round.results.len(),
                    proofs.len()
                ));
            }
            for served in page {
                let listed = round
                    .results
                    .get(proofs.len())
                    .ok_or_else(|| format!("round {h}: more proofs served than listed"))?;
                let system = u8::try_from(served.proof_system)
                    .ok()
                    .and_then(|c| ProofSystem::try_from(c).ok())
                    .ok_or_else(|| format!("proof system {} unknown", served.proof_system))?;
                let proof = ZkProof::new(
                    system,
                    served.verifying_key,
                    served.proof,
                    served.public_inputs,
                )
                .map_err(|e| format!("round {h}: served proof refused: {e}"))?;
                if proof.proof_id().as_bytes().as_slice() != listed.proof_id.as_slice() {
                    return Err(format!(
                        "round {h}: the proof served at position {} is not the one listed",
                        proofs.len()
                    ));
                }
                proofs.push(proof);
            }
        }
        tokio::task::spawn_blocking(move || {
            proofs
                .iter()
                .map(|p| RoundResult {
                    proof_id: p.proof_id(),
                    verdict: p.round_verdict(),
                })
                .collect()
        })
        .await
        .map_err(|e| format!("verification task: {e}"))
    }

    async fn vote(&mut self, h: u64, hash: Digest) -> Result<fpb::VoteOutcome, String> {
        let randomness = self
            .verifier
            .randomness
            .for_round(h)
            .map_err(|e| e.to_string())?;
        let vote = Vote::sign(
            &self.verifier.keypair,
            randomness,
            &self.verifier.contexts,
            h,
            hash,
        );
        let outcome = self
            .client
            .add_finality_sig(fpb::AddFinalitySigRequest {
                vote: Some(vote_to_pb(&vote)),
            })
            .await
            .map_err(|s| format!("AddFinalitySig for round {h}: {}", s.message()))?
            .into_inner()
            .outcome;
        fpb::VoteOutcome::try_from(outcome).map_err(|_| format!("unknown vote outcome {outcome}"))
    }
}

fn digest(field: &str, bytes: &[u8]) -> Result<Digest, String> {
    <[u8; 32]>::try_from(bytes).map_err(|_| format!("{field}: {} bytes, expected 32", bytes.len()))
}
