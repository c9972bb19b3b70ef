-- The seed's schema (TP3), for MariaDB 10.5+ and MySQL 8, plus what execution
-- needs. Binary collation: versions are case-sensitive and 'réussi' must never
-- compare equal to 'reussi'. DATETIME values are UTC (the session time zone).
-- MySQL commits each statement of a migration on its own: this script can run
-- again after failing midway (IF NOT EXISTS; the environments inserted once).

CREATE TABLE IF NOT EXISTS releases (
    id            INT PRIMARY KEY AUTO_INCREMENT,
    version       VARCHAR(50) NOT NULL,
    tag_git       VARCHAR(50) NOT NULL,
    date_creation DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    UNIQUE KEY releases_version (version),
    CONSTRAINT releases_version_not_empty CHECK (CHAR_LENGTH(version) >= 1),
    CONSTRAINT releases_tag_not_empty CHECK (CHAR_LENGTH(tag_git) >= 1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS environnements (
    id                    INT PRIMARY KEY AUTO_INCREMENT,
    nom                   VARCHAR(50) NOT NULL,
    rang                  INT NOT NULL,
    fencing_token         BIGINT NOT NULL DEFAULT 0,
    max_attempts          INT NOT NULL DEFAULT 3,
    on_failure            VARCHAR(10) NOT NULL DEFAULT 'replan',
    pinned_release_id     INT NULL,
    pin_blocks_release_id INT NULL,
    pinned_at             DATETIME(6) NULL,
    UNIQUE KEY environnements_nom (nom),
    UNIQUE KEY environnements_rang (rang),
    CONSTRAINT environnements_nom_check CHECK (nom IN ('dev', 'staging', 'prod')),
    CONSTRAINT environnements_attempts_check CHECK (max_attempts >= 1),
    CONSTRAINT environnements_on_failure_check CHECK (on_failure IN ('replan', 'cancel')),
    FOREIGN KEY (pinned_release_id) REFERENCES releases (id),
    FOREIGN KEY (pin_blocks_release_id) REFERENCES releases (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS deploiements (
    id               INT PRIMARY KEY AUTO_INCREMENT,
    id_release       INT NOT NULL,
    id_env           INT NOT NULL,
    etat             ENUM('planifié', 'validé', 'en_cours', 'réussi', 'échec', 'annulé') NOT NULL,
    date_deploiement DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    attempts         INT NOT NULL DEFAULT 0,
    fencing_token    BIGINT NULL,
    lease_holder     VARCHAR(255) NULL,
    lease_expires_at DATETIME(6) NULL,
    restores_id      INT NULL,
    -- MySQL has no partial index: this column is the environment while the row
    -- is en_cours and NULL otherwise, and NULLs never collide in a unique key.
    en_cours_env     INT AS (CASE WHEN etat = 'en_cours' THEN id_env END) STORED,
    UNIQUE KEY deploiements_one_en_cours (en_cours_env),
    KEY deploiements_env_id (id_env, id),
    KEY deploiements_env_etat_token (id_env, etat, fencing_token),
    KEY deploiements_release (id_release),
    FOREIGN KEY (id_release) REFERENCES releases (id),
    FOREIGN KEY (id_env) REFERENCES environnements (id),
    FOREIGN KEY (restores_id) REFERENCES deploiements (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS audit_logs (
    id             INT PRIMARY KEY AUTO_INCREMENT,
    id_deploiement INT NULL,
    action         VARCHAR(50) NOT NULL,
    etat_avant     VARCHAR(20) NULL,
    etat_apres     VARCHAR(20) NULL,
    message        TEXT NOT NULL,
    acteur         VARCHAR(255) NOT NULL,
    date_log       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY audit_logs_deploiement (id_deploiement, id),
    KEY audit_logs_date (date_log),
    FOREIGN KEY (id_deploiement) REFERENCES deploiements (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO environnements (nom, rang)
SELECT v.nom, v.rang
FROM (SELECT 'dev' AS nom, 1 AS rang UNION ALL SELECT 'staging', 2 UNION ALL SELECT 'prod', 3) v
WHERE NOT EXISTS (SELECT 1 FROM environnements);
