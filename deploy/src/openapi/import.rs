//! The import flavour: what API Gateway's importer does not support, taken
//! out of the client document.

use serde_json::{Map, Value, json};

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
pub(super) fn for_import(context: &mut Value, rest_api_name: &str) {
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
pub(super) const NOT_IN_MODELS: &[&str] = &[
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
pub(super) fn importable(schema: &mut Value) {
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
