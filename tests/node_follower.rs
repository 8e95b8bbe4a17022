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

/// The delegation of `reg` as the node serves it.
async fn stored(node: &mut Node, reg: &Registration) -> pb::Delegation {
    node.client
        .delegation(pb::DelegationRequest {
            staking_txid: reg.staking_tx.compute_txid().to_string(),
        })
        .await
        .expect("query")
        .into_inner()
        .delegation
        .expect("present")
}

/// `reg`'s unbonding transaction with the covenant signatures the node stored and the
/// staker's own: ready to broadcast.
async fn signed_unbonding_tx(
    node: &mut Node,
    reg: &Registration,
    staker: &bitcoin::secp256k1::Keypair,
    verifier: &bitcoin::secp256k1::Keypair,
    time: u32,
) -> Transaction {
    let stored = stored(node, reg).await;
    let p = params();
    let keys = StakingKeys::new(
        xonly(staker),
        &[xonly(verifier)],
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
    let staker_sig = sign(&sighashes(reg).unbonding, staker);
    let output = TaprootOutput::staking(&keys, time).expect("output");
    let mut unbonding_tx = reg.unbonding_tx.clone();
    unbonding_tx.input[0].witness =
        unbonding_witness(&output, &keys, &covenant_sigs, &staker_sig).expect("witness");
    unbonding_tx
}

/// Registers `reg` over gRPC and has the covenant quorum co-sign it: VERIFIED.
async fn register_verified(
    node: &mut Node,
    reg: &Registration,
    verifier: &bitcoin::secp256k1::Keypair,
) {
    node.client
        .create_delegation(delegation_request(reg))
        .await
        .expect("registered");
    cosign(node, reg, verifier).await;
}

/// The covenant quorum's signatures on `reg`.
async fn cosign(node: &mut Node, reg: &Registration, verifier: &bitcoin::secp256k1::Keypair) {
    for member in 0..QUORUM as u8 {
        node.client
            .add_covenant_sigs(covenant_request(reg, &covenant(member), xonly(verifier)))
            .await
            .expect("co-signed");
    }
}

/// A fresh embedded chain of `blocks` blocks paying OP_TRUE, with the coinbase outputs of
/// its first `coinbases` blocks (spendable once 100 blocks are built on them).
async fn chain_with_coinbases(
    blocks: u32,
    coinbases: usize,
) -> (EmbeddedBackend, Vec<(OutPoint, Amount)>) {
    let chain = EmbeddedBackend::new(RegtestChain::in_memory().expect("embedded chain"));
    let mined = chain.mine(blocks, &anyone()).await.expect("mines");
    let mut outs = Vec::new();
    for hash in &mined.hashes[..coinbases] {
        let block = chain.block(hash).await.expect("backend").expect("block");
        let cb = &block.txdata[0];
        outs.push((OutPoint::new(cb.compute_txid(), 0), cb.output[0].value));
    }
    (chain, outs)
}

async fn status(node: &mut Node, reg: &Registration) -> pb::DelegationStatus {
    status_of(&mut node.client, &reg.staking_tx.compute_txid().to_string()).await
}

#[sqlx::test]
async fn the_follower_activates_unbonds_and_expires_from_the_chain(pool: PgPool) {
    let mut node = start(pool).await;
    // Two spendable coinbases: blocks 1 and 2, mature after 100 more.
    let (chain, coinbases) = chain_with_coinbases(102, 2).await;
    let counting = Arc::new(Counting::new(chain.clone()));
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
        register_verified(&mut node, reg, &verifier).await;
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
    let unbonding_tx = signed_unbonding_tx(&mut node, &unbonds, &s1, &verifier, 1000).await;
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
    let (chain, coinbases) = chain_with_coinbases(101, 1).await;
    let verifier = keypair(10);
    let staker = keypair(20);
    let staking_tx = funded_staking_tx(
        coinbases[0].0,
        coinbases[0].1,
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
    register_verified(&mut node, &reg, &verifier).await;
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

/// The embedded backend, counting the per-delegation lookups the follower makes; it can be
/// made to fail every call (`dead`) or to never answer (`hung`).
struct Counting {
    inner: EmbeddedBackend,
    lookups: std::sync::atomic::AtomicUsize,
    dead: std::sync::atomic::AtomicBool,
    hung: std::sync::atomic::AtomicBool,
}

impl Counting {
    fn new(inner: EmbeddedBackend) -> Self {
        Counting {
            inner,
            lookups: Default::default(),
            dead: Default::default(),
            hung: Default::default(),
        }
    }

    async fn gate(&self) -> Result<(), fiamma::btc::BackendError> {
        if self.hung.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.dead.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(fiamma::btc::BackendError::Transport(
                "connection refused".into(),
            ));
        }
        Ok(())
    }

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
        self.gate().await?;
        self.inner.tip().await
    }
    async fn block_hash(
        &self,
        height: u32,
    ) -> Result<Option<bitcoin::BlockHash>, fiamma::btc::BackendError> {
        self.gate().await?;
        self.inner.block_hash(height).await
    }
    async fn header(
        &self,
        hash: &bitcoin::BlockHash,
    ) -> Result<Option<fiamma::btc::HeaderEntry>, fiamma::btc::BackendError> {
        self.gate().await?;
        self.inner.header(hash).await
    }
    async fn block(
        &self,
        hash: &bitcoin::BlockHash,
    ) -> Result<Option<bitcoin::Block>, fiamma::btc::BackendError> {
        self.gate().await?;
        self.inner.block(hash).await
    }
    async fn transaction(
        &self,
        txid: &bitcoin::Txid,
    ) -> Result<Option<Transaction>, fiamma::btc::BackendError> {
        self.gate().await?;
        self.inner.transaction(txid).await
    }
    async fn tx_status(
        &self,
        txid: &bitcoin::Txid,
    ) -> Result<fiamma::btc::TxStatus, fiamma::btc::BackendError> {
        self.gate().await?;
        self.count();
        self.inner.tx_status(txid).await
    }
    async fn outpoint_status(
        &self,
        outpoint: &OutPoint,
    ) -> Result<fiamma::btc::OutPointStatus, fiamma::btc::BackendError> {
        self.gate().await?;
        self.count();
        self.inner.outpoint_status(outpoint).await
    }
    async fn broadcast(
        &self,
        tx: &Transaction,
    ) -> Result<bitcoin::Txid, fiamma::btc::BroadcastError> {
        self.inner.broadcast(tx).await
    }
    async fn broadcast_package(
        &self,
        txs: &[Transaction],
    ) -> Result<Vec<bitcoin::Txid>, fiamma::btc::BroadcastError> {
        self.inner.broadcast_package(txs).await
    }
}

#[sqlx::test]
async fn open_delegations_are_looked_up_again_only_when_the_tip_or_the_state_moved(pool: PgPool) {
    let mut node = start(pool).await;
    let chain = EmbeddedBackend::new(RegtestChain::in_memory().expect("embedded chain"));
    chain.mine(3, &anyone()).await.expect("mines");
    let counting = Arc::new(Counting::new(chain.clone()));
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

/// A delegation never included k-deep within `pending_expiry_blocks` of its registration
/// expires, PENDING or VERIFIED alike, and keeps neither covenant signatures nor
/// transactions (but the staking slashing transaction, which slashing evidence reads);
/// signatures for it are refused afterwards and change nothing.
#[sqlx::test]
async fn unincluded_delegations_expire_and_free_what_they_hold(pool: PgPool) {
    let mut p = params();
    p.limits.pending_expiry_blocks = 5;
    let mut node = start_with(pool, vec![p]).await;
    let chain = EmbeddedBackend::new(RegtestChain::in_memory().expect("embedded chain"));
    chain.mine(3, &anyone()).await.expect("mines");
    let follower = Follower::new(
        Arc::new(chain.clone()) as Arc<dyn Backend>,
        node.module.clone(),
        bitcoin::Network::Regtest,
    );
    assert_eq!(follower.poll().await.expect("follows"), Some(3));
    let verifier = keypair(10);
    node.client
        .create_verifier(verifier_request(10))
        .await
        .expect("verifier");
    // Registered at tip 3: both expire at tip 3 + 5 = 8.
    let pending = registration(20, xonly(&verifier), 1);
    let verified = registration(21, xonly(&verifier), 2);
    register_verified(&mut node, &verified, &verifier).await;
    node.client
        .create_delegation(delegation_request(&pending))
        .await
        .expect("registered");
    node.client
        .add_covenant_sigs(covenant_request(&pending, &covenant(0), xonly(&verifier)))
        .await
        .expect("one signature, below the quorum");
    chain.mine(4, &anyone()).await.expect("mines");
    assert_eq!(follower.poll().await.expect("follows"), Some(7));
    assert_eq!(
        status(&mut node, &pending).await,
        pb::DelegationStatus::Pending
    );
    assert_eq!(
        status(&mut node, &verified).await,
        pb::DelegationStatus::Verified
    );

    chain.mine(1, &anyone()).await.expect("mines");
    assert_eq!(follower.poll().await.expect("follows"), Some(8));
    for reg in [&pending, &verified] {
        assert_eq!(status(&mut node, reg).await, pb::DelegationStatus::Expired);
        let stored = stored(&mut node, reg).await;
        assert!(stored.covenant_sigs.is_empty(), "signatures freed");
        assert!(stored.staking_tx.is_empty() && stored.unbonding_tx.is_empty());
        assert!(stored.unbonding_slashing_tx.is_empty());
        assert!(!stored.slashing_tx.is_empty(), "kept for slashing evidence");
    }
    let before = last_event(&mut node.client).await;
    let refused = node
        .client
        .add_covenant_sigs(covenant_request(&pending, &covenant(1), xonly(&verifier)))
        .await
        .expect_err("expired");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(refused.message().contains("EXPIRED") && refused.message().len() < 1024);
    assert_eq!(
        last_event(&mut node.client).await,
        before,
        "nothing changed"
    );
    // The follower no longer looks them up: nothing moves at the next block.
    chain.mine(1, &anyone()).await.expect("mines");
    assert_eq!(follower.poll().await.expect("follows"), Some(9));
    assert_eq!(last_event(&mut node.client).await, before);
}

/// Verifier 10, and staker 20's delegation to it (T = 1000) funded by `coinbase`, co-signed
/// and its staking transaction broadcast: (registration, staker, verifier).
async fn staked(
    node: &mut Node,
    chain: &EmbeddedBackend,
    coinbase: (OutPoint, Amount),
) -> (
    Registration,
    bitcoin::secp256k1::Keypair,
    bitcoin::secp256k1::Keypair,
) {
    let verifier = keypair(10);
    node.client
        .create_verifier(verifier_request(10))
        .await
        .expect("verifier");
    let staker = keypair(20);
    let staking_tx = funded_staking_tx(coinbase.0, coinbase.1, &staker, xonly(&verifier), 1000);
    let reg = registration_of(20, xonly(&verifier), staking_tx, 1000);
    register_verified(node, &reg, &verifier).await;
    chain.broadcast(&reg.staking_tx).await.expect("accepted");
    (reg, staker, verifier)
}

/// Overall gRPC health of `node`, waiting up to 5 s for it to become `want`.
async fn health_becomes(node: &Node, want: tonic_health::ServingStatus) {
    let mut client = tonic_health::pb::health_client::HealthClient::new(node.channel.clone());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let got = client
            .check(tonic_health::pb::HealthCheckRequest {
                service: "fiamma.staking.v1.Staking".into(),
            })
            .await
            .expect("health")
            .into_inner()
            .status;
        if got == want as i32 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health stays {got}, want {want:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The embedded chain's block at `height` of the active chain.
async fn hash_at(chain: &EmbeddedBackend, height: u32) -> bitcoin::BlockHash {
    chain
        .block_hash(height)
        .await
        .expect("backend")
        .expect("in the chain")
}

/// Reorgs of depth 1..=k are followed and leave the module consistent: an activation below
/// the fork stands, a spend whose block left the chain is undone (and seen again when it is
/// mined again). A reorg deeper than k stops the node (NOT_SERVING with a reason) until the
/// chain is sane again.
#[sqlx::test]
async fn reorgs_up_to_k_are_followed_and_deeper_ones_stop_the_node(pool: PgPool) {
    use tonic_health::ServingStatus;
    let mut node = start(pool).await;
    let (chain, coinbases) = chain_with_coinbases(101, 1).await;
    let follower = Follower::new(
        Arc::new(chain.clone()) as Arc<dyn Backend>,
        node.module.clone(),
        bitcoin::Network::Regtest,
    );
    assert_eq!(follower.poll().await.expect("follows"), Some(101));
    let (reg, staker, verifier) = staked(&mut node, &chain, coinbases[0]).await;
    // Included at 102, k = 2 deep at 104.
    chain.mine(3, &anyone()).await.expect("mines");
    assert_eq!(follower.poll().await.expect("follows"), Some(104));
    assert_eq!(status(&mut node, &reg).await, pb::DelegationStatus::Active);
    health_becomes(&node, ServingStatus::Serving).await;

    for depth in 1..=K {
        let tip = chain.tip().await.expect("tip").height;
        let replaced = hash_at(&chain, tip - depth + 1).await;
        chain
            .shared()
            .write()
            .await
            .invalidate_block(&replaced)
            .expect("invalidated");
        // The backend is `depth` ≤ k behind: nothing to do yet, and no alarm.
        follower.poll().await.expect("within the limit");
        chain.mine(depth + 1, &anyone()).await.expect("new branch");
        assert_eq!(
            follower.poll().await.expect("reorg followed"),
            Some(tip + 1),
            "depth {depth}"
        );
        let followed = node
            .module
            .header_chain()
            .read()
            .expect("lock")
            .as_ref()
            .map(|c| c.tip().hash);
        assert_eq!(followed, Some(chain.tip().await.expect("tip").hash));
        assert_eq!(status(&mut node, &reg).await, pb::DelegationStatus::Active);
        assert_eq!(node.module.health().not_serving_reason(), None);
    }

    // A spend whose block is reorged away (depth 1, the spend back in the mempool and not
    // in the new branch) is undone; mined again, it is seen again.
    let unbonding_tx = signed_unbonding_tx(&mut node, &reg, &staker, &verifier, 1000).await;
    chain
        .broadcast(&unbonding_tx)
        .await
        .expect("unbonding accepted");
    let spent_in = chain.mine(1, &anyone()).await.expect("mines").hashes[0];
    follower.poll().await.expect("follows");
    assert_eq!(
        status(&mut node, &reg).await,
        pb::DelegationStatus::Unbonded
    );
    {
        let shared = chain.shared();
        let mut c = shared.write().await;
        c.invalidate_block(&spent_in).expect("invalidated");
        assert!(c.mempool().contains(&unbonding_tx.compute_txid()));
        for _ in 0..2 {
            c.mine_empty_block(&anyone(), fiamma::btc::regtest::unix_now())
                .expect("empty block");
        }
    }
    follower.poll().await.expect("reorg followed");
    assert_eq!(
        status(&mut node, &reg).await,
        pb::DelegationStatus::Active,
        "the spend left the chain"
    );
    chain
        .mine(1, &anyone())
        .await
        .expect("mines the spend again");
    follower.poll().await.expect("follows");
    assert_eq!(
        status(&mut node, &reg).await,
        pb::DelegationStatus::Unbonded
    );

    // Deeper than k: the node stops and says why.
    let tip = chain.tip().await.expect("tip");
    let first_gone = hash_at(&chain, tip.height - K).await;
    chain
        .shared()
        .write()
        .await
        .invalidate_block(&first_gone)
        .expect("invalidated");
    let e = follower.poll().await.expect_err("k + 1 behind");
    assert!(e.to_string().contains("more than the reorg limit"), "{e}");
    let reason = node
        .module
        .health()
        .not_serving_reason()
        .expect("not serving");
    assert!(reason.contains("reorg") && reason.len() < 1024, "{reason}");
    health_becomes(&node, ServingStatus::NotServing).await;
    // A heavier branch forking below the limit keeps it stopped.
    let heavier = chain.mine(K + 2, &anyone()).await.expect("mines").hashes;
    follower.poll().await.expect_err("no common block within k");
    health_becomes(&node, ServingStatus::NotServing).await;
    // Back to the old chain: the node resumes on its own.
    {
        let shared = chain.shared();
        let mut c = shared.write().await;
        c.invalidate_block(&heavier[0]).expect("invalidated");
        c.reconsider_block(&first_gone).expect("reconsidered");
        assert_eq!(c.tip(), tip);
    }
    follower.poll().await.expect("sane again");
    assert_eq!(node.module.health().not_serving_reason(), None);
    health_becomes(&node, ServingStatus::Serving).await;
    assert_eq!(
        status(&mut node, &reg).await,
        pb::DelegationStatus::Unbonded
    );
}

/// A backend that fails, or hangs, for longer than the stall timeout makes the node
/// NOT_SERVING with the reason; the first step that succeeds again makes it SERVING.
#[sqlx::test]
async fn a_dead_or_hung_backend_stops_the_node_after_the_stall_timeout(pool: PgPool) {
    use std::sync::atomic::Ordering::SeqCst;
    use std::time::Duration;
    use tonic_health::ServingStatus;
    let node = start(pool).await;
    let chain = EmbeddedBackend::new(RegtestChain::in_memory().expect("embedded chain"));
    chain.mine(3, &anyone()).await.expect("mines");
    let flaky = Arc::new(Counting::new(chain.clone()));
    let stall = Duration::from_millis(400);
    let follower = Follower::new(
        flaky.clone() as Arc<dyn Backend>,
        node.module.clone(),
        bitcoin::Network::Regtest,
    )
    .with_stall_timeout(stall);
    assert_eq!(follower.poll().await.expect("follows"), Some(3));

    flaky.dead.store(true, SeqCst);
    follower.poll().await.expect_err("dead");
    assert_eq!(
        node.module.health().not_serving_reason(),
        None,
        "one failure within the stall timeout is only retried"
    );
    tokio::time::sleep(stall).await;
    follower.poll().await.expect_err("still dead");
    let reason = node.module.health().not_serving_reason().expect("stalled");
    assert!(reason.contains("connection refused"), "{reason}");
    health_becomes(&node, ServingStatus::NotServing).await;

    flaky.dead.store(false, SeqCst);
    chain.mine(1, &anyone()).await.expect("mines");
    assert_eq!(follower.poll().await.expect("back"), Some(4));
    health_becomes(&node, ServingStatus::Serving).await;

    // A backend that accepts the call and never answers is cut off by the stall timeout.
    flaky.hung.store(true, SeqCst);
    let started = tokio::time::Instant::now();
    let e = follower.poll().await.expect_err("hung");
    assert!(
        started.elapsed() < stall * 3,
        "bounded by the stall timeout"
    );
    assert!(e.to_string().contains("no answer"), "{e}");
    health_becomes(&node, ServingStatus::NotServing).await;
    flaky.hung.store(false, SeqCst);
    follower.poll().await.expect("back");
    health_becomes(&node, ServingStatus::Serving).await;
}

/// With params versions of different k the reorg limit is the largest k, so a reorg within
/// it can take away the block that activated a delegation of a smaller-k version: the
/// activation is undone and proved again on the new chain (ACTIVE again when the staking
/// transaction is k-deep there, VERIFIED while it is not).
#[sqlx::test]
async fn a_reorg_takes_back_an_activation_above_the_fork(pool: PgPool) {
    let mut later = params();
    later.btc_confirmation_depth = 4;
    later.btc_activation_height = 1000;
    let mut node = start_with(pool, vec![params(), later]).await;
    let (chain, coinbases) = chain_with_coinbases(101, 1).await;
    let follower = Follower::new(
        Arc::new(chain.clone()) as Arc<dyn Backend>,
        node.module.clone(),
        bitcoin::Network::Regtest,
    );
    assert_eq!(follower.poll().await.expect("follows"), Some(101));
    let (reg, _, _) = staked(&mut node, &chain, coinbases[0]).await;
    // Included at 102; ACTIVE at 104 under version 0 (k = 2).
    let first = chain.mine(3, &anyone()).await.expect("mines").hashes;
    assert_eq!(follower.poll().await.expect("follows"), Some(104));
    assert_eq!(status(&mut node, &reg).await, pb::DelegationStatus::Active);
    let start_of = |d: pb::Delegation| d.start_height;
    assert_eq!(start_of(stored(&mut node, &reg).await), 102);

    // Depth 3 (within the limit 4): the new branch mines the staking transaction again at
    // 102; the activation is undone and proved again there.
    chain
        .shared()
        .write()
        .await
        .invalidate_block(&first[0])
        .expect("invalidated");
    chain.mine(4, &anyone()).await.expect("new branch");
    assert_eq!(follower.poll().await.expect("reorg followed"), Some(105));
    assert_eq!(status(&mut node, &reg).await, pb::DelegationStatus::Active);

    // Depth 4: the new branch leaves the staking transaction in the mempool: VERIFIED.
    let replaced = hash_at(&chain, 102).await;
    {
        let shared = chain.shared();
        let mut c = shared.write().await;
        c.invalidate_block(&replaced).expect("invalidated");
        for _ in 0..5 {
            c.mine_empty_block(&anyone(), fiamma::btc::regtest::unix_now())
                .expect("empty block");
        }
    }
    assert_eq!(follower.poll().await.expect("reorg followed"), Some(106));
    assert_eq!(
        status(&mut node, &reg).await,
        pb::DelegationStatus::Verified
    );
    // Mined at 107 and 2 deep at 109: ACTIVE again.
    chain.mine(3, &anyone()).await.expect("mines");
    assert_eq!(follower.poll().await.expect("follows"), Some(109));
    assert_eq!(status(&mut node, &reg).await, pb::DelegationStatus::Active);
    assert_eq!(start_of(stored(&mut node, &reg).await), 107);

    // The event log tells the whole story.
    use pb::DelegationStatus as S;
    let mut events = node
        .client
        .events(pb::EventsRequest { from_sequence: 1 })
        .await
        .expect("stream")
        .into_inner();
    let mut path = Vec::new();
    while path.len() < 7 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
            .await
            .expect("events keep coming")
            .expect("open")
            .expect("event");
        if let Some(pb::event::Kind::DelegationStatusChanged(c)) = e.kind {
            path.push(c.to());
        }
    }
    assert_eq!(
        path,
        [
            S::Pending,
            S::Verified,
            S::Active,
            S::Verified,
            S::Active,
            S::Verified,
            S::Active
        ]
    );
}
