//! What shipctl says about the text it is given: database URLs shown with
//! their password cut out by position (never a word of a message), malformed
//! URLs never echoed with credentials, schemes in any case, `sqlite::memory:`
//! refused, and control characters refused on the way in and escaped on the
//! way out.

use crate::common::*;

use serde_json::Value;

// ---------------------------------------------------------------- helpers

/// `shipctl status` (text, then JSON) with `url` as the database URL.
fn status_with(db: &TestDb, url: &str) -> (Run, Run) {
    let run = |json: bool| {
        let mut c = db.cmd();
        c.env("SHIPCTL_DATABASE_URL", url).arg("status");
        if json {
            c.args(["--output", "json"]);
        }
        Run::from(c.output().expect("run shipctl"))
    };
    (run(false), run(true))
}

/// The JSON error object, with exactly the keys of the contract.
fn json_error(r: &Run) -> Value {
    let v = r.json();
    let e = v["error"].clone();
    let mut keys: Vec<&str> = e
        .as_object()
        .unwrap_or_else(|| panic!("no error object: {v:#}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["exit_code", "hint", "kind", "message"], "{v:#}");
    e
}

/// Checks one failed connection: exit 1 in text and JSON, the message's
/// words present (`words`), the URL shown as `shown`, and the password
/// `secret` nowhere as userinfo — nor anywhere at all when `distinct`.
fn check_redacted(
    text: &Run,
    json: &Run,
    words: &[&str],
    shown: &str,
    secret: &str,
    distinct: bool,
) {
    assert_eq!(text.code, 1, "{}\n{}", text.stdout, text.stderr);
    assert_eq!(json.code, 1, "{}\n{}", json.stdout, json.stderr);
    assert!(text.stderr.starts_with("error: "), "{}", text.stderr);
    assert!(text.stderr.contains("\n  hint: "), "{}", text.stderr);
    let e = json_error(json);
    let message = e["message"].as_str().expect("message");
    for (out, what) in [(&text.stderr, "text"), (&message.to_string(), "json")] {
        for w in words {
            assert!(out.contains(w), "{what}: {w:?} missing from {out}");
        }
        assert!(out.contains(shown), "{what}: {shown:?} missing from {out}");
    }
    for out in [&text.stdout, &text.stderr, &json.stdout, &json.stderr] {
        assert!(
            !out.contains(&format!(":{secret}@")),
            "password shown: {out}"
        );
        assert!(!out.contains("***rror") && !out.contains("***e"), "{out}");
        if distinct {
            assert!(!out.contains(secret), "password shown: {out}");
        }
    }
    assert_eq!(e["exit_code"], 1);
    assert!(
        e["hint"].as_str().is_some_and(|h| h.contains("password")),
        "{e:#}"
    );
}

/// The test database's URL with `user:password` (already percent-encoded)
/// and, when given, another database.
fn with_credentials(db: &TestDb, user: &str, password: &str, database: Option<&str>) -> String {
    let mut url = url::Url::parse(&db.url).expect("url");
    url.set_username(user).expect("user");
    url.set_password(Some(password)).expect("password");
    if let Some(name) = database {
        url.set_path(&format!("/{name}"));
    }
    url.to_string()
}

/// Runs `sql` on the test database as the server's admin (no prepared
/// statement: `CREATE USER` and raw control bytes go through as written).
fn admin_sql(db: &TestDb, sql: &str) {
    crate::common::account::raw_sql(&db.url, sql);
}

/// A MariaDB user that is dropped at the end, whatever happens.
struct MyUser<'a> {
    db: &'a TestDb,
    name: String,
}

impl Drop for MyUser<'_> {
    fn drop(&mut self) {
        let name = self.name.clone();
        let db = self.db;
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            admin_sql(db, &format!("DROP USER IF EXISTS '{name}'@'%'"))
        }));
    }
}

// ---------------------------------------------------------------- redaction

/// (password as written in the URL, as the server knows it)
const PASSWORDS: [(&str, &str); 4] = [
    ("e", "e"),
    ("error", "error"),
    ("p%40ss%3Aw%2540rd", "p@ss:w%40rd"),
    ("cannot", "cannot"),
];

#[test]
fn an_unreachable_server_is_named_without_its_password_and_messages_keep_their_words() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    for (scheme, name) in [("postgres", "PostgreSQL"), ("mysql", "MySQL/MariaDB")] {
        for (written, plain) in PASSWORDS {
            let url = format!("{scheme}://app:{written}@127.0.0.1:1/ledger");
            let (text, json) = status_with(&db, &url);
            check_redacted(
                &text,
                &json,
                &[
                    &format!("cannot connect to {name} at"),
                    "Connection refused",
                ],
                &format!("{scheme}://app:***@127.0.0.1:1/ledger"),
                written,
                written.len() > 6,
            );
            if plain != written {
                for out in [&text.stderr, &json.stdout] {
                    assert!(!out.contains(plain) && !out.contains("ss:w"), "{out}");
                }
            }
        }
        // User = password = database name: the names stay, the password goes.
        let url = format!("{scheme}://ledger:ledger@127.0.0.1:1/ledger");
        let (text, json) = status_with(&db, &url);
        check_redacted(
            &text,
            &json,
            &["cannot connect"],
            &format!("{scheme}://ledger:***@127.0.0.1:1/ledger"),
            "ledger",
            false,
        );
        // A password in a query parameter.
        let url = format!("{scheme}://app@127.0.0.1:1/ledger?password=s3cretpw&connect_timeout=5");
        let (text, json) = status_with(&db, &url);
        check_redacted(
            &text,
            &json,
            &["cannot connect"],
            &format!("{scheme}://app@127.0.0.1:1/ledger?password=***&connect_timeout=5"),
            "s3cretpw",
            true,
        );
    }
}

#[test]
fn postgres_names_a_missing_role_word_for_word() {
    // PostgreSQL trusts 127.0.0.1 here: a wrong password cannot be refused, but
    // a role that does not exist is, and its name (= password = database) stays.
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let name = format!("nobody_{}", rand::random::<u32>());
    let url = with_credentials(&db, &name, &name, Some(&name));
    let (text, json) = status_with(&db, &url);
    let shown = format!("{name}:***@");
    check_redacted(
        &text,
        &json,
        &[
            &format!("role \"{name}\" does not exist"),
            &format!("/{name}"),
        ],
        &shown,
        &name,
        false,
    );
}

#[test]
fn mariadb_refusals_keep_user_and_database_names_and_hide_the_password() {
    let Some(db) = TestDb::new(Backend::MySql) else {
        return;
    };
    let database = db.scalar("SELECT DATABASE()");
    // user = password = the database's name.
    let cases: Vec<(String, String, String)> = PASSWORDS
        .iter()
        .enumerate()
        .map(|(i, (written, plain))| {
            (
                format!("u{i}_{}", rand::random::<u32>()),
                written.to_string(),
                plain.to_string(),
            )
        })
        .chain([(database.clone(), database.clone(), database.clone())])
        .collect();
    for (user, written, plain) in cases {
        let _guard = MyUser {
            db: &db,
            name: user.clone(),
        };
        admin_sql(
            &db,
            &format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{plain}'"),
        );
        // The right password, no privileges: the server names user and database.
        let url = with_credentials(&db, &user, &written, None);
        let (text, json) = status_with(&db, &url);
        check_redacted(
            &text,
            &json,
            &[
                &format!("Access denied for user '{user}'"),
                &format!("to database '{database}'"),
            ],
            &format!("mysql://{user}:***@"),
            &written,
            written.len() > 6 && written != user,
        );
        // A wrong password (the right one with an `x` in front).
        let url = with_credentials(&db, &user, &format!("x{written}"), None);
        let (text, json) = status_with(&db, &url);
        check_redacted(
            &text,
            &json,
            &[
                &format!("Access denied for user '{user}'"),
                "(using password: YES)",
            ],
            &format!("mysql://{user}:***@"),
            &format!("x{written}"),
            written.len() > 3,
        );
        if plain != written {
            for out in [&text.stderr, &json.stdout] {
                assert!(!out.contains(&plain), "{out}");
            }
        }
    }
}

#[test]
fn malformed_urls_are_explained_without_their_credentials() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    for (url, shown, what) in [
        (
            "postgres:/u:hunter2@h/db",
            "postgres:/***@h/db",
            "must be followed by `//`",
        ),
        (
            "mysql//u:hunter2@h",
            "mysql//***@h",
            "must be followed by `://`",
        ),
        (
            "Postgres://u:hunter2@h:99999/db",
            "Postgres://***@h:99999/db",
            "invalid port number",
        ),
        (
            "oracle://u:hunter2@h/db",
            "oracle://***@h/db",
            "not supported",
        ),
        ("mariadb://u:hunter2@/db", "mariadb://***@/db", "not valid"),
    ] {
        let (text, json) = status_with(&db, url);
        assert_eq!(text.code, 1, "{url}: {}", text.stderr);
        assert_eq!(json.code, 1, "{url}: {}", json.stdout);
        let e = json_error(&json);
        let message = e["message"].as_str().expect("message");
        for out in [&text.stderr, &message.to_string()] {
            assert!(out.contains(shown), "{url}: {out}");
            assert!(out.contains(what), "{url}: {out}");
        }
        assert!(
            e["hint"]
                .as_str()
                .is_some_and(|h| h.contains("://USER:PASSWORD@HOST")),
            "{e:#}"
        );
        for out in [&text.stdout, &text.stderr, &json.stdout, &json.stderr] {
            assert!(!out.contains("hunter2"), "{url}: password shown: {out}");
        }
    }
    // Nothing was created where the default ledger would be.
    assert!(!db.dir.path().join("shipctl.db").exists());
}

// ---------------------------------------------------------------- schemes

/// `url` with its scheme written as `scheme`.
fn rescheme(url: &str, scheme: &str) -> String {
    let (_, rest) = url.split_once(':').expect("a scheme");
    format!("{scheme}:{rest}")
}

#[test]
fn schemes_work_in_any_case() {
    each_backend(|db| {
        let schemes: &[&str] = match db.backend {
            Backend::Sqlite => &["SQLITE", "Sqlite"],
            Backend::Postgres => &["POSTGRES", "PostgreSQL"],
            Backend::MySql => &["MYSQL", "MariaDB"],
        };
        for (i, scheme) in schemes.iter().enumerate() {
            let url = rescheme(&db.url, scheme);
            let version = format!("1.{i}");
            let r = Run::from(
                db.cmd()
                    .env("SHIPCTL_DATABASE_URL", &url)
                    .args([
                        "release",
                        "--create",
                        &version,
                        "--tag",
                        &format!("v{version}"),
                    ])
                    .output()
                    .expect("run"),
            );
            assert_eq!(r.code, 0, "{url}: {}", r.stderr);
            let r = Run::from(
                db.cmd()
                    .env("SHIPCTL_DATABASE_URL", &url)
                    .args(["release", "--list", "--output", "json"])
                    .output()
                    .expect("run"),
            );
            assert_eq!(r.code, 0, "{url}: {}", r.stderr);
            assert!(r.stdout.contains(&format!("\"{version}\"")), "{}", r.stdout);
        }
        assert_eq!(db.scalar("SELECT COUNT(*) FROM releases"), "2");
    });
}

#[test]
fn a_ledger_in_memory_is_refused() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    for url in [
        "sqlite::memory:",
        "SQLite://:memory:",
        "sqlite://ledger.db?mode=memory",
        "sqlite://ledger.db?cache=shared&mode=Memory",
    ] {
        let r = Run::from(
            db.cmd()
                .env("SHIPCTL_DATABASE_URL", url)
                .args(["release", "--create", "1.0", "--tag", "v1"])
                .output()
                .expect("run"),
        );
        assert_eq!(r.code, 1, "{url}: {}", r.stdout);
        assert!(
            r.stderr.contains("in-memory SQLite database"),
            "{url}: {}",
            r.stderr
        );
        assert!(
            r.stderr
                .contains("vanishes when the command ends: use a file"),
            "{}",
            r.stderr
        );
    }
    let names: Vec<_> = std::fs::read_dir(db.dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(names.is_empty(), "files created: {names:?}");
}

// ---------------------------------------------------------------- control characters

/// A manifest with prod waiting for one approval at gate `qa`.
fn prod_waiting_for_qa(db: &TestDb) -> i64 {
    let dir = db.dir.path().join("manifests");
    std::fs::create_dir_all(&dir).expect("manifest dir");
    std::fs::write(
        dir.join("shipctl.yaml"),
        "releases:\n  - { version: \"1.0\", tag: v1.0 }\nenvironments:\n  prod:\n    \
         release: \"1.0\"\n    gates:\n      qa: { approvals: 1 }\n    \
         executor: { simulate: { duration: 0s, failure_rate: 0 } }\n",
    )
    .expect("write manifest");
    db.expect(&["reconcile", "--manifests", "manifests"], 4);
    db.scalar("SELECT MAX(id) FROM deploiements")
        .parse()
        .expect("a deployment id")
}

#[test]
fn control_characters_in_what_a_person_gives_are_refused_and_nothing_is_written() {
    each_backend(|db| {
        let id = prod_waiting_for_qa(db).to_string();
        let approve = ["approve", "--deploy-id", &id, "--gate", "qa"];
        let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
            (
                vec!["--reject", "--reason", "bad\x1b[2K"],
                None,
                "--reason contains the control character U+001B at character 4",
            ),
            (
                vec!["--reject", "--reason", "fine\r"],
                None,
                "--reason contains the control character U+000D at character 5",
            ),
            (
                vec!["--reject", "--reason", "two\nlines"],
                None,
                "U+000A at character 4",
            ),
            (
                vec!["--reject", "--reason", "\u{202E}txet"],
                None,
                "U+202E at character 1",
            ),
            (
                vec!["--reject", "--reason", "iso\u{2066}late"],
                None,
                "U+2066 at character 4",
            ),
            (
                vec!["--by", "al\x1bice"],
                None,
                "--by contains the control character U+001B at character 3",
            ),
            (
                vec!["--by", "bob\u{202D}"],
                None,
                "--by contains the control character U+202D at character 4",
            ),
            (
                vec![],
                Some("eve\x07"),
                "SHIPCTL_ACTOR contains the control character U+0007 at character 4",
            ),
            (vec![], Some("eve\u{2069}"), "U+2069 at character 4"),
        ];
        for (extra, actor, said) in cases {
            let before = db.snapshot();
            for json in [false, true] {
                let mut c = db.cmd();
                c.args(approve).args(&extra);
                if json {
                    c.args(["--output", "json"]);
                }
                if let Some(a) = actor {
                    c.env("SHIPCTL_ACTOR", a);
                }
                let r = Run::from(c.output().expect("run"));
                assert_eq!(r.code, 1, "{extra:?} {actor:?}: {}\n{}", r.stdout, r.stderr);
                let out = if json {
                    json_error(&r)["message"]
                        .as_str()
                        .expect("message")
                        .to_string()
                } else {
                    r.stderr.clone()
                };
                assert!(out.contains(said), "{extra:?} {actor:?}: {out}");
                assert!(
                    !r.stderr.contains('\x1b') && !r.stderr.contains('\r'),
                    "{:?}",
                    r.stderr
                );
            }
            assert_eq!(
                db.snapshot(),
                before,
                "{extra:?} {actor:?} wrote to the ledger"
            );
        }
        // A writing command other than approve refuses the actor too.
        let before = db.snapshot();
        let r = Run::from(
            db.cmd()
                .env("SHIPCTL_ACTOR", "ma\rllory")
                .args(["release", "--create", "2.0", "--tag", "v2.0"])
                .output()
                .expect("run"),
        );
        assert_eq!(r.code, 1, "{}", r.stdout);
        assert!(
            r.stderr
                .contains("SHIPCTL_ACTOR contains the control character U+000D at character 3"),
            "{}",
            r.stderr
        );
        assert_eq!(db.snapshot(), before);
        // Plain text still goes through.
        db.expect(&approval(&id, "alice"), 0);
    });
}

/// Whether some object in `v` has `key` equal to `want`.
fn holds(v: &Value, key: &str, want: &str) -> bool {
    match v {
        Value::Object(map) => {
            map.get(key).and_then(Value::as_str) == Some(want)
                || map.values().any(|x| holds(x, key, want))
        }
        Value::Array(items) => items.iter().any(|x| holds(x, key, want)),
        _ => false,
    }
}

#[test]
fn stored_control_characters_are_shown_escaped_and_kept_exact_in_json() {
    each_backend(|db| {
        let id = prod_waiting_for_qa(db);
        db.expect(
            &[
                "approve",
                "--deploy-id",
                &id.to_string(),
                "--gate",
                "qa",
                "--by",
                "alice",
            ],
            0,
        );
        // Rows as an older version (or someone with SQL) could have written them.
        let forged = "ok\x1b[2K\r2026-01-01 00:00:00  approved by admin";
        admin_sql(
            db,
            &format!(
                "INSERT INTO audit_logs (id_deploiement, action, message, acteur) \
                 VALUES ({id}, 'note', '{forged}', 'ev\x1bil')"
            ),
        );
        admin_sql(
            db,
            &format!(
                "INSERT INTO gate_results (id_deploiement, gate, kind, outcome, acteur, message) \
                 VALUES ({id}, 'qa', 'approval', 'approved', 'bob\u{202E}', '{forged}')"
            ),
        );
        let escaped = "ok\\u{1b}[2K\\u{d}2026-01-01 00:00:00  approved by admin";
        for args in [
            vec!["audit"],
            vec!["audit", "--deploy-id", &id.to_string()],
            vec!["history", "--env", "prod"],
        ] {
            let r = db.expect(&args, 0);
            assert!(r.stdout.contains(escaped), "{args:?}:\n{}", r.stdout);
            assert!(
                !r.stdout.contains('\x1b') && !r.stdout.contains('\r'),
                "{args:?}: {:?}",
                r.stdout
            );
            assert!(!r.stdout.contains('\u{202E}'), "{args:?}: {:?}", r.stdout);
            let mut json_args = args.clone();
            json_args.extend(["--output", "json"]);
            let v = db.expect(&json_args, 0).json();
            assert!(
                holds(&v, "message", forged),
                "{args:?}: exact text missing: {v:#}"
            );
        }
        let audit = db.expect(&["audit"], 0).stdout;
        assert!(audit.contains("ev\\u{1b}il"), "{audit}");
        let history = db.expect(&["history", "--env", "prod"], 0).stdout;
        assert!(history.contains("bob\\u{202e}"), "{history}");
        let status = db.expect(&["status", "--env", "prod"], 0).stdout;
        assert!(
            !status.contains('\x1b') && !status.contains('\r'),
            "{status:?}"
        );
        // A stored rejection's reason, quoted by validate's verdict.
        admin_sql(
            db,
            &format!(
                "INSERT INTO gate_results (id_deploiement, gate, kind, outcome, acteur, message) \
                 VALUES ({id}, 'qa', 'approval', 'rejected', 'carol', '{forged}')"
            ),
        );
        let r = db.run(&["validate", "--deploy-id", &id.to_string()]);
        assert_ne!(r.code, 0, "{}", r.stdout);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(all.contains(escaped), "{all}");
        assert!(!all.contains('\x1b') && !all.contains('\r'), "{all:?}");
    });
}
