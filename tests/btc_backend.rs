//! One backend test suite, run against the in-process chain and against the RPC backend
//! talking to the JSON-RPC server over loopback.

mod btc_support;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, OutPoint, ScriptBuf, TxOut, Txid};
use btc_support::{csv_script, csv_spend, serve, KeyWallet, Miner};
use fiamma::btc::{Backend, BroadcastError, OutPointStatus, RejectionKind, TxStatus};

const FEE: Amount = Amount::from_sat(1_000);

fn rejection(result: Result<Txid, BroadcastError>) -> (RejectionKind, String) {
    match result {
        Err(BroadcastError::Rejected(r)) => (r.kind, r.reason),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

async fn coinbase_at(backend: &dyn Backend, height: u32) -> (OutPoint, TxOut) {
    let hash = backend
        .block_hash(height)
        .await
        .expect("hash")
        .expect("block");
    let block = backend.block(&hash).await.expect("block").expect("block");
    let coinbase = &block.txdata[0];
    (
        OutPoint::new(coinbase.compute_txid(), 0),
        coinbase.output[0].clone(),
    )
}

/// The whole suite; `backend` and `miner` must front the same fresh chain.
async fn backend_suite(backend: &dyn Backend, miner: &dyn Miner) {
    let wallet = KeyWallet::new(7);
    let other = KeyWallet::new(8);

    // Chain queries.
    let start = backend.tip().await.expect("tip");
    assert_eq!(start.height, 0);
    let mined = miner.mine(101, &wallet.address).await;
    assert_eq!(mined.len(), 101);
    let tip = backend.tip().await.expect("tip");
    assert_eq!((tip.height, tip.hash), (101, mined[100]));
    for (height, hash) in [(1u32, mined[0]), (101, mined[100])] {
        assert_eq!(backend.block_hash(height).await.expect("hash"), Some(hash));
        let entry = backend.header(&hash).await.expect("header").expect("known");
        assert_eq!((entry.height, entry.header.block_hash()), (height, hash));
    }
    assert_eq!(backend.block_hash(102).await.expect("hash"), None);
    assert_eq!(
        backend
            .header(&BlockHash::all_zeros())
            .await
            .expect("header"),
        None
    );
    assert_eq!(
        backend.block(&BlockHash::all_zeros()).await.expect("block"),
        None
    );

    // A mature coinbase is unspent with 101 confirmations.
    let (coin1, out1) = coinbase_at(backend, 1).await;
    assert_eq!(out1.script_pubkey, wallet.script());
    assert_eq!(
        backend.outpoint_status(&coin1).await.expect("status"),
        OutPointStatus::Unspent { confirmations: 101 }
    );

    // A BIP-0341 key-path spend enters the mempool.
    let spend = wallet.spend(coin1, out1.value, other.script(), FEE);
    let txid = backend.broadcast(&spend).await.expect("accepted");
    assert_eq!(txid, spend.compute_txid());
    assert_eq!(
        backend.tx_status(&txid).await.expect("status"),
        TxStatus::InMempool
    );
    assert_eq!(
        backend.transaction(&txid).await.expect("tx"),
        Some(spend.clone())
    );
    assert_eq!(
        backend.outpoint_status(&coin1).await.expect("status"),
        OutPointStatus::SpentInMempool { txid, vin: 0 }
    );
    assert_eq!(
        backend
            .outpoint_status(&OutPoint::new(txid, 0))
            .await
            .expect("status"),
        OutPointStatus::Unspent { confirmations: 0 }
    );

    // Refusals, each with Bitcoin Core's category and reason.
    let double = wallet.spend(coin1, out1.value, wallet.script(), FEE * 2);
    let (kind, reason) = rejection(backend.broadcast(&double).await);
    assert_eq!(kind, RejectionKind::Rejected);
    assert!(reason.starts_with("txn-mempool-conflict"), "{reason}");

    let (coin2, out2) = coinbase_at(backend, 2).await;
    let mut forged = wallet.spend(coin2, out2.value, other.script(), FEE);
    let mut sig = forged.input[0].witness.to_vec();
    sig[0][5] ^= 1;
    forged.input[0].witness = bitcoin::Witness::from_slice(&sig);
    let (kind, reason) = rejection(backend.broadcast(&forged).await);
    assert_eq!(kind, RejectionKind::Rejected);
    assert!(
        reason.starts_with("mandatory-script-verify-flag-failed"),
        "{reason}"
    );

    let (young, young_out) = coinbase_at(backend, 101).await;
    let premature = wallet.spend(young, young_out.value, other.script(), FEE);
    let (kind, reason) = rejection(backend.broadcast(&premature).await);
    assert_eq!(kind, RejectionKind::Rejected);
    assert!(
        reason.starts_with("bad-txns-premature-spend-of-coinbase"),
        "{reason}"
    );

    // Fund a CSV output in the same block as the spend.
    let csv_value = out2.value - FEE;
    let fund_csv = wallet.spend(
        coin2,
        out2.value,
        ScriptBuf::new_p2wsh(&csv_script(2).wscript_hash()),
        FEE,
    );
    let fund_txid = backend.broadcast(&fund_csv).await.expect("csv funding");

    // Mining confirms both, with a Merkle proof against the block header.
    let block_hash = miner.mine(1, &wallet.address).await[0];
    let header = backend
        .header(&block_hash)
        .await
        .expect("header")
        .expect("known");
    match backend.tx_status(&txid).await.expect("status") {
        TxStatus::Confirmed {
            block_hash: in_block,
            height,
            confirmations,
            proof,
        } => {
            assert_eq!((in_block, height, confirmations), (block_hash, 102, 1));
            assert_eq!(proof.header, header.header);
            let (mut matches, mut indexes) = (Vec::new(), Vec::new());
            let root = proof
                .txn
                .extract_matches(&mut matches, &mut indexes)
                .expect("proof");
            assert_eq!(root, header.header.merkle_root);
            assert_eq!(matches, vec![txid]);
        }
        other => panic!("not confirmed: {other:?}"),
    }
    assert_eq!(
        backend.outpoint_status(&coin1).await.expect("status"),
        OutPointStatus::Spent {
            txid,
            vin: 0,
            height: 102
        }
    );

    // A mined transaction sent again, and a spend of a spent output.
    let (kind, _) = rejection(backend.broadcast(&spend).await);
    assert_eq!(kind, RejectionKind::AlreadyConfirmed);
    let (kind, reason) = rejection(backend.broadcast(&double).await);
    assert_eq!(kind, RejectionKind::MissingOrSpentInputs);
    assert!(
        reason.starts_with("bad-txns-inputs-missingorspent"),
        "{reason}"
    );

    // CSV: one confirmation is not enough for a 2-block relative lock; two are.
    let csv_out = OutPoint::new(fund_txid, 0);
    let early = csv_spend(csv_out, csv_value - FEE, 2, 2, wallet.script());
    let (kind, reason) = rejection(backend.broadcast(&early).await);
    assert_eq!(kind, RejectionKind::Rejected);
    assert!(reason.starts_with("non-BIP68-final"), "{reason}");
    // Asking for less than the script's lock satisfies BIP-68 but fails OP_CHECKSEQUENCEVERIFY.
    let short = csv_spend(csv_out, csv_value - FEE, 2, 1, wallet.script());
    let (_, reason) = rejection(backend.broadcast(&short).await);
    assert!(
        reason.starts_with("mandatory-script-verify-flag-failed"),
        "{reason}"
    );
    miner.mine(1, &wallet.address).await;
    let csv_txid = backend
        .broadcast(&early)
        .await
        .expect("csv spend after 2 blocks");
    miner.mine(1, &wallet.address).await;
    assert!(matches!(
        backend.tx_status(&csv_txid).await.expect("status"),
        TxStatus::Confirmed { height: 104, .. }
    ));

    // Unknown things.
    let nobody = Txid::from_byte_array([0x42; 32]);
    assert_eq!(
        backend.tx_status(&nobody).await.expect("status"),
        TxStatus::Unknown
    );
    assert_eq!(backend.transaction(&nobody).await.expect("tx"), None);
    assert_eq!(
        backend
            .outpoint_status(&OutPoint::new(nobody, 0))
            .await
            .expect("status"),
        OutPointStatus::Unknown
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_the_embedded_chain() {
    let served = serve().await;
    backend_suite(&served.embedded, &served.embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_over_json_rpc() {
    let served = serve().await;
    backend_suite(&served.rpc, &served.rpc).await;
}
