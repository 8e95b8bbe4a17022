//! PSBTs for taproot script-path spends the wallet's key signs (the staker's spends of its
//! staking, unbonding and slashing change outputs, and its slashing pre-signatures): what an
//! external signer needs (BIP-371: the spent output, the internal key and Merkle root, each
//! leaf script with its control block, the key's origin with the leaves it signs), and reading
//! the signatures it returns. Files hold the PSBT in base64, as Bitcoin Core and wallets do.

use std::path::Path;

use bitcoin::psbt::{Psbt, PsbtSighashType};
use bitcoin::secp256k1::{schnorr, XOnlyPublicKey};
use bitcoin::taproot::{LeafVersion, TapLeafHash, TaprootSpendInfo};
use bitcoin::{Script, TapSighashType, Transaction, TxOut};

use crate::keys::KeyOrigin;

/// Largest PSBT file read.
const MAX_PSBT_FILE: u64 = 4 * 1024 * 1024;

/// Why a PSBT cannot be built, read or used.
#[derive(Debug, thiserror::Error)]
pub enum PsbtError {
    /// The transaction cannot be a PSBT's (it carries signatures already).
    #[error("transaction {txid} cannot be a PSBT: {reason}")]
    Unsigned {
        /// The transaction.
        txid: String,
        /// The cause.
        reason: String,
    },
    /// The input does not exist.
    #[error("the PSBT has no input {0}")]
    NoInput(usize),
    /// The leaf is not in the output's script tree.
    #[error("leaf {0} is not in the spent output's script tree")]
    NoLeaf(TapLeafHash),
    /// The signer left no signature for the key and leaf.
    #[error("input {index} carries no signature by {key} for leaf {leaf}: was the PSBT signed by the wallet's key?")]
    NotSigned {
        /// The input.
        index: usize,
        /// The key.
        key: XOnlyPublicKey,
        /// The leaf.
        leaf: TapLeafHash,
    },
    /// The signature commits to another sighash type than the default.
    #[error("input {index}: the signature uses sighash type {found}, not the default")]
    SighashType {
        /// The input.
        index: usize,
        /// The type found.
        found: TapSighashType,
    },
    /// The file cannot be read or written.
    #[error("psbt file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// The cause.
        reason: String,
    },
}

/// A PSBT over `tx`, whose inputs must not be signed yet.
///
/// # Errors
/// [`PsbtError::Unsigned`] when an input carries a witness or a script sig.
pub fn from_unsigned(tx: Transaction) -> Result<Psbt, PsbtError> {
    let txid = tx.compute_txid().to_string();
    Psbt::from_unsigned_tx(tx).map_err(|e| PsbtError::Unsigned {
        txid,
        reason: e.to_string(),
    })
}

/// Fills input `index` of `psbt` for a script-path spend of `spent` (a taproot output with
/// `spend_info`) by `leaf`, to be signed by the key `signer`.
///
/// # Errors
/// [`PsbtError::NoInput`] or [`PsbtError::NoLeaf`].
pub fn add_script_spend(
    psbt: &mut Psbt,
    index: usize,
    spent: TxOut,
    spend_info: &TaprootSpendInfo,
    leaf: &Script,
    signer: &KeyOrigin,
) -> Result<(), PsbtError> {
    let leaf_hash = TapLeafHash::from_script(leaf, LeafVersion::TapScript);
    let control = spend_info
        .control_block(&(leaf.to_owned(), LeafVersion::TapScript))
        .ok_or(PsbtError::NoLeaf(leaf_hash))?;
    let input = psbt
        .inputs
        .get_mut(index)
        .ok_or(PsbtError::NoInput(index))?;
    input.witness_utxo = Some(spent);
    input.tap_internal_key = Some(spend_info.internal_key());
    input.tap_merkle_root = spend_info.merkle_root();
    input
        .tap_scripts
        .insert(control, (leaf.to_owned(), LeafVersion::TapScript));
    let entry = input
        .tap_key_origins
        .entry(signer.key)
        .or_insert_with(|| (Vec::new(), (signer.fingerprint, signer.path.clone())));
    if !entry.0.contains(&leaf_hash) {
        entry.0.push(leaf_hash);
    }
    input.sighash_type = Some(PsbtSighashType::from(TapSighashType::Default));
    Ok(())
}

/// The signature by `key` for `leaf` on input `index` (not yet checked against a sighash:
/// the caller verifies it).
///
/// # Errors
/// [`PsbtError::NoInput`], [`PsbtError::NotSigned`] or [`PsbtError::SighashType`].
pub fn script_signature(
    psbt: &Psbt,
    index: usize,
    key: &XOnlyPublicKey,
    leaf: &Script,
) -> Result<schnorr::Signature, PsbtError> {
    let leaf_hash = TapLeafHash::from_script(leaf, LeafVersion::TapScript);
    let input = psbt.inputs.get(index).ok_or(PsbtError::NoInput(index))?;
    let sig = input
        .tap_script_sigs
        .get(&(*key, leaf_hash))
        .ok_or(PsbtError::NotSigned {
            index,
            key: *key,
            leaf: leaf_hash,
        })?;
    if sig.sighash_type != TapSighashType::Default {
        return Err(PsbtError::SighashType {
            index,
            found: sig.sighash_type,
        });
    }
    Ok(sig.signature)
}

/// Writes `psbt` in base64 to a new file at `path` (never replacing one).
///
/// # Errors
/// [`PsbtError::File`].
pub fn write_file(path: &Path, psbt: &Psbt) -> Result<(), PsbtError> {
    use std::io::Write;
    let fail = |e: std::io::Error| PsbtError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(fail)?;
    file.write_all(format!("{psbt}\n").as_bytes())
        .map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// Reads a PSBT (base64, as [`write_file`] writes it) from `path`.
///
/// # Errors
/// [`PsbtError::File`] when it cannot be read, is too large, or does not decode.
pub fn read_file(path: &Path) -> Result<Psbt, PsbtError> {
    use std::io::Read;
    let fail = |reason: String| PsbtError::File {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_PSBT_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > MAX_PSBT_FILE {
        return Err(fail(format!("larger than {MAX_PSBT_FILE} bytes")));
    }
    text.trim()
        .parse::<Psbt>()
        .map_err(|e| fail(format!("not a base64 PSBT: {e}")))
}
