//! Database URLs: which backend, what the driver is given, and a form that is
//! safe to print, with the password and secret query parameters cut out by
//! their position in the URL (never by searching for their text).

use crate::error::{Error, Result};
use percent_encoding::percent_decode_str;
use url::{Position, Url};

pub const DEFAULT_URL: &str = "sqlite://shipctl.db";

/// What a hidden password or secret parameter reads as.
const HIDDEN: &str = "***";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

#[derive(Debug, Clone)]
pub struct DbUrl {
    pub backend: Backend,
    /// What sqlx is given (scheme normalised, SQLite told to create the file).
    driver: String,
    /// What users see.
    redacted: String,
    /// The password as written in the URL and percent-decoded (empty: none).
    /// Only ever looked for in a driver's message where a URL's userinfo
    /// holds it (`:PASSWORD@`), never as a bare substring.
    password: Vec<String>,
}

/// Query parameters whose values are secrets in libpq or MySQL URLs.
const SECRET_PARAMS: [&str; 4] = ["password", "sslpassword", "passfile", "ssl-key-password"];

const HOW_TO_WRITE: &str = "write it as sqlite://FILE, postgres://USER:PASSWORD@HOST:PORT/DATABASE \
     or mysql://USER:PASSWORD@HOST:PORT/DATABASE (mariadb:// works too; schemes in any case), \
     via --database-url or SHIPCTL_DATABASE_URL";

impl DbUrl {
    pub fn parse(raw: &str) -> Result<DbUrl> {
        let raw = raw.trim();
        let word_end = raw
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
            .unwrap_or(raw.len());
        let word = raw[..word_end].to_ascii_lowercase();
        let known = matches!(
            word.as_str(),
            "sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb"
        );
        let Some(rest) = raw[word_end..].strip_prefix(':') else {
            // No scheme at all (`shipctl.db`), or one without its `:` (`mysql//u:p@h`).
            let what = if known {
                format!("`{word}` must be followed by `://`")
            } else {
                "it has no scheme (such as sqlite:// or postgres://)".to_string()
            };
            return Err(Error::input(format!(
                "the database URL {} is not valid: {what}",
                masked(raw)
            ))
            .hint(HOW_TO_WRITE));
        };
        let backend = match word.as_str() {
            "sqlite" => return sqlite(rest, raw),
            "postgres" | "postgresql" => Backend::Postgres,
            "mysql" | "mariadb" => Backend::MySql,
            _ => {
                return Err(Error::input(format!(
                    "the database URL scheme {:?} (in {}) is not supported",
                    fit(&word),
                    masked(raw)
                ))
                .hint(HOW_TO_WRITE));
            }
        };
        if !rest.starts_with("//") {
            return Err(Error::input(format!(
                "the database URL {} is not valid: `{word}:` must be followed by `//`",
                masked(raw)
            ))
            .hint(HOW_TO_WRITE));
        }
        // sqlx knows `mysql://`, not `mariadb://`; users see what they wrote.
        let driver_scheme = if word == "mariadb" { "mysql" } else { &word };
        let driver = format!("{driver_scheme}:{rest}");
        let parsed = Url::parse(&driver).map_err(|e| {
            Error::input(format!(
                "the database URL {} is not valid: {e}",
                masked(raw)
            ))
            .hint(HOW_TO_WRITE)
        })?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(
                Error::input(format!("the database URL {} names no server", masked(raw)))
                    .hint(HOW_TO_WRITE),
            );
        }
        let mut password = Vec::new();
        if let Some(pw) = parsed.password().filter(|p| !p.is_empty()) {
            password.push(pw.to_string());
            if let Ok(decoded) = percent_decode_str(pw).decode_utf8()
                && decoded != pw
            {
                password.push(decoded.into_owned());
            }
        }
        let redacted = format!("{word}{}", &redacted(&parsed)[driver_scheme.len()..]);
        Ok(DbUrl {
            backend,
            driver,
            redacted,
            password,
        })
    }

    /// The file of a SQLite URL (`None` for other backends).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let rest = self.redacted.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty()).then(|| path.into())
    }

    pub fn driver_url(&self) -> &str {
        &self.driver
    }

    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// A driver's message with this URL's credentials cut out where they can
    /// appear: the whole URL (shown redacted), the password as a URL's
    /// userinfo (`:PASSWORD@`), and the value of any secret parameter
    /// (`password=…`). The same text elsewhere (a word, a user or database
    /// name equal to the password) is left as it is.
    pub fn redact_message(&self, message: &str) -> String {
        let mut out = message.replace(&self.driver, &self.redacted);
        for pw in &self.password {
            out = out.replace(&format!(":{pw}@"), &format!(":{HIDDEN}@"));
        }
        hide_secret_params(&out)
    }
}

/// The URL with its password and secret parameter values replaced, by
/// position; every other byte as the URL serialises it.
fn redacted(url: &Url) -> String {
    let mut out = String::with_capacity(url.as_str().len());
    // Password positions only when there is one: url 2.5 debug-asserts on
    // them for a user name without a password.
    match url.password() {
        Some(pw) if !pw.is_empty() => {
            out.push_str(&url[..Position::BeforePassword]);
            out.push_str(HIDDEN);
            out.push_str(&url[Position::AfterPassword..Position::BeforeQuery]);
        }
        _ => out.push_str(&url[..Position::BeforeQuery]),
    }
    out.push_str(&hide_secret_params(
        &url[Position::BeforeQuery..Position::AfterQuery],
    ));
    out.push_str(&url[Position::AfterQuery..]);
    out
}

/// A webhook URL fit to be printed: its user information, every query value
/// and its path after the first segment (where Slack-style hooks keep their
/// token) become `***`, by position; scheme, host and port stay readable.
pub fn redact_webhook(url: &Url) -> String {
    let mut out = String::with_capacity(url.as_str().len());
    out.push_str(&url[..Position::AfterScheme]);
    out.push_str("://");
    if !url.username().is_empty() || url.password().is_some() {
        out.push_str(HIDDEN);
        out.push('@');
    }
    out.push_str(&url[Position::BeforeHost..Position::AfterPort]);
    let path = &url[Position::BeforePath..Position::AfterPath];
    match path[1.min(path.len())..].find('/') {
        Some(i) if i + 2 < path.len() => {
            out.push_str(&path[..i + 2]);
            out.push_str(HIDDEN);
        }
        _ => out.push_str(path),
    }
    if let Some(q) = url.query() {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, v)) if !v.is_empty() => format!("{k}={HIDDEN}"),
                _ => p.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// `key=value` pairs (separated by `&`, white space, quotes, `;` or `,`)
/// whose key names a secret get `***` as their value. The key is compared
/// percent-decoded and case-insensitively.
fn hide_secret_params(text: &str) -> String {
    let is_sep = |c: char| c == '&' || c == '?' || c.is_whitespace() || "\"'`;,()".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq].rfind(is_sep).map_or(0, |i| i + 1);
        let key = percent_decode_str(&rest[key_start..eq])
            .decode_utf8_lossy()
            .to_ascii_lowercase();
        let value_end = rest[eq + 1..]
            .find(is_sep)
            .map_or(rest.len(), |i| eq + 1 + i);
        out.push_str(&rest[..=eq]);
        if SECRET_PARAMS.contains(&key.as_str()) && value_end > eq + 1 {
            out.push_str(HIDDEN);
        } else {
            out.push_str(&rest[eq + 1..value_end]);
        }
        rest = &rest[value_end..];
    }
    out.push_str(rest);
    out
}

/// A URL that could not be parsed, fit to be shown: everything between the
/// scheme and the last `@` (where a password would be) becomes `***`, secret
/// parameters are hidden, and a very long one is cut.
fn masked(raw: &str) -> String {
    let shown = match raw.rfind('@') {
        Some(at) => {
            let scheme = raw
                .find(|c: char| !(c.is_ascii_alphanumeric() || "+.-".contains(c)))
                .unwrap_or(raw.len());
            let prefix = raw[scheme..]
                .find(|c: char| c != ':' && c != '/')
                .map_or(raw.len(), |i| scheme + i);
            format!("{}{HIDDEN}{}", &raw[..prefix.min(at)], &raw[at..])
        }
        None => raw.to_string(),
    };
    fit(&hide_secret_params(&shown))
}

fn fit(s: &str) -> String {
    crate::model::fit_chars(s, 200)
}

fn sqlite(rest: &str, raw: &str) -> Result<DbUrl> {
    // `sqlite://shipctl.db`, `sqlite:shipctl.db`, `sqlite:///abs/path.db`
    let body = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = body.split_once('?').unwrap_or((body, ""));
    let modes: Vec<String> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .filter(|(k, _)| k.eq_ignore_ascii_case("mode"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .collect();
    if path.is_empty() || path == ":memory:" || modes.iter().any(|m| m == "memory") {
        let what = if path.is_empty() {
            "names no file"
        } else {
            "is an in-memory SQLite database"
        };
        return Err(
            Error::input(format!("the database URL {} {what}", masked(raw))).hint(
                "a ledger in memory vanishes when the command ends: use a file, e.g. \
             --database-url sqlite://shipctl.db",
            ),
        );
    }
    let shown = format!("sqlite:{rest}");
    let driver = if !modes.is_empty() {
        shown.clone()
    } else if rest.contains('?') {
        format!("{shown}&mode=rwc")
    } else {
        format!("{shown}?mode=rwc")
    };
    Ok(DbUrl {
        backend: Backend::Sqlite,
        driver,
        redacted: shown,
        password: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(raw: &str) -> String {
        DbUrl::parse(raw).unwrap_err().message
    }

    #[test]
    fn password_hidden_by_position() {
        let u = DbUrl::parse(
            "postgres://app:s3cr%21t@db.example:5432/ledger?sslmode=require&password=other&x=a%20b",
        )
        .unwrap();
        assert_eq!(u.backend, Backend::Postgres);
        assert_eq!(
            u.redacted(),
            "postgres://app:***@db.example:5432/ledger?sslmode=require&password=***&x=a%20b"
        );
        assert_eq!(
            u.redact_message("failed for s3cr!t at postgres://app:s3cr%21t@db.example"),
            "failed for s3cr!t at postgres://app:***@db.example"
        );
    }

    #[test]
    fn short_and_common_passwords_leave_words_alone() {
        for (raw, shown) in [
            ("postgres://u:e@h/db", "postgres://u:***@h/db"),
            ("postgres://u:error@h/db", "postgres://u:***@h/db"),
            ("postgres://app:app@h/app", "postgres://app:***@h/app"),
            (
                "mysql://u:ledger@h:3306/ledger",
                "mysql://u:***@h:3306/ledger",
            ),
            ("mysql://u:a%40b%3Ac@h/db", "mysql://u:***@h/db"),
        ] {
            let u = DbUrl::parse(raw).unwrap();
            assert_eq!(u.redacted(), shown);
            let m =
                "error: cannot connect: password authentication failed for user \"app\" on ledger";
            assert_eq!(u.redact_message(m), m, "{raw}");
        }
        let u = DbUrl::parse("mysql://u:a%40b%3Ac@h/db").unwrap();
        assert_eq!(
            u.redact_message("mysql://u:a@b:c@h/db and mysql://u:a%40b%3Ac@h/db"),
            "mysql://u:***@h/db and mysql://u:***@h/db"
        );
    }

    #[test]
    fn secret_parameters_in_messages() {
        let u = DbUrl::parse("postgres://h/db").unwrap();
        assert_eq!(
            u.redact_message("bad option password=hunter2&sslpassword=x, passwords=ok"),
            "bad option password=***&sslpassword=***, passwords=ok"
        );
        assert_eq!(
            DbUrl::parse("postgres://h/db?PassWord=a&Password")
                .unwrap()
                .redacted(),
            "postgres://h/db?PassWord=***&Password"
        );
    }

    #[test]
    fn malformed_urls_never_echo_credentials() {
        for raw in [
            "postgres:/u:hunter2@h/db",
            "mysql//u:hunter2@h",
            "postgres://u:hunter2@h:99999/db",
            "postgres://u:hunter2@/db",
            "oracle://u:hunter2@h/db",
            "postgres:u:hunter2@h",
            "mysql://u:hunter2@h/db?password=hunter2&x=[",
        ] {
            let m = match DbUrl::parse(raw) {
                Err(e) => format!("{} {}", e.message, e.hint.unwrap_or_default()),
                Ok(u) => u.redacted().to_string(),
            };
            assert!(!m.contains("hunter2"), "{raw}: {m}");
        }
        assert_eq!(
            message("postgres:/u:hunter2@h/db"),
            "the database URL postgres:/***@h/db is not valid: `postgres:` must be followed by `//`"
        );
        assert_eq!(
            message("mysql//u:hunter2@h"),
            "the database URL mysql//***@h is not valid: `mysql` must be followed by `://`"
        );
        assert_eq!(
            message("postgres://u:hunter2@h:99999/db"),
            "the database URL postgres://***@h:99999/db is not valid: invalid port number"
        );
    }

    #[test]
    fn schemes_in_any_case() {
        assert_eq!(
            DbUrl::parse("sqlite://x.db").unwrap().driver_url(),
            "sqlite://x.db?mode=rwc"
        );
        assert_eq!(
            DbUrl::parse("SQLITE://x.db").unwrap().driver_url(),
            "sqlite://x.db?mode=rwc"
        );
        let m = DbUrl::parse("MariaDB://root@127.0.0.1/test").unwrap();
        assert_eq!(m.backend, Backend::MySql);
        assert_eq!(m.driver_url(), "mysql://root@127.0.0.1/test");
        assert_eq!(m.redacted(), "mariadb://root@127.0.0.1/test");
        let p = DbUrl::parse("Postgres://u:pw@h/db").unwrap();
        assert_eq!(p.driver_url(), "postgres://u:pw@h/db");
        assert_eq!(p.redacted(), "postgres://u:***@h/db");
        assert_eq!(
            DbUrl::parse("MySQL://h/db").unwrap().backend,
            Backend::MySql
        );
        assert_eq!(
            DbUrl::parse("postgresql://h/db").unwrap().backend,
            Backend::Postgres
        );
        assert!(DbUrl::parse("oracle://h/db").is_err());
        assert!(DbUrl::parse("shipctl.db").is_err());
    }

    #[test]
    fn memory_refused() {
        for raw in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "SQLITE::memory:?cache=shared",
            "sqlite://x.db?mode=memory",
            "sqlite://x.db?MODE=Memory&cache=shared",
        ] {
            let e = DbUrl::parse(raw).unwrap_err();
            assert!(e.message.contains("in-memory"), "{raw}: {}", e.message);
            assert!(e.hint.unwrap().contains("use a file"));
        }
        assert!(DbUrl::parse("sqlite://x.db?mode=ro").is_ok());
    }
}
