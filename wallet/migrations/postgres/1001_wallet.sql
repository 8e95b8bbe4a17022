-- A BDK wallet's changesets, appended as the wallet persists them and merged on load (as BDK's
-- file store does). Versioned 1001+ so that it shares a database with the role that holds the
-- wallet (the staker's migrations count from 1).
CREATE TABLE wallet_changeset (
    id BIGSERIAL PRIMARY KEY,
    wallet TEXT NOT NULL,
    -- bdk_wallet::ChangeSet as JSON.
    changeset TEXT NOT NULL
);
CREATE INDEX wallet_changeset_by_wallet ON wallet_changeset (wallet, id);
