//! The ledger's queries, each written once for every backend. Callers pass the
//! connection or transaction they are working in.

use super::Dialect;
use crate::manifest::Policy;
use crate::model::{Env, Etat, OnFailure, Utc};
use crate::since::Since;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

pub type Res<T> = sqlx::Result<T>;

#[derive(Debug, Clone, Serialize)]
pub struct Release {
    pub id: i64,
    pub version: String,
    pub tag: String,
    pub created_at: Utc,
}

#[derive(Debug, Clone)]
pub struct EnvRow {
    pub id: i64,
    pub env: Env,
    pub max_attempts: i64,
    pub on_failure: OnFailure,
    pub pin: Option<Pin>,
    pub hold: Option<Hold>,
    /// What reconcile stored from the manifests, as far as this version knows
    /// it; `None`: never stored. Act on it only through `known_policy`.
    pub policy: Option<Policy>,
    /// Fields of the stored policy this version does not know (written by a
    /// newer shipctl): `canary`, `gates.qa.sign`.
    pub policy_unknown: Vec<String>,
    /// Why nothing may act on the stored policy, with a hint: it differs from
    /// the manifests at hand, or its gates' keys cannot be read from any
    /// (`engine::keys`). `None` as read from the database.
    pub untrusted: Option<(String, String)>,
}

impl EnvRow {
    /// The policy to act on (validate, rollback, approve, reconcile). Refused
    /// when a newer shipctl stored fields this version does not know: a gate or
    /// a check must never be skipped because this version cannot read it.
    /// Refused too when the policy cannot be trusted (`untrusted`).
    pub fn known_policy(&self) -> crate::error::Result<Option<&Policy>> {
        if !self.policy_unknown.is_empty() {
            return Err(newer_policy_refusal(self.env, &self.policy_unknown));
        }
        if let Some((message, hint)) = &self.untrusted {
            return Err(crate::error::Error::input(message.clone()).hint(hint.clone()));
        }
        Ok(self.policy.as_ref())
    }

    /// "policy written by a newer shipctl: canary; upgrade shipctl to deploy to prod".
    pub fn newer_policy_note(&self) -> Option<String> {
        (!self.policy_unknown.is_empty()).then(|| newer_policy_note(self.env, &self.policy_unknown))
    }
}

/// Why nothing may act on a policy with fields this version does not know.
pub fn newer_policy_refusal(env: Env, unknown: &[String]) -> crate::error::Error {
    crate::error::Error::input(format!(
        "the policy of {env} was written by a newer shipctl (it has {}, which this version \
         does not know); upgrade shipctl",
        unknown.join(", ")
    ))
    .hint(format!(
        "run the shipctl that last reconciled {env} (or a newer one); nothing was written, \
         and `shipctl status --env {env}` still shows the environment"
    ))
}

/// The one wording of a stored policy this version cannot act on, for `status` and plans.
pub fn newer_policy_note(env: Env, unknown: &[String]) -> String {
    format!(
        "policy written by a newer shipctl: {}; upgrade shipctl to deploy to {env}",
        unknown.join(", ")
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct Pin {
    /// The release the environment is held on.
    pub release_id: i64,
    pub version: String,
    /// The release the reconciler must not redeploy while the pin holds.
    pub blocks_release_id: Option<i64>,
    pub blocks_version: Option<String>,
    pub since: Option<Utc>,
}

/// A release held in an environment (DESIGN §9): reconcile does not plan it
/// again until the manifests declare another release or a person plans it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hold {
    pub release_id: i64,
    pub version: String,
    /// The deployment whose end set the hold.
    pub deployment_id: Option<i64>,
    /// "failed verification", "rejected at gate qa", "all 3 attempts failed".
    pub reason: String,
    pub since: Utc,
}

#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    pub id: i64,
    pub release_id: i64,
    pub version: String,
    pub tag: String,
    pub env: Env,
    #[serde(skip)]
    pub env_id: i64,
    pub state: Etat,
    /// `date_deploiement`: when the row last changed state (planned, claimed, finished).
    pub date: Utc,
    pub attempts: i64,
    pub fencing_token: Option<i64>,
    pub lease_holder: Option<String>,
    pub lease_expires_at: Option<Utc>,
    /// An `en_cours` row whose lease has expired: its holder stopped heartbeating.
    pub lease_stale: bool,
    /// A pending row whose command gates a process is running now (an unexpired
    /// hold: `lease_holder` until `lease_expires_at`).
    pub gates_running: bool,
    pub restores_id: Option<i64>,
}

/// One row of `audit_logs`, as written.
pub struct Audit<'a> {
    pub deployment: Option<i64>,
    /// For events about no deployment; a deployment's row takes its environment.
    pub env: Option<Env>,
    pub action: &'a str,
    pub before: Option<Etat>,
    pub after: Option<Etat>,
    pub message: String,
    pub actor: &'a str,
}

/// A `{ts:…}` column.
pub(super) fn ts(row: &AnyRow, col: &str) -> Res<Utc> {
    row.try_get(col).map(Utc::new)
}

fn ts_opt(row: &AnyRow, col: &str) -> Res<Option<Utc>> {
    Ok(row.try_get::<Option<String>, _>(col)?.map(Utc::new))
}

// ---------------------------------------------------------------- releases

const RELEASE_COLS: &str =
    "id, version, tag_git, {ts:date_creation} AS date_creation FROM releases";

fn release(row: &AnyRow) -> Res<Release> {
    Ok(Release {
        id: row.try_get("id")?,
        version: row.try_get("version")?,
        tag: row.try_get("tag_git")?,
        created_at: ts(row, "date_creation")?,
    })
}

pub async fn release_by_id(c: &mut AnyConnection, d: Dialect, id: i64) -> Res<Option<Release>> {
    let sql = d.sql(&format!("SELECT {RELEASE_COLS} WHERE id = ?"));
    let row = sqlx::query(sql).bind(id).fetch_optional(c).await?;
    row.as_ref().map(release).transpose()
}

pub async fn release_by_version(
    c: &mut AnyConnection,
    d: Dialect,
    version: &str,
) -> Res<Option<Release>> {
    let sql = d.sql(&format!("SELECT {RELEASE_COLS} WHERE version = ?"));
    let row = sqlx::query(sql).bind(version).fetch_optional(c).await?;
    row.as_ref().map(release).transpose()
}

pub async fn releases(c: &mut AnyConnection, d: Dialect) -> Res<Vec<Release>> {
    let sql = d.sql(&format!("SELECT {RELEASE_COLS} ORDER BY id"));
    let rows = sqlx::query(sql).fetch_all(c).await?;
    rows.iter().map(release).collect()
}

pub async fn insert_release(
    c: &mut AnyConnection,
    d: Dialect,
    version: &str,
    tag: &str,
) -> Res<i64> {
    insert(
        c,
        d,
        "INSERT INTO releases (version, tag_git, date_creation) VALUES (?, ?, {now})",
        |q| q.bind(version.to_string()).bind(tag.to_string()),
    )
    .await
}

// ---------------------------------------------------------------- environments

const ENV_SELECT: &str = "SELECT e.id AS env_row_id, e.max_attempts, e.on_failure, e.pinned_release_id, \
     p.version AS pinned_version, e.pin_blocks_release_id, b.version AS blocks_version, \
     {ts:e.pinned_at} AS pinned_at, e.policy, \
     e.held_release_id, h.version AS held_version, e.held_deployment_id, e.held_reason, \
     {ts:e.held_at} AS held_at \
     FROM environnements e \
     LEFT JOIN releases p ON p.id = e.pinned_release_id \
     LEFT JOIN releases b ON b.id = e.pin_blocks_release_id \
     LEFT JOIN releases h ON h.id = e.held_release_id \
     WHERE e.nom = ?";

pub async fn env_row(c: &mut AnyConnection, d: Dialect, env: Env) -> Res<EnvRow> {
    let row = sqlx::query(d.sql(ENV_SELECT))
        .bind(env.as_str())
        .fetch_one(c)
        .await?;
    env_from_row(&row, env)
}

fn env_from_row(row: &AnyRow, env: Env) -> Res<EnvRow> {
    let on_failure: String = row.try_get("on_failure")?;
    let pinned: Option<i64> = row.try_get("pinned_release_id")?;
    let pin = match pinned {
        Some(release_id) => Some(Pin {
            release_id,
            version: row.try_get("pinned_version")?,
            blocks_release_id: row.try_get("pin_blocks_release_id")?,
            blocks_version: row.try_get("blocks_version")?,
            since: ts_opt(row, "pinned_at")?,
        }),
        None => None,
    };
    let hold = match row.try_get::<Option<i64>, _>("held_release_id")? {
        Some(release_id) => Some(Hold {
            release_id,
            version: row.try_get("held_version")?,
            deployment_id: row.try_get("held_deployment_id")?,
            reason: row
                .try_get::<Option<String>, _>("held_reason")?
                .unwrap_or_default(),
            since: ts(row, "held_at")?,
        }),
        None => None,
    };
    let stored = match row.try_get::<Option<String>, _>("policy")? {
        Some(json) => Some(crate::manifest::stored::read(&json).map_err(|e| {
            sqlx::Error::Decode(
                format!("the stored policy of {env} is unreadable ({e}); `shipctl reconcile` rewrites it")
                    .into(),
            )
        })?),
        None => None,
    };
    let (policy, policy_unknown) = match stored {
        Some(s) => (Some(s.policy), s.unknown),
        None => (None, Vec::new()),
    };
    Ok(EnvRow {
        id: row.try_get("env_row_id")?,
        env,
        max_attempts: row.try_get("max_attempts")?,
        on_failure: OnFailure::parse(&on_failure).unwrap_or(OnFailure::Replan),
        pin,
        hold,
        policy,
        policy_unknown,
        untrusted: None,
    })
}

/// Stores the manifests' policy, with attempts and failure handling in their own columns.
pub async fn set_policy(
    c: &mut AnyConnection,
    d: Dialect,
    env_id: i64,
    policy: &Policy,
) -> Res<()> {
    let json = crate::manifest::stored::compact(policy);
    sqlx::query(
        d.sql(
            "UPDATE environnements SET policy = ?, max_attempts = ?, on_failure = ? WHERE id = ?",
        ),
    )
    .bind(json)
    .bind(i64::from(policy.max_attempts))
    .bind(policy.on_failure.as_str())
    .bind(env_id)
    .execute(c)
    .await
    .map(|_| ())
}

/// Whether `version` has a `réussi` deployment in the environment (live or
/// superseded; a rolled-back one is `annulé`). Costs one index lookup.
pub async fn has_succeeded(
    c: &mut AnyConnection,
    d: Dialect,
    env: Env,
    version: &str,
) -> Res<bool> {
    let n: i64 = sqlx::query_scalar(d.sql(
        "SELECT COUNT(*) FROM deploiements d \
         JOIN releases r ON r.id = d.id_release \
         JOIN environnements e ON e.id = d.id_env \
         WHERE r.version = ? AND e.nom = ? AND d.etat = 'réussi'",
    ))
    .bind(version.to_string())
    .bind(env.as_str())
    .fetch_one(c)
    .await?;
    Ok(n > 0)
}

/// version → tag of the given versions that exist.
pub async fn release_tags(
    c: &mut AnyConnection,
    d: Dialect,
    versions: &[&str],
) -> Res<std::collections::BTreeMap<String, String>> {
    if versions.is_empty() {
        return Ok(Default::default());
    }
    let marks = vec!["?"; versions.len()].join(", ");
    let sql = d.sql(&format!(
        "SELECT version, tag_git FROM releases WHERE version IN ({marks})"
    ));
    let mut q = sqlx::query(sql);
    for v in versions {
        q = q.bind(v.to_string());
    }
    let rows = q.fetch_all(c).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("version")?, r.try_get("tag_git")?)))
        .collect()
}

/// Serialises writers of one environment on PostgreSQL and MySQL. SQLite's
/// `BEGIN IMMEDIATE` has already done it for the whole database.
pub async fn lock_env(c: &mut AnyConnection, d: Dialect, env_id: i64) -> Res<()> {
    if d.locks_rows() {
        sqlx::query(d.sql("SELECT id FROM environnements WHERE id = ? FOR UPDATE"))
            .bind(env_id)
            .fetch_one(c)
            .await?;
    }
    Ok(())
}

/// The next fencing token of the environment. Claims in one environment are
/// serialised by its lock, so tokens also order its deployments by start.
pub async fn next_token(c: &mut AnyConnection, d: Dialect, env_id: i64) -> Res<i64> {
    sqlx::query(d.sql("UPDATE environnements SET fencing_token = fencing_token + 1 WHERE id = ?"))
        .bind(env_id)
        .execute(&mut *c)
        .await?;
    sqlx::query_scalar(d.sql("SELECT fencing_token FROM environnements WHERE id = ?"))
        .bind(env_id)
        .fetch_one(c)
        .await
}

pub async fn set_pin(
    c: &mut AnyConnection,
    d: Dialect,
    env_id: i64,
    release_id: i64,
    blocks_release_id: i64,
) -> Res<()> {
    sqlx::query(d.sql(
        "UPDATE environnements SET pinned_release_id = ?, pin_blocks_release_id = ?, \
         pinned_at = {now} WHERE id = ?",
    ))
    .bind(release_id)
    .bind(blocks_release_id)
    .bind(env_id)
    .execute(c)
    .await
    .map(|_| ())
}

pub async fn clear_pin(c: &mut AnyConnection, d: Dialect, env_id: i64) -> Res<bool> {
    let done = sqlx::query(d.sql(
        "UPDATE environnements SET pinned_release_id = NULL, pin_blocks_release_id = NULL, \
         pinned_at = NULL WHERE id = ? AND pinned_release_id IS NOT NULL",
    ))
    .bind(env_id)
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Holds `release_id` in the environment (replacing any other hold: a hold is
/// about the release the manifests declare there).
pub async fn set_hold(
    c: &mut AnyConnection,
    d: Dialect,
    env_id: i64,
    release_id: i64,
    deployment_id: i64,
    reason: &str,
) -> Res<()> {
    sqlx::query(d.sql(
        "UPDATE environnements SET held_release_id = ?, held_deployment_id = ?, \
         held_reason = ?, held_at = {now} WHERE id = ?",
    ))
    .bind(release_id)
    .bind(deployment_id)
    .bind(reason.to_string())
    .bind(env_id)
    .execute(c)
    .await
    .map(|_| ())
}

/// Lifts the environment's hold (only if it holds `release`, when given);
/// false when there was none.
pub async fn clear_hold(
    c: &mut AnyConnection,
    d: Dialect,
    env_id: i64,
    release: Option<i64>,
) -> Res<bool> {
    let done = sqlx::query(d.sql(
        "UPDATE environnements SET held_release_id = NULL, held_deployment_id = NULL, \
         held_reason = NULL, held_at = NULL WHERE id = ? AND held_release_id IS NOT NULL \
         AND (? IS NULL OR held_release_id = ?)",
    ))
    .bind(env_id)
    .bind(release)
    .bind(release)
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

// ---------------------------------------------------------------- watch leader

/// Who leads the watchers of this ledger (DESIGN §11).
#[derive(Debug, Clone, Serialize)]
pub struct Leader {
    pub holder: String,
    pub since: Option<Utc>,
    pub expires_at: Option<Utc>,
    /// Its lease has expired: the next watcher to look takes over.
    pub expired: bool,
}

/// Takes the watch leadership for `holder` when nobody holds it or its lease
/// expired: the new fencing token, or `None` when another watcher leads.
pub async fn take_leadership(
    c: &mut AnyConnection,
    d: Dialect,
    holder: &str,
    ttl_ms: i64,
) -> Res<Option<i64>> {
    let took = sqlx::query(d.sql(
        "UPDATE watch_leader SET holder = ?, token = token + 1, since = {now}, \
         expires_at = {now+ms} \
         WHERE id = 1 AND (holder IS NULL OR expires_at IS NULL OR expires_at < {now})",
    ))
    .bind(holder.to_string())
    .bind(ttl_ms)
    .execute(&mut *c)
    .await?;
    if took.rows_affected() != 1 {
        return Ok(None);
    }
    let token: i64 = sqlx::query_scalar(d.sql("SELECT token FROM watch_leader WHERE id = 1"))
        .fetch_one(c)
        .await?;
    Ok(Some(token))
}

/// Renews the leadership whose fencing token is `token`: false when another
/// watcher has taken it since.
pub async fn renew_leadership(
    c: &mut AnyConnection,
    d: Dialect,
    token: i64,
    ttl_ms: i64,
) -> Res<bool> {
    let done = sqlx::query(
        d.sql("UPDATE watch_leader SET expires_at = {now+ms} WHERE id = 1 AND token = ?"),
    )
    .bind(ttl_ms)
    .bind(token)
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives the leadership up (a watcher that stops): a standby takes over at once.
pub async fn release_leadership(c: &mut AnyConnection, d: Dialect, token: i64) -> Res<()> {
    sqlx::query(
        d.sql(
            "UPDATE watch_leader SET holder = NULL, expires_at = NULL WHERE id = 1 AND token = ?",
        ),
    )
    .bind(token)
    .execute(c)
    .await
    .map(|_| ())
}

/// The ledger's random id, made once by the migration that created the table
/// (DESIGN §12): signed approvals and saved plans name it.
pub async fn ledger_id(c: &mut AnyConnection, _d: Dialect) -> Res<String> {
    sqlx::query_scalar("SELECT ledger_id FROM ledger_info WHERE id = 1")
        .fetch_one(c)
        .await
}

/// The ledger's id and the database clock (UTC, to the second), in one
/// statement: what signed statements name and are dated by.
pub async fn ledger_id_and_now(c: &mut AnyConnection, d: Dialect) -> Res<(String, Utc)> {
    let row =
        sqlx::query(d.sql("SELECT ledger_id, {now_text} AS now FROM ledger_info WHERE id = 1"))
            .fetch_one(c)
            .await?;
    Ok((row.try_get("ledger_id")?, ts(&row, "now")?))
}

/// The current leader, if any watcher leads (or led and its lease expired).
pub async fn leader(c: &mut AnyConnection, d: Dialect) -> Res<Option<Leader>> {
    let row = sqlx::query(d.sql(
        "SELECT holder, {ts:since} AS since, {ts:expires_at} AS expires_at, \
         CASE WHEN expires_at < {now} THEN 1 ELSE 0 END AS expired \
         FROM watch_leader WHERE id = 1 AND holder IS NOT NULL",
    ))
    .fetch_optional(c)
    .await?;
    row.map(|r| {
        Ok(Leader {
            holder: r.try_get("holder")?,
            since: ts_opt(&r, "since")?,
            expires_at: ts_opt(&r, "expires_at")?,
            expired: r.try_get::<i64, _>("expired")? == 1,
        })
    })
    .transpose()
}

// ---------------------------------------------------------------- deployments

const DEPLOYMENT_SELECT: &str = "SELECT d.id, d.id_release, r.version, r.tag_git, e.nom, d.id_env, d.etat, \
     {ts:d.date_deploiement} AS date_deploiement, d.attempts, d.fencing_token, d.lease_holder, \
     {ts:d.lease_expires_at} AS lease_expires_at, \
     CASE WHEN d.etat = 'en_cours' AND d.lease_expires_at < {now} THEN 1 ELSE 0 END AS lease_stale, \
     CASE WHEN d.etat <> 'en_cours' AND d.lease_expires_at >= {now} THEN 1 ELSE 0 END AS gates_held, \
     d.restores_id \
     FROM deploiements d \
     JOIN releases r ON r.id = d.id_release \
     JOIN environnements e ON e.id = d.id_env";

fn deployment(row: &AnyRow) -> Res<Deployment> {
    let etat: String = row.try_get("etat")?;
    let nom: String = row.try_get("nom")?;
    let bad = |what: &str, v: &str| sqlx::Error::Decode(format!("unknown {what} {v:?}").into());
    Ok(Deployment {
        id: row.try_get("id")?,
        release_id: row.try_get("id_release")?,
        version: row.try_get("version")?,
        tag: row.try_get("tag_git")?,
        env: Env::parse(&nom).ok_or_else(|| bad("environment", &nom))?,
        env_id: row.try_get("id_env")?,
        state: Etat::parse(&etat).ok_or_else(|| bad("state", &etat))?,
        date: ts(row, "date_deploiement")?,
        attempts: row.try_get("attempts")?,
        fencing_token: row.try_get("fencing_token")?,
        lease_holder: row.try_get("lease_holder")?,
        lease_expires_at: ts_opt(row, "lease_expires_at")?,
        lease_stale: row.try_get::<i64, _>("lease_stale")? == 1,
        gates_running: row.try_get::<i64, _>("gates_held")? == 1,
        restores_id: row.try_get("restores_id")?,
    })
}

async fn deployments(
    c: &mut AnyConnection,
    d: Dialect,
    tail: &str,
    bind: impl FnOnce(
        sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
) -> Res<Vec<Deployment>> {
    let sql = d.sql(&format!("{DEPLOYMENT_SELECT} {tail}"));
    let rows = bind(sqlx::query(sql)).fetch_all(c).await?;
    rows.iter().map(deployment).collect()
}

pub async fn deployment_by_id(
    c: &mut AnyConnection,
    d: Dialect,
    id: i64,
) -> Res<Option<Deployment>> {
    let mut found = deployments(c, d, "WHERE d.id = ?", |q| q.bind(id)).await?;
    Ok(found.pop())
}

/// The live release: the newest successful deployment (tokens order starts, and
/// one deployment runs at a time, so the highest token finished last).
pub async fn live(c: &mut AnyConnection, d: Dialect, env_id: i64) -> Res<Option<Deployment>> {
    let mut found = deployments(
        c,
        d,
        "WHERE d.id_env = ? AND d.etat = 'réussi' ORDER BY d.fencing_token DESC LIMIT 1",
        |q| q.bind(env_id),
    )
    .await?;
    Ok(found.pop())
}

/// What a rollback of `live` restores: the newest success before it of another release.
pub async fn previous_live(
    c: &mut AnyConnection,
    d: Dialect,
    live: &Deployment,
) -> Res<Option<Deployment>> {
    let mut found = deployments(
        c,
        d,
        "WHERE d.id_env = ? AND d.etat = 'réussi' AND d.fencing_token < ? AND d.id_release <> ? \
         ORDER BY d.fencing_token DESC LIMIT 1",
        |q| {
            q.bind(live.env_id)
                .bind(live.fencing_token.unwrap_or(0))
                .bind(live.release_id)
        },
    )
    .await?;
    Ok(found.pop())
}

pub async fn in_progress(
    c: &mut AnyConnection,
    d: Dialect,
    env_id: i64,
) -> Res<Option<Deployment>> {
    let mut found = deployments(c, d, "WHERE d.id_env = ? AND d.etat = 'en_cours'", |q| {
        q.bind(env_id)
    })
    .await?;
    Ok(found.pop())
}

/// Pending deployments, oldest first. Sorted here rather than in SQL: an
/// `ORDER BY d.id` tempts SQLite into walking the whole history by `(id_env, id)`
/// instead of seeking the few pending rows by `(id_env, etat)`.
pub async fn pending(c: &mut AnyConnection, d: Dialect, env_id: i64) -> Res<Vec<Deployment>> {
    let mut rows = deployments(
        c,
        d,
        "WHERE d.id_env = ? AND d.etat IN ('planifié', 'validé')",
        |q| q.bind(env_id),
    )
    .await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// What `status` shows of one environment.
pub struct Overview {
    pub env: EnvRow,
    pub live: Option<Deployment>,
    pub in_progress: Option<Deployment>,
    pub pending: Vec<Deployment>,
    pub recent: Vec<Deployment>,
}

/// The environment row with its live, running, pending and `recent` last
/// deployments, in ONE statement: each part is an index seek, the statement is
/// its own consistent snapshot on every backend, and one round trip instead of
/// six keeps `status` close to the cost of the SQL itself.
pub async fn overview(c: &mut AnyConnection, d: Dialect, env: Env, recent: u32) -> Res<Overview> {
    // No bound parameters: SQLite re-prepares a statement whose plan may depend
    // on its parameters, and preparing this one is most of what `status` costs;
    // both values are safe to inline (a closed set of names, a number). The
    // parts select ids only, so the projection is parsed once, not four times.
    let name = env.as_str();
    let env_id = format!("(SELECT id FROM environnements WHERE nom = '{name}')");
    let ids = |kind: &str, tail: &str| {
        format!(
            "SELECT '{kind}' AS part, y.id FROM (SELECT d.id FROM deploiements d \
             WHERE d.id_env = {env_id} {tail}) y"
        )
    };
    let parts = [
        ids(
            "live",
            "AND d.etat = 'réussi' ORDER BY d.fencing_token DESC LIMIT 1",
        ),
        ids("running", "AND d.etat = 'en_cours'"),
        ids("pending", "AND d.etat IN ('planifié', 'validé')"),
        ids("recent", &format!("ORDER BY d.id DESC LIMIT {recent}")),
    ]
    .join(" UNION ALL ");
    let env_select = ENV_SELECT.replace("e.nom = ?", &format!("e.nom = '{name}'"));
    let sql = format!(
        "SELECT en.*, x.part, d.id, d.id_release, r.version, r.tag_git, '{name}' AS nom, d.id_env, \
         d.etat, {{ts:d.date_deploiement}} AS date_deploiement, d.attempts, d.fencing_token, \
         d.lease_holder, {{ts:d.lease_expires_at}} AS lease_expires_at, \
         CASE WHEN d.etat = 'en_cours' AND d.lease_expires_at < {{now}} THEN 1 ELSE 0 END AS lease_stale, \
         CASE WHEN d.etat <> 'en_cours' AND d.lease_expires_at >= {{now}} THEN 1 ELSE 0 END AS gates_held, \
         d.restores_id \
         FROM ({env_select}) en \
         LEFT JOIN ({parts}) x ON 1 = 1 \
         LEFT JOIN deploiements d ON d.id = x.id \
         LEFT JOIN releases r ON r.id = d.id_release"
    );
    let rows = sqlx::query(d.sql(&sql)).fetch_all(c).await?;
    let first = rows.first().ok_or(sqlx::Error::RowNotFound)?;
    let mut out = Overview {
        env: env_from_row(first, env)?,
        live: None,
        in_progress: None,
        pending: Vec::new(),
        recent: Vec::new(),
    };
    for row in &rows {
        let Some(part) = row.try_get::<Option<String>, _>("part")? else {
            continue; // no deployment at all: the one row is the environment's
        };
        let dep = deployment(row)?;
        match part.as_str() {
            "live" => out.live = Some(dep),
            "running" => out.in_progress = Some(dep),
            "pending" => out.pending.push(dep),
            _ => out.recent.push(dep),
        }
    }
    out.pending.sort_by_key(|r| r.id);
    out.recent.sort_by_key(|r| std::cmp::Reverse(r.id));
    Ok(out)
}

pub async fn insert_deployment(
    c: &mut AnyConnection,
    d: Dialect,
    release_id: i64,
    env_id: i64,
    restores: Option<i64>,
) -> Res<i64> {
    insert(
        c,
        d,
        "INSERT INTO deploiements (id_release, id_env, etat, date_deploiement, restores_id) \
         VALUES (?, ?, 'planifié', {now}, ?)",
        |q| q.bind(release_id).bind(env_id).bind(restores),
    )
    .await
}

/// `from → to` for one row; false when the row was not in `from` any more.
pub async fn transition(
    c: &mut AnyConnection,
    d: Dialect,
    id: i64,
    from: Etat,
    to: Etat,
) -> Res<bool> {
    let done = sqlx::query(d.sql(
        "UPDATE deploiements SET etat = ?, lease_expires_at = NULL WHERE id = ? AND etat = ?",
    ))
    .bind(to.as_str())
    .bind(id)
    .bind(from.as_str())
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `planifié|validé → en_cours` with a fresh lease and fencing token.
pub async fn claim(
    c: &mut AnyConnection,
    d: Dialect,
    id: i64,
    token: i64,
    holder: &str,
    ttl_ms: i64,
) -> Res<bool> {
    let done = sqlx::query(d.sql(
        "UPDATE deploiements SET etat = 'en_cours', attempts = attempts + 1, fencing_token = ?, \
         lease_holder = ?, lease_expires_at = {now+ms}, date_deploiement = {now} \
         WHERE id = ? AND etat IN ('planifié', 'validé')",
    ))
    .bind(token)
    .bind(holder.to_string())
    .bind(ttl_ms)
    .bind(id)
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a pending deployment as having its command gates run by `holder`, for
/// `ttl_ms`: one process at a time runs them. False: another process holds it.
pub async fn hold_for_gates(
    c: &mut AnyConnection,
    d: Dialect,
    id: i64,
    holder: &str,
    ttl_ms: i64,
) -> Res<bool> {
    let done = sqlx::query(d.sql(
        "UPDATE deploiements SET lease_holder = ?, lease_expires_at = {now+ms} \
         WHERE id = ? AND etat IN ('planifié', 'validé') \
         AND (lease_expires_at IS NULL OR lease_expires_at < {now} OR lease_holder = ?)",
    ))
    .bind(holder.to_string())
    .bind(ttl_ms)
    .bind(id)
    .bind(holder.to_string())
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Extends (`Some(ttl_ms)`) or releases (`None`) a hold taken by `hold_for_gates`.
/// False: the hold was not ours any more.
pub async fn renew_gate_hold(
    c: &mut AnyConnection,
    d: Dialect,
    id: i64,
    holder: &str,
    ttl_ms: Option<i64>,
) -> Res<bool> {
    let set = match ttl_ms {
        Some(_) => "lease_expires_at = {now+ms}",
        None => "lease_expires_at = NULL, lease_holder = NULL",
    };
    let mut q = sqlx::query(d.sql(&format!(
        "UPDATE deploiements SET {set} \
         WHERE id = ? AND lease_holder = ? AND etat IN ('planifié', 'validé')"
    )));
    if let Some(ms) = ttl_ms {
        q = q.bind(ms);
    }
    let done = q.bind(id).bind(holder.to_string()).execute(c).await?;
    Ok(done.rows_affected() == 1)
}

/// Extends the lease; false means it was lost (recovered by someone else).
pub async fn heartbeat(
    c: &mut AnyConnection,
    d: Dialect,
    id: i64,
    token: i64,
    ttl_ms: i64,
) -> Res<bool> {
    let done = sqlx::query(d.sql(
        "UPDATE deploiements SET lease_expires_at = {now+ms} \
         WHERE id = ? AND fencing_token = ? AND etat = 'en_cours'",
    ))
    .bind(ttl_ms)
    .bind(id)
    .bind(token)
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `en_cours → to`, only for the holder of `token`. False: a stale holder, nothing written.
pub async fn finish(c: &mut AnyConnection, d: Dialect, id: i64, token: i64, to: Etat) -> Res<bool> {
    let done = sqlx::query(d.sql(
        "UPDATE deploiements SET etat = ?, lease_expires_at = NULL, date_deploiement = {now} \
         WHERE id = ? AND fencing_token = ? AND etat = 'en_cours'",
    ))
    .bind(to.as_str())
    .bind(id)
    .bind(token)
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

// ---------------------------------------------------------------- audit

/// Appends the row to its hash chain (DESIGN §12); its id, for the
/// notifications' outbox.
pub async fn audit(c: &mut AnyConnection, d: Dialect, a: Audit<'_>) -> Res<i64> {
    super::chain::append(c, d, a).await
}

/// One row of `audit_logs`, as read.
#[derive(Debug, Serialize)]
pub struct AuditRow {
    pub id: i64,
    #[serde(rename = "deployment_id")]
    pub deployment: Option<i64>,
    pub env: Option<String>,
    pub action: String,
    /// `etat_avant`.
    #[serde(rename = "state_before")]
    pub before: Option<String>,
    /// `etat_apres`.
    #[serde(rename = "state_after")]
    pub after: Option<String>,
    pub message: String,
    pub actor: String,
    pub date: Utc,
}

pub struct AuditFilter {
    pub deployment: Option<i64>,
    pub env: Option<Env>,
    pub since: Option<Since>,
    pub limit: i64,
}

impl AuditFilter {
    /// ` AND ...` for each filter given, in the order `bind` binds them.
    fn conditions(&self) -> String {
        let mut sql = String::new();
        if self.deployment.is_some() {
            sql.push_str(" AND a.id_deploiement = ?");
        }
        if self.env.is_some() {
            sql.push_str(" AND a.id_env = (SELECT id FROM environnements WHERE nom = ?)");
        }
        match self.since {
            Some(Since::Ago { .. }) => sql.push_str(" AND a.date_log >= {now-s}"),
            Some(Since::At(_)) => sql.push_str(" AND a.date_log >= {ts_param}"),
            None => {}
        }
        sql
    }

    fn bind<'q>(&self, mut q: AnyQuery<'q>) -> AnyQuery<'q> {
        if let Some(id) = self.deployment {
            q = q.bind(id);
        }
        if let Some(env) = self.env {
            q = q.bind(env.as_str());
        }
        match &self.since {
            Some(Since::Ago { secs }) => q.bind(*secs),
            Some(Since::At(at)) => q.bind(at.clone()),
            None => q,
        }
    }
}

/// The newest `limit` rows matching the filter, oldest first.
pub async fn audit_rows(c: &mut AnyConnection, d: Dialect, f: &AuditFilter) -> Res<Vec<AuditRow>> {
    let sql = format!(
        "SELECT a.id, a.id_deploiement, e.nom, a.action, a.etat_avant, a.etat_apres, a.message, \
         a.acteur, {{ts:a.date_log}} AS date_log \
         FROM audit_logs a LEFT JOIN environnements e ON e.id = a.id_env WHERE 1 = 1{} \
         ORDER BY a.id DESC LIMIT ?",
        f.conditions()
    );
    let rows = f
        .bind(sqlx::query(d.sql(&sql)))
        .bind(f.limit)
        .fetch_all(c)
        .await?;
    let mut out = rows.iter().map(audit_row).collect::<Res<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

/// Where `audit --follow` stands: the last place it has read in each chain.
/// A chain's rows commit in the order of their places (its counter stays
/// locked until the row commits), whatever order their ids commit in.
#[derive(Debug, Clone, Default)]
pub struct Cursor(Vec<(String, i64)>);

/// The last place of each chain, now.
pub async fn audit_heads(c: &mut AnyConnection, d: Dialect) -> Res<Cursor> {
    let rows = sqlx::query(d.sql(
        "SELECT c.chain, COALESCE((SELECT MAX(a.seq) FROM audit_logs a WHERE a.chain = c.chain), 0) \
         AS seq FROM audit_chains c ORDER BY c.chain",
    ))
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("chain")?, r.try_get("seq")?)))
        .collect::<Res<_>>()
        .map(Cursor)
}

/// The rows committed past the cursor (at most 1,000, oldest first) that
/// match the filter; the cursor moves past every row read, shown or not, so
/// that rows the filter leaves out are not read again.
pub async fn audit_after(
    c: &mut AnyConnection,
    d: Dialect,
    f: &AuditFilter,
    cursor: &mut Cursor,
) -> Res<Vec<AuditRow>> {
    if cursor.0.is_empty() {
        return Ok(Vec::new());
    }
    let places = vec!["(a.chain = ? AND a.seq > ?)"; cursor.0.len()].join(" OR ");
    let sql = format!(
        "SELECT a.id, a.id_deploiement, e.nom, a.action, a.etat_avant, a.etat_apres, a.message, \
         a.acteur, {{ts:a.date_log}} AS date_log, a.chain, a.seq, \
         CASE WHEN 1 = 1{} THEN 1 ELSE 0 END AS shown \
         FROM audit_logs a LEFT JOIN environnements e ON e.id = a.id_env \
         WHERE {places} ORDER BY a.id LIMIT 1000",
        f.conditions()
    );
    let mut q = f.bind(sqlx::query(d.sql(&sql)));
    for (chain, seq) in &cursor.0 {
        q = q.bind(chain.clone()).bind(*seq);
    }
    let rows = q.fetch_all(c).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let chain: String = r.try_get("chain")?;
        let seq: i64 = r.try_get("seq")?;
        if let Some(at) = cursor.0.iter_mut().find(|(c, _)| *c == chain) {
            at.1 = at.1.max(seq);
        }
        if r.try_get::<i64, _>("shown")? == 1 {
            out.push(audit_row(r)?);
        }
    }
    Ok(out)
}

/// An audit row read as `id, id_deploiement, nom, action, etat_avant,
/// etat_apres, message, acteur, date_log` (`{ts:…}`).
pub(super) fn audit_row(r: &AnyRow) -> Res<AuditRow> {
    Ok(AuditRow {
        id: r.try_get("id")?,
        deployment: r.try_get("id_deploiement")?,
        env: r.try_get("nom")?,
        action: r.try_get("action")?,
        before: r.try_get("etat_avant")?,
        after: r.try_get("etat_apres")?,
        message: r.try_get("message")?,
        actor: r.try_get("acteur")?,
        date: ts(r, "date_log")?,
    })
}

/// How many rows match the filter, whatever the limit: one `COUNT(*)` on the
/// same indexes the rows are read with (no join, no row read beyond the index
/// where the filter is one column).
pub async fn audit_count(c: &mut AnyConnection, d: Dialect, f: &AuditFilter) -> Res<i64> {
    let sql = format!(
        "SELECT COUNT(*) AS n FROM audit_logs a WHERE 1 = 1{}",
        f.conditions()
    );
    let row = f.bind(sqlx::query(d.sql(&sql))).fetch_one(c).await?;
    row.try_get("n")
}

// ---------------------------------------------------------------- gate results

/// One row of `gate_results`: a person's decision or a command gate's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    pub id: i64,
    #[serde(rename = "deployment_id")]
    pub deployment: i64,
    pub gate: String,
    /// `approval` or `command`.
    pub kind: String,
    /// `approved` / `rejected` for a person, `passed` / `failed` for a command.
    pub outcome: String,
    pub actor: String,
    pub message: String,
    pub date: Utc,
    /// The database user that wrote it (PostgreSQL, MariaDB; `None` on SQLite).
    pub db_user: Option<String>,
    /// Its age by the database clock, when read: what `expires` is judged on.
    #[serde(skip)]
    pub age_s: i64,
    /// The armored SSH signature `approve --sign` stored (DESIGN §12).
    pub signature: Option<String>,
    /// The statement that signature signs, as it was signed.
    pub signed_statement: Option<String>,
    /// Whether the signature verifies against the approver's declared key
    /// (`verified`, `unsigned`, `invalid`, or `unchecked` when no manifests
    /// could be read to take the keys from); `None` when the approver has no key.
    /// Set by the reader that knows the policy (history).
    pub signature_status: Option<&'static str>,
    /// Why it does not verify.
    pub signature_problem: Option<String>,
    /// What its statement is rebuilt from: its deployment's environment and release.
    #[serde(skip)]
    pub subject: Subject,
}

/// A gate result's deployment as a signed statement names it.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub env: String,
    pub version: String,
    pub tag: String,
}

/// The database clock, UTC to the second: what deploy windows are judged by.
pub async fn db_now(c: &mut AnyConnection, d: Dialect) -> Res<Utc> {
    sqlx::query_scalar(d.sql("SELECT {now_text}"))
        .fetch_one(c)
        .await
        .map(Utc::new)
}

/// The user the database server authenticated for this session; `None` on SQLite.
pub async fn db_user(c: &mut AnyConnection, d: Dialect) -> Res<Option<String>> {
    if d.0 == super::Backend::Sqlite {
        return Ok(None);
    }
    sqlx::query_scalar(d.sql("SELECT {db_user}"))
        .fetch_one(c)
        .await
}

/// Who planned each of `deployments` (the actor of its `deployment.planned`
/// row: the person the four-eyes rule keeps from approving it), in one statement.
pub async fn planners(
    c: &mut AnyConnection,
    d: Dialect,
    deployments: &[i64],
) -> Res<std::collections::BTreeMap<i64, String>> {
    if deployments.is_empty() {
        return Ok(Default::default());
    }
    let marks = vec!["?"; deployments.len()].join(", ");
    let sql = d.sql(&format!(
        "SELECT id_deploiement, acteur FROM audit_logs WHERE id IN (SELECT MIN(id) \
         FROM audit_logs WHERE id_deploiement IN ({marks}) AND action = 'deployment.planned' \
         GROUP BY id_deploiement)"
    ));
    let mut q = sqlx::query(sql);
    for id in deployments {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(c).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id_deploiement")?, r.try_get("acteur")?)))
        .collect()
}

/// A gate result about to be written.
pub struct NewGateResult<'a> {
    pub deployment: i64,
    pub gate: &'a str,
    pub kind: &'static str,
    pub outcome: &'static str,
    pub actor: &'a str,
    pub message: &'a str,
    /// The armored signature and the statement it signs (`approve --sign`).
    pub signed: Option<(&'a str, &'a str)>,
}

pub async fn insert_gate_result(
    c: &mut AnyConnection,
    d: Dialect,
    g: &NewGateResult<'_>,
) -> Res<i64> {
    insert(
        c,
        d,
        "INSERT INTO gate_results (id_deploiement, gate, kind, outcome, acteur, message, \
         date_resultat, db_user, signature, signed_statement) \
         VALUES (?, ?, ?, ?, ?, ?, {now}, {db_user}, ?, ?)",
        |q| {
            q.bind(g.deployment)
                .bind(g.gate.to_string())
                .bind(g.kind)
                .bind(g.outcome)
                .bind(g.actor.to_string())
                .bind(crate::model::fit_message(g.message).into_owned())
                .bind(g.signed.map(|(s, _)| s.to_string()))
                .bind(g.signed.map(|(_, t)| t.to_string()))
        },
    )
    .await
}

/// Each row with what a signed statement names: its deployment's environment
/// and release (joined, so that no row costs a statement of its own).
const GATE_SELECT: &str = "SELECT g.id, g.id_deploiement, g.gate, g.kind, g.outcome, g.acteur, \
     g.message, {ts:g.date_resultat} AS date_resultat, g.db_user, \
     {age_s:g.date_resultat} AS age_s, g.signature, g.signed_statement, \
     gr.version AS subject_version, gr.tag_git AS subject_tag, ge.nom AS subject_env \
     FROM gate_results g JOIN deploiements gd ON gd.id = g.id_deploiement \
     JOIN releases gr ON gr.id = gd.id_release JOIN environnements ge ON ge.id = gd.id_env";

fn gate_result(row: &AnyRow) -> Res<GateResult> {
    Ok(GateResult {
        id: row.try_get("id")?,
        deployment: row.try_get("id_deploiement")?,
        gate: row.try_get("gate")?,
        kind: row.try_get("kind")?,
        outcome: row.try_get("outcome")?,
        actor: row.try_get("acteur")?,
        message: row.try_get("message")?,
        date: ts(row, "date_resultat")?,
        db_user: row.try_get("db_user")?,
        age_s: row.try_get("age_s")?,
        signature: row.try_get("signature")?,
        signed_statement: row.try_get("signed_statement")?,
        signature_status: None,
        signature_problem: None,
        subject: Subject {
            env: row.try_get("subject_env")?,
            version: row.try_get("subject_version")?,
            tag: row.try_get("subject_tag")?,
        },
    })
}

/// The gate results of the given deployments, oldest first, in one statement.
pub async fn gate_results(
    c: &mut AnyConnection,
    d: Dialect,
    deployments: &[i64],
) -> Res<Vec<GateResult>> {
    if deployments.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; deployments.len()].join(", ");
    let sql = d.sql(&format!(
        "{GATE_SELECT} WHERE g.id_deploiement IN ({marks}) ORDER BY g.id"
    ));
    let mut q = sqlx::query(sql);
    for id in deployments {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(c).await?;
    rows.iter().map(gate_result).collect()
}

/// The id of the newest approval or rejection (0 when there is none): watch
/// mode polls it to react to people's decisions, not to its own command gates.
pub async fn last_decision(c: &mut AnyConnection, d: Dialect) -> Res<i64> {
    let id: Option<i64> =
        sqlx::query_scalar(d.sql("SELECT MAX(id) FROM gate_results WHERE kind = 'approval'"))
            .fetch_one(c)
            .await?;
    Ok(id.unwrap_or(0))
}

/// The newest `limit` deployments of an environment, newest first.
pub async fn history(
    c: &mut AnyConnection,
    d: Dialect,
    env_id: i64,
    limit: i64,
) -> Res<Vec<Deployment>> {
    deployments(c, d, "WHERE d.id_env = ? ORDER BY d.id DESC LIMIT ?", |q| {
        q.bind(env_id).bind(limit)
    })
    .await
}

/// The gate results of an environment's deployments from `first_id` on, oldest first.
pub async fn env_gate_results(
    c: &mut AnyConnection,
    d: Dialect,
    env_id: i64,
    first_id: i64,
) -> Res<Vec<GateResult>> {
    let sql = d.sql(&format!(
        "{GATE_SELECT} WHERE gd.id_env = ? AND g.id_deploiement >= ? ORDER BY g.id"
    ));
    let rows = sqlx::query(sql)
        .bind(env_id)
        .bind(first_id)
        .fetch_all(c)
        .await?;
    rows.iter().map(gate_result).collect()
}

// ---------------------------------------------------------------- helpers

pub(super) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Runs an INSERT and returns the new row's id, by `RETURNING` where the
/// dialect has it and by the driver's last insert id on MySQL.
pub(super) async fn insert(
    c: &mut AnyConnection,
    d: Dialect,
    sql: &str,
    bind: impl for<'q> FnOnce(AnyQuery<'q>) -> AnyQuery<'q>,
) -> Res<i64> {
    if d.returns_id() {
        let row = bind(sqlx::query(d.sql(&format!("{sql} RETURNING id"))))
            .fetch_one(c)
            .await?;
        row.try_get(0)
    } else {
        let done = bind(sqlx::query(d.sql(sql))).execute(c).await?;
        done.last_insert_id()
            .ok_or_else(|| sqlx::Error::Protocol("the server returned no insert id".into()))
    }
}

// ---------------------------------------------------------------- plan watermarks

/// The newest audit row of an environment (`None`: of the rows that concern
/// no environment: releases created, webhooks stored); 0 when there is none.
/// Every change reconcile plans from is audited in the same transaction as the
/// change, so a saved plan that records these ids knows whether anything moved.
pub async fn audit_watermark(c: &mut AnyConnection, d: Dialect, env: Option<Env>) -> Res<i64> {
    let id: Option<i64> = match env {
        Some(env) => {
            sqlx::query_scalar(d.sql(
                "SELECT MAX(id) FROM audit_logs \
                 WHERE id_env = (SELECT id FROM environnements WHERE nom = ?)",
            ))
            .bind(env.as_str())
            .fetch_one(c)
            .await?
        }
        None => {
            sqlx::query_scalar(d.sql("SELECT MAX(id) FROM audit_logs WHERE id_env IS NULL"))
                .fetch_one(c)
                .await?
        }
    };
    Ok(id.unwrap_or(0))
}

/// The first audit row after `after` (of `env`, or of no environment), and
/// how many came after it: what a stale plan names as what moved.
pub async fn first_audit_after(
    c: &mut AnyConnection,
    d: Dialect,
    env: Option<Env>,
    after: i64,
) -> Res<Option<(AuditRow, i64)>> {
    let which = match env {
        Some(_) => "a.id_env = (SELECT id FROM environnements WHERE nom = ?)",
        None => "a.id_env IS NULL",
    };
    let sql = format!(
        "SELECT a.id, a.id_deploiement, e.nom, a.action, a.etat_avant, a.etat_apres, a.message, \
         a.acteur, {{ts:a.date_log}} AS date_log \
         FROM audit_logs a LEFT JOIN environnements e ON e.id = a.id_env \
         WHERE {which} AND a.id > ? ORDER BY a.id LIMIT 1"
    );
    let mut q = sqlx::query(d.sql(&sql));
    if let Some(env) = env {
        q = q.bind(env.as_str());
    }
    let Some(row) = q.bind(after).fetch_optional(&mut *c).await? else {
        return Ok(None);
    };
    let first = audit_row(&row)?;
    let count_sql = format!("SELECT COUNT(*) AS n FROM audit_logs a WHERE {which} AND a.id > ?");
    let mut q = sqlx::query(d.sql(&count_sql));
    if let Some(env) = env {
        q = q.bind(env.as_str());
    }
    let n: i64 = q.bind(after).fetch_one(c).await?.try_get("n")?;
    Ok(Some((first, n)))
}
