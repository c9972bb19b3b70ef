//! Where approvers' SSH keys are read from: the manifests, in git, and never
//! the ledger (DESIGN §12).
//!
//! Reconcile stores each environment's policy in the ledger, so that the
//! imperative commands apply the same rules on any machine (DESIGN §6).
//! Anyone who can write to the database could change that copy: swap a key,
//! take keys out, drop a signed gate, or change the command a deployment
//! runs. So, for the commands that act on a policy (`validate`, `approve`,
//! `rollback`):
//!
//! - where manifests declare the environment, the ledger's copy must be
//!   theirs, field for field; otherwise nothing acts on it until `reconcile`
//!   stores the manifests' policy again (the message names what differs);
//! - a gate with keys in the ledger's copy is acted on only where manifests
//!   declaring its environment can be read.
//!
//! And for every command, signatures are judged by the manifests' keys: a
//! gate that takes signatures, in either copy, is taken from the manifests;
//! without them, its signed decisions count for nothing and say why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{DbContext, Result};
use crate::manifest::{self, Desired, NamedGate, Policy};
use crate::model::Env;
use crate::store::Dialect;
use crate::store::ledger::{self, EnvRow};

#[derive(Debug, Clone)]
pub enum Keys {
    /// Manifests were read: each environment's policy, and how to name them
    /// ("the manifests in deploy/manifests").
    Manifests {
        place: String,
        policies: BTreeMap<Env, Policy>,
        /// Where they were read from, to read them again (`env_row`).
        dir: Option<PathBuf>,
    },
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

const HINT: &str = "run shipctl from a checkout of the manifests that manage this ledger \
                    (--manifests DIR), or run `shipctl reconcile` there to store their policy";

impl Keys {
    /// The policies of a desired state already loaded (reconcile, the
    /// watch), named `place`; `dir`: where to read them again.
    pub fn of(desired: &Desired, place: &str, dir: Option<&Path>) -> Keys {
        Keys::Manifests {
            place: place.to_string(),
            policies: desired
                .environments
                .iter()
                .map(|(env, spec)| (*env, spec.policy.clone()))
                .collect(),
            dir: dir.map(Path::to_path_buf),
        }
    }

    /// The manifests in `dir`, for the commands that take no manifests
    /// otherwise (`validate`, `approve`, `status`, `history`). A missing or
    /// invalid directory is not an error here: it matters only to
    /// environments whose policy has keys, and those say why.
    pub fn load(dir: &Path) -> Keys {
        if !dir.is_dir() {
            return Keys::Unavailable(format!(
                "there is no manifest directory at {}",
                dir.display()
            ));
        }
        match manifest::load(dir) {
            Ok(desired) => Keys::of(
                &desired,
                &format!("the manifests in {}", dir.display()),
                Some(dir),
            ),
            Err(e) => Keys::Unavailable(format!(
                "the manifests in {} do not load ({})",
                dir.display(),
                e.message.lines().next().unwrap_or_default()
            )),
        }
    }

    /// Judges `row`'s stored policy against the manifests: signed gates
    /// taken from them (or marked unverifiable), and `untrusted` set when
    /// nothing may act on the policy.
    pub fn apply(&self, row: &mut EnvRow) {
        let env = row.env;
        let (place, declared) = match self {
            Keys::Manifests {
                place, policies, ..
            } => match policies.get(&env) {
                Some(declared) => (place, declared),
                None => return unverifiable(row, &format!("{place} do not declare {env}")),
            },
            Keys::Unavailable(why) => return unverifiable(row, why),
        };
        match &row.policy {
            Some(stored) if stored != declared => {
                row.untrusted = Some((
                    format!(
                        "the policy of {env} in the ledger differs from {place} ({}): nothing \
                         acts on it until they agree",
                        differences(stored, declared).join(", ")
                    ),
                    HINT.into(),
                ));
            }
            None if declared.gates.iter().any(signs) => {
                row.untrusted = Some((
                    format!(
                        "{place} give {env} gates with approvers' keys, and the ledger holds no \
                         policy for it"
                    ),
                    HINT.into(),
                ));
            }
            _ => {}
        }
        let stored_signs = row
            .policy
            .as_ref()
            .is_some_and(|p| p.gates.iter().any(signs));
        if !stored_signs && !declared.gates.iter().any(signs) {
            return;
        }
        let policy = row.policy.get_or_insert_with(Policy::default);
        let mut gates = Vec::with_capacity(policy.gates.len());
        for g in policy.gates.drain(..) {
            match declared.gates.iter().find(|m| m.name == g.name) {
                Some(m) if signs(m) || signs(&g) => gates.push(m.clone()),
                // Keys the manifests do not declare count for nothing.
                None if signs(&g) => {}
                _ => gates.push(g),
            }
        }
        for m in declared.gates.iter().filter(|m| signs(m)) {
            if !gates.iter().any(|g| g.name == m.name) {
                gates.push(m.clone());
            }
        }
        policy.gates = gates;
    }
}

/// Without manifests declaring `row`'s environment: its gates with keys in
/// the ledger's copy are marked, and their signed decisions count for nothing.
fn unverifiable(row: &mut EnvRow, why: &str) {
    for g in row.policy.iter_mut().flat_map(|p| p.gates.iter_mut()) {
        if signs(g) {
            g.gate.unverifiable = Some(why.to_string());
        }
    }
}

/// Refuses to judge the gates of `policy` (validate, approve) when one has
/// keys that no manifests could give (`unverifiable`).
pub(super) fn judgeable(policy: Option<&Policy>, env: Env) -> Result<()> {
    let marked = policy
        .into_iter()
        .flat_map(|p| &p.gates)
        .find_map(|g| Some((&g.name, g.gate.unverifiable.as_ref()?)));
    match marked {
        None => Ok(()),
        Some((gate, why)) => Err(crate::error::Error::input(format!(
            "gate {gate} of {env} takes signed decisions, and its approvers' keys are read \
             from the manifests, never from the ledger: {why}"
        ))
        .hint(
            "run shipctl from a checkout of the manifests that manage this ledger, or point \
             at them with --manifests DIR",
        )),
    }
}

/// The fields in which two policies differ: `executor`, `gates.qa`.
fn differences(stored: &Policy, declared: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    if stored.requires != declared.requires {
        out.push("requires".to_string());
    }
    let names = stored.gates.iter().chain(&declared.gates).map(|g| &g.name);
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        fn find<'p>(p: &'p Policy, name: &str) -> Option<&'p crate::manifest::schema::Gate> {
            p.gates.iter().find(|g| g.name == name).map(|g| &g.gate)
        }
        if seen.insert(name) && find(stored, name) != find(declared, name) {
            out.push(format!("gates.{name}"));
        }
    }
    if out.iter().all(|f| !f.starts_with("gates."))
        && stored
            .gates
            .iter()
            .map(|g| &g.name)
            .ne(declared.gates.iter().map(|g| &g.name))
    {
        out.push("the order of gates".into());
    }
    for (field, differs) in [
        ("executor", stored.executor != declared.executor),
        ("verify", stored.verify != declared.verify),
        ("windows", stored.windows != declared.windows),
        ("on_failure", stored.on_failure != declared.on_failure),
        ("max_attempts", stored.max_attempts != declared.max_attempts),
    ] {
        if differs {
            out.push(field.into());
        }
    }
    out
}

/// The environment's row, its signed gates taken from the manifests.
pub(super) async fn env_row(
    keys: &Keys,
    c: &mut sqlx::AnyConnection,
    d: Dialect,
    env: Env,
) -> Result<EnvRow> {
    let stored = ledger::env_row(c, d, env)
        .await
        .db("reading the environment")?;
    // The manifests may have moved since they were read (a merge and a
    // reconcile while this command's gates ran): read again before refusing,
    // unless they no longer load (mid-edit), when the first refusal stands.
    let dir = match keys {
        Keys::Manifests { dir: Some(dir), .. } => Some((dir, stored.clone())),
        _ => None,
    };
    let mut row = stored;
    keys.apply(&mut row);
    if let (Some(_), Some((dir, stored))) = (&row.untrusted, dir)
        && let fresh @ Keys::Manifests { .. } = Keys::load(dir)
    {
        let mut again = stored;
        fresh.apply(&mut again);
        return Ok(again);
    }
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

    fn policy(gates: Vec<NamedGate>) -> Policy {
        Policy {
            gates,
            ..Policy::default()
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
            policy: gates.map(policy),
            policy_unknown: Vec::new(),
            untrusted: None,
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
        Keys::Manifests {
            place: "the manifests in m".into(),
            policies: [(Env::Prod, policy(gates))].into_iter().collect(),
            dir: None,
        }
    }

    fn refusal(r: &EnvRow) -> String {
        r.untrusted.clone().map(|(m, _)| m).unwrap_or_default()
    }

    #[test]
    fn a_key_swapped_in_the_ledger_is_put_back_and_nothing_acts_on_it() {
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
        assert_eq!(
            refusal(&r),
            "the policy of prod in the ledger differs from the manifests in m (gates.qa): \
             nothing acts on it until they agree"
        );
        assert!(r.known_policy().is_err());
    }

    #[test]
    fn keys_or_a_signed_gate_taken_out_of_the_ledger_come_back() {
        let signed = || gate("qa", 1, &[("alice", "ssh-ed25519 ALICE")]);
        let mut stripped = row(Some(vec![gate("qa", 1, &[("alice", "")])]));
        manifests(vec![signed()]).apply(&mut stripped);
        let g = &stripped.policy.as_ref().unwrap().gates[0].gate;
        assert!(g.approvers.as_ref().unwrap().signed());
        assert!(refusal(&stripped).contains("(gates.qa)"));

        let mut dropped = row(Some(vec![gate("smoke", 1, &[])]));
        manifests(vec![signed()]).apply(&mut dropped);
        assert_eq!(
            names(&dropped),
            [("smoke".into(), Some(1)), ("qa".into(), Some(1))]
        );
        assert!(refusal(&dropped).contains("(gates.smoke, gates.qa)"));

        let mut erased = row(None);
        manifests(vec![signed()]).apply(&mut erased);
        assert_eq!(names(&erased), [("qa".into(), Some(1))]);
        assert_eq!(
            refusal(&erased),
            "the manifests in m give prod gates with approvers' keys, and the ledger holds no \
             policy for it"
        );
    }

    #[test]
    fn a_policy_equal_to_the_manifests_is_acted_on() {
        let signed = || gate("qa", 1, &[("alice", "ssh-ed25519 ALICE")]);
        let mut r = row(Some(vec![signed()]));
        manifests(vec![signed()]).apply(&mut r);
        assert_eq!(r.untrusted, None);
        assert!(r.known_policy().is_ok());
    }

    #[test]
    fn without_keys_no_manifests_are_needed() {
        let mut r = row(Some(vec![gate("qa", 3, &[("alice", "")])]));
        Keys::Unavailable("none".into()).apply(&mut r);
        assert!(
            r.policy.as_ref().unwrap().gates[0]
                .gate
                .unverifiable
                .is_none()
        );
        assert_eq!(r.untrusted, None);
        // Nor for a ledger that was never reconciled, whatever manifests say
        // when they declare no keys.
        let mut never = row(None);
        manifests(vec![gate("qa", 1, &[("alice", "")])]).apply(&mut never);
        assert_eq!((never.policy, never.untrusted), (None, None));
    }

    #[test]
    fn keys_no_manifests_declare_count_for_nothing() {
        let mallorys = || Some(vec![gate("qa", 1, &[("mallory", "ssh-ed25519 M")])]);
        // Manifests that declare prod without the gate: it is dropped, and
        // the copy differs.
        let mut r = row(mallorys());
        manifests(Vec::new()).apply(&mut r);
        assert_eq!(names(&r), []);
        assert!(refusal(&r).contains("(gates.qa)"));

        // No manifests, or none that declare prod: unverifiable, refused.
        for (keys, why) in [
            (
                Keys::Unavailable("there is no manifest directory at manifests".into()),
                "there is no manifest directory at manifests",
            ),
            (
                Keys::Manifests {
                    place: "the manifests in other".into(),
                    policies: BTreeMap::new(),
                    dir: None,
                },
                "the manifests in other do not declare prod",
            ),
        ] {
            let mut r = row(mallorys());
            keys.apply(&mut r);
            let g = &r.policy.as_ref().unwrap().gates[0].gate;
            assert_eq!(g.unverifiable.as_deref(), Some(why));
            assert_eq!(r.untrusted, None, "rollback may still act on it");
            let e = judgeable(r.policy.as_ref(), Env::Prod).expect_err("refused");
            assert_eq!(
                e.message,
                format!(
                    "gate qa of prod takes signed decisions, and its approvers' keys are read \
                     from the manifests, never from the ledger: {why}"
                )
            );
        }
    }

    #[test]
    fn differences_are_named_by_field() {
        let a = policy(vec![gate("qa", 1, &[]), gate("smoke", 1, &[])]);
        let mut b = policy(vec![gate("smoke", 1, &[]), gate("qa", 1, &[])]);
        assert_eq!(differences(&a, &b), ["the order of gates"]);
        b.max_attempts = 9;
        b.requires = Some(Env::Staging);
        assert_eq!(
            differences(&a, &b),
            ["requires", "the order of gates", "max_attempts"]
        );
    }
}
