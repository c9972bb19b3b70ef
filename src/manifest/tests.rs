use super::*;
use std::fs;

fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(d.path().join(name), text).unwrap();
    }
    d
}

fn err(files: &[(&str, &str)]) -> String {
    let d = dir(files);
    let e = load(d.path()).expect_err("should be refused");
    format!("{}\nhint: {}", e.message, e.hint.unwrap_or_default())
}

const GOOD: &str = r#"
apiVersion: shipctl/v1
releases:
  - version: "1.0.2"
    tag: v1.0.2
  - version: "1.0.3"
    tag: v1.0.3
environments:
  dev: { release: "1.0.3" }
  staging: { release: "1.0.2", gates: { qa: { approvals: 1 } } }
  prod:
    release: "1.0.2"
    requires: staging
    gates:
      qa: { approvals: 1 }
      security: { command: ["./scripts/scan.sh"], timeout: 2m }
    executor:
      simulate: { duration: 2s, failure_rate: 0.1 }
    on_failure: cancel
    max_attempts: 2
"#;

#[test]
fn the_documented_manifest_loads() {
    let d = dir(&[("shipctl.yaml", GOOD)]);
    let m = load(d.path()).unwrap();
    assert_eq!(m.releases.len(), 2);
    let prod = &m.environments[&Env::Prod];
    assert_eq!(prod.release, "1.0.2");
    assert_eq!(prod.policy.requires, Some(Env::Staging));
    assert_eq!(prod.policy.on_failure, OnFailure::Cancel);
    assert_eq!(prod.policy.max_attempts, 2);
    assert_eq!(prod.policy.gates.len(), 2);
    assert_eq!(prod.policy.gates[1].name, "security");
    let dev = &m.environments[&Env::Dev];
    assert_eq!(dev.policy, Policy::default());
    // The policy survives the round trip through the database's JSON column.
    let json = serde_json::to_string(&prod.policy).unwrap();
    let back: Policy = serde_json::from_str(&json).unwrap();
    assert_eq!(back, prod.policy);
}

#[test]
fn files_are_merged_in_name_order_and_temp_files_ignored() {
    let d = dir(&[
        (
            "b-envs.yml",
            "environments:\n  prod: { release: \"2.0\" }\n",
        ),
        (
            "a-releases.yaml",
            "releases:\n  - { version: \"2.0\", tag: v2.0 }\n",
        ),
        (".#b-envs.yml", "garbage: ["),
        ("b-envs.yml~", "garbage: ["),
        (".b-envs.yml.swp", "garbage: ["),
        ("notes.txt", "garbage: ["),
        ("empty.yaml", "# nothing yet\n"),
    ]);
    let m = load(d.path()).unwrap();
    assert_eq!(m.environments[&Env::Prod].release, "2.0");
    assert_eq!(m.releases[0].file.file_name().unwrap(), "a-releases.yaml");
}

#[test]
fn unquoted_float_version_gets_a_hint() {
    let e = err(&[("m.yaml", "releases:\n  - version: 1.10\n    tag: v1.10\n")]);
    assert!(e.contains("m.yaml:2:14"), "{e}");
    assert!(e.contains("releases[0].version: 1.10 is a number"), "{e}");
    assert!(e.contains("reads as 1.1"), "{e}");
    assert!(e.contains("quote it: \"1.10\""), "{e}");
}

#[test]
fn unknown_keys_are_errors_with_their_path() {
    let e = err(&[("m.yaml", "environments:\n  prod:\n    relase: \"1\"\n")]);
    assert!(
        e.contains("m.yaml:3:5: environments.prod: unknown key `relase`"),
        "{e}"
    );
    let e = err(&[("m.yaml", "release: []\n")]);
    assert!(e.contains("unknown key `release`"), "{e}");
}

#[test]
fn unknown_environment() {
    let e = err(&[(
        "m.yaml",
        "releases: [{version: \"1\", tag: v1}]\nenvironments:\n  qa: { release: \"1\" }\n",
    )]);
    assert!(e.contains("m.yaml:3:3"), "{e}");
    assert!(e.contains("unknown environment \"qa\""), "{e}");
}

#[test]
fn a_key_in_two_files_names_both() {
    let e = err(&[
        (
            "a.yaml",
            "releases: [{version: \"1\", tag: v1}]\nenvironments:\n  prod: { release: \"1\" }\n",
        ),
        ("b.yaml", "environments:\n  prod: { release: \"1\" }\n"),
    ]);
    assert!(e.contains("environments.prod is defined in"), "{e}");
    assert!(e.contains("a.yaml") && e.contains("b.yaml"), "{e}");
    let e = err(&[
        ("a.yaml", "releases: [{version: \"1\", tag: v1}]\n"),
        ("b.yaml", "releases: [{version: \"1\", tag: v1}]\n"),
    ]);
    assert!(
        e.contains("release 1 is declared in") && e.contains("a.yaml") && e.contains("b.yaml"),
        "{e}"
    );
}

#[test]
fn a_key_twice_in_one_file() {
    let e = err(&[(
        "m.yaml",
        "releases: [{version: \"1\", tag: v1}]\nenvironments:\n  prod: { release: \"1\" }\n  prod: { release: \"1\" }\n",
    )]);
    assert!(e.contains("prod is defined twice"), "{e}");
}

#[test]
fn undeclared_release() {
    let e = err(&[(
        "m.yaml",
        "releases: [{version: \"1\", tag: v1}]\nenvironments:\n  prod:\n    release: \"9.9\"\n",
    )]);
    assert!(
        e.contains("m.yaml:4: environments.prod.release: release 9.9 is not declared"),
        "{e}"
    );
    assert!(e.contains("version: \"9.9\""), "{e}");
}

#[test]
fn bad_values() {
    let base =
        "releases: [{version: \"1\", tag: v1}]\nenvironments:\n  prod:\n    release: \"1\"\n";
    for (extra, needle) in [
        ("    requires: prod\n", "cannot require prod"),
        ("    requires: qa\n", "unknown environment"),
        ("    max_attempts: 0\n", "out of range"),
        ("    max_attempts: -1\n", "max_attempts"),
        ("    on_failure: retry\n", "use replan or cancel"),
        ("    gates: { qa: { approvals: 0 } }\n", "approves nothing"),
        ("    gates: { qa: {} }\n", "either approvals"),
        (
            "    gates: { qa: { approvals: 1, command: [x] } }\n",
            "either approvals",
        ),
        ("    gates: { qa: { command: [] } }\n", "command is empty"),
        ("    executor: { simulate: { duration: 5 } }\n", "no unit"),
        (
            "    executor: { simulate: { failure_rate: 2 } }\n",
            "not between",
        ),
        (
            "    executor: { command: { run: [] } }\n",
            "the command is empty",
        ),
        ("    executor: { ssh: {} }\n", "unknown key `ssh`"),
        (
            "    executor: { simulate: {}, command: { run: [x] } }\n",
            "either simulate",
        ),
    ] {
        let e = err(&[("m.yaml", &format!("{base}{extra}"))]);
        assert!(e.contains(needle), "{extra:?}: {e}");
        assert!(e.contains("m.yaml"), "{extra:?}: {e}");
    }
    let long = "x".repeat(51);
    let e = err(&[(
        "m.yaml",
        &format!("releases: [{{version: \"{long}\", tag: v1}}]\n"),
    )]);
    assert!(e.contains("at most 50"), "{e}");
    let e = err(&[("m.yaml", "apiVersion: shipctl/v2\n")]);
    assert!(e.contains("m.yaml:1: apiVersion"), "{e}");
}

#[test]
fn hostile_input_is_refused_quickly() {
    // An alias bomb: a billion "lol"s if it were expanded.
    let mut bomb = String::from(
        "releases: [{version: \"1\", tag: v1}]\nenvironments:\n  prod:\n    release: \"1\"\n    gates:\n      g0: {command: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]}\n",
    );
    for i in 1..10 {
        bomb.push_str(&format!(
            "      g{i}: {{command: &x{i} [{}]}}\n",
            vec![format!("*x{}", i - 1); 10].join(", ")
        ));
    }
    let started = std::time::Instant::now();
    let e = err(&[("m.yaml", &bomb)]);
    assert!(e.contains("m.yaml"), "{e}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Deep nesting.
    let deep = format!("releases: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let e = err(&[("m.yaml", &deep)]);
    assert!(
        e.contains("m.yaml:1: the YAML is nested more than 64 levels"),
        "{e}"
    );
    let e = err(&[(
        "m.yaml",
        &format!(
            "releases: {}{}\n",
            "{a: ".repeat(100_000),
            "}".repeat(100_000)
        ),
    )]);
    assert!(e.contains("nested more than"), "{e}");
    // Brackets in quotes and comments are not nesting.
    let d = dir(&[(
        "m.yaml",
        &format!(
            "# {}\nreleases: [{{version: \"{}\", tag: v1}}]\n",
            "[".repeat(200),
            "[".repeat(40)
        ),
    )]);
    assert!(load(d.path()).is_ok());
    // A multi-megabyte file.
    let big = format!("# {}\n", "x".repeat(3 * 1024 * 1024));
    let e = err(&[("m.yaml", &big)]);
    assert!(e.contains("at most 1048576 bytes"), "{e}");
    // Not UTF-8.
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("m.yaml"), b"releases: [\xff]\n").unwrap();
    assert!(load(d.path()).unwrap_err().message.contains("not UTF-8"));
}

#[test]
fn symlink_loops_and_missing_directories() {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("loop.yaml", d.path().join("loop.yaml")).unwrap();
    let e = load(d.path()).unwrap_err();
    assert!(
        e.message.contains("loop.yaml") && e.message.contains("loops"),
        "{}",
        e.message
    );
    let e = load(&d.path().join("nope")).unwrap_err();
    assert!(e.message.contains("does not exist"), "{}", e.message);
    let e = load(tempfile::tempdir().unwrap().path()).unwrap_err();
    assert!(e.message.contains("no manifests"), "{}", e.message);
}

#[test]
fn gate_names_and_approvers_are_checked() {
    let with_gate = |gate: &str| {
        format!(
            "releases:\n  - {{ version: \"1.0\", tag: v1 }}\nenvironments:\n  prod:\n    \
             release: \"1.0\"\n    gates:\n      {gate}\n"
        )
    };
    let cases = [
        (
            "q a: { approvals: 1 }",
            "the gate name \"q a\" contains ' '",
        ),
        (
            "qa: { approvals: 2, approvers: [alice] }",
            "1 approver(s) listed but 2 distinct approvals are required",
        ),
        (
            "qa: { approvals: 1, approvers: [alice, alice] }",
            "\"alice\" is listed twice",
        ),
        (
            "qa: { command: [\"x\"], approvers: [alice] }",
            "approvers apply to approval gates only",
        ),
        (
            "qa: { approvals: 1, approvers: [\"\"] }",
            "the approver's name is empty",
        ),
    ];
    for (gate, want) in cases {
        let e = err(&[("m.yaml", &with_gate(gate))]);
        assert!(
            e.contains("environments.prod.gates.") && e.contains(want),
            "{gate}: {e}"
        );
        assert!(
            e.contains("hint: ") && !e.ends_with("hint: "),
            "{gate}: {e}"
        );
    }
    let d = dir(&[(
        "m.yaml",
        &with_gate("qa: { approvals: 2, approvers: [alice, bob, carol] }"),
    )]);
    let m = load(d.path()).expect("a valid approvers list");
    let gate = &m.environments[&Env::Prod].policy.gates[0].gate;
    assert_eq!(gate.approvers.as_ref().map(|a| a.names().len()), Some(3));
}

const ALICE: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

#[test]
fn approvers_may_come_with_ssh_keys() {
    let yaml = |approvers: &str| {
        format!(
            "releases:\n  - {{ version: \"1.0\", tag: v1 }}\nenvironments:\n  prod:\n    \
             release: \"1.0\"\n    gates:\n      qa:\n        approvals: 1\n        \
             approvers:\n{approvers}"
        )
    };
    // One key each, or a list; the comment is not kept.
    let d = dir(&[(
        "m.yaml",
        &yaml(&format!(
            "          alice: \"{ALICE} alice@laptop\"\n          bob: [\"{}\"]\n",
            ALICE.replace("ILM+", "ILN+")
        )),
    )]);
    let m = load(d.path()).expect("keyed approvers");
    let a = m.environments[&Env::Prod].policy.gates[0]
        .gate
        .approvers
        .clone()
        .unwrap_or_default();
    assert!(a.signed());
    assert_eq!(a.keys_of("alice"), Some(&[ALICE.to_string()][..]));
    assert_eq!(a.names(), ["alice", "bob"]);
    // Stored compactly, and read back as it was.
    let p = &m.environments[&Env::Prod].policy;
    let json = super::stored::compact(p);
    assert!(
        json.contains(&format!("\"approvers\":{{\"alice\":\"{ALICE}\"")),
        "{json}"
    );
    assert_eq!(super::stored::read(&json).map(|s| s.policy), Ok(p.clone()));

    let cases = [
        (
            "          alice: \"ssh-ed25519 AAAAnope\"\n".to_string(),
            "m.yaml:10: environments.prod.gates.qa.approvers.alice: \"ssh-ed25519 AAAAnope\" is not an SSH public key",
        ),
        (
            format!("          alice: [\"{ALICE}\", \"ssh-rsa x\"]\n"),
            "m.yaml:10: environments.prod.gates.qa.approvers.alice[1]: \"ssh-rsa x\" is not an SSH public key",
        ),
        (
            format!("          alice: \"{ALICE}\"\n          bob: \"{ALICE} bob@desk\"\n"),
            "m.yaml:11: environments.prod.gates.qa.approvers.bob: the same key as alice's",
        ),
        ("          alice: []\n".to_string(), "alice has no key"),
        (
            "          alice: \"-----BEGIN OPENSSH PRIVATE KEY----- b3Blbn\"\n".to_string(),
            "environments.prod.gates.qa.approvers.alice: this is a private key: never put it in a manifest",
        ),
    ];
    for (approvers, want) in cases {
        let e = err(&[("m.yaml", &yaml(&approvers))]);
        assert!(e.contains(want), "{approvers}: {e}");
        assert!(!e.contains("b3Blbn"), "a private key is never echoed: {e}");
        assert!(e.contains("hint: "), "{e}");
    }
}
