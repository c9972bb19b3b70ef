//! The JSON contract (`docs/json.md`, DESIGN §13): every command's
//! `--output json`, in the states that matter, on every backend, validated
//! against the schemas of the document itself. Each object is held to exactly
//! the keys its schema lists (every key present, `null` for absent, nothing
//! else), and every schema of the document must be exercised here.

use crate::common::process::Proc;
use crate::common::*;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

/// The schemas of `docs/json.md`, by name, each complete with the shared `$defs`.
fn schemas() -> BTreeMap<String, Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json.md");
    let doc = std::fs::read_to_string(path).expect("docs/json.md");
    let mut blocks = BTreeMap::new();
    let mut rest = doc.as_str();
    while let Some(at) = rest.find("<!-- schema: ") {
        let after = &rest[at + "<!-- schema: ".len()..];
        let name = after[..after.find(" -->").expect("schema marker end")].to_string();
        let body = &after[after
            .find("```json\n")
            .expect("a json block after the marker")
            + 8..];
        let end = body.find("\n```").expect("the json block's end");
        let value: Value = serde_json::from_str(&body[..end])
            .unwrap_or_else(|e| panic!("docs/json.md: the schema {name} is not JSON: {e}"));
        assert!(
            blocks.insert(name.clone(), value).is_none(),
            "docs/json.md: two schemas named {name}"
        );
        rest = &body[end..];
    }
    let defs = blocks
        .remove("$defs")
        .expect("docs/json.md: no shared $defs");
    blocks
        .into_iter()
        .map(|(name, mut schema)| {
            let obj = schema.as_object_mut().expect("a schema is an object");
            obj.insert(
                "$schema".into(),
                json!("https://json-schema.org/draft/2020-12/schema"),
            );
            obj.insert("$defs".into(), defs["$defs"].clone());
            strict(&mut schema);
            (name, schema)
        })
        .collect()
}

/// Every object schema with `properties` requires all of them and allows no other.
fn strict(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                let keys: Vec<Value> = props.keys().map(|k| json!(k)).collect();
                map.insert("required".into(), Value::Array(keys));
                map.insert("additionalProperties".into(), json!(false));
            }
            map.values_mut().for_each(strict);
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

struct Contract {
    validators: BTreeMap<String, jsonschema::Validator>,
    used: Mutex<BTreeSet<String>>,
}

impl Contract {
    fn load() -> Contract {
        let validators = schemas()
            .into_iter()
            .map(|(name, schema)| {
                let v = jsonschema::draft202012::new(&schema)
                    .unwrap_or_else(|e| panic!("docs/json.md: the schema {name} is invalid: {e}"));
                (name, v)
            })
            .collect();
        Contract {
            validators,
            used: Mutex::new(BTreeSet::new()),
        }
    }

    /// `value` satisfies the schema `name`, or the test fails naming every violation.
    fn check(&self, name: &str, what: &str, value: &Value) {
        let v = self
            .validators
            .get(name)
            .unwrap_or_else(|| panic!("docs/json.md has no schema {name}"));
        let errors: Vec<String> = v
            .iter_errors(value)
            .map(|e| format!("  at {}: {e}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: the output does not match the schema {name} of docs/json.md:\n{}\n{value:#}",
            errors.join("\n")
        );
        self.used.lock().expect("lock").insert(name.to_string());
    }

    /// Runs `args` with `--output json`, insists on `code`, and checks stdout
    /// against `name` (or against `error` when the exit code is not 0 or 2).
    fn run(&self, db: &TestDb, args: &[&str], code: i32, name: &str) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let r = db.expect(&all, code);
        let value = r.json();
        self.check(
            name,
            &format!("shipctl {args:?} on {:?}", db.backend),
            &value,
        );
        if name == "error" {
            assert_eq!(value["error"]["exit_code"], code, "{value:#}");
        }
        value
    }

    fn all_used(&self) {
        let used = self.used.lock().expect("lock");
        let unused: Vec<&String> = self
            .validators
            .keys()
            .filter(|k| !used.contains(*k))
            .collect();
        assert!(
            unused.is_empty(),
            "schemas of docs/json.md that no output exercised: {unused:?}"
        );
    }
}

const SIM: &str = "{ simulate: { duration: 0s, failure_rate: 0 } }";

/// dev, staging (a command executor) and prod (two gates, and windows that are
/// always open) all on `release`.
fn declare(db: &TestDb, release: &str) {
    let dir = db.dir.path().join("manifests");
    std::fs::create_dir_all(&dir).expect("manifest dir");
    let text = format!(
        "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\n  - {{ version: \"1.1\", tag: v1.1 }}\n\
         environments:\n  \
         dev: {{ release: \"{release}\", executor: {SIM}, \
         verify: {{ command: [\"true\"], retries: 2, interval: 0s }} }}\n  \
         staging: {{ release: \"{release}\", requires: dev, executor: {{ command: {{ run: [sh, -c, 'test \"$SHIPCTL_VERSION\" != 2.0'], \
         rollback: [\"true\"], timeout: 30s }} }} }}\n  \
         prod:\n    release: \"{release}\"\n    requires: staging\n    \
         gates:\n      qa: {{ approvals: 1, approvers: [alice, bob] }}\n      \
         smoke: {{ command: [\"true\"], timeout: 10s }}\n    \
         executor: {SIM}\n    max_attempts: 2\n    \
         windows:\n      \
         allow: [{{ days: [mon, tue, wed, thu, fri, sat, sun], from: \"00:00\", to: \"24:00\" }}]\n      \
         deny: [{{ from: \"2000-01-01 00:00\", to: \"2000-01-02 00:00\", reason: long past }}]\n"
    );
    std::fs::write(dir.join("shipctl.yaml"), text).expect("write manifest");
}

fn id(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("no id at {pointer} in {v:#}"))
        .to_string()
}

/// `approve --deploy-id ID --gate qa` plus `extra`, checked against its schema.
fn approve(c: &Contract, db: &TestDb, id: &str, extra: &[&str]) -> Value {
    let mut args = vec!["approve", "--deploy-id", id, "--gate", "qa"];
    args.extend(extra);
    c.run(db, &args, 0, "approve")
}

#[test]
fn every_command_prints_what_docs_json_md_says() {
    let c = Contract::load();
    let m = ["--manifests", "manifests"];
    each_backend(|db| {
        // Usage errors, wherever --output json is written.
        c.run(db, &["release", "--bogus"], 1, "error");
        let r = db.expect(&["--output", "json", "status", "--env", "qa"], 1);
        c.check("error", "a bad --env value", &r.json());
        assert_eq!(r.json()["error"]["kind"], "usage");
        // No ledger yet: reading commands say so.
        c.run(db, &["release", "--list"], 1, "error");
        // An empty ledger.
        c.run(
            db,
            &["release", "--create", "0.9", "--tag", "v0.9"],
            0,
            "release_create",
        );
        c.run(db, &["release", "--list"], 0, "release_list");
        c.run(db, &["status"], 0, "status");
        c.run(db, &["audit"], 0, "audit");

        declare(db, "1.1");
        c.run(db, &["check", m[0], m[1]], 0, "check");
        let dry = c.run(db, &["reconcile", "--dry-run", m[0], m[1]], 2, "dry_run");
        assert_eq!(
            dry["would_run"].as_array().map(Vec::len),
            Some(3),
            "{dry:#}"
        );
        // Saved: the plan file's own shape (the dry run prints the same object).
        let out = ["--out", "plan.json"];
        c.run(
            db,
            &["reconcile", "--dry-run", m[0], m[1], out[0], out[1]],
            2,
            "dry_run",
        );
        let file = std::fs::read_to_string(db.dir.path().join("plan.json")).expect("plan.json");
        let file: Value = serde_json::from_str(&file).expect("the plan file is JSON");
        c.check("plan_file", "reconcile --dry-run --out", &file);
        assert_eq!(
            file["targets"],
            json!(["dev", "staging", "prod"]),
            "{file:#}"
        );
        // dev and staging deploy; prod waits for its approval (exit 4).
        let rec = c.run(db, &["reconcile", m[0], m[1]], 4, "reconcile");
        assert_eq!(
            rec["environments"][2]["outcome"]["kind"], "blocked",
            "{rec:#}"
        );
        let verified = &rec["environments"][0]["outcome"]["execution"]["verification"];
        assert_eq!(verified["passed"], true, "{rec:#}");
        let prod = c.run(db, &["status", "--env", "prod"], 0, "status_env");
        let waiting = id(&prod, "/pending/0/id");
        assert_eq!(prod["gates"][0]["deployment_id"].to_string(), waiting);
        // The run refused while it waits: an error of kind blocked.
        let refused = c.run(db, &["validate", "--deploy-id", &waiting], 4, "error");
        assert_eq!(refused["error"]["kind"], "blocked");
        approve(&c, db, &waiting, &["--by", "alice"]);
        let dry = c.run(db, &["reconcile", "--dry-run", m[0], m[1]], 2, "dry_run");
        assert_eq!(
            dry["plan"]["environments"][2]["action"]["reuse"].to_string(),
            waiting
        );
        let rec = c.run(db, &["reconcile", m[0], m[1]], 0, "reconcile");
        assert_eq!(
            rec["environments"][2]["outcome"]["kind"], "deployed",
            "{rec:#}"
        );
        c.run(db, &["reconcile", "--dry-run", m[0], m[1]], 0, "dry_run");

        // The imperative commands: a failure rolled back, a success, a rollback, a pin.
        let created = c.run(
            db,
            &["release", "--create", "2.0", "--tag", "v2.0"],
            0,
            "release_create",
        );
        let r2 = id(&created, "/id");
        c.run(db, &["release", "--list"], 0, "release_list");
        let planned = c.run(
            db,
            &["deploy", "--release", &r2, "--env", "dev"],
            0,
            "deploy",
        );
        let d = id(&planned, "/id");
        let sim = ["--duration", "0s", "--failure-rate"];
        let failed = c.run(
            db,
            &["validate", "--deploy-id", &d, sim[0], sim[1], sim[2], "1"],
            3,
            "validate",
        );
        assert_eq!(failed["outcome"], "failed");
        let missing = c.run(db, &["validate", "--deploy-id", "999"], 1, "error");
        assert_eq!(missing["error"]["kind"], "input");
        // A failed attempt leaves it planned (on_failure: replan): the next one succeeds.
        c.run(
            db,
            &["validate", "--deploy-id", &d, sim[0], sim[1], sim[2], "0"],
            0,
            "validate",
        );
        // A command executor that fails, and its rollback command.
        let s = id(
            &c.run(
                db,
                &["deploy", "--release", &r2, "--env", "staging"],
                0,
                "deploy",
            ),
            "/id",
        );
        let failed = c.run(db, &["validate", "--deploy-id", &s], 3, "validate");
        assert_eq!(failed["rollback_command"]["succeeded"], true, "{failed:#}");
        let back = c.run(
            db,
            &["rollback", "--deploy-id", &d, sim[0], sim[1], sim[2], "0"],
            0,
            "rollback",
        );
        assert_eq!(back["action"], "restored", "{back:#}");
        c.run(db, &["status", "--env", "dev"], 0, "status_env");
        c.run(db, &["unpin", "--env", "dev"], 0, "unpin");
        // The failed attempt left it planned (on_failure: replan): cancelled.
        let cancelled = c.run(db, &["rollback", "--deploy-id", &s], 0, "rollback");
        assert_eq!(cancelled["action"], "cancelled", "{cancelled:#}");

        // A rejection, then everything that reads.
        declare(db, "1.0");
        c.run(db, &["reconcile", m[0], m[1]], 4, "reconcile");
        let prod = c.run(db, &["status", "--env", "prod"], 0, "status_env");
        let waiting = id(&prod, "/pending/0/id");
        approve(
            &c,
            db,
            &waiting,
            &["--by", "bob", "--reject", "--reason", "broken"],
        );
        // The rejection ends it at its next validation, and holds 1.0 in prod.
        let rejected = c.run(db, &["validate", "--deploy-id", &waiting], 3, "validate");
        assert_eq!(rejected["outcome"], "rejected", "{rejected:#}");
        let held = c.run(db, &["status", "--env", "prod"], 0, "status_env");
        assert_eq!(held["hold"]["version"], "1.0", "{held:#}");
        let rec = c.run(db, &["reconcile", m[0], m[1]], 4, "reconcile");
        assert_eq!(rec["environments"][2]["outcome"]["kind"], "held", "{rec:#}");
        let dry = c.run(db, &["reconcile", "--dry-run", m[0], m[1]], 0, "dry_run");
        assert_eq!(
            dry["plan"]["environments"][2]["action"]["kind"], "held",
            "{dry:#}"
        );
        declare(db, "1.1");
        let dry = c.run(db, &["reconcile", "--dry-run", m[0], m[1]], 2, "dry_run");
        assert_eq!(dry["plan"]["environments"][2]["lift_hold"], true, "{dry:#}");
        c.run(db, &["status"], 0, "status");
        let h = c.run(db, &["history", "--env", "prod"], 0, "history");
        assert!(
            h["deployments"][0]["gate_results"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            "{h:#}"
        );
        let a = c.run(db, &["audit", "--limit", "3"], 0, "audit");
        assert!(a["total"].as_i64() > Some(3), "{a:#}");
        c.run(db, &["audit", "--env", "prod", "--since", "1h"], 0, "audit");
        // JSON Lines: each line one row, the shape of an item of `rows`.
        let lines = db.expect(&["audit", "--limit", "4", "--output", "jsonl"], 0);
        let rows: Vec<&str> = lines.stdout.lines().collect();
        assert_eq!(rows.len(), 4, "{}", lines.stdout);
        for line in rows {
            let row: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"));
            c.check("audit_jsonl_row", "a line of audit --output jsonl", &row);
        }
        // The hash chains: intact, then one row changed by hand.
        let v = c.run(db, &["audit", "verify"], 0, "audit_verify");
        assert_eq!(v["intact"], true, "{v:#}");
        db.query("UPDATE audit_logs SET message = 'forged' WHERE id = 2");
        let v = c.run(db, &["audit", "verify"], 1, "audit_verify");
        assert_eq!(v["problems"][0]["kind"], "changed", "{v:#}");
        assert_eq!(v["problems"][0]["row_id"], 2, "{v:#}");
    });
    c.all_used();
}

/// `reconcile --watch --output json`: one compact object per line, each a
/// reconcile result or an error (an invalid manifest), until SIGTERM.
#[test]
fn watch_prints_one_object_per_line() {
    let c = Contract::load();
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    declare(&db, "1.1");
    let watch = Proc::start(
        &db,
        &[
            "reconcile",
            "--watch",
            "--manifests",
            "manifests",
            "--output",
            "json",
        ],
    );
    let lines_within = |watch: &Proc, n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while watch.stdout().lines().count() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "no line {n} within 20s:\n{}",
                watch.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    lines_within(&watch, 1);
    // An invalid manifest: the error is a line of its own.
    let path = db.dir.path().join("manifests/shipctl.yaml");
    std::fs::write(&path, "releases: [").expect("write");
    lines_within(&watch, 2);
    watch.signal(libc::SIGTERM);
    let (run, _) = watch.finish(Duration::from_secs(5), "SIGTERM");
    let lines: Vec<&str> = run.stdout.lines().collect();
    for line in &lines {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"));
        let name = if value.get("error").is_some() {
            "error"
        } else {
            "reconcile"
        };
        c.check(name, "a watch round", &value);
    }
    assert!(lines[1].contains("\"error\""), "{}", run.stdout);
}

/// A saved plan that goes stale while it is applied: the environment's
/// outcome is `stale`, exit 1.
#[test]
fn a_stale_environment_is_an_outcome_of_its_own() {
    let c = Contract::load();
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    let r = crate::saved_plans::stale_during_apply(&db, "json");
    let value = r.json();
    c.check("reconcile", "reconcile --plan, stale in prod", &value);
    assert_eq!(
        value["environments"][1]["outcome"]["kind"], "stale",
        "{value:#}"
    );
}

/// The harness itself: a key too many, a key missing, a time without its zone,
/// a French key: each is a violation.
#[test]
fn the_contract_refuses_what_it_does_not_list() {
    let c = Contract::load();
    let good = json!({
        "id": 1, "version": "1.0", "tag": "v1.0", "created_at": "2026-11-30T20:21:06Z"
    });
    assert!(c.validators["release_create"].is_valid(&good));
    let mut extra = good.clone();
    extra["etat"] = json!("planifié");
    let mut missing = good.clone();
    missing.as_object_mut().expect("object").remove("tag");
    let mut zoneless = good.clone();
    zoneless["created_at"] = json!("2026-11-30 20:21:06");
    for bad in [extra, missing, zoneless] {
        assert!(!c.validators["release_create"].is_valid(&bad), "{bad:#}");
    }
}

/// Signed approvals (DESIGN §12): the policy with keys (`check`, the dry run),
/// `approve --sign`, a forged row in `status` and `history`, on every backend.
#[test]
fn signed_approvals_print_what_docs_json_md_says() {
    let c = Contract::load();
    let keys = tempfile::tempdir().expect("key dir");
    let alice = crate::common::ssh::keygen(keys.path(), "alice", "ed25519", "");
    let bob = crate::common::ssh::keygen(keys.path(), "bob", "rsa", "");
    let m = ["--manifests", "manifests"];
    each_backend(|db| {
        crate::common::declare(
            db,
            &format!(
                "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\nenvironments:\n  prod:\n    \
                 release: \"1.0\"\n    gates:\n      qa:\n        approvals: 1\n        \
                 approvers:\n          alice: \"{}\"\n          bob: [\"{}\"]\n    executor: {SIM}\n",
                alice.public, bob.public
            ),
        );
        let checked = c.run(db, &["check", m[0], m[1]], 0, "check");
        let approvers = checked
            .pointer("/environments/0/policy/gates/0/gate/approvers")
            .cloned()
            .unwrap_or_default();
        assert!(
            // One key is stored as a string, however the manifests wrote it.
            approvers["alice"].is_string() && approvers["bob"].is_string(),
            "{checked:#}"
        );
        c.run(db, &["reconcile", "--dry-run", m[0], m[1]], 2, "dry_run");
        c.run(db, &["reconcile", m[0], m[1]], 4, "reconcile");
        let signed = approve(&c, db, "1", &["--by", "bob", "--sign", bob.arg()]);
        assert!(signed["signed"]["signature"].is_string(), "{signed:#}");
        // bob's signed approval copied into alice's name.
        db.query(
            "INSERT INTO gate_results (id_deploiement, gate, kind, outcome, acteur, message, \
             signature, signed_statement) SELECT id_deploiement, gate, kind, 'rejected', \
             'alice', 'forged', signature, signed_statement FROM gate_results",
        );
        let st = c.run(db, &["status", "--env", "prod"], 0, "status_env");
        let g = &st["gates"][0]["gates"][0];
        assert_eq!(g["signed"], true, "{st:#}");
        assert_eq!(
            g["status"], "approved",
            "a forged rejection blocked: {st:#}"
        );
        assert_eq!(g["unverified"][0]["actor"], "alice", "{st:#}");
        let h = c.run(db, &["history", "--env", "prod"], 0, "history");
        let rows = &h["deployments"][0]["gate_results"];
        assert_eq!(rows[0]["signature_status"], "verified", "{h:#}");
        assert_eq!(rows[1]["signature_status"], "invalid", "{h:#}");
        assert!(rows[1]["signature_problem"].is_string(), "{h:#}");
    });
}
