//! Placeholder until the HTTP check lands (branch `http`).
use super::Vars;
use crate::manifest::schema::HttpSpec;
use std::time::Duration;

pub async fn try_once(
    spec: &HttpSpec,
    vars: &Vars<'_>,
    _timeout: Duration,
) -> Result<String, String> {
    Err(format!(
        "GET {}: HTTP checks are not built yet",
        vars.fill(&spec.url, true)
    ))
}
