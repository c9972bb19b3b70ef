-- Environment policy from the manifests (requires, gates, executor), as JSON,
-- stored by reconcile so that imperative commands on any machine apply it.
-- NULL: never stored; the defaults apply. max_attempts and on_failure keep
-- their own columns.
ALTER TABLE environnements ADD COLUMN policy TEXT;
