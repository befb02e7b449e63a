//! A target in memory, for the planner's unit tests: apply a plan to it,
//! observe again, and the next plan must be empty.

use std::collections::BTreeSet;

use super::{Applied, Target};
use crate::plan::{Action, Observed};

/// Keeps planner tests fast and free of any real target.
#[derive(Debug, Default)]
pub struct MemoryTarget {
    pub resources: std::sync::Mutex<crate::plan::Observed>,
    /// Fail any action on this address (to test partial failure).
    pub fail_on: Option<crate::resource::Address>,
}

impl Target for MemoryTarget {
    async fn observe(&self, tenants: &BTreeSet<String>) -> anyhow::Result<Observed> {
        let all = self
            .resources
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        Ok(Observed {
            resources: all
                .resources
                .iter()
                .filter(|(a, _)| tenants.is_empty() || tenants.contains(&a.tenant))
                .map(|(a, v)| (a.clone(), v.clone()))
                .collect(),
            vouched: all.vouched.clone(),
            account: all.account.clone(),
        })
    }

    async fn apply(&self, action: &Action) -> anyhow::Result<Applied> {
        if self.fail_on.as_ref() == Some(&action.address) {
            anyhow::bail!("injected failure");
        }
        let mut all = self
            .resources
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        match action.change {
            crate::plan::Change::Delete => {
                all.resources.remove(&action.address);
            }
            _ => {
                all.resources
                    .insert(action.address.clone(), action.attrs.clone());
            }
        }
        Ok(Applied::default())
    }
}
