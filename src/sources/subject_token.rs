//! Where a Workload Identity Federation subject token comes from: the
//! `credential_source` of an `external_account` file (a file, a URL, or an
//! executable), or GitHub's OIDC endpoint in the built-in GitHub mode.
//!
//! A subject token is fetched afresh for every mint and never stored. Nothing
//! here ever puts a subject token, a header value or an executable's output into
//! an error.

use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::error::Error;
use crate::files::{self, ReadError};
use crate::http::{self, HttpError};
use crate::token;

/// Largest subject-token file or executable output we read.
const MAX_TOKEN_BYTES: u64 = 1024 * 1024;
/// The variable that must be exactly `1` before an executable source runs (as in
/// Google's client libraries).
pub const ALLOW_EXECUTABLES: &str = "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES";
/// Default bound on one run of an executable source.
const DEFAULT_EXEC_TIMEOUT_MS: u64 = 30_000;
/// Google's bounds on `timeout_millis`.
const MIN_EXEC_TIMEOUT_MS: u64 = 5_000;
const MAX_EXEC_TIMEOUT_MS: u64 = 120_000;
/// Highest executable-response `version` understood.
const EXEC_MAX_VERSION: u64 = 1;

/// How the token is laid out in a file or URL response.
pub enum Format {
    /// The whole content is the token (surrounding whitespace dropped).
    Text,
    /// A JSON object; the token is the string in this field.
    Json(String),
}

/// An executable source (`credential_source.executable`).
pub struct Executable {
    /// The command line as written in the file.
    pub command: String,
    argv: Vec<String>,
    timeout: Duration,
    output_file: Option<PathBuf>,
}

/// One way of getting a subject token.
pub enum SubjectSource {
    /// `credential_source.file`: Kubernetes projected tokens, GitLab `id_tokens` written to a file.
    File {
        /// The file.
        path: PathBuf,
        /// Its layout.
        format: Format,
    },
    /// `credential_source.url`: e.g. GitHub's OIDC endpoint, with its headers.
    Url {
        /// The URL (may carry a query).
        url: String,
        /// Request headers (values may be secrets).
        headers: Vec<(String, String)>,
        /// The answer's layout.
        format: Format,
    },
    /// `credential_source.executable`, gated by `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`.
    Executable(Executable),
}

/// What an executable source is told about the request (Google's variables).
pub struct ExecContext<'a> {
    /// `GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE`.
    pub audience: &'a str,
    /// `GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE`.
    pub token_type: &'a str,
    /// `GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL`, when a service account is impersonated.
    pub impersonated_email: Option<&'a str>,
}

fn parse_format(v: Option<&Value>) -> Result<Format, String> {
    let Some(v) = v else {
        return Ok(Format::Text);
    };
    let obj = v
        .as_object()
        .ok_or("has a credential_source.format that is not an object")?;
    match obj.get("type").map(|t| t.as_str()) {
        None | Some(Some("text")) => Ok(Format::Text),
        Some(Some("json")) => match obj.get("subject_token_field_name").and_then(Value::as_str) {
            Some(f) if !f.is_empty() => Ok(Format::Json(f.to_owned())),
            _ => Err(
                "has credential_source.format.type `json` without a subject_token_field_name"
                    .to_owned(),
            ),
        },
        Some(Some(other)) => Err(format!(
            "has credential_source.format.type `{}`; use `text` or `json`",
            http::sanitize(&other.chars().take(40).collect::<String>())
        )),
        Some(None) => Err("has a credential_source.format.type that is not a string".to_owned()),
    }
}

fn str_field<'a>(obj: &'a serde_json::Map<String, Value>, k: &str) -> Result<&'a str, String> {
    match obj.get(k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        _ => Err(format!(
            "has a credential_source.{k} that is not a non-empty string"
        )),
    }
}

impl SubjectSource {
    /// Reads `credential_source` of an `external_account` file. The error is the
    /// problem with the file, for [`super::credentials_file::Origin::err`].
    pub fn parse(v: Option<&Value>) -> Result<SubjectSource, String> {
        let obj = v
            .and_then(Value::as_object)
            .ok_or("has no credential_source object")?;
        if let Some(env) = obj.get("environment_id") {
            let id = env.as_str().unwrap_or("");
            if id.to_ascii_lowercase().starts_with("aws") {
                return Err(format!(
                    "uses an AWS credential source (environment_id `{}`), which docker-credential-gar does not support; \
                     on AWS log gcloud in with `gcloud auth login --cred-file=<this file>` and unset \
                     GOOGLE_APPLICATION_CREDENTIALS, or pass a token in GOOGLE_OAUTH_ACCESS_TOKEN",
                    http::sanitize(&id.chars().take(20).collect::<String>())
                ));
            }
            return Err(format!(
                "has credential_source.environment_id `{}`, which is not a supported environment",
                http::sanitize(&id.chars().take(20).collect::<String>())
            ));
        }
        if obj.contains_key("certificate") {
            return Err(
                "uses an X.509 certificate credential source, which docker-credential-gar does not support; \
                 use a file, url or executable credential source"
                    .to_owned(),
            );
        }
        let kinds: Vec<&str> = ["file", "url", "executable"]
            .into_iter()
            .filter(|k| obj.contains_key(*k))
            .collect();
        match kinds.as_slice() {
            ["file"] => Ok(SubjectSource::File {
                path: PathBuf::from(str_field(obj, "file")?),
                format: parse_format(obj.get("format"))?,
            }),
            ["url"] => {
                let url = str_field(obj, "url")?.to_owned();
                let mut headers = Vec::new();
                match obj.get("headers") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(h)) => {
                        for (k, v) in h {
                            let v = v.as_str().ok_or_else(|| {
                                format!(
                                    "has a credential_source.headers entry `{}` that is not a string",
                                    http::sanitize(k)
                                )
                            })?;
                            headers.push((k.clone(), v.to_owned()));
                        }
                    }
                    Some(_) => {
                        return Err(
                            "has credential_source.headers that is not an object".to_owned()
                        );
                    }
                }
                Ok(SubjectSource::Url {
                    url,
                    headers,
                    format: parse_format(obj.get("format"))?,
                })
            }
            ["executable"] => {
                Executable::parse(obj.get("executable")).map(SubjectSource::Executable)
            }
            [] => Err("has a credential_source with none of file, url or executable".to_owned()),
            _ => Err(format!(
                "has a credential_source with more than one of {}; keep exactly one",
                kinds.join(", ")
            )),
        }
    }

    /// The part of the cache identity that names the source. Never the subject
    /// token itself: a file source adds a hash of the token's stable claims
    /// (`iss`, `sub`, `aud`), so another workload's token written to the same path
    /// is another identity; a URL source adds a hash of its header values.
    pub fn identity(&self) -> String {
        match self {
            SubjectSource::File { path, format } => {
                let claims = read_file(path, files::Require::default())
                    .ok()
                    .and_then(|c| extract(&c, format).ok())
                    .and_then(|t| stable_claims_hash(&t))
                    .unwrap_or_default();
                format!("file\0{}\0{}\0{claims}", path.display(), format_id(format))
            }
            SubjectSource::Url {
                url,
                headers,
                format,
            } => {
                let mut h = String::new();
                for (k, v) in headers {
                    h.push_str(k);
                    h.push('\0');
                    h.push_str(v);
                    h.push('\0');
                }
                format!(
                    "url\0{url}\0{}\0{}",
                    crate::cache::short_hash(&h, 12),
                    format_id(format)
                )
            }
            SubjectSource::Executable(e) => format!(
                "executable\0{}\0{}",
                e.command,
                e.output_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        }
    }

    /// How the source is named in messages (a URL without its query).
    pub fn describe(&self) -> String {
        match self {
            SubjectSource::File { path, .. } => format!("file {}", path.display()),
            SubjectSource::Url { url, .. } => format!("URL {}", crate::http::display_url(url)),
            SubjectSource::Executable(e) => {
                format!("executable {}", e.argv.first().map_or("", String::as_str))
            }
        }
    }

    /// Fetches a fresh subject token. `owner` names the credential in errors;
    /// `url_fix` is the advice when a URL source rejects the request.
    pub fn fetch(
        &self,
        owner: &str,
        ctx: &ExecContext<'_>,
        url_fix: &str,
    ) -> Result<String, Error> {
        let fail = |problem: String, fix: &str| {
            Error::source(
                owner,
                format!(
                    "reading the subject token from {} failed: {problem}",
                    self.describe()
                ),
                Some(fix),
            )
        };
        match self {
            SubjectSource::File { path, format } => {
                let fix = "check credential_source.file: the file must exist and be readable when docker asks \
                           (Kubernetes: the projected service-account token volume; GitLab: the step that writes the id_token)";
                let content =
                    read_file(path, files::Require::default()).map_err(|p| fail(p, fix))?;
                extract(&content, format).map_err(|p| fail(format!("the file {p}"), fix))
            }
            SubjectSource::Url {
                url,
                headers,
                format,
            } => {
                let hdrs: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let body = http::get_text(url, &hdrs).map_err(|e| {
                    let redacted = crate::http::display_url(url);
                    let msg = e.to_string().replace(url.as_str(), &redacted);
                    match e {
                        HttpError::Status { code: 400..=499, .. } => fail(msg, url_fix),
                        HttpError::Status { .. } => {
                            fail(msg, "the token endpoint is having trouble; try again shortly")
                        }
                        HttpError::Transport(_) => fail(
                            msg,
                            "check the network and any HTTPS_PROXY setting (GAR_HTTP_TIMEOUT sets the bound)",
                        ),
                        HttpError::Refused(_) | HttpError::BadBody(_) => {
                            fail(msg, "fix credential_source.url and credential_source.headers")
                        }
                    }
                })?;
                extract(&body, format)
                    .map_err(|p| fail(format!("the answer {p}"), "check credential_source.format"))
            }
            SubjectSource::Executable(e) => e.fetch(owner, ctx),
        }
    }
}

fn format_id(f: &Format) -> String {
    match f {
        Format::Text => "text".to_owned(),
        Format::Json(field) => format!("json:{field}"),
    }
}

/// A hash of a JWT's `iss`, `sub` and `aud` claims (which stay the same when the
/// token is renewed), or `None` if the token is not a JWT.
fn stable_claims_hash(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, claims, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = URL_SAFE_NO_PAD.decode(claims.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let c = |k: &str| v.get(k).map(Value::to_string).unwrap_or_default();
    Some(crate::cache::short_hash(
        &format!("{}\0{}\0{}", c("iss"), c("sub"), c("aud")),
        12,
    ))
}

/// Reads a subject-token file or an executable's output file (a regular file
/// meeting `req`, at most 1 MiB, UTF-8). The error completes "… failed: ".
fn read_file(path: &Path, req: files::Require) -> Result<String, String> {
    let buf = files::read(path, MAX_TOKEN_BYTES, req).map_err(|e| match e {
        ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "the file does not exist".to_owned()
        }
        ReadError::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            "the file cannot be read (permission denied)".to_owned()
        }
        ReadError::TooLarge => "the file is larger than 1 MiB, so it is not a token".to_owned(),
        other => format!("the file {other}"),
    })?;
    String::from_utf8(buf).map_err(|_| "the file is not UTF-8 text".to_owned())
}

/// Takes the token out of `content`; the error completes "the file …" / "the answer …".
fn extract(content: &str, format: &Format) -> Result<String, String> {
    let token = match format {
        Format::Text => content.trim().to_owned(),
        Format::Json(field) => {
            let v: Value = serde_json::from_str(content).map_err(|_| {
                "is not JSON, but credential_source.format.type is `json`".to_owned()
            })?;
            match v.get(field) {
                Some(Value::String(s)) => s.trim().to_owned(),
                _ => {
                    return Err(format!(
                        "has no string field `{}` (subject_token_field_name)",
                        http::sanitize(field)
                    ));
                }
            }
        }
    };
    if token.is_empty() {
        return Err("is empty".to_owned());
    }
    if token.chars().any(char::is_control) {
        return Err(
            "holds more than one token (control characters or line breaks inside)".to_owned(),
        );
    }
    Ok(token)
}

// ---------------------------------------------------------------------------
// Executable sources
// ---------------------------------------------------------------------------

/// Why an executable response gave no token.
enum Response {
    Token(String),
    Expired,
    Failed { code: String, message: String },
    Malformed(String),
}

fn parse_response(v: &Value) -> Response {
    let Some(obj) = v.as_object() else {
        return Response::Malformed("is not a JSON object".to_owned());
    };
    match obj.get("version").and_then(Value::as_u64) {
        None => return Response::Malformed("has no numeric `version` field".to_owned()),
        Some(n) if n > EXEC_MAX_VERSION => {
            return Response::Malformed(format!(
                "has version {n}, but only version {EXEC_MAX_VERSION} is supported"
            ));
        }
        Some(_) => {}
    }
    match obj.get("success").and_then(Value::as_bool) {
        None => return Response::Malformed("has no boolean `success` field".to_owned()),
        Some(false) => {
            let code = obj.get("code").and_then(Value::as_str);
            let message = obj.get("message").and_then(Value::as_str);
            return match (code, message) {
                (Some(c), Some(m)) => Response::Failed {
                    code: http::sanitize(c),
                    message: http::sanitize(m),
                },
                _ => Response::Malformed(
                    "reports success:false without `code` and `message`".to_owned(),
                ),
            };
        }
        Some(true) => {}
    }
    if let Some(exp) = obj.get("expiration_time") {
        match exp.as_u64() {
            Some(t) if t <= token::now() => return Response::Expired,
            Some(_) => {}
            None => {
                return Response::Malformed(
                    "has an `expiration_time` that is not a number".to_owned(),
                );
            }
        }
    }
    let field = match obj.get("token_type").and_then(Value::as_str) {
        Some(
            "urn:ietf:params:oauth:token-type:jwt" | "urn:ietf:params:oauth:token-type:id_token",
        ) => "id_token",
        Some("urn:ietf:params:oauth:token-type:saml2") => "saml_response",
        Some(other) => {
            return Response::Malformed(format!(
                "has the unsupported token_type `{}`",
                http::sanitize(&other.chars().take(60).collect::<String>())
            ));
        }
        None => return Response::Malformed("has no `token_type` field".to_owned()),
    };
    match obj.get(field).and_then(Value::as_str).map(str::trim) {
        Some(t) if !t.is_empty() && !t.chars().any(char::is_control) => {
            Response::Token(t.to_owned())
        }
        _ => Response::Malformed(format!("has no `{field}`")),
    }
}

impl Executable {
    fn parse(v: Option<&Value>) -> Result<Executable, String> {
        let obj = v
            .and_then(Value::as_object)
            .ok_or("has a credential_source.executable that is not an object")?;
        let command = match obj.get("command") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => {
                return Err("has a credential_source.executable without a `command`".to_owned());
            }
        };
        let argv: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
        let timeout_ms = match obj.get("timeout_millis") {
            None | Some(Value::Null) => DEFAULT_EXEC_TIMEOUT_MS,
            Some(v) => match v.as_u64() {
                Some(ms) if (MIN_EXEC_TIMEOUT_MS..=MAX_EXEC_TIMEOUT_MS).contains(&ms) => ms,
                _ => {
                    return Err(format!(
                        "has credential_source.executable.timeout_millis outside {MIN_EXEC_TIMEOUT_MS}..{MAX_EXEC_TIMEOUT_MS}"
                    ));
                }
            },
        };
        let output_file = match obj.get("output_file") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(PathBuf::from(s)),
            Some(_) => {
                return Err(
                    "has a credential_source.executable.output_file that is not a non-empty string"
                        .to_owned(),
                );
            }
        };
        Ok(Executable {
            command,
            argv,
            timeout: Duration::from_millis(timeout_ms),
            output_file,
        })
    }

    /// A still-valid answer the executable left in its output file, if any. The
    /// file is trusted only if this user alone controls it (a regular file, no
    /// symlink, ours, not writable by group or others): in a shared directory
    /// such as /tmp another user could plant an answer with a token of theirs.
    /// An untrusted file is ignored, and the executable runs.
    fn cached_output(&self) -> Option<String> {
        let path = self.output_file.as_ref()?;
        let bytes = match files::read(path, MAX_TOKEN_BYTES, files::Require::OURS) {
            Ok(b) => b,
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                crate::log::info(format_args!(
                    "not using the executable's output_file {}: it {e}",
                    path.display()
                ));
                return None;
            }
        };
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        // Without an expiration_time a stored answer is never trusted (Google's rule).
        v.get("expiration_time")?;
        match parse_response(&v) {
            Response::Token(t) => Some(t),
            _ => None,
        }
    }

    fn fetch(&self, owner: &str, ctx: &ExecContext<'_>) -> Result<String, Error> {
        let program = self.argv.first().map_or("", String::as_str);
        let err = |problem: String, fix: &str| {
            Error::source(
                owner,
                format!("reading the subject token from executable {program} failed: {problem}"),
                Some(fix),
            )
        };
        if std::env::var_os(ALLOW_EXECUTABLES).is_none_or(|v| v != "1") {
            return Err(err(
                "executable credential sources are not allowed".to_owned(),
                "set GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1 to allow running it (Google's client libraries require the same)",
            ));
        }
        if let Some(t) = self.cached_output() {
            return Ok(t);
        }
        let stdout = self.run(&err, ctx)?;
        let text = String::from_utf8(stdout).map_err(|_| {
            err(
                "it printed output that is not UTF-8".to_owned(),
                "make it print Google's executable-response JSON",
            )
        })?;
        let text = if text.trim().is_empty() {
            match &self.output_file {
                Some(p) => read_file(p, files::Require::OURS).map_err(|problem| {
                    err(
                        format!(
                            "it printed nothing and its output_file {}: {problem}",
                            p.display()
                        ),
                        "make it print the response or write it to output_file \
                         (a file of yours that other users cannot write)",
                    )
                })?,
                None => text,
            }
        } else {
            text
        };
        let v: Value = serde_json::from_str(text.trim()).map_err(|_| {
            err(
                "its output is not JSON".to_owned(),
                "make it print Google's executable-response JSON ({\"version\":1,\"success\":true,…})",
            )
        })?;
        match parse_response(&v) {
            Response::Token(t) => Ok(t),
            Response::Expired => Err(err(
                "it returned a token whose expiration_time has passed".to_owned(),
                "make it return a fresh token",
            )),
            Response::Failed { code, message } => Err(err(
                format!("it reported failure: {code}: {message}"),
                "fix what the executable reports",
            )),
            Response::Malformed(what) => Err(err(
                format!("its response {what}"),
                "make it print Google's executable-response JSON ({\"version\":1,\"success\":true,…})",
            )),
        }
    }

    fn run(
        &self,
        err: &dyn Fn(String, &str) -> Error,
        ctx: &ExecContext<'_>,
    ) -> Result<Vec<u8>, Error> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err(err(
                "the command is empty".to_owned(),
                "set credential_source.executable.command",
            ));
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE", ctx.audience)
            .env("GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE", ctx.token_type)
            .env("GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE", "0")
            .env_remove("GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL")
            .env_remove("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE")
            // Its stderr might carry a token: never captured (run_bounded drops it).
            ;
        if let Some(e) = ctx.impersonated_email {
            cmd.env("GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL", e);
        }
        if let Some(f) = &self.output_file {
            cmd.env("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE", f);
        }
        let finished = match crate::process::run_bounded(
            &mut cmd,
            self.timeout,
            MAX_TOKEN_BYTES + 1,
            false,
        ) {
            Ok(f) => f,
            Err(crate::process::RunError::Spawn(e)) => {
                return Err(err(
                    format!("it could not be started ({e})"),
                    "check credential_source.executable.command (an absolute path to an executable file)",
                ));
            }
            Err(crate::process::RunError::TimedOut) => {
                return Err(err(
                    format!(
                        "it did not finish within {} s and was stopped",
                        self.timeout.as_secs_f64()
                    ),
                    "run the command yourself to see what it waits for (credential_source.executable.timeout_millis sets the bound)",
                ));
            }
        };
        let status = finished.status;
        if !status.success() {
            return Err(err(
                format!(
                    "it exited with {}",
                    status
                        .code()
                        .map_or("a signal".to_owned(), |c| format!("status {c}"))
                ),
                "run the command yourself to see why",
            ));
        }
        let out = finished.stdout;
        if out.len() as u64 > MAX_TOKEN_BYTES {
            return Err(err(
                "it printed more than 1 MiB".to_owned(),
                "make it print only Google's executable-response JSON",
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn executable_responses_are_read_as_google_specifies() {
        let later = token::now() + 600;
        let ok = json!({"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:jwt","id_token":"a.b.c","expiration_time":later});
        assert!(matches!(parse_response(&ok), Response::Token(t) if t == "a.b.c"));
        let saml = json!({"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:saml2","saml_response":"PHNhbWw+"});
        assert!(matches!(parse_response(&saml), Response::Token(t) if t == "PHNhbWw+"));
        let failed =
            json!({"version":1,"success":false,"code":"401","message":"Caller not authorized."});
        assert!(
            matches!(parse_response(&failed), Response::Failed { code, message } if code == "401" && message == "Caller not authorized.")
        );
        let expired = json!({"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:jwt","id_token":"a.b.c","expiration_time":1});
        assert!(matches!(parse_response(&expired), Response::Expired));
        let v2 = json!({"version":2,"success":true});
        assert!(matches!(parse_response(&v2), Response::Malformed(m) if m.contains("version 2")));
        let no_code = json!({"version":1,"success":false});
        assert!(matches!(parse_response(&no_code), Response::Malformed(_)));
    }

    #[test]
    fn formats_and_sources_parse_with_clear_problems() {
        let s = SubjectSource::parse(Some(
            &json!({"file":"/t","format":{"type":"json","subject_token_field_name":"id_token"}}),
        ))
        .ok();
        assert!(
            matches!(s, Some(SubjectSource::File { format: Format::Json(f), .. }) if f == "id_token")
        );
        let e = SubjectSource::parse(Some(&json!({"file":"/t","url":"https://x"})))
            .err()
            .unwrap();
        assert!(e.contains("more than one of file, url"), "{e}");
        let e = SubjectSource::parse(Some(&json!({"environment_id":"aws1","region_url":"x"})))
            .err()
            .unwrap();
        assert!(e.contains("AWS") && e.contains("not support"), "{e}");
        let e = SubjectSource::parse(Some(&json!({"file":"/t","format":{"type":"json"}})))
            .err()
            .unwrap();
        assert!(e.contains("subject_token_field_name"), "{e}");
        let e = SubjectSource::parse(Some(
            &json!({"executable":{"command":"/x","timeout_millis":10}}),
        ))
        .err()
        .unwrap();
        assert!(e.contains("timeout_millis"), "{e}");
    }

    #[test]
    fn text_tokens_are_trimmed_and_json_fields_read() {
        assert_eq!(extract("a.b.c\n", &Format::Text).unwrap(), "a.b.c");
        assert_eq!(
            extract("{\"value\":\"x.y.z\"}", &Format::Json("value".into())).unwrap(),
            "x.y.z"
        );
        assert!(
            extract("  \n", &Format::Text)
                .unwrap_err()
                .contains("empty")
        );
        assert!(extract("a\nb", &Format::Text).is_err());
        assert!(
            extract("{}", &Format::Json("value".into()))
                .unwrap_err()
                .contains("`value`")
        );
    }

    #[test]
    fn stable_claims_ignore_iat_exp_and_jti() {
        let jwt = |claims: Value| {
            format!(
                "{}.{}.sig",
                URL_SAFE_NO_PAD.encode(b"{\"alg\":\"RS256\"}"),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            )
        };
        let a = jwt(json!({"iss":"i","sub":"s","aud":"a","iat":1,"jti":"1"}));
        let b = jwt(json!({"iss":"i","sub":"s","aud":"a","iat":2,"jti":"2"}));
        let c = jwt(json!({"iss":"i","sub":"other","aud":"a","iat":2,"jti":"2"}));
        assert_eq!(stable_claims_hash(&a), stable_claims_hash(&b));
        assert_ne!(stable_claims_hash(&a), stable_claims_hash(&c));
        assert_eq!(stable_claims_hash("opaque-token"), None);
    }

    #[test]
    fn urls_lose_their_query_in_messages() {
        assert_eq!(
            crate::http::display_url("https://h/p?a=1&audience=x"),
            "https://h/p?…"
        );
        assert_eq!(crate::http::display_url("https://h/p"), "https://h/p");
    }
}
