-- Bitcoin-checked checkpoints (CHECKPOINTS.md, proposed PROTOCOL.md §13): the chain the node
-- follows from its registered genesis, each checkpoint round's candidate and votes, and
-- slashing evidence on checkpoint messages.
--
-- Txids are in internal byte order (as in a transaction input); heights are Bitcoin heights.

-- One row once a genesis is registered: the genesis output and the base, the latest k-deep
-- checkpoint output (the genesis at first) that the next candidate spends. Written under the
-- finality state row's FOR UPDATE lock, like every round close.
CREATE TABLE checkpoint_chain (
    id             BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    genesis_txid   BYTEA NOT NULL CHECK (length(genesis_txid) = 32),
    genesis_vout   INTEGER NOT NULL CHECK (genesis_vout >= 0),
    genesis_height INTEGER NOT NULL CHECK (genesis_height >= 0),
    -- h₀: the round whose set the genesis output encodes.
    genesis_round  BIGINT NOT NULL CHECK (genesis_round > 0),
    base_txid      BYTEA NOT NULL CHECK (length(base_txid) = 32),
    base_vout      INTEGER NOT NULL CHECK (base_vout >= 0),
    -- The round whose set the base output encodes (h₀ for the genesis).
    base_round     BIGINT NOT NULL CHECK (base_round > 0),
    base_height    INTEGER NOT NULL CHECK (base_height >= 0),
    -- 0 for the genesis, else the payload kind of the checkpoint (1 quorum, 2 recovery).
    base_kind      SMALLINT NOT NULL CHECK (base_kind IN (0, 1, 2)),
    -- The latest rotation round (at most one per vote_expiry rounds).
    last_rotation  BIGINT CHECK (last_rotation > 0),
    -- Set when the base was spent off the checkpoint template: no more candidates.
    ended          TEXT
);

-- A checkpoint round: the candidate built when the round closed, on the base of that time.
CREATE TABLE checkpoint_rounds (
    round         BIGINT PRIMARY KEY REFERENCES rounds (round),
    kind          TEXT NOT NULL CHECK (kind IN ('SCHEDULED', 'ROTATION')),
    base_txid     BYTEA NOT NULL CHECK (length(base_txid) = 32),
    base_vout     INTEGER NOT NULL CHECK (base_vout >= 0),
    base_round    BIGINT NOT NULL CHECK (base_round > 0 AND base_round < round),
    base_height   INTEGER NOT NULL CHECK (base_height >= 0),
    base_kind     SMALLINT NOT NULL CHECK (base_kind IN (0, 1, 2)),
    -- The unsigned candidate, consensus-serialized.
    candidate     BYTEA NOT NULL,
    -- M: sha256(M) is the candidate's sighash for the base quorum leaf.
    message       BYTEA NOT NULL CHECK (length(message) = 276),
    state         BYTEA NOT NULL CHECK (length(state) = 32),
    -- Base-set weight of the accepted signatures at the last tally.
    base_weight   BIGINT NOT NULL DEFAULT 0 CHECK (base_weight >= 0),
    -- The candidate with its quorum witness, once final and complete.
    signed_tx     BYTEA,
    status        TEXT NOT NULL DEFAULT 'SIGNING'
        CHECK (status IN ('SIGNING', 'READY', 'CONFIRMED', 'SUPERSEDED')),
    CHECK ((status = 'READY') <= (signed_tx IS NOT NULL))
);

CREATE INDEX checkpoint_rounds_signing ON checkpoint_rounds (round) WHERE status = 'SIGNING';

-- Accepted checkpoint votes: one per verifier and round, each verified over the round's M
-- with the verifier's committed randomness for the round.
CREATE TABLE checkpoint_votes (
    round             BIGINT NOT NULL REFERENCES checkpoint_rounds (round),
    verifier          BYTEA NOT NULL REFERENCES finality_verifiers (verifier),
    public_randomness BYTEA NOT NULL CHECK (length(public_randomness) = 32),
    proof_index       BIGINT NOT NULL,
    proof_total       BIGINT NOT NULL,
    leaf_hash         BYTEA NOT NULL CHECK (length(leaf_hash) = 32),
    aunts             BYTEA[] NOT NULL,
    signature         BYTEA NOT NULL CHECK (length(signature) = 32),
    PRIMARY KEY (round, verifier)
);

-- Equivocation on a checkpoint round: the CheckpointEquivocation protobuf message instead of
-- two FinalityVotes.
ALTER TABLE slashing_records ADD COLUMN checkpoint_evidence BYTEA;
ALTER TABLE slashing_records DROP CONSTRAINT slashing_records_check;
ALTER TABLE slashing_records ADD CONSTRAINT slashing_records_evidence CHECK (
    (reason = 'equivocation') = (
        (first_vote IS NOT NULL AND second_vote IS NOT NULL) OR checkpoint_evidence IS NOT NULL
    )
);
