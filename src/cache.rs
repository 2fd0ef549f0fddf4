//! The on-disk token cache: one small JSON file per source identity.
//!
//! - Location: `$GAR_CACHE_DIR`, else `<OS cache dir>/docker-credential-gar`;
//!   a missing directory is created 0700, files are 0600. An existing directory is
//!   never chmod'ed (it may be `$HOME` or `/tmp`): it is used only if it belongs to
//!   this user and neither group nor others can write to it; otherwise `get` warns
//!   once on stderr and goes on without the cache.
//! - File names are a hash of the identity; files hold only an access token, its
//!   expiry and a version field.
//! - Reads never follow a symlink and ignore files that are not ours (owner, mode)
//!   or not in the current format; such a file is simply replaced.
//! - Writes go to a temp file (`.gar-tmp-<pid>-…`) in the same directory and are
//!   renamed into place; the sweep of leftovers removes only such files of ours.
//! - A refresh holds an exclusive `flock` on `<name>.lock`, so N concurrent cold
//!   callers make one upstream request. The wait is bounded: past it a caller
//!   fetches on its own rather than hang.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::files::{self, euid};
use crate::token::{self, Token};

/// Version of the file format; files with another version are ignored.
const FORMAT_VERSION: u32 = 1;
/// Longest a caller waits for another process's refresh: as long as that refresh
/// may itself take (two HTTP attempts or two gcloud runs), plus a little.
fn lock_wait() -> Duration {
    let http = crate::http::total_timeout();
    let gcloud = crate::sources::gcloud::timeout();
    2 * http.max(gcloud) + Duration::from_secs(5)
}
/// Largest cache file we read.
const MAX_FILE: u64 = 64 * 1024;
/// Temp files left by killed processes are removed once older than this.
const STALE_TEMP: Duration = Duration::from_secs(60);
/// Names of our temp files start with this, then `<pid>-`; nothing else is swept.
pub(crate) const TEMP_PREFIX: &str = ".gar-tmp-";

#[derive(Serialize, Deserialize)]
struct Entry {
    version: u32,
    access_token: String,
    expires_at: u64,
    lifetime: u64,
}

/// A cache directory.
pub struct Cache {
    dir: PathBuf,
}

/// Whether the cache directory may be used.
enum DirState {
    /// It does not exist (yet).
    Missing,
    /// It exists, belongs to us and only we can write to it.
    Usable,
    /// It exists but may not be used; why, completing "`<dir>` …".
    Refused(String),
}

/// Where the cache lives, or `None` when `GAR_NO_CACHE` is set or no directory is known.
pub fn default_dir() -> Option<PathBuf> {
    if std::env::var_os("GAR_NO_CACHE").is_some_and(|v| !v.is_empty() && v != "0") {
        return None;
    }
    crate::files::dir_from_env("GAR_CACHE_DIR", || {
        dirs::cache_dir().map(|d| d.join("docker-credential-gar"))
    })
}

fn warn(msg: &str) {
    eprintln!("docker-credential-gar: warning: {msg}");
}

/// Whether the cache directory was already reported unusable by this process.
static WARNED: AtomicBool = AtomicBool::new(false);

/// Says once per process that the cache is off, and why.
fn warn_once(msg: &str) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        warn(msg);
    }
}

/// The first `bytes` bytes of the SHA-256 of `s`, in hex: how identities, and
/// the secrets that distinguish them, are named without being shown.
pub fn short_hash(s: &str, bytes: usize) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d.as_ref()[..bytes.min(32)]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The file name stem for an identity: a hash, so no account or path shows.
fn stem(identity: &str) -> String {
    short_hash(identity, 16)
}

/// Opens (creating it 0600, never through a symlink) and exclusively locks the
/// lock file at `path`. `Ok(None)` when another process still holds it after
/// `wait`. The wait blocks in a helper thread, so it ends the moment the holder
/// lets go (or dies); `flock` belongs to the open file description, which the
/// clone shares with the returned file.
pub fn lock_file(path: &Path, wait: Duration) -> std::io::Result<Option<File>> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    lock_within(f, wait)
}

/// Exclusively locks the open file (or directory) `f`, waiting at most `wait`;
/// `Ok(None)` past it.
pub fn lock_within(f: File, wait: Duration) -> std::io::Result<Option<File>> {
    match f.try_lock() {
        Ok(()) => return Ok(Some(f)),
        Err(fs::TryLockError::WouldBlock) => {}
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    let waiter = f.try_clone()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(waiter.lock());
    });
    match rx.recv_timeout(wait) {
        Ok(Ok(())) => Ok(Some(f)),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(None),
    }
}

/// Reads one cache file: never through a symlink (and never blocking on a FIFO),
/// only a regular file of ours that nobody else can read, in the current format.
fn read_entry(path: &Path) -> Option<Token> {
    let buf = files::read(path, MAX_FILE, files::Require::PRIVATE).ok()?;
    let e: Entry = serde_json::from_slice(&buf).ok()?;
    if e.version != FORMAT_VERSION || e.access_token.is_empty() {
        return None;
    }
    Some(Token {
        secret: e.access_token,
        expires_at: Some(e.expires_at),
        lifetime: e.lifetime,
    })
}

impl Cache {
    /// A cache in `dir` (created lazily on first write).
    pub fn new(dir: PathBuf) -> Self {
        Cache { dir }
    }

    fn entry_path(&self, identity: &str) -> PathBuf {
        self.dir.join(format!("{}.json", stem(identity)))
    }

    fn lock_path(&self, identity: &str) -> PathBuf {
        self.dir.join(format!("{}.lock", stem(identity)))
    }

    /// Reads a fresh token for `identity`, if the cache has one (and its
    /// directory may be used: see [`Cache::problem`]).
    pub fn lookup(&self, identity: &str) -> Option<Token> {
        if !matches!(self.dir_state(), DirState::Usable) {
            return None;
        }
        self.fresh(identity)
    }

    /// A fresh token from the entry for `identity`; the directory is known usable.
    fn fresh(&self, identity: &str) -> Option<Token> {
        self.read(identity).filter(|t| t.is_fresh_at(token::now()))
    }

    /// Why the existing cache directory is not used (it belongs to another user,
    /// or others can write to it), in a phrase completing "`<dir>` …"; `None` when
    /// it is usable or does not exist yet.
    pub fn problem(&self) -> Option<String> {
        match self.dir_state() {
            DirState::Refused(p) => Some(p),
            DirState::Usable | DirState::Missing => None,
        }
    }

    fn dir_state(&self) -> DirState {
        match fs::metadata(&self.dir) {
            Ok(m) => match files::dir_problem(&m) {
                None => DirState::Usable,
                Some(p) => DirState::Refused(p),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DirState::Missing,
            Err(e) => DirState::Refused(format!("cannot be used ({e})")),
        }
    }

    /// Reads whatever valid entry exists, fresh or not.
    fn read(&self, identity: &str) -> Option<Token> {
        read_entry(&self.entry_path(identity))
    }

    /// Makes sure the directory may be used, creating it (0700) when missing.
    /// Never changes an existing directory. The error completes "`<dir>` …".
    fn ensure_dir(&self) -> std::result::Result<(), String> {
        if let DirState::Missing = self.dir_state() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| format!("cannot be created ({e})"))?;
        }
        // Checked again after creating: someone may have made it first.
        match self.dir_state() {
            DirState::Usable => Ok(()),
            DirState::Refused(p) => Err(p),
            DirState::Missing => Err("does not exist".to_owned()),
        }
    }

    /// Atomically replaces the entry for `identity`.
    fn write(&self, identity: &str, t: &Token) -> std::io::Result<()> {
        let Some(expires_at) = t.expires_at else {
            return Ok(());
        };
        let entry = Entry {
            version: FORMAT_VERSION,
            access_token: t.secret.clone(),
            expires_at,
            lifetime: t.lifetime,
        };
        let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
        let mut tmp = tempfile::Builder::new()
            .prefix(&prefix)
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(&self.dir)?;
        serde_json::to_writer(&mut tmp, &entry)?;
        tmp.write_all(b"\n")?;
        // rename(2) replaces a planted symlink itself, never its target.
        tmp.persist(self.entry_path(identity))
            .map_err(|e| e.error)?;
        Ok(())
    }

    /// Removes temp files that killed processes left behind: those whose writer
    /// (the pid in the name) is gone, and any older than a minute. Only regular
    /// files named `.gar-tmp-<pid>-…` that belong to us are ever touched.
    fn sweep_temp_files(&self) {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return;
        };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
                continue;
            };
            // DirEntry::metadata does not follow a symlink.
            let Ok(meta) = ent.metadata() else {
                continue;
            };
            if !meta.is_file() || meta.uid() != euid() {
                continue;
            }
            let writer_gone = rest
                .split('-')
                .next()
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|pid| {
                    // SAFETY: signal 0 only checks whether the process exists.
                    let rc = unsafe { libc::kill(pid, 0) };
                    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
                });
            let old = writer_gone
                || meta
                    .modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_TEMP);
            if old {
                let _ = fs::remove_file(ent.path());
            }
        }
    }

    /// Takes the refresh lock, waiting at most [`lock_wait`]; `None` past it.
    fn lock(&self, identity: &str) -> Option<File> {
        let wait = lock_wait();
        match lock_file(&self.lock_path(identity), wait) {
            Ok(Some(f)) => Some(f),
            Ok(None) => {
                warn(&format!(
                    "another docker-credential-gar is still refreshing after {} s; fetching a token without waiting",
                    wait.as_secs()
                ));
                None
            }
            Err(_) => None,
        }
    }

    /// Returns a fresh cached token for `identity`, or runs `fetch` under the
    /// refresh lock and stores its answer. Cache trouble never costs the token:
    /// it is reported once on stderr and the fetched token is returned. A
    /// directory that is not ours alone is neither read nor written.
    pub fn get_or_fetch(
        &self,
        identity: &str,
        fetch: impl FnOnce() -> Result<Token>,
    ) -> Result<Token> {
        if let Err(problem) = self.ensure_dir() {
            warn_once(&format!(
                "token cache {} {problem}; point GAR_CACHE_DIR at a private directory of yours \
                 (or set GAR_NO_CACHE=1) — continuing without the cache",
                self.dir.display()
            ));
            return fetch();
        }
        if let Some(t) = self.fresh(identity) {
            crate::log::info(format_args!("cache hit ({} s left)", remaining(&t)));
            return Ok(t);
        }
        crate::log::info(format_args!("cache miss; minting"));
        let _guard = self.lock(identity);
        if let Some(t) = self.fresh(identity) {
            crate::log::info(format_args!(
                "another process refreshed the token; cache hit"
            ));
            return Ok(t);
        }
        let started = Instant::now();
        let t = fetch()?;
        crate::log::info(format_args!(
            "minted in {} ms, valid {} s",
            started.elapsed().as_millis(),
            remaining(&t)
        ));
        if let Err(e) = self.write(identity, &t) {
            warn(&format!(
                "could not write the token cache in {} ({e}); the next call will mint again",
                self.dir.display()
            ));
        }
        self.sweep_temp_files();
        Ok(t)
    }

    /// Drops the cached token for `identity` (used by `erase`); a directory that
    /// is not ours alone is left alone.
    pub fn remove(&self, identity: &str) {
        if let DirState::Usable = self.dir_state() {
            let _ = fs::remove_file(self.entry_path(identity));
        }
    }
}

/// Seconds left on a token (for the log).
fn remaining(t: &Token) -> u64 {
    t.expires_at.map_or(0, |e| e.saturating_sub(token::now()))
}

/// One cached token as `doctor` shows it: never the token itself.
#[derive(Clone, Debug, Serialize)]
pub struct EntryInfo {
    /// The file (its name is a hash of the source identity).
    pub file: PathBuf,
    /// Unix time at which the token expires.
    pub expires_at: u64,
    /// Seconds until then (0 when expired).
    pub remaining: u64,
    /// The token's whole lifetime in seconds.
    pub lifetime: u64,
    /// Whether `get` would still hand it out.
    pub fresh: bool,
}

impl EntryInfo {
    /// Whether this entry holds the token of `identity`.
    pub fn belongs_to(&self, identity: &str) -> bool {
        self.file
            .file_stem()
            .is_some_and(|s| s.to_string_lossy() == stem(identity))
    }
}

impl Cache {
    /// Every valid entry, soonest expiry first (read-only; files that are not
    /// ours or not in the current format are left out, and so is everything in a
    /// directory `get` would not use: see [`Cache::problem`]).
    pub fn entries(&self) -> Vec<EntryInfo> {
        if !matches!(self.dir_state(), DirState::Usable) {
            return Vec::new();
        }
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let now = token::now();
        let mut out: Vec<EntryInfo> = rd
            .flatten()
            .filter_map(|ent| {
                let name = ent.file_name().to_string_lossy().into_owned();
                let identity_stem = name.strip_suffix(".json")?;
                if name.starts_with(TEMP_PREFIX) || identity_stem.is_empty() {
                    return None;
                }
                let path = ent.path();
                let t = read_entry(&path)?;
                let expires_at = t.expires_at?;
                Some(EntryInfo {
                    file: path,
                    expires_at,
                    remaining: expires_at.saturating_sub(now),
                    lifetime: t.lifetime,
                    fresh: t.is_fresh_at(now),
                })
            })
            .collect();
        out.sort_by_key(|e| e.expires_at);
        out
    }
}
