//! The desired state: from tenant files to every resource each tenant should
//! have, with its attributes. Pure: every name, tag, hash and rendered
//! document is decided here, the same for every target.

use std::collections::BTreeMap;
use std::sync::Arc;

use runtime::field::Kind as FieldKind;
use runtime::names;
use runtime::schema::TableSchema;
use runtime::tenant::AlarmMetric;
use runtime::{Operation, Tenant};
use sha2::{Digest, Sha256};

use crate::openapi;
use crate::payload::Payload;
use crate::resource::{Address, Attrs, Kind, ORIGIN_FILE, TAG_MANAGED_BY, TAG_TENANT};
use crate::spec::{
    AlarmSpec, ApiKeySpec, ApiSpec, DomainSpec, FunctionSpec, LogGroupSpec, RoleSpec, Spec,
    StageSpec, StampSpec, TableSpec, Tags, UsagePlanSpec,
};

/// Every function's Lambda runtime and handler: the one `bootstrap`
/// executable on the OS-only runtime.
pub const FUNCTION_RUNTIME: &str = "provided.al2023";
pub const FUNCTION_HANDLER: &str = "bootstrap";

/// The one service the functions' role trusts to assume it.
pub const ROLE_TRUSTS: &str = "lambda.amazonaws.com";

/// The tags apifactory puts on each of a tenant's resources.
pub fn tags(tenant: &str) -> Tags {
    Tags::from([
        (TAG_MANAGED_BY.to_owned(), names::PREFIX.to_owned()),
        (TAG_TENANT.to_owned(), tenant.to_owned()),
    ])
}

/// Everything that should exist, by address, and the tenants it came from.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub resources: BTreeMap<Address, Attrs>,
    /// What applying a resource needs besides its attributes (tables,
    /// functions, REST APIs); the plan hands it to the action.
    pub payloads: BTreeMap<Address, Payload>,
    pub tenants: BTreeMap<String, Tenant>,
    /// The text of each tenant file: it ships with the function.
    pub sources: BTreeMap<String, String>,
}

/// How the function's code is identified: a hash that changes exactly when
/// what a tenant's functions run changes (on AWS the zip's SHA-256, which
/// holds the bootstrap and the tenant file).
pub trait Code {
    fn sha256(&self, tenant: &Tenant, source: &str) -> String;
}

/// Computes the desired state of these tenants. `sources` holds each
/// tenant's file text by id.
pub fn desired(tenants: &[Tenant], sources: &BTreeMap<String, String>, code: &dyn Code) -> Desired {
    let mut d = Desired::default();
    for t in tenants {
        let source = sources.get(&t.id).cloned().unwrap_or_default();
        add_tenant(&mut d, t, &source, code);
        let stamp = fingerprint(&d.resources, &t.id);
        let stamp = Spec::Stamp(StampSpec {
            fingerprint: Some(stamp),
        });
        d.resources.insert(
            Address::new(&t.id, Kind::Stamp, t.id.clone()),
            stamp.attrs(),
        );
        d.tenants.insert(t.id.clone(), t.clone());
        d.sources.insert(t.id.clone(), source);
    }
    d
}

fn add_tenant(d: &mut Desired, t: &Tenant, source: &str, code: &dyn Code) {
    let id = t.id.as_str();
    // The one place a spec becomes attributes.
    let mut put = |name: String, spec: Spec| {
        d.resources
            .insert(Address::new(id, spec.kind(), name), spec.attrs());
    };
    let table = t.collection.table_name(id);
    put(
        table.clone(),
        Spec::Table(TableSpec {
            adopted: t.collection.table.is_some(),
            key: t.collection.key.clone(),
            indexes: t
                .collection
                .indexed()
                .map(|f| (f.name.clone(), index_type(&f.kind).to_owned()))
                .collect(),
            // Both always on: the data outlives mistakes.
            point_in_time_recovery: true,
            deletion_protection: true,
        }),
    );
    put(
        names::role(id),
        Spec::Role(RoleSpec {
            table: table.clone(),
            // Only search reads the indexes, so only it is granted them.
            indexes: t
                .collection
                .indexed()
                .filter(|_| t.functions.enabled(Operation::Search))
                .map(|f| names::index(&f.name))
                .collect(),
            operations: ops(t),
            trust: vec![ROLE_TRUSTS.to_owned()],
            tags: tags(id),
        }),
    );
    let log_group = || {
        Spec::LogGroup(LogGroupSpec {
            retention_days: t.logs.retention_days,
            tags: tags(id),
        })
    };
    // The stage's access log.
    put(names::access_log_group(id), log_group());
    let code_sha256 = code.sha256(t, source);
    for op in &t.functions.operations {
        put(names::log_group(id, *op), log_group());
        put(
            names::function(id, *op),
            Spec::Function(FunctionSpec {
                operation: op.as_str().to_owned(),
                runtime: FUNCTION_RUNTIME.to_owned(),
                handler: FUNCTION_HANDLER.to_owned(),
                role: names::role(id),
                memory_mb: t.functions.memory_mb,
                timeout_s: t.functions.timeout_s,
                code_sha256: code_sha256.clone(),
                table: table.clone(),
                // Search cursors are signed with a per-tenant secret the
                // target keeps (never in the plan, only whether it is set).
                cursor_secret: true,
                // Who may invoke it: the tenant's REST API, and nothing else.
                invoked_by: names::rest_api(id),
                tags: tags(id),
            }),
        );
    }
    let document = api_document(t);
    let definition = hex(&Sha256::digest(document.as_bytes()));
    put(
        names::rest_api(id),
        Spec::Api(ApiSpec {
            definition_sha256: definition.clone(),
            collection: t.collection.name.clone(),
        }),
    );
    // The stage's default method throttling is one bucket for all callers
    // together ("Throttle requests to your REST APIs"), so it carries the
    // tenant's API-wide total, never the per-key rate; null means none.
    let api = t.usage_plan.api;
    put(
        t.stage.clone(),
        Spec::Stage(StageSpec {
            deployment: definition,
            rate: api.map(|a| a.rate),
            burst: api.map(|a| a.burst),
            access_log: names::access_log_group(id),
            tags: tags(id),
        }),
    );
    let quota = t.usage_plan.quota;
    put(
        names::usage_plan(id),
        Spec::UsagePlan(UsagePlanSpec {
            rate: t.usage_plan.rate,
            burst: t.usage_plan.burst,
            quota_limit: quota.map(|q| q.limit),
            quota_period: quota.map(|q| q.period.as_str().to_owned()),
            stage: t.stage.clone(),
        }),
    );
    for c in &t.clients {
        put(
            names::api_key(id, &c.name),
            Spec::ApiKey(ApiKeySpec {
                client: Some(c.name.clone()),
                enabled: true,
                origin: ORIGIN_FILE.to_owned(),
            }),
        );
    }
    if let Some(dom) = &t.domain {
        put(
            dom.name.clone(),
            Spec::Domain(DomainSpec {
                certificate_arn: dom.certificate_arn.clone(),
                base_path: dom.base_path.clone(),
                hosted_zone_id: dom.hosted_zone_id.clone(),
                stage: t.stage.clone(),
            }),
        );
    }
    // `quota_share` has no CloudWatch metric (none is per key): `up` and
    // `apifactory usage` evaluate it, no alarm is made for it.
    for a in t
        .alarms
        .iter()
        .filter(|a| a.metric != AlarmMetric::QuotaShare)
    {
        put(
            names::alarm(id, &a.name),
            Spec::Alarm(AlarmSpec {
                metric: a.metric.as_str().to_owned(),
                threshold: a.threshold,
                minutes: a.minutes,
                notify: a.notify.clone(),
                api: names::rest_api(id),
                stage: t.stage.clone(),
            }),
        );
    }
    // What the applies need besides the attributes.
    let source: Arc<str> = source.into();
    let functions: Vec<String> = functions(t).map(|(_, f)| f).collect();
    for f in &functions {
        d.payloads.insert(
            Address::new(id, Kind::Function, f.clone()),
            Payload::Function {
                source: source.clone(),
            },
        );
    }
    d.payloads.insert(
        Address::new(id, Kind::Table, table),
        Payload::Table(TableSchema::of(&t.collection)),
    );
    d.payloads.insert(
        Address::new(id, Kind::Api, names::rest_api(id)),
        Payload::Api {
            document: document.into(),
            functions,
        },
    );
}

/// The fingerprint of a tenant's resources: a hash over every address and
/// attribute of them (its stamp aside), so it changes exactly when
/// anything apifactory would set on the tenant changes. Deterministic:
/// resources and attributes are ordered maps.
pub fn fingerprint(resources: &BTreeMap<Address, Attrs>, tenant: &str) -> String {
    let mut h = Sha256::new();
    let first = Address::new(tenant, Kind::Table, "");
    for (a, attrs) in resources
        .range(first..)
        .take_while(|(a, _)| a.tenant == tenant)
        .filter(|(a, _)| a.kind != Kind::Stamp)
    {
        // NUL separates the parts: no name or JSON text holds one.
        h.update(a.kind.as_str());
        h.update([0]);
        h.update(&a.name);
        h.update([0]);
        h.update(serde_json::to_string(attrs).unwrap_or_default());
        h.update([0]);
    }
    hex(&h.finalize())
}

fn ops(t: &Tenant) -> Vec<String> {
    t.functions
        .operations
        .iter()
        .map(|o| o.as_str().to_owned())
        .collect()
}

/// DynamoDB attribute type of an index key.
fn index_type(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::Integer { .. } | FieldKind::Number { .. } => "N",
        _ => "S",
    }
}

/// The hash of the tenant's API definition (the document API Gateway
/// imports), independent of the partition, account and region it is
/// deployed to: it changes exactly when the API does.
pub fn api_definition_sha256(t: &Tenant) -> String {
    hex(&Sha256::digest(api_document(t).as_bytes()))
}

/// The document API Gateway imports for the tenant, rendered for any
/// account ([`openapi::Integration::anywhere`]): what the hash above is
/// of, and what the API's action carries; [`openapi::bind`] names the
/// account it is deployed to.
pub fn api_document(t: &Tenant) -> String {
    let anywhere = openapi::Integration::anywhere();
    openapi::render(t, &anywhere, openapi::Document::Import)
        .unwrap_or_else(|e| format!("unrenderable: {e}"))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The function ids of a tenant, by operation.
pub fn functions(t: &Tenant) -> impl Iterator<Item = (Operation, String)> + '_ {
    t.functions
        .operations
        .iter()
        .map(|op| (*op, names::function(&t.id, *op)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::attrs;
    use crate::spec::{BURST, FINGERPRINT, INDEXES, RATE};
    use serde_json::{Value, json};
    use std::path::Path;

    pub struct FixedCode;
    impl Code for FixedCode {
        fn sha256(&self, _: &Tenant, source: &str) -> String {
            hex(&Sha256::digest(source.as_bytes()))
        }
    }

    fn load(ids: &[&str]) -> (Vec<Tenant>, BTreeMap<String, String>) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tenants");
        let mut tenants = Vec::new();
        let mut sources = BTreeMap::new();
        for id in ids {
            let path = dir.join(format!("{id}.toml"));
            sources.insert(id.to_string(), std::fs::read_to_string(&path).unwrap());
            tenants.push(Tenant::load(&path).unwrap());
        }
        (tenants, sources)
    }

    #[test]
    fn one_set_of_resources_per_tenant() {
        let (tenants, sources) = load(&["acme", "clinic"]);
        let d = desired(&tenants, &sources, &FixedCode);
        let count = |tenant: &str, kind: Kind| {
            d.resources
                .keys()
                .filter(|a| a.tenant == tenant && a.kind == kind)
                .count()
        };
        assert_eq!(count("acme", Kind::Function), 5);
        assert_eq!(count("clinic", Kind::Function), 4, "clinic has no delete");
        assert_eq!(count("acme", Kind::ApiKey), 2);
        assert_eq!(count("acme", Kind::Domain), 1);
        assert_eq!(count("clinic", Kind::Domain), 0);
        let table = &d.resources[&Address::new("acme", Kind::Table, "apifactory-acme")];
        assert_eq!(table[INDEXES], json!({"email": "S", "plan": "S"}));
    }

    #[test]
    fn every_resource_reads_back_as_its_kinds_spec() {
        use crate::plan::{Action, Change};
        use crate::spec::{self, read};
        let (tenants, sources) = load(&["acme", "clinic", "fleet"]);
        let d = desired(&tenants, &sources, &FixedCode);
        for (address, attrs) in &d.resources {
            let action = Action {
                address: address.clone(),
                change: Change::Create,
                attrs: attrs.clone(),
                payload: Payload::None,
            };
            let spec = match address.kind {
                Kind::Table => Spec::Table(read(&action).unwrap()),
                Kind::Role => Spec::Role(read(&action).unwrap()),
                Kind::LogGroup => Spec::LogGroup(read(&action).unwrap()),
                Kind::Function => Spec::Function(read(&action).unwrap()),
                Kind::Api => Spec::Api(read(&action).unwrap()),
                Kind::Stage => Spec::Stage(read(&action).unwrap()),
                Kind::UsagePlan => Spec::UsagePlan(read(&action).unwrap()),
                Kind::ApiKey => Spec::ApiKey(read(&action).unwrap()),
                Kind::Domain => Spec::Domain(read(&action).unwrap()),
                Kind::Alarm => Spec::Alarm(read(&action).unwrap()),
                Kind::Stamp => Spec::Stamp(read::<spec::StampSpec>(&action).unwrap()),
            };
            assert_eq!(spec.kind(), address.kind);
            assert_eq!(&spec.attrs(), attrs, "{address}");
        }
    }

    #[test]
    fn the_stage_throttles_at_the_api_wide_total_only() {
        let (tenants, sources) = load(&["acme", "fleet"]);
        let d = desired(&tenants, &sources, &FixedCode);
        let limits = |tenant: &str, kind: Kind, name: &str| {
            let a = &d.resources[&Address::new(tenant, kind, name)];
            (a[RATE].clone(), a[BURST].clone())
        };
        // acme sets no total: the stage has no throttling of its own, and
        // the usage plan keeps the per-key limits.
        assert_eq!(
            limits("acme", Kind::Stage, "prod"),
            (Value::Null, Value::Null)
        );
        assert_eq!(
            limits("acme", Kind::UsagePlan, "apifactory-acme"),
            (json!(50.0), json!(100))
        );
        // fleet sets one: the stage carries it, the usage plan is unchanged.
        assert_eq!(
            limits("fleet", Kind::Stage, "live"),
            (json!(300.0), json!(600))
        );
        assert_eq!(
            limits("fleet", Kind::UsagePlan, "apifactory-fleet"),
            (json!(100.0), json!(200))
        );
    }

    #[test]
    fn the_fingerprint_follows_every_attribute_of_the_tenant_and_nothing_else() {
        let (tenants, sources) = load(&["acme", "clinic"]);
        let d = desired(&tenants, &sources, &FixedCode);
        let stamp = |d: &Desired, id: &str| d.resources[&Address::new(id, Kind::Stamp, id)].clone();
        let before = fingerprint(&d.resources, "acme");
        assert_eq!(stamp(&d, "acme")[FINGERPRINT], json!(before));
        assert_ne!(before, fingerprint(&d.resources, "clinic"));
        // Stable: the same inputs, the same fingerprint.
        let again = desired(&tenants, &sources, &FixedCode);
        assert_eq!(stamp(&again, "acme"), stamp(&d, "acme"));
        // Any attribute of any of its resources changes it; another
        // tenant's do not.
        for (address, attrs) in d.resources.iter().filter(|(a, _)| a.kind != Kind::Stamp) {
            for key in attrs.keys() {
                let mut edited = d.resources.clone();
                edited
                    .get_mut(address)
                    .unwrap()
                    .insert(key.clone(), json!("edited"));
                let after = fingerprint(&edited, "acme");
                if address.tenant == "acme" {
                    assert_ne!(after, before, "{address} {key}");
                } else {
                    assert_eq!(after, before, "{address} {key}");
                }
            }
        }
        // So does a resource more or less, and a renamed one.
        let mut fewer = d.resources.clone();
        fewer.remove(&Address::new("acme", Kind::Function, "apifactory-acme-get"));
        assert_ne!(fingerprint(&fewer, "acme"), before);
        let mut renamed = d.resources.clone();
        let stage = renamed
            .remove(&Address::new("acme", Kind::Stage, "prod"))
            .unwrap();
        renamed.insert(Address::new("acme", Kind::Stage, "live"), stage);
        assert_ne!(fingerprint(&renamed, "acme"), before);
        // The stamp itself is not part of what it records.
        let mut stamped = d.resources.clone();
        stamped.insert(
            Address::new("acme", Kind::Stamp, "acme"),
            attrs([(FINGERPRINT, json!("other"))]),
        );
        assert_eq!(fingerprint(&stamped, "acme"), before);
    }

    #[test]
    fn the_api_hash_follows_the_api_only() {
        let (tenants, _) = load(&["acme"]);
        let t = &tenants[0];
        let before = api_definition_sha256(t);
        let mut more_memory = t.clone();
        more_memory.functions.memory_mb = 1024;
        assert_eq!(before, api_definition_sha256(&more_memory));
        let mut no_delete = t.clone();
        no_delete
            .functions
            .operations
            .retain(|o| *o != Operation::Delete);
        assert_ne!(before, api_definition_sha256(&no_delete));
    }
}
