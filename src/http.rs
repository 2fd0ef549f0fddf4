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
    std::env::var("GAR_HTTP_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 600.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_TIMEOUT)
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
    let uri: Uri = url
        .parse()
        .map_err(|_| HttpError::Refused(format!("{url} is not a valid URL")))?;
    let host = uri.host().unwrap_or("");
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(uri),
        Some("http") if is_loopback_host(host) => Ok(uri),
        Some("http") => Err(HttpError::Refused(format!(
            "refusing to send credentials to {url}: plain http:// is allowed only on loopback; use https://"
        ))),
        _ => Err(HttpError::Refused(format!("{url} is not an https:// URL"))),
    }
}

fn agent(connect: Duration, total: Duration, proxied: bool) -> ureq::Agent {
    let proxy = if proxied {
        ureq::Proxy::try_from_env()
    } else {
        None
    };
    ureq::Agent::config_builder()
        .timeout_connect(Some(connect))
        .timeout_global(Some(total))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(proxy)
        .user_agent(concat!("docker-credential-gar/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

fn transport(url: &str, e: ureq::Error) -> HttpError {
    let what = match &e {
        ureq::Error::Timeout(_) => "timed out".to_owned(),
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) => format!("connection failed ({e})"),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        _ => e.to_string(),
    };
    HttpError::Transport(format!("{url}: {what}"))
}

/// Reads a JSON object from a response, mapping non-2xx into [`HttpError::Status`].
fn json_response(url: &str, resp: ureq::http::Response<ureq::Body>) -> Result<Value, HttpError> {
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .map_err(|e| transport(url, e))?;
    let parsed: Option<Value> = serde_json::from_str(&body).ok();
    if !(200..300).contains(&status) {
        let field = |k: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    // Google APIs nest errors: {"error":{"code":403,"message":..,"status":..}}
                    Value::Object(o) => o
                        .get("status")
                        .or_else(|| o.get("message"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    _ => None,
                })
                .map(|s| sanitize(&s))
        };
        return Err(HttpError::Status {
            code: status,
            error: field("error"),
            description: field("error_description").or_else(|| {
                parsed
                    .as_ref()
                    .and_then(|v| v.pointer("/error/message"))
                    .and_then(Value::as_str)
                    .map(sanitize)
            }),
        });
    }
    match parsed {
        Some(v @ Value::Object(_)) => Ok(v),
        _ => Err(HttpError::BadBody(format!(
            "{url} answered {status} with a body that is not a JSON object"
        ))),
    }
}

/// Keeps upstream text printable, single-line and short.
pub fn sanitize(s: &str) -> String {
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
    check_url(url)?;
    let resp = agent(CONNECT_TIMEOUT, total_timeout(), true)
        .post(url)
        .header("Accept", "application/json")
        .send_form(form.iter().copied())
        .map_err(|e| transport(url, e))?;
    json_response(url, resp)
}

/// GETs from the metadata server: never proxied, short connect timeout, and the
/// answer must carry `Metadata-Flavor: Google`.
pub fn metadata_get(url: &str, connect: Duration) -> Result<Value, HttpError> {
    let resp = agent(connect, total_timeout().min(Duration::from_secs(10)), false)
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
            "{url} answered without the `Metadata-Flavor: Google` header, so it is not a Google metadata server"
        )));
    }
    json_response(url, resp)
}
