//! A Babylon-style delegation on the embedded chain, ready to be slashed: the parties, the
//! staking transaction, and at registration the slashing transaction with the staker's
//! signature and each covenant member's adaptor signature encrypted to the verifier's key.
//! Whoever learns the verifier's key (EOTS extraction after an equivocation) decrypts the
//! covenant signatures and broadcasts the slashing transaction.

use bitcoin::hashes::Hash;
use bitcoin::key::Keypair;
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxOut, Txid, XOnlyPublicKey};
use fiamma::btc::{Backend, EmbeddedBackend, RegtestChain, TxStatus};
use fiamma_covenant::adaptor::{enc_sign, AdaptorSignature, DecryptionKey, EncryptionKey};
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::rate::SlashingRate;
use fiamma_staking::sighash::{sign, tapscript_sighash};
use fiamma_staking::slashing::{build_slashing_tx, SlashingTerms};
use fiamma_staking::taproot::{Leaf, TaprootOutput};
use fiamma_staking::witness::slashing_witness;

use super::{unsigned, KeyWallet};

pub const STAKING_TIME: u16 = 10;
pub const UNBONDING_TIME: u32 = 5;
pub const STAKE: Amount = Amount::from_sat(10_0000_0000);
pub const FEE: Amount = Amount::from_sat(2_000);

pub fn keypair(byte: u8) -> Keypair {
    Keypair::from_secret_key(
        &Secp256k1::new(),
        &SecretKey::from_slice(&[byte; 32]).expect("key"),
    )
}

pub fn xonly(k: &Keypair) -> XOnlyPublicKey {
    k.x_only_public_key().0
}

pub struct Parties {
    pub staker: Keypair,
    pub verifier: Keypair,
    pub covenants: Vec<Keypair>,
    pub keys: StakingKeys,
}

/// A staker, the verifier `verifier` and a 2-of-3 covenant committee.
pub fn parties_with(verifier: Keypair) -> Parties {
    let staker = keypair(0x11);
    let covenants: Vec<Keypair> = [0x31, 0x32, 0x33].into_iter().map(keypair).collect();
    let covenant_keys: Vec<XOnlyPublicKey> = covenants.iter().map(xonly).collect();
    let keys =
        StakingKeys::new(xonly(&staker), &[xonly(&verifier)], &covenant_keys, 2).expect("keys");
    Parties {
        staker,
        verifier,
        covenants,
        keys,
    }
}

pub fn parties() -> Parties {
    parties_with(keypair(0x22))
}

pub async fn mine(backend: &EmbeddedBackend, wallet: &KeyWallet, blocks: u32) {
    backend.mine(blocks, &wallet.script()).await.expect("mine");
}

/// Locks `STAKE` in `output` from the coinbase of block `height`; returns the staking outpoint.
pub async fn stake(
    backend: &EmbeddedBackend,
    wallet: &KeyWallet,
    height: u32,
    output: &TaprootOutput,
) -> OutPoint {
    let hash = backend
        .block_hash(height)
        .await
        .expect("hash")
        .expect("block");
    let coinbase = backend
        .block(&hash)
        .await
        .expect("block")
        .expect("block")
        .txdata[0]
        .clone();
    let funds = coinbase.output[0].clone();
    let mut tx = unsigned(
        vec![(OutPoint::new(coinbase.compute_txid(), 0), Sequence::MAX)],
        vec![
            output.txout(STAKE),
            TxOut {
                value: funds.value - STAKE - FEE,
                script_pubkey: wallet.script(),
            },
        ],
    );
    wallet.sign(&mut tx, &[funds]);
    let txid = backend.broadcast(&tx).await.expect("staking tx accepted");
    OutPoint::new(txid, 0)
}

pub fn leaf_sighash(
    tx: &Transaction,
    spent: &TxOut,
    output: &TaprootOutput,
    leaf: Leaf,
) -> bitcoin::TapSighash {
    tapscript_sighash(
        tx,
        0,
        std::slice::from_ref(spent),
        output.leaf_script(leaf).expect("leaf"),
    )
    .expect("sighash")
}

/// A chain with 101 blocks mined to `wallet`, and the parties' staking output.
pub struct Setup {
    pub backend: EmbeddedBackend,
    pub wallet: KeyWallet,
    pub p: Parties,
    pub staking_output: TaprootOutput,
    pub staking_txout: TxOut,
}

pub async fn setup_with(wallet_seed: u8, p: Parties) -> Setup {
    let backend = EmbeddedBackend::new(RegtestChain::in_memory().expect("chain"));
    let wallet = KeyWallet::new(wallet_seed);
    let staking_output = TaprootOutput::staking(&p.keys, u32::from(STAKING_TIME)).expect("output");
    let staking_txout = staking_output.txout(STAKE);
    mine(&backend, &wallet, 101).await;
    Setup {
        backend,
        wallet,
        p,
        staking_output,
        staking_txout,
    }
}

pub async fn setup(wallet_seed: u8) -> Setup {
    setup_with(wallet_seed, parties()).await
}

/// A confirmed delegation with everything its registration gave the node: the slashing
/// transaction, the staker's signature and the covenant adaptor signatures.
pub struct SlashableStake {
    pub staked: OutPoint,
    pub slash: Transaction,
    pub sighash: bitcoin::TapSighash,
    pub staker_sig: bitcoin::secp256k1::schnorr::Signature,
    pub presigs: Vec<(XOnlyPublicKey, AdaptorSignature)>,
    pub slashing_pk_script: ScriptBuf,
    pub change_output: TaprootOutput,
}

/// Stakes from the coinbase of block 1, confirms it, and registers the slashing transaction.
pub async fn slashable_stake(s: &Setup) -> SlashableStake {
    let staked = stake(&s.backend, &s.wallet, 1, &s.staking_output).await;
    mine(&s.backend, &s.wallet, 1).await;
    let slashing_pk_script = KeyWallet::new(42).script();
    let terms = SlashingTerms {
        slashing_pk_script: &slashing_pk_script,
        slashing_rate: SlashingRate::from_ten_thousandths(1_000).expect("10%"),
        min_fee: FEE,
    };
    let change_output =
        TaprootOutput::slashing_change(&xonly(&s.p.staker), UNBONDING_TIME).expect("change output");
    let slash = build_slashing_tx(staked, STAKE, &terms, FEE, &change_output.script_pubkey())
        .expect("slashing tx");
    let sighash = leaf_sighash(&slash, &s.staking_txout, &s.staking_output, Leaf::Slashing);
    let staker_sig = sign(&sighash, &s.p.staker);
    let encryption_key = EncryptionKey::from_verifier_key(&xonly(&s.p.verifier));
    let presigs =
        s.p.covenants
            .iter()
            .map(|k| {
                let presig = enc_sign(k, &encryption_key, &sighash.to_byte_array(), &[7; 32])
                    .expect("adaptor signature");
                (xonly(k), presig)
            })
            .collect();
    SlashableStake {
        staked,
        slash,
        sighash,
        staker_sig,
        presigs,
        slashing_pk_script,
        change_output,
    }
}

impl SlashableStake {
    /// With the verifier's extracted key: decrypts the covenant signatures, signs as the
    /// verifier, assembles the slashing witness, broadcasts and mines it; returns its txid and
    /// height.
    pub async fn slash(&self, s: &Setup, extracted: &SecretKey) -> (Txid, u32) {
        let decryption_key = DecryptionKey::from_verifier_secret(extracted);
        let covenant_sigs: Vec<_> = self
            .presigs
            .iter()
            .map(|(pk, presig)| (*pk, presig.decrypt(&decryption_key).expect("decrypt")))
            .collect();
        let verifier_keypair = Keypair::from_secret_key(&Secp256k1::new(), extracted);
        let verifier_sig = sign(&self.sighash, &verifier_keypair);
        let mut slash = self.slash.clone();
        slash.input[0].witness = slashing_witness(
            &s.staking_output,
            &s.p.keys,
            &covenant_sigs,
            &[(xonly(&s.p.verifier), verifier_sig)],
            &self.staker_sig,
        )
        .expect("slashing witness");
        let txid = s
            .backend
            .broadcast(&slash)
            .await
            .expect("slashing tx accepted");
        mine(&s.backend, &s.wallet, 1).await;
        match s.backend.tx_status(&txid).await.expect("status") {
            TxStatus::Confirmed { height, .. } => (txid, height),
            other => panic!("slashing tx not mined: {other:?}"),
        }
    }
}
