//! Credentials that `docker login` hands to `store`, kept in the OS keyring.
//!
//! - Backends: the OS keyring through the `keyring-core` family (Secret Service
//!   over D-Bus on Linux and other Unixes, the Keychain on macOS), else a 0600
//!   file. `GAR_CREDENTIAL_STORE=auto|keyring|file` chooses (default `auto`: the
//!   keyring, falling back to the file when no keyring answers in time, which is
//!   said once on stderr).
//! - Every keyring call runs on a thread with a deadline (`GAR_KEYRING_TIMEOUT`
//!   seconds, default 3), so a missing session bus or a locked collection that
//!   would prompt can never hang docker.
//! - An index file (`index.json`: host, username, backend, time stored; no secrets)
//!   sits next to the file store, so `get` for a host without stored credentials
//!   reads that one small file and never touches the keyring.
//! - Location: `$GAR_CONFIG_DIR`, else `<OS config dir>/docker-credential-gar`;
//!   a missing directory is created 0700, files are 0600. An existing directory is
//!   never chmod'ed: it must belong to this user and be writable by no one else,
//!   or `store` and `erase` refuse it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::token;

/// Names the keyring items (`service` attribute); the host is the item's user.
pub const SERVICE: &str = "docker-credential-gar";
/// The variable naming the config directory.
pub const DIR_VAR: &str = "GAR_CONFIG_DIR";
/// The variable choosing the backend: `auto`, `keyring` or `file`.
pub const BACKEND_VAR: &str = "GAR_CREDENTIAL_STORE";
/// The variable bounding one keyring call, in seconds.
pub const TIMEOUT_VAR: &str = "GAR_KEYRING_TIMEOUT";
/// A stored `oauth2accesstoken` secret is trusted this long after `store`.
pub const ACCESS_TOKEN_TRUST_SECS: u64 = 55 * 60;
/// Docker's username for a Google access token.
const ACCESS_TOKEN_USER: &str = "oauth2accesstoken";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
const INDEX_FILE: &str = "index.json";
const CREDENTIALS_FILE: &str = "credentials.json";
const LOCK_FILE: &str = "index.lock";
const FORMAT_VERSION: u32 = 1;
const MAX_FILE: u64 = 1024 * 1024;
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Credentials as docker stored them. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The server URL docker sent.
    #[serde(rename = "ServerURL")]
    pub server_url: String,
    /// The username.
    #[serde(rename = "Username")]
    pub username: String,
    /// The password or token.
    #[serde(rename = "Secret")]
    pub secret: String,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("server_url", &self.server_url)
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Where one host's credentials are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The OS keyring.
    Keyring,
    /// The 0600 file in the config directory.
    File,
}

impl Backend {
    /// `keyring` or `file`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Keyring => "keyring",
            Backend::File => "file",
        }
    }
}

/// What the index knows about one host (no secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The stored username.
    pub username: String,
    /// Where the secret is.
    pub backend: Backend,
    /// Unix time of the `store`.
    pub stored_at: u64,
}

impl IndexEntry {
    /// Whether the entry may answer `get` at `now`: always, except an
    /// `oauth2accesstoken` secret more than 55 minutes old (it has expired).
    pub fn trusted_at(&self, now: u64) -> bool {
        self.username != ACCESS_TOKEN_USER
            || now.saturating_sub(self.stored_at) <= ACCESS_TOKEN_TRUST_SECS
    }

    /// Seconds the entry stays trusted after `now`; `None` for credentials that
    /// do not expire here (anything but an access token).
    pub fn trusted_for(&self, now: u64) -> Option<u64> {
        (self.username == ACCESS_TOKEN_USER)
            .then(|| (self.stored_at + ACCESS_TOKEN_TRUST_SECS).saturating_sub(now))
    }
}

#[derive(Serialize, Deserialize, Default)]
struct IndexFile {
    version: u32,
    hosts: BTreeMap<String, IndexEntry>,
}

#[derive(Serialize, Deserialize, Default)]
struct CredentialsFile {
    version: u32,
    hosts: BTreeMap<String, Stored>,
}

/// Which backend `store` writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The keyring, else the file (default).
    Auto,
    /// The keyring only.
    Keyring,
    /// The file only.
    File,
}

/// `GAR_CREDENTIAL_STORE`, checked.
pub fn mode() -> Result<Mode, Error> {
    match std::env::var(BACKEND_VAR) {
        Err(_) => Ok(Mode::Auto),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Mode::Auto),
            "keyring" => Ok(Mode::Keyring),
            "file" => Ok(Mode::File),
            other => Err(Error::BadInput(format!(
                "{BACKEND_VAR}={} is not a store; use auto, keyring or file (or unset it)",
                crate::http::sanitize(other)
            ))),
        },
    }
}

/// The config directory: `$GAR_CONFIG_DIR`, else `<OS config dir>/docker-credential-gar`.
pub fn config_dir() -> Option<PathBuf> {
    crate::files::dir_from_env(DIR_VAR, || {
        dirs::config_dir().map(|d| d.join("docker-credential-gar"))
    })
}

/// The credential store in one config directory.
pub struct Store {
    dir: PathBuf,
}

/// What [`Store::save`] did.
#[derive(Debug)]
pub struct Saved {
    /// Where the credentials went.
    pub backend: Backend,
    /// Why the keyring was not used, when the file was chosen in `auto` mode.
    pub fallback: Option<String>,
}

impl Store {
    /// The store in [`config_dir`]; `None` when no directory is known.
    pub fn open() -> Option<Store> {
        config_dir().map(Store::in_dir)
    }

    /// The store in `dir` (created on first write).
    pub fn in_dir(dir: PathBuf) -> Store {
        Store { dir }
    }

    /// The config directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index file.
    pub fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
    }

    /// The file store.
    pub fn file_path(&self) -> PathBuf {
        self.dir.join(CREDENTIALS_FILE)
    }

    /// Every host with stored credentials (reads only the index).
    pub fn index(&self) -> BTreeMap<String, IndexEntry> {
        read_private_json::<IndexFile>(&self.index_path())
            .ok()
            .flatten()
            .filter(|f| f.version == FORMAT_VERSION)
            .map(|f| f.hosts)
            .unwrap_or_default()
    }

    /// The index entry for `host`, if any: one small file read, no keyring.
    pub fn indexed(&self, host: &str) -> Option<IndexEntry> {
        self.index().remove(host)
    }

    /// Reads the credentials the index points to. `Ok(None)` when the backend no
    /// longer has them.
    pub fn read(&self, host: &str, entry: &IndexEntry) -> Result<Option<Stored>, Error> {
        match entry.backend {
            Backend::File => Ok(self.read_file()?.hosts.remove(host)),
            Backend::Keyring => {
                let host = host.to_owned();
                let json = keyring::call(move |k| k.get(&host)).map_err(|t| t.error("read"))?;
                match json {
                    None => Ok(None),
                    Some(j) => serde_json::from_str::<Stored>(&j).map(Some).map_err(|_| {
                        Error::BadInput(format!(
                            "the keyring item for {SERVICE} is not in the expected format; \
                             run `docker logout` and `docker login` again"
                        ))
                    }),
                }
            }
        }
    }

    /// Stores `creds` for `host` (keyring or file as [`mode`] says) and indexes it.
    pub fn save(&self, host: &str, creds: &Stored) -> Result<Saved, Error> {
        let mode = mode()?;
        self.ensure_dir()?;
        let json = serde_json::to_string(creds).map_err(|e| Error::io("encoding", e.into()))?;
        let (backend, fallback) = match mode {
            Mode::File => (Backend::File, None),
            Mode::Keyring | Mode::Auto => {
                let h = host.to_owned();
                match keyring::call(move |k| k.set(&h, &json)) {
                    Ok(()) => (Backend::Keyring, None),
                    Err(t) if mode == Mode::Auto => (Backend::File, Some(t.reason())),
                    Err(t) => return Err(t.error("store")),
                }
            }
        };
        let _lock = self.lock()?;
        if backend == Backend::File {
            let mut f = self.read_file()?;
            f.version = FORMAT_VERSION;
            f.hosts.insert(host.to_owned(), creds.clone());
            self.write_private(&self.file_path(), &f)?;
        }
        let mut index = self.read_index_for_update()?;
        let previous = index.hosts.insert(
            host.to_owned(),
            IndexEntry {
                username: creds.username.clone(),
                backend,
                stored_at: token::now(),
            },
        );
        self.write_private(&self.index_path(), &index)?;
        // Credentials that moved from the file to the keyring leave the file.
        if backend == Backend::Keyring && previous.is_some_and(|p| p.backend == Backend::File) {
            let mut f = self.read_file()?;
            if f.hosts.remove(host).is_some() {
                self.write_private(&self.file_path(), &f)?;
            }
        }
        Ok(Saved { backend, fallback })
    }

    /// Deletes the stored credentials for `host`; `Ok(false)` when there were none.
    pub fn erase(&self, host: &str) -> Result<bool, Error> {
        let Some(entry) = self.indexed(host) else {
            return Ok(false);
        };
        if entry.backend == Backend::Keyring {
            let h = host.to_owned();
            keyring::call(move |k| k.delete(&h)).map_err(|t| t.error("erase"))?;
        }
        let _lock = self.lock()?;
        let mut f = self.read_file()?;
        if f.hosts.remove(host).is_some() {
            self.write_private(&self.file_path(), &f)?;
        }
        let mut index = self.read_index_for_update()?;
        if index.hosts.remove(host).is_some() {
            self.write_private(&self.index_path(), &index)?;
        }
        Ok(true)
    }

    fn read_file(&self) -> Result<CredentialsFile, Error> {
        match read_private_json::<CredentialsFile>(&self.file_path())? {
            Some(f) if f.version == FORMAT_VERSION => Ok(f),
            Some(_) => Err(Error::BadInput(format!(
                "{} has an unknown format version; move it away and run `docker login` again",
                self.file_path().display()
            ))),
            None => Ok(CredentialsFile {
                version: FORMAT_VERSION,
                hosts: BTreeMap::new(),
            }),
        }
    }

    /// The index for a read-modify-write: an unreadable index is replaced.
    fn read_index_for_update(&self) -> Result<IndexFile, Error> {
        let f = read_private_json::<IndexFile>(&self.index_path())
            .ok()
            .flatten()
            .filter(|f| f.version == FORMAT_VERSION);
        Ok(f.unwrap_or(IndexFile {
            version: FORMAT_VERSION,
            hosts: BTreeMap::new(),
        }))
    }

    /// Makes sure the config directory may hold credentials, creating it (0700)
    /// when missing. An existing directory is never changed: one that is not a
    /// directory, belongs to another user or is writable by others is an error.
    fn ensure_dir(&self) -> Result<(), Error> {
        let what = || format!("creating the config directory {}", self.dir.display());
        let meta = match fs::metadata(&self.dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&self.dir)
                    .map_err(|e| Error::io(what(), e))?;
                // Looked at again: someone may have made it first.
                fs::metadata(&self.dir).map_err(|e| Error::io(what(), e))?
            }
            Err(e) => return Err(Error::io(what(), e)),
        };
        match crate::files::dir_problem(&meta) {
            None => Ok(()),
            Some(problem) if !meta.is_dir() => Err(Error::BadInput(format!(
                "the config directory {} {problem}; move it away, or set {DIR_VAR} to a private directory",
                self.dir.display()
            ))),
            Some(problem) => Err(Error::BadInput(format!(
                "the config directory {} {problem}, so credentials are not kept there; \
                 set {DIR_VAR} to a private directory of yours (or fix its owner and mode)",
                self.dir.display()
            ))),
        }
    }

    /// Serialises index updates between processes (bounded wait).
    fn lock(&self) -> Result<File, Error> {
        self.ensure_dir()?;
        let path = self.dir.join(LOCK_FILE);
        match crate::cache::lock_file(&path, LOCK_WAIT) {
            Ok(Some(f)) => Ok(f),
            Ok(None) => Err(Error::BadInput(format!(
                "another docker-credential-gar has held {} for 5 s; try again",
                path.display()
            ))),
            Err(e) => Err(Error::io(format!("locking {}", path.display()), e)),
        }
    }

    fn write_private(&self, path: &Path, value: &impl Serialize) -> Result<(), Error> {
        let what = || format!("writing {}", path.display());
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(
                "{}{}-",
                crate::cache::TEMP_PREFIX,
                std::process::id()
            ))
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(&self.dir)
            .map_err(|e| Error::io(what(), e))?;
        serde_json::to_writer(&mut tmp, value).map_err(|e| Error::io(what(), e.into()))?;
        tmp.write_all(b"\n")
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| Error::io(what(), e))?;
        tmp.persist(path).map_err(|e| Error::io(what(), e.error))?;
        Ok(())
    }
}

/// Reads a JSON file of ours: no symlink, owned by us, not readable by others.
/// `Ok(None)` when it does not exist.
fn read_private_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    use crate::files::{self, ReadError};
    let refuse =
        |why: &str, fix: &str| Err(Error::BadInput(format!("{} {why}; {fix}", path.display())));
    let relogin = "move it away, then run `docker login` again";
    let buf = match files::read(path, MAX_FILE, files::Require::PRIVATE) {
        Ok(b) => b,
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(ReadError::Io(e)) => return Err(Error::io(format!("reading {}", path.display()), e)),
        Err(ReadError::NotRegular(_) | ReadError::TooLarge) => {
            return refuse("is not a small regular file", relogin);
        }
        Err(ReadError::Symlink) => return refuse("is a symlink", relogin),
        Err(ReadError::OtherOwner(_)) => return refuse("belongs to another user", relogin),
        Err(ReadError::Mode(_)) => {
            return refuse(
                "is readable by other users",
                &format!("run `chmod 600 {}`", path.display()),
            );
        }
    };
    serde_json::from_slice(&buf).map(Some).map_err(|e| {
        Error::BadInput(format!(
            "{} {}; move it away and run `docker login` again",
            path.display(),
            crate::sources::credentials_file::describe_json_error(&e)
        ))
    })
}

/// The keyring backend: one call per thread, each with a deadline.
pub mod keyring {
    use super::*;

    /// Why a keyring call did not succeed.
    #[derive(Debug)]
    pub enum Trouble {
        /// No keyring on this machine or in this session.
        Unavailable(String),
        /// The keyring did not answer within the deadline.
        Timeout(Duration),
        /// The keyring answered with an error.
        Failed(String),
    }

    impl Trouble {
        /// One phrase for messages.
        pub fn reason(&self) -> String {
            match self {
                Trouble::Unavailable(m) => format!("the OS keyring is not available ({m})"),
                Trouble::Timeout(d) => format!(
                    "the OS keyring did not answer within {} s (locked, or waiting for a prompt)",
                    d.as_secs_f64()
                ),
                Trouble::Failed(m) => format!("the OS keyring failed ({m})"),
            }
        }

        /// A user-facing error for `action`.
        pub fn error(&self, action: &str) -> Error {
            Error::BadInput(format!(
                "{action}: {}; unlock the keyring (or log in to the desktop session), \
                 or set {BACKEND_VAR}=file",
                self.reason()
            ))
        }
    }

    /// The deadline of one call: `GAR_KEYRING_TIMEOUT` seconds, default 3.
    pub fn timeout() -> Duration {
        crate::process::duration_from_env(TIMEOUT_VAR, DEFAULT_TIMEOUT)
    }

    /// An open keyring.
    pub struct Keyring {
        store: std::sync::Arc<keyring_core::CredentialStore>,
    }

    fn describe(e: &keyring_core::Error) -> String {
        // keyring-core errors carry no secret (BadEncoding's bytes are not shown).
        match e {
            keyring_core::Error::BadEncoding(_) => "an item is not UTF-8".to_owned(),
            keyring_core::Error::BadDataFormat(..) => "an item has a bad format".to_owned(),
            other => crate::http::sanitize(&other.to_string()),
        }
    }

    impl Keyring {
        fn entry(&self, host: &str) -> Result<keyring_core::Entry, String> {
            let label = format!("{SERVICE}: {host}");
            let mods = std::collections::HashMap::from([("label", label.as_str())]);
            keyring_core::Entry::new_in_store_with_modifiers(&self.store, SERVICE, host, &mods)
                .map_err(|e| describe(&e))
        }

        /// The item for `host`, if any.
        pub fn get(&self, host: &str) -> Result<Option<String>, String> {
            match self.entry(host)?.get_password() {
                Ok(s) => Ok(Some(s)),
                Err(keyring_core::Error::NoEntry) => Ok(None),
                Err(e) => Err(describe(&e)),
            }
        }

        /// Creates or replaces the item for `host`.
        pub fn set(&self, host: &str, secret: &str) -> Result<(), String> {
            self.entry(host)?
                .set_password(secret)
                .map_err(|e| describe(&e))
        }

        /// Deletes the item for `host` (absent is fine).
        pub fn delete(&self, host: &str) -> Result<(), String> {
            match self.entry(host)?.delete_credential() {
                Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
                Err(e) => Err(describe(&e)),
            }
        }
    }

    /// Whether a Secret Service could be reached at all (a session bus exists).
    #[cfg(all(unix, not(target_os = "macos")))]
    fn precheck() -> Result<(), String> {
        let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
        if set("DBUS_SESSION_BUS_ADDRESS") {
            return Ok(());
        }
        let socket = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(&d).join("bus"));
        match socket {
            Some(s) if s.exists() => Ok(()),
            _ => Err("no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is not set".to_owned()),
        }
    }

    #[cfg(target_os = "macos")]
    fn precheck() -> Result<(), String> {
        Ok(())
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    fn open() -> Result<Keyring, String> {
        let store: std::sync::Arc<keyring_core::CredentialStore> =
            dbus_secret_service_keyring_store::Store::new().map_err(|e| describe(&e))?;
        Ok(Keyring { store })
    }

    #[cfg(target_os = "macos")]
    fn open() -> Result<Keyring, String> {
        let store: std::sync::Arc<keyring_core::CredentialStore> =
            apple_native_keyring_store::keychain::Store::new().map_err(|e| describe(&e))?;
        Ok(Keyring { store })
    }

    /// Opens the keyring and runs `op` on a thread of its own; gives up after
    /// [`timeout`] (the thread is left behind and dies with the process).
    pub fn call<T: Send + 'static>(
        op: impl FnOnce(&Keyring) -> Result<T, String> + Send + 'static,
    ) -> Result<T, Trouble> {
        precheck().map_err(Trouble::Unavailable)?;
        let deadline = timeout();
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        std::thread::Builder::new()
            .name("keyring".to_owned())
            .spawn(move || {
                let r = match open() {
                    Ok(k) => op(&k).map_err(Trouble::Failed),
                    Err(e) => Err(Trouble::Unavailable(e)),
                };
                let _ = tx.send(r);
            })
            .map_err(|e| Trouble::Failed(format!("cannot start a thread: {e}")))?;
        let r = match rx.recv_timeout(deadline) {
            Ok(r) => r,
            Err(_) => Err(Trouble::Timeout(deadline)),
        };
        crate::log::debug(format_args!(
            "keyring call took {} ms ({})",
            started.elapsed().as_millis(),
            if r.is_ok() { "ok" } else { "failed" }
        ));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn entry(username: &str, stored_at: u64) -> IndexEntry {
        IndexEntry {
            username: username.to_owned(),
            backend: Backend::File,
            stored_at,
        }
    }

    #[test]
    fn access_tokens_are_trusted_for_55_minutes() {
        let e = entry("oauth2accesstoken", 1_000);
        assert!(e.trusted_at(1_000));
        assert!(e.trusted_at(1_000 + 55 * 60));
        assert!(!e.trusted_at(1_000 + 55 * 60 + 1));
        assert_eq!(e.trusted_for(1_000 + 60), Some(55 * 60 - 60));
        let p = entry("_json_key", 1_000);
        assert!(p.trusted_at(1_000 + 10 * 86_400));
        assert_eq!(p.trusted_for(5_000), None);
    }

    #[test]
    fn file_store_round_trip_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cfg");
        let s = Store::in_dir(dir.clone());
        assert!(s.index().is_empty());
        let creds = Stored {
            server_url: "https://gcr.io".into(),
            username: "_json_key".into(),
            secret: "pw-123".into(),
        };
        // Force the file backend without touching the environment of other tests.
        s.ensure_dir().unwrap();
        let mut f = s.read_file().unwrap();
        f.hosts.insert("gcr.io".into(), creds.clone());
        s.write_private(&s.file_path(), &f).unwrap();
        let mut idx = s.read_index_for_update().unwrap();
        idx.hosts.insert("gcr.io".into(), entry("_json_key", 5));
        s.write_private(&s.index_path(), &idx).unwrap();

        let e = s.indexed("gcr.io").unwrap();
        assert_eq!(s.read("gcr.io", &e).unwrap(), Some(creds));
        for p in [s.file_path(), s.index_path()] {
            assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        }
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let idx = fs::read_to_string(s.index_path()).unwrap();
        assert!(!idx.contains("pw-123"));
        assert!(s.erase("gcr.io").unwrap());
        assert!(s.indexed("gcr.io").is_none());
        assert!(
            !fs::read_to_string(s.file_path())
                .unwrap()
                .contains("pw-123")
        );
        assert!(!s.erase("gcr.io").unwrap());
    }

    #[test]
    fn group_readable_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.json");
        fs::write(&p, "{}").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_private_json::<serde_json::Value>(&p).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = Stored {
            server_url: "h".into(),
            username: "u".into(),
            secret: "very-secret-value".into(),
        };
        assert!(!format!("{s:?}").contains("very-secret"));
    }
}
