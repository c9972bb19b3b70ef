-- The ledger's identity (DESIGN §12): random, made once when the ledger is
-- created (or when an older ledger is migrated), never changed. Signed
-- approvals and saved plans name it, so neither can be replayed on another
-- ledger. Written to be run again (MySQL commits DDL): the row is kept.
CREATE TABLE IF NOT EXISTS ledger_info (
    id        INT PRIMARY KEY,
    ledger_id VARCHAR(32) NOT NULL,
    CONSTRAINT ledger_info_one_row CHECK (id = 1)
);
INSERT IGNORE INTO ledger_info (id, ledger_id) VALUES (1, LOWER(HEX(RANDOM_BYTES(16))));
