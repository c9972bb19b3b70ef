//! Aggregates of the ledger for the watch's `/metrics` (DESIGN §11): each one
//! grouped statement, whatever the ledger's size, so a scrape costs the same
//! on the first day and after 100,000 deployments.

use super::Dialect;
use super::ledger::Res;
use sqlx::{AnyConnection, Row};

/// How many deployments are in each state, per environment.
pub struct StateCount {
    pub env: String,
    pub state: String,
    pub count: i64,
}

pub async fn deployment_counts(c: &mut AnyConnection, d: Dialect) -> Res<Vec<StateCount>> {
    let rows = sqlx::query(d.sql(
        "SELECT e.nom AS env, d.etat AS etat, COUNT(*) AS n \
         FROM deploiements d JOIN environnements e ON e.id = d.id_env \
         GROUP BY e.nom, d.etat",
    ))
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StateCount {
                env: r.try_get("env")?,
                state: r.try_get("etat")?,
                count: r.try_get("n")?,
            })
        })
        .collect()
}

/// Upper bounds (seconds) of the duration histogram's buckets: a simulated
/// run takes a second, a real one minutes.
pub const BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The durations of an environment's finished deployments, bucketed.
pub struct Durations {
    pub env: String,
    pub count: i64,
    pub sum: f64,
    /// Cumulative: deployments that took at most `BUCKETS[i]`.
    pub buckets: Vec<i64>,
}

/// How long finished deployments took, per environment: those that ran (a
/// `deployment.started` audit row) and ended (`réussi`, `échec`, `annulé`),
/// from their last start (the last attempt's claim) to the row's last change
/// of state (its finish). The ledger keeps no start
/// time on the deployment itself; the audit log does, in the same
/// transaction as the claim. Bucketed by the database, in one statement.
pub async fn durations(c: &mut AnyConnection, d: Dialect) -> Res<Vec<Durations>> {
    let buckets: String = BUCKETS
        .iter()
        .enumerate()
        .map(|(i, b)| format!(", COUNT(CASE WHEN x.s <= {b:?} THEN 1 END) AS b{i}"))
        .collect();
    let sql = format!(
        "SELECT e.nom AS env, COUNT(*) AS n, SUM(x.s) AS total{buckets} \
         FROM (SELECT d.id_env, {{span_s:st.started,d.date_deploiement}} AS s \
               FROM deploiements d \
               JOIN (SELECT a.id_deploiement, MAX(a.date_log) AS started FROM audit_logs a \
                     WHERE a.action = 'deployment.started' GROUP BY a.id_deploiement) st \
                 ON st.id_deploiement = d.id \
               WHERE d.etat IN ('réussi', 'échec', 'annulé')) x \
         JOIN environnements e ON e.id = x.id_env \
         GROUP BY e.nom"
    );
    let rows = sqlx::query(d.sql(&sql)).fetch_all(c).await?;
    rows.iter()
        .map(|r| {
            Ok(Durations {
                env: r.try_get("env")?,
                count: r.try_get("n")?,
                sum: r.try_get::<Option<f64>, _>("total")?.unwrap_or(0.0),
                buckets: (0..BUCKETS.len())
                    .map(|i| r.try_get(format!("b{i}").as_str()))
                    .collect::<Res<Vec<i64>>>()?,
            })
        })
        .collect()
}
