//! The YAML library's errors are worded for Rust programmers ("invalid type:
//! unit value, expected u32"); this turns them into the user's terms: the key
//! path, the YAML type the key takes, what was found, and what to do.

/// Longest user text (a key, a value) echoed back in a message.
pub const MAX_ECHO: usize = 80;
/// Longest message part (after the file and line): past it, something echoed
/// text it should not have.
const MAX_MESSAGE: usize = 600;

/// `text`, or its first `MAX_ECHO` characters and a mark saying how long it was.
pub fn cut(text: &str) -> String {
    let n = text.chars().count();
    if n <= MAX_ECHO {
        return text.to_string();
    }
    let head: String = text.chars().take(MAX_ECHO).collect();
    format!("{head}… [{n} characters]")
}

/// A message whose every word is at most twice `MAX_ECHO` characters (room for
/// a word `cut` already marked) and whose whole is bounded: the last guard
/// against echoing a huge key or value.
pub fn bounded(message: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.chars().count() > 2 * MAX_ECHO {
            out.push_str(&cut(word));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in message.chars() {
        if c.is_whitespace() {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    if out.chars().count() > MAX_MESSAGE {
        let head: String = out.chars().take(MAX_MESSAGE).collect();
        return format!("{head}…[cut]");
    }
    out
}

/// A key path with each key cut (a gate may be named by 100,000 characters).
fn shown_path(path: &str) -> String {
    path.split('.').map(cut).collect::<Vec<_>>().join(".")
}

const KINDS: [&str; 6] = [
    "invalid type: ",
    "invalid value: ",
    "missing field `",
    "unknown field `",
    "duplicate field `",
    "invalid length ",
];

/// The message and the hint, in user words, for the serde errors it knows;
/// `None` for the others (the YAML syntax errors already speak YAML).
pub fn rewrite(message: &str) -> Option<(String, String)> {
    let (at, kind) = KINDS
        .iter()
        .filter_map(|k| message.find(k).map(|i| (i, *k)))
        .min_by_key(|(i, _)| *i)?;
    let path = message[..at].strip_suffix(": ").unwrap_or(&message[..at]);
    if at > 0 && path.len() == at {
        return None;
    }
    let rest = &message[at + kind.len()..];
    let segs = segments(path);
    let place = |m: String| {
        if path.is_empty() {
            m
        } else {
            format!("{}: {m}", shown_path(path))
        }
    };
    let out = match kind {
        "invalid type: " | "invalid value: " | "invalid length " => {
            let (found, wanted) = rest
                .rfind(", expected ")
                .map_or((rest, ""), |i| (&rest[..i], &rest[i..]));
            let (expected, example) = expected(&segs);
            let found = found_words(found);
            let message = if wanted.ends_with("identifier") {
                // serde was reading a key, not a value.
                format!("a key is {found}; keys are plain words such as release or gates")
            } else if path.is_empty() {
                format!("the file holds {found}; a manifest is {expected}")
            } else {
                format!("expected {expected}, found {found}")
            };
            (place(message), format!("write it like {example}"))
        }
        "missing field `" => {
            let field = rest.split('`').next().unwrap_or("");
            let (_, example) = expected(&segs);
            (
                place(format!("{field}: is missing")),
                format!("add {field}:, e.g. {example}"),
            )
        }
        "unknown field `" => {
            let (field, after) = rest.split_once('`').unwrap_or((rest, ""));
            let allowed = after
                .split_once("expected ")
                .map(|(_, a)| a.trim_start_matches("one of "))
                .unwrap_or("");
            let allowed = if allowed.contains("there are no fields") || allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.replace(" or ", ", ")
            };
            let m = format!(
                "unknown key `{}`; the keys allowed here are {allowed}",
                cut(field)
            );
            let m = if path.is_empty() {
                format!("{m} (top level)")
            } else {
                m
            };
            (
                place(m),
                "check the spelling; the manifest format is in the README (GitOps section)".into(),
            )
        }
        _ => {
            let field = rest.split('`').next().unwrap_or("");
            (
                place(format!("{} is defined twice in this file", cut(field))),
                "keep one definition".into(),
            )
        }
    };
    Some(out)
}

/// Path segments without their list indexes, each marked when it was indexed
/// (`releases[0]` is an item of `releases`).
fn segments(path: &str) -> Vec<(&str, bool)> {
    if path.is_empty() {
        return Vec::new();
    }
    path.split('.')
        .map(|s| match s.find('[') {
            Some(i) => (&s[..i], true),
            None => (s, false),
        })
        .collect()
}

const STRING: (&str, &str) = ("a quoted string", "\"1.0.2\"");
const ARGV: (&str, &str) = (
    "a list of strings (the program and its arguments)",
    "[\"./scripts/deploy.sh\", \"--fast\"]",
);
const DURATION: (&str, &str) = ("a duration such as 500ms, 2s or 5m", "30s");

/// What a key takes, in YAML terms, and an example of it.
fn expected(segs: &[(&str, bool)]) -> (&'static str, &'static str) {
    let last = segs.last().copied();
    let parent = segs.len().checked_sub(2).map(|i| segs[i].0);
    let grand = segs.len().checked_sub(3).map(|i| segs[i].0);
    match last {
        None => (
            "a mapping with releases: and environments:",
            "releases: [{ version: \"1.0.2\", tag: v1.0.2 }]",
        ),
        Some(("apiVersion", _)) => ("a string", "apiVersion: shipctl/v1"),
        Some(("releases", false)) => (
            "a list of releases",
            "releases: [{ version: \"1.0.2\", tag: v1.0.2 }]",
        ),
        Some(("releases", true)) => (
            "a mapping with version: and tag:",
            "{ version: \"1.0.2\", tag: v1.0.2 }",
        ),
        Some(("version" | "tag" | "release", _)) => STRING,
        Some(("environments", _)) if segs.len() == 1 => (
            "a mapping of environments (dev, staging, prod)",
            "environments: { dev: { release: \"1.0.2\" } }",
        ),
        Some(_) if parent == Some("environments") && segs.len() == 2 => (
            "a mapping with release: and the environment's policy",
            "dev: { release: \"1.0.2\" }",
        ),
        Some(("requires", _)) => ("an environment name (dev or staging)", "requires: staging"),
        Some(("gates", _)) => (
            "a mapping of gate names to gates",
            "gates: { qa: { approvals: 1 } }",
        ),
        Some(_) if parent == Some("gates") => (
            "a mapping with approvals: N or command: [...]",
            "qa: { approvals: 1 }",
        ),
        Some(("approvals", _)) => ("a whole number, 1 or more", "approvals: 1"),
        Some(("approvers", false)) => (
            "a list of login names, or a mapping of login names to SSH public keys",
            "approvers: [alice, bob] or approvers: { alice: \"ssh-ed25519 AAAA... alice@laptop\" }",
        ),
        Some(("approvers", true)) => ("a string (a login name)", "alice"),
        Some(_) if parent == Some("approvers") => (
            "an SSH public key line (or a list of them)",
            "alice: \"ssh-ed25519 AAAA... alice@laptop\"",
        ),
        Some(("command", false)) if grand == Some("gates") => ARGV,
        Some(("command" | "run" | "rollback", true)) => ("a string", "\"--fast\""),
        Some(("run" | "rollback", false)) => ARGV,
        Some(("timeout" | "kill_grace" | "duration", _)) => DURATION,
        Some(("executor", _)) => (
            "a mapping with simulate: or command:",
            "executor: { command: { run: [\"./deploy.sh\"] } }",
        ),
        Some(("simulate", _)) => (
            "a mapping with duration: and failure_rate:",
            "simulate: { duration: 2s, failure_rate: 0.1 }",
        ),
        Some(("command", _)) => (
            "a mapping with run: (and rollback:, timeout:, kill_grace:)",
            "command: { run: [\"./deploy.sh\"], timeout: 10m }",
        ),
        Some(("failure_rate", _)) => ("a number from 0.0 to 1.0", "failure_rate: 0.1"),
        Some(("on_failure", _)) => ("replan or cancel", "on_failure: replan"),
        Some(("max_attempts", _)) => ("a whole number from 1 to 100", "max_attempts: 3"),
        Some(("windows", _)) => (
            "a mapping with timezone:, allow: and deny:",
            "windows: { timezone: Europe/Paris, deny: [{ days: [fri], from: \"15:00\", to: \"24:00\" }] }",
        ),
        Some(("timezone", _)) => ("an IANA time zone name", "timezone: Europe/Paris"),
        Some(("allow" | "deny", false)) => (
            "a list of windows",
            "deny: [{ days: [fri], from: \"15:00\", to: \"24:00\" }]",
        ),
        Some(("allow" | "deny", true)) => (
            "a mapping with from: and to: (and days: for a weekly window)",
            "{ days: [fri], from: \"15:00\", to: \"24:00\" }",
        ),
        Some(("days", false)) => (
            "a list of days (mon, tue, wed, thu, fri, sat, sun)",
            "days: [mon, tue, wed, thu, fri]",
        ),
        Some(("days", true)) => ("a day: mon, tue, wed, thu, fri, sat or sun", "fri"),
        Some(("from" | "to", _)) => (
            "a quoted time (\"09:00\") or date and time (\"2026-12-20 00:00\")",
            "from: \"09:00\"",
        ),
        Some(("reason", _)) => ("a string", "reason: holiday freeze"),
        Some(_) => (
            "another value",
            "the manifest in the README (GitOps section)",
        ),
    }
}

/// serde's name for what it found, in YAML terms.
fn found_words(found: &str) -> String {
    let value = |prefix: &str| {
        found
            .strip_prefix(prefix)
            .map(|v| v.trim_matches('`').to_string())
    };
    if let Some(v) = value("integer ").or_else(|| value("floating point ")) {
        return format!("the number {}", cut(&v));
    }
    if let Some(v) = value("boolean ") {
        return format!("{v} (a yes/no value)");
    }
    if let Some(v) = value("string ").or_else(|| value("char ")) {
        return format!("the text {}", cut(&v));
    }
    match found {
        "unit value" => "nothing (an empty value)".into(),
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "enum" => "a tagged value".into(),
        other => cut(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_words_become_yaml_words() {
        let cases = [
            (
                "environments.dev.max_attempts: invalid type: string \"x\", expected u32",
                "environments.dev.max_attempts: expected a whole number from 1 to 100, found the text \"x\"",
            ),
            (
                "invalid type: sequence, expected struct File",
                "the file holds a list; a manifest is a mapping with releases: and environments:",
            ),
            (
                "releases: invalid type: integer `5`, expected a sequence",
                "releases: expected a list of releases, found the number 5",
            ),
            (
                "environments.dev.gates.g.command: invalid type: string \"x\", expected a sequence",
                "environments.dev.gates.g.command: expected a list of strings (the program and its arguments), found the text \"x\"",
            ),
            (
                "environments.dev: invalid type: unit value, expected struct Environment",
                "environments.dev: expected a mapping with release: and the environment's policy, found nothing (an empty value)",
            ),
            (
                "environments.dev.executor.command: invalid type: sequence, expected struct CommandSpec",
                "environments.dev.executor.command: expected a mapping with run: (and rollback:, timeout:, kill_grace:), found a list",
            ),
            (
                "environments.dev.max_attempts: invalid value: integer `-1`, expected u32",
                "environments.dev.max_attempts: expected a whole number from 1 to 100, found the number -1",
            ),
            (
                "releases[0]: missing field `version`",
                "releases[0]: version: is missing",
            ),
            (
                "environments.prod: unknown field `max_attempt`, expected one of `release`, `max_attempts`",
                "environments.prod: unknown key `max_attempt`; the keys allowed here are `release`, `max_attempts`",
            ),
            (
                "duplicate field `releases`",
                "releases is defined twice in this file",
            ),
        ];
        for (serde, user) in cases {
            let (m, hint) = rewrite(serde).expect(serde);
            assert_eq!(m, user);
            assert!(!hint.is_empty());
            for internal in ["u32", "f64", "struct", "sequence", "unit value"] {
                assert!(!m.contains(internal), "{m}");
            }
        }
        assert_eq!(rewrite("did not find expected key"), None);
        let (m, _) = rewrite("invalid type: sequence, expected field identifier").unwrap();
        assert_eq!(
            m,
            "a key is a list; keys are plain words such as release or gates"
        );
    }

    #[test]
    fn long_text_is_cut_with_a_mark() {
        let key = "k".repeat(100_000);
        let (m, _) = rewrite(&format!("unknown field `{key}`, expected `releases`")).unwrap();
        assert!(m.len() < 300, "{m}");
        assert!(m.contains("… [100000 characters]"), "{m}");
        assert_eq!(bounded(&m), m, "a cut word is not cut again");
        let b = bounded(&format!("a {} b", "x y ".repeat(50_000)));
        assert!(b.chars().count() < 700 && b.ends_with("…[cut]"));
        assert_eq!(bounded("short words stay"), "short words stay");
    }
}
