//! Criterion benches of the in-process parts of a warm `get`: reading the server
//! URL, choosing the source from env and files, and the cache lookup. The whole
//! process is measured by `benches/compare.sh`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use docker_credential_gar::cache::Cache;
use docker_credential_gar::registry::managed_host;
use docker_credential_gar::sources;
use docker_credential_gar::token::Token;

fn registry(c: &mut Criterion) {
    c.bench_function(
        "managed_host(https://europe-north1-docker.pkg.dev/v2/)",
        |b| b.iter(|| managed_host(black_box("https://europe-north1-docker.pkg.dev/v2/"))),
    );
    c.bench_function("managed_host(docker.io) -> not found", |b| {
        b.iter(|| managed_host(black_box("docker.io")))
    });
}

fn warm_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = Cache::new(dir.path().join("cache"));
    let id = "service_account\0/k.json\0sa@p.iam.gserviceaccount.com\0kid\0https://oauth2.googleapis.com/token";
    cache
        .get_or_fetch(id, || Ok(Token::expiring_in("ya29.bench".into(), 3600)))
        .expect("fill the cache");
    c.bench_function("cache lookup (hit)", |b| {
        b.iter(|| cache.lookup(black_box(id)).expect("hit"))
    });
    c.bench_function("cache lookup (miss)", |b| {
        b.iter(|| cache.lookup(black_box("no such identity")))
    });

    // A service-account key file in GOOGLE_APPLICATION_CREDENTIALS, as in CI.
    let key = dir.path().join("sa.json");
    std::fs::write(
        &key,
        r#"{"type":"service_account","client_email":"sa@p.iam.gserviceaccount.com","private_key_id":"kid",
           "private_key":"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
           "token_uri":"https://oauth2.googleapis.com/token"}"#,
    )
    .expect("key file");
    // SAFETY: single-threaded set-up before any bench runs.
    unsafe {
        std::env::remove_var("GOOGLE_OAUTH_ACCESS_TOKEN");
        std::env::remove_var("GAR_TOKEN_SOURCE");
        std::env::set_var("GOOGLE_APPLICATION_CREDENTIALS", &key);
    }
    c.bench_function("choose source (key file)", |b| {
        b.iter(|| sources::choose().expect("a source").identity())
    });
}

criterion_group!(benches, registry, warm_path);
criterion_main!(benches);
