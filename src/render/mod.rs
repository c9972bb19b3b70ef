//! The one printer: every byte shipctl writes to stdout goes through here, as
//! text for people or as JSON. Whether text is coloured is anstream's call for
//! each stream (a terminal; NO_COLOR, CLICOLOR, CLICOLOR_FORCE and TERM
//! honoured); the styles are anstyle constants. Uncoloured text is written as
//! is: nothing is painted, so nothing has to be stripped.

mod plan;
mod status;
mod text;

use crate::cli::Output;
use crate::error::Error;
use anstyle::AnsiColor;
use serde::Serialize;
use std::io::Write;

pub use plan::{DryRun, Ledger, ReconcileView, describe, summary};
pub use status::AllStatus;
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
        let json = matches!(output, Output::Json | Output::Jsonl);
        Printer {
            json,
            // JSON Lines: one compact object per line, errors included.
            stream: output == Output::Jsonl,
            style: if json {
                Style::PLAIN
            } else {
                Style::of(&std::io::stdout())
            },
            err_style: Style::of(&std::io::stderr()),
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

    /// One audit row: a line of JSON (`--output jsonl`), or a line of text
    /// (`audit --follow`).
    pub fn audit_row(&self, row: &crate::store::ledger::AuditRow) {
        let out = if self.json {
            self.json(row)
        } else {
            text::audit_line(&self.style, row)
        };
        self.write_stdout(&out);
    }

    /// Whether results are a stream of JSON lines (`--output jsonl`, watch mode in JSON).
    pub fn is_stream(&self) -> bool {
        self.json && self.stream
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
            let text = text::escape(text, &['\n', '\t']);
            write_stderr(&self.err_style.dim(&text));
        }
    }

    /// A line for people on stderr that matters in every output format (the
    /// address the watch serves on, a warning about it).
    pub fn notice(&self, text: &str) {
        write_stderr(&text::escape(text, &['\n', '\t']));
    }

    /// Text that is already formatted for its audience (markdown for a pull request).
    pub fn raw(&self, text: &str) {
        self.write_stdout(text);
    }

    pub fn error(&self, e: &Error) {
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
            write_stderr(&out);
        }
    }

    fn write_stdout(&self, text: &str) {
        crate::progress::suspend(|| {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`shipctl status | head -1`) is not an error worth a panic.
            let _ = writeln!(stdout, "{}", text.trim_end_matches('\n'));
            let _ = stdout.flush();
        });
    }
}

/// A line for people on stderr, clear of the spinner.
pub(crate) fn write_stderr(line: &str) {
    crate::progress::suspend(|| {
        let _ = writeln!(std::io::stderr(), "{line}");
    });
}

const BOLD: anstyle::Style = anstyle::Style::new().bold();
const DIM: anstyle::Style = anstyle::Style::new().dimmed();
const GREEN: anstyle::Style = AnsiColor::Green.on_default();
const RED: anstyle::Style = AnsiColor::Red.on_default();
const RED_BOLD: anstyle::Style = AnsiColor::Red.on_default().bold();
const YELLOW: anstyle::Style = AnsiColor::Yellow.on_default();
const CYAN: anstyle::Style = AnsiColor::Cyan.on_default();

impl Style {
    pub const PLAIN: Style = Style { color: false };

    /// Colour on `stream` when anstream would give it colour.
    pub fn of(stream: &impl anstream::stream::RawStream) -> Style {
        Style {
            color: anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never,
        }
    }

    fn paint(&self, style: anstyle::Style, s: &str) -> String {
        if self.color {
            format!("{style}{s}{style:#}")
        } else {
            s.to_string()
        }
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint(BOLD, s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint(DIM, s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint(GREEN, s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint(RED, s)
    }
    pub fn red_bold(&self, s: &str) -> String {
        self.paint(RED_BOLD, s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint(YELLOW, s)
    }
    pub fn cyan(&self, s: &str) -> String {
        self.paint(CYAN, s)
    }
}

#[cfg(test)]
mod tests {
    use super::Style;

    #[test]
    fn plain_text_is_left_as_it_is() {
        assert_eq!(Style::PLAIN.red_bold("error:"), "error:");
        let s = Style { color: true };
        assert_eq!(s.red_bold("error:"), "\x1b[1m\x1b[31merror:\x1b[0m");
        assert_eq!(s.dim("note"), "\x1b[2mnote\x1b[0m");
    }
}
