//! The slasher role (anyone may run one): follows the node's finality and staking events, and
//! for every delegation of a verifier the node slashed (equivocation, or selective slashing),
//! slashes whichever of its staking or unbonding output is unspent, with the key the verifier
//! revealed, until the slashing transaction is k blocks deep.
//!
//! - [`plan`]: the pure decisions (which output, the signed slashing transaction, what a
//!   broadcast's answer means);
//! - [`slasher`]: the component (`new`, `step`, `run`);
//! - [`store`]: its local store (SQLite or PostgreSQL): signed transactions recorded before
//!   they are broadcast, and where each delegation stands;
//! - [`config`] and [`daemon`]: `fiamma slasher run`.

pub mod config;
pub mod daemon;
pub mod plan;
pub mod slasher;
pub mod store;
