//! Manifests → the desired state. Every `*.yaml` / `*.yml` file directly in the
//! directory (sorted, not recursive), merged; every error names the file and the
//! line or key path, and says what to do.

mod duration_bounds;
pub mod json_schema;
mod lex;
pub mod schema;
pub mod stored;
pub mod words;

use crate::error::{Error, Result};
use crate::executor::command::check_kill_grace;
use crate::model::{Env, MAX_POLICY_BYTES, OnFailure, check_argv, check_label};
use schema::{ExecutorSpec, Gate, UNQUOTED_NUMBER, VerifySpec, WindowsSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A manifest larger than this is refused rather than parsed.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// More files than this in one directory is refused.
pub const MAX_FILES: usize = 1000;
pub const API_VERSION: &str = "shipctl/v1";
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// What the manifests declare.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub releases: Vec<DeclaredRelease>,
    pub environments: BTreeMap<Env, EnvSpec>,
    /// The webhooks (DESIGN §11), declared in one file.
    pub notifications: Vec<crate::notify::Target>,
    /// The file that declares them, for messages.
    pub notifications_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeclaredRelease {
    pub version: String,
    pub tag: String,
    #[serde(skip)]
    pub file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvSpec {
    pub release: String,
    pub policy: Policy,
    #[serde(skip)]
    pub file: PathBuf,
}

/// An environment's policy. Reconcile stores it in the database so that
/// imperative commands on any machine apply the same rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    #[serde(default)]
    pub requires: Option<Env>,
    #[serde(default)]
    pub gates: Vec<NamedGate>,
    #[serde(default)]
    pub executor: Option<ExecutorSpec>,
    /// Checks after a successful run; the deployment succeeds only if they pass.
    #[serde(default)]
    pub verify: Option<VerifySpec>,
    /// When deployments may start (DESIGN §10), as the manifests wrote it:
    /// `crate::window::parse` reads it; `None`: always open.
    #[serde(default)]
    pub windows: Option<WindowsSpec>,
    /// Defaults only matter to a stored policy read leniently (`stored::read`).
    #[serde(default = "default_on_failure")]
    pub on_failure: OnFailure,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_on_failure() -> OnFailure {
    OnFailure::Replan
}

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            requires: None,
            gates: Vec::new(),
            executor: None,
            verify: None,
            windows: None,
            on_failure: OnFailure::Replan,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedGate {
    pub name: String,
    pub gate: Gate,
}

impl Desired {
    pub fn release(&self, version: &str) -> Option<&DeclaredRelease> {
        self.releases.iter().find(|r| r.version == version)
    }
}

/// Reads and validates every manifest in `dir`. Touches no database.
pub fn load(dir: &Path) -> Result<Desired> {
    let mut parsed = Vec::new();
    for path in list(dir)? {
        let text = read(&path)?;
        if let Some(file) = parse(&path, &text)? {
            parsed.push((path, text, file));
        }
    }
    merge(parsed)
}

fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let shown = dir.display();
    let meta = std::fs::metadata(dir).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::NotFound {
            format!("the manifest directory {shown} does not exist")
        } else {
            format!("cannot read the manifest directory {shown}: {e}")
        };
        Error::input(what).hint(
            "create it with a manifest describing the desired releases, or pass --manifests DIR",
        )
    })?;
    if !meta.is_dir() {
        return Err(Error::input(format!("{shown} is not a directory"))
            .hint("--manifests takes the directory that holds the *.yaml files"));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::input(format!("cannot list the manifest directory {shown}: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            Error::input(format!("cannot list the manifest directory {shown}: {e}"))
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_manifest_name(&name) {
            files.push(entry.path());
        }
    }
    if files.is_empty() {
        return Err(
            Error::input(format!("no manifests (*.yaml or *.yml files) in {shown}"))
                .hint("write the desired state in a file such as manifests/shipctl.yaml"),
        );
    }
    if files.len() > MAX_FILES {
        return Err(Error::input(format!(
            "{shown} holds {} manifests; at most {MAX_FILES} are read",
            files.len()
        )));
    }
    files.sort();
    Ok(files)
}

/// `*.yaml` and `*.yml`, but not hidden files nor editors' temp and swap files
/// (`.#x.yaml`, `.x.yaml.swp`, `x.yaml~`, `x.yaml.tmp`).
pub fn is_manifest_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.starts_with('#')
        && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

fn read(path: &Path) -> Result<String> {
    let shown = path.display();
    let cannot = |e: std::io::Error| {
        let why = if e.raw_os_error() == Some(libc::ELOOP) {
            "it is a symbolic link that loops".to_string()
        } else {
            e.to_string()
        };
        Error::input(format!("cannot read the manifest {shown}: {why}"))
    };
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if meta.is_dir() {
        return Err(
            Error::input(format!("{shown} is a directory, not a manifest file"))
                .hint("manifests are read from the top of the directory only; rename it"),
        );
    }
    if !meta.is_file() {
        // A named pipe would block until someone writes to it; a device may never end.
        return Err(Error::input(format!(
            "{shown} is not a regular file (a named pipe, a socket or a device)"
        ))
        .hint("manifests are plain files; remove it or rename it"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big(path, meta.len()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(path, bytes.len() as u64));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::input(format!(
            "{shown} is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
        .hint("save the manifest as UTF-8")
    })?;
    // Editors on Windows start UTF-8 files with a byte order mark; it is not
    // part of the YAML (the parser would take it for a second document).
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

fn too_big(path: &Path, len: u64) -> Error {
    Error::input(format!(
        "{} is {len} bytes; a manifest may be at most {MAX_FILE_BYTES} bytes",
        path.display()
    ))
    .hint("a desired state this large is a mistake: check what generated the file")
}

/// How deep `[`/`{` flow collections may nest. The YAML parser's cost grows with
/// the square of the depth, so a hostile file is refused before it is parsed.
const MAX_FLOW_DEPTH: usize = 64;

fn parse(path: &Path, text: &str) -> Result<Option<schema::File>> {
    match lex::scan(text, MAX_FLOW_DEPTH) {
        Some(lex::Finding::TooDeep { line }) => {
            return Err(Error::input(format!(
                "{}:{line}: the YAML is nested more than {MAX_FLOW_DEPTH} levels deep",
                path.display()
            ))
            .hint("a manifest is a few levels deep; check what generated the file"));
        }
        Some(lex::Finding::Tag { line, column, tag }) => {
            return Err(Error::input(format!(
                "{}:{line}:{column}: the YAML tag {} is not supported: a manifest holds \
                 plain strings, numbers, lists and mappings",
                path.display(),
                words::cut(&tag)
            ))
            .hint("remove the tag and write the value itself, e.g. version: \"1.0.2\""));
        }
        None => {}
    }
    let file = match serde_yaml::from_str::<Option<schema::File>>(text) {
        Ok(file) => file,
        Err(e) => return Err(yaml_error(path, text, &e)),
    };
    if let Some(f) = &file
        && let Some(v) = &f.api_version
        && v != API_VERSION
    {
        return Err(Error::input(format!(
            "{}: apiVersion is {:?}; this shipctl reads {API_VERSION}",
            at(path, text, "apiVersion"),
            words::cut(v)
        ))
        .hint(format!("write `apiVersion: {API_VERSION}` or leave it out")));
    }
    Ok(file)
}

/// `file:line:column: key.path: message`, with a hint for the known traps.
fn yaml_error(path: &Path, text: &str, e: &serde_yaml::Error) -> Error {
    let mut message = without_positions(&e.to_string());
    let (place, raw) = match e.location() {
        Some(l) => {
            let (line, column) =
                relocate(&message, text, l.line()).unwrap_or((l.line(), l.column()));
            (
                format!("{}:{line}:{column}", path.display()),
                raw_token(text, l.line(), l.column()),
            )
        }
        None => (path.display().to_string(), None),
    };
    let hint = if message.contains(UNQUOTED_NUMBER) {
        let raw = words::cut(&raw.unwrap_or_default());
        let yaml_reads = message
            .split(": ")
            .last()
            .and_then(|m| m.split(' ').next())
            .unwrap_or("")
            .to_string();
        let key = message.split(": ").next().unwrap_or("").to_string();
        message = format!(
            "{key}: {raw} is a number to YAML (it reads as {yaml_reads}), but versions and tags are strings"
        );
        format!("quote it: \"{raw}\"")
    } else if message.contains("recursion limit") {
        message = "the YAML is nested too deeply".into();
        "a manifest is a few levels deep; check what generated the file".into()
    } else if message.contains("repetition limit") {
        message = "the YAML expands too many aliases (an alias bomb?)".into();
        "write the manifest without YAML anchors and aliases".into()
    } else if message.contains("more than one document") {
        message = "the file holds several YAML documents (---)".into();
        "put each document in a file of its own".into()
    } else if let Some((m, h)) = words::rewrite(&message) {
        message = m;
        h
    } else if message.contains("unknown environment") {
        "use dev, staging or prod".into()
    } else if message.contains("on_failure is") {
        "write on_failure: replan (plan the deployment again) or on_failure: cancel".into()
    } else if message.contains("defined twice") {
        "keep one definition".into()
    } else {
        "fix the YAML at that line".into()
    };
    Error::input(format!("{place}: {}", words::bounded(&message))).hint(hint)
}

/// The message without its " at line N column M" parts: the place leads the line.
fn without_positions(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let skip = after
            .find(|c: char| !(c.is_ascii_digit() || c == ' ' || "column".contains(c)))
            .unwrap_or(after.len());
        rest = &after[skip..];
    }
    out.push_str(rest);
    out
}

/// The YAML library places errors raised while reading a mapping's key at the
/// start of the mapping; find the key itself, from that line on.
fn relocate(message: &str, text: &str, from: usize) -> Option<(usize, usize)> {
    let quoted = |m: &str| m.split('"').nth(1).map(str::to_string);
    let (name, nth) = if message.contains("unknown environment") {
        (quoted(message)?, 0)
    } else if let Some(i) = message.find(" is defined twice") {
        let key = message[..i].rsplit(": ").next()?.to_string();
        (key, 1)
    } else {
        return None;
    };
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .filter_map(|(i, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            let is_key = t
                .strip_prefix(name.as_str())
                .is_some_and(|r| r.trim_start().starts_with(':'));
            let is_value = t.split_once(':').is_some_and(|(_, v)| v.trim() == name);
            (is_key || is_value).then(|| (i + 1, l.find(name.as_str()).map_or(1, |c| c + 1)))
        })
        .nth(nth)
}

/// The user's own text of the scalar at a 1-based line and column.
fn raw_token(text: &str, line: usize, column: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let rest: String = l.chars().skip(column.saturating_sub(1)).collect();
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '}' | ']' | '#'))
        .collect();
    (!token.is_empty()).then_some(token)
}

/// `file:line` of the first line that defines `key`, else just the file.
fn at(path: &Path, text: &str, key: &str) -> String {
    let needle = format!("{key}:");
    match text
        .lines()
        .position(|l| l.trim_start().trim_start_matches("- ").starts_with(&needle))
    {
        Some(i) => format!("{}:{}", path.display(), i + 1),
        None => path.display().to_string(),
    }
}

/// `file:line` of the first line that mentions `value` after `key`.
fn at_value(path: &Path, text: &str, key: &str, value: &str) -> String {
    match text
        .lines()
        .position(|l| l.contains(&format!("{key}:")) && l.contains(value))
    {
        Some(i) => format!("{}:{}", path.display(), i + 1),
        None => path.display().to_string(),
    }
}

fn merge(parsed: Vec<(PathBuf, String, schema::File)>) -> Result<Desired> {
    let mut releases: Vec<DeclaredRelease> = Vec::new();
    let mut environments: BTreeMap<Env, EnvSpec> = BTreeMap::new();
    let mut texts: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut notifications: Vec<crate::notify::Target> = Vec::new();
    let mut notifications_file: Option<PathBuf> = None;

    for (path, text, file) in parsed {
        if let Some(list) = &file.notifications {
            // One list, in one file: the webhooks are read in one place, and
            // two files cannot each think they own them.
            if let Some(first) = &notifications_file {
                return Err(Error::input(format!(
                    "notifications: is declared in {} and in {}",
                    first.display(),
                    path.display()
                ))
                .hint("declare the notifications list in one file only"));
            }
            notifications = notifications_of(&path, &text, list)?;
            notifications_file = Some(path.clone());
        }
        for (i, r) in file.releases.unwrap_or_default().into_iter().enumerate() {
            let (version, tag) = (r.version.0, r.tag.0);
            for (what, value) in [("version", &version), ("tag", &tag)] {
                check_label(what, value).map_err(|m| {
                    Error::input(format!(
                        "{}: releases[{i}].{what}: {m}",
                        at_value(&path, &text, what, value)
                    ))
                    .hint("versions and tags are 1 to 50 characters, such as \"1.0.2\" and v1.0.2")
                })?;
            }
            if let Some(first) = releases.iter().find(|d| d.version == version) {
                let place = if first.file == path {
                    format!("twice in {}", path.display())
                } else {
                    format!("in {} and in {}", first.file.display(), path.display())
                };
                return Err(
                    Error::input(format!("release {version} is declared {place}"))
                        .hint("declare each release once; releases are immutable"),
                );
            }
            releases.push(DeclaredRelease {
                version,
                tag,
                file: path.clone(),
            });
        }
        for (name, spec) in file.environments.unwrap_or_default().0 {
            let env = name.0;
            if let Some(first) = environments.get(&env) {
                return Err(Error::input(format!(
                    "environments.{env} is defined in {} and in {}",
                    first.file.display(),
                    path.display()
                ))
                .hint("define each environment in one file only"));
            }
            let policy = policy(&path, &text, env, &spec)?;
            environments.insert(
                env,
                EnvSpec {
                    release: spec.release.0,
                    policy,
                    file: path.clone(),
                },
            );
        }
        texts.insert(path, text);
    }

    for (env, spec) in &environments {
        if !releases.iter().any(|r| r.version == spec.release) {
            let text = texts.get(&spec.file).map(String::as_str).unwrap_or("");
            return Err(Error::input(format!(
                "{}: environments.{env}.release: release {} is not declared in any manifest",
                at_value(&spec.file, text, "release", &spec.release),
                spec.release
            ))
            .hint(format!(
                "declare it under releases:, for example\n    releases:\n      - version: \"{}\"\n        tag: v{}",
                spec.release, spec.release
            )));
        }
    }
    // A release is promoted from the environment it requires: if the manifests
    // do not manage that environment, nothing ever succeeds there and the
    // promotion waits forever.
    for (env, spec) in &environments {
        if let Some(r) = spec.policy.requires
            && !environments.contains_key(&r)
        {
            let text = texts.get(&spec.file).map(String::as_str).unwrap_or("");
            return Err(Error::input(format!(
                "{}: environments.{env}.requires: {r} is not managed by the manifests, so no \
                 release would ever succeed there and {env} would wait forever",
                at_value(&spec.file, text, "requires", r.as_str()),
            ))
            .hint(format!(
                "add environments.{r} (with the release to run there) to a manifest, or \
                 remove requires: from {env}"
            )));
        }
    }
    Ok(Desired {
        releases,
        environments,
        notifications,
        notifications_file,
    })
}

/// Checks `notifications:`; a URL is never quoted back (it may hold a secret).
fn notifications_of(
    path: &Path,
    text: &str,
    list: &[schema::Notification],
) -> Result<Vec<crate::notify::Target>> {
    let mut out: Vec<crate::notify::Target> = Vec::new();
    for (i, n) in list.iter().enumerate() {
        let t = crate::notify::check(n).map_err(|(key, m, h)| {
            let line = key.split('[').next().unwrap_or(&key).to_string();
            Error::input(format!(
                "{}: notifications[{i}].{key}: {m}",
                at(path, text, &line)
            ))
            .hint(h)
        })?;
        if let Some(j) = out.iter().position(|o| o.url == t.url) {
            return Err(Error::input(format!(
                "{}: notifications[{i}].url: the same URL as notifications[{j}] ({})",
                path.display(),
                t.shown()
            ))
            .hint("declare each webhook once, with every event it should receive"));
        }
        out.push(t);
    }
    Ok(out)
}

fn policy(path: &Path, text: &str, env: Env, spec: &schema::Environment) -> Result<Policy> {
    let bad = |key: &str, message: String, hint: &str| {
        Error::input(format!(
            "{}: environments.{env}.{key}: {message}",
            at(path, text, key.split('.').next_back().unwrap_or(key))
        ))
        .hint(hint.to_string())
    };
    let requires = spec.requires.map(|r| r.0);
    if let Some(r) = requires
        && r >= env
    {
        return Err(bad(
            "requires",
            format!("{env} cannot require {r}: environments are promoted dev → staging → prod"),
            "name an environment that comes before it",
        ));
    }
    let max_attempts = spec.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if !(1..=100).contains(&max_attempts) {
        return Err(bad(
            "max_attempts",
            format!("{max_attempts} is out of range"),
            "use a number from 1 to 100",
        ));
    }
    let mut gates = Vec::new();
    for (name, gate) in &spec.gates.0 {
        let key = format!("gates.{name}");
        check_gate_name(name).map_err(|m| bad(&key, m, "a gate is named with 1 to 50 letters, digits, '-' or '_', e.g. qa or security-scan"))?;
        let mut gate = gate.clone();
        if let Some(approvers) = &mut gate.approvers {
            check_approvers(gate.approvals, approvers)
                .map_err(|(m, h)| bad(&format!("{key}.approvers"), m, h))?;
            check_keys(approvers).map_err(|(who, m, h)| {
                // The line of the person's entry when it has one of its own.
                let name = who.split('[').next().unwrap_or(&who);
                let line = if at(path, text, name) == path.display().to_string() {
                    "approvers".to_string()
                } else {
                    name.to_string()
                };
                Error::input(format!(
                    "{}: environments.{env}.{key}.approvers.{who}: {m}",
                    at(path, text, &line)
                ))
                .hint(h)
            })?;
        }
        let gate = &gate;
        match (&gate.approvals, &gate.command) {
            (Some(0), None) => {
                return Err(bad(
                    &key,
                    "approvals: 0 approves nothing".into(),
                    "use 1 or more, or remove the gate",
                ));
            }
            (Some(_), None) if gate.timeout.is_some() => {
                return Err(bad(
                    &key,
                    "timeout applies to command gates only".into(),
                    "remove timeout",
                ));
            }
            (Some(_), None) if gate.kill_grace.is_some() => {
                return Err(bad(
                    &key,
                    "kill_grace applies to command gates only".into(),
                    "remove kill_grace",
                ));
            }
            (Some(_), None) => {
                if let Some(e) = gate.expires
                    && e.0 < MIN_EXPIRES
                {
                    return Err(bad(
                        &format!("{key}.expires"),
                        format!(
                            "approvals that expire after {} would never count",
                            crate::duration::format(e.0)
                        ),
                        "use a duration of at least 1s, e.g. 24h, or remove expires",
                    ));
                }
            }
            (None, Some(_)) if gate.self_approval.is_some() || gate.expires.is_some() => {
                let field = if gate.self_approval.is_some() {
                    "self_approval"
                } else {
                    "expires"
                };
                return Err(bad(
                    &format!("{key}.{field}"),
                    format!("{field} applies to approval gates only"),
                    &format!("remove {field}"),
                ));
            }
            (None, Some(argv)) if argv.is_empty() || argv[0].is_empty() => {
                return Err(bad(
                    &key,
                    "command is empty".into(),
                    "write the program and its arguments, e.g. command: [\"./scripts/scan.sh\"]",
                ));
            }
            (None, Some(argv)) => {
                let field = format!("{key}.command");
                check_argv(argv).map_err(|m| bad(&field, m, ARGV_HINT))?;
                if let Some(t) = gate.timeout {
                    check_timeout(t.0).map_err(|(m, h)| bad(&format!("{key}.timeout"), m, &h))?;
                }
                if let Some(grace) = gate.kill_grace {
                    check_kill_grace(grace.0)
                        .map_err(|(m, h)| bad(&format!("{key}.kill_grace"), m, &h))?;
                }
            }
            _ => {
                return Err(bad(
                    &key,
                    "a gate has either approvals: N or command: [...]".into(),
                    "keep exactly one of the two",
                ));
            }
        }
        gates.push(NamedGate {
            name: name.clone(),
            gate: gate.clone(),
        });
    }
    match &spec.executor {
        Some(ExecutorSpec {
            simulate: Some(s),
            command: None,
        }) => {
            if let Some(rate) = s.failure_rate
                && !(0.0..=1.0).contains(&rate)
            {
                return Err(bad(
                    "executor.simulate.failure_rate",
                    format!("{rate} is not between 0.0 and 1.0"),
                    "use a rate such as 0.1",
                ));
            }
        }
        Some(ExecutorSpec {
            simulate: None,
            command: Some(c),
        }) => {
            if c.run.is_empty() || c.run[0].is_empty() {
                return Err(bad(
                    "executor.command.run",
                    "the command is empty".into(),
                    "write the program and its arguments, e.g. run: [\"./deploy.sh\"]",
                ));
            }
            check_argv(&c.run).map_err(|m| bad("executor.command.run", m, ARGV_HINT))?;
            if let Some(r) = &c.rollback {
                check_argv(r).map_err(|m| bad("executor.command.rollback", m, ARGV_HINT))?;
            }
            if c.rollback
                .as_ref()
                .is_some_and(|r| r.is_empty() || r[0].is_empty())
            {
                return Err(bad(
                    "executor.command.rollback",
                    "the command is empty".into(),
                    "remove it or write the program and its arguments",
                ));
            }
            if let Some(t) = c.timeout {
                check_timeout(t.0).map_err(|(m, h)| bad("executor.command.timeout", m, &h))?;
            }
            if let Some(grace) = c.kill_grace {
                check_kill_grace(grace.0)
                    .map_err(|(m, h)| bad("executor.command.kill_grace", m, &h))?;
            }
        }
        Some(_) => {
            return Err(bad(
                "executor",
                "an executor is either simulate: or command:".into(),
                "keep exactly one of the two",
            ));
        }
        None => {}
    }
    if let Some(v) = &spec.verify {
        check_verify(v).map_err(|(key, m, h)| bad(&key, m, &h))?;
    }
    if let Some(w) = &spec.windows {
        crate::window::parse(w).map_err(|e| {
            let place = match &e.near {
                Some((key, value)) => at_value(path, text, key, value),
                None => at(path, text, "windows"),
            };
            Error::input(format!(
                "{place}: environments.{env}.{}: {}",
                e.key, e.message
            ))
            .hint(e.hint)
        })?;
    }
    let policy = Policy {
        requires,
        gates,
        executor: spec.executor.clone(),
        verify: spec.verify.clone(),
        windows: spec.windows.clone(),
        on_failure: spec.on_failure.map(|o| o.0).unwrap_or(OnFailure::Replan),
        max_attempts,
    };
    // Stored as JSON by reconcile (and recorded in the audit log): bounded here so
    // that a PR check refuses it, the same way for every backend.
    let stored = stored::compact(&policy).len();
    if stored > MAX_POLICY_BYTES {
        return Err(Error::input(format!(
            "{}: environments.{env}: the policy is {stored} bytes once stored; at most \
             {MAX_POLICY_BYTES} are allowed",
            path.display()
        ))
        .hint(
            if policy
                .gates
                .iter()
                .any(|g| g.gate.approvers.as_ref().is_some_and(|a| a.signed()))
            {
                "move long command lines into a script in the repository and call it; an \
                 ed25519 key takes 80 bytes where an RSA key takes up to 750"
            } else {
                "move long command lines into a script in the repository and call it"
            },
        ));
    }
    Ok(policy)
}

/// Checks `verify:`; `Err((key path under the environment, message, hint))`.
fn check_verify(v: &VerifySpec) -> std::result::Result<(), (String, String, String)> {
    let err = |key: &str, m: String, h: &str| (key.to_string(), m, h.to_string());
    match (&v.command, &v.http) {
        (Some(argv), None) => {
            if argv.is_empty() || argv[0].is_empty() {
                return Err(err(
                    "verify.command",
                    "the command is empty".into(),
                    "write the program and its arguments, e.g. command: [\"./scripts/smoke.sh\"]",
                ));
            }
            check_argv(argv).map_err(|m| err("verify.command", m, ARGV_HINT))?;
        }
        (None, Some(http)) => {
            crate::verify::check_url(&http.url).map_err(|(m, h)| err("verify.http.url", m, &h))?;
            if let Some(text) = &http.contains {
                crate::verify::check_template(text)
                    .map_err(|(m, h)| err("verify.http.contains", m, &h))?;
                if text.is_empty() {
                    return Err(err(
                        "verify.http.contains",
                        "the text is empty".into(),
                        "remove contains, or write the text the body must hold, e.g. \"{version}\"",
                    ));
                }
            }
            if let Some(status) = http.status
                && !(100..=599).contains(&status)
            {
                return Err(err(
                    "verify.http.status",
                    format!("{status} is not an HTTP status"),
                    "use a status from 100 to 599, e.g. 200",
                ));
            }
        }
        (Some(_), Some(_)) | (None, None) => {
            return Err(err(
                "verify",
                "a verification has either command: [...] or http: { url: ... }".into(),
                "keep exactly one of the two",
            ));
        }
    }
    if v.http.is_some() && v.kill_grace.is_some() {
        return Err(err(
            "verify.kill_grace",
            "kill_grace applies to a command check only".into(),
            "remove kill_grace",
        ));
    }
    if let Some(t) = v.timeout {
        // The hint for commands speaks of gates and deployments: a try has its own default.
        check_timeout(t.0).map_err(|(m, _)| {
            let hint = format!(
                "use a duration from 1s to 24h, e.g. 10s; without timeout: each try is \
                 stopped after {}",
                crate::duration::format(crate::verify::DEFAULT_TIMEOUT)
            );
            err("verify.timeout", m, &hint)
        })?;
    }
    if let Some(grace) = v.kill_grace {
        check_kill_grace(grace.0).map_err(|(m, h)| err("verify.kill_grace", m, &h))?;
    }
    if let Some(r) = v.retries
        && !(1..=100).contains(&r)
    {
        return Err(err(
            "verify.retries",
            format!("{r} is out of range"),
            "use a number of tries from 1 to 100 (1: a single try)",
        ));
    }
    if let Some(i) = v.interval
        && i.0 > MAX_VERIFY_INTERVAL
    {
        return Err(err(
            "verify.interval",
            format!(
                "an interval of {} is longer than 1h",
                crate::duration::format(i.0)
            ),
            "use a duration up to 1h, e.g. 10s",
        ));
    }
    Ok(())
}

/// A gate's `expires:` below this would let no approval count.
pub const MIN_EXPIRES: Duration = Duration::from_secs(1);
/// `verify.interval:` above this (1h) is a mistake (a typo of unit, most likely).
pub const MAX_VERIFY_INTERVAL: Duration = Duration::from_secs(3600);

/// A command's `timeout:` below this would stop it before it could do anything:
/// every run would fail, so `check` refuses it.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
/// A command's `timeout:` above this (24h) is a mistake (a typo of unit, most likely).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Checks a command's `timeout:` (an executor's or a gate's). `Err`: the message
/// and the hint.
fn check_timeout(timeout: Duration) -> std::result::Result<(), (String, String)> {
    let hint = "use a duration from 1s to 24h, e.g. 10m; without timeout: a gate's command \
                is stopped after 10m, a verification try after 30s, and a deployment command \
                runs until it ends";
    if timeout < MIN_TIMEOUT {
        Err((
            format!(
                "a timeout of {} would stop it before it could do anything: every try would \
                 fail",
                crate::duration::format(timeout)
            ),
            hint.into(),
        ))
    } else if timeout > MAX_TIMEOUT {
        Err((
            format!("a timeout of {}s is longer than 24h", timeout.as_secs()),
            hint.into(),
        ))
    } else {
        Ok(())
    }
}

const ARGV_HINT: &str = "move long command lines into a script in the repository and call it";

/// A gate's name is typed on the command line (`approve --gate NAME`) and stored
/// in a 50-character column: keep it to a plain word.
fn check_gate_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("the gate name is empty".into());
    }
    crate::model::check_chars(
        &format!("the gate name {name:?}"),
        name,
        crate::model::MAX_GATE_NAME_CHARS,
    )?;
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!("the gate name {name:?} contains {c:?}"));
    }
    Ok(())
}

/// Each declared key parsed and put in its stored form (without its comment).
/// `Err((key path under approvers, message, hint))`.
fn check_keys(
    approvers: &mut schema::Approvers,
) -> std::result::Result<(), (String, String, String)> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for a in &mut approvers.0 {
        let many = a.keys.len() > 1;
        for (i, line) in a.keys.iter_mut().enumerate() {
            let who = if many {
                format!("{}[{i}]", words::cut(&a.name))
            } else {
                words::cut(&a.name)
            };
            let stored = crate::signing::parse_key(line).map_err(|(m, h)| (who.clone(), m, h))?;
            if let Some((other, _)) = seen.iter().find(|(_, k)| *k == stored) {
                return Err((
                    who,
                    if *other == a.name {
                        "the same key is listed twice".into()
                    } else {
                        format!("the same key as {other}'s")
                    },
                    "each approver signs with a key of their own: one person could otherwise \
                     approve as two"
                        .into(),
                ));
            }
            seen.push((a.name.clone(), stored.clone()));
            *line = stored;
        }
    }
    Ok(())
}

/// `approvers:` lists who may approve; it must be able to reach `approvals`.
fn check_approvers(
    approvals: Option<u32>,
    approvers: &schema::Approvers,
) -> std::result::Result<(), (String, &'static str)> {
    let names = approvers.names();
    let Some(need) = approvals else {
        return Err((
            "approvers apply to approval gates only".into(),
            "remove approvers, or make the gate approvals: N",
        ));
    };
    let mut seen = std::collections::BTreeSet::new();
    for n in &names {
        crate::model::check_actor("the approver's name", n)
            .map_err(|m| (m, "write each approver as their login name, e.g. alice"))?;
        if !seen.insert(n.as_str()) {
            return Err((format!("{n:?} is listed twice"), "list each approver once"));
        }
    }
    if (seen.len() as u64) < u64::from(need) {
        return Err((
            format!(
                "{} approver(s) listed but {need} distinct approvals are required",
                seen.len()
            ),
            "list at least as many approvers as the approvals the gate requires",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
