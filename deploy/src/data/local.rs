//! A tenant's table on the local target for `apifactory data`.
//!
//! The data directory's database may be served by `apifactory up` at the
//! same time: each import batch is one transaction of this process's
//! writer, which waits for `up`'s writer (SQLite's busy timeout) and is
//! seen by `up`'s next read, since both read the same WAL file.

use runtime::Tenant;
use runtime::schema::TableSchema;
use runtime::sqlite::SqliteTable;

use crate::local::LocalState;

/// The tenant's items table, if `apply` has made it.
pub async fn table(state: &LocalState, tenant: &Tenant) -> anyhow::Result<SqliteTable> {
    let schema = TableSchema::of(&tenant.collection);
    state
        .database()
        .existing_table(&tenant.collection.table_name(&tenant.id), &schema)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "tenant {} has no table in {} yet: run `apifactory apply --tenant {}` first",
                tenant.id,
                state.dir().display(),
                tenant.id
            )
        })
}
