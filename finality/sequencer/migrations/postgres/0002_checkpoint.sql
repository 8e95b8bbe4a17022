-- Bitcoin-checked checkpoints (CHECKPOINTS.md §13.7): each checkpoint package this sequencer
-- broadcast, and the genesis output it paid.

-- One package per checkpoint round: the signed candidate (parent) and the child this
-- sequencer built and signed to pay for both, recorded before the first broadcast; later
-- broadcasts send these very bytes. Never deleted.
CREATE TABLE checkpoint_package (
    round BIGINT PRIMARY KEY,
    candidate_txid TEXT NOT NULL,
    parent BYTEA NOT NULL,
    child BYTEA NOT NULL,
    recorded_at BIGINT NOT NULL,
    broadcasts BIGINT NOT NULL,
    last_broadcast_at BIGINT NOT NULL,
    -- What the Bitcoin node said to the last broadcast; empty when it accepted it.
    last_result TEXT NOT NULL,
    -- The candidate's confirmations; 0 while unmined.
    confirmations BIGINT NOT NULL,
    -- 1 once the candidate is k deep, or the round is superseded: nothing left to do.
    done BIGINT NOT NULL,
    -- 1 when the node says the round was superseded (the base moved on without it).
    superseded BIGINT NOT NULL
);

-- The one genesis funding: the transaction paying V to the genesis script, recorded before
-- its first broadcast so that a re-run never pays twice, and whether the node took it.
CREATE TABLE checkpoint_genesis (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    genesis_round BIGINT NOT NULL,
    txid TEXT NOT NULL,
    vout BIGINT NOT NULL,
    tx BYTEA NOT NULL,
    recorded_at BIGINT NOT NULL,
    -- 1 once the node registered the output as the genesis.
    registered BIGINT NOT NULL
);
