//! Workload Identity Federation (`external_account` files, and the built-in
//! GitHub mode): a subject token from the workload's own identity provider is
//! exchanged at Google's STS for an access token, optionally followed by the
//! impersonation of a service account.
//!
//! Every mint fetches a fresh subject token (GitHub's, GitLab's and Kubernetes'
//! tokens are short-lived; the request URL and files stay valid for the whole job),
//! so a job longer than any token keeps working. The cache identity comes from the
//! configuration, never from the rotating subject token.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::credentials_file::Origin;
use super::impersonated::{self, Caller, Target};
use super::oauth::{self, CLOUD_PLATFORM_SCOPE};
use super::subject_token::{ExecContext, SubjectSource};
use crate::error::Error;
use crate::http::{self, HttpError};
use crate::token::Token;

/// Google's STS token endpoint.
pub const GOOGLE_STS_URL: &str = "https://sts.googleapis.com/v1/token";
/// The RFC 8693 token-exchange grant.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type asked for.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The subject-token type of an OIDC ID token.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Where an external account's configuration came from.
pub enum Label {
    /// An `external_account` credentials file.
    File(PathBuf),
    /// The built-in GitHub mode, with the provider's resource name.
    Github(String),
}

/// A Workload Identity Federation configuration. Holds secrets (URL-source
/// headers, a client secret), so it has no `Debug`.
pub struct ExternalAccount {
    label: Label,
    /// The STS audience: `//iam.googleapis.com/<provider>`.
    pub audience: String,
    subject_token_type: String,
    /// The STS endpoint.
    pub token_url: String,
    impersonation: Option<Target>,
    user_project: Option<String>,
    client: Option<(String, String)>,
    source: SubjectSource,
}

#[derive(Deserialize)]
struct ImpersonationOptions {
    #[serde(default)]
    token_lifetime_seconds: Option<u64>,
}

#[derive(Deserialize)]
struct Raw {
    audience: String,
    subject_token_type: String,
    #[serde(default)]
    token_url: Option<String>,
    #[serde(default)]
    service_account_impersonation_url: Option<String>,
    #[serde(default)]
    service_account_impersonation: Option<ImpersonationOptions>,
    #[serde(default)]
    workforce_pool_user_project: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    credential_source: Option<Value>,
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

impl ExternalAccount {
    /// Reads an `external_account` file (Google's format, as written by
    /// `gcloud iam workload-identity-pools create-cred-config` and
    /// google-github-actions/auth).
    pub fn from_json(v: Value, origin: &Origin) -> Result<ExternalAccount, Error> {
        let raw: Raw = origin.parse(v, "external_account")?;
        if raw.audience.trim().is_empty() {
            return Err(origin.err("has an empty `audience`"));
        }
        if raw.subject_token_type.trim().is_empty() {
            return Err(origin.err("has an empty `subject_token_type`"));
        }
        let source =
            SubjectSource::parse(raw.credential_source.as_ref()).map_err(|p| origin.err(p))?;
        let impersonation = match nonempty(raw.service_account_impersonation_url) {
            Some(url) => {
                let lifetime = raw
                    .service_account_impersonation
                    .and_then(|o| o.token_lifetime_seconds)
                    .unwrap_or(impersonated::DEFAULT_LIFETIME);
                Some(
                    Target::from_url(&url, &[], lifetime)
                        .map_err(|p| origin.err(format!("has a {p}")))?,
                )
            }
            None => None,
        };
        let client = match (nonempty(raw.client_id), raw.client_secret) {
            (Some(id), secret) => Some((id, secret.unwrap_or_default())),
            (None, _) => None,
        };
        Ok(ExternalAccount {
            label: Label::File(origin.path.clone()),
            audience: raw.audience,
            subject_token_type: raw.subject_token_type,
            token_url: nonempty(raw.token_url).unwrap_or_else(|| GOOGLE_STS_URL.to_owned()),
            impersonation,
            user_project: nonempty(raw.workforce_pool_user_project),
            client,
            source,
        })
    }

    /// A configuration built in code (the built-in GitHub mode).
    pub fn new(
        label: Label,
        audience: String,
        token_url: String,
        impersonation: Option<Target>,
        source: SubjectSource,
    ) -> ExternalAccount {
        ExternalAccount {
            label,
            audience,
            subject_token_type: JWT_TOKEN_TYPE.to_owned(),
            token_url,
            impersonation,
            user_project: None,
            client: None,
            source,
        }
    }

    /// The cache identity: kind, audience, STS endpoint, impersonated account and
    /// the subject-token source (path, URL or command) — never the subject token.
    pub fn identity(&self) -> String {
        let kind = match &self.label {
            Label::File(p) => format!("external_account\0{}", p.display()),
            Label::Github(provider) => format!("github_oidc\0{provider}"),
        };
        format!(
            "{kind}\0{}\0{}\0{}\0{}\0{}\0{}",
            self.audience,
            self.subject_token_type,
            self.token_url,
            self.user_project.as_deref().unwrap_or(""),
            self.impersonation
                .as_ref()
                .map(Target::identity)
                .unwrap_or_default(),
            self.source.identity()
        )
    }

    /// How the source is named in messages.
    pub fn describe(&self) -> String {
        let base = match &self.label {
            Label::File(p) => format!("external account credentials {}", p.display()),
            Label::Github(provider) => format!("GitHub Actions OIDC for {provider}"),
        };
        match &self.impersonation {
            Some(t) => format!("{base} as {}", t.email),
            None => base,
        }
    }

    /// The advice when the subject-token URL rejects the request.
    fn url_fix(&self) -> &'static str {
        match self.label {
            Label::Github(_) => {
                "GitHub rejected the ID-token request: the workflow or job needs `permissions: id-token: write`, \
                 and the request token is valid only inside its own job"
            }
            Label::File(_) => {
                "check credential_source.url and its headers (a file written by google-github-actions/auth \
                 works only inside the job that wrote it; the job needs `permissions: id-token: write`)"
            }
        }
    }

    /// Fetches a fresh subject token, exchanges it at STS, and impersonates the
    /// service account when one is configured.
    pub fn fetch(&self) -> Result<Token, Error> {
        let describe = self.describe();
        let ctx = ExecContext {
            audience: &self.audience,
            token_type: &self.subject_token_type,
            impersonated_email: self.impersonation.as_ref().map(|t| t.email.as_str()),
        };
        let subject = self.source.fetch(&describe, &ctx, self.url_fix())?;
        let sts = self.exchange(&subject, &describe)?;
        match &self.impersonation {
            None => Ok(sts),
            Some(t) => t.generate(&sts.secret, &describe, Caller::Federated),
        }
    }

    fn exchange(&self, subject: &str, describe: &str) -> Result<Token, Error> {
        // Google's rule: the user project goes in `options` only without client auth.
        let options = match (&self.user_project, &self.client) {
            (Some(p), None) => Some(json!({ "userProject": p }).to_string()),
            _ => None,
        };
        let mut form = vec![
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("audience", self.audience.as_str()),
            ("scope", CLOUD_PLATFORM_SCOPE),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("subject_token", subject),
            ("subject_token_type", self.subject_token_type.as_str()),
        ];
        if let Some(o) = &options {
            form.push(("options", o.as_str()));
        }
        let basic = self
            .client
            .as_ref()
            .map(|(id, secret)| format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))));
        let headers: Vec<(&str, &str)> = basic
            .as_deref()
            .map(|b| vec![("Authorization", b)])
            .unwrap_or_default();
        let v = http::post_form_with_headers(&self.token_url, &headers, &form)
            .map_err(|e| self.sts_error(describe, e))?;
        oauth::parse_token(&v, describe, &self.token_url)
    }

    fn sts_error(&self, describe: &str, e: HttpError) -> Error {
        let step = "exchanging the subject token at STS failed";
        let problem = match &e {
            HttpError::Status { .. } => format!(
                "{step}: {} answered {e}",
                crate::http::display_url(&self.token_url)
            ),
            _ => format!("{step}: {e}"),
        };
        let aud = &self.audience;
        let fix = match &e {
            HttpError::Status {
                code: 400..=403,
                error,
                ..
            } => match error.as_deref() {
                Some("invalid_grant") => format!(
                    "the workload identity provider rejected the subject token: its attribute condition or \
                     allowed audiences do not match this token (audience {aud}), or the token has expired"
                ),
                Some("unauthorized_client") => format!(
                    "the provider's attribute condition rejects this identity: check the condition and \
                     attribute mapping of {aud} (e.g. assertion.repository == 'ORG/REPO')"
                ),
                Some("invalid_target") => format!(
                    "{aud} is not an existing, enabled workload identity provider: use \
                     //iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER"
                ),
                _ => format!(
                    "check the audience ({aud}) and subject_token_type of the credentials configuration"
                ),
            },
            HttpError::Status { .. } => {
                "Google's endpoint is having trouble; try again shortly".to_owned()
            }
            HttpError::Transport(_) => {
                "check the network and any HTTPS_PROXY setting (GAR_HTTP_TIMEOUT sets the bound)"
                    .to_owned()
            }
            HttpError::Refused(_) | HttpError::BadBody(_) => match self.label {
                Label::Github(_) => "fix GAR_STS_URL".to_owned(),
                Label::File(_) => "fix token_url in the credentials file".to_owned(),
            },
        };
        Error::source(describe, problem, Some(&fix))
    }
}
