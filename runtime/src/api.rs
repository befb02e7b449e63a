//! The generic CRUD API: an API Gateway proxy event (v1) in, a proxy
//! response out, everything decided by the tenant's collection.
//!
//! | method and path            | operation | success                      |
//! | -------------------------- | --------- | ---------------------------- |
//! | `GET /{collection}`        | search    | 200 `{"items": [...], "next"}` |
//! | `POST /{collection}`       | add       | 201 + Location + ETag        |
//! | `GET /{collection}/{id}`   | get       | 200 + ETag                   |
//! | `PUT /{collection}/{id}`   | update    | 200 + ETag (replace)         |
//! | `PATCH /{collection}/{id}` | update    | 200 + ETag (merge patch)     |
//! | `DELETE /{collection}/{id}`| delete    | 204                          |
//!
//! Every write is conditional: `If-Match` makes it apply only to the
//! revision the client saw (412 otherwise), and without it a write still
//! never overwrites a change it did not read.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use http::header::{ALLOW, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue, LOCATION};
use http::{Method, StatusCode};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::field::{Auto, Kind, now_rfc3339};
use crate::names;
use crate::problem::{FieldProblem, Problem};
use crate::store::{Expect, Filter, Item, Search, Store, StoreError};
use crate::tenant::{Collection, Operation, Tenant};

/// DynamoDB's item size limit, which every item must fit on both stores.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Page size of a search without `limit`, and the largest allowed.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;
/// How often a write without `If-Match` re-reads and retries when another
/// write got in between its read and its write.
const WRITE_ATTEMPTS: usize = 5;

/// One tenant's API over one store.
pub struct Api<S> {
    tenant: Arc<Tenant>,
    store: S,
    only: Option<Operation>,
    cursor_key: [u8; 32],
}

/// The route of a request within the tenant's API.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Collection,
    Item(String),
}

impl<S: Store> Api<S> {
    pub fn new(tenant: Arc<Tenant>, store: S) -> Self {
        let cursor_key = cursor_key(&tenant, b"");
        Api {
            tenant,
            store,
            only: None,
            cursor_key,
        }
    }

    /// Serve only this operation (on AWS each function is one operation;
    /// anything else reaching it is refused with 405).
    pub fn only(mut self, op: Option<Operation>) -> Self {
        self.only = op;
        self
    }

    /// Mix a secret into the key that signs search cursors, so a cursor
    /// cannot be forged even by someone who knows this code.
    pub fn cursor_secret(mut self, secret: &[u8]) -> Self {
        self.cursor_key = cursor_key(&self.tenant, secret);
        self
    }

    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Answers one request. Never fails: every problem is a response.
    pub async fn handle(&self, req: ApiGatewayProxyRequest) -> ApiGatewayProxyResponse {
        let response = match self.dispatch(&req).await {
            Ok(r) => r,
            Err(p) => p.into_response(),
        };
        tracing::info!(
            request_id = req.request_context.request_id.as_deref().unwrap_or(""),
            method = %req.http_method,
            path = req.path.as_deref().unwrap_or(""),
            status = response.status_code,
            "handled"
        );
        response
    }

    async fn dispatch(
        &self,
        req: &ApiGatewayProxyRequest,
    ) -> Result<ApiGatewayProxyResponse, Problem> {
        let c = &self.tenant.collection;
        let route = route(c, req).ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no such resource; this API serves /{0} and /{0}/{{id}}",
                    c.name
                ),
            )
        })?;
        let op = match (&route, &req.http_method) {
            (Route::Collection, &Method::GET) => Operation::Search,
            (Route::Collection, &Method::POST) => Operation::Add,
            (Route::Item(_), &Method::GET) => Operation::Get,
            (Route::Item(_), &Method::PUT | &Method::PATCH) => Operation::Update,
            (Route::Item(_), &Method::DELETE) => Operation::Delete,
            _ => return Err(self.not_allowed(&route, &req.http_method)),
        };
        if !self.tenant.functions.enabled(op) || self.only.is_some_and(|o| o != op) {
            return Err(self.not_allowed(&route, &req.http_method));
        }
        match (op, route) {
            (Operation::Search, _) => self.search(req).await,
            (Operation::Add, _) => self.add(req).await,
            (Operation::Get, Route::Item(id)) => self.get(&id).await,
            (Operation::Update, Route::Item(id)) => self.update(req, &id).await,
            (Operation::Delete, Route::Item(id)) => self.delete(req, &id).await,
            _ => unreachable!("operations are matched to routes above"),
        }
    }

    fn not_allowed(&self, route: &Route, method: &Method) -> Problem {
        let candidates: &[(&str, Operation)] = match route {
            Route::Collection => &[("GET", Operation::Search), ("POST", Operation::Add)],
            Route::Item(_) => &[
                ("GET", Operation::Get),
                ("PUT", Operation::Update),
                ("PATCH", Operation::Update),
                ("DELETE", Operation::Delete),
            ],
        };
        let allow: Vec<&str> = candidates
            .iter()
            .filter(|(_, op)| {
                self.tenant.functions.enabled(*op) && self.only.is_none_or(|o| o == *op)
            })
            .map(|(m, _)| *m)
            .collect();
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{method} is not enabled here; allowed: {}",
                allow.join(", ")
            ),
        )
        .header(ALLOW, &allow.join(", "))
    }

    async fn get(&self, id: &str) -> Result<ApiGatewayProxyResponse, Problem> {
        check_id(id)?;
        match self.store.get(id).await? {
            Some(item) => Ok(self.item_response(StatusCode::OK, &item)),
            None => Err(not_found(id)),
        }
    }

    async fn add(&self, req: &ApiGatewayProxyRequest) -> Result<ApiGatewayProxyResponse, Problem> {
        let mut body = json_body(req, false)?;
        let c = &self.tenant.collection;
        let id = match body.remove(&c.key) {
            None | Some(Value::Null) => ulid::Ulid::new().to_string(),
            Some(Value::String(id)) if names::is_item_id(&id) => id,
            Some(other) => {
                return Err(Problem::invalid(vec![FieldProblem::new(
                    &c.key,
                    format!(
                        "must be 1 to 128 characters of letters, digits, -, _, . and ~ (or left out for a server-generated id), found {}",
                        short(&other)
                    ),
                )]));
            }
        };
        let doc = complete(c, body, None)?;
        let item = Item {
            id,
            rev: new_rev(),
            doc,
        };
        check_size(c, &item)?;
        match self.store.create(&item).await {
            Ok(()) => {}
            Err(StoreError::Exists) => {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    format!("an item with {} {:?} already exists", c.key, item.id),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let mut response = self.item_response(StatusCode::CREATED, &item);
        let location = format!("{}/{}", request_path(req).trim_end_matches('/'), item.id);
        if let Ok(v) = HeaderValue::from_str(&location) {
            response.headers.insert(LOCATION, v);
        }
        Ok(response)
    }

    async fn update(
        &self,
        req: &ApiGatewayProxyRequest,
        id: &str,
    ) -> Result<ApiGatewayProxyResponse, Problem> {
        check_id(id)?;
        let patch = req.http_method == Method::PATCH;
        let mut body = json_body(req, patch)?;
        let c = &self.tenant.collection;
        match body.remove(&c.key) {
            None | Some(Value::Null) => {}
            Some(Value::String(k)) if k == id => {}
            Some(other) => {
                return Err(Problem::invalid(vec![FieldProblem::new(
                    &c.key,
                    format!(
                        "must match the id in the path ({id:?}) or be left out, found {}",
                        short(&other)
                    ),
                )]));
            }
        }
        let if_match = if_match(&req.headers)?;
        for _ in 0..WRITE_ATTEMPTS {
            let Some(current) = self.store.get(id).await? else {
                return Err(not_found(id));
            };
            if let Some(Expect::Rev(rev)) = &if_match
                && *rev != current.rev
            {
                return Err(precondition_failed());
            }
            let fields = if patch {
                merge_patch(current.doc.clone(), body.clone())
            } else {
                body.clone()
            };
            let doc = complete(c, fields, Some(&current.doc))?;
            let item = Item {
                id: id.to_owned(),
                rev: new_rev(),
                doc,
            };
            check_size(c, &item)?;
            // Conditional on the revision read, so a change made since is
            // never overwritten: with `If-Match: "rev"` that is the
            // client's revision (412 if it moved on); without, or with
            // `If-Match: *` (any current revision), read again and retry.
            match self.store.replace(&item, &Expect::Rev(current.rev)).await {
                Ok(()) => return Ok(self.item_response(StatusCode::OK, &item)),
                Err(StoreError::NotFound) => return Err(not_found(id)),
                Err(StoreError::RevMismatch) if matches!(if_match, Some(Expect::Rev(_))) => {
                    return Err(precondition_failed());
                }
                Err(StoreError::RevMismatch) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Problem::new(
            StatusCode::CONFLICT,
            "the item kept changing while this write was applied; retry",
        ))
    }

    async fn delete(
        &self,
        req: &ApiGatewayProxyRequest,
        id: &str,
    ) -> Result<ApiGatewayProxyResponse, Problem> {
        check_id(id)?;
        let expect = if_match(&req.headers)?.unwrap_or(Expect::Exists);
        match self.store.delete(id, &expect).await {
            Ok(()) => Ok(response(StatusCode::NO_CONTENT, HeaderMap::new(), None)),
            Err(StoreError::NotFound) => Err(not_found(id)),
            Err(StoreError::RevMismatch) => Err(precondition_failed()),
            Err(e) => Err(e.into()),
        }
    }

    async fn search(
        &self,
        req: &ApiGatewayProxyRequest,
    ) -> Result<ApiGatewayProxyResponse, Problem> {
        let c = &self.tenant.collection;
        let params = query_params(req);
        let mut problems = Vec::new();
        let mut filters = Vec::new();
        let mut limit = DEFAULT_LIMIT;
        let mut cursor = None;
        for (name, values) in &params {
            if values.len() > 1 {
                problems.push(FieldProblem::new(name, "may be given once"));
                continue;
            }
            let value = values[0];
            match name.as_str() {
                "limit" => match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                    _ => problems.push(FieldProblem::new(
                        "limit",
                        format!("must be an integer from 1 to {MAX_LIMIT}, found {value:?}"),
                    )),
                },
                "next" => cursor = Some(value),
                _ => match c.field(name) {
                    Some(field) => match field.parse_filter(value) {
                        Ok(v) => filters.push(Filter {
                            field: name.clone(),
                            value: v,
                            list: matches!(field.kind, Kind::StringList { .. }),
                        }),
                        Err(e) => problems.push(FieldProblem::new(name, e)),
                    },
                    None => problems.push(FieldProblem::new(
                        name,
                        format!(
                            "is not a field of {}; filter on one of: {}",
                            c.name,
                            c.fields
                                .iter()
                                .map(|f| f.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )),
                },
            }
        }
        if !problems.is_empty() {
            return Err(Problem::invalid(problems));
        }
        // Query the first indexed field filtered on, in declaration order.
        let index = c
            .fields
            .iter()
            .find(|f| f.index && filters.iter().any(|x| x.field == f.name))
            .map(|f| f.name.clone());
        let fingerprint = fingerprint(&filters);
        let start = match cursor {
            Some(token) => Some(
                self.open_cursor(&fingerprint, token)
                    .ok_or_else(bad_cursor)?,
            ),
            None => None,
        };
        let search = Search {
            filters,
            index,
            limit,
            start,
        };
        let page = match self.store.search(&search).await {
            Ok(page) => page,
            Err(StoreError::BadStart(_)) => return Err(bad_cursor()),
            Err(e) => return Err(e.into()),
        };
        let next = page.next.map(|n| self.seal_cursor(&fingerprint, &n));
        let body = PageBody {
            items: page.items.iter().map(|item| Rendered { c, item }).collect(),
            next,
        };
        Ok(json_response(StatusCode::OK, HeaderMap::new(), &body))
    }

    fn item_response(&self, status: StatusCode, item: &Item) -> ApiGatewayProxyResponse {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", item.rev)) {
            headers.insert(ETAG, v);
        }
        let c = &self.tenant.collection;
        json_response(status, headers, &Rendered { c, item })
    }

    /// A cursor is the store's position, signed together with the search it
    /// belongs to: a tampered cursor, or one from another search or tenant,
    /// fails the check.
    fn seal_cursor(&self, fingerprint: &str, start: &Value) -> String {
        let payload = serde_json::to_vec(start).unwrap_or_default();
        let tag = self.cursor_tag(fingerprint, &payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    fn open_cursor(&self, fingerprint: &str, token: &str) -> Option<Value> {
        let (payload, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.cursor_key).ok()?;
        mac.update(fingerprint.as_bytes());
        mac.update(&[0]);
        mac.update(&payload);
        mac.verify_truncated_left(&tag).ok()?;
        if tag.len() < 16 {
            return None;
        }
        serde_json::from_slice(&payload).ok()
    }

    fn cursor_tag(&self, fingerprint: &str, payload: &[u8]) -> Vec<u8> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.cursor_key).expect("HMAC takes any key length");
        mac.update(fingerprint.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac.finalize().into_bytes()[..16].to_vec()
    }
}

fn cursor_key(tenant: &Tenant, secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"apifactory search cursor v1\0");
    h.update(tenant.id.as_bytes());
    h.update([0]);
    h.update(tenant.collection.name.as_bytes());
    h.update([0]);
    h.update(secret);
    h.finalize().into()
}

/// The canonical form of a search's filters, bound into its cursors.
fn fingerprint(filters: &[Filter]) -> String {
    let mut parts: Vec<String> = filters
        .iter()
        .map(|f| format!("{}={}", f.field, f.value))
        .collect();
    parts.sort();
    parts.join("&")
}

/// Finds the route from the event's resource and path parameters (what
/// API Gateway matched), or from its path when there is no resource.
fn route(c: &Collection, req: &ApiGatewayProxyRequest) -> Option<Route> {
    let collection = format!("/{}", c.name);
    if let Some(resource) = req.resource.as_deref().filter(|r| !r.is_empty()) {
        if resource == collection {
            return Some(Route::Collection);
        }
        if resource == format!("{collection}/{{id}}") {
            return req
                .path_parameters
                .get("id")
                .map(|id| Route::Item(id.clone()));
        }
        return None;
    }
    let path = req.path.as_deref().unwrap_or("");
    let rest = path.strip_prefix(&collection)?;
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
fn request_path(req: &ApiGatewayProxyRequest) -> String {
    req.request_context
        .path
        .clone()
        .or_else(|| req.path.clone())
        .unwrap_or_default()
}

/// Query parameters by name, every value kept (repeats are an error the
/// caller reports).
fn query_params(req: &ApiGatewayProxyRequest) -> BTreeMap<String, Vec<&str>> {
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
fn json_body(req: &ApiGatewayProxyRequest, patch: bool) -> Result<Map<String, Value>, Problem> {
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

/// JSON merge patch (RFC 7386) of the client's fields onto the stored ones.
fn merge_patch(mut doc: Map<String, Value>, patch: Map<String, Value>) -> Map<String, Value> {
    for (k, v) in patch {
        if v.is_null() {
            doc.remove(&k);
        } else {
            doc.insert(k, v);
        }
    }
    doc
}

/// Checks a client's fields and completes them into a stored document:
/// unknown fields and bad values are 400s listing every problem; defaults
/// fill missing fields; `auto` fields are the server's (a client's value is
/// ignored). `current` is the stored document on an update.
fn complete(
    c: &Collection,
    fields: Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, Problem> {
    let mut problems = Vec::new();
    let mut doc = Map::new();
    let mut invalid = Vec::new();
    for (name, value) in fields {
        let Some(field) = c.field(&name) else {
            problems.push(FieldProblem::new(
                &name,
                format!("is not a field of {}", c.name),
            ));
            continue;
        };
        if field.auto.is_some() || value.is_null() {
            continue;
        }
        match field.check(&value) {
            Ok(()) => {
                doc.insert(name, value);
            }
            Err(e) => {
                problems.push(FieldProblem::new(&name, e));
                invalid.push(name);
            }
        }
    }
    let now = now_rfc3339();
    for field in &c.fields {
        if doc.contains_key(&field.name) || invalid.contains(&field.name) {
            continue;
        }
        match field.auto {
            Some(Auto::Create) => {
                let kept = current.and_then(|d| d.get(&field.name)).cloned();
                doc.insert(
                    field.name.clone(),
                    kept.unwrap_or_else(|| Value::String(now.clone())),
                );
            }
            Some(Auto::Update) => {
                doc.insert(field.name.clone(), Value::String(now.clone()));
            }
            None => {
                if let Some(default) = &field.default {
                    doc.insert(field.name.clone(), default.clone());
                } else if field.required {
                    problems.push(FieldProblem::new(&field.name, "is required"));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(doc)
    } else {
        problems.sort_by(|a, b| a.field.cmp(&b.field));
        Err(Problem::invalid(problems))
    }
}

/// The size DynamoDB would count for the item: attribute names plus values.
pub fn item_size(c: &Collection, item: &Item) -> usize {
    fn value_size(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len(),
            Value::Number(n) => n.to_string().len().div_ceil(2) + 1,
            Value::Bool(_) | Value::Null => 1,
            Value::Array(a) => 3 + a.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
            Value::Object(m) => {
                3 + m
                    .iter()
                    .map(|(k, v)| 1 + k.len() + value_size(v))
                    .sum::<usize>()
            }
        }
    }
    c.key.len()
        + item.id.len()
        + "_rev".len()
        + item.rev.len()
        + item
            .doc
            .iter()
            .map(|(k, v)| k.len() + value_size(v))
            .sum::<usize>()
}

fn check_size(c: &Collection, item: &Item) -> Result<(), Problem> {
    let size = item_size(c, item);
    if size > MAX_ITEM_BYTES {
        Err(too_large(size))
    } else {
        Ok(())
    }
}

fn too_large(size: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the item would be {size} bytes; an item may be at most {MAX_ITEM_BYTES} bytes"),
    )
}

/// The item as clients see it: the key, then its fields. Serialized
/// straight from the stored item, without building a copy of it.
struct Rendered<'a> {
    c: &'a Collection,
    item: &'a Item,
}

impl serde::Serialize for Rendered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let key = self.c.key.as_str();
        let doc = &self.item.doc;
        let mut map = s.serialize_map(Some(1 + doc.len() - usize::from(doc.contains_key(key))))?;
        // A stored document never holds the key; if one did, its value
        // would stand in the key's place, as it always has.
        match doc.get(key) {
            Some(v) => map.serialize_entry(key, v)?,
            None => map.serialize_entry(key, &self.item.id)?,
        }
        for (k, v) in doc.iter().filter(|(k, _)| *k != key) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A page of a search.
#[derive(serde::Serialize)]
struct PageBody<'a> {
    items: Vec<Rendered<'a>>,
    next: Option<String>,
}

fn check_id(id: &str) -> Result<(), Problem> {
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
fn if_match(headers: &HeaderMap) -> Result<Option<Expect>, Problem> {
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

fn new_rev() -> String {
    ulid::Ulid::new().to_string()
}

fn not_found(id: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, format!("no item with id {id:?}"))
}

fn precondition_failed() -> Problem {
    Problem::new(
        StatusCode::PRECONDITION_FAILED,
        "the item has changed since that ETag was read; GET it again",
    )
}

fn bad_cursor() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "`next` is not a cursor this search returned; start again without it",
    )
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

pub(crate) fn response(
    status: StatusCode,
    headers: HeaderMap,
    body: Option<String>,
) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = i64::from(status.as_u16());
    r.headers = headers;
    r.body = body.map(Body::Text);
    r
}

fn json_response(
    status: StatusCode,
    mut headers: HeaderMap,
    body: &impl serde::Serialize,
) -> ApiGatewayProxyResponse {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Serializing a JSON value or a stored item cannot fail: the keys are
    // strings and the numbers finite.
    let text = serde_json::to_string(body).unwrap_or_default();
    response(status, headers, Some(text))
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the store failed; retry the request",
        )
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod fuzz;
#[cfg(test)]
mod tests;
