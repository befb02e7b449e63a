//! The AWS target's DynamoDB tables as real DynamoDB behaves, modelled by
//! the fault proxy on top of moto (`FaultConfig::pitr_window`,
//! `FaultConfig::gsi_backfill`): the real `apifactory` binary talks to moto
//! through the proxy; checks read moto directly or through the proxy, as
//! each says.
//!
//! - A new table's point-in-time recovery cannot be turned on for a while
//!   after CreateTable: the first apply of a tenant retries through that
//!   window; past its bound, the apply still succeeds, says so, and the
//!   next apply turns it on.
//! - A new index on a live table backfills: the tenant's functions keep
//!   their configuration until it is ACTIVE, the plan shows the index as
//!   backfilling, and a later apply (or `apply --wait`, in one run) moves
//!   them.

use std::time::Duration;

use apifactory_tests::fault_proxy::{FaultConfig, FaultProxy};
use apifactory_tests::{moto_url, plain_endpoint, sdk_config, sdk_config_at};
use runtime::names;
use serde_json::{Value, json};

use apifactory_tests::aws::small_artifact;
use apifactory_tests::fleet::{Fleet, point_in_time_recovery, text};

async fn proxy(config: FaultConfig) -> FaultProxy {
    FaultProxy::start(&moto_url(), config).await
}

/// `apifactory plan --json` through `endpoint`.
async fn plan_json(fleet: &Fleet, endpoint: &str) -> Value {
    let out = fleet
        .command("plan", &["--json"], endpoint, "off")
        .output()
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The kinds of a JSON plan's actions, in order, the stamp's aside.
fn kinds(plan: &Value) -> Vec<String> {
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_owned())
        .filter(|k| k != "stamp")
        .collect()
}

/// `apply` on moto with no model of AWS (`plain_endpoint`): the tenant as
/// it is now.
async fn apply_on_moto(fleet: &Fleet) {
    let out = fleet
        .command("apply", &[], plain_endpoint(), "off")
        .output()
        .await;
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Makes `practitioner` an indexed field of the clinic copy.
fn index_practitioner(fleet: &Fleet) {
    let path = fleet.path("clinic");
    let before = std::fs::read_to_string(&path).unwrap();
    let after = before.replace(
        "practitioner = { type = \"string\", max_length = 80 }",
        "practitioner = { type = \"string\", max_length = 80, index = true }",
    );
    assert_ne!(before, after, "the clinic file has the practitioner field");
    std::fs::write(&path, after).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_apply_retries_through_the_point_in_time_recovery_window() {
    let fleet = Fleet::new(&["clinic"])
        .await
        .with_artifact(small_artifact());
    let proxy = proxy(FaultConfig {
        pitr_window: Some(Duration::from_secs(3)),
        ..FaultConfig::with_rate(0.0)
    })
    .await;
    let out = fleet
        .command("apply", &[], proxy.url(), "off")
        .output()
        .await;
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let calls = proxy.stats().operations()["dynamodb:UpdateContinuousBackups"].calls;
    assert!(
        calls >= 2,
        "the window was met and waited out: {calls} call(s)"
    );
    assert!(!text(&out.stderr).contains("not available yet"));

    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = names::table(fleet.id("clinic"));
    assert_eq!(
        point_in_time_recovery(&ddb, &table).await.as_deref(),
        Some("ENABLED")
    );
    assert_eq!(
        plan_json(&fleet, plain_endpoint()).await["actions"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_longer_than_the_bound_leaves_recovery_to_the_next_apply() {
    let fleet = Fleet::new(&["clinic"])
        .await
        .with_artifact(small_artifact());
    let proxy = proxy(FaultConfig {
        pitr_window: Some(Duration::from_secs(3600)),
        ..FaultConfig::with_rate(0.0)
    })
    .await;
    let mut apply = fleet.command("apply", &[], proxy.url(), "off");
    apply.0.env("APIFACTORY_PITR_WAIT", "2");
    let out = apply.output().await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("point-in-time recovery is not available yet")
            && stderr.contains("the next apply turns it on"),
        "{stderr}"
    );

    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = names::table(fleet.id("clinic"));
    assert_ne!(
        point_in_time_recovery(&ddb, &table).await.as_deref(),
        Some("ENABLED")
    );
    // The next plan has exactly that left to do.
    let p = plan_json(&fleet, plain_endpoint()).await;
    assert_eq!(kinds(&p), ["table"], "{p}");
    assert_eq!(
        p["actions"][0]["fields"][0]["field"],
        "point_in_time_recovery"
    );
    apply_on_moto(&fleet).await;
    assert_eq!(
        point_in_time_recovery(&ddb, &table).await.as_deref(),
        Some("ENABLED")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_keep_their_configuration_while_a_new_index_backfills() {
    let fleet = Fleet::new(&["clinic"])
        .await
        .with_artifact(small_artifact());
    apply_on_moto(&fleet).await;
    index_practitioner(&fleet);
    let functions = fleet.tenant("clinic").functions.operations.len();
    let proxy = proxy(FaultConfig {
        gsi_backfill: Some(Duration::from_secs(3600)),
        ..FaultConfig::with_rate(0.0)
    })
    .await;

    // Planned: the index is created, the function updates wait for it.
    let p = plan_json(&fleet, proxy.url()).await;
    assert!(kinds(&p).contains(&"table".to_owned()), "{p}");
    assert!(!kinds(&p).contains(&"function".to_owned()), "{p}");
    assert_eq!(p["waiting"][0]["to_create"], json!(["practitioner"]), "{p}");
    assert_eq!(p["waiting"][0]["held"].as_array().unwrap().len(), functions);

    let out = fleet
        .command("apply", &[], proxy.url(), "off")
        .output()
        .await;
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // Backfilling: nothing to do but wait, and the plan says so.
    let p = plan_json(&fleet, proxy.url()).await;
    assert_eq!(p["actions"], json!([]), "{p}");
    assert_eq!(
        p["waiting"][0]["backfilling"],
        json!(["practitioner"]),
        "{p}"
    );
    let shown = fleet
        .command("plan", &[], proxy.url(), "off")
        .output()
        .await;
    let shown = text(&shown.stdout);
    assert!(
        shown.contains("  ~ index      by_practitioner (backfilling)"),
        "{shown}"
    );
    assert!(shown.contains("(update held back)"), "{shown}");
    // moto itself has the index ACTIVE and the functions as they were:
    // seen from there, only their updates are left.
    let p = plan_json(&fleet, plain_endpoint()).await;
    assert_eq!(kinds(&p), vec!["function"; functions], "{p}");

    // The model: the index cannot be read, and no second index can start.
    let through = aws_sdk_dynamodb::Client::new(&sdk_config_at(proxy.url()).await);
    let table = names::table(fleet.id("clinic"));
    let query = through
        .query()
        .table_name(&table)
        .index_name(names::index("practitioner"))
        .key_condition_expression("practitioner = :p")
        .expression_attribute_values(
            ":p",
            aws_sdk_dynamodb::types::AttributeValue::S("Dr A".into()),
        )
        .send()
        .await
        .unwrap_err();
    let query = runtime::dynamo::describe(&query);
    assert!(
        query.contains("ValidationException") && query.contains("backfilling"),
        "{query}"
    );
    let second = through
        .update_table()
        .table_name(&table)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("status")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .global_secondary_index_updates(
            aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                .create(
                    aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
                        .index_name(names::index("status"))
                        .key_schema(
                            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                                .attribute_name("status")
                                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                                .build()
                                .unwrap(),
                        )
                        .projection(
                            aws_sdk_dynamodb::types::Projection::builder()
                                .projection_type(aws_sdk_dynamodb::types::ProjectionType::All)
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    let second = runtime::dynamo::describe(&second);
    assert!(second.contains("LimitExceededException"), "{second}");

    // The backfill ends: the next apply moves the functions.
    proxy.end_backfills();
    let p = plan_json(&fleet, proxy.url()).await;
    assert_eq!(p["waiting"], json!([]), "{p}");
    assert_eq!(kinds(&p), vec!["function"; functions], "{p}");
    let out = fleet
        .command("apply", &[], proxy.url(), "off")
        .output()
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        plan_json(&fleet, plain_endpoint()).await["actions"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_wait_waits_for_the_backfill_and_finishes_in_one_run() {
    let fleet = Fleet::new(&["clinic"])
        .await
        .with_artifact(small_artifact());
    apply_on_moto(&fleet).await;
    index_practitioner(&fleet);
    let proxy = proxy(FaultConfig {
        gsi_backfill: Some(Duration::from_secs(3600)),
        ..FaultConfig::with_rate(0.0)
    })
    .await;
    let child = fleet
        .command("apply", &["--wait"], proxy.url(), "off")
        .0
        .spawn()
        .unwrap();
    // The backfill ends once apply has made the index and polled it
    // while it backfills (a guard against a hang, not a timing).
    let calls = |op: &str| proxy.stats().operations().get(op).map_or(0, |c| c.calls);
    let guard = std::time::Instant::now() + Duration::from_secs(300);
    let mut described_at_update = None;
    loop {
        assert!(
            std::time::Instant::now() < guard,
            "apply --wait never polled the backfilling index"
        );
        if described_at_update.is_none() && calls("dynamodb:UpdateTable") > 0 {
            described_at_update = Some(calls("dynamodb:DescribeTable"));
        }
        if described_at_update.is_some_and(|d| calls("dynamodb:DescribeTable") >= d + 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.end_backfills();
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("apply --wait ends once the index is ACTIVE")
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", text(&out.stdout));
    let table = names::table(fleet.id("clinic"));
    assert!(
        stderr.contains(&format!(
            "waiting for index by_practitioner of table {table} to backfill"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("every index of table {table} is ACTIVE")),
        "{stderr}"
    );
    // Nothing left, seen through the model or from moto.
    let p = plan_json(&fleet, proxy.url()).await;
    assert_eq!((&p["actions"], &p["waiting"]), (&json!([]), &json!([])));
    assert_eq!(
        plan_json(&fleet, plain_endpoint()).await["actions"],
        json!([])
    );
}
