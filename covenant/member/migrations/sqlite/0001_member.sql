-- What this covenant member signed, refused, and how far it has followed the node.

-- One row per delegation signed. Written (and synced) before the signatures are sent, so a
-- restart re-sends these exact signatures and never signs the delegation again.
CREATE TABLE signed (
    staking_txid TEXT PRIMARY KEY,
    params_version BIGINT NOT NULL,
    covenant_pk BLOB NOT NULL,
    slashing_sighash BLOB NOT NULL,
    unbonding_sighash BLOB NOT NULL,
    unbonding_slashing_sighash BLOB NOT NULL,
    verifier_pk BLOB NOT NULL,
    slashing_adaptor_sig BLOB NOT NULL,
    unbonding_slashing_adaptor_sig BLOB NOT NULL,
    unbonding_sig BLOB NOT NULL,
    signed_at BIGINT NOT NULL,
    -- 0 until the node has taken the signatures (or already had them).
    delivered BIGINT NOT NULL DEFAULT 0
);

-- One row per delegation refused, with the reason; rule and decode refusals are final.
CREATE TABLE refused (
    staking_txid TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL
);

-- The one progress row.
CREATE TABLE progress (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_step_at BIGINT NOT NULL,
    pending_seen BIGINT NOT NULL,
    last_event_sequence BIGINT NOT NULL,
    params_problem TEXT
);
