//! `store` / `get` / `erase` / `list` with credentials from `docker login`, run
//! as docker runs them, against a real Secret Service (a private D-Bus session
//! bus with gnome-keyring, see `support::keyring`), and without one (the 0600
//! file fallback), including a bus that never answers and a locked keyring.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::keyring::{SecretService, SilentBus};
use support::{Output, Sandbox, SecretKind, random_hex, register_secret};

const GAR: &str = "europe-north1-docker.pkg.dev";

fn store_req(server: &str, user: &str, secret: &str) -> String {
    json!({"ServerURL": server, "Username": user, "Secret": secret}).to_string()
}

fn store(sb: &Sandbox, server: &str, user: &str, secret: &str) -> Output {
    sb.helper()
        .arg("store")
        .stdin(store_req(server, user, secret))
        .run()
}

fn erase(sb: &Sandbox, server: &str) -> Output {
    sb.helper().arg("erase").stdin(server).run()
}

fn config_dir(sb: &Sandbox) -> PathBuf {
    sb.home().join(".config/docker-credential-gar")
}

fn read_json(p: &std::path::Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())),
    )
    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Moves the `store` time of `host` in the index back by `secs` (time passing).
fn age_entry(sb: &Sandbox, host: &str, secs: u64) {
    let p = config_dir(sb).join("index.json");
    let mut v = read_json(&p);
    let at = v["hosts"][host]["stored_at"].as_u64().expect("stored_at");
    v["hosts"][host]["stored_at"] = json!(at - secs);
    std::fs::write(&p, v.to_string()).expect("rewrite index");
}

fn env_token_sandbox() -> (Sandbox, String) {
    let sb = Sandbox::new();
    let token = format!("ya29.minted-{}", random_hex(12));
    sb.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", &token);
    (sb, token)
}

#[test]
fn login_credentials_live_in_the_secret_service_and_answer_get_list_erase() {
    let sb = Sandbox::new();
    let ss = SecretService::start(&sb);
    let secret = format!("hunter2-{}", random_hex(8));

    let out = store(&sb, "https://index.docker.io/v1/", "bob", &secret);
    out.assert_ok();
    assert_eq!(out.stdout, "", "{}", out.dump());
    assert_eq!(
        out.stderr,
        "",
        "no fallback notice expected\n{}",
        out.dump()
    );

    // The secret is in the keyring item, and only there.
    let item: Value = serde_json::from_str(&ss.lookup("index.docker.io").expect("keyring item"))
        .expect("item is JSON");
    assert_eq!(item["Username"], "bob");
    assert_eq!(item["Secret"], secret.as_str());
    assert_eq!(item["ServerURL"], "https://index.docker.io/v1/");
    assert!(
        ss.search_all()
            .contains("label = docker-credential-gar: index.docker.io"),
        "{}",
        ss.search_all()
    );
    let index = read_json(&config_dir(&sb).join("index.json"));
    assert_eq!(index["hosts"]["index.docker.io"]["username"], "bob");
    assert_eq!(index["hosts"]["index.docker.io"]["backend"], "keyring");
    assert!(!index.to_string().contains(&secret));
    assert!(!config_dir(&sb).join("credentials.json").exists());
    assert_eq!(mode(&config_dir(&sb).join("index.json")), 0o600);
    assert_eq!(mode(&config_dir(&sb)), 0o700);

    // get, as docker asks for Docker Hub.
    let out = sb.get("https://index.docker.io/v1/");
    out.assert_ok();
    assert_eq!(
        out.json(),
        json!({"ServerURL": "https://index.docker.io/v1/", "Username": "bob", "Secret": secret})
    );
    assert_eq!(out.stderr, "");

    let out = sb.helper().arg("list").run();
    out.assert_ok();
    assert_eq!(out.json(), json!({"index.docker.io": "bob"}));

    erase(&sb, "https://index.docker.io/v1/").assert_ok();
    assert_eq!(
        ss.lookup("index.docker.io"),
        None,
        "item left in the keyring"
    );
    sb.get("https://index.docker.io/v1/")
        .assert_code(1)
        .assert_stdout_contains("credentials not found in native keychain");
    assert_eq!(sb.helper().arg("list").run().json(), json!({}));
}

#[test]
fn a_login_to_a_google_host_wins_over_minted_tokens_until_logout() {
    let (sb, minted) = env_token_sandbox();
    let _ss = SecretService::start(&sb);
    let key = format!(
        "{{\"type\":\"service_account\",\"k\":\"{}\"}}",
        random_hex(8)
    );
    store(&sb, GAR, "_json_key", &key).assert_ok();

    let out = sb.get(GAR);
    assert_eq!(
        out.json(),
        json!({"ServerURL": GAR, "Username": "_json_key", "Secret": key})
    );
    // Another Google host has nothing stored: minted.
    assert_eq!(sb.get("us-docker.pkg.dev").secret(), minted);

    erase(&sb, GAR).assert_ok();
    assert_eq!(sb.get(GAR).secret(), minted);
}

#[test]
fn a_stored_access_token_is_trusted_for_55_minutes_then_minted_tokens_take_over() {
    let (sb, minted) = env_token_sandbox();
    let _ss = SecretService::start(&sb);
    let stored = format!("ya29.from-docker-login-{}", random_hex(10));
    register_secret(SecretKind::AccessToken, &stored);
    let mirror = "mirror.example.test";

    store(&sb, GAR, "oauth2accesstoken", &stored).assert_ok();
    store(&sb, mirror, "oauth2accesstoken", &stored).assert_ok();
    assert_eq!(sb.get(GAR).secret(), stored);
    assert_eq!(sb.get(mirror).secret(), stored);

    // 54 minutes later: still the stored one.
    age_entry(&sb, GAR, 54 * 60);
    age_entry(&sb, mirror, 54 * 60);
    assert_eq!(sb.get(GAR).secret(), stored);
    assert_eq!(sb.get(mirror).secret(), stored);

    // 56 minutes later: minted for the Google host, not found for the other.
    age_entry(&sb, GAR, 2 * 60);
    age_entry(&sb, mirror, 2 * 60);
    assert_eq!(sb.get(GAR).secret(), minted);
    sb.get(mirror)
        .assert_code(1)
        .assert_stdout_contains("credentials not found in native keychain");

    // A password for another user never expires here.
    store(&sb, "registry.example.test", "alice", "alice-password-1").assert_ok();
    age_entry(&sb, "registry.example.test", 30 * 86_400);
    assert_eq!(
        sb.get("registry.example.test").json()["Secret"],
        "alice-password-1"
    );
}

#[test]
fn without_a_session_bus_store_falls_back_to_a_private_file_and_says_so_once() {
    let (sb, minted) = env_token_sandbox();
    // The sandbox has no DBUS_SESSION_BUS_ADDRESS and no XDG_RUNTIME_DIR: a CI runner.
    let secret = format!("pw-{}", random_hex(8));
    let out = store(&sb, "ghcr.io", "carol", &secret);
    out.assert_ok();
    assert_eq!(out.stdout, "");
    let notice: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(notice.len(), 1, "one notice line\n{}", out.dump());
    let file = config_dir(&sb).join("credentials.json");
    assert!(
        notice[0].contains("OS keyring is not available")
            && notice[0].contains("no D-Bus session bus")
            && notice[0].contains(&file.display().to_string())
            && notice[0].contains("0600"),
        "{}",
        out.dump()
    );
    assert!(!out.stderr.contains(&secret));
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&config_dir(&sb)), 0o700);
    assert_eq!(
        read_json(&file)["hosts"]["ghcr.io"]["Secret"],
        secret.as_str()
    );
    assert_eq!(
        read_json(&config_dir(&sb).join("index.json"))["hosts"]["ghcr.io"]["backend"],
        "file"
    );

    let out = sb.get("ghcr.io");
    assert_eq!(out.json()["Secret"], secret.as_str());
    assert_eq!(out.stderr, "", "get says nothing\n{}", out.dump());
    assert_eq!(sb.get(GAR).secret(), minted);

    erase(&sb, "ghcr.io").assert_ok();
    assert!(!std::fs::read_to_string(&file).unwrap().contains(&secret));
    sb.get("ghcr.io").assert_code(1);
}

#[test]
fn a_group_readable_credentials_file_is_refused_with_the_fix() {
    let sb = Sandbox::new();
    store(&sb, "ghcr.io", "carol", "pw-group-readable").assert_ok();
    let file = config_dir(&sb).join("credentials.json");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = sb.get("ghcr.io");
    out.assert_code(1)
        .assert_stdout_contains("credentials not found in native keychain")
        .assert_stderr_contains("chmod 600");
    assert!(!out.stdout.contains("pw-group") && !out.stderr.contains("pw-group"));
}

#[test]
fn a_locked_keyring_falls_back_to_the_file_without_hanging() {
    let sb = Sandbox::new();
    let ss = SecretService::start(&sb);
    ss.lock();
    let started = Instant::now();
    let out = store(&sb, "quay.io", "dave", "dave-pw-locked");
    out.assert_ok();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{}",
        out.dump()
    );
    out.assert_stderr_contains("OS keyring")
        .assert_stderr_contains("credentials.json");
    assert_eq!(ss.lookup("quay.io"), None);
    assert_eq!(sb.get("quay.io").json()["Username"], "dave");
}

#[test]
fn a_keyring_that_never_answers_costs_at_most_the_deadline() {
    let (sb, minted) = env_token_sandbox();
    // First a real login into the real keyring…
    let ss = SecretService::start(&sb);
    store(&sb, "registry.example.test", "erin", "erin-pw-1").assert_ok();
    store(&sb, GAR, "_json_key", "{\"k\":\"erin-key\"}").assert_ok();
    drop(ss);
    // …then the session bus hangs.
    let silent = SilentBus::start(&sb);
    sb.set_env("DBUS_SESSION_BUS_ADDRESS", silent.address());
    sb.set_env("GAR_KEYRING_TIMEOUT", "1");

    let t = Instant::now();
    let out = store(&sb, "ghcr.io", "frank", "frank-pw-1");
    out.assert_ok()
        .assert_stderr_contains("did not answer within 1 s");
    assert!(t.elapsed() < Duration::from_secs(8), "{}", out.dump());
    assert_eq!(sb.get("ghcr.io").json()["Secret"], "frank-pw-1");

    // A Google host whose login is in the hung keyring: a warning, then a minted token.
    let t = Instant::now();
    let out = sb.get(GAR);
    assert_eq!(out.secret(), minted);
    out.assert_stderr_contains("could not be read");
    assert!(t.elapsed() < Duration::from_secs(8), "{}", out.dump());

    // Another host: not found, as bounded.
    let out = sb.get("registry.example.test");
    out.assert_code(1)
        .assert_stdout_contains("credentials not found in native keychain");
}

#[test]
fn get_for_a_google_host_without_a_login_never_touches_the_keyring() {
    let (sb, minted) = env_token_sandbox();
    // Something else is stored, so the index exists.
    store(&sb, "ghcr.io", "gina", "gina-pw-1").assert_ok();
    let silent = SilentBus::start(&sb);
    sb.set_env("DBUS_SESSION_BUS_ADDRESS", silent.address());
    sb.set_env("GAR_KEYRING_TIMEOUT", "30");
    for _ in 0..3 {
        let out = sb.get(GAR);
        assert_eq!(out.secret(), minted);
        assert!(
            out.elapsed < Duration::from_secs(5),
            "get waited for the keyring\n{}",
            out.dump()
        );
        assert_eq!(out.stderr, "");
    }
}

#[test]
fn gar_credential_store_chooses_the_backend() {
    let sb = Sandbox::new();
    let ss = SecretService::start(&sb);
    let out = sb
        .helper()
        .env("GAR_CREDENTIAL_STORE", "file")
        .arg("store")
        .stdin(store_req("ghcr.io", "hank", "hank-pw-1"))
        .run();
    out.assert_ok();
    assert_eq!(out.stderr, "", "forced file store is not a fallback");
    assert_eq!(ss.lookup("ghcr.io"), None);
    assert_eq!(sb.get("ghcr.io").json()["Secret"], "hank-pw-1");

    // Logging in again without the variable moves it into the keyring.
    store(&sb, "ghcr.io", "hank", "hank-pw-2").assert_ok();
    assert!(ss.lookup("ghcr.io").unwrap().contains("hank-pw-2"));
    assert!(
        !std::fs::read_to_string(config_dir(&sb).join("credentials.json"))
            .unwrap()
            .contains("hank-pw")
    );

    // keyring only, and none there: an error with the fix.
    let nobus = Sandbox::new();
    let out = nobus
        .helper()
        .env("GAR_CREDENTIAL_STORE", "keyring")
        .arg("store")
        .stdin(store_req("ghcr.io", "hank", "hank-pw-3"))
        .run();
    out.assert_code(1)
        .assert_stdout_contains("GAR_CREDENTIAL_STORE=file");
    assert_eq!(out.stdout.lines().count(), 1);
    let out = nobus
        .helper()
        .env("GAR_CREDENTIAL_STORE", "vault")
        .arg("store")
        .stdin(store_req("ghcr.io", "hank", "hank-pw-3"))
        .run();
    out.assert_code(1)
        .assert_stdout_contains("use auto, keyring or file");
}

#[test]
fn gar_config_dir_moves_the_store_and_list_merges_hosts() {
    let sb = Sandbox::new();
    let dir = sb.root().join("gar-config");
    sb.set_env("GAR_CONFIG_DIR", &dir);
    sb.helper()
        .args([
            "configure-docker",
            "--registries",
            &format!("{GAR},us-docker.pkg.dev"),
        ])
        .run()
        .assert_ok();
    store(&sb, "us-docker.pkg.dev", "_json_key", "{\"k\":1}").assert_ok();
    store(&sb, "ghcr.io", "ivy", "ivy-pw-1").assert_ok();
    assert!(dir.join("index.json").exists());
    assert!(!config_dir(&sb).exists());
    assert_eq!(
        sb.helper().arg("list").run().json(),
        json!({GAR: "oauth2accesstoken", "us-docker.pkg.dev": "_json_key", "ghcr.io": "ivy"})
    );
}

#[test]
fn store_rejects_a_server_url_that_is_not_a_registry() {
    let sb = Sandbox::new();
    let out = store(&sb, "ftp://x y", "u", "hidden-secret-9");
    out.assert_code(1)
        .assert_stdout_contains("is not a registry address");
    assert!(!out.stdout.contains("hidden-secret"));
    assert!(!config_dir(&sb).join("index.json").exists());
}

#[test]
fn get_log_names_action_source_and_store_without_secrets() {
    let sb = Sandbox::new();
    let secret = format!("ya29.logged-{}", random_hex(10));
    register_secret(SecretKind::AccessToken, &secret);
    store(&sb, "ghcr.io", "oauth2accesstoken", &secret).assert_ok();
    let log = sb.root().join("gar.log");
    let out = sb
        .helper()
        .env("GAR_LOG", "debug")
        .env("GAR_LOG_FILE", &log)
        .arg("get")
        .stdin("ghcr.io")
        .run();
    assert_eq!(out.secret(), secret);
    assert_eq!(out.stderr, "", "GAR_LOG_FILE takes the log off stderr");
    let text = std::fs::read_to_string(&log).expect("log file");
    assert!(
        text.contains(" INFO get [stored credentials] ghcr.io: answering with stored credentials for user oauth2accesstoken"),
        "{text}"
    );
    assert!(!text.contains(&secret), "{text}");
    assert_eq!(mode(&log), 0o600);
}

/// The whole point of `credsStore`: docker itself stores a login through the helper
/// (into the real keyring) and later pulls from that non-Google registry with it.
#[test]
fn docker_uses_gar_as_its_global_creds_store_with_a_login_kept_in_the_keyring() {
    use support::registry::{Registry, require_docker_cli};
    let docker = require_docker_cli();
    let password = format!("registry-pw-{}", random_hex(12));
    register_secret(SecretKind::AccessToken, &password);
    let registry = Registry::start(&password);
    let image = registry.push_tiny_image("team/app:1");

    let sb = Sandbox::new();
    let ss = SecretService::start(&sb);
    sb.install_helper_on_path();
    sb.helper()
        .args(["configure-docker", "--creds-store"])
        .run()
        .assert_ok();
    let cfg = read_json(&sb.docker_config_json());
    assert_eq!(cfg, json!({"credsStore": "gar"}));

    // Without a login: docker gets "not found" from us and the registry says 401.
    let inspect = || {
        sb.command(&docker)
            .args(["manifest", "inspect", "--insecure", &image.reference])
            .timeout(Duration::from_secs(120))
            .run()
    };
    let out = inspect();
    out.assert_failure();

    // `docker login` runs `store` (needs no daemon with a reachable registry in
    // recent CLIs); fall back to what it would send when this CLI needs a daemon.
    let login = sb
        .command(&docker)
        .args([
            "login",
            "--username",
            "oauth2accesstoken",
            "--password-stdin",
        ])
        .arg(registry.host())
        .stdin(&password)
        .timeout(Duration::from_secs(120))
        .run();
    if login.success() {
        assert!(
            sb.helper_calls().iter().any(|c| c == "store"),
            "docker login did not run the helper's store: {:?}",
            sb.helper_calls()
        );
    } else {
        let line = format!(
            "NOTE: `docker login` needs a daemon here ({}); storing as docker login would\n",
            login.stderr.lines().last().unwrap_or("")
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        store(&sb, &registry.host(), "oauth2accesstoken", &password).assert_ok();
    }
    let item: Value =
        serde_json::from_str(&ss.lookup(&registry.host()).expect("login in the keyring")).unwrap();
    assert_eq!(item["Username"], "oauth2accesstoken");
    assert_eq!(item["Secret"], password.as_str());
    assert!(
        !std::fs::read_to_string(sb.docker_config_json())
            .unwrap()
            .contains(&password)
    );

    let out = inspect();
    out.assert_ok().assert_stdout_contains(&image.config_digest);
    assert!(sb.helper_calls().iter().any(|c| c == "get"));
    registry.wait_log("docker manifest GET answered 200", 1, |r| {
        r.manifest_gets("Docker-Client", 200)
    });

    // docker logout runs erase: the item leaves the keyring, pulls are 401 again.
    let logout = sb
        .command(&docker)
        .args(["logout", &registry.host()])
        .timeout(Duration::from_secs(60))
        .run();
    logout.assert_ok();
    assert!(
        sb.helper_calls().iter().any(|c| c == "erase"),
        "{:?}",
        sb.helper_calls()
    );
    assert_eq!(ss.lookup(&registry.host()), None);
    inspect().assert_failure();
}
