//! The tenant's usage plan: throttle and quota from the tenant file, bound
//! to the API's stage. Usage plan names are not unique: found by tags and
//! name before one is created. All changes go in one UpdateUsagePlan (AWS
//! allows one every 20 s).

use std::collections::BTreeMap;

use aws_sdk_apigateway::types::{
    ApiStage, Op, PatchOperation, QuotaPeriodType, QuotaSettings, ThrottleSettings, UsagePlan,
};
use runtime::names;
use serde_json::{Value, json};

use super::api::APIGW;
use super::{AwsTarget, Family, Found, Scope, fail, is, number};
use crate::plan::{Action, Change};
use crate::resource::{Address, Kind, attrs};
use crate::target::Applied;

async fn list(t: &AwsTarget) -> anyhow::Result<Vec<UsagePlan>> {
    let mut all = Vec::new();
    let mut position: Option<String> = None;
    loop {
        t.pacer.read(APIGW).await;
        let page = t
            .apigateway
            .get_usage_plans()
            .set_position(position.take())
            .limit(500)
            .send()
            .await
            .map_err(|e| fail("API Gateway GetUsagePlans", e))?;
        let next = page.position().map(str::to_owned);
        all.extend(page.items.unwrap_or_default());
        match next {
            Some(p) if !p.is_empty() => position = Some(p),
            _ => break,
        }
    }
    Ok(all)
}

/// Each tenant's plan: tagged for it and named for it (the lowest id when
/// there are several).
fn by_tenant(plans: &[UsagePlan]) -> BTreeMap<String, &UsagePlan> {
    let mut chosen: BTreeMap<String, &UsagePlan> = BTreeMap::new();
    for plan in plans {
        let Some(tenant) = super::tagged_tenant(plan.tags()) else {
            continue;
        };
        if plan.name() != Some(names::usage_plan(tenant).as_str()) {
            continue;
        }
        match chosen.get(tenant) {
            Some(have) if have.id() <= plan.id() => {}
            _ => {
                chosen.insert(tenant.to_owned(), plan);
            }
        }
    }
    chosen
}

pub async fn find(t: &AwsTarget, tenant: &str) -> anyhow::Result<Option<String>> {
    let plans = list(t).await?;
    Ok(by_tenant(&plans)
        .get(tenant)
        .and_then(|p| p.id())
        .map(str::to_owned))
}

pub async fn observe(
    t: &AwsTarget,
    scope: &Scope,
    api_ids: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<Found>> {
    let plans = list(t).await?;
    Ok(by_tenant(&plans)
        .into_iter()
        .filter(|(tenant, _)| scope.covers(tenant))
        .map(|(tenant, plan)| {
            let api = api_ids.get(&tenant);
            let stage = plan
                .api_stages()
                .iter()
                .find(|s| api.is_some() && s.api_id() == api.map(String::as_str))
                .and_then(|s| s.stage());
            let throttle = plan.throttle();
            let quota = plan.quota();
            (
                Address::new(&tenant, Kind::UsagePlan, names::usage_plan(&tenant)),
                attrs([
                    ("rate", json!(throttle.map(|t| t.rate_limit()))),
                    ("burst", json!(throttle.map(|t| t.burst_limit()))),
                    ("quota_limit", json!(quota.map(|q| q.limit()))),
                    (
                        "quota_period",
                        json!(quota.and_then(|q| q.period()).map(|p| p.as_str())),
                    ),
                    ("stage", json!(stage)),
                ]),
            )
        })
        .collect())
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
    let get = |k: &str| action.attrs.get(k).cloned().unwrap_or(Value::Null);

    if action.change == Change::Delete {
        let Some(id) = find(t, tenant).await? else {
            return Ok(Applied::default());
        };
        // A plan still bound to stages cannot be deleted: unbind first.
        t.pacer.read(APIGW).await;
        let plan = t
            .apigateway
            .get_usage_plan()
            .usage_plan_id(&id)
            .send()
            .await
            .map_err(|e| fail(&format!("GetUsagePlan {id}"), e))?;
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
        if !unbind.is_empty() {
            t.pacer
                .write(&[Family::ApiGateway, Family::UpdateUsagePlan])
                .await;
            t.apigateway
                .update_usage_plan()
                .usage_plan_id(&id)
                .set_patch_operations(Some(unbind))
                .send()
                .await
                .map_err(|e| fail(&format!("UpdateUsagePlan {id}"), e))?;
        }
        t.pacer.write(APIGW).await;
        match t
            .apigateway
            .delete_usage_plan()
            .usage_plan_id(&id)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is(&e, &["NotFoundException"]) => {}
            Err(e) => return Err(fail(&format!("DeleteUsagePlan {id}"), e)),
        }
        return Ok(Applied::default());
    }

    let api = t
        .api_id(tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("tenant {tenant} has no REST API to bind the plan to"))?;
    let stage = get("stage").as_str().unwrap_or_default().to_owned();
    let rate = get("rate").as_f64();
    let burst = get("burst").as_i64().and_then(|b| i32::try_from(b).ok());
    let quota_limit = get("quota_limit")
        .as_i64()
        .and_then(|b| i32::try_from(b).ok());
    let quota_period = get("quota_period").as_str().map(QuotaPeriodType::from);

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
        // Keys that outlived an earlier plan of this tenant join the new one.
        super::api_key::attach_all(t, tenant, &id).await?;
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
    if !patch.is_empty() {
        t.pacer
            .write(&[Family::ApiGateway, Family::UpdateUsagePlan])
            .await;
        t.apigateway
            .update_usage_plan()
            .usage_plan_id(&id)
            .set_patch_operations(Some(patch))
            .send()
            .await
            .map_err(|e| fail(&format!("UpdateUsagePlan {id}"), e))?;
    }
    if matches!(action.change, Change::Create) {
        super::api_key::attach_all(t, tenant, &id).await?;
    }
    Ok(Applied::default())
}
