//! `reconcile --watch`: an initial reconcile, then one after each change to the
//! manifest directory and one every interval to correct drift. One reconcile at
//! a time; a change is applied once the manifests have been stable for a quiet
//! period (no intermediate state of a rebase or a script), and only when it
//! changes the desired state. The watch follows the directory when it is
//! removed and recreated, checked out away and back, or re-pointed through a
//! symlink. An invalid manifest is reported and the last good desired state
//! kept; SIGINT/SIGTERM finish the current step cleanly and exit 0. A round
//! that fails on the database re-opens its connection at the next one: a
//! restarted server costs a round, not the watch.

use crate::cli::ReconcileArgs;
use crate::engine::{Engine, EnvOutcome};
use crate::error::{Error, Result};
use crate::executor::Overrides;
use crate::exit::Exit;
use crate::leader::{Change, Leadership};
use crate::manifest::{self, Desired};
use crate::render::{Printer, ReconcileView};
use crate::supervisor;
use notify::{Config, EventKind, PollWatcher, RecursiveMode, Watcher};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Quiet time after the last file event before the manifests are read again:
/// editors write a temp file, rename it, touch metadata; one save is one reconcile.
const DEBOUNCE: Duration = Duration::from_millis(300);
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How often the ledger is asked for new approvals while the manifests declare
/// approval gates: `shipctl approve` on any machine wakes the watch this fast.
const APPROVALS_EVERY: Duration = Duration::from_secs(2);

type Changes = mpsc::UnboundedReceiver<Vec<PathBuf>>;

pub async fn run(
    engine: &mut Engine,
    a: &ReconcileArgs,
    overrides: &Overrides,
    listener: Option<crate::serve::Listener>,
    printer: &Printer,
) -> Result<Exit> {
    let dir = a.manifests.manifests.clone();
    let (tx, changes) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let cannot_watch = |e: notify::Error| {
        Error::input(format!("cannot watch {}: {e}", dir.display()))
            .hint("check the directory exists, or use --poll on file systems without events")
    };
    // Watch before the first load, so that no change is missed in between.
    let mut place = Place::new(&dir).map_err(|e| {
        Error::input(format!(
            "cannot watch {}: cannot tell where it is: {e}",
            dir.display()
        ))
        .hint("run shipctl from a directory that exists, or pass an absolute --manifests DIR")
    })?;
    let mut watchers = Watchers::new(a.poll, tx).map_err(cannot_watch)?;
    place.arm(&mut watchers).map_err(cannot_watch)?;
    if place.target.is_none() {
        // At start a missing directory is a mistake, not a checkout in progress.
        return Err(manifest::load(&dir).err().unwrap_or_else(|| {
            Error::input(format!(
                "the manifest directory {} does not exist",
                dir.display()
            ))
        }));
    }
    // With --poll a change is only seen at the next poll: a quiet period
    // shorter than the poll interval would not be quiet at all.
    let quiet = if a.poll {
        POLL_EVERY + DEBOUNCE
    } else {
        DEBOUNCE
    };
    let mut eyes = Eyes {
        place,
        watchers,
        changes,
        quiet,
    };

    let stop = supervisor::token();
    // One active watcher per ledger: this one applies only while it leads.
    let mut leadership = Leadership::start(
        engine.store.url(),
        engine.store.limits,
        engine.who.holder.clone(),
        engine.who.lease_ttl,
    )
    .await?;
    // What the rounds tell the HTTP endpoints, if any (DESIGN §11).
    let watched = crate::serve::Watched::default();
    let server = listener
        .map(|listener| {
            crate::serve::start(
                listener,
                engine.store.url().clone(),
                engine.store.limits,
                engine.who.clone(),
                watched.clone(),
                a.interval,
                stop.child_token(),
            )
        })
        .transpose()?;
    // Webhooks (DESIGN §11): the leader delivers the outbox after each round
    // and every few seconds while it waits.
    let deliverer = crate::notify::Deliverer::new()?;
    let mut deliveries = tokio::time::interval(DELIVER_EVERY);
    deliveries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut desires = Desires::new(&dir, watched.clone());
    let mut resync = tokio::time::interval(a.interval);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await; // the first tick is immediate: the initial round below is it.
    let mut approvals = tokio::time::interval(APPROVALS_EVERY);
    approvals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reason = "start";
    loop {
        // The start and the resync read the manifests again (a change the
        // watcher could not see is caught here), once they are stable.
        if matches!(reason, "start" | "periodic resync") {
            match eyes.settle(&stop, printer).await {
                Some(snapshot) => {
                    desires.take(snapshot, printer);
                }
                None => break,
            }
        }
        // Read before the round: a decision recorded while it runs is not missed.
        let seen = mark(engine).await;
        let leads = leadership.leads();
        watched.set_leader(leads);
        let this = async {
            if leads {
                round(
                    engine,
                    a,
                    overrides,
                    printer,
                    &dir,
                    desires.last_good.as_ref(),
                    reason,
                )
                .await
            } else {
                printer.note(&format!(
                    "watch: standby ({reason}): another watcher leads; this one applies nothing"
                ));
                RoundEnd::Standby
            }
        };
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
                RoundEnd::Failed("the database did not answer".into())
            }
        };
        supervisor::idle();
        let mut window_opens = None;
        match ended {
            RoundEnd::Stop => break,
            // A service asked to stop ends cleanly, also when that stopped a
            // deployment (recorded as failed, rolled back).
            RoundEnd::Interrupted => break,
            RoundEnd::Done { opens, envs } => {
                desires.applied = desires.last_good.clone();
                window_opens = opens.map(wake_at);
                if let Some(envs) = envs {
                    watched.round_done(envs);
                }
            }
            // Whatever changes next is worth a round, even to the same state.
            RoundEnd::Failed(error) => {
                desires.applied = None;
                watched.round_failed(error);
            }
            RoundEnd::Standby => desires.applied = None,
        }
        if leadership.leads() {
            deliver(engine, &deliverer, printer).await;
        }
        let gated = desires.last_good.as_ref().is_some_and(has_approval_gates);
        reason = loop {
            tokio::select! {
                Some(paths) = eyes.changes.recv() => {
                    match eyes.place.concerns(&paths) {
                        Concern::Nothing => continue,
                        Concern::Place => eyes.place.rearm(&mut eyes.watchers, printer),
                        Concern::Content => {}
                    }
                    match eyes.settle(&stop, printer).await {
                        Some(snapshot) => {
                            if desires.take(snapshot, printer) {
                                break "manifests changed";
                            }
                        }
                        None => break "stop",
                    }
                }
                _ = resync.tick() => break "periodic resync",
                () = sleep_until_some(window_opens) => break "a deploy window opened",
                _ = approvals.tick(), if gated && seen.is_some() => {
                    let now = mark(engine).await;
                    if now.is_some() && now != seen {
                        break "an approval or a rejection was recorded";
                    }
                }
                Some(change) = leadership.changes.recv() => match change {
                    Change::Became(token) => {
                        printer.note(&format!(
                            "watch: this watcher leads now (fencing token {token})"
                        ));
                        break "became the leader";
                    }
                    Change::Lost(why) => {
                        watched.set_leader(false);
                        printer.note(&format!(
                            "watch: no longer the leader ({why}); applying nothing until it \
                             leads again"
                        ));
                    }
                    Change::Standby(holder) => printer.note(&format!(
                        "watch: standby: {holder} leads; this one takes over if it stops renewing"
                    )),
                },
                _ = deliveries.tick(), if leadership.leads() => {
                    deliver(engine, &deliverer, printer).await;
                }
                _ = stop.cancelled() => break "stop",
            }
        };
        if reason == "stop" {
            break;
        }
    }
    leadership.stop().await;
    if let Some(server) = server {
        server.stop().await;
    }
    printer.note("watch: stopped");
    Ok(Exit::Done)
}

/// What the watch looks at: where the manifests are, the watchers on it, the
/// events they send, and how long they must stay quiet.
struct Eyes {
    place: Place,
    watchers: Watchers,
    changes: Changes,
    quiet: Duration,
}

impl Eyes {
    /// Waits until the manifests have been stable for `quiet`: no relevant
    /// event for that long, and the same names and bytes read before and after
    /// it. So a rebase, a checkout or a script writing file after file is
    /// applied once, in its final state. `None` when asked to stop.
    async fn settle(&mut self, stop: &CancellationToken, printer: &Printer) -> Option<Snapshot> {
        let Eyes {
            place,
            watchers,
            changes,
            quiet,
        } = self;
        let quiet = *quiet;
        let mut before = digest(&place.given);
        loop {
            let mut until = tokio::time::Instant::now() + quiet;
            loop {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return None,
                    Some(paths) = changes.recv() => match place.concerns(&paths) {
                        Concern::Nothing => {}
                        Concern::Content => until = tokio::time::Instant::now() + quiet,
                        Concern::Place => {
                            place.rearm(watchers, printer);
                            until = tokio::time::Instant::now() + quiet;
                        }
                    },
                    _ = tokio::time::sleep_until(until) => break,
                }
            }
            // A replacement whose events were lost (or came before the new
            // directory could be watched) is caught here, before the read.
            if place.moved() {
                place.rearm(watchers, printer);
            }
            match Snapshot::read(&place.given) {
                Some(snapshot) if snapshot.digest == before => return Some(snapshot),
                Some(snapshot) => before = snapshot.digest,
                None => before = digest(&place.given),
            }
        }
    }
}

/// The desired state as the watch knows it.
struct Desires {
    dir: PathBuf,
    /// The last manifests that loaded.
    last_good: Option<Desired>,
    /// The desired state of the last round that ended normally: a change that
    /// leaves the desired state equal to it needs no round.
    applied: Option<Desired>,
    /// What the directory held when last read: the same bytes are not read twice.
    seen: Option<Digest>,
    /// The directory's absence was reported (once, until it comes back).
    gone: bool,
    /// Told the last good manifests' keys, for the HTTP readings.
    watched: crate::serve::Watched,
}

impl Desires {
    fn new(dir: &Path, watched: crate::serve::Watched) -> Desires {
        Desires {
            dir: dir.to_path_buf(),
            last_good: None,
            applied: None,
            seen: None,
            gone: false,
            watched,
        }
    }

    /// Takes what was read; says what is wrong with it, once per content.
    /// True when the desired state now differs from the one last applied.
    fn take(&mut self, snapshot: Snapshot, printer: &Printer) -> bool {
        if self.seen.as_ref() == Some(&snapshot.digest) {
            return false;
        }
        let missing = snapshot.digest == Digest::Missing;
        self.seen = Some(snapshot.digest);
        match snapshot.loaded {
            Ok(desired) => {
                if self.gone {
                    self.gone = false;
                    printer.note(&format!(
                        "watch: the manifest directory {} is back",
                        self.dir.display()
                    ));
                }
                let same = self.last_good.as_ref() == Some(&desired);
                self.watched.set_keys(crate::engine::Keys::of(
                    &desired,
                    "the watched manifests",
                    None,
                ));
                self.last_good = Some(desired);
                if same && self.last_good == self.applied {
                    printer.note(
                        "watch: the manifests changed but not the desired state; nothing to do",
                    );
                }
            }
            Err(e) => {
                if missing {
                    if self.gone {
                        return false;
                    }
                    self.gone = true;
                } else {
                    self.gone = false;
                }
                printer.error(&e);
                if self.last_good.is_some() {
                    printer.note(if missing {
                        "watch: keeping the last good desired state until the directory is back"
                    } else {
                        "watch: keeping the last good desired state"
                    });
                }
            }
        }
        self.last_good != self.applied
    }
}

/// The manifests' names and bytes, to tell a real change from a touch and a
/// stable directory from one being written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Digest {
    /// A hash of the names and contents (change detection, not security).
    Files(u64),
    /// No directory there (removed, a checkout without it, a dangling symlink).
    Missing,
    /// It cannot be read; `manifest::load` says why.
    Unreadable(String),
}

fn digest(dir: &Path) -> Digest {
    let unreadable = |e: std::io::Error| Digest::Unreadable(e.to_string());
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Digest::Missing,
        Err(e) => return unreadable(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => return unreadable(e),
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if manifest::is_manifest_name(&name) {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    let mut h = DefaultHasher::new();
    for (name, path) in files {
        name.hash(&mut h);
        // Only regular files are read: a named pipe would block (load refuses it).
        let bytes = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => std::fs::File::open(&path).and_then(|f| {
                let mut bytes = Vec::new();
                f.take(manifest::MAX_FILE_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map(|_| bytes)
            }),
            Ok(_) => Ok(b"not a regular file".to_vec()),
            Err(e) => Err(e),
        };
        match bytes {
            Ok(bytes) => bytes.hash(&mut h),
            Err(e) => e.kind().hash(&mut h),
        }
    }
    Digest::Files(h.finish())
}

/// The manifests read at one moment: what they hold and what they declare.
struct Snapshot {
    digest: Digest,
    loaded: Result<Desired>,
}

impl Snapshot {
    /// `None` when the files changed while they were read.
    fn read(dir: &Path) -> Option<Snapshot> {
        let digest = self::digest(dir);
        let loaded = manifest::load(dir);
        (self::digest(dir) == digest).then_some(Snapshot { digest, loaded })
    }
}

/// Two watchers: one on the manifest directory, one on the directories whose
/// entries say where it is (its parent, the parent of each symlink on its way).
/// Apart, so that `--poll` compares contents only in the manifest directory.
struct Watchers {
    content: Box<dyn Watcher>,
    place: Box<dyn Watcher>,
}

impl Watchers {
    fn new(poll: bool, tx: mpsc::UnboundedSender<Vec<PathBuf>>) -> notify::Result<Watchers> {
        let handler = |tx: mpsc::UnboundedSender<Vec<PathBuf>>| {
            move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && !matches!(event.kind, EventKind::Access(_))
                {
                    let _ = tx.send(event.paths);
                }
            }
        };
        let make = |compare_contents: bool| -> notify::Result<Box<dyn Watcher>> {
            let handler = handler(tx.clone());
            Ok(if poll {
                // Contents, not only times: a save within the same second as
                // the last one keeps the modification time the poller saw.
                Box::new(PollWatcher::new(
                    handler,
                    Config::default()
                        .with_poll_interval(POLL_EVERY)
                        .with_compare_contents(compare_contents),
                )?)
            } else {
                Box::new(notify::recommended_watcher(handler)?)
            })
        };
        Ok(Watchers {
            content: make(true)?,
            place: make(false)?,
        })
    }
}

/// Where the manifest directory is, and what is watched to follow it.
struct Place {
    /// `--manifests` made absolute, symlinks kept: the path the user means.
    given: PathBuf,
    /// The directory it leads to now (symlinks resolved) and its identity
    /// (device, inode); `None` while there is none.
    target: Option<(PathBuf, (u64, u64))>,
    /// What each watcher watches now.
    content: Vec<PathBuf>,
    place: Vec<PathBuf>,
    /// A failure to re-arm was reported (once, until re-arming works).
    failed: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Concern {
    Nothing,
    /// A manifest (or the directory's own entries) changed.
    Content,
    /// The directory, an ancestor or a symlink on its way was created,
    /// removed, renamed or re-pointed.
    Place,
}

impl Place {
    fn new(dir: &Path) -> std::io::Result<Place> {
        Ok(Place {
            given: std::path::absolute(dir)?,
            target: None,
            content: Vec::new(),
            place: Vec::new(),
            failed: false,
        })
    }

    /// The directory `given` leads to now, if there is one.
    fn locate(&self) -> Option<(PathBuf, (u64, u64))> {
        let target = std::fs::canonicalize(&self.given).ok()?;
        let meta = std::fs::metadata(&target).ok()?;
        meta.is_dir().then(|| (target, (meta.dev(), meta.ino())))
    }

    /// Whether the directory went, came, or is now another one.
    fn moved(&self) -> bool {
        self.locate() != self.target
    }

    /// Directories whose entries place the manifest directory: the parent of
    /// `given`, of each symlink on its way, and of the resolved directory;
    /// each the nearest one that exists, and each directory once.
    fn anchors(&self) -> Vec<PathBuf> {
        let mut wanted: Vec<PathBuf> = Vec::new();
        let mut prefix = PathBuf::new();
        for part in self.given.components() {
            prefix.push(part);
            if prefix != self.given
                && std::fs::symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink())
            {
                wanted.extend(prefix.parent().map(Path::to_path_buf));
            }
        }
        wanted.extend(self.given.parent().map(Path::to_path_buf));
        if let Some((target, _)) = &self.target {
            wanted.extend(target.parent().map(Path::to_path_buf));
        }
        let mut anchors = Vec::new();
        let mut seen = Vec::new();
        for path in wanted {
            let Some(existing) = path.ancestors().find(|p| p.is_dir()) else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(existing) else {
                continue;
            };
            let id = (meta.dev(), meta.ino());
            if !seen.contains(&id) {
                seen.push(id);
                anchors.push(existing.to_path_buf());
            }
        }
        anchors
    }

    /// (Re-)watches the directory where it is now (its new inode after a
    /// re-creation, the new target of a symlink) and the anchors.
    fn arm(&mut self, watchers: &mut Watchers) -> notify::Result<()> {
        for path in self.content.drain(..) {
            // Gone with its directory already: notify forgets a removed path.
            let _ = watchers.content.unwatch(&path);
        }
        for path in self.place.drain(..) {
            let _ = watchers.place.unwatch(&path);
        }
        // A directory that vanishes while it is being armed is armed again.
        for _ in 0..3 {
            self.target = self.locate();
            if let Some((target, _)) = &self.target {
                match watchers.content.watch(target, RecursiveMode::NonRecursive) {
                    Ok(()) => self.content.push(target.clone()),
                    Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => continue,
                    Err(e) => return Err(e),
                }
            }
            let mut vanished = false;
            for anchor in self.anchors() {
                match watchers.place.watch(&anchor, RecursiveMode::NonRecursive) {
                    Ok(()) => self.place.push(anchor),
                    Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => vanished = true,
                    Err(e) => return Err(e),
                }
            }
            if !vanished && !self.moved() {
                break;
            }
            for path in self.content.drain(..) {
                let _ = watchers.content.unwatch(&path);
            }
            for path in self.place.drain(..) {
                let _ = watchers.place.unwatch(&path);
            }
        }
        Ok(())
    }

    /// Re-arms, reporting a failure once; the periodic resync still reads the
    /// manifests meanwhile.
    fn rearm(&mut self, watchers: &mut Watchers, printer: &Printer) {
        match self.arm(watchers) {
            Ok(()) => self.failed = false,
            Err(e) if !self.failed => {
                self.failed = true;
                printer.error(
                    &Error::input(format!(
                        "watch: cannot watch {} again: {e}",
                        self.given.display()
                    ))
                    .hint(
                        "changes are picked up at the next --interval until it can; \
                         --poll works where file-system events do not",
                    ),
                );
            }
            Err(_) => {}
        }
    }

    fn concerns(&self, paths: &[PathBuf]) -> Concern {
        // Without a path (the kernel's queue overflowed): look again.
        if paths.is_empty() {
            return Concern::Place;
        }
        let target = self.target.as_ref().map(|(t, _)| t.as_path());
        let mut concern = Concern::Nothing;
        for path in paths {
            if self.given.starts_with(path) || target.is_some_and(|t| t.starts_with(path)) {
                return Concern::Place;
            }
            let inside = |dir: &Path| path.parent() == Some(dir);
            if (inside(&self.given) || target.is_some_and(inside)) && relevant(path) {
                concern = Concern::Content;
            }
        }
        concern
    }
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
    /// `opens`: the earliest time a closed deploy window reopens, if any
    /// environment waits for one: the watch wakes then. `envs`: where the
    /// round left each environment, when it reached the ledger.
    Done {
        opens: Option<jiff::Timestamp>,
        envs: Option<Vec<crate::serve::EnvRound>>,
    },
    /// The database failed (why): the connection is re-opened at the next round.
    Failed(String),
    /// A signal arrived and nothing was running.
    Stop,
    /// A signal stopped a deployment (recorded as failed).
    Interrupted,
    /// Another watcher leads: nothing was applied.
    Standby,
}

/// One reconcile of the last good desired state, on a connection re-opened
/// first if the last round broke it.
async fn round(
    engine: &mut Engine,
    a: &ReconcileArgs,
    overrides: &Overrides,
    printer: &Printer,
    dir: &Path,
    last_good: Option<&Desired>,
    reason: &str,
) -> RoundEnd {
    printer.note(&format!(
        "watch: reconciling ({reason}) at {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    ));
    let Some(desired) = last_good else {
        printer.note("watch: no valid desired state yet; waiting for a fix");
        return RoundEnd::Done {
            opens: None,
            envs: None,
        };
    };
    supervisor::phase();
    if let Err(e) = engine.store.settle().await {
        printer.error(&e);
        return RoundEnd::Failed(e.message);
    }
    // `--env`: the round plans and applies only those environments.
    let targeted;
    let desired = if a.env.is_empty() {
        desired
    } else {
        match crate::plan::saved::target(desired.clone(), &a.env, &dir.display().to_string()) {
            Ok(d) => {
                targeted = d;
                &targeted
            }
            Err(e) => {
                printer.error(&e);
                return RoundEnd::Failed(e.message);
            }
        }
    };
    match engine
        .reconcile(desired, overrides, a.fail_fast, None)
        .await
    {
        Ok(result) => {
            let interrupted = result.interrupted();
            let opens = result
                .environments
                .iter()
                .filter_map(|e| match &e.outcome {
                    EnvOutcome::Closed {
                        opens_at: Some(t), ..
                    } => t.parse::<jiff::Timestamp>().ok(),
                    _ => None,
                })
                .min();
            let envs = Some(crate::serve::EnvRound::of(&result));
            printer.emit(&ReconcileView {
                manifests: dir.display().to_string(),
                result,
            });
            if interrupted {
                RoundEnd::Interrupted
            } else if supervisor::received().is_some() {
                RoundEnd::Stop
            } else {
                RoundEnd::Done { opens, envs }
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
            RoundEnd::Failed(e.message)
        }
    }
}

/// How often the leader delivers due notifications while it waits.
const DELIVER_EVERY: Duration = Duration::from_secs(5);
/// The longest one delivery may keep the watch from its manifests.
const DELIVER_BUDGET: Duration = Duration::from_secs(15);

/// Delivers the outbox's due notifications, dropped at a signal (a delivery
/// cut short is tried again, with the same key), reported in a note.
async fn deliver(engine: &mut Engine, deliverer: &crate::notify::Deliverer, printer: &Printer) {
    let stop = supervisor::token();
    let sent = tokio::select! {
        sent = crate::notify::deliver_due(&mut engine.store, deliverer) => sent,
        // A receiver that answers slowly must not keep the watch from its
        // manifests: what is left goes out at the next delivery.
        () = tokio::time::sleep(DELIVER_BUDGET) => {
            engine.store.mark_broken();
            return;
        }
        _ = stop.cancelled() => {
            engine.store.mark_broken();
            return;
        }
    };
    match sent {
        Ok(r) if r.delivered + r.retried + r.given_up > 0 => printer.note(&format!(
            "watch: notifications: {} delivered, {} to retry, {} given up",
            r.delivered, r.retried, r.given_up
        )),
        Ok(_) => {}
        Err(e) => {
            printer.error(&e);
            engine.store.mark_broken();
        }
    }
}

/// When to wake for a deploy window that opens at `opens` (by the database
/// clock): a little after it by this machine's clock, and never sooner than a
/// second from now, so that clocks apart cannot make the watch spin.
fn wake_at(opens: jiff::Timestamp) -> tokio::time::Instant {
    const MARGIN: Duration = Duration::from_millis(300);
    const AT_LEAST: Duration = Duration::from_secs(1);
    let ahead = opens.duration_since(jiff::Timestamp::now());
    let wait = Duration::try_from(ahead).unwrap_or(Duration::ZERO) + MARGIN;
    tokio::time::Instant::now() + wait.max(AT_LEAST)
}

/// Sleeps until `at`, or forever when there is nothing to wake for.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
