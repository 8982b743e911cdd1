//! A small read-only HTTP/1.1 server for a repository folder (for apt in builds and tests).
//!
//! GET and HEAD only, keep-alive, `Content-Length` always. A request path is percent-decoded and
//! resolved under the root; `..`, hidden (`.`-prefixed) components and anything that resolves
//! outside the root (through a symlink) are answered 404. Folders are not listed.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Result};

/// A running server; stops when [`Server::stop`] is called or it is dropped.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Bind `listen` (e.g. `127.0.0.1:0`) and serve `root` on a background thread.
    pub fn start(root: &Path, listen: &str) -> Result<Server> {
        let root = std::fs::canonicalize(root)
            .map_err(|e| Error::io(format!("resolving {}", root.display()), e))?;
        let listener = TcpListener::bind(listen)
            .map_err(|e| Error::io(format!("listening on {listen}"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || accept_loop(listener, root, stop2));
        Ok(Server {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting and wait for the accept loop to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Serve in the foreground until the process is stopped.
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, root: PathBuf, stop: Arc<AtomicBool>) {
    let root = Arc::new(root);
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(conn) = conn else { continue };
        let root = root.clone();
        std::thread::spawn(move || {
            if let Err(e) = handle(conn, &root) {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

struct Request {
    method: String,
    path: String,
    close: bool,
}

fn read_request(r: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if r.by_ref().take(8192).read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let version = parts.next().unwrap_or("HTTP/1.0").to_string();
    let mut close = version != "HTTP/1.1";
    let mut n = 0;
    loop {
        let mut h = String::new();
        if r.by_ref().take(8192).read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        n += 1;
        if n > 100 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too many headers",
            ));
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("connection") {
                let v = v.trim().to_ascii_lowercase();
                close = v.contains("close") || (close && !v.contains("keep-alive"));
            }
        }
    }
    Ok(Some(Request {
        method,
        path,
        close,
    }))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Map a request path to a file under `root`, or `None` (→ 404).
pub fn resolve(root: &Path, request_path: &str) -> Option<PathBuf> {
    let path = request_path.split(['?', '#']).next().unwrap_or("");
    let path = percent_decode(path)?;
    if !path.starts_with('/') || path.contains('\0') {
        return None;
    }
    let mut p = root.to_path_buf();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        if c.starts_with('.') || c.contains('\\') {
            return None;
        }
        p.push(c);
    }
    let real = std::fs::canonicalize(&p).ok()?;
    if !real.starts_with(root) || !real.is_file() {
        return None;
    }
    Some(real)
}

fn respond(w: &mut impl Write, status: &str, len: u64, close: bool, ctype: &str) -> io::Result<()> {
    write!(
        w,
        "HTTP/1.1 {status}\r\nServer: deb-repo\r\nContent-Length: {len}\r\nContent-Type: {ctype}\r\nConnection: {}\r\n\r\n",
        if close { "close" } else { "keep-alive" }
    )
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()) {
        Some("deb") => "application/vnd.debian.binary-package",
        Some("gz") => "application/gzip",
        Some("xz") => "application/x-xz",
        Some("asc") | Some("gpg") => "application/pgp-keys",
        _ => "text/plain; charset=utf-8",
    }
}

fn handle(conn: TcpStream, root: &Path) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut w = io::BufWriter::new(conn);
    while let Some(req) = read_request(&mut reader)? {
        let head = req.method == "HEAD";
        if req.method != "GET" && !head {
            let body = b"method not allowed\n";
            respond(
                &mut w,
                "405 Method Not Allowed",
                body.len() as u64,
                true,
                "text/plain",
            )?;
            w.write_all(body)?;
            w.flush()?;
            return Ok(());
        }
        match resolve(root, &req.path).and_then(|p| std::fs::File::open(&p).ok().map(|f| (p, f))) {
            Some((p, mut f)) => {
                let len = f.metadata()?.len();
                tracing::debug!(path = %req.path, len, "200");
                respond(&mut w, "200 OK", len, req.close, content_type(&p))?;
                if !head {
                    let n = io::copy(&mut (&mut f).take(len), &mut w)?;
                    if n != len {
                        // The file shrank underneath us: the response is broken; close.
                        w.flush()?;
                        return Ok(());
                    }
                }
            }
            None => {
                tracing::debug!(path = %req.path, "404");
                let body = b"not found\n";
                respond(
                    &mut w,
                    "404 Not Found",
                    body.len() as u64,
                    req.close,
                    "text/plain",
                )?;
                if !head {
                    w.write_all(body)?;
                }
            }
        }
        w.flush()?;
        if req.close {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, raw: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_files_and_refuses_traversal() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("repo");
        std::fs::create_dir_all(root.join("dists/x")).unwrap();
        std::fs::create_dir_all(root.join(".deb-repo")).unwrap();
        std::fs::write(root.join("dists/x/Release"), "hello\n").unwrap();
        std::fs::write(root.join(".deb-repo/index.json"), "{}").unwrap();
        std::fs::write(d.path().join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), root.join("escape")).unwrap();
        let srv = Server::start(&root, "127.0.0.1:0").unwrap();
        let a = srv.addr();
        let r = get(
            a,
            "GET /dists/x/Release HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Length: 6\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nhello\n"), "{r}");
        let r = get(a, "HEAD /dists/x/Release HTTP/1.0\r\n\r\n");
        assert!(
            r.contains("Content-Length: 6\r\n") && r.ends_with("\r\n\r\n"),
            "{r}"
        );
        for bad in [
            "/../secret",
            "/dists/../../secret",
            "/%2e%2e/secret",
            "/escape",
            "/.deb-repo/index.json",
            "/dists",
            "/nope",
        ] {
            let r = get(a, &format!("GET {bad} HTTP/1.0\r\n\r\n"));
            assert!(r.starts_with("HTTP/1.1 404"), "{bad}: {r}");
        }
        let r = get(a, "POST /dists/x/Release HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        // Keep-alive: two requests on one connection.
        let r = get(
            a,
            "GET /dists/x/Release HTTP/1.1\r\n\r\nGET /dists/x/Release HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.matches("200 OK").count(), 2, "{r}");
        srv.stop();
    }
}
