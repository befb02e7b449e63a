//! Per-client API keys: list, create, rotate with an overlap window,
//! disable, enable, revoke. The same operations on every target, through
//! the `KeyStore` trait; what the planner does with `[[clients]]` keys is in
//! `plan.rs`.
//!
//! A key's identity is its tenant and client name. Rotation gives the new
//! key the old key's name (so the tenant file's client keeps its identity
//! and `apply` sees nothing to do) and renames the old one, which keeps
//! working until the grace period ends.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::local::LocalState;
use crate::target::Secret;

/// A key as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub tenant: String,
    pub client: String,
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// `file` (declared in `[[clients]]`), `cli` (`keys create`) or
    /// `rotated` (replaced by `keys rotate`, working until `expires`).
    pub origin: String,
    pub created: String,
    pub expires: Option<String>,
    pub last_used: Option<String>,
}

/// A rotation: the new key (its value shown once) and when the old stops.
#[derive(Debug, Clone, Serialize)]
pub struct Rotation {
    #[serde(flatten)]
    pub new: Secret,
    pub old_id: String,
    pub old_expires: String,
}

/// Key operations a target supports.
pub trait KeyStore: Send + Sync {
    fn list(
        &self,
        tenant: Option<&str>,
    ) -> impl Future<Output = anyhow::Result<Vec<KeyInfo>>> + Send;
    /// An ad-hoc key for a client, attached to the tenant's usage plan.
    fn create(
        &self,
        tenant: &str,
        client: &str,
    ) -> impl Future<Output = anyhow::Result<Secret>> + Send;
    /// A new key for the client; the current one works until `grace` ends.
    fn rotate(
        &self,
        tenant: &str,
        client: &str,
        grace: Duration,
    ) -> impl Future<Output = anyhow::Result<Rotation>> + Send;
    fn set_enabled(
        &self,
        tenant: &str,
        id: &str,
        enabled: bool,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Deletes the key.
    fn revoke(&self, tenant: &str, id: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Makes keys whose grace period has ended stop working; returns their ids.
    fn expire(&self) -> impl Future<Output = anyhow::Result<Vec<String>>> + Send;
}

pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// `90s`, `30m`, `24h`, `7d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a duration such as 90s, 30m, 24h or 7d, found {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "expected a duration such as 90s, 30m, 24h or 7d, found {s:?}"
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

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
        if !runtime::names::is_client_name(client) {
            anyhow::bail!(
                "a client name is 1 to 63 characters of a-z, 0-9 and -, found {client:?}"
            );
        }
        if !self.snapshot().await?.tenants.contains_key(tenant) {
            anyhow::bail!(
                "tenant {tenant} is not deployed on the local target; run apifactory apply first"
            );
        }
        let suffix = crate::local::state::new_key_id()?;
        let name = format!("{}-{suffix}", runtime::names::api_key(tenant, client));
        let (record, value) = self.create_key(tenant, client, &name, "cli").await?;
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
        // The client's current key: its file key if it has one, else its
        // newest working key.
        let keys = self.keys().await?;
        let now = now_unix();
        let mut candidates: Vec<_> = keys
            .iter()
            .filter(|k| {
                k.tenant == tenant && k.client == client && k.origin != "rotated" && k.usable(now)
            })
            .collect();
        candidates.sort_by_key(|k| (k.origin != "file", std::cmp::Reverse(k.created.clone())));
        let old = candidates.first().ok_or_else(|| {
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
            if k.enabled && k.expires.is_some_and(|e| e <= now) {
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

/// The keys as a table for people.
pub struct KeyTable<'a>(pub &'a [KeyInfo]);

impl fmt::Display for KeyTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:<16} {:<10} {:<8} {:<8} {:<20} {:<20} last used",
            "tenant", "client", "key id", "enabled", "origin", "created", "expires"
        )?;
        for k in self.0 {
            writeln!(
                f,
                "{:<12} {:<16} {:<10} {:<8} {:<8} {:<20} {:<20} {}",
                k.tenant,
                k.client,
                k.id,
                if k.enabled { "yes" } else { "no" },
                k.origin,
                k.created,
                k.expires.as_deref().unwrap_or("-"),
                k.last_used.as_deref().unwrap_or("-")
            )?;
        }
        write!(f, "{} key(s)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5w").is_err());
    }
}
