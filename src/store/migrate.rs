//! Embedded migrations, applied on first use. Two processes that start together
//! against a fresh database serialise on a lock (SQLite's write lock, a
//! PostgreSQL advisory lock, a MySQL named lock); the second finds the work done.
//! Also what a database holds before anything is written: no tables, a ledger,
//! or another application's tables, which shipctl neither reads nor migrates.

use super::{Backend, Dialect};
use crate::error::{DbContext, Error, Result};
use sqlx::{AnyConnection, AssertSqlSafe, Connection};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
    mysql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "ledger",
        sqlite: include_str!("../../migrations/sqlite/0001_ledger.sql"),
        postgres: include_str!("../../migrations/postgres/0001_ledger.sql"),
        mysql: include_str!("../../migrations/mysql/0001_ledger.sql"),
    },
    Migration {
        version: 2,
        name: "policy",
        sqlite: include_str!("../../migrations/sqlite/0002_policy.sql"),
        postgres: include_str!("../../migrations/postgres/0002_policy.sql"),
        mysql: include_str!("../../migrations/mysql/0002_policy.sql"),
    },
    Migration {
        version: 3,
        name: "audit_env",
        sqlite: include_str!("../../migrations/sqlite/0003_audit_env.sql"),
        postgres: include_str!("../../migrations/postgres/0003_audit_env.sql"),
        mysql: include_str!("../../migrations/mysql/0003_audit_env.sql"),
    },
    Migration {
        version: 4,
        name: "gate_results",
        sqlite: include_str!("../../migrations/sqlite/0004_gate_results.sql"),
        postgres: include_str!("../../migrations/postgres/0004_gate_results.sql"),
        mysql: include_str!("../../migrations/mysql/0004_gate_results.sql"),
    },
    Migration {
        version: 5,
        name: "holds",
        sqlite: include_str!("../../migrations/sqlite/0005_holds.sql"),
        postgres: include_str!("../../migrations/postgres/0005_holds.sql"),
        mysql: include_str!("../../migrations/mysql/0005_holds.sql"),
    },
    Migration {
        version: 6,
        name: "gate_db_user",
        sqlite: include_str!("../../migrations/sqlite/0006_gate_db_user.sql"),
        postgres: include_str!("../../migrations/postgres/0006_gate_db_user.sql"),
        mysql: include_str!("../../migrations/mysql/0006_gate_db_user.sql"),
    },
    Migration {
        version: 7,
        name: "notifications",
        sqlite: include_str!("../../migrations/sqlite/0007_notifications.sql"),
        postgres: include_str!("../../migrations/postgres/0007_notifications.sql"),
        mysql: include_str!("../../migrations/mysql/0007_notifications.sql"),
    },
    Migration {
        version: 8,
        name: "watch_leader",
        sqlite: include_str!("../../migrations/sqlite/0008_watch_leader.sql"),
        postgres: include_str!("../../migrations/postgres/0008_watch_leader.sql"),
        mysql: include_str!("../../migrations/mysql/0008_watch_leader.sql"),
    },
    Migration {
        version: 9,
        name: "ledger_id",
        sqlite: include_str!("../../migrations/sqlite/0009_ledger_id.sql"),
        postgres: include_str!("../../migrations/postgres/0009_ledger_id.sql"),
        mysql: include_str!("../../migrations/mysql/0009_ledger_id.sql"),
    },
    Migration {
        version: 10,
        name: "gate_signatures",
        sqlite: include_str!("../../migrations/sqlite/0010_gate_signatures.sql"),
        postgres: include_str!("../../migrations/postgres/0010_gate_signatures.sql"),
        mysql: include_str!("../../migrations/mysql/0010_gate_signatures.sql"),
    },
    Migration {
        version: 11,
        name: "audit_chain",
        sqlite: include_str!("../../migrations/sqlite/0011_audit_chain.sql"),
        postgres: include_str!("../../migrations/postgres/0011_audit_chain.sql"),
        mysql: include_str!("../../migrations/mysql/0011_audit_chain.sql"),
    },
];

/// The migration that adds the audit log's hash chains: SQL cannot compute
/// SHA-256 on every backend, so the rows already there are chained in Rust
/// right after its script, in the same transaction (DESIGN §12).
const AUDIT_CHAIN: i64 = 11;

/// The ledger schema version this shipctl migrates to (`--version` prints it).
pub const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;
/// The tables the migrations create: a database that holds one of them without
/// `shipctl_migrations` belongs to another application.
const LEDGER_TABLES: [&str; 7] = [
    "releases",
    "environnements",
    "deploiements",
    "audit_logs",
    "gate_results",
    "watch_leader",
    "ledger_info",
];
const HOW_TO_CREATE: &str = "a writing command creates it, for example `shipctl reconcile` or \
     `shipctl release --create VERSION --tag TAG`";
const OWN_DATABASE: &str = "check --database-url / SHIPCTL_DATABASE_URL: shipctl needs a \
     database of its own (an empty one is fine: it creates its tables on the first writing command)";

/// What a database holds, as seen by a reader that must not change it.
pub enum Found {
    /// No table at all (a new database, or an empty SQLite file).
    Missing,
    /// A ledger at the schema version this shipctl knows.
    Ledger,
}
/// Key of the PostgreSQL advisory lock and name of the MySQL lock.
const LOCK_KEY: i64 = 0x5348_4950_4354_4c00; // "SHIPCTL\0"
const LOCK_NAME: &str = "shipctl_migrate";

/// `place` is where the database is (its redacted URL), for messages.
pub async fn ensure(conn: &mut AnyConnection, d: Dialect, place: &str) -> Result<()> {
    if let Some(v) = applied_version(conn).await {
        if v == LATEST {
            return Ok(());
        }
        if v > LATEST {
            return Err(Error::input(format!(
                "the database schema is at version {v}, newer than this shipctl knows ({LATEST})"
            ))
            .hint("upgrade shipctl to the version that migrated this database"));
        }
    }
    match d.0 {
        Backend::Sqlite => {
            // Checked before WAL mode is set: another application's file is left as it is.
            refuse_foreign(conn, d, place).await?;
            // Persistent, and needs no transaction; WAL lets readers (status)
            // proceed while a writer holds the lock.
            sqlx::raw_sql("PRAGMA journal_mode = WAL")
                .execute(&mut *conn)
                .await
                .db("switching SQLite to WAL mode")?;
            let mut tx = conn
                .begin_with("BEGIN IMMEDIATE")
                .await
                .db("locking the database for migration")?;
            apply_missing(&mut tx, d, place).await?;
            tx.commit().await.db("committing the migration")
        }
        Backend::Postgres => {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(LOCK_KEY)
                .execute(&mut *conn)
                .await
                .db("taking the migration lock")?;
            let applied = async {
                let mut tx = conn.begin().await.db("starting the migration")?;
                apply_missing(&mut tx, d, place).await?;
                tx.commit().await.db("committing the migration")
            }
            .await;
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(LOCK_KEY)
                .execute(&mut *conn)
                .await
                .db("releasing the migration lock");
            applied.and(unlocked.map(|_| ()))
        }
        Backend::MySql => {
            let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 60)")
                .bind(LOCK_NAME)
                .fetch_one(&mut *conn)
                .await
                .db("taking the migration lock")?;
            if got != Some(1) {
                return Err(Error::input(
                    "another shipctl has been migrating this database for 60s",
                )
                .hint("try again once it has finished"));
            }
            // MySQL commits DDL implicitly: a migration that fails midway keeps
            // what it created, so the MySQL scripts are written to be run again
            // (IF NOT EXISTS, no duplicate rows) and the next run completes them.
            let applied = apply_missing(conn, d, place).await;
            let unlocked = sqlx::query("SELECT RELEASE_LOCK(?)")
                .bind(LOCK_NAME)
                .execute(&mut *conn)
                .await
                .db("releasing the migration lock");
            applied.and(unlocked.map(|_| ()))
        }
    }
}

/// Whether the schema is there and current, without changing anything. Errors
/// are "no" here: the caller then migrates, which reports them.
pub async fn is_current(conn: &mut AnyConnection) -> bool {
    applied_version(conn).await == Some(LATEST)
}

/// What the database holds, reading only. A database that cannot be read, holds
/// another application's tables, an unfinished ledger or a schema version this
/// shipctl does not know is an error naming `place`, never an empty ledger.
pub async fn inspect(conn: &mut AnyConnection, d: Dialect, place: &str) -> Result<Found> {
    // The usual case costs one statement: the version of a ledger that is there.
    let read = sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM shipctl_migrations")
        .fetch_one(&mut *conn)
        .await;
    let version = match read {
        Ok(version) => version,
        Err(e) => {
            // No such table, or an unreadable database: the list of tables says which.
            let tables = tables(conn, d)
                .await
                .map_err(|e| Error::database(&format!("cannot read the ledger at {place}"), e))?;
            if tables.is_empty() {
                return Ok(Found::Missing);
            }
            if !tables.iter().any(|t| t == "shipctl_migrations") {
                return Err(Error::input(format!(
                    "{place} holds {} table(s) ({}) but no shipctl ledger (no shipctl_migrations \
                     table): it looks like another application's database",
                    tables.len(),
                    shorten(&tables)
                ))
                .hint(OWN_DATABASE));
            }
            return Err(Error::database(
                &format!("cannot read the ledger's version at {place}"),
                e,
            ));
        }
    };
    match version {
        None => Err(Error::input(format!(
            "the ledger at {place} was never completed: its first migration did not finish"
        ))
        .hint(format!(
            "fix what stopped it, then run a writing command to complete it: {HOW_TO_CREATE}"
        ))),
        Some(v) if v == LATEST => Ok(Found::Ledger),
        Some(v) if v < LATEST => Err(Error::input(format!(
            "the ledger at {place} is at schema version {v}; this shipctl reads version {LATEST}"
        ))
        .hint(
            "run any writing command once (for example `shipctl reconcile`) to migrate it; \
             read-only commands never migrate",
        )),
        Some(v) => Err(Error::input(format!(
            "the ledger at {place} is at schema version {v}, newer than this shipctl knows ({LATEST})"
        ))
        .hint("upgrade shipctl to the version that migrated this database")),
    }
}

/// "No ledger at URL", with how to create one: for commands that only read.
pub fn no_ledger(place: &str) -> Error {
    Error::input(format!(
        "no ledger at {place}: nothing has been recorded there yet"
    ))
    .hint(format!(
        "{HOW_TO_CREATE}; check --database-url / SHIPCTL_DATABASE_URL if you expected one"
    ))
}

/// Refuses to install shipctl's tables into a database that already holds
/// tables of those names that no shipctl migration created.
async fn refuse_foreign(conn: &mut AnyConnection, d: Dialect, place: &str) -> Result<()> {
    let tables = tables(conn, d)
        .await
        .map_err(|e| Error::database(&format!("cannot list the tables of {place}"), e))?;
    if tables.iter().any(|t| t == "shipctl_migrations") {
        return Ok(());
    }
    let clash: Vec<String> = tables
        .into_iter()
        .filter(|t| LEDGER_TABLES.contains(&t.as_str()))
        .collect();
    if clash.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "{place} already holds table(s) named {} that shipctl did not create \
         (no shipctl_migrations table): nothing was created",
        clash.join(", ")
    ))
    .hint(OWN_DATABASE))
}

/// The tables of the current database (PostgreSQL: of the current schema).
async fn tables(conn: &mut AnyConnection, d: Dialect) -> sqlx::Result<Vec<String>> {
    let sql = match d.0 {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY name"
        }
        // pg_class, not information_schema: a role without privileges on the
        // ledger must see its tables (and be refused reading them), not "no ledger".
        Backend::Postgres => {
            "SELECT CAST(c.relname AS TEXT) FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
             ORDER BY 1"
        }
        Backend::MySql => {
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
             WHERE table_schema = DATABASE() ORDER BY 1"
        }
    };
    sqlx::query_scalar::<_, String>(sql).fetch_all(conn).await
}

/// A list for a message: the first few names, and how many more.
fn shorten(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut out = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    out
}

async fn applied_version(conn: &mut AnyConnection) -> Option<i64> {
    sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM shipctl_migrations")
        .fetch_one(conn)
        .await
        .ok()
        .flatten()
}

async fn apply_missing(conn: &mut AnyConnection, d: Dialect, place: &str) -> Result<()> {
    refuse_foreign(conn, d, place).await?;
    let create = match d.0 {
        Backend::Postgres => {
            "CREATE TABLE IF NOT EXISTS shipctl_migrations (version BIGINT PRIMARY KEY, \
             name VARCHAR(100) NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        }
        Backend::Sqlite => {
            "CREATE TABLE IF NOT EXISTS shipctl_migrations (version INTEGER PRIMARY KEY, \
             name VARCHAR(100) NOT NULL, applied_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        }
        Backend::MySql => {
            "CREATE TABLE IF NOT EXISTS shipctl_migrations (version BIGINT PRIMARY KEY, \
             name VARCHAR(100) NOT NULL, applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) \
             ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
        }
    };
    sqlx::raw_sql(create)
        .execute(&mut *conn)
        .await
        .db("creating the migrations table")?;
    let current =
        sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM shipctl_migrations")
            .fetch_one(&mut *conn)
            .await
            .db("reading the schema version")?
            .unwrap_or(0);
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let script = match d.0 {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
            Backend::MySql => m.mysql,
        };
        sqlx::raw_sql(AssertSqlSafe(script))
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                let what = format!("applying migration {} ({}) to {place}", m.version, m.name);
                let e = Error::database(&what, e);
                if e.hint.is_some() {
                    e
                } else {
                    e.hint("fix the cause and run the command again: the migration resumes")
                }
            })?;
        if m.version == AUDIT_CHAIN {
            super::chain::chain_existing(conn, d)
                .await
                .db("chaining the existing audit rows")?;
        }
        sqlx::query(d.sql("INSERT INTO shipctl_migrations (version, name) VALUES (?, ?)"))
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *conn)
            .await
            .db("recording the migration")?;
    }
    Ok(())
}
