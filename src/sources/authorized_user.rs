//! An `authorized_user` file: a user's refresh token, exchanged for an access token.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::credentials_file::Origin;
use super::oauth;
use crate::error::Error;
use crate::token::Token;

#[derive(Deserialize)]
struct Raw {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    account: Option<String>,
}

/// A parsed `authorized_user` file. Holds secrets, so it has no `Debug`.
pub struct AuthorizedUser {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    account: Option<String>,
    /// Where the refresh grant is sent.
    pub token_uri: String,
    path: PathBuf,
}

impl AuthorizedUser {
    /// Reads the fields of an `authorized_user` file. The endpoint is the file's
    /// `token_uri`, else `GAR_TOKEN_URL`, else Google's.
    pub fn from_json(v: Value, origin: &Origin) -> Result<Self, Error> {
        let raw: Raw = origin.parse(v, "authorized_user")?;
        let token_uri = raw
            .token_uri
            .filter(|u| !u.trim().is_empty())
            .or_else(|| {
                std::env::var("GAR_TOKEN_URL")
                    .ok()
                    .filter(|u| !u.is_empty())
            })
            .unwrap_or_else(|| oauth::GOOGLE_TOKEN_URL.to_owned());
        Ok(AuthorizedUser {
            client_id: raw.client_id,
            client_secret: raw.client_secret,
            refresh_token: raw.refresh_token,
            account: raw.account.filter(|a| !a.is_empty()),
            token_uri,
            path: origin.path.clone(),
        })
    }

    /// The cache identity. A hash of the refresh token is part of it, so logging
    /// in as someone else at the same path never returns the old user's token.
    pub fn identity(&self) -> String {
        let rt = crate::cache::short_hash(&self.refresh_token, 12);
        format!(
            "authorized_user\0{}\0{}\0{rt}\0{}",
            self.path.display(),
            self.client_id,
            self.token_uri
        )
    }

    /// How the source is named in messages.
    pub fn describe(&self) -> String {
        match &self.account {
            Some(a) => format!("user credentials for {a} ({})", self.path.display()),
            None => format!("user credentials {}", self.path.display()),
        }
    }

    /// Mints an access token with the refresh token.
    pub fn fetch(&self) -> Result<Token, Error> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("refresh_token", self.refresh_token.as_str()),
        ];
        let v = crate::http::post_form(&self.token_uri, &form).map_err(|e| {
            oauth::http_error(
                &self.describe(),
                &self.token_uri,
                e,
                "the refresh token was revoked or has expired: run `gcloud auth application-default login` again",
            )
        })?;
        oauth::parse_token(&v, &self.describe(), &self.token_uri)
    }
}
