//! Faults, crashes, hostile cache directories, bad input and proxies: each
//! promise of the helper pinned by a test against the local fake of Google.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::fake_google::{FakeGoogle, ForcedResponse, METADATA_TOKEN_PATH};
use support::gcloud::GcloudStub;
use support::proxy::CountingProxy;
use support::{Sandbox, SecretKind};

const HOST: &str = "europe-north1-docker.pkg.dev";

fn with_key(fake: &FakeGoogle) -> Sandbox {
    let sb = Sandbox::new();
    let key = fake.service_account(&fake.token_url());
    let path = sb.write_file("sa.json", &key.json);
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    sb
}

fn cache_entries(sb: &Sandbox) -> Vec<PathBuf> {
    list(sb, |n| n.ends_with(".json"))
}

fn list(sb: &Sandbox, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(sb.cache_dir())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| keep(&p.file_name().unwrap().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// Faults at the token endpoint
// ---------------------------------------------------------------------------

#[test]
fn a_500_or_503_is_retried_once_then_the_token_arrives() {
    for forced in [
        ForcedResponse::server_error(),
        ForcedResponse::unavailable(),
    ] {
        let fake = FakeGoogle::start();
        let sb = with_key(&fake);
        fake.push_token_response(forced);
        let secret = sb.get(HOST).secret();
        assert_eq!(fake.count("/token"), 2);
        assert_eq!(fake.issued_access_tokens(), vec![secret]);
    }
}

#[test]
fn a_429_waits_for_retry_after_within_the_bound() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    fake.push_token_response(
        ForcedResponse::new(429, r#"{"error":"rate_limited"}"#).header("Retry-After", "1"),
    );
    let out = sb.get(HOST);
    let secret = out.secret();
    assert_eq!(fake.count("/token"), 2);
    assert_eq!(fake.issued_access_tokens(), vec![secret]);
    assert!(
        out.elapsed >= Duration::from_millis(900),
        "waited {:?}",
        out.elapsed
    );
}

#[test]
fn a_429_asking_for_longer_than_the_bound_fails_at_once() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    fake.push_token_response(
        ForcedResponse::new(429, r#"{"error":"rate_limited"}"#).header("Retry-After", "3600"),
    );
    let out = sb.get(HOST);
    out.assert_code(1).assert_stdout_contains("HTTP 429");
    assert_eq!(fake.count("/token"), 1);
}

#[test]
fn an_endpoint_that_keeps_failing_gives_a_clear_error() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    for _ in 0..3 {
        fake.push_token_response(ForcedResponse::unavailable());
    }
    let out = sb.get(HOST);
    out.assert_code(1)
        .assert_stdout_contains(&format!("{} failed: HTTP 503", fake.token_url()))
        .assert_stdout_contains("try again shortly");
    assert_eq!(out.stdout.lines().count(), 1);
    assert_eq!(fake.count("/token"), 2, "exactly one retry");
}

#[test]
fn invalid_grant_is_final_and_actionable_with_no_retry() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let user = fake.authorized_user(Some(&fake.token_url()));
    let path = sb.write_file("user.json", &user.json);
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    fake.push_token_response(ForcedResponse::revoked());
    let out = sb.helper().arg("get").stdin(HOST).stdin(HOST).run();
    out.assert_code(1)
        .assert_stdout_contains("invalid_grant")
        .assert_stdout_contains("gcloud auth application-default login");
    assert_eq!(fake.count("/token"), 1);
}

/// A server that accepts connections and then either says nothing or trickles
/// one byte a second, forever (until the test ends).
fn stalling_server(trickle: bool) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 4096];
                let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
                let _ = conn.read(&mut buf);
                if trickle {
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{");
                    for _ in 0..120 {
                        std::thread::sleep(Duration::from_secs(1));
                        if conn.write_all(b" ").is_err() {
                            return;
                        }
                    }
                } else {
                    std::thread::sleep(Duration::from_secs(120));
                }
            });
        }
    });
    port
}

#[test]
fn silent_or_trickling_endpoints_fail_within_gar_http_timeout() {
    for trickle in [false, true] {
        let port = stalling_server(trickle);
        let fake = FakeGoogle::start();
        let sb = Sandbox::new();
        let url = format!("http://127.0.0.1:{port}/token");
        let key = fake.service_account(&url);
        sb.set_env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            sb.write_file("sa.json", &key.json),
        );
        sb.set_env("GAR_HTTP_TIMEOUT", "2");
        let out = sb.get(HOST);
        out.assert_code(1).assert_stdout_contains(&url);
        assert!(
            out.elapsed < Duration::from_secs(8),
            "trickle={trickle}: took {:?}",
            out.elapsed
        );
    }
}

#[test]
fn a_token_endpoint_with_a_skewed_clock_does_not_change_expiry() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    // The endpoint's clock is 5 hours behind; expiry is computed from expires_in.
    fake.push_token_response(
        ForcedResponse::new(
            200,
            r#"{"access_token":"ya29.skewed-clock-token","expires_in":3600,"token_type":"Bearer"}"#,
        )
        .header("Date", "Mon, 01 Jan 2001 00:00:00 GMT"),
    );
    support::register_secret(SecretKind::AccessToken, "ya29.skewed-clock-token");
    assert_eq!(sb.get(HOST).secret(), "ya29.skewed-clock-token");
    assert_eq!(sb.get(HOST).secret(), "ya29.skewed-clock-token", "reused");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cache_entries(&sb)[0]).unwrap()).unwrap();
    let exp = v["expires_at"].as_u64().unwrap();
    assert!(exp.abs_diff(support::now_unix() + 3600) < 60, "{v}");
    assert_eq!(fake.count("/token"), 1);
}

// ---------------------------------------------------------------------------
// The metadata server
// ---------------------------------------------------------------------------

#[test]
fn metadata_unreachable_slow_or_impostor() {
    // Unreachable: the sandbox points GCE_METADATA_HOST at a closed port.
    let sb = Sandbox::new();
    sb.set_env("PATH", sb.bin_dir());
    let out = sb.get(HOST);
    out.assert_code(1)
        .assert_stdout_contains("is not reachable (not on Google Cloud)");
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);

    // Slow: bounded by GAR_HTTP_TIMEOUT.
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    sb.set_env("PATH", sb.bin_dir());
    sb.set_env("GCE_METADATA_HOST", fake.metadata_host());
    sb.set_env("GAR_HTTP_TIMEOUT", "1");
    fake.push_response(
        METADATA_TOKEN_PATH,
        ForcedResponse::new(200, "{}")
            .header("Metadata-Flavor", "Google")
            .delay(Duration::from_secs(30)),
    );
    let out = sb.get(HOST);
    out.assert_code(1);
    assert!(out.elapsed < Duration::from_secs(8), "{:?}", out.elapsed);

    // Impostor: a 200 with a token but no Metadata-Flavor header is not trusted.
    let sb = Sandbox::new();
    sb.set_env("PATH", sb.bin_dir());
    sb.set_env("GCE_METADATA_HOST", fake.metadata_host());
    fake.set_metadata_impostor(true);
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("not a Google metadata server");
    assert!(fake.issued_access_tokens().is_empty());
}

// ---------------------------------------------------------------------------
// gcloud
// ---------------------------------------------------------------------------

#[test]
fn gcloud_missing_prompting_locked_or_chatty() {
    // Missing: forced gcloud without gcloud on PATH.
    let sb = Sandbox::new();
    sb.set_env("PATH", sb.bin_dir());
    sb.set_env("GAR_TOKEN_SOURCE", "gcloud");
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("gcloud is not on PATH");

    // Prompting: stdin is closed, so it never waits.
    let sb = Sandbox::new();
    let stub = GcloudStub::install(&sb);
    stub.prompt();
    assert_eq!(sb.get(HOST).secret(), stub.token());
    assert_eq!(stub.stdin_log(), "stdin closed\n");

    // "database is locked" once: one retry.
    let sb = Sandbox::new();
    let stub = GcloudStub::install(&sb);
    stub.fail_once_with(
        1,
        "ERROR: gcloud crashed (OperationalError): database is locked\n",
    );
    assert_eq!(sb.get(HOST).secret(), stub.token());
    assert_eq!(stub.call_count(), 2);

    // Warnings on stdout before its JSON.
    let sb = Sandbox::new();
    let stub = GcloudStub::install(&sb);
    stub.warn_on_stdout(Some(
        "WARNING: Could not open the configuration file\nUpdates are available\n",
    ));
    assert_eq!(sb.get(HOST).secret(), stub.token());
}

// ---------------------------------------------------------------------------
// Concurrency and crashes
// ---------------------------------------------------------------------------

#[test]
fn sixty_four_parallel_cold_gets_make_one_upstream_request() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    fake.set_delay(Duration::from_millis(300));
    let running: Vec<_> = (0..64)
        .map(|_| sb.helper().arg("get").stdin(HOST).spawn())
        .collect();
    let secrets: Vec<String> = running.into_iter().map(|r| r.wait().secret()).collect();
    assert_eq!(fake.count("/token"), 1);
    assert!(secrets.iter().all(|s| *s == secrets[0]));
    let entries = cache_entries(&sb);
    assert_eq!(entries.len(), 1);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&entries[0]).unwrap()).unwrap();
    assert_eq!(v["access_token"], serde_json::json!(secrets[0]));
}

fn sigkill(pid: u32) {
    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

#[test]
fn a_lock_holder_killed_mid_refresh_does_not_block_the_next_caller() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    fake.push_token_response(ForcedResponse::new(200, "{}").delay(Duration::from_secs(60)));
    let holder = sb.helper().arg("get").stdin(HOST).skip_leak_check().spawn();
    fake.wait_for_count("/token", 1, Duration::from_secs(20));
    sigkill(holder.id());
    let _ = holder.wait();
    let out = sb.get(HOST);
    let secret = out.secret();
    assert_eq!(fake.last_access_token().as_deref(), Some(secret.as_str()));
    assert!(
        out.elapsed < Duration::from_secs(10),
        "blocked for {:?}",
        out.elapsed
    );
}

#[test]
fn a_storm_of_gets_with_random_sigkills_leaves_a_valid_cache() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    fake.set_expires_in(30); // short-lived: most calls refresh and write.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut killed = 0;
    for round in 0..20 {
        let running: Vec<_> = (0..10)
            .map(|_| sb.helper().arg("get").stdin(HOST).skip_leak_check().spawn())
            .collect();
        std::thread::sleep(Duration::from_micros(rand() % 3000));
        for r in running {
            if rand() % 3 == 0 {
                sigkill(r.id());
                killed += 1;
            }
            let _ = r.wait();
        }
        for entry in cache_entries(&sb) {
            let bytes = std::fs::read(&entry).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("round {round}: invalid cache file ({e}): {bytes:?}"));
            assert_eq!(v["version"], serde_json::json!(1));
            assert!(
                fake.issued_access_tokens()
                    .iter()
                    .any(|t| v["access_token"] == *t)
            );
        }
    }
    assert!(killed > 0);
    // A writer killed between creating its temp file and renaming it leaves the
    // file behind; plant one like that (its pid is dead) beside one of a live writer.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let stale = sb.cache_dir().join(format!(".gar-tmp-{dead_pid}-AbCdEf"));
    let live = sb
        .cache_dir()
        .join(format!(".gar-tmp-{}-GhIjKl", std::process::id()));
    std::fs::write(&stale, "{\"version\":1,\"acc").unwrap();
    std::fs::write(&live, "").unwrap();
    // The next refresh sweeps temp files whose writers are gone, and only those.
    fake.set_expires_in(3600);
    let entry = cache_entries(&sb).remove(0);
    std::fs::remove_file(entry).unwrap();
    sb.get(HOST).secret();
    let temps = list(&sb, |n| n.starts_with(".gar-tmp-"));
    assert_eq!(
        temps,
        vec![live],
        "stale temp files are swept, a live writer's is kept"
    );
    assert_eq!(cache_entries(&sb).len(), 1);
}

// ---------------------------------------------------------------------------
// The cache on disk
// ---------------------------------------------------------------------------

#[test]
fn a_symlink_planted_in_the_cache_is_never_followed() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    let first = sb.get(HOST).secret();
    let entry = cache_entries(&sb).remove(0);
    // An attacker's file with a token of their choosing, linked in as our entry.
    let bait = sb.files_dir().join("bait.json");
    let bait_text = format!(
        r#"{{"version":1,"access_token":"ya29.planted","expires_at":{},"lifetime":3600}}"#,
        support::now_unix() + 3000
    );
    std::fs::write(&bait, &bait_text).unwrap();
    std::fs::set_permissions(&bait, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(&entry).unwrap();
    std::os::unix::fs::symlink(&bait, &entry).unwrap();
    let second = sb.get(HOST).secret();
    assert_ne!(second, "ya29.planted", "read through a symlink");
    assert_ne!(second, first);
    assert_eq!(
        std::fs::read_to_string(&bait).unwrap(),
        bait_text,
        "wrote through a symlink"
    );
    assert!(
        !std::fs::symlink_metadata(&entry)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn cache_files_open_to_others_or_owned_by_others_are_replaced() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    let a = sb.get(HOST).secret();
    let entry = cache_entries(&sb).remove(0);
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o644)).unwrap();
    let b = sb.get(HOST).secret();
    assert_ne!(a, b, "a group/other-readable file is not trusted");
    assert_eq!(std::fs::metadata(&entry).unwrap().mode() & 0o777, 0o600);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&entry, Some(65534), Some(65534)).unwrap();
        let c = sb.get(HOST).secret();
        assert_ne!(b, c, "a file owned by another user is not trusted");
        assert_eq!(std::fs::metadata(&entry).unwrap().uid(), 0);
    } else {
        eprintln!("SKIP: foreign-owner case needs root to chown");
    }
}

#[test]
fn the_cache_holds_no_refresh_token_key_or_client_secret() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let user = fake.authorized_user(Some(&fake.token_url()));
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("user.json", &user.json),
    );
    sb.get(HOST).secret();
    let key = fake.service_account(&fake.token_url());
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("sa.json", &key.json),
    );
    sb.get(HOST).secret();
    let mut all = String::new();
    for p in list(&sb, |_| true) {
        all.push_str(&p.file_name().unwrap().to_string_lossy());
        all.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
    }
    for (kind, secret) in support::secrets() {
        if !matches!(kind, SecretKind::AccessToken) {
            assert!(!all.contains(&secret), "{kind:?} in the cache");
        }
    }
    for needle in [
        user.refresh_token.as_str(),
        user.client_secret.as_str(),
        "PRIVATE KEY",
        &key.client_email,
        "sa.json",
        "user.json",
    ] {
        assert!(!all.contains(needle), "{needle} in the cache");
    }
}

#[test]
fn a_full_cache_disk_still_answers_with_one_warning() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    // RLIMIT_FSIZE 0 makes every write fail with EFBIG, as on a full disk.
    let out = sb
        .command("sh")
        .args([
            "-c",
            "ulimit -f 0; trap '' XFSZ; exec \"$0\" get",
            support::BIN,
        ])
        .stdin(HOST)
        .run();
    let secret = out.secret();
    assert_eq!(fake.issued_access_tokens(), vec![secret]);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.dump());
    out.assert_stderr_contains("could not write the token cache");
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

#[test]
fn bad_stdin_gets_a_clear_answer_and_no_panic() {
    let sb = Sandbox::new();
    support::register_secret(SecretKind::AccessToken, "ya29.bad-input-env");
    sb.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.bad-input-env");
    let run = |bytes: &[u8]| sb.helper().arg("get").stdin(bytes).run();

    let big = vec![b'a'; 64 * 1024 + 1];
    run(&big)
        .assert_code(1)
        .assert_stdout_contains("larger than 64 KiB");
    run(b"\xff\xfe gcr.io")
        .assert_code(1)
        .assert_stdout_contains("not UTF-8");
    assert_eq!(
        run("\u{feff}gcr.io".as_bytes()).secret(),
        "ya29.bad-input-env"
    );
    run(b"gcr.io\0evil.test")
        .assert_code(1)
        .assert_stdout_contains("credentials not found in native keychain");
    run(b" \t\r\n ")
        .assert_code(1)
        .assert_stdout_contains("no credentials server URL");
    run(b"https://user:pass@gcr.io/")
        .assert_code(1)
        .assert_stdout_contains("credentials not found");
    run(b"https://evil.test#gcr.io")
        .assert_code(1)
        .assert_stdout_contains("credentials not found");
    for out in [run(&big), run(b"\xff")] {
        assert!(!out.stderr.contains("panicked"), "{}", out.dump());
    }
}

#[test]
fn bad_credential_files_are_refused_with_the_reason() {
    let sb = Sandbox::new();
    let key = support::fake_google::test_key();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong-type.json",
            r#"{"type":"service_account","client_email":42,"private_key":"x"}"#.into(),
            "a field has the wrong type",
        ),
        (
            "type-not-string.json",
            r#"{"type":["service_account"]}"#.into(),
            "`type` field that is not a string",
        ),
        ("huge.json", format!("{{\"type\":\"x\",\"pad\":\"{}\"}}", "a".repeat(1_100_000)), "larger than 1 MiB"),
        (
            "not-pem.json",
            serde_json::json!({"type":"service_account","client_email":"a@b","private_key":"not a key","token_uri":"http://127.0.0.1:1/token"}).to_string(),
            "is not a PEM-encoded private key",
        ),
        (
            "not-rsa.json",
            serde_json::json!({"type":"service_account","client_email":"a@b","token_uri":"http://127.0.0.1:1/token",
                "private_key":"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBmR1j5Dq0ZbGgkKx0fY6X0D1y5YKQ2bX8mP1uBNvWcKoAoGCCqGSM49\nAwEHoUQDQgAE8xOUetsCa8EfOlDEBAfREhJqspDoyEh6Szz2in47Tv5n52m9dLYy\nPCbUsfDqlGDCqEGXbo+LhDf5XXbGFp9Qlg==\n-----END EC PRIVATE KEY-----\n"}).to_string(),
            "is not an RSA key",
        ),
        (
            "http-token-uri.json",
            serde_json::json!({"type":"service_account","client_email":"a@b","private_key":key.pkcs8_pem,"token_uri":"http://oauth2.example.test/token"}).to_string(),
            "plain http:// is allowed only on loopback",
        ),
    ];
    for (name, text, expected) in cases {
        let f = sb.write_file(name, &text);
        sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &f);
        let out = sb.get(HOST);
        out.assert_code(1);
        assert_eq!(out.stdout.lines().count(), 1, "{name}: {}", out.dump());
        assert!(out.stdout.contains(expected), "{name}: {}", out.dump());
        assert!(
            !out.stdout.contains("BEGIN"),
            "{name}: key material in the error"
        );
    }
}

// ---------------------------------------------------------------------------
// Proxies
// ---------------------------------------------------------------------------

#[test]
fn https_token_requests_go_through_the_proxy_by_connect() {
    // An https endpoint behind HTTPS_PROXY: the helper asks the proxy for a tunnel
    // (CONNECT) and never resolves or dials the endpoint itself. The test proxy
    // refuses non-loopback tunnels, so the mint fails, naming the endpoint.
    let fake = FakeGoogle::start();
    let proxy = CountingProxy::start();
    let sb = Sandbox::new();
    let key = fake.service_account("https://oauth2.example.test/token");
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("sa.json", &key.json),
    );
    sb.set_env("HTTPS_PROXY", proxy.url());
    sb.set_env("GAR_HTTP_TIMEOUT", "5");
    let out = sb.get(HOST);
    out.assert_code(1)
        .assert_stdout_contains("https://oauth2.example.test/token");
    assert_eq!(
        proxy.targets(),
        vec!["CONNECT oauth2.example.test:443".to_owned()]
    );
}

#[test]
fn loopback_endpoints_and_the_metadata_server_are_never_proxied() {
    // A proxy would resolve "localhost" on its own host, and a plain-http loopback
    // endpoint would hand it the refresh token in clear text.
    let fake = FakeGoogle::start();
    let proxy = CountingProxy::start();
    let sb = Sandbox::new();
    let user = fake.authorized_user(Some(&fake.token_url()));
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("user.json", &user.json),
    );
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        sb.set_env(var, proxy.url());
    }
    let secret = sb.get(HOST).secret();
    assert_eq!(fake.issued_access_tokens(), vec![secret]);
    let sb2 = Sandbox::new();
    sb2.set_env("PATH", sb2.bin_dir());
    sb2.set_env("GCE_METADATA_HOST", fake.metadata_host());
    sb2.set_env("HTTP_PROXY", proxy.url());
    sb2.set_env("ALL_PROXY", proxy.url());
    sb2.get(HOST).secret();
    assert_eq!(fake.count(METADATA_TOKEN_PATH), 1);
    assert!(proxy.targets().is_empty(), "{:?}", proxy.targets());
}

#[test]
fn a_socks_proxy_is_refused_with_a_clear_error_not_a_crash() {
    let sb = Sandbox::new();
    let fake = FakeGoogle::start();
    let key = fake.service_account("https://oauth2.example.test/token");
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("sa.json", &key.json),
    );
    sb.set_env("ALL_PROXY", "socks5h://127.0.0.1:1080");
    let out = sb.get(HOST);
    out.assert_code(1).assert_stdout_contains(
        "ALL_PROXY names a SOCKS proxy, which docker-credential-gar does not support",
    );
}

#[test]
fn an_invalid_proxy_setting_is_named() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let key = fake.service_account("https://oauth2.example.test/token");
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("sa.json", &key.json),
    );
    sb.set_env("HTTPS_PROXY", "http://[bad");
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("HTTPS_PROXY is not a valid proxy URL");
    assert_eq!(fake.count("/token"), 0);
}

#[test]
fn loopback_check_holds_for_every_server_string_the_binary_sees() {
    // A process-level spot check beside the in-process property test: odd
    // strings never get a token.
    let sb = Sandbox::new();
    support::register_secret(SecretKind::AccessToken, "ya29.spot-check");
    sb.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.spot-check");
    let started = Instant::now();
    for s in [
        "europe-north1-docker.pkg.dev%2F@evil.test",
        "europe-north1-docker.pkg.dev\\@evil.test",
        "https://europe-north1-docker.pkg.dev:443@evil.test",
        "[europe-north1-docker.pkg.dev]",
        "europe-north1-docker.pkg.dev:99999",
        "xn--europe-north1-docker.pkg.dev.evil.test",
        "europe-north1-docker.pkg.dev\u{3002}evil.test",
    ] {
        let out = sb.get(s);
        out.assert_code(1)
            .assert_stdout_contains("credentials not found");
    }
    assert!(started.elapsed() < Duration::from_secs(60));
}

// ---------------------------------------------------------------------------
// Secrets in logs
// ---------------------------------------------------------------------------

#[test]
fn every_run_logs_at_debug_into_a_file_the_leak_check_reads() {
    // The support module runs every process with GAR_LOG=debug into the sandbox's
    // log file and fails the run if any registered secret shows up there. Check
    // that the file really fills up, so that check is not vacuous.
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    let secret = sb.get(HOST).secret();
    sb.get(HOST).secret();
    let log = std::fs::read_to_string(sb.debug_log()).expect("debug log written");
    assert!(log.lines().count() >= 4, "{log}");
    assert!(
        log.contains("cache miss") && log.contains("cache hit"),
        "{log}"
    );
    assert!(!log.contains(&secret));
    // And the check itself catches a secret in a log line.
    let leaked = format!("{log}debug get: token {secret}\n");
    assert!(support::check_no_leaks_with(&support::secrets(), "", &leaked).is_err());
}

// ---------------------------------------------------------------------------
// Found by a fresh user's session
// ---------------------------------------------------------------------------

#[test]
fn a_cached_token_from_the_future_is_not_trusted() {
    // The clock went back (VM resumed, NTP step): the entry claims far more time
    // left than its lifetime. It is minted again rather than served for hours.
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    let first = sb.get(HOST).secret();
    let entry = cache_entries(&sb).remove(0);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
    v["expires_at"] = serde_json::json!(support::now_unix() + 100_000);
    std::fs::write(&entry, v.to_string()).unwrap();
    let second = sb.get(HOST).secret();
    assert_ne!(first, second);
    assert_eq!(fake.count("/token"), 2);
}

#[test]
fn tokens_with_control_characters_are_refused() {
    let sb = Sandbox::new();
    sb.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.first-line\nsecond-line");
    let out = sb.get(HOST);
    out.assert_code(1)
        .assert_stdout_contains("access token with spaces or control characters");
    assert_eq!(out.stdout.lines().count(), 1);
}

#[test]
fn a_token_echoed_in_an_upstream_error_is_masked() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    fake.push_token_response(ForcedResponse::new(
        400,
        r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature. seen ya29.ECHOED-secret-abcdef123"}"#,
    ));
    let out = sb.get(HOST);
    out.assert_code(1).assert_stdout_contains("invalid_grant");
    assert!(!out.stdout.contains("ECHOED-secret"), "{}", out.dump());
}

#[test]
fn unusable_settings_are_named_on_stderr() {
    let sb = Sandbox::new();
    support::register_secret(SecretKind::AccessToken, "ya29.settings-env");
    sb.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.settings-env");
    sb.set_env(
        "GAR_REGISTRIES",
        "mirror.example;other.example, 127.0.0.1:5000",
    );
    let out = sb.get("127.0.0.1:5000");
    assert_eq!(out.secret(), "ya29.settings-env");
    out.assert_stderr_contains(
        "GAR_REGISTRIES entry 'mirror.example;other.example' is not a host[:port]",
    );
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    sb.set_env("GAR_HTTP_TIMEOUT", "abc");
    let out = sb.get(HOST);
    out.secret();
    out.assert_stderr_contains("GAR_HTTP_TIMEOUT=abc is not a number of seconds");
}

#[test]
fn concurrent_configure_docker_runs_keep_every_host() {
    let sb = Sandbox::new();
    std::fs::write(sb.docker_config_json(), "{}").unwrap();
    let running: Vec<_> = (0..24)
        .map(|i| {
            sb.helper()
                .args(["configure-docker", "--registries"])
                .arg(format!("host{i}.example"))
                .spawn()
        })
        .collect();
    for r in running {
        r.wait().assert_ok();
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.docker_config_json()).unwrap()).unwrap();
    let helpers = v["credHelpers"].as_object().unwrap();
    assert_eq!(helpers.len(), 24, "{v}");
    // No lock file was left in docker's config directory.
    let names: Vec<String> = std::fs::read_dir(sb.docker_config())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["config.json"]);
}

#[test]
fn a_redirecting_token_endpoint_is_named_as_such() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    fake.push_token_response(
        ForcedResponse::new(302, "").header("Location", "https://login.example.test/"),
    );
    sb.get(HOST)
        .assert_code(1)
        .assert_stdout_contains("answered with a redirect (HTTP 302), which is not followed");
}

#[test]
fn secrets_an_endpoint_echoes_back_are_masked() {
    // A misbehaving endpoint (or an intercepting proxy) that puts our request in
    // its error: the refresh token and client secret must not reach docker's output.
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let user = fake.authorized_user(Some(&fake.token_url()));
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("user.json", &user.json),
    );
    let echoed = format!(
        "bad client: grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
        user.client_id,
        user.client_secret,
        user.refresh_token.replace('/', "%2F")
    );
    fake.push_token_response(ForcedResponse::new(
        401,
        serde_json::json!({"error": "invalid_client", "error_description": echoed}).to_string(),
    ));
    let out = sb.get(HOST);
    out.assert_code(1).assert_stdout_contains("invalid_client");
    assert!(out.stdout.contains("<redacted>"), "{}", out.dump());
    assert!(!out.stdout.contains(&user.client_secret), "{}", out.dump());
    assert!(
        !out.stdout.contains(&user.refresh_token.replace('/', "%2F")),
        "{}",
        out.dump()
    );
}

#[test]
fn passwords_in_endpoint_urls_never_show() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let url = "https://user:URLPASSWORD@oauth2.example.test/token?key=QUERYSECRET";
    let key = fake.service_account(url);
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("sa.json", &key.json),
    );
    // A proxy that refuses the tunnel, so nothing leaves the machine.
    let proxy = CountingProxy::start();
    sb.set_env("HTTPS_PROXY", proxy.url());
    let out = sb.get(HOST);
    out.assert_code(1)
        .assert_stdout_contains("https://oauth2.example.test/token?…");
    assert!(!out.stdout.contains("URLPASSWORD") && !out.stdout.contains("QUERYSECRET"));
    let log = std::fs::read_to_string(sb.debug_log()).unwrap_or_default();
    assert!(
        !log.contains("URLPASSWORD") && !log.contains("QUERYSECRET"),
        "{log}"
    );
}

#[test]
fn a_log_file_planted_by_someone_else_is_not_written() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    let planted = sb.files_dir().join("planted.log");
    std::fs::write(&planted, "").unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = sb
        .helper()
        .env("GAR_LOG", "info")
        .env("GAR_LOG_FILE", &planted)
        .arg("get")
        .stdin(HOST)
        .run();
    out.secret();
    assert_eq!(
        std::fs::read_to_string(&planted).unwrap(),
        "",
        "nothing appended"
    );
    out.assert_stderr_contains("not a private regular file of this user");
}

#[test]
fn a_huge_expires_in_is_clamped_and_the_token_still_cached() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    fake.push_token_response(ForcedResponse::new(
        200,
        r#"{"access_token":"ya29.huge-expiry","expires_in":18446744073709551615}"#,
    ));
    support::register_secret(SecretKind::AccessToken, "ya29.huge-expiry");
    assert_eq!(sb.get(HOST).secret(), "ya29.huge-expiry");
    assert_eq!(sb.get(HOST).secret(), "ya29.huge-expiry");
    assert_eq!(fake.count("/token"), 1);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cache_entries(&sb)[0]).unwrap()).unwrap();
    assert_eq!(v["lifetime"], serde_json::json!(12 * 3600));
}

#[test]
fn escape_sequences_from_files_never_reach_the_terminal() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let user = fake.authorized_user(Some(&fake.token_url()));
    let mut v: serde_json::Value = serde_json::from_str(&user.json).unwrap();
    v["account"] = serde_json::json!("me\u{1b}]0;PWNED\u{7}@example.com");
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("user.json", &v.to_string()),
    );
    fake.revoke_refresh_token(&user.refresh_token);
    let out = sb.get(HOST);
    out.assert_code(1);
    assert!(
        !out.stdout.contains('\u{1b}') && !out.stdout.contains('\u{7}'),
        "{:?}",
        out.stdout
    );
    let out = sb.helper().args(["doctor", "--offline"]).run();
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);
}
