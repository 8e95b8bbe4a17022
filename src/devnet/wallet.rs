//! A party's wallet: the project's one wallet ([`fiamma_wallet::Wallet`], BIP-86 taproot
//! descriptors from a BIP-39 mnemonic, synced through `bdk_bitcoind_rpc` over JSON-RPC) with
//! the mnemonic made from a devnet seed and its changesets in an in-memory store, as a
//! staker's or sequencer's wallet would be against their own Bitcoin Core node.
//!
//! `sync` and `pay` block on the runtime; callers run them on tokio's blocking pool.

use std::sync::Arc;

use bitcoin::{Address, Amount, FeeRate, Network, ScriptBuf, Transaction};
use bitcoincore_rpc::Client;
use fiamma_wallet::{Wallet, WalletKeys, WalletStore};

use super::error::DevnetError;

/// Fee rate of the devnet's wallet transactions.
pub const WALLET_FEE_RATE_SAT_VB: u64 = 2;

/// One party's wallet.
pub struct DevnetWallet {
    owner: String,
    wallet: Wallet,
}

impl std::fmt::Debug for DevnetWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevnetWallet")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl DevnetWallet {
    /// The wallet of `owner` from 32 seed bytes (the entropy of its mnemonic), on regtest.
    ///
    /// # Errors
    /// [`DevnetError::Wallet`] when the seed or the store are unusable.
    pub async fn new(owner: &str, seed: &[u8; 32]) -> Result<Self, DevnetError> {
        let fail = |reason: String| DevnetError::Wallet {
            who: owner.to_owned(),
            reason,
        };
        let keys = WalletKeys::from_entropy(seed).map_err(|e| fail(e.to_string()))?;
        let store = WalletStore::open("sqlite::memory:", owner)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let wallet = Wallet::create(store, Network::Regtest, &keys, None)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(DevnetWallet {
            owner: owner.to_owned(),
            wallet,
        })
    }

    fn fail(&self, reason: impl std::fmt::Display) -> DevnetError {
        DevnetError::Wallet {
            who: self.owner.clone(),
            reason: reason.to_string(),
        }
    }

    /// The wallet.
    pub fn wallet(&mut self) -> &mut Wallet {
        &mut self.wallet
    }

    /// A fresh receiving address.
    ///
    /// # Errors
    /// [`DevnetError::Wallet`] when the store fails.
    pub async fn receive_address(&mut self) -> Result<Address, DevnetError> {
        self.wallet.next_address().await.map_err(|e| self.fail(e))
    }

    /// Applies every block since the wallet's last checkpoint and the current mempool;
    /// returns the height the wallet is synced to. Blocks: call it on the blocking pool.
    ///
    /// # Errors
    /// [`DevnetError::Wallet`] when the node cannot be read or a block does not connect.
    pub fn sync(&mut self, client: &Arc<Client>) -> Result<u32, DevnetError> {
        tokio::runtime::Handle::current()
            .block_on(self.wallet.sync(client.clone()))
            .map_err(|e| self.fail(e))
    }

    /// Confirmed, spendable coins.
    pub fn spendable(&self) -> Amount {
        self.wallet.balance().confirmed
    }

    /// A signed transaction paying `outputs` from the wallet's coins, change back to the
    /// wallet, at [`WALLET_FEE_RATE_SAT_VB`]. Blocks: call it on the blocking pool.
    ///
    /// # Errors
    /// [`DevnetError::Wallet`] when coin selection, signing or finalizing fails.
    pub fn pay(&mut self, outputs: &[(ScriptBuf, Amount)]) -> Result<Transaction, DevnetError> {
        let rate = FeeRate::from_sat_per_vb(WALLET_FEE_RATE_SAT_VB)
            .ok_or_else(|| self.fail("fee rate out of range"))?;
        let mut psbt = tokio::runtime::Handle::current()
            .block_on(self.wallet.build_payment(outputs, rate))
            .map_err(|e| self.fail(e))?;
        self.wallet
            .sign_payment(&mut psbt)
            .map_err(|e| self.fail(e))
    }
}
