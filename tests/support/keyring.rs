//! A real Secret Service for the store tests: a private D-Bus session bus
//! (Debian's `dbus-daemon`) and `gnome-keyring-daemon` with an unlocked login
//! keyring (password on stdin, as on a headless CI runner), both children of the
//! test and killed when it ends. Items are inspected with `secret-tool`
//! (libsecret-tools), and `dbus-send` locks the collection.
//!
//! Also: [`SilentBus`], a unix socket that accepts connections and never
//! answers, standing in for a session bus that hangs.
//!
//! `dbus-daemon`, `dbus-send`, `gnome-keyring-daemon` and `secret-tool` are
//! required: a missing one fails the test with the command that installs it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Sandbox, which};

/// The keyring items' `service` attribute (what the helper writes).
pub const SERVICE: &str = "docker-credential-gar";

const INSTALL_HINT: &str =
    "run `tests/run.sh` (it installs them) or `apt-get install dbus gnome-keyring libsecret-tools`";

/// Panics unless the D-Bus and keyring tools are on `PATH`.
pub fn require_tools() {
    let missing: Vec<&str> = [
        "dbus-daemon",
        "dbus-send",
        "gnome-keyring-daemon",
        "secret-tool",
    ]
    .into_iter()
    .filter(|t| which(t).is_none())
    .collect();
    assert!(
        missing.is_empty(),
        "required test tool(s) missing: {}; {INSTALL_HINT}",
        missing.join(", ")
    );
}

/// A session bus with an unlocked gnome-keyring on it, for one sandbox.
pub struct SecretService {
    sandbox: Sandbox,
    address: String,
    bus: Child,
    keyring: Child,
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

impl SecretService {
    /// Starts the bus and the keyring daemon, waits until the keyring owns
    /// `org.freedesktop.secrets`, and points the sandbox's
    /// `DBUS_SESSION_BUS_ADDRESS` at the bus (and `XDG_RUNTIME_DIR` at its
    /// runtime dir).
    pub fn start(sandbox: &Sandbox) -> SecretService {
        require_tools();
        let socket = sandbox.runtime_dir().join("test-bus");
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .env_clear()
            .env("PATH", sandbox.path_env())
            .env("HOME", sandbox.home())
            .env("XDG_RUNTIME_DIR", sandbox.runtime_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dbus-daemon: {e}; {INSTALL_HINT}"));
        let stdout = bus.stdout.take().expect("dbus-daemon stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let address = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l.starts_with("unix:") => l.trim().to_owned(),
            other => {
                kill(&mut bus);
                panic!("dbus-daemon did not print its address within 20 s (got {other:?})");
            }
        };

        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .env("PATH", sandbox.path_env())
            .env("HOME", sandbox.home())
            .env("XDG_RUNTIME_DIR", sandbox.runtime_dir())
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                kill(&mut bus);
                panic!("cannot start gnome-keyring-daemon: {e}; {INSTALL_HINT}")
            });
        if let Some(mut stdin) = keyring.stdin.take() {
            // The login keyring's password; EOF ends it.
            let _ = stdin.write_all(b"test-keyring-password");
        }
        let ss = SecretService {
            sandbox: sandbox.clone(),
            address,
            bus,
            keyring,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ss.name_has_owner("org.freedesktop.secrets") {
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon did not take org.freedesktop.secrets within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sandbox.set_env("DBUS_SESSION_BUS_ADDRESS", &ss.address);
        sandbox.set_env("XDG_RUNTIME_DIR", sandbox.runtime_dir());
        ss
    }

    /// The bus address.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn tool(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", self.sandbox.path_env())
            .env("HOME", self.sandbox.home())
            .env("XDG_RUNTIME_DIR", self.sandbox.runtime_dir())
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::null());
        c
    }

    fn run_tool(&self, program: &str, args: &[&str]) -> std::process::Output {
        let mut child = self
            .tool(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}; {INSTALL_HINT}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() >= deadline {
                kill(&mut child);
                panic!("{program} {args:?} did not finish within 20 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait_with_output().expect("tool output")
    }

    fn name_has_owner(&self, name: &str) -> bool {
        let out = self.run_tool(
            "dbus-send",
            &[
                "--session",
                "--dest=org.freedesktop.DBus",
                "--print-reply",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                &format!("string:{name}"),
            ],
        );
        String::from_utf8_lossy(&out.stdout).contains("boolean true")
    }

    /// The secret of the helper's item for `host` (`secret-tool lookup`).
    pub fn lookup(&self, host: &str) -> Option<String> {
        let out = self.run_tool(
            "secret-tool",
            &["lookup", "service", SERVICE, "username", host],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Every item of the helper (`secret-tool search --all`): labels and
    /// attributes (stderr of secret-tool), secrets (stdout), as one text.
    pub fn search_all(&self) -> String {
        let out = self.run_tool("secret-tool", &["search", "--all", "service", SERVICE]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Locks the login collection (as after a screen lock); unlocking then
    /// needs a prompt, which cannot show here.
    pub fn lock(&self) {
        let out = self.run_tool(
            "dbus-send",
            &[
                "--session",
                "--dest=org.freedesktop.secrets",
                "--print-reply",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.Lock",
                "array:objpath:/org/freedesktop/secrets/collection/login",
            ],
        );
        assert!(
            out.status.success(),
            "locking the login collection failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The keyring files gnome-keyring keeps under the sandbox's HOME.
    pub fn keyring_dir(&self) -> PathBuf {
        self.sandbox.home().join(".local/share/keyrings")
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        kill(&mut self.keyring);
        kill(&mut self.bus);
    }
}

/// A unix socket that accepts connections and never says a word: a session bus
/// that hangs. Stops (and removes the socket) when dropped.
pub struct SilentBus {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentBus {
    /// Listens at `<sandbox runtime dir>/silent-bus`.
    pub fn start(sandbox: &Sandbox) -> SilentBus {
        let path = sandbox.runtime_dir().join("silent-bus");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind the silent bus socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut held = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(300);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    if let Ok((conn, _)) = listener.accept() {
                        held.push(conn);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        SilentBus {
            path,
            stop,
            thread: Some(thread),
        }
    }

    /// The `DBUS_SESSION_BUS_ADDRESS` value.
    pub fn address(&self) -> String {
        format!("unix:path={}", self.path.display())
    }
}

impl Drop for SilentBus {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
