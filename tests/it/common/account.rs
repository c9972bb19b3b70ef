//! A database account of its own for a test, dropped at the end.

use super::{Run, TestDb, block_on};

/// Runs `sql` on the database at `url` as written (no prepared statement:
/// `CREATE USER`, several statements, raw bytes go through as they are).
pub fn raw_sql(url: &str, sql: &str) {
    block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::AnyConnection::connect(url)
            .await
            .expect("admin connect");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = c.close().await;
    });
}

/// A user (MariaDB) or role (PostgreSQL) of its own on the test's server,
/// with the password `pw`; `drop` (run as admin) removes it at the end.
pub struct Account {
    admin: String,
    pub name: String,
    drop: String,
    /// The test database's URL as this account.
    url: String,
}

impl Account {
    pub fn new(db: &TestDb, name: String, drop: String) -> Account {
        let mut url = url::Url::parse(&db.url).expect("url");
        url.set_username(&name).expect("user");
        url.set_password(Some("pw")).expect("password");
        Account {
            admin: db.url.clone(),
            name,
            drop,
            url: url.to_string(),
        }
    }

    /// Runs `sql` as admin.
    pub fn sql(&self, sql: &str) {
        raw_sql(&self.admin, sql);
    }

    /// shipctl on the test database as this account.
    pub fn run(&self, db: &TestDb, args: &[&str]) -> Run {
        let out = db
            .cmd()
            .env("SHIPCTL_DATABASE_URL", &self.url)
            .args(args)
            .output()
            .expect("run shipctl");
        Run::from(out)
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.sql(&self.drop)));
    }
}
