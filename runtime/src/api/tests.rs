//! The API's unit tests, over an in-memory store: one case per behaviour
//! of the HTTP contract, in the order of the handlers. Over 600 lines
//! because the contract has that many cases; they share one fixture and
//! nothing else, so a split would only move the fixture around.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use serde_json::json;

use aws_lambda_events::encodings::Body;
use base64::engine::general_purpose::STANDARD;
use http::header::CONTENT_TYPE;
use serde_json::Map;

use super::*;
use crate::store::Page;

/// A store in a map: enough to test the API's logic without a database.
/// The conformance suite holds the real stores to the same contract.
#[derive(Default)]
struct MemStore(Mutex<BTreeMap<String, Item>>);

impl Store for MemStore {
    async fn get(&self, id: &str) -> Result<Option<Item>, StoreError> {
        Ok(self.0.lock().unwrap().get(id).cloned())
    }
    async fn create(&self, item: &Item) -> Result<(), StoreError> {
        let mut m = self.0.lock().unwrap();
        if m.contains_key(&item.id) {
            return Err(StoreError::Exists);
        }
        m.insert(item.id.clone(), item.clone());
        Ok(())
    }
    async fn replace(&self, item: &Item, expect: &Expect) -> Result<(), StoreError> {
        let mut m = self.0.lock().unwrap();
        check(m.get(&item.id), expect)?;
        m.insert(item.id.clone(), item.clone());
        Ok(())
    }
    async fn delete(&self, id: &str, expect: &Expect) -> Result<(), StoreError> {
        let mut m = self.0.lock().unwrap();
        check(m.get(id), expect)?;
        m.remove(id);
        Ok(())
    }
    async fn search(&self, s: &Search) -> Result<Page, StoreError> {
        let after = match &s.start {
            None => None,
            Some(v) => Some(
                v.get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| StoreError::BadStart("no id".into()))?
                    .to_owned(),
            ),
        };
        let m = self.0.lock().unwrap();
        let mut items: Vec<Item> = m
            .values()
            .filter(|i| after.as_ref().is_none_or(|a| i.id > *a))
            .filter(|i| {
                s.filters.iter().all(|f| match i.doc.get(&f.field) {
                    Some(Value::Array(a)) if f.list => a.contains(&f.value),
                    Some(v) => *v == f.value,
                    None => false,
                })
            })
            .take(s.limit + 1)
            .cloned()
            .collect();
        let next = (items.len() > s.limit).then(|| {
            items.truncate(s.limit);
            json!({ "id": items.last().unwrap().id })
        });
        Ok(Page { items, next })
    }
}

fn check(current: Option<&Item>, expect: &Expect) -> Result<(), StoreError> {
    match (current, expect) {
        (None, _) => Err(StoreError::NotFound),
        (Some(i), Expect::Rev(r)) if i.rev != *r => Err(StoreError::RevMismatch),
        _ => Ok(()),
    }
}

fn tenant(id: &str) -> Arc<Tenant> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tenants/{id}.toml"));
    Arc::new(Tenant::load(&path).unwrap())
}

fn api(id: &str) -> Api<MemStore> {
    Api::new(tenant(id), MemStore::default())
}

struct Sent {
    status: i64,
    headers: HeaderMap,
    body: Value,
}

fn event(method: &str, path: &str, body: Option<&str>) -> ApiGatewayProxyRequest {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut req = ApiGatewayProxyRequest::default();
    req.http_method = method.parse().unwrap();
    req.path = Some(path.to_owned());
    req.resource = Some(if segments.len() > 1 {
        req.path_parameters
            .insert("id".into(), segments[1].to_owned());
        format!("/{}/{{id}}", segments[0])
    } else {
        path.to_owned()
    });
    req.request_context.stage = Some("prod".into());
    req.request_context.path = Some(format!("/prod{path}"));
    let mut multi: std::collections::HashMap<String, Vec<String>> = Default::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        multi.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    req.multi_value_query_string_parameters = multi.into();
    if let Some(b) = body {
        req.body = Some(b.to_owned());
        req.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    req
}

async fn send<S: Store>(api: &Api<S>, req: ApiGatewayProxyRequest) -> Sent {
    let r = api.handle(req).await;
    let body = match r.body {
        Some(Body::Text(t)) => serde_json::from_str(&t).unwrap(),
        None => Value::Null,
        Some(other) => panic!("unexpected body {other:?}"),
    };
    Sent {
        status: r.status_code,
        headers: r.headers,
        body,
    }
}

async fn call<S: Store>(api: &Api<S>, method: &str, path: &str, body: Option<Value>) -> Sent {
    let text = body.map(|b| b.to_string());
    send(api, event(method, path, text.as_deref())).await
}

fn etag(s: &Sent) -> String {
    s.headers[ETAG].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn add_get_update_delete() {
    let api = api("acme");
    let created = call(
        &api,
        "POST",
        "/accounts",
        Some(json!({"name": "Ada", "email": "ada@example.com"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 26, "a ULID");
    assert_eq!(
        created.headers[LOCATION],
        format!("/prod/accounts/{id}").as_str()
    );
    assert_eq!(created.body["plan"], "free", "default applied");
    let stamped = created.body["created"].as_str().unwrap().to_owned();
    assert!(stamped.ends_with('Z'), "auto timestamp {stamped}");

    let got = call(&api, "GET", &format!("/accounts/{id}"), None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, created.body);
    assert_eq!(etag(&got), etag(&created));

    // PUT replaces; the auto `created` stays even if the client sends another.
    let put = call(
        &api,
        "PUT",
        &format!("/accounts/{id}"),
        Some(json!({"name": "Ada L", "email": "ada@example.com", "plan": "pro", "created": "2000-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["created"], stamped.as_str());
    assert_eq!(put.body["plan"], "pro");
    assert_ne!(etag(&put), etag(&created));

    // PATCH merges; null removes an optional field.
    let patched = call(
        &api,
        "PATCH",
        &format!("/accounts/{id}"),
        Some(json!({"company": "Analytical", "plan": null})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["company"], "Analytical");
    assert_eq!(
        patched.body["plan"], "free",
        "removing a defaulted field restores its default"
    );
    assert_eq!(patched.body["name"], "Ada L");

    // Removing a required field is refused.
    let bad = call(
        &api,
        "PATCH",
        &format!("/accounts/{id}"),
        Some(json!({"name": null})),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["errors"][0]["field"], "name");

    let deleted = call(&api, "DELETE", &format!("/accounts/{id}"), None).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(deleted.body, Value::Null);
    assert_eq!(
        call(&api, "GET", &format!("/accounts/{id}"), None)
            .await
            .status,
        404
    );
    assert_eq!(
        call(&api, "DELETE", &format!("/accounts/{id}"), None)
            .await
            .status,
        404
    );
    assert_eq!(
        call(
            &api,
            "PUT",
            &format!("/accounts/{id}"),
            Some(json!({"name": "x", "email": "a@b.co"}))
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn client_chosen_ids_and_conflicts() {
    let api = api("bookshop");
    let book = json!({"isbn": "978-0-13-110362-7", "title": "The C Programming Language", "authors": ["Kernighan", "Ritchie"], "price": 45.5});
    let first = call(&api, "POST", "/books", Some(book.clone())).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["isbn"], "978-0-13-110362-7");
    assert_eq!(first.body["in_stock"], true);
    let again = call(&api, "POST", "/books", Some(book)).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.headers[CONTENT_TYPE], "application/problem+json");

    for bad in [json!("a/b"), json!(""), json!(7), json!("x".repeat(129))] {
        let r = call(
            &api,
            "POST",
            "/books",
            Some(json!({"isbn": bad, "title": "t", "authors": [], "price": 1})),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.body["errors"][0]["field"], "isbn");
    }
    // The key in a PUT body must match the path.
    let r = call(
        &api,
        "PUT",
        "/books/978-0-13-110362-7",
        Some(json!({"isbn": "other", "title": "t", "authors": [], "price": 1})),
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn if_match_gives_optimistic_concurrency() {
    let api = api("fleet");
    let created = call(
        &api,
        "POST",
        "/vehicles",
        Some(json!({"vin": "V1", "plate": "AB 123", "make": "Volvo"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let tag = etag(&created);

    let mut req = event("PATCH", "/vehicles/V1", Some(r#"{"mileage_km": 10.5}"#));
    req.headers
        .insert(http::header::IF_MATCH, HeaderValue::from_str(&tag).unwrap());
    let first = send(&api, req.clone()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    // The same ETag again: the item has moved on.
    let second = send(&api, req).await;
    assert_eq!(second.status, 412);

    let mut del = event("DELETE", "/vehicles/V1", None);
    del.headers
        .insert(http::header::IF_MATCH, HeaderValue::from_str(&tag).unwrap());
    assert_eq!(send(&api, del.clone()).await.status, 412);
    del.headers.insert(
        http::header::IF_MATCH,
        HeaderValue::from_str(&etag(&first)).unwrap(),
    );
    assert_eq!(send(&api, del).await.status, 204);

    let mut weird = event("PUT", "/vehicles/V1", Some("{}"));
    weird.headers.insert(
        http::header::IF_MATCH,
        HeaderValue::from_static("no-quotes"),
    );
    assert_eq!(send(&api, weird).await.status, 400);
}

/// A store where another writer changes an item between the API's read
/// and its write, `meddles` times.
struct Meddling {
    inner: MemStore,
    meddles: std::sync::atomic::AtomicUsize,
}

impl Store for Meddling {
    async fn get(&self, id: &str) -> Result<Option<Item>, StoreError> {
        self.inner.get(id).await
    }
    async fn create(&self, item: &Item) -> Result<(), StoreError> {
        self.inner.create(item).await
    }
    async fn replace(&self, item: &Item, expect: &Expect) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self
            .meddles
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
            && let Some(other) = self.inner.0.lock().unwrap().get_mut(&item.id)
        {
            other.rev = format!("{}-other", other.rev);
            other.doc.insert("mileage_km".into(), json!(99.0));
        }
        self.inner.replace(item, expect).await
    }
    async fn delete(&self, id: &str, expect: &Expect) -> Result<(), StoreError> {
        self.inner.delete(id, expect).await
    }
    async fn search(&self, s: &Search) -> Result<Page, StoreError> {
        self.inner.search(s).await
    }
}

#[tokio::test]
async fn a_write_in_between_fails_only_a_write_that_named_a_revision() {
    let api = Api::new(
        tenant("fleet"),
        Meddling {
            inner: MemStore::default(),
            meddles: 0.into(),
        },
    );
    let created = call(
        &api,
        "POST",
        "/vehicles",
        Some(json!({"vin": "V1", "plate": "AB 123", "make": "Volvo"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let put = |if_match: Option<String>| {
        let mut req = event(
            "PUT",
            "/vehicles/V1",
            Some(r#"{"plate": "CD 456", "make": "Saab", "mileage_km": 1.5}"#),
        );
        if let Some(tag) = if_match {
            req.headers
                .insert(http::header::IF_MATCH, HeaderValue::from_str(&tag).unwrap());
        }
        req
    };
    let meddle = |n: usize| {
        api.store
            .meddles
            .store(n, std::sync::atomic::Ordering::SeqCst)
    };

    // `If-Match: *` asks only that the item exists: the write in between
    // makes the API read again and write over it, as without If-Match.
    for if_match in [Some("*".to_owned()), None] {
        meddle(2);
        let r = send(&api, put(if_match.clone())).await;
        assert_eq!(r.status, 200, "{if_match:?}: {}", r.body);
        assert_eq!(r.body["mileage_km"], json!(1.5));
        assert_eq!(
            api.store.meddles.load(std::sync::atomic::Ordering::SeqCst),
            0
        );
    }

    // A named revision that another write replaced is 412, and the other
    // write stays.
    let current = send(&api, event("GET", "/vehicles/V1", None)).await;
    meddle(1);
    let r = send(&api, put(Some(etag(&current)))).await;
    assert_eq!(r.status, 412, "{}", r.body);
    let after = send(&api, event("GET", "/vehicles/V1", None)).await;
    assert_eq!(after.body["mileage_km"], json!(99.0));
    assert_eq!(after.body["make"], json!("Saab"));

    // A writer that never stops changing the item: 409 after the attempts.
    meddle(usize::MAX);
    let r = send(&api, put(Some("*".to_owned()))).await;
    assert_eq!(r.status, 409, "{}", r.body);
}

#[tokio::test]
async fn validation_lists_every_bad_field() {
    let api = api("events");
    let r = call(
        &api,
        "POST",
        "/events",
        Some(json!({"title": 5, "venue": "x".repeat(121), "starts": "tomorrow", "capacity": 0, "genres": ["rock", "polka"], "extra": 1})),
    )
    .await;
    assert_eq!(r.status, 400);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["capacity", "extra", "genres", "starts", "title", "venue"]
    );
    assert_eq!(r.body["status"], 400);
    assert_eq!(r.body["title"], "Bad Request");
}

#[tokio::test]
async fn bodies_are_checked_before_anything_is_stored() {
    let api = api("acme");
    let mut no_type = event(
        "POST",
        "/accounts",
        Some(r#"{"name":"a","email":"a@b.co"}"#),
    );
    no_type.headers.remove(CONTENT_TYPE);
    assert_eq!(send(&api, no_type).await.status, 415);
    let mut text = event("POST", "/accounts", Some("name=a"));
    text.headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    assert_eq!(send(&api, text).await.status, 415);

    assert_eq!(
        send(&api, event("POST", "/accounts", Some("{not json")))
            .await
            .status,
        400
    );
    assert_eq!(
        send(&api, event("POST", "/accounts", Some("[1,2]")))
            .await
            .status,
        400
    );
    assert_eq!(
        send(&api, event("POST", "/accounts", Some("")))
            .await
            .status,
        400
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(
        send(&api, event("POST", "/accounts", Some(&deep)))
            .await
            .status,
        400
    );

    let big =
        json!({"name": "a", "email": "a@b.co", "company": "x".repeat(MAX_ITEM_BYTES)}).to_string();
    assert_eq!(
        send(&api, event("POST", "/accounts", Some(&big)))
            .await
            .status,
        413
    );

    let mut b64 = event(
        "POST",
        "/accounts",
        Some(&STANDARD.encode(r#"{"name":"B","email":"b@b.co"}"#)),
    );
    b64.is_base64_encoded = true;
    assert_eq!(send(&api, b64).await.status, 201);
    let mut bad64 = event("POST", "/accounts", Some("%%%"));
    bad64.is_base64_encoded = true;
    assert_eq!(send(&api, bad64).await.status, 400);

    assert_eq!(
        send(&api, event("GET", "/accounts/a%2Fb", None))
            .await
            .status,
        400
    );
    let mut ctl = event("GET", "/accounts/x", None);
    ctl.path_parameters.insert("id".into(), "a\u{7}b".into());
    assert_eq!(send(&api, ctl).await.status, 400);
    assert_eq!(
        api.store().0.lock().unwrap().len(),
        1,
        "only the one valid add was stored"
    );
}

#[tokio::test]
async fn search_filters_pages_and_guards_its_cursor() {
    let api = api("acme");
    for i in 0..25 {
        let plan = if i % 5 == 0 { "pro" } else { "free" };
        let r = call(&api, "POST", "/accounts", Some(json!({"id": format!("a{i:02}"), "name": format!("n{i}"), "email": format!("u{i}@x.io"), "plan": plan}))).await;
        assert_eq!(r.status, 201);
    }
    let pro = call(&api, "GET", "/accounts?plan=pro", None).await;
    assert_eq!(pro.status, 200);
    assert_eq!(pro.body["items"].as_array().unwrap().len(), 5);
    assert_eq!(pro.body["next"], Value::Null);

    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(n) => format!("/accounts?limit=10&next={n}"),
            None => "/accounts?limit=10".to_owned(),
        };
        let page = call(&api, "GET", &path, None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        seen.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned()),
        );
        match page.body["next"].as_str() {
            Some(n) => next = Some(n.to_owned()),
            None => break,
        }
        if seen.len() > 30 {
            panic!("paging does not end");
        }
    }
    assert_eq!(seen.len(), 25);
    seen.dedup();
    assert_eq!(seen.len(), 25);

    let page = call(&api, "GET", "/accounts?limit=10", None).await;
    let cursor = page.body["next"].as_str().unwrap().to_owned();
    // Tampered: flip one character of the payload.
    let mut bytes = cursor.clone().into_bytes();
    bytes[2] = if bytes[2] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert_eq!(
        call(&api, "GET", &format!("/accounts?next={tampered}"), None)
            .await
            .status,
        400
    );
    assert_eq!(
        call(&api, "GET", "/accounts?next=garbage", None)
            .await
            .status,
        400
    );
    // Another search's cursor.
    assert_eq!(
        call(
            &api,
            "GET",
            &format!("/accounts?plan=free&next={cursor}"),
            None
        )
        .await
        .status,
        400
    );
    // Another tenant's cursor for the same shape of search.
    let other = Api::new(tenant("acme"), MemStore::default()).cursor_secret(b"another deployment");
    assert_eq!(
        call(&other, "GET", &format!("/accounts?next={cursor}"), None)
            .await
            .status,
        400
    );
    // The right one works.
    assert_eq!(
        call(
            &api,
            "GET",
            &format!("/accounts?limit=10&next={cursor}"),
            None
        )
        .await
        .status,
        200
    );

    for bad in [
        "/accounts?limit=0",
        "/accounts?limit=101",
        "/accounts?limit=x",
        "/accounts?colour=red",
        "/accounts?plan=a&plan=b",
    ] {
        let r = call(&api, "GET", bad, None).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(
            r.body["errors"][0]["field"].is_string(),
            "{bad}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn typed_filters() {
    let api = api("fleet");
    for (vin, year, active, depots) in [
        ("A", 2001, true, vec!["north"]),
        ("B", 2010, false, vec!["north", "south"]),
    ] {
        let r = call(&api, "POST", "/vehicles", Some(json!({"vin": vin, "plate": "P1", "make": "M", "year": year, "active": active, "depots": depots}))).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let ids = |s: &Sent| {
        s.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["vin"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&call(&api, "GET", "/vehicles?year=2010", None).await),
        ["B"]
    );
    assert_eq!(
        ids(&call(&api, "GET", "/vehicles?active=true", None).await),
        ["A"]
    );
    assert_eq!(
        ids(&call(&api, "GET", "/vehicles?depots=south", None).await),
        ["B"]
    );
    assert_eq!(
        ids(&call(&api, "GET", "/vehicles?depots=north&year=2001", None).await),
        ["A"]
    );
    assert_eq!(
        call(&api, "GET", "/vehicles?year=new", None).await.status,
        400
    );
    assert_eq!(
        call(&api, "GET", "/vehicles?active=yes", None).await.status,
        400
    );
}

#[tokio::test]
async fn methods_the_tenant_does_not_enable_are_405() {
    let clinic = api("clinic");
    let r = call(&clinic, "DELETE", "/appointments/x1", None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers[ALLOW], "GET, PUT, PATCH");
    assert_eq!(
        call(&clinic, "POST", "/appointments/x1", Some(json!({})))
            .await
            .status,
        405
    );
    assert_eq!(
        call(&clinic, "DELETE", "/appointments", None).await.status,
        405
    );

    // A function deployed for one operation serves only that one.
    let get_only = api("acme").only(Some(Operation::Get));
    assert_eq!(call(&get_only, "GET", "/accounts", None).await.status, 405);
    assert_eq!(
        call(&get_only, "GET", "/accounts/nope", None).await.status,
        404
    );
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let api = api("acme");
    assert_eq!(call(&api, "GET", "/users", None).await.status, 404);
    let mut req = event("GET", "/accounts/x/y", None);
    req.resource = None;
    assert_eq!(send(&api, req).await.status, 404);
}

#[tokio::test]
async fn routes_from_the_path_when_there_is_no_resource() {
    let api = api("acme");
    let mut add = event(
        "POST",
        "/accounts",
        Some(r#"{"id":"a~1","name":"n","email":"e@x.io"}"#),
    );
    add.resource = None;
    assert_eq!(send(&api, add).await.status, 201);
    let mut get = event("GET", "/accounts/a%7E1", None);
    get.resource = None;
    get.path_parameters.clear();
    let r = send(&api, get).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], "a~1");
}

#[test]
fn item_size_counts_names_and_values() {
    let t = tenant("acme");
    let item = Item {
        id: "abc".into(),
        rev: "r".into(),
        doc: json!({"name": "xy", "email": "a@b.c"})
            .as_object()
            .unwrap()
            .clone(),
    };
    // key "id"+"abc", "_rev"+"r", "name"+"xy", "email"+"a@b.c"
    assert_eq!(
        item_size(&t.collection, &item),
        2 + 3 + 4 + 1 + 4 + 2 + 5 + 5
    );
}

#[test]
fn items_render_as_the_key_then_their_fields_in_order() {
    let t = tenant("fleet");
    let c = &t.collection;
    let mut doc = Map::new();
    doc.insert("plate".into(), json!("AB 123"));
    doc.insert("make".into(), json!("Volvo"));
    doc.insert("mileage_km".into(), json!(10.5));
    let mut item = Item {
        id: "V1".into(),
        rev: "r1".into(),
        doc,
    };
    let text = |item: &Item| serde_json::to_string(&Rendered { c, item }).unwrap();
    // `active` is not stored but has a default: it reads as the default,
    // after the stored fields.
    assert_eq!(
        text(&item),
        r#"{"vin":"V1","plate":"AB 123","make":"Volvo","mileage_km":10.5,"active":true}"#
    );
    // A document holding the key (never written so) shows its value in
    // the key's place, once.
    item.doc.insert("vin".into(), json!("other"));
    assert_eq!(
        text(&item),
        r#"{"vin":"other","plate":"AB 123","make":"Volvo","mileage_km":10.5,"active":true}"#
    );
    let page = PageBody {
        items: vec![Rendered { c, item: &item }],
        next: None,
    };
    let page: Value = serde_json::from_str(&serde_json::to_string(&page).unwrap()).unwrap();
    assert_eq!(page["items"][0]["make"], "Volvo");
    assert_eq!(page["next"], Value::Null);
}

/// Values DynamoDB refuses as an index key (empty, over 2,048 bytes) or
/// as a number (outside its range) are 400s with an `errors` entry, in
/// writes and in searches, on every store: DynamoDB would answer
/// `ValidationException`, a 500 to the client.
#[tokio::test]
async fn values_dynamodb_refuses_are_400s() {
    let text = "[tenant]\ndisplay_name = \"Gigs\"\n[collection]\nname = \"gigs\"\n[collection.fields]\n\
                venue = { type = \"string\", index = true }\n\
                note = { type = \"string\", max_length = 1000, index = true }\n\
                price = { type = \"number\" }\n\
                seats = { type = \"integer\", index = true }\n\
                memo = { type = \"string\" }\n\
                [usage_plan]\nrate = 1\nburst = 1\n";
    let tenant = Tenant::parse(Path::new("tenants/gigs.toml"), text).unwrap();
    let api = Api::new(Arc::new(tenant), MemStore::default());
    let long = "x".repeat(2049);
    let wide = "\u{1F600}".repeat(600); // 600 characters, 2,400 bytes
    for (body, field, message) in [
        (
            json!({"venue": ""}),
            "venue",
            "must not be empty (the field is indexed)",
        ),
        (
            json!({"venue": long}),
            "venue",
            "must be at most 2048 bytes long in UTF-8 (the field is indexed), found 2049",
        ),
        (
            json!({"venue": "v", "note": wide}),
            "note",
            "must be at most 2048 bytes long in UTF-8 (the field is indexed), found 2400",
        ),
        (
            json!({"venue": "v", "price": 1e200}),
            "price",
            "must be 0 or from 1E-130 to 9.9999999999999999999999999999999999999E+125 in magnitude with at most 38 significant digits, found 1e+200 (too large)",
        ),
        (
            json!({"venue": "v", "price": -1e-131}),
            "price",
            "must be 0 or from 1E-130 to 9.9999999999999999999999999999999999999E+125 in magnitude with at most 38 significant digits, found -1e-131 (too close to zero)",
        ),
    ] {
        let r = call(&api, "POST", "/gigs", Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(
            r.body["errors"],
            json!([{"field": field, "message": message}]),
            "{body}"
        );
        assert_eq!(r.headers[CONTENT_TYPE], "application/problem+json");
    }
    // The same values in an update are refused alike.
    let created = call(
        &api,
        "POST",
        "/gigs",
        Some(json!({"venue": "v", "memo": ""})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let r = call(
        &api,
        "PATCH",
        &format!("/gigs/{id}"),
        Some(json!({"venue": ""})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"][0]["field"], "venue");
    let r = call(
        &api,
        "PUT",
        &format!("/gigs/{id}"),
        Some(json!({"venue": "v", "price": 1e-300})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"][0]["field"], "price");

    // Searches: an empty or oversized indexed value, an unstorable number.
    for (query, field) in [
        ("venue=", "venue"),
        (&*format!("venue={long}"), "venue"),
        ("note=", "note"),
        ("price=1e-200", "price"),
    ] {
        let r = call(&api, "GET", &format!("/gigs?{query}"), None).await;
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert_eq!(r.body["errors"][0]["field"], field, "{query}");
    }
    // What DynamoDB takes still works: an empty string where it is not a
    // key, the largest key, the extreme numbers.
    let r = call(&api, "GET", "/gigs?memo=", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let edge = json!({"venue": "y".repeat(2048), "price": 9.99e125});
    let r = call(&api, "POST", "/gigs", Some(edge)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(
        &api,
        "POST",
        "/gigs",
        Some(json!({"venue": "z", "price": 1e-130})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// The same store served under a tenant file, then under that file
/// changed: the way items stored before a change meet the new file.
fn gigs(fields: &str) -> Arc<Tenant> {
    let text = format!(
        "[tenant]\ndisplay_name = \"Gigs\"\n[collection]\nname = \"gigs\"\n[collection.fields]\n{fields}\n[usage_plan]\nrate = 1\nburst = 1\n"
    );
    Arc::new(Tenant::parse(Path::new("tenants/gigs.toml"), &text).unwrap())
}

/// A new field with a `default` fills items stored before it, when they
/// are read (get and search) and when they are written (PATCH keeps the
/// filled value, PUT too when it leaves the field out), so a new required
/// field never strands them.
#[tokio::test]
async fn a_default_fills_items_stored_before_its_field() {
    let before = Api::new(gigs("venue = { type = \"string\" }"), MemStore::default());
    let r = call(
        &before,
        "POST",
        "/gigs",
        Some(json!({"id": "g1", "venue": "Hall"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let store = before.store;
    let after = Api::new(
        gigs(
            "venue = { type = \"string\" }\n\
             status = { type = \"string\", required = true, enum = [\"on\", \"off\"], default = \"on\" }",
        ),
        store,
    );
    let r = call(&after, "GET", "/gigs/g1", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"id": "g1", "venue": "Hall", "status": "on"}));
    // Stored as it was: filling on read writes nothing.
    assert!(
        !after.store.0.lock().unwrap()["g1"]
            .doc
            .contains_key("status")
    );
    let r = call(&after, "GET", "/gigs", None).await;
    assert_eq!(r.body["items"][0]["status"], "on", "{}", r.body);

    let r = call(&after, "PATCH", "/gigs/g1", Some(json!({"venue": "Club"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"id": "g1", "venue": "Club", "status": "on"}));
    assert_eq!(after.store.0.lock().unwrap()["g1"].doc["status"], "on");
    let r = call(
        &after,
        "PUT",
        "/gigs/g1",
        Some(json!({"venue": "Barn", "status": "off"})),
    )
    .await;
    assert_eq!(
        r.body,
        json!({"id": "g1", "venue": "Barn", "status": "off"})
    );
}

/// A field removed from the tenant file keeps its stored values: the API
/// stops returning them, a write (PATCH or PUT) keeps them, and a client
/// cannot set them; the file that declares the field again shows them.
#[tokio::test]
async fn a_removed_field_keeps_its_stored_values_unseen() {
    let both = "venue = { type = \"string\" }\nnote = { type = \"string\" }";
    let before = Api::new(gigs(both), MemStore::default());
    let body = json!({"id": "g1", "venue": "Hall", "note": "bring ears"});
    assert_eq!(call(&before, "POST", "/gigs", Some(body)).await.status, 201);
    let after = Api::new(gigs("venue = { type = \"string\" }"), before.store);
    let r = call(&after, "GET", "/gigs/g1", None).await;
    assert_eq!(r.body, json!({"id": "g1", "venue": "Hall"}));
    let r = call(&after, "GET", "/gigs", None).await;
    assert_eq!(r.body["items"][0], json!({"id": "g1", "venue": "Hall"}));

    let r = call(&after, "PATCH", "/gigs/g1", Some(json!({"venue": "Club"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"id": "g1", "venue": "Club"}));
    let r = call(&after, "PUT", "/gigs/g1", Some(json!({"venue": "Barn"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(&after, "PATCH", "/gigs/g1", Some(json!({"note": "x"}))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        after.store.0.lock().unwrap()["g1"].doc["note"],
        "bring ears"
    );

    let again = Api::new(gigs(both), after.store);
    let r = call(&again, "GET", "/gigs/g1", None).await;
    assert_eq!(
        r.body,
        json!({"id": "g1", "venue": "Barn", "note": "bring ears"})
    );
}

/// A GET answers a kept rendering only while the stored item is exactly
/// the one it was made from: a write through any path is seen by the next
/// GET, the bulk path's (`data import`) included, and so is a write from
/// another connection (another process) that keeps the revision.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_kept_item_is_never_served_after_a_write() {
    use crate::sqlite::{Database, Put};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("local.db");
    let db = Database::open(&path).unwrap();
    let t = tenant("acme");
    let api = Api::new(Arc::clone(&t), db.table(&t).await.unwrap());
    let get =
        async |api: &Api<crate::sqlite::SqliteTable>| call(api, "GET", "/accounts/a-1", None).await;

    let created = call(
        &api,
        "POST",
        "/accounts",
        Some(json!({"id": "a-1", "name": "One", "email": "one@example.com"})),
    )
    .await;
    assert_eq!(created.status, 201);
    // Twice: the second answer is the kept one.
    for _ in 0..2 {
        let got = get(&api).await;
        assert_eq!((got.status, &got.body["name"]), (200, &json!("One")));
        assert_eq!(etag(&got), etag(&created));
    }

    let put = call(
        &api,
        "PUT",
        "/accounts/a-1",
        Some(json!({"name": "Two", "email": "one@example.com"})),
    )
    .await;
    assert_eq!(put.status, 200);
    let got = get(&api).await;
    assert_eq!((&got.body["name"], etag(&got)), (&json!("Two"), etag(&put)));

    let patched = call(
        &api,
        "PATCH",
        "/accounts/a-1",
        Some(json!({"name": "Three"})),
    )
    .await;
    assert_eq!(patched.status, 200);
    let got = get(&api).await;
    assert_eq!(
        (&got.body["name"], etag(&got)),
        (&json!("Three"), etag(&patched))
    );

    // The bulk path, writing new content under the revision the kept
    // rendering has (an import of a line naming a revision does that).
    let rev = etag(&got).trim_matches('"').to_owned();
    let mut doc = got.body.as_object().unwrap().clone();
    doc.remove("id");
    doc.insert("name".into(), json!("Four"));
    let line = Item {
        id: "a-1".into(),
        rev: rev.clone(),
        doc,
    };
    let written = api
        .store()
        .put_many(vec![("a-1".to_owned(), line)], |item, _| {
            Put::Write(item, ())
        })
        .await
        .unwrap();
    assert!(written.is_ok());
    let got = get(&api).await;
    assert_eq!(
        (&got.body["name"], etag(&got)),
        (&json!("Four"), format!("\"{rev}\""))
    );

    // Another connection, as another process would write: same revision,
    // a document of the same length.
    let other = rusqlite::Connection::open(&path).unwrap();
    let changed = other
        .execute(
            &format!(
                "UPDATE \"{}\" SET doc = replace(doc, 'Four', 'Five') WHERE id = 'a-1'",
                api.store().name()
            ),
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let got = get(&api).await;
    assert_eq!(
        (&got.body["name"], etag(&got)),
        (&json!("Five"), format!("\"{rev}\""))
    );

    let deleted = call(&api, "DELETE", "/accounts/a-1", None).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(get(&api).await.status, 404);
    let again = call(
        &api,
        "POST",
        "/accounts",
        Some(json!({"id": "a-1", "name": "Six", "email": "six@example.com"})),
    )
    .await;
    assert_eq!(again.status, 201);
    let got = get(&api).await;
    assert_eq!(
        (&got.body["name"], etag(&got)),
        (&json!("Six"), etag(&again))
    );
}
