//! `plan --check-data` and `apply --check-data` on AWS: every stored item
//! of a tenant's table read by a parallel Scan (`Segment` of
//! `TotalSegments`), each page paced ([`Family::DynamoDbScan`]), and held
//! to the new tenant file's rules ([`crate::schema_change`]).
//!
//! Why only with the flag: a Scan reads the whole table, which costs one
//! read capacity unit per 8 KB read (eventually consistent) however few
//! attributes come back; a projection of the key and the declared fields
//! only saves the transfer. Without the flag the plan says the items were
//! not checked.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use runtime::Tenant;
use runtime::dynamo::from_attribute;
use serde_json::Map;

use super::pacer::Family;
use super::{AwsTarget, fail, is};
use crate::schema_change::{StoredData, Tally, compare};

/// Segments read at once: enough to keep the pacer's rate busy while
/// each waits on its page, few enough for a small table's single page.
pub const SEGMENTS: i32 = 4;

/// What the tenants' stored items mean for their new files: read with
/// `check` (tenants without a table are left out: nothing is stored),
/// otherwise each tenant marked as not checked.
pub async fn stored(
    t: &AwsTarget,
    tenants: &[Tenant],
    check: bool,
) -> anyhow::Result<Vec<StoredData>> {
    let mut out = Vec::new();
    for tenant in tenants {
        if !check {
            out.push(StoredData {
                tenant: tenant.id.clone(),
                checked: None,
                findings: Vec::new(),
            });
            continue;
        }
        if let Some(tally) = scan(t, tenant).await? {
            out.push(tally.done(&tenant.id));
        }
    }
    Ok(out)
}

/// Every item of the tenant's table counted against its file; `None`
/// when it has no table.
async fn scan(t: &AwsTarget, tenant: &Tenant) -> anyhow::Result<Option<Tally>> {
    let c = &tenant.collection;
    let table = tenant.collection.table_name(&tenant.id);
    let tally = Tally::new(c, compare(None, c));
    let mut names = HashMap::from([("#k".to_owned(), c.key.clone())]);
    for (i, field) in tally.fields().into_iter().enumerate() {
        names.insert(format!("#f{i}"), field);
    }
    let mut projection: Vec<&str> = names.keys().map(String::as_str).collect();
    projection.sort();
    let projection = projection.join(", ");
    let segments = (0..SEGMENTS).map(|segment| {
        let (mut tally, names, projection, table) = (
            tally.clone(),
            names.clone(),
            projection.clone(),
            table.clone(),
        );
        async move {
            let mut start = None;
            loop {
                t.pacer.read(&[Family::DynamoDbScan]).await;
                let page = t
                    .dynamodb
                    .scan()
                    .table_name(&table)
                    .segment(segment)
                    .total_segments(SEGMENTS)
                    .projection_expression(&projection)
                    .set_expression_attribute_names(Some(names.clone()))
                    .set_exclusive_start_key(start)
                    .send()
                    .await;
                let page = match page {
                    Ok(page) => page,
                    Err(e) if is(&e, &["ResourceNotFoundException"]) => return Ok(None),
                    Err(e) => return Err(fail(&format!("DynamoDB Scan {table}"), e)),
                };
                for item in page.items() {
                    let Some(AttributeValue::S(id)) = item.get(&c.key) else {
                        continue;
                    };
                    let doc: Map<String, serde_json::Value> = item
                        .iter()
                        .filter(|(k, _)| **k != c.key)
                        .filter_map(|(k, v)| Some((k.clone(), from_attribute(v)?)))
                        .collect();
                    tally.add(id, &doc);
                }
                start = page.last_evaluated_key;
                if start.as_ref().is_none_or(HashMap::is_empty) {
                    return Ok(Some(tally));
                }
            }
        }
    });
    let mut whole: Option<Tally> = None;
    for part in futures_util::future::try_join_all(segments).await? {
        let Some(part) = part else {
            return Ok(None);
        };
        match &mut whole {
            Some(w) => w.merge(part),
            None => whole = Some(part),
        }
    }
    Ok(whole)
}
