//! `apifactory keys` on the local target: the key table in the data
//! directory's database (`state`), with the rules every target shares
//! (`crate::keys`).

use std::time::Duration;

use super::LocalState;
use super::state::hash_key;
use crate::keys::{
    Candidate, Imported, KeyInfo, KeyStore, ORIGIN_CLI, ORIGIN_IMPORTED, ORIGIN_ROTATED, Rotation,
    grace_over, new_key_id, now_unix, rfc3339, to_rotate,
};
use crate::resource::ORIGIN_FILE;
use crate::target::Secret;

impl KeyStore for LocalState {
    async fn list(&self, tenant: Option<&str>) -> anyhow::Result<Vec<KeyInfo>> {
        Ok(self
            .keys()
            .await?
            .into_iter()
            .filter(|k| tenant.is_none_or(|t| t == k.tenant))
            .map(|k| KeyInfo {
                enabled: k.enabled && k.expires.is_none_or(|e| now_unix() < e),
                expires: k.expires.map(rfc3339),
                tenant: k.tenant,
                client: k.client,
                id: k.id,
                name: k.name,
                origin: k.origin,
                created: k.created,
                last_used: k.last_used,
            })
            .collect())
    }

    async fn create(&self, tenant: &str, client: &str) -> anyhow::Result<Secret> {
        new_key_for(self, tenant, client).await?;
        let suffix = new_key_id()?;
        let name = format!("{}-{suffix}", runtime::names::api_key(tenant, client));
        let (record, value) = self.create_key(tenant, client, &name, ORIGIN_CLI).await?;
        let value = value.ok_or_else(|| anyhow::anyhow!("key {name} already existed"))?;
        Ok(Secret {
            tenant: tenant.to_owned(),
            client: client.to_owned(),
            id: record.id,
            value,
        })
    }

    async fn rotate(
        &self,
        tenant: &str,
        client: &str,
        grace: Duration,
    ) -> anyhow::Result<Rotation> {
        let keys = self.keys().await?;
        let now = now_unix();
        let old = to_rotate(
            keys.iter()
                .filter(|k| k.tenant == tenant && k.client == client),
            |k| Candidate {
                working: k.usable(now),
                rotated: k.origin == ORIGIN_ROTATED,
                from_file: k.origin == ORIGIN_FILE,
                // RFC 3339 in UTC, one format: text order is time order.
                created: k.created.clone(),
            },
        )
        .ok_or_else(|| {
            anyhow::anyhow!("client {client} of tenant {tenant} has no working key to rotate")
        })?;
        let expires = now + grace.as_secs() as i64;
        let (record, value) = self.rotate_key(&old.id, expires).await?;
        Ok(Rotation {
            new: Secret {
                tenant: tenant.to_owned(),
                client: client.to_owned(),
                id: record.id,
                value,
            },
            old_id: old.id.clone(),
            old_expires: rfc3339(expires),
        })
    }

    async fn import(&self, tenant: &str, client: &str, value: &str) -> anyhow::Result<Imported> {
        new_key_for(self, tenant, client).await?;
        // One value, one key, as on API Gateway: the gateway finds a key by
        // its value's hash.
        let hash = hash_key(value);
        if let Some(k) = self.keys().await?.into_iter().find(|k| k.hash == hash) {
            if k.tenant != tenant || k.client != client {
                anyhow::bail!(
                    "this value is already key {} of client {} of tenant {}; nothing was changed",
                    k.id,
                    k.client,
                    k.tenant
                );
            }
            return Ok(Imported {
                tenant: tenant.to_owned(),
                client: client.to_owned(),
                id: k.id,
                adopted: true,
            });
        }
        let name = format!(
            "{}-{}",
            runtime::names::api_key(tenant, client),
            new_key_id()?
        );
        let (record, _) = self
            .create_key_valued(tenant, client, &name, ORIGIN_IMPORTED, value.to_owned())
            .await?;
        Ok(Imported {
            tenant: tenant.to_owned(),
            client: client.to_owned(),
            id: record.id,
            adopted: false,
        })
    }

    async fn set_enabled(&self, tenant: &str, id: &str, enabled: bool) -> anyhow::Result<()> {
        owned_key(self, tenant, id).await?;
        self.set_key_enabled(id, enabled).await?;
        Ok(())
    }

    async fn revoke(&self, tenant: &str, id: &str) -> anyhow::Result<()> {
        owned_key(self, tenant, id).await?;
        self.delete_key(id).await?;
        Ok(())
    }

    async fn expire(&self) -> anyhow::Result<Vec<String>> {
        // The gateway refuses expired keys by itself; disabling them as
        // well makes `keys list` and the AWS target agree.
        let now = now_unix();
        let mut expired = Vec::new();
        for k in self.keys().await? {
            if grace_over(k.enabled, k.expires, now) {
                self.set_key_enabled(&k.id, false).await?;
                expired.push(k.id);
            }
        }
        Ok(expired)
    }
}

async fn owned_key(state: &LocalState, tenant: &str, id: &str) -> anyhow::Result<()> {
    match state.keys().await?.into_iter().find(|k| k.id == id) {
        Some(k) if k.tenant == tenant => Ok(()),
        _ => anyhow::bail!("tenant {tenant} has no key with id {id}"),
    }
}

/// A key may be made (or imported) for this client of this tenant: the
/// name is a client name and the tenant is deployed here.
async fn new_key_for(state: &LocalState, tenant: &str, client: &str) -> anyhow::Result<()> {
    if !runtime::names::is_client_name(client) {
        anyhow::bail!("a client name is 1 to 63 characters of a-z, 0-9 and -, found {client:?}");
    }
    if !state.snapshot().await?.tenants.contains_key(tenant) {
        anyhow::bail!(
            "tenant {tenant} is not deployed on the local target; run apifactory apply first"
        );
    }
    Ok(())
}
