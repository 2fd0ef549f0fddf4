//! Service-account impersonation: `impersonated_service_account` files (what
//! `gcloud auth application-default login --impersonate-service-account` writes),
//! and the IAM Credentials `generateAccessToken` call that every impersonation
//! (these files, Workload Identity Federation, the built-in GitHub mode) goes through.

use serde::Deserialize;
use serde_json::{Value, json};

use super::authorized_user::AuthorizedUser;
use super::credentials_file::Origin;
use super::oauth::CLOUD_PLATFORM_SCOPE;
use super::service_account::ServiceAccount;
use crate::error::Error;
use crate::http::{self, HttpError};
use crate::token::{self, Token};

/// Lifetime asked for when nothing says otherwise (Google's default).
pub const DEFAULT_LIFETIME: u64 = 3600;
/// Google's bounds on a requested lifetime (over 3600 s needs an org policy).
pub const MIN_LIFETIME: u64 = 600;
/// See [`MIN_LIFETIME`].
pub const MAX_LIFETIME: u64 = 43200;

/// Who presents the bearer token to IAM: decides which role the fix names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A Workload Identity Federation principal (an STS token).
    Federated,
    /// A user or service account.
    Account,
}

/// A service account to impersonate, and how.
pub struct Target {
    /// The `…/serviceAccounts/<email>:generateAccessToken` URL.
    pub url: String,
    /// The service account's email (from the URL).
    pub email: String,
    /// The delegation chain, as `projects/-/serviceAccounts/<email>`.
    pub delegates: Vec<String>,
    /// The lifetime asked for, in seconds.
    pub lifetime: u64,
}

/// The service account named by a `generateAccessToken` URL.
fn email_from_url(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let rest = &path[path.find("/serviceAccounts/")? + "/serviceAccounts/".len()..];
    let email = rest.strip_suffix(":generateAccessToken")?;
    (!email.is_empty() && !email.contains(['/', ':']) && !email.chars().any(char::is_whitespace))
        .then(|| email.to_owned())
}

/// A delegate as the IAM API wants it: `projects/-/serviceAccounts/<email>`.
fn delegate_name(d: &str) -> String {
    let d = d.trim();
    if d.starts_with("projects/") {
        d.to_owned()
    } else {
        format!("projects/-/serviceAccounts/{d}")
    }
}

impl Target {
    /// A target from its `generateAccessToken` URL; the error is the problem with
    /// the URL (for the caller to put in context).
    pub fn from_url(url: &str, delegates: &[String], lifetime: u64) -> Result<Target, String> {
        let email = email_from_url(url).ok_or_else(|| {
            format!(
                "service_account_impersonation_url {} is not a \
                 …/serviceAccounts/<email>:generateAccessToken URL",
                http::sanitize(&http::display_url(url))
            )
        })?;
        if !(MIN_LIFETIME..=MAX_LIFETIME).contains(&lifetime) {
            return Err(format!(
                "asks for a token lifetime of {lifetime} s; Google allows {MIN_LIFETIME} to {MAX_LIFETIME}"
            ));
        }
        Ok(Target {
            url: url.to_owned(),
            email,
            delegates: delegates.iter().map(|d| delegate_name(d)).collect(),
            lifetime,
        })
    }

    /// The part of a cache identity that names the target.
    pub fn identity(&self) -> String {
        format!(
            "impersonate\0{}\0{}\0{}\0{}",
            self.email,
            self.url,
            self.delegates.join(","),
            self.lifetime
        )
    }

    /// Asks IAM for an access token of the target, presenting `bearer` (the
    /// caller's own token). The expiry is `expireTime`, but never later than now
    /// plus the lifetime asked for, on our clock.
    pub fn generate(&self, bearer: &str, source: &str, caller: Caller) -> Result<Token, Error> {
        let mut body = json!({
            "scope": [CLOUD_PLATFORM_SCOPE],
            "lifetime": format!("{}s", self.lifetime),
        });
        if !self.delegates.is_empty() {
            body["delegates"] = json!(self.delegates);
        }
        let started = token::now();
        let v = http::post_json_bearer(&self.url, bearer, &body)
            .map_err(|e| self.http_error(source, e, caller))?;
        let bad = |what: &str| {
            Error::source(
                source,
                format!(
                    "impersonating {} failed: {} answered {what}",
                    self.email,
                    http::display_url(&self.url)
                ),
                Some("Google's endpoint is having trouble; try again shortly"),
            )
        };
        let secret = v
            .get("accessToken")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("without an accessToken"))?;
        let expire = v
            .get("expireTime")
            .and_then(Value::as_str)
            .and_then(|s| humantime::parse_rfc3339_weak(s.trim()).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .ok_or_else(|| bad("without a valid expireTime"))?;
        let expires_at = expire.min(started.saturating_add(self.lifetime));
        Ok(Token {
            secret: secret.to_owned(),
            expires_at: Some(expires_at),
            lifetime: expires_at.saturating_sub(started),
        })
    }

    fn http_error(&self, source: &str, e: HttpError, caller: Caller) -> Error {
        let sa = &self.email;
        let problem = format!("impersonating {sa} failed: {e}");
        let shown = http::display_url(&self.url);
        let problem = if problem.contains(&shown) {
            problem
        } else {
            format!("impersonating {sa} failed: {shown} answered {e}")
        };
        let fix = match &e {
            HttpError::Status {
                code: 403,
                description,
                ..
            } if description.as_deref().is_some_and(|d| {
                d.contains("has not been used") || d.contains("is disabled")
            }) => "enable the IAM Service Account Credentials API (iamcredentials.googleapis.com) in the project".to_owned(),
            HttpError::Status { code: 403, .. } => match caller {
                Caller::Federated => format!(
                    "the workload identity principal lacks roles/iam.workloadIdentityUser (or \
                     roles/iam.serviceAccountTokenCreator) on {sa}: grant it with `gcloud iam service-accounts \
                     add-iam-policy-binding {sa} --role=roles/iam.workloadIdentityUser \
                     --member=principalSet://iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/attribute.repository/ORG/REPO`"
                ),
                Caller::Account => format!(
                    "the source credentials lack roles/iam.serviceAccountTokenCreator (or \
                     roles/iam.workloadIdentityUser for a federated principal) on {sa}: grant it with \
                     `gcloud iam service-accounts add-iam-policy-binding {sa} \
                     --role=roles/iam.serviceAccountTokenCreator --member=user:YOU` (or serviceAccount:…)"
                ),
            },
            HttpError::Status { code: 404, .. } => format!(
                "check the service account: {sa} does not exist, or the impersonation URL is wrong"
            ),
            HttpError::Status { code: 401, .. } => {
                "the token presented to IAM was rejected; check the source credentials".to_owned()
            }
            HttpError::Status { code: 400, .. } => format!(
                "check the service account {sa}, the delegates, and the lifetime \
                 (over 3600 s needs the constraints/iam.allowServiceAccountCredentialLifetimeExtension org policy)"
            ),
            HttpError::Status { .. } => {
                "Google's endpoint is having trouble; try again shortly".to_owned()
            }
            HttpError::Transport(_) => {
                "check the network and any HTTPS_PROXY setting (GAR_HTTP_TIMEOUT sets the bound)"
                    .to_owned()
            }
            HttpError::Refused(_) | HttpError::BadBody(_) => {
                "fix service_account_impersonation_url".to_owned()
            }
        };
        Error::source(source, problem, Some(&fix))
    }
}

#[derive(Deserialize)]
struct Raw {
    service_account_impersonation_url: String,
    #[serde(default)]
    delegates: Option<Vec<String>>,
    source_credentials: Value,
}

/// The credentials an impersonation starts from.
pub enum SourceCredentials {
    /// A user's refresh token.
    AuthorizedUser(AuthorizedUser),
    /// A service-account key.
    ServiceAccount(ServiceAccount),
}

impl SourceCredentials {
    fn identity(&self) -> String {
        match self {
            SourceCredentials::AuthorizedUser(u) => u.identity(),
            SourceCredentials::ServiceAccount(s) => s.identity(),
        }
    }
    fn describe(&self) -> String {
        match self {
            SourceCredentials::AuthorizedUser(u) => u.describe(),
            SourceCredentials::ServiceAccount(s) => s.describe(),
        }
    }
    fn fetch(&self) -> Result<Token, Error> {
        match self {
            SourceCredentials::AuthorizedUser(u) => u.fetch(),
            SourceCredentials::ServiceAccount(s) => s.fetch(),
        }
    }
}

/// A parsed `impersonated_service_account` file. Holds secrets, so no `Debug`.
pub struct Impersonated {
    target: Target,
    source: SourceCredentials,
}

impl Impersonated {
    /// Reads an `impersonated_service_account` file whose `source_credentials`
    /// are `authorized_user` or `service_account`.
    pub fn from_json(v: Value, origin: &Origin) -> Result<Impersonated, Error> {
        let raw: Raw = origin.parse(v, "impersonated_service_account")?;
        let target = Target::from_url(
            &raw.service_account_impersonation_url,
            raw.delegates.as_deref().unwrap_or_default(),
            DEFAULT_LIFETIME,
        )
        .map_err(|p| origin.err(format!("has a {p}")))?;
        let kind = raw
            .source_credentials
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let source = match kind.as_str() {
            "authorized_user" => SourceCredentials::AuthorizedUser(AuthorizedUser::from_json(
                raw.source_credentials,
                origin,
            )?),
            "service_account" => SourceCredentials::ServiceAccount(ServiceAccount::from_json(
                raw.source_credentials,
                origin,
            )?),
            "" => {
                return Err(origin.err(
                    "has source_credentials without a `type`; it must be authorized_user or service_account",
                ));
            }
            other => {
                return Err(origin.err(format!(
                    "has source_credentials of type `{}`, which docker-credential-gar cannot impersonate from; \
                     use authorized_user or service_account source credentials",
                    http::sanitize(&other.chars().take(40).collect::<String>())
                )));
            }
        };
        Ok(Impersonated { target, source })
    }

    /// The cache identity: the target (account, URL, delegates) and the source's identity.
    pub fn identity(&self) -> String {
        format!(
            "impersonated_service_account\0{}\0{}",
            self.target.identity(),
            self.source.identity()
        )
    }

    /// How the source is named in messages.
    pub fn describe(&self) -> String {
        format!(
            "service account {} impersonated by {}",
            self.target.email,
            self.source.describe()
        )
    }

    /// Mints the source's token, then the impersonated account's.
    pub fn fetch(&self) -> Result<Token, Error> {
        let source_token = self.source.fetch()?;
        self.target
            .generate(&source_token.secret, &self.describe(), Caller::Account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_is_read_from_the_url() {
        let u = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/ci@p.iam.gserviceaccount.com:generateAccessToken";
        assert_eq!(
            email_from_url(u).as_deref(),
            Some("ci@p.iam.gserviceaccount.com")
        );
        assert_eq!(
            email_from_url("https://x/v1/projects/-/serviceAccounts/a@b"),
            None
        );
        assert_eq!(
            email_from_url("https://x/v1/serviceAccounts/a/b:generateAccessToken"),
            None
        );
    }

    #[test]
    fn delegates_become_resource_names_and_lifetimes_are_bounded() {
        let t = Target::from_url(
            "https://h/v1/projects/-/serviceAccounts/a@b:generateAccessToken",
            &[
                "d1@p.iam.gserviceaccount.com".into(),
                "projects/-/serviceAccounts/d2@p".into(),
            ],
            3600,
        )
        .ok()
        .unwrap();
        assert_eq!(
            t.delegates,
            [
                "projects/-/serviceAccounts/d1@p.iam.gserviceaccount.com",
                "projects/-/serviceAccounts/d2@p"
            ]
        );
        let e = Target::from_url(
            "https://h/v1/projects/-/serviceAccounts/a@b:generateAccessToken",
            &[],
            60,
        )
        .err()
        .unwrap();
        assert!(e.contains("600 to 43200"), "{e}");
    }
}
