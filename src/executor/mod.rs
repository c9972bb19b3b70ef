//! What "executing a deployment" means. Today: a simulation (sleep, then fail at a
//! given rate). The engine drops the future to stop a run, so an executor must
//! stop its work when dropped.

use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::Serialize;
use std::time::Duration;

pub const DEFAULT_DURATION: Duration = Duration::from_secs(1);
pub const DEFAULT_FAILURE_RATE: f64 = 0.2;

#[derive(Debug, Clone, Serialize)]
pub struct Simulation {
    #[serde(serialize_with = "ser_duration")]
    pub duration: Duration,
    pub failure_rate: f64,
    pub seed: Option<u64>,
}

impl Default for Simulation {
    fn default() -> Self {
        Simulation {
            duration: DEFAULT_DURATION,
            failure_rate: DEFAULT_FAILURE_RATE,
            seed: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    Simulate(Simulation),
}

impl Executor {
    /// Runs the deployment; `Err` carries what went wrong, for the audit log.
    pub async fn run(&self) -> Result<(), String> {
        match self {
            Executor::Simulate(sim) => sim.run().await,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Executor::Simulate(s) => format!(
                "simulation ({}, failure rate {}{})",
                crate::duration::format(s.duration),
                s.failure_rate,
                s.seed.map(|n| format!(", seed {n}")).unwrap_or_default()
            ),
        }
    }
}

impl Simulation {
    /// The outcome is drawn before the sleep, so a given seed always gives the
    /// same outcome however long the run takes.
    async fn run(&self) -> Result<(), String> {
        let fails = match self.seed {
            Some(seed) => StdRng::seed_from_u64(seed).random_bool(self.failure_rate),
            None => rand::rng().random_bool(self.failure_rate),
        };
        tokio::time::sleep(self.duration).await;
        if fails {
            Err(format!(
                "simulated failure (failure rate {})",
                self.failure_rate
            ))
        } else {
            Ok(())
        }
    }
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::duration::format(*d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn seeded_outcome_is_stable_and_rates_are_honoured() {
        let sim = |rate, seed| Simulation {
            duration: Duration::ZERO,
            failure_rate: rate,
            seed: Some(seed),
        };
        for seed in 0..20 {
            let first = sim(0.5, seed).run().await.is_ok();
            assert_eq!(sim(0.5, seed).run().await.is_ok(), first);
            assert!(sim(0.0, seed).run().await.is_ok());
            assert!(sim(1.0, seed).run().await.is_err());
        }
    }
}
