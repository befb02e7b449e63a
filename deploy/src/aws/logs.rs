//! CloudWatch log groups: one per function (`/aws/lambda/<function>`, made
//! before the function so Lambda never creates it without a retention) and
//! the stage's access log (`/aws/apigateway/apifactory-<tenant>`).

use runtime::{Operation, names};
use serde_json::json;

use super::{AwsTarget, Family, Found, Scope, fail, is};
use crate::plan::{Action, Change};
use crate::resource::{Address, Kind, attrs};
use crate::spec::{self, LogGroupSpec};
use crate::target::Applied;

const LOGS: &[Family] = &[Family::Logs];

/// The tenant of one of apifactory's log group names.
pub fn tenant_of(group: &str) -> Option<&str> {
    let function_prefix = format!("/aws/lambda/{}-", names::PREFIX);
    let access_prefix = format!("/aws/apigateway/{}-", names::PREFIX);
    if let Some(tenant) = super::tenant_between(group, &access_prefix, "") {
        return Some(tenant);
    }
    Operation::ALL.iter().find_map(|op| {
        let tenant = super::tenant_between(group, &function_prefix, &format!("-{op}"))?;
        (names::log_group(tenant, *op) == group).then_some(tenant)
    })
}

pub async fn observe(t: &AwsTarget, scope: &Scope) -> anyhow::Result<Vec<Found>> {
    let mut found = Vec::new();
    for prefix in [
        format!("/aws/lambda/{}-", names::PREFIX),
        format!("/aws/apigateway/{}-", names::PREFIX),
    ] {
        let mut token: Option<String> = None;
        loop {
            t.pacer.read(LOGS).await;
            let page = t
                .logs
                .describe_log_groups()
                .log_group_name_prefix(&prefix)
                .set_next_token(token.take())
                .limit(50)
                .send()
                .await
                .map_err(|e| fail("CloudWatch Logs DescribeLogGroups", e))?;
            for g in page.log_groups() {
                let Some(name) = g.log_group_name() else {
                    continue;
                };
                let Some(tenant) = tenant_of(name) else {
                    continue;
                };
                if !scope.covers(tenant) {
                    continue;
                }
                found.push((
                    Address::new(tenant, Kind::LogGroup, name),
                    attrs([(spec::RETENTION_DAYS, json!(g.retention_in_days()))]),
                ));
            }
            match page.next_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => break,
            }
        }
    }
    Ok(found)
}

/// What only `--refresh` reads of each log group (one
/// ListTagsForResource each): its tags.
pub async fn details(t: &AwsTarget, groups: Vec<Address>) -> anyhow::Result<Vec<Found>> {
    let t = t.clone();
    super::each(groups, 8, move |address| {
        let t = t.clone();
        async move {
            let name = address.name.as_str();
            t.pacer.read(LOGS).await;
            let listed = t
                .logs
                .list_tags_for_resource()
                .resource_arn(t.env.log_group_arn(name))
                .send()
                .await
                .map_err(|e| fail(&format!("CloudWatch Logs ListTagsForResource {name}"), e))?;
            let tags = super::owned_tag_map(listed.tags());
            Ok((address.clone(), attrs([(spec::TAGS, tags)])))
        }
    })
    .await
}

pub async fn apply(t: &AwsTarget, action: &Action) -> anyhow::Result<Applied> {
    let name = &action.address.name;
    match &action.change {
        Change::Delete => {
            t.pacer.write(LOGS).await;
            match t.logs.delete_log_group().log_group_name(name).send().await {
                Ok(_) => {}
                Err(e) if is(&e, &["ResourceNotFoundException"]) => {}
                Err(e) => return Err(fail(&format!("DeleteLogGroup {name}"), e)),
            }
        }
        change => {
            let spec: LogGroupSpec = spec::read(action)?;
            if matches!(change, Change::Create) {
                t.pacer.write(LOGS).await;
                match t
                    .logs
                    .create_log_group()
                    .log_group_name(name)
                    .set_tags(Some(super::tags(&action.address.tenant)))
                    .send()
                    .await
                {
                    Ok(_) => t.made(super::listing::Made::LogGroup(name.clone())),
                    Err(e) if is(&e, &["ResourceAlreadyExistsException"]) => {}
                    Err(e) => return Err(fail(&format!("CreateLogGroup {name}"), e)),
                }
            }
            if matches!(change, Change::Update { fields } if fields.iter().any(|f| f.field == spec::TAGS))
            {
                t.pacer.write(LOGS).await;
                t.logs
                    .tag_resource()
                    .resource_arn(t.env.log_group_arn(name))
                    .set_tags(Some(super::tags(&action.address.tenant)))
                    .send()
                    .await
                    .map_err(|e| fail(&format!("CloudWatch Logs TagResource {name}"), e))?;
            }
            t.pacer.write(LOGS).await;
            t.logs
                .put_retention_policy()
                .log_group_name(name)
                .retention_in_days(spec.retention_days as i32)
                .send()
                .await
                .map_err(|e| fail(&format!("PutRetentionPolicy {name}"), e))?;
        }
    }
    Ok(Applied::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_group_names_give_their_tenant() {
        assert_eq!(tenant_of("/aws/lambda/apifactory-acme-get"), Some("acme"));
        assert_eq!(
            tenant_of("/aws/lambda/apifactory-acme-get-search"),
            Some("acme-get")
        );
        assert_eq!(tenant_of("/aws/apigateway/apifactory-acme"), Some("acme"));
        assert_eq!(tenant_of("/aws/lambda/apifactory-acme"), None);
        assert_eq!(tenant_of("/aws/lambda/other-acme-get"), None);
    }
}
