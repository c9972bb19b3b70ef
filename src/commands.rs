//! Resolves settings, opens the ledger and runs one command. Returns the exit
//! code of a command that completed; errors go back to `main`.

use crate::cli::{Cli, Command, Output, ReconcileArgs, SimArgs};
use crate::engine::{self, Decision, Engine, Who};
use crate::error::{Error, Result};
use crate::executor::Overrides;
use crate::exit::Exit;
use crate::manifest::{self, Desired};
use crate::model::Env;
use crate::plan::{self, Actual};
use crate::render::{AllStatus, DryRun, Ledger, ReconcileView};
use crate::render::{Printer, Style, Text};
use crate::store::ledger::AuditFilter;
use crate::store::{DbUrl, Limits, Store, url::DEFAULT_URL};
use crate::supervisor;
use serde::Serialize;

pub async fn run(cli: Cli, printer: &mut Printer) -> Result<Exit> {
    let dry_run_asked = matches!(&cli.command, Command::Reconcile(a) if a.dry_run);
    if cli.output == Output::Markdown && !dry_run_asked {
        return Err(
            Error::input("--output markdown is for `shipctl reconcile --dry-run`")
                .hint("use --output text or --output json with this command"),
        );
    }
    check_streams(&cli)?;
    // Offline: no database is opened, so pull requests from forks need no credentials.
    if let Command::Check { manifests } = &cli.command {
        let desired = manifest::load(&manifests.manifests)?;
        printer.emit(&Checked::new(
            manifests.manifests.display().to_string(),
            desired,
        ));
        return Ok(Exit::Done);
    }
    // Manifests are read before the database is touched: invalid ones change nothing.
    let desired = match &cli.command {
        Command::Reconcile(a) if !a.watch => Some(manifest::load(&a.manifests.manifests)?),
        _ => None,
    };
    let lease_ttl = cli.db.lease_ttl().map_err(|m| {
        Error::input(format!("invalid lease duration: {m}"))
            .hint("write a duration such as 30s or 2m, at least 300ms")
    })?;
    let url = DbUrl::parse(cli.db.database_url().as_deref().unwrap_or(DEFAULT_URL))?;
    supervisor::install()?;
    let who = Who::from_process(lease_ttl);
    if writes(&cli.command) {
        who.check_actor()?;
    }
    let limits = Limits {
        connect: cli.db.connect_timeout,
        lock: cli.db.lock_timeout,
        // Leaked once: the session name lives as long as the process.
        holder: Box::leak(format!("shipctl {}", who.holder).into_boxed_str()),
    };
    supervisor::set_answer_limit(limits.answer());
    let follow = matches!(&cli.command, Command::Audit(a) if a.follow);
    let watch = matches!(&cli.command, Command::Reconcile(a) if a.watch);
    if watch {
        printer.stream();
    }
    // Bound before the ledger is opened: a port in use changes nothing.
    let listener = match &cli.command {
        Command::Reconcile(a) if a.watch => match a.listen {
            Some(addr) => Some(listen(addr, printer).await?),
            None => None,
        },
        _ => None,
    };
    let work = async {
        if let (Command::Reconcile(a), Some(desired)) = (&cli.command, &desired)
            && a.dry_run
        {
            return dry_run(&url, limits, a, desired, cli.output, printer).await;
        }
        if cli.output == Output::Text && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            crate::progress::enable();
        }
        // Commands that only read never create, migrate or alter the ledger (DESIGN §8).
        let store = if reads_only(&cli.command) {
            Store::open_read(&url, limits).await?
        } else {
            Store::open(&url, limits).await?
        };
        let mut engine = Engine::new(store, who);
        let result = execute(cli.command, desired, listener, &mut engine, printer).await;
        // Closed, not dropped: SQLite checkpoints its WAL, servers see a clean
        // goodbye. Bounded: a server that stopped answering gets no goodbye.
        let _guard = supervisor::guard();
        engine.store.close().await;
        result
    };
    // Watch mode handles signals itself, between rounds and inside them, and
    // so does `audit --follow`, between polls.
    if watch || follow {
        return work.await;
    }
    // A signal outside a supervised step drops the command where it waits: it
    // has claimed nothing, and the server rolls back what it held.
    tokio::select! {
        biased;
        result = work => result,
        signal = supervisor::unguarded() => Err(supervisor::interrupted(signal)),
        limit = supervisor::silent() => Err(Error::unreachable(format!(
            "the database at {} did not answer within {}",
            url.redacted(),
            crate::duration::format(limit)
        ))
        .hint("check the server and the network. No deployment was claimed or run by the \
               step that waited; --lock-timeout sets how long shipctl waits for locks and \
               statements")),
    }
}

/// `--output jsonl` is a stream of audit rows; `audit --follow` prints rows
/// one at a time, which a single JSON document cannot be.
fn check_streams(cli: &Cli) -> Result<()> {
    let (audit, follow) = match &cli.command {
        Command::Audit(a) => (a.verify.is_none(), a.follow),
        _ => (false, false),
    };
    if cli.output == Output::Jsonl && !audit {
        return Err(Error::input(
            "--output jsonl is for `shipctl audit` (one audit row per line, with or without --follow)",
        )
        .hint("use --output json with this command: it prints one JSON object"));
    }
    if follow && cli.output == Output::Json {
        return Err(Error::input(
            "`audit --follow` prints rows as they commit: JSON comes as JSON Lines",
        )
        .hint("use --output jsonl (one row per line) or --output text"));
    }
    Ok(())
}

/// Binds `--listen`; says where, and warns when it is not loopback only.
async fn listen(addr: std::net::SocketAddr, printer: &Printer) -> Result<crate::serve::Listener> {
    let listener = crate::serve::bind(addr).await?;
    printer.notice(&format!("watch: serving http://{}/", listener.addr));
    if !addr.ip().is_loopback() {
        printer.notice(&format!(
            "warning: {} is reachable from other machines and the endpoints have no \
             authentication: anyone who can reach it sees the ledger's status and audit log",
            listener.addr
        ));
    }
    Ok(listener)
}

/// Whether the command may write the ledger (and so records an actor).
fn writes(command: &Command) -> bool {
    let offline_or_dry = match command {
        Command::Check { .. } => true,
        Command::Reconcile(a) => a.dry_run,
        _ => false,
    };
    !offline_or_dry && !reads_only(command)
}

/// Commands that only read the ledger (`reconcile --dry-run` has its own path).
fn reads_only(command: &Command) -> bool {
    match command {
        Command::Status { .. } | Command::History { .. } | Command::Audit { .. } => true,
        // The same test as `execute`: without both, `release` lists.
        Command::Release(a) => a.create.is_none() || a.tag.is_none(),
        _ => false,
    }
}

async fn execute(
    command: Command,
    desired: Option<Desired>,
    listener: Option<crate::serve::Listener>,
    engine: &mut Engine,
    printer: &Printer,
) -> Result<Exit> {
    match command {
        Command::Release(args) => {
            if let (Some(version), Some(tag)) = (args.create, args.tag) {
                printer.emit(&engine.create_release(&version, &tag).await?);
            } else {
                printer.emit(&crate::render::Releases {
                    releases: engine.releases().await?,
                });
            }
            Ok(Exit::Done)
        }
        Command::Deploy { release, env } => {
            printer.emit(&engine.plan(release, env).await?);
            Ok(Exit::Done)
        }
        Command::Validate {
            deploy_id,
            override_window: _,
            reason,
            sim,
        } => {
            let reason = reason
                .as_deref()
                .map(|r| crate::model::check_reason("--reason", r))
                .transpose()
                .map_err(|m| {
                    Error::input(format!("cannot override the window: {m}"))
                        .hint("say why in a sentence, on one line: it goes to the audit log")
                })?;
            let validated = engine
                .validate_in_window(deploy_id, &overrides(&sim), reason.as_deref())
                .await?;
            match validated {
                engine::Validated::Ran(execution) => {
                    printer.emit(execution.as_ref());
                    Ok(execution.exit())
                }
                engine::Validated::Refused(refused) => Err(refused.into_error()),
            }
        }
        Command::Rollback { deploy_id, sim } => {
            let report = engine.rollback(deploy_id, &overrides(&sim)).await?;
            printer.emit(&report);
            Ok(match &report {
                crate::engine::RollbackReport::Cancelled { .. } => Exit::Done,
                crate::engine::RollbackReport::Restored(exec) => exec.exit(),
            })
        }
        Command::Status { env: Some(env) } => {
            let mut all = engine.status(&[env]).await?;
            if let Some(one) = all.pop() {
                printer.emit(&one);
            }
            Ok(Exit::Done)
        }
        Command::Status { env: None } => {
            let environments = engine.status(&Env::ALL).await?;
            let leader = engine.leader().await?;
            let notifications = engine.outbox_backlog().await?;
            printer.emit(&AllStatus {
                environments,
                leader,
                notifications,
            });
            Ok(Exit::Done)
        }
        Command::Check { .. } => unreachable!("handled before the database is opened"),
        Command::Reconcile(a) if a.watch => {
            crate::watch::run(engine, &a, &overrides(&a.sim), listener, printer).await
        }
        Command::Reconcile(a) => {
            let desired = desired.unwrap_or_else(|| unreachable!("loaded above"));
            let result = engine
                .reconcile(&desired, &overrides(&a.sim), a.fail_fast)
                .await?;
            let view = ReconcileView {
                manifests: a.manifests.manifests.display().to_string(),
                result,
            };
            printer.emit(&view);
            Ok(view.result.exit())
        }
        Command::Audit(crate::cli::AuditArgs {
            verify: Some(crate::cli::AuditCommand::Verify { anchor }),
            ..
        }) => {
            let anchors = match &anchor {
                Some(path) => crate::store::chain::read_anchors(path)?,
                None => Vec::new(),
            };
            let verified = engine.verify_audit(&anchors).await?;
            printer.emit(&verified);
            Ok(if verified.ok() {
                Exit::Done
            } else {
                Exit::Altered
            })
        }
        Command::Audit(a) => {
            if let Some(id) = a.deploy_id {
                engine.find(id).await?;
            }
            let filter = AuditFilter {
                deployment: a.deploy_id,
                env: a.env,
                since: a.since,
                limit: a.limit,
            };
            if a.follow {
                return crate::follow::run(engine, &filter, printer).await;
            }
            let log = engine.audit(&filter).await?;
            if printer.is_stream() {
                for row in &log.rows {
                    printer.audit_row(row);
                }
            } else {
                printer.emit(&log);
            }
            Ok(Exit::Done)
        }
        Command::Approve {
            deploy_id,
            gate,
            by,
            reject,
            reason,
        } => {
            let decision = Decision {
                by: by.as_deref(),
                reject,
                reason: reason.as_deref(),
            };
            printer.emit(&engine.approve(deploy_id, &gate, decision).await?);
            Ok(Exit::Done)
        }
        Command::History { env, limit } => {
            printer.emit(&engine.history(env, limit).await?);
            Ok(Exit::Done)
        }
        Command::Unpin { env } => {
            printer.emit(&engine.unpin(env).await?);
            Ok(Exit::Done)
        }
    }
}

/// `reconcile --dry-run`: one read-only transaction on an existing ledger (or
/// none at all when there is no ledger yet); nothing created, migrated or run.
async fn dry_run(
    url: &DbUrl,
    limits: Limits,
    a: &ReconcileArgs,
    desired: &Desired,
    output: Output,
    printer: &Printer,
) -> Result<Exit> {
    let (actual, ledger) = match Store::open_for_plan(url, limits).await? {
        Some(mut store) => {
            let actual = engine::actual(&mut store, desired).await;
            store.close().await;
            (actual?, Ledger::Present)
        }
        None => {
            printer.note(&format!(
                "note: no ledger at {} yet: planning from an empty ledger (nothing is created)",
                url.redacted()
            ));
            (Actual::default(), Ledger::Missing)
        }
    };
    let plan = plan::plan(desired, &actual);
    engine::check_conflicts(desired, &plan)?;
    let view = DryRun::new(
        a.manifests.manifests.display().to_string(),
        desired,
        &actual,
        plan,
        ledger,
    );
    if output == Output::Markdown {
        printer.raw(&view.markdown());
    } else {
        printer.emit(&view);
    }
    // Shown in the plan above, and a failed check: applying would be refused.
    // JSON prints one object: the plan's `policy_unknown` says why.
    if let Err(e) = engine::check_policies(&view.plan) {
        return match output {
            Output::Json => Ok(e.exit()),
            _ => Err(e),
        };
    }
    Ok(if view.in_sync {
        Exit::Done
    } else {
        Exit::Changes
    })
}

fn overrides(sim: &SimArgs) -> Overrides {
    Overrides {
        duration: sim.duration,
        failure_rate: sim.failure_rate,
        seed: sim.seed,
    }
}

/// `check`: the desired state, environments in promotion order.
#[derive(Serialize)]
struct Checked {
    manifests: String,
    releases: Vec<manifest::DeclaredRelease>,
    environments: Vec<CheckedEnv>,
}

#[derive(Serialize)]
struct CheckedEnv {
    env: Env,
    #[serde(flatten)]
    spec: manifest::EnvSpec,
}

impl Checked {
    fn new(manifests: String, desired: Desired) -> Checked {
        Checked {
            manifests,
            releases: desired.releases,
            environments: desired
                .environments
                .into_iter()
                .map(|(env, spec)| CheckedEnv { env, spec })
                .collect(),
        }
    }
}

impl Text for Checked {
    fn text(&self, s: &Style) -> String {
        let mut out = format!(
            "{} {} is valid: {} release(s), {} managed environment(s)\n",
            s.green("✓"),
            self.manifests,
            self.releases.len(),
            self.environments.len()
        );
        for CheckedEnv { env, spec } in &self.environments {
            let mut line = format!("  {:<8} {}", env.as_str(), spec.release);
            if let Some(r) = spec.policy.requires {
                line.push_str(&format!("  requires {r}"));
            }
            let gates: Vec<&str> = spec.policy.gates.iter().map(|g| g.name.as_str()).collect();
            if !gates.is_empty() {
                line.push_str(&format!("  gates: {}", gates.join(", ")));
            }
            if let Some(v) = &spec.policy.verify {
                line.push_str(&format!("  verifies: {}", crate::verify::describe(v)));
            }
            if let Some(w) = &spec.policy.windows {
                line.push_str(&format!(
                    "  windows: {} allow, {} deny ({})",
                    w.allow.len(),
                    w.deny.len(),
                    w.timezone.as_deref().unwrap_or("UTC")
                ));
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}
