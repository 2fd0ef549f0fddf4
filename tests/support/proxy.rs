//! A small forwarding proxy on 127.0.0.1 that counts what it forwarded.
//!
//! It speaks `CONNECT host:port` (what ureq sends for every target through an HTTP
//! proxy) and plain absolute-form requests, records each target, and splices bytes
//! both ways. Only loopback targets are forwarded; anything else is refused and
//! recorded, so a test can assert that nothing tried to leave the machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::lock;

/// A running proxy; stops when dropped.
pub struct CountingProxy {
    port: u16,
    targets: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn splice(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn is_loopback_target(target: &str) -> bool {
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn handle(client: TcpStream, targets: Arc<Mutex<Vec<String>>>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(client.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        headers.push(line);
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut client = client;
    let authority = if method == "CONNECT" {
        target.to_owned()
    } else {
        target
            .strip_prefix("http://")
            .and_then(|r| r.split('/').next())
            .unwrap_or("")
            .to_owned()
    };
    lock(&targets).push(format!("{method} {authority}"));
    if !is_loopback_target(&authority) {
        let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let Ok(upstream) = TcpStream::connect(&authority) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    if method == "CONNECT" {
        let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
    } else {
        // Forward the request line (origin-form) and headers as they came.
        let path = target
            .strip_prefix("http://")
            .and_then(|r| r.find('/').map(|i| &r[i..]))
            .unwrap_or("/");
        let mut up = upstream.try_clone().expect("clone");
        let version = parts.next().unwrap_or("HTTP/1.1");
        let _ = write!(up, "{method} {path} {version}\r\n");
        for h in &headers {
            let _ = up.write_all(h.as_bytes());
        }
        let _ = up.write_all(b"\r\n");
    }
    // Whatever the BufReader already buffered belongs to the tunnel.
    let buffered = reader.buffer().to_vec();
    if !buffered.is_empty() {
        let _ = upstream.try_clone().expect("clone").write_all(&buffered);
    }
    let up_read = upstream.try_clone().expect("clone");
    let client_write = client.try_clone().expect("clone");
    let t = std::thread::spawn(move || splice(up_read, client_write));
    splice(client, upstream);
    let _ = t.join();
}

impl CountingProxy {
    /// Starts the proxy on `127.0.0.1:<free port>`.
    pub fn start() -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (targets.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let t = t.clone();
                        std::thread::spawn(move || handle(c, t));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        CountingProxy {
            port,
            targets,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `HTTPS_PROXY` and friends.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Each request the proxy saw, as `METHOD host:port`.
    pub fn targets(&self) -> Vec<String> {
        lock(&self.targets).clone()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
