//! Pieces shared by the sources that talk OAuth: parsing a token answer and
//! turning an HTTP failure into an error that says what to do.

use serde_json::Value;

use crate::error::Error;
use crate::http::HttpError;
use crate::token::Token;

/// Google's OAuth token endpoint, used when a file names none.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The scope Artifact Registry accepts.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Lifetime assumed when an answer gives none (Google's default).
const DEFAULT_EXPIRES_IN: u64 = 3600;

/// Reads `{"access_token": .., "expires_in": ..}` from a token endpoint's answer.
pub fn parse_token(v: &Value, source: &str, endpoint: &str) -> Result<Token, Error> {
    let endpoint = &crate::http::display_url(endpoint);
    let secret = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::source(
                source,
                format!("{endpoint} answered without an access_token"),
                None,
            )
        })?;
    let expires_in = match v.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        None => Some(DEFAULT_EXPIRES_IN),
        _ => None,
    }
    .ok_or_else(|| {
        Error::source(
            source,
            format!("{endpoint} answered with an invalid expires_in"),
            None,
        )
    })?;
    Ok(Token::expiring_in(secret.to_owned(), expires_in))
}

/// Maps a failed call to `endpoint` into a user-facing error, with `rejected_fix`
/// as the advice when the endpoint refused the credentials themselves.
pub fn http_error(source: &str, endpoint: &str, e: HttpError, rejected_fix: &str) -> Error {
    let endpoint = &crate::http::display_url(endpoint);
    match e {
        HttpError::Status {
            code: 400 | 401 | 403,
            ref error,
            ..
        } => {
            let fix = if error.as_deref() == Some("invalid_grant")
                || error.as_deref() == Some("invalid_client")
                || error.as_deref() == Some("unauthorized_client")
            {
                rejected_fix.to_owned()
            } else {
                format!("check the credentials; {rejected_fix}")
            };
            Error::source(
                source,
                format!("{endpoint} rejected the credentials: {e}"),
                Some(&fix),
            )
        }
        HttpError::Status {
            code: 300..=399, ..
        } => Error::source(
            source,
            format!("{endpoint} answered with a redirect ({e}), which is not followed"),
            Some("check that the endpoint URL is right (and any proxy in front of it)"),
        ),
        HttpError::Status { .. } => Error::source(
            source,
            format!("{endpoint} failed: {e}"),
            Some("Google's endpoint is having trouble; try again shortly"),
        ),
        HttpError::Transport(_) => Error::source(
            source,
            e.to_string(),
            Some("check the network and any HTTPS_PROXY setting (GAR_HTTP_TIMEOUT sets the bound)"),
        ),
        HttpError::Refused(_) | HttpError::BadBody(_) => Error::source(source, e.to_string(), None),
    }
}
