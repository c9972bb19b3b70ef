-- Notifications (DESIGN §11). The webhooks the manifests declare, as
-- reconcile stored them: a target the manifests drop is retired, not deleted,
-- so that what is still in its outbox can be delivered. `events`: the audit
-- actions sent, written ",a,b," (matched with LIKE '%,action,%'); NULL: all.
CREATE TABLE notification_targets (
    id          SERIAL PRIMARY KEY,
    url         TEXT NOT NULL,
    events      TEXT,
    secret_env  VARCHAR(255),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at  TIMESTAMPTZ
);

-- One row per audited event and target, inserted in the event's transaction;
-- the body is built from the audit row at delivery. Delivered, or given up
-- after the retry horizon, each attempt counted.
CREATE TABLE notification_outbox (
    id              SERIAL PRIMARY KEY,
    target_id       INTEGER NOT NULL REFERENCES notification_targets(id),
    env_id          INTEGER REFERENCES environnements(id),
    audit_id        INTEGER NOT NULL REFERENCES audit_logs(id),
    event           VARCHAR(50) NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ,
    gave_up_at      TIMESTAMPTZ,
    last_error      TEXT,
    response_status INTEGER
);

-- Pending rows (the backlog and the delivery query), and each (target,
-- environment) queue in order (an earlier undelivered row blocks later ones).
CREATE INDEX notification_outbox_pending ON notification_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX notification_outbox_queue ON notification_outbox (target_id, env_id, id);
