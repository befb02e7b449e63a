//! Observed states as the AWS target reports them, built by hand (no AWS in
//! a unit test): a converged tenant shows its desired attributes, plus
//! what only AWS's observe adds: `backfilling` on every table, `expires` on
//! a rotated key (API Gateway has no key expiry of its own), a duplicate
//! REST API as its own resource, the kinds a matching stamp vouches for,
//! and the account's counts against its quotas.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Edit, NOW, Scenario};
use crate::aws::VOUCHED;
use crate::aws::listing::duplicate_name;
use crate::desired::Desired;
use crate::keys::ORIGIN_ROTATED;
use crate::plan::Observed;
use crate::quotas::{Account, Limits, Quota};
use crate::resource::{Address, Attrs, Kind, attrs};
use crate::spec::{BACKFILLING, CLIENT, DUPLICATE_OF, ENABLED, EXPIRES, ID, ORIGIN};

/// What the account holds besides apifactory's resources, so that the
/// counts are not apifactory's alone (REST APIs: the scenario's).
const OTHERS: [(Quota, Kind, u64); 5] = [
    (Quota::RestApis, Kind::Api, 0),
    (Quota::UsagePlans, Kind::UsagePlan, 12),
    (Quota::ApiKeys, Kind::ApiKey, 150),
    (Quota::DomainNames, Kind::Domain, 3),
    (Quota::Roles, Kind::Role, 210),
];

/// The id of the REST API a lost create response left.
const DUPLICATE_ID: &str = "dup0000001";
/// The id of the rotated key.
const ROTATED_ID: &str = "old0000001";

pub fn observed(deployed: &Desired, s: &Scenario) -> Observed {
    let mut resources: BTreeMap<Address, Attrs> = BTreeMap::new();
    if !s.fresh {
        for (address, want) in &deployed.resources {
            let mut have = want.clone();
            if address.kind == Kind::Table {
                // Every index ACTIVE.
                have.insert(BACKFILLING.into(), json!([]));
            }
            resources.insert(address.clone(), have);
        }
    }
    for edit in s.edits {
        apply(&mut resources, *edit);
    }
    let mut account = account(&resources);
    *account.counts.entry(Quota::RestApis).or_default() += s.rest_apis_elsewhere;
    Observed {
        resources,
        vouched: VOUCHED.into_iter().collect(),
        account: Some(account),
        pending: BTreeMap::new(),
    }
}

fn apply(resources: &mut BTreeMap<Address, Attrs>, edit: Edit) {
    match edit {
        Edit::Set {
            tenant,
            kind,
            name,
            field,
            value,
        } => {
            let have = resources
                .get_mut(&Address::new(tenant, kind, name))
                .unwrap_or_else(|| panic!("no {kind} {name} deployed"));
            have.insert(field.into(), serde_json::from_str(value).unwrap());
        }
        Edit::Delete { tenant, kind, name } => {
            resources
                .remove(&Address::new(tenant, kind, name))
                .unwrap_or_else(|| panic!("no {kind} {name} deployed"));
        }
        Edit::Rotate { tenant, client } => {
            // The new key took the name; the old one, renamed, still works
            // and records when it stops.
            let name = runtime::names::api_key(tenant, client);
            resources.insert(
                Address::new(tenant, Kind::ApiKey, format!("{name}-rotated-{ROTATED_ID}")),
                attrs([
                    (CLIENT, json!(client)),
                    (ENABLED, json!(true)),
                    (ORIGIN, json!(ORIGIN_ROTATED)),
                    (EXPIRES, json!(NOW - 3600)),
                ]),
            );
        }
        Edit::DuplicateApi { tenant } => {
            let name = runtime::names::rest_api(tenant);
            resources.insert(
                Address::new(tenant, Kind::Api, duplicate_name(&name, DUPLICATE_ID)),
                attrs([
                    (ID, json!(DUPLICATE_ID)),
                    (DUPLICATE_OF, json!("api0000001")),
                ]),
            );
        }
        Edit::Backfilling { tenant, fields } => {
            let table = Address::new(tenant, Kind::Table, runtime::names::table(tenant));
            let have = resources.get_mut(&table).expect("the tenant's table");
            have.insert(BACKFILLING.into(), json!(fields));
        }
    }
}

/// The counts the account-wide lists make: apifactory's resources of each
/// counted kind and the others'.
fn account(resources: &BTreeMap<Address, Attrs>) -> Account {
    let counts = OTHERS
        .into_iter()
        .map(|(quota, kind, others)| {
            let ours = resources.keys().filter(|a| a.kind == kind).count() as u64;
            (quota, ours + others)
        })
        .collect();
    Account {
        limits: Limits::aws(),
        counts,
        not_counted: BTreeMap::new(),
    }
}
