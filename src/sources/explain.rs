//! Plain-words explanation of every token source, for `doctor` and the log:
//! is it configured, is it usable, which identity would it use, and which one
//! the chain picks and why. Reads only the environment and local files (the
//! metadata server is asked only by [`metadata_email`], on request). Never a
//! secret: identities are account names, service-account emails and audiences.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::credentials_file::{self, Credentials, Origin};
use super::{Choice, FORCE, GAC, env_token, gcloud, github_oidc, metadata};
use crate::error::Error;

/// One source's state.
#[derive(Clone, Debug, Serialize)]
pub struct SourceState {
    /// Position in the chain (1 = first).
    pub order: u8,
    /// The source's name, e.g. `gcloud CLI`.
    pub name: &'static str,
    /// Whether it is configured (the chain would stop here).
    pub configured: bool,
    /// Whether it looks usable: `None` when only minting can tell.
    pub usable: Option<bool>,
    /// What was found, in plain words.
    pub detail: String,
    /// The identity it would use (account, service-account email, audience).
    pub identity: Option<String>,
    /// What to do about it, when it is configured but not usable.
    pub fix: Option<String>,
}

/// Every source, and the one the chain picks.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    /// `GAR_TOKEN_SOURCE`, when set.
    pub forced: Option<String>,
    /// The sources in chain order.
    pub sources: Vec<SourceState>,
    /// The chosen source's description, or why none could be chosen.
    pub chosen: Result<String, String>,
    /// Why that source was chosen.
    pub why: String,
}

/// How a chosen source is named in messages and the log.
pub fn describe_choice(c: &Choice) -> String {
    if let Choice::Env(_) = c {
        format!("{} (a token from the environment)", env_token::VAR)
    } else if let Choice::Github(x) = c {
        x.describe()
    } else if let Choice::File(f) = c {
        describe_credentials(f)
    } else if let Choice::Gcloud(g) = c {
        g.describe()
    } else if let Choice::Metadata { server, .. } = c {
        server.describe()
    } else {
        "a credentials source".to_owned()
    }
}

fn describe_credentials(f: &Credentials) -> String {
    f.describe()
}

/// An error's text without the program-name prefix.
pub fn plain(e: &Error) -> String {
    let s = e.to_string();
    s.strip_prefix("docker-credential-gar: ")
        .map(str::to_owned)
        .unwrap_or(s)
}

/// The identity a credentials file names, read from its non-secret fields.
/// `None` when the file cannot be read (a FIFO or device is never opened).
pub fn file_identity(path: &Path) -> Option<String> {
    let bytes = crate::files::read(path, 1024 * 1024, crate::files::Require::default()).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
    };
    let impersonated = s("service_account_impersonation_url").and_then(|u| {
        u.rsplit('/')
            .next()
            .and_then(|last| last.split(':').next())
            .map(str::to_owned)
    });
    match s("type").as_deref() {
        Some("service_account") => s("client_email").map(|e| format!("service account {e}")),
        Some("authorized_user") => Some(match s("account") {
            Some(a) => format!("user {a}"),
            None => "a user (gcloud auth application-default login)".to_owned(),
        }),
        Some("external_account") => {
            let aud = s("audience").map(|a| format!("audience {a}"));
            match (impersonated, aud) {
                (Some(sa), Some(aud)) => Some(format!("service account {sa} via {aud}")),
                (None, Some(aud)) => Some(format!("federated identity, {aud}")),
                (Some(sa), None) => Some(format!("service account {sa}")),
                (None, None) => None,
            }
        }
        Some("impersonated_service_account") => {
            impersonated.map(|sa| format!("service account {sa} (impersonated)"))
        }
        _ => None,
    }
}

fn file_state(order: u8, name: &'static str, via: &'static str, path: PathBuf) -> SourceState {
    let identity = file_identity(&path);
    match credentials_file::load(&Origin {
        via,
        path: path.clone(),
    }) {
        Ok(c) => SourceState {
            order,
            name,
            configured: true,
            usable: Some(true),
            detail: format!("{} ({})", path.display(), describe_credentials(&c)),
            identity,
            fix: None,
        },
        Err(e) => SourceState {
            order,
            name,
            configured: true,
            usable: Some(false),
            detail: plain(&e),
            identity,
            fix: Some(match via {
                GAC => format!("fix the file or unset {GAC}"),
                _ => "run `gcloud auth application-default login` again, or delete the file"
                    .to_owned(),
            }),
        },
    }
}

fn env_set(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// Looks at every source (no network).
pub fn explain() -> Explanation {
    let mut sources = Vec::new();

    sources.push(match env_token::from_env() {
        Some(t) => SourceState {
            order: 1,
            name: env_token::VAR,
            configured: true,
            usable: Some(true),
            detail: format!(
                "set ({} characters); used as is, never checked or cached",
                t.secret.len()
            ),
            identity: None,
            fix: None,
        },
        None => SourceState {
            order: 1,
            name: env_token::VAR,
            configured: false,
            usable: None,
            detail: "not set".to_owned(),
            identity: None,
            fix: None,
        },
    });

    sources.push(if github_oidc::configured() {
        match github_oidc::from_env() {
            Ok(x) => SourceState {
                order: 2,
                name: "GitHub Actions OIDC",
                configured: true,
                usable: Some(true),
                detail: format!("{} is set", github_oidc::PROVIDER_VAR),
                identity: Some(format!("{} (audience {})", x.describe(), x.audience)),
                fix: None,
            },
            Err(e) => SourceState {
                order: 2,
                name: "GitHub Actions OIDC",
                configured: true,
                usable: Some(false),
                detail: plain(&e),
                identity: None,
                fix: Some(format!(
                    "fix {} (or the job's `permissions: id-token: write`), or unset it",
                    github_oidc::PROVIDER_VAR
                )),
            },
        }
    } else {
        SourceState {
            order: 2,
            name: "GitHub Actions OIDC",
            configured: false,
            usable: None,
            detail: if github_oidc::github_oidc_available() {
                format!(
                    "{} is not set (GitHub offers ID tokens to this job)",
                    github_oidc::PROVIDER_VAR
                )
            } else {
                format!("{} is not set", github_oidc::PROVIDER_VAR)
            },
            identity: None,
            fix: None,
        }
    });

    sources.push(match env_set(GAC) {
        Some(p) => file_state(3, GAC, GAC, PathBuf::from(p.trim())),
        None => SourceState {
            order: 3,
            name: GAC,
            configured: false,
            usable: None,
            detail: "not set".to_owned(),
            identity: None,
            fix: None,
        },
    });

    sources.push(match gcloud::probe() {
        gcloud::State::NotInstalled => SourceState {
            order: 4,
            name: "gcloud CLI",
            configured: false,
            usable: None,
            detail: "gcloud is not on PATH".to_owned(),
            identity: None,
            fix: None,
        },
        gcloud::State::NoAccount { config_dir } => SourceState {
            order: 4,
            name: "gcloud CLI",
            configured: false,
            usable: Some(false),
            detail: format!(
                "installed, but logged out: no active account in {}",
                config_dir.display()
            ),
            identity: None,
            fix: Some("run `gcloud auth login`".to_owned()),
        },
        gcloud::State::Ready(g) => SourceState {
            order: 4,
            name: "gcloud CLI",
            configured: true,
            usable: Some(true),
            detail: format!(
                "{} with configuration {} in {}",
                g.exe.display(),
                g.config_name,
                g.config_dir.display()
            ),
            identity: Some(format!("account {}", g.account)),
            fix: None,
        },
    });

    sources.push(match super::adc_path() {
        Some(p) if std::fs::symlink_metadata(&p).is_ok() => {
            file_state(5, "ADC file", "the ADC file", p)
        }
        Some(p) => SourceState {
            order: 5,
            name: "ADC file",
            configured: false,
            usable: None,
            detail: format!("none at {}", p.display()),
            identity: None,
            fix: None,
        },
        None => SourceState {
            order: 5,
            name: "ADC file",
            configured: false,
            usable: None,
            detail: "no home directory to look in".to_owned(),
            identity: None,
            fix: None,
        },
    });

    let md = metadata::from_env();
    sources.push(SourceState {
        order: 6,
        name: "GCE metadata server",
        configured: true,
        usable: None,
        detail: format!(
            "{} (always tried last; answers only on Google Cloud)",
            md.host
        ),
        identity: None,
        fix: None,
    });

    let forced = env_set(FORCE).map(|f| f.trim().to_owned());
    let (chosen, why) = match super::choose() {
        Ok(c) => {
            let why = match (&forced, &c) {
                (Some(f), _) => format!("{FORCE}={f} forces it"),
                (None, Choice::Metadata { .. }) => {
                    "no source before it is configured, so the metadata server is asked".to_owned()
                }
                (None, _) => "it is the first configured source".to_owned(),
            };
            (Ok(describe_choice(&c)), why)
        }
        Err(e) => (
            Err(plain(&e)),
            "the chosen source cannot be used".to_owned(),
        ),
    };
    Explanation {
        forced,
        sources,
        chosen,
        why,
    }
}

/// The metadata server's default service-account email (one request, bounded).
pub fn metadata_email(server: &metadata::Metadata) -> Result<String, String> {
    server.email()
}
