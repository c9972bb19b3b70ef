-- Every gate result of a deployment: a person's approval or rejection, or a
-- command gate's outcome with the end of its output. Rows are only inserted;
-- a person's newest decision on a gate is the one that counts.

CREATE TABLE gate_results (
    id             SERIAL PRIMARY KEY,
    id_deploiement INTEGER NOT NULL REFERENCES deploiements(id),
    gate           VARCHAR(50) NOT NULL CHECK (length(gate) >= 1),
    kind           VARCHAR(10) NOT NULL CHECK (kind IN ('approval', 'command')),
    outcome        VARCHAR(10) NOT NULL CHECK (
                       (kind = 'approval' AND outcome IN ('approved', 'rejected'))
                    OR (kind = 'command' AND outcome IN ('passed', 'failed'))),
    acteur         VARCHAR(255) NOT NULL CHECK (length(acteur) >= 1),
    message        TEXT NOT NULL,
    date_resultat  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX gate_results_deploiement ON gate_results (id_deploiement, id);
