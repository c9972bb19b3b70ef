//! How a plan reads: a table of what each environment would do, and a unified
//! diff of the actual state against the desired one (text, JSON or markdown).

use super::Style;
use super::text::{Text, esc, without_output};
use crate::engine::{EnvOutcome, Reconciled};
use crate::executor::command::shown;
use crate::manifest::{Desired, Policy};
use crate::plan::{Action, Actual, EnvPlan, Plan, ReleaseStep};
use serde::Serialize;
use similar::TextDiff;

#[derive(Debug, Serialize)]
pub struct DryRun {
    pub manifests: String,
    /// Whether a ledger was there to plan from ("missing": planned from an empty one).
    pub ledger: Ledger,
    /// Nothing to write or run (exit 0); environments may still be held back.
    pub in_sync: bool,
    /// Environments that differ from the manifests but that reconcile would not
    /// touch now: pinned, busy or blocked by `requires`.
    pub held_back: Vec<crate::model::Env>,
    pub plan: Plan,
    /// What applying would execute, per environment that would deploy (shown, never run).
    pub would_run: Vec<WouldRun>,
    pub diff: String,
    /// How to apply it, for the text's last line: `shipctl reconcile` with the
    /// dry run's `--env`, or `--plan FILE` when it was saved.
    #[serde(skip)]
    pub apply_with: String,
    /// What pending deployments that would run wait for, per environment.
    #[serde(skip)]
    waits: std::collections::BTreeMap<crate::model::Env, Vec<String>>,
}

/// What applying the plan would execute in one environment.
#[derive(Debug, Serialize)]
pub struct WouldRun {
    pub env: crate::model::Env,
    /// "simulated", "command: ./deploy.sh {version}", preceded by the gates it waits on.
    pub run: String,
    /// The environment's deploy windows now (`None`: it declares none): a
    /// closed one makes the deployment wait.
    pub window: Option<crate::engine::WindowStatus>,
}

/// What a dry run planned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ledger {
    Present,
    /// No ledger yet (no file, or a database without tables): an empty one.
    Missing,
}

impl DryRun {
    /// What applying would execute in `env`, and whether its window lets it now.
    fn would_run(&self, env: crate::model::Env) -> Option<String> {
        let w = self.would_run.iter().find(|w| w.env == env)?;
        Some(match &w.window {
            Some(window) if !window.open => {
                format!("{}; waits: {}", w.run, window.message)
            }
            _ => w.run.clone(),
        })
    }

    pub fn new(
        manifests: String,
        desired: &Desired,
        actual: &Actual,
        plan: Plan,
        ledger: Ledger,
    ) -> DryRun {
        let before = actual_text(desired, actual);
        let after = desired_text(desired, actual, &plan);
        let diff = TextDiff::from_lines(&before, &after)
            .unified_diff()
            .context_radius(3)
            .header("actual (database)", "desired (manifests)")
            .to_string();
        let held_back = plan
            .environments
            .iter()
            .filter(|e| {
                matches!(
                    e.action,
                    Action::Pinned { .. }
                        | Action::Busy { .. }
                        | Action::Blocked { .. }
                        | Action::Held { .. }
                )
            })
            .map(|e| e.env)
            .collect();
        // No ledger to ask: this machine's clock.
        let now = actual.now.clone().unwrap_or_else(|| {
            crate::model::Utc::new(
                jiff::Timestamp::now()
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string(),
            )
        });
        let would_run = plan
            .environments
            .iter()
            .filter_map(|e| {
                let Action::Deploy { reuse, .. } = e.action else {
                    return None;
                };
                let policy = &desired.environments.get(&e.env)?.policy;
                // A pending deployment that waits on its gates says so.
                let waiting = reuse
                    .and_then(|id| {
                        let here = actual.envs.get(&e.env)?;
                        here.pending.iter().find(|p| p.id == id)
                    })
                    .filter(|p| !p.waiting.is_empty())
                    .map(|p| format!("{}; ", p.waiting.join("; ")))
                    .unwrap_or_default();
                Some(WouldRun {
                    env: e.env,
                    run: format!("{waiting}{}", executes(policy)),
                    window: crate::engine::WindowStatus::of(e.env, Some(policy), &now),
                })
            })
            .collect();
        // What a deployment that would run waits for: a pending one says
        // (its approvals so far), a new one waits for every approval gate.
        let waits = plan
            .environments
            .iter()
            .filter_map(|e| {
                let Action::Deploy { reuse, .. } = e.action else {
                    return None;
                };
                let waits: Vec<String> = match reuse {
                    Some(id) => actual
                        .envs
                        .get(&e.env)?
                        .pending
                        .iter()
                        .find(|p| p.id == id)?
                        .waiting
                        .clone(),
                    None => desired
                        .environments
                        .get(&e.env)?
                        .policy
                        .gates
                        .iter()
                        .filter_map(|g| {
                            let n = g.gate.approvals?;
                            Some(format!(
                                "waits for {}: {n} approval{}",
                                g.name,
                                if n == 1 { "" } else { "s" }
                            ))
                        })
                        .collect(),
                };
                (!waits.is_empty()).then_some((e.env, waits))
            })
            .collect();
        DryRun {
            manifests,
            ledger,
            apply_with: "shipctl reconcile".into(),
            waits,
            in_sync: !plan.has_changes(),
            held_back,
            would_run,
            plan,
            diff,
        }
    }

    fn held_back_list(&self) -> String {
        self.held_back
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The pull-request comment: one headline per environment (what changes,
    /// what waits and why), then the plan table and the diff in a collapsible
    /// block, the whole under [`MARKDOWN_LIMIT`] characters.
    pub fn markdown(&self) -> String {
        self.markdown_within(MARKDOWN_LIMIT)
    }

    /// [`DryRun::markdown`] within `limit` bytes (at least as many characters).
    /// What does not fit is left out of the collapsible block, whole lines from
    /// the end, and a note says how much and how to see it all; the block's
    /// code fence and `<details>` are always closed.
    pub fn markdown_within(&self, limit: usize) -> String {
        let mut out = String::from("### shipctl reconcile --dry-run\n\n");
        if self.ledger == Ledger::Missing {
            out.push_str("No ledger yet: planned from an empty ledger.\n\n");
        }
        for e in &self.plan.environments {
            out.push_str(&format!("- **{}**: {}\n", e.env, cell(&self.headline(e))));
        }
        let creates: Vec<&str> = self
            .plan
            .releases
            .iter()
            .filter_map(|r| match r {
                ReleaseStep::Create { version, .. } => Some(version.as_str()),
                ReleaseStep::Conflict { .. } => None,
            })
            .collect();
        if !creates.is_empty() {
            let shown: Vec<&str> = creates.iter().take(3).copied().collect();
            let more = match creates.len().saturating_sub(3) {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            out.push_str(&format!(
                "- **releases**: create {}{more}\n",
                cell(&shown.join(", "))
            ));
        }
        out.push('\n');
        let changing = self
            .plan
            .environments
            .iter()
            .filter(|e| e.has_changes())
            .count();
        if self.in_sync && self.held_back.is_empty() {
            out.push_str("**In sync**: merging this changes nothing.\n\n");
        } else if self.in_sync {
            out.push_str(&format!(
                "**Nothing to apply now**: {} held back.\n\n",
                self.held_back_list()
            ));
        } else {
            out.push_str(&format!(
                "**Changes pending**: {changing} environment(s) would change.\n\n"
            ));
        }
        // What is left for the block, with room for its closing lines and the note.
        let mut block = Fit::new(limit.saturating_sub(out.len() + Fit::CLOSING));
        block.open_details("Plan table and diff");
        block.line("| Environment | Live | Desired | Plan |");
        block.line("|---|---|---|---|");
        for e in &self.plan.environments {
            block.line(&format!(
                "| {} | {} | {} | {} |",
                e.env,
                cell(e.live.as_deref().unwrap_or("–")),
                cell(&e.desired),
                cell(
                    &describe(e)
                        .into_iter()
                        .chain(self.would_run(e.env))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            ));
        }
        let steps = release_steps(&self.plan);
        if !steps.is_empty() {
            block.line("");
            block.line("Releases:");
            for step in &steps {
                block.line(&format!("- {}", cell(step)));
            }
        }
        if !self.diff.is_empty() {
            block.line("");
            block.open_fence(fence_for(&self.diff), "diff");
            for line in self.diff.lines() {
                block.line(line);
            }
            block.close_fence();
        }
        block.line("");
        out.push_str(&block.finish());
        out
    }

    /// One environment in a sentence: what changes, or what it waits for and why.
    fn headline(&self, e: &EnvPlan) -> String {
        let live = e.live.as_deref().unwrap_or("nothing");
        let mut parts = Vec::new();
        if !e.policy_unknown.is_empty() {
            parts.push(format!(
                "REFUSED: {}",
                crate::store::ledger::newer_policy_note(e.env, &e.policy_unknown)
            ));
        }
        parts.push(match &e.action {
            Action::InSync if e.has_changes() => {
                let steps = describe(e);
                let extra = &steps[..steps.len().saturating_sub(1)];
                format!("stays on {}; {}", e.desired, extra.join("; "))
            }
            Action::InSync => format!("in sync on {}", e.desired),
            Action::Deploy { after, .. } => format!(
                "{live} → {}: deploys{}",
                e.desired,
                after
                    .map(|r| format!(" once it succeeds in {r}"))
                    .unwrap_or_default()
            ),
            // Pinned, busy, blocked, held: as the plan table says it.
            _ => describe(e).pop().unwrap_or_default(),
        });
        if let Some(waits) = self.waits.get(&e.env) {
            parts.extend(waits.iter().cloned());
        }
        if let Some(w) = self.would_run.iter().find(|w| w.env == e.env)
            && let Some(window) = w.window.as_ref().filter(|w| !w.open)
        {
            parts.push(format!("waits for its window: {}", window.message));
        }
        parts.join("; ")
    }
}

/// GitHub refuses comments over 65,536 characters; a plan stays well under.
pub const MARKDOWN_LIMIT: usize = 60_000;

/// The collapsible block of a markdown plan, filled line by line within a
/// budget: once a line does not fit, it and every later one are counted, not
/// written, and the open code fence and `<details>` are closed all the same.
struct Fit {
    out: String,
    budget: usize,
    fence: Option<String>,
    details: bool,
    left_lines: usize,
    left_bytes: usize,
}

impl Fit {
    /// Room kept for the closing fence, `</details>` and the note.
    const CLOSING: usize = 600;

    fn new(budget: usize) -> Fit {
        Fit {
            out: String::new(),
            budget,
            fence: None,
            details: false,
            left_lines: 0,
            left_bytes: 0,
        }
    }

    fn line(&mut self, line: &str) {
        if self.left_lines > 0 || self.out.len() + line.len() + 1 > self.budget {
            self.left_lines += 1;
            self.left_bytes += line.len() + 1;
            return;
        }
        self.out.push_str(line);
        self.out.push('\n');
    }

    fn open_details(&mut self, summary: &str) {
        self.line(&format!("<details><summary>{summary}</summary>"));
        self.line("");
        self.details = self.left_lines == 0;
    }

    fn open_fence(&mut self, fence: String, lang: &str) {
        self.line(&format!("{fence}{lang}"));
        if self.left_lines == 0 {
            self.fence = Some(fence);
        }
    }

    fn close_fence_if_open(&mut self) {
        if self.fence.is_some() {
            self.close_fence();
        }
    }

    /// Closing lines are structure: written whenever their opening was, out of
    /// the room kept for them.
    fn close_fence(&mut self) {
        match self.fence.take() {
            Some(fence) => {
                self.out.push_str(&fence);
                self.out.push('\n');
            }
            // Never opened: its closing line is left out with the rest.
            None => self.line("```"),
        }
    }

    fn finish(mut self) -> String {
        self.close_fence_if_open();
        let close = if self.details { "</details>\n" } else { "" };
        if self.left_lines == 0 {
            self.out.push_str(close);
            return self.out;
        }
        self.out.push('\n');
        self.out.push_str(close);
        self.out.push('\n');
        self.out.push_str(&format!(
            "> **Cut to fit a pull-request comment**: the last {} line(s) ({} characters) of \
             the plan table and diff are not shown. See all of it with `shipctl reconcile \
             --dry-run` (or `--output json`) on this branch.\n",
            self.left_lines, self.left_bytes
        ));
        self.out
    }
}

/// A code fence longer than any run of backticks in `text`.
fn fence_for(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

/// What an environment's plan does, in one line: its steps, and what a
/// pending deployment it would run waits for. A saved plan keeps it, to say
/// what changed when the plan no longer holds.
pub fn summary(e: &EnvPlan, actual: &Actual) -> String {
    let mut steps = describe(e);
    if let Action::Deploy {
        reuse: Some(id), ..
    } = e.action
        && let Some(p) = actual
            .envs
            .get(&e.env)
            .and_then(|a| a.pending.iter().find(|p| p.id == id))
    {
        steps.extend(p.waiting.iter().cloned());
    }
    steps.join("; ")
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn release_steps(plan: &Plan) -> Vec<String> {
    plan.releases
        .iter()
        .map(|r| match r {
            ReleaseStep::Create { version, tag } => format!("create {version} ({tag})"),
            ReleaseStep::Conflict {
                version,
                declared_tag,
                actual_tag,
            } => format!("CONFLICT {version}: declared {declared_tag}, database has {actual_tag}"),
        })
        .collect()
}

/// What a deployment in an environment would execute, in words.
fn executes(p: &Policy) -> String {
    let mut parts = Vec::new();
    for g in &p.gates {
        match (&g.gate.approvals, &g.gate.command) {
            (Some(n), _) => parts.push(format!(
                "gate {}: {n} approval{}",
                g.name,
                if *n == 1 { "" } else { "s" }
            )),
            (None, Some(c)) => parts.push(format!("gate {}: runs {}", g.name, shown(c))),
            (None, None) => {}
        }
    }
    parts.push(match p.executor.as_ref().and_then(|x| x.command.as_ref()) {
        Some(c) => {
            let mut out = format!("runs {}", shown(&c.run));
            if let Some(r) = &c.rollback {
                out.push_str(&format!(" (on failure: {})", shown(r)));
            }
            out
        }
        None => "simulated".into(),
    });
    if let Some(v) = &p.verify {
        let tries = v.retries.unwrap_or(1);
        parts.push(format!(
            "then verifies: {} ({tries} {})",
            crate::verify::describe(v),
            if tries == 1 { "try" } else { "tries" }
        ));
    }
    parts.join("; ")
}

/// What reconcile would do in one environment, step by step.
pub fn describe(e: &EnvPlan) -> Vec<String> {
    let mut steps = Vec::new();
    if !e.policy_unknown.is_empty() {
        steps.push(format!(
            "REFUSED: {}",
            crate::store::ledger::newer_policy_note(e.env, &e.policy_unknown)
        ));
    }
    if let Some(r) = &e.recover {
        steps.push(format!("recover stale deployment {} (holder died)", r.id));
    }
    if e.lift_pin {
        steps.push("lift the rollback pin".into());
    }
    if e.lift_hold {
        steps.push("lift the hold (the manifests declare another release)".into());
    }
    for c in &e.cancel {
        steps.push(format!(
            "cancel deployment {} ({}) as superseded",
            c.id, c.version
        ));
    }
    if e.update_policy {
        steps.push("store the policy".into());
    }
    let main = match &e.action {
        Action::InSync => "in sync".to_string(),
        Action::Deploy { reuse, after } => {
            let what = match reuse {
                Some(id) => format!("deploy {}: run pending deployment {id}", e.desired),
                None => format!("deploy {}: plan and run", e.desired),
            };
            match after {
                Some(r) => format!("{what}, once it succeeds in {r}"),
                None => what,
            }
        }
        Action::Pinned { pinned_to } => {
            format!(
                "pinned to {pinned_to} by a rollback: not touched (`shipctl unpin --env {}`)",
                e.env
            )
        }
        Action::Busy { running } => format!(
            "busy: deployment {} ({}) is running: not touched",
            running.id, running.version
        ),
        Action::Blocked { requires } => format!(
            "blocked: {} has not succeeded in {requires} (requires)",
            e.desired
        ),
        Action::Held { hold } => format!(
            "held: {}{}: not planned again (declare another release, or \
             `shipctl deploy --release {} --env {}`)",
            hold.reason,
            hold.deployment_id
                .map(|id| format!(" (deployment {id})"))
                .unwrap_or_default(),
            hold.release_id,
            e.env
        ),
    };
    steps.push(main);
    steps
}

impl Text for DryRun {
    fn text(&self, s: &Style) -> String {
        let mut out = format!(
            "Plan for {} {}\n\n",
            self.manifests,
            s.dim("(dry run: nothing written, nothing executed)")
        );
        for e in &self.plan.environments {
            let mut steps = describe(e);
            if let Some(run) = self.would_run(e.env) {
                steps.push(run);
            }
            let shown = if e.has_changes() {
                s.yellow(&steps.join("; "))
            } else {
                steps.join("; ")
            };
            out.push_str(&format!(
                "  {:<8} {:<10} → {:<10} {shown}\n",
                e.env.as_str(),
                e.live.as_deref().unwrap_or("–"),
                e.desired
            ));
        }
        let creates = release_steps(&self.plan);
        if !creates.is_empty() {
            out.push_str(&format!("  releases: {}\n", creates.join(", ")));
        }
        if self.in_sync && self.held_back.is_empty() {
            out.push_str(&format!("\n{} in sync: nothing to do\n", s.green("✓")));
        } else if self.in_sync {
            out.push_str(&format!(
                "\n{} nothing to apply now: {} held back\n",
                s.yellow("!"),
                self.held_back_list()
            ));
        } else {
            out.push('\n');
            for line in self.diff.lines() {
                let painted = if line.starts_with("+++") || line.starts_with("---") {
                    s.bold(line)
                } else if line.starts_with('+') {
                    s.green(line)
                } else if line.starts_with('-') {
                    s.red(line)
                } else if line.starts_with("@@") {
                    s.cyan(line)
                } else {
                    line.to_string()
                };
                out.push_str(&painted);
                out.push('\n');
            }
            out.push_str(&format!("\nApply with: {}\n", self.apply_with));
        }
        out
    }
}

/// The desired state as lines, in a stable order, for the diff.
fn desired_text(d: &Desired, a: &Actual, plan: &Plan) -> String {
    let mut out = String::from("releases:\n");
    let mut releases: Vec<_> = d.releases.iter().collect();
    releases.sort_by(|a, b| a.version.cmp(&b.version));
    for r in releases {
        out.push_str(&format!("  {}: tag {}\n", r.version, r.tag));
    }
    for (env, spec) in &d.environments {
        out.push_str(&env_text(env.as_str(), Some(&spec.release), &spec.policy));
        // A rollback pin stays unless the plan lifts it.
        let lifts = plan
            .environments
            .iter()
            .any(|p| p.env == *env && p.lift_pin);
        if !lifts {
            out.push_str(&pin_text(a, *env));
        }
    }
    out
}

/// "  pinned: 1.0 (holding back 1.1)" for an environment a rollback pinned.
fn pin_text(a: &Actual, env: crate::model::Env) -> String {
    match a.envs.get(&env).and_then(|e| e.pin.as_ref()) {
        Some(pin) => format!(
            "  pinned: {}{}\n",
            pin.version,
            pin.blocks
                .as_ref()
                .map(|b| format!(" (holding back {b})"))
                .unwrap_or_default()
        ),
        None => String::new(),
    }
}

/// The same lines for what the database holds, limited to what the manifests manage.
fn actual_text(d: &Desired, a: &Actual) -> String {
    let mut out = String::from("releases:\n");
    let mut versions: Vec<&String> = d.releases.iter().map(|r| &r.version).collect();
    versions.sort();
    for v in versions {
        if let Some(tag) = a.releases.get(v) {
            out.push_str(&format!("  {v}: tag {tag}\n"));
        }
    }
    for env in d.environments.keys() {
        let here = a.envs.get(env);
        let live = here
            .and_then(|e| e.live.as_ref())
            .map(|l| l.version.as_str());
        let policy = here.and_then(|e| e.policy.clone()).unwrap_or_default();
        out.push_str(&env_text(env.as_str(), live, &policy));
        out.push_str(&pin_text(a, *env));
    }
    out
}

fn env_text(env: &str, release: Option<&str>, p: &Policy) -> String {
    let mut out = format!("{env}:\n  release: {}\n", release.unwrap_or("(none)"));
    if let Some(r) = p.requires {
        out.push_str(&format!("  requires: {r}\n"));
    }
    out.push_str(&format!(
        "  on_failure: {}\n  max_attempts: {}\n",
        p.on_failure.as_str(),
        p.max_attempts
    ));
    if let Some(x) = &p.executor {
        out.push_str(&format!(
            "  executor: {}\n",
            crate::manifest::stored::compact(x)
        ));
    }
    for g in &p.gates {
        out.push_str(&format!(
            "  gate {}: {}\n",
            g.name,
            crate::manifest::stored::compact(&g.gate)
        ));
    }
    if let Some(v) = &p.verify {
        out.push_str(&format!(
            "  verify: {}\n",
            crate::manifest::stored::compact(v)
        ));
    }
    if let Some(w) = &p.windows {
        out.push_str(&format!(
            "  windows: {}\n",
            crate::manifest::stored::compact(w)
        ));
    }
    out
}

/// The result of `reconcile` (or of one round of `reconcile --watch`).
#[derive(Debug, Serialize)]
pub struct ReconcileView {
    pub manifests: String,
    #[serde(flatten)]
    pub result: Reconciled,
}

impl Text for ReconcileView {
    fn text(&self, s: &Style) -> String {
        let r = &self.result;
        if r.in_sync() {
            let mut out = format!(
                "{} {}: in sync, nothing to do\n",
                s.green("✓"),
                self.manifests
            );
            for e in &r.environments {
                out.push_str(&format!("  {:<8} {}\n", e.env.as_str(), e.desired));
            }
            return out;
        }
        let mut out = format!("Reconciled {}\n", self.manifests);
        if r.notifications_updated {
            out.push_str(&format!("  {:<8} updated from the manifests\n", "webhooks"));
        }
        if !r.releases_created.is_empty() {
            out.push_str(&format!(
                "  {:<8} created {}\n",
                "releases",
                r.releases_created.join(", ")
            ));
        }
        for e in &r.environments {
            let from = e.live_before.as_deref().unwrap_or("–");
            let head = format!("  {:<8} {from} → {:<8}", e.env.as_str(), e.desired);
            let line = match &e.outcome {
                EnvOutcome::InSync => "in sync".to_string(),
                EnvOutcome::Deployed { execution: x } => format!(
                    "{} deployed (deployment {}, {:.1}s)",
                    s.green("✓"),
                    x.deployment.id,
                    x.duration_ms as f64 / 1000.0
                ),
                EnvOutcome::Failed { execution: x } => format!(
                    "{} failed: {}; deployment {} is {}, {} {}",
                    s.red("✗"),
                    without_output(x.error.as_deref().unwrap_or("unknown error")),
                    x.deployment.id,
                    x.deployment.state,
                    e.env,
                    match (&x.rollback_command, e.live_before.as_deref()) {
                        (Some(rc), _) if rc.succeeded =>
                            format!("is back on {} (its rollback command ran)", rc.version),
                        (Some(rc), _) => format!(
                            "may be broken: its rollback command for {} failed",
                            rc.version
                        ),
                        (None, Some(live)) => format!("stays on {live}"),
                        (None, None) => "has nothing deployed".to_string(),
                    }
                ),
                EnvOutcome::Pinned { pinned_to } => format!(
                    "{} pinned to {pinned_to} by a rollback; not touched (`shipctl unpin --env {}`)",
                    s.yellow("!"),
                    e.env
                ),
                EnvOutcome::Busy { message } => {
                    format!("{} busy: {}; not touched", s.yellow("!"), esc(message))
                }
                EnvOutcome::Blocked { message } => {
                    format!("{} blocked: {}", s.yellow("!"), esc(message))
                }
                EnvOutcome::Closed { message, .. } => {
                    format!("{} {}", s.yellow("!"), esc(message))
                }
                EnvOutcome::Held { message, .. } => {
                    let env_prefix = format!("{}: ", e.env);
                    let message = message.strip_prefix(&env_prefix).unwrap_or(message);
                    format!("{} {}", s.yellow("!"), esc(message))
                }
                EnvOutcome::Skipped { reason } => {
                    format!("{} skipped: {}", s.dim("-"), esc(reason))
                }
                EnvOutcome::Interrupted { message, .. } => {
                    format!("{} {}", s.red("✗"), esc(message))
                }
                EnvOutcome::Unrecorded { message } | EnvOutcome::Stale { message } => {
                    format!("{} {}", s.red("✗"), esc(message))
                }
            };
            out.push_str(&format!("{head} {line}\n"));
            for step in &e.steps {
                out.push_str(&format!("  {:<8} {}\n", "", s.dim(&format!("· {step}"))));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{DeclaredRelease, EnvSpec};
    use crate::model::Env;

    /// A first plan of `n` releases, every environment on the last one.
    fn plan_of(n: usize) -> DryRun {
        let releases: Vec<DeclaredRelease> = (0..n)
            .map(|i| DeclaredRelease {
                version: format!("1.0.{i}"),
                tag: format!("v1.0.{i}"),
                file: "manifests/releases.yaml".into(),
            })
            .collect();
        let last = releases
            .last()
            .map(|r| r.version.clone())
            .unwrap_or_default();
        let environments = Env::ALL
            .into_iter()
            .map(|env| {
                let spec = EnvSpec {
                    release: last.clone(),
                    policy: Policy::default(),
                    file: "manifests/envs.yaml".into(),
                };
                (env, spec)
            })
            .collect();
        let desired = Desired {
            releases,
            environments,
            notifications: Vec::new(),
            notifications_file: None,
        };
        let actual = Actual::default();
        let plan = crate::plan::plan(&desired, &actual);
        DryRun::new("manifests".into(), &desired, &actual, plan, Ledger::Missing)
    }

    /// Every code fence opened is closed, and so is every `<details>`.
    fn assert_balanced(md: &str) {
        let fences = md.lines().filter(|l| l.starts_with("```")).count();
        assert_eq!(fences % 2, 0, "an unclosed code fence:\n{md}");
        assert_eq!(
            md.matches("<details>").count(),
            md.matches("</details>").count(),
            "an unclosed <details>"
        );
    }

    #[test]
    fn ten_thousand_releases_fit_a_comment_and_say_they_were_cut() {
        let dry = plan_of(10_000);
        let whole = dry.markdown_within(usize::MAX);
        assert!(whole.len() > MARKDOWN_LIMIT, "the test plan is too small");
        let md = dry.markdown();
        assert!(
            md.chars().count() < MARKDOWN_LIMIT,
            "{} characters",
            md.chars().count()
        );
        assert!(md.contains("**Cut to fit a pull-request comment**"), "{md}");
        // The note says how much was left out, and it adds up.
        let left: usize = md
            .split("the last ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("how many lines were left out");
        assert_eq!(
            md.lines().count() + left,
            whole.lines().count() + 3,
            "shown + left out = all (the note adds 3 lines)"
        );
        assert!(md.contains("shipctl reconcile --dry-run"));
        assert_balanced(&md);
        // The headlines come first, whole, before the collapsible block.
        let block = md.find("<details>").expect("a collapsible block");
        for env in ["dev", "staging", "prod"] {
            let at = md
                .find(&format!("- **{env}**: nothing → 1.0.9999: deploys"))
                .expect("a headline per environment");
            assert!(at < block);
        }
        assert!(md[..block].contains("- **releases**: create 1.0.0, 1.0.1, 1.0.2 and 9997 more"));
    }

    #[test]
    fn a_small_plan_is_whole_and_a_tight_budget_still_closes_the_block() {
        let dry = plan_of(3);
        let md = dry.markdown();
        assert!(!md.contains("Cut to fit"), "{md}");
        assert!(
            md.contains("```diff\n") && md.trim_end().ends_with("</details>"),
            "{md}"
        );
        assert_balanced(&md);
        // Cut inside the diff, and before it opens: closed either way.
        for limit in [1_500, 1_100, 900] {
            let cut = dry.markdown_within(limit);
            assert!(cut.len() <= limit, "{limit}: {} bytes", cut.len());
            assert!(cut.contains("Cut to fit"), "{limit}:\n{cut}");
            assert_balanced(&cut);
        }
    }

    #[test]
    fn fences_outgrow_the_backticks_they_hold() {
        assert_eq!(fence_for("no ticks"), "```");
        assert_eq!(fence_for("a ``` b"), "````");
        assert_eq!(fence_for("`````"), "``````");
    }
}
