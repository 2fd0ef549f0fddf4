//! End to end: the real docker CLI and skopeo pull from a local TLS registry
//! (htpasswd: `oauth2accesstoken:<token>`) with credentials that docker and skopeo
//! get from `docker-credential-gar` through `credHelpers` in `$DOCKER_CONFIG/config.json`,
//! the token being minted by the fake Google token endpoint from a service-account key.
//!
//! Needs `docker` (the CLI only; no daemon), `skopeo`, `docker-registry`,
//! `htpasswd` and `openssl`; a missing one fails the test with how to install it.

mod support;

use std::path::Path;

use support::fake_google::FakeGoogle;
use support::registry::{E2E_REPO, E2E_TAG, PushedImage, Registry, require_docker_cli, skopeo_in};
use support::{Output, Sandbox, random_hex};

/// The registry, the pushed image, and the fake that can mint its password.
struct World {
    fake: FakeGoogle,
    registry: Registry,
    image: PushedImage,
    token: String,
}

fn world() -> World {
    require_docker_cli();
    let token = format!("ya29.e2e-registry-{}", random_hex(16));
    let fake = FakeGoogle::start();
    let registry = Registry::start(&token);
    let image = registry.push_tiny_image(&format!("{E2E_REPO}:{E2E_TAG}"));
    World {
        fake,
        registry,
        image,
        token,
    }
}

/// A sandbox with the helper on `PATH` (as a logging wrapper), `GAR_REGISTRIES`
/// naming the registry, and a service-account key of the fake in
/// `GOOGLE_APPLICATION_CREDENTIALS`. Docker's config is left alone.
fn sandbox_with_helper_env(w: &World) -> Sandbox {
    let sb = Sandbox::new();
    sb.install_helper_on_path();
    sb.set_env("GAR_REGISTRIES", w.registry.host());
    let key = sb.write_file("sa.json", &w.fake.service_account_json(&w.fake.token_url()));
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &key);
    sb
}

fn configure_docker(sb: &Sandbox, host: &str) {
    sb.helper()
        .args(["configure-docker", "--registries", host])
        .run()
        .assert_ok();
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sb.docker_config_json()).unwrap_or_else(|e| {
            panic!(
                "configure-docker wrote no {}: {e}",
                sb.docker_config_json().display()
            )
        }),
    )
    .expect("docker config is JSON");
    assert_eq!(
        cfg["credHelpers"][host], "gar",
        "configure-docker did not route {host} to the helper: {cfg}"
    );
}

fn docker_manifest_inspect(sb: &Sandbox, reference: &str) -> Output {
    sb.command("docker")
        .args(["manifest", "inspect", "--insecure", reference])
        .timeout(std::time::Duration::from_secs(120))
        .run()
}

fn skopeo_pull(sb: &Sandbox, reference: &str, dest: &Path) -> Output {
    skopeo_in(
        sb,
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{reference}"),
            &format!("dir:{}", dest.display()),
        ],
    )
}

/// An auth failure as docker (without any credential: "no basic auth credentials")
/// or skopeo ("unauthorized: authentication required") reports it.
fn assert_auth_failure(out: &Output) {
    out.assert_failure();
    let text = format!("{}\n{}", out.stdout, out.stderr).to_lowercase();
    assert!(
        [
            "unauthorized",
            "401",
            "no basic auth credentials",
            "authentication required"
        ]
        .iter()
        .any(|s| text.contains(s)),
        "expected an authentication error\n{}",
        out.dump()
    );
}

#[test]
fn docker_and_skopeo_pull_with_a_token_from_the_helper() {
    let w = world();
    w.fake.set_fixed_access_token(Some(&w.token));
    let sb = sandbox_with_helper_env(&w);
    configure_docker(&sb, &w.registry.host());

    // docker CLI: reads credHelpers, runs `docker-credential-gar get`.
    let out = docker_manifest_inspect(&sb, &w.image.reference);
    out.assert_ok()
        .assert_stdout_contains(&w.image.config_digest);
    let manifest = out.json();
    assert_eq!(manifest["config"]["digest"], w.image.config_digest.as_str());
    assert_eq!(
        manifest["layers"][0]["digest"],
        w.image.layer_digest.as_str()
    );
    let after_docker = sb.helper_calls().len();
    assert!(after_docker >= 1, "docker never called the helper");

    // A second docker run and a skopeo pull: all served from the helper's cache.
    docker_manifest_inspect(&sb, &w.image.reference).assert_ok();
    let dest = sb.root().join("pulled");
    skopeo_pull(&sb, &w.image.reference, &dest).assert_ok();
    let pulled = std::fs::read_to_string(dest.join("manifest.json")).expect("pulled manifest");
    assert!(pulled.contains(&w.image.config_digest), "{pulled}");
    let config_file = dest.join(w.image.config_digest.trim_start_matches("sha256:"));
    assert!(
        config_file.is_file(),
        "skopeo did not fetch the config blob"
    );

    let calls = sb.helper_calls();
    assert!(
        calls.iter().all(|c| c == "get"),
        "docker/skopeo should only `get`: {calls:?}"
    );
    assert!(calls.len() >= 3, "expected ≥3 helper calls, got {calls:?}");
    assert_eq!(
        w.fake.count("/token"),
        1,
        "the helper should mint one token and serve the other {} calls from its cache \
         (rejections: {:?})",
        calls.len() - 1,
        w.fake.rejections()
    );
    // Visible in `cargo test -- --nocapture`: how often the tools called the helper.
    println!(
        "helper calls: docker manifest inspect x1 -> {after_docker}, total after 2x docker + 1x skopeo copy -> {}",
        calls.len()
    );
    // The registry really served the manifest to authenticated docker and skopeo.
    w.registry
        .wait_log("docker manifest GETs answered 200", 2, |r| {
            r.manifest_gets("Docker-Client", 200)
        });
    w.registry
        .wait_log("skopeo manifest GETs answered 200", 1, |r| {
            r.manifest_gets("skopeo", 200)
        });
    assert_eq!(
        w.registry.auth_failures(support::USERNAME),
        0,
        "{}",
        w.registry.log()
    );
}

#[test]
fn docker_and_skopeo_pull_with_google_oauth_access_token() {
    let w = world();
    let sb = sandbox_with_helper_env(&w);
    sb.remove_env("GOOGLE_APPLICATION_CREDENTIALS");
    sb.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", &w.token);
    configure_docker(&sb, &w.registry.host());
    docker_manifest_inspect(&sb, &w.image.reference)
        .assert_ok()
        .assert_stdout_contains(&w.image.config_digest);
    skopeo_pull(&sb, &w.image.reference, &sb.root().join("pulled")).assert_ok();
    assert_eq!(w.fake.total_count(), 0, "no Google endpoint needed");
}

#[test]
fn without_the_helper_configured_pulls_are_unauthorized() {
    let w = world();
    w.fake.set_fixed_access_token(Some(&w.token));
    // Helper on PATH and credentials in the env, but no credHelpers entry.
    let sb = sandbox_with_helper_env(&w);
    assert!(!sb.docker_config_json().exists());
    assert_auth_failure(&docker_manifest_inspect(&sb, &w.image.reference));
    let out = skopeo_pull(&sb, &w.image.reference, &sb.root().join("pulled"));
    assert_auth_failure(&out);
    assert!(sb.helper_calls().is_empty(), "{:?}", sb.helper_calls());
    assert_eq!(w.registry.manifest_gets("Docker-Client", 200), 0);
    assert_eq!(w.registry.manifest_gets("skopeo", 200), 0);
    assert_eq!(w.fake.count("/token"), 0);
}

#[test]
fn a_token_the_registry_does_not_accept_fails_the_pull() {
    let w = world();
    // The fake mints fresh unique tokens, not the registry's password.
    let sb = sandbox_with_helper_env(&w);
    configure_docker(&sb, &w.registry.host());
    // docker reports a refused credential on a manifest as "no such manifest".
    let out = docker_manifest_inspect(&sb, &w.image.reference);
    out.assert_failure();
    assert!(
        !out.stdout.contains(&w.image.config_digest),
        "{}",
        out.dump()
    );
    let refused = w.registry.wait_log("refused docker logins", 1, |r| {
        r.auth_failures(support::USERNAME)
    });
    let out = skopeo_pull(&sb, &w.image.reference, &sb.root().join("pulled"));
    assert_auth_failure(&out);
    w.registry
        .wait_log("refused skopeo logins", refused + 1, |r| {
            r.auth_failures(support::USERNAME)
        });
    assert_eq!(w.registry.manifest_gets("Docker-Client", 200), 0);
    assert_eq!(w.registry.manifest_gets("skopeo", 200), 0);
    assert!(!sb.helper_calls().is_empty(), "the helper was not asked");
    assert!(w.fake.count("/token") >= 1, "the helper minted no token");
    assert!(
        !w.fake.issued_access_tokens().contains(&w.token),
        "the fake should not have issued the registry's password"
    );
}
