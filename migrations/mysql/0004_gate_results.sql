-- Every gate result of a deployment: a person's approval or rejection, or a
-- command gate's outcome with the end of its output. Rows are only inserted;
-- a person's newest decision on a gate is the one that counts.

CREATE TABLE IF NOT EXISTS gate_results (
    id             INT PRIMARY KEY AUTO_INCREMENT,
    id_deploiement INT NOT NULL,
    gate           VARCHAR(50) NOT NULL,
    kind           VARCHAR(10) NOT NULL,
    outcome        VARCHAR(10) NOT NULL,
    acteur         VARCHAR(255) NOT NULL,
    message        TEXT NOT NULL,
    date_resultat  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY gate_results_deploiement (id_deploiement, id),
    CONSTRAINT gate_results_gate_not_empty CHECK (CHAR_LENGTH(gate) >= 1),
    CONSTRAINT gate_results_acteur_not_empty CHECK (CHAR_LENGTH(acteur) >= 1),
    CONSTRAINT gate_results_kind_check CHECK (kind IN ('approval', 'command')),
    CONSTRAINT gate_results_outcome_check CHECK (
           (kind = 'approval' AND outcome IN ('approved', 'rejected'))
        OR (kind = 'command' AND outcome IN ('passed', 'failed'))),
    FOREIGN KEY (id_deploiement) REFERENCES deploiements (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
