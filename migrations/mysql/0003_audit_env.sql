-- The environment an audit row concerns, so that `shipctl audit --env ENV` also
-- finds the events that concern no deployment (a pin lifted, a policy stored).
ALTER TABLE audit_logs ADD COLUMN id_env INT NULL,
  ADD KEY audit_logs_env (id_env, id),
  ADD FOREIGN KEY (id_env) REFERENCES environnements (id);
UPDATE audit_logs a JOIN deploiements d ON d.id = a.id_deploiement SET a.id_env = d.id_env;
