//! What shipctl says about itself, checked by the tools that read it: the
//! completion scripts in the shells themselves (bash always; zsh, fish,
//! elvish and PowerShell where installed), the manual page through `man -l`,
//! and the manifests' JSON Schema through Python's `jsonschema`
//! (tests/manifest-schema.py) against every manifest the repository ships and
//! shows. `manifest_errors` holds the schema to the manifests shipctl refuses
//! through `schema_refuses_or_cannot` below.

use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use shipctl::manifest::json_schema::BEYOND;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_shipctl")
}

/// `shipctl ARGS` outside any test database: these commands open none.
fn shipctl(args: &[&str]) -> Run {
    let out = Command::new(bin())
        .args(args)
        .env_remove("SHIPCTL_DATABASE_URL")
        .env("NO_COLOR", "1")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run shipctl");
    Run::from(out)
}

fn ok(args: &[&str]) -> String {
    let r = shipctl(args);
    assert_eq!(r.code, 0, "shipctl {args:?}\n{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.is_empty(),
        "shipctl {args:?} wrote to stderr:\n{}",
        r.stderr
    );
    r.stdout
}

/// Whether `program` runs here; the message names what is skipped otherwise.
fn installed(program: &str, what: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("SKIPPED: {what}: {program} is not installed (.ci/run installs it)");
    }
    found
}

/// A shell run of `script` with the binary's directory first on PATH.
fn shell(program: &str, args: &[&str], script: &str) -> Run {
    let dir = Path::new(bin()).parent().expect("bin dir");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(program)
        .args(args)
        .arg(script)
        .env("PATH", path)
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    Run::from(out)
}

/// The commands `shipctl --help` lists, `help` aside.
fn help_commands() -> Vec<String> {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    crate::help_text::commands(&db)
}

/// `shell` run on a file holding `shipctl completions NAME`, which must exit 0.
fn script_loads(shell_args: &[&str], name: &str) {
    let file = std::env::temp_dir().join(format!("shipctl-{}.{name}", std::process::id()));
    std::fs::write(&file, ok(&["completions", name])).expect("write");
    let r = shell(
        shell_args[0],
        &shell_args[1..],
        file.to_str().expect("utf-8"),
    );
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        r.code, 0,
        "{shell_args:?} on the {name} script:\n{}\n{}",
        r.stdout, r.stderr
    );
}

// ---------------------------------------------------------------- completions

/// What bash completes for the words of `line` (the last one is being typed),
/// through the function `shipctl completions bash` registers.
fn bash_completes(line: &str) -> Vec<String> {
    let script = format!(
        r#"source <(shipctl completions bash) || exit 10
spec=$(complete -p shipctl) || exit 11
fn=$(sed -E 's/.* -F ([^ ]+) .*/\1/' <<<"$spec")
read -r -a COMP_WORDS <<<{line:?}
[[ {line:?} == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE={line:?}
COMP_POINT=${{#COMP_LINE}}
cur=${{COMP_WORDS[COMP_CWORD]}}
prev=${{COMP_WORDS[COMP_CWORD-1]}}
"$fn" shipctl "$cur" "$prev"
printf '%s\n' "${{COMPREPLY[@]}}""#
    );
    let r = shell("bash", &["--norc", "--noprofile", "-c"], &script);
    assert_eq!(
        r.code, 0,
        "bash completion of {line:?}:\n{}\n{}",
        r.stdout, r.stderr
    );
    assert!(r.stderr.is_empty(), "bash said:\n{}", r.stderr);
    r.stdout.lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_commands_options_and_values() {
    // Every command of `--help` is offered after `shipctl `.
    let commands = help_commands();
    let offered = bash_completes("shipctl ");
    for c in &commands {
        assert!(
            offered.iter().any(|o| o == c),
            "{c} not offered: {offered:?}"
        );
    }
    for c in ["reconcile", "status", "completions", "man", "schema"] {
        assert!(
            offered.iter().any(|o| o == c),
            "{c} not offered: {offered:?}"
        );
    }
    // A prefix, a command's own options, and values.
    assert_eq!(bash_completes("shipctl rec"), ["reconcile"]);
    assert_eq!(bash_completes("shipctl reconcile --dry"), ["--dry-run"]);
    let envs = bash_completes("shipctl status --env ");
    assert_eq!(envs, ["dev", "staging", "prod"], "{envs:?}");
    let formats = bash_completes("shipctl status -o ");
    assert!(formats.contains(&"json".to_string()), "{formats:?}");
    let shells = bash_completes("shipctl completions ");
    for s in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|o| o == s), "{shells:?}");
    }
}

#[test]
fn zsh_registers_the_completion() {
    if !installed("zsh", "the zsh completion check") {
        return;
    }
    let r = shell(
        "zsh",
        &["-f", "-c"],
        "autoload -Uz compinit && compinit -u -D && source <(shipctl completions zsh) \
         && print -r -- ${_comps[shipctl]}",
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.trim(), "_shipctl", "stderr:\n{}", r.stderr);
    // And the script parses as a whole.
    script_loads(&["zsh", "-n"], "zsh");
}

#[test]
fn fish_completes_commands() {
    if !installed("fish", "the fish completion check") {
        return;
    }
    let r = shell(
        "fish",
        &["--no-config", "-c"],
        "shipctl completions fish | source; complete -C 'shipctl rec'; \
         complete -C 'shipctl status --env '",
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let words: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert!(words.contains(&"reconcile"), "{}", r.stdout);
    for env in ["dev", "staging", "prod"] {
        assert!(words.contains(&env), "{env} not offered:\n{}", r.stdout);
    }
}

#[test]
fn elvish_and_powershell_scripts_load_where_installed() {
    if installed("elvish", "the elvish completion check") {
        script_loads(&["elvish", "-norc"], "elvish");
    }
    if installed("pwsh", "the PowerShell completion check") {
        let r = shell(
            "pwsh",
            &["-NoProfile", "-Command"],
            "shipctl completions powershell | Out-String | Invoke-Expression",
        );
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    }
    // Wherever they run, they are generated, and name the binary.
    for shell in ["elvish", "powershell"] {
        assert!(ok(&["completions", shell]).contains("shipctl"));
    }
}

// ---------------------------------------------------------------- man

#[test]
fn the_manual_page_renders_with_man() {
    let page = ok(&["man"]);
    let file = std::env::temp_dir().join(format!("shipctl-{}.1", std::process::id()));
    std::fs::write(&file, &page).expect("write the page");
    let out = Command::new("man")
        .args(["-l", file.to_str().expect("utf-8")])
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "0")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .expect("man -l (.ci/run installs man-db)");
    // groff's warnings, for what a reader would see as garbage.
    let lint = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z", file.to_str().expect("utf-8")])
        .output()
        .expect("groff");
    let _ = std::fs::remove_file(&file);
    let text = Run::from(out);
    assert_eq!(text.code, 0, "man -l:\n{}", text.stderr);
    assert!(
        lint.stderr.is_empty(),
        "groff warns:\n{}",
        String::from_utf8_lossy(&lint.stderr)
    );
    // Overstrike bold (man's pager-less output) would hide words from the checks.
    let mut shown = String::new();
    for c in text.stdout.chars() {
        if c == '\u{8}' {
            shown.pop();
        } else {
            shown.push(c);
        }
    }
    for needle in [
        "NAME",
        "shipctl - Deployment ledger",
        "SYNOPSIS",
        "DESCRIPTION",
        "COMMANDS",
        "GLOBAL OPTIONS",
        "-o, --output <FORMAT>",
        "EXAMPLES",
        "shipctl release --create 1.0.2 --tag v1.0.2",
        "EXIT CODES",
        "reconcile --dry-run found changes to apply",
        "SHIPCTL RECONCILE",
        "--dry-run",
        "shipctl reconcile --dry-run --output markdown  # for a pull-request comment",
        "SHIPCTL COMPLETIONS",
        "SHIPCTL SCHEMA",
    ] {
        assert!(
            shown.contains(needle),
            "no {needle:?} in the page:\n{shown}"
        );
    }
    // Every command of `--help` has its section, with a synopsis.
    for name in help_commands() {
        let heading = format!("SHIPCTL {}", name.to_uppercase());
        let section = shown
            .split(&heading)
            .nth(1)
            .unwrap_or_else(|| panic!("no section {heading}:\n{shown}"));
        assert!(
            section.contains("Synopsis") && section.contains(&format!("shipctl {name}")),
            "{heading} has no synopsis:\n{section}"
        );
    }
    // Global options are described once, not in every command's section.
    assert_eq!(
        shown.matches("--connect-timeout <DURATION>").count(),
        1,
        "{shown}"
    );
}

// ---------------------------------------------------------------- --version, -o

#[test]
fn version_names_the_manifest_and_ledger_schema_versions() {
    // The newest migration, as the files name it.
    let newest = std::fs::read_dir(root().join("migrations/sqlite"))
        .expect("migrations")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            name.split('_').next()?.parse::<u32>().ok()
        })
        .max()
        .expect("a migration");
    // The apiVersion the sample manifests declare.
    let samples = std::fs::read_to_string(root().join("manifests/releases.yaml")).expect("sample")
        + &std::fs::read_to_string(root().join("manifests/environments.yaml")).expect("sample");
    let api = samples
        .lines()
        .find_map(|l| l.strip_prefix("apiVersion:"))
        .map(|v| v.split('#').next().unwrap_or("").trim().to_string())
        .unwrap_or_else(|| shipctl::manifest::API_VERSION.to_string());
    let want = format!(
        "shipctl {} (manifests {api}, ledger schema {newest})\n",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(ok(&["--version"]), want);
    assert_eq!(ok(&["-V"]), want);
}

#[test]
fn dash_o_is_the_short_form_of_output() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let manifests = root().join("manifests");
    let m = manifests.to_str().expect("utf-8");
    db.expect(&["release", "--create", "1.0.0", "--tag", "v1.0.0"], 0);
    for (long, short) in [
        (
            vec!["check", "--manifests", m, "--output", "json"],
            vec!["check", "--manifests", m, "-o", "json"],
        ),
        (
            vec!["release", "--list", "--output", "json"],
            vec!["-ojson", "release", "--list"],
        ),
        (
            vec!["--output", "json", "history", "--env", "dev"],
            vec!["history", "--env", "dev", "-o", "json"],
        ),
        (
            vec![
                "reconcile",
                "--dry-run",
                "--manifests",
                m,
                "--output",
                "markdown",
            ],
            vec!["reconcile", "--dry-run", "--manifests", m, "-o", "markdown"],
        ),
    ] {
        let a = db.run(&long);
        let b = db.run(&short);
        assert_eq!(
            (a.code, &a.stdout),
            (b.code, &b.stdout),
            "{long:?} vs {short:?}"
        );
        assert!(
            !a.stdout.is_empty() && a.stderr.is_empty(),
            "{long:?}: {}",
            a.stderr
        );
        if long.contains(&"json") {
            let _ = a.json();
        }
    }
    // A usage error asked for in JSON by -o is JSON too.
    let r = db.run(&["status", "--env", "qa", "-o", "json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.json()["error"]["kind"], "usage", "{}", r.stdout);
    // -o is --output in every command's help.
    for command in ["status", "reconcile", "check", "schema"] {
        let help = db.expect(&[command, "--help"], 0).stdout;
        assert!(help.contains("-o, --output <FORMAT>"), "{command}:\n{help}");
    }
}

#[test]
fn scripts_and_the_page_refuse_json_and_the_schema_is_json_either_way() {
    for args in [["completions", "bash"].as_slice(), ["man"].as_slice()] {
        let mut with_json = args.to_vec();
        with_json.extend(["-o", "json"]);
        let r = shipctl(&with_json);
        assert_eq!(r.code, 1, "{with_json:?}: {}", r.stdout);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("no JSON form")
        );
    }
    let text = ok(&["schema"]);
    assert_eq!(ok(&["schema", "-o", "json"]), text);
    let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    // An unknown shell is a usage error naming the ones there are.
    let r = shipctl(&["completions", "tcsh"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("bash") && r.stderr.contains("fish"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------- the manifests' schema

/// `shipctl schema`, written once per test process.
fn schema_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("shipctl-schema-{}.json", std::process::id()));
        std::fs::write(&path, ok(&["schema"])).expect("write the schema");
        path
    })
}

#[derive(Debug)]
pub struct Verdict {
    pub file: String,
    /// valid, invalid or unreadable (tests/manifest-schema.py says which is which)
    pub verdict: String,
    pub detail: String,
}

/// Python's jsonschema on each manifest of `paths` (files or directories).
pub fn verdicts(paths: &[&Path]) -> Vec<Verdict> {
    let out = Command::new("python3")
        .arg(root().join("tests/manifest-schema.py"))
        .arg(schema_file())
        .args(paths)
        .output()
        .expect("python3 runs tests/manifest-schema.py");
    let r = Run::from(out);
    assert_eq!(
        r.code, 0,
        "tests/manifest-schema.py (needs jsonschema and PyYAML, which .ci/run installs):\n{}",
        r.stderr
    );
    r.stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            Verdict {
                file: v["file"].as_str().unwrap_or("").to_string(),
                verdict: v["verdict"].as_str().unwrap_or("").to_string(),
                detail: v["detail"].as_str().unwrap_or("").to_string(),
            }
        })
        .collect()
}

/// Messages of the refusals no schema can make, each with the rule of
/// `shipctl::manifest::json_schema::BEYOND` it belongs to (by its first
/// words), or a problem of the directory or the file rather than of a
/// document in it.
const BEYOND_MESSAGES: &[(&str, &str)] = &[
    (" is defined in ", "a key defined in two files"),
    (
        "notifications: is declared in",
        "a key defined in two files",
    ),
    ("is declared in ", "a key defined in two files"),
    ("is declared twice in", "a release version declared twice"),
    ("the same URL as", "a release version declared twice"),
    (
        "is not declared in any manifest",
        "an environment's release",
    ),
    (
        "is not managed by the manifests",
        "an environment's release",
    ),
    ("is defined twice", "a key written twice"),
    ("the YAML tag", "YAML that makes no JSON"),
    ("nested more than", "YAML that makes no JSON"),
    ("nested too deeply", "YAML that makes no JSON"),
    ("expands too many aliases", "YAML that makes no JSON"),
    (
        "bytes; a manifest may be at most",
        "YAML that makes no JSON",
    ),
    ("approver(s) listed but", "a gate's approvers fewer"),
    ("the window would be empty", "a window empty"),
    ("the window ends", "a window empty"),
    ("once stored", "an environment's policy over"),
];

/// Refusals about the directory or a file, before any document.
const NOT_A_DOCUMENT: &[&str] = &[
    "does not exist",
    "is not a directory",
    "no manifests",
    "loops",
    "is a directory, not a manifest",
    "is not a regular file",
    "is not UTF-8",
];

/// For a manifest directory shipctl refused with `stderr`: the schema refuses
/// one of its files too, or the refusal is one of the rules a schema cannot
/// express (`BEYOND`), said so by its message.
pub fn schema_refuses_or_cannot(dir: &Path, stderr: &str) {
    let verdicts = if dir.is_dir() {
        verdicts(&[dir])
    } else {
        Vec::new()
    };
    if verdicts.iter().any(|v| v.verdict == "invalid") {
        return;
    }
    if NOT_A_DOCUMENT.iter().any(|m| stderr.contains(m)) {
        return;
    }
    // YAML that makes no JSON document (a list as a key, a 100 000-character
    // key, an alias bomb, 100 000 levels): no schema ever sees it.
    if verdicts.iter().any(|v| v.verdict == "unreadable") {
        assert!(
            BEYOND
                .iter()
                .any(|(r, _)| r.starts_with("YAML that makes no JSON")),
            "no rule of BEYOND for {verdicts:?}"
        );
        return;
    }
    let rule = BEYOND_MESSAGES
        .iter()
        .find(|(m, _)| stderr.contains(m))
        .unwrap_or_else(|| {
            panic!(
                "shipctl refused {} but the schema accepts every file ({verdicts:?}), and the \
                 refusal is not one of the rules listed beyond a schema:\n{stderr}",
                dir.display()
            )
        });
    assert!(
        BEYOND.iter().any(|(r, _)| r.starts_with(rule.1)),
        "{rule:?} names no rule of BEYOND"
    );
}

/// For a manifest directory shipctl accepted: the schema accepts every file.
pub fn schema_accepts(dir: &Path) {
    for v in verdicts(&[dir]) {
        assert_eq!(
            v.verdict, "valid",
            "shipctl accepts {} but the schema does not: {}",
            v.file, v.detail
        );
    }
}

/// The ```yaml blocks of the docs that are manifests (a block that is not
/// says so just above it: `<!-- not a manifest: ... -->`), with where they are.
fn doc_manifests() -> Vec<(String, String)> {
    let mut docs = vec![root().join("README.md")];
    for dir in ["examples", "docs"] {
        let mut stack = vec![root().join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read dir") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "md") {
                    docs.push(p);
                }
            }
        }
    }
    let mut blocks = Vec::new();
    for doc in docs {
        let text = std::fs::read_to_string(&doc).expect("read doc");
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if lines[i].trim() == "```yaml" {
                let end = (i + 1..lines.len())
                    .find(|j| lines[*j].trim() == "```")
                    .expect("a closed block");
                let marked = i > 0 && lines[i - 1].starts_with("<!-- not a manifest:");
                if !marked {
                    let place = format!(
                        "{}:{}",
                        doc.strip_prefix(root()).unwrap_or(&doc).display(),
                        i + 1
                    );
                    blocks.push((place, lines[i + 1..end].join("\n") + "\n"));
                }
                i = end;
            }
            i += 1;
        }
    }
    blocks
}

#[test]
fn every_shipped_and_documented_manifest_validates_against_the_schema() {
    // The samples, and every manifests/ directory under examples/.
    let mut dirs: Vec<PathBuf> = vec![root().join("manifests")];
    let mut stack = vec![root().join("examples")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "manifests") {
                    dirs.push(p.clone());
                }
                stack.push(p);
            }
        }
    }
    assert!(dirs.len() >= 3, "{dirs:?}");
    let tmp = tempfile::tempdir().expect("temp dir");
    let blocks = doc_manifests();
    assert!(blocks.len() >= 8, "{} manifests in the docs", blocks.len());
    for (i, (_, text)) in blocks.iter().enumerate() {
        std::fs::write(tmp.path().join(format!("block-{i:02}.yaml")), text).expect("write");
    }
    let mut paths: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    paths.push(tmp.path());
    let verdicts = verdicts(&paths);
    assert_eq!(
        verdicts.len(),
        blocks.len()
            + dirs
                .iter()
                .flat_map(|d| std::fs::read_dir(d).expect("dir"))
                .filter(|e| {
                    let name = e.as_ref().expect("entry").file_name();
                    let name = name.to_string_lossy();
                    name.ends_with(".yaml") || name.ends_with(".yml")
                })
                .count(),
        "{verdicts:?}"
    );
    for v in &verdicts {
        let name = match v
            .file
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_prefix("block-"))
        {
            Some(n) => {
                let i: usize = n.trim_end_matches(".yaml").parse().expect("index");
                blocks[i].0.clone()
            }
            None => v.file.clone(),
        };
        assert_eq!(v.verdict, "valid", "{name} does not validate: {}", v.detail);
    }
    // And shipctl agrees on the shipped ones.
    for d in &dirs {
        ok(&["check", "--manifests", d.to_str().expect("utf-8")]);
    }
}

#[test]
fn the_schema_says_what_the_loader_says() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let head = "releases:\n  - { version: \"1.1\", tag: v1.1 }\nenvironments:\n";
    // (what the environments say, whether shipctl check accepts it)
    let cases: &[(&str, bool)] = &[
        ("  dev: { release: \"1.1\" }\n", true),
        (
            "  prod: { release: \"1.1\", requires: staging }\n  staging: { release: \"1.1\" }\n",
            true,
        ),
        (
            "  staging: { release: \"1.1\", requires: prod }\n  prod: { release: \"1.1\" }\n",
            false,
        ),
        ("  dev: { release: \"1.1\", requires: dev }\n", false),
        ("  dev: { release: \"1.1\", max_attempts: 101 }\n", false),
        ("  dev: { release: \"1.1\", on_failure: retry }\n", false),
        (
            "  dev: { release: \"1.1\", executor: { simulate: {}, command: { run: [x] } } }\n",
            false,
        ),
        (
            "  dev: { release: \"1.1\", executor: { command: { run: [\"\"] } } }\n",
            false,
        ),
        (
            "  dev: { release: \"1.1\", executor: { simulate: { duration: 5 } } }\n",
            false,
        ),
        (
            "  dev: { release: \"1.1\", executor: { simulate: { duration: 1.5s, failure_rate: 1 } } }\n",
            true,
        ),
        (
            "  dev: { release: \"1.1\", gates: { \"a b\": { approvals: 1 } } }\n",
            false,
        ),
        (
            "  dev: { release: \"1.1\", gates: { qa: { approvals: 2, approvers: [al, al] } } }\n",
            false,
        ),
        (
            "  dev: { release: \"1.1\", gates: { qa: { command: [x], self_approval: true } } }\n",
            false,
        ),
        (
            "  dev: { release: \"1.1\", gates: { qa: { approvals: 1, expires: 24h, self_approval: false } } }\n",
            true,
        ),
        (
            "  dev: { release: \"1.1\", verify: { http: { url: \"https://x/{tag}\", status: 600 } } }\n",
            false,
        ),
        (
            "  dev: { release: \"1.1\", verify: { http: { url: \"HTTPS://x/{env}\", status: 204 } } }\n",
            true,
        ),
        (
            "  dev: { release: \"1.1\", windows: { deny: [{ days: [Mon, fri], from: \"9:00\", to: \"24:00\" }] } }\n",
            true,
        ),
        (
            "  dev: { release: \"1.1\", windows: { deny: [{ days: [fri], from: \"24:00\", to: \"06:00\" }] } }\n",
            false,
        ),
        (
            "  dev: { release: \"1.1\", windows: { deny: [{ days: [], from: \"09:00\", to: \"10:00\" }] } }\n",
            false,
        ),
        (
            "  dev: { release: \"1.1\", windows: { timezone: America/New_York } }\n",
            true,
        ),
    ];
    for (i, (envs, accepted)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("case-{i}"));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("m.yaml"), format!("{head}{envs}")).expect("write");
        let check = shipctl(&["check", "--manifests", dir.to_str().expect("utf-8")]);
        assert_eq!(
            check.code == 0,
            *accepted,
            "shipctl check on\n{envs}{}",
            check.stderr
        );
        let v = &verdicts(&[&dir])[0];
        assert_eq!(
            v.verdict == "valid",
            *accepted,
            "the schema on\n{envs}{v:?}"
        );
    }
    // Notifications, and files that hold nothing.
    for (text, accepted) in [
        (
            "notifications:\n  - { url: \"https://h.example/x\", events: [gate.waiting], secret_env: K_1 }\n",
            true,
        ),
        (
            "notifications:\n  - { url: \"https://h.example/x\", events: [gate.waiting, gate.waiting] }\n",
            false,
        ),
        (
            "notifications:\n  - { url: \"https://h.example/x\", secret_env: 1K }\n",
            false,
        ),
        ("# nothing yet\n", true),
        ("apiVersion: shipctl/v2\n", false),
    ] {
        let dir = tmp.path().join("n");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("n.yaml"), text).expect("write");
        let check = shipctl(&["check", "--manifests", dir.to_str().expect("utf-8")]);
        assert_eq!(
            check.code == 0,
            accepted,
            "shipctl check on\n{text}{}",
            check.stderr
        );
        let v = &verdicts(&[&dir])[0];
        assert_eq!(v.verdict == "valid", accepted, "the schema on\n{text}{v:?}");
    }
}

#[test]
fn the_readme_lists_every_rule_beyond_the_schema() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let listed: Vec<&str> = readme
        .lines()
        .skip_while(|l| *l != "<!-- manifest-schema: beyond -->")
        .skip(1)
        .take_while(|l| l.starts_with("- "))
        .collect();
    let rules = BEYOND;
    assert_eq!(listed.len(), rules.len(), "{listed:#?}");
    for ((rule, _), line) in rules.iter().zip(&listed) {
        assert!(
            line[2..].starts_with(rule),
            "README says {line:?}, the code {rule:?}"
        );
    }
}
