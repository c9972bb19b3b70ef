//! The audit log's hash chains (DESIGN §12): `audit verify` on a ledger after
//! a gated, verified story, and after rows changed, removed and inserted by
//! hand with SQL; the migration that chains a ledger written before the
//! chains; concurrent writers of the `global` chain; `audit --follow` and
//! `--output jsonl`. Every backend.

use crate::common::account::raw_sql;
use crate::common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const SIM: &str = "{ simulate: { duration: 0s, failure_rate: 0 } }";

/// dev (verified by a command), staging, and prod behind an approval gate.
fn story(db: &TestDb) {
    declare(
        db,
        &format!(
            "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\n\
             environments:\n  \
             dev: {{ release: \"1.0\", executor: {SIM}, \
             verify: {{ command: [\"true\"], retries: 1, interval: 0s }} }}\n  \
             staging: {{ release: \"1.0\", requires: dev, executor: {SIM} }}\n  \
             prod:\n    release: \"1.0\"\n    requires: staging\n    \
             gates:\n      qa: {{ approvals: 1, approvers: [alice] }}\n    \
             executor: {SIM}\n"
        ),
    );
    db.expect(&["reconcile"], 4);
    let prod = db.expect(&["status", "--env", "prod", "--output", "json"], 0);
    let waiting = prod.json()["pending"][0]["id"].to_string();
    db.expect(&approval(&waiting, "alice"), 0);
    db.expect(&["reconcile"], 0);
    assert_eq!(live_in(db, "prod").as_deref(), Some("1.0"));
    release(db, "2.0");
}

fn verify(db: &TestDb, code: i32) -> Value {
    let r = db.expect(&["audit", "verify", "--output", "json"], code);
    r.json()
}

fn one(db: &TestDb, sql: &str) -> i64 {
    db.scalar(sql)
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The problem reported for `chain` (`null`: rows in no chain).
fn problem<'a>(v: &'a Value, chain: Option<&str>) -> &'a Value {
    v["problems"]
        .as_array()
        .and_then(|p| {
            p.iter()
                .find(|p| p["chain"].as_str() == chain && (chain.is_some() || p["chain"].is_null()))
        })
        .unwrap_or_else(|| panic!("no problem reported for {chain:?}:\n{v:#}"))
}

#[test]
fn verify_names_each_row_changed_removed_or_inserted_by_hand() {
    each_backend(|db| {
        story(db);
        let v = verify(db, 0);
        assert_eq!(v["intact"], true, "{v:#}");
        let rows = one(db, "SELECT COUNT(*) FROM audit_logs");
        assert_eq!(v["rows"], rows, "{v:#}");
        for c in v["chains"].as_array().expect("chains") {
            assert!(c["rows"].as_i64() > Some(0), "every chain has rows: {v:#}");
        }
        let text = db.expect(&["audit", "verify"], 0);
        assert!(
            text.stdout
                .starts_with(&format!("✓ audit log intact: 4 chains, {rows} rows")),
            "{}",
            text.stdout
        );

        // prod: a message rewritten.
        let changed = one(
            db,
            "SELECT id FROM audit_logs WHERE chain = 'prod' ORDER BY seq LIMIT 1 OFFSET 1",
        );
        db.query(&format!(
            "UPDATE audit_logs SET message = 'approved by nobody' WHERE id = {changed}"
        ));
        // dev: a row removed from the middle.
        let gone = one(
            db,
            "SELECT id FROM audit_logs WHERE chain = 'dev' ORDER BY seq LIMIT 1 OFFSET 1",
        );
        let after_gone = one(
            db,
            "SELECT id FROM audit_logs WHERE chain = 'dev' ORDER BY seq LIMIT 1 OFFSET 2",
        );
        db.query(&format!("DELETE FROM audit_logs WHERE id = {gone}"));
        // staging: a forged row at its end, chained to the head by hand.
        db.query(
            "INSERT INTO audit_logs (id_env, action, message, acteur, date_log, chain, seq, \
             prev_hash, hash) SELECT x.id_env, 'gate.approved', 'forged', 'alice', x.date_log, \
             x.chain, x.seq + 1, x.hash, x.hash FROM (SELECT * FROM audit_logs \
             WHERE chain = 'staging' ORDER BY seq DESC LIMIT 1) x",
        );
        let forged = one(db, "SELECT MAX(id) FROM audit_logs WHERE chain = 'staging'");
        // global: its last row removed.
        let last_global = one(
            db,
            "SELECT id FROM audit_logs WHERE chain = 'global' ORDER BY seq DESC LIMIT 1",
        );
        let before_last = one(
            db,
            "SELECT id FROM audit_logs WHERE chain = 'global' ORDER BY seq DESC LIMIT 1 OFFSET 1",
        );
        db.query(&format!("DELETE FROM audit_logs WHERE id = {last_global}"));
        // And a row inserted the plain way: no chain at all.
        db.query(
            "INSERT INTO audit_logs (action, message, acteur, date_log) \
             VALUES ('gate.approved', 'approved', 'alice', '2026-11-30 12:00:00')",
        );
        let plain = one(db, "SELECT MAX(id) FROM audit_logs");

        let v = verify(db, 1);
        assert_eq!(v["intact"], false, "{v:#}");
        assert_eq!(v["problems"].as_array().map(Vec::len), Some(5), "{v:#}");
        let p = problem(&v, Some("prod"));
        assert_eq!(p["kind"], "changed", "{v:#}");
        assert_eq!(
            p["message"],
            format!("row {changed} (prod) was changed: its hash does not match its content")
        );
        let p = problem(&v, Some("dev"));
        assert_eq!(p["kind"], "missing", "{v:#}");
        assert_eq!(p["row_id"], after_gone, "{v:#}");
        assert_eq!(
            p["message"],
            format!("a row is missing before row {after_gone} (dev)")
        );
        let p = problem(&v, Some("staging"));
        assert_eq!(p["kind"], "inserted", "{v:#}");
        assert_eq!(p["row_id"], forged, "{v:#}");
        let p = problem(&v, Some("global"));
        assert_eq!(p["kind"], "missing", "{v:#}");
        assert_eq!(p["row_id"], before_last, "{v:#}");
        assert!(
            p["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("a row is missing at the end of the chain (global)")),
            "{v:#}"
        );
        let p = problem(&v, None);
        assert_eq!(p["kind"], "inserted", "{v:#}");
        assert_eq!(
            p["message"],
            format!("row {plain} was inserted: it belongs to no chain")
        );
        // Text: the same, one line per problem, exit 1.
        let text = db.expect(&["audit", "verify"], 1);
        assert!(
            text.stdout.contains(&format!(
                "✗ row {changed} (prod) was changed: its hash does not match its content"
            )),
            "{}",
            text.stdout
        );
        assert!(
            text.stdout.starts_with("✗ audit log altered: 5 problems"),
            "{}",
            text.stdout
        );
    });
}

#[test]
fn each_tampering_alone_is_found() {
    each_backend(|db| {
        let r = release(db, "1.0");
        for env in ["dev", "prod"] {
            let d = plan(db, r, env);
            succeed(db, d);
        }
        verify(db, 0);
        let rows = db
            .query("SELECT id, action, message FROM audit_logs WHERE chain = 'prod' ORDER BY seq");
        let (id, action) = (&rows[1][0], &rows[1][1]);
        // Each change undone before the next: verify passes again after each.
        let cases = [
            format!("UPDATE audit_logs SET acteur = 'mallory' WHERE id = {id}"),
            format!(
                "UPDATE audit_logs SET date_log = date_log + INTERVAL '1' SECOND WHERE id = {id}"
            ),
            format!("UPDATE audit_logs SET action = 'x' WHERE id = {id}"),
            format!("UPDATE audit_logs SET id_env = NULL WHERE id = {id}"),
            format!("UPDATE audit_logs SET etat_apres = NULL WHERE id = {id}"),
        ];
        for (i, sql) in cases.iter().enumerate() {
            // SQLite keeps dates as text: move it by a second the SQLite way.
            let sql = if db.backend == Backend::Sqlite && i == 1 {
                format!(
                    "UPDATE audit_logs SET date_log = strftime('%Y-%m-%d %H:%M:%f', date_log, '+1 second') WHERE id = {id}"
                )
            } else {
                sql.clone()
            };
            let before = db.query(&format!(
                "SELECT acteur, action, id_env, etat_apres FROM audit_logs WHERE id = {id}"
            ));
            db.query(&sql);
            let v = verify(db, 1);
            let p = problem(&v, Some("prod"));
            assert_eq!(p["kind"], "changed", "{sql}: {v:#}");
            assert_eq!(p["row_id"].to_string(), *id, "{sql}: {v:#}");
            let b = &before[0];
            let put = |col: &str, val: &str| {
                if val == "NULL" {
                    format!("{col} = NULL")
                } else if col == "id_env" {
                    format!("{col} = {val}")
                } else {
                    format!("{col} = '{val}'")
                }
            };
            db.query(&format!(
                "UPDATE audit_logs SET {}, {}, {}, {} WHERE id = {id}",
                put("acteur", &b[0]),
                put("action", &b[1]),
                put("id_env", &b[2]),
                put("etat_apres", &b[3]),
            ));
            if i == 1 {
                // The date, back by the same second.
                let back = match db.backend {
                    Backend::Sqlite => format!(
                        "UPDATE audit_logs SET date_log = strftime('%Y-%m-%d %H:%M:%f', date_log, '-1 second') WHERE id = {id}"
                    ),
                    _ => format!(
                        "UPDATE audit_logs SET date_log = date_log - INTERVAL '1' SECOND WHERE id = {id}"
                    ),
                };
                db.query(&back);
            }
            let v = verify(db, 0);
            assert_eq!(v["intact"], true, "undoing {sql}: {v:#}");
        }
        assert_eq!(action, "deployment.validated");
        // A row's hash recomputed by someone who knows the encoding still
        // breaks the link to the next row: named as where the chain breaks.
        let next = &rows[2][0];
        db.query(&format!(
            "UPDATE audit_logs SET hash = '{}' WHERE id = {id}",
            "0".repeat(64)
        ));
        let v = verify(db, 1);
        assert_eq!(
            problem(&v, Some("prod"))["row_id"].to_string(),
            *id,
            "{v:#}"
        );
        db.query(&format!(
            "UPDATE audit_logs SET prev_hash = '{}' WHERE id = {next}",
            "0".repeat(64)
        ));
        let v = verify(db, 1);
        assert_eq!(
            problem(&v, Some("prod"))["row_id"].to_string(),
            *id,
            "{v:#}"
        );
    });
}

/// The schema before the chains, built from the migrations' own files, with
/// rows written the way shipctl wrote them then.
fn ledger_before_chains(db: &TestDb) -> Vec<i64> {
    let dir = match db.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
        Backend::MySql => "mysql",
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&path)
        .expect("migrations")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.get(..4).is_some_and(|v| v < "0011"))
        })
        .collect();
    files.sort();
    let url = if db.backend == Backend::Sqlite {
        format!("{}?mode=rwc", db.url)
    } else {
        db.url.clone()
    };
    raw_sql(
        &url,
        "CREATE TABLE shipctl_migrations (version BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL)",
    );
    let mut versions = Vec::new();
    for f in files {
        raw_sql(&url, &std::fs::read_to_string(&f).expect("migration"));
        let name = f.file_stem().and_then(|n| n.to_str()).expect("name");
        let version: i64 = name[..4].parse().expect("version");
        raw_sql(
            &url,
            &format!(
                "INSERT INTO shipctl_migrations (version, name) VALUES ({version}, '{}')",
                &name[5..]
            ),
        );
        versions.push(version);
    }
    raw_sql(
        &url,
        "INSERT INTO releases (version, tag_git, date_creation) VALUES ('0.9', 'v0.9', '2026-11-01 10:00:00');\
         INSERT INTO deploiements (id_release, id_env, etat, date_deploiement) VALUES (1, 3, 'réussi', '2026-11-01 10:05:00');\
         INSERT INTO audit_logs (id_deploiement, id_env, action, etat_avant, etat_apres, message, acteur, date_log) VALUES \
           (NULL, NULL, 'release.created', NULL, NULL, 'release 0.9 (tag v0.9) created with id 1', 'old', '2026-11-01 10:00:00.125'),\
           (1, 3, 'deployment.planned', NULL, 'planifié', 'release 0.9 planned for prod', 'old', '2026-11-01 10:01:00'),\
           (NULL, 1, 'policy.updated', NULL, NULL, 'dev: policy stored', 'old', '2026-11-01 10:02:00'),\
           (1, 3, 'deployment.started', 'planifié', 'en_cours', 'started', 'old', '2026-11-01 10:03:00'),\
           (1, 3, 'deployment.succeeded', 'en_cours', 'réussi', 'multi\nline', 'old', '2026-11-01 10:05:00');",
    );
    versions
}

#[test]
fn the_migration_chains_a_ledger_written_before_the_chains() {
    each_backend(|db| {
        let versions = ledger_before_chains(db);
        assert!(versions.contains(&8), "{versions:?}");
        // Reading commands never migrate: they say what to do.
        let r = db.expect(&["audit", "verify"], 1);
        assert!(
            r.stderr.contains("run any writing command once"),
            "{}",
            r.stderr
        );
        // A writing command migrates, chains the rows there, then writes its own.
        release(db, "1.0");
        let chained = db.query("SELECT id, chain, seq FROM audit_logs ORDER BY id");
        let want: Vec<Vec<String>> = [
            ("1", "global", "1"),
            ("2", "prod", "1"),
            ("3", "dev", "1"),
            ("4", "prod", "2"),
            ("5", "prod", "3"),
            ("6", "global", "2"),
        ]
        .iter()
        .map(|(a, b, c)| vec![a.to_string(), b.to_string(), c.to_string()])
        .collect();
        assert_eq!(chained, want);
        let v = verify(db, 0);
        assert_eq!(v["rows"], 6, "{v:#}");
        assert_eq!(
            db.scalar("SELECT seq FROM audit_chains WHERE chain = 'prod'"),
            "3"
        );
        // The migrated rows are held like any other.
        db.query("UPDATE audit_logs SET message = 'multi line' WHERE id = 5");
        let v = verify(db, 1);
        assert_eq!(problem(&v, Some("prod"))["row_id"], 5, "{v:#}");
    });
}

#[test]
fn concurrent_writers_of_the_global_chain_do_not_fork_it() {
    each_backend(|db| {
        release(db, "0.1");
        let writers: Vec<_> = (0..8)
            .map(|i| {
                db.cmd()
                    .args(["release", "--create", &format!("1.{i}"), "--tag", "v1"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for w in writers {
            let out = w.wait_with_output().expect("wait");
            assert!(
                out.status.success(),
                "{:?}: {}",
                db.backend,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let seqs = db.query("SELECT seq FROM audit_logs WHERE chain = 'global' ORDER BY seq");
        let want: Vec<Vec<String>> = (1..=9).map(|n| vec![n.to_string()]).collect();
        assert_eq!(seqs, want, "{:?}", db.backend);
        let v = verify(db, 0);
        assert_eq!(v["intact"], true, "{v:#}");
        // Even a writer that skipped the chain's lock could not fork it: a
        // second row at a taken place is refused by the database.
        let forked = block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::AnyConnection::connect(&db.url)
                .await
                .expect("connect");
            sqlx::query(
                "INSERT INTO audit_logs (action, message, acteur, date_log, chain, seq) \
                 VALUES ('release.created', 'fork', 'x', '2026-11-30 12:00:00', 'global', 3)",
            )
            .execute(&mut c)
            .await
        });
        let e = forked.expect_err("a second row at place 3 of global");
        assert!(
            e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()),
            "{e}"
        );
    });
}

/// JSON lines of a follower, parsed; each line must be one object.
fn lines(p: &Proc) -> Vec<Value> {
    p.stdout()
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l:?}"))
        })
        .collect()
}

#[test]
fn follow_prints_rows_another_process_writes_within_a_second() {
    each_backend(|db| {
        release(db, "1.0");
        let d = plan(db, 1, "prod");
        let follower = Proc::start(db, &["audit", "--follow", "--output", "jsonl"]);
        until(
            "the existing rows",
            Duration::from_secs(20),
            &[&follower],
            || lines(&follower).len() == 2,
        );
        // Another process writes: each row shows within a second of its commit.
        succeed(db, d);
        let written = Instant::now();
        let took = until(
            "the new rows",
            Duration::from_secs(10),
            &[&follower],
            || lines(&follower).len() == 5,
        );
        assert!(
            took < Duration::from_secs(1),
            "{:?}: new rows shown after {took:?} (written {:?} ago)\n{}",
            db.backend,
            written.elapsed(),
            follower.log()
        );
        let rows = lines(&follower);
        let ids: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5], "{rows:?}");
        assert_eq!(rows[4]["action"], "deployment.succeeded");
        // The usual filters hold: an --env prod follower shows no release row.
        let prod = Proc::start(
            db,
            &["audit", "--follow", "--env", "prod", "--output", "jsonl"],
        );
        until("prod's rows", Duration::from_secs(20), &[&prod], || {
            lines(&prod).len() == 4
        });
        release(db, "2.0");
        until(
            "the release row",
            Duration::from_secs(10),
            &[&follower],
            || lines(&follower).len() == 6,
        );
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(lines(&prod).len(), 4, "{}", prod.log());
        // SIGINT and SIGTERM end it cleanly.
        follower.signal(libc::SIGINT);
        let (run, took) = follower.finish(Duration::from_secs(5), "SIGINT");
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(took < Duration::from_secs(1), "{took:?}");
        prod.signal(libc::SIGTERM);
        let (run, _) = prod.finish(Duration::from_secs(5), "SIGTERM");
        assert_eq!(run.code, 0, "{}", run.stderr);
    });
}

/// On PostgreSQL and MariaDB an id taken earlier can commit later: the row
/// of a transaction that commits after a newer one is still shown.
#[test]
fn follow_shows_a_row_whose_id_commits_after_a_newer_one() {
    each_backend(|db| {
        if db.backend == Backend::Sqlite {
            return; // one writer at a time: ids commit in order
        }
        release(db, "1.0");
        let follower = Proc::start(db, &["audit", "--follow", "--output", "jsonl"]);
        until(
            "the existing row",
            Duration::from_secs(20),
            &[&follower],
            || lines(&follower).len() == 1,
        );
        block_on(async {
            use sqlx::Connection;
            let mut slow = sqlx::AnyConnection::connect(&db.url)
                .await
                .expect("connect");
            let mut tx = slow.begin().await.expect("begin");
            let q = |sql: &str| {
                if db.backend == Backend::Postgres {
                    let mut n = 0;
                    sql.chars()
                        .map(|c| {
                            if c == '?' {
                                n += 1;
                                format!("${n}")
                            } else {
                                c.to_string()
                            }
                        })
                        .collect()
                } else {
                    sql.to_string()
                }
            };
            // As shipctl appends to dev: the counter first, then the row (its id taken now).
            sqlx::query(sqlx::AssertSqlSafe(q(
                "UPDATE audit_chains SET seq = seq + 1 WHERE chain = 'dev'",
            )))
            .execute(&mut *tx)
            .await
            .expect("bump");
            sqlx::query(sqlx::AssertSqlSafe(q(
                "INSERT INTO audit_logs (action, message, acteur, date_log, chain, seq) \
                 VALUES ('policy.updated', 'slow', 'x', '2026-11-30 12:00:00', 'dev', 1)",
            )))
            .execute(&mut *tx)
            .await
            .expect("insert");
            // A newer id commits first, in another chain.
            release(db, "2.0");
            until(
                "the newer row",
                Duration::from_secs(10),
                &[&follower],
                || lines(&follower).len() == 2,
            );
            tx.commit().await.expect("commit");
        });
        until(
            "the older id, committed last",
            Duration::from_secs(10),
            &[&follower],
            || lines(&follower).len() == 3,
        );
        let rows = lines(&follower);
        assert_eq!(rows[2]["message"], "slow", "{rows:?}");
        assert!(rows[2]["id"].as_i64() < rows[1]["id"].as_i64(), "{rows:?}");
        follower.signal(libc::SIGTERM);
        let (run, _) = follower.finish(Duration::from_secs(5), "SIGTERM");
        assert_eq!(run.code, 0, "{}", run.stderr);
    });
}

#[test]
fn jsonl_is_for_audit_only() {
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    release(&db, "1.0");
    let r = db.expect(&["status", "--output", "jsonl"], 1);
    let e: Value = serde_json::from_str(r.stdout.trim()).expect("one JSON line");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--output jsonl is for `shipctl audit`")),
        "{e:#}"
    );
    assert_eq!(r.stdout.trim().lines().count(), 1, "{}", r.stdout);
    let r = db.expect(&["audit", "--follow", "--output", "json"], 1);
    assert!(r.stdout.contains("--output jsonl"), "{}", r.stdout);
    let r = db.expect(&["audit", "--output", "jsonl"], 0);
    let row: Value = serde_json::from_str(r.stdout.trim()).expect("one JSON line");
    assert_eq!(row["action"], "release.created");
}

/// A follower whose connection is lost says so on stderr, tries again with
/// back-off, and goes on from where it was once the server answers again.
#[test]
fn follow_survives_a_lost_connection() {
    each_backend(|db| {
        if db.backend == Backend::Sqlite {
            return; // no connection to lose
        }
        release(db, "1.0");
        let mut via = url::Url::parse(&db.url).expect("url");
        let proxy = crate::common::proxy::Proxy::start(via.port().expect("port"));
        via.set_port(Some(proxy.port)).expect("port");
        let follower = Proc::start_with(
            db,
            &["audit", "--follow", "--output", "jsonl"],
            &[("SHIPCTL_DATABASE_URL", via.as_str())],
        );
        until(
            "the existing row",
            Duration::from_secs(20),
            &[&follower],
            || lines(&follower).len() == 1,
        );
        proxy.refuse();
        until(
            "a word on stderr",
            Duration::from_secs(20),
            &[&follower],
            || follower.stderr().contains("audit --follow: cannot read"),
        );
        release(db, "2.0");
        proxy.pass();
        until(
            "the row written meanwhile",
            Duration::from_secs(20),
            &[&follower],
            || lines(&follower).len() == 2,
        );
        assert!(
            follower.stderr().contains("audit --follow: reading"),
            "{}",
            follower.log()
        );
        assert_eq!(
            lines(&follower)[1]["message"]
                .as_str()
                .map(|m| m.starts_with("release 2.0")),
            Some(true)
        );
        follower.signal(libc::SIGTERM);
        let (run, _) = follower.finish(Duration::from_secs(5), "SIGTERM");
        assert_eq!(run.code, 0, "{}", run.stderr);
    });
}

/// The hashes hold no secret: rows removed from a chain's end with its
/// counter set back leave a chain that holds. A head kept elsewhere
/// (`audit verify --output json`) and passed back with `--anchor` catches it.
#[test]
fn an_anchor_catches_a_chain_cut_short_with_its_counter_set_back() {
    each_backend(|db| {
        let r = release(db, "1.0");
        let d = plan(db, r, "prod");
        succeed(db, d);
        let heads = db.expect(&["audit", "verify", "--output", "json"], 0);
        std::fs::write(db.dir.path().join("heads.json"), &heads.stdout).expect("write");
        // Rows written since leave the anchored heads where they were.
        let r2 = release(db, "2.0");
        let d2 = plan(db, r2, "prod");
        succeed(db, d2);
        db.expect(&["audit", "verify", "--anchor", "heads.json"], 0);
        // prod cut back to two rows, its counter set back: the chain alone holds.
        db.query("DELETE FROM audit_logs WHERE chain = 'prod' AND seq > 2");
        db.query("UPDATE audit_chains SET seq = 2 WHERE chain = 'prod'");
        verify(db, 0);
        let r = db.expect(
            &[
                "audit",
                "verify",
                "--anchor",
                "heads.json",
                "--output",
                "json",
            ],
            1,
        );
        let v = r.json();
        let p = problem(&v, Some("prod"));
        assert_eq!(p["kind"], "rewritten", "{v:#}");
        assert!(
            p["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("the anchor recorded place 4 in the chain (prod)")),
            "{v:#}"
        );
        // An anchor that is not one is refused, naming the file.
        std::fs::write(db.dir.path().join("bad.json"), "{}").expect("write");
        let r = db.expect(&["audit", "verify", "--anchor", "bad.json"], 1);
        assert!(
            r.stderr.contains("cannot use bad.json as an anchor"),
            "{}",
            r.stderr
        );
    });
}
