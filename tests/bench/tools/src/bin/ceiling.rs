//! The benchmark's ceiling: the least a server can do to answer each of
//! the benchmark's requests. axum on tokio (the HTTP stack the local
//! gateway uses), the same API key check as the gateway (SHA-256 of
//! `x-api-key` looked up among the known keys' hashes), and each method's
//! own work done in memory: a GET answers an item's stored bytes and ETag;
//! a search looks the email up in an index and answers a page of items; a
//! PUT or POST parses the body's JSON, checks it against the benchmark
//! tenant's fields (`tests/bench/run`: `bench_tenant`), keeps the item in a
//! map under a new revision and answers it with its ETag (and, for a POST,
//! 201 with a `Location`). Statuses, headers and bodies have the gateway's
//! shapes. No routing by host, no throttling, no quota, no proxy event, no
//! durable store, no logs, no request id: what the gateway does beyond this
//! is what its fidelity to API Gateway and Lambda costs.
//!
//!   bench-ceiling --keys FILE --item FILE --etag ETAG [--listen ADDR]
//!
//! `--keys`: one key value per line. `--item`: an item's JSON as the
//! gateway answers it, served at `GET /prod/accounts/{id}` with `--etag`
//! (more items come by POST, as `tests/bench/seed.py` sends them).
//! Prints `listening on http://ADDR` once it accepts connections.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `DEFAULT_LIMIT` and `MAX_LIMIT` of the runtime's search.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

struct Stored {
    etag: HeaderValue,
    body: Bytes,
    email: String,
    created: String,
}

#[derive(Default)]
struct Items {
    by_id: HashMap<String, Stored>,
    /// The email index a search reads: ids in order, as the gateway pages.
    by_email: HashMap<String, BTreeSet<String>>,
}

impl Items {
    fn put(&mut self, id: String, stored: Stored) {
        // A PUT that keeps the email (the benchmark's) leaves the index be.
        let current = self.by_id.get(&id);
        if current.is_none_or(|old| old.email != stored.email) {
            let old = current.map(|old| old.email.clone());
            if let Some(ids) = old.and_then(|email| self.by_email.get_mut(&email)) {
                ids.remove(&id);
            }
            self.by_email
                .entry(stored.email.clone())
                .or_default()
                .insert(id.clone());
        }
        self.by_id.insert(id, stored);
    }
}

struct Ceiling {
    keys: HashSet<[u8; 32]>,
    items: RwLock<Items>,
    /// Feeds the revisions' and ids' random part.
    seed: AtomicU64,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn fail(message: &str) -> ! {
    eprintln!("bench-ceiling: {message}");
    std::process::exit(2)
}

fn authorised(c: &Ceiling, headers: &HeaderMap) -> bool {
    headers
        .get("x-api-key")
        .map(|v| {
            c.keys
                .contains(&<[u8; 32]>::from(Sha256::digest(v.as_bytes())))
        })
        .unwrap_or(false)
}

fn forbidden() -> Response {
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"message":"Forbidden"}"#))
        .unwrap_or_default()
}

/// A problem answer (RFC 9457) shaped like the runtime's.
fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or(""),
        "status": status.as_u16(),
        "detail": detail,
    });
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/problem+json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

fn item_response(status: StatusCode, stored: &Stored, location: Option<&str>) -> Response {
    let mut r = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ETAG, stored.etag.clone());
    if let Some(location) = location {
        r = r.header(header::LOCATION, location);
    }
    r.body(Body::from(stored.body.clone())).unwrap_or_default()
}

/// splitmix64: a new pseudo-random word for each call, without a lock.
fn random(c: &Ceiling) -> u64 {
    let mut z = c
        .seed
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A ULID (48 bits of milliseconds, 80 random), as the gateway makes ids
/// and revisions.
fn ulid(c: &Ceiling, now_ms: u64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let value = (u128::from(now_ms & 0xffff_ffff_ffff) << 80)
        | (u128::from(random(c)) << 16)
        | u128::from(random(c) & 0xffff);
    (0..26)
        .map(|i| char::from(ALPHABET[((value >> (125 - i * 5)) & 31) as usize]))
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (days to a civil
/// date: Howard Hinnant's `civil_from_days`).
fn timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn now() -> (u64, u64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.as_millis() as u64)
}

/// The body of a PUT or POST checked against the benchmark tenant's
/// fields; `path_id` is the PUT's. Returns the document without `id` and
/// `created` (made by the server) and the id the body names.
fn checked(
    body: &[u8],
    path_id: Option<&str>,
) -> Result<(Map<String, Value>, Option<String>), String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Value::Object(doc) = value else {
        return Err("the body must be a JSON object".into());
    };
    let mut out = Map::new();
    let mut id = None;
    for (name, value) in doc {
        let text = || match &value {
            Value::String(s) => Ok(s.as_str()),
            _ => Err(format!("`{name}` must be a string")),
        };
        match name.as_str() {
            "id" => {
                let given = text()?;
                if path_id.is_some_and(|p| p != given) {
                    return Err(format!(
                        "`id` must match the id in the path or be left out, found {given:?}"
                    ));
                }
                id = Some(given.to_owned());
                continue;
            }
            "created" => continue,
            _ if value.is_null() => continue,
            "name" if text()?.chars().count() > 120 => return Err("`name` is too long".into()),
            "company" if text()?.chars().count() > 200 => {
                return Err("`company` is too long".into());
            }
            "email" => {
                let s = text()?;
                let ok = s.len() <= 254
                    && s.split_once('@').is_some_and(|(local, domain)| {
                        !local.is_empty()
                            && domain.contains('.')
                            && !s.contains(char::is_whitespace)
                    });
                if !ok {
                    return Err(format!("`email` must be an email address, found {s:?}"));
                }
            }
            "plan" if !matches!(text()?, "free" | "pro" | "enterprise") => {
                return Err("`plan` must be one of \"free\", \"pro\", \"enterprise\"".into());
            }
            "name" | "company" | "plan" => {}
            _ => return Err(format!("`{name}` is not a field of accounts")),
        }
        out.insert(name, value);
    }
    for required in ["name", "email"] {
        if !out.contains_key(required) {
            return Err(format!("`{required}` is required"));
        }
    }
    Ok((out, id))
}

/// The item as the gateway answers it: the id, the fields as sent, then
/// what the server adds.
fn stored(c: &Ceiling, id: &str, doc: Map<String, Value>, created: String, now_ms: u64) -> Stored {
    let email = doc
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut item = Map::with_capacity(doc.len() + 3);
    item.insert("id".into(), Value::String(id.to_owned()));
    let has_plan = doc.contains_key("plan");
    item.extend(doc);
    item.insert("created".into(), Value::String(created.clone()));
    if !has_plan {
        item.insert("plan".into(), Value::String("free".into()));
    }
    let body = serde_json::to_vec(&Value::Object(item)).unwrap_or_default();
    let etag = HeaderValue::from_str(&format!("\"{}\"", ulid(c, now_ms)))
        .unwrap_or(HeaderValue::from_static("\"\""));
    Stored {
        etag,
        body: Bytes::from(body),
        email,
        created,
    }
}

async fn get_item(
    State(c): State<Arc<Ceiling>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&c, &headers) {
        return forbidden();
    }
    let items = c.items.read().unwrap_or_else(|e| e.into_inner());
    match items.by_id.get(&id) {
        Some(stored) => item_response(StatusCode::OK, stored, None),
        None => problem(StatusCode::NOT_FOUND, &format!("no item with id {id:?}")),
    }
}

async fn search(
    State(c): State<Arc<Ceiling>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&c, &headers) {
        return forbidden();
    }
    let mut email = None;
    let mut limit = DEFAULT_LIMIT;
    for (name, value) in params {
        match name.as_str() {
            "email" => email = Some(value),
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => return problem(StatusCode::BAD_REQUEST, "`limit` must be 1 to 100"),
            },
            _ => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    &format!("`{name}` is not a field this ceiling searches; filter on email"),
                );
            }
        }
    }
    let Some(email) = email else {
        return problem(StatusCode::BAD_REQUEST, "filter on email");
    };
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(b"{\"items\":[");
    let items = c.items.read().unwrap_or_else(|e| e.into_inner());
    let ids = items.by_email.get(&email);
    let mut last = None;
    let mut more = false;
    for (n, id) in ids.into_iter().flatten().enumerate() {
        if n == limit {
            more = true;
            break;
        }
        if let Some(stored) = items.by_id.get(id) {
            if last.is_some() {
                body.push(b',');
            }
            body.extend_from_slice(&stored.body);
            last = Some(id);
        }
    }
    body.extend_from_slice(b"],\"next\":");
    match last.filter(|_| more) {
        // An opaque cursor where the gateway signs one; only its shape
        // matters here.
        Some(id) => body.extend_from_slice(Value::String(id.clone()).to_string().as_bytes()),
        None => body.extend_from_slice(b"null"),
    }
    drop(items);
    body.push(b'}');
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

async fn put_item(
    State(c): State<Arc<Ceiling>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorised(&c, &headers) {
        return forbidden();
    }
    let doc = match checked(&body, Some(&id)) {
        Ok((doc, _)) => doc,
        Err(detail) => return problem(StatusCode::BAD_REQUEST, &detail),
    };
    let if_match = headers.get(header::IF_MATCH).map(HeaderValue::as_bytes);
    let (_, now_ms) = now();
    let mut items = c.items.write().unwrap_or_else(|e| e.into_inner());
    let Some(current) = items.by_id.get(&id) else {
        return problem(StatusCode::NOT_FOUND, &format!("no item with id {id:?}"));
    };
    let matches = match if_match {
        None | Some(b"*") => true,
        Some(tags) => tags
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii() == current.etag.as_bytes()),
    };
    if !matches {
        return problem(
            StatusCode::PRECONDITION_FAILED,
            "the item has changed since that ETag was read; GET it again",
        );
    }
    let created = current.created.clone();
    let new = stored(&c, &id, doc, created, now_ms);
    let response = item_response(StatusCode::OK, &new, None);
    items.put(id, new);
    response
}

async fn post_item(State(c): State<Arc<Ceiling>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorised(&c, &headers) {
        return forbidden();
    }
    let (doc, given) = match checked(&body, None) {
        Ok(checked) => checked,
        Err(detail) => return problem(StatusCode::BAD_REQUEST, &detail),
    };
    let (secs, now_ms) = now();
    let id = given.unwrap_or_else(|| ulid(&c, now_ms));
    let new = stored(&c, &id, doc, timestamp(secs), now_ms);
    let location = format!("/prod/accounts/{id}");
    let mut items = c.items.write().unwrap_or_else(|e| e.into_inner());
    if items.by_id.contains_key(&id) {
        return problem(
            StatusCode::CONFLICT,
            &format!("an item with id {id:?} already exists"),
        );
    }
    let response = item_response(StatusCode::CREATED, &new, Some(&location));
    items.put(id, new);
    response
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen: SocketAddr = arg(&args, "--listen")
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .unwrap_or_else(|e| fail(&format!("--listen: {e}")));
    let keys_file = arg(&args, "--keys").unwrap_or_else(|| fail("--keys FILE is required"));
    let item_file = arg(&args, "--item").unwrap_or_else(|| fail("--item FILE is required"));
    let etag = arg(&args, "--etag").unwrap_or_else(|| fail("--etag ETAG is required"));

    let keys = std::fs::read_to_string(&keys_file)
        .unwrap_or_else(|e| fail(&format!("{keys_file}: {e}")))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|k| <[u8; 32]>::from(Sha256::digest(k.as_bytes())))
        .collect::<HashSet<_>>();
    let item = std::fs::read(&item_file).unwrap_or_else(|e| fail(&format!("{item_file}: {e}")));
    let parsed: Value = serde_json::from_slice(&item)
        .unwrap_or_else(|e| fail(&format!("{item_file} is not JSON: {e}")));
    let field = |name: &str| {
        parsed[name]
            .as_str()
            .unwrap_or_else(|| fail(&format!("the item has no string `{name}`")))
            .to_owned()
    };
    let id = field("id");
    let first = Stored {
        etag: HeaderValue::from_str(&etag).unwrap_or_else(|e| fail(&format!("--etag: {e}"))),
        body: Bytes::from(item),
        email: field("email"),
        created: field("created"),
    };
    let mut items = Items::default();
    items.put(id, first);
    let ceiling = Arc::new(Ceiling {
        keys,
        items: RwLock::new(items),
        seed: AtomicU64::new(now().1),
    });

    let app = Router::new()
        .route("/prod/accounts", get(search).post(post_item))
        .route("/prod/accounts/{id}", get(get_item).put(put_item))
        .with_state(ceiling);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on {listen}: {e}")));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()));
    // As the gateway does.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    println!("listening on http://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if let Err(e) = axum::serve(listener, app).await {
        fail(&e.to_string());
    }
}
