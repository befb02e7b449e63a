use std::path::Path;

use super::import::{NOT_IN_MODELS, importable};
use super::*;

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
        // The portal's page needs no key (see the test after this one).
        for (op, o) in operations(&d)
            .into_iter()
            .filter(|(op, _)| op != "get /docs")
        {
            assert_eq!(o["security"], json!([{ "api_key": [] }]), "{id}: {op}");
            for p in o["parameters"].as_array().unwrap() {
                let keys: Vec<&str> = p.as_object().unwrap().keys().map(|k| k.as_str()).collect();
                assert!(
                    keys.iter()
                        .all(|k| ["name", "in", "required", "description", "schema"].contains(k)),
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
    let d: Value = serde_json::from_str(&render(&t, &china, Document::Client).unwrap()).unwrap();
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

/// The document an API's action carries, bound to an account, is the one
/// rendered for that account, byte for byte, in every partition.
#[test]
fn a_document_rendered_anywhere_binds_to_the_account_it_is_deployed_to() {
    for id in ["acme", "bookshop", "clinic", "events", "fleet"] {
        let t = tenant(id);
        let anywhere = render(&t, &Integration::anywhere(), Document::Import).unwrap();
        assert!(anywhere.contains("arn:{partition}:lambda:{region}:{account}:function:"));
        for (partition, region) in [("aws", "eu-west-1"), ("aws-cn", "cn-north-1")] {
            let here = Integration::new(partition, region, "111122223333");
            let rendered = render(&t, &here, Document::Import).unwrap();
            assert_eq!(
                bind(&anywhere, &here).unwrap(),
                rendered,
                "{id} {partition}"
            );
        }
    }
    assert!(bind("unrenderable: oops", &Integration::anywhere()).is_err());
}

#[test]
fn the_import_document_serves_the_portal_without_a_key_or_a_function() {
    for id in ["acme", "bookshop", "clinic", "events", "fleet"] {
        let d = import_doc(id);
        let op = &d["paths"]["/docs"]["get"];
        assert_eq!(op["security"], json!([]), "{id}");
        let i = &op["x-amazon-apigateway-integration"];
        assert_eq!(i["type"], "mock", "{id}");
        assert!(i.get("uri").is_none(), "{id}: no function");
        assert_eq!(
            i["requestTemplates"]["application/json"],
            "{\"statusCode\": 200}"
        );
        let r = &i["responses"]["default"];
        assert_eq!(r["statusCode"], "200");
        assert_eq!(
            r["responseParameters"]["method.response.header.Content-Type"],
            "'text/html; charset=utf-8'"
        );
        // A mapped header must be a declared method response header.
        assert!(op["responses"]["200"]["headers"]["Content-Type"].is_object());
        let template = r["responseTemplates"]["text/html"].as_str().unwrap();
        let page = template
            .strip_prefix("#[[")
            .and_then(|t| t.strip_suffix("]]#"))
            .expect("one Velocity unparsed block");
        assert_eq!(page, crate::portal::render(&tenant(id)).unwrap(), "{id}");
        assert!(!page.contains("]]#"));
        // The client document leaves it out: it is the data's contract.
        assert!(doc(id)["paths"].get("/docs").is_none(), "{id}");
    }
}
