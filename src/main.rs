//! `docker-credential-gar`: a Docker credential helper that hands docker short-lived
//! Google OAuth access tokens for Artifact Registry hosts.
//!
//! This file only parses the command line, dispatches, and maps errors to exit codes.

use docker_credential_gar::{docker_config, error, protocol};

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

const USAGE: &str =
    "Usage: docker-credential-gar <get|store|erase|list|version|configure-docker|--help>";

const HELP: &str = "\
docker-credential-gar: Docker credential helper for Google Artifact Registry

Usage:
  docker-credential-gar get|store|erase|list   docker's credential-helper protocol (stdin/stdout)
  docker-credential-gar configure-docker [--registries HOST,...]
                                                route hosts to this helper in docker's config.json
  docker-credential-gar version                 print the version
  docker-credential-gar --help                  this text

`get` answers Artifact Registry (*-docker.pkg.dev), gcr.io and GAR_REGISTRIES hosts
with a short-lived Google access token (username oauth2accesstoken), cached on disk.
Token sources, in order: GOOGLE_OAUTH_ACCESS_TOKEN, GOOGLE_APPLICATION_CREDENTIALS,
the gcloud CLI, the ADC file, the GCE metadata server (GAR_TOKEN_SOURCE forces one).
Other variables: GAR_CACHE_DIR, GAR_NO_CACHE, GAR_TOKEN_URL, GAR_HTTP_TIMEOUT,
GAR_GCLOUD_TIMEOUT, GCE_METADATA_HOST. See the README for details.";

/// Where a command's errors are shown.
enum ErrorsTo {
    /// Protocol actions: docker reads the helper's stdout and shows it.
    Stdout,
    /// Everything a person runs directly.
    Stderr,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let first = args.first().and_then(|a| a.to_str()).unwrap_or("");
    let (result, errors_to) = match (first, args.len()) {
        ("get" | "store" | "erase" | "list", 1) => (protocol::run(first), ErrorsTo::Stdout),
        ("configure-docker", _) => (docker_config::run(&args[1..]), ErrorsTo::Stderr),
        ("version" | "--version" | "-v", 1) => {
            println!("docker-credential-gar {}", env!("CARGO_PKG_VERSION"));
            (Ok(()), ErrorsTo::Stdout)
        }
        ("--help" | "-h" | "help", 1) => {
            println!("{HELP}");
            (Ok(()), ErrorsTo::Stdout)
        }
        _ => (Err(error::Error::Usage(USAGE.to_owned())), ErrorsTo::Stdout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = match errors_to {
                ErrorsTo::Stdout => writeln!(std::io::stdout().lock(), "{e}"),
                ErrorsTo::Stderr => writeln!(std::io::stderr().lock(), "{e}"),
            };
            ExitCode::FAILURE
        }
    }
}
