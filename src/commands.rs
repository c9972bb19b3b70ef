//! Resolves settings, opens the ledger and runs one command. Returns the exit
//! code of a command that completed; errors go back to `main`.

use crate::cli::{Cli, Command, Output, ReconcileArgs, SimArgs};
use crate::engine::{self, Decision, Engine, Who};
use crate::error::{Error, Result};
use crate::executor::Overrides;
use crate::exit::Exit;
use crate::manifest::{self, Desired};
use crate::model::Env;
use crate::plan::saved::{self, Marks, SavedPlan};
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
    // What shipctl says about itself: no database, no manifests.
    if let Some(text) = describe(&cli.command, cli.output)? {
        printer.raw(&text);
        return Ok(Exit::Done);
    }
    // Offline: no database is opened, so pull requests from forks need no credentials.
    if let Command::Check { manifests } = &cli.command {
        let desired = manifest::load(&manifests.manifests)?;
        printer.emit(&Checked::new(
            manifests.manifests.display().to_string(),
            desired,
        ));
        return Ok(Exit::Done);
    }
    // A saved plan, then the manifests, are read before the database is
    // touched: a missing or malformed plan, invalid manifests, manifests that
    // moved since the plan, change nothing.
    let saved = match &cli.command {
        Command::Reconcile(a) => a.plan.as_deref().map(read_plan).transpose()?,
        _ => None,
    };
    let desired = match &cli.command {
        Command::Reconcile(a) if !a.watch => Some(desired_for(a, saved.as_ref())?),
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
        // A saved plan that no longer holds is refused on a read-only
        // connection, before anything could create or migrate the ledger.
        if let (Some(saved), Some(desired)) = (&saved, &desired) {
            precheck(&url, limits, desired, saved).await?;
        }
        // Commands that only read never create, migrate or alter the ledger (DESIGN §8).
        let store = if reads_only(&cli.command) {
            Store::open_read(&url, limits).await?
        } else {
            Store::open(&url, limits).await?
        };
        let mut engine = Engine::new(store, who);
        let result = execute(cli.command, desired, saved, listener, &mut engine, printer).await;
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

/// The text of `completions`, `man` and `schema`; `None` for other commands.
/// A script or a manual page has no JSON form: `--output json` is refused for
/// those; the schema is JSON whatever the format.
fn describe(command: &Command, output: Output) -> Result<Option<String>> {
    let (what, text) = match command {
        Command::Completions { shell } => ("completions", crate::describe::completions(*shell)),
        Command::Man => ("man", crate::describe::man_page()),
        Command::Schema => return Ok(Some(crate::describe::schema())),
        _ => return Ok(None),
    };
    if output == Output::Json {
        return Err(Error::input(format!(
            "`shipctl {what}` prints {}, which has no JSON form",
            if what == "man" {
                "a manual page"
            } else {
                "a shell script"
            }
        ))
        .hint("run it without --output json"));
    }
    Ok(Some(text))
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
    saved: Option<SavedPlan>,
    listener: Option<crate::serve::Listener>,
    engine: &mut Engine,
    printer: &Printer,
) -> Result<Exit> {
    // Approvers' keys come from the manifests (DESIGN §12), for the commands
    // that judge approvals; reconcile takes them from the manifests it applies.
    if let Command::Validate { keys, .. }
    | Command::Rollback { keys, .. }
    | Command::Status { keys, .. }
    | Command::Approve { keys, .. }
    | Command::History { keys, .. } = &command
    {
        engine.keys = std::sync::Arc::new(engine::Keys::load(&keys.manifests));
    }
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
            keys: _,
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
        Command::Rollback { deploy_id, sim, .. } => {
            let report = engine.rollback(deploy_id, &overrides(&sim)).await?;
            printer.emit(&report);
            Ok(match &report {
                crate::engine::RollbackReport::Cancelled { .. } => Exit::Done,
                crate::engine::RollbackReport::Restored(exec) => exec.exit(),
            })
        }
        Command::Status { env: Some(env), .. } => {
            let mut all = engine.status(&[env]).await?;
            if let Some(one) = all.pop() {
                printer.emit(&one);
            }
            Ok(Exit::Done)
        }
        Command::Status { env: None, .. } => {
            let environments = engine.status(&Env::ALL).await?;
            let ledger_id = engine.ledger_id().await?;
            let leader = engine.leader().await?;
            let notifications = engine.outbox_backlog().await?;
            printer.emit(&AllStatus {
                ledger_id,
                environments,
                leader,
                notifications,
            });
            Ok(Exit::Done)
        }
        Command::Check { .. } | Command::Completions { .. } | Command::Man | Command::Schema => {
            unreachable!("handled before the database is opened")
        }
        Command::Reconcile(a) if a.watch => {
            crate::watch::run(engine, &a, &overrides(&a.sim), listener, printer).await
        }
        Command::Reconcile(a) => {
            let desired = desired.unwrap_or_else(|| unreachable!("loaded above"));
            let result = engine
                .reconcile(&desired, &overrides(&a.sim), a.fail_fast, saved.as_ref())
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
            sign,
            keys: _,
        } => {
            let decision = Decision {
                by: by.as_deref(),
                reject,
                reason: reason.as_deref(),
                sign: sign.as_deref(),
            };
            printer.emit(&engine.approve(deploy_id, &gate, decision).await?);
            Ok(Exit::Done)
        }
        Command::History { env, limit, .. } => {
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
    let (actual, marks, ledger) = match Store::open_for_plan(url, limits).await? {
        Some(mut store) => {
            // A plan to be saved records where the ledger stood, from the
            // same read transaction as what it planned from.
            let read = match a.out {
                Some(_) => engine::actual_and_marks(&mut store, desired).await,
                None => engine::actual(&mut store, desired)
                    .await
                    .map(|actual| (actual, Marks::default())),
            };
            store.close().await;
            let (actual, marks) = read?;
            (actual, marks, Ledger::Present)
        }
        None => {
            printer.note(&format!(
                "note: no ledger at {} yet: planning from an empty ledger (nothing is created)",
                url.redacted()
            ));
            (Actual::default(), Marks::default(), Ledger::Missing)
        }
    };
    let plan = plan::plan(desired, &actual);
    engine::check_conflicts(desired, &plan)?;
    let manifests = a.manifests.manifests.display().to_string();
    let mut view = DryRun::new(manifests.clone(), desired, &actual, plan, ledger);
    view.apply_with = apply_command(a);
    let policies = engine::check_policies(&view.plan);
    // Saved before it is shown: a plan that cannot be saved is an error, and a
    // plan that applying would refuse (a newer policy) is not saved at all.
    if let (Some(out), Ok(())) = (&a.out, &policies) {
        let file = SavedPlan::new(manifests, desired, &view.plan, &marks, |env| {
            view.plan
                .environments
                .iter()
                .find(|e| e.env == env)
                .map(|e| crate::render::summary(e, &actual))
                .unwrap_or_default()
        });
        write_plan(out, &file)?;
    }
    if output == Output::Markdown {
        printer.raw(&view.markdown());
    } else {
        printer.emit(&view);
    }
    if let (Some(out), Ok(())) = (&a.out, &policies) {
        printer.notice(&format!(
            "plan saved to {}: apply exactly it with `shipctl reconcile --plan {}`",
            out.display(),
            out.display()
        ));
    }
    // Shown in the plan above, and a failed check: applying would be refused.
    // JSON prints one object: the plan's `policy_unknown` says why.
    if let Err(e) = policies {
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

/// How to apply what a dry run shows, with its own `--env` and `--out`.
fn apply_command(a: &ReconcileArgs) -> String {
    let mut out = String::from("shipctl reconcile");
    if let Some(file) = &a.out {
        out.push_str(&format!(" --plan {}", file.display()));
        return out;
    }
    for env in &a.env {
        out.push_str(&format!(" --env {env}"));
    }
    out
}

/// The desired state `reconcile` works on: the manifests, limited to `--env`;
/// with a saved plan, the manifests it was made from (or a refusal) and the
/// environments it was made for.
fn desired_for(a: &ReconcileArgs, saved: Option<&SavedPlan>) -> Result<Desired> {
    let dir = &a.manifests.manifests;
    let shown = dir.display().to_string();
    let desired = manifest::load(dir)?;
    let Some(saved) = saved else {
        return saved::target(desired, &a.env, &shown);
    };
    let mut given = a.env.clone();
    given.sort();
    given.dedup();
    if !given.is_empty() && given != saved.targets {
        let list = |envs: &[Env]| {
            envs.iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Error::input(format!(
            "--env {} differs from the environments {} was made for ({})",
            list(&given),
            saved.path,
            list(&saved.targets)
        ))
        .hint(format!(
            "leave --env out: a saved plan applies to the environments it was made for; or \
             make a new plan with `shipctl reconcile --dry-run --env ... --out {}`",
            saved.path
        )));
    }
    // The digest covers what the plan was made from: the targeted
    // environments, the releases and the webhooks.
    let changed = |now: String| {
        saved.stale(format!(
            "the manifests in {shown} changed since the plan (the plan was made from {}, they \
             are now {now})",
            saved.manifest_digest
        ))
    };
    let desired = saved::target(desired, &saved.targets, &shown).map_err(|e| changed(e.message))?;
    let digest = saved::digest(&desired);
    if digest != saved.manifest_digest {
        return Err(changed(digest));
    }
    Ok(desired)
}

/// Reads a plan saved by `reconcile --dry-run --out FILE`.
fn read_plan(path: &std::path::Path) -> Result<SavedPlan> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::input(format!("cannot read the plan {shown}: {e}")).hint(format!(
            "make one with `shipctl reconcile --dry-run --out {shown}`, review it, then apply it"
        ))
    })?;
    SavedPlan::parse(&shown, &text)
}

/// Writes the plan whole or not at all: a temporary file beside it, flushed,
/// then renamed over it (a plan already there is replaced, as a new plan is
/// meant to be).
fn write_plan(path: &std::path::Path, plan: &SavedPlan) -> Result<()> {
    use std::io::Write;
    let shown = path.display().to_string();
    let failed = |e: std::io::Error| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!(
                    "the directory of {shown} does not exist: create it, or pass --out another path"
                )
            }
            std::io::ErrorKind::PermissionDenied => {
                format!(
                    "you cannot write in the directory of {shown}: pass --out a path you can write"
                )
            }
            _ => "pass --out a file in a directory you can write, on a disk with room".into(),
        };
        Error::input(format!("cannot write the plan to {shown}: {e}")).hint(hint)
    };
    let Some(name) = path.file_name() else {
        return Err(Error::input(format!("--out {shown}: not a file name"))
            .hint("name a file, such as --out plan.json"));
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(plan.to_text().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(failed(e));
    }
    Ok(())
}

/// Checks a saved plan on a read-only connection, before the ledger is opened
/// for writing: a plan that no longer holds is refused without creating or
/// migrating anything. The apply checks again (see `Engine::reconcile`).
async fn precheck(url: &DbUrl, limits: Limits, desired: &Desired, saved: &SavedPlan) -> Result<()> {
    match Store::open_for_plan(url, limits).await? {
        Some(mut store) => {
            let checked = async {
                let (actual, marks) = engine::actual_and_marks(&mut store, desired).await?;
                let plan = plan::plan(desired, &actual);
                engine::check_saved(&mut store, saved, &marks, &plan, &actual).await
            }
            .await;
            store.close().await;
            checked
        }
        // Planned from no ledger: applying creates it, as planned.
        None if saved.ledger_id.is_none() => Ok(()),
        None => Err(Error::input(format!(
            "there is no ledger at {}, and {} was planned on ledger {}",
            url.redacted(),
            saved.path,
            saved.ledger_id.as_deref().unwrap_or("?")
        ))
        .hint(
            "apply it with the --database-url (or SHIPCTL_DATABASE_URL) it was planned with; \
             nothing was created or applied",
        )),
    }
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
