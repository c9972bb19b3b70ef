-- The lease that elects one active `reconcile --watch` among several on one
-- ledger (DESIGN §11): one row, taken when free or expired, renewed by its
-- holder, fenced by a token that grows with each new leader. Written to be
-- run again (MySQL commits DDL).
CREATE TABLE IF NOT EXISTS watch_leader (
    id         INT PRIMARY KEY,
    holder     VARCHAR(255) NULL,
    token      BIGINT NOT NULL DEFAULT 0,
    since      DATETIME(6) NULL,
    expires_at DATETIME(6) NULL,
    CONSTRAINT watch_leader_one_row CHECK (id = 1)
);
INSERT IGNORE INTO watch_leader (id) VALUES (1);
