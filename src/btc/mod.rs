//! Bitcoin backends: the embedded regtest chain on Bitcoin Core's consensus engine, and RPC.
