//! Bitcoin header-chain light client (pure): the node follows Bitcoin itself from a trusted
//! checkpoint (`PROTOCOL.md` §8) — proof of work and difficulty per network, median time past,
//! most-work fork choice, reorganisations up to a depth limit, k-deep checks and Merkle
//! inclusion proofs.
//!
//! Values in, values or typed errors out: the caller fetches headers from its Bitcoin backend,
//! passes its clock where a rule needs one, and persists [`ChainSnapshot`]s.
//!
//! ```text
//! let mut chain = HeaderChain::new(Network::Regtest, Checkpoint::genesis(Network::Regtest), 6)?;
//! chain.accept_headers(&headers_from_backend, now)?;
//! let inclusion = chain.verify_inclusion(&block_hash, txid, &proof)?;
//! if inclusion.is_k_deep(k) { /* activate */ }
//! ```

mod accept;
mod chain;
mod merkle;
mod query;
mod rules;
mod snapshot;
#[cfg(test)]
mod testkit;

pub use accept::{AcceptHeaderError, AcceptOutcome};
pub use chain::{ChainTip, Checkpoint, HeaderChain, NewChainError};
pub use merkle::{InclusionProof, MerkleBranch, MerkleProofError, MAX_BRANCH_LEN};
pub use query::{AcceptHeadersError, BestChainError, DepthError, Inclusion, InclusionError};
pub use rules::{
    target_from_bits, BitsError, MAX_FUTURE_BLOCK_TIME, MAX_TIMEWARP, MEDIAN_TIME_SPAN,
};
pub use snapshot::{ChainSnapshot, RestoreError};
