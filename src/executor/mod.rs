//! What "executing a deployment" means. Today: a simulation (sleep, then fail at a
//! given rate). The engine drops the future to stop a run, so an executor must
//! stop its work when dropped.

pub mod command;

pub use command::{Job, Ran};

use crate::manifest::schema::ExecutorSpec;
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

/// Simulation controls given on the command line. Any of them replaces the
/// environment's configured executor by a simulation.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub duration: Option<Duration>,
    pub failure_rate: Option<f64>,
    pub seed: Option<u64>,
}

impl Overrides {
    pub fn given(&self) -> bool {
        self.duration.is_some() || self.failure_rate.is_some() || self.seed.is_some()
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    Simulate(Simulation),
    Command(CommandRun),
}

/// A real deploy script, from the environment's `executor: command:`.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRun {
    pub run: Vec<String>,
    pub rollback: Option<Vec<String>>,
    #[serde(serialize_with = "ser_opt_duration")]
    pub timeout: Option<Duration>,
}

impl Executor {
    /// The executor an environment runs: its configured one (manifests), with
    /// command-line overrides on top; a 1s simulation failing one time in five
    /// when nothing is configured.
    pub fn resolve(spec: Option<&ExecutorSpec>, o: &Overrides) -> Result<Executor, String> {
        let mut sim = Simulation::default();
        match spec {
            Some(ExecutorSpec {
                simulate: Some(s), ..
            }) => {
                if let Some(d) = s.duration {
                    sim.duration = d.0;
                }
                if let Some(r) = s.failure_rate {
                    sim.failure_rate = r;
                }
            }
            Some(ExecutorSpec {
                command: Some(c), ..
            }) if !o.given() => {
                return Ok(Executor::Command(CommandRun {
                    run: c.run.clone(),
                    rollback: c.rollback.clone(),
                    timeout: c.timeout.map(|t| t.0),
                }));
            }
            _ => {}
        }
        if let Some(d) = o.duration {
            sim.duration = d;
        }
        if let Some(r) = o.failure_rate {
            sim.failure_rate = r;
        }
        sim.seed = o.seed;
        Ok(Executor::Simulate(sim))
    }

    /// Runs the deployment. `Ok` carries the output worth keeping, `Err` what
    /// went wrong; both end up in the audit log.
    pub async fn run(&self, job: &Job) -> Ran {
        match self {
            Executor::Simulate(sim) => sim.run().await.map(|()| String::new()),
            Executor::Command(c) => command::run(&c.run, job, c.timeout, true).await,
        }
    }

    /// The command that restores the previous release after a failed run.
    pub fn rollback(&self) -> Option<(&[String], Option<Duration>)> {
        match self {
            Executor::Command(CommandRun {
                rollback: Some(argv),
                timeout,
                ..
            }) => Some((argv, *timeout)),
            _ => None,
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
            Executor::Command(c) => format!(
                "command {:?}{}",
                c.run,
                c.timeout
                    .map(|t| format!(" (timeout {})", crate::duration::format(t)))
                    .unwrap_or_default()
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

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
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
