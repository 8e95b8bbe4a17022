-- What AddCovenantSigs needs from a delegation, kept in its row so that a covenant member's
-- signatures are checked and counted without decoding transactions or rebuilding outputs.

-- The BIP-0341 sighashes the committee signs, computed once when the delegation is registered:
-- staking slashing ‖ unbonding ‖ unbonding slashing transaction, 32 bytes each. NULL for
-- delegations registered before this column existed; the node computes theirs when needed.
ALTER TABLE delegations ADD COLUMN covenant_sighashes BYTEA
    CHECK (length(covenant_sighashes) = 96);

-- The number of the delegation's covenant_signatures rows. With the status and heights it is
-- the guard of the one conditional statement that counts a signature: PostgreSQL re-checks the
-- guard on the row's latest version, so a signature is only counted against the state it was
-- decided on.
ALTER TABLE delegations ADD COLUMN covenant_sig_count INTEGER NOT NULL DEFAULT 0
    CHECK (covenant_sig_count >= 0);
UPDATE delegations d SET covenant_sig_count =
    (SELECT count(*) FROM covenant_signatures c WHERE c.staking_txid = d.staking_txid);
