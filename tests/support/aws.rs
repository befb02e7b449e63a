//! What the AWS end-to-end tests read back and run more than once: the
//! tenant's resources on moto found by their tags, a plan and apply with
//! the library, and which recorded requests change something.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use apifactory::apply::{Quiet, Report, apply};
use apifactory::aws::{AwsTarget, TAG_TENANT};
use apifactory::desired::Desired;
use apifactory::plan::{Options, Plan, plan};
use apifactory::target::Target;
use aws_sdk_apigateway::types::{ApiKey, RestApi, UsagePlan};

use crate::RecordedRequest;

/// A small stand-in for the bootstrap where the size of the upload does not
/// matter: moto stores function code and never runs it (no Docker here), so
/// a small executable that passes the same artifact checks (ELF, x86_64,
/// glibc no newer than Lambda's) spares each CLI run packaging a 28 MB
/// binary.
pub fn small_artifact() -> &'static Path {
    Path::new("/usr/bin/true")
}

pub async fn observe_and_plan(target: &AwsTarget, d: &Desired, opts: &Options) -> Plan {
    let observed = target.observe(&opts.tenants).await.unwrap();
    plan(d, &observed, opts)
}

/// Observes, plans and applies; the apply must succeed.
pub async fn converge(target: &Arc<AwsTarget>, d: &Desired, opts: &Options) -> (Plan, Report) {
    let p = observe_and_plan(target, d, opts).await;
    let report = apply(&p, target.clone(), 8, Arc::new(Quiet)).await;
    assert!(report.ok(), "{report}");
    (p, report)
}

/// Plan options for these tenants only.
pub fn scope(ids: BTreeSet<String>) -> Options {
    Options {
        tenants: ids,
        ..Options::default()
    }
}

/// Whether a recorded request changes something: REST APIs (API Gateway,
/// Lambda, Route 53) read with GET; JSON APIs (DynamoDB, Logs) and query
/// APIs (IAM, STS) name their operation.
pub fn mutating(r: &RecordedRequest) -> bool {
    let read = |op: &str| {
        ["Describe", "List", "Get"]
            .iter()
            .any(|p| op.starts_with(p))
    };
    if let Some(op) = r.json_operation() {
        return !read(op);
    }
    if let Some(action) = r.body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        return !read(action);
    }
    r.method != "GET"
}

fn tagged(tags: Option<&std::collections::HashMap<String, String>>, tenant: &str) -> bool {
    tags.and_then(|t| t.get(TAG_TENANT)).map(String::as_str) == Some(tenant)
}

/// The tenant's REST APIs, by tag.
pub async fn rest_apis(api: &aws_sdk_apigateway::Client, tenant: &str) -> Vec<RestApi> {
    api.get_rest_apis()
        .limit(500)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter(|a| tagged(a.tags(), tenant))
        .cloned()
        .collect()
}

/// The tenant's usage plans, by tag.
pub async fn usage_plans(api: &aws_sdk_apigateway::Client, tenant: &str) -> Vec<UsagePlan> {
    api.get_usage_plans()
        .limit(500)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter(|p| tagged(p.tags(), tenant))
        .cloned()
        .collect()
}

/// The tenant's API keys, by name and tag.
pub async fn api_keys(api: &aws_sdk_apigateway::Client, tenant: &str) -> Vec<ApiKey> {
    api.get_api_keys()
        .name_query(format!("apifactory-{tenant}-"))
        .include_values(false)
        .limit(500)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter(|k| tagged(k.tags(), tenant))
        .cloned()
        .collect()
}

/// The ids of the keys attached to a usage plan.
pub async fn usage_plan_keys(api: &aws_sdk_apigateway::Client, plan: &str) -> Vec<String> {
    api.get_usage_plan_keys()
        .usage_plan_id(plan)
        .limit(500)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter_map(|k| k.id().map(str::to_owned))
        .collect()
}

/// A moto account of a test's own (no other test adds to it): its id, and
/// an access key and secret acting in it. moto keeps an account per access
/// key made in it with its `x-moto-account-id` header. `first` is the id's
/// first digit, one per test file, so that two files never draw the same.
pub async fn own_account(first: u8, user: &str) -> (String, String, String) {
    use aws_sdk_iam::config::http::HttpRequest;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = (u128::from(std::process::id()) * 1_000_003 + nanos) % 100_000_000_000;
    let id = format!("{first}{n:011}");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(crate::moto_url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_iam::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    let iam = aws_sdk_iam::Client::new(&config);
    let in_account = |id: String| {
        move |req: &mut HttpRequest| {
            req.headers_mut().insert("x-moto-account-id", id.clone());
        }
    };
    iam.create_user()
        .user_name(user)
        .customize()
        .mutate_request(in_account(id.clone()))
        .send()
        .await
        .unwrap();
    let made = iam
        .create_access_key()
        .user_name(user)
        .customize()
        .mutate_request(in_account(id.clone()))
        .send()
        .await
        .unwrap();
    let key = made.access_key().unwrap();
    (
        id,
        key.access_key_id().to_owned(),
        key.secret_access_key().to_owned(),
    )
}
