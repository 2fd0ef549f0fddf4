//! Shared support for the integration tests: a sandboxed runner for the binary
//! (and for docker/skopeo/gcloud), fake Google endpoints, a gcloud stub, and a
//! local TLS registry.
//!
//! Include it from an integration test crate with `mod support;`.
//!
//! Isolation rules every helper here follows:
//! * every process is started with a cleared environment: only `PATH`, a
//!   temporary `HOME`, `GAR_CACHE_DIR`, `DOCKER_CONFIG`, an empty
//!   `CLOUDSDK_CONFIG`, and metadata-server variables pointing at a closed
//!   loopback port (see [`Sandbox`]);
//! * servers bind 127.0.0.1 only, on port 0;
//! * every wait has a deadline and panics with a clear message;
//! * child processes are killed when their owner is dropped.
//!
//! Leak check: the fakes register every secret they hand out or put into a
//! credentials file ([`register_secret`]). Every [`Helper::run`] /
//! [`Running::wait`] then asserts that no secret appears on stderr, and that a
//! secret appears on stdout only as the `Secret` of a credential line
//! `{"ServerURL":..,"Username":"oauth2accesstoken","Secret":<access token>}`.
//! The registry is process-wide, so a secret of one test is also checked in
//! every other test of the same crate.

#![allow(dead_code)]

pub mod fake_google;
pub mod gcloud;
pub mod keyring;
pub mod proxy;
pub mod registry;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_docker-credential-gar");

/// The username docker gets with every token.
pub const USERNAME: &str = "oauth2accesstoken";

/// Default time limit for one run of a process.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Secrets and the leak check
// ---------------------------------------------------------------------------

/// What kind of secret a registered string is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// An OAuth access token: allowed on stdout, only as `Secret` of a credential line.
    AccessToken,
    /// An OpenID Connect ID token: never printed.
    IdToken,
    /// An OAuth refresh token: never printed.
    RefreshToken,
    /// (A line of) a private key: never printed.
    PrivateKey,
    /// An OAuth client secret: never printed.
    ClientSecret,
    /// A token from an impostor metadata server: must never be used, so never printed.
    ImpostorToken,
}

static SECRETS: Mutex<Vec<(SecretKind, String)>> = Mutex::new(Vec::new());

/// Registers a secret for the leak check of every later run in this process.
/// Strings shorter than 8 characters are ignored (too likely to occur by chance).
pub fn register_secret(kind: SecretKind, value: &str) {
    if value.len() < 8 {
        return;
    }
    let mut secrets = lock(&SECRETS);
    if !secrets.iter().any(|(k, v)| *k == kind && v == value) {
        secrets.push((kind, value.to_owned()));
    }
}

/// Every secret registered so far.
pub fn secrets() -> Vec<(SecretKind, String)> {
    lock(&SECRETS).clone()
}

/// Checks one process's output against the registered secrets; `Err` describes the leak.
pub fn check_no_leaks(stdout: &str, stderr: &str) -> Result<(), String> {
    check_no_leaks_with(&secrets(), stdout, stderr)
}

/// [`check_no_leaks`] against an explicit list of secrets.
pub fn check_no_leaks_with(
    secrets: &[(SecretKind, String)],
    stdout: &str,
    stderr: &str,
) -> Result<(), String> {
    for (kind, s) in secrets {
        if stderr.contains(s.as_str()) {
            return Err(format!("a {kind:?} ({}) appears on stderr", mask(s)));
        }
    }
    for line in stdout.lines() {
        let found: Vec<&(SecretKind, String)> = secrets
            .iter()
            .filter(|(_, s)| line.contains(s.as_str()))
            .collect();
        if found.is_empty() {
            continue;
        }
        let what = found
            .iter()
            .map(|(k, s)| format!("{k:?} {}", mask(s)))
            .collect::<Vec<_>>()
            .join(", ");
        let v: serde_json::Value = serde_json::from_str(line.trim()).map_err(|_| {
            format!("stdout line with a secret ({what}) is not a credential JSON line")
        })?;
        let obj = v
            .as_object()
            .ok_or_else(|| format!("stdout line with a secret ({what}) is not a JSON object"))?;
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        if keys != ["Secret", "ServerURL", "Username"] {
            return Err(format!(
                "stdout line with a secret ({what}) has keys {keys:?}, \
                 expected exactly ServerURL, Username, Secret"
            ));
        }
        if obj["Username"] != USERNAME {
            return Err(format!(
                "stdout credential line with a secret ({what}) has Username {}",
                obj["Username"]
            ));
        }
        let server = obj["ServerURL"].as_str().unwrap_or_default();
        if secrets.iter().any(|(_, s)| server.contains(s.as_str())) {
            return Err(format!("a secret appears in ServerURL ({what})"));
        }
        let secret = obj["Secret"].as_str().ok_or_else(|| {
            format!("credential line with a secret ({what}): Secret is no string")
        })?;
        if !secrets
            .iter()
            .any(|(k, s)| *k == SecretKind::AccessToken && s == secret)
        {
            return Err(format!(
                "stdout credential line carries a secret ({what}), \
                 but its Secret is not exactly a registered access token"
            ));
        }
        if let Some((k, s)) = secrets
            .iter()
            .find(|(k, s)| *k != SecretKind::AccessToken && secret.contains(s.as_str()))
        {
            return Err(format!("Secret field contains a {k:?} ({})", mask(s)));
        }
    }
    Ok(())
}

fn register_env_secret(k: &OsStr, v: &OsStr) {
    if k == "GOOGLE_OAUTH_ACCESS_TOKEN"
        && let Some(s) = v.to_str()
    {
        register_secret(SecretKind::AccessToken, s);
    }
}

fn mask(s: &str) -> String {
    let head: String = s.chars().take(12).collect();
    format!("{head}… ({} chars)", s.len())
}

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

/// Locks a mutex, ignoring poisoning (a panicking test must not break others).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A loopback port that nothing listens on (bound to 0, noted, released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A loopback port that was free a moment ago (for servers that need a port up front).
pub fn free_port() -> u16 {
    closed_port()
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Finds an executable named `name` on the current `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Writes `contents` to `path` and makes it executable.
pub fn write_executable(path: &Path, contents: &str) {
    use std::os::unix::fs::PermissionsExt;
    // Write to a temp name and rename, so no process ever executes a half-written file
    // (and to avoid ETXTBSY when a concurrently forked child holds the fd).
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, contents).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename {}: {e}", path.display()));
}

/// A random lowercase hex string of `n_bytes * 2` characters.
pub fn random_hex(n_bytes: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n_bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("system random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Shell-quotes one word for a `/bin/sh` script.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

// ---------------------------------------------------------------------------
// Sandbox
// ---------------------------------------------------------------------------

/// Temporary directories standing in for the user's home and tool configs, shared
/// by every run made from it. Cheap to clone (all clones share the same dirs).
#[derive(Clone)]
pub struct Sandbox(Arc<SandboxInner>);

struct SandboxInner {
    root: tempfile::TempDir,
    metadata_port: u16,
    path: OsString,
    extra_env: Mutex<BTreeMap<OsString, Option<OsString>>>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A fresh sandbox using the current `PATH`.
    pub fn new() -> Sandbox {
        Self::with_path(std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()))
    }

    /// A fresh sandbox whose processes get exactly this `PATH`.
    pub fn with_path(path: impl Into<OsString>) -> Sandbox {
        let root = tempfile::Builder::new()
            .prefix("gar-sandbox-")
            .tempdir()
            .expect("create sandbox temp dir");
        for d in ["home", "cache", "docker", "cloudsdk", "files", "bin", "run"] {
            std::fs::create_dir_all(root.path().join(d)).expect("create sandbox subdir");
        }
        {
            use std::os::unix::fs::PermissionsExt;
            // Private whatever the umask: the helper uses a cache directory only
            // when nobody else can write to it.
            for d in ["run", "cache"] {
                let _ = std::fs::set_permissions(
                    root.path().join(d),
                    std::fs::Permissions::from_mode(0o700),
                );
            }
        }
        Sandbox(Arc::new(SandboxInner {
            root,
            metadata_port: closed_port(),
            path: path.into(),
            extra_env: Mutex::new(BTreeMap::new()),
        }))
    }

    /// The sandbox's root directory.
    pub fn root(&self) -> &Path {
        self.0.root.path()
    }
    /// `HOME`.
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }
    /// `GAR_CACHE_DIR`.
    pub fn cache_dir(&self) -> PathBuf {
        self.root().join("cache")
    }
    /// `DOCKER_CONFIG`.
    pub fn docker_config(&self) -> PathBuf {
        self.root().join("docker")
    }
    /// `$DOCKER_CONFIG/config.json`.
    pub fn docker_config_json(&self) -> PathBuf {
        self.docker_config().join("config.json")
    }
    /// `CLOUDSDK_CONFIG` (empty unless a test logs in).
    pub fn cloudsdk_config(&self) -> PathBuf {
        self.root().join("cloudsdk")
    }
    /// A scratch directory for credentials files and the like.
    pub fn files_dir(&self) -> PathBuf {
        self.root().join("files")
    }
    /// A directory for tests to put executables in (not on `PATH` unless added).
    pub fn bin_dir(&self) -> PathBuf {
        self.root().join("bin")
    }
    /// An empty 0700 directory usable as `XDG_RUNTIME_DIR` (not set by default).
    pub fn runtime_dir(&self) -> PathBuf {
        self.root().join("run")
    }
    /// The closed loopback port the metadata variables point at.
    pub fn metadata_port(&self) -> u16 {
        self.0.metadata_port
    }
    /// The debug log every run from this sandbox appends to (see [`Sandbox::base_env`]).
    pub fn debug_log(&self) -> PathBuf {
        self.root().join("gar-debug.log")
    }

    /// The sandbox's base `PATH`.
    pub fn path_env(&self) -> OsString {
        self.0.path.clone()
    }

    /// Writes a file under [`Sandbox::files_dir`] and returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.files_dir().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// Sets a variable for every later run made from this sandbox (and its clones).
    /// A `GOOGLE_OAUTH_ACCESS_TOKEN` value is registered as an access token.
    pub fn set_env(&self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) {
        register_env_secret(k.as_ref(), v.as_ref());
        lock(&self.0.extra_env).insert(k.as_ref().into(), Some(v.as_ref().into()));
    }

    /// Removes a variable from every later run made from this sandbox.
    pub fn remove_env(&self, k: impl AsRef<OsStr>) {
        lock(&self.0.extra_env).insert(k.as_ref().into(), None);
    }

    /// The environment every process started from this sandbox gets.
    pub fn base_env(&self) -> BTreeMap<OsString, OsString> {
        let meta = format!("127.0.0.1:{}", self.metadata_port());
        let mut env: BTreeMap<OsString, OsString> = BTreeMap::new();
        let mut put = |k: &str, v: OsString| {
            env.insert(k.into(), v);
        };
        put("PATH", self.path_env());
        put("HOME", self.home().into());
        put("GAR_CACHE_DIR", self.cache_dir().into());
        put("DOCKER_CONFIG", self.docker_config().into());
        put("CLOUDSDK_CONFIG", self.cloudsdk_config().into());
        put("GCE_METADATA_HOST", meta.clone().into());
        put("GCE_METADATA_ROOT", meta.clone().into());
        put("GCE_METADATA_IP", meta.into());
        put("CLOUDSDK_CORE_CHECK_GCE_METADATA", "false".into());
        put("CLOUDSDK_CORE_DISABLE_USAGE_REPORTING", "true".into());
        put(
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK",
            "true".into(),
        );
        // Every run logs at debug level into the sandbox's log file, and every run's
        // leak check reads that file: no secret may ever appear in a log line.
        put("GAR_LOG", "debug".into());
        put("GAR_LOG_FILE", self.debug_log().into());
        let extra = lock(&self.0.extra_env);
        if extra.contains_key(OsStr::new("GAR_LOG"))
            && !extra.contains_key(OsStr::new("GAR_LOG_FILE"))
        {
            env.remove(OsStr::new("GAR_LOG_FILE"));
        }
        for (k, v) in extra.iter() {
            match v {
                Some(v) => env.insert(k.clone(), v.clone()),
                None => env.remove(k),
            };
        }
        env
    }

    /// A runner for the binary under test in this sandbox.
    pub fn helper(&self) -> Helper {
        Helper::in_sandbox(self, BIN)
    }

    /// A runner for any program (docker, skopeo, gcloud, ...) in this sandbox.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Helper {
        Helper::in_sandbox(self, program)
    }

    /// Shorthand: `docker-credential-gar get` for `server`.
    pub fn get(&self, server: &str) -> Output {
        self.helper().arg("get").stdin(server).run()
    }

    /// Installs a `docker-credential-gar` wrapper into [`Sandbox::bin_dir`] that logs each
    /// invocation (its first argument) to `helper-calls.log` and execs the binary under
    /// test. Returns the bin dir; put it first on `PATH` with [`Sandbox::set_env`].
    pub fn install_helper_on_path(&self) -> PathBuf {
        let bin = self.bin_dir();
        let log = self.root().join("helper-calls.log");
        let script = format!(
            "#!/bin/sh\necho \"$1\" >> {}\nexec {} \"$@\"\n",
            sh_quote(&log.to_string_lossy()),
            sh_quote(BIN)
        );
        write_executable(&bin.join("docker-credential-gar"), &script);
        self.prepend_path(&bin);
        bin
    }

    /// Puts `dir` first on the `PATH` of every later run made from this sandbox.
    pub fn prepend_path(&self, dir: &Path) {
        let current = self
            .base_env()
            .remove(OsStr::new("PATH"))
            .unwrap_or_default();
        let mut path = OsString::from(dir.as_os_str());
        if !current.is_empty() {
            path.push(":");
            path.push(current);
        }
        self.set_env("PATH", path);
    }

    /// The commands the wrapper from [`Sandbox::install_helper_on_path`] was called with.
    pub fn helper_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.root().join("helper-calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Helper: the process runner
// ---------------------------------------------------------------------------

/// A builder for one run of the binary (or another program) in a [`Sandbox`].
#[must_use]
pub struct Helper {
    sandbox: Sandbox,
    program: OsString,
    args: Vec<OsString>,
    env: BTreeMap<OsString, Option<OsString>>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    leak_check: bool,
    current_dir: Option<PathBuf>,
}

impl Default for Helper {
    fn default() -> Self {
        Self::new()
    }
}

impl Helper {
    /// The binary under test in a fresh sandbox of its own.
    pub fn new() -> Helper {
        Sandbox::new().helper()
    }

    fn in_sandbox(sandbox: &Sandbox, program: impl AsRef<OsStr>) -> Helper {
        Helper {
            sandbox: sandbox.clone(),
            program: program.as_ref().into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
            leak_check: true,
            current_dir: None,
        }
    }

    /// The sandbox this run uses.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Sets a variable for this run. A `GOOGLE_OAUTH_ACCESS_TOKEN` value is registered
    /// as an access token for the leak check.
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Helper {
        register_env_secret(k.as_ref(), v.as_ref());
        self.env.insert(k.as_ref().into(), Some(v.as_ref().into()));
        self
    }

    /// Removes a variable (also one of the sandbox defaults) for this run.
    pub fn env_remove(mut self, k: impl AsRef<OsStr>) -> Helper {
        self.env.insert(k.as_ref().into(), None);
        self
    }

    /// Appends one argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Helper {
        self.args.push(a.as_ref().into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Helper
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().into()));
        self
    }

    /// Bytes to feed on stdin (stdin is empty otherwise).
    pub fn stdin(mut self, bytes: impl AsRef<[u8]>) -> Helper {
        self.stdin = Some(bytes.as_ref().to_vec());
        self
    }

    /// Time limit (default [`DEFAULT_TIMEOUT`]); the process is killed and the test fails past it.
    pub fn timeout(mut self, t: Duration) -> Helper {
        self.timeout = t;
        self
    }

    /// Working directory (default: the sandbox root).
    pub fn current_dir(mut self, d: impl Into<PathBuf>) -> Helper {
        self.current_dir = Some(d.into());
        self
    }

    /// Turns the automatic leak check off for this run. Only for tests that
    /// deliberately print a secret through some other program.
    pub fn skip_leak_check(mut self) -> Helper {
        self.leak_check = false;
        self
    }

    /// The full environment this run will get.
    pub fn effective_env(&self) -> BTreeMap<OsString, OsString> {
        let mut env = self.sandbox.base_env();
        // A test that sets GAR_LOG itself wants the log where it says (stderr by default).
        if self.env.contains_key(OsStr::new("GAR_LOG"))
            && !self.env.contains_key(OsStr::new("GAR_LOG_FILE"))
        {
            env.remove(OsStr::new("GAR_LOG_FILE"));
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => env.insert(k.clone(), v.clone()),
                None => env.remove(k),
            };
        }
        env
    }

    fn describe(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// Starts the process and returns at once (for parallel runs).
    pub fn spawn(self) -> Running {
        let debug_log = self
            .effective_env()
            .get(OsStr::new("GAR_LOG_FILE"))
            .map(PathBuf::from);
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .envs(self.effective_env())
            .current_dir(
                self.current_dir
                    .clone()
                    .unwrap_or_else(|| self.sandbox.root().to_path_buf()),
            )
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        {
            // Own process group, so a timeout kills grandchildren too.
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let description = self.describe();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{description}`: {e}"));
        let stdin_thread = match (child.stdin.take(), self.stdin.clone()) {
            (Some(mut pipe), Some(bytes)) => Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        let stdout = child.stdout.take().map(reader_thread);
        let stderr = child.stderr.take().map(reader_thread);
        Running {
            child: Some(child),
            description,
            started: Instant::now(),
            timeout: self.timeout,
            leak_check: self.leak_check,
            debug_log,
            stdin_thread,
            stdout,
            stderr,
        }
    }

    /// Runs to completion (bounded by the timeout) and applies the leak check.
    pub fn run(self) -> Output {
        self.spawn().wait()
    }

    /// Shorthand: `get` with `server` on stdin.
    pub fn get(self, server: &str) -> Output {
        self.arg("get").stdin(server).run()
    }
}

fn reader_thread(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// A process started by [`Helper::spawn`]; killed (with its process group) if dropped unwaited.
pub struct Running {
    child: Option<Child>,
    description: String,
    started: Instant,
    timeout: Duration,
    leak_check: bool,
    debug_log: Option<PathBuf>,
    stdin_thread: Option<JoinHandle<()>>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Running {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Waits for the exit (bounded by the timeout), then applies the leak check.
    pub fn wait(mut self) -> Output {
        let deadline = self.started + self.timeout;
        let mut child = self.child.take().expect("child");
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) => {}
                Err(e) => panic!("waiting for `{}`: {e}", self.description),
            }
            if Instant::now() >= deadline {
                kill_group(&mut child);
                let _ = child.wait();
                let out = join_bytes(self.stdout.take(), Duration::from_secs(2));
                let err = join_bytes(self.stderr.take(), Duration::from_secs(2));
                panic!(
                    "`{}` did not finish within {:?}; killed it.\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.description,
                    self.timeout,
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&err)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        // A grandchild may still hold the pipes open: bound the wait for EOF.
        let rest = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(5));
        let stdout = join_bytes(self.stdout.take(), rest);
        let stderr = join_bytes(self.stderr.take(), rest);
        if let Some(t) = self.stdin_thread.take() {
            let _ = t.join();
        }
        let out = Output {
            description: self.description.clone(),
            status,
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed,
        };
        if self.leak_check
            && let Err(e) = check_no_leaks(&out.stdout, &out.stderr)
        {
            panic!("SECRET LEAK: {e}\n{}", out.dump());
        }
        if self.leak_check
            && let Some(log) = &self.debug_log
        {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Err(e) = check_no_leaks_with(&secrets(), "", &text) {
                panic!(
                    "SECRET LEAK in the debug log {}: {}\n{}",
                    log.display(),
                    e.replace("on stderr", "in the log"),
                    out.dump()
                );
            }
        }
        out
    }
}

fn join_bytes(h: Option<JoinHandle<Vec<u8>>>, limit: Duration) -> Vec<u8> {
    let Some(h) = h else { return Vec::new() };
    let deadline = Instant::now() + limit;
    while !h.is_finished() {
        if Instant::now() >= deadline {
            return b"<output pipe still held open by a leftover process>".to_vec();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    h.join().unwrap_or_default()
}

fn kill_group(child: &mut Child) {
    // Kill the process group we created with process_group(0); fall back to the child.
    let pgid = child.id();
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if matches!(c.try_wait(), Ok(None)) {
                kill_group(&mut c);
            }
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

/// What a finished run produced.
#[derive(Clone, Debug)]
pub struct Output {
    /// The command line, for messages.
    pub description: String,
    /// The exit status.
    pub status: ExitStatus,
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Stdout, lossily decoded.
    pub stdout: String,
    /// Stderr, lossily decoded.
    pub stderr: String,
    /// Wall time from start to exit.
    pub elapsed: Duration,
}

/// A parsed credential line from `get`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// `ServerURL`.
    pub server_url: String,
    /// `Username`.
    pub username: String,
    /// `Secret`.
    pub secret: String,
}

impl Output {
    /// Everything about the run, for failure messages.
    pub fn dump(&self) -> String {
        format!(
            "`{}` exited with {:?} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}--- end ---",
            self.description, self.code, self.elapsed, self.stdout, self.stderr
        )
    }

    /// Whether the exit code is 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(self.success(), "expected success\n{}", self.dump());
        self
    }

    /// Asserts a non-zero exit.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(!self.success(), "expected failure\n{}", self.dump());
        self
    }

    /// Asserts a specific exit code.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\n{}",
            self.dump()
        );
        self
    }

    /// Asserts stdout contains `s`.
    #[track_caller]
    pub fn assert_stdout_contains(&self, s: &str) -> &Self {
        assert!(
            self.stdout.contains(s),
            "stdout lacks {s:?}\n{}",
            self.dump()
        );
        self
    }

    /// Asserts stderr contains `s`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, s: &str) -> &Self {
        assert!(
            self.stderr.contains(s),
            "stderr lacks {s:?}\n{}",
            self.dump()
        );
        self
    }

    /// Asserts stdout or stderr contains `s` (case-insensitive).
    #[track_caller]
    pub fn assert_output_contains_ci(&self, s: &str) -> &Self {
        let s = s.to_lowercase();
        assert!(
            self.stdout.to_lowercase().contains(&s) || self.stderr.to_lowercase().contains(&s),
            "neither stdout nor stderr contains {s:?}\n{}",
            self.dump()
        );
        self
    }

    /// Asserts stderr is empty.
    #[track_caller]
    pub fn assert_stderr_empty(&self) -> &Self {
        assert!(self.stderr.is_empty(), "stderr not empty\n{}", self.dump());
        self
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.dump()))
    }

    /// Asserts success and parses stdout as one credential line.
    #[track_caller]
    pub fn credential(&self) -> Credential {
        self.assert_ok();
        let lines: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one credential line\n{}",
            self.dump()
        );
        let v = self.json();
        let field = |k: &str| -> String {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_else(|| panic!("credential lacks string {k}\n{}", self.dump()))
                .to_owned()
        };
        let c = Credential {
            server_url: field("ServerURL"),
            username: field("Username"),
            secret: field("Secret"),
        };
        assert_eq!(c.username, USERNAME, "wrong Username\n{}", self.dump());
        c
    }

    /// Asserts success and returns the `Secret` of the credential line.
    #[track_caller]
    pub fn secret(&self) -> String {
        self.credential().secret
    }
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client for poking the fakes
// ---------------------------------------------------------------------------

/// A response from [`http_request`].
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers (names as sent).
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl HttpResponse {
    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// Sends one plain-HTTP request to a loopback `http://127.0.0.1:PORT/path` URL.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpResponse {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("http_request only does http://, got {url}"));
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    assert!(host.starts_with("127.0.0.1:"), "loopback only: {url}");
    let mut s =
        std::net::TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send request");
    s.write_all(body).expect("send body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("malformed response: {text}"));
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a form value (`application/x-www-form-urlencoded`).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        let mut o = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    o.push(b as char)
                }
                b' ' => o.push('+'),
                _ => o.push_str(&format!("%{b:02X}")),
            }
        }
        o
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes `application/x-www-form-urlencoded` text.
pub fn form_decode(s: &str) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(b[i + 1]), hex(b[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}
