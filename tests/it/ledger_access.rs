//! Opening the ledger (DESIGN §8): commands that only read never create, migrate
//! or alter a database; a missing ledger is "no ledger at URL" (the dry run plans
//! from an empty one and says so); a ledger that cannot be read is an error
//! naming the cause; writers do not install shipctl's tables over another
//! application's; a failed first migration on MariaDB completes when run again.

use crate::common::account::Account;
use crate::common::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

// ---------------------------------------------------------------- helpers

/// The commands that only read, as run against every ledger below.
const READERS: [&[&str]; 4] = [
    &["status"],
    &["history", "--env", "dev"],
    &["audit"],
    &["release", "--list"],
];

const DRY_RUN: &[&str] = &["reconcile", "--dry-run", "--manifests", "manifests"];

fn declare(db: &TestDb) {
    let dir = db.dir.path().join("manifests");
    std::fs::create_dir_all(&dir).expect("manifest dir");
    std::fs::write(
        dir.join("shipctl.yaml"),
        "apiVersion: shipctl/v1\nreleases:\n  - { version: \"1.0\", tag: v1.0 }\n\
         environments:\n  dev: { release: \"1.0\", executor: { simulate: { duration: 0s, failure_rate: 0 } } }\n",
    )
    .expect("write manifest");
}

/// Every file directly in `dir` with its length and a hash of its bytes: equal
/// maps mean nothing was created, removed or changed there (`-wal`/`-shm` included).
fn files(dir: &Path) -> BTreeMap<String, (usize, u64)> {
    use std::hash::{Hash, Hasher};
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| {
            // The harness's dropped SQLite connections close on sqlx's worker
            // thread, and may remove their `-wal`/`-shm` while this lists them.
            let bytes = match std::fs::read(e.path()) {
                Ok(bytes) => bytes,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
                Err(err) => panic!("read {}: {err}", e.path().display()),
            };
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            let name = e.file_name().to_string_lossy().into_owned();
            Some((name, (bytes.len(), h.finish())))
        })
        .collect()
}

/// For a ledger in WAL mode: the same files with the same bytes, except for
/// SQLite's `-shm` index and an empty `-wal`, which readers may leave or find
/// (a read-only connection cannot remove them).
fn wal_ledger_unchanged(
    before: &BTreeMap<String, (usize, u64)>,
    after: &BTreeMap<String, (usize, u64)>,
) {
    let strip = |files: &BTreeMap<String, (usize, u64)>| {
        let mut files = files.clone();
        files.remove("shipctl.db-shm");
        if files
            .get("shipctl.db-wal")
            .is_some_and(|(len, _)| *len == 0)
        {
            files.remove("shipctl.db-wal");
        }
        files
    };
    assert_eq!(strip(after), strip(before));
}

fn ledger_path(db: &TestDb) -> std::path::PathBuf {
    db.dir.path().join("shipctl.db")
}

/// Tables of the test database (any backend), sorted.
fn tables(db: &TestDb) -> Vec<String> {
    let sql = match db.backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name".to_string()
        }
        Backend::Postgres => "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY 1"
            .to_string(),
        Backend::MySql => "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
             WHERE table_schema = DATABASE() ORDER BY 1"
            .to_string(),
    };
    db.query(&sql).into_iter().map(|r| r[0].clone()).collect()
}

/// Runs every reader and the dry run, each expected to exit 1 with
/// `needle` in its error output.
fn every_reader_fails(db: &TestDb, needle: &str) {
    for args in READERS.iter().copied().chain([DRY_RUN]) {
        let r = db.expect(args, 1);
        assert!(
            r.stderr.contains(needle),
            "shipctl {args:?} on {:?}: wanted {needle:?} in\n{}",
            db.backend,
            r.stderr
        );
        assert!(
            r.stderr.contains("hint:"),
            "shipctl {args:?}: no hint in\n{}",
            r.stderr
        );
    }
}

/// A ledger with one release, closed (SQLite: checkpointed, no `-wal`/`-shm`).
fn ledger_with_a_release(db: &TestDb) {
    release(db, "1.0");
}

/// Runs `sql` on the test database with a connection of its own.
fn exec(db: &TestDb, sql: &str) {
    block_on(async {
        use sqlx::Connection;
        let url = match db.backend {
            Backend::Sqlite => format!("{}?mode=rwc", db.url),
            _ => db.url.clone(),
        };
        let mut c = sqlx::AnyConnection::connect(&url).await.expect("connect");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        c.close().await.expect("close");
    });
}

// ---------------------------------------------------------------- missing

#[test]
fn a_missing_sqlite_ledger_is_reported_and_nothing_is_created() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    declare(&db);
    let before = files(db.dir.path());
    for args in READERS {
        let r = db.expect(args, 1);
        assert!(
            r.stderr.contains(&format!("no ledger at {}", db.url)),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("shipctl reconcile"), "{}", r.stderr);
        assert_eq!(files(db.dir.path()), before, "{args:?} created a file");
    }
    let r = db.expect(DRY_RUN, 2);
    assert!(
        r.stderr
            .starts_with(&format!("note: no ledger at {} yet", db.url)),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("Plan for"), "{}", r.stdout);
    let mut json_args = DRY_RUN.to_vec();
    json_args.extend(["--output", "json"]);
    let j = db.expect(&json_args, 2).json();
    assert_eq!(j["ledger"], "missing", "{j}");
    assert_eq!(files(db.dir.path()), before, "the dry run created a file");
    assert!(!ledger_path(&db).exists());
}

#[test]
fn an_empty_server_database_is_a_missing_ledger_and_stays_empty() {
    for backend in [Backend::Postgres, Backend::MySql] {
        let Some(db) = TestDb::new(backend) else {
            continue;
        };
        declare(&db);
        for args in READERS {
            let r = db.expect(args, 1);
            assert!(r.stderr.contains("no ledger at"), "{args:?}: {}", r.stderr);
        }
        let mut json_args = DRY_RUN.to_vec();
        json_args.extend(["--output", "json"]);
        let j = db.expect(&json_args, 2).json();
        assert_eq!(j["ledger"], "missing", "{j}");
        assert_eq!(tables(&db), Vec::<String>::new(), "{backend:?}");
    }
}

#[test]
fn a_ledger_that_exists_is_planned_from_and_said_present() {
    each_backend(|db| {
        declare(db);
        ledger_with_a_release(db);
        let before = db.snapshot();
        let files_before = files(db.dir.path());
        let mut json_args = DRY_RUN.to_vec();
        json_args.extend(["--output", "json"]);
        let j = db.expect(&json_args, 2).json();
        assert_eq!(j["ledger"], "present", "{j}");
        for args in READERS {
            db.expect(args, 0);
        }
        assert_eq!(db.snapshot(), before);
        wal_ledger_unchanged(&files_before, &files(db.dir.path()));
    });
}

// ---------------------------------------------------------------- unreadable

#[test]
fn a_file_that_is_not_sqlite_is_refused_unchanged() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    declare(&db);
    std::fs::write(ledger_path(&db), b"name,version\nweb,1.0\n".repeat(300)).expect("write");
    let before = files(db.dir.path());
    every_reader_fails(&db, "not a SQLite database");
    let r = db.expect(&["release", "--create", "2.0", "--tag", "v2"], 1);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    assert_eq!(files(db.dir.path()), before);
}

#[test]
fn a_truncated_ledger_is_refused_unchanged() {
    for (name, cut) in [("mid-page", 3 * 4096 + 100), ("page boundary", 2 * 4096)] {
        let db = TestDb::new(Backend::Sqlite).expect("sqlite");
        declare(&db);
        ledger_with_a_release(&db);
        let path = ledger_path(&db);
        let full = std::fs::read(&path).expect("ledger");
        assert!(full.len() > cut, "the ledger is only {} bytes", full.len());
        std::fs::write(&path, &full[..cut]).expect("truncate");
        let before = files(db.dir.path());
        every_reader_fails(&db, "truncated");
        assert_eq!(files(db.dir.path()), before, "{name}");
    }
}

#[test]
fn a_ledger_in_a_directory_without_write_access_is_an_error_naming_the_cause() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    declare(&db);
    ledger_with_a_release(&db);
    let dir = db.dir.path();
    let before = files(dir);
    // Root ignores permissions: run the binary as `nobody` then.
    let root = std::fs::metadata(dir).expect("dir").uid() == 0;
    let set = |mode| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode));
    set(0o555).expect("chmod");
    std::fs::set_permissions(ledger_path(&db), std::fs::Permissions::from_mode(0o644))
        .expect("chmod ledger");
    let run = |args: &[&str]| {
        let mut c: Command = db.cmd();
        if root {
            c.uid(65534).gid(65534);
        }
        Run::from(c.args(args).output().expect("run shipctl"))
    };
    let mut outcomes = Vec::new();
    for args in READERS.iter().copied().chain([DRY_RUN]) {
        outcomes.push((args, run(args)));
    }
    set(0o700).expect("chmod back");
    for (args, r) in outcomes {
        assert_eq!(r.code, 1, "{args:?}\n{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("readonly database") || r.stderr.contains("unable to open"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("write its directory"),
            "{args:?}: no permission hint in {}",
            r.stderr
        );
    }
    assert_eq!(files(dir), before);
}

#[test]
fn another_applications_database_is_refused_and_left_as_it_was() {
    each_backend(|db| {
        declare(db);
        exec(
            db,
            "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20)); \
             INSERT INTO customers VALUES (1, 'ada')",
        );
        let before = (tables(db), db.query("SELECT id, name FROM customers"));
        let sqlite_before = files(db.dir.path());
        every_reader_fails(db, "another application's database");
        assert_eq!(
            (tables(db), db.query("SELECT id, name FROM customers")),
            before
        );
        assert_eq!(files(db.dir.path()), sqlite_before, "{:?}", db.backend);
    });
}

#[test]
fn tables_of_shipctls_names_are_never_taken_over() {
    each_backend(|db| {
        declare(db);
        exec(
            db,
            "CREATE TABLE releases (id INT PRIMARY KEY, title VARCHAR(50)); \
             INSERT INTO releases VALUES (7, 'spring sale')",
        );
        let before = (tables(db), db.query("SELECT id, title FROM releases"));
        let sqlite_before = files(db.dir.path());
        every_reader_fails(db, "no shipctl ledger");
        for args in [
            &["release", "--create", "1.0", "--tag", "v1"][..],
            &["reconcile", "--manifests", "manifests"][..],
        ] {
            let r = db.expect(args, 1);
            assert!(
                r.stderr.contains("already holds table(s) named releases"),
                "{args:?} on {:?}: {}",
                db.backend,
                r.stderr
            );
        }
        assert_eq!(
            (tables(db), db.query("SELECT id, title FROM releases")),
            before
        );
        assert_eq!(files(db.dir.path()), sqlite_before, "{:?}", db.backend);
    });
}

#[test]
fn a_schema_newer_than_this_shipctl_is_refused_by_readers_unchanged() {
    each_backend(|db| {
        declare(db);
        ledger_with_a_release(db);
        exec(
            db,
            "INSERT INTO shipctl_migrations (version, name) VALUES (99, 'future')",
        );
        let before = db.snapshot();
        let sqlite_before = files(db.dir.path());
        every_reader_fails(db, "newer than this shipctl knows");
        assert_eq!(db.snapshot(), before);
        wal_ledger_unchanged(&sqlite_before, &files(db.dir.path()));
    });
}

// ---------------------------------------------------------------- SQLite journal

#[test]
fn reading_a_rollback_journal_ledger_leaves_its_journal_mode() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    declare(&db);
    ledger_with_a_release(&db);
    exec(&db, "PRAGMA journal_mode = DELETE");
    let mode = || db.scalar("PRAGMA journal_mode");
    assert_eq!(mode(), "delete");
    let before = files(db.dir.path());
    for args in READERS {
        db.expect(args, 0);
    }
    db.expect(DRY_RUN, 2);
    assert_eq!(files(db.dir.path()), before, "no -wal, no -shm, same bytes");
    assert_eq!(mode(), "delete");
}

// ---------------------------------------------------------------- MariaDB migration

#[test]
fn a_first_migration_that_fails_midway_on_mariadb_completes_when_run_again() {
    let Some(db) = TestDb::new(Backend::MySql) else {
        return;
    };
    let database = db.scalar("SELECT DATABASE()");
    let name = format!("u{}", &database[database.len().saturating_sub(20)..]);
    let user = Account::new(
        &db,
        name.clone(),
        format!("DROP USER IF EXISTS '{name}'@'%'"),
    );
    // Every table is created; inserting the environments is refused: MariaDB has
    // committed each CREATE by then, so the migration stops half-built.
    user.sql(&format!(
        "CREATE USER '{0}'@'%' IDENTIFIED BY 'pw'; \
         GRANT SELECT, CREATE, ALTER, INDEX, REFERENCES, DROP ON {database}.* TO '{0}'@'%'",
        user.name
    ));
    let as_user = |args: &[&str]| user.run(&db, args);
    let create = ["release", "--create", "1.0", "--tag", "v1"];
    let r = as_user(&create);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("applying migration 1"), "{}", r.stderr);
    assert!(
        r.stderr.contains("grant"),
        "no privilege hint: {}",
        r.stderr
    );
    assert!(!r.stderr.contains(":pw@"), "password shown: {}", r.stderr);
    let half = tables(&db);
    assert!(half.contains(&"releases".to_string()), "{half:?}");
    // Readers say the ledger is unfinished rather than empty.
    let r = as_user(&["status"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("never completed"), "{}", r.stderr);

    user.sql(&format!(
        "GRANT INSERT, UPDATE, DELETE ON {database}.* TO '{}'@'%'",
        user.name
    ));
    let r = as_user(&create);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        db.query("SELECT nom FROM environnements ORDER BY rang"),
        vec![vec!["dev"], vec!["staging"], vec!["prod"]]
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM shipctl_migrations"), "7");
    assert_eq!(db.scalar("SELECT version FROM releases"), "1.0");
    let r = as_user(&["status", "--output", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

// ---------------------------------------------------------------- faults

#[test]
fn a_corrupt_sqlite_ledger_is_named_with_what_to_do() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    declare(&db);
    ledger_with_a_release(&db);
    let path = ledger_path(&db);
    let mut bytes = std::fs::read(&path).expect("ledger");
    // The schema's page, after the file header: the length stays whole pages.
    for b in &mut bytes[100..4096] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).expect("corrupt");
    let before = files(db.dir.path());
    every_reader_fails(&db, "malformed");
    let r = db.expect(&["status"], 1);
    assert!(
        r.stderr.contains("restore the ledger from a backup"),
        "{}",
        r.stderr
    );
    wal_ledger_unchanged(&before, &files(db.dir.path()));
}

#[test]
fn postgres_permission_denied_and_too_many_clients_get_their_hints() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    declare(&db);
    ledger_with_a_release(&db);
    let before = db.snapshot();
    let database = db.scalar("SELECT CAST(current_database() AS TEXT)");
    let name = format!("r{}", &database[database.len().saturating_sub(30)..]);
    let role = Account::new(
        &db,
        name.clone(),
        format!("DROP OWNED BY {name}; DROP ROLE IF EXISTS {name}"),
    );
    role.sql(&format!(
        "CREATE ROLE {0} LOGIN PASSWORD 'pw'; GRANT CONNECT ON DATABASE {database} TO {0}",
        role.name
    ));
    let as_role = |args: &[&str]| role.run(&db, args);
    // The role sees the ledger's tables but may not read them: not "no ledger".
    for args in READERS {
        let r = as_role(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("permission denied"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("grant the URL's user"), "{}", r.stderr);
        assert!(!r.stderr.contains("pw@"), "password shown: {}", r.stderr);
    }
    // No connection allowed for the role: the server's "too many connections".
    role.sql(&format!("ALTER ROLE {} CONNECTION LIMIT 0", role.name));
    let r = as_role(&["status"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("too many connections"), "{}", r.stderr);
    assert!(r.stderr.contains("max_connections"), "{}", r.stderr);
    assert_eq!(db.snapshot(), before);
}
