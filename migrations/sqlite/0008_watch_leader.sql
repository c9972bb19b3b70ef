-- The lease that elects one active `reconcile --watch` among several on one
-- ledger (DESIGN §11): one row, taken when free or expired, renewed by its
-- holder, fenced by a token that grows with each new leader.
CREATE TABLE watch_leader (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT,
    token      INTEGER NOT NULL DEFAULT 0,
    since      DATETIME,
    expires_at DATETIME
);
INSERT INTO watch_leader (id) VALUES (1);
