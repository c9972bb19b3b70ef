//! Database URLs: which backend, what the driver is given, and a form that is
//! safe to print (no password, no secret query parameters).

use crate::error::{Error, Result};

pub const DEFAULT_URL: &str = "sqlite://shipctl.db";

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
    /// Strings that must never be printed (the password, secret parameters).
    secrets: Vec<String>,
}

/// Query parameters whose values are secrets in libpq or MySQL URLs.
const SECRET_PARAMS: [&str; 4] = ["password", "sslpassword", "passfile", "ssl-key-password"];

impl DbUrl {
    pub fn parse(raw: &str) -> Result<DbUrl> {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix("sqlite:") {
            return Ok(sqlite(raw, rest));
        }
        let (backend, driver) =
            if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
                (Backend::Postgres, raw.to_string())
            } else if raw.starts_with("mysql://") {
                (Backend::MySql, raw.to_string())
            } else if let Some(rest) = raw.strip_prefix("mariadb://") {
                (Backend::MySql, format!("mysql://{rest}"))
            } else {
                let shown = raw.split("://").next().unwrap_or(raw);
                return Err(Error::input(format!(
                    "the database URL scheme {shown:?} is not supported"
                ))
                .hint(
                    "use sqlite://FILE, postgres://USER@HOST/DB or mysql://USER@HOST/DB \
                 (mariadb:// works too), via --database-url or SHIPCTL_DATABASE_URL",
                ));
            };
        let parsed = url::Url::parse(&driver).map_err(|e| {
            Error::input(format!("the database URL is not valid: {e}"))
                .hint("write it as SCHEME://USER:PASSWORD@HOST:PORT/DATABASE")
        })?;
        let mut secrets = Vec::new();
        let mut shown = parsed.clone();
        if let Some(pw) = parsed.password() {
            secrets.push(pw.to_string());
            if let Ok(decoded) = url_decode(pw) {
                secrets.push(decoded);
            }
            let _ = shown.set_password(Some("***"));
        }
        if parsed.query().is_some() {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    if SECRET_PARAMS.contains(&k.as_ref()) {
                        secrets.push(v.to_string());
                        (k.to_string(), "***".to_string())
                    } else {
                        (k.to_string(), v.to_string())
                    }
                })
                .collect();
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
        secrets.retain(|s| !s.is_empty());
        let mut redacted = shown.to_string();
        if backend == Backend::MySql && raw.starts_with("mariadb://") {
            redacted = redacted.replacen("mysql://", "mariadb://", 1);
        }
        Ok(DbUrl {
            backend,
            driver,
            redacted,
            secrets,
        })
    }

    /// The file of a SQLite URL (`None` for other backends and `:memory:`).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let rest = self.redacted.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.into())
    }

    pub fn driver_url(&self) -> &str {
        &self.driver
    }

    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }
}

fn sqlite(raw: &str, rest: &str) -> DbUrl {
    // `sqlite://shipctl.db`, `sqlite:shipctl.db`, `sqlite:///abs/path.db`, `sqlite::memory:`
    let has_mode = rest.contains("mode=");
    let driver = if has_mode || rest.starts_with(":memory:") {
        raw.to_string()
    } else if rest.contains('?') {
        format!("{raw}&mode=rwc")
    } else {
        format!("{raw}?mode=rwc")
    };
    DbUrl {
        backend: Backend::Sqlite,
        driver,
        redacted: raw.to_string(),
        secrets: Vec::new(),
    }
}

fn url_decode(s: &str) -> std::result::Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// Removes every secret from a message before it is printed.
pub fn scrub(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_string();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_shown() {
        let u = DbUrl::parse(
            "postgres://app:s3cr%21t@db.example:5432/ledger?sslmode=require&password=other",
        )
        .unwrap();
        assert_eq!(u.backend, Backend::Postgres);
        assert!(!u.redacted().contains("s3cr"));
        assert!(!u.redacted().contains("other"));
        assert!(u.redacted().contains("app:***@db.example"));
        assert!(u.redacted().contains("sslmode=require"));
        assert_eq!(scrub("failed for s3cr!t", u.secrets()), "failed for ***");
    }

    #[test]
    fn schemes() {
        assert_eq!(
            DbUrl::parse("sqlite://x.db").unwrap().driver_url(),
            "sqlite://x.db?mode=rwc"
        );
        assert_eq!(
            DbUrl::parse("sqlite::memory:").unwrap().backend,
            Backend::Sqlite
        );
        let m = DbUrl::parse("mariadb://root@127.0.0.1/test").unwrap();
        assert_eq!(m.backend, Backend::MySql);
        assert_eq!(m.driver_url(), "mysql://root@127.0.0.1/test");
        assert_eq!(m.redacted(), "mariadb://root@127.0.0.1/test");
        assert_eq!(
            DbUrl::parse("postgresql://h/db").unwrap().backend,
            Backend::Postgres
        );
        assert!(DbUrl::parse("oracle://h/db").is_err());
        assert!(DbUrl::parse("shipctl.db").is_err());
    }
}
