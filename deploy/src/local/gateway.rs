//! The local API Gateway: serves every tenant deployed to the local target
//! the way API Gateway and Lambda serve them on AWS.
//!
//! Per request, in API Gateway's order; `Gateway::handle` reads through
//! the stages top to bottom, each in a module of its own:
//!
//! 0. **Size of the request head**: more than 10,240 bytes of request line
//!    and header values (API Gateway's quota for REST APIs) is 431
//!    `Request Header Fields Too Large`, before anything else is looked at.
//! 1. **Routing** (`route`):
//!    `/restapis/{tenant}/{stage}/_user_request_/{rest}` on any host; a
//!    tenant's custom domain (and base path); or `{tenant}.localhost` /
//!    `{tenant}.execute-api.localhost` with `/{stage}/{rest}`. Then
//!    `/{collection}` or `/{collection}/{id}` with a method whose function
//!    is deployed. Anything else is 403 `Missing Authentication Token`,
//!    but a `GET` or `HEAD` of `/docs` there: the tenant's developer
//!    portal, served without a key or a function, as API Gateway's mock
//!    integration serves it on AWS (looked for only once no method
//!    matched, so the API's own routes pay nothing for it).
//! 2. **API key** (`x-api-key`; `admit`): looked up by its SHA-256;
//!    missing, unknown, disabled, expired or another tenant's is 403
//!    `Forbidden`.
//! 3. **Throttling** (`admit`): a token bucket per key (the usage plan's
//!    rate and burst), then the tenant's API-wide one when it sets
//!    `api_rate` (the stage's default method throttling, shared by every
//!    caller), then the account's (10,000 rps, burst 5,000); 429 `Too Many
//!    Requests`. Buckets outlive reloads.
//! 4. **Quota** (`admit`): counted per key and period (UTC boundaries).
//!    The count is leased from the database in blocks reserved *before*
//!    they are served, so no request is let through that is not already
//!    counted durably: a crash or `SIGKILL` can over-count by at most one
//!    block (`max(1, min(1000, limit / 100))`, so 1 % of the limit at
//!    most), and never lets a client past its limit. 429 `Limit Exceeded`.
//! 5. **Event** (`event`): the Lambda proxy event (v1). Bodies over
//!    10 MB are 413 `Request Too Long`; so is an event (the body with
//!    everything around it, as JSON) past Lambda's synchronous payload
//!    limit, as API Gateway relays Lambda's refusal.
//! 6. **Integration** (`invoke`): the event to the tenant's
//!    [`runtime::Api`], in the request's own task, bounded by the
//!    function's timeout (504 `Endpoint request timed out`); a crashed
//!    function or a malformed response is 502 `Internal server error`.
//! 7. **Logs** (`logs`): an access line per request and START/END/REPORT
//!    lines per invocation, JSON lines in `logs/<tenant>.log`, written by
//!    a background thread. Key values are never logged.
//! 8. **Usage** (`usage`): the request's figures added to its key's for
//!    the minute (statuses, refusals, bytes, latency, function time, the
//!    table's request units), written to the database in the background
//!    and rolled up to hours and days (`apifactory usage` reads them).
//!
//! The deployed state (`live`) is re-read whenever its generation changes
//! (polled every 200 ms), so deploys, key changes and removals made by
//! another process take effect while serving. The refusals of every stage
//! are API Gateway's own responses (`error`).

mod admit;
mod error;
mod event;
mod fast_hash;
mod invoke;
mod live;
mod logs;
mod route;
#[cfg(test)]
mod tests;
mod usage;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::serve::ListenerExt;
use governor::DefaultDirectRateLimiter;
use http::header::{HeaderName, HeaderValue};
use http::{StatusCode, request::Parts};

use crate::local::state::LocalState;
use admit::{ACCOUNT_BURST, ACCOUNT_RATE, key_limiter};
use error::GatewayError;
use event::{BodyError, EventParts, event, event_too_large, read_body};
pub use event::{MAX_INVOCATION_PAYLOAD, MAX_PAYLOAD};
use invoke::Failure;
use live::{AbortOnDrop, Live, TenantRt, background};

/// API Gateway's limit on the request line and header values together
/// (REST APIs; the quota cannot be raised).
pub const MAX_REQUEST_HEAD: usize = 10_240;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");

/// The local API Gateway. Cheap to clone: every clone serves the same
/// tenants with the same buckets, quotas and logs.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    state: LocalState,
    live: RwLock<Arc<Live>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    account: DefaultDirectRateLimiter,
    logs: logs::Logs,
    /// `None` when usage is not recorded.
    usage: Option<usage::Recorder>,
    /// Mixed into every tenant's cursor-signing key.
    cursor_secret: Vec<u8>,
}

/// How a gateway runs; the default is API Gateway's.
#[derive(Debug, Clone)]
pub struct Config {
    /// The account-wide bucket: API Gateway's default is 10,000 rps with
    /// a burst of 5,000. Benchmarks raise it so as not to measure it.
    pub account_rate: f64,
    pub account_burst: u32,
    /// Whether usage is recorded (on unless measuring what it costs).
    pub record_usage: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            account_rate: f64::from(ACCOUNT_RATE),
            account_burst: ACCOUNT_BURST,
            record_usage: true,
        }
    }
}

impl Gateway {
    /// Loads the first snapshot from the state and prepares every tenant's
    /// runtime.
    pub async fn new(state: LocalState) -> anyhow::Result<Gateway> {
        Gateway::with_config(state, Config::default()).await
    }

    /// Like [`Gateway::new`], configured.
    pub async fn with_config(state: LocalState, config: Config) -> anyhow::Result<Gateway> {
        let account = key_limiter(config.account_rate, config.account_burst);
        let logs =
            logs::Logs::start().map_err(|e| anyhow::anyhow!("cannot start the log writer: {e}"))?;
        let cursor_secret = state.cursor_secret().await?;
        let gateway = Gateway {
            inner: Arc::new(Inner {
                cursor_secret,
                state,
                live: RwLock::new(Arc::new(Live::default())),
                reloading: tokio::sync::Mutex::new(()),
                account,
                logs,
                usage: config.record_usage.then(usage::Recorder::default),
            }),
        };
        gateway.reload().await?;
        Ok(gateway)
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests,
    /// flushes logs and last-used times, and returns.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = self.router();
        self.serve_app(listener, app, shutdown).await
    }

    /// Like [`Gateway::serve`], with `beside`'s routes answered first (the
    /// console's, under `/_console`) and every other request the
    /// gateway's, as before.
    pub async fn serve_beside(
        self,
        listener: tokio::net::TcpListener,
        beside: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = beside.merge(self.router());
        self.serve_app(listener, app, shutdown).await
    }

    async fn serve_app(
        self,
        listener: tokio::net::TcpListener,
        app: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let background = AbortOnDrop(tokio::spawn(background(Arc::downgrade(&self.inner))));
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        drop(background);
        self.flush().await;
        served.map_err(|e| anyhow::anyhow!("the gateway stopped: {e}"))
    }

    /// An axum router answering every request (for tests and embedding).
    /// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`
    /// to have the client's address in events and logs.
    pub fn router(&self) -> Router {
        let gateway = self.clone();
        Router::new().fallback(move |req: Request| {
            let gateway = gateway.clone();
            // Boxed: the request's future is large, and axum's layers move
            // it several times on its way to being polled (each move a
            // copy of all of it; a profile showed them).
            async move { Box::pin(gateway.handle(req)).await }
        })
    }

    /// Writes out the queued log lines, the recorded usage and the
    /// last-used times of keys.
    pub async fn flush(&self) {
        self.touch_keys().await;
        self.flush_usage().await;
        self.inner.logs.flush().await;
    }

    /// Writes the usage recorded so far to the database; what cannot be
    /// written is kept for the next time.
    pub(super) async fn flush_usage(&self) {
        let Some(recorder) = &self.inner.usage else {
            return;
        };
        let rows = recorder.take();
        if !rows.is_empty()
            && let Err(e) = self.inner.state.record_usage(rows.clone()).await
        {
            tracing::warn!(error = %e, "cannot record usage; will retry");
            recorder.restore(rows);
        }
        // What each key served of its quota (the enforced count runs a
        // block ahead): a lease held by a request is taken next time.
        let served: Vec<(String, i64, u64)> = self
            .live()
            .keys
            .values()
            .filter_map(|k| {
                let (start, used) = k.lease.try_lock().ok()?.unrecorded()?;
                Some((k.record.id.clone(), start, used))
            })
            .collect();
        if !served.is_empty()
            && let Err(e) = self.inner.state.quota_served_upto(served).await
        {
            tracing::warn!(error = %e, "cannot record the quota served");
        }
    }

    /// Answers one request. Never panics, never fails: every problem is a
    /// response.
    async fn handle(&self, req: Request) -> Response {
        let started = Instant::now();
        let now = SystemTime::now();
        let request_id = request_id();
        let request_id_header = HeaderValue::from_str(&request_id)
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let (mut parts, body) = req.into_parts();

        // 0. The size of the request head.
        if request_head_size(&parts) > MAX_REQUEST_HEAD {
            return GatewayError::HeadersTooLarge.response(&request_id_header);
        }

        // 1. Routing.
        let live = self.live();
        let host = route::host(&parts);
        let full_path = parts.uri.path();
        let Some(routed) = route::resolve(&live, host, full_path, &parts) else {
            if let Some(t) = route::docs(&live, host, full_path, &parts.method) {
                return self.docs(
                    &t,
                    &parts,
                    now,
                    started,
                    peer,
                    &request_id,
                    &request_id_header,
                );
            }
            return GatewayError::MissingAuthenticationToken.response(&request_id_header);
        };
        let t = Arc::clone(&routed.tenant);
        let mut exchange = Exchange {
            gateway: self,
            tenant: &t,
            request_id: &request_id,
            request_id_header: &request_id_header,
            now,
            started,
            peer,
            method: parts.method.as_str(),
            path: full_path,
            key_id: None,
            invocation: None,
            refusal: usage::Refusal::None,
            bytes_in: 0,
        };

        // A declared body length over the limit (stage 5) fails before
        // anything is read, the key included.
        if event::declared_too_long(&parts.headers) {
            return exchange.fail(GatewayError::RequestTooLong);
        }

        // 2. The API key.
        let Some((key, key_value)) = admit::key(&live, &parts.headers, &t, now) else {
            return exchange.fail(GatewayError::Forbidden);
        };
        let key_id = key.record.id.clone();
        exchange.key_id = Some(&key_id);

        // 3. Throttling.
        if self.throttled(&key, &t) {
            return exchange.fail(GatewayError::TooManyRequests);
        }

        // 4. The quota.
        if let Err(refused) = self.count(&key, &t, now).await {
            return exchange.fail(refused);
        }

        // 5. The body, then the event.
        let body = match read_body(body, MAX_PAYLOAD).await {
            Ok(body) => body,
            Err(BodyError::TooLong) => return exchange.fail(GatewayError::RequestTooLong),
            Err(BodyError::Read) => return exchange.fail(GatewayError::BadRequest),
        };
        exchange.bytes_in = body.len();
        // The event owns these; the headers they were read from move into
        // it whole.
        let (host, api_key) = (host.to_owned(), key_value.to_owned());
        let headers = std::mem::take(&mut parts.headers);
        let event = event(EventParts {
            parts: &parts,
            headers,
            routed: &routed,
            host,
            full_path,
            body,
            request_id: &request_id,
            now,
            peer,
            api_key,
            api_key_id: &key_id,
        });
        if event_too_large(&event) {
            return exchange.fail(GatewayError::InvocationTooLarge);
        }

        // 6. The integration; 7. the logs.
        let metered = self.inner.usage.is_some();
        let (converted, invocation) =
            invoke::call(&t, routed.op, &request_id, event, metered).await;
        exchange.invocation = Some(invocation);
        match converted {
            Ok((mut response, bytes)) => {
                response
                    .headers_mut()
                    .insert(REQUEST_ID.clone(), request_id_header.clone());
                exchange.log(response.status(), bytes);
                response
            }
            Err(Failure::Timeout) => exchange.fail(GatewayError::Timeout),
            Err(Failure::Crashed) => exchange.fail(GatewayError::BadGateway),
        }
    }
}

impl Gateway {
    /// The tenant's developer portal, as API Gateway's mock integration
    /// serves it on AWS: no key, no function, logged and counted like any
    /// request (without a key).
    #[allow(clippy::too_many_arguments)]
    fn docs(
        &self,
        t: &TenantRt,
        parts: &Parts,
        now: SystemTime,
        started: Instant,
        peer: Option<IpAddr>,
        request_id: &str,
        request_id_header: &HeaderValue,
    ) -> Response {
        let page = t.docs.clone().unwrap_or_default();
        let exchange = Exchange {
            gateway: self,
            tenant: t,
            request_id,
            request_id_header,
            now,
            started,
            peer,
            method: parts.method.as_str(),
            path: parts.uri.path(),
            key_id: None,
            invocation: None,
            refusal: usage::Refusal::None,
            bytes_in: 0,
        };
        exchange.log(StatusCode::OK, page.len());
        let mut response = Response::new(axum::body::Body::from(page));
        let h = response.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(REQUEST_ID.clone(), request_id_header.clone());
        response
    }
}

/// The bytes API Gateway counts against its request-head quota: the
/// request line and every header value.
fn request_head_size(parts: &Parts) -> usize {
    let target = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path().len(), |p| p.as_str().len());
    let line = parts.method.as_str().len() + 1 + target + " HTTP/1.1".len();
    parts
        .headers
        .values()
        .fold(line, |n, v| n.saturating_add(v.len()))
}

/// A request id shaped like a UUID (from a ULID, so time-ordered):
/// 8-4-4-4-12 lowercase hex digits.
fn request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let u = ulid::Ulid::new().0;
    let mut out = [b'-'; 36];
    // Digit by digit, most significant first, skipping the dashes
    // (`format!` cost more than the rest of making the id).
    let mut at = 0;
    for i in (0..32).rev() {
        if matches!(at, 8 | 13 | 18 | 23) {
            at += 1;
        }
        out[at] = HEX[((u >> (i * 4)) & 0xf) as usize];
        at += 1;
    }
    // ASCII, so this never falls back.
    std::str::from_utf8(&out)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// One request's trip through the gateway, for its response and logs.
struct Exchange<'a> {
    gateway: &'a Gateway,
    tenant: &'a TenantRt,
    request_id: &'a str,
    request_id_header: &'a HeaderValue,
    now: SystemTime,
    started: Instant,
    peer: Option<IpAddr>,
    method: &'a str,
    path: &'a str,
    key_id: Option<&'a str>,
    invocation: Option<logs::Invocation<'a>>,
    refusal: usage::Refusal,
    bytes_in: usize,
}

impl Exchange<'_> {
    fn fail(&mut self, error: GatewayError) -> Response {
        self.refusal = match error {
            GatewayError::Forbidden => usage::Refusal::Forbidden,
            GatewayError::TooManyRequests => usage::Refusal::Throttled,
            GatewayError::LimitExceeded => usage::Refusal::QuotaExceeded,
            _ => usage::Refusal::None,
        };
        self.log(error.status(), error.body().len());
        error.response(self.request_id_header)
    }

    fn log(&self, status: StatusCode, bytes: usize) {
        let access = logs::Access {
            time: self.now,
            request_id: self.request_id,
            tenant: &self.tenant.id,
            api_key_id: self.key_id,
            ip: self.peer,
            method: self.method,
            path: self.path,
            status: status.as_u16(),
            latency: self.started.elapsed(),
            bytes,
        };
        let mut log_bytes = 0;
        self.gateway.inner.logs.append(&self.tenant.log, |out| {
            let before = out.len();
            access.write(out);
            if let Some(invocation) = &self.invocation {
                invocation.write(out);
            }
            log_bytes = out.len() - before;
        });
        if let Some(recorder) = &self.gateway.inner.usage {
            recorder.record(&usage::Sample {
                tenant: &self.tenant.id,
                key_id: self.key_id,
                at: self.now,
                status,
                refusal: self.refusal,
                bytes_in: self.bytes_in,
                bytes_out: bytes,
                latency: access.latency,
                invocation: self.invocation.as_ref().map(|i| usage::Invoked {
                    duration: i.duration,
                    memory_mb: i.memory_mb,
                    failed: i.timed_out.is_some() || status == StatusCode::BAD_GATEWAY,
                    read_units: i.units.0,
                    write_units: i.units.1,
                }),
                log_bytes,
            });
        }
    }
}
