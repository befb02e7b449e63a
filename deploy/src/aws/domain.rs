//! The tenant's custom domain: a regional domain name with the tenant's
//! certificate, a base path mapping to the stage, and a Route 53 alias
//! record when the tenant file names a hosted zone.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_apigateway::types::{
    BasePathMapping, DomainName, EndpointConfiguration, EndpointType, SecurityPolicy,
};
use aws_sdk_route53::types::{
    AliasTarget, Change as DnsChange, ChangeAction, ChangeBatch, HostedZone, ResourceRecordSet,
    RrType,
};
use serde_json::{Value, json};

use super::pacer::APIGW;
use super::patch::replace;
use super::{AwsTarget, Family, Found, Scope, each, fail, is, listing};
use crate::plan::{Action, Change};
use crate::resource::{Address, Kind, attrs};
use crate::spec::{self, DomainSpec};
use crate::target::Applied;

const ROUTE53: &[Family] = &[Family::Route53];
const DOMAIN_WRITE: &[Family] = &[Family::ApiGateway, Family::DomainName];

/// The base path API Gateway reports for a mapping of the domain's root.
const ROOT: &str = "(none)";

/// Every public hosted zone: (id without `/hostedzone/`, name without the
/// final dot).
pub async fn hosted_zones(t: &AwsTarget) -> anyhow::Result<Vec<(String, String)>> {
    let mut zones = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        t.pacer.read(ROUTE53).await;
        let page = t
            .route53
            .list_hosted_zones()
            .set_marker(marker.take())
            .max_items(100)
            .send()
            .await
            .map_err(|e| fail("Route 53 ListHostedZones", e))?;
        // ListHostedZones lists private zones too; an alias record in one
        // answers only inside its VPCs, so it is never the domain's record.
        zones.extend(
            page.hosted_zones()
                .iter()
                .filter(|z| !z.config().is_some_and(|c| c.private_zone()))
                .map(zone),
        );
        match (page.is_truncated(), page.next_marker()) {
            (true, Some(m)) => marker = Some(m.to_owned()),
            _ => break,
        }
    }
    Ok(zones)
}

fn zone(z: &HostedZone) -> (String, String) {
    (
        z.id().trim_start_matches("/hostedzone/").to_owned(),
        z.name().trim_end_matches('.').to_owned(),
    )
}

/// The domain's base path mappings.
async fn mappings(t: &AwsTarget, name: &str) -> anyhow::Result<Vec<BasePathMapping>> {
    t.pacer.read(APIGW).await;
    let found = t
        .apigateway
        .get_base_path_mappings()
        .domain_name(name)
        .limit(500)
        .send()
        .await;
    match found {
        Ok(m) => Ok(m.items().to_vec()),
        // moto 5.2.5 answers 500 (an HTML page) for a domain with no
        // mapping yet, where AWS answers an empty list; an apply
        // interrupted between the domain and its mapping meets it.
        // Planning a create is safe: apply reads on conflict.
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 500) => Ok(Vec::new()),
        Err(e) => Err(fail(&format!("GetBasePathMappings {name}"), e)),
    }
}

/// The REST API ids the tenant's domains map a base path to.
pub async fn mapped_apis(t: &AwsTarget, tenant: &str) -> anyhow::Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for d in listing::domain_names(t).await? {
        if super::tagged_tenant(d.tags()) != Some(tenant) {
            continue;
        }
        let name = d.domain_name().unwrap_or_default();
        for m in mappings(t, name).await? {
            ids.extend(m.rest_api_id().map(str::to_owned));
        }
    }
    Ok(ids)
}

/// The domain names of the tenants in scope: (tenant, domain).
pub async fn ours(t: &AwsTarget, scope: &Scope) -> anyhow::Result<Vec<(String, DomainName)>> {
    let mut ours = Vec::new();
    for d in listing::domain_names(t).await? {
        let Some(tenant) = super::tagged_tenant(d.tags()) else {
            continue;
        };
        if scope.covers(tenant) {
            ours.push((tenant.to_owned(), d));
        }
    }
    Ok(ours)
}

/// What the plan compares of these domains: the base path mapping and the
/// alias record, read per domain.
pub async fn details(
    t: &AwsTarget,
    ours: Vec<(String, DomainName)>,
    api_ids: &BTreeMap<String, String>,
    zones: &[(String, String)],
) -> anyhow::Result<Vec<Found>> {
    let (t, api_ids, zones) = (t.clone(), api_ids.clone(), zones.to_vec());
    each(ours, 8, move |(tenant, d)| {
        let (t, api_ids, zones) = (t.clone(), api_ids.clone(), zones.clone());
        async move {
            let name = d.domain_name().unwrap_or_default().to_owned();
            let api = api_ids.get(&tenant);
            let items = mappings(&t, &name).await?;
            let mapping = items
                .iter()
                .find(|m| api.is_some() && m.rest_api_id() == api.map(String::as_str));
            let base_path = mapping.map(|m| match m.base_path() {
                Some(ROOT) | None => String::new(),
                Some(p) => p.to_owned(),
            });
            let zone = alias_zone(&t, &zones, &d).await?;
            Ok((
                Address::new(&tenant, Kind::Domain, &name),
                attrs([
                    (spec::CERTIFICATE_ARN, json!(d.regional_certificate_arn())),
                    (spec::BASE_PATH, json!(base_path)),
                    (spec::HOSTED_ZONE_ID, json!(zone)),
                    (spec::STAGE, json!(mapping.and_then(|m| m.stage()))),
                ]),
            ))
        }
    })
    .await
}

/// The hosted zone holding an alias record of the domain to its regional
/// endpoint, among the zones the domain could live in.
async fn alias_zone(
    t: &AwsTarget,
    zones: &[(String, String)],
    d: &DomainName,
) -> anyhow::Result<Option<String>> {
    let name = d.domain_name().unwrap_or_default();
    let Some(target) = d.regional_domain_name() else {
        return Ok(None);
    };
    for (id, zone) in zones {
        if name != zone && !name.ends_with(&format!(".{zone}")) {
            continue;
        }
        t.pacer.read(ROUTE53).await;
        let records = t
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(id)
            .start_record_name(name)
            .start_record_type(RrType::A)
            .max_items(1)
            .send()
            .await
            .map_err(|e| fail(&format!("Route 53 ListResourceRecordSets {id}"), e))?;
        let found = records.resource_record_sets().iter().any(|r| {
            r.name().trim_end_matches('.') == name
                && r.r#type() == &RrType::A
                && r.alias_target().is_some_and(|a| {
                    a.dns_name()
                        .trim_end_matches('.')
                        .eq_ignore_ascii_case(target)
                })
        });
        if found {
            return Ok(Some(id.clone()));
        }
    }
    Ok(None)
}

/// The value a field had before an update.
fn before(action: &Action, field: &str) -> Option<Value> {
    match &action.change {
        Change::Update { fields } => fields
            .iter()
            .find(|f| f.field == field)
            .map(|f| f.from.clone()),
        _ => None,
    }
}

pub async fn apply(t: &AwsTarget, action: &Action) -> anyhow::Result<Applied> {
    let tenant = action.address.tenant.as_str();
    let name = action.address.name.as_str();
    t.pacer.read(APIGW).await;
    let existing = match t
        .apigateway
        .get_domain_name()
        .domain_name(name)
        .send()
        .await
    {
        Ok(d) => Some(
            DomainName::builder()
                .set_domain_name(d.domain_name)
                .set_regional_domain_name(d.regional_domain_name)
                .set_regional_hosted_zone_id(d.regional_hosted_zone_id)
                .set_regional_certificate_arn(d.regional_certificate_arn)
                .build(),
        ),
        Err(e) if is(&e, &["NotFoundException"]) => None,
        Err(e) => return Err(fail(&format!("GetDomainName {name}"), e)),
    };

    if action.change == Change::Delete {
        let Some(d) = existing else {
            return Ok(Applied::default());
        };
        // What was observed: any attribute may be null.
        let text = |k: &str| action.attrs.get(k).and_then(Value::as_str);
        if let Some(zone) = text(spec::HOSTED_ZONE_ID) {
            alias(t, zone, &d, ChangeAction::Delete).await?;
        }
        if let Some(base_path) = text(spec::BASE_PATH) {
            t.pacer.write(APIGW).await;
            match t
                .apigateway
                .delete_base_path_mapping()
                .domain_name(name)
                .base_path(if base_path.is_empty() {
                    ROOT
                } else {
                    base_path
                })
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is(&e, &["NotFoundException"]) => {}
                Err(e) => return Err(fail(&format!("DeleteBasePathMapping {name}"), e)),
            }
        }
        t.pacer.write(DOMAIN_WRITE).await;
        match t
            .apigateway
            .delete_domain_name()
            .domain_name(name)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is(&e, &["NotFoundException"]) => {}
            Err(e) => return Err(fail(&format!("DeleteDomainName {name}"), e)),
        }
        return Ok(Applied::default());
    }

    let spec: DomainSpec = spec::read(action)?;
    let certificate = spec.certificate_arn.clone();
    let domain = match existing {
        None => {
            t.pacer.write(DOMAIN_WRITE).await;
            let d = t
                .apigateway
                .create_domain_name()
                .domain_name(name)
                .regional_certificate_arn(&certificate)
                .endpoint_configuration(
                    EndpointConfiguration::builder()
                        .types(EndpointType::Regional)
                        .build(),
                )
                .security_policy(SecurityPolicy::Tls12)
                .set_tags(Some(super::tags(tenant)))
                .send()
                .await
                .map_err(|e| fail(&format!("CreateDomainName {name}"), e))?;
            t.made(super::listing::Made::DomainName(name.to_owned()));
            DomainName::builder()
                .set_domain_name(d.domain_name)
                .set_regional_domain_name(d.regional_domain_name)
                .set_regional_hosted_zone_id(d.regional_hosted_zone_id)
                .set_regional_certificate_arn(d.regional_certificate_arn)
                .build()
        }
        Some(d) => {
            if d.regional_certificate_arn() != Some(certificate.as_str()) {
                t.pacer.write(DOMAIN_WRITE).await;
                t.apigateway
                    .update_domain_name()
                    .domain_name(name)
                    .patch_operations(replace("/regionalCertificateArn", &certificate)?)
                    .send()
                    .await
                    .map_err(|e| fail(&format!("UpdateDomainName {name}"), e))?;
            }
            d
        }
    };

    map_base_path(t, action, &spec).await?;

    let zone = spec.hosted_zone_id;
    if let Some(zone) = &zone {
        alias(t, zone, &domain, ChangeAction::Upsert).await?;
    }
    if let Some(Value::String(old)) = before(action, spec::HOSTED_ZONE_ID)
        && Some(&old) != zone.as_ref()
    {
        alias(t, &old, &domain, ChangeAction::Delete).await?;
    }
    Ok(Applied::default())
}

/// Maps the base path to the tenant's API stage, and removes the mapping
/// an update moved away from.
async fn map_base_path(t: &AwsTarget, action: &Action, spec: &DomainSpec) -> anyhow::Result<()> {
    let tenant = action.address.tenant.as_str();
    let name = action.address.name.as_str();
    let api = t
        .api_id(tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("tenant {tenant} has no REST API to map {name} to"))?;
    let (base_path, stage) = (spec.base_path.as_str(), spec.stage.as_str());
    let key = if base_path.is_empty() {
        ROOT
    } else {
        base_path
    };

    // Try to create first: reading the mappings of a domain that has none
    // is where some emulators fail.
    t.pacer.write(APIGW).await;
    let created = t
        .apigateway
        .create_base_path_mapping()
        .domain_name(name)
        .set_base_path((!base_path.is_empty()).then(|| base_path.to_owned()))
        .rest_api_id(&api)
        .stage(stage)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if is(&e, &["ConflictException"]) => {
            t.pacer.read(APIGW).await;
            let m = t
                .apigateway
                .get_base_path_mapping()
                .domain_name(name)
                .base_path(key)
                .send()
                .await
                .map_err(|e| fail(&format!("GetBasePathMapping {name}/{key}"), e))?;
            if m.rest_api_id() != Some(api.as_str()) {
                anyhow::bail!(
                    "base path {key:?} of {name} is mapped to another API ({})",
                    m.rest_api_id().unwrap_or("?")
                );
            }
            if m.stage() != Some(stage) {
                t.pacer.write(APIGW).await;
                t.apigateway
                    .update_base_path_mapping()
                    .domain_name(name)
                    .base_path(key)
                    .patch_operations(replace("/stage", stage)?)
                    .send()
                    .await
                    .map_err(|e| fail(&format!("UpdateBasePathMapping {name}/{key}"), e))?;
            }
        }
        Err(e) => return Err(fail(&format!("CreateBasePathMapping {name}/{key}"), e)),
    }
    if let Some(Value::String(old)) = before(action, spec::BASE_PATH)
        && old != base_path
    {
        t.pacer.write(APIGW).await;
        match t
            .apigateway
            .delete_base_path_mapping()
            .domain_name(name)
            .base_path(if old.is_empty() { ROOT } else { &old })
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is(&e, &["NotFoundException"]) => {}
            Err(e) => return Err(fail(&format!("DeleteBasePathMapping {name}/{old}"), e)),
        }
    }
    Ok(())
}

/// Creates, updates or deletes the domain's alias A record in a zone.
async fn alias(
    t: &AwsTarget,
    zone: &str,
    d: &DomainName,
    what: ChangeAction,
) -> anyhow::Result<()> {
    let name = d.domain_name().unwrap_or_default();
    let (Some(target), Some(target_zone)) = (d.regional_domain_name(), d.regional_hosted_zone_id())
    else {
        anyhow::bail!("domain {name} has no regional endpoint to alias");
    };
    let record = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .alias_target(
            AliasTarget::builder()
                .hosted_zone_id(target_zone)
                .dns_name(target)
                .evaluate_target_health(false)
                .build()
                .map_err(|e| anyhow::anyhow!("an alias target: {e}"))?,
        )
        .build()
        .map_err(|e| anyhow::anyhow!("a record set: {e}"))?;
    let deleting = what == ChangeAction::Delete;
    let batch = ChangeBatch::builder()
        .comment(format!("apifactory: {name}"))
        .changes(
            DnsChange::builder()
                .action(what)
                .resource_record_set(record)
                .build()
                .map_err(|e| anyhow::anyhow!("a record change: {e}"))?,
        )
        .build()
        .map_err(|e| anyhow::anyhow!("a change batch: {e}"))?;
    t.pacer.write(ROUTE53).await;
    match t
        .route53
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(batch)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // Deleting a record that is already gone.
        Err(e) if deleting && is(&e, &["InvalidChangeBatch", "NoSuchHostedZone"]) => Ok(()),
        Err(e) => Err(fail(
            &format!("Route 53 ChangeResourceRecordSets {zone}"),
            e,
        )),
    }
}
