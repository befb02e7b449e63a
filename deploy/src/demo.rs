//! `apifactory demo`: a short scripted session against one tenant's API,
//! through the real runtime on the embedded SQLite store, no AWS needed.
//! Each request is the API Gateway proxy event the function would get.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use aws_lambda_events::encodings::Body;
use http::HeaderValue;
use runtime::sqlite::Database;
use runtime::tenant::Tenant;
use runtime::{Api, Operation};
use serde_json::{Value, json};

/// Runs the session and returns its transcript.
pub async fn run(tenant: Tenant, data_dir: &Path) -> anyhow::Result<String> {
    let db = Database::open(&data_dir.join("demo.sqlite"))?;
    let store = db.table(&tenant).await?;
    let api = Api::new(Arc::new(tenant), store);
    let t = api.tenant().clone();
    let c = &t.collection;
    let mut out = format!(
        "{} ({}): /{}/{} on SQLite at {}\n\n",
        t.display_name,
        t.id,
        t.stage,
        c.name,
        data_dir.display()
    );

    let sample = sample_item(&t);
    let coll = format!("/{}", c.name);
    let created = exchange(&api, &mut out, "POST", &coll, Some(&sample), None).await;
    let id = created[&c.key].as_str().unwrap_or_default().to_owned();
    let item = format!("{coll}/{id}");
    if t.functions.enabled(Operation::Get) {
        exchange(&api, &mut out, "GET", &item, None, None).await;
    }
    if t.functions.enabled(Operation::Search)
        && let Some(f) = c.fields.iter().find(|f| f.index)
        && let Some(v) = created.get(&f.name).and_then(value_text)
    {
        exchange(
            &api,
            &mut out,
            "GET",
            &format!("{coll}?{}={v}&limit=5", f.name),
            None,
            None,
        )
        .await;
    }
    let mut bad = sample.clone();
    if let Some(obj) = bad.as_object_mut() {
        obj.insert("no_such_field".into(), json!(true));
    }
    exchange(&api, &mut out, "POST", &coll, Some(&bad), None).await;
    if t.functions.enabled(Operation::Update) {
        exchange(
            &api,
            &mut out,
            "PUT",
            &item,
            Some(&sample),
            Some("\"stale-etag\""),
        )
        .await;
    }
    if t.functions.enabled(Operation::Delete) {
        exchange(&api, &mut out, "DELETE", &item, None, None).await;
        exchange(&api, &mut out, "GET", &item, None, None).await;
    }
    Ok(out)
}

async fn exchange(
    api: &Api<runtime::sqlite::SqliteTable>,
    out: &mut String,
    method: &str,
    path_and_query: &str,
    body: Option<&Value>,
    if_match: Option<&str>,
) -> Value {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let c = &api.tenant().collection;
    let mut req = ApiGatewayProxyRequest::default();
    req.http_method = method.parse().unwrap_or_default();
    req.path = Some(path.to_owned());
    req.request_context.stage = Some(api.tenant().stage.clone());
    req.request_context.path = Some(format!("/{}{path}", api.tenant().stage));
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    req.resource = Some(match segments.as_slice() {
        [_, id] => {
            req.path_parameters.insert("id".into(), (*id).to_owned());
            format!("/{}/{{id}}", c.name)
        }
        _ => format!("/{}", c.name),
    });
    let query: std::collections::HashMap<String, Vec<String>> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), vec![v.to_owned()]))
        .collect();
    req.multi_value_query_string_parameters = query.into();
    if let Some(b) = body {
        req.body = Some(b.to_string());
        req.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(tag) = if_match.and_then(|t| HeaderValue::from_str(t).ok()) {
        req.headers.insert(http::header::IF_MATCH, tag);
    }
    let _ = writeln!(out, "> {method} /{}{path_and_query}", api.tenant().stage);
    if let Some(b) = body {
        let _ = writeln!(out, "> {b}");
    }
    let response = api.handle(req).await;
    let text = match &response.body {
        Some(Body::Text(t)) => t.clone(),
        _ => String::new(),
    };
    let _ = writeln!(out, "< {}", response.status_code);
    for name in ["location", "etag"] {
        if let Some(v) = response.headers.get(name).and_then(|v| v.to_str().ok()) {
            let _ = writeln!(out, "< {name}: {v}");
        }
    }
    if !text.is_empty() {
        let _ = writeln!(out, "< {text}");
    }
    out.push('\n');
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A valid item for any collection, from its field rules.
fn sample_item(t: &Tenant) -> Value {
    use runtime::field::{Format, Kind};
    let mut doc = serde_json::Map::new();
    for f in &t.collection.fields {
        if f.auto.is_some() {
            continue;
        }
        let v = match &f.kind {
            Kind::String(r) => match (&r.allowed, r.format) {
                (Some(values), _) => json!(values.last()),
                (None, Some(Format::Email)) => json!("ada@example.com"),
                (None, Some(Format::Uri)) => json!("https://example.com/manual"),
                (None, Some(Format::DateTime)) => json!("2026-11-25T09:30:00Z"),
                (None, None) if r.pattern.is_some() => continue,
                (None, None) => json!("Ada Lovelace"),
            },
            Kind::Integer { min, .. } => json!(min.unwrap_or(0).max(1)),
            Kind::Number { min, .. } => json!(min.unwrap_or(0.0) + 9.5),
            Kind::Boolean => json!(true),
            Kind::Timestamp => json!("2026-12-01T10:00:00Z"),
            Kind::StringList { item, .. } => match &item.allowed {
                Some(values) => json!([values[0]]),
                None => json!(["first", "second"]),
            },
        };
        doc.insert(f.name.clone(), v);
    }
    Value::Object(doc)
}
