-- A verifier's slashing protection and progress (PROTOCOL §9).

-- The networks this verifier joined, each with the salt its randomness is bound to. A row is
-- made only when the operator says the network is new to this verifier (`run --new-network`).
CREATE TABLE network (
    chain_id TEXT NOT NULL,
    module_address TEXT NOT NULL,
    verifier_pk BYTEA NOT NULL,
    randomness_salt BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (chain_id, module_address)
);

-- Every randomness commitment this verifier made, written (and synced) before it is sent. A
-- vote only ever uses the randomness of a commitment recorded here.
CREATE TABLE commitment (
    chain_id TEXT NOT NULL,
    module_address TEXT NOT NULL,
    start_round BIGINT NOT NULL,
    num_pub_rand BIGINT NOT NULL,
    root BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (chain_id, module_address, start_round)
);

-- Slashing protection: (network, round) -> the one message signed for it and the vote, written
-- (and synced) before the vote leaves the process. Never updated, never deleted.
CREATE TABLE signed (
    chain_id TEXT NOT NULL,
    module_address TEXT NOT NULL,
    round BIGINT NOT NULL,
    message_hash BYTEA NOT NULL,
    -- The vote as sent (protobuf FinalityVote); empty for a record imported without one.
    vote BYTEA NOT NULL,
    signed_at BIGINT NOT NULL,
    PRIMARY KEY (chain_id, module_address, round)
);

-- Rounds this verifier did not vote in because it disagrees with the node, or could not check.
CREATE TABLE disagreement (
    chain_id TEXT NOT NULL,
    module_address TEXT NOT NULL,
    round BIGINT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (chain_id, module_address, round)
);

-- The one progress row, for `fiamma verifier status`.
CREATE TABLE progress (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_step_at BIGINT NOT NULL,
    current_round BIGINT NOT NULL,
    processed_round BIGINT NOT NULL,
    committed_until BIGINT NOT NULL,
    status TEXT NOT NULL,
    power_sat BIGINT NOT NULL,
    missed_rounds BIGINT NOT NULL
);
