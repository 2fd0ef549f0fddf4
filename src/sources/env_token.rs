//! `GOOGLE_OAUTH_ACCESS_TOKEN`: a token supplied by the caller, used as is.

use crate::token::Token;

/// The variable that carries a ready-made access token.
pub const VAR: &str = "GOOGLE_OAUTH_ACCESS_TOKEN";

/// The token from the environment, if set and non-empty.
pub fn from_env() -> Option<Token> {
    let v = std::env::var(VAR).ok()?;
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    Some(Token {
        secret: v.to_owned(),
        expires_at: None,
        lifetime: 0,
    })
}
