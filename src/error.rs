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
    /// The command line itself is wrong (clap's usage errors). Exit 1.
    Usage,
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
        if is_statement_timeout(&err) {
            return Error::blocked(format!(
                "{context}: the statement ran out of time ({})",
                describe_sqlx(&err)
            ))
            .hint(
                "the database is slow or busy: try again; --lock-timeout sets how long a \
                 statement may take (default 30s)",
            );
        }
        Error {
            kind: if is_connection_error(&err) {
                Kind::Connection
            } else {
                Kind::Database
            },
            message: format!("{context}: {}", describe_sqlx(&err)),
            hint: fault_of(&err).map(|f| f.hint().to_string()),
        }
    }

    pub fn unreachable(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Connection,
            message: message.into(),
            hint: None,
        }
    }

    /// A usage error as clap renders it: its first line is the message, the
    /// rest (the usage line, where to find help) the hint.
    pub fn usage(rendered: &str) -> Error {
        let text = rendered.trim();
        let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
        let message = first.trim_start_matches("error:").trim().to_string();
        let hint: Vec<&str> = rest
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        Error {
            kind: Kind::Usage,
            message,
            hint: (!hint.is_empty()).then(|| hint.join("; ")),
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
            Kind::Input | Kind::Usage | Kind::Database | Kind::Connection => Exit::Error,
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
            Kind::Usage => "usage",
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

/// A lock wait that ran out of time (`--lock-timeout`): SQLite busy,
/// PostgreSQL lock_not_available (55P03), MariaDB lock wait timeout (1205).
pub fn is_lock_timeout(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    if let Some(n) = mysql_number(db.as_ref()) {
        return n == 1205;
    }
    let code = db.code().unwrap_or_default();
    matches!(code.as_ref(), "55P03" | "5" | "517" | "261" | "262")
        || db.message().contains("database is locked")
}

/// A statement stopped by the server's bound (`--lock-timeout`): PostgreSQL
/// statement_timeout (57014), MariaDB max_statement_time (1969).
pub fn is_statement_timeout(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    match mysql_number(db.as_ref()) {
        Some(n) => n == 1969,
        None => db.code().is_some_and(|c| c == "57014"),
    }
}

/// MariaDB/MySQL's error number (its SQLSTATE is mostly the generic HY000).
pub fn mysql_number(db: &dyn sqlx::error::DatabaseError) -> Option<u16> {
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map(|e| e.number())
}

/// Database faults that have one specific remedy, whatever the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SQLite busy: another process holds the write lock.
    Locked,
    /// SQLITE_FULL, PostgreSQL 53100, MariaDB 1114/1021, ENOSPC.
    DiskFull,
    /// A corrupt SQLite file (SQLITE_CORRUPT, SQLITE_NOTADB).
    Corrupt,
    /// PostgreSQL 53300, MariaDB 1040.
    TooManyClients,
    /// File permissions, PostgreSQL 42501/28P01, MariaDB 1044/1045/1142.
    PermissionDenied,
}

impl Fault {
    pub fn hint(self) -> &'static str {
        match self {
            Fault::Locked => {
                "another process holds the SQLite ledger's write lock (a shipctl still running, \
                 or a tool with the file open): wait for it to finish and run the command again; \
                 `fuser FILE` shows who has the file open"
            }
            Fault::DiskFull => {
                "the disk holding the database is full: free space there (or grow the volume), \
                 then run the command again; nothing was recorded by the statement that failed"
            }
            Fault::Corrupt => {
                "the SQLite ledger file is damaged: keep it as it is for inspection, restore the \
                 ledger from a backup (or point --database-url at the restored copy), and do not \
                 run writing commands on the damaged file"
            }
            Fault::TooManyClients => {
                "the database server refuses new connections (too many clients): wait for other \
                 clients to disconnect, or raise the server's limit (PostgreSQL max_connections, \
                 MariaDB max_connections)"
            }
            Fault::PermissionDenied => {
                "permission denied: for SQLite, check that you can read the ledger file and write \
                 its directory (SQLite creates FILE-wal and FILE-shm beside it, even to read); \
                 for a server, grant the URL's user the privileges shipctl needs on its database \
                 (SELECT to read; INSERT, UPDATE, CREATE, ALTER to write) or check its password"
            }
        }
    }

    /// The fault a message describes, for errors that carry no code (a
    /// failed connect is reported as text).
    pub fn from_text(message: &str) -> Option<Fault> {
        let m = message.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
        if has(&["database is locked", "database table is locked"]) {
            Some(Fault::Locked)
        } else if has(&["disk is full", "no space left", "disk full", "' is full"]) {
            Some(Fault::DiskFull)
        } else if has(&["malformed", "not a database"]) {
            Some(Fault::Corrupt)
        } else if has(&["too many clients", "too many connections"]) {
            Some(Fault::TooManyClients)
        } else if has(&[
            "permission denied",
            "access denied",
            "readonly database",
            "password authentication failed",
        ]) {
            Some(Fault::PermissionDenied)
        } else {
            None
        }
    }
}

/// The fault behind a sqlx error: codes first (SQLite result codes, SQLSTATE,
/// MariaDB error numbers), then the message.
pub fn fault_of(err: &sqlx::Error) -> Option<Fault> {
    match err {
        sqlx::Error::Database(db) => {
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                match my.number() {
                    1114 | 1021 => return Some(Fault::DiskFull),
                    1040 => return Some(Fault::TooManyClients),
                    1044 | 1045 | 1142 => return Some(Fault::PermissionDenied),
                    _ => {}
                }
            } else if let Some(code) = db.code() {
                // SQLite: the extended result code, whose low byte is the primary one.
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    match code.parse::<u32>().map(|c| c & 0xff) {
                        Ok(5 | 6) => return Some(Fault::Locked),
                        Ok(13) => return Some(Fault::DiskFull),
                        Ok(11 | 26) => return Some(Fault::Corrupt),
                        Ok(3 | 8 | 23) => return Some(Fault::PermissionDenied),
                        _ => {}
                    }
                } else {
                    match code.as_ref() {
                        "53100" => return Some(Fault::DiskFull),
                        "53300" => return Some(Fault::TooManyClients),
                        "42501" | "28P01" | "28000" => return Some(Fault::PermissionDenied),
                        _ => {}
                    }
                }
            }
            Fault::from_text(db.message())
        }
        sqlx::Error::Io(io) => io_fault(io),
        other => Fault::from_text(&other.to_string()),
    }
}

fn io_fault(e: &std::io::Error) -> Option<Fault> {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => Some(Fault::PermissionDenied),
        std::io::ErrorKind::StorageFull => Some(Fault::DiskFull),
        _ => Fault::from_text(&e.to_string()),
    }
}

/// A hint for a file that could not be read: `path` names it.
pub fn io_hint(e: &std::io::Error, path: &str) -> String {
    match io_fault(e) {
        Some(Fault::PermissionDenied) => format!(
            "check the permissions of {path} and of its directory: you need to read the file \
             (and, for a ledger in WAL mode, to create files beside it)"
        ),
        Some(fault) => fault.hint().replace("FILE", path),
        None => format!("check that {path} is the ledger and that it can be read"),
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

#[cfg(test)]
mod tests {
    use super::Fault;

    #[test]
    fn faults_from_messages() {
        let cases = [
            ("database is locked", Some(Fault::Locked)),
            ("database or disk is full", Some(Fault::DiskFull)),
            ("The table 'releases' is full", Some(Fault::DiskFull)),
            ("database disk image is malformed", Some(Fault::Corrupt)),
            ("file is not a database", Some(Fault::Corrupt)),
            (
                "sorry, too many clients already",
                Some(Fault::TooManyClients),
            ),
            ("Too many connections", Some(Fault::TooManyClients)),
            (
                "permission denied for table releases",
                Some(Fault::PermissionDenied),
            ),
            (
                "Access denied for user 'x'@'%'",
                Some(Fault::PermissionDenied),
            ),
            (
                "attempt to write a readonly database",
                Some(Fault::PermissionDenied),
            ),
            ("duplicate key value violates unique constraint", None),
        ];
        for (message, fault) in cases {
            assert_eq!(Fault::from_text(message), fault, "{message}");
        }
    }
}
