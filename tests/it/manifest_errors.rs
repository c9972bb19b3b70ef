//! Manifests that must be refused, through the real binary: every way of
//! reading them (`check`, `reconcile`, `reconcile --dry-run`) exits 1 within a
//! bounded time, names the file and what is wrong, and writes nothing to a
//! ledger that already has content. `check` never opens a database.

use crate::common::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// No refusal may take longer than this (a hang is a failure, not a wait).
const BOUND: Duration = Duration::from_secs(10);

const SIM_OK: &str = "executor: { simulate: { duration: 0s, failure_rate: 0 } }";

// ---------------------------------------------------------------- helpers

fn dir(db: &TestDb, name: &str) -> PathBuf {
    let d = db.dir.path().join(name);
    std::fs::create_dir_all(&d).expect("manifest dir");
    d
}

fn write(db: &TestDb, file: &str, text: &str) {
    std::fs::write(dir(db, "manifests").join(file), text).expect("write manifest");
}

/// A ledger with content: releases 1.0 and 1.1, 1.1 live in dev and prod,
/// policies stored, all through `reconcile` of a valid directory `seed/`.
fn seeded(backend: Backend) -> Option<TestDb> {
    let db = TestDb::new(backend)?;
    let seed = dir(&db, "seed");
    std::fs::write(
        seed.join("shipctl.yaml"),
        format!(
            "releases:\n  - {{ version: \"1.0\", tag: v1.0 }}\n  - {{ version: \"1.1\", tag: v1.1 }}\n\
             environments:\n  dev: {{ release: \"1.1\", {SIM_OK} }}\n  \
             prod: {{ release: \"1.1\", requires: dev, {SIM_OK} }}\n"
        ),
    )
    .expect("seed manifest");
    db.expect(&["reconcile", "--manifests", "seed"], 0);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM deploiements WHERE etat = 'réussi'"),
        "2",
        "the seed ledger on {backend:?}"
    );
    Some(db)
}

/// Runs shipctl with `args` (plus `env` overrides), failing the test if it has
/// not exited within `bound` (from before the spawn): then how long it took.
fn run_bounded(
    db: &TestDb,
    args: &[&str],
    env: &[(&str, &str)],
    bound: Duration,
) -> (Run, Duration) {
    let started = Instant::now();
    let child = Proc::start_with(db, args, env);
    let left = bound.saturating_sub(started.elapsed());
    let (run, _) = child.finish(left, "its start: it hangs");
    (run, started.elapsed())
}

/// `check`, `reconcile` and `reconcile --dry-run` on `manifests` (or `dir`)
/// all exit 1 quickly, say every needle on stderr, and write nothing.
fn refused_in(db: &TestDb, manifests: &str, needles: &[&str]) {
    refused_within(db, manifests, needles, BOUND)
}

fn refused_within(db: &TestDb, manifests: &str, needles: &[&str], bound: Duration) {
    let before = db.snapshot();
    let runs: [&[&str]; 3] = [
        &["check", "--manifests", manifests],
        &["reconcile", "--manifests", manifests],
        &["reconcile", "--dry-run", "--manifests", manifests],
    ];
    for args in runs {
        let (r, took) = run_bounded(db, args, &[], bound);
        assert_eq!(
            r.code, 1,
            "shipctl {args:?} on {:?} exited {} (wanted 1)\nstdout:\n{}\nstderr:\n{}",
            db.backend, r.code, r.stdout, r.stderr
        );
        for n in needles {
            assert!(
                r.stderr.contains(n),
                "shipctl {args:?}: stderr does not mention {n:?}:\n{}",
                r.stderr
            );
        }
        assert!(
            r.stderr.contains("error:") && !r.stderr.contains("panicked"),
            "{}",
            r.stderr
        );
        assert!(
            took < bound,
            "shipctl {args:?} took {took:?} to refuse the manifests"
        );
    }
    assert_eq!(
        db.snapshot(),
        before,
        "refusing the manifests on {:?} wrote to the database",
        db.backend
    );
}

fn refused(db: &TestDb, needles: &[&str]) {
    refused_in(db, "manifests", needles)
}

fn reset_manifests(db: &TestDb) {
    let d = db.dir.path().join("manifests");
    if d.exists() {
        std::fs::remove_dir_all(&d).expect("clear manifests");
    }
    dir(db, "manifests");
}

fn sqlite() -> TestDb {
    seeded(Backend::Sqlite).expect("SQLite always runs")
}

// ---------------------------------------------------------------- traps

#[test]
fn unquoted_numeric_version_is_refused_with_a_hint_to_quote_it() {
    let db = sqlite();
    write(
        &db,
        "releases.yaml",
        "releases:\n  - version: 1.10\n    tag: v1.10\n",
    );
    write(
        &db,
        "envs.yaml",
        &format!("environments:\n  dev: {{ release: \"1.10\", {SIM_OK} }}\n"),
    );
    // The line and column of the number, the user's own text, and the fix.
    refused(
        &db,
        &["releases.yaml:2:", "1.10", "1.1", "quote it: \"1.10\""],
    );

    // A tag is a string too: an unquoted integer tag is refused the same way.
    reset_manifests(&db);
    write(
        &db,
        "releases.yaml",
        "releases:\n  - version: \"2.0\"\n    tag: 20\n",
    );
    refused(&db, &["releases.yaml:3:", "20", "quote it"]);
}

#[test]
fn a_key_defined_in_two_files_names_both_files() {
    let db = sqlite();
    let releases = "releases:\n  - { version: \"1.1\", tag: v1.1 }\n";
    write(&db, "a-releases.yaml", releases);
    write(
        &db,
        "b-prod.yaml",
        &format!("environments:\n  prod: {{ release: \"1.1\", {SIM_OK} }}\n"),
    );
    write(
        &db,
        "c-prod-again.yaml",
        &format!("environments:\n  prod: {{ release: \"1.1\", {SIM_OK} }}\n"),
    );
    refused(
        &db,
        &["environments.prod", "b-prod.yaml", "c-prod-again.yaml"],
    );

    // A release declared in two files.
    reset_manifests(&db);
    write(&db, "a.yaml", releases);
    write(&db, "b.yaml", releases);
    refused(&db, &["release 1.1", "a.yaml", "b.yaml"]);

    // The same environment twice in one file (YAML would keep the last one silently).
    reset_manifests(&db);
    write(
        &db,
        "twice.yaml",
        &format!(
            "{releases}environments:\n  dev: {{ release: \"1.1\" }}\n  dev: {{ release: \"1.1\" }}\n"
        ),
    );
    refused(&db, &["twice.yaml", "dev", "defined twice"]);
}

#[test]
fn an_unknown_environment_is_refused() {
    let db = sqlite();
    write(
        &db,
        "envs.yaml",
        "releases:\n  - { version: \"1.1\", tag: v1.1 }\nenvironments:\n  dev: { release: \"1.1\" }\n  qa: { release: \"1.1\" }\n",
    );
    refused(&db, &["envs.yaml:", "\"qa\"", "dev, staging", "prod"]);

    // `requires` is checked too.
    reset_manifests(&db);
    write(
        &db,
        "envs.yaml",
        "releases:\n  - { version: \"1.1\", tag: v1.1 }\nenvironments:\n  prod: { release: \"1.1\", requires: uat }\n",
    );
    refused(&db, &["envs.yaml", "\"uat\""]);
}

/// DESIGN §7: the error names the file "and line/column or key path where
/// known". The line must be the offending key's, not the start of the mapping
/// that holds it (in a long manifest, a wrong line sends the user elsewhere).
#[test]
fn errors_inside_environments_point_at_the_offending_line() {
    let db = sqlite();
    let head = "releases:\n  - { version: \"1.1\", tag: v1.1 }\nenvironments:\n  dev: { release: \"1.1\" }\n  staging: { release: \"1.1\" }\n";
    let cases = [
        // (the file's tail from line 6 on, the location expected on stderr)
        ("  qa: { release: \"1.1\" }\n", "envs.yaml:6:"),
        ("  dev: { release: \"1.1\" }\n", "envs.yaml:6:"),
        (
            "  prod:\n    release: \"1.1\"\n    requires: uat\n",
            "envs.yaml:8:",
        ),
    ];
    for (tail, place) in cases {
        reset_manifests(&db);
        write(&db, "envs.yaml", &format!("{head}{tail}"));
        let (r, _) = run_bounded(&db, &["check", "--manifests", "manifests"], &[], BOUND);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(
            r.stderr.contains(place),
            "the error for\n{head}{tail}should point at {place}, got:\n{}",
            r.stderr
        );
    }
}

#[test]
fn a_release_no_manifest_declares_is_refused() {
    let db = sqlite();
    write(
        &db,
        "releases.yaml",
        "releases:\n  - { version: \"1.1\", tag: v1.1 }\n",
    );
    write(
        &db,
        "prod.yaml",
        &format!("environments:\n  prod: {{ release: \"9.9\", {SIM_OK} }}\n"),
    );
    // 9.9 does not exist in the ledger either; still refused before any lookup.
    refused(
        &db,
        &[
            "prod.yaml:2",
            "environments.prod.release",
            "9.9",
            "not declared",
        ],
    );
}

#[test]
fn a_declared_version_with_another_tag_than_the_ledger_is_a_conflict() {
    for backend in ALL {
        let Some(db) = seeded(backend) else { continue };
        db.expect(&["release", "--create", "1.0.0", "--tag", "v1.0.0"], 0);
        write(
            &db,
            "releases.yaml",
            "releases:\n  - { version: \"1.0.0\", tag: v9 }\n  - { version: \"3.0\", tag: v3.0 }\n",
        );
        write(
            &db,
            "envs.yaml",
            &format!(
                "environments:\n  dev: {{ release: \"3.0\", {SIM_OK} }}\n  prod: {{ release: \"1.0.0\", {SIM_OK} }}\n"
            ),
        );
        // Offline, `check` cannot know: the manifests are well formed.
        db.expect(&["check", "--manifests", "manifests"], 0);
        // Against the ledger: refused before anything is written, even the
        // unrelated new release 3.0 and dev's deployment.
        let before = db.snapshot();
        for args in [
            &["reconcile", "--manifests", "manifests"][..],
            &["reconcile", "--dry-run", "--manifests", "manifests"][..],
        ] {
            let (r, took) = run_bounded(&db, args, &[], BOUND);
            assert_eq!(
                r.code, 1,
                "{args:?} on {backend:?}\nstdout:\n{}\nstderr:\n{}",
                r.stdout, r.stderr
            );
            for n in ["releases.yaml", "1.0.0", "v9", "v1.0.0", "immutable"] {
                assert!(r.stderr.contains(n), "{args:?}: no {n:?} in:\n{}", r.stderr);
            }
            assert!(took < BOUND);
        }
        assert_eq!(db.snapshot(), before, "the conflict on {backend:?} wrote");
        assert_eq!(
            db.scalar("SELECT tag_git FROM releases WHERE version = '1.0.0'"),
            "v1.0.0"
        );
    }
}

#[test]
fn unknown_keys_are_refused() {
    let db = sqlite();
    // A typo inside an environment.
    write(
        &db,
        "envs.yaml",
        "releases:\n  - { version: \"1.1\", tag: v1.1 }\nenvironments:\n  prod:\n    release: \"1.1\"\n    max_attempt: 3\n",
    );
    refused(&db, &["envs.yaml:6:", "max_attempt", "max_attempts"]);

    // A typo at the top level.
    reset_manifests(&db);
    write(
        &db,
        "top.yaml",
        "releases:\n  - { version: \"1.1\", tag: v1.1 }\nenvironment:\n  prod: { release: \"1.1\" }\n",
    );
    refused(&db, &["top.yaml", "`environment`"]);

    // A typo inside the executor.
    reset_manifests(&db);
    write(
        &db,
        "exec.yaml",
        "releases:\n  - { version: \"1.1\", tag: v1.1 }\nenvironments:\n  prod: { release: \"1.1\", executor: { simulate: { duration: 0s, failure: 1 } } }\n",
    );
    refused(&db, &["exec.yaml", "`failure`"]);
}

#[test]
fn an_alias_bomb_is_refused_quickly() {
    let db = sqlite();
    let mut bomb = String::from(
        "releases: [{version: \"1\", tag: v1}]\nenvironments:\n  prod:\n    release: \"1\"\n    gates:\n      g0: {command: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]}\n",
    );
    for i in 1..12 {
        bomb.push_str(&format!(
            "      g{i}: {{command: &x{i} [{}]}}\n",
            vec![format!("*x{}", i - 1); 10].join(", ")
        ));
    }
    write(&db, "bomb.yaml", &bomb);
    refused(&db, &["bomb.yaml"]);

    // Anchors and aliases at the top level, where a mapping is expected.
    reset_manifests(&db);
    let mut bomb = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    write(&db, "laughs.yaml", &bomb);
    refused(&db, &["laughs.yaml"]);
}

#[test]
fn deep_nesting_is_refused_quickly() {
    let db = sqlite();
    // Flow collections.
    write(
        &db,
        "deep.yaml",
        &format!("releases: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
    );
    refused(&db, &["deep.yaml:1", "nested"]);

    reset_manifests(&db);
    write(
        &db,
        "mapping.yaml",
        &format!(
            "releases: {}1{}\n",
            "{a: ".repeat(50_000),
            "}".repeat(50_000)
        ),
    );
    refused(&db, &["mapping.yaml"]);

    // Block sequences: no bracket at all, 100 000 levels on one line.
    reset_manifests(&db);
    write(
        &db,
        "dashes.yaml",
        &format!("releases:\n  {}x\n", "- ".repeat(100_000)),
    );
    refused(&db, &["dashes.yaml"]);

    // Block mappings by indentation.
    reset_manifests(&db);
    let mut text = String::from("environments:\n  prod:\n    gates:\n");
    for i in 0..500 {
        text.push_str(&format!("{}k{i}:\n", "  ".repeat(i + 3)));
    }
    text.push_str(&format!("{}x\n", "  ".repeat(503)));
    write(&db, "indent.yaml", &text);
    refused(&db, &["indent.yaml"]);
}

#[test]
fn a_multi_megabyte_manifest_is_refused_quickly() {
    let db = sqlite();
    // Valid YAML (comments), but 3 MB of it.
    let line = format!("# {}\n", "x".repeat(98));
    let mut text = String::from("releases:\n  - { version: \"1.1\", tag: v1.1 }\n");
    while text.len() < 3 * 1024 * 1024 {
        text.push_str(&line);
    }
    write(&db, "huge.yaml", &text);
    refused(&db, &["huge.yaml", "bytes", "at most"]);

    // Endless: a symbolic link to /dev/zero is read no further than the limit.
    reset_manifests(&db);
    std::os::unix::fs::symlink("/dev/zero", dir(&db, "manifests").join("zero.yaml"))
        .expect("symlink");
    refused(&db, &["zero.yaml"]);
}

#[test]
fn a_symbolic_link_loop_is_refused_quickly() {
    let db = sqlite();
    write(
        &db,
        "good.yaml",
        "releases:\n  - { version: \"1.1\", tag: v1.1 }\n",
    );
    let m = dir(&db, "manifests");
    std::os::unix::fs::symlink("loop.yaml", m.join("loop.yaml")).expect("symlink");
    refused(&db, &["loop.yaml", "loops"]);

    // Two links pointing at each other.
    reset_manifests(&db);
    let m = dir(&db, "manifests");
    std::os::unix::fs::symlink("b.yaml", m.join("a.yaml")).expect("symlink");
    std::os::unix::fs::symlink("a.yaml", m.join("b.yaml")).expect("symlink");
    refused(&db, &["a.yaml", "loops"]);

    // A link to its own directory, named like a manifest.
    reset_manifests(&db);
    let m = dir(&db, "manifests");
    std::os::unix::fs::symlink(".", m.join("self.yaml")).expect("symlink");
    refused(&db, &["self.yaml", "directory"]);
}

#[test]
fn a_missing_manifest_directory_is_refused_quickly() {
    let db = sqlite();
    refused_in(&db, "nowhere", &["nowhere", "does not exist"]);
    // A file where the directory should be.
    std::fs::write(db.dir.path().join("plain"), "releases: []\n").expect("file");
    refused_in(&db, "plain", &["plain", "not a directory"]);
    // An empty directory.
    dir(&db, "empty");
    refused_in(&db, "empty", &["empty", "no manifests"]);

    // --watch must not wait for a directory that is not there.
    let before = db.snapshot();
    let (r, took) = run_bounded(
        &db,
        &["reconcile", "--watch", "--manifests", "nowhere"],
        &[],
        BOUND,
    );
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("nowhere"), "{}", r.stderr);
    assert!(took < BOUND);
    assert_eq!(db.snapshot(), before);
}

/// A named pipe called `*.yaml` (left by a script, or `mkfifo` by mistake) has
/// no writer: opening it for reading blocks forever. shipctl must refuse it as
/// "not a regular file" rather than hang.
#[test]
fn a_named_pipe_among_the_manifests_does_not_hang() {
    let db = sqlite();
    write(
        &db,
        "good.yaml",
        "releases:\n  - { version: \"1.1\", tag: v1.1 }\n",
    );
    let fifo = dir(&db, "manifests").join("pipe.yaml");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    refused_within(&db, "manifests", &["pipe.yaml"], Duration::from_secs(5));
}

// ---------------------------------------------------------------- check is offline

fn valid_manifests(path: &Path) {
    std::fs::create_dir_all(path).expect("dir");
    std::fs::write(
        path.join("shipctl.yaml"),
        format!(
            "releases:\n  - {{ version: \"1.1\", tag: v1.1 }}\nenvironments:\n  dev: {{ release: \"1.1\", {SIM_OK} }}\n  prod: {{ release: \"1.1\", requires: dev }}\n"
        ),
    )
    .expect("manifest");
}

#[test]
fn check_never_touches_a_database() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    valid_manifests(&db.dir.path().join("manifests"));
    let sqlite_file = db.dir.path().join("shipctl.db");

    // An unreachable server (port 1): check does not even try to connect.
    let unreachable = [("SHIPCTL_DATABASE_URL", "postgres://nobody:pw@127.0.0.1:1/x")];
    let (r, took) = run_bounded(
        &db,
        &["check", "--manifests", "manifests"],
        &unreachable,
        BOUND,
    );
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("valid"), "{}", r.stdout);
    assert!(
        r.stdout.contains("1 release") && r.stdout.contains("2 managed"),
        "{}",
        r.stdout
    );
    assert!(took < Duration::from_secs(5), "check took {took:?}");
    let (r, _) = run_bounded(
        &db,
        &["check", "--manifests", "manifests", "--output", "json"],
        &unreachable,
        BOUND,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["releases"][0]["version"], "1.1", "{j:#}");
    assert_eq!(
        j["environments"]["prod"]["policy"]["requires"], "dev",
        "{j:#}"
    );

    // The same with invalid manifests: exit 1 for the manifests, not the URL.
    std::fs::write(
        db.dir.path().join("manifests").join("bad.yaml"),
        "releases:\n  - version: 1.10\n    tag: v\n",
    )
    .expect("bad manifest");
    let (r, _) = run_bounded(
        &db,
        &["check", "--manifests", "manifests"],
        &unreachable,
        BOUND,
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("bad.yaml"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("127.0.0.1") && !r.stderr.contains("connect"),
        "check talked about the database:\n{}",
        r.stderr
    );
    std::fs::remove_file(db.dir.path().join("manifests").join("bad.yaml")).expect("rm");

    // The default database (./shipctl.db) is not created, and neither is the
    // one an explicit sqlite URL names.
    let mut c = db.cmd();
    c.env_remove("SHIPCTL_DATABASE_URL");
    let out = c.args(["check"]).output().expect("check");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (r, _) = run_bounded(&db, &["check", "--manifests", "manifests"], &[], BOUND);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let leftovers: Vec<_> = std::fs::read_dir(db.dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "manifests")
        .collect();
    assert!(
        leftovers.is_empty() && !sqlite_file.exists(),
        "check created {leftovers:?}"
    );
}
