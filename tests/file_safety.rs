//! Files and directories that configuration names but another user may control:
//! FIFOs where a file is expected never hang a command, an executable's
//! `output_file` is trusted only when it is ours alone, and cache directories that
//! are not private are neither used nor chmod'ed, nor swept of foreign files.
//!
//! This machine's tests run as root; "another user" is uid 65534 (`chown`).

mod support;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use support::Sandbox;
use support::fake_google::{FakeGoogle, JWT_TOKEN_TYPE, STS_PATH};

const HOST: &str = "europe-north1-docker.pkg.dev";
const PROVIDER: &str =
    "projects/123456789012/locations/global/workloadIdentityPools/ci-pool/providers/files";
/// Another local user.
const NOBODY: u32 = 65534;
/// How long a command given a FIFO may take: far under the runner's 60 s, far
/// over a normal run.
const FAST: Duration = Duration::from_secs(10);

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", p.display());
}

fn chown_to_nobody(p: &Path) {
    std::os::unix::fs::lchown(p, Some(NOBODY), Some(NOBODY))
        .unwrap_or_else(|e| panic!("chown {}: {e} (these tests run as root)", p.display()));
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A sandbox with a service-account key in GOOGLE_APPLICATION_CREDENTIALS.
fn with_key(fake: &FakeGoogle) -> Sandbox {
    let sb = Sandbox::new();
    let key = fake.service_account(&fake.token_url());
    let path = sb.write_file("sa.json", &key.json);
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    sb
}

// ---------------------------------------------------------------------------
// Cache directories that are not ours alone
// ---------------------------------------------------------------------------

/// `get` with GAR_CACHE_DIR=`dir` answers twice, minting each time (no cache), with
/// exactly one warning line per run that names the directory and `problem`, and
/// leaves the directory empty and as it was.
fn assert_cache_dir_refused(fake: &FakeGoogle, sb: &Sandbox, dir: &Path, problem: &str) {
    let before = std::fs::metadata(dir).unwrap();
    sb.set_env("GAR_CACHE_DIR", dir);
    let minted_before = fake.count("/token");
    for i in 1..=2 {
        let out = sb.get(HOST);
        let secret = out.secret();
        assert_eq!(fake.last_access_token().as_deref(), Some(secret.as_str()));
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one warning, run {i}\n{}", out.dump());
        assert_eq!(
            lines[0],
            format!(
                "docker-credential-gar: warning: token cache {} {problem}; point GAR_CACHE_DIR at a private \
                 directory of yours (or set GAR_NO_CACHE=1) — continuing without the cache",
                dir.display()
            )
        );
    }
    assert_eq!(
        fake.count("/token"),
        minted_before + 2,
        "no token was cached"
    );
    let after = std::fs::metadata(dir).unwrap();
    assert_eq!(
        after.mode(),
        before.mode(),
        "the directory was not chmod'ed"
    );
    assert_eq!(after.uid(), before.uid());
    assert_eq!(names_in(dir), Vec::<String>::new(), "nothing written there");
}

#[test]
fn a_world_writable_cache_dir_is_neither_used_nor_chmoded() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    let shared = sb.files_dir().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_cache_dir_refused(
        &fake,
        &sb,
        &shared,
        "is writable by other users (permissions 0777)",
    );
    assert_eq!(mode(&shared), 0o777);
    // A sticky, world-writable directory like /tmp is refused the same way.
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert_cache_dir_refused(
        &fake,
        &sb,
        &shared,
        "is writable by other users (permissions 1777)",
    );
    assert_eq!(mode(&shared), 0o1777);
}

#[test]
fn a_cache_dir_of_another_user_is_not_used() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    let theirs = sb.files_dir().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_to_nobody(&theirs);
    assert_cache_dir_refused(
        &fake,
        &sb,
        &theirs,
        &format!("belongs to another user (uid {NOBODY})"),
    );
    assert_eq!(std::fs::metadata(&theirs).unwrap().uid(), NOBODY);
    assert_eq!(mode(&theirs), 0o755);
    // A symlink to such a directory is no better.
    let link = sb.files_dir().join("link-to-theirs");
    std::os::unix::fs::symlink(&theirs, &link).unwrap();
    assert_cache_dir_refused(
        &fake,
        &sb,
        &link,
        &format!("belongs to another user (uid {NOBODY})"),
    );
}

#[test]
fn a_missing_cache_dir_is_created_private_and_a_symlink_to_our_private_dir_is_used() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    let fresh = sb.files_dir().join("new/cache");
    sb.set_env("GAR_CACHE_DIR", &fresh);
    let a = sb.get(HOST);
    a.assert_stderr_empty();
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(sb.get(HOST).secret(), a.secret(), "served from the cache");
    assert_eq!(fake.count("/token"), 1);
    let link = sb.files_dir().join("cache-link");
    std::os::unix::fs::symlink(&fresh, &link).unwrap();
    sb.set_env("GAR_CACHE_DIR", &link);
    let b = sb.get(HOST);
    b.assert_stderr_empty();
    assert_eq!(b.secret(), a.secret());
    assert_eq!(fake.count("/token"), 1);
}

#[test]
fn the_temp_file_sweep_removes_only_our_own_gar_temp_files() {
    let fake = FakeGoogle::start();
    let sb = with_key(&fake);
    let dir = sb.cache_dir();
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    // Leftovers of a killed writer of ours: swept.
    let ours = dir.join(format!(".gar-tmp-{dead_pid}-Mine01"));
    std::fs::write(&ours, "{\"version\":1,\"acc").unwrap();
    std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Same name pattern, but another user's file: kept.
    let foreign = dir.join(format!(".gar-tmp-{dead_pid}-Theirs"));
    std::fs::write(&foreign, "theirs").unwrap();
    chown_to_nobody(&foreign);
    // A symlink with our prefix: kept (and so is its target).
    let target = sb.files_dir().join("precious");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.join(format!(".gar-tmp-{dead_pid}-Link01"));
    std::os::unix::fs::symlink(&target, &link).unwrap();
    // Unrelated files that merely look temporary (GAR_CACHE_DIR may be $HOME): kept.
    let unrelated = dir.join(format!(".tmp-{dead_pid}-x"));
    std::fs::write(&unrelated, "someone else's").unwrap();
    let plain = dir.join(".tmp-x");
    std::fs::write(&plain, "someone else's").unwrap();

    // A cold get writes an entry and then sweeps.
    sb.get(HOST).secret();
    assert_eq!(fake.count("/token"), 1);
    let names = names_in(&dir);
    let json: Vec<&String> = names.iter().filter(|n| n.ends_with(".json")).collect();
    assert_eq!(json.len(), 1, "{names:?}");
    let mut want = vec![
        json[0].clone(),
        format!(".gar-tmp-{dead_pid}-Link01"),
        format!(".gar-tmp-{dead_pid}-Theirs"),
        ".tmp-x".to_owned(),
        format!(".tmp-{dead_pid}-x"),
    ];
    want.extend(names.iter().filter(|n| n.ends_with(".lock")).cloned());
    want.sort();
    assert_eq!(names, want, "only our own stale temp file is gone");
    assert!(!ours.exists());
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "theirs");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

// ---------------------------------------------------------------------------
// FIFOs where a file is expected
// ---------------------------------------------------------------------------

#[test]
fn google_application_credentials_naming_a_fifo_fails_fast_naming_the_path() {
    let sb = Sandbox::new();
    let fifo = sb.files_dir().join("creds.fifo");
    mkfifo(&fifo);
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &fifo);
    let out = sb.helper().arg("get").stdin(HOST).timeout(FAST).run();
    out.assert_code(1);
    assert_eq!(
        out.stdout.trim(),
        format!(
            "docker-credential-gar: GOOGLE_APPLICATION_CREDENTIALS points to {}, which is a FIFO \
             (named pipe), not a regular file; use a credentials JSON file",
            fifo.display()
        ),
        "{}",
        out.dump()
    );
    assert!(out.elapsed < FAST, "{:?}", out.elapsed);
    // doctor looks at the same file (and its identity) without hanging either.
    let doc = sb
        .helper()
        .args(["doctor", "--offline"])
        .timeout(FAST)
        .run();
    assert!(doc.elapsed < FAST, "{:?}", doc.elapsed);
    let all = format!("{}{}", doc.stdout, doc.stderr);
    assert!(
        all.contains(&format!(
            "{}, which is a FIFO (named pipe), not a regular file",
            fifo.display()
        )),
        "{}",
        doc.dump()
    );
}

/// Writes an `external_account` file with `credential_source` and points
/// GOOGLE_APPLICATION_CREDENTIALS at it.
fn external_account(sb: &Sandbox, fake: &FakeGoogle, credential_source: Value) -> PathBuf {
    let v = json!({
        "type": "external_account",
        "audience": format!("//iam.googleapis.com/{PROVIDER}"),
        "subject_token_type": JWT_TOKEN_TYPE,
        "token_url": fake.sts_url(),
        "credential_source": credential_source,
    });
    let path = sb.write_file("wif.json", &v.to_string());
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &path);
    path
}

fn token_aud() -> String {
    format!("https://iam.googleapis.com/{PROVIDER}")
}

#[test]
fn a_subject_token_file_that_is_a_fifo_fails_fast_naming_the_path() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let fifo = sb.files_dir().join("token.fifo");
    mkfifo(&fifo);
    let cred = external_account(&sb, &fake, json!({"file": fifo}));
    let out = sb.helper().arg("get").stdin(HOST).timeout(FAST).run();
    out.assert_code(1);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.dump());
    out.assert_stdout_contains(&format!(
        "docker-credential-gar: external account credentials {}: reading the subject token from file {} failed: \
         the file is a FIFO (named pipe), not a regular file; check credential_source.file",
        cred.display(),
        fifo.display()
    ));
    assert!(out.elapsed < FAST, "{:?}", out.elapsed);
    assert_eq!(fake.total_count(), 0);
    let doc = sb
        .helper()
        .args(["doctor", "--offline"])
        .timeout(FAST)
        .run();
    assert!(doc.elapsed < FAST, "{}", doc.dump());
}

#[test]
fn a_docker_config_that_is_a_fifo_never_hangs_list_doctor_or_configure_docker() {
    let sb = Sandbox::new();
    let config = sb.docker_config_json();
    mkfifo(&config);
    let list = sb.helper().arg("list").timeout(FAST).run();
    list.assert_ok();
    assert_eq!(list.json(), json!({}));
    assert!(list.elapsed < FAST, "{:?}", list.elapsed);

    let out = sb.helper().arg("configure-docker").timeout(FAST).run();
    out.assert_code(1);
    let all = format!("{}{}", out.stdout, out.stderr);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(
        lines,
        [format!(
            "docker-credential-gar: docker config {}: is a FIFO (named pipe), not a regular file; \
             move it out of the way and run configure-docker again",
            config.display()
        )],
        "{}",
        out.dump()
    );
    assert!(
        std::fs::symlink_metadata(&config)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    sb.set_env(
        "GOOGLE_OAUTH_ACCESS_TOKEN",
        "ya29.fifo-test-token-0123456789",
    );
    let doc = sb
        .helper()
        .args(["doctor", "--offline"])
        .timeout(FAST)
        .run();
    assert!(doc.elapsed < FAST, "{:?}", doc.elapsed);
    assert!(
        format!("{}{}", doc.stdout, doc.stderr).contains(&format!(
            "docker config {}: is a FIFO (named pipe), not a regular file",
            config.display()
        )),
        "{}",
        doc.dump()
    );
}

// ---------------------------------------------------------------------------
// An executable source's output_file
// ---------------------------------------------------------------------------

fn executable_response(subject: &str) -> String {
    json!({
        "version": 1,
        "success": true,
        "token_type": JWT_TOKEN_TYPE,
        "id_token": subject,
        "expiration_time": support::now_unix() + 3600,
    })
    .to_string()
}

/// A script that counts its runs and prints `response` (also into the output file).
fn write_token_script(sb: &Sandbox, response: &str) -> PathBuf {
    let script = sb.bin_dir().join("get-token");
    let root = sb.root().to_string_lossy().into_owned();
    support::write_executable(
        &script,
        &format!(
            "#!/bin/sh\n\
             echo run >> {runs}\n\
             resp={resp}\n\
             if [ -n \"$GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE\" ]; then printf '%s' \"$resp\" > \"$GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE\"; fi\n\
             printf '%s\\n' \"$resp\"\n",
            runs = support::sh_quote(&format!("{root}/exec-runs")),
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

/// Makes the file at the first path one another user controls (the second is its directory).
type Plant = fn(&Path, &Path);

#[test]
fn a_planted_output_file_that_is_not_ours_alone_is_ignored_and_the_executable_runs() {
    let fake = FakeGoogle::start();
    // Each way another user could control the file at output_file.
    let cases: [(&str, Plant); 3] = [
        ("owned by another user", |p, _| chown_to_nobody(p)),
        ("writable by others", |p, _| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap()
        }),
        ("a symlink", |p, dir| {
            let real = dir.join("planted-target.json");
            std::fs::rename(p, &real).unwrap();
            std::os::unix::fs::symlink(&real, p).unwrap();
        }),
    ];
    for (case, plant) in cases {
        let sb = Sandbox::new();
        sb.set_env("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1");
        let ours = fake.subject_token("exec-sub", &token_aud());
        let attackers = fake.subject_token("attacker", &token_aud());
        let script = write_token_script(&sb, &executable_response(&ours));
        // A shared directory, where another user got to the name first.
        let shared = sb.files_dir().join("tmp");
        std::fs::create_dir(&shared).unwrap();
        let output_file = shared.join("exec-output.json");
        std::fs::write(&output_file, executable_response(&attackers)).unwrap();
        std::fs::set_permissions(&output_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        plant(&output_file, &shared);
        external_account(
            &sb,
            &fake,
            json!({"executable": {
                "command": script.display().to_string(),
                "output_file": output_file,
            }}),
        );
        let sts_before = fake.count(STS_PATH);
        let secret = sb.get(HOST).secret();
        assert_eq!(runs(&sb), 1, "{case}: the executable ran");
        let sts = fake.requests_to(STS_PATH);
        assert_eq!(sts.len(), sts_before + 1, "{case}");
        assert_eq!(
            sts.last().unwrap().form("subject_token"),
            Some(ours.as_str()),
            "{case}: STS got the executable's token, not the planted one"
        );
        assert_eq!(fake.last_access_token().as_deref(), Some(secret.as_str()));
        let log = std::fs::read_to_string(sb.debug_log()).unwrap_or_default();
        assert!(
            log.contains(&format!(
                "not using the executable's output_file {}",
                output_file.display()
            )),
            "{case}: {log}"
        );
    }
}

// ---------------------------------------------------------------------------
// The credential store's directory
// ---------------------------------------------------------------------------

#[test]
fn store_refuses_a_config_dir_that_is_not_ours_alone_and_leaves_it_as_it_was() {
    let sb = Sandbox::new();
    sb.set_env("GAR_CREDENTIAL_STORE", "file");
    let secret = format!("pw-{}", support::random_hex(8));
    let req = json!({"ServerURL": "ghcr.io", "Username": "bob", "Secret": secret}).to_string();
    let shared = sb.files_dir().join("shared-config");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let theirs = sb.files_dir().join("their-config");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown_to_nobody(&theirs);
    for (dir, problem, was) in [
        (
            &shared,
            "is writable by other users (permissions 0777)".to_owned(),
            0o777,
        ),
        (
            &theirs,
            format!("belongs to another user (uid {NOBODY})"),
            0o700,
        ),
    ] {
        sb.set_env("GAR_CONFIG_DIR", dir);
        let out = sb.helper().arg("store").stdin(&req).run();
        out.assert_code(1);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(
            all.trim_end(),
            format!(
                "docker-credential-gar: the config directory {} {problem}, so credentials are not kept there; \
                 set GAR_CONFIG_DIR to a private directory of yours (or fix its owner and mode)",
                dir.display()
            ),
            "{}",
            out.dump()
        );
        assert_eq!(mode(dir), was, "not chmod'ed");
        assert_eq!(names_in(dir), Vec::<String>::new(), "nothing written");
    }
    // A private directory of ours works, and is left at its mode.
    let mine = sb.files_dir().join("my-config");
    std::fs::create_dir(&mine).unwrap();
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o755)).unwrap();
    sb.set_env("GAR_CONFIG_DIR", &mine);
    sb.helper().arg("store").stdin(&req).run().assert_ok();
    assert_eq!(mode(&mine), 0o755);
    assert_eq!(mode(&mine.join("credentials.json")), 0o600);
    let got = sb.get("ghcr.io");
    assert_eq!(got.json()["Secret"], json!(secret));
}

#[test]
fn a_relative_cache_dir_is_named_and_the_default_used() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let key = fake.service_account(&fake.token_url());
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("sa.json", &key.json),
    );
    sb.set_env("GAR_CACHE_DIR", "relative/cache");
    let out = sb.get("europe-north1-docker.pkg.dev");
    out.secret();
    out.assert_stderr_contains("GAR_CACHE_DIR=relative/cache is a relative path");
    assert!(
        !sb.root().join("relative").exists(),
        "nothing created relative to the cwd"
    );
    let default = sb.home().join(".cache/docker-credential-gar");
    let written = std::fs::read_dir(&default)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
        .unwrap_or(false);
    assert!(written, "the token was cached in {}", default.display());
}
