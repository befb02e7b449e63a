//! A tenant's API as an OpenAPI 3 document, rendered from a handlebars
//! template (`templates/openapi.json.hbs`) in two flavours ([`Document`]):
//! the client document (what `apifactory openapi <tenant>` prints, the
//! contract the local gateway is tested against) and the import document
//! (the definition the AWS target puts into API Gateway).
//!
//! Every method requires an API key and integrates `aws_proxy` with its
//! operation's function. The template holds the document's shape; the
//! schemas, parameters and responses are built here from the tenant's
//! fields, so a field rule can never be documented one way and enforced
//! another. The import document is the client one with what API Gateway's
//! importer does not support taken out ([`importable`]): imported with
//! `failOnWarnings`, anything left that it would ignore fails the apply
//! instead of being deployed as something other than the document says.

use handlebars::Handlebars;
use runtime::field::{Field, Format, Kind, StringRules};
use runtime::names;
use runtime::{Operation, Tenant};
use serde_json::{Map, Value, json};

const TEMPLATE: &str = include_str!("../templates/openapi.json.hbs");

/// Which of a tenant's two documents to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// For the API's clients: every rule of every field in OpenAPI 3.0's
    /// own words (`nullable`, `readOnly`, `additionalProperties`, integer
    /// formats, parameter constraints), and the URLs it is served at.
    Client,
    /// What API Gateway imports: only what its importer supports, and the
    /// REST API's own name as `info.title`, since a PutRestApi in overwrite
    /// mode renames the API after the title (PutRestApi, API Gateway API
    /// reference): with the name as the title, an apply stopped right
    /// after the put leaves the API under the name observe looks for.
    Import,
}

/// Where the methods integrate: the partition, account and region of the
/// functions.
pub struct Integration {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Integration {
    pub fn new(partition: &str, region: &str, account: &str) -> Self {
        Integration {
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
        }
    }

    /// The API Gateway integration URI that invokes a function. Both ARNs
    /// are in the deploy region's partition (`aws-cn` in China,
    /// `aws-us-gov` in GovCloud: "Identify AWS resources with Amazon
    /// Resource Names", IAM user guide); one naming another partition is
    /// an integration API Gateway cannot invoke.
    pub fn uri(&self, function: &str) -> String {
        format!(
            "arn:{p}:apigateway:{r}:lambda:path/2015-03-31/functions/arn:{p}:lambda:{r}:{a}:function:{function}/invocations",
            p = self.partition,
            r = self.region,
            a = self.account
        )
    }

    /// The domain of the partition's endpoints (China's are under
    /// `amazonaws.com.cn`).
    fn dns_suffix(&self) -> &'static str {
        if self.partition == "aws-cn" {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        }
    }
}

/// Renders a document: pretty-printed JSON, the same bytes for the same
/// tenant and integration (so the import document's hash can decide
/// whether a new deployment is needed).
pub fn render(t: &Tenant, integration: &Integration, document: Document) -> anyhow::Result<String> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("json", Box::new(json_helper));
    hb.register_template_string("openapi", TEMPLATE)?;
    let rendered = hb.render("openapi", &context(t, integration, document))?;
    // Parse back: the template must produce valid JSON, and re-serialising
    // gives one canonical form.
    let doc: Value = serde_json::from_str(&rendered)
        .map_err(|e| anyhow::anyhow!("the OpenAPI template rendered invalid JSON: {e}"))?;
    Ok(serde_json::to_string_pretty(&doc)?)
}

fn json_helper(
    h: &handlebars::Helper<'_>,
    _: &Handlebars<'_>,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let value = h
        .param(0)
        .map(|p| p.value().clone())
        .ok_or_else(|| handlebars::RenderErrorReason::ParamNotFoundForIndex("json", 0))?;
    out.write(&value.to_string())?;
    Ok(())
}

fn context(t: &Tenant, integration: &Integration, document: Document) -> Value {
    let c = &t.collection;
    let coll_path = format!("/{}", c.name);
    let item_path = format!("/{}/{{id}}", c.name);
    let method = |op: Operation,
                  verb: &str,
                  summary: String,
                  parameters: Value,
                  body: Option<Value>,
                  responses: Value| {
        // Unique, as OpenAPI requires: search and get are both GETs.
        let action = if op == Operation::Search {
            "search"
        } else {
            verb
        };
        json!({
            "method": verb,
            "operation_id": format!("{action}{}", capitalise(&c.name)),
            "summary": summary,
            "parameters": parameters,
            "request_body": body,
            "responses": responses,
            "uri": integration.uri(&names::function(&t.id, op)),
        })
    };
    let id_param = json!([{
        "name": "id",
        "in": "path",
        "required": true,
        "description": format!("The item's `{}`.", c.key),
        "schema": id_schema(),
    }]);
    let json_body = |schema: &str, media: &str| {
        json!({
            "required": true,
            "content": { media: { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
        })
    };
    let enabled = |op| t.functions.enabled(op);

    let mut collection_methods = Vec::new();
    if enabled(Operation::Search) {
        collection_methods.push(method(
            Operation::Search,
            "get",
            format!("Search {}: equality filters on fields, paged", c.name),
            search_parameters(c),
            None,
            responses(&[(200, Some("Page"), false)], &[400]),
        ));
    }
    if enabled(Operation::Add) {
        collection_methods.push(method(
            Operation::Add,
            "post",
            format!("Add an item to {}", c.name),
            json!([]),
            Some(json_body("NewItem", "application/json")),
            responses(&[(201, Some("Item"), true)], &[400, 409, 413, 415]),
        ));
    }
    let mut item_methods = Vec::new();
    if enabled(Operation::Get) {
        item_methods.push(method(
            Operation::Get,
            "get",
            format!("Get one item of {}", c.name),
            id_param.clone(),
            None,
            responses(&[(200, Some("Item"), true)], &[400, 404]),
        ));
    }
    if enabled(Operation::Update) {
        let if_match = json!([{
            "name": "If-Match",
            "in": "header",
            "required": false,
            "description": "Apply only if the item is still at this ETag (as the ETag header gave it, in double quotes), or `*`.",
            "schema": { "type": "string", "pattern": "^(\\*|(W/)?\"[^\"]+\")$" },
        }]);
        let params = Value::Array(
            id_param
                .as_array()
                .into_iter()
                .flatten()
                .chain(if_match.as_array().into_iter().flatten())
                .cloned()
                .collect(),
        );
        item_methods.push(method(
            Operation::Update,
            "put",
            format!("Replace one item of {}", c.name),
            params.clone(),
            Some(json_body("Replacement", "application/json")),
            responses(&[(200, Some("Item"), true)], &[400, 404, 412, 413, 415]),
        ));
        item_methods.push(method(
            Operation::Update,
            "patch",
            format!("Change some fields of one item of {} (JSON merge patch)", c.name),
            params,
            Some(json!({
                "required": true,
                "content": {
                    "application/merge-patch+json": { "schema": { "$ref": "#/components/schemas/Patch" } },
                    "application/json": { "schema": { "$ref": "#/components/schemas/Patch" } }
                }
            })),
            responses(&[(200, Some("Item"), true)], &[400, 404, 412, 413, 415]),
        ));
    }
    if enabled(Operation::Delete) {
        item_methods.push(method(
            Operation::Delete,
            "delete",
            format!("Delete one item of {}", c.name),
            id_param,
            None,
            responses(&[(204, None, false)], &[400, 404, 412]),
        ));
    }
    let mut paths = Vec::new();
    if !collection_methods.is_empty() {
        paths.push(json!({ "path": coll_path, "methods": collection_methods }));
    }
    if !item_methods.is_empty() {
        paths.push(json!({ "path": item_path, "methods": item_methods }));
    }

    let mut servers = Vec::new();
    if let Some(d) = &t.domain {
        let base = if d.base_path.is_empty() {
            String::new()
        } else {
            format!("/{}", d.base_path)
        };
        servers.push(json!({ "url": format!("https://{}{base}", d.name) }));
    }
    servers.push(json!({
        "url": format!(
            "https://{{restApiId}}.execute-api.{}.{}/{}",
            integration.region,
            integration.dns_suffix(),
            t.stage
        ),
        "variables": { "restApiId": { "default": "restApiId", "description": "The REST API's id, as `apifactory plan` shows it." } },
    }));

    let description = t.description.clone().unwrap_or_else(|| {
        format!(
            "{} API of {}, served by apifactory.",
            c.name, t.display_name
        )
    });
    let mut context = json!({
        "title": t.display_name,
        "description": description,
        "version": t.stage,
        "servers": servers,
        "root_security": true,
        "collection": c.name,
        "paths": paths,
        "timeout_ms": (t.functions.timeout_s * 1000).min(29_000),
        "schemas": schemas(t),
    });
    if document == Document::Import {
        for_import(&mut context, &names::rest_api(&t.id));
    }
    context
}

/// Turns a client document's context into the import document's.
///
/// What API Gateway's importer does not support, from "Amazon API Gateway
/// important notes for REST APIs" (API Gateway developer guide): models
/// are JSON Schema draft 4, without `additionalProperties`, `anyOf`,
/// `oneOf`, `discriminator`, `example`, `exclusiveMinimum`, `readOnly`,
/// and without the `int32`, `int64` and `decimal` formats; input
/// parameters keep only `name`, `in`, `required`, `type` and
/// `description`; security at the document's root is not used. Import
/// warnings ("Errors and warnings during import", same guide) roll the
/// whole put back when `failOnWarnings` is set, which is how the AWS target
/// imports. Servers are left out: the importer reads a path in a server URL
/// as a base path, and the URLs are API Gateway's to give.
fn for_import(context: &mut Value, rest_api_name: &str) {
    context["title"] = json!(rest_api_name);
    context["servers"] = json!([]);
    context["root_security"] = json!(false);
    if let Some(schemas) = context["schemas"].as_object_mut() {
        for schema in schemas.values_mut() {
            importable(schema);
        }
    }
    for path in context["paths"].as_array_mut().into_iter().flatten() {
        for method in path["methods"].as_array_mut().into_iter().flatten() {
            for p in method["parameters"].as_array_mut().into_iter().flatten() {
                let kept = ["name", "in", "required", "description"]
                    .into_iter()
                    .filter_map(|k| p.get(k).map(|v| (k.to_owned(), v.clone())));
                let mut simple: Map<String, Value> = kept.collect();
                if let Some(ty) = p["schema"].get("type") {
                    simple.insert("schema".into(), json!({ "type": ty }));
                }
                *p = Value::Object(simple);
            }
        }
    }
}

/// The keywords a model may not carry (see [`for_import`]); `nullable` is
/// OpenAPI's, not JSON Schema draft 4's, so it goes too.
const NOT_IN_MODELS: &[&str] = &[
    "additionalProperties",
    "anyOf",
    "oneOf",
    "allOf",
    "discriminator",
    "example",
    "exclusiveMinimum",
    "readOnly",
    "writeOnly",
    "deprecated",
];

/// A schema as a model API Gateway imports, walked through its
/// `properties` and `items` (a property may be named like a keyword).
/// A `nullable` schema loses its `type` (and gains `null` among its `enum`
/// values): draft 4 applies a type's rules only to values of that type, so
/// null passes and the rest is still checked.
fn importable(schema: &mut Value) {
    let Some(s) = schema.as_object_mut() else {
        return;
    };
    for k in NOT_IN_MODELS {
        s.remove(*k);
    }
    if s.get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| ["int32", "int64", "decimal"].contains(&f))
    {
        s.remove("format");
    }
    if s.remove("nullable") == Some(Value::Bool(true)) {
        s.remove("type");
        if let Some(values) = s.get_mut("enum").and_then(Value::as_array_mut) {
            values.push(Value::Null);
        }
    }
    if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
        for p in props.values_mut() {
            importable(p);
        }
    }
    if let Some(items) = s.get_mut("items") {
        importable(items);
    }
}

fn capitalise(s: &str) -> String {
    s.split('-')
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|f| f.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn id_schema() -> Value {
    json!({ "type": "string", "pattern": "^[A-Za-z0-9._~-]{1,128}$" })
}

fn search_parameters(c: &runtime::tenant::Collection) -> Value {
    let mut params: Vec<Value> = c
        .fields
        .iter()
        .map(|f| {
            let schema = match &f.kind {
                Kind::StringList { item, .. } => string_schema(item),
                _ => field_schema(f),
            };
            let what = if matches!(f.kind, Kind::StringList { .. }) {
                "Items whose list contains this value."
            } else if f.index {
                "Items with this value (indexed: a query, never a scan)."
            } else {
                "Items with this value."
            };
            json!({ "name": f.name, "in": "query", "required": false, "description": what, "schema": strip_meta(schema) })
        })
        .collect();
    params.push(json!({
        "name": "limit", "in": "query", "required": false,
        "description": "Items per page (default 20).",
        "schema": { "type": "integer", "minimum": 1, "maximum": 100 }
    }));
    params.push(json!({
        "name": "next", "in": "query", "required": false,
        "description": "The `next` cursor of the previous page.",
        "schema": { "type": "string" }
    }));
    Value::Array(params)
}

/// Query parameters carry no readOnly or description of the field itself.
fn strip_meta(mut schema: Value) -> Value {
    if let Some(m) = schema.as_object_mut() {
        m.remove("readOnly");
        m.remove("description");
        m.remove("default");
    }
    schema
}

fn responses(ok: &[(u16, Option<&str>, bool)], client_errors: &[u16]) -> Value {
    let mut out = Map::new();
    for (status, schema, etag) in ok {
        let mut r = json!({ "description": reason(*status) });
        if let Some(schema) = schema {
            r["content"] = json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } });
        }
        if *etag {
            r["headers"] = json!({
                "ETag": { "description": "The item's revision, for If-Match.", "schema": { "type": "string" } }
            });
            if *status == 201 {
                r["headers"]["Location"] =
                    json!({ "description": "The new item's URL.", "schema": { "type": "string" } });
            }
        }
        out.insert(status.to_string(), r);
    }
    for status in client_errors {
        out.insert(
            status.to_string(),
            json!({
                "description": reason(*status),
                "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
            }),
        );
    }
    // A body over API Gateway's 10 MB is its own 413, in its own shape.
    if let Some(r) = out.get_mut("413") {
        r["content"]["application/json"] =
            json!({ "schema": { "$ref": "#/components/schemas/GatewayError" } });
    }
    // What API Gateway itself answers (keys, usage plan, the size of the
    // request head, integration).
    for status in [403, 429, 431, 502, 504] {
        out.insert(
            status.to_string(),
            json!({
                "description": reason(status),
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/GatewayError" } } }
            }),
        );
    }
    out.insert(
        "405".into(),
        json!({
            "description": reason(405),
            "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
        }),
    );
    Value::Object(out)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "Deleted",
        400 => "Invalid request: the problem lists each bad field",
        403 => "Missing, unknown or disabled API key, or no such route",
        404 => "No such item",
        405 => "Method not enabled for this API",
        409 => "An item with this id exists",
        412 => "The item changed since the ETag in If-Match",
        413 => "The item would exceed 400 KB (a problem), or the request API Gateway's 10 MB",
        415 => "The body is not JSON",
        429 => "Throttled or quota used up",
        431 => "The request line and headers exceed API Gateway's 10,240 bytes",
        502 => "The function failed",
        504 => "The function timed out",
        _ => "Response",
    }
}

fn schemas(t: &Tenant) -> Value {
    let c = &t.collection;
    let mut item_props = Map::new();
    item_props.insert(c.key.clone(), id_schema());
    let mut new_props = Map::new();
    new_props.insert(c.key.clone(), id_schema());
    let mut patch_props = Map::new();
    let mut item_required = vec![Value::String(c.key.clone())];
    let mut new_required = Vec::new();
    for f in &c.fields {
        let schema = field_schema(f);
        item_props.insert(f.name.clone(), schema.clone());
        new_props.insert(f.name.clone(), schema.clone());
        // In a merge patch, null removes a field: allowed where the item
        // stays valid without it (optional, or back to its default).
        let mut in_patch = schema;
        if !f.required || f.default.is_some() {
            in_patch["nullable"] = json!(true);
        }
        patch_props.insert(f.name.clone(), in_patch);
        if f.required || f.default.is_some() || f.auto.is_some() {
            item_required.push(Value::String(f.name.clone()));
        }
        if f.required {
            new_required.push(Value::String(f.name.clone()));
        }
    }
    let mut new_item = json!({
        "type": "object",
        "description": format!("A new or replacing item. `{}` is server-generated when left out; read-only fields are set by the server.", c.key),
        "properties": new_props,
        "additionalProperties": false,
    });
    if !new_required.is_empty() {
        new_item["required"] = Value::Array(new_required);
    }
    // A PUT's body names no key: the item's id is the path's (the API
    // refuses any other).
    let mut replacement = new_item.clone();
    if let Some(props) = replacement["properties"].as_object_mut() {
        props.remove(&c.key);
    }
    replacement["description"] = json!(format!(
        "A replacing item: the fields it keeps (its `{}` is the one in the path); read-only fields are set by the server.",
        c.key
    ));
    json!({
        "Item": {
            "type": "object",
            "properties": item_props,
            "required": item_required,
            "additionalProperties": false,
        },
        "NewItem": new_item,
        "Replacement": replacement,
        "Patch": {
            "type": "object",
            "description": "JSON merge patch: a field set to null is removed.",
            "properties": patch_props,
            "additionalProperties": false,
        },
        "Page": {
            "type": "object",
            "properties": {
                "items": { "type": "array", "items": { "$ref": "#/components/schemas/Item" } },
                "next": { "type": "string", "nullable": true, "description": "Pass as `next` for the following page; null at the end." }
            },
            "required": ["items", "next"],
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details.",
            "properties": {
                "type": { "type": "string" },
                "title": { "type": "string" },
                "status": { "type": "integer" },
                "detail": { "type": "string" },
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": { "field": { "type": "string" }, "message": { "type": "string" } },
                        "required": ["field", "message"]
                    }
                }
            },
            "required": ["type", "title", "status", "detail"],
        },
        "GatewayError": {
            "type": "object",
            "properties": { "message": { "type": "string" } },
            "required": ["message"],
        },
    })
}

fn field_schema(f: &Field) -> Value {
    let mut s = match &f.kind {
        Kind::String(rules) => string_schema(rules),
        Kind::Integer { min, max } => {
            let mut s = json!({ "type": "integer", "format": "int64" });
            if let Some(min) = min {
                s["minimum"] = json!(min);
            }
            if let Some(max) = max {
                s["maximum"] = json!(max);
            }
            s
        }
        Kind::Number { min, max } => {
            let mut s = json!({ "type": "number" });
            if let Some(min) = min {
                s["minimum"] = json!(min);
            }
            if let Some(max) = max {
                s["maximum"] = json!(max);
            }
            s
        }
        Kind::Boolean => json!({ "type": "boolean" }),
        Kind::Timestamp => json!({ "type": "string", "format": "date-time" }),
        Kind::StringList { max_items, item } => {
            let mut s = json!({ "type": "array", "items": string_schema(item) });
            if let Some(max) = max_items {
                s["maxItems"] = json!(max);
            }
            s
        }
    };
    if let Some(d) = &f.description {
        s["description"] = json!(d);
    }
    if let Some(d) = &f.default {
        s["default"] = d.clone();
    }
    if f.auto.is_some() {
        s["readOnly"] = json!(true);
    }
    s
}

fn string_schema(r: &StringRules) -> Value {
    let mut s = json!({ "type": "string" });
    if let Some(n) = r.min_length {
        s["minLength"] = json!(n);
    }
    if let Some(n) = r.max_length {
        s["maxLength"] = json!(n);
    }
    if let Some(p) = &r.pattern {
        s["pattern"] = json!(format!("^(?:{})$", p.source));
    }
    if let Some(values) = &r.allowed {
        s["enum"] = json!(values);
    }
    if let Some(f) = r.format {
        s["format"] = json!(match f {
            Format::Email => "email",
            Format::Uri => "uri",
            Format::DateTime => "date-time",
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn tenant(id: &str) -> Tenant {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tenants/{id}.toml"));
        Tenant::load(&path).unwrap()
    }

    fn render_doc(t: &Tenant, document: Document) -> Value {
        let i = Integration::new("aws", "eu-west-1", "111122223333");
        serde_json::from_str(&render(t, &i, document).unwrap()).unwrap()
    }

    fn doc(id: &str) -> Value {
        render_doc(&tenant(id), Document::Client)
    }

    fn import_doc(id: &str) -> Value {
        render_doc(&tenant(id), Document::Import)
    }

    /// Every schema object of a document that is a model or in one:
    /// `components.schemas` walked through `properties` and `items`.
    fn model_schemas(d: &Value) -> Vec<(String, &Value)> {
        fn walk<'a>(at: String, s: &'a Value, out: &mut Vec<(String, &'a Value)>) {
            out.push((at.clone(), s));
            for (name, p) in s["properties"].as_object().into_iter().flatten() {
                walk(format!("{at}.{name}"), p, out);
            }
            if let Some(items) = s.get("items") {
                walk(format!("{at}[]"), items, out);
            }
        }
        let mut out = Vec::new();
        for (name, s) in d["components"]["schemas"].as_object().unwrap() {
            walk(name.clone(), s, &mut out);
        }
        out
    }

    fn operations(d: &Value) -> Vec<(String, &Value)> {
        let mut out = Vec::new();
        for (path, methods) in d["paths"].as_object().unwrap() {
            for (verb, op) in methods.as_object().unwrap() {
                out.push((format!("{verb} {path}"), op));
            }
        }
        out
    }

    #[test]
    fn every_method_requires_a_key_and_proxies_to_its_function() {
        let d = doc("acme");
        assert_eq!(d["openapi"], "3.0.1");
        assert_eq!(d["x-amazon-apigateway-api-key-source"], "HEADER");
        let mut seen = Vec::new();
        for (path, methods) in d["paths"].as_object().unwrap() {
            for (verb, op) in methods.as_object().unwrap() {
                seen.push(format!("{verb} {path}"));
                assert_eq!(op["security"], json!([{ "api_key": [] }]), "{verb} {path}");
                let i = &op["x-amazon-apigateway-integration"];
                assert_eq!(i["type"], "aws_proxy");
                assert_eq!(i["httpMethod"], "POST");
                let function = match (verb.as_str(), path.ends_with("{id}")) {
                    ("get", false) => "search",
                    ("post", _) => "add",
                    ("get", true) => "get",
                    ("put" | "patch", _) => "update",
                    ("delete", _) => "delete",
                    _ => unreachable!(),
                };
                assert_eq!(
                    i["uri"],
                    format!(
                        "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:111122223333:function:apifactory-acme-{function}/invocations"
                    )
                );
                // moto 500s on path-level parameters: keep them per operation.
                assert!(methods.get("parameters").is_none());
            }
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                "delete /accounts/{id}",
                "get /accounts",
                "get /accounts/{id}",
                "patch /accounts/{id}",
                "post /accounts",
                "put /accounts/{id}"
            ]
        );
        assert!(
            !d["info"]["description"].as_str().unwrap().is_empty(),
            "moto's import needs it"
        );
    }

    #[test]
    fn schemas_follow_the_fields() {
        let d = doc("acme");
        let item = &d["components"]["schemas"]["Item"];
        assert_eq!(item["properties"]["email"]["format"], "email");
        assert_eq!(
            item["properties"]["plan"]["enum"],
            json!(["free", "pro", "enterprise"])
        );
        assert_eq!(item["properties"]["created"]["readOnly"], true);
        assert_eq!(
            item["required"],
            json!(["id", "name", "email", "plan", "created"])
        );
        let new = &d["components"]["schemas"]["NewItem"];
        assert_eq!(new["required"], json!(["name", "email"]));
        assert_eq!(new["additionalProperties"], false);
        let replacement = &d["components"]["schemas"]["Replacement"];
        assert_eq!(replacement["required"], json!(["name", "email"]));
        assert!(replacement["properties"].get("id").is_none());
        assert_eq!(
            d["paths"]["/accounts/{id}"]["put"]["requestBody"]["content"]["application/json"]["schema"]
                ["$ref"],
            "#/components/schemas/Replacement"
        );
        let fleet = doc("fleet");
        let props = &fleet["components"]["schemas"]["Item"]["properties"];
        assert_eq!(props["plate"]["pattern"], "^(?:[A-Z0-9 -]{2,12})$");
        assert_eq!(props["year"]["minimum"], 1980);
        assert_eq!(props["depots"]["type"], "array");
        assert_eq!(props["manual_url"]["format"], "uri");
    }

    #[test]
    fn disabled_operations_have_no_method() {
        let d = doc("clinic");
        assert!(d["paths"]["/appointments/{id}"].get("delete").is_none());
        assert!(d["paths"]["/appointments/{id}"].get("put").is_some());
    }

    #[test]
    fn the_same_tenant_renders_the_same_bytes() {
        let t = tenant("events");
        let i = Integration::new("aws", "us-east-1", "123456789012");
        for document in [Document::Client, Document::Import] {
            let a = render(&t, &i, document).unwrap();
            assert_eq!(a, render(&t, &i, document).unwrap());
            let mut changed = t.clone();
            changed.functions.timeout_s = 9;
            assert_ne!(a, render(&changed, &i, document).unwrap());
        }
    }

    #[test]
    fn all_five_tenants_render() {
        for id in ["acme", "bookshop", "clinic", "events", "fleet"] {
            let d = doc(id);
            assert!(d["paths"].as_object().unwrap().len() == 2, "{id}");
        }
    }

    #[test]
    fn every_operation_id_is_unique_in_both_documents() {
        for id in ["acme", "bookshop", "clinic", "events", "fleet"] {
            for d in [doc(id), import_doc(id)] {
                let ids: Vec<&str> = operations(&d)
                    .iter()
                    .map(|(_, op)| op["operationId"].as_str().unwrap())
                    .collect();
                let unique: std::collections::BTreeSet<_> = ids.iter().collect();
                assert_eq!(unique.len(), ids.len(), "{id}: {ids:?}");
            }
        }
        let d = doc("acme");
        assert_eq!(
            d["paths"]["/accounts"]["get"]["operationId"],
            "searchAccounts"
        );
        assert_eq!(
            d["paths"]["/accounts/{id}"]["get"]["operationId"],
            "getAccounts"
        );
    }

    #[test]
    fn the_import_document_carries_only_what_the_importer_supports() {
        for id in ["acme", "bookshop", "clinic", "events", "fleet"] {
            let d = import_doc(id);
            assert_eq!(d["info"]["title"], format!("apifactory-{id}"), "{id}");
            assert!(d.get("servers").is_none(), "{id}");
            assert!(
                d.get("security").is_none(),
                "{id}: root security is not used"
            );
            for (at, s) in model_schemas(&d) {
                for k in NOT_IN_MODELS.iter().chain(&["nullable"]) {
                    assert!(s.get(*k).is_none(), "{id}: {at} has {k}");
                }
                let format = s.get("format").and_then(Value::as_str);
                assert!(
                    !matches!(format, Some("int32" | "int64" | "decimal")),
                    "{id}: {at} has format {format:?}"
                );
            }
            for (op, o) in operations(&d) {
                assert_eq!(o["security"], json!([{ "api_key": [] }]), "{id}: {op}");
                for p in o["parameters"].as_array().unwrap() {
                    let keys: Vec<&str> =
                        p.as_object().unwrap().keys().map(|k| k.as_str()).collect();
                    assert!(
                        keys.iter().all(
                            |k| ["name", "in", "required", "description", "schema"].contains(k)
                        ),
                        "{id}: {op}: {keys:?}"
                    );
                    let schema: Vec<&String> = p["schema"].as_object().unwrap().keys().collect();
                    assert_eq!(schema, ["type"], "{id}: {op}: {p}");
                }
            }
        }
        // The client document keeps what the import leaves out.
        let client = doc("acme");
        assert_eq!(client["info"]["title"], "Acme APIs");
        assert_eq!(client["security"], json!([{ "api_key": [] }]));
        let patch = &client["components"]["schemas"]["Patch"]["properties"];
        assert_eq!(patch["plan"]["nullable"], true);
        assert_eq!(
            client["components"]["schemas"]["Item"]["additionalProperties"],
            false
        );
        let import = import_doc("acme");
        let patch = &import["components"]["schemas"]["Patch"]["properties"];
        // null passes a draft-4 schema without a type, the enum still holds.
        assert!(patch["plan"].get("type").is_none(), "{}", patch["plan"]);
        assert_eq!(
            patch["plan"]["enum"],
            json!(["free", "pro", "enterprise", null])
        );
        assert_eq!(
            patch["name"]["type"], "string",
            "required without default: not nullable"
        );
        assert_eq!(
            import["paths"]["/accounts/{id}"]["delete"]["x-amazon-apigateway-integration"],
            client["paths"]["/accounts/{id}"]["delete"]["x-amazon-apigateway-integration"]
        );
    }

    #[test]
    fn a_property_named_like_a_keyword_is_kept() {
        let mut schema = json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "readOnly": { "type": "boolean", "readOnly": true },
                "format": { "type": "integer", "format": "int64", "nullable": true }
            }
        });
        importable(&mut schema);
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": { "readOnly": { "type": "boolean" }, "format": {} }
            })
        );
    }

    #[test]
    fn integrations_and_urls_follow_the_partition() {
        let t = tenant("clinic");
        let china = Integration::new("aws-cn", "cn-north-1", "111122223333");
        let d: Value =
            serde_json::from_str(&render(&t, &china, Document::Client).unwrap()).unwrap();
        let uri = d["paths"]["/appointments/{id}"]["get"]["x-amazon-apigateway-integration"]["uri"]
            .as_str()
            .unwrap();
        assert_eq!(
            uri,
            "arn:aws-cn:apigateway:cn-north-1:lambda:path/2015-03-31/functions/arn:aws-cn:lambda:cn-north-1:111122223333:function:apifactory-clinic-get/invocations"
        );
        let url = d["servers"].as_array().unwrap().last().unwrap()["url"]
            .as_str()
            .unwrap();
        assert!(
            url.ends_with(".execute-api.cn-north-1.amazonaws.com.cn/prod"),
            "{url}"
        );
        let gov = Integration::new("aws-us-gov", "us-gov-west-1", "111122223333");
        assert!(
            gov.uri("f")
                .starts_with("arn:aws-us-gov:apigateway:us-gov-west-1:lambda:path/2015-03-31/functions/arn:aws-us-gov:lambda:us-gov-west-1:")
        );
    }
}
