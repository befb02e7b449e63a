//! The developer portal on AWS, as the AWS target deploys it against moto
//! (which stores a mock integration but cannot run one): `GET /docs` on
//! the tenant's REST API needs no key, integrates `mock` with the page as
//! its response template inside a Velocity unparsed block, and a second
//! apply with nothing changed changes nothing.

use apifactory::portal;
use apifactory_tests::aws::{converge, observe_and_plan, rest_apis, scope};
use apifactory_tests::fleet::{Fleet, target};
use apifactory_tests::sdk_config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_its_portal_from_a_mock_integration_without_a_key() {
    let fleet = Fleet::new(&["clinic"]).await;
    let id = fleet.id("clinic").to_owned();
    let opts = scope(fleet.scope());
    let d = fleet.desired(&[]);
    let t = target().await;
    let (first, _) = converge(&t, &d, &opts).await;
    assert!(!first.is_empty(), "the first apply creates the tenant");

    let api = aws_sdk_apigateway::Client::new(&sdk_config().await);
    let api_id = rest_apis(&api, &id).await[0].id().unwrap().to_owned();
    let resources = api
        .get_resources()
        .rest_api_id(&api_id)
        .embed("methods")
        .limit(500)
        .send()
        .await
        .unwrap();
    let docs = resources
        .items()
        .iter()
        .find(|r| r.path() == Some("/docs"))
        .expect("a /docs resource");
    let methods = docs.resource_methods().expect("methods on /docs");
    assert_eq!(methods.keys().collect::<Vec<_>>(), ["GET"], "only GET");
    let get = &methods["GET"];
    assert_ne!(get.api_key_required(), Some(true), "the page needs no key");
    // The API's own methods still do.
    for r in resources
        .items()
        .iter()
        .filter(|r| r.path() != Some("/docs"))
    {
        for (verb, m) in r.resource_methods().into_iter().flatten() {
            assert_eq!(m.api_key_required(), Some(true), "{verb} {:?}", r.path());
        }
    }

    let integration = api
        .get_integration()
        .rest_api_id(&api_id)
        .resource_id(docs.id().unwrap())
        .http_method("GET")
        .send()
        .await
        .unwrap();
    // moto keeps the document's lower-case type.
    assert_eq!(
        integration
            .r#type()
            .map(|t| t.as_str().to_ascii_uppercase()),
        Some("MOCK".to_owned())
    );
    assert!(integration.uri().is_none_or(str::is_empty), "no function");
    assert_eq!(
        integration
            .request_templates()
            .and_then(|t| t.get("application/json"))
            .map(String::as_str),
        Some("{\"statusCode\": 200}")
    );
    let response = integration
        .integration_responses()
        .and_then(|r| r.get("200"))
        .expect("the 200 integration response");
    assert_eq!(
        response
            .response_parameters()
            .and_then(|p| p.get("method.response.header.Content-Type"))
            .map(String::as_str),
        Some("'text/html; charset=utf-8'")
    );
    let template = response
        .response_templates()
        .and_then(|t| t.get("text/html"))
        .expect("a text/html template");
    let page = portal::render(&fleet.tenant("clinic")).unwrap();
    assert!(
        *template == format!("#[[{page}]]#"),
        "the template is the page inside one unparsed block"
    );

    // Nothing changed: nothing to do, twice over.
    let again = observe_and_plan(&t, &d, &opts).await;
    assert!(again.is_empty(), "{again}");
    let (p, _) = converge(&t, &d, &opts).await;
    assert!(p.is_empty(), "{p}");
}
