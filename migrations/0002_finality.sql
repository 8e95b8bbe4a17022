-- The finality module (PROTOCOL.md §9–11): pending proofs, closed rounds with their results,
-- power tables and votes, randomness commitments, liveness, slashing evidence and events.
--
-- Keys are 32-byte x-only BIP-340 keys; rounds are numbered from 1; powers are satoshis.
-- u64 round numbers and powers are stored in BIGINT and refused above i64::MAX by the store.

-- One row: the latest closed round, its hash (the next round's prev_round_hash) and the last
-- finality event number. Closing a round and applying slashing evidence lock this row first,
-- so rounds close one at a time and the event log is gapless and in commit order.
CREATE TABLE finality_state (
    id             BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    latest_round   BIGINT NOT NULL DEFAULT 0 CHECK (latest_round >= 0),
    latest_hash    BYTEA NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'
        CHECK (length(latest_hash) = 32),
    last_event_seq BIGINT NOT NULL DEFAULT 0 CHECK (last_event_seq >= 0)
);
INSERT INTO finality_state (id) VALUES (TRUE);

-- Proofs submitted since the last round closed, in submission order.
CREATE TABLE pending_proofs (
    seq           BIGSERIAL PRIMARY KEY,
    proof_id      BYTEA NOT NULL UNIQUE CHECK (length(proof_id) = 32),
    proof_system  SMALLINT NOT NULL,
    verifying_key BYTEA NOT NULL,
    proof         BYTEA NOT NULL,
    public_inputs BYTEA NOT NULL
);

CREATE TABLE rounds (
    round           BIGINT PRIMARY KEY CHECK (round > 0),
    round_hash      BYTEA NOT NULL CHECK (length(round_hash) = 32),
    prev_round_hash BYTEA NOT NULL CHECK (length(prev_round_hash) = 32),
    status          TEXT NOT NULL CHECK (status IN ('OPEN', 'FINAL', 'EXPIRED')),
    total_power     BIGINT NOT NULL CHECK (total_power >= 0),
    voted_power     BIGINT NOT NULL DEFAULT 0 CHECK (voted_power >= 0),
    -- The encoded finality certificate (96 bytes per entry), once final.
    certificate     BYTEA,
    -- Whether its voters' liveness was recorded (after its votes expired).
    liveness_done   BOOLEAN NOT NULL DEFAULT FALSE,
    CHECK ((status = 'FINAL') = (certificate IS NOT NULL))
);

-- The verdicts of a round, in submission order, with the submitted bytes.
CREATE TABLE round_results (
    round         BIGINT NOT NULL REFERENCES rounds (round),
    position      INTEGER NOT NULL CHECK (position >= 0),
    proof_id      BYTEA NOT NULL CHECK (length(proof_id) = 32),
    valid         BOOLEAN NOT NULL,
    proof_system  SMALLINT NOT NULL,
    verifying_key BYTEA NOT NULL,
    proof         BYTEA NOT NULL,
    public_inputs BYTEA NOT NULL,
    PRIMARY KEY (round, position)
);

-- The active set of a round and each member's power, fixed when the round closed.
CREATE TABLE round_members (
    round    BIGINT NOT NULL REFERENCES rounds (round),
    verifier BYTEA NOT NULL REFERENCES verifiers (btc_pk),
    power    BIGINT NOT NULL CHECK (power > 0),
    PRIMARY KEY (round, verifier)
);

-- The finality side of a verifier (a verifier registered in the staking module without a row
-- here is ACTIVE, without commitments, with an empty liveness window).
CREATE TABLE finality_verifiers (
    verifier    BYTEA PRIMARY KEY REFERENCES verifiers (btc_pk),
    status      TEXT NOT NULL CHECK (status IN ('ACTIVE', 'JAILED', 'SLASHED')),
    since_round BIGINT CHECK (since_round >= 0),
    -- The liveness window, oldest round first: TRUE signed, FALSE missed.
    signed_window BOOLEAN[] NOT NULL DEFAULT '{}',
    CHECK ((status = 'ACTIVE') = (since_round IS NULL))
);

CREATE TABLE randomness_commitments (
    verifier   BYTEA NOT NULL REFERENCES finality_verifiers (verifier),
    start_round BIGINT NOT NULL CHECK (start_round >= 0),
    num        BIGINT NOT NULL CHECK (num > 0),
    root       BYTEA NOT NULL CHECK (length(root) = 32),
    signature  BYTEA NOT NULL CHECK (length(signature) = 64),
    PRIMARY KEY (verifier, start_round)
);

-- Accepted votes: at most one per verifier and round (a second one is equivocation and goes
-- to slashing_records instead).
CREATE TABLE votes (
    round             BIGINT NOT NULL REFERENCES rounds (round),
    verifier          BYTEA NOT NULL REFERENCES finality_verifiers (verifier),
    round_hash        BYTEA NOT NULL CHECK (length(round_hash) = 32),
    public_randomness BYTEA NOT NULL CHECK (length(public_randomness) = 32),
    proof_index       BIGINT NOT NULL,
    proof_total       BIGINT NOT NULL,
    leaf_hash         BYTEA NOT NULL CHECK (length(leaf_hash) = 32),
    aunts             BYTEA[] NOT NULL,
    signature         BYTEA NOT NULL CHECK (length(signature) = 32),
    agrees            BOOLEAN NOT NULL,
    PRIMARY KEY (round, verifier)
);

-- Verifiers slashed by the finality module, with the key the evidence revealed. For
-- equivocation both votes are kept (encoded as FinalityVote protobuf messages).
CREATE TABLE slashing_records (
    verifier         BYTEA PRIMARY KEY REFERENCES finality_verifiers (verifier),
    reason           TEXT NOT NULL CHECK (reason IN ('equivocation', 'selective_slashing')),
    round            BIGINT,
    first_vote       BYTEA,
    second_vote      BYTEA,
    secret_key       BYTEA NOT NULL CHECK (length(secret_key) = 32),
    slashed_in_round BIGINT NOT NULL,
    CHECK ((reason = 'equivocation') = (first_vote IS NOT NULL AND second_vote IS NOT NULL))
);

CREATE TABLE finality_events (
    sequence   BIGINT PRIMARY KEY CHECK (sequence > 0),
    -- The protobuf encoding of the fiamma.finality.v1.Event.
    body       BYTEA NOT NULL
);
