//! The local target's side of the planner: observe reads the data
//! directory, apply records resources there. A function's "code" is the
//! runtime built into this binary plus the tenant file it ships with.

use std::collections::BTreeSet;

use runtime::Tenant;
use sha2::{Digest, Sha256};

use crate::desired::{Code, hex};
use crate::local::state::LocalState;
use crate::plan::{Action, Change, Observed};
use crate::resource::Kind;
use crate::spec::{self, ApiKeySpec};
use crate::target::{Applied, Secret, Target};

/// The local function's code: this build's runtime and the tenant file.
pub struct LocalCode;

impl Code for LocalCode {
    fn sha256(&self, _: &Tenant, source: &str) -> String {
        let mut h = Sha256::new();
        h.update(concat!(
            "apifactory local runtime ",
            env!("CARGO_PKG_VERSION"),
            "\0"
        ));
        h.update(source.as_bytes());
        hex(&h.finalize())
    }
}

pub struct LocalTarget {
    state: LocalState,
}

impl LocalTarget {
    pub fn new(state: LocalState) -> Self {
        LocalTarget { state }
    }

    pub fn state(&self) -> &LocalState {
        &self.state
    }
}

impl Target for LocalTarget {
    fn place(&self) -> String {
        format!("data directory {}", self.state.dir().display())
    }

    async fn observe(&self, tenants: &BTreeSet<String>) -> anyhow::Result<Observed> {
        // The stamp is kept in the state like any resource; the state is
        // read whole anyway, so it vouches for nothing. The local gateway
        // mirrors none of AWS's resource quotas: no account to count, so
        // plans here carry no quota report.
        Ok(Observed {
            resources: self.state.resources(tenants).await?,
            vouched: BTreeSet::new(),
            account: None,
            pending: Default::default(),
        })
    }

    async fn apply(&self, action: &Action) -> anyhow::Result<Applied> {
        let a = &action.address;
        match (a.kind, &action.change) {
            (Kind::ApiKey, Change::Create) => {
                let spec: ApiKeySpec = spec::read(action)?;
                let client = spec.client.unwrap_or_default();
                let (record, value) = self
                    .state
                    .create_key(&a.tenant, &client, &a.name, &spec.origin)
                    .await?;
                Ok(Applied {
                    secret: value.map(|value| Secret {
                        tenant: a.tenant.clone(),
                        client: record.client,
                        id: record.id,
                        value,
                    }),
                })
            }
            (Kind::ApiKey, Change::Update { .. }) => {
                let spec: ApiKeySpec = spec::read(action)?;
                if !self.state.set_key_enabled(&a.name, spec.enabled).await? {
                    anyhow::bail!("no key named {}", a.name);
                }
                Ok(Applied::default())
            }
            (Kind::ApiKey, Change::Delete) => {
                self.state.delete_key(&a.name).await?;
                Ok(Applied::default())
            }
            (Kind::Table, Change::Delete) => {
                self.state.database().drop_table(&a.name).await?;
                self.state.remove(a).await?;
                Ok(Applied::default())
            }
            (_, Change::Delete) => {
                self.state.remove(a).await?;
                Ok(Applied::default())
            }
            (kind, _) => {
                let missing = || anyhow::anyhow!("the plan's {kind} action carries no payload");
                if kind == Kind::Table {
                    // Creates the items table and one index per indexed
                    // field, and follows index changes; idempotent.
                    let schema = action.payload.table().ok_or_else(missing)?;
                    self.state.database().table_of(&a.name, schema).await?;
                }
                let payload = match kind {
                    Kind::Function => Some(action.payload.source().ok_or_else(missing)?.to_owned()),
                    _ => None,
                };
                self.state.put(a, &action.attrs, payload).await?;
                Ok(Applied::default())
            }
        }
    }
}
