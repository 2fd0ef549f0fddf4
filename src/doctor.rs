//! `doctor`: answers "why doesn't my pull work?" in plain words.
//!
//! It looks at the binary and PATH, docker's config (who docker asks for each
//! registry host), credentials stored by `docker login`, every token source, the
//! cache, and then mints a token (unless `--offline`). Exit 0 when a pull from
//! each host checked would get credentials; otherwise 1, with the fix. `--json`
//! prints the same as one JSON object. Never prints a token or any other secret.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::docker_config::{self, Route};
use crate::error::{Error, Result};
use crate::sources::{self, explain};
use crate::store::Store;
use crate::{cache, registry, token};

const NAME: &str = "docker-credential-gar";
const SYNOPSIS: &str =
    "usage: docker-credential-gar doctor [--registry HOST]... [--offline] [--json]";

/// What `doctor --help` prints.
pub const HELP: &str = "\
Usage: docker-credential-gar doctor [--registry HOST]... [--offline] [--json]

Explains, in plain words, whether `docker pull` from your registries will get
credentials, and if not, what to do:
  - this binary, its version, and whether docker finds it on PATH;
  - which helper docker's config.json routes each registry host to
    (credHelpers, credsStore), and whether another one (e.g. gcloud) shadows it;
  - credentials stored by `docker login` (user names only);
  - each token source: configured? usable? which identity? which one is chosen, and why;
  - the token cache: where it is and how long each entry has left (never the token);
  - then it mints a token from the chosen source (skipped with --offline).
Exits 0 when a pull would get credentials, else 1 with the fix.

Options:
  --registry HOST  a host to check (repeatable; default: the Google registry hosts
                   in docker's credHelpers, else europe-north1-docker.pkg.dev)
  --offline        do not mint a token (no network, no gcloud run)
  --json           print the report as one JSON object
  -h, --help       print this help";

fn usage(problem: impl std::fmt::Display) -> Error {
    Error::Usage(format!(
        "docker-credential-gar doctor: {problem}; {SYNOPSIS}"
    ))
}

struct Options {
    registries: Vec<String>,
    offline: bool,
    json: bool,
}

fn parse_args(args: &[OsString]) -> Result<Option<Options>> {
    use lexopt::prelude::*;
    let mut o = Options {
        registries: Vec::new(),
        offline: false,
        json: false,
    };
    let mut parser = lexopt::Parser::from_args(args.iter().cloned());
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("registry") | Long("registries") => {
                let v = parser.value().map_err(usage)?;
                let v = v
                    .into_string()
                    .map_err(|_| usage("--registry is not valid UTF-8"))?;
                for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let host = registry::host_of(part).ok_or_else(|| {
                        usage(format_args!(
                            "'{}' is not a registry host",
                            crate::http::sanitize(part)
                        ))
                    })?;
                    if !o.registries.contains(&host) {
                        o.registries.push(host);
                    }
                }
            }
            Long("offline") => o.offline = true,
            Long("json") => o.json = true,
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(usage(arg.unexpected())),
        }
    }
    Ok(Some(o))
}

/// The binary and how docker finds it.
#[derive(Serialize)]
struct Binary {
    version: &'static str,
    path: Option<PathBuf>,
    /// What `docker-credential-gar` resolves to on PATH.
    on_path: Option<PathBuf>,
    /// Whether that is this very binary.
    on_path_is_this: bool,
}

#[derive(Serialize)]
struct StoredInfo {
    host: String,
    username: String,
    backend: &'static str,
    stored_secs_ago: u64,
    /// For an access token: seconds it is still trusted (0 = no longer).
    trusted_for_secs: Option<u64>,
}

#[derive(Serialize)]
struct HostReport {
    host: String,
    /// Whether the host gets Google tokens (Artifact Registry, gcr.io, GAR_REGISTRIES).
    google_registry: bool,
    route: Route,
    routed_to_gar: bool,
    /// Where its credentials would come from.
    credentials: String,
    ok: bool,
    problem: Option<String>,
}

#[derive(Serialize)]
struct SourceReport {
    forced: Option<String>,
    chosen: Option<String>,
    error: Option<String>,
    why: String,
    sources: Vec<explain::SourceState>,
}

#[derive(Serialize)]
struct CacheEntryReport {
    file: PathBuf,
    remaining_secs: u64,
    lifetime_secs: u64,
    reusable: bool,
    chosen_source: bool,
}

#[derive(Serialize)]
struct CacheReport {
    dir: Option<PathBuf>,
    disabled: bool,
    entries: Vec<CacheEntryReport>,
}

#[derive(Serialize)]
struct MintReport {
    ok: bool,
    source: String,
    millis: u64,
    valid_for_secs: Option<u64>,
    identity: Option<String>,
    error: Option<String>,
}

#[derive(Serialize)]
struct Report {
    ok: bool,
    binary: Binary,
    docker_config: Option<docker_config::Routes>,
    docker_config_error: Option<String>,
    store_dir: Option<PathBuf>,
    stored: Vec<StoredInfo>,
    hosts: Vec<HostReport>,
    token_sources: SourceReport,
    cache: CacheReport,
    mint: Option<MintReport>,
    /// Why no token was minted, when none was.
    mint_skipped: Option<&'static str>,
    /// Each problem, with its fix.
    problems: Vec<String>,
    /// Things worth knowing that do not break a pull.
    notes: Vec<String>,
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn binary() -> Binary {
    let path = std::env::current_exe().ok();
    let on_path = sources::gcloud::find_on_path(NAME);
    let on_path_is_this = match (&path, &on_path) {
        (Some(p), Some(q)) => same_file(p, q),
        _ => false,
    };
    Binary {
        version: env!("CARGO_PKG_VERSION"),
        path,
        on_path,
        on_path_is_this,
    }
}

/// The hosts to check when none are given.
/// The hosts checked without `--registry`: the Artifact Registry default and every
/// Google registry docker's config routes to gar.
fn default_hosts(routes: Option<&docker_config::Routes>) -> Vec<String> {
    let mut hosts = vec![docker_config::DEFAULT_REGISTRY.to_owned()];
    if let Some(r) = routes {
        for (h, helper) in &r.cred_helpers {
            if helper.as_str() == docker_config::HELPER
                && registry::managed_host(h).is_some()
                && !hosts.contains(h)
            {
                hosts.push(h.clone());
            }
        }
    }
    hosts
}

/// Google registries that docker's config sends to another helper (what
/// `gcloud auth configure-docker` leaves behind): a note, not a problem.
fn elsewhere_note(routes: Option<&docker_config::Routes>, checked: &[String]) -> Option<String> {
    let others: Vec<&str> = routes?
        .cred_helpers
        .iter()
        .filter(|(h, helper)| {
            helper.as_str() != docker_config::HELPER
                && registry::managed_host(h).is_some()
                && !checked.contains(h)
        })
        .map(|(h, _)| h.as_str())
        .collect();
    (!others.is_empty()).then(|| {
        format!(
            "{} still go to another credential helper (credHelpers); to use {NAME} for them too, run `{NAME} configure-docker --registries {}`",
            others.join(", "),
            others.join(",")
        )
    })
}

fn human_secs(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// Builds the report.
fn examine(opts: &Options) -> Report {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let now = token::now();

    let binary = binary();
    match (&binary.on_path, binary.on_path_is_this) {
        (None, _) => problems.push(format!(
            "{NAME} is not on PATH, so docker cannot run it; put its directory on PATH \
             (./install.sh installs into ~/.local/bin and tells you the line to add)"
        )),
        (Some(p), false) => notes.push(format!(
            "docker runs {} (first on PATH), not this binary{}; remove the other one or reorder PATH",
            p.display(),
            binary
                .path
                .as_ref()
                .map(|b| format!(" ({})", b.display()))
                .unwrap_or_default()
        )),
        (Some(_), true) => {}
    }

    let (routes, docker_config_error) = match docker_config::routes() {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(explain::plain(&e))),
    };
    if let Some(r) = &routes
        && let Some(p) = &r.problem
    {
        problems.push(format!("docker config {}: {p}", r.path.display()));
    }

    let store = Store::open();
    let index = store.as_ref().map(Store::index).unwrap_or_default();
    let stored: Vec<StoredInfo> = index
        .iter()
        .map(|(h, e)| StoredInfo {
            host: h.clone(),
            username: e.username.clone(),
            backend: e.backend.name(),
            stored_secs_ago: now.saturating_sub(e.stored_at),
            trusted_for_secs: e.trusted_for(now),
        })
        .collect();

    let explanation = explain::explain();
    let choice = sources::choose();
    // Unforced, the chain takes the first configured source: its identity is the chosen one's.
    let identity_of_chosen = explanation
        .sources
        .iter()
        .find(|s| s.configured && explanation.forced.is_none())
        .and_then(|s| s.identity.clone());

    // Mint (or not) once, for every host that needs a Google token.
    let hosts_to_check = if opts.registries.is_empty() {
        default_hosts(routes.as_ref())
    } else {
        opts.registries.clone()
    };
    let needs_token = hosts_to_check.iter().any(|h| {
        registry::managed_host(h).is_some() && !index.get(h).is_some_and(|e| e.trusted_at(now))
    });
    let mint = match (&choice, opts.offline || !needs_token) {
        (_, true) => None,
        (Err(e), false) => Some(MintReport {
            ok: false,
            source: explanation.chosen.clone().unwrap_or_else(|e| e),
            millis: 0,
            valid_for_secs: None,
            identity: None,
            error: Some(explain::plain(e)),
        }),
        (Ok(c), false) => {
            let started = Instant::now();
            let r = c.fetch();
            let millis = started.elapsed().as_millis() as u64;
            let mut identity = identity_of_chosen.clone();
            if let sources::Choice::Metadata { server, .. } = c
                && r.is_ok()
            {
                identity = explain::metadata_email(server)
                    .ok()
                    .map(|e| format!("service account {e}"));
            }
            Some(MintReport {
                ok: r.is_ok(),
                source: explain::describe_choice(c),
                millis,
                valid_for_secs: r
                    .as_ref()
                    .ok()
                    .and_then(|t| t.expires_at)
                    .map(|e| e.saturating_sub(token::now())),
                identity,
                error: r.as_ref().err().map(explain::plain),
            })
        }
    };
    let token_ok = match (&choice, &mint) {
        (Err(_), _) => false,
        (Ok(_), Some(m)) => m.ok,
        (Ok(_), None) => true,
    };

    let mut hosts = Vec::new();
    for host in &hosts_to_check {
        let google = registry::managed_host(host).is_some();
        let route = routes.as_ref().map_or(Route::ConfigFile, |r| r.route(host));
        let routed = route.is_ours();
        let stored_entry = index.get(host).filter(|e| e.trusted_at(now));
        let (credentials, creds_ok) = match (stored_entry, google) {
            (Some(e), _) => (
                format!(
                    "stored by docker login: user {} {}",
                    e.username,
                    backend_phrase(e.backend.name())
                ),
                true,
            ),
            (None, true) => match &explanation.chosen {
                Ok(c) => (format!("a token from {c}"), token_ok),
                Err(e) => (format!("none: {e}"), false),
            },
            (None, false) => (
                "none: not a Google registry and nothing stored".to_owned(),
                false,
            ),
        };
        let problem = if !routed {
            let fix = format!("run `{NAME} configure-docker --registries {host}`");
            Some(match &route {
                Route::CredHelpers(h) if h.is_empty() => format!(
                    "docker's config maps {host} to an empty helper name, so docker keeps its credentials in config.json; {fix}"
                ),
                Route::CredHelpers(h) => format!(
                    "docker asks docker-credential-{h} for {host} (credHelpers), not {NAME}; {fix}"
                ),
                Route::CredsStore(h) => format!(
                    "docker asks docker-credential-{h} for {host} (credsStore, no credHelpers entry); {fix}"
                ),
                Route::ConfigFile => {
                    format!("docker's config has no credential helper for {host}; {fix}")
                }
            })
        } else if !creds_ok {
            Some(match (google, &choice) {
                (false, _) => format!(
                    "{host} is not a Google registry and has no stored credentials; run `docker login {host}`, \
                     or add it to GAR_REGISTRIES if it is an Artifact Registry mirror"
                ),
                (true, Err(e)) => explain::plain(e),
                (true, Ok(_)) => mint
                    .as_ref()
                    .and_then(|m| m.error.clone())
                    .unwrap_or_else(|| "minting a token failed".to_owned()),
            })
        } else {
            None
        };
        if let Some(p) = &problem {
            problems.push(p.clone());
        }
        hosts.push(HostReport {
            host: host.clone(),
            google_registry: google,
            route,
            routed_to_gar: routed,
            credentials,
            ok: problem.is_none(),
            problem,
        });
    }
    if opts.registries.is_empty()
        && let Some(n) = elsewhere_note(routes.as_ref(), &hosts_to_check)
    {
        notes.push(n);
    }
    for s in &stored {
        if s.trusted_for_secs == Some(0) {
            notes.push(format!(
                "the access token stored for {} by docker login is over 55 min old and no longer used{}",
                s.host,
                if registry::managed_host(&s.host).is_some() {
                    "; minted tokens are used instead"
                } else {
                    ""
                }
            ));
        }
    }

    let cache_dir = cache::default_dir();
    let chosen_id = choice.as_ref().ok().and_then(sources::Choice::identity);
    let entries = cache_dir
        .clone()
        .map(|d| cache::Cache::new(d).entries())
        .unwrap_or_default()
        .into_iter()
        .map(|e| CacheEntryReport {
            chosen_source: chosen_id.as_deref().is_some_and(|id| e.belongs_to(id)),
            file: e.file,
            remaining_secs: e.remaining,
            lifetime_secs: e.lifetime,
            reusable: e.fresh,
        })
        .collect();

    let token_sources = SourceReport {
        forced: explanation.forced.clone(),
        chosen: explanation.chosen.clone().ok(),
        error: explanation.chosen.clone().err(),
        why: explanation.why.clone(),
        sources: explanation.sources,
    };

    if problems.is_empty() && opts.offline && choice.is_ok() && needs_token {
        notes.push("--offline: the chosen source was not asked for a token".to_owned());
    }

    let mint_skipped = match (&mint, opts.offline) {
        (Some(_), _) => None,
        (None, true) => Some("--offline"),
        (None, false) => Some("every host checked is answered by a stored login"),
    };
    Report {
        ok: problems.is_empty(),
        mint_skipped,
        binary,
        docker_config: routes,
        docker_config_error,
        store_dir: store.map(|s| s.dir().to_path_buf()),
        stored,
        hosts,
        token_sources,
        cache: CacheReport {
            disabled: cache_dir.is_none(),
            dir: cache_dir,
            entries,
        },
        mint,
        problems,
        notes,
    }
}

fn backend_phrase(name: &str) -> &'static str {
    if name == "keyring" {
        "in the OS keyring"
    } else {
        "in the file store"
    }
}

fn render(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let b = &r.binary;
    let _ = writeln!(o, "{NAME} {}", b.version);
    let _ = writeln!(
        o,
        "  binary:        {}",
        b.path
            .as_ref()
            .map_or("(unknown)".to_owned(), |p| p.display().to_string())
    );
    let _ = writeln!(
        o,
        "  on PATH:       {}",
        match (&b.on_path, b.on_path_is_this) {
            (None, _) => "NO: docker cannot find docker-credential-gar".to_owned(),
            (Some(p), true) => format!("yes, {} (this binary)", p.display()),
            (Some(p), false) => format!("yes, but {} is another binary", p.display()),
        }
    );

    let _ = writeln!(o, "\ndocker config");
    match (&r.docker_config, &r.docker_config_error) {
        (Some(c), _) => {
            let _ = writeln!(
                o,
                "  file:          {}{}",
                c.path.display(),
                if c.exists { "" } else { " (does not exist)" }
            );
            let _ = writeln!(
                o,
                "  credsStore:    {}",
                c.creds_store.as_deref().unwrap_or("(not set)")
            );
        }
        (None, Some(e)) => {
            let _ = writeln!(o, "  {e}");
        }
        (None, None) => {}
    }
    for h in &r.hosts {
        let route = match &h.route {
            Route::CredHelpers(x) => format!("credHelpers -> {x}"),
            Route::CredsStore(x) => format!("credsStore -> {x}"),
            Route::ConfigFile => "no helper (config.json auths)".to_owned(),
        };
        let _ = writeln!(
            o,
            "  {}: {route}; {}",
            h.host,
            if h.ok { "OK" } else { "PROBLEM" }
        );
        let _ = writeln!(o, "      credentials: {}", h.credentials);
    }

    let _ = writeln!(o, "\nstored credentials (docker login)");
    if let Some(d) = &r.store_dir {
        let _ = writeln!(o, "  directory:     {}", d.display());
    }
    if r.stored.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for s in &r.stored {
        let trust = match s.trusted_for_secs {
            None => String::new(),
            Some(0) => "; expired, no longer used".to_owned(),
            Some(t) => format!("; used for {} more", human_secs(t)),
        };
        let _ = writeln!(
            o,
            "  {}: user {} {}, stored {} ago{trust}",
            s.host,
            s.username,
            backend_phrase(s.backend),
            human_secs(s.stored_secs_ago)
        );
    }

    let ts = &r.token_sources;
    let _ = writeln!(o, "\ntoken sources (the first configured one is used)");
    if let Some(f) = &ts.forced {
        let _ = writeln!(o, "  {}={f} forces one source", sources::FORCE);
    }
    for s in &ts.sources {
        let state = match (s.configured, s.usable) {
            (true, Some(false)) => "configured, NOT usable",
            (true, _) => "configured",
            (false, Some(false)) => "not usable",
            (false, _) => "not configured",
        };
        let _ = writeln!(o, "  {}. {}: {state}", s.order, s.name);
        let _ = writeln!(o, "      {}", s.detail);
        if let Some(i) = &s.identity {
            let _ = writeln!(o, "      identity: {i}");
        }
        if let Some(f) = &s.fix {
            let _ = writeln!(o, "      fix: {f}");
        }
    }
    match (&ts.chosen, &ts.error) {
        (Some(c), _) => {
            let _ = writeln!(o, "  chosen: {c}, because {}", ts.why);
        }
        (None, Some(e)) => {
            let _ = writeln!(o, "  chosen: none: {e}");
        }
        (None, None) => {}
    }

    let _ = writeln!(o, "\ntoken cache");
    match &r.cache.dir {
        None => {
            let _ = writeln!(o, "  off (GAR_NO_CACHE is set, or no cache directory)");
        }
        Some(d) => {
            let _ = writeln!(o, "  directory:     {}", d.display());
            if r.cache.entries.is_empty() {
                let _ = writeln!(o, "  no cached tokens");
            }
            for e in &r.cache.entries {
                let name = e
                    .file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let left = if e.remaining_secs == 0 {
                    "expired".to_owned()
                } else {
                    format!("{} left", human_secs(e.remaining_secs))
                };
                let _ = writeln!(
                    o,
                    "  {name}: {left}{}{}",
                    if e.reusable {
                        ""
                    } else {
                        " (will be refreshed)"
                    },
                    if e.chosen_source {
                        " [chosen source]"
                    } else {
                        ""
                    }
                );
            }
        }
    }

    let _ = writeln!(o, "\nmint");
    match &r.mint {
        None => {
            let _ = writeln!(o, "  skipped ({})", r.mint_skipped.unwrap_or("not needed"));
        }
        Some(m) if m.ok => {
            let _ = writeln!(
                o,
                "  OK: {} answered in {} ms{}",
                m.source,
                m.millis,
                m.valid_for_secs
                    .map(|s| format!(", token valid {}", human_secs(s)))
                    .unwrap_or_else(|| " (token used as given; not checked)".to_owned())
            );
            if let Some(i) = &m.identity {
                let _ = writeln!(o, "  identity: {i}");
            }
        }
        Some(m) => {
            let _ = writeln!(
                o,
                "  FAILED: {}",
                m.error.as_deref().unwrap_or("unknown error")
            );
        }
    }

    for n in &r.notes {
        let _ = writeln!(o, "\nnote: {n}");
    }
    let _ = writeln!(o);
    if r.ok {
        let hosts: Vec<&str> = r.hosts.iter().map(|h| h.host.as_str()).collect();
        let _ = writeln!(
            o,
            "result: OK: docker pull from {} will get credentials",
            hosts.join(", ")
        );
    } else {
        let _ = writeln!(o, "result: PROBLEM");
        for p in &r.problems {
            let _ = writeln!(o, "  - {p}");
        }
    }
    o
}

/// Runs `doctor`; `Ok(true)` when a pull would get credentials.
pub fn run(args: &[OsString]) -> Result<bool> {
    let Some(opts) = parse_args(args)? else {
        let _ = writeln!(std::io::stdout().lock(), "{HELP}");
        return Ok(true);
    };
    crate::log::set_action("doctor");
    let report = examine(&opts);
    let text = if opts.json {
        let mut s = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::io("encoding the report", e.into()))?;
        s.push('\n');
        s
    } else {
        // Values from files (account names, stored usernames) reach a terminal:
        // no escape sequences, no carriage returns.
        render(&report)
            .chars()
            .map(|c| if c.is_control() && c != '\n' { '?' } else { c })
            .collect()
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("writing the report", e))?;
    Ok(report.ok)
}
