//! Drift: every attribute apifactory sets that differs from the tenant
//! files, read from a refresh plan (one that trusted no stamp). Pure: the
//! report is derived from the plan alone, so it says exactly what
//! `apply --refresh` would repair.
//!
//! - an update is one line per changed attribute: expected (the files),
//!   found (the target);
//! - a missing resource (the plan creates it) is the attribute `exists`,
//!   expected `true`, found `false`;
//! - one more than the files declare (the plan deletes or disables it, or
//!   it belongs to a tenant whose file is gone) is `exists`, expected
//!   `false`, found `true`; a removed client's key the plan only disables
//!   shows as `enabled` instead;
//! - a function update held back while a new index backfills is the
//!   attribute `held` (its fields show once the index is ACTIVE);
//! - a tenant's stamp is apifactory's own bookkeeping, not something the
//!   files set: it is never drift.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::plan::{Change, Plan};
use crate::resource::{Address, Kind};
use crate::spec::EXISTS;

/// One attribute that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub tenant: String,
    pub kind: Kind,
    pub name: String,
    pub attribute: String,
    pub expected: Value,
    pub found: Value,
}

/// Everything that differs, in plan order (by tenant, then dependency
/// order), then the orphans.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Drift {
    pub differences: Vec<Difference>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.differences.is_empty()
    }
}

fn difference(a: &Address, attribute: &str, expected: Value, found: Value) -> Difference {
    Difference {
        tenant: a.tenant.clone(),
        kind: a.kind,
        name: a.name.clone(),
        attribute: attribute.to_owned(),
        expected,
        found,
    }
}

/// The drift a refresh plan shows.
pub fn drift(plan: &Plan) -> Drift {
    let mut differences = Vec::new();
    for action in plan
        .actions
        .iter()
        .filter(|a| a.address.kind != Kind::Stamp)
    {
        let a = &action.address;
        match &action.change {
            Change::Create => {
                differences.push(difference(a, EXISTS, Value::Bool(true), Value::Bool(false)))
            }
            Change::Delete => {
                differences.push(difference(a, EXISTS, Value::Bool(false), Value::Bool(true)))
            }
            Change::Update { fields } => differences.extend(
                fields
                    .iter()
                    .map(|f| difference(a, &f.field, f.to.clone(), f.from.clone())),
            ),
        }
    }
    // Held back only until an index is ACTIVE: still what differs.
    for w in &plan.waiting {
        for a in &w.held {
            differences.push(difference(
                a,
                "held",
                Value::String("the functions' configuration".into()),
                Value::String(format!("waiting for the indexes of {}", w.table)),
            ));
        }
    }
    for a in plan.orphans.iter().filter(|a| a.kind != Kind::Stamp) {
        differences.push(difference(a, EXISTS, Value::Bool(false), Value::Bool(true)));
    }
    Drift { differences }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.differences.is_empty() {
            return writeln!(f, "No drift: the target matches the tenant files.");
        }
        let mut tenant = "";
        for d in &self.differences {
            if d.tenant != tenant {
                tenant = &d.tenant;
                writeln!(f, "{tenant}")?;
            }
            writeln!(
                f,
                "  {:<10} {}  {}: expected {}, found {}",
                d.kind.as_str(),
                d.name,
                d.attribute,
                text(&d.expected),
                text(&d.found)
            )?;
        }
        writeln!(f, "{} difference(s)", self.differences.len())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::{Action, FieldChange};
    use crate::resource::attrs;

    fn action(kind: Kind, name: &str, change: Change) -> Action {
        Action {
            address: Address::new("acme", kind, name),
            change,
            attrs: attrs([]),
            payload: Default::default(),
        }
    }

    #[test]
    fn every_changed_attribute_missing_and_extra_resource_is_drift_but_no_stamp() {
        let plan = Plan {
            actions: vec![
                action(
                    Kind::Stamp,
                    "acme",
                    Change::Update {
                        fields: vec![FieldChange {
                            field: "fingerprint".into(),
                            from: json!("a"),
                            to: Value::Null,
                        }],
                    },
                ),
                action(Kind::Table, "apifactory-acme", Change::Create),
                action(
                    Kind::LogGroup,
                    "/aws/lambda/apifactory-acme-get",
                    Change::Update {
                        fields: vec![FieldChange {
                            field: "retention_days".into(),
                            from: json!(1),
                            to: json!(14),
                        }],
                    },
                ),
                action(Kind::Stage, "old", Change::Delete),
            ],
            orphans: vec![Address::new(
                "gone",
                Kind::Role,
                "apifactory-gone-functions",
            )],
            ..Plan::default()
        };
        let d = drift(&plan);
        let lines: Vec<(&str, &str, Value, Value)> = d
            .differences
            .iter()
            .map(|d| {
                (
                    d.name.as_str(),
                    d.attribute.as_str(),
                    d.expected.clone(),
                    d.found.clone(),
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                ("apifactory-acme", EXISTS, json!(true), json!(false)),
                (
                    "/aws/lambda/apifactory-acme-get",
                    "retention_days",
                    json!(14),
                    json!(1)
                ),
                ("old", EXISTS, json!(false), json!(true)),
                (
                    "apifactory-gone-functions",
                    EXISTS,
                    json!(false),
                    json!(true)
                ),
            ]
        );
        let text = d.to_string();
        assert!(
            text.contains("retention_days: expected 14, found 1"),
            "{text}"
        );
        assert!(text.ends_with("4 difference(s)\n"), "{text}");
        assert!(drift(&Plan::default()).is_empty());
    }
}
