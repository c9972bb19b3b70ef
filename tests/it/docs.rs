//! The console blocks of the README and the walkthrough print what they show:
//! `scripts/console-blocks.py --check` runs them with the binary under test
//! and fails with a diff where they differ. The script itself is checked on a
//! document of its own: it sees drift, masks only what varies, and rewrites.

use std::path::Path;
use std::process::Command;

use crate::common::Run;

/// `scripts/console-blocks.py ARGS --bin <the binary under test>`.
fn console_blocks(args: &[&str]) -> Run {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(root.join("scripts/console-blocks.py"))
        .args(args)
        .args(["--bin", env!("CARGO_BIN_EXE_shipctl")])
        .current_dir(root)
        .output()
        .expect("python3 runs scripts/console-blocks.py");
    Run::from(out)
}

#[test]
fn the_docs_show_what_their_commands_print() {
    let r = console_blocks(&["--check"]);
    assert_eq!(
        r.code, 0,
        "the console blocks of the docs differ from what their commands print now \
         (masked: times, durations, lease holders):\n{}\n{}",
        r.stdout, r.stderr
    );
}

#[test]
fn the_check_sees_drift_and_write_fixes_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let doc = dir.path().join("doc.md");
    let written = "Some prose.\n\n\
        <!-- console: dir=empty -->\n\
        ```console\n\
        $ shipctl release --create 1.0.0 --tag v1.0.0\n\
        Created release 1: 1.0.0 (tag v1.0.0)\n\
        $ shipctl release --list\n\
        ID  VERSION  TAG     CREATED (UTC)\n\
        1   1.0.0    v1.0.0  2001-02-03 04:05:06\n\
        $ shipctl deploy --release 1 --env prod\n\
        Planned deployment 1: release 1.0.0 to dev (planifié)\n\
        Run it with: shipctl validate --deploy-id 1\n\
        ```\n\n\
        <!-- console: skip (not run: it shows a placeholder) -->\n\
        ```console\n\
        $ shipctl status --env ENV\n\
        ```\n";
    std::fs::write(&doc, written).expect("write the document");
    let path = doc.to_str().expect("a UTF-8 path");

    let check = console_blocks(&["--check", path]);
    assert_eq!(check.code, 1, "{}\n{}", check.stdout, check.stderr);
    // Only the untrue line differs: the timestamp is masked, not reported.
    let changed: Vec<&str> = check
        .stdout
        .lines()
        .filter(|l| l.starts_with(['-', '+']) && !l.starts_with("---") && !l.starts_with("+++"))
        .collect();
    assert_eq!(
        changed,
        [
            "-Planned deployment 1: release 1.0.0 to dev (planifié)",
            "+Planned deployment 1: release 1.0.0 to prod (planifié)",
        ],
        "{}",
        check.stdout
    );

    let write = console_blocks(&["--write", path]);
    assert_eq!(write.code, 0, "{}\n{}", write.stdout, write.stderr);
    let rewritten = std::fs::read_to_string(&doc).expect("read the document");
    assert!(
        rewritten.contains("release 1.0.0 to prod (planifié)\nRun it with: shipctl validate"),
        "{rewritten}"
    );
    assert!(
        rewritten.starts_with("Some prose.\n")
            && rewritten.ends_with("$ shipctl status --env ENV\n```\n"),
        "prose and skipped blocks are left alone:\n{rewritten}"
    );
    let again = console_blocks(&["--check", path]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
}
