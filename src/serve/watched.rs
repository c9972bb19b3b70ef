//! What the watch loop tells its HTTP endpoints after each round: when the
//! last one reached the ledger, how rounds fail, where each environment
//! stands, and whether this watcher applies (leader). A mutex held for a few
//! assignments: the loop never waits on a request.

use crate::engine::{EnvOutcome, Keys, Reconciled};
use crate::model::Env;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone)]
pub struct Watched(Arc<Mutex<State>>);

#[derive(Clone)]
pub struct State {
    /// The end of the last round that reached the ledger.
    pub last_round: Option<jiff::Timestamp>,
    /// Since when rounds fail (the first failure after a good round).
    pub failing_since: Option<Instant>,
    pub last_error: Option<String>,
    pub errors_total: u64,
    /// The environments of the last round that reached the ledger.
    pub envs: Vec<EnvRound>,
    /// Whether this watcher applies changes (leader election, DESIGN §11,
    /// sets it; until then every watcher applies).
    pub leader: bool,
    /// The last good manifests' gates: approvers' keys for the readings.
    pub keys: Arc<Keys>,
}

/// An environment as the last round left it.
#[derive(Clone)]
pub struct EnvRound {
    pub env: Env,
    /// Its live release is the desired one.
    pub in_sync: bool,
    /// Why it is not, when the round said (requires, window, hold, pin, busy).
    pub note: Option<String>,
}

impl EnvRound {
    pub fn of(result: &Reconciled) -> Vec<EnvRound> {
        result
            .environments
            .iter()
            .map(|e| {
                let (in_sync, note) = match &e.outcome {
                    EnvOutcome::InSync | EnvOutcome::Deployed { .. } => (true, None),
                    EnvOutcome::Pinned { pinned_to } => {
                        (false, Some(format!("pinned to {pinned_to}")))
                    }
                    EnvOutcome::Busy { message }
                    | EnvOutcome::Blocked { message }
                    | EnvOutcome::Closed { message, .. }
                    | EnvOutcome::Held { message, .. }
                    | EnvOutcome::Unrecorded { message }
                    | EnvOutcome::Stale { message }
                    | EnvOutcome::Interrupted { message, .. } => (false, Some(message.clone())),
                    EnvOutcome::Skipped { reason } => (false, Some(reason.clone())),
                    EnvOutcome::Failed { .. } => (false, Some("its deployment failed".into())),
                };
                EnvRound {
                    env: e.env,
                    in_sync,
                    note,
                }
            })
            .collect()
    }
}

impl Default for Watched {
    fn default() -> Watched {
        Watched(Arc::new(Mutex::new(State {
            last_round: None,
            failing_since: None,
            last_error: None,
            errors_total: 0,
            envs: Vec::new(),
            leader: true,
            keys: Arc::new(Keys::Unavailable(
                "the watch has read no valid manifests yet".into(),
            )),
        })))
    }
}

impl Watched {
    fn with(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }

    /// A round reached the ledger and ended normally.
    pub fn round_done(&self, envs: Vec<EnvRound>) {
        self.with(|s| {
            s.last_round = Some(jiff::Timestamp::now());
            s.failing_since = None;
            s.last_error = None;
            s.envs = envs;
        });
    }

    /// A round failed on the database (or on a conflict it reported).
    pub fn round_failed(&self, error: String) {
        self.with(|s| {
            s.failing_since.get_or_insert_with(Instant::now);
            s.last_error = Some(error);
            s.errors_total += 1;
        });
    }

    /// The manifests loaded: where the readings take approvers' keys from.
    pub fn set_keys(&self, keys: Keys) {
        self.with(|s| s.keys = Arc::new(keys));
    }

    pub fn keys(&self) -> Arc<Keys> {
        self.0
            .lock()
            .map(|s| Arc::clone(&s.keys))
            .unwrap_or_default()
    }

    pub fn set_leader(&self, leader: bool) {
        self.with(|s| s.leader = leader);
    }

    pub fn state(&self) -> Option<State> {
        self.0.lock().ok().map(|s| s.clone())
    }
}
