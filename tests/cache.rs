//! The on-disk token cache: reuse, margins, concurrency, corruption, permissions.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use support::Sandbox;
use support::fake_google::FakeGoogle;

const HOST: &str = "europe-north1-docker.pkg.dev";

fn setup() -> (FakeGoogle, Sandbox) {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let key = fake.service_account(&fake.token_url());
    let path = sb.write_file("sa.json", &key.json);
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    (fake, sb)
}

fn cache_files(sb: &Sandbox) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(sb.cache_dir())
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn entry_files(sb: &Sandbox) -> Vec<PathBuf> {
    cache_files(sb)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

#[test]
fn a_second_get_makes_no_upstream_request() {
    let (fake, sb) = setup();
    let first = sb.get(HOST).secret();
    let second = sb.get("https://europe-north1-docker.pkg.dev/v2/").secret();
    assert_eq!(first, second);
    assert_eq!(fake.count("/token"), 1);
}

#[test]
fn cache_files_are_private_hashed_and_hold_only_the_access_token() {
    let (fake, sb) = setup();
    // The helper creates the directory itself (an existing one is never chmod'ed).
    std::fs::remove_dir(sb.cache_dir()).unwrap();
    let secret = sb.get(HOST).secret();
    let dir_mode = std::fs::metadata(sb.cache_dir())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let entries = entry_files(&sb);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let name = entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.trim_end_matches(".json")
            .chars()
            .all(|c| c.is_ascii_hexdigit()),
        "file name is a hash: {name}"
    );
    assert_eq!(
        std::fs::metadata(&entries[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&entries[0]).unwrap()).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["access_token", "expires_at", "lifetime", "version"]);
    assert_eq!(v["access_token"], serde_json::json!(secret));
    assert_eq!(v["version"], serde_json::json!(1));
    let exp = v["expires_at"].as_u64().unwrap();
    assert!(exp.abs_diff(support::now_unix() + 3600) < 60);
    assert_eq!(fake.count("/token"), 1);
}

#[test]
fn a_token_inside_the_five_minute_margin_is_not_reused() {
    let (fake, sb) = setup();
    sb.get(HOST).secret();
    let entry = entry_files(&sb).remove(0);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
    // 4 minutes left of an hour-long token: inside the margin.
    v["expires_at"] = serde_json::json!(support::now_unix() + 240);
    std::fs::write(&entry, v.to_string()).unwrap();
    let fresh = sb.get(HOST).secret();
    assert_eq!(fake.count("/token"), 2);
    assert_eq!(fake.last_access_token().as_deref(), Some(fresh.as_str()));
    // …and with 6 minutes left it is reused.
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
    v["expires_at"] = serde_json::json!(support::now_unix() + 360);
    std::fs::write(&entry, v.to_string()).unwrap();
    assert_eq!(sb.get(HOST).secret(), fresh);
    assert_eq!(fake.count("/token"), 2);
}

#[test]
fn a_short_lived_token_is_reused_while_more_than_half_remains() {
    let (fake, sb) = setup();
    fake.set_expires_in(300);
    let first = sb.get(HOST).secret();
    assert_eq!(
        sb.get(HOST).secret(),
        first,
        "5-minute token, just minted: reused"
    );
    assert_eq!(fake.count("/token"), 1);
    let entry = entry_files(&sb).remove(0);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
    assert_eq!(v["lifetime"], serde_json::json!(300));
    v["expires_at"] = serde_json::json!(support::now_unix() + 140);
    std::fs::write(&entry, v.to_string()).unwrap();
    assert_ne!(
        sb.get(HOST).secret(),
        first,
        "under half left: minted again"
    );
    assert_eq!(fake.count("/token"), 2);
}

#[test]
fn thirty_two_parallel_cold_gets_make_one_upstream_request() {
    let (fake, sb) = setup();
    fake.set_delay(std::time::Duration::from_millis(200));
    let running: Vec<_> = (0..32)
        .map(|_| sb.helper().arg("get").stdin(HOST).spawn())
        .collect();
    let secrets: Vec<String> = running.into_iter().map(|r| r.wait().secret()).collect();
    assert_eq!(fake.count("/token"), 1);
    let issued = fake.issued_access_tokens();
    assert!(secrets.iter().all(|s| *s == issued[0]));
    assert_eq!(entry_files(&sb).len(), 1);
}

#[test]
fn a_corrupt_truncated_or_old_format_cache_is_ignored_and_rewritten() {
    let (fake, sb) = setup();
    sb.get(HOST).secret();
    let entry = entry_files(&sb).remove(0);
    let good = std::fs::read_to_string(&entry).unwrap();
    let old = good.replace("\"version\":1", "\"version\":0");
    for (i, bad) in ["", "{\"version\":1,\"access_tok", "not json", old.as_str()]
        .iter()
        .enumerate()
    {
        std::fs::write(&entry, bad).unwrap();
        let s = sb.get(HOST).secret();
        assert_eq!(fake.count("/token"), i + 2, "case {i}");
        assert_eq!(fake.last_access_token().as_deref(), Some(s.as_str()));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
        assert_eq!(
            v["access_token"],
            serde_json::json!(s),
            "rewritten, case {i}"
        );
    }
}

#[test]
fn an_unwritable_cache_dir_still_yields_a_token_with_a_warning() {
    let (fake, sb) = setup();
    // A regular file where the cache directory should be: works even as root.
    let blocker = sb.files_dir().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    sb.set_env("GAR_CACHE_DIR", blocker.join("cache"));
    let out = sb.get(HOST);
    let secret = out.secret();
    assert_eq!(fake.issued_access_tokens(), vec![secret]);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.dump());
    out.assert_stderr_contains("warning");
}

#[test]
fn gar_no_cache_turns_the_cache_off() {
    let (fake, sb) = setup();
    sb.set_env("GAR_NO_CACHE", "1");
    let a = sb.get(HOST).secret();
    let b = sb.get(HOST).secret();
    assert_ne!(a, b);
    assert_eq!(fake.count("/token"), 2);
    assert!(cache_files(&sb).is_empty());
}

#[test]
fn erase_drops_the_cached_token_for_the_host() {
    let (fake, sb) = setup();
    let a = sb.get(HOST).secret();
    sb.helper().arg("erase").stdin(HOST).run().assert_code(0);
    assert!(entry_files(&sb).is_empty());
    let b = sb.get(HOST).secret();
    assert_ne!(a, b);
    assert_eq!(fake.count("/token"), 2);
}

#[test]
fn switching_identity_never_returns_the_old_identitys_token() {
    let (fake, sb) = setup();
    let a = sb.get(HOST).secret();
    let other = fake.service_account(&fake.token_url());
    let path = sb.write_file("other.json", &other.json);
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    let b = sb.get(HOST).secret();
    assert_ne!(a, b);
    // The same path rewritten with another user's refresh token is another identity too.
    let u1 = fake.authorized_user(Some(&fake.token_url()));
    let upath = sb.write_file("user.json", &u1.json);
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &upath);
    let c = sb.get(HOST).secret();
    let u2 = fake.authorized_user(Some(&fake.token_url()));
    std::fs::write(&upath, &u2.json).unwrap();
    let d = sb.get(HOST).secret();
    assert_ne!(c, d);
    assert_eq!(fake.count("/token"), 4);
}
