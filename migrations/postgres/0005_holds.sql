-- A release held in an environment (DESIGN §9): its deployment there ended by a
-- gate rejection, a failed verification or its attempts used up, so reconcile
-- does not plan it again until the manifests declare another release or a
-- person plans it. One hold per environment at most: it is about the release
-- the manifests declare there.
ALTER TABLE environnements
  ADD COLUMN held_release_id INTEGER REFERENCES releases(id),
  ADD COLUMN held_deployment_id INTEGER REFERENCES deploiements(id),
  ADD COLUMN held_reason TEXT,
  ADD COLUMN held_at TIMESTAMPTZ,
  ADD CONSTRAINT environnements_hold_complete
    CHECK ((held_release_id IS NULL) = (held_reason IS NULL) AND (held_release_id IS NULL) = (held_at IS NULL));
