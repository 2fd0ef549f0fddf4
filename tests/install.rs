//! `install.sh`, run for real against a temporary PREFIX, HOME and DOCKER_CONFIG.
//!
//! The release build is slow, so one test runs the script several times and checks
//! everything about a successful install; the other tests stop before building.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const NAME: &str = "docker-credential-gar";
const PULL_EXAMPLE: &str =
    "docker pull europe-north1-docker.pkg.dev/cgr-nav/pull-through/nav.no/jre:openjdk-21";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh")
}

/// The target directory this test was built in (so the release build reuses its
/// cache): the directory above `debug/` holding the binary under test.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_docker-credential-gar"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf()
}

/// The real user's home, for where cargo and rustup live; never written to.
fn real_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap()
}

/// Scratch directories: `home` (HOME), `docker` (DOCKER_CONFIG), `prefix`.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("home")).unwrap();
        Sandbox { dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    fn prefix(&self) -> PathBuf {
        self.dir.path().join("prefix")
    }

    /// install.sh with HOME and DOCKER_CONFIG in the sandbox, PREFIX unset, the
    /// caller's PATH, and cargo/rustup still found where they really are.
    fn install_sh(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(script());
        cmd.args(args)
            .env("HOME", self.home())
            .env("DOCKER_CONFIG", self.docker_config())
            .env_remove("PREFIX")
            .env("CARGO_TARGET_DIR", target_dir());
        for (var, default) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
            let value =
                std::env::var_os(var).unwrap_or_else(|| OsString::from(real_home().join(default)));
            cmd.env(var, value);
        }
        cmd
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn install_builds_installs_configures_warns_about_path_and_is_idempotent() {
    let sb = Sandbox::new();
    let bindir = sb.prefix().join("bin");
    let installed = bindir.join(NAME);
    let config = sb.docker_config().join("config.json");

    // 1. PREFIX from the environment, a directory that is not on PATH.
    let out = sb
        .install_sh(&[])
        .env("PREFIX", sb.prefix())
        .output()
        .unwrap();
    assert_ok(&out);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));

    // The binary: executable, 0755, the fresh release build, and it runs.
    assert_eq!(entries(&bindir), [NAME], "leftover temporary files");
    assert_eq!(fs::metadata(&installed).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read(&installed).unwrap(),
        fs::read(target_dir().join("release").join(NAME)).unwrap()
    );
    let version = Command::new(&installed).arg("version").output().unwrap();
    assert_ok(&version);
    assert_eq!(text(&version.stdout), "docker-credential-gar 0.1.0\n");

    // Docker is configured, in DOCKER_CONFIG.
    assert_eq!(
        serde_json::to_string(&read_json(&config)).unwrap(),
        r#"{"credHelpers":{"europe-north1-docker.pkg.dev":"gar"}}"#
    );
    assert!(
        stdout.contains(&format!(
            "configured europe-north1-docker.pkg.dev -> gar in {}",
            config.display()
        )),
        "{stdout}"
    );

    // The PATH warning, with the line to add.
    assert!(
        stderr.contains(&format!("{} is not on your PATH", bindir.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("export PATH=\"{}:$PATH\"", bindir.display())),
        "{stderr}"
    );

    // The next step.
    assert!(stdout.contains(PULL_EXAMPLE), "{stdout}");
    assert!(stdout.contains("gcloud auth login"), "{stdout}");
    assert!(
        stdout.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{stdout}"
    );
    assert!(stdout.contains("metadata"), "{stdout}");

    // 2. Again, with --prefix=DIR: succeeds, and the config is not even rewritten.
    let config_bytes = fs::read(&config).unwrap();
    let config_inode = fs::metadata(&config).unwrap().ino();
    let prefix_arg = format!("--prefix={}", sb.prefix().display());
    let out = sb.install_sh(&[&prefix_arg]).output().unwrap();
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("already configured europe-north1-docker.pkg.dev -> gar"),
        "{stdout}"
    );
    assert_eq!(fs::read(&config).unwrap(), config_bytes);
    assert_eq!(fs::metadata(&config).unwrap().ino(), config_inode);
    assert_eq!(entries(&bindir), [NAME]);
    assert_eq!(fs::metadata(&installed).unwrap().mode() & 0o7777, 0o755);
    let version = Command::new(&installed).arg("version").output().unwrap();
    assert_eq!(text(&version.stdout), "docker-credential-gar 0.1.0\n");

    // 3. No prefix at all: ~/.local/bin (in the sandbox HOME); --registries passes through.
    let out = sb
        .install_sh(&[
            "--registries",
            "europe-north1-docker.pkg.dev,other.example:5000",
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    let local_bin = sb.home().join(".local").join("bin");
    assert_eq!(entries(&local_bin), [NAME]);
    assert_eq!(
        serde_json::to_string(&read_json(&config)).unwrap(),
        r#"{"credHelpers":{"europe-north1-docker.pkg.dev":"gar","other.example:5000":"gar"}}"#
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("export PATH=\"$HOME/.local/bin:$PATH\""),
        "{stderr}"
    );
}

#[test]
fn install_without_cargo_on_path_fails_with_rustup_hint_and_installs_nothing() {
    if ["/usr/bin/cargo", "/bin/cargo"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        eprintln!("skipped: cargo is installed in /usr/bin or /bin");
        return;
    }
    let sb = Sandbox::new();
    let out = sb
        .install_sh(&[])
        .env("PREFIX", sb.prefix())
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cargo not found"), "{stderr}");
    assert!(stderr.contains("https://rustup.rs"), "{stderr}");
    assert!(!sb.prefix().exists());
    assert!(!sb.docker_config().exists());
}

#[test]
fn install_help_prints_usage_and_exits_zero() {
    let sb = Sandbox::new();
    let out = sb.install_sh(&["--help"]).output().unwrap();
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("Usage: ./install.sh"), "{stdout}");
    assert!(stdout.contains("--prefix DIR"), "{stdout}");
    assert!(stdout.contains("--registries"), "{stdout}");
}

#[test]
fn install_unknown_option_exits_two() {
    let sb = Sandbox::new();
    let out = sb
        .install_sh(&["--frobnicate"])
        .env("PREFIX", sb.prefix())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown option '--frobnicate'"),
        "{}",
        text(&out.stderr)
    );
    assert!(!sb.prefix().exists());
}

#[test]
fn install_sh_is_executable() {
    assert_ne!(
        fs::metadata(script()).unwrap().permissions().mode() & 0o111,
        0
    );
}
