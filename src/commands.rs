//! Resolves settings, opens the ledger and runs one command. Returns the exit
//! code of a command that completed; errors go back to `main`.

use crate::cli::{Cli, Command, Output, SimArgs};
use crate::engine::{Engine, EnvStatus, Who};
use crate::error::{Error, Result};
use crate::executor::{Executor, Simulation};
use crate::manifest::{self, Desired};
use crate::model::Env;
use crate::render::{Printer, Style, Text};
use crate::store::{DbUrl, Store, url::DEFAULT_URL};
use serde::Serialize;

pub async fn run(cli: Cli, printer: &mut Printer) -> Result<i32> {
    if cli.output == Output::Markdown {
        return Err(
            Error::input("--output markdown is for `shipctl reconcile --dry-run`")
                .hint("use --output text or --output json with this command"),
        );
    }
    // Offline: no database is opened, so pull requests from forks need no credentials.
    if let Command::Check { manifests } = &cli.command {
        let desired = manifest::load(&manifests.manifests)?;
        printer.emit(&Checked {
            manifests: manifests.manifests.display().to_string(),
            desired,
        });
        return Ok(0);
    }
    let url = DbUrl::parse(cli.database_url.as_deref().unwrap_or(DEFAULT_URL))?;
    printer.hide(url.secrets());
    let store = Store::open(&url).await?;
    let mut engine = Engine::new(store, Who::from_process(cli.lease_ttl));

    match cli.command {
        Command::Release(args) => {
            if let (Some(version), Some(tag)) = (args.create, args.tag) {
                printer.emit(&engine.create_release(&version, &tag).await?);
            } else {
                printer.emit(&engine.releases().await?);
            }
            Ok(0)
        }
        Command::Deploy { release, env } => {
            printer.emit(&engine.plan(release, env).await?);
            Ok(0)
        }
        Command::Validate { deploy_id, sim } => {
            let execution = engine.validate(deploy_id, &executor(&sim)).await?;
            printer.emit(&execution);
            Ok(execution.exit_code())
        }
        Command::Rollback { deploy_id, sim } => {
            let report = engine.rollback(deploy_id, &executor(&sim)).await?;
            printer.emit(&report);
            Ok(match &report {
                crate::engine::RollbackReport::Cancelled { .. } => 0,
                crate::engine::RollbackReport::Restored(exec) => exec.exit_code(),
            })
        }
        Command::Status { env: Some(env) } => {
            let mut all = engine.status(&[env]).await?;
            if let Some(one) = all.pop() {
                printer.emit(&one);
            }
            Ok(0)
        }
        Command::Status { env: None } => {
            let environments = engine.status(&Env::ALL).await?;
            printer.emit(&AllStatus { environments });
            Ok(0)
        }
        Command::Check { .. } => unreachable!("handled before the database is opened"),
        Command::Unpin { env } => {
            printer.emit(&engine.unpin(env).await?);
            Ok(0)
        }
    }
}

fn executor(sim: &SimArgs) -> Executor {
    let default = Simulation::default();
    Executor::Simulate(Simulation {
        duration: sim.duration.unwrap_or(default.duration),
        failure_rate: sim.failure_rate.unwrap_or(default.failure_rate),
        seed: sim.seed,
    })
}

#[derive(Serialize)]
struct Checked {
    manifests: String,
    #[serde(flatten)]
    desired: Desired,
}

impl Text for Checked {
    fn text(&self, s: &Style) -> String {
        let d = &self.desired;
        let mut out = format!(
            "{} {} is valid: {} release(s), {} managed environment(s)\n",
            s.green("✓"),
            self.manifests,
            d.releases.len(),
            d.environments.len()
        );
        for (env, spec) in &d.environments {
            let mut line = format!("  {:<8} {}", env.as_str(), spec.release);
            if let Some(r) = spec.policy.requires {
                line.push_str(&format!("  requires {r}"));
            }
            let gates: Vec<&str> = spec.policy.gates.iter().map(|g| g.name.as_str()).collect();
            if !gates.is_empty() {
                line.push_str(&format!("  gates: {}", gates.join(", ")));
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

#[derive(Serialize)]
struct AllStatus {
    environments: Vec<EnvStatus>,
}

impl Text for AllStatus {
    fn text(&self, s: &Style) -> String {
        self.environments.text(s)
    }
}
