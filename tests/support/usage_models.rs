//! What the fault proxy models for the usage figures, where moto 5.2.5
//! falls short of AWS:
//!
//! - API Gateway's `GetUsage` and `UpdateUsage` (moto answers 404): a
//!   per-key daily log of requests used that a test sets
//!   ([`super::FaultProxy::set_usage`]), answered in the documented shape
//!   (API Gateway API reference, "GetUsage", "UpdateUsage", "Usage":
//!   `values` maps each key id to `[[used, remaining], ...]`, one entry a
//!   day from `startDate` to `endDate`; paged over keys by `limit` and
//!   `position`; the documented example is kept as
//!   `tests/data/aws-docs/get-usage.json`). The quota (limit, period,
//!   offset) and the plan's keys are moto's, read from it per call.
//! - CloudWatch over Smithy RPC v2 CBOR, which the AWS SDK for Rust
//!   speaks and moto does not (it answers CloudWatch in AWS JSON 1.0):
//!   carried across in [`cloudwatch`].
//! - GetMetricData's paging: moto returns every point at once; AWS pages
//!   by `MaxDatapoints` with a `NextToken` and marks a page that has more
//!   `PartialData` (CloudWatch API reference, "GetMetricData").

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::cbor::{self, Kind};
use super::{Request, error_response, forward, json_response, split_answer};

/// Requests used per (plan, key), per day (days since 1970-01-01).
#[derive(Debug, Default)]
pub struct UsageModel {
    used: BTreeMap<(String, String), BTreeMap<i64, i64>>,
}

impl UsageModel {
    pub fn set(&mut self, plan: &str, key: &str, day: i64, used: u64) {
        self.used
            .entry((plan.to_owned(), key.to_owned()))
            .or_default()
            .insert(day, i64::try_from(used).unwrap_or(i64::MAX));
    }

    fn on(&self, plan: &str, key: &str, day: i64) -> i64 {
        self.used
            .get(&(plan.to_owned(), key.to_owned()))
            .and_then(|d| d.get(&day))
            .copied()
            .unwrap_or(0)
    }

    fn keys(&self, plan: &str) -> impl Iterator<Item = &str> {
        self.used
            .keys()
            .filter(move |(p, _)| p == plan)
            .map(|(_, k)| k.as_str())
    }
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `YYYY-MM-DD` as days since 1970-01-01.
pub fn parse_day(s: &str) -> Option<i64> {
    let mut parts = s.split('-');
    let y = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

pub fn format_day(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    secs.div_euclid(86_400)
}

/// A usage plan's quota as GetUsagePlan answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Quota {
    limit: i64,
    period: String,
    offset: i64,
}

impl Quota {
    /// The first day of the period holding `day` (QuotaSettings: WEEK
    /// offset 0 starts on Sunday, MONTH offset 0 on the first).
    fn start(&self, day: i64) -> i64 {
        match self.period.as_str() {
            "WEEK" => {
                let weekday = (day + 4).rem_euclid(7); // 1970-01-01 was a Thursday
                day - (weekday - self.offset.rem_euclid(7)).rem_euclid(7)
            }
            "MONTH" => {
                let (y, m, d) = civil_from_days(day);
                let first = self.offset.clamp(0, 27) + 1;
                if d >= first {
                    days_from_civil(y, m, first)
                } else if m == 1 {
                    days_from_civil(y - 1, 12, first)
                } else {
                    days_from_civil(y, m - 1, first)
                }
            }
            _ => day,
        }
    }
}

/// What a key has left on `day`: the limit less what it used from its
/// period's start to that day, never below 0.
fn remaining(model: &UsageModel, plan: &str, key: &str, quota: &Quota, day: i64) -> i64 {
    let used: i64 = (quota.start(day)..=day)
        .map(|d| model.on(plan, key, d))
        .sum();
    (quota.limit - used).max(0)
}

/// A moto read with the client's headers (moto checks no signature).
async fn moto_get(upstream: &str, r: &Request, target: String) -> std::io::Result<(u16, Value)> {
    let get = Request {
        method: "GET".into(),
        target,
        headers: r
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
            .cloned()
            .collect(),
        body: Vec::new(),
    };
    let raw = forward(upstream, &get).await?;
    let (start, _, body) =
        split_answer(&raw).ok_or_else(|| std::io::Error::other("moto's answer has no head"))?;
    let status = start.get(1).and_then(|s| s.parse().ok()).unwrap_or(500);
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

fn bad_request(message: &str) -> Vec<u8> {
    error_response(Some("apigateway"), 400, "BadRequestException", message)
}

/// The plan's quota and keys, from moto; an error answer when it has no
/// such plan.
async fn plan_of(
    upstream: &str,
    r: &Request,
    plan: &str,
) -> std::io::Result<Result<(Quota, Vec<String>), Vec<u8>>> {
    let (status, p) = moto_get(upstream, r, format!("/usageplans/{plan}")).await?;
    if status != 200 {
        return Ok(Err(error_response(
            Some("apigateway"),
            404,
            "NotFoundException",
            "Invalid Usage Plan ID specified",
        )));
    }
    let q = &p["quota"];
    let quota = Quota {
        limit: q["limit"].as_i64().unwrap_or(0),
        period: q["period"].as_str().unwrap_or("DAY").to_owned(),
        offset: q["offset"].as_i64().unwrap_or(0),
    };
    let (_, keys) = moto_get(upstream, r, format!("/usageplans/{plan}/keys?limit=500")).await?;
    let listed = keys
        .get("item")
        .or_else(|| keys.get("items"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|k| k["id"].as_str().map(str::to_owned))
        .collect();
    Ok(Ok((quota, listed)))
}

fn query_value(target: &str, name: &str) -> Option<String> {
    super::query_param(target, name).map(super::percent_decode)
}

/// GetUsage or UpdateUsage, answered from the model.
pub(super) async fn answer(
    upstream: &str,
    model: &std::sync::Mutex<UsageModel>,
    op: &str,
    r: &Request,
) -> std::io::Result<Vec<u8>> {
    let path = r.target.split('?').next().unwrap_or(&r.target);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (op, segments.as_slice()) {
        ("GetUsage", ["usageplans", plan, "usage"]) => get_usage(upstream, model, r, plan).await,
        ("UpdateUsage", ["usageplans", plan, "keys", key, "usage"]) => {
            update_usage(upstream, model, r, plan, key).await
        }
        _ => Ok(bad_request("Invalid request path")),
    }
}

async fn get_usage(
    upstream: &str,
    model: &std::sync::Mutex<UsageModel>,
    r: &Request,
    plan: &str,
) -> std::io::Result<Vec<u8>> {
    let day = |name: &str| query_value(&r.target, name).and_then(|d| parse_day(&d));
    let (Some(start), Some(end)) = (day("startDate"), day("endDate")) else {
        return Ok(bad_request("Invalid start date or end date"));
    };
    if end < start || end - start > 90 {
        // FACTS.md: "start and end dates, at most 90 days apart".
        return Ok(bad_request(
            "The usage data interval cannot be more than 90 days",
        ));
    }
    let (quota, listed) = match plan_of(upstream, r, plan).await? {
        Ok(found) => found,
        Err(answer) => return Ok(answer),
    };
    let limit = query_value(&r.target, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, 500);
    let position = match query_value(&r.target, "position").map(|p| p.parse::<usize>()) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(_)) => return Ok(bad_request("Invalid position")),
    };
    let wanted = query_value(&r.target, "keyId");
    let model = model.lock().unwrap();
    let keys: Vec<String> = listed
        .iter()
        .map(String::as_str)
        .chain(model.keys(plan))
        .filter(|k| wanted.as_deref().is_none_or(|w| w == *k))
        .map(str::to_owned)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let body = usage_body(&model, plan, &quota, &keys, (start, end), (position, limit));
    Ok(json_response(200, "OK", &[], &body))
}

/// GetUsage's answer: for the keys from `position`, at most `limit` of
/// them, a `[used, remaining]` a day.
fn usage_body(
    model: &UsageModel,
    plan: &str,
    quota: &Quota,
    keys: &[String],
    (start, end): (i64, i64),
    (position, limit): (usize, usize),
) -> Value {
    let mut values = serde_json::Map::new();
    for key in keys.iter().skip(position).take(limit) {
        let log: Vec<Value> = (start..=end)
            .map(|d| {
                json!([
                    model.on(plan, key, d),
                    remaining(model, plan, key, quota, d)
                ])
            })
            .collect();
        values.insert(key.clone(), Value::Array(log));
    }
    let mut body = json!({
        "usagePlanId": plan,
        "startDate": format_day(start),
        "endDate": format_day(end),
        "values": values,
    });
    if position + limit < keys.len() {
        body["position"] = json!((position + limit).to_string());
    }
    body
}

async fn update_usage(
    upstream: &str,
    model: &std::sync::Mutex<UsageModel>,
    r: &Request,
    plan: &str,
    key: &str,
) -> std::io::Result<Vec<u8>> {
    let patch: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let ops = patch["patchOperations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let wanted = match ops.as_slice() {
        [op] if op["op"] == "replace" && op["path"] == "/remaining" => {
            op["value"].as_str().and_then(|v| v.parse::<i64>().ok())
        }
        _ => None,
    };
    let Some(wanted) = wanted.filter(|w| *w >= 0) else {
        return Ok(bad_request(
            "Invalid patch operation: UpdateUsage takes replace /remaining with a number",
        ));
    };
    let (quota, listed) = match plan_of(upstream, r, plan).await? {
        Ok(found) => found,
        Err(answer) => return Ok(answer),
    };
    if !listed.iter().any(|k| k == key) {
        return Ok(error_response(
            Some("apigateway"),
            404,
            "NotFoundException",
            "Invalid API Key identifier specified",
        ));
    }
    let today = today();
    let mut model = model.lock().unwrap();
    let now = remaining(&model, plan, key, &quota, today);
    // What is left becomes `wanted`: today's use grows by the difference
    // (or shrinks, for an extension).
    let used_today = model.on(plan, key, today) + (now - wanted);
    model
        .used
        .entry((plan.to_owned(), key.to_owned()))
        .or_default()
        .insert(today, used_today);
    let body = json!({
        "usagePlanId": plan,
        "startDate": format_day(today),
        "endDate": format_day(today),
        "values": { key: [[used_today, remaining(&model, plan, key, &quota, today)]] },
    });
    Ok(json_response(200, "OK", &[], &body))
}

/// The members of CloudWatch's answers that are timestamps or doubles.
fn cloudwatch_kind(member: &str) -> Kind {
    match member {
        "Timestamps"
        | "Timestamp"
        | "StateUpdatedTimestamp"
        | "AlarmConfigurationUpdatedTimestamp"
        | "StartDate"
        | "EndDate"
        | "LastModified" => Kind::Timestamp,
        "Values" | "Value" | "Sum" | "Average" | "Minimum" | "Maximum" | "SampleCount"
        | "Threshold" => Kind::Double,
        _ => Kind::Plain,
    }
}

/// A CloudWatch answer in RPC v2 CBOR.
fn cbor_response(status: u16, body: &[u8], error: Option<&str>) -> Vec<u8> {
    let reason = if status < 300 { "OK" } else { "Bad Request" };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/cbor\r\n\
         smithy-protocol: rpc-v2-cbor\r\nx-amzn-RequestId: fault-proxy\r\n"
    );
    if let Some(code) = error {
        // CloudWatch is awsQueryCompatible: its error codes are the query
        // protocol's, in this header (Smithy, "awsQueryCompatible trait").
        let kind = if status >= 500 { "Receiver" } else { "Sender" };
        out.push_str(&format!("x-amzn-query-error: {code};{kind}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A CloudWatch error in RPC v2 CBOR.
pub fn cbor_error(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = cbor::encode(&json!({"__type": code, "message": message}), &|_| {
        Kind::Plain
    });
    cbor_response(status, &body, Some(code))
}

/// One page of a GetMetricData answer: the points from `offset`, at most
/// `page` of them, counted across the results in order.
pub fn page_metric_data(answer: &mut Value, offset: usize, page: usize) {
    let results = answer["MetricDataResults"]
        .as_array_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let total: usize = results
        .iter()
        .map(|r| r["Timestamps"].as_array().map_or(0, Vec::len))
        .sum();
    let (from, to) = (offset.min(total), offset.saturating_add(page).min(total));
    let more = to < total;
    let mut seen = 0;
    let mut paged = Vec::new();
    for mut r in results {
        let n = r["Timestamps"].as_array().map_or(0, Vec::len);
        let (a, b) = (
            from.clamp(seen, seen + n) - seen,
            to.clamp(seen, seen + n) - seen,
        );
        seen += n;
        for field in ["Timestamps", "Values"] {
            let kept: Vec<Value> = r[field]
                .as_array()
                .map(|v| v.get(a..b.min(v.len())).unwrap_or_default().to_vec())
                .unwrap_or_default();
            r[field] = Value::Array(kept);
        }
        r["StatusCode"] = json!(if more { "PartialData" } else { "Complete" });
        paged.push(r);
    }
    answer["MetricDataResults"] = Value::Array(paged);
    match answer.as_object_mut() {
        Some(map) if more => {
            map.insert("NextToken".into(), json!(to.to_string()));
        }
        Some(map) => {
            map.remove("NextToken");
        }
        None => {}
    }
}

/// A CloudWatch call in RPC v2 CBOR (`POST /service/<service>/operation/
/// <operation>`), carried to moto in AWS JSON 1.0 and its answer back in
/// CBOR; GetMetricData paged as AWS pages it.
pub(super) async fn cloudwatch(upstream: &str, r: &Request) -> std::io::Result<Vec<u8>> {
    let path = r.target.split('?').next().unwrap_or(&r.target);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ["service", service, "operation", op] = segments.as_slice() else {
        return Ok(cbor_error(400, "InvalidAction", "not an RPC v2 CBOR path"));
    };
    let mut input = if r.body.is_empty() {
        json!({})
    } else {
        match cbor::decode(&r.body) {
            Some(v) => v,
            None => return Ok(cbor_error(400, "SerializationException", "malformed CBOR")),
        }
    };
    let mut paging = None;
    if *op == "GetMetricData" {
        let offset = match input.get("NextToken").and_then(Value::as_str) {
            None => 0,
            Some(t) => match t.parse::<usize>() {
                Ok(o) => o,
                Err(_) => {
                    return Ok(cbor_error(
                        400,
                        "InvalidNextToken",
                        "The service found that the NextToken is invalid",
                    ));
                }
            },
        };
        let page = input
            .get("MaxDatapoints")
            .and_then(Value::as_u64)
            .map_or(100_800, |m| m.clamp(1, 100_800) as usize);
        paging = Some((offset, page));
        if let Some(map) = input.as_object_mut() {
            map.remove("NextToken");
            map.remove("MaxDatapoints");
        }
    }
    let json_request = Request {
        method: "POST".into(),
        target: "/".into(),
        headers: r
            .headers
            .iter()
            .filter(|(k, _)| {
                !["content-type", "smithy-protocol", "accept"]
                    .iter()
                    .any(|h| k.eq_ignore_ascii_case(h))
            })
            .cloned()
            .chain([
                (
                    "Content-Type".to_owned(),
                    "application/x-amz-json-1.0".to_owned(),
                ),
                ("X-Amz-Target".to_owned(), format!("{service}.{op}")),
            ])
            .collect(),
        body: input.to_string().into_bytes(),
    };
    let raw = forward(upstream, &json_request).await?;
    let Some((start, _, body)) = split_answer(&raw) else {
        return Ok(cbor_error(
            500,
            "InternalFailure",
            "moto's answer has no head",
        ));
    };
    let status: u16 = start.get(1).and_then(|s| s.parse().ok()).unwrap_or(500);
    let mut answer: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).unwrap_or_else(|_| json!({}))
    };
    if status >= 300 {
        let code = answer["__type"]
            .as_str()
            .or_else(|| answer["Code"].as_str())
            .unwrap_or("InternalFailure");
        let code = code.rsplit('#').next().unwrap_or(code).to_owned();
        let message = answer["message"]
            .as_str()
            .or_else(|| answer["Message"].as_str())
            .unwrap_or("")
            .to_owned();
        return Ok(cbor_error(status, &code, &message));
    }
    if let Some((offset, page)) = paging {
        page_metric_data(&mut answer, offset, page);
    }
    Ok(cbor_response(
        status,
        &cbor::encode(&answer, &cloudwatch_kind),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_and_periods_start_right() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(
            parse_day("2026-11-30").map(format_day).as_deref(),
            Some("2026-11-30")
        );
        assert_eq!(parse_day("2026-13-01"), None);
        let monday = parse_day("2026-11-30").unwrap();
        let q = |period: &str, offset| Quota {
            limit: 10,
            period: period.into(),
            offset,
        };
        assert_eq!(format_day(q("WEEK", 0).start(monday)), "2026-11-29");
        assert_eq!(format_day(q("WEEK", 1).start(monday)), "2026-11-30");
        assert_eq!(format_day(q("MONTH", 0).start(monday)), "2026-11-01");
        assert_eq!(
            format_day(q("MONTH", 4).start(parse_day("2026-01-02").unwrap())),
            "2025-12-05"
        );
        assert_eq!(q("DAY", 0).start(monday), monday);
    }

    #[test]
    fn the_model_answers_in_the_documented_shape() {
        // The API reference's example, kept as a fixture: the model's
        // answer has its members, and the same daily log for the same use.
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/aws-docs/get-usage.json");
        let documented: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let start = parse_day(documented["startDate"].as_str().unwrap()).unwrap();
        let end = parse_day(documented["endDate"].as_str().unwrap()).unwrap();
        let mut model = UsageModel::default();
        for (i, used) in [0, 10, 80].into_iter().enumerate() {
            model.set("a1b2c3", "{api_key}", start + i as i64, used);
        }
        let quota = Quota {
            limit: 100,
            period: "MONTH".into(),
            offset: 0,
        };
        let keys = ["{api_key}".to_owned()];
        let body = usage_body(&model, "a1b2c3", &quota, &keys, (start, end), (0, 25));
        let members = |v: &Value| {
            v.as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(members(&body), members(&documented));
        let shape = |v: &Value| -> Vec<usize> {
            v["values"]["{api_key}"]
                .as_array()
                .unwrap()
                .iter()
                .map(|day| {
                    day.as_array()
                        .unwrap()
                        .iter()
                        .filter(|n| n.is_u64())
                        .count()
                })
                .collect()
        };
        assert_eq!(
            shape(&body),
            shape(&documented),
            "a [used, remaining] a day"
        );
        assert_eq!(
            body["values"]["{api_key}"],
            json!([[0, 100], [10, 90], [80, 10]])
        );
        assert_eq!(body["usagePlanId"], documented["usagePlanId"]);
        // Paged over keys: a second key is on the next page.
        let two = ["{api_key}".to_owned(), "other".to_owned()];
        let first = usage_body(&model, "a1b2c3", &quota, &two, (start, end), (0, 1));
        assert_eq!(first["position"], "1");
        assert_eq!(members(&first["values"]).len(), 1);
        let second = usage_body(&model, "a1b2c3", &quota, &two, (start, end), (1, 1));
        assert_eq!(
            second["values"]["other"],
            json!([[0, 100], [0, 100], [0, 100]])
        );
        assert_eq!(second.get("position"), None);
    }

    #[test]
    fn metric_data_pages_across_results() {
        let mut answer = json!({"MetricDataResults": [
            {"Id": "a", "Timestamps": [1, 2, 3], "Values": [1.0, 2.0, 3.0]},
            {"Id": "b", "Timestamps": [1, 2], "Values": [4.0, 5.0]}
        ]});
        let mut first = answer.clone();
        page_metric_data(&mut first, 0, 2);
        assert_eq!(first["MetricDataResults"][0]["Values"], json!([1.0, 2.0]));
        assert_eq!(first["MetricDataResults"][1]["Values"], json!([]));
        assert_eq!(first["NextToken"], "2");
        assert_eq!(first["MetricDataResults"][0]["StatusCode"], "PartialData");
        let mut second = answer.clone();
        page_metric_data(&mut second, 2, 2);
        assert_eq!(second["MetricDataResults"][0]["Values"], json!([3.0]));
        assert_eq!(second["MetricDataResults"][1]["Timestamps"], json!([1]));
        page_metric_data(&mut answer, 4, 2);
        assert_eq!(answer["MetricDataResults"][1]["Values"], json!([5.0]));
        assert_eq!(answer.get("NextToken"), None);
        assert_eq!(answer["MetricDataResults"][1]["StatusCode"], "Complete");
    }
}
