//! Embedded migrations, applied on first use. Two processes that start together
//! against a fresh database serialise on a lock (SQLite's write lock, a
//! PostgreSQL advisory lock, a MySQL named lock); the second finds the work done.

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
];

const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;
/// Key of the PostgreSQL advisory lock and name of the MySQL lock.
const LOCK_KEY: i64 = 0x5348_4950_4354_4c00; // "SHIPCTL\0"
const LOCK_NAME: &str = "shipctl_migrate";

pub async fn ensure(conn: &mut AnyConnection, d: Dialect) -> Result<()> {
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
            apply_missing(&mut tx, d).await?;
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
                apply_missing(&mut tx, d).await?;
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
            // MySQL commits DDL implicitly: each migration is applied whole, under the lock.
            let applied = apply_missing(conn, d).await;
            let unlocked = sqlx::query("SELECT RELEASE_LOCK(?)")
                .bind(LOCK_NAME)
                .execute(&mut *conn)
                .await
                .db("releasing the migration lock");
            applied.and(unlocked.map(|_| ()))
        }
    }
}

/// Whether the schema is there and current, without changing anything: for
/// `reconcile --dry-run`, which must write nothing. `Ok(false)`: no schema yet.
pub async fn is_current(conn: &mut AnyConnection) -> Result<bool> {
    match applied_version(conn).await {
        None => Ok(false),
        Some(v) if v == LATEST => Ok(true),
        Some(v) => Err(Error::input(format!(
            "the database schema is at version {v}; this shipctl expects {LATEST}"
        ))
        .hint(if v < LATEST {
            "run any writing command once (for example `shipctl reconcile`) to migrate it"
        } else {
            "upgrade shipctl to the version that migrated this database"
        })),
    }
}

async fn applied_version(conn: &mut AnyConnection) -> Option<i64> {
    sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM shipctl_migrations")
        .fetch_one(conn)
        .await
        .ok()
        .flatten()
}

async fn apply_missing(conn: &mut AnyConnection, d: Dialect) -> Result<()> {
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
            .db(&format!("applying migration {} ({})", m.version, m.name))?;
        sqlx::query(d.sql("INSERT INTO shipctl_migrations (version, name) VALUES (?, ?)"))
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *conn)
            .await
            .db("recording the migration")?;
    }
    Ok(())
}
