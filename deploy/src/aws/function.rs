//! One Lambda function per operation, all from the tenant's one zip:
//! `provided.al2023`, handler `bootstrap`, the artifact's architecture,
//! memory and timeout from the tenant file, `APIFACTORY_TABLE`,
//! `APIFACTORY_OPERATION` and the tenant's `APIFACTORY_CURSOR_SECRET` in the
//! environment. The secret is made (256 random bits) when none of the
//! tenant's functions holds one yet, read back from them ever after, and
//! never enters the plan: observe reports only whether a function has it.
//! Code is uploaded only when the zip's SHA-256 differs from `CodeSha256`,
//! and every change waits for the previous update of the function to
//! finish: Lambda keeps a new function `Pending` and an updated one
//! `InProgress` for a while, and refuses another update meanwhile with
//! `ResourceConflictException` ("Lambda function states"). A change that
//! meets one anyway (another run's update, or the SDK's retry of an update
//! whose answer was lost) waits and goes again; so does one that names a
//! role IAM has not propagated yet.
//!
//! Also the permission that lets this tenant's REST API (and no other)
//! invoke the function: read first, added only when missing.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, Environment, FunctionCode, LastUpdateStatus, Runtime, State,
};
use runtime::{Operation, names};
use serde_json::{Value, json};

use super::package::Architecture as Arch;
use super::{AwsTarget, Family, Found, Scope, each, fail, is, wait_for};
use crate::desired::{FUNCTION_HANDLER, FUNCTION_RUNTIME};
use crate::plan::{Action, Change};
use crate::resource::{Address, Kind, attrs};
use crate::spec::{self, FunctionSpec};
use crate::target::Applied;

const LAMBDA: &[Family] = &[Family::Lambda];
const GET_FUNCTION: &[Family] = &[Family::LambdaGetFunction];
const GET_POLICY: &[Family] = &[Family::LambdaGetPolicy];
pub const ENV_TABLE: &str = "APIFACTORY_TABLE";
pub const ENV_OPERATION: &str = "APIFACTORY_OPERATION";
/// The secret the functions sign search cursors with: one per tenant, made
/// at its first apply and read back from the functions ever after.
pub const ENV_CURSOR_SECRET: &str = "APIFACTORY_CURSOR_SECRET";
/// The permission's statement id on every function.
pub const STATEMENT_ID: &str = "apifactory-apigateway";

/// The tenant and operation of one of apifactory's function names.
pub fn parse_name(name: &str) -> Option<(&str, Operation)> {
    let prefix = format!("{}-", names::PREFIX);
    Operation::ALL.into_iter().find_map(|op| {
        let tenant = super::tenant_between(name, &prefix, &format!("-{op}"))?;
        Some((tenant, op))
    })
}

/// The functions of the tenants in scope, and the cursor secret of every
/// tenant that has one.
pub async fn observe(
    t: &AwsTarget,
    scope: &Scope,
) -> anyhow::Result<(Vec<Found>, HashMap<String, String>)> {
    let mut found = Vec::new();
    let mut secrets = HashMap::new();
    let mut marker: Option<String> = None;
    loop {
        t.pacer.read(LAMBDA).await;
        let page = t
            .lambda
            .list_functions()
            .set_marker(marker.take())
            .max_items(50)
            .send()
            .await
            .map_err(|e| fail("Lambda ListFunctions", e))?;
        for f in page.functions() {
            let Some(name) = f.function_name() else {
                continue;
            };
            let Some((tenant, _)) = parse_name(name) else {
                continue;
            };
            let env = f.environment().and_then(|e| e.variables());
            let var = |k: &str| env.and_then(|v| v.get(k)).cloned();
            // Only functions that carry apifactory's environment.
            let Some(table) = var(ENV_TABLE) else {
                continue;
            };
            let secret = var(ENV_CURSOR_SECRET).filter(|s| !s.is_empty());
            if let Some(secret) = &secret {
                secrets
                    .entry(tenant.to_owned())
                    .or_insert_with(|| secret.clone());
            }
            if !scope.covers(tenant) {
                continue;
            }
            found.push((
                Address::new(tenant, Kind::Function, name),
                attrs([
                    (spec::OPERATION, json!(var(ENV_OPERATION))),
                    (spec::RUNTIME, json!(f.runtime().map(|r| r.as_str()))),
                    (spec::HANDLER, json!(f.handler())),
                    // The role's name: the ARN's last path segment.
                    (
                        spec::ROLE,
                        json!(f.role().and_then(|r| r.rsplit('/').next())),
                    ),
                    (spec::MEMORY_MB, json!(f.memory_size())),
                    (spec::TIMEOUT_S, json!(f.timeout())),
                    (spec::CODE_SHA256, json!(f.code_sha256())),
                    (spec::TABLE, json!(table)),
                    (spec::CURSOR_SECRET, json!(secret.is_some())),
                ]),
            ));
        }
        match page.next_marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
            _ => break,
        }
    }
    Ok((found, secrets))
}

/// What only `--refresh` reads of each function (one GetPolicy and one
/// ListTags each): who may invoke it (`invoked_by`: the tenant's REST API
/// by name when the permission names its API, else the source ARN it
/// names, `"*"` for a statement without one, null for none) and its tags.
pub async fn details(
    t: &AwsTarget,
    functions: Vec<Address>,
    api_ids: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<Found>> {
    let (t, api_ids) = (t.clone(), api_ids.clone());
    each(functions, 8, move |address| {
        let (t, api_ids) = (t.clone(), api_ids.clone());
        async move {
            let name = address.name.as_str();
            t.pacer.read(GET_POLICY).await;
            let policy = match t.lambda.get_policy().function_name(name).send().await {
                Ok(p) => p.policy.unwrap_or_default(),
                // A function without a resource-based policy: GetPolicy
                // answers ResourceNotFoundException (Lambda API reference,
                // GetPolicy, Errors), which is "no permission", not a failure.
                Err(e) if is(&e, &["ResourceNotFoundException"]) => String::new(),
                Err(e) => return Err(fail(&format!("Lambda GetPolicy {name}"), e)),
            };
            let ours = api_ids
                .get(&address.tenant)
                .map(|id| t.env.execute_api_arn(id));
            let invoked_by = match statement_source(&policy, STATEMENT_ID) {
                None => Value::Null,
                Some(None) => json!("*"),
                Some(Some(arn)) if Some(&arn) == ours.as_ref() => {
                    json!(names::rest_api(&address.tenant))
                }
                Some(Some(arn)) => json!(arn),
            };
            t.pacer.read(LAMBDA).await;
            let listed = t
                .lambda
                .list_tags()
                .resource(t.env.function_arn(name))
                .send()
                .await
                .map_err(|e| fail(&format!("Lambda ListTags {name}"), e))?;
            let tags = super::owned_tag_map(listed.tags());
            Ok((
                address.clone(),
                attrs([(spec::INVOKED_BY, invoked_by), (spec::TAGS, tags)]),
            ))
        }
    })
    .await
}

/// The cursor secret one of the tenant's functions holds, read function by
/// function (for a target that has not observed).
pub async fn read_cursor_secret(t: &AwsTarget, tenant: &str) -> anyhow::Result<Option<String>> {
    for op in Operation::ALL {
        let name = names::function(tenant, op);
        t.pacer.read(GET_FUNCTION).await;
        let config = match t
            .lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
        {
            Ok(c) => c,
            Err(e) if is(&e, &["ResourceNotFoundException"]) => continue,
            Err(e) => return Err(fail(&format!("Lambda GetFunctionConfiguration {name}"), e)),
        };
        let secret = config
            .environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get(ENV_CURSOR_SECRET))
            .filter(|s| !s.is_empty());
        if let Some(secret) = secret {
            return Ok(Some(secret.clone()));
        }
    }
    Ok(None)
}

fn architecture(a: Arch) -> Architecture {
    match a {
        Arch::X86_64 => Architecture::X8664,
        Arch::Arm64 => Architecture::Arm64,
    }
}

/// The function's environment, with the tenant's cursor secret (never in
/// the plan: the target holds it).
async fn environment(
    t: &AwsTarget,
    action: &Action,
    spec: &FunctionSpec,
) -> anyhow::Result<Environment> {
    let secret = t.cursor_secret(&action.address.tenant).await?;
    Ok(Environment::builder()
        .variables(ENV_TABLE, &spec.table)
        .variables(ENV_OPERATION, &spec.operation)
        .variables(ENV_CURSOR_SECRET, secret)
        .build())
}

fn number(n: u32) -> Option<i32> {
    i32::try_from(n).ok()
}

pub async fn apply(t: &AwsTarget, action: &Action) -> anyhow::Result<Applied> {
    let name = action.address.name.as_str();
    let tenant = action.address.tenant.as_str();
    match &action.change {
        Change::Delete => {
            t.pacer.write(LAMBDA).await;
            match t.lambda.delete_function().function_name(name).send().await {
                Ok(_) => {}
                Err(e) if is(&e, &["ResourceNotFoundException"]) => {}
                Err(e) => return Err(fail(&format!("Lambda DeleteFunction {name}"), e)),
            }
            return Ok(Applied::default());
        }
        Change::Create => {
            let spec = spec::read(action)?;
            if !create(t, action, &spec).await? {
                // An earlier run made it: bring it in line like an update.
                update(t, action, &spec, true).await?;
            }
        }
        Change::Update { .. } => update(t, action, &spec::read(action)?, false).await?,
    }
    if matches!(&action.change, Change::Update { fields } if fields.iter().any(|f| f.field == spec::TAGS))
    {
        t.pacer.write(LAMBDA).await;
        t.lambda
            .tag_resource()
            .resource(t.env.function_arn(name))
            .set_tags(Some(super::tags(tenant)))
            .send()
            .await
            .map_err(|e| fail(&format!("Lambda TagResource {name}"), e))?;
    }
    // The permission is made with the function and when the plan says it
    // differs (read with --refresh); a code or configuration update leaves
    // it as it was: the resource-based policy is the function's, apart from
    // its code and configuration (Lambda developer guide, "Viewing
    // resource-based IAM policies in Lambda"; UpdateFunctionCode and
    // UpdateFunctionConfiguration take no policy).
    if super::table::changed(action, spec::INVOKED_BY)
        && let Some(api_id) = t.api_id(tenant).await?
    {
        ensure_permission(t, name, &api_id).await?;
    }
    Ok(Applied::default())
}

fn zip(t: &AwsTarget, action: &Action, spec: &FunctionSpec) -> anyhow::Result<Vec<u8>> {
    let source = action.payload.source().ok_or_else(|| {
        anyhow::anyhow!(
            "the plan's action on function {} carries no tenant source",
            action.address.name
        )
    })?;
    let bytes = t.package()?.zip(source)?;
    let want = &spec.code_sha256;
    let have = super::package::code_sha256(&bytes);
    if *want != have {
        anyhow::bail!("the package's SHA-256 {have} is not the planned {want:?}");
    }
    Ok(bytes)
}

/// Creates the function; `false` when it already exists.
async fn create(t: &AwsTarget, action: &Action, spec: &FunctionSpec) -> anyhow::Result<bool> {
    let name = action.address.name.as_str();
    let tenant = action.address.tenant.as_str();
    let bytes = zip(t, action, spec)?;
    let arch = architecture(t.package()?.architecture);
    let role = t.env.role_arn(&names::role(tenant));
    let environment = environment(t, action, spec).await?;
    // A role made seconds ago may not be assumable yet (IAM is eventually
    // consistent): Lambda says so, and a retry a little later succeeds.
    let mut pause = Duration::from_secs(2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        t.pacer.write(LAMBDA).await;
        let result = t
            .lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::from(FUNCTION_RUNTIME))
            .handler(FUNCTION_HANDLER)
            .role(&role)
            .architectures(arch.clone())
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(bytes.clone()))
                    .build(),
            )
            .set_memory_size(number(spec.memory_mb))
            .set_timeout(number(spec.timeout_s))
            .environment(environment.clone())
            .description(format!("apifactory: tenant {tenant}"))
            .set_tags(Some(super::tags(tenant)))
            .publish(false)
            .send()
            .await;
        match result {
            Ok(_) => {
                t.made(super::listing::Made::Function(name.to_owned()));
                break;
            }
            Err(e) if is(&e, &["ResourceConflictException"]) => return Ok(false),
            Err(e) if role_not_assumable(&e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(15));
            }
            Err(e) => return Err(fail(&format!("Lambda CreateFunction {name}"), e)),
        }
    }
    ready(t, name).await?;
    Ok(true)
}

async fn update(
    t: &AwsTarget,
    action: &Action,
    spec: &FunctionSpec,
    everything: bool,
) -> anyhow::Result<()> {
    let name = action.address.name.as_str();
    let tenant = action.address.tenant.as_str();
    let changed = |field: &str| everything || super::table::changed(action, field);
    // A planned code change differs by the list the plan read; only a
    // function found in the way of a create is read first. An update that
    // meets a function still Pending or another update InProgress gets
    // 409 ResourceConflictException and waits for it (again_while_busy;
    // Lambda developer guide, "Lambda function states"; the fault proxy's
    // realism layer answers so).
    let code_differs = !everything
        || ready(t, name).await?.code_sha256.as_deref() != Some(spec.code_sha256.as_str());
    if changed(spec::CODE_SHA256) && code_differs {
        let bytes = zip(t, action, spec)?;
        let arch = architecture(t.package()?.architecture);
        again_while_busy(t, name, "UpdateFunctionCode", || {
            t.lambda
                .update_function_code()
                .function_name(name)
                .zip_file(Blob::new(bytes.clone()))
                .architectures(arch.clone())
                .send()
        })
        .await?;
        ready(t, name).await?;
    }
    if [
        spec::RUNTIME,
        spec::HANDLER,
        spec::ROLE,
        spec::MEMORY_MB,
        spec::TIMEOUT_S,
        spec::TABLE,
        spec::OPERATION,
        spec::CURSOR_SECRET,
    ]
    .iter()
    .any(|f| changed(f))
    {
        let role = t.env.role_arn(&names::role(tenant));
        let environment = environment(t, action, spec).await?;
        again_while_busy(t, name, "UpdateFunctionConfiguration", || {
            t.lambda
                .update_function_configuration()
                .function_name(name)
                .runtime(Runtime::from(FUNCTION_RUNTIME))
                .handler(FUNCTION_HANDLER)
                .role(&role)
                .set_memory_size(number(spec.memory_mb))
                .set_timeout(number(spec.timeout_s))
                .environment(environment.clone())
                .send()
        })
        .await?;
        ready(t, name).await?;
    }
    Ok(())
}

/// Whether Lambda refused a role it cannot assume yet: IAM is eventually
/// consistent, and a role made seconds ago is not usable everywhere
/// (Lambda developer guide, troubleshooting deployments).
fn role_not_assumable<E: ProvideErrorMetadata>(e: &E) -> bool {
    is(e, &["InvalidParameterValueException"])
        && e.message().is_some_and(|m| m.contains("cannot be assumed"))
}

/// How many times an update goes again after meeting another update in
/// progress: each time it first waits for that one to finish, so more
/// than a few means something else keeps updating the function.
const CONFLICT_RETRIES: u32 = 5;

/// Makes an update call of the function, again after what passes: another
/// update in progress (`ResourceConflictException`: waits for it to end)
/// or a role not yet assumable (waits a little, up to 90 s).
async fn again_while_busy<T, E, F, Fut>(
    t: &AwsTarget,
    name: &str,
    what: &str,
    mut call: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, aws_sdk_lambda::error::SdkError<E, HttpResponse>>>,
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut pause = Duration::from_secs(2);
    let mut conflicts = 0;
    loop {
        t.pacer.write(LAMBDA).await;
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if is(&e, &["ResourceConflictException"]) && conflicts < CONFLICT_RETRIES => {
                conflicts += 1;
                ready(t, name).await?;
            }
            Err(e) if role_not_assumable(&e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(15));
            }
            Err(e) => return Err(fail(&format!("Lambda {what} {name}"), e)),
        }
    }
}

/// What `ready` learned about a function.
pub struct Current {
    pub code_sha256: Option<String>,
}

/// Waits until the function is Active and no update is in progress (the
/// next change to it would otherwise fail with a conflict).
pub async fn ready(t: &AwsTarget, name: &str) -> anyhow::Result<Current> {
    wait_for(
        &format!("function {name} to be ready"),
        Duration::from_secs(600),
        || async {
            // GetFunction has its own, higher limit than the control plane.
            t.pacer.read(GET_FUNCTION).await;
            let c = t
                .lambda
                .get_function()
                .function_name(name)
                .send()
                .await
                .map_err(|e| fail(&format!("Lambda GetFunction {name}"), e))?
                .configuration
                .ok_or_else(|| anyhow::anyhow!("Lambda GetFunction {name}: no configuration"))?;
            if c.last_update_status() == Some(&LastUpdateStatus::Failed)
                || c.state() == Some(&State::Failed)
            {
                anyhow::bail!(
                    "function {name} failed to update: {}",
                    c.last_update_status_reason()
                        .or(c.state_reason())
                        .unwrap_or("no reason given")
                );
            }
            let busy = c.state() == Some(&State::Pending)
                || c.last_update_status() == Some(&LastUpdateStatus::InProgress);
            Ok((!busy).then(|| Current {
                code_sha256: c.code_sha256().map(str::to_owned),
            }))
        },
    )
    .await
}

/// Lets this API (every stage, method and path of it, and nothing else)
/// invoke the function. Reads the policy first: a repeated statement id is
/// not an error everywhere, so idempotence must not rely on one.
pub async fn ensure_permission(t: &AwsTarget, function: &str, api_id: &str) -> anyhow::Result<()> {
    let source = t.env.execute_api_arn(api_id);
    t.pacer.read(GET_POLICY).await;
    let policy = match t.lambda.get_policy().function_name(function).send().await {
        Ok(p) => p.policy.unwrap_or_default(),
        Err(e) if is(&e, &["ResourceNotFoundException"]) => String::new(),
        Err(e) => return Err(fail(&format!("Lambda GetPolicy {function}"), e)),
    };
    match statement_source(&policy, STATEMENT_ID) {
        Some(Some(arn)) if arn == source => return Ok(()),
        Some(_) => {
            t.pacer.write(LAMBDA).await;
            match t
                .lambda
                .remove_permission()
                .function_name(function)
                .statement_id(STATEMENT_ID)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is(&e, &["ResourceNotFoundException"]) => {}
                Err(e) => return Err(fail(&format!("Lambda RemovePermission {function}"), e)),
            }
        }
        None => {}
    }
    t.pacer.write(LAMBDA).await;
    match t
        .lambda
        .add_permission()
        .function_name(function)
        .statement_id(STATEMENT_ID)
        .action("lambda:InvokeFunction")
        .principal("apigateway.amazonaws.com")
        .source_arn(&source)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is(&e, &["ResourceConflictException"]) => Ok(()),
        Err(e) => Err(fail(&format!("Lambda AddPermission {function}"), e)),
    }
}

/// The statement's `AWS:SourceArn` condition: `None` when there is no such
/// statement, `Some(None)` when it has no source condition.
pub fn statement_source(policy: &str, sid: &str) -> Option<Option<String>> {
    let doc: Value = serde_json::from_str(policy).ok()?;
    let statements = doc["Statement"].as_array()?;
    let s = statements.iter().find(|s| s["Sid"] == sid)?;
    let conditions: HashMap<String, Value> =
        serde_json::from_value(s["Condition"].clone()).unwrap_or_default();
    Some(
        conditions
            .values()
            .find_map(|c| c.get("AWS:SourceArn").and_then(Value::as_str))
            .map(str::to_owned),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_give_tenant_and_operation() {
        assert_eq!(
            parse_name("apifactory-acme-get"),
            Some(("acme", Operation::Get))
        );
        assert_eq!(
            parse_name("apifactory-a-get-search"),
            Some(("a-get", Operation::Search))
        );
        assert_eq!(parse_name("apifactory-acme"), None);
        assert_eq!(parse_name("other-acme-get"), None);
    }

    #[test]
    fn the_permission_reads_back_from_the_policy() {
        let policy = json!({"Version": "2012-10-17", "Statement": [{
            "Sid": STATEMENT_ID, "Effect": "Allow",
            "Principal": {"Service": "apigateway.amazonaws.com"},
            "Action": "lambda:InvokeFunction",
            "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:execute-api:us-east-1:1:abc/*"}}
        }]})
        .to_string();
        assert_eq!(
            statement_source(&policy, STATEMENT_ID),
            Some(Some("arn:aws:execute-api:us-east-1:1:abc/*".into()))
        );
        assert_eq!(statement_source(&policy, "other"), None);
        assert_eq!(statement_source("", STATEMENT_ID), None);
    }
}
