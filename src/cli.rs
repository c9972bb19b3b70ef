//! Command-line definitions, and nothing else: what each command does lives in
//! `commands`, how results look in `render`.

use crate::model::Env;
use crate::since::Since;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Arg, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "shipctl",
    version = version(),
    about = "Deployment ledger for dev, staging and prod, kept in SQL",
    long_about = "Deployment ledger for dev, staging and prod, kept in SQL.\n\n\
        Releases are planned into deployments, validated and executed as two short \
        transactions around a leased run, and rolled back transactionally. The ledger \
        lives in SQLite (default: ./shipctl.db), PostgreSQL or MariaDB/MySQL.",
    after_help = "Examples:\n  \
        shipctl release --create 1.0.2 --tag v1.0.2\n  \
        shipctl deploy --release 1 --env prod\n  \
        shipctl validate --deploy-id 1\n  \
        shipctl status --env prod\n  \
        shipctl rollback --deploy-id 1\n\n\
        Exit codes:\n  \
        0         done, or in sync\n  \
        1         error: bad input, unknown id, database unreachable, command-line usage\n  \
        2         reconcile --dry-run found changes to apply\n  \
        3         a deployment failed (it ran and was rolled back), or a gate rejected it\n  \
        4         blocked: environment busy, pinned, held by requires, or waiting for approval\n  \
        130, 143  stopped by SIGINT or SIGTERM before claiming anything (128 + the signal);\n            \
        a signal during a run gives 3"
)]
pub struct Cli {
    /// Output format: text for people, json for programs, jsonl (audit: one row per line)
    #[arg(short = 'o', long, global = true, value_enum, value_name = "FORMAT", default_value_t = Output::Text, help_heading = GLOBAL)]
    pub output: Output,

    #[command(flatten)]
    pub db: DatabaseArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// What `--version` prints after the name: shipctl's version, then the
/// versions of the formats it reads, from where they are defined.
pub fn version() -> &'static str {
    static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{} (manifests {}, ledger schema {})",
            env!("CARGO_PKG_VERSION"),
            crate::manifest::API_VERSION,
            crate::store::LEDGER_SCHEMA_VERSION
        )
    });
    &VERSION
}

/// The heading of the options every command takes, apart from its own.
pub const GLOBAL: &str = "Global options";

/// How to reach the ledger. Every command but `check` opens it; `check` accepts
/// these options (a global option may come before any command) but hides them.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://FILE, postgres://USER@HOST/DB or mysql://USER@HOST/DB
    /// [env: SHIPCTL_DATABASE_URL] [default: sqlite://shipctl.db]
    // The environment variable is read by `database_url()`, not by clap: clap
    // would name the flag in the usage line of every argument error.
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL)]
    pub database_url: Option<String>,

    /// How long a running deployment's lease lasts without a heartbeat (heartbeats
    /// every third) [env: SHIPCTL_LEASE_TTL] [default: 30s]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_ttl, help_heading = GLOBAL)]
    pub lease_ttl: Option<Duration>,

    /// How long to wait for the database server to accept a connection
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_bound, default_value = "10s", help_heading = GLOBAL)]
    pub connect_timeout: Duration,

    /// How long to wait for a lock or a statement before giving up as busy (exit 4)
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_bound, default_value = "30s", help_heading = GLOBAL)]
    pub lock_timeout: Duration,
}

/// The database options as `check` takes them: accepted, so that
/// `shipctl --database-url URL check` and scripts that pass them everywhere keep
/// working, and hidden from its help, since `check` opens no database. Same ids
/// as the global ones: clap then does not propagate those to `check`.
fn hidden_database_args() -> Vec<Arg> {
    DatabaseArgs::augment_args(clap::Command::new("check"))
        .get_arguments()
        .map(|a| a.clone().global(false).hide(true))
        .collect()
}

/// `--output` as `reconcile` shows it: with `markdown`, which only its dry run
/// prints (elsewhere the value is hidden, and refused with a clear error). The
/// same id and value type as the global option, which it replaces there.
fn reconcile_output_arg() -> Arg {
    let values = Output::value_variants()
        .iter()
        .filter_map(ValueEnum::to_possible_value)
        .map(|v| v.hide(false));
    Arg::new("output")
        .short('o')
        .long("output")
        .value_name("FORMAT")
        .default_value("text")
        .help_heading(GLOBAL)
        .help("Output format: text for people, json for programs, markdown (with --dry-run) for a pull-request comment, jsonl (audit only)")
        .value_parser(
            PossibleValuesParser::new(values).try_map(|s| Output::from_str(&s, false)),
        )
}

/// The lease of a running deployment when neither the flag nor the variable sets it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

impl DatabaseArgs {
    /// `--database-url`, else `$SHIPCTL_DATABASE_URL` (when not empty).
    pub fn database_url(&self) -> Option<String> {
        self.database_url.clone().or_else(|| {
            std::env::var("SHIPCTL_DATABASE_URL")
                .ok()
                .filter(|v| !v.is_empty())
        })
    }

    /// `--lease-ttl`, else `$SHIPCTL_LEASE_TTL` (when not empty), else 30s.
    pub fn lease_ttl(&self) -> Result<Duration, String> {
        if let Some(ttl) = self.lease_ttl {
            return Ok(ttl);
        }
        match std::env::var("SHIPCTL_LEASE_TTL") {
            Ok(v) if !v.is_empty() => {
                parse_ttl(&v).map_err(|e| format!("SHIPCTL_LEASE_TTL={v:?}: {e}"))
            }
            _ => Ok(DEFAULT_LEASE_TTL),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
    /// One JSON object per line: `audit` (with or without --follow) prints one row per line
    Jsonl,
    /// A plan table and a diff block for pull-request comments (`reconcile --dry-run` only)
    #[value(hide = true)]
    Markdown,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a release, or list them
    #[command(after_help = "Examples:\n  \
        shipctl release --create 1.0.2 --tag v1.0.2   # prints the new release id\n  \
        shipctl release --list")]
    Release(ReleaseArgs),

    /// Plan a deployment of a release to an environment (state planifié)
    #[command(after_help = "Example:\n  \
        shipctl deploy --release 1 --env prod   # prints the new deployment id")]
    Deploy {
        /// Release id (see `shipctl release --list`)
        #[arg(long, value_name = "ID")]
        release: i64,
        /// The environment to deploy to
        #[arg(long, value_enum)]
        env: Env,
    },

    /// Validate and execute a planned deployment: claim, run, finish
    #[command(after_help = "Examples:\n  \
        shipctl validate --deploy-id 3\n  \
        shipctl validate --deploy-id 3 --duration 2s --failure-rate 0.5 --seed 7\n  \
        shipctl validate --deploy-id 3 --override-window --reason \"hotfix for INC-42\"\n\n\
        Gates run first: approvals missing leave the deployment planifié (exit 4), a\n\
        rejection or a failing command gate ends it as échec (exit 3). A closed deploy\n\
        window (windows: in the manifests) leaves it pending (exit 4) unless overridden.\n\n\
        Exit codes: 0 succeeded, 1 error, 3 failed and rolled back (also when a signal stopped\n\
        the run) or rejected by a gate, 4 environment busy or waiting for approval,\n\
        130/143 stopped by SIGINT/SIGTERM before the claim.")]
    Validate {
        /// The deployment (ids are in `shipctl status` and `shipctl history`)
        #[arg(long, value_name = "ID")]
        deploy_id: i64,
        /// Deploy even though the environment's deploy window is closed (audited)
        #[arg(long, requires = "reason")]
        override_window: bool,
        /// Why the window is overridden (required with --override-window)
        #[arg(long, value_name = "TEXT", requires = "override_window")]
        reason: Option<String>,
        #[command(flatten)]
        keys: KeysArgs,
        #[command(flatten)]
        sim: SimArgs,
    },

    /// Show what is live, running, pending and recent in an environment
    #[command(after_help = "Examples:\n  \
        shipctl status --env prod\n  \
        shipctl status                 # all environments\n  \
        shipctl status --env prod --output json")]
    Status {
        /// One environment; all three when omitted
        #[arg(long, value_enum)]
        env: Option<Env>,
        #[command(flatten)]
        keys: KeysArgs,
    },

    /// Cancel a pending deployment, or roll a live one back to the previous release
    #[command(after_help = "Examples:\n  \
        shipctl rollback --deploy-id 4   # planifié/validé: cancelled\n  \
        shipctl rollback --deploy-id 3   # live: previous release redeployed, environment pinned\n\n\
        Exit codes: 0 cancelled or rolled back, 1 error (no previous release, or a state that\n\
        cannot be rolled back), 3 the redeploy failed (the deployment stays live),\n\
        4 environment busy, 130/143 stopped by SIGINT/SIGTERM before the claim.")]
    Rollback {
        /// The deployment (ids are in `shipctl status` and `shipctl history`)
        #[arg(long, value_name = "ID")]
        deploy_id: i64,
        #[command(flatten)]
        keys: KeysArgs,
        #[command(flatten)]
        sim: SimArgs,
    },

    /// Validate the manifests offline: no database, nothing executed
    #[command(after_help = "Examples:\n  \
        shipctl check\n  \
        shipctl check --manifests deploy/manifests --output json\n\n\
        Exit codes: 0 valid, 1 invalid (the message names the file and line).",
        args = hidden_database_args())]
    Check {
        #[command(flatten)]
        manifests: ManifestArgs,
    },

    /// Make the ledger match the manifests: plan, then validate and execute, dev → staging → prod
    #[command(after_help = "Examples:\n  \
        shipctl reconcile --dry-run                    # plan and diff; writes nothing, runs nothing\n  \
        shipctl reconcile --dry-run --output markdown  # for a pull-request comment\n  \
        shipctl reconcile                              # apply\n  \
        shipctl reconcile --dry-run --out plan.json    # save the plan, to review it\n  \
        shipctl reconcile --plan plan.json             # apply exactly that plan, or refuse if anything moved\n  \
        shipctl reconcile --env prod                   # only prod\n  \
        shipctl reconcile --watch --interval 5m        # apply on every manifest change, and every 5m\n\n\
        Exit codes: 0 in sync (or applied), 1 error, 2 --dry-run found changes,\n\
        3 a deployment failed and was rolled back, 4 an environment is busy, pinned or blocked,\n\
        130/143 stopped by SIGINT/SIGTERM before claiming anything. --watch asked to stop exits 0.")]
    Reconcile(ReconcileArgs),

    /// Show the audit log: every state change and failure, who, when and why; or verify it
    #[command(after_help = "Examples:\n  \
        shipctl audit --env prod\n  \
        shipctl audit --deploy-id 4 --output json\n  \
        shipctl audit --since 1h\n  \
        shipctl audit --since 2d --env prod\n  \
        shipctl audit --since 2026-11-23T14:00:00+01:00 --limit 500\n  \
        shipctl audit --follow --env prod             # new rows as they commit, until Ctrl-C\n  \
        shipctl audit --limit 100000 --output jsonl   # export: one row per line\n  \
        shipctl audit verify                          # recompute every hash chain\n\n\
        Shows the newest --limit rows (50 by default), oldest first, and says how many\n\
        older rows matched but were not shown (JSON: `total`, how many rows matched).")]
    Audit(AuditArgs),

    /// Approve (or reject) a pending deployment at one of its approval gates
    #[command(after_help = "Examples:\n  \
        shipctl approve --deploy-id 7 --gate qa                  # as $USER\n  \
        shipctl approve --deploy-id 7 --gate qa --by alice\n  \
        shipctl approve --deploy-id 7 --gate qa --reject --reason \"login page broken on Safari\"\n  \
        shipctl approve --deploy-id 7 --gate qa --by alice --sign ~/.ssh/id_ed25519\n\n\
        A person's newest decision on a gate counts: approving twice counts once, and a\n\
        rejection can be taken back by approving before the deployment is validated.\n\
        A rejection makes the deployment échec at its next validation (exit 3).\n\
        Where the manifests declare the approver's SSH key, a decision counts only when\n\
        signed with it (--sign, through ssh-keygen and ssh-agent, as git signs commits).")]
    Approve {
        /// The deployment (ids are in `shipctl status` and `shipctl history`)
        #[arg(long, value_name = "ID")]
        deploy_id: i64,
        /// The gate, as named in the manifests (environments.ENV.gates)
        #[arg(long, value_name = "GATE")]
        gate: String,
        /// Who decides [default: $SHIPCTL_ACTOR, $USER, or the login name]
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        /// Reject instead of approving
        #[arg(long, requires = "reason")]
        reject: bool,
        /// Why it is rejected (required with --reject; at most 1000 characters)
        #[arg(long, value_name = "TEXT", requires = "reject")]
        reason: Option<String>,
        /// Sign the decision with this SSH key (a private key, or the public key
        /// of one in ssh-agent): required where the gate declares the approver's key
        #[arg(long, value_name = "KEY")]
        sign: Option<std::path::PathBuf>,
        #[command(flatten)]
        keys: KeysArgs,
    },

    /// Show an environment's deployments: states, attempts and gate results
    #[command(after_help = "Examples:\n  \
        shipctl history --env prod\n  \
        shipctl history --env prod --limit 200 --output json")]
    History {
        /// The environment
        #[arg(long, value_enum)]
        env: Env,
        /// At most this many deployments, the newest ones
        #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
        #[command(flatten)]
        keys: KeysArgs,
    },

    /// Lift the pin a rollback left on an environment
    #[command(after_help = "Example:\n  shipctl unpin --env prod")]
    Unpin {
        /// The pinned environment
        #[arg(long, value_enum)]
        env: Env,
    },

    /// Print the shell completion script for bash, zsh, fish, elvish or powershell
    #[command(after_help = "Examples:\n  \
        source <(shipctl completions bash)      # this bash session\n  \
        shipctl completions bash > ~/.local/share/bash-completion/completions/shipctl\n  \
        shipctl completions zsh > ~/.zfunc/_shipctl   # fpath+=~/.zfunc before compinit\n  \
        shipctl completions fish > ~/.config/fish/completions/shipctl.fish",
        args = hidden_database_args())]
    Completions {
        /// The shell
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff), every command included
    #[command(after_help = "Examples:\n  \
        shipctl man | man -l -\n  \
        shipctl man > ~/.local/share/man/man1/shipctl.1",
        args = hidden_database_args())]
    Man,

    /// Print the JSON Schema of the manifests, for editors and linters
    #[command(after_help = "Examples:\n  \
        shipctl schema > shipctl.schema.json\n\n\
        Then, in manifests/*.yaml, for the YAML language server (VS Code, Neovim, Helix):\n  \
        # yaml-language-server: $schema=../shipctl.schema.json\n\n\
        The schema checks each file alone; `shipctl check` also checks what spans files\n\
        (a release declared in one file and used in another, keys defined twice).",
        args = hidden_database_args())]
    Schema,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, disable_help_subcommand = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub verify: Option<AuditCommand>,
    /// Only the rows of this deployment
    #[arg(long, value_name = "ID")]
    pub deploy_id: Option<i64>,
    /// Only the rows of this environment
    #[arg(long, value_enum)]
    pub env: Option<Env>,
    /// Rows from this moment on: a span before the database's clock (30s, 15m, 1h, 2d, 1w),
    /// an RFC 3339 time (2026-11-23T14:00:00Z, 2026-11-23T15:00:00+01:00), or a UTC
    /// time (2026-11-23 14:00:00, 2026-11-23)
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<Since>,
    /// At most this many rows, the newest ones
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub limit: i64,
    /// Then print new rows as they commit, until SIGINT or SIGTERM (text or jsonl)
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every hash chain of the audit log
    #[command(after_help = "Examples:\n  \
        shipctl audit verify\n  \
        shipctl audit verify --output json > audit-heads.json   # keep the heads elsewhere\n\n\
        Each environment has its chain, and events of no environment have one: every row\n\
        carries the hash of the row before it in its chain and its own, SHA-256 over its\n\
        columns. Exit codes: 0 every chain holds, 1 a row was changed, removed or\n\
        inserted (named, with its chain: the first one of each chain), or an error.\n\n\
        The hashes hold no secret: rows rewritten with every later hash recomputed hold\n\
        together. Keep the heads (the JSON output) where the database's writers cannot,\n\
        and pass them back with --anchor: each chain must still have that hash at that place.")]
    Verify {
        /// A previous `audit verify --output json` (its chains' heads): each chain
        /// must still hold that hash at that place
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["create", "list"])))]
pub struct ReleaseArgs {
    /// Version of the new release (unique, at most 50 characters)
    #[arg(long, value_name = "VERSION", requires = "tag")]
    pub create: Option<String>,
    /// Git tag of the new release (at most 50 characters)
    #[arg(long, value_name = "TAG", requires = "create")]
    pub tag: Option<String>,
    /// List every release
    #[arg(long, conflicts_with = "create")]
    pub list: bool,
}

#[derive(Debug, Args)]
#[command(arg = reconcile_output_arg())]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub manifests: ManifestArgs,
    /// Plan and show the diff in one read-only transaction: nothing written, nothing executed
    #[arg(long, conflicts_with = "watch")]
    pub dry_run: bool,
    /// Keep running: reconcile on every manifest change and every --interval
    #[arg(long)]
    pub watch: bool,
    /// With --watch: how often to reconcile anyway, to correct drift
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_interval, requires = "watch")]
    pub interval: Duration,
    /// With --watch: poll the directory instead of waiting for file-system events
    #[arg(long, requires = "watch")]
    pub poll: bool,
    /// With --watch: serve /metrics, /healthz, /api/status and a dashboard (/) over
    /// HTTP on IP:PORT, such as 127.0.0.1:9464 (port 0: any free port). There is no
    /// authentication: keep it on loopback or behind a proxy that has some
    #[arg(long, value_name = "IP:PORT", requires = "watch")]
    pub listen: Option<std::net::SocketAddr>,
    /// Stop at the first environment whose deployment fails
    #[arg(long)]
    pub fail_fast: bool,
    /// Only this environment (repeatable): nothing else is planned, applied or
    /// touched. `requires:` naming one left out is judged by what the ledger holds
    #[arg(long, value_enum, value_name = "ENV")]
    pub env: Vec<Env>,
    /// With --dry-run: also save the plan (and what it was made from) to FILE, to
    /// apply exactly it later with --plan FILE. Written whole or not at all
    #[arg(long, value_name = "FILE", requires = "dry_run")]
    pub out: Option<PathBuf>,
    /// Apply exactly the plan saved in FILE by `--dry-run --out FILE`, or refuse
    /// (exit 1, nothing changed) when the manifests or the ledger moved since.
    /// The environments' own executors run: no simulation flag overrides them
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dry_run", "watch", "duration", "failure_rate", "seed"])]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub sim: SimArgs,
}

/// For the commands that judge approvals: signed gates are read from the
/// manifests, never from the ledger's copy (DESIGN §12).
#[derive(Debug, Args, Clone)]
pub struct KeysArgs {
    /// Directory of the manifests: approvers' SSH keys are read from them, never from the
    /// ledger, and the stored policy of an environment they declare must be theirs
    #[arg(long, value_name = "DIR", default_value = "manifests")]
    pub manifests: PathBuf,
}

#[derive(Debug, Args, Clone)]
pub struct ManifestArgs {
    /// Directory of the manifests (*.yaml, *.yml; not recursive)
    #[arg(long, value_name = "DIR", default_value = "manifests")]
    pub manifests: PathBuf,
}

/// Simulation controls. Given, they override the environment's configured
/// executor; otherwise the environment's executor runs (default: a 1s
/// simulation failing one time in five).
#[derive(Debug, Args, Clone, Default)]
pub struct SimArgs {
    /// How long the simulated run lasts [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Probability that the simulated run fails, from 0.0 to 1.0 [default: 0.2]
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub failure_rate: Option<f64>,
    /// Seed for the failure draw: the same seed gives the same outcome for the same
    /// deployment and attempt; other deployments and retries draw anew
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s)
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = crate::duration::parse(s)?;
    if d < Duration::from_millis(300) {
        return Err("a lease must last at least 300ms".to_string());
    }
    Ok(d)
}

fn parse_bound(s: &str) -> Result<Duration, String> {
    let d = crate::duration::parse(s)?;
    if d < Duration::from_millis(100) {
        return Err("it must be at least 100ms".to_string());
    }
    if d > Duration::from_secs(24 * 3600) {
        return Err("it must be at most 24h".to_string());
    }
    Ok(d)
}

/// `--since`: a span before the database's clock, or a moment in UTC.
fn parse_since(s: &str) -> Result<Since, String> {
    Since::parse(s)
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = crate::duration::parse(s)?;
    if d < Duration::from_secs(1) {
        return Err("the interval must be at least 1s".to_string());
    }
    Ok(d)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?} is not a rate between 0.0 and 1.0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
