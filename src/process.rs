//! Running another program (gcloud, a credential executable) with a bound: stdin
//! closed, output captured up to a limit, and the whole process group killed
//! when it runs past its time.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A program that ran to its end.
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Its stdout, at most the limit given.
    pub stdout: Vec<u8>,
    /// Its stderr (empty unless captured), at most the limit given.
    pub stderr: Vec<u8>,
}

/// Why a program gave no result.
pub enum RunError {
    /// It could not be started.
    Spawn(std::io::Error),
    /// It ran past its bound and was killed.
    TimedOut,
}

/// A duration in seconds (fractions allowed, more than 0, at most 600) from `var`,
/// else `default`; a value that is set but unusable is named on stderr.
pub fn duration_from_env(var: &str, default: Duration) -> Duration {
    let Some(raw) = std::env::var_os(var) else {
        return default;
    };
    let parsed = raw
        .to_str()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 600.0);
    match parsed {
        Some(s) => Duration::from_secs_f64(s),
        None => {
            eprintln!(
                "docker-credential-gar: warning: {var}={} is not a number of seconds between 0 and 600; using {} s",
                crate::http::sanitize(&raw.to_string_lossy()),
                default.as_secs_f64()
            );
            default
        }
    }
}

fn drain(
    mut r: impl Read + Send + 'static,
    max: u64,
    tx: mpsc::Sender<(bool, Vec<u8>)>,
    is_err: bool,
) {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.by_ref().take(max).read_to_end(&mut buf);
        let _ = tx.send((is_err, buf));
    });
}

fn kill_group(child: &mut Child) {
    // The child leads its own process group: kill whatever it started too.
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: plain syscall on a process group we created.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` in its own process group with stdin closed, capturing stdout (and
/// stderr when `capture_stderr`, else discarding it) up to `max` bytes each;
/// kills the group once `limit` has passed.
pub fn run_bounded(
    cmd: &mut Command,
    limit: Duration,
    max: u64,
    capture_stderr: bool,
) -> Result<Finished, RunError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if capture_stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .process_group(0);
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    let (tx, rx) = mpsc::channel();
    let mut streams = 0;
    if let Some(o) = child.stdout.take() {
        drain(o, max, tx.clone(), false);
        streams += 1;
    }
    if let Some(e) = child.stderr.take() {
        drain(e, max, tx, true);
        streams += 1;
    }
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                kill_group(&mut child);
                return Err(RunError::TimedOut);
            }
        }
    };
    // A grandchild may still hold the pipes: wait for them a little, not forever.
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let grace = Instant::now() + Duration::from_secs(2);
    for _ in 0..streams {
        match rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
            Ok((true, b)) => stderr = b,
            Ok((false, b)) => stdout = b,
            Err(_) => break,
        }
    }
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}
