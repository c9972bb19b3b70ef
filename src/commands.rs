//! Resolves settings, opens the ledger and runs one command. Returns the exit
//! code of a command that completed; errors go back to `main`.

use crate::cli::{Cli, Command, SimArgs};
use crate::engine::{Engine, EnvStatus, Who};
use crate::error::Result;
use crate::executor::{Executor, Simulation};
use crate::model::Env;
use crate::render::{Printer, Style, Text};
use crate::store::{DbUrl, Store, url::DEFAULT_URL};
use serde::Serialize;

pub async fn run(cli: Cli, printer: &mut Printer) -> Result<i32> {
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
        Command::Unpin { env } => {
            printer.emit(&engine.unpin(env).await?);
            Ok(0)
        }
    }
}

fn executor(sim: &SimArgs) -> Executor {
    Executor::Simulate(Simulation {
        duration: sim.duration,
        failure_rate: sim.failure_rate,
        seed: sim.seed,
    })
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
