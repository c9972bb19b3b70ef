//! A real deployment command: an argv (never a shell string), with the
//! deployment's facts as environment variables, in its own process group so that
//! a timeout, a signal or a lost lease stops it and everything it started.

use std::cell::RefCell;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

/// How much of a command's output the audit log keeps (its end, where errors are).
pub const KEEP_OUTPUT: usize = 4096;

/// How long a stopped command has between SIGTERM and SIGKILL when its manifest
/// says nothing (`kill_grace:` on an executor, a gate, a verification).
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);

/// The longest `kill_grace:` a manifest may ask for: a stop must stay a stop.
pub const MAX_KILL_GRACE: Duration = Duration::from_secs(3600);

/// Checks a `kill_grace:` from a manifest: not zero (that is SIGKILL at once,
/// no chance to clean up), not longer than `MAX_KILL_GRACE`. `Err`: the message
/// and the hint.
pub fn check_kill_grace(grace: Duration) -> Result<(), (String, String)> {
    let hint = format!(
        "use a duration from 1ms to {}, e.g. 30s; without kill_grace: a stopped \
         command gets {}",
        crate::duration::format(MAX_KILL_GRACE),
        crate::duration::format(DEFAULT_KILL_GRACE)
    );
    if grace.is_zero() {
        Err((
            "a grace period of 0 would kill the command with SIGKILL at once, with no \
             chance to clean up"
                .into(),
            hint,
        ))
    } else if grace > MAX_KILL_GRACE {
        Err((
            format!(
                "{} is too long: a stopped command must be gone within {}",
                crate::duration::format(grace),
                crate::duration::format(MAX_KILL_GRACE)
            ),
            hint,
        ))
    } else {
        Ok(())
    }
}

/// A command line as a person would type it: words quoted only where needed.
pub fn shown(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How long the output a command's background children still hold open is read
/// after the command itself exited.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// What a command is told about the deployment, as `SHIPCTL_*` variables.
#[derive(Debug, Clone, Default)]
pub struct Job {
    pub version: String,
    pub tag: String,
    pub env: String,
    pub deploy_id: i64,
    pub previous_version: Option<String>,
    /// The claim's fencing token; none before the claim (command gates).
    pub fencing_token: Option<i64>,
    /// Which attempt of the deployment this is, from 1: the claim that runs it
    /// (or, for command gates, the claim to come). It also picks a seeded
    /// simulation's draw.
    pub attempt: i64,
}

impl Job {
    fn vars(&self) -> [(&'static str, String); 7] {
        [
            ("SHIPCTL_VERSION", self.version.clone()),
            ("SHIPCTL_TAG", self.tag.clone()),
            ("SHIPCTL_ENV", self.env.clone()),
            ("SHIPCTL_DEPLOY_ID", self.deploy_id.to_string()),
            (
                "SHIPCTL_PREVIOUS_VERSION",
                self.previous_version.clone().unwrap_or_default(),
            ),
            (
                "SHIPCTL_FENCING_TOKEN",
                self.fencing_token
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            ),
            ("SHIPCTL_ATTEMPT", self.attempt.to_string()),
        ]
    }
}

/// What to run and how to stop it.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    pub argv: &'a [String],
    /// Stopped (as by `stop`) when it runs longer.
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL when it is stopped.
    pub kill_grace: Duration,
    /// Copy its output to our stderr as it comes.
    pub echo: bool,
}

/// How a command ended: `Ok` carries the kept output, `Err` what went wrong and the output.
pub type Ran = Result<String, String>;

/// The command's process group. Dropped while armed (the future was dropped
/// before the command ended), it kills the whole group: nothing a stopped run
/// started may outlive it.
struct Group(Option<i32>);

impl Group {
    fn signal(&self, sig: libc::c_int) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill has no memory effects; a negative pid names the group.
            unsafe {
                libc::kill(-pgid, sig);
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// Why a command stopped running.
enum End {
    Exited(std::io::Result<std::process::ExitStatus>),
    Stopped,
    TimedOut(Duration),
}

/// Runs a command until it exits, `stop` is cancelled or its timeout runs out.
/// A stopped command gets SIGTERM on its whole process group, `kill_grace` to
/// exit, then SIGKILL. It counts as finished when its process exits, even if a
/// background child still holds its output: that is read for a short moment,
/// then left alone. Output goes to our stderr as it comes (stdout stays clean for
/// `--output json`) and its last `KEEP_OUTPUT` bytes are kept, also when it fails.
pub async fn run(spec: &Spec<'_>, job: &Job, stop: &CancellationToken) -> Ran {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err("the command is empty".into());
    };
    if stop.is_cancelled() {
        // Asked to stop before it began (a signal during the claim's commit):
        // nothing is started.
        return Err(format!("{program:?} was not started: shipctl was stopping"));
    }
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        // The ledger's URL may hold a password: a deploy script or a third-party
        // scanner has no business with it.
        .env_remove("SHIPCTL_DATABASE_URL")
        .envs(job.vars())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {program:?}: {e}"))?;
    let mut group = Group(child.id().map(|p| p as i32));
    // A second signal to shipctl kills the group at once, wherever we are.
    let _ticket = group.0.map(crate::supervisor::track_group);
    let (out, err) = (child.stdout.take(), child.stderr.take());
    // Outside the futures, so that what a command said before it was stopped is kept.
    let (out_kept, err_kept) = (RefCell::new(Vec::new()), RefCell::new(Vec::new()));
    let pumps = async {
        tokio::join!(
            pump(out, spec.echo, &out_kept),
            pump(err, spec.echo, &err_kept)
        );
    };
    tokio::pin!(pumps);
    let mut drained = false;
    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);
    let end = loop {
        tokio::select! {
            status = child.wait() => break End::Exited(status),
            () = &mut pumps, if !drained => drained = true,
            () = stop.cancelled() => break End::Stopped,
            () = sleep_until(deadline) => break End::TimedOut(spec.timeout.unwrap_or_default()),
        }
    };
    let (stopping, what) = match end {
        End::Exited(status) => (Ok(status), String::new()),
        End::Stopped => (Err(()), "was stopped".to_string()),
        End::TimedOut(limit) => (
            Err(()),
            format!("timed out after {}", crate::duration::format(limit)),
        ),
    };
    let how = match stopping {
        Ok(_) => String::new(),
        Err(()) => {
            terminate(
                &mut child,
                &group,
                spec.kill_grace,
                &mut pumps,
                &mut drained,
            )
            .await
        }
    };
    if !drained {
        // Exited, but a background child may hold its pipes: take what is there.
        let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut pumps).await;
    }
    if spec.echo {
        crate::progress::end_output();
    }
    let output = merge(out_kept.take(), err_kept.take());
    let Ok(status) = stopping else {
        return Err(format!("{program:?} {what}: {how}{}", output_note(&output)));
    };
    // It ended by itself: what it left running (a daemon it started) is its business.
    group.0 = None;
    match status {
        Ok(s) if s.success() => Ok(output),
        Ok(s) => {
            let how = match s.code() {
                Some(code) => format!("exited with code {code}"),
                None => "was killed by a signal".to_string(),
            };
            Err(format!("{program:?} {how}{}", output_note(&output)))
        }
        Err(e) => Err(format!("waiting for {program:?} failed: {e}")),
    }
}

/// SIGTERM to the group, up to `grace` for the command to exit, then SIGKILL;
/// the rest of the group is killed either way. Keeps reading its output
/// meanwhile. Returns what happened, in words.
async fn terminate(
    child: &mut tokio::process::Child,
    group: &Group,
    grace: Duration,
    pumps: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    drained: &mut bool,
) -> String {
    let started = Instant::now();
    group.signal(libc::SIGTERM);
    let limit = tokio::time::Instant::now() + grace;
    let exited = loop {
        tokio::select! {
            _ = child.wait() => break true,
            () = pumps.as_mut(), if !*drained => *drained = true,
            () = tokio::time::sleep_until(limit) => break false,
        }
    };
    // What it started and left behind goes with it.
    group.signal(libc::SIGKILL);
    if exited {
        let took = Duration::from_millis(started.elapsed().as_millis() as u64);
        format!(
            "SIGTERM to its process group, exited after {}",
            crate::duration::format(took)
        )
    } else {
        let _ = child.wait().await;
        format!(
            "SIGTERM to its process group; it did not exit within the {} grace period, \
             killed with SIGKILL",
            crate::duration::format(grace)
        )
    }
}

/// Sleeps until `deadline`, or for ever when there is none.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// "; output:\n..." to end a message with a command's output, or nothing when
/// it printed nothing.
pub fn output_note(output: &str) -> String {
    let t = output.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!("; output:\n{t}")
    }
}

/// Copies a pipe to our stderr (when `echo`) and keeps its last bytes in `kept`.
async fn pump(pipe: Option<impl AsyncRead + Unpin>, echo: bool, kept: &RefCell<Vec<u8>>) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if echo {
                    crate::progress::write_output(&buf[..n]);
                }
                let mut kept = kept.borrow_mut();
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * KEEP_OUTPUT {
                    let cut = kept.len() - KEEP_OUTPUT;
                    kept.drain(..cut);
                }
            }
        }
    }
}

fn merge(out: Vec<u8>, err: Vec<u8>) -> String {
    let mut all = out;
    all.extend_from_slice(&err);
    let start = all.len().saturating_sub(KEEP_OUTPUT);
    // Text columns take no NUL byte (PostgreSQL refuses it): show it instead.
    let text = String::from_utf8_lossy(&all[start..]).replace('\0', "\u{FFFD}");
    if start > 0 {
        format!("[… {start} bytes cut]\n{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last resort: a run whose future is dropped (not stopped) still takes
    /// its whole process group with it.
    #[tokio::test]
    async fn dropping_a_run_kills_its_process_group() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pids = dir.path().join("pids");
        let argv: Vec<String> = [
            "sh",
            "-c",
            "sleep 300 & echo $! > \"$0\"; echo $$ >> \"$0\"; sleep 300",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([pids.display().to_string()])
        .collect();
        let spec = Spec {
            argv: &argv,
            timeout: None,
            kill_grace: DEFAULT_KILL_GRACE,
            echo: false,
        };
        let stop = CancellationToken::new();
        let job = Job::default();
        // Boxed, so that dropping it drops the future itself.
        let mut run = Box::pin(run(&spec, &job, &stop));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let written = loop {
            tokio::select! {
                ran = &mut run => panic!("it ended by itself: {ran:?}"),
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            let text = std::fs::read_to_string(&pids).unwrap_or_default();
            if text.lines().count() == 2 {
                break text;
            }
            assert!(tokio::time::Instant::now() < deadline, "no pids written");
        };
        drop(run);
        let pids: Vec<i32> = written.lines().map(|l| l.parse().expect("pid")).collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        // SAFETY: signal 0 only checks that a process exists. The shell is our
        // child: once killed it may linger as a zombie until tokio reaps it, so
        // only its background child, reparented and reaped by init, is polled.
        while unsafe { libc::kill(pids[0], 0) } == 0 {
            assert!(Instant::now() < deadline, "the group outlived the run");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
