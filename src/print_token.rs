//! `print-access-token [--registry HOST]`: prints the token `get` would hand
//! docker, from the same source and cache, so that
//! `curl -H "Authorization: Bearer $(docker-credential-gar print-access-token)"`
//! reaches the Artifact Registry API as the same identity.

use std::ffi::OsString;
use std::io::Write;

use crate::error::{Error, Result};
use crate::protocol::{self, StoredAnswer};
use crate::{cache, log, registry, sources};

const SYNOPSIS: &str = "usage: docker-credential-gar print-access-token [--registry HOST]";

/// What `print-access-token --help` prints.
pub const HELP: &str = "\
Usage: docker-credential-gar print-access-token [--registry HOST]

Prints a Google access token on stdout (one line, nothing else), from the same
source and cache as `get`. Use it with the Artifact Registry API:

  curl -H \"Authorization: Bearer $(docker-credential-gar print-access-token)\" \\
    https://artifactregistry.googleapis.com/v1/projects/PROJECT/locations/LOCATION/repositories

Options:
  --registry HOST  use HOST's rules: an access token stored for HOST by
                   `docker login -u oauth2accesstoken` (while under 55 minutes
                   old) wins; otherwise HOST must be a Google registry
                   (*-docker.pkg.dev, gcr.io, GAR_REGISTRIES) and a token is minted
  -h, --help       print this help";

fn usage(problem: impl std::fmt::Display) -> Error {
    Error::Usage(format!(
        "docker-credential-gar print-access-token: {problem}; {SYNOPSIS}"
    ))
}

/// Runs the command with the arguments after its name.
pub fn run(args: &[OsString]) -> Result<()> {
    use lexopt::prelude::*;
    let mut registry_arg: Option<String> = None;
    let mut parser = lexopt::Parser::from_args(args.iter().cloned());
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("registry") => {
                let v = parser.value().map_err(usage)?;
                registry_arg = Some(
                    v.into_string()
                        .map_err(|_| usage("--registry is not valid UTF-8"))?,
                );
            }
            Short('h') | Long("help") => {
                let _ = writeln!(std::io::stdout().lock(), "{HELP}");
                return Ok(());
            }
            _ => return Err(usage(arg.unexpected())),
        }
    }
    log::set_action("print-access-token");
    let token = token_for(registry_arg.as_deref())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}").map_err(|e| Error::io("writing the token", e))
}

fn token_for(registry_arg: Option<&str>) -> Result<String> {
    if let Some(r) = registry_arg {
        let host = registry::host_of(r).ok_or_else(|| {
            usage(format_args!(
                "'{}' is not a registry host",
                crate::http::sanitize(r)
            ))
        })?;
        if let StoredAnswer::Found(c) = protocol::stored_for(&host) {
            if c.username == protocol::USERNAME {
                log::info(format_args!("{host}: printing the stored access token"));
                return Ok(c.secret);
            }
            return Err(Error::BadInput(format!(
                "{host} has stored credentials for user {}, which are not an access token; \
                 use `echo {host} | docker-credential-gar get`, or `docker logout {host}` \
                 to use Google credentials",
                c.username
            )));
        }
        if registry::managed_host(r).is_none() {
            return Err(Error::BadInput(format!(
                "{host} is not a Google registry and has no stored access token; \
                 add it to GAR_REGISTRIES if it is a mirror of one, or leave out --registry"
            )));
        }
    }
    let choice = sources::choose()?;
    log::set_source(|| sources::explain::describe_choice(&choice));
    let token = choice.token(cache::default_dir().map(cache::Cache::new).as_ref())?;
    Ok(token.secret)
}
