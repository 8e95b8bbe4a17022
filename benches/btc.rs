//! Embedded regtest chain throughput: mining and validating (through Bitcoin Core's
//! consensus engine) a block of 1,000 BIP-0341 key-path spends, and accepting
//! transactions into the mempool, in process and through `sendrawtransaction` over HTTP.

#[path = "../tests/btc_support/mod.rs"]
mod btc_support;

use bitcoin::{Amount, OutPoint, Sequence, Transaction, TxOut};
use bitcoincore_rpc::{Auth, Client, RpcApi};
use btc_support::{unsigned, KeyWallet};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fiamma::btc::regtest::unix_now;
use fiamma::btc::RegtestChain;

const SPENDS: usize = 1_000;
const FEE: Amount = Amount::from_sat(500);

/// A chain whose mempool holds `SPENDS` signed key-path spends of distinct confirmed outputs.
fn chain_with_full_mempool(wallet: &KeyWallet) -> RegtestChain {
    let mut chain = RegtestChain::in_memory().expect("chain");
    let now = unix_now();
    chain.mine(101, &wallet.script(), now).expect("mine");
    let coinbase = chain.block_at(1).expect("read").expect("block").txdata[0].clone();
    // The fan-out is about 43 vbytes per output; pay 1 sat/vB and then some.
    let fan_out_fee = Amount::from_sat(50 * SPENDS as u64);
    let each = Amount::from_sat((coinbase.output[0].value - fan_out_fee).to_sat() / SPENDS as u64);
    let outputs = vec![
        TxOut {
            value: each,
            script_pubkey: wallet.script(),
        };
        SPENDS
    ];
    let mut fan_out = unsigned(
        vec![(OutPoint::new(coinbase.compute_txid(), 0), Sequence::MAX)],
        outputs,
    );
    wallet.sign(&mut fan_out, &coinbase.output[..1]);
    chain.submit_transaction(&fan_out).expect("fan out");
    chain.mine(1, &wallet.script(), now).expect("mine");
    let fan_txid = fan_out.compute_txid();
    for vout in 0..SPENDS {
        let prev = OutPoint::new(fan_txid, u32::try_from(vout).expect("vout"));
        let tx = wallet.spend(prev, each, wallet.script(), FEE);
        chain.submit_transaction(&tx).expect("spend");
    }
    chain
}

fn mine_block_of_taproot_spends(c: &mut Criterion) {
    let wallet = KeyWallet::new(11);
    let mut group = c.benchmark_group("embedded_chain");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SPENDS as u64));
    group.bench_function("mine_and_validate_block_of_1000_taproot_spends", |b| {
        b.iter_batched(
            || chain_with_full_mempool(&wallet),
            |mut chain| {
                let mined = chain
                    .mine_block(&wallet.script(), unix_now())
                    .expect("mine");
                assert!(mined.dropped.is_empty());
                assert!(chain.mempool().is_empty());
                chain
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// An endless chain of unconfirmed spends, each of the previous one's only output.
struct SpendChain {
    wallet: KeyWallet,
    prev: OutPoint,
    value: Amount,
}

impl SpendChain {
    fn start(chain: &mut RegtestChain, wallet: KeyWallet) -> Self {
        chain.mine(101, &wallet.script(), unix_now()).expect("mine");
        let coinbase = chain.block_at(1).expect("read").expect("block").txdata[0].clone();
        SpendChain {
            prev: OutPoint::new(coinbase.compute_txid(), 0),
            value: coinbase.output[0].value,
            wallet,
        }
    }

    fn next(&mut self) -> Transaction {
        let tx = self
            .wallet
            .spend(self.prev, self.value, self.wallet.script(), FEE);
        self.prev = OutPoint::new(tx.compute_txid(), 0);
        self.value -= FEE;
        tx
    }
}

fn accept_transactions(c: &mut Criterion) {
    let mut group = c.benchmark_group("mempool");
    group.throughput(Throughput::Elements(1));

    let mut chain = RegtestChain::in_memory().expect("chain");
    let mut spends = SpendChain::start(&mut chain, KeyWallet::new(12));
    group.bench_function("accept_taproot_spend_in_process", |b| {
        b.iter_batched(
            || spends.next(),
            |tx| chain.submit_transaction(&tx).expect("accepted"),
            BatchSize::SmallInput,
        )
    });

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let served = runtime.block_on(btc_support::serve());
    let client = Client::new(
        &served.url,
        Auth::UserPass(btc_support::USER.into(), btc_support::PASSWORD.into()),
    )
    .expect("client");
    let mut rpc_spends = {
        let shared = served.embedded.shared();
        let mut chain = shared.blocking_write();
        SpendChain::start(&mut chain, KeyWallet::new(13))
    };
    group.bench_function("sendrawtransaction_over_http", |b| {
        b.iter_batched(
            || rpc_spends.next(),
            |tx| client.send_raw_transaction(&tx).expect("accepted"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, mine_block_of_taproot_spends, accept_transactions);
criterion_main!(benches);
