//! Groth16 over BN254 proof verification (work in progress).
