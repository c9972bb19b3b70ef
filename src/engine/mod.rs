//! The only writer of the ledger. Every state change happens in this folder, in
//! a transaction that also writes its audit row.

mod execute;
mod gates;
mod keys;
mod lease;
mod reconcile;

pub use execute::{Execution, Outcome, Refused, RollbackReport, Validated, Why};
pub use gates::{Approval, Decision, GateState, GateStatus, headline};
pub use keys::Keys;
pub use reconcile::{
    EnvOutcome, EnvResult, Reconciled, actual, actual_and_marks, check_conflicts, check_policies,
    check_saved,
};

use crate::error::{DbContext, Error, Result};
use crate::model::{Env, Etat, check_label};
use crate::store::ledger::{self, Audit, Deployment, Pin, Release};
use crate::store::{Store, Tx};
use serde::Serialize;
use std::time::Duration;

/// Who is acting: the audit log's `acteur`, and the lease holder for runs.
#[derive(Debug, Clone)]
pub struct Who {
    /// Looked up on first use: read-only commands never pay for a passwd lookup.
    /// With where it came from, for messages.
    actor: std::sync::OnceLock<(String, &'static str)>,
    pub holder: String,
    pub lease_ttl: Duration,
}

impl Who {
    pub fn from_process(lease_ttl: Duration) -> Who {
        let nonce: u32 = rand::random();
        // `lease_holder` is VARCHAR(255): the host name gives way, pid and nonce
        // (what makes the holder unique) stay whole.
        let host = crate::model::fit_chars(&hostname(), crate::model::MAX_HOLDER_CHARS - 24);
        let holder = format!("{host}:{}:{nonce:08x}", std::process::id());
        Who {
            actor: std::sync::OnceLock::new(),
            holder,
            lease_ttl,
        }
    }

    /// `$SHIPCTL_ACTOR`, `$USER`, `$LOGNAME`, else the login name of the uid.
    pub fn actor(&self) -> &str {
        &self.actor_and_source().0
    }

    fn actor_and_source(&self) -> &(String, &'static str) {
        self.actor.get_or_init(|| {
            ["SHIPCTL_ACTOR", "USER", "LOGNAME"]
                .iter()
                .find_map(|k| {
                    std::env::var(k)
                        .ok()
                        .filter(|v| !v.is_empty())
                        .map(|v| (v, *k))
                })
                .or_else(|| login_name().map(|n| (n, "the login name of this user")))
                // SAFETY: getuid cannot fail.
                .unwrap_or_else(|| (format!("uid {}", unsafe { libc::getuid() }), "the uid"))
        })
    }

    /// Every writing command calls this before any SQL: an actor name that one
    /// backend would store and another refuse is refused on all of them.
    pub fn check_actor(&self) -> Result<()> {
        let (name, source) = self.actor_and_source();
        let field = format!("the actor name from {source}");
        crate::model::check_actor(&field, name).map_err(|m| {
            Error::input(format!("cannot record who acts: {m}")).hint(format!(
                "set SHIPCTL_ACTOR to a login name of 1 to {} characters, e.g. SHIPCTL_ACTOR=alice",
                crate::model::MAX_ACTOR_CHARS
            ))
        })
    }
}

/// The login name of the process's user, when `$USER` is not set (cron, CI, systemd).
fn login_name() -> Option<String> {
    // SAFETY: getpwuid returns NULL or a pointer to a static record valid until
    // the next call; the name is copied out at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned();
        (!name.is_empty()).then_some(name)
    }
}

impl Who {
    /// An audit row about a deployment: a state change `(before, after)`, or an
    /// event when both are `None`.
    pub(crate) fn on(
        &self,
        deployment: i64,
        action: &'static str,
        (before, after): (Option<Etat>, Option<Etat>),
        message: String,
    ) -> Audit<'_> {
        Audit {
            deployment: Some(deployment),
            env: None,
            action,
            before,
            after,
            message,
            actor: self.actor(),
        }
    }

    /// An audit row about an environment (or, with `None`, about no deployment).
    pub(crate) fn about(
        &self,
        env: Option<Env>,
        action: &'static str,
        message: String,
    ) -> Audit<'_> {
        Audit {
            deployment: None,
            env,
            action,
            before: None,
            after: None,
            message,
            actor: self.actor(),
        }
    }
}

/// Writes an audit row in the caller's transaction, and queues it for the
/// webhooks that want it (DESIGN §11) in the same transaction: a change that
/// rolls back notifies nobody, one that commits cannot be lost.
pub(crate) async fn record(
    c: &mut sqlx::AnyConnection,
    d: crate::store::Dialect,
    audit: Audit<'_>,
) -> Result<()> {
    let action = audit.action;
    let id = ledger::audit(c, d, audit)
        .await
        .db("writing the audit log")?;
    crate::store::outbox::enqueue(c, d, id, action)
        .await
        .db("queueing the notifications")
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

pub struct Engine {
    pub store: Store,
    pub who: Who,
    /// Where approvers' keys come from: the manifests, never the ledger's
    /// copy (`keys`). Set by the command before it judges any gate.
    pub keys: std::sync::Arc<Keys>,
}

#[derive(Debug, Serialize)]
pub struct EnvStatus {
    pub env: Env,
    pub live: Option<Deployment>,
    pub in_progress: Option<Deployment>,
    pub pending: Vec<Deployment>,
    pub pin: Option<Pin>,
    /// A release reconcile will not plan again here (DESIGN §9).
    pub hold: Option<ledger::Hold>,
    /// Whether the deploy windows let a deployment start now (DESIGN §10);
    /// `None`: the environment declares none.
    pub window: Option<WindowStatus>,
    /// The stored policy has fields this version does not know: shown, and
    /// nothing acts on the environment's policy until shipctl is upgraded.
    pub newer_policy: Option<NewerPolicy>,
    /// Why `validate`, `approve` and `rollback` refuse to act on the stored
    /// policy here: it differs from the manifests read (`--manifests`).
    pub policy_refused: Option<String>,
    /// Where the gates of each pending deployment stand (environments with gates).
    pub gates: Vec<DeploymentGates>,
    pub recent: Vec<Deployment>,
}

/// An environment's deploy windows at a moment.
#[derive(Debug, Serialize)]
pub struct WindowStatus {
    pub open: bool,
    /// "prod is closed until Mon 2026-12-07 09:00 Europe/Paris (no Friday deploys)".
    pub message: String,
    /// RFC 3339: when it next opens (closed) or closes (open).
    pub next_change: Option<String>,
}

impl WindowStatus {
    /// The windows of `policy` at `now`; `None` when it declares none or they
    /// cannot be read (`check` refuses those; a stored one is re-stored by reconcile).
    pub fn of(
        env: Env,
        policy: Option<&crate::manifest::Policy>,
        now: &crate::model::Utc,
    ) -> Option<WindowStatus> {
        let windows = crate::window::parse(policy?.windows.as_ref()?).ok()?;
        let state = crate::window::state(&windows, now.instant()?);
        Some(WindowStatus {
            open: state.open,
            message: crate::window::message(env, &state),
            next_change: state
                .next_change
                .as_ref()
                .map(|z| z.timestamp().to_string()),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct NewerPolicy {
    pub unknown_fields: Vec<String>,
    pub message: String,
}

/// The gates of one deployment.
#[derive(Debug, Serialize)]
pub struct DeploymentGates {
    #[serde(rename = "deployment_id")]
    pub deployment: i64,
    pub gates: Vec<GateState>,
}

/// `history --env ENV`: deployments, newest first, each with its gate results.
#[derive(Debug, Serialize)]
pub struct History {
    pub env: Env,
    pub deployments: Vec<HistoryEntry>,
}

#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    #[serde(flatten)]
    pub deployment: Deployment,
    pub gate_results: Vec<ledger::GateResult>,
}

/// `audit`: the rows shown, and how many matched the filter (`total` ≥ rows shown).
#[derive(Debug, Serialize)]
pub struct AuditLog {
    pub total: i64,
    pub rows: Vec<ledger::AuditRow>,
}

#[derive(Debug, Serialize)]
pub struct Unpinned {
    pub env: Env,
    pub pin: Pin,
    /// A stale deployment this command recovered on its way.
    #[serde(rename = "recovered_id")]
    pub recovered: Option<i64>,
}

/// How many deployments `status` lists as recent history.
pub const RECENT: u32 = 10;

impl Engine {
    pub fn new(store: Store, who: Who) -> Engine {
        Engine {
            store,
            who,
            keys: Default::default(),
        }
    }

    pub async fn create_release(&mut self, version: &str, tag: &str) -> Result<Release> {
        check_label("version", version).map_err(|m| {
            Error::input(format!("cannot create the release: {m}"))
                .hint("a version is 1 to 50 characters, for example 1.0.2")
        })?;
        check_label("tag", tag).map_err(|m| {
            Error::input(format!("cannot create release {version}: {m}"))
                .hint("a tag is 1 to 50 characters, for example v1.0.2")
        })?;
        let d = self.store.d;
        let mut tx = self.store.write().await?;
        if let Some(existing) = ledger::release_by_version(&mut tx, d, version)
            .await
            .db("looking up the release")?
        {
            return Err(duplicate_version(&existing));
        }
        let Some(id) = create_release_in(&mut tx, d, &self.who, version, tag, "").await? else {
            return Err(Error::input(format!(
                "release {version} already exists (created by another process just now)"
            ))
            .hint("versions are unique: pick a new version"));
        };
        let release = ledger::release_by_id(&mut tx, d, id)
            .await
            .db("reading the new release")?
            .ok_or_else(|| Error::input("the new release vanished"))?;
        tx.commit().await.db("committing the release")?;
        Ok(release)
    }

    pub async fn releases(&mut self) -> Result<Vec<Release>> {
        let d = self.store.d;
        ledger::releases(self.store.conn(), d)
            .await
            .db("listing releases")
    }

    /// `deploy --release ID --env ENV`: a new `planifié` deployment.
    pub async fn plan(&mut self, release_id: i64, env: Env) -> Result<Deployment> {
        let d = self.store.d;
        let release = ledger::release_by_id(self.store.conn(), d, release_id)
            .await
            .db("looking up the release")?
            .ok_or_else(|| {
                Error::input(format!("release {release_id} does not exist")).hint(
                    "list releases with `shipctl release --list`, or create one with \
                     `shipctl release --create VERSION --tag TAG`",
                )
            })?;
        let env_row = keys::env_row(&self.keys, self.store.conn(), d, env).await?;
        let mut tx = self.store.write_env(env_row.id).await?;
        lease::recover_stale(&mut tx, d, &self.who, env_row.id).await?;
        let pending = ledger::pending(&mut tx, d, env_row.id)
            .await
            .db("reading pending deployments")?;
        if let Some(dup) = pending.iter().find(|p| p.release_id == release.id) {
            tx.commit().await.db("committing")?;
            return Err(Error::input(format!(
                "release {} already has a pending deployment in {env}: deployment {} ({})",
                release.version, dup.id, dup.state
            ))
            .hint(format!(
                "run it with `shipctl validate --deploy-id {}`, or cancel it with \
                 `shipctl rollback --deploy-id {}`",
                dup.id, dup.id
            )));
        }
        let id = ledger::insert_deployment(&mut tx, d, release.id, env_row.id, None)
            .await
            .db("planning the deployment")?;
        record(
            &mut tx,
            d,
            self.who.on(
                id,
                "deployment.planned",
                (None, Some(Etat::Planifie)),
                format!("release {} planned for {env}", release.version),
            ),
        )
        .await?;
        // A person asking for the held release lifts the hold (DESIGN §9).
        if ledger::clear_hold(&mut tx, d, env_row.id, Some(release.id))
            .await
            .db("lifting the hold")?
        {
            record(
                &mut tx,
                d,
                self.who.on(
                    id,
                    "hold.lifted",
                    (None, None),
                    format!(
                        "{env}: hold on {} lifted: planned again by {}",
                        release.version,
                        self.who.actor()
                    ),
                ),
            )
            .await?;
        }
        let dep = load(&mut tx, d, id).await?;
        tx.commit().await.db("committing the plan")?;
        Ok(dep)
    }

    /// The ledger's id (DESIGN §12).
    pub async fn ledger_id(&mut self) -> Result<String> {
        let d = self.store.d;
        ledger::ledger_id(self.store.conn(), d)
            .await
            .db("reading the ledger's id")
    }

    /// The watcher that leads (`reconcile --watch`), if any ever did.
    pub async fn leader(&mut self) -> Result<Option<ledger::Leader>> {
        let d = self.store.d;
        ledger::leader(self.store.conn(), d)
            .await
            .db("reading the watch leader")
    }

    /// Live, in progress, pending and recent deployments, from one snapshot,
    /// without writing (a stale lease is shown as stale, not recovered).
    pub async fn status(&mut self, envs: &[Env]) -> Result<Vec<EnvStatus>> {
        let d = self.store.d;
        // One environment is one statement, a snapshot by itself, unless its
        // gates must be read too; several statements share a read transaction so
        // that they are seen at the same moment.
        if let [env] = envs
            && let Some(one) = env_status(&self.keys, self.store.conn(), d, *env, false).await?
        {
            return Ok(vec![one]);
        }
        let mut tx = self.store.read().await?;
        let mut out = Vec::with_capacity(envs.len());
        for &env in envs {
            if let Some(status) = env_status(&self.keys, &mut tx, d, env, true).await? {
                out.push(status);
            }
        }
        tx.commit().await.db("closing the read transaction")?;
        Ok(out)
    }

    pub async fn unpin(&mut self, env: Env) -> Result<Unpinned> {
        let d = self.store.d;
        let row = keys::env_row(&self.keys, self.store.conn(), d, env).await?;
        let mut tx = self.store.write_env(row.id).await?;
        let recovered = lease::recover_stale(&mut tx, d, &self.who, row.id).await?;
        let row = keys::env_row(&self.keys, &mut tx, d, env).await?;
        let Some(pin) = row.pin else {
            return Err(Error::input(format!("{env} is not pinned"))
                .hint("pins are set by `shipctl rollback` of a live deployment"));
        };
        ledger::clear_pin(&mut tx, d, row.id)
            .await
            .db("lifting the pin")?;
        record(
            &mut tx,
            d,
            self.who.about(
                Some(env),
                "pin.lifted",
                format!("{env}: pin on release {} lifted by unpin", pin.version),
            ),
        )
        .await?;
        tx.commit().await.db("committing")?;
        Ok(Unpinned {
            env,
            pin,
            recovered,
        })
    }

    /// `audit`: the newest rows that match, and how many match in all, read in
    /// one snapshot. The count is skipped when the rows did not reach the limit.
    pub async fn audit(&mut self, filter: &ledger::AuditFilter) -> Result<AuditLog> {
        self.audit_in_snapshot(filter, false)
            .await
            .map(|(log, _)| log)
    }

    /// `audit --follow`: what `audit` shows, and where each chain stands in
    /// the same snapshot, to read what commits next from there.
    pub async fn audit_to_follow(
        &mut self,
        filter: &ledger::AuditFilter,
    ) -> Result<(AuditLog, ledger::Cursor)> {
        self.audit_in_snapshot(filter, true).await
    }

    async fn audit_in_snapshot(
        &mut self,
        filter: &ledger::AuditFilter,
        cursor: bool,
    ) -> Result<(AuditLog, ledger::Cursor)> {
        let d = self.store.d;
        let mut tx = self.store.read().await?;
        let rows = ledger::audit_rows(&mut tx, d, filter)
            .await
            .db("reading the audit log")?;
        let total = if (rows.len() as i64) < filter.limit {
            rows.len() as i64
        } else {
            ledger::audit_count(&mut tx, d, filter)
                .await
                .db("counting the audit log's rows")?
        };
        let heads = if cursor {
            ledger::audit_heads(&mut tx, d)
                .await
                .db("reading where the audit log's chains stand")?
        } else {
            ledger::Cursor::default()
        };
        tx.commit().await.db("closing the read transaction")?;
        Ok((AuditLog { total, rows }, heads))
    }

    /// `audit verify`: every chain recomputed in one ordered read, in one snapshot.
    pub async fn verify_audit(
        &mut self,
        anchors: &[crate::store::chain::Anchor],
    ) -> Result<crate::store::chain::Verified> {
        if let Some(path) = self.store.url().sqlite_path() {
            // SQLite: read in this process through its C API, on a blocking thread.
            let busy = i32::try_from(self.store.limits.lock.as_millis()).unwrap_or(i32::MAX);
            let anchors = anchors.to_vec();
            crate::supervisor::phase();
            return tokio::task::spawn_blocking(move || {
                crate::store::chain::verify_sqlite(&path, busy, &anchors)
            })
            .await
            .map_err(|e| Error::input(format!("verifying the audit log stopped: {e}")))?
            .db("verifying the audit log");
        }
        let d = self.store.d;
        let mut tx = self.store.read().await?;
        let verified = crate::store::chain::verify(&mut tx, d, anchors)
            .await
            .db("verifying the audit log")?;
        tx.commit().await.db("closing the read transaction")?;
        Ok(verified)
    }

    /// `history --env ENV`: the newest `limit` deployments with their gate
    /// results, in two statements whatever the number of rows.
    pub async fn history(&mut self, env: Env, limit: i64) -> Result<History> {
        let d = self.store.d;
        let mut tx = self.store.read().await?;
        let row = keys::env_row(&self.keys, &mut tx, d, env).await?;
        let deployments = ledger::history(&mut tx, d, row.id, limit)
            .await
            .db("reading the deployments")?;
        let results = match deployments.last() {
            Some(oldest) => ledger::env_gate_results(&mut tx, d, row.id, oldest.id)
                .await
                .db("reading the gate results")?,
            None => Vec::new(),
        };
        // Each decision judged against the manifests' keys, as validation
        // would judge it now: a forged or copied approval says so here too.
        // Shown even where nothing may act on it (`untrusted`).
        let policy = row
            .policy
            .as_ref()
            .filter(|_| row.policy_unknown.is_empty());
        let ledger_id = if gates::signs(policy) && !results.is_empty() {
            Some(
                ledger::ledger_id(&mut tx, d)
                    .await
                    .db("reading the ledger's id")?,
            )
        } else {
            None
        };
        tx.commit().await.db("closing the read transaction")?;
        let mut by_deployment: std::collections::HashMap<i64, Vec<ledger::GateResult>> =
            std::collections::HashMap::new();
        for mut r in results {
            let declared = policy.and_then(|p| p.gates.iter().find(|g| g.name == r.gate));
            if let Some(g) = declared
                && let Some(check) = gates::check_signature(&g.gate, &r, ledger_id.as_deref())
            {
                r.signature_status = Some(match check {
                    crate::signing::Check::Verified => "verified",
                    crate::signing::Check::Unsigned => "unsigned",
                    _ if g.gate.unverifiable.is_some() => "unchecked",
                    crate::signing::Check::Invalid(_) => "invalid",
                });
                r.signature_problem = check.problem();
            }
            by_deployment.entry(r.deployment).or_default().push(r);
        }
        Ok(History {
            env,
            deployments: deployments
                .into_iter()
                .map(|dep| HistoryEntry {
                    gate_results: by_deployment.remove(&dep.id).unwrap_or_default(),
                    deployment: dep,
                })
                .collect(),
        })
    }

    /// The notifications' outbox at a glance: one statement, all environments.
    pub async fn outbox_backlog(&mut self) -> Result<crate::store::outbox::Backlog> {
        let d = self.store.d;
        crate::store::outbox::backlog(self.store.conn(), d)
            .await
            .db("reading the notifications' outbox")
    }

    /// Changes whenever someone approves or rejects.
    pub async fn decision_mark(&mut self) -> Result<i64> {
        let d = self.store.d;
        ledger::last_decision(self.store.conn(), d)
            .await
            .db("reading the gate results")
    }

    /// A deployment by id, or the clear "does not exist" error.
    pub async fn find(&mut self, id: i64) -> Result<Deployment> {
        let d = self.store.d;
        find(self.store.conn(), d, id).await
    }
}

/// `None` when the gates must be read as well and `second` does not allow a
/// second statement (the caller then reads both in one snapshot).
async fn env_status(
    keys: &Keys,
    c: &mut sqlx::AnyConnection,
    d: crate::store::Dialect,
    env: Env,
    second: bool,
) -> Result<Option<EnvStatus>> {
    let mut o = ledger::overview(c, d, env, RECENT)
        .await
        .db("reading the environment")?;
    keys.apply(&mut o.env);
    let policy = o.env.policy.as_ref();
    // A second statement only where there is something to say: gates declared
    // and deployments waiting on them.
    let gates = if policy.is_some_and(|p| !p.gates.is_empty()) && !o.pending.is_empty() {
        if !second {
            return Ok(None);
        }
        let ids: Vec<i64> = o.pending.iter().map(|p| p.id).collect();
        let decisions = gates::decisions(c, d, &ids, policy).await?;
        ids.iter()
            .map(|&id| DeploymentGates {
                deployment: id,
                gates: gates::states(policy, &decisions, id),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Some(EnvStatus {
        env,
        live: o.live,
        in_progress: o.in_progress,
        pending: o.pending,
        newer_policy: o.env.newer_policy_note().map(|message| NewerPolicy {
            unknown_fields: o.env.policy_unknown.clone(),
            message,
        }),
        policy_refused: o.env.untrusted.as_ref().map(|(message, _)| message.clone()),
        window: match policy.filter(|p| p.windows.is_some()) {
            Some(p) => {
                // The clock is one more statement: read in the snapshot.
                if !second {
                    return Ok(None);
                }
                let now = ledger::db_now(c, d)
                    .await
                    .db("reading the database clock")?;
                WindowStatus::of(env, Some(p), &now)
            }
            None => None,
        },
        pin: o.env.pin,
        hold: o.env.hold,
        gates,
        recent: o.recent,
    }))
}

/// Inserts a release and its audit row in the caller's transaction. `origin`
/// ends the audit message (", declared in manifests/x.yaml"). `None`: another
/// process created the version first. The insert runs in a savepoint, because on
/// PostgreSQL a failed statement would otherwise abort the whole transaction.
pub(crate) async fn create_release_in(
    tx: &mut Tx<'_>,
    d: crate::store::Dialect,
    who: &Who,
    version: &str,
    tag: &str,
    origin: &str,
) -> Result<Option<i64>> {
    let mut savepoint = sqlx::Connection::begin(&mut **tx)
        .await
        .db("creating the release")?;
    let id = match ledger::insert_release(&mut savepoint, d, version, tag).await {
        Ok(id) => id,
        Err(e) if is_unique_violation(&e) => {
            savepoint.rollback().await.db("creating the release")?;
            return Ok(None);
        }
        Err(e) => return Err(Error::database("creating the release", e)),
    };
    savepoint.commit().await.db("creating the release")?;
    record(
        tx,
        d,
        who.about(
            None,
            "release.created",
            format!("release {version} (tag {tag}) created with id {id}{origin}"),
        ),
    )
    .await?;
    Ok(Some(id))
}

pub(crate) async fn find(
    c: &mut sqlx::AnyConnection,
    d: crate::store::Dialect,
    id: i64,
) -> Result<Deployment> {
    ledger::deployment_by_id(c, d, id)
        .await
        .db("looking up the deployment")?
        .ok_or_else(|| {
            Error::input(format!("deployment {id} does not exist"))
                .hint("see the deployments of an environment with `shipctl status --env ENV`")
        })
}

/// Re-reads a row the transaction has just written.
async fn load(tx: &mut Tx<'_>, d: crate::store::Dialect, id: i64) -> Result<Deployment> {
    find(tx, d, id).await
}

fn duplicate_version(existing: &Release) -> Error {
    Error::input(format!(
        "release {} already exists (id {}, tag {}, created {})",
        existing.version, existing.id, existing.tag, existing.created_at
    ))
    .hint(format!(
        "versions are unique and releases immutable: deploy it with \
         `shipctl deploy --release {} --env ENV`, or create a new version",
        existing.id
    ))
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}
