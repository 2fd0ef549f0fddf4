//! The commands a person runs, from the outside: `--help` for each,
//! `print-access-token`, `configure-docker --remove` / `--creds-store`,
//! `install.sh --uninstall`, and `GAR_LOG` on stderr.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::fake_google::FakeGoogle;
use support::{BIN, Sandbox, SecretKind, random_hex, register_secret};

const GAR: &str = "europe-north1-docker.pkg.dev";

fn read_config(sb: &Sandbox) -> Value {
    serde_json::from_str(&std::fs::read_to_string(sb.docker_config_json()).expect("config"))
        .expect("config JSON")
}

#[test]
fn every_command_has_its_own_help() {
    let sb = Sandbox::new();
    for (args, first_line) in [
        (
            vec!["--help"],
            "docker-credential-gar: Docker credential helper",
        ),
        (
            vec!["help"],
            "docker-credential-gar: Docker credential helper",
        ),
        (
            vec!["get", "--help"],
            "Usage: echo SERVER | docker-credential-gar get",
        ),
        (vec!["store", "--help"], "Usage: echo '{\"ServerURL\""),
        (
            vec!["erase", "-h"],
            "Usage: echo SERVER | docker-credential-gar erase",
        ),
        (vec!["list", "--help"], "Usage: docker-credential-gar list"),
        (
            vec!["version", "--help"],
            "Usage: docker-credential-gar version",
        ),
        (
            vec!["configure-docker", "--help"],
            "Usage: docker-credential-gar configure-docker",
        ),
        (
            vec!["doctor", "--help"],
            "Usage: docker-credential-gar doctor",
        ),
        (
            vec!["print-access-token", "--help"],
            "Usage: docker-credential-gar print-access-token",
        ),
    ] {
        let out = sb.helper().args(&args).run();
        out.assert_code(0);
        assert!(
            out.stdout.starts_with(first_line),
            "{args:?}\n{}",
            out.dump()
        );
        assert_eq!(out.stderr, "", "{args:?}");
    }
    let out = sb.helper().arg("--help").run();
    for cmd in [
        "doctor",
        "print-access-token",
        "--remove",
        "--creds-store",
        "GAR_LOG",
    ] {
        assert!(out.stdout.contains(cmd), "--help lacks {cmd}");
    }
}

#[test]
fn print_access_token_prints_the_same_token_get_hands_docker() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let key = sb.write_file("sa.json", &fake.service_account_json(&fake.token_url()));
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &key);

    // print-access-token prints a bare token: the leak check would flag it, so
    // this run checks by hand that stdout is exactly one issued token.
    let out = sb
        .helper()
        .arg("print-access-token")
        .skip_leak_check()
        .run();
    out.assert_ok();
    assert_eq!(out.stderr, "");
    let printed = out.stdout.strip_suffix('\n').expect("one line").to_owned();
    assert!(!printed.contains('\n'));
    assert_eq!(fake.issued_access_tokens(), vec![printed.clone()]);
    // Same cache: get hands docker that token and mints nothing new.
    assert_eq!(sb.get(GAR).secret(), printed);
    assert_eq!(fake.count("/token"), 1);
    let out = sb
        .helper()
        .args(["print-access-token", "--registry", GAR])
        .skip_leak_check()
        .run();
    assert_eq!(out.stdout, format!("{printed}\n"));
    assert_eq!(fake.count("/token"), 1);
}

#[test]
fn print_access_token_registry_uses_a_stored_access_token_and_refuses_other_hosts() {
    let sb = Sandbox::new();
    let env_token = format!("ya29.env-{}", random_hex(10));
    sb.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", &env_token);
    let stored = format!("ya29.stored-{}", random_hex(10));
    register_secret(SecretKind::AccessToken, &stored);
    sb.helper()
        .arg("store")
        .stdin(json!({"ServerURL": "mirror.example.test", "Username": "oauth2accesstoken", "Secret": stored}).to_string())
        .run()
        .assert_ok();
    sb.helper()
        .arg("store")
        .stdin(
            json!({"ServerURL": "ghcr.io", "Username": "octo", "Secret": "octo-password-9"})
                .to_string(),
        )
        .run()
        .assert_ok();

    let pat = |args: &[&str]| {
        sb.helper()
            .arg("print-access-token")
            .args(args)
            .skip_leak_check()
            .run()
    };
    assert_eq!(
        pat(&["--registry", "mirror.example.test"]).stdout,
        format!("{stored}\n")
    );
    assert_eq!(pat(&[]).stdout, format!("{env_token}\n"));
    assert_eq!(pat(&["--registry", GAR]).stdout, format!("{env_token}\n"));

    let out = pat(&["--registry", "ghcr.io"]);
    out.assert_code(1);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains(
            "ghcr.io has stored credentials for user octo, which are not an access token"
        ),
        "{}",
        out.dump()
    );
    assert!(!out.stderr.contains("octo-password"));
    let out = pat(&["--registry", "docker.io"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("docker.io is not a Google registry and has no stored access token")
    );
    assert_eq!(out.stderr.lines().count(), 1);
    let out = pat(&["--bogus"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("usage: docker-credential-gar print-access-token")
    );
}

#[test]
fn print_access_token_with_no_credentials_says_what_to_do() {
    let sb = Sandbox::with_path("/nonexistent");
    let out = sb.helper().arg("print-access-token").run();
    out.assert_code(1);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("no Google credentials found")
            && out.stderr.contains("gcloud auth login"),
        "{}",
        out.dump()
    );
    assert_eq!(out.stderr.lines().count(), 1);
}

#[test]
fn configure_docker_remove_takes_out_only_our_entries() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.docker_config()).unwrap();
    std::fs::write(
        sb.docker_config_json(),
        json!({
            "auths": {"ghcr.io": {}},
            "credHelpers": {"gcr.io": "gcloud", "us-docker.pkg.dev": "gar"},
            "credsStore": "gar",
            "psFormat": "table {{.ID}}"
        })
        .to_string(),
    )
    .unwrap();
    sb.helper().arg("configure-docker").run().assert_ok();
    assert_eq!(read_config(&sb)["credHelpers"][GAR], "gar");

    // Only one host.
    let out = sb
        .helper()
        .args([
            "configure-docker",
            "--remove",
            "--registries",
            "us-docker.pkg.dev,gcr.io",
        ])
        .run();
    out.assert_ok();
    assert!(
        out.stdout.contains("removed us-docker.pkg.dev -> gar from"),
        "{}",
        out.dump()
    );
    assert!(
        out.stderr
            .contains("gcr.io is handled by docker-credential-gcloud; left as is"),
        "{}",
        out.dump()
    );
    let cfg = read_config(&sb);
    assert_eq!(cfg["credHelpers"], json!({"gcr.io": "gcloud", GAR: "gar"}));
    assert_eq!(cfg["credsStore"], "gar");

    // Everything of ours.
    let out = sb.helper().args(["configure-docker", "--remove"]).run();
    out.assert_ok();
    assert!(out.stdout.contains(&format!("removed {GAR} -> gar")));
    assert!(out.stdout.contains("removed credsStore -> gar"));
    let cfg = read_config(&sb);
    assert_eq!(
        cfg,
        json!({
            "auths": {"ghcr.io": {}},
            "credHelpers": {"gcr.io": "gcloud"},
            "psFormat": "table {{.ID}}"
        })
    );
    let keys: Vec<&String> = cfg.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["auths", "credHelpers", "psFormat"], "order kept");

    // Again: nothing to do, file untouched.
    let before = std::fs::read(sb.docker_config_json()).unwrap();
    let out = sb.helper().args(["configure-docker", "--remove"]).run();
    out.assert_ok();
    assert!(
        out.stdout
            .starts_with("nothing of docker-credential-gar to remove in")
    );
    assert_eq!(std::fs::read(sb.docker_config_json()).unwrap(), before);
}

#[test]
fn configure_docker_remove_drops_a_credhelpers_it_emptied_and_handles_no_file() {
    let sb = Sandbox::new();
    let out = sb.helper().args(["configure-docker", "--remove"]).run();
    out.assert_ok();
    assert!(!sb.docker_config_json().exists());
    sb.helper().arg("configure-docker").run().assert_ok();
    sb.helper()
        .args(["configure-docker", "--remove"])
        .run()
        .assert_ok();
    assert_eq!(read_config(&sb), json!({}));
}

#[test]
fn configure_docker_creds_store_and_the_gcloud_switch() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.docker_config()).unwrap();
    std::fs::write(
        sb.docker_config_json(),
        json!({"credsStore": "desktop", "credHelpers": {GAR: "gcloud"}}).to_string(),
    )
    .unwrap();
    let out = sb
        .helper()
        .args(["configure-docker", "--creds-store"])
        .run();
    out.assert_ok();
    assert!(
        out.stdout.contains("configured credsStore -> gar in"),
        "{}",
        out.dump()
    );
    assert!(
        out.stderr
            .contains("credsStore was desktop (docker-credential-desktop); now gar"),
        "{}",
        out.dump()
    );
    assert_eq!(read_config(&sb)["credsStore"], "gar");
    assert_eq!(
        read_config(&sb)["credHelpers"][GAR],
        "gcloud",
        "--creds-store alone leaves credHelpers"
    );

    let out = sb.helper().arg("configure-docker").run();
    out.assert_ok();
    assert!(out.stderr.contains(&format!(
        "{GAR} was handled by docker-credential-gcloud; now by docker-credential-gar"
    )));
    assert_eq!(read_config(&sb)["credHelpers"][GAR], "gar");
    let out = sb
        .helper()
        .args(["configure-docker", "--creds-store"])
        .run();
    assert!(out.stdout.contains("already configured credsStore -> gar"));

    let out = sb
        .helper()
        .args(["configure-docker", "--remove", "--creds-store"])
        .run();
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("--remove and --creds-store do not go together")
    );
}

fn install_sh() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh")
}

#[test]
fn install_sh_uninstall_removes_our_config_entries_then_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, docker, prefix) = (
        tmp.path().join("home"),
        tmp.path().join("docker"),
        tmp.path().join("prefix"),
    );
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&docker).unwrap();
    let installed = prefix.join("bin/docker-credential-gar");
    std::fs::copy(BIN, &installed).unwrap();
    std::fs::write(
        docker.join("config.json"),
        json!({"credHelpers": {GAR: "gar", "gcr.io": "gcloud"}, "auths": {}}).to_string(),
    )
    .unwrap();
    let run = || {
        Command::new(install_sh())
            .args(["--uninstall", "--prefix"])
            .arg(&prefix)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("DOCKER_CONFIG", &docker)
            .output()
            .unwrap()
    };
    let out = run();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("removed {GAR} -> gar from")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Removed {}", installed.display())),
        "{stdout}"
    );
    assert!(stdout.contains("Left in place:"), "{stdout}");
    assert!(!installed.exists());
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(docker.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        cfg,
        json!({"credHelpers": {"gcr.io": "gcloud"}, "auths": {}})
    );

    // Again: nothing installed, config untouched, still success.
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("is not installed; nothing to remove there"),
        "{stdout}"
    );
    // No entries of ours are left, so there is nothing to remove by hand either.
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("by hand"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gar_log_writes_timestamped_lines_to_stderr_and_nothing_to_stdout() {
    let fake = FakeGoogle::start();
    let sb = Sandbox::new();
    let key = sb.write_file("sa.json", &fake.service_account_json(&fake.token_url()));
    sb.set_env("GOOGLE_APPLICATION_CREDENTIALS", &key);
    let first = sb
        .helper()
        .env("GAR_LOG", "info")
        .arg("get")
        .stdin(GAR)
        .run();
    let token = first.secret();
    let lines: Vec<&str> = first.stderr.lines().collect();
    assert!(lines.len() >= 2, "{}", first.dump());
    for l in &lines {
        let ts = l.split(' ').next().unwrap();
        assert!(
            humantime::parse_rfc3339(ts).is_ok(),
            "no timestamp at the start of {l:?}"
        );
        assert!(l.contains(" INFO get [service account "), "{l}");
        assert!(!l.contains(&token));
    }
    assert!(
        first.stderr.contains("cache miss; minting"),
        "{}",
        first.dump()
    );
    assert!(first.stderr.contains("minted in "), "{}", first.dump());
    assert!(first.stderr.contains(&format!("{GAR}: token ready in ")));

    let second = sb
        .helper()
        .env("GAR_LOG", "info")
        .arg("get")
        .stdin(GAR)
        .run();
    assert_eq!(second.secret(), token);
    assert!(second.stderr.contains("cache hit ("), "{}", second.dump());

    // Unset or unknown: silent.
    let quiet = sb
        .helper()
        .env("GAR_LOG", "nonsense")
        .arg("get")
        .stdin(GAR)
        .run();
    assert_eq!(quiet.stderr, "");
    // warn: only trouble.
    let warn = sb
        .helper()
        .env("GAR_LOG", "warn")
        .arg("get")
        .stdin(GAR)
        .run();
    assert_eq!(warn.stderr, "");
    let nf = sb
        .helper()
        .env("GAR_LOG", "debug")
        .arg("get")
        .stdin("docker.io")
        .run();
    nf.assert_code(1);
    assert!(
        nf.stderr
            .contains(" DEBUG get docker.io: no stored credentials"),
        "{}",
        nf.dump()
    );
    assert!(
        nf.stderr
            .contains(" INFO get docker.io: not a Google registry; not found")
    );
}
