//! A real deployment command: an argv (never a shell string), with the
//! deployment's facts as environment variables, in its own process group so that
//! a timeout, a signal or a lost lease stops it and everything it started.

use std::cell::RefCell;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of a command's output the audit log keeps (its end, where errors are).
pub const KEEP_OUTPUT: usize = 4096;

/// What a command is told about the deployment, as `SHIPCTL_*` variables.
#[derive(Debug, Clone, Default)]
pub struct Job {
    pub version: String,
    pub tag: String,
    pub env: String,
    pub deploy_id: i64,
    pub previous_version: Option<String>,
}

impl Job {
    fn vars(&self) -> [(&'static str, String); 5] {
        [
            ("SHIPCTL_VERSION", self.version.clone()),
            ("SHIPCTL_TAG", self.tag.clone()),
            ("SHIPCTL_ENV", self.env.clone()),
            ("SHIPCTL_DEPLOY_ID", self.deploy_id.to_string()),
            (
                "SHIPCTL_PREVIOUS_VERSION",
                self.previous_version.clone().unwrap_or_default(),
            ),
        ]
    }
}

/// How a command ended: `Ok` carries the kept output, `Err` what went wrong and the output.
pub type Ran = Result<String, String>;

/// Kills the whole process group when dropped: on timeout, on a signal (the
/// engine drops the run), or if anything else ends the run early.
struct Group(Option<i32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill has no memory effects; a negative pid names the group.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// Runs `argv` to completion or `timeout`. Output goes to our stderr as it comes
/// (stdout stays clean for `--output json`) and its last `KEEP_OUTPUT` bytes are kept.
pub async fn run(argv: &[String], job: &Job, timeout: Option<Duration>, echo: bool) -> Ran {
    let Some((program, args)) = argv.split_first() else {
        return Err("the command is empty".into());
    };
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
    let out = child.stdout.take();
    let err = child.stderr.take();
    // Outside the future, so that what a command said before its timeout is kept.
    let (out_kept, err_kept) = (RefCell::new(Vec::new()), RefCell::new(Vec::new()));
    let collect = async {
        tokio::join!(pump(out, echo, &out_kept), pump(err, echo, &err_kept));
        child.wait().await
    };
    let ended = match timeout {
        Some(limit) => tokio::time::timeout(limit, collect).await.ok(),
        None => Some(collect.await),
    };
    if echo {
        crate::progress::end_output();
    }
    let output = merge(out_kept.into_inner(), err_kept.into_inner());
    let Some(status) = ended else {
        drop(group); // kills the group now
        return Err(format!(
            "{program:?} timed out after {}; its process group was killed{}",
            crate::duration::format(timeout.unwrap_or_default()),
            output_note(&output)
        ));
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
