//! Leases: a running deployment is held by one process until its lease expires.
//! Any writing command that meets an expired lease in the environment it works
//! on ends that deployment as `échec`, naming the holder that vanished.

use crate::error::{DbContext, Result};
use crate::model::Etat;
use crate::store::ledger;
use crate::store::{Dialect, Tx};

use super::{Who, record};

/// Returns the id of the deployment recovered, if there was one. The caller holds
/// the environment lock.
pub async fn recover_stale(
    tx: &mut Tx<'_>,
    d: Dialect,
    who: &Who,
    env_id: i64,
) -> Result<Option<i64>> {
    let Some(dep) = ledger::in_progress(tx, d, env_id)
        .await
        .db("reading the deployment in progress")?
    else {
        return Ok(None);
    };
    if !dep.lease_stale {
        return Ok(None);
    }
    let ctx = "recovering an expired lease";
    if !ledger::transition(tx, d, dep.id, Etat::EnCours, Etat::Echec)
        .await
        .db(ctx)?
    {
        return Ok(None);
    }
    let holder = dep.lease_holder.as_deref().unwrap_or("unknown");
    let expired = dep.lease_expires_at.as_deref().unwrap_or("unknown");
    record(
        tx,
        d,
        who.on(
            dep.id,
            "lease.expired",
            (Some(Etat::EnCours), Some(Etat::Echec)),
            format!(
                "lease held by {holder} expired at {expired} UTC without a heartbeat \
                 (the process crashed or was killed); recovered by {}",
                who.holder
            ),
        ),
    )
    .await?;
    Ok(Some(dep.id))
}
