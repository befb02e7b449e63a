//! The tenant's REST API, put from its rendered OpenAPI document.
//!
//! REST API names are not unique, so the API is found by its tags before
//! one is created. Applying it: create if missing, put the import document
//! (mode overwrite, failing on warnings), make sure every method requires
//! an API key, let the API invoke the tenant's functions, then record the
//! definition's hash in the API's description: the marker observe reads,
//! written last, so an interrupted apply shows the old hash and is redone.
//!
//! A put in overwrite mode renames the API after the document's
//! `info.title` (PutRestApi, API Gateway API reference). The import
//! document's title is the API's own name, so no put renames it; and an
//! API found under another name (renamed by hand, or by a put of an older
//! apifactory stopped before it put the name back) is still the tenant's,
//! by its tags, and planned for an update that puts the name back.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use aws_sdk_apigateway::error::ProvideErrorMetadata;
use aws_sdk_apigateway::primitives::Blob;
use aws_sdk_apigateway::types::{
    ApiKeySourceType, EndpointConfiguration, EndpointType, PutMode, RestApi,
};
use runtime::names;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::pacer::APIGW;
/// Also here for the tests that patch an API by hand.
pub use super::patch::replace;
use super::{AwsTarget, Family, Found, MARKER, Scope, fail, is, listing};
use crate::desired::hex;
use crate::openapi;
use crate::plan::{Action, Change};
use crate::resource::{Address, Kind, attrs};
use crate::spec::{self, ApiSpec};
use crate::target::Applied;

/// Where the tenant's methods integrate: its functions, in the deploy
/// partition, region and account.
pub fn integration(env: &super::Env) -> openapi::Integration {
    openapi::Integration::new(&env.partition, &env.region, &env.account)
}

/// Each tenant's REST APIs: tagged for the tenant, whatever their name (a
/// put may have renamed one), in id order (more than one where a lost
/// create response left a duplicate).
fn by_tenant(apis: &[RestApi]) -> BTreeMap<String, Vec<&RestApi>> {
    let mut found: BTreeMap<String, Vec<&RestApi>> = BTreeMap::new();
    for api in apis.iter().filter(|a| a.id().is_some()) {
        if let Some(tenant) = super::tagged_tenant(api.tags()) {
            found.entry(tenant.to_owned()).or_default().push(api);
        }
    }
    for candidates in found.values_mut() {
        candidates.sort_by_key(|a| a.id());
    }
    found
}

/// The REST API that stands among a tenant's candidates (tagged and named
/// for it): the one the tenant's domain maps, else one with a stage, else
/// the oldest. Reads only where there are several.
async fn choose<'a>(
    t: &AwsTarget,
    tenant: &str,
    candidates: &[&'a RestApi],
) -> anyhow::Result<&'a RestApi> {
    let [first, rest @ ..] = candidates else {
        anyhow::bail!("no REST API to choose from for tenant {tenant}");
    };
    if rest.is_empty() {
        return Ok(first);
    }
    let mapped = super::domain::mapped_apis(t, tenant).await?;
    let mut ranked = Vec::new();
    for api in candidates {
        let id = api.id().unwrap_or_default();
        t.pacer.read(APIGW).await;
        let stages = match t.apigateway.get_stages().rest_api_id(id).send().await {
            Ok(stages) => stages,
            // Deleted since it was listed (another run removing the same
            // duplicate): it no longer stands in the way.
            Err(e) if is(&e, &["NotFoundException"]) => continue,
            Err(e) => return Err(fail(&format!("GetStages {id}"), e)),
        };
        let created = api.created_date().map_or(i128::MAX, |d| d.as_nanos());
        let rank = (
            !mapped.contains(id),
            stages.item().is_empty(),
            created,
            id.to_owned(),
        );
        ranked.push((rank, *api));
    }
    ranked.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ranked.first().map_or(*first, |(_, api)| *api))
}

/// The definition hash and collection a description records.
pub fn parse_marker(description: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(rest) = description.and_then(|d| d.strip_prefix(MARKER)) else {
        return (None, None);
    };
    let mut parts = rest.split_whitespace();
    let hash = parts.next().map(str::to_owned);
    let collection = parts
        .find_map(|p| p.strip_prefix("collection="))
        .map(str::to_owned);
    (hash, collection)
}

pub fn marker(hash: &str, collection: &str) -> String {
    format!("{MARKER}{hash} collection={collection}")
}

/// What observe found of the REST APIs.
#[derive(Default)]
pub struct Apis {
    /// The standing REST API of each tenant in scope: its id and attributes.
    pub found: BTreeMap<String, (String, Found)>,
    /// The standing REST API id of every tenant.
    pub all: HashMap<String, String>,
    /// The others of tenants in scope, for the plan to delete.
    pub duplicates: Vec<Found>,
    /// The standing REST API's description of every tenant (where the
    /// stamp is recorded).
    pub descriptions: HashMap<String, String>,
    /// The stamps of the tenants in scope that have one.
    pub stamps: Vec<Found>,
}

pub async fn observe(t: &AwsTarget, scope: &Scope) -> anyhow::Result<Apis> {
    let apis = listing::rest_apis(t).await?;
    let mut out = Apis::default();
    for (tenant, candidates) in by_tenant(&apis) {
        // Another tenant's duplicates are not this run's to sort out (it
        // never applies that tenant): no reads to choose among them.
        let api = if scope.covers(&tenant) {
            choose(t, &tenant, &candidates).await?
        } else {
            candidates[0]
        };
        let id = api.id().unwrap_or_default().to_owned();
        out.all.insert(tenant.clone(), id.clone());
        if let Some(d) = api.description() {
            out.descriptions.insert(tenant.clone(), d.to_owned());
        }
        if !scope.covers(&tenant) {
            continue;
        }
        out.stamps
            .extend(super::stamp::found(&tenant, api.description()));
        let name = names::rest_api(&tenant);
        for other in candidates
            .iter()
            .filter_map(|c| c.id())
            .filter(|o| *o != id)
        {
            out.duplicates.push((
                Address::new(&tenant, Kind::Api, listing::duplicate_name(&name, other)),
                attrs([(spec::ID, json!(other)), (spec::DUPLICATE_OF, json!(id))]),
            ));
        }
        let (mut hash, collection) = parse_marker(api.description());
        if api.name() != Some(name.as_str()) {
            // Not under its name: the update that puts the definition puts
            // the name back.
            hash = None;
        }
        out.found.insert(
            tenant.clone(),
            (
                id,
                (
                    Address::new(&tenant, Kind::Api, name),
                    attrs([
                        (spec::DEFINITION_SHA256, json!(hash)),
                        (spec::COLLECTION, json!(collection)),
                    ]),
                ),
            ),
        );
    }
    Ok(out)
}

/// The id of the tenant's REST API, found by tags and name.
pub async fn find(t: &AwsTarget, tenant: &str) -> anyhow::Result<Option<String>> {
    let apis = listing::rest_apis(t).await?;
    match by_tenant(&apis).get(tenant) {
        Some(candidates) => Ok(choose(t, tenant, candidates).await?.id().map(str::to_owned)),
        None => Ok(None),
    }
}

async fn delete(t: &AwsTarget, id: &str) -> anyhow::Result<()> {
    t.pacer
        .write(&[Family::ApiGateway, Family::DeleteRestApi])
        .await;
    match t.apigateway.delete_rest_api().rest_api_id(id).send().await {
        Ok(_) => Ok(()),
        Err(e) if is(&e, &["NotFoundException"]) => Ok(()),
        Err(e) => Err(fail(&format!("DeleteRestApi {id}"), e)),
    }
}

pub async fn apply(t: &AwsTarget, action: &Action) -> anyhow::Result<Applied> {
    let tenant = action.address.tenant.as_str();
    if action.change == Change::Delete {
        if let Some((id, _)) = listing::duplicate(&action.attrs) {
            // A duplicate a lost create response left: no plan of the
            // tenant may stay bound to it.
            super::usage_plan::unbind_api(t, tenant, &id).await?;
            delete(t, &id).await?;
            return Ok(Applied::default());
        }
        let Some(id) = t.api_id(tenant).await? else {
            return Ok(Applied::default());
        };
        delete(t, &id).await?;
        t.remember_api(tenant, None);
        return Ok(Applied::default());
    }

    let (document, functions) = action.payload.api().ok_or_else(|| {
        anyhow::anyhow!("the plan's action on REST API {tenant} carries no document")
    })?;
    let spec: ApiSpec = spec::read(action)?;
    let hash = spec.definition_sha256.as_str();
    // The hash observe reads back must be of the document put.
    if hash != hex(&Sha256::digest(document.as_bytes())) {
        anyhow::bail!("the planned API definition is not the document the plan carries");
    }
    let name = names::rest_api(tenant);
    let id = match t.api_id(tenant).await? {
        Some(id) => id,
        None => {
            t.pacer
                .write(&[Family::ApiGateway, Family::CreateRestApi])
                .await;
            let created = t
                .apigateway
                .create_rest_api()
                .name(&name)
                .description(format!("{MARKER}creating"))
                .api_key_source(ApiKeySourceType::Header)
                .endpoint_configuration(
                    EndpointConfiguration::builder()
                        .types(EndpointType::Regional)
                        .build(),
                )
                .set_tags(Some(super::tags(tenant)))
                .send()
                .await
                .map_err(|e| fail(&format!("CreateRestApi {name}"), e))?;
            let id = created
                .id()
                .ok_or_else(|| anyhow::anyhow!("CreateRestApi {name} returned no id"))?
                .to_owned();
            t.remember_api(tenant, Some(&id));
            id
        }
    };

    let doc = openapi::bind(document, &integration(&t.env))?;
    t.pacer
        .write(&[Family::ApiGateway, Family::PutRestApi])
        .await;
    let put = put_definition(&t.apigateway, &id, doc)
        .send()
        .await
        .map_err(|e| fail(&format!("PutRestApi {name} ({id})"), e))?;
    for line in warning_lines(tenant, &name, put.warnings()) {
        eprintln!("{line}");
    }

    require_api_keys(t, &id).await?;

    // The functions' permissions name this API's id, which PutRestApi keeps
    // (API Gateway API reference, PutRestApi: the API is updated in place,
    // `restapi_id` in its path): made when the API is, and again while its
    // marker is missing (an apply stopped before its end, which writes the
    // marker after the permissions). An API whose marker was written has
    // them; drift (--refresh) reads them.
    let unmarked = match &action.change {
        Change::Update { fields } => fields.iter().any(|f| f.from.is_null()),
        _ => true,
    };
    if unmarked {
        for function in functions {
            super::function::ensure_permission(t, function, &id).await?;
        }
    }

    // Last: the name (putting a definition may rename the API after its
    // title) and the marker.
    let collection = spec.collection.as_str();
    // The tenant's stamp stays as it is: only its own actions change it.
    let kept = t.description(tenant);
    let description = super::stamp::with(
        &marker(hash, collection),
        super::stamp::parse(kept.as_deref()),
    );
    let mut patch = vec![replace("/description", &description)?];
    if put.name() != Some(name.as_str()) {
        patch.push(replace("/name", &name)?);
    }
    t.pacer.write(APIGW).await;
    t.apigateway
        .update_rest_api()
        .rest_api_id(&id)
        .set_patch_operations(Some(patch))
        .send()
        .await
        .map_err(|e| fail(&format!("UpdateRestApi {name} ({id})"), e))?;
    t.described(tenant, &description);
    Ok(Applied::default())
}

/// The put of the import document: overwrite, and fail on warnings, so a
/// definition API Gateway would import only in part (a warning) is rolled
/// back and the apply fails with the warnings in the error ("Errors and
/// warnings during import", API Gateway developer guide) instead of
/// deploying something other than the document.
fn put_definition(
    client: &aws_sdk_apigateway::Client,
    id: &str,
    doc: String,
) -> aws_sdk_apigateway::operation::put_rest_api::builders::PutRestApiFluentBuilder {
    client
        .put_rest_api()
        .rest_api_id(id)
        .mode(PutMode::Overwrite)
        .fail_on_warnings(true)
        .body(Blob::new(doc.into_bytes()))
}

/// The apply output's lines for warnings a put still answered (none is
/// expected with `failOnWarnings`, but one must never pass unseen).
fn warning_lines(tenant: &str, name: &str, warnings: &[String]) -> Vec<String> {
    warnings
        .iter()
        .map(|w| format!("{tenant}: warning: API Gateway imported {name} with: {w}"))
        .collect()
}

/// Every method of the API with `apiKeyRequired` true and its integration,
/// but the developer portal's (`/docs`), which is for anyone.
///
/// API Gateway sets `apiKeyRequired` from the document's `security`, so on
/// AWS every method already has it and this is one read. moto ignores
/// `security`; there UpdateMethod is missing too, so the method is put
/// again with the flag and its integration put back (putting a method over
/// an existing one drops its integration there).
pub async fn require_api_keys(t: &AwsTarget, id: &str) -> anyhow::Result<()> {
    let mut fixed = 0;
    for resource in resources(t, id).await? {
        let Some(methods) = resource.resource_methods() else {
            continue;
        };
        if resource.path() == Some(crate::portal::PATH) {
            continue;
        }
        let resource_id = resource.id().unwrap_or_default();
        for (verb, method) in methods {
            if method.api_key_required() == Some(true) {
                continue;
            }
            fixed += 1;
            if !t.update_method_missing.load(Ordering::Relaxed) {
                t.pacer.write(APIGW).await;
                let updated = t
                    .apigateway
                    .update_method()
                    .rest_api_id(id)
                    .resource_id(resource_id)
                    .http_method(verb)
                    .patch_operations(replace("/apiKeyRequired", "true")?)
                    .customize()
                    .config_override(
                        aws_sdk_apigateway::config::Config::builder().retry_config(
                            aws_sdk_apigateway::config::retry::RetryConfig::disabled(),
                        ),
                    )
                    .send()
                    .await;
                match updated {
                    Ok(_) => continue,
                    // An endpoint without UpdateMethod answers 404 or 5xx
                    // with no error code.
                    Err(e)
                        if e.code().is_none()
                            && e.raw_response().is_some_and(|r| {
                                let s = r.status().as_u16();
                                s == 404 || s >= 500
                            }) =>
                    {
                        t.update_method_missing.store(true, Ordering::Relaxed);
                    }
                    Err(e) => return Err(fail(&format!("UpdateMethod {verb} on {id}"), e)),
                }
            }
            t.pacer.write(APIGW).await;
            t.apigateway
                .put_method()
                .rest_api_id(id)
                .resource_id(resource_id)
                .http_method(verb)
                .authorization_type(method.authorization_type().unwrap_or("NONE"))
                .api_key_required(true)
                .set_operation_name(method.operation_name().map(str::to_owned))
                .set_request_parameters(method.request_parameters().cloned())
                .set_request_models(method.request_models().cloned())
                .send()
                .await
                .map_err(|e| fail(&format!("PutMethod {verb} on {id}"), e))?;
            if let Some(i) = method.method_integration() {
                t.pacer.write(APIGW).await;
                t.apigateway
                    .put_integration()
                    .rest_api_id(id)
                    .resource_id(resource_id)
                    .http_method(verb)
                    .set_type(i.r#type().cloned())
                    .set_integration_http_method(i.http_method().map(str::to_owned))
                    .set_uri(i.uri().map(str::to_owned))
                    .set_passthrough_behavior(i.passthrough_behavior().map(str::to_owned))
                    .timeout_in_millis(i.timeout_in_millis())
                    .set_request_parameters(i.request_parameters().cloned())
                    .set_content_handling(i.content_handling().cloned())
                    .send()
                    .await
                    .map_err(|e| fail(&format!("PutIntegration {verb} on {id}"), e))?;
            }
        }
    }
    if fixed > 0 {
        // Check what the fix left.
        for resource in resources(t, id).await? {
            if resource.path() == Some(crate::portal::PATH) {
                continue;
            }
            for (verb, m) in resource.resource_methods().into_iter().flatten() {
                if m.api_key_required() != Some(true) || m.method_integration().is_none() {
                    anyhow::bail!(
                        "{verb} {} on {id} still lacks a required API key or its integration",
                        resource.path().unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}

async fn resources(
    t: &AwsTarget,
    id: &str,
) -> anyhow::Result<Vec<aws_sdk_apigateway::types::Resource>> {
    let mut all = Vec::new();
    let mut position: Option<String> = None;
    loop {
        t.pacer
            .read(&[Family::ApiGateway, Family::GetResources])
            .await;
        let page = t
            .apigateway
            .get_resources()
            .rest_api_id(id)
            .embed("methods")
            .limit(500)
            .set_position(position.take())
            .send()
            .await
            .map_err(|e| fail(&format!("GetResources {id}"), e))?;
        let next = page.position().map(str::to_owned);
        all.extend(page.items.unwrap_or_default());
        match next {
            Some(p) if !p.is_empty() => position = Some(p),
            _ => break,
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(id: &str, name: &str, tenant: Option<&str>) -> RestApi {
        RestApi::builder()
            .id(id)
            .name(name)
            .set_tags(tenant.map(super::super::tags))
            .build()
    }

    #[test]
    fn a_tenants_apis_are_found_by_their_tags_whatever_their_name() {
        let apis = [
            api("b2", "apifactory-acme", Some("acme")),
            api("a1", "Acme APIs", Some("acme")),
            api("c3", "apifactory-acme", None),
            api("e5", "apifactory-clinic", Some("clinic")),
        ];
        let by = by_tenant(&apis);
        let found: BTreeMap<&str, Vec<&str>> = by
            .iter()
            .map(|(t, apis)| (t.as_str(), apis.iter().filter_map(|a| a.id()).collect()))
            .collect();
        assert_eq!(
            found,
            BTreeMap::from([("acme", vec!["a1", "b2"]), ("clinic", vec!["e5"])])
        );
    }

    #[test]
    fn the_definition_is_put_failing_on_warnings() {
        let config = aws_sdk_apigateway::Config::builder()
            .behavior_version(aws_sdk_apigateway::config::BehaviorVersion::latest())
            .build();
        let client = aws_sdk_apigateway::Client::from_conf(config);
        let put = put_definition(&client, "a1", "{}".into());
        assert_eq!(put.get_fail_on_warnings(), &Some(true));
        assert_eq!(put.get_mode(), &Some(PutMode::Overwrite));
        assert_eq!(
            warning_lines(
                "acme",
                "apifactory-acme",
                &["Unable to create model".into()]
            ),
            ["acme: warning: API Gateway imported apifactory-acme with: Unable to create model"]
        );
    }

    #[test]
    fn integrations_name_the_deploy_partition() {
        let uri = |region: &str| {
            integration(&super::super::Env::new(region, "111122223333")).uri("apifactory-acme-get")
        };
        assert_eq!(
            uri("cn-north-1"),
            "arn:aws-cn:apigateway:cn-north-1:lambda:path/2015-03-31/functions/arn:aws-cn:lambda:cn-north-1:111122223333:function:apifactory-acme-get/invocations"
        );
        assert_eq!(
            uri("us-gov-west-1"),
            "arn:aws-us-gov:apigateway:us-gov-west-1:lambda:path/2015-03-31/functions/arn:aws-us-gov:lambda:us-gov-west-1:111122223333:function:apifactory-acme-get/invocations"
        );
        assert!(uri("eu-west-1").starts_with("arn:aws:apigateway:eu-west-1:"));
    }

    #[test]
    fn the_marker_reads_back() {
        let m = marker("abc123", "accounts");
        assert_eq!(
            parse_marker(Some(&m)),
            (Some("abc123".into()), Some("accounts".into()))
        );
        assert_eq!(parse_marker(Some("Customer accounts")), (None, None));
        assert_eq!(parse_marker(None), (None, None));
    }
}
