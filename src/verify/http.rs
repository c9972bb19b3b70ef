//! One try of an HTTP check (DESIGN §9): GET the URL, follow redirects that
//! stay on its scheme, host and port, want a status and some text in the body.
//! Every way a try fails is one line that names the URL and the cause.

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::Instant;
use url::Url;

use super::{DEFAULT_STATUS, Vars};
use crate::manifest::schema::HttpSpec;

/// How much of a body is read: a health page's text is at its start, and a
/// service answering with an endless stream must not fill the memory.
pub const MAX_BODY: usize = 64 * 1024;
/// Redirects followed in one try (all on the first URL's origin).
pub const MAX_REDIRECTS: usize = 5;
/// How much of the body a failure message shows.
const SHOWN_BODY_CHARS: usize = 200;
/// How much of a URL (or of the text wanted) a message shows.
const SHOWN_CHARS: usize = 300;

const USER_AGENT: &str = concat!("shipctl/", env!("CARGO_PKG_VERSION"));

/// The client of one verification's tries. Building it reads the system's CA
/// certificates, so the runner builds one per verification and reuses it;
/// connections are not kept between tries, so each try connects afresh as a
/// new client of the service would.
pub struct Checker {
    client: reqwest::Client,
}

/// One try with a client of its own; see [`Checker::try_once`].
pub async fn try_once(
    spec: &HttpSpec,
    vars: &Vars<'_>,
    timeout: Duration,
) -> Result<String, String> {
    Checker::new()?.try_once(spec, vars, timeout).await
}

impl Checker {
    pub fn new() -> Result<Checker, String> {
        let tls = tls_config().map_err(|e| format!("cannot set up TLS for HTTP checks: {e}"))?;
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            // Redirects are followed by `try_once`, which keeps them on the
            // first URL's origin and says where one went.
            .redirect(reqwest::redirect::Policy::none())
            // HTTP(S)_PROXY is not honoured: a check proves that the service
            // answers, and the URLs are mostly internal (127.0.0.1, a cluster
            // name) that a proxy set for the build's downloads cannot reach —
            // or answers for the service, from a cache or with its own error.
            .no_proxy()
            .pool_max_idle_per_host(0)
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", cause(&e, None)))?;
        Ok(Checker { client })
    }

    /// One try of an HTTP check: GET the filled URL; Ok(summary) when the
    /// status is the one wanted and the body contains the filled `contains`
    /// text; Err(message) otherwise. The whole try — connections, redirects,
    /// headers, body — ends within `timeout`.
    pub async fn try_once(
        &self,
        spec: &HttpSpec,
        vars: &Vars<'_>,
        timeout: Duration,
    ) -> Result<String, String> {
        // No deadline when `timeout` is too far to count (never from a manifest).
        let deadline = Instant::now().checked_add(timeout);
        let late = || crate::duration::format(timeout);
        let wanted = spec.status.unwrap_or(DEFAULT_STATUS);
        let text = spec.contains.as_deref().map(|t| vars.fill(t, false));

        let filled = vars.fill(&spec.url, true);
        let first = Url::parse(&filled)
            .map_err(|e| format!("GET {}: not a URL ({e})", quote_less(&filled)))?;
        let mut label = format!("GET {}", shown(&first));
        refuse_unfit(&first).map_err(|why| format!("{label}: {why}"))?;

        let mut url = first.clone();
        let mut redirects = 0;
        let mut response = loop {
            let response = match within(deadline, self.client.get(url.clone()).send()).await {
                None => return Err(format!("{label}: no answer within {}", late())),
                Some(Err(e)) => return Err(format!("{label}: {}", cause(&e, url.host_str()))),
                Some(Ok(response)) => response,
            };
            let status = response.status();
            let Some(location) = redirect_location(&response, wanted) else {
                break response;
            };
            let said = format!("{label}: answered {}", show_status(status));
            let target = std::str::from_utf8(location.as_bytes())
                .ok()
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| {
                    let bytes = String::from_utf8_lossy(location.as_bytes());
                    format!("{said} to a Location that is not a URL: {}", quote(&bytes))
                })?;
            if target.origin() != first.origin() {
                return Err(format!(
                    "{said} to {}, {}; redirects are followed only to the same scheme, \
                     host and port",
                    shown(&target),
                    elsewhere(&first, &target),
                ));
            }
            refuse_unfit(&target)
                .map_err(|why| format!("{said} to {}, and {why}", shown(&target)))?;
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(format!(
                    "{said} to {}: more than {MAX_REDIRECTS} redirects",
                    shown(&target)
                ));
            }
            label = format!("GET {} → {}", shown(&first), shown(&target));
            url = target;
        };

        let status = response.status();
        if status.as_u16() != wanted {
            return Err(format!(
                "{label}: answered {}, wanted {wanted}",
                show_status(status)
            ));
        }
        let status = show_status(status);
        let Some(text) = text else {
            return Ok(format!("{label} → {status}"));
        };

        // Read by chunks until the text shows up, the body ends or the limit.
        let needle = text.as_bytes();
        let mut body: Vec<u8> = Vec::new();
        let mut cut = false;
        let mut searched = 0;
        loop {
            if holds(&body[searched..], needle) {
                return Ok(format!(
                    "{label} → {status}, body contains {}",
                    quote(&text)
                ));
            }
            searched = body.len().saturating_sub(needle.len().saturating_sub(1));
            if cut {
                break;
            }
            match within(deadline, response.chunk()).await {
                None => {
                    return Err(format!(
                        "{label}: answered {status}, but in {} the body did not contain {} \
                         nor end ({} bytes came{})",
                        late(),
                        quote(&text),
                        body.len(),
                        starts(&body),
                    ));
                }
                Some(Err(e)) => {
                    return Err(format!(
                        "{label}: answered {status}, but the body broke off after {} bytes \
                         ({}) without containing {}",
                        body.len(),
                        cause(&e, url.host_str()),
                        quote(&text),
                    ));
                }
                Some(Ok(None)) => break,
                Some(Ok(Some(chunk))) => {
                    let room = MAX_BODY - body.len();
                    cut = chunk.len() > room;
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
            }
        }
        Err(if cut {
            format!(
                "{label}: answered {status}, but the body's first {} KiB do not contain {} \
                 (the body was cut there{})",
                MAX_BODY / 1024,
                quote(&text),
                starts(&body),
            )
        } else if body.is_empty() {
            format!(
                "{label}: answered {status}, but the body is empty; wanted it to contain {}",
                quote(&text)
            )
        } else {
            format!(
                "{label}: answered {status}, but the body does not contain {}{}",
                quote(&text),
                starts(&body)
            )
        })
    }
}

/// rustls with the ring provider (the one sqlx uses). Trusted: the system's
/// CA certificates, so a company CA installed on the host works, and the
/// Mozilla roots, so a container without a CA bundle still checks public sites.
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // A system certificate that cannot be read or parsed is skipped, as a
    // browser would: the Mozilla roots are there anyway.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// `work`'s output, or None when the deadline came first.
async fn within<F: Future>(deadline: Option<Instant>, work: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
        None => Some(work.await),
    }
}

/// The Location to follow: a redirect status that is not itself the status
/// wanted (a check may want `status: 301`), with a Location header.
fn redirect_location(
    response: &reqwest::Response,
    wanted: u16,
) -> Option<&reqwest::header::HeaderValue> {
    let status = response.status().as_u16();
    if status == wanted || !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    response.headers().get(reqwest::header::LOCATION)
}

/// Why a URL is not fetched: not http(s), or credentials the ledger would
/// store and print (`check` refuses them in the manifests; a redirect may
/// still bring them).
fn refuse_unfit(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the URL's scheme is {}; HTTP checks use http or https",
            quote(url.scheme())
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL holds credentials, which are not sent".into());
    }
    Ok(())
}

/// The cause of a failed request, found down the error's sources: reqwest's
/// own wording ("error sending request") says nothing of it.
fn cause(error: &reqwest::Error, host: Option<&str>) -> String {
    use std::io::ErrorKind;
    let mut deepest = None;
    // reqwest's own error is neither an io, TLS nor DNS error: start below.
    let mut node = error.source();
    while let Some(err) = node {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            let known = match io.kind() {
                ErrorKind::ConnectionRefused => Some("connection refused"),
                ErrorKind::ConnectionReset => Some("the connection was reset"),
                ErrorKind::ConnectionAborted => Some("the connection was aborted"),
                ErrorKind::TimedOut => Some("the connection timed out"),
                ErrorKind::HostUnreachable => Some("the host is unreachable"),
                ErrorKind::NetworkUnreachable => Some("the network is unreachable"),
                ErrorKind::AddrNotAvailable => Some("the address is not available"),
                _ => None,
            };
            if let Some(known) = known {
                return known.to_string();
            }
            // An io::Error's sources skip the error it wraps (rustls's, or
            // another io::Error): go down to that one instead.
            if let Some(inner) = io.get_ref() {
                node = Some(inner);
                continue;
            }
        }
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return format!("TLS error: {tls}");
        }
        let text = err.to_string();
        // hyper-util's and reqwest's wordings of a failed name lookup.
        if text == "dns error" || text == "error resolving DNS" {
            // The resolver's words are at the bottom of the chain.
            let mut why = None;
            let mut below = err.source();
            while let Some(e) = below {
                why = Some(e.to_string());
                below = e.source();
            }
            let why = why.map(
                |w| match w.strip_prefix("failed to lookup address information: ") {
                    Some(rest) => rest.to_string(),
                    None => w,
                },
            );
            return format!(
                "cannot resolve {}{}",
                host.map_or_else(|| "the host".to_string(), quote),
                why.map(|w| format!(": {w}")).unwrap_or_default()
            );
        }
        deepest = Some(text);
        node = err.source();
    }
    // reqwest's own text names the URL, which the message already shows.
    deepest.unwrap_or_else(|| {
        let text = error.to_string();
        match text.split_once(" for url (") {
            Some((head, _)) => head.to_string(),
            None => text,
        }
    })
}

/// "200 OK", "599" (no reason known).
fn show_status(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// A URL for a message: without credentials, cut.
fn shown(url: &Url) -> String {
    let mut url = url.clone();
    // Fails only for URLs that cannot hold credentials: nothing to hide.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    cut_chars(url.as_str(), SHOWN_CHARS)
}

/// Where a redirect leaves the first URL's origin: its host, or else its
/// scheme or port.
fn elsewhere(first: &Url, target: &Url) -> String {
    let port = target
        .port_or_known_default()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    match target.host_str() {
        Some(host) if target.host() == first.host() => {
            if target.scheme() == first.scheme() {
                format!("on another port ({host}{port})")
            } else {
                format!("with another scheme ({})", target.scheme())
            }
        }
        Some(host) => format!("on another host ({host}{port})"),
        None => "which names no host".to_string(),
    }
}

/// `needle` is somewhere in `hay` (an empty needle is everywhere).
fn holds(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// "; it starts \"…\"" — the body's first characters, for a failure message.
fn starts(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    // Four bytes a character at most: enough for the characters shown.
    let head = String::from_utf8_lossy(&body[..body.len().min(4 * SHOWN_BODY_CHARS)]);
    let more = body.len() > 4 * SHOWN_BODY_CHARS || head.chars().count() > SHOWN_BODY_CHARS;
    let head: String = head.chars().take(SHOWN_BODY_CHARS).collect();
    format!(
        "; it starts \"{}\"{}",
        escape(&head),
        if more { "…" } else { "" }
    )
}

/// Text in quotes, cut, with quotes, backslashes and the characters that could
/// rewrite a terminal line escaped.
fn quote(text: &str) -> String {
    format!("\"{}\"", escape(&cut_chars(text, SHOWN_CHARS)))
}

/// A string that is not a URL, for a message: cut and escaped, no quotes.
fn quote_less(text: &str) -> String {
    escape(&cut_chars(text, SHOWN_CHARS))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if crate::model::is_unsafe_char(c) || c == '"' || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn cut_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use crate::verify::tests::V;

    const T: Duration = Duration::from_secs(5);

    /// A real HTTP/1.1 server on 127.0.0.1: each request's head is kept, and
    /// `answer(path)` is written back before the connection is closed.
    struct Server {
        addr: SocketAddr,
        heads: Arc<Mutex<Vec<String>>>,
    }

    impl Server {
        async fn start(
            answer: impl Fn(&str, SocketAddr) -> Vec<u8> + Send + Sync + 'static,
        ) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let heads = Arc::new(Mutex::new(Vec::new()));
            let kept = heads.clone();
            let answer = Arc::new(answer);
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let (kept, answer) = (kept.clone(), answer.clone());
                    tokio::spawn(async move {
                        let head = read_head(&mut socket).await;
                        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                        kept.lock().unwrap().push(head);
                        // The client may stop reading (a long body): ignore errors.
                        let _ = socket.write_all(&answer(&path, addr)).await;
                        let _ = socket.shutdown().await;
                    });
                }
            });
            Server { addr, heads }
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        fn paths(&self) -> Vec<String> {
            let heads = self.heads.lock().unwrap();
            heads
                .iter()
                .map(|h| h.split_whitespace().nth(1).unwrap_or("").to_string())
                .collect()
        }
    }

    async fn read_head(socket: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    /// A server that writes `bytes` (after the request's head when
    /// `after_head`) and then holds the connection open, never saying more.
    async fn hold(bytes: &'static [u8], after_head: bool) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                if after_head {
                    read_head(&mut socket).await;
                }
                let _ = socket.write_all(bytes).await;
                held.push(socket);
            }
        });
        addr
    }

    fn reply(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(body);
        out
    }

    fn spec(url: &str, contains: Option<&str>) -> HttpSpec {
        HttpSpec {
            url: url.to_string(),
            status: None,
            contains: contains.map(str::to_string),
        }
    }

    /// One try of `spec(url, contains)` with the usual variables and timeout.
    async fn get(url: &str, contains: Option<&str>) -> Result<String, String> {
        try_once(&spec(url, contains), &V, T).await
    }

    /// A server that answers `body` to any path with 200.
    async fn ok(body: &'static str) -> Server {
        Server::start(move |_, _| reply("200 OK", &[], body.as_bytes())).await
    }

    #[tokio::test]
    async fn passes_with_the_status_and_the_text() {
        let s = ok(r#"{"version":"1.2.0"}"#).await;
        let url = s.url("/version");
        let summary = get(&url, Some("{version}")).await.unwrap();
        assert_eq!(
            summary,
            format!("GET {url} → 200 OK, body contains \"1.2.0\"")
        );
        let plain = get(&url, None).await.unwrap();
        assert_eq!(plain, format!("GET {url} → 200 OK"));
        let heads = s.heads.lock().unwrap().clone();
        let ua = format!("user-agent: shipctl/{}\r\n", env!("CARGO_PKG_VERSION"));
        assert!(heads[0].to_lowercase().contains(&ua), "{}", heads[0]);
    }

    #[tokio::test]
    async fn a_wrong_status_fails_and_a_wanted_one_passes() {
        let s = Server::start(|_, _| reply("500 Internal Server Error", &[], b"boom")).await;
        let url = s.url("/version");
        let err = get(&url, Some("1.2.0")).await.unwrap_err();
        assert_eq!(
            err,
            format!("GET {url}: answered 500 Internal Server Error, wanted 200")
        );
        let wants_500 = HttpSpec {
            status: Some(500),
            ..spec(&url, Some("boom"))
        };
        assert!(try_once(&wants_500, &V, T).await.is_ok());
    }

    #[tokio::test]
    async fn a_body_without_the_text_fails_showing_its_start_escaped() {
        let s = ok("version 1.1.9\n\x1b[31mred\x1b[0m").await;
        let url = s.url("/version");
        let err = get(&url, Some("{version}")).await.unwrap_err();
        assert_eq!(
            err,
            format!(
                "GET {url}: answered 200 OK, but the body does not contain \"1.2.0\"; \
                 it starts \"version 1.1.9\\n\\u{{1b}}[31mred\\u{{1b}}[0m\""
            )
        );
        assert!(!err.contains('\n') && !err.contains('\x1b'));

        let long = Box::leak("x".repeat(1000).into_boxed_str());
        let s = ok(long).await;
        let err = get(&s.url("/"), Some("1.2.0")).await.unwrap_err();
        assert!(
            err.ends_with(&format!("it starts \"{}\"…", "x".repeat(200))),
            "{err}"
        );

        let s = ok("").await;
        let err = get(&s.url("/"), Some("1.2.0")).await.unwrap_err();
        assert!(
            err.ends_with("the body is empty; wanted it to contain \"1.2.0\""),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_body_is_read_up_to_64_kib() {
        let mut body = "a".repeat(MAX_BODY + 100);
        body.push_str("1.2.0");
        let body: &'static str = Box::leak(body.into_boxed_str());
        let s = ok(body).await;
        let err = get(&s.url("/"), Some("1.2.0")).await.unwrap_err();
        assert!(
            err.contains("but the body's first 64 KiB do not contain \"1.2.0\" (the body was cut there; it starts \"aaa"),
            "{err}"
        );
        // Just inside the limit, across the reads: found.
        let mut body = "a".repeat(MAX_BODY - 5);
        body.push_str("1.2.0");
        let body: &'static str = Box::leak(body.into_boxed_str());
        let s = ok(body).await;
        assert!(get(&s.url("/"), Some("1.2.0")).await.is_ok());
    }

    #[tokio::test]
    async fn a_refused_connection_says_so() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{addr}/version");
        let err = get(&url, None).await.unwrap_err();
        assert_eq!(err, format!("GET {url}: connection refused"));
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let addr = hold(b"", false).await;
        let url = format!("http://{addr}/version");
        let started = std::time::Instant::now();
        let err = try_once(&spec(&url, None), &V, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(err, format!("GET {url}: no answer within 300ms"));
    }

    #[tokio::test]
    async fn a_body_that_stalls_times_out_too() {
        let addr = hold(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstarting",
            true,
        )
        .await;
        let started = std::time::Instant::now();
        let err = try_once(
            &spec(&format!("http://{addr}/"), Some("1.2.0")),
            &V,
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            err.ends_with("answered 200 OK, but in 300ms the body did not contain \"1.2.0\" nor end (8 bytes came; it starts \"starting\")"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn redirects_are_followed_on_the_same_host_only() {
        let s = Server::start(|path, addr| match path {
            "/old" => reply("302 Found", &[("Location", "/new")], b""),
            "/new" => reply("200 OK", &[], b"1.2.0"),
            "/away" => {
                let there = format!("http://127.0.0.2:{}/version", addr.port());
                reply("301 Moved Permanently", &[("Location", &there)], b"")
            }
            "/other-port" => reply(
                "307 Temporary Redirect",
                &[("Location", "http://127.0.0.1:1/x")],
                b"",
            ),
            "/tls" => {
                let there = format!("https://{addr}/version");
                reply("308 Permanent Redirect", &[("Location", &there)], b"")
            }
            "/loop" => reply("302 Found", &[("Location", "/loop")], b""),
            "/creds" => {
                let there = format!("http://u:secret@{addr}/new");
                reply("302 Found", &[("Location", &there)], b"")
            }
            _ => reply("404 Not Found", &[], b""),
        })
        .await;
        let (old, new) = (s.url("/old"), s.url("/new"));
        let summary = get(&old, Some("1.2.0")).await.unwrap();
        assert_eq!(
            summary,
            format!("GET {old} → {new} → 200 OK, body contains \"1.2.0\"")
        );

        let away = s.url("/away");
        let err = get(&away, None).await.unwrap_err();
        let port = s.addr.port();
        assert_eq!(
            err,
            format!(
                "GET {away}: answered 301 Moved Permanently to http://127.0.0.2:{port}/version, \
                 on another host (127.0.0.2:{port}); redirects are followed only to the same \
                 scheme, host and port"
            )
        );
        let err = get(&s.url("/other-port"), None).await.unwrap_err();
        assert!(err.contains("on another port (127.0.0.1:1);"), "{err}");
        let err = get(&s.url("/tls"), None).await.unwrap_err();
        assert!(err.contains("with another scheme (https);"), "{err}");

        let err = get(&s.url("/loop"), None).await.unwrap_err();
        assert!(
            err.ends_with(&format!("to {}: more than 5 redirects", s.url("/loop"))),
            "{err}"
        );

        let err = get(&s.url("/creds"), None).await.unwrap_err();
        assert!(
            err.ends_with("and the URL holds credentials, which are not sent"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");

        let paths = s.paths();
        assert_eq!(paths.iter().filter(|p| *p == "/loop").count(), 6);
        assert_eq!(paths.iter().filter(|p| *p == "/new").count(), 1);
    }

    #[tokio::test]
    async fn a_wanted_redirect_status_is_not_followed() {
        let s = Server::start(|_, _| reply("301 Moved Permanently", &[("Location", "/new")], b""))
            .await;
        let wants_301 = HttpSpec {
            status: Some(301),
            ..spec(&s.url("/old"), None)
        };
        assert!(try_once(&wants_301, &V, T).await.is_ok());
        assert_eq!(s.paths(), ["/old"]);
    }

    #[tokio::test]
    async fn the_version_reaches_the_server_percent_encoded() {
        let s = ok("ok").await;
        let evil = Vars {
            version: "$(touch pwned)/../x?y=1#z",
            ..V
        };
        let url = format!("http://{}/v/{{version}}", s.addr);
        let summary = try_once(&spec(&url, Some("ok")), &evil, T).await.unwrap();
        let sent = "/v/%24%28touch%20pwned%29%2F..%2Fx%3Fy%3D1%23z";
        assert_eq!(s.paths(), [sent]);
        assert!(summary.starts_with(&format!("GET http://{}{sent} → 200 OK", s.addr)));
    }

    #[tokio::test]
    async fn tls_and_dns_failures_name_their_cause() {
        // A server that speaks plain HTTP to a TLS client.
        let addr = hold(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false).await;
        let url = format!("https://{addr}/version");
        let err = get(&url, None).await.unwrap_err();
        assert!(err.starts_with(&format!("GET {url}: TLS error: ")), "{err}");

        // .invalid never resolves (RFC 6761); a resolver that cannot be
        // reached at all makes this a timeout, which says nothing of the code.
        let url = "http://shipctl-check.invalid/version";
        let err = try_once(&spec(url, None), &V, Duration::from_secs(1))
            .await
            .unwrap_err();
        if !err.contains("no answer within") {
            let head = format!("GET {url}: cannot resolve \"shipctl-check.invalid\": ");
            assert!(err.starts_with(&head), "{err}");
            assert!(
                !err.contains("error resolving") && !err.contains("dns error"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn bad_urls_fail_without_a_request() {
        for (url, why) in [
            (
                "not a url",
                "GET not a url: not a URL (relative URL without a base)",
            ),
            (
                "ftp://h/x",
                "GET ftp://h/x: the URL's scheme is \"ftp\"; HTTP checks use http or https",
            ),
            (
                "http://u:p@h/x",
                "GET http://h/x: the URL holds credentials, which are not sent",
            ),
        ] {
            assert_eq!(get(url, None).await.unwrap_err(), why);
        }
    }

    #[test]
    fn messages_are_one_line_and_bounded() {
        assert_eq!(escape("a\"b\\c\r\n\u{202e}"), "a\\\"b\\\\c\\r\\n\\u{202e}");
        assert_eq!(starts(b""), "");
        assert_eq!(starts(&[0xff, b'a']), "; it starts \"\u{fffd}a\"");
        assert!(quote(&"é".repeat(1000)).chars().count() < SHOWN_CHARS + 5);
        assert_eq!(show_status(StatusCode::from_u16(599).unwrap()), "599");
        assert!(holds(b"abc", b""));
        assert!(!holds(b"ab", b"abc"));
    }
}
