//! API Gateway's list calls, page by page, and which of what they list is a
//! tenant's: tagged for the tenant and named for it.
//!
//! REST API and usage plan names are not unique and their creates take no
//! client token, so a create whose response was lost (and which the SDK
//! retried) leaves two of them: `by_tenant` keeps every candidate, and
//! each kind decides which one stands and plans the deletion of the others.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use aws_sdk_apigateway::error::ProvideErrorMetadata;
use aws_sdk_apigateway::types::{RestApi, UsagePlan};

use super::api::APIGW;
use super::{AwsTarget, fail};

/// Every item of a paged API Gateway list call. `page` makes one call from
/// a position (none for the first page) and answers the items and the next
/// position.
pub async fn pages<T, E, F, Fut>(t: &AwsTarget, what: &str, mut page: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), E>>,
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let mut all = Vec::new();
    let mut position: Option<String> = None;
    loop {
        t.pacer.read(APIGW).await;
        let (items, next) = page(position.take())
            .await
            .map_err(|e| fail(&format!("API Gateway {what}"), e))?;
        all.extend(items);
        match next {
            Some(p) if !p.is_empty() => position = Some(p),
            _ => break,
        }
    }
    Ok(all)
}

/// A resource found by its tags and name.
pub trait Listed {
    fn id(&self) -> Option<&str>;
    fn name(&self) -> Option<&str>;
    fn tags(&self) -> Option<&HashMap<String, String>>;
}

/// REST APIs and usage plans have the same three accessors.
macro_rules! listed {
    ($($t:ty),*) => {$(
        impl Listed for $t {
            fn id(&self) -> Option<&str> {
                self.id()
            }
            fn name(&self) -> Option<&str> {
                self.name()
            }
            fn tags(&self) -> Option<&HashMap<String, String>> {
                self.tags()
            }
        }
    )*};
}
listed!(RestApi, UsagePlan);

/// Each tenant's items: tagged for the tenant and named `name(tenant)`, in
/// id order (more than one where a lost create response left a duplicate).
pub fn by_tenant<T: Listed>(items: &[T], name: fn(&str) -> String) -> BTreeMap<String, Vec<&T>> {
    let mut found: BTreeMap<String, Vec<&T>> = BTreeMap::new();
    for item in items {
        let Some(tenant) = super::tagged_tenant(item.tags()) else {
            continue;
        };
        if item.id().is_none() || item.name() != Some(name(tenant).as_str()) {
            continue;
        }
        found.entry(tenant.to_owned()).or_default().push(item);
    }
    for candidates in found.values_mut() {
        candidates.sort_by_key(|i| i.id());
    }
    found
}

/// The attribute a duplicate's observed attributes carry: the id of the one
/// that stands. With `id`, it tells apply which one to delete.
pub const DUPLICATE_OF: &str = "duplicate_of";

/// The address name of a duplicate: the name, and its id to tell it apart.
pub fn duplicate_name(name: &str, id: &str) -> String {
    format!("{name} (duplicate {id})")
}

/// A planned delete of a duplicate: (its id, the id of the one that stands).
pub fn duplicate(attrs: &crate::resource::Attrs) -> Option<(String, String)> {
    let text = |k: &str| attrs.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Some((text("id")?, text(DUPLICATE_OF)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: &str, name: &str, tenant: Option<&str>) -> UsagePlan {
        UsagePlan::builder()
            .id(id)
            .name(name)
            .set_tags(tenant.map(super::super::tags))
            .build()
    }

    #[test]
    fn a_tenants_items_are_tagged_and_named_for_it() {
        let plans = [
            plan("b2", "apifactory-acme", Some("acme")),
            plan("a1", "apifactory-acme", Some("acme")),
            plan("c3", "apifactory-acme", None),
            plan("d4", "renamed", Some("acme")),
            plan("e5", "apifactory-clinic", Some("clinic")),
            plan("f6", "apifactory-acme", Some("clinic")),
        ];
        let found = by_tenant(&plans, runtime::names::usage_plan);
        let ids: BTreeMap<&str, Vec<&str>> = found
            .iter()
            .map(|(t, ps)| (t.as_str(), ps.iter().filter_map(|p| p.id()).collect()))
            .collect();
        assert_eq!(
            ids,
            BTreeMap::from([("acme", vec!["a1", "b2"]), ("clinic", vec!["e5"])])
        );
    }

    #[test]
    fn a_duplicate_reads_back_from_its_attributes() {
        let attrs = crate::resource::attrs([
            ("id", serde_json::json!("x1")),
            (DUPLICATE_OF, serde_json::json!("k9")),
        ]);
        assert_eq!(duplicate(&attrs), Some(("x1".into(), "k9".into())));
        assert_eq!(duplicate(&crate::resource::Attrs::new()), None);
        assert_eq!(
            duplicate_name("apifactory-acme", "x1"),
            "apifactory-acme (duplicate x1)"
        );
    }
}
