//! Bad input of every kind: one clear message, exit 1, and a database exactly as
//! it was before the command.

use crate::common::*;

/// Runs `args`, expects exit 1 with every `needles` in stderr, and an unchanged database.
fn refused(db: &TestDb, args: &[&str], needles: &[&str]) {
    let before = db.snapshot();
    let out = db.expect(args, 1);
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "{args:?} on {:?}: stderr lacks {n:?}:\n{}",
            db.backend,
            out.stderr
        );
    }
    assert!(
        !out.stderr.contains("panicked"),
        "{args:?} panicked:\n{}",
        out.stderr
    );
    assert_eq!(
        db.snapshot(),
        before,
        "{args:?} on {:?} changed the database",
        db.backend
    );
}

/// A ledger with one live deployment (1), one failed-and-cancelled (2), one pending (3).
fn ledger(db: &TestDb) -> (i64, i64, i64) {
    let r1 = release(db, "1.0.0");
    let r2 = release(db, "1.1.0");
    let d1 = plan(db, r1, "prod");
    succeed(db, d1);
    let d2 = plan(db, r2, "prod");
    db.expect(&["rollback", "--deploy-id", &d2.to_string()], 0);
    let d3 = plan(db, r2, "prod");
    (d1, d2, d3)
}

#[test]
fn unknown_ids() {
    each_backend(|db| {
        ledger(db);
        refused(
            db,
            &["deploy", "--release", "99", "--env", "prod"],
            &["release 99 does not exist", "release --list"],
        );
        refused(
            db,
            &["validate", "--deploy-id", "99"],
            &["deployment 99 does not exist"],
        );
        refused(
            db,
            &["rollback", "--deploy-id", "99"],
            &["deployment 99 does not exist"],
        );
        refused(
            db,
            &["validate", "--deploy-id", "abc"],
            &["invalid value 'abc'"],
        );
        refused(
            db,
            &["deploy", "--release", "-1x", "--env", "prod"],
            &["--release"],
        );
    });
}

#[test]
fn unknown_environment() {
    each_backend(|db| {
        ledger(db);
        refused(
            db,
            &["deploy", "--release", "1", "--env", "qa"],
            &["invalid value 'qa'", "dev, staging, prod"],
        );
        refused(
            db,
            &["status", "--env", "production"],
            &["invalid value 'production'"],
        );
        refused(db, &["unpin", "--env", "PROD"], &["invalid value 'PROD'"]);
    });
}

#[test]
fn bad_versions_and_tags() {
    each_backend(|db| {
        ledger(db);
        let long = "9".repeat(51);
        let fifty = "a".repeat(50);
        refused(
            db,
            &["release", "--create", "", "--tag", "v1"],
            &["version is empty"],
        );
        refused(
            db,
            &["release", "--create", &long, "--tag", "v1"],
            &["51 characters", "at most 50"],
        );
        refused(
            db,
            &["release", "--create", "2.0.0", "--tag", ""],
            &["tag is empty"],
        );
        refused(
            db,
            &["release", "--create", "2.0.0", "--tag", &long],
            &["51 characters"],
        );
        refused(
            db,
            &["release", "--create", " 2.0.0", "--tag", "v2"],
            &["white space"],
        );
        refused(db, &["release", "--create", "2.0.0"], &["--tag"]);
        refused(db, &["release", "--tag", "v2"], &["--create"]);
        refused(db, &["release"], &["--create", "--list"]);
        // Duplicate version: refused, naming the existing release.
        refused(
            db,
            &["release", "--create", "1.0.0", "--tag", "v1.0.0-again"],
            &["release 1.0.0 already exists", "id 1"],
        );
        // Exactly 50 characters (multi-byte ones too) is accepted.
        db.expect(
            &["release", "--create", &fifty, "--tag", &"é".repeat(50)],
            0,
        );
        assert_eq!(
            db.scalar(&format!(
                "SELECT tag_git FROM releases WHERE version = '{fifty}'"
            )),
            "é".repeat(50)
        );
    });
}

#[test]
fn invalid_transitions() {
    each_backend(|db| {
        let (live, cancelled, pending) = ledger(db);
        let (l, c, p) = (live.to_string(), cancelled.to_string(), pending.to_string());
        refused(
            db,
            &["validate", "--deploy-id", &l],
            &["is réussi", "only planifié or validé"],
        );
        refused(db, &["validate", "--deploy-id", &c], &["is annulé"]);
        refused(
            db,
            &["rollback", "--deploy-id", &c],
            &["annulé", "nothing to roll back"],
        );
        refused(
            db,
            &["rollback", "--deploy-id", &l],
            &["no previous release"],
        );
        refused(db, &["unpin", "--env", "prod"], &["prod is not pinned"]);
        // A second pending deployment of the same release in the same environment.
        refused(
            db,
            &["deploy", "--release", "2", "--env", "prod"],
            &[
                "already has a pending deployment",
                &format!("deployment {p}"),
            ],
        );
        // A réussi that is no longer live cannot be rolled back.
        db.expect(
            &[
                "validate",
                "--deploy-id",
                &p,
                "--duration",
                "0s",
                "--failure-rate",
                "0",
            ],
            0,
        );
        refused(
            db,
            &["rollback", "--deploy-id", &l],
            &["is not live", &format!("deployment {p}")],
        );
    });
}

#[test]
fn bad_simulation_flags() {
    each_backend(|db| {
        let (_, _, pending) = ledger(db);
        let p = pending.to_string();
        refused(
            db,
            &["validate", "--deploy-id", &p, "--failure-rate", "1.5"],
            &["between 0.0 and 1.0"],
        );
        refused(
            db,
            &["validate", "--deploy-id", &p, "--failure-rate", "NaN"],
            &["between 0.0 and 1.0"],
        );
        refused(
            db,
            &["validate", "--deploy-id", &p, "--duration", "5"],
            &["no unit"],
        );
        refused(
            db,
            &["validate", "--deploy-id", &p, "--duration", "2 weeks"],
            &["duration"],
        );
        refused(
            db,
            &["--lease-ttl", "10ms", "validate", "--deploy-id", &p],
            &["at least 300ms"],
        );
        refused(
            db,
            &["validate", "--deploy-id", &p, "--seed", "-3"],
            &["'-3'"],
        );
    });
}

#[test]
fn json_errors_are_json() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    ledger(&db);
    let out = db.expect(&["validate", "--deploy-id", "42", "--output", "json"], 1);
    let j = out.json();
    assert_eq!(j["error"]["kind"], "input");
    assert_eq!(j["error"]["exit_code"], 1);
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deployment 42")
    );
}

#[test]
fn unusable_database_urls() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let run = |url: &str| {
        let out = db
            .cmd()
            .env("SHIPCTL_DATABASE_URL", url)
            .args(["status"])
            .output()
            .unwrap();
        Run::from(out)
    };
    // Unsupported scheme.
    let out = run("oracle://scott:tiger@db/x");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not supported"), "{}", out.stderr);
    // Nothing listening: a clear message, and the password never shown.
    for url in [
        "postgres://app:s3cretpw@127.0.0.1:1/ledger",
        "mysql://app:s3cretpw@127.0.0.1:1/ledger",
        "postgres://app@127.0.0.1:1/ledger?password=s3cretpw",
    ] {
        let out = run(url);
        assert_eq!(out.code, 1, "{url}: {}", out.stderr);
        assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
        assert!(out.stderr.contains("127.0.0.1:1"), "{}", out.stderr);
        assert!(
            !out.stderr.contains("s3cretpw"),
            "password leaked: {}",
            out.stderr
        );
        assert!(
            !out.stdout.contains("s3cretpw"),
            "password leaked: {}",
            out.stdout
        );
        let out = Run::from(
            db.cmd()
                .env("SHIPCTL_DATABASE_URL", url)
                .args(["status", "--output", "json"])
                .output()
                .unwrap(),
        );
        assert!(!out.stdout.contains("s3cretpw") && !out.stderr.contains("s3cretpw"));
    }
    // The help never shows the URL from the environment.
    let out = Run::from(
        db.cmd()
            .env("SHIPCTL_DATABASE_URL", "postgres://app:s3cretpw@h/db")
            .arg("--help")
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, 0);
    assert!(!out.stdout.contains("s3cretpw"));
    // A SQLite file in a directory that does not exist: no ledger for a
    // reader; a writer cannot create one.
    let out = run("sqlite:///nonexistent-dir/x/shipctl.db");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no ledger at"), "{}", out.stderr);
    let out = Run::from(
        db.cmd()
            .env(
                "SHIPCTL_DATABASE_URL",
                "sqlite:///nonexistent-dir/x/shipctl.db",
            )
            .args(["release", "--create", "1.0", "--tag", "v1"])
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("cannot open the SQLite database"),
        "{}",
        out.stderr
    );
}

#[test]
fn wrong_database_on_a_real_server() {
    for (var, scheme) in [
        ("SHIPCTL_TEST_POSTGRES_URL", "postgres"),
        ("SHIPCTL_TEST_MYSQL_URL", "mysql"),
    ] {
        let Ok(admin) = std::env::var(var) else {
            eprintln!("skipping {scheme}: {var} is not set");
            continue;
        };
        let mut u = url::Url::parse(&admin).unwrap();
        u.set_path("/shipctl_no_such_database");
        let dir = tempfile::tempdir().unwrap();
        let out = Run::from(
            std::process::Command::new(env!("CARGO_BIN_EXE_shipctl"))
                .current_dir(dir.path())
                .args(["--database-url", u.as_str(), "status"])
                .output()
                .unwrap(),
        );
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
        assert!(
            out.stderr.contains("shipctl_no_such_database"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    assert_eq!(db.run(&["frobnicate"]).code, 1);
    assert_eq!(db.run(&[]).code, 1);
    assert_eq!(db.run(&["--help"]).code, 0);
    assert_eq!(db.run(&["validate", "--help"]).code, 0);
    assert_eq!(db.run(&["--version"]).code, 0);
    // None of these touched the disk.
    assert!(!db.dir.path().join("shipctl.db").exists());
}

/// The environment variables behind --database-url and --lease-ttl: a bad lease
/// is one clear error, and the URL never shows up in a usage line.
#[test]
fn settings_from_the_environment() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    // db.cmd() sets SHIPCTL_DATABASE_URL: a usage error must not name the flag.
    let out = db.run(&["approve", "--deploy-id", "1"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("--gate <GATE>"), "{}", out.stderr);
    assert!(!out.stderr.contains("--database-url"), "{}", out.stderr);

    let out = db
        .cmd()
        .env("SHIPCTL_LEASE_TTL", "10ms")
        .args(["status"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("SHIPCTL_LEASE_TTL=\"10ms\"") && stderr.contains("at least 300ms"),
        "{stderr}"
    );
    assert!(!db.dir.path().join("shipctl.db").exists(), "nothing opened");

    // The flag wins over the variable (on a ledger: `status` never creates one).
    release(&db, "1.0");
    let out = db
        .cmd()
        .env("SHIPCTL_LEASE_TTL", "10ms")
        .args(["--lease-ttl", "5s", "status", "--env", "prod"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
