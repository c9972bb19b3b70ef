-- The seed's schema (TP3), plus what execution needs: leases, fencing tokens,
-- attempts, pins and environment policy. Timestamps are UTC text from the
-- database clock, 'YYYY-MM-DD HH:MM:SS.SSS', so they sort as they compare.

CREATE TABLE releases (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    version       VARCHAR(50) NOT NULL UNIQUE CHECK (length(version) BETWEEN 1 AND 50),
    tag_git       VARCHAR(50) NOT NULL CHECK (length(tag_git) BETWEEN 1 AND 50),
    date_creation DATETIME    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE TABLE environnements (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    nom                   VARCHAR(50) NOT NULL UNIQUE CHECK (nom IN ('dev', 'staging', 'prod')),
    rang                  INTEGER NOT NULL UNIQUE,
    fencing_token         INTEGER NOT NULL DEFAULT 0,
    max_attempts          INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    on_failure            VARCHAR(10) NOT NULL DEFAULT 'replan' CHECK (on_failure IN ('replan', 'cancel')),
    pinned_release_id     INTEGER REFERENCES releases(id),
    pin_blocks_release_id INTEGER REFERENCES releases(id),
    pinned_at             DATETIME
);

CREATE TABLE deploiements (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    id_release       INTEGER NOT NULL REFERENCES releases(id),
    id_env           INTEGER NOT NULL REFERENCES environnements(id),
    etat             VARCHAR(20) NOT NULL
                     CHECK (etat IN ('planifié', 'validé', 'en_cours', 'réussi', 'échec', 'annulé')),
    date_deploiement DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    fencing_token    INTEGER,
    lease_holder     VARCHAR(255),
    lease_expires_at DATETIME,
    restores_id      INTEGER REFERENCES deploiements(id)
);

-- The guarantee behind "one deployment in progress per environment".
CREATE UNIQUE INDEX deploiements_one_en_cours ON deploiements (id_env) WHERE etat = 'en_cours';
-- status: recent history, pending and in-progress lookups.
CREATE INDEX deploiements_env_id ON deploiements (id_env, id);
-- status and rollback: the live release is the réussi row with the highest token.
CREATE INDEX deploiements_env_etat_token ON deploiements (id_env, etat, fencing_token);
CREATE INDEX deploiements_release ON deploiements (id_release);

CREATE TABLE audit_logs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    id_deploiement INTEGER REFERENCES deploiements(id),
    action         VARCHAR(50) NOT NULL,
    etat_avant     VARCHAR(20),
    etat_apres     VARCHAR(20),
    message        TEXT NOT NULL,
    acteur         VARCHAR(255) NOT NULL,
    date_log       DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

CREATE INDEX audit_logs_deploiement ON audit_logs (id_deploiement, id);
CREATE INDEX audit_logs_date ON audit_logs (date_log);

INSERT INTO environnements (nom, rang) VALUES ('dev', 1), ('staging', 2), ('prod', 3);
