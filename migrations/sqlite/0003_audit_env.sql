-- The environment an audit row concerns, so that `shipctl audit --env ENV` also
-- finds the events that concern no deployment (a pin lifted, a policy stored).
ALTER TABLE audit_logs ADD COLUMN id_env INTEGER REFERENCES environnements(id);
UPDATE audit_logs SET id_env = (SELECT d.id_env FROM deploiements d WHERE d.id = audit_logs.id_deploiement)
 WHERE id_deploiement IS NOT NULL;
CREATE INDEX audit_logs_env ON audit_logs (id_env, id);
