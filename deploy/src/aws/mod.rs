//! The AWS target: every tenant's stack on API Gateway, Lambda, DynamoDB,
//! IAM, CloudWatch Logs and Route 53 (and ACM, read only). The only code that imports the
//! control-plane SDK crates.
//!
//! `observe` reads with list calls wherever AWS has one (REST APIs, usage
//! plans, keys, functions with their `CodeSha256`, log groups, roles,
//! domains, tables) and per-tenant reads only where AWS has no list (a
//! table's description, a role's inline policy, an API's stages, a domain's
//! base path mappings). `apply` makes one idempotent attempt per action: it
//! finds what an interrupted run made (by name and tags) before creating,
//! and writes a resource's "done" marker (a hash in a description) last.
//! REST APIs and usage plans take no client token: a create whose response
//! was lost leaves two, and observe reports the one not in use as a
//! duplicate for the plan to delete (`listing`).
//!
//! One file per resource kind; `survey` the reads of a run (the lists,
//! then each tenant's own), `listing` the paged API Gateway lists and the
//! tenant's by tags and name, `pacer` the rate limits, `patch` API
//! Gateway's patch operations, `package` the reproducible zip, `policy` the
//! IAM documents, `references` what tenant files point to (checked before
//! the first write), `keys` the `apifactory keys` commands, `usage` the
//! usage figures (access log, CloudWatch metrics) and `key_usage` each
//! key's quota (GetUsage, UpdateUsage), `cli` the
//! commands, `env` the account and region and how to reach them. Imports
//! between these files point one way (a kind's file uses `listing`,
//! `pacer` and `patch`, never the reverse; `api_key` uses `usage_plan`,
//! which attaches keys to plans); what they all share (the clients, tags,
//! `fail`) is here.

pub mod alarm;
pub mod api;
pub mod api_key;
pub mod cli;
pub mod domain;
mod env;
pub mod function;
pub mod key_usage;
pub mod keys;
pub mod listing;
pub mod logs;
pub mod pacer;
pub mod package;
pub mod patch;
pub mod policy;
pub mod references;
pub mod role;
pub mod scan;
pub mod stage;
pub mod stamp;
pub(crate) mod survey;
pub mod table;
pub mod usage;
pub mod usage_plan;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_apigateway::config::http::HttpResponse;
use aws_sdk_apigateway::error::{ProvideErrorMetadata, SdkError};
use runtime::names;

use crate::desired::Desired;
use crate::plan::{Action, Observed};
use crate::resource::{Address, Attrs, Kind};
use crate::target::{Applied, Target};

pub use env::{Connect, Env, retry};
pub use pacer::{Family, Pace, Pacer};
pub use package::Package;
pub use survey::{REFRESH_ONLY, VOUCHED};

pub use crate::resource::{TAG_CLIENT, TAG_MANAGED_BY, TAG_ORIGIN, TAG_TENANT};

/// The IAM path of every role apifactory makes: listing it lists ours only.
pub const ROLE_PATH: &str = "/apifactory/";

/// The prefix of the descriptions that record a content hash.
pub const MARKER: &str = "apifactory:";

/// The tags of a tenant's resources.
pub fn tags(tenant: &str) -> HashMap<String, String> {
    HashMap::from([
        (TAG_MANAGED_BY.to_owned(), names::PREFIX.to_owned()),
        (TAG_TENANT.to_owned(), tenant.to_owned()),
    ])
}

/// The `tags` attribute of a tag set: apifactory's own keys only.
pub fn owned_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> serde_json::Value {
    let ours: BTreeMap<&str, &str> = tags
        .into_iter()
        .filter(|(k, _)| [TAG_MANAGED_BY, TAG_TENANT].contains(k))
        .collect();
    serde_json::json!(ours)
}

/// [`owned_tags`] of a tag map as Lambda, CloudWatch Logs and API
/// Gateway's stages return it (absent when the resource has none).
pub fn owned_tag_map(tags: Option<&HashMap<String, String>>) -> serde_json::Value {
    owned_tags(
        tags.into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// The tenant a tag set belongs to, when apifactory manages it.
pub fn tagged_tenant(tags: Option<&HashMap<String, String>>) -> Option<&str> {
    let tags = tags?;
    (tags.get(TAG_MANAGED_BY).map(String::as_str) == Some(names::PREFIX))
        .then(|| tags.get(TAG_TENANT).map(String::as_str))
        .flatten()
}

/// The AWS target. Cheap to clone: clients and state are shared.
#[derive(Clone)]
pub struct AwsTarget {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub env: Env,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub iam: aws_sdk_iam::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// Reads only: the usage figures' metrics (GetMetricData).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub route53: aws_sdk_route53::Client,
    /// Reads only: the certificates tenant files name.
    pub acm: aws_sdk_acm::Client,
    pub pacer: Arc<Pacer>,
    /// The function code; a target that only plans may have none.
    pub package: Option<Package>,
    /// REST API ids by tenant: observe lists them all (so a tenant missing
    /// here has none), creates and deletes keep the map current. `None`
    /// until the first observe.
    api_ids: Mutex<Option<HashMap<String, String>>>,
    /// Each tenant's cursor secret, as observe read it from the functions
    /// or as this target made it; `cursor_secrets_listed` once an observe
    /// has listed every function (a tenant missing then has none yet).
    cursor_secrets: Mutex<HashMap<String, String>>,
    cursor_secrets_listed: AtomicBool,
    /// The account's API Gateway CloudWatch role is set (checked once).
    logging_role: tokio::sync::OnceCell<()>,
    /// The endpoint does not implement UpdateMethod (moto).
    update_method_missing: AtomicBool,
    /// What this target created that no list call has shown yet.
    unlisted: Mutex<BTreeSet<listing::Made>>,
    /// Each tenant's REST API description (definition marker and stamp),
    /// as listed by observe and as this target wrote it since: both are
    /// written whole, each keeping the other's part.
    descriptions: Mutex<HashMap<String, String>>,
    /// Tenants an action of this run left short of their desired state
    /// though it went through (point-in-time recovery AWS would not turn
    /// on yet): their stamp is not written, so the next run reads them.
    unfinished: Mutex<BTreeSet<String>>,
    /// What the last survey left to read, by tenant (taken as read).
    pending: Mutex<BTreeMap<String, survey::Pending>>,
    /// The account's hosted zones (id, name), as the last survey that
    /// needed them listed them.
    zones: Mutex<Vec<(String, String)>>,
}

impl std::ops::Deref for AwsTarget {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl std::fmt::Debug for AwsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsTarget")
            .field("env", &self.env)
            .field("pacer", &self.pacer)
            .finish()
    }
}

impl AwsTarget {
    /// Builds the clients and asks STS which account they act in.
    pub async fn new(
        config: &SdkConfig,
        pace: Pace,
        package: Option<Package>,
    ) -> anyhow::Result<AwsTarget> {
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| anyhow::anyhow!("no AWS region: give --region or set AWS_REGION"))?;
        let pacer = Arc::new(Pacer::new(pace));
        let sts = aws_sdk_sts::Client::new(config);
        pacer.read(&[Family::Sts]).await;
        let who = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| fail("STS GetCallerIdentity (are AWS credentials set?)", e))?;
        let account = who
            .account()
            .ok_or_else(|| anyhow::anyhow!("STS GetCallerIdentity named no account"))?;
        Ok(AwsTarget {
            inner: Arc::new(Inner {
                env: Env::new(&region, account),
                dynamodb: aws_sdk_dynamodb::Client::new(config),
                apigateway: aws_sdk_apigateway::Client::new(config),
                lambda: aws_sdk_lambda::Client::new(config),
                iam: aws_sdk_iam::Client::new(config),
                logs: aws_sdk_cloudwatchlogs::Client::new(config),
                cloudwatch: aws_sdk_cloudwatch::Client::new(config),
                route53: aws_sdk_route53::Client::new(config),
                acm: aws_sdk_acm::Client::new(config),
                pacer,
                package,
                api_ids: Mutex::new(None),
                cursor_secrets: Mutex::new(HashMap::new()),
                cursor_secrets_listed: AtomicBool::new(false),
                logging_role: tokio::sync::OnceCell::new(),
                update_method_missing: AtomicBool::new(false),
                unlisted: Mutex::new(BTreeSet::new()),
                descriptions: Mutex::new(HashMap::new()),
                unfinished: Mutex::new(BTreeSet::new()),
                pending: Mutex::new(BTreeMap::new()),
                zones: Mutex::new(Vec::new()),
            }),
        })
    }

    pub fn package(&self) -> anyhow::Result<&Package> {
        self.package
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this target has no function artifact"))
    }

    fn listed_apis(&self, ids: HashMap<String, String>) {
        if let Ok(mut known) = self.api_ids.lock() {
            *known = Some(ids);
        }
    }

    /// Remembers a create, for [`listing::settle`] to wait for.
    pub(crate) fn made(&self, made: listing::Made) {
        if let Ok(mut unlisted) = self.unlisted.lock() {
            unlisted.insert(made);
        }
    }

    /// The creates no list call has shown yet.
    pub(crate) fn unlisted(&self) -> Vec<listing::Made> {
        self.unlisted
            .lock()
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets creates a list call has shown.
    pub(crate) fn listed(&self, seen: &[listing::Made]) {
        if let Ok(mut unlisted) = self.unlisted.lock() {
            for made in seen {
                unlisted.remove(made);
            }
        }
    }

    pub(crate) fn remember_api(&self, tenant: &str, id: Option<&str>) {
        if let Some(id) = id {
            self.made(listing::Made::RestApi(id.to_owned()));
        }
        if let Ok(mut known) = self.api_ids.lock()
            && let Some(ids) = known.as_mut()
        {
            match id {
                Some(id) => ids.insert(tenant.to_owned(), id.to_owned()),
                None => ids.remove(tenant),
            };
        }
    }

    /// The tenant's REST API description, as listed or last written.
    pub(crate) fn description(&self, tenant: &str) -> Option<String> {
        self.descriptions.lock().ok()?.get(tenant).cloned()
    }

    fn listed_descriptions(&self, listed: HashMap<String, String>) {
        if let Ok(mut known) = self.descriptions.lock() {
            *known = listed;
        }
    }

    fn listed_zones(&self, zones: Vec<(String, String)>) {
        if let Ok(mut known) = self.zones.lock() {
            *known = zones;
        }
    }

    fn zones(&self) -> Vec<(String, String)> {
        self.zones.lock().map(|z| z.clone()).unwrap_or_default()
    }

    fn left_to_read(&self, pending: BTreeMap<String, survey::Pending>) {
        if let Ok(mut left) = self.pending.lock() {
            *left = pending;
        }
    }

    fn take_pending(&self, tenant: &str) -> Option<survey::Pending> {
        self.pending.lock().ok()?.remove(tenant)
    }

    pub(crate) fn described(&self, tenant: &str, description: &str) {
        if let Ok(mut known) = self.descriptions.lock() {
            known.insert(tenant.to_owned(), description.to_owned());
        }
    }

    /// Records that an action left the tenant short of its desired state.
    pub(crate) fn left_unfinished(&self, tenant: &str) {
        if let Ok(mut unfinished) = self.unfinished.lock() {
            unfinished.insert(tenant.to_owned());
        }
    }

    pub(crate) fn is_unfinished(&self, tenant: &str) -> bool {
        self.unfinished.lock().map_or(true, |u| u.contains(tenant))
    }

    /// `None` when no observe has listed the REST APIs yet.
    fn known_api(&self, tenant: &str) -> Option<Option<String>> {
        let known = self.api_ids.lock().ok()?;
        known.as_ref().map(|ids| ids.get(tenant).cloned())
    }

    fn listed_cursor_secrets(&self, secrets: HashMap<String, String>) {
        if let Ok(mut known) = self.cursor_secrets.lock() {
            for (tenant, secret) in secrets {
                known.entry(tenant).or_insert(secret);
            }
            self.cursor_secrets_listed.store(true, Ordering::Relaxed);
        }
    }

    /// The secret the tenant's functions sign search cursors with: the one
    /// they already hold (as observe read it, or read now), else a new
    /// random 256-bit one, made once and kept for all its functions.
    pub async fn cursor_secret(&self, tenant: &str) -> anyhow::Result<String> {
        let known = |s: &Self| s.cursor_secrets.lock().ok()?.get(tenant).cloned();
        if let Some(secret) = known(self) {
            return Ok(secret);
        }
        let found = if self.cursor_secrets_listed.load(Ordering::Relaxed) {
            None
        } else {
            function::read_cursor_secret(self, tenant).await?
        };
        let secret = match found {
            Some(s) => s,
            None => crate::keys::new_key_value()?,
        };
        let mut map = self
            .cursor_secrets
            .lock()
            .map_err(|_| anyhow::anyhow!("the cursor secrets' lock is poisoned"))?;
        Ok(map.entry(tenant.to_owned()).or_insert(secret).clone())
    }

    /// The tenant's REST API id: as listed by observe and kept current by
    /// this target's own creates and deletes, or found by name and tags.
    pub async fn api_id(&self, tenant: &str) -> anyhow::Result<Option<String>> {
        if let Some(known) = self.known_api(tenant) {
            return Ok(known);
        }
        api::find(self, tenant).await
    }
}

/// A resource observed, in the planner's terms.
pub type Found = (Address, Attrs);

impl Target for AwsTarget {
    async fn observe(&self, tenants: &BTreeSet<String>) -> anyhow::Result<Observed> {
        self.read(tenants, None).await
    }

    async fn observe_known(
        &self,
        tenants: &BTreeSet<String>,
        desired: &Desired,
    ) -> anyhow::Result<Observed> {
        self.read(tenants, Some(desired)).await
    }

    async fn survey(
        &self,
        tenants: &BTreeSet<String>,
        trust: Option<&Desired>,
    ) -> anyhow::Result<Observed> {
        self.read_lists(tenants, trust).await
    }

    async fn read_tenant(&self, tenant: &str) -> anyhow::Result<Vec<(Address, Attrs)>> {
        self.details(tenant).await
    }

    async fn apply(&self, action: &Action) -> anyhow::Result<Applied> {
        match action.address.kind {
            Kind::Table => table::apply(self, action).await,
            Kind::Role => role::apply(self, action).await,
            Kind::LogGroup => logs::apply(self, action).await,
            Kind::Function => function::apply(self, action).await,
            Kind::Api => api::apply(self, action).await,
            Kind::Stage => stage::apply(self, action).await,
            Kind::UsagePlan => usage_plan::apply(self, action).await,
            Kind::ApiKey => api_key::apply(self, action).await,
            Kind::Domain => domain::apply(self, action).await,
            Kind::Alarm => alarm::apply(self, action).await,
            Kind::Stamp => stamp::apply(self, action).await,
        }
    }

    async fn settle(&self) -> anyhow::Result<()> {
        listing::settle(self).await
    }

    async fn check(&self, tenants: &[runtime::Tenant]) -> anyhow::Result<()> {
        tokio::try_join!(
            references::check(self, tenants),
            table::check_adopted(self, tenants)
        )?;
        Ok(())
    }

    fn place(&self) -> String {
        format!("region {} of account {}", self.env.region, self.env.account)
    }

    fn concurrent_actions(&self) -> bool {
        true
    }

    fn calls(&self) -> Option<crate::target::Calls> {
        Some(crate::target::Calls {
            reads: self.pacer.reads(),
            writes: self.pacer.writes(),
        })
    }

    async fn wait_for_indexes(&self, waiting: &[crate::plan::Waiting]) -> anyhow::Result<()> {
        cli::wait_for_indexes(self, waiting).await
    }
}

/// The tenants an observe covers (all when empty).
#[derive(Debug, Clone, Default)]
pub struct Scope(pub BTreeSet<String>);

impl Scope {
    pub fn covers(&self, tenant: &str) -> bool {
        self.0.is_empty() || self.0.contains(tenant)
    }
}

/// An SDK error, short, after what was being done: the one formatting
/// the runtime's store also uses (`runtime::dynamo::describe`: the
/// service's error code and message, else the chain of causes and the HTTP
/// status, never the raw response). Every SDK crate's `SdkError` is the
/// same smithy type, so one function serves them all.
pub fn fail<E>(what: &str, e: SdkError<E, HttpResponse>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    anyhow::anyhow!("{what}: {}", runtime::dynamo::describe(&e))
}

/// Whether an SDK error carries one of these error codes.
pub fn is<E: ProvideErrorMetadata>(e: &E, codes: &[&str]) -> bool {
    e.code().is_some_and(|c| codes.contains(&c))
}

/// The tenant of a name `<prefix><tenant><suffix>`, when it is a tenant id.
pub fn tenant_between<'a>(name: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    let t = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    names::is_tenant_id(t).then_some(t)
}

/// Polls `check` until it answers `Some`, with growing pauses, for at most
/// `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(100);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{what}: still not done after {} s", limit.as_secs());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Runs `f` on each item, at most `limit` at a time, keeping the order.
pub async fn each<T, R, F, Fut>(items: Vec<T>, limit: usize, f: F) -> anyhow::Result<Vec<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
{
    let gate = Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let fut = f(item);
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            (i, fut.await)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = set.join_next().await {
        let (i, r) = done.map_err(|e| anyhow::anyhow!("a read task failed: {e}"))?;
        out.push((i, r?));
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

/// A float without a needless `.0` (API Gateway patch values are strings,
/// and some readers parse them as integers when they can).
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}
