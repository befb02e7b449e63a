//! The API keys of the local target: a row per key with its SHA-256 hash,
//! never its value.

use runtime::StoreError;
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{LocalState, bump, now_rfc3339, sql};
use crate::keys::{new_key_id, new_key_value};

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

impl LocalState {
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
        self.create_key_valued(tenant, client, name, origin, new_key_value()?)
            .await
    }

    /// [`LocalState::create_key`] with a value given (`keys import`).
    pub async fn create_key_valued(
        &self,
        tenant: &str,
        client: &str,
        name: &str,
        origin: &str,
        value: String,
    ) -> anyhow::Result<(KeyRecord, Option<String>)> {
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
    /// `rotated`, and stops working at `expires` (Unix seconds). The new
    /// key starts with the old one's counted use in every period, so a
    /// rotation is never a way around a quota (on AWS, UpdateUsage does the
    /// same). One transaction: there is never a moment with neither key
    /// working, nor a new key with a fresh quota.
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
                conn.execute(
                    "INSERT INTO quota_usage (key_id, period_start, used)
                     SELECT ?2, period_start, used FROM quota_usage WHERE key_id = ?1",
                    params![old_id, id],
                )
                .map_err(sql)?;
                conn.execute(
                    "INSERT INTO quota_served (key_id, period_start, served)
                     SELECT ?2, period_start, served FROM quota_served WHERE key_id = ?1",
                    params![old_id, id],
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
                c.execute("DELETE FROM quota_served WHERE key_id = ?1", [&id])
                    .map_err(sql)?;
                bump(c)?;
                Ok(true)
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
}

pub(super) fn read_keys(c: &rusqlite::Connection) -> Result<Vec<KeyRecord>, StoreError> {
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

/// SHA-256 of a key value. Values are 256 random bits, so a fast hash is
/// enough: there is nothing to brute-force.
pub fn hash_key(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// Compares two hashes in constant time.
pub fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Issue 13: rotating a key is never a way around its quota.
    #[tokio::test]
    async fn a_rotated_keys_successor_starts_with_its_counted_use() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::open(dir.path()).await.unwrap();
        let (old, _) = state
            .create_key("acme", "web", "apifactory-acme-web", "file")
            .await
            .unwrap();
        state.quota_reserve(&old.id, 100, 10).await.unwrap();
        state.quota_reserve(&old.id, 200, 3).await.unwrap();
        let (new, value) = state.rotate_key(&old.id, i64::MAX).await.unwrap();
        assert!(!value.is_empty());
        assert_ne!(new.id, old.id);
        assert_eq!(new.name, "apifactory-acme-web", "the client's identity");
        // Every period's count, and the old key keeps its own.
        assert_eq!(state.quota_used(&new.id, 100).await.unwrap(), 10);
        assert_eq!(state.quota_used(&new.id, 200).await.unwrap(), 3);
        assert_eq!(state.quota_used(&new.id, 300).await.unwrap(), 0);
        assert_eq!(state.quota_used(&old.id, 100).await.unwrap(), 10);
        // Counted on from there, never below.
        assert_eq!(state.quota_reserve(&new.id, 200, 2).await.unwrap(), 3);
        assert_eq!(state.quota_reserve(&new.id, 200, 8).await.unwrap(), 8);
    }
}
