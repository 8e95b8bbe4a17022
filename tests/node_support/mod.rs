//! Shared setup of the node's gRPC tests: a real server on a loopback port over a real
//! PostgreSQL database, test keys, and builders for valid requests.
#![allow(dead_code)]

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Keypair, SecretKey, XOnlyPublicKey, SECP256K1};
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxIn, Txid};
use fiamma::node::grpc::convert::{create_delegation_request, proof_to_pb};
use fiamma::node::grpc::serve;
use fiamma::node::module::StakingModule;
use fiamma::node::store::Store;
use fiamma_covenant::delegation::DelegationSighashes;
use fiamma_covenant::signing::sign_delegation;
use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use fiamma_staking::account::{Account, ACCOUNT_HRP};
use fiamma_staking::context::SigningContexts;
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::params::{Params, ParamsVersions};
use fiamma_staking::pop::{sign_pop, PopRole, ProofOfPossession};
use fiamma_staking::registration::{build_registration, Registration, StakerChoices};
use fiamma_staking::taproot::TaprootOutput;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// Committee size and quorum of the test params (5-of-9, as in the benchmark).
pub const COMMITTEE: u8 = 9;
pub const QUORUM: u32 = 5;
/// k of the test params.
pub const K: u32 = 2;
/// U of the test params.
pub const UNBONDING_TIME: u32 = 5;
pub const STAKING_TIME: u32 = 100;
pub const VALUE: u64 = 1_000_000;

/// A key pair from a one-byte seed (1..=255).
pub fn keypair(i: u8) -> Keypair {
    let sk = SecretKey::from_slice(&[i; 32]).expect("1..=255 repeated is a valid scalar");
    Keypair::from_secret_key(SECP256K1, &sk)
}

pub fn xonly(kp: &Keypair) -> XOnlyPublicKey {
    kp.x_only_public_key().0
}

/// Covenant member `i` (0-based) of the test committee.
pub fn covenant(i: u8) -> Keypair {
    keypair(200 + i)
}

pub fn params() -> Params {
    Params {
        covenant_pks: (0..COMMITTEE).map(|i| xonly(&covenant(i))).collect(),
        covenant_quorum: QUORUM,
        min_staking_value_sat: 10_000,
        max_staking_value_sat: 10_000_000_000,
        min_staking_time_blocks: 10,
        max_staking_time_blocks: 65_535,
        slashing_pk_script: ScriptBuf::from_bytes([&[0x00, 0x14][..], &[0x5a; 20]].concat()),
        min_slashing_tx_fee_sat: 1_000,
        slashing_rate: "0.1".parse().expect("valid rate"),
        unbonding_time_blocks: UNBONDING_TIME,
        unbonding_fee_sat: 1_000,
        btc_confirmation_depth: K,
        max_active_verifiers: 100,
        min_pub_rand: 10,
        identifiable_staking_tag: None,
        btc_activation_height: 0,
        max_verifiers_per_delegation: 1,
        limits: fiamma_staking::params::ResourceLimits::default(),
    }
}

pub fn contexts() -> SigningContexts {
    SigningContexts::new("fiamma-test", "fmma1staking")
}

pub fn account(i: u8) -> Account {
    Account([i; 20])
}

pub fn account_text(i: u8) -> String {
    account(i)
        .to_bech32(ACCOUNT_HRP)
        .expect("fmma is a valid prefix")
}

/// A node serving on a loopback port.
pub struct Node {
    pub client: StakingClient<Channel>,
    /// The connection, for the health and reflection clients.
    pub channel: Channel,
    pub module: StakingModule,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the gRPC server over `pool` (already migrated by `#[sqlx::test]`).
pub async fn start(pool: PgPool) -> Node {
    start_with(pool, vec![params()]).await
}

/// [`start`] with the params versions `versions` instead of [`params`] alone.
pub async fn start_with(pool: PgPool, versions: Vec<Params>) -> Node {
    let store = Store::from_pool(pool);
    let versions = ParamsVersions::new(versions).expect("valid params");
    let module = StakingModule::new(store, versions, contexts())
        .await
        .expect("module starts");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(module.clone(), None, listener, async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connects");
    Node {
        client: StakingClient::new(channel.clone()),
        channel,
        module,
        stop: Some(stop),
    }
}

/// A valid CreateVerifier request for verifier key pair `seed`.
pub fn verifier_request(seed: u8) -> pb::CreateVerifierRequest {
    let kp = keypair(seed);
    let pop = sign_pop(&contexts(), PopRole::Verifier, &account(seed), &kp);
    pb::CreateVerifierRequest {
        account: account_text(seed),
        btc_pk: xonly(&kp).serialize().to_vec(),
        pop: Some(proof_to_pb(&ProofOfPossession::Bip340(pop))),
        description: Some(pb::Description {
            moniker: format!("verifier {seed}"),
            ..Default::default()
        }),
        commission: "0.05".into(),
    }
}

/// A staking transaction paying the staking output of (staker, verifier) from a made-up
/// outpoint `nonce`.
pub fn staking_tx(
    staker: XOnlyPublicKey,
    verifier: XOnlyPublicKey,
    value: u64,
    nonce: u32,
) -> Transaction {
    let p = params();
    let keys = StakingKeys::new(staker, &[verifier], &p.covenant_pks, p.covenant_quorum)
        .expect("distinct keys");
    let output = TaprootOutput::staking(&keys, STAKING_TIME).expect("valid time");
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([7; 32]), nonce),
            ..TxIn::default()
        }],
        output: vec![output.txout(Amount::from_sat(value))],
    }
}

/// A complete registration by staker `staker_seed` to `verifier`, staking output at index 0
/// of `staking_tx` with staking time `time`.
pub fn registration_of(
    staker_seed: u8,
    verifier: XOnlyPublicKey,
    staking_tx: Transaction,
    time: u32,
) -> Registration {
    let staker = keypair(staker_seed);
    build_registration(
        &params(),
        &contexts(),
        StakerChoices {
            staker: &staker,
            account: account(staker_seed),
            verifier_pks: vec![verifier],
            staking_tx,
            staking_output_index: 0,
            staking_time: time,
            slashing_fee: Amount::from_sat(2_000),
        },
    )
    .expect("registration builds")
}

/// A complete registration by staker `staker_seed` to `verifier` from made-up outpoint `nonce`.
pub fn registration(staker_seed: u8, verifier: XOnlyPublicKey, nonce: u32) -> Registration {
    let staker = xonly(&keypair(staker_seed));
    registration_of(
        staker_seed,
        verifier,
        staking_tx(staker, verifier, VALUE, nonce),
        STAKING_TIME,
    )
}

/// The CreateDelegation request carrying `reg`.
pub fn delegation_request(reg: &Registration) -> pb::CreateDelegationRequest {
    create_delegation_request(reg).expect("a registration the wire can carry")
}

/// The three messages the covenant signs for `reg`.
pub fn sighashes(reg: &Registration) -> DelegationSighashes {
    let p = params();
    let keys = StakingKeys::new(
        reg.staker_pk,
        &reg.verifier_pks,
        &p.covenant_pks,
        p.covenant_quorum,
    )
    .expect("distinct keys");
    DelegationSighashes::of_registration(reg, &keys).expect("sighashes")
}

/// Real covenant signatures by `member` on `reg`, adaptor-encrypted to `encrypt_to`.
pub fn covenant_request(
    reg: &Registration,
    member: &Keypair,
    encrypt_to: XOnlyPublicKey,
) -> pb::AddCovenantSigsRequest {
    let sigs = sign_delegation(
        member,
        &sighashes(reg),
        &[encrypt_to],
        &mut rand::thread_rng(),
    )
    .expect("signs");
    pb::AddCovenantSigsRequest {
        staking_txid: reg.staking_tx.compute_txid().to_string(),
        sigs: Some(pb::CovenantSignatures {
            covenant_pk: xonly(member).serialize().to_vec(),
            slashing_adaptor_sig: sigs.slashing[0].signature.to_bytes().to_vec(),
            unbonding_sig: sigs.unbonding.as_ref().to_vec(),
            unbonding_slashing_adaptor_sig: sigs.unbonding_slashing[0]
                .signature
                .to_bytes()
                .to_vec(),
        }),
    }
}

/// The sequence number of the newest event, read through the Events stream (replay).
pub async fn last_event(client: &mut StakingClient<Channel>) -> u64 {
    use tokio_stream::StreamExt;
    let mut stream = client
        .events(pb::EventsRequest { from_sequence: 1 })
        .await
        .expect("stream")
        .into_inner();
    let mut last = 0;
    // Replay ends when no event arrives for a while; sequences must be consecutive.
    while let Ok(Some(e)) =
        tokio::time::timeout(std::time::Duration::from_millis(500), stream.next()).await
    {
        let e = e.expect("event");
        assert_eq!(e.sequence, last + 1, "gap in the event log");
        last = e.sequence;
    }
    last
}

/// Every delegation, read through the Delegations query (one page of up to 1000).
pub async fn all_delegations(client: &mut StakingClient<Channel>) -> Vec<pb::Delegation> {
    client
        .delegations(pb::DelegationsRequest {
            page: Some(pb::PageRequest {
                page_token: String::new(),
                page_size: 1000,
            }),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .delegations
}

/// The status of one delegation, read through the Delegation query.
pub async fn status_of(
    client: &mut StakingClient<Channel>,
    staking_txid: &str,
) -> pb::DelegationStatus {
    client
        .delegation(pb::DelegationRequest {
            staking_txid: staking_txid.to_owned(),
        })
        .await
        .expect("delegation query")
        .into_inner()
        .delegation
        .expect("present")
        .status()
}
