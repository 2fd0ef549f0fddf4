//! The gcloud CLI: `gcloud config config-helper --format=json` hands out the
//! logged-in account's token and its expiry.
//!
//! Whether gcloud is logged in is read from its config files (no process is
//! started for that), so a cache hit never spawns gcloud.

use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::Duration;

use serde_json::Value;

use crate::error::Error;
use crate::token::{self, Token};

/// Default bound on one gcloud run; `GAR_GCLOUD_TIMEOUT` (seconds) overrides.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Lifetime of a gcloud user or service-account token.
const ASSUMED_LIFETIME: u64 = 3600;
const LOGIN_FIX: &str = "run `gcloud auth login`";

/// A gcloud installation with an active account.
pub struct Gcloud {
    /// The `gcloud` executable found on PATH.
    pub exe: PathBuf,
    /// Its configuration directory (`CLOUDSDK_CONFIG` or `~/.config/gcloud`).
    pub config_dir: PathBuf,
    /// The active named configuration.
    pub config_name: String,
    /// The active account.
    pub account: String,
}

/// What we can tell about gcloud without running it.
pub enum State {
    /// No `gcloud` on PATH.
    NotInstalled,
    /// gcloud is there but no account is active.
    NoAccount {
        /// The configuration directory looked at.
        config_dir: PathBuf,
    },
    /// Ready to hand out tokens.
    Ready(Gcloud),
}

/// gcloud's configuration directory.
pub fn config_dir() -> Option<PathBuf> {
    match std::env::var_os("CLOUDSDK_CONFIG") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => dirs::home_dir().map(|h| h.join(".config").join("gcloud")),
    }
}

/// Finds an executable named `name` on PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Largest gcloud config file we read; real ones are well under a KiB.
const MAX_CONFIG_FILE: u64 = 1024 * 1024;

/// One of gcloud's small config files as text; `None` when it is missing,
/// unreadable, not a regular file (never blocking on a FIFO) or too large.
fn read_small(path: &Path) -> Option<String> {
    let bytes = crate::files::read(path, MAX_CONFIG_FILE, crate::files::Require::default()).ok()?;
    String::from_utf8(bytes).ok()
}

fn active_config_name(dir: &Path) -> String {
    if let Ok(n) = std::env::var("CLOUDSDK_ACTIVE_CONFIG_NAME")
        && !n.trim().is_empty()
    {
        return n.trim().to_owned();
    }
    read_small(&dir.join("active_config"))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && !s.contains(['/', '\\']))
        .unwrap_or_else(|| "default".to_owned())
}

/// Reads `account` from the `[core]` section of a gcloud INI config.
fn ini_core_account(text: &str) -> Option<String> {
    let mut in_core = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_core = line.eq_ignore_ascii_case("[core]");
        } else if in_core
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == "account"
        {
            let v = v.trim();
            return (!v.is_empty()).then(|| v.to_owned());
        }
    }
    None
}

fn active_account(dir: &Path, config_name: &str) -> Option<String> {
    if let Ok(a) = std::env::var("CLOUDSDK_CORE_ACCOUNT")
        && !a.trim().is_empty()
    {
        return Some(a.trim().to_owned());
    }
    let text = read_small(
        &dir.join("configurations")
            .join(format!("config_{config_name}")),
    )?;
    ini_core_account(&text)
}

/// Looks at PATH and gcloud's config files.
pub fn probe() -> State {
    let Some(exe) = find_on_path("gcloud") else {
        return State::NotInstalled;
    };
    let Some(config_dir) = config_dir() else {
        return State::NoAccount {
            config_dir: PathBuf::from("~/.config/gcloud"),
        };
    };
    let config_name = active_config_name(&config_dir);
    match active_account(&config_dir, &config_name) {
        Some(account) => State::Ready(Gcloud {
            exe,
            config_dir,
            config_name,
            account,
        }),
        None => State::NoAccount { config_dir },
    }
}

/// The bound on one gcloud run: `GAR_GCLOUD_TIMEOUT` seconds, else 20.
pub fn timeout() -> Duration {
    crate::process::duration_from_env("GAR_GCLOUD_TIMEOUT", DEFAULT_TIMEOUT)
}

struct RunOutput {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Gcloud {
    /// The cache identity: config dir, named configuration and account.
    pub fn identity(&self) -> String {
        format!(
            "gcloud\0{}\0{}\0{}",
            self.config_dir.display(),
            self.config_name,
            self.account
        )
    }

    /// How the source is named in messages.
    pub fn describe(&self) -> String {
        format!("gcloud account {}", self.account)
    }

    fn run(&self, force: bool) -> Result<RunOutput, Error> {
        use crate::process::{RunError, run_bounded};
        let mut cmd = Command::new(&self.exe);
        cmd.args(["config", "config-helper", "--format=json"]);
        if force {
            cmd.arg("--force-auth-refresh");
        }
        cmd.env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1");
        let limit = timeout();
        match run_bounded(&mut cmd, limit, 1024 * 1024, true) {
            Ok(f) => Ok(RunOutput {
                code: f.status.code(),
                stdout: String::from_utf8_lossy(&f.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&f.stderr).into_owned(),
            }),
            Err(RunError::Spawn(e)) => Err(Error::source(
                self.describe(),
                format!("could not run {} ({e})", self.exe.display()),
                Some("check the gcloud installation"),
            )),
            Err(RunError::TimedOut) => Err(Error::source(
                self.describe(),
                format!(
                    "`gcloud config config-helper` did not finish within {} s and was stopped",
                    limit.as_secs_f64()
                ),
                Some(
                    "run `gcloud config config-helper` yourself to see what it waits for (GAR_GCLOUD_TIMEOUT sets the bound)",
                ),
            )),
        }
    }

    fn failure(&self, out: &RunOutput) -> Error {
        let lower = out.stderr.to_ascii_lowercase();
        if lower.contains("do not currently have an active account")
            || lower.contains("does not have any valid credentials")
        {
            return Error::source(
                self.describe(),
                "gcloud has no active account",
                Some(LOGIN_FIX),
            );
        }
        if lower.contains("reauthentication")
            || lower.contains("reauth")
            || lower.contains("invalid_grant")
            || lower.contains("problem refreshing")
        {
            return Error::source(
                self.describe(),
                "gcloud's login has expired or needs reauthentication",
                Some(LOGIN_FIX),
            );
        }
        // gcloud puts the cause on its `ERROR:` line and advice after it.
        let lines = || out.stderr.lines().map(str::trim).filter(|l| !l.is_empty());
        let last = lines()
            .find(|l| l.starts_with("ERROR:"))
            .or_else(|| lines().next_back())
            .unwrap_or("no error output");
        Error::source(
            self.describe(),
            format!(
                "`gcloud config config-helper` failed (exit {}): {}",
                out.code.map_or("by signal".to_owned(), |c| c.to_string()),
                crate::http::sanitize(last)
            ),
            Some("run `gcloud config config-helper --format=json` to see the full error"),
        )
    }

    fn run_ok(&self, force: bool) -> Result<RunOutput, Error> {
        let mut out = self.run(force)?;
        if out.code != Some(0) && out.stderr.contains("database is locked") {
            std::thread::sleep(Duration::from_millis(100));
            out = self.run(force)?;
        }
        if out.code != Some(0) {
            return Err(self.failure(&out));
        }
        Ok(out)
    }

    fn parse(&self, stdout: &str) -> Result<Token, Error> {
        let bad = |what: &str| {
            Error::source(
                self.describe(),
                format!("`gcloud config config-helper` printed {what}"),
                Some("update the Google Cloud CLI (`gcloud components update`)"),
            )
        };
        // Skip anything gcloud printed before its JSON.
        let start = stdout
            .match_indices('{')
            .map(|(i, _)| i)
            .find(|&i| i == 0 || stdout.as_bytes()[i - 1] == b'\n')
            .ok_or_else(|| bad("no JSON"))?;
        let v: Value = serde_json::from_str(&stdout[start..]).map_err(|_| bad("invalid JSON"))?;
        let cred = v.get("credential").ok_or_else(|| bad("no credential"))?;
        let secret = cred
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("no access token"))?;
        let expiry = cred
            .get("token_expiry")
            .and_then(Value::as_str)
            .and_then(|s| humantime::parse_rfc3339_weak(s.trim()).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let remaining = expiry.map(|e| e.saturating_sub(token::now()));
        Ok(Token {
            secret: secret.to_owned(),
            expires_at: expiry,
            lifetime: remaining.unwrap_or(0).max(ASSUMED_LIFETIME),
        })
    }

    /// Asks gcloud for a token; when the one it has is inside our margin, asks
    /// again with `--force-auth-refresh`.
    pub fn fetch(&self) -> Result<Token, Error> {
        let t = self.parse(&self.run_ok(false)?.stdout)?;
        if t.is_fresh_at(token::now()) {
            return Ok(t);
        }
        let forced = self.parse(&self.run_ok(true)?.stdout)?;
        // Even a short-lived token is better than none; the next call re-asks.
        Ok(forced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_account_from_core_section_only() {
        let ini = "[auth]\naccount = wrong@x\n\n[core]\nproject = p\naccount = me@nav.no\n";
        assert_eq!(ini_core_account(ini).as_deref(), Some("me@nav.no"));
        assert_eq!(ini_core_account("[core]\naccount =\n"), None);
        assert_eq!(ini_core_account("[auth]\naccount = a@b\n"), None);
    }
}
