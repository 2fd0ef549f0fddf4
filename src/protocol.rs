//! The docker-credential-helpers wire protocol: one action on the command line,
//! the request on stdin, the answer (or the error text) on stdout.
//!
//! Everything behind this module returns values and [`Error`]s; only this module
//! reads stdin and writes the protocol's answers.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::cache::{self, Cache};
use crate::error::{Error, Result};
use crate::registry;
use crate::sources;

/// Docker's username for a Google access token.
pub const USERNAME: &str = "oauth2accesstoken";
/// Largest request we read from stdin.
const MAX_INPUT: u64 = 64 * 1024;

#[derive(Serialize)]
struct Credentials<'a> {
    #[serde(rename = "ServerURL")]
    server_url: &'a str,
    #[serde(rename = "Username")]
    username: &'a str,
    #[serde(rename = "Secret")]
    secret: &'a str,
}

#[derive(Deserialize)]
struct StoreRequest {
    #[serde(rename = "ServerURL", default)]
    server_url: Option<String>,
    #[serde(rename = "Username", default)]
    username: Option<String>,
}

/// Reads the request: at most 64 KiB of UTF-8, a leading BOM dropped.
fn read_input(mut r: impl Read) -> Result<String> {
    let mut buf = Vec::new();
    r.by_ref()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("reading the request from stdin", e))?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(Error::BadInput(
            "the request on stdin is larger than 64 KiB; send one server URL".to_owned(),
        ));
    }
    let s = String::from_utf8(buf).map_err(|_| {
        Error::BadInput("the request on stdin is not UTF-8 text; send one server URL".to_owned())
    })?;
    Ok(match s.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => s,
    })
}

fn open_cache() -> Option<Cache> {
    cache::default_dir().map(Cache::new)
}

/// `get`: a token for a managed host, else "not found".
fn get(input: &str, out: &mut impl Write) -> Result<()> {
    let server = input.trim();
    if server.is_empty() {
        return Err(Error::NoServerUrl);
    }
    if registry::managed_host(server).is_none() {
        return Err(Error::NotFound);
    }
    let choice = sources::choose()?;
    let token = choice.token(open_cache().as_ref())?;
    let answer = Credentials {
        server_url: server,
        username: USERNAME,
        secret: &token.secret,
    };
    let mut line = serde_json::to_vec(&answer).map_err(|e| Error::io("encoding", e.into()))?;
    line.push(b'\n');
    out.write_all(&line)
        .map_err(|e| Error::io("writing the answer", e))
}

/// `store`: docker calls it after a successful `docker login`; accepted.
fn store(input: &str) -> Result<()> {
    let req: StoreRequest = serde_json::from_str(input.trim()).map_err(|e| {
        Error::BadInput(format!(
            "store: the request {}; send {{\"ServerURL\":…,\"Username\":…,\"Secret\":…}}",
            sources::credentials_file::describe_json_error(&e)
        ))
    })?;
    if req
        .server_url
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(Error::NoServerUrl);
    }
    if req.username.as_deref().is_none_or(str::is_empty) {
        return Err(Error::NoUsername);
    }
    Ok(())
}

/// `erase`: drops the cached token that serves the host. Always succeeds.
fn erase(input: &str) {
    if registry::managed_host(input.trim()).is_none() {
        return;
    }
    if let (Ok(choice), Some(cache)) = (sources::choose(), open_cache())
        && let Some(id) = choice.identity()
    {
        cache.remove(&id);
    }
}

/// `list`: the hosts this machine sends to us, each with our username.
fn list(out: &mut impl Write) -> Result<()> {
    let mut hosts = BTreeMap::new();
    for h in crate::docker_config::gar_hosts()
        .into_iter()
        .chain(registry::extra_registries())
    {
        hosts.insert(h, USERNAME);
    }
    let mut line = serde_json::to_vec(&hosts).map_err(|e| Error::io("encoding", e.into()))?;
    line.push(b'\n');
    out.write_all(&line)
        .map_err(|e| Error::io("writing the answer", e))
}

/// Runs one protocol action with the process's stdin and stdout.
pub fn run(action: &str) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match action {
        "list" => list(&mut out),
        _ => {
            let input = read_input(std::io::stdin().lock())?;
            match action {
                "get" => get(&input, &mut out),
                "store" => store(&input),
                "erase" => {
                    erase(&input);
                    Ok(())
                }
                other => Err(Error::BadInput(format!("unknown action {other}"))),
            }
        }
    }
}
