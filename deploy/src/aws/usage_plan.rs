//! The tenant's usage plan: throttle and quota from the tenant file, bound
//! to the API's stage. Usage plan names are not unique: found by tags and
//! name before one is created. All changes go in one UpdateUsagePlan (AWS
//! allows one every 20 s).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_apigateway::types::{
    ApiStage, Op, PatchOperation, QuotaPeriodType, QuotaSettings, ThrottleSettings, UsagePlan,
};
use runtime::names;
use serde_json::json;

use super::pacer::APIGW;
use super::{AwsTarget, Family, Found, Scope, TAG_ORIGIN, fail, is, listing, number, wait_for};
use crate::plan::{Action, Change};
use crate::resource::{Address, Kind, ORIGIN_FILE, attrs};
use crate::spec::{self, UsagePlanSpec};
use crate::target::Applied;

/// The ids of the keys in a plan.
async fn key_ids(t: &AwsTarget, plan: &str) -> anyhow::Result<Vec<String>> {
    let keys = listing::pages(
        t,
        &format!("GetUsagePlanKeys {plan}"),
        |position| async move {
            let page = t
                .apigateway
                .get_usage_plan_keys()
                .usage_plan_id(plan)
                .set_position(position)
                .limit(500)
                .send()
                .await;
            page.map(|p| (p.items.unwrap_or_default(), p.position))
        },
    )
    .await?;
    Ok(keys
        .iter()
        .filter_map(|k| k.id().map(str::to_owned))
        .collect())
}

/// The plan that stands among a tenant's candidates (tagged and named for
/// it): the one holding the most keys, else one bound to the tenant's API,
/// else the lowest id (usage plans carry no creation date). Reads only
/// where there are several.
async fn choose<'a>(
    t: &AwsTarget,
    api: Option<&str>,
    candidates: &[&'a UsagePlan],
) -> anyhow::Result<&'a UsagePlan> {
    let [first, rest @ ..] = candidates else {
        anyhow::bail!("no usage plan to choose from");
    };
    if rest.is_empty() {
        return Ok(first);
    }
    let mut ranked = Vec::new();
    for plan in candidates {
        let id = plan.id().unwrap_or_default();
        let keys = key_ids(t, id).await?.len();
        let bound = api.is_some() && plan.api_stages().iter().any(|s| s.api_id() == api);
        ranked.push(((std::cmp::Reverse(keys), !bound, id.to_owned()), *plan));
    }
    ranked.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ranked[0].1)
}

pub async fn find(t: &AwsTarget, tenant: &str) -> anyhow::Result<Option<String>> {
    let plans = listing::usage_plans(t).await?;
    let Some(candidates) = listing::by_tenant(&plans, names::usage_plan).remove(tenant) else {
        return Ok(None);
    };
    let api = if candidates.len() > 1 {
        t.api_id(tenant).await?
    } else {
        None
    };
    let plan = choose(t, api.as_deref(), &candidates).await?;
    Ok(plan.id().map(str::to_owned))
}

pub async fn observe(
    t: &AwsTarget,
    scope: &Scope,
    api_ids: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<Found>> {
    let plans = listing::usage_plans(t).await?;
    let mut found = Vec::new();
    for (tenant, candidates) in listing::by_tenant(&plans, names::usage_plan) {
        if !scope.covers(&tenant) {
            continue;
        }
        let api = api_ids.get(&tenant).map(String::as_str);
        let plan = choose(t, api, &candidates).await?;
        let id = plan.id().unwrap_or_default();
        let name = names::usage_plan(&tenant);
        for other in candidates
            .iter()
            .filter_map(|c| c.id())
            .filter(|o| *o != id)
        {
            found.push((
                Address::new(
                    &tenant,
                    Kind::UsagePlan,
                    listing::duplicate_name(&name, other),
                ),
                attrs([(spec::ID, json!(other)), (spec::DUPLICATE_OF, json!(id))]),
            ));
        }
        let stage = plan
            .api_stages()
            .iter()
            .find(|s| api.is_some() && s.api_id() == api)
            .and_then(|s| s.stage());
        let throttle = plan.throttle();
        let quota = plan.quota();
        found.push((
            Address::new(&tenant, Kind::UsagePlan, name),
            attrs([
                (spec::RATE, json!(throttle.map(|t| t.rate_limit()))),
                (spec::BURST, json!(throttle.map(|t| t.burst_limit()))),
                (spec::QUOTA_LIMIT, json!(quota.map(|q| q.limit()))),
                (
                    spec::QUOTA_PERIOD,
                    json!(quota.and_then(|q| q.period()).map(|p| p.as_str())),
                ),
                (spec::STAGE, json!(stage)),
            ]),
        ));
    }
    Ok(found)
}

/// Takes a REST API out of every plan of the tenant bound to it (a REST
/// API in a usage plan cannot be deleted).
pub async fn unbind_api(t: &AwsTarget, tenant: &str, api: &str) -> anyhow::Result<()> {
    let plans = listing::usage_plans(t).await?;
    for plan in listing::by_tenant(&plans, names::usage_plan)
        .remove(tenant)
        .unwrap_or_default()
    {
        let unbind: Vec<PatchOperation> = plan
            .api_stages()
            .iter()
            .filter(|s| s.api_id() == Some(api))
            .map(|s| {
                op(
                    Op::Remove,
                    "/apiStages",
                    Some(format!("{api}:{}", s.stage().unwrap_or_default())),
                )
            })
            .collect();
        update(t, plan.id().unwrap_or_default(), unbind).await?;
    }
    Ok(())
}

/// One UpdateUsagePlan with these operations, none when there are none.
async fn update(t: &AwsTarget, id: &str, patch: Vec<PatchOperation>) -> anyhow::Result<()> {
    if patch.is_empty() {
        return Ok(());
    }
    t.pacer
        .write(&[Family::ApiGateway, Family::UpdateUsagePlan])
        .await;
    t.apigateway
        .update_usage_plan()
        .usage_plan_id(id)
        .set_patch_operations(Some(patch))
        .send()
        .await
        .map_err(|e| fail(&format!("UpdateUsagePlan {id}"), e))?;
    Ok(())
}

/// Unbinds the plan from its stages (a bound plan cannot be deleted), then
/// deletes it.
async fn delete(t: &AwsTarget, id: &str) -> anyhow::Result<()> {
    t.pacer.read(APIGW).await;
    let plan = match t.apigateway.get_usage_plan().usage_plan_id(id).send().await {
        Ok(p) => p,
        Err(e) if is(&e, &["NotFoundException"]) => return Ok(()),
        Err(e) => return Err(fail(&format!("GetUsagePlan {id}"), e)),
    };
    let unbind: Vec<PatchOperation> = plan
        .api_stages()
        .iter()
        .map(|s| {
            op(
                Op::Remove,
                "/apiStages",
                Some(format!(
                    "{}:{}",
                    s.api_id().unwrap_or_default(),
                    s.stage().unwrap_or_default()
                )),
            )
        })
        .collect();
    update(t, id, unbind).await?;
    t.pacer.write(APIGW).await;
    match t
        .apigateway
        .delete_usage_plan()
        .usage_plan_id(id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is(&e, &["NotFoundException"]) => Ok(()),
        Err(e) => Err(fail(&format!("DeleteUsagePlan {id}"), e)),
    }
}

fn op(op: Op, path: &str, value: Option<String>) -> PatchOperation {
    PatchOperation::builder()
        .op(op)
        .path(path)
        .set_value(value)
        .build()
}

pub async fn apply(t: &AwsTarget, action: &Action) -> anyhow::Result<Applied> {
    let tenant = action.address.tenant.as_str();
    let name = action.address.name.as_str();

    if action.change == Change::Delete {
        if let Some((id, standing)) = listing::duplicate(&action.attrs) {
            // A duplicate a lost create response left: any key it holds
            // moves to the plan that stands first, so no client loses its
            // plan.
            for key in key_ids(t, &id).await? {
                attach(t, &standing, &key).await?;
            }
            delete(t, &id).await?;
            return Ok(Applied::default());
        }
        if let Some(id) = find(t, tenant).await? {
            delete(t, &id).await?;
        }
        return Ok(Applied::default());
    }

    let api = t
        .api_id(tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("tenant {tenant} has no REST API to bind the plan to"))?;
    let spec: UsagePlanSpec = spec::read(action)?;
    let stage = spec.stage;
    let rate = Some(spec.rate);
    let burst = i32::try_from(spec.burst).ok();
    let quota_limit = spec.quota_limit.and_then(|l| i32::try_from(l).ok());
    let quota_period = spec.quota_period.as_deref().map(QuotaPeriodType::from);

    let existing = find(t, tenant).await?;
    let Some(id) = existing else {
        t.pacer.write(APIGW).await;
        let created = t
            .apigateway
            .create_usage_plan()
            .name(name)
            .description(format!("apifactory: the clients of tenant {tenant}"))
            .api_stages(ApiStage::builder().api_id(&api).stage(&stage).build())
            .set_throttle(rate.map(|r| {
                ThrottleSettings::builder()
                    .rate_limit(r)
                    .set_burst_limit(burst)
                    .build()
            }))
            .set_quota(quota_limit.map(|l| {
                QuotaSettings::builder()
                    .limit(l)
                    .set_period(quota_period.clone())
                    .build()
            }))
            .set_tags(Some(super::tags(tenant)))
            .send()
            .await
            .map_err(|e| fail(&format!("CreateUsagePlan {name}"), e))?;
        let id = created.id().unwrap_or_default().to_owned();
        t.made(listing::Made::UsagePlan(id.clone()));
        // The tenant's keys find their plan by listing (its id is not
        // theirs to remember), and a fresh plan may be missing from the
        // list for a while.
        wait_for(
            &format!("usage plan {id} to show in GetUsagePlans"),
            Duration::from_secs(120),
            || async {
                Ok(listing::usage_plans(t)
                    .await?
                    .iter()
                    .any(|p| p.id() == Some(id.as_str()))
                    .then_some(()))
            },
        )
        .await?;
        // Keys that outlived an earlier plan of this tenant join the new one.
        attach_all(t, tenant, &id).await?;
        return Ok(Applied::default());
    };

    // Patch only what differs from what is there now.
    t.pacer.read(APIGW).await;
    let plan = t
        .apigateway
        .get_usage_plan()
        .usage_plan_id(&id)
        .send()
        .await
        .map_err(|e| fail(&format!("GetUsagePlan {id}"), e))?;
    let mut patch = Vec::new();
    let throttle = plan.throttle();
    if let Some(rate) = rate
        && throttle.map(|t| t.rate_limit()) != Some(rate)
    {
        patch.push(op(Op::Replace, "/throttle/rateLimit", Some(number(rate))));
    }
    if let Some(burst) = burst
        && throttle.map(|t| t.burst_limit()) != Some(burst)
    {
        patch.push(op(
            Op::Replace,
            "/throttle/burstLimit",
            Some(burst.to_string()),
        ));
    }
    let quota = plan.quota();
    match quota_limit {
        None if quota.is_some() => patch.push(op(Op::Remove, "/quota", None)),
        None => {}
        Some(limit) => {
            if quota.map(|q| q.limit()) != Some(limit) {
                patch.push(op(Op::Replace, "/quota/limit", Some(limit.to_string())));
            }
            if quota.and_then(|q| q.period()) != quota_period.as_ref() {
                patch.push(op(
                    Op::Replace,
                    "/quota/period",
                    quota_period.as_ref().map(|p| p.as_str().to_owned()),
                ));
            }
        }
    }
    let mut bound = false;
    for s in plan.api_stages() {
        if s.api_id() == Some(api.as_str()) && s.stage() == Some(stage.as_str()) {
            bound = true;
        } else if s.api_id() == Some(api.as_str()) {
            patch.push(op(
                Op::Remove,
                "/apiStages",
                Some(format!("{api}:{}", s.stage().unwrap_or_default())),
            ));
        }
    }
    if !bound {
        patch.push(op(Op::Add, "/apiStages", Some(format!("{api}:{stage}"))));
    }
    update(t, &id, patch).await?;
    if matches!(action.change, Change::Create) {
        attach_all(t, tenant, &id).await?;
    }
    Ok(Applied::default())
}

/// Attaches a key to a plan; already attached is fine.
pub(crate) async fn attach(t: &AwsTarget, plan: &str, key: &str) -> anyhow::Result<()> {
    t.pacer.write(APIGW).await;
    match t
        .apigateway
        .create_usage_plan_key()
        .usage_plan_id(plan)
        .key_id(key)
        .key_type("API_KEY")
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is(&e, &["ConflictException"]) => Ok(()),
        Err(e) => Err(fail(&format!("CreateUsagePlanKey {key} in {plan}"), e)),
    }
}

/// Attaches every key the tenant file made to a (new) plan.
pub async fn attach_all(t: &AwsTarget, tenant: &str, plan: &str) -> anyhow::Result<()> {
    for key in listing::api_keys(t, Some(&format!("{}-{tenant}-", runtime::names::PREFIX))).await? {
        let from_file = key
            .tags()
            .and_then(|t| t.get(TAG_ORIGIN))
            .map(String::as_str)
            == Some(ORIGIN_FILE);
        if super::tagged_tenant(key.tags()) == Some(tenant)
            && from_file
            && let Some(id) = key.id()
        {
            attach(t, plan, id).await?;
        }
    }
    Ok(())
}
