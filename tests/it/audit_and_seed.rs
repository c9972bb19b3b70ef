//! `audit --since` measured by the database's clock (every unit, RFC 3339,
//! refusals), `audit` saying how many rows it did not show, `--seed` drawing
//! per deployment and attempt, and `approve`/`unpin` recovering a dead holder.

use crate::common::*;

use chrono::{Duration as Span, FixedOffset, NaiveDateTime};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

// ---------------------------------------------------------------- helpers

/// The database's clock (UTC) minus `secs` seconds, as an SQL expression.
fn db_ago(db: &TestDb, secs: i64) -> String {
    match db.backend {
        Backend::Sqlite => format!("strftime('%Y-%m-%d %H:%M:%f', 'now', '-{secs} seconds')"),
        Backend::Postgres => format!("(now() - interval '{secs} seconds')"),
        // The harness's session is not set to UTC: shipctl's is.
        Backend::MySql => format!("DATE_SUB(UTC_TIMESTAMP(6), INTERVAL {secs} SECOND)"),
    }
}

/// `date_log` of one row as `YYYY-MM-DD HH:MM:SS`, UTC, whatever the backend.
fn date_log(db: &TestDb, id: i64) -> NaiveDateTime {
    let expr = match db.backend {
        Backend::Sqlite => "substr(date_log, 1, 19)",
        Backend::Postgres => "to_char(date_log AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')",
        Backend::MySql => "DATE_FORMAT(date_log, '%Y-%m-%d %H:%i:%s')",
    };
    let text = db.scalar(&format!("SELECT {expr} FROM audit_logs WHERE id = {id}"));
    NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("date_log {text:?}: {e}"))
}

/// Audit rows about `env`, one per age, each message naming its age.
fn insert_aged(db: &TestDb, env: &str, ages: &[(i64, &str)]) -> BTreeMap<String, i64> {
    let mut ids = BTreeMap::new();
    for (secs, name) in ages {
        db.query(&format!(
            "INSERT INTO audit_logs (action, message, acteur, id_env, date_log) \
             VALUES ('test.aged', '{name}', 'tester', \
             (SELECT id FROM environnements WHERE nom = '{env}'), {})",
            db_ago(db, *secs)
        ));
        let id = db
            .scalar(&format!(
                "SELECT MAX(id) FROM audit_logs WHERE message = '{name}'"
            ))
            .parse()
            .expect("id");
        ids.insert(name.to_string(), id);
    }
    ids
}

/// The messages `audit --env ENV --since WHEN` shows, oldest first, and its `total`.
fn since(db: &TestDb, env: &str, when: &str) -> (Vec<String>, i64) {
    let j = db
        .expect(
            &["audit", "--env", env, "--since", when, "--output", "json"],
            0,
        )
        .json();
    let rows = j["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows in {j:#}"));
    let messages: Vec<String> = rows
        .iter()
        .map(|r| r["message"].as_str().expect("message").to_string())
        .collect();
    let total = j["total"]
        .as_i64()
        .unwrap_or_else(|| panic!("no total in {j:#}"));
    (messages, total)
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Polls the database until the deployment's lease has expired by its own clock.
fn wait_expired(db: &TestDb, deploy: i64) {
    let now = match db.backend {
        Backend::Sqlite => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
        Backend::Postgres => "clock_timestamp()",
        Backend::MySql => "UTC_TIMESTAMP(6)",
    };
    db.wait_for(
        &format!("the lease of deployment {deploy} to expire"),
        Duration::from_secs(15),
        || {
            db.scalar(&format!(
                "SELECT COUNT(*) FROM deploiements WHERE id = {deploy} \
                 AND etat = 'en_cours' AND lease_expires_at < {now}"
            )) == "1"
        },
    );
}

/// Starts `validate` of `deploy` with a 1s lease and a long run, waits until it
/// holds the deployment, kills it with SIGKILL and waits for its lease to expire.
fn dead_holder(db: &TestDb, deploy: i64) -> String {
    let id = deploy.to_string();
    // A lease of 2s: renewed every 2/3s, it holds on a loaded machine (the
    // holder gives up a lease it cannot renew, and would exit on its own).
    let mut child = Proc::start(
        db,
        &[
            "--lease-ttl",
            "2s",
            "validate",
            "--deploy-id",
            &id,
            "--duration",
            "60s",
            "--failure-rate",
            "0",
        ],
    );
    db.wait_for(
        &format!("deployment {deploy} to be en_cours"),
        Duration::from_secs(15),
        || db.state(deploy) == "en_cours",
    );
    let holder = db.scalar(&format!(
        "SELECT lease_holder FROM deploiements WHERE id = {deploy}"
    ));
    let status = child.kill();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    wait_expired(db, deploy);
    holder
}

/// The one `lease.expired` row of a deployment: (before, after, message).
fn expired_row(db: &TestDb, deploy: i64) -> (String, String, String) {
    let rows = db.query(&format!(
        "SELECT etat_avant, etat_apres, message FROM audit_logs \
         WHERE id_deploiement = {deploy} AND action = 'lease.expired'"
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    (rows[0][0].clone(), rows[0][1].clone(), rows[0][2].clone())
}

// ---------------------------------------------------------------- --since

#[test]
fn since_counts_back_from_the_database_clock_in_every_unit() {
    each_backend(|db| {
        release(db, "1.0.0"); // creates the ledger
        let ids = insert_aged(
            db,
            "dev",
            &[
                (30 * 86_400, "30d"),
                (10 * 86_400, "10d"),
                (3 * 86_400, "3d"),
                (5 * 3600, "5h"),
                (10 * 60, "10m"),
                (20, "20s"),
            ],
        );
        let all = ["30d", "10d", "3d", "5h", "10m", "20s"];
        for (when, want) in [
            ("90s", &all[5..]),
            ("1m", &all[5..]),
            ("30m", &all[4..]),
            ("6h", &all[3..]),
            ("4d", &all[2..]),
            ("2w", &all[1..]),
            ("5w", &all[..]),
        ] {
            let (got, total) = since(db, "dev", when);
            assert_eq!(got, names(want), "--since {when} on {:?}", db.backend);
            assert_eq!(total, want.len() as i64, "--since {when}");
        }

        // Absolute times: just before and just after the 5h row, in UTC and
        // with offsets, which are converted to UTC.
        let t = date_log(db, ids["5h"]);
        let before = t - Span::seconds(1);
        let after = t + Span::seconds(1);
        let plus_two = FixedOffset::east_opt(2 * 3600).expect("offset");
        let minus_530 = FixedOffset::west_opt(5 * 3600 + 1800).expect("offset");
        let rfc = |at: NaiveDateTime, zone: FixedOffset| {
            at.and_utc()
                .with_timezone(&zone)
                .format("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        };
        for (when, want) in [
            (before.format("%Y-%m-%dT%H:%M:%SZ").to_string(), &all[3..]),
            (rfc(before, plus_two), &all[3..]),
            (rfc(before, minus_530), &all[3..]),
            (before.format("%Y-%m-%d %H:%M:%S").to_string(), &all[3..]),
            (after.format("%Y-%m-%dT%H:%M:%SZ").to_string(), &all[4..]),
            (rfc(after, plus_two), &all[4..]),
            (after.format("%Y-%m-%d %H:%M:%S").to_string(), &all[4..]),
        ] {
            let (got, _) = since(db, "dev", &when);
            assert_eq!(got, names(want), "--since {when} on {:?}", db.backend);
        }

        // Text output agrees.
        let out = db
            .expect(&["audit", "--env", "dev", "--since", "6h"], 0)
            .stdout;
        assert!(
            out.contains("5h") && out.contains("20s") && !out.contains("3d"),
            "{out}"
        );
    });
}

#[test]
fn since_refuses_what_it_cannot_read_and_says_what_to_write() {
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    release(&db, "1.0.0");
    let before = db.snapshot();
    for (bad, says) in [
        ("1y", "unknown unit"),
        ("1.5h", "unknown unit"),
        ("10", "no unit"),
        ("yesterday", "is not a time"),
        ("2026-11-31", "is not a time"),
        ("2026-11-30T12:00:00", "no time zone"),
        ("3651d", "too long"),
    ] {
        let r = db.expect(&["audit", "--since", bad], 1);
        assert!(
            r.stderr.contains(says) && r.stderr.contains(bad),
            "--since {bad}: {}",
            r.stderr
        );
        if says != "too long" && says != "no time zone" {
            assert!(
                r.stderr.contains("1w") && r.stderr.contains("2026-11-30T12:00:00Z"),
                "--since {bad} gives no examples: {}",
                r.stderr
            );
        }
        assert!(r.stdout.is_empty(), "{}", r.stdout);
    }
    assert_eq!(db.snapshot(), before);
}

// ---------------------------------------------------------------- not shown

#[test]
fn audit_says_how_many_older_rows_it_did_not_show() {
    each_backend(|db| {
        release(db, "1.0.0");
        // 1,000 + 300 rows about prod in two statements.
        let digits = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
             UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
             UNION ALL SELECT 8 UNION ALL SELECT 9)";
        let three = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2)";
        for (a, b, c) in [(digits, digits, digits), (digits, digits, three)] {
            db.query(&format!(
                "INSERT INTO audit_logs (action, message, acteur, id_env) \
                 SELECT 'test.bulk', 'bulk row', 'tester', \
                 (SELECT id FROM environnements WHERE nom = 'prod') \
                 FROM {a} a, {b} b, {c} c"
            ));
        }
        assert_eq!(
            db.scalar(
                "SELECT COUNT(*) FROM audit_logs a JOIN environnements e ON e.id = a.id_env \
                 WHERE e.nom = 'prod'"
            ),
            "1300"
        );
        let newest: Vec<i64> = db
            .query(
                "SELECT a.id FROM audit_logs a JOIN environnements e ON e.id = a.id_env \
                 WHERE e.nom = 'prod' ORDER BY a.id DESC LIMIT 50",
            )
            .iter()
            .rev()
            .map(|r| r[0].parse().expect("id"))
            .collect();

        // Text: the newest 50, then the line that says how many were left out.
        let out = db.expect(&["audit", "--env", "prod"], 0).stdout;
        assert_eq!(
            out.trim_end().lines().last(),
            Some("… 1,250 older rows not shown; use --limit N or --since"),
            "{out}"
        );
        assert_eq!(out.matches("test.bulk").count(), 50, "{out}");

        // JSON: the same rows, and the total that matched.
        let j = db
            .expect(&["audit", "--env", "prod", "--output", "json"], 0)
            .json();
        assert_eq!(j["total"], 1300, "{j:#}");
        let ids: Vec<i64> = j["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(ids, newest);

        let out = db
            .expect(&["audit", "--env", "prod", "--limit", "1299"], 0)
            .stdout;
        assert_eq!(
            out.trim_end().lines().last(),
            Some("… 1 older row not shown; use --limit N or --since"),
        );
        // All of them: no note, and the total is the number shown.
        let out = db
            .expect(&["audit", "--env", "prod", "--limit", "1300"], 0)
            .stdout;
        assert!(
            !out.contains("not shown"),
            "{}",
            out.lines().last().unwrap_or("")
        );
        let j = db
            .expect(
                &[
                    "audit", "--env", "prod", "--limit", "5000", "--output", "json",
                ],
                0,
            )
            .json();
        assert_eq!(j["total"], 1300);
        assert_eq!(j["rows"].as_array().map(Vec::len), Some(1300));

        // The total counts what the filter matches, nothing else.
        let j = db
            .expect(&["audit", "--limit", "1", "--output", "json"], 0)
            .json();
        let everything: i64 = db
            .scalar("SELECT COUNT(*) FROM audit_logs")
            .parse()
            .expect("count");
        assert_eq!(j["total"], everything);
        let j = db
            .expect(&["audit", "--env", "dev", "--output", "json"], 0)
            .json();
        assert_eq!(j["total"], 0);
        assert_eq!(j["rows"], serde_json::json!([]));
        let out = db.expect(&["audit", "--env", "dev"], 0).stdout;
        assert!(!out.contains("not shown"), "{out}");
    });
}

// ---------------------------------------------------------------- --seed

/// Runs `reconcile --seed 8 --failure-rate 0.5` until in sync, at most three
/// rounds (the default `max_attempts`); returns the exit codes and every run's
/// outcome as (deployment, attempt, action).
fn seeded_reconcile(db: &TestDb) -> (Vec<i32>, Vec<(String, String)>) {
    declare(
        db,
        "releases:\n  - { version: \"1.0.0\", tag: v1.0.0 }\n\
         environments:\n  dev: { release: \"1.0.0\" }\n  staging: { release: \"1.0.0\" }\n  \
         prod: { release: \"1.0.0\" }\n",
    );
    let mut codes = Vec::new();
    for _ in 0..3 {
        let r = db.run(&[
            "reconcile",
            "--manifests",
            "manifests",
            "--duration",
            "0s",
            "--failure-rate",
            "0.5",
            "--seed",
            "8",
        ]);
        codes.push(r.code);
        assert!(
            r.code == 0 || r.code == 3,
            "reconcile exited {}: {}{}",
            r.code,
            r.stdout,
            r.stderr
        );
        if r.code == 0 {
            break;
        }
    }
    let runs = db
        .query(
            "SELECT e.nom, a.action FROM audit_logs a JOIN environnements e ON e.id = a.id_env \
             WHERE a.action IN ('deployment.succeeded', 'deployment.failed') ORDER BY a.id",
        )
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    (codes, runs)
}

#[test]
fn a_seeded_reconcile_draws_per_deployment_and_attempt_and_converges() {
    let mut first: Option<Vec<(String, String)>> = None;
    each_backend(|db| {
        let (codes, runs) = seeded_reconcile(db);
        assert_eq!(
            codes.last(),
            Some(&0),
            "never converged: {codes:?} {runs:?}"
        );
        assert!(
            runs.iter().any(|(_, a)| a == "deployment.failed"),
            "no draw failed: the test proves nothing with seed 8: {runs:?}"
        );
        // Each environment succeeded in the end, after failed attempts for some:
        // a retry draws anew.
        for env in ["dev", "staging", "prod"] {
            let mine: Vec<&str> = runs
                .iter()
                .filter(|(e, _)| e == env)
                .map(|(_, a)| a.as_str())
                .collect();
            assert_eq!(
                mine.last(),
                Some(&"deployment.succeeded"),
                "{env}: {runs:?}"
            );
            assert_eq!(
                db.scalar(&format!(
                    "SELECT d.attempts FROM deploiements d JOIN environnements e \
                     ON e.id = d.id_env WHERE e.nom = '{env}' AND d.etat = 'réussi'"
                )),
                mine.len().to_string(),
                "{env}: one attempt per run"
            );
        }
        // The environments' first draws differ: not one draw for all.
        let firsts: Vec<&str> = ["dev", "staging", "prod"]
            .iter()
            .map(|env| {
                runs.iter()
                    .find(|(e, _)| e == env)
                    .map(|(_, a)| a.as_str())
                    .expect("a run")
            })
            .collect();
        assert!(
            firsts.iter().any(|a| *a != firsts[0]),
            "every environment drew the same: {runs:?}"
        );
        // Reproducible: the same seed gives the same outcomes, deployment by
        // deployment and attempt by attempt, on a fresh ledger and on every backend.
        let again = TestDb::new(db.backend).expect("the same backend again");
        assert_eq!(seeded_reconcile(&again), (codes, runs.clone()));
        match &first {
            None => first = Some(runs),
            Some(f) => assert_eq!(&runs, f, "{:?} drew differently", db.backend),
        }
    });
}

#[test]
fn a_command_executor_is_told_its_attempt() {
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    // Fails its first attempt, succeeds its second.
    script(
        &db,
        "deploy.sh",
        "#!/bin/sh\necho \"$SHIPCTL_DEPLOY_ID:$SHIPCTL_ATTEMPT\" >> attempts.log\n\
         [ \"$SHIPCTL_ATTEMPT\" -ge 2 ]\n",
    );
    declare(
        &db,
        "releases:\n  - { version: \"1.0.0\", tag: v1.0.0 }\n\
         environments:\n  dev: { release: \"1.0.0\", executor: { command: { run: [\"./deploy.sh\"] } } }\n",
    );
    db.expect(&["reconcile", "--manifests", "manifests"], 3);
    db.expect(&["reconcile", "--manifests", "manifests"], 0);
    let log = std::fs::read_to_string(db.dir.path().join("attempts.log")).expect("log");
    assert_eq!(log, "1:1\n1:2\n");
}

// ---------------------------------------------------------------- leases

#[test]
fn approve_recovers_a_dead_holder_in_its_environment() {
    each_backend(|db| {
        declare(
            db,
            "releases:\n  - { version: \"0.9.0\", tag: v0.9.0 }\n  - { version: \"1.0.0\", tag: v1.0.0 }\n\
             environments:\n  prod: { release: \"0.9.0\", gates: { qa: { approvals: 1 } } }\n",
        );
        // Plans 0.9.0 and waits for its approval.
        db.expect(&["reconcile", "--manifests", "manifests"], 4);
        let d1: i64 = db
            .scalar("SELECT MAX(id) FROM deploiements")
            .parse()
            .expect("id");
        db.expect(
            &[
                "approve",
                "--deploy-id",
                &d1.to_string(),
                "--gate",
                "qa",
                "--by",
                "alice",
            ],
            0,
        );
        let r2 = db.scalar("SELECT id FROM releases WHERE version = '1.0.0'");
        let d2 = db
            .expect(&["deploy", "--release", &r2, "--env", "prod"], 0)
            .id();
        let holder = dead_holder(db, d1);

        let out = db
            .expect(
                &[
                    "approve",
                    "--deploy-id",
                    &d2.to_string(),
                    "--gate",
                    "qa",
                    "--by",
                    "alice",
                ],
                0,
            )
            .stdout;
        assert_eq!(
            out.lines().next(),
            Some(
                format!(
                    "recovered: deployment {d1} had a dead holder (lease expired): recorded as échec"
                )
                .as_str()
            ),
            "{out}"
        );
        assert!(out.contains("alice approved deployment"), "{out}");
        assert_eq!(db.state(d1), "échec");
        let (before, after, message) = expired_row(db, d1);
        assert_eq!((before.as_str(), after.as_str()), ("en_cours", "échec"));
        assert!(message.contains(&holder), "{message}");
        // Recovered once: the next writer finds nothing to recover.
        let j = db
            .expect(
                &[
                    "approve",
                    "--deploy-id",
                    &d2.to_string(),
                    "--gate",
                    "qa",
                    "--by",
                    "bob",
                    "--output",
                    "json",
                ],
                0,
            )
            .json();
        assert!(j["recovered_id"].is_null(), "{j:#}");
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM deploiements WHERE etat = 'en_cours'"),
            "0"
        );
    });
}

#[test]
fn unpin_recovers_a_dead_holder_in_its_environment() {
    each_backend(|db| {
        let r1 = release(db, "1.0.0");
        let r2 = release(db, "1.1.0");
        let r3 = release(db, "1.2.0");
        let d1 = plan(db, r1, "staging");
        succeed(db, d1);
        let d2 = plan(db, r2, "staging");
        succeed(db, d2);
        // Rolling the live 1.1.0 back pins staging to 1.0.0.
        db.expect(
            &[
                "rollback",
                "--deploy-id",
                &d2.to_string(),
                "--duration",
                "0s",
                "--failure-rate",
                "0",
            ],
            0,
        );
        assert_ne!(
            db.scalar(
                "SELECT COALESCE(pinned_release_id, 0) FROM environnements WHERE nom = 'staging'"
            ),
            "0"
        );
        let d4 = plan(db, r3, "staging");
        let holder = dead_holder(db, d4);

        let j = db
            .expect(&["unpin", "--env", "staging", "--output", "json"], 0)
            .json();
        assert_eq!(j["recovered_id"], d4, "{j:#}");
        assert_eq!(j["pin"]["version"], "1.0.0", "{j:#}");
        assert_eq!(db.state(d4), "échec");
        let (before, after, message) = expired_row(db, d4);
        assert_eq!((before.as_str(), after.as_str()), ("en_cours", "échec"));
        assert!(message.contains(&holder), "{message}");
        assert_eq!(
            db.scalar(
                "SELECT COALESCE(pinned_release_id, 0) FROM environnements WHERE nom = 'staging'"
            ),
            "0"
        );
    });
}
