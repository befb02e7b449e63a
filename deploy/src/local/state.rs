//! The local target's deployed state, in one SQLite database in the data
//! directory (default `.apifactory/`): what is deployed, the API keys (as
//! SHA-256 hashes, never the values), quota counters, and the tenants'
//! items. Every change bumps a generation counter, so a running gateway
//! (`apifactory up`) notices changes made by another process.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use runtime::sqlite::Database;
use runtime::tenant::{Period, Quota};
use runtime::{Operation, StoreError, Tenant};
use rusqlite::{OptionalExtension, params};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::keys::{new_key_id, new_key_value};
use crate::resource::{Address, Attrs, Kind};

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

/// One API key as stored: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub tenant: String,
    pub client: String,
    pub name: String,
    pub hash: [u8; 32],
    pub enabled: bool,
    /// `file` for keys declared in `[[clients]]`, `cli` for `apifactory keys`.
    pub origin: String,
    /// RFC 3339.
    pub created: String,
    /// Unix seconds after which the key stops working (rotation grace).
    pub expires: Option<i64>,
    pub last_used: Option<String>,
}

impl KeyRecord {
    /// Whether the key lets a request in at `now` (Unix seconds).
    pub fn usable(&self, now: i64) -> bool {
        self.enabled && self.expires.is_none_or(|e| now < e)
    }
}

/// A tenant as deployed on the local target: what the gateway serves.
#[derive(Debug, Clone)]
pub struct DeployedTenant {
    /// Parsed from the source shipped with its functions.
    pub tenant: Tenant,
    /// The deployed stage (the tenant file's at the time of deployment).
    pub stage: String,
    /// Operations with a deployed function.
    pub operations: BTreeSet<Operation>,
    /// The usage plan: throttle and quota per key.
    pub rate: f64,
    pub burst: u32,
    pub quota: Option<Quota>,
    /// The stage's throttle, one bucket for every caller of the API: the
    /// tenant's API-wide rate and burst, when it sets them.
    pub api: Option<(f64, u32)>,
    /// Custom domain and base path ("" for the root).
    pub domain: Option<(String, String)>,
}

/// Everything the gateway needs, read at one generation.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub generation: u64,
    /// Only tenants with an API, a stage and a usage plan deployed.
    pub tenants: BTreeMap<String, DeployedTenant>,
    pub keys: Vec<KeyRecord>,
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
        db.write(|c| c.execute_batch(SCHEMA).map_err(sql)).await?;
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
                Ok((rows, read_keys(c)?))
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
                    ("client", Value::String(k.client.clone())),
                    ("enabled", Value::Bool(k.enabled)),
                    (crate::resource::ORIGIN, Value::String(k.origin.clone())),
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

    /// Creates a key for a client and returns its record and value (the
    /// only time the value exists outside the client's hands). Idempotent
    /// by name: if a key of that name exists, it is returned without a value.
    pub async fn create_key(
        &self,
        tenant: &str,
        client: &str,
        name: &str,
        origin: &str,
    ) -> anyhow::Result<(KeyRecord, Option<String>)> {
        let value = new_key_value()?;
        let record = KeyRecord {
            id: new_key_id()?,
            tenant: tenant.to_owned(),
            client: client.to_owned(),
            name: name.to_owned(),
            hash: hash_key(&value),
            enabled: true,
            origin: origin.to_owned(),
            created: now_rfc3339(),
            expires: None,
            last_used: None,
        };
        let r = record.clone();
        let inserted = self
            .db
            .write(move |c| {
                let n = c
                    .execute(
                        "INSERT OR IGNORE INTO api_keys (id, tenant, client, name, hash, enabled, origin, created)
                         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7)",
                        params![r.id, r.tenant, r.client, r.name, r.hash.to_vec(), r.origin, r.created],
                    )
                    .map_err(sql)?;
                if n == 1 {
                    bump(c)?;
                }
                Ok(n == 1)
            })
            .await?;
        if inserted {
            Ok((record, Some(value)))
        } else {
            let existing = self
                .keys()
                .await?
                .into_iter()
                .find(|k| k.name == name)
                .ok_or_else(|| anyhow::anyhow!("key {name} neither created nor found"))?;
            Ok((existing, None))
        }
    }

    /// Every key, with its hash, never its value.
    pub async fn keys(&self) -> anyhow::Result<Vec<KeyRecord>> {
        Ok(self.db.read(read_keys).await?)
    }

    /// Enables or disables a key; false when there is no such key.
    pub async fn set_key_enabled(&self, id_or_name: &str, enabled: bool) -> anyhow::Result<bool> {
        let key = id_or_name.to_owned();
        Ok(self
            .db
            .write(move |c| {
                let n = c
                    .execute(
                        "UPDATE api_keys SET enabled = ?2 WHERE id = ?1 OR name = ?1",
                        params![key, enabled],
                    )
                    .map_err(sql)?;
                if n > 0 {
                    bump(c)?;
                }
                Ok(n > 0)
            })
            .await?)
    }

    /// Sets when a key stops working (Unix seconds), or clears it.
    pub async fn set_key_expiry(&self, id: &str, expires: Option<i64>) -> anyhow::Result<bool> {
        let id = id.to_owned();
        Ok(self
            .db
            .write(move |c| {
                let n = c
                    .execute(
                        "UPDATE api_keys SET expires = ?2 WHERE id = ?1",
                        params![id, expires],
                    )
                    .map_err(sql)?;
                if n > 0 {
                    bump(c)?;
                }
                Ok(n > 0)
            })
            .await?)
    }

    /// Rotates a key: a new key takes over its name (so the tenant file's
    /// client keeps its identity), and the old one is renamed, marked
    /// `rotated`, and stops working at `expires` (Unix seconds). One
    /// transaction: there is never a moment with neither key working.
    pub async fn rotate_key(
        &self,
        old_id: &str,
        expires: i64,
    ) -> anyhow::Result<(KeyRecord, String)> {
        let value = new_key_value()?;
        let new_id = new_key_id()?;
        let hash = hash_key(&value);
        let created = now_rfc3339();
        let old_id = old_id.to_owned();
        let (id, h, c) = (new_id.clone(), hash, created.clone());
        self.db
            .write(move |conn| {
                let (tenant, client, name, origin): (String, String, String, String) = conn
                    .query_row(
                        "SELECT tenant, client, name, origin FROM api_keys WHERE id = ?1",
                        [&old_id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()
                    .map_err(sql)?
                    .ok_or_else(|| StoreError::Backend(format!("no key with id {old_id}")))?;
                conn.execute(
                    "UPDATE api_keys SET name = ?2, origin = 'rotated', expires = ?3 WHERE id = ?1",
                    params![old_id, format!("{name}-rotated-{old_id}"), expires],
                )
                .map_err(sql)?;
                conn.execute(
                    "INSERT INTO api_keys (id, tenant, client, name, hash, enabled, origin, created)
                     VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7)",
                    params![id, tenant, client, name, h.to_vec(), origin, c],
                )
                .map_err(sql)?;
                bump(conn)
            })
            .await?;
        let record = self
            .keys()
            .await?
            .into_iter()
            .find(|k| k.id == new_id)
            .ok_or_else(|| anyhow::anyhow!("the rotated key {new_id} is missing"))?;
        Ok((record, value))
    }

    /// Deletes a key and its quota counters; false when there is no such key.
    pub async fn delete_key(&self, id_or_name: &str) -> anyhow::Result<bool> {
        let key = id_or_name.to_owned();
        Ok(self
            .db
            .write(move |c| {
                let id: Option<String> = c
                    .query_row(
                        "SELECT id FROM api_keys WHERE id = ?1 OR name = ?1",
                        [&key],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql)?;
                let Some(id) = id else { return Ok(false) };
                c.execute("DELETE FROM api_keys WHERE id = ?1", [&id])
                    .map_err(sql)?;
                c.execute("DELETE FROM quota_usage WHERE key_id = ?1", [&id])
                    .map_err(sql)?;
                bump(c)?;
                Ok(true)
            })
            .await?)
    }

    /// Requests counted against a key's quota in the period starting at
    /// `period_start` (Unix seconds).
    pub async fn quota_used(&self, key_id: &str, period_start: i64) -> anyhow::Result<u64> {
        let key_id = key_id.to_owned();
        Ok(self
            .db
            .read(move |c| {
                c.query_row(
                    "SELECT used FROM quota_usage WHERE key_id = ?1 AND period_start = ?2",
                    params![key_id, period_start],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
                .map(|v| v.unwrap_or(0) as u64)
                .map_err(sql)
            })
            .await?)
    }

    /// Durably raises a key's counted use in a period to at least `upto`
    /// (counts never go down) and returns the stored count. The gateway
    /// reserves blocks ahead of serving them, so a crash can only
    /// over-count, never let a client past its quota.
    pub async fn quota_reserve(
        &self,
        key_id: &str,
        period_start: i64,
        upto: u64,
    ) -> anyhow::Result<u64> {
        let key_id = key_id.to_owned();
        Ok(self
            .db
            .write(move |c| {
                c.query_row(
                    "INSERT INTO quota_usage (key_id, period_start, used) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key_id, period_start) DO UPDATE SET used = max(used, excluded.used)
                     RETURNING used",
                    params![key_id, period_start, upto as i64],
                    |r| r.get::<_, i64>(0),
                )
                .map(|v| v as u64)
                .map_err(sql)
            })
            .await?)
    }

    /// Notes when keys were last used (the gateway batches these).
    pub async fn touch_keys(&self, ids: Vec<String>, when: String) -> anyhow::Result<()> {
        self.db
            .write(move |c| {
                let mut stmt = c
                    .prepare_cached("UPDATE api_keys SET last_used = ?2 WHERE id = ?1")
                    .map_err(sql)?;
                for id in &ids {
                    stmt.execute(params![id, when]).map_err(sql)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// What the gateway serves, read consistently at one generation.
    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let (generation, rows, keys) = self
            .db
            .read(|c| {
                let tx = c.unchecked_transaction().map_err(sql)?;
                let generation: i64 = tx
                    .query_row(
                        "SELECT value FROM meta WHERE name = 'generation'",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(sql)?;
                let mut stmt = tx
                    .prepare(
                        "SELECT tenant, kind, name, attrs, payload FROM deployed ORDER BY tenant",
                    )
                    .map_err(sql)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Option<String>>(4)?,
                        ))
                    })
                    .map_err(sql)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql)?;
                drop(stmt);
                let keys = read_keys(&tx)?;
                Ok((generation as u64, rows, keys))
            })
            .await?;
        let mut by_tenant: BTreeMap<String, Vec<Row>> = BTreeMap::new();
        for (tenant, kind, name, attrs, payload) in rows {
            let (Some(kind), Ok(attrs)) =
                (Kind::parse(&kind), serde_json::from_str::<Attrs>(&attrs))
            else {
                continue;
            };
            by_tenant
                .entry(tenant)
                .or_default()
                .push((kind, name, attrs, payload));
        }
        let mut tenants = BTreeMap::new();
        for (id, resources) in by_tenant {
            if let Some(t) = deployed_tenant(&id, &resources) {
                tenants.insert(id, t);
            }
        }
        Ok(Snapshot {
            generation,
            tenants,
            keys,
        })
    }
}

/// A deployed resource: kind, name, attributes, payload.
type Row = (Kind, String, Attrs, Option<String>);

/// Assembles a served tenant from its deployed resources, or `None` while
/// it is not fully deployed (no function source, API, stage or plan).
fn deployed_tenant(id: &str, resources: &[Row]) -> Option<DeployedTenant> {
    let of = |kind| resources.iter().filter(move |(k, ..)| *k == kind);
    let source = of(Kind::Function).find_map(|(.., payload)| payload.clone())?;
    let tenant = Tenant::parse_package(Path::new(&format!("{id}.toml")), &source).ok()?;
    of(Kind::Api).next()?;
    let (_, stage, stage_attrs, _) = of(Kind::Stage).next()?;
    let api = stage_attrs
        .get("rate")
        .and_then(Value::as_f64)
        .zip(stage_attrs.get("burst").and_then(Value::as_u64))
        .map(|(rate, burst)| (rate, u32::try_from(burst).unwrap_or(u32::MAX)));
    let (_, _, plan, _) = of(Kind::UsagePlan).next()?;
    let operations = of(Kind::Function)
        .filter_map(|(_, _, a, _)| a.get("operation")?.as_str().and_then(Operation::parse))
        .collect();
    let quota = match (
        plan.get("quota_limit").and_then(Value::as_u64),
        plan.get("quota_period").and_then(Value::as_str),
    ) {
        (Some(limit), Some(period)) => Some(Quota {
            limit,
            period: match period {
                "DAY" => Period::Day,
                "WEEK" => Period::Week,
                _ => Period::Month,
            },
        }),
        _ => None,
    };
    let domain = of(Kind::Domain).next().map(|(_, name, a, _)| {
        (
            name.clone(),
            a.get("base_path")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        )
    });
    Some(DeployedTenant {
        stage: stage.clone(),
        operations,
        rate: plan
            .get("rate")
            .and_then(Value::as_f64)
            .unwrap_or(tenant.usage_plan.rate),
        burst: plan
            .get("burst")
            .and_then(Value::as_u64)
            .map_or(tenant.usage_plan.burst, |b| b as u32),
        quota,
        api,
        domain,
        tenant,
    })
}

fn read_keys(c: &rusqlite::Connection) -> Result<Vec<KeyRecord>, StoreError> {
    let mut stmt = c
        .prepare("SELECT id, tenant, client, name, hash, enabled, origin, created, expires, last_used FROM api_keys ORDER BY tenant, client, created")
        .map_err(sql)?;
    stmt.query_map([], |r| {
        let hash: Vec<u8> = r.get(4)?;
        let mut h = [0u8; 32];
        if hash.len() == 32 {
            h.copy_from_slice(&hash);
        }
        Ok(KeyRecord {
            id: r.get(0)?,
            tenant: r.get(1)?,
            client: r.get(2)?,
            name: r.get(3)?,
            hash: h,
            enabled: r.get(5)?,
            origin: r.get(6)?,
            created: r.get(7)?,
            expires: r.get(8)?,
            last_used: r.get(9)?,
        })
    })
    .map_err(sql)?
    .collect::<Result<Vec<_>, _>>()
    .map_err(sql)
}

fn bump(c: &rusqlite::Connection) -> Result<(), StoreError> {
    c.execute(
        "UPDATE meta SET value = value + 1 WHERE name = 'generation'",
        [],
    )
    .map_err(sql)?;
    Ok(())
}

/// SHA-256 of a key value. Values are 256 random bits, so a fast hash is
/// enough: there is nothing to brute-force.
pub fn hash_key(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// Compares two hashes in constant time.
pub fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn now_rfc3339() -> String {
    runtime::field::now_rfc3339()
}

/// The start (Unix seconds, UTC) of the quota period holding `now`: the
/// day, the ISO week (from Monday), or the month.
pub fn period_start(period: Period, now: OffsetDateTime) -> i64 {
    let date = now.date();
    let start = match period {
        Period::Day => date,
        Period::Week => {
            date - time::Duration::days(i64::from(date.weekday().number_days_from_monday()))
        }
        Period::Month => date.replace_day(1).unwrap_or(date),
    };
    start.midnight().assume_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods_start_on_utc_boundaries() {
        let t = datetime!(2026-11-25 13:45:00 UTC); // a Wednesday
        assert_eq!(
            period_start(Period::Day, t),
            datetime!(2026-11-25 0:00 UTC).unix_timestamp()
        );
        assert_eq!(
            period_start(Period::Week, t),
            datetime!(2026-11-23 0:00 UTC).unix_timestamp()
        );
        assert_eq!(
            period_start(Period::Month, t),
            datetime!(2026-11-01 0:00 UTC).unix_timestamp()
        );
    }

    #[test]
    fn hashes_tell_key_values_apart() {
        let a = new_key_value().unwrap();
        let b = new_key_value().unwrap();
        assert!(same_hash(&hash_key(&a), &hash_key(&a)));
        assert!(!same_hash(&hash_key(&a), &hash_key(&b)));
    }

    #[tokio::test]
    async fn keys_are_stored_as_hashes_and_quota_never_goes_down() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::open(dir.path()).await.unwrap();
        let g0 = state.generation().await.unwrap();
        let (record, value) = state
            .create_key("acme", "web", "apifactory-acme-web", "file")
            .await
            .unwrap();
        let value = value.expect("a new key has a value");
        assert!(state.generation().await.unwrap() > g0);
        let (again, none) = state
            .create_key("acme", "web", "apifactory-acme-web", "file")
            .await
            .unwrap();
        assert_eq!(
            (again.id.as_str(), none),
            (record.id.as_str(), None),
            "idempotent by name"
        );
        let raw = std::fs::read(dir.path().join("apifactory.sqlite")).unwrap();
        assert!(
            !raw.windows(value.len()).any(|w| w == value.as_bytes()),
            "the value is not stored"
        );

        assert_eq!(state.quota_reserve(&record.id, 100, 10).await.unwrap(), 10);
        assert_eq!(
            state.quota_reserve(&record.id, 100, 5).await.unwrap(),
            10,
            "never goes down"
        );
        assert_eq!(state.quota_used(&record.id, 100).await.unwrap(), 10);
        assert!(state.set_key_enabled(&record.id, false).await.unwrap());
        assert!(!state.keys().await.unwrap()[0].enabled);
        assert!(state.delete_key("apifactory-acme-web").await.unwrap());
        assert!(state.keys().await.unwrap().is_empty());
        assert_eq!(state.quota_used(&record.id, 100).await.unwrap(), 0);
    }
}
