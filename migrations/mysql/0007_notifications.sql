-- Notifications (DESIGN §11). The webhooks the manifests declare, as
-- reconcile stored them: a target the manifests drop is retired, not deleted,
-- so that what is still in its outbox can be delivered. `events`: the audit
-- actions sent, written ",a,b," (matched with LIKE '%,action,%'); NULL: all.
-- Written to be run again (MySQL commits DDL).
CREATE TABLE IF NOT EXISTS notification_targets (
    id          INT PRIMARY KEY AUTO_INCREMENT,
    url         TEXT NOT NULL,
    events      TEXT NULL,
    secret_env  VARCHAR(255) NULL,
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    retired_at  DATETIME(6) NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per audited event and target, inserted in the event's transaction;
-- the body is built from the audit row at delivery. Delivered, or given up
-- after the retry horizon, each attempt counted. The indexes: pending rows
-- (the backlog and the delivery query), and each (target, environment) queue
-- in order (an earlier undelivered row blocks later ones).
CREATE TABLE IF NOT EXISTS notification_outbox (
    id              INT PRIMARY KEY AUTO_INCREMENT,
    target_id       INT NOT NULL,
    env_id          INT NULL,
    audit_id        INT NOT NULL,
    event           VARCHAR(50) NOT NULL,
    created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    delivered_at    DATETIME(6) NULL,
    gave_up_at      DATETIME(6) NULL,
    last_error      TEXT NULL,
    response_status INT NULL,
    KEY notification_outbox_pending (delivered_at, gave_up_at, next_attempt_at),
    KEY notification_outbox_queue (target_id, env_id, id),
    FOREIGN KEY (target_id) REFERENCES notification_targets (id),
    FOREIGN KEY (env_id) REFERENCES environnements (id),
    FOREIGN KEY (audit_id) REFERENCES audit_logs (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
