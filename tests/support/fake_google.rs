//! A fake of the Google endpoints the helper talks to: the OAuth token endpoint
//! (`POST /token`), the GCE metadata server (`/computeMetadata/v1/...`), STS
//! (`POST /v1/token`, RFC 8693 token exchange), IAM Credentials
//! (`POST /v1/projects/-/serviceAccounts/<sa>:generateAccessToken`) and a
//! GitHub-Actions-like OIDC token URL (`GET /oidc?…&audience=…`), on one loopback
//! port, plus makers of credentials files in Google's real formats.
//!
//! Every request is counted per path and recorded; every token, refresh token,
//! client secret and private key it hands out is registered for the leak check.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::{SecretKind, form_decode, lock, now_unix, random_hex, register_secret};

/// The scope every access token request must include.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The JWT-bearer grant type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The path of the metadata token endpoint.
pub const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
/// The path of the metadata email endpoint.
pub const METADATA_EMAIL_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/email";
/// The body of every rejected JWT grant.
pub const INVALID_JWT_BODY: &str =
    r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
/// The STS path (`token_url` of `external_account` files).
pub const STS_PATH: &str = "/v1/token";
/// The GitHub-like OIDC token path.
pub const OIDC_PATH: &str = "/oidc";
/// The token-exchange grant type STS requires.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type STS hands out.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The subject-token type of an OIDC ID token.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The issuer of the fake GitHub OIDC tokens.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The body of a rejected refresh-token grant.
pub const INVALID_REFRESH_BODY: &str =
    r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#;

// ---------------------------------------------------------------------------
// The process-wide RSA test key
// ---------------------------------------------------------------------------

/// The RSA-2048 key pair all fake service accounts of this process use.
pub struct TestKey {
    /// PKCS#8 PEM, as in a service-account key file.
    pub pkcs8_pem: String,
    /// PKCS#8 DER.
    pub pkcs8_der: Vec<u8>,
    /// DER `RSAPublicKey`, for `ring::signature::UnparsedPublicKey`.
    pub public_key_der: Vec<u8>,
}

/// The process-wide test key, made once with `openssl genpkey`.
pub fn test_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir for key");
        let path = dir.path().join("key.pem");
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `openssl` ({e}); install it (apt-get install openssl)")
            });
        assert!(
            out.status.success(),
            "openssl genpkey failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pem = std::fs::read_to_string(&path).expect("read generated key");
        let pkcs8_der = pem_to_der(&pem, "PRIVATE KEY");
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&pkcs8_der)
            .expect("openssl made a PKCS#8 RSA key ring accepts");
        use ring::signature::KeyPair;
        let public_key_der = pair.public_key().as_ref().to_vec();
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            register_secret(SecretKind::PrivateKey, line);
        }
        TestKey {
            pkcs8_pem: pem,
            pkcs8_der,
            public_key_der,
        }
    })
}

/// Decodes the body of the first PEM block labelled `label`.
pub fn pem_to_der(pem: &str, label: &str) -> Vec<u8> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).expect("PEM begin line") + begin.len();
    let stop = pem[start..].find(&end).expect("PEM end line") + start;
    let b64: String = pem[start..stop].split_whitespace().collect();
    STANDARD.decode(b64).expect("PEM body is base64")
}

/// Signs `claims` as an RS256 JWT with the process test key (header `kid` = `kid`).
pub fn sign_jwt(claims: &Value, kid: Option<&str>) -> String {
    sign_jwt_with(&test_key().pkcs8_der, claims, kid)
}

/// Signs `claims` as an RS256 JWT with a PKCS#8 DER RSA key.
pub fn sign_jwt_with(pkcs8_der: &[u8], claims: &Value, kid: Option<&str>) -> String {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let pair = ring::signature::RsaKeyPair::from_pkcs8(pkcs8_der).expect("RSA PKCS#8 key");
    let mut sig = vec![0u8; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Splits a JWT and decodes header and claims without checking the signature.
pub fn decode_jwt_unverified(jwt: &str) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err(format!("JWT has {} parts, not 3", parts.len()));
    }
    let part = |i: usize, what: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(parts[i])
            .map_err(|e| format!("JWT {what} is not base64url: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("JWT {what} is not JSON: {e}"))
    };
    Ok((part(0, "header")?, part(1, "claims")?))
}

/// Verifies an RS256 JWT against a DER `RSAPublicKey`; returns header and claims.
pub fn verify_jwt_rs256(jwt: &str, public_key_der: &[u8]) -> Result<(Value, Value), String> {
    let (header, claims) = decode_jwt_unverified(jwt)?;
    if header["alg"] != "RS256" {
        return Err(format!("JWT alg is {}, not RS256", header["alg"]));
    }
    let (signing_input, sig_b64) = jwt.rsplit_once('.').expect("three parts");
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|e| format!("JWT signature is not base64url: {e}"))?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key_der,
    )
    .verify(signing_input.as_bytes(), &sig)
    .map_err(|_| "JWT signature does not verify".to_owned())?;
    Ok((header, claims))
}

// ---------------------------------------------------------------------------
// Records and knobs
// ---------------------------------------------------------------------------

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The path with the query.
    pub url: String,
    /// Headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: String,
    /// The body decoded as a form (empty if it is no form).
    pub form: Vec<(String, String)>,
    /// When it arrived.
    pub at: Instant,
}

impl RecordedRequest {
    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// A form field.
    pub fn form(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        let q = self.url.split_once('?')?.1;
        form_decode(q)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// A canned response served instead of the normal one.
#[derive(Clone, Debug)]
pub struct ForcedResponse {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Extra delay before answering.
    pub delay: Duration,
}

impl ForcedResponse {
    /// A JSON response with this status and body.
    pub fn new(status: u16, body: impl Into<String>) -> ForcedResponse {
        ForcedResponse {
            status,
            body: body.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            delay: Duration::ZERO,
        }
    }
    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> ForcedResponse {
        self.headers.push((k.into(), v.into()));
        self
    }
    /// Waits this long before answering.
    pub fn delay(mut self, d: Duration) -> ForcedResponse {
        self.delay = d;
        self
    }
    /// `500 {"error":"internal_failure"}`.
    pub fn server_error() -> ForcedResponse {
        ForcedResponse::new(
            500,
            r#"{"error":"internal_failure","error_description":"Backend Error"}"#,
        )
    }
    /// `503` with a plain-text body.
    pub fn unavailable() -> ForcedResponse {
        ForcedResponse::new(503, "Service Unavailable").header("Content-Type", "text/plain")
    }
    /// `400 invalid_grant` as for a bad JWT.
    pub fn invalid_grant() -> ForcedResponse {
        ForcedResponse::new(400, INVALID_JWT_BODY)
    }
    /// `400 invalid_grant` as for a revoked refresh token.
    pub fn revoked() -> ForcedResponse {
        ForcedResponse::new(400, INVALID_REFRESH_BODY)
    }
    /// `400 invalid_grant` with "reauth related error (invalid_rapt)".
    pub fn reauth_required() -> ForcedResponse {
        ForcedResponse::new(
            400,
            r#"{"error":"invalid_grant","error_description":"reauth related error (invalid_rapt)","error_uri":"https://support.google.com/a/answer/9368756","error_subtype":"invalid_rapt"}"#,
        )
    }
}

/// How a token was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// A service-account JWT assertion.
    JwtBearer,
    /// An authorized user's refresh token.
    RefreshToken,
    /// The metadata server.
    Metadata,
    /// An STS token exchange (Workload Identity Federation).
    Sts,
    /// IAM Credentials `generateAccessToken` (impersonation).
    Impersonation,
}

/// A subject token the fake's STS accepts (issued by [`OIDC_PATH`] or made with
/// [`FakeGoogle::subject_token`]).
#[derive(Clone, Debug)]
pub struct SubjectToken {
    /// The token.
    pub token: String,
    /// Its `sub` claim.
    pub sub: String,
    /// Its `aud` claim.
    pub aud: String,
    /// Its `exp` claim.
    pub exp: u64,
}

/// A token the fake handed out.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The access token.
    pub access_token: String,
    /// The ID token, if one was included.
    pub id_token: Option<String>,
    /// The grant.
    pub grant: Grant,
    /// The service-account email / user email / metadata email.
    pub subject: String,
    /// The `expires_in` answered.
    pub expires_in: u64,
    /// The `scope` requested (JWT claim, form field or metadata query).
    pub scope: Option<String>,
}

/// A service-account key the fake knows.
#[derive(Clone, Debug)]
pub struct ServiceAccountKey {
    /// `client_email`.
    pub client_email: String,
    /// `private_key_id`.
    pub private_key_id: String,
    /// The key file's JSON text.
    pub json: String,
}

/// An authorized user (refresh token) the fake knows.
#[derive(Clone, Debug)]
pub struct AuthorizedUser {
    /// The user's email (in ID tokens).
    pub email: String,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: String,
    /// `refresh_token`.
    pub refresh_token: String,
    /// The credentials file's JSON text.
    pub json: String,
}

struct UserEntry {
    user: AuthorizedUser,
    revoked: bool,
}

struct State {
    port: u16,
    counts: HashMap<String, usize>,
    requests: Vec<RecordedRequest>,
    issued: Vec<IssuedToken>,
    impostor_tokens: Vec<String>,
    rejections: Vec<String>,
    fixed_token: Option<String>,
    expires_in: u64,
    forced: VecDeque<(String, ForcedResponse)>,
    delay: Duration,
    impostor: bool,
    metadata_email: String,
    metadata_scopes: Vec<String>,
    service_accounts: HashMap<String, Vec<u8>>,
    users: Vec<UserEntry>,
    audiences: Vec<String>,
    sts_expires_in: u64,
    subject_tokens: Vec<SubjectToken>,
    oidc_issued: Vec<String>,
    denied_subjects: Vec<String>,
    iam_denied: bool,
    iam_expire_offset: i64,
    github_request_token: String,
    github_sub: String,
}

static SEQ: AtomicU64 = AtomicU64::new(1);

fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

/// The fake Google server. Stops when dropped.
pub struct FakeGoogle {
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeGoogle {
    /// Starts a fake on `127.0.0.1:<free port>`.
    pub fn start() -> FakeGoogle {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind fake google"));
        let port = server
            .server_addr()
            .to_ip()
            .expect("fake google listens on IP")
            .port();
        let token_url = format!("http://127.0.0.1:{port}/token");
        let state = Arc::new(Mutex::new(State {
            port,
            counts: HashMap::new(),
            requests: Vec::new(),
            issued: Vec::new(),
            impostor_tokens: Vec::new(),
            rejections: Vec::new(),
            fixed_token: None,
            expires_in: 3600,
            forced: VecDeque::new(),
            delay: Duration::ZERO,
            impostor: false,
            metadata_email: format!("vm-{}@fake-project.iam.gserviceaccount.com", random_hex(3)),
            metadata_scopes: vec![
                CLOUD_PLATFORM_SCOPE.to_owned(),
                "https://www.googleapis.com/auth/userinfo.email".to_owned(),
            ],
            service_accounts: HashMap::new(),
            users: Vec::new(),
            audiences: vec![token_url],
            sts_expires_in: 3600,
            subject_tokens: Vec::new(),
            oidc_issued: Vec::new(),
            denied_subjects: Vec::new(),
            iam_denied: false,
            iam_expire_offset: 0,
            github_request_token: {
                let t = format!("fake-gh-request-{}", random_hex(20));
                register_secret(SecretKind::ClientSecret, &t);
                t
            },
            github_sub: "repo:nav/app:ref:refs/heads/main".to_owned(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (server, state, stop) = (server.clone(), state.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) {
                        let state = state.clone();
                        std::thread::spawn(move || handle(req, &state));
                    }
                }
            })
        };
        FakeGoogle {
            state,
            server,
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    /// `http://127.0.0.1:PORT/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }
    /// `127.0.0.1:PORT`, the form `GCE_METADATA_HOST` takes.
    pub fn metadata_host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many requests arrived for `path` (without query).
    pub fn count(&self, path: &str) -> usize {
        lock(&self.state).counts.get(path).copied().unwrap_or(0)
    }
    /// How many requests arrived in total.
    pub fn total_count(&self) -> usize {
        lock(&self.state).requests.len()
    }
    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }
    /// The requests for `path`.
    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
    /// Waits until at least `n` requests arrived for `path`.
    pub fn wait_for_count(&self, path: &str, n: usize, timeout: Duration) {
        super::wait_for(&format!("{n} request(s) to {path}"), timeout, || {
            (self.count(path) >= n).then_some(())
        })
    }
    /// Every token handed out (forced responses and impostor tokens not included).
    pub fn issued(&self) -> Vec<IssuedToken> {
        lock(&self.state).issued.clone()
    }
    /// The access tokens handed out, in order.
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.issued().into_iter().map(|t| t.access_token).collect()
    }
    /// The last access token handed out.
    pub fn last_access_token(&self) -> Option<String> {
        self.issued().pop().map(|t| t.access_token)
    }
    /// The tokens the metadata server handed out while an impostor (not in [`FakeGoogle::issued`]).
    pub fn impostor_tokens(&self) -> Vec<String> {
        lock(&self.state).impostor_tokens.clone()
    }
    /// Why grants were rejected (for debugging failing tests).
    pub fn rejections(&self) -> Vec<String> {
        lock(&self.state).rejections.clone()
    }

    /// Hands out this access token on every success instead of unique ones.
    pub fn set_fixed_access_token(&self, token: Option<&str>) {
        if let Some(t) = token {
            register_secret(SecretKind::AccessToken, t);
        }
        lock(&self.state).fixed_token = token.map(str::to_owned);
    }
    /// The `expires_in` of successes (default 3600).
    pub fn set_expires_in(&self, secs: u64) {
        lock(&self.state).expires_in = secs;
    }
    /// Delays every answer by `d`.
    pub fn set_delay(&self, d: Duration) {
        lock(&self.state).delay = d;
    }
    /// Queues a canned answer for the next request to `path` (FIFO per path).
    pub fn push_response(&self, path: &str, r: ForcedResponse) {
        lock(&self.state).forced.push_back((path.to_owned(), r));
    }
    /// Queues a canned answer for the next `POST /token`.
    pub fn push_token_response(&self, r: ForcedResponse) {
        self.push_response("/token", r);
    }
    /// Makes the metadata server an impostor: it answers, but without `Metadata-Flavor: Google`
    /// and without checking the request's header; its tokens (`ya29.impostor-…`) are
    /// listed by [`FakeGoogle::impostor_tokens`] and may never appear in any output.
    pub fn set_metadata_impostor(&self, on: bool) {
        lock(&self.state).impostor = on;
    }
    /// The metadata server's service-account email.
    pub fn metadata_email(&self) -> String {
        lock(&self.state).metadata_email.clone()
    }
    /// Sets the metadata server's service-account email.
    pub fn set_metadata_email(&self, email: &str) {
        lock(&self.state).metadata_email = email.to_owned();
    }
    /// Also accepts JWTs with this `aud` (by default only [`FakeGoogle::token_url`]).
    pub fn accept_audience(&self, aud: &str) {
        lock(&self.state).audiences.push(aud.to_owned());
    }
    /// Trusts JWTs from `client_email` signed by this DER `RSAPublicKey`.
    pub fn trust_service_account(&self, client_email: &str, public_key_der: &[u8]) {
        lock(&self.state)
            .service_accounts
            .insert(client_email.to_owned(), public_key_der.to_vec());
    }
    /// Revokes an authorized user's refresh token: later refresh grants get `invalid_grant`.
    pub fn revoke_refresh_token(&self, refresh_token: &str) {
        for u in lock(&self.state).users.iter_mut() {
            if u.user.refresh_token == refresh_token {
                u.revoked = true;
            }
        }
    }
    /// Forgets a service account: later JWT grants from it get `invalid_grant`.
    pub fn delete_service_account(&self, client_email: &str) {
        lock(&self.state).service_accounts.remove(client_email);
    }

    // -- Workload Identity Federation: STS, IAM Credentials, GitHub-like OIDC --

    /// `http://127.0.0.1:PORT/v1/token`: the STS endpoint (`token_url`, `GAR_STS_URL`).
    pub fn sts_url(&self) -> String {
        format!("{}{STS_PATH}", self.url())
    }
    /// The IAM Credentials base URL (`GAR_IAM_CREDENTIALS_URL`).
    pub fn iam_url(&self) -> String {
        self.url()
    }
    /// The path of `generateAccessToken` for `sa`.
    pub fn impersonation_path(sa: &str) -> String {
        format!("/v1/projects/-/serviceAccounts/{sa}:generateAccessToken")
    }
    /// `service_account_impersonation_url` for `sa`.
    pub fn impersonation_url(&self, sa: &str) -> String {
        format!("{}{}", self.url(), Self::impersonation_path(sa))
    }
    /// `ACTIONS_ID_TOKEN_REQUEST_URL`: the OIDC token URL with GitHub's query.
    pub fn oidc_request_url(&self) -> String {
        format!("{}{OIDC_PATH}?api-version=2.0", self.url())
    }
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`: the bearer the OIDC URL requires (a secret).
    pub fn github_request_token(&self) -> String {
        lock(&self.state).github_request_token.clone()
    }
    /// The `sub` of the OIDC tokens (default `repo:nav/app:ref:refs/heads/main`).
    pub fn set_github_sub(&self, sub: &str) {
        lock(&self.state).github_sub = sub.to_owned();
    }
    /// The OIDC tokens handed out, in order.
    pub fn oidc_issued(&self) -> Vec<String> {
        lock(&self.state).oidc_issued.clone()
    }
    /// A new subject token (JWT-shaped, unique) with these claims that STS accepts,
    /// as a Kubernetes or GitLab token written to a file would be. Registered as a secret.
    pub fn subject_token(&self, sub: &str, aud: &str) -> String {
        let mut st = lock(&self.state);
        mint_subject_token(&mut st, "https://fake-idp.example", sub, aud)
    }
    /// The `expires_in` of STS answers (default 3600; 300 for a direct-federation run).
    pub fn set_sts_expires_in(&self, secs: u64) {
        lock(&self.state).sts_expires_in = secs;
    }
    /// Makes the provider's attribute condition reject subject tokens with this `sub`.
    pub fn deny_subject(&self, sub: &str) {
        lock(&self.state).denied_subjects.push(sub.to_owned());
    }
    /// Answers every `generateAccessToken` with 403 `PERMISSION_DENIED`.
    pub fn set_iam_permission_denied(&self, on: bool) {
        lock(&self.state).iam_denied = on;
    }
    /// Shifts the `expireTime` IAM answers by this many seconds (a skewed server).
    pub fn set_iam_expire_offset(&self, secs: i64) {
        lock(&self.state).iam_expire_offset = secs;
    }

    /// A new service account the fake trusts, as a key file with this `token_uri`.
    pub fn service_account(&self, token_uri: &str) -> ServiceAccountKey {
        let key = test_key();
        let n = next_seq();
        let client_email = format!(
            "sa-{n}-{}@fake-project.iam.gserviceaccount.com",
            random_hex(3)
        );
        let private_key_id = random_hex(20);
        let client_id = format!("1{:020}", n);
        let json = serde_json::to_string_pretty(&json!({
            "type": "service_account",
            "project_id": "fake-project",
            "private_key_id": private_key_id,
            "private_key": key.pkcs8_pem,
            "client_email": client_email,
            "client_id": client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": format!(
                "https://www.googleapis.com/robot/v1/metadata/x509/{}",
                client_email.replace('@', "%40")
            ),
            "universe_domain": "googleapis.com"
        }))
        .expect("json");
        self.trust_service_account(&client_email, &key.public_key_der);
        ServiceAccountKey {
            client_email,
            private_key_id,
            json,
        }
    }

    /// A service-account key file's JSON text with this `token_uri`.
    pub fn service_account_json(&self, token_uri: &str) -> String {
        self.service_account(token_uri).json
    }

    /// A new authorized user the fake knows, as a credentials file like the one
    /// `gcloud auth application-default login` writes (`token_uri` only if given).
    pub fn authorized_user(&self, token_uri: Option<&str>) -> AuthorizedUser {
        let n = next_seq();
        let email = format!("user-{n}-{}@example.com", random_hex(3));
        let client_id = format!("{:012}-fake{}.apps.googleusercontent.com", n, random_hex(8));
        let client_secret = format!("GOCSPX-fake-{}", random_hex(12));
        let refresh_token = format!("1//fake-refresh-{}", random_hex(24));
        register_secret(SecretKind::ClientSecret, &client_secret);
        register_secret(SecretKind::RefreshToken, &refresh_token);
        let mut v = json!({
            "account": "",
            "client_id": client_id,
            "client_secret": client_secret,
            "quota_project_id": "fake-project",
            "refresh_token": refresh_token,
            "type": "authorized_user",
            "universe_domain": "googleapis.com"
        });
        if let Some(t) = token_uri {
            v["token_uri"] = json!(t);
        }
        let user = AuthorizedUser {
            email,
            client_id,
            client_secret,
            refresh_token,
            json: serde_json::to_string_pretty(&v).expect("json"),
        };
        lock(&self.state).users.push(UserEntry {
            user: user.clone(),
            revoked: false,
        });
        user
    }

    /// An authorized-user credentials file's JSON text.
    pub fn authorized_user_json(&self, token_uri: Option<&str>) -> String {
        self.authorized_user(token_uri).json
    }
}

impl Drop for FakeGoogle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Request handling
// ---------------------------------------------------------------------------

struct Reply {
    status: u16,
    body: String,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
            headers: vec![(
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            )],
        }
    }
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        }
    }
    fn metadata(mut self) -> Reply {
        self.headers
            .push(("Metadata-Flavor".into(), "Google".into()));
        self
    }
}

fn handle(mut req: tiny_http::Request, state: &Mutex<State>) {
    let method = req.method().as_str().to_owned();
    let url = req.url().to_owned();
    let path = url.split('?').next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_owned(),
                h.value.as_str().to_owned(),
            )
        })
        .collect();
    let mut body = String::new();
    let _ = req.as_reader().read_to_string(&mut body);
    let is_form = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("content-type") && v.contains("application/x-www-form-urlencoded")
    }) || (method == "POST" && path == "/token");
    let rec = RecordedRequest {
        method,
        path: path.clone(),
        url,
        headers,
        form: if is_form {
            form_decode(&body)
        } else {
            Vec::new()
        },
        body,
        at: Instant::now(),
    };
    let (delay, forced) = {
        let mut st = lock(state);
        *st.counts.entry(path.clone()).or_insert(0) += 1;
        st.requests.push(rec.clone());
        let forced = st
            .forced
            .iter()
            .position(|(p, _)| *p == path)
            .and_then(|i| st.forced.remove(i))
            .map(|(_, r)| r);
        (st.delay, forced)
    };
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let reply = match forced {
        Some(f) => {
            if !f.delay.is_zero() {
                std::thread::sleep(f.delay);
            }
            Reply {
                status: f.status,
                body: f.body,
                headers: f.headers,
            }
        }
        None => route(&rec, state),
    };
    let mut resp = tiny_http::Response::from_string(reply.body)
        .with_status_code(tiny_http::StatusCode(reply.status));
    for (k, v) in reply.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    }
    let _ = req.respond(resp);
}

fn route(r: &RecordedRequest, state: &Mutex<State>) -> Reply {
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/token") => token_endpoint(r, state),
        ("POST", STS_PATH) => sts(r, state),
        ("POST", p)
            if p.starts_with("/v1/projects/-/serviceAccounts/")
                && p.ends_with(":generateAccessToken") =>
        {
            generate_access_token(r, state)
        }
        ("GET", OIDC_PATH) => oidc(r, state),
        ("GET", p) if p == "/" || p.starts_with("/computeMetadata") => metadata(r, state),
        _ => Reply::text(
            404,
            format!("fake google: no route for {} {}", r.method, r.path),
        ),
    }
}

fn reject(state: &Mutex<State>, why: String, body: &str) -> Reply {
    lock(state).rejections.push(why);
    Reply::json(400, body)
}

fn token_endpoint(r: &RecordedRequest, state: &Mutex<State>) -> Reply {
    match r.form("grant_type") {
        Some(JWT_BEARER) => jwt_grant(r, state),
        Some("refresh_token") => refresh_grant(r, state),
        other => reject(
            state,
            format!("unsupported grant_type {other:?}"),
            r#"{"error":"unsupported_grant_type","error_description":"Invalid grant_type: "}"#,
        ),
    }
}

fn jwt_grant(r: &RecordedRequest, state: &Mutex<State>) -> Reply {
    let Some(assertion) = r.form("assertion") else {
        return reject(state, "no assertion".into(), INVALID_JWT_BODY);
    };
    let claims = match check_assertion(assertion, state) {
        Ok(c) => c,
        Err(why) => return reject(state, why, INVALID_JWT_BODY),
    };
    let email = claims["iss"].as_str().unwrap_or_default().to_owned();
    let target_audience = claims.get("target_audience").and_then(Value::as_str);
    let scope = claims
        .get("scope")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let aud = target_audience.unwrap_or("32555940559.apps.googleusercontent.com");
    issue(state, Grant::JwtBearer, &email, aud, scope, true)
}

fn check_assertion(assertion: &str, state: &Mutex<State>) -> Result<Value, String> {
    let (_, unverified) = decode_jwt_unverified(assertion)?;
    let iss = unverified["iss"].as_str().unwrap_or_default().to_owned();
    let (key, audiences) = {
        let st = lock(state);
        (st.service_accounts.get(&iss).cloned(), st.audiences.clone())
    };
    let key = key.ok_or_else(|| format!("unknown service account iss={iss:?}"))?;
    let (_, claims) = verify_jwt_rs256(assertion, &key)?;
    let aud = claims["aud"].as_str().unwrap_or_default();
    if !audiences.iter().any(|a| a == aud) {
        return Err(format!("aud {aud:?} is not one of {audiences:?}"));
    }
    if claims.get("target_audience").is_none() {
        let scope = claims["scope"].as_str().unwrap_or_default();
        if !scope.split_whitespace().any(|s| s == CLOUD_PLATFORM_SCOPE) {
            return Err(format!("scope {scope:?} lacks {CLOUD_PLATFORM_SCOPE}"));
        }
    }
    let now = now_unix() as i64;
    let iat = claims["iat"]
        .as_i64()
        .ok_or_else(|| format!("iat {} is no integer", claims["iat"]))?;
    let exp = claims["exp"]
        .as_i64()
        .ok_or_else(|| format!("exp {} is no integer", claims["exp"]))?;
    if (iat - now).abs() > 60 {
        return Err(format!("iat {iat} is more than 60 s from now {now}"));
    }
    if exp <= iat || exp > iat + 3600 {
        return Err(format!("exp {exp} is not in (iat, iat+3600] (iat {iat})"));
    }
    Ok(claims)
}

fn refresh_grant(r: &RecordedRequest, state: &Mutex<State>) -> Reply {
    let (mut client_id, mut client_secret) = (
        r.form("client_id").map(str::to_owned),
        r.form("client_secret").map(str::to_owned),
    );
    if let Some(basic) = r
        .header("authorization")
        .and_then(|h| h.strip_prefix("Basic "))
        && let Ok(dec) = STANDARD.decode(basic.trim())
    {
        let dec = String::from_utf8_lossy(&dec).into_owned();
        if let Some((id, secret)) = dec.split_once(':') {
            client_id.get_or_insert(id.to_owned());
            client_secret.get_or_insert(secret.to_owned());
        }
    }
    let rt = r.form("refresh_token").unwrap_or_default();
    let found = {
        let st = lock(state);
        st.users
            .iter()
            .find(|u| u.user.refresh_token == rt)
            .map(|u| (u.user.clone(), u.revoked))
    };
    let Some((user, revoked)) = found else {
        return reject(state, "unknown refresh token".into(), INVALID_REFRESH_BODY);
    };
    if revoked {
        return reject(state, "revoked refresh token".into(), INVALID_REFRESH_BODY);
    }
    if client_id.as_deref() != Some(&user.client_id)
        || client_secret.as_deref() != Some(&user.client_secret)
    {
        return reject(
            state,
            "wrong client_id/client_secret".into(),
            r#"{"error":"invalid_client","error_description":"The OAuth client was not found."}"#,
        );
    }
    let scope = r.form("scope").map(str::to_owned);
    issue(
        state,
        Grant::RefreshToken,
        &user.email,
        &user.client_id,
        scope,
        true,
    )
}

fn new_access_token(st: &State) -> String {
    match &st.fixed_token {
        Some(t) => t.clone(),
        None => format!("ya29.fake-{:06}-{}", next_seq(), random_hex(12)),
    }
}

fn id_token(email: &str, aud: &str, expires_in: u64) -> String {
    let now = now_unix();
    let header = json!({"alg": "RS256", "kid": "fake-kid", "typ": "JWT"});
    let claims = json!({
        "iss": "https://accounts.google.com",
        "aud": aud,
        "azp": aud,
        "sub": format!("1{:020}", next_seq()),
        "email": email,
        "email_verified": true,
        "iat": now,
        "exp": now + expires_in,
    });
    let sig = random_hex(32);
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

fn issue(
    state: &Mutex<State>,
    grant: Grant,
    subject: &str,
    aud: &str,
    scope: Option<String>,
    with_id_token: bool,
) -> Reply {
    let mut st = lock(state);
    let access_token = new_access_token(&st);
    let expires_in = st.expires_in;
    register_secret(SecretKind::AccessToken, &access_token);
    let id = with_id_token.then(|| id_token(subject, aud, expires_in));
    if let Some(id) = &id {
        register_secret(SecretKind::IdToken, id);
    }
    let mut body = json!({
        "access_token": access_token,
        "expires_in": expires_in,
        "token_type": "Bearer",
    });
    if let Some(id) = &id {
        body["id_token"] = json!(id);
    }
    if let Some(s) = &scope
        && grant != Grant::Metadata
    {
        body["scope"] = json!(s);
    }
    st.issued.push(IssuedToken {
        access_token,
        id_token: id,
        grant,
        subject: subject.to_owned(),
        expires_in,
        scope,
    });
    Reply::json(200, body.to_string())
}

fn metadata(r: &RecordedRequest, state: &Mutex<State>) -> Reply {
    let (impostor, email, scopes) = {
        let st = lock(state);
        (
            st.impostor,
            st.metadata_email.clone(),
            st.metadata_scopes.clone(),
        )
    };
    let reply = if r.path == "/"
        || r.path == "/computeMetadata/v1/"
        || r.path == "/computeMetadata/v1"
    {
        Reply::text(200, "computeMetadata/\n")
    } else if !impostor && r.header("Metadata-Flavor") != Some("Google") {
        Reply::text(
            403,
            "Your client does not have permission to get URL from this server. \
             Missing Metadata-Flavor:Google header.",
        )
    } else {
        let sa = "/computeMetadata/v1/instance/service-accounts/";
        let rest = r.path.strip_prefix(sa).unwrap_or("");
        let (who, what) = rest.split_once('/').unwrap_or((rest, ""));
        let known = who == "default" || who == email;
        match (known, what) {
            (true, "token") if impostor => {
                // Not Google: its token is not "issued" and must never reach docker.
                let token = format!("ya29.impostor-{:06}-{}", next_seq(), random_hex(12));
                register_secret(SecretKind::ImpostorToken, &token);
                let expires_in = {
                    let mut st = lock(state);
                    st.impostor_tokens.push(token.clone());
                    st.expires_in
                };
                Reply::json(
                        200,
                        json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})
                            .to_string(),
                    )
            }
            (true, "token") => {
                let scope = r.query("scopes");
                issue(state, Grant::Metadata, &email, "", scope, false)
            }
            (true, "email") => Reply::text(200, email.clone()),
            (true, "scopes") => Reply::text(200, scopes.join("\n") + "\n"),
            (true, "") if r.query("recursive").as_deref() == Some("true") => Reply::json(
                200,
                json!({"aliases": ["default"], "email": email, "scopes": scopes}).to_string(),
            ),
            _ if r.path == "/computeMetadata/v1/project/project-id" => {
                Reply::text(200, "fake-project")
            }
            _ if r.path == "/computeMetadata/v1/project/numeric-project-id" => {
                Reply::text(200, "123456789012")
            }
            _ => Reply::text(404, "Not Found"),
        }
    };
    if impostor { reply } else { reply.metadata() }
}

// ---------------------------------------------------------------------------
// Workload Identity Federation: STS, IAM Credentials, OIDC
// ---------------------------------------------------------------------------

fn mint_subject_token(st: &mut State, iss: &str, sub: &str, aud: &str) -> String {
    let now = now_unix();
    let exp = now + 300;
    let header = json!({"alg": "RS256", "kid": "fake-oidc-kid", "typ": "JWT"});
    let claims = json!({
        "iss": iss,
        "sub": sub,
        "aud": aud,
        "jti": format!("{}-{}", next_seq(), random_hex(8)),
        "iat": now,
        "nbf": now,
        "exp": exp,
    });
    let token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(random_hex(32))
    );
    register_secret(SecretKind::IdToken, &token);
    st.subject_tokens.push(SubjectToken {
        token: token.clone(),
        sub: sub.to_owned(),
        aud: aud.to_owned(),
        exp,
    });
    token
}

fn oidc(r: &RecordedRequest, state: &Mutex<State>) -> Reply {
    let mut st = lock(state);
    let expected = format!("Bearer {}", st.github_request_token);
    if r.header("authorization") != Some(expected.as_str()) {
        st.rejections
            .push("OIDC: missing or wrong request token".into());
        return Reply::json(
            401,
            r#"{"message":"Unable to get ACTIONS_ID_TOKEN_REQUEST_URL env variable or the token is invalid"}"#,
        );
    }
    let aud = r
        .query("audience")
        .unwrap_or_else(|| "https://github.com/nav".to_owned());
    let sub = st.github_sub.clone();
    let token = mint_subject_token(&mut st, GITHUB_ISSUER, &sub, &aud);
    st.oidc_issued.push(token.clone());
    Reply::json(200, json!({"count": 1, "value": token}).to_string())
}

fn sts_reject(state: &Mutex<State>, why: String, error: &str, description: &str) -> Reply {
    lock(state).rejections.push(format!("STS: {why}"));
    Reply::json(
        400,
        json!({"error": error, "error_description": description}).to_string(),
    )
}

fn sts(r: &RecordedRequest, state: &Mutex<State>) -> Reply {
    if r.form("grant_type") != Some(TOKEN_EXCHANGE) {
        return sts_reject(
            state,
            format!("grant_type {:?}", r.form("grant_type")),
            "unsupported_grant_type",
            "Invalid grant_type.",
        );
    }
    if r.form("requested_token_type") != Some(ACCESS_TOKEN_TYPE) {
        return sts_reject(
            state,
            "requested_token_type".into(),
            "invalid_request",
            "Invalid requested_token_type.",
        );
    }
    let scope = r.form("scope").unwrap_or_default();
    if !scope.split_whitespace().any(|s| s == CLOUD_PLATFORM_SCOPE) {
        return sts_reject(
            state,
            format!("scope {scope:?}"),
            "invalid_scope",
            "Invalid scope.",
        );
    }
    let stt = r.form("subject_token_type").unwrap_or_default();
    if stt != JWT_TOKEN_TYPE && stt != "urn:ietf:params:oauth:token-type:id_token" {
        return sts_reject(
            state,
            format!("subject_token_type {stt:?}"),
            "invalid_request",
            "Invalid subject_token_type.",
        );
    }
    let audience = r.form("audience").unwrap_or_default().to_owned();
    let parts: Vec<&str> = audience
        .strip_prefix("//iam.googleapis.com/")
        .unwrap_or("")
        .split('/')
        .collect();
    let shape_ok = matches!(
        parts.as_slice(),
        ["projects", n, "locations", _, "workloadIdentityPools", _, "providers", _]
            if n.chars().all(|c| c.is_ascii_digit())
    );
    if !shape_ok {
        return sts_reject(
            state,
            format!("audience {audience:?}"),
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.",
        );
    }
    if let Some(o) = r.form("options") {
        let ok = serde_json::from_str::<Value>(o)
            .ok()
            .and_then(|v| {
                v.get("userProject")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .is_some();
        if !ok {
            return sts_reject(
                state,
                "options".into(),
                "invalid_request",
                "Invalid options.",
            );
        }
    }
    let token = r.form("subject_token").unwrap_or_default();
    let (known, denied) = {
        let st = lock(state);
        (
            st.subject_tokens.iter().find(|t| t.token == token).cloned(),
            st.denied_subjects.clone(),
        )
    };
    let Some(subject) = known else {
        return sts_reject(
            state,
            "unknown subject token".into(),
            "invalid_grant",
            "Unable to parse the ID Token.",
        );
    };
    let expected_aud = format!("https:{audience}");
    if subject.aud != expected_aud {
        return sts_reject(
            state,
            format!("aud {:?} is not {expected_aud:?}", subject.aud),
            "invalid_grant",
            &format!(
                "The audience in ID Token [{}] does not match the expected audience.",
                subject.aud
            ),
        );
    }
    if subject.exp <= now_unix() {
        return sts_reject(
            state,
            "expired subject token".into(),
            "invalid_grant",
            "ID Token issued is stale to sign-in.",
        );
    }
    if denied.contains(&subject.sub) {
        return sts_reject(
            state,
            format!("sub {:?} denied", subject.sub),
            "unauthorized_client",
            "The given credential is rejected by the attribute condition.",
        );
    }
    let mut st = lock(state);
    let access_token = match &st.fixed_token {
        Some(t) => t.clone(),
        None => format!("ya29.sts-fake-{:06}-{}", next_seq(), random_hex(12)),
    };
    register_secret(SecretKind::AccessToken, &access_token);
    let expires_in = st.sts_expires_in;
    st.issued.push(IssuedToken {
        access_token: access_token.clone(),
        id_token: None,
        grant: Grant::Sts,
        subject: subject.sub.clone(),
        expires_in,
        scope: Some(scope.to_owned()),
    });
    Reply::json(
        200,
        json!({
            "access_token": access_token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": expires_in,
        })
        .to_string(),
    )
}

fn google_error(status: u16, code_name: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"code": status, "message": message, "status": code_name}}).to_string(),
    )
}

fn generate_access_token(r: &RecordedRequest, state: &Mutex<State>) -> Reply {
    let sa = r
        .path
        .trim_start_matches("/v1/projects/-/serviceAccounts/")
        .trim_end_matches(":generateAccessToken")
        .to_owned();
    let bearer = r
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let (known, denied, offset) = {
        let st = lock(state);
        (
            st.issued.iter().any(|t| t.access_token == bearer),
            st.iam_denied,
            st.iam_expire_offset,
        )
    };
    let reject = |status: u16, name: &str, why: String, message: &str| {
        lock(state).rejections.push(format!("IAM: {why}"));
        google_error(status, name, message)
    };
    if !known {
        return reject(
            401,
            "UNAUTHENTICATED",
            "unknown bearer".into(),
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        );
    }
    if denied {
        return reject(
            403,
            "PERMISSION_DENIED",
            "permission denied switch".into(),
            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        );
    }
    let Ok(body) = serde_json::from_str::<Value>(&r.body) else {
        return reject(
            400,
            "INVALID_ARGUMENT",
            "body is not JSON".into(),
            "Invalid JSON payload received.",
        );
    };
    let scope_ok = body["scope"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s == CLOUD_PLATFORM_SCOPE));
    if !scope_ok {
        return reject(
            400,
            "INVALID_ARGUMENT",
            format!("scope {}", body["scope"]),
            "Scope required.",
        );
    }
    let lifetime = body["lifetime"]
        .as_str()
        .and_then(|l| l.strip_suffix('s'))
        .and_then(|l| l.parse::<u64>().ok())
        .filter(|l| (1..=43200).contains(l));
    let Some(lifetime) = lifetime else {
        return reject(
            400,
            "INVALID_ARGUMENT",
            format!("lifetime {}", body["lifetime"]),
            "Invalid lifetime.",
        );
    };
    if let Some(d) = body.get("delegates") {
        let ok = d.as_array().is_some_and(|a| {
            a.iter().all(|x| {
                x.as_str().is_some_and(|x| {
                    x.strip_prefix("projects/-/serviceAccounts/")
                        .is_some_and(|e| e.contains('@') && !e.contains('/'))
                })
            })
        });
        if !ok {
            return reject(
                400,
                "INVALID_ARGUMENT",
                format!("delegates {d}"),
                "Invalid delegates.",
            );
        }
    }
    let mut st = lock(state);
    let access_token = format!("ya29.iam-fake-{:06}-{}", next_seq(), random_hex(12));
    register_secret(SecretKind::AccessToken, &access_token);
    let expire = (now_unix() as i64 + lifetime as i64 + offset).max(0) as u64;
    let expire_time =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(expire))
            .to_string();
    st.issued.push(IssuedToken {
        access_token: access_token.clone(),
        id_token: None,
        grant: Grant::Impersonation,
        subject: sa,
        expires_in: lifetime,
        scope: Some(CLOUD_PLATFORM_SCOPE.to_owned()),
    });
    Reply::json(
        200,
        json!({"accessToken": access_token, "expireTime": expire_time}).to_string(),
    )
}
