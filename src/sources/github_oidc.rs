//! The built-in GitHub Actions mode: with `GAR_WORKLOAD_IDENTITY_PROVIDER` set and
//! the job allowed to request ID tokens (`permissions: id-token: write`), the
//! helper runs the whole Workload Identity Federation flow itself — GitHub's OIDC
//! token, Google's STS, and optionally the impersonation of `GAR_SERVICE_ACCOUNT` —
//! so a workflow needs no auth action and no credentials file.

use super::external_account::{ExternalAccount, GOOGLE_STS_URL, Label};
use super::impersonated::{self, Target};
use super::subject_token::{Format, SubjectSource};
use crate::error::Error;
use crate::http;

/// The provider's resource name; setting it opts in to this mode.
pub const PROVIDER_VAR: &str = "GAR_WORKLOAD_IDENTITY_PROVIDER";
/// An optional service account to impersonate.
pub const SERVICE_ACCOUNT_VAR: &str = "GAR_SERVICE_ACCOUNT";
/// Overrides the STS endpoint (tests).
pub const STS_URL_VAR: &str = "GAR_STS_URL";
/// Overrides the IAM Credentials base URL (tests).
pub const IAM_URL_VAR: &str = "GAR_IAM_CREDENTIALS_URL";
/// Google's IAM Credentials API.
pub const DEFAULT_IAM_URL: &str = "https://iamcredentials.googleapis.com";
/// GitHub's ID-token request URL (present with `permissions: id-token: write`).
pub const REQUEST_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// GitHub's bearer token for that URL.
pub const REQUEST_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

const PROVIDER_SHAPE: &str =
    "projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER";

fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the mode is asked for (`GAR_WORKLOAD_IDENTITY_PROVIDER` is set).
pub fn configured() -> bool {
    env_nonempty(PROVIDER_VAR).is_some()
}

/// Whether GitHub offers ID tokens to this job (for the "tried" list).
pub fn github_oidc_available() -> bool {
    env_nonempty(REQUEST_URL_VAR).is_some()
}

/// The provider's resource name from either accepted form, checked for shape.
fn provider_name(raw: &str) -> Result<String, String> {
    let p = raw
        .strip_prefix("//iam.googleapis.com/")
        .or_else(|| raw.strip_prefix("https://iam.googleapis.com/"))
        .unwrap_or(raw)
        .trim_matches('/');
    let parts: Vec<&str> = p.split('/').collect();
    let ok_segment = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    };
    match parts.as_slice() {
        [
            "projects",
            n,
            "locations",
            l,
            "workloadIdentityPools",
            pool,
            "providers",
            prov,
        ] if [*n, *l, *pool, *prov].into_iter().all(ok_segment) => {
            if !n.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!(
                    "names project `{n}`, but the provider's name needs the project NUMBER \
                     (`gcloud projects describe {n} --format='value(projectNumber)'`)"
                ));
            }
            Ok(p.to_owned())
        }
        _ => Err(format!(
            "is not a provider resource name ({PROVIDER_SHAPE})"
        )),
    }
}

/// A service account email we put into a URL path.
fn service_account(raw: &str) -> Result<String, String> {
    let ok = raw.contains('@')
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '-' | '_'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err("is not a service account email (NAME@PROJECT.iam.gserviceaccount.com)".to_owned())
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn query_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds the flow from the environment; an error says which variable to fix.
pub fn from_env() -> Result<ExternalAccount, Error> {
    let raw = env_nonempty(PROVIDER_VAR).unwrap_or_default();
    let var_err = |var: &str, problem: String, fix: &str| {
        Error::source(
            format!("{var}={}", http::sanitize(&raw)),
            problem,
            Some(fix),
        )
    };
    let provider = provider_name(&raw).map_err(|p| {
        var_err(
            PROVIDER_VAR,
            p,
            &format!("set it to the provider's resource name, {PROVIDER_SHAPE}"),
        )
    })?;
    let (Some(request_url), Some(request_token)) = (
        env_nonempty(REQUEST_URL_VAR),
        env_nonempty(REQUEST_TOKEN_VAR),
    ) else {
        return Err(Error::source(
            format!("{PROVIDER_VAR}={provider}"),
            format!(
                "{REQUEST_URL_VAR} and {REQUEST_TOKEN_VAR} are not set, so GitHub offers no ID token"
            ),
            Some(
                "add `permissions: id-token: write` to the workflow or job (outside GitHub Actions, unset GAR_WORKLOAD_IDENTITY_PROVIDER)",
            ),
        ));
    };
    let sts_url = env_nonempty(STS_URL_VAR).unwrap_or_else(|| GOOGLE_STS_URL.to_owned());
    let impersonation = match env_nonempty(SERVICE_ACCOUNT_VAR) {
        Some(sa) => {
            let sa = service_account(&sa).map_err(|p| {
                Error::source(
                    format!("{SERVICE_ACCOUNT_VAR}={}", http::sanitize(&sa)),
                    p,
                    Some("set it to the email of the service account to impersonate, or unset it"),
                )
            })?;
            let base = env_nonempty(IAM_URL_VAR).unwrap_or_else(|| DEFAULT_IAM_URL.to_owned());
            let url = format!(
                "{}/v1/projects/-/serviceAccounts/{sa}:generateAccessToken",
                base.trim_end_matches('/')
            );
            Some(
                Target::from_url(&url, &[], impersonated::DEFAULT_LIFETIME).map_err(|p| {
                    Error::source(
                        format!("{IAM_URL_VAR}={base}"),
                        p,
                        Some("fix GAR_IAM_CREDENTIALS_URL"),
                    )
                })?,
            )
        }
        None => None,
    };
    let oidc_audience = format!("https://iam.googleapis.com/{provider}");
    let sep = if request_url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{request_url}{sep}audience={}",
        query_encode(&oidc_audience)
    );
    let source = SubjectSource::Url {
        url,
        headers: vec![(
            "Authorization".to_owned(),
            format!("Bearer {request_token}"),
        )],
        format: Format::Json("value".to_owned()),
    };
    Ok(ExternalAccount::new(
        Label::Github(provider.clone()),
        format!("//iam.googleapis.com/{provider}"),
        sts_url,
        impersonation,
        source,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_provider_forms_are_accepted_and_checked() {
        let p = "projects/123456/locations/global/workloadIdentityPools/ci/providers/github";
        assert_eq!(provider_name(p).unwrap(), p);
        assert_eq!(
            provider_name(&format!("//iam.googleapis.com/{p}")).unwrap(),
            p
        );
        assert_eq!(
            provider_name(&format!("https://iam.googleapis.com/{p}/")).unwrap(),
            p
        );
        let e = provider_name(
            "projects/my-proj/locations/global/workloadIdentityPools/ci/providers/gh",
        )
        .unwrap_err();
        assert!(e.contains("project NUMBER"), "{e}");
        assert!(provider_name("projects/1/locations/global/workloadIdentityPools/ci").is_err());
        assert!(
            provider_name("projects/1/locations/global/workloadIdentityPools/c i/providers/x")
                .is_err()
        );
    }

    #[test]
    fn service_accounts_cannot_inject_into_the_path() {
        assert!(service_account("ci@p.iam.gserviceaccount.com").is_ok());
        assert!(service_account("a/b@c").is_err());
        assert!(service_account("x:signJwt@c").is_err());
        assert!(service_account("no-at-sign").is_err());
    }

    #[test]
    fn the_audience_is_percent_encoded() {
        assert_eq!(
            query_encode("https://iam.googleapis.com/projects/1"),
            "https%3A%2F%2Fiam.googleapis.com%2Fprojects%2F1"
        );
    }
}
