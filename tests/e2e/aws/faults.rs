//! The AWS target under faults, crashes and the published rate limits, and
//! what it leaves on AWS: the real `apifactory` binary talks to moto through
//! the fault-injecting proxy (`apifactory_tests::fault_proxy`), itself in
//! front of the realism layer (`apifactory_tests::realistic_endpoint`);
//! every check reads moto directly. Tenants are copies of the five under unique ids, so
//! these tests share moto with every other test and never reset it.
//!
//! - 20% injected faults (500s, throttles in each service's shape, resets
//!   before moto sees the request, responses lost after moto carried the
//!   request out, latency): re-run until nothing is left to do, apply
//!   converges to exactly a clean apply's state. A lost CreateUsagePlan or
//!   CreateRestApi response leaves a duplicate (AWS takes no client token
//!   for them); the next run deletes it.
//! - Exactly one lost CreateRestApi and CreateUsagePlan response: the next
//!   plan deletes the duplicates, keeps the ones in use, and a run after
//!   that makes no mutating call. A lost CreateTable response: the table
//!   is created all the same.
//! - SIGKILL at ten seeded random points, re-run each time: same.
//! - The pacer at a scale keeps the proxy's enforced CreateDeployment and
//!   CreateRestApi limits (same scale) from refusing anything.
//! - Each role's policy names only its tenant's table, indexes and log
//!   groups; each tenant's keys are bound only to its own API's stage.
//! - A key's value appears in the output of the apply that made it, once,
//!   and nowhere else.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::time::{Duration, Instant};

use apifactory::aws::TAG_TENANT;
use apifactory::aws::policy::{POLICY_NAME, percent_decode};
use apifactory_tests::fault_proxy::{FaultConfig, FaultProxy, RateLimit};
use apifactory_tests::{realistic_endpoint, sdk_config};
use runtime::names;
use serde_json::Value;

use apifactory_tests::aws::small_artifact;
use apifactory_tests::fleet::{Fleet, ORIGINALS, text};

/// All CLI output of a test, to look for key values in.
#[derive(Default)]
struct Outputs {
    /// (what, stdout, stderr)
    runs: Vec<(String, String, String)>,
}

impl Outputs {
    fn add(&mut self, what: &str, out: &Output) {
        self.runs
            .push((what.to_owned(), text(&out.stdout), text(&out.stderr)));
    }
}

/// Re-runs `apply` through `endpoint` until a run exits 0 and leaves
/// nothing to do (a plan against moto directly is empty: a run that met a
/// lost create response leaves the duplicate to the next one), at most
/// `tries` runs; the number of runs it took.
async fn apply_until_converged(
    fleet: &Fleet,
    endpoint: &str,
    pace: &str,
    tries: usize,
    outputs: &mut Outputs,
) -> usize {
    for run in 1..=tries {
        let out = fleet.command("apply", &[], endpoint, pace).output().await;
        outputs.add(&format!("apply #{run}"), &out);
        if !out.status.success() {
            eprintln!(
                "apply #{run} failed ({}):\n{}",
                out.status,
                text(&out.stderr)
            );
            continue;
        }
        let plan = fleet
            .command("plan", &["--json"], realistic_endpoint(), "off")
            .output()
            .await;
        assert!(plan.status.success(), "{}", text(&plan.stderr));
        outputs.add(&format!("plan after apply #{run}"), &plan);
        let left: Value = serde_json::from_slice(&plan.stdout).unwrap();
        if left["actions"] == serde_json::json!([]) {
            return run;
        }
        eprintln!("apply #{run} left work: {}", left["actions"]);
    }
    panic!("apply did not converge in {tries} runs");
}

/// `apifactory plan --json` against moto directly has nothing to do.
async fn assert_plan_empty(fleet: &Fleet, outputs: &mut Outputs) {
    let out = fleet
        .command("plan", &["--json"], realistic_endpoint(), "off")
        .output()
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    outputs.add("plan --json", &out);
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["actions"], serde_json::json!([]), "{p}");
    let out = fleet
        .command("plan", &[], realistic_endpoint(), "off")
        .output()
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    outputs.add("plan", &out);
}

fn tagged(tags: Option<&std::collections::HashMap<String, String>>, tenant: &str) -> bool {
    tags.and_then(|t| t.get(TAG_TENANT)).map(String::as_str) == Some(tenant)
}

/// A usage plan: its id, its (API id, stage) bindings and its key ids.
type PlanSeen = (String, Vec<(String, String)>, BTreeSet<String>);

/// What moto holds of the fleet, read directly with the SDK.
struct World {
    /// REST API ids by tenant (every one tagged with it).
    apis: BTreeMap<String, Vec<String>>,
    /// Usage plans (id, api stages, key ids) of the whole account.
    plans: Vec<PlanSeen>,
    /// Usage plan ids by tenant tag.
    tenant_plans: BTreeMap<String, Vec<String>>,
    /// API keys by tenant: (name, id).
    keys: BTreeMap<String, Vec<(String, String)>>,
    /// Key values by id.
    values: BTreeMap<String, String>,
}

async fn read_world(fleet: &Fleet) -> World {
    let api = aws_sdk_apigateway::Client::new(&sdk_config().await);
    let all_apis = api.get_rest_apis().limit(500).send().await.unwrap();
    let all_plans = api.get_usage_plans().limit(500).send().await.unwrap();
    let mut w = World {
        apis: BTreeMap::new(),
        plans: Vec::new(),
        tenant_plans: BTreeMap::new(),
        keys: BTreeMap::new(),
        values: BTreeMap::new(),
    };
    let mut our_api_ids = BTreeSet::new();
    for id in fleet.ids.values() {
        let ids: Vec<String> = all_apis
            .items()
            .iter()
            .filter(|a| tagged(a.tags(), id) || a.name() == Some(names::rest_api(id).as_str()))
            .filter_map(|a| a.id().map(str::to_owned))
            .collect();
        our_api_ids.extend(ids.iter().cloned());
        w.apis.insert(id.clone(), ids);
        w.tenant_plans.insert(
            id.clone(),
            all_plans
                .items()
                .iter()
                .filter(|p| {
                    tagged(p.tags(), id) || p.name() == Some(names::usage_plan(id).as_str())
                })
                .filter_map(|p| p.id().map(str::to_owned))
                .collect(),
        );
        let keys = api
            .get_api_keys()
            .name_query(format!("apifactory-{id}-"))
            .include_values(true)
            .limit(500)
            .send()
            .await
            .unwrap();
        let mut ours = Vec::new();
        for k in keys.items() {
            let (Some(name), Some(kid)) = (k.name(), k.id()) else {
                continue;
            };
            ours.push((name.to_owned(), kid.to_owned()));
            if let Some(v) = k.value() {
                w.values.insert(kid.to_owned(), v.to_owned());
            }
        }
        w.keys.insert(id.clone(), ours);
    }
    // Every plan of the account bound to one of our APIs, or tagged ours.
    let tagged_ours: BTreeSet<&String> = w.tenant_plans.values().flatten().collect();
    for p in all_plans.items() {
        let Some(pid) = p.id() else { continue };
        let stages: Vec<(String, String)> = p
            .api_stages()
            .iter()
            .map(|s| {
                (
                    s.api_id().unwrap_or_default().to_owned(),
                    s.stage().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        if !tagged_ours.contains(&pid.to_owned())
            && !stages.iter().any(|(a, _)| our_api_ids.contains(a))
        {
            continue;
        }
        let keys = api
            .get_usage_plan_keys()
            .usage_plan_id(pid)
            .limit(500)
            .send()
            .await
            .unwrap();
        let key_ids = keys
            .items()
            .iter()
            .filter_map(|k| k.id().map(str::to_owned))
            .collect();
        w.plans.push((pid.to_owned(), stages, key_ids));
    }
    w
}

/// Exactly one of everything per tenant, as a clean apply makes: one REST
/// API, usage plan, key per client, function and log group per operation,
/// role, table and domain; nothing else with the tenant's names.
async fn assert_no_duplicates(fleet: &Fleet, w: &World) {
    let config = sdk_config().await;
    let lambda = aws_sdk_lambda::Client::new(&config);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let iam = aws_sdk_iam::Client::new(&config);
    let api = aws_sdk_apigateway::Client::new(&config);
    let mut functions = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = lambda
            .list_functions()
            .set_marker(marker.take())
            .max_items(50)
            .send()
            .await
            .unwrap();
        functions.extend(
            page.functions()
                .iter()
                .filter_map(|f| f.function_name().map(str::to_owned)),
        );
        match page.next_marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
            _ => break,
        }
    }
    let tables = ddb.list_tables().limit(100).send().await.unwrap();
    let mut all_tables: Vec<String> = tables.table_names().to_vec();
    let mut last = tables.last_evaluated_table_name().map(str::to_owned);
    while let Some(start) = last {
        let page = ddb
            .list_tables()
            .exclusive_start_table_name(start)
            .limit(100)
            .send()
            .await
            .unwrap();
        all_tables.extend(page.table_names().iter().cloned());
        last = page.last_evaluated_table_name().map(str::to_owned);
    }
    for t in fleet.tenants() {
        let id = t.id.as_str();
        assert_eq!(w.apis[id].len(), 1, "{id}: REST APIs {:?}", w.apis[id]);
        assert_eq!(w.tenant_plans[id].len(), 1, "{id}: usage plans");
        let mut key_names: Vec<&str> = w.keys[id].iter().map(|(n, _)| n.as_str()).collect();
        key_names.sort();
        let mut want: Vec<String> = t
            .clients
            .iter()
            .map(|c| names::api_key(id, &c.name))
            .collect();
        want.sort();
        assert_eq!(key_names, want, "{id}: one key per client");

        let mut fns: Vec<&String> = functions
            .iter()
            .filter(|f| f.starts_with(&format!("apifactory-{id}-")))
            .collect();
        fns.sort();
        let mut want: Vec<String> = t
            .functions
            .operations
            .iter()
            .map(|op| names::function(id, *op))
            .collect();
        want.sort();
        assert_eq!(fns, want.iter().collect::<Vec<_>>(), "{id}: functions");

        let groups = logs
            .describe_log_groups()
            .log_group_name_prefix(format!("/aws/lambda/apifactory-{id}-"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            groups.log_groups().len(),
            t.functions.operations.len(),
            "{id}: log groups"
        );
        let tables: Vec<&String> = all_tables.iter().filter(|n| n.contains(id)).collect();
        assert_eq!(tables, [&names::table(id)], "{id}: tables");
        iam.get_role()
            .role_name(names::role(id))
            .send()
            .await
            .unwrap();

        let deployments = api
            .get_deployments()
            .rest_api_id(&w.apis[id][0])
            .send()
            .await
            .unwrap();
        eprintln!("{id}: {} deployment(s)", deployments.items().len());
        if let Some(d) = &t.domain {
            let mappings = api
                .get_base_path_mappings()
                .domain_name(&d.name)
                .send()
                .await
                .unwrap();
            assert_eq!(mappings.items().len(), 1, "{id}: base path mappings");
        }
    }
}

/// Isolation: the only usage plan bound to a tenant's API stage is its
/// own, bound to that stage alone, and it holds exactly that tenant's keys;
/// no tenant's key is in any plan of another tenant's API.
fn assert_isolated(fleet: &Fleet, w: &World) {
    let tenants = fleet.tenants();
    let owner_of_key: BTreeMap<&str, &str> = w
        .keys
        .iter()
        .flat_map(|(t, ks)| ks.iter().map(move |(_, k)| (k.as_str(), t.as_str())))
        .collect();
    let mut pairs = 0;
    for a in &tenants {
        let api_a = &w.apis[&a.id][0];
        let bound: Vec<&PlanSeen> = w
            .plans
            .iter()
            .filter(|(_, stages, _)| stages.iter().any(|(api, _)| api == api_a))
            .collect();
        assert_eq!(
            bound.len(),
            1,
            "{}: plans bound to its API: {bound:?}",
            a.id
        );
        let (pid, stages, keys) = bound[0];
        assert_eq!(&w.tenant_plans[&a.id], &vec![pid.clone()], "{}", a.id);
        assert_eq!(stages, &vec![(api_a.clone(), a.stage.clone())], "{}", a.id);
        let own: BTreeSet<String> = w.keys[&a.id].iter().map(|(_, k)| k.clone()).collect();
        assert_eq!(keys, &own, "{}: the plan holds exactly its keys", a.id);
        for b in tenants.iter().filter(|b| b.id != a.id) {
            pairs += 1;
            for (name, k) in &w.keys[&b.id] {
                assert!(
                    !keys.contains(k),
                    "{}'s key {name} is in the plan of {}'s API",
                    b.id,
                    a.id
                );
            }
        }
    }
    // And every key of ours sits in no plan but its tenant's.
    for (pid, stages, keys) in &w.plans {
        for k in keys {
            if let Some(owner) = owner_of_key.get(k.as_str()) {
                assert_eq!(
                    &w.tenant_plans[*owner],
                    &vec![pid.clone()],
                    "key {k} of {owner} is in plan {pid} ({stages:?})"
                );
            }
        }
    }
    eprintln!("isolation: {pairs} ordered tenant pairs checked");
}

/// Each tenant's role policy names only its own table, its indexes and its
/// own log groups: no `*`, no other tenant.
async fn assert_policies_own_only(fleet: &Fleet) {
    let iam = aws_sdk_iam::Client::new(&sdk_config().await);
    let env = apifactory::aws::Env::new("us-east-1", "123456789012");
    let tenants = fleet.tenants();
    let mut checked = 0;
    for t in &tenants {
        let id = t.id.as_str();
        let policy = iam
            .get_role_policy()
            .role_name(names::role(id))
            .policy_name(POLICY_NAME)
            .send()
            .await
            .unwrap();
        let doc: Value = serde_json::from_str(&percent_decode(policy.policy_document())).unwrap();
        let table_arn = env.table_arn_any_region(&names::table(id));
        let indexes: Vec<String> = t
            .collection
            .indexed()
            .map(|f| names::index(&f.name))
            .collect();
        let groups: Vec<String> = t
            .functions
            .operations
            .iter()
            .map(|op| {
                format!(
                    "{}:*",
                    env.log_group_arn_any_region(&names::log_group(id, *op))
                )
            })
            .collect();
        let statements = match &doc["Statement"] {
            Value::Array(s) => s.clone(),
            one => vec![one.clone()],
        };
        for s in &statements {
            let resources = match &s["Resource"] {
                Value::Array(r) => r.clone(),
                one => vec![one.clone()],
            };
            assert!(!resources.is_empty(), "{id}: a statement without resources");
            for r in resources {
                let r = r.as_str().unwrap_or_else(|| panic!("{id}: resource {r}"));
                checked += 1;
                // The only wildcards allowed: a log group's streams (`:*`)
                // and the region (the tenant's one role serves it in any
                // region of the account, IAM being global); never the
                // account, the service or a name.
                let base = r.strip_suffix(":*").unwrap_or(r);
                let parts: Vec<&str> = base.splitn(6, ':').collect();
                assert!(
                    parts.len() == 6
                        && parts
                            .iter()
                            .enumerate()
                            .all(|(i, p)| i == 3 || !p.contains('*')),
                    "{id}: a wildcard resource {r}"
                );
                assert!(r.starts_with("arn:aws:"), "{id}: not an ARN: {r}");
                for other in tenants.iter().filter(|o| o.id != t.id) {
                    assert!(
                        !r.contains(&other.id),
                        "{id}'s policy names {}: {r}",
                        other.id
                    );
                }
                let ours = r == table_arn
                    || r.strip_prefix(&format!("{table_arn}/index/"))
                        .is_some_and(|i| indexes.iter().any(|w| w == i))
                    || groups.iter().any(|g| g == r);
                assert!(ours, "{id}: the policy names {r}, not its own");
            }
        }
    }
    eprintln!(
        "IAM: {checked} policy resources of {} tenants checked",
        tenants.len()
    );
}

/// No key value in any output but the stdout of an apply, and there at
/// most once (exactly once when `exactly`) over all the runs.
fn assert_keys_printed_once(w: &World, outputs: &Outputs, exactly: bool) {
    assert!(!w.values.is_empty(), "moto gave no key values");
    for (id, value) in &w.values {
        let mut seen = Vec::new();
        for (what, stdout, stderr) in &outputs.runs {
            assert!(
                !stderr.contains(value.as_str()),
                "key {id}'s value in the stderr of {what}"
            );
            let n = stdout.matches(value.as_str()).count();
            if n > 0 {
                assert!(
                    what.starts_with("apply"),
                    "key {id}'s value in the output of {what}"
                );
                seen.push((what.clone(), n));
            }
        }
        let total: usize = seen.iter().map(|(_, n)| n).sum();
        if exactly {
            assert_eq!(total, 1, "key {id}'s value printed {seen:?}");
        } else {
            assert!(total <= 1, "key {id}'s value printed {seen:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_through_twenty_percent_faults_converges_to_a_clean_state() {
    let started = Instant::now();
    let fleet = Fleet::new(&ORIGINALS).await;
    let proxy = FaultProxy::start(
        realistic_endpoint(),
        FaultConfig {
            lose_responses: true,
            ..FaultConfig::with_rate(0.2)
        },
    )
    .await;
    let mut outputs = Outputs::default();
    let runs = apply_until_converged(&fleet, proxy.url(), "off", 6, &mut outputs).await;
    eprintln!(
        "faults: converged in {runs} apply run(s), {:?}; proxy: {}",
        started.elapsed(),
        proxy.stats()
    );
    assert!(proxy.stats().injected() > 0, "{}", proxy.stats());

    // Against moto directly: nothing left to do, nothing doubled.
    assert_plan_empty(&fleet, &mut outputs).await;
    let w = read_world(&fleet).await;
    assert_no_duplicates(&fleet, &w).await;
    assert_isolated(&fleet, &w);
    assert_policies_own_only(&fleet).await;
    assert_keys_printed_once(&w, &outputs, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_killed_at_ten_random_points_converges_without_duplicates() {
    let started = Instant::now();
    let fleet = Fleet::new(&ORIGINALS).await.with_artifact(small_artifact());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kills: seed {seed}");
    let mut rng = seed;
    let mut next = move || {
        // SplitMix64.
        rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut outputs = Outputs::default();
    let (mut killed, mut finished) = (0, 0);
    for round in 0..10 {
        // Early points: once the first runs have built most of the stack,
        // a run has little left to do and ends quickly.
        let delay = Duration::from_millis(30 + next() % 570);
        let mut child = fleet
            .command("apply", &[], realistic_endpoint(), "off")
            .0
            .spawn()
            .unwrap();
        match tokio::time::timeout(delay, child.wait()).await {
            Ok(status) => {
                finished += 1;
                eprintln!(
                    "kill round {round}: apply ended ({:?}) before {delay:?}",
                    status
                );
            }
            Err(_) => {
                child.start_kill().unwrap(); // SIGKILL
                child.wait().await.unwrap();
                killed += 1;
            }
        }
        // Whatever the killed run printed is part of the output too.
        let out = child.wait_with_output().await.unwrap();
        outputs.add(&format!("apply (kill round {round})"), &out);
    }
    let runs = apply_until_converged(&fleet, realistic_endpoint(), "off", 2, &mut outputs).await;
    eprintln!(
        "kills: {killed} SIGKILLs survived, {finished} runs ended first; converged in {runs} \
         more run(s); {:?}",
        started.elapsed()
    );
    // How many runs a kill lands inside depends on the machine's speed;
    // at least the first ones always do.
    assert!(killed >= 2, "only {killed} of 10 runs were killed midway");

    assert_plan_empty(&fleet, &mut outputs).await;
    let w = read_world(&fleet).await;
    assert_no_duplicates(&fleet, &w).await;
    assert_isolated(&fleet, &w);
    assert_keys_printed_once(&w, &outputs, false);
}

/// The proxy enforces CreateDeployment (1 every 5 s) and CreateRestApi (1
/// every 3 s) at 10 times AWS's rate; the pacer at the same factor keeps
/// every call inside them. Unpaced calls are refused: a burst of
/// CreateDeployment straight from the SDK (retries off) gets API Gateway's
/// `TooManyRequestsException`, which the SDK reads as throttling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pacer_keeps_enforced_limits_from_refusing_and_keys_print_once() {
    const FACTOR: f64 = 10.0;
    let fleet = Fleet::new(&ORIGINALS).await.with_artifact(small_artifact());
    let proxy = FaultProxy::start(
        realistic_endpoint(),
        FaultConfig {
            limits: vec![
                RateLimit::create_deployment(FACTOR),
                RateLimit::create_rest_api(FACTOR),
            ],
            ..FaultConfig::with_rate(0.0)
        },
    )
    .await;

    let started = Instant::now();
    let mut outputs = Outputs::default();
    let out = fleet
        .command("apply", &[], proxy.url(), &FACTOR.to_string())
        .output()
        .await;
    outputs.add("apply", &out);
    assert!(out.status.success(), "{}", text(&out.stderr));
    eprintln!(
        "paced at {FACTOR}x: {:?}; proxy: {}; {} calls under enforced limits",
        started.elapsed(),
        proxy.stats(),
        proxy.stats().limited_passed()
    );
    assert_eq!(proxy.stats().limit_rejections(), 0, "{}", proxy.stats());
    // Five CreateRestApi and five CreateDeployment at least.
    assert!(proxy.stats().limited_passed() >= 10, "{}", proxy.stats());

    // Keys: printed by the apply that made them, once; a second apply and
    // the plans print none.
    let again = fleet
        .command("apply", &[], realistic_endpoint(), "off")
        .output()
        .await;
    assert!(again.status.success(), "{}", text(&again.stderr));
    outputs.add("apply (again)", &again);
    assert_plan_empty(&fleet, &mut outputs).await;
    let w = read_world(&fleet).await;
    assert_keys_printed_once(&w, &outputs, true);
    assert_no_duplicates(&fleet, &w).await;
    assert_isolated(&fleet, &w);
    assert_policies_own_only(&fleet).await;

    // Unpaced, the enforced limit refuses, in API Gateway's wire shape.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(proxy.url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_apigateway::config::Credentials::new(
            "testing", "testing", None, None, "faults",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let api = aws_sdk_apigateway::Client::new(&config);
    let api_id = &w.apis[&fleet.all_ids()[0]][0];
    // Three at once: one after the other, a loaded machine can take the
    // limit's whole interval over each, and none would be refused.
    let deploy = || api.create_deployment().rest_api_id(api_id).send();
    let (a, b, c) = tokio::join!(deploy(), deploy(), deploy());
    let refused: Vec<String> = [a.err(), b.err(), c.err()]
        .into_iter()
        .flatten()
        .map(|e| {
            use aws_sdk_apigateway::error::ProvideErrorMetadata;
            e.code().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(
        refused,
        ["TooManyRequestsException"; 2],
        "{}",
        proxy.stats()
    );
    assert_eq!(proxy.stats().limit_rejections(), 2);
}

/// AWS takes no client token on CreateRestApi or CreateUsagePlan: when the
/// answer to one is lost after the create was carried out, the SDK's retry
/// makes a second. The apply that met it goes on with the second; the next
/// one plans the deletion of the other (the REST API without the stage, the
/// usage plan without the keys), leaves exactly one of each, and after that
/// a new run makes no mutating call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_response_leaves_a_duplicate_the_next_apply_deletes() {
    use apifactory::plan::Change;
    use apifactory_tests::aws::{
        api_keys, converge, observe_and_plan, rest_apis, scope, usage_plans,
    };

    let fleet = Fleet::new(&["acme"]).await;
    let id = fleet.id("acme").to_owned();
    let opts = scope(fleet.scope());
    let d = fleet.desired(&[]);
    let proxy = FaultProxy::start(
        realistic_endpoint(),
        FaultConfig {
            // A lost CreateStage response makes the retry meet the stage
            // (ConflictException): the same apply must still succeed.
            lose_first: vec!["CreateRestApi", "CreateUsagePlan", "CreateStage"],
            ..FaultConfig::with_rate(0.0)
        },
    )
    .await;
    // The SDK's standard retries: a lost response is retried as it would
    // be on AWS.
    let through = apifactory_tests::fleet::target_at(proxy.url()).await;
    converge(&through, &d, &opts).await;
    assert_eq!(proxy.stats().lost_responses(), 3, "{}", proxy.stats());
    let api = aws_sdk_apigateway::Client::new(&sdk_config().await);
    assert_eq!(
        rest_apis(&api, &id).await.len(),
        2,
        "the lost create made one"
    );
    assert_eq!(
        usage_plans(&api, &id).await.len(),
        2,
        "the lost create made one"
    );

    // The next run plans exactly the two deletions.
    let target = apifactory_tests::fleet::target().await;
    let p = observe_and_plan(&target, &d, &opts).await;
    let planned: Vec<(String, &Change)> = p
        .actions
        .iter()
        .map(|a| (a.address.kind.to_string(), &a.change))
        .collect();
    assert_eq!(
        planned,
        [
            ("usage_plan".to_owned(), &Change::Delete),
            ("api".to_owned(), &Change::Delete)
        ],
        "{p}"
    );
    let shown = p.to_string();
    assert!(
        shown.contains(&format!(
            "- api        {} (duplicate ",
            names::rest_api(&id)
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "- usage_plan {} (duplicate ",
            names::usage_plan(&id)
        )),
        "{shown}"
    );
    converge(&target, &d, &opts).await;

    // One of each is left: the REST API with the stage and the domain's
    // mapping, and the plan bound to it that holds every key.
    let apis = rest_apis(&api, &id).await;
    assert_eq!(apis.len(), 1, "{apis:?}");
    let api_id = apis[0].id().unwrap();
    let stages = api.get_stages().rest_api_id(api_id).send().await.unwrap();
    assert_eq!(stages.item().len(), 1);
    let t = fleet.tenant("acme");
    let domain = &t.domain.as_ref().unwrap().name;
    let mappings = api
        .get_base_path_mappings()
        .domain_name(domain)
        .send()
        .await
        .unwrap();
    assert!(
        mappings
            .items()
            .iter()
            .all(|m| m.rest_api_id() == Some(api_id))
    );
    let plans = usage_plans(&api, &id).await;
    assert_eq!(plans.len(), 1, "{plans:?}");
    assert_eq!(
        plans[0]
            .api_stages()
            .iter()
            .map(|s| (s.api_id(), s.stage()))
            .collect::<Vec<_>>(),
        [(Some(api_id), Some(t.stage.as_str()))]
    );
    let held: BTreeSet<String> = api
        .get_usage_plan_keys()
        .usage_plan_id(plans[0].id().unwrap())
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter_map(|k| k.id().map(str::to_owned))
        .collect();
    let keys: BTreeSet<String> = api_keys(&api, &id)
        .await
        .iter()
        .filter_map(|k| k.id().map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), t.clients.len());
    assert_eq!(held, keys);

    // Converged: a new run plans nothing and makes no mutating call.
    let fresh = apifactory_tests::fleet::target().await;
    let (p, _) = converge(&fresh, &d, &opts).await;
    assert!(p.is_empty(), "{p}");
    assert_eq!(fresh.pacer.writes(), 0);
}

/// A lost CreateTable response: the SDK's retry meets the table the first
/// attempt made (ResourceInUseException), which is the table asked for, so
/// creating it succeeds and waits for it as usual. An error names the
/// service's code and message, never the raw HTTP response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_table_response_still_creates_the_table() {
    use apifactory::aws::table::{TableOptions, create_table, set_point_in_time_recovery};
    use apifactory::aws::{Pace, Pacer};

    let proxy = FaultProxy::start(
        realistic_endpoint(),
        FaultConfig {
            lose_first: vec!["CreateTable"],
            ..FaultConfig::with_rate(0.0)
        },
    )
    .await;
    let through =
        aws_sdk_dynamodb::Client::new(&apifactory_tests::sdk_config_at(proxy.url()).await);
    let table = apifactory_tests::unique_name("lost-create");
    let collection =
        runtime::Tenant::load(&apifactory_tests::repo_root().join("tenants/acme.toml"))
            .unwrap()
            .collection;
    // Point-in-time recovery is the AWS target's step after the create,
    // retried through DynamoDB's PITR window (tests/e2e/aws/dynamo.rs); the
    // realism layer refuses it right after CreateTable, as AWS does.
    let options = TableOptions {
        deletion_protection: false,
        tags: vec![("purpose".into(), "test".into())],
    };
    let pacer = Pacer::new(Pace::Off);
    let schema = runtime::schema::TableSchema::of(&collection);
    create_table(&through, &pacer, &table, &schema, &options)
        .await
        .expect("the table is there");
    assert_eq!(proxy.stats().lost_responses(), 1, "{}", proxy.stats());
    // CreateTable and every DescribeTable poll of the wait went through the
    // pacer (the SDK's own retry of the lost response is one call to it).
    assert_eq!(pacer.writes(), 1);
    assert!(pacer.reads() >= 1, "{pacer:?}");
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let desc = apifactory_tests::fleet::describe_table(&ddb, &table).await;
    assert_eq!(desc.table_status().map(|s| s.as_str()), Some("ACTIVE"));

    // A service error, in a line: the operation, the table, the code.
    let missing = apifactory_tests::unique_name("missing");
    let err = set_point_in_time_recovery(&ddb, &pacer, "test", &missing, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("UpdateContinuousBackups {missing}: "))
            && err.contains("NotFoundException"),
        "{err}"
    );
    for raw in ["headers", "Response", "SdkBody", "raw"] {
        assert!(!err.contains(raw), "{err}");
    }
    ddb.delete_table().table_name(&table).send().await.unwrap();
}
