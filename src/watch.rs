//! `reconcile --watch`: an initial reconcile, then one after each change to the
//! manifest directory (debounced) and one every interval to correct drift. One
//! reconcile at a time; an invalid manifest is reported and the last good desired
//! state kept; SIGINT/SIGTERM finish the current step cleanly and exit 0.

use crate::cli::ReconcileArgs;
use crate::engine::{self, Engine};
use crate::error::{Error, Result};
use crate::executor::Overrides;
use crate::manifest::{self, Desired};
use crate::render::{Printer, ReconcileView};
use notify::{Config, EventKind, PollWatcher, RecursiveMode, Watcher};
use std::path::Path;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
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
) -> Result<i32> {
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

    let stop = listen_for_signals()?;
    let mut last_good: Option<Desired> = None;
    let mut resync = tokio::time::interval(a.interval);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await; // the first tick is immediate: the initial round below is it.
    let mut approvals = tokio::time::interval(APPROVALS_EVERY);
    approvals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reason = "start";
    loop {
        // Read before the round: a decision recorded while it runs is not missed.
        let mark = engine.decision_mark().await.ok();
        if round(engine, a, overrides, printer, &dir, &mut last_good, reason).await {
            break;
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
                _ = approvals.tick(), if gated && mark.is_some() => {
                    if engine.decision_mark().await.is_ok_and(|now| Some(now) != mark) {
                        break "an approval or a rejection was recorded";
                    }
                }
                _ = stop.notified() => break "stop",
            }
        };
        if reason == "stop" {
            break;
        }
        if engine::stop_requested() {
            break;
        }
    }
    printer.note("watch: stopped");
    Ok(0)
}

/// One reconcile. Returns true when a signal asks the watch to stop.
async fn round(
    engine: &mut Engine,
    a: &ReconcileArgs,
    overrides: &Overrides,
    printer: &Printer,
    dir: &Path,
    last_good: &mut Option<Desired>,
    reason: &str,
) -> bool {
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
                    return engine::stop_requested();
                }
            }
        }
    }
    let Some(desired) = last_good.as_ref() else {
        return engine::stop_requested();
    };
    match engine.reconcile(desired, overrides, a.fail_fast).await {
        Ok(result) => {
            let stop = result.interrupted();
            printer.emit_line(&ReconcileView {
                manifests: dir.display().to_string(),
                result,
            });
            stop || engine::stop_requested()
        }
        // A database hiccup or a release conflict: report it and keep watching.
        Err(e) => {
            printer.error(&e);
            engine::stop_requested()
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

/// SIGINT and SIGTERM set the engine's stop flag (no new run starts; a running
/// one is rolled back by its own handler) and wake the loop.
fn listen_for_signals() -> Result<std::sync::Arc<tokio::sync::Notify>> {
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    let hook = |kind| {
        signal(kind).map_err(|e| Error::input(format!("cannot install a signal handler: {e}")))
    };
    let mut int = hook(SignalKind::interrupt())?;
    let mut term = hook(SignalKind::terminate())?;
    let wake = notify.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        engine::request_stop();
        wake.notify_one();
    });
    Ok(notify)
}
