//! What the API stores and returns: a client's fields checked and completed
//! into a document, its size as DynamoDB counts it, and the item rendered
//! back.

use http::StatusCode;
use serde_json::{Map, Value};

use super::MAX_ITEM_BYTES;
use crate::field::{Auto, now_rfc3339};
use crate::problem::{FieldProblem, Problem};
use crate::store::Item;
use crate::tenant::Collection;

/// JSON merge patch (RFC 7386) of the client's fields onto the stored ones.
pub(super) fn merge_patch(
    mut doc: Map<String, Value>,
    patch: Map<String, Value>,
) -> Map<String, Value> {
    for (k, v) in patch {
        if v.is_null() {
            doc.remove(&k);
        } else {
            doc.insert(k, v);
        }
    }
    doc
}

/// Checks a client's fields and completes them into a stored document:
/// unknown fields and bad values are 400s listing every problem; defaults
/// fill missing fields; `auto` fields are the server's (a client's value is
/// ignored). `current` is the stored document on an update.
pub(super) fn complete(
    c: &Collection,
    fields: Map<String, Value>,
    current: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, Problem> {
    let mut problems = Vec::new();
    let mut doc = Map::new();
    let mut invalid = Vec::new();
    for (name, value) in fields {
        let Some(field) = c.field(&name) else {
            problems.push(FieldProblem::new(
                &name,
                format!("is not a field of {}", c.name),
            ));
            continue;
        };
        if field.auto.is_some() || value.is_null() {
            continue;
        }
        match field.check(&value) {
            Ok(()) => {
                doc.insert(name, value);
            }
            Err(e) => {
                problems.push(FieldProblem::new(&name, e));
                invalid.push(name);
            }
        }
    }
    let now = now_rfc3339();
    for field in &c.fields {
        if doc.contains_key(&field.name) || invalid.contains(&field.name) {
            continue;
        }
        match field.auto {
            Some(Auto::Create) => {
                let kept = current.and_then(|d| d.get(&field.name)).cloned();
                doc.insert(
                    field.name.clone(),
                    kept.unwrap_or_else(|| Value::String(now.clone())),
                );
            }
            Some(Auto::Update) => {
                doc.insert(field.name.clone(), Value::String(now.clone()));
            }
            None => {
                if let Some(default) = &field.default {
                    doc.insert(field.name.clone(), default.clone());
                } else if field.required {
                    problems.push(FieldProblem::new(&field.name, "is required"));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(doc)
    } else {
        problems.sort_by(|a, b| a.field.cmp(&b.field));
        Err(Problem::invalid(problems))
    }
}

/// The size DynamoDB would count for the item: attribute names plus values.
pub fn item_size(c: &Collection, item: &Item) -> usize {
    fn value_size(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len(),
            Value::Number(n) => n.to_string().len().div_ceil(2) + 1,
            Value::Bool(_) | Value::Null => 1,
            Value::Array(a) => 3 + a.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
            Value::Object(m) => {
                3 + m
                    .iter()
                    .map(|(k, v)| 1 + k.len() + value_size(v))
                    .sum::<usize>()
            }
        }
    }
    c.key.len()
        + item.id.len()
        + "_rev".len()
        + item.rev.len()
        + item
            .doc
            .iter()
            .map(|(k, v)| k.len() + value_size(v))
            .sum::<usize>()
}

pub(super) fn check_size(c: &Collection, item: &Item) -> Result<(), Problem> {
    let size = item_size(c, item);
    if size > MAX_ITEM_BYTES {
        Err(too_large(size))
    } else {
        Ok(())
    }
}

pub(super) fn too_large(size: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the item would be {size} bytes; an item may be at most {MAX_ITEM_BYTES} bytes"),
    )
}

/// The item as clients see it: the key, then its declared fields.
/// Serialized straight from the stored item, without building a copy of
/// it. Two things make a stored item differ from what a client sees after
/// its tenant file changed: a field no longer declared keeps its stored
/// value (so declaring it again brings it back) but is not shown, and a
/// declared field the item lacks shows its `default`, as if the item were
/// written now (so a new required field with a default never strands the
/// items stored before it).
pub(super) struct Rendered<'a> {
    pub c: &'a Collection,
    pub item: &'a Item,
}

impl serde::Serialize for Rendered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let c = self.c;
        let key = c.key.as_str();
        let doc = &self.item.doc;
        let shown = |k: &str| k != key && c.field(k).is_some();
        let filled = || {
            c.fields.iter().filter_map(|f| match &f.default {
                Some(d) if !doc.contains_key(&f.name) => Some((&f.name, d)),
                _ => None,
            })
        };
        let len = 1 + doc.keys().filter(|k| shown(k)).count() + filled().count();
        let mut map = s.serialize_map(Some(len))?;
        // A stored document never holds the key; if one did, its value
        // would stand in the key's place, as it always has.
        match doc.get(key) {
            Some(v) => map.serialize_entry(key, v)?,
            None => map.serialize_entry(key, &self.item.id)?,
        }
        for (k, v) in doc.iter().filter(|(k, _)| shown(k)) {
            map.serialize_entry(k, v)?;
        }
        for (k, v) in filled() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The stored values of fields the collection no longer declares: kept
/// through every write, so removing a field from a tenant file (and adding
/// it back) never loses data.
pub(super) fn undeclared(c: &Collection, doc: &Map<String, Value>) -> Map<String, Value> {
    doc.iter()
        .filter(|(k, _)| c.field(k).is_none())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A page of a search.
#[derive(serde::Serialize)]
pub(super) struct PageBody<'a> {
    pub items: Vec<Rendered<'a>>,
    pub next: Option<String>,
}
