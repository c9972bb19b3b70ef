//! A stored policy written by a newer shipctl (fields this version does not
//! know): `status` shows it, and everything that would act on it refuses with
//! exit 1, writing nothing, so that no gate is skipped because it is unknown.

use crate::common::*;

const MANIFEST: &str = r#"apiVersion: shipctl/v1
releases:
  - { version: "1.0.0", tag: v1.0.0 }
  - { version: "1.1.0", tag: v1.1.0 }
environments:
  prod:
    release: "RELEASE"
    gates: { qa: { approvals: 1 } }
    executor: { simulate: { duration: 0s, failure_rate: 0 } }
"#;

fn declare(db: &TestDb, release: &str) {
    let dir = db.dir.path().join("manifests");
    std::fs::create_dir_all(&dir).expect("manifest dir");
    std::fs::write(
        dir.join("shipctl.yaml"),
        MANIFEST.replace("RELEASE", release),
    )
    .expect("write manifest");
}

/// What a newer shipctl could store: a canary step, a signed approval gate, and
/// an on_failure mode this version cannot parse.
const NEWER: &str = r#"{"gates":[{"name":"qa","gate":{"approvals":1,"sign":true}}],"canary":{"steps":[10,50]},"executor":{"simulate":{"duration":"0s","failure_rate":0.0}},"on_failure":"hold","max_attempts":3}"#;
const UNKNOWN: &str = "canary, gates.qa.sign, on_failure";

/// prod on 1.0.0 (approved, deployed), then a pending 1.1.0 deployment, then a
/// newer shipctl's policy stored over this version's.
fn setup(db: &TestDb) -> i64 {
    declare(db, "1.0.0");
    db.expect(&["reconcile", "--manifests", "manifests"], 4);
    let first = db
        .scalar("SELECT MAX(id) FROM deploiements")
        .parse::<i64>()
        .expect("id");
    db.expect(
        &[
            "approve",
            "--deploy-id",
            &first.to_string(),
            "--gate",
            "qa",
            "--by",
            "alice",
        ],
        0,
    );
    db.expect(&["reconcile", "--manifests", "manifests"], 0);
    let next = db
        .scalar("SELECT id FROM releases WHERE version = '1.1.0'")
        .parse::<i64>()
        .expect("id");
    let pending = plan(db, next, "prod");
    db.query(&format!(
        "UPDATE environnements SET policy = '{NEWER}' WHERE nom = 'prod'"
    ));
    pending
}

fn refused(db: &TestDb, args: &[&str]) {
    let before = db.snapshot();
    let r = db.expect(args, 1);
    assert!(
        r.stderr.contains(&format!(
            "the policy of prod was written by a newer shipctl (it has {UNKNOWN}, which this \
             version does not know); upgrade shipctl"
        )),
        "{args:?} on {:?}:\n{}",
        db.backend,
        r.stderr
    );
    assert_eq!(
        db.snapshot(),
        before,
        "{args:?} wrote to the ledger on {:?}",
        db.backend
    );
}

#[test]
fn status_shows_a_newer_policy_and_nothing_acts_on_it() {
    each_backend(|db| {
        let pending = setup(db);
        let id = pending.to_string();

        let text = db.expect(&["status", "--env", "prod"], 0);
        assert!(
            text.stdout.contains(&format!(
                "policy written by a newer shipctl: {UNKNOWN}; upgrade shipctl to deploy to prod"
            )),
            "{:?}: {}",
            db.backend,
            text.stdout
        );
        let json = db
            .expect(&["status", "--env", "prod", "--output", "json"], 0)
            .json();
        assert_eq!(
            json["newer_policy"]["unknown_fields"],
            serde_json::json!(["canary", "gates.qa.sign", "on_failure"]),
            "{json:#}"
        );
        assert!(json["live"]["version"] == "1.0.0", "{json:#}");
        let all = db.expect(&["status", "--output", "json"], 0).json();
        assert!(
            all["environments"][0]["newer_policy"].is_null(),
            "dev has no stored policy: {all:#}"
        );

        refused(db, &["approve", "--deploy-id", &id, "--gate", "qa"]);
        refused(
            db,
            &[
                "validate",
                "--deploy-id",
                &id,
                "--duration",
                "0s",
                "--failure-rate",
                "0",
            ],
        );
        refused(db, &["rollback", "--deploy-id", &id]);
        declare(db, "1.1.0");
        refused(db, &["reconcile", "--manifests", "manifests"]);

        let before = db.snapshot();
        let plan = db.expect(&["reconcile", "--dry-run", "--manifests", "manifests"], 1);
        assert!(
            plan.stdout.contains(&format!(
                "REFUSED: policy written by a newer shipctl: {UNKNOWN}; upgrade shipctl to deploy to prod"
            )),
            "{:?}: {}",
            db.backend,
            plan.stdout
        );
        assert!(plan.stderr.contains("upgrade shipctl"), "{}", plan.stderr);
        let json = db
            .expect(
                &[
                    "reconcile",
                    "--dry-run",
                    "--manifests",
                    "manifests",
                    "--output",
                    "json",
                ],
                1,
            )
            .json();
        let prod = &json["plan"]["environments"][0];
        assert_eq!(prod["env"], "prod", "{json:#}");
        assert_eq!(
            prod["policy_unknown"],
            serde_json::json!(["canary", "gates.qa.sign", "on_failure"]),
            "{json:#}"
        );
        assert_eq!(db.snapshot(), before);
        assert_eq!(db.state(pending), "planifié");
    });
}

#[test]
fn a_policy_of_this_version_is_acted_on() {
    // The control: the same steps with this version's own policy go through.
    each_backend(|db| {
        declare(db, "1.0.0");
        db.expect(&["reconcile", "--manifests", "manifests"], 4);
        let id = db.scalar("SELECT MAX(id) FROM deploiements");
        db.expect(&approval(&id, "alice"), 0);
        let status = db
            .expect(&["status", "--env", "prod", "--output", "json"], 0)
            .json();
        assert!(status["newer_policy"].is_null(), "{status:#}");
        db.expect(&["reconcile", "--manifests", "manifests"], 0);
        assert_eq!(db.state(id.parse().expect("id")), "réussi");
    });
}
