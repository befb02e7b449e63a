//! One API key per declared client, attached to the tenant's usage plan.
//! Values come from a CSPRNG (43 characters) and are handed back once.
//!
//! A key is created disabled, attached to the plan, then enabled: an apply
//! interrupted in between leaves a disabled key, which observe reports as
//! such, and the re-run's update attaches and enables it (and hands its
//! value back, since nobody saw it). Key names are not unique: a key is
//! found by name and tags before one is created.

use aws_sdk_apigateway::types::{ApiKey, Op, PatchOperation};
use serde_json::json;

use super::pacer::APIGW;
use std::collections::HashMap;

use super::usage_plan::attach;
use super::{AwsTarget, Family, Found, Scope, TAG_CLIENT, TAG_ORIGIN, fail, is, listing};
use crate::keys::{ORIGIN_ROTATED, new_key_value, rfc3339};
use crate::plan::{Action, Change};
use crate::resource::{Address, Kind, ORIGIN_FILE, attrs};
use crate::spec::{self, ApiKeySpec};
use crate::target::{Applied, Secret};

/// What a rotation appends to the old key's description.
pub const ROTATED: &str = "; rotated; expires ";

/// The description of a tenant's key for a client.
pub fn description(tenant: &str, client: &str) -> String {
    format!("apifactory: client {client} of tenant {tenant}")
}

/// A description with the rotation and its expiry recorded.
pub fn rotated_description(base: &str, expires: i64) -> String {
    let base = base.split(ROTATED).next().unwrap_or(base);
    format!("{base}{ROTATED}{} ({expires})", rfc3339(expires))
}

/// Whether a key's description records a rotation.
pub fn is_rotated(description: Option<&str>) -> bool {
    description.is_some_and(|d| d.contains(ROTATED))
}

/// When a rotated key stops working (Unix seconds), from its description.
pub fn rotation_expiry(description: Option<&str>) -> Option<i64> {
    let (_, rest) = description?.split_once(ROTATED)?;
    let (_, unix) = rest.rsplit_once('(')?;
    unix.strip_suffix(')')?.trim().parse().ok()
}

/// A key's origin: `rotated` when its description says so, else its tag.
pub fn origin(key: &ApiKey) -> String {
    if is_rotated(key.description()) {
        return ORIGIN_ROTATED.to_owned();
    }
    key.tags()
        .and_then(|t| t.get(TAG_ORIGIN))
        .cloned()
        .unwrap_or_else(|| "unknown".into())
}

/// Whether the key was made from the tenant file's `[[clients]]` (its
/// origin tag; a rotated key keeps the tag).
pub fn from_file(key: &ApiKey) -> bool {
    key.tags()
        .and_then(|t| t.get(TAG_ORIGIN))
        .map(String::as_str)
        == Some(ORIGIN_FILE)
}

pub fn client_of(key: &ApiKey) -> String {
    key.tags()
        .and_then(|t| t.get(TAG_CLIENT))
        .cloned()
        .unwrap_or_default()
}

fn attributes(key: &ApiKey) -> crate::resource::Attrs {
    let tag = |k: &str| key.tags().and_then(|t| t.get(k)).cloned();
    let mut found = attrs([
        (spec::CLIENT, json!(tag(TAG_CLIENT))),
        (spec::ENABLED, json!(key.enabled())),
        // A key without an origin tag was not made from a tenant file; a
        // rotated key's description says so, whatever its tag.
        (spec::ORIGIN, json!(origin(key))),
    ]);
    // API Gateway has no key expiry: the plan disables a rotated key once
    // the expiry its description records has passed.
    if let Some(expires) = rotation_expiry(key.description()) {
        found.insert(spec::EXPIRES.into(), json!(expires));
    }
    found
}

/// Puts the key that stands for a name first: an enabled one before a
/// disabled one, then the oldest. Names are not unique: a create whose
/// answer was lost and retried, or a run that did not see an interrupted
/// run's key in a list yet, leaves a second key of the name. The one a
/// client holds is the enabled one; a disabled key of the file's is what
/// an interrupted create left, and nobody saw its value.
fn standing_first(keys: &mut [ApiKey]) {
    keys.sort_by_key(|k| {
        (
            !k.enabled(),
            k.created_date().map(|d| d.as_nanos()),
            k.id.clone(),
        )
    });
}

pub async fn observe(t: &AwsTarget, scope: &Scope) -> anyhow::Result<Vec<Found>> {
    let mut found: Vec<Found> = Vec::new();
    let mut keys = listing::api_keys(t, None).await?;
    standing_first(&mut keys);
    let mut standing: HashMap<String, String> = HashMap::new();
    for key in &keys {
        let (Some(tenant), Some(name), Some(id)) =
            (super::tagged_tenant(key.tags()), key.name(), key.id())
        else {
            continue;
        };
        if !scope.covers(tenant) {
            continue;
        }
        match standing.get(name) {
            None => {
                standing.insert(name.to_owned(), id.to_owned());
                found.push((Address::new(tenant, Kind::ApiKey, name), attributes(key)));
            }
            // A disabled duplicate of the file's goes; any other stays
            // out of the plan, as before.
            Some(first) if !key.enabled() && origin(key) == ORIGIN_FILE => {
                let mut attrs = attributes(key);
                attrs.insert(spec::ID.into(), json!(id));
                attrs.insert(spec::DUPLICATE_OF.into(), json!(first));
                found.push((
                    Address::new(tenant, Kind::ApiKey, listing::duplicate_name(name, id)),
                    attrs,
                ));
            }
            Some(_) => {}
        }
    }
    Ok(found)
}

/// The tenant's key of this name.
async fn find(t: &AwsTarget, tenant: &str, name: &str) -> anyhow::Result<Option<ApiKey>> {
    let mut keys: Vec<ApiKey> = listing::api_keys(t, Some(name))
        .await?
        .into_iter()
        .filter(|k| k.name() == Some(name) && super::tagged_tenant(k.tags()) == Some(tenant))
        .collect();
    standing_first(&mut keys);
    Ok(keys.into_iter().next())
}

/// Creates a key with a fresh value (256 random bits): its id and value.
pub(crate) async fn create(
    t: &AwsTarget,
    name: &str,
    description: &str,
    enabled: bool,
    tags: Option<std::collections::HashMap<String, String>>,
) -> anyhow::Result<(String, String)> {
    create_valued(t, name, description, enabled, tags, new_key_value()?).await
}

/// [`create`] with the value given (`keys import`).
pub(crate) async fn create_valued(
    t: &AwsTarget,
    name: &str,
    description: &str,
    enabled: bool,
    tags: Option<std::collections::HashMap<String, String>>,
    value: String,
) -> anyhow::Result<(String, String)> {
    t.pacer
        .write(&[Family::ApiGateway, Family::ApiKeyWrite])
        .await;
    let created = t
        .apigateway
        .create_api_key()
        .name(name)
        .description(description)
        .enabled(enabled)
        .value(&value)
        .set_tags(tags)
        .send()
        .await
        .map_err(|e| fail(&format!("CreateApiKey {name}"), e))?;
    let id = created
        .id()
        .ok_or_else(|| anyhow::anyhow!("CreateApiKey {name} returned no id"))?
        .to_owned();
    t.made(super::listing::Made::ApiKey(id.clone()));
    Ok((id, value))
}

pub(crate) async fn set_enabled(t: &AwsTarget, id: &str, enabled: bool) -> anyhow::Result<()> {
    t.pacer.write(APIGW).await;
    t.apigateway
        .update_api_key()
        .api_key(id)
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/enabled")
                .value(enabled.to_string())
                .build(),
        )
        .send()
        .await
        .map_err(|e| fail(&format!("UpdateApiKey {id}"), e))?;
    Ok(())
}

async fn value_of(t: &AwsTarget, id: &str) -> anyhow::Result<String> {
    t.pacer.read(APIGW).await;
    let key = t
        .apigateway
        .get_api_key()
        .api_key(id)
        .include_value(true)
        .send()
        .await
        .map_err(|e| fail(&format!("GetApiKey {id}"), e))?;
    key.value
        .ok_or_else(|| anyhow::anyhow!("GetApiKey {id} returned no value"))
}

pub async fn apply(t: &AwsTarget, action: &Action) -> anyhow::Result<Applied> {
    let tenant = action.address.tenant.as_str();
    let name = action.address.name.as_str();
    if action.change == Change::Delete
        && let Some((id, _)) = listing::duplicate(&action.attrs)
    {
        t.pacer
            .write(&[Family::ApiGateway, Family::ApiKeyWrite])
            .await;
        return match t.apigateway.delete_api_key().api_key(&id).send().await {
            Ok(_) => Ok(Applied::default()),
            Err(e) if is(&e, &["NotFoundException"]) => Ok(Applied::default()),
            Err(e) => Err(fail(
                &format!("DeleteApiKey {id} (a duplicate of {name})"),
                e,
            )),
        };
    }
    let existing = find(t, tenant, name).await?;

    if action.change == Change::Delete {
        if let Some(id) = existing.as_ref().and_then(|k| k.id()) {
            t.pacer
                .write(&[Family::ApiGateway, Family::ApiKeyWrite])
                .await;
            match t.apigateway.delete_api_key().api_key(id).send().await {
                Ok(_) => {}
                Err(e) if is(&e, &["NotFoundException"]) => {}
                Err(e) => return Err(fail(&format!("DeleteApiKey {id}"), e)),
            }
        }
        return Ok(Applied::default());
    }
    let spec: ApiKeySpec = spec::read(action)?;
    let client = spec.client.unwrap_or_default();
    if !spec.enabled {
        // A client gone from the file: the key stops working, and stays.
        if let Some(id) = existing.as_ref().and_then(|k| k.id()) {
            set_enabled(t, id, false).await?;
        }
        return Ok(Applied::default());
    }

    let (id, value) = match existing {
        Some(key) => {
            let id = key.id().unwrap_or_default().to_owned();
            // Found disabled (an interrupted create), or re-enabled: its
            // value is shown again, once.
            let value = value_of(t, &id).await?;
            (id, value)
        }
        None => {
            let mut tags = super::tags(tenant);
            tags.insert(TAG_CLIENT.to_owned(), client.clone());
            tags.insert(TAG_ORIGIN.to_owned(), ORIGIN_FILE.to_owned());
            let description = description(tenant, &client);
            create(t, name, &description, false, Some(tags)).await?
        }
    };
    let plan = super::usage_plan::find(t, tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("tenant {tenant} has no usage plan for key {name}"))?;
    attach(t, &plan, &id).await?;
    set_enabled(t, &id, true).await?;
    Ok(Applied {
        secret: Some(Secret {
            tenant: tenant.to_owned(),
            client,
            id,
            value,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_reads_back_from_the_description() {
        let base = description("acme", "acme-web");
        assert!(!is_rotated(Some(&base)));
        assert_eq!(rotation_expiry(Some(&base)), None);
        let rotated = rotated_description(&base, 1_795_530_600);
        assert_eq!(
            rotated,
            "apifactory: client acme-web of tenant acme; rotated; expires 2026-11-24T14:30:00Z (1795530600)"
        );
        assert!(is_rotated(Some(&rotated)));
        assert_eq!(rotation_expiry(Some(&rotated)), Some(1_795_530_600));
        // Rotating again replaces the record instead of stacking another.
        let again = rotated_description(&rotated, 1_795_530_700);
        assert_eq!(again.matches(ROTATED).count(), 1);
        assert_eq!(rotation_expiry(Some(&again)), Some(1_795_530_700));
        assert_eq!(rotation_expiry(None), None);
        assert!(!is_rotated(None));
    }
}
