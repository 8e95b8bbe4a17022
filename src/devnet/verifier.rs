//! The devnet's verifiers: each is the component `fiamma verifier run` runs
//! ([`fiamma_verifier::verifier::Verifier`]), with its key from the devnet's seed, the node over
//! gRPC and an in-memory store, stepped on each round the node closes.
//!
//! One devnet verifier is made to equivocate, by a fault injected around the component: in a
//! given round with an invalid proof, once the component voted, the raw key (the component's
//! signer, bypassing its slashing protection) also signs a round hash that calls every proof
//! valid, with the same randomness. That is the fault the protocol punishes, and the only way
//! its key leaks. Asked to sign that second message itself, the component refuses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bitcoin::secp256k1::{Keypair, XOnlyPublicKey};
use fiamma_finality::round::{round_hash, RoundHash, RoundResult};
use fiamma_finality::zk::{ProofId, Verdict};
use fiamma_proto::client::{FinalityNode, GrpcNode, VerifierRecord};
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use fiamma_staking::context::SigningContexts;
use fiamma_verifier::signer::{KeystoreSigner, Signer};
use fiamma_verifier::store::VerifierStore;
use fiamma_verifier::verifier::{RoundOutcome, Verifier as Component, VerifierSettings};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::error::DevnetError;
use super::setup::{self, PUB_RAND_PER_COMMIT};
use super::wire;

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
    /// When it was made to equivocate: what its own slashing protection said when asked to
    /// sign the second message through the component.
    pub protection: Option<String>,
}

/// One verifier.
pub struct Verifier {
    /// "A", "B", …
    pub name: &'static str,
    keypair: Keypair,
    contexts: SigningContexts,
    signer: Arc<KeystoreSigner>,
    node: Arc<GrpcNode>,
    component: Arc<Component>,
}

impl Verifier {
    /// Verifier `name`: the component with an in-memory store, new to this network.
    ///
    /// # Errors
    /// [`DevnetError::Local`] when its store cannot be opened.
    pub async fn new(
        name: &'static str,
        contexts: SigningContexts,
        channel: Channel,
    ) -> Result<Self, DevnetError> {
        let keypair = setup::devnet_keypair(&format!("verifier/{name}"));
        let signer = Arc::new(KeystoreSigner::new(keypair));
        let node = Arc::new(GrpcNode::from_channel(channel));
        let store = VerifierStore::open("sqlite::memory:")
            .await
            .map_err(|e| DevnetError::local(format!("verifier {name}: local store"), e))?;
        let settings = VerifierSettings {
            contexts: contexts.clone(),
            commit_batch: PUB_RAND_PER_COMMIT,
            commit_ahead: PUB_RAND_PER_COMMIT / 10,
            catch_up_rounds: 10,
            poll_interval: std::time::Duration::from_secs(1),
            unjail: false,
            jail_duration: 0,
        };
        let component = Component::new(settings, signer.clone(), node.clone(), store, true)
            .await
            .map_err(|e| DevnetError::local(format!("verifier {name}"), e))?;
        Ok(Verifier {
            name,
            keypair,
            contexts,
            signer,
            node,
            component: Arc::new(component),
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

    /// The component's first step: it commits its first batch of randomness. Returns the
    /// first and last round covered.
    ///
    /// # Errors
    /// [`DevnetError::Refused`] when the step fails or commits nothing.
    pub async fn commit(&self) -> Result<(u64, u64), DevnetError> {
        let report = self
            .component
            .step()
            .await
            .map_err(|e| DevnetError::refused(self.party(), e))?;
        report
            .committed
            .ok_or_else(|| DevnetError::refused(self.party(), "no randomness committed"))
    }

    /// Starts the voting daemon: it steps the component on each round the node closes until
    /// the stream ends or the verifier is slashed, reporting each round it acted in. Setting
    /// `equivocate` to a round makes it also sign a lie in that round (0: never).
    pub fn spawn(
        self,
        equivocate: Arc<AtomicU64>,
        reports: mpsc::UnboundedSender<VoteReport>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move { self.run(&equivocate, &reports).await })
    }

    async fn run(&self, equivocate: &AtomicU64, reports: &mpsc::UnboundedSender<VoteReport>) {
        let report_error = |round: u64, why: String| VoteReport {
            verifier: self.name,
            round,
            proofs: (0, 0),
            outcome: Err(why),
            protection: None,
        };
        let mut events = match self.node.finality_events(1).await {
            Ok(stream) => stream,
            Err(e) => {
                let _ = reports.send(report_error(0, format!("events: {e}")));
                return;
            }
        };
        let me = self.key().serialize().to_vec();
        while let Some(event) = events.next().await {
            let kind = match event {
                Ok(e) => e.kind,
                // The node stopped: the story is over.
                Err(_) => return,
            };
            match kind {
                // Stepped on every round, with power or not: the step also commits the next
                // batch of randomness before the last one runs out, so that a verifier of a
                // network left idle (`--keep-running --no-story`) can still vote once staked.
                Some(fpb::event::Kind::RoundClosed(c)) => {
                    let step = match self.component.step().await {
                        Ok(step) => step,
                        Err(e) => {
                            let _ = reports.send(report_error(c.round, e.to_string()));
                            continue;
                        }
                    };
                    for d in step.rounds {
                        let mut protection = None;
                        let outcome = match d.outcome {
                            RoundOutcome::Voted(o)
                            | RoundOutcome::Resent(o)
                            | RoundOutcome::CheckpointSigned(o)
                            | RoundOutcome::CheckpointResent(o) => Ok(vec![o]),
                            RoundOutcome::NotActive | RoundOutcome::AlreadyCounted => continue,
                            other => Err(format!("{other:?}")),
                        };
                        let outcome = match outcome {
                            Ok(mut outcomes) if equivocate.load(Ordering::SeqCst) == d.round => {
                                match self.sign_a_lie(d.round).await {
                                    Ok((lied, lie_hash)) => {
                                        outcomes.push(lied);
                                        protection =
                                            Some(self.ask_to_equivocate(d.round, lie_hash).await);
                                        Ok(outcomes)
                                    }
                                    Err(why) => Err(why),
                                }
                            }
                            other => other,
                        };
                        let equivocated = outcome
                            .as_ref()
                            .is_ok_and(|o| o.contains(&fpb::VoteOutcome::Equivocation));
                        let _ = reports.send(VoteReport {
                            verifier: self.name,
                            round: d.round,
                            proofs: d.proofs.unwrap_or((0, 0)),
                            outcome,
                            protection,
                        });
                        // Its key is public now; nothing it signs counts any more.
                        if equivocated {
                            return;
                        }
                    }
                }
                Some(fpb::event::Kind::VerifierSlashed(s)) if s.verifier_btc_pk == me => return,
                _ => {}
            }
        }
    }

    /// The injected fault: the raw key signs round `h` for a round hash calling every proof
    /// valid, with the round's committed randomness, bypassing the component's protection.
    /// Returns the node's answer and the lie's round hash.
    async fn sign_a_lie(&self, h: u64) -> Result<(fpb::VoteOutcome, [u8; 32]), String> {
        let view = self
            .node
            .round(h)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("round {h} not served"))?;
        if view.results.iter().all(|(_, valid)| *valid) {
            return Err(format!(
                "told to equivocate in round {h}, which has no invalid proof to lie about"
            ));
        }
        let lie: Vec<RoundResult> = view
            .results
            .iter()
            .map(|(id, _)| RoundResult {
                proof_id: ProofId(*id),
                verdict: Verdict::Valid,
            })
            .collect();
        let lie_hash = round_hash(h, &RoundHash(view.prev_round_hash), &lie).0;
        let store = self.component.store();
        let commitment = store
            .commitments(self.component.network())
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|c| c.covers(h))
            .ok_or_else(|| format!("round {h} is not committed"))?;
        let vote = self
            .signer
            .vote(
                self.component.randomness_domain(),
                &self.contexts,
                (commitment.start(), commitment.num()),
                h,
                lie_hash,
            )
            .await
            .map_err(|e| e.to_string())?;
        let outcome = self
            .node
            .add_finality_sig(&vote)
            .await
            .map_err(|e| format!("AddFinalitySig for round {h}: {e}"))?;
        Ok((outcome, lie_hash))
    }

    /// Asks the component itself to sign the lie after it voted honestly: its slashing
    /// protection refuses. Returns what it said.
    async fn ask_to_equivocate(&self, h: u64, lie_hash: [u8; 32]) -> String {
        let record = match self.node.verifier(self.key()).await {
            Ok(Some(r)) => r,
            Ok(None) => VerifierRecord {
                status: fpb::VerifierStatus::Active,
                since_round: 0,
                commitments: Vec::new(),
                missed_rounds: 0,
            },
            Err(e) => return e.to_string(),
        };
        match self.component.vote_for(h, lie_hash, &record).await {
            Ok(RoundOutcome::Refused(why)) => why,
            Ok(other) => format!("NOT REFUSED: {other:?}"),
            Err(e) => e.to_string(),
        }
    }
}
