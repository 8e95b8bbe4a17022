-- A slasher's progress (PROTOCOL §11): what it saw slashed, what it signed before broadcasting,
-- and where each delegation stands.

-- The verifiers the node published as slashed. The key is not kept: the node serves it.
CREATE TABLE verifier (
    verifier_pk BLOB PRIMARY KEY,
    reason TEXT NOT NULL,
    slashed_in_round BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);

-- Each slashing transaction, signed and recorded (synced) before its first broadcast; later
-- broadcasts send these very bytes, so this slasher never puts two witnesses of one txid out.
-- Never updated but for the broadcast counters, never deleted.
CREATE TABLE slashing_tx (
    staking_txid TEXT NOT NULL,
    -- 'staking' or 'unbonding': the output it spends.
    output TEXT NOT NULL,
    txid TEXT NOT NULL,
    tx BLOB NOT NULL,
    recorded_at BIGINT NOT NULL,
    broadcasts BIGINT NOT NULL,
    last_broadcast_at BIGINT NOT NULL,
    -- What the Bitcoin node said to the last broadcast; empty when it accepted it.
    last_result TEXT NOT NULL,
    PRIMARY KEY (staking_txid, output)
);

-- Where each delegation of a slashed verifier stands.
CREATE TABLE delegation (
    staking_txid TEXT PRIMARY KEY,
    verifier_pk BLOB NOT NULL,
    -- waiting, broadcast, confirming, slashed, escaped, refused
    state TEXT NOT NULL,
    -- The output being slashed ('staking', 'unbonding', or '' before one is chosen).
    output TEXT NOT NULL,
    -- The transaction that spends it ('' when none does yet).
    spender_txid TEXT NOT NULL,
    confirmations BIGINT NOT NULL,
    -- 1 once nothing is left to do: slashed k deep, or spent otherwise k deep.
    done BIGINT NOT NULL,
    detail TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The one progress row, for `fiamma slasher status`.
CREATE TABLE progress (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_step_at BIGINT NOT NULL,
    tip_height BIGINT NOT NULL,
    slashed_verifiers BIGINT NOT NULL,
    open_delegations BIGINT NOT NULL
);
