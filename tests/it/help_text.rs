//! What `--help` says, read from the real binary: every flag described, global
//! options apart from a command's own, the exit codes of `src/exit.rs`, and
//! `markdown` and the database options offered only where they apply.

use crate::common::*;

const DATABASE_FLAGS: [&str; 4] = [
    "--database-url",
    "--lease-ttl",
    "--connect-timeout",
    "--lock-timeout",
];

/// The repository's sample manifests: valid, three managed environments.
fn sample_manifests() -> String {
    format!("{}/manifests", env!("CARGO_MANIFEST_DIR"))
}

/// `shipctl ARGS`, which must exit 0; its stdout.
fn help(db: &TestDb, args: &[&str]) -> String {
    db.expect(args, 0).stdout
}

/// The command names listed under "Commands:" in the top-level help.
pub(crate) fn commands(db: &TestDb) -> Vec<String> {
    let top = help(db, &["--help"]);
    let names: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // Lines that continue a wrapped description are indented further.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|name| name != "help")
        .collect();
    assert!(names.len() >= 11, "commands not found in:\n{top}");
    names
}

/// Every flag line of a help text, each with its description: the text after
/// the flag on the same line, or the next line when clap puts it there.
fn flags(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let rest = line.trim_start();
        // Flags sit at column 2 (`-h, --help`) or 6 (`--long`); possible values
        // (`- text`) and wrapped descriptions sit further right.
        if !(indent == 2 || indent == 6) || !rest.starts_with('-') || rest.starts_with("- ") {
            continue;
        }
        let (flag, same_line) = match rest.split_once("  ") {
            Some((flag, desc)) => (flag.trim(), desc.trim()),
            None => (rest.trim(), ""),
        };
        let description = if !same_line.is_empty() {
            same_line.to_string()
        } else {
            match lines.get(i + 1) {
                Some(next) if next.len() - next.trim_start().len() > indent + 2 => {
                    next.trim().to_string()
                }
                _ => String::new(),
            }
        };
        // clap's own notes (`[default: ..]`, `[possible values: ..]`) describe nothing.
        let description = if description.starts_with('[') {
            String::new()
        } else {
            description
        };
        out.push((flag.to_string(), description));
    }
    out
}

#[test]
fn every_flag_of_every_command_has_a_description() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let mut invocations = vec![vec![]];
    for c in commands(&db) {
        invocations.push(vec![c]);
    }
    for base in invocations {
        for h in ["-h", "--help"] {
            let mut args: Vec<&str> = base.iter().map(String::as_str).collect();
            args.push(h);
            let text = help(&db, &args);
            let found = flags(&text);
            assert!(
                found.iter().any(|(f, _)| f.contains("--help")),
                "no flag found in `shipctl {}`:\n{text}",
                args.join(" ")
            );
            for (flag, description) in found {
                assert!(
                    !description.is_empty(),
                    "`shipctl {}`: {flag} has no description:\n{text}",
                    args.join(" ")
                );
            }
        }
    }
}

#[test]
fn global_options_are_grouped_apart_from_a_commands_own() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let text = help(&db, &["status", "--help"]);
    let (own, global) = text
        .split_once("Global options:")
        .unwrap_or_else(|| panic!("no global group:\n{text}"));
    let global = global.split("Examples:").next().unwrap_or(global);
    assert!(own.contains("--env"), "{text}");
    for flag in DATABASE_FLAGS.iter().chain(&["--output"]) {
        assert!(!own.contains(flag), "{flag} among status's own:\n{text}");
        assert!(
            global.contains(flag),
            "{flag} not among the global:\n{text}"
        );
    }
    assert!(!global.contains("--env"), "{text}");
}

#[test]
fn check_shows_no_database_option_and_still_accepts_them() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    for h in ["-h", "--help"] {
        let text = help(&db, &["check", h]);
        for flag in DATABASE_FLAGS {
            assert!(!text.contains(flag), "check {h} shows {flag}:\n{text}");
        }
        assert!(
            text.contains("--manifests") && text.contains("--output"),
            "{text}"
        );
    }
    // Global options before the command, or after it, as scripts pass them.
    let manifests = sample_manifests();
    for args in [
        vec!["--database-url", "sqlite://elsewhere.db", "check"],
        vec!["check", "--database-url", "sqlite://elsewhere.db"],
        vec!["check", "--lock-timeout", "5s", "--connect-timeout", "1s"],
    ] {
        let mut args = args;
        args.extend(["--manifests", &manifests]);
        let out = db.expect(&args, 0);
        assert!(out.stdout.contains("is valid"), "{args:?}: {}", out.stdout);
    }
    assert!(
        !db.dir.path().join("elsewhere.db").exists(),
        "check opened a database"
    );
    assert!(
        !db.dir.path().join("shipctl.db").exists(),
        "check opened a database"
    );
}

#[test]
fn top_level_help_lists_every_exit_code() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let text = help(&db, &["--help"]);
    let codes = text
        .split_once("Exit codes:")
        .unwrap_or_else(|| panic!("no exit codes:\n{text}"))
        .1;
    for (code, words) in [
        ("0 ", "done"),
        ("1 ", "error"),
        ("2 ", "--dry-run found changes"),
        ("3 ", "failed"),
        ("4 ", "blocked"),
        ("130, 143 ", "SIGINT or SIGTERM"),
    ] {
        let line = codes
            .lines()
            .find(|l| l.trim_start().starts_with(code))
            .unwrap_or_else(|| panic!("no exit code {code}in:\n{codes}"));
        assert!(line.contains(words), "exit {code}: {line}");
    }
    // The same numbers the short help shows.
    assert!(help(&db, &["-h"]).contains("130, 143"));
}

#[test]
fn markdown_is_offered_by_reconcile_only() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let mut offer_it = Vec::new();
    for c in commands(&db) {
        for h in ["-h", "--help"] {
            if help(&db, &[&c, h]).contains("markdown") {
                offer_it.push(format!("{c} {h}"));
            }
        }
    }
    assert_eq!(offer_it, ["reconcile -h", "reconcile --help"]);
    assert!(!help(&db, &["--help"]).contains("markdown"));
    // Where it is not offered, a wrong value lists the ones that are.
    let out = db.expect(&["status", "--output", "xml"], 1);
    assert!(
        out.stderr.contains("[possible values: text, json, jsonl]"),
        "{}",
        out.stderr
    );
}

#[test]
fn markdown_works_for_a_dry_run_and_is_refused_elsewhere() {
    let manifests = sample_manifests();
    each_backend(|db| {
        db.expect(&["release", "--create", "0.9", "--tag", "v0.9"], 0);
        for args in [
            ["reconcile", "--dry-run", "--output", "markdown"],
            ["--output", "markdown", "reconcile", "--dry-run"],
        ] {
            let mut args = args.to_vec();
            args.extend(["--manifests", &manifests]);
            let md = db.expect(&args, 2).stdout;
            assert!(
                md.contains("| Environment | Live | Desired | Plan |") && md.contains("```diff"),
                "{:?} {args:?}:\n{md}",
                db.backend
            );
        }
        for args in [
            vec!["status", "--output", "markdown"],
            vec![
                "reconcile",
                "--output",
                "markdown",
                "--manifests",
                &manifests,
            ],
        ] {
            let out = db.expect(&args, 1);
            assert!(
                out.stderr
                    .contains("--output markdown is for `shipctl reconcile --dry-run`")
                    && out.stderr.contains("use --output text or --output json"),
                "{:?} {args:?}: {}",
                db.backend,
                out.stderr
            );
        }
        // Refused before the ledger was touched: the apply created no release.
        let releases = db.expect(&["release", "--list", "--output", "json"], 0);
        assert!(
            releases.stdout.contains("\"0.9\"") && !releases.stdout.contains("1.0.0"),
            "{:?}: {}",
            db.backend,
            releases.stdout
        );
    });
}

/// A script that asked for JSON gets JSON for a usage error too: one object,
/// kind `usage`, exit 1, nothing on stderr; without `--output json` clap's
/// text stays.
#[test]
fn usage_errors_are_json_when_json_was_asked_for() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    for args in [
        vec!["--output", "json", "status", "--bogus"],
        vec!["status", "--output=json", "--env", "nope"],
        vec![
            "--output",
            "json",
            "deploy",
            "--release",
            "x",
            "--env",
            "prod",
        ],
        vec!["--output", "json", "stauts"],
    ] {
        let r = db.run(&args);
        assert_eq!(r.code, 1, "{args:?}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.is_empty(), "{args:?}: stderr {}", r.stderr);
        let v = r.json();
        let e = &v["error"];
        assert_eq!(e["kind"], "usage", "{args:?}: {v}");
        assert_eq!(e["exit_code"], 1, "{args:?}: {v}");
        let message = e["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty() && !message.starts_with("error:"),
            "{args:?}: {v}"
        );
    }
    let r = db.run(&["status", "--bogus"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("error:"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}
