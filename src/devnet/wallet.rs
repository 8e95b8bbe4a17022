//! The parties' wallets: the project's one wallet ([`fiamma_wallet::Wallet`], BIP-86 taproot
//! descriptors from a BIP-39 mnemonic, synced through `bdk_bitcoind_rpc` over JSON-RPC), with
//! the mnemonic made from the devnet's seed for the party and kept in the party's own store,
//! as its daemon keeps it.

use bitcoin::Network;
use fiamma_wallet::{Wallet, WalletKeys, WalletStore};

use super::error::DevnetError;
use super::setup;

/// Fee rate of the devnet's wallet transactions.
pub const WALLET_FEE_RATE_SAT_VB: u64 = 2;

/// `owner`'s regtest wallet from the devnet's seed for it, created in `store`.
///
/// # Errors
/// [`DevnetError::Wallet`] when the seed or the store are unusable.
pub async fn create(owner: &str, store: WalletStore) -> Result<Wallet, DevnetError> {
    let fail = |reason: String| DevnetError::Wallet {
        who: owner.to_owned(),
        reason,
    };
    let keys =
        WalletKeys::from_entropy(&setup::wallet_seed(owner)).map_err(|e| fail(e.to_string()))?;
    Wallet::create(store, Network::Regtest, &keys, None)
        .await
        .map_err(|e| fail(e.to_string()))
}
