//! The IAM role of a tenant's functions: under the path `/apifactory/` (so
//! one list call finds them all), trusting Lambda only, with one inline
//! policy (see `policy`).

use runtime::{Operation, names};
use serde_json::json;

use super::policy::{self, Grant, POLICY_NAME};
use super::{AwsTarget, Family, Found, ROLE_PATH, Scope, each, fail, is};
use crate::plan::{Action, Change};
use crate::resource::{Address, Kind, attrs};
use crate::spec::{self, RoleSpec};
use crate::target::Applied;

const IAM: &[Family] = &[Family::Iam];
const SUFFIX: &str = "-functions";

/// The roles of the tenants in scope (one ListRoles page per 1,000):
/// (tenant, role).
pub async fn list(t: &AwsTarget, scope: &Scope) -> anyhow::Result<Vec<(String, String)>> {
    let prefix = format!("{}-", names::PREFIX);
    let mut roles = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        t.pacer.read(IAM).await;
        let page = t
            .iam
            .list_roles()
            .path_prefix(ROLE_PATH)
            .set_marker(marker.take())
            .max_items(1000)
            .send()
            .await
            .map_err(|e| fail("IAM ListRoles", e))?;
        for role in page.roles() {
            if let Some(tenant) = super::tenant_between(role.role_name(), &prefix, SUFFIX)
                && scope.covers(tenant)
                && role.role_name() == names::role(tenant)
            {
                roles.push((tenant.to_owned(), role.role_name().to_owned()));
            }
        }
        match (page.is_truncated(), page.marker()) {
            (true, Some(m)) => marker = Some(m.to_owned()),
            _ => break,
        }
    }
    Ok(roles)
}

/// What each role grants: its inline policy, one read each.
pub async fn grants(t: &AwsTarget, roles: Vec<(String, String)>) -> anyhow::Result<Vec<Found>> {
    let t = t.clone();
    each(roles, 8, move |(tenant, name)| {
        let t = t.clone();
        async move {
            t.pacer.read(IAM).await;
            let grant = match t
                .iam
                .get_role_policy()
                .role_name(&name)
                .policy_name(POLICY_NAME)
                .send()
                .await
            {
                Ok(p) => policy::parse(p.policy_document()),
                Err(e) if is(&e, &["NoSuchEntity"]) => None,
                Err(e) => return Err(fail(&format!("IAM GetRolePolicy {name}"), e)),
            };
            // A role without its policy shows as granting nothing, so the
            // plan puts the policy back.
            let grant = grant.unwrap_or(Grant {
                table: String::new(),
                indexes: Vec::new(),
                operations: Vec::new(),
                log_groups: Vec::new(),
            });
            Ok((
                Address::new(&tenant, Kind::Role, name),
                attrs([
                    (spec::TABLE, json!(grant.table)),
                    (spec::INDEXES, json!(grant.indexes)),
                    (
                        spec::OPERATIONS,
                        json!(
                            grant
                                .operations
                                .iter()
                                .map(|o| o.as_str())
                                .collect::<Vec<_>>()
                        ),
                    ),
                ]),
            ))
        }
    })
    .await
}

/// What only `--refresh` reads of each role (one GetRole each): who its
/// trust policy lets assume it, and its tags.
pub async fn details(t: &AwsTarget, roles: Vec<(String, String)>) -> anyhow::Result<Vec<Found>> {
    let t = t.clone();
    each(roles, 8, move |(tenant, name)| {
        let t = t.clone();
        async move {
            t.pacer.read(IAM).await;
            let role = t
                .iam
                .get_role()
                .role_name(&name)
                .send()
                .await
                .map_err(|e| fail(&format!("IAM GetRole {name}"), e))?
                .role
                .ok_or_else(|| anyhow::anyhow!("IAM GetRole {name}: no role"))?;
            let trusted = policy::trusted(role.assume_role_policy_document().unwrap_or_default());
            let tags = super::owned_tags(role.tags().iter().map(|t| (t.key(), t.value())));
            Ok((
                Address::new(&tenant, Kind::Role, name),
                attrs([(spec::TRUST, json!(trusted)), (spec::TAGS, tags)]),
            ))
        }
    })
    .await
}

/// The grant a role's spec asks for.
fn grant(tenant: &str, spec: RoleSpec) -> Grant {
    let operations: Vec<Operation> = spec
        .operations
        .iter()
        .filter_map(|o| Operation::parse(o))
        .collect();
    Grant {
        table: spec.table,
        indexes: spec.indexes,
        log_groups: operations
            .iter()
            .map(|op| names::log_group(tenant, *op))
            .collect(),
        operations,
    }
}

pub async fn apply(t: &AwsTarget, action: &Action) -> anyhow::Result<Applied> {
    let name = &action.address.name;
    match &action.change {
        Change::Delete => {
            t.pacer.write(IAM).await;
            match t
                .iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(POLICY_NAME)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is(&e, &["NoSuchEntity"]) => {}
                Err(e) => return Err(fail(&format!("IAM DeleteRolePolicy {name}"), e)),
            }
            t.pacer.write(IAM).await;
            match t.iam.delete_role().role_name(name).send().await {
                Ok(_) => {}
                Err(e) if is(&e, &["NoSuchEntity"]) => {}
                Err(e) => return Err(fail(&format!("IAM DeleteRole {name}"), e)),
            }
        }
        Change::Create | Change::Update { .. } => {
            let grant = grant(&action.address.tenant, spec::read(action)?);
            let trust = policy::trust();
            t.pacer.write(IAM).await;
            let created = t
                .iam
                .create_role()
                .role_name(name)
                .path(ROLE_PATH)
                .assume_role_policy_document(&trust)
                .description(format!(
                    "apifactory: the functions of tenant {}",
                    action.address.tenant
                ))
                .set_tags(Some(iam_tags(&action.address.tenant)?))
                .send()
                .await;
            match created {
                Ok(_) => t.made(super::listing::Made::Role(name.clone())),
                Err(e) if is(&e, &["EntityAlreadyExists"]) => {
                    // Made by an earlier run: make sure it trusts Lambda only.
                    t.pacer.write(IAM).await;
                    t.iam
                        .update_assume_role_policy()
                        .role_name(name)
                        .policy_document(&trust)
                        .send()
                        .await
                        .map_err(|e| fail(&format!("IAM UpdateAssumeRolePolicy {name}"), e))?;
                    if super::table::changed(action, spec::TAGS) {
                        t.pacer.write(IAM).await;
                        t.iam
                            .tag_role()
                            .role_name(name)
                            .set_tags(Some(iam_tags(&action.address.tenant)?))
                            .send()
                            .await
                            .map_err(|e| fail(&format!("IAM TagRole {name}"), e))?;
                    }
                }
                Err(e) => return Err(fail(&format!("IAM CreateRole {name}"), e)),
            }
            t.pacer.write(IAM).await;
            t.iam
                .put_role_policy()
                .role_name(name)
                .policy_name(POLICY_NAME)
                .policy_document(policy::document(&t.env, &grant))
                .send()
                .await
                .map_err(|e| fail(&format!("IAM PutRolePolicy {name}"), e))?;
        }
    }
    Ok(Applied::default())
}

fn iam_tags(tenant: &str) -> anyhow::Result<Vec<aws_sdk_iam::types::Tag>> {
    super::tags(tenant)
        .into_iter()
        .map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| anyhow::anyhow!("an IAM tag: {e}"))
        })
        .collect()
}
