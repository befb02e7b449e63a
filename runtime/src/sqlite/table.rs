//! A tenant's table in the database: its DDL (one table and one expression
//! index per schema index) and the [`Store`] over it, searches written as
//! SQL the indexes serve.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde_json::{Map, Value};

use super::{Database, MAX_LIMIT, backend};
use crate::capacity::{self, item_size};
use crate::names;
use crate::schema::TableSchema;
use crate::store::{Expect, Filter, Fresh, Item, Known, Page, Search, Store, StoreError, Version};
use crate::tenant::Tenant;

impl Database {
    /// The tenant's table, created with one index per indexed field if
    /// missing. Indexes of fields no longer indexed are dropped.
    pub async fn table(&self, tenant: &Tenant) -> Result<SqliteTable, StoreError> {
        let name = tenant.collection.table_name(&tenant.id);
        self.table_of(&name, &TableSchema::of(&tenant.collection))
            .await
    }

    /// [`Database::table`] from the table's name on DynamoDB (the deploy
    /// address's) and its schema alone (what a deploy action carries). A
    /// table that exists already is adopted as it is: every local table
    /// has the same columns, whatever its key attribute is called.
    pub async fn table_of(
        &self,
        dynamo_name: &str,
        schema: &TableSchema,
    ) -> Result<SqliteTable, StoreError> {
        let (table, indexes) = layout(dynamo_name, schema)?;

        let mut ddl = format!(
            "CREATE TABLE IF NOT EXISTS {} (\
             id TEXT PRIMARY KEY NOT NULL, rev TEXT NOT NULL, doc TEXT NOT NULL\
             ) WITHOUT ROWID;",
            quote(&table)
        );
        for (field, index) in &indexes {
            ddl.push_str(&format!(
                "\nCREATE INDEX IF NOT EXISTS {} ON {} ({});",
                quote(index),
                quote(&table),
                field_expr(field)
            ));
        }
        let prefix = index_name(&table, "");
        let wanted: Vec<String> = indexes.values().cloned().collect();
        let name = table.clone();
        self.write(move |c| {
            c.execute_batch(&ddl)?;
            let existing = c
                .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1")?
                .query_map([&name], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            for index in existing {
                if index.starts_with(&prefix) && !wanted.contains(&index) {
                    c.execute_batch(&format!("DROP INDEX IF EXISTS {}", quote(&index)))?;
                }
            }
            Ok(())
        })
        .await?;

        Ok(self.handle(schema, table, indexes))
    }

    /// The handle of a local table that exists.
    fn handle(
        &self,
        schema: &TableSchema,
        table: String,
        indexes: BTreeMap<String, String>,
    ) -> SqliteTable {
        SqliteTable {
            db: self.clone(),
            key: schema.key.as_str().into(),
            select_by_id: format!("SELECT rev, doc FROM {} WHERE id = ?1", quote(&table)).into(),
            writes: Arc::new(Writes {
                insert: format!(
                    "INSERT INTO {} (id, rev, doc) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
                    quote(&table)
                ),
                update: format!(
                    "UPDATE {} SET rev = ?2, doc = ?3 WHERE id = ?1",
                    quote(&table)
                ),
                delete: format!("DELETE FROM {} WHERE id = ?1", quote(&table)),
            }),
            table: table.into(),
            indexes: Arc::new(indexes),
        }
    }

    /// Folds every stored item of a table (named as on DynamoDB; id and
    /// document) into `acc`, in id order, on one read connection; `acc` as
    /// given when there is no such table. Reads only: a plan that looks at the stored
    /// items must not create the table (as [`Database::table`] does).
    pub async fn each_item<A, F>(
        &self,
        dynamo_name: &str,
        mut acc: A,
        f: F,
    ) -> Result<A, StoreError>
    where
        A: Send + 'static,
        F: Fn(&mut A, &str, Map<String, Value>) + Send + 'static,
    {
        let table = local_name(dynamo_name);
        self.read(move |c| {
            if !table_exists(c, &table)? {
                return Ok(acc);
            }
            let mut stmt = c.prepare(&format!(
                "SELECT id, doc FROM {} ORDER BY id",
                quote(&table)
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                let doc: String = row.get(1)?;
                let doc: Map<String, Value> = serde_json::from_str(&doc)
                    .map_err(|e| backend(format!("item {id:?} of {table}: {e}")))?;
                f(&mut acc, &id, doc);
            }
            Ok(acc)
        })
        .await
    }

    /// Drops a table (named as on DynamoDB) and its indexes; nothing if
    /// there is none.
    pub async fn drop_table(&self, dynamo_name: &str) -> Result<(), StoreError> {
        let sql = format!("DROP TABLE IF EXISTS {}", quote(&local_name(dynamo_name)));
        self.write(move |c| Ok(c.execute_batch(&sql)?)).await
    }
}

/// A table's local name (from its name on DynamoDB) and its indexes
/// (indexed field → index name).
fn layout(
    dynamo_name: &str,
    schema: &TableSchema,
) -> Result<(String, BTreeMap<String, String>), StoreError> {
    let table = local_name(dynamo_name);
    let mut indexes = BTreeMap::new();
    for index in schema.indexes.iter().cloned() {
        if !names::is_field_name(&index.attribute) {
            return Err(backend(format!("invalid field name {:?}", index.attribute)));
        }
        let name = format!("{table}_{}", index.name);
        indexes.insert(index.attribute, name);
    }
    Ok((table, indexes))
}

/// The local table of a table named as on DynamoDB: `items_<tenant id>`
/// for apifactory's own `apifactory-<tenant id>` (the name local data has
/// always had), `items_<name>` for an adopted one; `-` and `.` as `_`.
pub fn local_name(dynamo_name: &str) -> String {
    let own = dynamo_name
        .strip_prefix(names::PREFIX)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(dynamo_name);
    format!("items_{}", own.replace(['-', '.'], "_"))
}

/// `items_<tenant>_by_<field>`.
fn index_name(table: &str, field: &str) -> String {
    format!("{table}_{}", names::index(field))
}

/// An SQL identifier, quoted.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Whether the database has a table of this (local) name.
fn table_exists(c: &rusqlite::Connection, table: &str) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1")?
        .exists([table])
}

/// A row of `SELECT id, rev, doc`.
fn id_rev_doc(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

/// The expression a field's index is built on; queries must use exactly the
/// same text for SQLite to match them to the index. Only for names that
/// passed `names::is_field_name`.
fn field_expr(field: &str) -> String {
    format!("json_extract(doc, '$.{field}')")
}

/// One tenant's items: `id TEXT PRIMARY KEY, rev TEXT, doc TEXT` (the JSON
/// object of `Item::doc`), with an expression index on
/// `json_extract(doc, '$.<field>')` per indexed field.
mod bulk;

pub use bulk::Put;

#[derive(Clone)]
pub struct SqliteTable {
    db: Database,
    /// The key attribute's name (for item sizes, see `capacity`).
    key: Arc<str>,
    pub(super) table: Arc<str>,
    /// The statement of `get`, made once (every GET runs it).
    select_by_id: Arc<str>,
    /// The statements of the writes, made once.
    writes: Arc<Writes>,
    /// Indexed field → index name.
    pub(super) indexes: Arc<BTreeMap<String, String>>,
}

/// A table's write statements.
struct Writes {
    /// Inserts a new item; changes nothing when the id is taken.
    insert: String,
    update: String,
    delete: String,
}

impl fmt::Debug for SqliteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTable")
            .field("table", &self.table)
            .field("indexes", &self.indexes)
            .finish()
    }
}

impl SqliteTable {
    /// The index writes of a change (see `capacity::index_writes`).
    fn index_writes(&self, before: Option<&Item>, after: Option<&Item>) -> usize {
        capacity::index_writes(
            self.indexes.keys().map(String::as_str),
            before.map(|it| &it.doc),
            after.map(|it| &it.doc),
        )
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.table
    }

    /// The database the table is in.
    pub fn database(&self) -> &Database {
        &self.db
    }
}

/// `NotFound` or `RevMismatch` unless the stored item satisfies `expect`;
/// the stored item when it does. Runs inside the writer job, so nothing can
/// change between the check and the write. `seen` gets the stored item
/// either way, for counting request units.
fn check_expect(
    conn: &Connection,
    select_by_id: &str,
    id: &str,
    expect: &Expect,
    seen: &mut Option<Item>,
) -> Result<(), StoreError> {
    let row: Option<(String, String)> = conn
        .prepare_cached(select_by_id)?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((stored, doc)) = row else {
        return Err(StoreError::NotFound);
    };
    let matches = match expect {
        Expect::Rev(wanted) => stored == *wanted,
        Expect::Exists => true,
    };
    *seen = Some(to_item(id.to_owned(), stored, &doc)?);
    if matches {
        Ok(())
    } else {
        Err(StoreError::RevMismatch)
    }
}

/// A condition's outcome: `Ok(Err(_))` when the write is refused (the job
/// still commits: it wrote nothing), `Err(_)` when the database failed.
fn condition(checked: Result<(), StoreError>) -> Result<Result<(), StoreError>, StoreError> {
    match checked {
        Err(refused @ (StoreError::NotFound | StoreError::RevMismatch)) => Ok(Err(refused)),
        Err(failed) => Err(failed),
        Ok(()) => Ok(Ok(())),
    }
}

fn to_item(id: String, rev: String, doc: &str) -> Result<Item, StoreError> {
    let doc = serde_json::from_str::<Map<String, Value>>(doc)
        .map_err(|e| backend(format!("a stored item is not a JSON object: {e}")))?;
    Ok(Item { id, rev, doc })
}

fn doc_text(item: &Item) -> Result<String, StoreError> {
    serde_json::to_string(&item.doc).map_err(|e| backend(format!("cannot encode an item: {e}")))
}

impl Store for SqliteTable {
    const CHECKS_KNOWN: bool = true;

    fn version(&self) -> Option<Version> {
        self.db.version()
    }

    async fn get(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let id = id.to_owned();
        // One row by its primary key: read on this thread (see `read_now`).
        self.db
            .read_now(move |c| {
                let row = c
                    .prepare_cached(&self.select_by_id)?
                    .query_row([&id], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })
                    .optional()?;
                row.map(|(rev, doc)| to_item(id, rev, &doc)).transpose()
            })
            .await
            .inspect(|found| {
                let size = found.as_ref().map_or(0, |it| item_size(&self.key, it));
                capacity::read(size, true);
            })
    }

    async fn get_unless(&self, id: &str, known: Option<Known<'_>>) -> Result<Fresh, StoreError> {
        let Some(known) = known else {
            return Ok(match self.get(id).await? {
                Some(item) => Fresh::Changed(item),
                None => Fresh::Missing,
            });
        };
        let fresh = self
            .db
            .read_now(|c| {
                let mut stmt = c.prepare_cached(&self.select_by_id)?;
                let mut rows = stmt.query([id])?;
                let Some(row) = rows.next()? else {
                    return Ok(Fresh::Missing);
                };
                // Compared where SQLite holds them: a GET of an unchanged
                // item copies nothing and parses nothing.
                let text = |i| {
                    row.get_ref(i)?
                        .as_str()
                        .map_err(|e| backend(format!("a stored item's column {i}: {e}")))
                };
                let (rev, doc) = (text(0)?, text(1)?);
                if rev == known.rev && doc == known.doc {
                    return Ok(Fresh::Same);
                }
                to_item(id.to_owned(), rev.to_owned(), doc).map(Fresh::Changed)
            })
            .await?;
        let size = match &fresh {
            Fresh::Missing => 0,
            Fresh::Same => known.size,
            Fresh::Changed(item) => item_size(&self.key, item),
        };
        capacity::read(size, true);
        Ok(fresh)
    }

    async fn create(&self, item: &Item) -> Result<(), StoreError> {
        let writes = Arc::clone(&self.writes);
        let (id, rev, doc) = (item.id.clone(), item.rev.clone(), doc_text(item)?);
        let done = self
            .db
            .write(move |c| {
                // One statement: the id's lookup is the insert's own.
                let inserted = c
                    .prepare_cached(&writes.insert)?
                    .execute(params![id, rev, doc])?;
                if inserted == 0 {
                    return Err(StoreError::Exists);
                }
                Ok(())
            })
            .await;
        let indexes = match &done {
            Ok(()) => self.index_writes(None, Some(item)),
            Err(_) => 0,
        };
        capacity::write(0, item_size(&self.key, item), indexes);
        done
    }

    async fn replace(&self, item: &Item, expect: &Expect) -> Result<(), StoreError> {
        let (select, writes) = (Arc::clone(&self.select_by_id), Arc::clone(&self.writes));
        let (id, rev, doc) = (item.id.clone(), item.rev.clone(), doc_text(item)?);
        let expect = expect.clone();
        let (done, before) = self
            .db
            .write(move |c| {
                let mut before = None;
                if let Err(refused) =
                    condition(check_expect(c, &select, &id, &expect, &mut before))?
                {
                    return Ok((Err(refused), before));
                }
                c.prepare_cached(&writes.update)?
                    .execute(params![id, rev, doc])?;
                Ok((Ok(()), before))
            })
            .await?;
        let indexes = match &done {
            Ok(()) => self.index_writes(before.as_ref(), Some(item)),
            Err(_) => 0,
        };
        let old = before.as_ref().map_or(0, |it| item_size(&self.key, it));
        capacity::write(old, item_size(&self.key, item), indexes);
        done
    }

    async fn delete(&self, id: &str, expect: &Expect) -> Result<(), StoreError> {
        let (select, writes) = (Arc::clone(&self.select_by_id), Arc::clone(&self.writes));
        let id = id.to_owned();
        let expect = expect.clone();
        let (done, before) = self
            .db
            .write(move |c| {
                let mut before = None;
                if let Err(refused) =
                    condition(check_expect(c, &select, &id, &expect, &mut before))?
                {
                    return Ok((Err(refused), before));
                }
                c.prepare_cached(&writes.delete)?.execute([&id])?;
                Ok((Ok(()), before))
            })
            .await?;
        let indexes = match &done {
            Ok(()) => self.index_writes(before.as_ref(), None),
            Err(_) => 0,
        };
        capacity::write(
            before.as_ref().map_or(0, |it| item_size(&self.key, it)),
            0,
            indexes,
        );
        done
    }

    async fn search(&self, search: &Search) -> Result<Page, StoreError> {
        let (sql, params) = search_sql(&self.table, &self.indexes, search)?;
        let limit = page_limit(search.limit);
        let query = move |c: &Connection| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(params_from_iter(params.iter()), id_rev_doc)?
                .collect::<Result<Vec<_>, _>>()?;
            let more = rows.len() > limit;
            let items = rows
                .into_iter()
                .take(limit)
                .map(|(id, rev, doc)| to_item(id, rev, &doc))
                .collect::<Result<Vec<_>, _>>()?;
            let next = match items.last() {
                Some(last) if more => Some(serde_json::json!({ "id": last.id })),
                _ => None,
            };
            Ok(Page { items, next })
        };
        // One filter on an indexed field reads at most a page (plus one)
        // of that index's entries in order: bounded work, done on this
        // thread like a read by key (handing it to a blocking thread and
        // back cost a search more than the query). Anything else may scan.
        let page = if search.index.is_some() && search.filters.len() == 1 {
            self.db.read_now(query).await
        } else {
            self.db.read(query).await
        };
        page.inspect(|page| {
            let bytes = page.items.iter().map(|it| item_size(&self.key, it)).sum();
            // A Query on an index is eventually consistent, and so is
            // the runtime's Scan.
            capacity::read(bytes, false);
        })
    }
}

fn page_limit(limit: usize) -> usize {
    limit.clamp(1, MAX_LIMIT)
}

/// The id a search continues after: `start` must be `{"id": "<last id>"}`,
/// as `search` returned it.
fn start_after(start: &Value) -> Result<String, StoreError> {
    match start {
        Value::Object(m) if m.len() == 1 => match m.get("id") {
            Some(Value::String(id)) => Ok(id.clone()),
            _ => Err(StoreError::BadStart(
                "expected an object with a string \"id\"".into(),
            )),
        },
        _ => Err(StoreError::BadStart(
            "expected an object with a string \"id\" and nothing else".into(),
        )),
    }
}

/// A filter value as SQLite sees what `json_extract` returns for it:
/// strings are TEXT, integers INTEGER, other numbers REAL, `true`/`false`
/// INTEGER 1/0.
fn sql_value(filter: &Filter) -> Result<SqlValue, StoreError> {
    Ok(match &filter.value {
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => SqlValue::Integer(i),
            (None, Some(x)) => SqlValue::Real(x),
            (None, None) => return Err(backend(format!("unsupported number {n} in a filter"))),
        },
        other => {
            return Err(backend(format!(
                "a filter on {:?} compares with {}, not a string, number or boolean",
                filter.field,
                crate::field::type_of(other)
            )));
        }
    })
}

/// The SQL of a search and its parameters, in order (the last is the row
/// limit: one more than the page, to know whether there is a next page).
pub(super) fn search_sql(
    table: &str,
    indexes: &BTreeMap<String, String>,
    search: &Search,
) -> Result<(String, Vec<SqlValue>), StoreError> {
    let mut sql = format!("SELECT id, rev, doc FROM {}", quote(table));
    if let Some(field) = &search.index {
        let Some(index) = indexes.get(field) else {
            return Err(backend(format!("no index on field {field:?}")));
        };
        if !search.filters.iter().any(|f| f.field == *field && !f.list) {
            return Err(backend(format!(
                "a search on the index of {field:?} needs an equality filter on it"
            )));
        }
        sql.push_str(&format!(" INDEXED BY {}", quote(index)));
    }

    let mut conditions = Vec::new();
    let mut params = Vec::new();
    for filter in &search.filters {
        if !names::is_field_name(&filter.field) {
            return Err(backend(format!("invalid field name {:?}", filter.field)));
        }
        if filter.list {
            // Elements of an array have integer keys; a scalar or an
            // object stored under the name is not a list and never matches.
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM json_each(doc, '$.{}') \
                 WHERE typeof(key) = 'integer' AND value = ?)",
                filter.field
            ));
        } else {
            conditions.push(format!("{} = ?", field_expr(&filter.field)));
        }
        params.push(sql_value(filter)?);
    }
    if let Some(start) = &search.start {
        conditions.push("id > ?".to_owned());
        params.push(SqlValue::Text(start_after(start)?));
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY id LIMIT ?");
    let rows = i64::try_from(page_limit(search.limit) + 1).unwrap_or(i64::MAX);
    params.push(SqlValue::Integer(rows));
    Ok((sql, params))
}
