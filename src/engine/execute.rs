//! Execution as two short transactions around the run, never one held open
//! across it: *claim* (lock, recover, check, `en_cours`, lease, token), *run*
//! (executor plus heartbeats), *finish* (token-guarded `réussi` or rollback).

use super::gates::{self, GateState, Verdict};
use super::{Engine, Who, find, keys, lease, load, record};
use crate::error::{DbContext, Error, Result};
use crate::executor::{Executor, Job, Overrides, command};
use crate::exit::Exit;
use crate::model::{Etat, OnFailure};
use crate::store::ledger::{self, Deployment, EnvRow};
use crate::store::{Dialect, Store, Tx};
use crate::supervisor::{self, Holding, Lease};
use serde::Serialize;
use std::time::{Duration, Instant};

/// How a run ended, before it is written down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    Interrupted,
    /// A gate said no before anything ran.
    Rejected,
}

#[derive(Debug, Serialize)]
pub struct Execution {
    pub deployment: Deployment,
    pub outcome: Outcome,
    /// The error, for a failed or interrupted run.
    pub error: Option<String>,
    pub duration_ms: u128,
    pub executor: String,
    /// A stale deployment this command recovered on its way.
    #[serde(rename = "recovered_id")]
    pub recovered: Option<i64>,
    /// After a failed run: what the environment's rollback command did to
    /// restore the previous live release (`None`: no rollback command ran).
    pub rollback_command: Option<RollbackCommand>,
    /// The checks after a successful run (`None`: the environment has none, or
    /// the run did not succeed).
    pub verification: Option<crate::verify::Verification>,
    /// For a rollback: the deployment that was rolled back.
    pub rolled_back: Option<Deployment>,
    /// The closed deploy window this run went through (an override, or a
    /// rollback, which a closed window allows); `None` when it was open.
    pub closed_window: Option<String>,
    /// Where each gate stood when the deployment was validated (or rejected).
    pub gates: Vec<GateState>,
}

impl Execution {
    pub fn exit(&self) -> Exit {
        match self.outcome {
            Outcome::Succeeded => Exit::Done,
            Outcome::Failed | Outcome::Interrupted | Outcome::Rejected => Exit::Failed,
        }
    }
}

/// The rollback command's outcome after a failed run.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackCommand {
    /// The release it was restoring.
    pub version: String,
    pub succeeded: bool,
    /// What happened, with the command's output when kept.
    pub message: String,
}

/// What `validate` came to: a run (succeeded, failed, rejected), or an
/// expected reason not to run now. Refusals are outcomes, not errors: reconcile
/// reports them per environment; the command line prints them as errors.
#[derive(Debug)]
pub enum Validated {
    Ran(Box<Execution>),
    Refused(Refused),
}

/// Why a deployment does not run now, and what to do about it.
#[derive(Debug)]
pub struct Refused {
    pub why: Why,
    pub deployment: i64,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Approvals missing.
    Waiting,
    /// Another deployment runs in the environment.
    Busy,
    /// Another process runs this deployment's command gates (or this one lost them).
    GatesRunning,
    /// `requires:` not met.
    Requires,
    /// Another process moved the deployment on meanwhile.
    Moved,
    /// Its state does not allow a validation (the id given was wrong).
    NotRunnable,
    /// The environment's deploy window is closed (DESIGN §10): it stays
    /// pending; `opens_at` is when the window next opens, if it does.
    Closed { opens_at: Option<jiff::Timestamp> },
}

impl Refused {
    pub fn exit(&self) -> Exit {
        match self.why {
            Why::NotRunnable => Exit::Error,
            Why::Waiting
            | Why::Busy
            | Why::GatesRunning
            | Why::Requires
            | Why::Moved
            | Why::Closed { .. } => Exit::Blocked,
        }
    }

    /// For the command line, which shows a refusal as an error.
    pub fn into_error(self) -> Error {
        let mut err = match self.exit() {
            Exit::Error => Error::input(self.message),
            _ => Error::blocked(self.message),
        };
        err.hint = self.hint;
        err
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RollbackReport {
    /// A pending deployment was cancelled.
    Cancelled { deployment: Deployment },
    /// The previous live release was redeployed.
    Restored(Box<Execution>),
}

/// How a run ended, as the finish records it.
#[derive(Clone, Copy)]
struct Ended<'a> {
    outcome: &'a Outcome,
    error: &'a Option<String>,
    /// The output worth keeping.
    output: &'a str,
    /// The rollback command's outcome, when one ran.
    restored: &'a Option<RollbackCommand>,
    /// The checks after a successful run, when the environment has some.
    verification: &'a Option<crate::verify::Verification>,
    elapsed: &'a str,
}

/// What the claim hands to the run and the finish.
struct Claimed {
    dep: Deployment,
    token: i64,
    recovered: Option<i64>,
    /// For a restore: the live deployment it rolls back.
    restores: Option<Deployment>,
    /// What was live when the run started: what a failed run restores.
    previous: Option<Deployment>,
}

impl Claimed {
    fn job(&self) -> Job {
        Job {
            version: self.dep.version.clone(),
            tag: self.dep.tag.clone(),
            env: self.dep.env.as_str().to_string(),
            deploy_id: self.dep.id,
            previous_version: self.previous.as_ref().map(|p| p.version.clone()),
            fencing_token: Some(self.token),
            // The claim counted this attempt.
            attempt: self.dep.attempts,
        }
    }
}

impl Engine {
    /// `validate --deploy-id N`: gates, then claim / run / finish.
    ///
    /// Approvals are read in the first transaction: missing ones leave the
    /// deployment planifié (exit 4), a rejection ends it (échec). Command gates
    /// then run outside any transaction, and a second one records their outcomes,
    /// re-reads the policy and the approvals (a reconcile or a rejection may have
    /// come meanwhile), and moves the deployment to validé and on to the claim.
    /// The environment's policy is always read under its lock.
    pub async fn validate(&mut self, id: i64, overrides: &Overrides) -> Result<Validated> {
        self.validate_in_window(id, overrides, None).await
    }

    /// `validate`, deploying even in a closed window when `window_override`
    /// gives the reason (`validate --override-window --reason TEXT`), audited.
    pub async fn validate_in_window(
        &mut self,
        id: i64,
        overrides: &Overrides,
        window_override: Option<&str>,
    ) -> Result<Validated> {
        supervisor::check()?;
        let started = Instant::now();
        let d = self.store.d;
        let dep = self.find(id).await?;
        let _spinner =
            crate::progress::start(format!("deployment {id}: {} → {}", dep.version, dep.env));
        crate::progress::step("gates");
        let env_id = dep.env_id;

        let mut tx = self.store.write_env(env_id).await?;
        let mut env = keys::env_row(&self.keys, &mut tx, d, dep.env).await?;
        if let Err(e) = env.known_policy().and_then(|p| keys::judgeable(p, env.env)) {
            return fail(tx, e).await;
        }
        let recovered = lease::recover_stale(&mut tx, d, &self.who, env_id).await?;
        let mut dep = load(&mut tx, d, id).await?;
        if let Some((why, refusal)) = refusal(&mut tx, d, &env, &dep, recovered).await? {
            return refuse(tx, why, id, refusal).await;
        }
        let mut exec = match executor_for(&env, overrides) {
            Ok(exec) => exec,
            Err(e) => return fail(tx, e).await,
        };
        let mut states = gates::current(&mut tx, d, env.policy.as_ref(), id).await?;
        match gates::verdict(&states) {
            Verdict::Rejected(r) => {
                let why = r.summary();
                let ctx = (started, recovered, &exec);
                return reject(tx, d, &self.who, &dep, states, why, ctx).await;
            }
            Verdict::Waiting(w) => return wait(tx, d, &self.who, &dep, &w).await,
            Verdict::Ready => {}
        }
        let commands = gates::to_run(env.policy.as_ref(), dep.state, &states);
        if !commands.is_empty() {
            // One process at a time runs a deployment's command gates.
            let ttl_ms = self.who.lease_ttl.as_millis() as i64;
            let held_at = Instant::now();
            if !ledger::hold_for_gates(&mut tx, d, id, &self.who.holder, ttl_ms)
                .await
                .db("holding the deployment for its gates")?
            {
                return refuse(tx, Why::GatesRunning, id, gates::held_error(&dep)).await;
            }
            let live = ledger::live(&mut tx, d, env_id)
                .await
                .db("reading the live release")?;
            // From this commit on, a signal is the gates' supervisor's to handle
            // (it releases the hold); before it, nothing is held.
            supervisor::check()?;
            let guard = supervisor::guard();
            let limit = supervisor::answer_limit().min(self.who.lease_ttl / 2);
            match tokio::time::timeout(limit, tx.commit()).await {
                Ok(committed) => committed.db("holding the deployment for its gates")?,
                Err(_) => {
                    return Err(Error::unreachable(format!(
                        "holding deployment {id} for its gates: the database did not answer \
                         within {}; no gate ran",
                        crate::duration::format(limit)
                    )));
                }
            }
            let job = Job {
                version: dep.version.clone(),
                tag: dep.tag.clone(),
                env: dep.env.as_str().to_string(),
                deploy_id: id,
                previous_version: live.map(|l| l.version),
                // Command gates run before the claim: there is no token yet.
                fencing_token: None,
                attempt: dep.attempts + 1,
            };
            let outcomes =
                gates::run_commands(&mut self.store, &self.who, &commands, &job, held_at, guard)
                    .await?;
            crate::progress::step("gates: recording");
            // What ran is recorded, and the hold ended, in a transaction of its
            // own: nothing that fails after it can lose the one or keep the other.
            let held = gates::record_run(&mut self.store, &self.who, &dep, &outcomes).await?;
            tx = self.store.write_env(env_id).await?;
            env = keys::env_row(&self.keys, &mut tx, d, dep.env).await?;
            if let Err(e) = env.known_policy().and_then(|p| keys::judgeable(p, env.env)) {
                return fail(tx, e).await;
            }
            dep = load(&mut tx, d, id).await?;
            if !matches!(dep.state, Etat::Planifie | Etat::Valide) {
                return refuse(
                    tx,
                    Why::Moved,
                    id,
                    Error::blocked(format!(
                        "deployment {id} became {} while its gates ran (another process \
                         handled it); the gates' results are recorded",
                        dep.state
                    ))
                    .hint(format!("see `shipctl history --env {}`", dep.env)),
                )
                .await;
            }
            if !held {
                return refuse(
                    tx,
                    Why::GatesRunning,
                    id,
                    Error::blocked(format!(
                        "this process lost its hold on deployment {id} while its gates ran \
                         (the database did not answer its renewals in time); their results \
                         are recorded, and it leaves the deployment to whoever holds it now"
                    ))
                    .hint(format!(
                        "run `shipctl validate --deploy-id {id}` again once `shipctl status \
                         --env {}` shows no gates running",
                        dep.env
                    )),
                )
                .await;
            }
            states = gates::current(&mut tx, d, env.policy.as_ref(), id).await?;
            let failed = outcomes
                .iter()
                .find(|o| !o.passed)
                .map(|o| format!("gate {}: {}", o.gate, gates::headline(&o.message)));
            let rejected = match (failed, gates::verdict(&states)) {
                (Some(why), _) => Some(why),
                (None, Verdict::Rejected(r)) => Some(r.summary()),
                (None, Verdict::Waiting(w)) => {
                    // The approvals changed while the commands ran (a withdrawn
                    // approval, a new gate): the outcomes stay, the deployment waits.
                    return wait(tx, d, &self.who, &dep, &w).await;
                }
                (None, Verdict::Ready) => None,
            };
            if let Some(why) = rejected {
                let ctx = (started, recovered, &exec);
                return reject(tx, d, &self.who, &dep, states, why, ctx).await;
            }
            let added = gates::to_run(env.policy.as_ref(), Etat::Valide, &states);
            if !added.is_empty() {
                let names: Vec<&str> = added.iter().map(|g| g.name.as_str()).collect();
                return refuse(
                    tx,
                    Why::Moved,
                    id,
                    Error::blocked(format!(
                        "the gates of {} changed while they ran: {} has not run yet for \
                         deployment {id}",
                        dep.env,
                        names.join(", ")
                    ))
                    .hint(format!("run `shipctl validate --deploy-id {id}` again")),
                )
                .await;
            }
            exec = match executor_for(&env, overrides) {
                Ok(exec) => exec,
                Err(e) => return fail(tx, e).await,
            };
            if let Some((why, refusal)) = refusal(&mut tx, d, &env, &dep, recovered).await? {
                // The gates passed: keep that (validé), and let the next validate claim it.
                if dep.state == Etat::Planifie {
                    validated_in(&mut tx, d, &self.who, &dep, &states).await?;
                }
                return refuse(tx, why, id, refusal).await;
            }
        }
        if dep.state == Etat::Planifie {
            validated_in(&mut tx, d, &self.who, &dep, &states).await?;
        }
        // The window is judged at the claim (approvals and gates may come
        // before it opens); a person may override it, audited.
        let mut closed_window = None;
        if let Some(closed) = window_closed(&mut tx, d, &env).await? {
            match window_override {
                Some(reason) => {
                    closed_window = Some(closed.message.clone());
                    record(
                        &mut tx,
                        d,
                        self.who.on(
                            id,
                            "window.overridden",
                            (None, None),
                            format!(
                                "{} to {} deployed in a closed window: {}; reason: {reason}",
                                dep.version, dep.env, closed.message
                            ),
                        ),
                    )
                    .await?;
                }
                None => {
                    let err = Error::blocked(closed.message).hint(format!(
                        "it stays {}; approvals and gates may be given meanwhile. \
                         `shipctl validate --deploy-id {id} --override-window --reason TEXT` \
                         deploys anyway (audited)",
                        Etat::Valide
                    ));
                    let why = Why::Closed {
                        opens_at: closed.opens_at,
                    };
                    return refuse(tx, why, id, err).await;
                }
            }
        }
        crate::progress::step("claim");
        let previous = ledger::live(&mut tx, d, env_id)
            .await
            .db("reading the live release")?;
        let dep = load(&mut tx, d, id).await?;
        let claimed_at = Instant::now();
        let token = claim_in(&mut tx, d, &self.who, &dep).await?;
        let dep = load(&mut tx, d, id).await?;
        let lease = commit_claim(tx, &self.who, &dep, token, claimed_at).await?;

        let claimed = Claimed {
            dep,
            token,
            recovered,
            restores: None,
            previous,
        };
        let mut execution = self.run_and_finish(&env, claimed, lease, &exec).await?;
        execution.gates = states;
        execution.closed_window = closed_window;
        execution.duration_ms = started.elapsed().as_millis();
        Ok(Validated::Ran(Box::new(execution)))
    }

    /// `rollback --deploy-id N`: cancel a pending deployment, or redeploy the
    /// release that was live before N and pin the environment to it.
    pub async fn rollback(&mut self, id: i64, overrides: &Overrides) -> Result<RollbackReport> {
        supervisor::check()?;
        let d = self.store.d;
        let dep = self.find(id).await?;
        let _spinner =
            crate::progress::start(format!("rollback of deployment {id} in {}", dep.env));
        crate::progress::step("claim");
        let env = keys::env_row(&self.keys, self.store.conn(), d, dep.env).await?;
        // A policy this version cannot read stops everything; one that differs
        // from the manifests only a redeploy (a cancellation runs nothing).
        if !env.policy_unknown.is_empty() {
            return Err(ledger::newer_policy_refusal(env.env, &env.policy_unknown));
        }
        let exec = env
            .known_policy()
            .and_then(|_| executor_for(&env, overrides));

        let mut tx = self.store.write_env(env.id).await?;
        let recovered = lease::recover_stale(&mut tx, d, &self.who, env.id).await?;
        let dep = load(&mut tx, d, id).await?;
        match dep.state {
            Etat::Planifie | Etat::Valide => {
                ledger::transition(&mut tx, d, id, dep.state, Etat::Annule)
                    .await
                    .db("cancelling the deployment")?;
                record(
                    &mut tx,
                    d,
                    self.who.on(
                        id,
                        "deployment.cancelled",
                        (Some(dep.state), Some(Etat::Annule)),
                        format!(
                            "pending deployment of {} to {} cancelled by rollback",
                            dep.version, dep.env
                        ),
                    ),
                )
                .await?;
                let dep = load(&mut tx, d, id).await?;
                tx.commit().await.db("committing the cancellation")?;
                Ok(RollbackReport::Cancelled { deployment: dep })
            }
            Etat::EnCours => fail(tx, already_running(&dep)).await,
            Etat::Echec | Etat::Annule => {
                fail(
                    tx,
                    Error::input(format!(
                        "deployment {id} is {}: there is nothing to roll back",
                        dep.state
                    ))
                    .hint(match (dep.state, recovered == Some(id)) {
                        (Etat::Echec, true) => {
                            "its holder had died and its lease had expired: this command has just \
                         recovered it as échec; the environment's live release is unchanged"
                        }
                        (Etat::Echec, _) => {
                            "a failed deployment never became live; nothing changed"
                        }
                        _ => "it was already cancelled or rolled back",
                    }),
                )
                .await
            }
            Etat::Reussi => {
                let exec = match exec {
                    Ok(exec) => exec,
                    Err(e) => return fail(tx, e).await,
                };
                let live = ledger::live(&mut tx, d, env.id)
                    .await
                    .db("reading the live release")?;
                if live.as_ref().map(|l| l.id) != Some(id) {
                    let live_text = live
                        .map(|l| format!("deployment {} (release {})", l.id, l.version))
                        .unwrap_or_else(|| "none".into());
                    return fail(
                        tx,
                        Error::input(format!(
                            "deployment {id} (release {}) is not live in {}: the live one is {live_text}",
                            dep.version, dep.env
                        ))
                        .hint("only the live deployment can be rolled back; see `shipctl status --env ENV`"),
                    )
                    .await;
                }
                let Some(previous) = ledger::previous_live(&mut tx, d, &dep)
                    .await
                    .db("looking for the previous release")?
                else {
                    return fail(
                        tx,
                        Error::input(format!(
                            "deployment {id} (release {}) is the first release live in {}: \
                             there is no previous release to restore",
                            dep.version, dep.env
                        ))
                        .hint("deploy a fixed release instead: shipctl release --create ... then deploy"),
                    )
                    .await;
                };
                if let Some(busy) = busy_check(&mut tx, d, &dep).await? {
                    return fail(tx, busy).await;
                }
                let rid =
                    ledger::insert_deployment(&mut tx, d, previous.release_id, env.id, Some(id))
                        .await
                        .db("planning the restore")?;
                record(
                    &mut tx,
                    d,
                    self.who.on(
                        rid,
                        "deployment.planned",
                        (None, Some(Etat::Planifie)),
                        format!(
                            "rollback of deployment {id}: restoring release {} in {}",
                            previous.version, dep.env
                        ),
                    ),
                )
                .await?;
                let restore = load(&mut tx, d, rid).await?;
                // A closed deploy window does not stop a way out of an incident;
                // that it was closed is on record.
                let closed_window = window_closed(&mut tx, d, &env).await?;
                if let Some(closed) = &closed_window {
                    record(
                        &mut tx,
                        d,
                        self.who.on(
                            rid,
                            "window.overridden",
                            (None, None),
                            format!(
                                "rollback of deployment {id} in a closed window: {}; a \
                                 rollback is allowed while closed",
                                closed.message
                            ),
                        ),
                    )
                    .await?;
                }
                // No gates: the release was live here before, and a rollback is
                // the way out of an incident, not a new change to review.
                record(
                    &mut tx,
                    d,
                    self.who.on(
                        rid,
                        "deployment.validated",
                        (Some(Etat::Planifie), Some(Etat::Valide)),
                        format!(
                            "restore of {} in {}: gates do not apply to a rollback",
                            previous.version, dep.env
                        ),
                    ),
                )
                .await?;
                ledger::transition(&mut tx, d, rid, Etat::Planifie, Etat::Valide)
                    .await
                    .db("validating the restore")?;
                let restore = load(&mut tx, d, restore.id).await?;
                let claimed_at = Instant::now();
                let token = claim_in(&mut tx, d, &self.who, &restore).await?;
                let restore = load(&mut tx, d, rid).await?;
                let lease = commit_claim(tx, &self.who, &restore, token, claimed_at).await?;
                let claimed = Claimed {
                    dep: restore,
                    token,
                    recovered,
                    previous: Some(dep.clone()),
                    restores: Some(dep),
                };
                let mut execution = self.run_and_finish(&env, claimed, lease, &exec).await?;
                execution.closed_window = closed_window.map(|c| c.message);
                Ok(RollbackReport::Restored(Box::new(execution)))
            }
        }
    }

    /// The run and the finish of a claimed deployment, all under one guard: a
    /// signal from here on is handled by stopping the child and recording the
    /// run as failed, never by dropping the command.
    async fn run_and_finish(
        &mut self,
        env: &EnvRow,
        claimed: Claimed,
        (mut lease, _guard): (Lease, supervisor::Guard),
        exec: &Executor,
    ) -> Result<Execution> {
        let started = Instant::now();
        crate::progress::step("run");
        let job = claimed.job();
        let ran = lease
            .supervise(&mut self.store, async |stop| exec.run(&job, &stop).await)
            .await;
        if let Some(why) = ran.lost {
            return Err(lease_lost(claimed.dep.id, &why));
        }
        let (mut outcome, mut error, output) = match (ran.signal, ran.out) {
            (Some(s), out) => (
                Outcome::Interrupted,
                // Its own words on the way out (a trap releasing a lock) are kept.
                Some(format!(
                    "interrupted by {}; the run was stopped{}",
                    s.name(),
                    match out {
                        Ok(output) =>
                            format!(" after it had succeeded{}", command::output_note(&output)),
                        Err(e) => format!(": {e}"),
                    }
                )),
                String::new(),
            ),
            (None, Ok(output)) => (Outcome::Succeeded, None, output),
            (None, Err(e)) => (Outcome::Failed, Some(e), String::new()),
        };
        // A run that succeeded proves nothing yet: the environment's checks
        // verify the release, under the same lease (renewed, fenced, stopped
        // by a signal like the run).
        let check = env.policy.as_ref().and_then(|p| p.verify.as_ref());
        let mut verification = None;
        if let (Outcome::Succeeded, Some(spec)) = (&outcome, check)
            && supervisor::received().is_none()
        {
            crate::progress::step("verify");
            let checked = lease
                .supervise(&mut self.store, async |stop| {
                    crate::verify::run(spec, &job, &stop).await
                })
                .await;
            if let Some(why) = checked.lost {
                return Err(lease_lost(claimed.dep.id, &why));
            }
            let v = checked.out;
            match checked.signal {
                Some(s) => {
                    outcome = Outcome::Interrupted;
                    error = Some(format!(
                        "interrupted by {} during verification; {}",
                        s.name(),
                        v.failure()
                    ));
                }
                None if !v.passed => {
                    outcome = Outcome::Failed;
                    error = Some(v.failure());
                }
                None => {}
            }
            verification = Some(v);
        }
        // A failed run of a real command: its rollback command restores what was
        // live, under the same lease, once the lease is confirmed by a fenced
        // write. Not after a signal: the process was asked to stop, promptly.
        match (&outcome, exec.rollback(), &claimed.previous) {
            (Outcome::Failed, Some(_), Some(_)) if supervisor::received().is_none() => {
                crate::progress::step("rollback command");
                // Asked to stop meanwhile: no rollback command starts (below),
                // and the failure is recorded.
                if let Err(why) = lease.confirm(&mut self.store).await
                    && supervisor::received().is_none()
                {
                    return Err(lease_lost(claimed.dep.id, &why));
                }
            }
            _ => {}
        }
        let restored = match (&outcome, exec.rollback(), &claimed.previous) {
            (Outcome::Failed, Some(spec), Some(prev)) if supervisor::received().is_none() => {
                let job = Job {
                    version: prev.version.clone(),
                    tag: prev.tag.clone(),
                    env: prev.env.as_str().to_string(),
                    deploy_id: claimed.dep.id,
                    previous_version: Some(claimed.dep.version.clone()),
                    fencing_token: Some(claimed.token),
                    attempt: claimed.dep.attempts,
                };
                let back = lease
                    .supervise(&mut self.store, async |stop| {
                        command::run(&spec, &job, &stop).await
                    })
                    .await;
                if let Some(why) = back.lost {
                    return Err(lease_lost(claimed.dep.id, &why));
                }
                let (succeeded, message) = match back.out {
                    Ok(out) => (
                        true,
                        format!(
                            "rollback command restored {}{}",
                            prev.version,
                            command::output_note(&out)
                        ),
                    ),
                    Err(e) => (
                        false,
                        format!("rollback command for {} failed: {e}", prev.version),
                    ),
                };
                Some(RollbackCommand {
                    version: prev.version.clone(),
                    succeeded,
                    message,
                })
            }
            _ => None,
        };
        crate::progress::step("finish");
        let elapsed =
            crate::duration::format(Duration::from_millis(started.elapsed().as_millis() as u64));
        let ended = Ended {
            outcome: &outcome,
            error: &error,
            output: &output,
            restored: &restored,
            verification: &verification,
            elapsed: &elapsed,
        };
        let written = self.finish(env, &claimed, &lease, &ended).await?;
        let Some((final_dep, rolled_back)) = written else {
            return Err(Error::failed(format!(
                "deployment {} was taken over while it ran (its lease expired and another \
                 process recovered it); this run's result was not written",
                claimed.dep.id
            )));
        };
        Ok(Execution {
            deployment: final_dep,
            outcome,
            error,
            duration_ms: started.elapsed().as_millis(),
            executor: exec.describe(),
            recovered: claimed.recovered,
            rollback_command: restored,
            verification,
            rolled_back,
            closed_window: None,
            gates: Vec::new(),
        })
    }

    /// Records how the run ended, in one fenced transaction, retried on a new
    /// connection (with back-off) while the lease may still be ours: a run
    /// whose database restarted meanwhile is recorded as it ended. After a
    /// signal it gets `AFTER_SIGNAL` more; past that, or past the lease, it
    /// writes nothing and the lease's expiry hands the deployment to recovery.
    /// `None`: the lease was taken over, nothing written.
    async fn finish(
        &mut self,
        env: &EnvRow,
        claimed: &Claimed,
        lease: &Lease,
        ended: &Ended<'_>,
    ) -> Result<Option<(Deployment, Option<Deployment>)>> {
        let outcome = ended.outcome;
        let mut failures = 0;
        loop {
            let attempt = self.store.bounded("recording the result", async |store| {
                finish_tx(store, &self.who, env, claimed, ended).await
            });
            let result = tokio::select! {
                r = attempt => r,
                _ = supervisor::signal_grace() => Err(Error::unreachable(format!(
                    "stopping on a signal: the database did not record the result within {}",
                    crate::duration::format(supervisor::AFTER_SIGNAL)
                ))),
            };
            match result {
                Ok(written) => return Ok(written),
                // A lost connection or a lock that did not come: try again on a
                // new connection while the lease may still be ours, unless asked
                // to stop.
                Err(e)
                    if (e.is_connection() || e.kind == crate::error::Kind::Blocked)
                        && lease.may_be_ours()
                        && supervisor::received().is_none() =>
                {
                    failures += 1;
                    let signals = supervisor::token();
                    let pause = supervisor::backoff(failures, Duration::from_secs(2));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = signals.cancelled() => {}
                    }
                }
                Err(e) => {
                    return Err(Error::failed(format!(
                        "deployment {} ran ({}), but its result could not be recorded: {}",
                        claimed.dep.id,
                        match outcome {
                            Outcome::Succeeded => "succeeded",
                            Outcome::Interrupted => "interrupted",
                            _ => "failed",
                        },
                        e.message
                    ))
                    .hint(format!(
                        "it stays en_cours until its lease expires; the next command in {} \
                         then recovers it as échec. Check the database at {}",
                        claimed.dep.env,
                        self.store.url().redacted()
                    )));
                }
            }
        }
    }
}

/// The finish transaction. On a retry the first attempt may have committed
/// without its answer arriving: a row that already holds this run's token and
/// the state it was going to, is taken as written.
async fn finish_tx(
    store: &mut Store,
    who: &Who,
    env: &EnvRow,
    claimed: &Claimed,
    ended: &Ended<'_>,
) -> Result<Option<(Deployment, Option<Deployment>)>> {
    let Ended {
        outcome,
        error,
        output,
        restored,
        verification,
        elapsed,
    } = *ended;
    let d = store.d;
    let mut tx = store.write_env(env.id).await?;
    let dep = &claimed.dep;
    let now = load(&mut tx, d, dep.id).await?;
    let target = match outcome {
        Outcome::Succeeded => Some(Etat::Reussi),
        _ => None,
    };
    if now.state != Etat::EnCours && now.fencing_token == Some(claimed.token) {
        // Written by an attempt whose answer was lost, or taken over.
        let ours = match target {
            Some(t) => now.state == t,
            None => matches!(now.state, Etat::Planifie | Etat::Annule),
        };
        tx.commit().await.db("committing")?;
        if !ours {
            return Ok(None);
        }
        let rolled_back = match &claimed.restores {
            Some(n) => Some(find(store.conn(), d, n.id).await?),
            None => None,
        };
        return Ok(Some((now, rolled_back)));
    }
    for t in verification.iter().flat_map(|v| &v.tries) {
        record(
            &mut tx,
            d,
            who.on(
                dep.id,
                if t.passed {
                    "verification.passed"
                } else {
                    "verification.failed"
                },
                (None, None),
                format!(
                    "{} in {}: try {}/{} ({}): {}",
                    dep.version,
                    dep.env,
                    t.number,
                    t.of,
                    crate::duration::format(Duration::from_millis(t.duration_ms)),
                    t.message
                ),
            ),
        )
        .await?;
    }
    if let Some(r) = restored {
        record(
            &mut tx,
            d,
            who.on(
                dep.id,
                if r.succeeded {
                    "rollback_command.succeeded"
                } else {
                    "rollback_command.failed"
                },
                (None, None),
                r.message.clone(),
            ),
        )
        .await?;
    }
    let finished = match outcome {
        Outcome::Succeeded => {
            let ran = format!("{elapsed}{}", command::output_note(output));
            finish_success(&mut tx, d, who, env, claimed, &ran).await?
        }
        Outcome::Failed | Outcome::Interrupted | Outcome::Rejected => {
            let why = error.clone().unwrap_or_default();
            let kind = match outcome {
                Outcome::Interrupted => Failure::Interrupted,
                _ if verification.as_ref().is_some_and(|v| !v.passed) => Failure::Verification,
                _ => Failure::Run,
            };
            finish_failure(&mut tx, d, who, env, claimed, &why, kind).await?
        }
    };
    if !finished {
        // Rolled back: a stale holder writes nothing, not even its audit rows.
        tx.rollback().await.db("rolling back")?;
        return Ok(None);
    }
    let final_dep = load(&mut tx, d, dep.id).await?;
    let rolled_back = match &claimed.restores {
        Some(n) => Some(load(&mut tx, d, n.id).await?),
        None => None,
    };
    tx.commit().await.db("committing the result")?;
    Ok(Some((final_dep, rolled_back)))
}

/// Commits a claim and takes its lease, unless a signal came first: then the
/// claim is rolled back and nothing is written (never a claim after a signal).
/// The guard is taken before the commit is sent: a signal that arrives while
/// it is in flight is handled as one after the claim (the run does not start
/// and the deployment is recorded as interrupted), never by dropping a commit
/// that may have gone through. The commit is bounded like any phase.
async fn commit_claim(
    tx: Tx<'_>,
    who: &Who,
    dep: &Deployment,
    token: i64,
    claimed_at: Instant,
) -> Result<(Lease, supervisor::Guard)> {
    if let Some(s) = supervisor::received() {
        tx.rollback().await.db("rolling back the claim")?;
        return Err(supervisor::interrupted(s));
    }
    let guard = supervisor::guard();
    // Within half the lease: a claim that took longer starts nothing (the
    // supervisor finds its lease spent) rather than a run on borrowed time.
    let limit = supervisor::answer_limit().min(who.lease_ttl / 2);
    match tokio::time::timeout(limit, tx.commit()).await {
        Ok(committed) => committed.db("committing the claim")?,
        Err(_) => {
            return Err(Error::unreachable(format!(
                "the claim of deployment {} got no answer from the database within {}",
                dep.id,
                crate::duration::format(limit)
            ))
            .hint(format!(
                "if it went through, the deployment stays en_cours until its lease expires \
                 ({}), and the next command in {} then recovers it as échec; nothing was run",
                crate::duration::format(who.lease_ttl),
                dep.env
            )));
        }
    }
    // The lease counts from before the claim's statement: the database set its
    // expiry after that moment.
    let lease = Lease::taken(
        Holding::Deployment { id: dep.id, token },
        who.lease_ttl,
        claimed_at,
    );
    Ok((lease, guard))
}

fn lease_lost(id: i64, why: &str) -> Error {
    Error::failed(format!(
        "deployment {id} lost its lease: {why}; this process stopped its command and wrote \
         nothing more"
    ))
    .hint(
        "the next command in the environment recovers it as échec once the lease has expired; \
         a longer --lease-ttl helps when the database is slow to answer heartbeats",
    )
}

/// A gate said no: `planifié|validé → échec`, audited, and reported as a
/// failed deployment (exit 3).
async fn reject(
    mut tx: Tx<'_>,
    d: Dialect,
    who: &Who,
    dep: &Deployment,
    states: Vec<GateState>,
    why: String,
    (started, recovered, exec): (Instant, Option<i64>, &Executor),
) -> Result<Validated> {
    if !ledger::transition(&mut tx, d, dep.id, dep.state, Etat::Echec)
        .await
        .db("recording the rejection")?
    {
        return refuse(
            tx,
            Why::Moved,
            dep.id,
            Error::blocked(format!(
                "deployment {} changed state while it was being rejected",
                dep.id
            ))
            .hint("run the command again"),
        )
        .await;
    }
    record(
        &mut tx,
        d,
        who.on(
            dep.id,
            "deployment.rejected",
            (Some(dep.state), Some(Etat::Echec)),
            format!(
                "{} to {} rejected at validation: {why}; nothing was deployed",
                dep.version, dep.env
            ),
        ),
    )
    .await?;
    hold(&mut tx, d, who, dep, "rejected at its gates").await?;
    let dep = load(&mut tx, d, dep.id).await?;
    tx.commit().await.db("committing the rejection")?;
    Ok(Validated::Ran(Box::new(Execution {
        deployment: dep,
        outcome: Outcome::Rejected,
        error: Some(why),
        duration_ms: started.elapsed().as_millis(),
        executor: exec.describe(),
        recovered,
        rollback_command: None,
        verification: None,
        rolled_back: None,
        closed_window: None,
        gates: states,
    })))
}

/// Holds the deployment's release in its environment (DESIGN §9), audited:
/// reconcile does not plan it again until the manifests declare another
/// release or a person plans it with `shipctl deploy`.
async fn hold(
    tx: &mut Tx<'_>,
    d: Dialect,
    who: &Who,
    dep: &Deployment,
    reason: &str,
) -> Result<()> {
    ledger::set_hold(tx, d, dep.env_id, dep.release_id, dep.id, reason)
        .await
        .db("holding the release")?;
    record(
        tx,
        d,
        who.on(
            dep.id,
            "hold.set",
            (None, None),
            format!(
                "{} held in {}: {reason}; reconcile will not plan it again until the manifests \
                 declare another release or `shipctl deploy --release {} --env {}` plans it",
                dep.version, dep.env, dep.release_id, dep.env
            ),
        ),
    )
    .await
}

/// `planifié → validé` once the gates have passed, audited with what passed.
async fn validated_in(
    tx: &mut Tx<'_>,
    d: Dialect,
    who: &Who,
    dep: &Deployment,
    states: &[GateState],
) -> Result<()> {
    let passed = if states.is_empty() {
        format!("no gates configured for {}", dep.env)
    } else {
        let list: Vec<String> = states.iter().map(GateState::summary).collect();
        format!("gates passed: {}", list.join("; "))
    };
    if !ledger::transition(tx, d, dep.id, Etat::Planifie, Etat::Valide)
        .await
        .db("validating the deployment")?
    {
        return Err(Error::blocked(format!(
            "deployment {} changed state while it was being validated",
            dep.id
        ))
        .hint("run the command again"));
    }
    record(
        tx,
        d,
        who.on(
            dep.id,
            "deployment.validated",
            (Some(Etat::Planifie), Some(Etat::Valide)),
            format!("{} to {}: {passed}", dep.version, dep.env),
        ),
    )
    .await
}

/// `validé → en_cours` inside the caller's locked transaction.
async fn claim_in(tx: &mut Tx<'_>, d: Dialect, who: &Who, dep: &Deployment) -> Result<i64> {
    let ctx = "claiming the deployment";
    let token = ledger::next_token(tx, d, dep.env_id).await.db(ctx)?;
    let ttl_ms = who.lease_ttl.as_millis() as i64;
    match ledger::claim(tx, d, dep.id, token, &who.holder, ttl_ms).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::blocked(format!(
                "deployment {} changed state while it was being claimed",
                dep.id
            ))
            .hint("run the command again"));
        }
        Err(e) if super::is_unique_violation(&e) => {
            return Err(Error::blocked(format!(
                "environment {} is busy: another deployment started at the same moment",
                dep.env
            ))
            .hint("wait for it to finish, then run the command again"));
        }
        Err(e) => return Err(Error::database(ctx, e)),
    }
    record(
        tx,
        d,
        who.on(
            dep.id,
            "deployment.started",
            (Some(Etat::Valide), Some(Etat::EnCours)),
            format!(
                "{} to {}: attempt {}, held by {} (lease {}, fencing token {token})",
                dep.version,
                dep.env,
                dep.attempts + 1,
                who.holder,
                crate::duration::format(who.lease_ttl)
            ),
        ),
    )
    .await?;
    Ok(token)
}

async fn finish_success(
    tx: &mut Tx<'_>,
    d: Dialect,
    who: &Who,
    env: &EnvRow,
    claimed: &Claimed,
    elapsed: &str,
) -> Result<bool> {
    let ctx = "recording the success";
    let dep = &claimed.dep;
    if !ledger::finish(tx, d, dep.id, claimed.token, Etat::Reussi)
        .await
        .db(ctx)?
    {
        return Ok(false);
    }
    record(
        tx,
        d,
        who.on(
            dep.id,
            "deployment.succeeded",
            (Some(Etat::EnCours), Some(Etat::Reussi)),
            format!(
                "release {} is live in {}, ran {elapsed}",
                dep.version, dep.env
            ),
        ),
    )
    .await?;
    if let Some(rolled) = &claimed.restores {
        ledger::transition(tx, d, rolled.id, Etat::Reussi, Etat::Annule)
            .await
            .db(ctx)?;
        record(
            tx,
            d,
            who.on(
                rolled.id,
                "deployment.rolled_back",
                (Some(Etat::Reussi), Some(Etat::Annule)),
                format!(
                    "release {} rolled back in {}: deployment {} restored release {}",
                    rolled.version, dep.env, dep.id, dep.version
                ),
            ),
        )
        .await?;
        ledger::set_pin(tx, d, env.id, dep.release_id, rolled.release_id)
            .await
            .db(ctx)?;
        record(
            tx,
            d,
            who.on(
                dep.id,
                "pin.set",
                (None, None),
                format!(
                    "{} pinned to release {}: the reconciler will not redeploy {} while the \
                     manifests declare it; `shipctl unpin --env {}` lifts the pin",
                    dep.env, dep.version, rolled.version, dep.env
                ),
            ),
        )
        .await?;
    } else if let Some(pin) = &env.pin
        && ledger::clear_pin(tx, d, env.id).await.db(ctx)?
    {
        record(
            tx,
            d,
            who.on(
                dep.id,
                "pin.lifted",
                (None, None),
                format!(
                    "{}: pin on release {} lifted: release {} was deployed explicitly",
                    dep.env, pin.version, dep.version
                ),
            ),
        )
        .await?;
    }
    Ok(true)
}

/// What made a run fail, for what becomes of its deployment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The executor failed.
    Run,
    /// The run succeeded, its verification did not.
    Verification,
    /// A signal stopped it: not the release's fault, so it is never held.
    Interrupted,
}

async fn finish_failure(
    tx: &mut Tx<'_>,
    d: Dialect,
    who: &Who,
    env: &EnvRow,
    claimed: &Claimed,
    why: &str,
    kind: Failure,
) -> Result<bool> {
    let ctx = "recording the failure";
    let dep = &claimed.dep;
    let attempts = dep.attempts;
    let counts = kind != Failure::Interrupted;
    // (state, what next, the reason to hold the release)
    let (to, next, held) = if claimed.restores.is_some() {
        (
            Etat::Annule,
            "the restore is abandoned and the live release is unchanged".to_string(),
            None,
        )
    } else if kind == Failure::Verification {
        (
            Etat::Echec,
            format!("the release is held in {}", env.env),
            Some("failed verification".to_string()),
        )
    } else if env.on_failure == OnFailure::Cancel {
        (
            Etat::Annule,
            format!("{} cancels on failure", env.env),
            counts.then(|| format!("failed, and {} cancels on failure", env.env)),
        )
    } else if attempts >= env.max_attempts {
        (
            Etat::Annule,
            format!("all {} attempts used, cancelled", env.max_attempts),
            counts.then(|| match env.max_attempts {
                1 => "its only attempt failed".to_string(),
                n => format!("all {n} attempts failed"),
            }),
        )
    } else {
        (
            Etat::Planifie,
            format!(
                "rolled back to planifié, {} attempt(s) left",
                env.max_attempts - attempts
            ),
            None,
        )
    };
    if !ledger::finish(tx, d, dep.id, claimed.token, to)
        .await
        .db(ctx)?
    {
        return Ok(false);
    }
    record(
        tx,
        d,
        who.on(
            dep.id,
            "deployment.failed",
            (Some(Etat::EnCours), Some(to)),
            {
                // The command's output, when kept, stays last: it is shown under the row.
                let (headline, output) = match why.split_once("; output:\n") {
                    Some((h, o)) => (h, format!("; output:\n{o}")),
                    None => (why, String::new()),
                };
                if kind == Failure::Verification {
                    format!(
                        "{} to {} failed: {headline}; {next}{output}",
                        dep.version, dep.env
                    )
                } else {
                    format!(
                        "attempt {attempts}/{} of {} to {} failed: {headline}; {next}{output}",
                        env.max_attempts, dep.version, dep.env
                    )
                }
            },
        ),
    )
    .await?;
    if let Some(reason) = held {
        hold(tx, d, who, dep, &reason).await?;
    }
    Ok(true)
}

fn executor_for(env: &EnvRow, overrides: &Overrides) -> Result<Executor> {
    let spec = env.policy.as_ref().and_then(|p| p.executor.as_ref());
    Executor::resolve(spec, overrides).map_err(|m| {
        Error::input(format!("{}: {m}", env.env)).hint(
            "pass --duration/--failure-rate to run a simulation instead, or change the \
             environment's executor in the manifests",
        )
    })
}

/// `requires: ENV`: the release must have succeeded there first.
async fn requires_check(
    tx: &mut Tx<'_>,
    d: Dialect,
    env: &EnvRow,
    dep: &Deployment,
) -> Result<Option<Error>> {
    let Some(upstream) = env.policy.as_ref().and_then(|p| p.requires) else {
        return Ok(None);
    };
    if ledger::has_succeeded(tx, d, upstream, &dep.version)
        .await
        .db("checking the required environment")?
    {
        return Ok(None);
    }
    Ok(Some(
        Error::blocked(format!(
            "{} requires {upstream}: release {} has not succeeded in {upstream} yet",
            dep.env, dep.version
        ))
        .hint(format!(
            "deploy {} to {upstream} first (`shipctl deploy --release {} --env {upstream}`)",
            dep.version, dep.release_id
        )),
    ))
}

/// Why a deployment cannot be validated now: its state, a busy environment, or
/// a `requires:` not met. `None`: it may go on.
async fn refusal(
    tx: &mut Tx<'_>,
    d: Dialect,
    env: &EnvRow,
    dep: &Deployment,
    recovered: Option<i64>,
) -> Result<Option<(Why, Error)>> {
    Ok(match dep.state {
        Etat::Planifie | Etat::Valide => match busy_check(tx, d, dep).await? {
            Some(busy) => Some((Why::Busy, busy)),
            None => requires_check(tx, d, env, dep)
                .await?
                .map(|e| (Why::Requires, e)),
        },
        Etat::EnCours => Some((Why::Busy, already_running(dep))),
        _ => Some((Why::NotRunnable, not_runnable(dep, recovered))),
    })
}

/// Ends a transaction that wrote nothing but a lease recovery, and reports
/// why the deployment does not run now.
/// Refuses a deployment that waits for approvals; the first time, records
/// `gate.waiting` (notified, DESIGN §11), once per deployment whatever the
/// number of rounds that find it waiting.
async fn wait(
    mut tx: Tx<'_>,
    d: Dialect,
    who: &Who,
    dep: &Deployment,
    waiting: &[gates::GateState],
) -> Result<Validated> {
    let err = gates::waiting_error(dep, waiting);
    if !crate::store::outbox::has_waited(&mut tx, d, dep.id)
        .await
        .db("reading the audit log")?
    {
        record(
            &mut tx,
            d,
            who.on(dep.id, "gate.waiting", (None, None), err.message.clone()),
        )
        .await?;
    }
    refuse(tx, Why::Waiting, dep.id, err).await
}

async fn refuse(tx: Tx<'_>, why: Why, deployment: i64, err: Error) -> Result<Validated> {
    tx.commit().await.db("committing")?;
    Ok(Validated::Refused(Refused {
        why,
        deployment,
        message: err.message,
        hint: err.hint,
    }))
}

/// An environment whose deploy window is closed now.
struct Closed {
    /// "prod is closed until Mon 2026-12-07 09:00 Europe/Paris (no Friday deploys)".
    message: String,
    opens_at: Option<jiff::Timestamp>,
}

/// The environment's deploy windows by the database clock: `None` when open
/// (or when it declares none).
async fn window_closed(tx: &mut Tx<'_>, d: Dialect, env: &EnvRow) -> Result<Option<Closed>> {
    let Some(spec) = env.policy.as_ref().and_then(|p| p.windows.as_ref()) else {
        return Ok(None);
    };
    let windows = crate::window::parse(spec).map_err(|e| {
        Error::input(format!(
            "the deploy windows {} stored for {} cannot be read: {}",
            e.key, env.env, e.message
        ))
        .hint("run `shipctl reconcile` with valid manifests to store them again")
    })?;
    let now = ledger::db_now(tx, d)
        .await
        .db("reading the database clock")?;
    let now = now.instant().ok_or_else(|| {
        Error::input(format!(
            "the database clock reads {now:?}, which is not a time"
        ))
    })?;
    let state = crate::window::state(&windows, now);
    Ok((!state.open).then(|| Closed {
        message: crate::window::message(env.env, &state),
        opens_at: state.next_change.as_ref().map(|z| z.timestamp()),
    }))
}

/// Ends a transaction that wrote nothing but a lease recovery, with an error.
async fn fail<T>(tx: Tx<'_>, err: Error) -> Result<T> {
    tx.commit().await.db("committing")?;
    Err(err)
}

/// `Some(error)` when another deployment holds the environment.
async fn busy_check(tx: &mut Tx<'_>, d: Dialect, dep: &Deployment) -> Result<Option<Error>> {
    let running = ledger::in_progress(tx, d, dep.env_id)
        .await
        .db("reading the deployment in progress")?;
    Ok(running.filter(|r| r.id != dep.id).map(|r| {
        Error::blocked(format!(
            "environment {} is busy: deployment {} (release {}) is en_cours, held by {} until {} UTC",
            dep.env,
            r.id,
            r.version,
            r.lease_holder.as_deref().unwrap_or("unknown"),
            r.lease_expires_at.as_deref().unwrap_or("unknown")
        ))
        .hint(format!(
            "wait for it to finish and run the command again; if its process died, the \
             lease expires and the next command in {} recovers it",
            dep.env
        ))
    }))
}

fn already_running(dep: &Deployment) -> Error {
    Error::blocked(format!(
        "deployment {} is already running (en_cours), held by {} until {} UTC",
        dep.id,
        dep.lease_holder.as_deref().unwrap_or("unknown"),
        dep.lease_expires_at.as_deref().unwrap_or("unknown")
    ))
    .hint("wait for it to finish; a failed run rolls itself back")
}

fn not_runnable(dep: &Deployment, recovered: Option<i64>) -> Error {
    let hint = match dep.state {
        Etat::Echec if recovered == Some(dep.id) => format!(
            "its holder died and its lease expired: this command has just recovered it as échec; \
             plan a new attempt with `shipctl deploy --release {} --env {}`",
            dep.release_id, dep.env
        ),
        Etat::Reussi => format!(
            "it already succeeded; to run release {} again, plan a new deployment with \
             `shipctl deploy --release {} --env {}`",
            dep.version, dep.release_id, dep.env
        ),
        _ => format!(
            "plan a new deployment with `shipctl deploy --release {} --env {}`",
            dep.release_id, dep.env
        ),
    };
    Error::input(format!(
        "deployment {} is {}: only planifié or validé deployments can be validated",
        dep.id, dep.state
    ))
    .hint(hint)
}
