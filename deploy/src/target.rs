//! What the planner needs from a place tenants are deployed to. The local
//! target and the AWS target both implement it; the planner never knows
//! which one it plans for.

use std::collections::BTreeSet;
use std::future::Future;

use serde::Serialize;

use crate::desired::Desired;
use crate::plan::{Action, Observed};

/// An API key value created by an action: shown once, never stored in the
/// clear by apifactory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Secret {
    pub tenant: String,
    pub client: String,
    pub id: String,
    pub value: String,
}

/// The result of one action.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub secret: Option<Secret>,
}

pub trait Target: Send + Sync + 'static {
    /// Reads what exists for these tenants, or for every tenant apifactory
    /// manages there when the set is empty. Side-effect free.
    fn observe(
        &self,
        tenants: &BTreeSet<String>,
    ) -> impl Future<Output = anyhow::Result<Observed>> + Send;

    /// Carries out one action of a plan. Idempotent: an action interrupted
    /// and run again, or run against a resource that already matches, ends
    /// in the same state and creates nothing twice.
    fn apply(
        &self,
        action: &Action,
        desired: &Desired,
    ) -> impl Future<Output = anyhow::Result<Applied>> + Send;

    /// Returns once what this target's applies created is visible to the
    /// reads the next observe makes (AWS's list calls are eventually
    /// consistent), so that a run right after this one does not create it
    /// twice. Side-effect free; at once where there is nothing to wait for.
    fn settle(&self) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }
}

/// A target in memory: apply a plan to it, observe again, and the next plan
/// must be empty. Keeps planner tests fast and free of any real target.
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
            account: all.account.clone(),
        })
    }

    async fn apply(&self, action: &Action, _: &Desired) -> anyhow::Result<Applied> {
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
