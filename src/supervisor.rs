//! The one supervisor: signals, leases and child processes. Every long step of
//! a deployment (command gates, the run, the rollback command) runs through
//! [`Lease::supervise`], and every wait outside one is cut short by a signal
//! (see [`unguarded`]). Nothing else in shipctl installs a signal handler,
//! renews a lease or decides when a child must stop.
//!
//! The policy, in one place (DESIGN §8):
//! - The first SIGINT/SIGTERM cancels one process-wide token. Outside a
//!   supervised step the command is dropped at once: it has claimed nothing,
//!   and the server rolls back what its transaction held. Inside one, the step's
//!   child is asked to stop (SIGTERM to its group, `kill_grace`, SIGKILL) and
//!   the deployment is finished as a failure within a short, bounded time.
//! - A second signal kills the children's process groups and exits at once.
//! - A lease is renewed every TTL/3, each renewal bounded in time and retried
//!   on a new connection when the old one failed. A holder that cannot confirm
//!   its lease for three quarters of a TTL, or finds it taken, stops its child
//!   (killed before the lease could pass to anyone else) and writes nothing more.

use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::ledger;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long writes may still take once a signal has arrived (recording a run
/// as failed, releasing a hold): past it, the lease's expiry does the rest.
/// Short enough that a signal is always honoured within a second.
pub const AFTER_SIGNAL: Duration = Duration::from_millis(750);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

impl serde::Serialize for Signal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Signal {
    pub fn number(self) -> i32 {
        match self {
            Signal::Int => libc::SIGINT,
            Signal::Term => libc::SIGTERM,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    fn from_number(n: i32) -> Option<Signal> {
        match n {
            libc::SIGINT => Some(Signal::Int),
            libc::SIGTERM => Some(Signal::Term),
            _ => None,
        }
    }
}

struct Shared {
    token: CancellationToken,
    signal: AtomicI32,
    /// Supervised steps in progress: while one runs, a signal is the step's to
    /// handle, not a reason to drop the command.
    guards: AtomicUsize,
    /// A supervised step took the signal in hand: it stops its child, records
    /// the outcome, and what follows checks `received()` itself.
    handled: std::sync::atomic::AtomicBool,
    released: Notify,
    /// Process groups of the children running now, killed by a second signal.
    groups: Mutex<Vec<i32>>,
    /// The watchdog of unsupervised database work: when it must be done by,
    /// and how long each phase may take (`Limits::answer`).
    deadline: Mutex<Option<(Instant, Duration)>>,
    answer: Mutex<Duration>,
}

static SHARED: LazyLock<Shared> = LazyLock::new(|| Shared {
    token: CancellationToken::new(),
    signal: AtomicI32::new(0),
    guards: AtomicUsize::new(0),
    handled: std::sync::atomic::AtomicBool::new(false),
    released: Notify::new(),
    groups: Mutex::new(Vec::new()),
    deadline: Mutex::new(None),
    answer: Mutex::new(Duration::from_secs(35)),
});

/// Listens for SIGINT and SIGTERM for the rest of the process. Called once,
/// inside the runtime, before any command starts.
pub fn install() -> Result<()> {
    let hook = |kind| {
        signal(kind).map_err(|e| Error::input(format!("cannot install a signal handler: {e}")))
    };
    let mut int = hook(SignalKind::interrupt())?;
    let mut term = hook(SignalKind::terminate())?;
    tokio::spawn(async move {
        loop {
            let got = tokio::select! {
                _ = int.recv() => Signal::Int,
                _ = term.recv() => Signal::Term,
            };
            let first = SHARED
                .signal
                .compare_exchange(0, got.number(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            if first {
                SHARED.token.cancel();
            } else {
                // Asked twice: no more grace for anyone.
                kill_groups();
                std::process::exit(128 + got.number());
            }
        }
    });
    Ok(())
}

/// The signal received, if any.
pub fn received() -> Option<Signal> {
    Signal::from_number(SHARED.signal.load(Ordering::SeqCst))
}

/// Cancelled by the first signal.
pub fn token() -> CancellationToken {
    SHARED.token.clone()
}

/// Refuses to start anything new once a signal has arrived.
pub fn check() -> Result<()> {
    match received() {
        Some(s) => Err(interrupted(s)),
        None => Ok(()),
    }
}

/// The error of a command stopped by a signal before it claimed anything.
pub fn interrupted(s: Signal) -> Error {
    Error::interrupted(
        s,
        format!(
            "interrupted by {}: stopped while waiting for the database, before claiming a \
             deployment; nothing was run",
            s.name()
        ),
    )
    .hint("what the command had completed before the signal is recorded; `shipctl status` shows where things stand")
}

/// While alive, a signal is handled by the supervised step, not by dropping
/// the command.
pub struct Guard(());

pub fn guard() -> Guard {
    SHARED.guards.fetch_add(1, Ordering::SeqCst);
    Guard(())
}

impl Drop for Guard {
    fn drop(&mut self) {
        SHARED.guards.fetch_sub(1, Ordering::SeqCst);
        // What follows a step is a new phase of database work.
        phase();
        SHARED.released.notify_waiters();
    }
}

/// Sets how long one phase of database work may take before the server is
/// presumed gone (lock wait plus a margin).
pub fn set_answer_limit(limit: Duration) {
    if let Ok(mut a) = SHARED.answer.lock() {
        *a = limit;
    }
}

/// How long one phase of database work may take.
pub fn answer_limit() -> Duration {
    SHARED
        .answer
        .lock()
        .map(|a| *a)
        .unwrap_or(Duration::from_secs(35))
}

/// A phase of database work starts (a transaction, a connection): it must be
/// done within the answer limit, or the command is dropped where it waits.
/// Supervised steps bound their own database work and suspend the watchdog.
pub fn phase() {
    phase_for(answer_limit());
}

/// A phase that may legitimately take `limit` (a connect, a migration that
/// waits for another process's).
pub fn phase_for(limit: Duration) {
    if let Ok(mut d) = SHARED.deadline.lock() {
        *d = Some((Instant::now() + limit, limit));
    }
}

/// No database work is expected (watch mode between rounds).
pub fn idle() {
    if let Ok(mut d) = SHARED.deadline.lock() {
        *d = None;
    }
}

/// Resolves when unsupervised database work has outlived its phase: the
/// server or the network stopped answering. Returns the limit that ran out.
pub async fn silent() -> Duration {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let overdue = SHARED
            .deadline
            .lock()
            .ok()
            .and_then(|d| *d)
            .filter(|(at, _)| Instant::now() > *at);
        if let Some((_, limit)) = overdue
            && SHARED.guards.load(Ordering::SeqCst) == 0
        {
            return limit;
        }
    }
}

/// Resolves once a signal has arrived while no supervised step was running
/// to take it in hand: the moment to drop whatever the command waits for.
/// Never resolves for a signal a step handled: the command then ends by
/// itself, with the outcome it recorded.
pub async fn unguarded() -> Signal {
    loop {
        let released = SHARED.released.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        SHARED.token.cancelled().await;
        if SHARED.handled.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if SHARED.guards.load(Ordering::SeqCst) == 0
            && let Some(s) = received()
        {
            return s;
        }
        released.await;
    }
}

/// Resolves `AFTER_SIGNAL` after a signal: the bound on writes that follow one.
pub async fn signal_grace() {
    SHARED.token.cancelled().await;
    tokio::time::sleep(AFTER_SIGNAL).await;
}

/// Registers a child's process group for the second-signal kill.
pub struct GroupTicket(i32);

pub fn track_group(pgid: i32) -> GroupTicket {
    if let Ok(mut groups) = SHARED.groups.lock() {
        groups.push(pgid);
    }
    GroupTicket(pgid)
}

impl Drop for GroupTicket {
    fn drop(&mut self) {
        if let Ok(mut groups) = SHARED.groups.lock() {
            groups.retain(|&g| g != self.0);
        }
    }
}

fn kill_groups() {
    if let Ok(groups) = SHARED.groups.lock() {
        for &pgid in groups.iter() {
            // SAFETY: kill has no memory effects; a negative pid names the group.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// What a lease holds.
#[derive(Debug, Clone)]
pub enum Holding {
    /// A claimed (`en_cours`) deployment and its fencing token.
    Deployment { id: i64, token: i64 },
    /// A pending deployment whose command gates this process runs.
    Gates { id: i64, holder: String },
    /// The leadership of the watchers of a ledger, and its fencing token.
    Leader { token: i64 },
}

/// A lease this process holds, and when it was last confirmed by the database.
#[derive(Debug)]
pub struct Lease {
    pub holding: Holding,
    ttl: Duration,
    /// When the newest renewal that succeeded was sent: the database set the
    /// expiry after this moment, so the lease is surely ours until `+ ttl`.
    confirmed: Instant,
}

/// How a supervised step ended.
#[derive(Debug)]
pub struct Supervised<T> {
    pub out: T,
    /// A signal stopped it.
    pub signal: Option<Signal>,
    /// The lease was taken, or given up unconfirmed: write nothing more.
    pub lost: Option<String>,
}

impl Lease {
    /// A lease taken just now (by a claim or a hold that has committed).
    pub fn taken(holding: Holding, ttl: Duration, at: Instant) -> Lease {
        Lease {
            holding,
            ttl,
            confirmed: at,
        }
    }

    /// Whether the lease may still be ours: less than a TTL since it was last
    /// confirmed.
    pub fn may_be_ours(&self) -> bool {
        self.confirmed.elapsed() < self.ttl
    }

    /// Runs `step` under the lease: renewed every TTL/3 meanwhile; on a signal
    /// or a lost lease the step's token is cancelled and the step is awaited
    /// while it stops its child (the lease still renewed after a signal).
    ///
    /// A lease that cannot be confirmed for three quarters of its TTL is given
    /// up: the child gets SIGTERM then, and SIGKILL just before the database
    /// could hand the lease to someone else, so that two runs never overlap
    /// whatever the child's `kill_grace`. A lease found taken kills at once.
    pub async fn supervise<T>(
        &mut self,
        store: &mut Store,
        step: impl AsyncFnOnce(CancellationToken) -> T,
    ) -> Supervised<T> {
        let _guard = guard();
        let stop = CancellationToken::new();
        let signals = token();
        if received().is_some() {
            // Asked to stop before the step began: the step sees a cancelled
            // token and starts nothing.
            SHARED.handled.store(true, Ordering::SeqCst);
            stop.cancel();
        }
        let mut lost: Option<String> = None;
        if Instant::now() >= give_up_at(self.confirmed, self.ttl) {
            // The lease was spent before the step began (a slow commit): the
            // step starts nothing.
            stop.cancel();
            lost = Some(self.unconfirmed_message());
        }
        let work = step(stop.clone());
        tokio::pin!(work);
        let mut signal = received();
        let mut kill_at: Option<Instant> = None;
        let ttl = self.ttl;
        let confirmed = std::cell::Cell::new(self.confirmed);
        let renewing = std::cell::Cell::new(false);
        let out = {
            let keep = keep(&self.holding, ttl, &mut *store, &confirmed, &renewing);
            tokio::pin!(keep);
            loop {
                let kill = async {
                    match kill_at {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    out = &mut work => break out,
                    end = &mut keep, if lost.is_none() => {
                        stop.cancel();
                        kill_at = Some(match end {
                            LeaseEnd::Taken => Instant::now(),
                            LeaseEnd::Unconfirmed => confirmed.get() + ttl.saturating_sub(FENCE_MARGIN),
                        });
                        lost = Some(match end {
                            LeaseEnd::Taken => self.taken_message(),
                            LeaseEnd::Unconfirmed => self.unconfirmed_message(),
                        });
                    }
                    _ = kill => {
                        // The database may hand the lease on any moment now.
                        kill_groups();
                        kill_at = None;
                    }
                    _ = signals.cancelled(), if signal.is_none() => {
                        SHARED.handled.store(true, Ordering::SeqCst);
                        signal = received();
                        stop.cancel();
                    }
                }
            }
        };
        self.confirmed = confirmed.get();
        if renewing.get() {
            // Dropped mid-renewal: that statement's connection is not reused.
            store.mark_broken();
        }
        Supervised { out, signal, lost }
    }

    /// Confirms the lease with one fenced write (retried on a new connection
    /// while it may still be ours, not after a signal). `Err`: lost,
    /// unconfirmed or interrupted, with why.
    pub async fn confirm(&mut self, store: &mut Store) -> std::result::Result<(), String> {
        let mut tries = 0;
        loop {
            if let Some(s) = received() {
                return Err(format!("interrupted by {}", s.name()));
            }
            let sent = Instant::now();
            let renewal = renew_bounded(&self.holding, self.ttl, self.confirmed, store);
            let renewed = tokio::select! {
                renewed = renewal => renewed,
                _ = SHARED.token.cancelled() => {
                    store.mark_broken();
                    continue;
                }
            };
            match renewed {
                Ok(true) => {
                    self.confirmed = sent;
                    return Ok(());
                }
                Ok(false) => return Err(self.taken_message()),
                Err(_) if self.may_be_ours() => {
                    tries += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff(tries, self.ttl / 3)) => {}
                        _ = SHARED.token.cancelled() => {}
                    }
                }
                Err(_) => return Err(self.unconfirmed_message()),
            }
        }
    }

    fn what(&self) -> String {
        match &self.holding {
            Holding::Deployment { id, .. } => format!("deployment {id}"),
            Holding::Gates { id, .. } => format!("the gates of deployment {id}"),
            Holding::Leader { .. } => "the watch leadership".to_string(),
        }
    }

    fn taken_message(&self) -> String {
        format!(
            "the lease on {} was taken over: it expired and another process recovered it",
            self.what()
        )
    }

    fn unconfirmed_message(&self) -> String {
        format!(
            "the database did not confirm the lease on {} for three quarters of its {} term, \
             so it was given up before it could expire",
            self.what(),
            crate::duration::format(self.ttl)
        )
    }
}

/// How long before the database could hand a lease on that a holder which
/// could not renew it kills its child.
const FENCE_MARGIN: Duration = Duration::from_millis(250);

enum LeaseEnd {
    /// Another process holds it now.
    Taken,
    /// Not confirmed for three quarters of the TTL: given up before it expires.
    Unconfirmed,
}

/// Renews every TTL/3 (sooner after a failure, never past the point of giving
/// up) and returns only when the lease is taken or must be given up.
async fn keep(
    holding: &Holding,
    ttl: Duration,
    store: &mut Store,
    confirmed: &std::cell::Cell<Instant>,
    renewing: &std::cell::Cell<bool>,
) -> LeaseEnd {
    let period = ttl / 3;
    let give_up = |c: Instant| give_up_at(c, ttl);
    let mut next = confirmed.get() + period;
    let mut failures = 0;
    loop {
        tokio::time::sleep_until(next.min(give_up(confirmed.get())).into()).await;
        if Instant::now() >= give_up(confirmed.get()) {
            return LeaseEnd::Unconfirmed;
        }
        let sent = Instant::now();
        renewing.set(true);
        let renewed = renew_bounded(holding, ttl, confirmed.get(), store).await;
        renewing.set(false);
        match renewed {
            Ok(true) => {
                confirmed.set(sent);
                failures = 0;
                next = sent + period;
            }
            Ok(false) => return LeaseEnd::Taken,
            Err(_) => {
                failures += 1;
                next = Instant::now() + backoff(failures, period);
            }
        }
    }
}

/// When a lease not confirmed since `confirmed` is given up: three quarters
/// of its TTL, leaving the last quarter to stop the child before the database
/// could hand the lease on.
fn give_up_at(confirmed: Instant, ttl: Duration) -> Instant {
    confirmed + ttl * 3 / 4
}

/// One renewal, re-opening the connection first if the last one failed,
/// within TTL/3 and within what is left of the lease.
async fn renew_bounded(
    holding: &Holding,
    ttl: Duration,
    confirmed: Instant,
    store: &mut Store,
) -> Result<bool> {
    // Never past the moment the lease is given up: a renewal still in flight
    // then must not delay the child's stop.
    let left = give_up_at(confirmed, ttl).saturating_duration_since(Instant::now());
    let limit = (ttl / 3).min(left).max(Duration::from_millis(50));
    let ttl_ms = ttl.as_millis() as i64;
    let attempt = async {
        store.settle().await?;
        let d = store.d;
        let renewed = match holding {
            Holding::Deployment { id, token } => {
                ledger::heartbeat(store.conn(), d, *id, *token, ttl_ms).await
            }
            Holding::Gates { id, holder } => {
                ledger::renew_gate_hold(store.conn(), d, *id, holder, Some(ttl_ms)).await
            }
            Holding::Leader { token } => {
                ledger::renew_leadership(store.conn(), d, *token, ttl_ms).await
            }
        };
        renewed.map_err(|e| Error::database("renewing the lease", e))
    };
    let result = match tokio::time::timeout(limit, attempt).await {
        Ok(r) => r,
        Err(_) => Err(Error::unreachable(format!(
            "renewing the lease: no answer within {}",
            crate::duration::format(limit)
        ))),
    };
    if result.is_err() {
        // Whatever the failure, the next try starts on a new connection.
        store.mark_broken();
    }
    result
}

/// 250ms, 500ms, 1s, ... capped.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let ms = 250u64.saturating_mul(1 << failures.saturating_sub(1).min(8));
    Duration::from_millis(ms).min(cap.max(Duration::from_millis(100)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(2);
        assert_eq!(backoff(1, cap), Duration::from_millis(250));
        assert_eq!(backoff(2, cap), Duration::from_millis(500));
        assert_eq!(backoff(3, cap), Duration::from_secs(1));
        assert_eq!(backoff(10, cap), cap);
    }
}
