//! What the gateway serves, as of one generation of the deployed state:
//! tenants, their custom domains and keys, swapped whole when the
//! generation changes. A reload reuses the runtimes of unchanged tenants
//! and carries the buckets and quota leases of keys over, so it refills
//! nothing. A background task polls the generation and batches last-used
//! times.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use axum::body::Bytes;
use governor::DefaultDirectRateLimiter;
use runtime::api::Api;
use runtime::sqlite::SqliteTable;
use runtime::tenant::Quota;
use runtime::{Operation, names};

use super::admit::{Lease, key_limiter};
use super::fast_hash::FastMap;
use super::logs::{LogFile, function_part};
use super::{Gateway, Inner, route};
use crate::local::state::{DeployedTenant, Snapshot, now_rfc3339};

/// How often the state's generation is polled.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// Last-used times are written every this many polls (once a second).
const TOUCH_EVERY_POLLS: u32 = 5;
/// Recorded usage is written every this many polls.
const USAGE_EVERY_POLLS: u32 =
    (super::usage::FLUSH_EVERY.as_millis() / POLL_EVERY.as_millis()) as u32;

/// What is served, as of one generation of the state. Swapped whole.
#[derive(Default)]
pub(super) struct Live {
    /// `None` until loaded, and after a reload that could not prepare
    /// every tenant (so the next poll tries again).
    pub(super) generation: Option<u64>,
    pub(super) tenants: FastMap<String, Arc<TenantRt>>,
    /// Custom domain (lowercase) → tenant.
    pub(super) domains: FastMap<String, Arc<TenantRt>>,
    /// SHA-256 of the key value → key.
    pub(super) keys: FastMap<[u8; 32], Arc<KeyRt>>,
}

/// A served tenant.
pub(super) struct TenantRt {
    pub(super) id: String,
    pub(super) stage: String,
    pub(super) collection: String,
    pub(super) resource_collection: String,
    pub(super) resource_item: String,
    /// By `Operation as usize`.
    pub(super) operations: [bool; 5],
    /// Each function's part of its log lines (`logs::function_part`), by
    /// `Operation as usize`.
    pub(super) function_parts: [String; 5],
    pub(super) memory_mb: u32,
    pub(super) timeout: Duration,
    pub(super) rate: f64,
    pub(super) burst: u32,
    pub(super) quota: Option<Quota>,
    /// The stage's bucket, shared by every key of the tenant, and the rate
    /// and burst it was built with.
    pub(super) api_bucket: Option<((f64, u32), Arc<DefaultDirectRateLimiter>)>,
    /// The custom domain, lowercase.
    pub(super) domain: Option<String>,
    /// The custom domain's base path ("" for the root).
    pub(super) base_path: Option<String>,
    /// The tenant definition the `Api` was built from.
    pub(super) definition: String,
    /// The developer portal's page, rendered once per definition; `None`
    /// when it cannot be (too large), and `/docs` is then no route.
    pub(super) docs: Option<Bytes>,
    pub(super) api: Arc<Api<SqliteTable>>,
    pub(super) log: Arc<LogFile>,
}

impl TenantRt {
    /// `previous` is the tenant as served before a reload: its API-wide
    /// bucket is kept when the limits did not change, so a reload does not
    /// refill it.
    pub(super) fn new(
        deployed: &DeployedTenant,
        previous: Option<&TenantRt>,
        definition: String,
        api: Arc<Api<SqliteTable>>,
        log: Arc<LogFile>,
    ) -> TenantRt {
        let t = &deployed.tenant;
        let collection = t.collection.name.clone();
        let mut operations = [false; 5];
        for op in &deployed.operations {
            operations[*op as usize] = true;
        }
        TenantRt {
            function_parts: Operation::ALL.map(|op| function_part(&names::function(&t.id, op))),
            id: t.id.clone(),
            stage: deployed.stage.clone(),
            resource_collection: format!("/{collection}"),
            resource_item: format!("/{collection}/{{id}}"),
            collection,
            operations,
            memory_mb: t.functions.memory_mb,
            timeout: Duration::from_secs(u64::from(t.functions.timeout_s.max(1))),
            rate: deployed.rate,
            burst: deployed.burst,
            quota: deployed.quota,
            api_bucket: deployed.api.map(|limits| {
                let kept = previous
                    .and_then(|p| p.api_bucket.as_ref())
                    .filter(|(old, _)| *old == limits)
                    .map(|(_, limiter)| Arc::clone(limiter));
                let (rate, burst) = limits;
                (
                    limits,
                    kept.unwrap_or_else(|| Arc::new(key_limiter(rate, burst))),
                )
            }),
            domain: deployed.domain.as_ref().map(|(name, _)| {
                let name = route::lowercase(name);
                name.strip_suffix('.').unwrap_or(&name).to_owned()
            }),
            base_path: deployed.domain.as_ref().map(|(_, base)| base.clone()),
            docs: match previous.filter(|p| p.definition == definition) {
                Some(p) => p.docs.clone(),
                None => match crate::portal::render(t) {
                    Ok(page) => Some(Bytes::from(page)),
                    Err(e) => {
                        tracing::warn!(tenant = %t.id, error = %format!("{e:#}"), "no developer portal");
                        None
                    }
                },
            },
            definition,
            api,
            log,
        }
    }
}

/// A usable-looking key and the state that outlives reloads.
pub(super) struct KeyRt {
    pub(super) record: crate::local::state::KeyRecord,
    /// The rate and burst `limiter` was built with.
    pub(super) limits: (f64, u32),
    pub(super) limiter: Arc<DefaultDirectRateLimiter>,
    pub(super) lease: Arc<tokio::sync::Mutex<Lease>>,
    /// Used since the last batch of last-used times.
    pub(super) touched: Arc<AtomicBool>,
}

impl Gateway {
    /// Re-reads the state now if its generation changed.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let _one = self.inner.reloading.lock().await;
        let current = self.live();
        if current.generation.is_some()
            && current.generation == Some(self.inner.state.generation().await?)
        {
            return Ok(());
        }
        let snapshot = self.inner.state.snapshot().await?;
        let next = Arc::new(self.build(snapshot, &current).await);
        let old = std::mem::replace(
            &mut *self
                .inner
                .live
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            next,
        );
        drop(old);
        Ok(())
    }

    pub(super) fn live(&self) -> Arc<Live> {
        Arc::clone(
            &self
                .inner
                .live
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Builds what to serve from a snapshot, reusing the current runtimes
    /// of unchanged tenants and the buckets and quota leases of keys.
    async fn build(&self, snapshot: Snapshot, current: &Live) -> Live {
        let mut complete = true;
        let mut tenants = FastMap::default();
        let mut domains = FastMap::default();
        for (id, deployed) in snapshot.tenants {
            let definition = format!("{:?}", deployed.tenant);
            let old = current.tenants.get(&id);
            let api = match old {
                Some(old) if old.definition == definition => Arc::clone(&old.api),
                _ => match self.inner.state.database().table(&deployed.tenant).await {
                    Ok(table) => Arc::new(
                        Api::new(Arc::new(deployed.tenant.clone()), table)
                            .cursor_secret(&self.inner.cursor_secret),
                    ),
                    Err(e) => {
                        tracing::warn!(tenant = %id, error = %e, "cannot prepare the tenant's table; will retry");
                        complete = false;
                        if let Some(old) = old {
                            tenants.insert(id.clone(), Arc::clone(old));
                        }
                        continue;
                    }
                },
            };
            let log = self.inner.logs.file(&self.inner.state.log_path(&id));
            let rt = Arc::new(TenantRt::new(
                &deployed,
                old.map(Arc::as_ref),
                definition,
                api,
                log,
            ));
            tenants.insert(id, rt);
        }
        // Deterministic if two tenants claim one domain: the first by id.
        let mut ids: Vec<&String> = tenants.keys().collect();
        ids.sort();
        for id in ids {
            let t = &tenants[id];
            if let Some(domain) = &t.domain {
                domains
                    .entry(domain.clone())
                    .or_insert_with(|| Arc::clone(t));
            }
        }
        let previous: HashMap<&str, &Arc<KeyRt>> = current
            .keys
            .values()
            .map(|k| (k.record.id.as_str(), k))
            .collect();
        let mut keys = FastMap::with_capacity_and_hasher(snapshot.keys.len(), Default::default());
        for record in snapshot.keys {
            let Some(t) = tenants.get(&record.tenant) else {
                continue;
            };
            let limits = (t.rate, t.burst);
            let key = match previous.get(record.id.as_str()) {
                Some(old) => KeyRt {
                    limiter: if old.limits == limits {
                        Arc::clone(&old.limiter)
                    } else {
                        Arc::new(key_limiter(t.rate, t.burst))
                    },
                    limits,
                    lease: Arc::clone(&old.lease),
                    touched: Arc::clone(&old.touched),
                    record,
                },
                None => KeyRt {
                    limiter: Arc::new(key_limiter(t.rate, t.burst)),
                    limits,
                    lease: Arc::default(),
                    touched: Arc::default(),
                    record,
                },
            };
            keys.insert(key.record.hash, Arc::new(key));
        }
        Live {
            generation: complete.then_some(snapshot.generation),
            tenants,
            domains,
            keys,
        }
    }

    /// Writes the last-used time of every key used since the last call.
    pub(super) async fn touch_keys(&self) {
        let live = self.live();
        let ids: Vec<String> = live
            .keys
            .values()
            .filter(|k| k.touched.swap(false, Ordering::Relaxed))
            .map(|k| k.record.id.clone())
            .collect();
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self.inner.state.touch_keys(ids, now_rfc3339()).await {
            tracing::warn!(error = %e, "cannot record when keys were last used");
        }
    }
}

/// Polls the generation (reloading on change), and writes recorded usage
/// and batches of last-used times, while the gateway lives.
pub(super) async fn background(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut polls = 0u32;
    let mut last_error = String::new();
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let gateway = Gateway { inner };
        match gateway.reload().await {
            Ok(()) => last_error.clear(),
            Err(e) => {
                let e = format!("{e:#}");
                if e != last_error {
                    tracing::warn!(error = %e, "cannot reload the deployed state; serving the last one");
                    last_error = e;
                }
            }
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(USAGE_EVERY_POLLS) {
            gateway.flush_usage().await;
        }
        if polls.is_multiple_of(TOUCH_EVERY_POLLS) {
            gateway.touch_keys().await;
        }
    }
}

pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
