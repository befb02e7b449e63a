//! A tenant's `[[alarms]]` on the AWS target, through the real CLI: one
//! CloudWatch alarm per rule with a metric (not `quota_share`), planned
//! like every other resource; a no-change plan has nothing to do, a
//! changed threshold updates the alarm, a removed rule deletes it, and a
//! destroy takes the rest. moto answers CloudWatch in AWS JSON only, so
//! the CLI and the checks reach it through a fault proxy that carries the
//! SDK's RPC v2 CBOR (tests/support/cbor.rs).

use std::path::Path;
use std::process::Command;

use apifactory_tests::aws::small_artifact;
use apifactory_tests::fault_proxy::{FaultConfig, FaultProxy};
use apifactory_tests::{bin_path, moto_url, repo_root, sdk_config_at, unique_name};
use aws_sdk_cloudwatch::types::{MetricAlarm, Statistic};
use serde_json::Value;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ops";

fn tenant_text(alarms: &str) -> String {
    let clinic = std::fs::read_to_string(repo_root().join("tenants/clinic.toml")).unwrap();
    format!("{clinic}\n{alarms}")
}

/// `apifactory <args> --target aws`: success, stdout, and both outputs.
fn run(dir: &Path, endpoint: &str, id: &str, args: &[&str]) -> (bool, String, String) {
    let mut c = Command::new(bin_path("apifactory"));
    c.arg("--tenants")
        .arg(dir)
        .args(args)
        .args(["--target", "aws", "--endpoint-url", endpoint])
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("APIFACTORY_PACE", "off")
        .current_dir(repo_root());
    if matches!(args.first(), Some(&"plan" | &"apply")) {
        c.arg("--artifact")
            .arg(small_artifact())
            .args(["--tenant", id]);
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let both = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), stdout, both)
}

async fn alarms(cw: &aws_sdk_cloudwatch::Client, id: &str) -> Vec<MetricAlarm> {
    cw.describe_alarms()
        .alarm_name_prefix(format!("apifactory-{id}-"))
        .send()
        .await
        .unwrap()
        .metric_alarms()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn alarms_are_planned_applied_changed_and_destroyed() {
    let proxy = FaultProxy::start(&moto_url(), FaultConfig::with_rate(0.0)).await;
    let endpoint = proxy.url().to_owned();
    let cw = aws_sdk_cloudwatch::Client::new(&sdk_config_at(&endpoint).await);
    let dir = tempfile::tempdir().unwrap();
    let id = unique_name("alarms");
    let file = dir.path().join(format!("{id}.toml"));
    std::fs::write(
        &file,
        tenant_text(&format!(
            "[[alarms]]\nname = \"errors\"\nmetric = \"5xx_rate\"\nthreshold = 0.05\nnotify = [\"{TOPIC}\"]\n\
             \n[[alarms]]\nname = \"slow\"\nmetric = \"p99_latency_ms\"\nthreshold = 800\nminutes = 10\n\
             \n[[alarms]]\nname = \"quota\"\nmetric = \"quota_share\"\nthreshold = 0.8\n"
        )),
    )
    .unwrap();

    let (ok, _, out) = run(dir.path(), &endpoint, &id, &["apply", "--yes"]);
    assert!(ok, "{out}");
    let found = alarms(&cw, &id).await;
    let mut names: Vec<&str> = found.iter().filter_map(|a| a.alarm_name()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            format!("apifactory-{id}-errors"),
            format!("apifactory-{id}-slow")
        ],
        "one alarm per rule with a metric; quota_share has none"
    );
    let errors = found
        .iter()
        .find(|a| a.alarm_name().is_some_and(|n| n.ends_with("-errors")))
        .unwrap();
    assert_eq!(errors.namespace(), Some("AWS/ApiGateway"));
    assert_eq!(errors.metric_name(), Some("5XXError"));
    assert_eq!(errors.statistic(), Some(&Statistic::Average));
    assert_eq!(errors.threshold(), Some(0.05));
    assert_eq!(errors.period(), Some(300));
    assert_eq!(errors.evaluation_periods(), Some(1));
    assert_eq!(errors.alarm_actions(), [TOPIC]);
    assert_eq!(errors.ok_actions(), [TOPIC]);
    let dims: Vec<(&str, &str)> = errors
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap(), d.value().unwrap()))
        .collect();
    let api = format!("apifactory-{id}");
    assert!(
        dims.contains(&("ApiName", api.as_str())) && dims.contains(&("Stage", "prod")),
        "{dims:?}"
    );
    let slow = found
        .iter()
        .find(|a| a.alarm_name().is_some_and(|n| n.ends_with("-slow")))
        .unwrap();
    assert_eq!(
        (slow.metric_name(), slow.extended_statistic(), slow.period()),
        (Some("Latency"), Some("p99"), Some(600))
    );

    // Nothing to do when nothing changed, the alarms read back included
    // (`--refresh` trusts no stamp).
    for refresh in [false, true] {
        let mut args = vec!["plan", "--json"];
        if refresh {
            args.push("--refresh");
        }
        let (ok, stdout, out) = run(dir.path(), &endpoint, &id, &args);
        assert!(ok, "{out}");
        let plan: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(
            plan["actions"],
            Value::Array(Vec::new()),
            "refresh {refresh}: {out}"
        );
    }

    // A changed threshold updates the alarm; a removed rule deletes it.
    std::fs::write(
        &file,
        tenant_text(&format!(
            "[[alarms]]\nname = \"errors\"\nmetric = \"5xx_rate\"\nthreshold = 0.1\nnotify = [\"{TOPIC}\"]\n\
             \n[[alarms]]\nname = \"quota\"\nmetric = \"quota_share\"\nthreshold = 0.8\n"
        )),
    )
    .unwrap();
    let (ok, _, out) = run(dir.path(), &endpoint, &id, &["apply", "--yes"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "~ alarm      apifactory-{id}-errors  (threshold: 0.05 -> 0.1)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("- alarm      apifactory-{id}-slow\n")),
        "{out}"
    );
    let found = alarms(&cw, &id).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].threshold(), Some(0.1));

    // `usage --target aws` shows each alarm's state.
    let (ok, stdout, out) = run(
        dir.path(),
        &endpoint,
        &id,
        &["usage", "--json", "--tenant", &id],
    );
    assert!(ok, "{out}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
    let states = &report["tenants"][0]["alarms"];
    assert_eq!(states[0]["name"], "errors", "{report}");
    assert!(states[0]["state"].is_string(), "{report}");
    // quota_share has no CloudWatch alarm: usage evaluates it on GetUsage
    // (no key has used any of its quota).
    assert_eq!(
        (&states[1]["name"], &states[1]["state"], &states[1]["value"]),
        (&Value::from("quota"), &Value::from("OK"), &Value::from(0.0)),
        "{report}"
    );

    let (ok, _, out) = run(
        dir.path(),
        &endpoint,
        &id,
        &["destroy", "--tenant", &id, "--yes"],
    );
    assert!(ok, "{out}");
    assert!(
        alarms(&cw, &id).await.is_empty(),
        "destroy deletes the alarms"
    );
}
