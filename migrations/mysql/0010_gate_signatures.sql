-- Signed approvals (DESIGN §12): the armored SSH signature of an approval or
-- rejection, and the statement it signs, as `approve --sign` stored them.
-- Validation rebuilds the statement from the row itself and verifies the
-- signature against the manifests' keys; the stored statement only says why
-- a signature does not fit (signed for another deployment, ...) and lets
-- anyone check it with `ssh-keygen -Y verify`. NULL: not signed.
-- Written to be run again (MySQL commits DDL).
ALTER TABLE gate_results ADD COLUMN IF NOT EXISTS signature TEXT NULL;
ALTER TABLE gate_results ADD COLUMN IF NOT EXISTS signed_statement TEXT NULL;
