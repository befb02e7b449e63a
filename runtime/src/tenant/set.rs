//! The tenant files of a directory, and the rules across them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Tenant;
use crate::names;
use crate::tenant_error::{Source, TenantError, TenantErrors};

/// Reads every `*.toml` file in a directory, checks each, then checks the
/// set (no two tenants may claim the same domain). Returns the tenants sorted
/// by id, or every problem found in every file.
pub fn load_dir(dir: &Path) -> Result<Vec<Tenant>, TenantErrors> {
    let entries = std::fs::read_dir(dir).map_err(|e| TenantError {
        path: dir.to_owned(),
        line: 0,
        column: 0,
        key: String::new(),
        expected: "a directory of tenant files".into(),
        found: e.to_string(),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    let mut tenants = Vec::new();
    let mut errors = Vec::new();
    for path in &paths {
        match Tenant::load(path) {
            Ok(t) => tenants.push(t),
            Err(e) => errors.extend(e.0),
        }
    }
    errors.extend(check_set(&tenants).0);
    if errors.is_empty() {
        Ok(tenants)
    } else {
        Err(TenantErrors(errors))
    }
}

/// Rules across tenants: each custom domain and each derived AWS resource
/// name belongs to one tenant only.
pub fn check_set(tenants: &[Tenant]) -> TenantErrors {
    let mut errors = Vec::new();
    let mut domains: BTreeMap<&str, &Tenant> = BTreeMap::new();
    let mut resource_names: BTreeMap<String, &Tenant> = BTreeMap::new();
    for t in tenants {
        if let Some(d) = &t.domain {
            if let Some(other) = domains.get(d.name.as_str()) {
                let text = std::fs::read_to_string(&t.path).unwrap_or_default();
                let src = Source::new(&t.path, &text);
                errors.push(src.key(
                    "domain.name",
                    "a domain no other tenant claims",
                    format!("{:?}, already claimed by {}", d.name, other.path.display()),
                ));
            } else {
                domains.insert(&d.name, t);
            }
        }
        for name in names_of(t) {
            if let Some(other) = resource_names.get(&name)
                && other.id != t.id
            {
                errors.push(TenantError {
                    path: t.path.clone(),
                    line: 0,
                    column: 0,
                    key: String::new(),
                    expected: "resource names no other tenant uses".into(),
                    found: format!("{name:?}, also derived from {}", other.path.display()),
                });
            } else {
                resource_names.insert(name, t);
            }
        }
    }
    TenantErrors(errors)
}

/// Every name a tenant's resources take, for clash checks.
fn names_of(t: &Tenant) -> Vec<String> {
    let mut names = vec![
        t.collection.table_name(&t.id),
        names::role(&t.id),
        names::rest_api(&t.id),
    ];
    for op in &t.functions.operations {
        names.push(names::function(&t.id, *op));
    }
    for c in &t.clients {
        names.push(names::api_key(&t.id, &c.name));
    }
    names
}
