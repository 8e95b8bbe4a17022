//! The chain follower on the embedded regtest chain (Bitcoin Core's consensus engine): a
//! delegation registered and co-signed over gRPC becomes ACTIVE once its staking transaction
//! is k-deep, UNBONDED when the co-signed unbonding transaction is mined, and another one
//! EXPIRES by height; all observed by query and on the event stream.

mod node_support;

use std::sync::Arc;

use bitcoin::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use fiamma::btc::{Backend, EmbeddedBackend, RegtestChain};
use fiamma::node::follower::Follower;
use fiamma_proto::staking::v1 as pb;
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::registration::Registration;
use fiamma_staking::sighash::sign;
use fiamma_staking::taproot::TaprootOutput;
use fiamma_staking::witness::unbonding_witness;
use node_support::*;
use sqlx::PgPool;
use tokio_stream::StreamExt;

fn anyone() -> ScriptBuf {
    ScriptBuf::from_bytes(vec![0x51])
}

/// A staking transaction spending an OP_TRUE coinbase output into the staking output of
/// (staker, verifier, time) plus OP_TRUE change.
fn funded_staking_tx(
    coinbase: OutPoint,
    coinbase_value: Amount,
    staker: &bitcoin::secp256k1::Keypair,
    verifier: bitcoin::secp256k1::XOnlyPublicKey,
    time: u32,
) -> Transaction {
    let p = params();
    let keys = StakingKeys::new(
        xonly(staker),
        &[verifier],
        &p.covenant_pks,
        p.covenant_quorum,
    )
    .expect("distinct keys");
    let staking = TaprootOutput::staking(&keys, time).expect("valid time");
    let value = Amount::from_sat(VALUE);
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: coinbase,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![
            staking.txout(value),
            TxOut {
                value: coinbase_value - value - Amount::from_sat(10_000),
                script_pubkey: anyone(),
            },
        ],
    }
}

async fn status(node: &mut Node, reg: &Registration) -> pb::DelegationStatus {
    status_of(&mut node.client, &reg.staking_tx.compute_txid().to_string()).await
}

#[sqlx::test]
async fn the_follower_activates_unbonds_and_expires_from_the_chain(pool: PgPool) {
    let mut node = start(pool).await;
    let chain = EmbeddedBackend::new(RegtestChain::in_memory().expect("embedded chain"));
    // Two spendable coinbases: blocks 1 and 2, mature after 100 more.
    let mined = chain.mine(102, &anyone()).await.expect("mines");
    let mut coinbases = Vec::new();
    for hash in &mined.hashes[..2] {
        let block = chain.block(hash).await.expect("backend").expect("block");
        let cb = &block.txdata[0];
        coinbases.push((OutPoint::new(cb.compute_txid(), 0), cb.output[0].value));
    }
    let counting = Arc::new(Counting {
        inner: chain.clone(),
        lookups: Default::default(),
    });
    let backend: Arc<dyn Backend> = counting.clone();
    let follower = Follower::new(backend, node.module.clone(), bitcoin::Network::Regtest);
    assert_eq!(follower.step().await.expect("follows"), Some(102));

    let verifier = keypair(10);
    node.client
        .create_verifier(verifier_request(10))
        .await
        .expect("verifier");
    let (s1, s2) = (keypair(20), keypair(21));
    let unbonds = registration_of(
        20,
        xonly(&verifier),
        funded_staking_tx(coinbases[0].0, coinbases[0].1, &s1, xonly(&verifier), 1000),
        1000,
    );
    let expires = registration_of(
        21,
        xonly(&verifier),
        funded_staking_tx(coinbases[1].0, coinbases[1].1, &s2, xonly(&verifier), 20),
        20,
    );
    let mut events = node
        .client
        .events(pb::EventsRequest { from_sequence: 1 })
        .await
        .expect("stream")
        .into_inner();
    for reg in [&unbonds, &expires] {
        node.client
            .create_delegation(delegation_request(reg))
            .await
            .expect("registered");
        for member in 0..QUORUM as u8 {
            node.client
                .add_covenant_sigs(covenant_request(reg, &covenant(member), xonly(&verifier)))
                .await
                .expect("co-signed");
        }
        assert_eq!(status(&mut node, reg).await, pb::DelegationStatus::Verified);
        chain
            .broadcast(&reg.staking_tx)
            .await
            .expect("staking tx accepted by the mempool");
    }

    // Included at 103; k = 2 blocks must be built on it.
    chain.mine(2, &anyone()).await.expect("mines");
    follower.step().await.expect("follows");
    assert_eq!(
        status(&mut node, &unbonds).await,
        pb::DelegationStatus::Verified
    );
    chain.mine(1, &anyone()).await.expect("mines");
    follower.step().await.expect("follows");
    for reg in [&unbonds, &expires] {
        assert_eq!(status(&mut node, reg).await, pb::DelegationStatus::Active);
    }
    // Just activated: looked up once more at the next block, then only the blocks are read.
    chain.mine(1, &anyone()).await.expect("mines");
    follower.step().await.expect("follows");
    let lookups = counting.lookups();

    // Unbond: the staker broadcasts the unbonding transaction with the stored covenant
    // signatures and its own.
    let stored = node
        .client
        .delegation(pb::DelegationRequest {
            staking_txid: unbonds.staking_tx.compute_txid().to_string(),
        })
        .await
        .expect("query")
        .into_inner()
        .delegation
        .expect("present");
    let p = params();
    let keys = StakingKeys::new(
        xonly(&s1),
        &[xonly(&verifier)],
        &p.covenant_pks,
        p.covenant_quorum,
    )
    .expect("keys");
    let covenant_sigs: Vec<_> = stored
        .covenant_sigs
        .iter()
        .map(|c| {
            (
                fiamma_staking::keys::parse_xonly(&c.covenant_pk).expect("key"),
                bitcoin::secp256k1::schnorr::Signature::from_slice(&c.unbonding_sig).expect("sig"),
            )
        })
        .collect();
    let staker_sig = sign(&sighashes(&unbonds).unbonding, &s1);
    let output = TaprootOutput::staking(&keys, 1000).expect("output");
    let mut unbonding_tx = unbonds.unbonding_tx.clone();
    unbonding_tx.input[0].witness =
        unbonding_witness(&output, &keys, &covenant_sigs, &staker_sig).expect("witness");
    chain
        .broadcast(&unbonding_tx)
        .await
        .expect("unbonding tx accepted: covenant sigs are real");
    chain.mine(1, &anyone()).await.expect("mines");
    follower.step().await.expect("follows");
    assert_eq!(
        status(&mut node, &unbonds).await,
        pb::DelegationStatus::Unbonded
    );
    assert_eq!(
        counting.lookups(),
        lookups,
        "the spend of an ACTIVE delegation is found in the block, not by a lookup"
    );
    assert_eq!(
        status(&mut node, &expires).await,
        pb::DelegationStatus::Active
    );

    // Expiry: start 103 + T 20 = 123; tip + U (5) reaches it at 118.
    chain.mine(10, &anyone()).await.expect("mines");
    follower.step().await.expect("follows");
    assert_eq!(
        status(&mut node, &expires).await,
        pb::DelegationStatus::Active,
        "tip 117"
    );
    chain.mine(1, &anyone()).await.expect("mines");
    follower.step().await.expect("follows");
    assert_eq!(
        status(&mut node, &expires).await,
        pb::DelegationStatus::Expired,
        "tip 118"
    );

    // The stream carried each delegation's path.
    use pb::DelegationStatus as S;
    let mut last_of = std::collections::BTreeMap::new();
    let mut paths: std::collections::BTreeMap<String, Vec<S>> = Default::default();
    while paths.values().map(Vec::len).sum::<usize>() < 8 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
            .await
            .expect("events keep coming")
            .expect("open")
            .expect("event");
        if let Some(pb::event::Kind::DelegationStatusChanged(c)) = e.kind {
            last_of.insert(c.staking_txid.clone(), c.btc_height);
            paths
                .entry(c.staking_txid.clone())
                .or_default()
                .push(c.to());
        }
    }
    assert_eq!(
        paths[&unbonds.staking_tx.compute_txid().to_string()],
        vec![S::Pending, S::Verified, S::Active, S::Unbonded]
    );
    assert_eq!(
        paths[&expires.staking_tx.compute_txid().to_string()],
        vec![S::Pending, S::Verified, S::Active, S::Expired]
    );
    assert_eq!(last_of[&expires.staking_tx.compute_txid().to_string()], 118);

    // A restarted node (fresh module, same database) resumes from the stored header chain.
    let restarted = fiamma::node::module::StakingModule::new(
        node.module.store().clone(),
        fiamma_staking::params::ParamsVersions::new(vec![params()]).expect("params"),
        contexts(),
    )
    .await
    .expect("module restarts");
    let again = Follower::new(
        Arc::new(chain.clone()) as Arc<dyn Backend>,
        restarted,
        bitcoin::Network::Regtest,
    );
    assert_eq!(
        again.step().await.expect("follows"),
        None,
        "nothing new since"
    );
    chain.mine(1, &anyone()).await.expect("mines");
    assert_eq!(again.step().await.expect("follows"), Some(119));
}

#[sqlx::test]
async fn an_inclusion_proof_activates_against_the_followed_header_chain(pool: PgPool) {
    let mut node = start(pool).await;
    let chain = EmbeddedBackend::new(RegtestChain::in_memory().expect("embedded chain"));
    let mined = chain.mine(101, &anyone()).await.expect("mines");
    let block = chain
        .block(&mined.hashes[0])
        .await
        .expect("backend")
        .expect("block");
    let coinbase = &block.txdata[0];
    let verifier = keypair(10);
    let staker = keypair(20);
    let staking_tx = funded_staking_tx(
        OutPoint::new(coinbase.compute_txid(), 0),
        coinbase.output[0].value,
        &staker,
        xonly(&verifier),
        1000,
    );
    // The staking transaction is mined (3 blocks deep) before the delegation registers, so
    // the follower has synced the headers but has nothing to record.
    chain.broadcast(&staking_tx).await.expect("accepted");
    let included = chain.mine(3, &anyone()).await.expect("mines").hashes[0];
    let follower = Follower::new(
        Arc::new(chain.clone()) as Arc<dyn Backend>,
        node.module.clone(),
        bitcoin::Network::Regtest,
    );
    assert_eq!(follower.step().await.expect("follows"), Some(104));

    node.client
        .create_verifier(verifier_request(10))
        .await
        .expect("verifier");
    let reg = registration_of(20, xonly(&verifier), staking_tx, 1000);
    node.client
        .create_delegation(delegation_request(&reg))
        .await
        .expect("registered");
    for member in 0..QUORUM as u8 {
        node.client
            .add_covenant_sigs(covenant_request(&reg, &covenant(member), xonly(&verifier)))
            .await
            .expect("co-signed");
    }
    let block = chain
        .block(&included)
        .await
        .expect("backend")
        .expect("block");
    let txids: Vec<_> = block.txdata.iter().map(|t| t.compute_txid()).collect();
    let index = txids
        .iter()
        .position(|t| *t == reg.staking_tx.compute_txid())
        .expect("in the block");
    let proof = |index: usize| {
        let branch = fiamma_staking::light_client::MerkleBranch::from_txids(&txids, index as u32)
            .expect("branch");
        pb::AddInclusionProofRequest {
            staking_txid: reg.staking_tx.compute_txid().to_string(),
            proof: Some(pb::InclusionProof {
                block_hash: included.to_string(),
                tx_index: branch.index,
                merkle_branch: branch
                    .siblings
                    .iter()
                    .map(|h| bitcoin::hashes::Hash::to_byte_array(*h).to_vec())
                    .collect(),
            }),
        }
    };
    // The coinbase's branch does not prove the staking transaction.
    let wrong = node
        .client
        .add_inclusion_proof(proof(0))
        .await
        .expect_err("coinbase position");
    assert_eq!(wrong.code(), tonic::Code::InvalidArgument, "{wrong:?}");
    let r = node
        .client
        .add_inclusion_proof(proof(index))
        .await
        .expect("proof accepted")
        .into_inner();
    assert_eq!(r.status(), pb::DelegationStatus::Active);
    assert_eq!((r.start_height, r.end_height), (102, 1102));
    let again = node
        .client
        .add_inclusion_proof(proof(index))
        .await
        .expect_err("recorded already");
    assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");
}

/// The embedded backend, counting the per-delegation lookups the follower makes.
struct Counting {
    inner: EmbeddedBackend,
    lookups: std::sync::atomic::AtomicUsize,
}

impl Counting {
    fn lookups(&self) -> usize {
        self.lookups.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn count(&self) {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Backend for Counting {
    async fn tip(&self) -> Result<fiamma::btc::ChainTip, fiamma::btc::BackendError> {
        self.inner.tip().await
    }
    async fn block_hash(
        &self,
        height: u32,
    ) -> Result<Option<bitcoin::BlockHash>, fiamma::btc::BackendError> {
        self.inner.block_hash(height).await
    }
    async fn header(
        &self,
        hash: &bitcoin::BlockHash,
    ) -> Result<Option<fiamma::btc::HeaderEntry>, fiamma::btc::BackendError> {
        self.inner.header(hash).await
    }
    async fn block(
        &self,
        hash: &bitcoin::BlockHash,
    ) -> Result<Option<bitcoin::Block>, fiamma::btc::BackendError> {
        self.inner.block(hash).await
    }
    async fn transaction(
        &self,
        txid: &bitcoin::Txid,
    ) -> Result<Option<Transaction>, fiamma::btc::BackendError> {
        self.inner.transaction(txid).await
    }
    async fn tx_status(
        &self,
        txid: &bitcoin::Txid,
    ) -> Result<fiamma::btc::TxStatus, fiamma::btc::BackendError> {
        self.count();
        self.inner.tx_status(txid).await
    }
    async fn outpoint_status(
        &self,
        outpoint: &OutPoint,
    ) -> Result<fiamma::btc::OutPointStatus, fiamma::btc::BackendError> {
        self.count();
        self.inner.outpoint_status(outpoint).await
    }
    async fn broadcast(
        &self,
        tx: &Transaction,
    ) -> Result<bitcoin::Txid, fiamma::btc::BroadcastError> {
        self.inner.broadcast(tx).await
    }
}

#[sqlx::test]
async fn open_delegations_are_looked_up_again_only_when_the_tip_or_the_state_moved(pool: PgPool) {
    let mut node = start(pool).await;
    let chain = EmbeddedBackend::new(RegtestChain::in_memory().expect("embedded chain"));
    chain.mine(3, &anyone()).await.expect("mines");
    let counting = Arc::new(Counting {
        inner: chain.clone(),
        lookups: Default::default(),
    });
    let backend: Arc<dyn Backend> = counting.clone();
    let follower = Follower::new(backend, node.module.clone(), bitcoin::Network::Regtest);
    assert_eq!(follower.step().await.expect("follows"), Some(3));

    let verifier = keypair(10);
    node.client
        .create_verifier(verifier_request(10))
        .await
        .expect("verifier");
    node.client
        .create_delegation(delegation_request(&registration(20, xonly(&verifier), 1)))
        .await
        .expect("registered");
    assert_eq!(follower.step().await.expect("follows"), None);
    let after_registration = counting.lookups();
    assert!(after_registration > 0, "a new delegation is looked up");
    for _ in 0..3 {
        assert_eq!(follower.step().await.expect("follows"), None);
    }
    assert_eq!(
        counting.lookups(),
        after_registration,
        "nothing moved: no lookups"
    );
    chain.mine(1, &anyone()).await.expect("mines");
    assert_eq!(follower.step().await.expect("follows"), Some(4));
    assert!(
        counting.lookups() > after_registration,
        "a new block is looked at"
    );
}
