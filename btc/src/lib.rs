//! Bitcoin backends: the embedded regtest chain on Bitcoin Core's consensus engine, and RPC.
//!
//! Every role (node, staker, slasher, sequencer) depends on this crate for the [`Backend`]
//! trait and the RPC backend; the embedded chain is behind the `embedded` feature, because it
//! builds libbitcoinkernel from source.
//!
//! - [`backend`]: the [`Backend`] trait every Bitcoin consumer uses.
//! - [`regtest`]: the embedded chain ([`RegtestChain`], [`EmbeddedBackend`]), built from
//!   [`kernel`] (Bitcoin Core's validation), [`index`], [`mempool`], [`policy`], [`package`]
//!   and [`mining`].
//! - [`rpc_server`]: Bitcoin Core-compatible JSON-RPC over the embedded chain.
//! - [`rpc_backend`]: the [`Backend`] trait over any Bitcoin Core node.

pub mod backend;
#[cfg(feature = "embedded")]
pub mod index;
#[cfg(feature = "embedded")]
pub mod kernel;
#[cfg(feature = "embedded")]
pub mod mempool;
#[cfg(feature = "embedded")]
pub mod mining;
#[cfg(feature = "embedded")]
pub mod package;
#[cfg(feature = "embedded")]
pub mod policy;
#[cfg(feature = "embedded")]
pub mod regtest;
pub mod rpc_backend;
#[cfg(feature = "embedded")]
pub mod rpc_server;
#[cfg(all(test, feature = "embedded"))]
mod test_tx;

pub use backend::{
    Backend, BackendError, BroadcastError, ChainTip, HeaderEntry, OutPointStatus, Rejection,
    RejectionKind, TxStatus,
};
#[cfg(feature = "embedded")]
pub use regtest::{EmbeddedBackend, RegtestChain};
pub use rpc_backend::RpcBackend;
