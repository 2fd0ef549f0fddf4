//! A service-account key file: an RS256-signed JWT-bearer grant.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::{Value, json};

use super::credentials_file::Origin;
use super::oauth::{self, CLOUD_PLATFORM_SCOPE};
use crate::error::Error;
use crate::token::{self, Token};

/// Lifetime asked for in the assertion (Google's maximum).
const ASSERTION_LIFETIME: u64 = 3600;

#[derive(Deserialize)]
struct Raw {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// A parsed service-account key. Holds the private key, so it has no `Debug`.
pub struct ServiceAccount {
    /// The account's email.
    pub client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    /// Where the grant is sent.
    pub token_uri: String,
    path: PathBuf,
    origin: Origin,
}

impl ServiceAccount {
    /// Reads the fields of a `service_account` file.
    pub fn from_json(v: Value, origin: &Origin) -> Result<Self, Error> {
        let raw: Raw = origin.parse(v, "service_account")?;
        Ok(ServiceAccount {
            client_email: raw.client_email,
            private_key: raw.private_key,
            private_key_id: raw.private_key_id,
            token_uri: raw
                .token_uri
                .filter(|u| !u.trim().is_empty())
                .unwrap_or_else(|| oauth::GOOGLE_TOKEN_URL.to_owned()),
            path: origin.path.clone(),
            origin: origin.clone(),
        })
    }

    /// The cache identity: the file, the account, the key and the endpoint.
    pub fn identity(&self) -> String {
        format!(
            "service_account\0{}\0{}\0{}\0{}",
            self.path.display(),
            self.client_email,
            self.private_key_id.as_deref().unwrap_or(""),
            self.token_uri
        )
    }

    /// How the source is named in messages.
    pub fn describe(&self) -> String {
        format!(
            "service account {} (key file {})",
            self.client_email,
            self.path.display()
        )
    }

    fn key_pair(&self) -> Result<RsaKeyPair, Error> {
        let bad = |what: &str| {
            self.origin.err(format!(
                "has a private_key that {what}; download a new key from the Google Cloud console"
            ))
        };
        let der = PrivateKeyDer::from_pem_slice(self.private_key.as_bytes())
            .map_err(|_| bad("is not a PEM-encoded private key"))?;
        let pair = match &der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(bad("is not an RSA key")),
        };
        pair.map_err(|_| bad("is not a usable RSA key"))
    }

    /// Builds the signed assertion: fresh `iat`/`exp` every time.
    fn assertion(&self) -> Result<String, Error> {
        let key = self.key_pair()?;
        let now = token::now();
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = Value::String(kid.clone());
        }
        let claims = json!({
            "iss": self.client_email,
            "scope": CLOUD_PLATFORM_SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signing_input.as_bytes(),
            &mut sig,
        )
        .map_err(|_| Error::source(self.describe(), "signing the JWT failed", None))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// Mints an access token.
    pub fn fetch(&self) -> Result<Token, Error> {
        let assertion = self.assertion()?;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ];
        let v = crate::http::post_form(&self.token_uri, &form).map_err(|e| {
            oauth::http_error(
                &self.describe(),
                &self.token_uri,
                e,
                "the key may have been deleted or disabled: create a new key, or prefer Workload Identity Federation",
            )
        })?;
        oauth::parse_token(&v, &self.describe(), &self.token_uri)
    }
}
