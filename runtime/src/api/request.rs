//! Reading a request: its route, query parameters, JSON body, `If-Match`
//! and item id, each refused with the problem a client should see.

use std::collections::BTreeMap;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Map, Value};

use super::document::too_large;
use super::{MAX_ITEM_BYTES, precondition_failed};
use crate::names;
use crate::problem::Problem;
use crate::store::Expect;
use crate::tenant::Collection;

/// The route of a request within the tenant's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route {
    Collection,
    Item(String),
}

/// Finds the route from the event's resource and path parameters (what
/// API Gateway matched), or from its path when there is no resource.
pub(super) fn route(c: &Collection, req: &ApiGatewayProxyRequest) -> Option<Route> {
    // What follows `/{collection}`, matched without building the strings
    // to compare (every request comes through here).
    fn under<'a>(s: &'a str, collection: &str) -> Option<&'a str> {
        s.strip_prefix('/')?.strip_prefix(collection)
    }
    if let Some(resource) = req.resource.as_deref().filter(|r| !r.is_empty()) {
        return match under(resource, &c.name) {
            Some("") => Some(Route::Collection),
            Some("/{id}") => req
                .path_parameters
                .get("id")
                .map(|id| Route::Item(id.clone())),
            _ => None,
        };
    }
    let path = req.path.as_deref().unwrap_or("");
    let rest = under(path, &c.name)?;
    match rest {
        "" | "/" => Some(Route::Collection),
        _ => {
            let id = rest.strip_prefix('/')?;
            (!id.contains('/')).then(|| Route::Item(percent_decode(id).into_owned()))
        }
    }
}

/// Percent-decodes (`+` stays `+`, as API Gateway leaves it); malformed
/// escapes are kept as they are and bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('%') {
        return std::borrow::Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => std::borrow::Cow::Owned(s),
        Err(e) => std::borrow::Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The path the client used (with stage or base path), for Location.
pub(super) fn request_path(req: &ApiGatewayProxyRequest) -> String {
    req.request_context
        .path
        .clone()
        .or_else(|| req.path.clone())
        .unwrap_or_default()
}

/// Query parameters by name, every value kept (repeats are an error the
/// caller reports).
pub(super) fn query_params(req: &ApiGatewayProxyRequest) -> BTreeMap<String, Vec<&str>> {
    let mut out: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let source = if req.multi_value_query_string_parameters.is_empty() {
        &req.query_string_parameters
    } else {
        &req.multi_value_query_string_parameters
    };
    for (k, v) in source.iter() {
        out.entry(k.to_owned()).or_default().push(v);
    }
    out
}

/// The request body as a JSON object, after the checks every write shares:
/// a JSON content type (415), at most the item size (413), valid JSON (400),
/// an object (400).
pub(super) fn json_body(
    req: &ApiGatewayProxyRequest,
    patch: bool,
) -> Result<Map<String, Value>, Problem> {
    let content_type = req
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = content_type == "application/json"
        || (content_type.starts_with("application/") && content_type.ends_with("+json"));
    if !json {
        let expected = if patch {
            "application/merge-patch+json or application/json"
        } else {
            "application/json"
        };
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "the body must be JSON with Content-Type {expected}, found {}",
                if content_type.is_empty() {
                    "none".to_owned()
                } else {
                    format!("{content_type:?}")
                }
            ),
        ));
    }
    let raw = req.body.as_deref().unwrap_or("");
    let bytes = if req.is_base64_encoded {
        STANDARD.decode(raw).map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "the body is marked base64 but does not decode",
            )
        })?
    } else {
        raw.as_bytes().to_vec()
    };
    if bytes.len() > MAX_ITEM_BYTES {
        return Err(too_large(bytes.len()));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "the body is empty; send a JSON object",
        ));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the body must be a JSON object, found {}",
                crate::field::type_of(&other)
            ),
        )),
        Err(e) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

pub(super) fn check_id(id: &str) -> Result<(), Problem> {
    if names::is_item_id(id) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "an id is 1 to 128 characters of letters, digits, -, _, . and ~",
        ))
    }
}

/// `If-Match: "rev"` or `*`; a weak tag never matches (strong comparison).
pub(super) fn if_match(headers: &HeaderMap) -> Result<Option<Expect>, Problem> {
    let Some(raw) = headers.get(http::header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = raw
        .to_str()
        .map_err(|_| Problem::new(StatusCode::BAD_REQUEST, "If-Match is not valid text"))?
        .trim();
    if raw == "*" {
        return Ok(Some(Expect::Exists));
    }
    if raw.starts_with("W/") {
        return Err(precondition_failed());
    }
    match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(tag) if !tag.is_empty() && !tag.contains('"') => Ok(Some(Expect::Rev(tag.to_owned()))),
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "If-Match must be one ETag in double quotes, as sent in the ETag header, or *",
        )),
    }
}
