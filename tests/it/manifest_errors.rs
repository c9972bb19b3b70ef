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
    for (i, args) in runs.into_iter().enumerate() {
        let (r, took) = run_bounded(db, args, &[], bound);
        if i == 0 {
            // The manifests' JSON Schema refuses them too, where a schema can.
            crate::describe::schema_refuses_or_cannot(&db.dir.path().join(manifests), &r.stderr);
        }
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
    let prod = j["environments"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["env"] == "prod"))
        .unwrap_or_else(|| panic!("no prod in {j:#}"));
    assert_eq!(prod["policy"]["requires"], "dev", "{j:#}");

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

// ---------------------------------------------------------------- issue 9: edge cases

const RELEASE: &str = "releases:\n  - { version: \"1.1\", tag: v1.1 }\n";

/// `check` with a database URL nobody answers: the manifests alone decide.
fn check_offline(db: &TestDb, code: i32, needles: &[&str]) -> Run {
    let unreachable = [("SHIPCTL_DATABASE_URL", "postgres://nobody:pw@127.0.0.1:1/x")];
    let (r, _) = run_bounded(
        db,
        &["check", "--manifests", "manifests"],
        &unreachable,
        BOUND,
    );
    assert_eq!(r.code, code, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "no {n:?} in:\n{}", r.stderr);
    }
    // The database's address (a hint may show another URL on 127.0.0.1).
    assert!(!r.stderr.contains("127.0.0.1:1/"), "{}", r.stderr);
    // The manifests' JSON Schema agrees, where a schema can.
    let dir = db.dir.path().join("manifests");
    if code == 0 {
        crate::describe::schema_accepts(&dir);
    } else {
        crate::describe::schema_refuses_or_cannot(&dir, &r.stderr);
    }
    r
}

/// No Rust or serde words reach the user.
fn in_user_words(stderr: &str) {
    for internal in [
        "struct",
        "u32",
        "u64",
        "f64",
        "unit value",
        "a sequence",
        "invalid type",
        "identifier",
        "enum",
    ] {
        assert!(
            !stderr.contains(internal),
            "{internal:?} leaks in:\n{stderr}"
        );
    }
}

#[test]
fn a_byte_order_mark_before_a_valid_manifest_is_accepted() {
    let db = sqlite();
    write(
        &db,
        "bom.yaml",
        &format!("\u{feff}{RELEASE}environments:\n  dev: {{ release: \"1.1\", {SIM_OK} }}\n"),
    );
    let r = check_offline(&db, 0, &[]);
    assert!(r.stdout.contains("valid"), "{}", r.stdout);
    // And it is the desired state reconcile applies (1.1 is already live in dev).
    let r = db.expect(&["reconcile", "--manifests", "manifests"], 0);
    assert!(!r.stderr.contains("error"), "{}", r.stderr);

    // A mark anywhere else is still the text it is.
    reset_manifests(&db);
    write(
        &db,
        "bom.yaml",
        &format!("{RELEASE}\u{feff}environments: {{}}\n"),
    );
    refused(&db, &["bom.yaml:3"]);
}

#[test]
fn brackets_inside_text_do_not_count_as_nesting() {
    let db = sqlite();
    let deep = "[".repeat(70);
    let text = format!(
        "{RELEASE}environments:\n  dev:\n    release: \"1.1\"\n    {SIM_OK}\n    gates:\n      \
         a: {{ command: [\"echo\", \"\\\"{deep}\", 'it''s {deep}'] }}\n      \
         b: {{ command: [\"echo\", \"multi\n        line {deep}\"] }}\n      \
         c:\n        command:\n          - |\n            {deep}\n            {{{{{{{{\n          \
         - plain {deep} text # {deep}\n"
    );
    write(&db, "text.yaml", &text);
    let r = check_offline(&db, 0, &[]);
    assert!(r.stdout.contains("gates: a, b, c"), "{}", r.stdout);

    // Real structure is still counted: 70 flow levels inside a command.
    reset_manifests(&db);
    write(
        &db,
        "deep.yaml",
        &format!(
            "{RELEASE}environments:\n  dev:\n    release: \"1.1\"\n    gates:\n      \
             g: {{ command: [\"x\", {deep}{}] }}\n",
            "]".repeat(70)
        ),
    );
    refused(&db, &["deep.yaml:7", "nested more than 64 levels"]);
}

#[test]
fn a_command_timeout_below_one_second_is_refused() {
    for backend in ALL {
        let Some(db) = seeded(backend) else { continue };
        for (env, key) in [
            (
                "executor: { command: { run: [\"./deploy.sh\"], timeout: 0s } }",
                "environments.dev.executor.command.timeout",
            ),
            (
                "executor: { command: { run: [\"./deploy.sh\"], timeout: 999ms } }",
                "environments.dev.executor.command.timeout",
            ),
            (
                "gates: { scan: { command: [\"./scan.sh\"], timeout: 500ms } }",
                "environments.dev.gates.scan.timeout",
            ),
            (
                "gates: { scan: { command: [\"./scan.sh\"], timeout: 25h } }",
                "environments.dev.gates.scan.timeout",
            ),
        ] {
            reset_manifests(&db);
            write(
                &db,
                "t.yaml",
                &format!("{RELEASE}environments:\n  dev: {{ release: \"1.1\", {env} }}\n"),
            );
            check_offline(&db, 1, &["t.yaml", key, "1s to 24h"]);
            refused(
                &db,
                &[
                    "t.yaml",
                    key,
                    "timeout of",
                    "hint: use a duration from 1s to 24h",
                ],
            );
        }
        // One second is the least a command may be given.
        reset_manifests(&db);
        write(
            &db,
            "t.yaml",
            &format!(
                "{RELEASE}environments:\n  dev: {{ release: \"1.1\", \
                 executor: {{ command: {{ run: [\"true\"], timeout: 1s }} }} }}\n"
            ),
        );
        check_offline(&db, 0, &[]);
    }
}

#[test]
fn yaml_tags_are_refused_with_the_file_line_and_tag() {
    let db = sqlite();
    for (value, tag, place) in [
        ("!!binary MS4x", "!!binary", "tags.yaml:5:14"),
        ("!custom \"1.1\"", "!custom", "tags.yaml:5:14"),
        ("!!str 1.1", "!!str", "tags.yaml:5:14"),
    ] {
        reset_manifests(&db);
        write(
            &db,
            "tags.yaml",
            &format!("{RELEASE}environments:\n  dev:\n    release: {value}\n"),
        );
        let r = check_offline(
            &db,
            1,
            &[place, &format!("the YAML tag {tag} is not supported")],
        );
        assert!(r.stderr.contains("hint: remove the tag"), "{}", r.stderr);
        refused(&db, &[place, tag]);
    }
    // Inside a flow list, and a long tag is cut.
    reset_manifests(&db);
    let long = format!("!{}", "t".repeat(500));
    write(
        &db,
        "tags.yaml",
        &format!(
            "{RELEASE}environments:\n  dev: {{ release: \"1.1\", gates: {{ g: {{ command: [x, {long} y] }} }} }}\n"
        ),
    );
    let r = check_offline(&db, 1, &["tags.yaml:4:", "[501 characters]"]);
    assert!(r.stderr.len() < 1000, "{}", r.stderr);
    // A `!` inside text is not a tag.
    reset_manifests(&db);
    write(
        &db,
        "tags.yaml",
        &format!(
            "{RELEASE}environments:\n  dev: {{ release: \"1.1\", gates: {{ g: {{ command: [\"!x\", hi!] }} }} }} # !!no\n"
        ),
    );
    check_offline(&db, 0, &[]);
}

#[test]
fn requires_naming_an_unmanaged_environment_is_refused() {
    for backend in ALL {
        let Some(db) = seeded(backend) else { continue };
        write(
            &db,
            "envs.yaml",
            &format!(
                "{RELEASE}environments:\n  dev: {{ release: \"1.1\", {SIM_OK} }}\n  \
                 prod:\n    release: \"1.1\"\n    requires: staging\n"
            ),
        );
        let needles = [
            "envs.yaml:7",
            "environments.prod.requires",
            "staging is not managed by the manifests",
            "hint: add environments.staging",
            "or remove requires: from prod",
        ];
        check_offline(&db, 1, &needles);
        refused(&db, &needles);
    }
}

#[test]
fn a_bad_verify_is_refused_with_its_key_path() {
    let db = sqlite();
    let either = "a verification has either command: [...] or http: { url: ... }";
    let url_hint = "hint: write a full URL, e.g. http://127.0.0.1:8080/version";
    let placeholders = "hint: the placeholders are {version}, {tag}, {env}";
    let cases: [(&str, &str, &[&str]); 11] = [
        (
            "{ command: [\"./smoke.sh\"], http: { url: \"http://127.0.0.1:8080/version\" } }",
            "environments.dev.verify",
            &[either, "hint: keep exactly one of the two"],
        ),
        ("{ retries: 2 }", "environments.dev.verify", &[either]),
        (
            "{ http: { url: \"/version\" } }",
            "environments.dev.verify.http.url",
            &["\"/version\" is not a URL", url_hint],
        ),
        (
            "{ http: { url: \"localhost:8080/version\" } }",
            "environments.dev.verify.http.url",
            &[
                "the URL's scheme is \"localhost\"; use http or https",
                url_hint,
            ],
        ),
        (
            "{ http: { url: \"ftp://127.0.0.1/version\" } }",
            "environments.dev.verify.http.url",
            &["the URL's scheme is \"ftp\"; use http or https"],
        ),
        (
            "{ http: { url: \"http://127.0.0.1:8080/{verison}\" } }",
            "environments.dev.verify.http.url",
            &["unknown placeholder {verison}", placeholders],
        ),
        (
            "{ http: { url: \"http://127.0.0.1:8080/\", contains: \"{verison}\" } }",
            "environments.dev.verify.http.contains",
            &["unknown placeholder {verison}", placeholders],
        ),
        (
            "{ command: [\"./smoke.sh\"], retries: 0 }",
            "environments.dev.verify.retries",
            &[
                "0 is out of range",
                "hint: use a number of tries from 1 to 100",
            ],
        ),
        (
            "{ command: [\"./smoke.sh\"], timeout: 0s }",
            "environments.dev.verify.timeout",
            &[
                "a timeout of 0ms",
                "hint: use a duration from 1s to 24h, e.g. 10s; without timeout: each try is \
                 stopped after 30s",
            ],
        ),
        (
            "{ http: { url: \"http://127.0.0.1:8080/\" }, kill_grace: 1s }",
            "environments.dev.verify.kill_grace",
            &[
                "kill_grace applies to a command check only",
                "hint: remove kill_grace",
            ],
        ),
        (
            "{ command: [\"./smoke.sh\"], retry: 3 }",
            "environments.dev.verify",
            &["unknown key `retry`", "`retries`"],
        ),
    ];
    for (verify, key, needles) in cases {
        reset_manifests(&db);
        write(
            &db,
            "v.yaml",
            &format!("{RELEASE}environments:\n  dev: {{ release: \"1.1\", verify: {verify} }}\n"),
        );
        let mut all = vec!["v.yaml", key];
        all.extend_from_slice(needles);
        check_offline(&db, 1, &all);
        refused(&db, &all);
    }
    // Good ones: a command with every setting, an HTTP check with every placeholder.
    for verify in [
        "{ command: [\"./smoke.sh\", \"{version}\"], timeout: 5s, retries: 5, interval: 0s, kill_grace: 1s }",
        "{ http: { url: \"https://example.test/{env}/v?v={version}&t={tag}\", status: 204, contains: \"{version}\" } }",
    ] {
        reset_manifests(&db);
        write(
            &db,
            "v.yaml",
            &format!("{RELEASE}environments:\n  dev: {{ release: \"1.1\", verify: {verify} }}\n"),
        );
        check_offline(&db, 0, &[]);
    }
}

#[test]
fn type_errors_are_worded_in_yaml_terms() {
    let db = sqlite();
    let env =
        |tail: &str| format!("{RELEASE}environments:\n  dev: {{ release: \"1.1\", {tail} }}\n");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "- a\n- b\n".into(),
            vec![
                "w.yaml:1:1",
                "the file holds a list",
                "a mapping with releases: and environments:",
            ],
        ),
        (
            "releases: 5\n".into(),
            vec![
                "w.yaml:1:11",
                "releases: expected a list of releases, found the number 5",
            ],
        ),
        (
            "releases:\n  - \n".into(),
            vec![
                "w.yaml:2",
                "releases[0]: version: is missing",
                "hint: add version:",
            ],
        ),
        (
            env("max_attempts: x"),
            vec![
                "w.yaml:4:",
                "environments.dev.max_attempts: expected a whole number from 1 to 100, found the text \"x\"",
                "hint: write it like max_attempts: 3",
            ],
        ),
        (
            env("max_attempts: -2"),
            vec![
                "environments.dev.max_attempts: expected a whole number from 1 to 100, found the number -2",
            ],
        ),
        (
            env("gates: { g: { command: ./scan.sh } }"),
            vec![
                "environments.dev.gates.g.command: expected a list of strings (the program and its arguments)",
                "found the text \"./scan.sh\"",
            ],
        ),
        (
            env("gates: { g: { approvals: 1, approvers: alice } }"),
            vec![
                "environments.dev.gates.g.approvers: expected a list of login names, or a mapping of login names to SSH public keys",
            ],
        ),
        (
            format!("{RELEASE}environments:\n  dev:\n"),
            vec!["w.yaml:4", "environments.dev: release: is missing"],
        ),
        (
            format!("{RELEASE}environments: [dev]\n"),
            vec![
                "environments: expected a mapping of environments (dev, staging, prod), found a list",
            ],
        ),
        (
            env("executor: { command: [\"./deploy.sh\"] }"),
            vec![
                "environments.dev.executor.command: expected a mapping with run:",
                "found a list",
            ],
        ),
        (
            env("executor: { simulate: { failure_rate: high } }"),
            vec!["failure_rate: expected a number from 0.0 to 1.0, found the text \"high\""],
        ),
        (
            env("on_failure: 3"),
            vec!["on_failure is \"3\"", "hint: write on_failure: replan"],
        ),
        (
            format!("{RELEASE}releases: []\n"),
            vec![
                "w.yaml:",
                "releases is defined twice",
                "hint: keep one definition",
            ],
        ),
        (
            "? [a, b]\n: c\n".into(),
            vec!["w.yaml:1", "a key is a list"],
        ),
    ];
    for (text, needles) in cases {
        reset_manifests(&db);
        write(&db, "w.yaml", &text);
        let r = check_offline(&db, 1, &needles);
        in_user_words(&r.stderr);
        assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    }
    // One of them through reconcile too: nothing written.
    reset_manifests(&db);
    write(&db, "w.yaml", &env("max_attempts: x"));
    refused(
        &db,
        &[
            "w.yaml:4:",
            "environments.dev.max_attempts: expected a whole number",
        ],
    );
}

#[test]
fn long_keys_and_values_are_cut_in_messages() {
    let db = sqlite();
    let huge = "k".repeat(100_000);
    let long = "q".repeat(1000);
    for (text, needles) in [
        // Too long for a YAML key: the file is one long text.
        (
            format!("{huge}: 1\n"),
            vec!["the file holds the text", "[100002 characters]"],
        ),
        (
            format!("{long}: 1\n"),
            vec!["unknown key `qqq", "[1000 characters]`"],
        ),
        (
            format!("{RELEASE}environments:\n  {long}: {{ release: \"1.1\" }}\n"),
            vec!["unknown environment", "[1000 characters]", "dev, staging"],
        ),
        (
            format!(
                "{RELEASE}environments:\n  dev: {{ release: \"1.1\", gates: {{ {long}: {{ command: 5 }} }} }}\n"
            ),
            vec![
                "environments.dev.gates.qqq",
                "[1000 characters].command",
                "found the number 5",
            ],
        ),
        (
            format!(
                "{RELEASE}environments:\n  dev: {{ release: \"1.1\", max_attempts: \"{huge}\" }}\n"
            ),
            vec!["environments.dev.max_attempts", "[100002 characters]"],
        ),
    ] {
        reset_manifests(&db);
        write(&db, "long.yaml", &text);
        let r = check_offline(&db, 1, &needles);
        assert!(
            r.stderr.len() < 1200,
            "{} bytes of error:\n{}",
            r.stderr.len(),
            &r.stderr[..r.stderr.len().min(2000)]
        );
        in_user_words(&r.stderr);
    }
}

// ---------------------------------------------------------------- issue 11: windows

/// prod with `windows:` as written (block style, as DESIGN §10 writes it).
fn with_windows(windows: &str) -> String {
    format!("{RELEASE}environments:\n  prod:\n    release: \"1.1\"\n    windows:\n{windows}")
}

#[test]
fn the_windows_of_design_section_10_are_accepted() {
    let db = sqlite();
    // DESIGN §10's windows, verbatim, comments included.
    write(
        &db,
        "prod.yaml",
        &with_windows(
            r#"      timezone: Europe/Paris                  # IANA name, default UTC
      allow:                                  # absent: always open
        - { days: [mon, tue, wed, thu], from: "09:00", to: "17:00" }
      deny:
        - { from: "2026-12-20 00:00", to: "2027-01-04 00:00", reason: holiday freeze }
        - { days: [fri], from: "15:00", to: "24:00", reason: no Friday deploys }
"#,
        ),
    );
    let r = check_offline(&db, 0, &[]);
    assert!(r.stdout.contains("valid"), "{}", r.stdout);
    // The policy keeps the windows as the manifests wrote them.
    let r = db.expect(
        &["check", "--manifests", "manifests", "--output", "json"],
        0,
    );
    let j = r.json();
    let prod = j["environments"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["env"] == "prod"))
        .unwrap_or_else(|| panic!("no prod in {j:#}"));
    let w = &prod["policy"]["windows"];
    assert_eq!(w["timezone"], "Europe/Paris", "{j:#}");
    assert_eq!(w["allow"][0]["days"][3], "thu", "{j:#}");
    assert_eq!(w["deny"][0]["from"], "2026-12-20 00:00", "{j:#}");
    assert_eq!(w["deny"][0]["days"], serde_json::Value::Null, "{j:#}");
    assert_eq!(w["deny"][1]["to"], "24:00", "{j:#}");
    assert_eq!(w["deny"][1]["reason"], "no Friday deploys", "{j:#}");

    // Without a time zone (UTC), overnight, 24:00 in a one-off, times unquoted.
    reset_manifests(&db);
    write(
        &db,
        "prod.yaml",
        &with_windows(
            "      deny:\n        - { days: [sat, sun], from: 22:00, to: 06:00 }\n        \
             - { from: \"2026-12-31 12:00\", to: \"2026-12-31 24:00\" }\n",
        ),
    );
    check_offline(&db, 0, &[]);
}

#[test]
fn windows_are_checked_with_their_key_paths() {
    let db = sqlite();
    let weekly = |entry: &str| format!("      deny:\n        - {entry}\n");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "      timezone: Europe/Pariss\n".into(),
            vec![
                "w.yaml:7:",
                "environments.prod.windows.timezone: unknown time zone \"Europe/Pariss\"",
                "hint: use an IANA time zone name such as Europe/Paris",
            ],
        ),
        (
            weekly("{ days: [mon, fry], from: \"09:00\", to: \"17:00\" }"),
            vec![
                "w.yaml:8:",
                "environments.prod.windows.deny[0].days: \"fry\" is not a day; \
                 use mon, tue, wed, thu, fri, sat or sun",
            ],
        ),
        (
            weekly("{ days: [fri], from: \"15:00\", to: \"15:00\" }"),
            vec![
                "environments.prod.windows.deny[0]: from and to are both 15:00: \
                 the window would be empty",
                "hint: for the whole day write from: \"00:00\", to: \"24:00\"",
            ],
        ),
        (
            weekly("{ days: [fri], from: \"3pm\", to: \"24:00\" }"),
            vec![
                "environments.prod.windows.deny[0].from: \"3pm\" is not a time of day (HH:MM)",
                "hint: write times as \"HH:MM\" on a 24-hour clock",
            ],
        ),
        (
            weekly("{ days: [fri], from: \"15:00\", to: \"25:00\" }"),
            vec![
                "environments.prod.windows.deny[0].to: \"25:00\" is not a time of day: \
                 hours go from 00 to 23",
            ],
        ),
        (
            weekly("{ from: \"2027-01-04 00:00\", to: \"2026-12-20 00:00\", reason: freeze }"),
            vec![
                "w.yaml:8:",
                "environments.prod.windows.deny[0].to: the window ends at 2026-12-20 00:00, \
                 before it starts (2027-01-04 00:00)",
            ],
        ),
        (
            weekly("{ from: \"2026-12-20 00:00\", to: \"2026-12-20 00:00\" }"),
            vec!["environments.prod.windows.deny[0].to: the window ends when it starts"],
        ),
        (
            weekly("{ from: \"2026-12-20 00:00\", to: \"2026-13-01 00:00\" }"),
            vec!["environments.prod.windows.deny[0].to: \"2026-13-01\" is not a date"],
        ),
        (
            weekly("{ days: [sat], from: \"2026-12-20 00:00\", to: \"2027-01-04 00:00\" }"),
            vec![
                "environments.prod.windows.deny[0].days: days apply to weekly windows, \
                 but from and to are dates",
                "hint: remove days: for a one-off window",
            ],
        ),
        (
            weekly("{ from: \"15:00\", to: \"24:00\" }"),
            vec![
                "environments.prod.windows.deny[0]: days: is missing",
                "hint: add days:, e.g. days: [mon, tue, wed, thu, fri]",
            ],
        ),
        (
            format!(
                "      allow:\n        - {{ days: [mon], from: \"09:00\", to: \"17:00\" }}\n{}",
                weekly("{ days: [fri], from: \"15:00\", to: \"24:00\", colour: red }")
            ),
            vec![
                "w.yaml:10:",
                "environments.prod.windows.deny[0]: unknown key `colour`; the keys allowed \
                 here are `days`, `from`, `to`, `reason`",
            ],
        ),
        (
            "      timezone: Europe/Paris\n      allowed: []\n".into(),
            vec!["environments.prod.windows: unknown key `allowed`"],
        ),
        (
            weekly("{ days: fri, from: \"15:00\", to: \"24:00\" }"),
            vec![
                "environments.prod.windows.deny[0].days: expected a list of days \
                 (mon, tue, wed, thu, fri, sat, sun), found the text \"fri\"",
            ],
        ),
        (
            weekly("{ days: [fri], from: \"15:00\", to: [24] }"),
            vec!["environments.prod.windows.deny[0].to: expected a quoted time (\"09:00\")"],
        ),
    ];
    for (windows, needles) in cases {
        reset_manifests(&db);
        write(&db, "w.yaml", &with_windows(&windows));
        let r = check_offline(&db, 1, &needles);
        in_user_words(&r.stderr);
        assert!(r.stderr.contains("hint:"), "{}", r.stderr);
        // And through reconcile and its dry run: exit 1, nothing written.
        refused(&db, &needles);
    }
}

// ---------------------------------------------------------------- the YAML test suite

/// Every input of the official YAML test suite (vendored in
/// tests/yaml-test-suite, MIT) as the only manifest: `check` answers 0 or 1
/// within a second, names the file when it refuses it, and never panics.
#[test]
fn the_yaml_test_suite_is_checked_without_surprise() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/yaml-test-suite/in");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&suite)
        .expect("the vendored YAML test suite")
        .map(|e| e.expect("entry").path())
        .collect();
    inputs.sort();
    assert!(inputs.len() > 400, "{} inputs", inputs.len());
    let unreachable = [("SHIPCTL_DATABASE_URL", "postgres://nobody:pw@127.0.0.1:1/x")];
    let (mut valid, mut refused) = (0, 0);
    for input in &inputs {
        let id = input
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let d = dir(&db, &format!("yts/{id}"));
        std::fs::copy(input, d.join("in.yaml")).expect("copy input");
        let manifests = format!("yts/{id}");
        let (r, took) = run_bounded(
            &db,
            &["check", "--manifests", &manifests],
            &unreachable,
            Duration::from_secs(5),
        );
        assert!(took < Duration::from_secs(1), "{id}: check took {took:?}");
        assert!(!r.stderr.contains("panicked"), "{id}:\n{}", r.stderr);
        match r.code {
            0 => valid += 1,
            1 => {
                refused += 1;
                assert!(
                    r.stderr.contains(&format!("{manifests}/in.yaml"))
                        && r.stderr.contains("hint:"),
                    "{id}: the refusal names no file or gives no hint:\n{}",
                    r.stderr
                );
                in_user_words(&r.stderr);
            }
            other => panic!(
                "{id}: exit {other}\nstdout:\n{}\nstderr:\n{}",
                r.stdout, r.stderr
            ),
        }
    }
    // None of the suite's documents is a shipctl manifest with content.
    assert!(
        refused > 350 && valid < 50,
        "{valid} valid, {refused} refused"
    );
}

#[test]
fn bad_notifications_are_refused_with_their_key_paths() {
    let db = sqlite();
    let env = format!(
        "releases:\n  - {{ version: \"1.1\", tag: v1.1 }}\nenvironments:\n  dev: {{ release: \"1.1\", {SIM_OK} }}\n"
    );
    let hook = "https://hooks.example.com/services/T0/B0/s3cr3t?token=t0ken";
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "  - url: \"ftp://hooks.example.com/x\"\n".into(),
            vec![
                "n.yaml:6:",
                "notifications[0].url: the URL's scheme is \"ftp\"; use http or https",
            ],
        ),
        (
            "  - url: \"not a url\"\n".into(),
            vec!["notifications[0].url: the URL does not parse"],
        ),
        (
            format!(
                "  - url: \"{hook}\"\n    events: [deployment.succeeded, deployment.exploded]\n"
            ),
            vec![
                "n.yaml:7:",
                "notifications[0].events[1]: unknown event \"deployment.exploded\"",
                "hint: use one of: deployment.planned,",
            ],
        ),
        (
            format!("  - url: \"{hook}\"\n    events: []\n"),
            vec!["notifications[0].events: the list is empty"],
        ),
        (
            format!("  - url: \"{hook}\"\n    secret_env: 1-SECRET\n"),
            vec!["notifications[0].secret_env: \"1-SECRET\" is not an environment variable name"],
        ),
        (
            format!("  - url: \"{hook}\"\n  - url: \"{hook}\"\n    events: [gate.waiting]\n"),
            vec![
                "notifications[1].url: the same URL as notifications[0] \
                 (https://hooks.example.com/services/***?token=***)",
                "hint: declare each webhook once",
            ],
        ),
        (
            format!("  - {{ url: \"{hook}\", colour: red }}\n"),
            vec!["notifications[0]: unknown key `colour`"],
        ),
    ];
    for (list, needles) in cases {
        reset_manifests(&db);
        write(&db, "n.yaml", &format!("{env}notifications:\n{list}"));
        refused(&db, &needles);
        let run = db.run(&["check", "--manifests", "manifests"]);
        assert!(
            !run.stderr.contains("s3cr3t") && !run.stderr.contains("t0ken"),
            "{}",
            run.stderr
        );
    }
    // One list, in one file.
    reset_manifests(&db);
    write(
        &db,
        "a.yaml",
        &format!("{env}notifications:\n  - url: \"{hook}\"\n"),
    );
    write(
        &db,
        "b.yaml",
        "notifications:\n  - url: \"https://other.example.com/x\"\n",
    );
    refused(
        &db,
        &[
            "notifications: is declared in",
            "a.yaml and in",
            "b.yaml",
            "hint: declare the notifications list in one file only",
        ],
    );
}
