//! The notifications' tables (DESIGN §11): the webhooks reconcile stored, and
//! the outbox each audited change fills in its own transaction and the
//! watcher drains. Queries only; what they mean is in `crate::notify`.

use super::Dialect;
use super::ledger::{AnyQuery, AuditRow, audit_row, insert};
use crate::notify::Target;
use sqlx::{AnyConnection, Row};

type Res<T> = std::result::Result<T, sqlx::Error>;

/// Queues the audit row `audit_id` for every active target that wants
/// `action`: one statement, whatever the number of targets (none: it inserts
/// nothing, after a look at an empty table).
pub async fn enqueue(c: &mut AnyConnection, d: Dialect, audit_id: i64, action: &str) -> Res<()> {
    sqlx::query(d.sql(
        "INSERT INTO notification_outbox (target_id, env_id, audit_id, event, created_at, next_attempt_at) \
         SELECT t.id, a.id_env, a.id, a.action, {now}, {now} \
         FROM notification_targets t JOIN audit_logs a ON a.id = ? \
         WHERE t.retired_at IS NULL AND (t.events IS NULL OR t.events LIKE ?)",
    ))
    .bind(audit_id)
    .bind(format!("%,{action},%"))
    .execute(c)
    .await
    .map(|_| ())
}

/// `events` as stored: ",a,b," (so that `LIKE '%,a,%'` matches one name
/// whole), or NULL for all.
fn events_column(t: &Target) -> Option<String> {
    t.events.as_ref().map(|e| format!(",{},", e.join(",")))
}

/// The active targets, in the order they were stored.
pub async fn targets(c: &mut AnyConnection, d: Dialect) -> Res<Vec<(i64, Target)>> {
    let rows = sqlx::query(d.sql(
        "SELECT id, url, events, secret_env FROM notification_targets \
         WHERE retired_at IS NULL ORDER BY id",
    ))
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            let events: Option<String> = r.try_get("events")?;
            Ok((
                r.try_get("id")?,
                Target {
                    url: r.try_get("url")?,
                    events: events.map(|e| {
                        e.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    }),
                    secret_env: r.try_get("secret_env")?,
                },
            ))
        })
        .collect()
}

/// Makes the active targets `wanted`: a target that stays keeps its id (and its
/// queues' order); one that goes is retired, its queued rows still delivered.
/// Whether anything changed.
pub async fn replace_targets(c: &mut AnyConnection, d: Dialect, wanted: &[Target]) -> Res<bool> {
    // Two reconcilers storing a changed list at once: the second waits on the
    // ledger's one global row (its watch leadership row, locked by a no-op
    // update; SQLite's write transaction is serialised already), then reads
    // what the first stored, so no target is inserted twice.
    sqlx::query(d.sql("UPDATE watch_leader SET token = token WHERE id = 1"))
        .execute(&mut *c)
        .await?;
    let current = targets(c, d).await?;
    let mut changed = false;
    for (id, t) in &current {
        if !wanted.contains(t) {
            sqlx::query(d.sql("UPDATE notification_targets SET retired_at = {now} WHERE id = ?"))
                .bind(*id)
                .execute(&mut *c)
                .await?;
            changed = true;
        }
    }
    for t in wanted {
        if !current.iter().any(|(_, c)| c == t) {
            insert(
                c,
                d,
                "INSERT INTO notification_targets (url, events, secret_env, created_at) \
                 VALUES (?, ?, ?, {now})",
                |q: AnyQuery<'_>| {
                    q.bind(t.url.clone())
                        .bind(events_column(t))
                        .bind(t.secret_env.clone())
                },
            )
            .await?;
            changed = true;
        }
    }
    Ok(changed)
}

/// An outbox row ready to be sent, with its audit row and its target.
#[derive(Debug)]
pub struct Due {
    pub id: i64,
    pub target_id: i64,
    pub url: String,
    pub secret_env: Option<String>,
    pub attempts: i64,
    /// Seconds since it was queued, by the database clock.
    pub age_s: i64,
    /// The audit row it tells about; its JSON is the payload's `event`.
    pub event: AuditRow,
}

/// The head of each (target, environment) queue, when it is due: a row waits
/// while an earlier one of its queue is neither delivered nor given up.
pub async fn due(c: &mut AnyConnection, d: Dialect, limit: i64) -> Res<Vec<Due>> {
    let rows = sqlx::query(d.sql(
        "SELECT o.id AS outbox_id, o.target_id, t.url, t.secret_env, o.attempts, \
                {age_s:o.created_at} AS age_s, a.id, a.action, e.nom, \
                a.id_deploiement, a.etat_avant, a.etat_apres, a.message, a.acteur, \
                {ts:a.date_log} AS date_log \
         FROM notification_outbox o \
         JOIN notification_targets t ON t.id = o.target_id \
         JOIN audit_logs a ON a.id = o.audit_id \
         LEFT JOIN environnements e ON e.id = o.env_id \
         WHERE o.delivered_at IS NULL AND o.gave_up_at IS NULL AND o.next_attempt_at <= {now} \
           AND NOT EXISTS (SELECT 1 FROM notification_outbox p \
                WHERE p.target_id = o.target_id \
                  AND (p.env_id = o.env_id OR (p.env_id IS NULL AND o.env_id IS NULL)) \
                  AND p.id < o.id AND p.delivered_at IS NULL AND p.gave_up_at IS NULL) \
         ORDER BY o.id LIMIT ?",
    ))
    .bind(limit)
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Due {
                id: r.try_get("outbox_id")?,
                target_id: r.try_get("target_id")?,
                url: r.try_get("url")?,
                secret_env: r.try_get("secret_env")?,
                attempts: r.try_get("attempts")?,
                age_s: r.try_get("age_s")?,
                event: audit_row(r)?,
            })
        })
        .collect()
}

/// Takes a due row for `hold_ms` (the longest a try can take): another
/// deliverer skips it meanwhile. False: someone else took it first.
pub async fn claim(c: &mut AnyConnection, d: Dialect, id: i64, hold_ms: i64) -> Res<bool> {
    let done = sqlx::query(d.sql(
        "UPDATE notification_outbox SET next_attempt_at = {now+ms} \
         WHERE id = ? AND next_attempt_at <= {now} AND delivered_at IS NULL AND gave_up_at IS NULL",
    ))
    .bind(hold_ms)
    .bind(id)
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How one attempt ended.
pub enum Attempt<'a> {
    Delivered {
        status: u16,
    },
    Retry {
        status: Option<u16>,
        error: &'a str,
        in_ms: i64,
    },
    GiveUp {
        status: Option<u16>,
        error: &'a str,
    },
}

pub async fn record(c: &mut AnyConnection, d: Dialect, id: i64, a: Attempt<'_>) -> Res<()> {
    let status = |s: Option<u16>| s.map(i64::from);
    let q = match a {
        Attempt::Delivered { status: s } => sqlx::query(d.sql(
            "UPDATE notification_outbox SET attempts = attempts + 1, delivered_at = {now}, \
             response_status = ?, last_error = NULL WHERE id = ?",
        ))
        .bind(Some(i64::from(s))),
        Attempt::Retry {
            status: s,
            error,
            in_ms,
        } => sqlx::query(d.sql(
            "UPDATE notification_outbox SET attempts = attempts + 1, next_attempt_at = {now+ms}, \
             response_status = ?, last_error = ? WHERE id = ?",
        ))
        .bind(in_ms)
        .bind(status(s))
        .bind(crate::model::fit_message(error).into_owned()),
        Attempt::GiveUp { status: s, error } => sqlx::query(d.sql(
            "UPDATE notification_outbox SET attempts = attempts + 1, gave_up_at = {now}, \
             response_status = ?, last_error = ? WHERE id = ?",
        ))
        .bind(status(s))
        .bind(crate::model::fit_message(error).into_owned()),
    };
    q.bind(id).execute(c).await.map(|_| ())
}

/// The outbox at a glance, for `status`: one statement on the pending index.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Backlog {
    /// Neither delivered nor given up.
    pub pending: i64,
    /// Seconds since the oldest pending row was queued.
    pub oldest_pending_age_s: Option<i64>,
    pub given_up: i64,
}

pub async fn backlog(c: &mut AnyConnection, d: Dialect) -> Res<Backlog> {
    let r = sqlx::query(d.sql(
        "SELECT COUNT(CASE WHEN gave_up_at IS NULL THEN 1 END) AS pending, \
                {age_s:MIN(CASE WHEN gave_up_at IS NULL THEN created_at END)} AS oldest, \
                COUNT(gave_up_at) AS given_up \
         FROM notification_outbox WHERE delivered_at IS NULL",
    ))
    .fetch_one(c)
    .await?;
    Ok(Backlog {
        pending: r.try_get("pending")?,
        oldest_pending_age_s: r.try_get("oldest")?,
        given_up: r.try_get("given_up")?,
    })
}

/// Whether the deployment has already announced that it waits for approvals.
pub async fn has_waited(c: &mut AnyConnection, d: Dialect, deployment: i64) -> Res<bool> {
    let row = sqlx::query(d.sql(
        "SELECT 1 FROM audit_logs WHERE id_deploiement = ? AND action = 'gate.waiting' LIMIT 1",
    ))
    .bind(deployment)
    .fetch_optional(c)
    .await?;
    Ok(row.is_some())
}
