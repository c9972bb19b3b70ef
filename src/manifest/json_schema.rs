//! The manifests' JSON Schema (`shipctl schema`), for editors and CI linters.
//!
//! It is generated from the types the loader deserialises into (`schema.rs`,
//! whose doc comments are the descriptions); this file holds what a derive
//! cannot say: the scalar types' own rules (labels, durations, environment
//! names), the two shapes a gate, an executor, a verification or a window may
//! take (`oneOf`), and the rules the loader checks after deserialising that a
//! schema can still express (ranges, patterns, an environment's `requires`
//! naming one that comes before it).
//!
//! What no JSON Schema can say is left to `shipctl check` (see `BEYOND`).

use super::API_VERSION;
use super::duration_bounds::{self as bounds, Low};
use super::schema::{
    Approvers, DurationText, EnvName, Environment, Gate, Label, OnFailureName, UniqueMap,
};
use crate::model::{Env, MAX_ACTOR_CHARS, MAX_ARG_CHARS, MAX_ARGV_ITEMS, MAX_GATE_NAME_CHARS};
use crate::model::{MAX_LABEL_CHARS, OnFailure};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::time::Duration;

/// The rules `shipctl check` enforces that the schema does not express, and
/// why: a file that validates can still be refused for one of these.
pub const BEYOND: &[(&str, &str)] = &[
    (
        "a key defined in two files (an environment, a release, notifications:)",
        "the schema sees one file at a time",
    ),
    (
        "an environment's release, or the environment it requires, declared in no manifest",
        "a reference across files",
    ),
    (
        "a release version declared twice, or the same webhook URL twice",
        "JSON Schema compares whole list items, not one of their keys",
    ),
    (
        "a key written twice in one mapping",
        "the YAML parser keeps one of the two before any schema sees them",
    ),
    (
        "YAML that makes no JSON document, or too large a one: tags (!!str, !custom), a list as a key, a key over 1024 characters, anchors that expand too far, nesting over 64 levels, files over 1 MiB",
        "limits of the YAML text, not of its values",
    ),
    (
        "a gate's approvers fewer than its approvals",
        "a comparison between two values",
    ),
    (
        "a window empty or ending before it starts",
        "a comparison between two values",
    ),
    (
        "an approver's SSH key that is not an ed25519 or RSA (2048 bits or more) public key, \
         or the same key for two approvers",
        "the key's own encoding, and a comparison between values",
    ),
    (
        "an environment's policy over 6144 bytes once stored",
        "a size of the stored form",
    ),
    (
        "a release whose tag differs from the one the ledger holds",
        "the ledger is not a file (reconcile checks it; check does not)",
    ),
];

/// An http or https URL with a host (any letter case, as URLs allow).
pub const HTTP_URL: &str = r"^\s*[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s]";
/// An environment variable's name.
pub const VARIABLE_NAME: &str = "^[A-Za-z_][A-Za-z0-9_]{0,254}$";
/// A duration as `crate::duration::parse` reads it: a number and a unit.
const DURATION: &str = r"^\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)(ms|s|m|h)\s*$";
/// Text without the characters `crate::model::is_unsafe_char` refuses.
const SAFE: &str = r"\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069";
/// `{word}` placeholders must be known ones (`crate::verify::check_template`).
const TEMPLATE: &str = r"^([^{]|\{(version|tag|env)\}|\{(?![A-Za-z0-9_]+\}))*$";
const TIME: &str = "([01]?[0-9]|2[0-3]):[0-5][0-9]";
/// A date of the calendar: 30 days hath September, and February 29 only in
/// leap years (every 4th, but of the centuries only every 4th).
const DATE: &str = concat!(
    "(?:[0-9]{4}-(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])",
    "|[0-9]{4}-(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)",
    "|[0-9]{4}-02-(?:0[1-9]|1[0-9]|2[0-8])",
    "|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)"
);

/// The manifests' schema, as `shipctl schema` prints it.
pub fn generate() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<super::schema::File>();
    schema.to_value()
}

/// One line of text a person reads: no control characters, not blank at either end.
fn trimmed_line() -> String {
    format!(r"^[^\s{SAFE}]([^{SAFE}]*[^\s{SAFE}])?$")
}

fn set(schema: &mut Schema, key: &str, value: Value) {
    schema.insert(key.to_string(), value);
}

// ------------------------------------------------------------ scalar types

impl JsonSchema for Label {
    fn schema_name() -> Cow<'static, str> {
        "Label".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A version or tag: quoted text, 1 to 50 characters, no control \
                characters, not starting or ending with a space (\"1.0.2\", v1.0.2). \
                Unquoted 1.10 is a number to YAML, not text.",
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_LABEL_CHARS,
            "pattern": trimmed_line(),
        })
    }
}

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: a number and a unit, ms, s, m or h (500ms, 2s, 1.5s, \
                10m, 1h), at most 366 days.",
            "type": "string",
            "pattern": DURATION,
            "allOf": [{ "pattern": bounds::pattern(Low::Zero, bounds::MAX_MS) }],
            "examples": ["500ms", "30s", "10m"],
        })
    }
}

/// A duration with bounds of its own, named in `$defs`: a `Duration`, and
/// within `low` to `high` (`duration_bounds`).
fn bounded(generator: &mut SchemaGenerator, description: &str, low: Low, high: Duration) -> Schema {
    let duration = generator.subschema_for::<DurationText>();
    json_schema!({
        "description": description,
        "allOf": [duration],
        "pattern": bounds::pattern(low, high.as_millis() as u64),
    })
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// A command's `timeout:` (a gate's, the executor's, a verification try's).
pub struct Timeout;

impl JsonSchema for Timeout {
    fn schema_name() -> Cow<'static, str> {
        "Timeout".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        bounded(
            generator,
            "How long a command may run: a duration from 1s to 24h (30s, 10m, 2h).",
            Low::AtLeast(ms(super::MIN_TIMEOUT)),
            super::MAX_TIMEOUT,
        )
    }
}

/// `kill_grace:`, between SIGTERM and SIGKILL.
pub struct KillGrace;

impl JsonSchema for KillGrace {
    fn schema_name() -> Cow<'static, str> {
        "KillGrace".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        bounded(
            generator,
            "Between SIGTERM and SIGKILL when a command is stopped: more than 0, at most 1h \
             (default 10s).",
            Low::AboveZero,
            crate::executor::command::MAX_KILL_GRACE,
        )
    }
}

/// A gate's `expires:`.
pub struct Expiry;

impl JsonSchema for Expiry {
    fn schema_name() -> Cow<'static, str> {
        "Expiry".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        bounded(
            generator,
            "How long an approval counts: a duration of at least 1s (24h; 168h for a week).",
            Low::AtLeast(ms(super::MIN_EXPIRES)),
            Duration::from_millis(bounds::MAX_MS),
        )
    }
}

/// `verify.interval:`, between tries.
pub struct Interval;

impl JsonSchema for Interval {
    fn schema_name() -> Cow<'static, str> {
        "Interval".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        bounded(
            generator,
            "Between verification tries: a duration up to 1h (default 5s).",
            Low::Zero,
            super::MAX_VERIFY_INTERVAL,
        )
    }
}

impl JsonSchema for EnvName {
    fn schema_name() -> Cow<'static, str> {
        "EnvironmentName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = Env::ALL.iter().map(|e| e.as_str()).collect();
        json_schema!({
            "description": "An environment: shipctl manages dev, staging and prod only.",
            "type": "string",
            "enum": names,
        })
    }
}

impl JsonSchema for OnFailureName {
    fn schema_name() -> Cow<'static, str> {
        "OnFailure".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = [OnFailure::Replan, OnFailure::Cancel]
            .iter()
            .map(|o| o.as_str())
            .collect();
        json_schema!({
            "type": "string",
            "enum": names,
        })
    }
}

// ------------------------------------------------------------ mappings

/// `environments:` — dev, staging and prod, each at most once; `requires`
/// names an environment that comes before (the promotion order of `Env`).
impl JsonSchema for UniqueMap<EnvName, Environment> {
    fn schema_name() -> Cow<'static, str> {
        "Environments".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let environment = generator.subschema_for::<Environment>();
        let mut properties = serde_json::Map::new();
        for env in Env::ALL {
            let mut before: Vec<Value> = Env::ALL
                .iter()
                .filter(|e| **e < env)
                .map(|e| Value::from(e.as_str()))
                .collect();
            let requires = if before.is_empty() {
                json!({
                    "description": format!("{env} comes first: it requires no other environment."),
                    "type": "null",
                })
            } else {
                before.push(Value::Null);
                json!({
                    "description": format!("{env} may require an environment promoted before it."),
                    "enum": before,
                })
            };
            properties.insert(
                env.as_str().to_string(),
                json!({
                    "allOf": [environment.clone().to_value()],
                    "properties": { "requires": requires },
                }),
            );
        }
        json_schema!({
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        })
    }
}

/// `gates:` — named gates, each name a plain word.
impl JsonSchema for UniqueMap<String, Gate> {
    fn schema_name() -> Cow<'static, str> {
        "Gates".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "propertyNames": {
                "pattern": format!("^[A-Za-z0-9_-]{{1,{MAX_GATE_NAME_CHARS}}}$"),
            },
            "additionalProperties": generator.subschema_for::<Gate>(),
        })
    }
}

// ------------------------------------------------------------ transforms

/// The root: an empty file is a valid manifest (it declares nothing).
pub fn file(schema: &mut Schema) {
    set(schema, "type", json!(["object", "null"]));
}

pub fn api_version(schema: &mut Schema) {
    set(schema, "enum", json!([API_VERSION, null]));
}

pub fn events(schema: &mut Schema) {
    set(schema, "uniqueItems", json!(true));
    set(
        schema,
        "items",
        json!({ "type": "string", "enum": crate::notify::EVENTS }),
    );
}

/// `approvers:`: login names, or login names with their SSH public keys
/// (DESIGN §12); the keys themselves are parsed by `shipctl check`.
impl JsonSchema for Approvers {
    fn schema_name() -> Cow<'static, str> {
        "Approvers".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let name = json!({
            "description": "A login name, as `approve --by` or $USER gives it.",
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ACTOR_CHARS,
            "pattern": trimmed_line(),
        });
        // The key itself is checked by `shipctl check` (see `BEYOND`).
        let key = json!({
            "description": "An SSH public key line, as in ~/.ssh/id_ed25519.pub: ed25519 or RSA.",
            "type": "string",
            "minLength": 1,
        });
        json_schema!({
            "description": "A list of login names; or a mapping of login names to an SSH public \
                key or a list of them, whose decisions then count only when signed with one \
                (`shipctl approve --sign`).",
            "oneOf": [
                { "type": "array", "minItems": 1, "uniqueItems": true, "items": name },
                {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": name,
                    "additionalProperties": {
                        "oneOf": [key, { "type": "array", "minItems": 1, "items": key }]
                    }
                }
            ],
            "examples": [["alice", "bob"], { "alice": "ssh-ed25519 AAAAC3Nza... alice@laptop" }],
        })
    }
}

/// A command line: the program (not empty) and its arguments, bounded.
pub fn argv(schema: &mut Schema) {
    set(schema, "minItems", json!(1));
    set(schema, "maxItems", json!(MAX_ARGV_ITEMS));
    set(
        schema,
        "prefixItems",
        json!([{ "type": "string", "minLength": 1, "maxLength": MAX_ARG_CHARS }]),
    );
    set(
        schema,
        "items",
        json!({ "type": "string", "maxLength": MAX_ARG_CHARS }),
    );
}

pub fn url_template(schema: &mut Schema) {
    set(
        schema,
        "allOf",
        json!([{ "pattern": HTTP_URL }, { "pattern": TEMPLATE }]),
    );
}

pub fn template(schema: &mut Schema) {
    set(schema, "pattern", json!(TEMPLATE));
}

/// Text with something in it, and no control characters.
pub fn one_line(schema: &mut Schema) {
    set(
        schema,
        "pattern",
        json!(format!(r"^[^{SAFE}]*[^\s{SAFE}][^{SAFE}]*$")),
    );
}

/// Every name of the time-zone database compiled into shipctl.
pub fn timezone(schema: &mut Schema) {
    let mut names: Vec<Value> = jiff::tz::db()
        .available()
        .map(|n| Value::from(n.as_str()))
        .collect();
    names.push(Value::Null);
    set(schema, "enum", Value::Array(names));
}

/// "Set, and not null" and "absent or null", for the shapes below.
fn given() -> Value {
    json!({ "not": { "type": "null" } })
}

fn unset() -> Value {
    json!({ "type": "null" })
}

/// Keys that must be given, and keys that must not, in one shape.
fn shape(title: &str, needs: &[&str], refuses: &[&str]) -> Value {
    let mut properties = serde_json::Map::new();
    for k in needs {
        properties.insert(k.to_string(), given());
    }
    for k in refuses {
        properties.insert(k.to_string(), unset());
    }
    json!({ "title": title, "required": needs, "properties": properties })
}

pub fn gate(schema: &mut Schema) {
    set(
        schema,
        "oneOf",
        json!([
            shape(
                "approval gate",
                &["approvals"],
                &["command", "timeout", "kill_grace"]
            ),
            shape(
                "command gate",
                &["command"],
                &["approvals", "approvers", "self_approval", "expires"]
            ),
        ]),
    );
}

pub fn executor(schema: &mut Schema) {
    set(
        schema,
        "oneOf",
        json!([
            shape("simulated executor", &["simulate"], &["command"]),
            shape("command executor", &["command"], &["simulate"]),
        ]),
    );
}

pub fn verify(schema: &mut Schema) {
    set(
        schema,
        "oneOf",
        json!([
            shape("command check", &["command"], &["http"]),
            shape("HTTP check", &["http"], &["command", "kill_grace"]),
        ]),
    );
}

pub fn window(schema: &mut Schema) {
    let day = crate::window::DAY_NAMES
        .iter()
        .map(|(name, _)| {
            name.chars()
                .map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c))
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("|");
    set(
        schema,
        "oneOf",
        json!([
            {
                "title": "weekly window",
                "required": ["days"],
                "properties": {
                    "days": {
                        "type": "array",
                        "minItems": 1,
                        "items": { "type": "string", "pattern": format!(r"^\s*({day})\s*$") },
                    },
                    "from": { "pattern": format!("^{TIME}$") },
                    "to": { "pattern": format!("^({TIME}|24:00)$") },
                },
            },
            {
                "title": "one-off window",
                "properties": {
                    "days": unset(),
                    "from": { "pattern": format!("^{DATE} ({TIME}|24:00)$") },
                    "to": { "pattern": format!("^{DATE} ({TIME}|24:00)$") },
                },
            },
        ]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_a_draft_2020_12_object_schema() {
        let s = generate();
        assert_eq!(
            s["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{s:#}"
        );
        assert_eq!(s["additionalProperties"], false, "{s:#}");
        let defs = s["$defs"].as_object().expect("$defs");
        for name in ["Environment", "Gate", "Label", "Duration", "WindowSpec"] {
            assert!(defs.contains_key(name), "no {name} in {:?}", defs.keys());
        }
    }
}
