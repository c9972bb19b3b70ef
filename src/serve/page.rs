//! `GET /`: the dashboard, an HTML page written on the server. It refreshes
//! itself every ten seconds, needs no JavaScript and fits a phone. Every
//! string from the ledger or the manifests goes through `esc`.

use super::reading::Reading;
use super::watched::State;
use crate::engine::{EnvStatus, GateStatus};
use crate::store::ledger::Deployment;
use std::fmt::Write;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:.8rem;color:#222}\
h1{font-size:1.3rem}h2{font-size:1.1rem;margin:.2rem 0}\
.env{border:1px solid #ccc;border-radius:.4rem;padding:.6rem;margin:.6rem 0}\
.ok{color:#17612e}.bad{color:#a3111b}.wait{color:#8a5a00}.dim{color:#666}\
ul{padding-left:1.2rem;margin:.3rem 0}table{border-collapse:collapse;width:100%;font-size:.85rem}\
td,th{border-bottom:1px solid #eee;padding:.25rem;text-align:left;vertical-align:top}\
.scroll{overflow-x:auto}code{font-size:.9em}";

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn render(reading: &Reading, watched: Option<&State>) -> String {
    let mut h = String::with_capacity(16 * 1024);
    h.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"10\"><title>shipctl</title><style>",
    );
    h.push_str(STYLE);
    h.push_str("</style></head><body><h1>shipctl</h1>");
    if let Some(w) = watched {
        let last = w.last_round.map_or("none yet".to_string(), |t| {
            t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
        });
        let _ = write!(
            h,
            "<p class=\"dim\">last round: {}{}{}</p>",
            esc(&last),
            if w.leader {
                ""
            } else {
                " · standby (applies nothing)"
            },
            match &w.last_error {
                Some(e) => format!(" · <span class=\"bad\">last error: {}</span>", esc(e)),
                None => String::new(),
            }
        );
    }
    let snapshot = match &reading.ledger {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(
                h,
                "<p class=\"bad\">The ledger cannot be read: {}</p></body></html>",
                esc(e)
            );
            return h;
        }
    };
    for e in &snapshot.status.environments {
        let note = watched
            .and_then(|w| w.envs.iter().find(|r| r.env == e.env))
            .and_then(|r| r.note.as_deref());
        environment(&mut h, e, note);
    }
    h.push_str("<h2>Audit log</h2><div class=\"scroll\"><table><tr><th>when (UTC)</th><th>env</th><th>action</th><th>deployment</th><th>by</th><th>message</th></tr>");
    for row in snapshot.audit.rows.iter().rev() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&row.date),
            esc(row.env.as_deref().unwrap_or("")),
            esc(&row.action),
            row.deployment.map_or(String::new(), |d| d.to_string()),
            esc(&row.actor),
            esc(&row.message)
        );
    }
    h.push_str("</table></div></body></html>\n");
    h
}

fn release(d: &Deployment) -> String {
    format!(
        "<b>{}</b> <span class=\"dim\">({})</span>",
        esc(&d.version),
        esc(&d.tag)
    )
}

fn environment(h: &mut String, e: &EnvStatus, note: Option<&str>) {
    let _ = write!(
        h,
        "<section class=\"env\" id=\"{env}\"><h2>{env}</h2>",
        env = esc(e.env.as_str())
    );
    match &e.live {
        Some(live) => {
            let _ = write!(
                h,
                "<div>live: {} <span class=\"dim\">since {}</span></div>",
                release(live),
                esc(&live.date)
            );
        }
        None => h.push_str("<div class=\"dim\">live: nothing deployed yet</div>"),
    }
    if let Some(run) = &e.in_progress {
        let _ = write!(
            h,
            "<div class=\"wait\">running: deployment {} of {}{}</div>",
            run.id,
            release(run),
            run.lease_holder
                .as_deref()
                .map_or(String::new(), |by| format!(" by {}", esc(by)))
        );
    }
    if let Some(pin) = &e.pin {
        let _ = write!(
            h,
            "<div class=\"wait\">pinned to {}</div>",
            esc(&pin.version)
        );
    }
    if let Some(hold) = &e.hold {
        let _ = write!(
            h,
            "<div class=\"bad\">held: {} ({})</div>",
            esc(&hold.version),
            esc(&hold.reason)
        );
    }
    if let Some(w) = &e.window {
        let _ = write!(
            h,
            "<div class=\"{}\">{}</div>",
            if w.open { "dim" } else { "wait" },
            esc(&w.message)
        );
    }
    if let Some(note) = note {
        let _ = write!(h, "<div class=\"wait\">last round: {}</div>", esc(note));
    }
    if e.pending.is_empty() {
        h.push_str("<div class=\"dim\">no pending deployment</div>");
    } else {
        h.push_str("<div>pending:</div><ul>");
        for p in &e.pending {
            let _ = write!(
                h,
                "<li>deployment {} of {} <span class=\"dim\">({})</span>",
                p.id,
                release(p),
                esc(p.state.as_str())
            );
            let waits = waits_for(e, p);
            if !waits.is_empty() {
                h.push_str("<ul>");
                for w in waits {
                    let _ = write!(h, "<li class=\"wait\">waits for {}</li>", esc(&w));
                }
                h.push_str("</ul>");
            }
            h.push_str("</li>");
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>");
}

/// What a pending deployment waits for: approvals and command gates, a
/// closed window, a hold or a pin on its release.
fn waits_for(e: &EnvStatus, p: &Deployment) -> Vec<String> {
    let mut out = Vec::new();
    for gates in e.gates.iter().filter(|g| g.deployment == p.id) {
        for g in &gates.gates {
            match g.status {
                GateStatus::Waiting => out.push(format!("approval {}", g.summary())),
                GateStatus::Rejected => out.push(format!("a new plan: {}", g.summary())),
                GateStatus::NotRun | GateStatus::Failed => {
                    out.push(format!("command gate {}", g.summary()))
                }
                GateStatus::Approved | GateStatus::Passed => {}
            }
        }
    }
    if let Some(w) = e.window.as_ref().filter(|w| !w.open) {
        out.push(format!("the deploy window: {}", w.message));
    }
    if let Some(hold) = e.hold.as_ref().filter(|h| h.version == p.version) {
        out.push(format!("the hold to be lifted: {}", hold.reason));
    }
    if let Some(pin) = e
        .pin
        .as_ref()
        .filter(|pin| pin.blocks_version.as_deref() == Some(p.version.as_str()))
    {
        out.push(format!("the pin on {} to be lifted", pin.version));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
