//! What "executing a deployment" means: a simulation (sleep, then fail at a
//! given rate) or a real command. The engine stops a run by cancelling its token
//! and awaiting it; dropping the future still stops it, as a last resort.

pub mod command;

pub use command::{DEFAULT_KILL_GRACE, Job, Ran, Spec};

use crate::manifest::schema::ExecutorSpec;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::Serialize;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
    /// Between SIGTERM and SIGKILL when the run or the rollback is stopped.
    #[serde(serialize_with = "ser_duration")]
    pub kill_grace: Duration,
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
                    kill_grace: c.kill_grace.map_or(DEFAULT_KILL_GRACE, |g| g.0),
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

    /// Runs the deployment until it ends or `stop` is cancelled (a command then
    /// gets SIGTERM, its grace period, SIGKILL). `Ok` carries the output worth
    /// keeping, `Err` what went wrong; both end up in the audit log.
    pub async fn run(&self, job: &Job, stop: &CancellationToken) -> Ran {
        match self {
            Executor::Simulate(sim) => tokio::select! {
                ran = sim.run(job) => ran.map(|()| String::new()),
                () = stop.cancelled() => Err("interrupted: the simulation was stopped".into()),
            },
            Executor::Command(c) => {
                let spec = Spec {
                    argv: &c.run,
                    timeout: c.timeout,
                    kill_grace: c.kill_grace,
                    echo: true,
                };
                command::run(&spec, job, stop).await
            }
        }
    }

    /// The command that restores the previous release after a failed run.
    pub fn rollback(&self) -> Option<Spec<'_>> {
        match self {
            Executor::Command(CommandRun {
                rollback: Some(argv),
                timeout,
                kill_grace,
                ..
            }) => Some(Spec {
                argv,
                timeout: *timeout,
                kill_grace: *kill_grace,
                echo: true,
            }),
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
                "command {:?} ({}kill grace {})",
                c.run,
                c.timeout
                    .map(|t| format!("timeout {}, ", crate::duration::format(t)))
                    .unwrap_or_default(),
                crate::duration::format(c.kill_grace)
            ),
        }
    }
}

impl Simulation {
    /// The outcome is drawn before the sleep, so a given seed always gives the
    /// same outcome however long the run takes.
    async fn run(&self, job: &Job) -> Result<(), String> {
        let fails = match self.seed {
            Some(seed) => StdRng::seed_from_u64(draw_seed(seed, job.deploy_id, job.attempt))
                .random_bool(self.failure_rate),
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

/// One seed per (seed, deployment, attempt): a run is reproducible, yet each
/// environment and each retry gets its own draw, so a failing draw does not
/// fail every retry. SplitMix64's finaliser, spelled out here so that the draws
/// do not change with a hasher's implementation.
fn draw_seed(seed: u64, deploy_id: i64, attempt: i64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    mix(mix(mix(seed) ^ deploy_id as u64) ^ attempt as u64)
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
        let job = |deploy_id, attempt| Job {
            deploy_id,
            attempt,
            ..Job::default()
        };
        for seed in 0..20 {
            let first = sim(0.5, seed).run(&job(3, 1)).await.is_ok();
            assert_eq!(sim(0.5, seed).run(&job(3, 1)).await.is_ok(), first);
            assert!(sim(0.0, seed).run(&job(3, 1)).await.is_ok());
            assert!(sim(1.0, seed).run(&job(3, 1)).await.is_err());
        }
    }

    #[tokio::test]
    async fn each_deployment_and_attempt_gets_its_own_draw() {
        let sim = Simulation {
            duration: Duration::ZERO,
            failure_rate: 0.5,
            seed: Some(42),
        };
        let mut outcomes = Vec::new();
        for deploy_id in 1..=8 {
            for attempt in 1..=3 {
                let job = Job {
                    deploy_id,
                    attempt,
                    ..Job::default()
                };
                outcomes.push(sim.run(&job).await.is_ok());
            }
        }
        // 24 draws at one in two: all equal would be a one in 8 million chance.
        assert!(outcomes.iter().any(|ok| *ok) && outcomes.iter().any(|ok| !*ok));
        // Seeds that differ only by the deployment or the attempt do not collide.
        let seeds: std::collections::HashSet<u64> = (1..=50)
            .flat_map(|d| (1..=5).map(move |a| draw_seed(7, d, a)))
            .collect();
        assert_eq!(seeds.len(), 250);
        assert_ne!(draw_seed(7, 1, 2), draw_seed(7, 2, 1));
    }

    #[tokio::test]
    async fn a_stopped_simulation_ends_at_once() {
        let exec = Executor::Simulate(Simulation {
            duration: Duration::from_secs(3600),
            failure_rate: 0.0,
            seed: Some(1),
        });
        let stop = CancellationToken::new();
        stop.cancel();
        let ran = tokio::time::timeout(Duration::from_secs(5), exec.run(&Job::default(), &stop))
            .await
            .expect("it ended at once");
        assert!(ran.is_err_and(|e| e.starts_with("interrupted")));
    }
}
