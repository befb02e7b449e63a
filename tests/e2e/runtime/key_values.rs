//! Values DynamoDB refuses and moto accepts: an empty or over-2,048-byte
//! string as an index key, a number outside DynamoDB's range. The fault
//! proxy models DynamoDB's `ValidationException` for them
//! (`dynamodb_key_values`); the runtime must answer 400 with an `errors`
//! entry before the store is asked, on AWS as on the local target, so the
//! two targets give the same status and body.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use apifactory_tests::fault_proxy::{FaultConfig, FaultProxy};
use apifactory_tests::{moto_url, unique_name};
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use http::header::{CONTENT_TYPE, HeaderValue};
use runtime::dynamo::DynamoStore;
use runtime::{Api, Store, Tenant};
use serde_json::{Value, json};

const TENANT: &str = r#"
[tenant]
display_name = "Gigs"

[collection]
name = "gigs"

[collection.fields]
venue = { type = "string", index = true }
note  = { type = "string", max_length = 1000, index = true }
price = { type = "number" }
memo  = { type = "string" }

[usage_plan]
rate = 10
burst = 10
"#;

fn tenant() -> Arc<Tenant> {
    Arc::new(Tenant::parse(Path::new("tenants/gigs.toml"), TENANT).expect("the tenant parses"))
}

/// A DynamoDB client that reaches moto through the proxy, retries off so
/// a refusal is seen once.
async fn client_through(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(apifactory_tests::REGION))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "values",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

async fn realistic_proxy() -> FaultProxy {
    FaultProxy::start(
        &moto_url(),
        FaultConfig {
            dynamodb_key_values: true,
            ..FaultConfig::with_rate(0.0)
        },
    )
    .await
}

fn event(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&Value>,
) -> ApiGatewayProxyRequest {
    let mut req = ApiGatewayProxyRequest::default();
    req.http_method = method.parse().expect("a method");
    req.path = Some(path.to_owned());
    match path.strip_prefix("/gigs/") {
        Some(id) => {
            req.resource = Some("/gigs/{id}".to_owned());
            req.path_parameters.insert("id".to_owned(), id.to_owned());
        }
        None => req.resource = Some("/gigs".to_owned()),
    }
    req.request_context.stage = Some("prod".to_owned());
    let multi: HashMap<String, Vec<String>> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
        .collect();
    req.multi_value_query_string_parameters = multi.into();
    if let Some(b) = body {
        req.body = Some(b.to_string());
        req.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    req
}

fn status_and_body(r: &ApiGatewayProxyResponse) -> (i64, Value) {
    let body = match &r.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap_or(Value::String(t.clone())),
        _ => Value::Null,
    };
    (r.status_code, body)
}

/// The bad requests, each with the field its `errors` entry names.
fn bad_requests(id: &str) -> Vec<(ApiGatewayProxyRequest, &'static str)> {
    let long = "x".repeat(2049);
    let wide = "\u{1F600}".repeat(600); // 600 characters, 2,400 bytes
    let post = |b: Value| event("POST", "/gigs", &[], Some(&b));
    vec![
        (post(json!({"venue": ""})), "venue"),
        (post(json!({"venue": long})), "venue"),
        (post(json!({"venue": "v", "note": wide})), "note"),
        (post(json!({"venue": "v", "price": 1e200})), "price"),
        (post(json!({"venue": "v", "price": -1e-131})), "price"),
        (
            event(
                "PATCH",
                &format!("/gigs/{id}"),
                &[],
                Some(&json!({"venue": ""})),
            ),
            "venue",
        ),
        (
            event(
                "PUT",
                &format!("/gigs/{id}"),
                &[],
                Some(&json!({"venue": "v", "price": 1e-300})),
            ),
            "price",
        ),
        (event("GET", "/gigs", &[("venue", "")], None), "venue"),
        (event("GET", "/gigs", &[("venue", &long)], None), "venue"),
        (event("GET", "/gigs", &[("note", "")], None), "note"),
        (event("GET", "/gigs", &[("price", "1e-200")], None), "price"),
    ]
}

/// Runs the bad requests (and a few good ones) against one store; returns
/// each answer's status and body, in order.
async fn answers<S: Store>(api: &Api<S>) -> Vec<(i64, Value)> {
    let created = api
        .handle(event(
            "POST",
            "/gigs",
            &[],
            Some(&json!({"venue": "Hall", "memo": "", "price": 10})),
        ))
        .await;
    let (status, body) = status_and_body(&created);
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("an id").to_owned();
    let mut out = Vec::new();
    for (req, field) in bad_requests(&id) {
        let what = format!(
            "{} {:?} {}",
            req.http_method,
            req.multi_value_query_string_parameters,
            req.body
                .as_deref()
                .unwrap_or_default()
                .chars()
                .take(60)
                .collect::<String>()
        );
        let (status, body) = status_and_body(&api.handle(req).await);
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["errors"][0]["field"], field, "{what}: {body}");
        assert_eq!(body["errors"].as_array().map(Vec::len), Some(1), "{body}");
        out.push((status, body));
    }
    // What DynamoDB takes: an empty string that is no key, a key of
    // exactly 2,048 bytes, the extreme numbers.
    for (query, count) in [("memo", ""), ("venue", "Hall")].iter().zip([1, 1]) {
        let r = api.handle(event("GET", "/gigs", &[*query], None)).await;
        let (status, body) = status_and_body(&r);
        assert_eq!(status, 200, "{query:?}: {body}");
        assert_eq!(
            body["items"].as_array().map(Vec::len),
            Some(count),
            "{body}"
        );
        out.push((status, json!(count)));
    }
    for good in [
        json!({"venue": "y".repeat(2048), "price": 9.99e125}),
        json!({"venue": "z", "price": 1e-130}),
    ] {
        let r = api.handle(event("POST", "/gigs", &[], Some(&good))).await;
        let (status, body) = status_and_body(&r);
        assert_eq!(status, 201, "{body}");
        out.push((status, body["price"].clone()));
    }
    out
}

/// The model first: through the proxy, DynamoDB's refusals with its
/// messages, whatever moto's own version of them.
#[tokio::test]
async fn the_proxy_refuses_what_dynamodb_refuses() {
    let proxy = realistic_proxy().await;
    let through = client_through(proxy.url()).await;
    let direct = client_through(&moto_url()).await;
    let tenant = tenant();
    let table = unique_name("values-");
    apifactory::aws::table::create_table(
        &through,
        &apifactory::aws::Pacer::new(apifactory::aws::Pace::Off),
        &table,
        &runtime::schema::TableSchema::of(&tenant.collection),
        &Default::default(),
    )
    .await
    .expect("create_table");
    let put = |client: &aws_sdk_dynamodb::Client, attr: &str, value: AttributeValue| {
        client
            .put_item()
            .table_name(&table)
            .item("id", AttributeValue::S("a".into()))
            .item(attr, value)
            .send()
    };
    let refusals = [
        (
            "venue",
            AttributeValue::S(String::new()),
            "IndexName: by_venue, IndexKey: venue",
        ),
        (
            "venue",
            AttributeValue::S("x".repeat(2049)),
            "Size limit exceeded for Index Key venue",
        ),
        (
            "price",
            AttributeValue::N("1e200".into()),
            "Number overflow",
        ),
        (
            "price",
            AttributeValue::N("1e-131".into()),
            "Number underflow",
        ),
    ];
    // Measured with moto 5.2.5: it refuses these four PutItems itself (so
    // the runtime's 400s matter on moto too); the proxy answers each as
    // DynamoDB does whatever moto's version, and the test says which moto
    // took.
    let mut moto_takes = Vec::new();
    for (attr, value, message) in refusals {
        let e = put(&through, attr, value.clone())
            .await
            .expect_err("DynamoDB refuses it");
        assert_eq!(e.code(), Some("ValidationException"), "{e:?}");
        assert!(e.message().unwrap_or_default().contains(message), "{e:?}");
        if put(&direct, attr, value).await.is_ok() {
            moto_takes.push(message);
        }
    }
    eprintln!("moto alone takes: {moto_takes:?}");
    let e = through
        .query()
        .table_name(&table)
        .index_name("by_venue")
        .key_condition_expression("#n = :v")
        .expression_attribute_names("#n", "venue")
        .expression_attribute_values(":v", AttributeValue::S(String::new()))
        .send()
        .await
        .expect_err("an empty index key in a query");
    assert_eq!(e.code(), Some("ValidationException"), "{e:?}");
    put(&through, "venue", AttributeValue::S("fine".into()))
        .await
        .expect("a good value passes");
}

/// The runtime over DynamoDB (through the proxy, as AWS answers) and over
/// SQLite (the local target) answers every bad value with the same 400
/// and the same problem body.
#[tokio::test]
async fn both_targets_answer_400_alike() {
    let proxy = realistic_proxy().await;
    let client = client_through(proxy.url()).await;
    let tenant = tenant();
    let table = unique_name("values-");
    apifactory::aws::table::create_table(
        &client,
        &apifactory::aws::Pacer::new(apifactory::aws::Pace::Off),
        &table,
        &runtime::schema::TableSchema::of(&tenant.collection),
        &Default::default(),
    )
    .await
    .expect("create_table");
    let aws = Api::new(
        Arc::clone(&tenant),
        DynamoStore::new(client, table, &tenant.collection),
    );
    let on_aws = answers(&aws).await;

    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = runtime::sqlite::Database::open(&dir.path().join("store.db")).expect("open");
    let local = Api::new(Arc::clone(&tenant), db.table(&tenant).await.expect("table"));
    let on_local = answers(&local).await;

    assert_eq!(on_aws.len(), on_local.len());
    for (a, l) in on_aws.iter().zip(&on_local) {
        assert_eq!(a, l, "the targets disagree");
    }
}
