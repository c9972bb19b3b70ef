//! Approvals that follow the four-eyes rule (DESIGN §10): whoever planned a
//! deployment may not approve it unless the gate allows self-approval;
//! approvals expire when the gate says so; on PostgreSQL and MariaDB each
//! decision records the database user that wrote it.

use crate::common::account::Account;
use crate::common::*;

use serde_json::Value;
use std::time::{Duration, Instant};

const SIM_OK: &str = "{ simulate: { duration: 0s, failure_rate: 0 } }";

/// prod on 1.0 behind one approval gate `qa: { approvals: 1, EXTRA }`.
fn gated(db: &TestDb, extra: &str) {
    declare(
        db,
        &format!(
            "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\nenvironments:\n  prod:\n    \
             release: \"1.0\"\n    gates:\n      qa: {{ approvals: 1{extra} }}\n    \
             executor: {SIM_OK}\n"
        ),
    );
}

/// Plans prod's deployment as `actor` (a reconcile, as CI would run it) and returns its id.
fn planned_by(db: &TestDb, actor: &str) -> String {
    let out = db
        .cmd()
        .env("SHIPCTL_ACTOR", actor)
        .args(["reconcile", "--manifests", "manifests"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db.scalar("SELECT MAX(id) FROM deploiements")
}

fn approve(db: &TestDb, id: &str, by: &str) -> Run {
    db.run(&[
        "approve",
        "--deploy-id",
        id,
        "--gate",
        "qa",
        "--by",
        by,
        "--output",
        "json",
    ])
}

fn gate(db: &TestDb) -> Value {
    let st = db
        .expect(&["status", "--env", "prod", "--output", "json"], 0)
        .json();
    st["gates"][0]["gates"][0].clone()
}

#[test]
fn whoever_planned_a_deployment_may_not_approve_it() {
    each_backend(|db| {
        gated(db, ", approvers: [alice, bob]");
        let id = planned_by(db, "alice");
        let before = db.snapshot();
        let r = approve(db, &id, "alice");
        assert_eq!(r.code, 1, "{}", r.stdout);
        let e = &r.json()["error"];
        assert_eq!(
            e["message"],
            format!(
                "alice planned deployment {id} (1.0 to prod) and may not approve it: gate qa \
                 follows the four-eyes rule (self_approval is false)"
            ),
            "{e:#}"
        );
        assert!(
            e["hint"]
                .as_str()
                .unwrap_or_default()
                .starts_with("ask bob;"),
            "{e:#}"
        );
        assert_eq!(db.snapshot(), before, "a refused approval wrote something");
        // status says who may still approve: not the planner.
        let g = gate(db);
        assert_eq!(g["planned_by"], "alice", "{g:#}");
        let text = db.expect(&["status", "--env", "prod"], 0).stdout;
        assert!(text.contains("may approve: bob"), "{text}");
        // She may still reject it; bob approves.
        assert_eq!(approve(db, &id, "bob").code, 0);
        db.expect(&["validate", "--deploy-id", &id], 0);
    });
}

#[test]
fn self_approval_true_lets_the_planner_approve() {
    each_backend(|db| {
        gated(db, ", self_approval: true");
        let id = planned_by(db, "alice");
        let r = approve(db, &id, "alice");
        assert_eq!(r.code, 0, "{}", r.stdout);
        assert_eq!(r.json()["ready"], true);
        db.expect(&["validate", "--deploy-id", &id], 0);
    });
}

#[test]
fn expired_approvals_do_not_count() {
    each_backend(|db| {
        gated(db, ", expires: 2s");
        let id = planned_by(db, "ci");
        assert_eq!(approve(db, &id, "alice").code, 0);
        assert_eq!(gate(db)["approved_by"], serde_json::json!(["alice"]));
        // Past its expiry (by the database clock), it no longer counts.
        let start = Instant::now();
        while gate(db)["expired"] != serde_json::json!(["alice"]) {
            assert!(start.elapsed() < Duration::from_secs(10), "{:#}", gate(db));
            std::thread::sleep(Duration::from_millis(200));
        }
        let g = gate(db);
        assert_eq!(g["status"], "waiting", "{g:#}");
        assert_eq!(g["approved_by"], serde_json::json!([]), "{g:#}");
        let text = db.expect(&["status", "--env", "prod"], 0).stdout;
        assert!(text.contains("expired: alice"), "{text}");
        let r = db.expect(&["validate", "--deploy-id", &id], 4);
        assert!(r.stderr.contains("waits for approval"), "{}", r.stderr);
        // A new approval counts again.
        assert_eq!(approve(db, &id, "alice").code, 0);
        db.expect(&["validate", "--deploy-id", &id], 0);
    });
}

#[test]
fn the_database_user_that_recorded_a_decision_is_kept() {
    for backend in [Backend::Postgres, Backend::MySql] {
        let Some(db) = TestDb::new(backend) else {
            continue;
        };
        gated(&db, "");
        let id = planned_by(&db, "ci");
        let (name, grant, drop) = match backend {
            Backend::Postgres => {
                let database = db.scalar("SELECT CAST(current_database() AS TEXT)");
                let name = format!("a{}", &database[database.len().saturating_sub(30)..]);
                (
                    name.clone(),
                    format!(
                        "CREATE ROLE {name} LOGIN PASSWORD 'pw'; \
                         GRANT CONNECT ON DATABASE {database} TO {name}; \
                         GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {name}; \
                         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {name}"
                    ),
                    format!("DROP OWNED BY {name}; DROP ROLE IF EXISTS {name}"),
                )
            }
            _ => {
                let database = db.scalar("SELECT DATABASE()");
                let name = format!("a{}", &database[database.len().saturating_sub(20)..]);
                (
                    name.clone(),
                    format!(
                        "CREATE USER '{name}'@'%' IDENTIFIED BY 'pw'; \
                         GRANT SELECT, INSERT, UPDATE, LOCK TABLES ON {database}.* TO '{name}'@'%'"
                    ),
                    format!("DROP USER IF EXISTS '{name}'@'%'"),
                )
            }
        };
        let account = Account::new(&db, name.clone(), drop);
        account.sql(&grant);
        let r = account.run(&db, &approval(&id, "alice"));
        assert_eq!(r.code, 0, "{backend:?}: {}\n{}", r.stdout, r.stderr);
        let recorded = db.scalar("SELECT db_user FROM gate_results");
        assert!(recorded.starts_with(&name), "{backend:?}: {recorded}");
        let h = db
            .expect(&["history", "--env", "prod", "--output", "json"], 0)
            .json();
        let by = &h["deployments"][0]["gate_results"][0];
        assert_eq!(by["actor"], "alice");
        assert_eq!(by["db_user"], recorded.as_str(), "{h:#}");
        let text = db.expect(&["history", "--env", "prod"], 0).stdout;
        assert!(
            text.contains(&format!("approved by alice (database user {recorded})")),
            "{text}"
        );
        let audit = db.expect(&["audit", "--deploy-id", &id], 0).stdout;
        assert!(
            audit.contains(&format!("database user {recorded}")),
            "{audit}"
        );
    }
    // SQLite has no users: nothing is claimed.
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    gated(&db, "");
    let id = planned_by(&db, "ci");
    assert_eq!(approve(&db, &id, "alice").code, 0);
    assert_eq!(db.scalar("SELECT db_user FROM gate_results"), "NULL");
}
