//! Execution as two short transactions around the run, never one held open
//! across it: *claim* (lock, recover, check, `en_cours`, lease, token), *run*
//! (executor plus heartbeats), *finish* (token-guarded `réussi` or rollback).

use super::gates::{self, GateState, Verdict};
use super::{Engine, Who, lease, load, record};
use crate::error::{DbContext, Error, Result};
use crate::executor::{Executor, Job, Overrides, command};
use crate::model::{Etat, OnFailure};
use crate::store::ledger::{self, Deployment, EnvRow};
use crate::store::{Dialect, Store, Tx};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::signal::unix::{Signal, SignalKind, signal};

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
    pub recovered: Option<i64>,
    /// For a rollback: the deployment that was rolled back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<Deployment>,
    /// Where each gate stood when the deployment was validated (or rejected).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateState>,
}

impl Execution {
    pub fn exit_code(&self) -> i32 {
        match self.outcome {
            Outcome::Succeeded => 0,
            Outcome::Failed | Outcome::Interrupted | Outcome::Rejected => 3,
        }
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

/// SIGINT and SIGTERM, caught from before the claim so a signal can never leave
/// a deployment `en_cours` behind.
struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        let hook = |kind| {
            signal(kind).map_err(|e| Error::input(format!("cannot install a signal handler: {e}")))
        };
        Ok(Signals {
            int: hook(SignalKind::interrupt())?,
            term: hook(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
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
        }
    }
}

enum RunEnd {
    /// How it ended, the error if it failed, and the output worth keeping.
    Done(Outcome, Option<String>, String),
    LeaseLost,
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
    pub async fn validate(&mut self, id: i64, overrides: &Overrides) -> Result<Execution> {
        let mut signals = Signals::install()?;
        stopping()?;
        let started = Instant::now();
        let d = self.store.d;
        let dep = self.find(id).await?;
        let _spinner =
            crate::progress::start(format!("deployment {id}: {} → {}", dep.version, dep.env));
        crate::progress::step("gates");
        let env_id = dep.env_id;

        let mut tx = self.store.write_env(env_id).await?;
        let mut env = ledger::env_row(&mut tx, d, dep.env)
            .await
            .db("reading the environment")?;
        if let Err(e) = env.known_policy() {
            return refuse(tx, e).await;
        }
        let recovered = lease::recover_stale(&mut tx, d, &self.who, env_id).await?;
        let mut dep = load(&mut tx, d, id).await?;
        if let Some(refusal) = refusal(&mut tx, d, &env, &dep, recovered).await? {
            return refuse(tx, refusal).await;
        }
        let mut exec = match executor_for(&env, overrides) {
            Ok(exec) => exec,
            Err(e) => return refuse(tx, e).await,
        };
        let mut states = gates::current(&mut tx, d, env.policy.as_ref(), id).await?;
        match gates::verdict(&states) {
            Verdict::Rejected(r) => {
                let why = r.summary();
                let ctx = (started, recovered, &exec);
                return reject(tx, d, &self.who, &dep, states, why, ctx).await;
            }
            Verdict::Waiting(w) => return refuse(tx, gates::waiting_error(&dep, &w)).await,
            Verdict::Ready => {}
        }
        let commands = gates::to_run(env.policy.as_ref(), dep.state, &states);
        if !commands.is_empty() {
            // One process at a time runs a deployment's command gates.
            let ttl_ms = self.who.lease_ttl.as_millis() as i64;
            if !ledger::hold_for_gates(&mut tx, d, id, &self.who.holder, ttl_ms)
                .await
                .db("holding the deployment for its gates")?
            {
                return refuse(tx, gates::held_error(&dep)).await;
            }
            let live = ledger::live(&mut tx, d, env_id)
                .await
                .db("reading the live release")?;
            tx.commit().await.db("committing")?;
            let job = Job {
                version: dep.version.clone(),
                tag: dep.tag.clone(),
                env: dep.env.as_str().to_string(),
                deploy_id: id,
                previous_version: live.map(|l| l.version),
            };
            let outcomes =
                gates::run_commands(&mut self.store, &self.who, &commands, &job, signals.recv())
                    .await?;
            crate::progress::step("gates: recording");
            // What ran is recorded, and the hold ended, in a transaction of its
            // own: nothing that fails after it can lose the one or keep the other.
            let held = gates::record_run(&mut self.store, &self.who, &dep, &outcomes).await?;
            tx = self.store.write_env(env_id).await?;
            env = ledger::env_row(&mut tx, d, dep.env)
                .await
                .db("reading the environment")?;
            if let Err(e) = env.known_policy() {
                return refuse(tx, e).await;
            }
            dep = load(&mut tx, d, id).await?;
            if !matches!(dep.state, Etat::Planifie | Etat::Valide) {
                return refuse(
                    tx,
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
                    return refuse(tx, gates::waiting_error(&dep, &w)).await;
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
                Err(e) => return refuse(tx, e).await,
            };
            if let Some(refusal) = refusal(&mut tx, d, &env, &dep, recovered).await? {
                // The gates passed: keep that (validé), and let the next validate claim it.
                if dep.state == Etat::Planifie {
                    validated_in(&mut tx, d, &self.who, &dep, &states).await?;
                }
                return refuse(tx, refusal).await;
            }
        }
        if dep.state == Etat::Planifie {
            validated_in(&mut tx, d, &self.who, &dep, &states).await?;
        }
        crate::progress::step("claim");
        let previous = ledger::live(&mut tx, d, env_id)
            .await
            .db("reading the live release")?;
        let dep = load(&mut tx, d, id).await?;
        let token = claim_in(&mut tx, d, &self.who, &dep).await?;
        let dep = load(&mut tx, d, id).await?;
        tx.commit().await.db("committing the claim")?;

        let claimed = Claimed {
            dep,
            token,
            recovered,
            restores: None,
            previous,
        };
        let mut execution = self
            .run_and_finish(&env, claimed, &exec, &mut signals)
            .await?;
        execution.gates = states;
        execution.duration_ms = started.elapsed().as_millis();
        Ok(execution)
    }

    /// `rollback --deploy-id N`: cancel a pending deployment, or redeploy the
    /// release that was live before N and pin the environment to it.
    pub async fn rollback(&mut self, id: i64, overrides: &Overrides) -> Result<RollbackReport> {
        let mut signals = Signals::install()?;
        stopping()?;
        let d = self.store.d;
        let dep = self.find(id).await?;
        let _spinner =
            crate::progress::start(format!("rollback of deployment {id} in {}", dep.env));
        crate::progress::step("claim");
        let env = ledger::env_row(self.store.conn(), d, dep.env)
            .await
            .db("reading the environment")?;
        env.known_policy()?;
        let exec = executor_for(&env, overrides)?;

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
            Etat::EnCours => refuse(tx, already_running(&dep)).await,
            Etat::Echec | Etat::Annule => {
                refuse(
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
                let live = ledger::live(&mut tx, d, env.id)
                    .await
                    .db("reading the live release")?;
                if live.as_ref().map(|l| l.id) != Some(id) {
                    let live_text = live
                        .map(|l| format!("deployment {} (release {})", l.id, l.version))
                        .unwrap_or_else(|| "none".into());
                    return refuse(
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
                    return refuse(
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
                    return refuse(tx, busy).await;
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
                let token = claim_in(&mut tx, d, &self.who, &restore).await?;
                let restore = load(&mut tx, d, rid).await?;
                tx.commit().await.db("committing the claim")?;
                let claimed = Claimed {
                    dep: restore,
                    token,
                    recovered,
                    previous: Some(dep.clone()),
                    restores: Some(dep),
                };
                let execution = self
                    .run_and_finish(&env, claimed, &exec, &mut signals)
                    .await?;
                Ok(RollbackReport::Restored(Box::new(execution)))
            }
        }
    }

    async fn run_and_finish(
        &mut self,
        env: &EnvRow,
        claimed: Claimed,
        exec: &Executor,
        signals: &mut Signals,
    ) -> Result<Execution> {
        let started = Instant::now();
        crate::progress::step("run");
        let end = supervise(&mut self.store, &self.who, &claimed, exec, signals).await;
        let (outcome, error, output) = match end {
            RunEnd::Done(outcome, error, output) => (outcome, error, output),
            RunEnd::LeaseLost => {
                return Err(Error::failed(format!(
                    "deployment {} lost its lease while running: another process recovered it \
                     after the lease expired; this run stopped and wrote nothing",
                    claimed.dep.id
                ))
                .hint(
                    "a longer --lease-ttl helps when the database is slow to answer heartbeats",
                ));
            }
        };
        // A failed run of a real command: its rollback command restores what was
        // live (outside any transaction, like the run). Not after a signal: the
        // process was asked to stop, promptly.
        let restored = match (&outcome, exec.rollback(), &claimed.previous) {
            (Outcome::Failed, Some((argv, timeout)), Some(prev)) => {
                let job = Job {
                    version: prev.version.clone(),
                    tag: prev.tag.clone(),
                    env: prev.env.as_str().to_string(),
                    deploy_id: claimed.dep.id,
                    previous_version: Some(claimed.dep.version.clone()),
                };
                Some(match command::run(argv, &job, timeout, true).await {
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
                })
            }
            _ => None,
        };
        crate::progress::step("finish");
        let d = self.store.d;
        let mut tx = self.store.write_env(env.id).await?;
        let dep = &claimed.dep;
        if let Some((ok, message)) = &restored {
            record(
                &mut tx,
                d,
                self.who.on(
                    dep.id,
                    if *ok {
                        "rollback_command.succeeded"
                    } else {
                        "rollback_command.failed"
                    },
                    (None, None),
                    message.clone(),
                ),
            )
            .await?;
        }
        let elapsed =
            crate::duration::format(Duration::from_millis(started.elapsed().as_millis() as u64));
        let finished = match outcome {
            Outcome::Succeeded => {
                let ran = format!("{elapsed}{}", command::output_note(&output));
                finish_success(&mut tx, d, &self.who, env, &claimed, &ran).await?
            }
            Outcome::Failed | Outcome::Interrupted | Outcome::Rejected => {
                let why = error.clone().unwrap_or_default();
                finish_failure(&mut tx, d, &self.who, env, &claimed, &why).await?
            }
        };
        if !finished {
            tx.commit().await.db("committing")?;
            return Err(Error::failed(format!(
                "deployment {} was taken over while it ran (its lease expired and another \
                 process recovered it); this run's result was not written",
                dep.id
            )));
        }
        let final_dep = load(&mut tx, d, dep.id).await?;
        let rolled_back = match &claimed.restores {
            Some(n) => Some(load(&mut tx, d, n.id).await?),
            None => None,
        };
        tx.commit().await.db("committing the result")?;
        Ok(Execution {
            deployment: final_dep,
            outcome,
            error,
            duration_ms: started.elapsed().as_millis(),
            executor: exec.describe(),
            recovered: claimed.recovered,
            rolled_back,
            gates: Vec::new(),
        })
    }
}

/// The run itself: the executor, a heartbeat every TTL/3 and the signals.
async fn supervise(
    store: &mut Store,
    who: &Who,
    claimed: &Claimed,
    exec: &Executor,
    signals: &mut Signals,
) -> RunEnd {
    let d = store.d;
    let ttl = who.lease_ttl;
    let ttl_ms = ttl.as_millis() as i64;
    let period = ttl / 3;
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = Instant::now();
    let job = claimed.job();
    let run = exec.run(&job);
    tokio::pin!(run);
    loop {
        tokio::select! {
            result = &mut run => {
                return match result {
                    Ok(output) => RunEnd::Done(Outcome::Succeeded, None, output),
                    Err(e) => RunEnd::Done(Outcome::Failed, Some(e), String::new()),
                };
            }
            _ = beat.tick() => {
                match ledger::heartbeat(store.conn(), d, claimed.dep.id, claimed.token, ttl_ms).await {
                    Ok(true) => last_beat = Instant::now(),
                    Ok(false) => return RunEnd::LeaseLost,
                    // A database hiccup: keep trying while the lease may still be ours.
                    Err(_) if last_beat.elapsed() < ttl => {}
                    Err(_) => return RunEnd::LeaseLost,
                }
            }
            name = signals.recv() => {
                super::request_stop();
                return RunEnd::Done(
                    Outcome::Interrupted,
                    Some(format!("interrupted by {name}; the run was stopped")),
                    String::new(),
                );
            }
        }
    }
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
) -> Result<Execution> {
    if !ledger::transition(&mut tx, d, dep.id, dep.state, Etat::Echec)
        .await
        .db("recording the rejection")?
    {
        return refuse(
            tx,
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
    let dep = load(&mut tx, d, dep.id).await?;
    tx.commit().await.db("committing the rejection")?;
    Ok(Execution {
        deployment: dep,
        outcome: Outcome::Rejected,
        error: Some(why),
        duration_ms: started.elapsed().as_millis(),
        executor: exec.describe(),
        recovered,
        rolled_back: None,
        gates: states,
    })
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

async fn finish_failure(
    tx: &mut Tx<'_>,
    d: Dialect,
    who: &Who,
    env: &EnvRow,
    claimed: &Claimed,
    why: &str,
) -> Result<bool> {
    let ctx = "recording the failure";
    let dep = &claimed.dep;
    let attempts = dep.attempts;
    let (to, next) = if claimed.restores.is_some() {
        (
            Etat::Annule,
            "the restore is abandoned and the live release is unchanged".to_string(),
        )
    } else if env.on_failure == OnFailure::Cancel {
        (Etat::Annule, format!("{} cancels on failure", env.env))
    } else if attempts >= env.max_attempts {
        (
            Etat::Annule,
            format!("all {} attempts used, cancelled", env.max_attempts),
        )
    } else {
        (
            Etat::Planifie,
            format!(
                "rolled back to planifié, {} attempt(s) left",
                env.max_attempts - attempts
            ),
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
            format!(
                "attempt {attempts}/{} of {} to {} failed: {why}; {next}",
                env.max_attempts, dep.version, dep.env
            ),
        ),
    )
    .await?;
    Ok(true)
}

/// Refuses to start a run once a signal asked the process to stop.
fn stopping() -> Result<()> {
    if super::stop_requested() {
        return Err(Error::blocked(
            "stopping: a signal was received, no new run starts",
        ));
    }
    Ok(())
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
) -> Result<Option<Error>> {
    Ok(match dep.state {
        Etat::Planifie | Etat::Valide => match busy_check(tx, d, dep).await? {
            Some(busy) => Some(busy),
            None => requires_check(tx, d, env, dep).await?,
        },
        Etat::EnCours => Some(already_running(dep)),
        _ => Some(not_runnable(dep, recovered)),
    })
}

/// Ends a transaction that wrote nothing but a lease recovery, and refuses.
async fn refuse<T>(tx: Tx<'_>, err: Error) -> Result<T> {
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
