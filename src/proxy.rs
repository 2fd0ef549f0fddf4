//! Which proxy a request to a Google endpoint goes through, by curl's rules.
//!
//! - `https://` targets use `https_proxy` / `HTTPS_PROXY`, `http://` targets use
//!   `http_proxy` / `HTTP_PROXY`; either falls back to `all_proxy` / `ALL_PROXY`.
//!   Lower case wins over upper case.
//! - `no_proxy` / `NO_PROXY` is a comma-separated list: `*` bypasses the proxy for
//!   everything; a domain (`example.com`, `.example.com` or `*.example.com`) covers
//!   itself and every subdomain; an IP address matches itself, a CIDR block
//!   (`10.0.0.0/8`, `fd00::/8`) every address in it. A `:port` suffix is ignored.
//!
//! Loopback destinations (`localhost`, 127.0.0.0/8, ::1) are never proxied: a
//! proxy would resolve them on its own host, and a plain-http loopback endpoint
//! would send credentials in clear text to the proxy. The metadata server is never
//! proxied either (the caller does not ask).

use std::net::IpAddr;

fn env_first(names: &[&str]) -> Option<(String, String)> {
    names.iter().find_map(|n| {
        std::env::var(n)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| ((*n).to_owned(), v.trim().to_owned()))
    })
}

/// The proxy URL and the variable it came from for a request to `scheme://host`,
/// or `None` to connect directly.
pub fn proxy_for(scheme: &str, host: &str) -> Option<(String, String)> {
    if crate::http::is_loopback_host(host) {
        return None;
    }
    let found = match scheme {
        "https" => env_first(&["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]),
        "http" => env_first(&["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]),
        _ => None,
    }?;
    let no_proxy = env_first(&["no_proxy", "NO_PROXY"]).map(|(_, v)| v);
    if no_proxy.is_some_and(|list| bypasses(&list, host)) {
        return None;
    }
    Some(found)
}

/// Whether `host` matches the `no_proxy` list `list`.
pub fn bypasses(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host_ip: Option<IpAddr> = host.parse().ok();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some(ip) = host_ip {
                return ip_matches(entry, ip);
            }
            let mut name = entry.to_ascii_lowercase();
            if let Some((n, port)) = name.rsplit_once(':')
                && port.bytes().all(|b| b.is_ascii_digit())
            {
                name = n.to_owned();
            }
            let name = name
                .trim_start_matches("*.")
                .trim_start_matches('.')
                .trim_end_matches('.');
            !name.is_empty()
                && (host == name
                    || (host.ends_with(name) && host[..host.len() - name.len()].ends_with('.')))
        })
}

fn ip_matches(entry: &str, ip: IpAddr) -> bool {
    let entry = entry.trim_start_matches('[');
    let (addr, bits) = match entry.split_once('/') {
        Some((a, b)) => (a.trim_end_matches(']'), b.parse::<u32>().ok()),
        None => {
            // `1.2.3.4:8080` or `[::1]:8080`: drop the port.
            let a = match entry.split_once(']') {
                Some((a, _)) => a,
                None if entry.matches(':').count() == 1 => entry.split(':').next().unwrap_or(""),
                None => entry,
            };
            (a, None)
        }
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(h)) => prefix_eq(&n.octets(), &h.octets(), bits.unwrap_or(32)),
        (IpAddr::V6(n), IpAddr::V6(h)) => prefix_eq(&n.octets(), &h.octets(), bits.unwrap_or(128)),
        _ => false,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u32) -> bool {
    let bits = bits.min(a.len() as u32 * 8) as usize;
    let (full, rest) = (bits / 8, bits % 8);
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

#[cfg(test)]
mod tests {
    use super::bypasses;

    #[test]
    fn domains_cover_their_subdomains_like_curl() {
        assert!(bypasses("example.com", "example.com"));
        assert!(bypasses("example.com", "sts.example.com"));
        assert!(bypasses(".example.com", "a.b.example.com"));
        assert!(bypasses("*.example.com", "a.example.com"));
        assert!(bypasses("example.com:443", "a.example.com"));
        assert!(bypasses("EXAMPLE.com", "Example.COM"));
        assert!(!bypasses("example.com", "badexample.com"));
        assert!(!bypasses("example.com", "example.com.evil.test"));
        assert!(!bypasses("", "example.com"));
    }

    #[test]
    fn star_bypasses_everything() {
        assert!(bypasses("foo, *", "oauth2.googleapis.com"));
    }

    #[test]
    fn ips_and_cidr_blocks() {
        assert!(bypasses("127.0.0.1", "127.0.0.1"));
        assert!(bypasses("127.0.0.0/8", "127.1.2.3"));
        assert!(!bypasses("127.0.0.0/16", "127.1.2.3"));
        assert!(bypasses("10.0.0.1:8080", "10.0.0.1"));
        assert!(bypasses("::1", "[::1]"));
        assert!(bypasses("[fd00::]/8", "fd12::1"));
        assert!(!bypasses("10.0.0.0/8", "11.0.0.1"));
        assert!(!bypasses("localhost", "127.0.0.1"));
    }
}
