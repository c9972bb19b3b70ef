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

    pub fn parse(s: &str) -> Option<Etat> {
        [
            Etat::Planifie,
            Etat::Valide,
            Etat::EnCours,
            Etat::Reussi,
            Etat::Echec,
            Etat::Annule,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
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

/// Longest `version` or `tag_git` the schema accepts (VARCHAR(50)).
pub const MAX_LABEL_CHARS: usize = 50;

/// Checks a version or tag before it reaches the database, so the user gets a
/// message that names the field rather than a constraint violation.
/// Longest name of a person or process in `acteur` columns we accept from input.
pub const MAX_ACTOR_CHARS: usize = 100;

/// A person's name as given to `approve --by` or listed in `approvers:`.
pub fn check_actor(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the approver's name is empty".into());
    }
    let chars = name.chars().count();
    if chars > MAX_ACTOR_CHARS {
        return Err(format!(
            "the approver's name is {chars} characters long; at most {MAX_ACTOR_CHARS} are allowed"
        ));
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err(format!(
            "the approver's name {name:?} has surrounding white space or a control character"
        ));
    }
    Ok(())
}

pub fn check_label(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    let chars = value.chars().count();
    if chars > MAX_LABEL_CHARS {
        return Err(format!(
            "the {what} is {chars} characters long; at most {MAX_LABEL_CHARS} are allowed"
        ));
    }
    if value.trim() != value {
        return Err(format!(
            "the {what} {value:?} starts or ends with white space"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("the {what} {value:?} contains a control character"));
    }
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
}
