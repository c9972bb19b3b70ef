//! One active watcher per ledger (DESIGN §11): two `reconcile --watch` on one
//! ledger elect a leader through a lease row; only the leader applies; a
//! leader killed with SIGKILL is replaced within two lease terms; a leader
//! that stops gives the leadership up at once. On the three backends.

use crate::common::*;

use std::time::Duration;

const TTL: Duration = Duration::from_secs(2);

fn manifest(release: &str) -> String {
    format!(
        "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\n  - {{ version: \"1.1\", tag: v1.1 }}\n\
         environments:\n  prod: {{ release: \"{release}\", executor: \
         {{ simulate: {{ duration: 0s, failure_rate: 0 }} }} }}\n"
    )
}

fn actors(db: &TestDb) -> Vec<String> {
    db.query("SELECT DISTINCT acteur FROM audit_logs WHERE id_deploiement IS NOT NULL")
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
}

fn leader_holder(db: &TestDb) -> Option<String> {
    let st = db.expect(&["status", "--output", "json"], 0).json();
    st["leader"]["holder"].as_str().map(str::to_string)
}

#[test]
fn one_watcher_applies_and_a_standby_takes_over_from_a_dead_leader() {
    each_backend(|db| {
        declare(db, &manifest("1.0"));
        let mut first = watcher(db, "w1", &[]);
        until("1.0 live", Duration::from_secs(20), &[&first], || {
            live_in(db, "prod").as_deref() == Some("1.0")
        });
        let second = watcher(db, "w2", &[]);
        until(
            "the second watcher in standby",
            Duration::from_secs(10),
            &[&second],
            || {
                second
                    .stderr()
                    .contains("leads; this one takes over if it stops renewing")
            },
        );
        let holder = leader_holder(db).expect("a leader");
        assert!(holder.contains(&format!(":{}:", first.pid())), "{holder}");
        assert_eq!(actors(db), ["w1"], "{:?}", db.backend);

        // The leader dies without a word: the standby takes over and applies
        // the next change within two lease terms (and the debounce).
        first.kill();
        declare(db, &manifest("1.1"));
        let took = until(
            "1.1 applied by the standby",
            2 * TTL + Duration::from_secs(6),
            &[&second],
            || live_in(db, "prod").as_deref() == Some("1.1"),
        );
        assert!(took <= 2 * TTL + Duration::from_secs(2), "{took:?}");
        let deployer = db.scalar(
            "SELECT acteur FROM audit_logs WHERE action = 'deployment.started' \
             ORDER BY id DESC LIMIT 1",
        );
        assert_eq!(deployer, "w2", "{:?}", db.backend);
        let holder = leader_holder(db).expect("a leader");
        assert!(holder.contains(&format!(":{}:", second.pid())), "{holder}");
        assert!(
            second.stderr().contains("watch: this watcher leads now"),
            "{}",
            second.log()
        );

        // A leader that stops gives the leadership up.
        second.signal(libc::SIGTERM);
        let (run, _) = second.finish(Duration::from_secs(5), "SIGTERM");
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(leader_holder(db), None, "{:?}", db.backend);
    });
}
