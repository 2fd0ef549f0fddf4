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
use crate::{log, store};

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
    #[serde(rename = "Secret", default)]
    secret: Option<String>,
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
            "the request on stdin is larger than 64 KiB; docker sends one server URL (or, for store, one small JSON object)".to_owned(),
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

fn write_credentials(
    out: &mut impl Write,
    server: &str,
    username: &str,
    secret: &str,
) -> Result<()> {
    let answer = Credentials {
        server_url: server,
        username,
        secret,
    };
    let mut line = serde_json::to_vec(&answer).map_err(|e| Error::io("encoding", e.into()))?;
    line.push(b'\n');
    out.write_all(&line)
        .map_err(|e| Error::io("writing the answer", e))
}

/// What `get` (and `print-access-token --registry`) found stored for a host.
pub enum StoredAnswer {
    /// Credentials from `docker login`, still trusted.
    Found(store::Stored),
    /// Nothing usable is stored; the reason is for the log.
    None(&'static str),
}

/// The stored credentials for `host`, if any are trusted. Reads only the small
/// index unless the host is in it; keyring trouble is reported on stderr once
/// and treated as "nothing stored".
pub fn stored_for(host: &str) -> StoredAnswer {
    let Some(store) = store::Store::open() else {
        return StoredAnswer::None("no config directory");
    };
    let Some(entry) = store.indexed(host) else {
        return StoredAnswer::None("no stored credentials");
    };
    if !entry.trusted_at(crate::token::now()) {
        log::info(format_args!(
            "{host}: the stored access token is older than 55 min; not using it"
        ));
        return StoredAnswer::None("stored access token expired");
    }
    match store.read(host, &entry) {
        Ok(Some(c)) => StoredAnswer::Found(c),
        Ok(None) => {
            log::warn(format_args!(
                "{host}: the index lists stored credentials, but the {} has none",
                entry.backend.name()
            ));
            StoredAnswer::None("stored credentials missing")
        }
        Err(e) => {
            let e = e.to_string();
            let e = e.strip_prefix("docker-credential-gar: ").unwrap_or(&e);
            let _ = writeln!(
                std::io::stderr().lock(),
                "docker-credential-gar: warning: stored credentials for {host} could not be read: {e}"
            );
            log::error(format_args!("{host}: reading stored credentials failed"));
            StoredAnswer::None("stored credentials unreadable")
        }
    }
}

/// `get`: stored credentials for the host, else a token for a managed host,
/// else "not found".
fn get(input: &str, out: &mut impl Write) -> Result<()> {
    let server = input.trim();
    if server.is_empty() {
        return Err(Error::NoServerUrl);
    }
    let Some(host) = registry::host_of(server) else {
        log::info(format_args!("not a registry address; not found"));
        return Err(Error::NotFound);
    };
    match stored_for(&host) {
        StoredAnswer::Found(c) => {
            log::set_source(|| "stored credentials".to_owned());
            log::info(format_args!(
                "{host}: answering with stored credentials for user {}",
                c.username
            ));
            return write_credentials(out, server, &c.username, &c.secret);
        }
        StoredAnswer::None(why) => log::debug(format_args!("{host}: {why}")),
    }
    if registry::managed_host(server).is_none() {
        log::info(format_args!("{host}: not a Google registry; not found"));
        return Err(Error::NotFound);
    }
    let choice = sources::choose()?;
    log::set_source(|| sources::explain::describe_choice(&choice));
    let started = std::time::Instant::now();
    let token = choice.token(open_cache().as_ref()).inspect_err(|e| {
        log::error(format_args!("{host}: {e}"));
    })?;
    log::info(format_args!(
        "{host}: token ready in {} ms",
        started.elapsed().as_millis()
    ));
    write_credentials(out, server, USERNAME, &token.secret)
}

/// `store`: keeps what `docker login` sends, in the OS keyring (else a 0600 file).
fn store(input: &str) -> Result<()> {
    let req: StoreRequest = serde_json::from_str(input.trim()).map_err(|e| {
        Error::BadInput(format!(
            "store: the request {}; send {{\"ServerURL\":…,\"Username\":…,\"Secret\":…}}",
            sources::credentials_file::describe_json_error(&e)
        ))
    })?;
    let server = match req.server_url.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => return Err(Error::NoServerUrl),
    };
    let username = match req.username {
        Some(u) if !u.is_empty() => u,
        _ => return Err(Error::NoUsername),
    };
    let host = registry::host_of(&server).ok_or_else(|| {
        Error::BadInput(format!(
            "store: {} is not a registry address (expected host[:port], optionally with https:// and a path)",
            crate::http::sanitize(&server)
        ))
    })?;
    let secret = req.secret.unwrap_or_default();
    let store = store::Store::open().ok_or_else(|| {
        Error::BadInput(format!(
            "store: no config directory is known; set HOME or {}",
            store::DIR_VAR
        ))
    })?;
    let saved = store.save(
        &host,
        &store::Stored {
            server_url: server,
            username: username.clone(),
            secret,
        },
    )?;
    if let Some(why) = &saved.fallback {
        let _ = writeln!(
            std::io::stderr().lock(),
            "docker-credential-gar: {why}; stored the credentials for {host} in {} (mode 0600) instead",
            store.file_path().display()
        );
    }
    log::set_source(|| format!("{} store", saved.backend.name()));
    log::info(format_args!(
        "{host}: stored credentials for user {username}"
    ));
    Ok(())
}

/// `erase`: deletes stored credentials for the host and drops the cached token
/// that serves it.
fn erase(input: &str) -> Result<()> {
    let server = input.trim();
    let Some(host) = registry::host_of(server) else {
        return Ok(());
    };
    if let Some(store) = store::Store::open() {
        let erased = store.erase(&host)?;
        log::info(format_args!(
            "{host}: {}",
            if erased {
                "stored credentials erased"
            } else {
                "no stored credentials"
            }
        ));
    }
    if registry::managed_host(server).is_some()
        && let (Ok(choice), Some(cache)) = (sources::choose(), open_cache())
        && let Some(id) = choice.identity()
    {
        cache.remove(&id);
        log::info(format_args!("{host}: cached token dropped"));
    }
    Ok(())
}

/// `list`: the hosts this machine sends to us, each with its username: stored
/// credentials (their username) and the hosts routed to us for tokens.
fn list(out: &mut impl Write) -> Result<()> {
    let mut hosts: BTreeMap<String, String> = BTreeMap::new();
    for h in crate::docker_config::gar_hosts()
        .into_iter()
        .chain(registry::extra_registries())
    {
        hosts.insert(h, USERNAME.to_owned());
    }
    if let Some(store) = store::Store::open() {
        for (h, e) in store.index() {
            hosts.insert(h, e.username);
        }
    }
    let mut line = serde_json::to_vec(&hosts).map_err(|e| Error::io("encoding", e.into()))?;
    line.push(b'\n');
    out.write_all(&line)
        .map_err(|e| Error::io("writing the answer", e))
}

/// Runs one protocol action with the process's stdin and stdout.
pub fn run(action: &'static str) -> Result<()> {
    log::set_action(action);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match action {
        "list" => list(&mut out),
        _ => {
            let input = read_input(std::io::stdin().lock())?;
            match action {
                "get" => get(&input, &mut out),
                "store" => store(&input),
                "erase" => erase(&input),
                other => Err(Error::BadInput(format!("unknown action {other}"))),
            }
        }
    }
}
