-- The staker's delegations and the step each reached. A row is written (and synced) before
-- the delegation is registered with the node, so a restart resumes it: it never funds a stake
-- twice and never loses one.
CREATE TABLE delegation (
    staking_txid TEXT PRIMARY KEY,
    -- The registration as the node reads it: a CreateDelegationRequest (protobuf).
    registration BYTEA NOT NULL,
    -- The params version the stake was planned under.
    params_version BIGINT NOT NULL,
    -- The signed staking (funding) transaction, broadcast once the committee has signed.
    staking_tx BYTEA NOT NULL,
    -- The staker's signature on the unbonding transaction, made with the others.
    unbonding_sig BYTEA NOT NULL,
    -- registered (recorded; CreateDelegation next), submitted (the node has it), broadcast
    -- (staking tx sent), unbonding (co-signed unbonding tx sent), withdrawing (withdrawal sent),
    -- done (withdrawal confirmed).
    step TEXT NOT NULL,
    -- 1 once the owner asked to unbond.
    unbond_requested BIGINT NOT NULL DEFAULT 0,
    -- The last status the node reported (pending, verified, active, unbonded, expired).
    node_status TEXT NOT NULL DEFAULT '',
    -- What a withdrawal spends (staking, unbonding, slashing_change, unbonding_slashing_change)
    -- and the withdrawal transaction, recorded before it is broadcast.
    withdraw_from TEXT,
    withdraw_tx BYTEA,
    -- A withdrawal PSBT waiting for an external signer (watch-only wallets).
    withdraw_psbt TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
