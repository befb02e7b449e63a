//! A tenant's DynamoDB table: on-demand, the key and one GSI per indexed
//! field (through `runtime::dynamo`, the same code the store's tests use),
//! point-in-time recovery and deletion protection on.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{KeyType, PointInTimeRecoveryStatus};
use runtime::dynamo::{self, TableOptions};
use runtime::names;
use serde_json::{Value, json};

use super::{AwsTarget, Family, Found, Scope, each, fail, is};
use crate::desired::Desired;
use crate::plan::{Action, Change};
use crate::resource::{Address, Kind, attrs};
use crate::target::Applied;

const CONTROL: &[Family] = &[Family::DynamoDbControl];
/// Writes take a token of the control plane's rate and of the (slower)
/// table-write bucket.
const TABLE_WRITE: &[Family] = &[Family::DynamoDbControl, Family::DynamoDbTableWrite];

pub async fn observe(t: &AwsTarget, scope: &Scope) -> anyhow::Result<Vec<Found>> {
    let prefix = format!("{}-", names::PREFIX);
    let mut names_found = Vec::new();
    let mut start: Option<String> = None;
    loop {
        t.pacer.read(CONTROL).await;
        let page = t
            .dynamodb
            .list_tables()
            .set_exclusive_start_table_name(start.take())
            .limit(100)
            .send()
            .await
            .map_err(|e| fail("DynamoDB ListTables", e))?;
        for name in page.table_names() {
            if let Some(tenant) = super::tenant_between(name, &prefix, "")
                && scope.covers(tenant)
            {
                names_found.push((tenant.to_owned(), name.clone()));
            }
        }
        match page.last_evaluated_table_name {
            Some(last) => start = Some(last),
            None => break,
        }
    }
    let t = t.clone();
    let found = each(names_found, 8, move |(tenant, name)| {
        let t = t.clone();
        async move { describe(&t, &tenant, &name).await }
    })
    .await?;
    Ok(found.into_iter().flatten().collect())
}

/// A table's attributes, or `None` when it is not apifactory's.
async fn describe(t: &AwsTarget, tenant: &str, name: &str) -> anyhow::Result<Option<Found>> {
    t.pacer.read(CONTROL).await;
    let described = match t.dynamodb.describe_table().table_name(name).send().await {
        Ok(d) => d,
        Err(e) if is(&e, &["ResourceNotFoundException"]) => return Ok(None),
        Err(e) => return Err(fail(&format!("DescribeTable {name}"), e)),
    };
    let Some(desc) = described.table else {
        return Ok(None);
    };
    let arn = desc.table_arn().unwrap_or_default().to_owned();
    t.pacer.read(CONTROL).await;
    let tags = t
        .dynamodb
        .list_tags_of_resource()
        .resource_arn(&arn)
        .send()
        .await
        .map_err(|e| fail(&format!("ListTagsOfResource {name}"), e))?;
    let tags = tags
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    if super::tagged_tenant(Some(&tags)) != Some(tenant) {
        return Ok(None);
    }
    t.pacer.read(CONTROL).await;
    let backups = t
        .dynamodb
        .describe_continuous_backups()
        .table_name(name)
        .send()
        .await
        .map_err(|e| fail(&format!("DescribeContinuousBackups {name}"), e))?;
    let pitr = backups
        .continuous_backups_description()
        .and_then(|c| c.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        == Some(&PointInTimeRecoveryStatus::Enabled);

    let types: BTreeMap<&str, &str> = desc
        .attribute_definitions()
        .iter()
        .map(|d| (d.attribute_name(), d.attribute_type().as_str()))
        .collect();
    let hash_of = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
        schema
            .iter()
            .find(|k| k.key_type() == &KeyType::Hash)
            .map(|k| k.attribute_name().to_owned())
    };
    let key = hash_of(desc.key_schema()).unwrap_or_default();
    let mut indexes = BTreeMap::new();
    for gsi in desc.global_secondary_indexes() {
        let Some(field) = hash_of(gsi.key_schema()) else {
            continue;
        };
        if gsi.index_name() == Some(names::index(&field).as_str()) {
            let t = types.get(field.as_str()).copied().unwrap_or("?");
            indexes.insert(field, json!(t));
        }
    }
    Ok(Some((
        Address::new(tenant, Kind::Table, name),
        attrs([
            ("key", json!(key)),
            ("indexes", json!(indexes)),
            ("point_in_time_recovery", json!(pitr)),
            (
                "deletion_protection",
                json!(desc.deletion_protection_enabled().unwrap_or(false)),
            ),
        ]),
    )))
}

pub async fn apply(t: &AwsTarget, action: &Action, desired: &Desired) -> anyhow::Result<Applied> {
    let name = &action.address.name;
    let on = |k: &str| action.attrs.get(k) == Some(&Value::Bool(true));
    match &action.change {
        Change::Delete => {
            // Only a table carrying apifactory's tags for this tenant.
            t.pacer.read(CONTROL).await;
            let arn = match t.dynamodb.describe_table().table_name(name).send().await {
                Ok(d) => d.table.and_then(|d| d.table_arn).unwrap_or_default(),
                Err(e) if is(&e, &["ResourceNotFoundException"]) => return Ok(Applied::default()),
                Err(e) => return Err(fail(&format!("DescribeTable {name}"), e)),
            };
            t.pacer.read(CONTROL).await;
            let tags = t
                .dynamodb
                .list_tags_of_resource()
                .resource_arn(&arn)
                .send()
                .await
                .map_err(|e| fail(&format!("ListTagsOfResource {name}"), e))?;
            let tags = tags
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect();
            if super::tagged_tenant(Some(&tags)) != Some(action.address.tenant.as_str()) {
                anyhow::bail!(
                    "table {name} is not tagged as tenant {}'s",
                    action.address.tenant
                );
            }
            t.pacer.write(TABLE_WRITE).await;
            dynamo::set_deletion_protection(&t.dynamodb, name, false).await?;
            t.pacer.write(TABLE_WRITE).await;
            match t.dynamodb.delete_table().table_name(name).send().await {
                Ok(_) => {}
                Err(e) if is(&e, &["ResourceNotFoundException"]) => {}
                Err(e) => return Err(fail(&format!("DeleteTable {name}"), e)),
            }
            Ok(Applied::default())
        }
        Change::Create | Change::Update { .. } => {
            let tenant = desired.tenants.get(&action.address.tenant).ok_or_else(|| {
                anyhow::anyhow!(
                    "tenant {} is not in the desired state",
                    action.address.tenant
                )
            })?;
            t.pacer.read(CONTROL).await;
            let existing = match t.dynamodb.describe_table().table_name(name).send().await {
                Ok(d) => d.table,
                Err(e) if is(&e, &["ResourceNotFoundException"]) => None,
                Err(e) => return Err(fail(&format!("DescribeTable {name}"), e)),
            };
            let Some(existing) = existing else {
                t.pacer.write(TABLE_WRITE).await;
                let options = TableOptions {
                    deletion_protection: on("deletion_protection"),
                    point_in_time_recovery: on("point_in_time_recovery"),
                    tags: super::tags(&tenant.id).into_iter().collect(),
                };
                dynamo::create_table_with(&t.dynamodb, name, &tenant.collection, &options).await?;
                t.made(super::listing::Made::Table(name.clone()));
                return Ok(Applied::default());
            };
            let key = existing
                .key_schema()
                .iter()
                .find(|k| k.key_type() == &KeyType::Hash)
                .map(|k| k.attribute_name());
            if key != Some(tenant.collection.key.as_str()) {
                anyhow::bail!(
                    "table {name} is keyed on {:?}, the tenant file on {:?}: a table's key cannot change (export the items, destroy with --delete-data, apply, import)",
                    key.unwrap_or_default(),
                    tenant.collection.key
                );
            }
            if changed(action, "indexes") {
                t.pacer.write(TABLE_WRITE).await;
                dynamo::update_indexes(&t.dynamodb, name, &tenant.collection).await?;
            }
            if existing.deletion_protection_enabled() != Some(on("deletion_protection")) {
                t.pacer.write(TABLE_WRITE).await;
                dynamo::set_deletion_protection(&t.dynamodb, name, on("deletion_protection"))
                    .await?;
            }
            if changed(action, "point_in_time_recovery") {
                t.pacer.write(TABLE_WRITE).await;
                dynamo::set_point_in_time_recovery(&t.dynamodb, name, on("point_in_time_recovery"))
                    .await?;
            }
            Ok(Applied::default())
        }
    }
}

/// Whether an update names this field (creates set everything).
pub fn changed(action: &Action, field: &str) -> bool {
    match &action.change {
        Change::Create => true,
        Change::Update { fields } => fields.iter().any(|f| f.field == field),
        Change::Delete => false,
    }
}
