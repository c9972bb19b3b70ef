//! Private database servers for the fault tests: one PostgreSQL or MariaDB per
//! test, in a temp dir, on a free loopback port, that a test may stop, kill and
//! restart without touching the shared servers other tests use.
//!
//! Each server runs in its own process group, so that `kill()` also takes
//! PostgreSQL's backends with it (an orphaned backend would keep the shared
//! memory and the next start would refuse). Whatever happens, `Drop` kills the
//! group by pid.

use super::{Backend, TestDb, block_on};
use sqlx::{AnyConnection, Connection};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    MariaDb,
}

impl Kind {
    pub fn backend(self) -> Backend {
        match self {
            Kind::Postgres => Backend::Postgres,
            Kind::MariaDb => Backend::MySql,
        }
    }
}

/// How long a server may take to accept connections after a start.
const READY: Duration = Duration::from_secs(60);
/// How long `stop()` waits after SIGTERM/SIGINT before it uses SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// The database every test works in (created once, kept across restarts).
const DATABASE: &str = "shipctl_fault";

pub struct Server {
    pub kind: Kind,
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Option<Child>,
}

/// Prints (where a person reading the run sees it) why a test does not run,
/// or fails when `SHIPCTL_TEST_REQUIRE_BACKENDS=1` says it must run.
pub fn skip(why: &str) {
    if std::env::var("SHIPCTL_TEST_REQUIRE_BACKENDS").as_deref() == Ok("1") {
        panic!("SHIPCTL_TEST_REQUIRE_BACKENDS=1 but {why}");
    }
    let _ = writeln!(std::io::stderr(), "skipping: {why}");
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn postgres_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn mariadb_bin() -> Option<PathBuf> {
    let found = |p: &str| Path::new(p).is_file();
    (found("/usr/sbin/mariadbd") && found("/usr/bin/mariadb-install-db"))
        .then(|| PathBuf::from("/usr/sbin"))
}

/// The uid and gid of the `postgres` account (initdb and postgres refuse root).
fn postgres_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"postgres") && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

fn run_setup(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Server {
    /// Initialises and starts a private server, with an empty database for the
    /// test; `None` (after saying why) when its binaries are not installed.
    pub fn start(kind: Kind) -> Option<Server> {
        sqlx::any::install_default_drivers();
        let dir = tempfile::Builder::new()
            .prefix("shipctl-server-")
            .tempdir()
            .expect("temp dir");
        let bin = match kind {
            Kind::Postgres => {
                let Some(bin) = postgres_bin() else {
                    skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin");
                    return None;
                };
                let Some((uid, gid)) = postgres_ids() else {
                    skip("no `postgres` user to run a private PostgreSQL as");
                    return None;
                };
                std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                    .expect("chown the server's temp dir to postgres");
                run_setup(
                    Command::new("runuser")
                        .args(["-u", "postgres", "--"])
                        .arg(bin.join("initdb"))
                        .arg("-D")
                        .arg(dir.path().join("data"))
                        .args([
                            "-U",
                            "postgres",
                            "-A",
                            "trust",
                            "-E",
                            "UTF8",
                            "--locale=C",
                            "--no-sync",
                        ]),
                    "initdb",
                );
                bin
            }
            Kind::MariaDb => {
                let Some(bin) = mariadb_bin() else {
                    skip("no MariaDB server binaries (/usr/sbin/mariadbd, mariadb-install-db)");
                    return None;
                };
                // A temp dir of its own: bootstraps running at once in /tmp
                // trip over each other's temporary tables.
                std::fs::create_dir_all(dir.path().join("tmp")).expect("tmp dir");
                run_setup(
                    Command::new("mariadb-install-db")
                        .arg("--no-defaults")
                        .arg("--user=root")
                        .arg(format!("--tmpdir={}", dir.path().join("tmp").display()))
                        .arg(format!("--datadir={}", dir.path().join("data").display()))
                        .args([
                            "--auth-root-authentication-method=normal",
                            "--skip-test-db",
                            "--skip-name-resolve",
                            "--innodb-flush-log-at-trx-commit=0",
                            "--innodb-doublewrite=0",
                            "--innodb-buffer-pool-size=16M",
                            "--innodb-log-file-size=8M",
                        ]),
                    "mariadb-install-db",
                );
                bin
            }
        };
        let mut server = Server {
            kind,
            port: free_port(),
            dir,
            bin,
            child: None,
        };
        server.spawn();
        block_on(async {
            let mut c = AnyConnection::connect(&server.admin_url())
                .await
                .expect("connect to the private server");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DATABASE}")))
                .execute(&mut c)
                .await
                .expect("create the test database");
        });
        Some(server)
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{:?} is already running", self.kind);
        let log = std::fs::File::create(self.dir.path().join(format!("server-{}.log", self.port)))
            .or_else(|_| std::fs::File::create("/dev/null"))
            .expect("server log");
        let mut cmd = match self.kind {
            Kind::Postgres => {
                let (uid, gid) = postgres_ids().expect("postgres user");
                let mut c = Command::new(self.bin.join("postgres"));
                c.arg("-D")
                    .arg(self.dir.path().join("data"))
                    .arg("-p")
                    .arg(self.port.to_string())
                    .args(["-c", "listen_addresses=127.0.0.1"])
                    .arg("-c")
                    .arg(format!(
                        "unix_socket_directories={}",
                        self.dir.path().display()
                    ))
                    // fsync off (data reaches the OS, a killed server loses
                    // nothing; only an OS crash would), synchronous_commit left
                    // on: off would lose the last commits on a kill.
                    .args([
                        "-c",
                        "fsync=off",
                        "-c",
                        "full_page_writes=off",
                        "-c",
                        "shared_buffers=16MB",
                        "-c",
                        "max_connections=40",
                        "-c",
                        "logging_collector=off",
                    ])
                    // Directly as postgres (not through runuser, which would stay
                    // the parent): the pid is the postmaster's.
                    .uid(uid)
                    .gid(gid);
                c
            }
            Kind::MariaDb => {
                let d = self.dir.path();
                let mut c = Command::new(self.bin.join("mariadbd"));
                c.arg("--no-defaults")
                    .arg("--user=root")
                    .arg(format!("--datadir={}", d.join("data").display()))
                    .arg(format!("--socket={}", d.join("mysqld.sock").display()))
                    .arg(format!("--pid-file={}", d.join("mysqld.pid").display()))
                    .arg(format!("--port={}", self.port))
                    .arg(format!("--tmpdir={}", d.join("tmp").display()))
                    .args([
                        "--skip-networking=0",
                        "--bind-address=127.0.0.1",
                        "--skip-name-resolve",
                        // 2, not 0: the log is written (not synced) at each
                        // commit, so a killed server loses no committed row;
                        // 0 would lose the last second's commits.
                        "--innodb-flush-log-at-trx-commit=2",
                        "--innodb-doublewrite=0",
                        "--innodb-buffer-pool-size=16M",
                        "--innodb-log-file-size=8M",
                        "--innodb-use-native-aio=0",
                        "--performance-schema=OFF",
                        "--skip-log-bin",
                        "--max-connections=40",
                    ]);
                c
            }
        };
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", self.kind));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY;
        let url = self.admin_url();
        loop {
            if block_on(AnyConnection::connect(&url)).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                panic!(
                    "private {:?} on port {} exited at start ({status}):\n{}",
                    self.kind,
                    self.port,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "private {:?} on port {} not ready after {READY:?}:\n{}",
                self.kind,
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's own log (for failure messages).
    pub fn log(&self) -> String {
        let path = self.dir.path().join(format!("server-{}.log", self.port));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let start = text.len().saturating_sub(1500);
        text[text.floor_char_boundary(start)..].to_string()
    }

    /// The superuser URL, on the server's default database.
    pub fn admin_url(&self) -> String {
        match self.kind {
            Kind::Postgres => format!("postgres://postgres@127.0.0.1:{}/postgres", self.port),
            Kind::MariaDb => format!("mysql://root@127.0.0.1:{}/mysql", self.port),
        }
    }

    /// The test's database on this server.
    pub fn url(&self) -> String {
        self.url_on(self.port)
    }

    /// The test's database as seen through another port (a proxy's).
    pub fn url_on(&self, port: u16) -> String {
        match self.kind {
            Kind::Postgres => format!("postgres://postgres@127.0.0.1:{port}/{DATABASE}"),
            Kind::MariaDb => format!("mysql://root@127.0.0.1:{port}/{DATABASE}"),
        }
    }

    /// A harness database on this server: commands and queries go straight to
    /// it (a test points a command at a proxy by overriding
    /// `SHIPCTL_DATABASE_URL`). Dropping it leaves the server alone.
    pub fn test_db(&self) -> TestDb {
        TestDb {
            backend: self.kind.backend(),
            url: self.url(),
            dir: tempfile::tempdir().expect("temp dir"),
            admin: None,
        }
    }

    pub fn pid(&self) -> Option<i32> {
        self.child
            .as_ref()
            .map(|c| i32::try_from(c.id()).expect("pid"))
    }

    fn signal_group(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the process group of a child we spawned and
            // have not reaped yet.
            unsafe { libc::kill(-pid, sig) };
        }
    }

    /// A clean shutdown (PostgreSQL's fast shutdown, SIGINT: its SIGTERM would
    /// wait for every client to leave; MariaDB's SIGTERM), SIGKILL after a
    /// grace period.
    pub fn stop(&mut self) {
        let Some(pid) = self.pid() else { return };
        let sig = match self.kind {
            Kind::Postgres => libc::SIGINT,
            Kind::MariaDb => libc::SIGTERM,
        };
        // SAFETY: kill(2) on a child we spawned and have not reaped yet.
        unsafe { libc::kill(pid, sig) };
        let deadline = Instant::now() + STOP_GRACE;
        let child = self.child.as_mut().expect("child");
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// SIGKILL to the server and every process of its group, at once.
    pub fn kill(&mut self) {
        self.signal_group(libc::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // PostgreSQL's backends are in the group too: wait until none is left,
        // or the next start finds their shared memory still in use.
        if self.kind == Kind::Postgres {
            let data = self.dir.path().join("data");
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline && any_process_in(&data) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts it again on the same port, with the same data.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// `stop()` then `start_again()`.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// Whether a process still has `dir` (a data directory) as its working
/// directory: PostgreSQL's backends do.
fn any_process_in(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        e.file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
            && std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == dir)
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts one server of each kind at once (they take seconds each), keeping
/// those whose binaries are installed.
pub fn start_all() -> Vec<Server> {
    let handles: Vec<_> = [Kind::Postgres, Kind::MariaDb]
        .into_iter()
        .map(|k| std::thread::spawn(move || Server::start(k)))
        .collect();
    handles
        .into_iter()
        .filter_map(|h| h.join().expect("server start"))
        .collect()
}
