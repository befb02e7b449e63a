//! Stamps on AWS: after an apply, a run with no change reads the
//! account-wide lists only (no per-tenant read, however many tenants); a
//! resource changed by hand is seen only with `--refresh`, which repairs
//! it; a changed tenant file still plans exactly its change.

use std::collections::BTreeMap;
use std::process::Output;

use apifactory_tests::fault_proxy::{FaultConfig, FaultProxy};
use apifactory_tests::{bin_path, realistic_endpoint, repo_root, sdk_config};
use aws_sdk_apigateway::types::{Op, PatchOperation};
use serde_json::Value;

use apifactory_tests::aws::rest_apis;
use apifactory_tests::fleet::{Fleet, text};

/// The reads a run with nothing to do may make: one page (or a few) of
/// each account-wide list, whatever the number of tenants.
/// The account-wide calls a run makes whatever the fleet's size: the lists,
/// and IAM's account summary for the roles quota.
const LISTS: [&str; 9] = [
    "sts:GetCallerIdentity",
    "iam:GetAccountSummary",
    "dynamodb:ListTables",
    "iam:ListRoles",
    "lambda:ListFunctions",
    "apigateway:GetRestApis",
    "apigateway:GetUsagePlans",
    "apigateway:GetApiKeys",
    "apigateway:GetDomainNames",
];

/// `apifactory <verb> --target aws` on these tenants through `endpoint`.
async fn run(
    fleet: &Fleet,
    verb: &str,
    tenants: &[String],
    extra: &[&str],
    endpoint: &str,
) -> Output {
    let out = tokio::process::Command::new(bin_path("apifactory"))
        .arg(verb)
        .args(["--target", "aws", "--tenant", &tenants.join(",")])
        .args(extra)
        .arg("--tenants")
        .arg(fleet.dir.path())
        .arg("--artifact")
        .arg(fleet.artifact)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("APIFACTORY_PACE", "off")
        .current_dir(repo_root())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), out)
        .await
        .expect("apifactory finishes within 180 s")
        .expect("apifactory runs");
    assert!(
        out.status.success(),
        "{verb} {extra:?}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// The calls by operation a run made through the proxy.
async fn counted(
    proxy: &FaultProxy,
    f: impl AsyncFnOnce() -> Output,
) -> (Output, BTreeMap<String, u64>) {
    let before = proxy.stats().operations();
    let out = f().await;
    let after = proxy.stats().operations();
    let calls = after
        .into_iter()
        .map(|(op, c)| {
            let was = before.get(&op).map_or(0, |b| b.calls);
            (op, c.calls - was)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    (out, calls)
}

fn kinds(plan: &Value) -> Vec<String> {
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_no_change_apply_reads_the_lists_only_and_refresh_reads_everything() {
    // acme and bookshop have custom domains (bookshop with an alias
    // record): their certificate, zone and mapping are not read again
    // either.
    let fleet = Fleet::new(&["acme", "bookshop", "clinic", "events"]).await;
    let proxy = FaultProxy::start(realistic_endpoint(), FaultConfig::with_rate(0.0)).await;
    let all = fleet.all_ids();
    let two = vec![fleet.id("acme").to_owned(), fleet.id("clinic").to_owned()];
    run(&fleet, "apply", &all, &["--yes"], proxy.url()).await;

    let (out, few) = counted(&proxy, async || {
        run(&fleet, "apply", &two, &["--yes"], proxy.url()).await
    })
    .await;
    assert!(
        text(&out.stdout).contains("No changes."),
        "{}",
        text(&out.stdout)
    );
    let (out, many) = counted(&proxy, async || {
        run(&fleet, "apply", &all, &["--yes"], proxy.url()).await
    })
    .await;
    assert!(
        text(&out.stdout).contains("No changes."),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("apply made 0 mutating call(s) and 0 read(s)"),
        "{}",
        text(&out.stderr)
    );
    for calls in [&few, &many] {
        let others: Vec<&String> = calls
            .keys()
            .filter(|op| !LISTS.contains(&op.as_str()))
            .collect();
        assert!(others.is_empty(), "reads beyond the lists: {calls:?}");
    }
    // Twice the tenants, the same lists: other tests on this moto may add
    // a page between the two runs, never one read per tenant.
    let reads = |calls: &BTreeMap<String, u64>| calls.values().sum::<u64>();
    assert!(
        reads(&many) <= reads(&few) + 2,
        "2 tenants: {few:?}\n4 tenants: {many:?}"
    );
    eprintln!(
        "no-change apply: {} reads for 2 tenants, {} for 4",
        reads(&few),
        reads(&many)
    );

    // The stage throttled by hand: the lists do not show it, so a plain
    // plan finds nothing; --refresh reads the stage and repairs it.
    let acme = fleet.id("acme").to_owned();
    let only_acme = vec![acme.clone()];
    let api = aws_sdk_apigateway::Client::new(&sdk_config().await);
    let api_id = rest_apis(&api, &acme).await[0].id().unwrap().to_owned();
    let op = |path: &str, value: &str| {
        PatchOperation::builder()
            .op(Op::Replace)
            .path(path)
            .value(value)
            .build()
    };
    api.update_stage()
        .rest_api_id(&api_id)
        .stage_name("prod")
        .patch_operations(op("/*/*/throttling/rateLimit", "7"))
        .patch_operations(op("/*/*/throttling/burstLimit", "9"))
        .send()
        .await
        .unwrap();
    let (out, calls) = counted(&proxy, async || {
        run(&fleet, "plan", &only_acme, &[], proxy.url()).await
    })
    .await;
    assert!(
        text(&out.stdout).contains("No changes."),
        "{}",
        text(&out.stdout)
    );
    assert!(!calls.contains_key("apigateway:GetStages"), "{calls:?}");
    let (out, calls) = counted(&proxy, async || {
        run(&fleet, "plan", &only_acme, &["--refresh"], proxy.url()).await
    })
    .await;
    let shown = text(&out.stdout);
    assert!(
        shown.contains("~ stage      prod  (burst: 9 -> null, rate: 7.0 -> null)"),
        "{shown}"
    );
    assert!(calls.contains_key("apigateway:GetStages"), "{calls:?}");
    assert!(calls.contains_key("acm:DescribeCertificate"), "{calls:?}");
    run(
        &fleet,
        "apply",
        &only_acme,
        &["--refresh", "--yes"],
        proxy.url(),
    )
    .await;
    let stage = api
        .get_stage()
        .rest_api_id(&api_id)
        .stage_name("prod")
        .send()
        .await
        .unwrap();
    let throttled = stage
        .method_settings()
        .and_then(|m| m.get("*/*"))
        .map(|s| (s.throttling_rate_limit(), s.throttling_burst_limit()));
    assert!(
        throttled.is_none_or(|(rate, burst)| rate < 0.0 || burst < 0),
        "{throttled:?}"
    );
    for refresh in [&[][..], &["--refresh"][..]] {
        let out = run(&fleet, "plan", &only_acme, refresh, proxy.url()).await;
        assert!(
            text(&out.stdout).contains("No changes."),
            "{refresh:?}: {}",
            text(&out.stdout)
        );
    }

    // A changed tenant file: exactly its change, then its stamp.
    fleet.edit("acme", "rate = 50", "rate = 60");
    let out = run(&fleet, "plan", &only_acme, &["--json"], proxy.url()).await;
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(kinds(&plan), ["usage_plan", "stamp"], "{plan}");
    assert_eq!(plan["actions"][0]["fields"][0]["field"], "rate", "{plan}");
    run(&fleet, "apply", &only_acme, &["--yes"], proxy.url()).await;
    let (out, calls) = counted(&proxy, async || {
        run(&fleet, "plan", &all, &[], proxy.url()).await
    })
    .await;
    assert!(
        text(&out.stdout).contains("No changes."),
        "{}",
        text(&out.stdout)
    );
    assert!(
        calls.keys().all(|op| LISTS.contains(&op.as_str())),
        "{calls:?}"
    );
}
