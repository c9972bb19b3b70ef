use super::*;
use crate::manifest::{DeclaredRelease, EnvSpec};
use crate::model::OnFailure;
use rand::{RngExt, SeedableRng, rngs::StdRng};

fn dep(id: i64, version: &str, state: Etat) -> Dep {
    Dep {
        id,
        version: version.into(),
        state,
        stale: false,
        waiting: Vec::new(),
    }
}

fn desired(envs: &[(Env, &str, Option<Env>)]) -> Desired {
    let mut versions: Vec<&str> = envs.iter().map(|e| e.1).collect();
    versions.sort();
    versions.dedup();
    Desired {
        releases: versions
            .iter()
            .map(|v| DeclaredRelease {
                version: v.to_string(),
                tag: format!("v{v}"),
                file: "m.yaml".into(),
            })
            .collect(),
        environments: envs
            .iter()
            .map(|&(env, release, requires)| {
                (
                    env,
                    EnvSpec {
                        release: release.into(),
                        policy: Policy {
                            requires,
                            ..Policy::default()
                        },
                        file: "m.yaml".into(),
                    },
                )
            })
            .collect(),
        notifications: Vec::new(),
        notifications_file: None,
    }
}

fn actual_with(envs: Vec<(Env, ActualEnv)>, releases: &[&str]) -> Actual {
    Actual {
        releases: releases
            .iter()
            .map(|v| (v.to_string(), format!("v{v}")))
            .collect(),
        envs: envs.into_iter().collect(),
        now: None,
    }
}

fn live(version: &str) -> ActualEnv {
    ActualEnv {
        live: Some(dep(1, version, Etat::Reussi)),
        succeeded: vec![version.into()],
        ..ActualEnv::default()
    }
}

fn only(plan: &Plan) -> &EnvPlan {
    assert_eq!(plan.environments.len(), 1);
    &plan.environments[0]
}

#[test]
fn empty_database_creates_releases_and_deploys() {
    let p = plan(&desired(&[(Env::Dev, "1.0", None)]), &Actual::default());
    assert_eq!(
        p.releases,
        vec![ReleaseStep::Create {
            version: "1.0".into(),
            tag: "v1.0".into()
        }]
    );
    assert_eq!(
        only(&p).action,
        Action::Deploy {
            reuse: None,
            after: None
        }
    );
    assert!(p.has_changes());
}

#[test]
fn in_sync_writes_nothing() {
    let d = desired(&[(Env::Prod, "1.0", None)]);
    let p = plan(&d, &actual_with(vec![(Env::Prod, live("1.0"))], &["1.0"]));
    assert_eq!(only(&p).action, Action::InSync);
    assert!(p.releases.is_empty());
    assert!(!p.has_changes());
}

#[test]
fn in_sync_cancels_pending_deployments_of_other_releases() {
    let d = desired(&[(Env::Prod, "1.0", None)]);
    let mut a = live("1.0");
    a.pending = vec![dep(5, "2.0", Etat::Planifie), dep(6, "1.0", Etat::Planifie)];
    let p = plan(&d, &actual_with(vec![(Env::Prod, a)], &["1.0", "2.0"]));
    let e = only(&p);
    assert_eq!(e.action, Action::InSync);
    assert_eq!(e.cancel.iter().map(|d| d.id).collect::<Vec<_>>(), vec![5]);
}

#[test]
fn reuses_a_pending_deployment_and_cancels_the_rest() {
    let d = desired(&[(Env::Prod, "2.0", None)]);
    let mut a = live("1.0");
    a.pending = vec![dep(7, "1.5", Etat::Valide), dep(8, "2.0", Etat::Planifie)];
    let p = plan(
        &d,
        &actual_with(vec![(Env::Prod, a)], &["1.0", "1.5", "2.0"]),
    );
    let e = only(&p);
    assert_eq!(
        e.action,
        Action::Deploy {
            reuse: Some(8),
            after: None
        }
    );
    assert_eq!(e.cancel.iter().map(|d| d.id).collect::<Vec<_>>(), vec![7]);
}

#[test]
fn busy_environment_is_reported_not_touched() {
    let d = desired(&[(Env::Prod, "2.0", None)]);
    let mut a = live("1.0");
    a.in_progress = Some(dep(9, "1.5", Etat::EnCours));
    a.pending = vec![dep(10, "1.7", Etat::Planifie)];
    let p = plan(&d, &actual_with(vec![(Env::Prod, a)], &["1.0", "2.0"]));
    let e = only(&p);
    assert!(matches!(e.action, Action::Busy { .. }));
    assert!(e.cancel.is_empty());
    assert!(!e.has_changes());
}

#[test]
fn stale_deployment_is_recovered_then_planned() {
    let d = desired(&[(Env::Prod, "2.0", None)]);
    let mut a = live("1.0");
    a.in_progress = Some(Dep {
        stale: true,
        ..dep(9, "2.0", Etat::EnCours)
    });
    let p = plan(&d, &actual_with(vec![(Env::Prod, a)], &["1.0", "2.0"]));
    let e = only(&p);
    assert_eq!(e.recover.as_ref().map(|r| r.id), Some(9));
    assert_eq!(
        e.action,
        Action::Deploy {
            reuse: None,
            after: None
        }
    );
}

#[test]
fn pin_holds_while_the_manifest_declares_the_rolled_back_release() {
    let d = desired(&[(Env::Prod, "2.0", None)]);
    let mut a = live("1.0");
    a.pin = Some(PinView {
        version: "1.0".into(),
        blocks: Some("2.0".into()),
    });
    let p = plan(
        &d,
        &actual_with(vec![(Env::Prod, a.clone())], &["1.0", "2.0"]),
    );
    assert_eq!(
        only(&p).action,
        Action::Pinned {
            pinned_to: "1.0".into()
        }
    );
    assert!(!p.has_changes());
    // The manifest declares the restored release: the pin lifts, in sync.
    let p = plan(
        &desired(&[(Env::Prod, "1.0", None)]),
        &actual_with(vec![(Env::Prod, a.clone())], &["1.0", "2.0"]),
    );
    assert!(only(&p).lift_pin);
    assert_eq!(only(&p).action, Action::InSync);
    // A fix forward: the pin lifts and 2.1 deploys.
    let p = plan(
        &desired(&[(Env::Prod, "2.1", None)]),
        &actual_with(vec![(Env::Prod, a)], &["1.0", "2.0"]),
    );
    assert!(only(&p).lift_pin);
    assert!(matches!(only(&p).action, Action::Deploy { .. }));
}

#[test]
fn a_held_release_is_not_planned_again_until_the_manifests_move_on() {
    let mut a = live("1.0");
    a.hold = Some(HoldView {
        release_id: 2,
        version: "2.0".into(),
        reason: "failed verification".into(),
        deployment_id: Some(7),
    });
    let releases = ["1.0", "2.0", "2.1"];
    let held =
        |d: &Desired, a: &ActualEnv| plan(d, &actual_with(vec![(Env::Prod, a.clone())], &releases));
    // Still declared: held, nothing to do, the hold stays.
    let p = held(&desired(&[(Env::Prod, "2.0", None)]), &a);
    assert!(matches!(&only(&p).action, Action::Held { hold } if hold.deployment_id == Some(7)));
    assert!(!only(&p).lift_hold);
    assert!(!p.has_changes());
    let message = a
        .hold
        .as_ref()
        .map(|h| h.message(Env::Prod))
        .unwrap_or_default();
    assert_eq!(
        message,
        "prod: 2.0 held: failed verification (deployment 7); declare another release, or \
         `shipctl deploy --release 2 --env prod` to try again"
    );
    // Another release declared: the hold lifts and it deploys.
    let p = held(&desired(&[(Env::Prod, "2.1", None)]), &a);
    assert!(only(&p).lift_hold);
    assert!(matches!(only(&p).action, Action::Deploy { .. }));
    // Back to the live release: in sync, and the hold lifts too.
    let p = held(&desired(&[(Env::Prod, "1.0", None)]), &a);
    assert!(only(&p).lift_hold && only(&p).action == Action::InSync);
    // Moved on, but blocked upstream: the hold still lifts.
    let mut b = a.clone();
    b.policy = None;
    let p = plan(
        &desired(&[(Env::Prod, "2.1", Some(Env::Staging))]),
        &actual_with(vec![(Env::Prod, b), (Env::Staging, live("1.0"))], &releases),
    );
    assert!(only(&p).lift_hold);
    assert!(matches!(only(&p).action, Action::Blocked { .. }));
    assert!(p.has_changes());
}

#[test]
fn requires_blocks_until_the_release_succeeded_upstream() {
    let d = desired(&[(Env::Prod, "2.0", Some(Env::Staging))]);
    // staging unmanaged and without 2.0: blocked.
    let p = plan(
        &d,
        &actual_with(vec![(Env::Staging, live("1.0"))], &["1.0", "2.0"]),
    );
    assert_eq!(
        only(&p).action,
        Action::Blocked {
            requires: Env::Staging
        }
    );
    // Only the policy (never stored yet) would be written.
    assert!(only(&p).update_policy && only(&p).cancel.is_empty());
    // 2.0 succeeded in staging (even if no longer live): deploy.
    let mut st = live("2.1");
    st.succeeded.push("2.0".into());
    let p = plan(&d, &actual_with(vec![(Env::Staging, st)], &["2.0", "2.1"]));
    assert_eq!(
        only(&p).action,
        Action::Deploy {
            reuse: None,
            after: None
        }
    );
}

#[test]
fn promotion_through_environments_in_one_run() {
    let d = desired(&[
        (Env::Dev, "3.0", None),
        (Env::Staging, "3.0", Some(Env::Dev)),
        (Env::Prod, "3.0", Some(Env::Staging)),
    ]);
    let p = plan(&d, &Actual::default());
    let actions: Vec<_> = p.environments.iter().map(|e| e.action.clone()).collect();
    assert_eq!(
        actions,
        vec![
            Action::Deploy {
                reuse: None,
                after: None
            },
            Action::Deploy {
                reuse: None,
                after: Some(Env::Dev)
            },
            Action::Deploy {
                reuse: None,
                after: Some(Env::Staging)
            },
        ]
    );
}

#[test]
fn tag_conflicts_are_reported() {
    let d = desired(&[(Env::Dev, "1.0", None)]);
    let mut a = Actual::default();
    a.releases.insert("1.0".into(), "other-tag".into());
    let p = plan(&d, &a);
    assert_eq!(p.conflicts().count(), 1);
}

#[test]
fn policy_changes_are_planned() {
    let mut d = desired(&[(Env::Prod, "1.0", None)]);
    let mut a = live("1.0");
    a.policy = Some(Policy::default());
    let p = plan(&d, &actual_with(vec![(Env::Prod, a.clone())], &["1.0"]));
    assert!(!only(&p).update_policy);
    d.environments
        .get_mut(&Env::Prod)
        .unwrap()
        .policy
        .on_failure = OnFailure::Cancel;
    let p = plan(&d, &actual_with(vec![(Env::Prod, a)], &["1.0"]));
    assert!(only(&p).update_policy);
    assert!(p.has_changes());
}

/// Whether one apply can bring `env` to its desired release: not running a
/// live deployment, not pinned away from it, and its `requires` has the release
/// or gets it in the same run.
fn reachable(d: &Desired, a: &Actual, env: Env) -> bool {
    let Some(spec) = d.environments.get(&env) else {
        return false;
    };
    let empty = ActualEnv::default();
    let here = a.envs.get(&env).unwrap_or(&empty);
    if here.in_progress.as_ref().is_some_and(|r| !r.stale) {
        return false;
    }
    if here
        .pin
        .as_ref()
        .is_some_and(|p| p.blocks.as_deref() == Some(spec.release.as_str()))
    {
        return false;
    }
    let live = here.live.as_ref().map(|l| l.version.as_str());
    if live == Some(spec.release.as_str()) {
        return true;
    }
    match spec.policy.requires {
        None => true,
        Some(up) => {
            a.envs
                .get(&up)
                .is_some_and(|u| u.succeeded.contains(&spec.release))
                || (d
                    .environments
                    .get(&up)
                    .is_some_and(|u| u.release == spec.release)
                    && reachable(d, a, up))
        }
    }
}

/// What applying `p` does, if every execution succeeds.
fn apply(d: &Desired, a: &Actual, p: &Plan) -> Actual {
    let mut a = a.clone();
    for r in &p.releases {
        if let ReleaseStep::Create { version, tag } = r {
            a.releases.insert(version.clone(), tag.clone());
        }
    }
    let mut next_id = 1000;
    for e in &p.environments {
        let here = a.envs.entry(e.env).or_default();
        if e.update_policy {
            here.policy = Some(d.environments[&e.env].policy.clone());
        }
        if e.recover.is_some() {
            here.in_progress = None;
        }
        if e.lift_pin {
            here.pin = None;
        }
        here.pending
            .retain(|p| !e.cancel.iter().any(|c| c.id == p.id));
        if let Action::Deploy { reuse, .. } = e.action {
            here.pending.retain(|p| Some(p.id) != reuse);
            next_id += 1;
            here.live = Some(dep(next_id, &e.desired, Etat::Reussi));
            here.succeeded.push(e.desired.clone());
        }
    }
    a
}

#[test]
fn property_applying_a_plan_then_planning_again_changes_nothing() {
    let versions = ["1.0", "1.1", "2.0", "2.1"];
    let mut rng = StdRng::seed_from_u64(20261123);
    for case in 0..5000 {
        let pick = |rng: &mut StdRng| versions[rng.random_range(0..versions.len())];
        // Desired: each environment managed or not, any release, requires an earlier one.
        let mut envs = Vec::new();
        for env in Env::ALL {
            if rng.random_bool(0.75) {
                let requires = match env {
                    Env::Dev => None,
                    _ if rng.random_bool(0.4) => Some(Env::ALL[rng.random_range(0..env as usize)]),
                    _ => None,
                };
                envs.push((env, pick(&mut rng), requires));
            }
        }
        let mut d = desired(&envs);
        for spec in d.environments.values_mut() {
            if rng.random_bool(0.2) {
                spec.policy.max_attempts = 5;
            }
        }
        // Actual: arbitrary ledger states.
        let mut a = Actual::default();
        for v in versions {
            if rng.random_bool(0.5) {
                a.releases.insert(v.into(), format!("v{v}"));
            }
        }
        let mut id = 0;
        for env in Env::ALL {
            let mut e = ActualEnv::default();
            if rng.random_bool(0.7) {
                id += 1;
                let v = pick(&mut rng);
                e.live = Some(dep(id, v, Etat::Reussi));
                e.succeeded.push(v.into());
            }
            for _ in 0..rng.random_range(0..3) {
                id += 1;
                e.pending.push(dep(id, pick(&mut rng), Etat::Planifie));
            }
            if rng.random_bool(0.15) {
                id += 1;
                e.in_progress = Some(Dep {
                    stale: rng.random_bool(0.5),
                    ..dep(id, pick(&mut rng), Etat::EnCours)
                });
            }
            if rng.random_bool(0.2) {
                e.pin = Some(PinView {
                    version: pick(&mut rng).into(),
                    blocks: Some(pick(&mut rng).into()),
                });
            }
            if rng.random_bool(0.5) {
                e.policy = Some(Policy::default());
            }
            a.envs.insert(env, e);
        }

        let first = plan(&d, &a);
        // Invariants of any plan.
        for e in &first.environments {
            if let Action::Deploy { reuse: Some(r), .. } = e.action {
                assert!(
                    !e.cancel.iter().any(|c| c.id == r),
                    "case {case}: reuses a cancelled deployment"
                );
            }
            if let Some(pin) = &a.envs[&e.env].pin
                && pin.blocks.as_deref() == Some(e.desired.as_str())
            {
                assert!(
                    !matches!(e.action, Action::Deploy { .. }),
                    "case {case}: redeploys a pinned-out release"
                );
            }
        }
        let after = apply(&d, &a, &first);
        // The point of a plan: every managed environment that nothing holds back
        // ends on its desired release; the held-back ones keep what they had.
        // Judged from desired and actual alone, not from the plan's own words.
        for (&env, spec) in &d.environments {
            let live = |x: &Actual| {
                x.envs
                    .get(&env)
                    .and_then(|e| e.live.as_ref())
                    .map(|l| l.version.clone())
            };
            if reachable(&d, &a, env) {
                assert_eq!(
                    live(&after).as_deref(),
                    Some(spec.release.as_str()),
                    "case {case}: {env} does not end on its desired release\n\
                     desired {d:?}\nactual {a:?}\nplan {first:?}"
                );
            } else {
                assert_eq!(
                    live(&after),
                    live(&a),
                    "case {case}: {env} was held back but moved"
                );
            }
        }
        let second = plan(&d, &after);
        assert!(
            !second.has_changes(),
            "case {case}: not converged\ndesired {d:?}\nactual {a:?}\nfirst {first:?}\nsecond {second:?}"
        );
        assert_eq!(
            plan(&d, &apply(&d, &after, &second)),
            second,
            "case {case}: not stable"
        );
    }
}
