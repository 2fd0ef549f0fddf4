//! Blocking HTTP for the cold path: token endpoints and the metadata server.
//!
//! Nothing here runs on a cache hit. An agent is built per call (we make one to
//! three calls per process), with connect and total timeouts, the proxy from the
//! environment for Google's endpoints and never a proxy for the metadata server.
//! `http://` is accepted only for loopback hosts; TLS roots are loaded by ureq
//! lazily, so a loopback endpoint never loads them.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;
use ureq::http::Uri;

/// Default total bound on one request to a token, STS or IAM endpoint.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on establishing a TCP connection to a token endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body we read.
const MAX_BODY: u64 = 256 * 1024;

/// How a request failed; rendered by the caller into a user-facing error.
#[derive(Debug)]
pub enum HttpError {
    /// The URL is not one we will send credentials to.
    Refused(String),
    /// Connect, timeout, TLS or protocol failure: nothing usable came back.
    Transport(String),
    /// The server answered with a non-success status.
    Status {
        /// HTTP status code.
        code: u16,
        /// OAuth `error` code, if the body had one.
        error: Option<String>,
        /// OAuth `error_description`, sanitised and shortened.
        description: Option<String>,
    },
    /// The body was not the JSON we expected.
    BadBody(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Refused(m) | HttpError::Transport(m) | HttpError::BadBody(m) => {
                f.write_str(m)
            }
            HttpError::Status {
                code,
                error,
                description,
            } => {
                write!(f, "HTTP {code}")?;
                if let Some(e) = error {
                    write!(f, " {e}")?;
                }
                if let Some(d) = description {
                    write!(f, " ({d})")?;
                }
                Ok(())
            }
        }
    }
}

/// The total timeout: `GAR_HTTP_TIMEOUT` seconds (fractions allowed) or the default.
pub fn total_timeout() -> Duration {
    crate::process::duration_from_env("GAR_HTTP_TIMEOUT", DEFAULT_TIMEOUT)
}

/// True for `localhost` and loopback addresses (127.0.0.0/8, ::1).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks that `url` may receive credentials: `https://`, or `http://` on loopback.
pub fn check_url(url: &str) -> Result<Uri, HttpError> {
    let uri: Uri = url.parse().map_err(|_| {
        HttpError::Refused(format!(
            "{shown} is not a valid URL",
            shown = display_url(url)
        ))
    })?;
    let host = uri.host().unwrap_or("");
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(uri),
        Some("http") if is_loopback_host(host) => Ok(uri),
        Some("http") => Err(HttpError::Refused(format!(
            "refusing to send credentials to {shown}: plain http:// is allowed only on loopback; use https://",
            shown = display_url(url)
        ))),
        _ => Err(HttpError::Refused(format!(
            "{shown} is not an https:// URL",
            shown = display_url(url)
        ))),
    }
}

/// How a request may reach its endpoint.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Through the proxy the environment names for it, if any (Google's endpoints).
    MayProxy,
    /// Always directly (the metadata server).
    Direct,
}

/// An agent plus the time this attempt may take. Agents are shared for the whole
/// process (one per proxy setting and connect bound), so TLS roots are loaded
/// at most once, and only when an `https://` endpoint is actually called.
pub struct Client {
    agent: ureq::Agent,
    total: Duration,
}

impl Client {
    /// A POST with this attempt's total timeout.
    pub fn post(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        self.agent
            .post(url)
            .config()
            .timeout_global(Some(self.total))
            .build()
    }

    /// A GET with this attempt's total timeout.
    pub fn get(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.agent
            .get(url)
            .config()
            .timeout_global(Some(self.total))
            .build()
    }
}

type AgentKey = (Option<String>, Duration);
static AGENTS: std::sync::Mutex<Vec<(AgentKey, ureq::Agent)>> = std::sync::Mutex::new(Vec::new());

fn agent(uri: &Uri, connect: Duration, total: Duration, route: Route) -> Result<Client, HttpError> {
    let proxy_url = match route {
        Route::Direct => None,
        Route::MayProxy => {
            crate::proxy::proxy_for(uri.scheme_str().unwrap_or(""), uri.host().unwrap_or(""))
        }
    };
    let connect = connect.min(total);
    let key: AgentKey = (proxy_url.as_ref().map(|(_, u)| u.clone()), connect);
    let mut agents = AGENTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, a)) = agents.iter().find(|(k, _)| *k == key) {
        return Ok(Client {
            agent: a.clone(),
            total,
        });
    }
    let proxy = match proxy_url {
        None => None,
        Some((var, url)) if url.to_ascii_lowercase().starts_with("socks") => {
            return Err(HttpError::Refused(format!(
                "{var} names a SOCKS proxy, which docker-credential-gar does not support; use an HTTP proxy (http://host:port) or set NO_PROXY"
            )));
        }
        Some((var, url)) => Some(ureq::Proxy::new(&url).map_err(|_| {
            HttpError::Refused(format!("{var} is not a valid proxy URL; fix or unset it"))
        })?),
    };
    let a = ureq::Agent::config_builder()
        .timeout_connect(Some(connect))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(proxy)
        .user_agent(concat!("docker-credential-gar/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    agents.push((key, a.clone()));
    Ok(Client { agent: a, total })
}

/// Longest `Retry-After` we honour; longer ones fail at once with the error.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Pause before retrying a 5xx or a failed connection.
const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// How long a 429 asks us to wait (`Retry-After` in seconds or as an HTTP date).
fn retry_after(resp: &ureq::http::Response<ureq::Body>) -> Duration {
    let Some(v) = resp
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    else {
        return Duration::from_secs(1);
    };
    if let Ok(secs) = v.parse::<u64>() {
        return Duration::from_secs(secs);
    }
    httpdate::parse_http_date(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
        .unwrap_or(Duration::from_secs(1))
}

/// Sends a request built by `send` (given the agent for this attempt) within one
/// overall deadline of [`total_timeout`]: one retry after a 500/502/503/504 or a
/// failed connection (short backoff), one after a 429 when its `Retry-After` fits
/// the bound; never for other statuses (a 400 `invalid_grant` is final) or timeouts.
fn send_with_retry(
    url: &str,
    route: Route,
    connect: Duration,
    send: impl Fn(&Client) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<ureq::http::Response<ureq::Body>, HttpError> {
    let uri = check_url(url)?;
    let deadline = std::time::Instant::now() + total_timeout();
    let left = || deadline.saturating_duration_since(std::time::Instant::now());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = attempt >= 2;
        let result = send(&agent(
            &uri,
            connect,
            left().max(Duration::from_millis(1)),
            route,
        )?);
        let wait = match &result {
            Ok(r) if matches!(r.status().as_u16(), 500 | 502 | 503 | 504) => Some(RETRY_BACKOFF),
            Ok(r) if r.status().as_u16() == 429 => {
                Some(retry_after(r)).filter(|w| *w <= MAX_RETRY_AFTER)
            }
            Err(ureq::Error::ConnectionFailed | ureq::Error::Io(_)) => Some(RETRY_BACKOFF),
            _ => None,
        };
        match wait {
            Some(w) if !last && w + Duration::from_millis(100) < left() => std::thread::sleep(w),
            _ => {
                return result.map_err(|e| transport(url, e));
            }
        }
    }
}

fn transport(url: &str, e: ureq::Error) -> HttpError {
    let what = match &e {
        ureq::Error::Timeout(_) => "timed out".to_owned(),
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) => format!("connection failed ({e})"),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        _ => e.to_string(),
    };
    HttpError::Transport(format!("{shown}: {what}", shown = display_url(url)))
}

/// The status and body (at most [`MAX_BODY`]) of a 2xx answer; any other status
/// becomes [`HttpError::Status`].
fn success_body(
    url: &str,
    resp: ureq::http::Response<ureq::Body>,
    sent: &[&str],
) -> Result<(u16, String), HttpError> {
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .map_err(|e| transport(url, e))?;
    if !(200..300).contains(&status) {
        return Err(status_error(status, &body, sent));
    }
    Ok((status, body))
}

/// Reads a JSON object from a response, mapping non-2xx into [`HttpError::Status`].
fn json_response(
    url: &str,
    resp: ureq::http::Response<ureq::Body>,
    sent: &[&str],
) -> Result<Value, HttpError> {
    let (status, body) = success_body(url, resp, sent)?;
    let parsed: Option<Value> = serde_json::from_str(&body).ok();
    match parsed {
        Some(v @ Value::Object(_)) => Ok(v),
        _ => Err(HttpError::BadBody(format!(
            "{shown} answered {status} with a body that is not a JSON object",
            shown = display_url(url)
        ))),
    }
}

/// The values of name/value pairs (what was sent in a form or headers).
fn values<'a>(pairs: &[(&str, &'a str)]) -> Vec<&'a str> {
    pairs.iter().map(|(_, v)| *v).collect()
}

/// Masks in upstream text every value we sent (as sent, and form-encoded): an
/// endpoint that echoes its request must not put our secrets in an error line.
fn scrub(text: &str, sent: &[&str]) -> String {
    let mut out = text.to_owned();
    for v in sent.iter().filter(|v| v.len() >= 6) {
        // Both spellings of a form value: every byte but alphanumerics escaped (as
        // ureq sends it), and the application/x-www-form-urlencoded minimum.
        const FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'*')
            .remove(b'-')
            .remove(b'.')
            .remove(b'_');
        let strict = percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        let lenient = percent_encoding::utf8_percent_encode(v, FORM).to_string();
        for form in [(*v).to_owned(), strict, lenient] {
            if !form.is_empty() && out.contains(&form) {
                out = out.replace(&form, "<redacted>");
            }
        }
    }
    out
}

/// A URL as it may appear in a message: no userinfo (a password), no query or
/// fragment (tokens ride there), e.g. `https://h/p?…`.
pub fn display_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let (base, cut) = (&url[..end], end < url.len());
    let base = match base.find("://") {
        Some(i) => {
            let (scheme, rest) = base.split_at(i + 3);
            let auth_end = rest.find('/').unwrap_or(rest.len());
            match rest[..auth_end].rfind('@') {
                Some(at) => format!("{scheme}{}", &rest[at + 1..]),
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if cut { format!("{base}?…") } else { base }
}

/// Keeps upstream text printable, single-line and short, with anything shaped
/// like a token or key masked (a server may echo what it was sent).
pub fn sanitize(s: &str) -> String {
    let s = crate::log::redact(s);
    let s = s.as_str();
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// POSTs a URL-encoded form and returns the JSON object answer.
pub fn post_form(url: &str, form: &[(&str, &str)]) -> Result<Value, HttpError> {
    let resp = send_with_retry(url, Route::MayProxy, CONNECT_TIMEOUT, |agent| {
        agent
            .post(url)
            .header("Accept", "application/json")
            .send_form(form.iter().copied())
    })?;
    json_response(url, resp, &values(form))
}

/// GETs from the metadata server: never proxied, short connect timeout, and the
/// answer must carry `Metadata-Flavor: Google` (else its body is not trusted).
pub fn metadata_get(url: &str, connect: Duration) -> Result<Value, HttpError> {
    let uri: Uri = url.parse().map_err(|_| {
        HttpError::Refused(format!(
            "{shown} is not a valid URL",
            shown = display_url(url)
        ))
    })?;
    let resp = agent(
        &uri,
        connect,
        total_timeout().min(Duration::from_secs(10)),
        Route::Direct,
    )?
    .get(url)
    .header("Metadata-Flavor", "Google")
    .call()
    .map_err(|e| transport(url, e))?;
    let flavor_ok = resp
        .headers()
        .get("Metadata-Flavor")
        .is_some_and(|v| v.as_bytes() == b"Google");
    if !flavor_ok {
        return Err(HttpError::BadBody(format!(
            "{shown} answered without the `Metadata-Flavor: Google` header, so it is not a Google metadata server",
            shown = display_url(url)
        )));
    }
    json_response(url, resp, &[])
}

/// Builds the [`HttpError::Status`] for a non-2xx answer whose body may be JSON
/// (OAuth `{"error":..,"error_description":..}` or Google's nested `{"error":{..}}`).
fn status_error(status: u16, body: &str, sent: &[&str]) -> HttpError {
    let sanitize = |t: &str| scrub(&sanitize(t), sent);
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o
                    .get("status")
                    .or_else(|| o.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                _ => None,
            })
            .map(|s| sanitize(&s))
    };
    HttpError::Status {
        code: status,
        error: field("error"),
        description: field("error_description").or_else(|| {
            parsed
                .as_ref()
                .and_then(|v| v.pointer("/error/message"))
                .and_then(Value::as_str)
                .map(sanitize)
        }),
    }
}

/// Checks request headers taken from a credentials file before they are sent; the
/// message names the header but never its value (it may be a bearer token).
fn check_headers(headers: &[(&str, &str)]) -> Result<(), HttpError> {
    for (k, v) in headers {
        if ureq::http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            return Err(HttpError::Refused(format!(
                "`{}` is not a valid HTTP header name",
                sanitize(k)
            )));
        }
        if ureq::http::HeaderValue::from_str(v).is_err() {
            return Err(HttpError::Refused(format!(
                "the value of header `{}` is not a valid HTTP header value",
                sanitize(k)
            )));
        }
    }
    Ok(())
}

/// GETs `url` with extra request headers (for instance `Authorization`) and
/// returns the body text of a 2xx answer; a non-2xx answer becomes
/// [`HttpError::Status`]. Same rules as [`post_form`]: `https://` or loopback
/// `http://`, connect and total timeouts, proxy from the environment, no redirects.
pub fn get_text(url: &str, headers: &[(&str, &str)]) -> Result<String, HttpError> {
    check_headers(headers)?;
    let resp = send_with_retry(url, Route::MayProxy, CONNECT_TIMEOUT, |agent| {
        let mut req = agent.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.call()
    })?;
    let (_, body) = success_body(url, resp, &values(headers))?;
    Ok(body)
}

/// Like [`post_form`], with extra request headers (for instance HTTP Basic client
/// authentication).
pub fn post_form_with_headers(
    url: &str,
    headers: &[(&str, &str)],
    form: &[(&str, &str)],
) -> Result<Value, HttpError> {
    check_headers(headers)?;
    let resp = send_with_retry(url, Route::MayProxy, CONNECT_TIMEOUT, |agent| {
        let mut req = agent.post(url).header("Accept", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send_form(form.iter().copied())
    })?;
    let mut sent = values(form);
    sent.extend(values(headers));
    json_response(url, resp, &sent)
}

/// POSTs `body` as JSON with `Authorization: Bearer <bearer>` (Google's IAM
/// Credentials API) and returns the JSON object answer. Same rules as [`post_form`].
pub fn post_json_bearer(url: &str, bearer: &str, body: &Value) -> Result<Value, HttpError> {
    let auth = format!("Bearer {bearer}");
    if ureq::http::HeaderValue::from_str(&auth).is_err() {
        return Err(HttpError::Refused(
            "the access token to send is not a valid HTTP header value".to_owned(),
        ));
    }
    let resp = send_with_retry(url, Route::MayProxy, CONNECT_TIMEOUT, |agent| {
        agent
            .post(url)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Authorization", &auth)
            .send(body.to_string())
    })?;
    json_response(url, resp, &[bearer])
}
