//! A tenant's DynamoDB table for `apifactory data`: a paced, paginated
//! Scan out; BatchGetItem and BatchWriteItem in, their unprocessed keys and
//! items retried with backoff. Every call waits for the pacer's
//! `DynamoDbData` bucket first.
//!
//! BatchWriteItem takes no conditions, so an import reads each batch's ids
//! (BatchGetItem, consistent) just before writing it and decides from what
//! it read, with the same rule as the local target. An item a client
//! stores under the same id in the milliseconds between the two calls is
//! overwritten by the file's: chosen over a conditional PutItem per item
//! (25 times the calls) because an import moves data into a table its
//! clients do not write yet, and a re-run reports anything that differs.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};

use super::{Line, OnConflict, Verdict, decide};
use crate::aws::AwsTarget;
use crate::aws::pacer::Family;
use runtime::dynamo::{from_attribute, to_attribute};
use runtime::names::REV_ATTRIBUTE;
use runtime::sqlite::Put;
use runtime::store::Item;
use runtime::tenant::Collection;

/// Keys one BatchGetItem takes: "up to 100 items" (DynamoDB API
/// Reference, "BatchGetItem"); what it could not read comes back in
/// `UnprocessedKeys` and is asked again.
pub const GET_BATCH: usize = 100;
/// Items one BatchWriteItem takes: "up to 25 put or delete requests"
/// (DynamoDB API Reference, "BatchWriteItem"), which may return some of
/// them in `UnprocessedItems` (throughput exceeded) to be sent again.
const WRITE_BATCH: usize = 25;
/// Attempts at a batch's unprocessed part before giving up (backoff from
/// 50 ms doubling to 5 s: about half a minute of throttling).
const ATTEMPTS: u32 = 12;

const DATA: &[Family] = &[Family::DynamoDbData];

type AttributeMap = HashMap<String, AttributeValue>;

/// A tenant's table on DynamoDB.
pub struct AwsTable {
    target: AwsTarget,
    name: String,
    collection: Collection,
}

impl AwsTable {
    pub fn new(target: AwsTarget, name: String, collection: Collection) -> AwsTable {
        AwsTable {
            target,
            name,
            collection,
        }
    }

    /// A failed call as a sentence: a missing table says what to run.
    fn failed<E>(&self, op: &str, e: SdkError<E, HttpResponse>) -> anyhow::Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        if e.code() == Some("ResourceNotFoundException") {
            anyhow::anyhow!(
                "table {} does not exist in this account and region: apply the tenant there first \
                 (`apifactory apply --target aws`)",
                self.name
            )
        } else {
            crate::aws::fail(&format!("{op} on table {}", self.name), e)
        }
    }

    fn to_item(&self, mut map: AttributeMap) -> anyhow::Result<Item> {
        let key = &self.collection.key;
        let id = match map.remove(key) {
            Some(AttributeValue::S(s)) => s,
            _ => anyhow::bail!(
                "table {}: an item without a string key attribute {key:?}",
                self.name
            ),
        };
        // An item apifactory did not write may have no revision: its line
        // goes without one, and an import gives it a fresh one.
        let rev = match map.remove(REV_ATTRIBUTE) {
            Some(AttributeValue::S(s)) => s,
            _ => String::new(),
        };
        let mut doc: Vec<(String, serde_json::Value)> = map
            .into_iter()
            .filter(|(name, _)| self.collection.field(name).is_some())
            .filter_map(|(name, av)| Some((name, from_attribute(&av)?)))
            .collect();
        doc.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Item {
            id,
            rev,
            doc: doc.into_iter().collect(),
        })
    }

    fn to_attributes(&self, item: &Item) -> AttributeMap {
        let mut map: AttributeMap = item
            .doc
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), to_attribute(value)?)))
            .collect();
        map.insert(
            self.collection.key.clone(),
            AttributeValue::S(item.id.clone()),
        );
        map.insert(
            REV_ATTRIBUTE.to_owned(),
            AttributeValue::S(item.rev.clone()),
        );
        map
    }

    fn key_of(&self, id: &str) -> AttributeMap {
        HashMap::from([(
            self.collection.key.clone(),
            AttributeValue::S(id.to_owned()),
        )])
    }

    /// Every item, page by page (consistent reads, so an export right
    /// after an import holds all of it).
    pub async fn scan(&self, mut each: impl FnMut(Item)) -> anyhow::Result<()> {
        let mut start: Option<AttributeMap> = None;
        loop {
            self.target.pacer.read(DATA).await;
            let out = self
                .target
                .dynamodb
                .scan()
                .table_name(&self.name)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.failed("Scan", e))?;
            for map in out.items.unwrap_or_default() {
                each(self.to_item(map)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(()),
            }
        }
    }

    /// The stored items among these ids (at most [`GET_BATCH`]).
    pub async fn get_many(&self, ids: &[String]) -> anyhow::Result<Vec<Item>> {
        let mut keys: Vec<AttributeMap> = ids.iter().map(|id| self.key_of(id)).collect();
        let mut found = Vec::new();
        let mut pause = Duration::from_millis(50);
        for attempt in 1.. {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .consistent_read(true)
                .build()
                .map_err(|e| anyhow::anyhow!("BatchGetItem request: {e}"))?;
            self.target.pacer.read(DATA).await;
            let out = self
                .target
                .dynamodb
                .batch_get_item()
                .request_items(&self.name, request)
                .send()
                .await
                .map_err(|e| self.failed("BatchGetItem", e))?;
            if let Some(mut responses) = out.responses
                && let Some(items) = responses.remove(&self.name)
            {
                for map in items {
                    found.push(self.to_item(map)?);
                }
            }
            keys = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.name))
                .map(|k| k.keys)
                .unwrap_or_default();
            if keys.is_empty() {
                break;
            }
            if attempt == ATTEMPTS {
                anyhow::bail!(
                    "BatchGetItem on table {}: {} key(s) still unprocessed after {ATTEMPTS} attempts",
                    self.name,
                    keys.len()
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
        Ok(found)
    }

    /// Writes items (at most [`WRITE_BATCH`]), retrying what DynamoDB
    /// leaves unprocessed.
    async fn write_batch(&self, items: &[Item]) -> anyhow::Result<()> {
        let mut requests = items
            .iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(self.to_attributes(item)))
                    .build()
                    .map_err(|e| anyhow::anyhow!("BatchWriteItem request: {e}"))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut pause = Duration::from_millis(50);
        for attempt in 1.. {
            self.target.pacer.write(DATA).await;
            let out = self
                .target
                .dynamodb
                .batch_write_item()
                .request_items(&self.name, std::mem::take(&mut requests))
                .send()
                .await
                .map_err(|e| self.failed("BatchWriteItem", e))?;
            requests = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.name))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            if attempt == ATTEMPTS {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
        anyhow::bail!(
            "BatchWriteItem on table {}: {} item(s) still unprocessed after {ATTEMPTS} attempts",
            self.name,
            requests.len()
        )
    }

    /// One import batch: reads its ids, decides each line as the local
    /// target does, writes what is to be written. `Err` with the account
    /// of the first line `Fail` refuses, having written nothing of it.
    pub async fn put_many(
        &self,
        lines: Vec<Line>,
        mode: OnConflict,
    ) -> anyhow::Result<Result<Vec<(Verdict, String)>, (Verdict, String)>> {
        let mut accounts = Vec::with_capacity(lines.len());
        let mut writes = Vec::new();
        for chunk in lines.chunks(GET_BATCH) {
            let ids: Vec<String> = chunk.iter().map(|l| l.item.id.clone()).collect();
            let mut stored: HashMap<String, Item> = self
                .get_many(&ids)
                .await?
                .into_iter()
                .map(|it| (it.id.clone(), it))
                .collect();
            for line in chunk {
                let found = stored.remove(&line.item.id);
                match decide(line.clone(), found, mode) {
                    Put::Abort(a) => return Ok(Err(a)),
                    Put::Keep(a) => accounts.push(a),
                    Put::Write(item, a) => {
                        writes.push(item);
                        accounts.push(a);
                    }
                }
            }
        }
        // The batches of one import batch go out at once: each waits for
        // the pacer, which keeps the rate.
        let calls = writes.chunks(WRITE_BATCH).map(|w| self.write_batch(w));
        for result in futures_util::future::join_all(calls).await {
            result?;
        }
        Ok(Ok(accounts))
    }
}
