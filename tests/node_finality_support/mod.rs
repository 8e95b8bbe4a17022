//! Shared setup of the finality gRPC tests and benchmark: a node serving the staking and the
//! finality services on a loopback port over a real PostgreSQL, verifiers registered through
//! the staking API with ACTIVE stake, and verifier-side helpers (randomness commitments and
//! EOTS votes signed with `fiamma_finality`).
#![allow(dead_code)]

#[path = "../node_support/mod.rs"]
pub mod node_support;

use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Keypair, XOnlyPublicKey};
use bitcoin::Txid;
use fiamma::node::finality::{grpc as finality_grpc, FinalityModule, FinalityParams};
use fiamma::node::grpc::StakingGrpc;
use fiamma::node::module::StakingModule;
use fiamma::node::store::{Description, NewDelegation, NewVerifier, Pop, PopKind, Store};
use fiamma_finality::committed::CommittedRandomness;
use fiamma_finality::merkle::Digest;
use fiamma_finality::rounds::{CommitmentRules, LivenessRules, Vote};
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::finality::v1::finality_client::FinalityClient;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use fiamma_proto::staking::v1::staking_server::StakingServer;
use fiamma_staking::params::{ParamsVersions, ResourceLimits};
use fiamma_staking::state::{DelegationState, Rules};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tonic::transport::Channel;

pub use node_support::{contexts, keypair, xonly};

/// Commitments must cover at least this many rounds.
pub const MIN_PUB_RAND: u64 = 10;
/// Votes on round h are accepted while the latest round is at most h + VOTE_EXPIRY.
pub const VOTE_EXPIRY: u64 = 10;

/// The finality parameters of the tests (the timer is not used unless a test starts it).
pub fn finality_params() -> FinalityParams {
    FinalityParams {
        round_interval: Duration::from_secs(3600),
        vote_expiry: VOTE_EXPIRY,
        max_active_verifiers: 100,
        commitment: CommitmentRules {
            min_pub_rand: MIN_PUB_RAND,
            max_pub_rand: ResourceLimits::default().max_pub_rand,
            max_start_ahead: 1_000,
        },
        liveness: LivenessRules::new(20, 10, 5).expect("valid rules"),
        limits: ResourceLimits::default(),
        proof_retention: 2 * VOTE_EXPIRY,
    }
}

/// A node with both services on a loopback port.
pub struct Node {
    /// The server's address, `http://127.0.0.1:port`.
    pub addr: String,
    pub finality: FinalityClient<Channel>,
    pub staking: StakingClient<Channel>,
    pub module: FinalityModule,
    pub staking_module: StakingModule,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the node over `pool` (migrated by `#[sqlx::test]`).
pub async fn start(pool: PgPool) -> Node {
    start_with(pool, finality_params()).await
}

/// Starts the node with `params`.
pub async fn start_with(pool: PgPool, params: FinalityParams) -> Node {
    let module = FinalityModule::new(pool.clone(), params, contexts());
    start_modules(pool, node_support::params(), module).await
}

/// Starts the node with the staking params `staking` and the finality module `module` (over
/// `pool`).
pub async fn start_modules(
    pool: PgPool,
    staking: fiamma_staking::params::Params,
    module: FinalityModule,
) -> Node {
    let store = Store::from_pool(pool);
    let versions = ParamsVersions::new(vec![staking]).expect("valid params");
    let staking_module = StakingModule::new(store, versions, contexts())
        .await
        .expect("staking module starts");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(StakingServer::new(StakingGrpc::new(staking_module.clone())))
        .add_service(finality_grpc::server(module.clone()))
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY a small response waits for the client's delayed ACK.
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            async {
                let _ = stopped.await;
            },
        );
    tokio::spawn(server);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connects");
    Node {
        addr: format!("http://{addr}"),
        finality: FinalityClient::new(channel.clone()),
        staking: StakingClient::new(channel),
        module,
        staking_module,
        stop: Some(stop),
    }
}

/// A verifier: its key pair and its committed randomness.
pub struct TestVerifier {
    pub keypair: Keypair,
    pub randomness: CommittedRandomness,
}

impl TestVerifier {
    /// Verifier `seed`, with randomness committed for rounds `start .. start + num − 1`.
    pub fn new(seed: u8, start: u64, num: u64) -> Self {
        let keypair = keypair(seed);
        let randomness =
            CommittedRandomness::derive(&keypair.secret_key(), &contexts().chain_id, start, num)
                .expect("valid range");
        TestVerifier {
            keypair,
            randomness,
        }
    }

    pub fn key(&self) -> XOnlyPublicKey {
        xonly(&self.keypair)
    }

    /// The signed CommitPubRandList request of its randomness.
    pub fn commit_request(&self) -> fpb::CommitPubRandListRequest {
        let c = self.randomness.commitment();
        let signature = c.sign(&self.keypair, &contexts(), &[9; 32]);
        fpb::CommitPubRandListRequest {
            verifier_btc_pk: self.key().serialize().to_vec(),
            start_round: c.start(),
            num_pub_rand: c.num(),
            commitment: c.root().to_vec(),
            signature: signature.as_ref().to_vec(),
        }
    }

    /// Its vote on `round_hash` for `round`.
    pub fn vote(&self, round: u64, round_hash: Digest) -> Vote {
        let randomness = self.randomness.for_round(round).expect("committed round");
        Vote::sign(&self.keypair, randomness, &contexts(), round, round_hash)
    }
}

/// The AddFinalitySig request carrying `vote`.
pub fn vote_request(vote: &Vote) -> fpb::AddFinalitySigRequest {
    fpb::AddFinalitySigRequest {
        vote: Some(fiamma::node::finality::wire::vote_to_pb(vote)),
    }
}

/// Registers verifier `seed` through the staking API (real proof of possession).
pub async fn create_verifier(node: &mut Node, seed: u8) {
    node.staking
        .create_verifier(node_support::verifier_request(seed))
        .await
        .expect("verifier registered");
}

/// Registers a verifier straight in the staking store (for large benchmark sets, where the
/// PoP checks are not what is measured).
pub async fn insert_verifier(store: &Store, pk: XOnlyPublicKey) {
    let mut tx = store.begin().await.expect("begin");
    tx.insert_verifier(&NewVerifier {
        btc_pk: pk,
        account: node_support::account_text(1),
        description: Description {
            moniker: "bench".into(),
            ..Description::default()
        },
        commission: "0.05".into(),
        pop: Pop {
            kind: PopKind::Bip340,
            signature: vec![1; 64],
        },
    })
    .await
    .expect("insert verifier");
    tx.commit().await.expect("commit");
}

/// Gives `verifier` an ACTIVE delegation of `value` sat, taken through the staking state
/// machine (PENDING → VERIFIED with a covenant quorum → ACTIVE at k depth) and stored with the
/// staking store. `id` makes its transaction ids unique.
pub async fn stake(store: &Store, verifier: XOnlyPublicKey, value: u64, id: u32) {
    let txid = |tag: u8| {
        let mut bytes = [tag; 32];
        bytes[..4].copy_from_slice(&id.to_be_bytes());
        Txid::from_byte_array(bytes)
    };
    let reg = NewDelegation {
        staking_txid: txid(0xaa),
        staker_account: node_support::account_text(2),
        staker_btc_pk: xonly(&keypair(250)),
        pop: Pop {
            kind: PopKind::Bip340,
            signature: vec![2; 64],
        },
        verifier_btc_pk: verifier,
        staking_time_blocks: 1000,
        staking_value_sat: value,
        staking_tx: vec![0xde, 0xad],
        staking_output_index: 0,
        slashing_tx: vec![1],
        staker_slashing_sig: vec![3; 64],
        unbonding_time_blocks: 10,
        unbonding_tx: vec![2],
        unbonding_txid: txid(0xbb),
        unbonding_slashing_tx: vec![3],
        staker_unbonding_slashing_sig: vec![4; 64],
        params_version: 0,
    };
    let committee = vec![xonly(&keypair(251))];
    let rules = Rules {
        covenant_pks: &committee,
        covenant_quorum: 1,
        confirmation_depth: 1,
    };
    let mut state = DelegationState::new(reg.staking_time_blocks, reg.unbonding_time_blocks);
    let mut tx = store.begin().await.expect("begin");
    tx.insert_delegation(&reg, &state).await.expect("insert");
    state
        .add_covenant_signatures(committee[0], &rules, 1)
        .expect("member of the committee");
    state.record_inclusion(1, &rules, 2).expect("k-deep");
    tx.save_state(&reg.staking_txid, &state, None)
        .await
        .expect("save");
    tx.commit().await.expect("commit");
}

/// The valid Fiamma proof (verifying key, proof, public inputs).
pub fn fiamma_proof(set: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/zk/fiamma-arkworks-groth16-bn254/"
    );
    let read = |name: &str| std::fs::read(format!("{dir}{set}/{name}")).expect("vector present");
    (
        read("vk.bitvm"),
        read("proof.bitvm"),
        read("public_input.bitvm"),
    )
}

/// A SubmitProof request for Groth16 over BN254.
pub fn proof_request(parts: (Vec<u8>, Vec<u8>, Vec<u8>)) -> fpb::SubmitProofRequest {
    fpb::SubmitProofRequest {
        proof_system: 1,
        verifying_key: parts.0,
        proof: parts.1,
        public_inputs: parts.2,
    }
}

/// The Fiamma proof with the "challenge" set's proof in place of its own: well formed, but
/// the verification equation fails (verdict invalid).
pub fn corrupted_proof() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (vk, _, inputs) = fiamma_proof("valid");
    let (_, other, _) = fiamma_proof("challenge");
    (vk, other, inputs)
}
