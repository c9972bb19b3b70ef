//! `shipctl audit --follow` (DESIGN §12): the rows `audit` shows, then each
//! new row as it commits, until SIGINT or SIGTERM (exit 0).
//!
//! It polls by place in each chain, not by id: on PostgreSQL and MariaDB an
//! id taken earlier can commit later, but a chain's counter stays locked until
//! its row commits, so a chain's rows become visible in the order of their
//! places and none is skipped. A lost connection is opened again with
//! back-off, said on stderr, and following goes on from where it was.

use crate::engine::Engine;
use crate::error::{DbContext, Result};
use crate::exit::Exit;
use crate::render::Printer;
use crate::store::ledger::{self, AuditFilter};
use crate::supervisor;
use std::time::Duration;

/// How often the log is read for new rows.
const POLL: Duration = Duration::from_millis(300);
/// The longest wait between two attempts to reach a lost database.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub async fn run(engine: &mut Engine, filter: &AuditFilter, printer: &Printer) -> Result<Exit> {
    let stop = supervisor::token();
    let (log, mut cursor) = tokio::select! {
        read = engine.audit_to_follow(filter) => read?,
        () = stop.cancelled() => return Ok(Exit::Done),
    };
    if printer.is_stream() {
        for row in &log.rows {
            printer.audit_row(row);
        }
    } else {
        printer.emit(&log);
        printer.note("following the audit log: new rows as they commit (Ctrl-C to stop)");
    }
    let place = engine.store.url().redacted().to_string();
    let mut failures: u32 = 0;
    loop {
        // Between polls no database work is under way: the watchdog rests.
        supervisor::idle();
        let wait = if failures == 0 {
            POLL
        } else {
            supervisor::backoff(failures, MAX_BACKOFF)
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return Ok(Exit::Done),
        }
        let d = engine.store.d;
        let polled = tokio::select! {
            polled = engine.store.bounded("following the audit log", async |store| {
                ledger::audit_after(store.conn(), d, filter, &mut cursor)
                    .await
                    .db("reading new audit rows")
            }) => polled,
            () = stop.cancelled() => return Ok(Exit::Done),
        };
        match polled {
            Ok(rows) => {
                if failures > 0 {
                    printer.notice(&format!("audit --follow: reading {place} again"));
                    failures = 0;
                }
                for row in &rows {
                    printer.audit_row(row);
                }
            }
            Err(e) => {
                failures += 1;
                engine.store.mark_broken();
                printer.notice(&format!(
                    "audit --follow: cannot read {place}: {}; trying again in {}",
                    e.message,
                    crate::duration::format(supervisor::backoff(failures, MAX_BACKOFF))
                ));
            }
        }
    }
}
