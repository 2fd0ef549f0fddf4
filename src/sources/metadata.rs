//! The GCE metadata server (GCE, GKE, Cloud Build, Cloud Run runners).

use std::time::Duration;

use super::oauth;
use crate::error::Error;
use crate::http::HttpError;
use crate::token::Token;

/// Connect bound: off Google Cloud the server is absent and we must give up fast.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(400);
/// The metadata server's link-local address (what metadata.google.internal resolves to).
pub const DEFAULT_HOST: &str = "169.254.169.254";
const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// A metadata server address.
pub struct Metadata {
    /// `host[:port]`.
    pub host: String,
}

/// The metadata server to use: `GCE_METADATA_HOST`, else `GCE_METADATA_IP`,
/// else 169.254.169.254 (an address, so no DNS lookup can stall us off GCE).
pub fn from_env() -> Metadata {
    for var in ["GCE_METADATA_HOST", "GCE_METADATA_IP"] {
        if let Ok(h) = std::env::var(var)
            && !h.trim().is_empty()
        {
            return Metadata {
                host: h.trim().to_owned(),
            };
        }
    }
    Metadata {
        host: DEFAULT_HOST.to_owned(),
    }
}

/// Why the metadata server could not be used.
pub enum Failure {
    /// Nothing answered: we are not on Google Cloud (or it is not reachable).
    Unreachable(String),
    /// It answered, but not with a token.
    Failed(Error),
}

impl Metadata {
    /// The cache identity.
    pub fn identity(&self) -> String {
        format!("metadata\0{}", self.host)
    }

    /// How the source is named in messages.
    pub fn describe(&self) -> String {
        format!("metadata server {}", self.host)
    }

    /// Fetches the default service account's token.
    pub fn fetch(&self) -> Result<Token, Failure> {
        let url = format!("http://{}{TOKEN_PATH}", self.host);
        match crate::http::metadata_get(&url, CONNECT_TIMEOUT) {
            Ok(v) => oauth::parse_token(&v, &self.describe(), &url).map_err(Failure::Failed),
            Err(HttpError::Transport(m)) => Err(Failure::Unreachable(m)),
            Err(HttpError::Status { code: 404, .. }) => Err(Failure::Failed(Error::source(
                self.describe(),
                "this machine has no service account attached",
                Some(
                    "attach a service account with roles/artifactregistry.reader to the VM or node pool",
                ),
            ))),
            Err(e) => Err(Failure::Failed(Error::source(
                self.describe(),
                e.to_string(),
                None,
            ))),
        }
    }
}

impl Metadata {
    /// The default service account's email, asked of the server (for `doctor`;
    /// one request with the same connect bound as a token request).
    pub fn email(&self) -> Result<String, String> {
        let url = format!(
            "http://{}/computeMetadata/v1/instance/service-accounts/default/?recursive=true",
            self.host
        );
        let v = crate::http::metadata_get(&url, CONNECT_TIMEOUT).map_err(|e| e.to_string())?;
        v.get("email")
            .and_then(serde_json::Value::as_str)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("{url} answered without an email"))
    }
}
