-- The staking module (PROTOCOL.md §6–8): parameter versions, verifiers, delegations, covenant
-- signatures and the ordered event log.
--
-- Keys are 32-byte x-only BIP-340 keys; transaction ids and block hashes are 32 bytes in
-- internal (not display) order; heights are BTC block heights; values are satoshis.

-- One row: the node's view of Bitcoin and the last event number. Every state-changing
-- transaction locks this row first, so messages apply one at a time in a single order and the
-- event log has no gaps and is in commit order.
CREATE TABLE node_state (
    id             BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    tip_height     INTEGER NOT NULL DEFAULT 0 CHECK (tip_height >= 0),
    tip_hash       BYTEA CHECK (length(tip_hash) = 32),
    last_event_seq BIGINT NOT NULL DEFAULT 0 CHECK (last_event_seq >= 0),
    -- The header chain of the light client, as its snapshot encoding.
    light_client   BYTEA
);
INSERT INTO node_state (id) VALUES (TRUE);

-- The parameter versions the node was started with; a restart with different contents for
-- a recorded version is refused.
CREATE TABLE params_versions (
    version               INTEGER PRIMARY KEY CHECK (version >= 0),
    btc_activation_height INTEGER NOT NULL UNIQUE CHECK (btc_activation_height >= 0),
    body                  JSONB NOT NULL
);

CREATE TABLE verifiers (
    btc_pk           BYTEA PRIMARY KEY CHECK (length(btc_pk) = 32),
    account          TEXT NOT NULL,
    moniker          TEXT NOT NULL,
    identity         TEXT NOT NULL,
    website          TEXT NOT NULL,
    security_contact TEXT NOT NULL,
    details          TEXT NOT NULL,
    commission       TEXT NOT NULL,
    pop_type         SMALLINT NOT NULL,
    pop_sig          BYTEA NOT NULL,
    slashed_height   INTEGER CHECK (slashed_height >= 0),
    slashing_reason  TEXT,
    -- The event that registered it; orders listings.
    created_seq      BIGINT NOT NULL UNIQUE,
    CHECK ((slashed_height IS NULL) = (slashing_reason IS NULL))
);

CREATE TABLE delegations (
    staking_txid                  BYTEA PRIMARY KEY CHECK (length(staking_txid) = 32),
    staker_account                TEXT NOT NULL,
    staker_btc_pk                 BYTEA NOT NULL CHECK (length(staker_btc_pk) = 32),
    pop_type                      SMALLINT NOT NULL,
    pop_sig                       BYTEA NOT NULL,
    verifier_btc_pk               BYTEA NOT NULL REFERENCES verifiers (btc_pk),
    staking_time_blocks           INTEGER NOT NULL CHECK (staking_time_blocks > 0),
    staking_value_sat             BIGINT NOT NULL CHECK (staking_value_sat > 0),
    staking_tx                    BYTEA NOT NULL,
    staking_output_index          INTEGER NOT NULL CHECK (staking_output_index >= 0),
    slashing_tx                   BYTEA NOT NULL,
    staker_slashing_sig           BYTEA NOT NULL CHECK (length(staker_slashing_sig) = 64),
    unbonding_time_blocks         INTEGER NOT NULL CHECK (unbonding_time_blocks > 0),
    unbonding_tx                  BYTEA NOT NULL,
    unbonding_txid                BYTEA NOT NULL UNIQUE CHECK (length(unbonding_txid) = 32),
    unbonding_slashing_tx         BYTEA NOT NULL,
    staker_unbonding_slashing_sig BYTEA NOT NULL CHECK (length(staker_unbonding_slashing_sig) = 64),
    params_version                INTEGER NOT NULL REFERENCES params_versions (version),
    status                        TEXT NOT NULL
        CHECK (status IN ('PENDING', 'VERIFIED', 'ACTIVE', 'UNBONDED', 'EXPIRED')),
    -- Tip heights at which the state machine moved it (see staking::state).
    verified_height               INTEGER,
    start_height                  INTEGER,
    activated_height              INTEGER,
    ended_height                  INTEGER,
    spending_txid                 BYTEA CHECK (length(spending_txid) = 32),
    created_seq                   BIGINT NOT NULL UNIQUE
);

CREATE INDEX delegations_by_status ON delegations (status, staking_txid);
CREATE INDEX delegations_by_staker ON delegations (staker_btc_pk, staking_txid);
CREATE INDEX delegations_by_verifier ON delegations (verifier_btc_pk, staking_txid);
-- The voting power table reads delegations that were ever active.
CREATE INDEX delegations_by_activation ON delegations (activated_height)
    INCLUDE (verifier_btc_pk, staking_value_sat, ended_height)
    WHERE activated_height IS NOT NULL;

CREATE TABLE covenant_signatures (
    staking_txid                   BYTEA NOT NULL REFERENCES delegations (staking_txid),
    covenant_pk                    BYTEA NOT NULL CHECK (length(covenant_pk) = 32),
    slashing_adaptor_sig           BYTEA NOT NULL,
    unbonding_sig                  BYTEA NOT NULL CHECK (length(unbonding_sig) = 64),
    unbonding_slashing_adaptor_sig BYTEA NOT NULL,
    PRIMARY KEY (staking_txid, covenant_pk)
);

-- Keys revealed by slashing evidence, kept as the public record PROTOCOL §11 asks for.
CREATE TABLE slashing_evidence (
    verifier_btc_pk BYTEA PRIMARY KEY REFERENCES verifiers (btc_pk),
    staking_txid    BYTEA REFERENCES delegations (staking_txid),
    secret_key      BYTEA NOT NULL CHECK (length(secret_key) = 32),
    btc_height      INTEGER NOT NULL
);

-- The ordered log of what changed, replayed by the Events stream.
CREATE TABLE events (
    sequence        BIGINT PRIMARY KEY CHECK (sequence > 0),
    kind            TEXT NOT NULL
        CHECK (kind IN ('delegation_status_changed', 'verifier_created', 'verifier_slashed')),
    staking_txid    BYTEA,
    verifier_btc_pk BYTEA NOT NULL,
    from_status     TEXT,
    to_status       TEXT,
    btc_height      INTEGER NOT NULL,
    reason          TEXT,
    -- from_status is NULL when the change is the registration itself.
    CHECK ((kind = 'delegation_status_changed') = (staking_txid IS NOT NULL AND to_status IS NOT NULL))
);
