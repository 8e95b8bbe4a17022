//! SubmitProof refuses, before storing anything, a Groth16 key or proof that would make the
//! verification vacuous (PROTOCOL §10 inputs are hostile): points at infinity, which arkworks
//! verifies as valid for any public input, and `delta = ±gamma`.

mod node_finality_support;

use node_finality_support::*;
use sqlx::PgPool;
use tonic::Code;

async fn pending(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM pending_proofs")
        .fetch_one(pool)
        .await
        .expect("count")
}

#[sqlx::test]
async fn vacuous_keys_and_proofs_are_refused_at_submission(pool: PgPool) {
    let node = start(pool.clone()).await;
    let (vk, proof, inputs) = fiamma_proof("valid");
    // Compressed encodings of the point at infinity: the infinity flag, x = 0.
    let mut g1_infinity = [0u8; 32];
    g1_infinity[31] = 0x40;
    let mut g2_infinity = [0u8; 64];
    g2_infinity[63] = 0x40;
    let mut void_vk = vk.clone();
    void_vk[..32].copy_from_slice(&g1_infinity);
    for at in [32, 96, 160] {
        void_vk[at..at + 64].copy_from_slice(&g2_infinity);
    }
    for at in [232, 264] {
        void_vk[at..at + 32].copy_from_slice(&g1_infinity);
    }
    let mut void_proof = proof.clone();
    void_proof[..32].copy_from_slice(&g1_infinity);
    void_proof[32..96].copy_from_slice(&g2_infinity);
    void_proof[96..].copy_from_slice(&g1_infinity);
    let mut c_at_infinity = proof.clone();
    c_at_infinity[96..].copy_from_slice(&g1_infinity);
    let mut delta_is_gamma = vk.clone();
    delta_is_gamma.copy_within(96..160, 160);
    let cases = [
        (
            (void_vk, void_proof, inputs.clone()),
            "verifying key alpha_g1: point at infinity",
        ),
        (
            (vk.clone(), c_at_infinity, inputs.clone()),
            "proof c: point at infinity",
        ),
        (
            (delta_is_gamma, proof, inputs),
            "delta_g2 equal to gamma_g2",
        ),
    ];
    for (parts, text) in cases {
        let refused = node
            .finality
            .clone()
            .submit_proof(proof_request(parts))
            .await
            .expect_err("vacuous");
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{}",
            refused.message()
        );
        assert!(refused.message().contains(text), "{}", refused.message());
        assert!(refused.message().len() < 1024);
    }
    assert_eq!(pending(&pool).await, 0);
}
