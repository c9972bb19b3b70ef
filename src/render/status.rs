//! `status` of every environment: the body `shipctl status --output json`
//! prints and the watch's `GET /api/status` serves (DESIGN §11), one shape.

use super::text::esc;
use super::{Style, Text};
use crate::engine::EnvStatus;
use serde::Serialize;

#[derive(Serialize)]
pub struct AllStatus {
    pub environments: Vec<EnvStatus>,
    /// The watcher that applies the manifests, when `reconcile --watch` runs.
    pub leader: Option<crate::store::ledger::Leader>,
}

impl Text for AllStatus {
    fn text(&self, s: &Style) -> String {
        let mut out = self.environments.text(s);
        if let Some(l) = &self.leader {
            out.push_str(&format!(
                "\nwatch leader  {} since {} UTC{}\n",
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
        out
    }
}
