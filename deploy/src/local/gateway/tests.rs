//! The gateway end to end: tenants deployed through the real planner into
//! a temporary data directory, served on 127.0.0.1, spoken to in raw
//! HTTP/1.1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::body::{Body, Bytes};
use runtime::api::Api;
use runtime::{Operation, Tenant};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::admit::quota_block;
use super::invoke::{Failure, invoke, to_http};
use super::route::Routed;
use super::*;
use crate::local::state::period_start;
use crate::local::{LocalCode, LocalTarget};
use crate::resource::{Address, Kind};
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
    let report = crate::apply::apply(
        &plan,
        Arc::new(desired),
        Arc::new(target),
        4,
        Arc::new(crate::apply::Quiet),
    )
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_crud_through_every_routing_style() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let secrets = deploy(
        &state,
        &[
            repo_tenant("acme"),
            repo_tenant("bookshop"),
            repo_tenant("clinic"),
        ],
    )
    .await;
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let acme = key(&secrets, "acme", "acme-web").value.as_str();
    let local = format!("acme.localhost:{}", a.port());

    // Create through {tenant}.localhost.
    let r = send(
        a,
        "POST",
        &local,
        "/prod/accounts",
        Some(acme),
        Some(r#"{"name":"Ada","email":"ada@example.com"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.header("x-amzn-requestid").is_some_and(|v| v.len() == 36));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/prod/accounts/{id}").as_str())
    );

    // Read through the custom domain (any case, any port).
    let r = send(
        a,
        "GET",
        "API.Acme.Example.com:8443",
        &format!("/accounts/{id}"),
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["name"], "Ada");
    assert!(r.header("etag").is_some());

    // Search through execute-api.localhost, with a percent-encoded query.
    let r = send(
        a,
        "GET",
        &format!("acme.execute-api.localhost:{}", a.port()),
        "/prod/accounts?email=ada%40example.com",
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);

    // Patch through the path style, on any host.
    let mut raw = raw_request(
        "PATCH",
        "127.0.0.1",
        &format!("/restapis/acme/prod/_user_request_/accounts/{id}"),
        &[
            ("x-api-key", acme),
            ("Content-Type", "application/merge-patch+json"),
        ],
        None,
    );
    raw.truncate(raw.len() - 2);
    let patch = r#"{"company":"Analytical Engines"}"#;
    raw.extend_from_slice(format!("Content-Length: {}\r\n\r\n{patch}", patch.len()).as_bytes());
    let r = send_raw(a, &raw).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["company"], "Analytical Engines");

    // Replace through the custom domain, delete through localhost.
    let r = send(
        a,
        "PUT",
        "api.acme.example.com",
        &format!("/accounts/{id}"),
        Some(acme),
        Some(r#"{"name":"Ada L","email":"ada@example.com"}"#),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["name"].clone()),
        (200, json!("Ada L")),
        "{r:?}"
    );
    let r = send(
        a,
        "DELETE",
        &local,
        &format!("/prod/accounts/{id}"),
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = send(
        a,
        "GET",
        &local,
        &format!("/prod/accounts/{id}"),
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "the function's own 404: {r:?}");
    assert!(r.header("x-amzn-errortype").is_none());

    // The bookshop's custom domain maps the base path `books-api`.
    let books = key(&secrets, "bookshop", "storefront").value.as_str();
    let shop = "catalogue.pageturner.example";
    let r = send(
        a,
        "POST",
        shop,
        "/books-api/books",
        Some(books),
        Some(r#"{"isbn":"978-0-00-000000-2","title":"Notes","authors":["Ada"],"price":12.5}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some("/books-api/books/978-0-00-000000-2")
    );
    let r = send(
        a,
        "GET",
        shop,
        "/books-api/books/978-0-00-000000-2",
        Some(books),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["title"].clone()),
        (200, json!("Notes")),
        "{r:?}"
    );
    // A percent-encoded id is decoded for the function.
    let r = send(
        a,
        "GET",
        shop,
        "/books-api/books/978%2D0-00-000000-2",
        Some(books),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    send(a, "GET", shop, "/books", Some(books), None)
        .await
        .assert_gateway(
            403,
            "Missing Authentication Token",
            "MissingAuthenticationTokenException",
        );

    // The clinic has no custom domain: path style and localhost.
    let clinic = key(&secrets, "clinic", "front-desk").value.as_str();
    let r = send(
        a,
        "POST",
        "localhost",
        "/restapis/clinic/prod/_user_request_/appointments",
        Some(clinic),
        Some(r#"{"patient_ref":"P-123456","starts_at":"2026-03-01T09:30:00Z"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with("/restapis/clinic/prod/_user_request_/appointments/"))
    );
    let r = send(
        a,
        "GET",
        "clinic.localhost",
        "/prod/appointments?patient_ref=P-123456",
        Some(clinic),
        None,
    )
    .await;
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(1), "{r:?}");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_missing_authentication_token() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let secrets = deploy(&state, &[repo_tenant("acme"), repo_tenant("clinic")]).await;
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let acme = key(&secrets, "acme", "acme-web").value.as_str();
    let clinic = key(&secrets, "clinic", "front-desk").value.as_str();

    let missing = [
        ("GET", "acme.localhost", "/prod/unknown", acme),
        ("GET", "acme.localhost", "/prod/accounts/a/b", acme),
        ("GET", "acme.localhost", "/prod/accounts/", acme),
        ("GET", "acme.localhost", "/prod", acme),
        ("GET", "acme.localhost", "/", acme),
        ("DELETE", "acme.localhost", "/prod/accounts", acme),
        ("PUT", "acme.localhost", "/prod/accounts", acme),
        ("HEAD", "acme.localhost", "/prod/accounts/x", acme),
        ("OPTIONS", "acme.localhost", "/prod/accounts", acme),
        ("GET", "acme.localhost", "/beta/accounts", acme),
        ("GET", "nobody.localhost", "/prod/accounts", acme),
        ("GET", "localhost", "/prod/accounts", acme),
        ("GET", "unknown.example.com", "/accounts", acme),
        ("GET", "api.acme.example.com", "/prod/accounts", acme),
        (
            "GET",
            "x",
            "/restapis/acme/beta/_user_request_/accounts",
            acme,
        ),
        (
            "GET",
            "x",
            "/restapis/nobody/prod/_user_request_/accounts",
            acme,
        ),
        ("GET", "x", "/restapis/acme/prod/_user_request_", acme),
        // The clinic deploys no delete function.
        ("DELETE", "clinic.localhost", "/prod/appointments/x", clinic),
    ];
    for (method, host, path, key) in missing {
        let r = send(a, method, host, path, Some(key), None).await;
        if method == "HEAD" {
            assert_eq!(r.status, 403, "{method} {host}{path}");
            continue;
        }
        r.assert_gateway(
            403,
            "Missing Authentication Token",
            "MissingAuthenticationTokenException",
        );
    }
    // Without a key too: routing comes first.
    send(a, "GET", "acme.localhost", "/prod/nothing", None, None)
        .await
        .assert_gateway(
            403,
            "Missing Authentication Token",
            "MissingAuthenticationTokenException",
        );

    // Hostile input never crashes the gateway.
    let hostile: [&[u8]; 6] = [
        b"GET /prod/accounts/%zz%ff HTTP/1.1\r\nHost: acme.localhost\r\nConnection: close\r\n\r\n",
        b"GET /prod/accounts?%zz=%&&=&a=%ff HTTP/1.1\r\nHost: acme.localhost\r\nConnection: close\r\n\r\n",
        b"GET /prod/accounts HTTP/1.1\r\nHost: \xff\xfe.localhost\r\nConnection: close\r\n\r\n",
        b"GET /prod/accounts HTTP/1.1\r\nHost: [::1\r\nConnection: close\r\n\r\n",
        b"GET /prod/accounts HTTP/1.1\r\nHost: acme.localhost:99999999999999999999\r\nx-api-key: \xff\r\nConnection: close\r\n\r\n",
        b"GET //restapis//acme HTTP/1.1\r\nHost: .\r\nConnection: close\r\n\r\n",
    ];
    for raw in hostile {
        let r = send_raw(a, raw).await;
        assert!(r.status < 500, "{r:?}");
    }
    // A long unknown key is refused like any unknown key; past API
    // Gateway's 10,240 bytes of request line and header values, the
    // request is refused before anything is looked at.
    for (len, status) in [(9_000, 403), (60_000, 431)] {
        let mut big =
            b"GET /prod/accounts HTTP/1.1\r\nHost: acme.localhost\r\nx-api-key: ".to_vec();
        big.extend(std::iter::repeat_n(b'k', len));
        big.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        let r = send_raw(a, &big).await;
        if status == 403 {
            r.assert_gateway(403, "Forbidden", "ForbiddenException");
        } else {
            r.assert_gateway(
                431,
                "Request Header Fields Too Large",
                "RequestHeaderFieldsTooLargeException",
            );
        }
    }
    let r = send(
        a,
        "GET",
        "acme.localhost",
        "/prod/accounts/%zz%ff",
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "the function refuses the id: {r:?}");

    // Routing on odd strings directly.
    let live = gateway.live();
    let parts = http::Request::builder()
        .method("GET")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    for host in [
        "",
        ":",
        "[",
        "]",
        "é.localhost",
        "acme.localhost:",
        "ACME.LOCALHOST",
        "a..localhost",
    ] {
        for path in [
            "",
            "/",
            "//",
            "/prod//accounts",
            "/restapis/",
            "/restapis/acme/prod/_user_request_x",
            "/%",
            "/é/é",
        ] {
            let _ = route::resolve(&live, host, path, &parts);
        }
    }
    assert!(route::resolve(&live, "ACME.LOCALHOST:1", "/prod/accounts", &parts).is_some());

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_checked_and_follow_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let secrets = deploy(&state, &[repo_tenant("acme"), repo_tenant("clinic")]).await;
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let web = key(&secrets, "acme", "acme-web");
    let billing = key(&secrets, "acme", "acme-billing");
    let clinic = key(&secrets, "clinic", "front-desk").value.as_str();
    let get = |k: Option<String>| async move {
        send(
            a,
            "GET",
            "acme.localhost",
            "/prod/accounts",
            k.as_deref(),
            None,
        )
        .await
    };

    assert_eq!(get(Some(web.value.clone())).await.status, 200);
    for k in [
        None,
        Some(String::new()),
        Some("not-a-key-at-all-but-long-enough".to_owned()),
        Some(clinic.to_owned()),
        Some(web.value.to_uppercase()),
    ] {
        get(k)
            .await
            .assert_gateway(403, "Forbidden", "ForbiddenException");
    }

    // Disabled here, then reloaded.
    assert!(state.set_key_enabled(&web.id, false).await.unwrap());
    gateway.reload().await.unwrap();
    get(Some(web.value.clone()))
        .await
        .assert_gateway(403, "Forbidden", "ForbiddenException");
    assert_eq!(
        get(Some(billing.value.clone())).await.status,
        200,
        "other keys work"
    );
    assert!(state.set_key_enabled(&web.id, true).await.unwrap());
    gateway.reload().await.unwrap();
    assert_eq!(get(Some(web.value.clone())).await.status, 200);

    // Expired keys stop working.
    assert!(state.set_key_expiry(&web.id, Some(1)).await.unwrap());
    gateway.reload().await.unwrap();
    get(Some(web.value.clone()))
        .await
        .assert_gateway(403, "Forbidden", "ForbiddenException");

    // Changed by another process: the poll notices without reload().
    let other = LocalState::open(dir.path()).await.unwrap();
    assert!(other.delete_key(&billing.id).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = get(Some(billing.value.clone())).await;
        if r.status == 403 {
            r.assert_gateway(403, "Forbidden", "ForbiddenException");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a deleted key still works: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A tenant that disappears stops being served.
    let clinic_ok = send(
        a,
        "GET",
        "clinic.localhost",
        "/prod/appointments",
        Some(clinic),
        None,
    )
    .await;
    assert_eq!(clinic_ok.status, 200);
    state
        .remove(&Address::new("clinic", Kind::Stage, "prod"))
        .await
        .unwrap();
    gateway.reload().await.unwrap();
    send(
        a,
        "GET",
        "clinic.localhost",
        "/prod/appointments",
        Some(clinic),
        None,
    )
    .await
    .assert_gateway(
        403,
        "Missing Authentication Token",
        "MissingAuthenticationTokenException",
    );

    server.stop().await;
    let used = state.keys().await.unwrap();
    assert!(
        used.iter().any(|k| k.id == web.id && k.last_used.is_some()),
        "last use is recorded: {used:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_are_throttled_and_quotas_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let small = write_tenant(
        files.path(),
        "small",
        &small_tenant("test", 1.0, 3, Some(4)),
    );
    let secrets = deploy(&state, &[small]).await;
    let one = key(&secrets, "small", "one");
    let two = key(&secrets, "small", "two");
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let get = |k: &str| {
        let k = k.to_owned();
        async move { send(a, "GET", "small.localhost", "/test/notes", Some(&k), None).await }
    };

    for _ in 0..3 {
        assert_eq!(get(&one.value).await.status, 200);
    }
    get(&one.value)
        .await
        .assert_gateway(429, "Too Many Requests", "TooManyRequestsException");
    // One token a second: the fourth request of the quota.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        get(&one.value).await.status,
        200,
        "a throttled request is not counted"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    get(&one.value)
        .await
        .assert_gateway(429, "Limit Exceeded", "LimitExceededException");
    assert_eq!(
        get(&two.value).await.status,
        200,
        "each key has its own bucket and quota"
    );

    let period = period_start(runtime::tenant::Period::Day, OffsetDateTime::now_utc());
    assert_eq!(state.quota_used(&one.id, period).await.unwrap(), 4);

    // A new gateway on the same directory: fresh buckets, same count.
    server.stop().await;
    drop(gateway);
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let r = send(
        server.addr,
        "GET",
        "small.localhost",
        "/test/notes",
        Some(&one.value),
        None,
    )
    .await;
    r.assert_gateway(429, "Limit Exceeded", "LimitExceededException");
    server.stop().await;
}

/// Between Lambda's 6 MB and API Gateway's 10 MB, a body passes the
/// gateway's own limit and Lambda refuses the event: 413 as AWS relays it.
/// The event counts, not only the body: a body that JSON escaping makes
/// six times longer is refused at a sixth of the size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_lambdas_payload_limit_are_413() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let small = write_tenant(
        files.path(),
        "small",
        &small_tenant("prod", 100.0, 100, None),
    );
    let secrets = deploy(&state, &[small]).await;
    let one = key(&secrets, "small", "one").value.clone();
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let post = |body: String| {
        let one = one.clone();
        async move {
            send(
                a,
                "POST",
                "small.localhost",
                "/prod/notes",
                Some(&one),
                Some(&body),
            )
            .await
        }
    };

    let seven_mb = format!(r#"{{"text":"{}"}}"#, "x".repeat(7 * 1024 * 1024));
    let r = post(seven_mb).await;
    r.assert_gateway(413, "Request Too Long", "BadRequestException");
    assert_eq!(r.body, r#"{"message": "Request Too Long"}"#);

    // 1.1 MB of control characters: each is six bytes in the event.
    let escaped = format!(r#"{{"text":"{}"}}"#, "\u{1}".repeat(1_100_000));
    post(escaped)
        .await
        .assert_gateway(413, "Request Too Long", "BadRequestException");

    // Just under the limit the function runs and answers for itself
    // (the item is over DynamoDB's 400 KB).
    let under = format!(r#"{{"text":"{}"}}"#, "x".repeat(6_200_000));
    let r = post(under).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    server.stop().await;

    let lines = std::fs::read_to_string(state.log_path("small")).unwrap();
    let starts = lines
        .lines()
        .filter(|l| l.contains("START RequestId"))
        .count();
    assert_eq!(
        starts, 1,
        "only the last request invoked the function: {lines}"
    );
}

#[test]
fn only_large_events_are_measured() {
    let mut ev = ApiGatewayProxyRequest::default();
    ev.body = Some("x".repeat(900_000));
    assert!(!event_too_large(&ev));
    ev.body = Some("\u{1}".repeat(1_048_576));
    assert!(event_too_large(&ev), "six bytes each once escaped");
    ev.body = Some("x".repeat(MAX_INVOCATION_PAYLOAD - 10_000));
    assert!(!event_too_large(&ev));
    ev.body = Some("x".repeat(MAX_INVOCATION_PAYLOAD));
    assert!(event_too_large(&ev));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_are_exact_under_concurrency_and_leased_in_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let exact = write_tenant(
        files.path(),
        "exact",
        &small_tenant("prod", 1000.0, 1000, Some(50)),
    );
    let blocks = write_tenant(
        files.path(),
        "blocks",
        &small_tenant("prod", 1000.0, 1000, Some(1000)),
    );
    let secrets = deploy(&state, &[exact, blocks]).await;
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;

    // Limit 50 (block 1): 60 at once, exactly 50 get through.
    let k = key(&secrets, "exact", "one").value.clone();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..60 {
        let k = k.clone();
        tasks.spawn(async move {
            send(a, "GET", "exact.localhost", "/prod/notes", Some(&k), None)
                .await
                .status
        });
    }
    let mut statuses = BTreeMap::new();
    while let Some(s) = tasks.join_next().await {
        *statuses.entry(s.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(statuses, BTreeMap::from([(200, 50), (429, 10)]));

    // Limit 1,000: blocks of 10 reserved ahead.
    let b = key(&secrets, "blocks", "one");
    let period = period_start(runtime::tenant::Period::Day, OffsetDateTime::now_utc());
    for _ in 0..3 {
        let r = send(
            a,
            "GET",
            "blocks.localhost",
            "/prod/notes",
            Some(&b.value),
            None,
        )
        .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(state.quota_used(&b.id, period).await.unwrap(), 10);
    server.stop().await;
    drop(gateway);

    // After a restart the count goes on from what was reserved (an
    // over-count of 7, less than one block).
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let r = send(
        server.addr,
        "GET",
        "blocks.localhost",
        "/prod/notes",
        Some(&b.value),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(state.quota_used(&b.id, period).await.unwrap(), 20);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_access_and_function_lines_but_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let secrets = deploy(&state, &[repo_tenant("acme")]).await;
    let web = key(&secrets, "acme", "acme-web");
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let r = send(
        a,
        "POST",
        "acme.localhost",
        "/prod/accounts",
        Some(&web.value),
        Some(r#"{"name":"Ada","email":"ada@example.com"}"#),
    )
    .await;
    assert_eq!(r.status, 201);
    let request_id = r.header("x-amzn-requestid").unwrap().to_owned();
    let forbidden = send(
        a,
        "GET",
        "acme.localhost",
        "/prod/accounts",
        Some("wrong-key-value-000000"),
        None,
    )
    .await;
    assert_eq!(forbidden.status, 403);
    // Oversized bodies are refused before they are read.
    let raw = b"POST /prod/accounts HTTP/1.1\r\nHost: acme.localhost\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\nConnection: close\r\n\r\n";
    let mut with_key = raw[..raw.len() - 2].to_vec();
    with_key.extend_from_slice(format!("x-api-key: {}\r\n\r\n", web.value).as_bytes());
    send_raw(a, &with_key)
        .await
        .assert_gateway(413, "Request Too Long", "RequestTooLongException");
    server.stop().await;

    let text = std::fs::read_to_string(state.log_path("acme")).unwrap();
    assert!(!text.contains(&web.value), "no key value in the logs");
    assert!(
        !text.contains("wrong-key-value"),
        "no key value in the logs"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let access: Vec<&Value> = lines.iter().filter(|l| l["type"] == "access").collect();
    assert_eq!(access.len(), 3, "{text}");
    let created = access
        .iter()
        .find(|l| l["requestId"] == request_id.as_str())
        .unwrap();
    assert_eq!(created["status"], 201);
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["apiKeyId"], web.id.as_str());
    assert_eq!(created["ip"], "127.0.0.1");
    assert_eq!(created["method"], "POST");
    assert_eq!(created["path"], "/prod/accounts");
    assert!(created["latencyMs"].as_f64().is_some());
    assert!(created["bytes"].as_u64().unwrap() > 10);
    assert!(created["time"].as_str().unwrap().ends_with('Z'));
    let refused = access.iter().find(|l| l["status"] == 403).unwrap();
    assert_eq!(refused["apiKeyId"], Value::Null);
    assert!(access.iter().any(|l| l["status"] == 413));

    let function: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "function")
        .map(|l| {
            assert_eq!(l["function"], "apifactory-acme-add");
            l["message"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        function.len(),
        3,
        "only the request that reached the function: {text}"
    );
    assert_eq!(
        function[0],
        format!("START RequestId: {request_id} Version: $LATEST")
    );
    assert_eq!(function[1], format!("END RequestId: {request_id}"));
    assert!(function[2].starts_with(&format!("REPORT RequestId: {request_id}\tDuration: ")));
    assert!(function[2].ends_with("\tMemory Size: 256 MB\tMax Memory Used: 0 MB"));
}

#[tokio::test]
async fn events_carry_what_api_gateway_sends() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    deploy(&state, &[repo_tenant("acme")]).await;
    let snapshot = state.snapshot().await.unwrap();
    let deployed = &snapshot.tenants["acme"];
    let api = Arc::new(Api::new(
        Arc::new(deployed.tenant.clone()),
        state.database().table(&deployed.tenant).await.unwrap(),
    ));
    let t = Arc::new(TenantRt::new(
        deployed,
        None,
        String::new(),
        api,
        state.log_path("acme").into(),
    ));
    let parts = http::Request::builder()
        .method("GET")
        .uri("/prod/accounts/a%20b?x=1&x=2&y=a+b%21")
        .header("host", "acme.localhost:9000")
        .header("x-api-key", "the-key-value")
        .header("accept", "a")
        .header("accept", "b")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let routed = Routed {
        tenant: Arc::clone(&t),
        rest: "/accounts/a%20b",
        id: Some("a%20b"),
        op: Operation::Get,
    };
    let ev = event(EventParts {
        parts: &parts,
        routed: &routed,
        host: "acme.localhost:9000",
        full_path: "/prod/accounts/a%20b",
        body: Bytes::from_static(b"\xff\x00"),
        request_id: "rid",
        now: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        peer: Some("10.0.0.1".parse().unwrap()),
        api_key: "the-key-value",
        api_key_id: "abc",
    });
    assert_eq!(ev.resource.as_deref(), Some("/accounts/{id}"));
    assert_eq!(ev.path.as_deref(), Some("/accounts/a%20b"));
    assert_eq!(ev.http_method, http::Method::GET);
    assert_eq!(
        ev.path_parameters.get("id").map(String::as_str),
        Some("a b")
    );
    assert!(ev.stage_variables.is_empty());
    assert_eq!(ev.query_string_parameters.first("x"), Some("2"));
    assert_eq!(
        ev.multi_value_query_string_parameters.all("x"),
        Some(vec!["1", "2"])
    );
    assert_eq!(ev.query_string_parameters.first("y"), Some("a+b!"));
    assert_eq!(ev.multi_value_headers.get_all("accept").iter().count(), 2);
    assert_eq!(ev.headers.get("host").unwrap(), "acme.localhost:9000");
    assert!(ev.is_base64_encoded);
    assert_eq!(ev.body.as_deref(), Some("/wA="));
    let c = &ev.request_context;
    assert_eq!(c.stage.as_deref(), Some("prod"));
    assert_eq!(c.request_id.as_deref(), Some("rid"));
    assert_eq!(c.request_time_epoch, 1_700_000_000_123);
    assert_eq!(c.resource_path.as_deref(), Some("/accounts/{id}"));
    assert_eq!(c.path.as_deref(), Some("/prod/accounts/a%20b"));
    assert_eq!(c.domain_name.as_deref(), Some("acme.localhost:9000"));
    assert_eq!(c.account_id.as_deref(), Some("000000000000"));
    assert_eq!(c.apiid.as_deref(), Some("acme"));
    assert_eq!(c.http_method, http::Method::GET);
    assert_eq!(c.identity.source_ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(c.identity.api_key.as_deref(), Some("the-key-value"));
    assert_eq!(c.identity.api_key_id.as_deref(), Some("abc"));
    // The runtime takes it as API Gateway's.
    let response = t.api.handle(ev).await;
    assert_eq!(
        response.status_code, 400,
        "`a b` is not an id: {response:?}"
    );
}

#[tokio::test]
async fn function_failures_map_to_502_and_504() {
    let ok = invoke(
        async { ApiGatewayProxyResponse::default() },
        Duration::from_secs(1),
    )
    .await;
    assert!(ok.is_ok());
    let slow = invoke(
        async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            ApiGatewayProxyResponse::default()
        },
        Duration::from_millis(20),
    )
    .await;
    assert_eq!(slow, Err(Failure::Timeout));
    let crashed = invoke(
        async {
            if Instant::now().elapsed() < Duration::from_secs(3600) {
                panic!("the function crashed");
            }
            ApiGatewayProxyResponse::default()
        },
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(crashed, Err(Failure::Crashed));

    let response = |status: i64, body: Option<LambdaBody>, base64: bool| {
        let mut r = ApiGatewayProxyResponse::default();
        r.status_code = status;
        r.body = body;
        r.is_base64_encoded = base64;
        r
    };
    for status in [0, 42, 101, 600, -1, i64::MAX] {
        assert!(to_http(response(status, None, false)).is_none(), "{status}");
    }
    assert!(to_http(response(200, Some(LambdaBody::Text("!!".into())), true)).is_none());
    let (r, bytes) = to_http(response(200, Some(LambdaBody::Text("aGk=".into())), true)).unwrap();
    assert_eq!((r.status(), bytes), (StatusCode::OK, 2));
    let (r, bytes) = to_http(response(
        201,
        Some(LambdaBody::Binary(vec![0, 1, 2])),
        false,
    ))
    .unwrap();
    assert_eq!((r.status(), bytes), (StatusCode::CREATED, 3));
    let (_, bytes) = to_http(response(204, None, false)).unwrap();
    assert_eq!(bytes, 0);

    let mut r = response(200, Some(LambdaBody::Text("hello".into())), false);
    r.headers.insert("a", HeaderValue::from_static("1"));
    r.headers.insert("b", HeaderValue::from_static("2"));
    r.headers
        .insert("content-length", HeaderValue::from_static("99"));
    r.multi_value_headers
        .append("a", HeaderValue::from_static("1"));
    r.multi_value_headers
        .append("a", HeaderValue::from_static("3"));
    let (r, bytes) = to_http(r).unwrap();
    assert_eq!(bytes, 5);
    let a: Vec<_> = r.headers().get_all("a").iter().collect();
    assert_eq!(a, ["1", "3"]);
    assert_eq!(r.headers().get("b").unwrap(), "2");
    assert!(r.headers().get("content-length").is_none());

    for (error, status) in [
        (GatewayError::MissingAuthenticationToken, 403),
        (GatewayError::Forbidden, 403),
        (GatewayError::TooManyRequests, 429),
        (GatewayError::LimitExceeded, 429),
        (GatewayError::RequestTooLong, 413),
        (GatewayError::BadGateway, 502),
        (GatewayError::Timeout, 504),
    ] {
        let r = error.response(&HeaderValue::from_static("rid"));
        assert_eq!(r.status().as_u16(), status);
        assert!(serde_json::from_str::<Value>(error.body()).unwrap()["message"].is_string());
    }
    assert_eq!(
        GatewayError::Timeout.body(),
        r#"{"message":"Endpoint request timed out"}"#
    );
    assert_eq!(
        GatewayError::BadGateway.body(),
        r#"{"message":"Internal server error"}"#
    );
}

#[tokio::test]
async fn bodies_are_read_up_to_the_limit() {
    let small = read_body(Body::from("hello"), 10).await;
    assert_eq!(small.ok().as_deref(), Some(&b"hello"[..]));
    let big = read_body(Body::from(vec![0u8; MAX_PAYLOAD + 1]), MAX_PAYLOAD).await;
    assert!(matches!(big, Err(BodyError::TooLong)));
    let exact = read_body(Body::from(vec![0u8; 1024]), 1024).await;
    assert_eq!(exact.ok().map(|b| b.len()), Some(1024));
}

#[test]
fn buckets_and_blocks() {
    let l = key_limiter(0.5, 2);
    assert!(l.check().is_ok() && l.check().is_ok());
    assert!(l.check().is_err());
    for (rate, burst) in [
        (f64::NAN, 0),
        (1e300, 1),
        (-1.0, 5),
        (0.0, 1),
        (f64::INFINITY, 3),
        (1e-300, 1),
    ] {
        let l = key_limiter(rate, burst);
        let _ = l.check();
    }
    assert_eq!(quota_block(4), 1);
    assert_eq!(quota_block(1_000), 10);
    assert_eq!(quota_block(100_000), 1_000);
    assert_eq!(quota_block(10_000_000), 1_000);
    assert_eq!(quota_block(0), 1);
    let id = request_id();
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_cursors_are_signed_with_the_data_directorys_secret() {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let secrets = deploy(&state, &[repo_tenant("acme")]).await;
    let acme = key(&secrets, "acme", "acme-web").value.as_str();
    let secret = state.cursor_secret().await.unwrap();
    assert_eq!(secret.len(), 32);
    assert_eq!(state.cursor_secret().await.unwrap(), secret, "made once");

    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    for n in 0..3 {
        let body = format!(r#"{{"name": "N{n}", "email": "n{n}@example.com"}}"#);
        let r = send(
            server.addr,
            "POST",
            "acme.localhost",
            "/prod/accounts",
            Some(acme),
            Some(&body),
        )
        .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let first = send(
        server.addr,
        "GET",
        "acme.localhost",
        "/prod/accounts?limit=1",
        Some(acme),
        None,
    )
    .await;
    assert_eq!(first.status, 200, "{first:?}");
    let cursor = first.json()["next"].as_str().unwrap().to_owned();
    server.stop().await;

    // Another process on the same directory takes the cursor.
    let gateway = Gateway::new(LocalState::open(dir.path()).await.unwrap())
        .await
        .unwrap();
    let server = start(&gateway).await;
    let next = format!("/prod/accounts?limit=1&next={cursor}");
    let r = send(
        server.addr,
        "GET",
        "acme.localhost",
        &next,
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(1), "{r:?}");
    assert_ne!(r.json()["items"][0], first.json()["items"][0]);

    // A cursor made with the tenant file alone (the derivation is public)
    // is refused.
    let table = state
        .database()
        .table(&Tenant::load(&repo_tenant("acme")).unwrap())
        .await
        .unwrap();
    let bare = runtime::Api::new(Arc::new(Tenant::load(&repo_tenant("acme")).unwrap()), table);
    let mut event = aws_lambda_events::apigw::ApiGatewayProxyRequest::default();
    event.http_method = http::Method::GET;
    event.resource = Some("/accounts".into());
    event.path = Some("/accounts".into());
    let query: std::collections::HashMap<String, Vec<String>> =
        [("limit".to_owned(), vec!["1".to_owned()])].into();
    event.multi_value_query_string_parameters = query.into();
    let forged = bare.handle(event).await;
    let forged: Value = match forged.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    let forged = forged["next"].as_str().unwrap().to_owned();
    let r = send(
        server.addr,
        "GET",
        "acme.localhost",
        &format!("/prod/accounts?limit=1&next={forged}"),
        Some(acme),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    server.stop().await;
}

/// The three layers in API Gateway's order: each key's own bucket, the
/// tenant's API-wide bucket when it sets one (every key together), then the
/// account's. Refill is one token every 1,000 s, so only the bursts count
/// and nothing depends on timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_wide_total_throttles_all_keys_together_and_only_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let per_key = small_tenant("test", 0.001, 5, None);
    let with_total = |display: &str, burst: u32| {
        per_key
            .replace(
                "burst = 5\n",
                &format!("burst = 5\napi_rate = 0.001\napi_burst = {burst}\n"),
            )
            .replace(
                "display_name = \"Small\"",
                &format!("display_name = \"{display}\""),
            )
    };
    let total = write_tenant(files.path(), "total", &with_total("Small", 6));
    let open = write_tenant(files.path(), "open", &per_key);
    let secrets = deploy(&state, &[total.clone(), open]).await;
    let gateway = Gateway::new(state.clone()).await.unwrap();
    let server = start(&gateway).await;
    let a = server.addr;
    let get = |tenant: &'static str, k: &Secret| {
        let k = k.value.clone();
        let host = format!("{tenant}.localhost");
        async move { send(a, "GET", &host, "/test/notes", Some(&k), None).await }
    };
    let statuses = async |tenant: &'static str, client: &str, n: usize| {
        let k = key(&secrets, tenant, client);
        let mut seen = Vec::new();
        for _ in 0..n {
            seen.push(get(tenant, k).await.status);
        }
        seen
    };

    // Without a total, each key has its own 5 and both are served in full:
    // 10 requests, more than any one bucket holds.
    assert_eq!(statuses("open", "one", 5).await, [200; 5]);
    assert_eq!(statuses("open", "two", 5).await, [200; 5]);
    // The per-key layer still holds each key to its own burst.
    get("open", key(&secrets, "open", "one"))
        .await
        .assert_gateway(429, "Too Many Requests", "TooManyRequestsException");

    // With a total of 6, the second key is refused once the API's bucket is
    // empty, though its own bucket still has 4. (The key's bucket is
    // checked first, so a key over its own limit never drains the API's.)
    assert_eq!(statuses("total", "one", 5).await, [200; 5]);
    assert_eq!(statuses("total", "two", 1).await, [200]);
    get("total", key(&secrets, "total", "two"))
        .await
        .assert_gateway(429, "Too Many Requests", "TooManyRequestsException");

    // A redeploy that changes something else keeps the API's bucket (it is
    // not refilled by a reload)...
    std::fs::write(&total, with_total("Small again", 6)).unwrap();
    deploy(&state, std::slice::from_ref(&total)).await;
    gateway.reload().await.unwrap();
    assert_eq!(
        statuses("total", "two", 1).await,
        [429],
        "a reload refilled the API's bucket"
    );
    // ...and one that removes the total removes the layer.
    std::fs::write(&total, &per_key).unwrap();
    deploy(&state, std::slice::from_ref(&total)).await;
    gateway.reload().await.unwrap();
    assert_eq!(statuses("total", "two", 2).await, [200, 200]);
    server.stop().await;
}
