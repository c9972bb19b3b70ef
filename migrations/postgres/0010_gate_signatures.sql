-- Signed approvals (DESIGN §12): the armored SSH signature of an approval or
-- rejection, and the statement it signs, as `approve --sign` stored them.
-- Validation rebuilds the statement from the row itself and verifies the
-- signature against the manifests' keys; the stored statement only says why
-- a signature does not fit (signed for another deployment, ...) and lets
-- anyone check it with `ssh-keygen -Y verify`. NULL: not signed.
ALTER TABLE gate_results ADD COLUMN signature TEXT;
ALTER TABLE gate_results ADD COLUMN signed_statement TEXT;
