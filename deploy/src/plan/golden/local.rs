//! Observed states as the local target reports them: the files really
//! applied to a `LocalTarget` in a temporary directory, the hand edits made
//! through its state, then observed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Edit, NOW, Scenario, desired_of};
use crate::apply::{Quiet, apply};
use crate::local::state::LocalState;
use crate::local::target::LocalTarget;
use crate::plan::{Observed, Options, plan};
use crate::resource::{Address, Kind};
use crate::target::Target;

pub async fn observed(files: &BTreeMap<String, String>, s: &Scenario) -> Observed {
    let dir = tempfile::tempdir().unwrap();
    let state = LocalState::open(dir.path()).await.unwrap();
    let target = Arc::new(LocalTarget::new(state.clone()));
    if !s.fresh {
        let d = desired_of(files);
        let all = BTreeSet::new();
        let p = plan(
            &d,
            &target.observe(&all).await.unwrap(),
            &Options::default(),
        );
        let report = apply(&p, target.clone(), 4, Arc::new(Quiet)).await;
        assert!(report.ok(), "{report}");
    }
    for edit in s.edits {
        edit_by_hand(&state, *edit).await;
    }
    target.observe(&BTreeSet::new()).await.unwrap()
}

async fn edit_by_hand(state: &LocalState, edit: Edit) {
    match edit {
        Edit::Set {
            tenant,
            kind,
            name,
            field,
            value,
        } => {
            assert!(
                kind != Kind::ApiKey && kind != Kind::Function,
                "keys and functions are not edited by hand locally"
            );
            let address = Address::new(tenant, kind, name);
            let mut have =
                state.resources(&[tenant.to_owned()].into()).await.unwrap()[&address].clone();
            have.insert(field.into(), serde_json::from_str(value).unwrap());
            state.put(&address, &have, None).await.unwrap();
        }
        Edit::Delete { tenant, kind, name } => {
            if kind == Kind::ApiKey {
                assert!(state.delete_key(name).await.unwrap(), "no key {name}");
            } else {
                state
                    .remove(&Address::new(tenant, kind, name))
                    .await
                    .unwrap();
            }
        }
        Edit::Rotate { tenant, client } => {
            let name = runtime::names::api_key(tenant, client);
            let keys = state.keys().await.unwrap();
            let old = keys.iter().find(|k| k.name == name).expect("the key");
            state.rotate_key(&old.id, NOW - 3600).await.unwrap();
        }
        Edit::DuplicateApi { .. } | Edit::Backfilling { .. } => {
            panic!("{edit:?}: the local target has no such state (an AWS-only scenario)")
        }
    }
}
