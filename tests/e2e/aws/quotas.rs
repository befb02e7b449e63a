//! AWS's resource quotas, counted by `plan` from what the whole account
//! holds (apifactory's resources and everyone else's), with limits lowered
//! by `APIFACTORY_TEST_QUOTAS` (the test-only override) so that one tenant
//! reaches them: near a limit `plan` warns, over a hard one `apply` is
//! refused before its first write, and `plan --json` carries the counts.
//!
//! Counting the whole account needs an account no other test writes to at
//! the same time: moto keeps one per access key (an access key made in an
//! account, with its `x-moto-account-id` header, acts in that account), so
//! the test makes its own.

use std::process::Output;

use apifactory_tests::{REGION, moto_url, realistic_endpoint};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_apigateway::types::{EndpointConfiguration, EndpointType};
use aws_sdk_iam::config::Credentials;
use serde_json::Value;

use apifactory::aws::stage::LOGGING_ROLE;

use apifactory_tests::fleet::{Fleet, text};

/// The AWS docs page the API Gateway REST quotas come from.
const REST_PAGE: &str = "https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-execution-service-limits-table.html";

/// A moto account of this test's own, and an access key acting in it.
struct Account {
    id: String,
    key: String,
    secret: String,
}

impl Account {
    async fn new() -> Account {
        let (id, key, secret) = apifactory_tests::aws::own_account(7, "quota-test").await;
        Account { id, key, secret }
    }

    /// Straight to moto (the ground truth), as this account.
    async fn sdk(&self) -> SdkConfig {
        config(&self.key, &self.secret, &moto_url()).await
    }

    /// `apifactory <verb> --target aws` in this account, through the
    /// realism layer, with these test quotas.
    async fn run(&self, fleet: &Fleet, verb: &str, extra: &[&str], quotas: &str) -> Output {
        let mut c = fleet.command(verb, extra, realistic_endpoint(), "off");
        c.0.env("AWS_ACCESS_KEY_ID", &self.key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("APIFACTORY_TEST_QUOTAS", quotas);
        c.output().await
    }
}

async fn config(key: &str, secret: &str, endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(key, secret, None, None, "quota-test"))
        .load()
        .await
}

/// What the account holds, by name: REST APIs, usage plans, keys, roles,
/// tables, functions.
async fn holdings(sdk: &SdkConfig) -> [Vec<String>; 6] {
    let apigw = aws_sdk_apigateway::Client::new(sdk);
    let mut apis: Vec<String> = apigw
        .get_rest_apis()
        .limit(500)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter_map(|a| a.name().map(str::to_owned))
        .collect();
    let mut plans: Vec<String> = apigw
        .get_usage_plans()
        .limit(500)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter_map(|p| p.name().map(str::to_owned))
        .collect();
    let mut keys: Vec<String> = apigw
        .get_api_keys()
        .limit(500)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter_map(|k| k.name().map(str::to_owned))
        .collect();
    let mut roles: Vec<String> = aws_sdk_iam::Client::new(sdk)
        .list_roles()
        .send()
        .await
        .unwrap()
        .roles()
        .iter()
        .map(|r| r.role_name().to_owned())
        .collect();
    let tables = aws_sdk_dynamodb::Client::new(sdk)
        .list_tables()
        .send()
        .await
        .unwrap()
        .table_names()
        .to_vec();
    let functions = aws_sdk_lambda::Client::new(sdk)
        .list_functions()
        .send()
        .await
        .unwrap()
        .functions()
        .iter()
        .filter_map(|f| f.function_name().map(str::to_owned))
        .collect();
    for v in [&mut apis, &mut plans, &mut keys, &mut roles] {
        v.sort();
    }
    [apis, plans, keys, roles, tables, functions]
}

/// Another application's resources in the account: they count against
/// the same quotas.
async fn not_ours(sdk: &SdkConfig) {
    let apigw = aws_sdk_apigateway::Client::new(sdk);
    for (name, kind) in [
        ("other-one", EndpointType::Regional),
        ("other-two", EndpointType::Regional),
        // Edge-optimized APIs have a quota of their own.
        ("other-edge", EndpointType::Edge),
    ] {
        apigw
            .create_rest_api()
            .name(name)
            .endpoint_configuration(EndpointConfiguration::builder().types(kind).build())
            .send()
            .await
            .unwrap();
    }
    apigw
        .create_usage_plan()
        .name("other-plan")
        .send()
        .await
        .unwrap();
    for name in ["other-key-1", "other-key-2"] {
        apigw
            .create_api_key()
            .name(name)
            .enabled(true)
            .send()
            .await
            .unwrap();
    }
    aws_sdk_iam::Client::new(sdk)
        .create_role()
        .role_name("other-role")
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .unwrap();
}

/// The plan's check of one quota (the first, for per-resource ones).
fn check<'a>(plan: &'a Value, quota: &str) -> &'a Value {
    plan["quotas"]["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no quota checks in {plan:#}"))
        .iter()
        .find(|c| c["quota"] == quota)
        .unwrap_or_else(|| panic!("no {quota} check in {plan:#}"))
}

/// (existing, creates, deletes, projected, limit, status) of a check.
fn counted(c: &Value) -> (u64, u64, u64, u64, u64, &str) {
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k} in {c}"));
    (
        n("existing"),
        n("creates"),
        n("deletes"),
        n("projected"),
        n("limit"),
        c["status"].as_str().unwrap(),
    )
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

#[tokio::test]
async fn plan_counts_the_whole_account_warns_near_a_limit_and_apply_over_a_hard_one_writes_nothing()
{
    let account = Account::new().await;
    let sdk = account.sdk().await;
    not_ours(&sdk).await;
    let before = holdings(&sdk).await;
    assert_eq!(before[0].len(), 3, "{before:?}");
    // clinic: one REST API, usage plan, key and role, two indexed fields,
    // no custom domain.
    let fleet = Fleet::new(&["clinic"]).await;
    let table = format!("apifactory-{}", fleet.id("clinic"));

    // Near two limits: 2 + 1 = 3 of 3 REST APIs, 2 of 2 indexes.
    let near = "rest_apis=3,indexes_per_table=2";
    let plan = account.run(&fleet, "plan", &[], near).await;
    let shown = text(&plan.stdout);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let lines = [
        format!(
            "  ! regional REST APIs per region: 2 existing + 1 to create = 3 of 3, 100 %: within \
             10 % of the limit 3 (set by APIFACTORY_TEST_QUOTAS, for tests only; AWS does not \
             raise it; {REST_PAGE})"
        ),
        format!(
            "  ! global secondary indexes per table ({table}): 0 existing + 2 to create = 2 of 2, \
             100 %: within 10 % of the limit 2"
        ),
    ];
    for line in &lines {
        assert!(shown.contains(line.as_str()), "{line}\nnot in:\n{shown}");
    }
    // Keys: 2 + 1 of 10,000, far from it: no line.
    assert!(!shown.contains("API keys per region"), "{shown}");
    assert!(!shown.contains("REFUSED"), "{shown}");

    // The counts in --json: everything in the account, apifactory's or
    // not (the edge-optimized API aside).
    let p = json(&account.run(&fleet, "plan", &["--json"], near).await);
    assert_eq!(counted(check(&p, "rest_apis")), (2, 1, 0, 3, 3, "near"));
    assert_eq!(check(&p, "rest_apis")["limit_from"], "test_override");
    assert_eq!(check(&p, "rest_apis")["hard"], true);
    assert_eq!(counted(check(&p, "usage_plans")), (1, 1, 0, 2, 300, "ok"));
    assert_eq!(counted(check(&p, "api_keys")), (2, 1, 0, 3, 10_000, "ok"));
    assert_eq!(counted(check(&p, "domain_names")), (0, 0, 0, 0, 120, "ok"));
    // IAM's own count and quota (GetAccountSummary): the account's
    // quota is what AWS enforces, so it is hard.
    assert_eq!(counted(check(&p, "roles")), (1, 1, 0, 2, 1_000, "ok"));
    assert_eq!(check(&p, "roles")["limit_from"], "account");
    assert_eq!(check(&p, "roles")["hard"], true);
    let indexes = check(&p, "indexes_per_table");
    assert_eq!(indexes["of"], table.as_str());
    assert_eq!(counted(indexes), (0, 2, 0, 2, 2, "near"));
    assert_eq!(
        counted(check(&p, "usage_plans_per_key")),
        (0, 1, 0, 1, 10, "ok")
    );
    assert!(p["quotas"].get("not_counted").is_none(), "{p:#}");

    // One REST API over a limit AWS never raises: refused, nothing made.
    let apply = account.run(&fleet, "apply", &[], "rest_apis=2").await;
    let err = text(&apply.stderr);
    assert!(!apply.status.success(), "{err}");
    let refusal = format!(
        "error: the plan would cross 1 quota(s) AWS enforces, so nothing was applied: regional \
         REST APIs per region: 2 existing + 1 to create = 3, over the limit 2 (set by \
         APIFACTORY_TEST_QUOTAS, for tests only; AWS does not raise it; {REST_PAGE})"
    );
    assert!(err.contains(&refusal), "{refusal}\nnot in:\n{err}");
    let shown = text(&apply.stdout);
    assert!(
        shown.contains(
            "  x regional REST APIs per region: 2 existing + 1 to create = 3: over the limit 2"
        ),
        "{shown}"
    );
    assert!(shown.contains("REFUSED, apply changes nothing"), "{shown}");
    assert_eq!(holdings(&sdk).await, before, "apply wrote nothing");
    // An adjustable default crossed (usage plans, 1 + 1 of 1) only warns;
    // the hard one still refuses.
    let apply = account
        .run(&fleet, "apply", &["--json"], "rest_apis=2,usage_plans=1")
        .await;
    assert!(!apply.status.success());
    assert!(
        text(&apply.stderr).contains("the plan would cross 1 quota(s)"),
        "{}",
        text(&apply.stderr)
    );
    assert_eq!(holdings(&sdk).await, before, "apply wrote nothing");

    // Within the limits (a warning is no refusal): applied, and what it
    // made counts the next time.
    let apply = account.run(&fleet, "apply", &[], near).await;
    assert!(apply.status.success(), "{}", text(&apply.stderr));
    let after = holdings(&sdk).await;
    assert_eq!(after[0].len(), 4, "{after:?}");
    assert_eq!(after[4], vec![table.clone()]);
    let p = json(&account.run(&fleet, "plan", &["--json"], near).await);
    assert_eq!(p["actions"], serde_json::json!([]), "{p:#}");
    assert_eq!(counted(check(&p, "rest_apis")), (3, 0, 0, 3, 3, "near"));
    assert_eq!(counted(check(&p, "usage_plans")), (2, 0, 0, 2, 300, "ok"));
    assert_eq!(counted(check(&p, "api_keys")), (3, 0, 0, 3, 10_000, "ok"));
    // The tenant's role, and the account's API Gateway CloudWatch role,
    // which the first stage of an account makes and no plan shows (so a
    // plan on a fresh account counts one role short).
    assert!(after[3].iter().any(|r| r == LOGGING_ROLE), "{:?}", after[3]);
    assert_eq!(counted(check(&p, "roles")), (3, 0, 0, 3, 1_000, "ok"));
    assert_eq!(
        counted(check(&p, "indexes_per_table")),
        (2, 0, 0, 2, 2, "near")
    );
    // Not this test's account: the default one holds none of it.
    assert_ne!(account.id, "123456789012");
}
