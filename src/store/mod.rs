//! The database: connecting from a URL, migrating, opening transactions, and the
//! ledger's queries. Backend differences stay in `dialect`; everything above
//! this module speaks one SQL.

pub mod chain;
mod dialect;
pub mod ledger;
mod migrate;
pub use migrate::LATEST as LEDGER_SCHEMA_VERSION;
pub mod outbox;
mod scan;
pub mod stats;
pub mod url;

pub use dialect::Dialect;
pub use url::{Backend, DbUrl};

use crate::error::{DbContext, Error, Result};
use sqlx::{Any, AnyConnection, Connection, Transaction};
use std::time::Duration;

pub type Tx<'c> = Transaction<'c, Any>;

/// How long the database may take: to accept a connection, and to grant a lock
/// or finish a statement. Every wait on the database is bounded by one of them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect: Duration,
    pub lock: Duration,
    /// Who this process is in the server's session list (`application_name`).
    pub holder: &'static str,
}

impl Limits {
    /// How long a whole short transaction may take before the server is
    /// presumed gone: the lock wait it may legitimately do, plus a margin for
    /// the rest (half the lock timeout, between 1s and 5s).
    pub fn answer(&self) -> Duration {
        let margin = (self.lock / 2).clamp(Duration::from_secs(1), Duration::from_secs(5));
        self.lock + margin
    }
}

pub struct Store {
    conn: AnyConnection,
    pub d: Dialect,
    url: DbUrl,
    /// What the connection was opened with, to open it again.
    driver: String,
    pub limits: Limits,
    /// SQLite: whether this connection waits `limits.lock` for the write lock
    /// yet. Set before the first write; readers never wait for it.
    patient: bool,
    /// The connection may be mid-statement or mid-transaction (a bounded
    /// phase ran out, or an error left a transaction behind): re-open it
    /// before the next use.
    broken: bool,
    /// Whether its phases arm the process's watchdog (`supervisor::phase`).
    /// A reader that bounds its own waits (the watch's HTTP endpoints) does
    /// not: its requests must neither extend nor trip the deadline of the
    /// watch's own round.
    watchdog: bool,
}

impl Store {
    /// Connects and brings the schema up to date. On an up-to-date database this
    /// costs one query beyond the connection itself.
    pub async fn open(url: &DbUrl, limits: Limits) -> Result<Store> {
        let mut store = Store::connect(url, url.driver_url(), limits, true).await?;
        if !migrate::is_current(&mut store.conn).await {
            // Migrating is writing: wait for other writers like any writer does,
            // and for another process's migration (60s at most on MariaDB).
            crate::supervisor::phase_for(limits.answer() + Duration::from_secs(60));
            store.be_patient().await?;
            migrate::ensure(&mut store.conn, store.d, url.redacted()).await?;
        }
        Ok(store)
    }

    /// Opens the ledger for a command that only reads (`status`, `history`,
    /// `audit`, `release --list`): nothing is created, migrated or altered, and
    /// a missing ledger is "no ledger at URL" rather than an empty one.
    pub async fn open_read(url: &DbUrl, limits: Limits) -> Result<Store> {
        match Store::open_for_plan(url, limits).await? {
            Some(store) => Ok(store),
            None => Err(migrate::no_ledger(url.redacted())),
        }
    }

    /// Opens the ledger read-only for `reconcile --dry-run`. `None` only when
    /// there is no ledger at all (no file; a database without tables): a ledger
    /// that exists but cannot be read is an error, never an empty plan base.
    pub async fn open_for_plan(url: &DbUrl, limits: Limits) -> Result<Option<Store>> {
        Store::open_reader(url, limits, true).await
    }

    /// Opens the ledger read-only for the watch's HTTP endpoints (DESIGN §11):
    /// a connection of its own, bounded by the same limits, whose waits the
    /// caller bounds itself (the process's watchdog belongs to the watch).
    pub async fn open_read_unsupervised(url: &DbUrl, limits: Limits) -> Result<Store> {
        match Store::open_reader(url, limits, false).await? {
            Some(store) => Ok(store),
            None => Err(migrate::no_ledger(url.redacted())),
        }
    }

    async fn open_reader(url: &DbUrl, limits: Limits, watchdog: bool) -> Result<Option<Store>> {
        let driver = match url.sqlite_path() {
            Some(path) => {
                if !sqlite_file_present(&path, url)? {
                    return Ok(None);
                }
                // `mode=ro`: SQLite neither creates the file nor writes to it;
                // sqlx's own connect pragma (foreign_keys) changes nothing stored.
                format!("sqlite://{}?mode=ro", path.display())
            }
            None => url.driver_url().to_string(),
        };
        let mut store = Store::connect(url, &driver, limits, watchdog).await?;
        let found = async {
            read_only_session(&mut store.conn, url.backend)
                .await
                .map_err(|e| {
                    Error::database(
                        &format!("preparing a read-only session on {}", url.redacted()),
                        e,
                    )
                })?;
            migrate::inspect(&mut store.conn, store.d, url.redacted()).await
        }
        .await;
        match found {
            Ok(migrate::Found::Ledger) => Ok(Some(store)),
            Ok(migrate::Found::Missing) => {
                store.close().await;
                Ok(None)
            }
            Err(e) => {
                store.close().await;
                Err(e)
            }
        }
    }

    async fn connect(url: &DbUrl, driver: &str, limits: Limits, watchdog: bool) -> Result<Store> {
        // The connect has its own bound (--connect-timeout), then one statement.
        if watchdog {
            crate::supervisor::phase_for(limits.connect + limits.answer());
        }
        let conn = open_conn(url, driver, &limits).await?;
        Ok(Store {
            conn,
            d: Dialect(url.backend),
            url: url.clone(),
            driver: driver.to_string(),
            limits,
            patient: false,
            broken: false,
            watchdog,
        })
    }

    /// A phase of database work starts (see `supervisor::phase_for`).
    fn phase_for(&self, limit: Duration) {
        if self.watchdog {
            crate::supervisor::phase_for(limit);
        }
    }

    /// Drops the connection and opens a new one: after a lost connection, or
    /// when the old one may still be inside a statement or a transaction.
    pub async fn reconnect(&mut self) -> Result<()> {
        self.phase_for(self.limits.connect + self.limits.answer());
        let conn = open_conn(&self.url, &self.driver, &self.limits).await?;
        // The old one is dropped, not closed: closing would wait for a server
        // that may not answer. The server ends its session (and rolls back
        // what it held) when it sees the socket close or its idle timeout.
        let _old = std::mem::replace(&mut self.conn, conn);
        self.patient = false;
        self.broken = false;
        Ok(())
    }

    /// Re-opens the connection if the last phase left it unusable. Called at
    /// the start of every phase that follows a failure (watch rounds, finish
    /// retries), so no transaction and no lock outlives the error that ended it.
    pub async fn settle(&mut self) -> Result<()> {
        if self.broken {
            self.reconnect().await?;
        }
        Ok(())
    }

    /// Marks the connection as unusable until re-opened (see `settle`).
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Runs one short phase (a transaction, a few statements) within
    /// `limits.answer()`. A phase that runs out or fails leaves the connection
    /// marked broken: nothing it started is reused.
    pub async fn bounded<T>(
        &mut self,
        what: &str,
        phase: impl AsyncFnOnce(&mut Store) -> Result<T>,
    ) -> Result<T> {
        self.settle().await?;
        let limit = self.limits.answer();
        let result = match tokio::time::timeout(limit, phase(self)).await {
            Ok(result) => result,
            Err(_) => Err(Error::unreachable(format!(
                "{what}: the database at {} did not answer within {}",
                self.url.redacted(),
                crate::duration::format(limit)
            ))
            .hint("check the server and the network; --lock-timeout sets how long shipctl waits")),
        };
        if result.is_err() {
            // Whatever the phase left open (a transaction, its locks, a
            // statement) goes with the connection.
            self.broken = true;
        }
        result
    }

    /// Ends the session politely (SQLite checkpoints its WAL, servers see a
    /// goodbye), within a moment; a connection that failed, or a process
    /// stopping on a signal, just drops it.
    pub async fn close(self) {
        if self.broken || crate::supervisor::received().is_some() {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.conn.close()).await;
    }

    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// The connection, outside any transaction (heartbeats, single statements).
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }

    /// A write transaction. On SQLite it holds the database's write lock from its
    /// first statement; on PostgreSQL and MySQL callers lock the environment row
    /// with [`ledger::lock_env`].
    pub async fn write(&mut self) -> Result<Tx<'_>> {
        crate::supervisor::phase();
        self.be_patient().await?;
        let tx = match self.d.begin_write() {
            Some(stmt) => self.conn.begin_with(stmt).await,
            None => self.conn.begin().await,
        };
        tx.db("starting a write transaction")
    }

    /// A write transaction holding the lock of one environment: every writer
    /// of an environment's deployments starts here.
    pub async fn write_env(&mut self, env_id: i64) -> Result<Tx<'_>> {
        let d = self.d;
        let (url, driver, limits) = (self.url.clone(), self.driver.clone(), self.limits);
        let mut tx = self.write().await?;
        match ledger::lock_env(&mut tx, d, env_id).await {
            Ok(()) => Ok(tx),
            Err(e) if crate::error::is_lock_timeout(&e) => {
                // The lock was never granted: the transaction holds nothing, and
                // its rollback goes before the next statement. Who holds the lock
                // is asked on a connection of its own.
                drop(tx);
                // A bounded courtesy lookup (2s): a phase of its own.
                crate::supervisor::phase();
                let (env, holder) = lock_holder(&url, &driver, &limits, env_id).await;
                Err(Error::blocked(format!(
                    "busy: the lock on environment {} was not granted within {} (--lock-timeout){}",
                    env.unwrap_or_else(|| format!("id {env_id}")),
                    crate::duration::format(limits.lock),
                    holder.map(|h| format!("; {h}")).unwrap_or_default()
                ))
                .hint(
                    "another shipctl (or a transaction of someone's) is writing to this \
                     environment: try again once it is done; if a session hangs, the server ends \
                     it after its idle-in-transaction timeout",
                ))
            }
            Err(e) => Err(Error::database("locking the environment", e)),
        }
    }

    async fn be_patient(&mut self) -> Result<()> {
        if self.d.0 == Backend::Sqlite && !self.patient {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PRAGMA busy_timeout = {}",
                self.limits.lock.as_millis()
            )))
            .execute(&mut self.conn)
            .await
            .db("setting the busy timeout")?;
            self.patient = true;
        }
        Ok(())
    }

    /// A read-only transaction over one consistent snapshot.
    pub async fn read(&mut self) -> Result<Tx<'_>> {
        self.phase_for(crate::supervisor::answer_limit());
        if self.d.0 == Backend::MySql {
            // The session reads READ COMMITTED (for writers under a row lock);
            // a multi-statement read needs one snapshot for all its statements.
            sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut self.conn)
                .await
                .db("starting a read transaction")?;
        }
        self.conn
            .begin_with(self.d.begin_read())
            .await
            .db("starting a read transaction")
    }
}

/// Whether a SQLite ledger file is there, judged from its header without
/// opening it through SQLite (which could create `-wal`/`-shm` files beside a
/// file that is not a ledger). `false`: no file, or an empty one (no tables).
fn sqlite_file_present(path: &std::path::Path, url: &DbUrl) -> Result<bool> {
    use std::io::Read;
    let shown = url.redacted();
    let unreadable = |e: std::io::Error| {
        Error::input(format!(
            "cannot read the SQLite ledger {} ({shown}): {e}",
            path.display()
        ))
        .hint(crate::error::io_hint(&e, &path.display().to_string()))
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(unreadable(e)),
    };
    if meta.is_dir() {
        return Err(Error::input(format!(
            "{} ({shown}) is a directory, not a SQLite ledger",
            path.display()
        ))
        .hint("pass the ledger's file with --database-url sqlite://PATH/FILE.db"));
    }
    if meta.len() == 0 {
        return Ok(false);
    }
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let read = file.read(&mut header).map_err(unreadable)?;
    match sqlite_header_problem(&header[..read], meta.len()) {
        None => Ok(true),
        Some(problem) => Err(Error::input(format!(
            "{} ({shown}) is not a readable SQLite ledger: {problem}",
            path.display()
        ))
        .hint(
            "check --database-url / SHIPCTL_DATABASE_URL; if this file was the ledger, keep it \
             for inspection and restore the ledger from a backup",
        )),
    }
}

/// What is wrong with a SQLite file, from its first 100 bytes and its length
/// (<https://www.sqlite.org/fileformat.html#the_database_header>).
fn sqlite_header_problem(header: &[u8], len: u64) -> Option<String> {
    const MAGIC: &[u8] = b"SQLite format 3\0";
    if header.len() < 100 || !header.starts_with(MAGIC) {
        return Some("it does not start with SQLite's header (not a SQLite database)".into());
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        n => {
            return Some(format!(
                "its header gives an invalid page size ({n}): the file is corrupt"
            ));
        }
    };
    if !len.is_multiple_of(page_size) {
        return Some(format!(
            "its size ({len} bytes) is not a whole number of {page_size}-byte pages: the file is truncated or corrupt"
        ));
    }
    let word = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    // The page count is only meaningful when the change counter matches "version-valid-for".
    let pages = u64::from(word(28));
    if pages > 0 && word(24) == word(92) && len < pages * page_size {
        return Some(format!(
            "it holds {len} bytes where its header announces {} ({pages} pages): the file is truncated",
            pages * page_size
        ));
    }
    None
}

/// Makes every later transaction of a server session read-only, so that a
/// reader cannot write even by mistake. SQLite readers open the file `mode=ro`.
async fn read_only_session(conn: &mut AnyConnection, backend: Backend) -> sqlx::Result<()> {
    let sql = match backend {
        Backend::Sqlite => return Ok(()),
        Backend::Postgres => "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        Backend::MySql => "SET SESSION TRANSACTION READ ONLY",
    };
    sqlx::raw_sql(sql).execute(conn).await.map(|_| ())
}

fn connect_error(url: &DbUrl, cause: String) -> Error {
    let what = match url.backend {
        Backend::Sqlite => "cannot open the SQLite database",
        Backend::Postgres => "cannot connect to PostgreSQL at",
        Backend::MySql => "cannot connect to MySQL/MariaDB at",
    };
    let hint = match url.backend {
        Backend::Sqlite => {
            "check that the directory exists and is writable, or pass another \
                            path with --database-url sqlite://PATH"
        }
        _ => {
            "check that the server is running and that host, port, user, password and \
              database in the URL are right (--database-url or SHIPCTL_DATABASE_URL)"
        }
    };
    // A driver's message may quote the URL or its parts: credentials go
    // where they stand, the rest of the message stays word for word.
    let cause = url.redact_message(cause.trim_start_matches(": "));
    // PostgreSQL: `role "x" does not exist` is about the user, not the database.
    let missing_role = cause.contains("role \"") && cause.contains("does not exist");
    let missing_db =
        !missing_role && (cause.contains("does not exist") || cause.contains("Unknown database"));
    let hint = if missing_role {
        "the server has no such user: check the user name and password in the URL \
         (--database-url or SHIPCTL_DATABASE_URL), or create the role (`createuser NAME`)"
    } else if missing_db && url.backend != Backend::Sqlite {
        "create the database first (PostgreSQL: `createdb NAME`; MariaDB/MySQL: \
         `CREATE DATABASE NAME`); shipctl creates its tables itself on first use"
    } else if let Some(fault) = crate::error::Fault::from_text(&cause) {
        fault.hint()
    } else {
        hint
    };
    let hint = match url.sqlite_path() {
        Some(path) => hint.replace("FILE", &path.display().to_string()),
        None => hint.to_string(),
    };
    Error::input(format!("{what} {}: {cause}", url.redacted())).hint(hint)
}

/// Who holds the environments' row locks, as far as the server tells:
/// PostgreSQL names the session (shipctl sets `application_name` to its lease
/// holder), MariaDB the connection; with the environment's name. `None`s
/// when they cannot be asked.
async fn lock_holder(
    url: &DbUrl,
    driver: &str,
    limits: &Limits,
    env_id: i64,
) -> (Option<String>, Option<String>) {
    let sql = match url.backend {
        Backend::Sqlite => return (None, None),
        // The row's locker is the transaction in its xmax (FOR UPDATE writes it).
        Backend::Postgres => {
            "SELECT CONCAT('it is held by session ', a.pid, ' (', COALESCE(NULLIF(a.application_name, ''), 'no name'), \
             ', ', COALESCE(host(a.client_addr), 'local socket'), ', user ', a.usename, \
             ', in a transaction since ', to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), ' UTC)') \
             FROM pg_stat_activity a \
             WHERE a.backend_xid::text = (SELECT xmax::text FROM environnements WHERE id = $1) \
             AND a.pid <> pg_backend_pid() LIMIT 1"
        }
        // InnoDB tells who holds row locks, not which rows: the oldest
        // transaction holding any is the likely one, and said so.
        Backend::MySql => {
            "SELECT CONCAT('the oldest transaction holding row locks is connection ', t.trx_mysql_thread_id, ' (user ', COALESCE(p.USER, '?'), \
             ' from ', COALESCE(p.HOST, '?'), ', in a transaction since ', \
             DATE_FORMAT(t.trx_started, '%Y-%m-%d %H:%i:%s'), ' UTC)') \
             FROM information_schema.INNODB_TRX t \
             LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
             WHERE t.trx_mysql_thread_id <> CONNECTION_ID() AND t.trx_rows_locked > 0 \
             AND ? > 0 ORDER BY t.trx_started LIMIT 1"
        }
    };
    let d = Dialect(url.backend);
    let ask = async {
        let mut conn = open_conn(url, driver, limits).await.ok()?;
        let name: Option<String> =
            sqlx::query_scalar(d.sql("SELECT nom FROM environnements WHERE id = ?"))
                .bind(env_id)
                .fetch_optional(&mut conn)
                .await
                .ok()
                .flatten();
        let holder: Option<String> = sqlx::query_scalar(sql)
            .bind(env_id)
            .fetch_optional(&mut conn)
            .await
            .ok()
            .flatten();
        let _ = conn.close().await;
        Some((name, holder))
    };
    // A courtesy: it must not delay the answer (the watchdog is not re-armed).
    tokio::time::timeout(limits.connect.min(Duration::from_secs(2)), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or((None, None))
}

/// Connects within `limits.connect` and prepares the session.
async fn open_conn(url: &DbUrl, driver: &str, limits: &Limits) -> Result<AnyConnection> {
    sqlx::any::install_default_drivers();
    let connecting = async {
        let mut conn = AnyConnection::connect(driver).await?;
        session_setup(&mut conn, url.backend, limits).await?;
        Ok::<_, sqlx::Error>(conn)
    };
    match tokio::time::timeout(limits.connect, connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => {
            let kind = Error::database("", e);
            let mut err = connect_error(url, kind.message.clone());
            err.kind = kind.kind;
            Err(err)
        }
        Err(_) => {
            let mut err = connect_error(
                url,
                format!(
                    "no answer within {} (--connect-timeout)",
                    crate::duration::format(limits.connect)
                ),
            );
            err.kind = crate::error::Kind::Connection;
            Err(err)
        }
    }
}

/// Per-session settings. Every lock wait and statement is bounded by the lock
/// timeout, and the server ends a session that sits idle inside a transaction
/// for that long, so a client that vanished (killed, network gone) cannot keep
/// an environment locked.
async fn session_setup(
    conn: &mut AnyConnection,
    backend: Backend,
    limits: &Limits,
) -> sqlx::Result<()> {
    let lock_ms = limits.lock.as_millis().max(1);
    // MariaDB counts lock waits in whole seconds.
    let lock_s = limits.lock.as_secs().max(1);
    // A statement may wait for a lock the whole lock timeout, and then run: its
    // own bound comes a little later, so that a lock wait ends as "busy".
    let statement_ms = lock_ms + 1000;
    let statement_s = lock_s + 1;
    let name: String = limits
        .holder
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .filter(|c| *c != '\'')
        .take(60)
        .collect();
    let setup = match backend {
        // sqlx turns foreign keys on; WAL is set once, by the migration, and
        // persists in the file; the busy timeout waits for the first write.
        Backend::Sqlite => return Ok(()),
        Backend::Postgres => format!(
            "SET application_name = '{name}'; \
             SET lock_timeout = {lock_ms}; \
             SET statement_timeout = {statement_ms}; \
             SET idle_in_transaction_session_timeout = {lock_ms};"
        ),
        // UTC for DATETIME columns, strict inserts, and READ COMMITTED so that a
        // writer that has locked the environment row sees every committed change.
        Backend::MySql => format!(
            "SET time_zone = '+00:00', \
             sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'), \
             innodb_lock_wait_timeout = {lock_s}; \
             SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED;"
        ),
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&mut *conn)
        .await?;
    if backend == Backend::MySql {
        // MariaDB's own bounds: statements, and sessions idle inside a
        // transaction (MySQL has neither; its wait_timeout is the fallback).
        let mariadb = format!(
            "SET SESSION max_statement_time = {statement_s}, idle_transaction_timeout = {lock_s}"
        );
        if sqlx::raw_sql(sqlx::AssertSqlSafe(mariadb))
            .execute(&mut *conn)
            .await
            .is_err()
        {
            let mysql = format!("SET SESSION wait_timeout = {}", lock_s.max(60));
            sqlx::raw_sql(sqlx::AssertSqlSafe(mysql))
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sqlite_header_problem;

    fn header(page_size: u16, pages: u32, valid: bool) -> Vec<u8> {
        let mut h = b"SQLite format 3\0".to_vec();
        h.resize(100, 0);
        h[16..18].copy_from_slice(&page_size.to_be_bytes());
        h[28..32].copy_from_slice(&pages.to_be_bytes());
        h[24..28].copy_from_slice(&7u32.to_be_bytes());
        let valid_for: u32 = if valid { 7 } else { 6 };
        h[92..96].copy_from_slice(&valid_for.to_be_bytes());
        h
    }

    #[test]
    fn sqlite_headers() {
        assert_eq!(
            sqlite_header_problem(&header(4096, 3, true), 3 * 4096),
            None
        );
        // Longer than announced is fine (pages not yet counted); shorter is not.
        assert_eq!(
            sqlite_header_problem(&header(4096, 3, true), 4 * 4096),
            None
        );
        let short = sqlite_header_problem(&header(4096, 3, true), 2 * 4096);
        assert!(short.is_some_and(|p| p.contains("truncated")));
        // A stale page count (change counter mismatch) is not trusted.
        assert_eq!(
            sqlite_header_problem(&header(4096, 3, false), 2 * 4096),
            None
        );
        let partial = sqlite_header_problem(&header(4096, 3, true), 3 * 4096 + 10);
        assert!(partial.is_some_and(|p| p.contains("whole number")));
        assert!(sqlite_header_problem(&header(1000, 1, true), 1000).is_some());
        assert_eq!(sqlite_header_problem(&header(1, 1, true), 65_536), None);
        let text = sqlite_header_problem(b"name,version\nweb,1.0\n", 21);
        assert!(text.is_some_and(|p| p.contains("not a SQLite database")));
    }
}
