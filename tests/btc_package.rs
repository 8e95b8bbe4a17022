//! Package broadcast (`Backend::broadcast_package`, `submitpackage`) on both backends: a 0-fee
//! TRUC parent with a 0-sat pay-to-anchor output (the checkpoint candidate's shape,
//! CHECKPOINTS.md §13.7) is refused alone and accepted with a child that pays for both; a child
//! that pays too little, a version 2 child and a package in the wrong order are refused, and
//! then nothing enters the mempool.

mod btc_support;

use bitcoin::hashes::Hash;
use bitcoin::{transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxOut, Witness};
use btc_support::{serve, unsigned, KeyWallet, Miner};
use fiamma::btc::{Backend, BroadcastError, RejectionKind, TxStatus};

/// `OP_1 <0x4e73>`: pay-to-anchor.
fn p2a() -> ScriptBuf {
    ScriptBuf::from_bytes(vec![0x51, 0x02, 0x4e, 0x73])
}

const SUBSIDY: Amount = Amount::from_sat(50 * 100_000_000);

fn coinbase_of(block: &bitcoin::Block) -> OutPoint {
    OutPoint::new(block.txdata[0].compute_txid(), 0)
}

/// A version 3 spend of `coin` (worth SUBSIDY, the wallet's) back to the wallet with all of
/// it, plus a 0-sat P2A output: fee 0.
fn zero_fee_parent(wallet: &KeyWallet, coin: OutPoint) -> Transaction {
    let mut tx = unsigned(
        vec![(coin, Sequence::MAX)],
        vec![
            TxOut {
                value: SUBSIDY,
                script_pubkey: wallet.script(),
            },
            TxOut {
                value: Amount::ZERO,
                script_pubkey: p2a(),
            },
        ],
    );
    tx.version = transaction::Version(3);
    wallet.sign(
        &mut tx,
        &[TxOut {
            value: SUBSIDY,
            script_pubkey: wallet.script(),
        }],
    );
    tx
}

/// A child of `parent` spending its P2A output (empty witness) and the wallet's `coin`, paying
/// `fee`, with `version`.
fn child(
    wallet: &KeyWallet,
    parent: &Transaction,
    coin: OutPoint,
    fee: Amount,
    version: i32,
) -> Transaction {
    let anchor = OutPoint::new(parent.compute_txid(), 1);
    let mut tx = unsigned(
        vec![(coin, Sequence::MAX), (anchor, Sequence::MAX)],
        vec![TxOut {
            value: SUBSIDY - fee,
            script_pubkey: wallet.script(),
        }],
    );
    tx.version = transaction::Version(version);
    let spent = [
        TxOut {
            value: SUBSIDY,
            script_pubkey: wallet.script(),
        },
        TxOut {
            value: Amount::ZERO,
            script_pubkey: p2a(),
        },
    ];
    wallet.sign(&mut tx, &spent);
    // The P2A input's witness is empty; `sign` gave every input a key-path signature.
    tx.input[1].witness = Witness::new();
    tx
}

fn vsize(tx: &Transaction) -> u64 {
    tx.vsize() as u64
}

fn refused(result: Result<Vec<bitcoin::Txid>, BroadcastError>) -> (bitcoin::Txid, String) {
    match result {
        Err(BroadcastError::Rejected(r)) => {
            assert_eq!(r.kind, RejectionKind::Rejected, "{r}");
            (r.txid, r.reason)
        }
        other => panic!("not refused: {other:?}"),
    }
}

async fn unknown(backend: &dyn Backend, txs: &[&Transaction]) {
    for tx in txs {
        assert_eq!(
            backend.tx_status(&tx.compute_txid()).await.expect("status"),
            TxStatus::Unknown,
            "{} entered the mempool",
            tx.compute_txid()
        );
    }
}

async fn package_story(backend: &dyn Backend, miner: &dyn Miner) {
    let wallet = KeyWallet::new(7);
    miner.mine(102, &wallet.address).await;
    let block = |h| async move {
        let hash = backend.block_hash(h).await.expect("hash").expect("block");
        backend.block(&hash).await.expect("read").expect("block")
    };
    let parent = zero_fee_parent(&wallet, coinbase_of(&block(1).await));
    let coin = coinbase_of(&block(2).await);

    // Alone, the 0-fee parent is refused, by either call.
    let err = backend.broadcast(&parent).await.unwrap_err();
    assert!(err.to_string().contains("min relay fee not met"), "{err}");
    let (txid, reason) = refused(
        backend
            .broadcast_package(std::slice::from_ref(&parent))
            .await,
    );
    assert_eq!(txid, parent.compute_txid());
    assert!(reason.contains("min relay fee not met"), "{reason}");

    // A child paying its own size only: the package's rate is below 1 sat/vB.
    let sized = child(&wallet, &parent, coin, Amount::from_sat(1_000), 3);
    let own = Amount::from_sat(vsize(&sized));
    let cheap = child(&wallet, &parent, coin, own, 3);
    let (txid, reason) = refused(
        backend
            .broadcast_package(&[parent.clone(), cheap.clone()])
            .await,
    );
    assert_eq!(txid, cheap.compute_txid());
    assert!(reason.contains("package-fee-too-low"), "{reason}");
    unknown(backend, &[&parent, &cheap]).await;

    // Paying for both, but version 2: TRUC refuses a non-TRUC child of a TRUC parent.
    let both = Amount::from_sat(vsize(&parent) + vsize(&sized));
    let v2 = child(&wallet, &parent, coin, both, 2);
    let (txid, reason) = refused(
        backend
            .broadcast_package(&[parent.clone(), v2.clone()])
            .await,
    );
    assert_eq!(txid, v2.compute_txid());
    assert!(reason.contains("TRUC-violation"), "{reason}");
    unknown(backend, &[&parent, &v2]).await;

    // The right child, in the wrong order.
    let good = child(&wallet, &parent, coin, both, 3);
    let (_, reason) = refused(
        backend
            .broadcast_package(&[good.clone(), parent.clone()])
            .await,
    );
    assert!(reason.contains("package topology"), "{reason}");
    unknown(backend, &[&parent, &good]).await;

    // Parent first, then the child paying for both: both enter, and are mined together.
    let txids = backend
        .broadcast_package(&[parent.clone(), good.clone()])
        .await
        .expect("package accepted");
    assert_eq!(txids, vec![parent.compute_txid(), good.compute_txid()]);
    for tx in [&parent, &good] {
        assert_eq!(
            backend.tx_status(&tx.compute_txid()).await.expect("status"),
            TxStatus::InMempool
        );
    }
    // Sending it again changes nothing.
    backend
        .broadcast_package(&[parent.clone(), good.clone()])
        .await
        .expect("again");
    let mined = miner.mine(1, &wallet.address).await;
    for tx in [&parent, &good] {
        match backend.tx_status(&tx.compute_txid()).await.expect("status") {
            TxStatus::Confirmed { block_hash, .. } => assert_eq!(block_hash, mined[0]),
            other => panic!("{} not mined: {other:?}", tx.compute_txid()),
        }
    }
    assert_ne!(parent.compute_txid().to_byte_array(), [0; 32]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_broadcast_on_the_embedded_chain() {
    let served = serve().await;
    package_story(&served.embedded, &served.embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_broadcast_over_json_rpc_submitpackage() {
    let served = serve().await;
    package_story(&served.rpc, &served.rpc).await;
}
