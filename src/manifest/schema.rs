//! The YAML shape of a manifest file, with the checks serde can make while it
//! still knows the line and key path: unknown keys, unquoted numeric versions,
//! environment names, durations, keys defined twice.

use crate::model::{Env, OnFailure};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Marker the loader looks for to quote the user's own text back in the hint.
pub const UNQUOTED_NUMBER: &str = "is an unquoted number";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<String>,
    pub releases: Option<Vec<Release>>,
    pub environments: Option<UniqueMap<EnvName, Environment>>,
    /// Webhooks told about audited events (DESIGN §11); in one file only.
    pub notifications: Option<Vec<Notification>>,
}

/// One `notifications:` entry: where to POST, which events, how to sign.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    pub url: String,
    /// Audit actions to send; absent: every one.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// The environment variable that holds the HMAC key, read at delivery.
    #[serde(default)]
    pub secret_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub version: Label,
    pub tag: Label,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub release: Label,
    pub requires: Option<EnvName>,
    #[serde(default)]
    pub gates: UniqueMap<String, Gate>,
    pub executor: Option<ExecutorSpec>,
    pub on_failure: Option<OnFailureName>,
    pub max_attempts: Option<u32>,
    pub verify: Option<VerifySpec>,
    pub windows: Option<WindowsSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub approvals: Option<u32>,
    /// Who may approve an `approvals:` gate; anyone when absent.
    #[serde(default)]
    pub approvers: Option<Approvers>,
    pub command: Option<Vec<String>>,
    pub timeout: Option<DurationText>,
    /// Between SIGTERM and SIGKILL when the gate's command is stopped.
    #[serde(default)]
    pub kill_grace: Option<DurationText>,
    /// Whether whoever planned a deployment may approve it; default false
    /// (the four-eyes rule).
    #[serde(default)]
    pub self_approval: Option<bool>,
    /// Approvals older than this do not count; default: they never expire.
    #[serde(default)]
    pub expires: Option<DurationText>,
}

/// `approvers:` — who may approve a gate: a list of login names, or a mapping
/// of login names to SSH public keys (DESIGN §12), one key or a list of keys
/// each. With keys, a person's decisions count only when signed by one of them.
/// Stored as written: a list when no one has a key, a mapping otherwise.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Approvers(pub Vec<Approver>);

#[derive(Debug, Clone, PartialEq)]
pub struct Approver {
    pub name: String,
    /// OpenSSH public key lines; empty in the list form.
    pub keys: Vec<String>,
}

impl Approvers {
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|a| a.name.clone()).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|a| a.name == name)
    }

    /// The keys `name` must sign with; `None` when their decisions count unsigned.
    pub fn keys_of(&self, name: &str) -> Option<&[String]> {
        self.0
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.keys.as_slice())
            .filter(|k| !k.is_empty())
    }

    /// Whether approvals at this gate are signed (the mapping form).
    pub fn signed(&self) -> bool {
        self.0.iter().any(|a| !a.keys.is_empty())
    }
}

impl<'de> Deserialize<'de> for Approvers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Approvers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of names or a mapping of names to SSH public keys")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Approvers, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    out.push(Approver {
                        name,
                        keys: Vec::new(),
                    });
                }
                Ok(Approvers(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Approvers, A::Error> {
                let mut out: Vec<Approver> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if out.iter().any(|a| a.name == name) {
                        return Err(de::Error::custom(format!(
                            "{} is defined twice in this file",
                            super::words::cut(&name)
                        )));
                    }
                    let keys = map.next_value::<Keys>()?.0;
                    if keys.is_empty() {
                        return Err(de::Error::custom(format!(
                            "{} has no key: in the mapping form, each approver has an SSH \
                             public key (or a list of them)",
                            super::words::cut(&name)
                        )));
                    }
                    out.push(Approver { name, keys });
                }
                Ok(Approvers(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// One key line, or a list of them.
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an SSH public key or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Keys, E> {
                Ok(Keys(vec![v.to_string()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Keys, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = seq.next_element::<String>()? {
                    out.push(k);
                }
                Ok(Keys(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Approvers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        if !self.signed() {
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            for a in &self.0 {
                seq.serialize_element(&a.name)?;
            }
            return seq.end();
        }
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for a in &self.0 {
            match a.keys.as_slice() {
                [one] => m.serialize_entry(&a.name, one)?,
                many => m.serialize_entry(&a.name, many)?,
            }
        }
        m.end()
    }
}

/// `simulate:` or `command:`, exactly one (checked by the loader).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSpec {
    #[serde(default)]
    pub simulate: Option<SimulateSpec>,
    #[serde(default)]
    pub command: Option<CommandSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateSpec {
    #[serde(default)]
    pub duration: Option<DurationText>,
    #[serde(default)]
    pub failure_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    pub run: Vec<String>,
    #[serde(default)]
    pub rollback: Option<Vec<String>>,
    #[serde(default)]
    pub timeout: Option<DurationText>,
    /// Between SIGTERM and SIGKILL when the run or the rollback is stopped.
    #[serde(default)]
    pub kill_grace: Option<DurationText>,
}

/// `verify:` — how an environment proves a deployed release healthy (DESIGN §9):
/// exactly one of `command` and `http` (checked by the loader).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// Exit 0 = healthy; run like the executor's command, with its variables.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub http: Option<HttpSpec>,
    /// Per try; default 30s.
    #[serde(default)]
    pub timeout: Option<DurationText>,
    /// Tries before verification counts as failed; default 1.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Between tries; default 5s.
    #[serde(default)]
    pub interval: Option<DurationText>,
    /// Between SIGTERM and SIGKILL when a check's command is stopped.
    #[serde(default)]
    pub kill_grace: Option<DurationText>,
}

/// `verify.http`: a GET whose status (and body) says the release is healthy.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// `{version}`, `{tag}` and `{env}` are replaced, percent-encoded.
    pub url: String,
    /// The status wanted; default 200.
    #[serde(default)]
    pub status: Option<u16>,
    /// Text the body must contain (`{version}`, `{tag}`, `{env}` replaced).
    #[serde(default)]
    pub contains: Option<String>,
}

/// `windows:` — when the environment may be deployed to (DESIGN §10), kept as
/// the manifests wrote it; `crate::window::parse` reads and checks it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WindowsSpec {
    /// An IANA name; UTC when absent.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Absent or empty: open at any time outside the deny windows.
    #[serde(default)]
    pub allow: Vec<WindowSpec>,
    #[serde(default)]
    pub deny: Vec<WindowSpec>,
}

/// One window: weekly (`days` with `from`/`to` as `"HH:MM"`, `to` may be
/// `"24:00"`) or one-off (no `days`, `from`/`to` as `"YYYY-MM-DD HH:MM"`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    #[serde(default)]
    pub days: Option<Vec<String>>,
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A version or tag: a YAML string. An unquoted `1.10` is a number to YAML
/// (it would read as 1.1), so numbers are refused with a hint to quote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(pub String);

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Label;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quoted string such as \"1.0.2\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Label, E> {
                Ok(Label(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Label, E> {
                Err(E::custom(format!("{v} {UNQUOTED_NUMBER}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Label, E> {
                Err(E::custom(format!("{v} {UNQUOTED_NUMBER}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Label, E> {
                Err(E::custom(format!("{v} {UNQUOTED_NUMBER}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `dev`, `staging` or `prod`, refused otherwise with the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvName(pub Env);

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Env::parse(&s).map(EnvName).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown environment {:?}: shipctl manages dev, staging and prod only",
                super::words::cut(&s)
            ))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnFailureName(pub OnFailure);

impl<'de> Deserialize<'de> for OnFailureName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        OnFailure::parse(&s).map(OnFailureName).ok_or_else(|| {
            de::Error::custom(format!(
                "on_failure is {:?}; use replan or cancel",
                super::words::cut(&s)
            ))
        })
    }
}

/// A duration written as users write them everywhere: `500ms`, `2s`, `5m`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurationText(pub Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 500ms, 2s or 5m")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationText, E> {
                crate::duration::parse(v)
                    .map(DurationText)
                    .map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationText, E> {
                Err(E::custom(format!(
                    "{v} has no unit; write it like {v}s or {v}ms"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationText, E> {
                self.visit_u64(v.unsigned_abs())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationText, E> {
                Err(E::custom(format!(
                    "{v} has no unit; write it like 1.5s or 500ms"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for DurationText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::duration::format(self.0))
    }
}

/// A mapping that refuses a key written twice (YAML parsers keep the last one
/// silently, which hides mistakes).
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueMap<K, V>(pub Vec<(K, V)>);

impl<K, V> Default for UniqueMap<K, V> {
    fn default() -> Self {
        UniqueMap(Vec::new())
    }
}

impl<'de, K, V> Deserialize<'de> for UniqueMap<K, V>
where
    K: Deserialize<'de> + PartialEq + fmt::Debug + KeyName,
    V: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<K, V>(std::marker::PhantomData<(K, V)>);
        impl<'de, K, V> Visitor<'de> for Vis<K, V>
        where
            K: Deserialize<'de> + PartialEq + fmt::Debug + KeyName,
            V: Deserialize<'de>,
        {
            type Value = UniqueMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(K, V)> = Vec::new();
                while let Some(key) = map.next_key::<K>()? {
                    if out.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!(
                            "{} is defined twice in this file",
                            key.key_name()
                        )));
                    }
                    let value = map.next_value::<V>()?;
                    out.push((key, value));
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}

pub trait KeyName {
    fn key_name(&self) -> String;
}

impl KeyName for String {
    fn key_name(&self) -> String {
        self.clone()
    }
}

impl KeyName for EnvName {
    fn key_name(&self) -> String {
        self.0.as_str().to_string()
    }
}

impl Serialize for UniqueMap<String, Gate> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}
