//! `docker-credential-gar`: a Docker credential helper that hands docker short-lived
//! Google OAuth access tokens for Artifact Registry hosts.
//!
//! This file only parses the command line, dispatches, and maps errors to exit codes.
//!
//! The binary starts for every credential lookup docker makes, so it skips the
//! Rust runtime's start-up work (`#![no_main]`): on Linux that work reads
//! `/proc/self/maps` through `sscanf` to place a stack-overflow guard and installs
//! signal handlers, a sizeable share of a warm `get`. Arguments and environment
//! still come through `std::env` (glibc hands them to std before `main`); we
//! flush stdout ourselves, and a stack overflow ends in a plain SIGSEGV.

#![no_main]

use docker_credential_gar::{docker_config, doctor, error, print_token, protocol};

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "Usage: docker-credential-gar <get|store|erase|list|version|configure-docker|doctor|print-access-token|--help>";

const HELP: &str = "\
docker-credential-gar: Docker credential helper for Google Artifact Registry

Usage:
  docker-credential-gar get|store|erase|list   docker's credential-helper protocol (stdin/stdout)
  docker-credential-gar configure-docker [--registries HOST,...] [--creds-store] [--remove]
                                                route hosts to this helper in docker's config.json
  docker-credential-gar doctor [--registry HOST] [--offline] [--json]
                                                explain why a pull would (not) get credentials
  docker-credential-gar print-access-token [--registry HOST]
                                                print a token (for curl to the Artifact Registry API)
  docker-credential-gar version                 print the version
  docker-credential-gar COMMAND --help          help for one command

`get` answers with credentials stored by `docker login` (kept in the OS keyring,
else a 0600 file), and for Artifact Registry (*-docker.pkg.dev), gcr.io and
GAR_REGISTRIES hosts with a short-lived Google access token (username
oauth2accesstoken), cached on disk.
Token sources, in order: GOOGLE_OAUTH_ACCESS_TOKEN, GitHub Actions OIDC
(GAR_WORKLOAD_IDENTITY_PROVIDER), GOOGLE_APPLICATION_CREDENTIALS, the gcloud CLI,
the ADC file, the GCE metadata server (GAR_TOKEN_SOURCE forces one).
Other variables: GAR_CACHE_DIR, GAR_NO_CACHE, GAR_CONFIG_DIR, GAR_CREDENTIAL_STORE,
GAR_KEYRING_TIMEOUT, GAR_LOG, GAR_LOG_FILE, GAR_TOKEN_URL, GAR_HTTP_TIMEOUT,
GAR_GCLOUD_TIMEOUT, GCE_METADATA_HOST. See the README for details.";

const GET_HELP: &str = "\
Usage: echo SERVER | docker-credential-gar get

Docker's protocol: reads a server URL on stdin and prints
{\"ServerURL\":…,\"Username\":…,\"Secret\":…} on stdout. Credentials stored by
`docker login` for that host win (a stored oauth2accesstoken only for 55 minutes);
otherwise Google registries get a minted access token and other hosts get
`credentials not found in native keychain` (exit 1).";

const STORE_HELP: &str = "\
Usage: echo '{\"ServerURL\":…,\"Username\":…,\"Secret\":…}' | docker-credential-gar store

Docker's protocol (run by `docker login`): keeps the credentials in the OS keyring
(Secret Service, macOS Keychain), or in a 0600 file in GAR_CONFIG_DIR when no keyring
answers (said once on stderr). GAR_CREDENTIAL_STORE=auto|keyring|file chooses.";

const ERASE_HELP: &str = "\
Usage: echo SERVER | docker-credential-gar erase

Docker's protocol (run by `docker logout`): deletes the stored credentials for the
host and the cached token that serves it.";

const LIST_HELP: &str = "\
Usage: docker-credential-gar list

Docker's protocol: prints {\"HOST\":\"USERNAME\",…}: the hosts with stored credentials,
the hosts docker's config routes to gar, and GAR_REGISTRIES.";

/// Where a command's errors are shown.
enum ErrorsTo {
    /// Protocol actions: docker reads the helper's stdout and shows it.
    Stdout,
    /// Everything a person runs directly.
    Stderr,
}

fn print(text: &str) -> Result<(), error::Error> {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Ok(())
}

/// The C entry point: runs [`run`] and flushes stdout, which the skipped Rust
/// runtime would otherwise do at exit.
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    let code = run();
    let _ = std::io::stdout().lock().flush();
    if code == ExitCode::SUCCESS { 0 } else { 1 }
}

fn run() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let first = args.first().and_then(|a| a.to_str()).unwrap_or("");
    let second = args.get(1).and_then(|a| a.to_str());
    let wants_help = matches!(second, Some("--help" | "-h")) && args.len() == 2;
    let (result, errors_to) = match (first, args.len()) {
        ("get", 1) => (protocol::run("get"), ErrorsTo::Stdout),
        ("store", 1) => (protocol::run("store"), ErrorsTo::Stdout),
        ("erase", 1) => (protocol::run("erase"), ErrorsTo::Stdout),
        ("list", 1) => (protocol::run("list"), ErrorsTo::Stdout),
        ("get", _) if wants_help => (print(GET_HELP), ErrorsTo::Stdout),
        ("store", _) if wants_help => (print(STORE_HELP), ErrorsTo::Stdout),
        ("erase", _) if wants_help => (print(ERASE_HELP), ErrorsTo::Stdout),
        ("list", _) if wants_help => (print(LIST_HELP), ErrorsTo::Stdout),
        ("configure-docker", _) => (docker_config::run(&args[1..]), ErrorsTo::Stderr),
        ("print-access-token", _) => (print_token::run(&args[1..]), ErrorsTo::Stderr),
        ("doctor", _) => match doctor::run(&args[1..]) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => (Err(e), ErrorsTo::Stderr),
        },
        ("version" | "--version" | "-v", 1) => {
            println!("docker-credential-gar {}", env!("CARGO_PKG_VERSION"));
            (Ok(()), ErrorsTo::Stdout)
        }
        ("version", _) if wants_help => (
            print("Usage: docker-credential-gar version\n\nPrints the name and version."),
            ErrorsTo::Stdout,
        ),
        ("--help" | "-h" | "help", 1) => (print(HELP), ErrorsTo::Stdout),
        _ => (Err(error::Error::Usage(USAGE.to_owned())), ErrorsTo::Stdout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever a file or an endpoint put in it: no escape
            // sequences reach the terminal docker prints this on.
            let line: String = e
                .to_string()
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            let _ = match errors_to {
                ErrorsTo::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
                ErrorsTo::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
            };
            ExitCode::FAILURE
        }
    }
}
