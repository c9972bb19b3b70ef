//! The one printer: every byte shipctl writes to stdout goes through here, as
//! text for people (colour only on a terminal, NO_COLOR honoured) or as JSON.

mod plan;
mod text;

use crate::cli::Output;
use crate::error::Error;
use serde::Serialize;
use std::io::{IsTerminal, Write};

pub use plan::{DryRun, Ledger, ReconcileView, describe};
pub use text::{Releases, Text};

pub struct Printer {
    json: bool,
    /// A stream of results (watch mode): JSON Lines, errors included.
    stream: bool,
    style: Style,
    err_style: Style,
}

#[derive(Clone, Copy)]
pub struct Style {
    pub(super) color: bool,
}

impl Printer {
    pub fn new(output: Output) -> Printer {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let json = output == Output::Json;
        Printer {
            json,
            stream: false,
            style: Style {
                color: !json && !no_color && std::io::stdout().is_terminal(),
            },
            err_style: Style {
                color: !no_color && std::io::stderr().is_terminal(),
            },
        }
    }

    pub fn emit<T: Serialize + Text>(&self, value: &T) {
        let out = if self.json {
            self.json(value)
        } else {
            value.text(&self.style)
        };
        self.write_stdout(&out);
    }

    /// From now on, results and errors are a stream (watch mode): in JSON,
    /// one compact object per line.
    pub fn stream(&mut self) {
        self.stream = true;
    }

    fn json<T: Serialize>(&self, value: &T) -> String {
        let encoded = if self.stream {
            serde_json::to_string(value)
        } else {
            serde_json::to_string_pretty(value)
        };
        encoded.unwrap_or_else(|e| {
            serde_json::json!({"error": {
                "kind": "internal", "message": format!("cannot encode output: {e}"),
                "hint": null, "exit_code": 1,
            }})
            .to_string()
        })
    }

    /// A progress note for people, on stderr; nothing in JSON mode.
    pub fn note(&self, text: &str) {
        if !self.json {
            crate::progress::clear();
            let text = text::escape(text, &['\n', '\t']);
            let _ = writeln!(std::io::stderr(), "{}", self.err_style.dim(&text));
        }
    }

    /// Text that is already formatted for its audience (markdown for a pull request).
    pub fn raw(&self, text: &str) {
        self.write_stdout(text);
    }

    pub fn error(&self, e: &Error) {
        crate::progress::clear();
        // Messages are built from the redacted URL (`DbUrl::redacted`,
        // `DbUrl::redact_message`): nothing is searched and replaced here.
        let message = &e.message;
        let hint = e.hint.as_deref();
        if self.json {
            let body = serde_json::json!({
                "error": {
                    "kind": e.kind_name(),
                    "message": message,
                    "hint": hint,
                    "exit_code": e.exit_code(),
                }
            });
            self.write_stdout(&self.json(&body));
        } else {
            // A message may quote stored text (a reason, a holder's name): on a
            // terminal its control characters are shown, not obeyed.
            let s = self.err_style;
            let mut out = format!(
                "{} {}",
                s.red_bold("error:"),
                text::escape(message, &['\n'])
            );
            if let Some(h) = hint {
                out.push_str(&format!(
                    "\n  {} {}",
                    s.bold("hint:"),
                    text::escape(h, &['\n'])
                ));
            }
            let _ = writeln!(std::io::stderr(), "{out}");
        }
    }

    fn write_stdout(&self, text: &str) {
        crate::progress::clear();
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`shipctl status | head -1`) is not an error worth a panic.
        let _ = writeln!(stdout, "{}", text.trim_end_matches('\n'));
        let _ = stdout.flush();
    }
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn red_bold(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
    }
}
