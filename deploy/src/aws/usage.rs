//! Usage figures of the AWS target (issue 13, item 2): per key from the
//! stage's access log, per tenant from CloudWatch metrics, each key's quota
//! from API Gateway's GetUsage.
//!
//! API Gateway's metrics have no key dimension, so what each key did comes
//! from the access log (one JSON line per request in
//! `stage::ACCESS_LOG_FORMAT`, with the key id), read with FilterLogEvents.
//! What only CloudWatch counts is the function's and the table's work
//! (Lambda Invocations, Errors, Duration per function; DynamoDB consumed
//! read and write units per table) and requests the log missed (API
//! Gateway Count, 4XXError, 5XXError, Latency by ApiName and Stage). The
//! function's and the table's figures of a span are shared among the keys
//! by how many of their requests reached the function, so a key's cost
//! adds up to the tenant's; what no key accounts for goes to key `""`.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_sdk_lambda::types::Architecture;
use runtime::names;

use super::api_key::client_of;
use super::function::{ENV_TABLE, parse_name};
use super::key_usage::{self, Quota};
use super::pacer::{Family, LOGS_FILTER, METRIC_DATA};
use super::{AwsTarget, fail, listing, tagged_tenant};
use crate::usage::{Counts, Figures, Gathered, KeyInfo};

/// How many items each paged read asks for: AWS's most by default, fewer
/// in tests that page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pages {
    /// FilterLogEvents `limit` (at most 10,000).
    pub log_events: i32,
    /// GetMetricData `MaxDatapoints` (at most 100,800).
    pub metric_points: i32,
    /// GetUsage `limit`, in keys (at most 500).
    pub usage_keys: i32,
}

impl Default for Pages {
    fn default() -> Pages {
        Pages {
            log_events: 10_000,
            metric_points: 100_800,
            usage_keys: key_usage::MAX_PAGE,
        }
    }
}

/// Usage of these tenants (all deployed ones when empty) on AWS over
/// [from, to) (Unix seconds, UTC), in spans of `span` seconds (3600 or
/// 86400), aligned to UTC.
pub async fn gather(
    t: &AwsTarget,
    tenants: &[String],
    from: i64,
    to: i64,
    span: i64,
) -> anyhow::Result<Gathered> {
    gather_paged(t, tenants, from, to, span, Pages::default()).await
}

/// [`gather`], with pages of these sizes.
pub async fn gather_paged(
    t: &AwsTarget,
    tenants: &[String],
    from: i64,
    to: i64,
    span: i64,
    pages: Pages,
) -> anyhow::Result<Gathered> {
    if span != 3600 && span != 86_400 {
        anyhow::bail!("a span is 3600 or 86400 seconds, found {span}");
    }
    if from >= to {
        anyhow::bail!("an empty range: from {from} is not before to {to}");
    }
    let apis = listing::rest_apis(t).await?;
    let plans = listing::usage_plans(t).await?;
    let apis_by_tenant = listing::by_tenant(&apis, names::rest_api);
    let plans_by_tenant = listing::by_tenant(&plans, names::usage_plan);
    let scope: BTreeSet<String> = if tenants.is_empty() {
        apis_by_tenant
            .keys()
            .chain(plans_by_tenant.keys())
            .cloned()
            .collect()
    } else {
        tenants.iter().cloned().collect()
    };

    let mut out = Gathered::default();
    for key in listing::api_keys(t, None).await? {
        let (Some(tenant), Some(id)) = (tagged_tenant(key.tags()), key.id()) else {
            continue;
        };
        if scope.contains(tenant) {
            out.keys.push(KeyInfo {
                tenant: tenant.to_owned(),
                key_id: id.to_owned(),
                name: key.name().unwrap_or_default().to_owned(),
                client: client_of(&key),
                enabled: key.enabled(),
            });
        }
    }
    out.keys
        .sort_by(|a, b| (&a.tenant, &a.client, &a.key_id).cmp(&(&b.tenant, &b.client, &b.key_id)));
    let functions = functions(t, &scope).await?;

    for tenant in &scope {
        let tenant_functions: Vec<&Function> =
            functions.iter().filter(|f| &f.tenant == tenant).collect();
        let arch = tenant_functions
            .iter()
            .find_map(|f| f.arch.clone())
            .unwrap_or_else(|| "x86_64".to_owned());
        out.arch.insert(tenant.clone(), arch);

        // The plan that stands (a lost create can leave two) and its stage.
        let plan = match plans_by_tenant.get(tenant).map(Vec::as_slice) {
            None | Some([]) => None,
            Some([one]) => Some((*one).clone()),
            Some(several) => {
                let id = super::usage_plan::find(t, tenant).await?;
                several
                    .iter()
                    .find(|p| p.id() == id.as_deref())
                    .map(|p| (*p).clone())
            }
        };
        let api_id = apis_by_tenant
            .get(tenant)
            .and_then(|a| a.first())
            .and_then(|a| a.id());
        let stage = plan.as_ref().and_then(|p| {
            p.api_stages()
                .iter()
                .find(|s| api_id.is_none() || s.api_id() == api_id)
                .and_then(|s| s.stage())
                .map(str::to_owned)
        });

        if let Some(plan) = &plan
            && let (Some(id), Some(quota)) = (plan.id(), Quota::of(plan.quota()))
        {
            let today = key_usage::today();
            let start = quota.period_start(today);
            let used = key_usage::get(t, id, None, start, today, pages.usage_keys).await?;
            for key in out.keys.iter().filter(|k| &k.tenant == tenant) {
                let u = used.get(&key.key_id).copied().unwrap_or_default();
                out.quotas
                    .insert(key.key_id.clone(), u.quota(&quota, start));
            }
        }

        let logged = access_log(t, tenant, from, to, span, pages.log_events).await?;
        let metrics = metrics(
            t,
            tenant,
            stage.as_deref(),
            &tenant_functions,
            from,
            to,
            span,
            pages.metric_points,
        )
        .await?;
        out.figures.extend(combine(tenant, logged, metrics));
    }
    Ok(out)
}

/// One of the tenant's functions as ListFunctions shows it.
#[derive(Debug, Clone)]
struct Function {
    tenant: String,
    name: String,
    memory_mb: u64,
    arch: Option<String>,
    table: String,
}

async fn functions(t: &AwsTarget, scope: &BTreeSet<String>) -> anyhow::Result<Vec<Function>> {
    let mut found = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        t.pacer.read(&[Family::Lambda]).await;
        let page = t
            .lambda
            .list_functions()
            .set_marker(marker.take())
            .max_items(50)
            .send()
            .await
            .map_err(|e| fail("Lambda ListFunctions", e))?;
        for f in page.functions() {
            let Some((tenant, _)) = f.function_name().and_then(parse_name) else {
                continue;
            };
            if !scope.contains(tenant) {
                continue;
            }
            let table = f
                .environment()
                .and_then(|e| e.variables())
                .and_then(|v| v.get(ENV_TABLE))
                .cloned()
                .unwrap_or_else(|| names::table(tenant));
            found.push(Function {
                tenant: tenant.to_owned(),
                name: f.function_name().unwrap_or_default().to_owned(),
                // Lambda's default when a listing leaves it out.
                memory_mb: f
                    .memory_size()
                    .and_then(|m| u64::try_from(m).ok())
                    .unwrap_or(128),
                arch: f.architectures().first().map(|a| match a {
                    Architecture::Arm64 => "arm64".to_owned(),
                    _ => "x86_64".to_owned(),
                }),
                table,
            });
        }
        match page.next_marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
            _ => break,
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// What one access log line says, as far as the figures need.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Empty when the request had no usable key.
    pub key: String,
    /// Unix seconds.
    pub at: i64,
    pub status: u16,
    pub bytes_out: u64,
    /// The gateway's latency, in milliseconds.
    pub latency_ms: Option<u64>,
    /// Whether the request reached the function (it has an integration
    /// latency).
    pub reached: bool,
    pub refusal: Refusal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    None,
    Throttled,
    Quota,
    Forbidden,
}

/// A value of the access log: API Gateway writes `-` for one it has not.
fn field<'a>(line: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    line.get(name)
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "-")
}

/// One access log line (JSON, as `stage::ACCESS_LOG_FORMAT` writes it),
/// logged at `event_ms`; `None` when it is not one.
pub fn parse_line(message: &str, event_ms: i64) -> Option<Line> {
    let line: serde_json::Value = serde_json::from_str(message).ok()?;
    let status: u16 = field(&line, "status")?.parse().ok()?;
    let at_ms = field(&line, "requestTimeEpoch")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(event_ms);
    let number = |name: &str| field(&line, name).and_then(|v| v.parse::<f64>().ok());
    let key = field(&line, "apiKeyId").unwrap_or_default().to_owned();
    // `$context.error.responseType` tells API Gateway's two 429s apart
    // ("Gateway response types"); lines written before it was in the
    // format still have the message, which differs as well.
    let kind = field(&line, "responseType");
    let message = field(&line, "error");
    let refusal = match (status, kind, message) {
        (429, Some("QUOTA_EXCEEDED"), _) | (429, None, Some("Limit Exceeded")) => Refusal::Quota,
        (429, _, _) => Refusal::Throttled,
        (403, _, _) if key.is_empty() || kind == Some("INVALID_API_KEY") => Refusal::Forbidden,
        _ => Refusal::None,
    };
    Some(Line {
        key,
        at: at_ms.div_euclid(1000),
        status,
        bytes_out: number("responseLength").map_or(0, |b| b.max(0.0) as u64),
        latency_ms: number("responseLatency").map(|l| l.max(0.0).round() as u64),
        reached: number("integrationLatency").is_some(),
        refusal,
    })
}

/// Per key and span start: the counts, and the requests that reached the
/// function.
type Logged = BTreeMap<(String, i64), (Counts, u64)>;

fn add_line(logged: &mut Logged, line: &Line, span: i64) {
    let start = line.at.div_euclid(span) * span;
    let (c, reached) = logged.entry((line.key.clone(), start)).or_default();
    c.requests += 1;
    match line.status {
        200..=299 => c.status_2xx += 1,
        400..=499 => c.status_4xx += 1,
        500..=599 => c.status_5xx += 1,
        _ => {}
    }
    match line.refusal {
        Refusal::Throttled => c.throttled += 1,
        Refusal::Quota => c.quota_refused += 1,
        Refusal::Forbidden => c.forbidden += 1,
        Refusal::None => {}
    }
    c.bytes_out += line.bytes_out;
    if let Some(ms) = line.latency_ms {
        c.latency_us.record(ms.saturating_mul(1000));
    }
    if line.reached {
        *reached += 1;
    }
}

/// The stage's access log over [from, to), every page.
async fn access_log(
    t: &AwsTarget,
    tenant: &str,
    from: i64,
    to: i64,
    span: i64,
    page: i32,
) -> anyhow::Result<Logged> {
    let group = names::access_log_group(tenant);
    let mut logged = Logged::new();
    let mut token: Option<String> = None;
    loop {
        t.pacer.read(LOGS_FILTER).await;
        let answer = t
            .logs
            .filter_log_events()
            .log_group_name(&group)
            .start_time(from.saturating_mul(1000))
            // Inclusive: "events with a timestamp later than this time are
            // not returned" (CloudWatch Logs API reference).
            .end_time(to.saturating_mul(1000) - 1)
            .limit(page.clamp(1, 10_000))
            .set_next_token(token.take())
            .send()
            .await;
        let answer = match answer {
            Ok(a) => a,
            // No access log yet (a stage never deployed): nothing logged.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(logged);
            }
            Err(e) => return Err(fail(&format!("CloudWatch Logs FilterLogEvents {group}"), e)),
        };
        for event in answer.events() {
            let Some(line) = event
                .message()
                .and_then(|m| parse_line(m, event.timestamp().unwrap_or(0)))
            else {
                continue;
            };
            if (from..to).contains(&line.at) {
                add_line(&mut logged, &line, span);
            }
        }
        match answer.next_token() {
            Some(n) if !n.is_empty() => token = Some(n.to_owned()),
            _ => break,
        }
    }
    Ok(logged)
}

/// What one metric of a query stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Series {
    Count,
    Error4xx,
    Error5xx,
    /// Average latency, milliseconds.
    Latency,
    /// Of the function at this index.
    Invocations(usize),
    Errors(usize),
    /// Summed duration, milliseconds.
    Duration(usize),
    ReadUnits,
    WriteUnits,
    /// Bytes a log group took in (the access log's, a function's).
    LogBytes,
}

/// A tenant's CloudWatch figures of one span.
#[derive(Debug, Clone, Default, PartialEq)]
struct Span {
    count: u64,
    error_4xx: u64,
    error_5xx: u64,
    latency_ms: f64,
    invocations: u64,
    errors: u64,
    duration_us: u64,
    billed_ms: u64,
    billed_mb_ms: u64,
    read_units: f64,
    write_units: f64,
    log_bytes: u64,
}

fn query(
    id: String,
    namespace: &str,
    name: &str,
    dims: &[(&str, &str)],
    span: i64,
    stat: &str,
) -> MetricDataQuery {
    let metric = Metric::builder()
        .namespace(namespace)
        .metric_name(name)
        .set_dimensions(Some(
            dims.iter()
                .map(|(k, v)| Dimension::builder().name(*k).value(*v).build())
                .collect(),
        ))
        .build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(i32::try_from(span).unwrap_or(86_400))
                .stat(stat)
                .build(),
        )
        .return_data(true)
        .build()
}

/// The tenant's metrics over [from, to) per span, every page.
#[allow(clippy::too_many_arguments)]
async fn metrics(
    t: &AwsTarget,
    tenant: &str,
    stage: Option<&str>,
    functions: &[&Function],
    from: i64,
    to: i64,
    span: i64,
    page: i32,
) -> anyhow::Result<BTreeMap<i64, Span>> {
    let api = names::rest_api(tenant);
    let mut wanted: Vec<(Series, MetricDataQuery)> = Vec::new();
    let mut add =
        |series: Series, namespace: &str, name: &str, dims: &[(&str, &str)], stat: &str| {
            let id = format!("m{}", wanted.len());
            wanted.push((series, query(id, namespace, name, dims, span, stat)));
        };
    if let Some(stage) = stage {
        let dims = [("ApiName", api.as_str()), ("Stage", stage)];
        add(Series::Count, "AWS/ApiGateway", "Count", &dims, "Sum");
        add(Series::Error4xx, "AWS/ApiGateway", "4XXError", &dims, "Sum");
        add(Series::Error5xx, "AWS/ApiGateway", "5XXError", &dims, "Sum");
        add(
            Series::Latency,
            "AWS/ApiGateway",
            "Latency",
            &dims,
            "Average",
        );
    }
    for (i, f) in functions.iter().enumerate() {
        let dims = [("FunctionName", f.name.as_str())];
        add(
            Series::Invocations(i),
            "AWS/Lambda",
            "Invocations",
            &dims,
            "Sum",
        );
        add(Series::Errors(i), "AWS/Lambda", "Errors", &dims, "Sum");
        add(Series::Duration(i), "AWS/Lambda", "Duration", &dims, "Sum");
    }
    // CloudWatch Logs ingestion: the access log's and each function's.
    let groups: Vec<String> = std::iter::once(names::access_log_group(tenant))
        .chain(functions.iter().map(|f| format!("/aws/lambda/{}", f.name)))
        .collect();
    for group in &groups {
        let dims = [("LogGroupName", group.as_str())];
        add(Series::LogBytes, "AWS/Logs", "IncomingBytes", &dims, "Sum");
    }
    let tables: BTreeSet<&str> = functions.iter().map(|f| f.table.as_str()).collect();
    for table in tables {
        let dims = [("TableName", table)];
        add(
            Series::ReadUnits,
            "AWS/DynamoDB",
            "ConsumedReadCapacityUnits",
            &dims,
            "Sum",
        );
        add(
            Series::WriteUnits,
            "AWS/DynamoDB",
            "ConsumedWriteCapacityUnits",
            &dims,
            "Sum",
        );
    }

    // Per series, its points: (span start, value).
    let mut points: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    let start = from.div_euclid(span) * span;
    let end = to.div_euclid(span) * span + if to % span == 0 { 0 } else { span };
    // At most 500 queries a call (CloudWatch API reference, GetMetricData).
    for chunk in wanted.chunks(500) {
        let mut token: Option<String> = None;
        loop {
            t.pacer.read(METRIC_DATA).await;
            let answer = t
                .cloudwatch
                .get_metric_data()
                .set_metric_data_queries(Some(chunk.iter().map(|(_, q)| q.clone()).collect()))
                .start_time(DateTime::from_secs(start))
                .end_time(DateTime::from_secs(end))
                .scan_by(ScanBy::TimestampAscending)
                .max_datapoints(page.clamp(1, 100_800))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| fail(&format!("CloudWatch GetMetricData for {tenant}"), e))?;
            for r in answer.metric_data_results() {
                let Some(id) = r.id() else { continue };
                let series = points.entry(id.to_owned()).or_default();
                for (at, v) in r.timestamps().iter().zip(r.values()) {
                    series.push((at.secs().div_euclid(span) * span, *v));
                }
            }
            match answer.next_token() {
                Some(n) if !n.is_empty() => token = Some(n.to_owned()),
                _ => break,
            }
        }
    }

    let mut spans: BTreeMap<i64, Span> = BTreeMap::new();
    for (series, q) in &wanted {
        let Some(values) = q.id().and_then(|id| points.get(id)) else {
            continue;
        };
        for &(at, v) in values {
            if !(from.div_euclid(span) * span..to).contains(&at) || !v.is_finite() {
                continue;
            }
            let s = spans.entry(at).or_default();
            let count = v.max(0.0).round() as u64;
            match *series {
                Series::Count => s.count += count,
                Series::Error4xx => s.error_4xx += count,
                Series::Error5xx => s.error_5xx += count,
                Series::Latency => s.latency_ms = v.max(0.0),
                Series::Invocations(_) => s.invocations += count,
                Series::Errors(_) => s.errors += count,
                Series::Duration(i) => {
                    // Lambda bills each invocation's duration rounded up to
                    // the millisecond; the metrics hold only the span's sum,
                    // so the billed time is that sum rounded up (a lower
                    // bound: each invocation's fraction is lost).
                    let billed = v.max(0.0).ceil() as u64;
                    s.duration_us += (v.max(0.0) * 1000.0).round() as u64;
                    s.billed_ms += billed;
                    s.billed_mb_ms += billed * functions.get(i).map_or(128, |f| f.memory_mb);
                }
                Series::ReadUnits => s.read_units += v.max(0.0),
                Series::WriteUnits => s.write_units += v.max(0.0),
                Series::LogBytes => s.log_bytes += count,
            }
        }
    }
    Ok(spans)
}

/// `total` shared in proportion to `weights` (which must not all be 0),
/// in whole units that add up to it: each gets the floor of its share,
/// and the units left go to the largest remainders (the first on a tie).
pub fn split(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<u128> = weights
        .iter()
        .map(|&w| u128::from(total) * u128::from(w))
        .collect();
    let mut out: Vec<u64> = exact.iter().map(|e| (e / sum) as u64).collect();
    let mut left = total - out.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(exact[i] % sum), i));
    for i in order {
        if left == 0 {
            break;
        }
        out[i] += 1;
        left -= 1;
    }
    out
}

/// The log's per-key counts and the tenant's metrics, as one key's figures
/// per span. Requests the metrics count and the log misses go to key `""`
/// (at the span's average latency); the function's and the table's work
/// is shared by the keys whose requests reached the function, or goes to
/// `""` when none did. The bytes the logs took in are shared by all the
/// requests (every one writes an access log line).
fn combine(tenant: &str, mut logged: Logged, metrics: BTreeMap<i64, Span>) -> Vec<Figures> {
    for (start, m) in metrics {
        let in_span: Vec<&(String, i64)> = logged.keys().filter(|(_, s)| *s == start).collect();
        let logged_total =
            |f: fn(&Counts) -> u64| -> u64 { in_span.iter().map(|k| f(&logged[*k].0)).sum() };
        let missed = m.count.saturating_sub(logged_total(|c| c.requests));
        let missed_4xx = m.error_4xx.saturating_sub(logged_total(|c| c.status_4xx));
        let missed_5xx = m.error_5xx.saturating_sub(logged_total(|c| c.status_5xx));
        let mut keys: Vec<(String, i64)> = in_span.into_iter().cloned().collect();
        if missed > 0 {
            let (c, _) = logged.entry((String::new(), start)).or_default();
            let m4 = missed_4xx.min(missed);
            let m5 = missed_5xx.min(missed - m4);
            c.requests += missed;
            c.status_4xx += m4;
            c.status_5xx += m5;
            c.status_2xx += missed - m4 - m5;
            let us = (m.latency_ms * 1000.0).round() as u64;
            if m.latency_ms > 0.0 {
                for _ in 0..missed.min(1_000_000) {
                    c.latency_us.record(us);
                }
            }
        }
        let all: Vec<(String, i64)> = logged
            .keys()
            .filter(|(_, s)| *s == start)
            .cloned()
            .collect();
        let requests: Vec<u64> = all.iter().map(|k| logged[k].0.requests).collect();
        let (all, requests) = if requests.iter().all(|&r| r == 0) {
            (vec![(String::new(), start)], vec![1])
        } else {
            (all, requests)
        };
        for (k, bytes) in all.iter().zip(split(m.log_bytes, &requests)) {
            logged.entry(k.clone()).or_default().0.log_bytes += bytes;
        }
        let mut weights: Vec<u64> = keys.iter().map(|k| logged[k].1).collect();
        if weights.iter().all(|&w| w == 0) {
            keys = vec![(String::new(), start)];
            weights = vec![1];
        }
        let invocations = split(m.invocations, &weights);
        let errors = split(m.errors, &weights);
        let duration = split(m.duration_us, &weights);
        let billed = split(m.billed_ms, &weights);
        let billed_mb = split(m.billed_mb_ms, &weights);
        let total: u64 = weights.iter().sum();
        for (i, k) in keys.iter().enumerate() {
            let share = weights[i] as f64 / total as f64;
            let (c, _) = logged.entry(k.clone()).or_default();
            c.invocations += invocations[i];
            c.function_errors += errors[i];
            c.duration_us += duration[i];
            c.billed_ms += billed[i];
            c.billed_mb_ms += billed_mb[i];
            c.read_units += m.read_units * share;
            c.write_units += m.write_units * share;
        }
    }
    logged
        .into_iter()
        .filter(|(_, (c, _))| *c != Counts::default())
        .map(|((key_id, start), (counts, _))| Figures {
            tenant: tenant.to_owned(),
            key_id,
            start,
            counts,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(fields: &[(&str, &str)]) -> String {
        let map: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v)))
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    #[test]
    fn access_log_lines_tell_refusals_apart() {
        let ok = line(&[
            ("apiKeyId", "k1"),
            ("requestTimeEpoch", "1795000000123"),
            ("status", "200"),
            ("responseLength", "42"),
            ("responseLatency", "12"),
            ("integrationLatency", "9"),
            ("error", "-"),
            ("responseType", "-"),
        ]);
        assert_eq!(
            parse_line(&ok, 0),
            Some(Line {
                key: "k1".into(),
                at: 1_795_000_000,
                status: 200,
                bytes_out: 42,
                latency_ms: Some(12),
                reached: true,
                refusal: Refusal::None,
            })
        );
        let typed = |kind: &str, message: &str| {
            parse_line(
                &line(&[
                    ("apiKeyId", "k1"),
                    ("status", "429"),
                    ("integrationLatency", "-"),
                    ("error", message),
                    ("responseType", kind),
                ]),
                5_000,
            )
            .unwrap()
        };
        assert_eq!(
            typed("QUOTA_EXCEEDED", "Limit Exceeded").refusal,
            Refusal::Quota
        );
        assert_eq!(
            typed("THROTTLED", "Too Many Requests").refusal,
            Refusal::Throttled
        );
        // A line from before responseType was logged: the message decides.
        assert_eq!(typed("-", "Limit Exceeded").refusal, Refusal::Quota);
        let old = typed("-", "Too Many Requests");
        assert_eq!(
            (old.refusal, old.reached, old.at),
            (Refusal::Throttled, false, 5)
        );
        let forbidden = parse_line(
            &line(&[("apiKeyId", "-"), ("status", "403"), ("error", "Forbidden")]),
            0,
        )
        .unwrap();
        assert_eq!(
            (forbidden.key.as_str(), forbidden.refusal),
            ("", Refusal::Forbidden)
        );
        assert_eq!(parse_line("START RequestId: x", 0), None);
        assert_eq!(parse_line(r#"{"status":"-"}"#, 0), None);
    }

    #[test]
    fn a_split_adds_up_to_the_total() {
        assert_eq!(split(10, &[1, 1, 1]), [4, 3, 3]);
        assert_eq!(split(7, &[0, 5, 2]), [0, 5, 2]);
        assert_eq!(split(1, &[0, 0]), [0, 0]);
        assert_eq!(split(100, &[3, 3, 3]).iter().sum::<u64>(), 100);
        assert_eq!(split(u64::MAX, &[1, 1]).iter().sum::<u64>(), u64::MAX);
    }

    #[test]
    fn function_work_is_shared_by_the_requests_that_reached_it() {
        let mut logged = Logged::new();
        let mut add = |key: &str, status: u16, reached: bool| {
            let l = Line {
                key: key.into(),
                at: 3_600 * 10 + 5,
                status,
                bytes_out: 1,
                latency_ms: Some(3),
                reached,
                refusal: if status == 429 {
                    Refusal::Throttled
                } else {
                    Refusal::None
                },
            };
            add_line(&mut logged, &l, 3600);
        };
        for _ in 0..3 {
            add("a", 200, true);
        }
        add("b", 200, true);
        add("b", 429, false);
        let metrics = BTreeMap::from([(
            36_000,
            Span {
                count: 7,
                error_4xx: 2,
                invocations: 4,
                errors: 1,
                duration_us: 10_000,
                billed_ms: 11,
                billed_mb_ms: 11 * 256,
                read_units: 8.0,
                latency_ms: 4.0,
                log_bytes: 700,
                ..Span::default()
            },
        )]);
        let figures = combine("t", logged, metrics);
        let by_key: BTreeMap<&str, &Counts> = figures
            .iter()
            .map(|f| (f.key_id.as_str(), &f.counts))
            .collect();
        let (a, b, none) = (by_key["a"], by_key["b"], by_key[""]);
        assert_eq!((a.invocations, b.invocations), (3, 1));
        assert_eq!(a.function_errors + b.function_errors, 1);
        assert_eq!(a.billed_ms + b.billed_ms, 11);
        assert_eq!(a.billed_mb_ms + b.billed_mb_ms, 11 * 256);
        assert_eq!((a.read_units, b.read_units), (6.0, 2.0));
        assert_eq!((b.requests, b.throttled, b.status_4xx), (2, 1, 1));
        // Two requests CloudWatch counted that the log lacks, one a 4xx.
        assert_eq!(
            (
                none.requests,
                none.status_4xx,
                none.status_2xx,
                none.latency_us.count()
            ),
            (2, 1, 1, 2)
        );
        assert_eq!(none.invocations, 0);
        // Log bytes by requests: a 3, b 2, none 2.
        assert_eq!((a.log_bytes, b.log_bytes, none.log_bytes), (300, 200, 200));
        assert!(figures.iter().all(|f| f.start == 36_000 && f.tenant == "t"));
    }
}
