-- The audit log's hash chains (DESIGN §12): one per environment and one
-- ('global') for events of no environment. Each row carries its chain, its
-- place in it (seq, from 1), the hash of the row before it and its own hash,
-- SHA-256 over its columns (see src/store/chain.rs). `audit_chains` holds
-- each chain's last sequence number: the row a writer locks (and bumps) to
-- append, so two writers never fork a chain, and the unique key makes a
-- fork impossible even if a lock is missed. Existing rows are chained by
-- shipctl right after this script. Written to be run again (MySQL commits DDL).
ALTER TABLE audit_logs
    ADD COLUMN IF NOT EXISTS chain VARCHAR(10) NULL,
    ADD COLUMN IF NOT EXISTS seq BIGINT NULL,
    ADD COLUMN IF NOT EXISTS prev_hash VARCHAR(64) NULL,
    ADD COLUMN IF NOT EXISTS hash VARCHAR(64) NULL;
UPDATE audit_logs a LEFT JOIN environnements e ON e.id = a.id_env SET a.chain = COALESCE(e.nom, 'global');
ALTER TABLE audit_logs ADD UNIQUE KEY IF NOT EXISTS audit_logs_chain_seq (chain, seq);

CREATE TABLE IF NOT EXISTS audit_chains (
    chain VARCHAR(10) PRIMARY KEY,
    seq   BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT audit_chains_names CHECK (chain IN ('dev', 'staging', 'prod', 'global'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
INSERT IGNORE INTO audit_chains (chain) VALUES ('dev'), ('staging'), ('prod'), ('global');
