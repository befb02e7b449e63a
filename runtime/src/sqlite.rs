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
//! - [`Database::version`] tells whether anything was committed since an
//!   earlier call, by anyone, without a read transaction (see
//!   [`WalIndex`]), so a reader can keep what it made of an item exactly
//!   as long as it is true.
//!
//! [`Database::table`] gives a tenant's [`SqliteTable`], the [`Store`].

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, oneshot};

use crate::store::{StoreError, Version};

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
    /// `None` when the WAL index cannot be read (then there is no
    /// [`Version`] and every read goes to SQLite).
    wal_index: Option<WalIndex>,
}

/// The WAL index's header, read from the `-shm` file every connection of
/// every process maps (SQLite's "WAL-mode File Format", section 2.2,
/// <https://www.sqlite.org/walformat.html>): 48 bytes that SQLite rewrites
/// on every commit (its `iChange` counts transactions; `mxFrame`, the
/// salts and a checksum of the header change with them), stored twice, the
/// second copy written first. One `pread` of both copies: equal copies are
/// a consistent header, unequal ones a commit in progress (no version).
///
/// The file stays the same while this process holds the database open:
/// SQLite deletes it only when the last connection of all processes
/// closes, and the writer connection is open as long as [`Database`] is.
/// `version_sees_every_commit` (the tests) checks the layout against the
/// bundled SQLite, so an upgrade that changed it would fail there.
struct WalIndex {
    file: std::fs::File,
}

impl WalIndex {
    fn open(db: &Path) -> Option<WalIndex> {
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        let file = std::fs::File::open(shm).ok()?;
        let index = WalIndex { file };
        index.version().map(|_| index)
    }

    fn version(&self) -> Option<Version> {
        use std::os::unix::fs::FileExt;
        let mut both = [0u8; 96];
        self.file.read_exact_at(&mut both, 0).ok()?;
        let (first, second) = both.split_at(48);
        // Byte 12 is `isInit`: a header SQLite has written.
        (first == second && first[12] != 0).then(|| {
            let mut header = [0u8; 48];
            header.copy_from_slice(first);
            Version(header)
        })
    }
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

        // A read transaction makes the WAL index (and its header) if no
        // connection has yet.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        let wal_index = WalIndex::open(path);
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
                wal_index,
            }),
        })
    }

    /// A mark of the whole database now: equal marks mean no transaction
    /// committed in between, from this process or another. One `pread`,
    /// no lock; `None` when it cannot tell (see [`WalIndex`]).
    pub fn version(&self) -> Option<Version> {
        self.inner.wal_index.as_ref()?.version()
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
    // Prepared once and kept (`prepare_cached`): a batch runs these once per
    // job, and parsing them each time was a good part of a write's cost.
    let run = |sql: &str| -> Result<(), String> {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(|e| format!("{sql}: {e}"))
    };
    run("BEGIN IMMEDIATE")?;
    let result = (|| {
        for job in batch.iter_mut() {
            run("SAVEPOINT job")?;
            let ok = job.run(conn);
            if conn.is_autocommit() {
                // The job ended the transaction itself, or SQLite rolled it
                // back (disk full, I/O error): nothing of the batch is sure.
                return Err("the transaction ended inside a job".to_owned());
            }
            if !ok {
                run("ROLLBACK TO job")?;
            }
            run("RELEASE job")?;
        }
        run("COMMIT")
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
    // The query planner's stability guarantee: a cached statement keeps
    // its plan whatever values are bound. Without it SQLite compiled a
    // search's statement again at every step (a bound value compared with
    // an indexed expression may change the plan), most of what a search
    // cost (`a_cached_search_is_not_prepared_again`).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(conn)
}

mod table;
#[cfg(test)]
mod tests;

pub use table::{Put, SqliteTable};
