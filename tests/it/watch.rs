//! `shipctl reconcile --watch` as a long-running process: it applies the
//! manifests at start, again after each change (editors save by writing a temp
//! file and renaming it over the manifest), keeps the last good desired state
//! when a manifest turns invalid, corrects drift on its interval, and ends
//! cleanly on SIGTERM, also in the middle of a deployment.

use crate::common::*;

use std::process::ExitStatus;
use std::time::{Duration, Instant};

const SIM_OK: &str = "executor: { simulate: { duration: 0s, failure_rate: 0 } }";
/// How long the watch may take to notice a change and apply it.
const APPLY: Duration = Duration::from_secs(20);
/// How long a clean stop may take.
const STOP: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- helpers

/// dev and prod (requiring dev) on `release`; `releases` all declared.
fn manifest(releases: &[&str], release: &str, executor: &str) -> String {
    let mut s = String::from("releases:\n");
    for r in releases {
        s.push_str(&format!("  - {{ version: \"{r}\", tag: v{r} }}\n"));
    }
    s.push_str(&format!(
        "environments:\n  dev: {{ release: \"{release}\", {executor} }}\n  \
         prod: {{ release: \"{release}\", requires: dev, {executor} }}\n"
    ));
    s
}

fn manifests_dir(db: &TestDb) -> std::path::PathBuf {
    let d = db.dir.path().join("manifests");
    std::fs::create_dir_all(&d).expect("manifest dir");
    d
}

/// Saves the manifest the way editors do: a temp file, renamed over it.
///
/// Each save is stamped at least one second after the manifest it replaces, as
/// when a person saves twice: `--poll` compares modification times to the
/// second (see [`poll_notices_a_second_save_within_the_same_second`] for saves
/// closer together than that).
fn save(db: &TestDb, text: &str) {
    let target = manifests_dir(db).join("shipctl.yaml");
    let at = match std::fs::metadata(&target).and_then(|m| m.modified()) {
        Ok(previous) => std::cmp::max(
            std::time::SystemTime::now(),
            previous + Duration::from_secs(1),
        ),
        Err(_) => std::time::SystemTime::now(),
    };
    save_at(db, text, at);
}

/// Saves by rename-over, with the new file's modification time set to `at`.
fn save_at(db: &TestDb, text: &str, at: std::time::SystemTime) {
    let dir = manifests_dir(db);
    let tmp = dir.join("shipctl.yaml.tmp");
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .and_then(|f| f.set_modified(at))
        .expect("set the modification time");
    std::fs::rename(&tmp, dir.join("shipctl.yaml")).expect("rename over the manifest");
}

fn wait_live(db: &TestDb, env: &str, version: &str, w: &mut Watch) {
    w.wait_until_or(
        &format!("{version} to be live in {env} on {:?}", db.backend),
        APPLY,
        || db.live(env).as_deref() == Some(version),
        || format!("\n(live in {env}: {:?})", db.live(env)),
    );
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.scalar(sql).parse().expect("a count")
}

fn en_cours(db: &TestDb) -> i64 {
    count(
        db,
        "SELECT COUNT(*) FROM deploiements WHERE etat = 'en_cours'",
    )
}

/// A `reconcile --watch` process, its output collected as it comes.
struct Watch(Proc);

impl std::ops::Deref for Watch {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.0
    }
}

impl std::ops::DerefMut for Watch {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.0
    }
}

impl Watch {
    fn start(db: &TestDb, extra: &[&str]) -> Watch {
        let mut args = vec!["reconcile", "--watch"];
        if !extra.contains(&"--manifests") {
            args.extend(["--manifests", "manifests"]);
        }
        // No periodic resync during a test, unless the test sets its own.
        if !extra.contains(&"--interval") {
            args.extend(["--interval", "1h"]);
        }
        args.extend(extra);
        let mut w = Watch(Proc::start(db, &args));
        w.wait_opened();
        w
    }

    /// The first round is announced once the ledger is open and migrated: from
    /// then on the test may read the database (a fresh SQLite file included).
    fn wait_opened(&mut self) {
        self.wait_stderr("watch: reconciling (start)", 1);
    }

    /// Polls stderr until it says `needle` `times` times.
    fn wait_stderr(&mut self, needle: &str, times: usize) {
        self.0.wait_stderr(needle, times, APPLY);
    }

    fn alive(&mut self) -> bool {
        self.0.running()
    }

    /// SIGTERM, then the exit status and how long the exit took.
    fn terminate(&mut self) -> (ExitStatus, Duration) {
        let sent = Instant::now();
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(STOP, "SIGTERM");
        (status, sent.elapsed())
    }
}

// ---------------------------------------------------------------- scenarios

/// Start → 1.0 live; rename-over → 2.0 live; invalid manifest → last good
/// state kept, nothing written, still running; fixed → 3.0 live; SIGTERM → 0.
fn watch_scenario(db: &TestDb, extra: &[&str]) {
    save(db, &manifest(&["1.0"], "1.0", SIM_OK));
    let mut w = Watch::start(db, extra);
    wait_live(db, "prod", "1.0", &mut w);
    assert_eq!(db.live("dev").as_deref(), Some("1.0"), "{}", w.log());

    save(db, &manifest(&["1.0", "2.0"], "2.0", SIM_OK));
    wait_live(db, "prod", "2.0", &mut w);
    assert_eq!(db.live("dev").as_deref(), Some("2.0"), "{}", w.log());
    w.wait_stderr("watch: reconciling (manifests changed)", 1);

    // An invalid manifest that would declare 3.0: reported, the last good
    // desired state (2.0) kept: no round, nothing planned.
    let before = db.snapshot();
    let invalid = manifest(&["1.0", "2.0", "3.0"], "3.0", SIM_OK).replace(
        "{ version: \"3.0\", tag: v3.0 }",
        "{ version: 3.10, tag: v3.0 }",
    );
    assert!(invalid.contains("version: 3.10"));
    save(db, &invalid);
    w.wait_stderr("keeping the last good desired state", 1);
    let err = w.stderr();
    assert!(
        err.contains("shipctl.yaml") && err.contains("3.10"),
        "the error does not name the file and the problem:\n{err}"
    );
    assert!(
        w.alive(),
        "an invalid manifest stopped the watch:\n{}",
        w.stderr()
    );
    assert_eq!(
        db.snapshot(),
        before,
        "the watch wrote after an invalid manifest on {:?}\n{}",
        db.backend,
        w.log()
    );
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM releases WHERE version IN ('3.0', '3.10')"
        ),
        0,
        "{}",
        w.log()
    );

    // Fixed: applied.
    save(db, &manifest(&["1.0", "2.0", "3.0"], "3.0", SIM_OK));
    wait_live(db, "prod", "3.0", &mut w);

    // Temp and hidden files are not manifests and do not disturb anything.
    std::fs::write(manifests_dir(db).join(".shipctl.yaml.swp"), "not: [yaml").expect("swap file");
    std::fs::write(manifests_dir(db).join("shipctl.yaml~"), "not: [yaml").expect("backup file");

    let (status, took) = w.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM on {:?}: {status:?}\n{}",
        db.backend,
        w.log()
    );
    assert!(took < STOP, "took {took:?}");
    assert!(w.stderr().contains("watch: stopped"), "{}", w.log());
    assert_eq!(en_cours(db), 0, "{}", w.log());
    assert_eq!(db.live("prod").as_deref(), Some("3.0"), "{}", w.log());
    // The invalid manifest left the desired state as it was: no round for it.
    assert_eq!(
        w.stderr()
            .matches("watch: reconciling (manifests changed)")
            .count(),
        2,
        "{}",
        w.log()
    );
    // One deployment per environment per release: no round planned twice.
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM deploiements"),
        6,
        "{}",
        w.log()
    );
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM deploiements WHERE etat <> 'réussi'"
        ),
        0
    );
}

#[test]
fn watch_applies_renamed_manifests_keeps_the_last_good_state_and_stops_on_sigterm() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some(db) = TestDb::new(backend) {
            watch_scenario(&db, &[]);
        }
    }
}

#[test]
fn watch_with_poll_applies_renamed_manifests_too() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    watch_scenario(&db, &["--poll"]);
}

/// `--poll` must notice every change to a manifest, also one saved within the
/// same second as the previous version (a script, a `git pull`, an editor's
/// quick second save). Here the new version's modification time is in the same
/// second as the old one's, and its content differs: the watch must apply it
/// well before its periodic resync (1h here).
#[test]
fn poll_notices_a_second_save_within_the_same_second() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    save(&db, &manifest(&["1.0"], "1.0", SIM_OK));
    let mut w = Watch::start(&db, &["--poll"]);
    wait_live(&db, "prod", "1.0", &mut w);
    // Both versions written within one second: neither the manifest's nor the
    // directory's modification time moves to another second.
    let dir = manifests_dir(&db);
    let mtime = |p: &std::path::Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    let (file_was, dir_was) = (mtime(&dir.join("shipctl.yaml")), mtime(&dir));
    save_at(&db, &manifest(&["1.0", "2.0"], "2.0", SIM_OK), file_was);
    std::fs::File::open(&dir)
        .and_then(|d| d.set_modified(dir_was))
        .expect("restore the directory's modification time");
    assert_eq!(mtime(&dir), dir_was);
    // The poll interval is 1s: 10s is ten polls.
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.live("prod").as_deref() != Some("2.0") {
        assert!(
            Instant::now() < deadline,
            "--poll never noticed the new manifest (saved in the same second as the previous \
             one, different content): prod is still on {:?}\nstderr:\n{}",
            db.live("prod"),
            w.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = w.terminate();
    assert_eq!(status.code(), Some(0), "{}", w.stderr());
}

#[test]
fn sigterm_during_a_long_deployment_rolls_it_back_and_exits_0() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    save(
        &db,
        &manifest(
            &["1.0"],
            "1.0",
            "executor: { simulate: { duration: 30s, failure_rate: 0 } }",
        ),
    );
    let mut w = Watch::start(&db, &[]);
    let deadline = Instant::now() + APPLY;
    while en_cours(&db) == 0 {
        assert!(w.alive(), "the watch exited:\n{}", w.stderr());
        assert!(Instant::now() < deadline, "no run started:\n{}", w.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let d: i64 = db
        .scalar("SELECT id FROM deploiements WHERE etat = 'en_cours'")
        .parse()
        .expect("id");
    let (status, took) = w.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}\nstderr:\n{}",
        w.stderr()
    );
    assert!(took < STOP, "took {took:?}");
    assert_eq!(
        db.state(d),
        "planifié",
        "the run must be rolled back, not left en_cours"
    );
    assert_eq!(en_cours(&db), 0);
    let failed = db.query(&format!(
        "SELECT etat_avant, etat_apres, message FROM audit_logs \
         WHERE id_deploiement = {d} AND action = 'deployment.failed'"
    ));
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(
        (failed[0][0].as_str(), failed[0][1].as_str()),
        ("en_cours", "planifié")
    );
    assert!(
        failed[0][2].contains("interrupted by SIGTERM"),
        "{failed:?}"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT lease_expires_at IS NULL FROM deploiements WHERE id = {d}"
        )),
        "1"
    );
    // No new run started after the signal: prod (after dev) was not touched.
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM deploiements d JOIN environnements e ON e.id = d.id_env WHERE e.nom = 'prod'"
        ),
        0
    );
}

#[test]
fn watch_started_on_invalid_manifests_waits_for_a_fix() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    save(&db, "releases:\n  - version: 1.10\n    tag: v1.10\n");
    let mut w = Watch::start(&db, &[]);
    w.wait_stderr("no valid desired state yet", 1);
    assert!(w.stderr().contains("shipctl.yaml"), "{}", w.stderr());
    assert!(w.alive());
    assert_eq!(count(&db, "SELECT COUNT(*) FROM releases"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM audit_logs"), 0);

    save(&db, &manifest(&["1.10"], "1.10", SIM_OK));
    wait_live(&db, "prod", "1.10", &mut w);
    let (status, _) = w.terminate();
    assert_eq!(status.code(), Some(0), "{}", w.stderr());
}

#[test]
fn watch_resyncs_on_its_interval_to_correct_drift() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    save(&db, &manifest(&["1.0"], "1.0", SIM_OK));
    let mut w = Watch::start(&db, &["--interval", "1s"]);
    wait_live(&db, "dev", "1.0", &mut w);
    wait_live(&db, "prod", "1.0", &mut w);

    // Someone deploys 9.9 to dev by hand: drift, with no file change at all.
    // (A resync between `deploy` and `validate` supersedes the pending 9.9,
    // as it should: then try again.)
    let r = release(&db, "9.9");
    let mut tries = 0;
    loop {
        tries += 1;
        let d = plan(&db, r, "dev");
        let run = db.run(&[
            "validate",
            "--deploy-id",
            &d.to_string(),
            "--duration",
            "0s",
            "--failure-rate",
            "0",
        ]);
        if run.code == 0 {
            break; // 9.9 was live in dev when validate returned
        }
        assert_eq!(
            db.state(d),
            "annulé",
            "validate exited {}: {}",
            run.code,
            run.stderr
        );
        assert!(tries < 10, "the resync superseded every manual deployment");
    }
    // The periodic resync puts 1.0 back: a second 1.0 deployment in dev.
    wait_live(&db, "dev", "1.0", &mut w);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM deploiements d JOIN releases r ON r.id = d.id_release \
             JOIN environnements e ON e.id = d.id_env WHERE e.nom = 'dev' AND r.version = '1.0'"
        ),
        2
    );
    w.wait_stderr("periodic resync", 1);
    let (status, _) = w.terminate();
    assert_eq!(status.code(), Some(0), "{}", w.stderr());
    assert_eq!(db.live("prod").as_deref(), Some("1.0"));
}

/// An approval recorded on another machine wakes the watch: no manifest change
/// and no resync (the interval is an hour), the deployment still goes out.
#[test]
fn an_approval_wakes_the_watch() {
    each_backend(|db| {
        save(
            db,
            "releases:\n  - { version: \"1.0\", tag: v1.0 }\nenvironments:\n  \
             prod:\n    release: \"1.0\"\n    gates: { qa: { approvals: 1 } }\n    \
             executor: { simulate: { duration: 0s, failure_rate: 0 } }\n",
        );
        let mut w = Watch::start(db, &[]);
        w.wait_stderr("watch: reconciling (start)", 1);
        let deadline = Instant::now() + APPLY;
        while !w.stdout().contains("waits for approval") {
            assert!(Instant::now() < deadline, "{}", w.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(db.live("prod"), None);
        let id = db.scalar("SELECT MAX(id) FROM deploiements");
        db.expect(&approval(&id, "alice"), 0);
        wait_live(db, "prod", "1.0", &mut w);
        w.wait_stderr(
            "watch: reconciling (an approval or a rejection was recorded)",
            1,
        );
        assert!(
            !w.stderr().contains("periodic resync"),
            "the approval, not the interval, woke it: {}",
            w.log()
        );
        let (status, _) = w.terminate();
        assert_eq!(status.code(), Some(0), "{}", w.log());
    });
}

/// The watch's own command gates do not wake it: a failing gate in dev does not
/// become a new deployment every two seconds while prod waits for approval.
#[test]
fn the_watch_is_not_woken_by_its_own_command_gates() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    save(
        &db,
        "releases:\n  - { version: \"1.0\", tag: v1.0 }\nenvironments:\n  \
         dev:\n    release: \"1.0\"\n    gates: { lint: { command: [\"false\"] } }\n    \
         executor: { simulate: { duration: 0s, failure_rate: 0 } }\n  \
         prod:\n    release: \"1.0\"\n    gates: { qa: { approvals: 1 } }\n    \
         executor: { simulate: { duration: 0s, failure_rate: 0 } }\n",
    );
    // The periodic resync is the clock: its round comes after three polls of
    // the ledger for decisions (every 2s), and must be the first one after the start.
    let mut w = Watch::start(&db, &["--interval", "7s"]);
    let deadline = Instant::now() + APPLY;
    while !w.stdout().contains("waits for approval") {
        assert!(Instant::now() < deadline, "{}", w.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let dev_deployments = || {
        count(
            &db,
            "SELECT COUNT(*) FROM deploiements d JOIN environnements e ON e.id = d.id_env \
             WHERE e.nom = 'dev'",
        )
    };
    assert_eq!(
        dev_deployments(),
        1,
        "one failed gate, one deployment: {}",
        w.log()
    );
    w.wait_stderr("watch: reconciling", 2);
    let rounds: Vec<String> = w
        .stderr()
        .lines()
        .filter(|l| l.contains("watch: reconciling"))
        .map(str::to_string)
        .collect();
    assert!(
        rounds[0].contains("(start)") && rounds[1].contains("(periodic resync)"),
        "no round between the first and the resync: {}",
        w.log()
    );
    let (status, _) = w.terminate();
    assert_eq!(status.code(), Some(0), "{}", w.log());
}

// ------------------------------------------------- following the directory

/// How long a change may take to be applied once made, when the watch follows
/// the directory (a periodic resync would take the whole interval: 1h here).
const FOLLOW: Duration = Duration::from_secs(2);

/// Waits until `version` is live in prod, at most [`FOLLOW`] after `since`.
fn applied_soon(db: &TestDb, version: &str, since: Instant, w: &mut Watch, what: &str) {
    let left = FOLLOW.saturating_sub(since.elapsed());
    w.wait_until_or(
        &format!("{version} live in prod within {FOLLOW:?} of {what}"),
        left,
        || db.live("prod").as_deref() == Some(version),
        || format!("\n(live in prod: {:?})", db.live("prod")),
    );
}

/// Writes `text` as `dir/shipctl.yaml` by rename-over.
fn write_in(dir: &std::path::Path, text: &str) {
    std::fs::create_dir_all(dir).expect("manifest dir");
    let tmp = dir.join("shipctl.yaml.tmp");
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, dir.join("shipctl.yaml")).expect("rename over the manifest");
}

fn rounds_for_changes(w: &Watch) -> usize {
    w.stderr()
        .matches("watch: reconciling (manifests changed)")
        .count()
}

#[test]
fn watch_follows_a_directory_removed_and_recreated() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    save(&db, &manifest(&["1.0"], "1.0", SIM_OK));
    let mut w = Watch::start(&db, &[]);
    wait_live(&db, "prod", "1.0", &mut w);

    let dir = manifests_dir(&db);
    std::fs::remove_dir_all(&dir).expect("remove the manifest directory");
    w.wait_stderr(
        "keeping the last good desired state until the directory is back",
        1,
    );
    assert!(w.alive(), "{}", w.log());

    let at = Instant::now();
    write_in(&dir, &manifest(&["1.0", "2.0"], "2.0", SIM_OK));
    applied_soon(&db, "2.0", at, &mut w, "the re-creation");
    w.wait_stderr("is back", 1);

    // An edit in the new directory: the watch is on it, not on the old one.
    let at = Instant::now();
    write_in(&dir, &manifest(&["1.0", "2.0", "3.0"], "3.0", SIM_OK));
    applied_soon(
        &db,
        "3.0",
        at,
        &mut w,
        "an edit in the re-created directory",
    );

    // The absence was said once, although the directory went and came back.
    assert_eq!(
        w.stderr().matches("does not exist").count(),
        1,
        "{}",
        w.log()
    );
    assert!(!w.stderr().contains("periodic resync"), "{}", w.log());
    let (status, _) = w.terminate();
    assert_eq!(status.code(), Some(0), "{}", w.log());
}

/// A repository where the manifests are missing in one commit: checking it out
/// removes the directory, checking out another one recreates it.
#[test]
fn watch_follows_a_git_checkout_without_the_directory_and_back() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let repo = db.dir.path().join("repo");
    let dir = repo.join("manifests");
    std::fs::create_dir_all(&repo).expect("repo");
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README"), "the manifests\n").expect("readme");
    write_in(&dir, &manifest(&["1.0"], "1.0", SIM_OK));
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "1.0"]);
    git(&repo, &["tag", "one"]);
    git(&repo, &["rm", "-q", "-r", "manifests"]);
    git(&repo, &["commit", "-q", "-m", "no manifests"]);
    git(&repo, &["tag", "none"]);
    write_in(&dir, &manifest(&["1.0", "2.0"], "2.0", SIM_OK));
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "2.0"]);
    git(&repo, &["tag", "two"]);
    git(&repo, &["checkout", "-q", "one"]);

    let mut w = Watch::start(&db, &["--manifests", "repo/manifests"]);
    wait_live(&db, "prod", "1.0", &mut w);

    git(&repo, &["checkout", "-q", "none"]);
    assert!(!dir.exists());
    w.wait_stderr(
        "keeping the last good desired state until the directory is back",
        1,
    );

    let at = Instant::now();
    git(&repo, &["checkout", "-q", "two"]);
    applied_soon(&db, "2.0", at, &mut w, "git checkout two");

    // Away and back to the same commit: the desired state did not change.
    git(&repo, &["checkout", "-q", "none"]);
    w.wait_stderr(
        "keeping the last good desired state until the directory is back",
        2,
    );
    git(&repo, &["checkout", "-q", "two"]);
    w.wait_stderr("is back", 2);
    assert_eq!(rounds_for_changes(&w), 1, "{}", w.log());

    // And the directory checked out last is watched.
    let at = Instant::now();
    write_in(&dir, &manifest(&["1.0", "2.0", "3.0"], "3.0", SIM_OK));
    applied_soon(&db, "3.0", at, &mut w, "an edit after the checkouts");
    assert_eq!(rounds_for_changes(&w), 2, "{}", w.log());
    let (status, _) = w.terminate();
    assert_eq!(status.code(), Some(0), "{}", w.log());
}

/// `--manifests` is a symlink, re-pointed the way deploy tools do it (a new
/// link renamed over the old one).
#[test]
fn watch_follows_a_re_pointed_symlink() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    let root = db.dir.path();
    let (a, b) = (root.join("a"), root.join("b"));
    write_in(&a, &manifest(&["1.0"], "1.0", SIM_OK));
    write_in(&b, &manifest(&["1.0", "2.0"], "2.0", SIM_OK));
    std::os::unix::fs::symlink("a", root.join("manifests")).expect("symlink");
    let mut w = Watch::start(&db, &[]);
    wait_live(&db, "prod", "1.0", &mut w);

    let at = Instant::now();
    std::os::unix::fs::symlink("b", root.join("manifests.new")).expect("symlink");
    std::fs::rename(root.join("manifests.new"), root.join("manifests")).expect("re-point");
    applied_soon(&db, "2.0", at, &mut w, "the symlink re-pointed to b");

    // The old target is no longer the manifests; the new one is.
    write_in(&a, &manifest(&["1.0", "9.0"], "9.0", SIM_OK));
    let at = Instant::now();
    write_in(&b, &manifest(&["1.0", "2.0", "3.0"], "3.0", SIM_OK));
    applied_soon(&db, "3.0", at, &mut w, "an edit in b");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM releases WHERE version = '9.0'"),
        0,
        "{}",
        w.log()
    );
    let (status, _) = w.terminate();
    assert_eq!(status.code(), Some(0), "{}", w.log());
}

/// Twelve saves 200 ms apart (a script, a rebase): only the last one is
/// applied, no intermediate release is deployed — with `--poll` and with
/// events. The burst lasts over two seconds, so at least two polls (1s apart)
/// fall in its middle: a watch that applied what it saw would deploy one.
#[test]
fn quick_successive_saves_apply_only_the_last_state() {
    for extra in [&["--poll"][..], &[]] {
        let db = TestDb::new(Backend::Sqlite).expect("sqlite");
        const LAST: usize = 12;
        let versions: Vec<String> = (0..=LAST).map(|i| format!("1.0.{i}")).collect();
        let v: Vec<&str> = versions.iter().map(String::as_str).collect();
        save(&db, &manifest(&v[..1], v[0], SIM_OK));
        let mut w = Watch::start(&db, extra);
        wait_live(&db, "prod", v[0], &mut w);
        for i in 1..=LAST {
            if i > 1 {
                // The pace of the writes is the scenario, not a wait for a state.
                std::thread::sleep(Duration::from_millis(200));
            }
            save_at(
                &db,
                &manifest(&v[..=i], v[i], SIM_OK),
                std::time::SystemTime::now(),
            );
        }
        wait_live(&db, "prod", v[LAST], &mut w);
        let intermediate = count(
            &db,
            &format!(
                "SELECT COUNT(*) FROM deploiements d JOIN releases r ON r.id = d.id_release \
                 WHERE r.version NOT IN ('{}', '{}')",
                v[0], v[LAST]
            ),
        );
        assert_eq!(intermediate, 0, "{extra:?}: {}", w.log());
        assert_eq!(rounds_for_changes(&w), 1, "{extra:?}: {}", w.log());
        let (status, _) = w.terminate();
        assert_eq!(status.code(), Some(0), "{}", w.log());
    }
}

/// A touch, a comment-only edit and a rewrite of the same content leave the
/// desired state as it is: no round (the next real change has the only one).
#[test]
fn a_change_that_leaves_the_desired_state_equal_starts_no_round() {
    for extra in [&[][..], &["--poll"]] {
        let db = TestDb::new(Backend::Sqlite).expect("sqlite");
        let text = manifest(&["1.0"], "1.0", SIM_OK);
        save(&db, &text);
        let mut w = Watch::start(&db, extra);
        wait_live(&db, "prod", "1.0", &mut w);
        let file = manifests_dir(&db).join("shipctl.yaml");

        // touch
        std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5)))
            .expect("touch");
        // a comment: the content changes, the desired state does not
        save(&db, &format!("# deployed by the platform team\n{text}"));
        w.wait_stderr("the manifests changed but not the desired state", 1);
        // the same content written again
        save(&db, &format!("# deployed by the platform team\n{text}"));

        save(&db, &manifest(&["1.0", "2.0"], "2.0", SIM_OK));
        wait_live(&db, "prod", "2.0", &mut w);
        assert_eq!(rounds_for_changes(&w), 1, "{extra:?}: {}", w.log());
        assert_eq!(
            w.stderr().matches("watch: reconciling").count(),
            2,
            "{}",
            w.log()
        );
        let (status, _) = w.terminate();
        assert_eq!(status.code(), Some(0), "{}", w.log());
    }
}

/// `--watch --env dev`: every round applies dev only; prod, which the
/// manifests manage too, is never touched. An `--env` the manifests stop
/// managing fails the round, and the watch goes on.
#[test]
fn watch_with_env_applies_only_those_environments() {
    let db = TestDb::new(Backend::Sqlite).expect("sqlite");
    save(&db, &manifest(&["1.0"], "1.0", SIM_OK));
    let mut w = Watch::start(&db, &["--env", "dev"]);
    wait_live(&db, "dev", "1.0", &mut w);
    // The round's report comes once its last environment is done.
    let deadline = Instant::now() + APPLY;
    while !w.stdout().contains("Reconciled manifests") {
        assert!(Instant::now() < deadline, "no report:\n{}", w.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let prod = "SELECT COUNT(*) FROM audit_logs a JOIN environnements e ON e.id = a.id_env \
                WHERE e.nom = 'prod'";
    assert_eq!(count(&db, prod), 0, "{}", w.log());
    assert!(!w.stdout().contains("prod"), "{}", w.stdout());

    save(
        &db,
        "releases:\n  - { version: \"1.0\", tag: v1.0 }\nenvironments:\n  prod: { release: \"1.0\" }\n",
    );
    w.wait_stderr("--env dev: the manifests in manifests do not manage dev", 1);
    assert!(w.alive());
    assert_eq!(count(&db, prod), 0, "{}", w.log());
    let (status, _) = w.terminate();
    assert_eq!(status.code(), Some(0), "{}", w.stderr());
}
