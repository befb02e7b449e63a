//! The realism layer, and what the AWS target does about it.
//!
//! moto carries out at once what AWS carries out in its own time: a role is
//! assumable the moment it exists, a function is `Active` and its update
//! `Successful` before the call returns, and a list shows what was created
//! a microsecond ago. The realism layer (`FaultConfig::realistic` in
//! `tests/support/fault_proxy.rs`, each behaviour with its AWS source)
//! answers as AWS does; every AWS test runs through it. Here the layer is
//! checked against moto, and each thing the target does about it is
//! checked against the layer:
//!
//! - an apply ends only once what it created shows in the lists the next
//!   run reads, and a tenant's keys find the usage plan made moments
//!   before them;
//! - an update that meets another in progress (here the SDK's own retry of
//!   an update whose answer was lost) waits for it and goes again;
//! - an update naming a role made seconds ago waits for IAM to propagate
//!   it;
//! - of two keys of one name (a run that did not see an interrupted run's
//!   key in the list yet), the enabled one stands and the disabled one
//!   goes.

use std::time::Duration;

use apifactory::aws::{Package, TAG_CLIENT, TAG_ORIGIN, TAG_TENANT};
use apifactory::plan::Change;
use apifactory::resource::Kind;
use apifactory_tests::fault_proxy::{FaultConfig, FaultProxy, Realism};
use apifactory_tests::{moto_url, realistic_endpoint, sdk_config, sdk_config_at, unique_name};
use aws_sdk_apigateway::error::ProvideErrorMetadata;
use runtime::{Operation, names};

use apifactory_tests::aws::{api_keys, converge, observe_and_plan, scope, small_artifact};
use apifactory_tests::fleet::{Fleet, target, target_at};

/// An SDK configuration through `endpoint` that never retries, so a test
/// sees each answer the layer gives.
async fn no_retries(endpoint: &str) -> aws_config::SdkConfig {
    sdk_config_at(endpoint)
        .await
        .into_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}

/// Calls `check` until it answers true; fails after 60 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}: still not so after 60 s");
}

/// The layer against moto, with windows long enough that the calls right
/// after a create or an update surely fall inside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_realism_layer_answers_as_aws_does() {
    let window = Duration::from_secs(4);
    let proxy = FaultProxy::start(
        &moto_url(),
        FaultConfig {
            realism: Realism {
                role_propagation: Some(window),
                function_pending: Some(window),
                function_updating: Some(window),
                list_lag: Some(window),
            },
            ..FaultConfig::with_rate(0.0)
        },
    )
    .await;
    let config = no_retries(proxy.url()).await;
    let iam = aws_sdk_iam::Client::new(&config);
    let lambda = aws_sdk_lambda::Client::new(&config);
    let api = aws_sdk_apigateway::Client::new(&config);
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let name = unique_name("realism-");
    let path = format!("/{name}/");
    // A small zip, made first: moto never runs it, and the upload and
    // deflating of the real bootstrap could outlast the windows the
    // calls after a create or an update are to meet.
    let fleet = Fleet::new(&["clinic"]).await;
    let zip = Package::from_artifact(small_artifact())
        .unwrap()
        .zip(&fleet.source("clinic"))
        .unwrap();

    // A role just made: Lambda cannot assume it yet; ListRoles leaves it
    // out, GetRole finds it.
    let trust = apifactory::aws::policy::trust();
    let role = iam
        .create_role()
        .role_name(&name)
        .path(&path)
        .assume_role_policy_document(&trust)
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    let listed = iam.list_roles().path_prefix(&path).send().await.unwrap();
    assert!(listed.roles().is_empty(), "{:?}", listed.roles());
    assert!(iam.get_role().role_name(&name).send().await.is_ok());
    let create = || {
        lambda
            .create_function()
            .function_name(&name)
            .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
            .handler("bootstrap")
            .role(role.arn())
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_sdk_lambda::primitives::Blob::new(zip.clone()))
                    .build(),
            )
            .send()
    };
    let refused = create().await.unwrap_err();
    assert_eq!(refused.code(), Some("InvalidParameterValueException"));
    assert_eq!(
        refused.message(),
        Some("The role defined for the function cannot be assumed by Lambda.")
    );
    eventually("the role to be listed", || async {
        !iam.list_roles()
            .path_prefix(&path)
            .send()
            .await
            .unwrap()
            .roles()
            .is_empty()
    })
    .await;
    eventually("the role to be assumable", || async {
        create().await.is_ok()
    })
    .await;

    // A function just made: Pending, not to be updated, not yet listed.
    let f = lambda
        .get_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    let state = f
        .configuration()
        .and_then(|c| c.state())
        .map(|s| s.as_str());
    assert_eq!(state, Some("Pending"));
    let conflict = lambda
        .update_function_configuration()
        .function_name(&name)
        .memory_size(256)
        .send()
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Some("ResourceConflictException"));
    assert!(
        conflict
            .message()
            .is_some_and(|m| m.contains("An update is in progress for resource")),
        "{conflict:?}"
    );
    let listed = |lambda: aws_sdk_lambda::Client, name: String| async move {
        lambda
            .list_functions()
            .send()
            .await
            .unwrap()
            .functions()
            .iter()
            .any(|f| f.function_name() == Some(name.as_str()))
    };
    assert!(!listed(lambda.clone(), name.clone()).await);
    eventually("the function to be listed", || {
        listed(lambda.clone(), name.clone())
    })
    .await;
    eventually("the function to be Active", || async {
        let c = lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
            .unwrap();
        c.state().map(|s| s.as_str()) == Some("Active")
    })
    .await;

    // An update: InProgress, and a second one meanwhile is refused.
    let updated = lambda
        .update_function_configuration()
        .function_name(&name)
        .memory_size(256)
        .send()
        .await
        .unwrap();
    assert_eq!(
        updated.last_update_status().map(|s| s.as_str()),
        Some("InProgress")
    );
    let conflict = lambda
        .update_function_code()
        .function_name(&name)
        .zip_file(aws_sdk_lambda::primitives::Blob::new(zip.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Some("ResourceConflictException"));
    eventually("the update to finish", || async {
        let c = lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
            .unwrap();
        c.last_update_status().map(|s| s.as_str()) == Some("Successful")
    })
    .await;

    // A REST API and a table just made: found by id or name, not listed.
    let rest = api.create_rest_api().name(&name).send().await.unwrap();
    let id = rest.id().unwrap().to_owned();
    assert!(api.get_rest_api().rest_api_id(&id).send().await.is_ok());
    let apis_listed = || async {
        api.get_rest_apis()
            .limit(500)
            .send()
            .await
            .unwrap()
            .items()
            .iter()
            .any(|a| a.id() == Some(id.as_str()))
    };
    assert!(!apis_listed().await);
    let table = format!("{name}-t");
    apifactory_runtime_table(&ddb, &table).await;
    let tables_listed = || async {
        ddb.list_tables()
            .send()
            .await
            .unwrap()
            .table_names()
            .contains(&table)
    };
    assert!(!tables_listed().await);
    eventually("the REST API to be listed", apis_listed).await;
    eventually("the table to be listed", tables_listed).await;
    // The role once, the function while Pending, then while InProgress.
    assert!(proxy.stats().realism_refusals() >= 3, "{}", proxy.stats());
    assert!(proxy.stats().lagged_lists() >= 4, "{}", proxy.stats());

    // Tidy moto (shared by every test of the run).
    let direct = sdk_config().await;
    let _ = aws_sdk_lambda::Client::new(&direct)
        .delete_function()
        .function_name(&name)
        .send()
        .await;
    let _ = aws_sdk_apigateway::Client::new(&direct)
        .delete_rest_api()
        .rest_api_id(&id)
        .send()
        .await;
}

/// A table with a string key, as small as DynamoDB allows.
async fn apifactory_runtime_table(ddb: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    ddb.create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

/// A first apply through the layer succeeds (the keys find the usage plan
/// made moments before, which GetUsagePlans does not list yet), and a new
/// run started the moment it ends finds nothing to do: the apply waited
/// until its creates showed in the lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_right_after_an_apply_finds_nothing_to_do() {
    let fleet = Fleet::new(&["clinic"]).await;
    let opts = scope(fleet.scope());
    let d = fleet.desired(&[]);
    let (first, _) = converge(&target().await, &d, &opts).await;
    assert!(first.actions.iter().all(|a| a.change == Change::Create));
    let again = observe_and_plan(&*target().await, &d, &opts).await;
    assert!(again.is_empty(), "{again}");
    let api = aws_sdk_apigateway::Client::new(&sdk_config().await);
    assert_eq!(api_keys(&api, fleet.id("clinic")).await.len(), 1);
}

/// The SDK retries an UpdateFunctionCode whose answer was lost; AWS had
/// carried the first one out, so the retry meets it in progress
/// (`ResourceConflictException`). The apply waits for the update to end
/// and goes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_meets_another_in_progress_waits_and_goes_again() {
    let fleet = Fleet::new(&["clinic"]).await;
    let opts = scope(fleet.scope());
    converge(&target().await, &fleet.desired(&[]), &opts).await;
    let text = std::fs::read_to_string(fleet.path("clinic")).unwrap();
    assert!(text.contains("max_length = 2000"));
    std::fs::write(
        fleet.path("clinic"),
        text.replace("max_length = 2000", "max_length = 1999"),
    )
    .unwrap();
    // In front of the realism layer, a proxy that loses the first
    // UpdateFunctionCode answer and holds the function InProgress long
    // enough that the SDK's retry surely meets it.
    let proxy = FaultProxy::start(
        realistic_endpoint(),
        FaultConfig {
            lose_first: vec!["UpdateFunctionCode"],
            realism: Realism {
                function_updating: Some(Duration::from_secs(5)),
                ..Realism::default()
            },
            ..FaultConfig::with_rate(0.0)
        },
    )
    .await;
    let through = target_at(proxy.url()).await;
    let d = fleet.desired(&[]);
    let (p, _) = converge(&through, &d, &opts).await;
    assert!(
        p.actions.iter().any(|a| a.address.kind == Kind::Function),
        "{p}"
    );
    assert_eq!(proxy.stats().lost_responses(), 1, "{}", proxy.stats());
    assert!(proxy.stats().realism_refusals() >= 1, "{}", proxy.stats());
    assert!(
        observe_and_plan(&*target().await, &d, &opts)
            .await
            .is_empty()
    );
}

/// A function whose role was deleted and whose configuration drifted to
/// another role: the apply makes the role again and points the function
/// at it, though Lambda cannot assume the role for its first seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_naming_a_role_just_made_waits_for_iam() {
    let fleet = Fleet::new(&["clinic"]).await;
    let id = fleet.id("clinic").to_owned();
    let opts = scope(fleet.scope());
    let d = fleet.desired(&[]);
    converge(&target().await, &d, &opts).await;

    let direct = sdk_config().await;
    let iam = aws_sdk_iam::Client::new(&direct);
    let lambda = aws_sdk_lambda::Client::new(&direct);
    let drift = unique_name("drift-");
    let other = iam
        .create_role()
        .role_name(&drift)
        .assume_role_policy_document(apifactory::aws::policy::trust())
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    let function = names::function(&id, Operation::Get);
    lambda
        .update_function_configuration()
        .function_name(&function)
        .role(other.arn())
        .send()
        .await
        .unwrap();
    let role = names::role(&id);
    iam.delete_role_policy()
        .role_name(&role)
        .policy_name(apifactory::aws::policy::POLICY_NAME)
        .send()
        .await
        .unwrap();
    iam.delete_role().role_name(&role).send().await.unwrap();

    let fresh = target().await;
    let p = observe_and_plan(&fresh, &d, &opts).await;
    let planned: Vec<String> = p
        .actions
        .iter()
        .map(|a| format!("{:?} {}", a.change, a.address))
        .collect();
    assert!(
        p.actions
            .iter()
            .any(|a| a.address.kind == Kind::Role && a.change == Change::Create),
        "{planned:?}"
    );
    assert!(
        p.actions
            .iter()
            .any(|a| a.address.name == function && matches!(a.change, Change::Update { .. })),
        "{planned:?}"
    );
    converge(&fresh, &d, &opts).await;
    let config = lambda
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await
        .unwrap();
    assert!(
        config
            .role()
            .is_some_and(|r| r.ends_with(&format!("/{role}"))),
        "{:?}",
        config.role()
    );
}

/// Two keys of one client's name: the older disabled (an interrupted
/// run's, its value never shown), the newer enabled and in the plan (made
/// by a run whose list did not show the first yet). The enabled one
/// stands; the disabled one is deleted, not enabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_keys_of_one_name_the_enabled_one_stands() {
    let fleet = Fleet::new(&["clinic"]).await;
    let id = fleet.id("clinic").to_owned();
    let opts = scope(fleet.scope());
    let d = fleet.desired(&[]);
    converge(&target().await, &d, &opts).await;

    let api = aws_sdk_apigateway::Client::new(&sdk_config().await);
    let first = api_keys(&api, &id).await;
    assert_eq!(first.len(), 1);
    let old = first[0].clone();
    let old_id = old.id().unwrap().to_owned();
    api.update_api_key()
        .api_key(&old_id)
        .patch_operations(
            aws_sdk_apigateway::types::PatchOperation::builder()
                .op(aws_sdk_apigateway::types::Op::Replace)
                .path("/enabled")
                .value("false")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let tags = old.tags().cloned().unwrap_or_default();
    assert!(tags.contains_key(TAG_TENANT) && tags.contains_key(TAG_CLIENT));
    assert!(tags.contains_key(TAG_ORIGIN));
    let newer = api
        .create_api_key()
        .name(old.name().unwrap())
        .set_description(old.description().map(str::to_owned))
        .enabled(true)
        .set_tags(Some(tags))
        .send()
        .await
        .unwrap();
    let new_id = newer.id().unwrap().to_owned();
    let plans = apifactory_tests::aws::usage_plans(&api, &id).await;
    api.create_usage_plan_key()
        .usage_plan_id(plans[0].id().unwrap())
        .key_id(&new_id)
        .key_type("API_KEY")
        .send()
        .await
        .unwrap();

    let p = observe_and_plan(&*target().await, &d, &opts).await;
    let keys: Vec<String> = p
        .actions
        .iter()
        .filter(|a| a.address.kind == Kind::ApiKey)
        .map(|a| format!("{:?} {}", a.change, a.address.name))
        .collect();
    assert_eq!(
        keys,
        [format!(
            "Delete {}",
            apifactory::aws::listing::duplicate_name(old.name().unwrap(), &old_id)
        )],
        "{p}"
    );
    converge(&target().await, &d, &opts).await;
    let left = api_keys(&api, &id).await;
    let left: Vec<(Option<&str>, bool)> = left.iter().map(|k| (k.id(), k.enabled())).collect();
    assert_eq!(left, [(Some(new_id.as_str()), true)]);
}
