//! `configure-docker`: route Artifact Registry hosts to this helper in docker's config.
//!
//! Docker finds credential helpers through `credHelpers` in its `config.json`: a host
//! mapped to `"gar"` makes docker run `docker-credential-gar` for that host. This
//! module adds those entries and leaves everything else in the file alone:
//!
//! - the file is `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json` when
//!   `DOCKER_CONFIG` is unset or empty (as docker itself does);
//! - every other key keeps its value and its place (serde_json's `preserve_order`);
//! - nothing is written when the hosts are already mapped to `gar`, so a second run
//!   (or a read-only, already configured file) is a no-op;
//! - a write goes to a temporary file next to the real one, which is then renamed
//!   over it; a symlinked `config.json` is followed and its target replaced, and the
//!   file keeps its mode (a new file gets 0600, a new directory 0700);
//! - a file that is not valid JSON, or whose top level or `credHelpers` is not an
//!   object, is left untouched and reported with the fix;
//! - `--creds-store` sets `"credsStore": "gar"` (every registry then asks us);
//! - `--remove` takes out only what is ours: `credHelpers` entries mapped to
//!   `gar` (all of them, or the `--registries` given) and `"credsStore": "gar"`.
//!
//! [`routes`] reads the same file for `doctor`: which helper docker asks for a host.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::files::{self, ReadError};

/// The host configured when `--registries` is not given.
pub const DEFAULT_REGISTRY: &str = "europe-north1-docker.pkg.dev";

/// The helper name written into `credHelpers`: docker runs `docker-credential-<name>`.
pub const HELPER: &str = "gar";

/// The one-line synopsis, used in usage errors.
const SYNOPSIS: &str = "usage: docker-credential-gar configure-docker [--registries HOST[,HOST...]] [--creds-store] [--remove]";

/// What `configure-docker --help` prints.
const HELP: &str = "\
Usage: docker-credential-gar configure-docker [--registries HOST[,HOST...]]
       docker-credential-gar configure-docker --creds-store [--registries HOST[,HOST...]]
       docker-credential-gar configure-docker --remove [--registries HOST[,HOST...]]

Makes docker use docker-credential-gar for the given Artifact Registry hosts by
mapping each of them to \"gar\" under \"credHelpers\" in $DOCKER_CONFIG/config.json
(~/.docker/config.json when DOCKER_CONFIG is not set). The file and its directory
are created if missing; every other setting is kept, and running it again changes
nothing. A host mapped to another helper (e.g. gcloud) is switched, with a notice.

Options:
  --registries HOST[,HOST...]  hosts to configure, comma-separated
                               (default: europe-north1-docker.pkg.dev); an image
                               path or URL is reduced to its host
  --creds-store                set \"credsStore\": \"gar\" instead, so docker asks
                               docker-credential-gar for every registry (docker
                               login then stores in the OS keyring); with
                               --registries, those hosts are mapped as well
  --remove                     take out what is ours: every credHelpers entry
                               mapped to gar (or only the --registries given) and
                               \"credsStore\": \"gar\"; nothing else changes
  -h, --help                   print this help";

/// How many symlinks are followed before giving up, like the kernel's ELOOP limit.
const MAX_SYMLINKS: usize = 40;

/// Largest docker config read; real ones are a few KiB.
const MAX_CONFIG: u64 = 16 * 1024 * 1024;

/// The UTF-8 byte-order mark some Windows editors put at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Runs `configure-docker` with the arguments after the subcommand.
///
/// Prints one line per host on stdout (`configured …` or `already configured …`) and
/// notices (a reduced host name, a host taken over from another helper) on stderr.
pub fn run(args: &[OsString]) -> Result<()> {
    let (registries, creds_store) = match parse_args(args)? {
        Command::Help => {
            let _ = writeln!(io::stdout().lock(), "{HELP}");
            return Ok(());
        }
        Command::Remove(registries) => return run_remove(&registries),
        Command::Configure {
            registries,
            creds_store,
        } => (registries, creds_store),
    };
    // `--creds-store` alone sets only credsStore; otherwise the default host is used.
    let hosts = if creds_store && registries.is_empty() {
        Vec::new()
    } else {
        hosts_from(&registries)?
    };
    let config = config_path()?;
    let outcome = configure(&config, &hosts, creds_store)?;

    let mut err = io::stderr().lock();
    for notice in &outcome.notices {
        let _ = writeln!(err, "configure-docker: {notice}");
    }
    let location = location(&config, &outcome.file);
    let mut out = io::stdout().lock();
    for (host, status) in &outcome.hosts {
        let already = if matches!(status, Status::Already) {
            "already "
        } else {
            ""
        };
        let _ = writeln!(out, "{already}configured {host} -> {HELPER} in {location}");
    }
    if let Some(status) = &outcome.creds_store {
        let already = if matches!(status, Status::Already) {
            "already "
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{already}configured credsStore -> {HELPER} in {location}"
        );
    }
    Ok(())
}

fn location(config: &Path, file: &Path) -> String {
    if file == config {
        config.display().to_string()
    } else {
        format!("{} (symlink to {})", config.display(), file.display())
    }
}

/// `configure-docker --remove [--registries …]`.
fn run_remove(registries: &[String]) -> Result<()> {
    let only = if registries.is_empty() {
        None
    } else {
        Some(hosts_from(registries)?)
    };
    let config = config_path()?;
    let outcome = remove(&config, only.as_deref())?;
    let mut err = io::stderr().lock();
    for notice in &outcome.notices {
        let _ = writeln!(err, "configure-docker: {notice}");
    }
    let location = location(&config, &outcome.file);
    let mut out = io::stdout().lock();
    if outcome.removed.is_empty() {
        let _ = writeln!(
            out,
            "nothing of docker-credential-gar to remove in {location}"
        );
    }
    for what in &outcome.removed {
        let _ = writeln!(out, "removed {what} -> {HELPER} from {location}");
    }
    Ok(())
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Command {
    /// `--help`.
    Help,
    /// Configure these `--registries` entries (each possibly comma-separated), or the
    /// default host when the list is empty; `creds_store` also sets `credsStore`.
    Configure {
        /// The `--registries` values.
        registries: Vec<String>,
        /// `--creds-store`.
        creds_store: bool,
    },
    /// `--remove`, limited to these `--registries` entries when any are given.
    Remove(Vec<String>),
}

/// A usage error: one line, with what was wrong and the synopsis.
fn usage(problem: impl std::fmt::Display) -> Error {
    Error::Usage(format!(
        "docker-credential-gar configure-docker: {problem}; {SYNOPSIS}"
    ))
}

/// Parses `[--registries H1,H2]... [--creds-store] [--remove] [--help]`;
/// `--registries` may be repeated.
fn parse_args(args: &[OsString]) -> Result<Command> {
    use lexopt::prelude::*;

    let mut registries = Vec::new();
    let mut creds_store = false;
    let mut remove = false;
    let mut parser = lexopt::Parser::from_args(args.iter().cloned());
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("registries") => {
                let value = parser.value().map_err(usage)?;
                let value = value.into_string().map_err(|v| {
                    usage(format_args!(
                        "--registries {} is not valid UTF-8",
                        v.to_string_lossy()
                    ))
                })?;
                registries.push(value);
            }
            Long("creds-store") => creds_store = true,
            Long("remove") => remove = true,
            Short('h') | Long("help") => return Ok(Command::Help),
            _ => return Err(usage(arg.unexpected())),
        }
    }
    match (remove, creds_store) {
        (true, true) => Err(usage("--remove and --creds-store do not go together")),
        (true, false) => Ok(Command::Remove(registries)),
        (false, _) => Ok(Command::Configure {
            registries,
            creds_store,
        }),
    }
}

/// Turns the `--registries` values into the hosts to configure: split on commas,
/// reduced to hosts, duplicates dropped (first occurrence kept). No values at all
/// means the default host. Prints a notice for each entry that was reduced.
fn hosts_from(registries: &[String]) -> Result<Vec<String>> {
    if registries.is_empty() {
        return Ok(vec![DEFAULT_REGISTRY.to_owned()]);
    }
    let mut hosts: Vec<String> = Vec::new();
    for value in registries {
        if value.trim().is_empty() {
            return Err(usage("--registries needs at least one host"));
        }
        for entry in value.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(usage(format_args!("empty host in --registries '{value}'")));
            }
            let host = host_of(entry).map_err(usage)?;
            if host != entry {
                let _ = writeln!(
                    io::stderr().lock(),
                    "configure-docker: using host {host} (from {entry})"
                );
            }
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    Ok(hosts)
}

/// Reduces `host`, `host/project/repo…` or `https://host/…` to the lower-cased host,
/// port kept: the key docker looks up in `credHelpers`.
fn host_of(entry: &str) -> Result<String, String> {
    crate::registry::host_of(entry)
        .ok_or_else(|| format!("'{entry}' is not a registry host (expected host[:port], optionally with https:// and a path)"))
}

/// `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json` when `DOCKER_CONFIG` is
/// unset or empty.
fn config_path() -> Result<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir).join("config.json")),
        _ => {
            let home = dirs::home_dir().ok_or_else(|| {
                Error::io(
                    "finding docker's config directory",
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        "no home directory; set HOME or DOCKER_CONFIG",
                    ),
                )
            })?;
            Ok(home.join(".docker").join("config.json"))
        }
    }
}

/// What happened to one host.
#[derive(Debug, PartialEq)]
enum Status {
    /// It was not in `credHelpers`; now it is.
    Added,
    /// It was mapped to another helper (the JSON value shown here); now to us.
    Switched(String),
    /// It was already mapped to us.
    Already,
}

/// The result of [`configure`].
#[derive(Debug)]
struct Outcome {
    /// The file that was read (and written if anything changed): the config path with
    /// symlinks followed.
    file: PathBuf,
    /// Each host, in order, with what happened to it.
    hosts: Vec<(String, Status)>,
    /// Lines for stderr, to print once the file is safely written.
    notices: Vec<String>,
    /// What happened to `credsStore`, when `--creds-store` was given.
    creds_store: Option<Status>,
}

/// Maps each of `hosts` to [`HELPER`] in the docker config at `config`, writing the
/// file only if that changes something.
fn configure(config: &Path, hosts: &[String], creds_store: bool) -> Result<Outcome> {
    let file = follow_symlinks(config)?;
    let _guard = lock_config_dir(&file);
    let existing = read_existing(&file)?;
    let mut root = match &existing {
        Some((bytes, _)) => parse(&file, bytes)?,
        None => Map::new(),
    };

    let mut statuses = Vec::new();
    let mut notices = Vec::new();
    if !hosts.is_empty() {
        map_hosts(&file, &mut root, hosts, &mut statuses, &mut notices)?;
    }

    let store_status = creds_store.then(|| {
        let status = match root.get("credsStore") {
            Some(Value::String(h)) if h == HELPER => Status::Already,
            Some(Value::String(h)) if !h.is_empty() => {
                notices.push(format!(
                    "credsStore was {h} (docker-credential-{h}); now {HELPER}: run `docker login` \
                     again for registries whose credentials {h} kept"
                ));
                Status::Switched(format!("docker-credential-{h}"))
            }
            _ => Status::Added,
        };
        if status != Status::Already {
            root.insert("credsStore".to_owned(), Value::String(HELPER.to_owned()));
        }
        status
    });

    if statuses.iter().any(|(_, s)| *s != Status::Already)
        || store_status.as_ref().is_some_and(|s| *s != Status::Already)
    {
        let mode = existing.as_ref().map(|(_, meta)| meta);
        write_atomically(&file, &render(&file, &root)?, mode)?;
    }
    Ok(Outcome {
        file,
        hosts: statuses,
        notices,
        creds_store: store_status,
    })
}

/// Maps each of `hosts` to [`HELPER`] under `credHelpers` in `root`.
fn map_hosts(
    file: &Path,
    root: &mut Map<String, Value>,
    hosts: &[String],
    statuses: &mut Vec<(String, Status)>,
    notices: &mut Vec<String>,
) -> Result<()> {
    let helpers = root
        .entry("credHelpers")
        .or_insert_with(|| Value::Object(Map::new()));
    if helpers.is_null() {
        // `"credHelpers": null` holds nothing; docker reads it as an empty map.
        *helpers = Value::Object(Map::new());
    }
    let Value::Object(helpers) = helpers else {
        return Err(Error::DockerConfig {
            path: file.to_path_buf(),
            problem: format!(
                "\"credHelpers\" is {}, not an object mapping hosts to helper names; \
                 fix or move the file, then run configure-docker again (it was left unchanged)",
                describe(helpers)
            ),
        });
    };

    for host in hosts {
        let status = match helpers.get(host) {
            Some(Value::String(h)) if h == HELPER => Status::Already,
            Some(other) => Status::Switched(match other {
                Value::String(h) if h.is_empty() => "docker's default credential store".to_owned(),
                Value::String(h) => format!("docker-credential-{h}"),
                v => format!("the invalid helper name {v}"),
            }),
            None => Status::Added,
        };
        if let Status::Switched(previous) = &status {
            notices.push(format!(
                "{host} was handled by {previous}; now by docker-credential-{HELPER}"
            ));
        }
        if status != Status::Already {
            helpers.insert(host.clone(), Value::String(HELPER.to_owned()));
        }
        statuses.push((host.clone(), status));
    }

    Ok(())
}

/// The result of [`remove`].
#[derive(Debug)]
struct Removed {
    /// The file that was read (and written if anything changed).
    file: PathBuf,
    /// What went: hosts, and `credsStore`.
    removed: Vec<String>,
    /// Lines for stderr.
    notices: Vec<String>,
}

/// Takes our entries out of the docker config at `config`: `credHelpers` entries
/// mapped to [`HELPER`] (only those of `only`, when given) and, when `only` is
/// `None`, `"credsStore": "gar"`. Everything else stays; nothing is written when
/// nothing is ours.
fn remove(config: &Path, only: Option<&[String]>) -> Result<Removed> {
    let file = follow_symlinks(config)?;
    let _guard = lock_config_dir(&file);
    let Some((bytes, meta)) = read_existing(&file)? else {
        return Ok(Removed {
            file,
            removed: Vec::new(),
            notices: Vec::new(),
        });
    };
    let mut root = parse(&file, &bytes)?;
    let mut removed = Vec::new();
    let mut notices = Vec::new();
    let mut emptied = false;
    if let Some(Value::Object(helpers)) = root.get_mut("credHelpers") {
        let ours: Vec<String> = helpers
            .iter()
            .filter(|(h, v)| {
                v.as_str() == Some(HELPER) && only.is_none_or(|o| o.iter().any(|x| x == *h))
            })
            .map(|(h, _)| h.clone())
            .collect();
        for h in &ours {
            helpers.remove(h);
        }
        if let Some(only) = only {
            for h in only.iter().filter(|h| !ours.contains(h)) {
                notices.push(match helpers.get(h) {
                    Some(Value::String(other)) => {
                        format!("{h} is handled by docker-credential-{other}; left as is")
                    }
                    _ => format!("{h} was not configured for {HELPER}"),
                });
            }
        }
        emptied = !ours.is_empty() && helpers.is_empty();
        removed.extend(ours);
    }
    if emptied {
        root.remove("credHelpers");
    }
    if only.is_none() && root.get("credsStore").and_then(Value::as_str) == Some(HELPER) {
        root.remove("credsStore");
        removed.push("credsStore".to_owned());
    }
    if !removed.is_empty() {
        write_atomically(&file, &render(&file, &root)?, Some(&meta))?;
    }
    Ok(Removed {
        file,
        removed,
        notices,
    })
}

/// Follows `path` while it is a symlink; a relative link is resolved against the
/// directory holding the link. The result may not exist (a dangling link).
fn follow_symlinks(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = fs::read_link(&current).map_err(|e| Error::DockerConfig {
                    path: current.clone(),
                    problem: format!("cannot read the symlink: {e}"),
                })?;
                current = match current.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => {
                return Err(Error::DockerConfig {
                    path: current,
                    problem: format!("cannot look at it: {e}"),
                });
            }
        }
    }
    Err(Error::DockerConfig {
        path: path.to_path_buf(),
        problem: format!("more than {MAX_SYMLINKS} levels of symlinks; point it at a real file"),
    })
}

/// The file's content and metadata, or `None` when it does not exist. Anything
/// but a regular file (a directory, a FIFO, a device) is refused without being
/// read, so a FIFO never hangs us.
fn read_existing(file: &Path) -> Result<Option<(Vec<u8>, fs::Metadata)>> {
    let problem = match read_config(file) {
        Ok(found) => return Ok(Some(found)),
        Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e @ (ReadError::NotRegular(_) | ReadError::TooLarge)) => {
            format!("{e}; move it out of the way and run configure-docker again")
        }
        Err(ReadError::Io(e)) => format!("cannot read it: {e}"),
        Err(e) => format!("cannot read it: it {e}"),
    };
    Err(Error::DockerConfig {
        path: file.to_path_buf(),
        problem,
    })
}

/// Reads docker's config file: a regular file (symlinks followed) of at most
/// [`MAX_CONFIG`] bytes.
fn read_config(file: &Path) -> std::result::Result<(Vec<u8>, fs::Metadata), ReadError> {
    files::read_with_metadata(file, MAX_CONFIG, files::Require::default())
}

/// Parses the config; an empty (or blank) file is `{}`, a leading BOM is skipped.
fn parse(file: &Path, bytes: &[u8]) -> Result<Map<String, Value>> {
    let text = bytes.strip_prefix(BOM).unwrap_or(bytes);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::DockerConfig {
            path: file.to_path_buf(),
            problem: format!(
                "holds {} at the top level, not a JSON object; fix or move the file, \
                 then run configure-docker again (it was left unchanged)",
                describe(&other)
            ),
        }),
        Err(e) => Err(Error::DockerConfig {
            path: file.to_path_buf(),
            problem: format!(
                "is not valid JSON ({e}); fix or move the file, then run configure-docker \
                 again (it was left unchanged)"
            ),
        }),
    }
}

/// A short description of a JSON value's kind, for error messages.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The config as docker itself writes it (tab-indented), with a final newline.
fn render(file: &Path, root: &Map<String, Value>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    root.serialize(&mut serializer)
        .map_err(|e| Error::DockerConfig {
            path: file.to_path_buf(),
            problem: format!("cannot serialize the new content: {e}"),
        })?;
    out.push(b'\n');
    Ok(out)
}

/// Serialises our read-modify-write of `file` between concurrent runs (an install
/// script in a CI matrix): an exclusive `flock` on its directory, so no lock file
/// is left in docker's config dir. Best effort: no directory yet, or a lock that
/// stays taken for 10 s, means going ahead without it.
fn lock_config_dir(file: &Path) -> Option<fs::File> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty())?;
    let f = fs::File::open(dir).ok()?;
    crate::cache::lock_within(f, std::time::Duration::from_secs(10))
        .ok()
        .flatten()
}

/// Replaces `file` with `content` through a temporary file in the same directory and
/// a rename, so readers see the old or the new file, never half of one. `existing` is
/// the current file's metadata (its mode is kept); without it the file is new (0600)
/// and a missing directory is created (0700).
fn write_atomically(file: &Path, content: &[u8], existing: Option<&fs::Metadata>) -> Result<()> {
    let config_error = |problem: String| Error::DockerConfig {
        path: file.to_path_buf(),
        problem,
    };
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };

    if existing.is_some() {
        // Replacing the file through a rename would succeed even when the file itself
        // is read-only; respect the read-only bit instead of silently overriding it.
        // O_NONBLOCK: should a FIFO have been swapped in, never wait for a reader.
        let writable = {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(file)
        };
        if let Err(e) = writable {
            return Err(config_error(format!(
                "is not writable ({e}); make it writable and run configure-docker again \
                 (nothing was changed)"
            )));
        }
    } else {
        create_dir(dir).map_err(|e| {
            config_error(format!(
                "cannot create the directory {}: {e}",
                dir.display()
            ))
        })?;
    }

    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.json".to_owned());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| {
            config_error(format!(
                "cannot create a temporary file in {}: {e}",
                dir.display()
            ))
        })?;
    keep_mode_and_owner(tmp.as_file(), existing)
        .map_err(|e| config_error(format!("cannot set the new file's mode: {e}")))?;
    tmp.write_all(content)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| config_error(format!("cannot write the new content: {e}")))?;
    tmp.persist(file)
        .map_err(|e| config_error(format!("cannot replace it: {}", e.error)))?;
    // Make the rename durable; failing to sync the directory loses nothing already done.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `dir` (and its parents) if missing, 0700 for what is created.
#[cfg(unix)]
fn create_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates `dir` (and its parents) if missing.
#[cfg(not(unix))]
fn create_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// Gives the temporary file the old file's permission bits (0600 for a new file) and,
/// where allowed, its owner and group.
#[cfg(unix)]
fn keep_mode_and_owner(tmp: &fs::File, existing: Option<&fs::Metadata>) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mode = existing.map_or(0o600, |m| m.mode() & 0o777);
    tmp.set_permissions(fs::Permissions::from_mode(mode))?;
    if let Some(old) = existing {
        let new = tmp.metadata()?;
        if (old.uid(), old.gid()) != (new.uid(), new.gid()) {
            // Only root (or a member of the group) may do this; otherwise the file
            // becomes ours, as it would with any editor that saves by renaming.
            let _ = std::os::unix::fs::fchown(tmp, Some(old.uid()), Some(old.gid()));
        }
    }
    Ok(())
}

/// Keeps a read-only flag (the only permission there is here).
#[cfg(not(unix))]
fn keep_mode_and_owner(tmp: &fs::File, existing: Option<&fs::Metadata>) -> io::Result<()> {
    if let Some(old) = existing {
        tmp.set_permissions(old.permissions())?;
    }
    Ok(())
}

/// The hosts that docker's config routes to this helper (`credHelpers` entries
/// whose value is `gar`); empty when the config is missing or unreadable.
pub fn gar_hosts() -> Vec<String> {
    let Ok(path) = config_path() else {
        return Vec::new();
    };
    let Ok((bytes, _)) = read_config(&path) else {
        return Vec::new();
    };
    let Ok(root) = parse(&path, &bytes) else {
        return Vec::new();
    };
    match root.get("credHelpers") {
        Some(Value::Object(helpers)) => helpers
            .iter()
            .filter(|(_, v)| v.as_str() == Some(HELPER))
            .map(|(k, _)| k.clone())
            .collect(),
        _ => Vec::new(),
    }
}

/// Which helper docker asks for one host, by its config's rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "via", content = "helper", rename_all = "camelCase")]
pub enum Route {
    /// `credHelpers` maps the host to this helper.
    CredHelpers(String),
    /// No `credHelpers` entry; `credsStore` names this helper.
    CredsStore(String),
    /// Neither: docker keeps credentials in `config.json` itself.
    ConfigFile,
}

impl Route {
    /// Whether docker asks docker-credential-gar.
    pub fn is_ours(&self) -> bool {
        matches!(self, Route::CredHelpers(h) | Route::CredsStore(h) if h == HELPER)
    }
}

/// Docker's config as far as credential routing goes.
#[derive(Clone, Debug, Serialize)]
pub struct Routes {
    /// The config file.
    pub path: PathBuf,
    /// Whether it exists.
    pub exists: bool,
    /// Why it could not be read, if it could not.
    pub problem: Option<String>,
    /// `credsStore`, when set.
    pub creds_store: Option<String>,
    /// `credHelpers`, host to helper name.
    pub cred_helpers: std::collections::BTreeMap<String, String>,
}

impl Routes {
    /// The helper docker asks for `host` (exact match, as docker does).
    pub fn route(&self, host: &str) -> Route {
        if let Some(h) = self.cred_helpers.get(host) {
            return Route::CredHelpers(h.clone());
        }
        match &self.creds_store {
            Some(s) if !s.is_empty() => Route::CredsStore(s.clone()),
            _ => Route::ConfigFile,
        }
    }
}

/// Reads docker's config for [`Routes`]; a missing or broken file is described,
/// not an error.
pub fn routes() -> Result<Routes> {
    let path = config_path()?;
    let mut r = Routes {
        path: path.clone(),
        exists: false,
        problem: None,
        creds_store: None,
        cred_helpers: Default::default(),
    };
    let bytes = match read_config(&path) {
        Ok((b, _)) => b,
        Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(r),
        Err(e) => {
            r.exists = true;
            r.problem = Some(match e {
                ReadError::Io(e) => format!("cannot read it: {e}"),
                other => other.to_string(),
            });
            return Ok(r);
        }
    };
    r.exists = true;
    match parse(&path, &bytes) {
        Ok(root) => {
            r.creds_store = root
                .get("credsStore")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(Value::Object(h)) = root.get("credHelpers") {
                r.cred_helpers = h
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect();
            }
        }
        Err(e) => r.problem = Some(e.to_string()),
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_reduces_paths_and_urls() {
        let ok = |s: &str| host_of(s).unwrap();
        assert_eq!(
            ok("europe-north1-docker.pkg.dev"),
            "europe-north1-docker.pkg.dev"
        );
        assert_eq!(
            ok("europe-north1-docker.pkg.dev/cgr-nav/pull-through"),
            "europe-north1-docker.pkg.dev"
        );
        assert_eq!(ok("https://Host:5000/v2/"), "host:5000");
        assert_eq!(ok("HTTP://Example.COM"), "example.com");
        assert_eq!(ok("[::1]:5000/x"), "[::1]:5000");
        assert_eq!(ok("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn host_of_rejects_non_hosts() {
        for bad in [
            "https://",
            "/project",
            "ftp://host",
            "host:",
            "host:abc",
            "host:70000",
            ":5000",
            "user@host",
            "ho st",
            "[::1",
            "a:b:c",
        ] {
            assert!(host_of(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn parse_args_forms() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            parse_args(&args(&["--registries=a,b"])).unwrap(),
            Command::Configure {
                registries: vec!["a,b".into()],
                creds_store: false
            }
        );
        assert_eq!(
            parse_args(&args(&["--registries", "a", "--registries", "b"])).unwrap(),
            Command::Configure {
                registries: vec!["a".into(), "b".into()],
                creds_store: false
            }
        );
        assert_eq!(
            parse_args(&args(&["--creds-store"])).unwrap(),
            Command::Configure {
                registries: vec![],
                creds_store: true
            }
        );
        assert_eq!(
            parse_args(&args(&["--remove", "--registries", "a"])).unwrap(),
            Command::Remove(vec!["a".into()])
        );
        assert!(parse_args(&args(&["--remove", "--creds-store"])).is_err());
        assert_eq!(parse_args(&args(&["-h"])).unwrap(), Command::Help);
        assert!(parse_args(&args(&["--registries"])).is_err());
        assert!(parse_args(&args(&["--nope"])).is_err());
        assert!(parse_args(&args(&["extra"])).is_err());
    }
}
