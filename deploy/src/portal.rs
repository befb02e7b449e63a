//! The developer portal: one self-contained HTML page per tenant for its
//! API's clients, served at `/{stage}/docs` without a key (by the local
//! gateway, and on AWS by API Gateway itself through a mock integration:
//! `openapi`'s import document carries it) and written as static files by
//! `apifactory docs`.
//!
//! One page, the same bytes wherever it is shown: styles and script are
//! inline, nothing is loaded from anywhere (its Content-Security-Policy
//! forbids it), and nothing in it depends on the time, so the import
//! document's hash changes only when the tenant does. The page works out
//! the API's URL from its own address when served, so one page serves
//! every host and base path.
//!
//! The usage plan's figures are left out: a new rate or quota is no
//! change to the API, and must not redeploy it (the page is part of its
//! definition on AWS).
//!
//! Everything it says is derived from the tenant file: the fields and
//! their rules, the deployed operations, examples that pass the fields'
//! own checks (`example`), and the errors a client meets (`catalogue`).
//! Every tenant value is HTML-escaped by handlebars; the page carries no
//! tenant data inside its script.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use handlebars::Handlebars;
use runtime::field::{Auto, Field, Format, Kind, StringRules};
use runtime::names;
use runtime::{Operation, Tenant};
use serde_json::{Value, json};

pub mod catalogue;
mod example;

const PAGE: &str = include_str!("portal/page.html.hbs");
const STYLE: &str = include_str!("portal/style.css");
const SCRIPT: &str = include_str!("portal/tryit.js");

/// The path of the page under a stage (or a custom domain's base path).
pub const PATH: &str = "/docs";

/// API Gateway's "Maximum mapping template size", 300 KB, not raisable
/// ("Quotas for configuring and running a REST API in API Gateway", API
/// Gateway developer guide): the page is the response template of the
/// `/docs` mock integration on AWS, so no page may be larger. Counted as
/// 300,000 bytes, the smaller reading of "KB"; and "Mock integrations for
/// REST APIs in API Gateway" warns that mock integrations are not meant
/// for large response templates, so pages stay far below it (a test
/// holds every tenant in `tenants/` under a third of it).
pub const MAX_PAGE_BYTES: usize = 300_000;

/// What closes a Velocity unparsed block (`#[[ ... ]]#`), in which the
/// page travels to API Gateway; it never appears in a page. API Gateway
/// evaluates mapping templates as Velocity Template Language ("Mapping
/// template transformations for REST APIs in API Gateway", API Gateway
/// developer guide), where `$` and `#` start references and directives and
/// an unparsed block is copied as it is ("Unparsed Content", Apache
/// Velocity user guide).
pub const UNPARSED_END: &str = "]]#";

/// Renders the tenant's page as the API serves it (at `/{stage}/docs`,
/// where it works out the API's URL from its own). The same bytes for the
/// same collection and operations: the custom domain, usage plan and
/// clients do not reach it, so changing them never redeploys the API. An
/// error when the page would not fit API Gateway's mapping template quota.
pub fn render(t: &Tenant) -> anyhow::Result<String> {
    page(t, None)
}

/// Renders the tenant's page as a file to keep or publish elsewhere
/// (`apifactory docs`): the same page, its examples and try-it form
/// starting from the API's custom domain when it has one.
pub fn render_static(t: &Tenant) -> anyhow::Result<String> {
    page(t, public_base(t))
}

/// Writes the tenant's static page and its client OpenAPI document:
/// `dir/<tenant>/index.html` and `dir/<tenant>/openapi.json`. Returns the
/// page's path.
pub fn write(
    t: &Tenant,
    integration: &crate::openapi::Integration,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    let html = render_static(t)?;
    let document = crate::openapi::render(t, integration, crate::openapi::Document::Client)
        .with_context(|| format!("tenant {}: cannot render its OpenAPI document", t.id))?;
    let folder = dir.join(&t.id);
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("tenant {}: cannot create {}", t.id, folder.display()))?;
    let page = folder.join("index.html");
    std::fs::write(&page, html)
        .with_context(|| format!("tenant {}: cannot write {}", t.id, page.display()))?;
    let json = folder.join("openapi.json");
    std::fs::write(&json, document + "\n")
        .with_context(|| format!("tenant {}: cannot write {}", t.id, json.display()))?;
    Ok(page)
}

fn page(t: &Tenant, base_url: Option<String>) -> anyhow::Result<String> {
    // The local gateway knows a tenant only as its functions' package,
    // whose fields are in name order (`tenants::package_source`): in name
    // order here too, the page is the same bytes from either, and moving a
    // field in its file changes nothing.
    let mut sorted = t.clone();
    sorted.collection.fields.sort_by(|a, b| a.name.cmp(&b.name));
    let t = &sorted;
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_template_string("page", PAGE)
        .context("the portal's page template does not parse")?;
    let html = hb
        .render("page", &context(t, base_url))
        .with_context(|| format!("cannot render the developer portal of tenant {}", t.id))?;
    // Where tenant text spells the end of an unparsed block, write its `#`
    // as a character reference: the same text in the browser.
    let html = html.replace(UNPARSED_END, "]]&#35;");
    if html.len() > MAX_PAGE_BYTES {
        anyhow::bail!(
            "tenant {}: the developer portal page is {} bytes, over API Gateway's mapping template quota ({MAX_PAGE_BYTES} bytes): shorten the descriptions in {}",
            t.id,
            html.len(),
            t.path.display()
        );
    }
    Ok(html)
}

/// The URL a client reaches the API at through its custom domain (and
/// base path), when it has one.
pub fn public_base(t: &Tenant) -> Option<String> {
    t.domain.as_ref().map(|d| {
        if d.base_path.is_empty() {
            format!("https://{}", d.name)
        } else {
            format!("https://{}/{}", d.name, d.base_path)
        }
    })
}

fn context(t: &Tenant, base_url: Option<String>) -> Value {
    let c = &t.collection;
    let curl_base = base_url.clone().unwrap_or_else(|| {
        format!(
            "https://{{restApiId}}.execute-api.{{region}}.amazonaws.com/{}",
            t.stage
        )
    });
    let about = t.description.clone().unwrap_or_else(|| {
        format!(
            "The {} API of {}: one collection of items, each identified by its {}.",
            c.name, t.display_name, c.key
        )
    });
    let indexes: Vec<Value> = c
        .indexed()
        .map(|f| json!({ "name": names::index(&f.name), "field": f.name }))
        .collect();
    let mut fields = vec![json!({
        "name": c.key,
        "type": "string",
        "rules": [
            "the item's key",
            "1 to 128 characters of letters, digits, -, _, . and ~",
            "generated by the server (a ULID) when an add leaves it out",
            "read-only once the item exists",
        ],
        "description": "",
    })];
    fields.extend(c.fields.iter().map(|f| {
        json!({
            "name": f.name,
            "type": type_name(f),
            "rules": rules(f),
            "description": f.description.clone().unwrap_or_default(),
        })
    }));

    let new_item = example::new_item(c);
    let item = example::item(c);
    let mut replacement = new_item.clone();
    replacement.remove(&c.key);
    let patch = example::patch(c);
    let filter = example::filter(c);
    let item_path = format!("/{}/{{{}}}", c.name, c.key);
    let coll_path = format!("/{}", c.name);
    let id = example::ITEM_ID;

    let mut endpoints = Vec::new();
    let mut tryit_ops = Vec::new();
    let enabled = |op| t.functions.enabled(op);
    if enabled(Operation::Search) {
        let query = match &filter {
            Some((name, value)) => format!("{}={}&limit=20", enc(name), enc(value)),
            None => "limit=20".into(),
        };
        endpoints.push(json!({
            "anchor": "search",
            "method": "GET",
            "verb_class": "get",
            "path": coll_path,
            "summary": format!("Search {}: every query parameter named after a field keeps the items whose field equals it (a list field: contains it); several filters must all match. Pages of limit items; pass the next of a page for the following one.", c.name),
            "params": search_params(t),
            "request": "",
            "request_type": "",
            "ok_status": "200 OK",
            "response": pretty(&json!({ "items": [item], "next": null })),
            "other_statuses": "400, 403, 429",
            "curl_head": "curl -H \"x-api-key: $API_KEY\" \"",
            "curl_tail": format!("/{}?{query}\"", c.name),
        }));
        tryit_ops.push(tryit("search", "Search (GET /{c})", "GET", false, None, c));
    }
    if enabled(Operation::Get) {
        endpoints.push(json!({
            "anchor": "get",
            "method": "GET",
            "verb_class": "get",
            "path": item_path,
            "summary": format!("Get one item of {} by its {}. The ETag header is its revision, for If-Match.", c.name, c.key),
            "params": [id_param(c)],
            "request": "",
            "request_type": "",
            "ok_status": "200 OK, with ETag",
            "response": pretty(&Value::Object(item.clone())),
            "other_statuses": "400, 403, 404, 429",
            "curl_head": "curl -i -H \"x-api-key: $API_KEY\" \"",
            "curl_tail": format!("/{}/{id}\"", c.name),
        }));
        tryit_ops.push(tryit("get", "Get (GET /{c}/{id})", "GET", true, None, c));
    }
    if enabled(Operation::Add) {
        let body = Value::Object(new_item.clone());
        endpoints.push(json!({
            "anchor": "add",
            "method": "POST",
            "verb_class": "post",
            "path": coll_path,
            "summary": format!("Add an item to {}. Send {} to choose the id, or leave it out for one generated by the server. Read-only fields are set by the server.", c.name, c.key),
            "params": [],
            "request": pretty(&body),
            "request_type": "application/json",
            "ok_status": "201 Created, with Location and ETag",
            "response": pretty(&Value::Object(item.clone())),
            "other_statuses": "400, 403, 409, 413, 415, 429",
            "curl_head": format!("curl -i -X POST -H \"x-api-key: $API_KEY\" -H \"content-type: application/json\" -d {} \"", shell_quote(&body.to_string())),
            "curl_tail": format!("/{}\"", c.name),
        }));
        tryit_ops.push(tryit(
            "add",
            "Add (POST /{c})",
            "POST",
            false,
            Some((&body, "application/json")),
            c,
        ));
    }
    if enabled(Operation::Update) {
        let body = Value::Object(replacement);
        let if_match = json!({
            "name": "If-Match",
            "in": "header",
            "rules": "optional; an ETag as the ETag header gave it (in double quotes), or *",
            "meaning": "Apply only if the item is still at this revision (412 otherwise).",
        });
        endpoints.push(json!({
            "anchor": "update-put",
            "method": "PUT",
            "verb_class": "put",
            "path": item_path,
            "summary": format!("Replace one item of {}: the fields it keeps. Its {} is the one in the path.", c.name, c.key),
            "params": [id_param(c), if_match],
            "request": pretty(&body),
            "request_type": "application/json",
            "ok_status": "200 OK, with ETag",
            "response": pretty(&Value::Object(item.clone())),
            "other_statuses": "400, 403, 404, 412, 413, 415, 429",
            "curl_head": format!("curl -i -X PUT -H \"x-api-key: $API_KEY\" -H \"content-type: application/json\" -d {} \"", shell_quote(&body.to_string())),
            "curl_tail": format!("/{}/{id}\"", c.name),
        }));
        let patch = Value::Object(patch);
        endpoints.push(json!({
            "anchor": "update-patch",
            "method": "PATCH",
            "verb_class": "patch",
            "path": item_path,
            "summary": format!("Change some fields of one item of {} (a JSON merge patch, RFC 7396): a field set to null is removed, where the item stays valid without it.", c.name),
            "params": [id_param(c), if_match],
            "request": pretty(&patch),
            "request_type": "application/merge-patch+json or application/json",
            "ok_status": "200 OK, with ETag",
            "response": pretty(&Value::Object(item.clone())),
            "other_statuses": "400, 403, 404, 412, 413, 415, 429",
            "curl_head": format!("curl -i -X PATCH -H \"x-api-key: $API_KEY\" -H \"content-type: application/merge-patch+json\" -d {} \"", shell_quote(&patch.to_string())),
            "curl_tail": format!("/{}/{id}\"", c.name),
        }));
        tryit_ops.push(tryit(
            "update",
            "Update (PUT /{c}/{id})",
            "PUT",
            true,
            Some((&body, "application/json")),
            c,
        ));
    }
    if enabled(Operation::Delete) {
        endpoints.push(json!({
            "anchor": "delete",
            "method": "DELETE",
            "verb_class": "delete",
            "path": item_path,
            "summary": format!("Delete one item of {}.", c.name),
            "params": [id_param(c), {
                "name": "If-Match",
                "in": "header",
                "rules": "optional; an ETag, or *",
                "meaning": "Delete only if the item is still at this revision (412 otherwise).",
            }],
            "request": "",
            "request_type": "",
            "ok_status": "204 No Content",
            "response": "",
            "other_statuses": "400, 403, 404, 412, 429",
            "curl_head": "curl -i -X DELETE -H \"x-api-key: $API_KEY\" \"",
            "curl_tail": format!("/{}/{id}\"", c.name),
        }));
        tryit_ops.push(tryit(
            "delete",
            "Delete (DELETE /{c}/{id})",
            "DELETE",
            true,
            None,
            c,
        ));
    }

    let gateway_errors: Vec<Value> = catalogue::GATEWAY
        .iter()
        .map(|e| json!({ "status": e.status, "body": e.body, "when": e.when }))
        .collect();
    let function_errors: Vec<Value> = catalogue::FUNCTION
        .iter()
        .map(|p| {
            let mut body = json!({
                "type": "about:blank",
                "title": p.title,
                "status": p.status,
                "detail": p.detail,
            });
            if p.status == 400 {
                let (field, message) = invalid_example(c);
                body["detail"] = json!(format!("`{field}` {message}"));
                body["errors"] = json!([{ "field": field, "message": message }]);
            }
            json!({ "status": p.status, "when": p.when, "body": pretty(&body) })
        })
        .collect();

    // The add example (else the update's), whatever is selected first.
    let add_body = ["add", "update"]
        .iter()
        .find_map(|op| tryit_ops.iter().find(|o| o["value"] == *op))
        .and_then(|o| o["body"].as_str())
        .unwrap_or_default()
        .to_owned();
    json!({
        "title": t.display_name,
        "description": t.description.clone().unwrap_or_else(|| format!("The {} API.", c.name)),
        "about": about,
        "stage": t.stage,
        "collection": c.name,
        "key": c.key,
        "key_rule": "1 to 128 characters of letters, digits, -, _, . and ~; generated by the server when an add leaves it out.",
        "base_url": base_url.unwrap_or_default(),
        "curl_base": curl_base,
        "indexes": indexes,
        "fields": fields,
        "endpoints": endpoints,
        "gateway_errors": gateway_errors,
        "function_errors": function_errors,
        "tryit_ops": tryit_ops,
        "example_id": id,
        "example_query": filter
            .map(|(name, value)| format!("{}={}", enc(&name), enc(&value)))
            .unwrap_or_default(),
        "add_body": add_body,
        "style": STYLE,
        "script": SCRIPT,
    })
}

/// One option of the try-it form's operation select: the body prefilled
/// when it is chosen, and the content type the body is sent with.
fn tryit(
    value: &str,
    label: &str,
    method: &str,
    item: bool,
    body: Option<(&Value, &str)>,
    c: &runtime::tenant::Collection,
) -> Value {
    let label = label
        .replace("{c}", &c.name)
        .replace("{id}", &format!("{{{}}}", c.key));
    json!({
        "value": value,
        "label": label,
        "method": method,
        "item": if item { "true" } else { "false" },
        "body": body.map(|(b, _)| pretty(b)).unwrap_or_default(),
        "content_type": body.map(|(_, ct)| ct).unwrap_or_default(),
    })
}

fn id_param(c: &runtime::tenant::Collection) -> Value {
    json!({
        "name": c.key,
        "in": "path",
        "rules": "required; 1 to 128 characters of letters, digits, -, _, . and ~",
        "meaning": "The item's key.",
    })
}

fn search_params(t: &Tenant) -> Vec<Value> {
    let c = &t.collection;
    let mut out: Vec<Value> = c
        .fields
        .iter()
        .map(|f| {
            let meaning = match (&f.kind, f.index) {
                (Kind::StringList { .. }, _) => "Items whose list contains this value.",
                (_, true) => "Items with this value (indexed: reads only the matching items).",
                _ => "Items with this value.",
            };
            json!({
                "name": f.name,
                "in": "query",
                "rules": format!("optional; {}", match &f.kind {
                    Kind::StringList { .. } => "a string".to_owned(),
                    _ => type_name(f),
                }),
                "meaning": meaning,
            })
        })
        .collect();
    out.push(json!({
        "name": "limit",
        "in": "query",
        "rules": format!("optional; an integer from 1 to {}", runtime::api::MAX_LIMIT),
        "meaning": format!("Items per page (default {}).", runtime::api::DEFAULT_LIMIT),
    }));
    out.push(json!({
        "name": "next",
        "in": "query",
        "rules": "optional; a string",
        "meaning": "The next of the previous page, for the page after it (null on the last).",
    }));
    out
}

fn type_name(f: &Field) -> String {
    match &f.kind {
        Kind::String(r) => match r.format {
            Some(Format::Email) => "string (email)".into(),
            Some(Format::Uri) => "string (URI)".into(),
            Some(Format::DateTime) => "string (RFC 3339 date-time)".into(),
            None => "string".into(),
        },
        Kind::Integer { .. } => "integer".into(),
        Kind::Number { .. } => "number".into(),
        Kind::Boolean => "boolean".into(),
        Kind::Timestamp => "timestamp (RFC 3339 date-time)".into(),
        Kind::StringList { .. } => "list of strings".into(),
    }
}

/// Every rule of a field, in words.
fn rules(f: &Field) -> Vec<String> {
    let mut out = Vec::new();
    match (&f.auto, f.required, &f.default) {
        (Some(Auto::Create), ..) => {
            out.push("read-only: set by the server when the item is created".into())
        }
        (Some(Auto::Update), ..) => out.push("read-only: set by the server on every write".into()),
        (None, true, _) => out.push("required".into()),
        (None, false, Some(d)) => out.push(format!("optional; {d} when left out")),
        (None, false, None) => out.push("optional".into()),
    }
    match &f.kind {
        Kind::String(r) => string_rules(r, &mut out, ""),
        Kind::Integer { min, max } => bounds(
            min.map(|v| v.to_string()),
            max.map(|v| v.to_string()),
            &mut out,
        ),
        Kind::Number { min, max } => bounds(
            min.map(|v| v.to_string()),
            max.map(|v| v.to_string()),
            &mut out,
        ),
        Kind::Boolean | Kind::Timestamp => {}
        Kind::StringList { max_items, item } => {
            if let Some(n) = max_items {
                out.push(format!("at most {n} items"));
            }
            string_rules(item, &mut out, "each item ");
        }
    }
    if f.index {
        out.push(format!(
            "indexed ({}): a search on it reads only the matching items",
            names::index(&f.name)
        ));
    }
    out
}

fn string_rules(r: &StringRules, out: &mut Vec<String>, prefix: &str) {
    let chars = |n: u32| if n == 1 { "character" } else { "characters" };
    match (r.min_length, r.max_length) {
        (Some(a), Some(b)) => out.push(format!("{prefix}{a} to {b} {}", chars(b))),
        (Some(a), None) => out.push(format!("{prefix}at least {a} {}", chars(a))),
        (None, Some(b)) => out.push(format!("{prefix}at most {b} {}", chars(b))),
        (None, None) => {}
    }
    if let Some(p) = &r.pattern {
        out.push(format!("{prefix}matches the pattern ^(?:{})$", p.source));
    }
    if let Some(values) = &r.allowed {
        let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        out.push(format!("{prefix}one of {}", quoted.join(", ")));
    }
    if let Some(f) = r.format {
        out.push(format!("{prefix}a valid {}", f.name()));
    }
}

fn bounds(min: Option<String>, max: Option<String>, out: &mut Vec<String>) {
    match (min, max) {
        (Some(a), Some(b)) => out.push(format!("from {a} to {b}")),
        (Some(a), None) => out.push(format!("at least {a}")),
        (None, Some(b)) => out.push(format!("at most {b}")),
        (None, None) => {}
    }
}

/// A 400's field and message for the examples: the first required field
/// left out, else the first field given a value of the wrong type.
fn invalid_example(c: &runtime::tenant::Collection) -> (String, String) {
    if let Some(f) = c.fields.iter().find(|f| f.required) {
        return (f.name.clone(), "is required".into());
    }
    match c.fields.first() {
        Some(f) => {
            let wrong = if matches!(f.kind, Kind::Boolean) {
                json!("yes")
            } else {
                json!(true)
            };
            let message = f.check(&wrong).err().unwrap_or_else(|| "is invalid".into());
            (f.name.clone(), message)
        }
        None => (c.key.clone(), "is invalid".into()),
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A JSON body as one shell word: single quotes, each `'` in it closed,
/// escaped and reopened.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Percent-encodes a query string name or value.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
