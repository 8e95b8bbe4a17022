-- A sequencer's progress (PROTOCOL §10): the proofs it submitted, each anchor transaction it
-- signed (recorded before its first broadcast), and how far it has looked.

-- Each proof this sequencer submitted, with the round the node put it in.
CREATE TABLE proof (
    proof_id BLOB PRIMARY KEY,
    round BIGINT NOT NULL,
    submitted_at BIGINT NOT NULL
);

-- One anchor per round, signed and recorded before its first broadcast; later broadcasts
-- send these very bytes, so a round is never anchored twice by this sequencer (a restart
-- finds the row and does not sign again). Never deleted.
CREATE TABLE anchor (
    round BIGINT PRIMARY KEY,
    round_hash BLOB NOT NULL,
    certificate_digest BLOB NOT NULL,
    txid TEXT NOT NULL,
    tx BLOB NOT NULL,
    recorded_at BIGINT NOT NULL,
    broadcasts BIGINT NOT NULL,
    last_broadcast_at BIGINT NOT NULL,
    -- What the Bitcoin node said to the last broadcast; empty when it accepted it.
    last_result TEXT NOT NULL,
    -- 0 while unmined.
    confirmations BIGINT NOT NULL,
    -- 1 once k deep: nothing left to do.
    done BIGINT NOT NULL
);

-- The one progress row: the lowest round not settled yet, and what the last pass saw.
CREATE TABLE progress (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    next_round BIGINT NOT NULL,
    last_step_at BIGINT NOT NULL,
    tip_height BIGINT NOT NULL,
    latest_round BIGINT NOT NULL
);
