-- Finality resource bounds (issue 10): proofs verified when submitted, a per-round budget of
-- pending proofs, proof bytes dropped after their retention, and no commitment whose range
-- ends beyond BIGINT.

-- The verdict computed when the proof was submitted (outside the finality lock), so closing a
-- round verifies nothing. NULL only for rows submitted before this migration; the closer
-- verifies those before it takes the lock.
ALTER TABLE pending_proofs ADD COLUMN valid BOOLEAN;

-- What the pending proofs (the next round's) hold against the per-round limits. One row,
-- updated by every accepted submission (the row lock serializes them, so two submissions
-- cannot both take the last place) and reset by the round close.
CREATE TABLE pending_budget (
    id     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    proofs BIGINT NOT NULL CHECK (proofs >= 0),
    bytes  BIGINT NOT NULL CHECK (bytes >= 0)
);
INSERT INTO pending_budget (id, proofs, bytes)
SELECT TRUE, COUNT(*),
       COALESCE(SUM(octet_length(verifying_key) + octet_length(proof)
                    + octet_length(public_inputs)), 0)
FROM pending_proofs;

-- A round's proof bytes are dropped once no verifier needs them to re-verify the round; the
-- proof_id, system and verdict stay.
ALTER TABLE round_results
    ALTER COLUMN verifying_key DROP NOT NULL,
    ALTER COLUMN proof DROP NOT NULL,
    ALTER COLUMN public_inputs DROP NOT NULL,
    ADD CONSTRAINT round_results_bytes_together CHECK (
        (verifying_key IS NULL) = (proof IS NULL) AND (proof IS NULL) = (public_inputs IS NULL));
-- Only the rounds whose bytes are still kept, so each close finds what to drop without
-- scanning the history.
CREATE INDEX round_results_with_bytes ON round_results (round) WHERE proof IS NOT NULL;

-- start_round + num - 1 within BIGINT, written so that checking it cannot overflow. NOT VALID:
-- rows stored before the node refused such ranges are not re-checked (the queries no longer
-- compute start_round + num).
ALTER TABLE randomness_commitments ADD CONSTRAINT randomness_commitments_last_in_range
    CHECK (num - 1 <= 9223372036854775807 - start_round) NOT VALID;
