//! The local target's deployed state, in one SQLite database in the data
//! directory (default `.apifactory/`): what is deployed (here), the API
//! keys as SHA-256 hashes, never the values (`api_keys`), quota counters
//! (`quota`), and the tenants' items; `snapshot` reads what the gateway
//! serves. Every change bumps a generation counter, so a running gateway
//! (`apifactory up`) notices changes made by another process.

mod api_keys;
mod quota;
mod snapshot;
mod usage;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use runtime::StoreError;
use runtime::sqlite::Database;
use rusqlite::params;
use serde_json::Value;

pub use api_keys::{KeyRecord, hash_key, same_hash};
pub use quota::period_start;
pub use snapshot::{DeployedTenant, Snapshot};
pub use usage::{Grain, KEEP_HOURS, KEEP_MINUTES, UsageRecord, UsageRow};

use crate::resource::{Address, Attrs, Kind};
use crate::spec;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deployed (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    attrs TEXT NOT NULL,
    payload TEXT,
    PRIMARY KEY (tenant, kind, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    client TEXT NOT NULL,
    name TEXT NOT NULL UNIQUE,
    hash BLOB NOT NULL UNIQUE,
    enabled INTEGER NOT NULL,
    origin TEXT NOT NULL,
    created TEXT NOT NULL,
    expires INTEGER,
    last_used TEXT
);
CREATE TABLE IF NOT EXISTS quota_usage (
    key_id TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (key_id, period_start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('generation', 0);
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
";

/// The local target's data directory, opened.
#[derive(Clone, Debug)]
pub struct LocalState {
    db: Database,
    dir: PathBuf,
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl LocalState {
    /// Opens (creating) the data directory and its database.
    pub async fn open(dir: &Path) -> anyhow::Result<LocalState> {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("cannot create the data directory {}: {e}", dir.display())
        })?;
        let db = Database::open(&dir.join("apifactory.sqlite"))?;
        db.write(|c| {
            c.execute_batch(SCHEMA).map_err(sql)?;
            c.execute_batch(usage::SCHEMA).map_err(sql)?;
            c.execute_batch(quota::SCHEMA).map_err(sql)?;
            c.execute_batch(crate::local::alarms::SCHEMA).map_err(sql)
        })
        .await?;
        Ok(LocalState {
            db,
            dir: dir.to_owned(),
        })
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log file of a tenant.
    pub fn log_path(&self, tenant: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{tenant}.log"))
    }

    /// The secret that signs search cursors on this data directory: 256
    /// random bits made the first time it is asked for, kept in the
    /// database (as the AWS target keeps its in the functions'
    /// environment), so cursors survive a restart and cannot be forged.
    pub async fn cursor_secret(&self) -> anyhow::Result<Vec<u8>> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let secret = self
            .db
            .write(move |c| {
                c.execute(
                    "INSERT OR IGNORE INTO secrets (name, value) VALUES ('cursor', ?1)",
                    [&fresh[..]],
                )
                .map_err(sql)?;
                c.query_row("SELECT value FROM secrets WHERE name = 'cursor'", [], |r| {
                    r.get::<_, Vec<u8>>(0)
                })
                .map_err(sql)
            })
            .await?;
        Ok(secret)
    }

    /// Bumped by every change to deployed state or keys.
    pub async fn generation(&self) -> anyhow::Result<u64> {
        Ok(self
            .db
            .read(|c| {
                c.query_row(
                    "SELECT value FROM meta WHERE name = 'generation'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(sql)
            })
            .await? as u64)
    }

    /// Every deployed resource of these tenants (all when empty), keys
    /// included, as addresses and attributes.
    pub async fn resources(
        &self,
        tenants: &BTreeSet<String>,
    ) -> anyhow::Result<BTreeMap<Address, Attrs>> {
        let (rows, keys) = self
            .db
            .read(|c| {
                let mut stmt = c
                    .prepare("SELECT tenant, kind, name, attrs FROM deployed")
                    .map_err(sql)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    })
                    .map_err(sql)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql)?;
                Ok((rows, api_keys::read_keys(c)?))
            })
            .await?;
        let mut out = BTreeMap::new();
        for (tenant, kind, name, attrs) in rows {
            if !tenants.is_empty() && !tenants.contains(&tenant) {
                continue;
            }
            let Some(kind) = Kind::parse(&kind) else {
                continue;
            };
            let attrs: Attrs = serde_json::from_str(&attrs)?;
            out.insert(Address::new(&tenant, kind, name), attrs);
        }
        for k in keys {
            if !tenants.is_empty() && !tenants.contains(&k.tenant) {
                continue;
            }
            out.insert(
                Address::new(&k.tenant, Kind::ApiKey, k.name.clone()),
                crate::resource::attrs([
                    (spec::CLIENT, Value::String(k.client.clone())),
                    (spec::ENABLED, Value::Bool(k.enabled)),
                    (spec::ORIGIN, Value::String(k.origin.clone())),
                ]),
            );
        }
        Ok(out)
    }

    /// Records a deployed resource (not a key), with an optional payload
    /// (a function's tenant source).
    pub async fn put(
        &self,
        address: &Address,
        attrs: &Attrs,
        payload: Option<String>,
    ) -> anyhow::Result<()> {
        let (tenant, kind, name) = (
            address.tenant.clone(),
            address.kind.as_str(),
            address.name.clone(),
        );
        let attrs = serde_json::to_string(attrs)?;
        self.db
            .write(move |c| {
                c.execute(
                    "INSERT INTO deployed (tenant, kind, name, attrs, payload) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (tenant, kind, name) DO UPDATE SET attrs = excluded.attrs, payload = excluded.payload",
                    params![tenant, kind, name, attrs, payload],
                )
                .map_err(sql)?;
                bump(c)
            })
            .await?;
        Ok(())
    }

    /// Forgets a deployed resource (not a key).
    pub async fn remove(&self, address: &Address) -> anyhow::Result<()> {
        let (tenant, kind, name) = (
            address.tenant.clone(),
            address.kind.as_str(),
            address.name.clone(),
        );
        self.db
            .write(move |c| {
                c.execute(
                    "DELETE FROM deployed WHERE tenant = ?1 AND kind = ?2 AND name = ?3",
                    params![tenant, kind, name],
                )
                .map_err(sql)?;
                bump(c)
            })
            .await?;
        Ok(())
    }
}

fn bump(c: &rusqlite::Connection) -> Result<(), StoreError> {
    c.execute(
        "UPDATE meta SET value = value + 1 WHERE name = 'generation'",
        [],
    )
    .map_err(sql)?;
    Ok(())
}

pub fn now_rfc3339() -> String {
    runtime::field::now_rfc3339()
}
