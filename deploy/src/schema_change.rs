//! What a change of a tenant's fields means for the items already stored:
//! the fields added, changed, removed and newly indexed (the deployed
//! tenant file against the new one), and for each, how many stored items
//! it concerns, with a few of their ids.
//!
//! Why: apply changes the functions, never the stored items, so a new
//! required field or a tighter rule would otherwise leave items that no
//! longer validate, found only when a client's write of one is refused.
//! The items are checked with the runtime's own [`Field::check`], so the
//! plan and the API agree on what is invalid.
//!
//! Where the items are read: the local target's database, every plan (a
//! local read is cheap); on AWS only with `--check-data` (a paced Scan of
//! the whole table, which costs read capacity: see `aws::scan`), and the
//! plan says the items were not checked otherwise. On AWS the deployed
//! file is not read back (it ships inside the functions' packages), so a
//! check there holds every item to every rule of the new file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use runtime::field::{Field, Kind, StringRules};
use runtime::tenant::Collection;
use runtime::{StoreError, Tenant};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::local::LocalState;

/// Ids shown per finding: enough to find the items, few enough to read.
pub const EXAMPLES: usize = 3;

/// What happened to a field between the deployed file and the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    Added,
    /// Its type or rules differ.
    Changed,
    /// Gone from the file: stored values stay, unseen.
    Removed,
    /// A new secondary index on it.
    Indexed,
    /// Held to every rule of the new file (the deployed file unknown).
    Checked,
}

/// One field's change and what it means for the stored items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub field: String,
    pub what: What,
    /// The rules that differ, `rule: old -> new` (empty when not known).
    pub rules: String,
    /// Stored items that break the new rules.
    pub invalid: u64,
    /// The first few of them, by id.
    pub examples: Vec<String>,
    /// What the first of them breaks, as the API would say it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Stored items without the field that read as its `default`.
    pub filled: u64,
    /// Items holding a value of it: kept unseen (removed), or entries of
    /// the new index (indexed).
    pub holding: u64,
}

/// What a tenant's change means for its stored items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredData {
    pub tenant: String,
    /// Items read; `None` when they were not read (AWS without
    /// `--check-data`), and the findings are then the changes alone.
    pub checked: Option<u64>,
    pub findings: Vec<Finding>,
}

impl StoredData {
    /// Why applying this change would strand stored items, if it would:
    /// every finding with invalid items, one line each.
    pub fn refusal(&self) -> Option<String> {
        let lines: Vec<String> = self
            .findings
            .iter()
            .filter(|f| f.invalid > 0)
            .map(|f| format!("{}: {}", self.tenant, f.line()))
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

/// Why an apply is refused, over every tenant: `None` when nothing is.
pub fn refusal(data: &[StoredData]) -> Option<String> {
    let lines: Vec<String> = data.iter().filter_map(StoredData::refusal).collect();
    if lines.is_empty() {
        return None;
    }
    Some(format!(
        "stored items would no longer validate; nothing was changed:\n{}\n\
         Fix those items, give a new required field a `default` (filled in when an item is read or written), \
         or apply with --allow-invalid-data (such items keep reading as stored; a write of one is refused until it is fixed)",
        lines.join("\n")
    ))
}

impl Finding {
    fn new(field: &str, what: What, rules: String) -> Finding {
        Finding {
            field: field.to_owned(),
            what,
            rules,
            invalid: 0,
            examples: Vec::new(),
            problem: None,
            filled: 0,
            holding: 0,
        }
    }

    /// The finding in one line, after its sign and kind.
    fn line(&self) -> String {
        let rules = if self.rules.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.rules)
        };
        let mut parts = Vec::new();
        if self.invalid > 0 {
            parts.push(format!(
                "{} stored item(s) break it, e.g. {}{}",
                self.invalid,
                self.examples.join(", "),
                self.problem
                    .as_ref()
                    .map(|p| format!(" ({} {p})", self.field))
                    .unwrap_or_default()
            ));
        }
        if self.filled > 0 {
            parts.push(format!(
                "{} stored item(s) lack it and read as its default",
                self.filled
            ));
        }
        match self.what {
            What::Removed => parts.push(format!(
                "{} stored item(s) keep their value, which the API no longer returns",
                self.holding
            )),
            What::Indexed => parts.push(format!(
                "built over the stored items ({} hold the field) before the functions search it",
                self.holding
            )),
            _ if parts.is_empty() => parts.push("every stored item is valid".to_owned()),
            _ => {}
        }
        format!("{}{rules}: {}", self.field, parts.join("; "))
    }
}

impl fmt::Display for StoredData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.checked {
            None => writeln!(
                f,
                "{}: stored items not checked (use --check-data: a Scan reads the whole table, which costs read capacity)",
                self.tenant
            )?,
            Some(n) => writeln!(f, "{}: {n} stored item(s) read", self.tenant)?,
        }
        for finding in &self.findings {
            let (sign, kind) = match finding.what {
                What::Added => ("+", "field"),
                What::Changed | What::Checked => ("~", "field"),
                What::Removed => ("-", "field"),
                What::Indexed => ("+", "index"),
            };
            if self.checked.is_none() {
                let rules = if finding.rules.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", finding.rules)
                };
                writeln!(f, "  {sign} {kind:<10} {}{rules}", finding.field)?;
            } else {
                writeln!(f, "  {sign} {kind:<10} {}", finding.line())?;
            }
        }
        Ok(())
    }
}

/// The rules of a field by name, as text, for comparing two declarations
/// and saying what differs.
fn rules(field: &Field) -> BTreeMap<String, String> {
    let mut r = BTreeMap::new();
    r.insert("type".to_owned(), field.kind.name().to_owned());
    if field.required {
        r.insert("required".to_owned(), "true".to_owned());
    }
    if field.index {
        r.insert("index".to_owned(), "true".to_owned());
    }
    if let Some(d) = &field.default {
        r.insert("default".to_owned(), d.to_string());
    }
    if let Some(a) = field.auto {
        r.insert("auto".to_owned(), format!("{a:?}").to_lowercase());
    }
    let string = |r: &mut BTreeMap<String, String>, prefix: &str, s: &StringRules| {
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                r.insert(format!("{prefix}{k}"), v);
            }
        };
        put("min_length", s.min_length.map(|n| n.to_string()));
        put("max_length", s.max_length.map(|n| n.to_string()));
        put(
            "pattern",
            s.pattern.as_ref().map(|p| format!("{:?}", p.source)),
        );
        put("enum", s.allowed.as_ref().map(|a| format!("{a:?}")));
        put("format", s.format.map(|f| f.name().to_owned()));
    };
    match &field.kind {
        Kind::String(s) => string(&mut r, "", s),
        Kind::Integer { min, max } => {
            put(&mut r, "min", *min);
            put(&mut r, "max", *max);
        }
        Kind::Number { min, max } => {
            put(&mut r, "min", *min);
            put(&mut r, "max", *max);
        }
        Kind::StringList { max_items, item } => {
            put(&mut r, "max_items", *max_items);
            string(&mut r, "items.", item);
        }
        Kind::Boolean | Kind::Timestamp => {}
    }
    r
}

fn put(r: &mut BTreeMap<String, String>, name: &str, value: Option<impl ToString>) {
    if let Some(v) = value {
        r.insert(name.to_owned(), v.to_string());
    }
}

/// `rule: old -> new` for each rule that differs (`-` for none).
fn differences(old: &Field, new: &Field) -> Vec<String> {
    let (a, b) = (rules(old), rules(new));
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let side = |m: &BTreeMap<String, String>| m.get(k).cloned().unwrap_or("-".into());
            format!("{k}: {} -> {}", side(&a), side(&b))
        })
        .collect()
}

/// The changes from the deployed collection to the new one, in the new
/// file's field order, removed fields last. `None` for the deployed one
/// holds every field to every rule ([`What::Checked`]).
pub fn compare(old: Option<&Collection>, new: &Collection) -> Vec<Finding> {
    let Some(old) = old else {
        return new
            .fields
            .iter()
            .map(|f| Finding::new(&f.name, What::Checked, String::new()))
            .collect();
    };
    let mut out = Vec::new();
    for f in &new.fields {
        match old.field(&f.name) {
            None => {
                let mut said: Vec<String> = rules(f)
                    .into_iter()
                    .filter(|(k, _)| k != "type")
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                said.insert(0, f.kind.name().to_owned());
                out.push(Finding::new(&f.name, What::Added, said.join(", ")));
                if f.index {
                    out.push(Finding::new(&f.name, What::Indexed, String::new()));
                }
            }
            Some(o) => {
                let diff = differences(o, f);
                // A rule dropped breaks nothing (an index dropped takes its
                // implied min_length 1 along), except a default: items
                // without the field then lack a required value.
                let tightens = |d: &String| !d.ends_with("-> -") || d.starts_with("default:");
                if diff.iter().any(tightens) {
                    out.push(Finding::new(&f.name, What::Changed, diff.join(", ")));
                }
                if f.index && !o.index {
                    out.push(Finding::new(&f.name, What::Indexed, String::new()));
                }
            }
        }
    }
    for o in &old.fields {
        if new.field(&o.name).is_none() {
            out.push(Finding::new(&o.name, What::Removed, String::new()));
        }
    }
    out
}

/// Counts, over stored items, what each finding means for them: one pass,
/// any number of items, on any target.
#[derive(Debug, Clone)]
pub struct Tally {
    new: Collection,
    pub findings: Vec<Finding>,
    pub items: u64,
}

impl Tally {
    pub fn new(new: &Collection, findings: Vec<Finding>) -> Tally {
        Tally {
            new: new.clone(),
            findings,
            items: 0,
        }
    }

    /// The stored fields a check needs (the rest of an item can stay
    /// unread): every finding's field.
    pub fn fields(&self) -> BTreeSet<String> {
        self.findings.iter().map(|f| f.field.clone()).collect()
    }

    /// Counts one stored item.
    pub fn add(&mut self, id: &str, doc: &Map<String, Value>) {
        self.items += 1;
        for finding in &mut self.findings {
            let value = doc.get(&finding.field).filter(|v| !v.is_null());
            match finding.what {
                What::Removed | What::Indexed => {
                    finding.holding += u64::from(value.is_some());
                }
                What::Added | What::Changed | What::Checked => {
                    let Some(field) = self.new.field(&finding.field) else {
                        continue;
                    };
                    let problem = match value {
                        Some(v) => field.check(v).err(),
                        None if field.auto.is_some() => None,
                        None if field.default.is_some() => {
                            finding.filled += 1;
                            None
                        }
                        None if field.required => Some("is required".to_owned()),
                        None => None,
                    };
                    if let Some(p) = problem {
                        finding.invalid += 1;
                        note(finding, id, p);
                    }
                }
            }
        }
    }

    /// Adds another tally of the same findings (a parallel Scan's segment).
    pub fn merge(&mut self, other: Tally) {
        self.items += other.items;
        for (mine, theirs) in self.findings.iter_mut().zip(other.findings) {
            mine.invalid += theirs.invalid;
            mine.filled += theirs.filled;
            mine.holding += theirs.holding;
            // Their problem is their first example's.
            for (i, id) in theirs.examples.iter().enumerate() {
                let problem = match i {
                    0 => theirs.problem.clone().unwrap_or_default(),
                    _ => String::new(),
                };
                note(mine, id, problem);
            }
        }
    }

    /// The result: on AWS's check without the deployed file, only the
    /// fields some item breaks or reads filled.
    pub fn done(self, tenant: &str) -> StoredData {
        let findings = self
            .findings
            .into_iter()
            .filter(|f| f.what != What::Checked || f.invalid > 0 || f.filled > 0)
            .collect();
        StoredData {
            tenant: tenant.to_owned(),
            checked: Some(self.items),
            findings,
        }
    }
}

/// Keeps the smallest ids as examples (whatever order the items came in:
/// the same on every target and every run), with the problem of the first.
fn note(finding: &mut Finding, id: &str, problem: String) {
    if finding.examples.iter().any(|e| e == id) {
        return;
    }
    let at = finding.examples.partition_point(|e| e.as_str() < id);
    if at >= EXAMPLES {
        return;
    }
    if at == 0 && !problem.is_empty() {
        finding.problem = Some(problem);
    }
    finding.examples.insert(at, id.to_owned());
    finding.examples.truncate(EXAMPLES);
}

/// The local target: for each tenant whose fields differ from the ones its
/// deployed functions ship with, the stored items counted against the
/// change. A tenant not deployed yet has no items to strand.
pub async fn local(state: &LocalState, tenants: &[Tenant]) -> anyhow::Result<Vec<StoredData>> {
    let mut out = Vec::new();
    for t in tenants {
        let Some(old) = deployed(state, &t.id).await? else {
            continue;
        };
        let findings = compare(Some(&old.collection), &t.collection);
        if findings.is_empty() {
            continue;
        }
        let tally = Tally::new(&t.collection, findings);
        let tally = state
            .database()
            .each_item(&t.collection.table_name(&t.id), tally, |tally, id, doc| {
                tally.add(id, &doc)
            })
            .await?;
        out.push(tally.done(&t.id));
    }
    Ok(out)
}

/// `up`'s apply, held to `apply`'s rule: an error naming the stored
/// items the tenants' changes would leave invalid (`up` has no
/// `--allow-invalid-data`; `apply` has).
pub async fn guard(state: &LocalState, tenants: &[Tenant]) -> anyhow::Result<()> {
    match refusal(&local(state, tenants).await?) {
        Some(why) => Err(anyhow::anyhow!("{why}")),
        None => Ok(()),
    }
}

/// The tenant as its deployed functions ship it (`None` when none is).
async fn deployed(state: &LocalState, tenant: &str) -> anyhow::Result<Option<Tenant>> {
    let id = tenant.to_owned();
    let source: Option<String> = state
        .database()
        .read(move |c| {
            use rusqlite::OptionalExtension;
            c.query_row(
                "SELECT payload FROM deployed WHERE tenant = ?1 AND kind = ?2 AND payload IS NOT NULL LIMIT 1",
                rusqlite::params![id, crate::resource::Kind::Function.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| StoreError::Backend(e.to_string()))
        })
        .await?;
    Ok(source.and_then(|s| Tenant::parse_package(Path::new(&format!("{tenant}.toml")), &s).ok()))
}

#[cfg(test)]
mod tests;
