//! Reading the tenant directory: the checked tenants and each file's text
//! (the text ships with the functions).

use std::collections::BTreeMap;
use std::path::Path;

use runtime::Tenant;
use runtime::tenant::load_dir;
use sha2::{Digest, Sha256};

/// The tenants of a directory, checked as a set, with the tenant file
/// each one's functions ship with.
#[derive(Debug, Clone, Default)]
pub struct TenantSet {
    pub tenants: Vec<Tenant>,
    /// By tenant id: `package_source` of its file.
    pub sources: BTreeMap<String, String>,
}

impl TenantSet {
    /// Every tenant file of `dir`, or every problem in them.
    pub fn load(dir: &Path) -> anyhow::Result<TenantSet> {
        let tenants = load_dir(dir)?;
        let mut sources = BTreeMap::new();
        for t in &tenants {
            sources.insert(
                t.id.clone(),
                package_source(&std::fs::read_to_string(&t.path)?)?,
            );
        }
        Ok(TenantSet { tenants, sources })
    }

    pub fn get(&self, id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }
}

/// The sections of a tenant file a function needs (`tenant`, `collection`,
/// `functions`) in a canonical form: comments, layout, key order, clients,
/// usage plan and domain do not reach it, so reformatting a file or
/// managing its clients never redeploys code.
pub fn package_source(text: &str) -> anyhow::Result<String> {
    let mut table: toml::Table = toml::from_str(text)?;
    table.retain(|k, _| ["tenant", "collection", "functions"].contains(&k));
    Ok(toml::to_string(&table)?)
}

/// A fingerprint of a tenant directory's `*.toml` files (names and
/// contents), to notice additions, edits and removals.
pub fn fingerprint(dir: &Path) -> String {
    let mut h = Sha256::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    for p in paths {
        h.update(p.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(std::fs::read(&p).unwrap_or_default());
        h.update([0]);
    }
    crate::desired::hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_ignores_layout_clients_and_plan() {
        let a = "# acme\n[tenant]\ndisplay_name = \"A\"\n[collection]\nname = \"x\"\n[collection.fields]\nb = { type = \"string\" }\na = { type = \"integer\" }\n[usage_plan]\nrate = 1\nburst = 1\n[[clients]]\nname = \"one\"\n[[clients]]\nname = \"two\"\n";
        let b = "[[clients]]\nname = \"two\"\n\n[usage_plan]\nrate = 9\nburst = 9\n\n[collection]\nname = \"x\"\n  [collection.fields]\n  a = { type = \"integer\" }\n  b = { type = \"string\" }\n\n[tenant]\ndisplay_name = \"A\"\n";
        assert_eq!(package_source(a).unwrap(), package_source(b).unwrap());
        let t = Tenant::parse_package(Path::new("x.toml"), &package_source(a).unwrap()).unwrap();
        assert!(t.clients.is_empty());
        assert_eq!(t.collection.fields.len(), 2);
    }
}
