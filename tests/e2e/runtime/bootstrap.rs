//! The built Lambda `bootstrap` under a Runtime API served by the test: it
//! polls `next`, gets real API Gateway proxy events (v1, from a non-default
//! stage), and posts back responses, invocation errors and init errors. Its
//! store is a DynamoDB table on moto.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apifactory_tests::{bin_path, dynamo_client, moto_url, repo_root, unique_name};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use runtime::Tenant;
use serde_json::Value;

/// What the function posted back.
#[derive(Debug, Clone)]
struct Posted {
    kind: &'static str,
    request_id: String,
    error_type: Option<String>,
    body: Value,
}

#[derive(Default)]
struct RuntimeApi {
    events: Mutex<VecDeque<(String, Value)>>,
    posted: Mutex<Vec<Posted>>,
    polls: Mutex<u32>,
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> axum::response::Response {
    *api.polls.lock().unwrap() += 1;
    let event = api.events.lock().unwrap().pop_front();
    let Some((id, event)) = event else {
        // No more work: hold the poll open, as Lambda does between events.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 10_000;
    let mut headers = HeaderMap::new();
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_str(&id).unwrap(),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline.to_string()).unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static(
            "arn:aws:lambda:us-east-1:123456789012:function:apifactory-acme-get",
        ),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static(
            "Root=1-5e1b4151-5ac6c58f5cb8ce4d3f9c1d23;Parent=5e1b4151;Sampled=0",
        ),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (headers, event.to_string()).into_response()
}

fn record(api: &RuntimeApi, kind: &'static str, id: String, headers: &HeaderMap, body: &Bytes) {
    api.posted.lock().unwrap().push(Posted {
        kind,
        request_id: id,
        error_type: headers
            .get("lambda-runtime-function-error-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    });
}

async fn respond(
    State(api): State<Arc<RuntimeApi>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    record(&api, "response", id, &headers, &body);
    "{}"
}

async fn error(
    State(api): State<Arc<RuntimeApi>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    record(&api, "error", id, &headers, &body);
    "{}"
}

async fn init_error(
    State(api): State<Arc<RuntimeApi>>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    record(&api, "init-error", String::new(), &headers, &body);
    "{}"
}

async fn serve(api: Arc<RuntimeApi>) -> SocketAddr {
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn bootstrap(task_root: &Path, runtime_api: SocketAddr, table: &str) -> tokio::process::Child {
    tokio::process::Command::new(bin_path("bootstrap"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
        .env("LAMBDA_TASK_ROOT", task_root)
        .env("AWS_LAMBDA_FUNCTION_NAME", "apifactory-acme-get")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", moto_url())
        .env("APIFACTORY_TABLE", table)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("bootstrap starts")
}

async fn wait_for(api: &RuntimeApi, count: usize) {
    for _ in 0..300 {
        if api.posted.lock().unwrap().len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the function posted {:?} within 30 s",
        api.posted.lock().unwrap()
    );
}

fn fixture(name: &str) -> Value {
    let path = repo_root().join("tests/data/events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn body_of(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_serves_proxy_events_through_the_runtime_api() {
    let tenant = Tenant::load(&repo_root().join("tenants/acme.toml")).unwrap();
    let table = unique_name("bootstrap");
    apifactory::aws::table::create_table(
        &dynamo_client().await,
        &apifactory::aws::Pacer::new(apifactory::aws::Pace::Off),
        &table,
        &runtime::schema::TableSchema::of(&tenant.collection),
        &Default::default(),
    )
    .await
    .unwrap();
    let task_root = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_root().join("tenants/acme.toml"),
        task_root.path().join("tenant.toml"),
    )
    .unwrap();

    let names = [
        "01-add-account.json",
        "02-add-account-base64.json",
        "03-get-account.json",
        "04-search-by-plan.json",
        "05-invalid-body.json",
        "06-get-missing.json",
        "07-not-apigw.json",
    ];
    let api = Arc::new(RuntimeApi::default());
    for (i, name) in names.iter().enumerate() {
        api.events
            .lock()
            .unwrap()
            .push_back((format!("req-{i}"), fixture(name)));
    }
    let addr = serve(api.clone()).await;
    let mut child = bootstrap(task_root.path(), addr, &table);
    wait_for(&api, names.len()).await;
    child.kill().await.unwrap();
    let output = child.wait_with_output().await.unwrap();
    let posted = api.posted.lock().unwrap().clone();
    let by_id = |i: usize| {
        posted
            .iter()
            .find(|p| p.request_id == format!("req-{i}"))
            .unwrap()
            .clone()
    };

    // Each answer goes to its own request id, as a proxy response.
    let added = by_id(0);
    assert_eq!(added.kind, "response");
    assert_eq!(added.body["statusCode"], 201, "{:?}", added.body);
    assert_eq!(added.body["isBase64Encoded"], false);
    assert_eq!(
        added.body["headers"]["location"], "/v1/accounts/acct-0001",
        "stage kept in Location"
    );
    assert!(added.body["headers"]["etag"].is_string());
    assert_eq!(body_of(&added.body)["email"], "grace@example.com");

    let b64 = by_id(1);
    assert_eq!(b64.body["statusCode"], 201, "{:?}", b64.body);
    assert_eq!(body_of(&b64.body)["plan"], "free");

    let got = by_id(2);
    assert_eq!(got.body["statusCode"], 200, "{:?}", got.body);
    assert_eq!(body_of(&got.body)["name"], "Grace Hopper");
    assert_eq!(got.body["headers"]["etag"], added.body["headers"]["etag"]);

    let found = by_id(3);
    assert_eq!(found.body["statusCode"], 200, "{:?}", found.body);
    let items = body_of(&found.body)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], "acct-0001");

    let invalid = by_id(4);
    assert_eq!(invalid.body["statusCode"], 400);
    assert_eq!(
        invalid.body["headers"]["content-type"],
        "application/problem+json"
    );
    let fields: Vec<String> = body_of(&invalid.body)["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["colour", "email"]);

    assert_eq!(by_id(5).body["statusCode"], 404);

    // Not an API Gateway event: an invocation error, and the function
    // keeps serving (it polled again after it).
    let err = by_id(6);
    assert_eq!(err.kind, "error", "{err:?}");
    assert!(
        err.body["errorMessage"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{err:?}"
    );
    assert!(*api.polls.lock().unwrap() > names.len() as u32);

    // Logs are JSON lines (CloudWatch), one per handled request at least.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let handled: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "handled")
        .collect();
    assert_eq!(handled.len(), 6, "stdout: {stdout}");
    assert_eq!(
        handled[0]["fields"]["request_id"],
        "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    );
    assert!(
        !stdout.contains("REDACTED-NOT-A-REAL-KEY"),
        "the API key never reaches the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_reports_a_broken_tenant_file_as_an_init_error() {
    let task_root = tempfile::tempdir().unwrap();
    std::fs::write(
        task_root.path().join("tenant.toml"),
        "[tenant]\ndisplay_name = 5\n",
    )
    .unwrap();
    let api = Arc::new(RuntimeApi::default());
    let addr = serve(api.clone()).await;
    let child = bootstrap(task_root.path(), addr, "unused");
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("bootstrap exits")
        .unwrap();
    assert!(!output.status.success());
    let posted = api.posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].kind, "init-error");
    assert_eq!(posted[0].error_type.as_deref(), Some("Runtime.InitError"));
    let message = posted[0].body["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("tenant.toml:2:16: `tenant.display_name`: expected a string"),
        "{message}"
    );
    assert_eq!(*api.polls.lock().unwrap(), 0, "never polled for work");
}

/// Lambda's Amazon Linux 2023 has glibc 2.34: a bootstrap that needs a newer
/// symbol would not start there. (The packaging step runs the same check on
/// the release build.)
#[test]
fn bootstrap_needs_no_glibc_newer_than_2_34() {
    let newest = apifactory::artifact::newest_glibc(&bin_path("bootstrap"))
        .unwrap()
        .expect("dynamically linked against glibc");
    assert!(
        newest <= apifactory::artifact::LAMBDA_GLIBC,
        "bootstrap needs {newest}"
    );
    apifactory::artifact::check_runs_on_lambda(&bin_path("bootstrap")).unwrap();
}
