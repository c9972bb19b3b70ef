//! Verification (DESIGN §9): after a successful run, an environment's checks
//! prove the release healthy, try after try, under the deployment's lease.
//! A check is a command (exit 0 = healthy) or an HTTP GET (the status wanted,
//! and text the body must contain).

use crate::executor::command::{self, DEFAULT_KILL_GRACE, Job, Spec};
use crate::manifest::schema::VerifySpec;
use serde::Serialize;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub mod http;

/// What a check's `{version}`, `{tag}` and `{env}` stand for.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    pub version: &'a str,
    pub tag: &'a str,
    pub env: &'a str,
}

/// The placeholders a check may use.
pub const PLACEHOLDERS: [&str; 3] = ["{version}", "{tag}", "{env}"];

/// Per try, without `timeout:`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Between tries, without `interval:`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// The status an HTTP check wants, without `status:`.
pub const DEFAULT_STATUS: u16 = 200;

impl Vars<'_> {
    /// `template` with each placeholder replaced; percent-encoded (as a URL
    /// path or query component) when `encode`.
    pub fn fill(&self, template: &str, encode: bool) -> String {
        let value = |v: &str| {
            if encode {
                percent_encoding::utf8_percent_encode(v, COMPONENT).to_string()
            } else {
                v.to_string()
            }
        };
        // One pass: a value that itself holds "{env}" is not replaced again.
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(at) = rest.find('{') {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            let hit = [
                ("{version}", self.version),
                ("{tag}", self.tag),
                ("{env}", self.env),
            ]
            .into_iter()
            .find(|(p, _)| tail.starts_with(p));
            match hit {
                Some((p, v)) => {
                    out.push_str(&value(v));
                    rest = &tail[p.len()..];
                }
                None => {
                    out.push('{');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Everything but unreserved characters is encoded: a version can add neither
/// a path segment, a query parameter nor a fragment to the URL.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `{something}` that is not one of the placeholders: a typo, refused.
pub fn check_template(template: &str) -> Result<(), (String, String)> {
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        let tail = &rest[at..];
        if let Some(end) = tail.find('}') {
            let word = &tail[..=end];
            let looks_like_one = word.len() > 2
                && word[1..end]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if looks_like_one && !PLACEHOLDERS.contains(&word) {
                return Err((
                    format!("unknown placeholder {}", crate::manifest::words::cut(word)),
                    format!("the placeholders are {}", PLACEHOLDERS.join(", ")),
                ));
            }
        }
        rest = &tail[1..];
    }
    Ok(())
}

/// An HTTP check's URL: http or https, a host, placeholders known.
pub fn check_url(template: &str) -> Result<(), (String, String)> {
    check_template(template)?;
    let sample = Vars {
        version: "1.0.0",
        tag: "v1.0.0",
        env: "prod",
    }
    .fill(template, true);
    let hint = || "write a full URL, e.g. http://127.0.0.1:8080/version".to_string();
    let url = url::Url::parse(&sample).map_err(|e| {
        (
            format!(
                "{:?} is not a URL: {e}",
                crate::manifest::words::cut(template)
            ),
            hint(),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err((
            format!("the URL's scheme is {:?}; use http or https", url.scheme()),
            hint(),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(("the URL has no host".into(), hint()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err((
            "the URL holds credentials, which the ledger would store and print".into(),
            "put credentials in the service's configuration, not in the manifests".into(),
        ));
    }
    Ok(())
}

/// How a verification went: each try, and whether one passed.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// What was checked: "GET http://127.0.0.1:8080/version" or "./smoke.sh".
    pub check: String,
    pub passed: bool,
    /// False when a signal stopped it before a try passed or the tries ran out.
    pub completed: bool,
    pub tries: Vec<Try>,
}

/// One try of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Try {
    /// From 1.
    #[serde(rename = "try")]
    pub number: u32,
    pub of: u32,
    pub passed: bool,
    /// What the try found (an HTTP answer, a command's exit), with its output.
    pub message: String,
    pub duration_ms: u64,
}

impl Verification {
    /// "verification failed after 3 tries: GET ... answered 500": the last try's words.
    pub fn failure(&self) -> String {
        let last = self
            .tries
            .last()
            .map(|t| t.message.as_str())
            .unwrap_or("no try ran");
        let n = self.tries.len();
        if self.completed {
            format!(
                "verification failed after {n} {}: {last}",
                if n == 1 { "try" } else { "tries" }
            )
        } else {
            format!(
                "verification stopped after {n} of {} tries: {last}",
                self.of()
            )
        }
    }

    fn of(&self) -> u32 {
        self.tries.first().map_or(0, |t| t.of)
    }
}

/// What `spec` checks, in words.
pub fn describe(spec: &VerifySpec) -> String {
    match (&spec.command, &spec.http) {
        (Some(argv), _) => crate::executor::command::shown(argv),
        (None, Some(h)) => format!("GET {}", h.url),
        (None, None) => "nothing".into(),
    }
}

/// Verifies the release `job` deployed: tries until one passes or `retries`
/// have failed, `interval` apart, each bounded by `timeout`. `stop` (a signal,
/// a lost lease) ends it at once: a command check's process group is stopped.
pub async fn run(spec: &VerifySpec, job: &Job, stop: &CancellationToken) -> Verification {
    let of = spec.retries.unwrap_or(1).max(1);
    let timeout = spec.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
    let interval = spec.interval.map_or(DEFAULT_INTERVAL, |i| i.0);
    let vars = Vars {
        version: &job.version,
        tag: &job.tag,
        env: &job.env,
    };
    // One client for every try: building it reads the system's certificates.
    let checker = spec.http.as_ref().map(|_| http::Checker::new());
    let mut v = Verification {
        check: describe(spec),
        passed: false,
        completed: false,
        tries: Vec::new(),
    };
    for number in 1..=of {
        if stop.is_cancelled() {
            return v;
        }
        crate::progress::step(&format!("verify {number}/{of}"));
        let started = std::time::Instant::now();
        let result = match (&spec.command, &spec.http) {
            (Some(argv), _) => {
                let cmd = Spec {
                    argv,
                    timeout: Some(timeout),
                    kill_grace: spec.kill_grace.map_or(DEFAULT_KILL_GRACE, |g| g.0),
                    echo: true,
                };
                command::run(&cmd, job, stop)
                    .await
                    .map(|out| format!("{} exited 0{}", v.check, command::output_note(&out)))
            }
            (None, Some(h)) => match &checker {
                Some(Ok(client)) => tokio::select! {
                    r = client.try_once(h, &vars, timeout) => r,
                    () = stop.cancelled() => Err(format!("{}: stopped", v.check)),
                },
                Some(Err(e)) => Err(e.clone()),
                None => Err("no HTTP client".into()),
            },
            (None, None) => Err("no check is configured".into()),
        };
        let passed = result.is_ok();
        v.tries.push(Try {
            number,
            of,
            passed,
            message: result.unwrap_or_else(|e| e),
            duration_ms: started.elapsed().as_millis() as u64,
        });
        if stop.is_cancelled() {
            return v;
        }
        if passed {
            v.passed = true;
            v.completed = true;
            return v;
        }
        if number < of {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = stop.cancelled() => return v,
            }
        }
    }
    v.completed = true;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const V: Vars = Vars {
        version: "1.2.0",
        tag: "v1.2.0",
        env: "prod",
    };

    #[test]
    fn placeholders_are_replaced_once_and_encoded_in_urls() {
        assert_eq!(
            V.fill("http://h/{env}/v?x={version}", true),
            "http://h/prod/v?x=1.2.0"
        );
        let evil = Vars {
            version: "$(touch pwned)/../a?b=c#d {env}",
            ..V
        };
        assert_eq!(
            evil.fill("http://h/{version}", true),
            "http://h/%24%28touch%20pwned%29%2F..%2Fa%3Fb%3Dc%23d%20%7Benv%7D"
        );
        assert_eq!(
            evil.fill("{version}", false),
            "$(touch pwned)/../a?b=c#d {env}"
        );
        assert_eq!(V.fill("{ {x} {tag", false), "{ {x} {tag");
    }

    #[test]
    fn templates_and_urls_are_checked() {
        assert!(check_template("version {version} on {env}").is_ok());
        assert!(check_template("json {\"a\": 1}").is_ok());
        let (m, h) = check_template("{verison}").unwrap_err();
        assert!(
            m.contains("{verison}") && h.contains("{version}"),
            "{m} {h}"
        );
        assert!(check_url("http://127.0.0.1:8080/version").is_ok());
        assert!(check_url("https://example.test/{env}/health?v={version}").is_ok());
        for bad in [
            "127.0.0.1:8080/x",
            "ftp://h/x",
            "http://",
            "not a url",
            "http://u:p@h/",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
