//! Workload Identity Federation (`external_account` files with file, URL and
//! executable sources), service-account impersonation (`impersonated_service_account`
//! files), and the built-in GitHub Actions mode — each against the local fake of
//! STS, IAM Credentials and a GitHub-like OIDC endpoint on 127.0.0.1.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use support::fake_google::{
    ACCESS_TOKEN_TYPE, FakeGoogle, Grant, JWT_TOKEN_TYPE, OIDC_PATH, STS_PATH, TOKEN_EXCHANGE,
};
use support::{Sandbox, SecretKind};

const HOST: &str = "europe-north1-docker.pkg.dev";
const PROVIDER: &str =
    "projects/123456789012/locations/global/workloadIdentityPools/ci-pool/providers/github";
const OTHER_PROVIDER: &str =
    "projects/123456789012/locations/global/workloadIdentityPools/ci-pool/providers/gitlab";
const SA: &str = "ci-puller@nav-ci.iam.gserviceaccount.com";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The STS audience of a provider.
fn audience(provider: &str) -> String {
    format!("//iam.googleapis.com/{provider}")
}

/// The `aud` claim the provider accepts by default (what GitHub is asked for).
fn token_aud(provider: &str) -> String {
    format!("https://iam.googleapis.com/{provider}")
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Writes an `external_account` file and points GOOGLE_APPLICATION_CREDENTIALS at it.
fn external_account(
    sb: &Sandbox,
    fake: &FakeGoogle,
    name: &str,
    provider: &str,
    credential_source: Value,
    sa: Option<&str>,
) -> PathBuf {
    let mut v = json!({
        "type": "external_account",
        "audience": audience(provider),
        "subject_token_type": JWT_TOKEN_TYPE,
        "token_url": fake.sts_url(),
        "credential_source": credential_source,
    });
    if let Some(sa) = sa {
        v["service_account_impersonation_url"] = json!(fake.impersonation_url(sa));
    }
    let path = sb.write_file(name, &serde_json::to_string_pretty(&v).unwrap());
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    path
}

/// The file google-github-actions/auth writes (same keys, same order).
fn github_actions_auth_file(sb: &Sandbox, fake: &FakeGoogle, sa: Option<&str>) -> PathBuf {
    let mut v = json!({
        "type": "external_account",
        "audience": audience(PROVIDER),
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": fake.sts_url(),
        "credential_source": {
            "url": format!("{}&audience={}", fake.oidc_request_url(), pct(&token_aud(PROVIDER))),
            "headers": {"Authorization": format!("Bearer {}", fake.github_request_token())},
            "format": {"type": "json", "subject_token_field_name": "value"}
        }
    });
    if let Some(sa) = sa {
        v["service_account_impersonation_url"] = json!(fake.impersonation_url(sa));
    }
    let path = sb.write_file(
        "gha-creds-1a2b3c4d5e6f.json",
        &serde_json::to_string(&v).unwrap(),
    );
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    path
}

/// The built-in GitHub mode's environment.
fn github_env(sb: &Sandbox, fake: &FakeGoogle, provider: &str) {
    sb.set_env("GAR_WORKLOAD_IDENTITY_PROVIDER", provider);
    sb.set_env("ACTIONS_ID_TOKEN_REQUEST_URL", fake.oidc_request_url());
    sb.set_env(
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        fake.github_request_token(),
    );
    sb.set_env("GAR_STS_URL", fake.sts_url());
    sb.set_env("GAR_IAM_CREDENTIALS_URL", fake.iam_url());
}

fn sorted_form(r: &support::fake_google::RecordedRequest) -> Vec<(String, String)> {
    let mut f = r.form.clone();
    f.sort();
    f
}

/// Asserts the STS request carried exactly the token-exchange fields.
#[track_caller]
fn assert_sts_form(
    r: &support::fake_google::RecordedRequest,
    subject: &str,
    aud: &str,
    options: Option<&str>,
) {
    assert_eq!(r.method, "POST");
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")),
        "{:?}",
        r.headers
    );
    let mut want: Vec<(String, String)> = [
        ("grant_type", TOKEN_EXCHANGE),
        ("audience", aud),
        ("scope", CLOUD_PLATFORM),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("subject_token", subject),
        ("subject_token_type", JWT_TOKEN_TYPE),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(o) = options {
        want.push(("options".into(), o.into()));
    }
    want.sort();
    assert_eq!(sorted_form(r), want);
}

fn entry_files(sb: &Sandbox) -> Vec<PathBuf> {
    std::fs::read_dir(sb.cache_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default()
}

fn entry_file(sb: &Sandbox) -> PathBuf {
    let files = entry_files(sb);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

fn read_entry(sb: &Sandbox) -> Value {
    serde_json::from_slice(&std::fs::read(entry_file(sb)).unwrap()).unwrap()
}

/// Simulates time passing: the cached token now expires at `at`.
fn set_expires_at(sb: &Sandbox, at: u64) {
    let path = entry_file(sb);
    let mut v = read_entry(sb);
    v["expires_at"] = json!(at);
    std::fs::write(&path, v.to_string()).unwrap();
}

/// No cache file holds anything but access tokens handed to docker.
#[track_caller]
fn assert_cache_holds_no_other_secret(sb: &Sandbox, not_these: &[String]) {
    for e in std::fs::read_dir(sb.cache_dir()).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for (kind, s) in support::secrets() {
            if kind != SecretKind::AccessToken {
                assert!(
                    !text.contains(&s),
                    "a {kind:?} is in {}",
                    e.path().display()
                );
            }
        }
        for s in not_these {
            assert!(
                !text.contains(s.as_str()),
                "{} holds an inner token",
                e.path().display()
            );
        }
    }
}

fn issued(fake: &FakeGoogle, grant: Grant) -> Vec<String> {
    fake.issued()
        .into_iter()
        .filter(|t| t.grant == grant)
        .map(|t| t.access_token)
        .collect()
}

// ---------------------------------------------------------------------------
// external_account: file sources
// ---------------------------------------------------------------------------

#[test]
fn a_text_token_file_is_exchanged_at_sts_with_exactly_the_token_exchange_fields() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    // A Kubernetes projected token, or `echo "$ID_TOKEN" > file` (trailing newline).
    let subject = fake.subject_token("system:serviceaccount:ci:runner", &token_aud(PROVIDER));
    let token_file = sb.write_file("k8s/token", &format!("{subject}\n"));
    external_account(
        &sb,
        &fake,
        "wif.json",
        PROVIDER,
        json!({"file": token_file}),
        None,
    );
    let secret = sb.get(HOST).secret();
    assert_eq!(issued(&fake, Grant::Sts), vec![secret.clone()]);
    let reqs = fake.requests_to(STS_PATH);
    assert_eq!(reqs.len(), 1);
    assert_sts_form(&reqs[0], &subject, &audience(PROVIDER), None);
    assert!(reqs[0].header("authorization").is_none());
    assert_eq!(fake.total_count(), 1, "only STS is called");
    // Cached: the next get makes no request.
    assert_eq!(sb.get(HOST).secret(), secret);
    assert_eq!(fake.count(STS_PATH), 1);
    let e = read_entry(&sb);
    assert_eq!(e["access_token"], json!(secret));
    assert_eq!(e["lifetime"], json!(3600));
    assert_cache_holds_no_other_secret(&sb, &[]);
}

#[test]
fn a_json_token_file_with_impersonation_yields_the_service_accounts_token() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    // GitLab CI: `id_tokens:` written as JSON by a step.
    let subject = fake.subject_token(
        "project_path:nav/app:ref_type:branch:ref:main",
        &token_aud(PROVIDER),
    );
    let token_file = sb.write_file(
        "gitlab/id_token.json",
        &json!({"id_token": subject, "other": "x"}).to_string(),
    );
    external_account(
        &sb,
        &fake,
        "wif.json",
        PROVIDER,
        json!({"file": token_file, "format": {"type": "json", "subject_token_field_name": "id_token"}}),
        Some(SA),
    );
    let secret = sb.get(HOST).secret();
    let sts = issued(&fake, Grant::Sts);
    assert_eq!(sts.len(), 1);
    assert_eq!(issued(&fake, Grant::Impersonation), vec![secret.clone()]);
    assert_ne!(
        secret, sts[0],
        "docker gets the service account's token, not the STS token"
    );
    assert_sts_form(
        &fake.requests_to(STS_PATH)[0],
        &subject,
        &audience(PROVIDER),
        None,
    );
    let iam = fake.requests_to(&FakeGoogle::impersonation_path(SA));
    assert_eq!(iam.len(), 1);
    assert_eq!(
        iam[0].header("authorization"),
        Some(format!("Bearer {}", sts[0]).as_str())
    );
    assert!(
        iam[0]
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = serde_json::from_str(&iam[0].body).unwrap();
    assert_eq!(
        body,
        json!({"scope": [CLOUD_PLATFORM], "lifetime": "3600s"})
    );
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
    let e = read_entry(&sb);
    assert_eq!(e["lifetime"], json!(3600));
    assert!(
        e["expires_at"]
            .as_u64()
            .unwrap()
            .abs_diff(support::now_unix() + 3600)
            < 30
    );
    assert_cache_holds_no_other_secret(&sb, &sts);
}

#[test]
fn token_lifetime_seconds_is_asked_for_and_user_project_goes_in_options() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let subject = fake.subject_token("sub-1", &token_aud(PROVIDER));
    let token_file = sb.write_file("token", &subject);
    let v = json!({
        "type": "external_account",
        "audience": audience(PROVIDER),
        "subject_token_type": JWT_TOKEN_TYPE,
        "token_url": fake.sts_url(),
        "workforce_pool_user_project": "nav-billing",
        "service_account_impersonation_url": fake.impersonation_url(SA),
        "service_account_impersonation": {"token_lifetime_seconds": 1200},
        "credential_source": {"file": token_file, "format": {"type": "text"}},
    });
    let path = sb.write_file("wif.json", &v.to_string());
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    sb.get(HOST).secret();
    assert_sts_form(
        &fake.requests_to(STS_PATH)[0],
        &subject,
        &audience(PROVIDER),
        Some(r#"{"userProject":"nav-billing"}"#),
    );
    let body: Value =
        serde_json::from_str(&fake.requests_to(&FakeGoogle::impersonation_path(SA))[0].body)
            .unwrap();
    assert_eq!(body["lifetime"], json!("1200s"));
    let e = read_entry(&sb);
    assert_eq!(e["lifetime"], json!(1200));
    assert!(
        e["expires_at"]
            .as_u64()
            .unwrap()
            .abs_diff(support::now_unix() + 1200)
            < 30
    );
}

#[test]
fn an_unreadable_subject_token_file_names_the_step_and_the_path() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let missing = sb.files_dir().join("var/run/secrets/tokens/gcp-token");
    let cred = external_account(
        &sb,
        &fake,
        "wif.json",
        PROVIDER,
        json!({"file": missing}),
        None,
    );
    let out = sb.get(HOST);
    out.assert_code(1);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.dump());
    assert_eq!(
        out.stdout.trim(),
        format!(
            "docker-credential-gar: external account credentials {}: reading the subject token from file {} failed: \
             the file does not exist; check credential_source.file: the file must exist and be readable when docker asks \
             (Kubernetes: the projected service-account token volume; GitLab: the step that writes the id_token)",
            cred.display(),
            missing.display()
        )
    );
    assert_eq!(fake.total_count(), 0);
    // An empty file is reported as such.
    std::fs::create_dir_all(missing.parent().unwrap()).unwrap();
    std::fs::write(&missing, "\n").unwrap();
    sb.get(HOST).assert_code(1).assert_stdout_contains(&format!(
        "file {} failed: the file is empty",
        missing.display()
    ));
    assert_eq!(fake.total_count(), 0);
}

// ---------------------------------------------------------------------------
// external_account: URL sources (google-github-actions/auth)
// ---------------------------------------------------------------------------

#[test]
fn the_google_github_actions_auth_file_with_a_service_account_works_end_to_end() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    github_actions_auth_file(&sb, &fake, Some(SA));
    let secret = sb.get(HOST).secret();
    // GitHub's endpoint: the request token as bearer, the provider's audience.
    let oidc = fake.requests_to(OIDC_PATH);
    assert_eq!(oidc.len(), 1);
    assert_eq!(
        oidc[0].header("authorization"),
        Some(format!("Bearer {}", fake.github_request_token()).as_str())
    );
    assert_eq!(oidc[0].query("audience"), Some(token_aud(PROVIDER)));
    assert_eq!(oidc[0].query("api-version").as_deref(), Some("2.0"));
    // STS got exactly GitHub's token.
    let gh = fake.oidc_issued();
    assert_eq!(gh.len(), 1);
    assert_sts_form(
        &fake.requests_to(STS_PATH)[0],
        &gh[0],
        &audience(PROVIDER),
        None,
    );
    // IAM got the STS token; docker got IAM's.
    let sts = issued(&fake, Grant::Sts);
    let iam = fake.requests_to(&FakeGoogle::impersonation_path(SA));
    assert_eq!(
        iam[0].header("authorization"),
        Some(format!("Bearer {}", sts[0]).as_str())
    );
    assert_eq!(issued(&fake, Grant::Impersonation), vec![secret]);
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
    assert_cache_holds_no_other_secret(&sb, &sts);
}

#[test]
fn the_google_github_actions_auth_file_without_a_service_account_hands_out_the_sts_token() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    github_actions_auth_file(&sb, &fake, None);
    let secret = sb.get(HOST).secret();
    assert_eq!(issued(&fake, Grant::Sts), vec![secret]);
    assert_eq!(fake.count(OIDC_PATH), 1);
    assert!(issued(&fake, Grant::Impersonation).is_empty());
}

#[test]
fn a_rejected_request_token_names_the_step_and_id_token_permission_without_the_token() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let cred = github_actions_auth_file(&sb, &fake, None);
    // The same file with a request token from another job.
    let stale = format!("stale-request-token-{}", support::random_hex(10));
    support::register_secret(SecretKind::ClientSecret, &stale);
    let text = std::fs::read_to_string(&cred)
        .unwrap()
        .replace(&fake.github_request_token(), &stale);
    std::fs::write(&cred, text).unwrap();
    let out = sb.get(HOST);
    out.assert_code(1)
        .assert_stdout_contains(&format!(
            "reading the subject token from URL {}{OIDC_PATH}?… failed: HTTP 401",
            fake.url()
        ))
        .assert_stdout_contains("permissions: id-token: write");
    assert!(
        !out.stdout.contains("audience="),
        "no query in the message: {}",
        out.stdout
    );
    assert_eq!(fake.count(STS_PATH), 0);
}

// ---------------------------------------------------------------------------
// external_account: executable sources
// ---------------------------------------------------------------------------

fn executable_response(subject: &str) -> String {
    json!({
        "version": 1,
        "success": true,
        "token_type": "urn:ietf:params:oauth:token-type:jwt",
        "id_token": subject,
        "expiration_time": support::now_unix() + 3600,
    })
    .to_string()
}

/// A script that counts its runs, records Google's variables and prints `response`
/// (also into the output file when it is given one).
fn write_token_script(sb: &Sandbox, response: &str) -> PathBuf {
    let script = sb.bin_dir().join("get-token");
    let root = sb.root().to_string_lossy().into_owned();
    support::write_executable(
        &script,
        &format!(
            "#!/bin/sh\n\
             echo run >> {runs}\n\
             {{ echo \"AUDIENCE=$GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE\"; echo \"TOKEN_TYPE=$GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE\"; \
             echo \"INTERACTIVE=$GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE\"; echo \"OUTPUT_FILE=$GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE\"; \
             echo \"IMPERSONATED=$GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL\"; echo \"ARGS=$*\"; }} > {env}\n\
             resp={resp}\n\
             if [ -n \"$GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE\" ]; then printf '%s' \"$resp\" > \"$GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE\"; fi\n\
             printf '%s\\n' \"$resp\"\n",
            runs = support::sh_quote(&format!("{root}/exec-runs")),
            env = support::sh_quote(&format!("{root}/exec-env")),
            resp = support::sh_quote(response),
        ),
    );
    script
}

fn runs(sb: &Sandbox) -> usize {
    std::fs::read_to_string(sb.root().join("exec-runs"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn an_executable_source_does_not_run_without_google_external_account_allow_executables() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let subject = fake.subject_token("exec-sub", &token_aud(PROVIDER));
    let script = write_token_script(&sb, &executable_response(&subject));
    external_account(
        &sb,
        &fake,
        "wif.json",
        PROVIDER,
        json!({"executable": {"command": format!("{} --flag", script.display())}}),
        None,
    );
    for value in [None, Some("0"), Some("true"), Some("1 ")] {
        if let Some(v) = value {
            sb.set_env("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", v);
        }
        let out = sb.get(HOST);
        out.assert_code(1)
            .assert_stdout_contains(&format!(
                "reading the subject token from executable {} failed: executable credential sources are not allowed",
                script.display()
            ))
            .assert_stdout_contains("set GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1");
    }
    assert_eq!(runs(&sb), 0, "the executable must not run");
    assert_eq!(fake.total_count(), 0);
}

#[test]
fn an_allowed_executable_gets_googles_variables_and_its_output_file_is_reused() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    sb.set_env("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1");
    let subject = fake.subject_token("exec-sub", &token_aud(PROVIDER));
    let script = write_token_script(&sb, &executable_response(&subject));
    let output_file = sb.files_dir().join("exec-output.json");
    external_account(
        &sb,
        &fake,
        "wif.json",
        PROVIDER,
        json!({"executable": {
            "command": format!("{} --flag value", script.display()),
            "timeout_millis": 10000,
            "output_file": output_file,
        }}),
        Some(SA),
    );
    let secret = sb.get(HOST).secret();
    assert_eq!(runs(&sb), 1);
    assert_eq!(issued(&fake, Grant::Impersonation), vec![secret]);
    assert_sts_form(
        &fake.requests_to(STS_PATH)[0],
        &subject,
        &audience(PROVIDER),
        None,
    );
    let env = std::fs::read_to_string(sb.root().join("exec-env")).unwrap();
    assert_eq!(
        env,
        format!(
            "AUDIENCE={}\nTOKEN_TYPE={JWT_TOKEN_TYPE}\nINTERACTIVE=0\nOUTPUT_FILE={}\nIMPERSONATED={SA}\nARGS=--flag value\n",
            audience(PROVIDER),
            output_file.display()
        )
    );
    // The cached token expires: the next get mints again from the still-valid
    // response in the output file, without running the executable.
    set_expires_at(&sb, support::now_unix() - 1);
    let again = sb.get(HOST).secret();
    assert_eq!(runs(&sb), 1);
    assert_eq!(fake.count(STS_PATH), 2);
    assert_eq!(issued(&fake, Grant::Impersonation).last(), Some(&again));
    // An expired response in the output file makes it run again.
    std::fs::write(
        &output_file,
        json!({"version":1,"success":true,"token_type":JWT_TOKEN_TYPE,"id_token":subject,"expiration_time":1})
            .to_string(),
    )
    .unwrap();
    set_expires_at(&sb, support::now_unix() - 1);
    sb.get(HOST).secret();
    assert_eq!(runs(&sb), 2);
}

#[test]
fn an_executable_reporting_failure_gives_its_code_and_message() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    sb.set_env("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1");
    let script = write_token_script(
        &sb,
        r#"{"version":1,"success":false,"code":"401","message":"Caller not authorized."}"#,
    );
    external_account(
        &sb,
        &fake,
        "wif.json",
        PROVIDER,
        json!({"executable": {"command": script}}),
        None,
    );
    sb.get(HOST).assert_code(1).assert_stdout_contains(&format!(
        "reading the subject token from executable {} failed: it reported failure: 401: Caller not authorized.",
        script.display()
    ));
    assert_eq!(runs(&sb), 1);
    assert_eq!(fake.total_count(), 0);
}

#[test]
fn a_hanging_executable_is_killed_with_its_children_at_timeout_millis() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    sb.set_env("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1");
    let pidfile = sb.root().join("child.pid");
    let script = sb.bin_dir().join("hang");
    support::write_executable(
        &script,
        &format!(
            "#!/bin/sh\nsleep 120 &\necho $! > {}\nwait\n",
            support::sh_quote(&pidfile.to_string_lossy())
        ),
    );
    external_account(
        &sb,
        &fake,
        "wif.json",
        PROVIDER,
        json!({"executable": {"command": script, "timeout_millis": 5000}}),
        None,
    );
    let out = sb.get(HOST);
    out.assert_code(1)
        .assert_stdout_contains("failed: it did not finish within 5 s and was stopped")
        .assert_stdout_contains("timeout_millis");
    assert!(out.elapsed >= Duration::from_secs(5), "{:?}", out.elapsed);
    assert!(out.elapsed < Duration::from_secs(15), "{:?}", out.elapsed);
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
    support::wait_for(
        "the executable's child to be killed",
        Duration::from_secs(5),
        || {
            let gone = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => true,
                // A zombie waiting for its reaper is dead too.
                Ok(stat) => stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z')),
            };
            gone.then_some(())
        },
    );
    assert_eq!(fake.total_count(), 0);
}

// ---------------------------------------------------------------------------
// Lifetimes: short STS tokens, long jobs
// ---------------------------------------------------------------------------

#[test]
fn a_five_minute_sts_token_is_reused_while_half_remains_then_reminted_with_a_fresh_subject_token() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    fake.set_sts_expires_in(300);
    github_actions_auth_file(&sb, &fake, None);
    let first = sb.get(HOST).secret();
    assert_eq!(sb.get(HOST).secret(), first, "just minted: reused");
    assert_eq!((fake.count(OIDC_PATH), fake.count(STS_PATH)), (1, 1));
    assert_eq!(read_entry(&sb)["lifetime"], json!(300));
    // 2 min 40 s later: 140 s of 300 left, under half: mint again.
    set_expires_at(&sb, support::now_unix() + 140);
    let second = sb.get(HOST).secret();
    assert_ne!(second, first);
    assert_eq!((fake.count(OIDC_PATH), fake.count(STS_PATH)), (2, 2));
    let gh = fake.oidc_issued();
    assert_eq!(gh.len(), 2);
    assert_ne!(gh[0], gh[1], "a fresh subject token for the re-mint");
    let sts = fake.requests_to(STS_PATH);
    assert_eq!(sts[0].form("subject_token"), Some(gh[0].as_str()));
    assert_eq!(sts[1].form("subject_token"), Some(gh[1].as_str()));
    assert_eq!(issued(&fake, Grant::Sts), vec![first, second.clone()]);
    assert_eq!(read_entry(&sb)["access_token"], json!(second));
}

#[test]
fn an_expired_one_hour_token_is_reminted_on_the_next_get_of_a_long_job() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    github_env(&sb, &fake, PROVIDER);
    sb.set_env("GAR_SERVICE_ACCOUNT", SA);
    let first = sb.get(HOST).secret();
    // Over an hour later, the token has expired.
    set_expires_at(&sb, support::now_unix() - 60);
    let second = sb.get(HOST).secret();
    assert_ne!(first, second);
    assert_eq!(issued(&fake, Grant::Impersonation), vec![first, second]);
    assert_eq!(
        (fake.count(OIDC_PATH), fake.count(STS_PATH)),
        (2, 2),
        "each mint starts from a fresh GitHub token"
    );
    let gh = fake.oidc_issued();
    assert_eq!(
        fake.requests_to(STS_PATH)[1].form("subject_token"),
        Some(gh[1].as_str())
    );
}

#[test]
fn an_expire_time_beyond_the_requested_lifetime_is_clamped_on_our_clock() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    github_env(&sb, &fake, PROVIDER);
    sb.set_env("GAR_SERVICE_ACCOUNT", SA);
    fake.set_iam_expire_offset(7200); // a server clock two hours ahead
    sb.get(HOST).secret();
    let e = read_entry(&sb);
    let now = support::now_unix();
    let exp = e["expires_at"].as_u64().unwrap();
    assert!(
        exp <= now + 3600 && exp + 30 >= now + 3600,
        "expires_at {exp}, now {now}"
    );
    assert!(e["lifetime"].as_u64().unwrap() <= 3600);
}

// ---------------------------------------------------------------------------
// Cache identity
// ---------------------------------------------------------------------------

#[test]
fn the_cache_follows_the_identity_not_the_rotating_subject_token() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let token_file = sb.files_dir().join("token");
    let write_token = |sub: &str, provider: &str| {
        std::fs::write(&token_file, fake.subject_token(sub, &token_aud(provider))).unwrap();
    };
    write_token("runner-a", PROVIDER);
    external_account(
        &sb,
        &fake,
        "wif.json",
        PROVIDER,
        json!({"file": token_file}),
        None,
    );
    let a = sb.get(HOST).secret();
    // The kubelet rotates the token (same workload): the cached token is still the answer.
    write_token("runner-a", PROVIDER);
    assert_eq!(sb.get(HOST).secret(), a);
    assert_eq!(fake.count(STS_PATH), 1);
    // Another workload's token at the same path: another identity.
    write_token("runner-b", PROVIDER);
    let b = sb.get(HOST).secret();
    assert_ne!(b, a);
    // Another audience (provider) in the same credentials file: another identity.
    write_token("runner-a", OTHER_PROVIDER);
    external_account(
        &sb,
        &fake,
        "wif.json",
        OTHER_PROVIDER,
        json!({"file": token_file}),
        None,
    );
    let c = sb.get(HOST).secret();
    assert!(c != a && c != b);
    // Impersonating a service account: another identity; another account: another one.
    external_account(
        &sb,
        &fake,
        "wif.json",
        OTHER_PROVIDER,
        json!({"file": token_file}),
        Some(SA),
    );
    let d = sb.get(HOST).secret();
    let other_sa = "deployer@nav-ci.iam.gserviceaccount.com";
    external_account(
        &sb,
        &fake,
        "wif.json",
        OTHER_PROVIDER,
        json!({"file": token_file}),
        Some(other_sa),
    );
    let e = sb.get(HOST).secret();
    let all = [&a, &b, &c, &d, &e];
    for (i, x) in all.iter().enumerate() {
        for y in &all[i + 1..] {
            assert_ne!(x, y);
        }
    }
    assert_eq!(fake.count(STS_PATH), 5);
    assert_eq!(issued(&fake, Grant::Impersonation), vec![d, e]);
    // Back to the first identity: its own token, still cached.
    write_token("runner-a", PROVIDER);
    external_account(
        &sb,
        &fake,
        "wif.json",
        PROVIDER,
        json!({"file": token_file}),
        None,
    );
    assert_eq!(sb.get(HOST).secret(), a);
    assert_eq!(fake.count(STS_PATH), 5);
}

// ---------------------------------------------------------------------------
// The built-in GitHub Actions mode
// ---------------------------------------------------------------------------

#[test]
fn the_builtin_github_mode_runs_the_whole_flow_without_a_credentials_file() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    github_env(&sb, &fake, PROVIDER);
    // It comes before GOOGLE_APPLICATION_CREDENTIALS (explicit opt-in).
    let key = fake.service_account(&fake.token_url());
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("sa.json", &key.json),
    );
    let secret = sb.get(HOST).secret();
    assert_eq!(issued(&fake, Grant::Sts), vec![secret]);
    assert_eq!(fake.count("/token"), 0);
    let oidc = &fake.requests_to(OIDC_PATH)[0];
    assert_eq!(
        oidc.url,
        format!(
            "{OIDC_PATH}?api-version=2.0&audience={}",
            pct(&token_aud(PROVIDER))
        )
    );
    assert_eq!(
        oidc.header("authorization"),
        Some(format!("Bearer {}", fake.github_request_token()).as_str())
    );
    assert_sts_form(
        &fake.requests_to(STS_PATH)[0],
        &fake.oidc_issued()[0],
        &audience(PROVIDER),
        None,
    );
    assert_cache_holds_no_other_secret(&sb, &[]);
}

#[test]
fn the_builtin_github_mode_impersonates_gar_service_account_and_accepts_the_full_provider_url() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    github_env(&sb, &fake, &audience(PROVIDER));
    sb.set_env("GAR_SERVICE_ACCOUNT", SA);
    let secret = sb.get(HOST).secret();
    assert_eq!(issued(&fake, Grant::Impersonation), vec![secret]);
    let sts = issued(&fake, Grant::Sts);
    assert_sts_form(
        &fake.requests_to(STS_PATH)[0],
        &fake.oidc_issued()[0],
        &audience(PROVIDER),
        None,
    );
    let iam = fake.requests_to(&FakeGoogle::impersonation_path(SA));
    assert_eq!(iam.len(), 1);
    assert_eq!(
        iam[0].header("authorization"),
        Some(format!("Bearer {}", sts[0]).as_str())
    );
    let body: Value = serde_json::from_str(&iam[0].body).unwrap();
    assert_eq!(
        body,
        json!({"scope": [CLOUD_PLATFORM], "lifetime": "3600s"})
    );
    assert_cache_holds_no_other_secret(&sb, &sts);
    // GAR_TOKEN_SOURCE=github forces it; with the same identity the cached token answers.
    sb.set_env("GAR_TOKEN_SOURCE", "github");
    assert_eq!(
        sb.get(HOST).secret(),
        issued(&fake, Grant::Impersonation)[0]
    );
    assert_eq!(fake.count(OIDC_PATH), 1);
}

#[test]
fn the_builtin_github_mode_without_id_token_permission_says_to_add_it() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    sb.set_env("GAR_WORKLOAD_IDENTITY_PROVIDER", PROVIDER);
    sb.set_env("GCE_METADATA_HOST", fake.metadata_host());
    let out = sb.get(HOST);
    out.assert_code(1);
    assert_eq!(
        out.stdout.trim(),
        format!(
            "docker-credential-gar: GAR_WORKLOAD_IDENTITY_PROVIDER={PROVIDER}: ACTIONS_ID_TOKEN_REQUEST_URL and \
             ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set, so GitHub offers no ID token; add `permissions: id-token: write` \
             to the workflow or job (outside GitHub Actions, unset GAR_WORKLOAD_IDENTITY_PROVIDER)"
        )
    );
    assert_eq!(fake.total_count(), 0, "no fallback to another source");
    // A project ID instead of its number is caught before any request.
    sb.set_env(
        "GAR_WORKLOAD_IDENTITY_PROVIDER",
        "projects/nav-ci/locations/global/workloadIdentityPools/ci-pool/providers/github",
    );
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("project NUMBER");
    // Forcing the mode without the variable.
    sb.remove_env("GAR_WORKLOAD_IDENTITY_PROVIDER");
    sb.set_env("GAR_TOKEN_SOURCE", "github");
    sb.get(HOST).assert_code(1).assert_stdout_contains(
        "GAR_TOKEN_SOURCE=github: GAR_WORKLOAD_IDENTITY_PROVIDER is not set",
    );
    assert_eq!(fake.total_count(), 0);
}

// ---------------------------------------------------------------------------
// Errors name the step and the fix
// ---------------------------------------------------------------------------

#[test]
fn a_403_on_impersonation_names_the_roles_to_grant() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    github_env(&sb, &fake, PROVIDER);
    sb.set_env("GAR_SERVICE_ACCOUNT", SA);
    fake.set_iam_permission_denied(true);
    let out = sb.get(HOST);
    out.assert_code(1);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.dump());
    out.assert_stdout_contains(&format!(
        "GitHub Actions OIDC for {PROVIDER} as {SA}: impersonating {SA} failed: {} answered HTTP 403 PERMISSION_DENIED \
         (Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).)",
        fake.impersonation_url(SA)
    ))
    .assert_stdout_contains(&format!(
        "the workload identity principal lacks roles/iam.workloadIdentityUser (or roles/iam.serviceAccountTokenCreator) on {SA}"
    ));
    assert_eq!(fake.count(STS_PATH), 1);
    assert!(entry_files(&sb).is_empty(), "nothing cached on failure");
}

#[test]
fn sts_rejections_name_the_step_and_the_provider_settings() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    // A token minted for another audience: invalid_grant.
    let wrong_aud = fake.subject_token("runner-a", &token_aud(OTHER_PROVIDER));
    let token_file = sb.write_file("token", &wrong_aud);
    let cred = external_account(
        &sb,
        &fake,
        "wif.json",
        PROVIDER,
        json!({"file": token_file}),
        None,
    );
    let out = sb.get(HOST);
    out.assert_code(1);
    assert_eq!(
        out.stdout.trim(),
        format!(
            "docker-credential-gar: external account credentials {}: exchanging the subject token at STS failed: {} \
             answered HTTP 400 invalid_grant (The audience in ID Token [{}] does not match the expected audience.); \
             the workload identity provider rejected the subject token: its attribute condition or allowed audiences \
             do not match this token (audience {}), or the token has expired",
            cred.display(),
            fake.sts_url(),
            token_aud(OTHER_PROVIDER),
            audience(PROVIDER)
        )
    );
    // The attribute condition rejects the identity: unauthorized_client.
    fake.deny_subject("runner-b");
    std::fs::write(
        &token_file,
        fake.subject_token("runner-b", &token_aud(PROVIDER)),
    )
    .unwrap();
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("HTTP 400 unauthorized_client (The given credential is rejected by the attribute condition.)")
        .assert_stdout_contains("the provider's attribute condition rejects this identity");
    // A provider that does not exist: invalid_target.
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&cred).unwrap()).unwrap();
    let mut v = v;
    v["audience"] = json!(
        "//iam.googleapis.com/projects/nav-ci/locations/global/workloadIdentityPools/p/providers/x"
    );
    std::fs::write(&cred, v.to_string()).unwrap();
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("HTTP 400 invalid_target")
        .assert_stdout_contains("is not an existing, enabled workload identity provider");
    assert!(issued(&fake, Grant::Sts).is_empty());
}

#[test]
fn aws_and_certificate_sources_are_reported_as_not_supported() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let aws = json!({
        "environment_id": "aws1",
        "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
        "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
        "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
    });
    let cred = external_account(&sb, &fake, "aws.json", PROVIDER, aws, None);
    let out = sb.get(HOST);
    out.assert_code(1);
    assert_eq!(out.stdout.lines().count(), 1);
    out.assert_stdout_contains(&format!(
        "GOOGLE_APPLICATION_CREDENTIALS points to {}, which uses an AWS credential source (environment_id `aws1`), \
         which docker-credential-gar does not support",
        cred.display()
    ))
    .assert_stdout_contains("gcloud auth login --cred-file");
    external_account(
        &sb,
        &fake,
        "x509.json",
        PROVIDER,
        json!({"certificate": {"use_default_certificate_config": true}}),
        None,
    );
    sb.get(HOST).assert_code(1).assert_stdout_contains(
        "X.509 certificate credential source, which docker-credential-gar does not support",
    );
    assert_eq!(fake.total_count(), 0);
}

// ---------------------------------------------------------------------------
// impersonated_service_account files
// ---------------------------------------------------------------------------

#[test]
fn impersonated_service_account_from_an_authorized_user_sends_delegates() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    // What `gcloud auth application-default login --impersonate-service-account` writes:
    // source credentials without token_uri, so GAR_TOKEN_URL names the endpoint here.
    let user = fake.authorized_user(None);
    let mut source: Value = serde_json::from_str(&user.json).unwrap();
    source.as_object_mut().unwrap().remove("universe_domain");
    let delegate = "delegate@nav-ci.iam.gserviceaccount.com";
    let v = json!({
        "delegates": [delegate],
        "service_account_impersonation_url": fake.impersonation_url(SA),
        "source_credentials": source,
        "type": "impersonated_service_account"
    });
    std::fs::write(
        sb.cloudsdk_config()
            .join("application_default_credentials.json"),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
    sb.set_env("GAR_TOKEN_URL", fake.token_url());
    let secret = sb.get(HOST).secret();
    let user_token = issued(&fake, Grant::RefreshToken);
    assert_eq!(user_token.len(), 1);
    assert_eq!(
        fake.requests_to("/token")[0].form("refresh_token"),
        Some(user.refresh_token.as_str())
    );
    let iam = fake.requests_to(&FakeGoogle::impersonation_path(SA));
    assert_eq!(iam.len(), 1);
    assert_eq!(
        iam[0].header("authorization"),
        Some(format!("Bearer {}", user_token[0]).as_str())
    );
    let body: Value = serde_json::from_str(&iam[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "scope": [CLOUD_PLATFORM],
            "lifetime": "3600s",
            "delegates": [format!("projects/-/serviceAccounts/{delegate}")]
        })
    );
    assert_eq!(issued(&fake, Grant::Impersonation), vec![secret.clone()]);
    assert_cache_holds_no_other_secret(&sb, &user_token);
    // Cached under its own identity.
    assert_eq!(sb.get(HOST).secret(), secret);
    assert_eq!(fake.count("/token"), 1);
}

#[test]
fn impersonated_service_account_from_a_service_account_key() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let key = fake.service_account(&fake.token_url());
    let v = json!({
        "type": "impersonated_service_account",
        "service_account_impersonation_url": fake.impersonation_url(SA),
        "delegates": [],
        "source_credentials": serde_json::from_str::<Value>(&key.json).unwrap(),
    });
    let path = sb.write_file("imp.json", &v.to_string());
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    let secret = sb.get(HOST).secret();
    let key_token = issued(&fake, Grant::JwtBearer);
    assert_eq!(key_token.len(), 1);
    assert_eq!(
        fake.requests_to("/token")[0].form("grant_type"),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let iam = &fake.requests_to(&FakeGoogle::impersonation_path(SA))[0];
    assert_eq!(
        iam.header("authorization"),
        Some(format!("Bearer {}", key_token[0]).as_str())
    );
    let body: Value = serde_json::from_str(&iam.body).unwrap();
    assert_eq!(
        body,
        json!({"scope": [CLOUD_PLATFORM], "lifetime": "3600s"})
    );
    assert_eq!(issued(&fake, Grant::Impersonation), vec![secret]);
    // A 403 here names the token-creator role first.
    fake.set_iam_permission_denied(true);
    set_expires_at(&sb, 0);
    sb.get(HOST).assert_code(1).assert_stdout_contains(&format!(
        "impersonated by service account {} (key file {}): impersonating {SA} failed",
        key.client_email,
        path.display()
    ))
    .assert_stdout_contains(&format!(
        "the source credentials lack roles/iam.serviceAccountTokenCreator (or roles/iam.workloadIdentityUser for a federated principal) on {SA}"
    ));
}

#[test]
fn impersonation_from_an_unsupported_source_type_is_a_clear_error() {
    let sb = Sandbox::new();
    let v = json!({
        "type": "impersonated_service_account",
        "service_account_impersonation_url": format!("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"),
        "source_credentials": {"type": "external_account_authorized_user"},
    });
    let path = sb.write_file("imp.json", &v.to_string());
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    sb.get(HOST).assert_code(1).assert_stdout_contains(
        "has source_credentials of type `external_account_authorized_user`, which docker-credential-gar cannot impersonate from",
    );
}

#[test]
fn an_impersonation_url_that_names_no_account_is_a_clear_error() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let token_file = sb.write_file("token", &fake.subject_token("s", &token_aud(PROVIDER)));
    let cred = external_account(
        &sb,
        &fake,
        "wif.json",
        PROVIDER,
        json!({"file": token_file}),
        None,
    );
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&cred).unwrap()).unwrap();
    v["service_account_impersonation_url"] =
        json!(format!("{}/v1/projects/-/serviceAccounts/", fake.url()));
    std::fs::write(&cred, v.to_string()).unwrap();
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("is not a …/serviceAccounts/<email>:generateAccessToken URL");
    assert_eq!(fake.total_count(), 0);
}

#[test]
fn plain_http_sts_is_refused_off_loopback() {
    let sb = Sandbox::new();
    let token_file = sb.write_file("token", "header.payload.sig");
    let v = json!({
        "type": "external_account",
        "audience": audience(PROVIDER),
        "subject_token_type": JWT_TOKEN_TYPE,
        "token_url": "http://sts.example.test/v1/token",
        "credential_source": {"file": token_file},
    });
    let path = sb.write_file("wif.json", &v.to_string());
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("exchanging the subject token at STS failed: refusing to send credentials to http://sts.example.test/v1/token")
        .assert_stdout_contains("fix token_url in the credentials file");
}

#[test]
fn client_credentials_go_in_basic_auth_and_replace_the_user_project_option() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let subject = fake.subject_token("sub-1", &token_aud(PROVIDER));
    let token_file = sb.write_file("token", &subject);
    let secret = format!("fake-client-secret-{}", support::random_hex(8));
    support::register_secret(SecretKind::ClientSecret, &secret);
    let v = json!({
        "type": "external_account",
        "audience": audience(PROVIDER),
        "subject_token_type": JWT_TOKEN_TYPE,
        "token_url": fake.sts_url(),
        "workforce_pool_user_project": "nav-billing",
        "client_id": "wif-client",
        "client_secret": secret,
        "credential_source": {"file": token_file},
    });
    let path = sb.write_file("wif.json", &v.to_string());
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    sb.get(HOST).secret();
    let req = &fake.requests_to(STS_PATH)[0];
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("wif-client:{secret}"));
    assert_eq!(
        req.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_sts_form(req, &subject, &audience(PROVIDER), None);
    assert_cache_holds_no_other_secret(&sb, &[]);
}

#[test]
fn on_github_without_the_provider_variable_the_summary_says_so() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    sb.set_env("PATH", sb.bin_dir());
    sb.set_env("ACTIONS_ID_TOKEN_REQUEST_URL", fake.oidc_request_url());
    sb.set_env(
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        fake.github_request_token(),
    );
    sb.get(HOST).assert_code(1).assert_stdout_contains(
        "tried: GOOGLE_OAUTH_ACCESS_TOKEN is not set; GAR_WORKLOAD_IDENTITY_PROVIDER is not set \
             (GitHub offers ID tokens to this job); GOOGLE_APPLICATION_CREDENTIALS is not set;",
    );
    assert_eq!(fake.total_count(), 0);
}
