//! Real deployment commands: argv with SHIPCTL_* variables, never a shell
//! string; failure runs the rollback command for the previous release; a timeout
//! kills the whole process group.

use crate::common::*;
use std::time::{Duration, Instant};

/// A deploy script that records what it was given, fails for 2.0, hangs
/// (with a child of its own) for 3.0.
const SCRIPT: &str = r#"#!/bin/sh
printf '%s|%s|%s|%s|%s\n' "$SHIPCTL_VERSION" "$SHIPCTL_TAG" "$SHIPCTL_ENV" "$SHIPCTL_DEPLOY_ID" "$SHIPCTL_PREVIOUS_VERSION" >> calls.log
echo "deploying $SHIPCTL_VERSION"
case "$1:$SHIPCTL_VERSION" in
  run:2.0) echo "health check failed" >&2; exit 7 ;;
  run:3.0) sleep 300 & echo $! > orphan.pid; sleep 300 ;;
esac
exit 0
"#;

fn setup(db: &TestDb, releases: &[(&str, &str)], prod: &str) {
    let dir = db.dir.path();
    script(db, "deploy.sh", SCRIPT);
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    // YAML single quotes: a quote inside is written twice.
    let q = |s: &str| s.replace('\'', "''");
    let list: String = releases
        .iter()
        .map(|(v, t)| format!("  - version: '{}'\n    tag: '{}'\n", q(v), q(t)))
        .collect();
    let prod = q(prod);
    let manifest = format!(
        "releases:\n{list}environments:\n  prod:\n    release: '{prod}'\n    executor:\n      command:\n        run: ['./deploy.sh', 'run']\n        rollback: ['./deploy.sh', 'undo']\n        timeout: 2s\n"
    );
    std::fs::write(dir.join("manifests/m.yaml"), manifest).unwrap();
}

fn calls(db: &TestDb) -> Vec<String> {
    std::fs::read_to_string(db.dir.path().join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn success_then_failure_runs_the_rollback_command() {
    each_backend(|db| {
        setup(db, &[("1.0", "v1.0"), ("2.0", "v2.0")], "1.0");
        let out = db.expect(&["reconcile", "--manifests", "manifests"], 0);
        assert!(
            out.stderr.contains("deploying 1.0"),
            "output streamed: {}",
            out.stderr
        );
        assert_eq!(calls(db), vec!["1.0|v1.0|prod|1|".to_string()]);
        // Its output is kept in the audit log.
        let msg = db.scalar("SELECT message FROM audit_logs WHERE action = 'deployment.succeeded'");
        assert!(msg.contains("deploying 1.0"), "{msg}");

        setup(db, &[("1.0", "v1.0"), ("2.0", "v2.0")], "2.0");
        let out = db.expect(&["reconcile", "--manifests", "manifests"], 3);
        assert!(out.stdout.contains("exited with code 7"), "{}", out.stdout);
        // The run for 2.0, then the rollback command for 1.0, told what failed.
        assert_eq!(
            calls(db)[1..],
            [
                "2.0|v2.0|prod|2|1.0".to_string(),
                "1.0|v1.0|prod|2|2.0".to_string()
            ]
        );
        let failed = db.scalar("SELECT message FROM audit_logs WHERE action = 'deployment.failed'");
        assert!(
            failed.contains("health check failed"),
            "stderr kept: {failed}"
        );
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM audit_logs WHERE action = 'rollback_command.succeeded' AND id_deploiement = 2"),
            "1"
        );
        let st = db
            .expect(&["status", "--env", "prod", "--output", "json"], 0)
            .json();
        assert_eq!(
            st["live"]["version"], "1.0",
            "prod stays on the previous release"
        );
    });
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    setup(&db, &[("1.0", "v1.0"), ("3.0", "v3.0")], "1.0");
    db.expect(&["reconcile", "--manifests", "manifests"], 0);
    setup(&db, &[("1.0", "v1.0"), ("3.0", "v3.0")], "3.0");
    let started = Instant::now();
    let out = db.expect(&["reconcile", "--manifests", "manifests"], 3);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(out.stdout.contains("timed out after 2s"), "{}", out.stdout);
    let pid: i32 = std::fs::read_to_string(db.dir.path().join("orphan.pid"))
        .expect("the script started a child")
        .trim()
        .parse()
        .unwrap();
    // The child it left behind was killed with its group (poll: the kernel may
    // take a moment to reap it).
    db.wait_for("the orphan to die", Duration::from_secs(5), || {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) != 0 }
    });
    assert_eq!(
        db.scalar("SELECT etat FROM deploiements WHERE id = 2"),
        "planifié"
    );
}

#[test]
fn values_reach_the_command_byte_for_byte_never_through_a_shell() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let nasty = [
        ("1.0;touch pwned", "$(touch pwned)"),
        ("`touch pwned`", "v'\"x"),
    ];
    setup(&db, &nasty, "1.0;touch pwned");
    db.expect(&["reconcile", "--manifests", "manifests"], 0);
    setup(&db, &nasty, "`touch pwned`");
    db.expect(&["reconcile", "--manifests", "manifests"], 0);
    assert_eq!(
        calls(&db),
        vec![
            "1.0;touch pwned|$(touch pwned)|prod|1|".to_string(),
            "`touch pwned`|v'\"x|prod|2|1.0;touch pwned".to_string(),
        ]
    );
    assert!(!db.dir.path().join("pwned").exists());
}

#[test]
fn dry_run_and_check_never_run_commands() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    setup(&db, &[("1.0", "v1.0")], "1.0");
    let out = db.expect(&["reconcile", "--dry-run", "--manifests", "manifests"], 2);
    assert!(
        out.stdout
            .contains("runs ./deploy.sh run (on failure: ./deploy.sh undo)"),
        "{}",
        out.stdout
    );
    db.expect(&["check", "--manifests", "manifests"], 0);
    assert!(calls(&db).is_empty(), "a command ran: {:?}", calls(&db));
}
