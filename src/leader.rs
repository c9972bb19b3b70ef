//! One active watcher per ledger (DESIGN §11). Several `reconcile --watch`
//! processes elect a leader through a lease row in the ledger (`watch_leader`),
//! with the deployments' TTL, heartbeat and fencing: the supervisor's `Lease`
//! renews it (`Holding::Leader`) every TTL/3 on a connection of its own, so a
//! long deployment never delays a renewal. Standbys apply nothing and look for
//! a free or expired lease every TTL/3: a dead leader is replaced within its
//! TTL plus a third. A watcher that stops gives the leadership up at once.
//!
//! Deployments keep their own leases: a leader that loses its leadership while
//! a deployment runs finishes it under that deployment's lease (fenced), and
//! starts nothing more.

use crate::error::{DbContext, Result};
use crate::store::{DbUrl, Limits, Store, ledger};
use crate::supervisor::{self, Holding, Lease};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the leadership task tells the watch loop.
#[derive(Debug)]
pub enum Change {
    /// This watcher leads now (its fencing token).
    Became(i64),
    /// It no longer leads: why.
    Lost(String),
    /// Another watcher leads (said once per leader seen).
    Standby(String),
}

/// This watcher's side of the election.
pub struct Leadership {
    leads: Arc<AtomicBool>,
    pub changes: mpsc::UnboundedReceiver<Change>,
    task: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Starts the election on a connection of its own to the ledger at `url`.
    pub async fn start(
        url: &DbUrl,
        limits: Limits,
        holder: String,
        ttl: Duration,
    ) -> Result<Leadership> {
        let mut store = Store::open(url, limits).await?;
        // A first try before the first round: a lone watcher leads from the start.
        let at = Instant::now();
        let first = take(&mut store, &holder, ttl.as_millis() as i64).await?;
        let leads = Arc::new(AtomicBool::new(first.is_some()));
        let (tx, changes) = mpsc::unbounded_channel();
        let task = tokio::spawn(elect(
            store,
            holder,
            ttl,
            leads.clone(),
            tx,
            first.map(|token| (token, at)),
        ));
        Ok(Leadership {
            leads,
            changes,
            task,
        })
    }

    /// Whether this watcher leads now.
    pub fn leads(&self) -> bool {
        self.leads.load(Ordering::SeqCst)
    }

    /// Waits for the task to give the leadership up (after a signal).
    pub async fn stop(self) {
        let _ = tokio::time::timeout(supervisor::AFTER_SIGNAL, self.task).await;
    }
}

async fn elect(
    mut store: Store,
    holder: String,
    ttl: Duration,
    leads: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<Change>,
    mut first: Option<(i64, Instant)>,
) {
    let stop: CancellationToken = supervisor::token();
    let every = ttl / 3;
    let ttl_ms = ttl.as_millis() as i64;
    let mut seen: Option<String> = None;
    loop {
        // Standby: take the lease when it is free or has expired.
        let (token, at) = loop {
            if let Some(taken) = first.take() {
                break taken;
            }
            if stop.is_cancelled() {
                return;
            }
            let at = Instant::now();
            match bounded(every, take(&mut store, &holder, ttl_ms)).await {
                Some(Ok(Some(token))) => break (token, at),
                Some(Ok(None)) => {
                    if let Some(Ok(Some(l))) = bounded(every, current(&mut store)).await
                        && seen.as_deref() != Some(l.as_str())
                    {
                        seen = Some(l.clone());
                        let _ = tx.send(Change::Standby(l));
                    }
                }
                _ => store.mark_broken(),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
        };
        seen = None;
        if !leads.swap(true, Ordering::SeqCst) {
            let _ = tx.send(Change::Became(token));
        }
        let mut lease = Lease::taken(Holding::Leader { token }, ttl, at);
        // Leader: renew until it fails, or until asked to stop.
        let lost = loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => {
                    leads.store(false, Ordering::SeqCst);
                    let _ = bounded(supervisor::AFTER_SIGNAL, release(&mut store, token)).await;
                    return;
                }
            }
            if let Err(why) = lease.confirm(&mut store).await {
                break why;
            }
        };
        leads.store(false, Ordering::SeqCst);
        if stop.is_cancelled() {
            return;
        }
        let _ = tx.send(Change::Lost(lost));
    }
}

/// `f` within `limit`; `None` when it ran out (the connection is then suspect).
async fn bounded<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit.max(Duration::from_millis(100)), f)
        .await
        .ok()
}

async fn take(store: &mut Store, holder: &str, ttl_ms: i64) -> Result<Option<i64>> {
    store.settle().await?;
    let d = store.d;
    ledger::take_leadership(store.conn(), d, holder, ttl_ms)
        .await
        .db("taking the watch leadership")
}

async fn current(store: &mut Store) -> Result<Option<String>> {
    let d = store.d;
    Ok(ledger::leader(store.conn(), d)
        .await
        .db("reading the watch leader")?
        .map(|l| l.holder))
}

async fn release(store: &mut Store, token: i64) -> Result<()> {
    let d = store.d;
    ledger::release_leadership(store.conn(), d, token)
        .await
        .db("giving the watch leadership up")
}
