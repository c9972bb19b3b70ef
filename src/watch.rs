//! `reconcile --watch`: an initial reconcile, then one after each change to the
//! manifest directory (debounced) and one every interval to correct drift. One
//! reconcile at a time; an invalid manifest is reported and the last good desired
//! state kept; SIGINT/SIGTERM finish the current step cleanly and exit 0. A round that fails on the database
//! re-opens its connection at the next one: a restarted server costs a round,
//! not the watch.

use crate::cli::ReconcileArgs;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::executor::Overrides;
use crate::exit::Exit;
use crate::manifest::{self, Desired};
use crate::render::{Printer, ReconcileView};
use crate::supervisor;
use notify::{Config, EventKind, PollWatcher, RecursiveMode, Watcher};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// Quiet time after the last file event before reconciling: editors write a
/// temp file, rename it, touch metadata; one save is one reconcile.
const DEBOUNCE: Duration = Duration::from_millis(300);
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How often the ledger is asked for new approvals while the manifests declare
/// approval gates: `shipctl approve` on any machine wakes the watch this fast.
const APPROVALS_EVERY: Duration = Duration::from_secs(2);

pub async fn run(
    engine: &mut Engine,
    a: &ReconcileArgs,
    overrides: &Overrides,
    printer: &Printer,
) -> Result<Exit> {
    let dir = a.manifests.manifests.clone();
    let (tx, mut changes) = mpsc::unbounded_channel::<()>();
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, EventKind::Access(_))
            && event.paths.iter().any(|p| relevant(p))
        {
            let _ = tx.send(());
        }
    };
    let cannot_watch = |e: notify::Error| {
        Error::input(format!("cannot watch {}: {e}", dir.display()))
            .hint("check the directory exists, or use --poll on file systems without events")
    };
    // Watch before the first load, so that no change is missed in between.
    let mut watcher: Box<dyn Watcher> = if a.poll {
        Box::new(
            // Contents, not only times: a save within the same second as the last
            // one keeps the modification time the poller saw.
            PollWatcher::new(
                handler,
                Config::default()
                    .with_poll_interval(POLL_EVERY)
                    .with_compare_contents(true),
            )
            .map_err(cannot_watch)?,
        )
    } else {
        Box::new(notify::recommended_watcher(handler).map_err(cannot_watch)?)
    };
    watcher
        .watch(&dir, RecursiveMode::Recursive)
        .map_err(cannot_watch)?;

    let stop = supervisor::token();
    let mut last_good: Option<Desired> = None;
    let mut resync = tokio::time::interval(a.interval);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await; // the first tick is immediate: the initial round below is it.
    let mut approvals = tokio::time::interval(APPROVALS_EVERY);
    approvals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reason = "start";
    loop {
        // Read before the round: a decision recorded while it runs is not missed.
        let seen = mark(engine).await;
        let this = round(engine, a, overrides, printer, &dir, &mut last_good, reason);
        // A round waiting on the database is dropped on a signal (it has
        // claimed nothing) or when the server stops answering; its connection
        // is re-opened by the next round.
        let ended = tokio::select! {
            biased;
            ended = this => ended,
            _ = supervisor::unguarded() => RoundEnd::Stop,
            limit = supervisor::silent() => {
                // Dropped mid-statement: the connection is not reused.
                engine.store.mark_broken();
                printer.error(&Error::unreachable(format!(
                    "watch: the database at {} did not answer within {}; retrying at the next round",
                    engine.store.url().redacted(),
                    crate::duration::format(limit)
                )));
                RoundEnd::Failed
            }
        };
        supervisor::idle();
        match ended {
            RoundEnd::Stop => break,
            // A service asked to stop ends cleanly, also when that stopped a
            // deployment (recorded as failed, rolled back).
            RoundEnd::Interrupted => break,
            RoundEnd::Failed | RoundEnd::Done => {}
        }
        let gated = last_good.as_ref().is_some_and(has_approval_gates);
        reason = loop {
            tokio::select! {
                Some(()) = changes.recv() => {
                    // Debounce: wait until the directory has been quiet for a moment.
                    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, changes.recv()).await {}
                    break "manifests changed";
                }
                _ = resync.tick() => break "periodic resync",
                _ = approvals.tick(), if gated && seen.is_some() => {
                    let now = mark(engine).await;
                    if now.is_some() && now != seen {
                        break "an approval or a rejection was recorded";
                    }
                }
                _ = stop.cancelled() => break "stop",
            }
        };
        if reason == "stop" {
            break;
        }
    }
    printer.note("watch: stopped");
    Ok(Exit::Done)
}

/// The newest approval's mark, read on a connection re-opened if needed,
/// within the answer limit and cut short by a signal; `None` when the ledger
/// cannot be read right now (the connection is then re-opened next time).
async fn mark(engine: &mut Engine) -> Option<i64> {
    let stop = supervisor::token();
    let read = async {
        engine.store.settle().await.ok()?;
        engine.decision_mark().await.ok()
    };
    let got = tokio::select! {
        got = tokio::time::timeout(supervisor::answer_limit(), read) => got.ok().flatten(),
        _ = stop.cancelled() => None,
    };
    supervisor::idle();
    if got.is_none() {
        engine.store.mark_broken();
    }
    got
}

enum RoundEnd {
    Done,
    /// The database failed: the connection is re-opened at the next round.
    Failed,
    /// A signal arrived and nothing was running.
    Stop,
    /// A signal stopped a deployment (recorded as failed).
    Interrupted,
}

/// One reconcile, on a connection re-opened first if the last round broke it.
async fn round(
    engine: &mut Engine,
    a: &ReconcileArgs,
    overrides: &Overrides,
    printer: &Printer,
    dir: &Path,
    last_good: &mut Option<Desired>,
    reason: &str,
) -> RoundEnd {
    printer.note(&format!(
        "watch: reconciling ({reason}) at {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    ));
    match manifest::load(dir) {
        Ok(desired) => *last_good = Some(desired),
        Err(e) => {
            printer.error(&e);
            match last_good {
                Some(_) => printer.note("watch: keeping the last good desired state"),
                None => {
                    printer.note("watch: no valid desired state yet; waiting for a fix");
                    return RoundEnd::Done;
                }
            }
        }
    }
    let Some(desired) = last_good.as_ref() else {
        return RoundEnd::Done;
    };
    supervisor::phase();
    if let Err(e) = engine.store.settle().await {
        printer.error(&e);
        return RoundEnd::Failed;
    }
    match engine.reconcile(desired, overrides, a.fail_fast).await {
        Ok(result) => {
            let interrupted = result.interrupted();
            printer.emit_line(&ReconcileView {
                manifests: dir.display().to_string(),
                result,
            });
            if interrupted {
                RoundEnd::Interrupted
            } else if supervisor::received().is_some() {
                RoundEnd::Stop
            } else {
                RoundEnd::Done
            }
        }
        Err(e) if matches!(e.kind, crate::error::Kind::Interrupted(_)) => {
            printer.error(&e);
            RoundEnd::Stop
        }
        // A database hiccup or a release conflict: report it and keep watching.
        Err(e) => {
            printer.error(&e);
            if supervisor::received().is_some() {
                return RoundEnd::Stop;
            }
            // Whatever an error left open (a transaction and its locks) goes
            // with the connection now, not at the next round minutes later.
            if engine.store.reconnect().await.is_err() {
                engine.store.mark_broken();
            }
            RoundEnd::Failed
        }
    }
}

fn has_approval_gates(desired: &Desired) -> bool {
    desired
        .environments
        .values()
        .any(|spec| spec.policy.gates.iter().any(|g| g.gate.approvals.is_some()))
}

/// Editors' temp and swap files do not count; the manifests and the directory do.
fn relevant(path: &Path) -> bool {
    match path.file_name().and_then(|n| n.to_str()) {
        Some(name) => manifest::is_manifest_name(name) || !name.contains('.'),
        None => true,
    }
}
