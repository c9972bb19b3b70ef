//! One error type for the whole program, and the one table that maps each kind
//! to the exit code documented in DESIGN §4.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad input: flags, ids, names, manifests. Exit 1.
    Input,
    /// The database could not be reached or refused a statement. Exit 1.
    Database,
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
        Error {
            kind: Kind::Database,
            message: format!("{context}: {}", describe_sqlx(&err)),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Input | Kind::Database => 1,
            Kind::Failed => 3,
            Kind::Blocked => 4,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Input => "input",
            Kind::Database => "database",
            Kind::Failed => "failed",
            Kind::Blocked => "blocked",
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

/// Shorthand for query results: `.db("loading deployment 3")?`.
pub trait DbContext<T> {
    fn db(self, context: &str) -> Result<T>;
}

impl<T> DbContext<T> for std::result::Result<T, sqlx::Error> {
    fn db(self, context: &str) -> Result<T> {
        self.map_err(|e| Error::database(context, e))
    }
}
