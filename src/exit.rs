//! Every exit code shipctl returns, in one table (DESIGN §4, §8). Commands
//! report what happened as values; only this file turns them into numbers.

use crate::supervisor::Signal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done, or in sync.
    Done,
    /// Bad input, an unknown id, a database error. Also usage errors: clap's
    /// own 2 would read as "changes pending" in a CI script.
    Error,
    /// `--dry-run` found changes.
    Changes,
    /// `audit verify` found a row changed, removed or inserted: 1, as a
    /// check that fails.
    Altered,
    /// A deployment ran and failed (rolled back), a gate rejected it, or a
    /// signal stopped it after its claim.
    Failed,
    /// Blocked: busy, waiting for approval, pinned, requires not met.
    Blocked,
    /// A signal stopped the command before it claimed anything: 128 + signal,
    /// as shells report it.
    Interrupted(Signal),
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Done => 0,
            Exit::Error | Exit::Altered => 1,
            Exit::Changes => 2,
            Exit::Failed => 3,
            Exit::Blocked => 4,
            Exit::Interrupted(signal) => 128 + signal.number(),
        }
    }

    /// The most serious of two outcomes, for commands that do several things
    /// (reconcile): a failed deployment outranks a stop on a signal (a run the
    /// signal stopped is a failed deployment, exit 3), which outranks a blocked
    /// environment.
    pub fn worst(self, other: Exit) -> Exit {
        fn rank(e: Exit) -> u8 {
            match e {
                Exit::Done => 0,
                Exit::Changes => 1,
                Exit::Blocked => 2,
                Exit::Interrupted(_) => 3,
                Exit::Failed => 4,
                Exit::Error | Exit::Altered => 5,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}
