//! `status` of every environment: the body `shipctl status --output json`
//! prints and the watch's `GET /api/status` serves (DESIGN §11), one shape.

use super::text::esc;
use super::{Style, Text};
use crate::engine::EnvStatus;
use serde::Serialize;

#[derive(Serialize)]
pub struct AllStatus {
    /// The ledger's random id (DESIGN §12), named by signed approvals and saved plans.
    pub ledger_id: String,
    pub environments: Vec<EnvStatus>,
    /// The watcher that applies the manifests, when `reconcile --watch` runs.
    pub leader: Option<crate::store::ledger::Leader>,
    /// The webhooks' outbox (DESIGN §11).
    pub notifications: crate::store::outbox::Backlog,
}

impl Text for AllStatus {
    fn text(&self, s: &Style) -> String {
        let mut out = self.environments.text(s);
        out.push_str(&format!("\nledger        {}\n", esc(&self.ledger_id)));
        if let Some(l) = &self.leader {
            out.push_str(&format!(
                "watch leader  {} since {} UTC{}\n",
                esc(&l.holder),
                l.since.as_deref().unwrap_or("?"),
                if l.expired {
                    format!(
                        "; its lease expired at {} UTC: a standby takes over",
                        l.expires_at.as_deref().unwrap_or("?")
                    )
                } else {
                    String::new()
                }
            ));
        }
        let b = &self.notifications;
        if b.pending > 0 || b.given_up > 0 {
            let oldest = b
                .oldest_pending_age_s
                .map(|a| {
                    format!(
                        ", oldest queued {} ago",
                        crate::duration::format(std::time::Duration::from_secs(a.max(0) as u64))
                    )
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "notifications: {} pending{oldest}, {} given up\n",
                b.pending, b.given_up
            ));
        }
        out
    }
}
