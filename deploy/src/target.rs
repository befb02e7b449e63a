//! What the planner needs from a place tenants are deployed to. The local
//! target and the AWS target both implement it; the planner never knows
//! which one it plans for.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use serde::Serialize;

use crate::desired::Desired;
use runtime::Tenant;

use crate::plan::{Action, Observed, Waiting};
use crate::resource::{Address, Attrs};

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

    /// Reads what exists for these tenants as `observe` does, but may take
    /// a tenant whose stamp matches its desired one (and whose resources
    /// the account-wide lists all show) as converged, reporting the
    /// attributes it would otherwise read one by one as desired. What
    /// `apply` runs without `--refresh`. Side-effect free.
    fn observe_known(
        &self,
        tenants: &BTreeSet<String>,
        _desired: &Desired,
    ) -> impl Future<Output = anyhow::Result<Observed>> + Send {
        self.observe(tenants)
    }

    /// The first of observe's two steps: the reads made once for every
    /// tenant (AWS's account-wide list calls), and with `trust` the stamps
    /// taken as `observe_known` takes them. A tenant whose own resources
    /// need reads of their own is named in `Observed::pending`;
    /// [`Target::read_tenant`] reads them. A target that reads everything
    /// at once leaves nothing pending (the default). Side-effect free.
    fn survey(
        &self,
        tenants: &BTreeSet<String>,
        trust: Option<&Desired>,
    ) -> impl Future<Output = anyhow::Result<Observed>> + Send {
        async move {
            match trust {
                Some(desired) => self.observe_known(tenants, desired).await,
                None => self.observe(tenants).await,
            }
        }
    }

    /// The second step, for one tenant the last survey left pending: what
    /// its resources hold beyond what the survey read, attributes to add
    /// to the survey's ([`merge`]). Side-effect free.
    fn read_tenant(
        &self,
        _tenant: &str,
    ) -> impl Future<Output = anyhow::Result<Vec<(Address, Attrs)>>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Carries out one action of a plan, from what the action carries
    /// alone (its attributes and payload). Idempotent: an action
    /// interrupted and run again, or run against a resource that already
    /// matches, ends in the same state and creates nothing twice.
    fn apply(&self, action: &Action) -> impl Future<Output = anyhow::Result<Applied>> + Send;

    /// Returns once what this target's applies created is visible to the
    /// reads the next observe makes (AWS's list calls are eventually
    /// consistent), so that a run right after this one does not create it
    /// twice. Side-effect free; at once where there is nothing to wait for.
    fn settle(&self) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Checks what the tenant files point to outside apifactory (on AWS:
    /// certificates and hosted zones), every file's problems at once.
    /// Read only: a problem ends a run before its first write.
    fn check(&self, _tenants: &[Tenant]) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Where this target deploys to, for a person ("region us-east-1 of
    /// account 123456789012", "data directory .apifactory").
    fn place(&self) -> String {
        String::new()
    }

    /// The calls this target has made so far, where it counts them.
    fn calls(&self) -> Option<Calls> {
        None
    }

    /// Whether a tenant's actions that do not depend on each other (see
    /// [`Kind::needs`]) may run at once. Where each call waits on a remote
    /// service (AWS) this shortens a tenant's part from the sum of its
    /// calls to its longest chain; a target whose actions are quick local
    /// writes keeps them in plan order (the default).
    fn concurrent_actions(&self) -> bool {
        false
    }

    /// Returns once every index the waiting tenants' tables are building
    /// is ready, saying on stderr what it waits for. At once on a target
    /// whose indexes are ready the moment they are made.
    fn wait_for_indexes(
        &self,
        _waiting: &[Waiting],
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }
}

/// Adds what [`Target::read_tenant`] read to what the survey read: a
/// resource read again gets the attributes read (the others stay), one the
/// survey did not read is added.
pub fn merge(resources: &mut BTreeMap<Address, Attrs>, details: Vec<(Address, Attrs)>) {
    for (address, attrs) in details {
        resources.entry(address).or_default().extend(attrs);
    }
}

/// Calls a target made: reads, and writes (mutating calls).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    pub reads: u64,
    pub writes: u64,
}

tokio::task_local! {
    /// The place of the tenant whose work this task does, in the run's
    /// order (1 for the first; account-wide work, outside any tenant, is 0).
    static PLACE: u64;
}

/// Runs `work` as the work of the tenant at `place` in the run's order.
/// A target that queues calls for a shared rate limit serves the lowest
/// place first, so the pipeline fills in order: the first tenants go
/// through whole while later ones wait, instead of every tenant in flight
/// advancing in lockstep and reaching its last, slowest step (a deployment
/// at AWS's 1 every 5 s) at the same time as the others.
pub fn in_place<F: Future>(place: u64, work: F) -> impl Future<Output = F::Output> {
    PLACE.scope(place, work)
}

/// The place of the tenant this task works for ([`in_place`]), 0 outside.
pub fn place() -> u64 {
    PLACE.try_with(|p| *p).unwrap_or(0)
}

/// The test fake, compiled into unit tests only.
#[cfg(test)]
mod memory;
#[cfg(test)]
pub use memory::{MemoryTarget, desired_from, file};
