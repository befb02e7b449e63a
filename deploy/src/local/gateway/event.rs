//! The Lambda proxy event (v1) API Gateway sends the function, built from
//! the request, and the size limits on the way: API Gateway's 10 MB for
//! the body (a declared length over it fails before anything is read),
//! then Lambda's 6 MB for the event as JSON.

use std::net::IpAddr;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use axum::body::{Body, Bytes, HttpBody};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::{CONTENT_LENGTH, HeaderMap};
use http::request::Parts;

use super::logs;
use super::route::{self, Routed};

/// API Gateway's payload limit.
pub const MAX_PAYLOAD: usize = 10 * 1024 * 1024;
/// Lambda's synchronous invocation payload limit: an event of this many
/// bytes or more is refused before the function runs. "Lambda quotas"
/// gives 6 MB for the request; the Invoke API's own refusal names the
/// exact figure: `RequestEntityTooLargeException: Request must be smaller
/// than 6291556 bytes for the Invoke operation`.
pub const MAX_INVOCATION_PAYLOAD: usize = 6_291_556;
const ACCOUNT_ID: &str = "000000000000";

/// Whether the request declares a body longer than API Gateway takes
/// (413 `Request Too Long` before anything is read).
pub(super) fn declared_too_long(headers: &HeaderMap) -> bool {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    declared.is_some_and(|n| n > MAX_PAYLOAD as u64)
}

pub(super) enum BodyError {
    TooLong,
    Read,
}

/// Reads a body up to `limit` bytes, failing as soon as it goes over.
pub(super) async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut first: Option<Bytes> = None;
    let mut more: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame.map_err(|_| BodyError::Read)?.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(BodyError::TooLong);
        }
        match &first {
            None if more.is_empty() => first = Some(data),
            _ => {
                if let Some(f) = first.take() {
                    more.extend_from_slice(&f);
                }
                more.extend_from_slice(&data);
            }
        }
    }
    Ok(match first {
        Some(f) => f,
        None => Bytes::from(more),
    })
}

pub(super) struct EventParts<'a> {
    /// The request's line; its headers are `headers`.
    pub(super) parts: &'a Parts,
    /// The request's headers, moved into the event (one copy fewer).
    pub(super) headers: HeaderMap,
    pub(super) routed: &'a Routed<'a>,
    pub(super) host: String,
    pub(super) full_path: &'a str,
    pub(super) body: Bytes,
    pub(super) request_id: &'a str,
    pub(super) now: SystemTime,
    pub(super) peer: Option<IpAddr>,
    pub(super) api_key: String,
    pub(super) api_key_id: &'a str,
}

/// The Lambda proxy event (v1) API Gateway would send. Built in place on
/// the heap: the event is over a kilobyte, and each move of it (into the
/// integration, into the function's future) was a copy of all of it.
pub(super) fn event(e: EventParts<'_>) -> Box<ApiGatewayProxyRequest> {
    let t = &e.routed.tenant;
    let resource = if e.routed.id.is_some() {
        &t.resource_item
    } else {
        &t.resource_collection
    };
    let mut ev = Box::<ApiGatewayProxyRequest>::default();

    let context = &mut ev.request_context;
    let identity = &mut context.identity;
    identity.source_ip = e.peer.map(|ip| {
        let mut text = String::with_capacity(15);
        logs::ip_address(&mut text, ip);
        text
    });
    identity.api_key = Some(e.api_key);
    identity.api_key_id = Some(e.api_key_id.to_owned());
    identity.user_agent = e
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    context.account_id = Some(ACCOUNT_ID.to_owned());
    context.apiid = Some(t.id.clone());
    context.stage = Some(t.stage.clone());
    context.request_id = Some(e.request_id.to_owned());
    context.request_time_epoch = e
        .now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    context.resource_path = Some(resource.clone());
    context.http_method = e.parts.method.clone();
    context.path = Some(e.full_path.to_owned());
    context.protocol = Some(
        match e.parts.version {
            http::Version::HTTP_09 => "HTTP/0.9",
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2.0",
            http::Version::HTTP_3 => "HTTP/3.0",
            _ => "HTTP/1.1",
        }
        .to_owned(),
    );
    context.domain_prefix = Some(
        route::host_name(&e.host)
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned(),
    );
    context.domain_name = Some(e.host);

    let (single, multi) = route::query(e.parts.uri.query());
    ev.resource = Some(resource.clone());
    ev.path = Some(e.routed.rest.to_owned());
    ev.http_method = e.parts.method.clone();
    ev.multi_value_headers = e.headers.clone();
    ev.headers = e.headers;
    ev.query_string_parameters = single;
    ev.multi_value_query_string_parameters = multi;
    if let Some(id) = e.routed.id {
        ev.path_parameters
            .insert("id".to_owned(), route::percent_decode(id).into_owned());
    }
    if !e.body.is_empty() {
        match std::str::from_utf8(&e.body) {
            Ok(text) => ev.body = Some(text.to_owned()),
            Err(_) => {
                ev.body = Some(STANDARD.encode(&e.body));
                ev.is_base64_encoded = true;
            }
        }
    }
    ev
}

/// Whether Lambda would refuse the event as its invocation payload. Only
/// an event that could come near the limit is serialized to measure it:
/// escaping at most multiplies a byte by six (`\u0001`), headers and
/// query appear twice (single and multi-value), the path three times, and
/// the rest of the event is a few hundred bytes.
pub(super) fn event_too_large(event: &ApiGatewayProxyRequest) -> bool {
    let body = event.body.as_ref().map_or(0, String::len);
    let headers: usize = event
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    let query: usize = event
        .multi_value_query_string_parameters
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    let path = event.request_context.path.as_ref().map_or(0, String::len);
    let bound = body
        .saturating_add(headers.saturating_mul(2))
        .saturating_add(query.saturating_mul(2))
        .saturating_add(path.saturating_mul(3))
        .saturating_mul(6)
        .saturating_add(64 * 1024);
    if bound < MAX_INVOCATION_PAYLOAD {
        return false;
    }
    let mut size = ByteCount(0);
    // Serializing a proxy event cannot fail: its maps have string keys.
    serde_json::to_writer(&mut size, event).is_err() || size.0 >= MAX_INVOCATION_PAYLOAD
}

/// A writer that only counts.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
