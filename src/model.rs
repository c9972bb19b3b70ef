//! The seed's vocabulary: environments and deployment states, spelled exactly as
//! the brief spells them, with the conversions every other module relies on.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One of the three environments the seed allows, in promotion order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    clap::ValueEnum,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Env {
    Dev,
    Staging,
    Prod,
}

impl Env {
    pub const ALL: [Env; 3] = [Env::Dev, Env::Staging, Env::Prod];

    pub fn as_str(self) -> &'static str {
        match self {
            Env::Dev => "dev",
            Env::Staging => "staging",
            Env::Prod => "prod",
        }
    }

    pub fn parse(s: &str) -> Option<Env> {
        Env::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `etat` column. The strings are the seed's, accents included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Etat {
    Planifie,
    Valide,
    EnCours,
    Reussi,
    Echec,
    Annule,
}

impl Etat {
    pub fn as_str(self) -> &'static str {
        match self {
            Etat::Planifie => "planifié",
            Etat::Valide => "validé",
            Etat::EnCours => "en_cours",
            Etat::Reussi => "réussi",
            Etat::Echec => "échec",
            Etat::Annule => "annulé",
        }
    }

    /// Every state, in the order of a deployment's life.
    pub const ALL: [Etat; 6] = [
        Etat::Planifie,
        Etat::Valide,
        Etat::EnCours,
        Etat::Reussi,
        Etat::Echec,
        Etat::Annule,
    ];

    pub fn parse(s: &str) -> Option<Etat> {
        Etat::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Waiting to run: `planifié` or `validé`.
    pub fn is_pending(self) -> bool {
        matches!(self, Etat::Planifie | Etat::Valide)
    }
}

impl fmt::Display for Etat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Etat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What the environment does with a deployment whose execution failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    Replan,
    Cancel,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Replan => "replan",
            OnFailure::Cancel => "cancel",
        }
    }

    pub fn parse(s: &str) -> Option<OnFailure> {
        match s {
            "replan" => Some(OnFailure::Replan),
            "cancel" => Some(OnFailure::Cancel),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- times

/// A time read from the ledger: UTC to the second, as the dialect's `{ts:…}`
/// renders it (`2026-11-30 20:21:06`). Shown like that on a terminal (the
/// tables say "UTC"); written as RFC 3339 (`2026-11-30T20:21:06Z`) in JSON.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Utc(String);

impl Utc {
    pub fn new(ledger_text: String) -> Utc {
        Utc(ledger_text)
    }

    /// `2026-11-30T20:21:06Z`.
    pub fn rfc3339(&self) -> String {
        format!("{}Z", self.0.replacen(' ', "T", 1))
    }

    /// As an instant, for time arithmetic (deploy windows).
    pub fn instant(&self) -> Option<jiff::Timestamp> {
        self.rfc3339().parse().ok()
    }
}

/// The ledger's text, for messages and tables.
impl std::ops::Deref for Utc {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Utc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

// ---------------------------------------------------------------- limits
//
// Every string that reaches a bounded column is checked here, in characters or
// bytes as the strictest backend counts them, before any SQL: the same input
// then has the same outcome on SQLite (which would store anything), PostgreSQL
// (VARCHAR(n) in characters) and MariaDB (TEXT is 65,535 bytes).

/// Longest `version` or `tag_git` the schema accepts (VARCHAR(50)).
pub const MAX_LABEL_CHARS: usize = 50;
/// Longest name of a person or process we accept from input for `acteur`
/// (VARCHAR(255)): `SHIPCTL_ACTOR`/`$USER`, `approve --by`, `approvers:`.
pub const MAX_ACTOR_CHARS: usize = 100;
/// Longest gate name (`gate_results.gate` is VARCHAR(50)).
pub const MAX_GATE_NAME_CHARS: usize = 50;
/// Longest `approve --reason`; it ends up in TEXT columns with more text around it.
pub const MAX_REASON_CHARS: usize = 1000;
/// Longest argument of a command in the manifests (gate, run, rollback).
pub const MAX_ARG_CHARS: usize = 1024;
/// Most arguments of one command in the manifests.
pub const MAX_ARGV_ITEMS: usize = 64;
/// Largest environment policy, as stored (JSON in `environnements.policy`), so
/// that it and the audit row that records it fit every backend.
pub const MAX_POLICY_BYTES: usize = 6144;
/// Largest message kept in `audit_logs.message` and `gate_results.message`;
/// longer ones (command output, errors) are cut in the middle, with a mark.
pub const MAX_MESSAGE_BYTES: usize = 8192;
/// Longest lease holder (`lease_holder` is VARCHAR(255)); built from the host name.
pub const MAX_HOLDER_CHARS: usize = 255;

/// The one wording of a length limit: field, length, limit.
pub fn check_chars(field: &str, value: &str, max: usize) -> Result<(), String> {
    let chars = value.chars().count();
    if chars > max {
        return Err(format!(
            "{field} is {chars} characters long; at most {max} are allowed"
        ));
    }
    Ok(())
}

/// Characters that can rewrite a terminal line or reorder what it shows: the
/// controls (`\r`, ESC, …) and the Unicode bidi embeddings, overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Text a person gives (`--reason`, `--by`, the actor) holds no character
/// that could forge or erase a line where it is shown. `field` names where
/// it came from; the message gives the character's position and code point.
pub fn check_text(field: &str, value: &str) -> Result<(), String> {
    match value.chars().enumerate().find(|(_, c)| is_unsafe_char(*c)) {
        Some((i, c)) => Err(format!(
            "{field} contains the control character U+{:04X} at character {}; \
             control characters (new lines, carriage returns, escapes, bidi overrides) are not allowed",
            u32::from(c),
            i + 1
        )),
        None => Ok(()),
    }
}

/// A reason a person gives (`--reason`): one line of plain text, trimmed,
/// not empty, at most `MAX_REASON_CHARS`.
pub fn check_reason(field: &str, value: &str) -> Result<String, String> {
    check_text(field, value)?;
    let reason = value.trim();
    if reason.is_empty() {
        return Err(format!("{field} is empty"));
    }
    check_chars(field, reason, MAX_REASON_CHARS)?;
    Ok(reason.to_string())
}

/// A person's name: `SHIPCTL_ACTOR`/`$USER`, `approve --by`, `approvers:`.
/// `field` names where it came from ("the approver's name", "SHIPCTL_ACTOR").
pub fn check_actor(field: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{field} is empty"));
    }
    check_chars(field, name, MAX_ACTOR_CHARS)?;
    check_text(field, name)?;
    if name.trim() != name {
        return Err(format!("{field} {name:?} has surrounding white space"));
    }
    Ok(())
}

/// A command's argv in the manifests: each argument and their number. The
/// caller names the key path; errors name the argument by its index.
pub fn check_argv(argv: &[String]) -> Result<(), String> {
    if argv.len() > MAX_ARGV_ITEMS {
        return Err(format!(
            "the command has {} arguments; at most {MAX_ARGV_ITEMS} are allowed",
            argv.len()
        ));
    }
    for (i, arg) in argv.iter().enumerate() {
        check_chars(&format!("argument {i}"), arg, MAX_ARG_CHARS)?;
    }
    Ok(())
}

/// `message` cut to `MAX_MESSAGE_BYTES` at character boundaries: its start and
/// its end are kept (what failed, and the last lines of output), the middle is
/// replaced by a visible mark. Unchanged when it fits.
pub fn fit_message(message: &str) -> std::borrow::Cow<'_, str> {
    fit_bytes(message, MAX_MESSAGE_BYTES)
}

fn fit_bytes(message: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if message.len() <= max {
        return message.into();
    }
    let mark = format!("\n… [cut: longer than {max} bytes] …\n");
    let room = max.saturating_sub(mark.len());
    let mut head = room / 4;
    while !message.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = message.len() - (room - head);
    while !message.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}{mark}{}", &message[..head], &message[tail..]).into()
}

/// `value` cut to `max` characters, ending with "…" when cut (a value the
/// program builds itself, such as the lease holder from the host name).
pub fn fit_chars(value: &str, max: usize) -> String {
    if value.chars().count() <= max {
        return value.to_string();
    }
    let mut out: String = value.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Checks a version or tag before it reaches the database, so the user gets a
/// message that names the field rather than a constraint violation.
pub fn check_label(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    check_chars(&format!("the {what}"), value, MAX_LABEL_CHARS)?;
    if value.trim() != value {
        return Err(format!(
            "the {what} {value:?} starts or ends with white space"
        ));
    }
    check_text(&format!("the {what}"), value)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etat_round_trips_with_accents() {
        for s in [
            "planifié",
            "validé",
            "en_cours",
            "réussi",
            "échec",
            "annulé",
        ] {
            assert_eq!(Etat::parse(s).map(Etat::as_str), Some(s));
        }
        assert_eq!(Etat::parse("reussi"), None);
    }

    #[test]
    fn labels_are_checked() {
        assert!(check_label("version", "1.0.2").is_ok());
        assert!(check_label("version", "1.0;touch pwned").is_ok());
        assert!(check_label("version", "").is_err());
        assert!(check_label("version", &"x".repeat(51)).is_err());
        assert!(check_label("version", &"é".repeat(50)).is_ok());
        assert!(check_label("tag", " v1").is_err());
        assert!(check_label("tag", "v1\n").is_err());
    }

    #[test]
    fn messages_are_cut_in_the_middle_at_char_boundaries() {
        assert_eq!(fit_message("short"), "short");
        let long = format!("gate scan failed; output:\n{}END", "é".repeat(10_000));
        let fit = fit_message(&long);
        assert!(fit.len() <= MAX_MESSAGE_BYTES, "{}", fit.len());
        assert!(fit.starts_with("gate scan failed; output:\n"));
        assert!(fit.ends_with("END"));
        assert!(fit.contains("[cut: longer than 8192 bytes]"));
        let exact = "x".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(fit_message(&exact), exact.as_str());
        assert!(fit_message(&format!("{exact}y")).len() <= MAX_MESSAGE_BYTES);
    }

    #[test]
    fn holders_are_cut_to_their_column() {
        assert_eq!(fit_chars("host:1:ab", 255), "host:1:ab");
        let cut = fit_chars(&"h".repeat(300), 255);
        assert_eq!(cut.chars().count(), 255);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn limits_name_the_field_its_length_and_the_limit() {
        assert_eq!(
            check_actor("SHIPCTL_ACTOR", &"a".repeat(101)),
            Err("SHIPCTL_ACTOR is 101 characters long; at most 100 are allowed".into())
        );
        assert!(check_actor("SHIPCTL_ACTOR", &"a".repeat(100)).is_ok());
        let argv: Vec<String> = vec!["x".into(); MAX_ARGV_ITEMS + 1];
        assert!(check_argv(&argv).is_err());
        assert!(check_argv(&argv[1..]).is_ok());
        assert_eq!(
            check_argv(&["a".into(), "b".repeat(1025)]),
            Err("argument 1 is 1025 characters long; at most 1024 are allowed".into())
        );
    }
}
