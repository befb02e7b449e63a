//! `apifactory up` as a child process, and a small HTTP client for it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::{bin_path, repo_root};

/// A running `apifactory up`.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    pub tenants_dir: PathBuf,
    /// Every stdout line so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
}

/// A key printed by `up`: (tenant, client) -> value.
pub type Keys = BTreeMap<(String, String), String>;

impl Server {
    /// Starts `apifactory up` on a free port and waits until it listens.
    pub async fn start(tenants_dir: &Path, data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(bin_path("apifactory"))
            .arg("--tenants")
            .arg(tenants_dir)
            .arg("up")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .current_dir(repo_root())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("apifactory up starts");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                stdout.lock().unwrap().push(line.clone());
                if let Some(rest) = line.strip_prefix("apifactory up: listening on http://") {
                    return rest.split_whitespace().next().unwrap().to_owned();
                }
            }
            panic!(
                "apifactory up ended before listening: {:?}",
                stdout.lock().unwrap()
            );
        })
        .await
        .expect("apifactory up listens within 60 s");
        let sink = stdout.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Server {
            child,
            addr,
            data_dir: data_dir.to_owned(),
            tenants_dir: tenants_dir.to_owned(),
            stdout,
        }
    }

    /// The key values printed so far.
    pub fn keys(&self) -> Keys {
        parse_keys(&self.stdout.lock().unwrap())
    }

    /// The console's address with its admin token, as `up` printed it
    /// (`http://ADDR/_console/?token=TOKEN`).
    pub fn console_url(&self) -> String {
        let lines = self.stdout.lock().unwrap();
        lines
            .iter()
            .find_map(|l| l.strip_prefix("apifactory up: console at "))
            .map(|url| url.trim().to_owned())
            .unwrap_or_else(|| panic!("up printed no console address: {lines:?}"))
    }

    pub fn output(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    /// SIGKILL, no chance to clean up.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then waits for a clean exit; returns the exit code.
    pub async fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits within 30 s after SIGTERM")
            .unwrap();
        status.code()
    }

    pub fn client(&self) -> Client {
        Client {
            addr: self.addr.clone(),
        }
    }
}

/// Lines like `  acme       acme-web         id abc  x-api-key: VALUE`.
pub fn parse_keys(lines: &[String]) -> Keys {
    let mut keys = Keys::new();
    for line in lines {
        if let Some((head, value)) = line.split_once("x-api-key: ") {
            let mut words = head.split_whitespace();
            if let (Some(tenant), Some(client)) = (words.next(), words.next()) {
                keys.insert(
                    (tenant.to_owned(), client.to_owned()),
                    value.trim().to_owned(),
                );
            }
        }
    }
    keys
}

/// A response as the test sees it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// HTTP/1.1 over a fresh connection per request: simple and exact.
#[derive(Clone)]
pub struct Client {
    pub addr: String,
}

impl Client {
    /// Sends one request; `headers` may include Host and x-api-key.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response {
        self.try_send(method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        let mut stream = TcpStream::connect(&self.addr).await?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req += &format!("Host: {}\r\n", self.addr);
        }
        for (k, v) in headers {
            req += &format!("{k}: {v}\r\n");
        }
        let body = body.unwrap_or("");
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                req += "Content-Type: application/json\r\n";
            }
            req += &format!("Content-Length: {}\r\n", body.len());
        }
        req += "\r\n";
        req += body;
        stream.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
            .await
            .map_err(|_| std::io::Error::other("no response within 30 s"))??;
        parse_response(&raw).ok_or_else(|| {
            std::io::Error::other(format!("bad response: {:?}", String::from_utf8_lossy(&raw)))
        })
    }
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&data[..line_end])
                .ok()?
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// A copy of the repository's tenant files in a fresh directory, so a test
/// can add, edit and remove files freely.
pub fn copy_tenants(into: &Path) -> PathBuf {
    let dir = into.join("tenants");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(repo_root().join("tenants")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}
