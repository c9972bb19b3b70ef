//! Signed approvals (DESIGN §12): approvers declared with SSH keys, decisions
//! signed by `approve --sign` through ssh-keygen, and every way a row can be
//! forged with SQL (copied to another deployment or ledger, its release or
//! decision changed, signed by another key, unsigned) not counting, and named.

use crate::common::ssh::{Key, keygen};
use crate::common::*;

use serde_json::Value;

const SIM_OK: &str = "{ simulate: { duration: 0s, failure_rate: 0 } }";

/// prod on `release` behind `qa: { approvals: N }` whose approvers are `keys`.
fn keyed(db: &TestDb, release: &str, approvals: u32, keys: &[(&str, &Key)]) {
    let approvers: String = keys
        .iter()
        .map(|(name, k)| format!("          {name}: \"{}\"\n", k.public))
        .collect();
    declare(
        db,
        &format!(
            "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\n  - {{ version: \"2.0\", tag: v2.0 }}\n\
             environments:\n  prod:\n    release: \"{release}\"\n    gates:\n      qa:\n        \
             approvals: {approvals}\n        approvers:\n{approvers}    executor: {SIM_OK}\n"
        ),
    );
}

/// Plans prod's deployment (it waits for its approvals) and returns its id.
fn plan_prod(db: &TestDb) -> String {
    let r = db.run(&["reconcile", "--manifests", "manifests"]);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    db.scalar("SELECT MAX(id) FROM deploiements")
}

/// `approve --deploy-id ID --gate GATE --by BY [--sign KEY] EXTRA --output json`,
/// with no agent and no terminal; `path` replaces PATH when given.
fn decide(
    db: &TestDb,
    (id, gate, by): (&str, &str, &str),
    key: Option<&Key>,
    path: Option<&std::path::Path>,
    extra: &[&str],
) -> Run {
    let mut args = vec!["approve", "--deploy-id", id, "--gate", gate, "--by", by];
    if let Some(k) = key {
        args.extend(["--sign", k.arg()]);
    }
    args.extend(extra);
    args.extend(["--output", "json"]);
    let mut cmd = db.cmd();
    cmd.args(&args)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::null());
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    Run::from(cmd.output().expect("run"))
}

/// `approve` at gate qa, signed with `key`.
fn sign(db: &TestDb, id: &str, by: &str, key: &Key, extra: &[&str]) -> Run {
    decide(db, (id, "qa", by), Some(key), None, extra)
}

fn gate(db: &TestDb) -> Value {
    db.expect(&["status", "--env", "prod", "--output", "json"], 0)
        .json()["gates"][0]["gates"][0]
        .clone()
}

/// The reasons status gives for the decisions that do not count, by person.
fn unverified(db: &TestDb) -> Vec<(String, String)> {
    gate(db)["unverified"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|u| {
            (
                u["actor"].as_str().unwrap_or_default().to_string(),
                u["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A copy of gate result `row` for deployment `to`, as someone with write
/// access to the database would forge it; `set` overrides columns.
fn forge(db: &TestDb, row: &str, to: &str, actor: &str, outcome: &str) {
    db.query(&format!(
        "INSERT INTO gate_results (id_deploiement, gate, kind, outcome, acteur, message, \
         date_resultat, signature, signed_statement) SELECT {to}, gate, kind, '{outcome}', \
         '{actor}', message, date_resultat, signature, signed_statement FROM gate_results \
         WHERE id = {row}"
    ));
}

#[test]
fn a_signed_approval_counts_and_a_forged_one_is_named() {
    let keys = tempfile::tempdir().expect("key dir");
    let alice = keygen(keys.path(), "alice", "ed25519", "");
    let bob = keygen(keys.path(), "bob", "rsa", "");
    each_backend(|db| {
        keyed(db, "1.0", 2, &[("alice", &alice), ("bob", &bob)]);
        let old = plan_prod(db);
        // Signed with her own key, it counts, and says what it signed.
        let r = sign(db, &old, "alice", &alice, &[]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let signed = &r.json()["signed"];
        let statement = signed["statement"].as_str().unwrap_or_default().to_string();
        assert!(
            statement.starts_with("shipctl approval statement v2\nledger: ")
                && statement.contains(&format!(
                    "deployment: {old}\nenvironment: prod\nversion: 1.0\ntag: v1.0\ngate: qa\n\
                     decision: approved\napprover: alice\ndecided: "
                )),
            "{statement}"
        );
        // Decided by the database's clock, to the second, as the row was recorded.
        let decided = statement
            .lines()
            .find_map(|l| l.strip_prefix("decided: "))
            .expect("a decided line");
        let history = db.expect(&["history", "--env", "prod", "--output", "json"], 0);
        let recorded = history.json()["deployments"][0]["gate_results"][0]["date"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (Ok(at), Ok(row)) = (
            decided.parse::<jiff::Timestamp>(),
            recorded.parse::<jiff::Timestamp>(),
        ) else {
            panic!("{decided} / {recorded}");
        };
        assert!(
            decided.len() == 20 && (row.as_second() - at.as_second()).abs() <= 5,
            "{decided} / {recorded}"
        );
        assert!(
            signed["key_fingerprint"]
                .as_str()
                .is_some_and(|f| f.starts_with("SHA256:")),
            "{signed:#}"
        );
        assert_eq!(gate(db)["approved_by"], serde_json::json!(["alice"]));
        let stored = db.scalar("SELECT signed_statement FROM gate_results");
        assert_eq!(stored, statement);
        let first = db.scalar("SELECT MIN(id) FROM gate_results");

        // A new release: a new deployment, the old one cancelled. Alice's
        // approval copied to it does not count.
        keyed(db, "2.0", 2, &[("alice", &alice), ("bob", &bob)]);
        let id = plan_prod(db);
        assert_ne!(id, old);
        forge(db, &first, &id, "alice", "approved");
        assert_eq!(
            unverified(db),
            [(
                "alice".to_string(),
                format!("signed for deployment {old}, not {id}")
            )]
        );
        assert_eq!(gate(db)["approved_by"], serde_json::json!([]));
        // Bob signs (RSA); unsigned, or as a rejection, his row does not count either.
        let r = sign(db, &id, "bob", &bob, &[]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let bobs = db.scalar("SELECT MAX(id) FROM gate_results");
        forge(db, &bobs, &id, "bob", "rejected");
        let g = gate(db);
        assert_eq!(g["status"], "waiting", "a forged rejection blocks: {g:#}");
        assert_eq!(g["approved_by"], serde_json::json!(["bob"]), "{g:#}");
        assert!(
            unverified(db).contains(&(
                "bob".into(),
                "signed as an approval, not a rejection".into()
            )),
            "{g:#}"
        );
        db.query(&format!(
            "INSERT INTO gate_results (id_deploiement, gate, kind, outcome, acteur, message) \
             VALUES ({id}, 'qa', 'approval', 'approved', 'alice', '')"
        ));
        assert!(
            unverified(db).contains(&("alice".into(), "it is not signed".into())),
            "{:#}",
            gate(db)
        );
        // Bob's signature on a row in alice's name: another key.
        db.query(&format!(
            "UPDATE gate_results SET signature = (SELECT signature FROM (SELECT signature \
             FROM gate_results WHERE id = {bobs}) b) WHERE id = (SELECT m FROM (SELECT MAX(id) \
             AS m FROM gate_results) x)"
        ));
        let reasons = unverified(db);
        let alices = &reasons.iter().find(|(a, _)| a == "alice").expect("alice").1;
        assert!(
            alices.starts_with("signed with key SHA256:")
                && alices.ends_with("which is not declared for this approver"),
            "{reasons:?}"
        );

        // Validation refuses and names them, row by row; status says the same.
        let (forged, unsigned) = (
            db.scalar(
                "SELECT MAX(id) FROM gate_results WHERE acteur = 'bob' AND outcome = 'rejected'",
            ),
            db.scalar("SELECT MAX(id) FROM gate_results"),
        );
        let r = db.expect(&["validate", "--deploy-id", &id], 4);
        for want in [
            format!(
                "bob's rejection (gate result {forged}) does not verify: signed as an approval, \
                 not a rejection"
            ),
            format!(
                "alice's approval (gate result {unsigned}) does not verify: signed with key SHA256:"
            ),
        ] {
            assert!(r.stderr.contains(&want), "{want}\n{}", r.stderr);
        }
        assert!(r.stderr.contains("--sign KEY"), "{}", r.stderr);
        let text = db.expect(&["status", "--env", "prod"], 0).stdout;
        assert!(
            text.contains(&format!(
                "not counted: alice's approval (gate result {unsigned}) does not verify: signed \
                 with key"
            )),
            "{text}"
        );
        let history = db.expect(&["history", "--env", "prod"], 0).stdout;
        // (On PostgreSQL and MariaDB, "(database user ...)" comes between.)
        for (who, want) in [
            (
                "approved by alice",
                format!("(does not count: signed for deployment {old}, not {id})"),
            ),
            (
                "rejected by bob",
                "(does not count: signed as an approval, not a rejection)".into(),
            ),
            ("approved by bob", "(signature verified)".into()),
        ] {
            assert!(
                history
                    .lines()
                    .any(|l| l.contains(who) && l.contains(&want)),
                "{who} {want}\n{history}"
            );
        }
        let h = db
            .expect(&["history", "--env", "prod", "--output", "json"], 0)
            .json();
        let rows = h["deployments"][0]["gate_results"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let statuses: Vec<&str> = rows
            .iter()
            .map(|r| r["signature_status"].as_str().unwrap_or("null"))
            .collect();
        assert_eq!(
            statuses,
            ["invalid", "verified", "invalid", "invalid"],
            "{h:#}"
        );

        // A release changed under a signed approval: the row no longer verifies.
        let r = sign(db, &id, "alice", &alice, &[]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        assert_eq!(gate(db)["status"], "approved");
        let (v1, v2) = (
            db.scalar("SELECT id FROM releases WHERE version = '1.0'"),
            db.scalar("SELECT id FROM releases WHERE version = '2.0'"),
        );
        db.query(&format!(
            "UPDATE deploiements SET id_release = {v1} WHERE id = {id}"
        ));
        let reasons = unverified(db);
        assert!(
            reasons.contains(&("alice".into(), "signed for release 2.0, not 1.0".into())),
            "{reasons:?}"
        );
        assert_eq!(gate(db)["status"], "waiting");
        db.query(&format!(
            "UPDATE deploiements SET id_release = {v2} WHERE id = {id}"
        ));
        // Signed by both, it deploys.
        assert_eq!(gate(db)["status"], "approved");
        db.expect(&["validate", "--deploy-id", &id], 0);
    });
}

/// The base64 body of a public key line: what the ledger's copy stores of it.
fn body(k: &Key) -> &str {
    k.public.split_whitespace().nth(1).expect("a key line")
}

/// Sets prod's stored policy with SQL, as someone with write access could.
fn tamper(db: &TestDb, set: &str) {
    db.query(&format!(
        "UPDATE environnements SET policy = {set} WHERE nom = 'prod'"
    ));
}

/// `validate` refused, exit 1, because the ledger's copy of prod's policy
/// differs from the manifests in `fields`; nothing changed.
fn refused_as_differing(db: &TestDb, id: &str, fields: &str) {
    let before = db.rows_hash();
    let r = db.expect(&["validate", "--deploy-id", id], 1);
    let want = format!(
        "error: the policy of prod in the ledger differs from the manifests in manifests \
         ({fields}): nothing acts on it until they agree"
    );
    assert!(r.stderr.contains(&want), "{want}\n{}", r.stderr);
    assert!(r.stderr.contains("shipctl reconcile"), "{}", r.stderr);
    assert_eq!(db.rows_hash(), before, "a refusal changes nothing");
}

/// Keys are read from the manifests, never from the ledger's copy of a gate
/// (DESIGN §12): a key swapped there with SQL, keys taken out, the gate
/// dropped, the executor changed: the manifests' keys judge, and nothing
/// acts on the copy until reconcile stores the manifests' again. Without
/// manifests declaring prod, nothing acts on a signed gate and status says why.
#[test]
fn keys_changed_in_the_ledgers_copy_count_for_nothing() {
    let keys = tempfile::tempdir().expect("key dir");
    let alice = keygen(keys.path(), "alice", "ed25519", "");
    let mallory = keygen(keys.path(), "mallory", "ed25519", "");
    each_backend(|db| {
        keyed(db, "1.0", 1, &[("alice", &alice)]);
        let id = plan_prod(db);
        // Mallory puts her key in alice's place in the stored gate, and signs
        // in alice's name with manifests of her own.
        tamper(
            db,
            &format!("REPLACE(policy, '{}', '{}')", body(&alice), body(&mallory)),
        );
        let stored = db.scalar("SELECT policy FROM environnements WHERE nom = 'prod'");
        assert!(stored.contains(body(&mallory)), "{stored}");
        let hers = db.dir.path().join("hers");
        std::fs::create_dir_all(&hers).expect("dir");
        let real = std::fs::read_to_string(db.dir.path().join("manifests/shipctl.yaml"))
            .expect("manifest");
        std::fs::write(
            hers.join("shipctl.yaml"),
            real.replace(&alice.public, &mallory.public),
        )
        .expect("write");
        let r = decide(
            db,
            (&id, "qa", "alice"),
            Some(&mallory),
            None,
            &["--manifests", "hers"],
        );
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let forged = db.scalar("SELECT MAX(id) FROM gate_results");

        // Where the manifests are, her row does not count, and says why;
        // nothing acts on the copy she changed.
        let reasons = unverified(db);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].0 == "alice"
                && reasons[0].1.starts_with("signed with key SHA256:")
                && reasons[0]
                    .1
                    .ends_with("which is not declared for this approver"),
            "{reasons:?}"
        );
        refused_as_differing(db, &id, "gates.qa");
        let history = db.expect(&["history", "--env", "prod", "--output", "json"], 0);
        let results = &history.json()["deployments"][0]["gate_results"];
        assert_eq!(results[0]["id"].to_string(), forged, "{results:#}");
        assert_eq!(results[0]["signature_status"], "invalid", "{results:#}");

        // Keys taken out of the stored gate (approvers as a plain list), and
        // an unsigned approval in alice's name: refused, and not counted.
        tamper(
            db,
            &format!(
                "REPLACE(policy, '{{\"alice\":\"ssh-ed25519 {}\"}}', '[\"alice\"]')",
                body(&mallory)
            ),
        );
        let stored = db.scalar("SELECT policy FROM environnements WHERE nom = 'prod'");
        assert!(stored.contains(r#""approvers":["alice"]"#), "{stored}");
        db.query(&format!(
            "INSERT INTO gate_results (id_deploiement, gate, kind, outcome, acteur, message) \
             VALUES ({id}, 'qa', 'approval', 'approved', 'alice', '')"
        ));
        assert!(
            unverified(db).contains(&("alice".into(), "it is not signed".into())),
            "{:#}",
            gate(db)
        );
        refused_as_differing(db, &id, "gates.qa");

        // The gate dropped, and the executor made a command of hers: the
        // manifests bring the gate back, and nothing runs her command.
        tamper(
            db,
            "'{\"executor\":{\"command\":{\"run\":[\"sh\",\"-c\",\"touch pwned\"]}}}'",
        );
        let g = gate(db);
        assert_eq!(
            (&g["gate"], &g["status"]),
            (&"qa".into(), &"waiting".into()),
            "{g:#}"
        );
        refused_as_differing(db, &id, "gates.qa, executor");
        assert!(!db.dir.path().join("pwned").exists());

        // Without manifests that declare prod, a signed gate in the ledger's
        // copy is acted on by nobody: validate and approve refuse, status and
        // history say why nothing counts.
        db.expect(&["reconcile", "--manifests", "manifests"], 4);
        let others = db.dir.path().join("others");
        std::fs::create_dir_all(&others).expect("dir");
        std::fs::write(
            others.join("shipctl.yaml"),
            "releases:\n  - { version: \"1.0\", tag: v1.0 }\nenvironments:\n  dev:\n    \
             release: \"1.0\"\n",
        )
        .expect("write");
        for (dir, why) in [
            ("nowhere", "there is no manifest directory at nowhere"),
            ("others", "the manifests in others do not declare prod"),
        ] {
            let before = db.rows_hash();
            let r = db.expect(&["validate", "--deploy-id", &id, "--manifests", dir], 1);
            let want = format!(
                "error: gate qa of prod takes signed decisions, and its approvers' keys are \
                 read from the manifests, never from the ledger: {why}"
            );
            assert!(r.stderr.contains(&want), "{want}\n{}", r.stderr);
            assert!(r.stderr.contains("--manifests DIR"), "{}", r.stderr);
            let r = decide(
                db,
                (&id, "qa", "alice"),
                Some(&alice),
                None,
                &["--manifests", dir],
            );
            assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
            let message = want.trim_start_matches("error: ");
            assert_eq!(r.json()["error"]["message"], message, "{}", r.stdout);
            assert_eq!(db.rows_hash(), before, "a refusal changes nothing");
            let status = db.expect(
                &[
                    "status",
                    "--env",
                    "prod",
                    "--output",
                    "json",
                    "--manifests",
                    dir,
                ],
                0,
            );
            let g = &status.json()["gates"][0]["gates"][0];
            assert_eq!(g["approved_by"], serde_json::json!([]), "{g:#}");
            assert_eq!(g["keys_unchecked"], why, "{g:#}");
            assert_eq!(
                g["unverified"][0]["reason"],
                format!("its keys are read from the manifests, and {why}"),
                "{g:#}"
            );
            let history = db.expect(
                &[
                    "history",
                    "--env",
                    "prod",
                    "--output",
                    "json",
                    "--manifests",
                    dir,
                ],
                0,
            );
            let results = &history.json()["deployments"][0]["gate_results"];
            assert_eq!(results[0]["signature_status"], "unchecked", "{results:#}");
        }
        assert_eq!(db.state(id.parse().expect("id")), "planifié");

        // Alice signs with her own key, where the manifests are: it deploys.
        let r = sign(db, &id, "alice", &alice, &[]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        db.expect(&["validate", "--deploy-id", &id], 0);
    });
}

/// An approval's age counts from the time it signs (statement v2), by the
/// database's clock: a `date_resultat` moved with SQL does not bring an
/// expired approval back.
#[test]
fn an_expired_signed_approval_stays_expired_whatever_its_row_says() {
    let keys = tempfile::tempdir().expect("key dir");
    let alice = keygen(keys.path(), "alice", "ed25519", "");
    each_backend(|db| {
        declare(
            db,
            &format!(
                "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\nenvironments:\n  prod:\n    \
                 release: \"1.0\"\n    gates:\n      qa:\n        approvals: 1\n        \
                 expires: 1s\n        approvers:\n          alice: \"{}\"\n    executor: {SIM_OK}\n",
                alice.public
            ),
        );
        let id = plan_prod(db);
        let r = sign(db, &id, "alice", &alice, &[]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let row = db.scalar("SELECT MAX(id) FROM gate_results");
        std::thread::sleep(std::time::Duration::from_millis(2200));
        assert_eq!(gate(db)["expired"], serde_json::json!(["alice"]));
        // A write now, and alice's row moved to its time.
        db.expect(&["release", "--create", "9.9", "--tag", "v9.9"], 0);
        db.query(&format!(
            "UPDATE gate_results SET date_resultat = (SELECT MAX(date_log) FROM audit_logs) \
             WHERE id = {row}"
        ));
        let g = gate(db);
        assert_eq!(g["expired"], serde_json::json!(["alice"]), "{g:#}");
        assert_eq!(g["approved_by"], serde_json::json!([]), "{g:#}");
        db.expect(&["validate", "--deploy-id", &id], 4);
    });
}

/// A policy using every field, with durations no shorter form says exactly
/// (1.25s, 100.5ms): reconcile stores it, reads it back equal (the dry run
/// has nothing to store), and validate and rollback act on it.
#[test]
fn a_stored_policy_reads_back_as_the_manifests_wrote_it() {
    let keys = tempfile::tempdir().expect("key dir");
    let alice = keygen(keys.path(), "alice", "ed25519", "");
    each_backend(|db| {
        let manifest = |release: &str| {
            format!(
                "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\n  - {{ version: \"2.0\", tag: v2.0 }}\n\
                 environments:\n  dev:\n    release: \"{release}\"\n    executor: {SIM_OK}\n  prod:\n    release: \"{release}\"\n    \
                 requires: dev\n    max_attempts: 2\n    on_failure: cancel\n    gates:\n      \
                 qa: {{ approvals: 1, expires: 1.75h, self_approval: true, approvers: {{ alice: \"{}\" }} }}\n      \
                 scan: {{ command: [\"true\"], timeout: 1.05s, kill_grace: 250.5ms }}\n    \
                 executor: {{ simulate: {{ duration: 100.5ms, failure_rate: 0.0 }} }}\n    \
                 verify: {{ command: [\"true\"], timeout: 1.25s, retries: 2, interval: 0.0175m }}\n    \
                 windows: {{ timezone: Europe/Paris, deny: [{{ days: [sun], from: \"00:00\", to: \"00:01\" }}] }}\n",
                alice.public
            )
        };
        declare(db, &manifest("1.0"));
        let r = db.run(&["reconcile", "--manifests", "manifests"]);
        assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
        db.expect(&["reconcile", "--dry-run", "--manifests", "manifests"], 2);
        let plan = db.expect(
            &[
                "reconcile",
                "--dry-run",
                "--manifests",
                "manifests",
                "-o",
                "json",
            ],
            2,
        );
        let envs = plan.json()["plan"]["environments"].clone();
        assert!(
            envs.as_array()
                .is_some_and(|e| e.iter().all(|e| e["update_policy"] == false)),
            "the stored policy reads back equal: {envs:#}"
        );
        let status = db.expect(&["status", "--env", "prod", "-o", "json"], 0);
        assert_eq!(status.json()["policy_refused"], serde_json::Value::Null);
        let id = db.scalar("SELECT MAX(id) FROM deploiements");
        let r = sign(db, &id, "alice", &alice, &[]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        db.expect(&["validate", "--deploy-id", &id], 0);
        declare(db, &manifest("2.0"));
        let r = db.run(&["reconcile", "--manifests", "manifests"]);
        assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
        let next = db.scalar("SELECT MAX(id) FROM deploiements");
        assert_eq!(sign(db, &next, "alice", &alice, &[]).code, 0);
        db.expect(&["validate", "--deploy-id", &next], 0);
        db.expect(&["rollback", "--deploy-id", &next], 0);
    });
}

#[test]
fn a_signature_from_another_ledger_does_not_count() {
    let keys = tempfile::tempdir().expect("key dir");
    let alice = keygen(keys.path(), "alice", "ed25519", "");
    let (Some(a), Some(b)) = (TestDb::new(Backend::Sqlite), TestDb::new(Backend::Sqlite)) else {
        panic!("sqlite");
    };
    for db in [&a, &b] {
        keyed(db, "1.0", 1, &[("alice", &alice)]);
        assert_eq!(plan_prod(db), "1");
    }
    let r = sign(&a, "1", "alice", &alice, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let statement = r.json()["signed"]["statement"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ledger = statement
        .lines()
        .find_map(|l| l.strip_prefix("ledger: "))
        .expect("the statement names the ledger")
        .to_string();
    let row = a.query("SELECT signature, signed_statement FROM gate_results");
    b.query(&format!(
        "INSERT INTO gate_results (id_deploiement, gate, kind, outcome, acteur, message, \
         signature, signed_statement) VALUES (1, 'qa', 'approval', 'approved', 'alice', '', \
         '{}', '{}')",
        row[0][0], row[0][1]
    ));
    let reasons = unverified(&b);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].1.starts_with(&format!(
            "signed for another ledger ({ledger}), not this one"
        )),
        "{reasons:?}"
    );
    b.expect(&["validate", "--deploy-id", "1"], 4);
}

#[test]
fn a_key_that_cannot_sign_writes_nothing() {
    let keys = tempfile::tempdir().expect("key dir");
    let alice = keygen(keys.path(), "alice", "ed25519", "a passphrase");
    let bob = keygen(keys.path(), "bob", "ed25519", "");
    let carol = keygen(keys.path(), "carol", "ed25519", "");
    each_backend(|db| {
        declare(
            db,
            &format!(
                "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\nenvironments:\n  prod:\n    \
                 release: \"1.0\"\n    gates:\n      qa:\n        approvals: 1\n        \
                 approvers: {{ alice: \"{}\", bob: \"{}\" }}\n      ops: {{ approvals: 1 }}\n    \
                 executor: {SIM_OK}\n",
                alice.public, bob.public
            ),
        );
        let id = plan_prod(db);
        let before = db.snapshot();
        let refused = |r: &Run, what: &str, hint: &str| {
            assert_eq!(r.code, 1, "{what}: {}\n{}", r.stdout, r.stderr);
            let e = &r.json()["error"];
            assert!(
                e["message"].as_str().unwrap_or_default().contains(what),
                "{what}: {e:#}"
            );
            assert!(
                e["hint"].as_str().unwrap_or_default().contains(hint),
                "{hint}: {e:#}"
            );
            assert_eq!(db.snapshot(), before, "{what}: something was written");
        };
        // A passphrase and no agent, no terminal: ssh-keygen fails at once.
        let started = std::time::Instant::now();
        let r = sign(db, &id, "alice", &alice, &[]);
        refused(
            &r,
            "cannot sign with",
            "load the key into ssh-agent first (ssh-add PATH)",
        );
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("passphrase"),
            "{}",
            r.stdout
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        // Another person's key.
        let r = sign(db, &id, "bob", &carol, &[]);
        refused(&r, "is not bob's key at gate qa", "sign with bob's own key");
        // The rejection path too.
        let r = sign(db, &id, "bob", &carol, &["--reject", "--reason", "no"]);
        refused(&r, "is not bob's key at gate qa", "sign with bob's own key");
        // Unsigned, where a key is declared: it would not count.
        let r = decide(db, (&id, "qa", "bob"), None, None, &[]);
        refused(&r, "an unsigned approval by bob would not count", "--sign");
        // Signed, where no key is declared: nothing could check it.
        let r = decide(db, (&id, "ops", "bob"), Some(&bob), None, &[]);
        refused(&r, "declares no SSH key for bob", "leave out --sign");
        // No ssh-keygen at all.
        let empty = tempfile::tempdir().expect("empty PATH");
        let r = decide(db, (&id, "qa", "bob"), Some(&bob), Some(empty.path()), &[]);
        refused(&r, "ssh-keygen was not found on PATH", "openssh-client");
    });
}

#[test]
fn a_key_in_ssh_agent_signs_through_its_public_half() {
    let keys = tempfile::tempdir().expect("key dir");
    let alice = keygen(keys.path(), "alice", "ed25519", "");
    let sock = keys.path().join("agent.sock");
    let agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent");
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _agent = Stop(agent);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "ssh-agent did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let added = std::process::Command::new("ssh-add")
        .arg(&alice.path)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .expect("ssh-add");
    assert!(added.status.success(), "{added:?}");
    // The private key is no longer needed on disk: the agent signs.
    std::fs::remove_file(&alice.path).expect("remove the private key");
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    keyed(&db, "1.0", 1, &[("alice", &alice)]);
    let id = plan_prod(&db);
    let public = alice.public_path();
    let r = db
        .cmd()
        .env("SSH_AUTH_SOCK", &sock)
        .stdin(std::process::Stdio::null())
        .args(approval(&id, "alice"))
        .arg("--sign")
        .arg(&public)
        .output()
        .map(Run::from)
        .expect("run");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("signed with SHA256:") && r.stdout.contains("approver: alice"),
        "{}",
        r.stdout
    );
    db.expect(&["validate", "--deploy-id", &id], 0);
}

#[test]
fn check_refuses_a_malformed_key_with_its_key_path() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    declare(
        &db,
        "releases:\n  - { version: \"1.0\", tag: v1.0 }\nenvironments:\n  prod:\n    \
         release: \"1.0\"\n    gates:\n      qa:\n        approvals: 1\n        approvers:\n          \
         alice: \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAnotakey alice@laptop\"\n",
    );
    let r = db.expect(&["check", "--manifests", "manifests"], 1);
    assert!(
        r.stderr.contains(
            "manifests/shipctl.yaml:10: environments.prod.gates.qa.approvers.alice: \
             \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAnotakey alice@laptop\" is not an SSH public key"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: paste the whole line"),
        "{}",
        r.stderr
    );
}
