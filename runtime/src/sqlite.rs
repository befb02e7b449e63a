//! The embedded SQLite store of the local target.
//!
//! One SQLite file holds every tenant's items (one table per tenant) and,
//! later, the rest of the local target's state. [`Database`] owns it:
//!
//! - Writes go through [`Database::write`]. Exactly one writer thread owns
//!   the only read-write connection. It takes every job queued while it was
//!   busy (up to [`MAX_BATCH`]) and runs them in one transaction, each job
//!   inside its own savepoint so a job that fails is rolled back alone. No
//!   caller hears back before `COMMIT` has returned, and with WAL and
//!   `synchronous=FULL` that means the write is on disk: every `Ok` is
//!   durable, and one fsync serves a whole batch (group commit).
//! - Reads go through [`Database::read`]: a small pool of read-only
//!   connections used from blocking threads (or, for an item by its key,
//!   [`Database::read_now`], on the calling thread). WAL lets them run
//!   alongside the writer, and each statement starts from the latest
//!   commit, so a read sees every acknowledged write.
//!
//! [`Database::table`] gives a tenant's [`SqliteTable`], the [`Store`].

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params, params_from_iter};
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, oneshot};

use crate::names;
use crate::schema::TableSchema;
use crate::store::{Expect, Filter, Item, Page, Search, Store, StoreError};
use crate::tenant::Tenant;

/// The most jobs one transaction takes.
pub const MAX_BATCH: usize = 512;

/// Read-only connections, and so reads running at once.
const READERS: usize = 4;

/// How long a connection waits for a lock held by another process (a
/// `sqlite3` shell, a backup) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest page a search returns (the contract's bound on `limit`).
const MAX_LIMIT: usize = 100;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(format!("sqlite: {e}"))
    }
}

fn backend(message: impl fmt::Display) -> StoreError {
    StoreError::Backend(message.to_string())
}

/// The local target's SQLite database. Cheap to clone; the writer thread
/// stops once the last clone is dropped (after finishing the jobs already
/// queued).
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    jobs: mpsc::Sender<Box<dyn Job>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<ReadPool>,
    commits: Arc<AtomicU64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Close the queue so the writer ends once it has drained it, then
        // wait for it, so that the file is closed when the last clone is
        // gone (and can be opened again at once).
        let (closed, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.jobs, closed));
        if let Some(writer) = self.writer.take()
            && writer.thread().id() != thread::current().id()
        {
            let _ = writer.join();
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.inner.path)
            .field("commits", &self.commits())
            .finish()
    }
}

impl Database {
    /// Opens (creating it if needed) the database file at `path` and starts
    /// its writer thread.
    pub fn open(path: &Path) -> Result<Database, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| backend(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(backend(format!(
                "{} cannot use write-ahead logging (journal mode {mode:?})",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;

        let readers = Arc::new(ReadPool {
            path: path.to_owned(),
            idle: Mutex::new(Vec::with_capacity(READERS)),
            permits: Arc::new(Semaphore::new(READERS)),
        });
        // Fail now, not on the first read, if the file cannot be read.
        readers.give_back(open_reader(path)?);

        let commits = Arc::new(AtomicU64::new(0));
        let (jobs, queue) = mpsc::channel();
        let writer = {
            let commits = Arc::clone(&commits);
            thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || run_writer(conn, queue, commits))
                .map_err(|e| backend(format!("cannot start the SQLite writer thread: {e}")))?
        };
        Ok(Database {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                jobs,
                writer: Some(writer),
                readers,
                commits,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How many transactions the writer has committed so far.
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Runs `f` on the writer connection, inside a transaction shared with
    /// other queued writes and a savepoint of its own. `Ok` is returned once
    /// the transaction has committed (the write is durable); an `Err` from
    /// `f` undoes whatever `f` wrote and nothing else. If the commit fails,
    /// every job of the transaction gets `StoreError::Backend`.
    ///
    /// `f` runs on the writer thread: it must not begin, commit or roll
    /// back transactions itself, nor wait for another write.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Pending {
            f: Some(f),
            result: None,
            reply,
        });
        self.inner
            .jobs
            .send(job)
            .map_err(|_| backend("the SQLite writer thread has stopped"))?;
        answer
            .await
            .map_err(|_| backend("the SQLite writer thread stopped before answering"))?
    }

    /// Runs `f` on one of the read-only connections, on a blocking thread.
    /// Each statement sees every write acknowledged before it started; a
    /// transaction `f` opens is rolled back when it returns.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = Arc::clone(&self.inner.readers);
        let permit = Arc::clone(&pool.permits)
            .acquire_owned()
            .await
            .map_err(|_| backend("the SQLite read pool is closed"))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.with_conn(f)
        })
        .await
        .map_err(|e| backend(format!("SQLite read task failed: {e}")))?
    }

    /// Like [`Database::read`], but runs `f` right here, on the calling
    /// thread, instead of on a blocking thread: for reads that take
    /// microseconds (an item by its key), where handing the work to another
    /// thread and back (two thread wake-ups) costs more than the read
    /// itself. A read in WAL mode does not wait for the writer. Reads that
    /// may take long (searches) go through [`Database::read`].
    pub async fn read_now<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError>,
    {
        let pool = &self.inner.readers;
        let _permit = pool
            .permits
            .acquire()
            .await
            .map_err(|_| backend("the SQLite read pool is closed"))?;
        pool.with_conn(f)
    }

    /// The tenant's table, created with one index per indexed field if
    /// missing. Indexes of fields no longer indexed are dropped.
    pub async fn table(&self, tenant: &Tenant) -> Result<SqliteTable, StoreError> {
        let table = table_name(&tenant.id);
        let mut indexes = BTreeMap::new();
        for index in TableSchema::of(&tenant.collection).indexes {
            if !names::is_field_name(&index.attribute) {
                return Err(backend(format!("invalid field name {:?}", index.attribute)));
            }
            let name = format!("{table}_{}", index.name);
            indexes.insert(index.attribute, name);
        }

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

        Ok(SqliteTable {
            db: self.clone(),
            select_by_id: format!("SELECT rev, doc FROM {} WHERE id = ?1", quote(&table)).into(),
            table: table.into(),
            indexes: Arc::new(indexes),
        })
    }

    /// Drops a tenant's table and its indexes; nothing if there is none.
    pub async fn drop_table(&self, tenant_id: &str) -> Result<(), StoreError> {
        let sql = format!("DROP TABLE IF EXISTS {}", quote(&table_name(tenant_id)));
        self.write(move |c| Ok(c.execute_batch(&sql)?)).await
    }
}

/// `items_<tenant id>`, with `-` as `_`.
fn table_name(tenant_id: &str) -> String {
    format!("items_{}", tenant_id.replace('-', "_"))
}

/// `items_<tenant>_by_<field>`.
fn index_name(table: &str, field: &str) -> String {
    format!("{table}_{}", names::index(field))
}

/// An SQL identifier, quoted.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The expression a field's index is built on; queries must use exactly the
/// same text for SQLite to match them to the index. Only for names that
/// passed `names::is_field_name`.
fn field_expr(field: &str) -> String {
    format!("json_extract(doc, '$.{field}')")
}

// ---------------------------------------------------------------------------
// The writer.

/// A queued write, type-erased for the channel.
trait Job: Send {
    /// Runs the job on the writer connection; whether it succeeded and its
    /// changes are to be kept.
    fn run(&mut self, conn: &Connection) -> bool;

    /// Tells the caller, once its transaction has ended: the job's own
    /// result if the transaction committed, else the transaction's error.
    fn finish(self: Box<Self>, outcome: Result<(), &str>);
}

struct Pending<T, F> {
    f: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|panic| {
            Err(backend(format!(
                "write job panicked: {}",
                panic_message(&panic)
            )))
        });
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, outcome: Result<(), &str>) {
        let result = match (outcome, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(backend("the write job did not run")),
            (Err(e), _) => Err(backend(format!("the transaction failed: {e}"))),
        };
        // The caller may have gone away; its write stands all the same.
        let _ = self.reply.send(result);
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// The writer thread: one transaction per batch of queued jobs, until every
/// `Database` clone is gone and the queue is empty.
fn run_writer(conn: Connection, queue: mpsc::Receiver<Box<dyn Job>>, commits: Arc<AtomicU64>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = run_batch(&conn, &mut batch);
        match &outcome {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = batch.len(), "SQLite write transaction failed");
            }
        }
        for job in batch.drain(..) {
            job.finish(outcome.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

/// Runs a batch in one transaction, each job in its own savepoint, and
/// commits. On error the whole transaction is rolled back.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| format!("BEGIN: {e}"))?;
    let result = (|| {
        for job in batch.iter_mut() {
            conn.execute_batch("SAVEPOINT job")
                .map_err(|e| format!("SAVEPOINT: {e}"))?;
            let ok = job.run(conn);
            if conn.is_autocommit() {
                // The job ended the transaction itself, or SQLite rolled it
                // back (disk full, I/O error): nothing of the batch is sure.
                return Err("the transaction ended inside a job".to_owned());
            }
            if !ok {
                conn.execute_batch("ROLLBACK TO job")
                    .map_err(|e| format!("ROLLBACK TO: {e}"))?;
            }
            conn.execute_batch("RELEASE job")
                .map_err(|e| format!("RELEASE: {e}"))?;
        }
        conn.execute_batch("COMMIT")
            .map_err(|e| format!("COMMIT: {e}"))
    })();
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

// ---------------------------------------------------------------------------
// The readers.

struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One per connection that may be in use.
    permits: Arc<Semaphore>,
}

impl ReadPool {
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(&conn))).unwrap_or_else(|panic| {
            Err(backend(format!(
                "read job panicked: {}",
                panic_message(&panic)
            )))
        });
        self.give_back(conn);
        result
    }

    /// Returns a connection to the pool, unless it is stuck in a
    /// transaction (which would pin an old snapshot).
    fn give_back(&self, conn: Connection) {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
            if !conn.is_autocommit() {
                return;
            }
        }
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| backend(format!("cannot open {} for reading: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

// ---------------------------------------------------------------------------
// A tenant's table.

/// One tenant's items: `id TEXT PRIMARY KEY, rev TEXT, doc TEXT` (the JSON
/// object of `Item::doc`), with an expression index on
/// `json_extract(doc, '$.<field>')` per indexed field.
#[derive(Clone)]
pub struct SqliteTable {
    db: Database,
    table: Arc<str>,
    /// The statement of `get`, made once (every GET runs it).
    select_by_id: Arc<str>,
    /// Indexed field → index name.
    indexes: Arc<BTreeMap<String, String>>,
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
    /// The table's name.
    pub fn name(&self) -> &str {
        &self.table
    }

    /// The database the table is in.
    pub fn database(&self) -> &Database {
        &self.db
    }
}

/// `NotFound` or `RevMismatch` unless the stored item satisfies `expect`.
/// Runs inside the writer job, so nothing can change between the check and
/// the write.
fn check_expect(
    conn: &Connection,
    table: &str,
    id: &str,
    expect: &Expect,
) -> Result<(), StoreError> {
    let rev: Option<String> = conn
        .prepare_cached(&format!("SELECT rev FROM {} WHERE id = ?1", quote(table)))?
        .query_row([id], |r| r.get(0))
        .optional()?;
    match (rev, expect) {
        (None, _) => Err(StoreError::NotFound),
        (Some(stored), Expect::Rev(wanted)) if stored != *wanted => Err(StoreError::RevMismatch),
        _ => Ok(()),
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
    }

    async fn create(&self, item: &Item) -> Result<(), StoreError> {
        let table = Arc::clone(&self.table);
        let (id, rev, doc) = (item.id.clone(), item.rev.clone(), doc_text(item)?);
        self.db
            .write(move |c| {
                let exists = c
                    .prepare_cached(&format!("SELECT 1 FROM {} WHERE id = ?1", quote(&table)))?
                    .exists([&id])?;
                if exists {
                    return Err(StoreError::Exists);
                }
                c.prepare_cached(&format!(
                    "INSERT INTO {} (id, rev, doc) VALUES (?1, ?2, ?3)",
                    quote(&table)
                ))?
                .execute(params![id, rev, doc])?;
                Ok(())
            })
            .await
    }

    async fn replace(&self, item: &Item, expect: &Expect) -> Result<(), StoreError> {
        let table = Arc::clone(&self.table);
        let (id, rev, doc) = (item.id.clone(), item.rev.clone(), doc_text(item)?);
        let expect = expect.clone();
        self.db
            .write(move |c| {
                check_expect(c, &table, &id, &expect)?;
                c.prepare_cached(&format!(
                    "UPDATE {} SET rev = ?2, doc = ?3 WHERE id = ?1",
                    quote(&table)
                ))?
                .execute(params![id, rev, doc])?;
                Ok(())
            })
            .await
    }

    async fn delete(&self, id: &str, expect: &Expect) -> Result<(), StoreError> {
        let table = Arc::clone(&self.table);
        let id = id.to_owned();
        let expect = expect.clone();
        self.db
            .write(move |c| {
                check_expect(c, &table, &id, &expect)?;
                c.prepare_cached(&format!("DELETE FROM {} WHERE id = ?1", quote(&table)))?
                    .execute([&id])?;
                Ok(())
            })
            .await
    }

    async fn search(&self, search: &Search) -> Result<Page, StoreError> {
        let (sql, params) = search_sql(&self.table, &self.indexes, search)?;
        let limit = page_limit(search.limit);
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&sql)?;
                let rows = stmt
                    .query_map(params_from_iter(params.iter()), |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    })?
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
            })
            .await
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
fn search_sql(
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;
    use tempfile::TempDir;

    fn tenant() -> Tenant {
        Tenant::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/conformance.toml"
        )))
        .unwrap()
    }

    async fn setup() -> (TempDir, Database, SqliteTable) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("local.db")).unwrap();
        let table = db.table(&tenant()).await.unwrap();
        (dir, db, table)
    }

    fn item(id: &str, rev: &str, doc: Value) -> Item {
        let Value::Object(doc) = doc else {
            panic!("doc must be an object")
        };
        Item {
            id: id.to_owned(),
            rev: rev.to_owned(),
            doc,
        }
    }

    fn eq(field: &str, value: Value) -> Filter {
        Filter {
            field: field.into(),
            value,
            list: false,
        }
    }

    fn search(filters: Vec<Filter>, index: Option<&str>) -> Search {
        Search {
            filters,
            index: index.map(str::to_owned),
            limit: 100,
            start: None,
        }
    }

    async fn ids(table: &SqliteTable, s: Search) -> Vec<String> {
        let page = table.search(&s).await.unwrap();
        assert_eq!(page.next, None);
        page.items.into_iter().map(|i| i.id).collect()
    }

    #[tokio::test]
    async fn round_trip_and_conditions() {
        let (_dir, _db, t) = setup().await;
        assert_eq!(t.name(), "items_conformance");
        assert_eq!(t.get("a").await.unwrap(), None);

        let a1 = item("a", "r1", json!({"name": "A", "size": 3, "tags": ["x"]}));
        t.create(&a1).await.unwrap();
        assert_eq!(t.get("a").await.unwrap(), Some(a1.clone()));
        let again = item("a", "r9", json!({"name": "other"}));
        assert!(matches!(t.create(&again).await, Err(StoreError::Exists)));
        assert_eq!(t.get("a").await.unwrap(), Some(a1.clone()));

        let a2 = item("a", "r2", json!({"name": "A2"}));
        let missing = item("zz", "r1", json!({"name": "Z"}));
        assert!(matches!(
            t.replace(&missing, &Expect::Exists).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            t.replace(&missing, &Expect::Rev("r1".into())).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            t.replace(&a2, &Expect::Rev("r0".into())).await,
            Err(StoreError::RevMismatch)
        ));
        assert_eq!(t.get("a").await.unwrap(), Some(a1.clone()));
        t.replace(&a2, &Expect::Rev("r1".into())).await.unwrap();
        assert_eq!(t.get("a").await.unwrap(), Some(a2.clone()));
        let a3 = item("a", "r3", json!({"name": "A3", "active": true}));
        t.replace(&a3, &Expect::Exists).await.unwrap();
        assert_eq!(t.get("a").await.unwrap(), Some(a3.clone()));

        assert!(matches!(
            t.delete("a", &Expect::Rev("r2".into())).await,
            Err(StoreError::RevMismatch)
        ));
        assert!(matches!(
            t.delete("zz", &Expect::Exists).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(t.get("a").await.unwrap(), Some(a3));
        t.delete("a", &Expect::Rev("r3".into())).await.unwrap();
        assert_eq!(t.get("a").await.unwrap(), None);
        assert!(matches!(
            t.delete("a", &Expect::Exists).await,
            Err(StoreError::NotFound)
        ));

        t.create(&item("b", "r1", json!({}))).await.unwrap();
        t.delete("b", &Expect::Exists).await.unwrap();
        assert_eq!(t.get("b").await.unwrap(), None);
        // A deleted id can be created again.
        t.create(&item("b", "r2", json!({}))).await.unwrap();
        assert_eq!(t.get("b").await.unwrap().unwrap().rev, "r2");
    }

    #[tokio::test]
    async fn awkward_ids_and_values_are_just_data() {
        let (_dir, _db, t) = setup().await;
        let huge = "é".repeat(1 << 20);
        let ids = [
            "it's",
            "\"quoted\"",
            "'; DROP TABLE items_conformance; --",
            "ünïcødé 🦀",
            "nul\0byte",
            "",
            huge.as_str(),
        ];
        for id in ids {
            let it = item(id, "r'1\"", json!({"name": id, "tags": [id, "\u{0}"]}));
            t.create(&it).await.unwrap();
            assert_eq!(t.get(id).await.unwrap(), Some(it));
        }
        let found = t
            .search(&Search {
                filters: vec![Filter {
                    field: "tags".into(),
                    value: json!("it's"),
                    list: true,
                }],
                index: None,
                limit: 10,
                start: Some(json!({"id": "'"})),
            })
            .await
            .unwrap();
        assert_eq!(found.items.len(), 1);
        let page = t.search(&search(vec![], None)).await.unwrap();
        assert_eq!(page.items.len(), ids.len());
        // A filter on a field name that could break out of the JSON path is
        // refused, not run.
        let bad = search(vec![eq("x') OR 1=1 --", json!(1))], None);
        assert!(matches!(t.search(&bad).await, Err(StoreError::Backend(_))));
        for id in ids {
            t.delete(id, &Expect::Exists).await.unwrap();
        }
        assert!(
            t.search(&search(vec![], None))
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn group_commit_batches_concurrent_writes() {
        let (_dir, db, t) = setup().await;
        let before = db.commits();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let t = t.clone();
                tokio::spawn(async move {
                    t.create(&item(&format!("i{i:03}"), "r1", json!({"size": i})))
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let commits = db.commits() - before;
        println!("200 concurrent creates took {commits} commits");
        assert!(commits >= 1);
        assert!(
            commits < 200,
            "no batching: {commits} commits for 200 writes"
        );

        // With the writer held up, the writes queued meanwhile go in as few
        // transactions as MAX_BATCH allows: 600 jobs need two.
        let before = db.commits();
        let gate = {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(|_| {
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(())
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let tasks: Vec<_> = (200..800)
            .map(|i| {
                let t = t.clone();
                tokio::spawn(async move {
                    t.create(&item(&format!("i{i:03}"), "r1", json!({"size": i})))
                        .await
                })
            })
            .collect();
        gate.await.unwrap().unwrap();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let commits = db.commits() - before;
        println!("a gate and 600 queued creates took {commits} commits");
        assert!(
            (3..=10).contains(&commits),
            "{commits} commits for a gate and 600 queued writes"
        );

        let mut s = search(vec![], None);
        s.limit = 100;
        let mut seen = 0;
        loop {
            let page = t.search(&s).await.unwrap();
            seen += page.items.len();
            match page.next {
                Some(next) => s.start = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, 800);
        let check = db
            .read(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))?))
            .await
            .unwrap();
        assert_eq!(check, "ok");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_job_is_rolled_back_alone() {
        let (_dir, db, t) = setup().await;
        for i in 0..50 {
            t.create(&item(&format!("k{i:03}"), "old", json!({"size": i})))
                .await
                .unwrap();
        }

        // Half of the creates collide with stored ids.
        let before = db.commits();
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let t = t.clone();
                tokio::spawn(async move {
                    t.create(&item(&format!("k{i:03}"), "new", json!({"size": 1000 + i})))
                        .await
                })
            })
            .collect();
        let mut created = 0;
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                Ok(()) => {
                    assert!(i >= 50);
                    created += 1;
                }
                Err(StoreError::Exists) => assert!(i < 50),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(created, 50);
        assert!(db.commits() - before < 100);
        for i in 0..100 {
            let got = t.get(&format!("k{i:03}")).await.unwrap().unwrap();
            assert_eq!(got.rev, if i < 50 { "old" } else { "new" });
        }

        // Jobs that wrote and then failed are undone; their neighbours in
        // the same transaction are kept.
        let before = db.commits();
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.write(move |c| {
                        c.execute(
                            "INSERT INTO items_conformance (id, rev, doc) VALUES (?1, 'r', '{}')",
                            [format!("w{i:03}")],
                        )?;
                        if i % 2 == 1 {
                            return Err(StoreError::Backend("boom".into()));
                        }
                        if i == 10 {
                            panic!("a panicking job");
                        }
                        Ok(i)
                    })
                    .await
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let result = task.await.unwrap();
            match i {
                10 => {
                    assert!(matches!(result, Err(StoreError::Backend(m)) if m.contains("panicked")))
                }
                i if i % 2 == 1 => {
                    assert!(matches!(result, Err(StoreError::Backend(m)) if m == "boom"))
                }
                i => assert_eq!(result.unwrap(), i),
            }
        }
        assert!(db.commits() - before < 100);
        for i in 0..100 {
            let stored = t.get(&format!("w{i:03}")).await.unwrap().is_some();
            assert_eq!(stored, i % 2 == 0 && i != 10, "w{i:03}");
        }
        let check = db
            .read(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))?))
            .await
            .unwrap();
        assert_eq!(check, "ok");
    }

    #[tokio::test]
    async fn writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local.db");
        let it = item("kept", "r1", json!({"name": "kept", "weight": 2.5}));
        {
            let db = Database::open(&path).unwrap();
            let (mode, synchronous) = db
                .write(|c| {
                    let mode = c.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))?;
                    let sync = c.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))?;
                    Ok((mode, sync))
                })
                .await
                .unwrap();
            assert_eq!(
                (mode.as_str(), synchronous),
                ("wal", 2),
                "WAL, synchronous=FULL"
            );
            let t = db.table(&tenant()).await.unwrap();
            t.create(&it).await.unwrap();
            // Clones keep it open; the writer stops with the last one.
            let other = db.clone();
            drop(db);
            assert!(other.commits() >= 3);
        }
        let db = Database::open(&path).unwrap();
        let t = db.table(&tenant()).await.unwrap();
        assert_eq!(t.get("kept").await.unwrap(), Some(it));
        assert_eq!(db.commits(), 1);
        db.drop_table("conformance").await.unwrap();
        let gone = db
            .read(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE tbl_name = 'items_conformance'",
                    [],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(gone, 0);
        db.drop_table("conformance").await.unwrap();
    }

    async fn fill(t: &SqliteTable) {
        let colors = ["red", "green", "blue"];
        for i in 0..25_i64 {
            let doc = json!({
                "name": format!("thing {i}"),
                "color": colors[(i % 3) as usize],
                "size": i % 5,
                "weight": (i as f64) + 0.5,
                "active": i % 2 == 0,
                "seen": "2026-01-31T09:30:00Z",
                "tags": if i % 4 == 0 { json!(["four", "all"]) } else { json!(["all"]) },
            });
            t.create(&item(&format!("t{i:02}"), "r1", doc))
                .await
                .unwrap();
        }
        // Same-looking values of other types must not match.
        t.create(&item(
            "odd",
            "r1",
            json!({"name": "1", "color": "3", "size": 2.5, "tags": "four"}),
        ))
        .await
        .unwrap();
    }

    fn expected(pred: impl Fn(i64) -> bool) -> Vec<String> {
        (0..25)
            .filter(|i| pred(*i))
            .map(|i| format!("t{i:02}"))
            .collect()
    }

    #[tokio::test]
    async fn searches() {
        let (_dir, _db, t) = setup().await;
        fill(&t).await;

        // Non-indexed fields of every type.
        assert_eq!(
            ids(&t, search(vec![eq("name", json!("thing 7"))], None)).await,
            ["t07"]
        );
        assert_eq!(
            ids(&t, search(vec![eq("weight", json!(3.5))], None)).await,
            ["t03"]
        );
        assert_eq!(
            ids(&t, search(vec![eq("active", json!(true))], None)).await,
            expected(|i| i % 2 == 0)
        );
        assert_eq!(
            ids(&t, search(vec![eq("active", json!(false))], None)).await,
            expected(|i| i % 2 == 1)
        );
        assert_eq!(
            ids(
                &t,
                search(vec![eq("seen", json!("2026-01-31T09:30:00Z"))], None)
            )
            .await
            .len(),
            25
        );
        assert!(
            ids(&t, search(vec![eq("name", json!(1))], None))
                .await
                .is_empty()
        );

        // Indexed fields, with and without naming the index.
        for index in [None, Some("color")] {
            assert_eq!(
                ids(&t, search(vec![eq("color", json!("green"))], index)).await,
                expected(|i| i % 3 == 1)
            );
        }
        for index in [None, Some("size")] {
            assert_eq!(
                ids(&t, search(vec![eq("size", json!(2))], index)).await,
                expected(|i| i % 5 == 2)
            );
            assert_eq!(
                ids(&t, search(vec![eq("size", json!(2.5))], index)).await,
                ["odd"]
            );
        }

        // String-list contains.
        let tags = |v: &str| Filter {
            field: "tags".into(),
            value: json!(v),
            list: true,
        };
        assert_eq!(
            ids(&t, search(vec![tags("four")], None)).await,
            expected(|i| i % 4 == 0)
        );
        assert_eq!(ids(&t, search(vec![tags("all")], None)).await.len(), 25);
        assert!(ids(&t, search(vec![tags("none")], None)).await.is_empty());

        // Combined.
        assert_eq!(
            ids(
                &t,
                search(
                    vec![
                        eq("color", json!("red")),
                        eq("active", json!(true)),
                        tags("four")
                    ],
                    Some("color")
                )
            )
            .await,
            expected(|i| i % 3 == 0 && i % 2 == 0 && i % 4 == 0)
        );
        assert_eq!(
            ids(
                &t,
                search(
                    vec![eq("size", json!(1)), eq("color", json!("blue"))],
                    Some("size")
                )
            )
            .await,
            expected(|i| i % 5 == 1 && i % 3 == 2)
        );

        // An index the table does not have, or one with nothing to look up.
        for bad in [
            search(vec![eq("name", json!("x"))], Some("name")),
            search(vec![eq("name", json!("x"))], Some("color")),
            search(vec![eq("name", json!(null))], None),
            search(vec![eq("name", json!([1]))], None),
        ] {
            assert!(matches!(t.search(&bad).await, Err(StoreError::Backend(_))));
        }
    }

    #[tokio::test]
    async fn paging() {
        let (_dir, _db, t) = setup().await;
        fill(&t).await;
        t.delete("odd", &Expect::Exists).await.unwrap();

        for (filters, index) in [
            (vec![], None),
            (vec![eq("seen", json!("2026-01-31T09:30:00Z"))], None),
            (
                vec![Filter {
                    field: "tags".into(),
                    value: json!("all"),
                    list: true,
                }],
                None,
            ),
        ] {
            let mut s = Search {
                filters,
                index,
                limit: 10,
                start: None,
            };
            let mut sizes = Vec::new();
            let mut all = Vec::new();
            loop {
                let page = t.search(&s).await.unwrap();
                sizes.push(page.items.len());
                all.extend(page.items.into_iter().map(|i| i.id));
                match page.next {
                    Some(next) => s.start = Some(next),
                    None => break,
                }
            }
            assert_eq!(sizes, [10, 10, 5]);
            assert_eq!(all, expected(|_| true));
            assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 25);
        }

        // Exactly a page: no next.
        let mut s = search(vec![], None);
        s.limit = 25;
        let page = t.search(&s).await.unwrap();
        assert_eq!((page.items.len(), page.next), (25, None));

        // Paging on an index.
        let mut s = search(vec![eq("color", json!("red"))], Some("color"));
        s.limit = 5;
        let first = t.search(&s).await.unwrap();
        assert_eq!(first.next, Some(json!({"id": "t12"})));
        s.start = first.next;
        let second = t.search(&s).await.unwrap();
        assert_eq!(second.items.len(), 4);
        assert_eq!(second.items[0].id, "t15");
        assert_eq!(second.next, None);

        for bad in [
            json!("t05"),
            json!(5),
            json!(null),
            json!([]),
            json!({}),
            json!({"id": 5}),
            json!({"id": null}),
            json!({"key": "t05"}),
            json!({"id": "t05", "extra": 1}),
        ] {
            let mut s = search(vec![], None);
            s.start = Some(bad.clone());
            assert!(
                matches!(t.search(&s).await, Err(StoreError::BadStart(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn indexed_searches_use_the_index() {
        let (_dir, db, t) = setup().await;
        fill(&t).await;
        assert_eq!(
            *t.indexes,
            BTreeMap::from([
                ("color".to_owned(), "items_conformance_by_color".to_owned()),
                ("size".to_owned(), "items_conformance_by_size".to_owned()),
            ])
        );
        for (field, value) in [("color", json!("red")), ("size", json!(3))] {
            let mut s = search(
                vec![eq("name", json!("thing 3")), eq(field, value)],
                Some(field),
            );
            s.start = Some(json!({"id": "t00"}));
            let (sql, params) = search_sql(&t.table, &t.indexes, &s).unwrap();
            let plan = db
                .read(move |c| {
                    let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let rows = stmt
                        .query_map(params_from_iter(params.iter()), |r| r.get::<_, String>(3))?
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(rows.join("\n"))
                })
                .await
                .unwrap();
            println!("{field}: {plan}");
            let index = format!("items_conformance_by_{field}");
            assert!(plan.contains(&index), "{plan}");
            assert!(plan.contains("SEARCH"), "{plan}");
        }
    }

    #[tokio::test]
    async fn table_is_idempotent_and_follows_the_indexes() {
        let (_dir, db, _t) = setup().await;
        let index_names = || {
            db.read(|c| {
                Ok(c.prepare(
                    "SELECT name FROM sqlite_schema WHERE type = 'index' \
                     AND tbl_name = 'items_conformance' ORDER BY name",
                )?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?)
            })
        };
        let mut tenant = tenant();
        db.table(&tenant).await.unwrap();
        assert_eq!(
            index_names().await.unwrap(),
            ["items_conformance_by_color", "items_conformance_by_size"]
        );
        for f in &mut tenant.collection.fields {
            f.index = f.name == "name";
        }
        let t = db.table(&tenant).await.unwrap();
        assert_eq!(index_names().await.unwrap(), ["items_conformance_by_name"]);
        t.create(&item("n", "r", json!({"name": "N"})))
            .await
            .unwrap();
        assert_eq!(
            ids(&t, search(vec![eq("name", json!("N"))], Some("name"))).await,
            ["n"]
        );

        tenant.id = "other-tenant".into();
        let other = db.table(&tenant).await.unwrap();
        assert_eq!(other.name(), "items_other_tenant");
        assert_eq!(other.get("n").await.unwrap(), None);
    }
}
