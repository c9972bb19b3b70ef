//! Test harness: a fresh database per test on each backend, the real binary,
//! and direct SQL to check what it wrote.
//!
//! SQLite always runs. PostgreSQL and MariaDB run when SHIPCTL_TEST_POSTGRES_URL
//! / SHIPCTL_TEST_MYSQL_URL are set (an admin URL; each test creates and drops
//! its own database there). Unset: the test says so on the real stderr (not
//! captured) and skips that backend, or fails when SHIPCTL_TEST_REQUIRE_BACKENDS=1
//! (as `.ci/run` sets it). Set but the server is unreachable: the test fails.
#![allow(dead_code)]

pub mod account;
pub mod process;
pub mod proxy;
pub mod servers;
pub mod ssh;

pub use process::{Proc, describe, until, watcher};

use sqlx::{AnyConnection, Connection, Row};
use std::io::Write;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

pub const ALL: [Backend; 3] = [Backend::Sqlite, Backend::Postgres, Backend::MySql];

impl Backend {
    fn env_var(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("SHIPCTL_TEST_POSTGRES_URL"),
            Backend::MySql => Some("SHIPCTL_TEST_MYSQL_URL"),
        }
    }
}

pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// Working directory of every command (and home of the SQLite file).
    pub dir: tempfile::TempDir,
    admin: Option<(String, String)>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

impl TestDb {
    /// A fresh, empty database on `backend`, or `None` (with a note) when the
    /// backend's URL is not set.
    pub fn new(backend: Backend) -> Option<TestDb> {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("temp dir");
        let Some(var) = backend.env_var() else {
            let path = dir.path().join("shipctl.db");
            return Some(TestDb {
                backend,
                url: format!("sqlite://{}", path.display()),
                dir,
                admin: None,
            });
        };
        let Ok(admin) = std::env::var(var) else {
            if std::env::var("SHIPCTL_TEST_REQUIRE_BACKENDS").as_deref() == Ok("1") {
                panic!(
                    "{var} is not set, and SHIPCTL_TEST_REQUIRE_BACKENDS=1 requires every \
                     backend: set {var} to an admin URL of a running {backend:?} server"
                );
            }
            // Straight to the process's stderr: libtest captures `eprintln!`, and a
            // skipped backend must be seen by whoever reads the run.
            let test = std::thread::current()
                .name()
                .unwrap_or("a test")
                .to_string();
            let _ = writeln!(
                std::io::stderr(),
                "note: {test}: the {backend:?} part is SKIPPED: {var} is not set"
            );
            return None;
        };
        let name = format!(
            "shipctl_t{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            rand::random::<u32>()
        );
        let admin_driver = admin.replacen("mariadb://", "mysql://", 1);
        block_on(async {
            let mut c = AnyConnection::connect(&admin_driver)
                .await
                .unwrap_or_else(|e| panic!("{var} is set but the server is unreachable: {e}"));
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut c)
                .await
                .expect("create test database");
        });
        let url = with_database(&admin_driver, &name);
        Some(TestDb {
            backend,
            url,
            dir,
            admin: Some((admin_driver, name)),
        })
    }

    /// The binary, pointed at this database, with a fixed actor and no colour.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_shipctl"));
        c.current_dir(self.dir.path())
            .env("SHIPCTL_DATABASE_URL", &self.url)
            .env("USER", "tester")
            .env("NO_COLOR", "1")
            .env_remove("SHIPCTL_LEASE_TTL")
            .env_remove("SHIPCTL_ACTOR");
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.cmd().args(args).output().expect("run shipctl");
        Run::from(out)
    }

    /// Runs and insists on an exit code, showing the output when it differs.
    pub fn expect(&self, args: &[&str], code: i32) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code, code,
            "shipctl {args:?} on {:?} exited {} (wanted {code})\nstdout:\n{}\nstderr:\n{}",
            self.backend, r.code, r.stdout, r.stderr
        );
        r
    }

    /// Rows as strings; NULL as "NULL". Select only text and integer columns.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let sql = if self.backend == Backend::Postgres {
            number(sql)
        } else {
            sql.to_string()
        };
        block_on(async {
            let mut c = AnyConnection::connect(&self.url).await.expect("connect");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_all(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            rows.iter()
                .map(|r| (0..r.len()).map(|i| cell(r, i)).collect())
                .collect()
        })
    }

    pub fn scalar(&self, sql: &str) -> String {
        self.query(sql)
            .first()
            .and_then(|r| r.first().cloned())
            .unwrap_or_else(|| panic!("no row for {sql}"))
    }

    pub fn state(&self, deploy_id: i64) -> String {
        self.scalar(&format!(
            "SELECT etat FROM deploiements WHERE id = {deploy_id}"
        ))
    }

    /// The release live in `env`: the newest `réussi` deployment's, by fencing token.
    pub fn live(&self, env: &str) -> Option<String> {
        self.query(&format!(
            "SELECT r.version FROM deploiements d JOIN releases r ON r.id = d.id_release \
             JOIN environnements e ON e.id = d.id_env \
             WHERE e.nom = '{env}' AND d.etat = 'réussi' ORDER BY d.fencing_token DESC LIMIT 1"
        ))
        .first()
        .map(|r| r[0].clone())
    }

    /// (action, etat_avant, etat_apres) of one deployment's audit rows, in order.
    pub fn audit(&self, deploy_id: i64) -> Vec<(String, String, String)> {
        self.query(&format!(
            "SELECT action, etat_avant, etat_apres FROM audit_logs \
             WHERE id_deploiement = {deploy_id} ORDER BY id"
        ))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect()
    }

    /// Every row of every table, as text: equal snapshots mean nothing was written.
    pub fn snapshot(&self) -> String {
        let tables = [
            "shipctl_migrations",
            "releases",
            "environnements",
            "deploiements",
            "audit_logs",
            "gate_results",
            "notification_targets",
            "notification_outbox",
        ];
        let mut out = String::new();
        for t in tables {
            out.push_str(&format!("== {t}\n"));
            for r in self.table_rows(t) {
                out.push_str(&r);
                out.push('\n');
            }
        }
        out
    }

    /// Every row of every table the database holds, found in its catalog (a
    /// table added by a later migration counts too), as text, sorted per table.
    pub fn all_rows(&self) -> String {
        let catalog = match self.backend {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_stat%' ORDER BY name"
            }
            Backend::Postgres => {
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 ORDER BY table_name"
            }
            Backend::MySql => {
                "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' \
                 ORDER BY table_name"
            }
        };
        let mut out = String::new();
        for t in self.query(catalog) {
            out.push_str(&format!("== {}\n", t[0]));
            for r in self.table_rows(&t[0]) {
                out.push_str(&r);
                out.push('\n');
            }
        }
        out
    }

    /// A hash of [`TestDb::all_rows`]: the same before and after a command,
    /// and the command wrote nothing.
    pub fn rows_hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.all_rows().hash(&mut h);
        h.finish()
    }

    /// One table's rows, each as its columns' text joined by `|`, sorted.
    fn table_rows(&self, t: &str) -> Vec<String> {
        let sql = match self.backend {
            Backend::Postgres => format!("SELECT CAST({t} AS TEXT) FROM {t}"),
            Backend::Sqlite | Backend::MySql => {
                let columns = if self.backend == Backend::Sqlite {
                    format!("SELECT name FROM pragma_table_info('{t}') ORDER BY cid")
                } else {
                    format!(
                        "SELECT column_name FROM information_schema.columns \
                         WHERE table_schema = DATABASE() AND table_name = '{t}' \
                         ORDER BY ordinal_position"
                    )
                };
                let text = if self.backend == Backend::Sqlite {
                    "TEXT"
                } else {
                    "CHAR"
                };
                let list: Vec<String> = self
                    .query(&columns)
                    .iter()
                    .map(|c| format!("IFNULL(CAST({} AS {text}), 'NULL')", c[0]))
                    .collect();
                format!("SELECT {} FROM {t}", list.join(", "))
            }
        };
        let mut rows: Vec<String> = self.query(&sql).into_iter().map(|r| r.join("|")).collect();
        rows.sort();
        rows
    }

    /// Polls `check` until it holds or the deadline passes.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if check() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.admin.take() {
            let force = if self.backend == Backend::Postgres {
                " WITH (FORCE)"
            } else {
                ""
            };
            block_on(async {
                if let Ok(mut c) = AnyConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name}{force}"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        }
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// The id in "Created release N: ..." / "Planned deployment N: ...": the first number.
    pub fn id(&self) -> i64 {
        let digits: String = self
            .stdout
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("no id in {:?}", self.stdout))
    }
}

fn with_database(admin: &str, name: &str) -> String {
    let mut u = url::Url::parse(admin).expect("admin URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

fn number(sql: &str) -> String {
    let mut n = 0;
    let mut out = String::new();
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

fn cell(row: &sqlx::any::AnyRow, i: usize) -> String {
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v.map_or("NULL".into(), |v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v.unwrap_or_else(|| "NULL".into());
    }
    if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
        return v.map_or("NULL".into(), |v| if v { "1" } else { "0" }.into());
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
        return v.map_or("NULL".into(), |v| v.to_string());
    }
    panic!("column {i} is neither integer, text nor float")
}

/// Runs `body` once per backend whose database is available.
pub fn each_backend(mut body: impl FnMut(&TestDb)) {
    for b in ALL {
        if let Some(db) = TestDb::new(b) {
            body(&db);
        }
    }
}

/// An executable shell script in the test's working directory.
pub fn script(db: &TestDb, name: &str, body: &str) {
    let path = db.dir.path().join(name);
    std::fs::write(&path, body).expect("write script");
    let mut perm = std::fs::metadata(&path).expect("script").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&path, perm).expect("chmod");
}

/// `env`'s live release, asked through shipctl (the ledger may not exist yet).
pub fn live_in(db: &TestDb, env: &str) -> Option<String> {
    let r = db.run(&["status", "--env", env, "--output", "json"]);
    if r.code != 0 {
        return None;
    }
    r.json()["live"]["version"].as_str().map(str::to_string)
}

/// Replaces the whole desired state: `manifests/shipctl.yaml`.
pub fn declare(db: &TestDb, text: &str) {
    let dir = db.dir.path().join("manifests");
    std::fs::create_dir_all(&dir).expect("manifest dir");
    std::fs::write(dir.join("shipctl.yaml"), text).expect("write manifest");
}

/// `git ARGS` in `repo` as a fixed committer, which must succeed.
pub fn git(repo: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(repo)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `approve --deploy-id ID --gate qa --by BY`: the approval most tests give.
pub fn approval<'a>(id: &'a str, by: &'a str) -> [&'a str; 7] {
    ["approve", "--deploy-id", id, "--gate", "qa", "--by", by]
}

/// Creates a release and returns its id.
pub fn release(db: &TestDb, version: &str) -> i64 {
    db.expect(
        &[
            "release",
            "--create",
            version,
            "--tag",
            &format!("v{version}"),
        ],
        0,
    )
    .id()
}

/// Plans a deployment and returns its id.
pub fn plan(db: &TestDb, release: i64, env: &str) -> i64 {
    db.expect(
        &["deploy", "--release", &release.to_string(), "--env", env],
        0,
    )
    .id()
}

/// Validates with a simulation that always succeeds, quickly.
pub fn succeed(db: &TestDb, deploy: i64) {
    db.expect(
        &[
            "validate",
            "--deploy-id",
            &deploy.to_string(),
            "--duration",
            "0s",
            "--failure-rate",
            "0",
        ],
        0,
    );
}

/// Polls a query on a connection of its own until stopped, and remembers the
/// highest value the first column of any row ever had: "never two `en_cours`".
pub struct Sampler {
    stop: Arc<AtomicBool>,
    started: std::sync::mpsc::Receiver<()>,
    handle: std::thread::JoinHandle<(u64, i64)>,
}

impl Sampler {
    pub fn start(db: &TestDb, sql: String) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, started) = std::sync::mpsc::channel();
        let url = db.url.clone();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            block_on(async move {
                let mut c = AnyConnection::connect(&url).await.expect("sampler connect");
                let (mut samples, mut max) = (0u64, 0i64);
                loop {
                    let done = flag.load(Ordering::SeqCst);
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                        .fetch_all(&mut c)
                        .await
                        .expect("sample");
                    for r in rows {
                        max = max.max(r.try_get::<i64, _>(0).expect("count"));
                    }
                    samples += 1;
                    if samples == 1 {
                        let _ = tx.send(());
                    }
                    if done {
                        return (samples, max);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        });
        Sampler {
            stop,
            started,
            handle,
        }
    }

    /// Blocks until the first sample was taken.
    pub fn wait_started(&self) {
        self.started
            .recv_timeout(Duration::from_secs(15))
            .expect("the sampler never took a sample");
    }

    /// Stops it: (samples taken, highest value seen).
    pub fn stop(self) -> (u64, i64) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("sampler thread")
    }
}

/// A starting gate: every command built by [`Gate::command`] waits in a shell
/// on the gate's pipe, and [`Gate::open`] releases them all at once (EOF).
pub struct Gate {
    reader: std::io::PipeReader,
    writer: std::io::PipeWriter,
}

impl Gate {
    pub fn new() -> Gate {
        let (reader, writer) = std::io::pipe().expect("pipe");
        Gate { reader, writer }
    }

    /// The binary with the harness's settings, held until the gate opens.
    pub fn command<I>(&self, db: &TestDb, args: I) -> Command
    where
        I: IntoIterator,
        I::Item: AsRef<std::ffi::OsStr>,
    {
        let base = db.cmd();
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(r#"read -r go; exec "$0" "$@""#)
            .arg(base.get_program())
            .args(args)
            .current_dir(db.dir.path())
            .stdin(self.reader.try_clone().expect("clone the gate"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in base.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    pub fn open(self) {
        drop(self.writer);
    }
}
