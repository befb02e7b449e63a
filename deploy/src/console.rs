//! The provider's console: the fleet at a glance, a tenant's traffic over
//! time, its keys, and its live log, in a browser. `apifactory up` serves
//! it at `/_console/` beside the gateway; `apifactory console` serves it on
//! this machine for a fleet on AWS.
//!
//! Everything it shows comes from the code the commands run: the figures
//! from `usage::gather` and `usage::report` (as `apifactory usage`), the
//! keys from the targets' `KeyStore` (as `apifactory keys`), drift from
//! `engine::prepare` and `drift` (as `apifactory drift`), the log from the
//! file `apifactory logs` reads (or, on AWS, the log groups). Pages are
//! rendered on the server, charts as inline SVG; the one script (the log
//! tail) is inline and allowed by its hash: nothing is fetched from
//! another host.

pub mod auth;
mod chart;
mod html;
pub mod pages;
mod tail;

pub use tail::print_aws as print_aws_logs;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderValue, StatusCode};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::aws::AwsTarget;
use crate::aws::cli::AwsArgs;
use crate::keys::{KeyInfo, KeyStore, now_unix, rfc3339};
use crate::local::{LocalCode, LocalState, LocalTarget};
use crate::tenants::TenantSet;
use crate::usage::prices::Prices;
use crate::usage::report::{By, Report};
use crate::usage::{Counts, Gathered, Source, Span, gather};
use auth::Auth;
use html::form;
use pages::{Action, DriftCell, Period, TenantRow};

/// The fleet a console shows.
pub enum Fleet {
    Local(LocalState),
    /// `args` builds the functions' code when drift is checked (drift
    /// compares code too), as `apifactory drift --target aws` does, and
    /// is where a tenant whose file does not place it is; `home` is the
    /// connection `target` was made with (the command line's, or when it
    /// cannot be reached and the files place tenants, a cell's).
    Aws {
        target: AwsTarget,
        args: AwsArgs,
        home: AwsArgs,
    },
}

/// A running console's state.
pub struct Console {
    auth: Auth,
    fleet: Fleet,
    tenants_dir: PathBuf,
    prices: Prices,
    /// The last apply of each tenant this process made (`up`'s).
    applies: Mutex<BTreeMap<String, String>>,
    /// The last drift check by the button: when, and per tenant.
    drift: Mutex<Option<(String, BTreeMap<String, DriftCell>)>>,
    /// The Content-Security-Policy of every page.
    policy: HeaderValue,
    /// Run after a key action, before its page is answered: `up` has its
    /// gateway re-read the keys there, so a key made here works at once.
    after_key_change: OnceLock<KeyHook>,
    /// On AWS, the target of each other cell a tenant file places a
    /// tenant in (`[deploy]`), by (profile, region, endpoint), made once.
    cells: Mutex<BTreeMap<CellKey, AwsTarget>>,
}

type CellKey = (Option<String>, Option<String>, Option<String>);

fn cell_key(a: &AwsArgs) -> CellKey {
    (a.profile.clone(), a.region.clone(), a.endpoint_url.clone())
}

/// What [`Console::after_key_change`] runs.
pub type KeyHook = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Console {
    /// A console for `fleet` and the admin token to print once.
    pub fn new(fleet: Fleet, tenants_dir: PathBuf) -> anyhow::Result<(Arc<Console>, String)> {
        let (auth, token) = Auth::generate()?;
        let script = base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(pages::LOG_TAIL_SCRIPT.as_bytes()));
        // Nothing from elsewhere: no other host can be reached from a page.
        let policy = format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script}'; \
             img-src data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        );
        let console = Console {
            auth,
            fleet,
            tenants_dir,
            prices: Prices::built_in(),
            applies: Mutex::new(BTreeMap::new()),
            drift: Mutex::new(None),
            policy: HeaderValue::from_str(&policy)?,
            after_key_change: OnceLock::new(),
            cells: Mutex::new(BTreeMap::new()),
        };
        Ok((Arc::new(console), token))
    }

    /// Sets what runs after every key action (once; later calls are
    /// ignored).
    pub fn after_key_change(&self, hook: KeyHook) {
        let _ = self.after_key_change.set(hook);
    }

    /// Remembers an apply's outcome per tenant, for the fleet page.
    pub fn record_apply(&self, report: &crate::apply::Report) {
        let when = rfc3339(now_unix());
        let mut applies = lock(&self.applies);
        for t in &report.tenants {
            let what = match &t.error {
                Some(e) => format!("{when}: failed: {e}"),
                None if t.planned == 0 => format!("{when}: nothing to change"),
                None => format!("{when}: {} change(s) applied", t.applied),
            };
            applies.insert(t.tenant.clone(), what);
        }
    }

    /// The console's routes, every one under `/_console`; requests to
    /// other paths are left to whatever it is merged with.
    pub fn router(self: &Arc<Console>) -> Router {
        Router::new()
            .route("/_console", get(to_root))
            .route("/_console/", get(fleet))
            .route("/_console/drift", post(check_drift))
            .route("/_console/tenants/{id}", get(tenant))
            .route("/_console/tenants/{id}/logs", get(logs))
            .route("/_console/tenants/{id}/keys", get(keys))
            .route("/_console/tenants/{id}/keys/confirm", get(confirm))
            .route("/_console/tenants/{id}/keys/{action}", post(key_action))
            .route("/_console/{*rest}", get(not_found).post(not_found))
            .route_layer(middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self.clone())
    }

    fn target_label(&self) -> String {
        match &self.fleet {
            Fleet::Local(state) => format!("local ({})", state.dir().display()),
            Fleet::Aws { target, .. } => format!("aws {}", target.env.region),
        }
    }

    /// The AWS target of a connection: the console's own, or a cell's.
    async fn aws_at(&self, a: &AwsArgs) -> anyhow::Result<AwsTarget> {
        let Fleet::Aws { target, home, .. } = &self.fleet else {
            anyhow::bail!("the console serves the local target");
        };
        let key = cell_key(a);
        if key == cell_key(home) {
            return Ok(target.clone());
        }
        if let Some(t) = lock(&self.cells).get(&key) {
            return Ok(t.clone());
        }
        let t = crate::aws::cli::key_store(a).await?;
        lock(&self.cells).insert(key, t.clone());
        Ok(t)
    }

    /// The AWS target of the tenant's cell, from its file.
    async fn aws_of(&self, tenant: &str) -> anyhow::Result<AwsTarget> {
        let Fleet::Aws { args, .. } = &self.fleet else {
            anyhow::bail!("the console serves the local target");
        };
        let a = crate::cells::run::placed_args(args, &self.tenants_dir, Some(tenant));
        self.aws_at(&a).await
    }

    /// The figures of these tenants, each from its own cell on AWS.
    async fn gather(
        &self,
        ids: &[String],
        start: i64,
        end: i64,
        span: Span,
    ) -> anyhow::Result<Gathered> {
        let args = match &self.fleet {
            Fleet::Local(state) => {
                return gather(Source::Local(state), ids, start, end, span).await;
            }
            Fleet::Aws { args, .. } => args,
        };
        let mut all = Gathered::default();
        for (a, ids) in crate::cells::follow::by_connection(args, &self.tenants_dir, ids) {
            let t = self.aws_at(&a).await?;
            all.merge(gather(Source::Aws(&t), &ids, start, end, span).await?);
        }
        Ok(all)
    }

    /// The keys of a tenant, or of every tenant (on AWS, of every cell the
    /// files place a tenant in).
    async fn list_keys(&self, tenant: Option<&str>) -> anyhow::Result<Vec<KeyInfo>> {
        let args = match (&self.fleet, tenant) {
            (Fleet::Local(state), _) => return state.list(tenant).await,
            (Fleet::Aws { .. }, Some(id)) => return self.aws_of(id).await?.list(tenant).await,
            (Fleet::Aws { args, .. }, None) => args,
        };
        let mut keys = Vec::new();
        for (a, ids) in crate::cells::follow::by_connection(args, &self.tenants_dir, &[]) {
            let found = self.aws_at(&a).await?.list(None).await?;
            keys.extend(
                found
                    .into_iter()
                    .filter(|k| ids.is_empty() || ids.contains(&k.tenant)),
            );
        }
        Ok(keys)
    }

    fn problem(&self, status: StatusCode, title: &str, message: &str) -> Response {
        html_response(status, pages::problem(&self.target_label(), title, message))
    }

    /// The tenant's keys, or the page saying why they cannot be listed.
    async fn tenant_keys(&self, tenant: &str) -> Result<Vec<KeyInfo>, Response> {
        self.list_keys(Some(tenant)).await.map_err(|e| {
            self.problem(
                StatusCode::BAD_GATEWAY,
                "Cannot list the keys",
                &format!("{e:#}"),
            )
        })
    }
}

/// Serves the console alone (`apifactory console`) until SIGINT or SIGTERM.
pub async fn serve(fleet: Fleet, tenants_dir: PathBuf, listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let (console, token) = Console::new(fleet, tenants_dir)?;
    println!("apifactory console: http://{addr}/_console/?token={token}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let app = console
        .router()
        .route("/", get(to_root))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "Not found: the console is at /_console/\n",
            )
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::local::up::shutdown_signal())
        .await
        .map_err(|e| anyhow::anyhow!("the console stopped: {e}"))
}

fn html_response(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// Admits the admin: a valid `token` in the query sets the cookie and
/// sends the browser to the same page without it (the token leaves the
/// address bar and the history); a valid cookie passes; anything else is
/// 401 with a form to paste the token.
async fn guard(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    let query = req.uri().query().map(form).unwrap_or_default();
    let mut response = if let Some(token) = query.get("token") {
        if c.auth.accepts(token) {
            // The rest of the query stays (`?period=hour&token=...`).
            let rest: Vec<&str> = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty() && !p.starts_with("token="))
                .collect();
            let to = if rest.is_empty() {
                req.uri().path().to_owned()
            } else {
                format!("{}?{}", req.uri().path(), rest.join("&"))
            };
            let mut r = see_other(&to);
            if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(token)) {
                r.headers_mut().insert(SET_COOKIE, v);
            }
            r
        } else {
            html_response(
                StatusCode::UNAUTHORIZED,
                pages::login("That is not this console's token."),
            )
        }
    } else if c.auth.admits(req.headers()) {
        next.run(req).await
    } else {
        html_response(
            StatusCode::UNAUTHORIZED,
            pages::login("The console needs its admin token."),
        )
    };
    let h = response.headers_mut();
    h.insert("content-security-policy", c.policy.clone());
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    response
}

async fn to_root() -> Response {
    see_other("/_console/")
}

async fn not_found(State(c): State<Arc<Console>>) -> Response {
    c.problem(
        StatusCode::NOT_FOUND,
        "Not found",
        "No such page in the console.",
    )
}

/// The routes a tenant's functions answer.
fn routes(t: &runtime::Tenant) -> Vec<String> {
    use runtime::Operation;
    let c = &t.collection.name;
    t.functions
        .operations
        .iter()
        .map(|op| match op {
            Operation::Search => format!("GET /{c}"),
            Operation::Add => format!("POST /{c}"),
            Operation::Get => format!("GET /{c}/{{id}}"),
            Operation::Update => format!("PUT|PATCH /{c}/{{id}}"),
            Operation::Delete => format!("DELETE /{c}/{{id}}"),
        })
        .collect()
}

/// Drift per tenant; the plan's differences as lines.
async fn drift_of(c: &Console, set: &TenantSet) -> anyhow::Result<BTreeMap<String, DriftCell>> {
    let opts = crate::engine::options(set, &[], false, false)?;
    let plan = match &c.fleet {
        Fleet::Local(state) => {
            let target = LocalTarget::new(state.clone());
            crate::engine::prepare(&target, &LocalCode, set, &opts, true, true).await?
        }
        Fleet::Aws { args, .. } => {
            // Each cell's tenants on their own target: one plan each.
            let mut all = crate::drift::Drift::default();
            for (a, ids) in crate::cells::follow::by_connection(args, &c.tenants_dir, &[]) {
                let (target, package) = crate::aws::cli::connect(&a, true).await?;
                let code: &(dyn crate::desired::Code + Sync) = match &package {
                    Some(p) => p,
                    None => &crate::engine::NoCode,
                };
                let part = if ids.is_empty() {
                    set.clone()
                } else {
                    crate::cells::subset(set, &ids)
                };
                let opts = crate::engine::options(&part, &ids, false, false)?;
                let plan = crate::engine::prepare(&target, code, &part, &opts, true, true).await?;
                all.differences
                    .extend(crate::drift::drift(&plan).differences);
            }
            return Ok(drift_cells(set, all));
        }
    };
    Ok(drift_cells(set, crate::drift::drift(&plan)))
}

/// Drift per tenant, from the differences found.
fn drift_cells(set: &TenantSet, found: crate::drift::Drift) -> BTreeMap<String, DriftCell> {
    let mut out: BTreeMap<String, DriftCell> = set
        .tenants
        .iter()
        .map(|t| (t.id.clone(), DriftCell::Clean))
        .collect();
    for d in found.differences {
        let line = format!(
            "{} {}: {} expected {} found {}",
            d.kind.as_str(),
            d.name,
            d.attribute,
            d.expected,
            d.found
        );
        let cell = out.entry(d.tenant).or_insert(DriftCell::Clean);
        match cell {
            DriftCell::Differs(lines) => lines.push(line),
            _ => *cell = DriftCell::Differs(vec![line]),
        }
    }
    out
}

fn day_start(now: i64) -> i64 {
    now - now.rem_euclid(86_400)
}

async fn fleet(State(c): State<Arc<Console>>) -> Response {
    let mut problems = Vec::new();
    let set = match TenantSet::load(&c.tenants_dir) {
        Ok(set) => set,
        Err(e) => {
            problems.push(format!(
                "The tenant files in {} are not valid: {e:#}",
                c.tenants_dir.display()
            ));
            TenantSet::default()
        }
    };
    let keys = c.list_keys(None).await.unwrap_or_else(|e| {
        problems.push(format!("Cannot list the keys: {e:#}"));
        Vec::new()
    });
    // Only the files' tenants: an account may hold many more (all would
    // be read on AWS when none is named).
    let ids: Vec<String> = set.tenants.iter().map(|t| t.id.clone()).collect();
    let today = day_start(now_unix());
    let gathered = if ids.is_empty() {
        Gathered::default()
    } else {
        c.gather(&ids, today, today + 86_400, Span::Day)
            .await
            .unwrap_or_else(|e| {
                problems.push(format!("Cannot read the quotas: {e:#}"));
                Gathered::default()
            })
    };
    let local = matches!(c.fleet, Fleet::Local(_));
    let mut drift = if local {
        match drift_of(&c, &set).await {
            Ok(d) => d,
            Err(e) => set
                .tenants
                .iter()
                .map(|t| (t.id.clone(), DriftCell::Failed(format!("{e:#}"))))
                .collect(),
        }
    } else {
        lock(&c.drift)
            .as_ref()
            .map(|(_, d)| d.clone())
            .unwrap_or_default()
    };
    let checked = lock(&c.drift).as_ref().map(|(when, _)| when.clone());
    let applies = lock(&c.applies).clone();
    let rows: Vec<TenantRow> = set
        .tenants
        .iter()
        .map(|t| {
            let own: Vec<KeyInfo> = keys.iter().filter(|k| k.tenant == t.id).cloned().collect();
            let quotas = own
                .iter()
                .filter_map(|k| {
                    gathered
                        .quotas
                        .get(&k.id)
                        .map(|q| (k.id.clone(), k.client.clone(), q.clone()))
                })
                .collect();
            TenantRow {
                id: t.id.clone(),
                display_name: t.display_name.clone(),
                routes: routes(t),
                stage: t.stage.clone(),
                domain: t.domain.as_ref().map(|d| {
                    if d.base_path.is_empty() {
                        d.name.clone()
                    } else {
                        format!("{}/{}", d.name, d.base_path)
                    }
                }),
                clients: t.clients.iter().map(|c| c.name.clone()).collect(),
                keys: own,
                quotas,
                last_apply: applies.get(&t.id).cloned(),
                drift: drift.remove(&t.id).unwrap_or(DriftCell::Unchecked),
            }
        })
        .collect();
    let target = c.target_label();
    html_response(
        StatusCode::OK,
        pages::fleet(&pages::FleetView {
            target: &target,
            csrf: c.auth.csrf(),
            rows: &rows,
            drift_button: !local,
            drift_checked: checked.as_deref(),
            problems: &problems,
        }),
    )
}

async fn check_drift(State(c): State<Arc<Console>>, body: Bytes) -> Response {
    let f = form(&String::from_utf8_lossy(&body));
    if !c.auth.csrf_ok(f.get("csrf").map(String::as_str)) {
        return csrf_refused(&c);
    }
    let set = match TenantSet::load(&c.tenants_dir) {
        Ok(set) => set,
        Err(e) => {
            return c.problem(
                StatusCode::CONFLICT,
                "Tenant files not valid",
                &format!("{e:#}"),
            );
        }
    };
    let result = match drift_of(&c, &set).await {
        Ok(d) => d,
        Err(e) => set
            .tenants
            .iter()
            .map(|t| (t.id.clone(), DriftCell::Failed(format!("{e:#}"))))
            .collect(),
    };
    *lock(&c.drift) = Some((rfc3339(now_unix()), result));
    see_other("/_console/")
}

fn csrf_refused(c: &Console) -> Response {
    c.problem(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form did not come from this console (its CSRF token is missing or wrong); nothing was changed.",
    )
}

/// The tenant of a page, from its files.
fn known_tenant(c: &Console, id: &str) -> Option<runtime::Tenant> {
    TenantSet::load(&c.tenants_dir)
        .ok()
        .and_then(|set| set.get(id).cloned())
}

fn no_tenant(c: &Console, id: &str) -> Response {
    c.problem(
        StatusCode::NOT_FOUND,
        "No such tenant",
        &format!("There is no tenant file {id}.toml."),
    )
}

/// The buckets of a period ending now: the span of each, how many, and
/// where the first starts (Unix seconds).
fn window(period: Period, aws: bool, now: i64) -> (Span, usize, i64) {
    let (span, n) = match (period, aws) {
        (Period::Hour, false) => (Span::Minute, 60),
        // AWS reports hours at its finest: the last two.
        (Period::Hour, true) => (Span::Hour, 2),
        (Period::Day, _) => (Span::Hour, 24),
        (Period::Month, _) => (Span::Day, 30),
    };
    let s = span.seconds();
    let end = now - now.rem_euclid(s) + s;
    (span, n, end - s * n as i64)
}

fn label(span: Span, start: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(start).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    match span {
        Span::Minute => format!("{:02}:{:02}", t.hour(), t.minute()),
        Span::Hour => format!("{:02}:00", t.hour()),
        Span::Day => format!("{:02}-{:02}", u8::from(t.month()), t.day()),
    }
}

/// The tenant's counts per bucket, every key together.
fn buckets(g: &Gathered, tenant: &str, span: Span, n: usize, start: i64) -> Vec<Counts> {
    let mut out = vec![Counts::default(); n];
    for f in g.figures.iter().filter(|f| f.tenant == tenant) {
        let i = (f.start - start).div_euclid(span.seconds());
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            slot.merge(&f.counts);
        }
    }
    out
}

async fn tenant(
    State(c): State<Arc<Console>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(t) = known_tenant(&c, &id) else {
        return no_tenant(&c, &id);
    };
    let q = query.as_deref().map(form).unwrap_or_default();
    let period = q
        .get("period")
        .and_then(|p| Period::parse(p))
        .unwrap_or(Period::Day);
    let aws = matches!(c.fleet, Fleet::Aws { .. });
    let (span, n, start) = window(period, aws, now_unix());
    let end = start + span.seconds() * n as i64;
    let gathered = match c.gather(std::slice::from_ref(&id), start, end, span).await {
        Ok(g) => g,
        Err(e) => {
            return c.problem(
                StatusCode::BAD_GATEWAY,
                "Cannot read the usage",
                &format!("{e:#}"),
            );
        }
    };
    let date = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .date()
    };
    let by = if span == Span::Day { By::Day } else { By::Hour };
    let report = Report::build(&gathered, date(start), date(end - 1), by, None, &c.prices);
    let labels = (0..n)
        .map(|i| label(span, start + span.seconds() * i as i64))
        .collect();
    let target = c.target_label();
    let note = (aws && period == Period::Hour)
        .then(|| "AWS reports usage by the hour at its finest: the last two hours.".to_owned());
    let view = pages::TenantView {
        target: &target,
        id: &id,
        display_name: &t.display_name,
        period,
        labels,
        buckets: buckets(&gathered, &id, span, n, start),
        report: report.tenants.iter().find(|r| r.tenant == id),
        currency: &c.prices.currency,
        range: format!("{} to {}", rfc3339(start), rfc3339(end)),
        note,
    };
    html_response(StatusCode::OK, pages::tenant(&view))
}

async fn logs(State(c): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    if known_tenant(&c, &id).is_none() {
        return no_tenant(&c, &id);
    }
    match &c.fleet {
        Fleet::Local(state) => tail::local(state.log_path(&id)),
        Fleet::Aws { .. } => match c.aws_of(&id).await {
            Ok(target) => tail::aws(target, id),
            Err(e) => c.problem(
                StatusCode::BAD_GATEWAY,
                "Cannot reach the tenant's cell",
                &format!("{e:#}"),
            ),
        },
    }
}

async fn keys(State(c): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    let Some(t) = known_tenant(&c, &id) else {
        return no_tenant(&c, &id);
    };
    let keys = match c.tenant_keys(&id).await {
        Ok(k) => k,
        Err(page) => return page,
    };
    let clients: Vec<String> = t.clients.iter().map(|c| c.name.clone()).collect();
    let target = c.target_label();
    html_response(
        StatusCode::OK,
        pages::keys(&pages::KeysView {
            target: &target,
            tenant: &id,
            keys: &keys,
            clients: &clients,
        }),
    )
}

async fn confirm(
    State(c): State<Arc<Console>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if known_tenant(&c, &id).is_none() {
        return no_tenant(&c, &id);
    }
    let q = query.as_deref().map(form).unwrap_or_default();
    let Some(action) = q.get("action").and_then(|a| Action::parse(a)) else {
        return c.problem(
            StatusCode::BAD_REQUEST,
            "No such action",
            "Pick an action on the keys page.",
        );
    };
    let keys = match c.tenant_keys(&id).await {
        Ok(k) => k,
        Err(page) => return page,
    };
    let key = q
        .get("key_id")
        .and_then(|kid| keys.iter().find(|k| &k.id == kid));
    if action != Action::Create && key.is_none() {
        return c.problem(
            StatusCode::NOT_FOUND,
            "No such key",
            &format!("Tenant {id} has no such key."),
        );
    }
    let client = q.get("client").map_or("", String::as_str);
    let target = c.target_label();
    html_response(
        StatusCode::OK,
        pages::confirm(&pages::ConfirmView {
            target: &target,
            tenant: &id,
            csrf: c.auth.csrf(),
            action,
            key,
            client,
        }),
    )
}

/// What a key action did: a message and the new key (id, value), if any.
type Done = (String, Option<(String, String)>);

async fn act(
    store: &impl KeyStore,
    tenant: &str,
    action: Action,
    f: &BTreeMap<String, String>,
    expiry: &str,
) -> anyhow::Result<Done> {
    let key_id = || {
        f.get("key_id")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| anyhow::anyhow!("no key id given"))
    };
    Ok(match action {
        Action::Create => {
            let client = f.get("client").map_or("", String::as_str);
            let s = store.create(tenant, client).await?;
            (
                format!("Key {} created for client {} of {tenant}.", s.id, s.client),
                Some((s.id, s.value)),
            )
        }
        Action::Rotate => {
            let kid = key_id()?;
            let grace = crate::keys::parse_duration(f.get("grace").map_or("24h", String::as_str))
                .map_err(|e| anyhow::anyhow!("grace: {e}"))?;
            let keys = store.list(Some(tenant)).await?;
            let key = keys
                .iter()
                .find(|k| &k.id == kid)
                .ok_or_else(|| anyhow::anyhow!("tenant {tenant} has no key with id {kid}"))?;
            let r = store.rotate(tenant, &key.client, grace).await?;
            (
                format!(
                    "Key {} made for client {}; the old key {} keeps working until {}.{expiry}",
                    r.new.id, r.new.client, r.old_id, r.old_expires
                ),
                Some((r.new.id, r.new.value)),
            )
        }
        Action::Disable | Action::Enable => {
            let kid = key_id()?;
            let on = action == Action::Enable;
            store.set_enabled(tenant, kid, on).await?;
            (
                format!(
                    "Key {kid} of {tenant} {}.",
                    if on { "enabled" } else { "disabled" }
                ),
                None,
            )
        }
        Action::Revoke => {
            let kid = key_id()?;
            store.revoke(tenant, kid).await?;
            (format!("Key {kid} of {tenant} revoked (deleted)."), None)
        }
    })
}

async fn key_action(
    State(c): State<Arc<Console>>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f = form(&String::from_utf8_lossy(&body));
    // Before anything else: a forged form changes nothing.
    if !c.auth.csrf_ok(f.get("csrf").map(String::as_str)) {
        return csrf_refused(&c);
    }
    if known_tenant(&c, &id).is_none() {
        return no_tenant(&c, &id);
    }
    let Some(action) = Action::parse(&action) else {
        return c.problem(
            StatusCode::NOT_FOUND,
            "No such action",
            "Pick an action on the keys page.",
        );
    };
    let result = match &c.fleet {
        Fleet::Local(state) => act(state, &id, action, &f, "").await,
        Fleet::Aws { .. } => {
            // API Gateway has no key expiry of its own.
            let note = " It is disabled by the first `apifactory apply --target aws` or \
                        `apifactory keys expire --target aws` after that.";
            match c.aws_of(&id).await {
                Ok(target) => act(&target, &id, action, &f, note).await,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok((message, new_key)) => {
            if let Some(hook) = c.after_key_change.get() {
                hook().await;
            }
            let target = c.target_label();
            let page = pages::done(
                &target,
                &id,
                &message,
                new_key.as_ref().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            html_response(StatusCode::OK, page)
        }
        Err(e) => c.problem(
            StatusCode::BAD_REQUEST,
            &format!("Cannot {}", action.as_str()),
            &format!("{e:#}"),
        ),
    }
}

#[cfg(test)]
mod tests;
