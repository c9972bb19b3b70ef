//! Length limits, checked in code before any SQL: each one at the limit (it
//! works) and one over (exit 1, the field, its length and the limit named,
//! nothing written), with the same exit code and the same message on the three
//! backends. Values shipctl builds itself are cut, not refused, the same way
//! everywhere.

use crate::common::*;

const SIM_OK: &str = "{ simulate: { duration: 0s, failure_rate: 0 } }";

/// prod on 1.0.0 with `extra` (flow-mapping lines under prod, already indented).
fn manifest(extra: &str) -> String {
    format!(
        "releases:\n  - {{ version: \"1.0.0\", tag: v1.0.0 }}\nenvironments:\n  prod:\n    \
         release: \"1.0.0\"\n{extra}"
    )
}

fn declare_in(db: &TestDb, dir: &str, text: &str) {
    let dir = db.dir.path().join(dir);
    std::fs::create_dir_all(&dir).expect("manifest dir");
    std::fs::write(dir.join("shipctl.yaml"), text).expect("write manifest");
}

fn declare(db: &TestDb, text: &str) {
    declare_in(db, "manifests", text);
}

/// On every backend: `setup`, then `case`, which must exit `code`; when it is
/// refused, the ledger is unchanged. Returns the stderr of the first backend,
/// after checking that every backend printed the same.
fn same_everywhere(setup: impl Fn(&TestDb), case: impl Fn(&TestDb) -> Run, code: i32) -> String {
    let mut seen: Vec<(Backend, String)> = Vec::new();
    each_backend(|db| {
        setup(db);
        let before = db.snapshot();
        let r = case(db);
        assert_eq!(
            r.code, code,
            "{:?}: exit {} (wanted {code})\nstdout:\n{}\nstderr:\n{}",
            db.backend, r.code, r.stdout, r.stderr
        );
        if code != 0 {
            assert_eq!(db.snapshot(), before, "{:?}: a refusal wrote", db.backend);
        }
        seen.push((db.backend, r.stderr));
    });
    let (first_backend, first) = seen.first().cloned().expect("SQLite always runs");
    for (backend, stderr) in &seen {
        assert_eq!(
            stderr, &first,
            "{backend:?} and {first_backend:?} printed different messages"
        );
    }
    first
}

fn assert_says(stderr: &str, parts: &[&str]) {
    for p in parts {
        assert!(stderr.contains(p), "{p:?} missing from:\n{stderr}");
    }
}

/// A ledger with one release in it (a refusal must leave it as it was).
fn seeded(db: &TestDb) {
    release(db, "0.0.1");
}

// ---------------------------------------------------------------- the actor

#[test]
fn actor_from_the_environment() {
    let at = "a".repeat(100);
    let release_as = |actor: &str| {
        let actor = actor.to_string();
        move |db: &TestDb| {
            let out = db
                .cmd()
                .env("SHIPCTL_ACTOR", &actor)
                .args(["release", "--create", "1.0.0", "--tag", "v1.0.0"])
                .output()
                .expect("run");
            Run::from(out)
        }
    };
    same_everywhere(seeded, release_as(&at), 0);
    each_backend(|db| {
        assert_eq!(release_as(&at)(db).code, 0);
        assert_eq!(
            db.scalar("SELECT acteur FROM audit_logs WHERE message LIKE 'release 1.0.0 %'"),
            at
        );
    });
    let e = same_everywhere(seeded, release_as(&format!("{at}é")), 1);
    assert_says(
        &e,
        &[
            "the actor name from SHIPCTL_ACTOR is 101 characters long; at most 100 are allowed",
            "SHIPCTL_ACTOR=",
        ],
    );
}

// ---------------------------------------------------------------- approve

fn waiting_for_qa(db: &TestDb) {
    declare(
        db,
        &manifest(&format!(
            "    gates: {{ qa: {{ approvals: 2 }} }}\n    executor: {SIM_OK}\n"
        )),
    );
    db.expect(&["reconcile", "--manifests", "manifests"], 4);
}

fn approve(extra: Vec<String>) -> impl Fn(&TestDb) -> Run {
    move |db: &TestDb| {
        let id = db.scalar("SELECT MAX(id) FROM deploiements");
        let mut args = vec!["approve", "--deploy-id", &id, "--gate", "qa"];
        args.extend(extra.iter().map(String::as_str));
        db.run(&args)
    }
}

#[test]
fn approver_name() {
    let by = |n: usize| vec!["--by".to_string(), "é".repeat(n)];
    same_everywhere(waiting_for_qa, approve(by(100)), 0);
    let e = same_everywhere(waiting_for_qa, approve(by(101)), 1);
    assert_says(
        &e,
        &["the approver's name is 101 characters long; at most 100 are allowed"],
    );
}

#[test]
fn rejection_reason() {
    let reason = |n: usize| {
        vec![
            "--by".to_string(),
            "alice".into(),
            "--reject".into(),
            "--reason".into(),
            "é".repeat(n),
        ]
    };
    same_everywhere(waiting_for_qa, approve(reason(1000)), 0);
    let e = same_everywhere(waiting_for_qa, approve(reason(1001)), 1);
    assert_says(
        &e,
        &["--reason is 1001 characters long; at most 1000 are allowed"],
    );
}

// ---------------------------------------------------------------- releases

#[test]
fn version_and_tag() {
    let create = |version: String, tag: String| {
        move |db: &TestDb| db.run(&["release", "--create", &version, "--tag", &tag])
    };
    same_everywhere(seeded, create("v".repeat(50), "t".repeat(50)), 0);
    let e = same_everywhere(seeded, create("v".repeat(51), "t".into()), 1);
    assert_says(
        &e,
        &["the version is 51 characters long; at most 50 are allowed"],
    );
    let e = same_everywhere(seeded, create("v".into(), "ü".repeat(51)), 1);
    assert_says(
        &e,
        &["the tag is 51 characters long; at most 50 are allowed"],
    );
}

// ---------------------------------------------------------------- manifests

/// `check` (no database) and `reconcile` (on a ledger that already holds
/// prod's first state) on `text`.
fn manifest_case(text: String, code: i32) -> String {
    let reconcile_code = if code == 0 { 0 } else { 1 };
    let setup = |db: &TestDb| {
        declare_in(db, "first", &manifest(&format!("    executor: {SIM_OK}\n")));
        db.expect(&["reconcile", "--manifests", "first"], 0);
    };
    let check = db_less_check(&text, code);
    let text2 = text.clone();
    let reconciled = same_everywhere(
        setup,
        move |db| {
            declare(db, &text2);
            db.run(&["reconcile", "--manifests", "manifests"])
        },
        reconcile_code,
    );
    if code != 0 {
        assert_eq!(reconciled, check, "check and reconcile say the same");
    }
    check
}

fn db_less_check(text: &str, code: i32) -> String {
    let db = TestDb::new(Backend::Sqlite).expect("SQLite");
    declare(&db, text);
    let r = db.expect(&["check", "--manifests", "manifests"], code);
    assert!(
        !db.dir.path().join("shipctl.db").exists(),
        "check opened a database"
    );
    r.stderr
}

fn run_with(args: &[String]) -> String {
    let quoted: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
    manifest(&format!(
        "    executor: {{ command: {{ run: [{}] }} }}\n",
        quoted.join(", ")
    ))
}

#[test]
fn command_argument_length() {
    let arg = |n: usize| vec!["true".to_string(), "x".repeat(n)];
    manifest_case(run_with(&arg(1024)), 0);
    let e = manifest_case(run_with(&arg(1025)), 1);
    assert_says(
        &e,
        &[
            "manifests/shipctl.yaml",
            "environments.prod.executor.command.run: argument 1 is 1025 characters long; at most 1024 are allowed",
        ],
    );
    // A gate's command too, named by its key path.
    let gate = |n: usize| {
        manifest(&format!(
            "    gates: {{ scan: {{ command: [\"true\", \"{}\"] }} }}\n    executor: {SIM_OK}\n",
            "y".repeat(n)
        ))
    };
    manifest_case(gate(1024), 0);
    let e = manifest_case(gate(1025), 1);
    assert_says(
        &e,
        &[
            "environments.prod.gates.scan.command: argument 1 is 1025 characters long; at most 1024 are allowed",
        ],
    );
}

#[test]
fn command_argument_count() {
    let argv = |n: usize| {
        let mut v = vec!["true".to_string()];
        v.extend((1..n).map(|i| i.to_string()));
        v
    };
    manifest_case(run_with(&argv(64)), 0);
    let e = manifest_case(run_with(&argv(65)), 1);
    assert_says(
        &e,
        &[
            "environments.prod.executor.command.run: the command has 65 arguments; at most 64 are allowed",
        ],
    );
}

/// The size a `check` reports for a policy too large, in bytes.
fn reported_size(stderr: &str) -> usize {
    let (_, rest) = stderr
        .split_once("the policy is ")
        .unwrap_or_else(|| panic!("no size in {stderr}"));
    rest.split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {stderr}"))
}

#[test]
fn stored_policy_size() {
    // Arguments of 1000 characters, and one whose length brings the JSON to
    // exactly the limit: the size comes from the refusal of a larger one.
    let text = |filler: usize| {
        let mut v = vec!["true".to_string()];
        v.extend((0..6).map(|i| format!("{i}").repeat(1000)));
        v.push("f".repeat(filler));
        run_with(&v)
    };
    let db = TestDb::new(Backend::Sqlite).expect("SQLite");
    declare(&db, &text(1000));
    let over = reported_size(&db.expect(&["check", "--manifests", "manifests"], 1).stderr);
    assert!(over > 6144, "{over}");
    let at_limit = 1000 - (over - 6144);
    manifest_case(text(at_limit), 0);
    each_backend(|db| {
        declare(db, &text(at_limit));
        db.expect(&["reconcile", "--manifests", "manifests"], 0);
        let stored = db.scalar("SELECT policy FROM environnements WHERE nom = 'prod'");
        assert_eq!(stored.len(), 6144, "{:?}", db.backend);
    });
    let e = manifest_case(text(at_limit + 1), 1);
    assert_says(
        &e,
        &["environments.prod: the policy is 6145 bytes once stored; at most 6144 are allowed"],
    );
}

// ---------------------------------------------------------------- built values

#[test]
fn long_audit_messages_are_cut_the_same_way_everywhere() {
    // The audit row of a stored policy names the manifest's path: a deep
    // directory and a policy near its limit make a message over 8192 bytes.
    let deep: Vec<String> = (0..9).map(|i| format!("{i}").repeat(250)).collect();
    let dir = deep.join("/");
    let mut argv = vec!["true".to_string()];
    argv.extend((0..6).map(|i| format!("{i}").repeat(1000)));
    let text = run_with(&argv);
    let mut messages = Vec::new();
    each_backend(|db| {
        declare_in(db, &dir, &text);
        db.expect(&["reconcile", "--manifests", &dir], 0);
        let m = db.scalar("SELECT message FROM audit_logs WHERE action = 'policy.updated'");
        assert!(m.len() <= 8192, "{:?}: {} bytes", db.backend, m.len());
        assert!(m.starts_with("prod: policy from 000"), "{m}");
        assert!(m.contains("… [cut: longer than 8192 bytes] …"), "{m}");
        assert!(m.ends_with("\"max_attempts\":3}"), "{m}");
        messages.push((db.backend, m));
    });
    for (b, m) in &messages {
        assert_eq!(m, &messages[0].1, "{b:?} and {:?} differ", messages[0].0);
    }
}
