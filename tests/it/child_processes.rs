//! Child processes of deployment commands: finished when their process exits
//! (even if a background child holds the pipes), stopped with SIGTERM to their
//! process group, `kill_grace`, then SIGKILL; told their fencing token.

use crate::common::*;
use std::time::{Duration, Instant};

/// prod on release 1.0, with `gates` (one `name: { ... }` line each) and the
/// `executor:` block `executor` (indented lines under `executor:`).
fn declare(db: &TestDb, gates: &[&str], executor: &str) {
    let mut s = String::from(
        "releases:\n  - { version: \"1.0\", tag: v1.0 }\nenvironments:\n  prod:\n    release: \"1.0\"\n",
    );
    if !gates.is_empty() {
        s.push_str("    gates:\n");
        for g in gates {
            s.push_str(&format!("      {g}\n"));
        }
    }
    s.push_str(&format!("    executor:\n{executor}"));
    let dir = db.dir.path().join("manifests");
    std::fs::create_dir_all(&dir).expect("manifest dir");
    std::fs::write(dir.join("shipctl.yaml"), s).expect("write manifest");
}

const SIM_OK: &str = "      simulate: { duration: 0s, failure_rate: 0 }\n";

/// A `command:` executor running `./deploy.sh` with these extra keys.
fn deploy_sh(extra: &str) -> String {
    format!("      command:\n        run: [\"./deploy.sh\"]\n{extra}")
}

fn wait_for_file(db: &TestDb, name: &str) {
    let path = db.dir.path().join(name);
    db.wait_for(name, Duration::from_secs(20), || path.exists());
}

fn failed_message(db: &TestDb) -> String {
    db.scalar("SELECT message FROM audit_logs WHERE action = 'deployment.failed'")
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn read_pid(db: &TestDb, name: &str) -> i32 {
    std::fs::read_to_string(db.dir.path().join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .trim()
        .parse()
        .expect("a pid")
}

/// A deploy script that releases its lock when asked to stop.
const TRAPS_TERM: &str = "#!/bin/sh\n\
trap 'echo releasing lock; exit 1' TERM\n\
echo deploying\n\
touch running\n\
sleep 300 &\n\
wait\n";

#[test]
fn a_gate_whose_background_child_holds_its_output_finishes_when_it_exits() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    declare(
        &db,
        &[
            "bg: { command: [\"sh\", \"-c\", \"sleep 30 & echo $! > bg.pid; echo started\"], timeout: 20s }",
        ],
        SIM_OK,
    );
    let started = Instant::now();
    db.expect(&["reconcile", "--manifests", "manifests"], 0);
    let took = started.elapsed();
    let pid = read_pid(&db, "bg.pid");
    // The background child is the command's business: left running.
    let left_alone = alive(pid);
    // SAFETY: the test's own leftover sleep; kill has no memory effects.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    assert!(left_alone, "the background child was killed");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let rows = db.query("SELECT gate, outcome, message FROM gate_results");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][..2], ["bg", "passed"]);
    assert!(rows[0][2].contains("started"), "output kept: {rows:?}");
    assert_eq!(db.state(1), "réussi");
}

#[test]
fn sigterm_to_shipctl_lets_the_deploy_script_run_its_trap() {
    each_backend(|db| {
        script(db, "deploy.sh", TRAPS_TERM);
        declare(db, &[], &deploy_sh("        kill_grace: 5s\n"));
        let p = Proc::start(db, &["reconcile", "--manifests", "manifests"]);
        wait_for_file(db, "running");
        let asked = Instant::now();
        p.signal(libc::SIGTERM);
        let (out, _) = p.finish(Duration::from_secs(20), "SIGTERM");
        assert!(
            asked.elapsed() < Duration::from_secs(4),
            "the trap exits at once: {:?}",
            asked.elapsed()
        );
        assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
        assert_eq!(db.state(1), "planifié", "rolled back, not en_cours");
        let msg = failed_message(db);
        assert!(msg.contains("interrupted by SIGTERM"), "{msg}");
        assert!(msg.contains("releasing lock"), "its trap ran: {msg}");
        assert!(
            msg.contains("SIGTERM to its process group, exited after"),
            "{msg}"
        );
    });
}

#[test]
fn a_command_that_ignores_sigterm_is_killed_after_its_grace_period() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    script(
        &db,
        "deploy.sh",
        "#!/bin/sh\ntrap '' TERM\necho $$ > deploy.pid\ntouch running\nsleep 300\n",
    );
    declare(&db, &[], &deploy_sh("        kill_grace: 500ms\n"));
    let p = Proc::start(&db, &["reconcile", "--manifests", "manifests"]);
    wait_for_file(&db, "running");
    let pid = read_pid(&db, "deploy.pid");
    let asked = Instant::now();
    p.signal(libc::SIGTERM);
    let (out, _) = p.finish(Duration::from_secs(20), "SIGTERM");
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "it had its grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "bounded: {took:?}");
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(!alive(pid), "the script was killed");
    let msg = failed_message(&db);
    assert!(
        msg.contains("did not exit within the 500ms grace period, killed with SIGKILL"),
        "{msg}"
    );
    assert_eq!(db.state(1), "planifié");
}

#[test]
fn a_timeout_stops_the_command_with_sigterm_first() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    script(&db, "deploy.sh", TRAPS_TERM);
    declare(&db, &[], &deploy_sh("        timeout: 1s\n"));
    let started = Instant::now();
    let out = db.expect(&["reconcile", "--manifests", "manifests"], 3);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(out.stdout.contains("timed out after 1s"), "{}", out.stdout);
    let msg = failed_message(&db);
    assert!(
        msg.contains("timed out after 1s: SIGTERM to its process group, exited after"),
        "{msg}"
    );
    assert!(msg.contains("releasing lock"), "its trap ran: {msg}");
    assert!(msg.contains("deploying"), "earlier output kept: {msg}");
}

#[test]
fn commands_get_the_claims_fencing_token_and_gates_an_empty_one() {
    each_backend(|db| {
        script(
            db,
            "deploy.sh",
            "#!/bin/sh\necho \"run=[$SHIPCTL_FENCING_TOKEN]\" >> tokens.log\n",
        );
        declare(
            db,
            &[
                "scan: { command: [\"sh\", \"-c\", \"echo gate=[$SHIPCTL_FENCING_TOKEN] >> tokens.log\"] }",
            ],
            &deploy_sh(""),
        );
        db.expect(&["reconcile", "--manifests", "manifests"], 0);
        let token = db.scalar("SELECT fencing_token FROM deploiements WHERE id = 1");
        assert!(
            token.parse::<i64>().is_ok_and(|t| t > 0),
            "a token: {token}"
        );
        let log = std::fs::read_to_string(db.dir.path().join("tokens.log")).expect("tokens.log");
        assert_eq!(log, format!("gate=[]\nrun=[{token}]\n"));
    });
}

#[test]
fn check_refuses_a_bad_kill_grace_with_its_key_path() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let cases: [(&[&str], String, &str); 4] = [
        (
            &[],
            deploy_sh("        kill_grace: 0s\n"),
            "environments.prod.executor.command.kill_grace: a grace period of 0",
        ),
        (
            &[],
            deploy_sh("        kill_grace: 2h\n"),
            "environments.prod.executor.command.kill_grace: 120m is too long",
        ),
        (
            &["scan: { command: [\"true\"], kill_grace: 0ms }"],
            SIM_OK.to_string(),
            "environments.prod.gates.scan.kill_grace: a grace period of 0",
        ),
        (
            &["qa: { approvals: 1, kill_grace: 5s }"],
            SIM_OK.to_string(),
            "environments.prod.gates.qa: kill_grace applies to command gates only",
        ),
    ];
    for (gates, executor, wanted) in cases {
        declare(&db, gates, &executor);
        let out = db.expect(&["check", "--manifests", "manifests"], 1);
        assert!(out.stderr.contains(wanted), "{wanted}:\n{}", out.stderr);
        assert!(out.stderr.contains("shipctl.yaml:"), "{}", out.stderr);
    }
    // A good one is accepted, stored and shown with the executor.
    declare(&db, &[], &deploy_sh("        kill_grace: 1.5s\n"));
    script(&db, "deploy.sh", "#!/bin/sh\nexit 0\n");
    db.expect(&["check", "--manifests", "manifests"], 0);
    let out = db.expect(
        &["reconcile", "--manifests", "manifests", "--output", "json"],
        0,
    );
    assert!(out.stdout.contains("kill grace 1.5s"), "{}", out.stdout);
    assert!(
        db.scalar("SELECT policy FROM environnements WHERE nom = 'prod'")
            .contains("\"kill_grace\":\"1.5s\""),
        "stored with the policy"
    );
}
