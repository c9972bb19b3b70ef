//! The endpoints' view of the ledger: read on a connection of their own (the
//! watch's is never borrowed), at most once a second whatever the number of
//! clients, each reading bounded in time. A request is answered from the
//! last reading while a newer one is taken, so fifty dashboards cost the
//! ledger what one does, and a slow database makes answers old, not slow.

use crate::engine::{AuditLog, Engine, Who};
use crate::error::{DbContext, Error, Result};
use crate::model::Env;
use crate::render::AllStatus;
use crate::store::ledger::AuditFilter;
use crate::store::stats::{self, Durations, StateCount};
use crate::store::{DbUrl, Limits, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

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
    pub durations: Vec<Durations>,
    pub audit: AuditLog,
}

pub struct Reader {
    url: DbUrl,
    limits: Limits,
    who: Who,
    /// The reader's own connection, opened on first use and after a failure.
    engine: tokio::sync::Mutex<Option<Engine>>,
    readings: watch::Sender<Option<Arc<Reading>>>,
    reading_now: AtomicBool,
}

impl Reader {
    pub fn new(url: DbUrl, limits: Limits, who: Who) -> Arc<Reader> {
        Arc::new(Reader {
            url,
            limits,
            who,
            engine: tokio::sync::Mutex::new(None),
            readings: watch::Sender::new(None),
            reading_now: AtomicBool::new(false),
        })
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
        match tokio::time::timeout(self.limit(), next.changed()).await {
            Ok(Ok(())) => {
                if let Some(reading) = next.borrow().clone() {
                    return reading;
                }
                Arc::new(Reading::failed("no reading".into()))
            }
            _ => Arc::new(Reading::failed(format!(
                "the database at {} did not answer within {}",
                self.url.redacted(),
                crate::duration::format(self.limit())
            ))),
        }
    }

    /// Takes a new reading in the background, unless one is being taken.
    fn refresh(self: &Arc<Self>) {
        if self.reading_now.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let reading = me.read().await;
            me.readings.send_replace(Some(Arc::new(reading)));
            me.reading_now.store(false, Ordering::SeqCst);
        });
    }

    async fn read(&self) -> Reading {
        let mut slot = self.engine.lock().await;
        let read = async {
            if slot.is_none() {
                let store = Store::open_read_unsupervised(&self.url, self.limits).await?;
                *slot = Some(Engine::new(store, self.who.clone()));
            }
            let Some(engine) = slot.as_mut() else {
                unreachable!("opened above")
            };
            snapshot(engine).await
        };
        let ledger = match tokio::time::timeout(self.limit(), read).await {
            Ok(Ok(snapshot)) => Ok(snapshot),
            Ok(Err(e)) => Err(e.message),
            Err(_) => Err(format!(
                "the database at {} did not answer within {}",
                self.url.redacted(),
                crate::duration::format(self.limit())
            )),
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
    let durations = stats::durations(engine.store.conn(), d)
        .await
        .db("reading the deployments' durations")?;
    let audit = engine
        .audit(&AuditFilter {
            deployment: None,
            env: None,
            since: None,
            limit: AUDIT_ROWS,
        })
        .await?;
    let leader = engine.leader().await?;
    let notifications = engine.outbox_backlog().await?;
    let status = AllStatus {
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
        durations,
        audit,
    })
}
