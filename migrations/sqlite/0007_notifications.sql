-- Notifications (DESIGN §11). The webhooks the manifests declare, as
-- reconcile stored them: a target the manifests drop is retired, not deleted,
-- so that what is still in its outbox can be delivered. `events`: the audit
-- actions sent, written ",a,b," (matched with LIKE '%,action,%'); NULL: all.
CREATE TABLE notification_targets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    url         TEXT NOT NULL,
    events      TEXT,
    secret_env  VARCHAR(255),
    created_at  DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    retired_at  DATETIME
);

-- One row per audited event and target, inserted in the event's transaction;
-- the body is built from the audit row at delivery. Delivered, or given up
-- after the retry horizon, each attempt counted.
CREATE TABLE notification_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    target_id       INTEGER NOT NULL REFERENCES notification_targets(id),
    env_id          INTEGER REFERENCES environnements(id),
    audit_id        INTEGER NOT NULL REFERENCES audit_logs(id),
    event           VARCHAR(50) NOT NULL,
    created_at      DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    delivered_at    DATETIME,
    gave_up_at      DATETIME,
    last_error      TEXT,
    response_status INTEGER
);

-- Pending rows (the backlog and the delivery query), and each (target,
-- environment) queue in order (an earlier undelivered row blocks later ones).
CREATE INDEX notification_outbox_pending ON notification_outbox (delivered_at, gave_up_at, next_attempt_at);
CREATE INDEX notification_outbox_queue ON notification_outbox (target_id, env_id, id);
