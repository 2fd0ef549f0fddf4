//! Each credential source against the local fake of Google, and the chain's choice.

mod support;

use std::time::Duration;

use serde_json::json;
use support::Sandbox;
use support::fake_google::{FakeGoogle, ForcedResponse, METADATA_TOKEN_PATH};

const HOST: &str = "europe-north1-docker.pkg.dev";

fn with_key(sb: &Sandbox, fake: &FakeGoogle) -> (std::path::PathBuf, String) {
    let key = fake.service_account(&fake.token_url());
    let path = sb.write_file("sa.json", &key.json);
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    (path, key.client_email)
}

#[test]
fn env_token_is_used_as_is_and_wins_over_everything() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    with_key(&sb, &fake);
    support::register_secret(support::SecretKind::AccessToken, "ya29.from-env");
    sb.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.from-env");
    assert_eq!(sb.get(HOST).secret(), "ya29.from-env");
    assert_eq!(fake.total_count(), 0, "no upstream call for an env token");
}

#[test]
fn service_account_key_mints_with_a_signed_jwt() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let (_, email) = with_key(&sb, &fake);
    let secret = sb.get(HOST).secret();
    assert_eq!(fake.issued_access_tokens(), vec![secret]);
    let reqs = fake.requests_to("/token");
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].form("grant_type"),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    // The fake verified the RS256 signature, iss, aud, scope and iat/exp.
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
    let (_, claims) =
        support::fake_google::decode_jwt_unverified(reqs[0].form("assertion").unwrap()).unwrap();
    assert_eq!(claims["iss"], json!(email));
    assert_eq!(claims["aud"], json!(fake.token_url()));
    assert_eq!(
        claims["scope"],
        json!("https://www.googleapis.com/auth/cloud-platform")
    );
    let iat = claims["iat"].as_u64().unwrap();
    assert!(iat.abs_diff(support::now_unix()) < 60);
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 3600);
}

#[test]
fn a_deleted_service_account_key_gives_an_actionable_error() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let (_, email) = with_key(&sb, &fake);
    fake.delete_service_account(&email);
    let out = sb.get(HOST);
    out.assert_code(1);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.dump());
    out.assert_stdout_contains(&email)
        .assert_stdout_contains("invalid_grant")
        .assert_stdout_contains("create a new key");
}

#[test]
fn authorized_user_uses_its_token_uri_then_gar_token_url() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let user = fake.authorized_user(Some(&fake.token_url()));
    let path = sb.write_file("user.json", &user.json);
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    let secret = sb.get(HOST).secret();
    assert_eq!(fake.issued_access_tokens(), vec![secret]);
    let req = &fake.requests_to("/token")[0];
    assert_eq!(req.form("grant_type"), Some("refresh_token"));
    assert_eq!(req.form("refresh_token"), Some(user.refresh_token.as_str()));
    assert_eq!(req.form("client_id"), Some(user.client_id.as_str()));

    // Without token_uri in the file, GAR_TOKEN_URL names the endpoint.
    let sb2 = Sandbox::new();
    let user2 = fake.authorized_user(None);
    let path2 = sb2.write_file("user.json", &user2.json);
    sb2.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path2);
    sb2.set_env("GAR_TOKEN_URL", fake.token_url());
    let secret2 = sb2.get(HOST).secret();
    assert_eq!(fake.last_access_token().as_deref(), Some(secret2.as_str()));
    assert_eq!(fake.requests_to("/token").len(), 2);
}

#[test]
fn a_revoked_refresh_token_says_to_log_in_again_without_retrying() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let user = fake.authorized_user(Some(&fake.token_url()));
    fake.revoke_refresh_token(&user.refresh_token);
    let path = sb.write_file("user.json", &user.json);
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    let out = sb.get(HOST);
    out.assert_code(1)
        .assert_stdout_contains("invalid_grant")
        .assert_stdout_contains("gcloud auth application-default login");
    assert_eq!(fake.count("/token"), 1);
}

#[test]
fn adc_file_in_cloudsdk_config_is_used_when_nothing_else_is_configured() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let user = fake.authorized_user(Some(&fake.token_url()));
    std::fs::write(
        sb.cloudsdk_config()
            .join("application_default_credentials.json"),
        &user.json,
    )
    .unwrap();
    let secret = sb.get(HOST).secret();
    assert_eq!(fake.issued_access_tokens(), vec![secret]);
}

#[test]
fn adc_file_under_home_is_used_without_cloudsdk_config() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    sb.remove_env("CLOUDSDK_CONFIG");
    let key = fake.service_account(&fake.token_url());
    let dir = sb.home().join(".config/gcloud");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("application_default_credentials.json"), &key.json).unwrap();
    let secret = sb.get(HOST).secret();
    assert_eq!(fake.issued_access_tokens(), vec![secret]);
}

#[test]
fn metadata_server_is_the_last_resort_and_must_say_it_is_google() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    sb.set_env("GCE_METADATA_HOST", fake.metadata_host());
    let secret = sb.get(HOST).secret();
    assert_eq!(fake.issued_access_tokens(), vec![secret]);
    let req = &fake.requests_to(METADATA_TOKEN_PATH)[0];
    assert_eq!(req.header("Metadata-Flavor"), Some("Google"));

    let sb2 = Sandbox::new();
    sb2.set_env("GCE_METADATA_HOST", fake.metadata_host());
    fake.set_metadata_impostor(true);
    let out = sb2.get(HOST);
    out.assert_code(1).assert_stdout_contains("Metadata-Flavor");
    assert_eq!(
        fake.issued_access_tokens().len(),
        1,
        "the impostor's token is not used"
    );
}

#[test]
fn nothing_configured_names_every_source_tried_and_the_fix() {
    let sb = Sandbox::new();
    // No gcloud on PATH: only the sandbox's empty bin dir.
    sb.set_env("PATH", sb.bin_dir());
    let out = sb.get(HOST);
    out.assert_code(1);
    let adc = sb
        .cloudsdk_config()
        .join("application_default_credentials.json");
    assert_eq!(
        out.stdout.trim(),
        format!(
            "docker-credential-gar: no Google credentials found (tried: GOOGLE_OAUTH_ACCESS_TOKEN is not set; \
             GOOGLE_APPLICATION_CREDENTIALS is not set; gcloud is not on PATH; no ADC file at {}; \
             metadata server 127.0.0.1:{} is not reachable (not on Google Cloud)); run `gcloud auth login`, \
             or set GOOGLE_APPLICATION_CREDENTIALS to a credentials file",
            adc.display(),
            sb.metadata_port()
        )
    );
}

#[test]
fn missing_or_invalid_credentials_files_name_the_path() {
    let sb = Sandbox::new();
    let missing = sb.files_dir().join("nope.json");
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &missing);
    let out = sb.get(HOST);
    out.assert_code(1);
    assert_eq!(
        out.stdout.trim(),
        format!(
            "docker-credential-gar: GOOGLE_APPLICATION_CREDENTIALS points to {}, which does not exist; fix the path or unset the variable",
            missing.display()
        )
    );
    let bad = sb.write_file("bad.json", "{\n  \"type\": \"service_account\",\n  oops\n}");
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &bad);
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains(&bad.display().to_string())
        .assert_stdout_contains("not valid JSON (line 3");
    let no_field = sb.write_file(
        "nofield.json",
        r#"{"type":"service_account","client_email":"a@b"}"#,
    );
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &no_field);
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("missing field `private_key`");
}

#[test]
fn credential_types_not_supported_yet_get_a_clear_error() {
    let sb = Sandbox::new();
    let f = sb.write_file(
        "workforce-user.json",
        r#"{"type":"external_account_authorized_user","audience":"//iam.googleapis.com/locations/global/workforcePools/p/providers/x","refresh_token":"r","token_url":"https://sts.googleapis.com/v1/oauthtoken"}"#,
    );
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &f);
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("external_account_authorized_user")
        .assert_stdout_contains("not support");
}

#[test]
fn a_configured_source_that_fails_is_the_answer_not_a_fallback() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    // A working ADC file and metadata server exist, but GOOGLE_APPLICATION_CREDENTIALS is
    // configured first and its key is rejected: we must not switch identity.
    let user = fake.authorized_user(Some(&fake.token_url()));
    std::fs::write(
        sb.cloudsdk_config()
            .join("application_default_credentials.json"),
        &user.json,
    )
    .unwrap();
    sb.set_env("GCE_METADATA_HOST", fake.metadata_host());
    let (_, email) = with_key(&sb, &fake);
    fake.delete_service_account(&email);
    sb.get(HOST).assert_code(1).assert_stdout_contains(&email);
    assert!(fake.issued_access_tokens().is_empty());
    assert_eq!(fake.count(METADATA_TOKEN_PATH), 0);
}

#[test]
fn gar_token_source_forces_one_source() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    support::register_secret(support::SecretKind::AccessToken, "ya29.env-ignored");
    sb.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.env-ignored");
    sb.set_env("GCE_METADATA_HOST", fake.metadata_host());
    sb.set_env("GAR_TOKEN_SOURCE", "metadata");
    let secret = sb.get(HOST).secret();
    assert_ne!(secret, "ya29.env-ignored");
    assert_eq!(fake.count(METADATA_TOKEN_PATH), 1);

    sb.set_env("GAR_TOKEN_SOURCE", "adc");
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("gcloud auth application-default login");

    sb.set_env("GAR_TOKEN_SOURCE", "gcloud");
    sb.set_env("PATH", sb.bin_dir());
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("gcloud is not on PATH");

    sb.set_env("GAR_TOKEN_SOURCE", "bogus");
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("use env, adc, gcloud or metadata");
}

#[test]
fn plain_http_token_endpoints_are_refused_off_loopback() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let key = fake.service_account("http://oauth2.example.test/token");
    let path = sb.write_file("sa.json", &key.json);
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("plain http:// is allowed only on loopback");
}

#[test]
fn a_hanging_token_endpoint_fails_within_gar_http_timeout() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    with_key(&sb, &fake);
    fake.push_token_response(ForcedResponse::new(200, "{}").delay(Duration::from_secs(30)));
    sb.set_env("GAR_HTTP_TIMEOUT", "1");
    let out = sb.get(HOST);
    out.assert_code(1)
        .assert_stdout_contains(&fake.token_url())
        .assert_stdout_contains("timed out");
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
}
