//! The API documents as API Gateway takes them, against moto through the
//! fault proxy's model of what moto does not do:
//!
//! - an independent OpenAPI 3 validator (PyPI `openapi-spec-validator`,
//!   installed by `tests/run`) passes both documents (client and import) of
//!   every tenant in `tenants/` and of the test fixtures that are tenants,
//!   and refuses a document whose operationIds repeat;
//! - API Gateway's importer (the proxy's `import_warnings`) takes every
//!   tenant's import document with `failOnWarnings`, and refuses a document
//!   with `nullable` (the client document has it);
//! - PutRestApi renaming the API after the document's title (the proxy's
//!   `put_rest_api_renames`): an apply stopped between the put and the end
//!   of the API's action leaves an API the next apply finds, so no second
//!   one is made; an API found under another name gets its name back.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use apifactory::apply::{Quiet, apply};
use apifactory::openapi::{self, Document, Integration};
use apifactory::plan::Change;
use apifactory::resource::Kind;
use apifactory_tests::fault_proxy::{FaultConfig, FaultProxy};
use apifactory_tests::{moto_url, repo_root, sdk_config, sdk_config_at};
use aws_sdk_apigateway::error::ProvideErrorMetadata;
use aws_sdk_apigateway::primitives::Blob;
use runtime::{Tenant, names};
use serde_json::Value;

use apifactory_tests::aws::{converge, observe_and_plan, rest_apis, scope};
use apifactory_tests::fleet::{Fleet, target, target_at};

/// Where `tests/run` put the validator's command.
const VALIDATOR_ENV: &str = "APIFACTORY_TEST_OPENAPI_VALIDATOR";

fn validator() -> PathBuf {
    match std::env::var(VALIDATOR_ENV) {
        Ok(path) if !path.trim().is_empty() => PathBuf::from(path.trim()),
        _ => panic!(
            "{VALIDATOR_ENV} is not set: run the tests with tests/run, which installs \
             openapi-spec-validator"
        ),
    }
}

/// Every tenant file the tests hold: `tenants/` and the fixtures that are
/// valid tenants on their own (the broken ones are not).
fn tenant_files() -> Vec<Tenant> {
    let root = repo_root();
    let mut paths: Vec<PathBuf> = Vec::new();
    for dir in ["tenants", "tests/data/clashing-tenants"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                paths.push(path);
            }
        }
    }
    paths.push(root.join("tests/data/conformance.toml"));
    paths.sort();
    paths
        .iter()
        .map(|p| Tenant::load(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

fn integration() -> Integration {
    Integration::new("aws", "us-east-1", "123456789012")
}

fn render(t: &Tenant, document: Document) -> String {
    openapi::render(t, &integration(), document).unwrap()
}

/// Runs the validator on these files: its exit status and output.
fn validate(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(validator())
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", validator().display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_document_of_every_tenant_passes_an_independent_validator() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = tenant_files();
    assert!(tenants.len() >= 8, "{} tenant files", tenants.len());
    let mut files = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        for (document, what) in [(Document::Client, "client"), (Document::Import, "import")] {
            let path = dir.path().join(format!("{i}-{}-{what}.json", t.id));
            std::fs::write(&path, render(t, document)).unwrap();
            files.push(path);
        }
    }
    let (ok, output) = validate(&files);
    assert!(ok, "{output}");
    for f in &files {
        assert!(
            output.contains(&format!("{}: OK", f.display())),
            "{} not passed:\n{output}",
            f.display()
        );
    }

    // The validator does check: search and get under one operationId (as
    // the documents had them) fail it.
    let acme = tenants.iter().find(|t| t.id == "acme").unwrap();
    let mut doc: Value = serde_json::from_str(&render(acme, Document::Client)).unwrap();
    doc["paths"]["/accounts"]["get"]["operationId"] = "getAccounts".into();
    let shared = dir.path().join("shared-operation-id.json");
    std::fs::write(&shared, doc.to_string()).unwrap();
    let (ok, output) = validate(std::slice::from_ref(&shared));
    assert!(!ok, "a repeated operationId passed:\n{output}");
    assert!(output.contains("getAccounts"), "{output}");
}

fn model_of_aws() -> FaultConfig {
    FaultConfig {
        put_rest_api_renames: true,
        import_warnings: true,
        ..FaultConfig::with_rate(0.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_importer_takes_every_import_document_and_refuses_nullable() {
    let proxy = FaultProxy::start(&moto_url(), model_of_aws()).await;
    let api = aws_sdk_apigateway::Client::new(&sdk_config_at(proxy.url()).await);
    let created = api
        .create_rest_api()
        .name(apifactory_tests::unique_name("import-model"))
        .send()
        .await
        .unwrap();
    let id = created.id().unwrap();
    let put = |doc: String, fail_on_warnings: bool| {
        api.put_rest_api()
            .rest_api_id(id)
            .mode(aws_sdk_apigateway::types::PutMode::Overwrite)
            .fail_on_warnings(fail_on_warnings)
            .body(Blob::new(doc.into_bytes()))
            .send()
    };

    for t in tenant_files() {
        let done = put(render(&t, Document::Import), true)
            .await
            .unwrap_or_else(|e| panic!("{}: {:?}", t.id, e.message()));
        assert!(
            done.warnings().is_empty(),
            "{}: {:?}",
            t.id,
            done.warnings()
        );
        // The title is the API's name: the put leaves it as it was.
        assert_eq!(done.name(), Some(names::rest_api(&t.id).as_str()));
    }

    // The client document keeps `nullable`, `readOnly`, `int64` and
    // `additionalProperties`: refused, and listed in the error.
    let acme = Tenant::load(&repo_root().join("tenants/acme.toml")).unwrap();
    let err = put(render(&acme, Document::Client), true)
        .await
        .expect_err("the client document has warnings");
    assert_eq!(err.code(), Some("BadRequestException"), "{err:?}");
    let message = err.message().unwrap_or_default().to_owned();
    for keyword in ["\"nullable\"", "\"readOnly\"", "\"additionalProperties\""] {
        assert!(message.contains(keyword), "{keyword} not in {message}");
    }

    // `nullable` alone is enough.
    let mut doc: Value = serde_json::from_str(&render(&acme, Document::Import)).unwrap();
    doc["components"]["schemas"]["Page"]["properties"]["next"]["nullable"] = true.into();
    let err = put(doc.to_string(), true)
        .await
        .expect_err("nullable is a warning");
    assert!(
        err.message().is_some_and(
            |m| m.contains("Unable to create model for 'Page'") && m.contains("\"nullable\"")
        ),
        "{err:?}"
    );
    // Without failOnWarnings the put goes through and lists them.
    let done = put(doc.to_string(), false).await.unwrap();
    assert_eq!(done.warnings().len(), 1, "{:?}", done.warnings());

    let direct = aws_sdk_apigateway::Client::new(&sdk_config().await);
    direct
        .delete_rest_api()
        .rest_api_id(id)
        .send()
        .await
        .unwrap();
}

/// The REST API's action stops right after its PutRestApi (the proxy
/// refuses the UpdateRestApi that follows, as if the run were killed
/// there). AWS renames the API after the document's title; the title is
/// the API's name, so the next apply finds the API and finishes it rather
/// than making a second one it never reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_stopped_after_the_put_leaves_no_second_api() {
    let fleet = Fleet::new(&["clinic"]).await;
    let id = fleet.id("clinic").to_owned();
    let opts = scope(fleet.scope());
    let d = fleet.desired(&[]);
    let proxy = FaultProxy::start(
        &moto_url(),
        FaultConfig {
            refuse_first: vec!["UpdateRestApi"],
            ..model_of_aws()
        },
    )
    .await;
    let through = target_at(proxy.url()).await;
    let p = observe_and_plan(&through, &d, &opts).await;
    let report = apply(&p, through.clone(), 8, Arc::new(Quiet)).await;
    let error = report.tenants[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("UpdateRestApi") && error.contains("BadRequestException"),
        "the API's action stops at the refused UpdateRestApi: {report}"
    );
    let direct = aws_sdk_apigateway::Client::new(&sdk_config().await);
    let apis = rest_apis(&direct, &id).await;
    assert_eq!(apis.len(), 1, "{apis:?}");
    assert_eq!(apis[0].name(), Some(names::rest_api(&id).as_str()));

    // The next apply, with AWS's renaming still on, finishes the API.
    let again = FaultProxy::start(&moto_url(), model_of_aws()).await;
    let through = target_at(again.url()).await;
    converge(&through, &d, &opts).await;
    let apis = rest_apis(&direct, &id).await;
    assert_eq!(apis.len(), 1, "a second REST API: {apis:?}");
    assert_eq!(apis[0].name(), Some(names::rest_api(&id).as_str()));
    let (p, _) = converge(&target().await, &d, &opts).await;
    assert!(p.is_empty(), "{p}");
}

/// An API renamed (by hand, or by a put of an older apifactory stopped
/// before it put the name back) is still the tenant's, by its tags: the
/// plan updates it, which puts the name back, and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_under_another_name_is_found_by_its_tags_and_renamed() {
    let fleet = Fleet::new(&["clinic"]).await;
    let id = fleet.id("clinic").to_owned();
    let opts = scope(fleet.scope());
    let d = fleet.desired(&[]);
    let t = target().await;
    converge(&t, &d, &opts).await;
    let direct = aws_sdk_apigateway::Client::new(&sdk_config().await);
    let api_id = rest_apis(&direct, &id).await[0].id().unwrap().to_owned();
    direct
        .update_rest_api()
        .rest_api_id(&api_id)
        .patch_operations(apifactory::aws::api::replace("/name", "Riverside Clinic").unwrap())
        .send()
        .await
        .unwrap();

    let p = observe_and_plan(&*target().await, &d, &opts).await;
    let planned: Vec<(Kind, &Change)> = p
        .actions
        .iter()
        .map(|a| (a.address.kind, &a.change))
        .collect();
    assert!(
        planned.len() == 1 && planned[0].0 == Kind::Api && planned[0].1 != &Change::Create,
        "{p}"
    );
    converge(&target().await, &d, &opts).await;
    let apis = rest_apis(&direct, &id).await;
    assert_eq!(apis.len(), 1, "{apis:?}");
    assert_eq!(apis[0].id(), Some(api_id.as_str()));
    assert_eq!(apis[0].name(), Some(names::rest_api(&id).as_str()));
}
