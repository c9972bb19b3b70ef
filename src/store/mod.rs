//! The database: connecting from a URL, migrating, opening transactions, and the
//! ledger's queries. Backend differences stay in `dialect`; everything above
//! this module speaks one SQL.

mod dialect;
pub mod ledger;
mod migrate;
pub mod url;

pub use dialect::Dialect;
pub use url::{Backend, DbUrl};

use crate::error::{DbContext, Error, Result};
use sqlx::{Any, AnyConnection, Connection, Transaction};
use std::time::Duration;

pub type Tx<'c> = Transaction<'c, Any>;

/// How long to wait for a server to answer before saying it is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a SQLite writer waits for another to finish before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 15_000;

pub struct Store {
    conn: AnyConnection,
    pub d: Dialect,
    url: DbUrl,
    /// SQLite: whether this connection waits `SQLITE_BUSY_TIMEOUT_MS` for the
    /// write lock yet. Set before the first write; readers never wait for it.
    patient: bool,
}

impl Store {
    /// Connects and brings the schema up to date. On an up-to-date database this
    /// costs one query beyond the connection itself.
    pub async fn open(url: &DbUrl) -> Result<Store> {
        let mut store = Store::connect(url, url.driver_url()).await?;
        if !matches!(migrate::is_current(&mut store.conn).await, Ok(true)) {
            // Migrating is writing: wait for other writers like any writer does.
            store.be_patient().await?;
            migrate::ensure(&mut store.conn, store.d).await?;
        }
        Ok(store)
    }

    /// Opens an existing ledger without creating a file, a table or a row: for
    /// `reconcile --dry-run`. `None` when there is no ledger yet.
    pub async fn open_existing(url: &DbUrl) -> Result<Option<Store>> {
        let driver = match url.sqlite_path() {
            Some(path) if !path.exists() => return Ok(None),
            Some(path) => format!("sqlite://{}?mode=ro", path.display()),
            None => url.driver_url().to_string(),
        };
        let mut store = Store::connect(url, &driver).await?;
        if migrate::is_current(&mut store.conn).await? {
            Ok(Some(store))
        } else {
            Ok(None)
        }
    }

    async fn connect(url: &DbUrl, driver: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let connecting = AnyConnection::connect(driver);
        let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(connect_error(url, Error::database("", e).message)),
            Err(_) => {
                return Err(connect_error(
                    url,
                    format!(": no answer within {}s", CONNECT_TIMEOUT.as_secs()),
                ));
            }
        };
        let d = Dialect(url.backend);
        session_setup(&mut conn, url.backend)
            .await
            .db("preparing the database session")?;
        Ok(Store {
            conn,
            d,
            url: url.clone(),
            patient: false,
        })
    }

    pub async fn close(self) {
        let _ = self.conn.close().await;
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
        let mut tx = self.write().await?;
        ledger::lock_env(&mut tx, d, env_id)
            .await
            .db("locking the environment")?;
        Ok(tx)
    }

    async fn be_patient(&mut self) -> Result<()> {
        if self.d.0 == Backend::Sqlite && !self.patient {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"
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
        self.conn
            .begin_with(self.d.begin_read())
            .await
            .db("starting a read transaction")
    }
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
    let cause = cause.trim_start_matches(": ").to_string();
    let missing_db = cause.contains("does not exist") || cause.contains("Unknown database");
    let hint = if missing_db && url.backend != Backend::Sqlite {
        "create the database first (PostgreSQL: `createdb NAME`; MariaDB/MySQL: \
         `CREATE DATABASE NAME`); shipctl creates its tables itself on first use"
    } else {
        hint
    };
    Error::input(format!("{what} {}: {cause}", url.redacted())).hint(hint)
}

async fn session_setup(conn: &mut AnyConnection, backend: Backend) -> sqlx::Result<()> {
    let setup = match backend {
        // sqlx turns foreign keys on; WAL is set once, by the migration, and
        // persists in the file; the busy timeout waits for the first write.
        Backend::Sqlite => return Ok(()),
        Backend::Postgres => return Ok(()),
        // UTC for DATETIME columns, strict inserts, and READ COMMITTED so that a
        // writer that has locked the environment row sees every committed change.
        Backend::MySql => "SET time_zone = '+00:00', \
             sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'); \
             SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED;"
            .to_string(),
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(conn)
        .await
        .map(|_| ())
}
