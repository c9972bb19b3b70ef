//! A shipctl running in the background: its output drained as it comes (a
//! chatty child never blocks on a full pipe, and a test can read what it said
//! so far), every wait bounded, every failure showing the command, its stdout
//! and its stderr, and the process killed and reaped if the test fails first.

use super::{Run, TestDb};
use std::ffi::OsStr;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long, after the exit, the output may take to reach its end (EOF).
const DRAIN: Duration = Duration::from_secs(10);

pub struct Proc {
    child: Child,
    /// The command, for failure messages: `shipctl ARGS on BACKEND`.
    what: String,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    drains: Vec<JoinHandle<()>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGKILL works on a stopped process too.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `shipctl ARGS on BACKEND`, the name failure messages give a command.
pub fn describe<I>(db: &TestDb, args: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<OsStr>,
{
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    format!("shipctl {} on {:?}", args.join(" "), db.backend)
}

fn drain(mut r: impl Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => sink
                    .lock()
                    .expect("output buffer")
                    .extend_from_slice(&chunk[..n]),
            }
        }
    })
}

impl Proc {
    /// Spawns `cmd` (a [`TestDb::cmd`] or a [`super::Gate::command`]) with its
    /// stdout and stderr captured; `what` names it in failure messages.
    pub fn spawn(mut cmd: Command, what: String) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let drains = vec![
            drain(child.stdout.take().expect("stdout"), out.clone()),
            drain(child.stderr.take().expect("stderr"), err.clone()),
        ];
        Proc {
            child,
            what,
            out,
            err,
            drains,
        }
    }

    /// `shipctl ARGS` on `db`, with no stdin.
    pub fn start(db: &TestDb, args: &[&str]) -> Proc {
        Proc::start_with(db, args, &[])
    }

    /// `shipctl ARGS` on `db` with these environment variables overridden
    /// (`SHIPCTL_DATABASE_URL` to go through a proxy, say).
    pub fn start_with(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut c = db.cmd();
        c.args(args).stdin(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        Proc::spawn(c, describe(db, args))
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on a child we spawned and have not reaped yet.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) to {} failed", self.pid(), self.what);
    }

    /// SIGKILL, and the exit status once it is reaped.
    pub fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap")
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().expect("stdout")).into_owned()
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().expect("stderr")).into_owned()
    }

    /// Both streams so far, for failure messages.
    pub fn log(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr())
    }

    /// Kills it (if still running) and fails, with what it printed, then `tail`.
    fn fail(&mut self, why: String, tail: String) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.wait_drained();
        panic!("{why}\n{}{tail}", self.log());
    }

    /// Waits (at most [`DRAIN`]) until both streams reached their end.
    fn wait_drained(&mut self) -> bool {
        let deadline = Instant::now() + DRAIN;
        while !self.drains.iter().all(JoinHandle::is_finished) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Polls `check` until it holds; fails with the command's output if it
    /// exits first, or after `timeout`.
    pub fn wait_until(&mut self, what: &str, timeout: Duration, check: impl FnMut() -> bool) {
        self.wait_until_or(what, timeout, check, String::new);
    }

    /// `wait_until`, with what `diagnose` says in the failure message.
    pub fn wait_until_or(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> bool,
        diagnose: impl Fn() -> String,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if check() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(
                    format!(
                        "{} exited ({status}) while the test waited for {what}",
                        self.what
                    ),
                    diagnose(),
                );
            }
            if Instant::now() >= deadline {
                self.fail(
                    format!(
                        "timed out after {timeout:?} waiting for {what} ({} still running)",
                        self.what
                    ),
                    diagnose(),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls stderr until it says `needle` `times` times; fails if it exits
    /// first, or after `timeout`.
    pub fn wait_stderr(&mut self, needle: &str, times: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.stderr().matches(needle).count() < times {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(
                    format!(
                        "{} exited ({status}) before saying {needle:?} {times} time(s)",
                        self.what
                    ),
                    String::new(),
                );
            }
            if Instant::now() >= deadline {
                self.fail(
                    format!(
                        "{} did not say {needle:?} {times} time(s) within {timeout:?}",
                        self.what
                    ),
                    String::new(),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits at most `bound` for the exit (`why`: what it should exit after,
    /// for the message); kills it and fails, with its output, if it still runs.
    pub fn wait_exit(&mut self, bound: Duration, why: &str) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                self.fail(
                    format!("{}: still running {bound:?} after {why}", self.what),
                    String::new(),
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its whole output, once it exited with `status`.
    pub fn collect(&mut self, status: ExitStatus) -> Run {
        if !self.wait_drained() {
            panic!(
                "{} exited ({status}) but its output did not end within {DRAIN:?} \
                 (something it started holds its stdout or stderr)\n{}",
                self.what,
                self.log()
            );
        }
        for d in self.drains.drain(..) {
            d.join().expect("output thread");
        }
        Run {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }

    /// Waits at most `bound` for the exit (see [`Proc::wait_exit`]); then its
    /// output, and how long that took from this call.
    pub fn finish(mut self, bound: Duration, why: &str) -> (Run, Duration) {
        let start = Instant::now();
        let status = self.wait_exit(bound, why);
        let run = self.collect(status);
        (run, start.elapsed())
    }
}

/// Waits until `check` holds, failing with these processes' output after
/// `limit`; how long it took.
pub fn until(
    what: &str,
    limit: Duration,
    logs: &[&Proc],
    mut check: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}\n{}",
            logs.iter()
                .map(|p| p.log())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// `reconcile --watch` acting as `actor`, with a 2s lease (and `env`).
pub fn watcher(db: &TestDb, actor: &str, env: &[(&str, &str)]) -> Proc {
    let mut vars = vec![("SHIPCTL_ACTOR", actor)];
    vars.extend_from_slice(env);
    Proc::start_with(
        db,
        &[
            "reconcile",
            "--watch",
            "--manifests",
            "manifests",
            "--lease-ttl",
            "2s",
        ],
        &vars,
    )
}
