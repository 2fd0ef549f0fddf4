//! Google credential files (`GOOGLE_APPLICATION_CREDENTIALS` and the ADC file),
//! dispatched on their `type` field.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::authorized_user::AuthorizedUser;
use super::external_account::ExternalAccount;
use super::impersonated::Impersonated;
use super::service_account::ServiceAccount;
use crate::error::Error;
use crate::token::Token;

/// Largest credentials file we read; real ones are a few KiB.
const MAX_FILE: u64 = 1024 * 1024;

/// A parsed credentials file.
pub enum Credentials {
    /// A service-account key.
    ServiceAccount(ServiceAccount),
    /// A user's refresh token (`gcloud auth application-default login`).
    AuthorizedUser(AuthorizedUser),
    /// Workload Identity Federation (`external_account`).
    ExternalAccount(ExternalAccount),
    /// A service account impersonated from a user or a key (`impersonated_service_account`).
    Impersonated(Impersonated),
}

impl Credentials {
    /// The cache identity.
    pub fn identity(&self) -> String {
        match self {
            Credentials::ServiceAccount(s) => s.identity(),
            Credentials::AuthorizedUser(u) => u.identity(),
            Credentials::ExternalAccount(x) => x.identity(),
            Credentials::Impersonated(i) => i.identity(),
        }
    }

    /// How the credentials are named in messages.
    pub fn describe(&self) -> String {
        match self {
            Credentials::ServiceAccount(s) => s.describe(),
            Credentials::AuthorizedUser(u) => u.describe(),
            Credentials::ExternalAccount(x) => x.describe(),
            Credentials::Impersonated(i) => i.describe(),
        }
    }

    /// Mints an access token (no cache).
    pub fn fetch(&self) -> Result<Token, Error> {
        match self {
            Credentials::ServiceAccount(s) => s.fetch(),
            Credentials::AuthorizedUser(u) => u.fetch(),
            Credentials::ExternalAccount(x) => x.fetch(),
            Credentials::Impersonated(i) => i.fetch(),
        }
    }
}

/// Where a credentials file came from, for messages.
#[derive(Clone)]
pub struct Origin {
    /// How the file was found, e.g. `GOOGLE_APPLICATION_CREDENTIALS`.
    pub via: &'static str,
    /// The file.
    pub path: PathBuf,
}

/// Describes a serde_json error by kind and position only: its message could
/// quote a value from the file, and the file holds secrets.
pub fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "could not be read",
        Category::Syntax | Category::Eof => "is not valid JSON",
        Category::Data => "has a missing field or a field of the wrong type",
    };
    if e.line() > 0 {
        format!("{what} (line {}, column {})", e.line(), e.column())
    } else {
        what.to_owned()
    }
}

impl Origin {
    /// An error about this file.
    pub fn err(&self, problem: impl Into<String>) -> Error {
        Error::file(self.via, &self.path, problem)
    }

    /// Parses `v` as `T`, naming the file and the field on failure.
    pub fn parse<T: DeserializeOwned>(&self, v: Value, kind: &str) -> Result<T, Error> {
        serde_json::from_value(v).map_err(|e| {
            let field = missing_field(&e);
            self.err(format!(
                "is not a valid {kind} credentials file ({})",
                field.unwrap_or_else(|| "a field has the wrong type".to_owned())
            ))
        })
    }
}

/// The field name from a serde "missing field `x`" error (names are ours, not secrets).
fn missing_field(e: &serde_json::Error) -> Option<String> {
    let msg = e.to_string();
    let rest = msg.strip_prefix("missing field `")?;
    let name = rest.split('`').next()?;
    Some(format!("missing field `{name}`"))
}

/// Reads and parses the credentials file at `origin`.
pub fn load(origin: &Origin) -> Result<Credentials, Error> {
    use crate::files::{self, ReadError};
    let bytes = match files::read(&origin.path, MAX_FILE, files::Require::default()) {
        Ok(b) => b,
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(origin.err("does not exist; fix the path or unset the variable"));
        }
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(origin.err("cannot be read (permission denied)"));
        }
        Err(ReadError::TooLarge) => {
            return Err(origin.err("is larger than 1 MiB, so it is not a credentials file"));
        }
        Err(e @ ReadError::NotRegular(_)) => {
            return Err(origin.err(format!("{e}; use a credentials JSON file")));
        }
        Err(e) => return Err(origin.err(e.to_string())),
    };
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| origin.err(describe_json_error(&e)))?;
    let kind = match v.get("type") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(origin.err("has a `type` field that is not a string")),
        None => {
            return Err(origin.err("has no `type` field, so it is not a Google credentials file"));
        }
    };
    match kind.as_str() {
        "service_account" => Ok(Credentials::ServiceAccount(ServiceAccount::from_json(
            v, origin,
        )?)),
        "authorized_user" => Ok(Credentials::AuthorizedUser(AuthorizedUser::from_json(
            v, origin,
        )?)),
        "external_account" => Ok(Credentials::ExternalAccount(ExternalAccount::from_json(
            v, origin,
        )?)),
        "impersonated_service_account" => Ok(Credentials::Impersonated(Impersonated::from_json(
            v, origin,
        )?)),
        "external_account_authorized_user" => Err(origin.err(format!(
            "has type `{kind}`, which docker-credential-gar does not support yet; \
                 use a service_account, authorized_user, external_account or impersonated_service_account file, \
                 or `gcloud auth login`"
        ))),
        other => Err(origin.err(format!(
            "has type `{}`, which is not a Google credentials type",
            crate::http::sanitize(&other.chars().take(40).collect::<String>())
        ))),
    }
}
