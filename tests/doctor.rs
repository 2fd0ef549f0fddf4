//! `doctor`, as a user runs it: the report and exit code for each state of the
//! token sources (nothing configured, gcloud logged out / logged in, a bad key
//! file, a good one, the metadata server reachable), of docker's config (routed
//! to gar, to gcloud, credsStore), of PATH, the cache and stored logins; and the
//! same as JSON. Never a token in any of it (the support leak check runs on
//! every output).

mod support;

use serde_json::{Value, json};
use support::fake_google::FakeGoogle;
use support::gcloud::{GcloudStub, STUB_ACCOUNT};
use support::{Output, Sandbox};

const GAR: &str = "europe-north1-docker.pkg.dev";

/// Puts a symlink to the binary under test first on the sandbox's PATH (as an
/// install into ~/.local/bin would).
fn link_helper_on_path(sb: &Sandbox) {
    let link = sb.bin_dir().join("docker-credential-gar");
    std::os::unix::fs::symlink(support::BIN, &link).expect("symlink the helper");
    sb.prepend_path(&sb.bin_dir());
}

/// A sandbox whose PATH is only the helper's directory (no gcloud), with docker
/// configured for the default host.
fn bare() -> Sandbox {
    bare_with_path("/nonexistent")
}

fn bare_with_path(path: &str) -> Sandbox {
    let sb = Sandbox::with_path(path);
    link_helper_on_path(&sb);
    sb.helper().arg("configure-docker").run().assert_ok();
    sb
}

fn doctor(sb: &Sandbox, args: &[&str]) -> Output {
    sb.helper().arg("doctor").args(args).run()
}

fn doctor_json(sb: &Sandbox, args: &[&str]) -> (Output, Value) {
    let out = sb.helper().arg("doctor").arg("--json").args(args).run();
    let v = out.json();
    (out, v)
}

fn source(v: &Value, order: u64) -> &Value {
    v["token_sources"]["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["order"] == order)
        .expect("source by order")
}

#[test]
fn nothing_configured_says_so_source_by_source_and_fails() {
    let sb = bare();
    let out = doctor(&sb, &[]);
    out.assert_code(1);
    let s = &out.stdout;
    for want in [
        &format!("docker-credential-gar {}", env!("CARGO_PKG_VERSION")),
        "1. GOOGLE_OAUTH_ACCESS_TOKEN: not configured",
        "2. GitHub Actions OIDC: not configured\n      GAR_WORKLOAD_IDENTITY_PROVIDER is not set",
        "3. GOOGLE_APPLICATION_CREDENTIALS: not configured",
        "4. gcloud CLI: not configured\n      gcloud is not on PATH",
        "5. ADC file: not configured",
        &format!(
            "6. GCE metadata server: configured\n      127.0.0.1:{}",
            sb.metadata_port()
        ),
        &format!("chosen: metadata server 127.0.0.1:{}", sb.metadata_port()),
        &format!("  {GAR}: credHelpers -> gar; PROBLEM"),
        "mint\n  FAILED: no Google credentials found",
        "result: PROBLEM",
        "run `gcloud auth login`, or set GOOGLE_APPLICATION_CREDENTIALS",
    ] {
        assert!(s.contains(want), "lacks {want:?}\n{}", out.dump());
    }
    assert_eq!(out.stderr, "");

    let (_, v) = doctor_json(&sb, &[]);
    assert_eq!(v["ok"], false);
    assert_eq!(source(&v, 4)["detail"], "gcloud is not on PATH");
    assert_eq!(source(&v, 4)["configured"], false);
    assert_eq!(v["mint"]["ok"], false);
    assert_eq!(v["hosts"][0]["host"], GAR);
    assert_eq!(v["hosts"][0]["routed_to_gar"], true);
    assert_eq!(
        v["hosts"][0]["route"],
        json!({"via": "credHelpers", "helper": "gar"})
    );
}

#[test]
fn gcloud_logged_out_names_the_fix_and_logged_in_names_the_account() {
    // The stub is a shell script: it needs the system PATH (it comes first).
    let sb = bare_with_path(&std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()));
    let stub = GcloudStub::install(&sb);
    stub.write_config(None);
    let out = doctor(&sb, &[]);
    out.assert_code(1);
    assert!(
        out.stdout.contains(&format!(
            "4. gcloud CLI: not usable\n      installed, but logged out: no active account in {}\n      fix: run `gcloud auth login`",
            sb.cloudsdk_config().display()
        )),
        "{}",
        out.dump()
    );

    stub.write_config(Some(STUB_ACCOUNT));
    let out = doctor(&sb, &[]);
    out.assert_code(0);
    assert!(
        out.stdout.contains(&format!(
            "4. gcloud CLI: configured\n      {} with configuration default in {}\n      identity: account {STUB_ACCOUNT}",
            stub.path().display(),
            sb.cloudsdk_config().display()
        )),
        "{}",
        out.dump()
    );
    assert!(out.stdout.contains(&format!(
        "chosen: gcloud account {STUB_ACCOUNT}, because it is the first configured source"
    )));
    assert!(
        out.stdout.contains("  OK: gcloud account"),
        "{}",
        out.dump()
    );
    assert!(out.stdout.contains(&format!(
        "result: OK: docker pull from {GAR} will get credentials"
    )));
    assert_eq!(stub.call_count(), 1, "one gcloud run for the mint");

    // --offline runs no gcloud.
    doctor(&sb, &["--offline"]).assert_code(0);
    assert_eq!(stub.call_count(), 1);
}

#[test]
fn a_bad_key_file_is_configured_but_not_usable_and_fails_with_the_fix() {
    let sb = bare();
    let key = sb.write_file("key.json", "{\"type\": \"service_account\", ");
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &key);
    let out = doctor(&sb, &[]);
    out.assert_code(1);
    let want = format!(
        "3. GOOGLE_APPLICATION_CREDENTIALS: configured, NOT usable\n      GOOGLE_APPLICATION_CREDENTIALS points to {}, which is not valid JSON",
        key.display()
    );
    assert!(out.stdout.contains(&want), "{}", out.dump());
    assert!(
        out.stdout
            .contains("fix: fix the file or unset GOOGLE_APPLICATION_CREDENTIALS")
    );
    assert!(
        out.stdout
            .contains("chosen: none: GOOGLE_APPLICATION_CREDENTIALS points to")
    );

    let (_, v) = doctor_json(&sb, &[]);
    assert_eq!(source(&v, 3)["usable"], false);
    assert!(v["token_sources"]["chosen"].is_null());
    assert!(
        v["problems"][0]
            .as_str()
            .unwrap()
            .contains("is not valid JSON")
    );
}

#[test]
fn a_good_key_file_names_the_service_account_and_mints() {
    let fake = FakeGoogle::start();
    let sb = bare();
    let sa = fake.service_account(&fake.token_url());
    let key = sb.write_file("sa.json", &fake.service_account_json(&fake.token_url()));
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &key);
    let out = doctor(&sb, &[]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("3. GOOGLE_APPLICATION_CREDENTIALS: configured\n"),
        "{}",
        out.dump()
    );
    let (_, v) = doctor_json(&sb, &[]);
    let identity = source(&v, 3)["identity"].as_str().unwrap().to_owned();
    assert!(
        identity.starts_with("service account ") && identity.ends_with(".iam.gserviceaccount.com"),
        "{identity}"
    );
    assert_eq!(v["mint"]["ok"], true);
    assert_eq!(v["mint"]["identity"], identity.as_str());
    let valid = v["mint"]["valid_for_secs"].as_u64().unwrap();
    assert!((3590..=3600).contains(&valid), "{valid}");
    assert!(fake.count("/token") >= 2);
    let _ = sa;
}

#[test]
fn metadata_reachable_is_chosen_and_names_its_service_account() {
    let fake = FakeGoogle::start();
    let sb = bare();
    sb.set_env("GCE_METADATA_HOST", fake.metadata_host());
    sb.set_env("GCE_METADATA_IP", fake.metadata_host());
    let out = doctor(&sb, &[]);
    out.assert_code(0);
    assert!(
        out.stdout.contains(&format!(
            "chosen: metadata server {}, because no source before it is configured",
            fake.metadata_host()
        )),
        "{}",
        out.dump()
    );
    assert!(
        out.stdout.contains(&format!(
            "  identity: service account {}",
            fake.metadata_email()
        )),
        "{}",
        out.dump()
    );
    let before = fake.total_count();
    doctor(&sb, &["--offline"]).assert_code(0);
    assert_eq!(fake.total_count(), before, "--offline made a request");
}

#[test]
fn docker_config_pointing_at_gcloud_or_another_store_is_a_problem_with_the_fix() {
    let sb = Sandbox::with_path("/nonexistent");
    link_helper_on_path(&sb);
    sb.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.doctor-env-token-1234");
    std::fs::create_dir_all(sb.docker_config()).unwrap();
    std::fs::write(
        sb.docker_config_json(),
        json!({"credHelpers": {GAR: "gcloud"}, "credsStore": "desktop"}).to_string(),
    )
    .unwrap();
    let out = doctor(&sb, &["--registry", GAR, "--registry", "us-docker.pkg.dev"]);
    out.assert_code(1);
    for want in [
        "credsStore:    desktop".to_owned(),
        format!("  {GAR}: credHelpers -> gcloud; PROBLEM"),
        format!("docker asks docker-credential-gcloud for {GAR} (credHelpers), not docker-credential-gar; run `docker-credential-gar configure-docker --registries {GAR}`"),
        "docker asks docker-credential-desktop for us-docker.pkg.dev (credsStore, no credHelpers entry)".to_owned(),
    ] {
        assert!(out.stdout.contains(&want), "lacks {want:?}\n{}", out.dump());
    }

    // configure-docker switches gcloud to gar; --creds-store makes every host ours.
    sb.helper()
        .args(["configure-docker", "--creds-store"])
        .run()
        .assert_ok();
    sb.helper().arg("configure-docker").run().assert_ok();
    let (out, v) = doctor_json(&sb, &["--registry", GAR, "--registry", "us-docker.pkg.dev"]);
    out.assert_code(0);
    assert_eq!(
        v["hosts"][0]["route"],
        json!({"via": "credHelpers", "helper": "gar"})
    );
    assert_eq!(
        v["hosts"][1]["route"],
        json!({"via": "credsStore", "helper": "gar"})
    );
    assert_eq!(v["ok"], true);
}

#[test]
fn not_on_path_is_a_problem() {
    let sb = Sandbox::with_path("/nonexistent");
    sb.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.doctor-env-token-5678");
    sb.helper().arg("configure-docker").run().assert_ok();
    let out = doctor(&sb, &[]);
    out.assert_code(1);
    assert!(out.stdout.contains("on PATH:       NO"), "{}", out.dump());
    let sb2 = bare();
    sb2.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.doctor-env-token-5678");
    let out2 = doctor(&sb2, &[]);
    out2.assert_code(0);
    assert!(
        out2.stdout.contains(&format!(
            "on PATH:       yes, {} (this binary)",
            sb2.bin_dir().join("docker-credential-gar").display()
        )),
        "{}",
        out2.dump()
    );
    assert!(
        out.stdout
            .contains("docker-credential-gar is not on PATH, so docker cannot run it")
    );
}

#[test]
fn cache_entries_show_their_lifetime_and_stored_logins_their_user_never_secrets() {
    let fake = FakeGoogle::start();
    let sb = bare();
    let key = sb.write_file("sa.json", &fake.service_account_json(&fake.token_url()));
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &key);
    let token = sb.get(GAR).secret();
    sb.helper()
        .arg("store")
        .stdin(
            json!({"ServerURL": "ghcr.io", "Username": "octo", "Secret": "octo-pw-secret-1"})
                .to_string(),
        )
        .run()
        .assert_ok();

    let out = doctor(&sb, &["--offline"]);
    out.assert_code(0);
    assert!(!out.stdout.contains(&token) && !out.stdout.contains("octo-pw"));
    assert!(
        out.stdout.contains("min left [chosen source]"),
        "{}",
        out.dump()
    );
    assert!(
        out.stdout
            .contains("  ghcr.io: user octo in the file store"),
        "{}",
        out.dump()
    );

    let (_, v) = doctor_json(&sb, &["--offline"]);
    let entries = v["cache"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["chosen_source"], true);
    assert_eq!(entries[0]["reusable"], true);
    let left = entries[0]["remaining_secs"].as_u64().unwrap();
    assert!((3500..=3600).contains(&left), "{left}");
    assert_eq!(v["stored"][0]["host"], "ghcr.io");
    assert_eq!(v["stored"][0]["username"], "octo");
    assert!(!v.to_string().contains(&token));
    assert!(v["mint"].is_null());
}

#[test]
fn doctor_usage_and_help() {
    let sb = bare();
    let out = doctor(&sb, &["--help"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .starts_with("Usage: docker-credential-gar doctor")
    );
    let out = doctor(&sb, &["--bogus"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("docker-credential-gar doctor: invalid option '--bogus'")
            && out.stderr.contains("usage: docker-credential-gar doctor"),
        "{}",
        out.dump()
    );
    assert_eq!(out.stderr.lines().count(), 1);
}

#[test]
fn after_a_migration_from_gcloud_other_google_hosts_are_a_note_not_a_problem() {
    // What `gcloud auth configure-docker` leaves: many Google hosts on gcloud.
    let fake = FakeGoogle::start();
    let sb = Sandbox::with_path("/nonexistent");
    link_helper_on_path(&sb);
    std::fs::write(
        sb.docker_config_json(),
        r#"{"credHelpers":{"gcr.io":"gcloud","eu.gcr.io":"gcloud","us-docker.pkg.dev":"gcloud","europe-north1-docker.pkg.dev":"gcloud"}}"#,
    )
    .unwrap();
    sb.helper().arg("configure-docker").run().assert_ok();
    let key = fake.service_account(&fake.token_url());
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("sa.json", &key.json),
    );
    let out = doctor(&sb, &[]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains(&format!("  {GAR}: credHelpers -> gar; OK")),
        "{}",
        out.dump()
    );
    assert!(
        out.stdout.contains(
            "eu.gcr.io, gcr.io, us-docker.pkg.dev still go to another credential helper (credHelpers); \
             to use docker-credential-gar for them too, run `docker-credential-gar configure-docker --registries eu.gcr.io,gcr.io,us-docker.pkg.dev`"
        ),
        "{}",
        out.dump()
    );
    assert!(!out.stdout.contains("PROBLEM"), "{}", out.dump());
    // Asking about one of them explicitly is still a problem, with the fix.
    let out = doctor(&sb, &["--registry", "gcr.io"]);
    out.assert_code(1)
        .assert_stdout_contains("docker asks docker-credential-gcloud for gcr.io");
}
