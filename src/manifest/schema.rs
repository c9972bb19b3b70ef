//! The YAML shape of a manifest file, with the checks serde can make while it
//! still knows the line and key path: unknown keys, unquoted numeric versions,
//! environment names, durations, keys defined twice.
//!
//! The same types give `shipctl schema` its JSON Schema (`JsonSchema` derives;
//! `json_schema` holds the hand-written parts): the doc comments below are the
//! descriptions an editor shows.

use super::json_schema as js;
use crate::model::{Env, OnFailure};
use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Marker the loader looks for to quote the user's own text back in the hint.
pub const UNQUOTED_NUMBER: &str = "is an unquoted number";

/// A shipctl manifest: releases, the environments that run them, and webhooks.
/// Every *.yaml/*.yml file of the manifests directory is one; they are merged.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "shipctl manifest", transform = js::file)]
pub struct File {
    /// The manifest format; optional. This shipctl reads shipctl/v1.
    #[serde(rename = "apiVersion")]
    #[schemars(transform = js::api_version)]
    pub api_version: Option<String>,
    /// The releases the environments may name: each version once, across all files.
    pub releases: Option<Vec<Release>>,
    /// The managed environments (dev, staging, prod), each in one file only; an
    /// environment absent from every file is not managed.
    pub environments: Option<UniqueMap<EnvName, Environment>>,
    /// Webhooks told about audited events (DESIGN §11); in one file only.
    pub notifications: Option<Vec<Notification>>,
}

/// One `notifications:` entry: where to POST, which events, how to sign.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// The webhook: an http or https URL (at most 2000 bytes), never printed
    /// in full (it may hold a token).
    #[schemars(length(max = 2000), regex(pattern = js::HTTP_URL))]
    pub url: String,
    /// Audit actions to send; absent: every one.
    #[serde(default)]
    #[schemars(length(min = 1), transform = js::events)]
    pub events: Option<Vec<String>>,
    /// The environment variable that holds the HMAC key, read at delivery.
    #[serde(default)]
    #[schemars(regex(pattern = js::VARIABLE_NAME))]
    pub secret_env: Option<String>,
}

/// A release: a version and the git tag it was built from. Releases are
/// immutable: a version the ledger holds with another tag is refused.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The version, such as "1.0.2": quote it (unquoted 1.10 is the number 1.1 to YAML).
    pub version: Label,
    /// The git tag, such as v1.0.2.
    pub tag: Label,
}

/// A managed environment: the release it should run and the policy that
/// deployments to it follow.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The version this environment should run; declared under releases: in some manifest.
    pub release: Label,
    /// An environment before this one (dev → staging → prod) where the release must
    /// have succeeded first; that environment must be managed too.
    pub requires: Option<EnvName>,
    /// Checks every deployment passes before it runs, by name (1 to 50 letters,
    /// digits, '-' or '_'; `approve --gate NAME`).
    #[serde(default)]
    pub gates: UniqueMap<String, Gate>,
    /// How a deployment runs; default: a 1s simulation failing one time in five.
    pub executor: Option<ExecutorSpec>,
    /// After a failed run: replan (plan the deployment again, up to max_attempts)
    /// or cancel; default replan.
    pub on_failure: Option<OnFailureName>,
    /// Runs of one release before reconcile gives up; 1 to 100, default 3.
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: Option<u32>,
    /// Checks after a successful run; the deployment succeeds only if they pass.
    pub verify: Option<VerifySpec>,
    /// When deployments may start; default: at any time.
    pub windows: Option<WindowsSpec>,
}

/// A gate: either `approvals: N` (people approve with `shipctl approve`) or
/// `command: [...]` (exit 0 passes), never both.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = js::gate)]
pub struct Gate {
    /// Distinct approvals needed, 1 or more.
    #[schemars(range(min = 1))]
    pub approvals: Option<u32>,
    /// Who may approve an `approvals:` gate; anyone when absent. At least as many
    /// names as approvals. With SSH public keys (a mapping), a person's decisions
    /// count only when signed with one of their keys (`approve --sign`).
    #[serde(default)]
    pub approvers: Option<Approvers>,
    /// The program and its arguments; exit 0 passes the gate.
    #[schemars(transform = js::argv)]
    pub command: Option<Vec<String>>,
    /// How long the command may run (1s to 24h); default 10m.
    #[schemars(with = "Option<js::Timeout>")]
    pub timeout: Option<DurationText>,
    /// Between SIGTERM and SIGKILL when the gate's command is stopped.
    #[serde(default)]
    #[schemars(with = "Option<js::KillGrace>")]
    pub kill_grace: Option<DurationText>,
    /// Whether whoever planned a deployment may approve it; default false
    /// (the four-eyes rule).
    #[serde(default)]
    pub self_approval: Option<bool>,
    /// Approvals older than this do not count; default: they never expire.
    #[serde(default)]
    #[schemars(with = "Option<js::Expiry>")]
    pub expires: Option<DurationText>,
    /// Never read from a file: set when the gate has keys in the ledger's
    /// copy and no manifests could be read to take them from (it says why).
    /// Its signed decisions then count for nothing (`engine::keys`).
    #[serde(skip)]
    #[schemars(skip)]
    pub unverifiable: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = js::executor)]
pub struct ExecutorSpec {
    /// A simulated run: it waits, then succeeds or fails at random.
    #[serde(default)]
    pub simulate: Option<SimulateSpec>,
    /// A real deployment command, with its rollback.
    #[serde(default)]
    pub command: Option<CommandSpec>,
}

/// A simulated run.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateSpec {
    /// How long a run lasts; default 1s.
    #[serde(default)]
    pub duration: Option<DurationText>,
    /// Probability that a run fails, from 0.0 to 1.0; default 0.2.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub failure_rate: Option<f64>,
}

/// A deployment command, run with SHIPCTL_* variables naming the release and environment.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The program and its arguments; exit 0 is a successful deployment.
    #[schemars(transform = js::argv)]
    pub run: Vec<String>,
    /// Run after a failed or stopped run, to undo it.
    #[serde(default)]
    #[schemars(transform = js::argv)]
    pub rollback: Option<Vec<String>>,
    /// How long the run may last (1s to 24h); default: until it ends.
    #[serde(default)]
    #[schemars(with = "Option<js::Timeout>")]
    pub timeout: Option<DurationText>,
    /// Between SIGTERM and SIGKILL when the run or the rollback is stopped.
    #[serde(default)]
    #[schemars(with = "Option<js::KillGrace>")]
    pub kill_grace: Option<DurationText>,
}

/// `verify:` — how an environment proves a deployed release healthy (DESIGN §9):
/// exactly one of `command` and `http` (checked by the loader).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = js::verify)]
pub struct VerifySpec {
    /// Exit 0 = healthy; run like the executor's command, with its variables.
    #[serde(default)]
    #[schemars(transform = js::argv)]
    pub command: Option<Vec<String>>,
    /// A GET whose status (and body) says the release is healthy.
    #[serde(default)]
    pub http: Option<HttpSpec>,
    /// Per try (1s to 24h); default 30s.
    #[serde(default)]
    #[schemars(with = "Option<js::Timeout>")]
    pub timeout: Option<DurationText>,
    /// Tries before verification counts as failed, 1 to 100; default 1.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub retries: Option<u32>,
    /// Between tries (up to 1h); default 5s.
    #[serde(default)]
    #[schemars(with = "Option<js::Interval>")]
    pub interval: Option<DurationText>,
    /// Between SIGTERM and SIGKILL when a check's command is stopped.
    #[serde(default)]
    #[schemars(with = "Option<js::KillGrace>")]
    pub kill_grace: Option<DurationText>,
}

/// `verify.http`: a GET whose status (and body) says the release is healthy.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// An http or https URL; `{version}`, `{tag}` and `{env}` are replaced, percent-encoded.
    #[schemars(transform = js::url_template)]
    pub url: String,
    /// The status wanted, 100 to 599; default 200.
    #[serde(default)]
    #[schemars(range(min = 100, max = 599))]
    pub status: Option<u16>,
    /// Text the body must contain (`{version}`, `{tag}`, `{env}` replaced).
    #[serde(default)]
    #[schemars(length(min = 1), transform = js::template)]
    pub contains: Option<String>,
}

/// `windows:` — when the environment may be deployed to (DESIGN §10), kept as
/// the manifests wrote it; `crate::window::parse` reads and checks it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowsSpec {
    /// An IANA name, such as Europe/Paris; UTC when absent.
    #[serde(default)]
    #[schemars(transform = js::timezone)]
    pub timezone: Option<String>,
    /// Absent or empty: open at any time outside the deny windows.
    #[serde(default)]
    pub allow: Vec<WindowSpec>,
    /// When deployments may not start; deny wins over allow.
    #[serde(default)]
    pub deny: Vec<WindowSpec>,
}

/// One window: weekly (`days` with `from`/`to` as `"HH:MM"`, `to` may be
/// `"24:00"`) or one-off (no `days`, `from`/`to` as `"YYYY-MM-DD HH:MM"`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = js::window)]
pub struct WindowSpec {
    /// Weekly windows: the days they apply (mon, tue, wed, thu, fri, sat, sun).
    #[serde(default)]
    pub days: Option<Vec<String>>,
    /// When it starts: "HH:MM" (weekly) or "YYYY-MM-DD HH:MM" (one-off).
    pub from: String,
    /// When it ends: "HH:MM", "24:00" for midnight (weekly; earlier than from:
    /// the next day), or "YYYY-MM-DD HH:MM" (one-off).
    pub to: String,
    /// Why, shown when the window holds a deployment back (one line, at most
    /// 1000 characters).
    #[serde(default)]
    #[schemars(length(min = 1, max = 1000), transform = js::one_line)]
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
