//! Reading what exists, in two steps: a survey of the account-wide list
//! calls, once per run, then each tenant's own details.
//!
//! The lists (ListTables, ListRoles, ListFunctions, GetRestApis,
//! GetUsagePlans, GetApiKeys, GetDomainNames, DescribeLogGroups) give what
//! the plan compares of functions, REST APIs, usage plans and keys, and
//! name the tables, roles and domains. What no list carries (a table's
//! description, a role's policy, the stages, a domain's mapping and alias)
//! takes reads of its own: [`AwsTarget::details`] makes them for one
//! tenant. `observe` runs both for every tenant; the engine's pipelined
//! apply reads one tenant's details, plans and applies it while others are
//! still being read.
//!
//! With `trust` (apply without `--refresh`), a tenant whose stamp matches
//! and whose listed resources are the desired ones has no details left to
//! read: its [`VOUCHED`] kinds are reported as desired.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_apigateway::types::DomainName;

use super::{
    AwsTarget, Family, Found, Scope, alarm, api, api_key, domain, fail, function, listing, logs,
    role, stage, table, usage_plan,
};
use crate::desired::Desired;
use crate::plan::Observed;
use crate::resource::{Address, Attrs, Kind};
use crate::spec;

/// The kinds observe reads only for a tenant whose stamp does not match:
/// no list call carries what the plan compares of them (a table's
/// description, a role's policy, a stage, a domain's mapping and alias),
/// or their list takes a page per 50 or 100 (log groups, alarms).
pub const VOUCHED: [Kind; 6] = [
    Kind::Table,
    Kind::Role,
    Kind::LogGroup,
    Kind::Stage,
    Kind::Domain,
    Kind::Alarm,
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
    (Kind::Function, &[spec::INVOKED_BY, spec::TAGS]),
    (Kind::Role, &[spec::TRUST, spec::TAGS]),
    (Kind::LogGroup, &[spec::TAGS]),
];

fn refresh_only(kind: Kind) -> &'static [&'static str] {
    REFRESH_ONLY
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(&[], |(_, fields)| fields)
}

/// The [`REFRESH_ONLY`] attributes of `address` as desired, to report
/// where they are not read.
fn as_desired(d: &Desired, address: &Address) -> Attrs {
    let (Some(want), fields) = (d.resources.get(address), refresh_only(address.kind)) else {
        return Attrs::new();
    };
    fields
        .iter()
        .filter_map(|f| Some(((*f).to_owned(), want.get(*f)?.clone())))
        .collect()
}

/// What a survey left to read of one tenant.
#[derive(Debug, Default)]
pub struct Pending {
    tables: Vec<String>,
    roles: Vec<String>,
    domains: Vec<DomainName>,
    /// Its REST API, whose stages are read.
    api: Option<String>,
    /// Under `--refresh`, its listed functions and log groups, whose
    /// [`REFRESH_ONLY`] attributes are read too (and its roles').
    refresh: Option<(Vec<Address>, Vec<Address>)>,
    /// Without it, those attributes of its roles as desired.
    fill: Vec<(Address, Attrs)>,
}

impl AwsTarget {
    /// The account-wide lists, once: what they carry, the vouched-for
    /// resources of the tenants `trust` takes as converged, and per other
    /// tenant the resources whose details remain (`Observed::pending`, for
    /// [`AwsTarget::details`]).
    pub(crate) async fn read_lists(
        &self,
        tenants: &BTreeSet<String>,
        trust: Option<&Desired>,
    ) -> anyhow::Result<Observed> {
        let scope = Scope(tenants.clone());
        // Two strands at once (their calls fall in different pacer
        // families). The REST APIs found name the usage plans' stages.
        let rest = async {
            let apis = api::observe(self, &scope).await?;
            let api_ids: BTreeMap<String, String> = apis
                .found
                .iter()
                .map(|(tenant, (id, _))| (tenant.clone(), id.clone()))
                .collect();
            self.listed_apis(apis.all.clone());
            self.listed_descriptions(apis.descriptions.clone());
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
        let ((mut tables, roles, functions, keys), (apis, api_ids, plans, domains), iam) = joined?;
        tables.extend(adopted_tables(&tables, &functions.0, trust, &scope));
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

        // What each other tenant has left to read.
        let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
        let untrusted = |tenant: &String| !trusted.contains(tenant);
        for (tenant, name) in tables.into_iter().filter(|(t, _)| untrusted(t)) {
            pending.entry(tenant).or_default().tables.push(name);
        }
        for (tenant, name) in roles.into_iter().filter(|(t, _)| untrusted(t)) {
            pending.entry(tenant).or_default().roles.push(name);
        }
        for (tenant, d) in domains.into_iter().filter(|(t, _)| untrusted(t)) {
            pending.entry(tenant).or_default().domains.push(d);
        }
        for (tenant, id) in api_ids.iter().filter(|(t, _)| untrusted(t)) {
            pending.entry(tenant.clone()).or_default().api = Some(id.clone());
        }
        let any_domain = pending.values().any(|p| !p.domains.is_empty());
        // The hosted zones (a page per 100) and the log groups are lists:
        // read here, once, not per tenant.
        let (zones, groups, alarms) = tokio::try_join!(
            async {
                if !any_domain {
                    return Ok(Vec::new());
                }
                domain::hosted_zones(self).await
            },
            async {
                if all_trusted {
                    return Ok(Vec::new());
                }
                logs::observe(self, &scope).await
            },
            // The alarms are a list too (100 a page): read with the log
            // groups, when some tenant is not taken on trust.
            async {
                if all_trusted {
                    return Ok(Vec::new());
                }
                alarm::observe(self, &scope).await
            },
        )?;
        self.listed_zones(zones);
        for (address, attrs) in groups.into_iter().chain(alarms) {
            resources.insert(address, attrs);
        }
        match trust {
            // Under --refresh every tenant is read whole, the attributes
            // only --refresh reads included.
            None => {
                let of = |kind: Kind, tenant: &str| -> Vec<Address> {
                    resources
                        .keys()
                        .filter(|a| a.kind == kind && a.tenant == tenant)
                        .cloned()
                        .collect()
                };
                let tenants: BTreeSet<String> = resources
                    .keys()
                    .filter(|a| matches!(a.kind, Kind::Function | Kind::LogGroup))
                    .map(|a| a.tenant.clone())
                    .chain(pending.keys().cloned())
                    .collect();
                for tenant in tenants {
                    let refresh = (of(Kind::Function, &tenant), of(Kind::LogGroup, &tenant));
                    pending.entry(tenant).or_default().refresh = Some(refresh);
                }
            }
            // Otherwise those attributes are reported as desired: here
            // for what the lists gave, in `details` for the roles.
            Some(d) => {
                for (address, have) in resources.iter_mut() {
                    have.extend(as_desired(d, address));
                }
                for (tenant, p) in &mut pending {
                    p.fill = p
                        .roles
                        .iter()
                        .map(|name| Address::new(tenant, Kind::Role, name))
                        .map(|a| {
                            let attrs = as_desired(d, &a);
                            (a, attrs)
                        })
                        .collect();
                }
            }
        }
        if let Some(d) = trust {
            let vouched = d.resources.iter().filter(|(a, _)| {
                trusted.contains(&a.tenant)
                    && VOUCHED.contains(&a.kind)
                    && (!matches!(a.kind, Kind::LogGroup | Kind::Alarm) || all_trusted)
            });
            for (address, attrs) in vouched {
                resources.insert(address.clone(), attrs.clone());
            }
        }
        let shown: BTreeMap<String, BTreeSet<Address>> = pending
            .keys()
            .map(|tenant| {
                let of_tenant = named.iter().filter(|a| &a.tenant == tenant);
                (tenant.clone(), of_tenant.cloned().collect())
            })
            .collect();
        self.left_to_read(pending);
        Ok(Observed {
            resources,
            vouched: VOUCHED.into_iter().collect(),
            account: Some(account),
            pending: shown,
        })
    }

    /// One tenant's details left by the last survey: its tables'
    /// descriptions, its role's policy, its stages, its domains' mappings
    /// and alias records. Nothing when the survey left nothing.
    pub(crate) async fn details(&self, tenant: &str) -> anyhow::Result<Vec<Found>> {
        let Some(p) = self.take_pending(tenant) else {
            return Ok(Vec::new());
        };
        let tenant = tenant.to_owned();
        let api_ids: BTreeMap<String, String> = p
            .api
            .iter()
            .map(|id| (tenant.clone(), id.clone()))
            .collect();
        let with = |names: Vec<String>| -> Vec<(String, String)> {
            names.into_iter().map(|n| (tenant.clone(), n)).collect()
        };
        let domains: Vec<(String, DomainName)> =
            p.domains.into_iter().map(|d| (tenant.clone(), d)).collect();
        let refreshed_roles = p.refresh.as_ref().map(|_| with(p.roles.clone()));
        let (functions, groups) = p.refresh.unwrap_or_default();
        let (tables, roles, stages, domains, (functions, more_roles, groups)) = tokio::try_join!(
            table::describe_all(self, with(p.tables)),
            role::grants(self, with(p.roles)),
            stage::observe(self, &api_ids),
            async {
                if domains.is_empty() {
                    return Ok(Vec::new());
                }
                domain::details(self, domains, &api_ids, &self.zones()).await
            },
            async {
                let Some(roles) = refreshed_roles else {
                    return Ok((Vec::new(), Vec::new(), Vec::new()));
                };
                tokio::try_join!(
                    function::details(self, functions, &api_ids),
                    role::details(self, roles),
                    logs::details(self, groups),
                )
            },
        )?;
        // Attributes to add to what the lists (or the reads above) gave:
        // merged by the caller, see `merge`.
        Ok(tables
            .into_iter()
            .chain(roles)
            .chain(stages)
            .chain(domains)
            .chain(functions)
            .chain(more_roles)
            .chain(groups)
            .chain(p.fill)
            .collect())
    }

    /// A survey, then every tenant's details (16 tenants at once; the
    /// pacer holds the rate).
    pub(crate) async fn read(
        &self,
        tenants: &BTreeSet<String>,
        trust: Option<&Desired>,
    ) -> anyhow::Result<Observed> {
        let mut observed = self.read_lists(tenants, trust).await?;
        let pending: Vec<String> = std::mem::take(&mut observed.pending).into_keys().collect();
        let t = self.clone();
        let found = super::each(pending, 16, move |tenant| {
            let t = t.clone();
            async move { t.details(&tenant).await }
        })
        .await?;
        crate::target::merge(
            &mut observed.resources,
            found.into_iter().flatten().collect(),
        );
        Ok(observed)
    }
}

/// Whether a tenant's stamp matches its desired one and the lists show its
/// resources: every desired one of a listed kind, and of the kinds whose
/// details are taken on trust, exactly the desired ones (one more would
/// need its details for the plan to delete it).
/// The tables a tenant adopted (`[collection] table`), which the listing
/// by apifactory's name prefix cannot find: those its functions use
/// (`APIFACTORY_TABLE`) and, with `trust`, those its file names. Only
/// named here; `table::describe` keeps those tagged as the tenant's.
fn adopted_tables(
    listed: &[(String, String)],
    functions: &[Found],
    trust: Option<&Desired>,
    scope: &Scope,
) -> Vec<(String, String)> {
    let used = functions.iter().filter_map(|(a, attrs)| {
        let table = attrs.get(spec::TABLE)?.as_str()?;
        Some((a.tenant.clone(), table.to_owned()))
    });
    let declared = trust.into_iter().flat_map(|d| {
        d.resources
            .keys()
            .filter(|a| a.kind == Kind::Table)
            .map(|a| (a.tenant.clone(), a.name.clone()))
    });
    let extra: BTreeSet<(String, String)> = used
        .chain(declared)
        .filter(|(tenant, table)| scope.covers(tenant) && !listed.iter().any(|(_, t)| t == table))
        .collect();
    extra.into_iter().collect()
}

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
        Kind::Stage | Kind::LogGroup | Kind::Alarm | Kind::Stamp => true,
    });
    shown && named.iter().filter(of_tenant).all(|a| wanted.contains(a))
}

/// IAM's count of the account's roles and its quota for them (IAM is
/// global: every region's roles), from GetAccountSummary ("IAM and AWS
/// STS quotas" points to it for exactly this). A deploy identity without
/// `iam:GetAccountSummary` (or any failure) gets the reason instead, and
/// the plan says the roles were not counted.
pub(crate) async fn role_quota(t: &AwsTarget) -> anyhow::Result<Result<(u64, u64), String>> {
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
