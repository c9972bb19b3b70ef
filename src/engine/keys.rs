//! Where approvers' SSH keys are read from: the manifests, in git, and never
//! the ledger (DESIGN §12).
//!
//! Reconcile stores each environment's policy in the ledger, so that the
//! imperative commands apply the same rules on any machine. Anyone who can
//! write to the database could swap a key in that copy, take one out, or drop
//! a signed gate; so a gate that takes signatures — in the ledger's copy or in
//! the manifests — is always taken from the manifests. Gates without keys keep
//! the ledger's copy, as before. Without manifests to read, a gate whose
//! stored copy has keys is marked unverifiable: its signed decisions do not
//! count, and nothing acts on them (`validate` and `approve` refuse).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{DbContext, Result};
use crate::manifest::{self, Desired, NamedGate, Policy};
use crate::model::Env;
use crate::store::Dialect;
use crate::store::ledger::{self, EnvRow};

#[derive(Debug, Clone)]
pub enum Keys {
    /// Every gate the manifests declare, per environment.
    Manifests(BTreeMap<Env, Vec<NamedGate>>),
    /// No manifests could be read, and why: "there is no manifest directory at manifests".
    Unavailable(String),
}

impl Default for Keys {
    fn default() -> Keys {
        Keys::Unavailable("no manifests were read".into())
    }
}

fn signs(g: &NamedGate) -> bool {
    g.gate.approvers.as_ref().is_some_and(|a| a.signed())
}

impl Keys {
    /// The gates of a desired state already loaded (reconcile, the watch).
    pub fn of(desired: &Desired) -> Keys {
        Keys::Manifests(
            desired
                .environments
                .iter()
                .map(|(env, spec)| (*env, spec.policy.gates.clone()))
                .collect(),
        )
    }

    /// The gates of the manifests in `dir`, for the commands that take no
    /// manifests otherwise (`validate`, `approve`, `status`, `history`). A
    /// missing or invalid directory is not an error here: it matters only to
    /// gates with keys, and those say why they cannot be checked.
    pub fn load(dir: &Path) -> Keys {
        if !dir.is_dir() {
            return Keys::Unavailable(format!(
                "there is no manifest directory at {}",
                dir.display()
            ));
        }
        match manifest::load(dir) {
            Ok(desired) => Keys::of(&desired),
            Err(e) => Keys::Unavailable(format!(
                "the manifests in {} do not load ({})",
                dir.display(),
                e.message.lines().next().unwrap_or_default()
            )),
        }
    }

    /// `row`'s policy with its signed gates taken from the manifests.
    pub fn apply(&self, row: &mut EnvRow) {
        match self {
            Keys::Manifests(all) => {
                let declared = all.get(&row.env).map(Vec::as_slice).unwrap_or_default();
                let stored_signs = row
                    .policy
                    .as_ref()
                    .is_some_and(|p| p.gates.iter().any(signs));
                if !stored_signs && !declared.iter().any(signs) {
                    return;
                }
                let policy = row.policy.get_or_insert_with(Policy::default);
                let mut gates = Vec::with_capacity(policy.gates.len());
                for g in policy.gates.drain(..) {
                    match declared.iter().find(|m| m.name == g.name) {
                        Some(m) if signs(m) || signs(&g) => gates.push(m.clone()),
                        // Keys the manifests do not declare count for nothing.
                        None if signs(&g) => {}
                        _ => gates.push(g),
                    }
                }
                for m in declared.iter().filter(|m| signs(m)) {
                    if !gates.iter().any(|g| g.name == m.name) {
                        gates.push(m.clone());
                    }
                }
                policy.gates = gates;
            }
            Keys::Unavailable(why) => {
                for g in row.policy.iter_mut().flat_map(|p| p.gates.iter_mut()) {
                    if signs(g) {
                        g.gate.unverifiable = Some(why.clone());
                    }
                }
            }
        }
    }
}

/// The environment's row, its signed gates taken from the manifests.
pub(super) async fn env_row(
    keys: &Keys,
    c: &mut sqlx::AnyConnection,
    d: Dialect,
    env: Env,
) -> Result<EnvRow> {
    let mut row = ledger::env_row(c, d, env)
        .await
        .db("reading the environment")?;
    keys.apply(&mut row);
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::schema::{Approver, Approvers, Gate};

    fn gate(name: &str, approvals: u32, keys: &[(&str, &str)]) -> NamedGate {
        NamedGate {
            name: name.into(),
            gate: Gate {
                approvals: Some(approvals),
                approvers: Some(Approvers(
                    keys.iter()
                        .map(|(n, k)| Approver {
                            name: n.to_string(),
                            keys: if k.is_empty() {
                                Vec::new()
                            } else {
                                vec![k.to_string()]
                            },
                        })
                        .collect(),
                )),
                ..Gate::default()
            },
        }
    }

    fn row(gates: Option<Vec<NamedGate>>) -> EnvRow {
        EnvRow {
            id: 1,
            env: Env::Prod,
            max_attempts: 1,
            on_failure: crate::model::OnFailure::Replan,
            pin: None,
            hold: None,
            policy: gates.map(|gates| Policy {
                gates,
                ..Policy::default()
            }),
            policy_unknown: Vec::new(),
        }
    }

    fn names(r: &EnvRow) -> Vec<(String, Option<u32>)> {
        r.policy
            .iter()
            .flat_map(|p| &p.gates)
            .map(|g| (g.name.clone(), g.gate.approvals))
            .collect()
    }

    fn manifests(gates: Vec<NamedGate>) -> Keys {
        Keys::Manifests([(Env::Prod, gates)].into_iter().collect())
    }

    #[test]
    fn a_key_swapped_in_the_ledger_is_put_back() {
        let mut r = row(Some(vec![gate(
            "qa",
            1,
            &[("alice", "ssh-ed25519 MALLORY")],
        )]));
        manifests(vec![gate("qa", 2, &[("alice", "ssh-ed25519 ALICE")])]).apply(&mut r);
        let g = &r.policy.as_ref().unwrap().gates[0].gate;
        let keys = g.approvers.as_ref().unwrap().keys_of("alice").unwrap();
        assert_eq!(keys, ["ssh-ed25519 ALICE"]);
        assert_eq!(
            g.approvals,
            Some(2),
            "the whole gate comes from the manifests"
        );
    }

    #[test]
    fn keys_or_a_signed_gate_taken_out_of_the_ledger_come_back() {
        let signed = || gate("qa", 1, &[("alice", "ssh-ed25519 ALICE")]);
        let mut stripped = row(Some(vec![gate("qa", 1, &[("alice", "")])]));
        manifests(vec![signed()]).apply(&mut stripped);
        assert!(
            stripped.policy.as_ref().unwrap().gates[0]
                .gate
                .approvers
                .as_ref()
                .unwrap()
                .signed()
        );

        let mut dropped = row(Some(vec![gate("smoke", 1, &[])]));
        manifests(vec![signed()]).apply(&mut dropped);
        assert_eq!(
            names(&dropped),
            [("smoke".into(), Some(1)), ("qa".into(), Some(1))]
        );

        let mut erased = row(None);
        manifests(vec![signed()]).apply(&mut erased);
        assert_eq!(names(&erased), [("qa".into(), Some(1))]);
    }

    #[test]
    fn unsigned_gates_keep_the_ledgers_copy() {
        let mut r = row(Some(vec![gate("qa", 3, &[("alice", "")])]));
        manifests(vec![gate("qa", 1, &[("alice", "")])]).apply(&mut r);
        assert_eq!(names(&r), [("qa".into(), Some(3))]);
        // And no manifests at all changes nothing for them.
        Keys::Unavailable("none".into()).apply(&mut r);
        assert!(
            r.policy.as_ref().unwrap().gates[0]
                .gate
                .unverifiable
                .is_none()
        );
    }

    #[test]
    fn keys_only_the_ledger_declares_count_for_nothing() {
        let mut r = row(Some(vec![gate("qa", 1, &[("mallory", "ssh-ed25519 M")])]));
        manifests(Vec::new()).apply(&mut r);
        assert_eq!(names(&r), []);

        let mut r = row(Some(vec![gate("qa", 1, &[("mallory", "ssh-ed25519 M")])]));
        Keys::Unavailable("there is no manifest directory at manifests".into()).apply(&mut r);
        let g = &r.policy.as_ref().unwrap().gates[0].gate;
        assert_eq!(
            g.unverifiable.as_deref(),
            Some("there is no manifest directory at manifests")
        );
    }
}
