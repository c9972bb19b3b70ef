//! What users read, snapshot-tested: every command's text output in the states
//! that matter, as a console transcript per scenario (`snapshots/*.snap`), so
//! that a change to what users see is a reviewed change.
//!
//! Each scenario runs the real binary on a SQLite ledger of its own, with the
//! outcome of every run forced (`--failure-rate 0|1`, `--seed`) and manifests
//! written here. Only what varies between runs is masked: timestamps, measured
//! durations, lease holders and the temp directory. A changed output fails the
//! test; `INSTA_UPDATE=always cargo test --test it snapshots::` rewrites the
//! files for review (`git diff tests/it/snapshots/`).

use crate::common::*;

/// A console transcript: each command, its stdout, its stderr (marked), and
/// its exit code when it is not 0.
struct Session {
    db: TestDb,
    transcript: String,
}

impl Session {
    fn new() -> Session {
        Session {
            db: TestDb::new(Backend::Sqlite).expect("sqlite"),
            transcript: String::new(),
        }
    }

    /// Runs `shipctl LINE` (its words split at spaces), which must exit
    /// `code`, and records it.
    fn run(&mut self, line: &str, code: i32) -> Run {
        self.run_args(&line.split_whitespace().collect::<Vec<_>>(), code)
    }

    /// [`Session::run`] for arguments that hold spaces.
    fn run_args(&mut self, args: &[&str], code: i32) -> Run {
        let r = self.db.expect(args, code);
        self.record(args, &r);
        r
    }

    /// A line of the transcript that is not a command: what the test changed.
    fn note(&mut self, text: &str) {
        self.transcript.push_str(&format!("# {text}\n"));
    }

    fn record(&mut self, args: &[&str], r: &Run) {
        let words: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains(' ') {
                    format!("{a:?}")
                } else {
                    a.to_string()
                }
            })
            .collect();
        let t = &mut self.transcript;
        t.push_str(&format!("$ shipctl {}\n", words.join(" ")));
        t.push_str(&r.stdout);
        if !r.stderr.is_empty() {
            t.push_str("[stderr]\n");
            t.push_str(&r.stderr);
        }
        if r.code != 0 {
            t.push_str(&format!("[exit {}]\n", r.code));
        }
        t.push('\n');
    }

    /// Compares the transcript with `snapshots/NAME.snap`.
    fn assert(&self, name: &str) {
        let mut settings = insta::Settings::clone_current();
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        let dir = self.db.dir.path().display().to_string();
        settings.add_filter(&escape(&dir), "[dir]");
        for (pattern, replacement) in MASKS {
            settings.add_filter(pattern, replacement);
        }
        settings.bind(|| insta::assert_snapshot!(name, self.transcript));
    }
}

/// What varies between runs, and only that.
const MASKS: [(&str, &str); 6] = [
    // 2026-11-30 20:24:18 or 2026-11-30T20:24:18.123Z: as wide as before,
    // so that tables keep their columns.
    (
        r"\d{4}-\d\d-\d\d([ T])\d\d:\d\d:\d\d(\.\d+)?",
        "YYYY-MM-DD${1}hh:mm:ss",
    ),
    // Measured: `(deployment 1, 0.3s)`, `failed after 0.0s`.
    (r"\b\d+\.\d+s\b", "[duration]"),
    // Measured: `ran 12ms`, `passed in 3ms`, `failed after 4ms`.
    (r"\b(ran|in|after) \d+ms\b", "$1 [duration]"),
    // host:pid:nonce
    (r"[^\s:(]+:\d+:[0-9a-f]{8}\b", "[holder]"),
    // The ledger's random id.
    (r"\b[0-9a-f]{32}\b", "[ledger-id-----------------------]"),
    // SSH keys made by the test: their fingerprints.
    (r"SHA256:[A-Za-z0-9+/]{43}", "SHA256:[fingerprint]"),
];

/// `text` as a regular expression that matches exactly it.
fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = r"\.+*?()|[]{}^$#&-~".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

const SIM_OK: &str = "{ simulate: { duration: 0s, failure_rate: 0 } }";

// ------------------------------------------------------------ imperative commands

#[test]
fn releases_deployments_status_history_and_rollbacks() {
    let mut s = Session::new();
    s.run("status", 1);
    s.run("release --create 1.0.0 --tag v1.0.0", 0);
    s.run("release --create 1.1.0 --tag v1.1.0", 0);
    s.run("release --create 1.2.0 --tag v1.2.0", 0);
    s.run("release --list", 0);
    s.run("status", 0);
    s.run("deploy --release 1 --env prod", 0);
    s.run("validate --deploy-id 1 --duration 0s --failure-rate 0", 0);
    s.run("deploy --release 2 --env prod", 0);
    s.run("validate --deploy-id 2 --duration 0s --failure-rate 1", 3);
    s.run("status --env prod", 0);
    s.run(
        "validate --deploy-id 2 --duration 0s --failure-rate 0.5 --seed 1",
        0,
    );
    s.run("deploy --release 3 --env prod", 0);
    s.run("rollback --deploy-id 3", 0);
    s.run("rollback --deploy-id 2 --duration 0s --failure-rate 0", 0);
    s.run("status --env prod", 0);
    s.run("unpin --env prod", 0);
    s.run("deploy --release 1 --env staging", 0);
    s.run("validate --deploy-id 5 --duration 0s --failure-rate 0", 0);
    s.run("status", 0);
    s.run("history --env prod", 0);
    s.run("audit --env prod --limit 4", 0);
    s.assert("imperative");
}

/// A command executor whose run fails: its rollback command restores the
/// release that was live, and validate says so.
#[test]
fn a_failed_run_has_the_previous_release_restored() {
    let mut s = Session::new();
    declare(
        &s.db,
        r#"releases:
  - { version: "1.0.0", tag: v1.0.0 }
  - { version: "1.1.0", tag: v1.1.0 }
environments:
  prod:
    release: "1.0.0"
    on_failure: cancel
    executor:
      command:
        run: ["sh", "-c", "echo installing $SHIPCTL_VERSION; [ $SHIPCTL_VERSION = 1.0.0 ]"]
        rollback: ["sh", "-c", "echo restoring $SHIPCTL_VERSION"]
"#,
    );
    s.run("reconcile", 0);
    s.run("deploy --release 2 --env prod", 0);
    s.run("validate --deploy-id 2", 3);
    s.run("audit --deploy-id 2", 0);
    s.assert("failed_run");
}

// ------------------------------------------------------------ gates

#[test]
fn approvals_and_rejections_at_a_gate() {
    let mut s = Session::new();
    let gated = |release: &str| {
        format!(
            "releases:\n  - {{ version: \"1.0.0\", tag: v1.0.0 }}\n  - {{ version: \"1.1.0\", tag: v1.1.0 }}\n\
             environments:\n  prod:\n    release: \"{release}\"\n    gates:\n      \
             qa: {{ approvals: 1, approvers: [alice, bob] }}\n    executor: {SIM_OK}\n"
        )
    };
    declare(&s.db, &gated("1.0.0"));
    s.run("reconcile", 4);
    s.run("validate --deploy-id 1", 4);
    s.run("status --env prod", 0);
    s.run("approve --deploy-id 1 --gate qa --by alice", 0);
    s.run("validate --deploy-id 1", 0);
    s.note("the manifests now declare 1.1.0");
    declare(&s.db, &gated("1.1.0"));
    s.run("reconcile", 4);
    let mut reject: Vec<&str> = "approve --deploy-id 2 --gate qa --by bob --reject --reason"
        .split_whitespace()
        .collect();
    reject.push("login page broken on Safari");
    s.run_args(&reject, 0);
    s.run("validate --deploy-id 2", 3);
    s.run("history --env prod", 0);
    s.assert("gates");
}

#[test]
fn signed_approvals_and_a_forged_one() {
    let mut s = Session::new();
    let dir = s.db.dir.path().to_path_buf();
    let alice = crate::common::ssh::keygen(&dir, "alice", "ed25519", "");
    let bob = crate::common::ssh::keygen(&dir, "bob", "rsa", "");
    declare(
        &s.db,
        &format!(
            "releases:\n  - {{ version: \"1.0.0\", tag: v1.0.0 }}\nenvironments:\n  prod:\n    \
             release: \"1.0.0\"\n    gates:\n      qa:\n        approvals: 2\n        \
             approvers: {{ alice: \"{}\", bob: \"{}\" }}\n    executor: {SIM_OK}\n",
            alice.public, bob.public
        ),
    );
    s.run("reconcile", 4);
    s.run("approve --deploy-id 1 --gate qa --by alice --sign alice", 0);
    s.run("approve --deploy-id 1 --gate qa --by bob", 1);
    s.run("approve --deploy-id 1 --gate qa --by bob --sign alice", 1);
    s.note("alice's signed approval copied into bob's name, with SQL");
    s.db.query(
        "INSERT INTO gate_results (id_deploiement, gate, kind, outcome, acteur, message, \
         signature, signed_statement) SELECT id_deploiement, gate, kind, outcome, 'bob', \
         message, signature, signed_statement FROM gate_results",
    );
    s.run("status --env prod", 0);
    s.run("reconcile --dry-run", 2);
    s.run("validate --deploy-id 1", 4);
    s.run("approve --deploy-id 1 --gate qa --by bob --sign bob", 0);
    s.run("validate --deploy-id 1", 0);
    s.run("history --env prod", 0);
    s.assert("signed");
}

// ------------------------------------------------------------ manifests

/// dev, then staging and prod, each requiring the one before, all on `release`.
fn three_environments(release: &str) -> String {
    let mut s = String::from(
        "releases:\n  - { version: \"1.0.0\", tag: v1.0.0 }\n  - { version: \"1.1.0\", tag: v1.1.0 }\n\
         environments:\n",
    );
    for (env, requires) in [
        ("dev", None),
        ("staging", Some("dev")),
        ("prod", Some("staging")),
    ] {
        s.push_str(&format!("  {env}:\n    release: \"{release}\"\n"));
        if let Some(r) = requires {
            s.push_str(&format!("    requires: {r}\n"));
        }
        s.push_str(&format!("    executor: {SIM_OK}\n"));
    }
    s
}

#[test]
fn check_and_reconcile() {
    let mut s = Session::new();
    declare(&s.db, &three_environments("1.0.0"));
    s.run("check", 0);
    s.run("reconcile --dry-run", 2);
    s.run("reconcile", 0);
    s.run("reconcile", 0);
    s.run("reconcile --dry-run", 0);
    s.run("reconcile --dry-run --output markdown", 0);
    s.note("the manifests now declare 1.1.0");
    declare(&s.db, &three_environments("1.1.0"));
    s.run("reconcile --dry-run", 2);
    s.run("reconcile --dry-run --output markdown", 2);
    s.run("reconcile --failure-rate 1", 3);
    s.run("reconcile --failure-rate 0", 0);
    s.assert("reconcile");
}

#[test]
fn manifest_errors() {
    let mut s = Session::new();
    declare(
        &s.db,
        "releases:\n  - { version: \"1.0.0\", tag: v1.0.0 }\nenvironments:\n  prod:\n    release: \"1.0.0\"\n    retries: 3\n",
    );
    s.run("check", 1);
    declare(&s.db, "environments:\n  prod:\n    release: \"2.0.0\"\n");
    s.run("check", 1);
    s.run("reconcile", 1);
    s.assert("manifest_errors");
}

// ------------------------------------------------------------ errors

#[test]
fn errors_say_what_happened_and_what_to_do() {
    let mut s = Session::new();
    s.run("release --create 1.0.0 --tag v1.0.0", 0);
    s.run("release --create 1.0.0 --tag v1.0.1", 1);
    s.run("deploy --release 9 --env prod", 1);
    s.run("validate --deploy-id 9", 1);
    s.run("deploy --release 1 --env qa", 1);
    s.run("validate --deploy-id 1 --failure-rate 1.5", 1);
    s.run("deploy --release", 1);
    s.run("rollout", 1);
    s.assert("errors");
}
