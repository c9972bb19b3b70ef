//! The few places where the three SQL dialects differ, and nothing else:
//! placeholders, the database clock, timestamp rendering, inserted ids and how a
//! write transaction takes its lock. Every query in shipctl is written once, in
//! SQLite/MySQL style with `?` and three tokens expanded here:
//!
//! - `{now}`: the database clock;
//! - `{now+ms}`: the database clock plus a number of milliseconds bound as `?`;
//! - `{now-s}`: the database clock minus a whole number of seconds bound as `?`;
//! - `{ts:EXPR}`: EXPR rendered as `YYYY-MM-DD HH:MM:SS` text in UTC;
//! - `{ts_param}`: a `?` bound as `YYYY-MM-DD HH:MM:SS` text (UTC), as a timestamp;
//! - `{age_s:EXPR}`: whole seconds from the timestamp EXPR to the database clock;
//! - `{span_s:A,B}`: seconds (fractional) from the timestamp A to the timestamp B;
//! - `{db_user}`: the user the server authenticated (NULL on SQLite);
//! - `{now_text}`: the database clock as `{ts:…}` renders it;
//! - `{ts_exact:EXPR}`: the timestamp EXPR as text to the precision stored
//!   (SQLite: the stored text; PostgreSQL and MySQL: `YYYY-MM-DD HH:MM:SS.ffffff`
//!   in UTC), what the audit log's hashes cover: bound back through
//!   `{ts_param}`, it stores the same instant;
//! - `{now_exact}`: the database clock as `{ts_exact:…}` renders it.

use super::url::Backend;
use sqlx::AssertSqlSafe;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect(pub Backend);

impl Dialect {
    /// Expands the tokens and, for PostgreSQL, numbers the placeholders.
    pub fn sql(self, template: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(self.expand(template))
    }

    pub fn expand(self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let end = after.find('}').expect("unterminated token in SQL template");
            out.push_str(&self.token(&after[..end]));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        if self.0 == Backend::Postgres {
            number_placeholders(&out)
        } else {
            out
        }
    }

    fn token(self, token: &str) -> String {
        match (token, self.0) {
            ("now", Backend::Sqlite) => "strftime('%Y-%m-%d %H:%M:%f', 'now')".into(),
            ("now", Backend::Postgres) => "now()".into(),
            ("now", Backend::MySql) => "NOW(6)".into(),
            ("now+ms", Backend::Sqlite) => {
                "strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', ? / 1000.0))".into()
            }
            // The statement's time, not the transaction's: a claim that waited for
            // the lock must not get a lease that is already partly spent.
            ("now+ms", Backend::Postgres) => {
                "(clock_timestamp() + ? * interval '1 millisecond')".into()
            }
            ("now+ms", Backend::MySql) => "DATE_ADD(NOW(6), INTERVAL ? * 1000 MICROSECOND)".into(),
            // Reads only (`audit --since 1h`): the transaction's time is the right one.
            ("now-s", Backend::Sqlite) => {
                "strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%d seconds', -?))".into()
            }
            ("now-s", Backend::Postgres) => "(now() - ? * interval '1 second')".into(),
            ("now-s", Backend::MySql) => "DATE_SUB(NOW(6), INTERVAL ? SECOND)".into(),
            ("ts_param", Backend::Sqlite) => "?".into(),
            ("ts_param", Backend::Postgres) => "CAST(? AS TIMESTAMP) AT TIME ZONE 'UTC'".into(),
            ("ts_param", Backend::MySql) => "CAST(? AS DATETIME(6))".into(),
            ("now_text", b) => Dialect(b).token(&format!("ts:{}", Dialect(b).token("now"))),
            ("now_exact", Backend::Sqlite) => Dialect(Backend::Sqlite).token("now"),
            ("now_exact", b) => Dialect(b).token(&format!("ts_exact:{}", Dialect(b).token("now"))),
            ("db_user", Backend::Sqlite) => "NULL".into(),
            ("db_user", Backend::Postgres) => "CAST(current_user AS TEXT)".into(),
            ("db_user", Backend::MySql) => "CURRENT_USER()".into(),
            (t, backend) if t.starts_with("age_s:") => {
                let expr = &t["age_s:".len()..];
                match backend {
                    Backend::Sqlite => {
                        format!("CAST((julianday('now') - julianday({expr})) * 86400 AS INTEGER)")
                    }
                    Backend::Postgres => {
                        format!("CAST(EXTRACT(EPOCH FROM (now() - {expr})) AS BIGINT)")
                    }
                    Backend::MySql => format!("TIMESTAMPDIFF(SECOND, {expr}, NOW(6))"),
                }
            }
            (t, backend) if t.starts_with("ts_exact:") => {
                let expr = &t["ts_exact:".len()..];
                match backend {
                    Backend::Sqlite => format!("CAST({expr} AS TEXT)"),
                    Backend::Postgres => {
                        format!("to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")
                    }
                    Backend::MySql => format!("DATE_FORMAT({expr}, '%Y-%m-%d %H:%i:%s.%f')"),
                }
            }
            (t, backend) if t.starts_with("span_s:") => {
                let (from, to) = t["span_s:".len()..]
                    .split_once(',')
                    .expect("{span_s:A,B} takes two timestamps");
                match backend {
                    Backend::Sqlite => {
                        format!("((julianday({to}) - julianday({from})) * 86400.0)")
                    }
                    Backend::Postgres => {
                        format!("CAST(EXTRACT(EPOCH FROM ({to} - {from})) AS DOUBLE PRECISION)")
                    }
                    Backend::MySql => format!("(TIMESTAMPDIFF(MICROSECOND, {from}, {to}) * 1e-6)"),
                }
            }
            (t, backend) => match t.strip_prefix("ts:") {
                Some(expr) => match backend {
                    Backend::Sqlite => format!("substr({expr}, 1, 19)"),
                    Backend::Postgres => {
                        format!("to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')")
                    }
                    Backend::MySql => format!("DATE_FORMAT({expr}, '%Y-%m-%d %H:%i:%s')"),
                },
                None => panic!("unknown SQL template token {{{t}}}"),
            },
        }
    }

    /// `UPDATE target SET cols FROM (source) v WHERE target.id = v.id`, as
    /// each dialect writes it: one statement for a batch of rows.
    pub fn update_from(self, target: &str, source: &str, cols: &[&str]) -> String {
        if self.0 == Backend::MySql {
            let set: Vec<String> = cols.iter().map(|c| format!("t.{c} = v.{c}")).collect();
            format!(
                "UPDATE {target} t JOIN ({source}) v ON v.id = t.id SET {}",
                set.join(", ")
            )
        } else {
            let set: Vec<String> = cols.iter().map(|c| format!("{c} = v.{c}")).collect();
            format!(
                "UPDATE {target} SET {} FROM ({source}) AS v WHERE {target}.id = v.id",
                set.join(", ")
            )
        }
    }

    /// How an INSERT reports the new row's id: `RETURNING` where the dialect has it.
    pub fn returns_id(self) -> bool {
        self.0 != Backend::MySql
    }

    /// The statement that opens a write transaction. On SQLite it takes the
    /// write lock at once, so two writers queue on the busy timeout instead of
    /// failing when a read lock would have to be upgraded.
    pub fn begin_write(self) -> Option<&'static str> {
        match self.0 {
            Backend::Sqlite => Some("BEGIN IMMEDIATE"),
            Backend::Postgres | Backend::MySql => None,
        }
    }

    /// Whether writers must lock the environment row themselves
    /// (`SELECT ... FOR UPDATE`); SQLite's single writer lock already serialises them.
    pub fn locks_rows(self) -> bool {
        self.0 != Backend::Sqlite
    }

    /// The statement that opens a read-only, consistent snapshot.
    pub fn begin_read(self) -> &'static str {
        match self.0 {
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            Backend::MySql => "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        }
    }
}

/// `?` → `$1, $2, ...`, leaving quoted text alone.
fn number_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered_outside_quotes() {
        let d = Dialect(Backend::Postgres);
        assert_eq!(
            d.expand("SELECT '?' , a FROM t WHERE x = ? AND y = {now+ms}"),
            "SELECT '?' , a FROM t WHERE x = $1 AND y = (clock_timestamp() + $2 * interval '1 millisecond')"
        );
    }

    #[test]
    fn sqlite_keeps_question_marks() {
        let d = Dialect(Backend::Sqlite);
        assert_eq!(
            d.expand("x = ? AND {ts:d.date}"),
            "x = ? AND substr(d.date, 1, 19)"
        );
    }
}
