//! `--since`: a moment in UTC, or a span before the database's own clock.
//! A span is sent to SQL as seconds, so a client whose clock drifts still reads the right rows.

use chrono::{NaiveDate, NaiveDateTime};

/// The longest span `--since` takes: ten years, far beyond any ledger's age.
const MAX_AGO_SECS: i64 = 3650 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// This many seconds before the database's clock (`1h`, `2d`, `1w`).
    Ago { secs: i64 },
    /// A moment in UTC, as `YYYY-MM-DD HH:MM:SS`.
    At(String),
}

const EXAMPLES: &str = "write a span before now like 30s, 15m, 1h, 2d or 1w (measured by the \
     database's clock), an RFC 3339 time like 2026-11-30T12:00:00Z or \
     2026-11-30T13:00:00+01:00, or a UTC time like \"2026-11-30 12:00:00\" or 2026-11-30";

impl Since {
    pub fn parse(text: &str) -> Result<Since, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err(format!("--since is empty; {EXAMPLES}"));
        }
        if t.starts_with(|c: char| c.is_ascii_digit()) && !t.contains(['-', ':']) {
            return ago(text, t);
        }
        let fmt = |dt: NaiveDateTime| Since::At(dt.format("%Y-%m-%d %H:%M:%S").to_string());
        if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
            return Ok(fmt(dt.naive_utc()));
        }
        for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
            if let Ok(dt) = NaiveDateTime::parse_from_str(t, f) {
                return Ok(fmt(dt));
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            return Ok(fmt(d.and_time(chrono::NaiveTime::MIN)));
        }
        for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
            if NaiveDateTime::parse_from_str(t, f).is_ok() {
                return Err(format!(
                    "{text:?} has no time zone: add Z for UTC (2026-11-30T12:00:00Z) or an \
                     offset (2026-11-30T12:00:00+01:00), or write it with a space, \
                     \"2026-11-30 12:00:00\", which is read as UTC"
                ));
            }
        }
        Err(format!("{text:?} is not a time; {EXAMPLES}"))
    }
}

/// `30s`, `15m`, `1h`, `2d`, `1w`: a whole number and one unit.
fn ago(text: &str, t: &str) -> Result<Since, String> {
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "" => return Err(format!("{text:?} has no unit; {EXAMPLES}")),
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit {unit:?}: use s, m, h, d or w, with a whole \
                 number (90m, not 1.5h); {EXAMPLES}"
            ));
        }
    };
    match number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
    {
        Some(secs) if secs <= MAX_AGO_SECS => Ok(Since::Ago { secs }),
        _ => Err(format!(
            "{text:?} is too long a span: at most 3650d (ten years); for older rows give a \
             date, like 2016-01-01"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Since {
        Since::At(s.to_string())
    }

    #[test]
    fn spans_in_each_unit() {
        for (text, secs) in [
            ("0s", 0),
            ("45s", 45),
            ("15m", 900),
            ("1h", 3600),
            ("2d", 172_800),
            ("1w", 604_800),
            (" 3w ", 1_814_400),
            ("3650d", 315_360_000),
        ] {
            assert_eq!(Since::parse(text), Ok(Since::Ago { secs }), "{text}");
        }
    }

    #[test]
    fn times_in_utc() {
        assert_eq!(
            Since::parse("2026-11-30T12:00:00Z"),
            Ok(at("2026-11-30 12:00:00"))
        );
        assert_eq!(
            Since::parse("2026-11-30T14:05:00+02:00"),
            Ok(at("2026-11-30 12:05:00"))
        );
        assert_eq!(
            Since::parse("2026-12-01T01:30:00.250+03:00"),
            Ok(at("2026-11-30 22:30:00"))
        );
        assert_eq!(
            Since::parse("2026-11-30 12:00:00"),
            Ok(at("2026-11-30 12:00:00"))
        );
        assert_eq!(
            Since::parse("2026-11-30 12:00"),
            Ok(at("2026-11-30 12:00:00"))
        );
        assert_eq!(Since::parse("2026-11-30"), Ok(at("2026-11-30 00:00:00")));
    }

    #[test]
    fn refusals_say_what_to_write() {
        for bad in [
            "",
            "1",
            "1.5h",
            "1y",
            "5ms",
            "-1h",
            "yesterday",
            "2026-13-40",
            "2026-11-30T12:00:00",
            "99999999999999999999w",
            "3651d",
        ] {
            let e = Since::parse(bad).expect_err(bad);
            assert!(
                e.contains("2026-11-30") || e.contains("3650d"),
                "{bad}: {e}"
            );
        }
        assert!(
            Since::parse("2026-11-30T12:00:00")
                .unwrap_err()
                .contains("no time zone")
        );
        assert!(Since::parse("1y").unwrap_err().contains("unknown unit"));
    }
}
