//! The DynamoDB store: the data plane the function uses, nothing more.
//!
//! One table per tenant, shaped by [`TableSchema`]: the collection's key
//! attribute is the table's hash key (type S); `_rev` (S) holds the item's
//! revision; each field of the document is one attribute. Every indexed
//! field has a global secondary index named [`names::index`] keyed on it,
//! so an equality search on it is a `Query`, never a `Scan`. The AWS target
//! makes and changes the table (`deploy/src/aws/table.rs`); the Lambda
//! binary never does.
//!
//! Value mapping: a JSON string is `S`, a number `N` (the JSON number's own
//! text), a boolean `BOOL`, an array `L` (not `SS`: a list keeps its order
//! and may be empty). Null fields are absent attributes. Reading back, `N`
//! is a JSON integer when it fits an `i64` and a float otherwise;
//! attributes that are not declared fields are ignored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Number, Value};
use tokio::sync::OnceCell;

use crate::names;
use crate::schema::{AttributeType, KEY_TYPE, TableSchema};
use crate::store::{Expect, Item, Page, Search, Store, StoreError};
use crate::tenant::Collection;

/// The attribute holding an item's revision.
pub use crate::names::REV_ATTRIBUTE;

/// A search stops after this many DynamoDB calls even when it has fewer
/// than `limit` items (a filter that matches little in a large table); the
/// page it returns still ends at a correct `next`.
const MAX_ROUND_TRIPS: usize = 50;

type AttributeMap = HashMap<String, AttributeValue>;

type MakeClient = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Client> + Send>> + Send + Sync>;

/// The client, made the first time the store needs it (made again only if
/// that first making was cancelled before it finished).
struct LazyClient {
    cell: OnceCell<Client>,
    make: MakeClient,
}

impl std::fmt::Debug for LazyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyClient")
            .field("client", &self.cell.get())
            .finish_non_exhaustive()
    }
}

/// A tenant's table on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Arc<LazyClient>,
    table: String,
    /// The key and the indexes a search may query.
    schema: TableSchema,
    /// Declared fields other than the key: the attributes read back.
    fields: BTreeSet<String>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, collection: &Collection) -> Self {
        Self::lazy(table, collection, move || {
            let client = client.clone();
            async move { client }
        })
    }

    /// A store whose client `make` builds when the store first reads or
    /// writes. Making an SDK client, or loading the SDK's configuration
    /// (whose default credentials chain makes an STS client for web
    /// identity), builds the SDK's HTTPS connector, and that loads and
    /// parses every root certificate of the machine (rustls-native-certs:
    /// the bundle file, then each file of the certificate directories):
    /// 3.3 ms of the function's 5.25 ms init on Debian's 147-file
    /// `/etc/ssl/certs` (BENCHMARKS.md, part 2). Made lazily, the same
    /// roots are loaded by the first invocation that reaches the table,
    /// not before the function's first poll, and never by an execution
    /// environment whose requests are all refused before the store.
    pub fn lazy<F, Fut>(table: impl Into<String>, collection: &Collection, make: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Client> + Send + 'static,
    {
        let fields = collection
            .fields
            .iter()
            .filter(|f| f.name != collection.key && f.name != REV_ATTRIBUTE)
            .map(|f| f.name.clone())
            .collect();
        Self {
            client: Arc::new(LazyClient {
                cell: OnceCell::new(),
                make: Box::new(move || Box::pin(make())),
            }),
            table: table.into(),
            schema: TableSchema::of(collection),
            fields,
        }
    }

    /// The table this store reads and writes.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn client(&self) -> &Client {
        self.client.cell.get_or_init(|| (self.client.make)()).await
    }

    fn backend<E>(&self, op: &str, err: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        StoreError::Backend(format!("{op} on table {}: {}", self.table, describe(&err)))
    }

    /// Whether a conditional write went through (`true`) or its condition
    /// failed (`false`); any other error is the store's.
    fn written<T, E>(
        &self,
        op: &str,
        result: Result<T, SdkError<E, HttpResponse>>,
    ) -> Result<bool, StoreError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(self.backend(op, e)),
        }
    }

    fn key_of(&self, id: &str) -> AttributeMap {
        HashMap::from([(self.schema.key.clone(), AttributeValue::S(id.to_owned()))])
    }

    fn to_attributes(&self, item: &Item) -> AttributeMap {
        let mut map: AttributeMap = item
            .doc
            .iter()
            .filter(|(name, _)| **name != self.schema.key && *name != REV_ATTRIBUTE)
            .filter_map(|(name, value)| to_attribute(value).map(|av| (name.clone(), av)))
            .collect();
        map.insert(self.schema.key.clone(), AttributeValue::S(item.id.clone()));
        map.insert(
            REV_ATTRIBUTE.to_owned(),
            AttributeValue::S(item.rev.clone()),
        );
        map
    }

    fn to_item(&self, map: &AttributeMap) -> Result<Item, StoreError> {
        let id = match map.get(&self.schema.key) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => {
                return Err(StoreError::Backend(format!(
                    "table {}: an item without a string key attribute {:?}",
                    self.table, self.schema.key
                )));
            }
        };
        let rev = match map.get(REV_ATTRIBUTE) {
            Some(AttributeValue::S(s)) => s.clone(),
            // Written by something else (a table adopted with its items).
            None => derived_rev(map),
            Some(_) => {
                return Err(StoreError::Backend(format!(
                    "table {}: item {id:?} has a {REV_ATTRIBUTE} attribute that is not a string",
                    self.table
                )));
            }
        };
        let doc = self
            .fields
            .iter()
            .filter_map(|name| {
                let value = from_attribute(map.get(name)?)?;
                Some((name.clone(), value))
            })
            .collect();
        Ok(Item { id, rev, doc })
    }

    /// The item as stored, every attribute of it.
    async fn get_raw(&self, id: &str) -> Result<Option<AttributeMap>, StoreError> {
        if id.is_empty() {
            // DynamoDB rejects an empty key; no item can have one.
            return Ok(None);
        }
        let out = self
            .client()
            .await
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key_of(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.backend("GetItem", e))?;
        Ok(out.item)
    }

    /// The condition of a write that expects an item at a derived
    /// revision (one without `_rev`): the item as read now must hash to
    /// it, and the write is conditional on every attribute still holding
    /// what was read and on `_rev` still being absent (any write through
    /// this store sets it). `Err` is the write's answer already: the item
    /// is missing or has moved on.
    async fn content_condition(
        &self,
        id: &str,
        rev: &str,
    ) -> Result<(String, HashMap<String, String>, Option<AttributeMap>), StoreError> {
        let Some(current) = self.get_raw(id).await? else {
            return Err(StoreError::NotFound);
        };
        if current.contains_key(REV_ATTRIBUTE) || derived_rev(&current) != rev {
            return Err(StoreError::RevMismatch);
        }
        let mut names = HashMap::from([
            ("#k".to_owned(), self.schema.key.clone()),
            ("#rev".to_owned(), REV_ATTRIBUTE.to_owned()),
        ]);
        let mut values = AttributeMap::new();
        let mut condition = "attribute_exists(#k) AND attribute_not_exists(#rev)".to_owned();
        let mut attributes: Vec<(&String, &AttributeValue)> = current
            .iter()
            .filter(|(name, _)| **name != self.schema.key)
            .collect();
        attributes.sort_by_key(|(name, _)| *name);
        for (i, (name, value)) in attributes.into_iter().enumerate() {
            names.insert(format!("#a{i}"), name.clone());
            values.insert(format!(":a{i}"), value.clone());
            condition.push_str(&format!(" AND #a{i} = :a{i}"));
        }
        Ok((condition, names, (!values.is_empty()).then_some(values)))
    }

    /// The condition, names and values of a write that expects `expect`;
    /// `Err` when the answer is known without writing.
    async fn condition(
        &self,
        id: &str,
        expect: &Expect,
    ) -> Result<(String, HashMap<String, String>, Option<AttributeMap>), StoreError> {
        match expect {
            Expect::Rev(rev) if rev.starts_with(DERIVED_REV) => {
                self.content_condition(id, rev).await
            }
            _ => Ok(self.expectation(expect)),
        }
    }

    /// A conditional write failed: was the item missing, or at another
    /// revision?
    async fn classify_failure(&self, id: &str, expect: &Expect) -> StoreError {
        match expect {
            // `attribute_exists(#k)` fails only when there is no item.
            Expect::Exists => StoreError::NotFound,
            Expect::Rev(_) => match self.get(id).await {
                Ok(None) => StoreError::NotFound,
                Ok(Some(_)) => StoreError::RevMismatch,
                Err(e) => e,
            },
        }
    }

    /// The condition, names and values of a write that expects an item.
    fn expectation(
        &self,
        expect: &Expect,
    ) -> (String, HashMap<String, String>, Option<AttributeMap>) {
        let mut names = HashMap::from([("#k".to_owned(), self.schema.key.clone())]);
        match expect {
            Expect::Exists => ("attribute_exists(#k)".to_owned(), names, None),
            Expect::Rev(rev) => {
                names.insert("#rev".to_owned(), REV_ATTRIBUTE.to_owned());
                (
                    "attribute_exists(#k) AND #rev = :rev".to_owned(),
                    names,
                    Some(HashMap::from([(
                        ":rev".to_owned(),
                        AttributeValue::S(rev.clone()),
                    )])),
                )
            }
        }
    }

    /// Turns a search's `start` back into an ExclusiveStartKey. A Scan's key
    /// is the table key alone; a Query on `by_<field>` adds the field, whose
    /// value must be the one the query asks for.
    fn decode_start(
        &self,
        start: &Value,
        query: Option<(&str, &AttributeValue)>,
    ) -> Result<AttributeMap, StoreError> {
        let bad = |why: String| StoreError::BadStart(why);
        let Value::Object(obj) = start else {
            return Err(bad("not an object".into()));
        };
        let mut expected: BTreeMap<&str, AttributeType> =
            BTreeMap::from([(self.schema.key.as_str(), KEY_TYPE)]);
        if let Some((field, _)) = query {
            let Some(index) = self.schema.index_on(field) else {
                return Err(bad(format!("{field:?} is not an indexed field")));
            };
            expected.insert(field, index.attribute_type);
        }
        let mut key = AttributeMap::new();
        for (name, typed) in obj {
            let Some(want) = expected.get(name.as_str()) else {
                return Err(bad(format!("unexpected attribute {name:?}")));
            };
            let Value::Object(typed) = typed else {
                return Err(bad(format!("attribute {name:?} is not an object")));
            };
            let mut entries = typed.iter();
            let (Some((t, Value::String(text))), None) = (entries.next(), entries.next()) else {
                return Err(bad(format!(
                    "attribute {name:?} must be {{\"S\": string}} or {{\"N\": string}}"
                )));
            };
            let av = match (t.as_str(), want) {
                ("S", AttributeType::S) if !text.is_empty() => AttributeValue::S(text.clone()),
                ("N", AttributeType::N) if parse_number(text).is_some() => {
                    AttributeValue::N(text.clone())
                }
                _ => {
                    return Err(bad(format!(
                        "attribute {name:?} has the wrong type or value"
                    )));
                }
            };
            key.insert(name.clone(), av);
        }
        if let Some(missing) = expected.keys().find(|name| !key.contains_key(**name)) {
            return Err(bad(format!("attribute {missing:?} is missing")));
        }
        if let Some((field, wanted)) = query
            && key.get(field).is_some_and(|got| !same_scalar(got, wanted))
        {
            return Err(bad("it belongs to another search".into()));
        }
        Ok(key)
    }

    /// One Query or Scan call: the items and the LastEvaluatedKey.
    async fn call(
        &self,
        plan: &Plan,
        limit: i32,
        start: Option<AttributeMap>,
    ) -> Result<(Vec<AttributeMap>, Option<AttributeMap>), StoreError> {
        let names = (!plan.names.is_empty()).then(|| plan.names.clone());
        let values = (!plan.values.is_empty()).then(|| plan.values.clone());
        let filter = (!plan.filters.is_empty()).then(|| plan.filters.join(" AND "));
        let (items, lek) = match &plan.query {
            Some((index, condition)) => {
                let out = self
                    .client()
                    .await
                    .query()
                    .table_name(&self.table)
                    .index_name(index)
                    .key_condition_expression(condition)
                    .set_filter_expression(filter)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .limit(limit)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| self.backend("Query", e))?;
                (out.items, out.last_evaluated_key)
            }
            None => {
                let out = self
                    .client()
                    .await
                    .scan()
                    .table_name(&self.table)
                    .set_filter_expression(filter)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .limit(limit)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| self.backend("Scan", e))?;
                (out.items, out.last_evaluated_key)
            }
        };
        Ok((items.unwrap_or_default(), lek.filter(|k| !k.is_empty())))
    }
}

/// How a search runs: a Query on an index (its name and key condition) or a
/// Scan, with the remaining filters.
struct Plan {
    query: Option<(String, String)>,
    filters: Vec<String>,
    names: HashMap<String, String>,
    values: AttributeMap,
}

impl Store for DynamoStore {
    async fn get(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let item = self.get_raw(id).await?;
        item.map(|m| self.to_item(&m)).transpose()
    }

    async fn create(&self, item: &Item) -> Result<(), StoreError> {
        let result = self
            .client()
            .await
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.to_attributes(item)))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", &self.schema.key)
            .send()
            .await;
        if self.written("PutItem", result)? {
            Ok(())
        } else {
            Err(StoreError::Exists)
        }
    }

    async fn replace(&self, item: &Item, expect: &Expect) -> Result<(), StoreError> {
        if item.id.is_empty() {
            return Err(StoreError::NotFound);
        }
        let (condition, names, values) = self.condition(&item.id, expect).await?;
        let result = self
            .client()
            .await
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.to_attributes(item)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(values)
            .send()
            .await;
        if self.written("PutItem", result)? {
            Ok(())
        } else {
            Err(self.classify_failure(&item.id, expect).await)
        }
    }

    async fn delete(&self, id: &str, expect: &Expect) -> Result<(), StoreError> {
        if id.is_empty() {
            return Err(StoreError::NotFound);
        }
        let (condition, names, values) = self.condition(id, expect).await?;
        let result = self
            .client()
            .await
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key_of(id)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(values)
            .send()
            .await;
        if self.written("DeleteItem", result)? {
            Ok(())
        } else {
            Err(self.classify_failure(id, expect).await)
        }
    }

    async fn search(&self, search: &Search) -> Result<Page, StoreError> {
        let key_filter = match &search.index {
            None => None,
            Some(field) => {
                let Some(i) = search
                    .filters
                    .iter()
                    .position(|f| f.field == *field && !f.list)
                else {
                    return Err(StoreError::Backend(format!(
                        "table {}: a search on index {field:?} without an equality filter on it",
                        self.table
                    )));
                };
                Some(i)
            }
        };

        let mut plan = Plan {
            query: None,
            filters: Vec::new(),
            names: HashMap::new(),
            values: HashMap::new(),
        };
        for (i, f) in search.filters.iter().enumerate() {
            let (n, v) = (format!("#n{i}"), format!(":v{i}"));
            let expr = if f.list {
                format!("contains({n}, {v})")
            } else {
                format!("{n} = {v}")
            };
            plan.names.insert(n, f.field.clone());
            plan.values.insert(
                v,
                to_attribute(&f.value).unwrap_or(AttributeValue::Null(true)),
            );
            if Some(i) == key_filter {
                plan.query = Some((names::index(&f.field), expr));
            } else {
                plan.filters.push(expr);
            }
        }

        let query_key = key_filter.and_then(|i| {
            let f = search.filters.get(i)?;
            Some((f.field.as_str(), plan.values.get(&format!(":v{i}"))?))
        });
        let mut lek = match &search.start {
            Some(start) => Some(self.decode_start(start, query_key)?),
            None => None,
        };

        let limit = search.limit.max(1);
        let mut items = Vec::new();
        for _ in 0..MAX_ROUND_TRIPS {
            let remaining = i32::try_from(limit.saturating_sub(items.len())).unwrap_or(i32::MAX);
            let (page, next) = self.call(&plan, remaining, lek.take()).await?;
            for map in &page {
                items.push(self.to_item(map)?);
            }
            lek = next;
            if lek.is_none() || items.len() >= limit {
                break;
            }
        }
        let next = lek.map(|k| start_to_json(&k)).transpose()?;
        Ok(Page { items, next })
    }
}

/// How a derived revision starts. The revisions this store writes are
/// ULIDs (26 letters and digits), so no written revision starts so.
pub const DERIVED_REV: &str = "content-";

/// The revision of an item stored without `_rev` (a table adopted with
/// the items another program wrote): a hash of every attribute it has,
/// so it is the same on every read and changes with any change of the
/// item. Sets and maps are hashed in sorted order: DynamoDB keeps no
/// order for them.
pub fn derived_rev(map: &AttributeMap) -> String {
    use sha2::{Digest, Sha256};
    fn feed(h: &mut Sha256, av: &AttributeValue) {
        let mut sorted = |tag: &str, mut items: Vec<Vec<u8>>| {
            items.sort();
            h.update(tag);
            h.update(items.len().to_be_bytes());
            for item in items {
                h.update(item.len().to_be_bytes());
                h.update(item);
            }
        };
        match av {
            AttributeValue::S(s) => sorted("S", vec![s.as_bytes().to_vec()]),
            AttributeValue::N(n) => sorted("N", vec![n.as_bytes().to_vec()]),
            AttributeValue::B(b) => sorted("B", vec![b.as_ref().to_vec()]),
            AttributeValue::Bool(b) => sorted("BOOL", vec![vec![u8::from(*b)]]),
            AttributeValue::Null(_) => sorted("NULL", Vec::new()),
            AttributeValue::Ss(v) => {
                sorted("SS", v.iter().map(|s| s.as_bytes().to_vec()).collect())
            }
            AttributeValue::Ns(v) => {
                sorted("NS", v.iter().map(|s| s.as_bytes().to_vec()).collect())
            }
            AttributeValue::Bs(v) => sorted("BS", v.iter().map(|b| b.as_ref().to_vec()).collect()),
            AttributeValue::L(items) => {
                h.update("L");
                h.update(items.len().to_be_bytes());
                for item in items {
                    feed(h, item);
                }
            }
            AttributeValue::M(m) => {
                h.update("M");
                feed_map(h, m);
            }
            // A type this SDK does not know yet: its debug text.
            other => sorted("?", vec![format!("{other:?}").into_bytes()]),
        }
    }
    fn feed_map(h: &mut Sha256, m: &AttributeMap) {
        let mut names: Vec<&String> = m.keys().collect();
        names.sort();
        h.update(names.len().to_be_bytes());
        for name in names {
            h.update(name.len().to_be_bytes());
            h.update(name.as_bytes());
            feed(h, &m[name]);
        }
    }
    let mut h = Sha256::new();
    feed_map(&mut h, map);
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{DERIVED_REV}{hex}")
}

/// The attribute a JSON value is stored as; `None` for null (an absent
/// attribute).
pub fn to_attribute(value: &Value) -> Option<AttributeValue> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(items) => AttributeValue::L(
            items
                .iter()
                .map(|v| to_attribute(v).unwrap_or(AttributeValue::Null(true)))
                .collect(),
        ),
        Value::Object(map) => AttributeValue::M(
            map.iter()
                .filter_map(|(k, v)| to_attribute(v).map(|av| (k.clone(), av)))
                .collect(),
        ),
    })
}

/// The JSON value of a stored attribute; `None` for NULL, binary and any
/// type this store never writes.
pub fn from_attribute(av: &AttributeValue) -> Option<Value> {
    Some(match av {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => Value::Number(parse_number(n)?),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::L(items) => Value::Array(
            items
                .iter()
                .map(|av| from_attribute(av).unwrap_or(Value::Null))
                .collect(),
        ),
        AttributeValue::M(map) => Value::Object(
            map.iter()
                .filter_map(|(k, av)| Some((k.clone(), from_attribute(av)?)))
                .collect::<Map<_, _>>(),
        ),
        AttributeValue::Ss(items) => {
            Value::Array(items.iter().cloned().map(Value::String).collect())
        }
        AttributeValue::Ns(items) => Value::Array(
            items
                .iter()
                .filter_map(|n| parse_number(n).map(Value::Number))
                .collect(),
        ),
        _ => return None,
    })
}

/// A DynamoDB number as JSON: an integer when it fits an `i64`, otherwise
/// a finite float.
fn parse_number(text: &str) -> Option<Number> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Number::from(i));
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

/// Two key values are the same (numbers compared as numbers).
fn same_scalar(a: &AttributeValue, b: &AttributeValue) -> bool {
    match (a, b) {
        (AttributeValue::S(a), AttributeValue::S(b)) => a == b,
        (AttributeValue::N(a), AttributeValue::N(b)) => {
            a == b || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
        }
        _ => false,
    }
}

/// A LastEvaluatedKey as the JSON a page's `next` holds:
/// `{"<attr>": {"S": "..."}}` or `{"<attr>": {"N": "..."}}`.
fn start_to_json(key: &AttributeMap) -> Result<Value, StoreError> {
    let mut obj = Map::new();
    for (name, av) in key {
        let (t, text) = match av {
            AttributeValue::S(s) => ("S", s),
            AttributeValue::N(n) => ("N", n),
            other => {
                return Err(StoreError::Backend(format!(
                    "LastEvaluatedKey attribute {name:?} has an unexpected type: {other:?}"
                )));
            }
        };
        let mut typed = Map::new();
        typed.insert(t.to_owned(), Value::String(text.clone()));
        obj.insert(name.clone(), Value::Object(typed));
    }
    Ok(Value::Object(obj))
}

/// An SDK error in a line: the service's error code and message where it
/// sent one, otherwise the chain of causes (a connection that failed, a
/// timeout) and the HTTP status if there was an answer. Never the raw
/// response: its headers and body are no one's business in a log.
pub fn describe<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(code) = e.code() {
        return match e.message() {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        };
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if let Some(raw) = e.raw_response() {
        text.push_str(&format!(" (HTTP {})", raw.status().as_u16()));
    }
    text
}

#[cfg(test)]
mod tests;
