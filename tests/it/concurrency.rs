//! Concurrency through the real binary, on every backend: racing claims in one
//! environment, racing migrations on a fresh database, a holder killed with
//! SIGKILL and recovered, SIGTERM/SIGINT during a run, and fencing of a holder
//! that was stopped while another process recovered its deployment.

use crate::common::*;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

/// `validate` with a simulation that never fails, optionally with a lease TTL.
fn validate_args(deploy: i64, duration: &str, ttl: Option<&str>) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(ttl) = ttl {
        args.extend(["--lease-ttl".to_string(), ttl.to_string()]);
    }
    args.extend(
        [
            "validate",
            "--deploy-id",
            &deploy.to_string(),
            "--duration",
            duration,
            "--failure-rate",
            "0",
        ]
        .map(String::from),
    );
    args
}

/// The binary in the background, with its output captured.
fn spawn(db: &TestDb, args: &[String]) -> Proc {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::start(db, &args)
}

/// A column as text on every backend (timestamps included).
fn text(db: &TestDb, expr: &str) -> String {
    match db.backend {
        Backend::MySql => format!("CAST({expr} AS CHAR)"),
        Backend::Sqlite | Backend::Postgres => format!("CAST({expr} AS TEXT)"),
    }
}

fn lease_expiry(db: &TestDb, deploy: i64) -> String {
    db.scalar(&format!(
        "SELECT {} FROM deploiements WHERE id = {deploy}",
        text(db, "lease_expires_at")
    ))
}

fn lease_holder(db: &TestDb, deploy: i64) -> String {
    db.scalar(&format!(
        "SELECT lease_holder FROM deploiements WHERE id = {deploy}"
    ))
}

fn en_cours_count(db: &TestDb) -> i64 {
    db.scalar("SELECT COUNT(*) FROM deploiements WHERE etat = 'en_cours'")
        .parse()
        .expect("count")
}

fn wait_state(db: &TestDb, deploy: i64, state: &str) {
    db.wait_for(
        &format!("deployment {deploy} to be {state} on {:?}", db.backend),
        Duration::from_secs(15),
        || db.state(deploy) == state,
    );
}

/// `status --env ENV --output json` (read-only), asserting exit 0.
fn status_json(db: &TestDb, env: &str) -> serde_json::Value {
    db.expect(&["status", "--env", env, "--output", "json"], 0)
        .json()
}

/// Polls the read-only `status` until it reports the in-progress deployment
/// as stale; returns the number of `status` runs it took.
fn wait_stale_in_status(db: &TestDb, env: &str, deploy: i64) -> usize {
    let mut runs = 0;
    db.wait_for(
        &format!("status to show deployment {deploy} as stale"),
        Duration::from_secs(15),
        || {
            runs += 1;
            let st = status_json(db, env);
            assert_eq!(
                st["in_progress"]["id"], deploy,
                "status lost the in-progress deployment: {st:#}"
            );
            st["in_progress"]["lease_stale"] == true
        },
    );
    runs
}

/// The audit rows of one action for one deployment: (before, after, message).
fn audit_rows(db: &TestDb, deploy: i64, action: &str) -> Vec<(String, String, String)> {
    db.query(&format!(
        "SELECT etat_avant, etat_apres, message FROM audit_logs \
         WHERE id_deploiement = {deploy} AND action = '{action}' ORDER BY id"
    ))
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
    .collect()
}

fn row(a: &str, before: &str, after: &str) -> (String, String, String) {
    (a.into(), before.into(), after.into())
}

// ---------------------------------------------------------------- 1. claim race

const RACERS: usize = 8;

#[test]
fn racing_validates_in_one_environment_run_one_at_a_time() {
    each_backend(|db| {
        let deps: Vec<i64> = (0..RACERS)
            .map(|i| {
                let r = release(db, &format!("5.0.{i}"));
                plan(db, r, "prod")
            })
            .collect();
        let sampler = Sampler::start(
            db,
            "SELECT COUNT(*) FROM deploiements WHERE etat = 'en_cours' \
             AND id_env = (SELECT id FROM environnements WHERE nom = 'prod')"
                .into(),
        );
        sampler.wait_started();

        let gate = Gate::new();
        let mut children: Vec<(i64, Proc)> = deps
            .iter()
            .map(|&d| {
                let args = validate_args(d, "1500ms", None);
                let child = Proc::spawn(gate.command(db, &args), describe(db, &args));
                (d, child)
            })
            .collect();
        gate.open();

        let mut results = Vec::new();
        for (d, child) in children.drain(..) {
            let (run, _) = child.finish(Duration::from_secs(40), "the gate opened");
            results.push((d, run));
        }
        let (samples, max) = sampler.stop();
        assert!(samples > 10, "the sampler took only {samples} samples");
        assert_eq!(
            max, 1,
            "on {:?} the sampler saw {max} en_cours rows at once in prod \
             (0 means it never saw the run)",
            db.backend
        );

        let mut winners = 0;
        let mut refused = 0;
        for (d, run) in &results {
            let state = db.state(*d);
            let attempts = db.scalar(&format!("SELECT attempts FROM deploiements WHERE id = {d}"));
            match run.code {
                0 => {
                    winners += 1;
                    assert_eq!(state, "réussi", "winner {d} on {:?}", db.backend);
                    assert_eq!(attempts, "1");
                    assert_eq!(
                        db.audit(*d),
                        vec![
                            row("deployment.planned", "NULL", "planifié"),
                            row("deployment.validated", "planifié", "validé"),
                            row("deployment.started", "validé", "en_cours"),
                            row("deployment.succeeded", "en_cours", "réussi"),
                        ],
                        "winner {d} on {:?}",
                        db.backend
                    );
                }
                4 => {
                    refused += 1;
                    assert!(
                        run.stderr.contains("environment prod is busy"),
                        "refused {d} on {:?} does not say why:\n{}",
                        db.backend,
                        run.stderr
                    );
                    // A refusal writes nothing: the deployment is still planned,
                    // never attempted, and its only audit row is the planning.
                    assert_eq!(state, "planifié", "refused {d} on {:?}", db.backend);
                    assert_eq!(attempts, "0");
                    assert_eq!(
                        db.audit(*d),
                        vec![row("deployment.planned", "NULL", "planifié")],
                        "refused {d} on {:?}",
                        db.backend
                    );
                }
                other => panic!(
                    "racer {d} on {:?} exited {other}\nstdout:\n{}\nstderr:\n{}",
                    db.backend, run.stdout, run.stderr
                ),
            }
        }
        assert!(winners >= 1, "no racer won on {:?}", db.backend);
        assert!(
            refused >= 1,
            "on {:?} no racer was refused: the {RACERS} runs of 1.5s did not overlap at all",
            db.backend
        );
        assert_eq!(winners + refused, RACERS);
        assert_eq!(en_cours_count(db), 0, "a run was left en_cours");
        // Only successful claims consumed a fencing token: a claim that lost the
        // race rolled its whole transaction back.
        assert_eq!(
            db.scalar("SELECT fencing_token FROM environnements WHERE nom = 'prod'"),
            winners.to_string(),
            "on {:?}",
            db.backend
        );
        assert_eq!(
            db.scalar(
                "SELECT COUNT(DISTINCT fencing_token) FROM deploiements WHERE etat = 'réussi'"
            ),
            winners.to_string()
        );
    });
}

// ---------------------------------------------------------------- 2. migration race

#[test]
fn racing_first_runs_migrate_a_fresh_database_once() {
    each_backend(|db| {
        let gate = Gate::new();
        let children: Vec<Proc> = (0..4)
            // A writer (`status` never creates a ledger) that, once the ledger
            // is there, finds nothing to do: each must get past the migration.
            .map(|_| {
                let args = ["unpin", "--env", "prod"];
                Proc::spawn(gate.command(db, args), describe(db, args))
            })
            .collect();
        gate.open();
        for child in children {
            let (run, _) = child.finish(Duration::from_secs(40), "the gate opened");
            assert_eq!(
                run.code, 1,
                "unpin racing on a fresh {:?} database:\nstdout:\n{}\nstderr:\n{}",
                db.backend, run.stdout, run.stderr
            );
            assert!(run.stderr.contains("prod is not pinned"), "{}", run.stderr);
        }
        let versions = db.query("SELECT version, name FROM shipctl_migrations ORDER BY version");
        assert!(!versions.is_empty(), "no migration recorded");
        for (i, v) in versions.iter().enumerate() {
            assert_eq!(
                v[0],
                (i + 1).to_string(),
                "migrations on {:?}: {versions:?}",
                db.backend
            );
        }
        assert_eq!(
            db.query("SELECT nom FROM environnements ORDER BY id"),
            vec![
                vec!["dev".to_string()],
                vec!["staging".into()],
                vec!["prod".into()]
            ]
        );
        // And the schema works: a full cycle runs on it.
        let r = release(db, "1.0.0");
        let d = plan(db, r, "prod");
        succeed(db, d);
        assert_eq!(db.state(d), "réussi");
    });
}

// ---------------------------------------------------------------- 3. crash

#[test]
fn killed_holder_is_shown_stale_then_recovered_by_the_next_writer() {
    each_backend(|db| {
        let r1 = release(db, "6.0.0");
        let r2 = release(db, "6.0.1");
        // Both planned before the crash: planning recovers stale leases too, and
        // here the recovery must be the validate's.
        let d1 = plan(db, r1, "prod");
        let d2 = plan(db, r2, "prod");

        let mut child = spawn(db, &validate_args(d1, "30s", Some("1s")));
        wait_state(db, d1, "en_cours");
        let holder = lease_holder(db, d1);
        assert!(
            holder.contains(&format!(":{}:", child.pid())),
            "lease holder {holder:?} does not name pid {}",
            child.pid()
        );
        let status = child.kill();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");

        // status is read-only: it reports the dead holder once the lease has
        // expired, and writes nothing, however often it runs.
        let before = db.snapshot();
        let runs = wait_stale_in_status(db, "prod", d1);
        let st = status_json(db, "prod");
        assert_eq!(st["in_progress"]["lease_holder"], holder.as_str());
        let out = db.expect(&["status", "--env", "prod"], 0).stdout;
        assert!(
            out.contains("stale") && out.contains(&holder),
            "status text does not show the stale holder:\n{out}"
        );
        assert_eq!(
            db.snapshot(),
            before,
            "{} status runs on {:?} changed the database",
            runs + 2,
            db.backend
        );
        assert_eq!(db.state(d1), "en_cours", "status must not recover");

        // The next writer in prod recovers the dead run, then proceeds.
        let run = db.expect(
            &[
                "validate",
                "--deploy-id",
                &d2.to_string(),
                "--duration",
                "0s",
                "--failure-rate",
                "0",
                "--output",
                "json",
            ],
            0,
        );
        let j = run.json();
        assert_eq!(j["recovered_id"], d1, "{j:#}");
        assert_eq!(j["outcome"], "succeeded");
        assert_eq!(db.state(d1), "échec");
        assert_eq!(db.state(d2), "réussi");
        assert_eq!(lease_expiry(db, d1), "NULL");
        let expired = audit_rows(db, d1, "lease.expired");
        assert_eq!(expired.len(), 1, "{expired:?}");
        let (before, after, message) = &expired[0];
        assert_eq!((before.as_str(), after.as_str()), ("en_cours", "échec"));
        assert!(
            message.contains(&holder),
            "the recovery audit does not name the dead holder {holder:?}: {message}"
        );
        assert_eq!(
            db.audit(d1).last().cloned(),
            Some(row("lease.expired", "en_cours", "échec")),
            "the dead run must have written nothing after its start"
        );
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM audit_logs WHERE action = 'lease.expired'"),
            "1"
        );
        assert_eq!(en_cours_count(db), 0);
        let st = status_json(db, "prod");
        assert!(st["in_progress"].is_null(), "{st:#}");
        assert_eq!(st["live"]["id"], d2);
    });
}

// ---------------------------------------------------------------- 4. signals

#[test]
fn sigterm_and_sigint_roll_a_running_deployment_back() {
    each_backend(|db| {
        for (sig, name, env) in [
            (libc::SIGTERM, "SIGTERM", "prod"),
            (libc::SIGINT, "SIGINT", "staging"),
        ] {
            let r = release(db, &format!("7.0.{sig}"));
            let d = plan(db, r, env);
            // Default lease TTL (30s) and a 60s run: only the signal handling can
            // end this run within the deadline below.
            let mut child = spawn(db, &validate_args(d, "60s", None));
            wait_state(db, d, "en_cours");
            let sent = Instant::now();
            child.signal(sig);
            let status = child.wait_exit(Duration::from_secs(5), name);
            let took = sent.elapsed();
            let run = child.collect(status);
            assert_eq!(
                run.code, 3,
                "{name} on {:?}: {status:?}\nstdout:\n{}\nstderr:\n{}",
                db.backend, run.stdout, run.stderr
            );
            assert!(
                run.stdout.contains(&format!("interrupted by {name}")),
                "{name}: {}",
                run.stdout
            );
            assert_eq!(db.state(d), "planifié", "{name} on {:?}", db.backend);
            assert_eq!(lease_expiry(db, d), "NULL");
            assert_eq!(
                db.scalar(&format!("SELECT attempts FROM deploiements WHERE id = {d}")),
                "1"
            );
            let failed = audit_rows(db, d, "deployment.failed");
            assert_eq!(failed.len(), 1, "{name}: {failed:?}");
            assert_eq!(
                (failed[0].0.as_str(), failed[0].1.as_str()),
                ("en_cours", "planifié")
            );
            assert!(
                failed[0].2.contains(&format!("interrupted by {name}")),
                "{name}: {}",
                failed[0].2
            );
            assert_eq!(
                db.audit(d).last().cloned(),
                Some(row("deployment.failed", "en_cours", "planifié"))
            );
            assert_eq!(en_cours_count(db), 0, "{name} left a run en_cours");
            assert!(took < Duration::from_secs(5), "{name}: exit took {took:?}");
        }
    });
}

// ---------------------------------------------------------------- 5. fencing

/// Runs a holder with a 1s lease, freezes it (SIGSTOP) right after one of its
/// heartbeats, lets another process recover its deployment, optionally waits
/// until the frozen run would have ended, then thaws it: it must write nothing
/// and exit 3.
fn stale_holder_is_fenced(db: &TestDb, duration: Duration, wait_for_run_end: bool) {
    let r1 = release(db, "8.0.0");
    let r2 = release(db, "8.0.1");
    let d1 = plan(db, r1, "prod");
    let d2 = plan(db, r2, "prod");

    let ms = format!("{}ms", duration.as_millis());
    let mut child = spawn(db, &validate_args(d1, &ms, Some("1s")));
    wait_state(db, d1, "en_cours");
    let claimed_at = Instant::now();
    let holder = lease_holder(db, d1);
    // Freeze it right after a heartbeat committed, so that it is not frozen in
    // the middle of a write (holding SQLite's write lock or a row lock).
    let first = lease_expiry(db, d1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if lease_expiry(db, d1) != first {
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeat seen");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.signal(libc::SIGSTOP);

    // The frozen holder stops heartbeating: its lease expires.
    wait_stale_in_status(db, "prod", d1);

    // Another process recovers it and deploys.
    let run = db.expect(
        &[
            "validate",
            "--deploy-id",
            &d2.to_string(),
            "--duration",
            "0s",
            "--failure-rate",
            "0",
            "--output",
            "json",
        ],
        0,
    );
    assert_eq!(run.json()["recovered_id"], d1);
    assert_eq!(db.state(d1), "échec");
    assert_eq!(db.state(d2), "réussi");
    let expired = audit_rows(db, d1, "lease.expired");
    assert_eq!(expired.len(), 1);
    assert!(expired[0].2.contains(&holder), "{}", expired[0].2);

    if wait_for_run_end {
        // Not waiting for a state: the frozen run's simulated work must be over
        // before it thaws, so that it goes straight to its finishing write.
        let end = claimed_at + duration + Duration::from_millis(200);
        if let Some(left) = end.checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
    }

    let before = db.snapshot();
    child.signal(libc::SIGCONT);
    let status = child.wait_exit(Duration::from_secs(10), "SIGCONT (the thawed holder)");
    let out = child.collect(status);
    assert_eq!(
        out.code, 3,
        "the fenced holder on {:?}: {status:?}\nstdout:\n{}\nstderr:\n{}",
        db.backend, out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains("lost its lease") || out.stderr.contains("taken over"),
        "the fenced holder does not say it lost its lease:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("deployment {d1}")),
        "{}",
        out.stderr
    );
    assert_eq!(
        db.snapshot(),
        before,
        "the stale holder on {:?} wrote to the database",
        db.backend
    );
    assert_eq!(db.state(d1), "échec");
    assert_eq!(db.state(d2), "réussi");
    assert_eq!(
        db.audit(d1).last().cloned(),
        Some(row("lease.expired", "en_cours", "échec"))
    );
    assert_eq!(en_cours_count(db), 0);
}

#[test]
fn stale_holder_thawed_mid_run_writes_nothing() {
    each_backend(|db| stale_holder_is_fenced(db, Duration::from_secs(30), false));
}

#[test]
fn stale_holder_thawed_after_its_run_ended_writes_nothing() {
    each_backend(|db| stale_holder_is_fenced(db, Duration::from_millis(1500), true));
}
