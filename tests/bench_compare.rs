//! The comparison benchmark behind `benches/compare.sh` (ignored in normal test
//! runs): whole-process timings of docker-credential-gar beside the helpers people
//! use today, measured in one run on one machine against the local fake of Google.
//!
//! Run it with `benches/compare.sh` (it builds the release binary and the
//! `with_stdin` example first, and installs hyperfine and the peers from Debian).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::fake_google::FakeGoogle;
use support::gcloud::{GcloudEnv, real_gcloud};
use support::{BIN, Sandbox};

const HOST: &str = "europe-north1-docker.pkg.dev";

fn with_stdin() -> PathBuf {
    let p = Path::new(BIN)
        .parent()
        .expect("bin dir")
        .join("examples/with_stdin");
    assert!(
        p.is_file(),
        "{} missing: run `cargo build --release --examples` (benches/compare.sh does)",
        p.display()
    );
    p
}

struct Row {
    what: String,
    median_ms: f64,
    note: String,
}

/// Runs hyperfine on `commands` in `sb` and returns each command's median in ms.
fn hyperfine(sb: &Sandbox, runs: u32, warmup: u32, commands: &[String]) -> Vec<f64> {
    let json = sb
        .root()
        .join(format!("hf-{}.json", support::random_hex(4)));
    let hyperfine = support::which("hyperfine").expect("hyperfine on PATH");
    let mut h = sb
        .command(hyperfine)
        .skip_leak_check()
        .timeout(Duration::from_secs(1800))
        .args(["-N", "--style", "basic", "--runs"])
        .arg(runs.to_string())
        .arg("--warmup")
        .arg(warmup.to_string())
        .arg("--export-json")
        .arg(&json);
    for c in commands {
        h = h.arg(c);
    }
    h.run().assert_ok();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["median"].as_f64().unwrap() * 1000.0)
        .collect()
}

/// A sandbox for timing: no debug log (the tests' default).
fn bench_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.remove_env("GAR_LOG");
    sb.remove_env("GAR_LOG_FILE");
    sb
}

fn input_file(sb: &Sandbox) -> PathBuf {
    sb.write_file("server.txt", HOST)
}

fn get_cmd(sb: &Sandbox) -> String {
    format!(
        "{} {} {BIN} get",
        with_stdin().display(),
        input_file(sb).display()
    )
}

/// Peak RSS in KiB of a warm `get`, the largest of 20 runs (GNU time).
fn peak_rss_kib(sb: &Sandbox) -> Option<u64> {
    if !Path::new("/usr/bin/time").exists() {
        return None;
    }
    let mut peak = 0;
    for _ in 0..20 {
        let out = sb
            .command("/usr/bin/time")
            .skip_leak_check()
            .args(["-f", "%M"])
            .arg(with_stdin())
            .arg(input_file(sb))
            .args([BIN, "get"])
            .run();
        let kib: u64 = out.stderr.lines().last()?.trim().parse().ok()?;
        peak = peak.max(kib);
    }
    Some(peak)
}

/// Wall time of `n` concurrent cold `get`s and the upstream requests they made.
fn concurrent_cold(fake: &FakeGoogle, sb: &Sandbox, n: usize) -> (Duration, usize) {
    sb.set_env(
        "GAR_CACHE_DIR",
        sb.root().join(format!("cache-{}", support::random_hex(6))),
    );
    let before = fake.count("/token");
    let start = Instant::now();
    let running: Vec<_> = (0..n)
        .map(|_| sb.helper().arg("get").stdin(HOST).spawn())
        .collect();
    for r in running {
        r.wait().assert_ok();
    }
    (start.elapsed(), fake.count("/token") - before)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

#[test]
#[ignore = "benchmark: run benches/compare.sh"]
fn compare() {
    assert!(
        support::which("hyperfine").is_some(),
        "install hyperfine (benches/compare.sh does)"
    );
    let fake = FakeGoogle::start();
    let mut rows: Vec<Row> = Vec::new();

    // Warm get beside the process floor and a Go helper's bare start.
    let sb = bench_sandbox();
    let key = fake.service_account(&fake.token_url());
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("sa.json", &key.json),
    );
    sb.get(HOST).assert_ok();
    let mut cmds = vec![
        get_cmd(&sb),
        format!(
            "{} {} /bin/true",
            with_stdin().display(),
            input_file(&sb).display()
        ),
        "/bin/true".to_owned(),
        format!("{BIN} version"),
    ];
    let go_peer = support::which("docker-credential-pass");
    if let Some(p) = &go_peer {
        cmds.push(format!("{} version", p.display()));
    }
    let m = hyperfine(&sb, 2000, 100, &cmds);
    let (raw_warm, floor_with_stdin, bin_true) = (m[0], m[1], m[2]);
    // `with_stdin` costs one extra exec; take off what it costs on its own.
    let warm = raw_warm - (floor_with_stdin - bin_true);
    rows.push(Row {
        what: "docker-credential-gar get, warm (cache hit)".into(),
        median_ms: warm,
        note: format!(
            "{raw_warm:.2} ms through `with_stdin`, less its own cost ({:.2} ms: `with_stdin … /bin/true` minus `/bin/true`)",
            floor_with_stdin - bin_true
        ),
    });
    rows.push(Row {
        what: "/bin/true (process floor)".into(),
        median_ms: bin_true,
        note: String::new(),
    });
    rows.push(Row {
        what: "docker-credential-gar version".into(),
        median_ms: m[3],
        note: String::new(),
    });
    if go_peer.is_some() {
        rows.push(Row {
            what: "docker-credential-pass version (Go helper, bare start)".into(),
            median_ms: m[4],
            note: String::new(),
        });
    }

    // Cold gets per source (GAR_NO_CACHE=1: every run mints), net of `with_stdin`.
    let stdin_cost = floor_with_stdin - bin_true;
    let cold = |label: &str, sb: &Sandbox, runs: u32, note: &str, rows: &mut Vec<Row>| {
        sb.set_env("GAR_NO_CACHE", "1");
        sb.get(HOST).assert_ok();
        let m = hyperfine(sb, runs, 3, &[get_cmd(sb)]);
        rows.push(Row {
            what: format!("docker-credential-gar get, cold: {label}"),
            median_ms: m[0] - stdin_cost,
            note: note.to_owned(),
        });
    };
    let env_sb = bench_sandbox();
    env_sb.set_env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.bench-env-token");
    cold("env token", &env_sb, 500, "no cache, no network", &mut rows);
    cold(
        "service-account key",
        &sb,
        300,
        "RS256 JWT signed each run; fake on loopback http",
        &mut rows,
    );
    let user_sb = bench_sandbox();
    let user = fake.authorized_user(Some(&fake.token_url()));
    user_sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        user_sb.write_file("user.json", &user.json),
    );
    cold(
        "authorized_user",
        &user_sb,
        300,
        "refresh-token grant",
        &mut rows,
    );
    let md_sb = bench_sandbox();
    md_sb.set_env("PATH", md_sb.bin_dir());
    md_sb.set_env("GCE_METADATA_HOST", fake.metadata_host());
    cold("metadata server", &md_sb, 300, "", &mut rows);

    // Real gcloud: our gcloud source, and docker-credential-gcloud itself.
    let mut gcloud_peer = None;
    if let Some(gcloud) = real_gcloud("bench_compare") {
        let g_sb = bench_sandbox();
        let env = GcloudEnv::new(&g_sb, gcloud);
        env.use_fake(&fake);
        let k = fake.service_account(&fake.token_url());
        env.activate_service_account(&g_sb.write_file("sa.json", &k.json));
        let peer = hyperfine(
            &g_sb,
            10,
            1,
            &[format!(
                "{} {} docker-credential-gcloud get",
                with_stdin().display(),
                input_file(&g_sb).display()
            )],
        )[0] - stdin_cost;
        gcloud_peer = Some(peer);
        rows.push(Row {
            what: "docker-credential-gcloud get (gcloud's helper, its token cached)".into(),
            median_ms: peer,
            note: "real gcloud 528, pointed at the fake".into(),
        });
        cold(
            "gcloud (runs real gcloud)",
            &g_sb,
            10,
            "gcloud's own token cached",
            &mut rows,
        );
    }

    // 64 concurrent cold gets (a sandbox with the cache on).
    let sb = bench_sandbox();
    let key = fake.service_account(&fake.token_url());
    sb.set_env(
        "GOOGLE_APPLICATION_CREDENTIALS",
        sb.write_file("sa.json", &key.json),
    );
    let mut single = Vec::new();
    let mut many = Vec::new();
    let mut upstream = Vec::new();
    for _ in 0..7 {
        single.push(concurrent_cold(&fake, &sb, 1).0);
        let (t, n) = concurrent_cold(&fake, &sb, 64);
        many.push(t);
        upstream.push(n);
    }
    // The floor for that: 64 concurrent starts of the binary doing nothing.
    let mut starts = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let running: Vec<_> = (0..64)
            .map(|_| sb.helper().arg("version").spawn())
            .collect();
        for r in running {
            r.wait().assert_ok();
        }
        starts.push(t.elapsed());
    }
    let starts = median(starts);
    let (single, many) = (median(single), median(many));
    rows.push(Row {
        what: "1 cold get (service-account key), spawned".into(),
        median_ms: single.as_secs_f64() * 1000.0,
        note: String::new(),
    });
    rows.push(Row {
        what: "64 concurrent `docker-credential-gar version` (process floor for 64)".into(),
        median_ms: starts.as_secs_f64() * 1000.0,
        note: String::new(),
    });
    rows.push(Row {
        what: "64 concurrent cold gets, wall time".into(),
        median_ms: many.as_secs_f64() * 1000.0,
        note: format!("upstream requests per round: {upstream:?}"),
    });

    let size = std::fs::metadata(BIN).map(|m| m.len()).unwrap_or(0);
    let rss = peak_rss_kib(&sb);

    let mut table = format!(
        "Machine: {}\n\n| What | Median | Note |\n|---|---:|---|\n",
        machine()
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {:.2} ms | {} |\n",
            r.what, r.median_ms, r.note
        ));
    }
    table.push('\n');
    if let Some(peer) = gcloud_peer {
        table.push_str(&format!(
            "Warm get vs docker-credential-gcloud: {:.0}x faster.\n",
            peer / warm
        ));
    }
    table.push_str(&format!(
        "Warm get minus /bin/true: {:.2} ms. 64 concurrent cold / 1 cold: {:.2}x.\n",
        warm - bin_true,
        many.as_secs_f64() / single.as_secs_f64()
    ));
    if let Some(kib) = rss {
        table.push_str(&format!(
            "Peak RSS of a warm get: {:.1} MiB.\n",
            kib as f64 / 1024.0
        ));
    }
    table.push_str(&format!(
        "Release binary: {:.2} MB ({size} bytes, stripped).\n",
        size as f64 / 1e6
    ));
    println!("\n{table}");
    let out = Path::new(BIN).parent().unwrap().join("bench-compare.md");
    std::fs::write(&out, &table).unwrap();
    println!("(written to {})", out.display());
}
