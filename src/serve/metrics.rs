//! `GET /metrics`: the Prometheus text exposition format, version 0.0.4
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>), written
//! here: a HELP and a TYPE line per family, then its samples. Labels are
//! environments, states and versions only (bounded sets), never ids or actors.

use super::reading::Reading;
use super::watched::State;
use crate::engine::GateStatus;
use crate::model::{Env, Etat};
use crate::store::stats::BUCKETS;
use std::fmt::Write;

pub fn render(reading: &Reading, watched: Option<&State>) -> String {
    let mut out = Exposition::default();
    if let Ok(ledger) = &reading.ledger {
        out.family(
            "shipctl_deployments_total",
            "counter",
            "Deployments in the ledger by environment and state (the ledger's state values). \
             A deployment is counted in its current state: the final states only grow.",
        );
        for env in Env::ALL {
            for state in Etat::ALL {
                let n = ledger
                    .counts
                    .iter()
                    .find(|c| c.env == env.as_str() && c.state == state.as_str())
                    .map_or(0, |c| c.count);
                out.sample(
                    "shipctl_deployments_total",
                    &[("env", env.as_str()), ("state", state.as_str())],
                    n as f64,
                );
            }
        }

        out.family(
            "shipctl_deployment_duration_seconds",
            "histogram",
            "How long finished deployments took, from the last attempt's start to the finish \
             (from the ledger's audit log).",
        );
        let in_order = Env::ALL
            .iter()
            .filter_map(|env| ledger.durations.iter().find(|d| d.env == env.as_str()));
        for d in in_order {
            for (bound, n) in BUCKETS.iter().zip(&d.buckets) {
                out.sample(
                    "shipctl_deployment_duration_seconds_bucket",
                    &[("env", &d.env), ("le", &number(*bound))],
                    *n as f64,
                );
            }
            let labels = [("env", d.env.as_str())];
            out.sample(
                "shipctl_deployment_duration_seconds_bucket",
                &[("env", &d.env), ("le", "+Inf")],
                d.count as f64,
            );
            out.sample("shipctl_deployment_duration_seconds_sum", &labels, d.sum);
            out.sample(
                "shipctl_deployment_duration_seconds_count",
                &labels,
                d.count as f64,
            );
        }

        let envs = &ledger.status.environments;
        out.family(
            "shipctl_live_release_info",
            "gauge",
            "The release live in each environment (1 per environment that has one).",
        );
        for e in envs {
            if let Some(live) = &e.live {
                out.sample(
                    "shipctl_live_release_info",
                    &[("env", e.env.as_str()), ("version", &live.version)],
                    1.0,
                );
            }
        }
        out.family(
            "shipctl_pending_approvals",
            "gauge",
            "Pending deployments waiting for a person's approval.",
        );
        for e in envs {
            let waiting = e
                .gates
                .iter()
                .filter(|d| {
                    d.gates
                        .iter()
                        .any(|g| g.kind == "approval" && g.status == GateStatus::Waiting)
                })
                .count();
            out.sample(
                "shipctl_pending_approvals",
                &[("env", e.env.as_str())],
                waiting as f64,
            );
        }
        out.family(
            "shipctl_held",
            "gauge",
            "1 when a release is held in the environment (not planned again).",
        );
        for e in envs {
            out.sample(
                "shipctl_held",
                &[("env", e.env.as_str())],
                f64::from(u8::from(e.hold.is_some())),
            );
        }
    }

    if let Some(w) = watched {
        out.family(
            "shipctl_in_sync",
            "gauge",
            "1 when the last round left the environment on its desired release.",
        );
        for e in &w.envs {
            out.sample(
                "shipctl_in_sync",
                &[("env", e.env.as_str())],
                f64::from(u8::from(e.in_sync)),
            );
        }
        out.family(
            "shipctl_last_reconcile_timestamp_seconds",
            "gauge",
            "When the last round that reached the ledger ended (Unix time).",
        );
        if let Some(at) = w.last_round {
            out.sample(
                "shipctl_last_reconcile_timestamp_seconds",
                &[],
                at.as_millisecond() as f64 / 1000.0,
            );
        }
        out.family(
            "shipctl_reconcile_errors_total",
            "counter",
            "Rounds that failed (database unreachable, a conflict) since the watch started.",
        );
        out.sample("shipctl_reconcile_errors_total", &[], w.errors_total as f64);
        out.family(
            "shipctl_leader",
            "gauge",
            "1 when this watcher applies changes (the leader), 0 on a standby.",
        );
        out.sample("shipctl_leader", &[], f64::from(u8::from(w.leader)));
    }
    out.family(
        "shipctl_ledger_up",
        "gauge",
        "1 when the watcher's endpoints could read the ledger.",
    );
    out.sample(
        "shipctl_ledger_up",
        &[],
        f64::from(u8::from(reading.ledger.is_ok())),
    );
    out.text
}

#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }
}

/// A sample value as the format writes it (`+Inf`, `-Inf`, `NaN`, or a float).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// HELP text escapes `\` and newlines.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Label values escape `\`, `"` and newlines.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_written_as_the_format_says() {
        let mut out = Exposition::default();
        out.family("x_total", "counter", "a \\ b\nc");
        out.sample(
            "x_total",
            &[("env", "prod"), ("version", "1.\"0\"\\\n")],
            3.0,
        );
        out.sample("y", &[], 0.25);
        assert_eq!(
            out.text,
            "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\n\
             x_total{env=\"prod\",version=\"1.\\\"0\\\"\\\\\\n\"} 3\ny 0.25\n"
        );
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(0.1), "0.1");
        assert_eq!(number(3600.0), "3600");
    }
}
