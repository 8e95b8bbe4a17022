//! The checkpoint output (§13.3): P2TR with the NUMS internal key (PROTOCOL §3) and the tree
//! `TapBranch(quorum(set), recovery)`, leaf version 0xc0. Both leaves sit at depth 1, so each
//! control block is 65 bytes.

use bitcoin::key::TweakedPublicKey;
use bitcoin::taproot::{ControlBlock, LeafVersion, TapLeafHash, TaprootBuilder, TaprootSpendInfo};
use bitcoin::{Amount, Script, ScriptBuf, TxOut};
use fiamma_staking::taproot::nums_internal_key;
use secp256k1::SECP256K1;

use super::script::{quorum_script, RecoveryLeaf};
use super::weights::CheckpointSet;

/// Bytes of a control block of either leaf: version byte, internal key, one sibling hash.
pub const CONTROL_BLOCK_LEN: usize = 65;

/// A leaf of the checkpoint output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckpointLeaf {
    /// `quorum(set)`: the set's signatures worth at least T.
    Quorum,
    /// The covenant committee after R blocks.
    Recovery,
}

/// The checkpoint output of one set: its two leaves and BIP-0341 spend data.
#[derive(Debug, Clone)]
pub struct CheckpointOutput {
    quorum: ScriptBuf,
    recovery: ScriptBuf,
    spend_info: TaprootSpendInfo,
}

impl CheckpointOutput {
    /// The output that `set` spends by quorum and the committee of `recovery` after R.
    pub fn new(set: &CheckpointSet, recovery: &RecoveryLeaf) -> Self {
        let quorum = quorum_script(set);
        let recovery = recovery.script();
        // Two leaves at depth 1 form a complete tree, so neither adding them nor finalizing
        // can fail.
        let spend_info = TaprootBuilder::new()
            .add_leaf(1, quorum.clone())
            .and_then(|b| b.add_leaf(1, recovery.clone()))
            .expect("two leaves at depth 1")
            .finalize(SECP256K1, nums_internal_key())
            .expect("complete tree of two leaves");
        CheckpointOutput {
            quorum,
            recovery,
            spend_info,
        }
    }

    /// The script of `leaf`.
    pub fn leaf_script(&self, leaf: CheckpointLeaf) -> &Script {
        match leaf {
            CheckpointLeaf::Quorum => &self.quorum,
            CheckpointLeaf::Recovery => &self.recovery,
        }
    }

    /// The BIP-0341 leaf hash of `leaf` (leaf version 0xc0).
    pub fn leaf_hash(&self, leaf: CheckpointLeaf) -> TapLeafHash {
        TapLeafHash::from_script(self.leaf_script(leaf), LeafVersion::TapScript)
    }

    /// The 65-byte control block of `leaf`.
    pub fn control_block(&self, leaf: CheckpointLeaf) -> ControlBlock {
        // Both scripts are leaves of this tree by construction.
        self.spend_info
            .control_block(&(self.leaf_script(leaf).to_owned(), LeafVersion::TapScript))
            .expect("the leaf is in the tree")
    }

    /// The tweaked output key.
    pub fn output_key(&self) -> TweakedPublicKey {
        self.spend_info.output_key()
    }

    /// `OP_1 0x20 <Q.x>`.
    pub fn script_pubkey(&self) -> ScriptBuf {
        ScriptBuf::new_p2tr_tweaked(self.output_key())
    }

    /// The output with value V.
    pub fn txout(&self, value: Amount) -> TxOut {
        TxOut {
            value,
            script_pubkey: self.script_pubkey(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::testkit::key;

    #[test]
    fn both_control_blocks_are_65_bytes_and_verify() {
        let set = CheckpointSet::from_powers([(key(1), 3), (key(2), 4)]).unwrap();
        let recovery = RecoveryLeaf::new(&[key(5), key(6), key(7)], 2, 20).unwrap();
        let output = CheckpointOutput::new(&set, &recovery);
        for leaf in [CheckpointLeaf::Quorum, CheckpointLeaf::Recovery] {
            let cb = output.control_block(leaf);
            assert_eq!(cb.serialize().len(), CONTROL_BLOCK_LEN);
            assert!(cb.verify_taproot_commitment(
                SECP256K1,
                output.output_key().to_x_only_public_key(),
                output.leaf_script(leaf)
            ));
        }
        assert_eq!(output.script_pubkey().len(), 34);
        // Another set gives another output with the same recovery leaf.
        let other = CheckpointSet::from_powers([(key(1), 4), (key(2), 3)]).unwrap();
        assert_ne!(
            CheckpointOutput::new(&other, &recovery).script_pubkey(),
            output.script_pubkey()
        );
    }
}
