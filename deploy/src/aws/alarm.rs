//! CloudWatch alarms: one per `[[alarms]]` rule of a tenant (`quota_share`
//! has none: no metric is per key), named `apifactory-<tenant>-<rule>`, on
//! API Gateway's metric for the tenant's API and stage (`ApiName`,
//! `Stage`): `5xx_rate` is the average of 5XXError (each request counts 0
//! or 1), `p99_latency_ms` the p99 of Latency, over one period as long as
//! the rule's window, so the alarm fires when the window's value is above
//! the threshold ("Using Amazon CloudWatch alarms"; "Amazon API Gateway
//! dimensions and metrics"). No requests is not a breach
//! (`TreatMissingData` notBreaching). The rule's topics are told of both
//! changes (`AlarmActions` and `OKActions`).
//!
//! One DescribeAlarms list (100 a page) shows every attribute the plan
//! compares; the tenant of an alarm is the one its `ApiName` dimension
//! names. PutMetricAlarm creates and updates alike; tags are set only at
//! create (its API reference: "If you are using this operation to update
//! an existing alarm, any tags you specify in this parameter are
//! ignored").

use aws_sdk_cloudwatch::primitives::DateTimeFormat;
use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator, Dimension, MetricAlarm, Statistic, Tag,
};
use runtime::names;
use serde_json::json;

use super::{AwsTarget, Family, Found, Scope, fail, is};
use crate::plan::{Action, Change};
use crate::resource::{Address, Attrs, Kind, attrs};
use crate::spec::{self, AlarmSpec};
use crate::target::Applied;

const DESCRIBE: &[Family] = &[Family::CloudWatchDescribeAlarms];
const WRITE: &[Family] = &[Family::CloudWatchAlarmWrite];
const NAMESPACE: &str = "AWS/ApiGateway";

/// The metric, statistic and unit of a rule's metric name.
fn metric_of(rule: &str) -> Option<(&'static str, Option<Statistic>, Option<&'static str>)> {
    match rule {
        "5xx_rate" => Some(("5XXError", Some(Statistic::Average), None)),
        "p99_latency_ms" => Some(("Latency", None, Some("p99"))),
        _ => None,
    }
}

/// A rule's metric name from what DescribeAlarms shows; `None` for an
/// alarm apifactory would not have made.
fn rule_of(a: &MetricAlarm) -> Option<&'static str> {
    match (a.metric_name(), a.statistic(), a.extended_statistic()) {
        (Some("5XXError"), Some(Statistic::Average), None) => Some("5xx_rate"),
        (Some("Latency"), None, Some("p99")) => Some("p99_latency_ms"),
        _ => None,
    }
}

fn dimension<'a>(a: &'a MetricAlarm, name: &str) -> Option<&'a str> {
    a.dimensions()
        .iter()
        .find(|d| d.name() == Some(name))
        .and_then(|d| d.value())
}

/// The attributes of an alarm as DescribeAlarms shows it.
fn found(a: &MetricAlarm) -> Attrs {
    // An alarm of another shape under apifactory's name is reported with
    // what it watches as null, so the plan replaces it.
    let metric = rule_of(a).map_or(serde_json::Value::Null, |m| json!(m));
    let mut notify: Vec<String> = a.alarm_actions().to_vec();
    // The rule's topics are told of both changes; an OK action that is
    // not also an alarm action makes the alarm differ.
    if a.ok_actions() != a.alarm_actions() {
        notify.push(format!("(ok actions differ: {:?})", a.ok_actions()));
    }
    let minutes = a.period().map(|p| p / 60).unwrap_or_default();
    attrs([
        (spec::METRIC, metric),
        (spec::THRESHOLD, json!(a.threshold())),
        (spec::MINUTES, json!(minutes)),
        (spec::NOTIFY, json!(notify)),
        (spec::API, json!(dimension(a, "ApiName"))),
        (spec::STAGE, json!(dimension(a, "Stage"))),
    ])
}

/// Every alarm under apifactory's prefix, with its tenant (the one its
/// `ApiName` names), from DescribeAlarms, page by page (100 a page).
async fn describe(t: &AwsTarget, scope: &Scope) -> anyhow::Result<Vec<(String, MetricAlarm)>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        t.pacer.read(DESCRIBE).await;
        let page = t
            .cloudwatch
            .describe_alarms()
            .alarm_name_prefix(format!("{}-", names::PREFIX))
            .alarm_types(AlarmType::MetricAlarm)
            .max_records(100)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| fail("CloudWatch DescribeAlarms", e))?;
        for a in page.metric_alarms() {
            let tenant = dimension(a, "ApiName")
                .and_then(|api| super::tenant_between(api, &format!("{}-", names::PREFIX), ""));
            if let Some(tenant) = tenant.filter(|t| scope.covers(t)) {
                out.push((tenant.to_owned(), a.clone()));
            }
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => break,
        }
    }
    Ok(out)
}

/// Every alarm of the tenants in scope.
pub async fn observe(t: &AwsTarget, scope: &Scope) -> anyhow::Result<Vec<Found>> {
    Ok(describe(t, scope)
        .await?
        .into_iter()
        .filter_map(|(tenant, a)| {
            let name = a.alarm_name()?;
            Some((Address::new(&tenant, Kind::Alarm, name), found(&a)))
        })
        .collect())
}

/// Every alarm of these tenants with its state, for `apifactory usage`.
pub async fn states(t: &AwsTarget, scope: &Scope) -> anyhow::Result<Vec<crate::usage::AlarmState>> {
    Ok(describe(t, scope)
        .await?
        .into_iter()
        .filter_map(|(tenant, a)| {
            let name = a.alarm_name()?;
            let rule = name
                .strip_prefix(&format!("{}-{tenant}-", names::PREFIX))
                .unwrap_or(name)
                .to_owned();
            Some(crate::usage::AlarmState {
                name: rule,
                metric: rule_of(&a).unwrap_or("other").to_owned(),
                threshold: a.threshold().unwrap_or_default(),
                minutes: a.period().map_or(0, |p| (p / 60) as u32),
                state: a
                    .state_value()
                    .map_or("INSUFFICIENT_DATA", |s| s.as_str())
                    .to_owned(),
                since: a
                    .state_updated_timestamp()
                    .and_then(|d| d.fmt(DateTimeFormat::DateTime).ok())
                    .unwrap_or_default(),
                value: None,
                tenant,
            })
        })
        .collect())
}

pub async fn apply(t: &AwsTarget, action: &Action) -> anyhow::Result<Applied> {
    let name = &action.address.name;
    if action.change == Change::Delete {
        // DeleteAlarms lists ResourceNotFound among its errors (CloudWatch
        // API reference, DeleteAlarms): an alarm already gone is deleted.
        t.pacer.write(WRITE).await;
        match t.cloudwatch.delete_alarms().alarm_names(name).send().await {
            Ok(_) => {}
            Err(e) if is(&e, &["ResourceNotFound"]) => {}
            Err(e) => return Err(fail(&format!("CloudWatch DeleteAlarms {name}"), e)),
        }
        return Ok(Applied::default());
    }
    let spec: AlarmSpec = spec::read(action)?;
    let (metric, statistic, extended) = metric_of(&spec.metric).ok_or_else(|| {
        anyhow::anyhow!("alarm {name}: no CloudWatch metric for {:?}", spec.metric)
    })?;
    let tenant = &action.address.tenant;
    let mut put = t
        .cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .alarm_description(format!(
            "apifactory: tenant {tenant}, rule {:?} ({} above {} over {} min)",
            name.strip_prefix(&format!("{}-{tenant}-", names::PREFIX))
                .unwrap_or(name),
            spec.metric,
            spec.threshold,
            spec.minutes
        ))
        .namespace(NAMESPACE)
        .metric_name(metric)
        .set_statistic(statistic)
        .set_extended_statistic(extended.map(str::to_owned))
        .dimensions(
            Dimension::builder()
                .name("ApiName")
                .value(&spec.api)
                .build(),
        )
        .dimensions(
            Dimension::builder()
                .name("Stage")
                .value(&spec.stage)
                .build(),
        )
        .period(spec.minutes as i32 * 60)
        .evaluation_periods(1)
        .datapoints_to_alarm(1)
        .threshold(spec.threshold)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .treat_missing_data("notBreaching")
        .actions_enabled(true)
        .set_alarm_actions(Some(spec.notify.clone()))
        .set_ok_actions(Some(spec.notify.clone()));
    if action.change == Change::Create {
        for (k, v) in super::tags(tenant) {
            put = put.tags(Tag::builder().key(k).value(v).build());
        }
    }
    t.pacer.write(WRITE).await;
    put.send()
        .await
        .map_err(|e| fail(&format!("CloudWatch PutMetricAlarm {name}"), e))?;
    Ok(Applied::default())
}
