//! The files in `examples/` as a user runs them: the apply workflow's script
//! with the real binary and ledger (a wait for approval passes the job, a failed
//! deployment fails it), the systemd pull unit's `git pull` applied by the
//! watch that the watch unit runs, where the README installs it, the README's
//! deploy-windows example checked and stored, and the verified-deploy demo
//! played end to end.

use crate::common::servers::free_port;
use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn example(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

// ------------------------------------------------------------ GitHub Actions

/// A step of a workflow, by name: its `run` script, its `shell`, its `env`.
struct Step {
    run: String,
    shell: Option<String>,
    env: serde_yaml::Mapping,
}

fn workflow_step(file: &str, name: &str) -> Step {
    let wf: serde_yaml::Value = serde_yaml::from_str(&example(file)).expect("workflow YAML");
    let jobs = wf["jobs"].as_mapping().expect("jobs");
    for job in jobs.values() {
        for step in job["steps"].as_sequence().expect("steps") {
            if step["name"].as_str() == Some(name) {
                return Step {
                    run: step["run"].as_str().expect("run").to_string(),
                    shell: step["shell"].as_str().map(str::to_string),
                    env: step["env"].as_mapping().cloned().unwrap_or_default(),
                };
            }
        }
    }
    panic!("{file} has no step named {name:?}");
}

/// What a run of the step left: its exit code, its log, its job summary, its
/// outputs.
struct StepRun {
    code: Option<i32>,
    log: String,
    summary: String,
    output: String,
}

/// Runs the step's script the way GitHub runs `shell: bash`
/// (`bash --noprofile --norc -eo pipefail`), in the test's directory, with the
/// real shipctl first on PATH and `actor` as the `SHIPCTL_ACTOR` that the
/// workflow's expression resolved to.
fn run_step(db: &TestDb, step: &Step, actor: &str) -> StepRun {
    run_step_with(db, step, actor, &[])
}

/// [`run_step`] with more of the variables GitHub sets (`GITHUB_EVENT_NAME`,
/// the step's own `env:` as its expressions resolved).
fn run_step_with(db: &TestDb, step: &Step, actor: &str, vars: &[(&str, &str)]) -> StepRun {
    let dir = db.dir.path();
    let script = dir.join("step.sh");
    std::fs::write(&script, &step.run).expect("write the step's script");
    let summary = dir.join("summary.md");
    let output = dir.join("output.txt");
    let _ = std::fs::remove_file(&summary);
    let _ = std::fs::remove_file(&output);
    let bin = Path::new(env!("CARGO_BIN_EXE_shipctl"))
        .parent()
        .expect("the binary's directory")
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let out = Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail"])
        .arg(&script)
        .current_dir(dir)
        .env("PATH", path)
        .env("SHIPCTL_DATABASE_URL", &db.url)
        .env("SHIPCTL_ACTOR", actor)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &output)
        .env("NO_COLOR", "1")
        .env_remove("SHIPCTL_LEASE_TTL")
        .envs(vars.iter().copied())
        .output()
        .expect("run bash");
    StepRun {
        code: out.status.code(),
        log: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        output: std::fs::read_to_string(&output).unwrap_or_default(),
    }
}

const GATED: &str = r#"releases:
  - { version: "1.0", tag: v1.0 }
environments:
  prod:
    release: "1.0"
    gates:
      qa: { approvals: 1, approvers: [alice] }
    executor: { simulate: { duration: 0s, failure_rate: 0 } }
"#;

const FAILING: &str = r#"releases:
  - { version: "1.0", tag: v1.0 }
  - { version: "2.0", tag: v2.0 }
environments:
  prod:
    release: "2.0"
    executor: { simulate: { duration: 0s, failure_rate: 1 } }
"#;

#[test]
fn the_apply_workflow_passes_on_a_wait_for_approval_and_fails_on_a_failure() {
    let step = workflow_step("examples/github/shipctl-apply.yml", "Reconcile");
    assert_eq!(step.shell.as_deref(), Some("bash"), "PIPESTATUS needs bash");
    let actor = step
        .env
        .get("SHIPCTL_ACTOR")
        .and_then(|v| v.as_str())
        .expect("the Reconcile step sets SHIPCTL_ACTOR");
    assert!(
        actor.contains("github.event.head_commit.author.username")
            && actor.contains("github.actor"),
        "SHIPCTL_ACTOR names the committer, else who triggered the run: {actor}"
    );

    each_backend(|db| {
        // Waiting for an approval: exit 4 inside, a notice and a passing job.
        declare(db, GATED);
        let r = run_step(db, &step, "octocat");
        assert_eq!(r.code, Some(0), "{:?}: {}", db.backend, r.log);
        assert!(
            r.log.contains("::notice title=shipctl: waiting::"),
            "{}",
            r.log
        );
        assert!(!r.log.contains("::error"), "{}", r.log);
        assert!(r.summary.contains("exit 4"), "{}", r.summary);
        assert!(r.summary.contains("waits for approval"), "{}", r.summary);
        assert_eq!(db.state(1), "planifié");
        // Every row the job wrote names the committer, not the runner's user.
        assert_eq!(
            db.query("SELECT DISTINCT acteur FROM audit_logs"),
            vec![vec!["octocat".to_string()]]
        );

        // Approved: the next push deploys, no notice.
        db.expect(&approval("1", "alice"), 0);
        let r = run_step(db, &step, "octocat");
        assert_eq!(r.code, Some(0), "{:?}: {}", db.backend, r.log);
        assert!(!r.log.contains("::notice"), "{}", r.log);
        assert!(r.summary.contains("exit 0"), "{}", r.summary);
        assert_eq!(db.state(1), "réussi");

        // A deployment that fails and is rolled back fails the job with its code.
        declare(db, FAILING);
        let r = run_step(db, &step, "octocat");
        assert_eq!(r.code, Some(3), "{:?}: {}", db.backend, r.log);
        assert!(
            r.log
                .contains("::error title=shipctl reconcile failed (exit 3)::"),
            "{}",
            r.log
        );
        assert!(r.summary.contains("exit 3"), "{}", r.summary);

        // So does an error: an invalid manifest, nothing written.
        declare(db, "environments: [\n");
        let before = db.snapshot();
        let r = run_step(db, &step, "octocat");
        assert_eq!(r.code, Some(1), "{:?}: {}", db.backend, r.log);
        assert!(
            r.log
                .contains("::error title=shipctl reconcile failed (exit 1)::"),
            "{}",
            r.log
        );
        assert_eq!(db.snapshot(), before);
    });
}

/// After a merge, the apply step applies the reviewed plan (downloaded to
/// reviewed/plan.json by the step before it), and reports a stale one clearly.
#[test]
fn the_apply_workflow_applies_the_reviewed_plan_or_reports_it_stale() {
    let step = workflow_step("examples/github/shipctl-apply.yml", "Reconcile");
    let push = [("GITHUB_EVENT_NAME", "push"), ("PLAN_RUN", "42")];
    each_backend(|db| {
        declare(db, GATED);
        release(db, "1.0");
        std::fs::create_dir_all(db.dir.path().join("reviewed")).expect("dir");
        let save = ["--out", "reviewed/plan.json"];
        db.expect(
            &[
                "reconcile",
                "--dry-run",
                "--manifests",
                "manifests",
                save[0],
                save[1],
            ],
            2,
        );
        let r = run_step_with(db, &step, "octocat", &push);
        assert_eq!(r.code, Some(0), "{:?}: {}", db.backend, r.log);
        assert!(
            r.summary.contains("the plan reviewed in run 42"),
            "{}",
            r.summary
        );
        assert!(r.summary.contains("exit 4"), "{}", r.summary);
        assert_eq!(db.state(1), "planifié");

        // The same plan again: the ledger moved (that apply planned deployment 1).
        let before = db.rows_hash();
        let r = run_step_with(db, &step, "octocat", &push);
        assert_eq!(r.code, Some(1), "{:?}: {}", db.backend, r.log);
        assert!(
            r.log.contains("::error title=shipctl: stale plan::"),
            "{}",
            r.log
        );
        assert!(r.summary.contains("**Stale plan**"), "{}", r.summary);
        assert!(
            r.summary
                .contains("stale plan: prod changed since the plan: its policy was stored"),
            "{}",
            r.summary
        );
        assert_eq!(db.rows_hash(), before, "a stale plan wrote");
    });
}

/// The pull request's dry run: changes pending (exit 2) and in sync (exit 0)
/// pass and say which in the step's outputs, with the plan for the comment; an
/// error fails the step.
#[test]
fn the_plan_workflow_passes_on_changes_pending_and_fails_on_an_error() {
    let step = workflow_step("examples/github/shipctl-plan.yml", "Plan (dry run)");
    each_backend(|db| {
        declare(db, GATED);
        let r = run_step(db, &step, "octocat");
        assert_eq!(r.code, Some(0), "{:?}: {}", db.backend, r.log);
        assert_eq!(r.output, "changes=true\n");
        let plan = std::fs::read_to_string(db.dir.path().join("plan.md")).expect("plan.md");
        assert!(
            plan.contains("- **prod**: nothing → 1.0: deploys"),
            "{plan}"
        );
        // Saved for the merge: the file the artifact step uploads.
        let saved = std::fs::read_to_string(db.dir.path().join("plan.json")).expect("plan.json");
        assert!(saved.contains("\"manifest_digest\""), "{saved}");

        // Deployed (approved, then applied): in sync.
        db.expect(&["reconcile", "--manifests", "manifests"], 4);
        db.expect(&approval("1", "alice"), 0);
        db.expect(&["reconcile", "--manifests", "manifests"], 0);
        let r = run_step(db, &step, "octocat");
        assert_eq!(r.code, Some(0), "{:?}: {}", db.backend, r.log);
        assert_eq!(r.output, "changes=false\n");

        declare(db, "environments: [\n");
        let r = run_step(db, &step, "octocat");
        assert_eq!(r.code, Some(1), "{:?}: {}", db.backend, r.log);
        assert_eq!(r.output, "");
    });
}

#[test]
fn the_workflows_install_shipctl_from_a_configured_address_with_a_cache() {
    for file in [
        "examples/github/shipctl-apply.yml",
        "examples/github/shipctl-plan.yml",
    ] {
        let text = example(file);
        assert!(!text.contains("example.invalid"), "{file}: a placeholder");
        let install = workflow_step(file, "Install shipctl");
        assert!(
            install
                .run
                .contains(r#"cargo +stable install --locked --git "$SHIPCTL_GIT_URL" --rev "$SHIPCTL_GIT_REV" shipctl"#),
            "{file}: {}",
            install.run
        );
        assert!(
            text.contains("uses: actions/cache@v5")
                && text.contains("path: ~/.cargo/bin/shipctl")
                && text.contains("if: steps.cache.outputs.cache-hit != 'true'"),
            "{file}: the install is cached"
        );
        assert!(text.contains("uses: actions/checkout@v6"), "{file}");
    }
}

/// The install step, without its variables, stops with an error that names them.
#[test]
fn the_install_step_names_the_variables_it_needs() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let step = workflow_step("examples/github/shipctl-apply.yml", "Install shipctl");
    let r = run_step(&db, &step, "octocat");
    assert_eq!(r.code, Some(1), "{}", r.log);
    assert!(
        r.log.contains("::error title=shipctl is not configured::")
            && r.log.contains("SHIPCTL_GIT_URL")
            && r.log.contains("SHIPCTL_GIT_REV"),
        "{}",
        r.log
    );
}

// ------------------------------------------------------------------ systemd

/// `Key=Value` lines of a unit file (comments and sections left out).
fn unit(path: &str) -> Vec<(String, String)> {
    example(path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn key<'a>(unit: &'a [(String, String)], k: &str) -> &'a str {
    unit.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {k}= in the unit"))
}

#[test]
fn the_service_runs_shipctl_where_the_readme_installs_it() {
    let watch = unit("examples/systemd/shipctl-watch.service");
    let pull = unit("examples/systemd/shipctl-pull.service");
    let timer = unit("examples/systemd/shipctl-pull.timer");
    let readme = example("README.md");

    let bin = key(&watch, "ExecStart")
        .split_whitespace()
        .next()
        .expect("ExecStart");
    let copy = format!("install -m 0755 ~/.cargo/bin/shipctl {bin}");
    assert!(
        readme.contains("cargo install --locked --path .") && readme.contains(&copy),
        "the README installs shipctl where the unit runs it: {copy}"
    );
    // The pull unit pulls the checkout the watch runs in.
    let checkout = key(&watch, "WorkingDirectory");
    assert_eq!(
        key(&pull, "ExecStart"),
        format!("/usr/bin/git -C {checkout} pull --ff-only --quiet")
    );
    assert_eq!(key(&pull, "User"), key(&watch, "User"));
    assert_eq!(key(&timer, "OnUnitActiveSec"), "1min");
    for name in [
        "shipctl-watch.service",
        "shipctl-pull.service",
        "shipctl-pull.timer",
    ] {
        assert!(
            readme.contains(&format!("examples/systemd/{name}")),
            "the README copies {name}"
        );
    }
    assert!(readme.contains("systemctl enable --now shipctl-watch.service shipctl-pull.timer"));
}

// ------------------------------------------------------------ README

/// The first ```yaml block after the README's heading `heading`.
fn readme_yaml(heading: &str) -> String {
    let readme = example("README.md");
    let section = readme
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("the README has no {heading:?}"))
        .1;
    let block = section
        .split_once("```yaml\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .unwrap_or_else(|| panic!("no yaml block under {heading:?}"))
        .0;
    format!("{block}\n")
}

#[test]
fn the_readme_s_windows_example_passes_check() {
    let example = readme_yaml("## Deploy windows and four-eyes approvals");
    for needle in [
        "timezone: Europe/Paris",
        "allow:",
        "days: [fri], from: \"14:00\", to: \"24:00\"",
        "holiday freeze",
        "approvals: 2",
        "self_approval: false",
        "expires: 24h",
    ] {
        assert!(example.contains(needle), "{needle:?} in:\n{example}");
    }
    each_backend(|db| {
        let dir = db.dir.path().join("manifests");
        std::fs::create_dir_all(&dir).expect("manifests");
        std::fs::write(dir.join("prod.yaml"), &example).expect("write");
        std::fs::write(
            dir.join("releases.yaml"),
            "releases:\n  - { version: \"2.0.0\", tag: v2.0.0 }\n",
        )
        .expect("write");
        let r = db.expect(&["check", "--manifests", "manifests"], 0);
        assert!(r.stdout.contains("prod"), "{}", r.stdout);
        // Stored as written: whatever the time, status says when prod next
        // changes, on Paris's clock; it waits for two approvals first.
        let r = db.expect(&["reconcile", "--manifests", "manifests"], 4);
        assert!(r.stdout.contains("0 of 2 approvals"), "{}", r.stdout);
        let st = db
            .expect(&["status", "--env", "prod", "--output", "json"], 0)
            .json();
        let message = st["window"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("prod is ") && message.contains(" Europe/Paris"),
            "{st:#}"
        );
        // check reads the windows: a misspelled day is refused.
        std::fs::write(
            dir.join("prod.yaml"),
            example.replace("days: [fri]", "days: [friday]"),
        )
        .expect("write");
        let r = db.expect(&["check", "--manifests", "manifests"], 1);
        assert!(r.stderr.contains("windows.deny[0].days"), "{}", r.stderr);
    });
}

fn manifest(releases: &[&str], release: &str) -> String {
    let mut s = String::from("releases:\n");
    for r in releases {
        s.push_str(&format!("  - {{ version: \"{r}\", tag: v{r} }}\n"));
    }
    s.push_str(&format!(
        "environments:\n  prod: {{ release: \"{release}\", executor: {{ simulate: {{ duration: 0s, failure_rate: 0 }} }} }}\n"
    ));
    s
}

/// The watch unit's command, run in a clone; the pull unit's command, run on
/// that clone after a push: the pushed release goes live, nothing restarted.
#[test]
fn the_pull_unit_s_git_pull_is_applied_by_the_watch() {
    let watch_unit = unit("examples/systemd/shipctl-watch.service");
    let pull_unit = unit("examples/systemd/shipctl-pull.service");
    let checkout = key(&watch_unit, "WorkingDirectory").to_string();
    let watch_args: Vec<String> = key(&watch_unit, "ExecStart")
        .split_whitespace()
        .skip(1)
        .map(|a| {
            match a {
                "5m" => "1h".to_string(),
                // Any free port: tests run side by side.
                "127.0.0.1:9464" => "127.0.0.1:0".to_string(),
                _ => a.to_string(),
            }
        }) // no resync in the test
        .collect();
    let pull_args: Vec<String> = key(&pull_unit, "ExecStart")
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect();

    each_backend(|db| {
        let origin = db.dir.path().join("origin");
        std::fs::create_dir_all(origin.join("manifests")).expect("origin");
        git(&origin, &["init", "-q", "-b", "main"]);
        std::fs::write(
            origin.join("manifests/shipctl.yaml"),
            manifest(&["1.0"], "1.0"),
        )
        .expect("manifest");
        git(&origin, &["add", "-A"]);
        git(&origin, &["commit", "-q", "-m", "1.0"]);
        // The clone stands for the unit's checkout (/srv/deploy).
        let clone: PathBuf = db.dir.path().join("deploy");
        git(
            db.dir.path(),
            &[
                "clone",
                "-q",
                origin.to_str().expect("utf-8 path"),
                clone.to_str().expect("utf-8 path"),
            ],
        );

        let mut cmd = db.cmd();
        cmd.current_dir(&clone)
            .args(&watch_args)
            .stdin(std::process::Stdio::null());
        let mut w = Proc::spawn(cmd, format!("{} on {:?}", watch_args.join(" "), db.backend));
        // Announced once the ledger is open and migrated: it can be read from then on.
        w.wait_stderr("watch: reconciling (start)", 1, Duration::from_secs(20));
        w.wait_until_or(
            "1.0 live in prod",
            Duration::from_secs(20),
            || db.live("prod").as_deref() == Some("1.0"),
            || format!("\n(live: {:?})", db.live("prod")),
        );

        std::fs::write(
            origin.join("manifests/shipctl.yaml"),
            manifest(&["1.0", "2.0"], "2.0"),
        )
        .expect("manifest");
        git(&origin, &["commit", "-q", "-am", "2.0"]);
        let pull: Vec<String> = pull_args
            .iter()
            .map(|a| {
                if *a == checkout {
                    clone.display().to_string()
                } else {
                    a.clone()
                }
            })
            .collect();
        let out = Command::new("git").args(&pull).output().expect("git pull");
        assert!(
            out.status.success(),
            "git {pull:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        w.wait_until_or(
            "2.0 live in prod after the pull",
            Duration::from_secs(20),
            || db.live("prod").as_deref() == Some("2.0"),
            || format!("\n(live: {:?})", db.live("prod")),
        );
        assert!(
            w.stderr()
                .contains("watch: reconciling (manifests changed)"),
            "{}",
            w.log()
        );
        w.signal(libc::SIGTERM);
        let status = w.wait_exit(Duration::from_secs(5), "SIGTERM");
        assert_eq!(status.code(), Some(0), "{}", w.log());
    });
}

// ---------------------------------------------------------------- verified

/// `examples/verified/demo.sh` with the binary under test, in a directory and
/// on a port of its own: 1.0.0 verified, 1.1.0 caught by its check and rolled
/// back by the script, held (exit 4, a watch deploys nothing), 1.1.1 deployed
/// once the manifests declare it; the service stopped at the end.
#[test]
fn the_verified_demo_catches_the_bad_release_holds_it_and_deploys_the_fix() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("demo");
    let port = free_port();
    let mut cmd = Command::new("bash");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/verified/demo.sh"))
        .env("SHIPCTL_BIN", env!("CARGO_BIN_EXE_shipctl"))
        .env("VERIFIED_DEMO_DIR", &dir)
        .env("VERIFIED_PORT", port.to_string())
        .env("NO_COLOR", "1")
        .env("SHIPCTL_ACTOR", "alice")
        .env_remove("SHIPCTL_LEASE_TTL")
        .stdin(std::process::Stdio::null());
    let (run, took) = Proc::spawn(cmd, "examples/verified/demo.sh".into())
        .finish(Duration::from_secs(60), "its last step");
    let out = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(run.code, 0, "{out}");

    let serves = |v: &str| format!("http://127.0.0.1:{port}/version serves: {v}\n");
    let after = |needle: &str| -> &str {
        let at = out
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in the demo's output:\n{out}"));
        &out[at + needle.len()..]
    };
    // 1.0.0, verified.
    assert!(
        after("prod     – → 1.0.0    ✓ deployed").starts_with(" (deployment 1,"),
        "{out}"
    );
    // 1.1.0: deployed, caught, rolled back by the script, exit 3.
    let bad = after("# manifests: prod now declares 1.1.0");
    let caught = "✗ failed: verification failed after 3 tries: GET http://127.0.0.1:";
    assert!(bad.contains(caught), "{out}");
    let bad = after(caught);
    assert!(
        bad.contains("deployment 2 is échec, prod is back on 1.0.0 (its rollback command ran)\n(exit code 3)\n")
            && bad.contains(&serves("1.0.0")),
        "{out}"
    );
    // Held: exit 4, and a watch of 3 seconds plans nothing.
    assert!(
        bad.contains(
            "! 1.1.0 held: failed verification (deployment 2); declare another release, \
             or `shipctl deploy --release 2 --env prod` to try again\n(exit code 4)\n"
        ),
        "{out}"
    );
    // 1.1.1: the hold lifts, verified, served.
    let fixed = after("# manifests: prod now declares 1.1.1");
    assert!(
        fixed.contains("prod     1.0.0 → 1.1.1    ✓ deployed (deployment 3,")
            && fixed.contains("· lifted the hold")
            && fixed.contains(&serves("1.1.1")),
        "{out}"
    );

    // The demo's ledger says the same.
    let shipctl = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_shipctl"))
            .args(args)
            .args(["--output", "json"])
            .current_dir(&dir)
            .env_remove("SHIPCTL_DATABASE_URL")
            .output()
            .expect("run shipctl");
        Run::from(out).json()
    };
    let status = shipctl(&["status", "--env", "prod"]);
    assert_eq!(status["live"]["version"], "1.1.1", "{status:#}");
    assert!(status["hold"].is_null(), "{status:#}");
    let deployments: Vec<(String, String)> = status["recent"]
        .as_array()
        .expect("recent")
        .iter()
        .map(|d| {
            (
                d["version"].as_str().expect("version").to_string(),
                d["state"].as_str().expect("state").to_string(),
            )
        })
        .collect();
    assert_eq!(
        deployments,
        [("1.1.1", "réussi"), ("1.1.0", "échec"), ("1.0.0", "réussi")]
            .map(|(v, s)| (v.to_string(), s.to_string())),
        "one deployment of 1.1.0, whatever the watch saw"
    );
    let audit = shipctl(&["audit", "--env", "prod"]);
    let actions: Vec<&str> = audit["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["action"].as_str().expect("action"))
        .filter(|a| {
            a.starts_with("verification.") || a.starts_with("hold.") || a.starts_with("rollback_")
        })
        .collect();
    assert_eq!(
        actions,
        [
            "verification.passed",
            "verification.failed",
            "verification.failed",
            "verification.failed",
            "rollback_command.succeeded",
            "hold.set",
            "hold.lifted",
            "verification.passed",
        ],
        "{audit:#}"
    );

    // Nothing left listening.
    assert!(!dir.join("service.pid").exists());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the demo's service still listens on {port}"
    );
    eprintln!("examples/verified/demo.sh took {took:?}");
}
