-- The audit log's hash chains (DESIGN §12): one per environment and one
-- ('global') for events of no environment. Each row carries its chain, its
-- place in it (seq, from 1), the hash of the row before it and its own hash,
-- SHA-256 over its columns (see src/store/chain.rs). `audit_chains` holds
-- each chain's last sequence number: the row a writer locks (and bumps) to
-- append, so two writers never fork a chain, and the unique index makes a
-- fork impossible even if a lock is missed. Existing rows are chained by
-- shipctl right after this script, in the same transaction.
ALTER TABLE audit_logs
    ADD COLUMN chain VARCHAR(10),
    ADD COLUMN seq BIGINT,
    ADD COLUMN prev_hash VARCHAR(64),
    ADD COLUMN hash VARCHAR(64);
UPDATE audit_logs a SET chain = COALESCE((SELECT e.nom FROM environnements e WHERE e.id = a.id_env), 'global');
CREATE UNIQUE INDEX audit_logs_chain_seq ON audit_logs (chain, seq);

CREATE TABLE audit_chains (
    chain VARCHAR(10) PRIMARY KEY CHECK (chain IN ('dev', 'staging', 'prod', 'global')),
    seq   BIGINT NOT NULL DEFAULT 0
);
INSERT INTO audit_chains (chain) VALUES ('dev'), ('staging'), ('prod'), ('global');
