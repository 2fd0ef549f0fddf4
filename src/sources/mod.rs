//! Where tokens come from: one file per source, and the chain that picks one.
//!
//! Order (as Google's own tools, plus our opt-in GitHub mode):
//! `GOOGLE_OAUTH_ACCESS_TOKEN`, the built-in GitHub Actions OIDC mode (when
//! `GAR_WORKLOAD_IDENTITY_PROVIDER` is set), `GOOGLE_APPLICATION_CREDENTIALS`, the
//! gcloud CLI, the ADC file, the metadata server.
//! `GAR_TOKEN_SOURCE=env|github|adc|gcloud|metadata` forces one. The first
//! source that is configured is used; if it then fails, that failure is the
//! answer: we never silently switch to another identity.

pub mod authorized_user;
pub mod credentials_file;
pub mod env_token;
pub mod explain;
pub mod external_account;
pub mod gcloud;
pub mod github_oidc;
pub mod impersonated;
pub mod metadata;
pub mod oauth;
pub mod service_account;
pub mod subject_token;

use std::path::PathBuf;

use credentials_file::{Credentials, Origin};

use crate::cache::Cache;
use crate::error::Error;
use crate::token::Token;

/// The variable naming a credentials file.
pub const GAC: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// The variable forcing a source.
pub const FORCE: &str = "GAR_TOKEN_SOURCE";

/// The source the chain settled on, ready to mint.
pub enum Choice {
    /// A token given in the environment.
    Env(Token),
    /// The built-in GitHub Actions OIDC mode (`GAR_WORKLOAD_IDENTITY_PROVIDER`).
    Github(external_account::ExternalAccount),
    /// A credentials file (`GOOGLE_APPLICATION_CREDENTIALS` or the ADC file).
    File(Credentials),
    /// The gcloud CLI.
    Gcloud(gcloud::Gcloud),
    /// The metadata server, with what was looked at before it.
    Metadata {
        /// The server.
        server: metadata::Metadata,
        /// Earlier sources and why they did not apply.
        tried: Vec<String>,
        /// Whether `GAR_TOKEN_SOURCE=metadata` forced it.
        forced: bool,
    },
}

/// The ADC file written by `gcloud auth application-default login`.
pub fn adc_path() -> Option<PathBuf> {
    gcloud::config_dir().map(|d| d.join("application_default_credentials.json"))
}

fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

fn load_gac(path: String) -> Result<Choice, Error> {
    credentials_file::load(&Origin {
        via: GAC,
        path: PathBuf::from(path),
    })
    .map(Choice::File)
}

fn load_adc(path: PathBuf) -> Result<Choice, Error> {
    credentials_file::load(&Origin {
        via: "the ADC file",
        path,
    })
    .map(Choice::File)
}

fn forced(which: &str) -> Result<Choice, Error> {
    let unconfigured = |what: &str, fix: &str| {
        Error::source(format!("{FORCE}={which}"), what.to_owned(), Some(fix))
    };
    match which {
        "env" => env_token::from_env().map(Choice::Env).ok_or_else(|| {
            unconfigured(
                "GOOGLE_OAUTH_ACCESS_TOKEN is not set",
                "set it, or unset GAR_TOKEN_SOURCE",
            )
        }),
        "github" => {
            if github_oidc::configured() {
                github_oidc::from_env().map(Choice::Github)
            } else {
                Err(unconfigured(
                    "GAR_WORKLOAD_IDENTITY_PROVIDER is not set",
                    "set it to projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER, \
                     or unset GAR_TOKEN_SOURCE",
                ))
            }
        }
        "adc" => {
            if let Some(p) = env_nonempty(GAC) {
                return load_gac(p);
            }
            match adc_path() {
                Some(p) if p.exists() => load_adc(p),
                p => Err(unconfigured(
                    &format!(
                        "{GAC} is not set and there is no ADC file{}",
                        p.map(|p| format!(" at {}", p.display()))
                            .unwrap_or_default()
                    ),
                    "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS",
                )),
            }
        }
        "gcloud" => match gcloud::probe() {
            gcloud::State::Ready(g) => Ok(Choice::Gcloud(g)),
            gcloud::State::NotInstalled => Err(unconfigured(
                "gcloud is not on PATH",
                "install the Google Cloud CLI, or unset GAR_TOKEN_SOURCE",
            )),
            gcloud::State::NoAccount { .. } => Err(unconfigured(
                "gcloud has no active account",
                "run `gcloud auth login`",
            )),
        },
        "metadata" => Ok(Choice::Metadata {
            server: metadata::from_env(),
            tried: Vec::new(),
            forced: true,
        }),
        other => Err(Error::BadInput(format!(
            "{FORCE}={} is not a source; use env, adc, gcloud or metadata, or github for the \
             built-in GitHub Actions mode (or unset it)",
            crate::http::sanitize(other)
        ))),
    }
}

/// Picks the source, reading only the environment and local files.
pub fn choose() -> Result<Choice, Error> {
    if let Some(f) = env_nonempty(FORCE) {
        return forced(f.trim().to_ascii_lowercase().as_str());
    }
    let mut tried = Vec::new();
    if let Some(t) = env_token::from_env() {
        return Ok(Choice::Env(t));
    }
    tried.push(format!("{} is not set", env_token::VAR));
    if github_oidc::configured() {
        return github_oidc::from_env().map(Choice::Github);
    }
    if github_oidc::github_oidc_available() {
        tried.push(format!(
            "{} is not set (GitHub offers ID tokens to this job)",
            github_oidc::PROVIDER_VAR
        ));
    }
    if let Some(p) = env_nonempty(GAC) {
        return load_gac(p);
    }
    tried.push(format!("{GAC} is not set"));
    match gcloud::probe() {
        gcloud::State::Ready(g) => return Ok(Choice::Gcloud(g)),
        gcloud::State::NotInstalled => tried.push("gcloud is not on PATH".to_owned()),
        gcloud::State::NoAccount { config_dir, .. } => tried.push(format!(
            "gcloud has no active account in {}",
            config_dir.display()
        )),
    }
    match adc_path() {
        Some(p) if std::fs::symlink_metadata(&p).is_ok() => return load_adc(p),
        Some(p) => tried.push(format!("no ADC file at {}", p.display())),
        None => tried.push("no home directory for the ADC file".to_owned()),
    }
    Ok(Choice::Metadata {
        server: metadata::from_env(),
        tried,
        forced: false,
    })
}

impl Choice {
    /// The cache identity, or `None` for a token that is not ours to cache.
    pub fn identity(&self) -> Option<String> {
        match self {
            Choice::Env(_) => None,
            Choice::Github(x) => Some(x.identity()),
            Choice::File(c) => Some(c.identity()),
            Choice::Gcloud(g) => Some(g.identity()),
            Choice::Metadata { server, .. } => Some(server.identity()),
        }
    }

    /// Mints a token from this source (no cache).
    pub fn fetch(&self) -> Result<Token, Error> {
        let t = self.fetch_unchecked()?;
        // The token goes into an HTTP header and a one-line JSON answer.
        if t.secret.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(Error::source(
                explain::describe_choice(self),
                "handed out an access token with spaces or control characters in it",
                Some("check the token source (a stray newline in GOOGLE_OAUTH_ACCESS_TOKEN?)"),
            ));
        }
        Ok(t)
    }

    fn fetch_unchecked(&self) -> Result<Token, Error> {
        match self {
            Choice::Env(t) => Ok(t.clone()),
            Choice::Github(x) => x.fetch(),
            Choice::File(c) => c.fetch(),
            Choice::Gcloud(g) => g.fetch(),
            Choice::Metadata {
                server,
                tried,
                forced,
            } => server.fetch().map_err(|f| match f {
                metadata::Failure::Failed(e) => e,
                metadata::Failure::Unreachable(m) if *forced => Error::source(
                    server.describe(),
                    format!("not reachable: {m}"),
                    Some("check GCE_METADATA_HOST, or use another source"),
                ),
                metadata::Failure::Unreachable(_) => {
                    let mut tried = tried.clone();
                    tried.push(format!(
                        "metadata server {} is not reachable (not on Google Cloud)",
                        server.host
                    ));
                    Error::NoCredentials { tried }
                }
            }),
        }
    }

    /// A token: from the cache when fresh, else minted (and cached).
    pub fn token(&self, cache: Option<&Cache>) -> Result<Token, Error> {
        match (self.identity(), cache) {
            (Some(id), Some(c)) => c.get_or_fetch(&id, || self.fetch()),
            _ => self.fetch(),
        }
    }
}
