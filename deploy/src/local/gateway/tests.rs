//! The gateway end to end: tenants deployed through the real planner into
//! a temporary data directory, served on 127.0.0.1, spoken to in raw
//! HTTP/1.1. One module per stage of a request; the helpers they share
//! are here.

mod admission;
mod events;
mod invocation;
mod live_state;
mod logging;
mod recording;
mod routing;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use runtime::Tenant;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::local::{LocalCode, LocalTarget};
use crate::target::{Secret, Target};

fn repo_tenant(id: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tenants")
        .join(format!("{id}.toml"))
}

fn write_tenant(dir: &Path, id: &str, text: &str) -> PathBuf {
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A small tenant with its own usage plan.
fn small_tenant(stage: &str, rate: f64, burst: u32, quota: Option<u64>) -> String {
    let quota = quota
        .map(|limit| format!("quota = {{ limit = {limit}, period = \"DAY\" }}\n"))
        .unwrap_or_default();
    format!(
        r#"[tenant]
display_name = "Small"
stage = "{stage}"

[collection]
name = "notes"
key = "id"

[collection.fields]
text = {{ type = "string", max_length = 100 }}

[usage_plan]
rate = {rate}
burst = {burst}
{quota}
[[clients]]
name = "one"

[[clients]]
name = "two"
"#
    )
}

/// Deploys tenant files the way the CLI does; returns the new keys.
async fn deploy(state: &LocalState, files: &[PathBuf]) -> Vec<Secret> {
    let mut tenants = Vec::new();
    let mut sources = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        let t = Tenant::parse(f, &text).unwrap();
        sources.insert(t.id.clone(), text);
        tenants.push(t);
    }
    let desired = crate::desired::desired(&tenants, &sources, &LocalCode);
    let target = LocalTarget::new(state.clone());
    let observed = target.observe(&Default::default()).await.unwrap();
    let plan = crate::plan::plan(&desired, &observed, &Default::default());
    let report =
        crate::apply::apply(&plan, Arc::new(target), 4, Arc::new(crate::apply::Quiet)).await;
    assert!(report.ok(), "{report:?}");
    report.secrets().cloned().collect()
}

fn key<'a>(secrets: &'a [Secret], tenant: &str, client: &str) -> &'a Secret {
    secrets
        .iter()
        .find(|s| s.tenant == tenant && s.client == client)
        .unwrap_or_else(|| panic!("no key for {tenant}/{client}"))
}

struct Server {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(gateway: &Gateway) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gateway.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    Server { addr, stop, task }
}

impl Server {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A gateway error: status, body, and the headers API Gateway sets.
    #[track_caller]
    fn assert_gateway(&self, status: u16, message: &str, error_type: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.json(), json!({ "message": message }), "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.header("x-amzn-errortype"), Some(error_type));
        assert!(
            self.header("x-amzn-requestid")
                .is_some_and(|v| v.len() == 36)
        );
    }
}

/// A request in raw bytes.
fn raw_request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    match body {
        Some(b) => r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => r.push_str("\r\n"),
    }
    r.into_bytes()
}

async fn send_raw(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

async fn send(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    api_key: Option<&str>,
    body: Option<&str>,
) -> Resp {
    let headers: Vec<(&str, &str)> = api_key.map(|k| ("x-api-key", k)).into_iter().collect();
    send_raw(addr, &raw_request(method, host, path, &headers, body)).await
}
