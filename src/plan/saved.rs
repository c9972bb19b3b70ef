//! A saved plan (`reconcile --dry-run --out FILE`, applied by `reconcile
//! --plan FILE`): what was planned and what it was planned from, so that
//! applying it can refuse when anything moved (DESIGN §13). Pure: the file's
//! format, the manifests' digest and the comparisons; reading and writing the
//! file is the command's, checking the ledger the engine's.

use super::Plan;
use crate::error::{Error, Result};
use crate::manifest::Desired;
use crate::model::Env;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The plan file's format. A reader refuses a higher one: a field it does not
/// know could be a condition it would not check.
pub const FORMAT: u32 = 1;

/// The version of shipctl that writes and applies plans.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPlan {
    /// Where it was read from, for messages (not in the file).
    #[serde(skip)]
    pub path: String,
    pub format: u32,
    pub shipctl_version: String,
    /// When the plan was made, by the planning machine's clock (RFC 3339 UTC):
    /// for people; nothing is judged on it.
    pub created_at: String,
    /// The ledger the plan was made on; `None`: there was no ledger yet.
    pub ledger_id: Option<String>,
    /// The manifest directory, as given.
    pub manifests: String,
    /// `sha256:` and the hex SHA-256 of the manifests' canonical form ([`digest`]).
    pub manifest_digest: String,
    /// The environments planned (the `--env` set, else every managed one), in
    /// promotion order.
    pub targets: Vec<Env>,
    /// The newest audit row of no environment (releases created, webhooks stored).
    pub global_watermark: i64,
    /// The releases the plan creates (or conflicts), as in the dry run's `plan.releases`.
    pub releases: Value,
    pub environments: Vec<SavedEnv>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedEnv {
    pub env: Env,
    /// The newest audit row of the environment when it was planned (0: none).
    pub watermark: i64,
    /// What it would do, in the dry run's words.
    pub summary: String,
    /// The environment's plan, as in the dry run's `plan.environments[]`.
    pub plan: Value,
}

/// Where the ledger stood: what a saved plan records, and checks again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Marks {
    pub ledger_id: Option<String>,
    pub global: i64,
    pub envs: std::collections::BTreeMap<Env, i64>,
}

impl SavedPlan {
    pub fn new(
        manifests: String,
        desired: &Desired,
        plan: &Plan,
        marks: &Marks,
        summary: impl Fn(Env) -> String,
    ) -> SavedPlan {
        SavedPlan {
            path: String::new(),
            format: FORMAT,
            shipctl_version: VERSION.to_string(),
            created_at: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
            ledger_id: marks.ledger_id.clone(),
            manifests,
            manifest_digest: digest(desired),
            targets: desired.environments.keys().copied().collect(),
            global_watermark: marks.global,
            releases: to_value(&plan.releases),
            environments: plan
                .environments
                .iter()
                .map(|e| SavedEnv {
                    env: e.env,
                    watermark: marks.envs.get(&e.env).copied().unwrap_or(0),
                    summary: summary(e.env),
                    plan: to_value(e),
                })
                .collect(),
        }
    }

    /// The file's text: pretty JSON and a final newline (it is reviewed and diffed).
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads a plan file's text. `path`: for messages. Refused: not JSON, not a
    /// plan, a newer format, a plan from a newer shipctl.
    pub fn parse(path: &str, text: &str) -> Result<SavedPlan> {
        let remake = format!(
            "nothing was applied; make a plan with `shipctl reconcile --dry-run --out {path}`, \
             review it, then apply it"
        );
        let v: Value = serde_json::from_str(text).map_err(|e| {
            Error::input(format!(
                "{path} is not a shipctl plan: it is not JSON ({e})"
            ))
            .hint(remake.clone())
        })?;
        let Some(format) = v.get("format").and_then(Value::as_u64) else {
            return Err(
                Error::input(format!("{path} is not a shipctl plan: it has no `format`"))
                    .hint(remake),
            );
        };
        let written_by = v
            .get("shipctl_version")
            .and_then(Value::as_str)
            .unwrap_or("an unknown version")
            .to_string();
        if format > u64::from(FORMAT) {
            return Err(Error::input(format!(
                "{path} is a plan of format {format}, written by shipctl {written_by}; this \
                 shipctl ({VERSION}) reads plans of format {FORMAT}"
            ))
            .hint("apply it with the shipctl that made it (or a newer one); nothing was applied"));
        }
        if newer(&written_by, VERSION) {
            return Err(Error::input(format!(
                "{path} was made by shipctl {written_by}, newer than this one ({VERSION})"
            ))
            .hint("apply it with the shipctl that made it (or a newer one); nothing was applied"));
        }
        let mut plan: SavedPlan = serde_json::from_value(v).map_err(|e| {
            Error::input(format!("{path} is not a valid shipctl plan: {e}")).hint(remake)
        })?;
        plan.path = path.to_string();
        Ok(plan)
    }

    /// A refusal to apply this plan: `what` moved. Exit 1, nothing applied.
    pub fn stale(&self, what: impl std::fmt::Display) -> Error {
        Error::input(format!("stale plan: {what}")).hint(format!(
            "nothing was applied from {}. Make a new plan (`shipctl reconcile --dry-run --out \
             {}`), review it, and apply that one",
            self.path, self.path
        ))
    }

    pub fn env(&self, env: Env) -> Option<&SavedEnv> {
        self.environments.iter().find(|e| e.env == env)
    }

    /// `None` when `plan` is the saved one; else what differs, in words. `now`:
    /// what each environment would do now, in the dry run's words.
    pub fn differs(&self, plan: &Plan, now: impl Fn(Env) -> String) -> Option<String> {
        let releases = to_value(&plan.releases);
        if releases != self.releases {
            return Some(format!(
                "the releases to create changed: the plan had {}, now {}",
                release_list(&self.releases),
                release_list(&releases)
            ));
        }
        let planned: Vec<Env> = self.environments.iter().map(|e| e.env).collect();
        let current: Vec<Env> = plan.environments.iter().map(|e| e.env).collect();
        if planned != current {
            return Some(format!(
                "the environments planned changed: the plan had {}, now {}",
                names(&planned),
                names(&current)
            ));
        }
        for (saved, e) in self.environments.iter().zip(&plan.environments) {
            if to_value(e) != saved.plan {
                let now = now(e.env);
                let detail = if now == saved.summary {
                    " (a detail differs: compare the plan file with `shipctl reconcile \
                     --dry-run --output json`)"
                        .to_string()
                } else {
                    String::new()
                };
                return Some(format!(
                    "what {} would do changed: the plan said \"{}\", now \"{now}\"{detail}",
                    e.env, saved.summary
                ));
            }
        }
        None
    }
}

/// What a saved environment plan and the one made under the environment's lock
/// must agree on. Left out: the recovery (its holder's lease runs out at its own
/// pace; compared apart), the upstream the plan waited for in the same run
/// (`after`: done by now), and what pending deployments wait for (approvals are
/// audited, so the watermark covers them).
pub fn comparable(plan: &Value) -> Value {
    let mut v = plan.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("recover");
        if let Some(action) = o.get_mut("action").and_then(Value::as_object_mut)
            && action.get("kind").and_then(Value::as_str) == Some("deploy")
        {
            action.insert("after".into(), Value::Null);
        }
    }
    strip_waiting(&mut v);
    v
}

fn strip_waiting(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.remove("waiting");
            for (_, x) in o.iter_mut() {
                strip_waiting(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_waiting),
        _ => {}
    }
}

/// The id of the stale deployment a saved environment plan recovers.
pub fn recovers(plan: &Value) -> Option<i64> {
    plan.get("recover")?.get("id")?.as_i64()
}

/// `Some(up)` when the saved plan deploys once the release succeeds in `up`
/// earlier in the same run.
pub fn after(plan: &Value) -> Option<Env> {
    let action = plan.get("action")?;
    if action.get("kind")?.as_str()? != "deploy" {
        return None;
    }
    Env::parse(action.get("after")?.as_str()?)
}

pub fn to_value<T: Serialize + ?Sized>(x: &T) -> Value {
    serde_json::to_value(x).unwrap_or(Value::Null)
}

fn names(envs: &[Env]) -> String {
    if envs.is_empty() {
        return "none".into();
    }
    envs.iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn release_list(v: &Value) -> String {
    let steps: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    format!(
                        "{} {}",
                        s.get("step").and_then(Value::as_str).unwrap_or("?"),
                        s.get("version").and_then(Value::as_str).unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if steps.is_empty() {
        "nothing".into()
    } else {
        steps.join(", ")
    }
}

/// Whether version `a` is newer than `b` ("0.2.0" > "0.1.9"; a pre-release
/// suffix is ignored; an unreadable version is never newer).
pub fn newer(a: &str, b: &str) -> bool {
    fn parts(v: &str) -> Option<Vec<u64>> {
        let core = v.split(['-', '+']).next()?;
        core.split('.').map(|p| p.parse().ok()).collect()
    }
    match (parts(a), parts(b)) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

/// `sha256:` and the hex SHA-256 of what the manifests declare, in a canonical
/// form: releases sorted by version, environments in promotion order, keys
/// sorted. Comments, formatting, quoting, key order, the order of releases and
/// which file declares what do not change it; any declared value does.
pub fn digest(desired: &Desired) -> String {
    let mut releases: Vec<Value> = desired
        .releases
        .iter()
        .map(|r| serde_json::json!({ "version": r.version, "tag": r.tag }))
        .collect();
    releases.sort_by(|a, b| a["version"].as_str().cmp(&b["version"].as_str()));
    let notifications: Vec<Value> = desired
        .notifications
        .iter()
        .map(
            |t| serde_json::json!({ "url": t.url, "events": t.events, "secret_env": t.secret_env }),
        )
        .collect();
    let doc = serde_json::json!({
        "releases": releases,
        "environments": to_value(&desired.environments),
        "notifications": notifications,
    });
    let mut text = String::new();
    canonical(&doc, &mut text);
    let hash = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut out = String::from("sha256:");
    for b in hash.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// JSON with object keys sorted, whatever order they were built in.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&o[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The desired state limited to `targets` (`--env`); all of it when empty.
/// A target the manifests do not manage is an error. Releases and webhooks are
/// the ledger's, not an environment's: they stay.
pub fn target(desired: Desired, targets: &[Env], dir: &str) -> Result<Desired> {
    if targets.is_empty() {
        return Ok(desired);
    }
    if let Some(missing) = targets
        .iter()
        .find(|e| !desired.environments.contains_key(e))
    {
        let managed: Vec<Env> = desired.environments.keys().copied().collect();
        return Err(Error::input(format!(
            "--env {missing}: the manifests in {dir} do not manage {missing} (they manage {})",
            names(&managed)
        ))
        .hint(format!(
            "name an environment they declare, or declare {missing} under `environments:`"
        )));
    }
    let mut desired = desired;
    desired.environments.retain(|e, _| targets.contains(e));
    Ok(desired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number() {
        assert!(newer("0.2.0", "0.1.9"));
        assert!(newer("0.10.0", "0.9.0"));
        assert!(newer("1.0.0", "0.99.99"));
        assert!(!newer("0.1.0", "0.1.0"));
        assert!(!newer("0.1.0-rc1", "0.1.0"));
        assert!(!newer("banana", "0.1.0"));
    }

    #[test]
    fn canonical_sorts_keys_at_every_depth() {
        let a = serde_json::json!({"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": null}});
        let mut out = String::new();
        canonical(&a, &mut out);
        assert_eq!(out, r#"{"a":{"c":null,"d":[1,{"y":1,"z":0}]},"b":1}"#);
    }

    #[test]
    fn a_newer_format_or_shipctl_is_refused_and_junk_named() {
        let newer_format = format!(
            r#"{{"format": {}, "shipctl_version": "9.0.0"}}"#,
            FORMAT + 1
        );
        let e = SavedPlan::parse("plan.json", &newer_format).unwrap_err();
        assert!(e.message.contains("format 2"), "{}", e.message);
        assert!(e.message.contains("9.0.0"), "{}", e.message);
        let newer_version = format!(r#"{{"format": {FORMAT}, "shipctl_version": "99.0.0"}}"#);
        let e = SavedPlan::parse("plan.json", &newer_version).unwrap_err();
        assert!(e.message.contains("newer than this one"), "{}", e.message);
        let e = SavedPlan::parse("x/plan.json", "{not json").unwrap_err();
        assert!(e.message.starts_with("x/plan.json is not a shipctl plan"));
        let e = SavedPlan::parse("plan.json", r#"{"format": 1}"#).unwrap_err();
        assert!(
            e.message.contains("not a valid shipctl plan"),
            "{}",
            e.message
        );
    }

    #[test]
    fn comparable_ignores_after_recover_and_waiting_only() {
        let saved = serde_json::json!({
            "env": "prod", "recover": {"id": 4},
            "action": {"kind": "deploy", "reuse": 7, "after": "staging"},
            "cancel": [{"id": 3, "waiting": ["qa: 0 of 1"]}]
        });
        let now = serde_json::json!({
            "env": "prod", "recover": null,
            "action": {"kind": "deploy", "reuse": 7, "after": null},
            "cancel": [{"id": 3, "waiting": []}]
        });
        assert_eq!(comparable(&saved), comparable(&now));
        assert_eq!(recovers(&saved), Some(4));
        assert_eq!(after(&saved), Some(Env::Staging));
        let other = serde_json::json!({
            "env": "prod", "recover": null,
            "action": {"kind": "deploy", "reuse": 8, "after": null},
            "cancel": [{"id": 3, "waiting": []}]
        });
        assert_ne!(comparable(&saved), comparable(&other));
    }
}
