//! What shipctl prints about itself: shell completion scripts, the manual page
//! and the manifests' JSON Schema, all generated from the definitions they
//! describe (`cli`, `manifest::schema`), so none of them can drift.

use crate::cli::{Cli, GLOBAL};
use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> String {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "shipctl", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The manifests' JSON Schema, indented.
pub fn schema() -> String {
    let schema = crate::manifest::json_schema::generate();
    serde_json::to_string_pretty(&schema).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// One manual page for the whole command tree: the top page (name, synopsis,
/// description, global options, examples, exit codes), then a section per
/// command with its synopsis, options and examples.
pub fn man_page() -> String {
    let mut top = Cli::command();
    top.build();
    let man = Man::new(top.clone()).manual("User Commands");
    let mut page = String::new();
    for part in [
        Man::render_title,
        Man::render_name_section,
        Man::render_synopsis_section,
        Man::render_description_section,
    ] {
        page.push_str(&piece(&man, part));
    }

    // Not clap's own `help` command: the page is the help.
    let commands: Vec<&clap::Command> = top
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .collect();
    let mut list = Roff::new();
    list.control("SH", ["COMMANDS"]);
    for sub in &commands {
        list.control("TP", []);
        list.text([bold(format!("shipctl {}", sub.get_name()))]);
        list.text([roman(about(sub))]);
    }
    list.control("PP", []);
    list.text([roman("Each command is described in its own section below.")]);
    page.push_str(&list.to_roff());

    // The global options (and -h, -V) of the top command.
    page.push_str(&piece(&man, Man::render_options_section));
    page.push_str(&after_help_sections(&top));

    for sub in &commands {
        page.push_str(&command_section(sub));
    }
    // Each rendered piece repeats roff's preamble: the page keeps the first.
    let (mut ie, mut el) = (false, false);
    page.lines()
        .filter(|l| {
            let seen = if l.starts_with(".ie \\n(.g") {
                &mut ie
            } else if l.starts_with(".el .ds Aq") {
                &mut el
            } else {
                return true;
            };
            !std::mem::replace(seen, true)
        })
        .map(|l| format!("{}\n", ascii(l)))
        .collect()
}

/// Non-ASCII characters (é, →) as roff's `\[uXXXX]` escapes, which every
/// formatter reads whatever it takes the page's encoding to be.
fn ascii(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

/// A clap_mangen section as roff, without the preamble each one repeats
/// (the page keeps the first one, from the title).
fn piece(man: &Man, part: fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    // Writing to a Vec does not fail.
    let _ = part(man, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn about(cmd: &clap::Command) -> String {
    cmd.get_about()
        .or_else(|| cmd.get_long_about())
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// The top command's after-help, one section per heading ("Examples:" →
/// EXAMPLES, "Exit codes:" → EXIT CODES), laid out as written.
fn after_help_sections(cmd: &clap::Command) -> String {
    let Some(text) = cmd.get_after_help().map(|t| t.to_string()) else {
        return String::new();
    };
    let mut roff = Roff::new();
    let mut open = false;
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            if open {
                roff.control("fi", []).control("RE", []);
            }
            let heading = line.trim_end_matches(':').to_uppercase();
            roff.control("SH", [heading.as_str()]);
            roff.control("RS", ["2"]).control("nf", []);
            open = true;
        } else if open {
            roff.text([roman(line.strip_prefix("  ").unwrap_or(line))]);
        }
    }
    if open {
        roff.control("fi", []).control("RE", []);
    }
    roff.to_roff()
}

/// `shipctl NAME`: what it does, its synopsis, its own options (the global
/// ones are described once, above) and its examples, as its help shows them.
fn command_section(sub: &clap::Command) -> String {
    let name = format!("shipctl {}", sub.get_name());
    let own = sub.clone().bin_name(&name).mut_args(|a| {
        let global = a.get_help_heading() == Some(GLOBAL) || a.get_id() == "help";
        if global { a.hide(true) } else { a }
    });
    let man = Man::new(own);

    let mut head = Roff::new();
    head.control("SH", [name.to_uppercase().as_str()]);
    let description = sub
        .get_long_about()
        .or_else(|| sub.get_about())
        .map(|a| a.to_string())
        .unwrap_or_default();
    for line in description.lines() {
        head.text([roman(line)]);
    }
    head.control("SS", ["Synopsis"]);
    let mut section = head.to_roff();
    section.push_str(&demoted(&piece(&man, Man::render_synopsis_section)));
    let options = demoted(&piece(&man, Man::render_options_section));
    if options.lines().any(|l| l.starts_with(".TP")) {
        let mut h = Roff::new();
        h.control("SS", ["Options"]);
        section.push_str(&h.to_roff());
        section.push_str(&options);
    }
    if let Some(text) = sub.get_after_help().map(|t| t.to_string()) {
        let mut roff = Roff::new();
        let mut open = false;
        for line in text.lines() {
            if !line.starts_with(' ') && line.ends_with(':') && line.len() < 20 {
                if open {
                    roff.control("fi", []).control("RE", []);
                }
                roff.control("SS", [line.trim_end_matches(':')]);
                roff.control("RS", ["2"]).control("nf", []);
                open = true;
            } else if !open {
                roff.control("PP", []);
                roff.text([roman(line)]);
            } else {
                roff.text([roman(line.strip_prefix("  ").unwrap_or(line))]);
            }
        }
        if open {
            roff.control("fi", []).control("RE", []);
        }
        section.push_str(&roff.to_roff());
    }
    section
}

/// A clap_mangen section's body without its `.SH` heading and preamble, to
/// sit under a command's own heading.
fn demoted(roff: &str) -> String {
    roff.lines()
        .filter(|l| !l.starts_with(".SH "))
        .map(|l| format!("{l}\n"))
        .collect()
}
