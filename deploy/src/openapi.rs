//! A tenant's API as an OpenAPI 3 document, rendered from a handlebars
//! template (`templates/openapi.json.hbs`) in two flavours ([`Document`]):
//! the client document (what `apifactory openapi <tenant>` prints, the
//! contract the local gateway is tested against) and the import document
//! (the definition the AWS target puts into API Gateway).
//!
//! Every method of the collection requires an API key and integrates
//! `aws_proxy` with its operation's function. The template holds the document's shape; the
//! schemas, parameters and responses are built from the tenant's fields
//! (`schema`), so a field rule can never be documented one way and enforced
//! another. The import document is the client one with what API Gateway's
//! importer does not support taken out (`import`): imported with
//! `failOnWarnings`, anything left that it would ignore fails the apply
//! instead of being deployed as something other than the document says.
//! The import document also serves the developer portal at `/docs`
//! (`portal`).

use handlebars::Handlebars;
use runtime::names;
use runtime::{Operation, Tenant};
use serde_json::{Value, json};

mod import;
mod portal;
mod schema;

use import::for_import;
use schema::{id_schema, responses, schemas, search_parameters};

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

    /// Placeholders for the partition, region and account: the import
    /// document rendered with them is the same wherever it is deployed
    /// (its hash changes exactly when the API does), and [`bind`] puts in
    /// the real ones.
    pub fn anywhere() -> Self {
        Integration::new("{partition}", "{region}", "{account}")
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
    let mut doc: Value = serde_json::from_str(&rendered)
        .map_err(|e| anyhow::anyhow!("the OpenAPI template rendered invalid JSON: {e}"))?;
    if document == Document::Import {
        portal::add(&mut doc, t)?;
    }
    Ok(serde_json::to_string_pretty(&doc)?)
}

/// The import document rendered with [`Integration::anywhere`], bound to
/// where it is deployed: the placeholders in its integration URIs (the
/// only part of an import document that names an account) replaced. The
/// same bytes as rendering it there.
pub fn bind(document: &str, integration: &Integration) -> anyhow::Result<String> {
    fn walk(v: &mut Value, i: &Integration) {
        match v {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if key != "x-amazon-apigateway-integration" {
                        walk(child, i);
                    } else if let Some(Value::String(uri)) = child.get_mut("uri") {
                        *uri = uri
                            .replace("{partition}", &i.partition)
                            .replace("{region}", &i.region)
                            .replace("{account}", &i.account);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| walk(item, i)),
            _ => {}
        }
    }
    let mut doc: Value = serde_json::from_str(document).map_err(|e| {
        let start: String = document.chars().take(200).collect();
        anyhow::anyhow!("the planned API document is not JSON ({e}): {start}")
    })?;
    walk(&mut doc, integration);
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

#[cfg(test)]
mod tests;
