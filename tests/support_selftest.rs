//! Tests of the test support itself: the runner, the leak check, the fake Google
//! endpoints, the gcloud stub (and real gcloud against the fake, when installed),
//! and the local registry.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::fake_google::*;
use support::gcloud::*;
use support::registry::*;
use support::*;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

fn post_form(fake: &FakeGoogle, pairs: &[(&str, &str)]) -> HttpResponse {
    http_request(
        "POST",
        &fake.token_url(),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form_encode(pairs).as_bytes()),
    )
}

fn jwt_grant(fake: &FakeGoogle, jwt: &str) -> HttpResponse {
    post_form(fake, &[("grant_type", JWT_BEARER), ("assertion", jwt)])
}

fn good_claims(fake: &FakeGoogle, email: &str) -> serde_json::Value {
    let now = now_unix();
    json!({
        "iss": email,
        "aud": fake.token_url(),
        "scope": format!("{CLOUD_PLATFORM_SCOPE} https://www.googleapis.com/auth/userinfo.email"),
        "iat": now,
        "exp": now + 3600,
    })
}

// ---------------------------------------------------------------------------
// Runner and sandbox
// ---------------------------------------------------------------------------

#[test]
fn runner_gives_a_clean_sandboxed_environment() {
    let sb = Sandbox::new();
    let out = sb.command("env").run();
    out.assert_ok();
    let mut keys: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK",
            "CLOUDSDK_CONFIG",
            "CLOUDSDK_CORE_CHECK_GCE_METADATA",
            "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING",
            "DOCKER_CONFIG",
            "GAR_CACHE_DIR",
            "GAR_LOG",
            "GAR_LOG_FILE",
            "GCE_METADATA_HOST",
            "GCE_METADATA_IP",
            "GCE_METADATA_ROOT",
            "HOME",
            "PATH",
        ],
        "{}",
        out.dump()
    );
    let home = format!("HOME={}", sb.home().display());
    assert!(out.stdout.lines().any(|l| l == home), "{}", out.dump());
    let meta = format!("GCE_METADATA_HOST=127.0.0.1:{}", sb.metadata_port());
    assert!(out.stdout.lines().any(|l| l == meta), "{}", out.dump());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", sb.metadata_port())).is_err(),
        "the metadata port should be closed"
    );
    for d in [
        sb.home(),
        sb.cache_dir(),
        sb.docker_config(),
        sb.cloudsdk_config(),
    ] {
        assert!(
            d.starts_with(std::env::temp_dir()),
            "{} not in temp",
            d.display()
        );
        assert!(d.is_dir());
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            0,
            "{} not empty",
            d.display()
        );
    }
}

#[test]
fn runner_env_overrides_removals_stdin_and_sandbox_env() {
    let sb = Sandbox::new();
    sb.set_env("GAR_REGISTRIES", "example.test");
    let out = sb
        .command("sh")
        .args([
            "-c",
            "echo \"$FOO|$HOME|$GAR_REGISTRIES|${GCE_METADATA_HOST-unset}\"; cat",
        ])
        .env("FOO", "bar")
        .env_remove("GCE_METADATA_HOST")
        .stdin("from-stdin")
        .run();
    out.assert_ok();
    assert_eq!(
        out.stdout,
        format!("bar|{}|example.test|unset\nfrom-stdin", sb.home().display())
    );
}

#[test]
fn runner_reports_exit_codes_and_parallel_spawns() {
    let sb = Sandbox::new();
    let started = Instant::now();
    let runs: Vec<Running> = (0..4)
        .map(|i| {
            sb.command("sh")
                .args(["-c", &format!("sleep 0.3; echo {i}; exit {i}")])
                .spawn()
        })
        .collect();
    for (i, r) in runs.into_iter().enumerate() {
        let out = r.wait();
        assert_eq!(out.code, Some(i as i32));
        assert_eq!(out.stdout.trim(), i.to_string());
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "spawns ran serially"
    );
}

#[test]
#[should_panic(expected = "did not finish within")]
fn runner_times_out_and_kills() {
    Sandbox::new()
        .command("sleep")
        .arg("30")
        .timeout(Duration::from_millis(300))
        .run();
}

#[test]
fn runner_runs_the_binary_under_test() {
    let out = Helper::new().arg("--version").run();
    out.assert_ok()
        .assert_stdout_contains("docker-credential-gar");
}

#[test]
fn install_helper_on_path_logs_calls() {
    let sb = Sandbox::new();
    let bin = sb.install_helper_on_path();
    assert!(bin.join("docker-credential-gar").is_file());
    sb.command("docker-credential-gar")
        .arg("version")
        .run()
        .assert_ok();
    assert_eq!(sb.helper_calls(), ["version"]);
}

// ---------------------------------------------------------------------------
// Leak check
// ---------------------------------------------------------------------------

#[test]
fn leak_check_rules() {
    let at = "ya29.access-token-for-leak-test".to_owned();
    let rt = "1//refresh-token-for-leak-test".to_owned();
    let cs = "GOCSPX-client-secret-for-leak-test".to_owned();
    let secrets = vec![
        (SecretKind::AccessToken, at.clone()),
        (SecretKind::RefreshToken, rt.clone()),
        (SecretKind::ClientSecret, cs.clone()),
    ];
    let check = |out: &str, err: &str| check_no_leaks_with(&secrets, out, err);
    let line = |server: &str, user: &str, secret: &str| {
        json!({"ServerURL": server, "Username": user, "Secret": secret}).to_string() + "\n"
    };
    // Fine: the access token as Secret of a credential line; unrelated output.
    assert!(check(&line("europe-docker.pkg.dev", USERNAME, &at), "").is_ok());
    assert!(check("nothing here\n", "some error\n").is_ok());
    // Anything on stderr is a leak.
    assert!(check("", &format!("token {at}")).is_err());
    assert!(check("", &format!("rt={rt}")).is_err());
    // The access token outside a credential line.
    assert!(check(&format!("token: {at}\n"), "").is_err());
    // A refresh token / client secret as Secret.
    assert!(check(&line("h", USERNAME, &rt), "").is_err());
    assert!(check(&line("h", USERNAME, &cs), "").is_err());
    // Wrong username, extra keys, secret in ServerURL.
    assert!(check(&line("h", "_json_key", &at), "").is_err());
    let extra = json!({"ServerURL": "h", "Username": USERNAME, "Secret": at, "x": 1}).to_string();
    assert!(check(&extra, "").is_err());
    assert!(check(&line(&format!("h/{rt}"), USERNAME, &at), "").is_err());
    // Secret containing more than the token.
    assert!(check(&line("h", USERNAME, &format!("{at}{rt}")), "").is_err());
    // Pretty-printed JSON is no credential line.
    let pretty = serde_json::to_string_pretty(
        &json!({"ServerURL": "h", "Username": USERNAME, "Secret": at}),
    )
    .unwrap();
    assert!(check(&pretty, "").is_err());
}

#[test]
#[should_panic(expected = "SECRET LEAK")]
fn leak_check_is_automatic() {
    let fake = FakeGoogle::start();
    let user = fake.authorized_user(None);
    Sandbox::new()
        .command("sh")
        .args([
            "-c",
            &format!("echo 'refreshing with {}' >&2", user.refresh_token),
        ])
        .run();
}

#[test]
#[should_panic(expected = "SECRET LEAK")]
fn leak_check_catches_a_private_key_line() {
    let fake = FakeGoogle::start();
    let _ = fake.service_account_json(&fake.token_url());
    let line = test_key().pkcs8_pem.lines().nth(3).unwrap().to_owned();
    Sandbox::new().command("echo").arg(line).run();
}

// ---------------------------------------------------------------------------
// Fake token endpoint: JWT bearer
// ---------------------------------------------------------------------------

#[test]
fn service_account_json_is_a_real_key_file() {
    let fake = FakeGoogle::start();
    let key = fake.service_account(&fake.token_url());
    let v: serde_json::Value = serde_json::from_str(&key.json).unwrap();
    assert_eq!(v["type"], "service_account");
    assert_eq!(v["client_email"], key.client_email.as_str());
    assert_eq!(v["token_uri"], fake.token_url().as_str());
    assert_eq!(v["private_key_id"], key.private_key_id.as_str());
    let pem = v["private_key"].as_str().unwrap();
    assert!(
        pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "{pem:.40}"
    );
    assert!(pem.trim_end().ends_with("-----END PRIVATE KEY-----"));
    let der = pem_to_der(pem, "PRIVATE KEY");
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    assert_eq!(pair.public().modulus_len(), 256, "RSA 2048");
}

#[test]
fn jwt_signed_by_the_known_key_is_accepted() {
    let fake = FakeGoogle::start();
    fake.set_expires_in(1234);
    let key = fake.service_account(&fake.token_url());
    let jwt = sign_jwt(
        &good_claims(&fake, &key.client_email),
        Some(&key.private_key_id),
    );
    let resp = jwt_grant(&fake, &jwt);
    assert_eq!(resp.status, 200, "{} {:?}", resp.body, fake.rejections());
    let v = resp.json();
    let token = v["access_token"].as_str().unwrap();
    assert!(token.starts_with("ya29.fake-"), "{token}");
    assert_eq!(v["expires_in"], 1234);
    assert_eq!(v["token_type"], "Bearer");
    let (_, id) = decode_jwt_unverified(v["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(id["email"], key.client_email.as_str());
    for k in ["iss", "aud", "sub", "iat", "exp"] {
        assert!(id.get(k).is_some(), "id_token lacks {k}");
    }
    assert_eq!(fake.count("/token"), 1);
    let issued = fake.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].access_token, token);
    assert_eq!(issued[0].grant, Grant::JwtBearer);
    assert_eq!(issued[0].subject, key.client_email);
    assert!(
        secrets()
            .iter()
            .any(|(k, s)| *k == SecretKind::AccessToken && s == token)
    );
    // A second grant gets a different token.
    let again = jwt_grant(&fake, &jwt).json();
    assert_ne!(again["access_token"], token);
    assert_eq!(fake.count("/token"), 2);
    let req = &fake.requests_to("/token")[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.form("grant_type"), Some(JWT_BEARER));
    assert_eq!(req.form("assertion"), Some(jwt.as_str()));
}

#[test]
fn jwt_with_target_audience_gets_an_id_token_without_scope() {
    let fake = FakeGoogle::start();
    let key = fake.service_account(&fake.token_url());
    let now = now_unix();
    let claims = json!({
        "iss": key.client_email, "aud": fake.token_url(),
        "target_audience": "https://example.test", "iat": now, "exp": now + 3600,
    });
    let v = jwt_grant(&fake, &sign_jwt(&claims, None)).json();
    let (_, id) = decode_jwt_unverified(v["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(id["aud"], "https://example.test");
}

#[test]
fn bad_jwts_are_rejected() {
    let fake = FakeGoogle::start();
    let key = fake.service_account(&fake.token_url());
    let good = good_claims(&fake, &key.client_email);
    let now = now_unix();
    let with = |k: &str, v: serde_json::Value| {
        let mut c = good.clone();
        c[k] = v;
        sign_jwt(&c, None)
    };
    let mut no_scope = good.clone();
    no_scope.as_object_mut().unwrap().remove("scope");

    // Tampered: claims changed after signing.
    let signed = sign_jwt(&good, None);
    let parts: Vec<&str> = signed.split('.').collect();
    let mut evil = good.clone();
    evil["iss"] = json!(key.client_email.clone());
    evil["scope"] = json!(format!("{CLOUD_PLATFORM_SCOPE} https://evil.test"));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        base64_url(evil.to_string().as_bytes()),
        parts[2]
    );
    // Signature bytes flipped.
    let mut sig = parts[2].as_bytes().to_vec();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    let bad_sig = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8(sig).unwrap()
    );

    let cases: Vec<(&str, String)> = vec![
        ("tampered claims", tampered),
        ("flipped signature", bad_sig),
        (
            "unknown issuer",
            with("iss", json!("nobody@fake-project.iam.gserviceaccount.com")),
        ),
        (
            "wrong aud",
            with("aud", json!("https://oauth2.googleapis.com/token")),
        ),
        (
            "no cloud-platform scope",
            with(
                "scope",
                json!("https://www.googleapis.com/auth/userinfo.email"),
            ),
        ),
        ("missing scope", sign_jwt(&no_scope, None)),
        ("iat in the past", with("iat", json!(now - 600))),
        ("exp too far", with("exp", json!(now + 3601))),
        ("exp before iat", with("exp", json!(now - 1))),
        ("not a JWT", "abc".to_owned()),
    ];
    for (what, jwt) in &cases {
        let r = jwt_grant(&fake, jwt);
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert_eq!(
            r.json(),
            serde_json::from_str::<serde_json::Value>(INVALID_JWT_BODY).unwrap(),
            "{what}"
        );
    }
    assert_eq!(
        fake.rejections().len(),
        cases.len(),
        "{:?}",
        fake.rejections()
    );
    assert!(fake.issued().is_empty());
    // A deleted service account is rejected too.
    let ok = sign_jwt(&good, None);
    assert_eq!(jwt_grant(&fake, &ok).status, 200);
    fake.delete_service_account(&key.client_email);
    assert_eq!(jwt_grant(&fake, &ok).status, 400);
}

fn base64_url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[test]
fn jwt_verification_helpers_agree_with_ring() {
    let jwt = sign_jwt(&json!({"a": 1}), Some("kid1"));
    let (h, c) = verify_jwt_rs256(&jwt, &test_key().public_key_der).unwrap();
    assert_eq!(h["kid"], "kid1");
    assert_eq!(c["a"], 1);
    let broken = format!("{}x", jwt);
    assert!(verify_jwt_rs256(&broken, &test_key().public_key_der).is_err());
}

// ---------------------------------------------------------------------------
// Fake token endpoint: refresh tokens, knobs
// ---------------------------------------------------------------------------

#[test]
fn refresh_token_grants() {
    let fake = FakeGoogle::start();
    let u = fake.authorized_user(Some(&fake.token_url()));
    let v: serde_json::Value = serde_json::from_str(&u.json).unwrap();
    assert_eq!(v["type"], "authorized_user");
    assert_eq!(v["token_uri"], fake.token_url().as_str());
    let no_uri: serde_json::Value = serde_json::from_str(&fake.authorized_user_json(None)).unwrap();
    assert!(no_uri.get("token_uri").is_none());

    let grant = |rt: &str, id: &str, secret: &str| {
        post_form(
            &fake,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_id", id),
                ("client_secret", secret),
            ],
        )
    };
    let ok = grant(&u.refresh_token, &u.client_id, &u.client_secret);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let body = ok.json();
    assert!(
        body["access_token"]
            .as_str()
            .unwrap()
            .starts_with("ya29.fake-")
    );
    assert!(body["id_token"].is_string());
    assert_eq!(fake.issued()[0].grant, Grant::RefreshToken);
    assert_eq!(fake.issued()[0].subject, u.email);

    assert_eq!(grant(&u.refresh_token, &u.client_id, "wrong").status, 400);
    assert_eq!(
        grant("1//unknown-refresh-token", &u.client_id, &u.client_secret).status,
        400
    );
    // HTTP Basic client authentication works too.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", u.client_id, u.client_secret));
    let r = http_request(
        "POST",
        &fake.token_url(),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", &format!("Basic {basic}")),
        ],
        Some(
            form_encode(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &u.refresh_token),
            ])
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    fake.revoke_refresh_token(&u.refresh_token);
    let revoked = grant(&u.refresh_token, &u.client_id, &u.client_secret);
    assert_eq!(revoked.status, 400);
    assert_eq!(revoked.json()["error"], "invalid_grant");
    assert_eq!(fake.count("/token"), 5);
}

#[test]
fn forced_responses_fixed_token_and_delay() {
    let fake = FakeGoogle::start();
    let key = fake.service_account(&fake.token_url());
    let jwt = || sign_jwt(&good_claims(&fake, &key.client_email), None);
    fake.push_token_response(ForcedResponse::server_error());
    fake.push_token_response(ForcedResponse::invalid_grant().header("X-Test", "1"));
    let r1 = jwt_grant(&fake, &jwt());
    assert_eq!(r1.status, 500);
    let r2 = jwt_grant(&fake, &jwt());
    assert_eq!(r2.status, 400);
    assert_eq!(r2.header("x-test"), Some("1"));
    assert_eq!(jwt_grant(&fake, &jwt()).status, 200);
    assert_eq!(fake.issued().len(), 1, "forced answers issue nothing");

    let fixed = format!("ya29.fixed-{}", random_hex(8));
    fake.set_fixed_access_token(Some(&fixed));
    assert_eq!(
        jwt_grant(&fake, &jwt()).json()["access_token"],
        fixed.as_str()
    );
    assert_eq!(
        jwt_grant(&fake, &jwt()).json()["access_token"],
        fixed.as_str()
    );
    fake.set_fixed_access_token(None);
    assert_ne!(
        jwt_grant(&fake, &jwt()).json()["access_token"],
        fixed.as_str()
    );

    fake.set_delay(Duration::from_millis(400));
    let t = Instant::now();
    assert_eq!(jwt_grant(&fake, &jwt()).status, 200);
    assert!(t.elapsed() >= Duration::from_millis(400));
    fake.set_delay(Duration::ZERO);
    // Forced answers on other paths, with their own delay.
    fake.push_response(
        METADATA_EMAIL_PATH,
        ForcedResponse::unavailable().delay(Duration::from_millis(100)),
    );
    let r = http_request(
        "GET",
        &format!("{}{METADATA_EMAIL_PATH}", fake.url()),
        &[("Metadata-Flavor", "Google")],
        None,
    );
    assert_eq!(r.status, 503);
    assert_eq!(fake.count("/token"), 7);
    assert_eq!(fake.count(METADATA_EMAIL_PATH), 1);
    assert_eq!(fake.total_count(), 8);
}

#[test]
fn unknown_paths_are_404_and_counted() {
    let fake = FakeGoogle::start();
    let r = http_request("GET", &format!("{}/nope?x=1", fake.url()), &[], None);
    assert_eq!(r.status, 404);
    assert_eq!(fake.count("/nope"), 1);
    assert_eq!(fake.requests()[0].url, "/nope?x=1");
    assert_eq!(fake.requests()[0].query("x").as_deref(), Some("1"));
}

// ---------------------------------------------------------------------------
// Fake metadata server
// ---------------------------------------------------------------------------

#[test]
fn metadata_requires_the_flavor_header() {
    let fake = FakeGoogle::start();
    let url = format!("http://{}{METADATA_TOKEN_PATH}", fake.metadata_host());
    let denied = http_request("GET", &url, &[], None);
    assert_eq!(denied.status, 403);
    assert_eq!(denied.header("Metadata-Flavor"), Some("Google"));
    assert!(fake.issued().is_empty());

    fake.set_expires_in(99);
    let ok = http_request(
        "GET",
        &format!("{url}?scopes={CLOUD_PLATFORM_SCOPE}"),
        &[("Metadata-Flavor", "Google")],
        None,
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.header("metadata-flavor"), Some("Google"));
    let v = ok.json();
    assert!(
        v["access_token"]
            .as_str()
            .unwrap()
            .starts_with("ya29.fake-")
    );
    assert_eq!(v["expires_in"], 99);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(fake.issued()[0].grant, Grant::Metadata);
    assert_eq!(
        fake.issued()[0].scope.as_deref(),
        Some(CLOUD_PLATFORM_SCOPE)
    );

    let email = http_request(
        "GET",
        &format!("http://{}{METADATA_EMAIL_PATH}", fake.metadata_host()),
        &[("Metadata-Flavor", "Google")],
        None,
    );
    assert_eq!(email.body, fake.metadata_email());
    for ping in ["/", "/computeMetadata/v1/"] {
        let r = http_request("GET", &format!("{}{ping}", fake.url()), &[], None);
        assert_eq!(r.status, 200, "{ping}");
        assert_eq!(r.header("Metadata-Flavor"), Some("Google"), "{ping}");
    }
    assert_eq!(fake.count(METADATA_TOKEN_PATH), 2);
    assert_eq!(fake.count(METADATA_EMAIL_PATH), 1);
    assert_eq!(fake.count("/"), 1);
}

#[test]
fn metadata_impostor_answers_without_the_flavor_header() {
    let fake = FakeGoogle::start();
    fake.set_metadata_impostor(true);
    for path in ["/", METADATA_TOKEN_PATH] {
        let r = http_request(
            "GET",
            &format!("{}{path}", fake.url()),
            &[("Metadata-Flavor", "Google")],
            None,
        );
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("Metadata-Flavor"), None, "{path}");
    }
    assert!(fake.issued().is_empty());
    let bad = fake.impostor_tokens();
    assert_eq!(bad.len(), 1);
    // Its token may not even appear as the Secret of a credential line.
    let line = json!({"ServerURL": "h", "Username": USERNAME, "Secret": bad[0]}).to_string();
    assert!(check_no_leaks(&line, "").is_err());
}

// ---------------------------------------------------------------------------
// gcloud: stub and real
// ---------------------------------------------------------------------------

#[test]
fn gcloud_stub_mimics_config_helper() {
    let sb = Sandbox::new();
    let stub = GcloudStub::install(&sb);
    let cfg = std::fs::read_to_string(sb.cloudsdk_config().join("configurations/config_default"))
        .unwrap();
    assert!(cfg.contains(&format!("account = {STUB_ACCOUNT}")), "{cfg}");
    assert_eq!(
        std::fs::read_to_string(sb.cloudsdk_config().join("active_config")).unwrap(),
        "default"
    );
    let run = |extra: &[&str]| {
        sb.command("gcloud")
            .args(["config", "config-helper", "--format=json"])
            .args(extra)
            .skip_leak_check()
            .run()
    };
    let token = format!("ya29.stub-test-{}", random_hex(6));
    stub.set_token(&token, Duration::from_secs(120));
    let v = run(&[]).assert_ok().json();
    assert_eq!(v["credential"]["access_token"], token.as_str());
    assert_eq!(
        v["configuration"]["properties"]["core"]["account"],
        STUB_ACCOUNT
    );
    let expiry =
        humantime::parse_rfc3339(v["credential"]["token_expiry"].as_str().unwrap()).unwrap();
    let left = expiry.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(
        left > Duration::from_secs(100) && left <= Duration::from_secs(120),
        "{left:?}"
    );

    // --force-auth-refresh swaps in the refreshed token.
    let fresh = format!("ya29.stub-fresh-{}", random_hex(6));
    stub.set_refreshed_token(&fresh, Duration::from_secs(3600));
    assert_eq!(
        run(&[]).json()["credential"]["access_token"],
        token.as_str()
    );
    assert_eq!(
        run(&["--force-auth-refresh"]).json()["credential"]["access_token"],
        fresh.as_str()
    );
    assert_eq!(
        run(&[]).json()["credential"]["access_token"],
        fresh.as_str()
    );
    assert_eq!(stub.call_count(), 4);
    assert_eq!(stub.force_refresh_count(), 1);
    assert_eq!(
        stub.calls()[2],
        "config config-helper --format=json --force-auth-refresh"
    );

    // Warnings go to stderr before the JSON; stdout stays JSON.
    stub.warn(Some("WARNING: Python 3.8 is deprecated\n"));
    let out = run(&[]);
    out.assert_ok().assert_stderr_contains("WARNING: Python");
    let _ = out.json();
    stub.warn(None);

    stub.fail_no_active_account();
    let out = run(&[]);
    out.assert_code(1)
        .assert_stderr_contains("You do not currently have an active account selected.");
    assert!(out.stdout.is_empty());
    stub.fail_reauth_required();
    run(&[])
        .assert_code(1)
        .assert_stderr_contains("Reauthentication required");
    stub.succeed();
    run(&[]).assert_ok();

    stub.hang(Some(Duration::from_millis(500)));
    let out = run(&[]);
    assert!(out.elapsed >= Duration::from_millis(500));
    stub.hang(None);

    // print-access-token and unknown commands.
    let out = sb
        .command("gcloud")
        .args(["auth", "print-access-token"])
        .skip_leak_check()
        .run();
    assert_eq!(out.stdout.trim(), fresh);
    sb.command("gcloud")
        .args(["compute", "instances", "list"])
        .run()
        .assert_code(2);

    stub.write_config(None);
    let cfg = std::fs::read_to_string(sb.cloudsdk_config().join("configurations/config_default"))
        .unwrap();
    assert!(!cfg.contains("account"), "{cfg}");
}

#[test]
fn real_gcloud_service_account_against_the_fake() {
    let Some(gcloud) = real_gcloud("real_gcloud_service_account_against_the_fake") else {
        return;
    };
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let env = GcloudEnv::new(&sb, gcloud);
    env.use_fake(&fake);
    let key = fake.service_account(&fake.token_url());
    let file = sb.write_file("sa.json", &key.json);
    env.activate_service_account(&file);
    let v = env.config_helper();
    assert_eq!(
        v["configuration"]["properties"]["core"]["account"],
        key.client_email.as_str()
    );
    let token = v["credential"]["access_token"].as_str().unwrap();
    assert!(
        fake.issued_access_tokens().iter().any(|t| t == token),
        "{v}"
    );
    assert!(
        v["credential"]["token_expiry"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // gcloud wrote the config files the helper reads.
    let ini = std::fs::read_to_string(sb.cloudsdk_config().join("configurations/config_default"))
        .unwrap();
    assert!(
        ini.contains(&format!("account = {}", key.client_email)),
        "{ini}"
    );
    assert!(ini.contains("token_host"), "{ini}");
    assert!(!ini.contains("project ="), "never set core/project: {ini}");
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

#[test]
fn real_gcloud_authorized_user_against_the_fake() {
    let Some(gcloud) = real_gcloud("real_gcloud_authorized_user_against_the_fake") else {
        return;
    };
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let env = GcloudEnv::new(&sb, gcloud);
    env.use_fake(&fake);
    let user = fake.authorized_user(None);
    env.activate_authorized_user(&user);
    let v = env.config_helper();
    assert_eq!(
        v["configuration"]["properties"]["core"]["account"],
        user.email.as_str()
    );
    let token = v["credential"]["access_token"].as_str().unwrap();
    assert_eq!(fake.issued_access_tokens(), [token]);
    let req = &fake.requests_to("/token")[0];
    assert_eq!(req.form("grant_type"), Some("refresh_token"));
    assert_eq!(req.form("client_id"), Some(user.client_id.as_str()));
}

// ---------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------

#[test]
fn oci_layout_pieces_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    let tar = tar_one_file("a.txt", b"hello\n");
    std::fs::write(dir.path().join("x.tar.gz"), gzip_stored(&tar)).unwrap();
    let out = std::process::Command::new("tar")
        .arg("-xzOf")
        .arg(dir.path().join("x.tar.gz"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    assert_eq!(
        sha256_digest(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn registry_accepts_right_creds_only() {
    let password = format!("ya29.registry-selftest-{}", random_hex(8));
    let reg = Registry::start(&password);
    let img = reg.push_tiny_image(&format!("{E2E_REPO}:{E2E_TAG}"));
    let src = format!("docker://{}", img.reference);
    let inspect = |creds: Option<String>| {
        let mut args = vec!["inspect".to_owned(), "--tls-verify=false".to_owned()];
        if let Some(c) = creds {
            args.push("--creds".to_owned());
            args.push(c);
        }
        args.push(src.clone());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        reg.skopeo(&args)
    };
    let ok = inspect(Some(format!("{USERNAME}:{password}")));
    ok.assert_ok();
    assert_eq!(
        ok.json()["Digest"],
        img.manifest_digest.as_str(),
        "{}",
        ok.dump()
    );
    inspect(Some(format!("{USERNAME}:ya29.wrong-token-xyz")))
        .assert_failure()
        .assert_output_contains_ci("unauthorized");
    inspect(Some(format!("someone-else:{password}"))).assert_failure();
    inspect(None)
        .assert_failure()
        .assert_output_contains_ci("unauthorized");
}
