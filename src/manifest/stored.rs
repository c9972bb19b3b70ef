//! Reading a policy that reconcile stored, possibly by a newer shipctl: what this
//! version knows is kept, and what it does not know is named, never dropped silently.

use super::Policy;
use super::schema::{
    CommandSpec, ExecutorSpec, Gate, HttpSpec, SimulateSpec, VerifySpec, WindowSpec, WindowsSpec,
};
use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::{Map, Value};

/// A stored policy as this version reads it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredPolicy {
    /// The fields this version knows, parsed.
    pub policy: Policy,
    /// Key paths of the fields this version does not know or cannot parse
    /// (`gates.qa.sign`, `on_failure`, `canary`), sorted.
    pub unknown: Vec<String>,
}

/// The JSON a policy (or a part of it) is stored and shown in: fields that are
/// absent (`null`) or empty lists are left out, so the stored text says only
/// what the manifests say. Output for scripts (`--output json`) keeps them.
pub fn compact<T: serde::Serialize>(value: &T) -> String {
    fn prune(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|_, x| !(x.is_null() || x.as_array().is_some_and(Vec::is_empty)));
                map.values_mut().for_each(prune);
            }
            Value::Array(items) => items.iter_mut().for_each(prune),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
    prune(&mut v);
    v.to_string()
}

/// Reads the JSON of `environnements.policy` leniently. An error only when it is
/// not a JSON object at all (a corrupt row, not a newer version).
pub fn read(json: &str) -> Result<StoredPolicy, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let Value::Object(mut top) = value else {
        return Err("it is not a JSON object".into());
    };
    let mut unknown = Vec::new();
    drop_unknown::<Policy>(&mut top, "", &mut unknown);

    if let Some(gates) = top.get_mut("gates") {
        match gates {
            Value::Array(items) => {
                items.retain_mut(|item| keep_gate(item, &mut unknown));
            }
            _ => {
                unknown.push("gates".into());
                top.remove("gates");
            }
        }
    }
    if let Some(executor) = top.get_mut("executor") {
        let keep = match executor {
            Value::Object(x) => {
                drop_unknown::<ExecutorSpec>(x, "executor", &mut unknown);
                part::<SimulateSpec>(x, "simulate", "executor", &mut unknown);
                part::<CommandSpec>(x, "command", "executor", &mut unknown);
                parse_or_blame::<ExecutorSpec>(x, "executor", &mut unknown).is_some()
            }
            Value::Null => true,
            _ => false,
        };
        if !keep {
            unknown.push("executor".into());
            top.remove("executor");
        }
    }
    if let Some(verify) = top.get_mut("verify") {
        let keep = match verify {
            Value::Object(x) => {
                drop_unknown::<VerifySpec>(x, "verify", &mut unknown);
                part::<HttpSpec>(x, "http", "verify", &mut unknown);
                parse_or_blame::<VerifySpec>(x, "verify", &mut unknown).is_some()
            }
            Value::Null => true,
            _ => false,
        };
        if !keep {
            unknown.push("verify".into());
            top.remove("verify");
        }
    }
    if let Some(windows) = top.get_mut("windows") {
        let keep = match windows {
            Value::Object(x) => {
                drop_unknown::<WindowsSpec>(x, "windows", &mut unknown);
                for list in ["allow", "deny"] {
                    keep_windows(x, list, &mut unknown);
                }
                match parse_or_blame::<WindowsSpec>(x, "windows", &mut unknown) {
                    // Read, but with a value this version does not accept (a
                    // time zone or a day a newer version knows): named.
                    Some(spec) => {
                        if let Err(e) = crate::window::parse(&spec) {
                            unknown.push(e.key);
                        }
                        true
                    }
                    None => false,
                }
            }
            Value::Null => true,
            _ => false,
        };
        if !keep {
            unknown.push("windows".into());
            top.remove("windows");
        }
    }
    let policy = match parse_or_blame::<Policy>(&mut top, "", &mut unknown) {
        Some(p) => p,
        None => {
            // Nothing could be salvaged field by field: every field is suspect.
            unknown.extend(top.keys().cloned());
            Policy::default()
        }
    };
    unknown.sort();
    unknown.dedup();
    Ok(StoredPolicy { policy, unknown })
}

/// One item of `gates` (`{"name": ..., "gate": {...}}`): false when it cannot
/// be read at all (then its name is reported as unknown and the item dropped).
fn keep_gate(item: &mut Value, unknown: &mut Vec<String>) -> bool {
    let Value::Object(named) = item else {
        unknown.push("gates[?]".into());
        return false;
    };
    let name = named
        .get("name")
        .and_then(Value::as_str)
        .map_or_else(|| "?".to_string(), str::to_string);
    let path = format!("gates.{name}");
    drop_unknown::<super::NamedGate>(named, &path, unknown);
    match named.get_mut("gate") {
        Some(Value::Object(gate)) => {
            drop_unknown::<Gate>(gate, &path, unknown);
            if parse_or_blame::<Gate>(gate, &path, unknown).is_none() {
                unknown.push(path);
                return false;
            }
        }
        _ => {
            unknown.push(path);
            return false;
        }
    }
    if serde_json::from_value::<super::NamedGate>(Value::Object(named.clone())).is_err() {
        unknown.push(path);
        return false;
    }
    true
}

/// The list `windows.<list>`: each window's unknown fields named and dropped.
/// A window with a value this version cannot read is dropped whole (without
/// its `days`, a weekly window would mean another thing), the value named
/// (`windows.deny[2].days`), or the window when no one value explains it.
fn keep_windows(windows: &mut Map<String, Value>, list: &str, unknown: &mut Vec<String>) {
    let path = format!("windows.{list}");
    match windows.get_mut(list) {
        None => {}
        Some(Value::Array(items)) => {
            let mut i = 0;
            items.retain_mut(|item| {
                let here = format!("{path}[{i}]");
                i += 1;
                let Value::Object(w) = item else {
                    unknown.push(here);
                    return false;
                };
                drop_unknown::<WindowSpec>(w, &here, unknown);
                let named = unknown.len();
                match parse_or_blame::<WindowSpec>(&mut w.clone(), &here, unknown) {
                    Some(_) => unknown.len() == named,
                    None => {
                        unknown.push(here);
                        false
                    }
                }
            });
        }
        Some(_) => {
            unknown.push(path);
            windows.remove(list);
        }
    }
}

/// A nested object `key` of `parent` read as `T`, its unknown fields dropped and
/// named; removed entirely when it still cannot be read.
fn part<T: DeserializeOwned>(
    parent: &mut Map<String, Value>,
    key: &str,
    parent_path: &str,
    unknown: &mut Vec<String>,
) {
    let path = join(parent_path, key);
    let keep = match parent.get_mut(key) {
        None | Some(Value::Null) => return,
        Some(Value::Object(obj)) => {
            drop_unknown::<T>(obj, &path, unknown);
            parse_or_blame::<T>(obj, &path, unknown).is_some()
        }
        Some(_) => false,
    };
    if !keep {
        unknown.push(path);
        parent.remove(key);
    }
}

/// Removes (and names) the keys of `obj` that `T` has no field for.
fn drop_unknown<T: DeserializeOwned>(
    obj: &mut Map<String, Value>,
    path: &str,
    unknown: &mut Vec<String>,
) {
    let known = fields_of::<T>();
    let extra: Vec<String> = obj
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    for k in extra {
        obj.remove(&k);
        unknown.push(join(path, &k));
    }
}

/// `obj` read as `T`; when that fails, the one field whose removal makes it
/// readable is named and removed (a value this version cannot parse, such as a
/// new `on_failure` mode). `None`: no single field explains it.
fn parse_or_blame<T: DeserializeOwned>(
    obj: &mut Map<String, Value>,
    path: &str,
    unknown: &mut Vec<String>,
) -> Option<T> {
    if let Ok(t) = serde_json::from_value::<T>(Value::Object(obj.clone())) {
        return Some(t);
    }
    let keys: Vec<String> = obj.keys().cloned().collect();
    for k in keys {
        let mut without = obj.clone();
        without.remove(&k);
        if let Ok(t) = serde_json::from_value::<T>(Value::Object(without.clone())) {
            unknown.push(join(path, &k));
            *obj = without;
            return Some(t);
        }
    }
    None
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The field names serde itself expects for the struct `T`, so that the list of
/// known fields cannot drift from the types as fields are added.
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldProbe) {
        Err(Probe(Some(fields))) => fields,
        _ => &[],
    }
}

/// A deserializer that answers nothing and records the fields a struct asks for.
struct FieldProbe;

#[derive(Debug)]
struct Probe(Option<&'static [&'static str]>);

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for Probe {}

impl de::Error for Probe {
    fn custom<M: std::fmt::Display>(_msg: M) -> Self {
        Probe(None)
    }
}

impl<'de> de::Deserializer<'de> for FieldProbe {
    type Error = Probe;

    fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Probe> {
        Err(Probe(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _v: V,
    ) -> Result<V::Value, Probe> {
        Err(Probe(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(json: &str) -> Vec<String> {
        read(json).map(|s| s.unknown).unwrap_or_default()
    }

    #[test]
    fn a_policy_of_this_version_has_nothing_unknown() {
        let p = Policy {
            gates: vec![super::super::NamedGate {
                name: "qa".into(),
                gate: Gate {
                    approvals: Some(1),
                    approvers: Some(crate::manifest::schema::Approvers(vec![
                        crate::manifest::schema::Approver {
                            name: "alice".into(),
                            keys: vec![],
                        },
                    ])),
                    command: None,
                    timeout: None,
                    kill_grace: None,
                    self_approval: Some(true),
                    expires: None,
                    unverifiable: None,
                },
            }],
            ..Policy::default()
        };
        let json = serde_json::to_string(&p).unwrap_or_default();
        assert_eq!(
            read(&json),
            Ok(StoredPolicy {
                policy: p,
                unknown: vec![]
            })
        );
    }

    #[test]
    fn unknown_fields_are_named_and_known_ones_kept() {
        let json = r#"{"requires":"staging","verify":{"command":["x"],"canary":2},
            "gates":[{"name":"qa","gate":{"approvals":2,"sign":true}},
                     {"name":"scan","gate":{"command":["scan"]}}],
            "executor":{"command":{"run":["d"],"canary":1}},
            "on_failure":"replan","max_attempts":3}"#;
        let s = read(json).unwrap_or_default();
        assert_eq!(
            s.unknown,
            ["executor.command.canary", "gates.qa.sign", "verify.canary"]
        );
        assert_eq!(s.policy.gates.len(), 2);
        assert_eq!(s.policy.gates[0].gate.approvals, Some(2));
        assert_eq!(s.policy.requires, Some(crate::model::Env::Staging));
    }

    #[test]
    fn an_unparsable_value_counts_as_unknown() {
        assert_eq!(
            unknown(r#"{"on_failure":"rollforward","max_attempts":3}"#),
            ["on_failure"]
        );
        assert_eq!(
            unknown(r#"{"requires":"qa","on_failure":"replan","max_attempts":3}"#),
            ["requires"]
        );
        assert_eq!(
            unknown(
                r#"{"gates":[{"name":"qa","gate":{"approvals":"two"}}],"on_failure":"replan","max_attempts":3}"#
            ),
            ["gates.qa.approvals"]
        );
        assert_eq!(
            unknown(r#"{"executor":{"http":{}},"on_failure":"replan","max_attempts":3}"#),
            ["executor.http"]
        );
    }

    #[test]
    fn windows_are_read_leniently() {
        let json = r#"{"windows":{"timezone":"Europe/Paris","moon":1,
            "allow":[{"days":["mon"],"from":"09:00","to":"17:00","colour":"red"}],
            "deny":[{"from":"2026-12-20 00:00","to":"2027-01-04 00:00","reason":"freeze"},
                    {"days":"weekdays","from":"15:00","to":"24:00"}]},
            "on_failure":"replan","max_attempts":3}"#;
        let s = read(json).unwrap_or_default();
        assert_eq!(
            s.unknown,
            [
                "windows.allow[0].colour",
                "windows.deny[1].days",
                "windows.moon"
            ]
        );
        let w = s
            .policy
            .windows
            .unwrap_or_else(|| panic!("windows dropped"));
        assert_eq!(w.timezone.as_deref(), Some("Europe/Paris"));
        assert_eq!((w.allow.len(), w.deny.len()), (1, 1));

        // Readable, but a value this version does not accept.
        let json =
            r#"{"windows":{"timezone":"Mars/Olympus"},"on_failure":"replan","max_attempts":3}"#;
        assert_eq!(unknown(json), ["windows.timezone"]);
        let json = r#"{"windows":{"deny":[{"days":["weekdays"],"from":"1:00","to":"2:00"}]},"on_failure":"replan","max_attempts":3}"#;
        assert_eq!(unknown(json), ["windows.deny[0].days"]);
        // Not an object at all.
        assert_eq!(
            unknown(r#"{"windows":[1],"on_failure":"replan","max_attempts":3}"#),
            ["windows"]
        );
        assert_eq!(
            unknown(r#"{"windows":{"allow":{}},"on_failure":"replan","max_attempts":3}"#),
            ["windows.allow"]
        );
        // A policy of this version, windows included, reads back as it was.
        let spec: WindowsSpec = serde_json::from_str(
            r#"{"timezone":"UTC","deny":[{"days":["fri"],"from":"15:00","to":"24:00","reason":"no Friday deploys"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let p = Policy {
            windows: Some(spec),
            ..Policy::default()
        };
        for json in [serde_json::to_string(&p).unwrap_or_default(), compact(&p)] {
            assert_eq!(
                read(&json),
                Ok(StoredPolicy {
                    policy: p.clone(),
                    unknown: vec![]
                }),
                "{json}"
            );
        }
    }

    #[test]
    fn approvers_are_read_as_names_or_with_their_keys() {
        let policy = |approvers: &str| {
            format!(
                r#"{{"gates":[{{"name":"qa","gate":{{"approvals":1,"approvers":{approvers}}}}}],"on_failure":"replan","max_attempts":3}}"#
            )
        };
        let approvers = |json: &str| {
            let s = read(json).unwrap_or_default();
            assert_eq!(s.unknown, Vec::<String>::new(), "{json}");
            s.policy.gates[0].gate.approvers.clone().unwrap_or_default()
        };
        // What shipctl stored before keys: a list of names, read as it was.
        let names = approvers(&policy(r#"["alice","bob"]"#));
        assert_eq!(names.names(), ["alice", "bob"]);
        assert!(!names.signed() && names.keys_of("alice").is_none());
        // With keys: one per person, or a list.
        let keyed = approvers(&policy(
            r#"{"alice":"ssh-ed25519 AAAA1","bob":["ssh-ed25519 AAAA2","ssh-rsa AAAA3"]}"#,
        ));
        assert!(keyed.signed());
        assert_eq!(keyed.keys_of("bob").map(<[String]>::len), Some(2));
        // Written back the same way.
        let p = read(&policy(r#"{"alice":"ssh-ed25519 AAAA1"}"#)).unwrap_or_default();
        assert!(compact(&p.policy).contains(r#""approvers":{"alice":"ssh-ed25519 AAAA1"}"#));
        // A form this version cannot read is named, so nothing acts on the gate
        // as if it had no keys.
        assert_eq!(
            unknown(&policy(r#"{"alice":{"key":"ssh-ed25519 AAAA1"}}"#)),
            ["gates.qa.approvers"]
        );
    }

    #[test]
    fn not_an_object_is_an_error() {
        assert!(read("[]").is_err());
        assert!(read("{").is_err());
    }
}
