//! `GET /docs` in the import document: the developer portal, served by
//! API Gateway itself (a mock integration, no function call) and without
//! an API key.
//!
//! The page is the integration's response template ("Mock integrations
//! for REST APIs in API Gateway", API Gateway developer guide: the request
//! template picks the status, the integration response's template is the
//! body, its parameters set the headers). A response template is
//! Velocity, where `$` and `#` are code: the page goes inside an unparsed
//! block `#[[ ... ]]#`, which Velocity copies as it is, and never holds
//! the `]]#` that would end it (`portal::render`). Its size is held to
//! API Gateway's mapping template quota by `portal::render` too.
//!
//! The client document leaves `/docs` out: it describes the API's data
//! for tools (SDK generators, the contract tests), and the page is made
//! from it, not part of it.

use runtime::Tenant;
use serde_json::{Value, json};

use crate::portal;

/// Adds `GET /docs` to an import document's paths.
pub(super) fn add(doc: &mut Value, t: &Tenant) -> anyhow::Result<()> {
    let page = portal::render(t)?;
    let paths = doc
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow::anyhow!("the OpenAPI template rendered no paths"))?;
    paths.insert(portal::PATH.to_owned(), operation(&page));
    Ok(())
}

/// The operation: no security (overriding the document's key), a 200
/// whose Content-Type the integration response sets (a method response
/// header must be declared to be mapped), and the mock integration.
fn operation(page: &str) -> Value {
    json!({
        "get": {
            // Unique: a collection may not be named `docs`, so no
            // `{action}{Collection}` id of the API is this one.
            "operationId": "getDocs",
            "summary": "The API's developer portal: an HTML page, no API key needed",
            "security": [],
            "responses": {
                "200": {
                    "description": "The developer portal",
                    "headers": { "Content-Type": { "schema": { "type": "string" } } }
                }
            },
            "x-amazon-apigateway-integration": {
                "type": "mock",
                "requestTemplates": { "application/json": "{\"statusCode\": 200}" },
                "passthroughBehavior": "when_no_match",
                "responses": {
                    "default": {
                        "statusCode": "200",
                        "responseParameters": {
                            "method.response.header.Content-Type": "'text/html; charset=utf-8'"
                        },
                        "responseTemplates": { "text/html": format!("#[[{page}]]#") }
                    }
                }
            }
        }
    })
}
