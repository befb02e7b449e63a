//! The document's schemas, parameters and responses, built from the
//! tenant's fields so that a field rule is documented as it is enforced.

use runtime::Tenant;
use runtime::field::{Field, Format, Kind, StringRules};
use serde_json::{Map, Value, json};

pub(super) fn id_schema() -> Value {
    json!({ "type": "string", "pattern": "^[A-Za-z0-9._~-]{1,128}$" })
}

pub(super) fn search_parameters(c: &runtime::tenant::Collection) -> Value {
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

pub(super) fn responses(ok: &[(u16, Option<&str>, bool)], client_errors: &[u16]) -> Value {
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

pub(super) fn schemas(t: &Tenant) -> Value {
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
