-- The seed's schema (TP3), plus what execution needs: leases, fencing tokens,
-- attempts, pins and environment policy. Timestamps come from the database clock.

CREATE TABLE releases (
    id            SERIAL PRIMARY KEY,
    version       VARCHAR(50) NOT NULL UNIQUE CHECK (length(version) >= 1),
    tag_git       VARCHAR(50) NOT NULL CHECK (length(tag_git) >= 1),
    date_creation TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE environnements (
    id                    SERIAL PRIMARY KEY,
    nom                   VARCHAR(50) NOT NULL UNIQUE CHECK (nom IN ('dev', 'staging', 'prod')),
    rang                  INTEGER NOT NULL UNIQUE,
    fencing_token         BIGINT NOT NULL DEFAULT 0,
    max_attempts          INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    on_failure            VARCHAR(10) NOT NULL DEFAULT 'replan' CHECK (on_failure IN ('replan', 'cancel')),
    pinned_release_id     INTEGER REFERENCES releases(id),
    pin_blocks_release_id INTEGER REFERENCES releases(id),
    pinned_at             TIMESTAMPTZ
);

CREATE TABLE deploiements (
    id               SERIAL PRIMARY KEY,
    id_release       INTEGER NOT NULL REFERENCES releases(id),
    id_env           INTEGER NOT NULL REFERENCES environnements(id),
    etat             VARCHAR(20) NOT NULL
                     CHECK (etat IN ('planifié', 'validé', 'en_cours', 'réussi', 'échec', 'annulé')),
    date_deploiement TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts         INTEGER NOT NULL DEFAULT 0,
    fencing_token    BIGINT,
    lease_holder     VARCHAR(255),
    lease_expires_at TIMESTAMPTZ,
    restores_id      INTEGER REFERENCES deploiements(id)
);

CREATE UNIQUE INDEX deploiements_one_en_cours ON deploiements (id_env) WHERE etat = 'en_cours';
CREATE INDEX deploiements_env_id ON deploiements (id_env, id);
CREATE INDEX deploiements_env_etat_token ON deploiements (id_env, etat, fencing_token);
CREATE INDEX deploiements_release ON deploiements (id_release);

CREATE TABLE audit_logs (
    id             SERIAL PRIMARY KEY,
    id_deploiement INTEGER REFERENCES deploiements(id),
    action         VARCHAR(50) NOT NULL,
    etat_avant     VARCHAR(20),
    etat_apres     VARCHAR(20),
    message        TEXT NOT NULL,
    acteur         VARCHAR(255) NOT NULL,
    date_log       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX audit_logs_deploiement ON audit_logs (id_deploiement, id);
CREATE INDEX audit_logs_date ON audit_logs (date_log);

INSERT INTO environnements (nom, rang) VALUES ('dev', 1), ('staging', 2), ('prod', 3);
