-- A release held in an environment (DESIGN §9): its deployment there ended by a
-- gate rejection, a failed verification or its attempts used up, so reconcile
-- does not plan it again until the manifests declare another release or a
-- person plans it. One hold per environment at most: it is about the release
-- the manifests declare there. Written to be run again (MySQL commits DDL).
ALTER TABLE environnements
  ADD COLUMN IF NOT EXISTS held_release_id INT NULL,
  ADD COLUMN IF NOT EXISTS held_deployment_id INT NULL,
  ADD COLUMN IF NOT EXISTS held_reason VARCHAR(500) NULL,
  ADD COLUMN IF NOT EXISTS held_at DATETIME(6) NULL;
ALTER TABLE environnements
  ADD CONSTRAINT environnements_held_release FOREIGN KEY IF NOT EXISTS (held_release_id) REFERENCES releases (id),
  ADD CONSTRAINT environnements_held_deployment FOREIGN KEY IF NOT EXISTS (held_deployment_id) REFERENCES deploiements (id);
