//! Gates through the real binary, on every backend: approvals recorded with
//! `shipctl approve` (counted once per person, limited to the listed
//! approvers, rejections with a reason), command gates run at validation
//! (their output kept, the deployment's facts as variables, never a shell),
//! `reconcile` held until approved, `check` and `--dry-run` running nothing,
//! and `history` / `audit` JSON matching what the database holds.

use crate::common::*;

use serde_json::Value;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

const SIM_OK: &str = "{ simulate: { duration: 0s, failure_rate: 0 } }";

/// A manifest: `releases` (tag `v` + version), prod on `release` with `gates`
/// (one `name: { ... }` line each) and `executor`.
fn manifest(releases: &[&str], release: &str, gates: &[&str], executor: &str) -> String {
    let mut s = String::from("releases:\n");
    for r in releases {
        s.push_str(&format!("  - {{ version: \"{r}\", tag: v{r} }}\n"));
    }
    s.push_str(&format!(
        "environments:\n  prod:\n    release: \"{release}\"\n"
    ));
    if !gates.is_empty() {
        s.push_str("    gates:\n");
        for g in gates {
            s.push_str(&format!("      {g}\n"));
        }
    }
    s.push_str(&format!("    executor: {executor}\n"));
    s
}

fn exists(db: &TestDb, name: &str) -> bool {
    db.dir.path().join(name).exists()
}

fn reconcile(db: &TestDb, code: i32) -> Run {
    db.expect(&["reconcile", "--manifests", "manifests"], code)
}

fn validate(db: &TestDb, id: i64, code: i32) -> Run {
    db.expect(&["validate", "--deploy-id", &id.to_string()], code)
}

/// `approve --deploy-id ID --gate GATE` plus `extra`, as JSON.
fn approve(db: &TestDb, id: i64, gate: &str, extra: &[&str]) -> Value {
    let id = id.to_string();
    let mut args = vec![
        "approve",
        "--deploy-id",
        &id,
        "--gate",
        gate,
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    db.expect(&args, 0).json()
}

/// Runs a command that must fail with `code` and write nothing at all.
fn refused(db: &TestDb, args: &[&str], code: i32) -> Run {
    let before = db.snapshot();
    let out = db.expect(args, code);
    assert_eq!(
        db.snapshot(),
        before,
        "shipctl {args:?} on {:?} wrote to the database\nstderr:\n{}",
        db.backend,
        out.stderr
    );
    out
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.scalar(sql).parse().expect("a count")
}

/// The newest deployment's id.
/// JSON objects match SQL rows field for field, and each has its date.
fn same_rows(db: &TestDb, got: &[Value], fields: &[&str], date: &str, want: &[Vec<String>]) {
    assert_eq!(got.len(), want.len(), "{got:#?}\nagainst {want:?}");
    for (g, w) in got.iter().zip(want) {
        let row: Vec<String> = fields.iter().map(|f| text(&g[*f])).collect();
        assert_eq!(&row, w, "on {:?}", db.backend);
        assert!(g[date].as_str().is_some_and(|s| !s.is_empty()), "{g:#}");
    }
}

fn newest(db: &TestDb) -> i64 {
    db.scalar("SELECT MAX(id) FROM deploiements")
        .parse()
        .expect("a deployment id")
}

/// (gate, kind, outcome, acteur, message) of a deployment's gate results, in order.
fn gate_rows(db: &TestDb, id: i64) -> Vec<Vec<String>> {
    db.query(&format!(
        "SELECT gate, kind, outcome, acteur, message FROM gate_results \
         WHERE id_deploiement = {id} ORDER BY id"
    ))
}

fn row(a: &str, before: &str, after: &str) -> (String, String, String) {
    (a.into(), before.into(), after.into())
}

/// The message of a deployment's (first) audit row for `action`.
fn audit_message(db: &TestDb, id: i64, action: &str) -> String {
    db.scalar(&format!(
        "SELECT message FROM audit_logs WHERE id_deploiement = {id} AND action = '{action}' \
         ORDER BY id"
    ))
}

/// The gate named `name` in a JSON array of gate states.
fn gate<'a>(gates: &'a Value, name: &str) -> &'a Value {
    gates
        .as_array()
        .expect("an array of gates")
        .iter()
        .find(|g| g["gate"] == name)
        .unwrap_or_else(|| panic!("no gate {name} in {gates:#}"))
}

/// A JSON scalar as the harness shows a cell: null as "NULL".
fn text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The live release of prod, from `status --output json`.
fn live(db: &TestDb) -> Option<String> {
    let st = db
        .expect(&["status", "--env", "prod", "--output", "json"], 0)
        .json();
    st["live"]["version"].as_str().map(String::from)
}

// ---------------------------------------------------------------- 1. approval

#[test]
fn a_missing_approval_blocks_validate_until_someone_approves() {
    each_backend(|db| {
        declare(
            db,
            &manifest(&["1.0"], "1.0", &["qa: { approvals: 1 }"], SIM_OK),
        );
        reconcile(db, 4);
        let id = newest(db);
        assert_eq!(db.state(id), "planifié");

        // Status says what it waits for, and who may approve.
        let st = db.expect(&["status", "--env", "prod"], 0);
        assert!(st.stdout.contains("waiting for approval"), "{}", st.stdout);
        assert!(st.stdout.contains("may approve: anyone"), "{}", st.stdout);
        let st = db
            .expect(&["status", "--env", "prod", "--output", "json"], 0)
            .json();
        assert_eq!(st["gates"][0]["deployment_id"], id, "{st:#}");
        let qa = gate(&st["gates"][0]["gates"], "qa");
        assert_eq!(qa["status"], "waiting");
        assert_eq!(qa["required"], 1);

        // 0 of 1: exit 4, still planifié, and not a single row written.
        let out = refused(db, &["validate", "--deploy-id", &id.to_string()], 4);
        assert_eq!(db.state(id), "planifié");
        assert!(out.stderr.contains("waits for approval"), "{}", out.stderr);
        assert!(out.stderr.contains("qa: 0 of 1 approval"), "{}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("shipctl approve --deploy-id {id} --gate qa")),
            "{}",
            out.stderr
        );
        assert_eq!(count(db, "SELECT COUNT(*) FROM gate_results"), 0);

        let a = approve(db, id, "qa", &["--by", "alice"]);
        assert_eq!(a["decision"], "approved");
        assert_eq!(a["actor"], "alice");
        assert_eq!(a["recorded"], true);
        assert_eq!(a["ready"], true);
        assert_eq!(a["deployment"]["id"], id);
        assert_eq!(gate(&a["gates"], "qa")["status"], "approved");
        assert_eq!(gate(&a["gates"], "qa")["approved_by"][0], "alice");

        validate(db, id, 0);
        assert_eq!(db.state(id), "réussi");
        assert_eq!(live(db).as_deref(), Some("1.0"));
        assert_eq!(
            db.audit(id),
            vec![
                row("deployment.planned", "NULL", "planifié"),
                row("gate.waiting", "NULL", "NULL"),
                row("gate.approved", "NULL", "NULL"),
                row("deployment.validated", "planifié", "validé"),
                row("deployment.started", "validé", "en_cours"),
                row("deployment.succeeded", "en_cours", "réussi"),
            ],
            "on {:?}",
            db.backend
        );
        assert_eq!(
            db.scalar(&format!(
                "SELECT acteur FROM audit_logs WHERE id_deploiement = {id} AND action = 'gate.approved'"
            )),
            "alice"
        );
        let validated = audit_message(db, id, "deployment.validated");
        assert!(
            validated.contains("qa: 1 of 1 approval (alice)"),
            "{validated}"
        );
        assert_eq!(
            gate_rows(db, id),
            vec![vec![
                "qa".to_string(),
                "approval".into(),
                "approved".into(),
                "alice".into(),
                String::new()
            ]]
        );
    });
}

// ---------------------------------------------------------------- 2. rejection

#[test]
fn a_rejection_ends_the_deployment_as_echec_with_its_reason() {
    each_backend(|db| {
        declare(
            db,
            &manifest(&["1.0"], "1.0", &["qa: { approvals: 1 }"], SIM_OK),
        );
        reconcile(db, 4);
        let id = newest(db);
        let reason = "login page broken on Safari";
        let a = approve(
            db,
            id,
            "qa",
            &["--by", "carol", "--reject", "--reason", reason],
        );
        assert_eq!(a["decision"], "rejected");
        assert_eq!(a["ready"], false);
        assert_eq!(gate(&a["gates"], "qa")["status"], "rejected");
        assert_eq!(gate(&a["gates"], "qa")["rejected_by"], "carol");
        // Deciding does not change the deployment; validating does.
        assert_eq!(db.state(id), "planifié");

        let out = validate(db, id, 3);
        assert!(out.stdout.contains("rejected by carol"), "{}", out.stdout);
        assert!(out.stdout.contains(reason), "{}", out.stdout);
        assert_eq!(db.state(id), "échec");
        assert_eq!(
            gate_rows(db, id),
            vec![vec![
                "qa".to_string(),
                "approval".into(),
                "rejected".into(),
                "carol".into(),
                reason.into()
            ]]
        );
        assert_eq!(
            db.audit(id),
            vec![
                row("deployment.planned", "NULL", "planifié"),
                row("gate.waiting", "NULL", "NULL"),
                row("gate.rejected", "NULL", "NULL"),
                row("deployment.rejected", "planifié", "échec"),
                row("hold.set", "NULL", "NULL"),
            ]
        );
        assert!(audit_message(db, id, "gate.rejected").contains(reason));
        assert!(audit_message(db, id, "deployment.rejected").contains("rejected by carol"));
        // Nothing ran: never en_cours, no attempt counted, nothing live.
        assert_eq!(
            db.scalar(&format!(
                "SELECT attempts FROM deploiements WHERE id = {id}"
            )),
            "0"
        );
        assert_eq!(live(db), None);
        // Validating it again is refused and writes nothing.
        refused(db, &["validate", "--deploy-id", &id.to_string()], 1);
    });
}

#[test]
fn a_rejection_can_be_taken_back_and_stands_against_other_approvals() {
    each_backend(|db| {
        declare(
            db,
            &manifest(&["1.0"], "1.0", &["qa: { approvals: 1 }"], SIM_OK),
        );
        reconcile(db, 4);
        let id = newest(db);
        // bob rejects, alice approves: the rejection stands.
        approve(
            db,
            id,
            "qa",
            &["--by", "bob", "--reject", "--reason", "typo"],
        );
        let a = approve(db, id, "qa", &["--by", "alice"]);
        assert_eq!(a["ready"], false, "{a:#}");
        assert_eq!(gate(&a["gates"], "qa")["status"], "rejected");
        // bob changes his mind: his newest decision counts.
        let a = approve(db, id, "qa", &["--by", "bob"]);
        assert_eq!(a["recorded"], true);
        assert_eq!(a["ready"], true, "{a:#}");
        let by = gate(&a["gates"], "qa")["approved_by"].clone();
        assert_eq!(by, serde_json::json!(["bob", "alice"]), "{a:#}");
        validate(db, id, 0);
        assert_eq!(db.state(id), "réussi");
        let outcomes: Vec<String> = gate_rows(db, id).iter().map(|r| r[2].clone()).collect();
        assert_eq!(outcomes, ["rejected", "approved", "approved"]);
    });
}

// ---------------------------------------------------------------- 3. counting

#[test]
fn approving_twice_counts_once_and_two_approvals_need_two_people() {
    each_backend(|db| {
        declare(
            db,
            &manifest(&["1.0"], "1.0", &["qa: { approvals: 2 }"], SIM_OK),
        );
        reconcile(db, 4);
        let id = newest(db);

        let first = approve(db, id, "qa", &["--by", "alice"]);
        assert_eq!(first["recorded"], true);
        assert_eq!(first["ready"], false);
        let snap = db.snapshot();
        let again = approve(db, id, "qa", &["--by", "alice"]);
        assert_eq!(again["recorded"], false, "{again:#}");
        assert_eq!(again["ready"], false);
        assert_eq!(db.snapshot(), snap, "a repeated approval wrote something");
        let qa = gate(&again["gates"], "qa");
        assert_eq!(qa["status"], "waiting");
        assert_eq!(qa["required"], 2);
        assert_eq!(qa["approved_by"], serde_json::json!(["alice"]));
        assert_eq!(
            count(
                db,
                &format!("SELECT COUNT(*) FROM gate_results WHERE id_deploiement = {id}")
            ),
            1
        );
        assert_eq!(
            count(
                db,
                &format!(
                    "SELECT COUNT(*) FROM audit_logs WHERE id_deploiement = {id} AND action = 'gate.approved'"
                )
            ),
            1
        );

        // One person twice is still 1 of 2.
        let out = refused(db, &["validate", "--deploy-id", &id.to_string()], 4);
        assert!(
            out.stderr.contains("qa: 1 of 2 approvals (alice)"),
            "{}",
            out.stderr
        );
        assert_eq!(db.state(id), "planifié");

        // The default approver is $SHIPCTL_ACTOR (then $USER).
        let out = Run::from(
            db.cmd()
                .env("SHIPCTL_ACTOR", "dave")
                .args([
                    "approve",
                    "--deploy-id",
                    &id.to_string(),
                    "--gate",
                    "qa",
                    "--output",
                    "json",
                ])
                .output()
                .expect("run shipctl"),
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        let second = out.json();
        assert_eq!(second["actor"], "dave");
        assert_eq!(second["ready"], true);
        assert_eq!(
            gate(&second["gates"], "qa")["approved_by"],
            serde_json::json!(["alice", "dave"])
        );

        validate(db, id, 0);
        assert_eq!(db.state(id), "réussi");
        let actors: Vec<String> = gate_rows(db, id).iter().map(|r| r[3].clone()).collect();
        assert_eq!(actors, ["alice", "dave"]);
    });
}

// ---------------------------------------------------------------- 4. approvers

#[test]
fn only_the_listed_approvers_may_approve() {
    each_backend(|db| {
        declare(
            db,
            &manifest(
                &["1.0"],
                "1.0",
                &["qa: { approvals: 1, approvers: [alice, bob] }"],
                SIM_OK,
            ),
        );
        reconcile(db, 4);
        let id = newest(db);
        let st = db.expect(&["status", "--env", "prod"], 0);
        assert!(
            st.stdout.contains("may approve: alice, bob"),
            "{}",
            st.stdout
        );

        let sid = id.to_string();
        let out = refused(
            db,
            &[
                "approve",
                "--deploy-id",
                &sid,
                "--gate",
                "qa",
                "--by",
                "mallory",
            ],
            1,
        );
        assert!(
            out.stderr
                .contains("mallory may not approve gate qa of prod: its approvers are alice, bob"),
            "{}",
            out.stderr
        );
        // Without --by, $USER (tester) is the approver, and is not listed either.
        let out = refused(db, &["approve", "--deploy-id", &sid, "--gate", "qa"], 1);
        assert!(
            out.stderr.contains("tester may not approve"),
            "{}",
            out.stderr
        );
        // Nor may a rejection come from outside the list.
        refused(
            db,
            &[
                "approve",
                "--deploy-id",
                &sid,
                "--gate",
                "qa",
                "--by",
                "mallory",
                "--reject",
                "--reason",
                "no",
            ],
            1,
        );
        assert_eq!(count(db, "SELECT COUNT(*) FROM gate_results"), 0);

        let a = approve(db, id, "qa", &["--by", "bob"]);
        assert_eq!(a["ready"], true);
        assert_eq!(
            gate(&a["gates"], "qa")["approvers"],
            serde_json::json!(["alice", "bob"])
        );
        validate(db, id, 0);
        assert_eq!(db.state(id), "réussi");
    });
}

// ---------------------------------------------------------------- 5. command gates

const FAILING_SCAN: &str = "#!/bin/sh\n\
echo \"scanning $SHIPCTL_TAG\"\n\
echo 'CVE-2026-0001 found' >&2\n\
exit 1\n";

#[test]
fn a_failing_command_gate_rejects_the_deployment_and_keeps_its_output() {
    each_backend(|db| {
        script(db, "scan.sh", FAILING_SCAN);
        declare(
            db,
            &manifest(
                &["1.0"],
                "1.0",
                &[
                    "qa: { approvals: 1 }",
                    "lint: { command: [\"true\"] }",
                    "scan: { command: [\"./scan.sh\"], timeout: 10s }",
                    "after: { command: [\"touch\", \"canary-after\"] }",
                ],
                SIM_OK,
            ),
        );
        reconcile(db, 4);
        let id = newest(db);
        assert_eq!(
            count(db, "SELECT COUNT(*) FROM gate_results"),
            0,
            "no command gate runs while approvals are missing"
        );
        approve(db, id, "qa", &["--by", "alice"]);

        let out = validate(db, id, 3);
        assert_eq!(db.state(id), "échec");
        assert!(out.stdout.contains("scan"), "{}", out.stdout);
        // Its output streamed as it ran.
        assert!(out.stderr.contains("CVE-2026-0001 found"), "{}", out.stderr);

        let rows = gate_rows(db, id);
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0][..3], ["qa", "approval", "approved"]);
        assert_eq!(rows[1][..3], ["lint", "command", "passed"]);
        assert_eq!(rows[2][..3], ["scan", "command", "failed"]);
        let msg = &rows[2][4];
        assert!(msg.contains("CVE-2026-0001 found"), "{msg}");
        assert!(msg.contains("scanning v1.0"), "{msg}");
        assert!(msg.contains("exited with code 1"), "{msg}");
        // The gates after the failing one never ran.
        assert!(!exists(db, "canary-after"));

        assert_eq!(
            db.audit(id),
            vec![
                row("deployment.planned", "NULL", "planifié"),
                row("gate.waiting", "NULL", "NULL"),
                row("gate.approved", "NULL", "NULL"),
                row("gate.passed", "NULL", "NULL"),
                row("gate.failed", "NULL", "NULL"),
                row("deployment.rejected", "planifié", "échec"),
                row("hold.set", "NULL", "NULL"),
            ],
            "on {:?}",
            db.backend
        );
        let failed = audit_message(db, id, "gate.failed");
        assert!(failed.contains("CVE-2026-0001 found"), "{failed}");
        assert!(failed.contains("gate scan"), "{failed}");
        assert!(audit_message(db, id, "deployment.rejected").contains("gate scan"));
        assert_eq!(live(db), None);
    });
}

#[test]
fn a_passing_command_gate_is_told_the_deployment_and_never_goes_through_a_shell() {
    each_backend(|db| {
        script(
            db,
            "gate.sh",
            "#!/bin/sh\n\
             printf '%s|%s|%s|%s|%s\\n' \"$SHIPCTL_VERSION\" \"$SHIPCTL_TAG\" \"$SHIPCTL_ENV\" \"$SHIPCTL_DEPLOY_ID\" \"$1\" >> gate.log\n\
             echo 'scan clean'\n",
        );
        declare(
            db,
            &manifest(
                &["1.0"],
                "1.0",
                &[
                    "qa: { approvals: 1 }",
                    "scan: { command: [\"./gate.sh\", \"$SHIPCTL_VERSION; touch pwned\"] }",
                ],
                SIM_OK,
            ),
        );
        reconcile(db, 4);
        let id = newest(db);
        assert!(!exists(db, "gate.log"), "the gate ran before the approval");
        approve(db, id, "qa", &["--by", "alice"]);

        let out = db.expect(
            &[
                "validate",
                "--deploy-id",
                &id.to_string(),
                "--output",
                "json",
            ],
            0,
        );
        let exec = out.json();
        assert_eq!(exec["outcome"], "succeeded");
        assert_eq!(gate(&exec["gates"], "scan")["status"], "passed");
        assert_eq!(db.state(id), "réussi");

        let log = std::fs::read_to_string(db.dir.path().join("gate.log")).expect("gate.log");
        assert_eq!(
            log,
            format!("1.0|v1.0|prod|{id}|$SHIPCTL_VERSION; touch pwned\n"),
            "on {:?}",
            db.backend
        );
        assert!(!exists(db, "pwned"), "an argument went through a shell");

        let rows = gate_rows(db, id);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[1][..4], ["scan", "command", "passed", "tester"]);
        assert!(rows[1][4].contains("scan clean"), "{rows:?}");
        let passed = audit_message(db, id, "gate.passed");
        assert!(passed.contains("scan clean"), "{passed}");
        let actions: Vec<String> = db.audit(id).into_iter().map(|r| r.0).collect();
        assert_eq!(
            actions,
            [
                "deployment.planned",
                "gate.waiting",
                "gate.approved",
                "gate.passed",
                "deployment.validated",
                "deployment.started",
                "deployment.succeeded"
            ]
        );
    });
}

#[test]
fn a_hanging_command_gate_is_stopped_at_its_timeout() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    script(
        &db,
        "hang.sh",
        "#!/bin/sh\necho waiting\nsleep 300 & echo $! > child.pid\nsleep 300\n",
    );
    declare(
        &db,
        &manifest(
            &["1.0"],
            "1.0",
            &[
                "qa: { approvals: 1 }",
                "slow: { command: [\"./hang.sh\"], timeout: 1s }",
            ],
            SIM_OK,
        ),
    );
    reconcile(&db, 4);
    let id = newest(&db);
    approve(&db, id, "qa", &["--by", "alice"]);
    let started = Instant::now();
    validate(&db, id, 3);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(db.state(id), "échec");
    let rows = gate_rows(&db, id);
    assert_eq!(rows[1][..3], ["slow", "command", "failed"]);
    assert!(rows[1][4].contains("timed out after 1s"), "{rows:?}");
    assert!(
        rows[1][4].contains("waiting"),
        "what it said before the timeout is kept: {rows:?}"
    );
    let pid: i32 = std::fs::read_to_string(db.dir.path().join("child.pid"))
        .expect("the gate started a child")
        .trim()
        .parse()
        .expect("a pid");
    db.wait_for("the gate's child to die", Duration::from_secs(5), || {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) != 0 }
    });
}

/// A reconcile that adds a gate while a validation runs its command gates: the
/// validation reads the new policy under the lock and does not deploy past it.
#[test]
fn a_gate_added_while_gates_run_is_not_skipped() {
    each_backend(|db| {
        let gated = |extra: &str| {
            manifest(
                &["1.0"],
                "1.0",
                &[
                    "qa: { approvals: 1 }",
                    "scan: { command: [\"./scan.sh\"] }",
                    extra,
                ],
                SIM_OK,
            )
        };
        // The scan, the first time it runs, adds a `cab` gate and reconciles (as
        // a teammate's merge would, at that very moment). Commands do not inherit
        // the ledger's URL, so the script names it.
        let added = gated("cab: { approvals: 1, approvers: [boss] }");
        std::fs::write(db.dir.path().join("with-cab.yaml"), &added).expect("write");
        script(
            db,
            "scan.sh",
            &format!(
                "#!/bin/sh\nif [ ! -f scanned ]; then\n  touch scanned\n  \
                 cp with-cab.yaml manifests/shipctl.yaml\n  \
                 SHIPCTL_DATABASE_URL='{}' '{}' reconcile --manifests manifests >/dev/null 2>&1\n\
                 fi\necho clean\n",
                db.url,
                env!("CARGO_BIN_EXE_shipctl")
            ),
        );
        declare(db, &gated(""));
        reconcile(db, 4);
        let id = newest(db);
        approve(db, id, "qa", &["--by", "alice"]);
        let out = validate(db, id, 4);
        assert!(
            out.stderr
                .contains("cab: 0 of 1 approval; may approve: boss"),
            "{}",
            out.stderr
        );
        assert_eq!(db.state(id), "planifié", "not deployed past the new gate");
        let rows = gate_rows(db, id);
        assert!(
            rows.iter().any(|r| r[..3] == ["scan", "command", "passed"]),
            "the scan's result is recorded: {rows:?}"
        );
        approve(db, id, "cab", &["--by", "boss"]);
        validate(db, id, 0);
        assert_eq!(db.state(id), "réussi");
    });
}

// ---------------------------------------------------------------- 6. reconcile

#[test]
fn reconcile_waits_for_approval_then_deploys() {
    each_backend(|db| {
        declare(
            db,
            &manifest(
                &["1.0"],
                "1.0",
                &["qa: { approvals: 1 }", "smoke: { command: [\"true\"] }"],
                SIM_OK,
            ),
        );
        let out = db
            .expect(
                &["reconcile", "--manifests", "manifests", "--output", "json"],
                4,
            )
            .json();
        let prod = &out["environments"][0];
        assert_eq!(prod["env"], "prod");
        assert_eq!(prod["outcome"]["kind"], "blocked", "{out:#}");
        let message = prod["outcome"]["message"].as_str().expect("a message");
        assert!(message.contains("waits for approval"), "{message}");
        let id = newest(db);
        assert_eq!(db.state(id), "planifié");

        // The plan of a pull request says what the pending deployment waits for.
        let plan = db.expect(&["reconcile", "--dry-run", "--manifests", "manifests"], 2);
        assert!(
            plan.stdout.contains(&format!(
                "run pending deployment {id}; waits for qa: 0 of 1 approval; may approve: anyone"
            )),
            "{}",
            plan.stdout
        );

        // Still waiting: a second reconcile reuses the same deployment and writes nothing.
        let snap = db.snapshot();
        let out = reconcile(db, 4);
        assert!(out.stdout.contains("blocked"), "{}", out.stdout);
        assert_eq!(db.snapshot(), snap);

        approve(db, id, "qa", &["--by", "alice"]);
        reconcile(db, 0);
        assert_eq!(db.state(id), "réussi");
        assert_eq!(live(db).as_deref(), Some("1.0"));
        assert_eq!(count(db, "SELECT COUNT(*) FROM deploiements"), 1);
        let outcomes: Vec<String> = gate_rows(db, id).iter().map(|r| r[2].clone()).collect();
        assert_eq!(outcomes, ["approved", "passed"]);
        // And then it is in sync.
        let snap = db.snapshot();
        reconcile(db, 0);
        assert_eq!(db.snapshot(), snap);
    });
}

#[test]
fn reconcile_with_a_failing_command_gate_exits_3() {
    each_backend(|db| {
        script(db, "scan.sh", FAILING_SCAN);
        declare(
            db,
            &manifest(
                &["1.0"],
                "1.0",
                &["scan: { command: [\"./scan.sh\"] }"],
                SIM_OK,
            ),
        );
        let out = db
            .expect(
                &["reconcile", "--manifests", "manifests", "--output", "json"],
                3,
            )
            .json();
        let outcome = &out["environments"][0]["outcome"];
        assert_eq!(outcome["kind"], "failed", "{out:#}");
        assert_eq!(outcome["execution"]["outcome"], "rejected", "{out:#}");
        let id = newest(db);
        assert_eq!(db.state(id), "échec");
        let rows = gate_rows(db, id);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0][..3], ["scan", "command", "failed"]);
        assert!(rows[0][4].contains("CVE-2026-0001 found"), "{rows:?}");
        assert_eq!(live(db), None);

        // Fixed, but a rejection holds the release: reconcile does not plan it
        // again by itself (DESIGN §9) until a person asks for it.
        script(db, "scan.sh", "#!/bin/sh\necho clean\n");
        let held = reconcile(db, 4);
        assert!(
            held.stdout.contains("1.0 held: rejected at its gates"),
            "{}",
            held.stdout
        );
        assert_eq!(newest(db), id);
        db.expect(&["deploy", "--release", "1", "--env", "prod"], 0);
        reconcile(db, 0);
        let next = newest(db);
        assert!(next > id);
        assert_eq!(db.state(id), "échec");
        assert_eq!(db.state(next), "réussi");
        assert_eq!(live(db).as_deref(), Some("1.0"));
    });
}

// ---------------------------------------------------------------- 7. nothing runs

#[test]
fn check_and_dry_run_never_run_gate_or_executor_commands() {
    each_backend(|db| {
        let canaries = ["canary-gate", "canary-run"];
        let none_ran = |when: &str| {
            for c in canaries {
                assert!(
                    !exists(db, c),
                    "{c} exists after {when} on {:?}",
                    db.backend
                );
            }
        };
        let with_gates = |gates: &[&str]| {
            manifest(
                &["1.0"],
                "1.0",
                gates,
                "{ command: { run: [\"touch\", \"canary-run\"] } }",
            )
        };
        let security = "security: { command: [\"touch\", \"canary-gate\"] }";

        // On an empty ledger.
        declare(db, &with_gates(&[security]));
        let out = db.expect(&["check", "--manifests", "manifests"], 0);
        assert!(out.stdout.contains("gates: security"), "{}", out.stdout);
        none_ran("check");
        let out = db.expect(&["reconcile", "--dry-run", "--manifests", "manifests"], 2);
        assert!(out.stdout.contains("touch canary-gate"), "{}", out.stdout);
        none_ran("reconcile --dry-run");
        if db.backend == Backend::Sqlite {
            assert!(!exists(db, "shipctl.db"), "the dry run created the ledger");
        }

        // With a stored policy and a pending deployment held by an approval.
        declare(db, &with_gates(&["qa: { approvals: 1 }", security]));
        reconcile(db, 4);
        none_ran("a reconcile waiting for approval");
        let id = newest(db);
        approve(db, id, "qa", &["--by", "alice"]);
        refused(
            db,
            &["reconcile", "--dry-run", "--manifests", "manifests"],
            2,
        );
        none_ran("reconcile --dry-run with the approval given");
        db.expect(&["check", "--manifests", "manifests"], 0);
        none_ran("check with the approval given");

        // The control: applying it runs both commands.
        reconcile(db, 0);
        for c in canaries {
            assert!(exists(db, c), "{c} missing after reconcile");
        }
        assert_eq!(db.state(id), "réussi");
    });
}

// ---------------------------------------------------------------- 8. history and audit

#[test]
fn history_and_audit_json_match_the_database() {
    each_backend(|db| {
        let qa = "qa: { approvals: 2 }";
        // 1.0: approved by two, live.
        declare(db, &manifest(&["1.0"], "1.0", &[qa], SIM_OK));
        reconcile(db, 4);
        let d1 = newest(db);
        approve(db, d1, "qa", &["--by", "alice"]);
        approve(db, d1, "qa", &["--by", "bob"]);
        validate(db, d1, 0);
        // 2.0: one approval, one rejection: échec.
        declare(db, &manifest(&["1.0", "2.0"], "2.0", &[qa], SIM_OK));
        reconcile(db, 4);
        let d2 = newest(db);
        approve(db, d2, "qa", &["--by", "alice"]);
        approve(
            db,
            d2,
            "qa",
            &["--by", "bob", "--reject", "--reason", "memory leak in 2.0"],
        );
        validate(db, d2, 3);
        // 3.0: pending with one approval.
        declare(db, &manifest(&["1.0", "2.0", "3.0"], "3.0", &[qa], SIM_OK));
        reconcile(db, 4);
        let d3 = newest(db);
        approve(db, d3, "qa", &["--by", "carol"]);
        assert!(d1 < d2 && d2 < d3);

        let deployments_sql = "SELECT d.id, r.version, r.tag_git, d.etat, d.attempts \
             FROM deploiements d JOIN releases r ON r.id = d.id_release \
             JOIN environnements e ON e.id = d.id_env WHERE e.nom = 'prod' ORDER BY d.id DESC";
        let gates_sql = |id: &str| {
            format!(
                "SELECT id, id_deploiement, gate, kind, outcome, acteur, message \
                 FROM gate_results WHERE id_deploiement = {id} ORDER BY id"
            )
        };
        let check = |limit: usize| {
            let h = db
                .expect(
                    &[
                        "history",
                        "--env",
                        "prod",
                        "--limit",
                        &limit.to_string(),
                        "--output",
                        "json",
                    ],
                    0,
                )
                .json();
            assert_eq!(h["env"], "prod");
            let got = h["deployments"].as_array().expect("deployments");
            let want: Vec<Vec<String>> =
                db.query(deployments_sql).into_iter().take(limit).collect();
            let fields = ["id", "version", "tag", "state", "attempts"];
            same_rows(db, got, &fields, "date", &want);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g["env"], "prod");
                let results = g["gate_results"].as_array().expect("gate_results");
                let fields = [
                    "id",
                    "deployment_id",
                    "gate",
                    "kind",
                    "outcome",
                    "actor",
                    "message",
                ];
                same_rows(db, results, &fields, "date", &db.query(&gates_sql(&w[0])));
            }
            h
        };
        let h = check(20);
        let deps = h["deployments"].as_array().expect("deployments");
        // Newest first, and what happened to each, independently of the SQL above.
        let ids: Vec<i64> = deps.iter().map(|d| d["id"].as_i64().expect("id")).collect();
        assert_eq!(ids, [d3, d2, d1]);
        let states: Vec<&str> = deps.iter().map(|d| d["state"].as_str().unwrap()).collect();
        assert_eq!(states, ["planifié", "échec", "réussi"]);
        let attempts: Vec<i64> = deps
            .iter()
            .map(|d| d["attempts"].as_i64().unwrap())
            .collect();
        assert_eq!(attempts, [0, 0, 1]);
        let decisions = |d: &Value| -> Vec<(String, String)> {
            d["gate_results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (text(&r["actor"]), text(&r["outcome"])))
                .collect()
        };
        let pair = |a: &str, o: &str| (a.to_string(), o.to_string());
        assert_eq!(decisions(&deps[0]), [pair("carol", "approved")]);
        assert_eq!(
            decisions(&deps[1]),
            [pair("alice", "approved"), pair("bob", "rejected")]
        );
        assert_eq!(
            decisions(&deps[2]),
            [pair("alice", "approved"), pair("bob", "approved")]
        );
        assert_eq!(deps[1]["gate_results"][1]["message"], "memory leak in 2.0");
        // A limit keeps the newest, with their results only.
        let h = check(2);
        assert_eq!(h["deployments"].as_array().unwrap().len(), 2);
        check(1);
        // An environment with nothing deployed.
        let dev = db
            .expect(&["history", "--env", "dev", "--output", "json"], 0)
            .json();
        assert_eq!(dev["deployments"], serde_json::json!([]));

        // The audit log of each deployment, row for row.
        for id in [d1, d2, d3] {
            let a = db
                .expect(
                    &["audit", "--deploy-id", &id.to_string(), "--output", "json"],
                    0,
                )
                .json();
            let got = a["rows"].as_array().expect("an array of audit rows");
            let want = db.query(&format!(
                "SELECT id, id_deploiement, action, etat_avant, etat_apres, message, acteur \
                 FROM audit_logs WHERE id_deploiement = {id} ORDER BY id"
            ));
            let fields = [
                "id",
                "deployment_id",
                "action",
                "state_before",
                "state_after",
                "message",
                "actor",
            ];
            same_rows(db, got, &fields, "date", &want);
            assert!(got.iter().all(|g| g["env"] == "prod"), "{a:#}");
        }
        let a2 = db
            .expect(
                &["audit", "--deploy-id", &d2.to_string(), "--output", "json"],
                0,
            )
            .json();
        let actions: Vec<&str> = a2["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "deployment.planned",
                "gate.waiting",
                "gate.approved",
                "gate.rejected",
                "deployment.rejected",
                "hold.set"
            ]
        );
        let rejected = &a2["rows"][3];
        assert_eq!(rejected["actor"], "bob");
        assert!(
            rejected["message"]
                .as_str()
                .unwrap()
                .contains("memory leak in 2.0")
        );
    });
}

// ---------------------------------------------------------------- 9. bad input

#[test]
fn approve_refuses_bad_input_and_writes_nothing() {
    each_backend(|db| {
        declare(
            db,
            &format!(
                "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\n\
                 environments:\n  \
                   dev: {{ release: \"1.0\", executor: {SIM_OK} }}\n  \
                   prod:\n    release: \"1.0\"\n    gates:\n      \
                     qa: {{ approvals: 1, approvers: [alice, bob] }}\n      \
                     any: {{ approvals: 1 }}\n      \
                     security: {{ command: [\"true\"] }}\n    \
                   executor: {SIM_OK}\n"
            ),
        );
        // dev deploys (no gates); prod waits.
        reconcile(db, 4);
        let dev: i64 = db
            .scalar(
                "SELECT d.id FROM deploiements d JOIN environnements e ON e.id = d.id_env \
                 WHERE e.nom = 'dev'",
            )
            .parse()
            .unwrap();
        assert_eq!(db.state(dev), "réussi");
        let id = newest(db);
        assert_ne!(id, dev);
        let sid = id.to_string();
        let long_name = "a".repeat(101);
        let long_reason = "x".repeat(1001);

        let base =
            |gate: &'static str| vec!["approve", "--deploy-id", sid.as_str(), "--gate", gate];
        let with = |gate: &'static str, extra: &[&'static str]| {
            let mut v = base(gate);
            v.extend_from_slice(extra);
            v
        };
        let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
            (
                with("nope", &["--by", "alice"]),
                vec![
                    "no approval gate named \"nope\"",
                    "its approval gates: qa, any",
                ],
            ),
            (
                with("security", &["--by", "alice"]),
                vec![
                    "gate security of prod is a command gate",
                    "nobody approves it",
                ],
            ),
            (
                with("qa", &["--by", "mallory"]),
                vec!["mallory may not approve", "its approvers are alice, bob"],
            ),
            (
                with("qa", &["--by", ""]),
                vec!["approver's name is empty", "--by NAME"],
            ),
            (
                with("any", &["--by", " alice"]),
                vec!["surrounding white space"],
            ),
            (
                {
                    let mut v = base("any");
                    v.extend_from_slice(&["--by", long_name.as_str()]);
                    v
                },
                vec!["101 characters", "at most 100"],
            ),
            (with("qa", &["--by", "alice", "--reject"]), vec!["--reason"]),
            (
                with("qa", &["--by", "alice", "--reason", "why"]),
                vec!["--reject"],
            ),
            (
                with("qa", &["--by", "alice", "--reject", "--reason", "   "]),
                vec!["a rejection needs a reason"],
            ),
            (
                {
                    let mut v = base("qa");
                    v.extend_from_slice(&["--by", "alice", "--reject", "--reason"]);
                    v.push(long_reason.as_str());
                    v
                },
                vec!["1001 characters", "at most 1000"],
            ),
            (
                vec![
                    "approve",
                    "--deploy-id",
                    "999",
                    "--gate",
                    "qa",
                    "--by",
                    "alice",
                ],
                vec!["deployment 999 does not exist"],
            ),
        ];
        let dev_id = dev.to_string();
        let mut cases = cases;
        cases.push((
            vec![
                "approve",
                "--deploy-id",
                &dev_id,
                "--gate",
                "qa",
                "--by",
                "alice",
            ],
            vec![
                "dev has no approval gate named \"qa\"",
                "declares no approval gates",
            ],
        ));
        for (args, wanted) in &cases {
            let out = refused(db, args, 1);
            for w in wanted {
                assert!(
                    out.stderr.contains(w),
                    "shipctl {args:?} on {:?}: stderr lacks {w:?}:\n{}",
                    db.backend,
                    out.stderr
                );
            }
        }
        assert_eq!(count(db, "SELECT COUNT(*) FROM gate_results"), 0);

        // In JSON, the error is on stdout with its kind and exit code.
        let out = refused(
            db,
            &[
                "approve",
                "--deploy-id",
                &sid,
                "--gate",
                "qa",
                "--by",
                "mallory",
                "--output",
                "json",
            ],
            1,
        );
        let err = out.json();
        assert_eq!(err["error"]["kind"], "input");
        assert_eq!(err["error"]["exit_code"], 1);

        // The limits themselves are accepted, in characters, not bytes.
        let name = "é".repeat(100);
        let reason = "é".repeat(1000);
        let a = approve(
            db,
            id,
            "any",
            &["--by", &name, "--reject", "--reason", &reason],
        );
        assert_eq!(a["decision"], "rejected");
        assert_eq!(
            db.query("SELECT acteur, message FROM gate_results"),
            vec![vec![name.clone(), reason.clone()]]
        );
        let a = approve(db, id, "any", &["--by", &name]);
        assert_eq!(a["recorded"], true);
        approve(db, id, "qa", &["--by", "alice"]);
        validate(db, id, 0);
        assert_eq!(db.state(id), "réussi");

        // A deployment that is no longer pending takes no decision.
        let out = refused(db, &with("qa", &["--by", "bob"]), 1);
        assert!(
            out.stderr
                .contains("only planifié or validé deployments take approvals"),
            "{}",
            out.stderr
        );
    });
}

// ---------------------------------------------------------------- imperative commands

#[test]
fn imperative_deployments_follow_the_stored_gates_and_rollbacks_skip_them() {
    each_backend(|db| {
        declare(
            db,
            &manifest(&["1.0"], "1.0", &["qa: { approvals: 1 }"], SIM_OK),
        );
        reconcile(db, 4);
        let d1 = newest(db);
        approve(db, d1, "qa", &["--by", "alice"]);
        validate(db, d1, 0);

        // A deployment planned by hand is held by the policy reconcile stored.
        let r2 = release(db, "2.0");
        let d2 = plan(db, r2, "prod");
        // Refused, with one gate.waiting row (notified, DESIGN §11) and nothing else.
        let out = db.expect(&["validate", "--deploy-id", &d2.to_string()], 4);
        assert_eq!(
            db.audit(d2).into_iter().map(|r| r.0).collect::<Vec<_>>(),
            ["deployment.planned", "gate.waiting"]
        );
        assert_eq!(db.state(d2), "planifié");
        assert!(out.stderr.contains("waits for approval"), "{}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("shipctl approve --deploy-id {d2} --gate qa")),
            "{}",
            out.stderr
        );
        approve(db, d2, "qa", &["--by", "bob"]);
        validate(db, d2, 0);
        assert_eq!(live(db).as_deref(), Some("2.0"));

        // Rolling back is the way out of an incident: no approval asked.
        db.expect(
            &[
                "rollback",
                "--deploy-id",
                &d2.to_string(),
                "--output",
                "json",
            ],
            0,
        );
        let d3 = newest(db);
        assert!(d3 > d2);
        assert_eq!(db.state(d3), "réussi");
        assert_eq!(db.state(d2), "annulé");
        assert_eq!(live(db).as_deref(), Some("1.0"));
        assert_eq!(
            count(
                db,
                &format!("SELECT COUNT(*) FROM gate_results WHERE id_deploiement = {d3}")
            ),
            0
        );
        let validated = audit_message(db, d3, "deployment.validated");
        assert!(
            validated.contains("gates do not apply to a rollback"),
            "{validated}"
        );
    });
}

// ---------------------------------------------------------------- NUL bytes

/// PostgreSQL refuses NUL in TEXT: a command's output is stored with each NUL
/// shown as U+FFFD, so its result is recorded on every backend.
#[test]
fn a_gate_whose_output_holds_a_nul_byte_is_still_recorded() {
    each_backend(|db| {
        script(
            db,
            "scan.sh",
            "#!/bin/sh\nprintf 'bad\\000byte\\n'\nexit 1\n",
        );
        declare(
            db,
            &manifest(
                &["1.0"],
                "1.0",
                &["qa: { approvals: 1 }", "scan: { command: [\"./scan.sh\"] }"],
                SIM_OK,
            ),
        );
        reconcile(db, 4);
        let id = newest(db);
        approve(db, id, "qa", &["--by", "alice"]);
        validate(db, id, 3);
        assert_eq!(db.state(id), "échec");
        let rows = gate_rows(db, id);
        assert_eq!(rows[1][..3], ["scan", "command", "failed"], "{rows:?}");
        assert!(
            rows[1].iter().any(|c| c.contains("bad\u{FFFD}byte")),
            "{rows:?}"
        );
    });
}

/// A deploy script that prints a NUL still finishes its deployment.
#[test]
fn an_executor_whose_output_holds_a_nul_byte_still_finishes() {
    each_backend(|db| {
        script(db, "deploy.sh", "#!/bin/sh\nprintf 'ok\\000done\\n'\n");
        declare(
            db,
            &manifest(
                &["1.0"],
                "1.0",
                &[],
                "{ command: { run: [\"./deploy.sh\"] } }",
            ),
        );
        reconcile(db, 0);
        let id = newest(db);
        assert_eq!(db.state(id), "réussi");
        assert!(audit_message(db, id, "deployment.succeeded").contains("ok\u{FFFD}done"));
    });
}

/// Commands never see the ledger's URL (it may hold a password).
#[test]
fn commands_do_not_inherit_the_database_url() {
    each_backend(|db| {
        script(
            db,
            "scan.sh",
            "#!/bin/sh\necho \"url=[${SHIPCTL_DATABASE_URL:-}]\"\n",
        );
        declare(
            db,
            &manifest(
                &["1.0"],
                "1.0",
                &["scan: { command: [\"./scan.sh\"] }"],
                SIM_OK,
            ),
        );
        reconcile(db, 0);
        let id = newest(db);
        let rows = gate_rows(db, id);
        assert!(rows[0].iter().any(|c| c.contains("url=[]")), "{rows:?}");
    });
}

// ---------------------------------------------------------------- the README's example

/// `examples/gated`, step by step as `examples/gated/demo.sh` and the README show
/// it: a QA approval, a security scan, a real deploy script, a rollback by it.
#[test]
fn the_gated_example_runs_as_the_readme_shows() {
    each_backend(|db| {
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gated");
        for sub in ["manifests", "scripts"] {
            let to = db.dir.path().join(sub);
            std::fs::create_dir_all(&to).expect("mkdir");
            for entry in std::fs::read_dir(example.join(sub)).expect("example dir") {
                let entry = entry.expect("entry");
                std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
            }
        }
        let manifest = db.dir.path().join("manifests/shipctl.yaml");
        let declare_release = |version: &str| {
            let text = std::fs::read_to_string(&manifest).expect("manifest");
            let text: String = text
                .lines()
                .map(|l| {
                    if l.starts_with("    release: ") {
                        format!("    release: \"{version}\"\n")
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            std::fs::write(&manifest, text).expect("write manifest");
        };
        let live_file = || {
            std::fs::read_to_string(db.dir.path().join("live/VERSION"))
                .unwrap_or_default()
                .trim()
                .to_string()
        };

        db.expect(&["check", "--manifests", "manifests"], 0);
        db.expect(&["reconcile", "--dry-run", "--manifests", "manifests"], 2);
        let waiting = reconcile(db, 4);
        assert!(
            waiting.stdout.contains("waits for approval"),
            "{}",
            waiting.stdout
        );
        assert!(
            waiting.stdout.contains("may approve: alice, bob"),
            "{}",
            waiting.stdout
        );
        approve(db, 1, "qa", &["--by", "alice"]);
        let first = reconcile(db, 0);
        assert!(
            first.stderr.contains("no known vulnerabilities"),
            "{}",
            first.stderr
        );
        assert_eq!(live_file(), "1.0.0");

        declare_release("1.1.0");
        reconcile(db, 4);
        approve(db, 2, "qa", &["--by", "bob"]);
        reconcile(db, 0);
        assert_eq!(live_file(), "1.1.0");

        let back = db.expect(&["rollback", "--deploy-id", "2"], 0);
        assert!(
            back.stderr
                .contains("deploy 1.0.0 (v1.0.0) to prod; was 1.1.0"),
            "{}",
            back.stderr
        );
        assert_eq!(live_file(), "1.0.0", "the deploy script restored 1.0.0");

        declare_release("1.2.0");
        reconcile(db, 4);
        approve(db, 4, "qa", &["--by", "alice"]);
        let rejected = reconcile(db, 3);
        assert!(
            rejected.stderr.contains("CRITICAL: 1.2.0"),
            "{}",
            rejected.stderr
        );
        assert_eq!(db.state(4), "échec");
        assert_eq!(
            live_file(),
            "1.0.0",
            "1.2.0 never reached the deploy script"
        );

        let audit = db
            .expect(
                &[
                    "audit", "--env", "prod", "--limit", "1000", "--output", "json",
                ],
                0,
            )
            .json();
        let actions: Vec<(i64, String)> = audit["rows"]
            .as_array()
            .expect("audit rows")
            .iter()
            .filter_map(|r| {
                Some((
                    r["deployment_id"].as_i64()?,
                    r["action"].as_str()?.to_string(),
                ))
            })
            .collect();
        for (id, action) in [
            (1, "gate.approved"),
            (1, "gate.passed"),
            (1, "deployment.validated"),
            (1, "deployment.succeeded"),
            (2, "deployment.succeeded"),
            (2, "deployment.rolled_back"),
            (3, "deployment.succeeded"),
            (3, "pin.set"),
            (4, "gate.approved"),
            (4, "gate.failed"),
            (4, "deployment.rejected"),
        ] {
            assert!(
                actions.contains(&(id, action.to_string())),
                "no {action} for deployment {id} in {actions:?}"
            );
        }
    });
}

// ---------------------------------------------------------------- one runner of the gates

/// prod with one command gate, `scan.sh`, that logs its pid to scans.log and
/// then sleeps `$SCAN_SLEEP` seconds.
fn slow_scan(db: &TestDb) {
    script(
        db,
        "scan.sh",
        "#!/bin/sh\necho \"$$\" >> scans.log\nsleep ${SCAN_SLEEP:-0}\necho clean\n",
    );
    declare(
        db,
        &manifest(
            &["1.0"],
            "1.0",
            &["scan: { command: [\"./scan.sh\"] }"],
            SIM_OK,
        ),
    );
}

/// A reconcile in the background, returned once its scan has started.
fn reconcile_in_background(db: &TestDb, scan_sleep: &str, global: &[&str]) -> Proc {
    let mut args = global.to_vec();
    args.extend(["reconcile", "--manifests", "manifests"]);
    let mut child = Proc::start_with(db, &args, &[("SCAN_SLEEP", scan_sleep)]);
    child.wait_until("the scan to start", Duration::from_secs(20), || {
        exists(db, "scans.log")
    });
    child
}

/// The pids the scan logged: one line per run.
fn scans(db: &TestDb) -> Vec<String> {
    std::fs::read_to_string(db.dir.path().join("scans.log"))
        .expect("scans.log")
        .lines()
        .map(str::to_string)
        .collect()
}

fn assert_held_elsewhere(run: &Run) {
    assert!(
        run.stderr
            .contains("is running its gates in another process"),
        "{}",
        run.stderr
    );
}

fn assert_succeeds(child: Proc) {
    let (out, _) = child.finish(Duration::from_secs(60), "its scan started");
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// Two processes validate the same deployment at once (two CI runners, a watch
/// and a person): its command gate runs once, in one of them; the other is told
/// the gates are running elsewhere (exit 4), and `status` shows who runs them.
#[test]
fn command_gates_run_in_one_process_at_a_time() {
    each_backend(|db| {
        slow_scan(db);
        db.expect(&["release", "--create", "1.0", "--tag", "v1.0"], 0);
        let id = plan(db, 1, "prod");
        // The first process: reconcile stores the policy and validates `id`.
        let first = reconcile_in_background(db, "2", &[]);
        let status = db.expect(&["status", "--env", "prod"], 0);
        assert!(
            status.stdout.contains("gates running in"),
            "{}",
            status.stdout
        );
        assert_held_elsewhere(&validate(db, id, 4));
        assert_succeeds(first);
        assert_eq!(db.state(id), "réussi");
        assert_eq!(scans(db).len(), 1, "the scan ran once");
        let rows = gate_rows(db, id);
        assert_eq!(rows.len(), 1, "one result: {rows:?}");
    });
}

/// A gate that outlasts the lease keeps its hold: it is renewed every third of
/// the TTL, so a second validation long after the TTL is still refused.
#[test]
fn a_long_gate_keeps_its_hold_past_the_lease_ttl() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    slow_scan(&db);
    let first = reconcile_in_background(&db, "3", &["--lease-ttl", "900ms"]);
    let id = newest(&db).to_string();
    // The hold as first taken; then, by the database clock, wait until it would
    // have expired a whole TTL ago had it not been renewed (over twice the TTL).
    let taken = db.scalar(&format!(
        "SELECT CAST(lease_expires_at AS TEXT) FROM deploiements WHERE id = {id}"
    ));
    db.wait_for("twice the TTL to pass", Duration::from_secs(10), || {
        db.scalar(&format!(
            "SELECT julianday('now') > julianday('{taken}') + 0.9 / 86400.0"
        )) == "1"
    });
    let args = ["--lease-ttl", "900ms", "validate", "--deploy-id", &id];
    assert_held_elsewhere(&db.expect(&args, 4));
    assert_succeeds(first);
    assert_eq!(scans(&db).len(), 1, "the scan ran once");
}

/// A process killed while its gates run: its hold expires with its lease, after
/// which `status` no longer shows it and the next validation runs the gates.
#[test]
fn a_hold_dies_with_its_process() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    slow_scan(&db);
    let mut first = reconcile_in_background(&db, "30", &["--lease-ttl", "900ms"]);
    let id = newest(&db);
    let status = db.expect(&["status", "--env", "prod"], 0);
    assert!(
        status.stdout.contains("gates running in"),
        "{}",
        status.stdout
    );
    first.kill();
    // Its gate, in a process group of its own, outlives it: end that too.
    let scan: i32 = scans(&db)[0].parse().expect("a pid");
    // SAFETY: kill(2) on the process group the scan leads.
    unsafe { libc::kill(-scan, libc::SIGKILL) };
    db.wait_for("the hold to expire", Duration::from_secs(10), || {
        !db.expect(&["status", "--env", "prod"], 0)
            .stdout
            .contains("gates running in")
    });
    db.expect(&["validate", "--deploy-id", &id.to_string()], 0);
    assert_eq!(db.state(id), "réussi");
    assert_eq!(scans(&db).len(), 2, "the second validation ran the scan");
}

/// The plan of a pull request that removes a gate does not say the pending
/// deployment waits for it: what it waits for is judged by the manifests.
#[test]
fn a_plan_judges_waiting_by_the_manifests_gates() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    declare(
        &db,
        &manifest(&["1.0"], "1.0", &["qa: { approvals: 1 }"], SIM_OK),
    );
    reconcile(&db, 4);
    let id = newest(&db);
    let plan = db.expect(&["reconcile", "--dry-run", "--manifests", "manifests"], 2);
    assert!(
        plan.stdout.contains("waits for qa: 0 of 1 approval"),
        "{}",
        plan.stdout
    );
    declare(&db, &manifest(&["1.0"], "1.0", &[], SIM_OK));
    let plan = db.expect(&["reconcile", "--dry-run", "--manifests", "manifests"], 2);
    assert!(
        plan.stdout
            .contains(&format!("run pending deployment {id}"))
            && !plan.stdout.contains("waits for"),
        "{}",
        plan.stdout
    );
    reconcile(&db, 0);
    assert_eq!(db.state(id), "réussi");
}
