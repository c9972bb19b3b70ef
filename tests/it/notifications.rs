//! Notifications (DESIGN §11) on every backend: the outbox filled by the
//! binary's audited changes, drained by `shipctl::notify::deliver_due` into a
//! local HTTP receiver — one POST per matching event, in order per
//! environment, signed, retried while the receiver is down or failing, given
//! up after the horizon — and the webhook URL's secret never printed.

use crate::common::*;

use serde_json::Value;
use shipctl::notify::{DeliveryReport, deliver_due};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET_VAR: &str = "SHIPCTL_IT_HOOK_SECRET";
const SECRET: &str = "k3y-for-signing";
/// In the webhook URL's query: must never be printed.
const URL_TOKEN: &str = "s3cr3t-t0ken";
const SIM_OK: &str = "executor: { simulate: { duration: 0s, failure_rate: 0 } }";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    fn key(&self) -> String {
        self.headers["idempotency-key"].clone()
    }
}

/// A local HTTP receiver: records every request, answers the queued statuses
/// first, then 200.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
    /// Set by `stop()`: the listener is closed at the next connection.
    stopped: Arc<AtomicBool>,
    port: u16,
}

impl Receiver {
    fn start(listener: TcpListener) -> Receiver {
        let r = Receiver {
            port: listener.local_addr().expect("addr").port(),
            ..Receiver::default()
        };
        let me = r.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if me.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut headers = BTreeMap::new();
                let mut line = String::new();
                reader.read_line(&mut line).ok();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        headers.insert(k.to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                reader.read_exact(&mut body).ok();
                me.got.lock().unwrap().push(Got { headers, body });
                let status = me.answers.lock().unwrap().pop_front().unwrap_or(200);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        r
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Closes the port: the receiver is down (connections refused).
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then drops the listener.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "the receiver still listens"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn hook_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/hooks/shipctl?token={URL_TOKEN}")
}

fn manifest(port: u16, release: &str, events: &str) -> String {
    format!(
        "apiVersion: shipctl/v1\n\
         releases:\n  - {{ version: \"{release}\", tag: v{release} }}\n\
         environments:\n\
         \x20 dev: {{ release: \"{release}\", {SIM_OK} }}\n\
         \x20 staging: {{ release: \"{release}\", requires: dev, {SIM_OK} }}\n\
         notifications:\n\
         \x20 - url: \"{}\"\n\
         \x20   secret_env: {SECRET_VAR}\n{events}",
        hook_url(port)
    )
}

fn secret(name: &str) -> Option<String> {
    (name == SECRET_VAR).then(|| SECRET.to_string())
}

fn deliverer() -> shipctl::notify::Deliverer {
    let mut d = shipctl::notify::Deliverer::new().expect("client");
    d.timeout = Duration::from_secs(5);
    d.secret = secret;
    d
}

fn deliver(db: &TestDb, deliverer: &shipctl::notify::Deliverer) -> DeliveryReport {
    block_on(async {
        let url = shipctl::store::url::DbUrl::parse(&db.url).expect("url");
        let limits = shipctl::store::Limits {
            connect: Duration::from_secs(10),
            lock: Duration::from_secs(10),
            holder: "shipctl-test",
        };
        let mut store = shipctl::store::Store::open(&url, limits)
            .await
            .expect("open");
        let report = deliver_due(&mut store, deliverer).await.expect("deliver");
        store.close().await;
        report
    })
}

/// Every retry due now, as if its back-off had passed.
fn make_due(db: &TestDb) {
    db.query("UPDATE notification_outbox SET next_attempt_at = created_at");
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.scalar(sql).parse().expect("a number")
}

fn verify_signature(g: &Got) {
    let sig = g
        .headers
        .get("x-shipctl-signature")
        .expect("signed: a secret is configured");
    let hex = sig.strip_prefix("sha256=").expect("sha256=");
    let tag: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    ring::hmac::verify(&key, &g.body, &tag).expect("a valid HMAC-SHA256 of the body");
}

#[test]
fn events_reach_a_receiver_once_each_in_order_signed_through_an_outage() {
    each_backend(|db| {
        let port = free_port();
        declare(db, &manifest(port, "1.0", ""));
        db.expect(&["reconcile", "--manifests", "manifests"], 0);
        let queued = count(db, "SELECT COUNT(*) FROM notification_outbox");
        let audited = count(db, "SELECT COUNT(*) FROM audit_logs");
        // Every audit row from the targets' own notifications.updated on.
        let first = count(
            db,
            "SELECT id FROM audit_logs WHERE action = 'notifications.updated'",
        );
        assert_eq!(
            queued,
            count(
                db,
                &format!("SELECT COUNT(*) FROM audit_logs WHERE id >= {first}")
            )
        );
        assert!(queued >= 5 && queued <= audited, "{queued} of {audited}");

        // The receiver is down: one try per queue head, nothing lost.
        let d = deliverer();
        let down = deliver(db, &d);
        assert_eq!(down.delivered, 0);
        assert!(down.retried >= 1, "{down:?}");
        let tried = count(
            db,
            "SELECT COUNT(*) FROM notification_outbox WHERE attempts > 0",
        );
        assert_eq!(tried as u64, down.retried, "only the head of each queue");
        let error =
            db.scalar("SELECT last_error FROM notification_outbox WHERE attempts > 0 LIMIT 1");
        assert!(!error.contains(URL_TOKEN), "{error}");
        // A retry is not due before its back-off.
        assert_eq!(deliver(db, &d), DeliveryReport::default());

        // Up again: everything, once, in order per environment.
        let rx = Receiver::start(TcpListener::bind(("127.0.0.1", port)).expect("rebind"));
        make_due(db);
        let up = deliver(db, &d);
        assert_eq!(
            up.delivered as i64,
            queued,
            "{up:?}: {:?}",
            db.query("SELECT last_error FROM notification_outbox")
        );
        assert_eq!(deliver(db, &d), DeliveryReport::default(), "nothing twice");
        let got = rx.got();
        assert_eq!(got.len() as i64, queued);
        let mut keys: Vec<String> = got.iter().map(Got::key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), got.len(), "one key per event");
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        for g in &got {
            verify_signature(g);
            assert_eq!(g.headers["content-type"], "application/json");
            let body = g.json();
            let event = &body["event"];
            let env = event["env"].as_str().unwrap_or("-").to_string();
            let id = event["id"].as_i64().expect("the audit id");
            if let Some(before) = last.insert(env.clone(), id) {
                assert!(before < id, "{env}: event {id} after {before}");
            }
            assert!(body["text"].as_str().is_some_and(|t| !t.is_empty()));
            assert!(event["date"].as_str().is_some_and(|t| t.ends_with('Z')));
            for k in [
                "action",
                "deployment_id",
                "state_before",
                "state_after",
                "message",
                "actor",
            ] {
                assert!(event.get(k).is_some(), "{k} in {event}");
            }
        }
        let succeeded: Vec<&Got> = got
            .iter()
            .filter(|g| g.json()["event"]["action"] == "deployment.succeeded")
            .collect();
        assert_eq!(succeeded.len(), 2, "dev and staging");
        let text = succeeded[0].json()["text"].as_str().unwrap().to_string();
        assert!(
            text.starts_with("dev: release 1.0 is live in dev"),
            "{text}"
        );
        assert!(text.contains("by tester"), "{text}");
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM notification_outbox WHERE delivered_at IS NULL \
                 OR response_status <> 200"
            ),
            0
        );

        // A 500 is retried, with the same key.
        rx.answers.lock().unwrap().push_back(500);
        let r = release(db, "1.1");
        plan(db, r, "dev");
        let failed = deliver(db, &d);
        // The release's queue waits for its retry; dev's is not held up by it.
        assert_eq!((failed.retried, failed.delivered), (1, 1), "{failed:?}");
        assert_eq!(
            db.scalar("SELECT response_status FROM notification_outbox WHERE delivered_at IS NULL"),
            "500"
        );
        make_due(db);
        let again = deliver(db, &d);
        assert_eq!(again.delivered, 1, "{again:?}");
        let got = rx.got();
        let created: Vec<&Got> = got[got.len() - 3..]
            .iter()
            .filter(|g| g.json()["event"]["action"] == "release.created")
            .collect();
        assert_eq!(created.len(), 2, "the 500, then the retry");
        assert_eq!(
            created[0].key(),
            created[1].key(),
            "the retry carries the same key"
        );

        // 429 asks for a later try; 404 refuses the request for good: given
        // up at once (a retry could only be refused again), and the events
        // queued behind it go on.
        rx.answers.lock().unwrap().extend([429, 404]);
        release(db, "1.2");
        release(db, "1.3");
        let busy = deliver(db, &d);
        assert_eq!((busy.retried, busy.delivered), (1, 0), "{busy:?}");
        make_due(db);
        let refused = deliver(db, &d);
        assert_eq!((refused.given_up, refused.delivered), (1, 1), "{refused:?}");
        assert_eq!(
            db.query(
                "SELECT response_status, attempts FROM notification_outbox \
                 WHERE gave_up_at IS NOT NULL AND last_error LIKE 'refused for good%'"
            ),
            vec![vec!["404".to_string(), "2".to_string()]]
        );
        let got = rx.got();
        let versions: Vec<String> = got[got.len() - 3..]
            .iter()
            .map(|g| {
                g.json()["event"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert!(
            versions[0].contains("1.2")
                && versions[1].contains("1.2")
                && versions[2].contains("1.3"),
            "{versions:?}"
        );
    });
}

#[test]
fn events_filter_and_give_up_after_the_horizon() {
    each_backend(|db| {
        let port = free_port();
        declare(
            db,
            &manifest(
                port,
                "1.0",
                "    events: [deployment.succeeded, release.created]\n",
            ),
        );
        db.expect(&["reconcile", "--manifests", "manifests"], 0);
        let events = db.query("SELECT event FROM notification_outbox ORDER BY id");
        let events: Vec<&str> = events.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(
            events,
            [
                "release.created",
                "deployment.succeeded",
                "deployment.succeeded"
            ]
        );
        // Down for longer than the horizon: given up, recorded, the queue moves on.
        let mut d = deliverer();
        d.horizon = Duration::ZERO;
        let r = deliver(db, &d);
        assert_eq!(r.given_up, 3, "{r:?}");
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM notification_outbox WHERE gave_up_at IS NOT NULL \
                 AND attempts = 1 AND last_error LIKE 'given up after%'"
            ),
            3
        );
        let status = db.expect(&["status", "--output", "json"], 0).json();
        assert_eq!(status["notifications"]["given_up"], 3);
        assert_eq!(status["notifications"]["pending"], 0);
        let text = db.expect(&["status"], 0).stdout;
        assert!(
            text.contains("notifications: 0 pending, 3 given up"),
            "{text}"
        );
    });
}

#[test]
fn a_missing_secret_is_never_sent_unsigned() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let rx_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = rx_listener.local_addr().unwrap().port();
    let rx = Receiver::start(rx_listener);
    declare(
        &db,
        &manifest(port, "1.0", "    events: [release.created]\n"),
    );
    db.expect(&["reconcile", "--manifests", "manifests"], 0);
    let mut d = deliverer();
    d.secret = |_| None;
    let r = deliver(&db, &d);
    assert_eq!(r.retried, 1, "{r:?}");
    assert!(rx.got().is_empty());
    let error = db.scalar("SELECT last_error FROM notification_outbox");
    assert!(
        error.contains(SECRET_VAR) && error.contains("unsigned"),
        "{error}"
    );
    let status = db.expect(&["status", "--output", "json"], 0).json();
    assert_eq!(status["notifications"]["pending"], 1);
    assert!(status["notifications"]["oldest_pending_age_s"].is_i64());
}

#[test]
fn the_webhook_url_s_secret_is_never_printed() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let port = free_port();
    declare(&db, &manifest(port, "1.0", ""));
    let mut outputs = Vec::new();
    for args in [
        &["check", "--manifests", "manifests"][..],
        &["reconcile", "--manifests", "manifests"],
        &["reconcile", "--manifests", "manifests", "--output", "json"],
        &["status"],
        &["status", "--output", "json"],
        &["audit"],
        &["audit", "--output", "json"],
    ] {
        let r = db.run(args);
        outputs.push(format!("{args:?}: {}{}", r.stdout, r.stderr));
    }
    let all = outputs.join("\n");
    assert!(!all.contains(URL_TOKEN), "{all}");
    assert!(all.contains("token=***"), "{all}");
    // A bad entry is refused without quoting the URL either.
    declare(
        &db,
        &manifest(port, "1.0", "    events: [deployment.exploded]\n"),
    );
    let r = db.expect(&["check", "--manifests", "manifests"], 1);
    assert!(!r.stderr.contains(URL_TOKEN), "{}", r.stderr);
}

#[test]
fn gate_waiting_is_recorded_once_per_deployment() {
    each_backend(|db| {
        let port = free_port();
        let text = format!(
            "apiVersion: shipctl/v1\n\
             releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\n\
             environments:\n\
             \x20 dev: {{ release: \"1.0\", {SIM_OK}, gates: {{ qa: {{ approvals: 1 }} }} }}\n\
             notifications:\n\
             \x20 - url: \"{}\"\n\
             \x20   events: [gate.waiting]\n",
            hook_url(port)
        );
        declare(db, &text);
        for _ in 0..3 {
            db.expect(&["reconcile", "--manifests", "manifests"], 4);
        }
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM audit_logs WHERE action = 'gate.waiting'"
            ),
            1
        );
        let queued = db.query("SELECT event FROM notification_outbox");
        assert_eq!(queued, [["gate.waiting".to_string()]]);
    });
}

/// The manifests of the watch test: every release in `versions`, dev and
/// staging (after dev) at the last one, the events of a release's rollout.
fn rollout(port: u16, versions: &[&str]) -> String {
    let releases: String = versions
        .iter()
        .map(|v| format!("  - {{ version: \"{v}\", tag: v{v} }}\n"))
        .collect();
    let last = versions.last().expect("a release");
    format!(
        "apiVersion: shipctl/v1\n\
         releases:\n{releases}\
         environments:\n\
         \x20 dev: {{ release: \"{last}\", {SIM_OK} }}\n\
         \x20 staging: {{ release: \"{last}\", requires: dev, {SIM_OK} }}\n\
         notifications:\n\
         \x20 - url: \"{}\"\n\
         \x20   secret_env: {SECRET_VAR}\n\
         \x20   events: [release.created, deployment.succeeded]\n",
        hook_url(port)
    )
}

/// The audit ids the outbox holds, in order.
fn queued_ids(db: &TestDb) -> Vec<i64> {
    db.query("SELECT audit_id FROM notification_outbox ORDER BY audit_id")
        .into_iter()
        .map(|r| r[0].parse().expect("an id"))
        .collect()
}

/// Each request checked (signed, one key per event, in order per
/// environment); the audit ids received, each once, sorted.
fn received(got: &[Got]) -> Vec<i64> {
    let mut keys: BTreeMap<String, i64> = BTreeMap::new();
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let mut ids = Vec::new();
    for g in got {
        verify_signature(g);
        let event = &g.json()["event"];
        let id = event["id"].as_i64().expect("the audit id");
        // A duplicate is a retry: the same event under the same key.
        if let Some(before) = keys.insert(g.key(), id) {
            assert_eq!(before, id, "one key, two events: {}", g.key());
            continue;
        }
        assert!(!ids.contains(&id), "event {id} sent under two keys");
        let env = event["env"].as_str().unwrap_or("-").to_string();
        if let Some(before) = last.insert(env.clone(), id) {
            assert!(before < id, "{env}: event {id} after {before}");
        }
        ids.push(id);
    }
    ids.sort_unstable();
    ids
}

#[test]
fn the_leading_watcher_delivers_and_its_successor_delivers_the_rest() {
    each_backend(|db| {
        let rx = Receiver::start(TcpListener::bind("127.0.0.1:0").expect("bind"));
        let port = rx.port;
        let mut versions = vec!["1.0"];
        declare(db, &rollout(port, &versions));
        let mut w1 = watcher(db, "w1", &[(SECRET_VAR, SECRET)]);
        until("1.0 live", Duration::from_secs(20), &[&w1], || {
            live_in(db, "staging").as_deref() == Some("1.0")
        });
        let w2 = watcher(db, "w2", &[(SECRET_VAR, SECRET)]);
        until("w2 in standby", Duration::from_secs(10), &[&w2], || {
            w2.stderr()
                .contains("this one takes over if it stops renewing")
        });

        // Releases rolled out by manifest changes: each event once, signed,
        // in order per environment, by the leader as it goes.
        for v in ["1.1", "1.2"] {
            versions.push(v);
            declare(db, &rollout(port, &versions));
            until(
                &format!("{v} live"),
                Duration::from_secs(20),
                &[&w1],
                || live_in(db, "staging").as_deref() == Some(v),
            );
        }
        // Per release: release.created, and dev's and staging's successes.
        until(
            "every event delivered",
            Duration::from_secs(20),
            &[&w1, &w2],
            || rx.got().len() >= 9,
        );
        std::thread::sleep(Duration::from_millis(500));
        let got = rx.got();
        let ids = received(&got);
        assert_eq!(ids, queued_ids(db), "{:?}", db.backend);
        assert_eq!(ids.len(), 9, "{:?}", db.backend);
        let actions: Vec<String> = got
            .iter()
            .map(|g| {
                g.json()["event"]["action"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert_eq!(
            actions.iter().filter(|a| *a == "release.created").count(),
            3,
            "{actions:?}"
        );
        assert!(
            !w2.stderr().contains("notifications:"),
            "the standby delivered: {}",
            w2.log()
        );

        // The receiver goes down; a release is rolled out; the leader tries
        // its events and keeps them; then it dies without a word.
        rx.stop();
        versions.push("1.3");
        declare(db, &rollout(port, &versions));
        until("1.3 live", Duration::from_secs(20), &[&w1], || {
            live_in(db, "staging").as_deref() == Some("1.3")
        });
        until(
            "the leader's failed try",
            Duration::from_secs(20),
            &[&w1],
            || {
                count(
                    db,
                    "SELECT COUNT(*) FROM notification_outbox WHERE attempts > 0 AND delivered_at IS NULL",
                ) > 0
            },
        );
        w1.kill();
        let pending = count(
            db,
            "SELECT COUNT(*) FROM notification_outbox WHERE delivered_at IS NULL",
        );
        assert_eq!(pending, 3, "{:?}: {}", db.backend, w1.log());

        // The receiver is back: the standby takes over and delivers the rest
        // (their back-off passed, so as not to wait for it).
        let rx2 = Receiver::start(TcpListener::bind(("127.0.0.1", port)).expect("rebind"));
        make_due(db);
        until(
            "the rest delivered by the new leader",
            Duration::from_secs(30),
            &[&w2],
            || {
                count(
                    db,
                    "SELECT COUNT(*) FROM notification_outbox WHERE delivered_at IS NULL",
                ) == 0
            },
        );
        assert!(
            w2.stderr().contains("watch: this watcher leads now"),
            "{}",
            w2.log()
        );
        let mut all = got.clone();
        all.extend(rx2.got());
        let ids = received(&all);
        assert_eq!(ids, queued_ids(db), "nothing lost ({:?})", db.backend);
        assert_eq!(ids.len(), 12, "{:?}", db.backend);
        let late: Vec<i64> = received(&rx2.got());
        assert_eq!(late, queued_ids(db)[9..], "{:?}", db.backend);

        w2.signal(libc::SIGTERM);
        let (run, _) = w2.finish(Duration::from_secs(5), "SIGTERM");
        assert_eq!(run.code, 0, "{}", run.stderr);
    });
}

/// Reconcilers that change the webhooks at the same moment store each target
/// once: the test holds the ledger's global row while two of them start, so
/// both have read the old list and wait to write; released, the second reads
/// what the first stored and inserts nothing more. (SQLite serialises writers
/// anyway; the race is the servers'.)
#[test]
fn racing_reconcilers_store_each_target_once() {
    for backend in [Backend::Postgres, Backend::MySql] {
        let Some(db) = TestDb::new(backend) else {
            continue;
        };
        db.expect(&["release", "--create", "0.1", "--tag", "v0.1"], 0);
        declare(&db, &manifest(free_port(), "1.0", ""));
        let waiting = match backend {
            Backend::Postgres => {
                "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND datname = current_database()"
            }
            _ => {
                "SELECT COUNT(*) FROM information_schema.processlist \
                 WHERE db = DATABASE() AND info LIKE 'UPDATE watch_leader%'"
            }
        };
        block_on(async {
            use sqlx::Connection;
            let mut holder = sqlx::AnyConnection::connect(&db.url)
                .await
                .expect("connect");
            let mut tx = holder.begin().await.expect("begin");
            sqlx::query("UPDATE watch_leader SET token = token WHERE id = 1")
                .execute(&mut *tx)
                .await
                .expect("hold the row");
            let racers: Vec<std::process::Child> = (0..2)
                .map(|_| {
                    db.cmd()
                        .args(["reconcile", "--manifests", "manifests"])
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .expect("spawn")
                })
                .collect();
            let mut probe = sqlx::AnyConnection::connect(&db.url)
                .await
                .expect("connect");
            let start = std::time::Instant::now();
            loop {
                let n: i64 = sqlx::query_scalar(waiting)
                    .fetch_one(&mut probe)
                    .await
                    .expect("count the waiting sessions");
                if n >= 2 {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "{backend:?}: the reconcilers never waited for the row"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tx.commit().await.expect("release the row");
            for mut r in racers {
                r.wait().expect("reconcile");
            }
        });
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM notification_targets"),
            1,
            "{backend:?}"
        );
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM audit_logs WHERE action = 'notifications.updated'"
            ),
            1,
            "{backend:?}"
        );
    }
}
