//! Taproot outputs of the protocol (PROTOCOL §3): the staking output, the unbonding output and
//! the slashing change output, all with the unspendable NUMS internal key, and the control block
//! of every leaf.

use std::sync::OnceLock;

use bitcoin::key::TweakedPublicKey;
use bitcoin::secp256k1::{XOnlyPublicKey, SECP256K1};
use bitcoin::taproot::{ControlBlock, LeafVersion, TapLeafHash, TaprootBuilder, TaprootSpendInfo};
use bitcoin::{Address, Amount, Network, Script, ScriptBuf, TxOut};

use crate::keys::StakingKeys;
use crate::script::{slashing_script, timelock_script, unbonding_script, ScriptError};

/// The NUMS point `H` of BIP-0341 in compressed form; nobody knows its discrete logarithm, so
/// the key path of every output of the protocol is unspendable.
pub const NUMS_KEY_HEX: &str = "0250929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0";

const NUMS_KEY_XONLY: [u8; 32] = [
    0x50, 0x92, 0x9b, 0x74, 0xc1, 0xa0, 0x49, 0x54, 0xb7, 0x8b, 0x4b, 0x60, 0x35, 0xe9, 0x7a, 0x5e,
    0x07, 0x8a, 0x5a, 0x0f, 0x28, 0xec, 0x96, 0xd5, 0x47, 0xbf, 0xee, 0x9a, 0xce, 0x80, 0x3a, 0xc0,
];

/// The internal key of every output of the protocol (x-only NUMS point).
pub fn nums_internal_key() -> XOnlyPublicKey {
    static KEY: OnceLock<XOnlyPublicKey> = OnceLock::new();
    *KEY.get_or_init(|| {
        // A fixed, well-known point on the curve (checked by a unit test), so parsing cannot fail.
        XOnlyPublicKey::from_slice(&NUMS_KEY_XONLY).expect("the NUMS point is on the curve")
    })
}

/// A leaf of one of the protocol's taproot trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Leaf {
    /// `timelock(S, t)`: the staker alone after `t` blocks.
    Timelock,
    /// Staker and covenant quorum (staking output only).
    Unbonding,
    /// Staker, one verifier and covenant quorum.
    Slashing,
}

/// Which of the protocol's outputs a [`TaprootOutput`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutputKind {
    /// `TapBranch(TapBranch(timelock(S, T), unbonding), slashing)`.
    Staking,
    /// `TapBranch(timelock(S, U), slashing)`.
    Unbonding,
    /// A single leaf `timelock(S, U)`.
    SlashingChange,
}

/// Why a taproot output or one of its parts could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaprootError {
    /// A leaf script could not be built.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// The output has no such leaf (e.g. the unbonding leaf of an unbonding output).
    #[error("the {kind:?} output has no {leaf:?} leaf")]
    NoSuchLeaf {
        /// The output asked.
        kind: OutputKind,
        /// The leaf asked for.
        leaf: Leaf,
    },
}

/// One of the protocol's taproot outputs: its leaf scripts and its BIP-0341 spend data, computed
/// once (one tweak) and reused for the script pubkey, the address and every control block.
#[derive(Debug, Clone)]
pub struct TaprootOutput {
    kind: OutputKind,
    timelock: ScriptBuf,
    unbonding: Option<ScriptBuf>,
    slashing: Option<ScriptBuf>,
    spend_info: TaprootSpendInfo,
}

impl TaprootOutput {
    /// The staking output for staking time `T` (1..=65535 blocks).
    pub fn staking(keys: &StakingKeys, staking_time: u32) -> Result<Self, TaprootError> {
        let timelock = timelock_script(&keys.staker(), staking_time)?;
        let unbonding = unbonding_script(keys);
        let slashing = slashing_script(keys);
        let builder = TaprootBuilder::new()
            .add_leaf(2, timelock.clone())
            .and_then(|b| b.add_leaf(2, unbonding.clone()))
            .and_then(|b| b.add_leaf(1, slashing.clone()));
        Ok(Self::finish(
            OutputKind::Staking,
            builder,
            timelock,
            Some(unbonding),
            Some(slashing),
        ))
    }

    /// The unbonding output for unbonding time `U` (1..=65535 blocks).
    pub fn unbonding(keys: &StakingKeys, unbonding_time: u32) -> Result<Self, TaprootError> {
        let timelock = timelock_script(&keys.staker(), unbonding_time)?;
        let slashing = slashing_script(keys);
        let builder = TaprootBuilder::new()
            .add_leaf(1, timelock.clone())
            .and_then(|b| b.add_leaf(1, slashing.clone()));
        Ok(Self::finish(
            OutputKind::Unbonding,
            builder,
            timelock,
            None,
            Some(slashing),
        ))
    }

    /// The change output of a slashing transaction: `timelock(S, U)` as the only leaf.
    pub fn slashing_change(
        staker: &XOnlyPublicKey,
        unbonding_time: u32,
    ) -> Result<Self, TaprootError> {
        let timelock = timelock_script(staker, unbonding_time)?;
        let builder = TaprootBuilder::new().add_leaf(0, timelock.clone());
        Ok(Self::finish(
            OutputKind::SlashingChange,
            builder,
            timelock,
            None,
            None,
        ))
    }

    fn finish(
        kind: OutputKind,
        builder: Result<TaprootBuilder, bitcoin::taproot::TaprootBuilderError>,
        timelock: ScriptBuf,
        unbonding: Option<ScriptBuf>,
        slashing: Option<ScriptBuf>,
    ) -> Self {
        // The three tree shapes above are fixed, complete binary trees of depth ≤ 2, so adding
        // their leaves and finalizing cannot fail.
        let spend_info = builder
            .expect("fixed tree shape of depth <= 2")
            .finalize(SECP256K1, nums_internal_key())
            .expect("fixed complete tree is finalizable");
        TaprootOutput {
            kind,
            timelock,
            unbonding,
            slashing,
            spend_info,
        }
    }

    /// Which output this is.
    pub fn kind(&self) -> OutputKind {
        self.kind
    }

    /// The script of `leaf`.
    pub fn leaf_script(&self, leaf: Leaf) -> Result<&Script, TaprootError> {
        let script = match leaf {
            Leaf::Timelock => Some(&self.timelock),
            Leaf::Unbonding => self.unbonding.as_ref(),
            Leaf::Slashing => self.slashing.as_ref(),
        };
        script
            .map(ScriptBuf::as_script)
            .ok_or(TaprootError::NoSuchLeaf {
                kind: self.kind,
                leaf,
            })
    }

    /// The BIP-0341 leaf hash of `leaf` (leaf version 0xc0), the input to its sighash.
    pub fn leaf_hash(&self, leaf: Leaf) -> Result<TapLeafHash, TaprootError> {
        let script = self.leaf_script(leaf)?;
        Ok(TapLeafHash::from_script(script, LeafVersion::TapScript))
    }

    /// The control block that proves `leaf` is committed to by this output.
    pub fn control_block(&self, leaf: Leaf) -> Result<ControlBlock, TaprootError> {
        let script = self.leaf_script(leaf)?.to_owned();
        self.spend_info
            .control_block(&(script, LeafVersion::TapScript))
            .ok_or(TaprootError::NoSuchLeaf {
                kind: self.kind,
                leaf,
            })
    }

    /// The tweaked output key `Q`.
    pub fn output_key(&self) -> TweakedPublicKey {
        self.spend_info.output_key()
    }

    /// The pkScript `OP_1 0x20 <Q.x>`.
    pub fn script_pubkey(&self) -> ScriptBuf {
        ScriptBuf::new_p2tr_tweaked(self.output_key())
    }

    /// The output with `value`.
    pub fn txout(&self, value: Amount) -> TxOut {
        TxOut {
            value,
            script_pubkey: self.script_pubkey(),
        }
    }

    /// The bech32m address of the output on `network`.
    pub fn address(&self, network: Network) -> Address {
        Address::p2tr_tweaked(self.output_key(), network)
    }

    /// The full BIP-0341 spend data (internal key, merkle root, tweak parity).
    pub fn spend_info(&self) -> &TaprootSpendInfo {
        &self.spend_info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::key;

    fn keys() -> StakingKeys {
        StakingKeys::new(key(1), &[key(2)], &[key(3), key(4), key(5)], 2).unwrap()
    }

    #[test]
    fn nums_key_matches_its_compressed_form() {
        let full = crate::keys::parse_xonly_hex(NUMS_KEY_HEX).unwrap();
        assert_eq!(full, nums_internal_key());
    }

    #[test]
    fn every_leaf_has_a_control_block_that_verifies() {
        let staking = TaprootOutput::staking(&keys(), 1000).unwrap();
        let unbonding = TaprootOutput::unbonding(&keys(), 100).unwrap();
        let change = TaprootOutput::slashing_change(&key(1), 100).unwrap();
        let cases = [
            (
                &staking,
                vec![Leaf::Timelock, Leaf::Unbonding, Leaf::Slashing],
            ),
            (&unbonding, vec![Leaf::Timelock, Leaf::Slashing]),
            (&change, vec![Leaf::Timelock]),
        ];
        for (output, leaves) in cases {
            for leaf in leaves {
                let cb = output.control_block(leaf).unwrap();
                let script = output.leaf_script(leaf).unwrap();
                assert!(cb.verify_taproot_commitment(
                    SECP256K1,
                    output.output_key().to_x_only_public_key(),
                    script
                ));
                assert_eq!(cb.internal_key, nums_internal_key());
            }
        }
        assert_eq!(
            staking
                .control_block(Leaf::Slashing)
                .unwrap()
                .merkle_branch
                .len(),
            1
        );
        assert_eq!(
            staking
                .control_block(Leaf::Timelock)
                .unwrap()
                .merkle_branch
                .len(),
            2
        );
        assert_eq!(
            change
                .control_block(Leaf::Timelock)
                .unwrap()
                .merkle_branch
                .len(),
            0
        );
    }

    #[test]
    fn missing_leaves_are_reported() {
        let unbonding = TaprootOutput::unbonding(&keys(), 100).unwrap();
        assert_eq!(
            unbonding.control_block(Leaf::Unbonding).unwrap_err(),
            TaprootError::NoSuchLeaf {
                kind: OutputKind::Unbonding,
                leaf: Leaf::Unbonding
            }
        );
        let change = TaprootOutput::slashing_change(&key(1), 100).unwrap();
        assert!(change.leaf_script(Leaf::Slashing).is_err());
    }

    #[test]
    fn bad_times_are_rejected() {
        assert_eq!(
            TaprootOutput::staking(&keys(), 0).unwrap_err(),
            TaprootError::Script(ScriptError::Timelock(0))
        );
        assert!(TaprootOutput::unbonding(&keys(), 70_000).is_err());
    }
}
