//! The wallet: a `bdk_wallet` wallet persisted in a [`WalletStore`], synced over Bitcoin
//! Core's JSON-RPC with `bdk_bitcoind_rpc`, paying by PSBT.
//!
//! Each method that changes the wallet persists the staged changeset before it returns, so a
//! revealed address or an applied block is on disk when the caller acts on it.

use std::path::Path;
use std::sync::Arc;

use bdk_bitcoind_rpc::bitcoincore_rpc::Client;
use bdk_bitcoind_rpc::{BlockEvent, Emitter};
use bdk_wallet::chain::ChainPosition;
use bdk_wallet::descriptor::IntoWalletDescriptor;
use bdk_wallet::miniscript::{Descriptor, ToPublicKey};
use bdk_wallet::signer::SignersContainer;
use bdk_wallet::{Balance, KeychainKind, LoadWithPersistError, PersistedWallet, SignOptions};
use bitcoin::{
    Address, Amount, Block, FeeRate, Network, OutPoint, Psbt, ScriptBuf, Transaction, Txid,
};
use fiamma_role::SecretString;

use crate::keys::{redact, DescriptorPair, KeyOrigin, KeysError, WalletKeys};
use crate::store::{WalletStore, WalletStoreError};

/// Blocks fetched per trip to the blocking pool while syncing.
const SYNC_BATCH: usize = 100;

/// Why a wallet operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The keys or their file.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The store.
    #[error(transparent)]
    Store(#[from] WalletStoreError),
    /// Creating over an existing wallet.
    #[error("wallet {0:?} already exists in the store; nothing was changed")]
    Exists(String),
    /// Loading a wallet that was never created.
    #[error("wallet {0:?} is not in the store: create or import it first")]
    Missing(String),
    /// The stored wallet and the given keys or network disagree, or the store is unusable.
    #[error("wallet {wallet:?} cannot be loaded: {reason}")]
    Load {
        /// The wallet.
        wallet: String,
        /// Why.
        reason: String,
    },
    /// The node cannot be read or a block does not connect.
    #[error("wallet {wallet:?}: syncing over JSON-RPC failed: {reason}")]
    Sync {
        /// The wallet.
        wallet: String,
        /// Why.
        reason: String,
    },
    /// A payment cannot be built (insufficient funds, dust, fee rate).
    #[error("wallet {wallet:?} cannot build the transaction: {reason}")]
    Build {
        /// The wallet.
        wallet: String,
        /// Why.
        reason: String,
    },
    /// Signing needs keys the wallet does not hold.
    #[error("wallet {0:?} is watch-only: export the PSBT (--psbt-out) and sign it with the wallet's signer")]
    WatchOnly(String),
    /// Signing or finalizing failed.
    #[error("wallet {wallet:?} cannot sign: {reason}")]
    Sign {
        /// The wallet.
        wallet: String,
        /// Why.
        reason: String,
    },
    /// The descriptor is not a single-key taproot descriptor.
    #[error("wallet {wallet:?}: {reason}")]
    Descriptor {
        /// The wallet.
        wallet: String,
        /// Why.
        reason: String,
    },
}

/// How to seal a new wallet's secret: the file, its passphrase and the scrypt work factor.
pub struct Sealing<'a> {
    /// The new encrypted file.
    pub path: &'a Path,
    /// Its passphrase.
    pub passphrase: &'a SecretString,
    /// The scrypt work factor (log2 N).
    pub work_factor: u8,
}

/// The wallet's own signers (BDK's wallet keeps no keys): receive and change keychains.
struct Signers {
    external: SignersContainer,
    internal: SignersContainer,
}

/// The signers of `pair`'s private keys; `None` for public descriptors.
fn signers_of(
    pair: &DescriptorPair,
    network: Network,
    wallet: &str,
) -> Result<Option<Signers>, WalletError> {
    if !pair.private {
        return Ok(None);
    }
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let build = |text: &str| {
        let (descriptor, keymap) =
            text.into_wallet_descriptor(&secp, network.into())
                .map_err(|e| WalletError::Descriptor {
                    wallet: wallet.to_owned(),
                    reason: redact(&e.to_string()),
                })?;
        Ok::<_, WalletError>(SignersContainer::build(keymap, &descriptor, &secp))
    };
    Ok(Some(Signers {
        external: build(&pair.external)?,
        internal: build(&pair.internal)?,
    }))
}

/// A persistent wallet.
pub struct Wallet {
    inner: PersistedWallet<WalletStore>,
    store: WalletStore,
    network: Network,
    signers: Option<Signers>,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("name", &self.store.wallet())
            .field("network", &self.network)
            .field("watch_only", &self.is_watch_only())
            .finish_non_exhaustive()
    }
}

impl Wallet {
    /// Creates the wallet named by `store` from `keys` on `network`. Private keys are sealed
    /// first into `sealing`'s file (required for them, unless the wallet lives only as long as
    /// this process, as the devnet's do); the store keeps only public descriptors.
    ///
    /// # Errors
    /// [`WalletError::Exists`] when the store holds the wallet already, [`WalletError::Keys`]
    /// when the keys are unusable or the file cannot be written.
    pub async fn create(
        mut store: WalletStore,
        network: Network,
        keys: &WalletKeys,
        sealing: Option<Sealing<'_>>,
    ) -> Result<Self, WalletError> {
        let name = store.wallet().to_owned();
        if store.exists().await? {
            return Err(WalletError::Exists(name));
        }
        let pair = keys.descriptors(network)?;
        if let (true, Some(s)) = (pair.private, &sealing) {
            keys.seal(s.path, network, s.passphrase, s.work_factor)?;
        }
        let inner =
            bdk_wallet::Wallet::create(pair.external.to_string(), pair.internal.to_string())
                .network(network)
                .create_wallet_async(&mut store)
                .await
                .map_err(|e| match e {
                    bdk_wallet::CreateWithPersistError::Persist(e) => WalletError::Store(e),
                    bdk_wallet::CreateWithPersistError::DataAlreadyExists(_) => {
                        WalletError::Exists(name.clone())
                    }
                    bdk_wallet::CreateWithPersistError::Descriptor(e) => WalletError::Descriptor {
                        wallet: name.clone(),
                        reason: redact(&e.to_string()),
                    },
                })?;
        let signers = signers_of(&pair, network, &name)?;
        Ok(Wallet {
            inner,
            store,
            network,
            signers,
        })
    }

    /// Loads the wallet named by `store`, with the signing keys of `keys` when given (they
    /// must be the wallet's own), watch-only otherwise.
    ///
    /// # Errors
    /// [`WalletError::Missing`], or [`WalletError::Load`] when the keys or the network differ
    /// from the stored wallet's.
    pub async fn load(
        mut store: WalletStore,
        network: Network,
        keys: Option<&WalletKeys>,
    ) -> Result<Self, WalletError> {
        let name = store.wallet().to_owned();
        let mut params = bdk_wallet::Wallet::load().check_network(network);
        let mut signers = None;
        if let Some(keys) = keys {
            let pair = keys.descriptors(network)?;
            params = params
                .descriptor(KeychainKind::External, Some(pair.external.to_string()))
                .descriptor(KeychainKind::Internal, Some(pair.internal.to_string()));
            signers = signers_of(&pair, network, &name)?;
        }
        let inner = params
            .load_wallet_async(&mut store)
            .await
            .map_err(|e| match e {
                LoadWithPersistError::Persist(e) => WalletError::Store(e),
                LoadWithPersistError::InvalidChangeSet(e) => WalletError::Load {
                    wallet: name.clone(),
                    reason: redact(&e.to_string()),
                },
            })?
            .ok_or_else(|| WalletError::Missing(name.clone()))?;
        Ok(Wallet {
            inner,
            store,
            network,
            signers,
        })
    }

    /// Loads the wallet with the keys sealed at `path` (opened with `passphrase`).
    ///
    /// # Errors
    /// As [`Wallet::load`], and [`WalletError::Keys`] for a wrong passphrase or file.
    pub async fn open(
        store: WalletStore,
        network: Network,
        path: &Path,
        passphrase: &SecretString,
    ) -> Result<Self, WalletError> {
        let keys = WalletKeys::open(path, network, passphrase)?;
        Self::load(store, network, Some(&keys)).await
    }

    fn name(&self) -> String {
        self.store.wallet().to_owned()
    }

    /// The wallet's network.
    pub fn network(&self) -> Network {
        self.network
    }

    /// Whether the wallet holds no signing keys.
    pub fn is_watch_only(&self) -> bool {
        self.signers.is_none()
    }

    /// The BDK wallet, for reading.
    pub fn bdk(&self) -> &bdk_wallet::Wallet {
        &self.inner
    }

    /// The public descriptor of `keychain` (with key origins), for a watch-only copy.
    pub fn public_descriptor(&self, keychain: KeychainKind) -> String {
        self.inner.public_descriptor(keychain).to_string()
    }

    /// Persists what the wallet staged.
    ///
    /// # Errors
    /// [`WalletError::Store`].
    pub async fn persist(&mut self) -> Result<(), WalletError> {
        self.inner.persist_async(&mut self.store).await?;
        Ok(())
    }

    /// A fresh receiving address (revealed and persisted).
    ///
    /// # Errors
    /// [`WalletError::Store`].
    pub async fn next_address(&mut self) -> Result<Address, WalletError> {
        let address = self
            .inner
            .reveal_next_address(KeychainKind::External)
            .address;
        self.persist().await?;
        Ok(address)
    }

    /// The balance as of the last sync.
    pub fn balance(&self) -> Balance {
        self.inner.balance()
    }

    /// The height the wallet is synced to.
    pub fn synced_height(&self) -> u32 {
        self.inner.latest_checkpoint().height()
    }

    /// The key at receive index `index` with its BIP-32 origin: a staker's BTC key is index 0,
    /// so the wallet's signer (or an external one, from the PSBT's key origin) signs for it.
    ///
    /// # Errors
    /// [`WalletError::Descriptor`] when the receive descriptor is not `tr(KEY/…/*)`.
    pub fn key_origin(&self, index: u32) -> Result<KeyOrigin, WalletError> {
        let fail = |reason: String| WalletError::Descriptor {
            wallet: self.name(),
            reason,
        };
        let definite = self
            .inner
            .public_descriptor(KeychainKind::External)
            .at_derivation_index(index)
            .map_err(|e| fail(redact(&e.to_string())))?;
        let Descriptor::Tr(tr) = definite else {
            return Err(fail(
                "the receive descriptor is not a taproot descriptor".into(),
            ));
        };
        let internal = tr.internal_key();
        let path = internal
            .full_derivation_path()
            .ok_or_else(|| fail("the receive key has more than one derivation path".into()))?;
        Ok(KeyOrigin {
            key: internal.to_x_only_pubkey(),
            fingerprint: internal.master_fingerprint(),
            path,
        })
    }

    /// Applies every block since the wallet's last checkpoint and the node's mempool, and
    /// persists each batch; returns the height the wallet is synced to. The JSON-RPC calls run
    /// on tokio's blocking pool.
    ///
    /// # Errors
    /// [`WalletError::Sync`] when the node cannot be read or a block does not connect,
    /// [`WalletError::Store`].
    pub async fn sync(&mut self, client: Arc<Client>) -> Result<u32, WalletError> {
        let name = self.name();
        let fail = |reason: String| WalletError::Sync {
            wallet: name.clone(),
            reason,
        };
        let checkpoint = self.inner.latest_checkpoint();
        let start = checkpoint.height();
        let expected: Vec<Arc<Transaction>> = self
            .inner
            .transactions()
            .filter(|tx| matches!(tx.chain_position, ChainPosition::Unconfirmed { .. }))
            .map(|tx| tx.tx_node.tx.clone())
            .collect();
        let mut emitter = Emitter::new(client, checkpoint, start, expected);
        loop {
            type Batch = (Emitter<Arc<Client>>, Vec<BlockEvent<Block>>);
            let (back, blocks) = tokio::task::spawn_blocking(move || -> Result<Batch, String> {
                let mut blocks = Vec::new();
                while blocks.len() < SYNC_BATCH {
                    match emitter.next_block().map_err(|e| e.to_string())? {
                        Some(block) => blocks.push(block),
                        None => break,
                    }
                }
                Ok((emitter, blocks))
            })
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(fail)?;
            emitter = back;
            let done = blocks.len() < SYNC_BATCH;
            for block in blocks {
                let height = block.block_height();
                self.inner
                    .apply_block_connected_to(&block.block, height, block.connected_to())
                    .map_err(|e| fail(e.to_string()))?;
            }
            self.persist().await?;
            if done {
                break;
            }
        }
        let (_, mempool) = tokio::task::spawn_blocking(move || {
            let mempool = emitter.mempool().map_err(|e| e.to_string());
            (emitter, mempool)
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
        let mempool = mempool.map_err(fail)?;
        self.inner.apply_evicted_txs(mempool.evicted);
        self.inner.apply_unconfirmed_txs(mempool.update);
        self.persist().await?;
        Ok(self.synced_height())
    }

    /// An unsigned PSBT paying `outputs` from the wallet's coins at `fee_rate`, change back
    /// to the wallet; its inputs carry their key origins for any signer. The change address
    /// is persisted.
    ///
    /// # Errors
    /// [`WalletError::Build`] (insufficient funds, dust), [`WalletError::Store`].
    pub async fn build_payment(
        &mut self,
        outputs: &[(ScriptBuf, Amount)],
        fee_rate: FeeRate,
    ) -> Result<Psbt, WalletError> {
        self.build_payment_excluding(outputs, fee_rate, &[]).await
    }

    /// [`Wallet::build_payment`] without spending `unspendable` (coins promised elsewhere,
    /// such as a stake's funding that waits for the committee).
    ///
    /// # Errors
    /// As [`Wallet::build_payment`].
    pub async fn build_payment_excluding(
        &mut self,
        outputs: &[(ScriptBuf, Amount)],
        fee_rate: FeeRate,
        unspendable: &[OutPoint],
    ) -> Result<Psbt, WalletError> {
        let mut builder = self.inner.build_tx();
        for (script, value) in outputs {
            builder.add_recipient(script.clone(), *value);
        }
        builder.unspendable(unspendable.to_vec());
        builder.fee_rate(fee_rate);
        let psbt = builder.finish().map_err(|e| WalletError::Build {
            wallet: self.name(),
            reason: e.to_string(),
        })?;
        self.persist().await?;
        Ok(psbt)
    }

    /// An unsigned PSBT for a child paying for its unconfirmed parent (CPFP through a keyless
    /// anchor, `CHECKPOINTS.md` §13.7): it spends `parent`'s output `anchor_vout`, a
    /// pay-to-anchor output whose witness is empty (set final here, so the signers and the
    /// finalizer leave it alone), plus the wallet's confirmed coins, pays `fee` in all and
    /// returns the rest to a new change address; its version is `version`. Only confirmed
    /// coins are spent, as a child of an unconfirmed TRUC parent may have no other
    /// unconfirmed ancestor; `unspendable` coins are left out.
    ///
    /// # Errors
    /// [`WalletError::Build`] when `parent` has no such output or the confirmed coins do not
    /// cover `fee`; [`WalletError::Store`].
    pub async fn build_anchor_child(
        &mut self,
        parent: &Transaction,
        anchor_vout: u32,
        fee: Amount,
        version: i32,
        unspendable: &[OutPoint],
    ) -> Result<Psbt, WalletError> {
        let anchor = OutPoint::new(parent.compute_txid(), anchor_vout);
        let name = self.name();
        let build = |reason: String| WalletError::Build {
            wallet: name.clone(),
            reason,
        };
        let txout = usize::try_from(anchor_vout)
            .ok()
            .and_then(|v| parent.output.get(v))
            .cloned()
            .ok_or_else(|| build(format!("the parent has no output {anchor}")))?;
        let input = bdk_wallet::bitcoin::psbt::Input {
            witness_utxo: Some(txout),
            non_witness_utxo: Some(parent.clone()),
            final_script_witness: Some(bitcoin::Witness::new()),
            ..Default::default()
        };
        let change = self
            .inner
            .next_unused_address(KeychainKind::Internal)
            .script_pubkey();
        let mut builder = self.inner.build_tx();
        // An empty witness adds only what every input has: its (empty) witness stack count,
        // which the builder counts already.
        builder
            .add_foreign_utxo(anchor, input, bitcoin::Weight::ZERO)
            .map_err(|e| build(e.to_string()))?;
        builder
            .drain_to(change)
            .fee_absolute(fee)
            .version(version)
            .exclude_unconfirmed()
            .unspendable(unspendable.to_vec());
        let psbt = builder.finish().map_err(|e| build(e.to_string()))?;
        self.persist().await?;
        Ok(psbt)
    }

    /// Signs every input of `psbt` the wallet's keys can sign: its own coins (key path) and
    /// script-path spends naming one of its keys in `tap_key_origins`. Does not finalize.
    ///
    /// # Errors
    /// [`WalletError::WatchOnly`], or [`WalletError::Sign`].
    pub fn sign(&self, psbt: &mut Psbt) -> Result<(), WalletError> {
        let Some(signers) = &self.signers else {
            return Err(WalletError::WatchOnly(self.name()));
        };
        self.inner
            .sign_with_signers(
                psbt,
                &[&signers.external, &signers.internal],
                SignOptions {
                    try_finalize: false,
                    trust_witness_utxo: true,
                    ..SignOptions::default()
                },
            )
            .map_err(|e| WalletError::Sign {
                wallet: self.name(),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// Finalizes the wallet's own inputs of a signed `psbt` and extracts the transaction.
    ///
    /// # Errors
    /// [`WalletError::Sign`] when an input lacks its signature.
    pub fn finalize(&self, psbt: &mut Psbt) -> Result<Transaction, WalletError> {
        let fail = |reason: String| WalletError::Sign {
            wallet: self.name(),
            reason,
        };
        let done = self
            .inner
            .finalize_psbt(
                psbt,
                SignOptions {
                    trust_witness_utxo: true,
                    ..SignOptions::default()
                },
            )
            .map_err(|e| fail(e.to_string()))?;
        if !done {
            return Err(fail("some inputs are not signed".into()));
        }
        psbt.clone().extract_tx().map_err(|e| fail(e.to_string()))
    }

    /// Signs and finalizes a payment PSBT: the whole transaction.
    ///
    /// # Errors
    /// As [`Wallet::sign`] and [`Wallet::finalize`].
    pub fn sign_payment(&self, psbt: &mut Psbt) -> Result<Transaction, WalletError> {
        self.sign(psbt)?;
        self.finalize(psbt)
    }

    /// Records `tx` (the wallet's own payment, broadcast or about to be) as unconfirmed, so its
    /// coins are not spent twice before the next sync, and persists it.
    ///
    /// # Errors
    /// [`WalletError::Store`].
    pub async fn record_unconfirmed(
        &mut self,
        tx: Transaction,
        seen_at: u64,
    ) -> Result<Txid, WalletError> {
        let txid = tx.compute_txid();
        self.inner.apply_unconfirmed_txs([(tx, seen_at)]);
        self.persist().await?;
        Ok(txid)
    }
}
