//! The integration: the tenant's function called in the request's own
//! task, bounded by its timeout (504) with a panic caught as a crash
//! (502), and its proxy response turned into the HTTP response API
//! Gateway would give.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body as LambdaBody;
use axum::body::{Body, HttpBody};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderMap, HeaderName, TRANSFER_ENCODING, UPGRADE};
use runtime::Operation;
use runtime::capacity;

use super::live::TenantRt;
use super::logs;

/// How an invocation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// Past the function's timeout (504).
    Timeout,
    /// Panicked, or returned something API Gateway cannot use (502).
    Crashed,
}

/// Calls the tenant's function for `op` with the event: the HTTP response
/// and its body's length, or how the call failed; and the invocation, for
/// the logs and usage (its request units counted when `metered`).
pub(super) async fn call<'a>(
    t: &'a TenantRt,
    op: Operation,
    request_id: &'a str,
    event: Box<ApiGatewayProxyRequest>,
    metered: bool,
) -> (Result<(Response, usize), Failure>, logs::Invocation<'a>) {
    let api = Arc::clone(&t.api);
    let invoked_at = SystemTime::now();
    let clock = Instant::now();
    // Boxed here, once: the function's future is large (kilobytes), and
    // each wrapper around it (the panic catcher, the timeout, the meter)
    // would otherwise copy it whole when it is made; a profile showed
    // those copies as most of what metering cost a GET.
    let function = Box::pin(async move { api.answer(&event).await });
    let (outcome, units) = if metered {
        let (outcome, units) = capacity::metered(invoke(function, t.timeout)).await;
        (outcome, Some(units))
    } else {
        (invoke(function, t.timeout).await, None)
    };
    let duration = clock.elapsed();
    let invocation = logs::Invocation {
        function: &t.function_parts[op as usize],
        request_id,
        started: invoked_at,
        // One clock read fewer than asking the time again.
        ended: invoked_at + duration,
        duration,
        memory_mb: t.memory_mb,
        timed_out: (outcome == Err(Failure::Timeout)).then_some(t.timeout.as_secs_f64()),
        units: units.map_or((0.0, 0.0), |u| (u.read_units(), u.write_units())),
    };
    let converted = outcome.and_then(|r| to_http(r).ok_or(Failure::Crashed));
    (converted, invocation)
}

/// Runs a function invocation bounded by `timeout`, a panic caught as a
/// crash. It runs inside the request's own task: a task of its own would
/// cost every request a spawn and a wake-up across tasks.
pub(super) async fn invoke<F>(
    function: Pin<Box<F>>,
    timeout: Duration,
) -> Result<ApiGatewayProxyResponse, Failure>
where
    F: Future<Output = ApiGatewayProxyResponse> + Send + ?Sized + 'static,
{
    match tokio::time::timeout(timeout, CatchUnwind(function)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(_panicked)) => Err(Failure::Crashed),
        // Dropping the future cancels the invocation.
        Err(_elapsed) => Err(Failure::Timeout),
    }
}

/// A future whose panic is caught and returned, as a task's join handle
/// would return it.
struct CatchUnwind<F: ?Sized>(Pin<Box<F>>);

impl<F: Future + ?Sized> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let function = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| function.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(response)) => std::task::Poll::Ready(Ok(response)),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

/// Headers a function cannot set: they belong to the connection.
static HOP_BY_HOP: [HeaderName; 6] = [
    CONNECTION,
    CONTENT_LENGTH,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TRANSFER_ENCODING,
    UPGRADE,
];

/// The HTTP response of a proxy response and its body's length, or `None`
/// when it is malformed (status not a final 2xx to 5xx code, body marked
/// base64 that does not decode).
pub(super) fn to_http(r: ApiGatewayProxyResponse) -> Option<(Response, usize)> {
    let status = u16::try_from(r.status_code)
        .ok()
        .filter(|s| (200..=599).contains(s))
        .and_then(|s| StatusCode::from_u16(s).ok())?;
    let body: Body = match r.body {
        None | Some(LambdaBody::Empty) => Body::empty(),
        Some(LambdaBody::Text(text)) if r.is_base64_encoded => {
            Body::from(STANDARD.decode(text.trim()).ok()?)
        }
        Some(LambdaBody::Text(text)) => Body::from(text),
        Some(LambdaBody::Binary(bytes)) => Body::from(bytes),
        Some(_) => return None,
    };
    let bytes = usize::try_from(body.size_hint().exact().unwrap_or(0)).unwrap_or(usize::MAX);
    let mut headers = merge_headers(r.headers, r.multi_value_headers);
    // Looked for among the few headers there are, rather than each removed
    // by name (a hash of every name, every response).
    if headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        for name in &HOP_BY_HOP {
            headers.remove(name);
        }
    }
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Some((response, bytes))
}

/// API Gateway's merge of `headers` and `multiValueHeaders`: every value
/// of the latter, plus those of the former not already there.
fn merge_headers(single: HeaderMap, multi: HeaderMap) -> HeaderMap {
    if multi.is_empty() {
        return single;
    }
    let mut out = multi;
    for (name, value) in &single {
        if !out.get_all(name).iter().any(|v| v == value) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}
