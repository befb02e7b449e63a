//! The AWS target's usage figures (`aws::usage::gather`) and the quota a
//! rotation carries over, on moto behind a fault proxy of the test's own:
//! the proxy answers GetUsage and UpdateUsage (moto has neither) from a
//! model the test sets, carries CloudWatch's CBOR calls to moto's JSON, and
//! pages GetMetricData as AWS does. The test writes the access log lines
//! (moto's CloudWatch Logs) and the metrics (moto's CloudWatch) a deployed
//! tenant would have, and checks that gather reports exactly them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use apifactory::aws::AwsTarget;
use apifactory::aws::usage::{Pages, gather, gather_paged};
use apifactory::keys::KeyStore;
use apifactory::usage::{Counts, Gathered, Histogram, KeyInfo};
use apifactory_tests::fault_proxy::usage_models::{format_day, parse_day, today};
use apifactory_tests::fault_proxy::{FaultConfig, FaultProxy};
use apifactory_tests::{sdk_config, sdk_config_at};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use runtime::names;

use apifactory_tests::aws::{converge, scope};
use apifactory_tests::fleet::{Fleet, target_at};

/// A tenant deployed through a proxy of the test's own.
struct Deployed {
    proxy: FaultProxy,
    target: Arc<AwsTarget>,
    tenant: String,
    _fleet: Fleet,
}

/// clinic (no custom domain; quota 5000 a WEEK; client front-desk; four
/// functions of 128 MB), deployed through a realistic proxy that also
/// throttles these operations' first calls.
async fn deploy(throttle_first: Vec<&'static str>) -> Deployed {
    let proxy = FaultProxy::start(
        &apifactory_tests::moto_url(),
        FaultConfig {
            throttle_first,
            ..FaultConfig::realistic()
        },
    )
    .await;
    let fleet = Fleet::new(&["clinic"]).await;
    let tenant = fleet.id("clinic").to_owned();
    let target = target_at(proxy.url()).await;
    converge(
        &target,
        &fleet.desired(&[]),
        &scope([tenant.clone()].into()),
    )
    .await;
    Deployed {
        proxy,
        target,
        tenant,
        _fleet: fleet,
    }
}

/// One access log line in the stage's format (`-` where API Gateway has
/// no value).
#[allow(clippy::too_many_arguments)]
fn line(
    key: &str,
    at_ms: i64,
    status: u16,
    length: &str,
    latency: &str,
    integration: &str,
    error: &str,
    kind: &str,
) -> (i64, String) {
    let message = serde_json::json!({
        "requestId": format!("r{at_ms}"),
        "ip": "203.0.113.9",
        "apiKeyId": key,
        "requestTime": "-",
        "requestTimeEpoch": at_ms.to_string(),
        "httpMethod": "GET",
        "resourcePath": "/appointments/{id}",
        "status": status.to_string(),
        "responseLength": length,
        "responseLatency": latency,
        "integrationLatency": integration,
        "error": error,
        "responseType": kind,
    });
    (at_ms, message.to_string())
}

async fn put_log(tenant: &str, mut lines: Vec<(i64, String)>) {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk_config().await);
    let group = names::access_log_group(tenant);
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name("test")
        .send()
        .await
        .unwrap();
    lines.sort();
    for batch in lines.chunks(5_000) {
        logs.put_log_events()
            .log_group_name(&group)
            .log_stream_name("test")
            .set_log_events(Some(
                batch
                    .iter()
                    .map(|(at, m)| {
                        InputLogEvent::builder()
                            .timestamp(*at)
                            .message(m)
                            .build()
                            .unwrap()
                    })
                    .collect(),
            ))
            .send()
            .await
            .unwrap();
    }
}

/// A metric point: namespace, name, dimensions, Unix seconds, value.
type Point<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, i64, f64);

/// Metric points, through the proxy (moto's CloudWatch speaks JSON, the
/// SDK CBOR).
async fn put_metrics(proxy: &FaultProxy, points: &[Point<'_>]) {
    let cw = aws_sdk_cloudwatch::Client::new(&sdk_config_at(proxy.url()).await);
    for (namespace, name, dims, at, value) in points {
        cw.put_metric_data()
            .namespace(*namespace)
            .metric_data(
                MetricDatum::builder()
                    .metric_name(*name)
                    .set_dimensions(Some(
                        dims.iter()
                            .map(|(k, v)| Dimension::builder().name(*k).value(v).build())
                            .collect(),
                    ))
                    .timestamp(DateTime::from_secs(*at))
                    .value(*value)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

/// The keys gather should report: front-desk's (from the file) and a
/// second client's, made here.
async fn two_keys(d: &Deployed) -> (String, String) {
    let listed = d.target.list(Some(&d.tenant)).await.unwrap();
    let desk = listed
        .iter()
        .find(|k| k.client == "front-desk")
        .expect("front-desk's key")
        .id
        .clone();
    let partner = d.target.create(&d.tenant, "partner").await.unwrap().id;
    (desk, partner)
}

/// The hour three hours back, where every test's traffic is written.
fn first_hour() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now.div_euclid(3600) * 3600 - 3 * 3600
}

/// Two hours of traffic of two keys and of requests without a key, in the
/// log and in the metrics; what gather must report for it is in
/// [`check_figures`].
async fn write_traffic(d: &Deployed, desk: &str, partner: &str, h0: i64) {
    let ms = |hour: i64, s: i64| (h0 + hour * 3600 + s) * 1000;
    let mut lines = vec![
        // Outside the range on both sides.
        line(desk, ms(0, -10), 200, "100", "10", "8", "-", "-"),
        line(desk, ms(2, 10), 200, "100", "10", "8", "-", "-"),
        // Hour 0: front-desk 3 OK and a 404, all at the function.
        line(desk, ms(0, 1), 200, "100", "10", "8", "-", "-"),
        line(desk, ms(0, 2), 200, "100", "10", "8", "-", "-"),
        line(desk, ms(0, 3), 200, "100", "10", "8", "-", "-"),
        line(desk, ms(0, 4), 404, "30", "12", "9", "-", "-"),
        // partner: one OK, one throttled, one over its quota.
        line(partner, ms(0, 5), 200, "250", "40", "35", "-", "-"),
        line(
            partner,
            ms(0, 6),
            429,
            "35",
            "1",
            "-",
            "Too Many Requests",
            "THROTTLED",
        ),
        line(
            partner,
            ms(0, 7),
            429,
            "30",
            "1",
            "-",
            "Limit Exceeded",
            "QUOTA_EXCEEDED",
        ),
        // No key at all.
        line(
            "-",
            ms(0, 8),
            403,
            "24",
            "2",
            "-",
            "Forbidden",
            "MISSING_AUTHENTICATION_TOKEN",
        ),
        // Hour 1: front-desk 2 OK and a function failure.
        line(desk, ms(1, 1), 200, "100", "10", "8", "-", "-"),
        line(desk, ms(1, 2), 200, "100", "10", "8", "-", "-"),
        line(
            desk,
            ms(1, 3),
            502,
            "36",
            "30",
            "29",
            "Internal server error",
            "-",
        ),
    ];
    // Something that is not an access log line is skipped.
    lines.push((ms(0, 9), "not json".into()));
    put_log(&d.tenant, lines).await;

    let api = vec![
        ("ApiName", names::rest_api(&d.tenant)),
        ("Stage", "prod".to_owned()),
    ];
    let function = |op: &str| vec![("FunctionName", format!("apifactory-{}-{op}", d.tenant))];
    let table = vec![("TableName", names::table(&d.tenant))];
    let access = vec![("LogGroupName", names::access_log_group(&d.tenant))];
    let get_log = vec![(
        "LogGroupName",
        format!("/aws/lambda/apifactory-{}-get", d.tenant),
    )];
    put_metrics(
        &d.proxy,
        &[
            // CloudWatch counted 10 requests in hour 0, the log 8: two more
            // without a key, one of them a 4xx (5 to the log's 4).
            ("AWS/ApiGateway", "Count", api.clone(), h0 + 60, 10.0),
            ("AWS/ApiGateway", "4XXError", api.clone(), h0 + 60, 5.0),
            ("AWS/ApiGateway", "5XXError", api.clone(), h0 + 60, 0.0),
            ("AWS/ApiGateway", "Latency", api.clone(), h0 + 60, 20.0),
            ("AWS/Lambda", "Invocations", function("get"), h0 + 60, 3.0),
            ("AWS/Lambda", "Errors", function("get"), h0 + 60, 1.0),
            ("AWS/Lambda", "Duration", function("get"), h0 + 60, 5.2),
            ("AWS/Lambda", "Duration", function("get"), h0 + 120, 5.2),
            (
                "AWS/Lambda",
                "Invocations",
                function("search"),
                h0 + 60,
                1.0,
            ),
            ("AWS/Lambda", "Duration", function("search"), h0 + 60, 2.0),
            (
                "AWS/DynamoDB",
                "ConsumedReadCapacityUnits",
                table.clone(),
                h0 + 60,
                8.0,
            ),
            (
                "AWS/DynamoDB",
                "ConsumedWriteCapacityUnits",
                table.clone(),
                h0 + 60,
                2.0,
            ),
            // Log ingestion: the access log's and get's.
            ("AWS/Logs", "IncomingBytes", access.clone(), h0 + 60, 1000.0),
            ("AWS/Logs", "IncomingBytes", get_log.clone(), h0 + 60, 500.0),
            (
                "AWS/Logs",
                "IncomingBytes",
                get_log.clone(),
                h0 + 3660,
                90.0,
            ),
            // Hour 1: the function only.
            ("AWS/Lambda", "Invocations", function("get"), h0 + 3660, 3.0),
            ("AWS/Lambda", "Errors", function("get"), h0 + 3660, 1.0),
            ("AWS/Lambda", "Duration", function("get"), h0 + 3660, 7.5),
            // Outside the range.
            ("AWS/Lambda", "Invocations", function("get"), h0 - 60, 50.0),
        ],
    )
    .await;
}

/// Latencies in milliseconds, as the figures record them (microseconds).
fn histogram(ms: &[u64]) -> Histogram {
    let mut h = Histogram::default();
    for m in ms {
        h.record(m * 1000);
    }
    h
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The figures [`write_traffic`] must come back as.
fn check_figures(g: &Gathered, tenant: &str, desk: &str, partner: &str, h0: i64) {
    let by: BTreeMap<(&str, i64), &Counts> = g
        .figures
        .iter()
        .map(|f| {
            assert_eq!(f.tenant, tenant);
            ((f.key_id.as_str(), f.start), &f.counts)
        })
        .collect();
    assert_eq!(
        by.keys().copied().collect::<Vec<_>>(),
        [("", h0), (desk, h0), (desk, h0 + 3600), (partner, h0)]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
        "one figure per key and hour with traffic"
    );

    // Hour 0. Function work (4 invocations, 1 error, 12.4 ms: billed 11 +
    // 2 ms, 1664 MB·ms at 128 MB; 8 read and 2 write units) is shared 4:1
    // by the requests that reached the function (front-desk 4, partner 1),
    // whole units to the largest remainders.
    let d0 = by[&(desk, h0)];
    assert_eq!(
        (d0.requests, d0.status_2xx, d0.status_4xx, d0.status_5xx),
        (4, 3, 1, 0)
    );
    assert_eq!((d0.throttled, d0.quota_refused, d0.forbidden), (0, 0, 0));
    assert_eq!(d0.bytes_out, 330);
    assert_eq!(d0.latency_us, histogram(&[10, 10, 10, 12]));
    assert_eq!(
        (
            d0.invocations,
            d0.function_errors,
            d0.duration_us,
            d0.billed_ms,
            d0.billed_mb_ms
        ),
        (3, 1, 9_920, 10, 1_331)
    );
    assert!(
        close(d0.read_units, 6.4) && close(d0.write_units, 1.6),
        "{d0:?}"
    );
    // 1500 bytes of logs shared by all requests: 4 of 10.
    assert_eq!(d0.log_bytes, 600);

    let p0 = by[&(partner, h0)];
    assert_eq!(
        (
            p0.requests,
            p0.status_2xx,
            p0.status_4xx,
            p0.throttled,
            p0.quota_refused
        ),
        (3, 1, 2, 1, 1),
        "the two 429s told apart by their response type"
    );
    assert_eq!(p0.bytes_out, 315);
    assert_eq!(
        (
            p0.invocations,
            p0.function_errors,
            p0.duration_us,
            p0.billed_ms,
            p0.billed_mb_ms
        ),
        (1, 0, 2_480, 3, 333)
    );
    assert!(
        close(p0.read_units, 1.6) && close(p0.write_units, 0.4),
        "{p0:?}"
    );
    assert_eq!(p0.log_bytes, 450);

    // Without a key: the forbidden request, and the two CloudWatch counted
    // that the log lacks (one 4xx), at the hour's average latency.
    let n0 = by[&("", h0)];
    assert_eq!(
        (n0.requests, n0.forbidden, n0.status_4xx, n0.status_2xx),
        (3, 1, 2, 1)
    );
    assert_eq!(n0.latency_us, histogram(&[2, 20, 20]));
    assert_eq!((n0.invocations, n0.log_bytes), (0, 450));

    // Hour 1: every bit of function work is front-desk's.
    let d1 = by[&(desk, h0 + 3600)];
    assert_eq!((d1.requests, d1.status_2xx, d1.status_5xx), (3, 2, 1));
    assert_eq!(
        (
            d1.invocations,
            d1.function_errors,
            d1.duration_us,
            d1.billed_ms,
            d1.billed_mb_ms
        ),
        (3, 1, 7_500, 8, 1_024)
    );
    assert_eq!(d1.log_bytes, 90);

    // The shares add up to the tenant's figures.
    let mut all = Counts::default();
    for c in by.values() {
        all.merge(c);
    }
    assert_eq!(
        (
            all.requests,
            all.invocations,
            all.billed_ms,
            all.billed_mb_ms
        ),
        (13, 7, 21, 1_664 + 1_024)
    );
    assert_eq!(all.log_bytes, 1_590);
    assert_eq!(g.arch.get(tenant).map(String::as_str), Some("x86_64"));
}

/// The first day of this week's quota period (WEEK, offset 0: Sunday).
fn week_start() -> String {
    let today = today();
    format_day(today - (today + 4).rem_euclid(7))
}

/// Sets each key's use of the quota, and checks gather's keys and quotas.
fn check_keys(g: &Gathered, tenant: &str, desk: &str, partner: &str) {
    let keys: Vec<KeyInfo> = g
        .keys
        .iter()
        .filter(|k| k.tenant == tenant)
        .cloned()
        .collect();
    let mut expected = vec![
        KeyInfo {
            tenant: tenant.to_owned(),
            key_id: desk.to_owned(),
            name: names::api_key(tenant, "front-desk"),
            client: "front-desk".into(),
            enabled: true,
        },
        KeyInfo {
            tenant: tenant.to_owned(),
            key_id: partner.to_owned(),
            name: String::new(),
            client: "partner".into(),
            enabled: true,
        },
    ];
    // A key made by `keys create` is named `<tenant>-<client>-<id>`.
    let made = keys
        .iter()
        .find(|k| k.key_id == partner)
        .expect("partner's key");
    assert!(made.name.starts_with(&names::api_key(tenant, "partner")));
    expected[1].name = made.name.clone();
    assert_eq!(keys, expected);

    let q = &g.quotas[desk];
    assert_eq!(
        (
            q.limit,
            q.period.as_str(),
            q.period_start.clone(),
            q.used,
            q.remaining
        ),
        (5_000, "WEEK", week_start(), 120, 4_880)
    );
    let q = &g.quotas[partner];
    assert_eq!((q.used, q.remaining), (30, 4_970));
}

async fn plan_id(d: &Deployed) -> String {
    apifactory::aws::usage_plan::find(&d.target, &d.tenant)
        .await
        .unwrap()
        .expect("the tenant's usage plan")
}

fn set_quota_use(d: &Deployed, plan: &str, desk: &str, partner: &str) {
    let today = today();
    d.proxy.set_usage(plan, desk, &format_day(today), 100);
    // Earlier this week (or today, on a Sunday) and in an earlier week.
    let week = parse_day(&week_start()).unwrap();
    d.proxy.set_usage(
        plan,
        desk,
        &format_day(week),
        20 + if week == today { 100 } else { 0 },
    );
    d.proxy.set_usage(plan, desk, &format_day(week - 1), 999);
    d.proxy.set_usage(plan, partner, &format_day(today), 30);
}

/// gather reports exactly what the log, the metrics and GetUsage hold,
/// though CloudWatch refused its first two GetMetricData calls with its
/// throttling error (the SDK retried them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gather_reports_the_log_the_metrics_and_the_quotas_exactly() {
    let d = deploy(vec!["GetMetricData", "GetMetricData"]).await;
    let (desk, partner) = two_keys(&d).await;
    let plan = plan_id(&d).await;
    set_quota_use(&d, &plan, &desk, &partner);
    let h0 = first_hour();
    write_traffic(&d, &desk, &partner, h0).await;

    let g = gather(
        &d.target,
        std::slice::from_ref(&d.tenant),
        h0,
        h0 + 7200,
        3600,
    )
    .await
    .unwrap();
    check_figures(&g, &d.tenant, &desk, &partner, h0);
    check_keys(&g, &d.tenant, &desk, &partner);

    let ops = d.proxy.stats().operations();
    let metric = ops["monitoring:GetMetricData"];
    assert_eq!(metric.refused, 2, "CloudWatch throttled two calls: {ops:?}");
    assert_eq!(
        metric.calls, 3,
        "and the SDK retried until one went through"
    );
    assert_eq!(ops["logs:FilterLogEvents"].calls, 1);
    assert_eq!(ops["apigateway:GetUsage"].calls, 1);

    // By day: the same traffic in one span.
    let day = h0.div_euclid(86_400) * 86_400;
    if h0 + 7200 <= day + 86_400 {
        let g = gather(
            &d.target,
            std::slice::from_ref(&d.tenant),
            h0,
            h0 + 7200,
            86_400,
        )
        .await
        .unwrap();
        let desk_day: Vec<_> = g.figures.iter().filter(|f| f.key_id == desk).collect();
        assert_eq!(desk_day.len(), 1);
        assert_eq!((desk_day[0].start, desk_day[0].counts.requests), (day, 7));
    }
    assert!(
        gather(&d.target, std::slice::from_ref(&d.tenant), h0, h0, 3600)
            .await
            .is_err(),
        "an empty range is refused"
    );
}

/// Pages of 2 log events, 3 metric points and 1 key give the same figures
/// as one page each, in more calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gather_reads_every_page() {
    let d = deploy(Vec::new()).await;
    let (desk, partner) = two_keys(&d).await;
    let plan = plan_id(&d).await;
    set_quota_use(&d, &plan, &desk, &partner);
    let h0 = first_hour();
    write_traffic(&d, &desk, &partner, h0).await;

    let before = d.proxy.stats().operations();
    let small = Pages {
        log_events: 2,
        metric_points: 3,
        usage_keys: 1,
    };
    let g = gather_paged(
        &d.target,
        std::slice::from_ref(&d.tenant),
        h0,
        h0 + 7200,
        3600,
        small,
    )
    .await
    .unwrap();
    check_figures(&g, &d.tenant, &desk, &partner, h0);
    check_keys(&g, &d.tenant, &desk, &partner);
    let after = d.proxy.stats().operations();
    let calls =
        |op: &str| after.get(op).map_or(0, |c| c.calls) - before.get(op).map_or(0, |c| c.calls);
    // 12 events in the range (11 lines and the one that is not JSON) in
    // pages of 2; 17 points in pages of 3; 2 keys in pages of 1.
    assert!(calls("logs:FilterLogEvents") >= 6, "{after:?}");
    assert!(calls("monitoring:GetMetricData") >= 6, "{after:?}");
    assert_eq!(calls("apigateway:GetUsage"), 2);
}

/// `keys rotate` on AWS: the new key starts with the quota the old one used
/// this period (UpdateUsage), so rotating is no way around a quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_keeps_the_quota_used() {
    let d = deploy(Vec::new()).await;
    let (desk, partner) = two_keys(&d).await;
    let plan = plan_id(&d).await;
    d.proxy.set_usage(&plan, &desk, &format_day(today()), 70);
    let _ = partner;

    let rotation = d
        .target
        .rotate(&d.tenant, "front-desk", Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(rotation.old_id, desk);
    let new = rotation.new.id;
    assert_eq!(
        d.proxy.stats().operations()["apigateway:UpdateUsage"].calls,
        1
    );

    // GetUsage, as any client reads it: the new key used 70 of 5000.
    let api = aws_sdk_apigateway::Client::new(&sdk_config_at(d.proxy.url()).await);
    let day = format_day(today());
    let usage = api
        .get_usage()
        .usage_plan_id(&plan)
        .key_id(&new)
        .start_date(week_start())
        .end_date(&day)
        .send()
        .await
        .unwrap();
    let log = &usage.items().unwrap()[&new];
    let used: i64 = log.iter().map(|d| d[0]).sum();
    assert_eq!((used, log.last().unwrap()[1]), (70, 4_930));

    // And gather says the same, the old key's own use unchanged.
    let h0 = first_hour();
    let g = gather(
        &d.target,
        std::slice::from_ref(&d.tenant),
        h0,
        h0 + 3600,
        3600,
    )
    .await
    .unwrap();
    let (q_new, q_old) = (&g.quotas[&new], &g.quotas[&desk]);
    assert_eq!((q_new.used, q_new.remaining), (70, 4_930));
    assert_eq!((q_old.used, q_old.remaining), (70, 4_930));
}
