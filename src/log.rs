//! Opt-in diagnostic log: `GAR_LOG=error|warn|info|debug` writes lines to stderr
//! (docker shows a helper's stderr in the terminal), `GAR_LOG_FILE=PATH` appends
//! them to a file instead. Stdout is never used: it carries only the protocol.
//!
//! Each line is `<RFC 3339 time> docker-credential-gar[<pid>] <LEVEL> <action>
//! [<source>] <message>`. Callers never pass a secret; every line is still run
//! through [`redact`], which masks anything shaped like an OAuth token, a JWT, a
//! refresh token or a private key.
//!
//! The cost when `GAR_LOG` is unset is one `getenv` the first time a level is
//! checked: no logger framework, no allocation, no file is opened.

use std::fmt;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// How much to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Failures that decide the answer.
    Error = 1,
    /// Trouble that was worked around.
    Warn = 2,
    /// One line per decision: action, host, source, cache hit or miss, mint time.
    Info = 3,
    /// Everything else.
    Debug = 4,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

/// The variable that turns logging on.
pub const LEVEL_VAR: &str = "GAR_LOG";
/// The variable naming a file to append to instead of stderr.
pub const FILE_VAR: &str = "GAR_LOG_FILE";

/// 0 = off, else the highest [`Level`] written.
static MAX: OnceLock<u8> = OnceLock::new();
/// The action and source that later lines are about.
static CONTEXT: Mutex<Context> = Mutex::new(Context {
    action: "",
    source: String::new(),
});

struct Context {
    action: &'static str,
    source: String,
}

/// Parses a `GAR_LOG` value; unknown values turn logging off.
pub fn parse_level(v: &str) -> Option<Level> {
    match v.trim().to_ascii_lowercase().as_str() {
        "error" => Some(Level::Error),
        "warn" | "warning" => Some(Level::Warn),
        "info" | "1" | "true" => Some(Level::Info),
        "debug" | "trace" => Some(Level::Debug),
        _ => None,
    }
}

fn max() -> u8 {
    *MAX.get_or_init(|| {
        std::env::var(LEVEL_VAR)
            .ok()
            .and_then(|v| parse_level(&v))
            .map_or(0, |l| l as u8)
    })
}

/// Whether lines at `level` are written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= max()
}

/// Sets the action (`get`, `store`, …) that later lines name.
pub fn set_action(action: &'static str) {
    if max() == 0 {
        return;
    }
    crate_lock(&CONTEXT).action = action;
}

/// Sets the credential source (its description, never a secret) that later lines name.
pub fn set_source(source: impl FnOnce() -> String) {
    if max() == 0 {
        return;
    }
    crate_lock(&CONTEXT).source = source();
}

fn crate_lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes one line at `level` if enabled. `msg` is formatted only then.
pub fn log(level: Level, msg: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let (action, source) = {
        let c = crate_lock(&CONTEXT);
        (c.action, c.source.clone())
    };
    let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    let action = if action.is_empty() { "-" } else { action };
    let source = if source.is_empty() {
        String::new()
    } else {
        format!(" [{source}]")
    };
    let line = format!(
        "{ts} docker-credential-gar[{}] {} {action}{source} {msg}",
        std::process::id(),
        level.name(),
    );
    let mut line: String = redact(&line)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.push('\n');
    write_line(&line);
}

fn write_line(line: &str) {
    if let Some(path) = std::env::var_os(FILE_VAR).filter(|p| !p.is_empty()) {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let opened = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .and_then(|f| {
                // Only a private regular file of ours: never a file another user
                // planted (or can read) for our log lines to land in.
                let m = f.metadata()?;
                // SAFETY: geteuid has no preconditions.
                let ours = m.uid() == unsafe { libc::geteuid() };
                if m.is_file() && ours && m.mode() & 0o077 == 0 {
                    Ok(f)
                } else {
                    Err(std::io::Error::other(
                        "not a private regular file of this user (chmod 600 it, or choose another path)",
                    ))
                }
            });
        match opened {
            Ok(mut f) => {
                let _ = f.write_all(line.as_bytes());
                return;
            }
            Err(e) => {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "docker-credential-gar: warning: cannot append to {FILE_VAR}={} ({e}); logging to stderr",
                    std::path::Path::new(&path).display()
                );
            }
        }
    }
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Logs at error level.
pub fn error(msg: fmt::Arguments<'_>) {
    log(Level::Error, msg);
}
/// Logs at warn level.
pub fn warn(msg: fmt::Arguments<'_>) {
    log(Level::Warn, msg);
}
/// Logs at info level.
pub fn info(msg: fmt::Arguments<'_>) {
    log(Level::Info, msg);
}
/// Logs at debug level.
pub fn debug(msg: fmt::Arguments<'_>) {
    log(Level::Debug, msg);
}

/// Masks whatever looks like a credential: Google access tokens (`ya29.…`),
/// refresh tokens (`1//…`), JWTs (`eyJ….….…`), `Bearer …` values and PEM blocks.
pub fn redact(s: &str) -> String {
    const MARKERS: [&str; 5] = ["ya29.", "1//", "eyJ", "Bearer ", "-----BEGIN"];
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let next = MARKERS
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, *m)))
            .min_by_key(|(i, _)| *i);
        let Some((i, marker)) = next else {
            out.push_str(rest);
            return out;
        };
        // A marker inside a word (e.g. "key1//x") is still masked: better too much.
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let end = if marker == "-----BEGIN" {
            after
                .find("-----END")
                .and_then(|e| after[e + 8..].find("-----").map(|x| e + 8 + x + 5))
                .unwrap_or(after.len())
        } else {
            let skip = if marker == "Bearer " { marker.len() } else { 0 };
            skip + after[skip..]
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}' | ')'))
                .unwrap_or(after.len() - skip)
        };
        out.push_str("<redacted>");
        rest = &after[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse() {
        assert_eq!(parse_level("DEBUG"), Some(Level::Debug));
        assert_eq!(parse_level(" warn "), Some(Level::Warn));
        assert_eq!(parse_level("info"), Some(Level::Info));
        assert_eq!(parse_level("error"), Some(Level::Error));
        assert_eq!(parse_level("off"), None);
        assert_eq!(parse_level(""), None);
        assert!(Level::Error < Level::Debug);
    }

    #[test]
    fn redact_masks_tokens_and_keeps_the_rest() {
        assert_eq!(
            redact("got ya29.a0AfH6SMB-xyz for gcr.io"),
            "got <redacted> for gcr.io"
        );
        assert_eq!(
            redact(r#"{"Secret":"ya29.abc","x":1}"#),
            r#"{"Secret":"<redacted>","x":1}"#
        );
        assert_eq!(redact("rt=1//0gAbC def"), "rt=<redacted> def");
        assert_eq!(
            redact("Authorization: Bearer abc.def"),
            "Authorization: <redacted>"
        );
        assert_eq!(
            redact("jwt eyJhbGci.eyJzdWIi.sig end"),
            "jwt <redacted> end"
        );
        assert_eq!(
            redact("k -----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY----- after"),
            "k <redacted> after"
        );
        assert_eq!(redact("nothing secret here"), "nothing secret here");
    }
}
