//! Bitcoin-checked checkpoints in the node (`CHECKPOINTS.md` §13), over gRPC with a real
//! PostgreSQL and the embedded regtest chain: the genesis registration and its refusals,
//! checkpoint rounds and their candidates (rebuilt here from the test's own view and compared
//! byte for byte), checkpoint votes and their refusals, final and complete, the signed
//! candidate accepted by Bitcoin Core's interpreter and mined, the chain followed to a new base
//! and a second checkpoint signed by the old set into a changed set; and equivocation between
//! a checkpoint vote and the round's §10 vote, in either order.

mod btc_support;
mod node_finality_support;

use std::sync::Arc;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::SECP256K1;
use bitcoin::{Amount, OutPoint, Sequence, Transaction, TxOut, Txid};
use btc_support::{child, coinbase_coin, mine_txs, unsigned, KeyWallet};
use fiamma::btc::kernel::verify_scripts;
use fiamma::btc::regtest::unix_now;
use fiamma::btc::{EmbeddedBackend, RegtestChain};
use fiamma::node::checkpoint::{CheckpointConfig, CheckpointSettings, Checkpoints};
use fiamma::node::finality::FinalityModule;
use fiamma_finality::checkpoint::{
    build_candidate, Candidate, CandidateSpec, CheckpointKind, CheckpointOutput, CheckpointPayload,
    CheckpointSet, CheckpointVote, RecoveryLeaf, THRESHOLD,
};
use fiamma_finality::round::RoundHash;
use fiamma_proto::codec::finality::checkpoint_vote_to_pb;
use fiamma_proto::finality::v1 as fpb;
use fiamma_staking::params::Params;
use node_finality_support::node_support::{self, K};
use node_finality_support::*;
use sqlx::PgPool;
use tokio_stream::StreamExt;
use tonic::Code;

/// h₀.
const GENESIS_ROUND: u64 = 2;
/// N.
const INTERVAL: u64 = 4;
/// R (within 2k..=U/2 of [`staking_params`]).
const RECOVERY: u32 = 6;
const VALUE: Amount = Amount::from_sat(1_000);
const STAKE: u64 = 1_000_000;

/// The test params with U long enough for a recovery leaf (2k ≤ R ≤ U/2).
fn staking_params() -> Params {
    Params {
        unbonding_time_blocks: 20,
        ..node_support::params()
    }
}

fn recovery_leaf() -> RecoveryLeaf {
    let p = staking_params();
    RecoveryLeaf::new(&p.covenant_pks, p.covenant_quorum, RECOVERY).expect("leaf")
}

struct Net {
    node: Node,
    verifiers: Vec<TestVerifier>,
    chain: EmbeddedBackend,
    wallet: KeyWallet,
    /// The next coinbase to spend.
    next_coin: u32,
}

impl Net {
    async fn start(pool: PgPool, stakers: &[u8]) -> Net {
        let wallet = KeyWallet::new(0x61);
        let mut rc = RegtestChain::in_memory().expect("chain");
        rc.mine(110, &wallet.script(), unix_now()).expect("mine");
        let chain = EmbeddedBackend::new(rc);
        let settings = CheckpointSettings::new(
            &CheckpointConfig {
                genesis_round: GENESIS_ROUND,
                value: VALUE,
                interval_rounds: INTERVAL,
                recovery_blocks: Some(RECOVERY),
            },
            &staking_params(),
            VOTE_EXPIRY,
        )
        .expect("valid checkpoint settings");
        let module = FinalityModule::new(pool.clone(), finality_params(), contexts())
            .with_checkpoints(Checkpoints {
                settings: Arc::new(settings),
                backend: Arc::new(chain.clone()),
            });
        let node = start_modules(pool, staking_params(), module).await;
        let mut net = Net {
            node,
            verifiers: Vec::new(),
            chain,
            wallet,
            next_coin: 1,
        };
        for seed in stakers {
            net.add_verifier(*seed, true).await;
        }
        net
    }

    /// Verifier `seed` registered with its randomness committed from the next round on, and
    /// staked if `staked`.
    async fn add_verifier(&mut self, seed: u8, staked: bool) {
        create_verifier(&mut self.node, seed).await;
        let next = self.node.module.rounds(1, 1000).await.expect("rounds").1 + 1;
        let v = TestVerifier::new(seed, next, 100);
        if staked {
            let store = self.node.staking_module.store().clone();
            stake(&store, v.key(), STAKE, u32::from(seed)).await;
        }
        self.node
            .finality
            .commit_pub_rand_list(v.commit_request())
            .await
            .expect("commitment accepted");
        self.verifiers.push(v);
    }

    fn verifier(&self, seed: u8) -> &TestVerifier {
        self.verifiers
            .iter()
            .find(|v| v.keypair.secret_key().secret_bytes()[31] == seed)
            .expect("known verifier")
    }

    async fn close_through(&self, round: u64) {
        loop {
            let closed = self.node.module.close_round().await.expect("closes");
            if closed.round >= round {
                return;
            }
        }
    }

    async fn checkpoints(&mut self) -> fpb::CheckpointsResponse {
        self.node
            .finality
            .checkpoints(fpb::CheckpointsRequest {})
            .await
            .expect("checkpoints")
            .into_inner()
    }

    async fn checkpoint_round(&mut self, round: u64) -> Result<fpb::CheckpointRound, Code> {
        self.node
            .finality
            .checkpoint_round(fpb::CheckpointRoundRequest { round })
            .await
            .map(|r| r.into_inner().checkpoint.expect("checkpoint"))
            .map_err(|s| s.code())
    }

    async fn round(&mut self, round: u64) -> fpb::Round {
        self.node
            .finality
            .round(fpb::RoundRequest {
                round,
                results_from: 0,
                results_limit: 0,
            })
            .await
            .expect("round")
            .into_inner()
            .round
            .expect("round")
    }

    async fn register(
        &mut self,
        outpoint: OutPoint,
    ) -> Result<fpb::CheckpointOutput, tonic::Status> {
        self.node
            .finality
            .register_checkpoint_genesis(fpb::RegisterCheckpointGenesisRequest {
                txid: outpoint.txid.to_byte_array().to_vec(),
                vout: outpoint.vout,
            })
            .await
            .map(|r| r.into_inner().genesis.expect("genesis"))
    }

    async fn mine(&self, count: u32) {
        self.chain
            .mine(count, &self.wallet.script())
            .await
            .expect("mine");
    }

    fn coin(&mut self, chain: &RegtestChain) -> (OutPoint, TxOut) {
        let coin = coinbase_coin(chain, self.next_coin);
        self.next_coin += 1;
        coin
    }

    /// Sends `seed`'s checkpoint vote on `round` over `candidate`'s M.
    async fn checkpoint_vote(
        &mut self,
        seed: u8,
        round: u64,
        candidate: &Candidate,
    ) -> Result<fpb::VoteOutcome, tonic::Status> {
        let v = self.verifier(seed);
        let r = v.randomness.for_round(round).expect("committed");
        let vote = CheckpointVote::sign(&v.keypair, &r.secret, &candidate.message);
        let request = fpb::AddCheckpointSigRequest {
            vote: Some(checkpoint_vote_to_pb(round, &vote, &r.proof)),
        };
        self.node
            .finality
            .add_checkpoint_sig(request)
            .await
            .map(|r| r.into_inner().outcome())
    }

    async fn finality_vote(&mut self, seed: u8, round: u64) -> fpb::VoteOutcome {
        let hash = digest(&self.round(round).await.round_hash);
        let vote = self.verifier(seed).vote(round, hash);
        self.node
            .finality
            .add_finality_sig(vote_request(&vote))
            .await
            .expect("vote accepted")
            .into_inner()
            .outcome()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    bytes.try_into().expect("32 bytes")
}

/// The set of equal stakes of `keys`.
fn set_of(keys: &[&TestVerifier]) -> CheckpointSet {
    CheckpointSet::from_powers(keys.iter().map(|v| (v.key(), STAKE))).expect("set")
}

/// The candidate this test expects for `round`, built from its own view.
fn expected_candidate(
    base: OutPoint,
    base_round: u64,
    base_set: &CheckpointSet,
    next_set: &CheckpointSet,
    round: u64,
    round_hash: [u8; 32],
) -> Candidate {
    build_candidate(&CandidateSpec {
        base,
        base_round,
        base_set,
        next_set,
        recovery: &recovery_leaf(),
        value: VALUE,
        payload: CheckpointPayload {
            kind: CheckpointKind::Quorum,
            round,
            round_hash: RoundHash(round_hash),
            state: [0; 32],
        },
    })
    .expect("candidate")
}

fn kernel_accepts(tx: &Transaction, prevout: &TxOut) -> bool {
    verify_scripts(tx, std::slice::from_ref(prevout)).is_ok()
}

/// Funds a genesis candidate transaction: output 0 pays V to `script`, output 1 pays 999 sat
/// to it, output 2 pays V to the wallet; mined in one block.
async fn fund_genesis(net: &mut Net, script: &bitcoin::ScriptBuf) -> Txid {
    let chain = net.chain.shared();
    let mut chain = chain.write().await;
    let (coin, coin_out) = net.coin(&chain);
    let mut fund = unsigned(
        vec![(coin, Sequence::MAX)],
        vec![
            TxOut {
                value: VALUE,
                script_pubkey: script.clone(),
            },
            TxOut {
                value: Amount::from_sat(999),
                script_pubkey: script.clone(),
            },
            TxOut {
                value: VALUE,
                script_pubkey: net.wallet.script(),
            },
            TxOut {
                value: coin_out.value - Amount::from_sat(5_000),
                script_pubkey: net.wallet.script(),
            },
        ],
    );
    net.wallet.sign(&mut fund, &[coin_out]);
    chain.submit_transaction(&fund).expect("funding accepted");
    chain
        .mine(1, &net.wallet.script(), unix_now())
        .expect("mine");
    fund.compute_txid()
}

/// Mines the signed checkpoint with a fee-paying child in one block.
async fn mine_checkpoint(net: &mut Net, signed: &Transaction) {
    let fee = Amount::from_sat(5_000);
    let chain = net.chain.shared();
    let mut chain = chain.write().await;
    let coin = net.coin(&chain);
    let child = child(signed, &net.wallet, coin, fee);
    mine_txs(
        &mut chain,
        &net.wallet.script(),
        vec![signed.clone(), child],
        fee,
    )
    .expect("the checkpoint and its child are mined");
}

#[sqlx::test]
async fn a_checkpoint_chain_through_the_node(pool: PgPool) {
    let mut net = Net::start(pool, &[1, 2, 3, 4]).await;
    // Registered and committed, never staked: in no set.
    net.add_verifier(9, false).await;

    // The genesis needs round h₀'s set: refused before h₀ closes.
    net.close_through(1).await;
    let early = net
        .register(OutPoint::new(Txid::from_byte_array([7; 32]), 0))
        .await
        .expect_err("h₀ is not closed");
    assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
    assert!(
        early.message().contains("not closed"),
        "{}",
        early.message()
    );
    assert!(net.checkpoints().await.genesis_script_pubkey.is_empty());

    net.close_through(GENESIS_ROUND).await;
    let genesis_set = {
        let outsider = net.verifier(9).key();
        let v: Vec<&TestVerifier> = net
            .verifiers
            .iter()
            .filter(|v| v.key() != outsider)
            .collect();
        set_of(&v)
    };
    let genesis_script = CheckpointOutput::new(&genesis_set, &recovery_leaf()).script_pubkey();
    let served = net.checkpoints().await;
    assert_eq!(served.genesis_script_pubkey, genesis_script.to_bytes());
    assert_eq!(served.genesis_script_round, GENESIS_ROUND);
    assert!(served.genesis.is_none() && served.base.is_none());
    let params = served.params.expect("params");
    assert_eq!(
        (
            params.genesis_round,
            params.value_sat,
            params.interval_rounds,
            params.recovery_blocks
        ),
        (GENESIS_ROUND, VALUE.to_sat(), INTERVAL, RECOVERY)
    );

    let fund = fund_genesis(&mut net, &genesis_script).await;
    let genesis = OutPoint::new(fund, 0);
    // One confirmation of k = 2.
    let shallow = net.register(genesis).await.expect_err("not k deep");
    assert_eq!(shallow.code(), Code::FailedPrecondition);
    assert!(
        shallow.message().contains("1 confirmations"),
        "{}",
        shallow.message()
    );
    net.mine(K - 1).await;
    for (vout, code, words) in [
        (1, Code::InvalidArgument, "holds 0.00000999 BTC"),
        (
            2,
            Code::InvalidArgument,
            "does not pay round 2's checkpoint output",
        ),
        (9, Code::InvalidArgument, "no output 9"),
    ] {
        let refused = net
            .register(OutPoint::new(fund, vout))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), code, "{refused:?}");
        assert!(refused.message().contains(words), "{}", refused.message());
    }
    let unknown = net
        .register(OutPoint::new(Txid::from_byte_array([7; 32]), 0))
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    let registered = net.register(genesis).await.expect("registered");
    assert_eq!((registered.round, registered.kind), (GENESIS_ROUND, 0));
    assert_eq!(net.register(genesis).await.expect("same again"), registered);
    let other = net
        .register(OutPoint::new(fund, 2))
        .await
        .expect_err("one genesis");
    assert_eq!(other.code(), Code::AlreadyExists);

    // Round 3 is ordinary; round 4 ≡ 0 (mod N) is a scheduled checkpoint round.
    net.close_through(INTERVAL).await;
    assert_eq!(net.round(3).await.checkpoint(), fpb::CheckpointKind::None);
    assert_eq!(net.checkpoint_round(3).await.unwrap_err(), Code::NotFound);
    assert_eq!(
        net.round(4).await.checkpoint(),
        fpb::CheckpointKind::Scheduled
    );
    let hash4 = digest(&net.round(4).await.round_hash);
    let c1 = expected_candidate(genesis, GENESIS_ROUND, &genesis_set, &genesis_set, 4, hash4);
    let served = net.checkpoint_round(4).await.expect("checkpoint round");
    assert_eq!(
        served.candidate,
        serialize(&c1.tx),
        "byte-identical candidate"
    );
    assert_eq!(served.message, c1.message.as_bytes().to_vec());
    assert_eq!(served.status(), fpb::CheckpointStatus::Signing);
    assert_eq!(served.threshold, THRESHOLD);

    // Refusals: another message, an outsider, an ordinary round.
    let other_c = expected_candidate(
        genesis,
        GENESIS_ROUND,
        &genesis_set,
        &genesis_set,
        4,
        [9; 32],
    );
    let bad = net
        .checkpoint_vote(1, 4, &other_c)
        .await
        .expect_err("not M");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    let outsider = net.checkpoint_vote(9, 4, &c1).await.expect_err("outsider");
    assert_eq!(outsider.code(), Code::FailedPrecondition, "{outsider:?}");
    let ordinary = net.checkpoint_vote(1, 3, &c1).await.expect_err("ordinary");
    assert_eq!(ordinary.code(), Code::NotFound);

    // Two of four: neither final nor complete; the same vote again changes nothing.
    for seed in [1, 2, 1] {
        assert_eq!(
            net.checkpoint_vote(seed, 4, &c1).await.expect("counted"),
            fpb::VoteOutcome::Counted
        );
    }
    net.node.module.tally_now().await.expect("tally");
    let half = net.checkpoint_round(4).await.expect("round");
    assert_eq!(half.status(), fpb::CheckpointStatus::Signing);
    assert_eq!(half.votes.len(), 2);
    assert_eq!(net.round(4).await.status(), fpb::RoundStatus::Open);

    // The third: final by power and complete by weight; the signed candidate is the
    // certificate Bitcoin checks.
    net.checkpoint_vote(3, 4, &c1).await.expect("counted");
    net.node.module.tally_now().await.expect("tally");
    let ready = net.checkpoint_round(4).await.expect("round");
    assert_eq!(ready.status(), fpb::CheckpointStatus::Ready);
    assert_eq!(net.round(4).await.status(), fpb::RoundStatus::Final);
    let signed: Transaction = deserialize(&ready.signed_transaction).expect("signed tx");
    assert_eq!(signed.compute_txid(), c1.tx.compute_txid());
    let genesis_out = c1.spent_txout();
    assert!(kernel_accepts(&signed, &genesis_out));
    let unsigned_c1 = c1.tx.clone();
    assert!(!kernel_accepts(&unsigned_c1, &genesis_out));

    // A fifth verifier stakes: round 8's set differs from the base's.
    net.add_verifier(5, true).await;

    // Mined, then k deep: the node's base moves to it.
    mine_checkpoint(&mut net, &signed).await;
    assert!(net
        .node
        .module
        .follow_checkpoints()
        .await
        .expect("follows")
        .is_empty());
    net.mine(K - 1).await;
    let adopted = net.node.module.follow_checkpoints().await.expect("follows");
    assert_eq!(adopted.len(), 1);
    let base = net.checkpoints().await.base.expect("base");
    let c1_out = OutPoint::new(signed.compute_txid(), 0);
    assert_eq!(
        (base.txid.as_slice(), base.vout, base.round, base.kind),
        (c1_out.txid.to_byte_array().as_slice(), 0, 4, 1)
    );
    assert_eq!(
        net.checkpoint_round(4).await.expect("round").status(),
        fpb::CheckpointStatus::Confirmed
    );

    // Round 8: the old set (the four) signs the new set (five) in.
    net.close_through(2 * INTERVAL).await;
    let next_set = {
        let v: Vec<&TestVerifier> = net
            .verifiers
            .iter()
            .filter(|v| v.key() != net.verifier(9).key())
            .collect();
        set_of(&v)
    };
    assert_eq!(next_set.len(), 5);
    let hash8 = digest(&net.round(8).await.round_hash);
    let c2 = expected_candidate(c1_out, 4, &genesis_set, &next_set, 8, hash8);
    assert_eq!(
        net.checkpoint_round(8).await.expect("round").candidate,
        serialize(&c2.tx)
    );
    // The newcomer's signature counts for the round's power, not on Bitcoin.
    for seed in [5, 1, 2] {
        net.checkpoint_vote(seed, 8, &c2).await.expect("counted");
    }
    net.node.module.tally_now().await.expect("tally");
    let r8 = net.checkpoint_round(8).await.expect("round");
    assert_eq!(net.round(8).await.status(), fpb::RoundStatus::Open);
    assert_eq!(r8.status(), fpb::CheckpointStatus::Signing);
    net.checkpoint_vote(3, 8, &c2).await.expect("counted");
    net.node.module.tally_now().await.expect("tally");
    let r8 = net.checkpoint_round(8).await.expect("round");
    assert_eq!(r8.status(), fpb::CheckpointStatus::Ready);
    let signed2: Transaction = deserialize(&r8.signed_transaction).expect("signed");
    assert!(kernel_accepts(&signed2, &c2.spent_txout()));
    mine_checkpoint(&mut net, &signed2).await;
    net.mine(K - 1).await;
    net.node.module.follow_checkpoints().await.expect("follows");
    let base = net.checkpoints().await.base.expect("base");
    assert_eq!(
        (base.round, base.txid),
        (8, signed2.compute_txid().to_byte_array().to_vec())
    );

    // Round 12 is built on c₂.
    net.close_through(3 * INTERVAL).await;
    let r12 = net.checkpoint_round(12).await.expect("round");
    assert_eq!(r12.base.expect("base").round, 8);

    // The event log tells each step: checkpoint rounds closed, ready, confirmed.
    let mut events = net
        .node
        .finality
        .events(fpb::EventsRequest { from_sequence: 1 })
        .await
        .expect("stream")
        .into_inner();
    let mut seen = Vec::new();
    while let Ok(Some(Ok(e))) =
        tokio::time::timeout(std::time::Duration::from_millis(500), events.next()).await
    {
        match e.kind {
            Some(fpb::event::Kind::RoundClosed(c))
                if c.checkpoint() != fpb::CheckpointKind::None =>
            {
                seen.push(format!("closed {}", c.round));
            }
            Some(fpb::event::Kind::CheckpointReady(r)) => seen.push(format!("ready {}", r.round)),
            Some(fpb::event::Kind::CheckpointConfirmed(c)) => {
                seen.push(format!("confirmed {} at {}", c.round, c.height));
            }
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [
            "closed 4".to_string(),
            "ready 4".into(),
            format!("confirmed 4 at {}", base_height(&signed, &net).await),
            "closed 8".into(),
            "ready 8".into(),
            format!("confirmed 8 at {}", base_height(&signed2, &net).await),
            "closed 12".into(),
        ]
    );
}

/// The height of the block that holds `tx`.
async fn base_height(tx: &Transaction, net: &Net) -> u32 {
    match fiamma::btc::Backend::tx_status(&net.chain, &tx.compute_txid())
        .await
        .expect("status")
    {
        fiamma::btc::TxStatus::Confirmed { height, .. } => height,
        other => panic!("not confirmed: {other:?}"),
    }
}

#[sqlx::test]
async fn a_second_message_on_a_checkpoint_round_is_equivocation(pool: PgPool) {
    let (mut net, genesis, c1) = at_the_first_checkpoint(pool).await;
    let set = {
        let v: Vec<&TestVerifier> = net.verifiers.iter().collect();
        set_of(&v)
    };

    // The checkpoint vote first, then the round's §10 vote.
    net.checkpoint_vote(4, 4, &c1).await.expect("counted");
    assert_eq!(
        net.finality_vote(4, 4).await,
        fpb::VoteOutcome::Equivocation
    );
    // The §10 vote first (recorded, not counted), then the checkpoint vote.
    assert_eq!(net.finality_vote(3, 4).await, fpb::VoteOutcome::Disagrees);
    assert_eq!(
        net.checkpoint_vote(3, 4, &c1).await.expect("decided"),
        fpb::VoteOutcome::Equivocation
    );
    for seed in [3u8, 4] {
        let v = net.verifier(seed);
        let key = v.key();
        let evidence = net
            .node
            .finality
            .evidence(fpb::EvidenceRequest {
                verifier_btc_pk: key.serialize().to_vec(),
            })
            .await
            .expect("evidence")
            .into_inner()
            .evidence
            .expect("evidence");
        let c = evidence.checkpoint.expect("checkpoint evidence");
        assert_eq!(c.message, c1.message.as_bytes().to_vec());
        assert!(evidence.first.is_none() && evidence.second.is_none());
        let sk =
            bitcoin::secp256k1::SecretKey::from_slice(&evidence.extracted_secret_key).expect("key");
        assert_eq!(
            sk.x_only_public_key(SECP256K1).0,
            key,
            "the verifier's own key"
        );
        // Slashed: nothing more from it.
        let refused = net
            .checkpoint_vote(seed, 4, &c1)
            .await
            .expect_err("slashed");
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert!(
            refused.message().contains("slashed"),
            "{}",
            refused.message()
        );
    }
    // The equivocator's checkpoint vote was valid when it came, and stays counted (the
    // round's table is fixed at its close): with one more of four the round is not final,
    // with two it is.
    net.checkpoint_vote(1, 4, &c1).await.expect("counted");
    net.node.module.tally_now().await.expect("tally");
    assert_eq!(net.round(4).await.status(), fpb::RoundStatus::Open);
    net.checkpoint_vote(2, 4, &c1).await.expect("counted");
    net.node.module.tally_now().await.expect("tally");
    assert_eq!(net.round(4).await.status(), fpb::RoundStatus::Final);
    assert_eq!(
        net.checkpoint_round(4).await.expect("round").status(),
        fpb::CheckpointStatus::Ready
    );

    // Anyone holding a checkpoint vote and a second candidate M′ signed with the same
    // randomness proves the equivocation; the same message twice proves nothing.
    let other = expected_candidate(genesis, GENESIS_ROUND, &set, &set, 4, [9; 32]);
    let v1 = net.verifier(1);
    let r = v1.randomness.for_round(4).expect("committed");
    let vote = CheckpointVote::sign(&v1.keypair, &r.secret, &c1.message);
    let second = CheckpointVote::sign(&v1.keypair, &r.secret, &other.message);
    let key = v1.key();
    let evidence =
        |other_message: Vec<u8>, other_signature: [u8; 32]| fpb::EquivocationEvidenceRequest {
            first: None,
            second: None,
            checkpoint: Some(fpb::CheckpointEquivocation {
                vote: Some(checkpoint_vote_to_pb(4, &vote, &r.proof)),
                message: Vec::new(),
                other_message,
                other_signature: other_signature.to_vec(),
            }),
        };
    let same = net
        .node
        .finality
        .equivocation_evidence(evidence(
            c1.message.as_bytes().to_vec(),
            vote.signature.to_byte_array(),
        ))
        .await
        .expect_err("the same message");
    assert_eq!(same.code(), Code::InvalidArgument, "{same:?}");
    let forged = net
        .node
        .finality
        .equivocation_evidence(evidence(other.message.as_bytes().to_vec(), [7; 32]))
        .await
        .expect_err("a signature that does not verify");
    assert_eq!(forged.code(), Code::InvalidArgument, "{forged:?}");
    let proved = net
        .node
        .finality
        .equivocation_evidence(evidence(
            other.message.as_bytes().to_vec(),
            second.signature.to_byte_array(),
        ))
        .await
        .expect("equivocation proved")
        .into_inner();
    assert_eq!(proved.verifier_btc_pk, key.serialize().to_vec());
    let sk = bitcoin::secp256k1::SecretKey::from_slice(&proved.extracted_secret_key).expect("key");
    assert_eq!(sk.x_only_public_key(SECP256K1).0, key);
}

/// Four equal stakers, the genesis registered on round 2's set, and round 4 (the first
/// checkpoint round) closed: the net, the genesis and round 4's candidate.
async fn at_the_first_checkpoint(pool: PgPool) -> (Net, OutPoint, Candidate) {
    let mut net = Net::start(pool, &[1, 2, 3, 4]).await;
    net.close_through(GENESIS_ROUND).await;
    let script = net.checkpoints().await.genesis_script_pubkey;
    let fund = fund_genesis(&mut net, &bitcoin::ScriptBuf::from_bytes(script)).await;
    net.mine(K - 1).await;
    let genesis = OutPoint::new(fund, 0);
    net.register(genesis).await.expect("registered");
    net.close_through(INTERVAL).await;
    let set = {
        let v: Vec<&TestVerifier> = net.verifiers.iter().collect();
        set_of(&v)
    };
    let c1 = expected_candidate(
        genesis,
        GENESIS_ROUND,
        &set,
        &set,
        4,
        digest(&net.round(4).await.round_hash),
    );
    (net, genesis, c1)
}

#[sqlx::test]
async fn malformed_checkpoint_requests_are_named_and_change_nothing(pool: PgPool) {
    let (mut net, genesis, c1) = at_the_first_checkpoint(pool).await;
    let v = net.verifier(1);
    let r = v.randomness.for_round(4).expect("committed");
    let vote = CheckpointVote::sign(&v.keypair, &r.secret, &c1.message);
    let good = checkpoint_vote_to_pb(4, &vote, &r.proof);
    let mut short_key = good.clone();
    short_key.verifier_btc_pk.pop();
    let mut short_sig = good.clone();
    short_sig.signature.pop();
    let mut no_proof = good.clone();
    no_proof.proof = None;
    for (vote, field) in [
        (None, "checkpoint_vote"),
        (Some(short_key), "checkpoint_vote.verifier_btc_pk"),
        (Some(short_sig), "checkpoint_vote.signature"),
        (Some(no_proof), "checkpoint_vote.proof"),
    ] {
        let refused = net
            .node
            .finality
            .add_checkpoint_sig(fpb::AddCheckpointSigRequest { vote })
            .await
            .expect_err("malformed vote");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains(field),
            "{field}: {}",
            refused.message()
        );
    }
    let short_txid = net
        .node
        .finality
        .register_checkpoint_genesis(fpb::RegisterCheckpointGenesisRequest {
            txid: vec![7; 31],
            vout: 0,
        })
        .await
        .expect_err("31-byte txid");
    assert_eq!(short_txid.code(), Code::InvalidArgument);
    assert!(
        short_txid.message().contains("txid"),
        "{}",
        short_txid.message()
    );
    let far = net
        .checkpoint_round(u64::MAX)
        .await
        .expect_err("beyond the stored range");
    assert_eq!(far, Code::InvalidArgument);
    let bad_evidence = net
        .node
        .finality
        .equivocation_evidence(fpb::EquivocationEvidenceRequest {
            first: None,
            second: None,
            checkpoint: Some(fpb::CheckpointEquivocation {
                vote: Some(good),
                message: Vec::new(),
                other_message: vec![1, 2, 3],
                other_signature: vec![7; 31],
            }),
        })
        .await
        .expect_err("31-byte second signature");
    assert_eq!(bad_evidence.code(), Code::InvalidArgument);
    assert!(
        bad_evidence
            .message()
            .contains("checkpoint.other_signature"),
        "{}",
        bad_evidence.message()
    );

    // Nothing changed: no vote, no slashing, the same genesis.
    assert!(net
        .checkpoint_round(4)
        .await
        .expect("round")
        .votes
        .is_empty());
    let record = net
        .node
        .finality
        .verifier(fpb::VerifierRequest {
            verifier_btc_pk: net.verifier(1).key().serialize().to_vec(),
        })
        .await
        .expect("verifier")
        .into_inner()
        .verifier
        .expect("record");
    assert_eq!(record.status(), fpb::VerifierStatus::Active);
    let served = net.checkpoints().await.genesis.expect("genesis");
    assert_eq!(served.txid, genesis.txid.to_byte_array().to_vec());
}

#[sqlx::test]
async fn the_genesis_encodes_the_first_round_with_a_set(pool: PgPool) {
    let mut net = Net::start(pool, &[]).await;
    net.close_through(GENESIS_ROUND + 1).await;
    let served = net.checkpoints().await;
    assert!(served.genesis_script_pubkey.is_empty());
    assert_eq!(served.genesis_script_round, 0);
    let refused = net
        .register(OutPoint::new(Txid::from_byte_array([7; 32]), 0))
        .await
        .expect_err("no set yet");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused
            .message()
            .contains("no checkpoint set from round 2 on yet"),
        "{}",
        refused.message()
    );
    net.add_verifier(1, true).await;
    net.close_through(GENESIS_ROUND + 2).await;
    let served = net.checkpoints().await;
    assert_eq!(served.genesis_script_round, GENESIS_ROUND + 2);
    let set = set_of(&[net.verifier(1)]);
    assert_eq!(
        served.genesis_script_pubkey,
        CheckpointOutput::new(&set, &recovery_leaf())
            .script_pubkey()
            .to_bytes()
    );
    let fund = fund_genesis(
        &mut net,
        &bitcoin::ScriptBuf::from_bytes(served.genesis_script_pubkey),
    )
    .await;
    net.mine(K - 1).await;
    let genesis = net
        .register(OutPoint::new(fund, 0))
        .await
        .expect("registered");
    assert_eq!(genesis.round, GENESIS_ROUND + 2);
}

#[sqlx::test]
async fn a_node_without_checkpoints_says_so(pool: PgPool) {
    let mut node = start(pool).await;
    let status = node
        .finality
        .checkpoints(fpb::CheckpointsRequest {})
        .await
        .expect_err("no checkpoints");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("[checkpoint]"),
        "{}",
        status.message()
    );
}
