//! Observe on AWS: the account-wide lists first, then per resource only
//! what the lists do not carry and only for the tenants no stamp vouches
//! for (and, under `--refresh`, what only `--refresh` reads), and the
//! account's quota counts along the way.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{
    AwsTarget, Family, Scope, api, api_key, domain, fail, function, listing, logs, role, stage,
    table, usage_plan,
};
use crate::desired::Desired;
use crate::plan::Observed;
use crate::resource::{Address, Attrs, Kind};

/// The kinds observe reads only for a tenant whose stamp does not match:
/// no list call carries what the plan compares of them (a table's
/// description, a role's policy, a stage, a domain's mapping and alias),
/// or their list takes a page per 50 (log groups).
pub const VOUCHED: [Kind; 5] = [
    Kind::Table,
    Kind::Role,
    Kind::LogGroup,
    Kind::Stage,
    Kind::Domain,
];

/// The attributes observe reads only under `--refresh` (no stamp
/// trusted), each one call per resource that no list carries: a
/// function's permission (GetPolicy) and tags (ListTags), a role's trust
/// policy and tags (GetRole), a log group's tags (ListTagsForResource).
/// Without `--refresh` they are reported as desired: nothing in the tenant
/// files changes them (they follow from the tenant id alone), so only a
/// change made by hand makes them differ, and that is what `--refresh` and
/// `drift` are for. A no-change apply stays list calls only.
pub const REFRESH_ONLY: [(Kind, &[&str]); 3] = [
    (Kind::Function, &["invoked_by", crate::resource::TAGS]),
    (Kind::Role, &["trust", crate::resource::TAGS]),
    (Kind::LogGroup, &[crate::resource::TAGS]),
];

fn refresh_only(kind: Kind) -> &'static [&'static str] {
    REFRESH_ONLY
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(&[], |(_, fields)| fields)
}

impl AwsTarget {
    /// Reads with the account-wide list calls, then per resource only for
    /// the tenants `trust` does not vouch for: with `trust`, a tenant whose
    /// stamp (in its REST API's description) matches the desired one and
    /// whose listed resources are the desired ones is taken as converged,
    /// and its vouched-for resources are reported as desired. What differs
    /// from the lists (a resource missing, one more, a stamp that does not
    /// match) means the tenant is read whole.
    pub(super) async fn read(
        &self,
        tenants: &BTreeSet<String>,
        trust: Option<&Desired>,
    ) -> anyhow::Result<Observed> {
        let scope = Scope(tenants.clone());
        // The lists first, two strands at once (their calls fall in
        // different pacer families). The REST APIs found name the usage
        // plans' stages.
        let rest = async {
            let apis = api::observe(self, &scope).await?;
            let api_ids: BTreeMap<String, String> = apis
                .found
                .iter()
                .map(|(tenant, (id, _))| (tenant.clone(), id.clone()))
                .collect();
            self.listed_apis(apis.all.clone());
            if let Ok(mut known) = self.descriptions.lock() {
                known.clone_from(&apis.descriptions);
            }
            let (plans, domains) = tokio::try_join!(
                usage_plan::observe(self, &scope, &api_ids),
                domain::ours(self, &scope),
            )?;
            anyhow::Ok((apis, api_ids, plans, domains))
        };
        // The API Gateway lists count what the account holds against its
        // quotas as they go (`listing::tallied`); IAM's roles take one call.
        // Boxed: the joined reads make a large future, and a debug build
        // moves it through the stack.
        let (joined, counts) = listing::tallied(Box::pin(async {
            tokio::try_join!(
                async {
                    tokio::try_join!(
                        table::list(self, &scope),
                        role::list(self, &scope),
                        function::observe(self, &scope),
                        api_key::observe(self, &scope),
                    )
                },
                rest,
                role_quota(self),
            )
        }))
        .await;
        let ((tables, roles, functions, keys), (apis, api_ids, plans, domains), iam) = joined?;
        let account = account(counts, iam)?;
        self.listed_cursor_secrets(functions.1);
        let mut resources = BTreeMap::new();
        let listed = functions
            .0
            .into_iter()
            .chain(apis.found.into_values().map(|(_, found)| found))
            .chain(apis.duplicates)
            .chain(apis.stamps)
            .chain(plans)
            .chain(keys);
        for (address, attrs) in listed {
            resources.insert(address, attrs);
        }

        let names = |items: &[(String, String)], kind: Kind| -> BTreeSet<Address> {
            items
                .iter()
                .map(|(tenant, name)| Address::new(tenant, kind, name))
                .collect()
        };
        let mut named = names(&tables, Kind::Table);
        named.extend(names(&roles, Kind::Role));
        named.extend(domains.iter().map(|(tenant, d)| {
            Address::new(tenant, Kind::Domain, d.domain_name().unwrap_or_default())
        }));
        let trusted: BTreeSet<String> = match trust {
            Some(d) => d
                .tenants
                .keys()
                .filter(|tenant| scope.covers(tenant) && converged(d, tenant, &resources, &named))
                .cloned()
                .collect(),
            None => BTreeSet::new(),
        };
        // Every tenant seen or wanted, trusted: the log groups need no
        // list either (50 a page, 5 pages a second).
        let mut seen = resources
            .keys()
            .chain(&named)
            .map(|a| a.tenant.as_str())
            .chain(
                trust
                    .iter()
                    .flat_map(|d| d.tenants.keys().map(String::as_str)),
            )
            .filter(|tenant| scope.covers(tenant));
        let all_trusted = trust.is_some() && seen.all(|t| trusted.contains(t));

        let untrusted = |tenant: &String| !trusted.contains(tenant);
        let tables: Vec<_> = tables.into_iter().filter(|(t, _)| untrusted(t)).collect();
        let roles: Vec<_> = roles.into_iter().filter(|(t, _)| untrusted(t)).collect();
        let domains: Vec<_> = domains.into_iter().filter(|(t, _)| untrusted(t)).collect();
        let stage_apis: BTreeMap<String, String> = api_ids
            .iter()
            .filter(|(t, _)| untrusted(t))
            .map(|(t, id)| (t.clone(), id.clone()))
            .collect();
        let all_roles = roles.clone();
        let (tables, roles, stages, domains, groups) = tokio::try_join!(
            table::describe_all(self, tables),
            role::grants(self, roles),
            stage::observe(self, &stage_apis),
            async {
                if domains.is_empty() {
                    return Ok(Vec::new());
                }
                let zones = domain::hosted_zones(self).await?;
                domain::details(self, domains, &api_ids, &zones).await
            },
            async {
                if all_trusted {
                    return Ok(Vec::new());
                }
                logs::observe(self, &scope).await
            },
        )?;
        let read = tables
            .into_iter()
            .chain(roles)
            .chain(stages)
            .chain(domains)
            .chain(groups);
        for (address, attrs) in read {
            resources.insert(address, attrs);
        }
        match trust {
            None => {
                let of = |kind: Kind| -> Vec<Address> {
                    resources
                        .keys()
                        .filter(|a| a.kind == kind)
                        .cloned()
                        .collect()
                };
                let (functions, groups) = (of(Kind::Function), of(Kind::LogGroup));
                let (functions, roles, groups) = tokio::try_join!(
                    function::details(self, functions, &api_ids),
                    role::details(self, all_roles),
                    logs::details(self, groups),
                )?;
                for (address, more) in functions.into_iter().chain(roles).chain(groups) {
                    if let Some(have) = resources.get_mut(&address) {
                        have.extend(more);
                    }
                }
            }
            Some(d) => {
                for (address, have) in resources.iter_mut() {
                    let (Some(want), fields) =
                        (d.resources.get(address), refresh_only(address.kind))
                    else {
                        continue;
                    };
                    for field in fields {
                        if let Some(v) = want.get(*field) {
                            have.insert((*field).to_owned(), v.clone());
                        }
                    }
                }
            }
        }
        if let Some(d) = trust {
            let vouched = d.resources.iter().filter(|(a, _)| {
                trusted.contains(&a.tenant)
                    && VOUCHED.contains(&a.kind)
                    && (a.kind != Kind::LogGroup || all_trusted)
            });
            for (address, attrs) in vouched {
                resources.insert(address.clone(), attrs.clone());
            }
        }
        Ok(Observed {
            resources,
            vouched: VOUCHED.into_iter().collect(),
            account: Some(account),
        })
    }
}

/// Whether a tenant's stamp matches its desired one and the lists show its
/// resources: every desired one of a listed kind, and of the kinds whose
/// details are taken on trust, exactly the desired ones (one more would
/// need its details for the plan to delete it).
fn converged(
    d: &Desired,
    tenant: &str,
    listed: &BTreeMap<Address, Attrs>,
    named: &BTreeSet<Address>,
) -> bool {
    let stamp = Address::new(tenant, Kind::Stamp, tenant);
    let Some(want) = d.resources.get(&stamp) else {
        return false;
    };
    if listed.get(&stamp) != Some(want) {
        return false;
    }
    let of_tenant = |a: &&Address| a.tenant == tenant;
    let wanted: BTreeSet<&Address> = d.resources.keys().filter(of_tenant).collect();
    let shown = wanted.iter().all(|a| match a.kind {
        Kind::Table | Kind::Role | Kind::Domain => named.contains(*a),
        Kind::Function | Kind::Api | Kind::UsagePlan | Kind::ApiKey => listed.contains_key(*a),
        Kind::Stage | Kind::LogGroup | Kind::Stamp => true,
    });
    shown && named.iter().filter(of_tenant).all(|a| wanted.contains(a))
}

/// IAM's count of the account's roles and its quota for them (IAM is
/// global: every region's roles), from GetAccountSummary ("IAM and AWS
/// STS quotas" points to it for exactly this). A deploy identity without
/// `iam:GetAccountSummary` (or any failure) gets the reason instead, and
/// the plan says the roles were not counted.
async fn role_quota(t: &AwsTarget) -> anyhow::Result<Result<(u64, u64), String>> {
    use aws_sdk_iam::types::SummaryKeyType;
    t.pacer.read(&[Family::Iam]).await;
    // A count is advice: it never holds a deploy up. Against moto the
    // call was seen to hold some e2e applies past their deadlines (not
    // understood yet), so it gets a bound, and any failure leaves the
    // roles uncounted, with the reason in the plan.
    let answer =
        tokio::time::timeout(Duration::from_secs(5), t.iam.get_account_summary().send()).await;
    let summary = match answer {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Ok(Err(format!("{:#}", fail("IAM GetAccountSummary", e)))),
        Err(_) => return Ok(Err("IAM GetAccountSummary: no answer within 5 s".to_owned())),
    };
    let get = |k: SummaryKeyType| {
        summary
            .summary_map()
            .and_then(|m| m.get(&k))
            .and_then(|v| u64::try_from(*v).ok())
    };
    Ok(
        match (get(SummaryKeyType::Roles), get(SummaryKeyType::RolesQuota)) {
            (Some(roles), Some(quota)) => Ok((roles, quota)),
            _ => Err("IAM GetAccountSummary named no Roles or RolesQuota".to_owned()),
        },
    )
}

/// The account's quotas: the limits (AWS's, the account's own role quota,
/// the test override) and the counts observe made.
fn account(
    mut counts: BTreeMap<crate::quotas::Quota, u64>,
    roles: Result<(u64, u64), String>,
) -> anyhow::Result<crate::quotas::Account> {
    use crate::quotas::{Account, Limits, Quota};
    let mut limits = Limits::from_env().map_err(anyhow::Error::msg)?;
    let mut not_counted = BTreeMap::new();
    match roles {
        Ok((n, quota)) => {
            counts.insert(Quota::Roles, n);
            limits.from_account(Quota::Roles, quota);
        }
        Err(why) => {
            not_counted.insert(Quota::Roles, why);
        }
    }
    Ok(Account {
        limits,
        counts,
        not_counted,
    })
}
