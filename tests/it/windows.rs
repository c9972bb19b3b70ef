//! Deploy windows through the real binary (DESIGN §10), on every backend: a
//! closed window leaves the deployment pending and claims nothing, while
//! approvals and command gates still run; `validate --override-window --reason`
//! deploys anyway, audited; a rollback goes through a closed window, audited;
//! `status` and the dry run say open or closed and until when; and a watch
//! deploys as soon as the window opens.
//!
//! The windows are computed from the database's clock when the test runs, with
//! whole days of margin, so that they are closed (or open) now whatever the time
//! of day: a one-off freeze from yesterday to the day after tomorrow is closed
//! for at least a day from now.

use crate::common::*;

use jiff::civil::{DateTime, DateTimeRound};
use jiff::tz::TimeZone;
use jiff::{RoundMode, SignedDuration, Timestamp, ToSpan, Unit};
use serde_json::{Value, json};
use sqlx::Connection;
use std::time::Duration;

// ---------------------------------------------------------------- helpers

const SIM_OK: &str = "{ simulate: { duration: 0s, failure_rate: 0 } }";

/// The database's clock, in UTC, to the second. SQLite's is this machine's,
/// read in a database of its own (the test's file may not exist yet).
fn db_now(db: &TestDb) -> Timestamp {
    let sql = match db.backend {
        Backend::Sqlite => "SELECT strftime('%Y-%m-%d %H:%M:%S', 'now')",
        Backend::Postgres => "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')",
        Backend::MySql => "SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:%s')",
    };
    let text = if db.backend == Backend::Sqlite {
        block_on(async {
            let mut c = sqlx::AnyConnection::connect("sqlite::memory:")
                .await
                .expect("an in-memory SQLite");
            sqlx::query_scalar::<_, String>(sql)
                .fetch_one(&mut c)
                .await
                .expect("SQLite's clock")
        })
    } else {
        db.scalar(sql)
    };
    let civil: DateTime = text
        .replace(' ', "T")
        .parse()
        .unwrap_or_else(|e| panic!("the database clock reads {text:?}: {e}"));
    utc(civil)
}

/// A wall-clock time in UTC, as an instant.
fn utc(at: DateTime) -> Timestamp {
    TimeZone::UTC.to_timestamp(at).expect("a UTC time")
}

/// Today's date by the database clock, moved by `days`, as a one-off
/// window's bound at midnight: "2026-12-01 00:00".
fn midnight(now: Timestamp, days: i64) -> DateTime {
    TimeZone::UTC
        .to_datetime(now)
        .date()
        .checked_add(days.days())
        .expect("a date")
        .to_datetime(jiff::civil::Time::midnight())
}

fn hh_mm(at: DateTime) -> String {
    at.strftime("%Y-%m-%d %H:%M").to_string()
}

/// How the binary names an instant in UTC: "Wed 2026-12-02 00:00 UTC".
fn shown(at: DateTime) -> String {
    format!("{} UTC", at.strftime("%a %Y-%m-%d %H:%M"))
}

/// RFC 3339, as JSON gives `opens_at` and `next_change`.
fn rfc3339(at: DateTime) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// prod's `windows:` block, built from the database clock, with when it next
/// changes and what the binary says about it.
struct Windows {
    yaml: String,
    /// When prod next opens (closed now) or closes (open now).
    changes: DateTime,
    /// What refusals, `status` and the dry run say.
    message: String,
}

/// A one-off deny window, as a manifest line.
fn deny_once(from: DateTime, to: DateTime) -> String {
    format!(
        "        - {{ from: \"{}\", to: \"{}\", reason: change freeze }}\n",
        hh_mm(from),
        hh_mm(to)
    )
}

impl Windows {
    /// Closed now and for at least a day: a freeze from yesterday 00:00 to the
    /// day after tomorrow 00:00, UTC.
    fn closed(db: &TestDb) -> Windows {
        let now = db_now(db);
        let ends = midnight(now, 2);
        Windows {
            yaml: format!(
                "    windows:\n      deny:\n{}",
                deny_once(midnight(now, -1), ends)
            ),
            changes: ends,
            message: format!("prod is closed until {} (change freeze)", shown(ends)),
        }
    }

    /// Open now: allowed every day from 00:00 to 24:00, until a one-day freeze
    /// that starts in three days (midnight UTC).
    fn open(db: &TestDb) -> Windows {
        let now = db_now(db);
        let closes = midnight(now, 3);
        Windows {
            yaml: format!(
                "    windows:\n      allow:\n        - {{ days: [mon, tue, wed, thu, fri, sat, sun], \
                 from: \"00:00\", to: \"24:00\" }}\n      deny:\n{}",
                deny_once(closes, midnight(now, 4))
            ),
            changes: closes,
            message: format!("prod is open until {}", shown(closes)),
        }
    }

    /// As JSON gives it (`window` in status and the dry run).
    fn json(&self, open: bool) -> Value {
        json!({ "open": open, "message": self.message, "next_change": rfc3339(self.changes) })
    }
}

/// prod on `release` (every release of `releases` declared), with `windows`
/// (a `windows:` block, or empty) and `gates` (a `gates:` block, or empty).
fn manifest(releases: &[&str], release: &str, windows: &str, gates: &str) -> String {
    let mut s = String::from("releases:\n");
    for r in releases {
        s.push_str(&format!("  - {{ version: \"{r}\", tag: v{r} }}\n"));
    }
    s.push_str(&format!(
        "environments:\n  prod:\n    release: \"{release}\"\n{windows}{gates}    executor: {SIM_OK}\n"
    ));
    s
}

fn reconcile(db: &TestDb, code: i32) -> Run {
    db.expect(&["reconcile", "--manifests", "manifests"], code)
}

fn json(db: &TestDb, args: &[&str], code: i32) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    db.expect(&args, code).json()
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.scalar(sql).parse().expect("a count")
}

/// The one deployment of prod, planned by the last reconcile.
fn last_deployment(db: &TestDb) -> i64 {
    count(db, "SELECT MAX(id) FROM deploiements")
}

/// Nothing claimed: pending, no attempt, no fencing token, no lease, no
/// `deployment.started` row.
fn assert_unclaimed(db: &TestDb, id: i64, state: &str) {
    let row = db.query(&format!(
        "SELECT etat, attempts, fencing_token, lease_holder FROM deploiements WHERE id = {id}"
    ));
    assert_eq!(
        row[0],
        [state, "0", "NULL", "NULL"],
        "deployment {id} on {:?}",
        db.backend
    );
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM audit_logs WHERE action = 'deployment.started'"
        ),
        0,
        "{:?}: something was claimed",
        db.backend
    );
}

/// (message, actor) of the audit rows with `action` for deployment `id`.
fn audit_messages(db: &TestDb, id: i64, action: &str) -> Vec<(String, String)> {
    db.query(&format!(
        "SELECT message, acteur FROM audit_logs \
         WHERE id_deploiement = {id} AND action = '{action}' ORDER BY id"
    ))
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect()
}

/// `validate --deploy-id ID --override-window --reason REASON` and `extra`.
fn override_window(db: &TestDb, id: &str, reason: &str, extra: &[&str], code: i32) -> Run {
    let mut args = vec![
        "validate",
        "--deploy-id",
        id,
        "--override-window",
        "--reason",
        reason,
    ];
    args.extend(extra);
    db.expect(&args, code)
}

// ---------------------------------------------------------------- closed

#[test]
fn a_closed_window_leaves_the_deployment_pending_and_claims_nothing() {
    each_backend(|db| {
        let freeze = Windows::closed(db);
        declare(db, &manifest(&["1.0"], "1.0", &freeze.yaml, ""));

        let r = reconcile(db, 4);
        assert!(
            r.stdout.contains(&format!("! {}", freeze.message)),
            "{:?}:\n{}",
            db.backend,
            r.stdout
        );
        let id = last_deployment(db);
        // No gates: validé, and left there.
        assert_unclaimed(db, id, "validé");

        // Again, in JSON: the same deployment, kind "closed", when it opens.
        let j = json(db, &["reconcile", "--manifests", "manifests"], 4);
        let outcome = &j["environments"][0]["outcome"];
        assert_eq!(
            *outcome,
            json!({
                "kind": "closed",
                "message": freeze.message,
                "opens_at": rfc3339(freeze.changes),
            }),
            "{j:#}"
        );
        assert_eq!(last_deployment(db), id, "a second deployment was planned");
        assert_unclaimed(db, id, "validé");

        // validate says the same, with the way to override it.
        let r = db.expect(&["validate", "--deploy-id", &id.to_string()], 4);
        assert!(
            r.stderr.contains(&format!("error: {}", freeze.message)),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains(&format!(
                "it stays validé; approvals and gates may be given meanwhile. \
                 `shipctl validate --deploy-id {id} --override-window --reason TEXT` \
                 deploys anyway (audited)"
            )),
            "{}",
            r.stderr
        );
        let e = json(db, &["validate", "--deploy-id", &id.to_string()], 4);
        assert_eq!(e["error"]["kind"], "blocked", "{e:#}");
        assert_eq!(e["error"]["message"], freeze.message, "{e:#}");
        assert_eq!(e["error"]["exit_code"], 4, "{e:#}");
        assert_unclaimed(db, id, "validé");
        assert_eq!(db.live("prod"), None);
    });
}

#[test]
fn approvals_and_command_gates_run_while_closed() {
    each_backend(|db| {
        let freeze = Windows::closed(db);
        script(db, "smoke.sh", "#!/bin/sh\necho ran >> smoke.ran\n");
        let gates = "    gates:\n      qa: { approvals: 1 }\n      \
                     smoke: { command: [\"./smoke.sh\"] }\n";
        declare(db, &manifest(&["1.0"], "1.0", &freeze.yaml, gates));

        // Planned by ci; the approval comes first, the window after.
        let out = db
            .cmd()
            .env("SHIPCTL_ACTOR", "ci")
            .args(["reconcile", "--manifests", "manifests"])
            .output()
            .expect("run");
        let r = Run::from(out);
        assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("waits for approval"), "{}", r.stdout);
        let id = last_deployment(db);
        assert_unclaimed(db, id, "planifié");

        // The planner's own approval is refused, whether or not the window is open.
        let id_text = id.to_string();
        let own = db.run(&approval(&id_text, "ci"));
        assert_eq!(own.code, 1, "{}", own.stderr);
        assert!(
            own.stderr.contains("ci planned deployment"),
            "{}",
            own.stderr
        );

        // An approval is recorded while closed.
        db.expect(&approval(&id_text, "alice"), 0);
        assert_eq!(
            db.query("SELECT acteur, outcome FROM gate_results ORDER BY id"),
            [["alice", "approved"]],
            "{:?}",
            db.backend
        );

        // The next reconcile runs the command gate, validates, and stops at the window.
        let r = reconcile(db, 4);
        assert!(r.stdout.contains(&freeze.message), "{}", r.stdout);
        let ran = std::fs::read_to_string(db.dir.path().join("smoke.ran")).unwrap_or_default();
        assert_eq!(ran, "ran\n", "the command gate ran once");
        assert_eq!(
            db.query("SELECT gate, outcome FROM gate_results ORDER BY id"),
            [["qa", "approved"], ["smoke", "passed"]],
            "{:?}",
            db.backend
        );
        assert_unclaimed(db, id, "validé");
        let audit: Vec<String> = db.audit(id).into_iter().map(|(a, _, _)| a).collect();
        assert_eq!(
            audit,
            [
                "deployment.planned",
                "gate.waiting",
                "gate.approved",
                "gate.passed",
                "deployment.validated"
            ],
            "{:?}",
            db.backend
        );

        // Validated already: the gates are not run again at the next try.
        reconcile(db, 4);
        let ran = std::fs::read_to_string(db.dir.path().join("smoke.ran")).unwrap_or_default();
        assert_eq!(ran, "ran\n", "the command gate ran again");
        assert_unclaimed(db, id, "validé");
    });
}

// ---------------------------------------------------------------- override

#[test]
fn override_window_with_a_reason_deploys_and_is_audited() {
    each_backend(|db| {
        let freeze = Windows::closed(db);
        declare(db, &manifest(&["1.0"], "1.0", &freeze.yaml, ""));
        reconcile(db, 4);
        let id = last_deployment(db).to_string();
        let before = db.snapshot();

        // Usage errors, before anything is read or written.
        let r = db.expect(&["validate", "--deploy-id", &id, "--override-window"], 1);
        assert!(r.stderr.contains("--reason <TEXT>"), "{}", r.stderr);
        let r = db.expect(&["validate", "--deploy-id", &id, "--reason", "hotfix"], 1);
        assert!(r.stderr.contains("--override-window"), "{}", r.stderr);
        for (reason, says) in [
            ("hot\x1b[31mfix", "control character"),
            ("line one\nline two", "control character"),
            ("", "--reason is empty"),
        ] {
            let r = override_window(db, &id, reason, &[], 1);
            assert!(r.stderr.contains(says), "{reason:?}: {}", r.stderr);
        }
        assert_eq!(db.snapshot(), before, "a refused override wrote something");

        let r = override_window(db, &id, "hotfix", &["--output", "json"], 0);
        assert_eq!(r.json()["deployment"]["state"], "réussi", "{}", r.stdout);
        assert_eq!(
            r.json()["closed_window"],
            freeze.message.as_str(),
            "{}",
            r.stdout
        );
        assert_eq!(db.live("prod").as_deref(), Some("1.0"));
        let id: i64 = id.parse().expect("id");
        assert_eq!(
            audit_messages(db, id, "window.overridden"),
            [(
                format!(
                    "1.0 to prod deployed in a closed window: {}; reason: hotfix",
                    freeze.message
                ),
                "tester".to_string()
            )],
            "{:?}",
            db.backend
        );
        // Audited before the claim it allowed.
        let actions: Vec<String> = db.audit(id).into_iter().map(|(a, _, _)| a).collect();
        assert_eq!(
            actions,
            [
                "deployment.planned",
                "deployment.validated",
                "window.overridden",
                "deployment.started",
                "deployment.succeeded"
            ],
            "{:?}",
            db.backend
        );
        let text = db
            .expect(&["audit", "--deploy-id", &id.to_string()], 0)
            .stdout;
        assert!(
            text.contains("window.overridden") && text.contains("reason: hotfix"),
            "{text}"
        );
    });
}

// ---------------------------------------------------------------- rollback

#[test]
fn a_rollback_goes_through_a_closed_window_and_is_audited() {
    each_backend(|db| {
        // Deployed while open (no windows)...
        declare(db, &manifest(&["1.0"], "1.0", "", ""));
        reconcile(db, 0);
        declare(db, &manifest(&["1.0", "2.0"], "2.0", "", ""));
        reconcile(db, 0);
        let bad = last_deployment(db);
        assert_eq!(db.live("prod").as_deref(), Some("2.0"));

        // ... then a freeze: the manifests are in sync, nothing to wait for.
        let freeze = Windows::closed(db);
        declare(db, &manifest(&["1.0", "2.0"], "2.0", &freeze.yaml, ""));
        reconcile(db, 0);

        let r = db.expect(&["rollback", "--deploy-id", &bad.to_string()], 0);
        assert!(
            r.stdout.contains("release 1.0 restored in prod"),
            "{}",
            r.stdout
        );
        assert!(
            r.stdout
                .contains("went through anyway (audited window.overridden)"),
            "{}",
            r.stdout
        );
        assert_eq!(db.live("prod").as_deref(), Some("1.0"));
        let restore = last_deployment(db);
        assert_ne!(restore, bad);
        assert_eq!(db.state(restore), "réussi");
        assert_eq!(
            audit_messages(db, restore, "window.overridden"),
            [(
                format!(
                    "rollback of deployment {bad} in a closed window: {}; a rollback is \
                     allowed while closed",
                    freeze.message
                ),
                "tester".to_string()
            )],
            "{:?}",
            db.backend
        );
        // While the rollback pin holds, nothing else is planned; the window is still closed.
        let st = json(db, &["status", "--env", "prod"], 0);
        assert_eq!(st["window"]["open"], false, "{st:#}");
    });
}

// ---------------------------------------------------------------- status, dry run

#[test]
fn status_and_the_dry_run_say_closed_or_open_and_until_when() {
    each_backend(|db| {
        // No windows declared: status says nothing about them.
        declare(db, &manifest(&["1.0"], "1.0", "", ""));
        reconcile(db, 0);
        let st = json(db, &["status", "--env", "prod"], 0);
        assert_eq!(st["window"], Value::Null, "{st:#}");
        let text = db.expect(&["status", "--env", "prod"], 0).stdout;
        assert!(!text.contains("window"), "{text}");

        // Closed: the dry run says what would wait for it, before and after
        // the policy is stored.
        let freeze = Windows::closed(db);
        declare(db, &manifest(&["1.0", "2.0"], "2.0", &freeze.yaml, ""));
        let closed = freeze.json(false);
        for stored in [false, true] {
            let r = db.expect(&["reconcile", "--manifests", "manifests", "--dry-run"], 2);
            assert!(
                r.stdout.contains(&format!("waits: {}", freeze.message)),
                "stored: {stored}\n{}",
                r.stdout
            );
            let j = json(
                db,
                &["reconcile", "--manifests", "manifests", "--dry-run"],
                2,
            );
            let would = &j["would_run"];
            assert_eq!(would.as_array().map(Vec::len), Some(1), "{j:#}");
            assert_eq!(would[0]["env"], "prod", "{j:#}");
            assert_eq!(would[0]["window"], closed, "stored: {stored}\n{j:#}");
            if !stored {
                reconcile(db, 4);
            }
        }
        let text = db.expect(&["status", "--env", "prod"], 0).stdout;
        assert!(
            text.contains(&format!("  window       {}\n", freeze.message)),
            "{text}"
        );
        let st = json(db, &["status", "--env", "prod"], 0);
        assert_eq!(st["window"], closed, "{st:#}");

        // Open, until a freeze in three days: the dry run runs it without waiting.
        let open = Windows::open(db);
        declare(db, &manifest(&["1.0", "2.0"], "2.0", &open.yaml, ""));
        let r = db.expect(&["reconcile", "--manifests", "manifests", "--dry-run"], 2);
        assert!(!r.stdout.contains("waits:"), "{}", r.stdout);
        let j = json(
            db,
            &["reconcile", "--manifests", "manifests", "--dry-run"],
            2,
        );
        let opened = open.json(true);
        assert_eq!(j["would_run"][0]["window"], opened, "{j:#}");
        reconcile(db, 0);
        assert_eq!(db.live("prod").as_deref(), Some("2.0"));
        let text = db.expect(&["status", "--env", "prod"], 0).stdout;
        assert!(
            text.contains(&format!("  window       {}\n", open.message)),
            "{text}"
        );
        let st = json(db, &["status", "--env", "prod"], 0);
        assert_eq!(st["window"], opened, "{st:#}");
    });
}

// ---------------------------------------------------------------- watch

/// The slow one (up to about 70 s): windows are set to the minute ("HH:MM"),
/// so a window that opens a few seconds from now opens at the next minute
/// boundary, and the test waits for it. SQLite only: what it checks (the
/// watch wakes at the opening rather than at its interval) does not depend on
/// the backend, and the other tests cover the window on each.
#[test]
fn watch_deploys_within_two_seconds_of_the_window_opening() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let now = db_now(&db);
    // The next minute boundary, at least 8 s away: time to start the watch
    // and see it report the closed window first.
    let mut opens = TimeZone::UTC
        .to_datetime(now)
        .round(
            DateTimeRound::new()
                .smallest(Unit::Minute)
                .mode(RoundMode::Ceil),
        )
        .expect("round to the minute");
    if utc(opens).duration_since(now) < SignedDuration::from_secs(8) {
        opens = opens.checked_add(1.minute()).expect("a minute later");
    }
    let windows = format!(
        "    windows:\n      deny:\n{}",
        deny_once(opens.checked_sub(1.day()).expect("a day before"), opens)
    );
    declare(&db, &manifest(&["1.0"], "1.0", &windows, ""));

    // --interval 1h: only the window's opening can wake it in time.
    let mut w = Proc::start(
        &db,
        &[
            "reconcile",
            "--watch",
            "--manifests",
            "manifests",
            "--interval",
            "1h",
        ],
    );
    w.wait_stderr("watch: reconciling (start)", 1, Duration::from_secs(20));
    // Its first round finds the window closed and says until when.
    let closed = format!("! prod is closed until {} (change freeze)", shown(opens));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !w.stdout().contains(&closed) {
        assert!(
            std::time::Instant::now() < deadline && w.running(),
            "the watch did not report {closed:?}\n{}",
            w.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        db.live("prod"),
        None,
        "deployed before the window opened\n{}",
        w.log()
    );

    // Then it wakes at the opening and deploys.
    let opened = utc(opens);
    let wait = opened.duration_since(Timestamp::now()) + SignedDuration::from_secs(15);
    w.wait_until(
        "1.0 to be live once the window opens",
        Duration::try_from(wait).unwrap_or(Duration::from_secs(15)),
        || db.live("prod").is_some(),
    );
    let seen = Timestamp::now();
    assert!(
        seen.duration_since(opened) <= SignedDuration::from_secs(2),
        "1.0 went live at {seen}, more than 2 s after the window opened at {opened}\n{}",
        w.log()
    );
    // Not claimed before the opening, by the database clock.
    let started = db.scalar(
        "SELECT substr(date_log, 1, 19) FROM audit_logs WHERE action = 'deployment.started'",
    );
    assert!(
        started >= opened.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        "claimed at {started}, before the window opened at {opened}"
    );
    assert!(
        w.stderr()
            .contains("watch: reconciling (a deploy window opened)"),
        "{}",
        w.log()
    );
    w.signal(libc::SIGTERM);
    let (run, _) = w.finish(Duration::from_secs(5), "SIGTERM");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}
