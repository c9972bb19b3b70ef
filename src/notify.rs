//! Notifications (DESIGN §11): webhooks the manifests declare, told about
//! audited events through an outbox that each change fills in its own
//! transaction, and drained here in order, signed, retried, never duplicated
//! but by the same `Idempotency-Key`.

use crate::error::{DbContext, Error, Result};
use crate::store::Store;
use crate::store::outbox::{self, Attempt, Due};
use serde::Serialize;
use std::time::Duration;

/// Every audit action, the names `events:` may list.
pub const EVENTS: &[&str] = &[
    "deployment.planned",
    "deployment.validated",
    "deployment.started",
    "deployment.succeeded",
    "deployment.failed",
    "deployment.rejected",
    "deployment.cancelled",
    "deployment.superseded",
    "deployment.rolled_back",
    "verification.passed",
    "verification.failed",
    "rollback_command.succeeded",
    "rollback_command.failed",
    "hold.set",
    "hold.lifted",
    "pin.set",
    "pin.lifted",
    "window.overridden",
    "gate.waiting",
    "gate.approved",
    "gate.rejected",
    "gate.passed",
    "gate.failed",
    "lease.expired",
    "policy.updated",
    "notifications.updated",
    "release.created",
];

/// One webhook, as checked from the manifests and as stored by reconcile.
/// Not `Serialize`: its URL may hold a secret; print [`Target::shown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    /// `None`: every event.
    pub events: Option<Vec<String>>,
    pub secret_env: Option<String>,
}

impl Target {
    /// The URL fit to be printed.
    pub fn shown(&self) -> String {
        shown_url(&self.url)
    }
}

/// A webhook URL fit to be printed (see `store::url::redact_webhook`); one that
/// does not parse is not shown at all.
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => crate::store::url::redact_webhook(&u),
        Err(_) => "(a URL that does not parse)".into(),
    }
}

/// Checks one `notifications:` entry. `Err((key under the entry, message, hint))`.
pub fn check(
    n: &crate::manifest::schema::Notification,
) -> std::result::Result<Target, (String, String, String)> {
    let err = |k: &str, m: String, h: &str| (k.to_string(), m, h.to_string());
    let url_hint = "write the webhook's full URL, e.g. https://hooks.example.com/shipctl";
    if n.url.len() > 2000 {
        return Err(err(
            "url",
            format!("the URL is {} bytes long; at most 2000", n.url.len()),
            url_hint,
        ));
    }
    let url = url::Url::parse(&n.url)
        .map_err(|e| err("url", format!("the URL does not parse: {e}"), url_hint))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err(
            "url",
            format!("the URL's scheme is {:?}; use http or https", url.scheme()),
            url_hint,
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(err("url", "the URL has no host".into(), url_hint));
    }
    let events = match &n.events {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(err(
                "events",
                "the list is empty: nothing would be sent".into(),
                "list the events to send, or remove events: to send them all",
            ));
        }
        Some(list) => {
            let mut seen: Vec<String> = Vec::new();
            for (i, e) in list.iter().enumerate() {
                if !EVENTS.contains(&e.as_str()) {
                    return Err(err(
                        &format!("events[{i}]"),
                        format!("unknown event {:?}", crate::manifest::words::cut(e)),
                        &format!("use one of: {}", EVENTS.join(", ")),
                    ));
                }
                if seen.contains(e) {
                    return Err(err(
                        &format!("events[{i}]"),
                        format!("{e} is listed twice"),
                        "list each event once",
                    ));
                }
                seen.push(e.clone());
            }
            Some(seen)
        }
    };
    if let Some(name) = &n.secret_env {
        let valid = !name.is_empty()
            && name.len() <= 255
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(err(
                "secret_env",
                format!(
                    "{:?} is not an environment variable name",
                    crate::manifest::words::cut(name)
                ),
                "name the variable that holds the signing key, e.g. SHIPCTL_WEBHOOK_SECRET \
                 (letters, digits and _, not starting with a digit)",
            ));
        }
    }
    Ok(Target {
        url: n.url.clone(),
        events,
        secret_env: n.secret_env.clone(),
    })
}

/// The audit message of a change of targets, URLs redacted.
pub fn describe(targets: &[Target]) -> String {
    if targets.is_empty() {
        return "notifications: none".into();
    }
    let each: Vec<String> = targets
        .iter()
        .map(|t| {
            let events = match &t.events {
                Some(e) => e.join(", "),
                None => "all events".into(),
            };
            let signed = if t.secret_env.is_some() {
                ", signed"
            } else {
                ""
            };
            format!("{} ({events}{signed})", t.shown())
        })
        .collect();
    format!("notifications: {}", each.join("; "))
}

/// How a webhook is called; the knobs are fields so that tests can shorten them.
pub struct Deliverer {
    client: reqwest::Client,
    /// Per request: connection, headers and body.
    pub timeout: Duration,
    /// After this long since an event was queued, a failed try gives up.
    pub horizon: Duration,
    /// The first retry's delay, doubled at each failure up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// At most this many tries per `deliver_due` call.
    pub batch: i64,
    /// The value of a `secret_env` variable: the process's environment, read
    /// at each delivery (so a rotated secret needs no restart).
    pub secret: fn(&str) -> Option<String>,
}

fn from_environment(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|k| !k.is_empty())
}

pub const TIMEOUT: Duration = Duration::from_secs(10);
pub const HORIZON: Duration = Duration::from_secs(24 * 3600);

impl Deliverer {
    pub fn new() -> Result<Deliverer> {
        let tls = crate::verify::http::tls_config()
            .map_err(|e| Error::input(format!("cannot set up TLS for notifications: {e}")))?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("shipctl/", env!("CARGO_PKG_VERSION")))
            // A redirect is a receiver's mistake: reported, not followed (the
            // body would go to a URL nobody declared).
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| {
                Error::input(format!(
                    "cannot set up the HTTP client for notifications: {}",
                    e.without_url()
                ))
            })?;
        Ok(Deliverer {
            client,
            timeout: TIMEOUT,
            horizon: HORIZON,
            first_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(600),
            batch: 100,
            secret: from_environment,
        })
    }

    /// The delay before try `n + 1`, after `n` failed tries (n ≥ 1).
    pub fn backoff(&self, failed: i64) -> Duration {
        let shift = (failed.max(1) - 1).min(20) as u32;
        self.first_backoff
            .saturating_mul(1 << shift)
            .min(self.max_backoff)
    }
}

/// What one [`deliver_due`] call did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    pub delivered: u64,
    /// Failed tries that will be tried again.
    pub retried: u64,
    pub given_up: u64,
}

/// The body POSTed: Slack-style `text`, and the audit row.
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    pub text: String,
    pub event: &'a crate::store::ledger::AuditRow,
}

/// One readable line: "prod: release 1.2 is live in prod, ran 3s (deployment 7, by alice)".
pub fn text(e: &crate::store::ledger::AuditRow) -> String {
    let first = e.message.lines().next().unwrap_or("");
    let first = crate::model::fit_chars(first, 300);
    let line = match &e.env {
        Some(env) if !first.starts_with(&format!("{env}:")) => format!("{env}: {first}"),
        _ => first,
    };
    match e.deployment {
        Some(id) => format!("{line} (deployment {id}, by {})", e.actor),
        None => format!("{line} (by {})", e.actor),
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), body);
    let mut out = String::from("sha256=");
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The `Idempotency-Key` of an outbox row: the same on every try.
pub fn idempotency_key(row: &Due) -> String {
    format!("shipctl-{}-{}", row.event.id, row.target_id)
}

/// Sends what is due: the head of each (target, environment) queue, again and
/// again while heads get delivered, at most `deliverer.batch` tries. Each try
/// is recorded on its row (attempts, status, error, delivered or the next
/// try's time, or given up once `horizon` has passed since it was queued).
/// Safe to run from several processes: a row is claimed before it is sent.
pub async fn deliver_due(store: &mut Store, deliverer: &Deliverer) -> Result<DeliveryReport> {
    let d = store.d;
    let mut report = DeliveryReport::default();
    let mut tries = 0;
    loop {
        let due = outbox::due(store.conn(), d, deliverer.batch - tries)
            .await
            .db("reading the notifications' outbox")?;
        let mut progress = false;
        for row in due {
            if tries >= deliverer.batch {
                return Ok(report);
            }
            let hold = deliverer.timeout + Duration::from_secs(5);
            if !outbox::claim(store.conn(), d, row.id, hold.as_millis() as i64)
                .await
                .db("claiming a notification")?
            {
                continue;
            }
            tries += 1;
            let attempt = match send(deliverer, &row).await {
                Ok(status) => {
                    report.delivered += 1;
                    progress = true;
                    Attempt::Delivered { status }
                }
                Err((status, error)) => {
                    let why = if status.is_some_and(refused_for_good) {
                        Some(format!("refused for good, not retried: {error}"))
                    } else if row.age_s >= deliverer.horizon.as_secs() as i64 {
                        Some(format!(
                            "given up after {}: {error}",
                            crate::duration::format(deliverer.horizon)
                        ))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        report.given_up += 1;
                        // The next event of its queue may go now.
                        progress = true;
                        outbox::record(
                            store.conn(),
                            d,
                            row.id,
                            Attempt::GiveUp {
                                status,
                                error: &why,
                            },
                        )
                        .await
                        .db("recording a notification")?;
                        continue;
                    }
                    report.retried += 1;
                    outbox::record(
                        store.conn(),
                        d,
                        row.id,
                        Attempt::Retry {
                            status,
                            error: &error,
                            in_ms: deliverer.backoff(row.attempts + 1).as_millis() as i64,
                        },
                    )
                    .await
                    .db("recording a notification")?;
                    continue;
                }
            };
            outbox::record(store.conn(), d, row.id, attempt)
                .await
                .db("recording a notification")?;
        }
        if !progress || tries >= deliverer.batch {
            return Ok(report);
        }
    }
}

/// A 4xx answer refuses the request itself (bad body, no such hook, hook
/// gone, not allowed): the same request will be refused again, and retrying
/// it for hours would hold back every later event of its environment. Except
/// 408 (timeout), 425 (too early) and 429 (too many requests), which ask for
/// a later try. 5xx and no answer at all are retried.
pub fn refused_for_good(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 408 | 425 | 429)
}

/// One POST. Ok(status) on 2xx; Err((status, message)) otherwise. Messages
/// never hold the URL (reqwest's errors do: it is taken out).
async fn send(deliverer: &Deliverer, row: &Due) -> std::result::Result<u16, (Option<u16>, String)> {
    let body = serde_json::to_vec(&Payload {
        text: text(&row.event),
        event: &row.event,
    })
    .map_err(|e| (None, format!("cannot write the body: {e}")))?;
    let mut req = deliverer
        .client
        .post(&row.url)
        .timeout(deliverer.timeout)
        .header("content-type", "application/json")
        .header("idempotency-key", idempotency_key(row));
    if let Some(name) = &row.secret_env {
        // Never sent unsigned when a secret is declared.
        let key = (deliverer.secret)(name).ok_or_else(|| {
            (
                None,
                format!("{name} is not set in the watcher's environment: not sent unsigned"),
            )
        })?;
        req = req.header("x-shipctl-signature", signature(key.as_bytes(), &body));
    }
    let answer = req.body(body).send().await.map_err(|e| {
        let e = e.without_url();
        let what = if e.is_timeout() {
            format!(
                "no answer within {}",
                crate::duration::format(deliverer.timeout)
            )
        } else {
            let mut m = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                m.push_str(": ");
                m.push_str(&s.to_string());
                src = s.source();
            }
            m
        };
        (None, what)
    })?;
    let status = answer.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err((
            Some(status.as_u16()),
            format!("the receiver answered {status}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Limits, url::DbUrl};

    #[test]
    fn webhook_urls_are_shown_without_their_secrets() {
        for (url, shown) in [
            (
                "https://hooks.slack.com/services/T0/B0/XYZ",
                "https://hooks.slack.com/services/***",
            ),
            (
                "https://u:pw@hooks.example.com:8443/shipctl?token=abc&x",
                "https://***@hooks.example.com:8443/shipctl?token=***&x",
            ),
            ("http://127.0.0.1:9/", "http://127.0.0.1:9/"),
            ("nonsense", "(a URL that does not parse)"),
        ] {
            assert_eq!(shown_url(url), shown, "{url}");
        }
    }

    #[test]
    fn only_a_final_refusal_is_not_retried() {
        for final_ in [400, 401, 403, 404, 410, 413, 422] {
            assert!(refused_for_good(final_), "{final_}");
        }
        for later in [408, 425, 429, 500, 502, 503, 504, 301, 200] {
            assert!(!refused_for_good(later), "{later}");
        }
    }

    #[test]
    fn back_off_doubles_up_to_its_cap() {
        let d = Deliverer::new().expect("client");
        let s: Vec<u64> = (1..=10).map(|n| d.backoff(n).as_secs()).collect();
        assert_eq!(s, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
    }

    /// The outbox row is written by the change's own transaction: rolled
    /// back, nothing is queued; committed, one row per matching target.
    #[test]
    fn a_rolled_back_change_queues_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url =
            DbUrl::parse(&format!("sqlite://{}", dir.path().join("l.db").display())).expect("url");
        let limits = Limits {
            connect: Duration::from_secs(5),
            lock: Duration::from_secs(5),
            holder: "test",
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut store = Store::open(&url, limits).await.expect("open");
            let d = store.d;
            let who = crate::engine::Who::from_process(Duration::from_secs(30));
            let targets = [
                Target {
                    url: "http://127.0.0.1:9/all".into(),
                    events: None,
                    secret_env: None,
                },
                Target {
                    url: "http://127.0.0.1:9/pins".into(),
                    events: Some(vec!["pin.set".into()]),
                    secret_env: None,
                },
            ];
            let mut tx = store.write().await.expect("tx");
            outbox::replace_targets(&mut tx, d, &targets)
                .await
                .expect("targets");
            tx.commit().await.expect("commit");
            for (commit, action, want) in [
                (false, "hold.set", 0),
                (true, "hold.set", 1),
                (true, "pin.set", 3),
            ] {
                let mut tx = store.write().await.expect("tx");
                let audit = who.about(None, action, "test".into());
                crate::engine::record(&mut tx, d, audit)
                    .await
                    .expect("record");
                if commit {
                    tx.commit().await.expect("commit");
                } else {
                    tx.rollback().await.expect("rollback");
                }
                let queued: i64 = sqlx::query("SELECT COUNT(*) FROM notification_outbox")
                    .fetch_one(store.conn())
                    .await
                    .and_then(|r| sqlx::Row::try_get(&r, 0))
                    .expect("count");
                assert_eq!(queued, want, "{action} {commit}");
            }
        });
    }
}
