//! Which registry hosts get a Google token, and how a docker `ServerURL` is read.
//!
//! Managed: `<region>-docker.pkg.dev` (Artifact Registry), `gcr.io`, `<x>.gcr.io`,
//! and exact `host[:port]` entries of `GAR_REGISTRIES`. Anything that is not
//! plainly one of those (userinfo, odd schemes, stray characters) is not managed:
//! a Google token never goes to a host it does not belong to.

/// The variable listing extra registries (mirrors, local test registries).
pub const EXTRA_VAR: &str = "GAR_REGISTRIES";

/// Extracts `host[:port]` (lower-cased) from a docker server URL such as
/// `https://host/v2/`, `host:port` or `host/project/repo`. `None` when the
/// input is not a plain registry address.
pub fn host_of(server: &str) -> Option<String> {
    let s = server.trim();
    let rest = match s.find("://") {
        Some(i) => {
            let scheme = &s[..i];
            if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
                return None;
            }
            &s[i + 3..]
        }
        None => s,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let (host, port) = split_port(&authority)?;
    if let Some(p) = port
        && !(p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0))
    {
        return None;
    }
    let host_ok = if let Some(v6) = host.strip_prefix('[') {
        v6.strip_suffix(']')
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    host_ok.then_some(authority)
}

/// Splits `host[:port]`, keeping IPv6 brackets on the host.
fn split_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (h, rest) = authority.split_at(close + 1);
        return match rest {
            "" => Some((h, None)),
            r => r.strip_prefix(':').map(|p| (h, Some(p))),
        };
    }
    match authority.split_once(':') {
        Some((h, p)) => Some((h, Some(p))),
        None => Some((authority, None)),
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
}

/// Google's own registry hosts (any port).
fn is_google_host(host: &str) -> bool {
    if let Some(region) = host.strip_suffix("-docker.pkg.dev") {
        return is_label(region);
    }
    host == "gcr.io" || host.strip_suffix(".gcr.io").is_some_and(is_label)
}

/// The `GAR_REGISTRIES` entries, normalised like server URLs.
pub fn extra_registries() -> Vec<String> {
    let Ok(v) = std::env::var(EXTRA_VAR) else {
        return Vec::new();
    };
    v.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let h = host_of(e);
            if h.is_none() {
                eprintln!(
                    "docker-credential-gar: warning: {EXTRA_VAR} entry '{}' is not a host[:port]; it is ignored (separate entries with commas)",
                    crate::http::sanitize(e)
                );
            }
            h
        })
        .collect()
}

/// The host a docker server URL names, if we serve it.
///
/// ```
/// use docker_credential_gar::registry::managed_host;
/// assert_eq!(
///     managed_host("https://europe-north1-docker.pkg.dev/v2/").as_deref(),
///     Some("europe-north1-docker.pkg.dev")
/// );
/// assert_eq!(managed_host("europe-north1-docker.pkg.dev.evil.test"), None);
/// assert_eq!(managed_host("user@europe-north1-docker.pkg.dev"), None);
/// ```
pub fn managed_host(server: &str) -> Option<String> {
    let authority = host_of(server)?;
    let (host, _) = split_port(&authority)?;
    if is_google_host(host) || extra_registries().contains(&authority) {
        Some(authority)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_server_form() {
        for s in [
            "europe-north1-docker.pkg.dev",
            "https://europe-north1-docker.pkg.dev",
            "europe-north1-docker.pkg.dev/",
            "https://europe-north1-docker.pkg.dev/v2/",
            "europe-north1-docker.pkg.dev/cgr-nav/pull-through",
            "EUROPE-north1-Docker.PKG.dev",
        ] {
            assert_eq!(
                managed_host(s).as_deref(),
                Some("europe-north1-docker.pkg.dev"),
                "{s}"
            );
        }
        assert_eq!(managed_host("gcr.io:443").as_deref(), Some("gcr.io:443"));
        assert_eq!(managed_host("eu.gcr.io").as_deref(), Some("eu.gcr.io"));
    }

    #[test]
    fn refuses_lookalikes() {
        for s in [
            "europe-north1-docker.pkg.dev.evil.test",
            "evil.test/europe-north1-docker.pkg.dev",
            "user@europe-north1-docker.pkg.dev",
            "https://user:pw@europe-north1-docker.pkg.dev/",
            "evil.test#@europe-north1-docker.pkg.dev",
            "docker.io",
            "https://index.docker.io/v1/",
            "ghcr.io",
            "-docker.pkg.dev",
            "a.b-docker.pkg.dev",
            "notgcr.io",
            "ftp://gcr.io",
            "gcr.io:",
            "gcr.io:abc",
            "gcr.io:70000",
            "gcr.io:0",
            "gcr.io..",
            "gcr .io",
        ] {
            assert_eq!(managed_host(s), None, "{s}");
        }
    }

    #[test]
    fn ipv6_and_ports_parse() {
        assert_eq!(host_of("[::1]:5000/x").as_deref(), Some("[::1]:5000"));
        assert_eq!(host_of("127.0.0.1:5000").as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(host_of("[zz]:1"), None);
    }
}
