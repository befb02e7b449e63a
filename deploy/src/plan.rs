//! The plan: what to create (+), change (~) and delete (-) so that what
//! exists matches what is desired. Pure: the same inputs give the same plan,
//! and the plan leaves no choice to whoever carries it out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::desired::Desired;
use crate::payload::Payload;
use crate::quotas::{self, Step};
use crate::resource::{Address, Attrs, Kind, ORIGIN_FILE};
use crate::schema_change::StoredData;
use crate::spec::{
    ADOPTED, BACKFILLING, DUPLICATE_OF, ENABLED, EXPIRES, FINGERPRINT, INDEXES, KEY, ORIGIN, Spec,
    StampSpec,
};

/// What exists on a target, as far as apifactory owns it. Only resources
/// that carry apifactory's tags (or live in its local state) appear here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub resources: BTreeMap<Address, Attrs>,
    /// The kinds this target reads only for a tenant whose stamp does not
    /// match (on AWS: those without a list call that carries what the plan
    /// compares). A plan that changes one of them clears the tenant's stamp
    /// first: an apply stopped midway must not leave the old stamp standing
    /// over half-changed resources (a file reverted to it would then plan
    /// nothing).
    pub vouched: BTreeSet<Kind>,
    /// What the account holds against the target's quotas (all of it,
    /// not only apifactory's), with their limits; `None` on a target that
    /// has no quotas (local).
    pub account: Option<crate::quotas::Account>,
    /// The tenants a survey left to read one by one
    /// ([`crate::target::Target::read_tenant`]), each with the resources
    /// the lists named whose details those reads give. Empty after a full
    /// observe.
    pub pending: BTreeMap<String, BTreeSet<Address>>,
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
    /// Deleting a table apifactory adopted rather than made needs this on
    /// top of `delete_data`: its data predates apifactory.
    pub delete_adopted_data: bool,
    /// The time of the run (Unix seconds): a rotated key whose grace period
    /// ended by then is planned disabled. 0 plans no expiry.
    pub now: i64,
    /// What the tenants' field changes mean for their stored items, read
    /// before planning (`schema_change`): the plan shows it, it decides
    /// no action.
    pub data: Vec<StoredData>,
    /// Tenants placed in another cell of the same account (a run over
    /// cells): their account-wide resources, which this cell's lists show
    /// too, are that cell's, never orphans here.
    pub elsewhere: BTreeSet<String>,
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
/// delete); `payload` is what its apply needs besides them (the desired
/// one, for a create or update), so that a target applies the action
/// alone. Not shown: the plan's text and JSON stay what a person reviews.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    #[serde(flatten)]
    pub address: Address,
    #[serde(flatten)]
    pub change: Change,
    pub attrs: Attrs,
    #[serde(skip)]
    pub payload: Payload,
}

/// A tenant whose table is still getting a new index: its function updates
/// wait (the functions keep serving with their current configuration,
/// whose searches do not use the new index) until every index is ACTIVE.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waiting {
    pub tenant: String,
    pub table: String,
    /// Indexed fields whose index exists and is being backfilled.
    pub backfilling: Vec<String>,
    /// Indexed fields whose index this plan's table change creates (one
    /// per UpdateTable, each backfilled in turn).
    pub to_create: Vec<String>,
    /// The function updates held back.
    pub held: Vec<Address>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Creates and updates in dependency order, then deletes in reverse.
    pub actions: Vec<Action>,
    /// Resources of tenants whose file is gone, left alone without --prune.
    pub orphans: Vec<Address>,
    /// Resources a delete would need --delete-data for.
    pub kept: Vec<Address>,
    /// Adopted tables a delete would need --delete-adopted-data for (as
    /// well as --delete-data).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_adopted: Vec<Address>,
    /// Tenants waiting for a new index (`apply --wait` waits for them, or
    /// a later apply moves their functions).
    pub waiting: Vec<Waiting>,
    /// The target's quotas, counted after this plan (`None` on a target
    /// without quotas).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quotas: Option<crate::quotas::Report>,
    /// What the field changes mean for the items already stored, per
    /// tenant: apart from the actions, since apply changes no item.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<StoredData>,
}

impl Plan {
    /// Why this plan must not be applied: the hard quotas it would cross
    /// (its text names each quota, the count, the limit and its source).
    /// Whoever applies a plan checks this first.
    pub fn refused(&self) -> Option<String> {
        self.quotas.as_ref().and_then(|q| q.refused())
    }

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
    let mut kept_adopted = Vec::new();
    let payload = |a: &Address| desired.payloads.get(a).cloned().unwrap_or_default();

    for (address, want) in &desired.resources {
        if !in_scope(&address.tenant) {
            continue;
        }
        match observed.resources.get(address) {
            None => upserts.push(Action {
                address: address.clone(),
                change: Change::Create,
                attrs: want.clone(),
                payload: payload(address),
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
                        payload: payload(address),
                    });
                }
            }
        }
    }

    for (address, have) in &observed.resources {
        if !in_scope(&address.tenant) || desired.resources.contains_key(address) {
            continue;
        }
        if address.kind.account_wide() && opts.elsewhere.contains(&address.tenant) {
            continue;
        }
        // A rotated key past its grace period stops working, whoever made
        // it: on a target without key expiry of its own (API Gateway), this
        // is the only way it stops.
        if address.kind == Kind::ApiKey
            && have.get(ENABLED) == Some(&Value::Bool(true))
            && have
                .get(EXPIRES)
                .and_then(Value::as_i64)
                .is_some_and(|e| opts.now > 0 && e <= opts.now)
        {
            upserts.push(disable(address, have));
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
        if address.kind == Kind::Table
            && have.get(ADOPTED) == Some(&Value::Bool(true))
            && !opts.delete_adopted_data
        {
            kept_adopted.push(address.clone());
            continue;
        }
        if address.kind == Kind::ApiKey && !opts.prune && !have.contains_key(DUPLICATE_OF) {
            // A client removed from the file: its key stops working, and
            // is deleted only with --prune.
            if have.get(ENABLED) != Some(&Value::Bool(false)) {
                upserts.push(disable(address, have));
            }
            continue;
        }
        deletes.push(Action {
            address: address.clone(),
            change: Change::Delete,
            attrs: have.clone(),
            payload: Payload::None,
        });
    }

    // Stored items not read (AWS without --check-data) matter where the
    // functions change: their new code may hold the items to new rules.
    let data = opts
        .data
        .iter()
        .filter(|d| in_scope(&d.tenant))
        .filter(|d| {
            d.checked.is_some()
                || upserts.iter().any(|a| {
                    a.address.tenant == d.tenant
                        && a.address.kind == Kind::Function
                        && matches!(a.change, Change::Update { .. })
                })
        })
        .cloned()
        .collect();
    let waiting = hold_for_indexes(desired, observed, &in_scope, &mut upserts);

    upserts.sort_by(|a, b| order(&a.address).cmp(&order(&b.address)));
    deletes.sort_by(|a, b| order(&b.address).cmp(&order(&a.address)));
    let quotas = observed.account.as_ref().map(|account| {
        let steps: Vec<(&Address, Step)> = upserts
            .iter()
            .chain(&deletes)
            .map(|a| {
                let step = match a.change {
                    Change::Create => Step::Create,
                    Change::Update { .. } => Step::Update,
                    Change::Delete => Step::Delete,
                };
                (&a.address, step)
            })
            .collect();
        quotas::check(
            account,
            &steps,
            &desired.resources,
            &observed.resources,
            &in_scope,
        )
    });
    Plan {
        actions: stamp_last(desired, upserts, deletes, observed, &waiting),
        orphans,
        kept,
        kept_adopted,
        waiting,
        quotas,
        data,
    }
}

/// Each tenant's actions in order: its stamp cleared (when the plan
/// changes a kind the stamp vouches for), its creates and updates, its
/// deletes, and its stamp written last, so that only a tenant whose
/// actions all went through carries the stamp of its desired state. A
/// tenant waiting for an index is not converged: its stamp is not written.
fn stamp_last(
    desired: &Desired,
    upserts: Vec<Action>,
    deletes: Vec<Action>,
    observed: &Observed,
    waiting: &[Waiting],
) -> Vec<Action> {
    let is_write = |a: &Action| a.address.kind == Kind::Stamp && a.change != Change::Delete;
    let (writes, upserts): (Vec<Action>, Vec<Action>) = upserts.into_iter().partition(is_write);
    let mut writes: BTreeMap<String, Action> = writes
        .into_iter()
        .map(|a| (a.address.tenant.clone(), a))
        .collect();
    let touched: BTreeSet<&str> = upserts
        .iter()
        .chain(&deletes)
        .filter(|a| observed.vouched.contains(&a.address.kind))
        .map(|a| a.address.tenant.as_str())
        .collect();
    let mut clears = Vec::new();
    for (address, have) in &observed.resources {
        let fingerprint = have.get(FINGERPRINT).unwrap_or(&Value::Null);
        // A tenant whose file is gone has its stamp deleted, first of its
        // deletes, instead.
        let Some(want) = desired.resources.get(address) else {
            continue;
        };
        if address.kind != Kind::Stamp
            || fingerprint.is_null()
            || !touched.contains(address.tenant.as_str())
        {
            continue;
        }
        clears.push(Action {
            address: address.clone(),
            change: Change::Update {
                fields: vec![FieldChange {
                    field: FINGERPRINT.into(),
                    from: fingerprint.clone(),
                    to: Value::Null,
                }],
            },
            attrs: Spec::Stamp(StampSpec { fingerprint: None }).attrs(),
            payload: Payload::None,
        });
        // Written again last, from the cleared state.
        if let Some(write) = writes.get_mut(&address.tenant) {
            if let Change::Update { fields } = &mut write.change {
                for f in fields {
                    f.from = Value::Null;
                }
            }
        } else {
            writes.insert(address.tenant.clone(), rewrite(address, want));
        }
    }
    for w in waiting {
        writes.remove(&w.tenant);
    }
    let phase = |a: &Action, p: u8| (a.address.tenant.clone(), p);
    let mut all: Vec<((String, u8), Action)> = clears
        .into_iter()
        .map(|a| (phase(&a, 0), a))
        .chain(upserts.into_iter().map(|a| (phase(&a, 1), a)))
        .chain(deletes.into_iter().map(|a| (phase(&a, 2), a)))
        .chain(writes.into_values().map(|a| (phase(&a, 3), a)))
        .collect();
    // Stable: the order within each tenant's phase stays.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.into_iter().map(|(_, a)| a).collect()
}

/// The write that puts back a stamp the plan clears though it matched.
fn rewrite(address: &Address, want: &Attrs) -> Action {
    Action {
        address: address.clone(),
        change: Change::Update {
            fields: vec![FieldChange {
                field: FINGERPRINT.into(),
                from: Value::Null,
                to: want.get(FINGERPRINT).cloned().unwrap_or(Value::Null),
            }],
        },
        attrs: want.clone(),
        payload: Payload::None,
    }
}

/// The action that makes a key stop working and keeps everything else.
fn disable(address: &Address, have: &Attrs) -> Action {
    let mut attrs = have.clone();
    attrs.insert(ENABLED.into(), Value::Bool(false));
    Action {
        address: address.clone(),
        change: Change::Update {
            fields: vec![FieldChange {
                field: ENABLED.into(),
                from: Value::Bool(true),
                to: Value::Bool(false),
            }],
        },
        attrs,
        payload: Payload::None,
    }
}

/// Takes the function updates of each tenant whose table lacks a desired
/// index, or has one still backfilling, out of `upserts`: a function that
/// searched through an index that is not ACTIVE would fail every such
/// search. New functions still go out (there is no older configuration to
/// keep serving with).
fn hold_for_indexes(
    desired: &Desired,
    observed: &Observed,
    in_scope: &dyn Fn(&str) -> bool,
    upserts: &mut Vec<Action>,
) -> Vec<Waiting> {
    let fields = |v: Option<&Value>| -> BTreeSet<String> {
        v.and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut waiting = Vec::new();
    for (address, want) in &desired.resources {
        if address.kind != Kind::Table || !in_scope(&address.tenant) {
            continue;
        }
        let Some(have) = observed.resources.get(address) else {
            // A new table comes with its indexes.
            continue;
        };
        let Some(building) = have.get(BACKFILLING) else {
            continue;
        };
        let mut wanted = fields(want.get(INDEXES));
        // The key is the table's own, never a secondary index.
        if let Some(Value::String(key)) = want.get(KEY) {
            wanted.remove(key);
        }
        let present = fields(have.get(INDEXES));
        let backfilling: Vec<String> = building
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|f| wanted.contains(*f))
            .map(str::to_owned)
            .collect();
        let to_create: Vec<String> = wanted.difference(&present).cloned().collect();
        if backfilling.is_empty() && to_create.is_empty() {
            continue;
        }
        let is_held = |a: &Action| {
            a.address.tenant == address.tenant
                && a.address.kind == Kind::Function
                && matches!(a.change, Change::Update { .. })
        };
        let held = upserts
            .iter()
            .filter(|a| is_held(a))
            .map(|a| a.address.clone())
            .collect();
        upserts.retain(|a| !is_held(a));
        waiting.push(Waiting {
            tenant: address.tenant.clone(),
            table: address.name.clone(),
            backfilling,
            to_create,
            held,
        });
    }
    waiting
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
                Change::Create if a.attrs.get(ADOPTED) == Some(&Value::Bool(true)) => (
                    "+",
                    "adopt: the existing table is taken over, not created".to_owned(),
                ),
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
        if !self.waiting.is_empty() {
            writeln!(
                f,
                "waiting for indexes (the functions keep their current configuration until every index is ACTIVE; apply --wait waits, or a later apply moves them):"
            )?;
            for w in &self.waiting {
                writeln!(f, "{} (table {})", w.tenant, w.table)?;
                for field in &w.backfilling {
                    writeln!(
                        f,
                        "  ~ {:<10} {} (backfilling)",
                        "index",
                        runtime::names::index(field)
                    )?;
                }
                for field in &w.to_create {
                    writeln!(
                        f,
                        "  + {:<10} {} (created by this apply, then backfilling)",
                        "index",
                        runtime::names::index(field)
                    )?;
                }
                for a in &w.held {
                    writeln!(
                        f,
                        "  = {:<10} {} (update held back)",
                        a.kind.as_str(),
                        a.name
                    )?;
                }
            }
        }
        if !self.data.is_empty() {
            writeln!(
                f,
                "stored items (what the field changes mean for them; apply changes no item):"
            )?;
            for d in &self.data {
                write!(f, "{d}")?;
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
        kept_list(f, "kept (deleting data needs --delete-data):", &self.kept)?;
        kept_list(
            f,
            "kept (adopted: apifactory did not make it; deleting it needs --delete-adopted-data as well):",
            &self.kept_adopted,
        )?;
        if let Some(q) = &self.quotas {
            write!(f, "{q}")?;
        }
        let held: usize = self.waiting.iter().map(|w| w.held.len()).sum();
        let indexes: usize = self
            .waiting
            .iter()
            .map(|w| w.backfilling.len() + w.to_create.len())
            .sum();
        let waiting = if self.waiting.is_empty() {
            String::new()
        } else {
            format!(
                " Waiting for {indexes} index(es); {held} function update(s) held back until they are ACTIVE."
            )
        };
        if self.actions.is_empty() {
            write!(f, "No changes.{waiting}")
        } else {
            write!(
                f,
                "Plan: {} to create, {} to change, {} to delete.{waiting}",
                self.count(|c| matches!(c, Change::Create)),
                self.count(|c| matches!(c, Change::Update { .. })),
                self.count(|c| matches!(c, Change::Delete))
            )
        }
    }
}

/// The plans checked against golden files, for both targets.
/// A list of kept resources under its heading; nothing when empty.
fn kept_list(f: &mut fmt::Formatter<'_>, heading: &str, kept: &[Address]) -> fmt::Result {
    if kept.is_empty() {
        return Ok(());
    }
    writeln!(f, "{heading}")?;
    for k in kept {
        writeln!(
            f,
            "  = {:<10} {} (tenant {})",
            k.kind.as_str(),
            k.name,
            k.tenant
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests;
