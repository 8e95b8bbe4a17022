//! Bitcoin header-chain light client (work in progress).
