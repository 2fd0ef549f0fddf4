//! The user-facing error type.
//!
//! Every failure a person can see is one variant here, rendered as one line that
//! names what went wrong and, where there is one, what to do next. Whatever
//! reaches stdout or stderr passes through [`Error`]. No variant ever carries a token, refresh token, private key
//! or client secret: callers put only paths, hosts, account names and short
//! upstream error codes in here.

use std::fmt;
use std::path::{Path, PathBuf};

/// A failure that is shown to the user, with the fix where one is known.
#[derive(Debug)]
pub enum Error {
    /// `get`/`erase` for a host we do not serve: docker then goes on anonymously.
    NotFound,
    /// The request carried no server URL.
    NoServerUrl,
    /// `store` was given no username.
    NoUsername,
    /// Wrong command line; the text is the usage line to print.
    Usage(String),
    /// Input on stdin that cannot be understood.
    BadInput(String),
    /// No credential source is configured; each entry says what was looked at.
    NoCredentials {
        /// What was looked at, in order, each with why it did not apply.
        tried: Vec<String>,
    },
    /// A credentials file that is missing, unreadable or invalid.
    CredentialFile {
        /// Where the file was looked for (and which variable named it).
        origin: String,
        /// The path.
        path: PathBuf,
        /// What is wrong with it (never its content).
        problem: String,
    },
    /// A credential source failed while minting a token.
    Source {
        /// Which source (e.g. `service account key /path (sa@p.iam…)`).
        source: String,
        /// What failed.
        problem: String,
        /// What the user can do about it.
        fix: Option<String>,
    },
    /// The docker config file could not be read or written.
    DockerConfig {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Any other I/O failure, with what we were doing.
    Io {
        /// What we were doing.
        what: String,
        /// The OS error.
        err: std::io::Error,
    },
}

impl Error {
    /// A credentials-file error.
    pub fn file(origin: impl Into<String>, path: &Path, problem: impl Into<String>) -> Self {
        Error::CredentialFile {
            origin: origin.into(),
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }

    /// A failing source, with an optional fix.
    pub fn source(
        source: impl Into<String>,
        problem: impl Into<String>,
        fix: Option<&str>,
    ) -> Self {
        Error::Source {
            source: source.into(),
            problem: problem.into(),
            fix: fix.map(str::to_owned),
        }
    }

    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, err: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            err,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("credentials not found in native keychain"),
            Error::NoServerUrl => f.write_str("no credentials server URL"),
            Error::NoUsername => f.write_str("no credentials username"),
            Error::Usage(u) => f.write_str(u),
            Error::BadInput(m) => write!(f, "docker-credential-gar: {m}"),
            Error::NoCredentials { tried } => write!(
                f,
                "docker-credential-gar: no Google credentials found (tried: {}); run `gcloud auth login`, \
                 or set GOOGLE_APPLICATION_CREDENTIALS to a credentials file",
                tried.join("; ")
            ),
            Error::CredentialFile {
                origin,
                path,
                problem,
            } => write!(
                f,
                "docker-credential-gar: {origin} points to {}, which {problem}",
                path.display()
            ),
            Error::Source {
                source,
                problem,
                fix,
            } => {
                write!(f, "docker-credential-gar: {source}: {problem}")?;
                if let Some(fix) = fix {
                    write!(f, "; {fix}")?;
                }
                Ok(())
            }
            Error::DockerConfig { path, problem } => write!(
                f,
                "docker-credential-gar: docker config {}: {problem}",
                path.display()
            ),
            Error::Io { what, err } => write!(f, "docker-credential-gar: {what}: {err}"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for results carrying the user-facing error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
