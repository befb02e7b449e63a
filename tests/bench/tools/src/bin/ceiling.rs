//! The benchmark's ceiling: the least a server can do to answer the
//! benchmark's GET by id. axum on tokio (the HTTP stack the local gateway
//! uses), the same API key check as the gateway (SHA-256 of `x-api-key`
//! looked up among the known keys' hashes), and the item answered from
//! memory with its ETag. No routing by host, no throttling, no quota, no
//! event, no store, no logs.
//!
//!   bench-ceiling --keys FILE --item FILE --etag ETAG [--listen ADDR]
//!
//! `--keys`: one key value per line. `--item`: the item's JSON (its `id`
//! is the path segment it is served at: `GET /prod/accounts/{id}`).
//! Prints `listening on http://ADDR` once it accepts connections.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use sha2::{Digest, Sha256};

struct Ceiling {
    keys: HashSet<[u8; 32]>,
    items: HashMap<String, (HeaderValue, Bytes)>,
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

async fn get_item(
    State(c): State<Arc<Ceiling>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let authorised = headers
        .get("x-api-key")
        .map(|v| {
            c.keys
                .contains(&<[u8; 32]>::from(Sha256::digest(v.as_bytes())))
        })
        .unwrap_or(false);
    if !authorised {
        return Response::builder()
            .status(StatusCode::FORBIDDEN)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"message":"Forbidden"}"#))
            .unwrap_or_default();
    }
    match c.items.get(&id) {
        Some((etag, body)) => Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ETAG, etag.clone())
            .body(Body::from(body.clone()))
            .unwrap_or_default(),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "application/problem+json")
            .body(Body::from(r#"{"title":"Not Found","status":404}"#))
            .unwrap_or_default(),
    }
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
    let parsed: serde_json::Value = serde_json::from_slice(&item)
        .unwrap_or_else(|e| fail(&format!("{item_file} is not JSON: {e}")));
    let id = parsed["id"]
        .as_str()
        .unwrap_or_else(|| fail("the item has no string `id`"))
        .to_owned();
    let etag = HeaderValue::from_str(&etag).unwrap_or_else(|e| fail(&format!("--etag: {e}")));
    let ceiling = Arc::new(Ceiling {
        keys,
        items: HashMap::from([(id, (etag, Bytes::from(item)))]),
    });

    let app = Router::new()
        .route("/prod/accounts/{id}", get(get_item))
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
