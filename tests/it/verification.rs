//! Verification after a successful run, and held releases (DESIGN §9), through
//! the real binary: command and HTTP checks tried until one passes, a failed
//! verification undone by the executor's rollback command and audited try by
//! try, checks stopped with their whole process group (a timeout, SIGTERM),
//! verification under the deployment's lease, releases held after a failed
//! verification, a gate rejection or used-up attempts (and lifted by the
//! manifests or by `deploy`), placeholders that cannot inject anything, and
//! `check` and `--dry-run` that never run a check.

use crate::common::servers::free_port;
use crate::common::*;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

const SIM_OK: &str = "{ simulate: { duration: 0s, failure_rate: 0 } }";
/// `./deploy.sh`, undone by `./rollback.sh`: both log what they did (see [`scripts`]).
const BY_SCRIPT: &str = "{ command: { run: [\"./deploy.sh\"], rollback: [\"./rollback.sh\"] } }";
/// A signal is honoured within a second (DESIGN §8); a little more for the
/// machine the tests share.
const PROMPT: Duration = Duration::from_millis(1500);
/// How long anything the test waits for may take.
const WAIT: Duration = Duration::from_secs(20);

/// The executor's scripts: each appends a line to `deploy.log`.
fn scripts(db: &TestDb) {
    script(
        db,
        "deploy.sh",
        "#!/bin/sh\necho \"deploy $SHIPCTL_VERSION\" >> deploy.log\n",
    );
    script(
        db,
        "rollback.sh",
        "#!/bin/sh\necho \"rollback to $SHIPCTL_VERSION from $SHIPCTL_PREVIOUS_VERSION\" >> deploy.log\n",
    );
}

/// `releases` (tag `v` + version) and prod on `release`, run by `executor`
/// and verified by `verify` (both in flow style).
fn manifest(releases: &[&str], release: &str, executor: &str, verify: &str) -> String {
    let mut s = String::from("releases:\n");
    for r in releases {
        s.push_str(&format!("  - {{ version: \"{r}\", tag: \"v{r}\" }}\n"));
    }
    s.push_str(&format!(
        "environments:\n  prod:\n    release: \"{release}\"\n    executor: {executor}\n    \
         verify: {verify}\n"
    ));
    s
}

/// prod deploys 1.0, simulated, verified by `verify` (flow style).
fn declare_one(db: &TestDb, verify: &str) {
    declare(db, &manifest(&["1.0"], "1.0", SIM_OK, verify));
}

/// A SQLite ledger of its own, with [`declare_one`].
fn one_release(verify: &str) -> TestDb {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    declare_one(&db, verify);
    db
}

/// [`one_release`] verified by `verify`, `./check.sh` being the script `check`.
fn checked_by(check: &str, verify: &str) -> TestDb {
    let db = one_release(verify);
    script(&db, "check.sh", check);
    db
}

/// SIGTERM to `p`, which must exit 3 within [`PROMPT`] of the signal.
fn stopped_promptly(p: Proc) {
    let asked = Instant::now();
    p.signal(libc::SIGTERM);
    let (out, _) = p.finish(WAIT, "SIGTERM");
    let took = asked.elapsed();
    assert!(took < PROMPT, "stopped {took:?} after the signal");
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
}

fn reconcile(db: &TestDb, code: i32) -> Run {
    db.expect(&["reconcile", "--manifests", "manifests"], code)
}

/// `reconcile --output json`, exiting `code`.
fn reconciled(db: &TestDb, code: i32) -> Value {
    db.expect(
        &["reconcile", "--manifests", "manifests", "--output", "json"],
        code,
    )
    .json()
}

/// What [`reconciled`] did in `env`.
fn outcome(db: &TestDb, env: &str, code: i32) -> Value {
    of(&reconciled(db, code), env)["outcome"].clone()
}

/// The entry of `env` in a JSON list of environments.
fn of<'a>(j: &'a Value, env: &str) -> &'a Value {
    j["environments"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["env"] == env))
        .unwrap_or_else(|| panic!("no {env} in {j:#}"))
}

/// (passed, message) of each try in an outcome's verification.
fn tries(outcome: &Value) -> Vec<(bool, String)> {
    outcome["execution"]["verification"]["tries"]
        .as_array()
        .unwrap_or_else(|| panic!("no tries in {outcome:#}"))
        .iter()
        .map(|t| {
            (
                t["passed"].as_bool().expect("passed"),
                t["message"].as_str().expect("message").to_string(),
            )
        })
        .collect()
}

/// The actions of a deployment's audit rows, in order.
fn actions(db: &TestDb, id: i64) -> Vec<String> {
    db.audit(id)
        .into_iter()
        .map(|(action, ..)| action)
        .collect()
}

/// The messages of a deployment's audit rows for `action`, in order.
fn messages(db: &TestDb, id: i64, action: &str) -> Vec<String> {
    db.query(&format!(
        "SELECT message FROM audit_logs WHERE id_deploiement = {id} AND action = '{action}' \
         ORDER BY id"
    ))
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.scalar(sql).parse().expect("a count")
}

fn deployments(db: &TestDb) -> i64 {
    count(db, "SELECT COUNT(*) FROM deploiements")
}

/// prod in `status --output json`.
fn status(db: &TestDb) -> Value {
    db.expect(&["status", "--env", "prod", "--output", "json"], 0)
        .json()
}

fn live(db: &TestDb) -> Option<String> {
    status(db)["live"]["version"].as_str().map(String::from)
}

fn path(db: &TestDb, name: &str) -> PathBuf {
    db.dir.path().join(name)
}

/// A file in the test's directory, or "" when there is none.
fn read(db: &TestDb, name: &str) -> String {
    std::fs::read_to_string(path(db, name)).unwrap_or_default()
}

fn read_pid(db: &TestDb, name: &str) -> i32 {
    read(db, name)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Whether `pid` still runs: a zombie (exited, waiting for init to reap it)
/// does not.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// Waits until every process in `pids` (files of the test's directory holding
/// one) is gone: a signal to a process group is delivered, not awaited.
fn wait_gone(db: &TestDb, pids: &[&str]) {
    for name in pids {
        let pid = read_pid(db, name);
        db.wait_for(
            &format!("process {pid} ({name}) to be gone"),
            Duration::from_secs(3),
            || !alive(pid),
        );
    }
}

/// Every file below `dir` whose name is `name`.
fn find(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            found.extend(find(&p, name));
        } else if entry.file_name() == name {
            found.push(p);
        }
    }
    found
}

// ---------------------------------------------------------------- an HTTP service

/// A small HTTP service on a free loopback port, for HTTP checks: a path that
/// starts with `/version` answers 200 with the text set by [`Service::running`],
/// `/status/500` answers 500, `/hang` reads the request and never answers;
/// anything else is 404. Every request line is kept.
struct Service {
    port: u16,
    /// Holds the file `running`.
    dir: tempfile::TempDir,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Service {
    fn start() -> Service {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopping, home) = (requests.clone(), stop.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (seen, stopping, dir) = (seen.clone(), stopping.clone(), home.clone());
                std::thread::spawn(move || answer(stream, &seen, &stopping, &dir));
            }
        });
        Service {
            port,
            dir,
            requests,
            stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What `/version` answers from now on.
    fn running(&self, text: &str) {
        std::fs::write(self.dir.path().join("running"), text).expect("running");
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer(mut stream: TcpStream, seen: &Mutex<Vec<String>>, stop: &AtomicBool, dir: &Path) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    seen.lock().expect("requests").push(line.clone());
    let target = line.split(' ').nth(1).unwrap_or_default();
    let (status, body) = if target.starts_with("/version") {
        (
            "200 OK",
            std::fs::read_to_string(dir.join("running")).unwrap_or_default(),
        )
    } else if target == "/status/500" {
        ("500 Internal Server Error", "internal error\n".to_string())
    } else if target == "/hang" {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    } else {
        ("404 Not Found", String::new())
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

// ---------------------------------------------------------------- command checks

/// A check that counts its tries in the file `tries` and passes from the try
/// the file `pass_at` names.
const COUNTS_TRIES: &str = "#!/bin/sh\n\
n=$(( $(cat tries 2>/dev/null || echo 0) + 1 ))\n\
echo $n > tries\n\
echo \"try $n of $SHIPCTL_VERSION\"\n\
[ \"$n\" -ge \"$(cat pass_at)\" ]\n";

#[test]
fn a_check_passes_on_the_first_try_or_on_the_third_of_five() {
    each_backend(|db| {
        scripts(db);
        script(db, "check.sh", COUNTS_TRIES);
        let verify = "{ command: [\"./check.sh\"], retries: 5, interval: 100ms }";
        std::fs::write(path(db, "pass_at"), "1").expect("pass_at");
        declare(db, &manifest(&["1.0", "1.1"], "1.0", BY_SCRIPT, verify));
        let out = outcome(db, "prod", 0);
        assert_eq!(out["kind"], "deployed", "{out:#}");
        let ran = tries(&out);
        assert_eq!(ran.len(), 1, "{ran:?}");
        assert!(ran[0].0, "{ran:?}");
        assert!(
            ran[0].1.contains("./check.sh exited 0") && ran[0].1.contains("try 1 of 1.0"),
            "{ran:?}"
        );
        assert_eq!(db.state(1), "réussi");
        assert_eq!(
            actions(db, 1),
            [
                "deployment.planned",
                "deployment.validated",
                "deployment.started",
                "verification.passed",
                "deployment.succeeded",
            ]
        );
        let passed = messages(db, 1, "verification.passed");
        assert!(
            passed[0].starts_with("1.0 in prod: try 1/5 (") && passed[0].contains("try 1 of 1.0"),
            "{passed:?}"
        );

        // Two failed tries, 100ms apart, then a pass: réussi, nothing rolled back.
        std::fs::write(path(db, "pass_at"), "3").expect("pass_at");
        std::fs::remove_file(path(db, "tries")).expect("reset the count");
        declare(db, &manifest(&["1.0", "1.1"], "1.1", BY_SCRIPT, verify));
        let started = Instant::now();
        let out = outcome(db, "prod", 0);
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "two intervals of 100ms: {:?}",
            started.elapsed()
        );
        let ran = tries(&out);
        assert_eq!(
            ran.iter().map(|t| t.0).collect::<Vec<_>>(),
            [false, false, true],
            "{ran:?}"
        );
        assert_eq!(out["execution"]["verification"]["tries"][2]["of"], 5);
        assert_eq!(read(db, "tries").trim(), "3", "no try after the pass");
        assert_eq!(db.state(2), "réussi");
        assert_eq!(live(db).as_deref(), Some("1.1"));
        assert_eq!(
            actions(db, 2)[3..],
            [
                "verification.failed",
                "verification.failed",
                "verification.passed",
                "deployment.succeeded",
            ]
        );
        let failed = messages(db, 2, "verification.failed");
        assert!(
            failed[1].starts_with("1.1 in prod: try 2/5 (")
                && failed[1].contains("\"./check.sh\" exited with code 1")
                && failed[1].contains("try 2 of 1.1"),
            "{failed:?}"
        );
        assert_eq!(read(db, "deploy.log"), "deploy 1.0\ndeploy 1.1\n");
        assert!(status(db)["hold"].is_null());
    });
}

#[test]
fn a_check_that_fails_every_try_is_rolled_back_and_holds_the_release() {
    each_backend(|db| {
        scripts(db);
        script(
            db,
            "check.sh",
            "#!/bin/sh\necho \"health of $SHIPCTL_VERSION\"\n[ \"$SHIPCTL_VERSION\" = 1.0 ]\n",
        );
        let verify = "{ command: [\"./check.sh\"], retries: 3, interval: 0s }";
        declare(db, &manifest(&["1.0", "1.1"], "1.0", BY_SCRIPT, verify));
        reconcile(db, 0);

        declare(db, &manifest(&["1.0", "1.1"], "1.1", BY_SCRIPT, verify));
        let out = outcome(db, "prod", 3);
        let exec = &out["execution"];
        assert_eq!(exec["outcome"], "failed", "{out:#}");
        assert_eq!(exec["deployment"]["state"], "échec");
        assert_eq!(
            exec["error"],
            "verification failed after 3 tries: \"./check.sh\" exited with code 1; output:\n\
             health of 1.1"
        );
        assert_eq!(exec["verification"]["passed"], false);
        assert_eq!(exec["verification"]["completed"], true);
        assert_eq!(tries(&out).len(), 3);
        assert_eq!(exec["rollback_command"]["version"], "1.0");
        assert_eq!(exec["rollback_command"]["succeeded"], true);

        // The rollback command ran once, for 1.0; the ledger still says 1.0.
        assert_eq!(
            read(db, "deploy.log"),
            "deploy 1.0\ndeploy 1.1\nrollback to 1.0 from 1.1\n"
        );
        assert_eq!(db.state(2), "échec");
        assert_eq!(live(db).as_deref(), Some("1.0"));
        assert_eq!(
            db.audit(2)[3..],
            [
                ("verification.failed".into(), "NULL".into(), "NULL".into()),
                ("verification.failed".into(), "NULL".into(), "NULL".into()),
                ("verification.failed".into(), "NULL".into(), "NULL".into()),
                (
                    "rollback_command.succeeded".into(),
                    "NULL".into(),
                    "NULL".into()
                ),
                (
                    "deployment.failed".into(),
                    "en_cours".into(),
                    "échec".into()
                ),
                ("hold.set".into(), "NULL".into(), "NULL".into()),
            ]
        );
        for (i, m) in messages(db, 2, "verification.failed").iter().enumerate() {
            assert!(
                m.starts_with(&format!("1.1 in prod: try {}/3 (", i + 1))
                    && m.contains("health of 1.1"),
                "{m}"
            );
        }
        let hold = &status(db)["hold"];
        assert_eq!(hold["version"], "1.1", "{hold:#}");
        assert_eq!(hold["deployment_id"], 2);
        assert_eq!(hold["reason"], "failed verification");
        let text = db.expect(&["status", "--env", "prod"], 0).stdout;
        assert!(
            text.contains("held         release 1.1: failed verification (deployment 2) since"),
            "{text}"
        );

        // Held: the next reconcile plans nothing and says why, exit 4.
        let again = outcome(db, "prod", 4);
        assert_eq!(again["kind"], "held", "{again:#}");
        assert_eq!(
            again["message"],
            "prod: 1.1 held: failed verification (deployment 2); declare another release, \
             or `shipctl deploy --release 2 --env prod` to try again"
        );
        assert_eq!(deployments(db), 2);
        assert_eq!(read(db, "deploy.log").lines().count(), 3, "nothing ran");
    });
}

#[test]
fn a_check_that_times_out_is_stopped_with_its_process_group() {
    let db = checked_by(
        "#!/bin/sh\nsleep 300 &\necho $! > child.pid\necho $$ > check.pid\necho started\nsleep 300\n",
        "{ command: [\"./check.sh\"], timeout: 1s }",
    );
    let started = Instant::now();
    let out = outcome(&db, "prod", 3);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let ran = tries(&out);
    assert_eq!(ran.len(), 1);
    assert!(
        ran[0].1.starts_with(
            "\"./check.sh\" timed out after 1s: SIGTERM to its process group, exited after"
        ) && ran[0].1.contains("started"),
        "{ran:?}"
    );
    wait_gone(&db, &["check.pid", "child.pid"]);
    assert_eq!(db.state(1), "échec");
    let failed = messages(&db, 1, "verification.failed");
    assert!(failed[0].contains("timed out after 1s"), "{failed:?}");
}

#[test]
fn rollback_verifies_the_restored_release() {
    each_backend(|db| {
        scripts(db);
        script(
            db,
            "check.sh",
            "#!/bin/sh\necho \"check $SHIPCTL_VERSION\" >> deploy.log\n[ ! -f broken ]\n",
        );
        let verify = "{ command: [\"./check.sh\"], interval: 0s }";
        for release in ["1.0", "1.1"] {
            declare(db, &manifest(&["1.0", "1.1"], release, BY_SCRIPT, verify));
            reconcile(db, 0);
        }
        std::fs::write(path(db, "deploy.log"), "").expect("clear the log");

        // The restored release fails its check: its restore is abandoned, and
        // the rollback command puts back what was live.
        std::fs::write(path(db, "broken"), "").expect("broken");
        let out = db.expect(&["rollback", "--deploy-id", "2", "--output", "json"], 3);
        let j = out.json();
        assert_eq!(j["outcome"], "failed", "{j:#}");
        assert_eq!(j["deployment"]["state"], "annulé");
        assert_eq!(j["verification"]["passed"], false);
        assert_eq!(j["rollback_command"]["version"], "1.1");
        assert_eq!(
            read(db, "deploy.log"),
            "deploy 1.0\ncheck 1.0\nrollback to 1.1 from 1.0\n"
        );
        assert_eq!(live(db).as_deref(), Some("1.1"));
        assert_eq!(db.state(2), "réussi");
        assert!(status(db)["hold"].is_null(), "a restore is not held");

        // Healthy: restored, verified, and the rolled-back deployment annulé.
        std::fs::remove_file(path(db, "broken")).expect("fixed");
        let j = db
            .expect(&["rollback", "--deploy-id", "2", "--output", "json"], 0)
            .json();
        assert_eq!(j["action"], "restored", "{j:#}");
        let id = j["deployment"]["id"].as_i64().expect("the restore's id");
        assert_eq!(j["verification"]["passed"], true);
        assert_eq!(
            actions(db, id)[3..],
            ["verification.passed", "deployment.succeeded", "pin.set"]
        );
        assert_eq!(live(db).as_deref(), Some("1.0"));
        assert_eq!(db.state(2), "annulé");
    });
}

#[test]
fn what_a_try_says_is_bounded_in_the_audit() {
    let db = checked_by(
        "#!/bin/sh\nhead -c 1000000 /dev/zero | tr '\\0' x\necho\necho the last line\nexit 1\n",
        "{ command: [\"./check.sh\"], retries: 2, interval: 0s }",
    );
    let out = outcome(&db, "prod", 3);
    for (_, message) in tries(&out) {
        assert!(message.len() < 5000, "{} bytes", message.len());
        assert!(message.ends_with("the last line"), "the end is kept");
    }
    for m in messages(&db, 1, "verification.failed") {
        assert!(m.len() <= 8192, "{} bytes", m.len());
        assert!(m.ends_with("the last line"), "the end is kept");
    }

    // An HTTP body: its first characters, no more.
    let service = Service::start();
    service.running(&"y".repeat(1_000_000));
    let (db, out) = http_verified(&service.url("/version"), "5s", 3);
    let (_, message) = &tries(&out)[0];
    assert!(
        message.len() < 1000 && message.contains("it starts \"yyy"),
        "{message}"
    );
    let failed = messages(&db, 1, "verification.failed");
    assert!(failed[0].len() < 1000, "{}", failed[0]);
}

// ---------------------------------------------------------------- HTTP checks

/// One deployment of 1.0, simulated, verified by GET `url` (wanting the body
/// to contain the version) with a `timeout`, on a ledger of its own: its exit
/// code and the reconcile's outcome.
fn http_verified(url: &str, timeout: &str, code: i32) -> (TestDb, Value) {
    let db = one_release(&format!(
        "{{ http: {{ url: \"{url}\", contains: \"{{version}}\" }}, timeout: {timeout} }}"
    ));
    let out = outcome(&db, "prod", code);
    (db, out)
}

#[test]
fn an_http_check_passes_and_each_way_of_failing_has_its_own_message() {
    let service = Service::start();
    service.running("release 1.0 is up\n");

    let url = service.url("/version");
    let (db, out) = http_verified(&url, "5s", 0);
    assert_eq!(
        tries(&out),
        [(true, format!("GET {url} → 200 OK, body contains \"1.0\""))]
    );
    assert_eq!(db.state(1), "réussi");
    assert_eq!(service.requests(), ["GET /version HTTP/1.1"]);

    let refused = format!("http://127.0.0.1:{}/version", free_port());
    let hang = service.url("/hang");
    let error = service.url("/status/500");
    let cases = [
        (
            refused.clone(),
            "release 1.0 is up\n",
            format!("GET {refused}: connection refused"),
        ),
        (hang.clone(), "", format!("GET {hang}: no answer within 1s")),
        (
            error.clone(),
            "",
            format!("GET {error}: answered 500 Internal Server Error, wanted 200"),
        ),
        (
            url.clone(),
            "release 0.9 is up\n",
            format!(
                "GET {url}: answered 200 OK, but the body does not contain \"1.0\"; \
                 it starts \"release 0.9 is up\\n\""
            ),
        ),
    ];
    for (url, running, wanted) in cases {
        service.running(running);
        let started = Instant::now();
        let (db, out) = http_verified(&url, "1s", 3);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{url}: {:?}",
            started.elapsed()
        );
        assert_eq!(tries(&out), [(false, wanted.clone())], "{url}");
        assert_eq!(
            out["execution"]["error"],
            format!("verification failed after 1 try: {wanted}")
        );
        assert_eq!(
            out["execution"]["verification"]["check"],
            format!("GET {url}")
        );
        assert_eq!(db.state(1), "échec");
        let failed = messages(&db, 1, "verification.failed");
        assert_eq!(failed.len(), 1);
        assert!(
            failed[0].starts_with("1.0 in prod: try 1/1 (") && failed[0].ends_with(&wanted),
            "{failed:?}"
        );
    }
}

// ---------------------------------------------------------------- under the lease

#[test]
fn verification_longer_than_the_lease_keeps_the_environment() {
    each_backend(|db| {
        scripts(db);
        // Verifies until the test says so: the test decides how long it lasts.
        script(
            db,
            "check.sh",
            "#!/bin/sh\ntouch verifying\nwhile [ ! -f go ]; do sleep 0.05; done\n",
        );
        declare(
            db,
            &manifest(
                &["1.0", "1.1"],
                "1.0",
                BY_SCRIPT,
                "{ command: [\"./check.sh\"], timeout: 30s }",
            ),
        );
        let first = Proc::start(
            db,
            &["--lease-ttl", "1s", "reconcile", "--manifests", "manifests"],
        );
        let verifying = path(db, "verifying");
        db.wait_for("the check to start", WAIT, || verifying.exists());
        let since = Instant::now();
        assert_eq!(db.state(1), "en_cours", "verified while en_cours");
        let other = plan(db, 2, "prod");
        // Three lease lengths and more: each try is refused, the environment busy.
        let mut refusals = 0;
        while since.elapsed() < Duration::from_secs(3) {
            let out = db.expect(&["validate", "--deploy-id", &other.to_string()], 4);
            assert!(
                out.stderr
                    .contains("environment prod is busy: deployment 1 (release 1.0) is en_cours"),
                "{}",
                out.stderr
            );
            refusals += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(refusals >= 3, "{refusals}");
        std::fs::write(path(db, "go"), "").expect("go");
        let (out, _) = first.finish(WAIT, "its check passed");
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        assert_eq!(db.state(1), "réussi");
        assert_eq!(db.state(other), "planifié");
        assert_eq!(actions(db, other), ["deployment.planned"]);
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM audit_logs WHERE action LIKE '%recover%'"
            ),
            0
        );
    });
}

// ---------------------------------------------------------------- signals

#[test]
fn sigterm_during_verification_stops_the_check_and_exits_3() {
    each_backend(|db| {
        scripts(db);
        script(
            db,
            "check.sh",
            "#!/bin/sh\n[ \"$SHIPCTL_VERSION\" = 1.0 ] && exit 0\necho $$ > check.pid\n\
             sleep 300 &\necho $! > child.pid\ntouch verifying\nwait\n",
        );
        let verify = "{ command: [\"./check.sh\"], retries: 3, interval: 0s }";
        declare(db, &manifest(&["1.0", "1.1"], "1.0", BY_SCRIPT, verify));
        reconcile(db, 0);
        declare(db, &manifest(&["1.0", "1.1"], "1.1", BY_SCRIPT, verify));
        let p = Proc::start(db, &["reconcile", "--manifests", "manifests"]);
        let verifying = path(db, "verifying");
        db.wait_for("the check to start", WAIT, || verifying.exists());
        stopped_promptly(p);
        wait_gone(db, &["check.pid", "child.pid"]);

        // Not the release's fault: a failed attempt, planned again, not held.
        assert_eq!(db.state(2), "planifié");
        let failed = messages(db, 2, "deployment.failed");
        assert!(
            failed[0].contains("interrupted by SIGTERM during verification")
                && failed[0].contains("rolled back to planifié, 2 attempt(s) left"),
            "{failed:?}"
        );
        let tried = messages(db, 2, "verification.failed");
        assert!(
            tried.len() == 1 && tried[0].contains("was stopped: SIGTERM to its process group"),
            "{tried:?}"
        );
        assert!(!actions(db, 2).contains(&"hold.set".to_string()));
        assert!(status(db)["hold"].is_null());
        assert_eq!(live(db).as_deref(), Some("1.0"));
    });
}

#[test]
fn sigterm_between_tries_or_during_an_http_try_stops_at_once() {
    let db = checked_by(
        "#!/bin/sh\necho $$ > check.pid\nexit 1\n",
        "{ command: [\"./check.sh\"], retries: 5, interval: 1m }",
    );
    let mut p = Proc::start(&db, &["reconcile", "--manifests", "manifests"]);
    // Its pid written and the process gone: the runner waits for the next try.
    p.wait_until("the first try to end", WAIT, || {
        read(&db, "check.pid")
            .trim()
            .parse()
            .is_ok_and(|pid| !alive(pid))
    });
    stopped_promptly(p);
    assert_eq!(db.state(1), "planifié");
    let failed = messages(&db, 1, "deployment.failed");
    assert!(
        failed[0].contains(
            "interrupted by SIGTERM during verification; verification stopped after 1 of 5 tries"
        ),
        "{failed:?}"
    );
    assert_eq!(messages(&db, 1, "verification.failed").len(), 1);

    // During an HTTP try that gets no answer: the same.
    let service = Service::start();
    let hang = service.url("/hang");
    let db = one_release(&format!("{{ http: {{ url: \"{hang}\" }}, timeout: 1m }}"));
    let mut p = Proc::start(&db, &["reconcile", "--manifests", "manifests"]);
    p.wait_until("the request", WAIT, || !service.requests().is_empty());
    stopped_promptly(p);
    assert_eq!(db.state(1), "planifié");
    let tried = messages(&db, 1, "verification.failed");
    assert!(
        tried[0].starts_with("1.0 in prod: try 1/1 (")
            && tried[0].ends_with(&format!("): GET {hang}: stopped")),
        "{tried:?}"
    );
}

// ---------------------------------------------------------------- held releases

#[test]
fn a_failing_verification_under_watch_makes_one_deployment_until_another_release() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    script(
        &db,
        "check.sh",
        "#!/bin/sh\n[ \"$SHIPCTL_VERSION\" != 1.0 ]\n",
    );
    let verify = "{ command: [\"./check.sh\"], interval: 0s }";
    declare(&db, &manifest(&["1.0", "1.1"], "1.0", SIM_OK, verify));
    let mut w = Proc::start(
        &db,
        &[
            "reconcile",
            "--manifests",
            "manifests",
            "--watch",
            "--interval",
            "1s",
        ],
    );
    // Ten rounds, a second apart: one deployment, then the hold said each time.
    w.wait_stderr("watch: reconciling", 10, WAIT);
    assert_eq!(deployments(&db), 1);
    assert_eq!(db.state(1), "échec");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM audit_logs WHERE action = 'deployment.started'"
        ),
        1
    );
    assert_eq!(messages(&db, 1, "hold.set").len(), 1);
    assert!(
        w.stdout()
            .matches("1.0 held: failed verification (deployment 1)")
            .count()
            >= 8,
        "{}",
        w.log()
    );

    // Another release declared: the hold is lifted, audited, and it deploys.
    declare(&db, &manifest(&["1.0", "1.1"], "1.1", SIM_OK, verify));
    w.wait_until("1.1 deployed", WAIT, || {
        count(
            &db,
            "SELECT COUNT(*) FROM deploiements WHERE id_release = 2 AND etat = 'réussi'",
        ) == 1
    });
    assert_eq!(deployments(&db), 2);
    let lifted = db.query("SELECT message FROM audit_logs WHERE action = 'hold.lifted'");
    assert_eq!(lifted.len(), 1, "{lifted:?}");
    assert_eq!(
        lifted[0][0],
        "prod: hold on 1.0 lifted: the manifests now declare 1.1"
    );
    assert!(status(&db)["hold"].is_null());
    w.signal(libc::SIGTERM);
    let (out, _) = w.finish(WAIT, "SIGTERM");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

#[test]
fn deploy_of_a_held_release_lifts_the_hold_and_reconcile_runs_it() {
    each_backend(|db| {
        script(db, "check.sh", "#!/bin/sh\n[ ! -f broken ]\n");
        std::fs::write(path(db, "broken"), "").expect("broken");
        declare_one(db, "{ command: [\"./check.sh\"], interval: 0s }");
        reconcile(db, 3);
        assert_eq!(outcome(db, "prod", 4)["kind"], "held");
        assert_eq!(deployments(db), 1);

        // A person asks for it again: the hold goes, audited with the new plan.
        std::fs::remove_file(path(db, "broken")).expect("fixed");
        let again = plan(db, 1, "prod");
        assert_eq!(again, 2);
        assert_eq!(actions(db, again), ["deployment.planned", "hold.lifted"]);
        let lifted = messages(db, again, "hold.lifted");
        assert_eq!(
            lifted,
            ["prod: hold on 1.0 lifted: planned again by tester"],
            "on {:?}",
            db.backend
        );
        assert!(status(db)["hold"].is_null());
        let out = outcome(db, "prod", 0);
        assert_eq!(out["execution"]["deployment"]["id"], again, "{out:#}");
        assert_eq!(db.state(again), "réussi");
        assert_eq!(deployments(db), 2);
    });
}

#[test]
fn a_gate_rejection_and_used_up_attempts_hold_the_release_too() {
    each_backend(|db| {
        let manifest = |release: &str| {
            format!(
                "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\n  - {{ version: \"1.1\", tag: v1.1 }}\n\
                 environments:\n  \
                 staging:\n    release: \"{release}\"\n    executor: {SIM_OK}\n    \
                 gates: {{ scan: {{ command: [\"sh\", \"-c\", \"[ \\\"$SHIPCTL_VERSION\\\" != 1.0 ]\"] }} }}\n  \
                 prod:\n    release: \"{release}\"\n    max_attempts: 2\n    \
                 executor: {{ command: {{ run: [\"sh\", \"-c\", \"[ \\\"$SHIPCTL_VERSION\\\" != 1.0 ]\"] }} }}\n"
            )
        };
        declare(db, &manifest("1.0"));
        // staging: rejected at its gates; prod: attempt 1 of 2 failed.
        let out = reconcile(db, 3);
        assert_eq!(db.state(1), "échec", "{}", out.stdout);
        assert_eq!(db.state(2), "planifié");
        // prod: attempt 2 of 2 failed, cancelled.
        reconcile(db, 3);
        assert_eq!(db.state(2), "annulé");
        assert_eq!(
            messages(db, 1, "hold.set").len() + messages(db, 2, "hold.set").len(),
            2
        );
        // Both held: nothing planned, nothing run, exit 4.
        let before = db.snapshot();
        for (env, id, why) in [
            ("staging", 1, "rejected at its gates"),
            ("prod", 2, "all 2 attempts failed"),
        ] {
            let out = outcome(db, env, 4);
            assert_eq!(out["kind"], "held");
            assert_eq!(
                out["message"],
                format!(
                    "{env}: 1.0 held: {why} (deployment {id}); declare another release, or \
                     `shipctl deploy --release 1 --env {env}` to try again"
                )
            );
        }
        assert_eq!(db.snapshot(), before, "a held reconcile writes nothing");
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM audit_logs WHERE action = 'deployment.started'"
            ),
            2
        );

        // Another release declared: both holds lifted, audited; both deploy.
        declare(db, &manifest("1.1"));
        reconcile(db, 0);
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM audit_logs WHERE action = 'hold.lifted'"
            ),
            2
        );
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM deploiements WHERE id_release = 2 AND etat = 'réussi'"
            ),
            2
        );
    });
}

// ---------------------------------------------------------------- injection

#[test]
fn a_version_reaches_checks_encoded_in_urls_and_as_a_variable_never_a_shell() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let evil = "$(touch pwned)";
    let service = Service::start();
    service.running(&format!("running {evil}\n"));
    script(
        &db,
        "check.sh",
        "#!/bin/sh\nprintf '%s\\n' \"$SHIPCTL_VERSION\" \"$1\" > seen\n",
    );
    let url = service.url("/version/{version}?tag={tag}&env={env}");
    declare(
        &db,
        &format!(
            "releases:\n  - {{ version: '{evil}', tag: 'v{evil}' }}\nenvironments:\n  \
             staging:\n    release: '{evil}'\n    executor: {SIM_OK}\n    \
             verify: {{ http: {{ url: \"{url}\", contains: \"{{version}}\" }} }}\n  \
             prod:\n    release: '{evil}'\n    executor: {SIM_OK}\n    \
             verify: {{ command: [\"./check.sh\", \"{{version}}\"] }}\n"
        ),
    );
    let j = reconciled(&db, 0);
    assert_eq!(
        service.requests(),
        ["GET /version/%24%28touch%20pwned%29?tag=v%24%28touch%20pwned%29&env=staging HTTP/1.1"]
    );
    let staging = &of(&j, "staging")["outcome"];
    assert_eq!(
        staging["execution"]["verification"]["check"],
        format!("GET {url}"),
        "{j:#}"
    );
    // The variable holds the version as it is; `{version}` stays as written
    // outside an HTTP check.
    assert_eq!(read(&db, "seen"), format!("{evil}\n{{version}}\n"));
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM deploiements WHERE etat = 'réussi'"
        ),
        2
    );
    assert!(find(db.dir.path(), "pwned").is_empty());
}

// ---------------------------------------------------------------- check and dry run

/// `reconcile --dry-run --output OUTPUT`, exiting `code`.
fn dry_run(db: &TestDb, output: &str, code: i32) -> Run {
    db.expect(
        &[
            "reconcile",
            "--manifests",
            "manifests",
            "--dry-run",
            "--output",
            output,
        ],
        code,
    )
}

#[test]
fn check_and_dry_run_never_run_a_check_and_the_plan_names_it() {
    let db = checked_by(
        "#!/bin/sh\ntouch canary\nexit 1\n",
        "{ command: [\"./check.sh\"], retries: 3, interval: 0s }",
    );
    let canary = path(&db, "canary");
    let verifies = "then verifies: ./check.sh (3 tries)";
    db.expect(&["check", "--manifests", "manifests"], 0);
    for output in ["text", "markdown"] {
        let plan = dry_run(&db, output, 2).stdout;
        assert!(plan.contains(verifies), "{output}:\n{plan}");
    }
    let j = dry_run(&db, "json", 2).json();
    assert!(
        j["would_run"][0]["run"]
            .as_str()
            .is_some_and(|r| r.ends_with(verifies)),
        "{j:#}"
    );
    assert!(!canary.exists(), "check or the dry run ran the check");

    // The canary works: a real run verifies (and fails, and holds).
    reconcile(&db, 3);
    assert!(canary.exists());
    std::fs::remove_file(&canary).expect("rm canary");
    // Held back, nothing to apply now: exit 0, as for a pinned environment.
    let held = "held: failed verification (deployment 1): not planned again";
    for output in ["text", "markdown"] {
        let plan = dry_run(&db, output, 0).stdout;
        assert!(plan.contains(held), "{output}:\n{plan}");
    }
    let j = dry_run(&db, "json", 0).json();
    assert_eq!(j["in_sync"], true, "{j:#}");
    assert_eq!(j["held_back"], serde_json::json!(["prod"]));
    let action = &j["plan"]["environments"][0]["action"];
    assert_eq!(action["kind"], "held", "{j:#}");
    assert_eq!(action["hold"]["reason"], "failed verification");
    assert!(!canary.exists(), "the dry run ran the check");
}
