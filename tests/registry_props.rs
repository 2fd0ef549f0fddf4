//! Property test: whatever string docker sends, a Google token is only ever
//! offered for a host that is plainly a managed registry.

use docker_credential_gar::registry::{host_of, managed_host};
use proptest::prelude::*;

/// Pieces that make tricky server strings when glued together.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("europe-north1-docker.pkg.dev".to_owned()),
        Just("gcr.io".to_owned()),
        Just("eu.gcr.io".to_owned()),
        Just("evil.test".to_owned()),
        Just("https://".to_owned()),
        Just("http://".to_owned()),
        Just("ftp://".to_owned()),
        Just("@".to_owned()),
        Just(":".to_owned()),
        Just(":443".to_owned()),
        Just("/".to_owned()),
        Just("/v2/".to_owned()),
        Just("#".to_owned()),
        Just("?".to_owned()),
        Just(".".to_owned()),
        Just("-".to_owned()),
        Just("[::1]".to_owned()),
        Just("%40".to_owned()),
        Just("\\".to_owned()),
        Just(" ".to_owned()),
        Just("\n".to_owned()),
        Just("\u{3002}".to_owned()),
        Just("\0".to_owned()),
        "[a-zA-Z0-9.-]{0,12}",
        any::<String>(),
    ]
}

fn server_string() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..8).prop_map(|v| v.concat())
}

/// The host a URL parser would connect to: strip an http(s) scheme, cut at the
/// first `/`, `?`, `#` or `\`, drop any userinfo before the last `@`.
fn connect_host(s: &str) -> String {
    let s = s.trim();
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("");
    hostport.to_ascii_lowercase()
}

fn is_google_name(hostport: &str) -> bool {
    let name = match hostport.rsplit_once(':') {
        Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => hostport,
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    name == "gcr.io"
        || name.strip_suffix(".gcr.io").is_some_and(label_ok)
        || name.strip_suffix("-docker.pkg.dev").is_some_and(label_ok)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn only_managed_hosts_ever_get_a_token(s in server_string()) {
        if let Some(host) = managed_host(&s) {
            // What we answer for is exactly where a client would connect…
            prop_assert_eq!(&host, &connect_host(&s));
            // …it is a Google registry host…
            prop_assert!(is_google_name(&host), "{:?} -> {:?}", s, host);
            // …and nothing before the path could smuggle another host in.
            let t = s.trim();
            let rest = t.split_once("://").map_or(t, |(_, r)| r);
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            prop_assert!(!authority.contains(['@', '\\', '\0', '%', ' ']), "{:?}", s);
        }
    }

    #[test]
    fn host_of_is_idempotent(s in server_string()) {
        if let Some(h) = host_of(&s) {
            prop_assert_eq!(host_of(&h), Some(h.clone()));
        }
    }
}
