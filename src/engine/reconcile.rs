//! `reconcile`: make the ledger match the manifests. Reads the actual state,
//! plans (pure), then applies environment by environment in promotion order,
//! re-planning each one under its lock so that a concurrent reconciler or
//! command never makes it plan twice or run two deployments at once.

use super::gates::{self, GateStatus};
use super::{Engine, Execution, Outcome, Validated, Why, lease, record};
use crate::error::{DbContext, Error, Kind, Result};
use crate::executor::Overrides;
use crate::exit::Exit;
use crate::manifest::{Desired, EnvSpec, Policy};
use crate::model::{Env, Etat};
use crate::plan::saved::{self, Marks, SavedEnv, SavedPlan};
use crate::plan::{self, Action, Actual, ActualEnv, Dep, HoldView, PinView, Plan, ReleaseStep};
use crate::store::ledger::{self, Deployment};
use crate::store::{Dialect, Store, Tx};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Reconciled {
    pub releases_created: Vec<String>,
    /// The manifests' `notifications:` differed from the stored webhooks, and
    /// replaced them (DESIGN §11).
    pub notifications_updated: bool,
    pub environments: Vec<EnvResult>,
}

#[derive(Debug, Serialize)]
pub struct EnvResult {
    pub env: Env,
    pub desired: String,
    pub live_before: Option<String>,
    /// What was written besides the execution: recoveries, pins, cancellations, policy.
    pub steps: Vec<String>,
    pub outcome: EnvOutcome,
}

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvOutcome {
    InSync,
    Deployed {
        execution: Box<Execution>,
    },
    Failed {
        execution: Box<Execution>,
    },
    Pinned {
        pinned_to: String,
    },
    Busy {
        message: String,
    },
    Blocked {
        message: String,
    },
    /// The environment's deploy window is closed: the deployment waits for it
    /// (DESIGN §10). `opens_at`: RFC 3339, when it next opens.
    Closed {
        message: String,
        opens_at: Option<String>,
    },
    /// The desired release is held here (DESIGN §9): not planned again.
    Held {
        version: String,
        message: String,
    },
    /// Not attempted: an earlier environment failed under --fail-fast, or a signal stopped the run.
    Skipped {
        reason: String,
    },
    /// A signal came while this environment waited for the database (before
    /// any claim): what earlier environments did stands, the rest is skipped.
    Interrupted {
        signal: crate::supervisor::Signal,
        message: String,
    },
    /// The deployment ran, but its result could not be recorded (the database
    /// went away, or the lease was lost): the lease's expiry hands it to
    /// recovery. Later environments are not attempted.
    Unrecorded {
        message: String,
    },
    /// A saved plan (`--plan FILE`) no longer holds for this environment: it
    /// changed since the plan was made. Nothing was written in it, and later
    /// environments are not attempted (exit 1).
    Stale {
        message: String,
    },
}

impl Reconciled {
    /// The worst of the environments' outcomes: a failure, else a blocked
    /// environment, else done.
    pub fn exit(&self) -> Exit {
        self.environments
            .iter()
            .map(|e| match &e.outcome {
                EnvOutcome::InSync => Exit::Done,
                EnvOutcome::Deployed { execution } | EnvOutcome::Failed { execution } => {
                    execution.exit()
                }
                EnvOutcome::Pinned { .. }
                | EnvOutcome::Busy { .. }
                | EnvOutcome::Blocked { .. }
                | EnvOutcome::Held { .. }
                | EnvOutcome::Closed { .. }
                | EnvOutcome::Skipped { .. } => Exit::Blocked,
                EnvOutcome::Interrupted { signal, .. } => Exit::Interrupted(*signal),
                EnvOutcome::Unrecorded { .. } => Exit::Failed,
                EnvOutcome::Stale { .. } => Exit::Error,
            })
            .fold(Exit::Done, Exit::worst)
    }

    pub fn in_sync(&self) -> bool {
        self.releases_created.is_empty()
            && !self.notifications_updated
            && self
                .environments
                .iter()
                .all(|e| matches!(e.outcome, EnvOutcome::InSync) && e.steps.is_empty())
    }

    /// Whether a signal stopped a run: the caller (watch) should stop too.
    pub fn interrupted(&self) -> bool {
        self.environments.iter().any(|e| match &e.outcome {
            EnvOutcome::Failed { execution } => execution.outcome == Outcome::Interrupted,
            EnvOutcome::Interrupted { .. } => true,
            _ => false,
        })
    }
}

/// The actual state of what the manifests manage, from one read transaction.
pub async fn actual(store: &mut Store, desired: &Desired) -> Result<Actual> {
    let d = store.d;
    let mut tx = store.read().await?;
    let actual = actual_in(&mut tx, d, desired).await?;
    tx.commit().await.db("closing the read transaction")?;
    Ok(actual)
}

/// The actual state and where the ledger stands (its id, its audit
/// watermarks), from one read transaction: what a saved plan records, and
/// what applying one checks again.
pub async fn actual_and_marks(store: &mut Store, desired: &Desired) -> Result<(Actual, Marks)> {
    let d = store.d;
    let mut tx = store.read().await?;
    let actual = actual_in(&mut tx, d, desired).await?;
    let ctx = "reading where the ledger stands";
    let mut marks = Marks {
        ledger_id: Some(ledger::ledger_id(&mut tx, d).await.db(ctx)?),
        global: ledger::audit_watermark(&mut tx, d, None).await.db(ctx)?,
        envs: Default::default(),
    };
    for &env in desired.environments.keys() {
        let mark = ledger::audit_watermark(&mut tx, d, Some(env))
            .await
            .db(ctx)?;
        marks.envs.insert(env, mark);
    }
    tx.commit().await.db("closing the read transaction")?;
    Ok((actual, marks))
}

/// Refuses a saved plan that no longer holds: another ledger, a ledger that
/// moved since (the first change is named, from the audit rows after the
/// plan's watermark), or a plan that comes out different now. Nothing is
/// written here.
pub async fn check_saved(
    store: &mut Store,
    saved: &SavedPlan,
    marks: &Marks,
    plan: &Plan,
    actual: &Actual,
) -> Result<()> {
    let d = store.d;
    let shown = store.url().redacted().to_string();
    match (&saved.ledger_id, &marks.ledger_id) {
        (Some(planned), Some(here)) if planned != here => {
            return Err(Error::input(format!(
                "{} was planned on another ledger (id {planned}); {shown} is ledger {here}",
                saved.path
            ))
            .hint(
                "apply it with the --database-url (or SHIPCTL_DATABASE_URL) it was planned \
                 with, or make a new plan on this ledger; nothing was applied",
            ));
        }
        (None, _) => {
            // Planned before the ledger existed: it must still hold nothing.
            for env in [None, Some(Env::Dev), Some(Env::Staging), Some(Env::Prod)] {
                if let Some(what) = moved(store, d, env, 0).await? {
                    return Err(saved.stale(format!(
                        "it was planned before the ledger at {shown} existed, and {} has \
                         changed since: {what}",
                        env.map_or("the ledger".to_string(), |e| e.to_string())
                    )));
                }
            }
        }
        _ => {}
    }
    if marks.global != saved.global_watermark
        && let Some(what) = moved(store, d, None, saved.global_watermark).await?
    {
        return Err(saved.stale(format!("the ledger changed since the plan: {what}")));
    }
    for e in &saved.environments {
        let now = marks.envs.get(&e.env).copied().unwrap_or(0);
        if now != e.watermark {
            let what = moved(store, d, Some(e.env), e.watermark)
                .await?
                .unwrap_or_else(|| format!("audit rows up to {} were removed", e.watermark));
            return Err(saved.stale(format!("{} changed since the plan: {what}", e.env)));
        }
    }
    if let Some(what) = saved.differs(plan, |env| {
        plan.environments
            .iter()
            .find(|e| e.env == env)
            .map(|e| crate::render::summary(e, actual))
            .unwrap_or_default()
    }) {
        return Err(saved.stale(what));
    }
    Ok(())
}

/// What moved in `env` (`None`: outside any environment) after audit row
/// `after`: "deployment 9 succeeded (audit row 57, by alice, 2026-11-30
/// 12:00:00), and 2 more changes". `None`: nothing after it.
async fn moved(
    store: &mut Store,
    d: Dialect,
    env: Option<Env>,
    after: i64,
) -> Result<Option<String>> {
    let found = ledger::first_audit_after(store.conn(), d, env, after)
        .await
        .db("reading the audit log")?;
    Ok(found.map(|(row, n)| {
        let more = match n - 1 {
            0 => String::new(),
            1 => ", and 1 more change".to_string(),
            m => format!(", and {m} more changes"),
        };
        format!(
            "{} (audit row {}, by {}, {}){more}",
            what_moved(&row),
            row.id,
            row.actor,
            row.date
        )
    }))
}

/// An audit row as the change it records, in a few words.
fn what_moved(row: &ledger::AuditRow) -> String {
    let dep = row
        .deployment
        .map(|id| format!("deployment {id}"))
        .unwrap_or_else(|| "a deployment".into());
    match row.action.as_str() {
        "deployment.planned" => format!("{dep} was planned"),
        "deployment.validated" => format!("{dep} was validated"),
        "deployment.started" => format!("{dep} started"),
        "deployment.succeeded" => format!("{dep} succeeded"),
        "deployment.failed" => format!("{dep} failed"),
        "deployment.rejected" => format!("{dep} was rejected at its gates"),
        "deployment.cancelled" | "deployment.superseded" => format!("{dep} was cancelled"),
        "deployment.rolled_back" => format!("{dep} was rolled back"),
        "gate.approved" => format!("{dep} was approved ({})", row.message),
        "gate.rejected" => format!("{dep} was rejected ({})", row.message),
        "gate.passed" | "gate.failed" => format!("a gate of {dep} ran ({})", row.message),
        "gate.waiting" => format!("{dep} waited at its gates"),
        "verification.passed" | "verification.failed" => {
            format!("{dep} was verified ({})", row.message)
        }
        "lease.expired" => format!("{dep} was recovered: its holder's lease expired"),
        "window.overridden" => format!("{dep} was deployed in a closed window"),
        "policy.updated" => "its policy was stored from the manifests".into(),
        "notifications.updated" => "the webhooks were stored from the manifests".into(),
        "hold.set" | "hold.lifted" | "pin.set" | "pin.lifted" | "release.created" => {
            row.message.clone()
        }
        other => format!("{other}: {}", row.message),
    }
}

async fn actual_in(tx: &mut Tx<'_>, d: Dialect, desired: &Desired) -> Result<Actual> {
    let versions: Vec<&str> = desired
        .releases
        .iter()
        .map(|r| r.version.as_str())
        .collect();
    let releases = ledger::release_tags(tx, d, &versions)
        .await
        .db("reading releases")?;
    let mut envs = std::collections::BTreeMap::new();
    // Environments come in promotion order and `requires` names an earlier one,
    // so the upstream entry exists (or is an unmanaged one, created here).
    for (&env, spec) in &desired.environments {
        let here = actual_env(tx, d, env, Some(&spec.policy)).await?;
        envs.insert(env, here);
        if let Some(up) = spec.policy.requires
            && ledger::has_succeeded(tx, d, up, &spec.release)
                .await
                .db("checking the required environment")?
        {
            envs.entry(up)
                .or_insert_with(ActualEnv::default)
                .succeeded
                .push(spec.release.clone());
        }
    }
    // Deploy windows are judged by the database clock: one statement, only
    // when some environment declares windows.
    let now = if desired
        .environments
        .values()
        .any(|s| s.policy.windows.is_some())
    {
        Some(
            ledger::db_now(tx, d)
                .await
                .db("reading the database clock")?,
        )
    } else {
        None
    };
    Ok(Actual {
        releases,
        envs,
        now,
    })
}

/// One environment's actual state. `declared`: the manifests' policy, to say what
/// pending deployments wait for under it (a plan shown to people); `None` when
/// only the plan's steps matter (reconcile, under the lock).
async fn actual_env(
    tx: &mut Tx<'_>,
    d: Dialect,
    env: Env,
    declared: Option<&Policy>,
) -> Result<ActualEnv> {
    let ctx = "reading the environment";
    let o = ledger::overview(tx, d, env, 0).await.db(ctx)?;
    let row = o.env;
    let mut pending: Vec<Dep> = o.pending.iter().map(dep).collect();
    // What pending deployments wait for under the manifests' gates, so that a
    // plan can say it: one more statement, only where gates are declared and
    // something is pending.
    if let Some(policy) = declared.filter(|p| !p.gates.is_empty())
        && !pending.is_empty()
    {
        let ids: Vec<i64> = pending.iter().map(|p| p.id).collect();
        let decisions = gates::decisions(tx, d, &ids, Some(policy)).await?;
        for p in &mut pending {
            p.waiting = gates::states(Some(policy), &decisions, p.id)
                .iter()
                .filter_map(|s| match s.status {
                    GateStatus::Waiting => Some(format!("waits for {}", s.summary())),
                    GateStatus::Rejected => Some(s.summary()),
                    _ => None,
                })
                .collect();
        }
    }
    Ok(ActualEnv {
        succeeded: o.live.iter().map(|l| l.version.clone()).collect(),
        live: o.live.as_ref().map(dep),
        in_progress: o.in_progress.as_ref().map(dep),
        pending,
        pin: row.pin.map(|p| PinView {
            version: p.version,
            blocks: p.blocks_version,
        }),
        hold: row.hold.map(|h| HoldView {
            release_id: h.release_id,
            version: h.version,
            reason: h.reason,
            deployment_id: h.deployment_id,
        }),
        policy: row.policy,
        policy_unknown: row.policy_unknown,
    })
}

fn dep(d: &Deployment) -> Dep {
    Dep {
        id: d.id,
        version: d.version.clone(),
        state: d.state,
        stale: d.lease_stale,
        waiting: Vec::new(),
    }
}

/// Refuses a plan for environments whose stored policy a newer shipctl wrote:
/// nothing is written, and no gate this version cannot read is skipped.
pub fn check_policies(plan: &Plan) -> Result<()> {
    match plan.newer_policies().next() {
        Some(e) => Err(ledger::newer_policy_refusal(e.env, &e.policy_unknown)),
        None => Ok(()),
    }
}

/// Refuses a plan whose releases conflict with the ledger: nothing is written.
pub fn check_conflicts(desired: &Desired, plan: &Plan) -> Result<()> {
    if let Some(ReleaseStep::Conflict {
        version,
        declared_tag,
        actual_tag,
    }) = plan.conflicts().next()
    {
        let file = desired
            .release(version)
            .map(|r| r.file.display().to_string())
            .unwrap_or_default();
        return Err(Error::input(format!(
            "{file}: release {version} is declared with tag {declared_tag}, but the ledger has it \
             with tag {actual_tag}; releases are immutable"
        ))
        .hint(format!(
            "declare a new version for the new tag, or restore `tag: {actual_tag}` for {version}"
        )));
    }
    Ok(())
}

impl Engine {
    pub async fn reconcile(
        &mut self,
        desired: &Desired,
        overrides: &Overrides,
        fail_fast: bool,
        saved: Option<&SavedPlan>,
    ) -> Result<Reconciled> {
        // The manifests being applied are where approvers' keys come from.
        self.keys = std::sync::Arc::new(super::Keys::of(desired, "the manifests applied", None));
        let first = match saved {
            // The saved plan is checked against the ledger as it is now, before
            // anything is written; each environment checks again under its lock.
            Some(saved) => {
                let (actual, marks) = actual_and_marks(&mut self.store, desired).await?;
                let first = plan::plan(desired, &actual);
                check_saved(&mut self.store, saved, &marks, &first, &actual).await?;
                first
            }
            None => plan::plan(desired, &actual(&mut self.store, desired).await?),
        };
        check_conflicts(desired, &first)?;
        check_policies(&first)?;
        let mut out = Reconciled {
            releases_created: Vec::new(),
            notifications_updated: self.store_notifications(desired).await?,
            environments: Vec::new(),
        };
        if !first.has_changes() {
            // In sync: nothing at all is written (watch runs this every few minutes).
            for e in &first.environments {
                out.environments.push(EnvResult {
                    env: e.env,
                    desired: e.desired.clone(),
                    live_before: e.live.clone(),
                    steps: Vec::new(),
                    outcome: passive_outcome(e.env, &e.action),
                });
            }
            return Ok(out);
        }
        out.releases_created = self.create_releases(desired, &first).await?;
        let mut stop: Option<String> = None;
        for (&env, spec) in &desired.environments {
            if stop.is_none()
                && let Some(s) = crate::supervisor::received()
            {
                // Stopped by a signal between two environments: the report says
                // so, and the exit code is the signal's (unless a run failed).
                out.environments.push(untouched(
                    env,
                    spec,
                    EnvOutcome::Interrupted {
                        signal: s,
                        message: format!("stopped by {} before {env}; not touched", s.name()),
                    },
                ));
                stop = Some(format!("stopped by {}", s.name()));
                continue;
            }
            if let Some(reason) = &stop {
                out.environments.push(untouched(
                    env,
                    spec,
                    EnvOutcome::Skipped {
                        reason: reason.clone(),
                    },
                ));
                continue;
            }
            // A signal while this environment waits for the database ends the
            // reconcile here, with the report of what was done so far.
            let result = tokio::select! {
                biased;
                result = self.reconcile_env(env, spec, overrides, saved.map(|s| (s, s.env(env)))) => match result {
                    Ok(result) => Some(result),
                    Err(e) if matches!(e.kind, Kind::Interrupted(_)) => None,
                    // It ran, but what happened could not be written: report it
                    // with the rest, and go no further.
                    Err(e) if e.kind == Kind::Failed => Some(untouched(
                        env,
                        spec,
                        EnvOutcome::Unrecorded {
                            message: match &e.hint {
                                Some(h) => format!("{} ({h})", e.message),
                                None => e.message.clone(),
                            },
                        },
                    )),
                    Err(e) => return Err(e),
                },
                _ = crate::supervisor::unguarded() => None,
            };
            let Some(result) = result else {
                // Whatever the dropped step had open goes with its connection.
                self.store.mark_broken();
                let signal =
                    crate::supervisor::received().unwrap_or(crate::supervisor::Signal::Int);
                stop = Some(format!("stopped by {} in {env}", signal.name()));
                out.environments.push(untouched(
                    env,
                    spec,
                    EnvOutcome::Interrupted {
                        signal,
                        message: crate::supervisor::interrupted(signal).message,
                    },
                ));
                continue;
            };
            if let EnvOutcome::Unrecorded { .. } = &result.outcome {
                stop = Some(format!("{env}'s result could not be recorded"));
            }
            if let EnvOutcome::Stale { .. } = &result.outcome {
                stop = Some(format!("the plan is stale from {env} on: not applied"));
            }
            if let EnvOutcome::Failed { execution } = &result.outcome {
                if execution.outcome == Outcome::Interrupted {
                    stop = Some("interrupted by a signal".into());
                } else if fail_fast {
                    stop = Some(format!("{env} failed and --fail-fast is set"));
                }
            }
            out.environments.push(result);
        }
        Ok(out)
    }

    /// Stores the manifests' webhooks when they differ from the ledger's, with
    /// one `notifications.updated` row: once per reconcile, whatever the
    /// environments do. In sync: one read, nothing written.
    async fn store_notifications(&mut self, desired: &Desired) -> Result<bool> {
        let d = self.store.d;
        let stored = crate::store::outbox::targets(self.store.conn(), d)
            .await
            .db("reading the notification targets")?;
        if stored
            .iter()
            .map(|(_, t)| t)
            .eq(desired.notifications.iter())
        {
            return Ok(false);
        }
        let mut tx = self.store.write().await?;
        let changed = crate::store::outbox::replace_targets(&mut tx, d, &desired.notifications)
            .await
            .db("storing the notification targets")?;
        if changed {
            let origin = desired
                .notifications_file
                .as_ref()
                .map(|f| format!(", declared in {}", f.display()))
                .unwrap_or_default();
            record(
                &mut tx,
                d,
                self.who.about(
                    None,
                    "notifications.updated",
                    format!(
                        "{} (by reconcile{origin})",
                        crate::notify::describe(&desired.notifications)
                    ),
                ),
            )
            .await?;
        }
        tx.commit()
            .await
            .db("committing the notification targets")?;
        Ok(changed)
    }

    async fn create_releases(&mut self, desired: &Desired, plan: &Plan) -> Result<Vec<String>> {
        let creates: Vec<(&String, &String)> = plan
            .releases
            .iter()
            .filter_map(|r| match r {
                ReleaseStep::Create { version, tag } => Some((version, tag)),
                ReleaseStep::Conflict { .. } => None,
            })
            .collect();
        if creates.is_empty() {
            return Ok(Vec::new());
        }
        let d = self.store.d;
        let mut tx = self.store.write().await?;
        let mut created = Vec::new();
        for (version, tag) in creates {
            let file = desired
                .release(version)
                .map(|r| r.file.display().to_string())
                .unwrap_or_default();
            let origin = format!(" by reconcile, declared in {file}");
            if super::create_release_in(&mut tx, d, &self.who, version, tag, &origin)
                .await?
                .is_some()
            {
                created.push(version.clone());
                continue;
            }
            // Another reconciler created it since the plan was made: fine if it agrees.
            let existing = ledger::release_by_version(&mut tx, d, version)
                .await
                .db("looking up the release")?;
            if let Some(existing) = existing
                && existing.tag != *tag
            {
                return Err(Error::input(format!(
                    "{file}: release {version} was just created elsewhere with tag {}, not {tag}; \
                     releases are immutable",
                    existing.tag
                )));
            }
        }
        tx.commit().await.db("committing the releases")?;
        Ok(created)
    }

    /// One environment: re-plan under its lock, write the plan's steps, commit,
    /// then execute through the same claim / run / finish path as `validate`.
    async fn reconcile_env(
        &mut self,
        env: Env,
        spec: &EnvSpec,
        overrides: &Overrides,
        saved: Option<(&SavedPlan, Option<&SavedEnv>)>,
    ) -> Result<EnvResult> {
        let d = self.store.d;
        let who = self.who.clone();
        // The ledger's copy of the policy as it is: this reconcile replaces
        // it with the manifests' (and validates under the lock with that).
        let row = ledger::env_row(self.store.conn(), d, env)
            .await
            .db("reading the environment")?;
        let mut tx = self.store.write_env(row.id).await?;
        // Under the lock: a newer shipctl may have stored its policy since the plan.
        let under = ledger::env_row(&mut tx, d, env)
            .await
            .db("reading the environment")?;
        if !under.policy_unknown.is_empty() {
            return Err(ledger::newer_policy_refusal(env, &under.policy_unknown));
        }
        // A saved plan holds only if nothing was audited here since it was
        // made: checked under the lock the writes below take, so a change
        // between the first check and now is refused, not applied.
        if let Some((plan, here_saved)) = saved {
            let mark = ledger::audit_watermark(&mut tx, d, Some(env))
                .await
                .db("reading the audit log")?;
            let expected = here_saved.map_or(0, |s| s.watermark);
            if here_saved.is_none() || mark != expected {
                tx.rollback().await.db("rolling back")?;
                let what = match here_saved {
                    None => format!("{env} is not in the plan"),
                    Some(_) => moved(&mut self.store, d, Some(env), expected)
                        .await?
                        .unwrap_or_else(|| format!("audit rows up to {expected} were removed")),
                };
                return Ok(stale(
                    env,
                    spec,
                    plan,
                    format!("{env} changed since the plan: {what}"),
                ));
            }
        }
        let mut steps = Vec::new();
        let recovered = lease::recover_stale(&mut tx, d, &who, row.id).await?;
        if let Some(id) = recovered {
            steps.push(format!("recovered stale deployment {id} as échec"));
        }
        let here = actual_env(&mut tx, d, env, None).await?;
        let upstream = match spec.policy.requires {
            Some(up) => Some((
                up,
                ledger::has_succeeded(&mut tx, d, up, &spec.release)
                    .await
                    .db("checking the required environment")?,
                false,
            )),
            None => None,
        };
        let p = plan::plan_env(env, &spec.release, &spec.policy, &here, upstream);
        let live_before = p.live.clone();
        if let Some((plan, Some(here_saved))) = saved {
            let now = saved::to_value(&p);
            let same = saved::comparable(&now) == saved::comparable(&here_saved.plan)
                && saved::recovers(&here_saved.plan) == recovered;
            if !same {
                tx.rollback().await.db("rolling back")?;
                // The plan deployed here once the release succeeded upstream in
                // the same run; it did not: blocked, as the plan said it could be.
                if let (Some(up), Action::Blocked { requires }) =
                    (saved::after(&here_saved.plan), &p.action)
                    && up == *requires
                {
                    return Ok(untouched(env, spec, passive_outcome(env, &p.action)));
                }
                let summary = crate::render::describe(&p).join("; ");
                return Ok(stale(
                    env,
                    spec,
                    plan,
                    format!(
                        "what {env} would do changed since the plan: the plan said \"{}\", now \"{summary}\"",
                        here_saved.summary
                    ),
                ));
            }
        }
        let ctx = "applying the plan";
        if p.update_policy {
            ledger::set_policy(&mut tx, d, row.id, &spec.policy)
                .await
                .db(ctx)?;
            record(
                &mut tx,
                d,
                who.about(
                    Some(env),
                    "policy.updated",
                    format!(
                        "{env}: policy from {}: {}",
                        spec.file.display(),
                        crate::manifest::stored::compact(&spec.policy)
                    ),
                ),
            )
            .await?;
            steps.push("stored the policy".into());
        }
        if p.lift_hold && ledger::clear_hold(&mut tx, d, row.id, None).await.db(ctx)? {
            // Said like `deploy` says it: which release was held.
            let held = here.hold.as_ref().map_or("", |h| h.version.as_str());
            record(
                &mut tx,
                d,
                who.about(
                    Some(env),
                    "hold.lifted",
                    format!(
                        "{env}: hold on {held} lifted: the manifests now declare {}",
                        spec.release
                    ),
                ),
            )
            .await?;
            steps.push("lifted the hold".into());
        }
        let passive = match &p.action {
            Action::Deploy { .. } | Action::InSync => None,
            other => Some(passive_outcome(env, other)),
        };
        if let Some(outcome) = passive {
            tx.commit().await.db("committing")?;
            return Ok(EnvResult {
                env,
                desired: spec.release.clone(),
                live_before,
                steps,
                outcome,
            });
        }
        if p.lift_pin && ledger::clear_pin(&mut tx, d, row.id).await.db(ctx)? {
            record(
                &mut tx,
                d,
                who.about(
                    Some(env),
                    "pin.lifted",
                    format!(
                        "{env}: rollback pin lifted: the manifests now declare {}",
                        spec.release
                    ),
                ),
            )
            .await?;
            steps.push("lifted the rollback pin".into());
        }
        for c in &p.cancel {
            ledger::transition(&mut tx, d, c.id, c.state, Etat::Annule)
                .await
                .db(ctx)?;
            record(
                &mut tx,
                d,
                who.on(
                    c.id,
                    "deployment.superseded",
                    (Some(c.state), Some(Etat::Annule)),
                    format!(
                        "{env}: pending deployment of {} cancelled: the manifests declare {}",
                        c.version, spec.release
                    ),
                ),
            )
            .await?;
            steps.push(format!(
                "cancelled deployment {} ({}) as superseded",
                c.id, c.version
            ));
        }
        let deploy_id = match p.action {
            Action::Deploy {
                reuse: Some(id), ..
            } => Some(id),
            Action::Deploy { reuse: None, .. } => {
                let release = ledger::release_by_version(&mut tx, d, &spec.release)
                    .await
                    .db(ctx)?
                    .ok_or_else(|| Error::input(format!("release {} vanished", spec.release)))?;
                let id = ledger::insert_deployment(&mut tx, d, release.id, row.id, None)
                    .await
                    .db(ctx)?;
                record(
                    &mut tx,
                    d,
                    who.on(
                        id,
                        "deployment.planned",
                        (None, Some(Etat::Planifie)),
                        format!(
                            "release {} planned for {env} by reconcile ({})",
                            spec.release,
                            spec.file.display()
                        ),
                    ),
                )
                .await?;
                Some(id)
            }
            _ => None,
        };
        tx.commit().await.db("committing the plan")?;
        let Some(id) = deploy_id else {
            return Ok(EnvResult {
                env,
                desired: spec.release.clone(),
                live_before,
                steps,
                outcome: EnvOutcome::InSync,
            });
        };
        let outcome = match self.validate(id, overrides).await {
            Ok(Validated::Ran(execution)) if execution.outcome == Outcome::Succeeded => {
                EnvOutcome::Deployed { execution }
            }
            Ok(Validated::Ran(execution)) => EnvOutcome::Failed { execution },
            Ok(Validated::Refused(r)) => match r.why {
                Why::Waiting | Why::Requires => EnvOutcome::Blocked { message: r.message },
                Why::Closed { opens_at } => EnvOutcome::Closed {
                    message: r.message,
                    opens_at: opens_at.map(|t| t.to_string()),
                },
                Why::Busy | Why::GatesRunning => EnvOutcome::Busy { message: r.message },
                // Another process got there first: it runs or has run this deployment.
                Why::Moved | Why::NotRunnable => {
                    let live = ledger::live(self.store.conn(), d, row.id)
                        .await
                        .db("reading the live release")?;
                    if live.is_some_and(|l| l.version == spec.release) {
                        steps.push(format!("deployment {id} was run by another process"));
                        EnvOutcome::InSync
                    } else {
                        EnvOutcome::Busy { message: r.message }
                    }
                }
            },
            // A race inside a transaction (a row changed under it): not an error
            // of this run; the next reconcile sees where things stand.
            Err(e) if e.kind == Kind::Blocked => EnvOutcome::Busy { message: e.message },
            Err(e) => return Err(e),
        };
        Ok(EnvResult {
            env,
            desired: spec.release.clone(),
            live_before,
            steps,
            outcome,
        })
    }
}

/// A saved plan that no longer holds for `env`: nothing written there.
fn stale(env: Env, spec: &EnvSpec, plan: &SavedPlan, what: String) -> EnvResult {
    let err = plan.stale(what);
    untouched(
        env,
        spec,
        EnvOutcome::Stale {
            message: match &err.hint {
                Some(h) => format!("{}; {h}", err.message),
                None => err.message,
            },
        },
    )
}

/// The report of an environment this run did not get to change.
fn untouched(env: Env, spec: &EnvSpec, outcome: EnvOutcome) -> EnvResult {
    EnvResult {
        env,
        desired: spec.release.clone(),
        live_before: None,
        steps: Vec::new(),
        outcome,
    }
}

fn passive_outcome(env: Env, action: &Action) -> EnvOutcome {
    match action {
        Action::Pinned { pinned_to } => EnvOutcome::Pinned {
            pinned_to: pinned_to.clone(),
        },
        Action::Busy { running } => EnvOutcome::Busy {
            message: format!("deployment {} ({}) is running", running.id, running.version),
        },
        Action::Blocked { requires } => EnvOutcome::Blocked {
            message: format!("the release has not succeeded in {requires} (requires)"),
        },
        Action::Held { hold } => EnvOutcome::Held {
            version: hold.version.clone(),
            message: hold.message(env),
        },
        Action::InSync | Action::Deploy { .. } => EnvOutcome::InSync,
    }
}
