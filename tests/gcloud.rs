//! The gcloud source: the real Google Cloud CLI offline against the fake (when
//! installed), and a gcloud-shaped stub that covers the same logic everywhere.

mod support;

use std::time::Duration;

use support::Sandbox;
use support::fake_google::FakeGoogle;
use support::gcloud::{GcloudEnv, GcloudStub, STUB_ACCOUNT, real_gcloud, write_gcloud_config};

const HOST: &str = "europe-north1-docker.pkg.dev";

#[test]
fn stub_logged_in_gcloud_hands_out_its_token_and_is_not_spawned_when_warm() {
    let sb = Sandbox::new();
    let stub = GcloudStub::install(&sb);
    assert_eq!(sb.get(HOST).secret(), stub.token());
    assert_eq!(sb.get(HOST).secret(), stub.token());
    assert_eq!(stub.calls(), vec!["config config-helper --format=json"]);
}

#[test]
fn stub_token_inside_the_margin_is_force_refreshed() {
    let sb = Sandbox::new();
    let stub = GcloudStub::install(&sb);
    stub.set_token("ya29.stub-nearly-expired", Duration::from_secs(120));
    stub.set_refreshed_token("ya29.stub-refreshed", Duration::from_secs(3600));
    assert_eq!(sb.get(HOST).secret(), "ya29.stub-refreshed");
    assert_eq!(
        stub.calls(),
        vec![
            "config config-helper --format=json",
            "config config-helper --format=json --force-auth-refresh"
        ]
    );
}

#[test]
fn stub_with_no_account_in_its_config_is_skipped_for_the_next_source() {
    let sb = Sandbox::new();
    let stub = GcloudStub::install(&sb);
    stub.write_config(None);
    let out = sb.get(HOST);
    out.assert_code(1)
        .assert_stdout_contains("gcloud has no active account in");
    assert_eq!(
        stub.call_count(),
        0,
        "gcloud is not run when no account is configured"
    );
}

#[test]
fn stub_failures_map_to_actionable_errors() {
    let sb = Sandbox::new();
    let stub = GcloudStub::install(&sb);
    stub.fail_no_active_account();
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("gcloud has no active account; run `gcloud auth login`");
    stub.fail_reauth_required();
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("needs reauthentication; run `gcloud auth login`");
    stub.fail_with(
        2,
        "ERROR: (gcloud.config.config-helper) something odd happened\n",
    );
    let out = sb.get(HOST);
    out.assert_code(1).assert_stdout_contains(
        "failed (exit 2): ERROR: (gcloud.config.config-helper) something odd happened",
    );
    assert_eq!(out.stdout.lines().count(), 1);
}

#[test]
fn stub_that_hangs_is_killed_at_the_bound() {
    let sb = Sandbox::new();
    let stub = GcloudStub::install(&sb);
    stub.hang(Some(Duration::from_secs(60)));
    sb.set_env("GAR_GCLOUD_TIMEOUT", "1");
    let out = sb.get(HOST);
    out.assert_code(1)
        .assert_stdout_contains("did not finish within 1 s and was stopped");
    assert!(out.elapsed < Duration::from_secs(20), "{:?}", out.elapsed);
}

#[test]
fn stub_warnings_on_stderr_do_not_break_the_answer() {
    let sb = Sandbox::new();
    let stub = GcloudStub::install(&sb);
    stub.warn(Some("WARNING: Python 3.8 is deprecated\n"));
    assert_eq!(sb.get(HOST).secret(), stub.token());
}

#[test]
fn switching_gcloud_account_is_a_new_identity() {
    let sb = Sandbox::new();
    let stub = GcloudStub::install(&sb);
    let first = sb.get(HOST).secret();
    write_gcloud_config(&sb.cloudsdk_config(), Some("other@example.com"));
    stub.set_token("ya29.stub-other-account", Duration::from_secs(3600));
    assert_eq!(sb.get(HOST).secret(), "ya29.stub-other-account");
    assert_ne!(first, "ya29.stub-other-account");
    write_gcloud_config(&sb.cloudsdk_config(), Some(STUB_ACCOUNT));
    assert_eq!(stub.call_count(), 2);
}

#[test]
fn cloudsdk_active_config_name_and_core_account_env_are_honoured() {
    let sb = Sandbox::new();
    let stub = GcloudStub::install(&sb);
    write_gcloud_config(&sb.cloudsdk_config(), None);
    sb.set_env("CLOUDSDK_CORE_ACCOUNT", "env-account@example.com");
    assert_eq!(sb.get(HOST).secret(), stub.token());
}

#[test]
fn real_gcloud_service_account_login_serves_docker() {
    let Some(gcloud) = real_gcloud("real_gcloud_service_account_login_serves_docker") else {
        return;
    };
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let env = GcloudEnv::new(&sb, gcloud);
    env.use_fake(&fake);
    let key = fake.service_account(&fake.token_url());
    let key_file = sb.write_file("sa.json", &key.json);
    env.activate_service_account(&key_file);
    let before = fake.count("/token");
    let secret = sb.get(HOST).secret();
    assert!(
        fake.issued_access_tokens().contains(&secret),
        "the token came from the fake via real gcloud"
    );
    let after_first = fake.count("/token");
    assert!(after_first >= before);
    assert_eq!(sb.get(HOST).secret(), secret);
    assert_eq!(
        fake.count("/token"),
        after_first,
        "warm get: no upstream request"
    );
}

#[test]
fn real_gcloud_user_login_serves_docker() {
    let Some(gcloud) = real_gcloud("real_gcloud_user_login_serves_docker") else {
        return;
    };
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let env = GcloudEnv::new(&sb, gcloud);
    env.use_fake(&fake);
    let user = fake.authorized_user(Some(&fake.token_url()));
    env.activate_authorized_user(&user);
    let secret = sb.get(HOST).secret();
    assert!(fake.issued_access_tokens().contains(&secret));
    let req = fake
        .requests_to("/token")
        .into_iter()
        .rfind(|r| r.form("grant_type") == Some("refresh_token"))
        .expect("gcloud refreshed with the user's refresh token");
    assert_eq!(req.form("refresh_token"), Some(user.refresh_token.as_str()));
}

#[test]
fn real_gcloud_logged_out_says_to_log_in() {
    let Some(_gcloud) = real_gcloud("real_gcloud_logged_out_says_to_log_in") else {
        return;
    };
    let sb = Sandbox::new();
    sb.set_env("GAR_TOKEN_SOURCE", "gcloud");
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("run `gcloud auth login`");
}
