//! The spinner: on a terminal it shows the step and the elapsed time on stderr;
//! with `--output json` or when stderr is not a terminal, not a byte of it.

use crate::common::*;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

/// A pseudo-terminal: (master, slave).
fn pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors into the given integers; the name,
    // termios and window size pointers may be NULL.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Runs shipctl with stderr on a terminal; returns (exit code, stdout, what the terminal got).
fn on_terminal(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let mut cmd = db.cmd();
    cmd.args(args);
    run_on_terminal(cmd)
}

fn run_on_terminal(mut cmd: Command) -> (i32, String, String) {
    let (master, slave) = pty();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("run shipctl");
    // It holds a copy of the terminal's slave side: the master would never see the end.
    drop(cmd);
    // Read the terminal while the child writes, so it never blocks on a full buffer.
    let reader = std::thread::spawn(move || {
        let mut terminal = std::fs::File::from(master);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match terminal.read(&mut buf) {
                Ok(0) | Err(_) => break, // EIO once the child has closed the slave
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let status = child.wait().expect("wait");
    // The command's own copy of the slave closed with it; the master reads EIO.
    let terminal = reader.join().expect("reader");
    (status.code().unwrap_or(-1), stdout, terminal)
}

#[test]
fn a_spinner_on_a_terminal_and_nothing_elsewhere() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let r1 = release(&db, "1.0");
    let d1 = plan(&db, r1, "prod");
    let (code, stdout, terminal) = on_terminal(
        &db,
        &[
            "validate",
            "--deploy-id",
            &d1.to_string(),
            "--duration",
            "700ms",
            "--failure-rate",
            "0",
        ],
    );
    assert_eq!(code, 0, "stdout: {stdout}\nterminal: {terminal}");
    assert!(stdout.contains("is live in prod"), "{stdout}");
    assert!(
        terminal.contains("deployment 1: 1.0 → prod · run ·"),
        "the spinner names the deployment and the step: {terminal:?}"
    );
    assert!(
        terminal.contains("\r\x1b[2K"),
        "it redraws one line: {terminal:?}"
    );
    assert!(
        terminal.trim_end().ends_with("\x1b[2K"),
        "it wipes its line before the result is printed: {terminal:?}"
    );
    assert!(
        !stdout.contains('\x1b'),
        "nothing of it on stdout: {stdout:?}"
    );
    assert!(
        !terminal.contains("\x1b[36m"),
        "NO_COLOR: a plain spinner: {terminal:?}"
    );

    // Colour where it may be: the spinner's frames on the terminal, not stdout.
    let d = plan(&db, release(&db, "1.0.1"), "prod");
    let mut cmd = db.cmd();
    cmd.args(["validate", "--deploy-id", &d.to_string()])
        .args(["--duration", "300ms", "--failure-rate", "0"])
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("TERM", "xterm");
    let (code, stdout, terminal) = run_on_terminal(cmd);
    assert_eq!(code, 0, "{stdout}");
    assert!(terminal.contains("\x1b[36m"), "cyan frames: {terminal:?}");
    assert!(
        !stdout.contains('\x1b'),
        "stdout is not a terminal: {stdout:?}"
    );

    // JSON output: a terminal on stderr, and still nothing.
    let d2 = plan(&db, release(&db, "1.1"), "prod");
    let (code, stdout, terminal) = on_terminal(
        &db,
        &[
            "validate",
            "--deploy-id",
            &d2.to_string(),
            "--duration",
            "700ms",
            "--failure-rate",
            "0",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(
        terminal.is_empty(),
        "no spinner with --output json: {terminal:?}"
    );
    serde_json::from_str::<serde_json::Value>(&stdout).expect("stdout is JSON");

    // stderr not a terminal: nothing either.
    let d3 = plan(&db, release(&db, "1.2"), "prod");
    let out = db.expect(
        &[
            "validate",
            "--deploy-id",
            &d3.to_string(),
            "--duration",
            "700ms",
            "--failure-rate",
            "0",
        ],
        0,
    );
    assert!(
        !out.stderr.contains('\x1b') && !out.stderr.contains('⠋'),
        "{:?}",
        out.stderr
    );
}

#[test]
fn a_childs_output_is_not_wiped_by_the_spinner() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    // A line written in two pieces, ticks apart, and a last one left unfinished.
    script(
        &db,
        "deploy.sh",
        "#!/bin/sh\nprintf 'half'; sleep 0.4; echo ' line'; sleep 0.4; printf 'tail'\n",
    );
    std::fs::create_dir_all(db.dir.path().join("manifests")).unwrap();
    std::fs::write(
        db.dir.path().join("manifests/m.yaml"),
        "releases:\n  - version: '1.0'\n    tag: 'v1.0'\nenvironments:\n  prod:\n    release: '1.0'\n    executor:\n      command:\n        run: ['./deploy.sh']\n",
    )
    .unwrap();
    let (code, stdout, terminal) = on_terminal(&db, &["reconcile", "--manifests", "manifests"]);
    assert_eq!(code, 0, "stdout: {stdout}\nterminal: {terminal:?}");
    // The terminal turns each newline into CR LF.
    assert!(
        terminal.contains("half line\r\n"),
        "an unfinished line stays as it is until it ends: {terminal:?}"
    );
    let after = &terminal[terminal.find("half line").unwrap()..];
    assert!(
        after.contains("· run ·"),
        "the spinner comes back once the line has ended: {terminal:?}"
    );
    assert!(
        after.contains("tail\r\n"),
        "a last line left unfinished is ended: {terminal:?}"
    );
}
