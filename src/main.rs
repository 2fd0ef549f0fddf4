//! `docker-credential-gar`: a Docker credential helper that hands docker short-lived
//! Google OAuth access tokens for Artifact Registry hosts.
//!
//! This file only parses the command line, dispatches, and maps errors to exit codes.

mod cache;
mod docker_config;
mod error;
mod http;
mod protocol;
mod registry;
mod sources;
mod token;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "Usage: docker-credential-gar <get|store|erase|list|version|configure-docker [--registries HOST,...]|--help>";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let first = args.first().and_then(|a| a.to_str()).unwrap_or("");
    let result = match (first, args.len()) {
        ("get" | "store" | "erase" | "list", 1) => protocol::run(first),
        ("configure-docker", _) => docker_config::run(&args[1..]),
        ("version" | "--version" | "-v", 1) => {
            println!("docker-credential-gar {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        ("--help" | "-h" | "help", 1) => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(error::Error::Usage(USAGE.to_owned())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Protocol errors go to stdout: docker reads the helper's stdout and shows it.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{e}");
            ExitCode::FAILURE
        }
    }
}
