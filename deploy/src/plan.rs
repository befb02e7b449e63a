//! The plan: what to create (+), change (~) and delete (-) so that what
//! exists matches what is desired. Pure: the same inputs give the same plan,
//! and the plan leaves no choice to whoever carries it out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::desired::Desired;
use crate::resource::{Address, Attrs, DUPLICATE_OF, Kind, ORIGIN, ORIGIN_FILE};

/// What exists on a target, as far as apifactory owns it. Only resources
/// that carry apifactory's tags (or live in its local state) appear here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub resources: BTreeMap<Address, Attrs>,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only these tenants (all when empty).
    pub tenants: BTreeSet<String>,
    /// Delete what is no longer declared: removed clients' keys (which are
    /// otherwise only disabled) and resources of tenants whose file is gone.
    pub prune: bool,
    /// Delete the resources of tenants whose file is gone (but not their
    /// tables), without pruning anything of the tenants still declared.
    pub prune_tenants: bool,
    /// Deleting a tenant's table (and so its data) needs this as well.
    pub delete_data: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Create,
    Update { fields: Vec<FieldChange> },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub from: Value,
    pub to: Value,
}

/// One step. `attrs` are the desired attributes (the observed ones for a
/// delete).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    #[serde(flatten)]
    pub address: Address,
    #[serde(flatten)]
    pub change: Change,
    pub attrs: Attrs,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Creates and updates in dependency order, then deletes in reverse.
    pub actions: Vec<Action>,
    /// Resources of tenants whose file is gone, left alone without --prune.
    pub orphans: Vec<Address>,
    /// Resources a delete would need --delete-data for.
    pub kept: Vec<Address>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    pub fn tenants(&self) -> BTreeSet<String> {
        self.actions
            .iter()
            .map(|a| a.address.tenant.clone())
            .collect()
    }

    pub fn count(&self, f: impl Fn(&Change) -> bool) -> usize {
        self.actions.iter().filter(|a| f(&a.change)).count()
    }
}

/// Compares desired with observed, only on the attributes apifactory owns.
pub fn plan(desired: &Desired, observed: &Observed, opts: &Options) -> Plan {
    let in_scope = |tenant: &str| opts.tenants.is_empty() || opts.tenants.contains(tenant);
    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    let mut orphans = Vec::new();
    let mut kept = Vec::new();

    for (address, want) in &desired.resources {
        if !in_scope(&address.tenant) {
            continue;
        }
        match observed.resources.get(address) {
            None => upserts.push(Action {
                address: address.clone(),
                change: Change::Create,
                attrs: want.clone(),
            }),
            Some(have) => {
                let fields: Vec<FieldChange> = want
                    .iter()
                    .filter(|(k, v)| have.get(*k).unwrap_or(&Value::Null) != *v)
                    .map(|(k, v)| FieldChange {
                        field: k.clone(),
                        from: have.get(k).cloned().unwrap_or(Value::Null),
                        to: v.clone(),
                    })
                    .collect();
                if !fields.is_empty() {
                    upserts.push(Action {
                        address: address.clone(),
                        change: Change::Update { fields },
                        attrs: want.clone(),
                    });
                }
            }
        }
    }

    for (address, have) in &observed.resources {
        if !in_scope(&address.tenant) || desired.resources.contains_key(address) {
            continue;
        }
        // Keys made with `apifactory keys` are not the file's to manage.
        if address.kind == Kind::ApiKey && have.get(ORIGIN).is_some_and(|o| o != ORIGIN_FILE) {
            continue;
        }
        let tenant_declared = desired.tenants.contains_key(&address.tenant);
        if !tenant_declared && !opts.prune && !opts.prune_tenants {
            orphans.push(address.clone());
            continue;
        }
        if address.kind == Kind::Table && !opts.delete_data {
            kept.push(address.clone());
            continue;
        }
        if address.kind == Kind::ApiKey && !opts.prune && !have.contains_key(DUPLICATE_OF) {
            // A client removed from the file: its key stops working, and
            // is deleted only with --prune.
            if have.get("enabled") != Some(&Value::Bool(false)) {
                let mut attrs = have.clone();
                attrs.insert("enabled".into(), Value::Bool(false));
                upserts.push(Action {
                    address: address.clone(),
                    change: Change::Update {
                        fields: vec![FieldChange {
                            field: "enabled".into(),
                            from: Value::Bool(true),
                            to: Value::Bool(false),
                        }],
                    },
                    attrs,
                });
            }
            continue;
        }
        deletes.push(Action {
            address: address.clone(),
            change: Change::Delete,
            attrs: have.clone(),
        });
    }

    upserts.sort_by(|a, b| order(&a.address).cmp(&order(&b.address)));
    deletes.sort_by(|a, b| order(&b.address).cmp(&order(&a.address)));
    upserts.extend(deletes);
    Plan {
        actions: upserts,
        orphans,
        kept,
    }
}

fn order(a: &Address) -> (&str, Kind, &str) {
    (&a.tenant, a.kind, &a.name)
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.len() > 16 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        format!("{}…", &s[..12])
    } else {
        s
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tenant = "";
        for a in &self.actions {
            if a.address.tenant != tenant {
                tenant = &a.address.tenant;
                writeln!(f, "{tenant}")?;
            }
            let (sign, detail) = match &a.change {
                Change::Create => ("+", String::new()),
                Change::Delete => ("-", String::new()),
                Change::Update { fields } => (
                    "~",
                    fields
                        .iter()
                        .map(|c| format!("{}: {} -> {}", c.field, short(&c.from), short(&c.to)))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            };
            let line = format!(
                "  {sign} {:<10} {}",
                a.address.kind.as_str(),
                a.address.name
            );
            if detail.is_empty() {
                writeln!(f, "{line}")?;
            } else {
                writeln!(f, "{line}  ({detail})")?;
            }
        }
        if !self.orphans.is_empty() {
            writeln!(
                f,
                "orphans (their tenant file is gone; apply --prune deletes them):"
            )?;
            for o in &self.orphans {
                writeln!(
                    f,
                    "  ? {:<10} {} (tenant {})",
                    o.kind.as_str(),
                    o.name,
                    o.tenant
                )?;
            }
        }
        if !self.kept.is_empty() {
            writeln!(f, "kept (deleting data needs --delete-data):")?;
            for k in &self.kept {
                writeln!(
                    f,
                    "  = {:<10} {} (tenant {})",
                    k.kind.as_str(),
                    k.name,
                    k.tenant
                )?;
            }
        }
        if self.actions.is_empty() {
            write!(f, "No changes.")
        } else {
            write!(
                f,
                "Plan: {} to create, {} to change, {} to delete.",
                self.count(|c| matches!(c, Change::Create)),
                self.count(|c| matches!(c, Change::Update { .. })),
                self.count(|c| matches!(c, Change::Delete))
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use runtime::Tenant;
    use serde_json::json;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::apply::{Quiet, apply};
    use crate::desired::{Code, desired, hex};
    use crate::target::{MemoryTarget, Target};

    struct SourceHash;
    impl Code for SourceHash {
        fn sha256(&self, _: &Tenant, source: &str) -> String {
            hex(&Sha256::digest(source.as_bytes()))
        }
    }

    fn desired_from(texts: &[(&str, String)]) -> Desired {
        let mut tenants = Vec::new();
        let mut sources = BTreeMap::new();
        for (id, text) in texts {
            tenants.push(Tenant::parse(Path::new(&format!("tenants/{id}.toml")), text).unwrap());
            sources.insert(
                id.to_string(),
                crate::tenants::package_source(text).unwrap(),
            );
        }
        desired(&tenants, &sources, &SourceHash)
    }

    fn file(id: &str) -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tenants/{id}.toml")),
        )
        .unwrap()
    }

    async fn converge(d: &Desired, target: &Arc<MemoryTarget>, opts: &Options) -> Plan {
        let observed = target.observe(&opts.tenants).await.unwrap();
        let p = plan(d, &observed, opts);
        let report = apply(&p, Arc::new(d.clone()), target.clone(), 4, Arc::new(Quiet)).await;
        assert!(report.ok(), "{report}");
        p
    }

    async fn replan(d: &Desired, target: &MemoryTarget, opts: &Options) -> Plan {
        plan(d, &target.observe(&BTreeSet::new()).await.unwrap(), opts)
    }

    #[tokio::test]
    async fn apply_then_plan_again_is_empty() {
        let d = desired_from(&[("acme", file("acme")), ("clinic", file("clinic"))]);
        let target = Arc::new(MemoryTarget::default());
        let first = converge(&d, &target, &Options::default()).await;
        assert_eq!(
            first.count(|c| matches!(c, Change::Create)),
            d.resources.len()
        );
        // Creates come in dependency order within each tenant.
        let acme: Vec<Kind> = first
            .actions
            .iter()
            .filter(|a| a.address.tenant == "acme")
            .map(|a| a.address.kind)
            .collect();
        let mut sorted = acme.clone();
        sorted.sort();
        assert_eq!(acme, sorted);
        let again = replan(&d, &target, &Options::default()).await;
        assert!(again.is_empty(), "{again}");
        assert_eq!(again.to_string(), "No changes.");
    }

    #[tokio::test]
    async fn a_changed_field_plans_exactly_that_change() {
        let target = Arc::new(MemoryTarget::default());
        converge(
            &desired_from(&[("acme", file("acme"))]),
            &target,
            &Options::default(),
        )
        .await;
        let changed = file("acme").replace("rate = 50", "rate = 60");
        let p = replan(
            &desired_from(&[("acme", changed)]),
            &target,
            &Options::default(),
        )
        .await;
        let changes: Vec<String> = p
            .actions
            .iter()
            .map(|a| match &a.change {
                Change::Update { fields } => format!(
                    "{} {}",
                    a.address,
                    fields
                        .iter()
                        .map(|f| format!("{}:{}->{}", f.field, f.from, f.to))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                other => format!("{other:?}"),
            })
            .collect();
        // The usage plan's rate and the stage's default throttling; the
        // functions' package holds no usage plan, so no code changes.
        assert!(
            changes.contains(&"usage_plan apifactory-acme rate:50.0->60.0".to_owned()),
            "{changes:?}"
        );
        assert!(
            changes.contains(&"stage prod rate:50.0->60.0".to_owned()),
            "{changes:?}"
        );
        assert_eq!(p.count(|c| matches!(c, Change::Update { .. })), 2, "{p}");
        assert_eq!(p.count(|c| !matches!(c, Change::Update { .. })), 0);
        assert!(
            p.to_string()
                .contains("~ usage_plan apifactory-acme  (rate: 50.0 -> 60.0)"),
            "{p}"
        );
    }

    #[tokio::test]
    async fn a_removed_client_is_disabled_then_pruned() {
        let target = Arc::new(MemoryTarget::default());
        converge(
            &desired_from(&[("acme", file("acme"))]),
            &target,
            &Options::default(),
        )
        .await;
        let without = file("acme").replace(
            "[[clients]]\nname = \"acme-billing\"",
            "[[nope]]\nname = \"x\"",
        );
        let without = without.replace(
            "[[nope]]\nname = \"x\"\ndescription = \"The billing system's nightly sync.\"\n",
            "",
        );
        let d = desired_from(&[("acme", without)]);
        let p = converge(&d, &target, &Options::default()).await;
        let keys: Vec<&Action> = p
            .actions
            .iter()
            .filter(|a| a.address.kind == Kind::ApiKey)
            .collect();
        assert_eq!(keys.len(), 1, "{p}");
        assert_eq!(keys[0].address.name, "apifactory-acme-acme-billing");
        assert_eq!(keys[0].attrs["enabled"], json!(false));
        // Disabled stays disabled: nothing more to do without --prune.
        let p = replan(&d, &target, &Options::default()).await;
        assert!(
            p.actions.iter().all(|a| a.address.kind != Kind::ApiKey),
            "{p}"
        );
        let prune = Options {
            prune: true,
            ..Options::default()
        };
        let p = converge(&d, &target, &prune).await;
        let deleted: Vec<String> = p
            .actions
            .iter()
            .filter(|a| a.change == Change::Delete)
            .map(|a| a.address.to_string())
            .collect();
        assert!(
            deleted.contains(&"api_key apifactory-acme-acme-billing".to_owned()),
            "{p}"
        );
    }

    #[tokio::test]
    async fn keys_made_by_hand_are_not_the_files_to_manage() {
        let d = desired_from(&[("acme", file("acme"))]);
        let target = Arc::new(MemoryTarget::default());
        converge(&d, &target, &Options::default()).await;
        target.resources.lock().unwrap().resources.insert(
            crate::resource::Address::new("acme", Kind::ApiKey, "apifactory-acme-partner-01"),
            crate::resource::attrs([
                ("client", json!("partner")),
                ("enabled", json!(true)),
                (ORIGIN, json!("cli")),
            ]),
        );
        let prune = Options {
            prune: true,
            ..Options::default()
        };
        assert!(replan(&d, &target, &prune).await.is_empty());
    }

    #[tokio::test]
    async fn a_gone_tenant_is_orphaned_until_pruned_and_keeps_its_table() {
        let target = Arc::new(MemoryTarget::default());
        converge(
            &desired_from(&[("acme", file("acme")), ("clinic", file("clinic"))]),
            &target,
            &Options::default(),
        )
        .await;
        let only_acme = desired_from(&[("acme", file("acme"))]);
        let p = replan(&only_acme, &target, &Options::default()).await;
        assert!(p.is_empty());
        assert!(p.orphans.iter().all(|a| a.tenant == "clinic"));
        assert!(!p.orphans.is_empty());
        assert!(p.to_string().contains("orphans"), "{p}");

        let prune = Options {
            prune: true,
            ..Options::default()
        };
        let p = converge(&only_acme, &target, &prune).await;
        assert!(
            p.actions
                .iter()
                .all(|a| a.change == Change::Delete && a.address.tenant == "clinic")
        );
        // Deletes run in reverse dependency order.
        let kinds: Vec<Kind> = p.actions.iter().map(|a| a.address.kind).collect();
        let mut sorted = kinds.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(kinds, sorted);
        assert_eq!(p.kept.len(), 1, "the table stays");
        let left = target.observe(&["clinic".to_owned()].into()).await.unwrap();
        assert_eq!(
            left.resources.keys().map(|a| a.kind).collect::<Vec<_>>(),
            [Kind::Table]
        );

        let all = Options {
            prune: true,
            delete_data: true,
            ..Options::default()
        };
        converge(&only_acme, &target, &all).await;
        assert!(
            target
                .observe(&["clinic".to_owned()].into())
                .await
                .unwrap()
                .resources
                .is_empty()
        );
    }

    #[tokio::test]
    async fn scope_limits_the_plan_and_failures_stay_with_their_tenant() {
        let d = desired_from(&[("acme", file("acme")), ("clinic", file("clinic"))]);
        let only = Options {
            tenants: ["clinic".to_owned()].into(),
            ..Options::default()
        };
        let p = plan(&d, &Observed::default(), &only);
        assert_eq!(p.tenants(), ["clinic".to_owned()].into());

        let target = Arc::new(MemoryTarget {
            fail_on: Some(crate::resource::Address::new(
                "acme",
                Kind::Function,
                "apifactory-acme-get",
            )),
            ..MemoryTarget::default()
        });
        let p = plan(&d, &Observed::default(), &Options::default());
        let report = apply(&p, Arc::new(d.clone()), target.clone(), 2, Arc::new(Quiet)).await;
        assert!(!report.ok());
        let acme = &report.tenants[0];
        assert!(
            acme.error
                .as_deref()
                .unwrap()
                .contains("apifactory-acme-get: injected failure")
        );
        assert!(acme.applied < acme.planned);
        let clinic = &report.tenants[1];
        assert_eq!(
            (clinic.error.as_ref(), clinic.applied),
            (None, clinic.planned)
        );
        assert!(
            report
                .to_string()
                .contains("1 tenant(s) applied, 1 failed."),
            "{report}"
        );
    }
}
