-- The ledger's identity (DESIGN §12): random, made once when the ledger is
-- created (or when an older ledger is migrated), never changed. Signed
-- approvals and saved plans name it, so neither can be replayed on another
-- ledger.
CREATE TABLE ledger_info (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    ledger_id VARCHAR(32) NOT NULL
);
INSERT INTO ledger_info (id, ledger_id) VALUES (1, replace(gen_random_uuid()::text, '-', ''));
