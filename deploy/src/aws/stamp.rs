//! A tenant's stamp on AWS: the fingerprint of its desired state, recorded
//! in its REST API's description after the definition marker
//! (`apifactory:<hash> collection=<name> fingerprint=<hex>`), where
//! GetRestApis, which observe reads anyway, hands it back.
//!
//! Not a tag: TagResource on a REST API would serve as well on AWS, but
//! moto answers 404 for it (FACTS.md), and a description is one
//! UpdateRestApi either way. The description is written whole, so this
//! target keeps each API's current one (as listed, then as written) and
//! the API's own apply keeps the fingerprint there when it writes its
//! marker: the stamp changes only by its own actions.

use super::pacer::APIGW;
use super::patch::replace;
use super::{AwsTarget, Found, fail, is};
use crate::plan::{Action, Change};
use crate::resource::{Address, Kind};
use crate::spec::{self, Spec, StampSpec};
use crate::target::Applied;

const TOKEN: &str = "fingerprint=";

/// The fingerprint a description records.
pub fn parse(description: Option<&str>) -> Option<&str> {
    let rest = description?.strip_prefix(super::MARKER)?;
    rest.split_whitespace().find_map(|p| p.strip_prefix(TOKEN))
}

/// A description with this fingerprint (none: without one), the rest kept.
pub fn with(description: &str, fingerprint: Option<&str>) -> String {
    let mut parts: Vec<&str> = description
        .split_whitespace()
        .filter(|p| !p.starts_with(TOKEN))
        .collect();
    let token = fingerprint.map(|f| format!("{TOKEN}{f}"));
    parts.extend(token.as_deref());
    parts.join(" ")
}

/// The stamp a tenant's REST API description records, as observed.
pub fn found(tenant: &str, description: Option<&str>) -> Option<Found> {
    let fingerprint = parse(description)?;
    Some((
        Address::new(tenant, Kind::Stamp, tenant),
        Spec::Stamp(StampSpec {
            fingerprint: Some(fingerprint.to_owned()),
        })
        .attrs(),
    ))
}

pub async fn apply(t: &AwsTarget, action: &Action) -> anyhow::Result<Applied> {
    let tenant = action.address.tenant.as_str();
    let fingerprint = match action.change {
        Change::Delete => None,
        _ => spec::read::<StampSpec>(action)?.fingerprint,
    };
    let fingerprint = fingerprint.as_deref();
    if fingerprint.is_some() && t.is_unfinished(tenant) {
        eprintln!("{tenant}: stamp not written: an action left the tenant short of its files");
        return Ok(Applied::default());
    }
    let Some(id) = t.api_id(tenant).await? else {
        if fingerprint.is_none() {
            // No REST API, no stamp to clear.
            return Ok(Applied::default());
        }
        anyhow::bail!("tenant {tenant} has no REST API to record its stamp on");
    };
    let current = match t.description(tenant) {
        Some(d) => d,
        None => {
            t.pacer.read(APIGW).await;
            match t.apigateway.get_rest_api().rest_api_id(&id).send().await {
                Ok(api) => api.description().unwrap_or_default().to_owned(),
                Err(e) if is(&e, &["NotFoundException"]) && fingerprint.is_none() => {
                    return Ok(Applied::default());
                }
                Err(e) => return Err(fail(&format!("GetRestApi {id}"), e)),
            }
        }
    };
    let description = with(&current, fingerprint);
    if description != current {
        t.pacer.write(APIGW).await;
        let patch = replace("/description", &description)?;
        t.apigateway
            .update_rest_api()
            .rest_api_id(&id)
            .patch_operations(patch)
            .send()
            .await
            .map_err(|e| fail(&format!("UpdateRestApi {id} (stamp of {tenant})"), e))?;
    }
    t.described(tenant, &description);
    Ok(Applied::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_rides_after_the_marker() {
        let marker = super::super::api::marker("abc", "accounts");
        assert_eq!(parse(Some(&marker)), None);
        let stamped = with(&marker, Some("f00d"));
        assert_eq!(stamped, format!("{marker} fingerprint=f00d"));
        assert_eq!(parse(Some(&stamped)), Some("f00d"));
        // The definition marker reads the same with it.
        assert_eq!(
            super::super::api::parse_marker(Some(&stamped)),
            (Some("abc".to_owned()), Some("accounts".to_owned()))
        );
        let again = with(&stamped, Some("beef"));
        assert_eq!(parse(Some(&again)), Some("beef"));
        assert_eq!(with(&again, None), marker);
        // A description apifactory did not write holds no stamp.
        assert_eq!(parse(Some("Customer accounts fingerprint=f00d")), None);
    }
}
