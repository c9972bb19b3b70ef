//! Desired state + actual state → a plan. Pure: no I/O, no clock, no database;
//! the engine gathers `Actual`, the renderer shows the `Plan`, and the engine
//! applies it, re-planning each environment under its lock.

use crate::manifest::{Desired, Policy};
use crate::model::{Env, Etat};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the ledger holds, as far as planning cares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actual {
    /// version → tag of every release in the database.
    pub releases: BTreeMap<String, String>,
    pub envs: BTreeMap<Env, ActualEnv>,
    /// The database clock, when some environment declares deploy windows.
    pub now: Option<crate::model::Utc>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActualEnv {
    pub live: Option<Dep>,
    pub in_progress: Option<Dep>,
    pub pending: Vec<Dep>,
    /// Versions with a `réussi` deployment here (live or superseded, not rolled back).
    pub succeeded: Vec<String>,
    pub pin: Option<PinView>,
    pub hold: Option<HoldView>,
    /// The stored policy; `None` when reconcile never stored one.
    pub policy: Option<Policy>,
    /// Fields of the stored policy this version does not know (a newer shipctl wrote it).
    pub policy_unknown: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dep {
    pub id: i64,
    pub version: String,
    pub state: Etat,
    /// An `en_cours` row whose lease expired.
    pub stale: bool,
    /// For a pending deployment: the gates it waits on, or that rejected it
    /// ("qa: 0 of 1 approval; may approve: alice, bob").
    pub waiting: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PinView {
    pub version: String,
    /// The release the pin holds back (the one that was rolled back).
    pub blocks: Option<String>,
}

/// A release held in the environment (DESIGN §9).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldView {
    pub release_id: i64,
    pub version: String,
    /// "failed verification", "rejected at its gates", "all 3 attempts failed".
    pub reason: String,
    /// The deployment whose end set the hold.
    pub deployment_id: Option<i64>,
}

impl HoldView {
    /// "prod: 1.2.0 held: failed verification (deployment 7); declare another
    /// release, or `shipctl deploy --release 4 --env prod` to try again".
    pub fn message(&self, env: Env) -> String {
        format!(
            "{env}: {} held: {}{}; declare another release, or `shipctl deploy --release {} \
             --env {env}` to try again",
            self.version,
            self.reason,
            self.deployment_id
                .map(|id| format!(" (deployment {id})"))
                .unwrap_or_default(),
            self.release_id
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub releases: Vec<ReleaseStep>,
    pub environments: Vec<EnvPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum ReleaseStep {
    Create {
        version: String,
        tag: String,
    },
    /// Releases are immutable: the manifest and the database disagree.
    Conflict {
        version: String,
        declared_tag: String,
        actual_tag: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvPlan {
    pub env: Env,
    pub desired: String,
    pub live: Option<String>,
    pub action: Action,
    /// A deployment whose holder died, to be marked `échec` first.
    pub recover: Option<Dep>,
    /// The rollback pin lifts: the manifests moved on from the release it held back.
    pub lift_pin: bool,
    /// The hold lifts: the manifests declare another release than the held one.
    pub lift_hold: bool,
    /// Pending deployments of other releases, superseded.
    pub cancel: Vec<Dep>,
    /// The stored policy differs from the manifests'.
    pub update_policy: bool,
    /// The stored policy has fields this version does not know: applying is
    /// refused (exit 1) until shipctl is upgraded.
    pub policy_unknown: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    InSync,
    /// Validate and execute the desired release: reuse a pending deployment, or
    /// plan one. `after`: only once that environment has it (same run).
    Deploy {
        reuse: Option<i64>,
        after: Option<Env>,
    },
    /// A rollback pinned the environment to another release; not touched.
    Pinned {
        pinned_to: String,
    },
    /// A deployment is running; not touched.
    Busy {
        running: Dep,
    },
    /// `requires` is not met: the release has not succeeded there.
    Blocked {
        requires: Env,
    },
    /// The desired release is held here: not planned again (DESIGN §9).
    Held {
        hold: HoldView,
    },
}

impl Plan {
    /// Whether applying the plan would write or execute anything.
    pub fn has_changes(&self) -> bool {
        self.releases
            .iter()
            .any(|r| matches!(r, ReleaseStep::Create { .. }))
            || self.environments.iter().any(EnvPlan::has_changes)
    }

    /// Environments whose stored policy this version cannot act on.
    pub fn newer_policies(&self) -> impl Iterator<Item = &EnvPlan> {
        self.environments
            .iter()
            .filter(|e| !e.policy_unknown.is_empty())
    }

    pub fn conflicts(&self) -> impl Iterator<Item = &ReleaseStep> {
        self.releases
            .iter()
            .filter(|r| matches!(r, ReleaseStep::Conflict { .. }))
    }
}

impl EnvPlan {
    pub fn has_changes(&self) -> bool {
        matches!(self.action, Action::Deploy { .. })
            || self.recover.is_some()
            || self.lift_pin
            || self.lift_hold
            || !self.cancel.is_empty()
            || self.update_policy
    }
}

pub fn plan(desired: &Desired, actual: &Actual) -> Plan {
    let mut releases = Vec::new();
    for r in &desired.releases {
        match actual.releases.get(&r.version) {
            None => releases.push(ReleaseStep::Create {
                version: r.version.clone(),
                tag: r.tag.clone(),
            }),
            Some(tag) if *tag != r.tag => releases.push(ReleaseStep::Conflict {
                version: r.version.clone(),
                declared_tag: r.tag.clone(),
                actual_tag: tag.clone(),
            }),
            Some(_) => {}
        }
    }
    let empty = ActualEnv::default();
    let mut environments: Vec<EnvPlan> = Vec::new();
    for (&env, spec) in &desired.environments {
        let here = actual.envs.get(&env).unwrap_or(&empty);
        let upstream = spec.policy.requires.map(|r| {
            let deploying = environments.iter().any(|p| {
                p.env == r && p.desired == spec.release && matches!(p.action, Action::Deploy { .. })
            });
            let has = actual
                .envs
                .get(&r)
                .is_some_and(|a| a.succeeded.contains(&spec.release));
            (r, has, deploying)
        });
        environments.push(plan_env(env, &spec.release, &spec.policy, here, upstream));
    }
    Plan {
        releases,
        environments,
    }
}

/// One environment. `upstream`: (required env, has the release, deploys it in this run).
pub fn plan_env(
    env: Env,
    desired: &str,
    policy: &Policy,
    here: &ActualEnv,
    upstream: Option<(Env, bool, bool)>,
) -> EnvPlan {
    let stored = here.policy.clone().unwrap_or_default();
    let mut p = EnvPlan {
        env,
        desired: desired.to_string(),
        live: here.live.as_ref().map(|l| l.version.clone()),
        action: Action::InSync,
        recover: None,
        lift_pin: false,
        lift_hold: false,
        cancel: Vec::new(),
        update_policy: stored != *policy,
        policy_unknown: here.policy_unknown.clone(),
    };
    match &here.in_progress {
        Some(running) if !running.stale => {
            p.action = Action::Busy {
                running: running.clone(),
            };
            return p;
        }
        Some(stale) => p.recover = Some(stale.clone()),
        None => {}
    }
    // A hold is about the release the manifests declare: once they declare
    // another (or it is live after all), it lifts, whatever else happens here.
    p.lift_hold = here
        .hold
        .as_ref()
        .is_some_and(|h| h.version != desired || p.live.as_deref() == Some(desired));
    if let Some(pin) = &here.pin {
        if pin.blocks.as_deref() == Some(desired) {
            p.action = Action::Pinned {
                pinned_to: pin.version.clone(),
            };
            return p;
        }
        p.lift_pin = true;
    }
    if let Some(hold) = here.hold.as_ref().filter(|_| !p.lift_hold) {
        p.action = Action::Held { hold: hold.clone() };
        return p;
    }
    let others = |keep: &str| -> Vec<Dep> {
        here.pending
            .iter()
            .filter(|d| d.version != keep)
            .cloned()
            .collect()
    };
    if p.live.as_deref() == Some(desired) {
        p.cancel = others(desired);
        return p;
    }
    let after = match upstream {
        Some((_, true, _)) | None => None,
        Some((r, false, true)) => Some(r),
        Some((r, false, false)) => {
            p.action = Action::Blocked { requires: r };
            return p;
        }
    };
    let reuse = here
        .pending
        .iter()
        .find(|d| d.version == desired)
        .map(|d| d.id);
    p.cancel = here
        .pending
        .iter()
        .filter(|d| Some(d.id) != reuse)
        .cloned()
        .collect();
    p.action = Action::Deploy { reuse, after };
    p
}

pub mod saved;

#[cfg(test)]
mod tests;
