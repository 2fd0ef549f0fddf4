//! `configure-docker`: route Artifact Registry hosts to this helper in docker's config.

use std::ffi::OsString;

use crate::error::Result;

/// Runs `configure-docker` with the arguments after the subcommand.
pub fn run(_args: &[OsString]) -> Result<()> {
    todo!("configure-docker")
}
