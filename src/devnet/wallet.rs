//! A party's BDK wallet (BIP-0086 taproot descriptors from a devnet seed), kept in step with
//! the chain through `bdk_bitcoind_rpc` over JSON-RPC, as a staker's or sequencer's wallet
//! would be against their own Bitcoin Core node.
//!
//! Every method blocks on JSON-RPC or signing; callers run them on tokio's blocking pool.

use bdk_bitcoind_rpc::{Emitter, NO_EXPECTED_MEMPOOL_TXS};
use bdk_wallet::{KeychainKind, SignOptions, Wallet};
use bitcoin::bip32::Xpriv;
use bitcoin::{Address, Amount, FeeRate, Network, ScriptBuf, Transaction};
use bitcoincore_rpc::Client;

use super::error::DevnetError;

/// Fee rate of the devnet's wallet transactions.
pub const WALLET_FEE_RATE_SAT_VB: u64 = 2;

/// One party's wallet.
pub struct DevnetWallet {
    owner: String,
    master: Xpriv,
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
    /// The wallet of `owner` from 32 seed bytes: `tr(m/86'/1'/0'/{0,1}/*)` on regtest.
    ///
    /// # Errors
    /// [`DevnetError::Wallet`] when the seed or the descriptors are unusable.
    pub fn new(owner: &str, seed: &[u8; 32]) -> Result<Self, DevnetError> {
        let fail = |reason: String| DevnetError::Wallet {
            who: owner.to_owned(),
            reason,
        };
        let master = Xpriv::new_master(Network::Regtest, seed).map_err(|e| fail(e.to_string()))?;
        let keychain = |branch: u32| format!("tr({master}/86h/1h/0h/{branch}/*)");
        let wallet = Wallet::create(keychain(0), keychain(1))
            .network(Network::Regtest)
            .create_wallet_no_persist()
            .map_err(|e| fail(e.to_string()))?;
        Ok(DevnetWallet {
            owner: owner.to_owned(),
            master,
            wallet,
        })
    }

    fn fail(&self, reason: impl std::fmt::Display) -> DevnetError {
        DevnetError::Wallet {
            who: self.owner.clone(),
            reason: reason.to_string(),
        }
    }

    /// A fresh receiving address.
    pub fn receive_address(&mut self) -> Address {
        self.wallet
            .reveal_next_address(KeychainKind::External)
            .address
    }

    /// Applies every block since the wallet's last checkpoint and the current mempool;
    /// returns the height the wallet is synced to.
    ///
    /// # Errors
    /// [`DevnetError::Wallet`] when the node cannot be read or a block does not connect.
    pub fn sync(&mut self, client: &Client) -> Result<u32, DevnetError> {
        let checkpoint = self.wallet.latest_checkpoint();
        let start = checkpoint.height();
        let mut emitter = Emitter::new(client, checkpoint, start, NO_EXPECTED_MEMPOOL_TXS);
        while let Some(block) = emitter.next_block().map_err(|e| self.fail(e))? {
            let height = block.block_height();
            self.wallet
                .apply_block_connected_to(&block.block, height, block.connected_to())
                .map_err(|e| self.fail(e))?;
        }
        let mempool = emitter.mempool().map_err(|e| self.fail(e))?;
        self.wallet.apply_evicted_txs(mempool.evicted);
        self.wallet.apply_unconfirmed_txs(mempool.update);
        Ok(self.wallet.latest_checkpoint().height())
    }

    /// Confirmed, spendable coins.
    pub fn spendable(&self) -> Amount {
        self.wallet.balance().confirmed
    }

    /// A signed transaction paying `outputs` from the wallet's coins, change back to the
    /// wallet, at [`WALLET_FEE_RATE_SAT_VB`].
    ///
    /// # Errors
    /// [`DevnetError::Wallet`] when coin selection, signing or finalizing fails.
    pub fn pay(&mut self, outputs: &[(ScriptBuf, Amount)]) -> Result<Transaction, DevnetError> {
        let rate = FeeRate::from_sat_per_vb(WALLET_FEE_RATE_SAT_VB)
            .ok_or_else(|| self.fail("fee rate out of range"))?;
        let mut builder = self.wallet.build_tx();
        for (script, value) in outputs {
            builder.add_recipient(script.clone(), *value);
        }
        builder.fee_rate(rate);
        let mut psbt = builder.finish().map_err(|e| self.fail(e))?;
        psbt.sign(&self.master, self.wallet.secp_ctx())
            .map_err(|(_, errors)| self.fail(format!("signing: {errors:?}")))?;
        let finalized = self
            .wallet
            .finalize_psbt(&mut psbt, SignOptions::default())
            .map_err(|e| self.fail(e))?;
        if !finalized {
            return Err(self.fail("some inputs could not be finalized"));
        }
        psbt.extract_tx().map_err(|e| self.fail(e))
    }
}
