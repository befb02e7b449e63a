//! Fuzzing of the runtime's request handling with proptest, through
//! `Api::handle` over the SQLite store, for the five real tenants.
//!
//! `cargo fuzz` needs a nightly toolchain and this workspace builds on
//! stable only, so the fuzzing runs as bounded property tests in the normal
//! test run: first every committed seed event (`tests/data/fuzz-seeds/api/`
//! and the real API Gateway events in `tests/data/events/`), then a few
//! hundred generated proxy events: methods, paths, resources and path
//! parameters (ids with `/`, `..`, control characters, unicode), query
//! strings (repeated parameters, tampered and foreign `next` cursors),
//! headers (If-Match garbage, content types, bytes that are not UTF-8) and
//! bodies (random bytes, deep nesting, huge strings, wrong types, a base64
//! flag on data that is not base64). Set `PROPTEST_CASES` for a longer run.
//!
//! Properties: `handle` never panics or hangs; the status is one the API
//! documents (200, 201, 204, 400, 404, 405, 409, 412, 413, 415), never a
//! 5xx; every answer but a 204 has a JSON body of the right content type,
//! problems carry their status and a detail; a tampered cursor is a 400.
//! And a successful write followed by a GET returns the same document.
//!
//! One file of over 600 lines: the generators and the properties they feed
//! are read together, and a property is only as good as its grammar.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use http::header::{HeaderName, IF_MATCH};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::json;

use std::collections::BTreeMap;

use aws_lambda_events::encodings::Body;
use base64::engine::general_purpose::STANDARD;
use http::header::CONTENT_TYPE;
use serde_json::Map;

use super::*;
use crate::field::{Field, Format, StringRules};
use crate::sqlite::{Database, SqliteTable};

/// Generated cases per property unless `PROPTEST_CASES` says otherwise.
const EVENT_CASES: u32 = 1000;
const ROUND_TRIP_CASES: u32 = 200;
/// Far above what any request takes; a request past it counts as a hang.
const HANG: Duration = Duration::from_secs(10);
/// The statuses the API documents.
const DOCUMENTED: [i64; 10] = [200, 201, 204, 400, 404, 405, 409, 412, 413, 415];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn config(cases: u32, persistence: &'static str) -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(cases),
        // Failing cases are kept beside the seed corpus and replayed first
        // by every later run.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(persistence))),
        ..Config::default()
    }
}

/// The five tenants over one SQLite database, each also as single-operation
/// functions (as on AWS), with a few items and a real cursor each.
struct Fixture {
    rt: tokio::runtime::Runtime,
    tenants: Vec<Arc<Tenant>>,
    /// Per tenant: the whole API, then one per operation.
    apis: Vec<Vec<Api<SqliteTable>>>,
    /// Per tenant: a `next` cursor a real search returned.
    cursors: Vec<String>,
    /// Per tenant: ids of stored items.
    ids: Vec<Vec<String>>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("fuzz.sqlite")).unwrap();
    let tenants: Vec<Arc<Tenant>> = crate::tenant::load_dir(&repo().join("tenants"))
        .unwrap()
        .into_iter()
        .map(Arc::new)
        .collect();
    let mut seeder = TestRunner::deterministic();
    let (apis, cursors, ids) = rt.block_on(async {
        let (mut apis, mut cursors, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        for t in &tenants {
            let table = db.table(t).await.unwrap();
            let mut these = vec![Api::new(Arc::clone(t), table.clone())];
            for op in Operation::ALL {
                these.push(Api::new(Arc::clone(t), table.clone()).only(Some(op)));
            }
            let mut stored = Vec::new();
            for i in 0..3 {
                let mut doc = valid_doc(t).new_tree(&mut seeder).unwrap().current();
                let id = format!("seed-{i}");
                doc.insert(t.collection.key.clone(), json!(id));
                let r = these[0]
                    .handle(event(
                        &t.collection.name,
                        "POST",
                        None,
                        Some(&Value::Object(doc).to_string()),
                    ))
                    .await;
                assert_eq!(r.status_code, 201, "seeding {}: {:?}", t.id, r.body);
                stored.push(id);
            }
            let mut search = event(&t.collection.name, "GET", None, None);
            search.query_string_parameters = [("limit".to_owned(), "1".to_owned())]
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>()
                .into();
            let r = these[0].handle(search).await;
            let page: Value = serde_json::from_str(&body_text(&r)).unwrap();
            cursors.push(page["next"].as_str().expect("a next cursor").to_owned());
            apis.push(these);
            ids.push(stored);
        }
        (apis, cursors, ids)
    });
    Fixture {
        rt,
        tenants,
        apis,
        cursors,
        ids,
        _dir: dir,
    }
}

/// A well-formed event for the collection or one of its items.
fn event(
    collection: &str,
    method: &str,
    id: Option<&str>,
    body: Option<&str>,
) -> ApiGatewayProxyRequest {
    let mut req = ApiGatewayProxyRequest::default();
    req.http_method = method.parse().unwrap();
    match id {
        None => {
            req.resource = Some(format!("/{collection}"));
            req.path = Some(format!("/{collection}"));
        }
        Some(id) => {
            req.resource = Some(format!("/{collection}/{{id}}"));
            req.path = Some(format!("/{collection}/{id}"));
            req.path_parameters.insert("id".into(), id.to_owned());
        }
    }
    req.request_context.stage = Some("prod".into());
    req.request_context.path = req.path.as_ref().map(|p| format!("/prod{p}"));
    if let Some(b) = body {
        req.body = Some(b.to_owned());
        req.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    req
}

fn body_text(r: &ApiGatewayProxyResponse) -> String {
    match &r.body {
        Some(Body::Text(t)) => t.clone(),
        Some(Body::Binary(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// Runs one event and checks what every answer must be.
fn answer(
    fx: &Fixture,
    api: &Api<SqliteTable>,
    req: ApiGatewayProxyRequest,
) -> Result<(i64, Value, HeaderMap), TestCaseError> {
    let r = fx
        .rt
        .block_on(async { tokio::time::timeout(HANG, api.handle(req)).await });
    let Ok(r) = r else {
        return Err(TestCaseError::fail(format!("no answer within {HANG:?}")));
    };
    let status = r.status_code;
    prop_assert!(
        DOCUMENTED.contains(&status),
        "status {} is not documented: {:?}",
        status,
        r.body
    );
    let text = body_text(&r);
    if status == 204 {
        prop_assert!(text.is_empty(), "a 204 with a body: {}", text);
        return Ok((status, Value::Null, r.headers));
    }
    let body: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "{status} body is not JSON ({e}): {text:?}"
            )));
        }
    };
    let content_type = r
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if status >= 400 {
        prop_assert_eq!(content_type, "application/problem+json");
        prop_assert_eq!(&body["status"], &json!(status));
        prop_assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "a problem without detail: {}",
            body
        );
        if status == 405 {
            prop_assert!(r.headers.contains_key(ALLOW), "405 without Allow");
        }
    } else {
        prop_assert_eq!(content_type, "application/json");
        prop_assert!(
            body.is_object(),
            "{} body is not an object: {}",
            status,
            body
        );
    }
    Ok((status, body, r.headers))
}

// ---- valid values, from the fields' own rules ----

fn date_time() -> impl Strategy<Value = String> {
    (
        1970u32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        prop::option::of(0u32..1000),
        prop_oneof![
            Just("Z".to_owned()),
            (0u32..14, prop::bool::ANY)
                .prop_map(|(h, neg)| format!("{}{h:02}:00", if neg { '-' } else { '+' }))
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, off)| {
            let frac = frac.map(|f| format!(".{f:03}")).unwrap_or_default();
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{off}")
        })
}

fn regex(source: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(source)
        .unwrap_or_else(|e| panic!("{source}: {e}"))
        .boxed()
}

fn valid_string(rules: &StringRules) -> BoxedStrategy<String> {
    if let Some(allowed) = &rules.allowed {
        return prop::sample::select(allowed.clone()).boxed();
    }
    let min = rules.min_length.unwrap_or(0) as usize;
    let max = (rules.max_length.unwrap_or(60) as usize).clamp(min, min + 60);
    let base = match (&rules.pattern, rules.format) {
        (Some(p), _) => regex(&p.source),
        (None, Some(Format::Email)) => regex("[a-z0-9._%+-]{1,20}@[a-z0-9-]{1,20}\\.[a-z]{2,6}"),
        (None, Some(Format::Uri)) => regex("(https|http|urn|mailto):[a-zA-Z0-9/_~.%-]{1,40}"),
        (None, Some(Format::DateTime)) => date_time().boxed(),
        (None, None) => prop::collection::vec(any::<char>(), min..=max)
            .prop_map(|c| c.into_iter().collect::<String>())
            .boxed(),
    };
    let rules = rules.clone();
    base.prop_filter("the field's own rules", move |s| rules.check(s).is_ok())
        .boxed()
}

fn valid_value(field: &Field) -> BoxedStrategy<Value> {
    let f = field.clone();
    let base: BoxedStrategy<Value> = match &field.kind {
        Kind::String(rules) => valid_string(rules).prop_map(Value::String).boxed(),
        Kind::Integer { min, max } => (min.unwrap_or(-(1 << 52))..=max.unwrap_or(1 << 52))
            .prop_map(Value::from)
            .boxed(),
        Kind::Number { min, max } => {
            let (lo, hi) = (min.unwrap_or(-1e12), max.unwrap_or(1e12));
            prop_oneof![
                (lo..=hi).prop_map(|x| json!(x)),
                ((lo.ceil() as i64)..=(hi.floor() as i64)).prop_map(|i| json!(i)),
                Just(json!(lo)),
            ]
            .boxed()
        }
        Kind::Boolean => any::<bool>().prop_map(Value::Bool).boxed(),
        Kind::Timestamp => date_time().prop_map(Value::String).boxed(),
        Kind::StringList { max_items, item } => {
            let n = max_items.unwrap_or(5).min(5) as usize;
            prop::collection::vec(valid_string(item), 0..=n)
                .prop_map(|v| Value::Array(v.into_iter().map(Value::String).collect()))
                .boxed()
        }
    };
    base.prop_filter("the field's check", move |v| f.check(v).is_ok())
        .boxed()
}

/// A document a client may send: every required field, some optional
/// ones, never an `auto` field.
fn valid_doc(t: &Tenant) -> BoxedStrategy<Map<String, Value>> {
    let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = t
        .collection
        .fields
        .iter()
        .filter(|f| f.auto.is_none())
        .map(|f| {
            let name = f.name.clone();
            let value = valid_value(f).prop_map(move |v| (name.clone(), v));
            if f.required {
                value.prop_map(Some).boxed()
            } else {
                prop::option::of(value).boxed()
            }
        })
        .collect();
    parts
        .prop_map(|fields| fields.into_iter().flatten().collect())
        .boxed()
}

// ---- hostile events ----

fn hostile_id() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9._~-]{1,20}",
        1 => Just("seed-0".to_owned()),
        1 => prop::sample::select(vec![
            "", ".", "..", "../..", "a/b", "/", "a\\b", "%2F", "a%2Fb", "..%2F..", "\u{0}", "a\u{0}b",
            "\n", "a\r\nX-Injected: 1", "\u{7f}", "\u{202e}evil", "é", "😀", "\u{fffd}", " ", "a b",
            "seed-0/", "seed-0/..", "*", "?", "#",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z]{129,140}",
        1 => ".{0,12}",
        1 => "[\\x00-\\x1f/\\\\.]{1,6}",
    ]
}

#[derive(Debug, Clone)]
enum RouteSpec {
    Collection,
    Item(String),
    /// A resource and path parameters that need not agree.
    Odd {
        resource: Option<String>,
        id: Option<String>,
        path: Option<String>,
    },
}

#[derive(Debug, Clone)]
enum CursorSpec {
    /// The real cursor of this tenant's search, as it was.
    Real,
    /// The real cursor with one character changed.
    Flip(usize, char),
    Truncate(usize),
    Append(String),
    /// Another tenant's real cursor.
    Foreign(usize),
    /// The payload of the real cursor with another tag, or the reverse.
    SwapParts,
    Garbage(String),
}

#[derive(Debug, Clone)]
enum BodySpec {
    None,
    Valid,
    Json(Value),
    Text(String),
    Bytes(Vec<u8>),
    /// `{"<field>": [[[...]]]}` or the same with objects, this deep.
    Nested(usize, bool),
    /// A valid document with one string this long.
    Huge(usize),
    /// Marked base64; `true`: really base64 of a valid document.
    Base64(bool, String),
}

#[derive(Debug, Clone)]
enum MethodSpec {
    /// One of the methods the route serves (picked by the number).
    Fitting(u8),
    Any(String),
}

impl MethodSpec {
    fn name(&self, route: &RouteSpec) -> String {
        match (self, route) {
            (MethodSpec::Any(m), _) => m.clone(),
            (MethodSpec::Fitting(n), RouteSpec::Collection) => {
                ["GET", "POST"][usize::from(*n) % 2].to_owned()
            }
            (MethodSpec::Fitting(n), _) => {
                ["GET", "PUT", "PATCH", "DELETE"][usize::from(*n) % 4].to_owned()
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Spec {
    tenant: usize,
    /// 0: the whole API; 1 to 5: one operation only.
    only: usize,
    method: MethodSpec,
    route: RouteSpec,
    query: Vec<(String, String)>,
    single_query: bool,
    cursor: Option<CursorSpec>,
    content_type: Option<Vec<u8>>,
    if_match: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    body: BodySpec,
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|x| json!(x)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn spec(t: &Tenant, tenants: usize) -> impl Strategy<Value = Spec> + use<> {
    let fields: Vec<String> = t.collection.fields.iter().map(|f| f.name.clone()).collect();
    let mut names = fields.clone();
    names.extend(["limit", "next", "id", "", "LIMIT", "a b", "é"].map(String::from));
    names.push(t.collection.key.clone());
    // Mostly a method the route has, so requests get past routing.
    let method = prop_oneof![
        8 => any::<u8>().prop_map(MethodSpec::Fitting),
        1 => prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE"]).prop_map(|m| MethodSpec::Any(m.to_owned())),
        1 => prop::sample::select(vec!["HEAD", "OPTIONS", "TRACE", "CONNECT", "get", "FUZZ", "M-SEARCH"]).prop_map(|m| MethodSpec::Any(m.to_owned())),
    ];
    let route = prop_oneof![
        4 => Just(RouteSpec::Collection),
        5 => hostile_id().prop_map(RouteSpec::Item),
        1 => (
            prop::option::of(prop_oneof![
                Just(format!("/{}", t.collection.name)),
                Just(format!("/{}/{{id}}", t.collection.name)),
                Just("/{proxy+}".to_owned()),
                ".{0,12}",
            ]),
            prop::option::of(hostile_id()),
            prop::option::of(prop_oneof![
                Just(format!("/{}", t.collection.name)),
                hostile_id().prop_map({
                    let c = t.collection.name.clone();
                    move |id| format!("/{c}/{id}")
                }),
                ".{0,16}",
            ]),
        )
            .prop_map(|(resource, id, path)| RouteSpec::Odd { resource, id, path }),
    ];
    let value = prop_oneof![
        "[a-z0-9@.:-]{0,12}",
        Just(String::new()),
        prop::sample::select(vec![
            "0",
            "1",
            "100",
            "101",
            "-1",
            "1e3",
            "NaN",
            "inf",
            "true",
            "false",
            "null",
            "P-000123",
            "2026-12-01T09:00:00Z"
        ])
        .prop_map(str::to_owned),
        ".{0,16}",
        "[0-9]{18,25}",
    ];
    let query = prop::collection::vec((prop::sample::select(names), value), 0..4);
    let cursor = prop::option::of(prop_oneof![
        Just(CursorSpec::Real),
        (any::<usize>(), any::<char>()).prop_map(|(i, c)| CursorSpec::Flip(i, c)),
        any::<usize>().prop_map(CursorSpec::Truncate),
        ".{1,8}".prop_map(CursorSpec::Append),
        (0..tenants).prop_map(CursorSpec::Foreign),
        Just(CursorSpec::SwapParts),
        prop_oneof!["[A-Za-z0-9_.-]{0,40}", ".{0,20}"].prop_map(CursorSpec::Garbage),
    ]);
    let content_type = prop::option::weighted(
        0.9,
        prop_oneof![
            6 => Just(b"application/json".to_vec()),
            4 => prop::sample::select(vec![
                "application/json",
                "application/merge-patch+json",
                "application/problem+json",
                "application/json; charset=utf-8",
                "APPLICATION/JSON",
                "text/plain",
                "application/x-www-form-urlencoded",
                "",
                "application/",
                "+json",
                "application/+json",
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
            1 => prop::collection::vec(32u8..=255, 0..20).prop_filter("a header value", |b| !b.contains(&127)),
        ],
    );
    let if_match = prop::option::of(prop_oneof![
        prop::sample::select(vec![
            "*",
            "\"\"",
            "\"x\"",
            "W/\"x\"",
            "x",
            "\"a\"b\"",
            "\"a\", \"b\"",
            " * ",
            "\"01ARZ3NDEKTSV4RRFFQ69G5FAV\""
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(32u8..=255, 0..30)
            .prop_filter("a header value", |b| !b.contains(&127)),
    ]);
    let headers = prop::collection::vec(
        (
            prop::sample::select(vec![
                "x-forwarded-for",
                "accept",
                "x-api-key",
                "content-length",
                "transfer-encoding",
                "x-amzn-trace-id",
                "cookie",
                "host",
            ])
            .prop_map(str::to_owned),
            prop::collection::vec(32u8..=255, 0..40)
                .prop_filter("a header value", |b| !b.contains(&127)),
        ),
        0..3,
    );
    let field_names: Vec<String> = fields;
    let body = prop_oneof![
        2 => Just(BodySpec::None),
        6 => Just(BodySpec::Valid),
        3 => json_value().prop_map(BodySpec::Json),
        2 => (prop::sample::select(field_names.clone()), json_value()).prop_map(|(f, v)| BodySpec::Json(json!({ f: v }))),
        1 => ".{0,40}".prop_map(BodySpec::Text),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(BodySpec::Bytes),
        1 => (1usize..400, any::<bool>()).prop_map(|(d, a)| BodySpec::Nested(d, a)),
        1 => prop_oneof![
            Just(MAX_ITEM_BYTES - 200),
            Just(MAX_ITEM_BYTES),
            Just(MAX_ITEM_BYTES + 1),
            (MAX_ITEM_BYTES - 1000)..(MAX_ITEM_BYTES + 1000),
            Just(2 * MAX_ITEM_BYTES),
        ]
        .prop_map(BodySpec::Huge),
        1 => (any::<bool>(), ".{0,30}").prop_map(|(real, s)| BodySpec::Base64(real, s)),
    ];
    (
        prop_oneof![4 => Just(0usize), 1 => 1usize..6],
        method,
        route,
        query,
        any::<bool>(),
        cursor,
        content_type,
        if_match,
        headers,
        body,
    )
        .prop_map(
            |(
                only,
                method,
                route,
                query,
                single_query,
                cursor,
                content_type,
                if_match,
                headers,
                body,
            )| Spec {
                tenant: 0,
                only,
                method,
                route,
                query,
                single_query,
                cursor,
                content_type,
                if_match,
                headers,
                body,
            },
        )
}

fn any_spec(fx: &Fixture) -> impl Strategy<Value = (Spec, Map<String, Value>)> + use<> {
    let tenants: Vec<Arc<Tenant>> = fx.tenants.clone();
    (0..tenants.len()).prop_flat_map(move |i| {
        let t = &tenants[i];
        (spec(t, tenants.len()), valid_doc(t)).prop_map(move |(mut s, doc)| {
            s.tenant = i;
            (s, doc)
        })
    })
}

/// The `next` value a cursor spec stands for.
fn cursor_text(fx: &Fixture, tenant: usize, c: &CursorSpec) -> String {
    let real = &fx.cursors[tenant];
    match c {
        CursorSpec::Real => real.clone(),
        CursorSpec::Flip(i, ch) => {
            let mut chars: Vec<char> = real.chars().collect();
            let i = i % chars.len();
            let replacement = if chars[i] == *ch {
                if *ch == 'A' { 'B' } else { 'A' }
            } else {
                *ch
            };
            chars[i] = replacement;
            chars.into_iter().collect()
        }
        CursorSpec::Truncate(i) => real.chars().take(i % real.len()).collect(),
        CursorSpec::Append(s) => format!("{real}{s}"),
        CursorSpec::Foreign(other) => {
            if *other == tenant {
                format!("{real}x")
            } else {
                fx.cursors[*other].clone()
            }
        }
        CursorSpec::SwapParts => {
            let (p, t) = real.split_once('.').unwrap();
            let other = &fx.cursors[(tenant + 1) % fx.cursors.len()];
            let (op, ot) = other.split_once('.').unwrap();
            if p.len() % 2 == 0 {
                format!("{p}.{ot}")
            } else {
                format!("{op}.{t}")
            }
        }
        CursorSpec::Garbage(g) => {
            if g == real {
                format!("{g}x")
            } else {
                g.clone()
            }
        }
    }
}

fn nested(depth: usize, array: bool) -> String {
    if array {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    } else {
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    }
}

/// The proxy event a spec describes.
fn build(fx: &Fixture, s: &Spec, doc: &Map<String, Value>) -> ApiGatewayProxyRequest {
    let t = &fx.tenants[s.tenant];
    let c = &t.collection.name;
    let mut req = ApiGatewayProxyRequest::default();
    req.http_method = Method::from_bytes(s.method.name(&s.route).as_bytes()).unwrap();
    match &s.route {
        RouteSpec::Collection => {
            req.resource = Some(format!("/{c}"));
            req.path = Some(format!("/{c}"));
        }
        RouteSpec::Item(id) => {
            let id = if id == "seed-0" {
                fx.ids[s.tenant][0].clone()
            } else {
                id.clone()
            };
            req.resource = Some(format!("/{c}/{{id}}"));
            req.path = Some(format!("/{c}/{id}"));
            req.path_parameters.insert("id".into(), id);
        }
        RouteSpec::Odd { resource, id, path } => {
            req.resource = resource.clone();
            req.path = path.clone();
            if let Some(id) = id {
                req.path_parameters.insert("id".into(), id.clone());
            }
        }
    }
    req.request_context.stage = Some("prod".into());
    req.request_context.path = req.path.as_ref().map(|p| format!("/prod{p}"));

    let mut query = s.query.clone();
    if let Some(cursor) = &s.cursor {
        query.push(("next".into(), cursor_text(fx, s.tenant, cursor)));
    }
    let mut multi: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (k, v) in &query {
        multi.entry(k.clone()).or_default().push(v.clone());
    }
    if s.single_query {
        let single: std::collections::HashMap<String, String> = multi
            .into_iter()
            .map(|(k, mut v)| (k, v.pop().unwrap_or_default()))
            .collect();
        req.query_string_parameters = single.into();
    } else {
        req.multi_value_query_string_parameters = multi.into();
    }

    for (name, value) in &s.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            req.headers.append(n, v);
        }
    }
    if let Some(ct) = &s.content_type
        && let Ok(v) = HeaderValue::from_bytes(ct)
    {
        req.headers.insert(CONTENT_TYPE, v);
    }
    if let Some(im) = &s.if_match
        && let Ok(v) = HeaderValue::from_bytes(im)
    {
        req.headers.insert(IF_MATCH, v);
    }

    let key_field = t.collection.key.clone();
    match &s.body {
        BodySpec::None => {}
        BodySpec::Valid => req.body = Some(Value::Object(doc.clone()).to_string()),
        BodySpec::Json(v) => req.body = Some(v.to_string()),
        BodySpec::Text(text) => req.body = Some(text.clone()),
        BodySpec::Bytes(b) => req.body = Some(String::from_utf8_lossy(b).into_owned()),
        BodySpec::Nested(depth, array) => {
            let field = t.collection.fields[0].name.clone();
            req.body = Some(format!("{{\"{field}\":{}}}", nested(*depth, *array)));
        }
        BodySpec::Huge(n) => {
            let mut d = doc.clone();
            d.insert(key_field, json!("huge"));
            d.insert("zz".into(), json!("x".repeat(*n)));
            // A declared string field takes it where there is one.
            if let Some(f) = t
                .collection
                .fields
                .iter()
                .find(|f| matches!(&f.kind, Kind::String(r) if r.max_length.is_none() && r.pattern.is_none() && r.allowed.is_none() && r.format.is_none()) && f.auto.is_none())
            {
                let v = d.remove("zz").unwrap();
                d.insert(f.name.clone(), v);
            }
            req.body = Some(Value::Object(d).to_string());
        }
        BodySpec::Base64(real, junk) => {
            req.is_base64_encoded = true;
            req.body = Some(if *real {
                STANDARD.encode(Value::Object(doc.clone()).to_string())
            } else {
                format!("!{junk}")
            });
        }
    }
    req
}

/// One seed: its file, tenant, operation (`None`: the whole API), the
/// status it must get when the seed says, and the event.
type Seed = (
    String,
    String,
    Option<Operation>,
    Option<i64>,
    ApiGatewayProxyRequest,
);

/// Seeds: committed events first (`{"tenant", "only"?, "expect"?,
/// "event"}`), then the real API Gateway events of the bootstrap test
/// (acme's).
fn seed_events() -> Vec<Seed> {
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = Vec::new();
    for dir in ["tests/data/fuzz-seeds/api", "tests/data/events"] {
        let mut these: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        these.sort();
        paths.extend(these);
    }
    for p in paths {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let (tenant, only, expect, event) = match v.get("event") {
            Some(event) => (
                v["tenant"].as_str().expect("a tenant").to_owned(),
                v.get("only")
                    .and_then(Value::as_str)
                    .and_then(Operation::parse),
                v.get("expect").and_then(Value::as_i64),
                event.clone(),
            ),
            None => ("acme".to_owned(), None, None, v.clone()),
        };
        match serde_json::from_value::<ApiGatewayProxyRequest>(event) {
            Ok(req) => out.push((p.display().to_string(), tenant, only, expect, req)),
            // Not every real event is an API Gateway one (07-not-apigw);
            // every committed seed is.
            Err(e) => assert!(
                !p.starts_with(repo().join("tests/data/fuzz-seeds")),
                "{}: not a proxy event: {e}",
                p.display()
            ),
        }
    }
    out
}

#[test]
fn seed_events_get_documented_answers() {
    let fx = fixture();
    let seeds = seed_events();
    assert!(
        seeds.len() >= 15,
        "the seed corpus is there: {}",
        seeds.len()
    );
    for (name, tenant, only, expected, req) in seeds {
        let i = fx
            .tenants
            .iter()
            .position(|t| t.id == tenant)
            .unwrap_or_else(|| panic!("{name}: no tenant {tenant}"));
        let api = &fx.apis[i][only.map_or(0, |op| op as usize + 1)];
        match answer(&fx, api, req) {
            Ok((status, body, _)) => {
                if let Some(expected) = expected {
                    assert_eq!(status, expected, "{name}: {body}");
                }
            }
            Err(e) => panic!("seed {name}: {e}"),
        }
    }
}

#[test]
fn hostile_events_get_documented_answers() {
    let fx = fixture();
    let mut runner = TestRunner::new(config(
        EVENT_CASES,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/fuzz-seeds/api-events.regressions"
        ),
    ));
    let executed = Cell::new(0u32);
    let statuses = std::cell::RefCell::new(BTreeMap::<i64, u32>::new());
    runner
        .run(&any_spec(&fx), |(s, doc)| {
            executed.set(executed.get() + 1);
            let req = build(&fx, &s, &doc);
            let method = s.method.name(&s.route);
            let well_formed_search = matches!(s.route, RouteSpec::Collection)
                && method == "GET"
                && matches!(s.only, 0 | 1);
            let api = &fx.apis[s.tenant][s.only];
            let (status, body, _) = answer(&fx, api, req)?;
            *statuses.borrow_mut().entry(status).or_default() += 1;
            if well_formed_search
                && let Some(c) = &s.cursor
                && !matches!(c, CursorSpec::Real)
            {
                prop_assert_eq!(status, 400, "a tampered cursor ({:?}) got {}", c, body);
            }
            if let BodySpec::Nested(depth, _) = s.body
                && depth > 128
                && matches!(method.as_str(), "POST" | "PUT" | "PATCH")
            {
                prop_assert!(
                    [400, 404, 405, 415].contains(&status),
                    "JSON {} deep got {}",
                    depth,
                    status
                );
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "api fuzz: {} hostile events, statuses {:?}",
        executed.get(),
        statuses.borrow()
    );
}

#[test]
fn a_write_then_a_get_returns_the_same_document() {
    let fx = fixture();
    let tenants = fx.tenants.clone();
    let strategy = (0..tenants.len()).prop_flat_map(move |i| {
        let t = &tenants[i];
        (
            Just(i),
            prop::option::of("[A-Za-z0-9._~-]{1,40}"),
            valid_doc(t),
            valid_doc(t),
            valid_doc(t),
            any::<bool>(),
        )
    });
    let mut runner = TestRunner::new(config(
        ROUND_TRIP_CASES,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/fuzz-seeds/api-round-trip.regressions"
        ),
    ));
    let counter = Cell::new(0u32);
    runner
        .run(
            &strategy,
            |(i, client_id, first, second, patch, merge_type)| {
                counter.set(counter.get() + 1);
                let t = &fx.tenants[i];
                let api = &fx.apis[i][0];
                let c = &t.collection;
                let mut body = first.clone();
                if let Some(id) = &client_id {
                    body.insert(c.key.clone(), json!(format!("{id}-{}", counter.get())));
                }
                let (status, created, headers) = answer(
                    &fx,
                    api,
                    event(
                        &c.name,
                        "POST",
                        None,
                        Some(&Value::Object(body).to_string()),
                    ),
                )?;
                prop_assert_eq!(status, 201, "POST: {}", created);
                let id = created[&c.key].as_str().unwrap().to_owned();
                contains(&created, &first)?;
                let etag = headers[ETAG].to_str().unwrap().to_owned();
                get_same(&fx, api, &c.name, &id, &created, &etag)?;

                // PUT replaces.
                let (status, put, headers) = answer(
                    &fx,
                    api,
                    event(
                        &c.name,
                        "PUT",
                        Some(&id),
                        Some(&Value::Object(second.clone()).to_string()),
                    ),
                )?;
                prop_assert_eq!(status, 200, "PUT: {}", put);
                contains(&put, &second)?;
                let etag2 = headers[ETAG].to_str().unwrap().to_owned();
                prop_assert_ne!(&etag2, &etag);
                get_same(&fx, api, &c.name, &id, &put, &etag2)?;

                // PATCH merges (some fields of a third valid document).
                let part: Map<String, Value> = patch
                    .into_iter()
                    .enumerate()
                    .filter(|(n, _)| n % 2 == 0)
                    .map(|(_, kv)| kv)
                    .collect();
                let mut req = event(
                    &c.name,
                    "PATCH",
                    Some(&id),
                    Some(&Value::Object(part.clone()).to_string()),
                );
                if merge_type {
                    req.headers.insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("application/merge-patch+json"),
                    );
                }
                req.headers
                    .insert(IF_MATCH, HeaderValue::from_str(&etag2).unwrap());
                let (status, patched, headers) = answer(&fx, api, req)?;
                prop_assert_eq!(status, 200, "PATCH: {}", patched);
                contains(&patched, &part)?;
                let etag3 = headers[ETAG].to_str().unwrap().to_owned();
                get_same(&fx, api, &c.name, &id, &patched, &etag3)?;
                Ok(())
            },
        )
        .unwrap();
    eprintln!("api fuzz: {} write-then-read round trips", counter.get());
}

/// Every field sent is in the answer with the value sent.
fn contains(answer: &Value, sent: &Map<String, Value>) -> Result<(), TestCaseError> {
    for (k, v) in sent {
        prop_assert_eq!(&answer[k], v, "field {} of {}", k, answer);
    }
    Ok(())
}

/// GET returns exactly what the write answered, with its ETag.
fn get_same(
    fx: &Fixture,
    api: &Api<SqliteTable>,
    collection: &str,
    id: &str,
    written: &Value,
    etag: &str,
) -> Result<Value, TestCaseError> {
    let (status, got, headers) = answer(fx, api, event(collection, "GET", Some(id), None))?;
    prop_assert_eq!(status, 200, "GET {}: {}", id, got);
    prop_assert_eq!(&got, written);
    prop_assert_eq!(headers[ETAG].to_str().unwrap(), etag);
    Ok(got)
}
