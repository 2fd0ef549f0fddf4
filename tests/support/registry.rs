//! A local distribution registry (Debian's `docker-registry`) on
//! `127.0.0.1:<free port>` with a self-signed TLS certificate and htpasswd auth
//! for `oauth2accesstoken:<password>`, plus a hand-made tiny OCI image to push.
//!
//! `docker-registry`, `skopeo`, `htpasswd` and `openssl` are required: a missing
//! one fails the test with the command that installs it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Output, Sandbox, USERNAME, which};

/// The repository path (under the registry host) the e2e tests use.
pub const E2E_REPO: &str = "cgr-nav/pull-through/nav.no/jre";
/// The tag the e2e tests use.
pub const E2E_TAG: &str = "openjdk-21";

const INSTALL_HINT: &str = "run `.ci/run` (it installs them) or `apt-get install skopeo docker-registry apache2-utils openssl`";

/// Panics unless `docker-registry`, `skopeo`, `htpasswd` and `openssl` are on `PATH`.
pub fn require_tools() {
    let missing: Vec<&str> = ["docker-registry", "skopeo", "htpasswd", "openssl"]
        .into_iter()
        .filter(|t| which(t).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "required test tool(s) missing: {}; {INSTALL_HINT}",
        missing.join(", ")
    );
}

/// Panics unless the `docker` CLI is on `PATH`; returns its path.
pub fn require_docker_cli() -> PathBuf {
    which("docker").unwrap_or_else(|| {
        panic!(
            "required test tool missing: docker (the CLI; no daemon needed); \
             run `.ci/run` or `apt-get install docker.io` (Debian 12 ships the CLI there)"
        )
    })
}

/// What [`Registry::push_tiny_image`] pushed.
#[derive(Clone, Debug)]
pub struct PushedImage {
    /// `127.0.0.1:PORT/repo:tag`.
    pub reference: String,
    /// `sha256:...` of the manifest as built.
    pub manifest_digest: String,
    /// `sha256:...` of the image config.
    pub config_digest: String,
    /// `sha256:...` of the (gzip) layer.
    pub layer_digest: String,
}

/// A running registry; killed when dropped.
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    password: String,
    /// A private sandbox for skopeo runs made by the harness itself.
    tools: Sandbox,
}

impl Registry {
    /// Starts a registry that accepts `oauth2accesstoken:<password>` only.
    pub fn start(password: &str) -> Registry {
        require_tools();
        super::register_secret(super::SecretKind::AccessToken, password);
        let dir = tempfile::Builder::new()
            .prefix("gar-registry-")
            .tempdir()
            .expect("registry temp dir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("data")).expect("registry data dir");

        // Self-signed certificate for IP 127.0.0.1.
        run_tool(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                ])
                .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
                .args(["-addext", "subjectAltName=IP:127.0.0.1"])
                .arg("-keyout")
                .arg(d.join("key.pem"))
                .arg("-out")
                .arg(d.join("cert.pem")),
            "openssl req (self-signed cert)",
        );

        // htpasswd (bcrypt) for the one user.
        let ht = run_tool(
            Command::new("htpasswd").args(["-Bbn", USERNAME, password]),
            "htpasswd -Bbn",
        );
        std::fs::write(d.join("htpasswd"), ht).expect("write htpasswd");

        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = super::free_port();
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: info\n  formatter: text\n\
                 storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: {secret}\n  tls:\n    certificate: {cert}\n    key: {key}\n\
                 auth:\n  htpasswd:\n    realm: gar-test-registry\n    path: {htpasswd}\n",
                data = d.join("data").display(),
                secret = super::random_hex(16),
                cert = d.join("cert.pem").display(),
                key = d.join("key.pem").display(),
                htpasswd = d.join("htpasswd").display(),
            );
            std::fs::write(d.join("config.yml"), config).expect("write registry config");
            let log = File::create(d.join("registry.log")).expect("registry log");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(d.join("config.yml"))
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", d)
                .current_dir(d)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start docker-registry ({e}); {INSTALL_HINT}"));
            let deadline = Instant::now() + Duration::from_secs(30);
            let up = loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break false;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break true;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "docker-registry did not listen on 127.0.0.1:{port} within 30 s\n{}",
                        std::fs::read_to_string(d.join("registry.log")).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if up {
                return Registry {
                    child,
                    port,
                    dir,
                    password: password.to_owned(),
                    tools: Sandbox::new(),
                };
            }
            let _ = child.wait();
            last_log = std::fs::read_to_string(d.join("registry.log")).unwrap_or_default();
            // Most likely the port was taken in the meantime: try another.
        }
        panic!("docker-registry exited at start five times; last log:\n{last_log}");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The password (the access token the registry accepts).
    pub fn password(&self) -> &str {
        &self.password
    }
    /// The CA (= server) certificate, PEM.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
    /// How many manifest GETs from a client whose user agent contains `user_agent`
    /// (`Docker-Client`, `skopeo`) the registry answered with `status`, per its log.
    /// The registry needs auth for everything, so a 200 means the credential worked.
    pub fn manifest_gets(&self, user_agent: &str, status: u16) -> usize {
        let status = format!("http.response.status={status} ");
        self.log()
            .lines()
            .filter(|l| {
                l.contains("msg=\"response completed")
                    && l.contains("http.request.method=GET ")
                    && l.contains("/manifests/")
                    && l.contains(&status)
                    && l.split("http.request.useragent=")
                        .nth(1)
                        .is_some_and(|ua| ua.trim_start_matches('"').starts_with(user_agent))
            })
            .count()
    }

    /// How many times the registry refused the password of `user` (per its log).
    pub fn auth_failures(&self, user: &str) -> usize {
        let needle = format!("error authenticating user \\\"{user}\\\": authentication failure");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }

    /// Waits (≤ 10 s) until `f(self)` is at least `n`: the registry logs after it answers.
    pub fn wait_log(&self, what: &str, n: usize, f: impl Fn(&Registry) -> usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = f(self);
            if got >= n {
                return got;
            }
            if Instant::now() >= deadline {
                panic!(
                    "registry log: {what}: expected ≥ {n}, found {got}\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `host/repo:tag`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host())
    }

    /// Runs `skopeo ARGS` in the registry's own clean sandbox (empty auth files).
    pub fn skopeo(&self, args: &[&str]) -> Output {
        skopeo_in(&self.tools, args)
    }

    /// Builds a tiny OCI image and pushes it to `repo_tag` (`repo:tag`) with the right creds.
    pub fn push_tiny_image(&self, repo_tag: &str) -> PushedImage {
        let layout = self
            .dir
            .path()
            .join(format!("oci-{}", super::random_hex(4)));
        let built = build_oci_layout(&layout);
        let reference = self.reference(repo_tag);
        let creds = format!("{USERNAME}:{}", self.password);
        let src = format!("oci:{}:latest", layout.display());
        let dst = format!("docker://{reference}");
        self.skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &src,
            &dst,
        ])
        .assert_ok();
        PushedImage {
            reference,
            manifest_digest: built.manifest_digest,
            config_digest: built.config_digest,
            layer_digest: built.layer_digest,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `skopeo --insecure-policy ARGS` from `sandbox`, with `XDG_RUNTIME_DIR`
/// set to the sandbox's (empty) runtime dir so no stray auth.json is read.
pub fn skopeo_in(sandbox: &Sandbox, args: &[&str]) -> Output {
    sandbox
        .command("skopeo")
        .env("XDG_RUNTIME_DIR", sandbox.runtime_dir())
        .arg("--insecure-policy")
        .args(args)
        .timeout(Duration::from_secs(120))
        .run()
}

fn run_tool(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e}); {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

// ---------------------------------------------------------------------------
// A tiny OCI image layout, by hand
// ---------------------------------------------------------------------------

/// The digests of a layout made by [`build_oci_layout`].
#[derive(Clone, Debug)]
pub struct OciLayout {
    /// `sha256:...` of the manifest.
    pub manifest_digest: String,
    /// `sha256:...` of the config.
    pub config_digest: String,
    /// `sha256:...` of the gzip layer.
    pub layer_digest: String,
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Writes an OCI image layout with one gzip'd one-file layer into `dir`, tagged `latest`.
pub fn build_oci_layout(dir: &Path) -> OciLayout {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).expect("create layout");
    let put = |data: &[u8]| -> String {
        let digest = sha256_digest(data);
        std::fs::write(blobs.join(&digest["sha256:".len()..]), data).expect("write blob");
        digest
    };
    let tar = tar_one_file(
        "hello.txt",
        b"hello from the docker-credential-gar e2e test\n",
    );
    let diff_id = sha256_digest(&tar);
    let gz = gzip_stored(&tar);
    let layer_digest = put(&gz);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "docker-credential-gar test harness"}]
    })
    .to_string();
    let config_digest = put(config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len()
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest,
            "size": gz.len()
        }]
    })
    .to_string();
    let manifest_digest = put(manifest.as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"}
        }]
    })
    .to_string();
    std::fs::write(dir.join("index.json"), index).expect("index.json");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    OciLayout {
        manifest_digest,
        config_digest,
        layer_digest,
    }
}

/// A ustar archive holding one regular file.
pub fn tar_one_file(name: &str, data: &[u8]) -> Vec<u8> {
    assert!(name.len() < 100);
    let mut h = [0u8; 512];
    let field = |h: &mut [u8; 512], off: usize, s: &[u8]| h[off..off + s.len()].copy_from_slice(s);
    field(&mut h, 0, name.as_bytes());
    field(&mut h, 100, b"0000644\0");
    field(&mut h, 108, b"0000000\0");
    field(&mut h, 116, b"0000000\0");
    field(&mut h, 124, format!("{:011o}\0", data.len()).as_bytes());
    field(&mut h, 136, b"00000000000\0");
    field(&mut h, 148, b"        ");
    h[156] = b'0';
    field(&mut h, 257, b"ustar\0");
    field(&mut h, 263, b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    field(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// gzip with "stored" (uncompressed) deflate blocks: valid gzip, no compressor needed.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(65535).collect()
    };
    for (i, c) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = c.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE), as gzip uses.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
