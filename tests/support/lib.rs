//! Helpers for the end-to-end tests.
//!
//! The tests run through `tests/run`, which installs and starts moto and
//! builds every binary first. A test that needs either and finds it missing
//! fails with a message saying so: it never skips silently.

pub mod aws;
pub mod browser;
pub mod fault_proxy;
pub mod firefox;
pub mod fleet;
pub mod server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use base64::Engine as _;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use fault_proxy::{FaultConfig, FaultProxy};

/// Where `tests/run` tells the tests the moto server listens.
pub const MOTO_ENV: &str = "APIFACTORY_TEST_MOTO";

/// The region every test uses.
pub const REGION: &str = "us-east-1";

/// The base URL of the moto server of this test run, without a trailing
/// slash. Panics when the tests were not started by `tests/run`.
pub fn moto_url() -> String {
    match std::env::var(MOTO_ENV) {
        Ok(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
        _ => panic!(
            "{MOTO_ENV} is not set: run the tests with tests/run, which installs and starts moto"
        ),
    }
}

/// An SDK configuration pointing at moto: region us-east-1, static test
/// credentials. Build any service client from it.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto_url())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "apifactory-tests",
        ))
        .load()
        .await
}

/// An SDK configuration like [`sdk_config`], through `endpoint`.
pub async fn sdk_config_at(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "apifactory-tests",
        ))
        .load()
        .await
}

/// The URL of this test process's realism layer: one fault proxy with
/// [`FaultConfig::realistic`] in front of moto, for every test, so that
/// what one run creates is still "recent" to the next run's lists. It runs
/// on a thread and runtime of its own, since each test's runtime ends with
/// the test. The AWS target and the CLI go through it; a test's own checks
/// read moto directly (the ground truth).
pub fn realistic_endpoint() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| proxy_in_front_of_moto("realism", FaultConfig::realistic()))
}

/// moto behind a fault proxy that models nothing of AWS: it only carries
/// CloudWatch's RPC v2 CBOR, which the SDK speaks and moto 5.2.5 cannot
/// read (see `cbor`), so that the AWS target can reach moto "directly".
/// One for the test process, on a thread of its own like
/// [`realistic_endpoint`].
pub fn plain_endpoint() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| proxy_in_front_of_moto("plain-proxy", FaultConfig::with_rate(0.0)))
}

/// A fault proxy in front of moto on a thread and runtime of its own (each
/// test's runtime ends with the test), serving for the whole test process;
/// its URL.
fn proxy_in_front_of_moto(name: &str, config: FaultConfig) -> String {
    let upstream = moto_url();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the proxy's runtime");
            rt.block_on(async move {
                let proxy = FaultProxy::start(&upstream, config).await;
                let _ = tx.send(proxy.url().to_owned());
                std::future::pending::<()>().await;
            });
        })
        .expect("the proxy's thread starts");
    rx.recv().expect("the proxy starts")
}

/// A DynamoDB client talking to moto.
pub async fn dynamo_client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config().await)
}

/// A name no other test of any run shares: the prefix, the process id, a
/// counter and the clock. Letters, digits and `-` only, so it fits table,
/// function and tenant names.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}{}-{n}-{:x}", std::process::id(), nanos % (1 << 32))
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    tests.parent().map(PathBuf::from).unwrap_or(tests)
}

/// A file under `tests/data`.
pub fn data_path(name: &str) -> PathBuf {
    repo_root().join("tests").join("data").join(name)
}

/// One of the workspace's binaries, as `tests/run` built it: it sits in the
/// target profile folder, the parent of the `deps` folder that holds the
/// test executable.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the test executable");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap_or_else(|| panic!("{} has no grandparent folder", exe.display()));
    let path = profile.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: the binaries are built by tests/run (cargo build --workspace --bins) \
         before the tests run",
        path.display()
    );
    path
}

/// A response of the tiny HTTP client.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request to a plain `http://host:port` URL (moto, local
/// servers), with `Connection: close`. Enough for tests; panics on any
/// transport failure, and gives up after 30 s.
pub async fn http(method: &str, url: &str, body: Option<&[u8]>) -> HttpResponse {
    tokio::time::timeout(Duration::from_secs(30), http_inner(method, url, body))
        .await
        .unwrap_or_else(|_| panic!("{method} {url}: no answer within 30 s"))
}

async fn http_inner(method: &str, url: &str, body: Option<&[u8]>) -> HttpResponse {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not a plain http:// URL: {url}"));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(authority)
        .await
        .unwrap_or_else(|e| panic!("connecting to {authority}: {e}"));
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .and(stream.write_all(body).await)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    // To the end of the stream, or of the body its length announces:
    // some servers (ChromeDriver) keep the connection open after their
    // answer despite `Connection: close`.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        if complete(&raw) {
            break;
        }
    }
    parse_response(&raw).unwrap_or_else(|| {
        panic!(
            "{method} {url}: malformed response {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// Whether `raw` holds a whole response with a `Content-Length` body.
fn complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    head.lines()
        .filter_map(|l| l.strip_prefix("content-length:"))
        .filter_map(|v| v.trim().parse::<usize>().ok())
        .next()
        .is_some_and(|len| raw.len() >= end + 4 + len)
}

fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        body = fault_proxy::dechunk(&body)?;
    } else if let Some(len) = headers.get("content-length").and_then(|l| l.parse().ok()) {
        body.truncate(len);
    }
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

/// One request moto's recorder saw.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub url: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The body, decoded.
    pub body: String,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The operation of a JSON-protocol call (`DynamoDB_20120810.Query`
    /// gives `Query`).
    pub fn json_operation(&self) -> Option<&str> {
        self.header("x-amz-target")?.rsplit('.').next()
    }

    /// The body as JSON, when it is.
    pub fn json_body(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// Tests in this process that are recording; the recorder is switched on
/// for the first and off after the last, so that tests running in parallel
/// never switch it off under each other. The first also empties the
/// recording: with no test holding it, nothing in it is anyone's, and moto
/// records every request body (function zips of megabytes among them), so a
/// recording kept for the whole run grows into one every later download
/// reads in full. A test filters the recording for its own resources.
fn recorders() -> &'static tokio::sync::Mutex<usize> {
    static RECORDERS: OnceLock<tokio::sync::Mutex<usize>> = OnceLock::new();
    RECORDERS.get_or_init(|| tokio::sync::Mutex::new(0))
}

/// A hold on moto's request recorder.
#[derive(Debug)]
pub struct Recording {
    /// Where the recording ended when this hold began, in bytes: moto only
    /// appends to it while anyone holds it.
    skip: usize,
}

impl Recording {
    /// Makes sure moto records requests until `stop`.
    pub async fn start() -> Recording {
        let mut count = recorders().lock().await;
        if *count == 0 {
            for step in ["reset-recording", "start-recording"] {
                let r = http(
                    "POST",
                    &format!("{}/moto-api/recorder/{step}", moto_url()),
                    None,
                )
                .await;
                assert_eq!(r.status, 200, "{step}: {}", r.text());
            }
        }
        *count += 1;
        drop(count);
        // Before anything is recorded there is no recording file, and moto
        // answers 500. The last line may still be being written: start
        // after the last whole one.
        let skip = download_recording()
            .await
            .map_or(0, |all| all.rfind('\n').map_or(0, |i| i + 1));
        Recording { skip }
    }

    /// The requests moto recorded since `start`, oldest first (every
    /// test's requests: filter them for your own resources).
    pub async fn requests(&self) -> Vec<RecordedRequest> {
        let all = download_recording()
            .await
            .unwrap_or_else(|status| panic!("download-recording answered {status}"));
        entries(all.get(self.skip..).unwrap_or_default())
            .iter()
            .map(parse_recorded)
            .collect()
    }

    /// Releases the hold; the recorder stops when no test holds it.
    pub async fn stop(self) {
        let mut count = recorders().lock().await;
        *count = count.saturating_sub(1);
        if *count == 0 {
            let r = http(
                "POST",
                &format!("{}/moto-api/recorder/stop-recording", moto_url()),
                None,
            )
            .await;
            assert_eq!(r.status, 200, "stop-recording: {}", r.text());
        }
    }
}

/// The recording as moto keeps it, one JSON object a line, or the status
/// of a failed download.
async fn download_recording() -> Result<String, u16> {
    let r = http(
        "GET",
        &format!("{}/moto-api/recorder/download-recording", moto_url()),
        None,
    )
    .await;
    if r.status != 200 {
        return Err(r.status);
    }
    Ok(r.text())
}

/// The entries of (a tail of) the recording, oldest first. moto writes an
/// entry and its newline in two writes, so under concurrent requests two
/// entries can share a line: read a stream of JSON objects, not lines.
fn entries(recording: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(recording)
        .into_iter::<Value>()
        .map(|entry| entry.unwrap_or_else(|e| panic!("a recorded request that is not JSON: {e}")))
        .collect()
}

fn parse_recorded(entry: &Value) -> RecordedRequest {
    let text = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or_default();
    let headers = entry
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        v.as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let body = if entry.get("body_encoded").and_then(Value::as_bool) == Some(true) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text("body"))
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        text("body").to_owned()
    };
    RecordedRequest {
        method: text("method").to_owned(),
        url: text("url").to_owned(),
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhi")
            .expect("response");
        assert_eq!((r.status, r.text().as_str()), (200, "hi"));
        assert_eq!(r.headers.get("x-a").map(String::as_str), Some("b"));
        let r = parse_response(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .expect("chunked");
        assert_eq!((r.status, r.text().as_str()), (201, "abcde"));
        assert!(parse_response(b"garbage").is_none());
    }

    #[test]
    fn recorded_entries_that_share_a_line_are_read_apart() {
        let recording = "{\"method\": \"GET\"}{\"method\": \"PUT\"}\n\n{\"method\": \"POST\"}\n";
        let methods: Vec<String> = entries(recording)
            .iter()
            .map(|e| parse_recorded(e).method)
            .collect();
        assert_eq!(methods, ["GET", "PUT", "POST"]);
        assert!(entries("").is_empty());
    }

    #[test]
    fn unique_names_differ() {
        let a = unique_name("t-");
        assert_ne!(a, unique_name("t-"));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
