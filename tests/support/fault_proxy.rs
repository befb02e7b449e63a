//! A fault-injecting HTTP/1.1 proxy between `apifactory` and moto.
//!
//! The AWS SDK reaches it through `AWS_ENDPOINT_URL`; it listens on
//! loopback only and forwards every request to moto, except that, at a
//! configurable rate and from a seeded random generator (the seed is printed
//! so a failure can be replayed), it
//!
//! - answers 500 in the service's error shape,
//! - answers the service's throttling error in AWS's exact wire shape
//!   (API Gateway and Lambda `TooManyRequestsException` 429, DynamoDB
//!   `ThrottlingException` 400, IAM/STS/Route 53 `Throttling` 400 XML,
//!   CloudWatch Logs and ACM `ThrottlingException` 400, JSON),
//! - resets the connection: closes it without answering, either before
//!   the request reaches moto or after moto has carried it out (the
//!   response is lost: the client cannot tell whether it happened, and a
//!   retried create meets what the first attempt made),
//! - or adds latency before forwarding.
//!
//! It can also enforce AWS's published per-operation rate limits
//! (FACTS.md) with a token bucket per operation, scaled by a factor the way
//! `APIFACTORY_PACE` scales the AWS target's pacer, answering the throttling
//! shape when a bucket is empty.
//!
//! It can also model DynamoDB behaviours of real AWS that moto lacks,
//! each switched on in [`FaultConfig`] with its source: the window after
//! CreateTable in which point-in-time recovery cannot be turned on
//! (`pitr_window`), and a new index's backfill (`gsi_backfill`).
//!
//! Services are told apart by the request: `X-Amz-Target` names the
//! JSON-protocol ones (DynamoDB, Logs), the credential scope of the
//! `Authorization` header (`/<region>/<service>/aws4_request`) the rest.
//! Every request is also named by its AWS operation ([`operation_name`])
//! and counted per operation ([`Stats::operations`]), which lets a
//! benchmark count the calls a run makes, and a limit cover a family of
//! operations (`apigateway:*`: every API Gateway call).
//!
//! On top of moto it can model what AWS does and moto does not
//! ([`Realism`], each behaviour switchable, each with its AWS source):
//! IAM role propagation, Lambda's `Pending` and `InProgress` states with
//! `ResourceConflictException` on overlapping updates, and list calls that
//! leave out what was created a moment ago. [`FaultConfig::realistic`] turns
//! every behaviour on with windows short enough for tests.
//!
//! For the usage figures it models what moto lacks there ([`usage_models`]):
//! API Gateway's GetUsage and UpdateUsage, CloudWatch over the RPC v2 CBOR
//! protocol the Rust SDK speaks (carried to moto as AWS JSON), and
//! GetMetricData's paging.
//!
//! Requests are read with `Content-Length` or chunked bodies; each one goes
//! to moto on a fresh connection (`Connection: close`) and the answer is
//! relayed with a `Content-Length`, keeping the client's connection alive
//! or closing it as the client asked.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

// Files of their own, named from here so that a binary that includes this
// file by `#[path]` finds them too.
#[path = "cbor.rs"]
pub mod cbor;
#[path = "usage_models.rs"]
pub mod usage_models;

/// The largest request or response head the proxy reads.
const MAX_HEAD: usize = 64 * 1024;

/// What to inject, and how often.
#[derive(Debug, Clone)]
pub struct FaultConfig {
    /// The share of requests that get a fault, 0 to 1.
    pub rate: f64,
    /// The random generator's seed; printed when the proxy starts.
    pub seed: u64,
    /// The most latency a `Latency` fault adds (uniform from 0).
    pub max_latency: Duration,
    /// Per-operation rate limits to enforce (none by default).
    pub limits: Vec<RateLimit>,
    /// Also lose responses after moto carried the request out (the client
    /// cannot tell whether it happened). Off by default; a create without a
    /// client token (CreateUsagePlan, CreateRestApi) then leaves a duplicate
    /// for the next apply to delete, so a test that turns this on must
    /// re-run apply until nothing is left to do.
    pub lose_responses: bool,
    /// Operations (as [`operation`] names them) whose first response is
    /// lost after moto carried the request out, whatever the rate: a fault
    /// a test can count on.
    pub lose_first: Vec<&'static str>,
    /// Operations (as [`operation_name`] names them) whose first call is
    /// answered 400 `BadRequestException` without reaching moto: a run
    /// that stops exactly there, as one killed between the call before
    /// and this one would, for a test that must stop between two calls.
    pub refuse_first: Vec<&'static str>,
    /// Operations (as [`operation_name`] names them) whose next call is
    /// answered with the service's throttling error without reaching moto,
    /// one call per entry (an operation listed twice is refused twice): a
    /// throttled call a test can count on.
    pub throttle_first: Vec<&'static str>,
    /// API Gateway's GetUsage and UpdateUsage, which moto answers 404,
    /// modelled in [`usage_models`] (on by default: without it AWS's
    /// answer is a 404 no AWS account gives).
    pub usage_model: bool,
    /// PutRestApi with `mode=overwrite` renames the API to the document's
    /// `info.title` ("PutRestApi", API Gateway API reference: overwrite
    /// replaces the API with the definition, its title the API's name),
    /// which moto does not do. See [`put_rest_api_renames`].
    pub put_rest_api_renames: bool,
    /// API Gateway's OpenAPI importer on PutRestApi and ImportRestApi: a
    /// model using a keyword it does not support is a warning, the import
    /// rolled back with a `BadRequestException` under `failonwarnings=true`
    /// ("Amazon API Gateway important notes for REST APIs"; "Errors and
    /// warnings during import", API Gateway developer guide). moto takes
    /// any document. See [`import_warnings`].
    pub import_warnings: bool,
    /// DynamoDB's point-in-time recovery window: for this long after a
    /// table's CreateTable, UpdateContinuousBackups on it answers
    /// `ContinuousBackupsUnavailableException` (400, "Backups are being
    /// enabled for the table"), which is not throttling. Sources:
    /// API_UpdateContinuousBackups (errors); terraform-provider-aws PR 4063,
    /// which retries it. Off when `None`.
    pub pitr_window: Option<Duration>,
    /// DynamoDB's GSI backfilling: for this long after an UpdateTable that
    /// creates an index, DescribeTable reports the index `IndexStatus:
    /// CREATING`, `Backfilling: true`; a Query through it is a
    /// ValidationException; and another index creation or deletion on the
    /// table (or two in one UpdateTable) is `LimitExceededException`
    /// ("Subscriber limit exceeded: Only 1 online index can be created or
    /// deleted simultaneously per table"). Sources: UpdateTable and
    /// "Managing global secondary indexes" (one index per UpdateTable;
    /// IndexStatus, Backfilling); aws-cli issue 4845; the LimitExceeded
    /// text as AWS sends it (architect/architect issue 334). Off when
    /// `None`.
    pub gsi_backfill: Option<Duration>,
    /// Refuse, as DynamoDB does and moto does not, key values DynamoDB
    /// cannot index and numbers it cannot store, with its
    /// `ValidationException` (see [`dynamodb_key_values`]). Off by default.
    pub dynamodb_key_values: bool,
    /// API Gateway's TagResource on an API key
    /// (`arn:aws:apigateway:<region>::/apikeys/<id>`, "TagResource" in
    /// the API Gateway API reference; API keys are taggable resources):
    /// moto 5.2.5 tags only stages and answers an error for a key. The
    /// proxy keeps the tags and shows them on the key in GetApiKey and
    /// GetApiKeys, as AWS does.
    pub api_key_tags: bool,
    /// AWS's documented behaviours that moto does not reproduce (all off
    /// by default).
    pub realism: Realism,
}

impl FaultConfig {
    /// A rate of faults with a seed from the clock (printed at start).
    pub fn with_rate(rate: f64) -> FaultConfig {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7);
        FaultConfig {
            rate,
            seed,
            max_latency: Duration::from_millis(200),
            limits: Vec::new(),
            lose_responses: false,
            lose_first: Vec::new(),
            refuse_first: Vec::new(),
            throttle_first: Vec::new(),
            usage_model: true,
            put_rest_api_renames: false,
            import_warnings: false,
            pitr_window: None,
            gsi_backfill: None,
            dynamodb_key_values: false,
            api_key_tags: false,
            realism: Realism::default(),
        }
    }

    /// No random faults, and every AWS behaviour of [`Realism::all`] on,
    /// with the published limits moto does not enforce. The one place
    /// where a new behaviour joins the preset the e2e suite runs with.
    pub fn realistic() -> FaultConfig {
        FaultConfig {
            limits: vec![
                RateLimit::update_account(1.0),
                RateLimit::list_tags_of_resource(1.0),
            ],
            realism: Realism::all(),
            // The target's first retry comes a second after CreateTable:
            // a shorter window still refuses the call right after it.
            pitr_window: Some(Duration::from_millis(500)),
            gsi_backfill: Some(Duration::from_secs(2)),
            put_rest_api_renames: true,
            import_warnings: true,
            dynamodb_key_values: true,
            api_key_tags: true,
            ..FaultConfig::with_rate(0.0)
        }
    }
}

/// AWS behaviours the proxy models on top of moto; `None` turns one off.
/// State is per proxy: what was created through it, and when.
#[derive(Debug, Clone, Default)]
pub struct Realism {
    /// IAM is eventually consistent: for this long after CreateRole, a
    /// CreateFunction or UpdateFunctionConfiguration naming the role
    /// answers 400 `InvalidParameterValueException` "The role defined for
    /// the function cannot be assumed by Lambda." (Lambda developer guide,
    /// "Troubleshoot deployment issues in Lambda"; IAM user guide, "Changes
    /// that I make are not always immediately visible").
    pub role_propagation: Option<Duration>,
    /// For this long after CreateFunction the function's `State` is
    /// `Pending`, and UpdateFunctionCode, UpdateFunctionConfiguration and
    /// PublishVersion answer 409 `ResourceConflictException` (Lambda
    /// developer guide, "Lambda function states": "Any invocations or other
    /// API actions that operate on the function will fail").
    pub function_pending: Option<Duration>,
    /// For this long after UpdateFunctionCode or
    /// UpdateFunctionConfiguration the function's `LastUpdateStatus` is
    /// `InProgress`, and another update (the same three calls, and
    /// TagResource) answers 409 `ResourceConflictException` "The operation
    /// cannot be performed at this time. An update is in progress for
    /// resource: ..." (same page, "Function states during updates").
    pub function_updating: Option<Duration>,
    /// For this long after its create, a REST API, usage plan, API key,
    /// domain name, function, table, log group or role is left out of the
    /// list calls (GetRestApis, GetUsagePlans, GetApiKeys, GetDomainNames,
    /// ListFunctions, ListTables, DescribeLogGroups, ListRoles), though a
    /// read by its id or name finds it. AWS promises no read-after-write
    /// consistency for list calls: IAM documents it ("Changes that I make
    /// are not always immediately visible"), DynamoDB says a table's
    /// metadata and tags are eventually consistent (ListTagsOfResource),
    /// and the other services document none.
    pub list_lag: Option<Duration>,
}

impl Realism {
    /// Every behaviour on, with windows long enough that the call right
    /// after a create or an update meets them, and no longer: the e2e suite
    /// waits them out after every function and every apply. AWS's own are
    /// seconds; the target waits by polling, so what it does is the same.
    /// The role's window stays at 2 s: the target retries a refused role
    /// after a fixed 2 s pause, so a shorter one would save nothing, and
    /// the function call after CreateRole can come a few hundred
    /// milliseconds later.
    pub fn all() -> Realism {
        Realism {
            role_propagation: Some(Duration::from_secs(2)),
            function_pending: Some(Duration::from_millis(250)),
            function_updating: Some(Duration::from_millis(250)),
            list_lag: Some(Duration::from_secs(1)),
        }
    }
}

/// An operation's published limit: `burst` calls, one more every `every`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// The operation, as [`operation_name`] names it (`CreateDeployment`),
    /// or a family of them that shares one bucket: `service:Operation`,
    /// `service:*` (every call of the service), several joined by `|`.
    pub operation: &'static str,
    pub every: Duration,
    pub burst: u32,
    /// Operations a `service:*` family leaves out (they have a limit of
    /// their own, as Lambda's GetFunction does).
    pub except: &'static [&'static str],
}

impl RateLimit {
    /// CreateDeployment, 1 every 5 s (FACTS.md), `factor` times faster.
    pub fn create_deployment(factor: f64) -> RateLimit {
        RateLimit {
            operation: "CreateDeployment",
            every: Duration::from_secs(5).div_f64(factor),
            burst: 1,
            except: &[],
        }
    }

    /// CreateRestApi, 1 every 3 s (FACTS.md), `factor` times faster.
    pub fn create_rest_api(factor: f64) -> RateLimit {
        RateLimit {
            operation: "CreateRestApi",
            every: Duration::from_secs(3).div_f64(factor),
            burst: 1,
            except: &[],
        }
    }

    /// API Gateway's UpdateAccount (the account's CloudWatch role), 1 every
    /// 20 s (FACTS.md, API Gateway quotas), `factor` times faster.
    pub fn update_account(factor: f64) -> RateLimit {
        RateLimit {
            operation: "apigateway:UpdateAccount",
            every: Duration::from_secs(20).div_f64(factor),
            burst: 1,
            except: &[],
        }
    }

    /// DynamoDB's ListTagsOfResource, 10 per second per account (FACTS.md,
    /// DynamoDB quotas), `factor` times faster.
    pub fn list_tags_of_resource(factor: f64) -> RateLimit {
        RateLimit {
            operation: "dynamodb:ListTagsOfResource",
            every: Duration::from_millis(100).div_f64(factor),
            burst: 10,
            except: &[],
        }
    }

    /// Whether this limit counts a call of `operation` (as
    /// [`operation_name`] names it) to `service`.
    pub fn covers(&self, service: Option<&str>, operation: &str) -> bool {
        if self.except.contains(&operation) {
            return false;
        }
        self.operation.split('|').any(|pattern| {
            let (svc, op) = match pattern.split_once(':') {
                Some((svc, op)) => (Some(svc), op),
                None => (None, pattern),
            };
            svc.is_none_or(|s| service == Some(s)) && (op == "*" || op == operation)
        })
    }
}

/// The kinds of fault, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    ServerError,
    Throttle,
    /// Closed before forwarding.
    Reset,
    /// Forwarded, then closed without relaying the answer.
    LostResponse,
    Latency,
}

/// What the proxy did, counted.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub forwarded: AtomicU64,
    pub server_errors: AtomicU64,
    pub throttles: AtomicU64,
    pub resets: AtomicU64,
    pub lost_responses: AtomicU64,
    pub delayed: AtomicU64,
    /// Requests refused by an enforced rate limit (not injected at random).
    pub limit_rejections: AtomicU64,
    /// Requests of an enforced operation that were let through.
    pub limited_passed: AtomicU64,
    /// Requests the realism layer refused (a role not yet assumable, an
    /// update in progress).
    pub realism_refusals: AtomicU64,
    /// List responses the realism layer left something out of.
    pub lagged_lists: AtomicU64,
    /// Requests by `service:Operation` ([`operation_name`]).
    pub by_operation: Mutex<BTreeMap<String, OperationCount>>,
    /// Every counted request in arrival order: when, `service:Operation`,
    /// and whether an enforced limit refused it (the bench's timeline).
    pub timeline: Mutex<Vec<(Instant, String, bool)>>,
}

/// The requests of one operation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OperationCount {
    /// Every request that reached the proxy (refused ones included).
    pub calls: u64,
    /// Refused by an enforced limit (the client saw a throttling error).
    pub refused: u64,
}

impl Stats {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Injected faults of every kind (latency included).
    pub fn injected(&self) -> u64 {
        Self::get(&self.server_errors)
            + Self::get(&self.throttles)
            + Self::get(&self.resets)
            + Self::get(&self.lost_responses)
            + Self::get(&self.delayed)
    }

    /// Responses lost after moto carried the request out.
    pub fn lost_responses(&self) -> u64 {
        Self::get(&self.lost_responses)
    }

    pub fn limit_rejections(&self) -> u64 {
        Self::get(&self.limit_rejections)
    }

    pub fn limited_passed(&self) -> u64 {
        Self::get(&self.limited_passed)
    }

    pub fn realism_refusals(&self) -> u64 {
        Self::get(&self.realism_refusals)
    }

    pub fn lagged_lists(&self) -> u64 {
        Self::get(&self.lagged_lists)
    }

    /// The requests so far by `service:Operation`.
    pub fn operations(&self) -> BTreeMap<String, OperationCount> {
        self.by_operation
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// The requests so far, in arrival order.
    pub fn timeline(&self) -> Vec<(Instant, String, bool)> {
        self.timeline.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn count(&self, key: &str, refused: bool) {
        if let Ok(mut t) = self.timeline.lock() {
            t.push((Instant::now(), key.to_owned(), refused));
        }
        if let Ok(mut m) = self.by_operation.lock() {
            let c = m.entry(key.to_owned()).or_default();
            if refused {
                c.refused += 1;
            } else {
                c.calls += 1;
            }
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests, {} forwarded; injected {} x 500, {} throttles, {} resets, \
             {} lost responses, {} delays; {} refused by enforced limits; \
             realism: {} refused, {} lists lagging",
            Self::get(&self.requests),
            Self::get(&self.forwarded),
            Self::get(&self.server_errors),
            Self::get(&self.throttles),
            Self::get(&self.resets),
            Self::get(&self.lost_responses),
            Self::get(&self.delayed),
            Self::get(&self.limit_rejections),
            Self::get(&self.realism_refusals),
            Self::get(&self.lagged_lists),
        )
    }
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    url: String,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
    /// What the DynamoDB model remembers, for [`FaultProxy::end_backfills`].
    dynamo: Arc<Shared>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:port`) on a free
    /// loopback port, and prints its seed.
    pub async fn start(upstream: &str, config: FaultConfig) -> FaultProxy {
        let upstream = upstream
            .strip_prefix("http://")
            .unwrap_or(upstream)
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fault proxy binds a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        eprintln!(
            "fault proxy {url} -> {upstream}: rate {}, seed {}, limits {:?}, {:?}",
            config.rate, config.seed, config.limits, config.realism
        );
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            upstream,
            rng: Mutex::new(SplitMix(config.seed)),
            lose_first: Mutex::new(config.lose_first.clone()),
            refuse_first: Mutex::new(config.refuse_first.clone()),
            throttle_first: Mutex::new(config.throttle_first.clone()),
            usage: Mutex::new(usage_models::UsageModel::default()),
            buckets: config
                .limits
                .iter()
                .map(|l| Mutex::new(Bucket::new(l.clone())))
                .collect(),
            dynamo: Mutex::new(DynamoModel::default()),
            config,
            stats: stats.clone(),
            table_keys: Mutex::new(BTreeMap::new()),
            world: Mutex::new(World::default()),
            key_tags: Mutex::new(BTreeMap::new()),
        });
        let dynamo = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    // A client that goes away mid-request ends its task.
                    let _ = serve(stream, &shared).await;
                });
            }
        });
        FaultProxy {
            url,
            stats,
            task,
            dynamo,
        }
    }

    /// Ends every backfill the DynamoDB model is running now, as the end
    /// of a long one would: a test need not sleep through it.
    pub fn end_backfills(&self) {
        let now = Instant::now();
        let mut model = self.dynamo.dynamo.lock().unwrap();
        for until in model.backfilling.values_mut() {
            *until = (*until).min(now);
        }
    }

    /// Sets what a key used of its usage plan's quota on a day
    /// (`YYYY-MM-DD`, UTC), as GetUsage will answer it.
    pub fn set_usage(&self, plan: &str, key: &str, day: &str, used: u64) {
        let day = usage_models::parse_day(day).expect("a day is YYYY-MM-DD");
        self.dynamo.usage.lock().unwrap().set(plan, key, day, used);
    }

    /// The URL to give the SDK (`AWS_ENDPOINT_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

struct Shared {
    upstream: String,
    config: FaultConfig,
    /// What is left of `config.lose_first`.
    lose_first: Mutex<Vec<&'static str>>,
    /// What is left of `config.refuse_first`.
    refuse_first: Mutex<Vec<&'static str>>,
    /// What is left of `config.throttle_first`.
    throttle_first: Mutex<Vec<&'static str>>,
    /// The keys' use of their quotas (`config.usage_model`).
    usage: Mutex<usage_models::UsageModel>,
    rng: Mutex<SplitMix>,
    buckets: Vec<Mutex<Bucket>>,
    /// What the DynamoDB model (`pitr_window`, `gsi_backfill`) remembers.
    dynamo: Mutex<DynamoModel>,
    stats: Arc<Stats>,
    /// Key schemas of the DynamoDB tables seen, by table name, for
    /// `dynamodb_key_values`.
    table_keys: Mutex<BTreeMap<String, TableKeys>>,
    /// What the realism layer remembers.
    world: Mutex<World>,
    /// The tags given to each API key by id (`config.api_key_tags`).
    key_tags: Mutex<BTreeMap<String, serde_json::Map<String, serde_json::Value>>>,
}

impl Shared {
    /// Draws the fault for one request, if any: the first response of an
    /// operation in `lose_first` is lost, otherwise an even mix of the five.
    fn draw(&self, op: Option<&str>) -> Option<(Fault, f64)> {
        if let Some(op) = op {
            let mut once = self.lose_first.lock().unwrap();
            if let Some(i) = once.iter().position(|o| *o == op) {
                once.remove(i);
                return Some((Fault::LostResponse, 0.0));
            }
        }
        let mut rng = self.rng.lock().unwrap();
        if rng.unit() >= self.config.rate {
            return None;
        }
        let fault = match rng.next() % 5 {
            0 => Fault::ServerError,
            1 => Fault::Throttle,
            2 => Fault::Reset,
            3 if self.config.lose_responses => Fault::LostResponse,
            3 => Fault::Reset,
            _ => Fault::Latency,
        };
        Some((fault, rng.unit()))
    }

    /// Whether an enforced limit refuses this call now (said on stderr,
    /// with how early the call came). A call takes a token from every
    /// bucket that covers it, or from none.
    fn refused(&self, service: Option<&str>, operation: &str) -> bool {
        let covering: Vec<_> = self
            .buckets
            .iter()
            .filter(|b| b.lock().unwrap().limit.covers(service, operation))
            .collect();
        if covering.is_empty() {
            return false;
        }
        // Locked in the buckets' order, so two calls never wait on each other.
        let mut held: Vec<_> = covering.iter().map(|b| b.lock().unwrap()).collect();
        let now = Instant::now();
        for b in &held {
            if !b.allows(now) {
                let early = b.tat.map(|t| t.saturating_duration_since(now));
                eprintln!(
                    "fault proxy: {operation} refused by {}, {early:?} before its bucket refills",
                    b.limit.operation
                );
                return true;
            }
        }
        for b in &mut held {
            b.take(now);
            self.stats.limited_passed.fetch_add(1, Ordering::Relaxed);
        }
        false
    }
}

/// What the DynamoDB model of AWS behaviours moto lacks remembers (see
/// `FaultConfig::pitr_window` and `FaultConfig::gsi_backfill`).
#[derive(Debug, Default)]
struct DynamoModel {
    /// When each table's CreateTable went through the proxy.
    created: BTreeMap<String, Instant>,
    /// Until when each (table, index) made by UpdateTable backfills.
    backfilling: BTreeMap<(String, String), Instant>,
}

impl DynamoModel {
    fn backfilling(&self, table: &str, index: &str, now: Instant) -> bool {
        self.backfilling
            .get(&(table.to_owned(), index.to_owned()))
            .is_some_and(|until| now < *until)
    }
}

/// The index creations and deletions an UpdateTable request asks for:
/// (index name, whether it is a creation).
fn index_updates(request: &serde_json::Value) -> Vec<(String, bool)> {
    request["GlobalSecondaryIndexUpdates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| {
            let (action, create) = match (u.get("Create"), u.get("Delete")) {
                (Some(c), _) => (c, true),
                (_, Some(d)) => (d, false),
                _ => return None,
            };
            Some((action["IndexName"].as_str()?.to_owned(), create))
        })
        .collect()
}

impl Shared {
    /// The answer AWS would give in place of moto's, when the DynamoDB
    /// model refuses the request; remembers what later answers depend on.
    fn dynamo_refuses(&self, service: Option<&str>, op: &str, body: &[u8]) -> Option<Vec<u8>> {
        let (pitr, backfill) = (self.config.pitr_window, self.config.gsi_backfill);
        if service != Some("dynamodb") || (pitr.is_none() && backfill.is_none()) {
            return None;
        }
        let request: serde_json::Value = serde_json::from_slice(body).ok()?;
        let table = request["TableName"].as_str()?.to_owned();
        let now = Instant::now();
        let mut model = self.dynamo.lock().unwrap();
        let refuse = |code: &str, message: &str| {
            eprintln!("fault proxy: {op} on {table} answered {code} (AWS model)");
            Some(error_response(Some("dynamodb"), 400, code, message))
        };
        match op {
            "CreateTable" if pitr.is_some() => {
                model.created.insert(table, now);
                None
            }
            "UpdateContinuousBackups" => {
                let made = *model.created.get(&table)?;
                if now < made + pitr? {
                    return refuse(
                        "ContinuousBackupsUnavailableException",
                        "Backups are being enabled for the table",
                    );
                }
                None
            }
            "UpdateTable" => {
                backfill?;
                let updates = index_updates(&request);
                let busy = model
                    .backfilling
                    .iter()
                    .any(|((t, _), until)| *t == table && now < *until);
                if updates.len() > 1 || (!updates.is_empty() && busy) {
                    return refuse(
                        "LimitExceededException",
                        "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table",
                    );
                }
                None
            }
            "Query" | "Scan" => {
                backfill?;
                let index = request["IndexName"].as_str()?;
                if model.backfilling(&table, index, now) {
                    return refuse(
                        "ValidationException",
                        &format!("Cannot read from backfilling global secondary index: {index}"),
                    );
                }
                None
            }
            _ => None,
        }
    }

    /// moto's answer as AWS would give it under the DynamoDB model: an
    /// index an UpdateTable just made starts backfilling, and DescribeTable
    /// shows it CREATING until its time is up.
    fn dynamo_answer(
        &self,
        service: Option<&str>,
        op: &str,
        body: &[u8],
        answer: Vec<u8>,
    ) -> Vec<u8> {
        let Some(backfill) = self.config.gsi_backfill else {
            return answer;
        };
        if service != Some("dynamodb") || !matches!(op, "UpdateTable" | "DescribeTable") {
            return answer;
        }
        let Some(request) = serde_json::from_slice::<serde_json::Value>(body).ok() else {
            return answer;
        };
        let Some(table) = request["TableName"].as_str() else {
            return answer;
        };
        let now = Instant::now();
        let mut model = self.dynamo.lock().unwrap();
        if op == "UpdateTable" {
            if answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200") {
                for (index, create) in index_updates(&request) {
                    if create {
                        model
                            .backfilling
                            .insert((table.to_owned(), index), now + backfill);
                    }
                }
            }
            return answer;
        }
        let model = &*model;
        rewrite_json(&answer, |described| {
            let mut changed = false;
            let indexes = described["Table"]["GlobalSecondaryIndexes"].as_array_mut();
            for gsi in indexes.into_iter().flatten() {
                let Some(index) = gsi["IndexName"].as_str() else {
                    continue;
                };
                if model.backfilling(table, index, now) {
                    gsi["IndexStatus"] = "CREATING".into();
                    gsi["Backfilling"] = true.into();
                    changed = true;
                }
            }
            changed
        })
        .unwrap_or(answer)
    }
}

/// An answer with its JSON body changed by `edit` (which says whether it
/// changed anything), sent with a fresh `Content-Length` and without the
/// body's checksum header; `None` when it is not JSON or nothing changed.
fn rewrite_json(raw: &[u8], edit: impl FnOnce(&mut serde_json::Value) -> bool) -> Option<Vec<u8>> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let (start, headers) = parse_head(&raw[..end]).ok()?;
    let rest = &raw[end..];
    let body = if is_chunked(&headers) {
        dechunk(rest)?
    } else if let Some(len) = header(&headers, "content-length").and_then(|l| l.parse().ok()) {
        rest.get(..len)?.to_vec()
    } else {
        rest.to_vec()
    };
    let mut value: serde_json::Value = serde_json::from_slice(&body).ok()?;
    if !edit(&mut value) {
        return None;
    }
    let body = serde_json::to_vec(&value).ok()?;
    let mut out = format!("{}\r\n", start.join(" ")).into_bytes();
    for (k, v) in &headers {
        if !hop_by_hop(k) && !k.eq_ignore_ascii_case("x-amz-crc32") {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    Some(out)
}

/// SplitMix64: small, seeded, good enough to draw faults.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A token bucket in GCRA form. Calls that come up to a quarter of an
/// interval early are let through: the client's pacer releases them on
/// time, but the trip to the proxy (signing, scheduling on a busy machine)
/// adds jitter that AWS's enforcement, over a real network, does not count
/// against anyone either.
struct Bucket {
    limit: RateLimit,
    /// When the bucket is full again, in the theoretical arrival time sense.
    tat: Option<Instant>,
}

impl Bucket {
    fn new(limit: RateLimit) -> Bucket {
        Bucket { limit, tat: None }
    }

    /// Whether a call now would get a token.
    fn allows(&self, now: Instant) -> bool {
        let every = self.limit.every;
        let slack = every * self.limit.burst.saturating_sub(1) + every / 4;
        let tat = self.tat.unwrap_or(now).max(now);
        tat.saturating_duration_since(now) <= slack
    }

    fn take(&mut self, now: Instant) -> bool {
        if !self.allows(now) {
            return false;
        }
        let tat = self.tat.unwrap_or(now).max(now);
        self.tat = Some(tat + self.limit.every);
        true
    }
}

/// One request, as read from the client.
struct Request {
    method: String,
    target: String,
    headers: Headers,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept after this request
    /// (HTTP/1.1's default).
    fn keep_alive(&self) -> bool {
        !self
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
    }
}

/// The AWS service a request is for.
pub fn service(headers: &[(String, String)]) -> Option<String> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if let Some(target) = get("x-amz-target") {
        if target.starts_with("DynamoDB_") {
            return Some("dynamodb".into());
        }
        if target.starts_with("Logs_") {
            return Some("logs".into());
        }
    }
    // AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/apigateway/aws4_request, ...
    let auth = get("authorization")?;
    let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
    let mut parts = scope.trim().split('/').rev();
    (parts.next()? == "aws4_request").then_some(())?;
    parts.next().map(str::to_owned)
}

/// The operation of a request where the proxy enforces limits or loses a
/// first response: API Gateway's REST API and usage plan writes, and
/// DynamoDB's CreateTable, named as AWS names them.
pub fn operation(service: Option<&str>, method: &str, target: &str) -> Option<&'static str> {
    if service != Some("apigateway") {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["restapis"]) => Some("CreateRestApi"),
        ("POST", ["usageplans"]) => Some("CreateUsagePlan"),
        ("PUT", ["restapis", _]) => Some("PutRestApi"),
        ("DELETE", ["restapis", _]) => Some("DeleteRestApi"),
        ("POST", ["restapis", _, "deployments"]) => Some("CreateDeployment"),
        _ => None,
    }
}

/// The AWS name of any request's operation (`CreateFunction`,
/// `GetRestApis`, `PutRolePolicy`), told from the request alone: the
/// `X-Amz-Target` of the JSON protocols (DynamoDB, Logs, ACM), the `Action`
/// of the query ones (IAM, STS), the method and path of the REST ones (API
/// Gateway, Lambda, Route 53). A REST call this does not know is named
/// `METHOD /path` with its ids replaced by `{}`.
pub fn operation_name(
    service: Option<&str>,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> String {
    if let Some(t) = header(headers, "x-amz-target") {
        return t.rsplit('.').next().unwrap_or(t).to_owned();
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let form = std::str::from_utf8(body).unwrap_or("");
    if let Some(action) = [query, form]
        .iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("Action="))
    {
        return action.to_owned();
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // Smithy RPC v2 CBOR (CloudWatch): `/service/<service>/operation/<op>`.
    if let ["service", _, "operation", op] = segments.as_slice() {
        return (*op).to_owned();
    }
    let named = match service {
        Some("apigateway") => apigateway_operation(method, &segments, query),
        Some("lambda") => lambda_operation(method, &segments),
        Some("route53") => route53_operation(method, &segments),
        _ => None,
    };
    named.unwrap_or_else(|| {
        let shape: Vec<&str> = segments
            .iter()
            .enumerate()
            .map(|(i, s)| if i % 2 == 1 { "{}" } else { s })
            .collect();
        format!("{method} /{}", shape.join("/"))
    })
}

/// Whether an operation, as [`operation_name`] names it, changes
/// something: everything but Get, List, Describe and Head calls.
pub fn is_mutating(operation: &str) -> bool {
    let read = ["Get", "List", "Describe", "Head", "GET ", "HEAD "];
    !read.iter().any(|p| operation.starts_with(p))
}

/// API Gateway's REST paths: `/restapis/{id}/resources/{id}/methods/GET`
/// and so on, a collection word then an id, except where a word names one
/// thing (`integration`, `account`).
fn apigateway_operation(method: &str, segments: &[&str], query: &str) -> Option<String> {
    let mut i = 0;
    let mut words: Vec<&str> = Vec::new();
    let mut item = false;
    while i < segments.len() {
        let word = segments[i];
        words.push(word);
        if matches!(word, "integration" | "account") {
            item = true;
            i += 1;
        } else {
            item = i + 1 < segments.len();
            i += 2;
        }
    }
    let last = *words.last()?;
    let previous = words.len().checked_sub(2).map(|p| words[p]);
    if last == "tags" {
        return Some(
            match method {
                "GET" => "GetTags",
                "PUT" => "TagResource",
                "DELETE" => "UntagResource",
                _ => return None,
            }
            .to_owned(),
        );
    }
    if last == "exports" && method == "GET" {
        return Some("GetExport".to_owned());
    }
    let (one, many) = match last {
        "restapis" => ("RestApi", "RestApis"),
        "resources" => ("Resource", "Resources"),
        "methods" => ("Method", "Methods"),
        "integration" => ("Integration", "Integration"),
        "responses" if previous == Some("integration") => {
            ("IntegrationResponse", "IntegrationResponses")
        }
        "responses" => ("MethodResponse", "MethodResponses"),
        "deployments" => ("Deployment", "Deployments"),
        "stages" => ("Stage", "Stages"),
        "usageplans" => ("UsagePlan", "UsagePlans"),
        "keys" => ("UsagePlanKey", "UsagePlanKeys"),
        "usage" => ("Usage", "Usage"),
        "apikeys" => ("ApiKey", "ApiKeys"),
        "domainnames" => ("DomainName", "DomainNames"),
        "basepathmappings" => ("BasePathMapping", "BasePathMappings"),
        "account" => ("Account", "Account"),
        "gatewayresponses" => ("GatewayResponse", "GatewayResponses"),
        "authorizers" => ("Authorizer", "Authorizers"),
        "models" => ("Model", "Models"),
        "requestvalidators" => ("RequestValidator", "RequestValidators"),
        _ => return None,
    };
    let import = query.split('&').any(|kv| kv == "mode=import");
    Some(match (method, item) {
        ("GET", true) => format!("Get{one}"),
        ("GET", false) => format!("Get{many}"),
        ("POST", false) if import => format!("Import{one}"),
        ("POST", _) => format!("Create{one}"),
        ("PUT", _) => format!("Put{one}"),
        ("PATCH", _) => format!("Update{one}"),
        ("DELETE", _) => format!("Delete{one}"),
        _ => return None,
    })
}

/// Lambda's REST paths: `/2015-03-31/functions/{name}/code` and so on.
fn lambda_operation(method: &str, segments: &[&str]) -> Option<String> {
    let rest = segments.get(1..)?;
    let name = match (method, rest) {
        ("GET", ["functions"]) => "ListFunctions",
        ("POST", ["functions"]) => "CreateFunction",
        ("GET", ["functions", _]) => "GetFunction",
        ("DELETE", ["functions", _]) => "DeleteFunction",
        ("PUT", ["functions", _, "code"]) => "UpdateFunctionCode",
        ("GET", ["functions", _, "configuration"]) => "GetFunctionConfiguration",
        ("PUT", ["functions", _, "configuration"]) => "UpdateFunctionConfiguration",
        ("GET", ["functions", _, "policy"]) => "GetPolicy",
        ("POST", ["functions", _, "policy"]) => "AddPermission",
        ("DELETE", ["functions", _, "policy", _]) => "RemovePermission",
        ("POST", ["functions", _, "versions"]) => "PublishVersion",
        ("GET", ["functions", _, "versions"]) => "ListVersionsByFunction",
        ("PUT", ["functions", _, "concurrency"]) => "PutFunctionConcurrency",
        ("GET", ["functions", _, "concurrency"]) => "GetFunctionConcurrency",
        ("DELETE", ["functions", _, "concurrency"]) => "DeleteFunctionConcurrency",
        ("GET", ["tags", _]) => "ListTags",
        ("POST", ["tags", _]) => "TagResource",
        ("DELETE", ["tags", _]) => "UntagResource",
        _ => return None,
    };
    Some(name.to_owned())
}

/// Route 53's REST paths: `/2013-04-01/hostedzone/{id}/rrset` and so on.
fn route53_operation(method: &str, segments: &[&str]) -> Option<String> {
    let rest = segments.get(1..)?;
    let name = match (method, rest) {
        ("GET", ["hostedzone"]) => "ListHostedZones",
        ("POST", ["hostedzone"]) => "CreateHostedZone",
        ("GET", ["hostedzone", _]) => "GetHostedZone",
        ("DELETE", ["hostedzone", _]) => "DeleteHostedZone",
        ("GET", ["hostedzone", _, "rrset"]) => "ListResourceRecordSets",
        ("POST", ["hostedzone", _, "rrset"]) => "ChangeResourceRecordSets",
        ("GET", ["hostedzonesbyname"]) => "ListHostedZonesByName",
        ("GET", ["change", _]) => "GetChange",
        ("GET", ["tags", "hostedzone", _]) => "ListTagsForResource",
        ("POST", ["tags", "hostedzone", _]) => "ChangeTagsForResource",
        _ => return None,
    };
    Some(name.to_owned())
}

/// An error answer in the wire shape of `service`'s protocol.
fn error_response(service: Option<&str>, status: u16, code: &str, message: &str) -> Vec<u8> {
    if service == Some("monitoring") {
        // CloudWatch, as the Rust SDK reaches it: RPC v2 CBOR.
        return usage_models::cbor_error(status, code, message);
    }
    let (content_type, extra, body) = match service {
        Some("apigateway") => (
            "application/json",
            format!("x-amzn-ErrorType: {code}\r\n"),
            format!(r#"{{"message":"{message}"}}"#),
        ),
        Some("lambda") => {
            let body = if code == "TooManyRequestsException" {
                format!(
                    r#"{{"Type":"User","message":"{message}","Reason":"CallerRateLimitExceeded"}}"#
                )
            } else {
                let kind = if status >= 500 { "Service" } else { "User" };
                format!(r#"{{"Type":"{kind}","message":"{message}"}}"#)
            };
            (
                "application/json",
                format!("x-amzn-ErrorType: {code}\r\n"),
                body,
            )
        }
        Some("dynamodb") => (
            "application/x-amz-json-1.0",
            String::new(),
            format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"{message}"}}"#
            ),
        ),
        // CloudWatch Logs and ACM: AWS JSON 1.1 (ACM API reference,
        // "Common Errors": ThrottlingException, HTTP 400).
        Some("logs" | "acm") => (
            "application/x-amz-json-1.1",
            String::new(),
            format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
        ),
        // IAM, STS (query protocol) and Route 53 (REST-XML).
        _ => {
            let kind = if status >= 500 { "Receiver" } else { "Sender" };
            (
                "text/xml",
                String::new(),
                format!(
                    "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>\
                     <Message>{message}</Message></Error>\
                     <RequestId>fault-proxy</RequestId></ErrorResponse>"
                ),
            )
        }
    };
    let reason = match status {
        400 => "Bad Request",
        409 => "Conflict",
        429 => "Too Many Requests",
        _ => "Internal Server Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n{extra}\
         x-amzn-RequestId: fault-proxy\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// The service's throttling error, exactly as AWS sends it.
pub fn throttling_response(service: Option<&str>) -> Vec<u8> {
    match service {
        Some("apigateway") => error_response(
            service,
            429,
            "TooManyRequestsException",
            "Too Many Requests",
        ),
        Some("lambda") => error_response(service, 429, "TooManyRequestsException", "Rate exceeded"),
        Some("dynamodb") => error_response(
            service,
            400,
            "ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        ),
        Some("logs" | "acm") => {
            error_response(service, 400, "ThrottlingException", "Rate exceeded")
        }
        // IAM, STS, Route 53, and CloudWatch (whose code is the query
        // protocol's, in CBOR).
        _ => error_response(service, 400, "Throttling", "Rate exceeded"),
    }
}

/// A 500 in the service's shape.
pub fn server_error_response(service: Option<&str>) -> Vec<u8> {
    let code = match service {
        Some("apigateway") | Some("lambda") => "ServiceException",
        _ => "InternalFailure",
    };
    error_response(service, 500, code, "Internal server error (injected)")
}

/// Serves one client connection, request after request.
async fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let Some(head) = read_head(&mut read).await? else {
            return Ok(()); // the client closed between requests
        };
        let mut request = parse_request(&head)?;
        if request
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        {
            write.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        request.body = read_body(&mut read, &request.headers).await?;
        shared.stats.requests.fetch_add(1, Ordering::Relaxed);
        let keep = request.keep_alive();
        let svc = service(&request.headers);
        let op = operation_name(
            svc.as_deref(),
            &request.method,
            &request.target,
            &request.headers,
            &request.body,
        );
        let key = format!("{}:{op}", svc.as_deref().unwrap_or("unknown"));
        shared.stats.count(&key, false);

        if let Some(refusal) = refused_first(shared, svc.as_deref(), &op) {
            write.write_all(&reframe(&refusal, keep)?).await?;
            if !keep {
                return Ok(());
            }
            continue;
        }
        if let Some(throttled) = throttled_first(shared, svc.as_deref(), &op) {
            shared.stats.throttles.fetch_add(1, Ordering::Relaxed);
            shared.stats.count(&key, true);
            write.write_all(&reframe(&throttled, keep)?).await?;
            if !keep {
                return Ok(());
            }
            continue;
        }
        if shared.config.import_warnings
            && let Some(refusal) = import_warnings(&op, &request.target, &request.body)
        {
            write.write_all(&reframe(&refusal, keep)?).await?;
            if !keep {
                return Ok(());
            }
            continue;
        }

        let answer = match shared.draw(Some(op.as_str())) {
            Some((Fault::Reset, _)) => {
                shared.stats.resets.fetch_add(1, Ordering::Relaxed);
                // Dropping both halves closes the socket unanswered.
                return Ok(());
            }
            Some((Fault::LostResponse, _)) => {
                shared.stats.lost_responses.fetch_add(1, Ordering::Relaxed);
                shared.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                // AWS carried it out: the models know, though the client
                // does not.
                if let Ok(answer) = carry_out(shared, &op, &request).await {
                    let answer = shared.dynamo_answer(svc.as_deref(), &op, &request.body, answer);
                    shared.realism_answer(svc.as_deref(), &op, &request, answer);
                }
                return Ok(());
            }
            Some((Fault::ServerError, _)) => {
                shared.stats.server_errors.fetch_add(1, Ordering::Relaxed);
                server_error_response(svc.as_deref())
            }
            Some((Fault::Throttle, _)) => {
                shared.stats.throttles.fetch_add(1, Ordering::Relaxed);
                throttling_response(svc.as_deref())
            }
            latency => {
                if let Some((Fault::Latency, share)) = latency {
                    shared.stats.delayed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(shared.config.max_latency.mul_f64(share)).await;
                }
                if shared.refused(svc.as_deref(), &op) {
                    shared.stats.count(&key, true);
                    shared
                        .stats
                        .limit_rejections
                        .fetch_add(1, Ordering::Relaxed);
                    throttling_response(svc.as_deref())
                } else if let Some(answer) =
                    shared.dynamo_refuses(svc.as_deref(), &op, &request.body)
                {
                    answer
                } else if let Some(refusal) = dynamodb_key_values(shared, &request, &op).await {
                    refusal
                } else if let Some(refusal) = shared.realism_refuses(svc.as_deref(), &op, &request)
                {
                    shared
                        .stats
                        .realism_refusals
                        .fetch_add(1, Ordering::Relaxed);
                    refusal
                } else {
                    shared.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                    let answer = carry_out(shared, &op, &request).await?;
                    let answer = shared.dynamo_answer(svc.as_deref(), &op, &request.body, answer);
                    shared.realism_answer(svc.as_deref(), &op, &request, answer)
                }
            }
        };
        write.write_all(&reframe(&answer, keep)?).await?;
        if !keep {
            return Ok(());
        }
    }
}

/// Sends the request to moto and adds what AWS does on top of it that moto
/// does not (each behaviour behind its switch).
async fn carry_out(shared: &Shared, op: &str, r: &Request) -> std::io::Result<Vec<u8>> {
    if shared.config.usage_model && matches!(op, "GetUsage" | "UpdateUsage") {
        return usage_models::answer(&shared.upstream, &shared.usage, op, r).await;
    }
    if r.header("smithy-protocol")
        .is_some_and(|p| p.eq_ignore_ascii_case("rpc-v2-cbor"))
    {
        return usage_models::cloudwatch(&shared.upstream, r).await;
    }
    if shared.config.api_key_tags
        && op == "TagResource"
        && let Some(id) = tagged_api_key(&r.target)
    {
        return Ok(tag_api_key(shared, &id, r));
    }
    let mut answer = forward(&shared.upstream, r).await?;
    if shared.config.api_key_tags && matches!(op, "GetApiKeys" | "GetApiKey") {
        answer = with_api_key_tags(shared, answer);
    }
    if shared.config.put_rest_api_renames && op == "PutRestApi" {
        answer = put_rest_api_renames(&shared.upstream, r, answer).await?;
    }
    if shared.config.import_warnings && matches!(op, "PutRestApi" | "ImportRestApi") {
        answer = with_import_warnings(r, answer);
    }
    Ok(answer)
}

/// An import that went through despite warnings (no `failonwarnings`)
/// lists them in the answer's `warnings`, as AWS's RestApi does.
fn with_import_warnings(r: &Request, answer: Vec<u8>) -> Vec<u8> {
    let Some(document) = serde_json::from_slice::<serde_json::Value>(&r.body).ok() else {
        return answer;
    };
    let warnings = openapi_import_warnings(&document);
    match json_answer(&answer) {
        Some((status, mut api)) if (200..300).contains(&status) && !warnings.is_empty() => {
            api["warnings"] = serde_json::json!(warnings);
            json_response(status, "OK", &[], &api)
        }
        _ => answer,
    }
}

/// The id of the API key a TagResource path names
/// (`/tags/<url-encoded arn:...::/apikeys/<id>>`), if it names one.
fn tagged_api_key(target: &str) -> Option<String> {
    let path = target.split('?').next()?.strip_prefix("/tags/")?;
    let mut arn = Vec::new();
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            arn.push(b);
            i += 3;
        } else {
            arn.push(bytes[i]);
            i += 1;
        }
    }
    let arn = String::from_utf8(arn).ok()?;
    let id = arn.split_once(":/apikeys/")?.1;
    (!id.is_empty() && !id.contains('/')).then(|| id.to_owned())
}

/// TagResource on an API key, kept by the proxy: 204 as AWS answers.
fn tag_api_key(shared: &Shared, id: &str, r: &Request) -> Vec<u8> {
    let tags = serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|b| b.get("tags").and_then(|t| t.as_object()).cloned())
        .unwrap_or_default();
    shared
        .key_tags
        .lock()
        .unwrap()
        .entry(id.to_owned())
        .or_default()
        .extend(tags);
    b"HTTP/1.1 204 No Content\r\nx-amzn-RequestId: fault-proxy\r\nContent-Length: 0\r\n\r\n"
        .to_vec()
}

/// moto's GetApiKey(s) answer with the tags the proxy kept added to each
/// key.
fn with_api_key_tags(shared: &Shared, answer: Vec<u8>) -> Vec<u8> {
    let kept = shared.key_tags.lock().unwrap();
    if kept.is_empty() {
        return answer;
    }
    let Some((200, mut body)) = json_answer(&answer) else {
        return answer;
    };
    let add = |key: &mut serde_json::Value| {
        let Some(tags) = key["id"].as_str().and_then(|id| kept.get(id)) else {
            return;
        };
        if !key["tags"].is_object() {
            key["tags"] = serde_json::json!({});
        }
        if let Some(have) = key["tags"].as_object_mut() {
            have.extend(tags.clone());
        }
    };
    match body.get_mut("item").and_then(|i| i.as_array_mut()) {
        Some(items) => items.iter_mut().for_each(add),
        None => add(&mut body),
    }
    json_response(200, "OK", &[], &body)
}

/// An API Gateway answer with a JSON body.
fn json_response(
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> Vec<u8> {
    let body = body.to_string();
    let mut out = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "x-amzn-RequestId: fault-proxy\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}

/// The 400 a `refuse_first` operation gets on its first call.
fn refused_first(shared: &Shared, service: Option<&str>, op: &str) -> Option<Vec<u8>> {
    let mut once = shared.refuse_first.lock().unwrap();
    let i = once.iter().position(|o| *o == op)?;
    once.remove(i);
    eprintln!("fault proxy: {op} refused once (refuse_first)");
    Some(error_response(
        service,
        400,
        "BadRequestException",
        "Refused by the fault proxy (refuse_first)",
    ))
}

/// The throttling answer a `throttle_first` operation gets, once per entry.
fn throttled_first(shared: &Shared, service: Option<&str>, op: &str) -> Option<Vec<u8>> {
    let mut left = shared.throttle_first.lock().unwrap();
    let i = left.iter().position(|o| *o == op)?;
    left.remove(i);
    eprintln!("fault proxy: {op} throttled (throttle_first)");
    Some(throttling_response(service))
}

/// A query parameter of a request target, its name compared without case
/// (the SDK sends `failonwarnings`, the docs write `failOnWarnings`).
fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = target.split_once('?')?;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The status and JSON body of an answer, when it is JSON.
fn json_answer(raw: &[u8]) -> Option<(u16, serde_json::Value)> {
    let framed = reframe(raw, false).ok()?;
    let end = framed.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let status = std::str::from_utf8(&framed[..end])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, serde_json::from_slice(&framed[end..]).ok()?))
}

/// A PutRestApi in overwrite mode, as AWS carries it out: the API is
/// renamed to the document's `info.title` (moto keeps the old name), and
/// the answer, the API after the put, shows the new name.
async fn put_rest_api_renames(
    upstream: &str,
    r: &Request,
    answer: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let overwrite = query_param(&r.target, "mode") == Some("overwrite");
    let title = serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|d| d["info"]["title"].as_str().map(str::to_owned));
    let ok = json_answer(&answer).is_some_and(|(status, _)| (200..300).contains(&status));
    let (true, Some(title), true) = (overwrite, title, ok) else {
        return Ok(answer);
    };
    let path = r.target.split('?').next().unwrap_or(&r.target);
    let patch = serde_json::json!({
        "patchOperations": [{ "op": "replace", "path": "/name", "value": title }]
    });
    let rename = Request {
        method: "PATCH".into(),
        target: path.to_owned(),
        headers: r
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
            .cloned()
            .chain([("Content-Type".to_owned(), "application/json".to_owned())])
            .collect(),
        body: patch.to_string().into_bytes(),
    };
    let renamed = forward(upstream, &rename).await?;
    // The rename's answer is the API as it now stands: the put's own.
    match json_answer(&renamed) {
        Some((status, _)) if (200..300).contains(&status) => Ok(renamed),
        _ => Ok(answer),
    }
}

/// The keywords API Gateway's models do not support ("Amazon API Gateway
/// important notes for REST APIs": models are JSON Schema draft 4, without
/// `additionalProperties`, `anyOf`, `oneOf`, `discriminator`, `example`,
/// `exclusiveMinimum`, `readOnly`; `nullable` is OpenAPI's own, not draft
/// 4's).
const UNSUPPORTED_IN_MODELS: &[&str] = &[
    "additionalProperties",
    "anyOf",
    "oneOf",
    "discriminator",
    "example",
    "exclusiveMinimum",
    "readOnly",
    "nullable",
];

/// The import warnings API Gateway gives for an OpenAPI document: one per
/// model (a schema of `components.schemas`) that uses an unsupported
/// keyword or number format (`int32`, `int64`, `decimal`), in the words
/// its importer uses ("Invalid model specified: Validation Result:
/// warnings : [], errors : [Invalid model schema specified]", as quoted in
/// awslabs/aws-apigateway-importer issues 75 and 213).
pub fn openapi_import_warnings(document: &serde_json::Value) -> Vec<String> {
    fn unsupported(schema: &serde_json::Value, found: &mut Vec<String>) {
        let Some(s) = schema.as_object() else {
            return;
        };
        for k in UNSUPPORTED_IN_MODELS {
            if s.contains_key(*k) && !found.iter().any(|f| f == k) {
                found.push((*k).to_owned());
            }
        }
        if let Some(f) = s.get("format").and_then(|f| f.as_str())
            && ["int32", "int64", "decimal"].contains(&f)
        {
            let label = format!("format {f}");
            if !found.contains(&label) {
                found.push(label);
            }
        }
        for p in s
            .get("properties")
            .and_then(|p| p.as_object())
            .into_iter()
            .flat_map(|p| p.values())
        {
            unsupported(p, found);
        }
        if let Some(items) = s.get("items") {
            unsupported(items, found);
        }
    }
    let mut warnings = Vec::new();
    let schemas = document["components"]["schemas"].as_object();
    for (name, schema) in schemas.into_iter().flatten() {
        let mut found = Vec::new();
        unsupported(schema, &mut found);
        if !found.is_empty() {
            let quoted: Vec<String> = found.iter().map(|k| format!("\"{k}\"")).collect();
            warnings.push(format!(
                "Unable to create model for '{name}': Invalid model specified: Validation \
                 Result: warnings : [], errors : [Invalid model schema specified. \
                 Unsupported keyword(s): [{}]]",
                quoted.join(", ")
            ));
        }
    }
    warnings
}

/// The importer's refusal of a PutRestApi or ImportRestApi with
/// `failonwarnings=true` whose document draws warnings: a
/// `BadRequestException` listing them, nothing changed. Without the flag
/// the put goes through, its answer listing them
/// ([`with_import_warnings`]).
fn import_warnings(op: &str, target: &str, body: &[u8]) -> Option<Vec<u8>> {
    if !matches!(op, "PutRestApi" | "ImportRestApi") {
        return None;
    }
    if !query_param(target, "failonwarnings").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    let document: serde_json::Value = serde_json::from_slice(body).ok()?;
    let warnings = openapi_import_warnings(&document);
    if warnings.is_empty() {
        return None;
    }
    eprintln!(
        "fault proxy: {op} refused with {} import warning(s)",
        warnings.len()
    );
    let message = format!("Warnings found during import:\n\t{}", warnings.join("\n\t"));
    Some(json_response(
        400,
        "Bad Request",
        &[("x-amzn-ErrorType", "BadRequestException")],
        &serde_json::json!({ "message": message }),
    ))
}

/// The key attributes of one DynamoDB table: its partition key and each
/// global secondary index's partition key, as DescribeTable gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableKeys {
    pub hash: String,
    /// (index name, its partition key attribute).
    pub indexes: Vec<(String, String)>,
}

impl TableKeys {
    /// From a DescribeTable answer's body.
    fn from_description(body: &serde_json::Value) -> Option<TableKeys> {
        let table = body.get("Table")?;
        let hash_of = |schema: &serde_json::Value| -> Option<String> {
            schema.as_array()?.iter().find_map(|k| {
                (k.get("KeyType")?.as_str()? == "HASH")
                    .then(|| k.get("AttributeName")?.as_str().map(str::to_owned))?
            })
        };
        Some(TableKeys {
            hash: hash_of(table.get("KeySchema")?)?,
            indexes: table
                .get("GlobalSecondaryIndexes")
                .and_then(|g| g.as_array())
                .map(|g| {
                    g.iter()
                        .filter_map(|i| {
                            Some((
                                i.get("IndexName")?.as_str()?.to_owned(),
                                hash_of(i.get("KeySchema")?)?,
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// With `dynamodb_key_values` on, DynamoDB's answer to a data-plane call
/// that moto would carry out but AWS refuses, or `None` to forward it.
/// Key schemas come from DescribeTable on moto (with the caller's
/// credentials, so the same account and region), kept until a
/// CreateTable, UpdateTable or DeleteTable of the table passes.
async fn dynamodb_key_values(shared: &Shared, r: &Request, op: &str) -> Option<Vec<u8>> {
    if !shared.config.dynamodb_key_values || service(&r.headers).as_deref() != Some("dynamodb") {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    let table = body.get("TableName")?.as_str()?.to_owned();
    if matches!(op, "CreateTable" | "UpdateTable" | "DeleteTable") {
        shared.table_keys.lock().unwrap().remove(&table);
        return None;
    }
    if !matches!(
        op,
        "PutItem" | "UpdateItem" | "GetItem" | "DeleteItem" | "Query" | "Scan"
    ) {
        return None;
    }
    let known = shared.table_keys.lock().unwrap().get(&table).cloned();
    let keys = match known {
        Some(k) => k,
        None => {
            let describe = Request {
                method: "POST".to_owned(),
                target: r.target.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        if k.eq_ignore_ascii_case("x-amz-target") {
                            (k.clone(), "DynamoDB_20120810.DescribeTable".to_owned())
                        } else {
                            (k.clone(), v.clone())
                        }
                    })
                    .collect(),
                body: serde_json::json!({ "TableName": table })
                    .to_string()
                    .into_bytes(),
            };
            let raw = forward(&shared.upstream, &describe).await.ok()?;
            let answer = reframe(&raw, false).ok()?;
            let end = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
            let description = serde_json::from_slice(&answer[end..]).ok()?;
            // An unknown table: moto gives the error DynamoDB would.
            let keys = TableKeys::from_description(&description)?;
            shared
                .table_keys
                .lock()
                .unwrap()
                .insert(table, keys.clone());
            keys
        }
    };
    let message = dynamodb_refusal(op, &body, &keys)?;
    Some(error_response(
        Some("dynamodb"),
        400,
        "ValidationException",
        &message.replace('"', "\\\""),
    ))
}

/// DynamoDB's largest partition key value, table or index ("Service,
/// account, and table quotas in Amazon DynamoDB": 1 to 2,048 bytes).
const DYNAMODB_MAX_HASH_KEY: usize = 2048;

/// Why DynamoDB refuses a request moto accepts, in AWS's words, or `None`.
///
/// - A number outside DynamoDB's range, in any attribute or expression
///   value ("Supported data types and naming rules in Amazon DynamoDB",
///   Number: 38 digits of precision, magnitude 1E-130 to
///   9.9999999999999999999999999999999999999E+125, or zero).
/// - An empty string as a key attribute value of the table or of a global
///   secondary index (the May 2020 change allowed empty strings in non-key
///   attributes only; API_PutItem: "key attributes ... cannot be empty";
///   the index message as AWS returns it in danishi/dynamodb-csv issue 41,
///   architect/dynalite issue 184, for PutItem and Query alike).
/// - A key string over 2,048 bytes (the quota above; the table's message
///   from amazon-archives/dynamodb-janusgraph-storage-backend issue 296,
///   the index's from wellcomecollection/platform issue 2285).
pub fn dynamodb_refusal(op: &str, body: &serde_json::Value, keys: &TableKeys) -> Option<String> {
    use serde_json::Value;
    let values = body
        .get("ExpressionAttributeValues")
        .and_then(Value::as_object);
    if let Some(values) = values {
        for (name, v) in values {
            if let Some(why) = bad_number_in(v) {
                return Some(format!(
                    "ExpressionAttributeValues contains invalid value: {why} for key {name}"
                ));
            }
        }
    }
    for part in ["Item", "Key"] {
        if let Some(why) = body.get(part).and_then(bad_number_in) {
            return Some(why.to_owned());
        }
    }
    let string = |v: Option<&Value>| v?.get("S")?.as_str().map(str::to_owned);
    let table_key = |value: Option<String>| -> Option<String> {
        let value = value?;
        if value.is_empty() {
            Some(format!(
                "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: {}",
                keys.hash
            ))
        } else if value.len() > DYNAMODB_MAX_HASH_KEY {
            Some("One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes".to_owned())
        } else {
            None
        }
    };
    let index_empty = |index: &str, attr: &str| {
        format!(
            "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty string value. IndexName: {index}, IndexKey: {attr}"
        )
    };
    let names = body
        .get("ExpressionAttributeNames")
        .and_then(Value::as_object);
    let resolve = |path: &str| -> String {
        let path = path.trim();
        names
            .and_then(|n| n.get(path))
            .and_then(Value::as_str)
            .unwrap_or(path)
            .to_owned()
    };
    let placeholder = |v: &str| string(values.and_then(|m| m.get(v.trim())));
    match op {
        "PutItem" => {
            let item = body.get("Item")?;
            if let Some(why) = table_key(string(item.get(&keys.hash))) {
                return Some(why);
            }
            for (index, attr) in &keys.indexes {
                let Some(value) = string(item.get(attr)) else {
                    continue;
                };
                if value.is_empty() {
                    return Some(index_empty(index, attr));
                }
                if value.len() > DYNAMODB_MAX_HASH_KEY {
                    return Some(format!(
                        "One or more parameter values were invalid: Size limit exceeded for Index Key {attr} Actual Size: {} bytes Max Size: 2048 bytes IndexName: {index}",
                        value.len()
                    ));
                }
            }
            None
        }
        "GetItem" | "DeleteItem" => table_key(string(body.get("Key")?.get(&keys.hash))),
        "UpdateItem" => {
            if let Some(why) = table_key(string(body.get("Key")?.get(&keys.hash))) {
                return Some(why);
            }
            let update = body.get("UpdateExpression").and_then(Value::as_str)?;
            for (path, value) in set_clauses(update) {
                let attr = resolve(path);
                if let Some((index, _)) = keys.indexes.iter().find(|(_, a)| *a == attr)
                    && placeholder(value).is_some_and(|v| v.is_empty())
                {
                    return Some(format!(
                        "One or more parameter values are not valid. The update expression attempted to update a secondary index key to a value that is not supported. The AttributeValue for a key attribute cannot contain an empty string value. IndexName: {index}, IndexKey: {attr}"
                    ));
                }
            }
            None
        }
        "Query" => {
            let condition = body.get("KeyConditionExpression").and_then(Value::as_str)?;
            let index = body.get("IndexName").and_then(Value::as_str);
            let hash = match index {
                Some(index) => &keys.indexes.iter().find(|(i, _)| i == index)?.1,
                None => &keys.hash,
            };
            for part in split_and(condition) {
                let Some((path, value)) = part.split_once('=') else {
                    continue;
                };
                if resolve(path) != *hash {
                    continue;
                }
                let value = placeholder(value)?;
                return match index {
                    Some(index) if value.is_empty() => Some(index_empty(index, hash)),
                    Some(_) if value.len() > DYNAMODB_MAX_HASH_KEY => Some("One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes".to_owned()),
                    Some(_) => None,
                    None => table_key(Some(value)),
                };
            }
            None
        }
        _ => None,
    }
}

/// The parts of a key condition joined by `AND`.
fn split_and(expression: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = expression;
    while let Some(i) = rest.to_ascii_uppercase().find(" AND ") {
        parts.push(&rest[..i]);
        rest = &rest[i + 5..];
    }
    parts.push(rest);
    parts
}

/// The `path = value` assignments of an update expression's SET clause.
fn set_clauses(expression: &str) -> Vec<(&str, &str)> {
    let upper = expression.to_ascii_uppercase();
    let Some(start) = upper.find("SET ") else {
        return Vec::new();
    };
    let body = &expression[start + 4..];
    let end = [" REMOVE ", " ADD ", " DELETE "]
        .iter()
        .filter_map(|k| body.to_ascii_uppercase().find(k))
        .min()
        .unwrap_or(body.len());
    body[..end]
        .split(',')
        .filter_map(|a| a.split_once('='))
        .collect()
}

/// DynamoDB's refusal of the first number in an attribute value (nested
/// lists, maps and number sets included) it cannot store, in its words.
fn bad_number_in(value: &serde_json::Value) -> Option<&'static str> {
    use serde_json::Value;
    match value {
        Value::Object(map) => map.iter().find_map(|(k, v)| match (k.as_str(), v) {
            ("N", Value::String(n)) => dynamodb_number_refusal(n),
            ("NS", Value::Array(ns)) => ns
                .iter()
                .filter_map(Value::as_str)
                .find_map(dynamodb_number_refusal),
            _ => bad_number_in(v),
        }),
        Value::Array(items) => items.iter().find_map(bad_number_in),
        _ => None,
    }
}

/// DynamoDB's message for a number text it cannot store, if any (the
/// messages DynamoDB returns for PutItem; the range from "Supported data
/// types and naming rules in Amazon DynamoDB", Number).
pub fn dynamodb_number_refusal(text: &str) -> Option<&'static str> {
    let unsigned = text.trim_start_matches(['-', '+']);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], &unsigned[i + 1..]),
        None => (unsigned, "0"),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let first = digits.iter().position(|d| *d != b'0')?;
    let last = digits.iter().rposition(|d| *d != b'0').unwrap_or(first);
    if last - first + 1 > 38 {
        return Some("Attempting to store more than 38 significant digits in a Number");
    }
    let exponent = exponent
        .parse::<i64>()
        .unwrap_or(if exponent.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        });
    let magnitude = exponent.saturating_add(int.len() as i64 - 1 - first as i64);
    if magnitude > 125 {
        Some(
            "Number overflow. Attempting to store a number with magnitude larger than supported range",
        )
    } else if magnitude < -130 {
        Some(
            "Number underflow. Attempting to store a number with magnitude smaller than supported range",
        )
    } else {
        None
    }
}

/// Reads up to and including the blank line that ends a head; `None` when
/// the peer closed before sending anything.
async fn read_head<R: AsyncRead + Unpin>(read: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if read.read(&mut byte).await? == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(invalid("the connection closed inside a head"))
            };
        }
        head.push(byte[0]);
        if head.len() > MAX_HEAD {
            return Err(invalid("head too large"));
        }
    }
    Ok(Some(head))
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Header names and values, as sent.
type Headers = Vec<(String, String)>;

/// The start line's words and the headers of a head.
fn parse_head(head: &[u8]) -> std::io::Result<(Vec<String>, Headers)> {
    let text = std::str::from_utf8(head).map_err(|_| invalid("a head that is not UTF-8"))?;
    let mut lines = text.trim_end_matches("\r\n").split("\r\n");
    let start = lines
        .next()
        .ok_or_else(|| invalid("no start line"))?
        .splitn(3, ' ')
        .map(str::to_owned)
        .collect();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok((start, headers))
}

fn parse_request(head: &[u8]) -> std::io::Result<Request> {
    let (start, headers) = parse_head(head)?;
    let [method, target, _version] = start.as_slice() else {
        return Err(invalid("a malformed request line"));
    };
    Ok(Request {
        method: method.clone(),
        target: target.clone(),
        headers,
        body: Vec::new(),
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    header(headers, "transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
}

/// A message body by its framing: chunked (decoded), `Content-Length`, or
/// none.
async fn read_body<R: AsyncRead + Unpin>(
    read: &mut R,
    headers: &[(String, String)],
) -> std::io::Result<Vec<u8>> {
    if is_chunked(headers) {
        return read_chunked(read).await;
    }
    let len: usize = match header(headers, "content-length") {
        Some(l) => l.parse().map_err(|_| invalid("a bad Content-Length"))?,
        None => 0,
    };
    let mut body = vec![0u8; len];
    read.read_exact(&mut body).await?;
    Ok(body)
}

async fn read_line<R: AsyncRead + Unpin>(read: &mut R) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if read.read(&mut byte).await? == 0 {
            return Err(invalid("the connection closed inside a chunked body"));
        }
        line.push(byte[0]);
        if line.len() > MAX_HEAD {
            return Err(invalid("chunk line too long"));
        }
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| invalid("a chunk line that is not UTF-8"))
}

async fn read_chunked<R: AsyncRead + Unpin>(read: &mut R) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(read).await?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid("a bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            while !read_line(read).await?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        read.read_exact(&mut body[start..]).await?;
        let mut crlf = [0u8; 2];
        read.read_exact(&mut crlf).await?;
    }
}

/// Headers that describe one hop, which the proxy sets itself.
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "expect",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Sends the request to moto on a fresh connection and reads the whole
/// answer (to the connection's end).
async fn forward(upstream: &str, r: &Request) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    let mut out = format!("{} {} HTTP/1.1\r\n", r.method, r.target);
    for (k, v) in &r.headers {
        if !hop_by_hop(k) {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n",
        r.body.len()
    ));
    stream.write_all(out.as_bytes()).await?;
    stream.write_all(&r.body).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    Ok(raw)
}

/// An answer (moto's or the proxy's own) re-framed for the client: the body
/// decoded from its framing and sent with a `Content-Length`, and the
/// connection kept or closed as the client asked.
fn reframe(raw: &[u8], keep: bool) -> std::io::Result<Vec<u8>> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("an answer without a head"))?
        + 4;
    let (start, headers) = parse_head(&raw[..end])?;
    let status: u16 = start
        .get(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("an answer without a status"))?;
    let rest = &raw[end..];
    let body = if is_chunked(&headers) {
        dechunk(rest).ok_or_else(|| invalid("a malformed chunked answer"))?
    } else if let Some(len) = header(&headers, "content-length").and_then(|l| l.parse().ok()) {
        rest.get(..len)
            .ok_or_else(|| invalid("an answer shorter than its Content-Length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    let bodiless = status == 204 || status == 304 || (100..200).contains(&status);
    let mut out = format!("{}\r\n", start.join(" ")).into_bytes();
    for (k, v) in &headers {
        if !hop_by_hop(k) {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
    }
    if !bodiless {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    let connection = if keep { "keep-alive" } else { "close" };
    out.extend_from_slice(format!("Connection: {connection}\r\n\r\n").as_bytes());
    if !bodiless {
        out.extend_from_slice(&body);
    }
    Ok(out)
}

/// The body of a chunked HTTP/1.1 message (chunk extensions ignored), or
/// `None` when it is malformed.
pub fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// What the realism layer remembers of the calls that went through.
#[derive(Debug, Default)]
struct World {
    /// When each role was created (by name).
    roles: HashMap<String, Instant>,
    /// When each function was created and last updated (by name).
    functions: HashMap<String, FunctionClock>,
    /// When each listed thing was created: by the list that shows it and
    /// the id or name it shows it by.
    created: HashMap<(Listing, String), Instant>,
}

#[derive(Debug, Clone, Copy, Default)]
struct FunctionClock {
    /// `None` for a function made before the proxy started.
    created: Option<Instant>,
    updated: Option<Instant>,
}

/// The list calls the realism layer lags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Listing {
    RestApis,
    UsagePlans,
    ApiKeys,
    DomainNames,
    Functions,
    Tables,
    LogGroups,
    Roles,
}

impl Listing {
    /// The list an operation is, and where its items sit in the JSON
    /// answer: the array's key and the item field that names each one
    /// (`None`: the items are the names).
    fn of(
        service: Option<&str>,
        op: &str,
    ) -> Option<(Listing, &'static str, Option<&'static str>)> {
        Some(match (service?, op) {
            ("apigateway", "GetRestApis") => (Listing::RestApis, "item", Some("id")),
            ("apigateway", "GetUsagePlans") => (Listing::UsagePlans, "item", Some("id")),
            ("apigateway", "GetApiKeys") => (Listing::ApiKeys, "item", Some("id")),
            ("apigateway", "GetDomainNames") => (Listing::DomainNames, "item", Some("domainName")),
            ("lambda", "ListFunctions") => (Listing::Functions, "Functions", Some("FunctionName")),
            ("dynamodb", "ListTables") => (Listing::Tables, "TableNames", None),
            ("logs", "DescribeLogGroups") => {
                (Listing::LogGroups, "logGroups", Some("logGroupName"))
            }
            ("iam", "ListRoles") => (Listing::Roles, "", Some("RoleName")),
            _ => return None,
        })
    }
}

/// What a create made, as its list shows it: told from the request (a
/// name the caller chose) or from the answer (an id AWS chose).
fn created_item(
    service: Option<&str>,
    op: &str,
    request: &Request,
    answer: &serde_json::Value,
) -> Option<(Listing, String)> {
    let from_request = |key: &str| -> Option<String> {
        let body: serde_json::Value = serde_json::from_slice(&request.body).ok()?;
        body.get(key)?.as_str().map(str::to_owned)
    };
    let from_answer = |key: &str| answer.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    Some(match (service?, op) {
        ("apigateway", "CreateRestApi" | "ImportRestApi") => {
            (Listing::RestApis, from_answer("id")?)
        }
        ("apigateway", "CreateUsagePlan") => (Listing::UsagePlans, from_answer("id")?),
        ("apigateway", "CreateApiKey") => (Listing::ApiKeys, from_answer("id")?),
        ("apigateway", "CreateDomainName") => (Listing::DomainNames, from_answer("domainName")?),
        ("lambda", "CreateFunction") => (Listing::Functions, from_request("FunctionName")?),
        ("dynamodb", "CreateTable") => (Listing::Tables, from_request("TableName")?),
        ("logs", "CreateLogGroup") => (Listing::LogGroups, from_request("logGroupName")?),
        ("iam", "CreateRole") => (Listing::Roles, form_value(&request.body, "RoleName")?),
        _ => return None,
    })
}

impl Shared {
    fn window_open(since: Instant, window: Option<Duration>, now: Instant) -> bool {
        window.is_some_and(|w| now < since + w)
    }

    /// Whether the function is busy: `Some("Pending")` right after its
    /// create, `Some("InProgress")` right after an update.
    fn function_busy(&self, world: &World, name: &str, now: Instant) -> Option<&'static str> {
        let clock = world.functions.get(name)?;
        let r = &self.config.realism;
        if clock
            .created
            .is_some_and(|c| Self::window_open(c, r.function_pending, now))
        {
            return Some("Pending");
        }
        clock
            .updated
            .filter(|u| Self::window_open(*u, r.function_updating, now))
            .map(|_| "InProgress")
    }

    /// The answer AWS would give instead of moto's, if any: a role Lambda
    /// cannot assume yet, or an update while another is in progress.
    fn realism_refuses(
        &self,
        service: Option<&str>,
        op: &str,
        request: &Request,
    ) -> Option<Vec<u8>> {
        if service != Some("lambda") {
            return None;
        }
        let now = Instant::now();
        let world = self.world.lock().unwrap();
        if matches!(op, "CreateFunction" | "UpdateFunctionConfiguration") {
            let body: Option<serde_json::Value> = serde_json::from_slice(&request.body).ok();
            let role = body
                .as_ref()
                .and_then(|b| b.get("Role"))
                .and_then(|r| r.as_str())
                .and_then(|arn| arn.rsplit('/').next());
            if let Some(made) = role.and_then(|r| world.roles.get(r))
                && Self::window_open(*made, self.config.realism.role_propagation, now)
            {
                return Some(error_response(
                    service,
                    400,
                    "InvalidParameterValueException",
                    "The role defined for the function cannot be assumed by Lambda.",
                ));
            }
        }
        if matches!(
            op,
            "UpdateFunctionCode" | "UpdateFunctionConfiguration" | "PublishVersion"
        ) {
            let name = lambda_function_name(&request.target)?;
            self.function_busy(&world, &name, now)?;
            let region = region_of(&request.headers).unwrap_or_else(|| "us-east-1".into());
            return Some(error_response(
                service,
                409,
                "ResourceConflictException",
                &format!(
                    "The operation cannot be performed at this time. An update is in progress \
                     for resource: arn:aws:lambda:{region}:123456789012:function:{name}"
                ),
            ));
        }
        None
    }

    /// Moto's answer as AWS would give it: what a create made is
    /// remembered, a busy function says so, and a list leaves out what was
    /// made too recently.
    fn realism_answer(
        &self,
        service: Option<&str>,
        op: &str,
        request: &Request,
        raw: Vec<u8>,
    ) -> Vec<u8> {
        let Some((start, headers, body)) = split_answer(&raw) else {
            return raw;
        };
        let ok = start
            .get(1)
            .and_then(|s| s.parse::<u16>().ok())
            .is_some_and(|s| (200..300).contains(&s));
        if !ok {
            return raw;
        }
        let now = Instant::now();
        let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let mut world = self.world.lock().unwrap();
        if let Some(item) = created_item(
            service,
            op,
            request,
            json.as_ref().unwrap_or(&serde_json::Value::Null),
        ) {
            if item.0 == Listing::Roles {
                world.roles.insert(item.1.clone(), now);
            }
            world.created.insert(item, now);
        }
        match (service, op) {
            (Some("iam"), "DeleteRole") => {
                if let Some(role) = form_value(&request.body, "RoleName") {
                    world.roles.remove(&role);
                }
            }
            (Some("lambda"), "CreateFunction") => {
                if let Some(name) = json
                    .as_ref()
                    .and_then(|j| j.get("FunctionName"))
                    .and_then(|n| n.as_str())
                {
                    world.functions.insert(
                        name.to_owned(),
                        FunctionClock {
                            created: Some(now),
                            updated: None,
                        },
                    );
                }
            }
            (Some("lambda"), "UpdateFunctionCode" | "UpdateFunctionConfiguration") => {
                if let Some(name) = lambda_function_name(&request.target) {
                    world.functions.entry(name).or_default().updated = Some(now);
                }
            }
            (Some("lambda"), "DeleteFunction") => {
                if let Some(name) = lambda_function_name(&request.target) {
                    world.functions.remove(&name);
                }
            }
            _ => {}
        }
        let rewritten = match (service, op) {
            (
                Some("lambda"),
                "CreateFunction"
                | "UpdateFunctionCode"
                | "UpdateFunctionConfiguration"
                | "GetFunction"
                | "GetFunctionConfiguration",
            ) => json.and_then(|mut j| {
                let name = lambda_function_name(&request.target).or_else(|| {
                    j.get("FunctionName")
                        .and_then(|n| n.as_str())
                        .map(str::to_owned)
                })?;
                let busy = self.function_busy(&world, &name, now)?;
                let config = if op == "GetFunction" {
                    j.get_mut("Configuration")?
                } else {
                    &mut j
                };
                let config = config.as_object_mut()?;
                if busy == "Pending" {
                    config.insert("State".into(), "Pending".into());
                    config.insert(
                        "StateReason".into(),
                        "The function is being created.".into(),
                    );
                    config.insert("StateReasonCode".into(), "Creating".into());
                    config.insert("LastUpdateStatus".into(), "InProgress".into());
                } else {
                    config.insert("LastUpdateStatus".into(), "InProgress".into());
                    config.insert(
                        "LastUpdateStatusReason".into(),
                        "The function is being updated.".into(),
                    );
                    config.insert("LastUpdateStatusReasonCode".into(), "InProgress".into());
                }
                serde_json::to_vec(&j).ok()
            }),
            _ => self.lag_list(&world, service, op, &body, now),
        };
        match rewritten {
            Some(body) => with_body(&start, &headers, &body),
            None => raw,
        }
    }

    /// A list answer without what was created less than `list_lag` ago,
    /// or `None` when nothing is left out.
    fn lag_list(
        &self,
        world: &World,
        service: Option<&str>,
        op: &str,
        body: &[u8],
        now: Instant,
    ) -> Option<Vec<u8>> {
        let lag = self.config.realism.list_lag?;
        let (listing, array, field) = Listing::of(service, op)?;
        let recent = |name: &str| {
            world
                .created
                .get(&(listing, name.to_owned()))
                .is_some_and(|made| now < *made + lag)
        };
        let out = if listing == Listing::Roles {
            lag_xml_members(std::str::from_utf8(body).ok()?, "Roles", "RoleName", recent)?
                .into_bytes()
        } else {
            let mut j: serde_json::Value = serde_json::from_slice(body).ok()?;
            let items = j.get_mut(array)?.as_array_mut()?;
            let before = items.len();
            items.retain(|item| {
                let name = match field {
                    Some(f) => item.get(f).and_then(|v| v.as_str()),
                    None => item.as_str(),
                };
                !name.is_some_and(recent)
            });
            if items.len() == before {
                return None;
            }
            serde_json::to_vec(&j).ok()?
        };
        self.stats.lagged_lists.fetch_add(1, Ordering::Relaxed);
        Some(out)
    }
}

/// The query-protocol list `body` without the top-level `<member>`s of
/// `<{list}>` whose `<{field}>` is `hidden`; `None` when none is.
fn lag_xml_members(
    body: &str,
    list: &str,
    field: &str,
    hidden: impl Fn(&str) -> bool,
) -> Option<String> {
    let open = format!("<{list}>");
    let from = body.find(&open)? + open.len();
    let mut spans = Vec::new();
    let (mut depth, mut at, mut start) = (0usize, from, 0usize);
    loop {
        let next_open = body[at..].find("<member>").map(|i| at + i);
        let next_close = body[at..].find("</member>").map(|i| at + i);
        match (next_open, next_close) {
            (Some(o), Some(c)) if o < c => {
                if depth == 0 {
                    start = o;
                }
                depth += 1;
                at = o + "<member>".len();
            }
            (_, Some(c)) if depth > 0 => {
                depth -= 1;
                at = c + "</member>".len();
                if depth == 0 {
                    spans.push((start, at));
                }
            }
            _ => break,
        }
    }
    let (open_field, close_field) = (format!("<{field}>"), format!("</{field}>"));
    let gone: Vec<(usize, usize)> = spans
        .into_iter()
        .filter(|(s, e)| {
            let member = &body[*s..*e];
            member
                .find(&open_field)
                .and_then(|i| {
                    let value = &member[i + open_field.len()..];
                    value.find(&close_field).map(|j| &value[..j])
                })
                .is_some_and(&hidden)
        })
        .collect();
    if gone.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(body.len());
    let mut last = 0;
    for (s, e) in gone {
        out.push_str(&body[last..s]);
        last = e;
    }
    out.push_str(&body[last..]);
    Some(out)
}

/// The function a Lambda REST path names (`/2015-03-31/functions/{name}/...`),
/// given by name or ARN.
fn lambda_function_name(target: &str) -> Option<String> {
    let path = target.split('?').next()?;
    let mut segments = path.trim_matches('/').split('/');
    segments.next()?;
    (segments.next()? == "functions").then_some(())?;
    let name = percent_decode(segments.next()?);
    Some(match name.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest).to_owned(),
        None => name,
    })
}

/// The region of a request's credential scope.
fn region_of(headers: &[(String, String)]) -> Option<String> {
    let auth = header(headers, "authorization")?;
    let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
    scope.trim().split('/').nth(2).map(str::to_owned)
}

/// A field of a form-encoded (query protocol) body.
fn form_value(body: &[u8], key: &str) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .map(|v| percent_decode(&v.replace('+', " ")))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An answer's start line, headers and decoded body.
fn split_answer(raw: &[u8]) -> Option<(Vec<String>, Headers, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let (start, headers) = parse_head(&raw[..end]).ok()?;
    let rest = &raw[end..];
    let body = if is_chunked(&headers) {
        dechunk(rest)?
    } else if let Some(len) = header(&headers, "content-length").and_then(|l| l.parse().ok()) {
        rest.get(..len)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some((start, headers, body))
}

/// An answer with a new body (and a `Content-Length` to match).
fn with_body(start: &[String], headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{}\r\n", start.join(" ")).into_bytes();
    for (k, v) in headers {
        if !hop_by_hop(k) && !k.eq_ignore_ascii_case("x-amz-crc32") {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn services_are_told_apart() {
        let auth = |svc: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=testing/20261125/us-east-1/{svc}/aws4_request, \
                 SignedHeaders=host, Signature=00"
            )
        };
        for svc in ["apigateway", "lambda", "iam", "sts", "route53"] {
            let h = headers(&[("Authorization", &auth(svc))]);
            assert_eq!(service(&h).as_deref(), Some(svc));
        }
        let h = headers(&[
            ("X-Amz-Target", "DynamoDB_20120810.CreateTable"),
            ("Authorization", &auth("dynamodb")),
        ]);
        assert_eq!(service(&h).as_deref(), Some("dynamodb"));
        assert_eq!(service(&headers(&[])), None);
        assert_eq!(
            operation(Some("apigateway"), "POST", "/restapis/abc/deployments"),
            Some("CreateDeployment")
        );
        assert_eq!(
            operation(Some("apigateway"), "POST", "/usageplans"),
            Some("CreateUsagePlan")
        );
        assert_eq!(operation(Some("lambda"), "POST", "/restapis"), None);
    }

    #[test]
    fn operations_are_named_as_aws_names_them() {
        let name = |svc: &str, method: &str, target: &str| {
            operation_name(Some(svc), method, target, &[], b"")
        };
        let api = |method: &str, target: &str| name("apigateway", method, target);
        assert_eq!(api("POST", "/restapis"), "CreateRestApi");
        assert_eq!(api("POST", "/restapis?mode=import"), "ImportRestApi");
        assert_eq!(api("GET", "/restapis?limit=500"), "GetRestApis");
        assert_eq!(api("PUT", "/restapis/a1"), "PutRestApi");
        assert_eq!(api("PATCH", "/restapis/a1"), "UpdateRestApi");
        assert_eq!(api("POST", "/restapis/a1/resources/r1"), "CreateResource");
        assert_eq!(api("GET", "/restapis/a1/resources"), "GetResources");
        assert_eq!(
            api("PUT", "/restapis/a1/resources/r1/methods/GET"),
            "PutMethod"
        );
        assert_eq!(
            api("PUT", "/restapis/a1/resources/r1/methods/GET/integration"),
            "PutIntegration"
        );
        assert_eq!(
            api(
                "PUT",
                "/restapis/a1/resources/r1/methods/GET/integration/responses/200"
            ),
            "PutIntegrationResponse"
        );
        assert_eq!(
            api("PUT", "/restapis/a1/resources/r1/methods/GET/responses/200"),
            "PutMethodResponse"
        );
        assert_eq!(api("POST", "/restapis/a1/deployments"), "CreateDeployment");
        assert_eq!(api("GET", "/restapis/a1/stages"), "GetStages");
        assert_eq!(api("PATCH", "/restapis/a1/stages/prod"), "UpdateStage");
        assert_eq!(api("POST", "/usageplans/u1/keys"), "CreateUsagePlanKey");
        assert_eq!(api("GET", "/usageplans/u1/keys"), "GetUsagePlanKeys");
        assert_eq!(api("PATCH", "/account"), "UpdateAccount");
        assert_eq!(api("POST", "/domainnames"), "CreateDomainName");
        assert_eq!(
            api("GET", "/domainnames/api.example.com/basepathmappings"),
            "GetBasePathMappings"
        );
        assert_eq!(api("PUT", "/tags/arn%3Aaws"), "TagResource");
        assert_eq!(
            name("lambda", "PUT", "/2015-03-31/functions/f/code"),
            "UpdateFunctionCode"
        );
        assert_eq!(
            name("lambda", "GET", "/2015-03-31/functions/?MaxItems=50"),
            "ListFunctions"
        );
        assert_eq!(
            name("route53", "POST", "/2013-04-01/hostedzone/Z1/rrset/"),
            "ChangeResourceRecordSets"
        );
        let json = headers(&[("X-Amz-Target", "DynamoDB_20120810.DescribeTable")]);
        assert_eq!(
            operation_name(Some("dynamodb"), "POST", "/", &json, b"{}"),
            "DescribeTable"
        );
        assert_eq!(
            operation_name(
                Some("iam"),
                "POST",
                "/",
                &[],
                b"Action=PutRolePolicy&Version=2010-05-08"
            ),
            "PutRolePolicy"
        );
        assert_eq!(api("GET", "/whatever/x1/else"), "GET /whatever/{}/else");
        assert!(is_mutating("CreateDeployment") && is_mutating("TagResource"));
        assert!(!is_mutating("GetRestApis") && !is_mutating("ListFunctions"));
        assert!(!is_mutating("DescribeTable") && !is_mutating("GET /x/{}"));
    }

    #[test]
    fn a_limit_covers_an_operation_or_a_family() {
        let limit = |operation, except| RateLimit {
            operation,
            every: Duration::from_secs(1),
            burst: 1,
            except,
        };
        assert!(RateLimit::create_deployment(1.0).covers(Some("apigateway"), "CreateDeployment"));
        assert!(!RateLimit::create_deployment(1.0).covers(Some("apigateway"), "GetStages"));
        let all = limit("apigateway:*", &[]);
        assert!(all.covers(Some("apigateway"), "GetStages"));
        assert!(!all.covers(Some("lambda"), "GetFunction"));
        let lambda = limit("lambda:*", &["GetFunction"]);
        assert!(lambda.covers(Some("lambda"), "UpdateFunctionCode"));
        assert!(!lambda.covers(Some("lambda"), "GetFunction"));
        let domains = limit("CreateDomainName|UpdateDomainName", &[]);
        assert!(domains.covers(Some("apigateway"), "UpdateDomainName"));
        assert!(!domains.covers(Some("apigateway"), "GetDomainNames"));
    }

    #[test]
    fn throttling_has_each_services_wire_shape() {
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        let apigw = text(throttling_response(Some("apigateway")));
        assert!(apigw.starts_with("HTTP/1.1 429 "));
        assert!(apigw.contains("x-amzn-ErrorType: TooManyRequestsException\r\n"));
        assert!(apigw.ends_with(r#"{"message":"Too Many Requests"}"#));
        let lambda = text(throttling_response(Some("lambda")));
        assert!(lambda.starts_with("HTTP/1.1 429 "));
        assert!(lambda.ends_with(
            r#"{"Type":"User","message":"Rate exceeded","Reason":"CallerRateLimitExceeded"}"#
        ));
        let ddb = text(throttling_response(Some("dynamodb")));
        assert!(ddb.starts_with("HTTP/1.1 400 "));
        assert!(ddb.ends_with(
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#
        ));
        // ACM speaks JSON: an XML answer is an unparsable 400 to its SDK,
        // which then fails the call instead of retrying it.
        let acm = text(throttling_response(Some("acm")));
        assert!(acm.starts_with("HTTP/1.1 400 "));
        assert!(acm.contains("Content-Type: application/x-amz-json-1.1\r\n"));
        assert!(acm.ends_with(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#));
        let iam = text(throttling_response(Some("iam")));
        assert!(iam.starts_with("HTTP/1.1 400 "));
        assert!(iam.contains(
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
             <Message>Rate exceeded</Message></Error>"
        ));
    }

    #[test]
    fn answers_are_reframed() {
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let out = String::from_utf8(reframe(chunked, true).unwrap()).unwrap();
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nX-A: b\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc"
        );
        let to_eof = b"HTTP/1.1 201 CREATED\r\nConnection: close\r\n\r\n{}";
        let out = String::from_utf8(reframe(to_eof, false).unwrap()).unwrap();
        assert_eq!(
            out,
            "HTTP/1.1 201 CREATED\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        );
    }

    #[tokio::test]
    async fn chunked_and_sized_bodies_are_read() {
        let mut chunked: &[u8] = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nT: v\r\n\r\nNEXT";
        let h = headers(&[("Transfer-Encoding", "chunked")]);
        assert_eq!(read_body(&mut chunked, &h).await.unwrap(), b"Wikipedia");
        assert_eq!(chunked, b"NEXT");
        let mut sized: &[u8] = b"abcdef";
        let h = headers(&[("Content-Length", "4")]);
        assert_eq!(read_body(&mut sized, &h).await.unwrap(), b"abcd");
    }

    #[test]
    fn the_bucket_holds_to_its_rate_with_a_little_slack() {
        let mut b = Bucket::new(RateLimit::create_deployment(100.0)); // 50 ms
        let t0 = Instant::now();
        assert!(b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(20)));
        assert!(b.take(t0 + Duration::from_millis(40)));
        assert!(!b.take(t0 + Duration::from_millis(50)));
        assert!(b.take(t0 + Duration::from_millis(200)));
    }

    #[test]
    fn the_importer_model_warns_per_model_on_unsupported_keywords() {
        let doc = serde_json::json!({
            "components": { "schemas": {
                "Clean": { "type": "object", "properties": {
                    "readOnly": { "type": "string", "format": "email" }
                } },
                "Patch": { "type": "object", "additionalProperties": false, "properties": {
                    "n": { "type": "integer", "format": "int64" },
                    "tags": { "type": "array", "items": { "type": "string", "nullable": true } }
                } }
            } }
        });
        assert_eq!(
            openapi_import_warnings(&doc),
            [
                "Unable to create model for 'Patch': Invalid model specified: Validation Result: \
                 warnings : [], errors : [Invalid model schema specified. Unsupported keyword(s): \
                 [\"additionalProperties\", \"format int64\", \"nullable\"]]"
            ]
        );
        assert!(openapi_import_warnings(&serde_json::json!({})).is_empty());
        let put = "/restapis/a1?failonwarnings=true&mode=overwrite";
        assert_eq!(query_param(put, "failOnWarnings"), Some("true"));
        assert_eq!(query_param(put, "mode"), Some("overwrite"));
        assert_eq!(query_param("/restapis/a1", "mode"), None);
        let body = doc.to_string();
        let refusal = import_warnings("PutRestApi", put, body.as_bytes()).unwrap();
        let (status, answer) = json_answer(&refusal).unwrap();
        assert_eq!(status, 400);
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .starts_with("Warnings found during import:")
        );
        assert!(
            import_warnings("PutRestApi", "/restapis/a1?mode=overwrite", body.as_bytes()).is_none()
        );
        assert!(import_warnings("GetRestApi", put, body.as_bytes()).is_none());
    }

    #[test]
    fn dynamodb_refuses_what_it_cannot_index_or_store() {
        use serde_json::json;
        let keys = TableKeys {
            hash: "id".into(),
            indexes: vec![("by_venue".into(), "venue".into())],
        };
        let put = |item: serde_json::Value| {
            dynamodb_refusal("PutItem", &json!({"TableName": "t", "Item": item}), &keys)
        };
        assert_eq!(
            put(json!({"id": {"S": "a"}, "venue": {"S": "v"}, "memo": {"S": ""}})),
            None
        );
        assert_eq!(put(json!({"id": {"S": "a"}})), None, "a sparse index");
        assert_eq!(
            put(json!({"id": {"S": "a"}, "venue": {"S": ""}})).unwrap(),
            "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty string value. IndexName: by_venue, IndexKey: venue"
        );
        assert_eq!(
            put(json!({"id": {"S": "a"}, "venue": {"S": "v".repeat(2049)}})).unwrap(),
            "One or more parameter values were invalid: Size limit exceeded for Index Key venue Actual Size: 2049 bytes Max Size: 2048 bytes IndexName: by_venue"
        );
        assert!(put(json!({"id": {"S": "a"}, "venue": {"S": "v".repeat(2048)}})).is_none());
        assert!(put(json!({"id": {"S": ""}})).unwrap().ends_with("Key: id"));
        assert!(
            put(json!({"id": {"S": "a"}, "l": {"L": [{"M": {"n": {"N": "1e126"}}}]}}))
                .unwrap()
                .starts_with("Number overflow")
        );
        assert!(
            put(json!({"id": {"S": "a"}, "n": {"NS": ["1", "1e-131"]}}))
                .unwrap()
                .starts_with("Number underflow")
        );
        assert!(put(json!({"id": {"S": "a"}, "n": {"N": "9.9999999999999999999999999999999999999E+125"}})).is_none());

        let query = |value: &str| {
            dynamodb_refusal(
                "Query",
                &json!({
                    "TableName": "t", "IndexName": "by_venue",
                    "KeyConditionExpression": "#n0 = :v0",
                    "FilterExpression": "#n1 = :v1",
                    "ExpressionAttributeNames": {"#n0": "venue", "#n1": "memo"},
                    "ExpressionAttributeValues": {":v0": {"S": value}, ":v1": {"S": ""}},
                }),
                &keys,
            )
        };
        assert_eq!(query("v"), None, "an empty string in a filter is fine");
        assert!(
            query("")
                .unwrap()
                .contains("IndexName: by_venue, IndexKey: venue")
        );
        assert!(
            query(&"v".repeat(2049))
                .unwrap()
                .contains("Size of hashkey")
        );
        let scan = json!({"TableName": "t", "ExpressionAttributeValues": {":v0": {"N": "1e-200"}}});
        assert_eq!(
            dynamodb_refusal("Scan", &scan, &keys).unwrap(),
            "ExpressionAttributeValues contains invalid value: Number underflow. Attempting to store a number with magnitude smaller than supported range for key :v0"
        );
        for op in ["GetItem", "DeleteItem"] {
            let empty = json!({"TableName": "t", "Key": {"id": {"S": ""}}});
            assert!(
                dynamodb_refusal(op, &empty, &keys)
                    .unwrap()
                    .ends_with("Key: id")
            );
        }
        let update = json!({
            "TableName": "t", "Key": {"id": {"S": "a"}},
            "UpdateExpression": "SET memo = :m, #v = :e REMOVE x",
            "ExpressionAttributeNames": {"#v": "venue"},
            "ExpressionAttributeValues": {":m": {"S": ""}, ":e": {"S": ""}},
        });
        assert!(
            dynamodb_refusal("UpdateItem", &update, &keys)
                .unwrap()
                .contains("update expression")
        );
        assert_eq!(
            dynamodb_number_refusal("123456789012345678901234567890123456789"),
            Some("Attempting to store more than 38 significant digits in a Number")
        );
        assert_eq!(dynamodb_number_refusal("0"), None);
    }

    #[test]
    fn a_lagging_role_list_leaves_out_whole_members() {
        let body = "<ListRolesResponse><ListRolesResult><IsTruncated>false</IsTruncated><Roles>\
             <member><RoleName>old</RoleName><Tags><member><Key>k</Key></member></Tags></member>\
             <member><RoleName>new</RoleName><Tags><member><Key>k</Key></member></Tags></member>\
             </Roles></ListRolesResult></ListRolesResponse>";
        let out = lag_xml_members(body, "Roles", "RoleName", |n| n == "new").unwrap();
        assert_eq!(
            out,
            "<ListRolesResponse><ListRolesResult><IsTruncated>false</IsTruncated><Roles>\
             <member><RoleName>old</RoleName><Tags><member><Key>k</Key></member></Tags></member>\
             </Roles></ListRolesResult></ListRolesResponse>"
        );
        assert_eq!(lag_xml_members(body, "Roles", "RoleName", |_| false), None);
    }

    #[test]
    fn requests_name_their_function_and_role() {
        assert_eq!(
            lambda_function_name("/2015-03-31/functions/apifactory-a-get/code").as_deref(),
            Some("apifactory-a-get")
        );
        assert_eq!(
            lambda_function_name(
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af1/configuration"
            )
            .as_deref(),
            Some("f1")
        );
        assert_eq!(lambda_function_name("/2015-03-31/functions"), None);
        assert_eq!(
            form_value(b"Action=CreateRole&RoleName=a-b%2Bc&Path=%2F", "RoleName").as_deref(),
            Some("a-b+c")
        );
        assert_eq!(form_value(b"Action=CreateRole", "RoleName"), None);
    }

    #[test]
    fn a_lagging_json_list_leaves_out_recent_items() {
        let shared = modelled(FaultConfig {
            realism: Realism::all(),
            ..FaultConfig::with_rate(0.0)
        });
        let old = Instant::now();
        let now = old + Duration::from_secs(60);
        let mut world = World::default();
        world
            .created
            .insert((Listing::Functions, "new".into()), now);
        world
            .created
            .insert((Listing::Functions, "old".into()), old);
        world.created.insert((Listing::Tables, "t-new".into()), now);
        let body = br#"{"Functions":[{"FunctionName":"old"},{"FunctionName":"new"}]}"#;
        let out = shared
            .lag_list(&world, Some("lambda"), "ListFunctions", body, now)
            .unwrap();
        assert_eq!(out, br#"{"Functions":[{"FunctionName":"old"}]}"#);
        let tables = br#"{"TableNames":["t-new","t-old"]}"#;
        let out = shared
            .lag_list(&world, Some("dynamodb"), "ListTables", tables, now)
            .unwrap();
        assert_eq!(out, br#"{"TableNames":["t-old"]}"#);
        // Nothing recent: moto's answer goes through as it is.
        let later = now + Duration::from_secs(10);
        assert!(
            shared
                .lag_list(&world, Some("lambda"), "ListFunctions", body, later)
                .is_none()
        );
        assert_eq!(shared.stats.lagged_lists(), 2);
    }

    #[test]
    fn the_generator_is_seeded() {
        let (mut a, mut b) = (SplitMix(42), SplitMix(42));
        assert_eq!(
            (0..5).map(|_| a.next()).collect::<Vec<_>>(),
            (0..5).map(|_| b.next()).collect::<Vec<_>>()
        );
        assert!((0..1000).all(|_| (0.0..1.0).contains(&a.unit())));
    }

    fn modelled(config: FaultConfig) -> Shared {
        Shared {
            upstream: String::new(),
            rng: Mutex::new(SplitMix(1)),
            lose_first: Mutex::new(Vec::new()),
            refuse_first: Mutex::new(Vec::new()),
            throttle_first: Mutex::new(Vec::new()),
            usage: Mutex::new(usage_models::UsageModel::default()),
            table_keys: Mutex::new(BTreeMap::new()),
            buckets: Vec::new(),
            dynamo: Mutex::new(DynamoModel::default()),
            world: Mutex::new(World::default()),
            key_tags: Mutex::new(BTreeMap::new()),
            config,
            stats: Arc::new(Stats::default()),
        }
    }

    fn status_and_body(raw: &[u8]) -> (String, String) {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_owned(), body.to_owned())
    }

    #[test]
    fn the_pitr_window_refuses_backups_after_create_table_only() {
        let proxy = modelled(FaultConfig {
            pitr_window: Some(Duration::from_secs(3600)),
            ..FaultConfig::with_rate(0.0)
        });
        let ddb = Some("dynamodb");
        let t = br#"{"TableName":"t1"}"#;
        // A table the proxy did not see made: no window.
        assert!(
            proxy
                .dynamo_refuses(ddb, "UpdateContinuousBackups", t)
                .is_none()
        );
        assert!(proxy.dynamo_refuses(ddb, "CreateTable", t).is_none());
        let answer = proxy
            .dynamo_refuses(ddb, "UpdateContinuousBackups", t)
            .expect("refused inside the window");
        let (status, body) = status_and_body(&answer);
        assert!(status.contains(" 400 "), "{status}");
        assert!(
            body.contains("#ContinuousBackupsUnavailableException")
                && body.contains("Backups are being enabled for the table"),
            "{body}"
        );
        let other = br#"{"TableName":"t2"}"#;
        assert!(
            proxy
                .dynamo_refuses(ddb, "UpdateContinuousBackups", other)
                .is_none()
        );
        // Off by default.
        let off = modelled(FaultConfig::with_rate(0.0));
        assert!(off.dynamo_refuses(ddb, "CreateTable", t).is_none());
        assert!(
            off.dynamo_refuses(ddb, "UpdateContinuousBackups", t)
                .is_none()
        );
    }

    #[test]
    fn a_new_index_backfills_and_holds_off_another() {
        let proxy = modelled(FaultConfig {
            gsi_backfill: Some(Duration::from_secs(3600)),
            ..FaultConfig::with_rate(0.0)
        });
        let ddb = Some("dynamodb");
        let create = |index: &str| {
            format!(
                r#"{{"TableName":"t","GlobalSecondaryIndexUpdates":[{{"Create":{{"IndexName":"{index}"}}}}]}}"#
            )
        };
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec();
        assert!(
            proxy
                .dynamo_refuses(ddb, "UpdateTable", create("by_a").as_bytes())
                .is_none()
        );
        proxy.dynamo_answer(ddb, "UpdateTable", create("by_a").as_bytes(), ok);

        let described = br#"{"Table":{"TableName":"t","GlobalSecondaryIndexes":[{"IndexName":"by_a","IndexStatus":"ACTIVE"},{"IndexName":"by_b","IndexStatus":"ACTIVE"}]}}"#;
        let raw = [
            format!(
                "HTTP/1.1 200 OK\r\nx-amz-crc32: 1\r\nContent-Length: {}\r\n\r\n",
                described.len()
            )
            .as_bytes(),
            described,
        ]
        .concat();
        let answer = proxy.dynamo_answer(ddb, "DescribeTable", br#"{"TableName":"t"}"#, raw);
        let (_, body) = status_and_body(&answer);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let gsis = &v["Table"]["GlobalSecondaryIndexes"];
        assert_eq!(gsis[0]["IndexStatus"], "CREATING");
        assert_eq!(gsis[0]["Backfilling"], true);
        assert_eq!(gsis[1]["IndexStatus"], "ACTIVE");
        assert!(!String::from_utf8_lossy(&answer).contains("x-amz-crc32"));

        let refused = |op: &str, body: &str| {
            let answer = proxy
                .dynamo_refuses(ddb, op, body.as_bytes())
                .unwrap_or_else(|| panic!("{op} {body} goes through"));
            status_and_body(&answer).1
        };
        let query = refused("Query", r#"{"TableName":"t","IndexName":"by_a"}"#);
        assert!(
            query.contains("#ValidationException")
                && query.contains("Cannot read from backfilling global secondary index: by_a"),
            "{query}"
        );
        assert!(
            proxy
                .dynamo_refuses(ddb, "Query", br#"{"TableName":"t","IndexName":"by_b"}"#)
                .is_none()
        );
        let second = refused("UpdateTable", &create("by_c"));
        assert!(
            second.contains("#LimitExceededException")
                && second.contains(
                    "Only 1 online index can be created or deleted simultaneously per table"
                ),
            "{second}"
        );
        // Settings only (no index): allowed while an index backfills.
        assert!(
            proxy
                .dynamo_refuses(
                    ddb,
                    "UpdateTable",
                    br#"{"TableName":"t","DeletionProtectionEnabled":true}"#
                )
                .is_none()
        );
        // Two in one call: refused on any table.
        let two = r#"{"TableName":"u","GlobalSecondaryIndexUpdates":[{"Create":{"IndexName":"x"}},{"Delete":{"IndexName":"y"}}]}"#;
        assert!(refused("UpdateTable", two).contains("LimitExceededException"));
    }

    #[test]
    fn tag_resource_on_an_api_key_is_told_from_one_on_a_stage() {
        assert_eq!(
            tagged_api_key("/tags/arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Fapikeys%2Fabc123"),
            Some("abc123".to_owned())
        );
        assert_eq!(
            tagged_api_key("/tags/arn:aws:apigateway:us-east-1::/apikeys/abc123"),
            Some("abc123".to_owned())
        );
        assert_eq!(
            tagged_api_key(
                "/tags/arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Frestapis%2Fa1%2Fstages%2Fprod"
            ),
            None
        );
        assert_eq!(tagged_api_key("/apikeys/abc123"), None);
    }

    #[test]
    fn update_account_and_list_tags_limits_cover_their_operations() {
        let account = RateLimit::update_account(1.0);
        assert!(account.covers(Some("apigateway"), "UpdateAccount"));
        assert!(!account.covers(Some("apigateway"), "GetAccount"));
        assert_eq!((account.every, account.burst), (Duration::from_secs(20), 1));
        let tags = RateLimit::list_tags_of_resource(1.0);
        assert!(tags.covers(Some("dynamodb"), "ListTagsOfResource"));
        assert!(!tags.covers(Some("dynamodb"), "DescribeTable"));
        assert_eq!((tags.every, tags.burst), (Duration::from_millis(100), 10));
    }
}
