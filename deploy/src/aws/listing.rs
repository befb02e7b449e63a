//! API Gateway's list calls (REST APIs, usage plans, API keys, domain
//! names), page by page, and which of what they list is a tenant's: tagged
//! for the tenant and named for it. Here, below every kind's file, so that
//! observe, apply and `settle` read the same lists without the kinds'
//! files importing each other.
//!
//! REST API and usage plan names are not unique and their creates take no
//! client token, so a create whose response was lost (and which the SDK
//! retried) leaves two of them: `by_tenant` keeps every candidate, and
//! each kind decides which one stands and plans the deletion of the others.
//!
//! AWS's list calls are eventually consistent: what was created a moment
//! ago may be missing from them, though a read by its id finds it. So what
//! an apply creates is remembered ([`Made`]) and the apply ends only once
//! the lists the next observe reads show it ([`settle`]): a run right after
//! this one must not miss it and create it twice.
//!
//! The same lists are what the account holds against API Gateway's
//! quotas: inside [`tallied`] (one observe), every full list a page walk
//! finishes is counted ([`Counted`]), at no extra call.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_apigateway::config::http::HttpResponse;
use aws_sdk_apigateway::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigateway::types::{
    ApiKey, DomainName, EndpointType, RestApi, UsagePlan, UsagePlanKey,
};

use crate::quotas::Quota;
use crate::spec;

use super::pacer::APIGW;
use super::{AwsTarget, Family, ROLE_PATH, fail, wait_for};

/// Every item of a paged API Gateway list call. `page` makes one call from
/// a position (none for the first page) and answers the items and the next
/// position.
pub async fn pages<T, E, F, Fut>(t: &AwsTarget, what: &str, mut page: F) -> anyhow::Result<Vec<T>>
where
    T: Counted,
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), SdkError<E, HttpResponse>>>,
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
    tally::<T>(&all);
    Ok(all)
}

/// Every REST API of the account and region.
pub async fn rest_apis(t: &AwsTarget) -> anyhow::Result<Vec<RestApi>> {
    pages(t, "GetRestApis", |position| async move {
        let page = t
            .apigateway
            .get_rest_apis()
            .set_position(position)
            .limit(500)
            .send()
            .await;
        page.map(|p| (p.items.unwrap_or_default(), p.position))
    })
    .await
}

/// Every usage plan of the account and region.
pub async fn usage_plans(t: &AwsTarget) -> anyhow::Result<Vec<UsagePlan>> {
    pages(t, "GetUsagePlans", |position| async move {
        let page = t
            .apigateway
            .get_usage_plans()
            .set_position(position)
            .limit(500)
            .send()
            .await;
        page.map(|p| (p.items.unwrap_or_default(), p.position))
    })
    .await
}

/// Keys whose name starts with this (all when empty), without values.
pub async fn api_keys(t: &AwsTarget, name_query: Option<&str>) -> anyhow::Result<Vec<ApiKey>> {
    pages(t, "GetApiKeys", |position| async move {
        let page = t
            .apigateway
            .get_api_keys()
            .include_values(false)
            .set_name_query(name_query.map(str::to_owned))
            .set_position(position)
            .limit(500)
            .send()
            .await;
        page.map(|p| (p.items.unwrap_or_default(), p.position))
    })
    .await
}

/// Every custom domain name of the account and region.
pub async fn domain_names(t: &AwsTarget) -> anyhow::Result<Vec<DomainName>> {
    pages(t, "GetDomainNames", |position| async move {
        let page = t
            .apigateway
            .get_domain_names()
            .set_position(position)
            .limit(500)
            .send()
            .await;
        page.map(|p| (p.items.unwrap_or_default(), p.position))
    })
    .await
}

/// An item of a paged list, as it counts against an account quota.
pub trait Counted {
    /// The quota a full list of these counts against (none by default).
    const QUOTA: Option<Quota> = None;

    /// Whether this item counts against it.
    fn counts(&self) -> bool {
        true
    }
}

impl Counted for RestApi {
    const QUOTA: Option<Quota> = Some(Quota::RestApis);

    /// Edge-optimized and private APIs have quotas of their own; no
    /// endpoint configuration means edge-optimized, AWS's default.
    fn counts(&self) -> bool {
        self.endpoint_configuration()
            .is_some_and(|c| c.types().contains(&EndpointType::Regional))
    }
}

impl Counted for UsagePlan {
    const QUOTA: Option<Quota> = Some(Quota::UsagePlans);
}

impl Counted for ApiKey {
    const QUOTA: Option<Quota> = Some(Quota::ApiKeys);
}

impl Counted for DomainName {
    const QUOTA: Option<Quota> = Some(Quota::DomainNames);

    /// Private custom domain names have a quota of their own.
    fn counts(&self) -> bool {
        !self
            .endpoint_configuration()
            .is_some_and(|c| c.types().contains(&EndpointType::Private))
    }
}

impl Counted for UsagePlanKey {}

type Counts = Arc<Mutex<BTreeMap<Quota, u64>>>;

tokio::task_local! {
    /// The counts of the observe running on this task. Every list call an
    /// observe makes is of the whole account (a filtered one, such as
    /// GetApiKeys by name, happens in apply only, outside it).
    static TALLY: Counts;
}

fn tally<T: Counted>(items: &[T]) {
    let Some(quota) = T::QUOTA else {
        return;
    };
    let n = items.iter().filter(|i| i.counts()).count() as u64;
    let _ = TALLY.try_with(|counts| {
        if let Ok(mut counts) = counts.lock() {
            counts.insert(quota, n);
        }
    });
}

/// Runs `f` (an observe), counting what the list calls it makes show.
pub async fn tallied<F: Future>(f: F) -> (F::Output, BTreeMap<Quota, u64>) {
    let counts = Counts::default();
    let out = TALLY.scope(counts.clone(), f).await;
    let counts = counts.lock().map(|c| c.clone()).unwrap_or_default();
    (out, counts)
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

/// The address name of a duplicate: the name, and its id to tell it apart.
pub fn duplicate_name(name: &str, id: &str) -> String {
    format!("{name} (duplicate {id})")
}

/// A planned delete of a duplicate: (its id, the id of the one that stands),
/// from the attributes observe gave it ([`spec::ID`], [`spec::DUPLICATE_OF`]).
pub fn duplicate(attrs: &crate::resource::Attrs) -> Option<(String, String)> {
    let text = |k: &str| attrs.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Some((text(spec::ID)?, text(spec::DUPLICATE_OF)?))
}

/// Something an apply created, as the list calls show it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Made {
    /// By id.
    RestApi(String),
    /// By id.
    UsagePlan(String),
    /// By id.
    ApiKey(String),
    DomainName(String),
    Function(String),
    Table(String),
    LogGroup(String),
    Role(String),
}

/// How long an apply waits at most for its creates to show in the lists.
/// AWS documents no bound; seconds in practice.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);

/// From this many log groups made, settle lists apifactory's two log
/// group prefixes whole (50 groups a page) instead of each group by its own
/// name: a fleet's first apply makes six a tenant, and CloudWatch Logs
/// answers 5 calls a second (a call per group was 46 s of a 40-tenant
/// apply at AWS's pace; listed, 5 pages). Below it, one call per group is
/// fewer than the pages of a large account.
const MANY_LOG_GROUPS: usize = 25;

/// Waits until every create this target made shows in its list call, one
/// list round per kind at a time; then forgets them.
pub async fn settle(t: &AwsTarget) -> anyhow::Result<()> {
    wait_for(
        "what this apply created to show in AWS's list calls",
        SETTLE_LIMIT,
        || async {
            let pending = t.unlisted();
            if pending.is_empty() {
                return Ok(Some(()));
            }
            let mut seen = Vec::new();
            let mut kinds: Vec<std::mem::Discriminant<Made>> = Vec::new();
            let groups = pending
                .iter()
                .filter(|m| matches!(m, Made::LogGroup(_)))
                .count();
            let one_by_one = |m: &Made| matches!(m, Made::LogGroup(_)) && groups < MANY_LOG_GROUPS;
            for made in &pending {
                let kind = std::mem::discriminant(made);
                if kinds.contains(&kind) && !one_by_one(made) {
                    continue;
                }
                kinds.push(kind);
                let listed = match made {
                    Made::LogGroup(_) if !one_by_one(made) => {
                        super::logs::observe(t, &super::Scope::default())
                            .await?
                            .into_iter()
                            .map(|(address, _)| Made::LogGroup(address.name))
                            .collect()
                    }
                    _ => list_round(t, made).await?,
                };
                seen.extend(pending.iter().filter(|m| listed.contains(*m)).cloned());
            }
            t.listed(&seen);
            Ok(t.unlisted().is_empty().then_some(()))
        },
    )
    .await
}

/// What one round of the list call for `made`'s kind shows, of that kind.
async fn list_round(t: &AwsTarget, made: &Made) -> anyhow::Result<BTreeSet<Made>> {
    let ids = |items: Vec<Option<String>>, make: fn(String) -> Made| -> BTreeSet<Made> {
        items.into_iter().flatten().map(make).collect()
    };
    Ok(match made {
        Made::RestApi(_) => {
            let all = rest_apis(t).await?;
            ids(all.into_iter().map(|a| a.id).collect(), Made::RestApi)
        }
        Made::UsagePlan(_) => {
            let all = usage_plans(t).await?;
            ids(all.into_iter().map(|p| p.id).collect(), Made::UsagePlan)
        }
        Made::ApiKey(_) => {
            let all = api_keys(t, Some(&format!("{}-", runtime::names::PREFIX))).await?;
            ids(all.into_iter().map(|k| k.id).collect(), Made::ApiKey)
        }
        Made::DomainName(_) => {
            let all = domain_names(t).await?;
            ids(
                all.into_iter().map(|d| d.domain_name).collect(),
                Made::DomainName,
            )
        }
        Made::Function(_) => {
            let mut names = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                t.pacer.read(&[Family::Lambda]).await;
                let page = t
                    .lambda
                    .list_functions()
                    .set_marker(marker.take())
                    .max_items(50)
                    .send()
                    .await
                    .map_err(|e| fail("Lambda ListFunctions", e))?;
                names.extend(page.functions().iter().map(|f| f.function_name.clone()));
                match page.next_marker() {
                    Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
                    _ => break,
                }
            }
            ids(names, Made::Function)
        }
        Made::Table(_) => {
            let mut names = Vec::new();
            let mut start: Option<String> = None;
            loop {
                t.pacer.read(&[Family::DynamoDbControl]).await;
                let page = t
                    .dynamodb
                    .list_tables()
                    .set_exclusive_start_table_name(start.take())
                    .limit(100)
                    .send()
                    .await
                    .map_err(|e| fail("DynamoDB ListTables", e))?;
                names.extend(page.table_names().iter().cloned().map(Some));
                match page.last_evaluated_table_name {
                    Some(last) => start = Some(last),
                    None => break,
                }
            }
            ids(names, Made::Table)
        }
        // One group: its own name is the narrowest prefix there is.
        Made::LogGroup(name) => {
            t.pacer.read(&[Family::Logs]).await;
            let page = t
                .logs
                .describe_log_groups()
                .log_group_name_prefix(name)
                .limit(50)
                .send()
                .await
                .map_err(|e| fail("CloudWatch Logs DescribeLogGroups", e))?;
            ids(
                page.log_groups()
                    .iter()
                    .map(|g| g.log_group_name.clone())
                    .collect(),
                Made::LogGroup,
            )
        }
        Made::Role(_) => {
            let mut names = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                t.pacer.read(&[Family::Iam]).await;
                let page = t
                    .iam
                    .list_roles()
                    .path_prefix(ROLE_PATH)
                    .set_marker(marker.take())
                    .max_items(1000)
                    .send()
                    .await
                    .map_err(|e| fail("IAM ListRoles", e))?;
                names.extend(page.roles().iter().map(|r| Some(r.role_name().to_owned())));
                match (page.is_truncated(), page.marker()) {
                    (true, Some(m)) => marker = Some(m.to_owned()),
                    _ => break,
                }
            }
            ids(names, Made::Role)
        }
    })
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
            (spec::ID, serde_json::json!("x1")),
            (spec::DUPLICATE_OF, serde_json::json!("k9")),
        ]);
        assert_eq!(duplicate(&attrs), Some(("x1".into(), "k9".into())));
        assert_eq!(duplicate(&crate::resource::Attrs::new()), None);
        assert_eq!(
            duplicate_name("apifactory-acme", "x1"),
            "apifactory-acme (duplicate x1)"
        );
    }
}
