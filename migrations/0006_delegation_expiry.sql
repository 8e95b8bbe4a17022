-- PENDING and VERIFIED delegations expire `pending_expiry_blocks` after their registration
-- when their staking transaction was not included k-deep by then (PROTOCOL §7–8); the
-- window starts at the BTC tip the registration was applied at.
ALTER TABLE delegations ADD COLUMN registered_height INTEGER NOT NULL DEFAULT 0
    CHECK (registered_height >= 0);
UPDATE delegations d SET registered_height = e.btc_height
    FROM events e WHERE e.sequence = d.created_seq;

