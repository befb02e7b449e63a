//! What the gateway serves, assembled from the deployed resources and the
//! keys at one generation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use runtime::tenant::{Period, Quota};
use runtime::{Operation, Tenant};
use serde_json::Value;

use super::{KeyRecord, LocalState, api_keys, sql};
use crate::resource::{Attrs, Kind};
use crate::spec;

/// A tenant as deployed on the local target: what the gateway serves.
#[derive(Debug, Clone)]
pub struct DeployedTenant {
    /// Parsed from the source shipped with its functions.
    pub tenant: Tenant,
    /// The deployed stage (the tenant file's at the time of deployment).
    pub stage: String,
    /// Operations with a deployed function.
    pub operations: BTreeSet<Operation>,
    /// The usage plan: throttle and quota per key.
    pub rate: f64,
    pub burst: u32,
    pub quota: Option<Quota>,
    /// The stage's throttle, one bucket for every caller of the API: the
    /// tenant's API-wide rate and burst, when it sets them.
    pub api: Option<(f64, u32)>,
    /// Custom domain and base path ("" for the root).
    pub domain: Option<(String, String)>,
}

/// Everything the gateway needs, read at one generation.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub generation: u64,
    /// Only tenants with an API, a stage and a usage plan deployed.
    pub tenants: BTreeMap<String, DeployedTenant>,
    pub keys: Vec<KeyRecord>,
}

impl LocalState {
    /// What the gateway serves, read consistently at one generation.
    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let (generation, rows, keys) = self
            .db
            .read(|c| {
                let tx = c.unchecked_transaction().map_err(sql)?;
                let generation: i64 = tx
                    .query_row(
                        "SELECT value FROM meta WHERE name = 'generation'",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(sql)?;
                let mut stmt = tx
                    .prepare(
                        "SELECT tenant, kind, name, attrs, payload FROM deployed ORDER BY tenant",
                    )
                    .map_err(sql)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Option<String>>(4)?,
                        ))
                    })
                    .map_err(sql)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql)?;
                drop(stmt);
                let keys = api_keys::read_keys(&tx)?;
                Ok((generation as u64, rows, keys))
            })
            .await?;
        let mut by_tenant: BTreeMap<String, Vec<Row>> = BTreeMap::new();
        for (tenant, kind, name, attrs, payload) in rows {
            let (Some(kind), Ok(attrs)) =
                (Kind::parse(&kind), serde_json::from_str::<Attrs>(&attrs))
            else {
                continue;
            };
            by_tenant
                .entry(tenant)
                .or_default()
                .push((kind, name, attrs, payload));
        }
        let mut tenants = BTreeMap::new();
        for (id, resources) in by_tenant {
            if let Some(t) = deployed_tenant(&id, &resources) {
                tenants.insert(id, t);
            }
        }
        Ok(Snapshot {
            generation,
            tenants,
            keys,
        })
    }
}

/// A deployed resource: kind, name, attributes, payload.
type Row = (Kind, String, Attrs, Option<String>);

/// Assembles a served tenant from its deployed resources, or `None` while
/// it is not fully deployed (no function source, API, stage or plan).
fn deployed_tenant(id: &str, resources: &[Row]) -> Option<DeployedTenant> {
    let of = |kind| resources.iter().filter(move |(k, ..)| *k == kind);
    let source = of(Kind::Function).find_map(|(.., payload)| payload.clone())?;
    let tenant = Tenant::parse_package(Path::new(&format!("{id}.toml")), &source).ok()?;
    of(Kind::Api).next()?;
    let (_, stage, stage_attrs, _) = of(Kind::Stage).next()?;
    let api = stage_attrs
        .get(spec::RATE)
        .and_then(Value::as_f64)
        .zip(stage_attrs.get(spec::BURST).and_then(Value::as_u64))
        .map(|(rate, burst)| (rate, u32::try_from(burst).unwrap_or(u32::MAX)));
    let (_, _, plan, _) = of(Kind::UsagePlan).next()?;
    let operations = of(Kind::Function)
        .filter_map(|(_, _, a, _)| a.get(spec::OPERATION)?.as_str().and_then(Operation::parse))
        .collect();
    let quota = match (
        plan.get(spec::QUOTA_LIMIT).and_then(Value::as_u64),
        plan.get(spec::QUOTA_PERIOD).and_then(Value::as_str),
    ) {
        (Some(limit), Some(period)) => Some(Quota {
            limit,
            period: match period {
                "DAY" => Period::Day,
                "WEEK" => Period::Week,
                _ => Period::Month,
            },
        }),
        _ => None,
    };
    let domain = of(Kind::Domain).next().map(|(_, name, a, _)| {
        (
            name.clone(),
            a.get(spec::BASE_PATH)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        )
    });
    Some(DeployedTenant {
        stage: stage.clone(),
        operations,
        rate: plan
            .get(spec::RATE)
            .and_then(Value::as_f64)
            .unwrap_or(tenant.usage_plan.rate),
        burst: plan
            .get(spec::BURST)
            .and_then(Value::as_u64)
            .map_or(tenant.usage_plan.burst, |b| b as u32),
        quota,
        api,
        domain,
        tenant,
    })
}
