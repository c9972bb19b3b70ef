-- Environment policy from the manifests (requires, gates, executor), as JSON,
-- stored by reconcile so that imperative commands on any machine apply it.
-- NULL: never stored; the defaults apply.
ALTER TABLE environnements ADD COLUMN policy TEXT NULL;
