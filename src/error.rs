//! One error type for the whole program. Which exit code each kind gives is
//! decided in `exit.rs`, the one table of exit codes.

use crate::exit::Exit;
use crate::supervisor::Signal;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad input: flags, ids, names, manifests. Exit 1.
    Input,
    /// The database refused a statement. Exit 1.
    Database,
    /// The connection failed or the server did not answer in time: worth a
    /// new connection and another try where the step allows it. Exit 1.
    Connection,
    /// A signal stopped the command before it claimed anything. Exit 130/143.
    Interrupted(Signal),
    /// A deployment ran and failed (rolled back), or a gate rejected it. Exit 3.
    Failed,
    /// The environment is busy, waiting for approval or pinned. Exit 4.
    Blocked,
}

/// A user-facing error: what happened, and what to do about it.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn input(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Input,
            message: message.into(),
            hint: None,
        }
    }

    pub fn blocked(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Blocked,
            message: message.into(),
            hint: None,
        }
    }

    pub fn failed(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Failed,
            message: message.into(),
            hint: None,
        }
    }

    pub fn database(context: &str, err: sqlx::Error) -> Error {
        if is_lock_timeout(&err) {
            return Error::blocked(format!(
                "busy: {context}: {} (another process holds the lock)",
                describe_sqlx(&err)
            ))
            .hint(
                "try again once the other process is done; --lock-timeout sets how long \
                 shipctl waits (default 30s)",
            );
        }
        Error {
            kind: if is_connection_error(&err) {
                Kind::Connection
            } else {
                Kind::Database
            },
            message: format!("{context}: {}", describe_sqlx(&err)),
            hint: None,
        }
    }

    pub fn unreachable(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Connection,
            message: message.into(),
            hint: None,
        }
    }

    pub fn interrupted(signal: Signal, message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Interrupted(signal),
            message: message.into(),
            hint: None,
        }
    }

    /// Whether a new connection might succeed where this one failed.
    pub fn is_connection(&self) -> bool {
        self.kind == Kind::Connection
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    pub fn exit(&self) -> Exit {
        match self.kind {
            Kind::Input | Kind::Database | Kind::Connection => Exit::Error,
            Kind::Failed => Exit::Failed,
            Kind::Blocked => Exit::Blocked,
            Kind::Interrupted(signal) => Exit::Interrupted(signal),
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.exit().code()
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Input => "input",
            Kind::Database => "database",
            Kind::Connection => "connection",
            Kind::Failed => "failed",
            Kind::Blocked => "blocked",
            Kind::Interrupted(_) => "interrupted",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// sqlx's Display for database errors is "error returned from database: ...";
/// the user wants the server's own words.
fn describe_sqlx(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".to_string(),
        other => other.to_string(),
    }
}

/// A lost connection, a server shutting down or not answering: what a fresh
/// connection may cure.
fn is_connection_error(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = match mysql_number(db.as_ref()) {
                Some(n) => std::borrow::Cow::Owned(n.to_string()),
                None => db.code().unwrap_or_default(),
            };
            // PostgreSQL: connection exceptions (08…), the server shutting down
            // or terminating the session (57P01-57P03), idle-in-transaction
            // timeout (25P03). MariaDB: server gone (2006), lost (2013),
            // connection killed (1927), shutdown in progress (1053).
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "57P01" | "57P02" | "57P03" | "25P03" | "2006" | "2013" | "1927" | "1053"
                )
                || db.message().contains("Lost connection")
                || db.message().contains("server has gone away")
        }
        _ => false,
    }
}

/// A lock wait or a statement that ran out of time (`--lock-timeout`):
/// SQLite busy, PostgreSQL lock_not_available (55P03) or query_canceled by
/// statement_timeout (57014), MariaDB lock wait timeout (1205) or
/// max_statement_time (1969).
pub fn is_lock_timeout(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    if let Some(n) = mysql_number(db.as_ref()) {
        return matches!(n, 1205 | 1969);
    }
    let code = db.code().unwrap_or_default();
    matches!(
        code.as_ref(),
        "55P03" | "57014" | "5" | "517" | "261" | "262"
    ) || db.message().contains("database is locked")
}

/// MariaDB/MySQL's error number (its SQLSTATE is mostly the generic HY000).
pub fn mysql_number(db: &dyn sqlx::error::DatabaseError) -> Option<u16> {
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map(|e| e.number())
}

/// Shorthand for query results: `.db("loading deployment 3")?`.
pub trait DbContext<T> {
    fn db(self, context: &str) -> Result<T>;
}

impl<T> DbContext<T> for std::result::Result<T, sqlx::Error> {
    fn db(self, context: &str) -> Result<T> {
        self.map_err(|e| Error::database(context, e))
    }
}
