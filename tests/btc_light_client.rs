//! The staking crate's light client follows a chain through the Bitcoin backend: headers
//! validated by Bitcoin Core on the embedded chain also pass the light client's proof-of-work
//! and chain rules, and a transaction's Merkle proof from `tx_status` (`gettxoutproof` over
//! RPC) proves it k-deep on the light client's best chain.

mod btc_support;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, Network, OutPoint, Txid};
use btc_support::{serve, KeyWallet, Miner};
use fiamma::btc::{Backend, TxStatus};
use fiamma_staking::light_client::{Checkpoint, HeaderChain, InclusionError};

/// Feeds the light client every backend header above its tip.
async fn follow(backend: &dyn Backend, light: &mut HeaderChain) {
    let tip = backend.tip().await.expect("tip");
    let mut headers = Vec::new();
    for height in light.tip().height + 1..=tip.height {
        let hash = backend
            .block_hash(height)
            .await
            .expect("hash")
            .expect("block");
        headers.push(
            backend
                .header(&hash)
                .await
                .expect("header")
                .expect("known")
                .header,
        );
    }
    let now = u64::from(fiamma::btc::regtest::unix_now());
    light
        .accept_headers(&headers, now)
        .expect("headers accepted");
    assert_eq!(light.tip().hash, tip.hash);
}

async fn light_client_story(backend: &dyn Backend, miner: &dyn Miner) {
    let wallet = KeyWallet::new(21);
    let mut light = HeaderChain::new(Network::Regtest, Checkpoint::genesis(Network::Regtest), 6)
        .expect("light client");
    miner.mine(101, &wallet.address).await;
    follow(backend, &mut light).await;

    let hash = backend.block_hash(1).await.expect("hash").expect("block");
    let coinbase = backend
        .block(&hash)
        .await
        .expect("block")
        .expect("block")
        .txdata[0]
        .clone();
    let spend = wallet.spend(
        OutPoint::new(coinbase.compute_txid(), 0),
        coinbase.output[0].value,
        wallet.script(),
        Amount::from_sat(1_000),
    );
    let txid = backend.broadcast(&spend).await.expect("accepted");
    miner.mine(1, &wallet.address).await;
    let proof = match backend.tx_status(&txid).await.expect("status") {
        TxStatus::Confirmed { proof, .. } => proof,
        other => panic!("not mined: {other:?}"),
    };

    follow(backend, &mut light).await;
    let shallow = light.verify_merkle_block(&proof, txid).expect("included");
    assert_eq!((shallow.height, shallow.index, shallow.depth), (102, 1, 0));
    assert!(!shallow.is_k_deep(6));

    miner.mine(6, &wallet.address).await;
    follow(backend, &mut light).await;
    let deep = light.verify_merkle_block(&proof, txid).expect("included");
    assert!(deep.is_k_deep(6), "depth {}", deep.depth);

    // The proof names only this transaction.
    let other = Txid::from_byte_array([7; 32]);
    assert!(matches!(
        light.verify_merkle_block(&proof, other),
        Err(InclusionError::BadMerkleProof { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn light_client_follows_the_embedded_chain() {
    let served = serve().await;
    light_client_story(&served.embedded, &served.embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn light_client_follows_the_chain_over_json_rpc() {
    let served = serve().await;
    light_client_story(&served.rpc, &served.rpc).await;
}
