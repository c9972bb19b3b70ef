//! The brief's scenario end to end through the real binary, on every backend:
//! create, deploy, validate (success and forced failure), status, rollback of a
//! pending and of a live deployment, with the audit rows of each step.

use crate::common::*;

fn row(a: &str, before: &str, after: &str) -> (String, String, String) {
    (a.into(), before.into(), after.into())
}

#[test]
fn seed_scenario_on_every_backend() {
    each_backend(|db| {
        // release --create prints the id and audits the creation.
        let r1 = release(db, "1.0.1");
        let r2 = release(db, "1.0.2");
        assert_eq!((r1, r2), (1, 2));
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM audit_logs WHERE action = 'release.created' AND id_deploiement IS NULL"),
            "2"
        );
        assert_eq!(
            db.query("SELECT version, tag_git FROM releases ORDER BY id"),
            vec![
                vec!["1.0.1".to_string(), "v1.0.1".into()],
                vec!["1.0.2".into(), "v1.0.2".into()]
            ]
        );

        // deploy plans a planifié row.
        let d1 = plan(db, r1, "prod");
        assert_eq!(db.state(d1), "planifié");
        assert_eq!(
            db.audit(d1),
            vec![row("deployment.planned", "NULL", "planifié")]
        );

        // validate: success.
        let out = db.expect(
            &[
                "validate",
                "--deploy-id",
                &d1.to_string(),
                "--duration",
                "100ms",
                "--failure-rate",
                "0",
            ],
            0,
        );
        assert!(
            out.stdout.contains("1.0.1 is live in prod"),
            "{}",
            out.stdout
        );
        assert_eq!(db.state(d1), "réussi");
        assert_eq!(
            db.audit(d1),
            vec![
                row("deployment.planned", "NULL", "planifié"),
                row("deployment.validated", "planifié", "validé"),
                row("deployment.started", "validé", "en_cours"),
                row("deployment.succeeded", "en_cours", "réussi"),
            ]
        );
        assert_eq!(
            db.scalar(&format!(
                "SELECT lease_expires_at IS NULL FROM deploiements WHERE id = {d1}"
            )),
            "1"
        );

        // validate: forced failure rolls back to planifié with the error audited.
        let d2 = plan(db, r2, "prod");
        let out = db.expect(
            &[
                "validate",
                "--deploy-id",
                &d2.to_string(),
                "--duration",
                "0s",
                "--failure-rate",
                "1",
            ],
            3,
        );
        assert!(out.stdout.contains("failed"), "{}", out.stdout);
        assert_eq!(db.state(d2), "planifié");
        let failed = db.query(&format!(
            "SELECT message FROM audit_logs WHERE id_deploiement = {d2} AND action = 'deployment.failed'"
        ));
        assert_eq!(failed.len(), 1);
        assert!(failed[0][0].contains("simulated failure"), "{:?}", failed);
        assert_eq!(
            db.scalar(&format!(
                "SELECT attempts FROM deploiements WHERE id = {d2}"
            )),
            "1"
        );

        // status: live is still 1.0.1; 1.0.2 is pending.
        let st = db
            .expect(&["status", "--env", "prod", "--output", "json"], 0)
            .json();
        assert_eq!(st["live"]["version"], "1.0.1");
        assert_eq!(st["pending"][0]["id"], d2);
        assert_eq!(st["pending"][0]["state"], "planifié");
        assert!(st["in_progress"].is_null());
        let text = db.expect(&["status", "--env", "prod"], 0).stdout;
        assert!(text.contains("live") && text.contains("1.0.1"), "{text}");

        // Retry succeeds: 1.0.2 is live, attempt 2.
        succeed(db, d2);
        assert_eq!(db.state(d2), "réussi");
        assert_eq!(
            db.scalar(&format!(
                "SELECT attempts FROM deploiements WHERE id = {d2}"
            )),
            "2"
        );

        // rollback of a pending deployment: annulé, audited.
        let r3 = release(db, "1.0.3");
        let d3 = plan(db, r3, "prod");
        db.expect(&["rollback", "--deploy-id", &d3.to_string()], 0);
        assert_eq!(db.state(d3), "annulé");
        assert_eq!(
            db.audit(d3).last().cloned(),
            Some(row("deployment.cancelled", "planifié", "annulé"))
        );

        // rollback of the live deployment: 1.0.1 redeployed, d2 annulé, prod pinned.
        let out = db.expect(
            &[
                "rollback",
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
        let j = out.json();
        assert_eq!(j["action"], "restored");
        let restore = j["deployment"]["id"].as_i64().expect("restore id");
        assert_eq!(db.state(d2), "annulé");
        assert_eq!(db.state(restore), "réussi");
        assert_eq!(
            db.scalar(&format!(
                "SELECT restores_id FROM deploiements WHERE id = {restore}"
            )),
            d2.to_string()
        );
        assert_eq!(
            db.audit(d2).last().cloned(),
            Some(row("deployment.rolled_back", "réussi", "annulé"))
        );
        assert_eq!(
            db.audit(restore).last().cloned(),
            Some(row("pin.set", "NULL", "NULL"))
        );
        assert_eq!(
            db.scalar("SELECT r.version FROM environnements e JOIN releases r ON r.id = e.pinned_release_id WHERE e.nom = 'prod'"),
            "1.0.1"
        );
        let st = db
            .expect(&["status", "--env", "prod", "--output", "json"], 0)
            .json();
        assert_eq!(st["live"]["version"], "1.0.1");
        assert_eq!(st["pin"]["version"], "1.0.1");
        assert_eq!(st["pin"]["blocks_version"], "1.0.2");

        // Rolling back the restore goes further back only if there is an older
        // release: here 1.0.1 is the first one, so it is refused, nothing written.
        let before = db.snapshot();
        let out = db.expect(&["rollback", "--deploy-id", &restore.to_string()], 1);
        assert!(out.stderr.contains("no previous release"), "{}", out.stderr);
        assert_eq!(db.snapshot(), before);

        // unpin lifts the pin, audited.
        db.expect(&["unpin", "--env", "prod"], 0);
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM environnements WHERE pinned_release_id IS NOT NULL"),
            "0"
        );
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM audit_logs WHERE action = 'pin.lifted'"),
            "1"
        );

        // Every state change is audited: no deployment without its rows.
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM deploiements d WHERE NOT EXISTS (SELECT 1 FROM audit_logs a WHERE a.id_deploiement = d.id)"),
            "0"
        );
    });
}

#[test]
fn failed_rollback_leaves_the_live_release() {
    each_backend(|db| {
        let r1 = release(db, "2.0.0");
        let r2 = release(db, "2.0.1");
        let d1 = plan(db, r1, "staging");
        succeed(db, d1);
        let d2 = plan(db, r2, "staging");
        succeed(db, d2);
        let out = db.expect(
            &[
                "rollback",
                "--deploy-id",
                &d2.to_string(),
                "--duration",
                "0s",
                "--failure-rate",
                "1",
                "--output",
                "json",
            ],
            3,
        );
        let j = out.json();
        let restore = j["deployment"]["id"].as_i64().expect("restore id");
        assert_eq!(db.state(d2), "réussi", "the live deployment is untouched");
        assert_eq!(db.state(restore), "annulé");
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM environnements WHERE pinned_release_id IS NOT NULL"),
            "0"
        );
        let st = db
            .expect(&["status", "--env", "staging", "--output", "json"], 0)
            .json();
        assert_eq!(st["live"]["version"], "2.0.1");
    });
}

#[test]
fn attempts_exhausted_cancel_the_deployment() {
    each_backend(|db| {
        let r = release(db, "3.0.0");
        let d = plan(db, r, "dev");
        let fail = [
            "validate",
            "--deploy-id",
            &d.to_string(),
            "--duration",
            "0s",
            "--failure-rate",
            "1",
        ];
        db.expect(&fail, 3);
        db.expect(&fail, 3);
        assert_eq!(db.state(d), "planifié");
        db.expect(&fail, 3);
        assert_eq!(db.state(d), "annulé", "third failed attempt of 3 cancels");
        let out = db.expect(&fail, 1);
        assert!(out.stderr.contains("annulé"), "{}", out.stderr);
    });
}
