//! Shared pieces of the Bitcoin tests and benchmarks: a BIP-0341 key-path wallet, a CSV
//! script, miners for both backends, and an in-process `fiamma regtest` server.
#![allow(dead_code)]

pub mod staking;

use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, TapTweak};
use bitcoin::secp256k1::{Message, Secp256k1};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::{
    absolute, opcodes, script, transaction, Address, Amount, BlockHash, Network, OutPoint,
    ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};
use fiamma::btc::mining::{assemble_block, next_block_time, BlockTemplate};
use fiamma::btc::regtest::{unix_now, ChainError};
use fiamma::btc::rpc_server::{self, RpcAuth, RpcServer};
use fiamma::btc::{EmbeddedBackend, RegtestChain, RpcBackend};

pub const USER: &str = "fiamma";
pub const PASSWORD: &str = "s3cret";

/// A single-key BIP-0341 wallet (key-path spends, no script tree).
pub struct KeyWallet {
    keypair: Keypair,
    pub address: Address,
}

impl KeyWallet {
    pub fn new(seed: u8) -> Self {
        let secp = Secp256k1::new();
        let keypair = Keypair::from_seckey_slice(&secp, &[seed; 32]).expect("key");
        let (xonly, _) = keypair.x_only_public_key();
        KeyWallet {
            keypair,
            address: Address::p2tr(&secp, xonly, None, Network::Regtest),
        }
    }

    pub fn script(&self) -> ScriptBuf {
        self.address.script_pubkey()
    }

    /// Signs every input of `tx` (all spending this wallet's outputs `spent`).
    pub fn sign(&self, tx: &mut Transaction, spent: &[TxOut]) {
        let secp = Secp256k1::new();
        let tweaked = self.keypair.tap_tweak(&secp, None).to_keypair();
        let mut cache = SighashCache::new(tx.clone());
        let sigs: Vec<_> = (0..spent.len())
            .map(|i| {
                let sighash = cache
                    .taproot_key_spend_signature_hash(
                        i,
                        &Prevouts::All(spent),
                        TapSighashType::Default,
                    )
                    .expect("sighash");
                let msg = Message::from_digest(sighash.to_byte_array());
                secp.sign_schnorr_no_aux_rand(&msg, &tweaked)
            })
            .collect();
        for (input, sig) in tx.input.iter_mut().zip(sigs) {
            input.witness = Witness::p2tr_key_spend(&bitcoin::taproot::Signature {
                signature: sig,
                sighash_type: TapSighashType::Default,
            });
        }
    }

    /// A signed spend of `prev` (worth `value`, paid to this wallet) to `to`, minus `fee`.
    pub fn spend(&self, prev: OutPoint, value: Amount, to: ScriptBuf, fee: Amount) -> Transaction {
        let mut tx = unsigned(
            vec![(prev, Sequence::MAX)],
            vec![TxOut {
                value: value - fee,
                script_pubkey: to,
            }],
        );
        self.sign(
            &mut tx,
            &[TxOut {
                value,
                script_pubkey: self.script(),
            }],
        );
        tx
    }
}

pub fn unsigned(inputs: Vec<(OutPoint, Sequence)>, outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: inputs
            .into_iter()
            .map(|(previous_output, sequence)| TxIn {
                previous_output,
                script_sig: ScriptBuf::new(),
                sequence,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    }
}

/// `<blocks> OP_CHECKSEQUENCEVERIFY OP_DROP OP_TRUE`: spendable by anyone once the output
/// has `blocks` confirmations.
pub fn csv_script(blocks: u16) -> ScriptBuf {
    script::Builder::new()
        .push_int(i64::from(blocks))
        .push_opcode(opcodes::all::OP_CSV)
        .push_opcode(opcodes::all::OP_DROP)
        .push_opcode(opcodes::OP_TRUE)
        .into_script()
}

/// Spends a P2WSH(`csv_script(blocks)`) output with nSequence = `sequence_blocks`.
pub fn csv_spend(
    prev: OutPoint,
    value: Amount,
    blocks: u16,
    sequence_blocks: u16,
    to: ScriptBuf,
) -> Transaction {
    let mut tx = unsigned(
        vec![(prev, Sequence::from_height(sequence_blocks))],
        vec![TxOut {
            value,
            script_pubkey: to,
        }],
    );
    tx.input[0].witness = Witness::from_slice(&[csv_script(blocks).into_bytes()]);
    tx
}

/// Mines one block holding `txs` (parents first) on the tip, paying `fees` on top of the
/// subsidy; Bitcoin Core's block validation decides.
pub fn mine_txs(
    chain: &mut RegtestChain,
    payout: &ScriptBuf,
    txs: Vec<Transaction>,
    fees: Amount,
) -> Result<u32, ChainError> {
    let tip = chain.tip();
    let block = assemble_block(
        &BlockTemplate {
            prev_hash: tip.hash,
            height: tip.height + 1,
            time: next_block_time(unix_now(), chain.index().tip().median_time_past),
            payout_script: payout.clone(),
            fees,
        },
        txs,
    )?;
    chain.submit_block(&block)
}

/// Something that can mine blocks on the chain behind a backend.
#[async_trait::async_trait]
pub trait Miner: Send + Sync {
    async fn mine(&self, count: u32, payout: &Address) -> Vec<BlockHash>;
}

#[async_trait::async_trait]
impl Miner for EmbeddedBackend {
    async fn mine(&self, count: u32, payout: &Address) -> Vec<BlockHash> {
        EmbeddedBackend::mine(self, count, &payout.script_pubkey())
            .await
            .expect("mine")
            .hashes
    }
}

#[async_trait::async_trait]
impl Miner for RpcBackend {
    async fn mine(&self, count: u32, payout: &Address) -> Vec<BlockHash> {
        use bitcoincore_rpc::RpcApi;
        let client = self.client();
        let address = payout.clone();
        tokio::task::spawn_blocking(move || client.generate_to_address(u64::from(count), &address))
            .await
            .expect("join")
            .expect("generatetoaddress")
    }
}

/// A fresh in-memory chain served over JSON-RPC on a free loopback port.
pub struct Served {
    pub server: RpcServer,
    pub embedded: EmbeddedBackend,
    pub rpc: RpcBackend,
    pub url: String,
}

pub async fn serve() -> Served {
    let embedded = EmbeddedBackend::new(RegtestChain::in_memory().expect("chain"));
    let auth = RpcAuth {
        user: USER.into(),
        password: PASSWORD.into(),
    };
    let server = rpc_server::spawn(
        "127.0.0.1:0".parse().expect("addr"),
        embedded.shared(),
        &auth,
    )
    .await
    .expect("bind");
    let url = format!("http://{}", server.addr);
    let rpc = RpcBackend::new(&url, USER, PASSWORD).expect("client");
    Served {
        server,
        embedded,
        rpc,
        url,
    }
}

/// A fee-paying child of a candidate: spends its P2A output and a wallet coin (§13.7).
pub fn child(
    candidate_tx: &Transaction,
    wallet: &KeyWallet,
    coin: (OutPoint, TxOut),
    fee: Amount,
) -> Transaction {
    let p2a = OutPoint::new(candidate_tx.compute_txid(), 2);
    let mut tx = unsigned(
        vec![(coin.0, Sequence::MAX), (p2a, Sequence::MAX)],
        vec![TxOut {
            value: coin.1.value - fee,
            script_pubkey: wallet.script(),
        }],
    );
    tx.version = bitcoin::transaction::Version(3);
    wallet.sign(
        &mut tx,
        &[coin.1.clone(), fiamma_finality::checkpoint::p2a_txout()],
    );
    // The P2A input needs no witness.
    tx.input[1].witness = Witness::new();
    tx
}

/// The coinbase output of the block at `height`.
pub fn coinbase_coin(chain: &RegtestChain, height: u32) -> (OutPoint, TxOut) {
    let block = chain.block_at(height).expect("read").expect("block");
    let cb = &block.txdata[0];
    (OutPoint::new(cb.compute_txid(), 0), cb.output[0].clone())
}
