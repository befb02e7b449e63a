//! The AWS target against the moto server of this run: the five tenants
//! (copies under unique ids, so tests never collide), checked with SDK
//! reads; a no-op apply counted with moto's request recorder; a one-field
//! change; a destroy; an apply killed midway by SIGKILL, then re-run; and
//! the functions' cursor secret, made once per tenant and kept.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apifactory::apply::Report;
use apifactory::aws::function::{ENV_CURSOR_SECRET, STATEMENT_ID, statement_source};
use apifactory::aws::policy::percent_decode;
use apifactory::aws::{AwsTarget, Env};
use apifactory::desired::Desired;
use apifactory::plan::{Change, Options, Plan};
use apifactory::resource::Kind;
use apifactory::target::Target;
use apifactory_tests::{Recording, bin_path, realistic_endpoint, repo_root, sdk_config};
use aws_sdk_apigateway::operation::get_stage::GetStageOutput;
use runtime::{Operation, Tenant, names};
use serde_json::Value;

use apifactory_tests::aws::{
    api_keys, converge, mutating, observe_and_plan, rest_apis, scope, usage_plans,
};
use apifactory_tests::fleet::{Fleet, artifact, package, target};

/// The operation a method of the tenant's API runs.
fn operation_of(t: &Tenant, path: &str, verb: &str) -> Operation {
    let item = path != format!("/{}", t.collection.name);
    match (item, verb) {
        (false, "GET") => Operation::Search,
        (false, "POST") => Operation::Add,
        (true, "GET") => Operation::Get,
        (true, "PUT" | "PATCH") => Operation::Update,
        (true, "DELETE") => Operation::Delete,
        other => panic!("unexpected method {other:?} on {path}"),
    }
}

/// Everything `issues show 4` asks of one tenant's stack, read back with
/// the SDK.
async fn check_stack(t: &Tenant, source: &str, report: &Report) {
    let config = sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let iam = aws_sdk_iam::Client::new(&config);
    let lambda = aws_sdk_lambda::Client::new(&config);
    let api = aws_sdk_apigateway::Client::new(&config);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let env = Env::new("us-east-1", "123456789012");
    let id = t.id.as_str();
    let table = names::table(id);

    // Table: key, one GSI per indexed field, PITR, deletion protection.
    let desc = apifactory_tests::fleet::describe_table(&ddb, &table).await;
    let key: Vec<(&str, &str)> = desc
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(key, [(t.collection.key.as_str(), "HASH")], "{id}");
    let mut gsis: Vec<String> = desc
        .global_secondary_indexes()
        .iter()
        .map(|g| g.index_name().unwrap().to_owned())
        .collect();
    gsis.sort();
    let mut want: Vec<String> = t
        .collection
        .indexed()
        .map(|f| names::index(&f.name))
        .collect();
    want.sort();
    assert_eq!(gsis, want, "{id}");
    assert_eq!(desc.deletion_protection_enabled(), Some(true), "{id}");
    assert_eq!(
        desc.billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str()),
        Some("PAY_PER_REQUEST")
    );
    assert_eq!(
        apifactory_tests::fleet::point_in_time_recovery(&ddb, &table).await,
        Some("ENABLED".into()),
        "{id}"
    );

    // Role: trusts Lambda only; its policy names only this tenant's table,
    // indexes and log groups, and no `*` resource.
    let role = iam
        .get_role()
        .role_name(names::role(id))
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    let trust: Value =
        serde_json::from_str(&percent_decode(role.assume_role_policy_document().unwrap())).unwrap();
    assert_eq!(
        trust["Statement"][0]["Principal"],
        serde_json::json!({"Service": "lambda.amazonaws.com"})
    );
    assert_eq!(trust["Statement"].as_array().unwrap().len(), 1);
    let policy = iam
        .get_role_policy()
        .role_name(names::role(id))
        .policy_name(apifactory::aws::policy::POLICY_NAME)
        .send()
        .await
        .unwrap();
    let policy: Value = serde_json::from_str(&percent_decode(policy.policy_document())).unwrap();
    // In any region of the account: the tenant's one role (IAM is global)
    // serves its functions wherever in the account they run.
    let table_arn = env.table_arn_any_region(&table);
    let mut actions = BTreeSet::new();
    for s in policy["Statement"].as_array().unwrap() {
        for a in s["Action"].as_array().unwrap() {
            actions.insert(a.as_str().unwrap().to_owned());
        }
        for r in s["Resource"].as_array().unwrap() {
            let r = r.as_str().unwrap();
            let ours = r == table_arn
                || r.strip_prefix(&format!("{table_arn}/index/"))
                    .is_some_and(|i| want.iter().any(|w| w == i))
                || t.functions.operations.iter().any(|op| {
                    r == format!(
                        "{}:*",
                        env.log_group_arn_any_region(&names::log_group(id, *op))
                    )
                });
            assert!(ours, "{id}: the policy names {r}");
        }
    }
    assert!(actions.iter().all(|a| {
        [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
            "dynamodb:Scan",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        ]
        .contains(&a.as_str())
    }));

    // The REST API: exactly one, every method needing a key and proxying to
    // its operation's function.
    let apis = rest_apis(&api, id).await;
    assert_eq!(apis.len(), 1, "{id}: {apis:?}");
    let api_id = apis[0].id().unwrap().to_owned();
    assert_eq!(apis[0].name(), Some(names::rest_api(id).as_str()));
    let resources = api
        .get_resources()
        .rest_api_id(&api_id)
        .embed("methods")
        .limit(500)
        .send()
        .await
        .unwrap();
    let mut methods = 0;
    let mut ops_seen = BTreeSet::new();
    for r in resources.items() {
        // The developer portal, for anyone: tests/e2e/aws/portal.rs.
        if r.path() == Some("/docs") {
            continue;
        }
        for (verb, m) in r.resource_methods().into_iter().flatten() {
            methods += 1;
            assert_eq!(
                m.api_key_required(),
                Some(true),
                "{id} {verb} {:?}",
                r.path()
            );
            let i = m.method_integration().expect("an integration");
            // moto keeps the document's lower-case "aws_proxy".
            assert_eq!(
                i.r#type().map(|t| t.as_str().to_ascii_uppercase()),
                Some("AWS_PROXY".to_owned())
            );
            let op = operation_of(t, r.path().unwrap(), verb);
            ops_seen.insert(op);
            assert!(
                i.uri().unwrap().ends_with(&format!(
                    ":function:{}/invocations",
                    names::function(id, op)
                )),
                "{id} {verb}: {:?}",
                i.uri()
            );
        }
    }
    let expected_methods: usize = t
        .functions
        .operations
        .iter()
        .map(|op| if *op == Operation::Update { 2 } else { 1 })
        .sum();
    assert_eq!(methods, expected_methods, "{id}");
    assert_eq!(
        ops_seen.into_iter().collect::<Vec<_>>(),
        t.functions.operations
    );

    // Functions: runtime, handler, memory, timeout, environment, code, and
    // the permission for this API only.
    let code = package().sha256(source).unwrap();
    for op in &t.functions.operations {
        let name = names::function(id, *op);
        let f = lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
            .unwrap();
        assert_eq!(f.runtime().map(|r| r.as_str()), Some("provided.al2023"));
        assert_eq!(f.handler(), Some("bootstrap"));
        assert_eq!(f.memory_size(), Some(t.functions.memory_mb as i32));
        assert_eq!(f.timeout(), Some(t.functions.timeout_s as i32));
        assert_eq!(f.code_sha256(), Some(code.as_str()), "{name}");
        assert_eq!(
            f.architectures()
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>(),
            ["x86_64"]
        );
        assert!(
            f.role()
                .unwrap()
                .ends_with(&format!("/apifactory/{}", names::role(id)))
        );
        let vars = f.environment().unwrap().variables().unwrap();
        assert_eq!(vars.get("APIFACTORY_TABLE"), Some(&table));
        assert_eq!(
            vars.get("APIFACTORY_OPERATION").map(String::as_str),
            Some(op.as_str())
        );
        assert_eq!(
            vars.get(ENV_CURSOR_SECRET).map(String::len),
            Some(43),
            "{name}: a 256-bit cursor secret"
        );
        let policy = lambda
            .get_policy()
            .function_name(&name)
            .send()
            .await
            .unwrap()
            .policy
            .unwrap();
        assert_eq!(
            statement_source(&policy, STATEMENT_ID),
            Some(Some(env.execute_api_arn(&api_id))),
            "{policy}"
        );
    }

    // Log groups with the retention.
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix(format!("/aws/lambda/apifactory-{id}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(groups.log_groups().len(), t.functions.operations.len());
    for g in groups.log_groups() {
        assert_eq!(g.retention_in_days(), Some(t.logs.retention_days as i32));
    }

    // One deployment, recorded with the definition's hash; the stage with
    // default throttling and the access log.
    let hash = apifactory::desired::api_definition_sha256(t);
    let deployments = api
        .get_deployments()
        .rest_api_id(&api_id)
        .send()
        .await
        .unwrap();
    let described: Vec<Option<&str>> = deployments
        .items()
        .iter()
        .map(|d| d.description())
        .collect();
    assert_eq!(
        described,
        [Some(format!("apifactory:{hash}").as_str())],
        "{id}"
    );
    let stage = api
        .get_stage()
        .rest_api_id(&api_id)
        .stage_name(&t.stage)
        .send()
        .await
        .unwrap();
    assert_eq!(stage.deployment_id(), deployments.items()[0].id());
    // Stage throttling is one bucket for all callers together: it is the
    // tenant's API-wide total, and absent without one (never the per-key
    // rate, which would hold the whole API to one client's rate).
    assert_eq!(
        stage_throttling(&stage),
        t.usage_plan.api.map(|a| (a.rate, a.burst as i32)),
        "{id}"
    );
    let access = stage.access_log_settings().unwrap();
    assert_eq!(
        access.destination_arn(),
        Some(env.log_group_arn(&names::access_log_group(id)).as_str())
    );
    assert!(access.format().unwrap().contains("$context.requestId"));

    // The usage plan: throttle, quota, bound to the stage; each client's
    // key enabled and attached.
    let plans = usage_plans(&api, id).await;
    assert_eq!(plans.len(), 1, "{id}");
    let up = &plans[0];
    let throttle = up.throttle().unwrap();
    assert_eq!(
        (throttle.rate_limit(), throttle.burst_limit()),
        (t.usage_plan.rate, t.usage_plan.burst as i32)
    );
    match t.usage_plan.quota {
        Some(q) => {
            let quota = up.quota().unwrap();
            assert_eq!(quota.limit() as u64, q.limit);
            assert_eq!(quota.period().map(|p| p.as_str()), Some(q.period.as_str()));
        }
        None => assert!(up.quota().is_none_or(|q| q.limit() == 0)),
    }
    let stages: Vec<(Option<&str>, Option<&str>)> = up
        .api_stages()
        .iter()
        .map(|s| (s.api_id(), s.stage()))
        .collect();
    assert_eq!(stages, [(Some(api_id.as_str()), Some(t.stage.as_str()))]);
    let keys = api_keys(&api, id).await;
    let attached = api
        .get_usage_plan_keys()
        .usage_plan_id(up.id().unwrap())
        .send()
        .await
        .unwrap();
    let attached: BTreeSet<&str> = attached.items().iter().filter_map(|k| k.id()).collect();
    assert_eq!(keys.len(), t.clients.len(), "{id}");
    for c in &t.clients {
        let name = names::api_key(id, &c.name);
        let key = keys
            .iter()
            .find(|k| k.name() == Some(name.as_str()))
            .unwrap();
        assert!(key.enabled(), "{name}");
        assert!(
            attached.contains(key.id().unwrap()),
            "{name} is not in the plan"
        );
        let secret = report
            .secrets()
            .find(|s| s.tenant == id && s.client == c.name)
            .unwrap_or_else(|| panic!("no value shown for {name}"));
        assert_eq!(Some(secret.id.as_str()), key.id());
        assert!(secret.value.len() >= 40);
    }

    // The domain: regional, the tenant's certificate, the base path mapped
    // to the stage, and the alias record when a zone is named.
    if let Some(d) = &t.domain {
        let domain = api
            .get_domain_name()
            .domain_name(&d.name)
            .send()
            .await
            .unwrap();
        assert_eq!(
            domain.regional_certificate_arn(),
            Some(d.certificate_arn.as_str())
        );
        assert_eq!(
            domain.endpoint_configuration().map(|e| e
                .types()
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()),
            Some(vec!["REGIONAL"])
        );
        let mappings = api
            .get_base_path_mappings()
            .domain_name(&d.name)
            .send()
            .await
            .unwrap();
        let mappings: Vec<(Option<&str>, Option<&str>, Option<&str>)> = mappings
            .items()
            .iter()
            .map(|m| (m.base_path(), m.rest_api_id(), m.stage()))
            .collect();
        let base = if d.base_path.is_empty() {
            "(none)"
        } else {
            d.base_path.as_str()
        };
        assert_eq!(
            mappings,
            [(Some(base), Some(api_id.as_str()), Some(t.stage.as_str()))]
        );
        if let Some(zone) = &d.hosted_zone_id {
            let r53 = aws_sdk_route53::Client::new(&config);
            let records = r53
                .list_resource_record_sets()
                .hosted_zone_id(zone)
                .send()
                .await
                .unwrap();
            let alias = records
                .resource_record_sets()
                .iter()
                .find(|r| r.name().trim_end_matches('.') == d.name && r.r#type().as_str() == "A")
                .and_then(|r| r.alias_target())
                .unwrap_or_else(|| panic!("no alias record for {}", d.name));
            assert_eq!(
                alias.dns_name().trim_end_matches('.'),
                domain.regional_domain_name().unwrap()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_tenants_apply_then_a_no_op_a_change_and_a_destroy() {
    let fleet = Fleet::new(&apifactory_tests::fleet::ORIGINALS).await;
    let target = target().await;
    let opts = scope(fleet.scope());

    // Apply: everything is created, in dependency order per tenant.
    let d = fleet.desired(&[]);
    let started = Instant::now();
    let (first, report) = converge(&target, &d, &opts).await;
    eprintln!(
        "first apply of 5 tenants: {} actions, {} mutating calls, {} reads, {:?}",
        first.actions.len(),
        target.pacer.writes(),
        target.pacer.reads(),
        started.elapsed()
    );
    assert!(first.actions.iter().all(|a| a.change == Change::Create));
    assert_eq!(first.actions.len(), d.resources.len());
    for original in ["acme", "bookshop", "clinic", "events", "fleet"] {
        check_stack(&fleet.tenant(original), &fleet.source(original), &report).await;
    }

    // Apply again, as a new run would: a fresh target reads the world and
    // finds nothing to do. moto's recorder sees no mutating request on any
    // of these tenants' resources.
    let ids: BTreeSet<String> = {
        let api = aws_sdk_apigateway::Client::new(&sdk_config().await);
        let mut ids = fleet.scope();
        for tenant in fleet.scope() {
            ids.extend(
                rest_apis(&api, &tenant)
                    .await
                    .iter()
                    .filter_map(|a| a.id.clone()),
            );
            ids.extend(
                usage_plans(&api, &tenant)
                    .await
                    .iter()
                    .filter_map(|p| p.id.clone()),
            );
            ids.extend(
                api_keys(&api, &tenant)
                    .await
                    .iter()
                    .filter_map(|k| k.id.clone()),
            );
        }
        ids
    };
    let recording = Recording::start().await;
    let again = target_fresh_noop(&fleet, &opts).await;
    let requests = recording.requests().await;
    recording.stop().await;
    let ours_mutating: Vec<String> = requests
        .iter()
        .filter(|r| mutating(r))
        .filter(|r| {
            ids.iter()
                .any(|id| r.url.contains(id) || r.body.contains(id))
        })
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    assert!(ours_mutating.is_empty(), "{ours_mutating:#?}");
    assert_eq!(again.writes, 0);
    eprintln!(
        "no-op apply of 5 tenants: {} reads, 0 mutating calls",
        again.reads
    );

    // Change one field: the plan names exactly that change (and the
    // functions' code, since the tenant file ships in their zip).
    let acme = fleet.id("acme").to_owned();
    std::fs::write(
        fleet.path("acme"),
        std::fs::read_to_string(fleet.path("acme"))
            .unwrap()
            .replace("rate = 50", "rate = 60"),
    )
    .unwrap();
    let d = fleet.desired(&[]);
    let only_acme = scope([acme.clone()].into());
    let changed = observe_and_plan(&target, &d, &only_acme).await;
    let mut seen: Vec<String> = changed
        .actions
        .iter()
        .filter(|a| a.address.kind != Kind::Stamp)
        .map(|a| match &a.change {
            Change::Update { fields } => format!(
                "~ {} {}",
                a.address,
                fields
                    .iter()
                    .map(|f| f.field.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            other => format!("{other:?} {}", a.address),
        })
        .collect();
    seen.sort();
    // Only the usage plan: the per-key rate is not the stage's (acme sets
    // no API-wide total). The functions' package holds no usage plan: no
    // code changes.
    assert_eq!(
        seen,
        [format!("~ usage_plan {} rate", names::usage_plan(&acme))],
        "{changed}"
    );
    assert!(
        changed.to_string().contains(&format!(
            "~ usage_plan {}  (rate: 50.0 -> 60.0)",
            names::usage_plan(&acme)
        )),
        "{changed}"
    );
    converge(&target, &d, &only_acme).await;
    assert!(observe_and_plan(&target, &d, &only_acme).await.is_empty());
    let api = aws_sdk_apigateway::Client::new(&sdk_config().await);
    assert_eq!(
        usage_plans(&api, &acme).await[0]
            .throttle()
            .unwrap()
            .rate_limit(),
        60.0
    );

    // Destroy one tenant (the one with a Route 53 record): nothing of it
    // remains but its table.
    let bookshop = fleet.id("bookshop").to_owned();
    let t = fleet.tenant("bookshop");
    let zone = t
        .domain
        .as_ref()
        .and_then(|d| d.hosted_zone_id.clone())
        .unwrap();
    let destroy = Options {
        tenants: [bookshop.clone()].into(),
        prune: true,
        ..Options::default()
    };
    let (p, _) = converge(&target, &fleet.desired(&["bookshop"]), &destroy).await;
    assert!(p.actions.iter().all(|a| a.change == Change::Delete), "{p}");
    assert_eq!(p.kept.len(), 1, "the table stays: {p}");
    let left = target.observe(&[bookshop.clone()].into()).await.unwrap();
    assert_eq!(
        left.resources.keys().map(|a| a.kind).collect::<Vec<_>>(),
        [Kind::Table]
    );
    check_gone(&t, &zone).await;
}

/// The stage's default (`*/*`) throttling, when it has one (-1 is
/// disabled).
fn stage_throttling(stage: &GetStageOutput) -> Option<(f64, i32)> {
    let s = stage.method_settings()?.get("*/*")?;
    (s.throttling_rate_limit() >= 0.0 && s.throttling_burst_limit() >= 0)
        .then(|| (s.throttling_rate_limit(), s.throttling_burst_limit()))
}

/// acme (rate 50, burst 100, no API-wide total) as the earlier behaviour
/// left it, its stage throttled at the per-key rate: the next apply removes
/// that (and a no-op stays a no-op). Then a total set in the file reaches
/// the stage alone; the usage plan stays per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stage_throttling_is_the_api_wide_total_never_the_per_key_rate() {
    let fleet = Fleet::new(&["acme"]).await;
    let target = target().await;
    let acme = fleet.id("acme").to_owned();
    let only = scope([acme.clone()].into());
    converge(&target, &fleet.desired(&[]), &only).await;

    let api = aws_sdk_apigateway::Client::new(&sdk_config().await);
    let api_id = rest_apis(&api, &acme).await[0].id().unwrap().to_owned();
    let stage = async || {
        api.get_stage()
            .rest_api_id(&api_id)
            .stage_name("prod")
            .send()
            .await
            .unwrap()
    };
    assert_eq!(stage_throttling(&stage().await), None);
    let op = |path: &str, value: &str| {
        aws_sdk_apigateway::types::PatchOperation::builder()
            .op(aws_sdk_apigateway::types::Op::Replace)
            .path(path)
            .value(value)
            .build()
    };
    api.update_stage()
        .rest_api_id(&api_id)
        .stage_name("prod")
        .patch_operations(op("/*/*/throttling/rateLimit", "50"))
        .patch_operations(op("/*/*/throttling/burstLimit", "100"))
        .send()
        .await
        .unwrap();
    // The stamp's clearing and writing aside.
    let fields = |p: &Plan| -> Vec<String> {
        p.actions
            .iter()
            .filter(|a| a.address.kind != Kind::Stamp)
            .map(|a| match &a.change {
                Change::Update { fields } => format!(
                    "~ {} {}",
                    a.address,
                    fields
                        .iter()
                        .map(|f| format!("{}:{}->{}", f.field, f.from, f.to))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                other => format!("{other:?} {}", a.address),
            })
            .collect()
    };
    let d = fleet.desired(&[]);
    let removal = observe_and_plan(&target, &d, &only).await;
    assert_eq!(
        fields(&removal),
        ["~ stage prod burst:100->null,rate:50.0->null"],
        "{removal}"
    );
    converge(&target, &d, &only).await;
    assert_eq!(stage_throttling(&stage().await), None);
    assert!(observe_and_plan(&target, &d, &only).await.is_empty());

    std::fs::write(
        fleet.path("acme"),
        std::fs::read_to_string(fleet.path("acme"))
            .unwrap()
            .replace(
                "burst = 100\n",
                "burst = 100\napi_rate = 200\napi_burst = 400\n",
            ),
    )
    .unwrap();
    let d = fleet.desired(&[]);
    let total = observe_and_plan(&target, &d, &only).await;
    assert_eq!(
        fields(&total),
        ["~ stage prod burst:null->400,rate:null->200.0"],
        "{total}"
    );
    converge(&target, &d, &only).await;
    assert_eq!(stage_throttling(&stage().await), Some((200.0, 400)));
    assert!(observe_and_plan(&target, &d, &only).await.is_empty());
    assert_eq!(
        usage_plans(&api, &acme).await[0]
            .throttle()
            .map(|t| (t.rate_limit(), t.burst_limit())),
        Some((50.0, 100)),
        "the usage plan stays per key"
    );
}

struct NoOp {
    reads: u64,
    writes: u64,
}

/// Observe, plan and apply with a fresh target (a new run), expecting
/// nothing to do.
async fn target_fresh_noop(fleet: &Fleet, opts: &Options) -> NoOp {
    let fresh = target().await;
    let reads_before = fresh.pacer.reads();
    let d = fleet.desired(&[]);
    let (p, _) = converge(&fresh, &d, opts).await;
    assert!(p.is_empty(), "{p}");
    NoOp {
        reads: fresh.pacer.reads() - reads_before,
        writes: fresh.pacer.writes(),
    }
}

/// Nothing of the tenant is left on moto but its table.
async fn check_gone(t: &Tenant, zone: &str) {
    let config = sdk_config().await;
    let id = t.id.as_str();
    let lambda = aws_sdk_lambda::Client::new(&config);
    for op in &t.functions.operations {
        let gone = lambda
            .get_function_configuration()
            .function_name(names::function(id, *op))
            .send()
            .await;
        assert!(gone.is_err(), "function {op} of {id} remains");
    }
    let iam = aws_sdk_iam::Client::new(&config);
    assert!(
        iam.get_role()
            .role_name(names::role(id))
            .send()
            .await
            .is_err()
    );
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    for prefix in [
        format!("/aws/lambda/apifactory-{id}-"),
        names::access_log_group(id),
    ] {
        let groups = logs
            .describe_log_groups()
            .log_group_name_prefix(prefix)
            .send()
            .await
            .unwrap();
        assert!(groups.log_groups().is_empty(), "{:?}", groups.log_groups());
    }
    let api = aws_sdk_apigateway::Client::new(&config);
    assert!(rest_apis(&api, id).await.is_empty());
    assert!(usage_plans(&api, id).await.is_empty());
    assert!(api_keys(&api, id).await.is_empty());
    let d = t.domain.as_ref().unwrap();
    assert!(
        api.get_domain_name()
            .domain_name(&d.name)
            .send()
            .await
            .is_err()
    );
    let r53 = aws_sdk_route53::Client::new(&config);
    let records = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    assert!(
        records
            .resource_record_sets()
            .iter()
            .all(|r| r.name().trim_end_matches('.') != d.name),
        "the alias record remains"
    );
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = apifactory_tests::fleet::describe_table(&ddb, &names::table(id)).await;
    assert_eq!(
        table.deletion_protection_enabled(),
        Some(true),
        "the table stays"
    );
}

fn apifactory(fleet: &Fleet, args: &[&str], pace: &str) -> Command {
    let mut c = Command::new(bin_path("apifactory"));
    c.args(args)
        .arg("--tenants")
        .arg(fleet.dir.path())
        .arg("--artifact")
        .arg(artifact())
        .env("AWS_ENDPOINT_URL", realistic_endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("APIFACTORY_PACE", pace)
        .current_dir(repo_root());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_killed_midway_converges_on_the_next_run_without_duplicates() {
    let fleet = Fleet::new(&["acme", "clinic"]).await;
    let tenants = fleet.list();
    let api = aws_sdk_apigateway::Client::new(&sdk_config().await);
    let acme = fleet.id("acme").to_owned();
    let clinic = fleet.id("clinic").to_owned();

    // AWS's own pace (CreateDeployment one per 5 s holds the second tenant
    // back): kill the process the moment the first API key exists.
    let mut child = apifactory(
        &fleet,
        &["apply", "--target", "aws", "--tenant", &tenants],
        "1",
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the apply ended before it could be interrupted"
        );
        if !api_keys(&api, &acme).await.is_empty() || !api_keys(&api, &clinic).await.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no API key appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Midway indeed: there is work left.
    let target = target().await;
    let d = fleet.desired(&[]);
    let opts = scope(fleet.scope());
    let left = observe_and_plan(&target, &d, &opts).await;
    assert!(
        !left.is_empty(),
        "the kill came after the apply had finished"
    );
    eprintln!("left after the kill:\n{left}");

    // The re-run converges. A re-run started the moment the kill landed
    // may not see in AWS's lists what the killed run made last (they are
    // eventually consistent) and make a second REST API, usage plan or
    // key; the run after it deletes the duplicate. So: re-run until the
    // plan is empty, twice at most.
    let mut runs = 0;
    loop {
        runs += 1;
        let out = apifactory(
            &fleet,
            &["apply", "--target", "aws", "--tenant", &tenants],
            "off",
        )
        .output()
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Only the tenants the kill left unfinished had work.
        assert!(stdout.contains(" applied, 0 failed."), "{stdout}");
        if observe_and_plan(&target, &d, &opts).await.is_empty() {
            break;
        }
        assert!(runs < 2, "still work left after {runs} re-runs");
    }

    // No duplicates: one REST API, one usage plan, one key per client, and
    // every key enabled in the plan.
    for original in ["acme", "clinic"] {
        let t = fleet.tenant(original);
        assert_eq!(rest_apis(&api, &t.id).await.len(), 1, "{}", t.id);
        let plans = usage_plans(&api, &t.id).await;
        assert_eq!(plans.len(), 1, "{}", t.id);
        let keys = api_keys(&api, &t.id).await;
        let mut names_seen: Vec<&str> = keys.iter().filter_map(|k| k.name()).collect();
        names_seen.sort();
        let mut want: Vec<String> = t
            .clients
            .iter()
            .map(|c| names::api_key(&t.id, &c.name))
            .collect();
        want.sort();
        assert_eq!(names_seen, want);
        let attached = api
            .get_usage_plan_keys()
            .usage_plan_id(plans[0].id().unwrap())
            .send()
            .await
            .unwrap();
        for k in &keys {
            assert!(k.enabled(), "{:?}", k.name());
            assert!(
                attached.items().iter().any(|a| a.id() == k.id()),
                "{:?}",
                k.name()
            );
        }
    }

    // And `apifactory plan` now has nothing to do.
    let out = apifactory(
        &fleet,
        &["plan", "--target", "aws", "--tenant", &tenants, "--json"],
        "off",
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["actions"], serde_json::json!([]), "{p}");

    // `apifactory destroy --delete-data` takes the table too (its deletion
    // protection is turned off first), though the tenant file is still
    // there.
    let out = apifactory(
        &fleet,
        &[
            "destroy",
            "--target",
            "aws",
            "--tenant",
            &clinic,
            "--delete-data",
        ],
        "off",
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone = target.observe(&[clinic.clone()].into()).await.unwrap();
    assert!(gone.resources.is_empty(), "{:?}", gone.resources.keys());
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    assert!(
        ddb.describe_table()
            .table_name(names::table(&clinic))
            .send()
            .await
            .is_err()
    );
}

/// Every function of the tenant's with its cursor secret (`None` where it
/// has none).
async fn cursor_secrets(t: &Tenant) -> BTreeMap<String, Option<String>> {
    let lambda = aws_sdk_lambda::Client::new(&sdk_config().await);
    let mut out = BTreeMap::new();
    for op in &t.functions.operations {
        let name = names::function(&t.id, *op);
        let f = lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
            .unwrap();
        let secret = f
            .environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get(ENV_CURSOR_SECRET))
            .cloned();
        out.insert(name, secret);
    }
    out
}

/// The one secret all of the tenant's functions hold.
async fn the_cursor_secret(t: &Tenant) -> String {
    let secrets = cursor_secrets(t).await;
    let distinct: BTreeSet<&Option<String>> = secrets.values().collect();
    assert_eq!(distinct.len(), 1, "{}: {secrets:?}", t.id);
    let secret = secrets.into_values().next().flatten().expect("a secret");
    // 256 random bits, URL-safe base64.
    assert_eq!(secret.len(), 43, "{}", t.id);
    secret
}

/// Converges and checks that neither the plan's text nor its JSON holds
/// the secret.
async fn converge_quietly(
    target: &Arc<AwsTarget>,
    d: &Desired,
    opts: &Options,
    secret: Option<&str>,
) -> Plan {
    let (p, _) = converge(target, d, opts).await;
    if let Some(secret) = secret {
        assert!(!p.to_string().contains(secret), "{p}");
        assert!(!serde_json::to_string(&p).unwrap().contains(secret));
    }
    p
}

/// The search cursors' secret: made at the first apply, one per tenant,
/// the same in every function of it; kept by redeploys of code and of
/// configuration; put back (the same one) on a function that lost it; and
/// a no-op apply after all that makes no mutating call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_secret_is_made_once_and_kept_across_redeploys() {
    let fleet = Fleet::new(&["clinic", "events"]).await;
    let opts = scope(fleet.scope());
    let first = converge_quietly(&target().await, &fleet.desired(&[]), &opts, None).await;
    let clinic = fleet.tenant("clinic");
    let secret = the_cursor_secret(&clinic).await;
    assert!(!first.to_string().contains(&secret));
    assert_ne!(
        the_cursor_secret(&fleet.tenant("events")).await,
        secret,
        "one secret per tenant"
    );

    // A code change (the collection), then a code and configuration change
    // (the timeout, which rewrites the environment), each by a new run.
    let edit = |from: &str, to: &str| {
        let text = std::fs::read_to_string(fleet.path("clinic")).unwrap();
        assert!(text.contains(from));
        std::fs::write(fleet.path("clinic"), text.replace(from, to)).unwrap();
    };
    for (from, to) in [
        ("max_length = 2000", "max_length = 1999"),
        ("timeout_s = 5", "timeout_s = 6"),
    ] {
        edit(from, to);
        let p = converge_quietly(&target().await, &fleet.desired(&[]), &opts, Some(&secret)).await;
        let fields: BTreeSet<String> = p
            .actions
            .iter()
            .filter(|a| a.address.kind == Kind::Function)
            .flat_map(|a| match &a.change {
                Change::Update { fields } => {
                    fields.iter().map(|f| f.field.clone()).collect::<Vec<_>>()
                }
                other => panic!("{other:?} {}", a.address),
            })
            .collect();
        assert!(fields.contains("code_sha256"), "{p}");
        assert!(!fields.contains("cursor_secret"), "{p}");
        assert_eq!(the_cursor_secret(&clinic).await, secret, "after {to}");
    }

    // A function that lost its secret (deployed before there was one, or
    // edited by hand, here with its handler too) is planned for it and
    // gets the tenant's back, and its handler.
    let lambda = aws_sdk_lambda::Client::new(&sdk_config().await);
    let get = names::function(&clinic.id, Operation::Get);
    lambda
        .update_function_configuration()
        .function_name(&get)
        .handler("drifted")
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("APIFACTORY_TABLE", names::table(&clinic.id))
                .variables("APIFACTORY_OPERATION", "get")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let fresh = target().await;
    let d = fleet.desired(&[]);
    let p = observe_and_plan(&fresh, &d, &opts).await;
    let changes: Vec<String> = p.actions.iter().map(|a| a.address.to_string()).collect();
    assert_eq!(changes, [format!("function {get}")], "{p}");
    assert!(
        p.to_string()
            .contains("(cursor_secret: false -> true, handler: drifted -> bootstrap)"),
        "{p}"
    );
    converge_quietly(&fresh, &d, &opts, Some(&secret)).await;
    assert_eq!(the_cursor_secret(&clinic).await, secret);
    let config = lambda
        .get_function_configuration()
        .function_name(&get)
        .send()
        .await
        .unwrap();
    assert_eq!(config.handler(), Some("bootstrap"));

    // Converged: a new run plans nothing and makes no mutating call.
    let noop = target_fresh_noop(&fleet, &opts).await;
    assert_eq!(noop.writes, 0);
}
