//! Gates: the approvals people record with `shipctl approve`, the commands that
//! run at validation, and the verdict they give on a pending deployment.
//!
//! A person's newest decision on a gate is the one that counts, so approving
//! twice counts once and a mistaken rejection can be taken back before the
//! deployment is validated. Every decision and every command outcome is a row
//! of `gate_results` and of `audit_logs`.

use super::{Engine, Who, keys, load, record};
use crate::error::{DbContext, Error, Result};
use crate::executor::{DEFAULT_KILL_GRACE, Job, command};
use crate::manifest::{NamedGate, Policy};
use crate::model::{Etat, check_actor};
use crate::store::ledger::{self, Deployment, GateResult, NewGateResult};
use crate::store::{Dialect, Store, Tx};
use crate::supervisor::{self, Holding, Lease};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A command gate without `timeout:` is stopped after this long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The longest `--reason` kept.
pub use crate::model::MAX_REASON_CHARS;

/// Where one gate stands for one deployment.
#[derive(Debug, Clone, Serialize)]
pub struct GateState {
    pub gate: String,
    /// `approval` or `command`.
    pub kind: &'static str,
    pub status: GateStatus,
    /// Approvals the gate requires.
    pub required: Option<u32>,
    /// Who may approve; `None`: anyone.
    pub approvers: Option<Vec<String>>,
    pub approved_by: Vec<String>,
    /// Approvals that no longer count: older than the gate's `expires`.
    pub expired: Vec<String>,
    /// Who planned the deployment: under the four-eyes rule (`self_approval:
    /// false`, the default), not someone who may approve it.
    pub planned_by: Option<String>,
    /// Whether `planned_by` may approve (the gate's `self_approval`).
    pub self_approval: bool,
    pub rejected_by: Option<String>,
    /// A rejection's reason, or a command's outcome and output.
    pub message: Option<String>,
    pub command: Option<Vec<String>>,
    /// Whether approvers have SSH keys here: a decision then counts only when
    /// signed by its approver's key (DESIGN §12).
    pub signed: bool,
    /// Why the approvers' keys cannot be checked here (no manifests declare
    /// the environment); its signed decisions then count for nothing.
    pub keys_unchecked: Option<String>,
    /// Decisions that do not count because their signature does not verify
    /// (each person's newest such decision): forged, copied, altered or unsigned.
    pub unverified: Vec<Unverified>,
}

/// A decision whose signature does not verify, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Unverified {
    pub actor: String,
    /// `approved` or `rejected`, as the row says.
    pub decision: String,
    pub gate_result_id: i64,
    pub reason: String,
}

impl Unverified {
    /// "alice's approval (gate result 12) does not verify: signed for
    /// deployment 7, not 9": the row named, since the same person may also
    /// have a decision that counts.
    pub fn sentence(&self) -> String {
        format!(
            "{}'s {} (gate result {}) does not verify: {}",
            self.actor,
            crate::signing::decision_words(&self.decision)
                .trim_start_matches("an ")
                .trim_start_matches("a "),
            self.gate_result_id,
            self.reason
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    /// Enough approvals.
    Approved,
    /// Approvals missing.
    Waiting,
    Rejected,
    /// A command gate that exited 0.
    Passed,
    /// A command gate that failed, timed out or could not start.
    Failed,
    /// A command gate that runs at the next validation.
    NotRun,
}

/// The first line of a stored message, without a dangling "; output:".
pub fn headline(message: &str) -> &str {
    let first = message.lines().next().unwrap_or_default();
    first.strip_suffix("; output:").unwrap_or(first)
}

impl GateState {
    /// "qa: 1 of 2 approvals (alice); may approve: bob, carol".
    pub fn summary(&self) -> String {
        match self.status {
            GateStatus::Approved | GateStatus::Waiting => {
                let need = self.required.unwrap_or(1) as usize;
                let have = self.approved_by.len();
                let mut s = if have <= need {
                    format!(
                        "{}: {have} of {need} approval{}",
                        self.gate,
                        if need == 1 { "" } else { "s" }
                    )
                } else {
                    format!("{}: {have} approvals, {need} required", self.gate)
                };
                if !self.approved_by.is_empty() {
                    s.push_str(&format!(" ({})", self.approved_by.join(", ")));
                }
                if !self.expired.is_empty() {
                    s.push_str(&format!("; expired: {}", self.expired.join(", ")));
                }
                s.push_str(&self.unverified_note());
                if self.status == GateStatus::Waiting {
                    let excluded = |n: &String| {
                        self.approved_by.contains(n)
                            || (!self.self_approval && self.planned_by.as_ref() == Some(n))
                    };
                    let may = match &self.approvers {
                        Some(names) => names
                            .iter()
                            .filter(|n| !excluded(n))
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", "),
                        None => match self.planned_by.as_ref().filter(|_| !self.self_approval) {
                            Some(p) => format!("anyone but {p}, who planned it"),
                            None => "anyone".into(),
                        },
                    };
                    s.push_str(&format!(
                        "; may approve: {}",
                        if may.is_empty() {
                            "nobody left".into()
                        } else {
                            may
                        }
                    ));
                    if self.signed {
                        s.push_str(", each signing with their key (approve --sign)");
                    }
                    if let Some(why) = &self.keys_unchecked {
                        s.push_str(&format!(
                            ", where the manifests can be read: their keys cannot be checked \
                             here ({why})"
                        ));
                    }
                }
                s
            }
            GateStatus::Rejected => format!(
                "{}: rejected by {}{}{}",
                self.gate,
                self.rejected_by.as_deref().unwrap_or("someone"),
                self.message
                    .as_deref()
                    .filter(|m| !m.is_empty())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default(),
                self.unverified_note()
            ),
            GateStatus::Passed | GateStatus::Failed => format!(
                "{}: {}",
                self.gate,
                headline(self.message.as_deref().unwrap_or("command ran"))
            ),
            GateStatus::NotRun => format!(
                "{}: command {:?} runs at validation",
                self.gate,
                self.command.as_deref().unwrap_or_default()
            ),
        }
    }
}

impl GateState {
    /// "; not counted: alice's approval does not verify: ..." or nothing.
    fn unverified_note(&self) -> String {
        if self.unverified.is_empty() {
            return String::new();
        }
        let each: Vec<String> = self.unverified.iter().map(Unverified::sentence).collect();
        format!("; not counted: {}", each.join("; "))
    }
}

/// What the approval gates say about a deployment.
pub enum Verdict {
    /// Every approval gate has its approvals (command gates come next).
    Ready,
    /// Some gate lacks approvals: the deployment stays planifié.
    Waiting(Vec<GateState>),
    /// A person's newest decision on some gate is a rejection.
    Rejected(Box<GateState>),
}

/// Where each gate of `policy` stands for `deployment`, from gate results
/// (oldest first; results of other deployments are ignored, so one batch can
/// serve several). Command gates show their newest outcome, or `NotRun`.
pub fn states(policy: Option<&Policy>, decisions: &Decisions, deployment: i64) -> Vec<GateState> {
    let Some(policy) = policy else {
        return Vec::new();
    };
    let planner = decisions.planners.get(&deployment).map(String::as_str);
    policy
        .gates
        .iter()
        .map(|g| {
            let mine = decisions
                .results
                .iter()
                .filter(|r| r.deployment == deployment && r.gate == g.name);
            state(g, mine, planner, decisions)
        })
        .collect()
}

/// The gate results of some deployments and who planned each: what their
/// gates' states are computed from.
#[derive(Debug, Default)]
pub struct Decisions {
    pub results: Vec<GateResult>,
    pub planners: BTreeMap<i64, String>,
    /// The ledger's id, read when some gate has keys: signed statements name it.
    pub ledger: Option<String>,
    /// The database's clock, read with it: a signed decision's age counts
    /// from the time it signs.
    pub now: Option<crate::model::Utc>,
}

/// Whether some gate of `policy` has approvers with keys.
pub fn signs(policy: Option<&Policy>) -> bool {
    policy.is_some_and(|p| {
        p.gates
            .iter()
            .any(|g| g.gate.approvers.as_ref().is_some_and(|a| a.signed()))
    })
}

/// Reads the decisions about `deployments` in two statements, and the
/// ledger's id and clock in a third when `policy` has keys to check
/// signatures against.
pub async fn decisions(
    c: &mut sqlx::AnyConnection,
    d: Dialect,
    deployments: &[i64],
    policy: Option<&Policy>,
) -> Result<Decisions> {
    let (ledger, now) = match signs(policy) {
        true => {
            let (id, now) = ledger::ledger_id_and_now(c, d)
                .await
                .db("reading the ledger's id")?;
            (Some(id), Some(now))
        }
        false => (None, None),
    };
    Ok(Decisions {
        results: ledger::gate_results(c, d, deployments)
            .await
            .db("reading the gate results")?,
        planners: ledger::planners(c, d, deployments)
            .await
            .db("reading who planned the deployments")?,
        ledger,
        now,
    })
}

/// The statement a gate result's approver signed, if it was theirs: rebuilt
/// from the row itself, its deployment and this ledger's id, and the time
/// its stored statement says (v2), which the signature then vouches for.
pub fn statement_of(r: &GateResult, ledger: &str) -> String {
    crate::signing::Statement {
        decided: r
            .signed_statement
            .as_deref()
            .and_then(crate::signing::decided_of),
        ledger,
        deployment: r.deployment,
        env: &r.subject.env,
        version: &r.subject.version,
        tag: &r.subject.tag,
        gate: &r.gate,
        decision: &r.outcome,
        approver: &r.actor,
    }
    .text()
}

/// How a person's decision stands against their declared keys at gate `g`;
/// `None` when they have none (their decisions count unsigned).
pub fn check_signature(
    g: &crate::manifest::schema::Gate,
    r: &GateResult,
    ledger: Option<&str>,
) -> Option<crate::signing::Check> {
    if r.kind != "approval" {
        return None;
    }
    let keys = g.approvers.as_ref()?.keys_of(&r.actor)?;
    if let Some(why) = &g.unverifiable {
        return Some(crate::signing::Check::Invalid(format!(
            "its keys are read from the manifests, and {why}"
        )));
    }
    Some(match ledger {
        Some(ledger) => crate::signing::check(
            keys,
            &statement_of(r, ledger),
            r.signature.as_deref(),
            r.signed_statement.as_deref(),
        ),
        None => crate::signing::Check::Invalid("this ledger has no id to check it by".into()),
    })
}

/// A verified decision's age, in seconds: from the time it signs (v2) to the
/// database's clock now, so that nothing in its row can make it younger. A
/// time that cannot be read counts as long ago, and so does a v1 statement,
/// which signs no time: where approvals expire, they must be signed again.
fn signed_age(r: &GateResult, now: Option<&crate::model::Utc>) -> i64 {
    let signed = r
        .signed_statement
        .as_deref()
        .and_then(crate::signing::decided_of)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    match (signed, now.and_then(crate::model::Utc::instant)) {
        (Some(signed), Some(now)) => now.as_second() - signed.as_second(),
        _ => i64::MAX,
    }
}

fn state<'a>(
    g: &NamedGate,
    results: impl Iterator<Item = &'a GateResult>,
    planner: Option<&str>,
    decisions: &Decisions,
) -> GateState {
    let ledger = decisions.ledger.as_deref();
    let mut s = GateState {
        gate: g.name.clone(),
        kind: "approval",
        status: GateStatus::Waiting,
        required: g.gate.approvals,
        approvers: g.gate.approvers.as_ref().map(|a| a.names()),
        approved_by: Vec::new(),
        expired: Vec::new(),
        planned_by: planner.map(str::to_string),
        self_approval: g.gate.self_approval.unwrap_or(false),
        rejected_by: None,
        message: None,
        command: g.gate.command.clone(),
        signed: g.gate.approvers.as_ref().is_some_and(|a| a.signed()),
        keys_unchecked: g.gate.unverifiable.clone(),
        unverified: Vec::new(),
    };
    if g.gate.command.is_some() {
        s.kind = "command";
        s.status = GateStatus::NotRun;
        if let Some(last) = results.filter(|r| r.kind == "command").last() {
            s.status = if last.outcome == "passed" {
                GateStatus::Passed
            } else {
                GateStatus::Failed
            };
            s.message = Some(last.message.clone());
        }
        return s;
    }
    // Each person's newest decision, in the order they first decided. A
    // decision whose signature does not verify is set aside: it neither
    // approves nor rejects, and the person's previous decision stands.
    let mut newest: BTreeMap<&str, (usize, &GateResult, i64)> = BTreeMap::new();
    let mut unverified: BTreeMap<&str, Unverified> = BTreeMap::new();
    for (i, r) in results.filter(|r| r.kind == "approval").enumerate() {
        let allowed = g
            .gate
            .approvers
            .as_ref()
            .is_none_or(|a| a.contains(&r.actor));
        if !allowed {
            continue;
        }
        let check = check_signature(&g.gate, r, ledger);
        if let Some(problem) = check.as_ref().and_then(|c| c.problem()) {
            unverified.insert(
                &r.actor,
                Unverified {
                    actor: r.actor.clone(),
                    decision: r.outcome.clone(),
                    gate_result_id: r.id,
                    reason: problem,
                },
            );
            continue;
        }
        let first = newest.get(r.actor.as_str()).map_or(i, |(f, ..)| *f);
        let age = match check {
            Some(crate::signing::Check::Verified) => signed_age(r, decisions.now.as_ref()),
            _ => r.age_s,
        };
        newest.insert(&r.actor, (first, r, age));
    }
    s.unverified = unverified.into_values().collect();
    let mut decided: Vec<(usize, &GateResult, i64)> = newest.into_values().collect();
    decided.sort_by_key(|(first, ..)| *first);
    for (_, r, age) in decided {
        if r.outcome == "rejected" {
            if s.rejected_by.is_none() {
                s.rejected_by = Some(r.actor.clone());
                s.message = Some(r.message.clone());
            }
        } else if !s.self_approval && planner == Some(r.actor.as_str()) {
            // Recorded before the policy forbade it: it does not count.
        } else if g
            .gate
            .expires
            .is_some_and(|e| age.max(0) as u64 > e.0.as_secs())
        {
            s.expired.push(r.actor.clone());
        } else {
            s.approved_by.push(r.actor.clone());
        }
    }
    let need = g.gate.approvals.unwrap_or(1) as usize;
    s.status = if s.rejected_by.is_some() {
        GateStatus::Rejected
    } else if s.approved_by.len() >= need {
        GateStatus::Approved
    } else {
        GateStatus::Waiting
    };
    s
}

pub fn verdict(states: &[GateState]) -> Verdict {
    if let Some(r) = states.iter().find(|s| s.status == GateStatus::Rejected) {
        return Verdict::Rejected(Box::new(r.clone()));
    }
    let waiting: Vec<GateState> = states
        .iter()
        .filter(|s| s.status == GateStatus::Waiting)
        .cloned()
        .collect();
    if waiting.is_empty() {
        Verdict::Ready
    } else {
        Verdict::Waiting(waiting)
    }
}

/// The command gates a validation runs: all of them for a `planifié`
/// deployment; for a `validé` one (its gates passed earlier, the environment was
/// busy), those without a pass, such as a gate added to the policy since.
pub(super) fn to_run(policy: Option<&Policy>, state: Etat, states: &[GateState]) -> Vec<NamedGate> {
    let Some(policy) = policy else {
        return Vec::new();
    };
    policy
        .gates
        .iter()
        .filter(|g| g.gate.command.is_some())
        .filter(|g| {
            state == Etat::Planifie
                || !states
                    .iter()
                    .any(|s| s.gate == g.name && s.status == GateStatus::Passed)
        })
        .cloned()
        .collect()
}

/// The approval gates' states for a deployment, read in the caller's transaction.
pub(super) async fn current(
    tx: &mut Tx<'_>,
    d: Dialect,
    policy: Option<&Policy>,
    deployment: i64,
) -> Result<Vec<GateState>> {
    if policy.is_none_or(|p| p.gates.is_empty()) {
        return Ok(Vec::new());
    }
    let decisions = decisions(tx, d, &[deployment], policy).await?;
    Ok(states(policy, &decisions, deployment))
}

/// The exit-4 error of a deployment that waits for approvals.
pub(super) fn waiting_error(dep: &Deployment, waiting: &[GateState]) -> Error {
    let lines: Vec<String> = waiting.iter().map(GateState::summary).collect();
    let first = &waiting[0].gate;
    Error::blocked(format!(
        "deployment {} ({} to {}) waits for approval: {}",
        dep.id,
        dep.version,
        dep.env,
        lines.join("; ")
    ))
    .hint(format!(
        "approve it with `shipctl approve --deploy-id {} --gate {first}{}` (or --reject --reason \
         ...), then run `shipctl validate --deploy-id {}` or reconcile again",
        dep.id,
        if waiting[0].signed { " --sign KEY" } else { "" },
        dep.id
    ))
}

/// How one command gate ended.
#[derive(Debug, Clone)]
pub(super) struct CommandOutcome {
    pub gate: String,
    pub passed: bool,
    /// What is stored: the command, how it ended, how long it took, its output.
    pub message: String,
}

/// Runs the command gates in manifest order, outside any transaction, under
/// the supervisor, and stops at the first that fails. The caller holds the
/// deployment for its gates (`ledger::hold_for_gates`, committed just before);
/// the hold is the lease the supervisor renews, so that no other process runs
/// them meanwhile. `Err`: a signal stopped them, or the hold was lost (nothing
/// is recorded; the hold is released).
pub(super) async fn run_commands(
    store: &mut Store,
    who: &Who,
    gates: &[NamedGate],
    job: &Job,
    held_at: Instant,
    _guard: supervisor::Guard,
) -> Result<Vec<CommandOutcome>> {
    let held = Holding::Gates {
        id: job.deploy_id,
        holder: who.holder.clone(),
    };
    let mut lease = Lease::taken(held, who.lease_ttl, held_at);
    let ran = run_held(store, &mut lease, gates, job).await;
    if ran.is_err() {
        // Let another process run them at once rather than after the lease
        // expires: one try, bounded (no reconnect after a signal).
        let release = async {
            if supervisor::received().is_none() {
                store.settle().await?;
            }
            let d = store.d;
            ledger::renew_gate_hold(store.conn(), d, job.deploy_id, &who.holder, None)
                .await
                .db("releasing the gates' hold")
        };
        let bound = if supervisor::received().is_some() {
            supervisor::AFTER_SIGNAL
        } else {
            supervisor::answer_limit()
        };
        if !matches!(tokio::time::timeout(bound, release).await, Ok(Ok(_))) {
            store.mark_broken();
        }
    }
    ran
}

async fn run_held(
    store: &mut Store,
    lease: &mut Lease,
    gates: &[NamedGate],
    job: &Job,
) -> Result<Vec<CommandOutcome>> {
    let mut out = Vec::new();
    for g in gates {
        let Some(argv) = &g.gate.command else {
            continue;
        };
        crate::progress::step(&format!("gate {}", g.name));
        let spec = command::Spec {
            argv,
            timeout: Some(g.gate.timeout.map(|t| t.0).unwrap_or(DEFAULT_TIMEOUT)),
            kill_grace: g.gate.kill_grace.map_or(DEFAULT_KILL_GRACE, |t| t.0),
            echo: true,
        };
        let started = Instant::now();
        let ran = lease
            .supervise(store, async |stop| command::run(&spec, job, &stop).await)
            .await;
        if let Some(why) = ran.lost {
            // Two processes must never run the gates at once.
            return Err(Error::blocked(format!(
                "deployment {}: {why} while gate {} ran; the gate was stopped and nothing \
                 recorded{}",
                job.deploy_id,
                g.name,
                stopped_note(ran.out)
            ))
            .hint("a longer --lease-ttl helps when the database is slow to answer"));
        }
        if let Some(s) = ran.signal {
            return Err(Error::interrupted(
                s,
                format!(
                    "interrupted by {} while gate {} ran; its command was stopped and \
                     deployment {} stays as it was{}",
                    s.name(),
                    g.name,
                    job.deploy_id,
                    stopped_note(ran.out)
                ),
            ));
        }
        let took =
            crate::duration::format(Duration::from_millis(started.elapsed().as_millis() as u64));
        let (passed, message) = match ran.out {
            Ok(output) => (
                true,
                format!("{argv:?} passed in {took}{}", command::output_note(&output)),
            ),
            Err(why) => (false, format!("failed after {took}: {why}")),
        };
        out.push(CommandOutcome {
            gate: g.name.clone(),
            passed,
            message,
        });
        if !passed {
            break;
        }
    }
    Ok(out)
}

/// How a gate's command ended once it was asked to stop, for the message.
fn stopped_note(ran: command::Ran) -> String {
    match ran {
        Ok(_) => " (it had just passed)".into(),
        Err(why) => format!(": {why}"),
    }
}

/// The exit-4 error of a deployment whose gates another process is running.
pub(super) fn held_error(dep: &Deployment) -> Error {
    Error::blocked(format!(
        "deployment {} ({} to {}) is running its gates in another process ({}, until {} UTC)",
        dep.id,
        dep.version,
        dep.env,
        dep.lease_holder.as_deref().unwrap_or("unknown"),
        dep.lease_expires_at.as_deref().unwrap_or("?")
    ))
    .hint(format!(
        "wait for them: the outcome appears in `shipctl history --env {}`; if that process \
         died, its hold expires with its lease and the next validate runs them",
        dep.env
    ))
}

/// After the commands: records their outcomes and ends the hold, in one short
/// transaction. Returns whether the hold was still this process's. On failure
/// the hold is released anyway (best effort), so that nobody waits for a TTL.
pub(super) async fn record_run(
    store: &mut Store,
    who: &Who,
    dep: &Deployment,
    outcomes: &[CommandOutcome],
) -> Result<bool> {
    let d = store.d;
    let recorded = async {
        let mut tx = store.write_env(dep.env_id).await?;
        let held = ledger::renew_gate_hold(&mut tx, d, dep.id, &who.holder, None)
            .await
            .db("releasing the gates' hold")?;
        record_commands(&mut tx, d, who, dep, outcomes).await?;
        tx.commit().await.db("recording the gates' results")?;
        Ok(held)
    }
    .await;
    if recorded.is_err() {
        let _ = ledger::renew_gate_hold(store.conn(), d, dep.id, &who.holder, None).await;
    }
    recorded
}

/// Writes command gate outcomes: a `gate_results` row and an audit row each.
pub(super) async fn record_commands(
    tx: &mut Tx<'_>,
    d: Dialect,
    who: &Who,
    dep: &Deployment,
    outcomes: &[CommandOutcome],
) -> Result<()> {
    for o in outcomes {
        ledger::insert_gate_result(
            tx,
            d,
            &NewGateResult {
                deployment: dep.id,
                gate: &o.gate,
                kind: "command",
                outcome: if o.passed { "passed" } else { "failed" },
                actor: who.actor(),
                message: &o.message,
                signed: None,
            },
        )
        .await
        .db("recording the gate result")?;
        record(
            tx,
            d,
            who.on(
                dep.id,
                if o.passed {
                    "gate.passed"
                } else {
                    "gate.failed"
                },
                (None, None),
                format!(
                    "{} in {}: gate {}: {}",
                    dep.version, dep.env, o.gate, o.message
                ),
            ),
        )
        .await?;
    }
    Ok(())
}

/// What `shipctl approve` did.
#[derive(Debug, Serialize)]
pub struct Approval {
    pub deployment: Deployment,
    pub gate: String,
    /// `approved` or `rejected`.
    pub decision: &'static str,
    pub actor: String,
    /// False when this person's newest decision was already this one.
    pub recorded: bool,
    /// The statement signed and stored with the decision (`--sign`).
    pub signed: Option<Signed>,
    /// Every gate of the deployment after this decision.
    pub gates: Vec<GateState>,
    /// Whether the approval gates now let the deployment be validated.
    pub ready: bool,
    /// A stale deployment this command recovered on its way.
    #[serde(rename = "recovered_id")]
    pub recovered: Option<i64>,
}

/// A decision signed with `approve --sign` (DESIGN §12).
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    /// The exact text signed.
    pub statement: String,
    /// The SHA256 fingerprint of the key that signed it.
    pub key_fingerprint: String,
    /// The armored SSH signature, as stored.
    pub signature: String,
}

/// `approve` options beyond the deployment and the gate.
pub struct Decision<'a> {
    pub by: Option<&'a str>,
    pub reject: bool,
    pub reason: Option<&'a str>,
    /// A private key, or a public key whose private half is in ssh-agent.
    pub sign: Option<&'a std::path::Path>,
}

/// Whether `actor` may take this decision at `gate` of `dep`'s environment,
/// under `policy`: the gate's checks, the approvers, the keys, four eyes.
/// Run before signing (so that nobody signs for nothing) and again, in the
/// transaction that records it.
async fn admit<'p>(
    c: &mut sqlx::AnyConnection,
    d: Dialect,
    policy: Option<&'p Policy>,
    dep: &Deployment,
    gate: &str,
    actor: &str,
    decision: &Decision<'_>,
) -> Result<&'p NamedGate> {
    let id = dep.id;
    let declared: Vec<&NamedGate> = policy.map(|p| p.gates.iter().collect()).unwrap_or_default();
    let Some(g) = declared.iter().find(|g| g.name == gate).copied() else {
        let known: Vec<String> = declared
            .iter()
            .filter(|g| g.gate.approvals.is_some())
            .map(|g| g.name.clone())
            .collect();
        return Err(
            Error::input(format!("{} has no approval gate named {gate:?}", dep.env)).hint(
                if known.is_empty() {
                    format!(
                        "{} declares no approval gates; gates come from the manifests \
                 (environments.{}.gates) and are stored by `shipctl reconcile`",
                        dep.env, dep.env
                    )
                } else {
                    format!("its approval gates: {}", known.join(", "))
                },
            ),
        );
    };
    if g.gate.command.is_some() {
        return Err(Error::input(format!(
            "gate {gate} of {} is a command gate: it runs at validation and nobody approves it",
            dep.env
        ))
        .hint(format!(
            "run `shipctl validate --deploy-id {id}` to run it; its outcome is in `shipctl history --env {}`",
            dep.env
        )));
    }
    if !matches!(dep.state, Etat::Planifie | Etat::Valide) {
        return Err(Error::input(format!(
            "deployment {id} is {}: only planifié or validé deployments take approvals",
            dep.state
        ))
        .hint(format!(
            "approvals apply to deployments waiting to run; `shipctl status --env {}` \
                 lists them",
            dep.env
        )));
    }
    if let Some(approvers) = &g.gate.approvers
        && !approvers.contains(actor)
    {
        return Err(Error::input(format!(
            "{actor} may not approve gate {gate} of {}: its approvers are {}",
            dep.env,
            approvers.names().join(", ")
        ))
        .hint(
            "ask one of them, or change environments.ENV.gates.GATE.approvers in the manifests",
        ));
    }
    let keys = g.gate.approvers.as_ref().and_then(|a| a.keys_of(actor));
    let what = if decision.reject {
        "rejection"
    } else {
        "approval"
    };
    match (keys, decision.sign) {
        (Some(_), None) => {
            return Err(Error::input(format!(
                "gate {gate} of {} declares {actor}'s SSH key: an unsigned {what} by {actor} \
                 would not count, so none is recorded",
                dep.env
            ))
            .hint(format!(
                "sign it with the key: `shipctl approve --deploy-id {id} --gate {gate} --by \
                 {actor} --sign ~/.ssh/id_ed25519` (a private key, or its .pub when the key is \
                 in ssh-agent)"
            )));
        }
        (None, Some(_)) => {
            return Err(Error::input(format!(
                "gate {gate} of {} declares no SSH key for {actor}: a signature could not be \
                 checked, so none is made",
                dep.env
            ))
            .hint(format!(
                "leave out --sign ({actor}'s decisions count unsigned here), or declare the key \
                 in the manifests: approvers: {{ {actor}: \"ssh-ed25519 AAAA... {actor}@laptop\" }}"
            )));
        }
        _ => {}
    }
    // The four-eyes rule: whoever planned it may reject it, not approve it.
    if !decision.reject && !g.gate.self_approval.unwrap_or(false) {
        let planners = ledger::planners(c, d, &[id])
            .await
            .db("reading who planned the deployment")?;
        if planners.get(&id).map(String::as_str) == Some(actor) {
            let others: Vec<String> = g
                .gate
                .approvers
                .as_ref()
                .map(|a| a.names())
                .unwrap_or_default()
                .into_iter()
                .filter(|n| n != actor)
                .collect();
            return Err(Error::input(format!(
                "{actor} planned deployment {id} ({} to {}) and may not approve it: gate \
                     {gate} follows the four-eyes rule (self_approval is false)",
                dep.version, dep.env
            ))
            .hint(format!(
                "ask {}; a reconcile plans as $SHIPCTL_ACTOR (CI should set it to the \
                     committer), or set self_approval: true on the gate",
                if others.is_empty() {
                    "someone else".to_string()
                } else {
                    others.join(" or ")
                }
            )));
        }
    }
    Ok(g)
}

/// The statement of this decision, signed with `key` by ssh-keygen, and
/// checked here against the approver's declared keys before anything is written.
async fn sign_decision(
    key: &std::path::Path,
    keys: &[String],
    statement: String,
    actor: &str,
    gate: &str,
) -> Result<Signed> {
    let signature = crate::signing::sign(key, &statement).await?;
    let fingerprint = crate::signing::signer(&signature).unwrap_or_else(|| "?".into());
    match crate::signing::check(keys, &statement, Some(&signature), None) {
        crate::signing::Check::Verified => Ok(Signed {
            statement,
            key_fingerprint: fingerprint,
            signature,
        }),
        _ => {
            let declared: Vec<String> = keys
                .iter()
                .filter_map(|k| crate::signing::fingerprint(k))
                .collect();
            Err(Error::input(format!(
                "the key {} ({fingerprint}) is not {actor}'s key at gate {gate}: the manifests \
                 declare {}; nothing was recorded",
                key.display(),
                declared.join(", ")
            ))
            .hint(format!(
                "sign with {actor}'s own key, or have the manifests declare this one \
                 (its public half: ssh-keygen -y -f {})",
                key.display()
            )))
        }
    }
}

impl Engine {
    /// `approve --deploy-id N --gate G [--by NAME] [--reject --reason TEXT] [--sign KEY]`.
    pub async fn approve(
        &mut self,
        id: i64,
        gate: &str,
        decision: Decision<'_>,
    ) -> Result<Approval> {
        let actor = decision.by.unwrap_or_else(|| self.who.actor()).to_string();
        // A control character is named by its flag; the rest by what it is.
        let text = decision
            .by
            .map_or(Ok(()), |by| crate::model::check_text("--by", by));
        text.and_then(|()| check_actor("the approver's name", &actor))
            .map_err(|m| {
                Error::input(format!("cannot record the decision: {m}"))
                    .hint("pass the approver's login name with --by NAME")
            })?;
        let given = decision.reason.unwrap_or("");
        if let Err(m) = crate::model::check_text("--reason", given) {
            return Err(Error::input(format!("cannot record the decision: {m}"))
                .hint("write the reason on one line, as plain text"));
        }
        let reason = given.trim().to_string();
        if let Err(m) = crate::model::check_chars("--reason", &reason, MAX_REASON_CHARS) {
            return Err(Error::input(format!("cannot record the decision: {m}"))
                .hint("say why in a sentence or two, and link to the details"));
        }
        if decision.reject && reason.is_empty() {
            return Err(Error::input("a rejection needs a reason").hint(
                "add --reason \"what is wrong\": the deployer reads it in status and the audit log",
            ));
        }
        let d = self.store.d;
        let outcome = if decision.reject {
            "rejected"
        } else {
            "approved"
        };
        let dep = self.find(id).await?;
        // Signing happens before the transaction: ssh-keygen may wait for an
        // agent or a passphrase, and no lock is held meanwhile. The decision
        // is admitted first, so that nobody signs what would be refused.
        let signed = match decision.sign {
            None => None,
            Some(key) => {
                let c = self.store.conn();
                let env = keys::env_row(&self.keys, c, d, dep.env).await?;
                let policy = env.known_policy()?;
                keys::judgeable(policy, dep.env)?;
                let g = admit(c, d, policy, &dep, gate, &actor, &decision).await?;
                let keys = g
                    .gate
                    .approvers
                    .as_ref()
                    .and_then(|a| a.keys_of(&actor))
                    .unwrap_or_default()
                    .to_vec();
                // Expiry counts from now, by the database's clock: signed,
                // so that nobody can make an approval younger with SQL.
                let (ledger_id, now) = ledger::ledger_id_and_now(c, d)
                    .await
                    .db("reading the ledger's id")?;
                let decided = now.rfc3339();
                let statement = crate::signing::Statement {
                    decided: Some(&decided),
                    ledger: &ledger_id,
                    deployment: id,
                    env: dep.env.as_str(),
                    version: &dep.version,
                    tag: &dep.tag,
                    gate,
                    decision: outcome,
                    approver: &actor,
                }
                .text();
                Some(sign_decision(key, &keys, statement, &actor, gate).await?)
            }
        };
        let mut tx = self.store.write_env(dep.env_id).await?;
        // A writing command like the others: a dead holder's lease in this
        // environment ends here (the deployment approved may be that one).
        let recovered = super::lease::recover_stale(&mut tx, d, &self.who, dep.env_id).await?;
        let env = keys::env_row(&self.keys, &mut tx, d, dep.env).await?;
        let policy = env.known_policy()?;
        keys::judgeable(policy, dep.env)?;
        let dep = load(&mut tx, d, id).await?;
        let g = admit(&mut tx, d, policy, &dep, gate, &actor, &decision).await?;
        if let Some(s) = &signed {
            // The manifests' keys may have changed while ssh-keygen ran.
            let keys = g
                .gate
                .approvers
                .as_ref()
                .and_then(|a| a.keys_of(&actor))
                .unwrap_or_default();
            if crate::signing::check(keys, &s.statement, Some(&s.signature), None)
                != crate::signing::Check::Verified
            {
                return Err(Error::input(format!(
                    "{actor}'s keys at gate {gate} of {} changed while the decision was being \
                     signed; nothing was recorded",
                    dep.env
                ))
                .hint("run the same approve again"));
            }
        }
        // Approving is idempotent (a person whose newest decision is an approval
        // is among `approved_by`); a rejection is always a new statement.
        let recorded = decision.reject
            || !current(&mut tx, d, policy, id)
                .await?
                .iter()
                .any(|s| s.gate == gate && s.approved_by.contains(&actor));
        if recorded {
            ledger::insert_gate_result(
                &mut tx,
                d,
                &NewGateResult {
                    deployment: id,
                    gate,
                    kind: "approval",
                    outcome,
                    actor: &actor,
                    message: &reason,
                    signed: signed
                        .as_ref()
                        .map(|s| (s.signature.as_str(), s.statement.as_str())),
                },
            )
            .await
            .db("recording the decision")?;
            // The server's word on who wrote it (PostgreSQL, MariaDB).
            let db_user = ledger::db_user(&mut tx, d)
                .await
                .db("reading the database user")?;
            let mut audit = self.who.on(
                id,
                if decision.reject {
                    "gate.rejected"
                } else {
                    "gate.approved"
                },
                (None, None),
                format!(
                    "{} in {}: gate {gate} {outcome} by {actor}{}{}{}",
                    dep.version,
                    dep.env,
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {reason}")
                    },
                    match &signed {
                        Some(s) => format!(", signed with {}", s.key_fingerprint),
                        None => String::new(),
                    },
                    match (actor == self.who.actor(), db_user) {
                        (true, None) => String::new(),
                        (true, Some(u)) => format!(" (database user {u})"),
                        (false, None) => format!(" (recorded by {})", self.who.actor()),
                        (false, Some(u)) =>
                            format!(" (recorded by {}, database user {u})", self.who.actor()),
                    }
                ),
            );
            audit.actor = &actor;
            record(&mut tx, d, audit).await?;
        }
        let gates = current(&mut tx, d, policy, id).await?;
        tx.commit().await.db("committing the decision")?;
        let ready = matches!(verdict(&gates), Verdict::Ready);
        Ok(Approval {
            deployment: dep,
            gate: gate.to_string(),
            decision: outcome,
            actor,
            recorded,
            signed: if recorded { signed } else { None },
            gates,
            ready,
            recovered,
        })
    }
}
