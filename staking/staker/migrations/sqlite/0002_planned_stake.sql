-- A watch-only wallet's stakes planned and exported to the external signer, kept until the
-- signed PSBTs come back: a restart between the two loses nothing, and the coins each plan
-- spends stay locked (nothing else may spend them while the signer holds the bundle).
CREATE TABLE planned_stake (
    -- The funding (staking) transaction's id: the delegation's id to be.
    staking_txid TEXT PRIMARY KEY,
    -- The params version the stake was planned under.
    params_version BIGINT NOT NULL,
    -- The terms: the verifier's x-only key, the value and fee in satoshis, T in blocks.
    verifier_pk BLOB NOT NULL,
    value_sat BIGINT NOT NULL,
    staking_time BIGINT NOT NULL,
    slashing_fee_sat BIGINT NOT NULL,
    -- The wallet's unsigned funding PSBT (BIP-174 bytes); the rest of the plan is rebuilt from
    -- it and the terms, as the plan is a pure function of them.
    funding_psbt BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
