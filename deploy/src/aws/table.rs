//! A tenant's DynamoDB table: on-demand, the key and one GSI per indexed
//! field (as `runtime::schema` describes them, the shape the function's
//! store queries), point-in-time recovery and deletion protection on.
//!
//! All of the table's management lives here and in `ops` (the calls on a
//! client and a pacer, which the tests use to make their tables), out of
//! the Lambda binary; every call takes a pacer token first, each poll of a
//! wait included.
//!
//! Two things real DynamoDB does that an emulator does not:
//!
//! - Point-in-time recovery cannot be turned on for a while after
//!   CreateTable: UpdateContinuousBackups answers
//!   `ContinuousBackupsUnavailableException` ("Backups are being enabled for
//!   the table", API_UpdateContinuousBackups), for minutes, and the SDK does
//!   not retry it (it is not throttling). terraform-provider-aws retries it
//!   the same way (PR 4063). Past the bound, the table stays without it and
//!   the next apply's plan turns it on.
//! - A GSI added to a live table is backfilled from its items (IndexStatus
//!   CREATING, Backfilling true) for up to hours, and a Query on it fails
//!   until it is ACTIVE; only one index can be created or deleted at a time
//!   (LimitExceededException "Only 1 online index can be created or deleted
//!   simultaneously per table"; UpdateTable docs: one per call). So apply
//!   starts the next index and returns; observe reports what is still
//!   backfilling ([`spec::BACKFILLING`]) and the plan holds the tenant's function
//!   updates until every index is ACTIVE.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    DeleteGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate, IndexStatus, KeyType,
    PointInTimeRecoveryStatus, TableDescription, TableStatus, Tag,
};
use runtime::names;
use runtime::schema::{Index, TableSchema};
use serde_json::json;

use super::{AwsTarget, Family, Found, Scope, each, fail, is};
use crate::plan::{Action, Change};
use crate::resource::{Address, Kind, TAG_ADOPTED, attrs};
use crate::spec::{self, TableSpec};
use crate::target::Applied;

mod ops;

pub use ops::{TableOptions, create_table, set_point_in_time_recovery, wait_until_active};
use ops::{create_index, definition, describe_table, set_deletion_protection};

const CONTROL: &[Family] = &[Family::DynamoDbControl];
/// ListTagsOfResource has a quota of its own, far below the control
/// plane's.
pub const LIST_TAGS: &[Family] = &[Family::DynamoDbControl, Family::DynamoDbListTags];
/// Writes take a token of the control plane's rate and of the (slower)
/// table-write bucket.
const TABLE_WRITE: &[Family] = &[Family::DynamoDbControl, Family::DynamoDbTableWrite];

/// How long an index deletion or a table update may keep the table from
/// being ACTIVE before apply gives up.
const TABLE_WAIT: Duration = Duration::from_secs(600);

/// The tables of the tenants in scope, by name (one ListTables page per
/// 100 tables): (tenant, table).
pub async fn list(t: &AwsTarget, scope: &Scope) -> anyhow::Result<Vec<(String, String)>> {
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
    Ok(names_found)
}

/// What the plan compares of these tables: three reads each.
pub async fn describe_all(
    t: &AwsTarget,
    names_found: Vec<(String, String)>,
) -> anyhow::Result<Vec<Found>> {
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
    t.pacer.read(LIST_TAGS).await;
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
    let adopted = tags.get(TAG_ADOPTED).is_some_and(|v| v == "true");
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
    let mut backfilling = Vec::new();
    for gsi in desc.global_secondary_indexes() {
        let Some(field) = hash_of(gsi.key_schema()) else {
            continue;
        };
        if gsi.index_name() != Some(names::index(&field).as_str()) {
            continue;
        }
        match gsi.index_status() {
            // On its way out: not there for the plan.
            Some(IndexStatus::Deleting) => continue,
            None | Some(IndexStatus::Active) => {}
            Some(_) => backfilling.push(field.clone()),
        }
        let t = types.get(field.as_str()).copied().unwrap_or("?");
        indexes.insert(field, json!(t));
    }
    let mut found = attrs([
        (spec::KEY, json!(key)),
        (spec::INDEXES, json!(indexes)),
        (spec::BACKFILLING, json!(backfilling)),
        (spec::POINT_IN_TIME_RECOVERY, json!(pitr)),
        (
            spec::DELETION_PROTECTION,
            json!(desc.deletion_protection_enabled().unwrap_or(false)),
        ),
    ]);
    // Absent unless adopted, as in the desired state.
    if adopted {
        found.insert(spec::ADOPTED.to_owned(), json!(true));
    }
    Ok(Some((Address::new(tenant, Kind::Table, name), found)))
}

pub async fn apply(t: &AwsTarget, action: &Action) -> anyhow::Result<Applied> {
    let name = &action.address.name;
    match &action.change {
        Change::Delete => {
            // Only a table carrying apifactory's tags for this tenant.
            t.pacer.read(CONTROL).await;
            let arn = match t.dynamodb.describe_table().table_name(name).send().await {
                Ok(d) => d.table.and_then(|d| d.table_arn).unwrap_or_default(),
                Err(e) if is(&e, &["ResourceNotFoundException"]) => return Ok(Applied::default()),
                Err(e) => return Err(fail(&format!("DescribeTable {name}"), e)),
            };
            t.pacer.read(LIST_TAGS).await;
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
            set_deletion_protection(&t.dynamodb, &t.pacer, name, false).await?;
            t.pacer.write(TABLE_WRITE).await;
            match t.dynamodb.delete_table().table_name(name).send().await {
                Ok(_) => {}
                Err(e) if is(&e, &["ResourceNotFoundException"]) => {}
                Err(e) => return Err(fail(&format!("DeleteTable {name}"), e)),
            }
            Ok(Applied::default())
        }
        Change::Create | Change::Update { .. } => {
            let spec: TableSpec = spec::read(action)?;
            let schema = action.payload.table().ok_or_else(|| {
                anyhow::anyhow!("the plan's action on table {name} carries no schema")
            })?;
            t.pacer.read(CONTROL).await;
            let existing = match t.dynamodb.describe_table().table_name(name).send().await {
                Ok(d) => d.table,
                Err(e) if is(&e, &["ResourceNotFoundException"]) => None,
                Err(e) => return Err(fail(&format!("DescribeTable {name}"), e)),
            };
            let Some(existing) = existing else {
                if spec.adopted {
                    anyhow::bail!("{}", missing_adopted(name));
                }
                let options = TableOptions {
                    deletion_protection: spec.deletion_protection,
                    tags: super::tags(&action.address.tenant).into_iter().collect(),
                };
                create_table(&t.dynamodb, &t.pacer, name, schema, &options).await?;
                if spec.point_in_time_recovery
                    && !set_point_in_time_recovery(
                        &t.dynamodb,
                        &t.pacer,
                        &action.address.tenant,
                        name,
                        true,
                    )
                    .await?
                {
                    t.left_unfinished(&action.address.tenant);
                }
                t.made(super::listing::Made::Table(name.clone()));
                return Ok(Applied::default());
            };
            if spec.adopted {
                if let Some(problem) = key_mismatch(&existing, &schema.key) {
                    anyhow::bail!("{problem}; nothing was changed");
                }
                adopt(t, &action.address.tenant, &existing).await?;
            }
            let key = existing
                .key_schema()
                .iter()
                .find(|k| k.key_type() == &KeyType::Hash)
                .map(|k| k.attribute_name());
            if key != Some(schema.key.as_str()) {
                anyhow::bail!(
                    "table {name} is keyed on {:?}, the tenant file on {:?}: a table's key cannot change (export the items, destroy with --delete-data, apply, import)",
                    key.unwrap_or_default(),
                    schema.key
                );
            }
            // Settings first: an index being backfilled keeps the table
            // busy for as long as it takes, and these need not wait for it.
            if existing.deletion_protection_enabled() != Some(spec.deletion_protection) {
                t.pacer.write(TABLE_WRITE).await;
                t.dynamodb
                    .update_table()
                    .table_name(name)
                    .deletion_protection_enabled(spec.deletion_protection)
                    .send()
                    .await
                    .map_err(|e| fail(&format!("UpdateTable {name}"), e))?;
                wait_for_table(t, name).await?;
            }
            if changed(action, spec::POINT_IN_TIME_RECOVERY)
                && !set_point_in_time_recovery(
                    &t.dynamodb,
                    &t.pacer,
                    &action.address.tenant,
                    name,
                    spec.point_in_time_recovery,
                )
                .await?
            {
                t.left_unfinished(&action.address.tenant);
            }
            if spec.adopted && action.change == Change::Create {
                build_indexes(t, &action.address.tenant, name, schema).await?;
            } else if changed(action, spec::INDEXES) {
                step_indexes(t, name, schema).await?;
            }
            Ok(Applied::default())
        }
    }
}

/// Why a table cannot be adopted for a collection keyed on `key`: what
/// the runtime needs is a hash key of that name, of type S, and no range
/// key (an item is found by its key alone). `None` when it fits.
pub fn key_mismatch(desc: &TableDescription, key: &str) -> Option<String> {
    let name = desc.table_name().unwrap_or_default();
    let types: BTreeMap<&str, &str> = desc
        .attribute_definitions()
        .iter()
        .map(|d| (d.attribute_name(), d.attribute_type().as_str()))
        .collect();
    let found: Vec<String> = desc
        .key_schema()
        .iter()
        .map(|k| {
            let attribute = k.attribute_name();
            format!(
                "{} key {attribute:?} ({})",
                if k.key_type() == &KeyType::Hash {
                    "hash"
                } else {
                    "range"
                },
                types.get(attribute).copied().unwrap_or("?")
            )
        })
        .collect();
    let fits = matches!(
        desc.key_schema(),
        [only] if only.key_type() == &KeyType::Hash
            && only.attribute_name() == key
            && types.get(key) == Some(&"S")
    );
    (!fits).then(|| {
        format!(
            "table {name} cannot be adopted: expected a hash key {key:?} of type S and no range key (the collection's key), found {}",
            found.join(" and ")
        )
    })
}

fn missing_adopted(name: &str) -> String {
    format!(
        "table {name} does not exist: `[collection] table` names an existing table to adopt (leave it out and apply creates the tenant's own)"
    )
}

/// Reads the table each of these tenants adopts and fails, before any
/// write, when one is missing, has another key schema than the file's
/// collection, or is already another tenant's. Reads only.
pub async fn check_adopted(t: &AwsTarget, tenants: &[runtime::Tenant]) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for tenant in tenants {
        let Some(name) = &tenant.collection.table else {
            continue;
        };
        t.pacer.read(CONTROL).await;
        let desc = match t.dynamodb.describe_table().table_name(name).send().await {
            Ok(d) => d.table,
            Err(e) if is(&e, &["ResourceNotFoundException"]) => None,
            Err(e) => return Err(fail(&format!("DescribeTable {name}"), e)),
        };
        let Some(desc) = desc else {
            problems.push(tenant.key_error(
                "collection.table",
                "an existing table in this region",
                missing_adopted(name),
            ));
            continue;
        };
        if let Some(problem) = key_mismatch(&desc, &tenant.collection.key) {
            problems.push(tenant.key_error(
                "collection.table",
                "a table keyed as the collection is",
                problem,
            ));
            continue;
        }
        if let Some(other) = owner(t, &desc).await?
            && other != tenant.id
        {
            problems.push(tenant.key_error(
                "collection.table",
                "a table no other tenant has",
                format!("table {name}, tagged as tenant {other}'s"),
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "{} problem(s) with the tables the tenant files adopt; nothing was changed:\n{}",
        problems.len(),
        runtime::TenantErrors(problems)
    )
}

/// The tenant a table is tagged as apifactory's for, if any.
async fn owner(t: &AwsTarget, desc: &TableDescription) -> anyhow::Result<Option<String>> {
    let arn = desc.table_arn().unwrap_or_default();
    t.pacer.read(LIST_TAGS).await;
    let tags = t
        .dynamodb
        .list_tags_of_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| fail(&format!("ListTagsOfResource {arn}"), e))?;
    let tags = tags
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    Ok(super::tagged_tenant(Some(&tags)).map(str::to_owned))
}

/// Marks an existing table as the tenant's, adopted: apifactory's tags
/// and [`TAG_ADOPTED`], so that observe finds it and destroy keeps it.
/// A table already another tenant's is refused. Idempotent.
async fn adopt(t: &AwsTarget, tenant: &str, desc: &TableDescription) -> anyhow::Result<()> {
    let name = desc.table_name().unwrap_or_default();
    if let Some(other) = owner(t, desc).await?
        && other != tenant
    {
        anyhow::bail!("table {name} is tagged as tenant {other}'s; nothing was changed");
    }
    let mut tags: Vec<Tag> = Vec::new();
    let mut all = super::tags(tenant);
    all.insert(TAG_ADOPTED.to_owned(), "true".to_owned());
    for (k, v) in all {
        tags.push(
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| anyhow::anyhow!("a tag: {e}"))?,
        );
    }
    t.pacer.write(CONTROL).await;
    t.dynamodb
        .tag_resource()
        .resource_arn(desc.table_arn().unwrap_or_default())
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| fail(&format!("TagResource {name}"), e))?;
    Ok(())
}

/// The indexes of a table being adopted, built before the apply goes on
/// to the functions that query them: the plan could not hold those back
/// (it saw no table before it was tagged), so the apply waits here, one
/// index at a time as DynamoDB allows, each backfilled from the items the
/// table already holds. Past the bound the tenant is left unfinished and
/// the next plan waits for the rest like any index change.
async fn build_indexes(
    t: &AwsTarget,
    tenant: &str,
    name: &str,
    schema: &TableSchema,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + TABLE_WAIT;
    loop {
        step_indexes(t, name, schema).await?;
        let left = indexes_not_active(t, name).await?;
        if left.is_empty() {
            return Ok(());
        }
        let bound = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ready = super::wait_for(&format!("table {name}'s indexes ACTIVE"), bound, || async {
            Ok(indexes_not_active(t, name).await?.is_empty().then_some(()))
        })
        .await;
        if ready.is_err() {
            eprintln!(
                "{tenant}: table {name}: index(es) {} still backfilling after {} s; the next apply goes on",
                left.join(", "),
                TABLE_WAIT.as_secs()
            );
            t.left_unfinished(tenant);
            return Ok(());
        }
    }
}

/// Waits for the table itself to be ACTIVE, not for its indexes (one may
/// be backfilling for hours).
async fn wait_for_table(t: &AwsTarget, name: &str) -> anyhow::Result<()> {
    super::wait_for(&format!("table {name} ACTIVE"), TABLE_WAIT, || async {
        let desc = describe_table(&t.dynamodb, &t.pacer, name).await?;
        Ok((desc.table_status() == Some(&TableStatus::Active)).then_some(()))
    })
    .await
}

/// The names of the table's indexes that are not ACTIVE yet (creating or
/// backfilling), as DescribeTable says now.
pub async fn indexes_not_active(t: &AwsTarget, name: &str) -> anyhow::Result<Vec<String>> {
    let desc = describe_table(&t.dynamodb, &t.pacer, name).await?;
    let mut names = not_active(&desc);
    if desc.table_status() != Some(&TableStatus::Active) {
        names.push(format!(
            "(table {})",
            desc.table_status().map(|s| s.as_str()).unwrap_or("?")
        ));
    }
    Ok(names)
}

/// The names of the indexes that are not ACTIVE yet (creating or
/// backfilling).
fn not_active(desc: &TableDescription) -> Vec<String> {
    desc.global_secondary_indexes()
        .iter()
        .filter(|i| {
            !matches!(
                i.index_status(),
                None | Some(IndexStatus::Active) | Some(IndexStatus::Deleting)
            )
        })
        .filter_map(|i| i.index_name().map(str::to_owned))
        .collect()
}

/// Moves the table's GSIs toward the schema's indexes as far as DynamoDB
/// allows without waiting for a backfill: deletes the unwanted ones (one
/// per UpdateTable, each awaited: a deletion is short), then creates the
/// next missing one and returns while it backfills. Nothing is started
/// while an index is being created (AWS refuses a second one). A later
/// apply (or `apply --wait`, which waits and applies again) continues.
async fn step_indexes(t: &AwsTarget, name: &str, schema: &TableSchema) -> anyhow::Result<()> {
    let want: BTreeMap<&str, &Index> = schema
        .indexes
        .iter()
        .map(|i| (i.name.as_str(), i))
        .collect();
    let deadline = tokio::time::Instant::now() + TABLE_WAIT;
    let mut pause = Duration::from_millis(200);
    loop {
        let desc = describe_table(&t.dynamodb, &t.pacer, name).await?;
        let statuses: BTreeMap<String, Option<IndexStatus>> = desc
            .global_secondary_indexes()
            .iter()
            .filter_map(|i| Some((i.index_name()?.to_owned(), i.index_status().cloned())))
            .collect();
        let deleting = statuses
            .values()
            .any(|s| s.as_ref() == Some(&IndexStatus::Deleting));
        if deleting || desc.table_status() != Some(&TableStatus::Active) {
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "table {name}: still busy after {} s (an index being deleted)",
                    TABLE_WAIT.as_secs()
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            continue;
        }
        if !not_active(&desc).is_empty() {
            return Ok(());
        }
        let have: BTreeSet<&str> = statuses.keys().map(String::as_str).collect();
        let update = if let Some(gone) = have.iter().find(|n| !want.contains_key(*n)) {
            let delete = DeleteGlobalSecondaryIndexAction::builder()
                .index_name(*gone)
                .build()
                .map_err(|e| anyhow::anyhow!("an index deletion: {e}"))?;
            (
                None,
                GlobalSecondaryIndexUpdate::builder().delete(delete).build(),
            )
        } else if let Some(index) = want.values().find(|i| !have.contains(i.name.as_str())) {
            // Every key attribute of the table and of its indexes, the new
            // one's included: AWS merges them with the table's, but an
            // emulator (moto) replaces the table's with what is sent.
            let mut definitions = vec![definition(&schema.key, runtime::schema::KEY_TYPE)?];
            for i in want.values() {
                if have.contains(i.name.as_str()) || i.name == index.name {
                    definitions.push(definition(&i.attribute, i.attribute_type)?);
                }
            }
            (
                Some(definitions),
                GlobalSecondaryIndexUpdate::builder()
                    .create(create_index(index)?)
                    .build(),
            )
        } else {
            return Ok(());
        };
        t.pacer.write(TABLE_WRITE).await;
        t.dynamodb
            .update_table()
            .table_name(name)
            .set_attribute_definitions(update.0)
            .global_secondary_index_updates(update.1)
            .send()
            .await
            .map_err(|e| fail(&format!("UpdateTable {name}"), e))?;
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
