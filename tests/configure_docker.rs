//! `docker-credential-gar configure-docker`, run as the real binary against a docker
//! config in a temporary directory (DOCKER_CONFIG and HOME always point into it).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use tempfile::TempDir;

const DEFAULT_HOST: &str = "europe-north1-docker.pkg.dev";

/// A scratch HOME and DOCKER_CONFIG.
struct Sandbox {
    _dir: TempDir,
    home: PathBuf,
    docker_config: PathBuf,
}

impl Sandbox {
    /// DOCKER_CONFIG is `<tmp>/docker`, not created yet; HOME is `<tmp>/home`.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        fs::create_dir(&home).unwrap();
        let docker_config = dir.path().join("docker");
        Sandbox {
            _dir: dir,
            home,
            docker_config,
        }
    }

    /// Like [`Sandbox::new`], with DOCKER_CONFIG created (0700).
    fn with_dir() -> Self {
        let sb = Self::new();
        fs::create_dir(&sb.docker_config).unwrap();
        fs::set_permissions(&sb.docker_config, fs::Permissions::from_mode(0o700)).unwrap();
        sb
    }

    fn config(&self) -> PathBuf {
        self.docker_config.join("config.json")
    }

    fn write_config(&self, content: &[u8]) {
        fs::write(self.config(), content).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_docker-credential-gar"));
        cmd.arg("configure-docker")
            .args(args)
            .env("HOME", &self.home)
            .env("DOCKER_CONFIG", &self.docker_config);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Asserts success and returns stdout.
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Asserts exit 1 with exactly one line of output in total, and returns that line.
fn fails_with_one_line(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    let all = format!("{}{}", stdout(out), stderr(out));
    let lines: Vec<&str> = all.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {all:?}");
    lines[0].to_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// Compact JSON text: equal strings mean equal values with keys in the same order.
fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

/// The names in `dir`, sorted (to catch leftover temporary files).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn running_as_root() -> bool {
    let dir = tempfile::tempdir().unwrap();
    fs::metadata(dir.path()).unwrap().uid() == 0
}

#[test]
fn creates_missing_directory_and_file_with_only_the_cred_helper() {
    let sb = Sandbox::new();
    let out = sb.run(&[]);
    assert_eq!(
        ok(&out),
        format!(
            "configured {DEFAULT_HOST} -> gar in {}\n",
            sb.config().display()
        )
    );
    assert_eq!(stderr(&out), "");
    assert_eq!(
        compact(&read_json(&sb.config())),
        r#"{"credHelpers":{"europe-north1-docker.pkg.dev":"gar"}}"#
    );
    assert_eq!(
        fs::read_to_string(sb.config()).unwrap(),
        "{\n\t\"credHelpers\": {\n\t\t\"europe-north1-docker.pkg.dev\": \"gar\"\n\t}\n}\n"
    );
    assert_eq!(mode(&sb.docker_config), 0o700);
    assert_eq!(mode(&sb.config()), 0o600);
    assert_eq!(entries(&sb.docker_config), ["config.json"]);
}

#[test]
fn uses_home_dot_docker_when_docker_config_is_unset() {
    let sb = Sandbox::new();
    let out = sb
        .command(&[])
        .env_remove("DOCKER_CONFIG")
        .output()
        .unwrap();
    let expected = sb.home.join(".docker").join("config.json");
    assert_eq!(
        ok(&out),
        format!(
            "configured {DEFAULT_HOST} -> gar in {}\n",
            expected.display()
        )
    );
    assert_eq!(
        read_json(&expected),
        json!({"credHelpers": {DEFAULT_HOST: "gar"}})
    );
    assert_eq!(mode(&sb.home.join(".docker")), 0o700);
    assert!(!sb.docker_config.exists());
}

#[test]
fn empty_docker_config_variable_means_home_dot_docker() {
    let sb = Sandbox::new();
    ok(&sb.command(&[]).env("DOCKER_CONFIG", "").output().unwrap());
    assert_eq!(
        read_json(&sb.home.join(".docker").join("config.json")),
        json!({"credHelpers": {DEFAULT_HOST: "gar"}})
    );
}

#[test]
fn keeps_every_other_key_its_value_and_its_order() {
    let sb = Sandbox::with_dir();
    let original = r#"{
  "zzz-unknown": {"nested": [1, 2.5, true, null, "x"], "b": {}, "a": []},
  "auths": {
    "ghcr.io": {"auth": "dXNlcjpwYXNz"},
    "https://index.docker.io/v1/": {}
  },
  "credHelpers": {
    "gcr.io": "gcloud",
    "us-docker.pkg.dev": "gcloud"
  },
  "credsStore": "desktop",
  "HttpHeaders": {"User-Agent": "Docker-Client/24 (linux)"},
  "psFormat": "table {{.ID}}\t{{.Names}}",
  "currentContext": "default",
  "detachKeys": "ctrl-e,e",
  "unicode": "blåbær ✓",
  "number": 12345678901234
}"#;
    sb.write_config(original.as_bytes());
    let before: Value = serde_json::from_str(original).unwrap();

    ok(&sb.run(&[]));

    let after = read_json(&sb.config());
    // The whole file, key order included: credHelpers gains the host at its end.
    assert_eq!(
        compact(&after),
        concat!(
            r#"{"zzz-unknown":{"nested":[1,2.5,true,null,"x"],"b":{},"a":[]},"#,
            r#""auths":{"ghcr.io":{"auth":"dXNlcjpwYXNz"},"https://index.docker.io/v1/":{}},"#,
            r#""credHelpers":{"gcr.io":"gcloud","us-docker.pkg.dev":"gcloud","europe-north1-docker.pkg.dev":"gar"},"#,
            r#""credsStore":"desktop","#,
            r#""HttpHeaders":{"User-Agent":"Docker-Client/24 (linux)"},"#,
            r#""psFormat":"table {{.ID}}\t{{.Names}}","#,
            r#""currentContext":"default","detachKeys":"ctrl-e,e","#,
            r#""unicode":"blåbær ✓","number":12345678901234}"#
        )
    );
    // Every value other than credHelpers is the same, byte for byte when serialized.
    let (before, after) = (before.as_object().unwrap(), after.as_object().unwrap());
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (key, value) in before.iter().filter(|(k, _)| *k != "credHelpers") {
        assert_eq!(compact(value), compact(&after[key]), "value of {key}");
    }
    assert_eq!(after["credsStore"], "desktop");
}

#[test]
fn second_run_leaves_the_file_identical_and_does_not_write() {
    let sb = Sandbox::new();
    ok(&sb.run(&["--registries", "a.example,b.example"]));
    let bytes = fs::read(sb.config()).unwrap();
    let meta = fs::metadata(sb.config()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));

    let out = sb.run(&["--registries", "a.example,b.example"]);
    let path = sb.config().display().to_string();
    assert_eq!(
        ok(&out),
        format!(
            "already configured a.example -> gar in {path}\nalready configured b.example -> gar in {path}\n"
        )
    );
    assert_eq!(fs::read(sb.config()).unwrap(), bytes);
    let again = fs::metadata(sb.config()).unwrap();
    // A rename would give a new inode; a write in place a new mtime.
    assert_eq!(again.ino(), meta.ino());
    assert_eq!(again.modified().unwrap(), meta.modified().unwrap());
    assert_eq!(entries(&sb.docker_config), ["config.json"]);
}

#[test]
fn already_configured_file_in_another_layout_is_not_rewritten() {
    let sb = Sandbox::with_dir();
    let original = b"{\"credHelpers\":{\"europe-north1-docker.pkg.dev\":\"gar\"}}";
    sb.write_config(original);
    let out = sb.run(&[]);
    assert!(ok(&out).starts_with("already configured europe-north1-docker.pkg.dev -> gar in "));
    assert_eq!(fs::read(sb.config()).unwrap(), original);
}

#[test]
fn registries_option_configures_two_hosts_in_both_spellings() {
    for args in [
        &[
            "--registries",
            "europe-north1-docker.pkg.dev,us-docker.pkg.dev",
        ][..],
        &["--registries=europe-north1-docker.pkg.dev,us-docker.pkg.dev"][..],
    ] {
        let sb = Sandbox::new();
        let out = sb.run(args);
        let path = sb.config().display().to_string();
        assert_eq!(
            ok(&out),
            format!(
                "configured europe-north1-docker.pkg.dev -> gar in {path}\n\
                 configured us-docker.pkg.dev -> gar in {path}\n"
            )
        );
        assert_eq!(
            compact(&read_json(&sb.config())),
            r#"{"credHelpers":{"europe-north1-docker.pkg.dev":"gar","us-docker.pkg.dev":"gar"}}"#
        );
    }
}

#[test]
fn repeated_registries_options_add_up_and_duplicates_count_once() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "--registries",
        "a.example, b.example",
        "--registries=a.example/x,b.example",
    ]);
    assert_eq!(ok(&out).lines().count(), 2);
    assert_eq!(
        compact(&read_json(&sb.config())),
        r#"{"credHelpers":{"a.example":"gar","b.example":"gar"}}"#
    );
}

#[test]
fn image_path_is_reduced_to_its_host_with_a_notice() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "--registries",
        "europe-north1-docker.pkg.dev/cgr-nav/pull-through",
    ]);
    assert!(ok(&out).starts_with("configured europe-north1-docker.pkg.dev -> gar in "));
    assert_eq!(
        stderr(&out),
        "configure-docker: using host europe-north1-docker.pkg.dev \
         (from europe-north1-docker.pkg.dev/cgr-nav/pull-through)\n"
    );
    assert_eq!(
        read_json(&sb.config()),
        json!({"credHelpers": {DEFAULT_HOST: "gar"}})
    );
}

#[test]
fn url_is_reduced_to_lowercase_host_and_port() {
    let sb = Sandbox::new();
    let out = sb.run(&["--registries=https://Host:5000/v2/"]);
    assert!(ok(&out).starts_with("configured host:5000 -> gar in "));
    assert_eq!(
        stderr(&out),
        "configure-docker: using host host:5000 (from https://Host:5000/v2/)\n"
    );
    assert_eq!(
        compact(&read_json(&sb.config())),
        r#"{"credHelpers":{"host:5000":"gar"}}"#
    );
}

#[test]
fn invalid_json_is_left_untouched_with_a_one_line_error_naming_file_and_position() {
    let sb = Sandbox::with_dir();
    let original = b"{\n  \"auths\": {},\n  \"credsStore\": \"desktop\"\n  \"oops\": 1\n}\n";
    sb.write_config(original);
    let out = sb.run(&[]);
    let line = fails_with_one_line(&out);
    assert!(line.contains(&sb.config().display().to_string()), "{line}");
    assert!(line.contains("line 4 column 3"), "{line}");
    assert!(line.contains("not valid JSON"), "{line}");
    assert!(line.contains("fix or move"), "{line}");
    assert_eq!(fs::read(sb.config()).unwrap(), original);
    assert_eq!(entries(&sb.docker_config), ["config.json"]);
}

#[test]
fn truncated_json_is_an_error_too() {
    let sb = Sandbox::with_dir();
    sb.write_config(b"{\"auths\": {");
    let line = fails_with_one_line(&sb.run(&[]));
    assert!(line.contains("line 1 column 11"), "{line}");
    assert_eq!(fs::read(sb.config()).unwrap(), b"{\"auths\": {");
}

#[test]
fn empty_file_is_treated_as_an_empty_object() {
    let sb = Sandbox::with_dir();
    sb.write_config(b"");
    fs::set_permissions(sb.config(), fs::Permissions::from_mode(0o644)).unwrap();
    ok(&sb.run(&[]));
    assert_eq!(
        compact(&read_json(&sb.config())),
        r#"{"credHelpers":{"europe-north1-docker.pkg.dev":"gar"}}"#
    );
    assert_eq!(mode(&sb.config()), 0o644);
}

#[test]
fn utf8_bom_is_tolerated_and_dropped_on_write() {
    let sb = Sandbox::with_dir();
    sb.write_config(b"\xEF\xBB\xBF{\"credsStore\": \"wincred\"}");
    ok(&sb.run(&[]));
    let bytes = fs::read(sb.config()).unwrap();
    assert_eq!(bytes[0], b'{');
    assert_eq!(
        compact(&serde_json::from_slice(&bytes).unwrap()),
        r#"{"credsStore":"wincred","credHelpers":{"europe-north1-docker.pkg.dev":"gar"}}"#
    );
}

#[test]
fn relative_symlink_stays_a_link_and_its_target_is_updated() {
    let sb = Sandbox::with_dir();
    let real_dir = sb.docker_config.join("real");
    fs::create_dir(&real_dir).unwrap();
    let target = real_dir.join("docker-config.json");
    fs::write(&target, br#"{"auths": {}}"#).unwrap();
    symlink("real/docker-config.json", sb.config()).unwrap();

    let out = sb.run(&[]);
    assert_eq!(
        ok(&out),
        format!(
            "configured {DEFAULT_HOST} -> gar in {} (symlink to {})\n",
            sb.config().display(),
            target.display()
        )
    );
    assert!(
        fs::symlink_metadata(sb.config())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_link(sb.config()).unwrap(),
        Path::new("real/docker-config.json")
    );
    assert_eq!(
        compact(&read_json(&target)),
        r#"{"auths":{},"credHelpers":{"europe-north1-docker.pkg.dev":"gar"}}"#
    );
    // No temporary file left next to the link or the target.
    assert_eq!(entries(&sb.docker_config), ["config.json", "real"]);
    assert_eq!(entries(&real_dir), ["docker-config.json"]);
}

#[test]
fn absolute_symlink_stays_a_link_and_its_target_is_updated() {
    let sb = Sandbox::with_dir();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("dotfiles-docker.json");
    fs::write(&target, br#"{"credsStore": "pass"}"#).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    symlink(&target, sb.config()).unwrap();

    ok(&sb.run(&[]));
    assert_eq!(fs::read_link(sb.config()).unwrap(), target);
    assert_eq!(
        compact(&read_json(&target)),
        r#"{"credsStore":"pass","credHelpers":{"europe-north1-docker.pkg.dev":"gar"}}"#
    );
    assert_eq!(mode(&target), 0o600);
    assert_eq!(entries(elsewhere.path()), ["dotfiles-docker.json"]);
}

#[test]
fn chain_of_symlinks_is_followed_to_the_real_file() {
    let sb = Sandbox::with_dir();
    fs::write(sb.docker_config.join("real.json"), b"{}").unwrap();
    symlink("real.json", sb.docker_config.join("middle.json")).unwrap();
    symlink("middle.json", sb.config()).unwrap();
    ok(&sb.run(&[]));
    assert!(
        fs::symlink_metadata(sb.docker_config.join("middle.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        read_json(&sb.docker_config.join("real.json")),
        json!({"credHelpers": {DEFAULT_HOST: "gar"}})
    );
}

#[test]
fn dangling_symlink_creates_its_target() {
    let sb = Sandbox::with_dir();
    symlink("shared/config.json", sb.config()).unwrap();
    let target = sb.docker_config.join("shared").join("config.json");

    ok(&sb.run(&[]));
    assert!(
        fs::symlink_metadata(sb.config())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        compact(&read_json(&target)),
        r#"{"credHelpers":{"europe-north1-docker.pkg.dev":"gar"}}"#
    );
    assert_eq!(mode(&target), 0o600);
    assert_eq!(mode(&sb.docker_config.join("shared")), 0o700);
}

#[test]
fn file_mode_0640_is_preserved() {
    let sb = Sandbox::with_dir();
    sb.write_config(br#"{"auths": {}}"#);
    fs::set_permissions(sb.config(), fs::Permissions::from_mode(0o640)).unwrap();
    ok(&sb.run(&[]));
    assert_eq!(mode(&sb.config()), 0o640);
    assert_eq!(read_json(&sb.config())["credHelpers"][DEFAULT_HOST], "gar");
}

#[test]
fn read_only_file_that_is_already_configured_exits_zero() {
    let sb = Sandbox::with_dir();
    let original = b"{\"credHelpers\": {\"europe-north1-docker.pkg.dev\": \"gar\"}}\n";
    sb.write_config(original);
    fs::set_permissions(sb.config(), fs::Permissions::from_mode(0o444)).unwrap();
    // A read-only directory too: any write attempt at all would fail.
    fs::set_permissions(&sb.docker_config, fs::Permissions::from_mode(0o555)).unwrap();
    let out = sb.run(&[]);
    fs::set_permissions(&sb.docker_config, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(ok(&out).starts_with("already configured europe-north1-docker.pkg.dev -> gar in "));
    assert_eq!(fs::read(sb.config()).unwrap(), original);
    assert_eq!(mode(&sb.config()), 0o444);
}

#[test]
fn read_only_file_that_needs_a_change_is_an_error_and_untouched() {
    if running_as_root() {
        eprintln!("skipped: root can write read-only files");
        return;
    }
    let sb = Sandbox::with_dir();
    sb.write_config(b"{}");
    fs::set_permissions(sb.config(), fs::Permissions::from_mode(0o444)).unwrap();
    let line = fails_with_one_line(&sb.run(&[]));
    assert!(line.contains("not writable"), "{line}");
    assert_eq!(fs::read(sb.config()).unwrap(), b"{}");
}

#[test]
fn host_handled_by_gcloud_is_switched_to_gar_with_a_notice() {
    let sb = Sandbox::with_dir();
    sb.write_config(
        br#"{"credHelpers": {"gcr.io": "gcloud", "europe-north1-docker.pkg.dev": "gcloud", "z.example": "gcloud"}}"#,
    );
    let out = sb.run(&[]);
    assert!(ok(&out).starts_with("configured europe-north1-docker.pkg.dev -> gar in "));
    assert_eq!(
        stderr(&out),
        "configure-docker: europe-north1-docker.pkg.dev was handled by docker-credential-gcloud; \
         now by docker-credential-gar\n"
    );
    // Switched in place: the entry keeps its position.
    assert_eq!(
        compact(&read_json(&sb.config())),
        r#"{"credHelpers":{"gcr.io":"gcloud","europe-north1-docker.pkg.dev":"gar","z.example":"gcloud"}}"#
    );
}

#[test]
fn null_cred_helpers_is_treated_as_empty() {
    let sb = Sandbox::with_dir();
    sb.write_config(br#"{"credHelpers": null, "auths": {}}"#);
    ok(&sb.run(&[]));
    assert_eq!(
        compact(&read_json(&sb.config())),
        r#"{"credHelpers":{"europe-north1-docker.pkg.dev":"gar"},"auths":{}}"#
    );
}

#[test]
fn cred_helpers_that_is_not_an_object_is_an_error_and_untouched() {
    for original in [
        &br#"{"credHelpers": "gcloud"}"#[..],
        &br#"{"credHelpers": ["europe-north1-docker.pkg.dev"]}"#[..],
    ] {
        let sb = Sandbox::with_dir();
        sb.write_config(original);
        let line = fails_with_one_line(&sb.run(&[]));
        assert!(line.contains(&sb.config().display().to_string()), "{line}");
        assert!(line.contains("\"credHelpers\" is"), "{line}");
        assert!(line.contains("not an object"), "{line}");
        assert_eq!(fs::read(sb.config()).unwrap(), original);
    }
}

#[test]
fn top_level_that_is_not_an_object_is_an_error_and_untouched() {
    let sb = Sandbox::with_dir();
    sb.write_config(b"[\"credHelpers\"]\n");
    let line = fails_with_one_line(&sb.run(&[]));
    assert!(line.contains(&sb.config().display().to_string()), "{line}");
    assert!(line.contains("an array at the top level"), "{line}");
    assert_eq!(fs::read(sb.config()).unwrap(), b"[\"credHelpers\"]\n");
}

#[test]
fn config_path_that_is_a_directory_is_an_error() {
    let sb = Sandbox::with_dir();
    fs::create_dir(sb.config()).unwrap();
    let line = fails_with_one_line(&sb.run(&[]));
    assert!(line.contains("is a directory"), "{line}");
}

#[test]
fn usage_errors_exit_one_with_one_line_and_touch_nothing() {
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "invalid option '--bogus'"),
        (&["extra"], "unexpected argument"),
        (&["--registries"], "missing argument"),
        (&["--registries", ""], "at least one host"),
        (&["--registries=a.example,,b.example"], "empty host"),
        (
            &["--registries", "https://"],
            "'https://' is not a registry host",
        ),
        (
            &["--registries", "host:notaport"],
            "'host:notaport' is not a registry host",
        ),
        (&["--registries", "ftp://host"], "not a registry host"),
    ];
    for (args, expected) in cases {
        let sb = Sandbox::new();
        let line = fails_with_one_line(&sb.run(args));
        assert!(line.contains(expected), "{args:?}: {line}");
        assert!(
            line.contains("usage: docker-credential-gar configure-docker"),
            "{line}"
        );
        assert!(
            !sb.docker_config.exists(),
            "{args:?} created the config dir"
        );
    }
}

#[test]
fn help_prints_usage_on_stdout_and_exits_zero() {
    for flag in ["--help", "-h"] {
        let sb = Sandbox::new();
        let out = sb.run(&[flag]);
        let text = ok(&out);
        assert!(
            text.starts_with(
                "Usage: docker-credential-gar configure-docker [--registries HOST[,HOST...]]\n"
            ),
            "{text}"
        );
        assert!(text.contains("--registries"));
        assert!(text.contains(DEFAULT_HOST));
        assert_eq!(stderr(&out), "");
        assert!(!sb.docker_config.exists());
    }
}
