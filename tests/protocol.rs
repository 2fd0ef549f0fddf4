//! The docker-credential-helpers protocol, from the outside: every server form,
//! every not-found case, empty input, store / erase / list / version / usage.

mod support;

use support::Sandbox;

const TOKEN: &str = "ya29.env-token-for-protocol-tests";

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    support::register_secret(support::SecretKind::AccessToken, TOKEN);
    sb.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", TOKEN);
    sb
}

#[test]
fn get_answers_every_server_form_with_the_trimmed_input_as_server_url() {
    let sb = sandbox();
    for (input, server_url) in [
        (
            "europe-north1-docker.pkg.dev",
            "europe-north1-docker.pkg.dev",
        ),
        (
            "https://europe-north1-docker.pkg.dev",
            "https://europe-north1-docker.pkg.dev",
        ),
        (
            "europe-north1-docker.pkg.dev/",
            "europe-north1-docker.pkg.dev/",
        ),
        (
            "https://europe-north1-docker.pkg.dev/v2/",
            "https://europe-north1-docker.pkg.dev/v2/",
        ),
        (
            "europe-north1-docker.pkg.dev:443",
            "europe-north1-docker.pkg.dev:443",
        ),
        (
            "europe-north1-docker.pkg.dev/cgr-nav/pull-through",
            "europe-north1-docker.pkg.dev/cgr-nav/pull-through",
        ),
        (
            "EUROPE-NORTH1-DOCKER.PKG.DEV",
            "EUROPE-NORTH1-DOCKER.PKG.DEV",
        ),
        ("us-docker.pkg.dev", "us-docker.pkg.dev"),
        ("gcr.io", "gcr.io"),
        ("eu.gcr.io", "eu.gcr.io"),
        // echo (LF), Windows (CRLF) and surrounding blanks are trimmed.
        (
            "europe-north1-docker.pkg.dev\n",
            "europe-north1-docker.pkg.dev",
        ),
        (
            "europe-north1-docker.pkg.dev\r\n",
            "europe-north1-docker.pkg.dev",
        ),
        (
            "  \teurope-north1-docker.pkg.dev  \n",
            "europe-north1-docker.pkg.dev",
        ),
    ] {
        let out = sb.get(input);
        let c = out.credential();
        assert_eq!(c.server_url, server_url, "input {input:?}");
        assert_eq!(c.username, "oauth2accesstoken");
        assert_eq!(c.secret, TOKEN);
        assert_eq!(out.stdout.lines().count(), 1, "one line: {}", out.dump());
        assert!(out.stderr.is_empty(), "{}", out.dump());
    }
}

#[test]
fn get_never_sends_a_token_to_other_hosts() {
    let sb = sandbox();
    for input in [
        "europe-north1-docker.pkg.dev.evil.test",
        "evil.test/europe-north1-docker.pkg.dev",
        "user@europe-north1-docker.pkg.dev",
        "https://user:pw@europe-north1-docker.pkg.dev/v2/",
        "https://evil.test#@europe-north1-docker.pkg.dev",
        "evil.test?x=europe-north1-docker.pkg.dev",
        "docker.io",
        "https://index.docker.io/v1/",
        "ghcr.io",
        "quay.io",
        "notgcr.io",
        "gcr.io.evil.test",
        "ftp://europe-north1-docker.pkg.dev",
        "europe-north1-docker.pkg.dev evil.test",
        "127.0.0.1:5000",
    ] {
        let out = sb.get(input);
        out.assert_code(1);
        assert_eq!(
            out.stdout,
            "credentials not found in native keychain\n",
            "input {input:?}\n{}",
            out.dump()
        );
        assert!(!out.stdout.contains(TOKEN) && !out.stderr.contains(TOKEN));
    }
}

#[test]
fn gar_registries_adds_exact_hosts_only() {
    let sb = sandbox();
    sb.set_env("GAR_REGISTRIES", "127.0.0.1:5000, mirror.example.test");
    assert_eq!(sb.get("127.0.0.1:5000").secret(), TOKEN);
    assert_eq!(sb.get("https://127.0.0.1:5000/v2/").secret(), TOKEN);
    assert_eq!(sb.get("Mirror.Example.Test/x/y").secret(), TOKEN);
    for other in [
        "127.0.0.1:5001",
        "127.0.0.1",
        "mirror.example.test:443",
        "x.mirror.example.test",
    ] {
        sb.get(other)
            .assert_code(1)
            .assert_stdout_contains("credentials not found in native keychain");
    }
}

#[test]
fn get_with_empty_input_says_no_server_url() {
    let sb = sandbox();
    for input in ["", "\n", "  \r\n", "\t"] {
        let out = sb.get(input);
        out.assert_code(1);
        assert_eq!(out.stdout, "no credentials server URL\n", "{input:?}");
    }
}

#[test]
fn store_accepts_a_docker_login() {
    let sb = sandbox();
    let out = sb
        .helper()
        .arg("store")
        .stdin(r#"{"ServerURL":"europe-north1-docker.pkg.dev","Username":"oauth2accesstoken","Secret":"s3cr3t-from-login"}"#)
        .run();
    out.assert_code(0);
    assert!(!out.stdout.contains("s3cr3t") && !out.stderr.contains("s3cr3t"));
}

#[test]
fn store_rejects_bad_requests_with_the_protocol_messages() {
    let sb = sandbox();
    let run = |input: &str| sb.helper().arg("store").stdin(input).run();
    let out = run(r#"{"ServerURL":"","Username":"u","Secret":"hidden-secret-1"}"#);
    out.assert_code(1);
    assert_eq!(out.stdout.trim(), "no credentials server URL");
    let out = run(r#"{"ServerURL":"gcr.io","Secret":"hidden-secret-2"}"#);
    out.assert_code(1);
    assert_eq!(out.stdout.trim(), "no credentials username");
    let out = run(r#"{"ServerURL":"gcr.io","Username":"u","Secret":"hidden-secret-3"#);
    out.assert_code(1);
    assert!(out.stdout.contains("not valid JSON"), "{}", out.dump());
    assert!(!out.stdout.contains("hidden-secret"), "{}", out.dump());
}

#[test]
fn erase_succeeds_for_any_host() {
    let sb = sandbox();
    for input in ["europe-north1-docker.pkg.dev", "docker.io", ""] {
        sb.helper().arg("erase").stdin(input).run().assert_code(0);
    }
}

#[test]
fn list_names_configured_hosts_with_our_username() {
    let sb = sandbox();
    sb.set_env("GAR_REGISTRIES", "127.0.0.1:5000");
    sb.helper()
        .args([
            "configure-docker",
            "--registries",
            "europe-north1-docker.pkg.dev,us-docker.pkg.dev",
        ])
        .run()
        .assert_ok();
    let out = sb.helper().arg("list").run();
    out.assert_code(0);
    assert_eq!(
        out.json(),
        serde_json::json!({
            "127.0.0.1:5000": "oauth2accesstoken",
            "europe-north1-docker.pkg.dev": "oauth2accesstoken",
            "us-docker.pkg.dev": "oauth2accesstoken",
        })
    );
}

#[test]
fn list_is_an_empty_object_on_an_unconfigured_machine() {
    let out = sandbox().helper().arg("list").run();
    out.assert_code(0);
    assert_eq!(out.json(), serde_json::json!({}));
}

#[test]
fn version_prints_name_and_version() {
    let sb = sandbox();
    for arg in ["version", "--version"] {
        let out = sb.helper().arg(arg).run();
        out.assert_code(0);
        assert_eq!(
            out.stdout,
            format!("docker-credential-gar {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn usage_for_unknown_actions_and_wrong_argument_counts() {
    let sb = sandbox();
    for args in [
        vec![],
        vec!["bogus"],
        vec!["get", "extra"],
        vec!["list", "x"],
        vec!["GET"],
    ] {
        let out = sb.helper().args(args.clone()).stdin("gcr.io").run();
        out.assert_code(1);
        assert!(
            out.stdout.starts_with("Usage: docker-credential-gar"),
            "{args:?}\n{}",
            out.dump()
        );
        assert!(!out.stdout.contains(TOKEN));
    }
    let out = sb.helper().arg("--help").run();
    out.assert_code(0);
    assert!(out.stdout.contains("get") && out.stdout.contains("configure-docker"));
}
