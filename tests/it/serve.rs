//! `reconcile --watch --listen ADDR` (DESIGN §11) through the real binary and
//! real HTTP: `/metrics` read by Prometheus's own Python parser, `/healthz`,
//! `/api/status` against `status --output json`, the dashboard's HTML (fetched
//! with a plain client; a headless-browser check is a later step), 404/405,
//! a port in use refused before the ledger is touched, and SIGTERM closing
//! the port with the watch.

use crate::common::proxy::Proxy;
use crate::common::servers::{skip, start_all};
use crate::common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SETTLE: Duration = Duration::from_secs(30);
const STOP: Duration = Duration::from_secs(5);

/// dev deploys 1.1; staging's run of 1.0 always fails (one attempt: the
/// release is held); prod waits for one approval at gate qa.
const MANIFEST: &str = r#"releases:
  - { version: "1.0", tag: v1.0 }
  - { version: "1.1", tag: v1.1 }
environments:
  dev: { release: "1.1", executor: { simulate: { duration: 0s, failure_rate: 0 } } }
  staging: { release: "1.0", max_attempts: 1, executor: { simulate: { duration: 0s, failure_rate: 1 } } }
  prod: { release: "1.1", requires: dev, gates: { qa: { approvals: 1 } }, executor: { simulate: { duration: 0s, failure_rate: 0 } } }
"#;

/// One plain HTTP/1.1 exchange: (status code, body).
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    try_http(addr, method, path).unwrap_or_else(|e| panic!("{method} {addr}{path}: {e}"))
}

/// The same, reporting instead of panicking (the load test's threads count).
fn try_http(addr: &str, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw).map_err(std::io::Error::other)?;
    let bad = || std::io::Error::other(format!("not an HTTP answer: {text:.200}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    Ok((code, body.to_string()))
}

fn get(addr: &str, path: &str) -> (u16, String) {
    http(addr, "GET", path)
}

/// The samples of a text exposition as Prometheus's Python client parses it:
/// `name{k="v",...}` (labels sorted) → value. Fails on anything it rejects.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let program = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        out["%s{%s}" % (s.name, labels)] = s.value
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", program])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (with prometheus_client: .ci/run installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed the parser");
    let out = child.wait_with_output().expect("the parser");
    assert!(
        out.status.success(),
        "prometheus_client rejected /metrics: {}\n---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the parser's JSON")
}

/// The watch, serving on a free port; its address read from its stderr.
struct Served {
    proc: Proc,
    addr: String,
}

impl Served {
    fn start(db: &TestDb, listen: &str) -> Served {
        Served::start_with(db, listen, "1h", &[])
    }

    /// With this `--interval`, and these environment variables overridden
    /// (`SHIPCTL_DATABASE_URL` to go through a proxy).
    fn start_with(db: &TestDb, listen: &str, interval: &str, env: &[(&str, &str)]) -> Served {
        let mut proc = Proc::start_with(
            db,
            &[
                "reconcile",
                "--watch",
                "--manifests",
                "manifests",
                "--interval",
                interval,
                "--listen",
                listen,
            ],
            env,
        );
        proc.wait_stderr("watch: serving http://", 1, SETTLE);
        let err = proc.stderr();
        let addr = err
            .split("watch: serving http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .expect("the address served")
            .to_string();
        Served { proc, addr }
    }

    /// Polls `/metrics` until `check` accepts the parsed samples.
    fn metrics_until(
        &mut self,
        what: &str,
        check: impl Fn(&std::collections::BTreeMap<String, f64>) -> bool,
    ) -> std::collections::BTreeMap<String, f64> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let (code, body) = get(&self.addr, "/metrics");
            assert_eq!(code, 200, "{body}");
            let m = parse_metrics(&body);
            if check(&m) {
                return m;
            }
            if Instant::now() > deadline {
                panic!("/metrics never showed {what}:\n{body}\n{}", self.proc.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn value(m: &std::collections::BTreeMap<String, f64>, key: &str) -> Option<f64> {
    m.get(key).copied()
}

#[test]
fn metrics_health_status_and_dashboard_over_http() {
    each_backend(|db| {
        declare(db, MANIFEST);
        let mut w = Served::start(db, "127.0.0.1:0");
        let addr = w.addr.clone();

        // The first round's outcome, as Prometheus would read it.
        let m = w.metrics_until("the first round's deployments", |m| {
            value(m, "shipctl_deployments_total{env=\"dev\",state=\"réussi\"}") == Some(1.0)
                && value(
                    m,
                    "shipctl_deployments_total{env=\"prod\",state=\"planifié\"}",
                ) == Some(1.0)
                && value(m, "shipctl_pending_approvals{env=\"prod\"}") == Some(1.0)
                && m.contains_key("shipctl_last_reconcile_timestamp_seconds{}")
                // The histogram is taken apart, once more have finished.
                && value(m, "shipctl_deployment_duration_seconds_count{env=\"staging\"}")
                    == Some(1.0)
        });
        let expect = [
            (
                "shipctl_deployments_total{env=\"staging\",state=\"annulé\"}",
                1.0,
            ),
            (
                "shipctl_deployments_total{env=\"prod\",state=\"échec\"}",
                0.0,
            ),
            (
                "shipctl_deployments_total{env=\"dev\",state=\"en_cours\"}",
                0.0,
            ),
            (
                "shipctl_live_release_info{env=\"dev\",version=\"1.1\"}",
                1.0,
            ),
            ("shipctl_in_sync{env=\"dev\"}", 1.0),
            ("shipctl_in_sync{env=\"staging\"}", 0.0),
            ("shipctl_in_sync{env=\"prod\"}", 0.0),
            ("shipctl_held{env=\"staging\"}", 1.0),
            ("shipctl_held{env=\"dev\"}", 0.0),
            ("shipctl_pending_approvals{env=\"dev\"}", 0.0),
            ("shipctl_reconcile_errors_total{}", 0.0),
            ("shipctl_leader{}", 1.0),
            // dev's and staging's runs, each of 0s: in the first bucket.
            (
                "shipctl_deployment_duration_seconds_count{env=\"dev\"}",
                1.0,
            ),
            (
                "shipctl_deployment_duration_seconds_count{env=\"staging\"}",
                1.0,
            ),
            (
                "shipctl_deployment_duration_seconds_bucket{env=\"dev\",le=\"+Inf\"}",
                1.0,
            ),
            (
                "shipctl_deployment_duration_seconds_bucket{env=\"dev\",le=\"5\"}",
                1.0,
            ),
        ];
        for (key, want) in expect {
            assert_eq!(value(&m, key), Some(want), "{key} in {m:#?}");
        }
        assert!(
            !m.keys()
                .any(|k| k.starts_with("shipctl_live_release_info{env=\"prod\"")),
            "prod has no live release: {m:#?}"
        );
        let last = value(&m, "shipctl_last_reconcile_timestamp_seconds{}").unwrap_or(0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        assert!(
            (now - last).abs() < 120.0,
            "last round at {last}, now {now}"
        );

        // Health.
        let (code, body) = get(&addr, "/healthz");
        assert_eq!(code, 200, "{body}");
        let health: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(health["status"], "ok", "{health:#}");
        assert!(
            health["last_round"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{health:#}"
        );

        // /api/status is `status --output json` (read at most a second apart).
        let deadline = Instant::now() + SETTLE;
        loop {
            let (code, body) = get(&addr, "/api/status");
            assert_eq!(code, 200, "{body}");
            let served: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            let printed = db.expect(&["status", "--output", "json"], 0).json();
            if served == printed {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "/api/status differs from status --output json:\n{served:#}\n{printed:#}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }

        // The dashboard: each live release, the held one, the pending approval.
        let (code, page) = get(&addr, "/");
        assert_eq!(code, 200);
        assert!(page.contains("http-equiv=\"refresh\""), "{page}");
        assert!(page.contains("name=\"viewport\""), "{page}");
        let section = |env: &str| {
            let start = page
                .find(&format!("<section class=\"env\" id=\"{env}\">"))
                .unwrap_or_else(|| panic!("no {env} section in {page}"));
            let end = page[start..].find("</section>").expect("section end") + start;
            page[start..end].to_string()
        };
        assert!(
            section("dev").contains("live: <b>1.1</b>"),
            "{}",
            section("dev")
        );
        assert!(
            section("staging").contains("held: 1.0"),
            "{}",
            section("staging")
        );
        let prod = section("prod");
        assert!(prod.contains("nothing deployed yet"), "{prod}");
        assert!(
            prod.contains("waits for approval qa: 0 of 1 approval"),
            "{prod}"
        );
        assert!(
            page.contains("deployment.planned"),
            "the audit rows: {page}"
        );

        // Other paths and methods.
        assert_eq!(get(&addr, "/nope").0, 404);
        assert_eq!(http(&addr, "POST", "/metrics").0, 405);
        assert_eq!(http(&addr, "DELETE", "/api/status").0, 405);

        // A rejection fails prod's deployment: the alert's series moves.
        let id = db.scalar(
            "SELECT d.id FROM deploiements d JOIN environnements e ON e.id = d.id_env \
             WHERE e.nom = 'prod'",
        );
        db.expect(
            &[
                "approve",
                "--deploy-id",
                &id,
                "--gate",
                "qa",
                "--by",
                "carol",
                "--reject",
                "--reason",
                "broken",
            ],
            0,
        );
        w.metrics_until("prod's rejection", |m| {
            value(m, "shipctl_deployments_total{env=\"prod\",state=\"échec\"}") == Some(1.0)
                && value(m, "shipctl_pending_approvals{env=\"prod\"}") == Some(0.0)
        });

        // SIGTERM stops the server with the watch.
        w.proc.signal(libc::SIGTERM);
        let status = w.proc.wait_exit(STOP, "SIGTERM");
        assert_eq!(status.code(), Some(0), "{}", w.proc.log());
        assert!(
            TcpStream::connect(&addr).is_err(),
            "{addr} still accepts connections after the watch stopped"
        );
    });
}

#[test]
fn a_port_in_use_is_refused_before_the_ledger_is_touched() {
    let db = TestDb::new(Backend::Sqlite).expect("SQLite");
    declare(&db, MANIFEST);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("address").to_string();
    let r = db.expect(
        &[
            "reconcile",
            "--watch",
            "--manifests",
            "manifests",
            "--listen",
            &addr,
        ],
        1,
    );
    assert!(
        r.stderr.contains(&format!("cannot listen on {addr}")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("another process listens there"),
        "{}",
        r.stderr
    );
    assert!(
        !db.dir.path().join("shipctl.db").exists(),
        "the ledger was created before the bind failed"
    );
}

#[test]
fn listen_is_for_the_watch_and_takes_an_address() {
    let db = TestDb::new(Backend::Sqlite).expect("SQLite");
    declare(&db, MANIFEST);
    let r = db.expect(&["reconcile", "--listen", "127.0.0.1:9464"], 1);
    assert!(r.stderr.contains("--watch"), "{}", r.stderr);
    let r = db.expect(&["reconcile", "--watch", "--listen", "9464"], 1);
    assert!(r.stderr.contains("invalid value '9464'"), "{}", r.stderr);
}

#[test]
fn another_address_than_loopback_is_served_with_a_warning() {
    let db = TestDb::new(Backend::Sqlite).expect("SQLite");
    declare(&db, MANIFEST);
    let mut w = Served::start(&db, "0.0.0.0:0");
    w.proc
        .wait_stderr("endpoints have no authentication", 1, SETTLE);
    let port = w.addr.rsplit(':').next().expect("port").to_string();
    let (code, _) = get(&format!("127.0.0.1:{port}"), "/healthz");
    assert_eq!(code, 200);
    w.proc.signal(libc::SIGTERM);
    let status = w.proc.wait_exit(STOP, "SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", w.proc.log());
}

/// `/healthz` as the database goes and comes back (DESIGN §11), on a private
/// server reached only through a proxy (the watch and its endpoints alike):
/// 200, then 503 with the reason within two `--interval`s of the server
/// refusing connections or no longer answering at all; 200 again once it is
/// back. SQLite has no connection to cut.
#[test]
fn healthz_follows_the_database_going_and_coming_back() {
    const INTERVAL: Duration = Duration::from_secs(1);
    let servers = start_all();
    if servers.is_empty() {
        skip("no private database server to cut");
    }
    for server in servers {
        let db = server.test_db();
        let proxy = Proxy::start(server.port);
        let via = server.url_on(proxy.port);
        declare(
            &db,
            "releases:\n  - { version: \"1.0\", tag: v1.0 }\nenvironments:\n  \
             dev: { release: \"1.0\", executor: { simulate: { duration: 0s, failure_rate: 0 } } }\n",
        );
        let mut w = Served::start_with(
            &db,
            "127.0.0.1:0",
            "1s",
            &[("SHIPCTL_DATABASE_URL", via.as_str())],
        );
        let what = format!("{:?}", server.kind);
        let health = |w: &Served| {
            let (code, body) = get(&w.addr, "/healthz");
            let json: serde_json::Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{what}: /healthz is not JSON ({e}): {body}"));
            (code, json)
        };
        let until = |w: &mut Served, want: u16, limit: Duration, why: &str| {
            let start = Instant::now();
            loop {
                let (code, json) = health(w);
                if code == want {
                    return (start.elapsed(), json);
                }
                if start.elapsed() > limit {
                    panic!(
                        "{what}: /healthz still {code} {:?} after {why}: {json:#}\n{}\n{}",
                        start.elapsed(),
                        w.proc.log(),
                        server.log()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        let (_, ok) = until(&mut w, 200, SETTLE, "the start");
        assert_eq!(ok["status"], "ok", "{what}: {ok:#}");
        db.wait_for("dev deployed", SETTLE, || {
            db.live("dev").as_deref() == Some("1.0")
        });

        // Down: connections refused, as by a stopped server.
        proxy.refuse();
        let (took, down) = until(&mut w, 503, SETTLE, "the server went down");
        assert!(
            took <= 2 * INTERVAL,
            "{what}: 503 only {took:?} after the server went down\n{}",
            w.proc.log()
        );
        assert_eq!(down["status"], "unhealthy", "{what}: {down:#}");
        assert!(
            down["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{what}: {down:#}"
        );
        let before = ok["last_round"].clone();

        // Back: healthy again, rounds reaching the ledger again.
        proxy.pass();
        let (_, up) = until(&mut w, 200, Duration::from_secs(10), "the server came back");
        assert_eq!(up["status"], "ok", "{what}: {up:#}");
        let (_, later) = until(&mut w, 200, Duration::from_secs(10), "a round");
        assert_ne!(
            later["last_round"], before,
            "{what}: no round since: {later:#}"
        );

        // Silent: connections held, nothing answered. /healthz gives a
        // reading one interval to answer, and serves the last one for half
        // an interval only: 503 within two intervals here too.
        proxy.blackhole();
        let (took, silent) = until(&mut w, 503, SETTLE, "the server went silent");
        assert!(
            took <= 2 * INTERVAL,
            "{what}: 503 only {took:?} after the server went silent\n{}",
            w.proc.log()
        );
        assert_eq!(silent["status"], "unhealthy", "{what}: {silent:#}");
        proxy.pass();
        until(&mut w, 200, SETTLE, "the server answered again");

        w.proc.signal(libc::SIGTERM);
        let status = w.proc.wait_exit(STOP, "SIGTERM");
        assert_eq!(status.code(), Some(0), "{what}: {}", w.proc.log());
    }
}

/// The dashboard in a real headless browser (Debian's chromium, which
/// `.ci/run` installs): the page it renders shows each environment's live
/// release and the pending approval, at a phone's width, with no script at all.
/// The screenshot is kept as a test artifact under the target directory.
#[test]
fn the_dashboard_in_a_headless_browser() {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("a headless browser: install chromium (`.ci/run` does)");
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    declare(&db, MANIFEST);
    let mut w = Served::start(&db, "127.0.0.1:0");
    w.metrics_until("the first round", |m| {
        value(m, "shipctl_pending_approvals{env=\"prod\"}") == Some(1.0)
    });
    let url = format!("http://{}/", w.addr);
    let profile = tempfile::tempdir().expect("profile dir");
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(browser)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=412,915",
                &format!("--user-data-dir={}", profile.path().display()),
            ])
            .args(extra)
            .arg(&url)
            .output()
            .expect("run the browser");
        assert!(
            out.status.success(),
            "{browser} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // What the browser made of the page: its DOM after rendering.
    let dom = run(&["--dump-dom"]);
    assert!(dom.contains("live: <b>1.1</b>"), "{dom}");
    assert!(
        dom.contains("waits for approval qa: 0 of 1 approval"),
        "{dom}"
    );
    assert!(dom.contains("held: 1.0"), "{dom}");
    assert!(
        !dom.contains("<script"),
        "the dashboard needs no JavaScript: {dom}"
    );
    // And what a person sees.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    let shot = dir.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    run(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "{} bytes",
        png.len()
    );
    w.proc.signal(libc::SIGTERM);
    w.proc.wait_exit(STOP, "SIGTERM");
}

/// Load (issue 12): `/metrics` and `/api/status` of a 100,000-deployment
/// SQLite ledger under 50 concurrent clients for 10 seconds answer every
/// request, 200 with a whole body. How fast is `bench/serve.sh`'s question.
#[test]
fn fifty_clients_on_a_big_ledger_get_every_answer() {
    const DEPLOYMENTS: i64 = 100_000;
    const CLIENTS: usize = 50;
    const FOR: Duration = Duration::from_secs(10);
    let db = TestDb::new(Backend::Sqlite).expect("SQLite");
    declare(&db, "releases: []\nenvironments: {}\n");
    db.expect(&["reconcile", "--manifests", "manifests"], 0);
    // 1,000 releases, then deployments spread over the environments, each
    // finished (a tenth failed) with the start its duration is measured from.
    account::raw_sql(
        &db.url,
        &format!(
            "INSERT INTO releases (version, tag_git) \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
             SELECT '1.' || i, 'v1.' || i FROM n;
             INSERT INTO deploiements (id_release, id_env, etat, date_deploiement, attempts, fencing_token) \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {DEPLOYMENTS}) \
             SELECT (i - 1) % 1000 + 1, i % 3 + 1, CASE WHEN i % 10 = 0 THEN 'échec' ELSE 'réussi' END, \
                    strftime('%Y-%m-%d %H:%M:%f', '2026-01-01', '+' || (i * 60) || ' seconds'), 1, i FROM n;
             INSERT INTO audit_logs (id_deploiement, action, etat_avant, etat_apres, message, acteur, date_log) \
             SELECT id, 'deployment.started', 'validé', 'en_cours', 'started', 'load', \
                    strftime('%Y-%m-%d %H:%M:%f', date_deploiement, '-' || (id % 120) || ' seconds') \
             FROM deploiements;"
        ),
    );
    let mut w = Served::start(&db, "127.0.0.1:0");
    let (code, body) = get(&w.addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    let total: f64 = parse_metrics(&body)
        .iter()
        .filter(|(k, _)| k.starts_with("shipctl_deployments_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, DEPLOYMENTS as f64, "{body}");

    let end = Instant::now() + FOR;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let addr = w.addr.clone();
            std::thread::spawn(move || {
                let (mut answered, mut errors) = (0u64, Vec::new());
                let mut n = i;
                while Instant::now() < end {
                    let path = if n % 2 == 0 {
                        "/metrics"
                    } else {
                        "/api/status"
                    };
                    n += 1;
                    match try_http(&addr, "GET", path) {
                        Ok((200, body)) if whole(path, &body) => answered += 1,
                        Ok((code, body)) => errors.push(format!("{path}: {code} {body:.200}")),
                        Err(e) => errors.push(format!("{path}: {e}")),
                    }
                }
                (answered, errors)
            })
        })
        .collect();
    let (mut answered, mut errors) = (0, Vec::new());
    for c in clients {
        let (a, e) = c.join().expect("a client");
        answered += a;
        errors.extend(e);
    }
    assert!(
        errors.is_empty(),
        "{} errors in {answered} answers, first: {:?}\n{}",
        errors.len(),
        &errors[..errors.len().min(5)],
        w.proc.log()
    );
    assert!(answered >= CLIENTS as u64, "only {answered} answers");
    w.proc.signal(libc::SIGTERM);
    assert_eq!(w.proc.wait_exit(STOP, "SIGTERM").code(), Some(0));
}

/// A body is whole when it ends as its format does.
fn whole(path: &str, body: &str) -> bool {
    match path {
        "/metrics" => body.contains("shipctl_deployments_total{") && body.ends_with('\n'),
        _ => serde_json::from_str::<serde_json::Value>(body)
            .is_ok_and(|v| v["environments"].as_array().is_some_and(|e| e.len() == 3)),
    }
}
