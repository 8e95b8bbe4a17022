//! The verifier's own checkpoint candidate (`CHECKPOINTS.md` §13.4 rules 1–3, §13.6.1): what it
//! would sign on a checkpoint round, derived from what it computed itself, and where the node's
//! candidate differs from it.
//!
//! Pure: values in, values or typed errors out. The daemon ([`crate::verifier`]) gathers the
//! inputs and hands the result to [`crate::checkpoint::CheckpointSigner`].
//!
//! What is the verifier's own, and what it takes from the node:
//! - round h's hash is the one it recomputed from the round's proofs (what it would have voted);
//!   the state is 32 zero bytes (the node runs `checkpoint_state = none`);
//! - the base set and the next set are quantized here (§13.2) from the power tables of the
//!   base round and of round h, as the node serves them for votes;
//! - the kind is recomputed here: scheduled iff h ≡ 0 (mod N), rotation iff the live part of
//!   the base set (its members in round h's active set) weighs below 3/4, at most one per
//!   `vote_expiry` rounds;
//! - the base outpoint and its round are the node's: the verifier has no Bitcoin view of its
//!   own (§13.4 rule 1 is the node's). A wrong base costs nothing but a candidate Bitcoin
//!   refuses: the quorum leaf of a base that is not the named set's output does not verify;
//! - the covenant committee of the recovery leaf comes from the node's latest staking params,
//!   and V and R from the node's checkpoint params.

use bitcoin::consensus::serialize;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Amount, OutPoint, Transaction};
use fiamma_finality::checkpoint::{
    check_shape, Candidate, CandidateSpec, CheckpointKind, CheckpointPayload, CheckpointRules,
    CheckpointSet, RecoveryLeaf, RoundKind, ScriptParseError, SetError, ShapeError,
};
use fiamma_finality::merkle::Digest;
use fiamma_finality::round::RoundHash;
use fiamma_proto::client::CheckpointKind as ServedKind;

/// The payload state under `checkpoint_state = none`.
pub const NO_STATE: [u8; 32] = [0; 32];

/// What the verifier knows of checkpoint round h, gathered by the daemon.
#[derive(Debug, Clone, Copy)]
pub struct OwnView<'a> {
    /// Round h.
    pub round: u64,
    /// Round h's hash as this verifier recomputed it from the round's proofs.
    pub round_hash: Digest,
    /// Round h's power table (the active set and powers).
    pub active_set: &'a [(XOnlyPublicKey, u64)],
    /// The base outpoint the node names (the verifier has no Bitcoin view).
    pub base: OutPoint,
    /// The round whose set the base output encodes.
    pub base_round: u64,
    /// The base round's power table.
    pub base_active_set: &'a [(XOnlyPublicKey, u64)],
    /// The covenant committee (latest staking params) and its quorum.
    pub committee: &'a [XOnlyPublicKey],
    /// The committee's quorum q.
    pub committee_quorum: u32,
    /// R.
    pub recovery_blocks: u32,
    /// V.
    pub value: Amount,
    /// N and `vote_expiry`.
    pub rules: CheckpointRules,
    /// The last rotation round before h, if any in the last `vote_expiry` rounds.
    pub last_rotation: Option<u64>,
}

/// Why the verifier has no candidate of its own for round h, or will not sign the node's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnCandidateError {
    /// The kind the node declared is not the one recomputed here.
    #[error("round {round}: the node declares a {served} checkpoint round, it recomputes {own}")]
    Kind {
        /// Round h.
        round: u64,
        /// The node's kind.
        served: &'static str,
        /// The recomputed kind.
        own: &'static str,
    },
    /// The base round's power table gives no set.
    #[error("round {round}: the base round {base_round} has no checkpoint set: {source}")]
    BaseSet {
        /// Round h.
        round: u64,
        /// The base's round.
        base_round: u64,
        /// Why.
        source: SetError,
    },
    /// Round h's power table gives no set.
    #[error("round {round} has no checkpoint set: {source}")]
    NextSet {
        /// Round h.
        round: u64,
        /// Why.
        source: SetError,
    },
    /// The committee and R make no recovery leaf.
    #[error("the covenant committee and R make no recovery leaf: {0}")]
    Recovery(ScriptParseError),
}

/// Where the node's candidate differs from the verifier's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandidateDifference {
    /// Not the candidate template at all.
    #[error("the node's candidate is off the template: {0}")]
    Shape(ShapeError),
    /// It spends another outpoint.
    #[error("the node's candidate spends {served}, its own spends {own}")]
    Base {
        /// Its own base.
        own: OutPoint,
        /// The node's.
        served: OutPoint,
    },
    /// Another round in the payload.
    #[error("the node's candidate is for round {served}, its own for round {own}")]
    Round {
        /// Its own round.
        own: u64,
        /// The node's.
        served: u64,
    },
    /// Another round hash in the payload.
    #[error("round hash {served} in the node's candidate, it recomputed {own}")]
    RoundHash {
        /// Its own, hex.
        own: String,
        /// The node's, hex.
        served: String,
    },
    /// Another payload (kind or state).
    #[error("the node's candidate carries another payload kind or state")]
    Payload,
    /// Output 0 is not round h's checkpoint output (another set, committee, R or V).
    #[error("output 0 of the node's candidate is not round h's checkpoint output (set, recovery leaf or value differ)")]
    NextOutput,
    /// The transactions are identical but the node's M is not its own: the node's base set
    /// (the spent quorum leaf) or base output differs.
    #[error("the node's message M is not its own: another base set or base output")]
    Message,
    /// Something else differs (the template allows nothing else, so this is a bug or a lie).
    #[error("the node's candidate {served} is not its own {own}")]
    Other {
        /// Its own txid.
        own: String,
        /// The node's.
        served: String,
    },
}

fn kind_word(kind: RoundKind) -> &'static str {
    match kind {
        RoundKind::Ordinary => "no",
        RoundKind::Scheduled => "scheduled",
        RoundKind::Rotation => "rotation",
    }
}

fn served_word(kind: ServedKind) -> &'static str {
    match kind {
        ServedKind::None => "no",
        ServedKind::Scheduled => "scheduled",
        ServedKind::Rotation => "rotation",
    }
}

/// The verifier's own candidate for a checkpoint round.
#[derive(Debug, Clone)]
pub struct OwnCandidate {
    kind: RoundKind,
    base: OutPoint,
    base_round: u64,
    base_set: CheckpointSet,
    next_set: CheckpointSet,
    recovery: RecoveryLeaf,
    value: Amount,
    payload: CheckpointPayload,
}

impl OwnCandidate {
    /// Derives the candidate of `view` and checks the node's kind `served` against the one
    /// recomputed here.
    ///
    /// # Errors
    /// [`OwnCandidateError`]: the kinds differ, or a set or the recovery leaf cannot be made.
    pub fn derive(view: &OwnView<'_>, served: ServedKind) -> Result<Self, OwnCandidateError> {
        let base_set =
            CheckpointSet::from_powers(view.base_active_set.iter().copied()).map_err(|source| {
                OwnCandidateError::BaseSet {
                    round: view.round,
                    base_round: view.base_round,
                    source,
                }
            })?;
        let kind = view.rules.round_kind(
            view.round,
            view.base_round,
            &base_set,
            |k| view.active_set.iter().any(|(m, _)| m == k),
            view.last_rotation,
        );
        let agrees = matches!(
            (kind, served),
            (RoundKind::Scheduled, ServedKind::Scheduled)
                | (RoundKind::Rotation, ServedKind::Rotation)
        );
        if !agrees {
            return Err(OwnCandidateError::Kind {
                round: view.round,
                served: served_word(served),
                own: kind_word(kind),
            });
        }
        let next_set =
            CheckpointSet::from_powers(view.active_set.iter().copied()).map_err(|source| {
                OwnCandidateError::NextSet {
                    round: view.round,
                    source,
                }
            })?;
        let recovery =
            RecoveryLeaf::new(view.committee, view.committee_quorum, view.recovery_blocks)
                .map_err(OwnCandidateError::Recovery)?;
        Ok(OwnCandidate {
            kind,
            base: view.base,
            base_round: view.base_round,
            base_set,
            next_set,
            recovery,
            value: view.value,
            payload: CheckpointPayload {
                kind: CheckpointKind::Quorum,
                round: view.round,
                round_hash: RoundHash(view.round_hash),
                state: NO_STATE,
            },
        })
    }

    /// The kind recomputed (scheduled or rotation).
    pub fn kind(&self) -> RoundKind {
        self.kind
    }

    /// The base set (§13.2, from the base round's power table).
    pub fn base_set(&self) -> &CheckpointSet {
        &self.base_set
    }

    /// What [`fiamma_finality::checkpoint::build_candidate`] and the signer take.
    pub fn spec(&self) -> CandidateSpec<'_> {
        CandidateSpec {
            base: self.base,
            base_round: self.base_round,
            base_set: &self.base_set,
            next_set: &self.next_set,
            recovery: &self.recovery,
            value: self.value,
            payload: self.payload,
        }
    }
}

/// Names the first part in which the node's candidate `served` (and its message M,
/// `served_message`) differs from `own` (the verifier's own build), or `Ok` when both are
/// byte-identical.
///
/// # Errors
/// [`CandidateDifference`].
pub fn compare(
    own: &Candidate,
    served: &Transaction,
    served_message: &[u8],
) -> Result<(), CandidateDifference> {
    if serialize(&own.tx) == serialize(served) {
        return if own.message.as_bytes().as_slice() == served_message {
            Ok(())
        } else {
            Err(CandidateDifference::Message)
        };
    }
    let own = &own.tx;
    let value = own.output.first().map_or(Amount::ZERO, |o| o.value);
    let theirs = check_shape(served, value).map_err(CandidateDifference::Shape)?;
    // `own` has the template's shape by construction.
    let mine = check_shape(own, value).map_err(CandidateDifference::Shape)?;
    if theirs.base != mine.base {
        return Err(CandidateDifference::Base {
            own: mine.base,
            served: theirs.base,
        });
    }
    if theirs.payload.round != mine.payload.round {
        return Err(CandidateDifference::Round {
            own: mine.payload.round,
            served: theirs.payload.round,
        });
    }
    if theirs.payload.round_hash != mine.payload.round_hash {
        return Err(CandidateDifference::RoundHash {
            own: hex::encode(mine.payload.round_hash.0),
            served: hex::encode(theirs.payload.round_hash.0),
        });
    }
    if theirs.payload != mine.payload {
        return Err(CandidateDifference::Payload);
    }
    if served.output[0] != own.output[0] {
        return Err(CandidateDifference::NextOutput);
    }
    Err(CandidateDifference::Other {
        own: own.compute_txid().to_string(),
        served: served.compute_txid().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::secp256k1::{Keypair, Secp256k1, SecretKey};
    use fiamma_finality::checkpoint::build_candidate;

    fn key(seed: u8) -> XOnlyPublicKey {
        let sk = SecretKey::from_slice(&[seed; 32]).expect("key");
        Keypair::from_secret_key(&Secp256k1::new(), &sk)
            .x_only_public_key()
            .0
    }

    struct Fixture {
        active: Vec<(XOnlyPublicKey, u64)>,
        base_active: Vec<(XOnlyPublicKey, u64)>,
        committee: Vec<XOnlyPublicKey>,
    }

    fn fixture() -> Fixture {
        Fixture {
            active: vec![(key(1), 10), (key(2), 10), (key(3), 10), (key(4), 10)],
            base_active: vec![(key(1), 10), (key(2), 10), (key(3), 10), (key(4), 10)],
            committee: vec![key(20), key(21), key(22)],
        }
    }

    fn view<'a>(f: &'a Fixture, round: u64, round_hash: Digest) -> OwnView<'a> {
        OwnView {
            round,
            round_hash,
            active_set: &f.active,
            base: OutPoint::new(bitcoin::Txid::from_byte_array([7; 32]), 0),
            base_round: 4,
            base_active_set: &f.base_active,
            committee: &f.committee,
            committee_quorum: 2,
            recovery_blocks: 20,
            value: Amount::from_sat(1_000),
            rules: CheckpointRules {
                interval_rounds: 4,
                vote_expiry: 10,
            },
            last_rotation: None,
        }
    }

    fn built(own: &OwnCandidate) -> Candidate {
        build_candidate(&own.spec()).expect("builds")
    }

    fn tx(own: &OwnCandidate) -> Transaction {
        built(own).tx
    }

    /// `compare` of `own` against the node's `served`, with the node's own M.
    fn differs(own: &OwnCandidate, served: &Candidate) -> Result<(), CandidateDifference> {
        compare(&built(own), &served.tx, served.message.as_bytes())
    }

    fn differs_tx(own: &OwnCandidate, served: &Transaction) -> Result<(), CandidateDifference> {
        let m = built(own).message;
        compare(&built(own), served, m.as_bytes())
    }

    #[test]
    fn a_scheduled_round_gives_the_nodes_candidate_byte_for_byte() {
        let f = fixture();
        let own = OwnCandidate::derive(&view(&f, 8, [5; 32]), ServedKind::Scheduled).unwrap();
        assert_eq!(own.kind(), RoundKind::Scheduled);
        assert_eq!(own.base_set().len(), 4);
        // The node's candidate, built from the same inputs as the node does.
        let base = CheckpointSet::from_powers(f.base_active.iter().copied()).unwrap();
        let next = CheckpointSet::from_powers(f.active.iter().copied()).unwrap();
        let recovery = RecoveryLeaf::new(&f.committee, 2, 20).unwrap();
        let node = build_candidate(&CandidateSpec {
            base: OutPoint::new(bitcoin::Txid::from_byte_array([7; 32]), 0),
            base_round: 4,
            base_set: &base,
            next_set: &next,
            recovery: &recovery,
            value: Amount::from_sat(1_000),
            payload: CheckpointPayload {
                kind: CheckpointKind::Quorum,
                round: 8,
                round_hash: RoundHash([5; 32]),
                state: [0; 32],
            },
        })
        .unwrap();
        assert_eq!(differs(&own, &node), Ok(()));
    }

    #[test]
    fn a_kind_the_verifier_does_not_recompute_is_a_disagreement() {
        let f = fixture();
        // Round 9 is not scheduled (N = 4) and every base member is live: no checkpoint.
        let e = OwnCandidate::derive(&view(&f, 9, [5; 32]), ServedKind::Rotation).unwrap_err();
        assert_eq!(
            e,
            OwnCandidateError::Kind {
                round: 9,
                served: "rotation",
                own: "no"
            }
        );
        // Round 8 is scheduled, whatever the node says.
        let e = OwnCandidate::derive(&view(&f, 8, [5; 32]), ServedKind::Rotation).unwrap_err();
        assert!(e.to_string().contains("recomputes scheduled"), "{e}");
        // A round served as no checkpoint is never signed as one.
        assert!(OwnCandidate::derive(&view(&f, 8, [5; 32]), ServedKind::None).is_err());
        // A round no later than the base's is never a checkpoint round.
        let mut v = view(&f, 4, [5; 32]);
        v.base_round = 4;
        assert!(OwnCandidate::derive(&v, ServedKind::Scheduled).is_err());
    }

    #[test]
    fn a_rotation_is_recomputed_from_the_live_base_weight_and_spaced() {
        let mut f = fixture();
        // Two of four equal base members left round 9's active set: live 1/2 < 3/4.
        f.active = vec![(key(1), 10), (key(2), 10), (key(5), 10)];
        let own = OwnCandidate::derive(&view(&f, 9, [5; 32]), ServedKind::Rotation).unwrap();
        assert_eq!(own.kind(), RoundKind::Rotation);
        assert!(OwnCandidate::derive(&view(&f, 9, [5; 32]), ServedKind::Scheduled).is_err());
        // A rotation within vote_expiry of the last one is not one.
        let mut v = view(&f, 9, [5; 32]);
        v.last_rotation = Some(5);
        assert!(OwnCandidate::derive(&v, ServedKind::Rotation).is_err());
        // One member gone of four: exactly 3/4 live, no rotation.
        f.active = vec![(key(1), 10), (key(2), 10), (key(3), 10)];
        assert!(OwnCandidate::derive(&view(&f, 9, [5; 32]), ServedKind::Rotation).is_err());
    }

    #[test]
    fn another_round_hash_is_named() {
        let f = fixture();
        let own = OwnCandidate::derive(&view(&f, 8, [5; 32]), ServedKind::Scheduled).unwrap();
        let lie = OwnCandidate::derive(&view(&f, 8, [6; 32]), ServedKind::Scheduled).unwrap();
        assert_eq!(
            differs(&own, &built(&lie)),
            Err(CandidateDifference::RoundHash {
                own: hex::encode([5; 32]),
                served: hex::encode([6; 32]),
            })
        );
    }

    #[test]
    fn another_set_is_named() {
        let f = fixture();
        let own = OwnCandidate::derive(&view(&f, 8, [5; 32]), ServedKind::Scheduled).unwrap();
        // The node puts other weights in output 0: the same keys, one with more power.
        let mut other = fixture();
        other.active[0].1 = 20;
        let lie = OwnCandidate::derive(&view(&other, 8, [5; 32]), ServedKind::Scheduled).unwrap();
        assert_eq!(
            differs(&own, &built(&lie)),
            Err(CandidateDifference::NextOutput)
        );
        // Another base set leaves the transaction as it is and changes M (the spent output and
        // its quorum leaf): the node's M is then not the one this verifier would sign.
        let mut base = fixture();
        base.base_active.pop();
        let other_base =
            OwnCandidate::derive(&view(&base, 8, [5; 32]), ServedKind::Scheduled).unwrap();
        assert_eq!(tx(&own), tx(&other_base));
        assert_eq!(
            differs(&own, &built(&other_base)),
            Err(CandidateDifference::Message)
        );
        // Another committee is another output 0.
        let mut committee = fixture();
        committee.committee.pop();
        let lie =
            OwnCandidate::derive(&view(&committee, 8, [5; 32]), ServedKind::Scheduled).unwrap();
        assert_eq!(
            differs(&own, &built(&lie)),
            Err(CandidateDifference::NextOutput)
        );
    }

    #[test]
    fn another_base_and_a_broken_shape_are_named() {
        let f = fixture();
        let own = OwnCandidate::derive(&view(&f, 8, [5; 32]), ServedKind::Scheduled).unwrap();
        let mut served = tx(&own);
        served.input[0].previous_output.vout = 1;
        assert!(matches!(
            differs_tx(&own, &served),
            Err(CandidateDifference::Base { .. })
        ));
        let mut served = tx(&own);
        served.version = bitcoin::transaction::Version::TWO;
        assert!(matches!(
            differs_tx(&own, &served),
            Err(CandidateDifference::Shape(ShapeError::Version(2)))
        ));
        let mut served = tx(&own);
        served.input[0].witness.push([1u8; 64]);
        assert!(matches!(
            differs_tx(&own, &served),
            Err(CandidateDifference::Other { .. })
        ));
    }

    #[test]
    fn empty_tables_and_a_bad_committee_are_refused() {
        let mut f = fixture();
        f.base_active.clear();
        assert!(matches!(
            OwnCandidate::derive(&view(&f, 8, [5; 32]), ServedKind::Scheduled),
            Err(OwnCandidateError::BaseSet { .. })
        ));
        let mut f = fixture();
        f.active = vec![(key(1), 0)];
        assert!(matches!(
            OwnCandidate::derive(&view(&f, 8, [5; 32]), ServedKind::Scheduled),
            Err(OwnCandidateError::NextSet { .. })
        ));
        let f = fixture();
        let mut v = view(&f, 8, [5; 32]);
        v.committee_quorum = 4;
        assert!(matches!(
            OwnCandidate::derive(&v, ServedKind::Scheduled),
            Err(OwnCandidateError::Recovery(_))
        ));
    }
}
