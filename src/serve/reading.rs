//! The endpoints' view of the ledger: read on a connection of their own (the
//! watch's is never borrowed), at most once a second whatever the number of
//! clients, each reading bounded in time. A request is answered from the
//! last reading while a newer one is taken, so fifty dashboards cost the
//! ledger what one does, and a slow database makes answers old, not slow.

use crate::engine::{AuditLog, Engine, Who};
use crate::error::{DbContext, Error, Result};
use crate::model::{Env, Etat};
use crate::render::AllStatus;
use crate::store::ledger::AuditFilter;
use crate::store::stats::{self, Durations, StateCount};
use crate::store::{DbUrl, Limits, Store};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A reading younger than this is served as it is.
const FRESH: Duration = Duration::from_secs(1);
/// How long one reading (connect included) and one request's wait for it
/// may take, at most: a reader takes no lock, so this is an unreachable
/// server, not a busy one.
const READ_LIMIT: Duration = Duration::from_secs(5);
/// How many audit rows the dashboard shows.
pub const AUDIT_ROWS: i64 = 20;

/// What the ledger held at one moment (or why it could not be read).
pub struct Reading {
    pub taken: Instant,
    pub ledger: std::result::Result<Snapshot, String>,
}

pub struct Snapshot {
    pub status: AllStatus,
    /// `status --output json`, as that command prints it.
    pub status_json: String,
    pub counts: Vec<StateCount>,
    /// The last histogram taken (see `DurationsCache`); empty until the first.
    pub durations: Arc<Vec<Durations>>,
    pub audit: AuditLog,
}

pub struct Reader {
    url: DbUrl,
    limits: Limits,
    who: Who,
    /// Where the watch leaves the manifests' keys, which readings judge
    /// signed approvals by.
    watched: super::Watched,
    /// The reader's own connection, opened on first use and after a failure.
    engine: tokio::sync::Mutex<Option<Engine>>,
    readings: watch::Sender<Option<Arc<Reading>>>,
    /// When the reading being taken started, if one is.
    reading_since: Mutex<Option<Instant>>,
    /// Where readings are taken: a thread of their own, so that however
    /// busy the endpoints are, a reading is never queued behind them.
    readers: tokio::runtime::Handle,
    durations: Mutex<DurationsCache>,
}

/// The durations histogram reads every finished deployment: a statement that
/// grows with the ledger (a second on 100,000 deployments), so it is kept out
/// of the readings. It is taken on a connection of its own, with a limit of
/// its own, and again only once more deployments have finished; readings
/// serve the last one taken.
#[derive(Default)]
struct DurationsCache {
    /// The last histogram, and how many deployments had finished when it was
    /// asked for.
    taken: Option<(i64, Arc<Vec<Durations>>)>,
    /// One is being taken.
    busy: bool,
}

/// How long taking the durations histogram may take.
const DURATIONS_LIMIT: Duration = Duration::from_secs(60);

impl Reader {
    /// Starts the readings' thread, which ends with `stop`.
    pub fn new(
        url: DbUrl,
        limits: Limits,
        who: Who,
        watched: super::Watched,
        stop: CancellationToken,
    ) -> std::io::Result<Arc<Reader>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let readers = runtime.handle().clone();
        std::thread::Builder::new()
            .name("shipctl-reader".into())
            .spawn(move || {
                runtime.block_on(stop.cancelled_owned());
                runtime.shutdown_background();
            })?;
        Ok(Arc::new(Reader {
            url,
            limits,
            who,
            watched,
            engine: tokio::sync::Mutex::new(None),
            readings: watch::Sender::new(None),
            reading_since: Mutex::new(None),
            readers,
            durations: Mutex::default(),
        }))
    }

    fn limit(&self) -> Duration {
        READ_LIMIT.min(self.limits.connect + self.limits.answer())
    }

    /// A recent reading: the last one while it is fresh, or while a newer
    /// one is being taken and it is not older than a reading may take; else
    /// the next one, waited for within the read limit.
    pub async fn get(self: &Arc<Self>) -> Arc<Reading> {
        let mut next = self.readings.subscribe();
        let last = next.borrow_and_update().clone();
        let age = last.as_ref().map(|r| r.taken.elapsed());
        if age.is_none_or(|age| age >= FRESH) {
            self.refresh();
        }
        if let (Some(last), Some(age)) = (last, age)
            && age < FRESH + self.limit()
        {
            return last;
        }
        self.next(&mut next, Instant::now(), self.limit()).await
    }

    /// For `/healthz`, which must tell a silent database quickly: the last
    /// reading only while it is younger than `within / 2` (and `FRESH`), else
    /// the one being taken, given `within` from its start. A database that
    /// stops answering is so reported within one and a half `within`.
    pub async fn get_within(self: &Arc<Self>, within: Duration) -> Arc<Reading> {
        let within = within.min(self.limit());
        let mut next = self.readings.subscribe();
        if let Some(last) = next.borrow_and_update().clone()
            && last.taken.elapsed() < FRESH.min(within / 2)
        {
            return last;
        }
        let started = self.refresh();
        self.next(&mut next, started, within).await
    }

    /// The next reading, or a failed one once `within` has passed since `from`.
    async fn next(
        &self,
        next: &mut watch::Receiver<Option<Arc<Reading>>>,
        from: Instant,
        within: Duration,
    ) -> Arc<Reading> {
        let wait = (from + within).saturating_duration_since(Instant::now());
        if let Ok(Ok(())) = tokio::time::timeout(wait, next.changed()).await
            && let Some(reading) = next.borrow().clone()
        {
            return reading;
        }
        Arc::new(Reading::failed(self.silent(within)))
    }

    fn silent(&self, within: Duration) -> String {
        format!(
            "the database at {} did not answer within {}",
            self.url.redacted(),
            crate::duration::format(within)
        )
    }

    /// Takes a new reading in the background, unless one is being taken;
    /// returns when the one being taken started.
    fn refresh(self: &Arc<Self>) -> Instant {
        let mut since = self
            .reading_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(started) = *since {
            return started;
        }
        let started = Instant::now();
        *since = Some(started);
        let me = Arc::clone(self);
        self.readers.spawn(async move {
            let reading = me.read().await;
            // Cleared before the reading is sent: a request that sees it
            // cleared starts the next one and is answered by this one.
            *me.reading_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
            me.readings.send_replace(Some(Arc::new(reading)));
        });
        started
    }

    async fn read(self: &Arc<Self>) -> Reading {
        let mut slot = self.engine.lock().await;
        let read = async {
            if slot.is_none() {
                let store = Store::open_read_unsupervised(&self.url, self.limits).await?;
                *slot = Some(Engine::new(store, self.who.clone()));
            }
            let Some(engine) = slot.as_mut() else {
                unreachable!("opened above")
            };
            engine.keys = self.watched.keys();
            snapshot(engine).await
        };
        let ledger = match tokio::time::timeout(self.limit(), read).await {
            Ok(Ok(mut snapshot)) => {
                snapshot.durations = self.durations_for(&snapshot.counts);
                Ok(snapshot)
            }
            Ok(Err(e)) => Err(e.message),
            Err(_) => Err(self.silent(self.limit())),
        };
        if ledger.is_err() {
            // Whatever it was doing goes with the connection; the next
            // reading opens a new one.
            *slot = None;
        }
        Reading {
            taken: Instant::now(),
            ledger,
        }
    }
}

impl Reader {
    /// The last durations histogram, asking for a new one when more
    /// deployments have finished than when it was taken.
    fn durations_for(self: &Arc<Self>, counts: &[StateCount]) -> Arc<Vec<Durations>> {
        let finished: i64 = counts
            .iter()
            .filter(|c| {
                Etat::parse(&c.state).is_some_and(|e| !e.is_pending() && e != Etat::EnCours)
            })
            .map(|c| c.count)
            .sum();
        let mut cache = self
            .durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let last = cache
            .taken
            .as_ref()
            .map(|(_, h)| Arc::clone(h))
            .unwrap_or_default();
        if !cache.busy && cache.taken.as_ref().is_none_or(|(n, _)| *n != finished) {
            cache.busy = true;
            let me = Arc::clone(self);
            self.readers.spawn(async move {
                let taken = tokio::time::timeout(DURATIONS_LIMIT, me.take_durations()).await;
                let mut cache = me.durations.lock().unwrap_or_else(PoisonError::into_inner);
                cache.busy = false;
                // A failure is tried again at the next reading.
                if let Ok(Ok(histogram)) = taken {
                    cache.taken = Some((finished, Arc::new(histogram)));
                }
            });
        }
        last
    }

    async fn take_durations(&self) -> Result<Vec<Durations>> {
        let mut store = Store::open_read_unsupervised(&self.url, self.limits).await?;
        let d = store.d;
        let histogram = stats::durations(store.conn(), d)
            .await
            .db("reading the deployments' durations");
        store.close().await;
        histogram
    }
}

impl Reading {
    fn failed(why: String) -> Reading {
        Reading {
            taken: Instant::now(),
            ledger: Err(why),
        }
    }
}

async fn snapshot(engine: &mut Engine) -> Result<Snapshot> {
    let environments = engine.status(&Env::ALL).await?;
    let d = engine.store.d;
    let counts = stats::deployment_counts(engine.store.conn(), d)
        .await
        .db("counting the deployments")?;
    let audit = engine
        .audit(&AuditFilter {
            deployment: None,
            env: None,
            since: None,
            limit: AUDIT_ROWS,
        })
        .await?;
    let ledger_id = engine.ledger_id().await?;
    let leader = engine.leader().await?;
    let notifications = engine.outbox_backlog().await?;
    let status = AllStatus {
        ledger_id,
        environments,
        leader,
        notifications,
    };
    let status_json = serde_json::to_string_pretty(&status)
        .map_err(|e| Error::input(format!("cannot encode the status: {e}")))?;
    Ok(Snapshot {
        status,
        status_json,
        counts,
        durations: Arc::default(),
        audit,
    })
}
