//! The deployment and stage: a new deployment only when the API definition
//! changed (its hash is in the deployment's and the stage's description),
//! default method throttling (`*/*`) from the tenant's API-wide total when
//! it sets one, and an access log to the tenant's log group.
//!
//! Stage throttling is one bucket for every caller of the stage together,
//! unlike a usage plan's, which is per key ("Throttle requests to your REST
//! APIs for better throughput", API Gateway developer guide). A tenant
//! without an API-wide total gets no stage throttling at all; a stage that
//! has some from an earlier apply has both limits set to -1 ("throttling
//! disabled", the default Terraform's `aws_api_gateway_method_settings`
//! documents and patches the same way) rather than the whole `*/*` setting
//! removed, which would also drop any logging or metrics settings made
//! there by hand.
//!
//! The stage is created and then patched (CreateStage takes no method
//! settings), and a deployment never names the stage (that would reset an
//! existing stage's settings on some implementations): the stage is pointed
//! at it with a patch.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_apigateway::types::{Op, PatchOperation, Stage};
use runtime::names;
use serde_json::{Value, json};

use super::api::parse_marker;
use super::pacer::APIGW;
use super::patch::replace;
use super::{AwsTarget, Family, Found, MARKER, ROLE_PATH, each, fail, is, number};
use crate::plan::{Action, Change};
use crate::resource::{Address, Kind, attrs};
use crate::spec::{self, StageSpec};
use crate::target::Applied;

/// UpdateAccount has a quota of its own (one call every 20 s), on top of
/// API Gateway's overall one.
pub const UPDATE_ACCOUNT: &[Family] = &[Family::ApiGateway, Family::UpdateAccount];

/// One JSON line per request in the access log: what the usage figures
/// read per key (`aws::usage`), including the gateway's latency and the
/// response type that tells a throttled 429 from a quota's ("Gateway
/// response types"; "$context variables for data models, authorizers,
/// mapping templates, and access logging", API Gateway developer guide).
pub const ACCESS_LOG_FORMAT: &str = concat!(
    r#"{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","#,
    r#""apiKeyId":"$context.identity.apiKeyId","requestTime":"$context.requestTime","#,
    r#""requestTimeEpoch":"$context.requestTimeEpoch","#,
    r#""httpMethod":"$context.httpMethod","resourcePath":"$context.resourcePath","#,
    r#""status":"$context.status","responseLength":"$context.responseLength","#,
    r#""responseLatency":"$context.responseLatency","#,
    r#""integrationLatency":"$context.integrationLatency","error":"$context.error.message","#,
    r#""responseType":"$context.error.responseType"}"#
);

/// The account-wide role API Gateway writes logs with (one per account and
/// region, set only when the account has none).
pub const LOGGING_ROLE: &str = "apifactory-apigateway-logs";

pub async fn observe(
    t: &AwsTarget,
    api_ids: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<Found>> {
    let items: Vec<(String, String)> = api_ids
        .iter()
        .map(|(tenant, id)| (tenant.clone(), id.clone()))
        .collect();
    let t = t.clone();
    let found = each(items, 8, move |(tenant, id)| {
        let t = t.clone();
        async move {
            t.pacer.read(APIGW).await;
            let stages = t
                .apigateway
                .get_stages()
                .rest_api_id(&id)
                .send()
                .await
                .map_err(|e| fail(&format!("GetStages {id}"), e))?;
            Ok(stages
                .item()
                .iter()
                .filter_map(|s| {
                    let name = s.stage_name()?;
                    Some((Address::new(&tenant, Kind::Stage, name), stage_attrs(s)))
                })
                .collect::<Vec<_>>())
        }
    })
    .await?;
    Ok(found.into_iter().flatten().collect())
}

/// What disables a method setting's throttling.
const UNTHROTTLED: &str = "-1";

/// The stage's default throttling (the `*/*` method setting), when it has
/// one. Negative values mean disabled; both at 0 is how the SDK reads a
/// setting whose throttling fields are absent.
fn throttling(s: &Stage) -> Option<(f64, i32)> {
    let m = s.method_settings()?.get("*/*")?;
    let (rate, burst) = (m.throttling_rate_limit(), m.throttling_burst_limit());
    let off = rate < 0.0 || burst < 0 || (rate == 0.0 && burst == 0);
    (!off).then_some((rate, burst))
}

/// The stage's access log: the log group's name when the stage writes
/// apifactory's format to it, else what it writes where (null: none).
fn access_log(s: &Stage) -> Value {
    let Some(settings) = s.access_log_settings() else {
        return Value::Null;
    };
    let group = settings
        .destination_arn()
        .and_then(|arn| arn.split_once(":log-group:"))
        .map(|(_, group)| group.trim_end_matches(":*").to_owned());
    match (group, settings.format()) {
        (None, None) => Value::Null,
        (Some(group), Some(ACCESS_LOG_FORMAT)) => json!(group),
        (group, format) => json!(format!(
            "{} in another format: {}",
            group.unwrap_or_else(|| "no log group".to_owned()),
            format.unwrap_or("none")
        )),
    }
}

fn stage_attrs(s: &Stage) -> crate::resource::Attrs {
    let throttle = throttling(s);
    let tags = super::owned_tag_map(s.tags());
    attrs([
        (spec::DEPLOYMENT, json!(parse_marker(s.description()).0)),
        (spec::RATE, json!(throttle.map(|(rate, _)| rate))),
        (spec::BURST, json!(throttle.map(|(_, burst)| burst))),
        (spec::ACCESS_LOG, access_log(s)),
        (spec::TAGS, tags),
    ])
}

/// The patch that brings the stage's default throttling to `want` (the
/// tenant's API-wide total, or none), empty when it is there already.
fn throttling_patch(
    have: Option<(f64, i32)>,
    want: Option<(f64, i64)>,
) -> anyhow::Result<Vec<PatchOperation>> {
    let mut patch = Vec::new();
    match want {
        Some((rate, burst)) => {
            if have.map(|(r, _)| r) != Some(rate) {
                patch.push(replace("/*/*/throttling/rateLimit", &number(rate))?);
            }
            if have.map(|(_, b)| i64::from(b)) != Some(burst) {
                patch.push(replace("/*/*/throttling/burstLimit", &burst.to_string())?);
            }
        }
        None if have.is_some() => {
            patch.push(replace("/*/*/throttling/rateLimit", UNTHROTTLED)?);
            patch.push(replace("/*/*/throttling/burstLimit", UNTHROTTLED)?);
        }
        None => {}
    }
    Ok(patch)
}

pub async fn apply(t: &AwsTarget, action: &Action) -> anyhow::Result<Applied> {
    let tenant = action.address.tenant.as_str();
    let name = action.address.name.as_str();
    let Some(api) = t.api_id(tenant).await? else {
        if action.change == Change::Delete {
            return Ok(Applied::default());
        }
        anyhow::bail!("tenant {tenant} has no REST API to deploy");
    };
    if action.change == Change::Delete {
        t.pacer.write(APIGW).await;
        match t
            .apigateway
            .delete_stage()
            .rest_api_id(&api)
            .stage_name(name)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is(&e, &["NotFoundException"]) => {}
            Err(e) => return Err(fail(&format!("DeleteStage {name} of {api}"), e)),
        }
        return Ok(Applied::default());
    }

    let spec: StageSpec = spec::read(action)?;
    let log_group = names::access_log_group(tenant);
    let destination = t.env.log_group_arn(&log_group);
    ensure_logging_role(t).await?;

    t.pacer.read(APIGW).await;
    let existing = match t
        .apigateway
        .get_stage()
        .rest_api_id(&api)
        .stage_name(name)
        .send()
        .await
    {
        Ok(s) => Some(
            Stage::builder()
                .set_stage_name(s.stage_name)
                .set_description(s.description)
                .set_deployment_id(s.deployment_id)
                .set_method_settings(s.method_settings)
                .set_access_log_settings(s.access_log_settings)
                .build(),
        ),
        Err(e) if is(&e, &["NotFoundException"]) => None,
        Err(e) => return Err(fail(&format!("GetStage {name} of {api}"), e)),
    };

    let hash = spec.deployment.as_str();
    let stamp = format!("{MARKER}{hash}");
    let deployed = existing
        .as_ref()
        .is_some_and(|s| parse_marker(s.description()).0.as_deref() == Some(hash));
    let deployment = if deployed {
        None
    } else {
        t.pacer
            .write(&[Family::ApiGateway, Family::CreateDeployment])
            .await;
        let d = t
            .apigateway
            .create_deployment()
            .rest_api_id(&api)
            .description(&stamp)
            .send()
            .await
            .map_err(|e| fail(&format!("CreateDeployment of {api}"), e))?;
        Some(
            d.id()
                .ok_or_else(|| anyhow::anyhow!("CreateDeployment of {api} returned no id"))?
                .to_owned(),
        )
    };

    let mut patch: Vec<PatchOperation> = Vec::new();
    match (&existing, &deployment) {
        (None, Some(deployment)) => {
            t.pacer.write(APIGW).await;
            let created = t
                .apigateway
                .create_stage()
                .rest_api_id(&api)
                .stage_name(name)
                .deployment_id(deployment)
                .description(&stamp)
                .set_tags(Some(super::tags(tenant)))
                .send()
                .await;
            match created {
                Ok(_) => {}
                // A retry of a create whose response was lost: the stage
                // is there, so bring it to this deployment instead.
                Err(e) if is(&e, &["ConflictException"]) => {
                    patch.push(replace("/deploymentId", deployment)?);
                    patch.push(replace("/description", &stamp)?);
                }
                Err(e) => return Err(fail(&format!("CreateStage {name} of {api}"), e)),
            }
        }
        (Some(_), Some(deployment)) => {
            patch.push(replace("/deploymentId", deployment)?);
            patch.push(replace("/description", &stamp)?);
        }
        _ => {}
    }
    let want = spec.rate.zip(spec.burst.map(i64::from));
    patch.extend(throttling_patch(
        existing.as_ref().and_then(throttling),
        want,
    )?);
    let logs = existing.as_ref().and_then(|s| s.access_log_settings());
    if logs.and_then(|l| l.destination_arn()) != Some(destination.as_str()) {
        patch.push(replace("/accessLogSettings/destinationArn", &destination)?);
    }
    if logs.and_then(|l| l.format()) != Some(ACCESS_LOG_FORMAT) {
        patch.push(replace("/accessLogSettings/format", ACCESS_LOG_FORMAT)?);
    }
    if existing.is_some() && super::table::changed(action, spec::TAGS) {
        t.pacer.write(APIGW).await;
        t.apigateway
            .tag_resource()
            .resource_arn(t.env.stage_arn(&api, name))
            .set_tags(Some(super::tags(tenant)))
            .send()
            .await
            .map_err(|e| fail(&format!("TagResource stage {name} of {api}"), e))?;
    }
    if !patch.is_empty() {
        t.pacer.write(APIGW).await;
        t.apigateway
            .update_stage()
            .rest_api_id(&api)
            .stage_name(name)
            .set_patch_operations(Some(patch))
            .send()
            .await
            .map_err(|e| fail(&format!("UpdateStage {name} of {api}"), e))?;
    }
    Ok(Applied::default())
}

/// Access logging needs the account's API Gateway CloudWatch role. When the
/// account has none, make one (trusting API Gateway, allowed what AWS's
/// push-to-CloudWatch managed policy allows) and set it. Checked once per
/// run. This role is the account's, not a tenant's: API Gateway uses it for
/// every API that logs.
async fn ensure_logging_role(t: &AwsTarget) -> anyhow::Result<()> {
    t.logging_role
        .get_or_try_init(|| async {
            t.pacer.read(APIGW).await;
            let account = t
                .apigateway
                .get_account()
                .send()
                .await
                .map_err(|e| fail("API Gateway GetAccount", e))?;
            if account.cloudwatch_role_arn().is_some_and(|a| !a.is_empty()) {
                return Ok(());
            }
            let trust = json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": { "Service": "apigateway.amazonaws.com" },
                    "Action": "sts:AssumeRole"
                }]
            })
            .to_string();
            t.pacer.write(&[Family::Iam]).await;
            match t
                .iam
                .create_role()
                .role_name(LOGGING_ROLE)
                .path(ROLE_PATH)
                .assume_role_policy_document(trust)
                .description("apifactory: API Gateway writes access logs with this role")
                .tags(
                    aws_sdk_iam::types::Tag::builder()
                        .key(super::TAG_MANAGED_BY)
                        .value(names::PREFIX)
                        .build()
                        .map_err(|e| anyhow::anyhow!("an IAM tag: {e}"))?,
                )
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is(&e, &["EntityAlreadyExists"]) => {}
                Err(e) => return Err(fail(&format!("IAM CreateRole {LOGGING_ROLE}"), e)),
            }
            // The permissions of AWS's managed policy
            // AmazonAPIGatewayPushToCloudWatchLogs, inline: the same on every
            // account and partition, and no dependency on managed policies.
            let push = json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": [
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:DescribeLogGroups",
                        "logs:DescribeLogStreams",
                        "logs:PutLogEvents",
                        "logs:GetLogEvents",
                        "logs:FilterLogEvents"
                    ],
                    "Resource": "*"
                }]
            })
            .to_string();
            t.pacer.write(&[Family::Iam]).await;
            t.iam
                .put_role_policy()
                .role_name(LOGGING_ROLE)
                .policy_name("push-to-cloudwatch-logs")
                .policy_document(push)
                .send()
                .await
                .map_err(|e| fail(&format!("IAM PutRolePolicy {LOGGING_ROLE}"), e))?;
            let arn = t.env.role_arn(LOGGING_ROLE);
            // A new role takes a few seconds to be assumable everywhere.
            // Each try takes an UpdateAccount token (one every 20 s): the
            // wait covers a few tries at that pace.
            super::wait_for(
                "the API Gateway account's CloudWatch role",
                Duration::from_secs(120),
                || async {
                    t.pacer.write(UPDATE_ACCOUNT).await;
                    match t
                        .apigateway
                        .update_account()
                        .patch_operations(
                            PatchOperation::builder()
                                .op(Op::Replace)
                                .path("/cloudwatchRoleArn")
                                .value(&arn)
                                .build(),
                        )
                        .send()
                        .await
                    {
                        Ok(_) => Ok(Some(())),
                        // Throttled after the SDK's own retries: the
                        // account's one call per 20 s went to another
                        // client (another apply of this account, another
                        // tool). The next try waits for the next token.
                        Err(e) if is(&e, &["BadRequestException", "TooManyRequestsException"]) => {
                            Ok(None)
                        }
                        Err(e) => Err(fail("API Gateway UpdateAccount", e)),
                    }
                },
            )
            .await
        })
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_apigateway::types::MethodSetting;

    use super::*;

    fn stage(setting: Option<(f64, i32)>) -> Stage {
        let settings = setting.map(|(rate, burst)| {
            HashMap::from([(
                "*/*".to_owned(),
                MethodSetting::builder()
                    .throttling_rate_limit(rate)
                    .throttling_burst_limit(burst)
                    .build(),
            )])
        });
        Stage::builder().set_method_settings(settings).build()
    }

    fn ops(patch: &[PatchOperation]) -> Vec<(String, String)> {
        patch
            .iter()
            .map(|p| {
                (
                    p.path().unwrap_or_default().to_owned(),
                    p.value().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_stage_reads_as_throttled_only_with_positive_limits() {
        let attrs = |s: &Stage| {
            (
                stage_attrs(s)[spec::RATE].clone(),
                stage_attrs(s)[spec::BURST].clone(),
            )
        };
        assert_eq!(attrs(&stage(None)), (Value::Null, Value::Null));
        assert_eq!(attrs(&stage(Some((-1.0, -1)))), (Value::Null, Value::Null));
        assert_eq!(attrs(&stage(Some((0.0, 0)))), (Value::Null, Value::Null));
        assert_eq!(attrs(&stage(Some((50.0, 100)))), (json!(50.0), json!(100)));
    }

    #[test]
    fn the_access_log_reads_as_its_group_only_in_apifactorys_format() {
        use aws_sdk_apigateway::types::AccessLogSettings;
        let env = super::super::Env::new("us-east-1", "1");
        let group = "/aws/apigateway/apifactory-acme";
        let with = |destination: Option<String>, format: Option<&str>| {
            let s = Stage::builder()
                .access_log_settings(
                    AccessLogSettings::builder()
                        .set_destination_arn(destination)
                        .set_format(format.map(str::to_owned))
                        .build(),
                )
                .tags(crate::resource::TAG_TENANT, "acme")
                .tags("someone-elses", "x")
                .build();
            stage_attrs(&s)
        };
        let ours = with(Some(env.log_group_arn(group)), Some(ACCESS_LOG_FORMAT));
        assert_eq!(ours[spec::ACCESS_LOG], json!(group));
        // Only apifactory's tag keys are its own.
        assert_eq!(
            ours[spec::TAGS],
            json!({ (crate::resource::TAG_TENANT): "acme" })
        );
        assert_eq!(
            with(Some(env.log_group_arn(group)), Some("$context.requestId"))[spec::ACCESS_LOG],
            json!(format!("{group} in another format: $context.requestId"))
        );
        assert_eq!(with(None, None)[spec::ACCESS_LOG], Value::Null);
        assert_eq!(stage_attrs(&stage(None))[spec::ACCESS_LOG], Value::Null);
    }

    #[test]
    fn throttling_is_set_from_the_total_and_disabled_without_one() {
        // A stage the earlier behaviour throttled at the per-key rate, and a
        // tenant without a total: both limits go to -1 (disabled).
        assert_eq!(
            ops(&throttling_patch(Some((50.0, 100)), None).unwrap()),
            [
                ("/*/*/throttling/rateLimit".to_owned(), "-1".to_owned()),
                ("/*/*/throttling/burstLimit".to_owned(), "-1".to_owned()),
            ]
        );
        // Nothing to do: no total and no throttling, or the total in place.
        assert!(throttling_patch(None, None).unwrap().is_empty());
        assert!(
            throttling_patch(Some((300.0, 600)), Some((300.0, 600)))
                .unwrap()
                .is_empty()
        );
        // A total is set whole on a fresh stage, and only what differs later.
        assert_eq!(
            ops(&throttling_patch(None, Some((300.0, 600))).unwrap()),
            [
                ("/*/*/throttling/rateLimit".to_owned(), "300".to_owned()),
                ("/*/*/throttling/burstLimit".to_owned(), "600".to_owned()),
            ]
        );
        assert_eq!(
            ops(&throttling_patch(Some((300.0, 600)), Some((300.0, 700))).unwrap()),
            [("/*/*/throttling/burstLimit".to_owned(), "700".to_owned())]
        );
    }
}
