//! Saved plans and targeting, through the real binary on every backend:
//! `reconcile --dry-run --out FILE` then `reconcile --plan FILE` applies exactly
//! that plan, or refuses (exit 1, every row of every table unchanged, the
//! message naming what moved); `--env` touches only the environments named.

use crate::common::*;

const SIM_OK: &str = "executor: { simulate: { duration: 0s, failure_rate: 0 } }";

/// dev and prod (prod behind an approval gate) on `dev` / `prod`.
fn two_envs(dev: &str, prod: &str) -> String {
    format!(
        "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\n  - {{ version: \"2.0\", tag: v2.0 }}\n\
         environments:\n  \
         dev: {{ release: \"{dev}\", {SIM_OK} }}\n  \
         prod: {{ release: \"{prod}\", {SIM_OK}, gates: {{ qa: {{ approvals: 1 }} }} }}\n"
    )
}

/// dev → staging → prod, each requiring the one before, on `release`.
fn three_envs(dev: &str, staging: &str, prod: &str) -> String {
    format!(
        "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\n  - {{ version: \"2.0\", tag: v2.0 }}\n\
         environments:\n  \
         dev: {{ release: \"{dev}\", {SIM_OK} }}\n  \
         staging: {{ release: \"{staging}\", requires: dev, {SIM_OK} }}\n  \
         prod: {{ release: \"{prod}\", requires: staging, {SIM_OK} }}\n"
    )
}

fn save(db: &TestDb, extra: &[&str], code: i32) -> Run {
    let mut args = vec![
        "reconcile",
        "--dry-run",
        "--manifests",
        "manifests",
        "--out",
        "plan.json",
    ];
    args.extend(extra);
    db.expect(&args, code)
}

fn apply(db: &TestDb, code: i32) -> Run {
    db.expect(
        &[
            "reconcile",
            "--manifests",
            "manifests",
            "--plan",
            "plan.json",
        ],
        code,
    )
}

fn plan_file(db: &TestDb) -> serde_json::Value {
    let text = std::fs::read_to_string(db.dir.path().join("plan.json")).expect("plan.json");
    serde_json::from_str(&text).expect("plan.json is JSON")
}

/// `reconcile --plan plan.json` refused: exit 1, not one row of any table
/// changed, and the message has `cause`.
fn refused(db: &TestDb, cmd: &mut std::process::Command, cause: &str) {
    let before = db.rows_hash();
    let rows = db.all_rows();
    let r = Run::from(cmd.output().expect("run shipctl"));
    assert_eq!(
        r.code, 1,
        "{:?}: wanted a refusal for {cause:?}\nstdout:\n{}\nstderr:\n{}",
        db.backend, r.stdout, r.stderr
    );
    assert!(
        r.stderr.contains(cause),
        "{:?}: the refusal does not say {cause:?}:\n{}",
        db.backend,
        r.stderr
    );
    assert!(
        r.stderr.contains("nothing was applied") || r.stderr.contains("nothing was created"),
        "{}",
        r.stderr
    );
    if db.rows_hash() != before {
        assert_eq!(
            db.all_rows(),
            rows,
            "{:?}: a refused plan wrote",
            db.backend
        );
    }
}

fn apply_cmd(db: &TestDb) -> std::process::Command {
    let mut c = db.cmd();
    c.args([
        "reconcile",
        "--manifests",
        "manifests",
        "--plan",
        "plan.json",
    ]);
    c
}

fn pending_in(db: &TestDb, env: &str) -> i64 {
    db.scalar(&format!(
        "SELECT MAX(d.id) FROM deploiements d JOIN environnements e ON e.id = d.id_env \
         WHERE e.nom = '{env}' AND d.etat = 'planifié'"
    ))
    .parse()
    .expect("a pending deployment")
}

/// dev and prod on 1.0, prod's deployment waiting for its approval; then the
/// manifests move dev to 2.0. Prod's waiting deployment.
fn prod_waits_then_dev_moves_on(db: &TestDb) -> i64 {
    declare(db, &two_envs("1.0", "1.0"));
    db.expect(&["reconcile", "--manifests", "manifests"], 4);
    let waiting = pending_in(db, "prod");
    declare(db, &two_envs("2.0", "1.0"));
    waiting
}

#[test]
fn a_saved_plan_applies_exactly_then_is_stale() {
    each_backend(|db| {
        let waiting = prod_waits_then_dev_moves_on(db);
        let shown = save(db, &[], 2);
        assert!(
            shown
                .stdout
                .contains("Apply with: shipctl reconcile --plan plan.json"),
            "{}",
            shown.stdout
        );
        assert!(
            shown.stderr.contains("plan saved to plan.json"),
            "{}",
            shown.stderr
        );
        let p = plan_file(db);
        assert_eq!(p["format"], 1, "{p:#}");
        assert_eq!(p["shipctl_version"], env!("CARGO_PKG_VERSION"));
        assert!(p["ledger_id"].is_string(), "{p:#}");
        assert_eq!(p["targets"], serde_json::json!(["dev", "prod"]));
        let prod = &p["environments"][1];
        assert_eq!(prod["plan"]["action"]["reuse"], waiting, "{p:#}");
        assert!(
            prod["summary"]
                .as_str()
                .is_some_and(|s| s.contains("waits for qa")),
            "{p:#}"
        );
        // The watermark is the newest audit row of each environment.
        for (i, env) in ["dev", "prod"].iter().enumerate() {
            let newest = db.scalar(&format!(
                "SELECT MAX(a.id) FROM audit_logs a JOIN environnements e ON e.id = a.id_env \
                 WHERE e.nom = '{env}'"
            ));
            assert_eq!(p["environments"][i]["watermark"].to_string(), newest);
        }

        // The environments' own executors run: a simulation flag is refused.
        let before = db.rows_hash();
        let r = db.expect(
            &[
                "reconcile",
                "--plan",
                "plan.json",
                "--failure-rate",
                "1",
                "--manifests",
                "manifests",
            ],
            1,
        );
        assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
        assert_eq!(db.rows_hash(), before);

        // Applied as planned: dev deploys 2.0, prod still waits (exit 4).
        let out = apply(db, 4);
        assert!(out.stdout.contains("deployed"), "{}", out.stdout);
        assert_eq!(live_in(db, "dev").as_deref(), Some("2.0"));
        assert_eq!(db.state(waiting), "planifié");

        // The same plan again: dev moved (by that very apply).
        let dev_planned: i64 = db
            .scalar(
                "SELECT MAX(d.id) FROM deploiements d JOIN environnements e ON e.id = d.id_env \
                 WHERE e.nom = 'dev'",
            )
            .parse()
            .expect("id");
        refused(
            db,
            &mut apply_cmd(db),
            &format!(
                "stale plan: dev changed since the plan: deployment {dev_planned} was planned"
            ),
        );
    });
}

#[test]
fn a_plan_is_refused_when_the_ledger_or_the_manifests_moved() {
    each_backend(|db| {
        let waiting = prod_waits_then_dev_moves_on(db);

        // Another deployment in dev, by hand, after the plan.
        save(db, &[], 2);
        let r1 = db.scalar("SELECT id FROM releases WHERE version = '1.0'");
        let other = plan(db, r1.parse().expect("id"), "dev");
        refused(
            db,
            &mut apply_cmd(db),
            &format!("stale plan: dev changed since the plan: deployment {other} was planned"),
        );
        succeed(db, other);
        refused(db, &mut apply_cmd(db), "dev changed since the plan");

        // A manifest edit, even one that leaves what is planned as it was.
        save(db, &[], 2);
        let path = db.dir.path().join("manifests/shipctl.yaml");
        let text = std::fs::read_to_string(&path).expect("manifest");
        std::fs::write(&path, text.replace("v2.0", "v2.0.0")).expect("edit");
        refused(
            db,
            &mut apply_cmd(db),
            "stale plan: the manifests in manifests changed since the plan",
        );
        // Formatting and comments alone do not move the digest.
        std::fs::write(&path, format!("# reviewed\n{}", text.replace(", ", " , "))).expect("edit");
        save(db, &[], 2);
        std::fs::write(&path, &text).expect("restore");

        // An approval that changes what would run in prod.
        let before = plan_file(db);
        db.expect(&approval(&waiting.to_string(), "bob"), 0);
        refused(
            db,
            &mut apply_cmd(db),
            &format!("stale plan: prod changed since the plan: deployment {waiting} was approved"),
        );
        // Made again, it runs prod's deployment: the plans differ.
        save(db, &[], 2);
        assert_ne!(
            before["environments"][1]["summary"],
            plan_file(db)["environments"][1]["summary"]
        );

        // Another ledger with the same history: the ids differ.
        let Some(other_db) = TestDb::new(db.backend) else {
            return;
        };
        std::fs::create_dir_all(other_db.dir.path().join("manifests")).expect("dir");
        declare(&other_db, &two_envs("1.0", "1.0"));
        other_db.expect(&["reconcile", "--manifests", "manifests"], 4);
        let other_rows = other_db.all_rows();
        let mut cmd = apply_cmd(db);
        cmd.env("SHIPCTL_DATABASE_URL", &other_db.url);
        let r = Run::from(cmd.output().expect("run"));
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(
            r.stderr.contains("plan.json was planned on another ledger"),
            "{}",
            r.stderr
        );
        assert_eq!(
            other_db.all_rows(),
            other_rows,
            "the other ledger was written"
        );

        // A newer format, a newer shipctl, junk, nothing at all.
        let good = std::fs::read_to_string(db.dir.path().join("plan.json")).expect("plan");
        let write = |text: &str| std::fs::write(db.dir.path().join("plan.json"), text).expect("w");
        write(&good.replacen("\"format\": 1", "\"format\": 2", 1));
        refused(db, &mut apply_cmd(db), "plan.json is a plan of format 2");
        let version = format!("\"shipctl_version\": \"{}\"", env!("CARGO_PKG_VERSION"));
        write(&good.replacen(&version, "\"shipctl_version\": \"99.0.0\"", 1));
        refused(
            db,
            &mut apply_cmd(db),
            "made by shipctl 99.0.0, newer than this one",
        );
        write("{ \"format\": 1, ");
        refused(db, &mut apply_cmd(db), "plan.json is not a shipctl plan");
        std::fs::remove_file(db.dir.path().join("plan.json")).expect("rm");
        let before = db.rows_hash();
        let r = db.expect(
            &[
                "reconcile",
                "--manifests",
                "manifests",
                "--plan",
                "plan.json",
            ],
            1,
        );
        assert!(
            r.stderr.contains("cannot read the plan plan.json"),
            "{}",
            r.stderr
        );
        assert_eq!(db.rows_hash(), before);

        // And the good plan still applies: prod runs the approved deployment.
        write(&good);
        apply(db, 0);
        assert_eq!(db.state(waiting), "réussi");
    });
}

/// A change that lands while the plan is being applied (dev's deploy script
/// approves prod's deployment) is refused under prod's lock: prod is not
/// touched, the run ends with exit 1.
pub fn stale_during_apply(db: &TestDb, output: &str) -> Run {
    let bin = env!("CARGO_BIN_EXE_shipctl");
    declare(db, &two_envs("1.0", "1.0"));
    db.expect(&["reconcile", "--manifests", "manifests"], 4);
    let waiting = pending_in(db, "prod");
    script(
        db,
        "deploy.sh",
        // Children do not inherit SHIPCTL_DATABASE_URL: the script names it.
        &format!(
            "#!/bin/sh\nexec '{bin}' --database-url '{}' approve --deploy-id {waiting} --gate qa \
             --by bob\n",
            db.url
        ),
    );
    let text = two_envs("2.0", "1.0").replace(
        &format!("dev: {{ release: \"2.0\", {SIM_OK} }}"),
        "dev: { release: \"2.0\", executor: { command: { run: [\"./deploy.sh\"], timeout: 30s } } }",
    );
    declare(db, &text);
    save(db, &[], 2);
    let r = db.expect(
        &[
            "reconcile",
            "--manifests",
            "manifests",
            "--plan",
            "plan.json",
            "--output",
            output,
        ],
        1,
    );
    assert_eq!(live_in(db, "dev").as_deref(), Some("2.0"));
    assert_eq!(db.state(waiting), "planifié", "prod was applied");
    assert_eq!(
        db.scalar(&format!(
            "SELECT COUNT(*) FROM audit_logs WHERE id_deploiement = {waiting} \
             AND action = 'deployment.validated'"
        )),
        "0"
    );
    r
}

#[test]
fn a_change_during_the_apply_is_refused_under_the_lock() {
    each_backend(|db| {
        let r = stale_during_apply(db, "text");
        assert!(
            r.stdout
                .contains("stale plan: prod changed since the plan: deployment"),
            "{}",
            r.stdout
        );
        assert!(r.stdout.contains("was approved"), "{}", r.stdout);
    });
}

#[test]
fn env_touches_only_the_environments_named() {
    each_backend(|db| {
        declare(db, &three_envs("1.0", "1.0", "1.0"));
        db.expect(&["reconcile", "--manifests", "manifests"], 0);
        declare(db, &three_envs("2.0", "2.0", "2.0"));
        let rows_of = |env: &str| {
            db.query(&format!(
                "SELECT 'd', d.id, d.etat FROM deploiements d JOIN environnements e \
                 ON e.id = d.id_env WHERE e.nom = '{env}' \
                 UNION ALL SELECT 'a', a.id, a.action FROM audit_logs a \
                 JOIN environnements e ON e.id = a.id_env WHERE e.nom = '{env}' \
                 UNION ALL SELECT 'e', e.id, e.policy FROM environnements e WHERE e.nom = '{env}'"
            ))
        };
        let dev = rows_of("dev");
        let staging = rows_of("staging");

        // The dry run plans only prod; prod's upstream, not targeted, is judged
        // by what the ledger holds: 2.0 has not succeeded in staging.
        let j = db
            .expect(
                &[
                    "reconcile",
                    "--dry-run",
                    "--env",
                    "prod",
                    "--manifests",
                    "manifests",
                    "--output",
                    "json",
                ],
                0,
            )
            .json();
        let envs = j["plan"]["environments"].as_array().expect("environments");
        assert_eq!(envs.len(), 1, "{j:#}");
        assert_eq!(envs[0]["action"]["kind"], "blocked", "{j:#}");
        let r = db.expect(
            &["reconcile", "--env", "prod", "--manifests", "manifests"],
            4,
        );
        assert!(
            r.stdout.contains("has not succeeded in staging"),
            "{}",
            r.stdout
        );
        assert_eq!(
            rows_of("dev"),
            dev,
            "{:?}: --env prod touched dev",
            db.backend
        );
        assert_eq!(rows_of("staging"), staging, "--env prod touched staging");

        // dev and staging (dev named twice): prod is not touched.
        let prod_before = rows_of("prod");
        let r = db.expect(
            &[
                "reconcile",
                "--env",
                "staging",
                "--env",
                "dev",
                "--env",
                "dev",
                "--manifests",
                "manifests",
            ],
            0,
        );
        assert!(!r.stdout.contains("prod"), "{}", r.stdout);
        assert_eq!(
            rows_of("prod"),
            prod_before,
            "--env staging --env dev touched prod"
        );
        assert_eq!(live_in(db, "staging").as_deref(), Some("2.0"));
        assert_ne!(rows_of("dev"), dev);

        // Now prod alone, through a saved plan: dev and staging untouched.
        let dev = rows_of("dev");
        let staging_now = rows_of("staging");
        assert_ne!(staging_now, staging);
        save(db, &["--env", "prod"], 2);
        assert_eq!(plan_file(db)["targets"], serde_json::json!(["prod"]));
        // A plan is applied to the environments it was made for.
        let r = db.expect(
            &[
                "reconcile",
                "--plan",
                "plan.json",
                "--env",
                "dev",
                "--manifests",
                "manifests",
            ],
            1,
        );
        assert!(r.stderr.contains("--env dev differs"), "{}", r.stderr);
        apply(db, 0);
        assert_eq!(live_in(db, "prod").as_deref(), Some("2.0"));
        assert_ne!(rows_of("prod"), prod_before);
        assert_eq!(
            rows_of("dev"),
            dev,
            "{:?}: --env prod touched dev",
            db.backend
        );
        assert_eq!(
            rows_of("staging"),
            staging_now,
            "--env prod touched staging"
        );

        // Not managed by the manifests, or not an environment at all.
        declare(
            db,
            &three_envs("2.0", "2.0", "2.0").replace("  prod:", "  # prod:"),
        );
        let before = db.rows_hash();
        let r = db.expect(
            &["reconcile", "--env", "prod", "--manifests", "manifests"],
            1,
        );
        assert!(
            r.stderr
                .contains("--env prod: the manifests in manifests do not manage prod"),
            "{}",
            r.stderr
        );
        let r = db.expect(&["reconcile", "--env", "qa", "--manifests", "manifests"], 1);
        assert!(
            r.stderr.contains("invalid value 'qa' for '--env"),
            "{}",
            r.stderr
        );
        assert_eq!(db.rows_hash(), before);
    });
}

#[test]
fn a_plan_from_no_ledger_applies_to_a_ledger_still_empty_only() {
    each_backend(|db| {
        declare(db, &two_envs("1.0", "1.0"));
        let r = save(db, &[], 2);
        assert!(r.stderr.contains("no ledger at"), "{}", r.stderr);
        assert!(plan_file(db)["ledger_id"].is_null());
        let good = std::fs::read_to_string(db.dir.path().join("plan.json")).expect("plan");
        // Applied: the ledger is created, dev deploys, prod waits.
        apply(db, 4);
        assert_eq!(live_in(db, "dev").as_deref(), Some("1.0"));
        // Again, on the ledger that now exists and holds what it did.
        std::fs::write(db.dir.path().join("plan.json"), good).expect("w");
        refused(db, &mut apply_cmd(db), "it was planned before the ledger");
    });
}

/// `--out` into a directory that is not there: exit 1, a hint that says so,
/// no ledger created, no file written.
#[test]
fn a_plan_that_cannot_be_written_says_where() {
    let db = TestDb::new(Backend::Sqlite).expect("SQLite");
    declare(&db, &two_envs("1.0", "1.0"));
    let r = db.expect(
        &[
            "reconcile",
            "--dry-run",
            "--manifests",
            "manifests",
            "--out",
            "missing/plan.json",
        ],
        1,
    );
    assert!(
        r.stderr
            .contains("cannot write the plan to missing/plan.json")
            && r.stderr
                .contains("the directory of missing/plan.json does not exist"),
        "{}",
        r.stderr
    );
    assert!(!db.dir.path().join("shipctl.db").exists(), "no ledger made");
    assert!(!db.dir.path().join("missing").exists());
}
