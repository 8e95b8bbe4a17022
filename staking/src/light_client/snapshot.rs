//! A compact, serialisable record of the header chain for the caller to persist: the
//! checkpoint, the held headers and the tip. Restoring re-validates every header, so a
//! corrupted or tampered record is refused rather than trusted.

use bitcoin::block::Header;
use bitcoin::{BlockHash, Network};
use serde::{Deserialize, Serialize};

use super::accept::AcceptHeaderError;
use super::chain::{Checkpoint, HeaderChain, NewChainError};

/// Everything needed to rebuild a [`HeaderChain`]: headers only, no derived values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSnapshot {
    /// Network whose rules apply.
    pub network: Network,
    /// Reorganisation limit.
    pub max_reorg_depth: u32,
    /// Trusted starting point.
    pub checkpoint: Checkpoint,
    /// Best-chain headers above the checkpoint in height order, then side-branch headers by
    /// height (parents before children). Serialised as one hex string of the 80-byte
    /// consensus encodings.
    #[serde(with = "consensus_hex")]
    pub headers: Vec<Header>,
    /// Tip the restored chain must reach.
    pub tip: BlockHash,
}

/// Why a snapshot does not rebuild a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The checkpoint is unusable.
    #[error("snapshot checkpoint: {0}")]
    Checkpoint(#[from] NewChainError),
    /// A header fails validation.
    #[error("snapshot header {index}: {source}")]
    Header {
        /// Position in [`ChainSnapshot::headers`].
        index: usize,
        /// Why it was refused.
        source: AcceptHeaderError,
    },
    /// The headers are valid but lead to a different tip.
    #[error("snapshot names tip {expected}, but its headers lead to {restored}")]
    TipMismatch {
        /// Tip recorded in the snapshot.
        expected: BlockHash,
        /// Tip the headers produced.
        restored: BlockHash,
    },
}

impl HeaderChain {
    /// The chain's snapshot. Restoring it yields the same tip, best chain and side branches.
    pub fn snapshot(&self) -> ChainSnapshot {
        let mut headers: Vec<Header> = self
            .best
            .iter()
            .skip(1)
            .filter_map(|hash| self.entries.get(hash))
            .map(|e| e.header)
            .collect();
        let mut side: Vec<(u32, BlockHash, Header)> = self
            .side
            .iter()
            .filter_map(|hash| self.entries.get(hash))
            .map(|e| (e.height, e.hash, e.header))
            .collect();
        side.sort_unstable_by_key(|(height, hash, _)| (*height, *hash));
        headers.extend(side.into_iter().map(|(_, _, header)| header));
        ChainSnapshot {
            network: self.network(),
            max_reorg_depth: self.max_reorg_depth,
            checkpoint: self.checkpoint,
            headers,
            tip: self.tip().hash,
        }
    }

    /// Rebuilds a chain from `snapshot`, re-validating every header except against the clock
    /// (each was within two hours of the clock when first accepted).
    ///
    /// Best-chain headers go first, so side branches of equal work stay on the side, and every
    /// held side branch forks within the reorg limit of the final tip, so none is refused.
    pub fn restore(snapshot: &ChainSnapshot) -> Result<Self, RestoreError> {
        let mut chain = Self::new(
            snapshot.network,
            snapshot.checkpoint,
            snapshot.max_reorg_depth,
        )?;
        for (index, header) in snapshot.headers.iter().enumerate() {
            chain
                .accept(header, None)
                .map_err(|source| RestoreError::Header { index, source })?;
        }
        let restored = chain.tip().hash;
        if restored != snapshot.tip {
            return Err(RestoreError::TipMismatch {
                expected: snapshot.tip,
                restored,
            });
        }
        Ok(chain)
    }
}

/// Serde for a header list as the hex of its concatenated consensus encodings: 160 characters
/// a header, about half of what field-by-field serialisation takes.
mod consensus_hex {
    use bitcoin::block::Header;
    use bitcoin::consensus::encode;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Length of a consensus-encoded header.
    const HEADER_LEN: usize = 80;

    pub fn serialize<S: Serializer>(headers: &[Header], serializer: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = headers.iter().flat_map(encode::serialize).collect();
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Header>, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = hex::decode(&text).map_err(D::Error::custom)?;
        if bytes.len() % HEADER_LEN != 0 {
            return Err(D::Error::custom(format!(
                "header list of {} bytes is not a whole number of {HEADER_LEN}-byte headers",
                bytes.len()
            )));
        }
        bytes
            .chunks(HEADER_LEN)
            .map(|chunk| encode::deserialize(chunk).map_err(D::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{break_pow, mine_run, regtest_chain, regtest_genesis};
    use super::*;

    #[test]
    fn a_snapshot_restores_the_same_chain_through_json() {
        let main = mine_run(&regtest_genesis(), 4, 1);
        let side = mine_run(&main[1], 2, 2);
        let chain = regtest_chain(3, &[main.clone(), side.clone()].concat());
        let snapshot = chain.snapshot();
        assert_eq!(snapshot.headers.len(), 6);
        let json = serde_json::to_string(&snapshot).unwrap_or_default();
        let decoded: ChainSnapshot = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        let restored = HeaderChain::restore(&decoded).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(restored.tip(), chain.tip());
        assert_eq!(restored.snapshot(), snapshot);
        assert_eq!(restored.height_of(&side[1].block_hash()), Some(4));
        let listed = serde_json::to_value(&snapshot).unwrap_or_default();
        assert_eq!(listed["headers"].as_str().map(str::len), Some(6 * 160));
    }

    #[test]
    fn a_truncated_header_list_does_not_decode() {
        let chain = regtest_chain(3, &mine_run(&regtest_genesis(), 2, 1));
        let mut value = serde_json::to_value(chain.snapshot()).unwrap_or_default();
        let truncated = value["headers"]
            .as_str()
            .map(|h| h[..h.len() - 2].to_owned());
        value["headers"] = serde_json::Value::from(truncated.unwrap_or_default());
        let err = serde_json::from_value::<ChainSnapshot>(value)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_ref().is_some_and(|e| e.contains("159 bytes")),
            "{err:?}"
        );
    }

    #[test]
    fn tampered_snapshots_are_refused() {
        let main = mine_run(&regtest_genesis(), 3, 1);
        let chain = regtest_chain(3, &main);
        let snapshot = chain.snapshot();

        let mut forged = snapshot.clone();
        forged.headers[1] = break_pow(&forged.headers[1]);
        assert!(matches!(
            HeaderChain::restore(&forged),
            Err(RestoreError::Header {
                index: 1,
                source: AcceptHeaderError::BadProofOfWork { .. }
            })
        ));

        let mut short = snapshot.clone();
        short.headers.pop();
        assert_eq!(
            HeaderChain::restore(&short).err(),
            Some(RestoreError::TipMismatch {
                expected: main[2].block_hash(),
                restored: main[1].block_hash()
            })
        );

        let mut wrong_network = snapshot;
        wrong_network.network = Network::Bitcoin;
        assert!(matches!(
            HeaderChain::restore(&wrong_network),
            Err(RestoreError::Checkpoint(NewChainError::InvalidBits { .. }))
        ));
    }
}
