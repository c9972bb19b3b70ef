//! `shipctl reconcile` through the real binary, on every backend: from an empty
//! ledger to in sync, promotion held by `requires`, failures, pins, superseded
//! and reused pending deployments, dry runs that write and run nothing, and
//! two reconcilers racing on one database.

use crate::common::*;

use std::time::Duration;

// ---------------------------------------------------------------- helpers

const SIM_OK: &str = "executor: { simulate: { duration: 0s, failure_rate: 0 } }";
const SIM_FAIL: &str = "executor: { simulate: { duration: 0s, failure_rate: 1 } }";
const ENVS: [&str; 3] = ["dev", "staging", "prod"];

/// A manifest: the releases (tag `v` + version) and, per environment,
/// (name, release, more flow-mapping entries such as `requires: dev, executor: ...`).
fn manifest(releases: &[&str], envs: &[(&str, &str, &str)]) -> String {
    let mut s = String::from("apiVersion: shipctl/v1\nreleases:\n");
    for r in releases {
        s.push_str(&format!("  - {{ version: \"{r}\", tag: v{r} }}\n"));
    }
    if !envs.is_empty() {
        s.push_str("environments:\n");
        for (env, release, extra) in envs {
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!(", {extra}")
            };
            s.push_str(&format!("  {env}: {{ release: \"{release}\"{extra} }}\n"));
        }
    }
    s
}

/// Replaces the whole desired state: `manifests/shipctl.yaml`.
fn declare(db: &TestDb, text: &str) {
    let dir = db.dir.path().join("manifests");
    std::fs::create_dir_all(&dir).expect("manifest dir");
    std::fs::write(dir.join("shipctl.yaml"), text).expect("write manifest");
}

/// dev → staging → prod all on `release`, each requiring the previous one.
fn chain(release: &str) -> String {
    manifest(
        &[release],
        &[
            ("dev", release, SIM_OK),
            ("staging", release, &format!("requires: dev, {SIM_OK}")),
            ("prod", release, &format!("requires: staging, {SIM_OK}")),
        ],
    )
}

fn reconcile(db: &TestDb, code: i32) -> Run {
    db.expect(&["reconcile", "--manifests", "manifests"], code)
}

fn reconcile_json(db: &TestDb, code: i32) -> serde_json::Value {
    db.expect(
        &["reconcile", "--manifests", "manifests", "--output", "json"],
        code,
    )
    .json()
}

fn dry_run_json(db: &TestDb, code: i32) -> serde_json::Value {
    db.expect(
        &[
            "reconcile",
            "--dry-run",
            "--manifests",
            "manifests",
            "--output",
            "json",
        ],
        code,
    )
    .json()
}

fn dry_run(db: &TestDb, code: i32) -> Run {
    db.expect(
        &["reconcile", "--dry-run", "--manifests", "manifests"],
        code,
    )
}

/// The live release of `env`, from `status --output json`.
fn live(db: &TestDb, env: &str) -> Option<String> {
    let st = db
        .expect(&["status", "--env", env, "--output", "json"], 0)
        .json();
    if !st["live"].is_null() {
        assert_eq!(st["live"]["state"], "réussi", "{st:#}");
    }
    st["live"]["version"].as_str().map(String::from)
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.scalar(sql).parse().expect("a count")
}

/// Deployment ids of `version` in `env`, oldest first.
fn deployments(db: &TestDb, env: &str, version: &str) -> Vec<i64> {
    db.query(&format!(
        "SELECT d.id FROM deploiements d JOIN releases r ON r.id = d.id_release \
         JOIN environnements e ON e.id = d.id_env \
         WHERE e.nom = '{env}' AND r.version = '{version}' ORDER BY d.id"
    ))
    .iter()
    .map(|r| r[0].parse().expect("id"))
    .collect()
}

fn only_deployment(db: &TestDb, env: &str, version: &str) -> i64 {
    let ids = deployments(db, env, version);
    assert_eq!(
        ids.len(),
        1,
        "{env} on {:?} has {} deployments of {version}: {ids:?}",
        db.backend,
        ids.len()
    );
    ids[0]
}

fn actions(db: &TestDb, action: &str) -> i64 {
    count(
        db,
        &format!("SELECT COUNT(*) FROM audit_logs WHERE action = '{action}'"),
    )
}

/// The id of a deployment's audit row for `action` (the first one).
fn audit_id(db: &TestDb, deploy: i64, action: &str) -> i64 {
    db.scalar(&format!(
        "SELECT MIN(id) FROM audit_logs WHERE id_deploiement = {deploy} AND action = '{action}'"
    ))
    .parse()
    .expect("audit id")
}

fn release_id(db: &TestDb, version: &str) -> i64 {
    db.scalar(&format!(
        "SELECT id FROM releases WHERE version = '{version}'"
    ))
    .parse()
    .expect("release id")
}

fn en_cours(db: &TestDb) -> i64 {
    count(
        db,
        "SELECT COUNT(*) FROM deploiements WHERE etat = 'en_cours'",
    )
}

fn row(a: &str, before: &str, after: &str) -> (String, String, String) {
    (a.into(), before.into(), after.into())
}

fn env_outcome<'a>(j: &'a serde_json::Value, env: &str) -> &'a serde_json::Value {
    j["environments"]
        .as_array()
        .expect("environments")
        .iter()
        .find(|e| e["env"] == env)
        .map(|e| &e["outcome"])
        .unwrap_or_else(|| panic!("no {env} in {j:#}"))
}

// ---------------------------------------------------------------- 1. empty → in sync

#[test]
fn from_empty_to_in_sync_across_the_three_environments() {
    each_backend(|db| {
        declare(db, &chain("1.0"));
        let out = reconcile(db, 0);
        assert!(out.stdout.contains("created 1.0"), "{}", out.stdout);
        for env in ENVS {
            assert_eq!(
                live(db, env).as_deref(),
                Some("1.0"),
                "{env} on {:?}",
                db.backend
            );
        }
        assert_eq!(count(db, "SELECT COUNT(*) FROM deploiements"), 3);

        // The release creation concerns no deployment.
        let created = db.query(
            "SELECT id_deploiement, message FROM audit_logs WHERE action = 'release.created'",
        );
        assert_eq!(created.len(), 1, "{created:?}");
        assert_eq!(created[0][0], "NULL");
        assert!(created[0][1].contains("1.0"), "{created:?}");
        // Each environment's policy stored once, audited without a deployment.
        let policies = db.query(
            "SELECT id_deploiement, message FROM audit_logs WHERE action = 'policy.updated' ORDER BY id",
        );
        assert_eq!(policies.len(), 3, "{policies:?}");
        for (p, env) in policies.iter().zip(ENVS) {
            assert_eq!(p[0], "NULL");
            assert!(p[1].starts_with(&format!("{env}:")), "{p:?}");
        }
        assert_eq!(
            db.scalar("SELECT policy IS NOT NULL FROM environnements WHERE nom = 'prod'"),
            "1"
        );
        // Every deployment went through the whole path, and in promotion order.
        let mut previous_success = 0;
        for env in ENVS {
            let d = only_deployment(db, env, "1.0");
            assert_eq!(
                db.audit(d),
                vec![
                    row("deployment.planned", "NULL", "planifié"),
                    row("deployment.validated", "planifié", "validé"),
                    row("deployment.started", "validé", "en_cours"),
                    row("deployment.succeeded", "en_cours", "réussi"),
                ],
                "{env} on {:?}",
                db.backend
            );
            assert!(
                audit_id(db, d, "deployment.planned") > previous_success,
                "{env} was planned before the environment it requires succeeded"
            );
            previous_success = audit_id(db, d, "deployment.succeeded");
        }

        // A second reconcile writes nothing, says so and exits 0; so does a third, in JSON.
        let before = db.snapshot();
        let out = reconcile(db, 0);
        assert!(out.stdout.contains("in sync"), "{}", out.stdout);
        let j = reconcile_json(db, 0);
        assert_eq!(j["releases_created"], serde_json::json!([]), "{j:#}");
        for env in ENVS {
            assert_eq!(env_outcome(&j, env)["kind"], "in_sync", "{j:#}");
        }
        assert_eq!(
            db.snapshot(),
            before,
            "an in-sync reconcile wrote on {:?}",
            db.backend
        );
        dry_run(db, 0);
    });
}

// ---------------------------------------------------------------- 2. requires

#[test]
fn promotion_waits_for_requires_then_promotes_in_one_run() {
    each_backend(|db| {
        let desired = |staging: &str, prod: &str| {
            manifest(
                &["1.0", "2.0"],
                &[
                    ("dev", "1.0", SIM_OK),
                    ("staging", staging, SIM_OK),
                    ("prod", prod, &format!("requires: staging, {SIM_OK}")),
                ],
            )
        };
        declare(db, &desired("1.0", "1.0"));
        reconcile(db, 0);

        // prod wants 2.0, which staging has never run: blocked, nothing deployed.
        declare(db, &desired("1.0", "2.0"));
        let out = reconcile(db, 4);
        assert!(
            out.stdout.contains("blocked") && out.stdout.contains("staging"),
            "{}",
            out.stdout
        );
        assert_eq!(live(db, "prod").as_deref(), Some("1.0"));
        assert!(
            deployments(db, "prod", "2.0").is_empty(),
            "a blocked environment must not even be planned"
        );
        assert_eq!(en_cours(db), 0);
        // Again: still blocked, and now nothing at all is written.
        let before = db.snapshot();
        let j = reconcile_json(db, 4);
        assert_eq!(env_outcome(&j, "prod")["kind"], "blocked", "{j:#}");
        assert_eq!(env_outcome(&j, "staging")["kind"], "in_sync", "{j:#}");
        assert_eq!(db.snapshot(), before);

        // staging moves to 2.0: one reconcile promotes staging, then prod.
        declare(db, &desired("2.0", "2.0"));
        let j = reconcile_json(db, 0);
        assert_eq!(env_outcome(&j, "staging")["kind"], "deployed", "{j:#}");
        assert_eq!(env_outcome(&j, "prod")["kind"], "deployed", "{j:#}");
        assert_eq!(live(db, "dev").as_deref(), Some("1.0"));
        assert_eq!(live(db, "staging").as_deref(), Some("2.0"));
        assert_eq!(live(db, "prod").as_deref(), Some("2.0"));
        let s = only_deployment(db, "staging", "2.0");
        let p = only_deployment(db, "prod", "2.0");
        assert!(
            audit_id(db, p, "deployment.started") > audit_id(db, s, "deployment.succeeded"),
            "prod started before staging succeeded"
        );
        reconcile(db, 0);
    });
}

// ---------------------------------------------------------------- 3. failures

#[test]
fn a_failure_in_prod_leaves_it_on_its_previous_release() {
    each_backend(|db| {
        declare(db, &chain("1.0"));
        reconcile(db, 0);

        let desired = |prod_executor: &str| {
            manifest(
                &["1.0", "2.0"],
                &[
                    ("dev", "2.0", SIM_OK),
                    ("staging", "2.0", &format!("requires: dev, {SIM_OK}")),
                    (
                        "prod",
                        "2.0",
                        &format!("requires: staging, {prod_executor}"),
                    ),
                ],
            )
        };
        declare(db, &desired(SIM_FAIL));
        let out = reconcile(db, 3);
        assert!(out.stdout.contains("failed"), "{}", out.stdout);
        assert!(out.stdout.contains("simulated failure"), "{}", out.stdout);
        assert_eq!(live(db, "dev").as_deref(), Some("2.0"));
        assert_eq!(live(db, "staging").as_deref(), Some("2.0"));
        assert_eq!(
            live(db, "prod").as_deref(),
            Some("1.0"),
            "prod must stay on 1.0"
        );
        let p = only_deployment(db, "prod", "2.0");
        assert_eq!(
            db.state(p),
            "planifié",
            "a failed run is rolled back to planifié"
        );
        assert_eq!(
            db.scalar(&format!("SELECT attempts FROM deploiements WHERE id = {p}")),
            "1"
        );
        let failed = db.query(&format!(
            "SELECT etat_avant, etat_apres, message FROM audit_logs \
             WHERE id_deploiement = {p} AND action = 'deployment.failed'"
        ));
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(
            (failed[0][0].as_str(), failed[0][1].as_str()),
            ("en_cours", "planifié")
        );
        assert!(failed[0][2].contains("simulated failure"), "{failed:?}");
        assert_eq!(en_cours(db), 0);
        // dev and staging were not touched by prod's failure.
        let staging = only_deployment(db, "staging", "2.0");
        assert_eq!(db.state(staging), "réussi");

        // The next reconcile retries the same deployment; it does not plan another.
        let before_dev_staging = db.query(
            "SELECT d.id, d.etat FROM deploiements d JOIN environnements e ON e.id = d.id_env \
             WHERE e.nom <> 'prod' ORDER BY d.id",
        );
        let j = reconcile_json(db, 3);
        assert_eq!(env_outcome(&j, "prod")["kind"], "failed", "{j:#}");
        assert_eq!(env_outcome(&j, "dev")["kind"], "in_sync", "{j:#}");
        assert_eq!(only_deployment(db, "prod", "2.0"), p);
        assert_eq!(
            db.scalar(&format!("SELECT attempts FROM deploiements WHERE id = {p}")),
            "2"
        );
        assert_eq!(
            db.query(
                "SELECT d.id, d.etat FROM deploiements d JOIN environnements e ON e.id = d.id_env \
                 WHERE e.nom <> 'prod' ORDER BY d.id",
            ),
            before_dev_staging
        );

        // Fixed: the third attempt of the same deployment succeeds.
        declare(db, &desired(SIM_OK));
        reconcile(db, 0);
        assert_eq!(live(db, "prod").as_deref(), Some("2.0"));
        assert_eq!(only_deployment(db, "prod", "2.0"), p);
        assert_eq!(db.state(p), "réussi");
    });
}

#[test]
fn fail_fast_skips_the_environments_after_a_failure() {
    each_backend(|db| {
        // No `requires`: only --fail-fast stops staging and prod.
        declare(
            db,
            &manifest(
                &["1.0"],
                &[
                    ("dev", "1.0", SIM_FAIL),
                    ("staging", "1.0", SIM_OK),
                    ("prod", "1.0", SIM_OK),
                ],
            ),
        );
        let out = db.expect(&["reconcile", "--manifests", "manifests", "--fail-fast"], 3);
        assert!(
            out.stdout.contains("skipped") && out.stdout.contains("--fail-fast"),
            "{}",
            out.stdout
        );
        let d = only_deployment(db, "dev", "1.0");
        assert_eq!(db.state(d), "planifié");
        for env in ["staging", "prod"] {
            assert!(
                deployments(db, env, "1.0").is_empty(),
                "--fail-fast still planned {env} on {:?}",
                db.backend
            );
            assert_eq!(live(db, env), None);
        }

        // Without it, the other environments go ahead; dev fails again, on the same row.
        let j = reconcile_json(db, 3);
        assert_eq!(env_outcome(&j, "dev")["kind"], "failed", "{j:#}");
        assert_eq!(env_outcome(&j, "staging")["kind"], "deployed", "{j:#}");
        assert_eq!(env_outcome(&j, "prod")["kind"], "deployed", "{j:#}");
        assert_eq!(live(db, "staging").as_deref(), Some("1.0"));
        assert_eq!(live(db, "prod").as_deref(), Some("1.0"));
        assert_eq!(live(db, "dev"), None);
        assert_eq!(only_deployment(db, "dev", "1.0"), d);
        assert_eq!(
            db.scalar(&format!("SELECT attempts FROM deploiements WHERE id = {d}")),
            "2"
        );
    });
}

// ---------------------------------------------------------------- 4. pins

#[test]
fn a_rollback_pin_is_respected_until_the_manifests_move_on() {
    each_backend(|db| {
        let prod = |release: &str| manifest(&["1.0", "2.0"], &[("prod", release, SIM_OK)]);
        declare(db, &prod("1.0"));
        reconcile(db, 0);
        declare(db, &prod("2.0"));
        let j = reconcile_json(db, 0);
        let d2 = env_outcome(&j, "prod")["execution"]["deployment"]["id"]
            .as_i64()
            .expect("2.0's deployment id");
        assert_eq!(only_deployment(db, "prod", "2.0"), d2);

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
        assert_eq!(live(db, "prod").as_deref(), Some("1.0"));
        let st = db
            .expect(&["status", "--env", "prod", "--output", "json"], 0)
            .json();
        assert_eq!(st["pin"]["version"], "1.0", "{st:#}");

        // The manifests still say 2.0: the pin holds, nothing is written.
        let before = db.snapshot();
        let out = reconcile(db, 4);
        assert!(out.stdout.contains("pinned to 1.0"), "{}", out.stdout);
        assert_eq!(
            db.snapshot(),
            before,
            "a pinned reconcile wrote on {:?}",
            db.backend
        );
        assert_eq!(live(db, "prod").as_deref(), Some("1.0"));
        assert_eq!(
            deployments(db, "prod", "2.0"),
            vec![d2],
            "2.0 was redeployed"
        );
        dry_run(db, 0); // nothing to apply: prod is held back

        // The manifests declare the restored release: the pin lifts, audited.
        declare(db, &prod("1.0"));
        let plan = dry_run(db, 2);
        assert!(
            plan.stdout.contains("-  pinned: 1.0 (holding back 2.0)"),
            "the diff shows the pin going: {}",
            plan.stdout
        );
        let out = reconcile(db, 0);
        assert!(out.stdout.contains("lifted"), "{}", out.stdout);
        let lifted =
            db.query("SELECT id_deploiement, message FROM audit_logs WHERE action = 'pin.lifted'");
        assert_eq!(lifted.len(), 1, "{lifted:?}");
        assert!(lifted[0][1].contains("prod"), "{lifted:?}");
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM environnements WHERE pinned_release_id IS NOT NULL"
            ),
            0
        );
        assert_eq!(live(db, "prod").as_deref(), Some("1.0"));
        assert_eq!(
            deployments(db, "prod", "1.0").len(),
            2,
            "original + restore only"
        );
        let before = db.snapshot();
        reconcile(db, 0);
        assert_eq!(db.snapshot(), before);

        // Fix forward to 2.0, roll back again, then `unpin`: reconcile redeploys 2.0.
        declare(db, &prod("2.0"));
        let j = reconcile_json(db, 0);
        let d2b = env_outcome(&j, "prod")["execution"]["deployment"]["id"]
            .as_i64()
            .expect("id");
        db.expect(
            &[
                "rollback",
                "--deploy-id",
                &d2b.to_string(),
                "--duration",
                "0s",
                "--failure-rate",
                "0",
            ],
            0,
        );
        reconcile(db, 4);
        assert_eq!(live(db, "prod").as_deref(), Some("1.0"));
        db.expect(&["unpin", "--env", "prod"], 0);
        assert_eq!(actions(db, "pin.lifted"), 2);
        let j = reconcile_json(db, 0);
        assert_eq!(env_outcome(&j, "prod")["kind"], "deployed", "{j:#}");
        assert_eq!(live(db, "prod").as_deref(), Some("2.0"));
        assert_eq!(deployments(db, "prod", "2.0").len(), 3);
    });
}

// ---------------------------------------------------------------- 5. pending deployments

#[test]
fn superseded_pending_deployments_are_cancelled_and_a_pending_desired_one_is_reused() {
    each_backend(|db| {
        let prod = |release: &str| manifest(&["1.0", "2.0", "3.0"], &[("prod", release, SIM_OK)]);
        declare(db, &prod("1.0"));
        reconcile(db, 0);
        let (r2, r3) = (release_id(db, "2.0"), release_id(db, "3.0"));

        // In sync, with two pending deployments planned by hand: both superseded.
        let p2 = plan(db, r2, "prod");
        let p3 = plan(db, r3, "prod");
        let out = dry_run(db, 2);
        assert!(
            out.stdout.contains(&format!("cancel deployment {p2}")),
            "{}",
            out.stdout
        );
        let j = reconcile_json(db, 0);
        assert_eq!(env_outcome(&j, "prod")["kind"], "in_sync", "{j:#}");
        for p in [p2, p3] {
            assert_eq!(db.state(p), "annulé");
            assert_eq!(
                db.audit(p).last().cloned(),
                Some(row("deployment.superseded", "planifié", "annulé"))
            );
        }
        assert_eq!(live(db, "prod").as_deref(), Some("1.0"));

        // The manifests move to 3.0 while 2.0 and 3.0 are pending: 3.0's row is
        // reused (not planned twice), 2.0's superseded.
        let q2 = plan(db, r2, "prod");
        let q3 = plan(db, r3, "prod");
        declare(db, &prod("3.0"));
        let plan_json = dry_run_json(db, 2);
        let prod_plan = plan_json["plan"]["environments"]
            .as_array()
            .expect("envs")
            .iter()
            .find(|e| e["env"] == "prod")
            .expect("prod")
            .clone();
        assert_eq!(prod_plan["action"]["kind"], "deploy", "{prod_plan:#}");
        assert_eq!(prod_plan["action"]["reuse"], q3, "{prod_plan:#}");
        assert_eq!(prod_plan["cancel"][0]["id"], q2, "{prod_plan:#}");

        let j = reconcile_json(db, 0);
        assert_eq!(
            env_outcome(&j, "prod")["execution"]["deployment"]["id"],
            q3,
            "{j:#}"
        );
        assert_eq!(
            deployments(db, "prod", "3.0"),
            vec![p3, q3],
            "3.0 planned twice"
        );
        assert_eq!(db.state(q3), "réussi");
        assert_eq!(
            db.audit(q3)
                .iter()
                .filter(|a| a.0 == "deployment.planned")
                .count(),
            1
        );
        assert_eq!(db.state(q2), "annulé");
        assert_eq!(
            db.audit(q2).last().cloned(),
            Some(row("deployment.superseded", "planifié", "annulé"))
        );
        assert_eq!(actions(db, "deployment.superseded"), 3);
        assert_eq!(live(db, "prod").as_deref(), Some("3.0"));
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM deploiements WHERE etat IN ('planifié', 'validé')"
            ),
            0
        );
    });
}

// ---------------------------------------------------------------- 6. dry run

fn file_bytes(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn table_count(db: &TestDb) -> i64 {
    let sql = match db.backend {
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'"
        }
        Backend::MySql => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()"
        }
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
    };
    count(db, sql)
}

#[test]
fn dry_run_writes_nothing_and_exits_0_2_or_1() {
    each_backend(|db| {
        let sqlite_file = db.dir.path().join("shipctl.db");
        declare(db, &chain("1.0"));

        // No ledger yet: the plan is shown, and no file, table or row is created.
        let out = dry_run(db, 2);
        assert!(out.stdout.contains("create 1.0"), "{}", out.stdout);
        assert!(out.stdout.contains("deploy 1.0"), "{}", out.stdout);
        if db.backend == Backend::Sqlite {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let f = db.dir.path().join(format!("shipctl.db{suffix}"));
                assert!(!f.exists(), "a dry run created {}", f.display());
            }
        } else {
            assert_eq!(
                table_count(db),
                0,
                "a dry run created tables on {:?}",
                db.backend
            );
        }

        reconcile(db, 0);
        let snap = db.snapshot();
        let bytes = (db.backend == Backend::Sqlite).then(|| file_bytes(&sqlite_file));

        // In sync: 0.
        let out = dry_run(db, 0);
        assert!(out.stdout.contains("in sync"), "{}", out.stdout);

        // Changes: 2, with the plan and a unified diff, in every format.
        declare(
            db,
            &manifest(
                &["1.0", "2.0"],
                &[
                    ("dev", "2.0", SIM_OK),
                    ("staging", "1.0", &format!("requires: dev, {SIM_OK}")),
                    (
                        "prod",
                        "1.0",
                        &format!("requires: staging, max_attempts: 5, {SIM_OK}"),
                    ),
                ],
            ),
        );
        let out = dry_run(db, 2);
        for needle in [
            "deploy 2.0",
            "create 2.0",
            "--- actual (database)",
            "+++ desired (manifests)",
            "-  release: 1.0",
            "+  release: 2.0",
            "+  max_attempts: 5",
        ] {
            assert!(
                out.stdout.contains(needle),
                "no {needle:?} in:\n{}",
                out.stdout
            );
        }
        let j = dry_run_json(db, 2);
        assert_eq!(j["in_sync"], false, "{j:#}");
        assert!(j["plan"]["environments"].is_array(), "{j:#}");
        assert_eq!(j["plan"]["releases"][0]["step"], "create", "{j:#}");
        let diff = j["diff"].as_str().expect("diff is a string");
        assert!(diff.contains("+  release: 2.0"), "{diff}");
        let md = db
            .expect(
                &[
                    "reconcile",
                    "--dry-run",
                    "--manifests",
                    "manifests",
                    "--output",
                    "markdown",
                ],
                2,
            )
            .stdout;
        for needle in [
            "```diff\n",
            "| Environment | Live | Desired | Plan |",
            "|---|---|---|---|",
            "| dev | 1.0 | 2.0 |",
            "+  release: 2.0",
        ] {
            assert!(md.contains(needle), "no {needle:?} in markdown:\n{md}");
        }
        // The headline first, the table and the diff in a collapsible block.
        assert!(md.contains("- **dev**: 1.0 → 2.0: deploys"), "{md}");
        assert!(md.find("- **dev**") < md.find("<details>"), "{md}");
        assert!(
            md.trim_end().ends_with("```\n\n</details>"),
            "unclosed block:\n{md}"
        );

        // A bad manifest: 1, and still nothing written.
        std::fs::write(
            db.dir.path().join("manifests").join("typo.yaml"),
            "environmnets: {}\n",
        )
        .expect("write");
        let out = dry_run(db, 1);
        assert!(out.stderr.contains("typo.yaml"), "{}", out.stderr);
        std::fs::remove_file(db.dir.path().join("manifests").join("typo.yaml")).expect("rm");

        assert_eq!(db.snapshot(), snap, "a dry run wrote on {:?}", db.backend);
        if let Some(bytes) = bytes {
            assert!(
                file_bytes(&sqlite_file) == bytes,
                "a dry run changed the bytes of the SQLite file"
            );
        }
        // It was only a plan: applying it now does what it said.
        reconcile(db, 0);
        assert_eq!(live(db, "dev").as_deref(), Some("2.0"));
    });
}

#[test]
fn dry_run_runs_no_command_at_all() {
    each_backend(|db| {
        // A simulated release first, so that a pending deployment exists too.
        declare(db, &manifest(&["1.0"], &[("dev", "1.0", SIM_OK)]));
        reconcile(db, 0);
        db.expect(&["release", "--create", "2.0", "--tag", "v2.0"], 0);
        let pending = plan(db, release_id(db, "2.0"), "dev");

        declare(
            db,
            &manifest(
                &["1.0", "2.0"],
                &[
                    (
                        "dev",
                        "2.0",
                        "executor: { command: { run: [\"touch\", \"CANARY\"], rollback: [\"touch\", \"ROLLBACK_CANARY\"] } }",
                    ),
                    (
                        "staging",
                        "2.0",
                        "gates: { security: { command: [\"touch\", \"GATE_CANARY\"] } }, executor: { command: { run: [\"touch\", \"CANARY\"] } }",
                    ),
                ],
            ),
        );
        let snap = db.snapshot();
        let out = dry_run(db, 2);
        assert!(
            out.stdout
                .contains(&format!("run pending deployment {pending}")),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("touch"),
            "the diff shows the new executor:\n{}",
            out.stdout
        );
        db.expect(
            &[
                "reconcile",
                "--dry-run",
                "--manifests",
                "manifests",
                "--output",
                "markdown",
            ],
            2,
        );
        db.expect(
            &[
                "reconcile",
                "--dry-run",
                "--manifests",
                "manifests",
                "--output",
                "json",
            ],
            2,
        );
        for dir in [db.dir.path().to_path_buf(), db.dir.path().join("manifests")] {
            for canary in ["CANARY", "ROLLBACK_CANARY", "GATE_CANARY"] {
                assert!(
                    !dir.join(canary).exists(),
                    "a dry run ran a command: {} exists",
                    dir.join(canary).display()
                );
            }
        }
        assert_eq!(db.state(pending), "planifié");
        assert_eq!(db.snapshot(), snap);
    });
}

// ---------------------------------------------------------------- 7. racing reconcilers

/// Starts `n` `reconcile` processes at the same moment and waits for them.
fn race(db: &TestDb, n: usize) -> Vec<Run> {
    let gate = Gate::new();
    let children: Vec<Proc> = (0..n)
        .map(|_| {
            let args = ["reconcile", "--manifests", "manifests"];
            Proc::spawn(gate.command(db, args), describe(db, args))
        })
        .collect();
    gate.open();
    children
        .into_iter()
        .map(|c| c.finish(Duration::from_secs(60), "the gate opened").0)
        .collect()
}

fn assert_racers_ok(db: &TestDb, runs: &[Run], round: &str) {
    for r in runs {
        assert!(
            r.code == 0 || r.code == 4,
            "{round} on {:?}: a racing reconcile exited {} (wanted 0 or 4)\nstdout:\n{}\nstderr:\n{}",
            db.backend,
            r.code,
            r.stdout,
            r.stderr
        );
    }
}

/// The brief's race: two reconcilers at once never plan a deployment twice nor
/// run two in one environment; both end 0 or 4, and the ledger ends in sync.
/// Runs last 300ms so that they overlap; releases exist beforehand so that this
/// test is about deployments (release creation has its own test below).
#[test]
fn racing_reconcilers_plan_once_and_never_run_two_deployments_in_one_environment() {
    each_backend(|db| {
        let slow = "executor: { simulate: { duration: 300ms, failure_rate: 0 } }";
        for (round, version) in ["1.0", "2.0"].iter().enumerate() {
            db.expect(
                &[
                    "release",
                    "--create",
                    version,
                    "--tag",
                    &format!("v{version}"),
                ],
                0,
            );
            let releases: Vec<&str> = ["1.0", "2.0"][..=round].to_vec();
            // staging and prod do not require anything: the racers can work in
            // different environments at the same time.
            declare(
                db,
                &manifest(
                    &releases,
                    &[
                        ("dev", version, slow),
                        ("staging", version, slow),
                        ("prod", version, slow),
                    ],
                ),
            );
            let sampler = Sampler::start(
                db,
                "SELECT COUNT(*) FROM deploiements WHERE etat = 'en_cours' GROUP BY id_env".into(),
            );
            sampler.wait_started();
            let runs = race(db, 2);
            let (samples, max) = sampler.stop();
            let what = format!("round {version}");
            assert_racers_ok(db, &runs, &what);
            assert!(samples > 10, "the sampler took only {samples} samples");
            assert_eq!(
                max, 1,
                "{what} on {:?}: the sampler saw {max} en_cours deployments in one environment \
                 (0: it never saw a run)",
                db.backend
            );
            for env in ENVS {
                let d = only_deployment(db, env, version);
                assert_eq!(db.state(d), "réussi", "{what}: {env} on {:?}", db.backend);
                assert_eq!(
                    db.audit(d)
                        .iter()
                        .filter(|a| a.0 == "deployment.started")
                        .count(),
                    1,
                    "{what}: {env}'s deployment started twice"
                );
                assert_eq!(live(db, env).as_deref(), Some(*version));
            }
            assert_eq!(en_cours(db), 0);
            // In sync: a dry run has nothing to do, a reconcile writes nothing.
            let j = dry_run_json(db, 0);
            assert_eq!(j["held_back"], serde_json::json!([]), "{j:#}");
            let snap = db.snapshot();
            reconcile(db, 0);
            assert_eq!(db.snapshot(), snap);
        }
    });
}

/// Two reconcilers declaring a release the ledger does not have yet: one
/// creates it, the other must see it (or retry), not fail. Only releases are
/// declared, so nothing but the creation races.
#[test]
fn racing_reconcilers_create_a_new_release_once_without_failing() {
    each_backend(|db| {
        // Migrated before the race by a writer that then finds nothing to do
        // (`status` never creates a ledger).
        let r = db.expect(&["unpin", "--env", "dev"], 1);
        assert!(r.stderr.contains("dev is not pinned"), "{}", r.stderr);
        for round in 0..8 {
            let version = format!("{round}.0");
            let releases: Vec<String> = (0..=round).map(|r| format!("{r}.0")).collect();
            let refs: Vec<&str> = releases.iter().map(String::as_str).collect();
            declare(db, &manifest(&refs, &[]));
            let runs = race(db, 2);
            for r in &runs {
                assert_eq!(
                    r.code, 0,
                    "round {round} on {:?}: a reconcile creating release {version} exited {}\n\
                     stdout:\n{}\nstderr:\n{}",
                    db.backend, r.code, r.stdout, r.stderr
                );
            }
            assert_eq!(
                count(
                    db,
                    &format!("SELECT COUNT(*) FROM releases WHERE version = '{version}'")
                ),
                1
            );
            assert_eq!(
                count(
                    db,
                    &format!(
                        "SELECT COUNT(*) FROM audit_logs WHERE action = 'release.created' AND message LIKE 'release {version} %'"
                    )
                ),
                1,
                "round {round}: the creation is audited once"
            );
        }
    });
}

/// Two reconcilers with instant runs: one plans a deployment, the other
/// re-plans under the lock and reuses it, and the first finishes it before the
/// second validates it. The second must report the environment in sync (or
/// busy), not fail with "deployment N is réussi: only planifié or validé
/// deployments can be validated" (exit 1) and abandon the other environments.
#[test]
fn racing_reconcilers_with_instant_runs_never_fail() {
    each_backend(|db| {
        for round in 0..6 {
            let version = format!("{round}.0");
            db.expect(
                &[
                    "release",
                    "--create",
                    &version,
                    "--tag",
                    &format!("v{version}"),
                ],
                0,
            );
            let releases: Vec<String> = (0..=round).map(|r| format!("{r}.0")).collect();
            let refs: Vec<&str> = releases.iter().map(String::as_str).collect();
            declare(
                db,
                &manifest(
                    &refs,
                    &[
                        ("dev", &version, SIM_OK),
                        ("staging", &version, SIM_OK),
                        ("prod", &version, SIM_OK),
                    ],
                ),
            );
            let runs = race(db, 2);
            assert_racers_ok(db, &runs, &format!("round {version}"));
            for env in ENVS {
                only_deployment(db, env, &version);
                assert_eq!(live(db, env).as_deref(), Some(version.as_str()));
            }
        }
    });
}
