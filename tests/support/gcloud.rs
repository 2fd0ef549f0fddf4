//! gcloud for tests: the real one (when installed) driven fully offline against
//! [`super::fake_google::FakeGoogle`], and a shell-script stub that mimics
//! `gcloud config config-helper --format=json`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{Helper, Output, Sandbox, SecretKind, register_secret, sh_quote, write_executable};

/// The `aud` real gcloud (google-auth) puts in service-account JWT assertions.
pub const GOOGLE_TOKEN_AUDIENCE: &str = "https://oauth2.googleapis.com/token";

/// The account the stub's config names unless told otherwise.
pub const STUB_ACCOUNT: &str = "stub-user@example.com";

/// What real gcloud prints when no account is active.
pub const NO_ACTIVE_ACCOUNT: &str = "ERROR: (gcloud.config.config-helper) You do not currently have an active account selected.\nPlease run:\n\n  $ gcloud auth login\n\nto obtain new credentials.\n\nIf you have already logged in with a different account, run:\n\n  $ gcloud config set account ACCOUNT\n\nto select an already authenticated account to use.\n";

/// What the stub prints when reauthentication is required.
pub const REAUTH_REQUIRED: &str = "ERROR: (gcloud.config.config-helper) There was a problem refreshing your current auth tokens: Reauthentication required.\nPlease run:\n\n  $ gcloud auth login\n\nto obtain new credentials.\n";

/// The real `gcloud` on `PATH`, or `None` after printing
/// `SKIP: real gcloud not installed; <test> covered by the stub only`.
///
/// The line is written straight to the process's stderr (not through `eprintln!`,
/// which libtest captures), so it shows in `cargo test` output even without
/// `--nocapture`.
pub fn real_gcloud(test_name: &str) -> Option<PathBuf> {
    if let Some(p) = super::which("gcloud") {
        return Some(p);
    }
    let line = format!("SKIP: real gcloud not installed; {test_name} covered by the stub only\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}

/// Writes gcloud's "logged in as `account`" config files into `cloudsdk_config`:
/// `active_config` (= `default`) and `configurations/config_default`.
/// `None` writes the files without an account (logged out).
pub fn write_gcloud_config(cloudsdk_config: &Path, account: Option<&str>) {
    write_gcloud_named_config(cloudsdk_config, "default", account, true);
}

/// Like [`write_gcloud_config`] for a named configuration; `activate` also
/// points `active_config` at it.
pub fn write_gcloud_named_config(
    cloudsdk_config: &Path,
    name: &str,
    account: Option<&str>,
    activate: bool,
) {
    let confs = cloudsdk_config.join("configurations");
    std::fs::create_dir_all(&confs).expect("create configurations dir");
    let mut ini = String::from("[core]\n");
    if let Some(a) = account {
        ini.push_str(&format!("account = {a}\n"));
    }
    ini.push_str("disable_usage_reporting = True\n");
    std::fs::write(confs.join(format!("config_{name}")), ini).expect("write gcloud config");
    if activate {
        std::fs::write(cloudsdk_config.join("active_config"), name).expect("write active_config");
    }
}

// ---------------------------------------------------------------------------
// Real gcloud, offline
// ---------------------------------------------------------------------------

/// Real gcloud bound to a sandbox's `CLOUDSDK_CONFIG`, with every network path
/// except the fake token host closed. Never sets `core/project`.
pub struct GcloudEnv {
    sandbox: Sandbox,
    gcloud: PathBuf,
}

impl GcloudEnv {
    /// gcloud at `gcloud` (see [`real_gcloud`]) for `sandbox`.
    pub fn new(sandbox: &Sandbox, gcloud: PathBuf) -> GcloudEnv {
        GcloudEnv {
            sandbox: sandbox.clone(),
            gcloud,
        }
    }

    /// A runner for `gcloud ARGS` (sandbox env; no leak check, since gcloud's own
    /// output may legitimately show a token; 120 s limit).
    pub fn command(&self) -> Helper {
        self.sandbox
            .command(&self.gcloud)
            .skip_leak_check()
            .timeout(Duration::from_secs(120))
    }

    /// Runs `gcloud ARGS` and asserts success.
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command().args(args).run();
        out.assert_ok();
        out
    }

    /// `gcloud config set auth/token_host URL`.
    pub fn set_token_host(&self, token_url: &str) {
        self.run(&["config", "set", "auth/token_host", token_url]);
    }

    /// Points gcloud at `fake`: sets `auth/token_host` to its token URL and makes the
    /// fake accept the audience real gcloud puts in service-account JWTs
    /// (`https://oauth2.googleapis.com/token`, whatever the token host).
    pub fn use_fake(&self, fake: &super::fake_google::FakeGoogle) {
        fake.accept_audience(GOOGLE_TOKEN_AUDIENCE);
        self.set_token_host(&fake.token_url());
    }

    /// Logs in as an authorized user of the fake with
    /// `gcloud auth activate-refresh-token ACCOUNT TOKEN` (the OAuth client is passed
    /// via `CLOUDSDK_AUTH_CLIENT_ID`/`_SECRET` for this call only; gcloud stores it
    /// with the credential). `gcloud auth login --cred-file` refuses authorized_user files.
    pub fn activate_authorized_user(&self, user: &super::fake_google::AuthorizedUser) -> Output {
        let out = self
            .command()
            .env("CLOUDSDK_AUTH_CLIENT_ID", &user.client_id)
            .env("CLOUDSDK_AUTH_CLIENT_SECRET", &user.client_secret)
            .args([
                "auth",
                "activate-refresh-token",
                &user.email,
                &user.refresh_token,
            ])
            .run();
        out.assert_ok();
        out
    }

    /// `gcloud auth activate-service-account --key-file FILE`.
    pub fn activate_service_account(&self, key_file: &Path) -> Output {
        let mut arg = std::ffi::OsString::from("--key-file=");
        arg.push(key_file);
        let out = self
            .command()
            .args(["auth", "activate-service-account"])
            .arg(arg)
            .run();
        out.assert_ok();
        out
    }

    /// `gcloud auth login --cred-file FILE` (service-account or external-account files
    /// only: gcloud 528 rejects authorized_user files here).
    pub fn login_cred_file(&self, cred_file: &Path) -> Output {
        let mut arg = std::ffi::OsString::from("--cred-file=");
        arg.push(cred_file);
        let out = self.command().args(["auth", "login"]).arg(arg).run();
        out.assert_ok();
        out
    }

    /// `gcloud config config-helper --format=json`, parsed.
    pub fn config_helper(&self) -> serde_json::Value {
        self.run(&["config", "config-helper", "--format=json"])
            .json()
    }
}

// ---------------------------------------------------------------------------
// The stub
// ---------------------------------------------------------------------------

/// A `gcloud` shell script that answers `config config-helper --format=json
/// [--force-auth-refresh]` (and `auth print-access-token`) from files in its
/// state dir, and logs each invocation's arguments.
///
/// [`GcloudStub::install`] puts it first on the sandbox's `PATH` and writes the
/// sandbox's gcloud config files so the account looks logged in.
pub struct GcloudStub {
    sandbox: Sandbox,
    dir: PathBuf,
}

const STUB_SCRIPT: &str = r#"#!/bin/sh
# gcloud stub for docker-credential-gar tests.
D=__STATE__
printf '%s\n' "$*" >> "$D/calls.log"
if [ -f "$D/sleep" ]; then sleep "$(cat "$D/sleep")" </dev/null >/dev/null 2>&1; fi
if [ -f "$D/warning" ]; then cat "$D/warning" >&2; fi
case "$1 $2" in
  "config config-helper"|"auth print-access-token") ;;
  "--version "*|"version "*) echo "Google Cloud SDK 999.0.0 (stub)"; exit 0 ;;
  *) echo "ERROR: (gcloud) the test stub does not implement: gcloud $*" >&2; exit 2 ;;
esac
if [ -f "$D/fail_code" ]; then
  cat "$D/fail_stderr" >&2
  code=$(cat "$D/fail_code")
  if [ -f "$D/fail_once" ]; then rm -f "$D/fail_code" "$D/fail_once"; fi
  exit "$code"
fi
if [ -f "$D/stdout_warning" ]; then cat "$D/stdout_warning"; fi
if [ -f "$D/read_stdin" ]; then read -r answer || echo "stdin closed" >> "$D/stdin.log"; fi
case " $* " in
  *" --force-auth-refresh "*)
    if [ -f "$D/refreshed_token" ]; then mv "$D/refreshed_token" "$D/token"; fi
    if [ -f "$D/refreshed_expiry" ]; then mv "$D/refreshed_expiry" "$D/expiry"; fi
    ;;
esac
TOKEN=$(cat "$D/token")
EXPIRY=$(cat "$D/expiry")
ACCOUNT=$(cat "$D/account")
if [ "$1" = auth ]; then
  printf '%s\n' "$TOKEN"
  exit 0
fi
case " $* " in
  *" --format=json "*|*" --format json "*) ;;
  *) echo "ERROR: (gcloud) the test stub only implements config-helper --format=json" >&2; exit 2 ;;
esac
CONF=${CLOUDSDK_CONFIG:-$HOME/.config/gcloud}
cat <<EOF
{
  "configuration": {
    "active_configuration": "default",
    "properties": {
      "core": {
        "account": "$ACCOUNT",
        "disable_usage_reporting": "True"
      }
    }
  },
  "credential": {
    "access_token": "$TOKEN",
    "id_token": "$(cat "$D/id_token")",
    "token_expiry": "$EXPIRY"
  },
  "sentinels": {
    "config_sentinel": "$CONF/config_sentinel"
  }
}
EOF
"#;

/// RFC 3339 UTC with seconds, the form of gcloud's `token_expiry`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl GcloudStub {
    /// Installs the stub for `sandbox`: logged in as [`STUB_ACCOUNT`], token valid 1 h.
    pub fn install(sandbox: &Sandbox) -> GcloudStub {
        let root = sandbox.root().join("gcloud-stub");
        let (bin, dir) = (root.join("bin"), root.join("state"));
        std::fs::create_dir_all(&bin).expect("stub bin dir");
        std::fs::create_dir_all(&dir).expect("stub state dir");
        let script = STUB_SCRIPT.replace("__STATE__", &sh_quote(&dir.to_string_lossy()));
        write_executable(&bin.join("gcloud"), &script);
        let stub = GcloudStub {
            sandbox: sandbox.clone(),
            dir,
        };
        stub.write("account", STUB_ACCOUNT);
        stub.write(
            "id_token",
            "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdHViIn0.c3R1Yg",
        );
        stub.set_token(
            &format!("ya29.stub-{}", super::random_hex(12)),
            Duration::from_secs(3600),
        );
        std::fs::write(stub.dir.join("calls.log"), "").expect("calls.log");
        write_gcloud_config(&sandbox.cloudsdk_config(), Some(STUB_ACCOUNT));
        sandbox.prepend_path(&bin);
        stub
    }

    fn write(&self, name: &str, contents: &str) {
        // Atomic replace, so a concurrently running stub never reads a half-written file.
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).expect("write stub state");
        std::fs::rename(&tmp, self.dir.join(name)).expect("rename stub state");
    }

    fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.dir.join(name));
    }

    /// The directory holding the `gcloud` script.
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.parent().expect("stub root").join("bin")
    }

    /// The path of the `gcloud` script.
    pub fn path(&self) -> PathBuf {
        self.bin_dir().join("gcloud")
    }

    /// The token config-helper prints from now on, expiring `valid_for` from now.
    pub fn set_token(&self, token: &str, valid_for: Duration) {
        register_secret(SecretKind::AccessToken, token);
        self.write("token", token);
        self.write("expiry", &rfc3339(SystemTime::now() + valid_for));
    }

    /// The token config-helper prints, with an expiry in the past (`ago` before now).
    pub fn set_expired_token(&self, token: &str, ago: Duration) {
        register_secret(SecretKind::AccessToken, token);
        self.write("token", token);
        self.write("expiry", &rfc3339(SystemTime::now() - ago));
    }

    /// The raw `token_expiry` string (to test odd formats).
    pub fn set_expiry_raw(&self, expiry: &str) {
        self.write("expiry", expiry);
    }

    /// The current token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("token")).expect("stub token")
    }

    /// After the next `--force-auth-refresh` call, print this token (valid `valid_for`).
    pub fn set_refreshed_token(&self, token: &str, valid_for: Duration) {
        register_secret(SecretKind::AccessToken, token);
        self.write("refreshed_token", token);
        self.write("refreshed_expiry", &rfc3339(SystemTime::now() + valid_for));
    }

    /// The account config-helper reports (the config files are not changed).
    pub fn set_account(&self, account: &str) {
        self.write("account", account);
    }

    /// Fails like gcloud with no active account (exit 1).
    pub fn fail_no_active_account(&self) {
        self.fail_with(1, NO_ACTIVE_ACCOUNT);
    }

    /// Fails like gcloud when reauthentication is required (exit 1).
    pub fn fail_reauth_required(&self) {
        self.fail_with(1, REAUTH_REQUIRED);
    }

    /// Fails with this exit code and stderr.
    pub fn fail_with(&self, code: i32, stderr: &str) {
        self.write("fail_stderr", stderr);
        self.write("fail_code", &code.to_string());
    }

    /// Fails once with this exit code and stderr, then answers normally.
    pub fn fail_once_with(&self, code: i32, stderr: &str) {
        self.fail_with(code, stderr);
        self.write("fail_once", "");
    }

    /// Prints this on stdout before its JSON (`None`: nothing).
    pub fn warn_on_stdout(&self, text: Option<&str>) {
        match text {
            Some(t) => self.write("stdout_warning", t),
            None => self.remove("stdout_warning"),
        }
    }

    /// Reads a line from stdin before answering, like a prompt would; logs
    /// `stdin closed` to `stdin.log` when stdin is at end of file.
    pub fn prompt(&self) {
        self.write("read_stdin", "");
    }

    /// What the prompting stub saw on stdin.
    pub fn stdin_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdin.log")).unwrap_or_default()
    }

    /// Stops failing.
    pub fn succeed(&self) {
        self.remove("fail_code");
        self.remove("fail_stderr");
    }

    /// Sleeps this long before answering (`None`: not at all).
    pub fn hang(&self, d: Option<Duration>) {
        match d {
            Some(d) => self.write("sleep", &format!("{:.3}", d.as_secs_f64())),
            None => self.remove("sleep"),
        }
    }

    /// Prints this on stderr before answering (`None`: nothing).
    pub fn warn(&self, text: Option<&str>) {
        match text {
            Some(t) => self.write("warning", t),
            None => self.remove("warning"),
        }
    }

    /// Rewrites the sandbox's gcloud config (account `None` = logged out).
    pub fn write_config(&self, account: Option<&str>) {
        write_gcloud_config(&self.sandbox.cloudsdk_config(), account);
    }

    /// Each invocation's arguments, space-joined, in order.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// How many times the stub ran.
    pub fn call_count(&self) -> usize {
        self.calls().len()
    }

    /// How many invocations carried `--force-auth-refresh`.
    pub fn force_refresh_count(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.split_whitespace().any(|a| a == "--force-auth-refresh"))
            .count()
    }
}
