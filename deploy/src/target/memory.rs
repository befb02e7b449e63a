//! A target in memory, for the planner's unit tests: apply a plan to it,
//! observe again, and the next plan must be empty.

use std::collections::{BTreeMap, BTreeSet};

use super::{Applied, Target};
use crate::desired::Desired;
use crate::plan::{Action, Observed};
use crate::resource::{Address, Attrs, Kind};

/// Keeps planner tests fast and free of any real target.
#[derive(Debug, Default)]
pub struct MemoryTarget {
    pub resources: std::sync::Mutex<crate::plan::Observed>,
    /// Fail any action on this address (to test partial failure).
    pub fail_on: Option<Address>,
    /// Read in two steps, as the AWS target does: the survey leaves these
    /// kinds to each tenant's own read.
    pub detailed: Vec<Kind>,
    /// "read <tenant>" and "apply <address>", in the order they happened;
    /// with `concurrent`, also "done <address>" when an apply finishes.
    pub log: std::sync::Mutex<Vec<String>>,
    /// Runs a tenant's independent actions at once, as the AWS target does
    /// (each apply yields once between its start and its end).
    pub concurrent: bool,
}

impl MemoryTarget {
    fn note(&self, line: String) {
        if let Ok(mut log) = self.log.lock() {
            log.push(line);
        }
    }

    /// The log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn held(&self, tenant: &str) -> Vec<(Address, Attrs)> {
        let Ok(all) = self.resources.lock() else {
            return Vec::new();
        };
        all.resources
            .iter()
            .filter(|(a, _)| a.tenant == tenant && self.detailed.contains(&a.kind))
            .map(|(a, v)| (a.clone(), v.clone()))
            .collect()
    }
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
            pending: Default::default(),
        })
    }

    async fn survey(
        &self,
        tenants: &BTreeSet<String>,
        _trust: Option<&Desired>,
    ) -> anyhow::Result<Observed> {
        let mut observed = self.observe(tenants).await?;
        let (detailed, listed): (BTreeMap<_, _>, BTreeMap<_, _>) =
            std::mem::take(&mut observed.resources)
                .into_iter()
                .partition(|(a, _)| self.detailed.contains(&a.kind));
        observed.resources = listed;
        for address in detailed.into_keys() {
            let named = observed.pending.entry(address.tenant.clone()).or_default();
            if address.kind != Kind::Stage {
                named.insert(address);
            }
        }
        Ok(observed)
    }

    fn concurrent_actions(&self) -> bool {
        self.concurrent
    }

    async fn read_tenant(&self, tenant: &str) -> anyhow::Result<Vec<(Address, Attrs)>> {
        self.note(format!("read {tenant}"));
        Ok(self.held(tenant))
    }

    async fn apply(&self, action: &Action) -> anyhow::Result<Applied> {
        self.note(format!("apply {}", action.address));
        if self.concurrent {
            tokio::task::yield_now().await;
            self.note(format!("done {}", action.address));
        }
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

/// The code hash of a tenant: its package source's, so that a change of
/// the source is a change of code.
struct SourceHash;
impl crate::desired::Code for SourceHash {
    fn sha256(&self, _: &runtime::Tenant, source: &str) -> String {
        use sha2::{Digest, Sha256};
        crate::desired::hex(&Sha256::digest(source.as_bytes()))
    }
}

/// What these tenant files (id, text) desire.
pub fn desired_from(texts: &[(&str, String)]) -> Desired {
    let mut tenants = Vec::new();
    let mut sources = BTreeMap::new();
    for (id, text) in texts {
        let path = format!("tenants/{id}.toml");
        tenants.push(runtime::Tenant::parse(std::path::Path::new(&path), text).unwrap());
        sources.insert(
            id.to_string(),
            crate::tenants::package_source(text).unwrap(),
        );
    }
    crate::desired::desired(&tenants, &sources, &SourceHash)
}

/// The text of one of the repository's own tenant files.
pub fn file(id: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(dir.join(format!("../tenants/{id}.toml"))).unwrap()
}
