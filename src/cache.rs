//! The on-disk token cache: one small JSON file per source identity.
//!
//! - Location: `$GAR_CACHE_DIR`, else `<OS cache dir>/docker-credential-gar`;
//!   the directory is 0700, files 0600.
//! - File names are a hash of the identity; files hold only an access token, its
//!   expiry and a version field.
//! - Reads never follow a symlink and ignore files that are not ours (owner, mode)
//!   or not in the current format; such a file is simply replaced.
//! - Writes go to a temp file in the same directory and are renamed into place.
//! - A refresh holds an exclusive `flock` on `<name>.lock`, so N concurrent cold
//!   callers make one upstream request. The wait is bounded: past it a caller
//!   fetches on its own rather than hang.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Result;
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
const TEMP_PREFIX: &str = ".tmp-";

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

/// Where the cache lives, or `None` when `GAR_NO_CACHE` is set or no directory is known.
pub fn default_dir() -> Option<PathBuf> {
    if std::env::var_os("GAR_NO_CACHE").is_some_and(|v| !v.is_empty() && v != "0") {
        return None;
    }
    match std::env::var_os("GAR_CACHE_DIR") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => dirs::cache_dir().map(|d| d.join("docker-credential-gar")),
    }
}

fn warn(msg: &str) {
    eprintln!("docker-credential-gar: warning: {msg}");
}

/// The file name stem for an identity: a hash, so no account or path shows.
fn stem(identity: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, identity.as_bytes());
    d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
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
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.uid() != euid() || meta.mode() & 0o077 != 0 || meta.len() > MAX_FILE
    {
        return None;
    }
    let mut buf = Vec::with_capacity(meta.len() as usize + 1);
    f.read_to_end(&mut buf).ok()?;
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

    /// Reads a fresh token for `identity`, if the cache has one.
    pub fn lookup(&self, identity: &str) -> Option<Token> {
        self.read(identity).filter(|t| t.is_fresh_at(token::now()))
    }

    /// Reads whatever valid entry exists, fresh or not.
    fn read(&self, identity: &str) -> Option<Token> {
        read_entry(&self.entry_path(identity))
    }

    fn ensure_dir(&self) -> std::io::Result<()> {
        match fs::metadata(&self.dir) {
            Ok(m) if m.is_dir() => {
                if m.uid() == euid() && m.mode() & 0o077 != 0 {
                    fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))?;
                }
                Ok(())
            }
            Ok(_) => Err(std::io::Error::other("exists and is not a directory")),
            Err(_) => fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir),
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
    /// (the pid in the name) is gone, and any older than a minute.
    fn sweep_temp_files(&self) {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return;
        };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
                continue;
            };
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
                || ent
                    .metadata()
                    .and_then(|m| m.modified())
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
    /// it is reported once on stderr and the fetched token is returned.
    pub fn get_or_fetch(
        &self,
        identity: &str,
        fetch: impl FnOnce() -> Result<Token>,
    ) -> Result<Token> {
        if let Some(t) = self.lookup(identity) {
            crate::log::info(format_args!("cache hit ({} s left)", remaining(&t)));
            return Ok(t);
        }
        crate::log::info(format_args!("cache miss; minting"));
        if let Err(e) = self.ensure_dir() {
            warn(&format!(
                "token cache {} is unusable ({e}); continuing without it",
                self.dir.display()
            ));
            return fetch();
        }
        let _guard = self.lock(identity);
        if let Some(t) = self.lookup(identity) {
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

    /// Drops the cached token for `identity` (used by `erase`).
    pub fn remove(&self, identity: &str) {
        let _ = fs::remove_file(self.entry_path(identity));
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
    /// ours or not in the current format are left out).
    pub fn entries(&self) -> Vec<EntryInfo> {
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
