//! The benchmark's Lambda harness: a Runtime API server that starts a
//! function's executable many times, the way Lambda does, and measures it.
//!
//!   bench-lambda --moto URL --task-root DIR --events DIR \
//!       --subject NAME=COMMAND [--subject ...] [--spawns N] [--warm-spawns W] \
//!       [--invocations M]
//!
//! For every subject (`COMMAND` is split on spaces: `bootstrap`, or
//! `node hello.js`; leading `NAME=value` words go to its environment), N
//! times: spawn it with Lambda's environment, time the
//! spawn to its first `GET /runtime/invocation/next` (init), and read its
//! peak RSS (`VmHWM` in `/proc/<pid>/status`) while that poll waits. Each
//! spawn then gets a GET-by-id event, timed between the moment the event
//! is handed out and the moment its response arrives (the first
//! invocation: it opens the connection to DynamoDB; init plus it is the
//! cold start). The first W spawns then get M more, one at a time, then M
//! events for a route the function refuses without reading its store;
//! their peak RSS is read again after that.
//!
//! Before that it creates the subjects' DynamoDB table on moto (the AWS
//! target's own `create_table`), adds the item through the runtime's `Api`
//! (fixture `01-add-account.json`), and times M `GetItem`s of that item
//! straight from the SDK: what moto itself costs.
//!
//! Prints one JSON document on stdout.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use runtime::dynamo::DynamoStore;
use runtime::{Api, Tenant};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

const TABLE_PREFIX: &str = "apifactory-bench-";

fn fail(message: &str) -> ! {
    eprintln!("bench-lambda: {message}");
    std::process::exit(2)
}

/// Where the time an event took, and the status it got, are sent.
type Reply = oneshot::Sender<(Duration, u16)>;

/// The session of the one function process currently running.
#[derive(Default)]
struct Session {
    first_poll: Option<oneshot::Sender<Instant>>,
    /// Events to hand out, each with where to send the response time.
    events: Option<mpsc::Receiver<(Value, Reply)>>,
    /// Handed out, not answered yet: request id, when it was handed out.
    waiting: VecDeque<(String, Instant, Reply)>,
    counter: u64,
}

type Shared = Arc<Mutex<Session>>;

async fn next(State(s): State<Shared>) -> axum::response::Response {
    let (first, rx) = {
        let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
        (s.first_poll.take(), s.events.take())
    };
    if let Some(first) = first {
        let _ = first.send(Instant::now());
    }
    let Some(mut rx) = rx else {
        // Another poll is already waiting (never happens with one process).
        std::future::pending::<()>().await;
        unreachable!()
    };
    let Some((event, reply)) = rx.recv().await else {
        std::future::pending::<()>().await;
        unreachable!()
    };
    let id = {
        let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
        g.counter += 1;
        let id = format!("bench-{}", g.counter);
        g.events = Some(rx);
        g.waiting.push_back((id.clone(), Instant::now(), reply));
        id
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + 10_000)
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    let set = |h: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(&mut headers, "lambda-runtime-aws-request-id", &id);
    set(
        &mut headers,
        "lambda-runtime-deadline-ms",
        &deadline.to_string(),
    );
    set(
        &mut headers,
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:apifactory-bench-get",
    );
    set(
        &mut headers,
        "lambda-runtime-trace-id",
        "Root=1-5e1b4151-5ac6c58f5cb8ce4d3f9c1d23;Parent=5e1b4151;Sampled=0",
    );
    set(&mut headers, "content-type", "application/json");
    // Stamp the hand-out as late as possible: just before the body goes.
    {
        let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = g.waiting.back_mut() {
            w.1 = Instant::now();
        }
    }
    (headers, event.to_string()).into_response()
}

fn finish(s: &Shared, id: &str, body: &Bytes) {
    let at = Instant::now();
    let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pos) = g.waiting.iter().position(|w| w.0 == id)
        && let Some((_, handed, reply)) = g.waiting.remove(pos)
    {
        let status = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["statusCode"].as_u64())
            .unwrap_or(0) as u16;
        let _ = reply.send((at - handed, status));
    }
}

async fn respond(
    State(s): State<Shared>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> &'static str {
    finish(&s, &id, &body);
    "{}"
}

async fn error(State(s): State<Shared>, UrlPath(id): UrlPath<String>, body: Bytes) -> &'static str {
    finish(&s, &id, &Bytes::from_static(b"{\"statusCode\":0}"));
    let _ = body;
    "{}"
}

async fn init_error(body: Bytes) -> &'static str {
    eprintln!(
        "bench-lambda: the function reported an init error: {}",
        String::from_utf8_lossy(&body)
    );
    "{}"
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn args_all(args: &[String], name: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].clone())
        .collect()
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
    serde_json::from_str(&text).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())))
}

/// `VmHWM` and `VmRSS` of a process, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn stats_us(mut v: Vec<Duration>) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort();
    let pick = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i.min(v.len() - 1)].as_secs_f64() * 1e6
    };
    json!({
        "n": v.len(),
        "min": pick(0.0),
        "p50": pick(0.5),
        "p90": pick(0.9),
        "p99": pick(0.99),
        "max": pick(1.0),
    })
}

fn stats_kb(mut v: Vec<u64>) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_unstable();
    json!({ "n": v.len(), "min": v[0], "p50": v[v.len() / 2], "max": v[v.len() - 1] })
}

struct Subject {
    name: String,
    /// Set in its environment on top of Lambda's.
    env: Vec<(String, String)>,
    argv: Vec<String>,
}

fn spawn(
    subject: &Subject,
    runtime_api: SocketAddr,
    task_root: &Path,
    moto: &str,
    table: &str,
) -> std::io::Result<Child> {
    let mut cmd = Command::new(&subject.argv[0]);
    cmd.args(&subject.argv[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
        .env("LAMBDA_TASK_ROOT", task_root)
        .env("AWS_LAMBDA_FUNCTION_NAME", "apifactory-bench-get")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", moto)
        .env("APIFACTORY_TABLE", table)
        .env("APIFACTORY_OPERATION", "get")
        .envs(subject.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let moto = arg(&args, "--moto").unwrap_or_else(|| fail("--moto URL is required"));
    let task_root =
        PathBuf::from(arg(&args, "--task-root").unwrap_or_else(|| fail("--task-root DIR")));
    let events = PathBuf::from(arg(&args, "--events").unwrap_or_else(|| fail("--events DIR")));
    let num = |name: &str, default: usize| {
        arg(&args, name)
            .map(|v| v.parse().unwrap_or_else(|e| fail(&format!("{name}: {e}"))))
            .unwrap_or(default)
    };
    let spawns = num("--spawns", 30);
    let warm_spawns = num("--warm-spawns", 3).min(spawns);
    let invocations = num("--invocations", 200);
    let subjects: Vec<Subject> = args_all(&args, "--subject")
        .into_iter()
        .map(|s| {
            let (name, cmd) = s
                .split_once('=')
                .unwrap_or_else(|| fail("--subject NAME=COMMAND"));
            let mut words = cmd.split(' ').filter(|a| !a.is_empty()).peekable();
            let mut env = Vec::new();
            while let Some((k, v)) = words.peek().and_then(|w| w.split_once('='))
                && !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                env.push((k.to_owned(), v.to_owned()));
                words.next();
            }
            let argv: Vec<String> = words.map(str::to_owned).collect();
            if argv.is_empty() {
                fail(&format!("--subject {name}: no command"));
            }
            Subject {
                name: name.to_owned(),
                env,
                argv,
            }
        })
        .collect();
    if subjects.is_empty() {
        fail("at least one --subject NAME=COMMAND");
    }

    // The table and the item, through the runtime's own code.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto)
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let tenant = Tenant::load(&task_root.join("tenant.toml"))
        .unwrap_or_else(|e| fail(&format!("tenant.toml: {e}")));
    let table = format!("{TABLE_PREFIX}{}", std::process::id());
    apifactory::aws::table::create_table(
        &client,
        &apifactory::aws::Pacer::new(apifactory::aws::Pace::Off),
        &table,
        &runtime::schema::TableSchema::of(&tenant.collection),
        &Default::default(),
    )
    .await
    .unwrap_or_else(|e| fail(&format!("create_table: {e}")));
    let add_event = read_json(&events.join("01-add-account.json"));
    let get_event = read_json(&events.join("03-get-account.json"));
    let id = get_event["pathParameters"]["id"]
        .as_str()
        .unwrap_or_else(|| fail("03-get-account.json has no pathParameters.id"))
        .to_owned();
    let store = DynamoStore::new(client.clone(), table.clone(), &tenant.collection);
    let api = Api::new(Arc::new(tenant.clone()), store);
    let added = api
        .handle(
            serde_json::from_value(add_event)
                .unwrap_or_else(|e| fail(&format!("01-add-account.json: {e}"))),
        )
        .await;
    if added.status_code != 201 {
        fail(&format!("adding the item gave {}", added.status_code));
    }
    let got = api
        .handle(serde_json::from_value(get_event.clone()).unwrap_or_else(|e| fail(&e.to_string())))
        .await;
    if got.status_code != 200 {
        fail(&format!("getting the item gave {}", got.status_code));
    }
    // A route the function refuses before reading its store.
    let mut refused_event = get_event.clone();
    refused_event["resource"] = json!("/nothing-here");
    refused_event["path"] = json!("/nothing-here");
    refused_event["requestContext"]["resourcePath"] = json!("/nothing-here");
    refused_event["pathParameters"] = Value::Null;

    // What moto costs: GetItem of the same item straight from the SDK.
    let mut moto_get = Vec::with_capacity(invocations);
    for _ in 0..invocations {
        let t = Instant::now();
        let r = client
            .get_item()
            .table_name(&table)
            .key(&tenant.collection.key, AttributeValue::S(id.clone()))
            .consistent_read(true)
            .send()
            .await;
        if r.is_err() {
            fail(&format!("GetItem: {r:?}"));
        }
        moto_get.push(t.elapsed());
    }

    // The Runtime API.
    let session: Shared = Arc::default();
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(Arc::clone(&session));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut results = serde_json::Map::new();
    for subject in &subjects {
        let mut init = Vec::new();
        let mut hwm_init = Vec::new();
        let mut rss_init = Vec::new();
        let mut first = Vec::new();
        let mut cold = Vec::new();
        let mut warm_get = Vec::new();
        let mut warm_refused = Vec::new();
        let mut hwm_after = Vec::new();
        let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
        for i in 0..spawns {
            let (first_tx, first_rx) = oneshot::channel();
            let (events_tx, events_rx) = mpsc::channel(1);
            {
                let mut s = session.lock().unwrap_or_else(|e| e.into_inner());
                *s = Session {
                    first_poll: Some(first_tx),
                    events: Some(events_rx),
                    ..Session::default()
                };
            }
            let started = Instant::now();
            let mut child = spawn(subject, addr, &task_root, &moto, &table)
                .unwrap_or_else(|e| fail(&format!("{}: cannot start: {e}", subject.name)));
            let polled = match tokio::time::timeout(Duration::from_secs(20), first_rx).await {
                Ok(Ok(at)) => at,
                _ => {
                    let _ = child.kill();
                    let status = child.wait();
                    fail(&format!(
                        "{}: no poll for work within 20 s ({status:?})",
                        subject.name
                    ));
                }
            };
            init.push(polled - started);
            // It now waits in `next`: its memory after init.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let (hwm, rss) = memory(child.id());
            hwm_init.push(hwm);
            rss_init.push(rss);

            let mut invoke = async |event: &Value| {
                let (tx, rx) = oneshot::channel();
                if events_tx.send((event.clone(), tx)).await.is_err() {
                    fail("the Runtime API stopped");
                }
                match tokio::time::timeout(Duration::from_secs(20), rx).await {
                    Ok(Ok((took, status))) => {
                        *statuses.entry(status).or_default() += 1;
                        took
                    }
                    _ => fail(&format!("{}: no response within 20 s", subject.name)),
                }
            };
            // Every spawn's first invocation: whatever init left for later
            // (a client made on first use) shows here, and init plus it is
            // the cold start.
            let took = invoke(&get_event).await;
            first.push(took);
            cold.push(polled - started + took);
            if i < warm_spawns {
                for _ in 0..invocations {
                    warm_get.push(invoke(&get_event).await);
                }
                for _ in 0..invocations {
                    warm_refused.push(invoke(&refused_event).await);
                }
                hwm_after.push(memory(child.id()).0);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        results.insert(
            subject.name.clone(),
            json!({
                "init_us": stats_us(init),
                "hwm_after_init_kb": stats_kb(hwm_init),
                "rss_after_init_kb": stats_kb(rss_init),
                "first_invocation_us": stats_us(first),
                "cold_us": stats_us(cold),
                "warm_get_us": stats_us(warm_get),
                "warm_refused_us": stats_us(warm_refused),
                "hwm_after_invocations_kb": stats_kb(hwm_after),
                "statuses": statuses,
            }),
        );
    }
    let _ = client.delete_table().table_name(&table).send().await;
    let out = json!({
        "spawns": spawns,
        "warm_spawns": warm_spawns,
        "invocations": invocations,
        "moto_get_item_us": stats_us(moto_get),
        "subjects": results,
    });
    println!("{out:#}");
}
