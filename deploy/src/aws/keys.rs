//! `apifactory keys ... --target aws`: per-client API keys on API Gateway,
//! with the local target's semantics (see `crate::keys`).
//!
//! Where a key's facts live, so that any later run reads them back:
//! - tenant, client and origin (`file` from `[[clients]]`, `cli` from
//!   `keys create`): the tags given when the key is created
//!   (`apifactory:tenant`, `apifactory:client`, `apifactory:origin`);
//! - a rotation: the old key's name becomes `<name>-rotated-<id>` and its
//!   description gets `; rotated; expires <RFC 3339> (<Unix seconds>)`. The
//!   description, not a tag, because UpdateApiKey patches it in the same
//!   call as the name (and moto 5.2.5 has no TagResource for API keys).
//!   A rotated key's origin reads `rotated` whatever its origin tag says.
//!
//! API Gateway has no expiry of its own: a rotated key stops working when
//! `apifactory apply --target aws` or `apifactory keys expire --target aws`
//! runs after its grace period and disables it. API Gateway records no
//! last use of a key either, so `last used` is always `-`.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_apigateway::types::ApiKey;
use runtime::names;

use super::api_key::{
    ROTATED, client_of, description, from_file, is_rotated, origin, rotated_description,
    rotation_expiry,
};
use super::pacer::APIGW;
use super::patch::replace;
use super::{AwsTarget, Family, TAG_CLIENT, TAG_ORIGIN, fail, is, tagged_tenant};
use crate::keys::{
    Candidate, Imported, KeyInfo, KeyStore, ORIGIN_CLI, ORIGIN_IMPORTED, Rotation, grace_over,
    new_key_id, now_unix, rfc3339, to_rotate,
};
use crate::target::Secret;

fn info(key: &ApiKey) -> Option<KeyInfo> {
    let tenant = tagged_tenant(key.tags())?;
    Some(KeyInfo {
        tenant: tenant.to_owned(),
        client: client_of(key),
        id: key.id()?.to_owned(),
        name: key.name().unwrap_or_default().to_owned(),
        enabled: key.enabled(),
        origin: origin(key),
        created: key
            .created_date()
            .map(|d| rfc3339(d.secs()))
            .unwrap_or_default(),
        expires: rotation_expiry(key.description()).map(rfc3339),
        // API Gateway records when a key was last changed, never when it
        // was last used.
        last_used: None,
    })
}

/// The keys apifactory manages for these tenants (all when empty), without
/// values.
async fn managed(t: &AwsTarget, tenants: &BTreeSet<String>) -> anyhow::Result<Vec<ApiKey>> {
    // Every key of a tenant is named `apifactory-<tenant>-...`: one tenant
    // narrows the listing by name (the tag decides).
    let query = match tenants.iter().collect::<Vec<_>>().as_slice() {
        [one] => Some(format!("{}-{one}-", names::PREFIX)),
        _ => None,
    };
    Ok(super::listing::api_keys(t, query.as_deref())
        .await?
        .into_iter()
        .filter(|k| {
            tagged_tenant(k.tags()).is_some_and(|x| tenants.is_empty() || tenants.contains(x))
        })
        .collect())
}

/// The key with this id, when it is one of the tenant's.
async fn owned(t: &AwsTarget, tenant: &str, id: &str) -> anyhow::Result<()> {
    let missing = || anyhow::anyhow!("tenant {tenant} has no key with id {id}");
    t.pacer.read(APIGW).await;
    match t
        .apigateway
        .get_api_key()
        .api_key(id)
        .include_value(false)
        .send()
        .await
    {
        Ok(key) if tagged_tenant(key.tags()) == Some(tenant) => Ok(()),
        Ok(_) => Err(missing()),
        Err(e) if is(&e, &["NotFoundException"]) => Err(missing()),
        Err(e) => Err(fail(&format!("GetApiKey {id}"), e)),
    }
}

/// The account's key with this value, if any: API Gateway finds keys by
/// value only in a listing that includes values (pages of 500).
async fn with_value(t: &AwsTarget, value: &str) -> anyhow::Result<Option<ApiKey>> {
    let mut position: Option<String> = None;
    loop {
        t.pacer.read(APIGW).await;
        let page = t
            .apigateway
            .get_api_keys()
            .include_values(true)
            .set_position(position.take())
            .limit(500)
            .send()
            .await
            .map_err(|e| fail("GetApiKeys", e))?;
        if let Some(found) = page.items().iter().find(|k| k.value() == Some(value)) {
            return Ok(Some(found.clone()));
        }
        match page.position {
            Some(next) if !next.is_empty() && !page.items().is_empty() => position = Some(next),
            _ => return Ok(None),
        }
    }
}

async fn usage_plan(t: &AwsTarget, tenant: &str) -> anyhow::Result<String> {
    super::usage_plan::find(t, tenant).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "tenant {tenant} has no usage plan on AWS; run apifactory apply --target aws first"
        )
    })
}

async fn delete(t: &AwsTarget, id: &str) -> anyhow::Result<()> {
    t.pacer
        .write(&[Family::ApiGateway, Family::ApiKeyWrite])
        .await;
    match t.apigateway.delete_api_key().api_key(id).send().await {
        Ok(_) => Ok(()),
        Err(e) if is(&e, &["NotFoundException"]) => Ok(()),
        Err(e) => Err(fail(&format!("DeleteApiKey {id}"), e)),
    }
}

/// Disables the rotated keys of these tenants (all when empty) whose grace
/// period has ended; returns their ids. Makes no mutating call when none
/// has: `apply --target aws` runs it after every plan.
pub async fn expire_in(t: &AwsTarget, tenants: &BTreeSet<String>) -> anyhow::Result<Vec<String>> {
    let now = now_unix();
    let mut expired = Vec::new();
    for key in managed(t, tenants).await? {
        let Some(id) = key.id() else { continue };
        if grace_over(key.enabled(), rotation_expiry(key.description()), now) {
            super::api_key::set_enabled(t, id, false).await?;
            expired.push(id.to_owned());
        }
    }
    Ok(expired)
}

impl KeyStore for AwsTarget {
    async fn list(&self, tenant: Option<&str>) -> anyhow::Result<Vec<KeyInfo>> {
        let scope: BTreeSet<String> = tenant.into_iter().map(str::to_owned).collect();
        let mut keys: Vec<KeyInfo> = managed(self, &scope)
            .await?
            .iter()
            .filter_map(info)
            .collect();
        keys.sort_by(|a, b| {
            (&a.tenant, &a.client, &a.created, &a.id)
                .cmp(&(&b.tenant, &b.client, &b.created, &b.id))
        });
        Ok(keys)
    }

    async fn create(&self, tenant: &str, client: &str) -> anyhow::Result<Secret> {
        if !names::is_client_name(client) {
            anyhow::bail!(
                "a client name is 1 to 63 characters of a-z, 0-9 and -, found {client:?}"
            );
        }
        let plan = usage_plan(self, tenant).await?;
        let name = format!("{}-{}", names::api_key(tenant, client), new_key_id()?);
        let mut tags = super::tags(tenant);
        tags.insert(TAG_CLIENT.to_owned(), client.to_owned());
        tags.insert(TAG_ORIGIN.to_owned(), ORIGIN_CLI.to_owned());
        let description = description(tenant, client);
        let (id, value) =
            super::api_key::create(self, &name, &description, true, Some(tags)).await?;
        if let Err(e) = super::usage_plan::attach(self, &plan, &id).await {
            // A key on no usage plan works nowhere: do not leave it behind.
            let _ = delete(self, &id).await;
            return Err(e);
        }
        // `keys list` right after must show it (lists are eventually
        // consistent).
        super::listing::settle(self).await?;
        Ok(Secret {
            tenant: tenant.to_owned(),
            client: client.to_owned(),
            id,
            value,
        })
    }

    async fn rotate(
        &self,
        tenant: &str,
        client: &str,
        grace: Duration,
    ) -> anyhow::Result<Rotation> {
        let scope = BTreeSet::from([tenant.to_owned()]);
        let keys = managed(self, &scope).await?;
        let old = to_rotate(
            keys.iter()
                .filter(|k| client_of(k) == client && k.id().is_some() && k.name().is_some()),
            |k| Candidate {
                working: k.enabled(),
                rotated: is_rotated(k.description()),
                from_file: from_file(k),
                created: k.created_date().map(|d| d.as_nanos()),
            },
        )
        .ok_or_else(|| {
            anyhow::anyhow!("client {client} of tenant {tenant} has no working key to rotate")
        })?;
        let (old_id, name) = (
            old.id().unwrap_or_default().to_owned(),
            old.name().unwrap_or_default().to_owned(),
        );
        let plan = usage_plan(self, tenant).await?;
        let expires = now_unix() + i64::try_from(grace.as_secs()).unwrap_or(i64::MAX / 2);
        let base = old
            .description()
            .map(str::to_owned)
            .unwrap_or_else(|| description(tenant, client));

        // The old key gives up its name first (and records its expiry), so
        // that the name always belongs to one key: a rotation interrupted
        // after this leaves the old key working until its expiry and the
        // client's name free for `apply` to issue a new key under.
        self.pacer.write(APIGW).await;
        self.apigateway
            .update_api_key()
            .api_key(&old_id)
            .patch_operations(replace("/name", &format!("{name}-rotated-{old_id}"))?)
            .patch_operations(replace(
                "/description",
                &rotated_description(&base, expires),
            )?)
            .send()
            .await
            .map_err(|e| fail(&format!("UpdateApiKey {old_id}"), e))?;

        // The new key takes the name, tags (so the origin) and plan; it is
        // made disabled and enabled once attached, as `apply` makes keys.
        let interrupted = |e: anyhow::Error| {
            e.context(format!(
                "the old key {old_id} was renamed and works until {}; issuing its successor failed{}",
                rfc3339(expires),
                if from_file(old) {
                    " (apifactory apply --target aws issues the client's key)"
                } else {
                    ""
                }
            ))
        };
        let description = base.split(ROTATED).next().unwrap_or(&base).to_owned();
        let (id, value) =
            super::api_key::create(self, &name, &description, false, old.tags().cloned())
                .await
                .map_err(interrupted)?;
        super::usage_plan::attach(self, &plan, &id)
            .await
            .map_err(interrupted)?;
        // A new key starts the period with its whole quota: it takes over
        // what the old one used before it works, so that rotating is no
        // way around a quota (the old key keeps counting on its own until
        // it expires).
        super::key_usage::carry_over(self, &plan, &old_id, &id)
            .await
            .map_err(|e| interrupted(e.context("carrying the used quota over")))?;
        super::api_key::set_enabled(self, &id, true)
            .await
            .map_err(interrupted)?;
        super::listing::settle(self).await?;
        Ok(Rotation {
            new: Secret {
                tenant: tenant.to_owned(),
                client: client.to_owned(),
                id,
                value,
            },
            old_id,
            old_expires: rfc3339(expires),
        })
    }

    async fn import(&self, tenant: &str, client: &str, value: &str) -> anyhow::Result<Imported> {
        if !names::is_client_name(client) {
            anyhow::bail!(
                "a client name is 1 to 63 characters of a-z, 0-9 and -, found {client:?}"
            );
        }
        let plan = usage_plan(self, tenant).await?;
        let mut tags = super::tags(tenant);
        tags.insert(TAG_CLIENT.to_owned(), client.to_owned());
        tags.insert(TAG_ORIGIN.to_owned(), ORIGIN_IMPORTED.to_owned());
        let name = |id: &str| format!("{}-{id}", names::api_key(tenant, client));
        let imported = |id: String, adopted: bool| Imported {
            tenant: tenant.to_owned(),
            client: client.to_owned(),
            id,
            adopted,
        };
        // "API key values must be unique": API Gateway refuses a second
        // key with a value one already has (CreateApiKey answers
        // ConflictException "API Key already exists", as moto 5.2.5 does),
        // so a value the old stack issued is taken over, not copied.
        let Some(existing) = with_value(self, value).await? else {
            let suffix = new_key_id()?;
            let (id, _) = super::api_key::create_valued(
                self,
                &name(&suffix),
                &description(tenant, client),
                true,
                Some(tags),
                value.to_owned(),
            )
            .await?;
            if let Err(e) = super::usage_plan::attach(self, &plan, &id).await {
                // A key on no usage plan works nowhere: do not leave it behind.
                let _ = delete(self, &id).await;
                return Err(e);
            }
            super::listing::settle(self).await?;
            return Ok(imported(id, false));
        };
        let id = existing.id().unwrap_or_default().to_owned();
        match tagged_tenant(existing.tags()) {
            Some(owner) if owner != tenant || client_of(&existing) != client => anyhow::bail!(
                "this value is already key {id} of client {} of tenant {owner}; nothing was changed",
                client_of(&existing)
            ),
            // Imported before: only the plan attachment may be missing.
            Some(_) => {}
            None => {
                // The old stack's key: apifactory's tags and name (so the
                // tenant's key listings find it), its value and id kept.
                let arn = format!(
                    "arn:{}:apigateway:{}::/apikeys/{id}",
                    self.env.partition, self.env.region
                );
                self.pacer.write(APIGW).await;
                self.apigateway
                    .tag_resource()
                    .resource_arn(&arn)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| fail(&format!("TagResource {arn}"), e))?;
                self.pacer.write(APIGW).await;
                self.apigateway
                    .update_api_key()
                    .api_key(&id)
                    .patch_operations(replace("/name", &name(&id))?)
                    .patch_operations(replace("/description", &description(tenant, client))?)
                    .send()
                    .await
                    .map_err(|e| fail(&format!("UpdateApiKey {id}"), e))?;
            }
        }
        super::usage_plan::attach(self, &plan, &id).await?;
        super::listing::settle(self).await?;
        Ok(imported(id, true))
    }

    async fn set_enabled(&self, tenant: &str, id: &str, enabled: bool) -> anyhow::Result<()> {
        owned(self, tenant, id).await?;
        super::api_key::set_enabled(self, id, enabled).await
    }

    async fn revoke(&self, tenant: &str, id: &str) -> anyhow::Result<()> {
        owned(self, tenant, id).await?;
        delete(self, id).await
    }

    async fn expire(&self) -> anyhow::Result<Vec<String>> {
        expire_in(self, &BTreeSet::new()).await
    }
}
