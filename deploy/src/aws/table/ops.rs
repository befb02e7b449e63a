//! The table's DynamoDB calls on a client and a pacer, apart from any
//! target (the tests make their tables with them too): create and wait,
//! point-in-time recovery through AWS's window, deletion protection, and
//! the CreateTable and UpdateTable input built from `runtime::schema`.
//! Every call takes a pacer token first, each poll of a wait included.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    IndexStatus, KeySchemaElement, KeyType, PointInTimeRecoverySpecification, Projection,
    ProjectionType, ScalarAttributeType, TableDescription, TableStatus, Tag,
};
use runtime::schema::{AttributeType, Index, TableSchema};

use super::{CONTROL, TABLE_WRITE};
use crate::aws::{Pacer, fail, is};

/// How long a new table's apply keeps retrying UpdateContinuousBackups
/// while AWS answers ContinuousBackupsUnavailableException;
/// `APIFACTORY_PITR_WAIT` (seconds) overrides it.
const PITR_WAIT: Duration = Duration::from_secs(300);

/// How long [`create_table`] waits for the table and its indexes to become
/// ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(600);

/// Turns point-in-time recovery on or off, retrying through the window
/// after CreateTable in which AWS answers
/// ContinuousBackupsUnavailableException, each try paced. When the window
/// outlasts the bound, the tenant's apply goes on without it (the table
/// and its data are there; recovery points are not yet): the next plan
/// sees it off and turns it on, and this says so, naming `tenant`. True
/// when the setting took, false when it was left for the next apply.
pub async fn set_point_in_time_recovery(
    ddb: &Client,
    pacer: &Pacer,
    tenant: &str,
    name: &str,
    enabled: bool,
) -> anyhow::Result<bool> {
    let bound = pitr_wait();
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_secs(1);
    let spec = PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(enabled)
        .build()
        .map_err(|e| anyhow::anyhow!("a point-in-time recovery specification: {e}"))?;
    loop {
        pacer.write(TABLE_WRITE).await;
        match ddb
            .update_continuous_backups()
            .table_name(name)
            .point_in_time_recovery_specification(spec.clone())
            .send()
            .await
        {
            Ok(_) => return Ok(true),
            Err(e) if is(&e, &["ContinuousBackupsUnavailableException"]) => {
                if start.elapsed() + pause > bound {
                    eprintln!(
                        "{tenant}: table {name}: point-in-time recovery is not available yet \
                         (ContinuousBackupsUnavailableException for {} s after the table was made); \
                         the table is in place without it, and the next apply turns it on",
                        start.elapsed().as_secs()
                    );
                    return Ok(false);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(20));
            }
            Err(e) => return Err(fail(&format!("UpdateContinuousBackups {name}"), e)),
        }
    }
}

fn pitr_wait() -> Duration {
    std::env::var("APIFACTORY_PITR_WAIT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(PITR_WAIT)
}

/// The table's description, paced.
pub(super) async fn describe_table(
    ddb: &Client,
    pacer: &Pacer,
    name: &str,
) -> anyhow::Result<TableDescription> {
    pacer.read(CONTROL).await;
    ddb.describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|e| fail(&format!("DescribeTable {name}"), e))?
        .table
        .ok_or_else(|| anyhow::anyhow!("DescribeTable {name}: no description"))
}

/// What a new table has beyond its schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// DeleteTable fails until this is turned off again.
    pub deletion_protection: bool,
    pub tags: Vec<(String, String)>,
}

/// Creates a table of this schema: on-demand billing, the key attribute as
/// hash key, one global secondary index per schema index, deletion
/// protection and tags as the options say. Returns once the table and its
/// indexes are ACTIVE. Point-in-time recovery cannot be asked for at
/// creation: [`set_point_in_time_recovery`] turns it on after.
pub async fn create_table(
    ddb: &Client,
    pacer: &Pacer,
    table: &str,
    schema: &TableSchema,
    options: &TableOptions,
) -> anyhow::Result<()> {
    let definitions = schema
        .attributes()
        .map(|(name, t)| definition(name, t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let indexes = schema
        .indexes
        .iter()
        .map(global_index)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tags = options
        .tags
        .iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| anyhow::anyhow!("a tag: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    pacer.write(TABLE_WRITE).await;
    let created = ddb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(definitions))
        .key_schema(hash_key(&schema.key)?)
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .set_deletion_protection_enabled(options.deletion_protection.then_some(true))
        .set_tags((!tags.is_empty()).then_some(tags))
        .send()
        .await;
    match created {
        Ok(_) => {}
        // It exists: most likely made by this very call, whose response was
        // lost and whose retry met the table the first attempt made. Wait
        // for it like for a new one (the caller compares its schema on its
        // next read).
        Err(e) if is(&e, &["ResourceInUseException"]) => {}
        Err(e) => return Err(fail(&format!("CreateTable {table}"), e)),
    }
    wait_until_active(ddb, pacer, table).await
}

/// Turns deletion protection on or off, and waits for the table and its
/// indexes to be ACTIVE again.
pub(super) async fn set_deletion_protection(
    ddb: &Client,
    pacer: &Pacer,
    table: &str,
    enabled: bool,
) -> anyhow::Result<()> {
    pacer.write(TABLE_WRITE).await;
    ddb.update_table()
        .table_name(table)
        .deletion_protection_enabled(enabled)
        .send()
        .await
        .map_err(|e| fail(&format!("UpdateTable {table}"), e))?;
    wait_until_active(ddb, pacer, table).await
}

/// Polls DescribeTable, each poll paced, until the table and all its global
/// secondary indexes are ACTIVE (ten minutes at most).
pub async fn wait_until_active(ddb: &Client, pacer: &Pacer, table: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    let mut pause = Duration::from_millis(50);
    loop {
        pacer.read(CONTROL).await;
        let out = ddb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| fail(&format!("DescribeTable {table}"), e))?;
        let description = out.table;
        let table_active = description
            .as_ref()
            .is_some_and(|t| t.table_status == Some(TableStatus::Active));
        let indexes_active = description
            .as_ref()
            .map(|t| t.global_secondary_indexes())
            .unwrap_or_default()
            .iter()
            .all(|i| matches!(i.index_status, None | Some(IndexStatus::Active)));
        if table_active && indexes_active {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "table {table} is not ACTIVE after {} s",
                ACTIVE_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

fn scalar(t: AttributeType) -> ScalarAttributeType {
    match t {
        AttributeType::S => ScalarAttributeType::S,
        AttributeType::N => ScalarAttributeType::N,
    }
}

pub(super) fn definition(field: &str, t: AttributeType) -> anyhow::Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(field)
        .attribute_type(scalar(t))
        .build()
        .map_err(|e| anyhow::anyhow!("an attribute definition: {e}"))
}

fn hash_key(attribute: &str) -> anyhow::Result<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(attribute)
        .key_type(KeyType::Hash)
        .build()
        .map_err(|e| anyhow::anyhow!("a key schema: {e}"))
}

fn all_attributes() -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::All)
        .build()
}

/// An index of a new table: keyed on its field, every attribute projected.
fn global_index(index: &Index) -> anyhow::Result<GlobalSecondaryIndex> {
    GlobalSecondaryIndex::builder()
        .index_name(&index.name)
        .key_schema(hash_key(&index.attribute)?)
        .projection(all_attributes())
        .build()
        .map_err(|e| anyhow::anyhow!("a global secondary index: {e}"))
}

/// The same index added to a live table.
pub(super) fn create_index(index: &Index) -> anyhow::Result<CreateGlobalSecondaryIndexAction> {
    CreateGlobalSecondaryIndexAction::builder()
        .index_name(&index.name)
        .key_schema(hash_key(&index.attribute)?)
        .projection(all_attributes())
        .build()
        .map_err(|e| anyhow::anyhow!("an index creation: {e}"))
}
