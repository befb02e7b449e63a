//! What an action's apply needs beyond the attributes the plan compares:
//! decided with the desired state (`desired.rs`), carried by each create
//! and update, so that a target applies an action without the desired
//! state of the whole run. Never shown: the plan's text and JSON are what a
//! person reviews, and these are large (a REST API's document).

use std::sync::Arc;

use runtime::schema::TableSchema;

#[derive(Debug, Clone, Default, PartialEq)]
pub enum Payload {
    /// The attributes say it all (roles, log groups, stages, usage plans,
    /// keys, domains, stamps, and every delete).
    #[default]
    None,
    /// The table's key and indexes, as the function's store queries them.
    Table(TableSchema),
    /// What the function ships with besides the runtime: its tenant's file
    /// in package form (`tenants::package_source`), shared by the tenant's
    /// functions.
    Function { source: Arc<str> },
    /// The REST API's import document as rendered for any account (what
    /// its `definition_sha256` is of; `openapi::bind` names the target's
    /// account in its integrations), and the functions it invokes.
    Api {
        document: Arc<str>,
        functions: Vec<String>,
    },
}

impl Payload {
    pub fn table(&self) -> Option<&TableSchema> {
        match self {
            Payload::Table(schema) => Some(schema),
            _ => None,
        }
    }

    pub fn source(&self) -> Option<&str> {
        match self {
            Payload::Function { source } => Some(source),
            _ => None,
        }
    }

    /// The document and the functions of a REST API.
    pub fn api(&self) -> Option<(&str, &[String])> {
        match self {
            Payload::Api {
                document,
                functions,
            } => Some((document, functions)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use runtime::Tenant;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::desired::{Code, desired, functions, hex};
    use crate::plan::{Change, Observed, Options, plan};
    use crate::resource::Kind;

    struct SourceHash;
    impl Code for SourceHash {
        fn sha256(&self, _: &Tenant, source: &str) -> String {
            hex(&Sha256::digest(source.as_bytes()))
        }
    }

    /// A create or update carries what its apply needs, taken from the
    /// tenant it is for; a delete, and every kind whose attributes say it
    /// all, carries nothing; and the plan's JSON shows none of it.
    #[test]
    fn the_plan_hands_each_action_what_its_apply_needs() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tenants");
        let mut tenants = BTreeMap::new();
        let mut sources = BTreeMap::new();
        for id in ["acme", "clinic"] {
            let path = dir.join(format!("{id}.toml"));
            let text = std::fs::read_to_string(&path).unwrap();
            sources.insert(
                id.to_owned(),
                crate::tenants::package_source(&text).unwrap(),
            );
            tenants.insert(id.to_owned(), Tenant::load(&path).unwrap());
        }
        let list: Vec<Tenant> = tenants.values().cloned().collect();
        let d = desired(&list, &sources, &SourceHash);
        let p = plan(&d, &Observed::default(), &Options::default());
        assert!(!p.is_empty());
        let (mut tables, mut functions_seen, mut apis) = (0, 0, 0);
        for a in &p.actions {
            let t = &tenants[&a.address.tenant];
            match a.address.kind {
                Kind::Table => {
                    tables += 1;
                    assert_eq!(a.payload.table(), Some(&TableSchema::of(&t.collection)));
                }
                Kind::Function => {
                    functions_seen += 1;
                    assert_eq!(a.payload.source(), Some(sources[&t.id].as_str()));
                }
                Kind::Api => {
                    apis += 1;
                    let (document, invoked) = a.payload.api().unwrap();
                    assert_eq!(
                        a.attrs[crate::spec::DEFINITION_SHA256],
                        hex(&Sha256::digest(document.as_bytes()))
                    );
                    let names: Vec<String> = functions(t).map(|(_, f)| f).collect();
                    assert_eq!(invoked, names.as_slice());
                }
                _ => assert_eq!(a.payload, Payload::None, "{}", a.address),
            }
            let json = serde_json::to_value(a).unwrap();
            assert!(json.get("payload").is_none(), "{json}");
        }
        assert_eq!((tables, functions_seen, apis), (2, 9, 2));

        // Everything gone: the deletes carry nothing.
        let observed = Observed {
            resources: d.resources.clone(),
            ..Observed::default()
        };
        let opts = Options {
            prune: true,
            delete_data: true,
            ..Options::default()
        };
        let p = plan(&Default::default(), &observed, &opts);
        assert!(p.actions.iter().all(|a| a.change == Change::Delete));
        assert!(p.actions.iter().all(|a| a.payload == Payload::None));
    }
}
