//! How each result reads on a terminal.

use super::Style;
use crate::engine::{
    Approval, AuditLog, EnvStatus, Execution, GateState, GateStatus, History, Outcome,
    RollbackReport, Unpinned,
};
use crate::model::Etat;
use crate::store::ledger::{AuditRow, Deployment, Release};
use serde::Serialize;

pub trait Text {
    fn text(&self, s: &Style) -> String;
}

fn state(s: &Style, etat: Etat) -> String {
    let name = etat.as_str();
    match etat {
        Etat::Reussi => s.green(name),
        Etat::Echec => s.red(name),
        Etat::EnCours => s.cyan(name),
        Etat::Planifie | Etat::Valide => s.yellow(name),
        Etat::Annule => s.dim(name),
    }
}

/// Columns padded by characters, not bytes, so `réussi` lines up with `planifié`.
fn table(s: &Style, headers: &[&str], rows: &[Vec<(String, String)>], indent: &str) -> String {
    // Columns on a terminal: a wide character (CJK, most emoji) takes two.
    let cols = |text: &str| unicode_width::UnicodeWidthStr::width(text);
    let mut widths: Vec<usize> = headers.iter().map(|h| cols(h)).collect();
    for row in rows {
        for (i, (plain, _)) in row.iter().enumerate() {
            widths[i] = widths[i].max(cols(plain));
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<(String, String)>| {
        let mut l = String::from(indent);
        let last = cells.len() - 1;
        for (i, (plain, shown)) in cells.into_iter().enumerate() {
            l.push_str(&shown);
            if i < last {
                l.push_str(&" ".repeat(widths[i] - cols(&plain) + 2));
            }
        }
        l.push('\n');
        l
    };
    out.push_str(&line(
        headers.iter().map(|h| (h.to_string(), s.dim(h))).collect(),
    ));
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// A table whose rows may each be followed by lines of their own (gate
/// results, a command's output), indented under the row.
fn table_with_notes(
    s: &Style,
    headers: &[&str],
    rows: &[Vec<(String, String)>],
    indent: &str,
    notes: &[Vec<String>],
) -> String {
    let table = table(s, headers, rows, indent);
    let mut lines = table.lines();
    let mut out = String::new();
    if let Some(head) = lines.next() {
        out.push_str(head);
        out.push('\n');
    }
    for (i, line) in lines.enumerate() {
        out.push_str(line);
        out.push('\n');
        for note in notes.get(i).into_iter().flatten() {
            out.push_str(note);
            out.push('\n');
        }
    }
    out
}

/// A table cell: stored text, escaped (see `esc`).
fn plain(v: impl ToString) -> (String, String) {
    let v = esc(&v.to_string()).into_owned();
    (v.clone(), v)
}

/// Text from the ledger as a terminal should show it: a control character or
/// bidi override (which rows written by older versions, or by hand, may hold)
/// is written as `\u{1b}`, so that it can neither erase its line nor forge
/// another. JSON output keeps the exact text.
pub(super) fn esc(text: &str) -> std::borrow::Cow<'_, str> {
    escape(text, &[])
}

/// Like `esc` for a line of a command's output kept in a message, where a
/// tab is left as it is.
fn esc_output(text: &str) -> std::borrow::Cow<'_, str> {
    escape(text, &['\t'])
}

/// A message without the command output it may end with ("...; output:\n..."):
/// that output was shown on stderr as it came, and `audit` keeps it.
pub(super) fn without_output(message: &str) -> std::borrow::Cow<'_, str> {
    esc(message
        .split_once("; output:\n")
        .map_or(message, |(h, _)| h))
}

/// `esc`, leaving the characters of `keep` as they are.
pub(super) fn escape<'a>(text: &'a str, keep: &[char]) -> std::borrow::Cow<'a, str> {
    let unsafe_char = |c: char| crate::model::is_unsafe_char(c) && !keep.contains(&c);
    if !text.chars().any(unsafe_char) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

fn deployment_row(s: &Style, d: &Deployment) -> Vec<(String, String)> {
    let mut st = (d.state.as_str().to_string(), state(s, d.state));
    if d.lease_stale {
        st.0.push_str(" (stale)");
        st.1.push_str(&s.red(" (stale)"));
    }
    vec![
        plain(d.id),
        plain(&d.version),
        plain(&d.tag),
        st,
        plain(d.attempts),
        plain(&d.date),
    ]
}

impl Text for Release {
    fn text(&self, s: &Style) -> String {
        format!(
            "Created release {}: {} (tag {})",
            s.bold(&self.id.to_string()),
            self.version,
            self.tag
        )
    }
}

/// `release --list`.
#[derive(Serialize)]
pub struct Releases {
    pub releases: Vec<Release>,
}

impl Text for Releases {
    fn text(&self, s: &Style) -> String {
        if self.releases.is_empty() {
            return "No releases yet. Create one with `shipctl release --create 1.0.0 --tag v1.0.0`."
                .into();
        }
        let rows: Vec<_> = self
            .releases
            .iter()
            .map(|r| {
                vec![
                    plain(r.id),
                    plain(&r.version),
                    plain(&r.tag),
                    plain(&r.created_at),
                ]
            })
            .collect();
        table(s, &["ID", "VERSION", "TAG", "CREATED (UTC)"], &rows, "")
    }
}

impl Text for Deployment {
    fn text(&self, s: &Style) -> String {
        format!(
            "Planned deployment {}: release {} to {} ({})\nRun it with: shipctl validate --deploy-id {}",
            s.bold(&self.id.to_string()),
            self.version,
            self.env,
            state(s, self.state),
            self.id
        )
    }
}

impl Text for Execution {
    fn text(&self, s: &Style) -> String {
        let d = &self.deployment;
        let secs = format!("{:.1}s", self.duration_ms as f64 / 1000.0);
        let mut out = String::new();
        out.push_str(&recovered_line(s, self.recovered));
        for g in &self.gates {
            out.push_str(&gate_line(s, g));
        }
        if let Some(w) = &self.closed_window {
            out.push_str(&format!(
                "  {} {}: went through anyway (audited window.overridden)\n",
                s.yellow("!"),
                esc(w)
            ));
        }
        for t in self.verification.iter().flat_map(|v| &v.tries) {
            out.push_str(&format!(
                "  {} verify {}/{}: {}\n",
                if t.passed {
                    s.green("✓")
                } else {
                    s.red("✗")
                },
                t.number,
                t.of,
                without_output(&t.message)
            ));
        }
        match (&self.outcome, &self.rolled_back) {
            (Outcome::Rejected, _) => out.push_str(&format!(
                "{} Deployment {} ({} to {}) rejected: {}\n  it is {}; nothing was deployed. \
                 A new attempt passes the gates again: declare another release in the \
                 manifests, or `shipctl deploy --release {} --env {}`",
                s.red("✗"),
                d.id,
                d.version,
                d.env,
                esc(self.error.as_deref().unwrap_or("a gate said no")),
                state(s, d.state),
                d.release_id,
                d.env
            )),
            (Outcome::Succeeded, None) => out.push_str(&format!(
                "{} Deployment {}: release {} is live in {} ({secs}, attempt {})",
                s.green("✓"),
                d.id,
                s.bold(&d.version),
                d.env,
                d.attempts
            )),
            (Outcome::Succeeded, Some(rb)) => out.push_str(&format!(
                "{} Rolled back deployment {} ({}): release {} restored in {} by deployment {} ({secs})\n  \
                 {} is pinned to {}; `shipctl unpin --env {}` lifts the pin",
                s.green("✓"),
                rb.id,
                rb.version,
                s.bold(&d.version),
                d.env,
                d.id,
                d.env,
                d.version,
                d.env
            )),
            (_, rolled_back) => {
                let err = self.error.as_deref().unwrap_or("unknown error");
                let what = match rolled_back {
                    Some(rb) => format!("Rollback of deployment {}", rb.id),
                    None => format!("Deployment {}", d.id),
                };
                out.push_str(&format!(
                    "{} {what} failed after {secs}: {}\n",
                    s.red("✗"),
                    without_output(err)
                ));
                if let Some(rc) = &self.rollback_command {
                    let mark = if rc.succeeded {
                        s.green("✓")
                    } else {
                        s.red("✗")
                    };
                    out.push_str(&format!("  {mark} {}\n", without_output(&rc.message)));
                }
                let unverified = self.verification.as_ref().is_some_and(|v| !v.passed);
                let next = match (d.state, rolled_back) {
                    (Etat::Echec, None) if unverified => format!(
                        "  {}; {} {} is held in {}: reconcile will not plan it again until the \
                         manifests declare another release (or `shipctl deploy --release {} --env {}`)",
                        state(s, d.state),
                        s.yellow("release"),
                        d.version,
                        d.env,
                        d.release_id,
                        d.env
                    ),
                    (_, Some(rb)) => format!(
                        "  release {} stays live in {}; the restore (deployment {}) is {}",
                        rb.version,
                        d.env,
                        d.id,
                        state(s, d.state)
                    ),
                    (Etat::Planifie, None) => format!(
                        "  rolled back to {} (attempt {}); retry with `shipctl validate --deploy-id {}`",
                        state(s, d.state),
                        d.attempts,
                        d.id
                    ),
                    _ => format!(
                        "  rolled back and {} after {} attempt(s); plan it again with `shipctl deploy`",
                        state(s, d.state),
                        d.attempts
                    ),
                };
                out.push_str(&next);
            }
        }
        out
    }
}

impl Text for RollbackReport {
    fn text(&self, s: &Style) -> String {
        match self {
            RollbackReport::Cancelled { deployment: d } => format!(
                "Cancelled deployment {}: release {} to {} is now {}",
                d.id,
                d.version,
                d.env,
                state(s, d.state)
            ),
            RollbackReport::Restored(exec) => exec.text(s),
        }
    }
}

impl Text for EnvStatus {
    fn text(&self, s: &Style) -> String {
        let mut out = format!("{}\n", s.bold(self.env.as_str()));
        let field = |name: &str| format!("  {:<12} ", name);
        out.push_str(&field("live"));
        match &self.live {
            Some(l) => out.push_str(&format!(
                "{} (tag {})  deployment {}, since {} UTC\n",
                s.green(&esc(&l.version)),
                esc(&l.tag),
                l.id,
                l.date
            )),
            None => out.push_str(&s.dim("nothing deployed yet\n")),
        }
        out.push_str(&field("in progress"));
        match &self.in_progress {
            Some(r) if r.lease_stale => out.push_str(&format!(
                "{} deployment {} ({}): holder {} stopped heartbeating at {} UTC; \
                 the next writing command recovers it\n",
                s.red("stale"),
                r.id,
                esc(&r.version),
                esc(r.lease_holder.as_deref().unwrap_or("unknown")),
                r.lease_expires_at.as_deref().unwrap_or("?")
            )),
            Some(r) => out.push_str(&format!(
                "deployment {} ({}), attempt {}, held by {} until {} UTC\n",
                s.cyan(&r.id.to_string()),
                esc(&r.version),
                r.attempts,
                esc(r.lease_holder.as_deref().unwrap_or("unknown")),
                r.lease_expires_at.as_deref().unwrap_or("?")
            )),
            None => out.push_str(&s.dim("none\n")),
        }
        out.push_str(&field("pending"));
        if self.pending.is_empty() {
            out.push_str(&s.dim("none\n"));
        } else {
            let items: Vec<String> = self
                .pending
                .iter()
                .map(|p| {
                    let gates = match (p.gates_running, &p.lease_holder) {
                        (true, Some(holder)) => format!(", gates running in {}", esc(holder)),
                        _ => String::new(),
                    };
                    format!(
                        "{} ({}, {}{gates})",
                        p.id,
                        esc(&p.version),
                        state(s, p.state)
                    )
                })
                .collect();
            out.push_str(&items.join(", "));
            out.push('\n');
            for dg in &self.gates {
                let waiting = dg.gates.iter().find(|g| g.status == GateStatus::Waiting);
                out.push_str(&format!(
                    "    deployment {}{}\n",
                    dg.deployment,
                    match waiting {
                        Some(g) => format!(
                            ": waiting for approval; `shipctl approve --deploy-id {} --gate {}{}`",
                            dg.deployment,
                            g.gate,
                            if g.signed { " --sign KEY" } else { "" }
                        ),
                        None => String::new(),
                    }
                ));
                for g in &dg.gates {
                    out.push_str("  ");
                    out.push_str(&gate_line(s, g));
                }
            }
        }
        if let Some(newer) = &self.newer_policy {
            out.push_str(&field("policy"));
            out.push_str(&format!("{}\n", s.red(&esc(&newer.message))));
        }
        if let Some(refused) = &self.policy_refused {
            out.push_str(&field("policy"));
            out.push_str(&format!(
                "{}; `shipctl reconcile` stores the manifests' policy\n",
                s.red(&esc(refused))
            ));
        }
        if let Some(pin) = &self.pin {
            out.push_str(&field("pinned"));
            out.push_str(&format!(
                "{} {}{} since {} UTC; `shipctl unpin --env {}` lifts it\n",
                s.yellow("to"),
                esc(&pin.version),
                pin.blocks_version
                    .as_ref()
                    .map(|b| format!(" (holding back {})", esc(b)))
                    .unwrap_or_default(),
                pin.since.as_deref().unwrap_or("?"),
                self.env
            ));
        }
        if let Some(w) = &self.window {
            out.push_str(&field("window"));
            let shown = esc(&w.message);
            out.push_str(&if w.open {
                format!("{}\n", s.green(&shown))
            } else {
                format!("{}\n", s.yellow(&shown))
            });
        }
        if let Some(hold) = &self.hold {
            out.push_str(&field("held"));
            out.push_str(&format!(
                "{} {}: {}{} since {} UTC; declare another release, or \
                 `shipctl deploy --release {} --env {}` to try again\n",
                s.yellow("release"),
                esc(&hold.version),
                esc(&hold.reason),
                hold.deployment_id
                    .map(|id| format!(" (deployment {id})"))
                    .unwrap_or_default(),
                hold.since,
                hold.release_id,
                self.env
            ));
        }
        if !self.recent.is_empty() {
            out.push_str(&format!("  {}\n", "recent"));
            let rows: Vec<_> = self.recent.iter().map(|d| deployment_row(s, d)).collect();
            out.push_str(&table(
                s,
                &["ID", "RELEASE", "TAG", "STATE", "ATTEMPTS", "DATE (UTC)"],
                &rows,
                "    ",
            ));
        }
        out
    }
}

impl Text for Vec<EnvStatus> {
    fn text(&self, s: &Style) -> String {
        self.iter()
            .map(|e| e.text(s))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Text for Unpinned {
    fn text(&self, s: &Style) -> String {
        format!(
            "{}Lifted the pin on {} (it held the environment on release {})",
            recovered_line(s, self.recovered),
            self.env,
            self.pin.version
        )
    }
}

/// The line a writing command prints first when it ended a dead holder's run.
fn recovered_line(s: &Style, recovered: Option<i64>) -> String {
    match recovered {
        Some(r) => format!(
            "{} deployment {r} had a dead holder (lease expired): recorded as échec\n",
            s.yellow("recovered:")
        ),
        None => String::new(),
    }
}

impl Text for AuditLog {
    fn text(&self, s: &Style) -> String {
        let mut out = audit_table(s, &self.rows);
        let hidden = self.total - self.rows.len() as i64;
        if hidden > 0 {
            out.push_str(&format!(
                "… {} older {} not shown; use --limit N or --since\n",
                thousands(hidden),
                if hidden == 1 { "row" } else { "rows" }
            ));
        }
        out
    }
}

impl Text for crate::store::chain::Verified {
    fn text(&self, s: &Style) -> String {
        let chains = self.chains.len();
        let rows = thousands(self.rows);
        let mut out = if self.ok() {
            format!(
                "{} audit log intact: {chains} chains, {rows} rows, every hash recomputed\n",
                s.green("✓")
            )
        } else {
            let broken = self.chains.iter().filter(|c| !c.ok).count();
            format!(
                "{} audit log altered: {} ({broken} of {chains} chains; {rows} rows read)\n",
                s.red("✗"),
                match self.problems.len() {
                    1 => "1 problem".to_string(),
                    n => format!("{n} problems"),
                }
            )
        };
        for c in &self.chains {
            let head = match (&c.head_seq, &c.head_hash, c.ok) {
                (Some(seq), Some(hash), true) => {
                    format!("head: place {seq}, {}…", &hash[..hash.len().min(16)])
                }
                (_, _, true) => "empty".to_string(),
                (Some(seq), _, false) => format!("holds up to place {seq}"),
                (None, _, false) if c.rows == 0 => "no row left".to_string(),
                (None, _, false) => "broken from its first row".to_string(),
            };
            let mark = if c.ok { s.green("✓") } else { s.red("✗") };
            out.push_str(&format!(
                "  {mark} {:<8} {:>9} {}  {head}\n",
                c.chain,
                thousands(c.rows),
                if c.rows == 1 { "row " } else { "rows" }
            ));
        }
        for p in &self.problems {
            out.push_str(&format!("  {} {}\n", s.red("✗"), esc(&p.message)));
        }
        out
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One audit row on one line, in the columns of the table (`audit --follow`
/// prints rows one at a time, as they commit); a command's output, kept in
/// the message, goes under it.
pub(super) fn audit_line(s: &Style, a: &AuditRow) -> String {
    let mut cells = audit_cells(a).into_iter().map(|(_, shown)| shown);
    let mut out = cells.next().unwrap_or_default();
    for cell in cells.filter(|c| !c.is_empty()) {
        out.push_str("  ");
        out.push_str(&cell);
    }
    for l in a.message.lines().skip(1) {
        out.push_str(&format!("\n{} {}", s.dim("    │"), esc_output(l)));
    }
    out
}

fn audit_cells(a: &AuditRow) -> Vec<(String, String)> {
    let change = match (&a.before, &a.after) {
        (None, None) => String::new(),
        (b, after) => format!(
            "{} → {}",
            b.as_deref().unwrap_or("·"),
            after.as_deref().unwrap_or("·")
        ),
    };
    vec![
        plain(&a.date),
        plain(
            a.deployment
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        plain(a.env.as_deref().unwrap_or("-")),
        plain(&a.action),
        plain(change),
        plain(&a.actor),
        plain(a.message.lines().next().unwrap_or_default()),
    ]
}

fn audit_table(s: &Style, audit: &[AuditRow]) -> String {
    if audit.is_empty() {
        return "No audit rows match.".into();
    }
    let rows: Vec<_> = audit.iter().map(audit_cells).collect();
    // A command's output, kept in the message, goes under its row.
    let notes: Vec<Vec<String>> = audit
        .iter()
        .map(|a| {
            a.message
                .lines()
                .skip(1)
                .map(|l| format!("{} {}", s.dim("    │"), esc_output(l)))
                .collect()
        })
        .collect();
    table_with_notes(
        s,
        &[
            "DATE (UTC)",
            "DEPLOY",
            "ENV",
            "ACTION",
            "CHANGE",
            "ACTOR",
            "MESSAGE",
        ],
        &rows,
        "",
        &notes,
    )
}

/// One gate, one line: a mark, its name and where it stands.
fn gate_line(s: &Style, g: &GateState) -> String {
    let mark = match g.status {
        GateStatus::Approved | GateStatus::Passed => s.green("✓"),
        GateStatus::Rejected | GateStatus::Failed => s.red("✗"),
        GateStatus::Waiting | GateStatus::NotRun => s.yellow("…"),
    };
    let summary = g.summary();
    // A command's output can be long: its first line here, all of it in the audit log.
    let first = summary.lines().next().unwrap_or_default();
    format!("  {mark} gate {}\n", esc(first))
}

impl Text for Approval {
    fn text(&self, s: &Style) -> String {
        let d = &self.deployment;
        let verb = if self.decision == "rejected" {
            s.red("rejected")
        } else {
            s.green("approved")
        };
        let mut out = recovered_line(s, self.recovered);
        out.push_str(&if self.recorded {
            format!(
                "{} {verb} deployment {} ({} to {}) at gate {}\n",
                self.actor, d.id, d.version, d.env, self.gate
            )
        } else {
            format!(
                "{} had already {verb} deployment {} at gate {}: it counts once, nothing new recorded\n",
                self.actor, d.id, self.gate
            )
        });
        if let Some(signed) = &self.signed {
            out.push_str(&format!(
                "  signed with {} (namespace {}); the statement:\n",
                signed.key_fingerprint,
                crate::signing::NAMESPACE
            ));
            for line in signed.statement.lines() {
                out.push_str(&format!("    {}\n", esc(line)));
            }
        }
        for g in &self.gates {
            out.push_str(&gate_line(s, g));
        }
        let next = if self.gates.iter().any(|g| g.status == GateStatus::Rejected) {
            format!(
                "a rejection stands: the next validation ends deployment {} as échec",
                d.id
            )
        } else if self.ready {
            format!(
                "approvals complete: `shipctl validate --deploy-id {}` (or the next reconcile) deploys it",
                d.id
            )
        } else {
            "more approvals are needed before it can be validated".into()
        };
        out.push_str(&format!("  {next}"));
        out
    }
}

impl Text for History {
    fn text(&self, s: &Style) -> String {
        if self.deployments.is_empty() {
            return format!("No deployments in {} yet.", self.env);
        }
        let mut out = format!("{}\n", s.bold(self.env.as_str()));
        let headers = ["ID", "RELEASE", "TAG", "STATE", "ATTEMPTS", "DATE (UTC)"];
        let rows: Vec<_> = self
            .deployments
            .iter()
            .map(|e| deployment_row(s, &e.deployment))
            .collect();
        let notes: Vec<Vec<String>> = self
            .deployments
            .iter()
            .map(|e| {
                e.gate_results
                    .iter()
                    .map(|r| {
                        let counts = matches!(r.signature_status, None | Some("verified"));
                        let mark = match r.outcome.as_str() {
                            "approved" | "passed" if counts => s.green("✓"),
                            _ => s.red("✗"),
                        };
                        let first = crate::engine::headline(&r.message);
                        let by = match &r.db_user {
                            Some(u) => format!("{} (database user {u})", r.actor),
                            None => r.actor.clone(),
                        };
                        let what = match r.kind.as_str() {
                            "command" => first.to_string(),
                            _ if first.is_empty() => format!("{} by {by}", r.outcome),
                            _ => format!("{} by {by}: {first}", r.outcome),
                        };
                        // Judged against today's keys, as validation would.
                        let signature = match (r.signature_status, &r.signature_problem) {
                            (Some("verified"), _) => {
                                format!(" {}", s.green("(signature verified)"))
                            }
                            (Some(_), Some(why)) => {
                                format!(" {}", s.red(&format!("(does not count: {})", esc(why))))
                            }
                            _ => String::new(),
                        };
                        format!(
                            "      {mark} gate {} {}{signature}  {}",
                            esc(&r.gate),
                            esc(&what),
                            s.dim(&r.date)
                        )
                    })
                    .collect()
            })
            .collect();
        out.push_str(&table_with_notes(s, &headers, &rows, "  ", &notes));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_characters_keep_the_columns_aligned() {
        let s = Style { color: false };
        let rows = vec![
            vec![plain("山田"), plain("approved")],
            vec![plain("bob"), plain("approved")],
        ];
        let out = table(&s, &["ACTOR", "STATE"], &rows, "");
        let starts: Vec<usize> = out
            .lines()
            .map(|l| {
                let at = l.find("approved").or_else(|| l.find("STATE")).unwrap_or(0);
                unicode_width::UnicodeWidthStr::width(&l[..at])
            })
            .collect();
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{out}");
    }

    #[test]
    fn thousands_are_grouped() {
        for (n, want) in [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1000, "1,000"),
            (1234, "1,234"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
            (-1234, "-1,234"),
        ] {
            assert_eq!(thousands(n), want);
        }
    }
}
