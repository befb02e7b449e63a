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

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::header::{ALLOW, ETAG, HeaderMap, HeaderValue, LOCATION};
use http::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::field::Kind;
use crate::names;
use crate::problem::{FieldProblem, Problem};
use crate::response::{json_response, response};
use crate::store::{Expect, Filter, Fresh, Item, Known, Search, Store, StoreError};
use crate::tenant::{Operation, Tenant};

mod cache;
mod document;
mod request;

use cache::{Cached, ItemCache};
pub use document::item_size;
use document::{PageBody, Rendered, check_size, complete, merge_patch, undeclared};
pub use request::percent_decode;
use request::{Route, check_id, if_match, json_body, query_params, request_path, route};

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
    /// Items as GETs answered them (used when the store can tell that an
    /// item is unchanged: `Store::CHECKS_KNOWN`).
    cache: ItemCache,
}

impl<S: Store> Api<S> {
    pub fn new(tenant: Arc<Tenant>, store: S) -> Self {
        let cursor_key = cursor_key(&tenant, b"");
        Api {
            tenant,
            store,
            only: None,
            cursor_key,
            cache: ItemCache::default(),
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
        self.answer(&req).await
    }

    /// [`Api::handle`] of an event the caller keeps (the local gateway's
    /// is boxed: it is over a kilobyte, and a future holding it by value
    /// is copied whole each time it is moved).
    pub async fn answer(&self, req: &ApiGatewayProxyRequest) -> ApiGatewayProxyResponse {
        let response = match self.dispatch(req).await {
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
        if !S::CHECKS_KNOWN {
            return match self.store.get(id).await? {
                Some(item) => Ok(self.item_response(StatusCode::OK, &item)),
                None => Err(not_found(id)),
            };
        }
        // Read before the store is: an entry is marked with the version
        // from before the read that checked it, so a commit racing that
        // read leaves the mark older than the entry, and the next GET reads
        // again. Equal versions: nothing was committed since, by anyone.
        let version = self.store.version();
        if let Some(v) = version
            && let Some(hit) = self.cache.current(id, v)
        {
            crate::capacity::read(hit.size, true);
            return Ok(hit.response());
        }
        let cached = self.cache.get(id);
        let known = cached.as_deref().map(|c| Known {
            rev: &c.rev,
            doc: &c.doc,
            size: c.size,
        });
        match (self.store.get_unless(id, known).await?, cached) {
            (Fresh::Same, Some(cached)) => {
                self.cache.mark(id, &cached, version);
                Ok(cached.response())
            }
            (Fresh::Changed(item), _) => {
                let cached = self.render(&item);
                let response = cached.response();
                self.cache.put(id, cached, version);
                Ok(response)
            }
            (Fresh::Missing, _) => {
                self.cache.remove(id);
                Err(not_found(id))
            }
            (Fresh::Same, None) => Err(StoreError::Backend(
                "the store found an item unchanged that was never read".into(),
            )
            .into()),
        }
    }

    /// An item as a GET answers it, with what it was made from. The
    /// document's text is the store's own encoding of it (a document stored
    /// in another form is never found the same, and is rendered each
    /// time).
    fn render(&self, item: &Item) -> Cached {
        let c = &self.tenant.collection;
        Cached {
            rev: item.rev.clone(),
            doc: serde_json::to_string(&item.doc).unwrap_or_default(),
            size: crate::capacity::item_size(&c.key, item),
            etag: HeaderValue::from_str(&format!("\"{}\"", item.rev)).ok(),
            body: serde_json::to_string(&Rendered { c, item }).unwrap_or_default(),
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
            // Values of fields the tenant file no longer declares are not
            // the client's to see or change: they stay as stored.
            let kept = undeclared(c, &current.doc);
            let fields = if patch {
                let mut declared = current.doc.clone();
                declared.retain(|k, _| !kept.contains_key(k));
                merge_patch(declared, body.clone())
            } else {
                body.clone()
            };
            let mut doc = complete(c, fields, Some(&current.doc))?;
            for (k, v) in kept {
                doc.entry(k).or_insert(v);
            }
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

fn new_rev() -> String {
    ulid::Ulid::new().to_string()
}

fn not_found(id: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, format!("no item with id {id:?}"))
}

pub(super) fn precondition_failed() -> Problem {
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
